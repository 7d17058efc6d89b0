"""Title words: a tune's own title made of the words of its model's corpus titles, in their order.

A model that writes a title writes it a character at a time (:mod:`folkrnn.abc.tokens`: one token
per character, ``▁`` for a space), and left to itself spells words no one has heard of ("Lounan's
Jick"), or puts real words in no order ("The the Push of Old Mass Listed"). Its training corpus'
titles give the words it may use and the order they may come in: a model folder keeps the titles,
one a line (:data:`TITLES_FILE`, :func:`corpus_titles`: as written after the corpus's title
cleaning; each followed by a tab and the rhythms of its tunes, :func:`corpus_title_rhythms`, so that
a reel's title is made of the titles of dance tunes, not of airs': ``folkrnn.sample``), and
:class:`TitleTrie` lets a title the model writes through them as an order-2 chain over their words,
a character at a time, with one step of order 1:

- a word is a piece of a title between spaces, as written, that holds a letter or digit
  ("O'Neill's", "Reel", "Billy,"; a dash is no word, and the words either side of it are
  neighbours);
- the first word is one that begins some corpus title (capitalised, as title cleaning does, and
  beginning with a letter or digit, as the grammar asks), the second one that follows it at the
  start of some corpus title;
- each next word is one that follows the two words before it in some corpus title: the successors
  are looked up case-folded ("The Road" and "the road" have one set: the words as written after
  either), and written as the corpus writes them there;
- once in a title (a *join*), a word may instead be one that follows the word before it in some
  corpus title: "The Reel" + "Reel of Tulloch" (``joins``, default 1);
- the title ends (the first header token) only after two words that end some corpus title (a title
  of one word: after a word that is a whole corpus title);
- with ``novel``, a title may not be a whole corpus title (case-folded, word for word): the model
  writes its own. A title that begins as a corpus title leaves it, or goes on past it.

An order-1 chain (each next word one that follows the word before it, joins without end) strings
pieces of titles together at every shared word: the shipped model wrote "Pat Carney's Reel of the
Blood-Red Rose of the Hill", "Let Us a piece than a Moment", "The Jolly Clam-Digger's Reel of
Grandtully's Strathspey". With no join at all the titles read as English but repeat: of 500 tunes
(``generate --seed 2024``) 376 titles were distinct, against 483 with order 1; one join gives 465
("The Runaway Bride of Malahide", "The Victor's Return from Fingal", "Planxty Mary Ann"), and 413-430
of the dance tunes' titles alone (the sampler's default: 4 seeds; the repeated ones are short, "Quick
March", "The Bride"). ``order=1`` keeps the older chain; ``forbidden`` titles, not in the chain, are
never written whole either (``novel``: a corpus title of another rhythm).

The model chooses among what is allowed, and nothing allowed is a dead end: a character is
allowed only if a whole admissible title through it ends within the title characters left
(``max_title``). Each context (the last word or two, and the joins taken) knows the fewest
characters that end a title after it (a shortest path over the chain, to the contexts that end
titles); a word may end with ``▁`` only where one of its successors, and what must follow that,
fits after it; with ``novel``, the same count is kept for each beginning of a corpus title, where
ending is forbidden at its whole.

An older model folder holds only the words (:data:`WORDS_FILE`, one a line: words, in any order,
each of which may end the title); the trie then keeps to the words alone, and a folder with
neither file leaves titles free.

:class:`TitleWords` applies a trie to a batch: the rows whose grammar state is in the title (the
title's states are those of the grammar's start) get the mask of the state their title reaches,
one lookup a row: the states (a node of the trie of a word's possible successors, and with
``novel`` the corpus titles the title so far begins) and their masks are worked out once, when a
title first reaches them (and once for each count of characters left near the length limit).
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import os
import re
import threading
import weakref
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from folkrnn.errors import ModelError
from folkrnn.files import write_atomic

__all__ = ["TITLES_FILE", "WORDS_FILE", "MAX_WORDS_BYTES", "title_text", "corpus_title_words", "corpus_titles",
           "corpus_title_rhythms", "words_of_titles", "format_words", "read_words", "write_words", "read_titles",
           "read_title_file", "write_titles",
           "TitleTrie", "TitleWords", "trie_for"]

TITLES_FILE = "titles.txt"  # in a model folder: its corpus' titles, one a line (their words and order)
WORDS_FILE = "title_words.txt"  # in an older model folder: the words of its corpus' titles, one a line
MAX_WORDS_BYTES = 4 * 2**20  # the largest title or word file a model folder may hold
SPACE = "\u2581"  # a space inside a title (folkrnn.abc.tokens.SPACE)
_BARE = re.compile(r"^[^\w\n]+$", re.MULTILINE)  # a word of no letter or digit (a dash)
_ALNUM = re.compile(r"[^\W_]")  # a letter or digit (str.isalnum)
_ALNUM_FIRST = re.compile(r"^[^\W_].*$", re.MULTILINE)  # a word that begins with a letter or digit
_FAR = 1 << 30  # characters to a title's end where there is no end
_UNMADE = -2  # a context whose root no title has reached yet


def _shortest(edges: dict, start: dict) -> dict:
    """The fewest characters from each node to an end: ``edges`` node -> [(next node, characters)],
    ``start`` node -> what ending there costs (0 at a title's end, or a way out of the graph).
    Dijkstra's shortest paths, backwards from the ends; nodes with no way to an end are left out."""
    before: dict = {}
    for node, nexts in edges.items():
        for nxt, step in nexts:
            before.setdefault(nxt, []).append((node, step))
    best = dict(start)
    heap = [(distance, n, node) for n, (node, distance) in enumerate(start.items())]
    heapq.heapify(heap)
    counter = len(heap)
    while heap:
        distance, _, node = heapq.heappop(heap)
        if distance > best.get(node, _FAR):
            continue
        for previous, step in before.get(node, ()):
            if distance + step < best.get(previous, _FAR):
                best[previous] = distance + step
                heapq.heappush(heap, (distance + step, counter, previous))
                counter += 1
    return best


def title_text(tokens: Sequence[str]) -> str:
    """The title of a token sequence (``<s>``, its characters, then the header): spaces as spaces."""
    chars = []
    for token in tokens[1:] if tokens and tokens[0] == "<s>" else tokens:
        if token != SPACE and len(token) != 1:
            break
        chars.append(" " if token == SPACE else token)
    return "".join(chars)


def _is_word(piece: str) -> bool:
    return _ALNUM.search(piece) is not None


def corpus_title_words(tunes: Iterable[Sequence[str]]) -> list[str]:
    """The words of the titles of ``tunes`` (token sequences, as a corpus holds them), sorted: each
    piece between spaces, as written, that holds a letter or digit."""
    return words_of_titles(title_text(tokens) for tokens in tunes)


def words_of_titles(titles: Iterable[str]) -> list[str]:
    """The words of ``titles`` (as :func:`corpus_title_words` takes them), sorted."""
    words = set()
    for title in titles:
        words.update(word for word in title.split() if _is_word(word))
    return sorted(words)


def corpus_titles(tunes: Iterable[Sequence[str]]) -> list[str]:
    """The distinct titles of ``tunes`` that hold a word, sorted (single spaces)."""
    return sorted(corpus_title_rhythms(tunes))


def corpus_title_rhythms(tunes: Iterable[Sequence[str]]) -> dict[str, tuple[str, ...]]:
    """The distinct titles of ``tunes`` that hold a word, each with the rhythms of its tunes (their
    ``R:`` tokens' names, sorted; "other" for a tune with none), in title order."""
    rhythms: dict[str, set[str]] = {}
    for tokens in tunes:
        title = " ".join(title_text(tokens).split())
        if any(map(_is_word, title.split())):
            rhythm = next((token[2:] for token in tokens if token.startswith("R:")), "other")
            rhythms.setdefault(title, set()).add(rhythm)
    return {title: tuple(sorted(rhythms[title])) for title in sorted(rhythms)}


def format_words(words: Iterable[str]) -> str:
    """The text of a word or title file: one a line."""
    return "".join(f"{word}\n" for word in words)


def _write(folder: str | os.PathLike, name: str, lines: Iterable[str]) -> Path:
    path = Path(folder) / name
    write_atomic(path, format_words(lines).encode("utf-8"), error=ModelError)
    return path


def write_words(folder: str | os.PathLike, words: Iterable[str]) -> Path:
    """Write :data:`WORDS_FILE` into a model folder (atomically); returns its path."""
    return _write(folder, WORDS_FILE, words)


def write_titles(folder: str | os.PathLike, titles: Iterable[str] | Mapping[str, Sequence[str]]) -> Path:
    """Write :data:`TITLES_FILE` into a model folder (atomically); returns its path. ``titles``
    with their rhythms (:func:`corpus_title_rhythms`) writes each after its title and a tab
    ("The Kesh\tjig"), as :func:`read_title_file` reads them."""
    if isinstance(titles, Mapping):
        titles = [f"{title}\t{','.join(rhythms)}" if rhythms else title for title, rhythms in titles.items()]
    return _write(folder, TITLES_FILE, titles)


def _read(folder: str | os.PathLike, name: str, tabbed: bool = False) -> tuple[str, ...] | None:
    """The non-empty lines of a model folder's file (spaces made single; with ``tabbed``, either
    side of a line's first tab on its own, the tab kept), or None when it has none."""
    path = Path(folder) / name
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None
    except OSError as error:
        raise ModelError(f"cannot read {path}: {error.strerror or error}") from None
    if size > MAX_WORDS_BYTES:
        raise ModelError(f"{path} is {size:,} bytes; a title file holds at most {MAX_WORDS_BYTES:,}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ModelError(f"{path} is not UTF-8 text") from None
    except OSError as error:
        raise ModelError(f"cannot read {path}: {error.strerror or error}") from None
    lines = []
    for line in text.splitlines():
        first, tab, rest = line.partition("\t") if tabbed else (line, "", "")
        first = " ".join(first.split())
        if first:  # (a line with nothing before its tab holds no title)
            lines.append(first + (tab + " ".join(rest.split()) if tab else ""))
    return tuple(lines)


def read_words(folder: str | os.PathLike) -> tuple[str, ...] | None:
    """The words of a model folder's :data:`WORDS_FILE`, or None when it has none.

    Raises ModelError for a file that is too large, not UTF-8, or holds a word with a space."""
    words = _read(folder, WORDS_FILE)
    bad = next((word for word in words or () if " " in word), None)
    if bad is not None:
        raise ModelError(f"{Path(folder) / WORDS_FILE}: a title word holds a space: {bad!r}")
    return words


def read_titles(folder: str | os.PathLike) -> tuple[str, ...] | None:
    """The titles of a model folder's :data:`TITLES_FILE`, or None when it has none.

    Raises ModelError for a file that is too large or not UTF-8."""
    read = read_title_file(folder)
    return None if read is None else read[0]


def read_title_file(folder: str | os.PathLike) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]] | None] | None:
    """A model folder's :data:`TITLES_FILE` in one reading: its titles (each once, in order) and the
    rhythms it gives them (after a tab: "The Kesh\tjig", several comma-separated; None when it gives
    none, a folder written before they were kept: a title written without them may be of any
    rhythm), or None when the folder has no such file.

    Raises ModelError for a file that is too large or not UTF-8."""
    lines = _read(folder, TITLES_FILE, tabbed=True)
    if lines is None:
        return None
    titles: dict[str, None] = {}
    rhythms: dict[str, tuple[str, ...]] = {}
    for line in lines:
        title, _, names = line.partition("\t")
        titles[title] = None
        names = tuple(name for name in (name.strip() for name in names.split(",")) if name)
        if names:
            rhythms[title] = names
    return tuple(titles), rhythms or None


