"""Where a tune stands at each token: the position features the ABC model reads beside its tokens.

A language model over ABC tokens has to count to know where it is: how far into the bar, which bar
of the part, which part. With about 4,000 dance tunes to learn from it counts badly, and its parts
come out 6, 12 or 5 bars long. So the model is told, at every token, as Magenta's Lookback RNN tells
its melody LSTM (the position in the bar, and the events one and two bars ago):

==============  =======================================================================  =========
feature         value after a token (0: not in the tune's body yet)                      size
==============  =======================================================================  =========
``beat``        time since the bar line, in sixteenth notes (1 + n; the last id: off the   50
                sixteenth grid, or a free meter)
``bar``         full bars so far in this part (1 + n, at most 16): where the part ends     18
``part``        parts so far (1 + n, at most 4)                                            6
``back1``       the token written at this point of the bar one bar ago (1 + its id)       vocab + 1
``back2``       the same two bars ago                                                     vocab + 1
``backpart``    the same at this bar of the previous part                                 vocab + 1
``repeated``    whether the token just written was the one ``back1`` offered (bit 0), and   4
                the one ``back2`` offered (bit 1): the tune is repeating a bar
==============  =======================================================================  =========

"At this point of the bar" is the pair (time since the bar line, tokens since that time last moved):
after ``c2`` in one bar the model is offered what followed ``c2`` at the same time in the bar before,
so a bar that repeats an earlier one is one copy per token away, whatever came before it in the bar
(the Lookback RNN's "event one bar ago", for tokens rather than fixed-grid steps). Bars split at every
bar line; a part ends at a repeat sign or double bar (``:|`` closing a first ending does not end it,
and a second ending takes the bar number the first ending began on); a short first bar (a pickup)
and the part's closing short bar count as one bar. The meter comes from the ``M:`` token, lengths
from the length tokens, broken rhythm and tuplets as ABC plays them; grace notes take no time.

:class:`Positions` follows one tune token by token; training (:func:`tune_features`, for whole
sequences) and the sampler (one :class:`Positions` per tune, one :meth:`Positions.push` per token)
both go through it, so the features a model learnt from are the features it is given.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from folkrnn.abc.grammar import TICKS_PER_UNIT, TokenClass, bar_ticks, classify
from folkrnn.abc.parser import default_tuplet_q

__all__ = ["SCHEME", "FEATURE_NAMES", "feature_sizes", "Positions", "tune_features", "with_features", "pad_inputs",
           "classes"]

SCHEME = "lookback-1"  # the name a model's config gives this set of features
FEATURE_NAMES = ("beat", "bar", "part", "back1", "back2", "backpart", "repeated")
_BEATS = 48  # sixteenths of a bar told apart (12/8 and 3/2 have 24)
_BARS = 16
_PARTS = 4
_SIXTEENTH = TICKS_PER_UNIT // 2  # L:1/8 after normalisation
_PART_ENDS = frozenset(("||", ":|", "|:"))
# the token classes this module reads, as plain ints (push runs once per token)
_BAR, _BROKEN, _CHORD_CLOSE, _CHORD_OPEN, _ENDING, _EOS, _GRACE_CLOSE, _GRACE_OPEN, _HEAD, _LENGTH, _NOTE, \
    _REST, _TUPLET = (int(TokenClass[name]) for name in (
        "BAR", "BROKEN", "CHORD_CLOSE", "CHORD_OPEN", "ENDING", "EOS", "GRACE_CLOSE", "GRACE_OPEN", "HEAD",
        "LENGTH", "NOTE", "REST", "TUPLET"))


_NONE = {7: (0,) * 7, 8: (0,) * 8}  # the features before the tune's body, by width


def feature_sizes(vocab_size: int) -> tuple[int, ...]:
    """How many values each feature takes, in :data:`FEATURE_NAMES` order, for a vocabulary size."""
    return (_BEATS + 2, _BARS + 2, _PARTS + 2, vocab_size + 1, vocab_size + 1, vocab_size + 1, 4)


class _Classes:
    """Per token id: its class and value (from the grammar's one classification)."""

    def __init__(self, tokens: Sequence[str]) -> None:
        info = [classify(token) for token in tokens]
        self.cls = [cls for cls, _, _ in info]
        self.val = [value for _, value, _ in info]
        self.slot = [slot for _, _, slot in info]


class Positions:
    """One tune's position, followed token by token.

    Parameters
    ----------
    tokens
        The vocabulary's tokens in id order (or a :class:`_Classes` shared between tunes).
    """

    __slots__ = ("_c", "body", "bar_len", "time", "moved", "ev_start", "ev_len", "mult", "tuplet",
                 "tuplet_factor", "broken_next", "chord", "chord_len", "grace", "after_chord", "bar",
                 "part", "part_has_bar", "ending_bar", "in_ending1", "first_bar", "current", "history",
                 "part_bars", "previous_part", "offer1", "offer2", "offer4", "compound", "width")

    def __init__(self, tokens, width: int = 7) -> None:
        self._c = tokens if isinstance(tokens, _Classes) else _Classes(tokens)
        self.width = width  # features push returns: 7 (lookback-1), or 8 with ``phrase`` (lookback-2)
        self.body = False
        self.bar_len = 0
        self.compound = False
        self.time = 0  # ticks since the bar line
        self.moved = 0  # tokens since time last moved
        self.ev_start = 0  # where the event still open (its length may follow) began
        self.ev_len = 0  # its length so far
        self.mult = (1, 1)  # what its written length is multiplied by (tuplet, broken rhythm)
        self.tuplet = 0  # tuplet notes to come
        self.tuplet_factor = (1, 1)  # (q, p)
        self.broken_next = (1, 1)  # the next event's share after > or <
        self.chord = False
        self.chord_len = False  # the chord's first note had its length
        self.grace = False
        self.after_chord = False  # a length after ] scales the chord
        self.bar = 0  # full bars so far in the part
        self.part = 0
        self.part_has_bar = False
        self.ending_bar = -1  # the part's bar count where ending 1 began
        self.in_ending1 = False
        self.first_bar = True  # this bar is the part's first (a short one is a pickup)
        self.current: dict[tuple[int, int], int] = {}  # this bar: (time, moved) -> token id
        self.history: list[dict] = []  # the last two full bars' maps, newest last
        self.part_bars: dict[int, dict] = {}  # this part's bars by number
        self.previous_part: dict[int, dict] = {}
        self.offer1 = self.offer2 = 0  # what back1 and back2 offered for the coming token
        self.offer4 = 0  # what the bar a phrase (four bars) ago in this part offered for it

    def clone(self) -> Positions:
        """An independent copy (beam search forks tunes)."""
        other = Positions.__new__(Positions)
        for name in self.__slots__:
            setattr(other, name, getattr(self, name))
        other.current = dict(self.current)
        other.history = list(self.history)
        other.part_bars = dict(self.part_bars)
        return other

    def push(self, token: int) -> tuple[int, ...]:
        """Take one token id; return the features the model reads with it (see the module docstring):
        ``width`` of them."""
        cls = self._c.cls[token]
        if not self.body:
            if cls == _HEAD and self._c.slot[token] == "M":
                meter = self._c.val[token]
                self.bar_len = bar_ticks(meter)
                self.compound = not meter.free and meter.numerator % 3 == 0
            elif cls == _HEAD and self._c.slot[token] == "K":
                self.body = True
            return _NONE[self.width]
        if cls == _EOS:
            return _NONE[self.width]
        # (attributes read into locals: this runs once per token of every tune sampled)
        following = token + 1
        repeated = (1 if following == self.offer1 else 0) | (2 if following == self.offer2 else 0)
        before, moved = self.time, self.moved
        self.current[(before, moved)] = token  # what was written at this point of the bar
        self._take(cls, self._c.val[token])
        time = self.time
        moved = self.moved = 0 if time != before or cls == _BAR else moved + 1
        key = (time, moved)
        history = self.history
        offer1 = history[-1].get(key, -1) + 1 if history else 0
        two_back, phrase, earlier = self.offering_bars()
        offer2 = two_back.get(key, -1) + 1 if two_back else 0
        self.offer1, self.offer2 = offer1, offer2
        backpart = earlier.get(key, -1) + 1 if earlier else 0
        offer4 = self.offer4 = phrase.get(key, -1) + 1 if phrase else 0
        bar = self.bar
        beat = time // _SIXTEENTH + 1 if self.bar_len and time % _SIXTEENTH == 0 \
            and time // _SIXTEENTH < _BEATS else _BEATS + 1
        features = (beat, 1 + (bar if bar < _BARS else _BARS), 1 + (self.part if self.part < _PARTS else _PARTS),
                    offer1, offer2, backpart, repeated)
        return features if self.width == 7 else features + (offer4,)

    def offering_bars(self) -> tuple[dict | None, dict | None, dict | None]:
        """The full bars (maps of what was written at each point of the bar) that offer the coming
        token: two bars back, a phrase (four bars) back in this part, and this bar of the part
        before; None where there is none."""
        bar, history = self.bar, self.history
        return (history[-2] if len(history) > 1 else None, self.part_bars.get(bar - 4) if bar >= 4 else None,
                self.previous_part.get(bar))

    # --- time

    def _start_event(self, length: int) -> None:
        mult = self.broken_next
        if self.tuplet:
            q, p = self.tuplet_factor
            mult = (mult[0] * q, mult[1] * p)
            self.tuplet -= 1
        self.broken_next = (1, 1)
        self.mult = mult
        self.ev_start = self.time
        self.ev_len = length * mult[0] // mult[1]
        self.time = self.ev_start + self.ev_len

    def _take(self, cls: int, value) -> None:
        if self.grace:
            if cls == _GRACE_CLOSE:
                self.grace = False
            return
        if cls == _NOTE:
            if self.chord:
                return
            self.after_chord = False
            self._start_event(TICKS_PER_UNIT)
        elif cls == _REST:
            self.after_chord = False
            self._start_event(TICKS_PER_UNIT)
        elif cls == _LENGTH:
            if self.chord:
                if not self.chord_len:
                    self.chord_len = True
                    self.ev_len = value * self.mult[0] // self.mult[1]
                    self.time = self.ev_start + self.ev_len
            elif self.after_chord:
                self.after_chord = False
                self.ev_len = self.ev_len * value // TICKS_PER_UNIT
                self.time = self.ev_start + self.ev_len
            else:
                self.ev_len = value * self.mult[0] // self.mult[1]
                self.time = self.ev_start + self.ev_len
        elif cls == _CHORD_OPEN:
            self._start_event(TICKS_PER_UNIT)
            self.chord, self.chord_len = True, False
        elif cls == _CHORD_CLOSE:
            self.chord, self.after_chord = False, True
        elif cls == _GRACE_OPEN:
            self.grace = True
        elif cls == _BROKEN:
            n = abs(value)
            short = (1, 2 ** n)
            long = (2 ** (n + 1) - 1, 2 ** n)
            first, second = (long, short) if value > 0 else (short, long)
            self.ev_len = self.ev_len * first[0] // first[1]
            self.time = self.ev_start + self.ev_len
            self.broken_next = second
            self.after_chord = False
        elif cls == _TUPLET:
            p, q, r = value
            self.tuplet, self.tuplet_factor = r or p, (q or default_tuplet_q(p, self.compound), p)
        elif cls == _BAR:
            self._bar_line(value)
        elif cls == _ENDING:
            if value and value[0] == 1:
                self.ending_bar, self.in_ending1 = self.bar, True
            elif value and value[0] >= 2 and self.ending_bar >= 0:
                self.bar, self.in_ending1 = self.ending_bar, False

    def _bar_line(self, kind: str) -> None:
        full = not self.bar_len or self.time >= self.bar_len
        if self.time > 0:
            if full or not self.first_bar:  # a short first bar is a pickup: not counted
                self.part_bars[self.bar] = self.current
                self.bar += 1
                self.part_has_bar = True
            if full:
                self.history = (self.history + [self.current])[-2:]
            self.first_bar = False
        self.current = {}
        self.time, self.ev_start, self.ev_len = 0, 0, 0
        self.tuplet, self.broken_next, self.chord, self.grace, self.after_chord = 0, (1, 1), False, False, False
        if kind in _PART_ENDS and self.part_has_bar and not (kind == ":|" and self.in_ending1):
            self.previous_part, self.part_bars = self.part_bars, {}
            self.part += 1
            self.bar, self.part_has_bar, self.first_bar = 0, False, True
            self.ending_bar, self.in_ending1 = -1, False


def tune_features(ids: Sequence[int], tokens, width: int = len(FEATURE_NAMES)) -> np.ndarray:
    """``(T, width)`` int32: the features read with each token of one tune's ids (``width`` 8: with
    lookback-2's ``phrase``, :mod:`folkrnn.abc.phrases`).

    ``tokens``: the vocabulary's tokens in id order, or a shared :func:`classes` object.
    """
    positions = Positions(tokens, width)
    out = np.empty((len(ids), width), np.int32)
    for t, token in enumerate(ids):
        out[t] = positions.push(int(token))
    return out


def with_features(ids: Sequence[int], tokens, width: int = len(FEATURE_NAMES)) -> np.ndarray:
    """``(T, 1 + F)`` int64: each token id of one tune, then the ``width`` features read with it (a
    model with position features takes this as its input, in training and in scoring)."""
    ids = np.asarray(ids, np.int64)
    return np.concatenate([ids[:, None], tune_features(ids, tokens, width)], axis=1)


def pad_inputs(rows: Sequence[np.ndarray], length: int, pad_id: int) -> np.ndarray:
    """A batch of model inputs of one length: ``(B, length)`` ids padded with ``pad_id``, or, for
    rows of :func:`with_features`, ``(B, length, 1 + F)`` with the padding's features 0."""
    shape = (len(rows), length) + (tuple(rows[0].shape[1:]) if len(rows) else ())
    batch = np.zeros(shape, np.int64)
    if batch.ndim == 3:
        batch[..., 0] = pad_id
    else:
        batch.fill(pad_id)
    for row, ids in enumerate(rows):
        batch[row, :len(ids)] = ids
    return batch


def classes(tokens: Sequence[str], settings=None) -> _Classes:
    """The vocabulary classified once, to share among many :class:`Positions` (``settings``, the
    normalisation, change nothing here: every scheme's ``classes`` takes them)."""
    return _Classes(tokens)
