"""How fast the ABC core reads the default corpus, against music21 on the same tunes, in one run.

Prints tunes/s on one core (the best of ``--repeat`` passes, the one least disturbed by other load)
over the whole default corpus for:

- ``tokenize``: the model tokens alone;
- ``parse``: the Tune alone, with its notes unfolded;
- ``tokenize_and_parse``: both from one reading, the notes unfolded (the figure the core is held
  to: text -> model tokens and Tune);
- both by reading each tune twice (``tokenize`` then ``parse``), for comparison.

Then music21's ``converter.parse`` and ours on the same sample of tunes, and the ratios. The last
line is JSON.

    python benchmarks/abc_speed.py [--sample 200] [--repeat 3] [--music21-repeat 2]
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


def rate(function, tunes: list[str], repeat: int, errors: tuple = (FolkError,)) -> tuple[float, int]:
    """Best tunes/s over ``repeat`` passes, and how many tunes raised one of ``errors``."""
    best = 0.0
    failed = 0
    for _ in range(repeat):
        failed = 0
        start = time.perf_counter()
        for text in tunes:
            try:
                function(text)
            except errors:
                failed += 1
        best = max(best, len(tunes) / (time.perf_counter() - start))
    return best, failed


def parse_alone(text: str) -> None:
    parse(text).unfold()


def together(text: str) -> None:
    tokenize_and_parse(text)[1].unfold()


def twice(text: str) -> None:
    tokenize(text)
    parse(text).unfold()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=200, help="tunes given to music21")
    parser.add_argument("--repeat", type=int, default=3, help="passes over the corpus; the best counts")
    parser.add_argument("--music21-repeat", type=int, default=2, help="passes music21 makes over the sample")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    tunes = corpus_tunes()
    print(f"default corpus: {len(tunes)} tunes, one core, best of {args.repeat} passes")
    tok_rate, tok_failed = rate(tokenize, tunes, args.repeat)
    parse_rate, _ = rate(parse_alone, tunes, args.repeat)
    both_rate, _ = rate(together, tunes, args.repeat)
    twice_rate, _ = rate(twice, tunes, args.repeat)
    print(f"  tokenize                       {tok_rate:8.0f} tunes/s  (tokens alone; {tok_failed} rejected)")
    print(f"  parse + unfold                 {parse_rate:8.0f} tunes/s  (Tune alone)")
    print(f"  tokenize_and_parse + unfold    {both_rate:8.0f} tunes/s  (tokens and Tune, one reading)")
    print(f"  tokenize, then parse + unfold  {twice_rate:8.0f} tunes/s  (tokens and Tune, read twice)")

    from music21 import converter  # imported late: its import alone takes seconds

    sample = random.Random(args.seed).sample(tunes, min(args.sample, len(tunes)))
    ours_sample, _ = rate(together, sample, args.repeat)
    parse_sample, _ = rate(parse_alone, sample, args.repeat)
    twice_sample, _ = rate(twice, sample, args.repeat)
    converter.parse(sample[0], format="abc")  # warm up music21's own lazy imports
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # music21 raises many kinds of error: count them, keep timing
        m21_rate, m21_failed = rate(lambda text: converter.parse(text, format="abc"), sample,
                                    args.music21_repeat, (Exception,))
    ratio, parse_ratio, twice_ratio = ours_sample / m21_rate, parse_sample / m21_rate, twice_sample / m21_rate
    print(f"same {len(sample)} tunes (seed {args.seed}):")
    print(f"  music21 converter.parse        {m21_rate:8.1f} tunes/s  ({m21_failed} failed)")
    print(f"  tokenize_and_parse + unfold    {ours_sample:8.0f} tunes/s  {ratio:6.1f}x music21")
    print(f"  parse + unfold                 {parse_sample:8.0f} tunes/s  {parse_ratio:6.1f}x music21")
    print(f"  tokenize, then parse + unfold  {twice_sample:8.0f} tunes/s  {twice_ratio:6.1f}x music21")
    print(json.dumps({
        "tunes": len(tunes), "tokenize_per_s": round(tok_rate), "parse_per_s": round(parse_rate),
        "tokenize_and_parse_per_s": round(both_rate), "tokenize_then_parse_per_s": round(twice_rate),
        "sample": len(sample), "music21_per_s": round(m21_rate, 2),
        "ours_sample_per_s": round(ours_sample), "parse_sample_per_s": round(parse_sample),
        "ratio_vs_music21": round(ratio, 1), "ratio_parse_vs_music21": round(parse_ratio, 1),
        "ratio_vs_music21_reading_twice": round(twice_ratio, 1),
    }))


if __name__ == "__main__":
    main()
