"""The ABC constraint: a state machine over the model's tokens that keeps a tune inside its meter.

:class:`AbcGrammar` follows a tune token by token, tracking the position in the bar in exact integer
ticks (the meter, lengths, broken rhythm, tuplets, chords, grace groups, ties), the repeats and
endings, and the form (parts of a set number of bars, each repeated as the form asks), and masks,
before each step, every token that would break them. :mod:`folkrnn.sample` says what it masks and
why; the generic decoding loop that asks it lives in :mod:`folkrnn.decode`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from enum import IntEnum
from fractions import Fraction
from typing import NamedTuple

import numpy as np

from folkrnn.abc.parser import default_tuplet_q
from folkrnn.abc.tokens import NOTE_TOKEN
from folkrnn.errors import OptionError
from folkrnn.music import (
    LETTER_SEMITONES,
    MODES,
    TICKS,
    complement,
    completes,
    key_signature,
    parse_meter,
    usual_pickup,
)

__all__ = ["AbcGrammar", "Compass", "TokenClass", "Form", "parse_form", "TICKS_PER_UNIT", "classify", "bar_ticks",
           "SPACE"]

# Ticks per unit note length (L:1/8 after normalisation), on the one tick grid of folkrnn.music
# (TICKS a quarter note) made eight times finer: 2^12 * 3^2 * 5 * 7, so that lengths down to
# 1/4096 of a unit, tuplets of 2 to 9 and broken rhythm are all whole numbers of ticks.
TICKS_PER_UNIT = 4 * TICKS
_R = TICKS_PER_UNIT



class TokenClass(IntEnum):
    """What a vocabulary token is, for the grammar and the position features (:func:`classify`)."""

    SPECIAL = 0  # <pad> <s> <unk>
    HEAD = 1  # R: M: L: K: header tokens
    NOTE = 2
    LENGTH = 3
    REST = 4
    BAR = 5
    ENDING = 6  # [1 [2
    CHORD_OPEN = 7
    CHORD_CLOSE = 8
    GRACE_OPEN = 9
    GRACE_CLOSE = 10
    TIE = 11
    BROKEN = 12  # > < >> ...
    TUPLET = 13
    FIELD_K = 14  # inline [K:]
    FIELD_M = 15  # inline [M:]
    EOS = 16
    OTHER = 17


# plain ints in the hot paths
_SPECIAL, _HEAD, _NOTE, _LENGTH, _REST, _BAR, _ENDING, _CHORD_OPEN, _CHORD_CLOSE, _GRACE_OPEN, \
    _GRACE_CLOSE, _TIE, _BROKEN, _TUPLET, _FIELD_K, _FIELD_M, _EOS, _OTHER = (int(c) for c in TokenClass)
_LENGTH_RE = re.compile(r"^(\d+)?(?:/(\d+))?$")
_TUPLET_RE = re.compile(r"^\((\d)(?::(\d*)(?::(\d*))?)?$")
_ENDING_RE = re.compile(r"^\[(\d+(?:,\d+)*)$")
_BARS = ("|", "||", "|:", ":|")
SPACE = _SPACE = "\u2581"


def classify(token: str) -> tuple[int, object, str | None]:
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
    if NOTE_TOKEN.match(token):
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


def bar_ticks(meter, unit: tuple[int, int] = (1, 8)) -> int:
    """Ticks in a full bar of a meter (0 for free meter or a length that is not whole ticks)."""
    if meter.free:
        return 0
    units = meter.bar_length / (4 * Fraction(*unit)) * _R
    return int(units) if units.denominator == 1 else 0


# ---------------------------------------------------------------------------------------------
# Forms

LOOSE_PART_BARS = 4  # a loose form's phrase: a dance with no usual form keeps parts of whole phrases
LOOSE_PHRASES = 4  # a loose form's part: at most this many phrases (16 bars of 4)
LOOSE_PARTS = 4  # a loose form's tune: at most this many parts
_MASK_MARGIN = 5  # bars from a part's end beyond which masks do not depend on the count (_mask_key)


class Form(NamedTuple):
    """A tune's form: per part, whether it is played twice; and the bars in each part."""

    parts: tuple[bool, ...]  # AABB: (True, True); ABC: (False, False, False); (): any parts (loose)
    bars: int  # bars in each part (a pickup and the part's closing short bar count as one); loose: a
    # part's bars are a multiple of this

    @property
    def label(self) -> str:
        """The form as musicians write it: "AABB", "ABC", ... ("" for a loose form)."""
        return "".join(chr(ord("A") + k) * (2 if repeated else 1) for k, repeated in enumerate(self.parts))


def parse_form(text: str, bars: int | None = None) -> Form | None:
    """ "AABB" -> Form((True, True), 8); "free" -> None. A letter written twice is a repeated part.

    ``bars``: the bars in each part (default 8 for a form whose parts are all repeated, else 16:
    a part played once is usually written out twice as long)."""
    text = text.strip()
    if text.lower() == "free":
        return None
    parts: list[bool] = []
    k = 0
    while k < len(text):
        letter = text[k]
        if letter != chr(ord("A") + len(parts)):
            raise OptionError(f"form {text!r}: write the parts in order, each once or twice: AABB, AB, ABC, AABBCC "
                              "or free")
        repeated = k + 1 < len(text) and text[k + 1] == letter
        parts.append(repeated)
        k += 2 if repeated else 1
    if not parts or len(parts) > 6:
        raise OptionError(f"form {text!r}: between one and six parts (AABB, AB, ABC, AABBCC or free)")
    if bars is None:
        bars = 8 if all(parts) else 16
    if not 1 <= int(bars) <= 64:
        raise OptionError(f"--part-bars must be between 1 and 64, not {bars}")
    return Form(tuple(parts), int(bars))


