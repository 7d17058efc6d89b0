"""How fast ``folkrnn.validate`` checks tunes, on one core, in one run.

Four figures, tunes per second, on the default corpus's test and validation tunes as normalised ABC
text (what the composer hands the validator):

- ``parse``: ``folkrnn.abc.parse`` alone (the floor under everything else);
- ``validate``: ``validate_tune(text)`` without the novelty check (parse included);
- ``validate_parsed``: ``validate_tune(tune)`` on an already parsed Tune: the validator's own cost;
- ``validate_novelty``: ``validate_tune(text, novelty=index)`` against the default training split
  (parse and tokenising included); the index is built once, before timing, and its build time is
  printed apart.

Each figure is the best of ``--repeat`` passes (the least disturbed by the machine's other load).
The issue asks >= 2,000 tunes/s without novelty and >= 200 tunes/s with it. The last line is JSON.

    .venv/bin/python benchmarks/validate_speed.py [--repeat 3] [--limit 0]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from folkrnn.abc import detokenize, parse  # noqa: E402
from folkrnn.corpus import build_corpus  # noqa: E402
from folkrnn.validate import NoveltyIndex, validate_tune  # noqa: E402


def best_rate(function, items, repeat: int) -> float:
    best = 0.0
    for _ in range(repeat):
        started = time.perf_counter()
        for item in items:
            function(item)
        best = max(best, len(items) / (time.perf_counter() - started))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--limit", type=int, default=0, help="use only this many tunes (0: all)")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    corpus = build_corpus()
    texts = [detokenize(tokens) for tokens in corpus.test + corpus.valid]
    if args.limit:
        texts = texts[:args.limit]
    tunes = [parse(text) for text in texts]
    started = time.perf_counter()
    index = NoveltyIndex.from_corpus(corpus)
    build_s = time.perf_counter() - started

    parse_rate = best_rate(parse, texts, args.repeat)
    validate_rate = best_rate(validate_tune, texts, args.repeat)
    parsed_rate = best_rate(validate_tune, tunes, args.repeat)
    novelty_rate = best_rate(lambda text: validate_tune(text, novelty=index), texts, args.repeat)
    valid = sum(validate_tune(text).valid for text in texts)

    print(f"{len(texts)} tunes ({valid} valid), one core, best of {args.repeat}")
    print(f"parse alone:                 {parse_rate:8,.0f} tunes/s")
    print(f"validate (text, no novelty): {validate_rate:8,.0f} tunes/s   (target >= 2,000)")
    print(f"validate (parsed Tune):      {parsed_rate:8,.0f} tunes/s   (the validator's own cost: "
          f"{1e3 / parsed_rate:.3f} ms a tune)")
    print(f"validate with novelty:       {novelty_rate:8,.0f} tunes/s   (target >= 200; against "
          f"{len(index):,} training tunes; index built in {build_s:.2f} s)")
    print(json.dumps({
        "tunes": len(texts), "parse_per_s": round(parse_rate), "validate_per_s": round(validate_rate),
        "validate_parsed_per_s": round(parsed_rate), "validate_novelty_per_s": round(novelty_rate),
        "novelty_index_build_s": round(build_s, 3), "reference_tunes": len(index),
        "validate_target_met": validate_rate >= 2000, "novelty_target_met": novelty_rate >= 200,
    }))


if __name__ == "__main__":
    main()
