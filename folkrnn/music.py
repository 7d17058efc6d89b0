"""The hub every format converts through: Tune and Note, meters, keys and modes.

Times are exact: onsets and durations are ``Fraction`` quarter notes, never floats. A Tune keeps
its notes in written order with the bar lines, repeats and endings between them; ``unfold()``
plays it as a player would. Nothing here knows about ABC, MIDI or models.
"""

from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from math import ceil, gcd

from folkrnn.tables import MODES as _MODE_TABLE

__all__ = [
    "Note", "BarLine", "FieldChange", "Tune", "Meter", "Key",
    "MODES", "MODE_NAMES", "LETTERS", "LETTER_SEMITONES",
    "key_signature", "signature_items", "parse_meter", "pitch_class_name", "expand_parts", "unfold_segments",
    "TICKS", "quarters_from_ticks", "ticks_from_quarters", "complement", "completes", "count_bars", "usual_pickup",
]

# Letter names in order, their semitones above C, and their place on the line of fifths.
LETTERS = "CDEFGAB"
LETTER_SEMITONES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_LINE_OF_FIFTHS = {"F": -1, "C": 0, "G": 1, "D": 2, "A": 3, "E": 4, "B": 5}
_SHARP_ORDER = "FCGDAEB"

# The modes (folkrnn.tables.MODES), by their canonical three-letter name, with their offset on the
# line of fifths from the major key of the same tonic (D dorian has the signature of C major:
# 2 - 2 = 0), and their names in words.
MODES = {code: mode.fifths for code, mode in _MODE_TABLE.items()}
MODE_NAMES = {code: mode.name for code, mode in _MODE_TABLE.items()}


# Exact time as integers: ticks per quarter note, 2^10 * 3^2 * 5 * 7, which times every length
# ABC writes (units down to 1/4096 of a whole note, tuplets of 2 to 9, broken rhythm down to an
# eighth) exactly. Hot loops count in ticks and hand out Fractions of a quarter note.
TICKS = 2 ** 10 * 3 ** 2 * 5 * 7


def _quarters_fast(ticks: int) -> Fraction:
    divisor = gcd(ticks, TICKS)
    value = object.__new__(Fraction)
    value._numerator = ticks // divisor
    value._denominator = TICKS // divisor
    return value


def _quarters_plain(ticks: int) -> Fraction:
    return Fraction(ticks, TICKS)


