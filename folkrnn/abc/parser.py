"""ABC text -> Tune: the notes as a player reads them, in the tune's own key and written time.

It applies the key signature, carries accidentals through the bar, merges ties, and times broken
rhythm, tuplets, chords, grace notes, rests and inline key, meter and length changes. Where ABC
2.1 leaves a case open, it follows abc2midi, the reference player, unless abc2midi's reading
is not what a musician would play; docs/abc2midi.md lists every case where the two still differ
on the default corpus, and why. Accidentals: ``propagate`` chooses.
"""

from __future__ import annotations

from fractions import Fraction

from folkrnn.abc.lexer import (
    BAR, BROKEN, CHORD_END, CHORD_START, ENDING, FIELD, GRACE_END, GRACE_START, MREST, NOTE,
    REST, TIE, TUPLET, Lexed, default_unit, lex, parse_key, parse_unit,
)
from folkrnn.errors import AbcError, FolkError
from folkrnn.music import LETTER_SEMITONES, BarLine, FieldChange, Note, Tune, parse_meter

__all__ = ["parse", "tune_from_lexed", "PROPAGATE"]

# How far an accidental reaches within its bar, as ABC 2.1's %%propagate-accidentals names it:
# "pitch" (the default, and abc2midi's): the letter in every octave; "octave": the same octave.
PROPAGATE = ("pitch", "octave")

_MAX_UNITS = Fraction(256)  # the longest note length we accept, in units of L


def _tuplet_q(p: int, compound: bool) -> int:
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
    try:
        lexed = lex(tune_text)
        return tune_from_lexed(lexed, propagate=propagate)
    except FolkError:
        raise
    except (ValueError, ZeroDivisionError, OverflowError) as error:  # defensive: a bug, named
        raise AbcError(f"cannot read this tune: {error}") from None