class TitleTrie:
    """The title words and their order as an automaton over a vocabulary's tokens, with each state's
    allowed tokens.

    The words are kept in tries: one of the words a title may begin with (capitalised, beginning
    with a letter or digit), and one for each context (the last word, or two: ``order``) of the
    words that may follow it (as written).
    A state is a node of one of these tries (the characters of the word being written) and, with
    ``novel``, the corpus titles the title so far begins (-1: none). ``state(ids)`` is the state a
    title so far reaches; ``mask(state, left)`` the ``(V,)`` bool row of the tokens allowed there
    with ``left`` title characters still to write: the characters that continue a word through
    which a title ends within ``left``; where the node ends a word, ``▁`` (when one of its
    successors, and what must follow it, fits after it) and, when the word may end the title, every
    token that is not a title character (the title's end). A title with a character the vocabulary
    lacks (or ``%``, ``\\``) is left out.

    With ``titles`` None the trie keeps to ``words`` alone: any word may follow any, and end the
    title (a model folder of :data:`WORDS_FILE`).

    The states grow as titles reach them: a node is a range of its trie's sorted words (those its
    letters begin), and its children and its mask are worked out the first time a title gets
    there (a few words' work; thousands of words cost nothing until a title reads them), then kept.

    Parameters
    ----------
    words
        The words (as :func:`corpus_title_words` gives them); read only when ``titles`` is None.
    tokens
        The vocabulary's tokens in id order.
    titles
        The corpus titles (as :func:`corpus_titles` gives them), or None: words alone.
    novel
        Forbid a title that is a whole corpus title (with ``titles`` only).
    order
        With ``titles``: the words that decide the next one, the last two (2: each next word one
        that follows those two in some corpus title, and the first two words those of a title's
        start) or the last one (1).
    joins
        With order 2: the steps of order 1 a title may take (0-2).
    forbidden
        With ``novel``: more titles a title may not be, whole (the rest of a corpus whose ``titles``
        are some of its titles: those of one rhythm).
    """

    START = 0  # the state of a title not yet begun
    FIRST = 0  # the root of the first words (a node)

    def __init__(self, words: Iterable[str], tokens: Sequence[str], titles: Iterable[str] | None = None,
                 novel: bool = False, order: int = 2, joins: int = 1, forbidden: Iterable[str] = ()) -> None:
        if order not in (1, 2) or joins not in (0, 1, 2):
            raise ValueError(f"a title chain is of order 1 or 2, with 0-2 joins, not {order} and {joins}")
        self.ident = id(self)  # what it was made of, where trie_for made it (a grammar's key holds it)
        ids = {token: index for index, token in enumerate(tokens)
               if len(token) == 1 and token not in "\n\t%\\" and not token.isspace()}
        self._ids = ids
        self.size = len(tokens)
        self.space = next((index for index, token in enumerate(tokens) if token == SPACE), None)
        # tokens that are not title characters: the title ends with one of them
        self.other = np.array([not (len(token) == 1 or token == SPACE) for token in tokens], bool)
        self.novel = bool(novel) and titles is not None
        # per node: its root (which word list), the range of the words it begins there, its depth,
        # the word it ends (the context it reaches, -1: none), its children (None until a title
        # reaches it)
        self._root: list[int] = []
        self._lo: list[int] = []
        self._hi: list[int] = []
        self._depth: list[int] = []
        self._ends_word: list[int] = []
        self._children: list[dict[int, int] | None] = []
        # per root: its words (sorted), the context each reaches, their costs (length and the fewest
        # characters after them), where each context sits in it (made when needed), its node
        self._lists: list[list[str]] = []
        self._fids: list[list[int]] = []
        self._cost: list[np.ndarray] = []
        self._where: list[dict[int, list[int]] | None] = []
        self._root_node: list[int] = []
        if titles is None:
            self._words_alone(words)
        else:
            self._chain(titles, order, joins, forbidden)
        # per state: its node, its corpus title (-1: none), its transitions (token -> state; None
        # until a title reaches it), the tokens it may allow with the fewest characters left that
        # allow each, whether it may end the title, its mask with room to spare, and that room
        self._key: dict[tuple[int, int], int] = {}
        self._node: list[int] = []
        self._title: list[int] = []
        self._trans: list[dict[int, int] | None] = []
        self._limits: list[tuple[np.ndarray, np.ndarray, bool] | None] = []
        self._full: list[np.ndarray | None] = []
        self._need: list[int] = []
        self._near: dict[tuple[int, int], np.ndarray] = {}
        self._costs: dict[int, np.ndarray] = {}  # a corpus title -> the costs of the words after it
        self._rest: dict[int, int] = {}  # a corpus title -> the fewest characters that end a title after it
        self._starts: dict[tuple[int, ...], int] = {}  # a title up to a space -> the state it reaches
        self._lock = threading.RLock()  # a server's threads may reach a new state together
        self._state(self.FIRST, 0 if self.novel else -1)

    def _words_alone(self, words: Iterable[str]) -> None:
        """Words in any order: one class of word (fold id 0), after which every word may come, and
        the title may end."""
        ids = self._ids
        # the words as written (a sorted list stays in order, and sorts in one pass): each of title
        # characters only, and with a letter or digit
        pieces = "\n".join(words).split()
        text = "\n".join(pieces)
        if not ids.keys() >= set(text) - {"\n"}:
            pieces = [word for word in pieces if ids.keys() >= set(word)]
            text = "\n".join(pieces)
        bare = set(_BARE.findall(text))
        later = sorted(dict.fromkeys(word for word in pieces if word not in bare) if bare else dict.fromkeys(pieces))
        # a title's first word: capitalised, as title cleaning writes it, and a letter or digit first
        starts = _ALNUM_FIRST.findall("\n".join(later))
        small = [word for word in starts if word[0].islower()]
        capital = [word[0].upper() + word[1:] for word in small if word[0].upper() in ids]
        first = list(dict.fromkeys(sorted([word for word in starts if not word[0].islower()] + capital)
                                   if small else starts))
        self.words = len(later)
        self._can_end = [True]
        self._tail = [0]  # per context: the fewest characters that end a title after it
        self._add_root(first, [0] * len(first))
        self._add_root(later, [0] * len(later))
        self._after = [1 if later and self.space is not None else -1]  # per context: its successors' root

    def _chain(self, titles: Iterable[str], order: int, joins: int, forbidden: Iterable[str] = ()) -> None:
        """The chain of ``order`` (1 or 2, with up to ``joins`` steps of order 1) over the words of
        ``titles``: what the titles say, and the fewest characters that end a title after each
        context. A context's words (its root) are sorted out the first time a title reaches it
        (:meth:`_root_after`): after a common word ("the", "of") a step of order 1 may take any of
        a thousand words, and a shipped model's titles have thousands of such contexts."""
        ids = self._ids
        titles = [title.split() for title in titles]
        # each distinct piece: its fold id, or None (no word: a dash; or a character the vocabulary lacks)
        fold: dict[str, int] = {}
        piece: dict[str, int | None] = {}
        for word in {word for words in titles for word in words}:
            piece[word] = fold.setdefault(word.lower(), len(fold)) \
                if _is_word(word) and ids.keys() >= set(word) else None
        sequences = []
        spaced = self.space is not None
        for title in titles:
            fids = [piece[word] for word in title]
            if None in fids:
                title = [word for word in title if _is_word(word)]
                fids = [piece[word] for word in title]
                if None in fids:
                    continue  # a word the model cannot write
            if not spaced:
                title, fids = title[:1], fids[:1]  # no space: titles of one word
            if title:
                sequences.append((title, fids))
        self.words = len({word for word, f in piece.items() if f is not None})
        # what the corpus titles say: the words after each word (order 1) and after each pair of words
        # (-1 first: the title's start), and the words and pairs that end a title
        starts: set[str] = set()
        after1: dict[int, set[str]] = {}
        after2: dict[tuple[int, int], set[str]] = {}
        ends1: set[int] = set()
        ends2: set[tuple[int, int]] = set()
        pairs: set[tuple[int, int]] = set()  # every pair of words a title writes (-1 first: its start)
        for words, fids in sequences:
            first = words[0]
            if first[0].isalnum():
                if first[0].islower():
                    first = first[0].upper() + first[1:]
                if first[0] in ids and first.lower() in fold:
                    starts.add(first)
            # a word does not follow itself: an order-1 chain with that step ("Row dow dow") can
            # write the word over and over ("Row dow dow dow dow ...") until the title is full
            for k in range(1, len(words)):
                if fids[k] != fids[k - 1]:
                    after1.setdefault(fids[k - 1], set()).add(words[k])
                    after2.setdefault((-1 if k == 1 else fids[k - 2], fids[k - 1]), set()).add(words[k])
            ends1.add(fids[-1])
            ends2.add((-1 if len(fids) == 1 else fids[-2], fids[-1]))
            pairs.update(zip([-1] + fids[:-1], fids))
        self._fold, self._joins = fold, joins
        self._after1, self._after2 = after1, after2
        # the fewest characters that end a title after each context: shortest paths back from the ends
        if order == 1:
            edges = {f: [(fold[word.lower()], 1 + len(word)) for word in words] for f, words in after1.items()}
            self._tails = [_shortest(edges, {f: 0 for f in ends1})]
        else:
            edges = {pair: [((pair[1], fold[word.lower()]), 1 + len(word)) for word in words]
                     for pair, words in after2.items()}
            tails = [_shortest(edges, {pair: 0 for pair in ends2})]  # with no join left
            self._exits: list[dict[int, list[tuple[int, str]]]] = []
            for _ in range(joins):  # with one join more left: a step of order 1 may come first
                later = tails[0]
                # per word: the words a join may take after it, by what ending a title through them costs
                exits = {f: sorted((1 + len(word) + later.get((f, fold[word.lower()]), _FAR), word)
                                   for word in words) for f, words in after1.items()}
                self._exits.insert(0, exits)  # _exits[j]: joining with j joins taken
                start = {pair: 0 for pair in ends2}
                for pair in pairs:
                    done = after2.get(pair, ())
                    cost = next((cost for cost, word in exits.get(pair[1], ()) if word not in done), _FAR)
                    if cost < start.get(pair, _FAR):
                        start[pair] = cost
                tails.insert(0, _shortest(edges, start))
            self._tails = tails  # tails[j]: with j joins taken
        self._ends1, self._ends2 = ends1, ends2
        self._contexts: dict[tuple[int, ...], int] = {}
        self._context_keys: list[tuple[int, ...]] = []
        self._can_end: list[bool] = []
        self._tail: list[int] = []
        self._after: list[int] = []
        # the first words, each with the context it reaches
        self._add_root(*self._reachable(
            (word, self._context((-1, fold[word.lower()], 0) if order == 2 else (fold[word.lower()],)))
            for word in starts))
        # the corpus titles as a trie of contexts (with novel): each one's next words, and whether
        # it is a whole title
        self._next: list[dict[int, int]] = [{}]
        self._whole = [False]
        self._last = [-1]
        if self.novel:
            # and the forbidden titles a title could write (every word one of the chain's). A title
            # is followed through the contexts the chain would write it in: with order 2, at each
            # step either of the two words before or a join, so every way of placing its joins
            extra = [fids for fids in ([fold.get(word.lower()) for word in title.split() if _is_word(word)]
                                       for title in forbidden) if fids and None not in fids]
            for fids in [fids for _, fids in sequences] + extra:
                steps = range(1, len(fids))
                ways = [()] if order == 1 or not joins else [
                    placed for count in range(min(joins, len(fids) - 1) + 1)
                    for placed in itertools.combinations(steps, count)]
                for placed in ways:
                    at = 0
                    for k, f in enumerate(fids):
                        taken = sum(1 for step in placed if step <= k)
                        c = self._context((f,) if order == 1 else (-1 if k == 0 else fids[k - 1], f, taken))
                        nxt = self._next[at].get(c)
                        if nxt is None:
                            nxt = self._next[at][c] = len(self._next)
                            self._next.append({})
                            self._whole.append(False)
                            self._last.append(c)
                        at = nxt
                    self._whole[at] = True

    def _context(self, key: tuple[int, ...]) -> int:
        """The id of a context: ``(f,)`` (order 1: the last word's fold id) or ``(before, f, joins
        taken)`` (order 2), given one the first time it is asked for."""
        c = self._contexts.get(key)
        if c is None:
            c = self._contexts[key] = len(self._context_keys)
            self._context_keys.append(key)
            if len(key) == 1:
                self._can_end.append(key[0] in self._ends1)
                self._tail.append(self._tails[0].get(key[0], _FAR))
            else:
                self._can_end.append(key[:2] in self._ends2)
                self._tail.append(self._tails[key[2]].get(key[:2], _FAR))
            self._after.append(_UNMADE)
        return c

    def _reachable(self, pairs: Iterable[tuple[str, int]]) -> tuple[list[str], list[int]]:
        """The (word, context) pairs through which a title ends, sorted by word."""
        kept = sorted((word, c) for word, c in pairs if self._tail[c] < _FAR)
        return [word for word, _ in kept], [c for _, c in kept]

    def _root_after(self, c: int) -> int:
        """The root of the words that may follow context ``c`` (-1: none through which a title ends),
        sorted out the first time a title reaches it."""
        root = self._after[c]
        if root != _UNMADE:
            return root
        key, fold, context = self._context_keys[c], self._fold, self._context
        if len(key) == 1:
            pairs = [(word, context((fold[word.lower()],))) for word in self._after1.get(key[0], ())]
        else:
            before, f, joined = key
            words = self._after2.get((before, f), set())
            pairs = [(word, context((f, fold[word.lower()], joined))) for word in words]
            if joined < self._joins:
                pairs += [(word, context((f, fold[word.lower()], joined + 1)))
                          for word in self._after1.get(f, ()) if word not in words]
        words, contexts = self._reachable(pairs)
        root = self._after[c] = self._add_root(words, contexts) if words else -1
        return root

    def _add_root(self, words: list[str], contexts: list[int]) -> int:
        """A new root of ``words`` (sorted), each reaching its context: the root's id (its node made too)."""
        root = len(self._lists)
        self._lists.append(words)
        self._fids.append(contexts)
        self._cost.append(np.array([len(word) + self._tail[c] for word, c in zip(words, contexts)], np.int32))
        self._where.append(None)
        self._root_node.append(len(self._root))
        self._root.append(root)
        self._lo.append(0)
        self._hi.append(len(words))
        self._depth.append(0)
        self._ends_word.append(-1)
        self._children.append(None)
        return root

    def __len__(self) -> int:
        return self.words

    # --- the corpus titles a title so far begins (novel) ------------------------------------------

    def _root_of(self, title: int) -> int:
        """The root of the words after a corpus title's beginning (-1: none)."""
        return self.FIRST if title == 0 else self._root_after(self._last[title])

    def _costs_after(self, title: int) -> np.ndarray:
        """The costs of the words of the root after ``title`` (-1: no corpus title, or the root's own
        costs), with the words that go on along a corpus title costing what ends it afresh."""
        if title < 0:
            raise ValueError(title)
        cost = self._costs.get(title)
        if cost is not None:
            return cost
        root = self._root_of(title)
        cost = base = self._cost[root]
        where = self._where[root]
        if where is None:
            where = self._where[root] = {}
            for k, f in enumerate(self._fids[root]):
                where.setdefault(f, []).append(k)
        words = self._lists[root]
        for f, nxt in self._next[title].items():
            rest = self._end_after(nxt)
            for k in where.get(f, ()):
                value = min(len(words[k]) + rest, _FAR)
                if value != base[k]:
                    if cost is base:
                        cost = base.copy()
                    cost[k] = value
        self._costs[title] = cost
        return cost

    def _end_after(self, title: int) -> int:
        """The fewest characters that end an admissible title after a corpus title's beginning (its
        words written, not the space after them)."""
        rest = self._rest.get(title)
        if rest is None:
            c = self._last[title]
            rest = 0 if self._can_end[c] and not self._whole[title] else _FAR
            if rest:
                rest = min(self._on_after(title), _FAR)
            self._rest[title] = rest
        return rest

    def _on_after(self, title: int) -> int:
        """The fewest characters that end an admissible title after a corpus title's beginning, going
        on with a space and another word. With order 2 it is worked out without the root of the
        words after it (the novelty count reaches the beginnings of thousands of corpus titles, and
        a root with its joins holds up to a thousand words): the words of order 2 (a few) one by one,
        and the cheapest join that is not one of them."""
        c = self._last[title]
        key = self._context_keys[c]
        if len(key) != 3:
            root = self._root_after(c)
            return _FAR if root < 0 else 1 + int(self._costs_after(title).min())
        before, f, joined = key
        goes_on = self._next[title]
        best = _FAR
        words = self._after2.get((before, f), ())
        for word in words:
            after = self._context((f, self._fold[word.lower()], joined))
            nxt = goes_on.get(after)
            best = min(best, 1 + len(word) + (self._end_after(nxt) if nxt is not None else self._tail[after]))
        if joined < self._joins:  # a join: the cheapest that leaves the corpus titles, or one that goes on along one
            contexts = self._contexts
            best = min(best, next((cost for cost, word in self._exits[joined].get(f, ()) if word not in words
                                   and contexts.get((f, self._fold[word.lower()], joined + 1)) not in goes_on), _FAR))
            for after, nxt in goes_on.items():
                key = self._context_keys[after]
                if key[0] == f and key[2] == joined + 1:
                    best = min(best, min((1 + len(word) + self._end_after(nxt) for word in self._after1.get(f, ())
                                          if word not in words and self._fold[word.lower()] == key[1]), default=_FAR))
        return best

    # --- the states -------------------------------------------------------------------------------

    def _state(self, node: int, title: int) -> int:
        key = (node, title)
        state = self._key.get(key)
        if state is None:
            state = self._key[key] = len(self._node)
            self._node.append(node)
            self._title.append(title)
            self._limits.append(None)
            self._full.append(None)
            self._need.append(0)
            self._trans.append(None)  # last: a reader without the lock sees the state whole
        return state

    def _kids(self, node: int) -> dict[int, int]:
        """A node's children (token -> node), made now if they were not."""
        out = self._children[node]
        if out is not None:
            return out
        out = {}
        root = self._root[node]
        words, lo, hi, depth = self._lists[root], self._lo[node], self._hi[node], self._depth[node]
        k = lo + (self._ends_word[node] >= 0)  # the word the node ends sorts first
        while k < hi:
            prefix = words[k][:depth + 1]
            end = bisect.bisect_left(words, prefix + "\U0010ffff", k, hi)  # the words of this child
            out[self._ids[prefix[-1]]] = len(self._root)
            self._root.append(root)
            self._lo.append(k)
            self._hi.append(end)
            self._depth.append(depth + 1)
            self._ends_word.append(self._fids[root][k] if len(words[k]) == depth + 1 else -1)
            self._children.append(None)
            k = end
        self._children[node] = out
        return out

    def _expand(self, state: int) -> dict[int, int]:
        """A state's transitions (token -> state), made now if they were not, with what it allows."""
        with self._lock:
            out = self._trans[state]
            if out is not None:
                return out
            node, title = self._node[state], self._title[state]
            costs = self._cost[self._root[node]] if title < 0 else self._costs_after(title)
            out, tokens, limits = {}, [], []
            lo, hi = self._lo, self._hi
            for token, child in self._kids(node).items():
                fewest = int(costs[lo[child]:hi[child]].min()) - self._depth[child]
                if fewest < _FAR // 2:
                    out[token] = self._state(child, title)
                    tokens.append(token)
                    limits.append(1 + fewest)
            f = self._ends_word[node]
            end = False
            if f >= 0:
                nxt = -1 if title < 0 else self._next[title].get(f, -1)
                end = self._can_end[f] and not (nxt >= 0 and self._whole[nxt])
                root = self._root_after(f)
                if root >= 0:
                    fewest = int((self._cost[root] if nxt < 0 else self._costs_after(nxt)).min())
                    if fewest < _FAR // 2:
                        out[self.space] = self._state(self._root_node[root], nxt)
                        tokens.append(self.space)
                        limits.append(1 + fewest)
            self._limits[state] = (np.array(tokens, np.intp), np.array(limits, np.int64), end)
            self._need[state] = max(limits, default=0)
            self._full[state] = self._mask(state, self._need[state])
            self._trans[state] = out  # last: a reader without the lock sees the state whole
            return out

    def _mask(self, state: int, left: int) -> np.ndarray:
        tokens, limits, end = self._limits[state]
        mask = np.zeros(self.size, bool)
        mask[tokens[limits <= left]] = True
        if end or state == self.START and not mask.any():
            mask |= self.other  # the title's end (at the start, where no word fits: no title, as the grammar allows)
        mask.flags.writeable = False
        return mask

    def mask(self, state: int, left: int) -> np.ndarray:
        """The tokens allowed at ``state`` with ``left`` title characters still to write (read only)."""
        if self._trans[state] is None:
            self._expand(state)
        if left >= self._need[state]:
            return self._full[state]
        key = (state, left)
        mask = self._near.get(key)
        if mask is None:
            mask = self._near[key] = self._mask(state, max(left, 0))
        return mask

    def state(self, ids: Sequence[int]) -> int:
        """The state a title so far reaches (``ids``: ``<s>`` then the title's tokens); -1 when it
        leaves the automaton. The state at the start of the word being written is looked up (the
        title so far worked out once), and the word's characters walked from there."""
        start, space = len(ids), self.space
        while start > 1 and ids[start - 1] != space:
            start -= 1
        state = self.START
        if start > 1:
            key = tuple(ids[1:start])
            state = self._starts.get(key, -2)
            if state == -2:
                state = self._walk(ids, 1, start, self.START)
                if len(self._starts) >= 1 << 14:  # a server's: memory stays bounded
                    self._starts.clear()
                self._starts[key] = state
        return self._walk(ids, start, len(ids), state)

    def _walk(self, ids: Sequence[int], begin: int, end: int, state: int) -> int:
        trans = self._trans
        for k in range(begin, end):
            if state < 0:
                break
            out = trans[state]
            state = (out if out is not None else self._expand(state)).get(ids[k], -1)
        return state