# The fast path builds the Fraction without its argument checks, relying on how CPython's
# Fraction stores itself; it is checked once here, else the plain way is used.
quarters_from_ticks = _quarters_fast if _quarters_fast(TICKS // 2) == Fraction(1, 2) \
    and hash(_quarters_fast(TICKS // 2)) == hash(Fraction(1, 2)) else _quarters_plain
quarters_from_ticks.__doc__ = "``Fraction(ticks, TICKS)``: ticks -> exact quarter notes."
FAST_FRACTIONS = quarters_from_ticks is _quarters_fast
_ZERO = Fraction(0)


class _QuarterNotes(dict):
    """ticks -> ``quarters_from_ticks(ticks)``, each made once: the same times recur in every
    tune (a Fraction is immutable, so one object can serve them all). Bounded: cleared when full."""

    __slots__ = ()

    def __missing__(self, ticks: int) -> Fraction:
        if len(self) >= 1 << 16:
            self.clear()
        value = self[ticks] = quarters_from_ticks(ticks)
        return value


# Shared by the parser and unfold(): ``QUARTER_NOTES[ticks]`` is a Fraction of a quarter note.
QUARTER_NOTES = _QuarterNotes()


def _ticks_or_none(quarters: Fraction) -> int | None:
    """Exact quarter notes -> ticks, or None when the time is not a whole number of ticks."""
    if FAST_FRACTIONS and type(quarters) is Fraction:
        numerator, denominator = quarters._numerator, quarters._denominator
    else:
        numerator, denominator = quarters.numerator, quarters.denominator
    return None if TICKS % denominator else numerator * (TICKS // denominator)


def ticks_from_quarters(quarters: Fraction) -> int:
    """Exact quarter notes -> ticks (a multiple of 1/TICKS, as every parsed time is)."""
    return quarters.numerator * (TICKS // quarters.denominator)


def key_signature(tonic: str, mode: str) -> dict[str, int]:
    """Accidentals (letter -> -1, 0 or +1) of the key signature of ``tonic`` (e.g. ``"F#"``) in ``mode``.

    >>> key_signature("D", "maj")["F"], key_signature("D", "dor")["F"]
    (1, 0)
    """
    return dict(signature_items(tonic, mode))


@lru_cache(maxsize=1024)
def signature_items(tonic: str, mode: str) -> tuple[tuple[str, int], ...]:
    """``key_signature`` as a tuple of (letter, accidental) pairs, C to B, made once per key."""
    letter, alter = tonic[0].upper(), tonic.count("#") - tonic.count("b")
    fifths = _LINE_OF_FIFTHS[letter] + 7 * alter + MODES[mode]
    sig = dict.fromkeys(LETTERS, 0)
    if fifths > 0:
        for i in range(fifths):
            sig[_SHARP_ORDER[i % 7]] += 1
    elif fifths < 0:
        for i in range(-fifths):
            sig[_SHARP_ORDER[6 - i % 7]] -= 1
    return tuple(sig.items())


def pitch_class_name(pitch_class: int, prefer_flats: bool = False) -> str:
    """A tonic name for a pitch class: 0 -> "C", 1 -> "C#" (or "Db" with ``prefer_flats``)."""
    sharps = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
    flats = ["C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B"]
    return (flats if prefer_flats else sharps)[pitch_class % 12]


@dataclass(frozen=True, slots=True)
class Key:
    """A key: its tonic name (``"G"``, ``"F#"``, ``"Bb"``), mode, and the signature it implies.

    ``signature`` maps each letter to its accidental (-2..2). It is the mode's signature unless
    the K: field spelled out explicit accidentals or asked for none (``K:none``, ``K:HP``).
    """

    tonic: str = "C"
    mode: str = "maj"
    signature: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}")
        if not self.signature:
            object.__setattr__(self, "signature", signature_items(self.tonic, self.mode))

    @property
    def accidentals(self) -> dict[str, int]:
        return dict(self.signature)

    @property
    def tonic_pitch_class(self) -> int:
        return (LETTER_SEMITONES[self.tonic[0]] + self.tonic.count("#") - self.tonic.count("b")) % 12

    def __str__(self) -> str:
        return f"{self.tonic}{self.mode}"


@dataclass(frozen=True, slots=True)
class Meter:
    """A time signature. ``numerator == 0`` means free meter (``M:none``)."""

    numerator: int = 4
    denominator: int = 4
    symbol: str = ""  # "C" or "C|" when written that way

    @property
    def free(self) -> bool:
        return self.numerator == 0

    @property
    def bar_length(self) -> Fraction:
        """Length of a full bar in quarter notes (0 for free meter)."""
        return Fraction(4 * self.numerator, self.denominator)

    @property
    def compound(self) -> bool:
        """6/8, 9/8, 12/8 and the like: beats of three."""
        return self.numerator % 3 == 0 and self.numerator > 3 and self.denominator >= 8

    def __str__(self) -> str:
        if self.free:
            return "none"
        return f"{self.numerator}/{self.denominator}"


def parse_meter(text: str) -> Meter:
    """``"6/8"``, ``"C"``, ``"C|"``, ``"none"``, ``"2+3/8"`` -> Meter. Raises ValueError."""
    text = text.strip()
    if text.lower() in ("", "none") or text.upper().startswith("FREI"):  # Essen writes FREI4
        return Meter(0, 1)
    if text == "C":
        return Meter(4, 4, "C")
    if text == "C|":
        return Meter(2, 2, "C|")
    if text.startswith("(") and text.endswith(")"):
        text = text[1:-1]
    num, sep, den = text.partition("/")
    if not sep:
        raise ValueError(f"meter {text!r} is not N/D, C, C| or none")
    try:
        numerator = sum(int(part) for part in num.replace("(", "").replace(")", "").split("+"))
        denominator = int(den)
    except ValueError:
        raise ValueError(f"meter {text!r} is not N/D, C, C| or none") from None
    if numerator <= 0 or denominator <= 0 or numerator > 64 or denominator > 64:
        raise ValueError(f"meter {text!r} is out of range")
    return Meter(numerator, denominator)


# ---------------------------------------------------------------------------------------------
# The pickup rule and the counting of bars: the one statement of both. The sampler's grammar
# (folkrnn.abc.grammar, bar by bar as a tune is written), the validator and the form scanner
# (folkrnn.validate, folkrnn.form, over a whole tune) read them here; the position features
# (folkrnn.abc.features) count a part's bars by the same rule (a short first bar not counted).
# tests/test_form_grammar.py checks that the parts the grammar closes have the bars the form
# scanner counts, and tests/test_music.py the rule itself.


def completes(lengths, whole) -> bool:
    """Whether short bars of these lengths, played one after another, make exactly one whole bar of
    length ``whole`` (any unit): a pickup and the short bar that closes its section or the tune
    (or the two short bars either side of a section line) count as one bar between them."""
    lengths = tuple(lengths)
    return whole > 0 and len(lengths) > 1 and all(0 < n < whole for n in lengths) and sum(lengths) == whole


def usual_pickup(length, whole) -> bool:
    """Whether a short first bar of ``length`` reads as a pickup as folk tunes write one: at most half
    a bar. 2,869 of the 2,876 pickups of the default corpus's training tunes are (a quarter, a sixth
    or an eighth of the bar most often); the other 7 run to 2/3 or 7/8 of it. Longer ones are legal
    ABC (the validator takes them); the sampler's grammar writes only these."""
    return 0 < length and 2 * length <= whole


def complement(pickup, whole):
    """The length of the bar that closes a section begun with a pickup of length ``pickup`` (a whole
    bar when there is no pickup): the two together make one bar (:func:`completes`)."""
    return whole - pickup if pickup else whole


def count_bars(measures) -> int:
    """How many bars some measures make, each given as ``(length, whole, rest_bars)`` in one unit:
    a full bar (or a longer one: one bar as written, and an error of its own) counts one, a
    whole-bar rest (``Z4``) its ``rest_bars``, a free-meter measure (``whole`` 0) one, and short
    bars their share of a bar, the sum rounded half down: a pickup and the short bar completing it
    make one, a lone pickup none."""
    full, short = 0, Fraction(0)
    for length, whole, rest_bars in measures:
        if rest_bars:
            full += rest_bars
        elif not whole or length >= whole:
            full += 1
        else:
            short += Fraction(length, whole)
    return full + ceil(short - Fraction(1, 2))


class Note(namedtuple("Note", "pitch onset duration grace", defaults=(False,))):
    """One sounding note: MIDI ``pitch``; ``onset`` and ``duration`` in quarter notes, exact.

    Grace notes carry ``grace=True`` and no length: they sound just before ``onset``. A Note is
    an immutable named tuple, so that a tune of thousands of notes is cheap to build.
    """

    __slots__ = ()

    def __new__(cls, pitch: int, onset: Fraction, duration: Fraction, grace: bool = False) -> Note:
        if not 0 <= pitch <= 127:
            raise ValueError(f"pitch {pitch} is outside MIDI's 0..127")
        if duration < 0:
            raise ValueError(f"duration {duration} is negative")
        return tuple.__new__(cls, (pitch, onset, duration, grace))

    @property
    def end(self) -> Fraction:
        return self.onset + self.duration


@dataclass(frozen=True, slots=True)
class BarLine:
    """A bar line in written order.

    ``kind`` is one of ``| || |] [| |: :| ::``. ``ending`` holds the numbers of the ending
    that starts right after it (``(1,)`` for ``|1``, ``(1, 2)`` for ``[1,2``), else ``()``.
    ``note_index`` is how many notes were written before it, ``onset`` where it stands.
    """

    onset: Fraction
    kind: str
    note_index: int
    ending: tuple[int, ...] = ()

    @property
    def starts_repeat(self) -> bool:
        return self.kind in ("|:", "::")

    @property
    def ends_repeat(self) -> bool:
        return self.kind in (":|", "::")


@dataclass(frozen=True, slots=True)
class FieldChange:
    """A header field changed inside the body (``[K:D]``, ``[M:3/4]``, a ``K:`` line), at ``onset``."""

    onset: Fraction
    note_index: int
    field: str
    value: str


@dataclass
class Tune:
    """A tune as written: header fields, notes in written order, and its bar lines.

    ``fields`` keeps every header field in order as (letter, value); the properties give the
    usual ones. ``notes`` are in the tune's own key and written time; ``unfold()`` expands
    repeats and endings.
    """

    fields: list[tuple[str, str]] = field(default_factory=list)
    meter: Meter = field(default_factory=Meter)
    unit: Fraction = Fraction(1, 8)
    key: Key = field(default_factory=Key)
    notes: list[Note] = field(default_factory=list)
    bars: list[BarLine] = field(default_factory=list)
    changes: list[FieldChange] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    end: Fraction | None = None  # where the written music ends, rests after the last note counted

    def field_values(self, letter: str) -> list[str]:
        return [value for name, value in self.fields if name == letter]

    def _first(self, letter: str) -> str:
        values = self.field_values(letter)
        return values[0] if values else ""

    @property
    def number(self) -> str:
        return self._first("X")

    @property
    def title(self) -> str:
        return self._first("T")

    @property
    def rhythm(self) -> str:
        return self._first("R")

    @property
    def tempo(self) -> str:
        return self._first("Q")

    @property
    def length(self) -> Fraction:
        """Written length in quarter notes (repeats not expanded)."""
        ends = [note.end for note in self.notes]
        ends += [bar.onset for bar in self.bars]
        return max(ends, default=Fraction(0))

    def unfold(self) -> list[Note]:
        """The notes in playback order, repeats, endings and parts expanded, re-timed.

        A player's reading; where abc2midi plays the notation otherwise, docs/abc2midi.md says
        who is right and why. ``:|`` goes back to the last ``|:`` or ``::``; with none, the
        first ``:|`` of the tune goes back to its start, and a later one to just after the
        previous ``:|``, or after a ``||``/``|]`` written after that (not one before a first
        ending, ``||1``). A ``|:`` while an earlier ``|:`` is still open closes it first, as if
        written ``::``. On the next pass, an ending whose numbers do not include the pass number
        is skipped up to the ending that does, or up to the next ``:|``, ``|:``, ``||`` or ``|]``.
        A repeat with endings goes back after its first pass, and after a later one only while
        an ending is numbered for the pass after it, so ``|1 ... :|2 ... :|`` plays twice, not
        three times. A header ``P:`` (``P:ABA``, ``P:(AB)2``) plays the body's parts in that
        order.
        """
        order = _part_order(self) if self.changes else ""
        if not order:
            return _unfold(self.notes, self.bars, _ZERO, None, False)[0]
        parts = _split_parts(self)
        out: list[Note] = []
        time = Fraction(0)
        for label in order:
            if label not in parts:
                continue
            notes, bars, start, end = parts[label]
            played, length = unfold_segments(notes, bars, start, end)
            shift = time - start
            out.extend(Note(n.pitch, n.onset + shift, n.duration, n.grace) for n, _ in played)
            time += length
        return out


def _part_order(tune: Tune) -> str:
    """The header P: field expanded, if the body labels its parts; else ''."""
    header = [value for name, value in tune.fields if name == "P"]
    if not header or not any(change.field == "P" for change in tune.changes):
        return ""
    return expand_parts(header[0])


def expand_parts(text: str) -> str:
    """A P: field's play order, expanded: ``(AB)2C`` -> ``ABABC``, ``A2B`` -> ``AAB``."""
    text = text.split("%", 1)[0].replace(" ", "").replace(".", "")

    def expand(pos: int) -> tuple[str, int]:
        out = ""
        while pos < len(text):
            char = text[pos]
            if char == "(":
                item, pos = expand(pos + 1)
            elif char == ")":
                return out, pos + 1
            elif char.isalpha():
                item, pos = char, pos + 1
            else:
                pos += 1
                continue
            digits = ""
            while pos < len(text) and text[pos].isdigit():
                digits += text[pos]
                pos += 1
            out += item * min(int(digits or 1), 16)
        return out, pos

    return expand(0)[0]


def _split_parts(tune: Tune) -> dict[str, tuple[list[Note], list[BarLine], Fraction, Fraction]]:
    """The body cut at its P: labels: label -> (notes, bars rebased, written start, written end)."""
    marks = [(c.note_index, c.onset, c.value.strip()[:1]) for c in tune.changes if c.field == "P"]
    cuts = [(0, Fraction(0), "")] + marks + [(len(tune.notes), tune.length, None)]
    parts = {}
    for (index, onset, label), (next_index, next_onset, _) in zip(cuts, cuts[1:]):
        if label is None or label in parts:
            continue
        notes = tune.notes[index:next_index]
        bars = [BarLine(b.onset, b.kind, b.note_index - index, b.ending) for b in tune.bars
                if onset <= b.onset <= next_onset and index <= b.note_index <= next_index]
        parts[label] = (notes, bars, onset, next_onset)
    return parts


def _goes_back(bars: list[BarLine], repeat_start: int, seg: int, pass_number: int,
              passes_taken: set[int] | None) -> bool:
    """Whether the ``:|`` at ``bars[seg]`` sends the player back for another pass.

    A plain repeat goes back once. A repeat with endings goes back after the first pass, and
    after a later one while an ending is numbered for the pass after it (``|1,2 ... :|3`` goes
    back twice), so a ``:|`` or ``::`` closing the last ending (``|1 ... :|2 ... :|``) ends the
    section, as a player reads it, rather than going back to play the body once more with no
    ending.
    """
    first = max(repeat_start - 1, 0)
    if not any(bar.ending for bar in bars[first:seg + 1]):
        return not passes_taken  # not the close of an ending
    if passes_taken and pass_number in passes_taken:
        return False
    if pass_number == 1:
        return True  # the first time through always goes back, ending 2 written or not
    for j in range(first, len(bars)):
        bar = bars[j]
        if j > seg and not bar.ending and bar.kind in ("|:", "::", "||", "|]", ":|"):
            break
        if pass_number + 1 in bar.ending:
            return True
    return False


def unfold_segments(notes: list[Note], bars: list[BarLine], start: Fraction = Fraction(0),
                    end: Fraction | None = None) -> tuple[list[tuple[Note, int]], Fraction]:
    """Unfold written notes and bar lines that run from ``start`` to ``end`` (see ``Tune.unfold``).

    Returns each played note with the index of the written note it came from, and the played
    length. ``end`` defaults to the last note's end or last bar line.
    """
    return _unfold(notes, bars, start, end, True)


def _written_end(notes: list[Note], bars: list[BarLine], start: Fraction, end: Fraction | None) -> Fraction:
    """The written end: ``end``, else the last notes' ends (ties and chords reach back only a few
    notes) or the last bar line, whichever is later."""
    last = end or start
    for note in notes[-16:]:
        onset, duration = note[1], note[2]
        onset_ticks, duration_ticks = _ticks_or_none(onset), _ticks_or_none(duration)
        if onset_ticks is not None and duration_ticks is not None:
            note_end = QUARTER_NOTES[onset_ticks + duration_ticks]
        else:
            note_end = onset + duration
        if note_end > last:
            last = note_end
    if bars and bars[-1].onset > last:
        last = bars[-1].onset
    return last


def _shifted(notes: list[Note], offset: int | Fraction) -> list[Note]:
    """The notes moved later by ``offset`` (ticks when an int, else quarter notes), re-timed in
    integer ticks where the times allow it (every parsed tune's do)."""
    new_note = tuple.__new__
    shift = offset if type(offset) is int else _ticks_or_none(offset)
    if shift is not None and FAST_FRACTIONS:
        try:
            return [new_note(Note, (note[0],
                                    QUARTER_NOTES[note[1]._numerator * (TICKS // note[1]._denominator) + shift],
                                    note[2], note[3]))
                    if not TICKS % note[1]._denominator else
                    new_note(Note, (note[0], note[1] + QUARTER_NOTES[shift], note[2], note[3]))
                    for note in notes]
        except AttributeError:  # an onset that is not a Fraction (an int): the plain way
            pass
    if type(offset) is int:
        offset = QUARTER_NOTES[offset]
    out = []
    for note in notes:
        onset = note[1]
        onset_ticks = None if shift is None else _ticks_or_none(onset)
        onset = QUARTER_NOTES[onset_ticks + shift] if onset_ticks is not None else onset + offset
        out.append(new_note(Note, (note[0], onset, note[2], note[3])))
    return out


_REPEAT_KINDS = frozenset((":|", "::", "|:"))


def _unfold(notes: list[Note], bars: list[BarLine], start: Fraction, end: Fraction | None,
            indexed: bool) -> tuple[list, Fraction | None]:
    """unfold_segments, giving (note, index) pairs when ``indexed``, else the notes alone and no
    length (no caller of that form needs it, and the end is then never read)."""
    for bar in bars:
        if bar.kind in _REPEAT_KINDS or bar.ending:
            break
    else:  # nothing to expand
        if not indexed:
            return list(notes), None
        end = _written_end(notes, bars, start, end)
        return list(zip(notes, range(len(notes)))), end - start
    # Segment k runs from bar k-1 to bar k; segment 0 from the start.
    boundaries = [0] + [bar.note_index for bar in bars] + [len(notes)]
    if indexed:
        end = _written_end(notes, bars, start, end)
    else:
        end = bars[-1].onset  # a skip to the end plays nothing more: where it is is never read
    onsets = [start] + [bar.onset for bar in bars] + [end]
    # Count time in integer ticks when every time is a whole number of them (a parsed tune's are)
    ticks = [_ticks_or_none(onset) for onset in onsets]
    if None not in ticks:
        onsets = ticks
    first = onsets[0]
    out: list = []
    offset = 0  # added to written onsets to get played onsets
    repeat_start = 0  # the segment a :| goes back to
    written_start = False  # was repeat_start set by a written |: (which a || does not move)?
    taken: dict[int, set[int]] = {}  # the :| bars already taken, with the passes they ended
    pass_number = 1
    seg = 0
    steps, limit = 0, 8 * (len(bars) + 2) ** 2
    while seg < len(boundaries) - 1:
        steps += 1
        if steps > limit:  # no player could follow this; play it as written
            return (list(zip(notes, range(len(notes)))) if indexed else list(notes)), \
                (end - start if indexed else None)
        if seg > 0 and bars[seg - 1].ending and pass_number not in bars[seg - 1].ending:
            target = len(boundaries) - 1
            for j in range(seg, len(bars)):
                nxt = bars[j]
                if nxt.ending and pass_number in nxt.ending:
                    target = j + 1
                    break
                if nxt.kind in (":|", "::", "|:", "||", "|]") and not nxt.ending:
                    target = j + 1
                    break
            offset -= onsets[target] - onsets[seg]
            seg = target
            continue
        low, high = boundaries[seg], boundaries[seg + 1]
        if offset:
            # re-time in integer ticks where the times allow it (every parsed tune's do)
            played = _shifted(notes[low:high], offset)
            out.extend(zip(played, range(low, high)) if indexed else played)
        elif indexed:
            out.extend(zip(notes[low:high], range(low, high)))
        else:
            out.extend(notes[low:high])
        if seg >= len(bars):
            break
        bar = bars[seg]
        kind = bar.kind
        ends_repeat = kind == ":|" or kind == "::"  # (bar.ends_repeat, without the call)
        # a |: while a written |: is still open closes it first, as if written :: (abc2midi)
        closes = ends_repeat or (kind == "|:" and written_start
                                 and all(s < repeat_start for s in taken))
        if closes and _goes_back(bars, repeat_start, seg, pass_number, taken.get(seg)):
            taken.setdefault(seg, set()).add(pass_number)
            pass_number += 1
            offset += onsets[seg + 1] - onsets[repeat_start]
            seg = repeat_start
            continue
        if kind == "|:" or kind == "::":  # bar.starts_repeat
            repeat_start, pass_number, written_start = seg + 1, 1, True
        elif ends_repeat and not bar.ending:
            # a finished repeat: the next :| with no |: comes back here (a `:|2` passed on the
            # second time through opens that pass's ending instead)
            repeat_start, pass_number, written_start = seg + 1, 1, False
        elif kind in ("||", "|]") and not bar.ending and taken and seg > max(taken) and not (
                written_start and repeat_start > max(taken)):
            # a section end after a repeat, with no |: since: the next :| comes back here (not
            # one passed again on the way back through a repeat: that would restart the count
            # of endings)
            repeat_start, pass_number, written_start = seg + 1, 1, False
        seg += 1
    if not indexed:
        return out, None
    length = onsets[-1] - first + offset
    return out, quarters_from_ticks(length) if type(length) is int else length
