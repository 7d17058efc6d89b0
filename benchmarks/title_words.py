"""Do the titles the model writes for itself read as English? Free, of corpus words, in corpus order.

Generates N untitled tunes (default 200, seeds 1..N, the sampler's defaults, as ``folkrnn
generate`` makes them) with the shipped ABC model, in each of these modes (``--modes``):

- ``off``: no title constraint (``SampleConfig(title_words=False)``: the model spells freely);
- ``words``: each title made of the words of the training corpus' titles, in any order (a model
  folder with only the older ``title_words.txt``);
- ``order``: the words in the corpus titles' order too, the sampler's chain (``folkrnn.abc.titles``:
  the first two words those that begin a corpus title, each next word one that follows the two
  before it in one, but for one join, a word that follows the one before it; the last two words
  those that end one), a whole corpus title allowed (``title_copies=True``);
- ``novel``: as ``order``, but never a whole corpus title (the sampler's default);
- ``novel1``: as ``novel`` with the order-1 chain the sampler had before (each next word one that
  follows the word before it in a corpus title, any number of times);

and prints for each:

- ``english``: the share of titles whose every word is an English word, by a word list
  independent of our corpus (``/usr/share/dict/words``, Debian's ``wamerican``: ``apt-get install
  wamerican``). A word is looked up without the punctuation at its edges, without a possessive
  ``'s`` or ``s'``, in any case, each part of a hyphenated word on its own; numbers and ordinals
  ("1780", "55th") count as English. The corpus's own training titles are scored the same way, as
  the ceiling (the real titles hold names: "O'Carolan's Concerto");
- ``corpus``: the share of titles whose every word is a word of the corpus titles (as written;
  the first word also capitalised);
- ``chain``: the share of titles whose word order an order-1 chain allows (first, each pair, last word);
- ``chain2``: the share whose order the order-2 chain allows with at most one join (each word after
  the second one that follows the two before it in a corpus title, but one; the last two words
  those that end one): titles that are pieces of two corpus titles at most;
- ``copies``: the share of titles that are a whole corpus title (case-folded, word for word);
- ``distinct``: distinct titles among the N;
- the sampler's speed, as CPU milliseconds per 1,000 tokens (one process, one BLAS thread: what a
  worker of ``generate`` spends), the modes taking turns, ``--runs`` rounds: ``cold`` is the first
  run of a mode in the process (its trie made, and the grammar's states learnt, as in a fresh
  ``generate``: the grammar's learning depends on the tunes made, so this varies by mode more than
  the title constraint costs), ``warm`` the fastest of the later runs (same tunes, all made
  before); and the title constraint's own time (``TitleWords.restrict``: microseconds per title
  row and step, cold and warm);
- examples.

Usage: ``python benchmarks/title_words.py [--n 200] [--seed 1] [--model DIR] [--modes off,words,order,novel,novel1]
[--runs 3] [--examples 10]``; the last line is a JSON object.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

DICTIONARY = Path("/usr/share/dict/words")
MODES = ("off", "words", "order", "novel", "novel1")
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


def words_of(title: str) -> list[str]:
    """A title's words (pieces with a letter or digit), as the chain reads them."""
    return [word for word in title.split() if any(char.isalnum() for char in word)]


class Chain:
    """The corpus titles' first words, pairs (the first case-folded), last words and whole titles."""

    def __init__(self, titles: list[str]) -> None:
        sequences = [words for words in map(words_of, titles) if words]
        self.first = {words[0][0].upper() + words[0][1:] for words in sequences}
        self.pairs = {(a.lower(), b) for words in sequences for a, b in zip(words, words[1:])}
        self.last = {words[-1].lower() for words in sequences}
        self.whole = {tuple(word.lower() for word in words) for words in sequences}
        marked = [("",) + tuple(word.lower() for word in words) for words in sequences]  # "": the start
        self.triples = {tuple(words[k - 2:k + 1]) for words in marked for k in range(2, len(words))}
        self.last_two = {words[-2:] for words in marked}

    def allows(self, title: str) -> bool:
        words = words_of(title)
        return not words or (words[0] in self.first and words[-1].lower() in self.last
                             and all((a.lower(), b) in self.pairs for a, b in zip(words, words[1:])))

    def allows2(self, title: str, joins: int = 1) -> bool:
        words = ("",) + tuple(word.lower() for word in words_of(title))
        if len(words) == 1:
            return True
        steps = sum(words[k - 2:k + 1] not in self.triples for k in range(2, len(words)))
        return self.allows(title) and words[-2:] in self.last_two and steps <= joins

    def copies(self, title: str) -> bool:
        return tuple(word.lower() for word in words_of(title)) in self.whole


