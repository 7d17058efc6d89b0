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
from folkrnn.music import TICKS, LETTER_SEMITONES, quarters_from_ticks, BarLine, FieldChange, Note, Tune, parse_meter

__all__ = ["parse", "tune_from_lexed", "PROPAGATE"]

# How far an accidental reaches within its bar, as ABC 2.1's %%propagate-accidentals names it:
# "pitch" (the default, and abc2midi's): the letter in every octave; "octave": the same octave.
PROPAGATE = ("pitch", "octave")

_MAX_UNITS = 256  # the longest note length we accept, in units of L


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


# Time inside the parser is counted in integer ticks (music.TICKS to a quarter note), which
# keeps Fraction arithmetic out of the loop. Notes leave as Fractions.


def _ticks_per_unit(unit: Fraction, lexed: Lexed, at: int) -> int:
    ticks = TICKS * 4 * unit
    if ticks.denominator != 1:
        raise lexed.error(f"the note length L:{unit} is too fine to time exactly", at)
    return int(ticks)


def tune_from_lexed(lexed: Lexed, *, propagate: str | None = None) -> Tune:
    """Interpret lexed items as notes and bar lines (see :func:`parse`)."""
    header = lexed.header
    meter = header.meter
    unit = header.unit if header.unit is not None else default_unit(meter)
    tune = Tune(fields=list(header.fields), meter=meter, unit=unit, key=header.key)
    warnings = tune.warnings
    warnings.extend(lexed.warnings)
    signature = header.key.accidentals
    by_octave = (propagate or lexed.header.propagate) == "octave"

    # The notes as parallel lists while they can still change (ties, broken rhythm).
    pitches: list[int] = []
    onsets: list[int] = []
    durations: list[int] = []
    graces: list[bool] = []
    note_keys: list[tuple[str, int]] = []  # the (letter, octave) each note was written as
    bars: list[BarLine] = tune.bars
    bar_ticks: list[int] = []  # each bar line's onset in ticks
    changes: list[tuple[int, int, str, str]] = []
    unit_ticks = _ticks_per_unit(unit, lexed, 0)
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

    def pitch_of(acc, letter, octave, at, carry=True):
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
            pitch = pitches[tied[key]]
        else:
            pitch = natural + signature[upper]
        if not 0 <= pitch <= 127:
            raise lexed.error(f"note {letter}{'' if octave == 0 else octave} is outside MIDI's range", at)
        return pitch, key

    def ticks_of(n: int, d: int, at: int) -> int:
        if n == 0:
            n = 1  # abc2midi plays A0 as A
            if "a zero note length was read as 1" not in warnings:
                warnings.append("a zero note length was read as 1")
        if n > _MAX_UNITS * d:
            raise lexed.error(f"note length {n}/{d} is longer than {_MAX_UNITS} units", at)
        ticks, rest = divmod(unit_ticks * n, d)
        if rest:
            raise lexed.error(f"note length {n}/{d} is too fine to time exactly", at)
        return ticks

    def place(events, duration: int, is_rest: bool, at: int) -> None:
        """Put a note event (a note, a chord's notes, or a rest) at time t and advance t."""
        nonlocal t, tuplet_left, broken, last_start, last_duration, last_written, last_indices
        nonlocal tie_pending
        if tuplet_left:
            tuplet_left -= 1
            duration, rest = divmod(duration * tuplet_q, tuplet_p)
            if rest:
                raise lexed.error("this tuplet note is too short to time exactly", at)
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
                for index in last_indices:
                    durations[index] += new_last - last_duration
                t = last_start + new_last
            else:
                warnings.append("broken rhythm between notes of unequal length was ignored")
            broken = 0
        last_written = duration
        start = t
        if pending_graces:
            for index in pending_graces:  # grace notes sound just before the note they ornament
                onsets[index] = start
            pending_graces.clear()
        indices: list[int] = []
        for pitch, key in events:
            previous = tied.get(key) if tie_pending else None
            if previous is not None and pitches[previous] == pitch:
                durations[previous] = start + duration - onsets[previous]
                indices.append(previous)
            else:
                indices.append(len(pitches))
                pitches.append(pitch)
                onsets.append(start)
                durations.append(duration)
                graces.append(False)
                note_keys.append(key)
        if tied:
            tied.clear()
        tie_pending = False
        last_start, last_duration, last_indices = start, duration, indices
        t = start + duration
        if is_rest:
            last_indices = []

    for item in lexed.items:
        kind = item[0]
        if kind is NOTE:
            _, at, acc, letter, octave, n, d = item
            if in_grace:
                # a grace note's accidental is its own: it does not carry through the bar
                pitch, _ = pitch_of(acc, letter, octave, at, carry=False)
                pending_graces.append(len(pitches))
                pitches.append(pitch)
                onsets.append(t)
                durations.append(0)
                graces.append(True)
                note_keys.append(("", 0))
                continue
            pitch, key = pitch_of(acc, letter, octave, at)
            ticks = unit_ticks if n == 1 and d == 1 else ticks_of(n, d, at)
            if in_chord:
                chord_notes.append((pitch, ticks, key))
            elif tuplet_left or broken or tie_pending or pending_graces:
                place(((pitch, key),), ticks, False, at)
            else:  # the common case, as place() would do it
                last_indices = [len(pitches)]
                pitches.append(pitch)
                onsets.append(t)
                durations.append(ticks)
                graces.append(False)
                note_keys.append(key)
                last_start, last_duration, last_written = t, ticks, ticks
                t += ticks
        elif kind is BAR:
            at = item[1]
            if in_chord or in_grace:
                raise lexed.error("a bar line inside a chord or grace group", at)
            _, _, bar, ending, _raw = item
            bars.append(BarLine(Fraction(0), bar, len(pitches), ending))
            bar_ticks.append(t)
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
            at = item[1]
            if in_chord:
                # `[A>e]`: not ABC (broken rhythm joins two notes, not notes of one chord);
                # ignored, as abc2midi does
                if "broken rhythm inside a chord was ignored" not in warnings:
                    warnings.append("broken rhythm inside a chord was ignored")
                continue
            if not last_indices and last_duration == 0:
                raise lexed.error("broken rhythm (> or <) with no note before it", at)
            broken = item[2]
            broken_at = at
        elif kind is REST:
            _, at, rest_kind, n, d = item
            if in_chord or in_grace:
                raise lexed.error("a rest inside a chord or grace group", at)
            place((), ticks_of(n, d, at), True, at)
        elif kind is CHORD_START:
            at = item[1]
            if in_chord:
                raise lexed.error("a chord inside a chord: expected ']' first", at)
            in_chord, chord_notes, chord_at, chord_ties = True, [], at, set()
        elif kind is CHORD_END:
            _, at, n, d = item
            if not in_chord:
                raise lexed.error("']' closes no chord", at)
            in_chord = False
            if not chord_notes:
                continue  # `[]`: an empty chord plays nothing
            # abc2midi: a chord lasts as long as its first note, times the length after ']'
            ticks, rest = divmod(chord_notes[0][1] * (n or 1), d)
            if rest:
                raise lexed.error(f"chord length {n}/{d} is too fine to time exactly", at)
            place([(pitch, key) for pitch, _, key in chord_notes], ticks, False, at)
            if chord_ties:
                tied.update((note_keys[index], index) for index in last_indices
                            if note_keys[index] in chord_ties)
                tie_pending = True
        elif kind is GRACE_START:
            at = item[1]
            if in_grace or in_chord:
                raise lexed.error("'{' inside a chord or grace group", at)
            in_grace, grace_at = True, at
        elif kind is GRACE_END:
            if not in_grace:
                raise lexed.error("'}' closes no grace group", item[1])
            in_grace = False
        elif kind is TUPLET:
            _, at, p, q, r = item
            if not 2 <= p <= 9:
                raise lexed.error(f"tuplet ({p} is not between (2 and (9", at)
            if q is not None and not 1 <= q <= 16 or r is not None and not 1 <= r <= 64:
                raise lexed.error(f"tuplet ({p}:{q}:{r} is out of range", at)
            tuplet_q, tuplet_p = q or _tuplet_q(p, compound), p
            tuplet_left = r or p
        elif kind is ENDING:
            ending = item[2]
            if bars and bars[-1].note_index == len(pitches) and bar_ticks[-1] == t and not bars[-1].ending:
                last = bars[-1]
                bars[-1] = BarLine(last.onset, last.kind, last.note_index, ending)
            else:
                bars.append(BarLine(Fraction(0), "|", len(pitches), ending))
                bar_ticks.append(t)
                bar_acc.clear()
        elif kind is MREST:
            at = item[1]
            if meter.free:
                raise lexed.error("a multi-bar rest Z needs a meter", at)
            t += item[2] * int(meter.bar_length * TICKS)
            last_indices, last_duration = [], 0
        elif kind is FIELD:
            _, at, name, value = item
            changes.append((t, len(pitches), name, value))
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
                    unit_ticks = _ticks_per_unit(unit, lexed, at)
            except (ValueError, ZeroDivisionError) as error:
                raise lexed.error(f"bad inline {name}: field: {error}", at) from None
        # decorations, annotations, slurs and overlays do not change the notes
    if in_chord:
        raise lexed.error("a chord is not closed: expected ']'", chord_at)
    if in_grace:
        raise lexed.error("a grace group is not closed: expected '}'", grace_at)
    if broken and not in_chord:
        raise lexed.error("broken rhythm (> or <) with no note after it", broken_at)

    # Leave as exact Fractions of a quarter note; lengths repeat, so they are made once each.
    fractions: dict[int, Fraction] = {}
    new_note = tuple.__new__  # the values were checked above: skip Note's own checks

    def quarters(ticks: int) -> Fraction:
        value = fractions.get(ticks)
        if value is None:
            value = fractions[ticks] = quarters_from_ticks(ticks)
        return value

    tune.notes = [new_note(Note, (pitch, quarters(onset), quarters(duration), grace))
                  for pitch, onset, duration, grace in zip(pitches, onsets, durations, graces)]
    tune.bars = [BarLine(quarters(ticks), bar.kind, bar.note_index, bar.ending)
                 for bar, ticks in zip(bars, bar_ticks)]
    tune.changes = [FieldChange(quarters(ticks), index, name, value)
                    for ticks, index, name, value in changes]
    return tune
