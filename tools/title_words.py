"""Write a model folder's titles: folkrnn/models/abc/titles.txt for the shipped model.

The titles are those of the corpus the model was trained on (its training split), after the
corpus's title cleaning, distinct and sorted, each with the rhythms of its tunes after a tab
(:func:`folkrnn.abc.titles.corpus_title_rhythms`); a title the model writes is then made of their
words, in their order, and of the titles of its dance's tunes (``folkrnn.sample``). ``folkrnn
train`` writes the file into every model folder it makes; this script writes it for a model
trained before that, from the default corpus built with the model's own normalisation settings
(its config.json), and checks that the corpus is the one the model's card names (its content
hash). The older word file (``title_words.txt``: the words alone) is removed: the titles hold them.

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
    from folkrnn.abc.titles import TITLES_FILE, WORDS_FILE, corpus_title_rhythms, words_of_titles, write_titles
    from folkrnn.checkpoint import read_config, shipped_model
    from folkrnn.corpus import build_corpus

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="the model folder (default: the shipped ABC model)")
    parser.add_argument("--force", action="store_true",
                        help="write the titles even if the corpus is not the one the model's card names")
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
              f"(hash {expected[:12]}); --force writes its titles anyway", file=sys.stderr)
        return 1
    titles = corpus_title_rhythms(corpus.train)
    path = write_titles(folder, titles)
    (folder / WORDS_FILE).unlink(missing_ok=True)
    print(f"wrote {len(titles):,} distinct titles ({len(words_of_titles(titles)):,} words) of "
          f"{len(corpus.train):,} tunes to {path} ({path.stat().st_size:,} bytes; {TITLES_FILE})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