def score(titles: list[str], dictionary: set[str] | None, words: set[str], chain: Chain) -> dict:
    """The shares of English titles, of titles of corpus words, in the chain's order and copied,
    and the distinct titles."""
    n = max(len(titles), 1)
    english = None if dictionary is None else \
        sum(all(is_english(w, dictionary) for w in t.split()) for t in titles) / n
    corpus = sum(all(in_corpus(w, words, k == 0) for k, w in enumerate(t.split())) for t in titles) / n
    return {"english": None if english is None else round(english, 4), "corpus": round(corpus, 4),
            "chain": round(sum(map(chain.allows, titles)) / n, 4),
            "chain2": round(sum(map(chain.allows2, titles)) / n, 4),
            "copies": round(sum(map(chain.copies, titles)) / n, 4),
            "distinct": len(set(titles)), "empty": sum(not t for t in titles)}


class Timer:
    """Time spent in the title constraint (``TitleWords.restrict``), and the title rows it saw."""

    def __init__(self) -> None:
        from folkrnn.abc.titles import TitleWords

        self.seconds, self.rows = 0.0, 0
        restrict = TitleWords.restrict

        def timed(words, masks, at, histories) -> None:
            start = time.process_time()
            restrict(words, masks, at, histories)
            self.seconds += time.process_time() - start
            self.rows += len(at)

        TitleWords.restrict = timed


