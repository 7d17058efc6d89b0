"""The form of generated tunes against real ones: issue 10's Targets table, measured in one run.

It generates N tunes (default 500) with the shipped model (or ``--model``) through the CLI,
``python -m folkrnn generate -n N --seed S --out DIR``, and reads ``DIR/tunes.abc``; then the same
with ``--form free`` (what the model itself learned, a part closing by its 16th bar);
``--option "--lookback 0"`` adds options to both (there: the model with no copy prior). The real
tunes are the default corpus's test split. Every figure is :func:`folkrnn.form.form_statistics`
(the counting rules are in :mod:`folkrnn.form`), one column each for the default output,
``--form free`` and the real tunes:

- tunes carrying a dance R: (85% of untitled tunes by design: ``folkrnn.tables.DANCE_SHARE``);
  dance tunes in their dance's form and meter (:func:`folkrnn.form.in_dance_form`, from
  ``folkrnn.tables.DANCES``);
- parts a multiple of 4 bars; tunes whose parts are all 8 bars (16 unrepeated); AABB; bars and
  half bars repeating an earlier one; tunes with no repeated bar; tunes with one bar written 5
  times or more (a loop); rests inside; range over two octaves; last note on the tonic;
- the classifier two-sample test: cross-validated accuracy of logistic regression telling the
  generated tunes from the real ones by their form features (50%: indistinguishable);
- copies: tunes at least 0.85 similar to a training tune (the validator's novelty check, as
  ``summary.json`` reports it); and the share the validator passes.

Usage: ``python benchmarks/form_quality.py [-n 500] [--seed 2024] [--model DIR] [--option "..."] [--keep DIR]``.
The last line is a JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from folkrnn.abc import detokenize, parse, read_text, split_tunebook  # noqa: E402
from folkrnn.errors import FolkError  # noqa: E402
from folkrnn.form import STATISTICS, form_features, form_of, form_statistics, two_sample_accuracy  # noqa: E402

TARGETS = {  # issue 10: (default output, --form free); None: report it
    "dance_share": (">= 80%", "-"), "dance_form": ("100%", "-"), "parts_multiple_of_4": ("100%", ">= 90%"),
    "all_parts_8": ("100% for AABB forms", ">= 70%"), "aabb": ("-", "-"),
    "played_multiple_of_8": ("-", "-"), "repeated_bars": (">= 20%", ">= 20%"),
    "no_repeated_bar": ("<= 10%", "<= 10%"), "repeated_half_bars": (">= 30%", ">= 30%"),
    "one_bar_five_times": ("-", "-"),
    "rest_inside": ("<= 15%", "<= 15%"), "over_two_octaves": ("<= 3%", "<= 3%"),
    "ends_on_tonic": ("-", "-"), "classifier_accuracy": ("<= 70%", "report it"),
    "copies": ("<= 1%", "<= 1%"), "valid": ("100%", "100%"),
}


def generate_options() -> str:
    """The text of ``folkrnn generate --help`` (wide, so options are not cut)."""
    environment = dict(os.environ, COLUMNS="250", TERM="dumb")
    return subprocess.run([sys.executable, "-m", "folkrnn", "generate", "--help"], capture_output=True,
                          text=True, cwd=REPO, env=environment).stdout


def generate(n: int, seed: int, out: Path, model: str | None, extra: list[str], help_text: str) -> dict:
    """Run ``folkrnn generate`` and read back its tunes: forms, validity and copies."""
    command = [sys.executable, "-m", "folkrnn", "generate", "-n", str(n), "--seed", str(seed),
               "--out", str(out)] + extra
    if model:
        command += ["--model", model]
    if re.search(r"--format(?![\w-])", help_text):
        command += ["--format", "abc"]  # no MIDI files: they are not measured here
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[2:])} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    forms, unreadable = [], 0
    for tune in split_tunebook(read_text(out / "tunes.abc")):
        try:
            forms.append(form_of(parse(tune.text)))
        except FolkError:
            unreadable += 1
    summary = json.loads((out / "summary.json").read_text())
    tunes = summary.get("tunes", [])
    threshold = (summary.get("novelty") or {}).get("threshold", 0.85)
    similar = [t["nearest"]["similarity"] for t in tunes if t.get("nearest")]
    copies = sum(1 for value in similar if value >= threshold)
    valid = sum(1 for t in tunes if t.get("valid"))
    return {"forms": forms, "unreadable": unreadable, "seconds": seconds, "written": len(tunes),
            "copies": copies / len(similar) if similar else None, "copies_checked": len(similar),
            "valid": valid / len(tunes) if tunes else None, "command": " ".join(command[2:])}


def real_forms() -> tuple[list, str]:
    """The forms of the default corpus's test split, and what that corpus is."""
    from folkrnn.corpus import build_corpus

    corpus = build_corpus()
    forms = []
    for tokens in corpus.test:
        try:
            forms.append(form_of(parse(detokenize(tokens))))
        except (FolkError, ValueError, IndexError, KeyError):
            pass
    names = [source.get("name") for source in (corpus.info.get("sources") or [])
             if isinstance(source, dict)] if isinstance(getattr(corpus, "info", None), dict) else []
    return forms, ", ".join(name for name in names if name) or "the default corpus"