def tune_from_lexed(lexed: Lexed, *, propagate: str | None = None) -> Tune:
    """Interpret lexed items as notes and bar lines (see :func:`parse`)."""
    header = lexed.header
    meter = header.meter
    unit = header.unit if header.unit is not None else default_unit(meter)
    tune = Tune(fields=list(header.fields), meter=meter, unit=unit, key=header.key)
    tune.warnings.extend(lexed.warnings)
    signature = header.key.accidentals
    by_octave = (propagate or lexed.header.propagate) == "octave"

    notes: list[Note] = tune.notes
    note_keys: list[tuple[str, int]] = []  # the (letter, octave) each note was written as
    bars: list[BarLine] = tune.bars
    quarter_per_unit = unit * 4
    t = Fraction(0)
    bar_acc: dict = {}

    tuplet_left = 0
    tuplet_factor = Fraction(1)
    compound = meter.numerator % 3 == 0 and not meter.free

    # The last note event (single note, chord or rest), for broken rhythm and ties:
    # its start, its duration, and the indices of its notes in `notes`.
    last_start = Fraction(0)
    last_duration = Fraction(0)
    last_written = Fraction(0)  # its length as written, tuplet applied (broken rhythm compares these)
    last_indices: list[int] = []
    broken = 0  # pending broken rhythm: +n for '>' * n, -n for '<' * n
    broken_at = 0
    tied: dict[tuple[str, int], int] = {}  # (letter, octave) -> index of the note tied onward
    tie_pending = False

    in_chord = False
    chord_notes: list[tuple[int, Fraction, tuple[str, int]]] = []  # (pitch, units, letter key)
    chord_at = 0
    chord_ties: set[tuple[str, int]] = set()  # the notes of this chord tied onward
    in_grace = False
    grace_at = 0

    def pitch_of(acc, letter, octave, at, carry: bool = True) -> tuple[int, tuple[str, int]]:
        upper = letter.upper()
        octave_number = octave + (1 if letter.islower() else 0)
        key = (upper, octave_number)
        slot = key if by_octave else upper
        if acc is not None:
            if carry:
                bar_acc[slot] = acc
            alter = acc
        elif slot in bar_acc:
            alter = bar_acc[slot]
        elif key in tied:
            alter = notes[tied[key]].pitch - (60 + LETTER_SEMITONES[upper] + 12 * octave_number)
        else:
            alter = signature[upper]
        pitch = 60 + LETTER_SEMITONES[upper] + 12 * octave_number + alter
        if not 0 <= pitch <= 127:
            raise lexed.error(f"note {letter}{'' if octave == 0 else octave} is outside MIDI's range", at)
        return pitch, key

    def units_of(n: int, d: int, at: int) -> Fraction:
        if n == 0:
            n = 1  # abc2midi plays A0 as A
            if "a zero note length was read as 1" not in tune.warnings:
                tune.warnings.append("a zero note length was read as 1")
        units = Fraction(n, d)
        if units > _MAX_UNITS:
            raise lexed.error(f"note length {n}/{d} is longer than {_MAX_UNITS} units", at)
        return units

    def place(events: list[tuple[int, tuple[str, int]]], units: Fraction, is_rest: bool, at: int) -> None:
        """Put a note event (a note, a chord's notes, or a rest) at time t and advance t."""
        nonlocal t, tuplet_left, broken, last_start, last_duration, last_written, last_indices
        nonlocal tie_pending
        duration = units * quarter_per_unit  # before any tuplet
        factor = Fraction(1)
        if tuplet_left:
            factor = tuplet_factor
            tuplet_left -= 1
        if broken:
            # as abc2midi: only between notes that sound equally long (a tuplet note and a plain
            # one of the same written length do not), else the `>` is ignored
            if duration * factor == last_written:
                short = Fraction(1, 2 ** abs(broken))
                long = 2 - short
                first, second = (long, short) if broken > 0 else (short, long)
                new_last = last_duration * first
                for index in last_indices:
                    old = notes[index]
                    notes[index] = Note(old.pitch, old.onset, old.duration - last_duration + new_last,
                                        old.grace)
                t = last_start + new_last
                duration = duration * second
            else:
                tune.warnings.append("broken rhythm between notes of unequal length was ignored")
            broken = 0
        duration *= factor
        last_written = duration
        start = t
        indices: list[int] = []
        for pitch, key in events:
            previous = tied.get(key) if tie_pending else None
            if previous is not None and notes[previous].pitch == pitch:
                old = notes[previous]
                notes[previous] = Note(old.pitch, old.onset, start + duration - old.onset, old.grace)
                indices.append(previous)
            else:
                indices.append(len(notes))
                notes.append(Note(pitch, start, duration))
                note_keys.append(key)
        tied.clear()
        tie_pending = False
        last_start, last_duration, last_indices = start, duration, indices
        t = start + duration
        if is_rest:
            last_indices = []

    items = lexed.items
    for item in items:
        kind = item[0]
        at = item[1]
        if kind is NOTE:
            _, _, acc, letter, octave, n, d = item
            if in_grace:
                # a grace note's accidental is its own: it does not carry through the bar
                pitch, _ = pitch_of(acc, letter, octave, at, carry=False)
                notes.append(Note(pitch, t, Fraction(0), True))
                note_keys.append(("", 0))
                continue
            pitch, key = pitch_of(acc, letter, octave, at)
            units = units_of(n, d, at)
            if in_chord:
                chord_notes.append((pitch, units, key))
                continue
            place([(pitch, key)], units, False, at)
        elif kind is BAR:
            if in_chord or in_grace:
                raise lexed.error("a bar line inside a chord or grace group", at)
            _, _, bar, ending, _raw = item
            bars.append(BarLine(t, bar, len(notes), ending))
            bar_acc.clear()
        elif kind is TIE:
            if in_chord:
                # `[d3-f3]`: a tie on one note of a chord, to the same note in what follows
                if chord_notes:
                    chord_ties.add(chord_notes[-1][2])
            elif last_indices and not in_grace:
                tie_pending = True
                tied.clear()
                for index in last_indices:
                    tied[note_keys[index]] = index
        elif kind is BROKEN:
            if in_chord:
                # `[A>e]`: not ABC (broken rhythm joins two notes, not notes of one chord);
                # ignored, as abc2midi does
                if "broken rhythm inside a chord was ignored" not in tune.warnings:
                    tune.warnings.append("broken rhythm inside a chord was ignored")
                continue
            if not last_indices and last_duration == 0:
                raise lexed.error("broken rhythm (> or <) with no note before it", at)
            broken = item[2]
            broken_at = at
        elif kind is REST:
            _, _, rest_kind, n, d = item
            if in_chord or in_grace:
                raise lexed.error("a rest inside a chord or grace group", at)
            place([], units_of(n, d, at), True, at)
        elif kind is CHORD_START:
            if in_chord:
                raise lexed.error("a chord inside a chord: expected ']' first", at)
            in_chord, chord_notes, chord_at, chord_ties = True, [], at, set()
        elif kind is CHORD_END:
            if not in_chord:
                raise lexed.error("']' closes no chord", at)
            in_chord = False
            if not chord_notes:
                continue  # `[]`: an empty chord plays nothing
            _, _, n, d = item
            # abc2midi: a chord lasts as long as its first note, times the length after ']'
            units = chord_notes[0][1] * units_of(n, d, at)
            place([(pitch, key) for pitch, _, key in chord_notes], units, False, at)
            if chord_ties:
                tied.update((note_keys[index], index) for index in last_indices
                            if note_keys[index] in chord_ties)
                tie_pending = True
        elif kind is GRACE_START:
            if in_grace or in_chord:
                raise lexed.error("'{' inside a chord or grace group", at)
            in_grace, grace_at = True, at
        elif kind is GRACE_END:
            if not in_grace:
                raise lexed.error("'}' closes no grace group", at)
            in_grace = False
        elif kind is TUPLET:
            _, _, p, q, r = item
            if not 2 <= p <= 9:
                raise lexed.error(f"tuplet ({p} is not between (2 and (9", at)
            q = q or _tuplet_q(p, compound)
            r = r or p
            tuplet_factor = Fraction(q, p)
            tuplet_left = r
        elif kind is ENDING:
            ending = item[2]
            if bars and bars[-1].note_index == len(notes) and bars[-1].onset == t and not bars[-1].ending:
                last = bars[-1]
                bars[-1] = BarLine(last.onset, last.kind, last.note_index, ending)
            else:
                bars.append(BarLine(t, "|", len(notes), ending))
                bar_acc.clear()
        elif kind is MREST:
            if meter.free:
                raise lexed.error("a multi-bar rest Z needs a meter", at)
            t += item[2] * meter.bar_length
            last_indices, last_duration = [], Fraction(0)
        elif kind is FIELD:
            _, _, name, value = item
            tune.changes.append(FieldChange(t, len(notes), name, value))
            try:
                if name == "K":
                    key, _ = parse_key(value)
                    signature = key.accidentals
                    bar_acc.clear()
                elif name == "M":
                    meter = parse_meter(value.split("%", 1)[0])
                    compound = meter.numerator % 3 == 0 and not meter.free
                elif name == "L":
                    unit = parse_unit(value.split("%", 1)[0])
                    quarter_per_unit = unit * 4
            except (ValueError, ZeroDivisionError) as error:
                raise lexed.error(f"bad inline {name}: field: {error}", at) from None
        # decorations, annotations, slurs and overlays do not change the notes
    if in_chord:
        raise lexed.error("a chord is not closed: expected ']'", chord_at)
    if in_grace:
        raise lexed.error("a grace group is not closed: expected '}'", grace_at)
    if broken and not in_chord:
        raise lexed.error("broken rhythm (> or <) with no note after it", broken_at)
    return tune

