"""Render tunes to MIDI and transcribe them back: how often do the same notes come back, and how
often does the ABC play?

The first check: O'Neill's first 200 readable tunes in simple meters, rendered straight
(``write_tune_midi(straight=True)``) and transcribed from the file (``transcribe_midi``, tempo,
meter and key from the file, a grid of 32nd notes): the share whose notes (pitch, onset and
duration in quarter notes, grace notes) agree; the issue asks for at least 95%. For information
it also prints the same for expressive renderings (grid of 16ths), and how often the estimates
of tempo (within 3%), meter and key signature are right when nothing is given.

The second: ``--clean`` tunes of the default corpus's test split (its tokens written back as
ABC), each played expressively twice, at a random tempo from 0.6 to 1.5 times its dance's, by
an instrument in turn, with a seed of its own, once cut to its first 30 s (as
``benchmarks/perform_quality.py`` compares performances) and once whole, then transcribed with
tempo, meter and key all estimated (``folkrnn.performance_quality.check_transcription``): the
share whose ABC passes the validator in a steady meter and that ``abc2midi -c`` reads with no
error and no bar-length or repeat warning (the transcription issue asks for at least 98%).

    .venv/bin/python benchmarks/transcribe_agreement.py [--tunes 200] [--collection oneills1850]
        [--clean 100] [--seed 0]

The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import tempfile
import time
from collections import Counter
from pathlib import Path

import music21

from folkrnn.abc import detokenize, parse, read_text, split_tunes
from folkrnn.midi import INSTRUMENTS, tune_tempo, tune_to_performance, write_tune_midi
from folkrnn.transcribe import (
    estimate_key,
    estimate_meter,
    estimate_tempo,
    same_notes,
    transcribe_midi,
)


def simple_meter_tunes(collection: str, count: int):
    folder = Path(music21.__file__).parent / "corpus" / collection
    tunes = []
    for path in sorted(folder.glob("*.abc")):
        for text in split_tunes(read_text(path)):
            try:
                tune = parse(text)
            except Exception:  # noqa: BLE001 - unreadable corpus tunes are not the question here
                continue
            if tune.meter.free or tune.meter.compound:
                continue
            tunes.append(tune)
            if len(tunes) == count:
                return tunes
    return tunes


def test_split_tunes(count: int):
    """The first ``count`` tunes of the default corpus's test split, as Tunes."""
    from folkrnn.corpus import build_corpus

    tunes = []
    for tokens in build_corpus().split("test"):
        try:
            tunes.append(parse(detokenize(tokens)))
        except Exception:  # noqa: BLE001 - a tune the parser refuses is not the question here
            continue
        if len(tunes) == count:
            break
    return tunes


def clean_share(tunes, seed: int) -> dict:
    """Each tune played twice (30 s, whole) at a random tempo and transcribed with everything
    estimated: how many transcriptions are valid and abc2midi-clean, and what went wrong."""
    from folkrnn.performance_quality import check_transcription, crop
    from folkrnn.reference import abc2midi_available

    rng = random.Random(seed)
    instruments = sorted(INSTRUMENTS)
    checked = ok = 0
    problems: Counter = Counter()
    for number, tune in enumerate(tunes):
        beat = 1.5 if tune.meter.compound else 1.0
        tempo = min(400.0, max(20.0, tune_tempo(tune) / beat * rng.uniform(0.6, 1.5)))
        notes = tune_to_performance(tune, tempo=tempo, seed=number,
                                    instrument=instruments[number % len(instruments)])
        for piece in (crop(notes, 30.0), notes):
            check = check_transcription(piece)
            checked += 1
            ok += check.ok
            problems.update(re.sub(r"\d+", "#", re.sub(r"line \d+, col \d+: ", "", problem))
                            for problem in check.problems[:1])
    return {"transcriptions": checked, "ok": ok, "share": round(ok / checked, 4) if checked else None,
            "abc2midi": abc2midi_available(), "problems": dict(problems.most_common(5))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tunes", type=int, default=200)
    parser.add_argument("--collection", default="oneills1850")
    parser.add_argument("--clean", type=int, default=100, help="test-split tunes for the clean share (0: none)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    tunes = simple_meter_tunes(args.collection, args.tunes)
    started = time.perf_counter()
    straight = expressive = tempo_ok = meter_ok = key_ok = 0
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "tune.mid"
        for seed, tune in enumerate(tunes):
            expected = tune.unfold()
            write_tune_midi(tune, path, straight=True)
            straight += same_notes(expected, transcribe_midi(path, divisions=8).notes)
            write_tune_midi(tune, path, seed=seed)
            expressive += same_notes(expected, transcribe_midi(path, divisions=4).notes)
            performance = tune_to_performance(tune, seed=seed)
            tempo_ok += abs(estimate_tempo(performance) / tune_tempo(tune) - 1) <= 0.03
            meter = estimate_meter(performance, tune_tempo(tune))
            meter_ok += (meter.numerator, meter.denominator) == (
                tune.meter.numerator, tune.meter.denominator)
            key_ok += estimate_key(performance).accidentals == tune.key.accidentals
    n = len(tunes)
    seconds = time.perf_counter() - started
    print(f"{n} {args.collection} tunes in simple meters, {seconds:.1f} s")
    print(f"  straight render -> transcription, same notes:    {straight / n:.1%} (needs >= 95%)")
    print(f"  expressive render -> transcription, same notes:  {expressive / n:.1%}")
    print(f"  estimates on expressive renders: tempo {tempo_ok / n:.1%}, meter {meter_ok / n:.1%}, "
          f"key signature {key_ok / n:.1%}")
    clean = None
    if args.clean:
        started = time.perf_counter()
        clean = clean_share(test_split_tunes(args.clean), args.seed)
        print(f"{args.clean} test-split tunes, played at random tempos (30 s and whole), "
              f"{time.perf_counter() - started:.1f} s")
        print(f"  valid and abc2midi-clean: {clean['ok']}/{clean['transcriptions']} = "
              f"{clean['share']:.1%} (needs >= 98%)"
              + ("" if clean["abc2midi"] else " (abc2midi not installed: not checked)"))
        for problem, count in clean["problems"].items():
            print(f"    {count} x {problem}")
    print(json.dumps({
        "benchmark": "transcribe_agreement", "collection": args.collection, "tunes": n,
        "straight_agreement": round(straight / n, 4), "expressive_agreement": round(expressive / n, 4),
        "tempo_estimate": round(tempo_ok / n, 4), "meter_estimate": round(meter_ok / n, 4),
        "key_signature_estimate": round(key_ok / n, 4), "seconds": round(seconds, 1),
        "clean": clean,
    }))


if __name__ == "__main__":
    main()
