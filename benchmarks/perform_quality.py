"""How sampled performances play next to real tunes as played: the performance issue's table, in one run.

It samples N performances of ``--seconds`` s with the shipped MIDI-event model (or ``--model``)
through ``folkrnn.perform.sample_performances``, piece i from seed ``--seed + i``, and takes N real
performances: tunes of the default corpus's test split (or ``--source``'s) as the MIDI corpus plays
them for training (``folkrnn.corpus.build_corpus(encoding="midi")``, the first rendering of each
tune, N drawn at random with the seed), cropped to the same length. A model with controls chooses
each piece's tempo, meter, key and density itself (``sample_performances(controls=None)``); the
line "controls chosen" tallies its tempos and meters next to the real tunes'. Every figure is
:mod:`folkrnn.performance_quality`'s, with its targets:

- mean notes sounding at once while any sounds (<= 1.05), the most at once (median per piece);
- notes longer than 2 s (<= 0.5% of notes);
- notes per second, median (within the real tunes' interquartile range);
- pitch range, median (within 3 semitones of the real tunes');
- onset regularity, the peak of the onset autocorrelation (within 20% of the real tunes'), and
  the share of onsets within 30 ms of a steady grid;
- the share that transcribes (``folkrnn.transcribe``) to ABC that passes the validator in a steady
  meter and that ``abc2midi -c`` reads cleanly (>= 90%), on both sides. A piece with controls is
  transcribed as ``folkrnn transcribe`` reads the MIDI file ``folkrnn perform`` writes of it: at
  its controls' tempo, meter and key, time 0 a downbeat; the real tunes likewise, from theirs.

And the wall time of the sampling (target: 50 pieces of 30 s in under 150 s, scaled to N and
``--seconds``).

Usage: ``python benchmarks/perform_quality.py [-n 50] [--seconds 30] [--model DIR] [--seed 2024]
[--instrument fiddle] [--option "--temperature 0.9 --top-p 0.95"] [--source NAME] [--keep DIR]
[--plot FILE]``. ``--option`` sets PerformConfig fields the way ``folkrnn perform`` spells them
(a lone flag needs ``=``: ``--option=--no-guards``), and, for a model with controls, may fix
them as ``folkrnn perform`` does (``--option "--rhythm reel"``, ``--tempo``, ``--meter``,
``--key``, ``--density``); none are needed. ``--keep`` writes each piece as ``folkrnn perform``
does, with its controls' tempo, time and key signatures.
The last line is a JSON object.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from folkrnn.perform import Controls, PerformConfig, load_performer, sample_performances  # noqa: E402
from folkrnn.performance_quality import (  # noqa: E402
    control_counts,
    crop,
    performance_table,
    plot_piano_rolls,
    real_performances,
    table_lines,
)

TARGET_SECONDS = 150.0  # for 50 pieces of 30 s


def perform_options(text: str, seconds: float, instrument: str) -> tuple[PerformConfig, Controls | None]:
    """PerformConfig and Controls from ``folkrnn perform``-style options: ``--top-p 0.95
    --no-guards --rhythm reel``. No control given: None (the model's choice)."""
    fields = {field.name: field for field in dataclasses.fields(PerformConfig)}
    kinds = {"rhythm": str, "tempo": float, "meter": str, "key": str, "density": float}  # Controls' fields
    values: dict = {"seconds": seconds}
    controls: dict = {}
    if "instrument" in fields:  # a sampler that plays for an instrument
        values["instrument"] = instrument
    words = shlex.split(text)
    while words:
        word = words.pop(0)
        name = word.lstrip("-").replace("-", "_")
        if word.startswith("--no-") and name[3:] in fields:
            values[name[3:]] = False
            continue
        if name in kinds:
            if not words:
                raise SystemExit(f"--option: {word} needs a value")
            controls[name] = kinds[name](words.pop(0))
            continue
        if name not in fields:
            raise SystemExit(f"--option: unknown option {word!r}; PerformConfig has "
                             f"{', '.join(fields)}, and the controls {', '.join(kinds)}")
        default = fields[name].default
        if isinstance(default, bool):
            values[name] = True
        else:
            if not words:
                raise SystemExit(f"--option: {word} needs a value")
            values[name] = type(default)(words.pop(0))
    return PerformConfig(**values).check(), (Controls(**controls) if controls else None)


def tally(controls: list[dict]) -> str:
    """Tempos and meters among pieces' controls, as one line's text ("-" for pieces without)."""
    if not any(controls):
        return "-"
    return "; ".join(f"{kind} " + ", ".join(f"{value} x{count}" for value, count in
                                            control_counts(controls, kind).items())
                     for kind in ("meter", "tempo"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--n", type=int, default=50, help="performances (and real tunes)")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each performance")
    parser.add_argument("--model", default=None, help="MIDI-event model directory (default: the shipped one)")
    parser.add_argument("--seed", type=int, default=2024, help="seed of the first piece, and of the real tunes' draw")
    parser.add_argument("--instrument", default="fiddle", help="the instrument of --keep's MIDI files "
                        "(and of the sampler, where it takes one)")
    parser.add_argument("--option", action="append", default=[], help="sampling options as "
                        "folkrnn perform spells them, e.g. \"--temperature 0.9 --top-p 0.95\"")
    parser.add_argument("--source", action="append", default=None, help="corpus of the real tunes "
                        "(collection or path; repeat to combine; default: the default corpus)")
    parser.add_argument("--split", default="test", choices=("train", "valid", "test"), help="the split the real "
                        "tunes come from (valid: to choose sampling defaults without looking at the test tunes)")
    parser.add_argument("--no-abc2midi", action="store_true", help="skip abc2midi in the transcription check")
    parser.add_argument("--keep", default=None, help="write the performances here as MIDI files")
    parser.add_argument("--plot", default=None, help="write a PNG of piano rolls: two performances, two real")
    args = parser.parse_args()

    options, controls = perform_options(" ".join(args.option), args.seconds, args.instrument)
    performer = load_performer(args.model)
    seeds = [args.seed + i for i in range(args.n)]
    started = time.perf_counter()
    pieces = sample_performances(performer, seeds, options=options, controls=controls)
    sampling = time.perf_counter() - started
    target = TARGET_SECONDS * args.n / 50 * args.seconds / 30
    made = [piece for piece in pieces if piece.ok]
    ended = {}
    for piece in pieces:
        ended[piece.ended] = ended.get(piece.ended, 0) + 1
    print(f"model: {performer.path} ({performer.label}); options: {dataclasses.asdict(options)}; "
          f"controls: {controls.given() if controls else 'the model chooses'}")
    print(f"sampled {len(made)} of {args.n} performances of up to {args.seconds:g} s in {sampling:.1f} s "
          f"(target {target:.0f} s: {'met' if sampling <= target else 'NOT met'}); mean length "
          f"{sum(p.seconds for p in made) / max(len(made), 1):.1f} s; ended by {ended}")
    if args.keep:
        from folkrnn.midi import write_performance
        from folkrnn.perform import file_signatures
        from folkrnn.tables import find_instrument

        style = find_instrument(args.instrument)
        folder = Path(args.keep)
        folder.mkdir(parents=True, exist_ok=True)
        for piece in made:
            write_performance(piece.notes, folder / f"perf-{piece.index + 1:04d}.mid",
                              program=style.program if style else 0, **file_signatures(piece.controls))
        print(f"wrote {len(made)} MIDI files to {folder}")

    from folkrnn.corpus import build_corpus

    mark = time.perf_counter()
    corpus = build_corpus(args.source, encoding="midi")
    real, real_controls = real_performances(corpus, args.n, split=args.split, seed=args.seed,
                                                with_controls=True)
    names = ", ".join(source["name"] for source in corpus.info.get("sources", []))
    print(f"real: {len(real)} {args.split} tunes of {names}, first rendering each, cropped to {args.seconds:g} s "
          f"(corpus {'from the cache' if corpus.from_cache else 'built'} in {time.perf_counter() - mark:.1f} s)")

    mark = time.perf_counter()
    chosen = [piece.controls for piece in pieces]
    table = performance_table([piece.notes for piece in pieces], real, seconds=args.seconds,
                              hints=chosen, real_hints=real_controls, abc2midi=not args.no_abc2midi)
    measuring = time.perf_counter() - mark
    print()
    for line in table_lines(table):
        print(line)
    print()
    print(f"controls chosen: {tally(chosen)}  |  real tunes: {tally(real_controls)}")
    for side in ("generated", "real"):
        details = table[side].get("transcription") or {}
        if details:
            share = table[side]["transcribed_share"]
            print(f"transcription, {side}: {details['ok']} of {table[side]['pieces']} ok "
                  f"({'-' if share is None else f'{share:.0%}'}; {details['hinted']} at their controls' "
                  f"tempo, meter and key); {details['transcribed']} transcribed, {details['valid']} valid, "
                  f"{details['steady_meter']} steady meter, {details['abc2midi_clean']}/"
                  f"{details['abc2midi_checked']} abc2midi-clean; meters {details['meters']}; "
                  f"problems {details['problems']}")
    print(f"measured in {measuring:.1f} s")
    if args.plot:
        shown = [piece.notes for piece in made[:2]]
        labels = [f"perform, seed {piece.seed}" for piece in made[:2]]
        shown += real[:2]
        labels += ["real tune, rendered"] * len(real[:2])
        path = plot_piano_rolls([crop(piece, args.seconds) for piece in shown], labels, args.plot,
                                seconds=args.seconds, title="Performances next to real tunes as played")
        print(f"piano rolls: {path}")
    figures = {
        "benchmark": "perform_quality", "n": args.n, "seconds": args.seconds, "seed": args.seed,
        "model": str(performer.path), "options": dataclasses.asdict(options),
        "controls_given": controls.given() if controls else {},
        "controls_chosen": {kind: control_counts(chosen, kind) for kind in ("tempo", "meter", "key", "density")},
        "real_controls": {kind: control_counts(real_controls, kind) for kind in ("tempo", "meter", "key", "density")},
        "real_corpus": names, "real_split": args.split, "real_pieces": len(real),
        "sampling_s": round(sampling, 2), "sampling_target_s": round(target, 1),
        "sampling_met": sampling <= target, "made": len(made), "ended": ended,
        "generated": {key: value for key, value in table["generated"].items() if key != "per_piece"},
        "real": {key: value for key, value in table["real"].items() if key != "per_piece"},
        "met": table["met"],
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