_TRIES: dict[tuple, TitleTrie] = {}
_MAX_TRIES = 16  # a server's requests hold R: to a dance or another: a trie each (shipped titles: 9 MB, 0.1 s)


def _trie_key(words: Sequence[str], tokens: Sequence[str], titles: Sequence[str] | None, novel: bool,
              order: int, joins: int, forbidden: Sequence[str]) -> tuple:
    """What a trie is made of (:func:`trie_for`'s key)."""
    return (tuple(tokens), tuple(words) if titles is None else None,
            None if titles is None else tuple(titles), bool(novel) and titles is not None, order, joins,
            tuple(forbidden) if novel and titles is not None else ())


def trie_for(words: Sequence[str], tokens: Sequence[str], titles: Sequence[str] | None = None,
             novel: bool = False, order: int = 2, joins: int = 1, forbidden: Sequence[str] = ()) -> TitleTrie:
    """The trie of ``titles`` (or, with none, of ``words``) over ``tokens``, made once per process
    (some are kept). Its ``ident`` names what it was made of: a trie made again, after others pushed
    it out, has the same one (a grammar keyed by it is found again, with the states it has learnt)."""
    key = _trie_key(words, tokens, titles, novel, order, joins, forbidden)
    trie = _TRIES.get(key)
    if trie is None:
        if len(_TRIES) >= _MAX_TRIES:
            _TRIES.pop(next(iter(_TRIES)))
        trie = _TRIES[key] = TitleTrie(words, tokens, titles, novel, order, joins, forbidden)
        trie.ident = hash(key)
    return trie


