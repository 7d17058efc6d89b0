"""How fast the ABC core reads the default corpus, against music21 on the same tunes, in one run.

Prints tunes/s for tokenising, for parsing (to a Tune with unfolded notes), and for both, on the
whole default corpus on one core; then music21's ``converter.parse`` and ours on the same sample
of tunes, and the ratio. The last line is JSON.

    python benchmarks/abc_speed.py [--sample 200] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import random
import time
import warnings

from folkrnn.abc import parse, read_text, split_tunebook, tokenize, tokenize_and_parse
from folkrnn.corpus import DEFAULT_COLLECTIONS, music21_corpus_dir
from folkrnn.errors import FolkError


def corpus_tunes() -> list[str]:
    root = music21_corpus_dir()
    tunes: list[str] = []
    for collection in DEFAULT_COLLECTIONS:
        for path in sorted((root / collection.name).glob("*.abc")):
            tunes.extend(t.text for t in split_tunebook(read_text(path), str(path)))
    return tunes


def rate(function, tunes: list[str], repeat: int) -> tuple[float, int]:
    """Best tunes/s over ``repeat`` passes (the least disturbed by the machine's other load)."""
    best = 0.0
    failed = 0
    for _ in range(repeat):
        failed = 0
        start = time.perf_counter()
        for text in tunes:
            try:
                function(text)
            except FolkError:
                failed += 1
        best = max(best, len(tunes) / (time.perf_counter() - start))
    return best, failed


def separately(text: str) -> None:
    tokenize(text)
    parse(text).unfold()


def together(text: str) -> None:
    tokenize_and_parse(text)[1].unfold()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=200, help="tunes given to music21")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    tunes = corpus_tunes()
    print(f"default corpus: {len(tunes)} tunes")
    tok_rate, tok_failed = rate(tokenize, tunes, args.repeat)
    parse_rate, _ = rate(lambda text: parse(text).unfold(), tunes, args.repeat)
    apart_rate, _ = rate(separately, tunes, args.repeat)
    both_rate, _ = rate(together, tunes, args.repeat)
    print(f"tokenize:                        {tok_rate:8.0f} tunes/s ({tok_failed} rejected)")
    print(f"parse + unfold:                  {parse_rate:8.0f} tunes/s")
    print(f"tokenize, then parse + unfold:   {apart_rate:8.0f} tunes/s")
    print(f"tokenize_and_parse + unfold:     {both_rate:8.0f} tunes/s (one reading gives both)")

    from music21 import converter  # imported late: its import alone takes seconds

    sample = random.Random(args.seed).sample(tunes, min(args.sample, len(tunes)))
    ours_sample, _ = rate(together, sample, args.repeat)
    ours_apart, _ = rate(separately, sample, args.repeat)
    converter.parse(sample[0], format="abc")  # warm up music21's own lazy imports
    start = time.perf_counter()
    m21_failed = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for text in sample:
            try:
                converter.parse(text, format="abc")
            except Exception:  # music21 raises many kinds; count them, keep timing
                m21_failed += 1
    m21_rate = len(sample) / (time.perf_counter() - start)
    ratio = ours_sample / m21_rate
    print(f"same {len(sample)} tunes: ours {ours_sample:.0f} tunes/s (tokens and Tune from one "
          f"reading; {ours_apart:.0f} tunes/s read twice), music21 converter.parse "
          f"{m21_rate:.1f} tunes/s ({m21_failed} failed): {ratio:.0f}x ({ours_apart / m21_rate:.0f}x)")
    print(json.dumps({
        "tunes": len(tunes), "tokenize_per_s": round(tok_rate), "parse_per_s": round(parse_rate),
        "tokenize_then_parse_per_s": round(apart_rate),
        "tokenize_and_parse_per_s": round(both_rate), "sample": len(sample),
        "ours_sample_per_s": round(ours_sample), "music21_per_s": round(m21_rate, 2),
        "ratio_vs_music21": round(ratio, 1),
        "ratio_vs_music21_reading_twice": round(ours_apart / m21_rate, 1),
    }))


if __name__ == "__main__":
    main()
