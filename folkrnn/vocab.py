"""Token <-> id: the model's vocabulary, its special tokens, and its JSON form.

Tokens are strings for both encodings: ABC tokens (``<s>``, title characters, ``R:reel``,
``M:6/8``, ``K:Cmaj``, ``^F``, ``2``, ``|`` ...) and MIDI events by name (``NOTE_ON_60``,
``TIME_SHIFT_10``, ``VELOCITY_5``).

Id order is stable and reproducible:

- built from ABC token sequences, the specials come first (``<pad>`` = 0, ``<s>``, ``</s>``, then
  ``<unk>`` if asked for), then every other token sorted by code point, so the same set of tokens
  always gives the same ids whatever order the tunes came in;
- for MIDI events (:meth:`Vocabulary.from_event_names`) the event names keep their own id order
  and the specials follow them, so a vocabulary id equals the event id of ``folkrnn.events``.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Sequence

from folkrnn.errors import ModelError

__all__ = ["PAD", "BOS", "EOS", "UNK", "SPECIALS", "Vocabulary", "UnknownTokenError"]

PAD = "<pad>"  # fills batches to a common length; never a target
BOS = "<s>"  # starts every sequence
EOS = "</s>"  # ends every sequence
UNK = "<unk>"  # optional stand-in for unknown tokens (folkrnn raises instead by default)
SPECIALS = (PAD, BOS, EOS)


class UnknownTokenError(ModelError):
    """A token the model never saw; names the token and the nearest ones it knows."""

    def __init__(self, token: str, nearest: Sequence[str], **where) -> None:
        hint = f" (nearest: {', '.join(repr(t) for t in nearest)})" if nearest else ""
        super().__init__(f"token {token!r} is not in the model's vocabulary{hint}", **where)
        self.token = token
        self.nearest = list(nearest)


class Vocabulary:
    """An ordered list of distinct string tokens; a token's id is its position.

    Parameters
    ----------
    tokens
        The tokens in id order. Must be distinct, and must hold ``<pad>``, ``<s>`` and ``</s>``.
    """

    def __init__(self, tokens: Iterable[str]) -> None:
        self._tokens: tuple[str, ...] = tuple(tokens)
        self._ids: dict[str, int] = {}
        for index, token in enumerate(self._tokens):
            if not isinstance(token, str) or not token:
                raise ModelError(f"vocabulary entry {index} is {token!r}, not a non-empty string")
            if token in self._ids:
                raise ModelError(f"vocabulary has {token!r} twice (ids {self._ids[token]} and {index})")
            self._ids[token] = index
        missing = [special for special in SPECIALS if special not in self._ids]
        if missing:
            raise ModelError(f"vocabulary lacks the special tokens {missing}")

    # --- building ---------------------------------------------------------------------------

    @classmethod
    def build(cls, sequences: Iterable[Iterable[str]], *, unk: bool = False) -> Vocabulary:
        """The vocabulary of some token sequences: specials first, then the rest sorted.

        Parameters
        ----------
        sequences
            Token sequences (the training tunes). Special tokens in them are not repeated.
        unk
            Also reserve ``<unk>`` (id 3).
        """
        specials = SPECIALS + ((UNK,) if unk else ())
        seen: set[str] = set()
        for sequence in sequences:
            seen.update(sequence)
        return cls(specials + tuple(sorted(seen - set(specials))))

    @classmethod
    def from_event_names(cls, names: Sequence[str]) -> Vocabulary:
        """The MIDI vocabulary: the event names in their id order, then ``<pad> <s> </s>``."""
        clash = [name for name in names if name in SPECIALS]
        if clash:
            raise ModelError(f"event names may not be special tokens: {clash}")
        return cls(tuple(names) + SPECIALS)

    # --- lookup -----------------------------------------------------------------------------

    @property
    def tokens(self) -> tuple[str, ...]:
        """All tokens in id order."""
        return self._tokens

    @property
    def pad_id(self) -> int:
        """Id of ``<pad>``."""
        return self._ids[PAD]

    @property
    def bos_id(self) -> int:
        """Id of ``<s>``."""
        return self._ids[BOS]

    @property
    def eos_id(self) -> int:
        """Id of ``</s>``."""
        return self._ids[EOS]

    @property
    def unk_id(self) -> int | None:
        """Id of ``<unk>``, or None when unknown tokens raise."""
        return self._ids.get(UNK)

    def __len__(self) -> int:
        return len(self._tokens)

    def __contains__(self, token: object) -> bool:
        return token in self._ids

    def __iter__(self):
        return iter(self._tokens)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self._tokens == other._tokens

    def __hash__(self) -> int:
        return hash(self._tokens)

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} tokens)"

    def nearest(self, token: str, count: int = 3) -> list[str]:
        """The known tokens that look most like ``token`` (difflib's ratio), best first."""
        return difflib.get_close_matches(token, self._tokens, n=count, cutoff=0.0)

    def id(self, token: str) -> int:
        """The id of one token; unknown tokens map to ``<unk>`` if present, else raise.

        Raises
        ------
        UnknownTokenError
            Naming the token and the nearest known ones.
        """
        index = self._ids.get(token)
        if index is None:
            if UNK in self._ids:
                return self._ids[UNK]
            raise UnknownTokenError(token, self.nearest(token))
        return index

    def token(self, index: int) -> str:
        """The token of one id."""
        if not 0 <= index < len(self._tokens):
            raise ModelError(f"token id {index} is outside the vocabulary (0-{len(self) - 1})")
        return self._tokens[index]

    def encode(self, tokens: Iterable[str]) -> list[int]:
        """Ids of a token sequence (see :meth:`id` for unknown tokens)."""
        ids = self._ids
        out = []
        for token in tokens:
            index = ids.get(token)
            out.append(index if index is not None else self.id(token))
        return out

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens of an id sequence."""
        return [self.token(int(index)) for index in ids]

    # --- JSON -------------------------------------------------------------------------------

    def to_list(self) -> list[str]:
        """The tokens in id order, as stored in ``config.json``."""
        return list(self._tokens)

    def to_json(self) -> str:
        """A JSON array of the tokens in id order."""
        return json.dumps(self.to_list(), ensure_ascii=False)

    @classmethod
    def from_json(cls, data: str | list) -> Vocabulary:
        """Rebuild from :meth:`to_json`'s text (or the already-parsed list)."""
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except json.JSONDecodeError as error:
                raise ModelError(f"vocabulary is not valid JSON: {error}") from None
        if not isinstance(data, list):
            raise ModelError(f"vocabulary must be a JSON array of tokens, not {type(data).__name__}")
        return cls(data)
