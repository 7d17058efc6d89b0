"""Do the titles the model writes for itself read as English? With and without its title words.

Generates N untitled tunes (default 200, seeds 1..N, the sampler's defaults, as ``folkrnn
generate`` makes them) with the shipped ABC model, once with the word constraint off
(``SampleConfig(title_words=False)``: the model spells freely, as before) and once on (each title
made of the words of the training corpus' titles, ``folkrnn.abc.titles``), and prints for each:

- ``english``: the share of titles whose every word is an English word, by a word list
  independent of our corpus (``/usr/share/dict/words``, Debian's ``wamerican``: ``apt-get install
  wamerican``). A word is looked up without the punctuation at its edges, without a possessive
  ``'s`` or ``s'``, in any case, each part of a hyphenated word on its own; numbers and ordinals
  ("1780", "55th") count as English. The corpus's own training titles are scored the same way, as
  the ceiling (the real titles hold names: "O'Carolan's Concerto");
- ``corpus``: the share of titles whose every word is a word of the corpus titles (as written;
  the first word also capitalised);
- ``distinct``: distinct titles among the N;
- the sampler's speed, as CPU seconds per 1,000 tokens (one process, one BLAS thread: what a
  worker of ``generate`` spends), with the constraint off and on;
- examples.

Usage: ``python benchmarks/title_words.py [--n 200] [--seed 1] [--model DIR] [--words both|on|off]
[--examples 10]``; the last line is a JSON object.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

DICTIONARY = Path("/usr/share/dict/words")
_NUMBER = re.compile(r"\d+(?:st|nd|rd|th|d)?")
_EDGE = "\"'.,;:!?()[]{}-"


def english_words(path: Path = DICTIONARY) -> set[str] | None:
    """The dictionary's words, lower-cased (None: no dictionary here)."""
    try:
        return {line.strip().lower() for line in path.read_text(encoding="utf-8", errors="ignore").splitlines()}
    except OSError:
        return None


def is_english(word: str, dictionary: set[str]) -> bool:
    """Whether a title word is English (see the module docstring for how it is looked up)."""
    parts = [part for part in word.split("-") if part.strip(_EDGE)]
    if not parts:
        return True  # a dash between words
    for part in parts:
        core = part.strip(_EDGE).lower()
        stems = {core, core.removesuffix("'s"), core.removesuffix("'"), core.replace("'", "")}
        if _NUMBER.fullmatch(core) or stems & dictionary:
            continue
        return False
    return True


def in_corpus(word: str, words: set[str], first: bool) -> bool:
    return word in words or first and word[:1].lower() + word[1:] in words


def score(titles: list[str], dictionary: set[str] | None, words: set[str]) -> dict:
    """The shares of English titles and of titles of corpus words, and the distinct titles."""
    n = max(len(titles), 1)
    english = None if dictionary is None else \
        sum(all(is_english(w, dictionary) for w in t.split()) for t in titles) / n
    corpus = sum(all(in_corpus(w, words, k == 0) for k, w in enumerate(t.split())) for t in titles) / n
    return {"english": None if english is None else round(english, 4), "corpus": round(corpus, 4),
            "distinct": len(set(titles)), "empty": sum(not t for t in titles)}


def generate(checkpoint, seeds: list[int], on: bool) -> tuple[list[str], dict]:
    """The titles of the tunes of ``seeds``, and what making them cost."""
    from folkrnn.abc.titles import title_text
    from folkrnn.decode.choice import one_blas_thread
    from folkrnn.sample import SampleConfig, sample_tunes

    engine = checkpoint.engine()
    config = SampleConfig(title_words=on)
    with one_blas_thread():
        wall, cpu = time.perf_counter(), time.process_time()
        tunes = sample_tunes(engine, checkpoint.vocabulary, seeds, config=config, workers=1)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    tokens = sum(len(t.tokens) for t in tunes)
    return [title_text(t.tokens) for t in tunes], {
        "tunes_ok": sum(t.ok for t in tunes), "tokens": tokens, "cpu_s": round(cpu, 2), "wall_s": round(wall, 2),
        "cpu_ms_per_1000_tokens": round(1e6 * cpu / max(tokens, 1), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200, help="untitled tunes to generate")
    parser.add_argument("--seed", type=int, default=1, help="the first seed")
    parser.add_argument("--model", default=None, help="an ABC model folder (default: the shipped one)")
    parser.add_argument("--words", choices=("both", "on", "off"), default="both",
                        help="the word constraint off (as before), on, or both")
    parser.add_argument("--examples", type=int, default=10, help="titles shown of each")
    args = parser.parse_args()

    from folkrnn.abc import Normalisation
    from folkrnn.abc.titles import corpus_title_words, title_text
    from folkrnn.checkpoint import load_model, shipped_model
    from folkrnn.corpus import build_corpus

    folder = Path(args.model) if args.model else shipped_model("abc")
    checkpoint = load_model(folder)
    corpus = build_corpus(None, settings=Normalisation.from_dict(checkpoint.encoding_params))
    words = set(corpus_title_words(corpus.train))
    dictionary = english_words()
    if dictionary is None:
        print(f"no {DICTIONARY}: English shares not measured (apt-get install wamerican)")
    real = [title_text(tokens) for tokens in corpus.train]
    out: dict = {"n": args.n, "seed": args.seed, "model": str(folder),
                 "model_has_words": checkpoint.title_words is not None, "dictionary": str(DICTIONARY),
                 "corpus_titles": score(real, dictionary, words)}
    print(f"model {folder} ({'with' if checkpoint.title_words is not None else 'without'} title words); "
          f"{args.n} untitled tunes from seed {args.seed}")
    ceiling = out["corpus_titles"]
    print(f"corpus training titles ({len(real):,}): english {ceiling['english']}, corpus words {ceiling['corpus']}")
    seeds = list(range(args.seed, args.seed + args.n))
    for name in (("off", "on") if args.words == "both" else (args.words,)):
        titles, cost = generate(checkpoint, seeds, name == "on")
        result = {**score(titles, dictionary, words), **cost, "examples": titles[:args.examples]}
        out[name] = result
        print(f"\nwords {name}: english {result['english']}, corpus words {result['corpus']}, "
              f"distinct {result['distinct']}/{args.n}, {cost['tunes_ok']} tunes made, "
              f"{cost['cpu_ms_per_1000_tokens']} CPU ms per 1000 tokens ({cost['tokens']:,} tokens, "
              f"{cost['cpu_s']} s CPU)")
        for title in titles[:args.examples]:
            print(f"  {title}")
    if "off" in out and "on" in out:
        out["slowdown"] = round(out["on"]["cpu_ms_per_1000_tokens"] / out["off"]["cpu_ms_per_1000_tokens"] - 1, 4)
        print(f"\nslowdown per token with the words on: {out['slowdown']:+.1%} (CPU time; one run each)")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
