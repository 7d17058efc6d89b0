"""How folkrnn meets hostile input, races and signals: the counts issue 11 asks for.

Runs the reliability suite's cases (tests/hostile_cases.py: the inputs named in the issue,
generated ABC, MIDI and model files, bad option values for every command, races of two writers
into one folder, and signals at seeded moments of generate, train and corpus build) and prints
how many were tried, refused cleanly (one line, non-zero exit), accepted, and how many gave a
traceback, hung, lost or half-wrote a file, or left a process behind (the targets are 0). The
last line is JSON.

    .venv/bin/python benchmarks/hostile.py [--quick] [--no-signals] [--verbose]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import hostile_cases as hostile  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer option cases, no slow named cases")
    parser.add_argument("--no-signals", action="store_true", help="skip the signal runs")
    parser.add_argument("--verbose", action="store_true", help="print every case that is not clean")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    started = time.perf_counter()
    outcomes: dict[str, list] = {}
    with tempfile.TemporaryDirectory(prefix="folkrnn-hostile-") as root:
        root = Path(root)
        named = [case for case in hostile.named_cases() if not (args.quick and case.slow)]
        outcomes["named"] = hostile.run_many(named, root)
        inputs = hostile.generated_inputs(args.seed)
        outcomes["library"] = hostile.run_library(inputs, root)
        outcomes["validate"] = hostile.validate_all(inputs, root)
        outcomes["cli sample"] = hostile.run_many(hostile.cli_sample(inputs, 12 if args.quick else 30, args.seed), root)
        outcomes["options"] = hostile.run_many(hostile.option_cases(args.seed, 1 if args.quick else 2), root)
        outcomes["races"] = hostile.race_compose(root) + hostile.race_generate(root) + hostile.race_render(root)
        if not args.no_signals:
            outcomes["signals"] = [hostile.run_signal(root, *plan) for plan in hostile.signal_plan(args.seed)]
    everything = [outcome for group in outcomes.values() for outcome in group]
    width = max(len(name) for name in outcomes)
    for name, group in outcomes.items():
        figures = hostile.counts(group)
        print(f"{name:<{width}}  " + ", ".join(f"{key} {value}" for key, value in figures.items()))
    if args.verbose:
        for outcome in everything:
            if not outcome.ok:
                print("  " + outcome.describe())
    total = hostile.counts(everything)
    total["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(total))


if __name__ == "__main__":
    main()
