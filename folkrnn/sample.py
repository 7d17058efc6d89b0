"""Sampling tunes from an ABC language model: strategies, priming, conditioning and constrained decoding.

**Strategies** (those of the lecture notes behind folk-rnn), chosen by :class:`SampleConfig`:

- ``sample``: temperature sampling (the logits are divided by T), optionally cut to the k most
  probable tokens (top-k) and then to the smallest set whose probability reaches p (nucleus,
  top-p), in that order;
- ``greedy``: the most probable token every step;
- ``beam``: beam search with W hypotheses, scored by total log-probability (of the tempered,
  masked distribution). Finished tunes are ranked by ``log_prob / tokens ** length_penalty``
  (``tokens`` counts every token after ``<s>``; ``length_penalty`` 0 ranks by the raw total,
  which favours short tunes, 1 by the mean log-probability per token; the default 0.7 lies
  between, as in machine translation).

**Conditioning** forces tokens: a given title is written character by character after ``<s>``
(the model reads it, as folk-rnn v1 did, so the title shapes the tune), and a given rhythm, meter
or mode fixes the ``R:``, ``M:`` or ``K:`` token (the rest of the header is still the model's).
A **prime** (body tokens) is forced after the header; the model continues it.

**Constrained decoding** (on by default): :class:`AbcGrammar` follows the tune token by token, a
state machine over the ABC tokens that tracks the position in the bar in exact integer ticks (the
meter, lengths, broken rhythm, tuplets, chords, grace groups, ties) and the repeats and endings,
and before each step masks every token that would

- overfill the bar, or leave it in a state that no sequence of notes can fill exactly;
- write a bar line before the bar is full. Short bars are allowed only where players write them
  and abc2midi plays them through: the first bar (a pickup); the bar that completes the pickup,
  at the :| of a repeat that began with the pickup (written after its ``|:``, or the tune's own
  when the :| repeats from the start), or at a section line (``||``, ``|:``) followed by the
  pickup again; and the last bar of the tune. A repeat that began with the pickup ends with the
  bar that completes it;
- open a repeat or an ending that cannot be balanced: ``|:`` inside an open repeat, ``:|`` with
  nothing to close (a ``:|`` without ``|:`` only in the first section, repeating from the start),
  an ending 1 outside a repeat; after the ``:|`` that closes ending 1 only ending 2 may follow;
- end the tune anywhere but at a complete bar with its repeats closed. ``</s>`` after a complete
  bar that has no closing bar line gets one (``||``, or ``:|`` when a repeat is open): every tune
  ends with a closing bar, after at least ``min_bars`` bars.

The grammar is stricter than ABC where abc2midi reads ABC otherwise than our parser, or warns, so
that every tune it lets through passes the validator and ``abc2midi -c``: no inline ``[M:]``
changes (abc2midi times tuplets by the header meter, and checks the bars of a repeat against its
first pass); a chord's notes all as long as the first, and no length after ``]`` when they have
one (abc2midi takes that length alone); the notes of a tuplet alike, and no chords or grace notes
in a tuplet, no tuplet in a tuplet; broken rhythm only between two notes (or chords) of equal
length, not into or out of a tuplet or after grace notes; grace notes together shorter than four
times their note (abc2midi plays them at a quarter of their length, taken from it); ties only between single notes of the same pitch, and across plain bar lines only;
titles the model writes begin with a letter or digit.

**The length guard.** ``closing_tokens`` before ``max_tokens`` the grammar steers to an end (no
new repeats, endings, tuplets, chords or ornaments; ``</s>`` as soon as it is allowed). A tune
that still has not ended, or that reaches a state with no allowed token, cannot be finished: it
is retried with the next seed, and the failure is reported in :attr:`Sampled.failures`; it is
never returned as if it were whole.

**Batched and reproducible.** :func:`sample_tunes` runs many tunes through each step of the NumPy
LSTM. Each tune draws its random numbers from its own seed (a counter-based generator: draw t of
seed s is a hash of (s, t)), so a tune depends only on its seed and options, not on the others in
its batch. The one thing a batch changes is the floating-point rounding of the matrix products
(BLAS sums in another order for another batch size: under 1e-6 of the largest logit). A decision
that rounding could change (see :func:`choose_tokens`) is never taken in a batch: that tune is made again
on its own, as ``compose`` makes it, so tune i of a batch is the tune ``compose`` makes from its
seed, bit for bit. Drawing along the tokens ranked by probability keeps such decisions rare.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import signal
import sys
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import Callable, NamedTuple, Sequence

import numpy as np

from folkrnn.abc.parser import default_tuplet_q
from folkrnn.errors import OptionError
from folkrnn.music import parse_meter

__all__ = [
    "SampleConfig", "Conditions", "Sampled", "AbcGrammar", "STRATEGIES", "TICKS_PER_UNIT",
    "sample_tunes", "sample_one", "beam_search", "uniforms", "title_tokens",
    "choose_tokens", "rounding_noise", "one_blas_thread", "default_workers", "MIN_PER_WORKER",
]

STRATEGIES = ("sample", "greedy", "beam")
# Ticks per unit note length (L:1/8 after normalisation): 2^12 * 3^2 * 5 * 7, so that lengths
# down to 1/4096 of a unit, tuplets of 2 to 9 and broken rhythm are all whole numbers of ticks.
TICKS_PER_UNIT = 2 ** 12 * 3 ** 2 * 5 * 7
_R = TICKS_PER_UNIT
# How far the logits of a batched computation may differ from those of the same row on its own,
# relative to the largest logit (a different BLAS kernel sums in another order): measured at most
# 9e-7 over 1,000 steps (3x512 and small models); the reproducibility guard allows for 4x that.
_NOISE = 4e-6


# ---------------------------------------------------------------------------------------------
# Options


@dataclass(frozen=True)
class SampleConfig:
    """How tunes are drawn from the model. Persisted in summaries with ``asdict``."""

    strategy: str = "sample"  # "sample", "greedy" or "beam"
    temperature: float = 1.0  # the logits are divided by this (> 0); 1 is the model as trained
    top_k: int = 0  # sample only among the k most probable tokens (0: no cut)
    top_p: float = 1.0  # then only the smallest set reaching this probability (1: no cut)
    beam_width: int = 4  # hypotheses beam search keeps
    length_penalty: float = 0.7  # beam: rank by log-probability / tokens ** this
    constrain: bool = True  # full bars, balanced repeats, a closing bar (AbcGrammar)
    max_tokens: int = 1000  # the length guard (folk-rnn stopped at 1,000 tokens too)
    closing_tokens: int = 64  # steer to an end this many tokens before max_tokens
    min_bars: int = 4  # a tune may not end before this many bars
    max_title: int = 60  # title characters the model may write
    attempts: int = 10  # seeds tried for one tune before it is reported as not made

    def check(self) -> "SampleConfig":
        """Raise OptionError for an option out of its range; return self."""
        if self.strategy not in STRATEGIES:
            raise OptionError(f"unknown strategy {self.strategy!r}; choose one of {', '.join(STRATEGIES)}")
        if not self.temperature > 0 or not np.isfinite(self.temperature):
            raise OptionError(f"--temperature must be greater than 0, not {self.temperature}")
        if self.temperature > 100:
            raise OptionError(f"--temperature must be at most 100, not {self.temperature}")
        if self.top_k < 0:
            raise OptionError(f"--top-k must be 0 (off) or more, not {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise OptionError(f"--top-p must be in (0, 1], not {self.top_p}")
        if self.beam_width < 1:
            raise OptionError(f"--beam-width must be at least 1, not {self.beam_width}")
        if self.length_penalty < 0:
            raise OptionError(f"the length penalty must be 0 or more, not {self.length_penalty}")
        if self.max_tokens < 16 or self.closing_tokens < 0 or self.closing_tokens >= self.max_tokens:
            raise OptionError("max_tokens must be at least 16, and closing_tokens below it")
        if self.min_bars < 1 or self.attempts < 1 or self.max_title < 0:
            raise OptionError("min_bars and attempts must be at least 1, max_title at least 0")
        return self

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Conditions:
    """What is forced: the title, header values and a prime of body tokens."""

    title: str | None = None  # the title the model reads (None: the model writes one)
    rhythm: str | None = None  # R: value, as the model's tokens name it ("reel")
    meter: str | tuple[str, ...] | None = None  # M: value ("6/8"), or the values the model may choose among
    mode: str | None = None  # K: mode ("maj", "min", "dor", "mix", ...)
    prime: tuple[str, ...] = ()  # body tokens the tune starts with


@dataclass
class Sampled:
    """One tune drawn from the model."""

    index: int  # which tune of the request this is
    seed: int  # the seed that made it (the last one tried)
    tokens: list[str] = field(default_factory=list)  # <s> ... </s>, closing bar included
    log_prob: float = 0.0  # sum of log-probabilities of the chosen tokens (forced ones excluded)
    failures: list[tuple[int, str]] = field(default_factory=list)  # seeds tried before, and why
    ok: bool = False  # False: no seed made a whole tune (the reasons are in failures)
    title_warnings: list[str] = field(default_factory=list)  # title characters left out

    @property
    def requested_seed(self) -> int:
        return self.failures[0][0] if self.failures else self.seed


# ---------------------------------------------------------------------------------------------
# Token classes

_SPECIAL, _HEAD, _NOTE, _LENGTH, _REST, _BAR, _ENDING, _CHORD_OPEN, _CHORD_CLOSE, _GRACE_OPEN, \
    _GRACE_CLOSE, _TIE, _BROKEN, _TUPLET, _FIELD_K, _FIELD_M, _EOS, _OTHER = range(18)

_NOTE_RE = re.compile(r"^(\^\^|\^|__|_|=)?[A-Ga-g][,']*$")
_LENGTH_RE = re.compile(r"^(\d+)?(?:/(\d+))?$")
_TUPLET_RE = re.compile(r"^\((\d)(?::(\d*)(?::(\d*))?)?$")
_ENDING_RE = re.compile(r"^\[(\d+(?:,\d+)*)$")
_BARS = ("|", "||", "|:", ":|")
_SPACE = "\u2581"


def _classify(token: str) -> tuple[int, object, str | None]:
    """(class, value, header slot letter) of one vocabulary token."""
    if token in ("<pad>", "<s>", "<unk>"):
        return _SPECIAL, None, None
    if token == "</s>":
        return _EOS, None, None
    if len(token) > 2 and token[1] == ":" and token[0] in "RMLK":
        value = token[2:]
        if token[0] == "M":
            try:
                return _HEAD, parse_meter(value), "M"
            except ValueError:
                return _OTHER, None, None
        if token[0] == "L":
            try:
                return _HEAD, Fraction(value), "L"
            except (ValueError, ZeroDivisionError):
                return _OTHER, None, None
        return _HEAD, value, token[0]
    if _NOTE_RE.match(token):
        return _NOTE, None, None
    if token and _LENGTH_RE.match(token):
        num, den = _LENGTH_RE.match(token).groups()
        value = Fraction(int(num or 1), int(den or 1)) if den is None or int(den) else Fraction(0)
        ticks = value * _R
        if value <= 0 or value == 1 or value > 64 or ticks.denominator != 1:
            return _OTHER, None, None
        return _LENGTH, int(ticks), None
    if token in ("z", "x"):
        return _REST, None, None
    if token in _BARS:
        return _BAR, token, None
    match = _ENDING_RE.match(token)
    if match:
        return _ENDING, tuple(int(n) for n in match.group(1).split(",")), None
    simple = {"[": _CHORD_OPEN, "]": _CHORD_CLOSE, "{": _GRACE_OPEN, "}": _GRACE_CLOSE, "-": _TIE}
    if token in simple:
        return simple[token], None, None
    if token and set(token) <= {">"} or token and set(token) <= {"<"}:
        return _BROKEN, len(token) if token[0] == ">" else -len(token), None
    match = _TUPLET_RE.match(token)
    if match:
        p = int(match.group(1))
        q = int(match.group(2)) if match.group(2) else None
        r = int(match.group(3)) if match.group(3) else None
        if 2 <= p <= 9 and (q is None or 1 <= q <= 9) and (r is None or 1 <= r <= 9):
            return _TUPLET, (p, q, r), None
        return _OTHER, None, None
    if token.startswith("[K:") and token.endswith("]"):
        return _FIELD_K, token[3:-1], None
    if token.startswith("[M:") and token.endswith("]"):
        try:
            return _FIELD_M, parse_meter(token[3:-1]), None
        except ValueError:
            return _OTHER, None, None
    return _OTHER, None, None


def _bar_ticks(meter, unit: tuple[int, int] = (1, 8)) -> int:
    """Ticks in a full bar of a meter (0 for free meter or a length that is not whole ticks)."""
    if meter.free:
        return 0
    units = meter.bar_length / (4 * Fraction(*unit)) * _R
    return int(units) if units.denominator == 1 else 0


# ---------------------------------------------------------------------------------------------
# The grammar

_TITLE, _HEADER, _BODY, _DONE = range(4)
# what the previous body token was
_START, _BAR_LAST, _EVENT_OPEN, _EVENT, _CHORD_IN, _GRACE_IN, _GRACE_LAST, _TIE_LAST, \
    _BROKEN_LAST, _TUPLET_LAST, _FIELD_LAST, _ENDING_LAST = range(12)
_NOTE_EV, _REST_EV, _CHORD_EV = 1, 2, 3
_MAX_CHORD, _MAX_GRACE = 6, 4


class _State(NamedTuple):
    """Where a tune is, as far as the grammar cares. Positions and lengths are integer ticks."""

    phase: int = _TITLE
    slot: int = 0  # header: the next header slot
    title: int = 0  # title characters so far
    unit: tuple[int, int] = (1, 8)  # L: (only a model trained without unit normalisation has L: tokens)
    bar: int = 0  # ticks in a full bar
    compound: bool = False  # the meter's numerator divides by 3 (tuplet defaults)
    pos: int = 0  # ticks since the last bar line (closed events only)
    ev: int = 0  # an event whose length token may still follow: _NOTE_EV, _REST_EV, _CHORD_EV
    ev_mul: tuple[int, int] = (1, 1)  # its written length is (length ticks) * num // den
    last: int = _START  # the previous body token's kind
    last_len: int = 0  # written length of the last event (broken rhythm pairs equal lengths)
    last_kind: int = 0  # what that event was
    last_tuplet: bool = False  # it was a tuplet note
    force: int = 0  # after > or <: the length the next event must have (0: free)
    paired: bool = False  # the last event ended a broken-rhythm pair, or had grace notes
    tuplet: int = 0  # tuplet notes still to come
    factor: tuple[int, int] = (1, 1)  # their (q, p): each lasts q/p of its written length
    chord: int = -1  # notes in the open chord (-1: no chord open)
    chord_first: int = 0  # written length of the chord's first note
    chord_len: int = 0  # the chord's last note: 0 takes no length, 1 may take one, 2 must take chord_first
    tuplet_len: int = 0  # written length (before q/p) of the tuplet's notes: all alike (0: not yet)
    grace: int = -1  # notes in the open grace group (-1: none open)
    grace_len: bool = False
    graced: int = 0  # written length of the grace notes before the coming note (must be < 4x it)
    tied: bool = False  # a tie waits for its note
    first: bool = True  # no bar line after music yet: this measure may be a pickup
    pickup: int = 0  # the pickup's length (0: the tune has none)
    need_pickup: bool = False  # a short bar at a section line needs a pickup after it
    after_open: bool = False  # this measure began right after |:
    rep_pickup: bool = False  # the repeat now open began with a pickup (after its |:, or the tune's)
    repeat: int = 2  # 0: none open, 1: |: open, 2: a :| may still repeat from the start
    ending: int = 0  # 0, 1 or 2: in that ending; 3: right after the :| that closes ending 1
    ending_music: bool = False  # an event since the last ending began
    last_bar: str = ""  # the last bar line written
    last_full: bool = False  # the measure it closed was full
    measures: int = 0  # measures closed (pickups not counted), up to min_bars
    closing: bool = False  # the length guard asks for an end


_FIELD = {name: index for index, name in enumerate(_State._fields)}
_new_state = tuple.__new__


def _set(state: _State, **changes) -> _State:
    """``state._replace(**changes)``, faster (the grammar makes a great many states)."""
    values = list(state)
    for name, value in changes.items():
        values[_FIELD[name]] = value
    return _new_state(_State, values)


class AbcGrammar:
    """The constraint for one vocabulary and one set of conditions (see the module docstring).

    States are interned as small integers: :meth:`mask` gives the allowed tokens of a state (a
    cached boolean row), :meth:`next` the state after a token (-1: not allowed). Masks are worked
    out per class of token (all pitches alike, each length, each bar line, ...), once per state.

    Parameters
    ----------
    tokens
        The vocabulary's tokens in id order.
    constrain
        Apply the bar, repeat and ending rules. Without it only the header is followed (its order
        and the fixed values), and ``</s>`` may come at any point of the body.
    fixed
        Header slot letter ("R", "M", "K") -> the token id allowed there, or a set of them (the
        model chooses among those).
    title_length
        The number of title characters when the title is given (forced): then exactly that many.
    min_bars, max_title
        As in :class:`SampleConfig`.
    """

    def __init__(self, tokens: Sequence[str], *, constrain: bool = True, fixed: dict | None = None,
                 title_length: int | None = None, min_bars: int = 4, max_title: int = 60) -> None:
        self.tokens = list(tokens)
        self.size = len(self.tokens)
        self.constrain = constrain
        self.fixed = {letter: frozenset([ids]) if isinstance(ids, int) else frozenset(ids)
                      for letter, ids in (fixed or {}).items()}
        self.title_length = title_length
        self.min_bars = min_bars
        self.max_title = max(max_title, title_length or 0)
        info = [_classify(token) for token in self.tokens]
        self._cls = [cls for cls, _, _ in info]
        self._val = [value for _, value, _ in info]
        self._slot_of = [slot for _, _, slot in info]
        self._is_note = np.array([cls == _NOTE for cls in self._cls], bool)
        self.eos = next((i for i, t in enumerate(self.tokens) if t == "</s>"), None)
        if self.eos is None:
            raise OptionError("the model's vocabulary has no </s>")
        self.is_title = np.array([(len(t) == 1 and t not in "\n\t" or t == _SPACE) and c != _SPECIAL
                                  for t, c in zip(self.tokens, self._cls)], bool)
        # title characters allowed first and later (a title no ABC reader mistakes: no %, no \\,
        # and, when the model writes it, beginning with a letter or digit)
        safe = self.is_title & np.array([t not in ("%", "\\") for t in self.tokens], bool)
        if constrain and title_length is None:
            self._title_ok = (safe & np.array([t.isalnum() for t in self.tokens], bool), safe)
        else:
            self._title_ok = (self.is_title, self.is_title)
        letters = [slot for slot in "RMLK" if slot in set(self._slot_of)]
        self.slots = tuple(letters)
        if "K" not in self.slots:
            raise OptionError("the model's vocabulary has no K: tokens; it is not an ABC model")
        # lengths a single event can take (the default 1 included), for the fill check
        lengths = sorted({value for cls, value in zip(self._cls, self._val) if cls == _LENGTH} | {_R})
        self.lengths = tuple(lengths)
        grid = 0
        for value in lengths:
            grid = np.gcd(grid, value)
        self.grid = int(grid)
        bars = [_bar_ticks(value) for cls, value, slot in info if cls in (_HEAD, _FIELD_M)
                and (slot == "M" or cls == _FIELD_M)]
        longest = max(bars + [8 * _R]) * 2
        cells = longest // self.grid + 1
        reach = np.zeros(cells, bool)
        reach[0] = True
        steps = [value // self.grid for value in lengths]
        for cell in range(1, cells):
            reach[cell] = any(cell >= step and reach[cell - step] for step in steps)
        self._reach = reach
        # token groups that behave alike in the body
        groups: dict[tuple, list[int]] = {}
        for index, (cls, value) in enumerate(zip(self._cls, self._val)):
            if cls in (_SPECIAL, _HEAD, _OTHER):
                continue
            key = (cls, None) if cls in (_NOTE, _REST, _FIELD_K) else (cls, value)
            groups.setdefault(key, []).append(index)
        self._groups = list(groups.items())
        self._group_of = np.full(self.size, -1, np.int64)
        for number, (_, ids) in enumerate(self._groups):
            self._group_of[ids] = number
        self._states: list[_State] = []
        self._ids: dict[_State, int] = {}
        self._masks: list[np.ndarray | None] = []
        self._next: dict[tuple[int, int], int] = {}
        self._closing: dict[int, int] = {}
        self._feasible: dict[_State, bool] = {}
        self._fix: dict[int, tuple[str, str] | None] = {}
        titled = title_length if title_length is not None else (self.max_title and self.is_title.any())
        start = _State(phase=_TITLE if titled else _HEADER)
        self.start = self._intern(start)

    # --- interning

    def _intern(self, state: _State) -> int:
        sid = self._ids.get(state)
        if sid is None:
            sid = self._ids[state] = len(self._states)
            self._states.append(state)
            self._masks.append(None)
        return sid

    def state(self, sid: int) -> _State:
        return self._states[sid]

    def done(self, sid: int) -> bool:
        return self._states[sid].phase == _DONE

    def in_body(self, sid: int) -> bool:
        return self._states[sid].phase == _BODY

    # --- the public steps

    def mask(self, sid: int) -> np.ndarray:
        """Boolean (V,) of the tokens allowed in state ``sid``."""
        mask = self._masks[sid]
        if mask is None:
            mask = self._masks[sid] = self._compute_mask(self._states[sid])
        return mask

    def masks(self, sids: Sequence[int]) -> np.ndarray:
        """Boolean (B, V) of the tokens allowed in each state."""
        return np.stack([self.mask(sid) for sid in sids]) if len(sids) else np.zeros((0, self.size), bool)

    def restrict_ties(self, masks: np.ndarray, sids: Sequence[int], histories: Sequence[list[int]]) -> None:
        """In place: where a tie waits for its note, allow only the tied note's own pitch token."""
        for row, sid in enumerate(sids):
            if not self._states[sid].tied:
                continue
            ids = histories[row]
            k = len(ids) - 1
            while k >= 0 and self._cls[ids[k]] == _BAR:
                k -= 1
            if k < 1 or self._cls[ids[k]] != _TIE:
                continue
            k -= 1
            if self._cls[ids[k]] == _LENGTH:
                k -= 1
            if k >= 0 and self._cls[ids[k]] == _NOTE:
                keep = masks[row, ids[k]]
                masks[row, self._is_note] = False
                masks[row, ids[k]] = keep

    def next(self, sid: int, token: int) -> int:
        """The state after ``token`` (-1 if it is not allowed)."""
        state = self._states[sid]
        group = int(self._group_of[token])
        key = (sid, -1 - group) if state.phase == _BODY and group >= 0 else (sid, token)
        nxt = self._next.get(key)
        if nxt is None:
            result = self._step(state, token)
            nxt = -1 if result is None or (self.constrain and not self._is_feasible(result)) else result
        if nxt.__class__ is not int:  # worked out with the mask, interned when first taken
            nxt = self._intern(nxt)
        self._next[key] = nxt
        return nxt

    def closing(self, sid: int) -> int:
        """The same state with the length guard's request to end."""
        out = self._closing.get(sid)
        if out is None:
            state = self._states[sid]
            out = sid if state.closing or state.phase == _DONE else self._intern(_set(state, closing=True))
            self._closing[sid] = out
        return out

    def eos_fix(self, sid: int) -> tuple[str, str] | None:
        """What ``</s>`` in state ``sid`` adds to the tune: ("append", bar), ("replace", bar) or None."""
        if sid not in self._fix:
            result = self._eos(self._states[sid])
            self._fix[sid] = result[1] if result is not None else None
        return self._fix[sid]

    # --- masks

    def _compute_mask(self, state: _State) -> np.ndarray:
        mask = np.zeros(self.size, bool)
        if state.phase == _DONE:
            return mask
        if state.phase == _TITLE:
            limit = self.title_length if self.title_length is not None else self.max_title
            if state.title < limit:
                mask |= self._title_ok[0 if state.title == 0 else 1]
            if self.title_length is None or state.title == self.title_length:
                mask |= self._slot_mask(0)
            return mask
        if state.phase == _HEADER:
            return self._slot_mask(state.slot).copy()
        if not self.constrain:
            for token in range(self.size):
                mask[token] = self._step(state, token) is not None
            return mask
        sid = self._ids[state]
        # an event whose length may follow: anything but a length first gives it length 1, once
        committed = self._commit(state, _R) if state.ev else state
        lengths = state.ev or (state.chord >= 0 and state.chord_len) or (state.grace >= 0 and state.grace_len)
        for number, ((cls, value), ids) in enumerate(self._groups):
            if cls == _LENGTH:
                result = self._step(state, ids[0]) if lengths else None
            else:
                result = None if committed is None else self._step(committed, ids[0])
            if result is not None and self._is_feasible(result):
                mask[ids] = True
                self._next[(sid, -1 - number)] = result
            else:
                self._next[(sid, -1 - number)] = -1
        if state.closing and mask[self.eos]:
            mask[:] = False
            mask[self.eos] = True
        return mask

    def _slot_mask(self, slot: int) -> np.ndarray:
        """The tokens allowed in a header slot (the fixed one, or any of its kind that can be kept)."""
        mask = np.zeros(self.size, bool)
        if slot >= len(self.slots):
            return mask
        letter = self.slots[slot]
        for token, (cls, value, kind) in enumerate(zip(self._cls, self._val, self._slot_of)):
            if cls != _HEAD or kind != letter or (letter in self.fixed and token not in self.fixed[letter]):
                continue
            if letter == "M" and self.constrain and letter not in self.fixed and not _bar_ticks(value):
                continue
            mask[token] = True
        return mask

    # --- transitions

    def _step(self, s: _State, token: int) -> _State | None:
        cls, value = self._cls[token], self._val[token]
        if s.phase == _DONE or cls == _SPECIAL:
            return None
        if s.phase == _TITLE:
            return self._title(s, token)
        if s.phase == _HEADER:
            return self._header(s, token)
        if not self.constrain:
            if cls == _EOS:
                return _set(s, phase=_DONE)
            return s if cls != _HEAD else None
        if cls == _EOS:
            result = self._eos(s)
            return result[0] if result is not None else None
        if s.ending == 3 and cls != _ENDING:
            return None
        # an event whose length may follow: a length ends it, anything else first gives it length 1
        if s.ev:
            if cls == _LENGTH:
                return self._commit(s, value)
            s = self._commit(s, _R)
            if s is None:
                return None
        if cls == _NOTE:
            if s.chord >= 0:
                # every note of a chord as long as the first (abc2midi warns of unequal ones)
                if s.chord >= _MAX_CHORD or s.chord_len == 2:
                    return None
                if s.chord == 0:
                    return _set(s, chord=1, chord_len=1, chord_first=_R)
                return _set(s, chord=s.chord + 1, chord_len=0 if s.chord_first == _R else 2)
            if s.grace >= 0:
                if s.grace >= _MAX_GRACE:
                    return None
                return _set(s, grace=s.grace + 1, grace_len=True, graced=s.graced + _R)
            return self._event(s, _NOTE_EV)
        if cls == _LENGTH:
            if s.chord >= 0 and s.chord_len:
                if s.chord_len == 2 and value != s.chord_first:
                    return None
                return _set(s, chord_len=0, chord_first=value if s.chord == 1 else s.chord_first)
            if s.grace >= 0 and s.grace_len and value < _R:
                return _set(s, grace_len=False, graced=s.graced - _R + value)
            return None
        if s.chord >= 0:
            if cls == _CHORD_CLOSE and s.chord >= 1 and s.chord_len != 2:
                if s.chord_first != _R:
                    # the notes have a length: no length after ']' (abc2midi would take that alone)
                    s = _set(s, chord=-1, chord_len=0, ev=_CHORD_EV, ev_mul=(1, 1), last=_EVENT_OPEN)
                    return self._commit(s, s.chord_first)
                return _set(s, chord=-1, chord_len=0, ev=_CHORD_EV, ev_mul=(1, 1), last=_EVENT_OPEN)
            return None
        if s.grace >= 0:
            if cls == _GRACE_CLOSE and s.grace >= 1:
                return _set(s, grace=-1, grace_len=False, last=_GRACE_LAST)
            return None
        if cls == _REST:
            return self._event(s, _REST_EV)
        if cls == _CHORD_OPEN:
            if s.tuplet:
                return None  # abc2midi times chords in tuplets otherwise
            return self._event(s, _CHORD_EV)
        if cls == _BAR:
            return self._bar(s, value)
        if cls == _ENDING:
            return self._ending(s, value)
        if cls == _GRACE_OPEN:
            if s.closing or s.last in (_TIE_LAST, _BROKEN_LAST, _GRACE_LAST) or s.tied or s.force or s.tuplet:
                return None  # (abc2midi counts grace notes in a tuplet among its notes)
            return _set(s, grace=0, last=_GRACE_IN)
        if cls == _TIE:
            if s.closing or s.last != _EVENT or s.last_kind != _NOTE_EV or s.tied:
                return None  # ties join single notes (to the same pitch: see row_mask)
            return _set(s, tied=True, last=_TIE_LAST)
        if cls == _BROKEN:
            if (s.closing or s.last != _EVENT or s.last_kind == _REST_EV or s.tied or s.tuplet
                    or s.last_tuplet or s.paired or s.force):
                return None
            return _set(s, force=s.last_len, last=_BROKEN_LAST)
        if cls == _TUPLET:
            if (s.closing or s.tuplet or s.tied or s.force
                    or s.last not in (_START, _BAR_LAST, _EVENT, _FIELD_LAST, _ENDING_LAST)):
                return None
            p, q, r = value
            return _set(s, tuplet=r or p, factor=(q or default_tuplet_q(p, s.compound), p), last=_TUPLET_LAST)
        if cls == _FIELD_K:
            if s.closing or s.tied or s.tuplet or s.force or s.last not in (
                    _START, _BAR_LAST, _EVENT, _ENDING_LAST):
                return None
            return _set(s, last=_FIELD_LAST)
        # inline [M:] changes are not written: abc2midi times tuplets by the header meter and
        # checks the bars of a repeat against the meter of its first pass
        return None

    def _title(self, s: _State, token: int) -> _State | None:
        if self.is_title[token] and self._cls[token] != _EOS:
            if not self._title_ok[0 if s.title == 0 else 1][token]:
                return None  # a title ABC readers cannot mistake for anything else
            limit = self.title_length if self.title_length is not None else self.max_title
            return _set(s, title=s.title + 1) if s.title < limit else None
        if self.title_length is not None and s.title != self.title_length:
            return None
        return self._header(_set(s, phase=_HEADER), token)

    def _header(self, s: _State, token: int) -> _State | None:
        if self._cls[token] != _HEAD or s.slot >= len(self.slots):
            return None
        letter = self.slots[s.slot]
        if self._slot_of[token] != letter:
            return None
        if letter in self.fixed and token not in self.fixed[letter]:
            return None
        value = self._val[token]
        if letter == "M":
            bar = _bar_ticks(value, s.unit)
            if self.constrain and not bar and letter not in self.fixed:
                return None  # free meter: no bars to keep
            s = _set(s, bar=bar, compound=not value.free and value.numerator % 3 == 0)
        elif letter == "L":  # after M: the bar in units of this L rather than of 1/8
            bar = s.bar * Fraction(1, 8) / value
            s = _set(s, unit=(value.numerator, value.denominator),
                     bar=int(bar) if bar.denominator == 1 else 0)
        slot = s.slot + 1
        if slot == len(self.slots):
            # the body starts; how long the title was no longer matters (fewer states to learn)
            return _set(s, slot=slot, phase=_BODY, title=0)
        return _set(s, slot=slot)

    def _event(self, s: _State, kind: int) -> _State | None:
        if s.last in (_GRACE_LAST, _TIE_LAST, _BROKEN_LAST) and kind == _REST_EV:
            return None
        if s.tied and kind == _REST_EV:
            return None
        if (s.closing or s.tied) and kind == _CHORD_EV:
            return None  # (a tie joins single notes)
        # what only the next token after an event or a bar line could use is forgotten here, so
        # that tunes share more states (and their masks)
        s = _set(s, tied=False, ending_music=True, last_len=0, last_kind=0, last_tuplet=False,
                 paired=False, last_bar="", last_full=False)
        if kind == _CHORD_EV:
            return _set(s, chord=0, chord_first=_R, chord_len=0, last=_CHORD_IN)
        return _set(s, ev=kind, ev_mul=s.factor if s.tuplet else (1, 1), last=_EVENT_OPEN)

    def _commit(self, s: _State, length: int) -> _State | None:
        num, den = s.ev_mul
        written, rest = divmod(length * num, den)
        if rest or written <= 0 or (s.force and written != s.force) or 4 * written <= s.graced:
            return None
        tuplet_len = s.tuplet_len
        if s.tuplet:
            q, p = s.factor
            plain = written * p // q  # the length as written, before the tuplet's q/p
            if tuplet_len and plain != tuplet_len:
                return None  # all notes of a tuplet alike (abc2midi warns otherwise)
            tuplet_len = plain
        tuplet = s.tuplet - 1 if s.tuplet else 0
        return _set(s, ev=0, ev_mul=(1, 1), pos=s.pos + written, last=_EVENT, last_len=written,
                          last_kind=s.ev, last_tuplet=bool(s.tuplet), force=0, tuplet=tuplet,
                          factor=s.factor if tuplet else (1, 1), graced=0,
                          paired=bool(s.force) or bool(s.graced),  # no > or < after either
                          tuplet_len=tuplet_len if tuplet else 0)

    def _bar(self, s: _State, kind: str) -> _State | None:
        if (s.chord >= 0 or s.grace >= 0 or s.tuplet or s.force
                or s.last in (_TUPLET_LAST, _GRACE_LAST, _BROKEN_LAST, _GRACE_IN, _CHORD_IN)):
            return None
        if s.pos == 0:
            # only |: at the start, or right after :| (written :| |:, the ABC ::)
            if kind != "|:" or s.repeat == 1 or s.ending in (1, 3) or s.closing:
                return None
            if s.last == _START or (s.last == _BAR_LAST and s.last_bar == ":|"):
                return _set(s, repeat=1, after_open=True, last=_BAR_LAST, last_bar="|:",
                                  rep_pickup=False, ending=0)
            return None
        if kind == "|:" and (s.repeat == 1 or s.ending == 1 or s.closing):
            return None
        if kind == "||" and (s.repeat == 1 or s.ending == 1):
            return None
        if kind == ":|" and (s.repeat == 0 or s.ending == 2):
            return None
        if kind == "|" and s.closing and s.ending == 1:
            return None
        if s.tied and kind != "|":
            return None  # a tie crosses a plain bar line only
        measure = s.pos
        full = measure == s.bar
        pickup_measure = False
        need = False
        pickup = s.pickup
        if s.first:
            if measure > s.bar:
                return None
            if not full:
                if kind not in ("|", "|:"):
                    return None
                pickup_measure, pickup = True, measure
        elif s.need_pickup:
            if measure != s.pickup or kind not in ("|", "|:"):
                return None
            pickup_measure = True
        elif full:
            if kind == ":|" and s.rep_pickup:
                return None  # a repeat that began with the pickup ends with the bar completing it
        elif s.pickup and measure == s.bar - s.pickup:
            # the bar that complements the pickup, at a section end: a repeat that began with the
            # pickup (abc2midi plays the pickup after it on the way back), or a section line with
            # the pickup written again after it. Played on, the short bar needs a pickup after it
            # (except the close of ending 1: ending 2 follows the full bar before ending 1).
            if kind == "|" or (kind == ":|" and not s.rep_pickup):
                return None
            need = not (kind == ":|" and s.ending == 1)
        else:
            return None
        rep_pickup = s.rep_pickup
        repeat, ending = s.repeat, s.ending
        if pickup_measure and (s.after_open or (s.first and s.repeat == 2)):
            # a pickup right after |: (or the tune's, for a :| that repeats from the start); not
            # a pickup written before |: (abc2midi leaves it out when it goes back)
            rep_pickup = True
        if kind == ":|":
            repeat, rep_pickup = 0, False
            ending = 3 if s.ending == 1 else 0
        elif kind == "|:":
            repeat, ending, rep_pickup = 1, 0, False
        elif kind == "||":
            repeat, ending = 0, 0
        counted = s.measures + (0 if pickup_measure else 1)
        return _set(s, pos=0, first=False, pickup=pickup, need_pickup=need,
                          after_open=kind == "|:", rep_pickup=rep_pickup,
                          repeat=repeat, ending=ending, last=_BAR_LAST, last_bar=kind,
                          last_full=full, measures=min(counted, self.min_bars), paired=False,
                          last_kind=0, last_tuplet=False, last_len=0)

    def _ending(self, s: _State, numbers: tuple[int, ...]) -> _State | None:
        if s.last != _BAR_LAST or s.pos:
            return None
        if s.tied:
            return None
        if numbers == (1,):
            if (s.last_bar != "|" or s.ending or s.repeat == 0 or not s.last_full or s.need_pickup
                    or s.closing):
                return None
        elif numbers == (2,):
            if s.ending != 3:
                return None
        else:
            return None
        return _set(s, ending=numbers[0], last=_ENDING_LAST, after_open=False, ending_music=False)

    def _eos(self, s: _State) -> tuple[_State, tuple[str, str] | None] | None:
        if s.phase != _BODY:
            return None
        if not self.constrain:
            return _set(s, phase=_DONE), None
        if s.ev:
            s = self._commit(s, _R)
            if s is None:
                return None
        if (s.chord >= 0 or s.grace >= 0 or s.tuplet or s.tied or s.force or s.ending in (1, 3)
                or s.last in (_TUPLET_LAST, _GRACE_LAST, _BROKEN_LAST, _FIELD_LAST, _ENDING_LAST,
                              _START, _GRACE_IN, _CHORD_IN)
                or (s.ending == 2 and not s.ending_music)):
            return None
        fix = None
        if s.last == _BAR_LAST:
            if s.last_bar == "|":
                if not s.last_full or (s.repeat == 1 and s.rep_pickup):
                    return None
                fix = ("replace", ":|" if s.repeat == 1 else "||")
            elif s.last_bar not in ("||", ":|"):
                return None
        else:
            kind = ":|" if s.repeat == 1 else "||"
            closed = self._bar(s, kind)
            if closed is None:
                return None
            s, fix = closed, ("append", kind)
        if s.measures < self.min_bars:
            return None
        return _set(s, phase=_DONE), fix

    # --- can the bar still be completed?

    def _reachable(self, remaining: int) -> bool:
        if remaining == 0:
            return True
        if remaining < 0 or remaining % self.grid:
            return False
        cell = remaining // self.grid
        return cell < len(self._reach) and bool(self._reach[cell])

    def _fits(self, s: _State, pos: int, left: int, factor: tuple[int, int], alike: int) -> bool:
        """Whether a measure at ``pos``, with ``left`` tuplet notes of ``factor`` still to come (each
        written ``alike`` long, when known), can end at a bar line the rules allow."""
        if pos > s.bar:
            return False
        if left:
            q, p = factor
            return any(not (length * q) % p and self._fits(s, pos + left * (length * q // p), 0, (1, 1), 0)
                       for length in ((alike,) if alike else self.lengths))
        if s.first:
            return True
        if s.need_pickup:
            return self._reachable(s.pickup - pos)
        if self._reachable(s.bar - pos):
            return True
        return bool(s.pickup) and self._reachable(s.bar - s.pickup - pos)

    def _is_feasible(self, s: _State) -> bool:
        if s.phase != _BODY:
            return True
        known = self._feasible.get(s)
        if known is None:
            known = self._feasible[s] = self._compute_feasible(s)
        return known

    def _event_fits(self, s: _State, written: int, graced: int | None = None) -> bool:
        """Whether an event of this (sounding) length can come now and the measure still end
        (``graced``: the least the grace notes before it can come to)."""
        if (s.force and written != s.force) or 4 * written <= (s.graced if graced is None else graced):
            return False
        if not s.tuplet:
            return self._fits(s, s.pos + written, 0, (1, 1), 0)
        q, p = s.factor
        plain, rest = divmod(written * p, q)
        if rest or (s.tuplet_len and plain != s.tuplet_len):
            return False
        return self._fits(s, s.pos + written, s.tuplet - 1, s.factor, plain)

    def _compute_feasible(self, s: _State) -> bool:
        if not s.bar:
            return True
        q, p = s.factor if s.tuplet else (1, 1)
        if s.ev:  # the open event's length is still to come
            num, den = s.ev_mul
            return any(not (length * num) % den and self._event_fits(s, length * num // den)
                       for length in self.lengths)
        if s.chord >= 0:
            free_first = s.chord == 0 or (s.chord == 1 and s.chord_len == 1)
            # the chord lasts its notes' length, or (notes of length 1) the length after ']'
            return any(self._event_fits(s, length) for length in self.lengths) if free_first or \
                s.chord_first == _R else self._event_fits(s, s.chord_first)
        if s.last == _TIE_LAST and not s.tuplet and self._fits(s, s.pos, 0, (1, 1), 0):
            return True  # the tied note may come after a bar line
        if s.grace >= 0 or s.last in (_GRACE_LAST, _TIE_LAST, _BROKEN_LAST, _TUPLET_LAST, _GRACE_IN):
            # an event must come next (after at least one grace note, in an open grace group)
            graced = s.graced
            if s.grace == 0:
                graced = self.lengths[0]
            elif s.grace > 0 and s.grace_len:
                graced = s.graced - _R + min(self.lengths[0], _R)
            return any(not (length * q) % p and self._event_fits(s, length * q // p, graced)
                       for length in self.lengths)
        return self._fits(s, s.pos, s.tuplet, s.factor, s.tuplet_len)


# ---------------------------------------------------------------------------------------------
# Random numbers: counter-based, one stream per seed

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, on uint64 arrays (wrapping arithmetic)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def uniforms(seeds, steps) -> np.ndarray:
    """Uniform draws in [0, 1), draw ``steps[i]`` of the stream of ``seeds[i]``: a hash of the pair,
    so the same (seed, step) gives the same number on every machine, in any batch."""
    seeds = np.asarray(seeds, dtype=np.uint64).reshape(-1)
    steps = np.asarray(steps, dtype=np.uint64).reshape(-1)
    with np.errstate(over="ignore"):
        x = _mix(seeds * np.uint64(0x9E3779B97F4A7C15) + np.uint64(0x632BE59BD9B4E019))
        x = _mix(x ^ (steps * np.uint64(0xD1B54A32D192ED03) + np.uint64(1)))
    return (x >> np.uint64(11)).astype(np.float64) * (2.0 ** -53)


# ---------------------------------------------------------------------------------------------
# Choosing tokens


def choose_tokens(logits: np.ndarray, masks: np.ndarray, config: SampleConfig, seeds: np.ndarray,
            steps: np.ndarray, noise: np.ndarray | float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pick a token per row: (ids, log-probabilities, fragile).

    The allowed tokens are ranked by probability (equal ones by id); top-k keeps the first k,
    top-p the fewest whose probability reaches p, and the draw u (:func:`uniforms`) takes the token
    whose share of the ranked cumulative probability holds u. Ranking first keeps the unlikely
    tokens together at the end of the cumulative probability, where rounding barely moves it.

    ``noise`` bounds, per row, how far the float rounding of a batch can move each tempered logit
    (0 for the computation on its own). A decision it could change is flagged fragile: a draw so
    near a boundary of the cumulative probability that the boundary could cross it (a boundary at c
    moves at most ``2 c (1 - c) noise``), or a ranking, cut or argmax between two tempered logits
    less than ``2 noise`` apart.
    """
    rows, size = logits.shape
    keep = np.maximum(np.count_nonzero(masks, axis=1), 1)  # tokens with any probability
    order, values = _rank(logits, masks)
    # the allowed tokens come first in every row: the columns after the most any row allows are
    # all -inf (weight 0) and are left out of the work below (greedy sums them all: a pairwise sum
    # rounds by its length)
    width = int(keep.max()) if config.strategy != "greedy" else size
    order = order[:, :width]
    ranked = values[:, :width].astype(np.float64)  # (B, width) descending
    if config.temperature != 1.0:
        ranked /= config.temperature
    size = width
    index = np.arange(rows)
    delta = np.broadcast_to(np.asarray(noise, np.float64), (rows,))

    def close(a: np.ndarray, b: np.ndarray) -> np.ndarray:  # two logits rounding could swap
        with np.errstate(invalid="ignore"):
            return np.isfinite(b) & (a - b < 2 * delta)

    def sensitive(c: np.ndarray, distance: np.ndarray) -> np.ndarray:  # a boundary rounding could move past
        return distance <= 2 * c * (1 - c) * delta

    fragile = np.zeros(rows, bool)
    if config.strategy == "greedy":
        if size > 1:
            fragile = close(ranked[:, 0], ranked[:, 1])
        shifted = ranked - ranked[:, :1]
        logp = -np.log(np.exp(shifted).sum(axis=1))
        return order[:, 0], logp, fragile
    columns = np.arange(size)[None, :]
    if config.top_k and config.top_k < size:
        k = config.top_k
        fragile |= (keep > k) & close(ranked[:, k - 1], ranked[:, k])
        keep = np.minimum(keep, k)
    weights = np.exp(ranked - ranked[:, :1])  # (B, V), ranked; 0 where not allowed
    if config.top_k and config.top_k < size:
        weights *= columns < keep[:, None]
    cumulative = np.cumsum(weights, axis=1)
    total = cumulative[index, keep - 1]
    if config.top_p < 1.0:
        goal = config.top_p * total
        kept = np.minimum((cumulative < goal[:, None]).sum(axis=1) + 1, keep)
        at = cumulative[index, kept - 1] / total
        before = np.where(kept >= 2, cumulative[index, np.maximum(kept - 2, 0)] / total, 0.0)
        fragile |= (kept < keep) & sensitive(at, at - config.top_p)
        fragile |= (kept >= 2) & sensitive(before, config.top_p - before)
        nxt = np.minimum(kept, size - 1)
        fragile |= (kept < keep) & close(ranked[index, kept - 1], ranked[index, nxt])
        keep = kept
        weights *= columns < keep[:, None]
        cumulative = np.cumsum(weights, axis=1)
        total = cumulative[index, keep - 1]
    u = uniforms(seeds, steps)
    position = np.minimum((cumulative <= (u * total)[:, None]).sum(axis=1), keep - 1)
    low = np.where(position > 0, cumulative[index, np.maximum(position - 1, 0)] / total, 0.0)
    high = cumulative[index, position] / total
    fragile |= (position > 0) & sensitive(low, u - low)
    fragile |= (position < keep - 1) & sensitive(high, high - u)
    fragile |= (position > 0) & close(ranked[index, np.maximum(position - 1, 0)], ranked[index, position])
    fragile |= (position < keep - 1) & close(ranked[index, position],
                                            ranked[index, np.minimum(position + 1, size - 1)])
    logp = np.log(weights[index, position] / total)
    return order[index, position], logp, fragile


def _sortable(values: np.ndarray) -> np.ndarray:
    """float32 -> uint32 keys in the opposite order (the highest value has the lowest key)."""
    bits = (values + np.float32(0)).view(np.int32)  # + 0: -0.0 becomes 0.0, so the two tie
    ascending = bits ^ ((bits >> 31) & np.int32(0x7FFFFFFF))  # int32 in the floats' order
    return (~ascending).view(np.uint32) ^ np.uint32(0x80000000)


def _unsortable(keys: np.ndarray) -> np.ndarray:
    """The inverse of :func:`_sortable`."""
    ascending = ~((keys ^ np.uint32(0x80000000)).view(np.int32))
    return (ascending ^ ((ascending >> 31) & np.int32(0x7FFFFFFF))).view(np.float32)


_NO_TOKEN = np.uint64(int(_sortable(np.array([-np.inf], np.float32))[0]) | 1 << 32)  # after every allowed one
_ID_BITS = np.uint64(31)


def _rank(logits: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the token ids by logit, highest first and equal ones by id, the allowed ones before
    the rest, and their logits (float32; -inf for the tokens not allowed).

    One sort of 64-bit keys (not allowed, the logit's order, the id) does what a stable argsort of
    the float logits does, several times faster; everything around it is arithmetic, no masked
    selection (which is slow on random masks)."""
    rows, size = logits.shape
    allowed = masks.astype(np.uint64)
    keys = _sortable(np.asarray(logits, np.float32)).astype(np.uint64) * allowed
    keys += _NO_TOKEN * (np.uint64(1) - allowed)
    keys <<= _ID_BITS
    keys |= np.arange(size, dtype=np.uint64)
    keys.sort(axis=1)
    order = (keys & np.uint64((1 << 31) - 1)).astype(np.intp)
    return order, _unsortable((keys >> _ID_BITS).astype(np.uint32))


def rounding_noise(logits: np.ndarray, temperature: float) -> np.ndarray:
    """Per row, how far a batch's float rounding may move the tempered logits (``noise`` of
    :func:`choose_tokens` for a batched step; 0 is right for a row computed on its own)."""
    return _NOISE * np.maximum(1.0, np.abs(logits).max(axis=1)) / temperature


# ---------------------------------------------------------------------------------------------
# Conditions -> forced tokens


def title_tokens(title: str, vocabulary) -> tuple[list[str], list[str]]:
    """A title as the model's title tokens (spaces as ``▁``), and the characters it cannot read.

    Accents are folded to ASCII first, as the tokenizer does; a character the vocabulary lacks
    tries its other case, else it is left out (and named in the second list).
    """
    import unicodedata

    folded = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode("ascii")
    folded = " ".join(folded.split())
    out, missing = [], []
    for char in folded:
        token = _SPACE if char == " " else char
        if token in vocabulary:
            out.append(token)
        elif char.swapcase() in vocabulary:
            out.append(char.swapcase())
        else:
            missing.append(char)
    while out and out[-1] == _SPACE:
        out.pop()
    return out, missing


@dataclass
class _Plan:
    """A request resolved against a vocabulary: the grammar and the forced tokens."""

    grammar: AbcGrammar
    title: list[int]  # forced after <s>
    prime: list[int]  # forced when the body begins
    warnings: list[str]


def _plan(vocabulary, conditions: Conditions, config: SampleConfig) -> _Plan:
    from folkrnn.vocab import UnknownTokenError

    warnings: list[str] = []
    fixed: dict[str, frozenset[int]] = {}
    for letter, values, option in (("R", conditions.rhythm, "--rhythm"), ("M", conditions.meter, "--meter"),
                                   ("K", conditions.mode, "--mode")):
        if values is None:
            continue
        ids = set()
        for value in (values,) if isinstance(values, str) else values:
            token = f"{letter}:{value}" if letter != "K" else f"K:C{value}"
            if token not in vocabulary:
                known = sorted(t[2:] if letter != "K" else t[3:] for t in vocabulary
                               if t.startswith(f"{letter}:") and len(t) > 2)
                raise OptionError(f"{option} {value}: the model knows no {token} token; it knows "
                                  f"{', '.join(known) or 'none'}")
            ids.add(vocabulary.id(token))
        if ids:
            fixed[letter] = frozenset(ids)
    title_ids: list[int] = []
    title_length = None
    if conditions.title is not None:
        if not any(t == _SPACE or len(t) == 1 and t.isalpha() and t.lower() not in "abcdefg"
                   for t in vocabulary):
            raise OptionError("this model was trained without titles; it cannot read --title")
        chars, missing = title_tokens(conditions.title, vocabulary)
        if missing:
            warnings.append(f"the model knows no {', '.join(repr(c) for c in dict.fromkeys(missing))} "
                            "in titles; left out of what it reads")
        title_ids = vocabulary.encode(chars)
        title_length = len(title_ids)
    prime_ids = []
    for token in conditions.prime:
        if token not in vocabulary:
            raise UnknownTokenError(token, vocabulary.nearest(token))
        prime_ids.append(vocabulary.id(token))
    key = (tuple(vocabulary.tokens), config.constrain, tuple(sorted((k, tuple(sorted(v))) for k, v in fixed.items())),
           title_length,
           config.min_bars, config.max_title)
    grammar = _GRAMMARS.get(key)
    if grammar is None:
        grammar = AbcGrammar(vocabulary.tokens, constrain=config.constrain, fixed=fixed,
                             title_length=title_length, min_bars=config.min_bars,
                             max_title=config.max_title)
        if len(_GRAMMARS) >= 8:
            _GRAMMARS.pop(next(iter(_GRAMMARS)))
        _GRAMMARS[key] = grammar
    return _Plan(grammar, title_ids, prime_ids, warnings)


# Grammars by vocabulary and conditions: the states each has learnt are kept for the next request.
_GRAMMARS: dict[tuple, AbcGrammar] = {}


# ---------------------------------------------------------------------------------------------
# The sampler


class _Row:
    """One tune being sampled."""

    __slots__ = ("index", "seed", "ids", "sid", "forced", "log_prob", "reason")

    def __init__(self, index: int, seed: int, bos: int, sid: int, title: list[int]) -> None:
        self.index, self.seed = index, seed
        self.ids = [bos]
        self.sid = sid
        self.forced = list(title)  # tokens still to force (the title now, the prime later)
        self.log_prob = 0.0
        self.reason = ""


def _advance(row: _Row, token: int, plan: _Plan, config: SampleConfig, eos: int) -> str:
    """Move a row on by one token. Returns "" (go on), "done" or a failure reason."""
    grammar = plan.grammar
    before = row.sid
    nxt = grammar.next(before, token)
    if nxt < 0:
        return f"token {grammar.tokens[token]!r} is not allowed here"
    was_body = grammar.in_body(before)
    if token == eos:
        fix = grammar.eos_fix(before)
        if fix is not None:
            how, bar = fix
            bar_id = grammar.tokens.index(bar) if bar in grammar.tokens else None
            if bar_id is None:
                return f"the model has no {bar} token to close the tune"
            if how == "replace":
                row.ids[-1] = bar_id
            else:
                row.ids.append(bar_id)
        row.ids.append(token)
        row.sid = nxt
        return "done"
    row.ids.append(token)
    row.sid = nxt
    if not was_body and grammar.in_body(nxt) and plan.prime:
        row.forced = list(plan.prime)
    if len(row.ids) >= config.max_tokens:
        return f"no end after {config.max_tokens} tokens (the length guard)"
    if len(row.ids) >= config.max_tokens - config.closing_tokens:
        row.sid = grammar.closing(row.sid)
    return ""


_CONTROLLER = None


def one_blas_thread():
    """A context in which BLAS uses one thread: a batch of one runs faster so (its products are
    too small to share, and a busy machine makes waiting threads slow), and always the same way."""
    global _CONTROLLER
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # optional: without it, BLAS keeps its own threads
        return contextlib.nullcontext()
    if _CONTROLLER is None:
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=1, user_api="blas")


def _run_batch(engine, plan: _Plan, vocabulary, config: SampleConfig, jobs: list[tuple[int, int]],
               exact: bool, on_step: Callable[[], None] | None, settle: Callable[[_Row], None],
               one_thread: bool = False, more: Callable[[int], list[tuple[int, int]]] | None = None,
               capacity: int = 0) -> list[tuple[int, int]]:
    """Sample the (index, seed) jobs together; ``settle`` gets each row as it finishes or fails.
    Returns the fragile jobs: each met a decision the batch's rounding could flip, and must be made
    on its own.

    ``exact``: every row computed on its own (a batch of one per step, as ``compose`` makes a
    tune; the rows still share the rest of the work), so nothing is fragile. ``one_thread``: with
    one BLAS thread (the results are the same; a batch of one is faster so on a busy machine).
    ``more(room)``: new jobs for the rows that have finished (continuous batching: the batch stays
    near ``capacity`` rows until no job is left, rather than dwindling to its longest tune)."""
    if one_thread:
        with one_blas_thread():
            return _sample_rows(engine, plan, vocabulary, config, jobs, exact, on_step, settle, more, capacity)
    return _sample_rows(engine, plan, vocabulary, config, jobs, exact, on_step, settle, more, capacity)


def _sample_rows(engine, plan: _Plan, vocabulary, config: SampleConfig, jobs: list[tuple[int, int]],
                 exact: bool, on_step: Callable[[], None] | None, settle: Callable[[_Row], None],
                 more: Callable[[int], list[tuple[int, int]]] | None, capacity: int) -> list[tuple[int, int]]:
    from folkrnn.infer import select_state

    grammar = plan.grammar
    bos, eos = vocabulary.bos_id, vocabulary.eos_id
    rows = [_Row(index, seed, bos, grammar.start, plan.title) for index, seed in jobs]
    # exact: one state per row, each stepped alone; else one batched state
    state = [engine.init_state(1) for _ in rows] if exact else engine.init_state(len(rows))
    current = np.full(len(rows), bos, np.int64)
    fragile: list[tuple[int, int]] = []
    refill = max(1, capacity // 8)  # new rows join a few at a time (each join copies the state)
    while rows:
        if exact:
            stepped = [engine.step(current[i:i + 1], state[i]) for i in range(len(rows))]
            logits = np.concatenate([out for out, _ in stepped])
            state = [new for _, new in stepped]
        else:
            logits, state = engine.step(current, state)
        masks = grammar.masks([row.sid for row in rows])
        grammar.restrict_ties(masks, [row.sid for row in rows], [row.ids for row in rows])
        free = [i for i, row in enumerate(rows) if not row.forced]
        chosen = np.zeros(len(rows), np.int64)
        logps = np.zeros(len(rows))
        unsure = np.zeros(len(rows), bool)
        if free:
            sub = np.asarray(free)
            empty = ~masks[sub].any(axis=1)
            if empty.any():  # a dead end: no token is allowed (cannot happen for a feasible state)
                masks[sub[empty], eos] = True
            seeds = np.array([rows[i].seed for i in free], np.uint64)
            steps = np.array([len(rows[i].ids) for i in free], np.uint64)
            picked = logits[sub]
            noise = 0.0 if exact else rounding_noise(picked, config.temperature)
            ids, logp, close_calls = choose_tokens(picked, masks[sub], config, seeds, steps, noise)
            chosen[sub] = ids
            logps[sub] = logp
            if not exact:
                unsure[sub] = close_calls
            for k in np.flatnonzero(empty):
                rows[free[k]].reason = "the constraint reached a state with no allowed token"
        keep: list[int] = []
        for i, row in enumerate(rows):
            if row.reason:
                settle(row)
                continue
            if unsure[i]:
                fragile.append((row.index, row.seed))
                continue
            if row.forced:
                token = row.forced.pop(0)
                if not masks[i, token]:
                    row.reason = (f"the prime does not fit here: {grammar.tokens[token]!r} after "
                                  f"{' '.join(vocabulary.decode(row.ids[-8:]))}")
                    settle(row)
                    continue
            else:
                token = int(chosen[i])
                row.log_prob += float(logps[i])
            outcome = _advance(row, token, plan, config, eos)
            if outcome == "done":
                settle(row)
            elif outcome:
                row.reason = outcome
                settle(row)
            else:
                keep.append(i)
        if on_step is not None:
            on_step()
        if len(keep) < len(rows):
            state = [state[i] for i in keep] if exact else select_state(state, keep)
            rows = [rows[i] for i in keep]
        if more is not None and (capacity - len(rows) >= refill or not rows):
            added = more(capacity - len(rows))
            if added:
                rows += [_Row(index, seed, bos, grammar.start, plan.title) for index, seed in added]
                fresh = engine.init_state(len(added))
                state = (np.concatenate([state[0], fresh[0]], axis=1),
                         np.concatenate([state[1], fresh[1]], axis=1))
        current = np.array([row.ids[-1] for row in rows], np.int64)
    return fragile


def _result(row: _Row, vocabulary, failures: list[tuple[int, str]], warnings: list[str]) -> Sampled:
    return Sampled(index=row.index, seed=row.seed, tokens=vocabulary.decode(row.ids),
                   log_prob=row.log_prob, failures=list(failures), ok=True, title_warnings=list(warnings))


def sample_tunes(engine, vocabulary, seeds: Sequence[int], *, config: SampleConfig | None = None,
                 conditions: Conditions | None = None, next_seed: Callable[[int], int] | None = None,
                 batch_size: int = 1024, on_finish: Callable[[Sampled], None] | None = None,
                 on_step: Callable[[], None] | None = None, workers: int = 1) -> list[Sampled]:
    """Sample one tune per seed, many at a time; tune i depends only on ``seeds[i]`` and the options.

    Parameters
    ----------
    engine
        The NumPy LSTM (``Checkpoint.engine()``) or anything with ``init_state(batch)`` and
        ``step(ids, state) -> (logits, state)``.
    vocabulary
        The model's :class:`~folkrnn.vocab.Vocabulary`.
    seeds
        One seed per tune.
    config, conditions
        How to sample, and what to force.
    next_seed
        The seed to try after a failed one (default: the failed seed + 1, as ``compose`` does).
    batch_size
        Tunes per step at most.
    on_finish
        Called with each tune as soon as it is made (or given up on), in the order they finish.
    on_step
        Called after every step of the model (for progress).
    workers
        Processes to share the tunes among (each claims tunes from one shared pool as its batch
        has room, samples with one BLAS thread and sends its tunes back as they finish): the
        grammar and the choice of tokens are Python, so a second core doubles that part. Used on
        Linux (where processes fork safely) when every worker gets at least ``MIN_PER_WORKER``
        tunes; the tunes are the same whatever the number (tune i depends only on its seed).

    Returns
    -------
    list[Sampled]
        In the order of ``seeds``.
    """
    config = (config or SampleConfig()).check()
    conditions = conditions or Conditions()
    plan = _plan(vocabulary, conditions, config)
    workers = min(int(workers), len(seeds) // MIN_PER_WORKER)
    if workers > 1 and config.strategy != "beam" and _can_fork():
        return _sample_in_workers(engine, vocabulary, list(seeds), workers, plan, config, on_finish, on_step,
                                  next_seed, batch_size)
    if config.strategy == "beam":
        out = []
        for index, seed in enumerate(seeds):
            result = beam_search(engine, vocabulary, seed=seed, config=config, conditions=conditions,
                                 index=index, plan=plan, on_step=on_step)
            if on_finish is not None:
                on_finish(result)
            out.append(result)
        return out
    results = _sample(engine, vocabulary, list(seeds), plan, config, next_seed, batch_size, on_finish,
                      on_step, claim=None)
    return [results[index] for index in range(len(seeds))]


def _sample(engine, vocabulary, seeds: list[int], plan: _Plan, config: SampleConfig,
            next_seed: Callable[[int], int] | None, batch_size: int,
            on_finish: Callable[[Sampled], None] | None, on_step: Callable[[], None] | None,
            claim: Callable[[int], list[int]] | None) -> dict[int, Sampled]:
    """The tunes of the seeds this process claims (``claim(k)``: up to k more positions in
    ``seeds``, shared by worker processes; None: all of them, here), by their position."""
    next_seed = next_seed or (lambda seed: seed + 1)
    results: dict[int, Sampled] = {}
    failures: dict[int, list[tuple[int, str]]] = {}
    retries: deque[tuple[int, int]] = deque()  # (position, seed) after a failed seed
    if claim is None:
        unclaimed = iter(range(len(seeds)))

        def claim(count: int) -> list[int]:
            return list(itertools.islice(unclaimed, count))

    def more(room: int) -> list[tuple[int, int]]:
        jobs = [retries.popleft() for _ in range(min(room, len(retries)))]
        return jobs + [(index, int(seeds[index])) for index in claim(room - len(jobs))]

    def settle(row: _Row) -> None:
        if not row.reason:
            result = _result(row, vocabulary, failures.get(row.index, []), plan.warnings)
        else:
            history = failures.setdefault(row.index, [])
            history.append((row.seed, row.reason))
            if len(history) < config.attempts:
                retries.append((row.index, next_seed(row.seed)))
                return
            result = Sampled(index=row.index, seed=row.seed, failures=list(history), ok=False,
                             title_warnings=list(plan.warnings))
        results[row.index] = result
        if on_finish is not None:
            on_finish(result)

    alone = len(seeds) == 1  # compose's case: exactly as alone, with one BLAS thread (see one_blas_thread)
    exact_jobs: list[tuple[int, int]] = []
    while True:
        jobs = more(1 if alone else batch_size)
        if jobs and alone:  # on its own from the start: the exact computation, as compose makes it
            exact_jobs += jobs
        elif jobs:
            exact_jobs += _run_batch(engine, plan, vocabulary, config, jobs, exact=False, on_step=on_step,
                                     settle=settle, more=more, capacity=batch_size)
            continue
        if not exact_jobs:
            break
        # the close calls, made again exactly: each row on its own, the rows in step together
        batch, exact_jobs = exact_jobs[:batch_size], exact_jobs[batch_size:]
        _run_batch(engine, plan, vocabulary, config, batch, exact=True, on_step=on_step, settle=settle,
                   one_thread=alone)
    return results


# ---------------------------------------------------------------------------------------------
# Worker processes

MIN_PER_WORKER = 64  # fewer tunes than this a worker would sample in batches too small to pay


def default_workers() -> int:
    """The cores this process may use (at most 16)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 16))


def _can_fork() -> bool:
    """Whether worker processes can be forked safely: on Linux (macOS's system libraries do not
    survive a fork, and Windows has none)."""
    import multiprocessing

    return sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()


def _worker(engine, vocabulary, seeds: list[int], plan: _Plan, config: SampleConfig, options: dict,
            claimed, queue) -> None:
    """A worker process: sample the tunes it claims, sending each (and the steps, now and then) back."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    steps, last = 0, time.monotonic()

    def step() -> None:
        nonlocal steps, last
        steps += 1
        if time.monotonic() - last > 0.1:
            queue.put(("steps", steps))
            steps, last = 0, time.monotonic()

    def claim(count: int) -> list[int]:
        with claimed.get_lock():
            first = claimed.value
            claimed.value = min(first + count, len(seeds))
            return list(range(first, claimed.value))

    try:
        with one_blas_thread():  # the workers share the cores already
            _sample(engine, vocabulary, seeds, plan, config, on_finish=lambda s: queue.put(("tune", s)),
                    on_step=step, claim=claim, **options)
        queue.put(("steps", steps))
        queue.put(("done", None))
    except BaseException as error:  # noqa: BLE001 - every failure goes back to the parent
        try:
            queue.put(("error", error))
        except Exception:  # noqa: BLE001 - an error that cannot be pickled goes back as text
            queue.put(("error", f"{type(error).__name__}: {error}"))


def _sample_in_workers(engine, vocabulary, seeds: list[int], workers: int, plan: _Plan, config: SampleConfig,
                       on_finish: Callable[[Sampled], None] | None, on_step: Callable[[], None] | None,
                       next_seed: Callable[[int], int] | None, batch_size: int) -> list[Sampled]:
    import multiprocessing
    import queue as queues

    from folkrnn.errors import FolkError

    context = multiprocessing.get_context("fork")  # the model and the grammar's states come along
    messages = context.Queue()
    claimed = context.Value("q", 0)  # the next unclaimed position in seeds
    # each worker's batch holds about a quarter of the tunes (with two workers), so that half of
    # them wait in the shared pool for whichever worker has room: both finish together
    share = max(MIN_PER_WORKER // 2, -(-len(seeds) // (2 * workers)))
    options = dict(next_seed=next_seed, batch_size=min(batch_size, share))
    processes = [context.Process(target=_worker, daemon=True,
                                 args=(engine, vocabulary, seeds, plan, config, options, claimed, messages))
                 for _ in range(workers)]
    results: dict[int, Sampled] = {}
    running = len(processes)
    try:
        for process in processes:
            process.start()
        while running:
            try:
                kind, payload = messages.get(timeout=0.5)
            except queues.Empty:
                dead = [p.exitcode for p in processes if p.exitcode not in (None, 0)]
                if dead:
                    raise FolkError(f"a sampling worker process died (exit code {dead[0]})") from None
                continue
            if kind == "tune":
                results[payload.index] = payload
                if on_finish is not None:
                    on_finish(payload)
            elif kind == "steps":
                for _ in range(payload if on_step is not None else 0):
                    on_step()
            elif kind == "done":
                running -= 1
            elif isinstance(payload, BaseException):
                raise payload
            else:
                raise FolkError(f"a sampling worker failed: {payload}")
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join(timeout=5)
        messages.close()
    return [results[index] for index in range(len(seeds))]


def sample_one(engine, vocabulary, seed: int, *, config: SampleConfig | None = None,
               conditions: Conditions | None = None) -> Sampled:
    """One tune, made on its own (as ``compose`` makes it); a failed seed is followed by seed + 1."""
    return sample_tunes(engine, vocabulary, [seed], config=config, conditions=conditions)[0]


# ---------------------------------------------------------------------------------------------
# Beam search


def beam_search(engine, vocabulary, *, seed: int = 0, config: SampleConfig | None = None,
                conditions: Conditions | None = None, index: int = 0, plan: _Plan | None = None,
                on_step: Callable[[], None] | None = None) -> Sampled:
    """The most probable tune by beam search (deterministic: the seed is only recorded).

    W hypotheses are extended by every allowed token; the W best by total log-probability live on.
    A hypothesis that ends is set aside; the search stops when W have ended, when none is left
    alive, or at the length guard. The finished tune with the best
    ``log_prob / tokens ** length_penalty`` wins.
    """
    from folkrnn.infer import select_state

    config = (config or SampleConfig(strategy="beam")).check()
    conditions = conditions or Conditions()
    plan = plan or _plan(vocabulary, conditions, config)
    grammar = plan.grammar
    bos, eos = vocabulary.bos_id, vocabulary.eos_id
    width = config.beam_width
    beams = [_Row(index, seed, bos, grammar.start, plan.title)]
    state = engine.init_state(1)
    ended: list[tuple[float, _Row]] = []
    reason = ""
    while beams:
        logits, state = engine.step(np.array([row.ids[-1] for row in beams], np.int64), state)
        if on_step is not None:
            on_step()
        masks = grammar.masks([row.sid for row in beams])
        grammar.restrict_ties(masks, [row.sid for row in beams], [row.ids for row in beams])
        z = logits.astype(np.float64) / config.temperature
        z[~masks] = -np.inf
        top = z.max(axis=1, keepdims=True)
        with np.errstate(invalid="ignore"):
            logp = z - top - np.log(np.exp(z - top).sum(axis=1, keepdims=True))  # (W, V)
        candidates: list[tuple[float, int, int]] = []  # (score, beam, token)
        for b, row in enumerate(beams):
            if row.forced:
                token = row.forced[0]
                if masks[b, token]:
                    candidates.append((row.log_prob, b, token))
                continue
            allowed = np.flatnonzero(masks[b])
            if len(allowed) > width:
                best = allowed[np.argsort(-logp[b, allowed], kind="stable")[:width]]
            else:
                best = allowed
            candidates.extend((row.log_prob + float(logp[b, t]), b, int(t)) for t in best)
        if not candidates:
            reason = "the constraint left no allowed token"
            break
        candidates.sort(key=lambda item: (-item[0], item[1], item[2]))
        survivors: list[_Row] = []
        parents: list[int] = []
        for score, b, token in candidates:
            if len(survivors) >= width:
                break
            parent = beams[b]
            row = _Row(index, seed, bos, parent.sid, [])
            row.ids = list(parent.ids)
            row.forced = list(parent.forced)
            was_forced = bool(row.forced)
            if was_forced:
                row.forced.pop(0)
            row.log_prob = score
            outcome = _advance(row, token, plan, config, eos)
            if outcome == "done":
                tokens_after_bos = len(row.ids) - 1
                ended.append((score / max(tokens_after_bos, 1) ** config.length_penalty, row))
            elif outcome:
                reason = outcome
            else:
                survivors.append(row)
                parents.append(b)
        if len(ended) >= width or not survivors:
            break
        state = select_state(state, parents)
        beams = survivors
    if not ended:
        return Sampled(index=index, seed=seed, failures=[(seed, reason or "no hypothesis ended")],
                       ok=False, title_warnings=list(plan.warnings))
    ended.sort(key=lambda item: -item[0])
    best = ended[0][1]
    return Sampled(index=index, seed=seed, tokens=vocabulary.decode(best.ids), log_prob=best.log_prob,
                   ok=True, title_warnings=list(plan.warnings))
