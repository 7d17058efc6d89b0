"""ABC text -> Tune: the notes as a player reads them, in the tune's own key and written time.

It applies the key signature, carries accidentals through the bar, merges ties, and times broken
rhythm, tuplets, chords, grace notes, rests and inline key, meter and length changes. Where ABC
2.1 leaves a case open, it follows abc2midi, the reference player, unless abc2midi's reading
is not what a musician would play; docs/abc2midi.md lists every case where the two still differ
on the default corpus, and why. Accidentals: ``propagate`` chooses.
"""

from __future__ import annotations

from fractions import Fraction
from functools import partial
from itertools import repeat
from operator import itemgetter

from folkrnn.abc.lexer import (
    ANNOT,
    BAR,
    BROKEN,
    CHORD_END,
    CHORD_START,
    DECO,
    ENDING,
    FIELD,
    GRACE_END,
    GRACE_START,
    MREST,
    NOTE,
    REST,
    SLUR,
    TIE,
    TUPLET,
    Lexed,
    cache_by_record,
    cache_for,
    default_unit,
    lex,
    parse_key_cached,
    parse_meter_cached,
    parse_unit_cached,
)
from folkrnn.errors import AbcError, FolkError
from folkrnn.music import LETTER_SEMITONES, QUARTER_NOTES, TICKS, BarLine, FieldChange, Note, Tune

__all__ = ["parse", "tune_from_lexed", "default_tuplet_q", "PROPAGATE"]

# How far an accidental reaches within its bar, as ABC 2.1's %%propagate-accidentals names it:
# "pitch" (the default, and abc2midi's): the letter in every octave; "octave": the same octave.
PROPAGATE = ("pitch", "octave")

_MAX_UNITS = 256  # the longest note length we accept, in units of L

# A plain note (no accidental, none carried to it in its bar, no tie into it) under a signature and
# a unit length: its record -> ((pitch, (letter, octave)), ticks). The same few dozen notes make up
# nearly every tune, so most notes are one look-up. Keyed by (signature, ticks per unit).
_PLAIN_NOTES: dict[tuple, dict] = cache_by_record()
_first = itemgetter(0)
_SET_BAR_FIELDS = tuple(getattr(BarLine, name).__set__ for name in ("onset", "kind", "note_index", "ending"))


def _quick_bar_line(onset: Fraction, kind: str, note_index: int, ending: tuple[int, ...]) -> BarLine:
    """``BarLine(onset, kind, note_index, ending)`` for values already checked, in half the time
    (a frozen dataclass's __init__ sets each field through object.__setattr__)."""
    bar = object.__new__(BarLine)
    set_onset, set_kind, set_index, set_ending = _SET_BAR_FIELDS
    set_onset(bar, onset)
    set_kind(bar, kind)
    set_index(bar, note_index)
    set_ending(bar, ending)
    return bar


# the quick way only where it makes the same BarLine as the constructor (BarLine has no checks)
_new_bar_line = BarLine
if not hasattr(BarLine, "__post_init__") \
        and _quick_bar_line(Fraction(1), "|", 2, (1,)) == BarLine(Fraction(1), "|", 2, (1,)):
    _new_bar_line = _quick_bar_line
_new_note = partial(tuple.__new__, Note)  # the values were checked while parsing: skip Note's own checks


def default_tuplet_q(p: int, compound: bool) -> int:
    """The default q of ``(p``; ``compound`` as abc2midi reads it: the numerator divides by 3."""
    if p in (2, 4, 8):
        return 3
    if p in (3, 6):
        return 2
    return 3 if compound else 2


def parse(tune_text: str, *, propagate: str | None = None) -> Tune:
    """Parse one tune's ABC text into a Tune. Raises AbcError naming the line and column.

    Parameters
    ----------
    tune_text
        The tune, from its X: line (a header without X: is accepted) to its last music line.
    propagate
        ``"pitch"`` (ABC 2.1's default, and abc2midi's): an accidental holds for its letter in
        every octave until the bar line; ``"octave"``: only in its own octave. None: what the
        tune's ``%%propagate-accidentals`` says, else ``"pitch"``.
    """
    return parse_lexed(tune_text, propagate=propagate)[0]