# ---------------------------------------------------------------------------------------------
# The grammar

_TITLE, _HEADER, _BODY, _DONE = range(4)
# what the previous body token was
_START, _BAR_LAST, _EVENT_OPEN, _EVENT, _CHORD_IN, _GRACE_IN, _GRACE_LAST, _TIE_LAST, \
    _BROKEN_LAST, _TUPLET_LAST, _FIELD_LAST, _ENDING_LAST = range(12)
_NOTE_EV, _REST_EV, _CHORD_EV = 1, 2, 3
# notes in a chord, at most (a prime may hold six); the model's own chords hold four at most: the default
# corpus's largest have four (645 chords of 2 notes, 16 of 3, 14 of 4; a fiddle has four strings), and
# with six allowed, 6 of 500 generated tunes held a cluster of five or six (B,CDEFA). The masks keep a
# chord to _CHOSEN_CHORD; a forced token may go past it (AbcGrammar.past_chosen_chord)
_MAX_CHORD, _CHOSEN_CHORD = 6, 4
_MAX_GRACE = 4


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
    part: int = 0  # with a form: the part being written (0 = A)
    part_bars: int = 0  # with a form: its bars so far (a pickup not counted, its closing short bar counted)
    ending_bars: int = 0  # with a form: the part's bars where ending 1 began (ending 2 starts there too)
    need_open: bool = False  # with a form: the next part is repeated and must open with |:
    form: int = -1  # the tune's form (an index into the grammar's forms; -1: free)
    rhythm: int = -1  # the R: token written (its meters limit M:)
    hornpipe: bool = False  # R:hornpipe: abc2midi pairs its eighths (4/4), so > and < join a pair (_BROKEN)
    ev_tonic: bool = False  # the open event is a tonic note
    tonic: bool = False  # the last event was a tonic note (a part of a form closes on one)
    part_close: int = 0  # a loose form's part in the last bar of a phrase: 1 closes with it (on its tonic),
    # 2 goes on past it, 0 either (nobody said: AbcGrammar.part_close)
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
    form
        The tune's :class:`Form`: each part has exactly its number of bars (a pickup and the
        part's closing short bar count as one), ends with the repeat sign or double bar the form
        asks (``:|``, or first and second endings, for a repeated part; ``||`` otherwise; ``|:``
        opens a repeated part), and the tune ends when its last part does. Each part closes on the
        tonic, an eighth or longer (a first ending, which leads back, on any note); with
        ``part_tonics`` False (a prime: the musician's parts close where they do), the last alone.
        None: free, as the model writes it.
    rhythm_forms
        ``R:`` token id -> the :class:`Form` (or None, free) of a tune with that rhythm, when the
        model writes R: itself; ``form`` holds for the others.
    rhythm_meters
        ``R:`` token id -> the ``M:`` token ids a tune with that rhythm may take (a dance's
        meters), whether R: is fixed or the model's; the other rhythms take any meter.
    short_pickups
        A pickup is at most half a bar (:func:`folkrnn.music.usual_pickup`), as folk tunes write
        one. False: any short first bar is a pickup (a musician's first phrase, a prime, is kept
        as written).
    part_tonics
        Every part of a form closes on its tonic (:meth:`_final_end`). False: only the tune's last
        part does (a prime's parts close where the musician closed them).
    """

    def __init__(self, tokens: Sequence[str], *, constrain: bool = True, fixed: dict | None = None,
                 title_length: int | None = None, min_bars: int = 4, max_title: int = 60,
                 form: Form | None = None, rhythm_forms: dict | None = None,
                 rhythm_meters: dict | None = None, short_pickups: bool = True, part_tonics: bool = True) -> None:
        self.short_pickups = short_pickups
        self.part_tonics = part_tonics  # every part of a form closes on the tonic (False: the last alone)
        self.tokens = list(tokens)
        self.size = len(self.tokens)
        self.constrain = constrain
        self.fixed = {letter: frozenset([ids]) if isinstance(ids, int) else frozenset(ids)
                      for letter, ids in (fixed or {}).items()}
        self.title_length = title_length
        self.min_bars = min_bars
        # the form: per part, whether it is repeated (None: free, any number of bars and sections)
        # the forms tunes may take (see Form); a state holds the index of its own (-1: free)
        self._forms: list[Form] = []
        self._form_index = {}
        for candidate in [form, *(rhythm_forms or {}).values()]:
            if candidate is not None and candidate not in self._form_index:
                self._form_index[candidate] = len(self._forms)
                self._forms.append(candidate)
        if not constrain:
            self._forms, self._form_index = [], {}
        self._default_form = self._form_index.get(form, -1)
        self._rhythm_meters = {token: frozenset(ids) for token, ids in (rhythm_meters or {}).items() if ids}
        self._rhythm_form = {token: self._form_index.get(value, -1) for token, value in (rhythm_forms or {}).items()}
        self.max_title = max(max_title, title_length or 0)
        info = [classify(token) for token in self.tokens]
        self._cls = [cls for cls, _, _ in info]
        self._val = [value for _, value, _ in info]
        self._slot_of = [slot for _, _, slot in info]
        self._is_note = np.array([cls == _NOTE for cls in self._cls], bool)
        # the tonic: every tune is on C (its mode kept), so a C natural in any octave
        self._tonic = np.array([cls == _NOTE and token.lstrip("=")[:1] in ("C", "c") for token, cls
                                in zip(self.tokens, self._cls)], bool)
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
        bars = [bar_ticks(value) for cls, value, slot in info if cls in (_HEAD, _FIELD_M)
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
            key = (cls, bool(self._tonic[index])) if cls == _NOTE else \
                (cls, None) if cls in (_REST, _FIELD_K) else (cls, value)
            groups.setdefault(key, []).append(index)
        self._groups = list(groups.items())
        self._group_firsts = [(cls, ids[0]) for (cls, _), ids in self._groups]  # a group's class and first token
        self._group_of = np.full(self.size, -1, np.int64)
        for number, (_, ids) in enumerate(self._groups):
            self._group_of[ids] = number
        self._group_list = self._group_of.tolist()  # the same, for one token at a time
        self._states: list[_State] = []
        self._ids: dict[_State, int] = {}
        self._masks: list[np.ndarray | None] = []
        self._shared_masks: dict[_State, np.ndarray] = {}  # by _mask_key: states whose masks are equal
        # the masks worked out so far as one table, row sid (a batch's masks are one gather), whether
        # row sid is filled, and whether state sid waits for a tied note
        self._table = np.zeros((256, self.size), bool)
        self._known = np.zeros(256, bool)
        self._tied = np.zeros(256, bool)
        self._next: dict[tuple[int, int], int] = {}
        self._closing: dict[int, int] = {}
        self._part_closes: dict[tuple[int, bool], int] = {}
        self._feasible: dict[_State, bool] = {}
        self._tuplet_feasible: dict[tuple, bool] = {}  # the same, right after a tuplet sign (_is_feasible)
        self._fix: dict[int, tuple[str, str] | None] = {}
        titled = title_length if title_length is not None else (self.max_title and self.is_title.any())
        start = _State(phase=_TITLE if titled else _HEADER, form=self._default_form)
        self.start = self._intern(start)

    # --- interning


    @property
    def learnt(self) -> int:
        """States learnt so far (each keeps its mask and transitions): a long-lived process drops a
        grammar grown past a bound and starts a fresh one (folkrnn.sample)."""
        return len(self._states)

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

    def before_last_bar(self, sid: int) -> bool:
        """Whether state ``sid`` stands at the bar line before its part's last bar, in a tune held
        to a form of parts (where first and second endings of one bar may begin)."""
        s = self._states[sid]
        if s.form < 0 or s.phase != _BODY or s.pos or s.ending:
            return False
        form = self._forms[s.form]
        return bool(form.parts) and form.bars - s.part_bars == 1

    def phrase_bar(self, sid: int) -> int:
        """In a tune held to a loose form (parts of whole phrases): where state ``sid`` stands at the
        start of the last bar of one of its part's phrases, and nobody has said whether the part
        closes with that bar, the phrases the part holds after it (1, 2, ...); else 0. The caller
        says (:meth:`part_close`; folkrnn.sample draws it as the corpus's parts close)."""
        s = self._states[sid]
        if s.form < 0 or s.phase != _BODY or s.part_close or s.first or s.pos or s.ev \
                or s.last not in (_BAR_LAST, _ENDING_LAST) or s.ending in (1, 3) or s.need_pickup:
            return 0  # (after a bar line, or where ending 2 begins; not in ending 1, whose :| leads back)
        form = self._forms[s.form]
        bars = s.part_bars + 1
        if form.parts or bars % form.bars:
            return 0
        return bars // form.bars

    def part_close(self, sid: int, close: bool) -> int:
        """State ``sid`` (where :meth:`phrase_bar` is not 0) with its part held to close with the
        bar now starting, on its tonic (``close``), or to go on past it; ``sid`` itself where that
        would leave no token."""
        key = (sid, bool(close))
        out = self._part_closes.get(key)
        if out is None:
            out = self._intern(_set(self._states[sid], part_close=1 if close else 2))
            if not self.mask(out).any():
                out = sid
            self._part_closes[key] = out
        return out

    # --- the public steps

    def mask(self, sid: int) -> np.ndarray:
        """Boolean (V,) of the tokens allowed in state ``sid``."""
        mask = self._masks[sid]
        if mask is None:
            state = self._states[sid]
            key = self._mask_key(state)
            mask = self._shared_masks.get(key) if key is not None else None
            if mask is None:  # worked out, with the transitions it finds (next() finds the others)
                mask = self._compute_mask(state)
                if key is not None:
                    self._shared_masks[key] = mask
            self._masks[sid] = mask
            if sid >= len(self._known):  # the table grows by doubling
                rows = max(2 * len(self._known), sid + 1)
                self._table = np.concatenate([self._table, np.zeros((rows - len(self._known), self.size), bool)])
                self._known = np.concatenate([self._known, np.zeros(rows - len(self._known), bool)])
                self._tied = np.concatenate([self._tied, np.zeros(rows - len(self._tied), bool)])
            self._table[sid] = mask
            self._tied[sid] = self._states[sid].tied
            self._known[sid] = True
        return mask

    def masks(self, sids: Sequence[int]) -> np.ndarray:
        """Boolean (B, V) of the tokens allowed in each state (a new array)."""
        sids = np.asarray(sids, np.intp)
        if not len(sids):
            return np.zeros((0, self.size), bool)
        if sids.max() >= len(self._known) or not self._known[sids].all():
            for sid in set(sids.tolist()):
                self.mask(sid)
        return self._table[sids]

    def restrict_ties(self, masks: np.ndarray, sids: Sequence[int], histories: Sequence[list[int]]) -> None:
        """In place: where a tie waits for its note, allow only the tied note's own pitch token (the
        masks of ``sids`` worked out already, as :meth:`masks` does)."""
        sids = np.asarray(sids, np.intp)
        for row in np.flatnonzero(self._tied[sids]).tolist() if len(sids) else ():
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
        group = self._group_list[token]
        key = (sid, -1 - group) if state.phase == _BODY and group >= 0 else (sid, token)
        nxt = self._next.get(key)
        if nxt.__class__ is int:
            return nxt
        if nxt is None:
            result = self._step(state, token)
            nxt = -1 if result is None or (self.constrain and not self._is_feasible(result)) else result
        if nxt.__class__ is not int:  # worked out with the mask, interned when first taken
            nxt = self._intern(nxt)
        self._next[key] = nxt
        return nxt

    def closing(self, sid: int) -> int:
        """The same state with the length guard's request to end; ``sid`` itself where the request
        would leave no token (it came too late in a bar of a first ending for ``:|`` to close it:
        a plain bar line takes the tune on to the next bar, where it is asked again)."""
        out = self._closing.get(sid)
        if out is None:
            state = self._states[sid]
            out = sid
            if not state.closing and state.phase != _DONE:
                # a loose part held to go on past this bar closes with it instead, where it can
                tries = [_set(state, closing=True, part_close=1), _set(state, closing=True)] \
                    if state.part_close == 2 else [_set(state, closing=True)]
                for candidate in tries:
                    out = self._intern(candidate)
                    if self.mask(out).any():
                        break
                else:
                    out = sid
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
            mask = self._slot_mask(state.slot).copy()
            meters = self._rhythm_meters.get(state.rhythm)
            if meters is not None and state.slot < len(self.slots) and self.slots[state.slot] == "M":
                allowed = np.zeros(self.size, bool)
                allowed[list(meters)] = True
                mask &= allowed
            return mask
        if not self.constrain:
            for token in range(self.size):
                mask[token] = self._step(state, token) is not None
            return mask
        sid = self._ids[state]
        # an event whose length may follow: anything but a length first gives it length 1, once
        committed = self._commit(state, _R) if state.ev else state
        lengths = state.ev or (state.chord >= 0 and state.chord_len) or (state.grace >= 0 and state.grace_len)
        allowed = []  # per group of tokens, then False for the tokens in none
        transitions, feasible, step = self._next, self._is_feasible, self._step
        for number, (cls, first) in enumerate(self._group_firsts):
            if cls == _LENGTH:
                result = step(state, first) if lengths else None
            else:
                result = None if committed is None else step(committed, first)
            ok = result is not None and feasible(result)
            allowed.append(ok)
            transitions[(sid, -1 - number)] = result if ok else -1
        allowed.append(False)
        mask = np.array(allowed)[self._group_of]  # one gather, not a fancy assignment per group
        if state.chord >= _CHOSEN_CHORD:
            mask &= ~self._is_note
        if state.closing and mask[self.eos]:
            mask[:] = False
            mask[self.eos] = True
        return mask

    def past_chosen_chord(self, sid: int, token: int) -> bool:
        """Whether ``token`` is a note the masks refuse at ``sid`` only because its chord already holds
        the notes the model may write in one (a prime's chord of five or six goes on)."""
        return bool(self._is_note[token]) and self.state(sid).chord >= _CHOSEN_CHORD and self.next(sid, token) >= 0

    def _mask_key(self, s: _State) -> _State | None:
        """A state whose mask is ``s``'s, shared by the states that differ from ``s`` only in how
        many bars of a part went before, far from the part's end (None: ``s``'s own). A part's bar
        count matters to the rules only by how far its end is (a strict form: the last bars, where
        the part ends, endings begin and its last note is placed; a loose form: the phrase
        a bar is in, the first bar, and the longest part), and a mask looks at most a few bars
        ahead (a tie across a bar line, a tuplet), so a bar six or more from the end stands for all
        the others: half as many masks to work out (5,645 of 12,356 body states, 500 tunes)."""
        if s.form < 0 or s.phase != _BODY:
            return None
        form, bars = self._forms[s.form], s.part_bars
        if form.parts:
            if form.bars - bars <= _MASK_MARGIN:
                return None
            bars = form.bars - _MASK_MARGIN - 1
        else:
            longest = LOOSE_PHRASES * form.bars
            if not bars or form.bars <= 2 or bars + _MASK_MARGIN >= longest:
                return None
            bars = bars % form.bars or form.bars
            if bars + _MASK_MARGIN >= longest:
                return None
        return s if bars == s.part_bars else _set(s, part_bars=bars)

    def _slot_mask(self, slot: int) -> np.ndarray:
        """The tokens allowed in a header slot (the fixed one, or any of its kind that can be kept)."""
        mask = np.zeros(self.size, bool)
        if slot >= len(self.slots):
            return mask
        letter = self.slots[slot]
        for token, (cls, value, kind) in enumerate(zip(self._cls, self._val, self._slot_of)):
            if cls != _HEAD or kind != letter or (letter in self.fixed and token not in self.fixed[letter]):
                continue
            if letter == "M" and self.constrain and letter not in self.fixed and not bar_ticks(value):
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
        form = self._forms[s.form].parts if s.form >= 0 else None
        if form == () and s.part >= LOOSE_PARTS and cls != _EOS:
            return None  # a loose form's last part has ended
        if form and (s.part >= len(form) or s.need_open) and not (
                s.need_open and cls == _BAR and value == "|:"):
            return None  # the form is complete (only </s>), or the next part must open with |:
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
            # whether the note is the tonic matters only in a part's last bar (fewer states elsewhere)
            return self._event(s, _NOTE_EV, bool(self._tonic[token]) and self._final_end(s) >= 0)
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
            if s.hornpipe and s.last_len and not s.bar % 8 and s.last_len == s.bar // 8 \
                    and (s.pos - s.last_len) % (2 * s.last_len):
                # abc2midi plays a hornpipe's notes of an eighth of the bar (eighths in 4/4,
                # sixteenths in 2/4) in pairs from each beat: > or < after one off the beat joins
                # two pairs ("Cannot apply broken rhythm")
                return None
            return _set(s, force=s.last_len, last=_BROKEN_LAST)
        if cls == _TUPLET:
            if (s.closing or s.tuplet or s.tied or s.force
                    or s.last not in (_START, _BAR_LAST, _EVENT, _FIELD_LAST, _ENDING_LAST)):
                return None
            p, q, r = value
            return _set(s, tuplet=r or p, factor=(q or default_tuplet_q(p, s.compound), p), last=_TUPLET_LAST)
        if cls == _FIELD_K:
            # a key changes at a bar line, as all 43 of the default corpus's do: never after a note (the
            # model wrote "d2[K:G] |:" and "e4[K:Gm]g2 :|", and in a tune's last bar the tune would end
            # in another key than its notes), nor before the first, where the header's K: had just set
            # the key ("K:Ador" then "[K:A]BA |": a hornpipe in A major labelled A dorian)
            if s.closing or s.tied or s.tuplet or s.force or s.last not in (_BAR_LAST, _ENDING_LAST):
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
        if letter == "R":
            s = _set(s, rhythm=token, form=self._rhythm_form.get(token, s.form),
                     hornpipe=self.tokens[token].lower() == "r:hornpipe")
        if letter == "M" and token not in self._rhythm_meters.get(s.rhythm, (token,)):
            return None  # a dance in one of its own meters
        if letter == "M":
            bar = bar_ticks(value, s.unit)
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
            # (nor the R: token: its form is kept in `form`), so that tunes share more states
            return _set(s, slot=slot, phase=_BODY, title=0, rhythm=-1)
        return _set(s, slot=slot)

    def _event(self, s: _State, kind: int, tonic: bool = False) -> _State | None:
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
        return _set(s, ev=kind, ev_mul=s.factor if s.tuplet else (1, 1), last=_EVENT_OPEN, ev_tonic=tonic)

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
                          tonic=s.ev == _NOTE_EV and s.ev_tonic, ev_tonic=False,
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
            parts = self._forms[s.form].parts if s.form >= 0 else ()
            if parts and not (s.need_open or (s.last == _START and parts[0])):
                return None  # with a form, only a repeated part opens a repeat
            if s.last == _START or (s.last == _BAR_LAST and s.last_bar == ":|"):
                return _set(s, repeat=1, after_open=True, last=_BAR_LAST, last_bar="|:",
                                  rep_pickup=False, ending=0, need_open=False)
            return None
        if kind == "|:" and (s.repeat == 1 or s.ending == 1 or s.closing):
            return None
        if kind == "||" and (s.repeat == 1 or s.ending == 1):
            return None
        if kind == ":|" and (s.repeat == 0 or s.ending == 2):
            return None
        if kind == "|" and s.closing and s.ending == 1 and not self._inside_phrase(s):
            return None  # asked to end in a first ending: its :| closes this bar (inside a loose
            # form's phrase, where no :| may close a part, at the phrase's end)
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
                if kind not in ("|", "|:") or (self.short_pickups and not usual_pickup(measure, s.bar)):
                    return None  # a pickup is closed by | or |:, and is at most half a bar
                pickup_measure, pickup = True, measure
        elif s.need_pickup:
            if measure != s.pickup or kind not in ("|", "|:"):
                return None
            pickup_measure = True
        elif full:
            if kind == ":|" and s.rep_pickup:
                return None  # a repeat that began with the pickup ends with the bar completing it
        elif completes((s.pickup, measure), s.bar):
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
        part, part_bars, ending_bars, need_open = s.part, s.part_bars, s.ending_bars, False
        if s.form >= 0 and not self._forms[s.form].parts:
            # a loose form: up to LOOSE_PARTS parts, each of 1 to 4 phrases of its bars, repeated or not
            target = self._forms[s.form].bars
            part_bars += 0 if pickup_measure else 1
            ends = kind != "|" and not (kind == ":|" and s.ending == 1)
            if ends and kind == "|:" and s.part + 1 >= LOOSE_PARTS and not pickup_measure:
                return None  # the last part a loose form holds has ended: no repeat may open
            if kind != "|" and not (pickup_measure and kind == "|:"):
                if part_bars % target or pickup_measure or s.part_close == 2:
                    return None  # a section line only where a part of whole phrases ends (and is to)
                if s.pickup and not completes((s.pickup, measure), s.bar):
                    return None  # a tune with a pickup closes each part with the bar that completes it
                if s.part_close == 1 and ends and self.part_tonics and not (s.tonic and s.last_len >= _R):
                    return None  # the part closes on its tonic, an eighth or longer (_final_end)
            elif (part_bars >= LOOSE_PHRASES * target or s.part_close == 1) and not pickup_measure:
                return None  # the longest part ends here, or one held to
            if ends and not pickup_measure:
                part, part_bars, ending_bars = part + 1, 0, 0
        elif s.form >= 0:
            form, target = self._forms[s.form].parts, self._forms[s.form].bars
            part_bars += 0 if pickup_measure else 1
            if part_bars < target:
                if kind != "|" and not (pickup_measure and kind == "|:" and form[part]):
                    return None  # inside a part: plain bar lines
            elif part_bars > target:
                return None
            elif s.pickup and not completes((s.pickup, measure), s.bar):
                return None  # a tune with a pickup closes each part with the bar that completes it
            elif s.ending == 1 or (form[part] and s.ending != 2):
                if kind != ":|":
                    return None  # a repeated part ends with :| (ending 1 too)
            else:
                following = part + 1 < len(form) and form[part + 1]
                if kind != ("|:" if following else "||"):
                    return None  # an unrepeated part (or ending 2) ends with || (|: before a repeated part)
            if part_bars == target and s.ending != 1 and self._closes_on_tonic(part, len(form)) \
                    and not (s.tonic and s.last_len >= _R):
                return None  # the part closes on its tonic, an eighth or longer (_final_end)
            if part_bars == target and s.ending != 1:
                part, part_bars, ending_bars = part + 1, 0, 0
                need_open = kind == ":|" and part < len(form) and form[part]
        return _set(s, pos=0, first=False, pickup=pickup, need_pickup=need,
                          part=part, part_bars=part_bars, ending_bars=ending_bars, need_open=need_open,
                          after_open=kind == "|:", rep_pickup=rep_pickup,
                          repeat=repeat, ending=ending, last=_BAR_LAST, last_bar=kind,
                          last_full=full, measures=min(counted, self.min_bars), paired=False,
                          last_kind=0, last_tuplet=False, last_len=0, part_close=0)

    def _ending(self, s: _State, numbers: tuple[int, ...]) -> _State | None:
        if s.last != _BAR_LAST or s.pos:
            return None
        if s.tied:
            return None
        part_bars, ending_bars = s.part_bars, s.ending_bars
        if numbers == (1,):
            if (s.last_bar != "|" or s.ending or s.repeat == 0 or not s.last_full or s.need_pickup
                    or s.closing):
                return None
            if s.form >= 0:
                # first and second endings of one or two bars, in a repeated part
                form = self._forms[s.form]
                if form.parts and (not form.parts[s.part] or form.bars - s.part_bars not in (1, 2)):
                    return None
                ending_bars = s.part_bars
        elif numbers == (2,):
            if s.ending != 3:
                return None
            part_bars = ending_bars  # the second ending takes the first one's bars again
        else:
            return None
        # (a loose part's close is said again where ending 2 begins: none holds in an ending's first bar)
        return _set(s, ending=numbers[0], last=_ENDING_LAST, after_open=False, ending_music=False, part_close=0,
                    part_bars=part_bars, ending_bars=ending_bars)

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
        parts = self._forms[s.form].parts if s.form >= 0 else ()
        if s.form >= 0 and ((s.part < len(parts) if parts else s.part_bars != 0)
                            or (fix is not None and fix[0] == "replace")):
            return None  # the tune ends where its last part does
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
            end = self._final_end(s)
            for length in ((alike,) if alike else self.lengths):
                if (length * q) % p:
                    continue
                each = length * q // p
                after = pos + left * each
                if end >= 0 and (0 < end - after < _R or after == end and each < _R):
                    continue  # a part's last note (the tuplet's, or one after it) an eighth or longer
                if self._fits(s, after, 0, (1, 1), 0):
                    return True
            return False
        if s.first:  # a pickup closes here, or the bar goes on to be full
            return not self.short_pickups or usual_pickup(pos, s.bar) or self._reachable(s.bar - pos)
        if s.need_pickup:
            return self._reachable(s.pickup - pos)
        if s.closing and s.ending == 1 and not self._inside_phrase(s):
            # asked to end inside a first ending: only :| may close this bar (_bar), on a full bar,
            # or on the bar completing the pickup when the repeat began with it
            if s.rep_pickup:
                return bool(s.pickup) and self._reachable(complement(s.pickup, s.bar) - pos)
            return self._reachable(s.bar - pos)
        if s.form >= 0 and s.pickup and not s.rep_pickup and s.repeat == 1:
            # a repeat is open, so the part closes with :| on the bar completing the pickup (a form
            # closes each part so), and that needs the repeat to have begun with the pickup: one
            # written before |: abc2midi leaves out on the way back
            return False
        if s.form >= 0 and not self._forms[s.form].parts:
            bars = self._forms[s.form].bars
            if (s.part_bars + 1) % bars:
                return self._reachable(s.bar - pos)  # inside a part: full bars only
            closes = bool(s.pickup) and self._reachable(complement(s.pickup, s.bar) - pos)
            if s.part_bars + 1 >= LOOSE_PHRASES * bars or s.part_close == 1:
                # the part must end: with the complement, if any
                return closes if s.pickup else self._reachable(s.bar - pos)
            if s.part_close == 2:
                return self._reachable(s.bar - pos)  # the part goes on: a full bar
            return self._reachable(s.bar - pos) or closes
        if s.form >= 0:
            form = self._forms[s.form]
            if s.part_bars + 1 < form.bars:
                return self._reachable(s.bar - pos)  # inside a part: full bars only
            if s.pickup:  # the part's last bar completes the pickup
                return self._reachable(complement(s.pickup, s.bar) - pos)
        if self._reachable(s.bar - pos):
            return True
        return bool(s.pickup) and self._reachable(complement(s.pickup, s.bar) - pos)

    def _is_feasible(self, s: _State) -> bool:
        if s.phase != _BODY:
            return True
        known = self._feasible.get(s)
        if known is None:
            if s.last == _TUPLET_LAST and s.tuplet and not s.ev and s.chord < 0 and s.grace < 0:
                # right after a tuplet sign (a third of the states the masks try): whether its notes
                # fit depends on these fields alone (_compute_feasible's event branch, _event_fits
                # with tuplet notes to come, _fits), which many states share
                key = (s.bar, s.factor, s.tuplet, s.force, s.graced, s.tuplet_len, s.pos, s.first,
                       s.need_pickup, s.pickup, s.form, s.part_bars, s.part, s.ending, s.rep_pickup,
                       s.repeat, s.part_close, s.closing)
                known = self._tuplet_feasible.get(key)
                if known is None:
                    known = self._tuplet_feasible[key] = self._compute_feasible(s)
                self._feasible[s] = known
            else:
                known = self._feasible[s] = self._compute_feasible(s)
        return known

    def _event_fits(self, s: _State, written: int, graced: int | None = None) -> bool:
        """Whether an event of this (sounding) length can come now and the measure still end
        (``graced``: the least the grace notes before it can come to)."""
        if (s.force and written != s.force) or 4 * written <= (s.graced if graced is None else graced):
            return False
        if not s.tuplet:
            end = self._final_end(s)
            if end >= 0 and (0 < end - s.pos - written < _R or s.pos + written == end and not (
                    s.ev == _NOTE_EV and s.ev_tonic and written >= _R)):
                return False  # a part's last note is its tonic, an eighth or longer
            return self._fits(s, s.pos + written, 0, (1, 1), 0)
        q, p = s.factor
        plain, rest = divmod(written * p, q)
        if rest or (s.tuplet_len and plain != s.tuplet_len):
            return False
        if s.tuplet == 1:  # the tuplet's last note: it may be the tune's last
            end = self._final_end(s)
            if end >= 0 and (0 < end - s.pos - written < _R or s.pos + written == end and not (
                    s.ev == _NOTE_EV and s.ev_tonic and written >= _R)):
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
        if s.last == _TIE_LAST and not s.tuplet and self._fits(s, s.pos, 0, (1, 1), 0) and not (
                s.form >= 0 and (s.part_bars + 1) % self._forms[s.form].bars == 0):
            return True  # the tied note may come after a bar line (a plain one: not at a part's end)
        if s.grace >= 0 or s.last in (_GRACE_LAST, _TIE_LAST, _BROKEN_LAST, _TUPLET_LAST, _GRACE_IN):
            # an event must come next (after at least one grace note, in an open grace group)
            graced = s.graced
            if s.grace == 0:
                graced = self.lengths[0]
            elif s.grace > 0 and s.grace_len:
                graced = s.graced - _R + min(self.lengths[0], _R)
            return any(not (length * q) % p and self._event_fits(s, length * q // p, graced)
                       for length in self.lengths)
        end = self._final_end(s)
        if end >= 0 and not s.tuplet and (s.pos == end and not (s.tonic and s.last_len >= _R)
                                          or 0 < end - s.pos < _R):
            return False  # no room left for the last note, a tonic an eighth or longer
        return self._fits(s, s.pos, s.tuplet, s.factor, s.tuplet_len)

    def _final_end(self, s: _State) -> int:
        """Where a part's last bar ends, when ``s`` is in it (a strict form's part, or a loose form's
        held to close with this bar; not in ending 1): there its last note is the tonic, an eighth or
        longer; -1 otherwise.

        Every part closes on the tonic, not only the tune's last: in the default corpus's tunes
        written AABB in 8-bar parts without endings (1,628), the A part's last note is the tonic in
        87% (the tune's in 94%), where the sampler's A parts, held to the tonic only at the tune's
        end, closed on it in 45% (600 default tunes, 431 such). Their B parts then closed as their
        A parts had less often too: bar 16 was bar 8 again in 29% of tunes (real 54%); 54% with
        this rule (seed 2024, 1,000 tunes)."""
        if s.form < 0 or s.ending in (1, 3):
            return -1
        form = self._forms[s.form]
        if not form.parts:  # a loose form's part held to close with this bar (part_close)
            return complement(s.pickup, s.bar) if s.part_close == 1 and self.part_tonics else -1
        if s.part_bars + 1 != form.bars or not self._closes_on_tonic(s.part, len(form.parts)):
            return -1
        return complement(s.pickup, s.bar)

    def _inside_phrase(self, s: _State) -> bool:
        """Whether the bar ``s`` is in lies inside a loose form's phrase (not its last bar)."""
        return s.form >= 0 and not self._forms[s.form].parts and bool((s.part_bars + 1) % self._forms[s.form].bars)

    def _closes_on_tonic(self, part: int, parts: int) -> bool:
        """Whether part ``part`` (0 = A) of a form of ``parts`` parts closes on the tonic: every part,
        or with ``part_tonics`` False (a prime) the last alone."""
        return self.part_tonics or part + 1 == parts


# ---------------------------------------------------------------------------------------------
# The compass: how far apart a tune's lowest and highest notes may be


_ACCIDENTALS = {"^^": 2, "^": 1, "=": 0, "_": -1, "__": -2}


class Compass:
    """Keeps each tune within a compass of ``semitones`` from its lowest note to its highest (two
    octaves, 24, is a whistle's or a wooden flute's, and holds 97% of O'Neill's tunes).

    A tune's notes so far set the window: a note token that would widen it past the compass is
    masked. Pitches are the tokens' own, in the tune's mode on C (the K: token) with the key
    signature, an explicit accidental overriding it (an accidental carried from earlier in the bar
    is not followed: at most a semitone off, at the window's edge only).

    Parameters
    ----------
    tokens
        The vocabulary's tokens in id order.
    semitones
        The compass (0: none).
    """

    def __init__(self, tokens: Sequence[str], semitones: int) -> None:
        self.semitones = int(semitones)
        self.size = len(tokens)
        self.is_note = np.zeros(self.size, bool)
        self._mode_of = {}  # K: token id -> row of the pitch table
        plain = np.zeros(self.size, np.int64)  # pitch without key signature
        letters = np.full(self.size, -1, np.int64)
        explicit = np.zeros(self.size, bool)
        for index, token in enumerate(tokens):
            match = NOTE_TOKEN.match(token)
            if match:
                accidental, letter, marks = match.groups()
                octave = 5 if letter.islower() else 4
                octave += marks.count("'") - marks.count(",")
                plain[index] = 12 * octave + LETTER_SEMITONES[letter.upper()] + _ACCIDENTALS.get(accidental or "", 0)
                letters[index] = "CDEFGAB".index(letter.upper())
                explicit[index] = accidental is not None
                self.is_note[index] = True
            elif token.startswith("K:C") and token[3:] in MODES:
                self._mode_of[index] = token[3:]
        modes = sorted(set(self._mode_of.values())) or ["maj"]
        self._pitches = np.zeros((len(modes), self.size), np.int64)
        for row, mode in enumerate(modes):
            signature = key_signature("C", mode)
            shift = np.array([signature.get(letter, 0) for letter in "CDEFGAB"] + [0])
            self._pitches[row] = plain + np.where(explicit | ~self.is_note, 0, shift[letters])
        self._row = {token: modes.index(mode) for token, mode in self._mode_of.items()}
        # the same as Python lists, for one token at a time
        self._note_list = self.is_note.tolist()
        self._pitch_lists = self._pitches.tolist()
        self._pitches16 = self._pitches.astype(np.int16)  # (pitches are MIDI-like numbers) for restrict

    def start(self) -> list:
        """A tune's compass state: [mode row, lowest, highest] (no note yet)."""
        return [0, 1 << 30, -(1 << 30)]

    def take(self, state: list, token: int) -> None:
        """Follow one token of a tune (its K: sets the mode; a note widens the window)."""
        row = self._row.get(token)
        if row is not None:
            state[0] = row
        elif self._note_list[token]:
            pitch = self._pitch_lists[state[0]][token]
            if pitch < state[1]:
                state[1] = pitch
            if pitch > state[2]:
                state[2] = pitch

    def restrict(self, masks: np.ndarray, states: Sequence[list]) -> None:
        """In place: mask the note tokens each tune's compass leaves out."""
        if not self.semitones:
            return
        # not a tune whose tokens are forced (None), nor one with no note yet
        rows = [row for row, state in enumerate(states) if state is not None and state[2] >= state[1]]
        if not rows:
            return
        spans = np.array([states[row] for row in rows], np.int64)  # (n, 3): mode, lowest, highest
        pitches = self._pitches16[spans[:, 0]]  # (n, V)
        outside = (pitches > spans[:, 1:2] + self.semitones) | (pitches < spans[:, 2:3] - self.semitones)
        masks[rows] &= ~(outside & self.is_note)