def percent(value) -> str:
    return "-" if value is None else f"{value:.1%}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--n", type=int, default=500, help="tunes to generate per setting")
    parser.add_argument("--seed", type=int, default=2024, help="seed of the first tune")
    parser.add_argument("--model", default=None, help="model directory (default: the shipped model)")
    parser.add_argument("--option", default="", help="more generate options for both settings, "
                        "e.g. \"--lookback 0\" (the model alone)")
    parser.add_argument("--keep", default=None, help="write the generated tunebooks here (default: "
                        "a temporary folder, removed)")
    args = parser.parse_args()

    help_text = generate_options()
    options = shlex.split(args.option)
    settings = {"default": options, "free": ["--form", "free"] + options}

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(args.keep) if args.keep else Path(scratch)
        root.mkdir(parents=True, exist_ok=True)
        runs = {}
        for name, extra in settings.items():
            out = root / f"form-{name}-{args.n}-{args.seed}"
            if out.exists():
                raise SystemExit(f"{out} exists: choose another --keep folder")
            runs[name] = generate(args.n, args.seed, out, args.model, extra, help_text)
            run = runs[name]
            print(f"{name}: {run['command']}: {len(run['forms'])} tunes read "
                  f"({run['unreadable']} unreadable) in {run['seconds']:.1f} s")
    real, corpus_name = real_forms()
    print(f"real: {len(real)} test tunes of {corpus_name}")

    stats = {name: form_statistics(run["forms"]) for name, run in runs.items()}
    stats["real"] = form_statistics(real)
    real_features = form_features(real)
    for name, run in runs.items():
        stats[name]["classifier_accuracy"] = round(two_sample_accuracy(
            form_features(run["forms"]), real_features, seed=args.seed), 4)
        stats[name]["copies"] = None if run["copies"] is None else round(run["copies"], 4)
        stats[name]["valid"] = None if run["valid"] is None else round(run["valid"], 4)
    stats["real"]["classifier_accuracy"] = stats["real"]["copies"] = stats["real"]["valid"] = None

    rows = dict(STATISTICS)
    rows.update({"classifier_accuracy": "classifier accuracy, generated vs real",
                 "copies": "copies (>= 0.85 similar to a training tune)",
                 "valid": "pass the validator"})
    columns = list(runs) + ["real"]
    titles = {"default": "default output", "free": "--form free", "real": "real (test)"}
    width = max(len(label) for label in rows.values()) + 2
    print()
    print(f"{'':<{width}}" + "".join(f"{titles[c]:>16}" for c in columns) + "   target (default; free)")
    for key, label in rows.items():
        target = TARGETS.get(key, ("-", "-"))
        line = f"{label:<{width}}" + "".join(f"{percent(stats[c].get(key)):>16}" for c in columns)
        print(line + f"   {target[0]}; {target[1]}")
    for column in columns:
        labels = ", ".join(f"{label} {share:.0%}" for label, share in list(stats[column]["labels"].items())[:5])
        print(f"commonest forms, {titles[column]}: {labels}; dance tunes: {stats[column]['dance_tunes']}")
    figures = {
        "n": args.n, "seed": args.seed, "model": args.model or "shipped", "real_corpus": corpus_name,
        "settings": {name: run["command"] for name, run in runs.items()},
        "seconds": {name: round(run["seconds"], 1) for name, run in runs.items()},
        **{name: {key: value for key, value in stats[name].items()} for name in columns},
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