def parse_lexed(tune_text: str, *, propagate: str | None = None) -> tuple[Tune, Lexed]:
    """:func:`parse`, also giving back the lexer's reading (for callers that look at where
    things are written, such as the validator, without lexing the text again)."""
    try:
        lexed = lex(tune_text)
        return tune_from_lexed(lexed, propagate=propagate), lexed
    except FolkError:
        raise
    except (ValueError, ZeroDivisionError, OverflowError) as error:  # defensive: a bug, named
        raise AbcError(f"cannot read this tune: {error}") from None


# Time inside the parser is counted in integer ticks (music.TICKS to a quarter note), which
# keeps Fraction arithmetic out of the loop. Notes leave as Fractions.


def _ticks_per_unit(unit: Fraction, lexed: Lexed, at: int) -> int:
    ticks, rest = divmod(TICKS * 4 * unit.numerator, unit.denominator)
    if rest:
        raise lexed.error(f"the note length L:{unit} is too fine to time exactly", at)
    return ticks


def tune_from_lexed(lexed: Lexed, *, propagate: str | None = None, marks: list | None = None) -> Tune:
    """Interpret lexed items as notes and bar lines (see :func:`parse`).

    ``marks``, a list, receives ``(record index, notes before it, onset)`` for each decoration,
    chord symbol or slur sign outside grace groups (which the Tune does not keep): the index into
    ``lexed.records``, how many of the tune's notes come before it, and the time it is written at
    in quarter notes. ``folkrnn.sheet`` draws them from this.
    """
    header = lexed.header
    meter = header.meter
    unit = header.unit if header.unit is not None else default_unit(meter)
    tune = Tune(fields=list(header.fields), meter=meter, unit=unit, key=header.key)
    warnings = tune.warnings
    warnings.extend(lexed.warnings)
    signature = header.key.accidentals
    signature_key = header.key.signature
    by_octave = (propagate or lexed.header.propagate) == "octave"

    # The notes as parallel lists while they can still change (ties, broken rhythm).
    spelled: list[tuple[int, tuple[str, int]]] = []  # (pitch, the (letter, octave) written)
    onsets: list[int] = []
    durations: list[int] = []
    grace_indices: list[int] = []
    bars: list[tuple[str, int, tuple[int, ...]]] = []  # (kind, note index, ending) of each bar line
    bar_ticks: list[int] = []  # each bar line's onset in ticks
    changes: list[tuple[int, int, str, str]] = []
    unit_ticks = _ticks_per_unit(unit, lexed, 0)
    plain_notes = _plain_notes(signature_key, unit_ticks)
    t = 0
    bar_acc: dict = {}

    tuplet_left = 0
    tuplet_q = tuplet_p = 1
    compound = meter.numerator % 3 == 0 and not meter.free

    # The last note event (single note, chord or rest), for broken rhythm and ties:
    # its start, its duration, and the indices of its notes.
    last_start = last_duration = 0
    last_written = 0  # its length as written, tuplet applied (broken rhythm compares these)
    last_indices: list[int] = []
    broken = 0  # pending broken rhythm: +n for '>' * n, -n for '<' * n
    broken_at = 0
    tied: dict[tuple[str, int], int] = {}  # (letter, octave) -> index of the note tied onward
    tie_pending = False
    pending_graces: list[int] = []  # grace notes waiting for the note they ornament

    in_chord = False
    chord_notes: list[tuple[int, int, tuple[str, int]]] = []  # (pitch, ticks, letter key)
    chord_at = 0
    chord_ties: set[tuple[str, int]] = set()  # the notes of this chord tied onward
    in_grace = False
    grace_at = 0
    semitones = LETTER_SEMITONES

    def pitch_of(acc, letter, octave, index, carry=True):
        upper = letter.upper()
        octave_number = octave + 1 if letter > "Z" else octave
        key = (upper, octave_number)
        slot = key if by_octave else upper
        natural = 60 + semitones[upper] + 12 * octave_number
        if acc is not None:
            if carry:
                bar_acc[slot] = acc
            pitch = natural + acc
        elif slot in bar_acc:
            pitch = natural + bar_acc[slot]
        elif key in tied:
            pitch = spelled[tied[key]][0]
        else:
            pitch = natural + signature[upper]
        if not 0 <= pitch <= 127:
            raise lexed.error(f"note {letter}{'' if octave == 0 else octave} is outside MIDI's range",
                              lexed.offset(index))
        return pitch, key

    def ticks_of(n: int, d: int, index: int) -> int:
        if n == 0:
            n = 1  # abc2midi plays A0 as A
            if "a zero note length was read as 1" not in warnings:
                warnings.append("a zero note length was read as 1")
        if d == 0:
            raise lexed.error(f"note length {n}/0 divides by zero", lexed.offset(index))
        if n > _MAX_UNITS * d:
            raise lexed.error(f"note length {n}/{d} is longer than {_MAX_UNITS} units", lexed.offset(index))
        ticks, rest = divmod(unit_ticks * n, d)
        if rest:
            raise lexed.error(f"note length {n}/{d} is too fine to time exactly", lexed.offset(index))
        return ticks

    def place(events, duration: int, is_rest: bool, item_index: int) -> None:
        """Put a note event (a note, a chord's notes, or a rest) at time t and advance t."""
        nonlocal t, tuplet_left, broken, last_start, last_duration, last_written, last_indices
        nonlocal tie_pending
        if tuplet_left:
            tuplet_left -= 1
            duration, rest = divmod(duration * tuplet_q, tuplet_p)
            if rest:
                raise lexed.error("this tuplet note is too short to time exactly", lexed.offset(item_index))
        if broken:
            # as abc2midi: only between notes that sound equally long (a tuplet note and a plain
            # one of the same written length do not), else the `>` is ignored
            if duration == last_written:
                shift = abs(broken)
                if duration % (1 << shift) or last_duration % (1 << shift):
                    raise lexed.error("this broken rhythm is too short to time exactly", broken_at)
                short_last = last_duration >> shift
                if broken > 0:
                    new_last, duration = 2 * last_duration - short_last, duration >> shift
                else:
                    new_last, duration = short_last, 2 * duration - (duration >> shift)
                for note_index in last_indices:
                    durations[note_index] += new_last - last_duration
                t = last_start + new_last
            else:
                warnings.append("broken rhythm between notes of unequal length was ignored")
            broken = 0
        last_written = duration
        start = t
        if pending_graces:
            for note_index in pending_graces:  # grace notes sound just before the note they ornament
                onsets[note_index] = start
            pending_graces.clear()
        indices: list[int] = []
        for pitch_key in events:
            pitch, key = pitch_key
            previous = tied.get(key) if tie_pending else None
            if previous is not None and spelled[previous][0] == pitch:
                durations[previous] = start + duration - onsets[previous]
                indices.append(previous)
            else:
                indices.append(len(spelled))
                spelled.append(pitch_key)
                onsets.append(start)
                durations.append(duration)
        if tied:
            tied.clear()
        tie_pending = False
        last_start, last_duration, last_indices = start, duration, indices
        t = start + duration
        if is_rest:
            last_indices = []

    records = lexed.records
    for index, item in enumerate(records):
        kind = item[0]
        if kind is NOTE:
            if not (in_grace or in_chord or tuplet_left or broken or tie_pending or pending_graces):
                plain = plain_notes.get(item)
                # the common case, as place() would do it, when no accidental written earlier in
                # the bar reaches this note (its slot: its letter, or letter and octave)
                if plain is not None and (not bar_acc or (plain[0][1] if by_octave else plain[0][1][0])
                                          not in bar_acc):
                    pitch_key, ticks = plain
                    last_indices = [len(spelled)]
                    spelled.append(pitch_key)
                    onsets.append(t)
                    durations.append(ticks)
                    last_start = t
                    last_duration = last_written = ticks
                    t += ticks
                    continue
            _, _, acc, letter, octave, n, d = item
            if in_grace:
                # a grace note's accidental is its own: it does not carry through the bar
                pitch, _ = pitch_of(acc, letter, octave, index, carry=False)
                pending_graces.append(len(spelled))
                grace_indices.append(len(spelled))
                spelled.append((pitch, ("", 0)))
                onsets.append(t)
                durations.append(0)
                continue
            pitch, key = pitch_of(acc, letter, octave, index)
            plain = acc is None and not tie_pending and (key if by_octave else key[0]) not in bar_acc
            ticks = unit_ticks if n == 1 and d == 1 else ticks_of(n, d, index)
            if plain and n:  # (a zero length warns, so it is never remembered)
                plain_notes[item] = ((pitch, key), ticks)
            if in_chord:
                chord_notes.append((pitch, ticks, key))
            elif tuplet_left or broken or tie_pending or pending_graces:
                place(((pitch, key),), ticks, False, index)
            else:  # the common case, as place() would do it
                last_indices = [len(spelled)]
                spelled.append((pitch, key))
                onsets.append(t)
                durations.append(ticks)
                last_start, last_duration, last_written = t, ticks, ticks
                t += ticks
        elif kind is BAR:
            if in_chord or in_grace:
                raise lexed.error("a bar line inside a chord or grace group", lexed.offset(index))
            bars.append((item[2], len(spelled), item[3]))
            bar_ticks.append(t)
            if bar_acc:
                bar_acc.clear()
        elif kind is TIE:
            if in_chord:
                # `[d3-f3]`: a tie on one note of a chord, to the same note in what follows
                if chord_notes:
                    chord_ties.add(chord_notes[-1][2])
            elif last_indices and not in_grace:
                tie_pending = True
                tied.clear()
                for note_index in last_indices:
                    tied[spelled[note_index][1]] = note_index
        elif kind is BROKEN:
            if in_chord:
                # `[A>e]`: not ABC (broken rhythm joins two notes, not notes of one chord);
                # ignored, as abc2midi does
                if "broken rhythm inside a chord was ignored" not in warnings:
                    warnings.append("broken rhythm inside a chord was ignored")
                continue
            if not last_indices and last_duration == 0:
                raise lexed.error("broken rhythm (> or <) with no note before it", lexed.offset(index))
            broken = item[2]
            broken_at = lexed.offset(index)
        elif kind is REST:
            _, _, rest_kind, n, d = item
            if in_chord or in_grace:
                raise lexed.error("a rest inside a chord or grace group", lexed.offset(index))
            place((), ticks_of(n, d, index), True, index)
        elif kind is CHORD_START:
            if in_chord:
                raise lexed.error("a chord inside a chord: expected ']' first", lexed.offset(index))
            in_chord, chord_notes, chord_at, chord_ties = True, [], lexed.offset(index), set()
        elif kind is CHORD_END:
            _, _, n, d = item
            if not in_chord:
                raise lexed.error("']' closes no chord", lexed.offset(index))
            in_chord = False
            if not chord_notes:
                continue  # `[]`: an empty chord plays nothing
            # abc2midi: a chord lasts as long as its first note, times the length after ']'
            ticks, rest = divmod(chord_notes[0][1] * (n or 1), d)
            if rest:
                raise lexed.error(f"chord length {n}/{d} is too fine to time exactly", lexed.offset(index))
            place([(pitch, key) for pitch, _, key in chord_notes], ticks, False, index)
            if chord_ties:
                tied.update((spelled[index][1], index) for index in last_indices
                            if spelled[index][1] in chord_ties)
                tie_pending = True
        elif kind is GRACE_START:
            if in_grace or in_chord:
                raise lexed.error("'{' inside a chord or grace group", lexed.offset(index))
            in_grace, grace_at = True, lexed.offset(index)
        elif kind is GRACE_END:
            if not in_grace:
                raise lexed.error("'}' closes no grace group", lexed.offset(index))
            in_grace = False
        elif kind is TUPLET:
            _, _, p, q, r = item
            if not 2 <= p <= 9:
                raise lexed.error(f"tuplet ({p} is not between (2 and (9", lexed.offset(index))
            if q is not None and not 1 <= q <= 16 or r is not None and not 1 <= r <= 64:
                raise lexed.error(f"tuplet ({p}:{q}:{r} is out of range", lexed.offset(index))
            tuplet_q, tuplet_p = q or default_tuplet_q(p, compound), p
            tuplet_left = r or p
        elif kind is ENDING:
            ending = item[2]
            if bars and bars[-1][1] == len(spelled) and bar_ticks[-1] == t and not bars[-1][2]:
                bars[-1] = (bars[-1][0], bars[-1][1], ending)
            else:
                bars.append(("|", len(spelled), ending))
                bar_ticks.append(t)
                bar_acc.clear()
        elif kind is MREST:
            if meter.free:
                raise lexed.error("a multi-bar rest Z needs a meter", lexed.offset(index))
            t += item[2] * int(meter.bar_length * TICKS)
            last_indices, last_duration = [], 0
        elif kind is FIELD:
            _, _, name, value = item
            changes.append((t, len(spelled), name, value))
            try:
                if name == "K":
                    key, _ = parse_key_cached(value)
                    signature = key.accidentals
                    signature_key = key.signature
                    plain_notes = _plain_notes(signature_key, unit_ticks)
                    bar_acc.clear()
                elif name == "M":
                    meter = parse_meter_cached(value.split("%", 1)[0])
                    compound = meter.numerator % 3 == 0 and not meter.free
                elif name == "L":
                    unit = parse_unit_cached(value.split("%", 1)[0])
                    unit_ticks = _ticks_per_unit(unit, lexed, lexed.offset(index))
                    plain_notes = _plain_notes(signature_key, unit_ticks)
            except (ValueError, ZeroDivisionError) as error:
                raise lexed.error(f"bad inline {name}: field: {error}", lexed.offset(index)) from None
        elif marks is not None and not in_grace and (kind is DECO or kind is ANNOT or kind is SLUR):
            marks.append((index, len(spelled), Fraction(t, TICKS)))
        # decorations, annotations, slurs and overlays do not change the notes
    if in_chord:
        raise lexed.error("a chord is not closed: expected ']'", chord_at)
    if in_grace:
        raise lexed.error("a grace group is not closed: expected '}'", grace_at)
    if broken and not in_chord:
        raise lexed.error("broken rhythm (> or <) with no note after it", broken_at)

    # Leave as exact Fractions of a quarter note, each made once (music.QUARTER_NOTES).
    quarters = QUARTER_NOTES.__getitem__
    if grace_indices:
        graces = [False] * len(spelled)
        for index in grace_indices:
            graces[index] = True
    else:
        graces = repeat(False)
    tune.notes = list(map(_new_note, zip(map(_first, spelled), map(quarters, onsets),
                                         map(quarters, durations), graces)))
    tune.bars = [_new_bar_line(quarters(ticks), kind, note_index, ending)
                 for (kind, note_index, ending), ticks in zip(bars, bar_ticks)]
    tune.changes = [FieldChange(quarters(ticks), index, name, value)
                    for ticks, index, name, value in changes]
    tune.end = Fraction(t, TICKS)
    return tune


def _plain_notes(signature: tuple, unit_ticks: int) -> dict:
    """The cache of plain notes under a key signature and a unit length (see _PLAIN_NOTES)."""
    return cache_for(_PLAIN_NOTES, (signature, unit_ticks))