def generate(checkpoint, seeds: list[int], mode: str, timer: Timer | None = None,
             max_title: int = 60) -> tuple[list[str], dict]:
    """The titles of the tunes of ``seeds`` in one mode, and what making them cost."""
    import folkrnn.sample as sampler
    from folkrnn.abc.titles import title_text, trie_for
    from folkrnn.decode.choice import one_blas_thread
    from folkrnn.sample import SampleConfig, sample_tunes

    engine = checkpoint.engine()
    if mode == "words":
        engine.titles = None  # the words alone, as a folder with only title_words.txt has them
    config = SampleConfig(title_words=mode != "off", title_copies=mode == "order", max_title=max_title)
    seconds, rows = (timer.seconds, timer.rows) if timer else (0.0, 0)
    if mode == "novel1":  # the order-1 chain: the sampler's trie made as it was before
        sampler.trie_for = functools.partial(trie_for, order=1, joins=0)
    try:
        with one_blas_thread():
            wall, cpu = time.perf_counter(), time.process_time()
            tunes = sample_tunes(engine, checkpoint.vocabulary, seeds, config=config, workers=1)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    finally:
        sampler.trie_for = trie_for
    tokens = sum(len(t.tokens) for t in tunes)
    seconds, rows = (timer.seconds - seconds, timer.rows - rows) if timer else (0.0, 0)
    return [title_text(t.tokens) for t in tunes], {
        "tunes_ok": sum(t.ok for t in tunes), "tokens": tokens, "cpu_s": round(cpu, 2), "wall_s": round(wall, 2),
        "cpu_ms_per_1000_tokens": round(1e6 * cpu / max(tokens, 1), 1),
        "title_us_per_row_step": round(1e6 * seconds / rows, 2) if rows else None,
        "title_cpu_share": round(seconds / cpu, 4) if cpu else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200, help="untitled tunes to generate")
    parser.add_argument("--seed", type=int, default=1, help="the first seed")
    parser.add_argument("--model", default=None, help="an ABC model folder (default: the shipped one)")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of {', '.join(MODES)}")
    parser.add_argument("--runs", type=int, default=3,
                        help="rounds of runs of the modes (the first: cold; the rest: warm)")
    parser.add_argument("--examples", type=int, default=10, help="titles shown of each")
    args = parser.parse_args()
    modes = [mode for mode in args.modes.split(",") if mode]
    if not modes or set(modes) - set(MODES):
        parser.error(f"--modes: choose among {', '.join(MODES)}")

    from folkrnn.abc import Normalisation
    from folkrnn.abc.titles import corpus_title_words, corpus_titles, title_text
    from folkrnn.checkpoint import load_model, shipped_model
    from folkrnn.corpus import build_corpus

    folder = Path(args.model) if args.model else shipped_model("abc")
    checkpoint = load_model(folder)
    corpus = build_corpus(None, settings=Normalisation.from_dict(checkpoint.encoding_params))
    words = set(corpus_title_words(corpus.train))
    chain = Chain(corpus_titles(corpus.train))
    dictionary = english_words()
    if dictionary is None:
        print(f"no {DICTIONARY}: English shares not measured (apt-get install wamerican)")
    real = [title_text(tokens) for tokens in corpus.train]
    has = "titles" if checkpoint.titles is not None else "words" if checkpoint.title_words is not None else "none"
    out: dict = {"n": args.n, "seed": args.seed, "model": str(folder), "model_has": has,
                 "dictionary": str(DICTIONARY), "corpus_titles": score(real, dictionary, words, chain)}
    print(f"model {folder} (title file: {has}); {args.n} untitled tunes from seed {args.seed}")
    ceiling = out["corpus_titles"]
    print(f"corpus training titles ({len(real):,}, {ceiling['distinct']:,} distinct): english {ceiling['english']}, "
          f"corpus words {ceiling['corpus']}")
    usable = [mode for mode in modes if mode == "off" or mode == "words" and has != "none" or has == "titles"]
    for mode in sorted(set(modes) - set(usable)):
        print(f"\n{mode}: not measured (the model folder has no {'titles' if has == 'words' else 'title file'})")
    seeds = list(range(args.seed, args.seed + args.n))
    timer = Timer()
    # warm the process (NumPy, BLAS) on a grammar of its own (another title length), not measured
    generate(checkpoint, list(range(10_000, 10_010)), "off", max_title=59)
    runs: dict[str, list] = {mode: [] for mode in usable}
    for _ in range(max(args.runs, 1)):
        for mode in usable:
            runs[mode].append(generate(checkpoint, seeds, mode, timer))
    for mode in usable:
        titles, cold = runs[mode][0]
        later = [cost for _, cost in runs[mode][1:]]
        warm = min(later, key=lambda cost: cost["cpu_ms_per_1000_tokens"]) if later else None
        result = {**score(titles, dictionary, words, chain), "cold": cold, "warm": warm,
                  "examples": titles[:args.examples]}
        out[mode] = result
        print(f"\n{mode}: english {result['english']}, corpus words {result['corpus']}, chain order "
              f"{result['chain']} (order 2, one join: {result['chain2']}), copies {result['copies']}, "
              f"distinct {result['distinct']}/{args.n}, "
              f"{cold['tunes_ok']} tunes made ({cold['tokens']:,} tokens)")
        for name, cost in (("cold", cold), ("warm", warm)):
            if cost is not None:
                title = "" if mode == "off" else \
                    f"; titles {cost['title_us_per_row_step']} us per title row and step " \
                    f"({cost['title_cpu_share']:.1%} of the CPU time)"
                print(f"  {name}: {cost['cpu_ms_per_1000_tokens']} CPU ms per 1000 tokens ({cost['cpu_s']} s){title}")
        for title in titles[:args.examples]:
            print(f"  {title}")
    if "off" in out:
        for name in ("cold", "warm"):
            base = out["off"][name]
            if base is None:
                continue
            out[f"slowdown_{name}"] = {mode: round(out[mode][name]["cpu_ms_per_1000_tokens"]
                                                   / base["cpu_ms_per_1000_tokens"] - 1, 4)
                                       for mode in usable if mode != "off"}
            print(f"\nCPU per token against off, {name}: "
                  + ", ".join(f"{mode} {value:+.1%}" for mode, value in out[f"slowdown_{name}"].items()))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
