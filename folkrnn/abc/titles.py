"""Title words: a tune's own title made only of words its model's corpus titles use.

A model that writes a title writes it a character at a time (:mod:`folkrnn.abc.tokens`: one token
per character, ``▁`` for a space), and left to itself spells words no one has heard of ("Lounan's
Jick"). Its training corpus' titles give the words it may use: :func:`corpus_title_words` lists
them (split at spaces, as written after the corpus's title cleaning, so "O'Neill's", "Reel" and
"Billy," are words; a piece with no letter or digit is not), a model folder keeps them in
:data:`WORDS_FILE` (one a line), and :class:`TitleTrie` holds them as a trie over the model's
tokens: while a tune writes its own title, each character must continue a word of the list, and
a word ends (``▁``, or the title's end: the first header token) only where its letters so far
make a whole word.

Case follows the corpus: a word is taken as written ("of" in a title's middle, "The" and "Of" at
its start: the first word of a title is capitalised, as title cleaning does), and the first word
begins with a letter or digit, as the grammar asks. No dead ends: a character is allowed only if a
word through it ends within the title characters left (``max_title``), and a space only if a word
still fits after it.

:class:`TitleWords` applies a trie to a batch: the rows whose grammar state is in the title (the
title's states are those of the grammar's start) get the mask of the trie node their history
reaches, one lookup a row: each node's mask is worked out once, when a title first reaches it
(and once for each count of characters left near the length limit).
"""

from __future__ import annotations

import bisect
import os
import re
import threading
import weakref
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from folkrnn.errors import ModelError

__all__ = ["WORDS_FILE", "MAX_WORDS_BYTES", "title_text", "corpus_title_words", "format_words", "read_words",
           "write_words", "TitleTrie", "TitleWords", "trie_for"]

WORDS_FILE = "title_words.txt"  # in a model folder: the words of its corpus' titles, one a line
MAX_WORDS_BYTES = 4 * 2**20  # the largest word file a model folder may hold
SPACE = "\u2581"  # a space inside a title (folkrnn.abc.tokens.SPACE)
_BARE = re.compile(r"^[^\w\n]+$", re.MULTILINE)  # a word of no letter or digit (a dash)
_ALNUM_FIRST = re.compile(r"^[^\W_].*$", re.MULTILINE)  # a word that begins with a letter or digit


def title_text(tokens: Sequence[str]) -> str:
    """The title of a token sequence (``<s>``, its characters, then the header): spaces as spaces."""
    chars = []
    for token in tokens[1:] if tokens and tokens[0] == "<s>" else tokens:
        if token != SPACE and len(token) != 1:
            break
        chars.append(" " if token == SPACE else token)
    return "".join(chars)


def corpus_title_words(tunes: Iterable[Sequence[str]]) -> list[str]:
    """The words of the titles of ``tunes`` (token sequences, as a corpus holds them), sorted: each
    piece between spaces, as written, that holds a letter or digit."""
    words = set()
    for tokens in tunes:
        words.update(word for word in title_text(tokens).split() if any(char.isalnum() for char in word))
    return sorted(words)


def format_words(words: Iterable[str]) -> str:
    """The text of a word file: one word a line."""
    return "".join(f"{word}\n" for word in words)


def write_words(folder: str | os.PathLike, words: Iterable[str]) -> Path:
    """Write :data:`WORDS_FILE` into a model folder (atomically); returns its path."""
    from folkrnn.files import write_atomic

    path = Path(folder) / WORDS_FILE
    write_atomic(path, format_words(words).encode("utf-8"), error=ModelError)
    return path


