"""ABC text -> Tune: the notes as a player reads them, in the tune's own key and written time.

It applies the key signature, carries accidentals through the bar, merges ties, and times broken
rhythm, tuplets, chords, grace notes, rests and inline key, meter and length changes. Where ABC
2.1 leaves a case open, it follows abc2midi, the reference player, unless abc2midi's reading
is not what a musician would play; docs/abc2midi.md lists every case where the two still differ
on the default corpus, and why. Accidentals: ``propagate`` chooses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
from folkrnn.music import LETTER_SEMITONES, QUARTER_NOTES, TICKS, BarLine, FieldChange, Meter, Note, Tune

__all__ = ["parse", "tune_from_lexed", "default_tuplet_q", "PROPAGATE"]

# How far an accidental reaches within its bar, as ABC 2.1's %%propagate-accidentals names it:
# "pitch" (the default, and abc2midi's): the letter in every octave; "octave": the same octave.
PROPAGATE = ("pitch", "octave")

_MAX_UNITS = 256  # the longest note length we accept, in units of L

# A plain note (no accidental, none carried to it in its bar, no tie into it) under a signature and
# a unit length: its record -> ((pitch, (letter, octave)), ticks). The same few dozen notes make up
# nearly every tune, so most notes are one look-up. Keyed by (signature, ticks per unit).
_PLAIN_NOTES: dict[tuple, dict] = cache_by_record()


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


def tune_from_lexed(lexed: Lexed, *, propagate: str | None = None, marks: list | None = None) -> Tune:
    """Interpret lexed items as notes and bar lines (see :func:`parse`).

    ``marks``, a list, receives ``(record index, notes before it, onset)`` for each decoration,
    chord symbol, slur sign and note outside grace groups (what the Tune does not keep: a courtesy
    accidental, the letter a note is written with; a chord's notes share the count of notes
    before the chord): the index into
    ``lexed.records``, how many of the tune's notes come before it, and the time it is written at
    in quarter notes. ``folkrnn.sheet`` draws them from this.
    """
    tune = _tune_of_header(lexed)
    by_octave = (propagate or lexed.header.propagate) == "octave"
    body = _BodyReader(lexed, tune, by_octave, marks).read()
    return _fill_tune(tune, body)


# Three steps: the header gives a Tune without notes (_tune_of_header); _BodyReader walks the body
# items into timed notes and bar lines (a _Body); _fill_tune puts them into the Tune.
#
# The walk hands its work to four parts, each with its own state: _Spelling (the key signature,
# the accidentals carried through the bar and the unit length: a written note's pitch and ticks),
# _Rhythm (tuplets and broken rhythm), _Timeline (the notes so far, the time now, ties and grace
# notes) and _Bars (bar lines, endings, inline fields). Time inside is counted in integer ticks
# (music.TICKS to a quarter note), which keeps Fraction arithmetic out of the loop; the notes
# leave as Fractions.


def _tune_of_header(lexed: Lexed) -> Tune:
    """The Tune of the header (fields, meter, unit, key, the lexer's warnings), no notes yet."""
    header = lexed.header
    meter = header.meter
    unit = header.unit if header.unit is not None else default_unit(meter)
    tune = Tune(fields=list(header.fields), meter=meter, unit=unit, key=header.key)
    tune.warnings.extend(lexed.warnings)
    return tune


@dataclass(slots=True)
class _Spelling:
    """The key signature, unit length and accidentals in force: how a written note becomes a MIDI
    pitch and a length in ticks."""

    lexed: Lexed
    warnings: list[str]  # the tune's
    by_octave: bool  # an accidental holds in its own octave only (else in every octave of its letter)
    signature: dict[str, int]  # letter -> its accidental in the key signature
    signature_key: tuple  # the same as music.Key.signature, hashable
    unit_ticks: int  # the unit length L: in ticks
    plain: dict  # the plain notes under this signature and unit (see _PLAIN_NOTES)
    bar: dict = field(default_factory=dict)  # accidentals written earlier in the bar: slot -> accidental

    @classmethod
    def of_tune(cls, lexed: Lexed, tune: Tune, by_octave: bool) -> _Spelling:
        unit_ticks = _ticks_per_unit(tune.unit, lexed, 0)
        signature_key = tune.key.signature
        return cls(lexed, tune.warnings, by_octave, tune.key.accidentals, signature_key, unit_ticks,
                   _plain_notes(signature_key, unit_ticks))

    def pitch(self, acc: int | None, letter: str, octave: int, tied: dict, index: int,
              carry: bool = True) -> tuple[int, tuple[str, int]]:
        """(MIDI pitch, (letter, octave)) of a written note: its own accidental (which holds to the
        bar line when ``carry``), else one written earlier in the bar, else the pitch of the note
        tied into it (``tied``: (letter, octave) -> (note index, pitch)), else the key's."""
        upper = letter.upper()
        octave_number = octave + 1 if letter > "Z" else octave
        key = (upper, octave_number)
        slot = key if self.by_octave else upper
        natural = 60 + LETTER_SEMITONES[upper] + 12 * octave_number
        bar = self.bar
        if acc is not None:
            if carry:
                bar[slot] = acc
            pitch = natural + acc
        elif slot in bar:
            pitch = natural + bar[slot]
        elif key in tied:
            pitch = tied[key][1]
        else:
            pitch = natural + self.signature[upper]
        if not 0 <= pitch <= 127:
            raise self.lexed.error(f"note {letter}{'' if octave == 0 else octave} is outside MIDI's range",
                                   self.lexed.offset(index))
        return pitch, key

    def carries_to(self, key: tuple[str, int]) -> bool:
        """Whether an accidental written earlier in the bar reaches this (letter, octave)."""
        return (key if self.by_octave else key[0]) in self.bar

    def length(self, n: int, d: int, index: int) -> int:
        """A written length, n/d units of L, in ticks."""
        if n == 0:
            n = 1  # abc2midi plays A0 as A
            if "a zero note length was read as 1" not in self.warnings:
                self.warnings.append("a zero note length was read as 1")
        if d == 0:
            raise self.lexed.error(f"note length {n}/0 divides by zero", self.lexed.offset(index))
        if n > _MAX_UNITS * d:
            raise self.lexed.error(f"note length {n}/{d} is longer than {_MAX_UNITS} units", self.lexed.offset(index))
        ticks, rest = divmod(self.unit_ticks * n, d)
        if rest:
            raise self.lexed.error(f"note length {n}/{d} is too fine to time exactly", self.lexed.offset(index))
        return ticks

    def new_bar(self) -> None:
        """A bar line: the accidentals written in the bar end."""
        if self.bar:
            self.bar.clear()

    def change_key(self, value: str) -> None:
        """An inline or body K: field (ValueError for a bad one)."""
        key, _ = parse_key_cached(value)
        self.signature = key.accidentals
        self.signature_key = key.signature
        self.plain = _plain_notes(self.signature_key, self.unit_ticks)
        self.bar.clear()

    def change_unit(self, value: str, at: int) -> None:
        """An inline or body L: field (ValueError for a bad one)."""
        unit = parse_unit_cached(value.split("%", 1)[0])
        self.unit_ticks = _ticks_per_unit(unit, self.lexed, at)
        self.plain = _plain_notes(self.signature_key, self.unit_ticks)


@dataclass(slots=True)
class _Rhythm:
    """Tuplets and broken rhythm still to come: the notes they reach, and their lengths."""

    lexed: Lexed
    compound: bool  # the meter's (see _compound)
    tuplet_left: int = 0  # notes the current tuplet still reaches
    tuplet_q: int = 1  # ``(p:q``: p notes in the time of q
    tuplet_p: int = 1
    broken: int = 0  # pending broken rhythm: +n for '>' * n, -n for '<' * n
    broken_at: int = 0  # its body offset

    def start_tuplet(self, p: int, q: int | None, r: int | None, index: int) -> None:
        """``(p:q:r``: the next r notes (p by default) are played p in the time of q."""
        if not 2 <= p <= 9:
            raise self.lexed.error(f"tuplet ({p} is not between (2 and (9", self.lexed.offset(index))
        if q is not None and not 1 <= q <= 16 or r is not None and not 1 <= r <= 64:
            raise self.lexed.error(f"tuplet ({p}:{q}:{r} is out of range", self.lexed.offset(index))
        self.tuplet_q, self.tuplet_p = q or default_tuplet_q(p, self.compound), p
        self.tuplet_left = r or p

    def in_tuplet(self, duration: int, index: int) -> int:
        """The length of the tuplet's next note, written ``duration`` ticks long."""
        self.tuplet_left -= 1
        duration, rest = divmod(duration * self.tuplet_q, self.tuplet_p)
        if rest:
            raise self.lexed.error("this tuplet note is too short to time exactly", self.lexed.offset(index))
        return duration

    def broken_lengths(self, before: int, after: int) -> tuple[int, int]:
        """The lengths of the two events a broken rhythm joins, ``before`` and ``after`` ticks long
        as written: ``>`` dots the first and shortens the second, ``<`` the other way round."""
        shift = abs(self.broken)
        if after % (1 << shift) or before % (1 << shift):
            raise self.lexed.error("this broken rhythm is too short to time exactly", self.broken_at)
        short_before = before >> shift
        if self.broken > 0:
            return 2 * before - short_before, after >> shift
        return short_before, 2 * after - (after >> shift)


def _compound(meter: Meter) -> bool:
    """Whether ``(p`` takes the default q of a compound meter (abc2midi: the numerator divides by 3)."""
    return meter.numerator % 3 == 0 and not meter.free


@dataclass(slots=True)
class _Timeline:
    """The notes placed so far and the time now, ``t``, in ticks.

    The notes are parallel lists while they can still change: a tie lengthens a note, broken
    rhythm re-times the last event, a grace note waits for the note it ornaments. The last note
    event (a single note, a chord or a rest) is kept for ties and broken rhythm to reach back to.
    """

    spelled: list[tuple[int, tuple[str, int]]] = field(default_factory=list)  # (pitch, (letter, octave))
    onsets: list[int] = field(default_factory=list)
    durations: list[int] = field(default_factory=list)
    grace_indices: list[int] = field(default_factory=list)
    t: int = 0
    last_start: int = 0
    last_duration: int = 0
    last_written: int = 0  # its length, tuplet applied (broken rhythm compares these); kept by Z
    last_indices: list[int] = field(default_factory=list)  # its notes (none for a rest)
    tied: dict = field(default_factory=dict)  # (letter, octave) -> (index, pitch) of a note tied onward
    tie_pending: bool = False
    pending_graces: list[int] = field(default_factory=list)  # grace notes waiting for their note

    def add_grace(self, pitch: int) -> None:
        """A grace note: no length; it sounds just before the next note event (see :meth:`place`)."""
        index = len(self.spelled)
        self.pending_graces.append(index)
        self.grace_indices.append(index)
        self.spelled.append((pitch, ("", 0)))
        self.onsets.append(self.t)
        self.durations.append(0)

    def place(self, events, duration: int, is_rest: bool) -> None:
        """A note event at the time now: ``events``, its notes' (pitch, (letter, octave)), none for
        a rest; ``duration``, as played. Grace notes waiting move to its start; a note tied into
        lengthens the note it continues."""
        start = self.t
        spelled, onsets, durations = self.spelled, self.onsets, self.durations
        if self.pending_graces:
            for note_index in self.pending_graces:
                onsets[note_index] = start
            self.pending_graces.clear()
        tied = self.tied if self.tie_pending else None
        indices: list[int] = []
        for pitch_key in events:
            previous = tied.get(pitch_key[1]) if tied else None
            if previous is not None and previous[1] == pitch_key[0]:
                note_index = previous[0]
                durations[note_index] = start + duration - onsets[note_index]
                indices.append(note_index)
            else:
                indices.append(len(spelled))
                spelled.append(pitch_key)
                onsets.append(start)
                durations.append(duration)
        if self.tied:
            self.tied.clear()
        self.tie_pending = False
        self.last_start, self.last_duration, self.last_written = start, duration, duration
        self.last_indices = [] if is_rest else indices
        self.t = start + duration

    def retime_last(self, duration: int) -> None:
        """Broken rhythm: the last event now lasts ``duration`` ticks, and the time now follows it."""
        change = duration - self.last_duration
        for note_index in self.last_indices:
            self.durations[note_index] += change
        self.t = self.last_start + duration

    def tie_last(self) -> None:
        """``-``: the notes of the last event go on into the same notes of the next."""
        if self.last_indices:
            self.tie_pending = True
            self.tied.clear()
            for note_index in self.last_indices:
                pitch, key = self.spelled[note_index]
                self.tied[key] = (note_index, pitch)

    def tie_chord(self, keys: set[tuple[str, int]]) -> None:
        """``[d3-f3]``: the chord just placed goes on in those of its notes, by (letter, octave)."""
        spelled = self.spelled
        self.tied.update((spelled[note_index][1], (note_index, spelled[note_index][0]))
                         for note_index in self.last_indices if spelled[note_index][1] in keys)
        self.tie_pending = True

    def rest_bars(self, ticks: int) -> None:
        """A multi-bar rest: time moves on, and no note is left to tie or to break the rhythm of."""
        self.t += ticks
        self.last_indices, self.last_duration = [], 0


@dataclass(slots=True)
class _Bars:
    """The bar lines and inline field changes in written order, with the time each stands at."""

    lines: list[tuple[str, int, tuple[int, ...]]] = field(default_factory=list)  # (kind, note index, ending)
    ticks: list[int] = field(default_factory=list)  # each bar line's onset
    changes: list[tuple[int, int, str, str]] = field(default_factory=list)  # (ticks, note index, name, value)

    def add(self, kind: str, note_index: int, ending: tuple[int, ...], t: int) -> None:
        self.lines.append((kind, note_index, ending))
        self.ticks.append(t)

    def add_ending(self, ending: tuple[int, ...], note_index: int, t: int) -> bool:
        """``[1``: numbers the bar line written just before it, else stands as a bar line of its
        own (True: a new bar begins)."""
        lines = self.lines
        if lines and lines[-1][1] == note_index and self.ticks[-1] == t and not lines[-1][2]:
            lines[-1] = (lines[-1][0], note_index, ending)
            return False
        self.add("|", note_index, ending, t)
        return True


@dataclass(slots=True)
class _Chord:
    """A chord being read: its notes so far (pitch, ticks, (letter, octave)) and those tied onward."""

    at: int  # the body offset of its '['
    notes: list[tuple[int, int, tuple[str, int]]] = field(default_factory=list)
    ties: set[tuple[str, int]] = field(default_factory=set)


@dataclass(slots=True)
class _Body:
    """The body, read: its notes, its bar lines and field changes, and where its music ends (ticks)."""

    notes: _Timeline
    bars: _Bars
    end: int


class _BodyReader:
    """Walks the body items in written order into timed notes and bar lines: one method for each
    kind of item (_HANDLERS), and the common cases inline in :meth:`read`."""

    __slots__ = ("lexed", "warnings", "marks", "meter", "spelling", "rhythm", "timeline", "bars",
                 "chord", "in_grace", "grace_at")

    def __init__(self, lexed: Lexed, tune: Tune, by_octave: bool, marks: list | None) -> None:
        self.lexed = lexed
        self.warnings = tune.warnings
        self.marks = marks
        self.meter = tune.meter
        self.spelling = _Spelling.of_tune(lexed, tune, by_octave)
        self.rhythm = _Rhythm(lexed, _compound(tune.meter))
        self.timeline = _Timeline()
        self.bars = _Bars()
        self.chord: _Chord | None = None  # the chord being read
        self.in_grace = False
        self.grace_at = 0  # the offset of the grace group's '{'

    def read(self) -> _Body:
        timeline, spelling, rhythm = self.timeline, self.spelling, self.rhythm
        spelled, onsets, durations = timeline.spelled, timeline.onsets, timeline.durations
        bar_lines, bar_ticks = self.bars.lines, self.bars.ticks
        bar_accidentals, by_octave = spelling.bar, spelling.by_octave
        handlers = _HANDLERS if self.marks is None else _HANDLERS_AND_MARKS
        notes_marked = self.marks is not None  # a note is a mark too (its letter, its accidental)
        # The two common cases, a plain note and a bar line, are done here rather than by
        # self.note and self.bar_line, and only while nothing waits for the next note (`simple`):
        # no chord or grace group is open, no tuplet, broken rhythm, tie or grace note is pending.
        # Neither case changes that, so `simple` is worked out again only after the other items.
        # Measured on the default corpus (Python 3.11): a method call for each plain note made
        # this parser 15% slower, one for each bar line 4%, the six checks on every note 4%.
        simple = True
        for index, item in enumerate(self.lexed.records):
            kind = item[0]
            if kind is NOTE:
                if notes_marked:
                    self.mark(item, index)
                if simple:
                    plain = spelling.plain.get(item)
                    # a note seen before under this key and unit (see _PLAIN_NOTES), when no
                    # accidental written earlier in the bar reaches it (spelling.carries_to),
                    # placed as timeline.place would place it
                    if plain is not None and (not bar_accidentals or (plain[0][1] if by_octave else plain[0][1][0])
                                              not in bar_accidentals):
                        pitch_key, ticks = plain
                        start = timeline.t
                        timeline.last_indices = [len(spelled)]
                        spelled.append(pitch_key)
                        onsets.append(start)
                        durations.append(ticks)
                        timeline.last_start = start
                        timeline.last_duration = timeline.last_written = ticks
                        timeline.t = start + ticks
                        continue
                self.note(item, index)
            elif kind is BAR and simple:  # as self.bar_line
                bar_lines.append((item[2], len(spelled), item[3]))
                bar_ticks.append(timeline.t)
                if bar_accidentals:
                    bar_accidentals.clear()
                continue
            else:
                handler = handlers.get(kind)
                if handler is None:
                    continue  # overlays, and marks when no one asks for them, change nothing
                handler(self, item, index)
            simple = not (self.in_grace or self.chord is not None or rhythm.tuplet_left or rhythm.broken
                          or timeline.tie_pending or timeline.pending_graces)
        self.check_closed()
        return _Body(timeline, self.bars, timeline.t)

    def error(self, message: str, index: int) -> AbcError:
        return self.lexed.error(message, self.lexed.offset(index))

    def check_closed(self) -> None:
        """At the end of the body: no chord, grace group or broken rhythm is left open."""
        if self.chord is not None:
            raise self.lexed.error("a chord is not closed: expected ']'", self.chord.at)
        if self.in_grace:
            raise self.lexed.error("a grace group is not closed: expected '}'", self.grace_at)
        if self.rhythm.broken:
            raise self.lexed.error("broken rhythm (> or <) with no note after it", self.rhythm.broken_at)

    def place(self, events, duration: int, is_rest: bool, index: int) -> None:
        """A note event (see _Timeline.place), ``duration`` ticks long as written: the tuplet and
        the broken rhythm it is in applied."""
        rhythm = self.rhythm
        if rhythm.tuplet_left:
            duration = rhythm.in_tuplet(duration, index)
        if rhythm.broken:
            timeline = self.timeline
            # as abc2midi: only between notes that sound equally long (a tuplet note and a plain
            # one of the same written length do not), else the `>` is ignored
            if duration == timeline.last_written:
                before, duration = rhythm.broken_lengths(timeline.last_duration, duration)
                was = timeline.t
                timeline.retime_last(before)
                if self.marks:
                    self.moved_marks(was, timeline.t)
            else:
                self.warnings.append("broken rhythm between notes of unequal length was ignored")
            rhythm.broken = 0
        self.timeline.place(events, duration, is_rest)

    # The items, one method each (see _HANDLERS); `note` does the notes read() leaves to it.

    def note(self, item, index: int) -> None:
        _, _, acc, letter, octave, n, d = item
        spelling, timeline = self.spelling, self.timeline
        if self.in_grace:
            # a grace note's accidental is its own: it does not carry through the bar
            pitch, _ = spelling.pitch(acc, letter, octave, timeline.tied, index, carry=False)
            timeline.add_grace(pitch)
            return
        pitch, key = spelling.pitch(acc, letter, octave, timeline.tied, index)
        plain = acc is None and not timeline.tie_pending and not spelling.carries_to(key)
        ticks = spelling.unit_ticks if n == 1 and d == 1 else spelling.length(n, d, index)
        if plain and n:  # (a zero length warns, so it is never remembered)
            spelling.plain[item] = ((pitch, key), ticks)
        if self.chord is not None:
            self.chord.notes.append((pitch, ticks, key))
        else:
            self.place(((pitch, key),), ticks, False, index)

    def bar_line(self, item, index: int) -> None:
        if self.chord is not None or self.in_grace:
            raise self.error("a bar line inside a chord or grace group", index)
        self.bars.add(item[2], len(self.timeline.spelled), item[3], self.timeline.t)
        self.spelling.new_bar()

    def ending(self, item, index: int) -> None:
        if self.bars.add_ending(item[2], len(self.timeline.spelled), self.timeline.t):
            self.spelling.new_bar()

    def tie(self, item, index: int) -> None:
        chord = self.chord
        if chord is not None:
            # `[d3-f3]`: a tie on one note of a chord, to the same note in what follows
            if chord.notes:
                chord.ties.add(chord.notes[-1][2])
        elif not self.in_grace:
            self.timeline.tie_last()

    def broken_rhythm(self, item, index: int) -> None:
        if self.chord is not None:
            # `[A>e]`: not ABC (broken rhythm joins two notes, not notes of one chord);
            # ignored, as abc2midi does
            if "broken rhythm inside a chord was ignored" not in self.warnings:
                self.warnings.append("broken rhythm inside a chord was ignored")
            return
        if not self.timeline.last_indices and self.timeline.last_duration == 0:
            raise self.error("broken rhythm (> or <) with no note before it", index)
        self.rhythm.broken, self.rhythm.broken_at = item[2], self.lexed.offset(index)

    def tuplet(self, item, index: int) -> None:
        _, _, p, q, r = item
        self.rhythm.start_tuplet(p, q, r, index)

    def rest(self, item, index: int) -> None:
        _, _, _, n, d = item
        if self.chord is not None or self.in_grace:
            raise self.error("a rest inside a chord or grace group", index)
        self.place((), self.spelling.length(n, d, index), True, index)

    def multi_bar_rest(self, item, index: int) -> None:
        if self.meter.free:
            raise self.error("a multi-bar rest Z needs a meter", index)
        self.timeline.rest_bars(item[2] * int(self.meter.bar_length * TICKS))

    def chord_start(self, item, index: int) -> None:
        if self.chord is not None:
            raise self.error("a chord inside a chord: expected ']' first", index)
        self.chord = _Chord(self.lexed.offset(index))

    def chord_end(self, item, index: int) -> None:
        _, _, n, d = item
        chord = self.chord
        if chord is None:
            raise self.error("']' closes no chord", index)
        self.chord = None
        if not chord.notes:
            return  # `[]`: an empty chord plays nothing
        # abc2midi: a chord lasts as long as its first note, times the length after ']'
        ticks, rest = divmod(chord.notes[0][1] * (n or 1), d)
        if rest:
            raise self.error(f"chord length {n}/{d} is too fine to time exactly", index)
        self.place([(pitch, key) for pitch, _, key in chord.notes], ticks, False, index)
        if chord.ties:
            self.timeline.tie_chord(chord.ties)

    def grace_start(self, item, index: int) -> None:
        if self.in_grace or self.chord is not None:
            raise self.error("'{' inside a chord or grace group", index)
        self.in_grace, self.grace_at = True, self.lexed.offset(index)

    def grace_end(self, item, index: int) -> None:
        if not self.in_grace:
            raise self.error("'}' closes no grace group", index)
        self.in_grace = False

    def inline_field(self, item, index: int) -> None:
        _, _, name, value = item
        self.bars.changes.append((self.timeline.t, len(self.timeline.spelled), name, value))
        try:
            if name == "K":
                self.spelling.change_key(value)
            elif name == "M":
                self.meter = parse_meter_cached(value.split("%", 1)[0])
                self.rhythm.compound = _compound(self.meter)
            elif name == "L":
                self.spelling.change_unit(value, self.lexed.offset(index))
        except (ValueError, ZeroDivisionError) as error:
            raise self.error(f"bad inline {name}: field: {error}", index) from None

    def moved_marks(self, was: int, now: int) -> None:
        """A broken rhythm moved the time after the last event from ``was`` to ``now`` ticks: the marks
        written since it (the next note's own, its decorations) are at the next note, so at ``now``."""
        marks, old = self.marks, Fraction(was, TICKS)
        k = len(marks)
        while k and marks[k - 1][2] == old:  # (the last event began before ``was``: these came after it)
            k -= 1
        marks[k:] = [(index, before, Fraction(now, TICKS)) for index, before, _ in marks[k:]]

    def mark(self, item, index: int) -> None:
        """A decoration, chord symbol, slur sign or note, for the caller that asked (see
        tune_from_lexed)."""
        if not self.in_grace:
            self.marks.append((index, len(self.timeline.spelled), Fraction(self.timeline.t, TICKS)))


_HANDLERS = {
    BAR: _BodyReader.bar_line, ENDING: _BodyReader.ending, TIE: _BodyReader.tie,
    BROKEN: _BodyReader.broken_rhythm, TUPLET: _BodyReader.tuplet, REST: _BodyReader.rest,
    MREST: _BodyReader.multi_bar_rest, CHORD_START: _BodyReader.chord_start, CHORD_END: _BodyReader.chord_end,
    GRACE_START: _BodyReader.grace_start, GRACE_END: _BodyReader.grace_end, FIELD: _BodyReader.inline_field,
}
_HANDLERS_AND_MARKS = {**_HANDLERS, DECO: _BodyReader.mark, ANNOT: _BodyReader.mark, SLUR: _BodyReader.mark}


def _fill_tune(tune: Tune, body: _Body) -> Tune:
    """The Tune with the body's notes, bar lines and field changes, its times as exact Fractions of
    a quarter note, each made once (music.QUARTER_NOTES)."""
    notes, bars = body.notes, body.bars
    quarters = QUARTER_NOTES.__getitem__
    if notes.grace_indices:
        graces = [False] * len(notes.spelled)
        for index in notes.grace_indices:
            graces[index] = True
    else:
        graces = repeat(False)
    tune.notes = list(map(_new_note, zip(map(_first, notes.spelled), map(quarters, notes.onsets),
                                         map(quarters, notes.durations), graces)))
    tune.bars = [_new_bar_line(quarters(ticks), kind, note_index, ending)
                 for (kind, note_index, ending), ticks in zip(bars.lines, bars.ticks)]
    tune.changes = [FieldChange(quarters(ticks), index, name, value) for ticks, index, name, value in bars.changes]
    tune.end = Fraction(body.end, TICKS)
    return tune


_first = itemgetter(0)

# Note(...) checks each pitch and duration again, and a Fraction comparison is slow: with it, this
# parser took 60% longer on the default corpus (measured, Python 3.11). The values were checked
# while parsing, so the Notes are built by tuple.__new__.
_new_note = partial(tuple.__new__, Note)

_SET_BAR_FIELDS = tuple(getattr(BarLine, name).__set__ for name in ("onset", "kind", "note_index", "ending"))


def _quick_bar_line(onset: Fraction, kind: str, note_index: int, ending: tuple[int, ...]) -> BarLine:
    """``BarLine(onset, kind, note_index, ending)`` for values already checked, through the slots'
    descriptors: a frozen dataclass's __init__ sets each field through object.__setattr__, which
    made this parser 5% slower on the default corpus (measured, Python 3.11)."""
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


def _ticks_per_unit(unit: Fraction, lexed: Lexed, at: int) -> int:
    ticks, rest = divmod(TICKS * 4 * unit.numerator, unit.denominator)
    if rest:
        raise lexed.error(f"the note length L:{unit} is too fine to time exactly", at)
    return ticks


def _plain_notes(signature: tuple, unit_ticks: int) -> dict:
    """The cache of plain notes under a key signature and a unit length (see _PLAIN_NOTES)."""
    return cache_for(_PLAIN_NOTES, (signature, unit_ticks))
