"""How good generated tunes are: the quality bars of the composing issue, measured on one model.

For N tunes from ``generate`` (default 1000, constrained sampling, temperature 1):

- the share that passes our validator;
- the share with no bar-length or repeat warning from ``abc2midi -c`` (its other notes, such as
  "Hornpipe must be in 2/4 or 4/4 time", are counted apart);
- the share that verovio engraves, and whose MusicXML (music21, from our Tune) music21 reads back;
- novelty: the share at least 0.85 similar to a tune of the model's training corpus.

Title conditioning: for titles ending in Jig, Reel, Hornpipe, Waltz and Polka (``--titles`` of
each, no ``--meter``), the share whose meter is the type's usual one (jig 6/8; reel and hornpipe
4/4 or 2/2; waltz 3/4; polka 2/4); also with 2/4 allowed for reels and hornpipes, as O'Neill's and
Ryan's collections write many of them.

Usage: ``python benchmarks/generate_quality.py [--model DIR] [--n 1000] [--titles 50]``; the model
defaults to the shipped one. The last line is a JSON object.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

USUAL = {"Jig": {"6/8"}, "Reel": {"4/4", "2/2"}, "Hornpipe": {"4/4", "2/2"}, "Waltz": {"3/4"},
         "Polka": {"2/4"}}
LENIENT = {"Reel": {"2/4"}, "Hornpipe": {"2/4"}}
WORDS = ["Kesh", "Mountain", "Banks", "Silver", "Morning", "Wild", "Drunken", "Stony", "Green",
         "Windy", "Lark", "River", "Blackbird", "Piper", "Miller", "Widow", "Sailor", "Harvest",
         "Lough", "Road", "Hills", "Gap", "Fair", "Bridge", "Castle", "Garden", "Meadow", "Ship",
         "Fiddler", "Shepherd", "Galway", "Sligo", "Kerry", "Donegal", "Clare", "Tralee", "Boyne",
         "Shannon", "Ballinasloe", "Humours", "Rose", "Star", "Moon", "Hare", "Fox", "Cuckoo",
         "Thrush", "Curlew", "Heather", "Lady"]


def abc2midi_problems(book: Path, starts: list[int]) -> tuple[set[int], Counter]:
    """Tunes (by index) with an abc2midi -c bar-length or repeat warning, and its other notes."""
    out = subprocess.run(["abc2midi", str(book), "-c"], capture_output=True, text=True).stdout
    flagged, other = set(), Counter()
    for line in out.splitlines():
        match = re.search(r"line-char (\d+)-\d+ : (.*)", line)
        if not match or not ("Warning" in line or "Error" in line):
            continue
        number = int(match.group(1))
        tune = max((i for i, start in enumerate(starts) if start <= number), default=0)
        message = match.group(2)
        if "time units" in message or "repeat" in message.lower() or "|:" in message or \
                "ending" in message.lower() or "[1" in message:
            flagged.add(tune)
        else:
            other[re.sub(r"\d+", "#", message)] += 1
    return flagged, other


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="model directory (default: the shipped model)")
    parser.add_argument("--n", type=int, default=1000, help="tunes to generate")
    parser.add_argument("--titles", type=int, default=50, help="titles of each dance type")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--render", type=int, default=None, help="tunes to engrave and read back "
                        "as MusicXML (default: all)")
    args = parser.parse_args()

    from folkrnn.compose import ComposeOptions, compose, generate, load_composer
    from folkrnn.render import tune_to_musicxml, tune_to_svg

    composer = load_composer(args.model)
    print(f"model: {composer.identity}")
    figures: dict = {"model": composer.identity}
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        result = generate(ComposeOptions(seed=args.seed, model=args.model, out=folder, formats=["abc"],
                                         force=True), args.n)
        seconds = time.perf_counter() - started
        tunes = result.tunes
        made = len(tunes)
        valid = sum(t.report.valid for t in tunes)
        book = Path(folder) / "tunes.abc"
        lines = book.read_text().split("\n")
        starts = [i + 1 for i, line in enumerate(lines) if line.startswith("X:")]
        flagged, other = abc2midi_problems(book, starts)
        summary = json.loads((Path(folder) / "summary.json").read_text())
    print(f"generated {made} of {args.n} tunes in {seconds:.1f} s; rejected {len(result.rejected)}, "
          f"seeds retried {len(result.retried)}")
    warnings = Counter(issue.code for tune in tunes for issue in tune.report.warnings)
    print(f"validator: {valid}/{made} valid ({valid / made:.1%}); warnings {dict(warnings.most_common(6))}")
    print(f"abc2midi -c: {made - len(flagged)}/{made} with no bar or repeat warning "
          f"({(made - len(flagged)) / made:.1%}); its other notes: {dict(other.most_common(4))}")
    render = tunes if args.render is None else tunes[:args.render]
    engraved = read_back = 0
    from music21 import converter

    for tune in render:
        try:
            svg = tune_to_svg(tune.tune, abc=tune.abc)
            engraved += svg.lstrip().startswith(("<svg", "<?xml"))
        except Exception as error:  # noqa: BLE001 - counted, and shown
            print(f"  verovio failed on X:{tune.index + 1}: {error}")
        try:
            score = converter.parseData(tune_to_musicxml(tune.tune).decode("utf-8"), format="musicxml")
            read_back += len(score.recurse().notes) > 0
        except Exception as error:  # noqa: BLE001
            print(f"  music21 failed on X:{tune.index + 1}: {error}")
    print(f"verovio engraved {engraved}/{len(render)}; music21 read back {read_back}/{len(render)} MusicXML files")
    copies = summary["novelty"]["probable_copies"]
    nearest = [t["nearest"]["similarity"] for t in summary["tunes"] if t.get("nearest")]
    print(f"novelty ({summary['novelty']['reference']}): {len(copies)}/{made} at least 0.85 similar "
          f"({len(copies) / made:.2%})"
          + (f"; median nearest {sorted(nearest)[len(nearest) // 2]:.2f}" if nearest else ""))
    figures.update({
        "n": args.n, "made": made, "seconds": round(seconds, 2), "valid": valid,
        "valid_share": round(valid / made, 4),
        "abc2midi_clean": made - len(flagged), "abc2midi_clean_share": round((made - len(flagged)) / made, 4),
        "abc2midi_other_notes": dict(other), "engraved": engraved, "musicxml_read_back": read_back,
        "rendered": len(render), "probable_copies": len(copies),
        "probable_copy_share": round(len(copies) / made, 4), "novelty_reference": summary["novelty"]["reference"],
        "meters": summary["distribution"]["meter"], "rhythms": summary["distribution"]["rhythm"],
    })
    conditioning = {}
    for kind, usual in USUAL.items():
        meters = Counter()
        for k in range(args.titles):
            title = f"The {WORDS[k % len(WORDS)]} {kind}"
            composed = compose(ComposeOptions(title=title, seed=args.seed + k, model=args.model), write=False)
            meters[str(composed.tune.meter)] += 1
        hits = sum(meters[m] for m in usual)
        lenient = hits + sum(meters[m] for m in LENIENT.get(kind, ()))
        conditioning[kind] = {"usual": hits / args.titles, "lenient": lenient / args.titles,
                              "meters": dict(meters.most_common())}
        print(f"titles ending in {kind}: usual meter {'/'.join(sorted(usual))} in {hits}/{args.titles} "
              f"({hits / args.titles:.0%}); with 2/4 {lenient / args.titles:.0%}; meters {dict(meters.most_common(4))}")
    figures["title_conditioning"] = conditioning
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