def read_words(folder: str | os.PathLike) -> tuple[str, ...] | None:
    """The words of a model folder's :data:`WORDS_FILE`, or None when it has none.

    Raises ModelError for a file that is too large, not UTF-8, or holds a word with a space."""
    path = Path(folder) / WORDS_FILE
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None
    except OSError as error:
        raise ModelError(f"cannot read {path}: {error.strerror or error}") from None
    if size > MAX_WORDS_BYTES:
        raise ModelError(f"{path} is {size:,} bytes; a title word file holds at most {MAX_WORDS_BYTES:,}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ModelError(f"{path} is not UTF-8 text") from None
    except OSError as error:
        raise ModelError(f"cannot read {path}: {error.strerror or error}") from None
    words = tuple(line.strip() for line in text.splitlines() if line.strip())
    bad = next((word for word in words if len(word.split()) != 1), None)
    if bad is not None:
        raise ModelError(f"{path}: a title word holds a space: {bad!r}")
    return words


class TitleTrie:
    """The title words as a trie over a vocabulary's tokens, with each node's allowed tokens.

    Node 0 is the first word's root (the words capitalised, beginning with a letter or digit),
    node 1 the root of every later word (the words as written). ``mask(node, left)`` is the
    ``(V,)`` bool row of the tokens allowed at ``node`` with ``left`` title characters still to
    write: the characters that continue a word that ends within ``left``; where the node ends a
    word, ``▁`` (when a word fits after it) and every token that is not a title character (the
    title's end). A word with a character the vocabulary lacks (or ``%``, ``\\``) is left out.

    The nodes grow as titles reach them: a node is a range of the sorted words (those its letters
    begin), and its children and its mask are worked out the first time a title gets there (a
    few words' work; thousands of words cost nothing until a title reads them), then kept.

    Parameters
    ----------
    words
        The words (as :func:`corpus_title_words` gives them).
    tokens
        The vocabulary's tokens in id order.
    """

    FIRST, LATER = 0, 1

    def __init__(self, words: Iterable[str], tokens: Sequence[str]) -> None:
        ids = {token: index for index, token in enumerate(tokens)
               if len(token) == 1 and token not in "\n\t%\\" and not token.isspace()}
        self._ids = ids
        self.size = len(tokens)
        self.space = next((index for index, token in enumerate(tokens) if token == SPACE), None)
        # tokens that are not title characters: the title ends with one of them
        self.other = np.array([not (len(token) == 1 or token == SPACE) for token in tokens], bool)
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
        self._lists = (first, later)
        # per node: its root (which list), the range of the words it begins there, its depth,
        # the fewest characters that end a word from it (0: it ends one), its children and mask
        # (None until a title reaches it)
        self._root, self._lo, self._hi, self._depth = [0, 1], [0, 0], [len(first), len(later)], [0, 0]
        self.shortest = [min(map(len, first), default=1 << 20), min(map(len, later), default=1 << 20)]
        self.children: list[dict[int, int] | None] = [None, None]
        self._masks: list[np.ndarray | None] = [None, None]
        self._spaced = self.space is not None and bool(later)
        # past this many characters left, a node's mask no longer depends on how many
        self.reach = max(map(len, later), default=0) + 2
        self._near: dict[tuple[int, int], np.ndarray] = {}
        self._lock = threading.Lock()  # a server's threads may reach a new node together

    def __len__(self) -> int:
        return self.words

    def _expand(self, node: int) -> dict[int, int]:
        """A node's children (token -> node), made now if they were not, with its mask."""
        with self._lock:
            out = self.children[node]
            if out is not None:
                return out
            out = {}
            words, lo, hi, depth = self._lists[self._root[node]], self._lo[node], self._hi[node], self._depth[node]
            k = lo + (self.shortest[node] == 0)  # the word the node ends sorts first
            while k < hi:
                prefix = words[k][:depth + 1]
                end = bisect.bisect_left(words, prefix + "\U0010ffff", k, hi)  # the words of this child
                out[self._ids[prefix[-1]]] = len(self._root)
                self._root.append(self._root[node])
                self._lo.append(k)
                self._hi.append(end)
                self._depth.append(depth + 1)
                self.shortest.append(min(map(len, words[k:end])) - depth - 1)
                self.children.append(None)
                self._masks.append(None)
                k = end
            mask = self._mask(node, self.reach, out)
            self._masks[node] = mask
            self.children[node] = out  # last: a reader without the lock sees the node whole
            return out

    def _mask(self, node: int, left: int, children: dict[int, int]) -> np.ndarray:
        mask = np.zeros(self.size, bool)
        shortest = self.shortest
        for token, child in children.items():
            if 1 + shortest[child] <= left:
                mask[token] = True
        if shortest[node] == 0:
            mask |= self.other
            if self._spaced and 1 + shortest[self.LATER] <= left:
                mask[self.space] = True
        elif node == self.FIRST and not mask.any():
            mask |= self.other  # no word fits: no title, as the grammar allows
        mask.flags.writeable = False
        return mask

    def mask(self, node: int, left: int) -> np.ndarray:
        """The tokens allowed at ``node`` with ``left`` title characters still to write (read only)."""
        if left >= self.reach:
            mask = self._masks[node]
            if mask is None:
                self._expand(node)
                mask = self._masks[node]
            return mask
        key = (node, left)
        mask = self._near.get(key)
        if mask is None:
            children = self.children[node]
            mask = self._near[key] = self._mask(node, max(left, 0), children if children is not None
                                                 else self._expand(node))
        return mask

    def node(self, ids: Sequence[int]) -> int:
        """The node a title so far reaches (``ids``: ``<s>`` then the title's tokens); -1 when it
        leaves the trie."""
        start, space = len(ids), self.space
        while start > 1 and ids[start - 1] != space:
            start -= 1
        node = self.FIRST if start == 1 else self.LATER
        children = self.children
        for k in range(start, len(ids)):
            out = children[node]
            node = (out if out is not None else self._expand(node)).get(ids[k], -1)
            if node < 0:
                return -1
        return node


_TRIES: dict[tuple, TitleTrie] = {}


def trie_for(words: Sequence[str], tokens: Sequence[str]) -> TitleTrie:
    """The trie of ``words`` over ``tokens``, made once per process (a few are kept)."""
    key = (tuple(tokens), tuple(words))
    trie = _TRIES.get(key)
    if trie is None:
        if len(_TRIES) >= 4:
            _TRIES.pop(next(iter(_TRIES)))
        trie = _TRIES[key] = TitleTrie(words, tokens)
    return trie


# which grammar states are in the title, per grammar: a bool per state id, grown as states appear
_IN_TITLE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class TitleWords:
    """A trie applied to the rows of one grammar (:class:`folkrnn.abc.grammar.AbcGrammar`) whose
    tunes write their own titles: its start state is in the title, and ``max_title`` characters
    at most."""

    def __init__(self, trie: TitleTrie, grammar) -> None:
        self.trie, self.grammar = trie, grammar
        self.max_title = grammar.max_title
        self._phase = grammar.state(grammar.start).phase

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
        first) keep only what continues or ends a title word."""
        trie, limit = self.trie, self.max_title
        for row, ids in zip(at.tolist(), histories):
            node = trie.node(ids)
            if node >= 0:
                masks[row] &= trie.mask(node, limit + 1 - len(ids))