def titles_ident(tokens: Sequence[str], words: Sequence[str], titles: Sequence[str] | None = None,
                 novel: bool = False, forbidden: Sequence[str] = ()) -> int:
    """The ``ident`` of the :class:`TitleWords` of these arguments (and of their trie), before either is made."""
    return hash(_trie_key(words, tokens, titles, novel, 2, 1, forbidden))


# which grammar states are in the title, per grammar: a bool per state id, grown as states appear
_IN_TITLE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class TitleWords:
    """The title words of :func:`trie_for` (its arguments but ``tokens``) applied to the rows of
    one grammar (:class:`folkrnn.abc.grammar.AbcGrammar`) whose tunes write their own titles: its
    start state is in the title, and ``max_title`` characters at most. The trie is made when a row
    first writes a title with it (0.1-0.2 s for the shipped titles): a request whose tune takes
    another's titles makes none. ``ident`` names what it is made of, as the trie's does."""

    def __init__(self, grammar, words: Sequence[str], titles: Sequence[str] | None = None, novel: bool = False,
                 forbidden: Sequence[str] = ()) -> None:
        self.grammar = grammar
        self.max_title = grammar.max_title
        self._phase = grammar.state(grammar.start).phase
        self._args = (tuple(words), tuple(grammar.tokens), None if titles is None else tuple(titles), novel,
                      tuple(forbidden))
        words, tokens, titles, novel, forbidden = self._args
        self.ident = titles_ident(tokens, words, titles, novel, forbidden)
        self._trie: TitleTrie | None = None

    @property
    def trie(self) -> TitleTrie:
        if self._trie is None:
            words, tokens, titles, novel, forbidden = self._args
            self._trie = trie_for(words, tokens, titles, novel, forbidden=forbidden)
        return self._trie

    def rows(self, sids: np.ndarray) -> np.ndarray:
        """The positions in ``sids`` (grammar state ids) of the rows writing their title."""
        if not len(sids):
            return np.zeros(0, np.intp)
        flags = _IN_TITLE.get(self.grammar)
        top = int(sids.max())
        if flags is None or top >= len(flags):
            known = 0 if flags is None else len(flags)
            grown = np.zeros(top + 1, bool)
            if known:
                grown[:known] = flags
            state, phase = self.grammar.state, self._phase
            for sid in range(known, top + 1):  # every id up to the largest in use is a state
                grown[sid] = state(sid).phase == phase
            flags = _IN_TITLE[self.grammar] = grown
        return np.flatnonzero(flags[sids])

    def restrict(self, masks: np.ndarray, at: np.ndarray, histories: Sequence[list[int]]) -> None:
        """In place: rows ``at`` of ``masks`` (each writing its title; ``histories`` their tokens, ``<s>``
        first) keep only what continues or ends a title as the trie allows."""
        trie, limit = self.trie, self.max_title
        if not len(trie):
            return  # no title word the vocabulary can spell: any title
        for row, ids in zip(at.tolist(), histories):
            state = trie.state(ids)
            if state >= 0:
                masks[row] &= trie.mask(state, limit + 1 - len(ids))
