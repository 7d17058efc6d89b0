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

from folkrnn.abc import parse, split_tunebook, read_text, tokenize
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


def both(text: str) -> None:
    tokenize(text)
    parse(text).unfold()


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
    both_rate, _ = rate(both, tunes, args.repeat)
    print(f"tokenize:          {tok_rate:8.0f} tunes/s ({tok_failed} rejected)")
    print(f"parse + unfold:    {parse_rate:8.0f} tunes/s")
    print(f"tokenize + parse:  {both_rate:8.0f} tunes/s")

    from music21 import converter  # imported late: its import alone takes seconds

    sample = random.Random(args.seed).sample(tunes, min(args.sample, len(tunes)))
    ours_sample, _ = rate(both, sample, args.repeat)
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
    print(f"same {len(sample)} tunes: ours {ours_sample:.0f} tunes/s (tokenize + parse), "
          f"music21 converter.parse {m21_rate:.1f} tunes/s ({m21_failed} failed): {ratio:.0f}x")
    print(json.dumps({
        "tunes": len(tunes), "tokenize_per_s": round(tok_rate), "parse_per_s": round(parse_rate),
        "tokenize_and_parse_per_s": round(both_rate), "sample": len(sample),
        "ours_sample_per_s": round(ours_sample), "music21_per_s": round(m21_rate, 2),
        "ratio_vs_music21": round(ratio, 1),
    }))


if __name__ == "__main__":
    main()
