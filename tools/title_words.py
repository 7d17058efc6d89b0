"""Write a model folder's title words: folkrnn/models/abc/title_words.txt for the shipped model.

The words are those of the titles of the corpus the model was trained on (its training split),
after the corpus's title cleaning (:func:`folkrnn.abc.titles.corpus_title_words`); a title the
model writes is then made of them (``folkrnn.sample``). ``folkrnn train`` writes the file into
every model folder it makes; this script writes it for a model trained before that, from the
default corpus built with the model's own normalisation settings (its config.json), and checks
that the corpus is the one the model's card names (its content hash).

Usage: ``python tools/title_words.py [--model folkrnn/models/abc] [--force]``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main(argv: list[str] | None = None) -> int:
    from folkrnn.abc import Normalisation
    from folkrnn.abc.titles import WORDS_FILE, corpus_title_words, write_words
    from folkrnn.checkpoint import read_config, shipped_model
    from folkrnn.corpus import build_corpus

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="the model folder (default: the shipped ABC model)")
    parser.add_argument("--force", action="store_true",
                        help="write the words even if the corpus is not the one the model's card names")
    args = parser.parse_args(argv)
    folder = Path(args.model) if args.model else shipped_model("abc")
    config = read_config(folder)
    if config["encoding"]["name"] != "abc":
        print(f"{folder} is not an ABC model", file=sys.stderr)
        return 1
    settings = Normalisation.from_dict(config["encoding"].get("params") or {})
    corpus = build_corpus(None, settings=settings)
    expected = (config.get("training") or {}).get("corpus_hash")
    if expected and expected != corpus.content_hash and not args.force:
        print(f"the default corpus (hash {corpus.content_hash[:12]}) is not the one {folder} was trained on "
              f"(hash {expected[:12]}); --force writes its words anyway", file=sys.stderr)
        return 1
    words = corpus_title_words(corpus.train)
    path = write_words(folder, words)
    print(f"wrote {len(words):,} words from {len(corpus.train):,} titles to {path} "
          f"({path.stat().st_size:,} bytes; {WORDS_FILE})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
