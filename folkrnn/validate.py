"""Checking tunes: will this ABC play as written, and is it new? Tune -> Report.

For each tune the validator checks, in order:

- **syntax**: the parser reads it, and its header is sane (X:, T:, M:, L:, K:);
- **bar lengths** against M: and L: (inline and body-line meter changes included). A bar may be
  short, without complaint, only where players write it so:

  - the first bar (a pickup), with a last bar that complements it;
  - either side of a section line (``||``, ``|]``, ``|:``, ``:|``, ``::``, an ending), when the two
    short bars add up to one full bar (a pickup into the next section);
  - the last bar of a repeat, when it adds up with the pickup into that repeat (played on the way
    back);
  - the first bar of a second ending, when it adds up with the short bar before the first ending;
  - a bar of rests a whole number of bars long (``Z4``) counts as that many bars;

- **repeats and endings**: every ``|:`` is closed by a ``:|`` before the next ``|:``; a ``:|``
  with no ``|:`` is allowed only as the first repeat (it goes back to the start); endings are
  numbered 1, 2, ... in order, each ending but the last is closed by ``:|``, and ending 2 starts at
  that ``:|``; the tune ends with a bar line;
- **structure**: the parts (the music between section lines, a repeated part counted once per
  pass), as a section string such as ``AABB`` with the bars in each part; a part of unusual
  length (not a multiple of 4 bars) is a warning;
- **form**: the parts, the form label (``AABB``) and the bars that come back, as
  :func:`folkrnn.form.form_of` measures them (``Report.form``; reported, never an error);
- **range**: lowest and highest note, and the notes an instrument cannot play (``instrument``);
- **novelty**: similarity to the nearest tune of a corpus, ``1 - edit distance / longer length``
  on the normalised body tokens (title and header left out), found through an n-gram index so a
  check against every training tune costs about a millisecond (:class:`NoveltyIndex`).

The result is a :class:`Report`: errors (the tune does not play as written) and warnings (it plays,
but a player would look twice), each with its bar number and line:column, and the structure,
range and nearest tune. ``valid`` means no errors. abc2midi's ``-c`` check is the reference; where
this validator and abc2midi disagree, and why, is written down in docs/validate.md.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from operator import attrgetter

import numpy as np

from folkrnn.abc import BOS, SPACE, TuneText, read_text, split_tunebook, tokenize
from folkrnn.abc.lexer import BAR, CHORD_END, ENDING, MREST, NOTE, REST
from folkrnn.abc.parser import parse_lexed
from folkrnn.abc.tokens import body_of
from folkrnn.errors import AbcError, FolkError, OptionError
from folkrnn.moved import moved_names
from folkrnn.music import Tune, completes, count_bars, parse_meter
from folkrnn.tables import INSTRUMENTS, Instrument, find_instrument

__all__ = [
    "Issue", "Report", "ValidateOptions", "Instrument", "INSTRUMENTS", "NoveltyIndex", "Nearest",
    "validate_tune", "validate_text", "validate_file", "instrument_range", "levenshtein",
    "similarity", "pitch_name", "COPY_THRESHOLD",
]

_PITCH = attrgetter("pitch")
COPY_THRESHOLD = 0.85  # similarity at or above which a tune is a probable copy (AI music challenges)
_USUAL_PART_BARS = 4  # a part is of usual length when its bars are a multiple of this


# ---------------------------------------------------------------------------------------------
# Instruments: the written range of each is folkrnn.tables's (INSTRUMENTS, re-exported here).


def instrument_range(name: str) -> Instrument:
    """The :class:`Instrument` called ``name`` (case-insensitive; ``violin`` is the fiddle).

    Raises OptionError naming the instruments there are.
    """
    instrument = find_instrument(name)
    if instrument is None:
        raise OptionError(f"unknown instrument {name!r}; choose one of {', '.join(INSTRUMENTS)}")
    return instrument


_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def pitch_name(pitch: int) -> str:
    """Scientific pitch name, middle C = C4: 60 -> ``"C4"``, 66 -> ``"F#4"``."""
    return f"{_NAMES[pitch % 12]}{pitch // 12 - 1}"


# ---------------------------------------------------------------------------------------------
# The report


@dataclass(frozen=True)
class Issue:
    """One thing wrong with a tune: a short ``code``, a message for people, and where it is.

    Codes: ``syntax``, ``header``, ``bar-too-long``, ``bar-too-short``, ``last-bar-short``,
    ``repeat-unclosed``, ``repeat-unopened``, ``repeat-nested``, ``repeat-from-start``,
    ``repeat-empty``, ``ending-order``, ``ending-unclosed``, ``ending-misplaced``,
    ``no-closing-bar``, ``part-length``, ``out-of-range``, ``probable-copy``, ``free-meter``,
    ``parser``, ``length-divisor``.
    """

    code: str  # what kind of problem (stable, for programs)
    message: str  # what is wrong, for people, one line
    bar: int | None = None  # bar number: 1 is the first full bar, 0 a pickup before it
    line: int | None = None  # 1-based line in the file (or in the tune's text), where known
    col: int | None = None  # 1-based column, where known

    def where(self) -> str:
        """``"bar 5, line 12:7"``, or what part of that is known."""
        parts = []
        if self.bar is not None:
            parts.append(f"bar {self.bar}")
        if self.line is not None:
            parts.append(f"line {self.line}" + (f":{self.col}" if self.col is not None else ""))
        return ", ".join(parts)

    def __str__(self) -> str:
        where = self.where()
        return f"{where}: {self.message}" if where else self.message

    def to_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "bar": self.bar, "line": self.line,
                "col": self.col}


@dataclass(frozen=True)
class Nearest:
    """The most similar tune of the reference corpus."""

    similarity: float  # 1 - edit distance / longer body length, in [0, 1]
    index: int  # its place in the reference corpus
    name: str  # where it comes from ("oneills1850/0001-0050.abc#3") or its index
    title: str  # its title, if the corpus kept one

    def to_dict(self) -> dict:
        return {"similarity": round(self.similarity, 4), "index": self.index, "name": self.name,
                "title": self.title}


@dataclass
class Report:
    """What the validator found in one tune. ``valid`` is true when there are no errors."""

    label: str = ""  # "X:3 'The Kesh'"
    file: str | None = None  # the file it came from, if any
    line: int | None = None  # 1-based line of its X: field in that file
    errors: list[Issue] = field(default_factory=list)  # it does not play as written
    warnings: list[Issue] = field(default_factory=list)  # it plays, but look twice
    structure: dict = field(default_factory=dict)  # sections, parts, bars (see _structure)
    range: dict = field(default_factory=dict)  # lowest, highest, names, instrument, outside
    nearest: Nearest | None = None  # the most similar corpus tune (None: not checked)
    tune: Tune | None = field(default=None, repr=False, compare=False)  # as parsed (None: unreadable)
    _form: dict | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def valid(self) -> bool:
        return not self.errors

    @property
    def form(self) -> dict:
        """The tune's form (:meth:`folkrnn.form.Form.to_dict`: parts, label such as ``AABB``,
        repeated bars), measured when first asked for; ``{}`` for a tune that could not be read."""
        if self._form is None:
            from folkrnn.form import form_of  # lazily: start-up (only Report.form needs form)

            self._form = form_of(self.tune).to_dict() if self.tune is not None else {}
        return self._form

    def to_dict(self) -> dict:
        """The JSON object ``folkrnn validate --json`` prints for this tune."""
        return {
            "tune": self.label, "file": self.file, "line": self.line, "valid": self.valid,
            "errors": [issue.to_dict() for issue in self.errors],
            "warnings": [issue.to_dict() for issue in self.warnings],
            "structure": self.structure, "range": self.range,
            "nearest": self.nearest.to_dict() if self.nearest else None,
            "form": self.form,
        }

    def format(self) -> str:
        """A readable report: a headline, the errors, then the warnings, one a line."""
        where = f"{self.file}:{self.line}: " if self.file and self.line else ""
        state = "valid" if self.valid else f"INVALID ({len(self.errors)} error"
        if not self.valid:
            state += "s)" if len(self.errors) > 1 else ")"
        facts = []
        if self.structure.get("sections"):
            bars = "+".join(str(part["bars"]) for part in self.structure.get("parts", []))
            facts.append(f"{self.structure['sections']} ({bars} bar{'' if bars == '1' else 's'})")
        if self.range.get("lowest") is not None:
            facts.append(f"range {self.range['lowest_name']}-{self.range['highest_name']}")
        if self.nearest is not None:
            facts.append(f"nearest {self.nearest.similarity:.2f} {self.nearest.title or self.nearest.name}")
        lines = [f"{where}{self.label or 'tune'}: {state}" + (f"; {', '.join(facts)}" if facts else "")]
        lines += [f"  error: {issue}" for issue in self.errors]
        lines += [f"  warning: {issue}" for issue in self.warnings]
        return "\n".join(lines)


@dataclass(frozen=True)
class ValidateOptions:
    """What the validator checks beyond the always-on syntax, bar, repeat and structure checks."""

    instrument: str | None = None  # flag notes this instrument cannot play (see INSTRUMENTS)
    strict: bool = False  # a probable copy is an error, not a warning
    require_closing_bar: bool = False  # a tune that does not end with a bar line is an error
    copy_threshold: float = COPY_THRESHOLD  # similarity that counts as a probable copy


# ---------------------------------------------------------------------------------------------
# Bars: the written bar lines grouped into boundaries, the music between them into measures


@dataclass
class _Boundary:
    """Bar lines written at one moment (``:| |:``, ``:|`` then ``[2``): one place in the music."""

    first: int  # index of its first BarLine in tune.bars
    onset: Fraction
    kinds: list[str]  # the written kinds, in order (BarLines first, first + 1, ...)
    ending: tuple[int, ...]  # numbers of the ending starting here, or ()
    section: bool = False  # a section line: anything but a plain | (or a part label here)
    part: bool = False  # a P: part label follows it: each part repeats on its own
    closes: bool = False  # a :| or :: is written here
    opens: bool = False  # a |: or :: is written here


@dataclass
class _Measure:
    """The music between two boundaries (or the start or the end of the tune)."""

    start: int  # in ticks (see Bars.scale)
    length: int  # in ticks
    expected: int  # a full bar in ticks; 0 in free meter
    notes: tuple[int, int]  # notes[first:last] of tune.notes
    before: int | None  # index of the boundary before it (None: the start of the tune)
    after: int | None  # index of the boundary after it (None: the tune ends without a bar line)
    number: int = 0  # bar number for people
    rest_bars: int = 0  # a whole-bar rest (Z) this many bars long; else 0

    @property
    def short(self) -> bool:
        return self.expected > 0 and self.length < self.expected and not self.rest_bars

    @property
    def long(self) -> bool:
        return self.expected > 0 and self.length > self.expected and not self.rest_bars


def _lcm(values: Iterable[int]) -> int:
    result = 1
    for value in values:
        result = result * value // math.gcd(result, value)
    return result


class Bars:
    """A tune cut into boundaries and measures, with times as integer ticks."""

    def __init__(self, tune: Tune) -> None:
        self.tune = tune
        bars = tune.bars
        notes = tune.notes
        # where the music ends: the parser's count of the written time (rests after the last
        # note included), else the last event's notes, among the last few written (a tie
        # extends an earlier note, but only up to the end of the event it joins)
        end = tune.end
        if end is None:
            last = max((note.onset + note.duration for note in notes[-8:]), default=Fraction(0))
            end = max(last, bars[-1].onset if bars else Fraction(0))
        self.meters = meters = self._meters()
        onsets = [bar.onset for bar in bars]
        denominators = {onset.denominator for onset in onsets}
        denominators.add(end.denominator)
        denominators.update(meter.bar_length.denominator for _, meter in meters)
        self.scale = scale = _lcm(denominators)  # ticks per quarter note
        ticks = [onset.numerator * (scale // onset.denominator) for onset in onsets]

        parts = {change.onset for change in tune.changes if change.field == "P"}
        boundaries: list[_Boundary] = []
        boundary_ticks: list[int] = []
        for index, bar in enumerate(bars):
            tick = ticks[index]
            if boundary_ticks and boundary_ticks[-1] == tick:
                boundary = boundaries[-1]
                boundary.kinds.append(bar.kind)
                if bar.ending:
                    boundary.ending = bar.ending
            else:
                boundary = _Boundary(index, bar.onset, [bar.kind], bar.ending)
                boundaries.append(boundary)
                boundary_ticks.append(tick)
                if parts and bar.onset in parts:
                    boundary.section = boundary.part = True
            kind = bar.kind
            if kind != "|" or bar.ending:
                boundary.section = True
                if kind == ":|" or kind == "::":
                    boundary.closes = True
                if kind == "|:" or kind == "::":
                    boundary.opens = True
        self.boundaries = boundaries

        meter_onsets = [onset.numerator * (scale // onset.denominator) for onset, _ in meters]
        meter_lengths = [0 if meter.free else
                         meter.bar_length.numerator * (scale // meter.bar_length.denominator)
                         for _, meter in meters]
        self.free = 0 in meter_lengths
        single = meter_lengths[0] if len(meter_lengths) == 1 else None

        measures: list[_Measure] = []
        previous_tick, previous_note, before = 0, 0, None
        end_tick = end.numerator * (scale // end.denominator)
        stops = boundary_ticks + ([end_tick] if end_tick > (boundary_ticks[-1] if boundary_ticks else 0) else [])
        for index, tick in enumerate(stops):
            closed = index < len(boundaries)
            note_index = bars[boundaries[index].first].note_index if closed else len(notes)
            if tick > previous_tick:
                if single is not None:
                    expected = single
                else:  # the meter in force at the end of the measure (written at its start or in it)
                    expected = meter_lengths[max(bisect_right(meter_onsets, tick - 1) - 1, 0)]
                measures.append(_Measure(previous_tick, tick - previous_tick, expected,
                                         (previous_note, note_index), before,
                                         index if closed else None))
            previous_tick, previous_note, before = tick, note_index, index
        number = 0
        for position, measure in enumerate(measures):
            length, expected = measure.length, measure.expected
            if expected and length > expected and length % expected == 0 \
                    and measure.notes[0] == measure.notes[1]:
                measure.rest_bars = length // expected  # Z4: four bars of rest
            previous = measures[position - 1] if position else None
            if position == 0 and 0 < length < expected:
                measure.number = 0  # a pickup is bar 0
            elif previous is not None and expected == previous.expected \
                    and completes((previous.length, length), expected) and boundaries[measure.before].section:
                measure.number = number  # a pickup that completes the bar before a section line
            else:
                number += 1
                measure.number = number
                if measure.rest_bars:
                    number += measure.rest_bars - 1
        self.measures = measures

    def _meters(self) -> list[tuple[Fraction, object]]:
        """(onset, Meter) from the header and each inline or body-line M: change, in order."""
        meters = [(Fraction(0), self.tune.meter)]
        for change in self.tune.changes:
            if change.field != "M":
                continue
            try:
                meter = parse_meter(change.value.split("%", 1)[0])
            except ValueError:
                continue  # the parser already refused a bad inline M:
            if change.onset == meters[-1][0]:
                meters[-1] = (change.onset, meter)
            else:
                meters.append((change.onset, meter))
        return meters

    def beats(self, ticks: int, measure: _Measure) -> str:
        """A length in beats of the meter in force (``"5 eighths"``, ``"3/2 quarters"``)."""
        meter = self._meter_at(measure)
        unit = Fraction(4, meter.denominator) * self.scale  # ticks per beat
        value = Fraction(ticks) / unit
        text = str(value) if value.denominator != 1 else str(value.numerator)
        name = {1: "whole notes", 2: "halves", 4: "quarters", 8: "eighths", 16: "sixteenths",
                32: "thirty-seconds"}.get(meter.denominator, f"1/{meter.denominator} notes")
        return f"{text} {name}"

    def _meter_at(self, measure: _Measure):
        onset = Fraction(measure.start + max(measure.length - 1, 0), self.scale)
        meter = self.tune.meter
        for change_onset, candidate in self.meters:
            if change_onset <= onset:
                meter = candidate
        return meter


# ---------------------------------------------------------------------------------------------
# Where bar lines are written (looked up only when there is something to report)


def _bar_positions(lexed) -> list[tuple[int, int]]:
    """(line, column) within the lexed text of each of the parser's BarLines (the parser makes one
    BarLine per written bar line, and one for an ending written with no bar line before it)."""
    positions: list[tuple[int, int]] = []
    last_has_ending = True  # no bar yet: an ending makes its own
    music_since = False
    for item in lexed.items:
        kind = item[0]
        if kind is BAR:
            positions.append(lexed.where(item[1]))
            last_has_ending, music_since = bool(item[3]), False
        elif kind is ENDING:
            if positions and not last_has_ending and not music_since:
                last_has_ending = True  # merged into the bar line before it
            else:
                positions.append(lexed.where(item[1]))
                last_has_ending, music_since = True, False
        elif kind is NOTE or kind is REST or kind is MREST or kind is CHORD_END:
            music_since = True
    return positions


def _unreadable_lengths(lexed, report: Report, line_offset: int) -> None:
    """Flag note lengths whose divisor is not a power of 2 (``A/3``, ``A3/5``): abc2midi ("3 b is not
    a power of 2") and abcm2ps ("Bad length divisor") refuse them, and music21 cannot time them.
    A third of a beat is written as a tuplet, ``(3ABC``. The first is an error, with a count of the rest."""
    found = []
    for index, record in enumerate(lexed.records):
        kind = record[0]
        if kind is NOTE:
            n, d = record[5], record[6]
        elif kind is REST:
            n, d = record[3], record[4]
        elif kind is CHORD_END:
            n, d = record[2], record[3]
        else:
            continue
        if d > 0 and d & (d - 1):
            found.append((index, n, d))
    if not found:
        return
    index, n, d = found[0]
    line, col = lexed.where(lexed.offset(index))
    more = f" ({len(found) - 1:,} more like it)" if len(found) > 1 else ""
    report.errors.append(Issue(
        "length-divisor", f"note length {'' if n == 1 else n}/{d}: {d} is not a power of 2, which "
        f"abc2midi and abcm2ps cannot read; write thirds as a triplet, (3ABC{more}", None, line + line_offset, col))


# ---------------------------------------------------------------------------------------------
# The checks


class _Checker:
    """Runs the bar, repeat and structure checks on one parsed tune and fills a Report."""

    def __init__(self, tune: Tune, report: Report, lexed, line_offset: int) -> None:
        self.tune, self.report, self.lexed, self.line_offset = tune, report, lexed, line_offset
        self.bars = Bars(tune)
        self._positions: list[tuple[int, int]] | None | bool = False  # False: not looked up yet

    # --- where things are, for messages

    def _position(self, boundary: int | None, kinds: tuple[str, ...] = ()) -> tuple[int | None, int | None]:
        """Line and column of a boundary's bar line (of the first of ``kinds`` written there)."""
        if boundary is None or self.lexed is None:
            return None, None
        if self._positions is False:
            positions = _bar_positions(self.lexed)
            self._positions = positions if len(positions) == len(self.tune.bars) else None
        if not self._positions:
            return None, None
        found = self.bars.boundaries[boundary]
        offset = next((k for k, kind in enumerate(found.kinds) if kind in kinds), 0)
        line, col = self._positions[found.first + offset]
        return line + self.line_offset, col

    def _measure_issue(self, code: str, message: str, measure: _Measure) -> Issue:
        line, col = self._position(measure.after if measure.after is not None else measure.before)
        return Issue(code, message, measure.number, line, col)

    def _boundary_issue(self, code: str, message: str, boundary: int,
                        kinds: tuple[str, ...] = ()) -> Issue:
        line, col = self._position(boundary, kinds)
        return Issue(code, message, self._bar_number_at(boundary), line, col)

    def _bar_number_at(self, boundary: int) -> int | None:
        """The number of the bar that a boundary closes (or, at the start, opens)."""
        for measure in self.bars.measures:
            if measure.after == boundary:
                return measure.number
        for measure in self.bars.measures:
            if measure.before == boundary:
                return measure.number
        return None

    def error(self, issue: Issue) -> None:
        self.report.errors.append(issue)

    def warn(self, issue: Issue) -> None:
        self.report.warnings.append(issue)

    # --- repeats and endings

    def repeats(self) -> dict[int, int]:
        """Check repeats and endings; return, for each boundary that closes a repeat, the boundary
        that opened it (-1: the start of the tune)."""
        boundaries, measures = self.bars.boundaries, self.bars.measures
        opened: int | None = None  # boundary of the |: now open
        closes_seen = 0
        section_seen = False  # a ||, |] or [| since the start, with no repeat yet
        repeat_of: dict[int, int] = {}
        last_close = -1  # where the last repeat closed (a later :| with no |: goes back there)
        group: dict | None = None  # the endings of the repeat now being played
        music_after = [False] * len(boundaries)
        for measure in measures:
            if measure.before is not None:
                music_after[measure.before] = True

        def end_group(at: int) -> None:
            nonlocal group
            if group is not None and not group["closed"] and group["last"] == 1:
                self.error(self._boundary_issue(
                    "ending-unclosed", f"ending {group['last']} (from bar {group['bar']}) is not "
                    "closed with :|", group["at"]))
            group = None

        finished: dict | None = None  # the last group of endings, once closed
        for index, boundary in enumerate(boundaries):
            if group is not None and group["closed"] and group["closed_at"] != index:
                finished, group = group, None  # its last ending was closed, and no ending follows
            for kind in boundary.kinds:
                if kind in (":|", "::"):
                    if group is not None and not group["closed"]:
                        group["closed"], group["closed_at"] = True, index
                        if group["last"] > 1 and opened is None:
                            closes_seen += 1
                            repeat_of[index] = last_close
                            last_close = index
                            continue  # a :| after a later ending: a pass for ending 3 (or redundant)
                    if opened is not None:
                        repeat_of[index] = opened
                    elif closes_seen == 0:
                        repeat_of[index] = -1
                        if section_seen:
                            self.warn(self._boundary_issue(
                                "repeat-from-start", ":| with no |: repeats from the start of the "
                                "tune, past an earlier section line; write |: where the repeat "
                                "begins", index, (":|", "::")))
                    else:
                        repeat_of[index] = last_close
                        after = self._bar_number_at(last_close)
                        self.warn(self._boundary_issue(
                            "repeat-unopened", f":| with no |: repeats from after bar {after} (the "
                            "last repeat or section line), as players read it; write |: there",
                            index, (":|", "::")))
                    opened = None
                    closes_seen += 1
                    last_close = index
                if kind in ("|:", "::"):
                    if opened is not None and opened != index:
                        self.error(self._boundary_issue(
                            "repeat-nested", f"|: while the repeat opened at bar "
                            f"{self._bar_number_at(opened)} is still open: close it with :| first",
                            index, ("|:", "::")))
                    if group is not None:
                        end_group(index)
                    opened = index
                elif kind in ("||", "|]", "[|") and not boundary.ending:
                    if group is not None and not (boundary.closes and group["closed_at"] == index):
                        end_group(index)
                    if opened is None and closes_seen == 0 and music_after[index]:
                        section_seen = True
                    if opened is None and closes_seen and not boundary.closes:
                        last_close = index  # a later :| with no |: comes back here
            if boundary.part:
                closes_seen, section_seen, last_close = 0, False, index  # a new part: a new start
            if boundary.section and boundary.kinds[-1] not in ("||", "|]", "[|", "|:", "::") \
                    and not boundary.ending and not boundary.closes and group is not None:
                end_group(index)  # a part label
            if boundary.ending:
                numbers = boundary.ending
                bar = next((m.number for m in measures if m.before == index), None)
                if group is None:
                    if min(numbers) != 1 and finished is not None and \
                            min(numbers) == finished["last"] + 1:
                        self.error(self._boundary_issue(
                            "ending-misplaced", f"ending {_numbers(numbers)} does not start at the "
                            f":| that closes ending {finished['last']} (bar "
                            f"{self._bar_number_at(finished['closed_at'])})", index))
                    elif min(numbers) != 1:
                        self.error(self._boundary_issue(
                            "ending-order", f"ending {_numbers(numbers)} has no ending 1 before it",
                            index))
                    group = {"last": max(numbers), "first_number": min(numbers), "closed": False,
                             "closed_at": None, "at": index, "bar": bar, "count": 1}
                    finished = None
                else:
                    if not group["closed"]:
                        self.error(self._boundary_issue(
                            "ending-unclosed", f"ending {group['last']} is not closed with :| "
                            f"before ending {_numbers(numbers)}", index))
                    if min(numbers) != group["last"] + 1:
                        self.error(self._boundary_issue(
                            "ending-order", f"ending {_numbers(numbers)} follows ending "
                            f"{group['last']}: endings go 1, 2, 3 in order", index))
                    group.update(last=max(group["last"], max(numbers)), closed=False, closed_at=None,
                                 count=group["count"] + 1)
        if group is not None:
            end_group(len(boundaries) - 1)
        if opened is not None:
            if music_after[opened]:
                self.error(self._boundary_issue(
                    "repeat-unclosed", "|: opens a repeat that no :| closes", opened, ("|:", "::")))
            else:
                self.error(self._boundary_issue(
                    "repeat-empty", "|: at the end of the tune opens a repeat with nothing in it",
                    opened, ("|:", "::")))
        return repeat_of

    # --- bar lengths

    def lengths(self, repeat_of: dict[int, int]) -> None:
        bars = self.bars
        measures, boundaries = bars.measures, bars.boundaries
        if not measures:
            return
        by_after = {m.after: i for i, m in enumerate(measures) if m.after is not None}
        by_before = {m.before: i for i, m in enumerate(measures) if m.before is not None}
        excused = [False] * len(measures)

        def pair(i: int, j: int) -> bool:
            a, b = measures[i], measures[j]
            return a.short and b.short and a.expected == b.expected and completes((a.length, b.length), a.expected)

        def pickup_of(opened: int) -> list[int]:
            """The measures that may lead into the repeat opened at ``opened``."""
            if opened == -1:
                return [0]
            out = []
            if opened in by_after:
                out.append(by_after[opened])
            if opened in by_before:
                out.append(by_before[opened])
            return out

        first_endings: dict[int, int] = {}  # boundary of a later ending -> boundary of ending 1
        ending_one = None
        for index, boundary in enumerate(boundaries):
            if boundary.ending:
                if 1 in boundary.ending or ending_one is None:
                    ending_one = index
                else:
                    first_endings[index] = ending_one
            elif boundary.kinds[-1] in ("||", "|]", "[|", "|:", "::"):
                ending_one = None

        # the measure played before each one the first time through (the first bar of a later
        # ending follows the bar before ending 1), and after it (none after the close of an
        # ending: the next written bar is the next ending, never played right after it)
        count = len(measures)
        previous: list[int | None] = [i - 1 if i else None for i in range(count)]
        following: list[int | None] = [i + 1 if i + 1 < count else None for i in range(count)]
        for i, measure in enumerate(measures):
            if measure.before in first_endings:
                previous[i] = by_after.get(first_endings[measure.before])
                if i:
                    following[i - 1] = None

        def crossing(a: int, b: int) -> bool:
            """Whether a section line lies between measure a and the measure b played after it."""
            boundary = measures[b].before
            return boundary is not None and boundaries[boundary].section

        def chains(i: int):
            """Runs of two or three measures through measure i, in playing order, each step over a
            section line: a short bar and the pickup that completes it."""
            p, n = previous[i], following[i]
            if p is not None and crossing(p, i):
                yield (p, i)
                q = previous[p]
                if q is not None and crossing(q, p):
                    yield (q, p, i)
                if n is not None and crossing(i, n):
                    yield (p, i, n)
            if n is not None and crossing(i, n):
                yield (i, n)
                m = following[n]
                if m is not None and crossing(n, m):
                    yield (i, n, m)

        def whole(chain) -> bool:
            expected = measures[chain[0]].expected
            return all(measures[k].short and measures[k].expected == expected for k in chain) \
                and completes((measures[k].length for k in chain), expected)

        # the last section may start with a pickup and end with the bar that completes it (a
        # section before others may not: its short last bar would lose time going into the next)
        starts = [0] + [i for i, m in enumerate(measures) if i and boundaries[m.before].section]
        if count - 1 > starts[-1] and pair(starts[-1], count - 1):
            excused[starts[-1]] = excused[count - 1] = True

        for i, measure in enumerate(measures):
            if not measure.short or excused[i]:
                continue
            if i == 0:
                excused[i] = True  # the pickup
                continue
            # a short bar either side of section lines, completed by its neighbours
            chain = next((chain for chain in chains(i) if whole(chain)), None)
            if chain is not None:
                for k in chain:
                    excused[k] = True
                continue
            # the last bar of a repeat (with the short bar before it, across an ending's start),
            # completed by the pickup into the repeat, played on the way back
            if measure.after in repeat_of:
                p = previous[i]
                starts = [(i,)] + ([(p, i)] if p is not None and crossing(p, i) else [])
                chain = next((start + (k,) for start in starts
                              for k in pickup_of(repeat_of[measure.after])
                              if k not in start and whole(start + (k,))), None)
                if chain is not None:
                    for k in chain[:-1]:
                        excused[k] = True
                    continue
            # the last bar of the tune, complementing a pickup: of the tune or of its last section
            if i == len(measures) - 1:
                section_start = max((k for k in range(1, i) if measures[k].before is not None
                                     and boundaries[measures[k].before].section), default=0)
                if pair(0, i) or (measures[section_start].short and pair(section_start, i)):
                    excused[i] = True
                    continue
        last = len(measures) - 1
        for i, measure in enumerate(measures):
            if measure.long:
                self.error(self._measure_issue(
                    "bar-too-long", f"bar is too long: {bars.beats(measure.length, measure)} where "
                    f"the meter has {bars.beats(measure.expected, measure)}", measure))
            elif measure.short and not excused[i]:
                text = (f"bar is too short: {bars.beats(measure.length, measure)} where the meter "
                        f"has {bars.beats(measure.expected, measure)}")
                if i == last and measure.after not in repeat_of:
                    self.warn(self._measure_issue(
                        "last-bar-short", "last " + text + ", and no pickup complements it", measure))
                else:
                    self.error(self._measure_issue("bar-too-short", text, measure))

    # --- the end of the tune

    def closing(self, options: ValidateOptions) -> None:
        measures = self.bars.measures
        if measures and measures[-1].after is None and measures[-1].notes[1] > measures[-1].notes[0]:
            issue = Issue("no-closing-bar", "the tune does not end with a bar line (|], || or :|)",
                          measures[-1].number)
            (self.error if options.require_closing_bar else self.warn)(issue)

    # --- structure

    def structure(self, repeat_of: dict[int, int]) -> dict:
        """The parts of the tune, in written order, and the section string as played."""
        bars = self.bars
        measures, boundaries = bars.measures, bars.boundaries
        notes = self.tune.notes
        parts: list[dict] = []
        current: dict = {"measures": [], "passes": 1, "endings": 0, "alternative": False}
        in_ending_group = False

        def close(passes: int) -> None:
            nonlocal current
            pickup = [k for k in current["measures"] if measures[k].short]
            if pickup and pickup == current["measures"] and len(pickup) == 1 and parts == [] \
                    and current["passes"] == 1 and passes == 1:
                # only a pickup before the first section line: it leads into the next part
                current = {"measures": pickup, "passes": 1, "endings": 0, "alternative": False}
                return
            if current["measures"]:
                current["passes"] = max(current["passes"], passes)
                parts.append(current)
            current = {"measures": [], "passes": 1, "endings": 0, "alternative": False}

        opened = False
        for i, measure in enumerate(measures):
            if not current["alternative"]:
                current["measures"].append(i)
            if measure.after is None:
                continue
            boundary = boundaries[measure.after]
            numbers = boundary.ending
            if numbers:
                current["endings"] = max(current["endings"], max(numbers))
            if boundary.closes:
                passes = max(2, current["endings"])
                if numbers:  # `:|2`: ending 2 follows, another way through the same part
                    current["passes"] = max(current["passes"], passes)
                    current["alternative"] = True
                    in_ending_group, opened = True, False
                    continue
                close(passes)
                opened, in_ending_group = boundary.opens, False
                continue
            if numbers:
                in_ending_group = True
                if min(numbers) > 1:
                    current["alternative"] = True  # a later ending: not on the part's first path
                continue
            if boundary.opens:
                close(current["passes"])
                opened, in_ending_group = True, False
                continue
            if boundary.section:
                if in_ending_group or current["alternative"]:
                    close(current["passes"])  # the last ending ends here
                elif not opened:
                    close(1)
                in_ending_group = False
        close(current["passes"])

        out_parts, signatures, letters = [], [], []
        for part in parts:
            indices = part["measures"]
            # a pickup into the part and its closing short bar make one bar together, as
            # folkrnn.form counts them (a lone pickup, before a full last bar, none)
            count = bar_count([measures[k] for k in indices])
            if indices and measures[indices[0]].short and len(indices) > 1:
                indices = indices[1:]  # (the part's first bar is the one after its pickup)
            first, last = measures[indices[0]].notes[0], measures[indices[-1]].notes[1]
            signature = tuple(map(_PITCH, notes[first:last]))
            if signature in signatures:
                letter = letters[signatures.index(signature)]
            else:
                letter = chr(ord("A") + min(len(set(letters)), 25))
            signatures.append(signature)
            letters.append(letter)
            out_parts.append({"label": letter, "bars": count, "passes": part["passes"],
                              "first_bar": measures[indices[0]].number,
                              "endings": part["endings"]})
        sections = "".join(part["label"] * part["passes"] for part in out_parts)
        total = bar_count(measures[1:] if measures and measures[0].short else measures)
        return {"sections": sections, "parts": out_parts, "bars": total,
                "pickup": bool(measures) and measures[0].short,
                "meter": str(self.tune.meter), "free_meter": bars.free}


def bar_count(measures: Sequence[_Measure]) -> int:
    """How many bars some measures make (:func:`folkrnn.music.count_bars`): full bars count one, short
    ones their fraction rounded half down (a short bar and its complement make one, a lone pickup
    none), whole-bar rests their bars; free-meter measures one each. A bar that is too long counts
    one (it is one bar as written, and an error of its own)."""
    return count_bars((measure.length, measure.expected, measure.rest_bars) for measure in measures)


def _numbers(numbers: tuple[int, ...]) -> str:
    return ",".join(map(str, numbers))


def _check_header(tune: Tune, report: Report) -> None:
    present = {name for name, _ in tune.fields}
    for letter, what in (("X", "a reference number"), ("T", "a title"), ("M", "a meter")):
        if letter not in present:
            consequence = "; bars are checked against 4/4" if letter == "M" else ""
            report.warnings.append(Issue("header", f"no {letter}: field ({what}){consequence}"))
    meter = tune.meter
    if not meter.free and meter.denominator & (meter.denominator - 1):
        report.warnings.append(Issue("header", f"M:{meter} has a beat of 1/{meter.denominator}, "
                                     "which is not a note length"))
    if tune.unit.numerator != 1 or tune.unit.denominator & (tune.unit.denominator - 1):
        report.warnings.append(Issue("header", f"L:{tune.unit} is not 1/2^n (1/4, 1/8, 1/16)"))
    if meter.free:
        report.warnings.append(Issue("free-meter", "M:none (free meter): bar lengths are not checked"))


def _range(tune: Tune, report: Report, instrument: Instrument | None, bars: Bars) -> dict:
    sounding = [note.pitch for note in tune.notes if not note.grace]
    if not sounding:
        return {"lowest": None, "highest": None, "lowest_name": None, "highest_name": None,
                "span": 0, "instrument": instrument.name if instrument else None, "outside": 0}
    lowest, highest = min(sounding), max(sounding)
    result = {"lowest": lowest, "highest": highest, "lowest_name": pitch_name(lowest),
              "highest_name": pitch_name(highest), "span": highest - lowest,
              "instrument": None, "outside": 0}
    if instrument is None:
        return result
    result["instrument"] = instrument.name
    result["instrument_lowest"], result["instrument_highest"] = instrument.lowest, instrument.highest
    outside = [(i, note.pitch) for i, note in enumerate(tune.notes)
               if not instrument.lowest <= note.pitch <= instrument.highest]
    result["outside"] = len(outside)
    if outside:
        starts = [measure.notes[0] for measure in bars.measures]
        by_bar: dict[int, list[int]] = {}
        for index, pitch in outside:
            at = bisect_right(starts, index) - 1
            number = bars.measures[at].number if at >= 0 else 0
            by_bar.setdefault(number, []).append(pitch)
        for number, pitches in by_bar.items():
            names = ", ".join(pitch_name(pitch) for pitch in dict.fromkeys(pitches))
            side = "below" if max(pitches) < instrument.lowest else "above" \
                if min(pitches) > instrument.highest else "outside"
            report.errors.append(Issue(
                "out-of-range", f"{names} {side} the {instrument.name}'s range "
                f"{pitch_name(instrument.lowest)}-{pitch_name(instrument.highest)}", number))
    return result


# ---------------------------------------------------------------------------------------------
# Novelty: normalised edit distance to the nearest corpus tune, through an n-gram index


def levenshtein(a: Sequence, b: Sequence, limit: int | None = None) -> int:
    """Edit distance (insertions, deletions, substitutions) between two token sequences.

    Bit-parallel (Myers 1999, Hyyrö's formulation): one pass over the longer sequence with the
    shorter held in the bits of Python integers, so it costs ``max(len)`` big-integer steps rather
    than ``len(a) * len(b)`` cell updates. With ``limit``, it may stop early and return any value
    above ``limit`` once the distance is sure to exceed it.
    """
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return len(a)
    if limit is not None and len(a) - len(b) > limit:
        return len(a) - len(b)
    peq: dict = {}
    for i, token in enumerate(b):  # the shorter one goes in the bits
        peq[token] = peq.get(token, 0) | (1 << i)
    m = len(b)
    mask = (1 << m) - 1
    top = 1 << (m - 1)
    pv, mv, score = mask, 0, m
    get = peq.get
    remaining = len(a)
    for token in a:
        remaining -= 1
        eq = get(token, 0)
        xv = eq | mv
        xh = (((eq & pv) + pv) ^ pv) | eq
        ph = mv | (~(xh | pv) & mask)
        mh = pv & xh
        if ph & top:
            score += 1
        elif mh & top:
            score -= 1
        ph = ((ph << 1) | 1) & mask
        mh = (mh << 1) & mask
        pv = mh | (~(xv | ph) & mask)
        mv = ph & xv
        if limit is not None and score - remaining > limit:
            return score - remaining  # each remaining step lowers the distance by one at most
    return score


def similarity(a: Sequence, b: Sequence) -> float:
    """``1 - levenshtein(a, b) / max(len(a), len(b))``: 1 for equal sequences, 0 for nothing shared."""
    longest = max(len(a), len(b))
    if longest == 0:
        return 1.0
    return 1.0 - levenshtein(a, b) / longest


class NoveltyIndex:
    """The bodies of a reference corpus, indexed by their token n-grams, for nearest-tune search.

    A query's n-grams are looked up in the index (one sorted array of n-gram keys and the tunes
    holding each), the tunes sharing the largest fraction of n-grams become candidates, and the
    exact similarity is computed for the best few of them. A copy (similarity >= 0.85) shares most
    of its n-grams with its original, so it is always among the candidates; for dissimilar tunes
    the nearest found is the best of the candidates (a close approximation of the true nearest).

    Parameters
    ----------
    bodies
        Normalised body tokens of each reference tune (``folkrnn.abc.tokens.body_of``).
    names, titles
        Where each tune comes from and its title, for reports (default: its index, no title).
    order
        n of the n-grams (fewer when the vocabulary is so large that n tokens do not fit 62 bits).
    candidates
        How many of the best-sharing tunes get the exact edit distance.
    """

    def __init__(self, bodies: Sequence[Sequence[str]], names: Sequence[str] | None = None,
                 titles: Sequence[str] | None = None, *, order: int = 4, candidates: int = 16) -> None:
        self.bodies = [tuple(body) for body in bodies]
        if not self.bodies:
            raise OptionError("the reference corpus for the novelty check has no tunes")
        self.names = list(names) if names is not None else [str(i) for i in range(len(self.bodies))]
        self.titles = list(titles) if titles is not None else [""] * len(self.bodies)
        self.candidates = candidates
        vocabulary: dict[str, int] = {}
        for body in self.bodies:
            for token in body:
                if token not in vocabulary:
                    vocabulary[token] = len(vocabulary) + 1  # 0: a token no reference tune has
        self.vocabulary = vocabulary
        self.bits = max(1, (len(vocabulary) + 1).bit_length())
        self.order = max(1, min(order, 62 // self.bits))
        self.exact = {body: i for i, body in reversed(list(enumerate(self.bodies)))}
        lengths = np.fromiter((len(body) for body in self.bodies), np.int64, len(self.bodies))
        ids = np.fromiter((vocabulary[token] for body in self.bodies for token in body), np.int64,
                          int(lengths.sum()))
        keys, owners = self._grams(ids, lengths)
        order_ = np.lexsort((owners, keys))
        keys, owners = keys[order_], owners[order_]
        distinct = np.ones(len(keys), bool)
        distinct[1:] = (keys[1:] != keys[:-1]) | (owners[1:] != owners[:-1])
        keys, owners = keys[distinct], owners[distinct]  # each (n-gram, tune) once
        self._gram_counts = np.bincount(owners, minlength=len(self.bodies)).astype(np.float64)
        self._lengths = lengths.astype(np.float64)
        starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        self._keys = keys[starts]  # sorted distinct n-gram keys
        self._offsets = np.r_[starts, len(keys)]  # postings of key k: _owners[_offsets[k]:_offsets[k+1]]
        self._owners = owners.astype(np.int32)

    def _grams(self, ids: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """n-gram keys of concatenated sequences, and which sequence each belongs to.

        A sequence shorter than n contributes one key of its whole length."""
        n, bits = self.order, self.bits
        owner = np.repeat(np.arange(len(lengths)), lengths)
        starts = np.r_[0, np.cumsum(lengths)[:-1]]
        key = np.zeros(len(ids), np.int64)
        for k in range(n):
            shifted = np.zeros(len(ids), np.int64)
            if k < len(ids):
                shifted[:len(ids) - k] = ids[k:]
            key = key | (shifted << (bits * k))
        position = np.arange(len(ids)) - np.repeat(starts, lengths)
        fits = position + n <= np.repeat(lengths, lengths)
        # a whole sequence shorter than n: its first position, with what it has
        short = (np.repeat(lengths, lengths) < n) & (position == 0)
        if short.any():
            for index in np.flatnonzero(short):
                length = lengths[owner[index]]
                value = 0
                for k in range(length):
                    value |= int(ids[index + k]) << (bits * k)
                key[index] = value | (1 << 62)  # apart from any full n-gram
        keep = fits | short
        return key[keep], owner[keep]

    @classmethod
    def from_corpus(cls, corpus, splits: Sequence[str] = ("train",), **options) -> NoveltyIndex:
        """The index of some splits of a ``folkrnn.corpus.Corpus`` (default: its training split)."""
        bodies, names, titles = [], [], []
        for split in splits:
            tunes = getattr(corpus, split)
            origins = (getattr(corpus, "origins", None) or {}).get(split) or []
            for index, tokens in enumerate(tunes):
                bodies.append(body_of(tokens))
                names.append(origins[index] if index < len(origins) else f"{split}#{index}")
                titles.append(_title_of(tokens))
        return cls(bodies, names, titles, **options)

    def __len__(self) -> int:
        return len(self.bodies)

    def nearest(self, body: Sequence[str]) -> Nearest | None:
        """The reference tune most similar to ``body`` (normalised body tokens), or None if empty."""
        body = tuple(body)
        if not body:
            return None
        exact = self.exact.get(body)
        if exact is not None:
            return Nearest(1.0, exact, self.names[exact], self.titles[exact])
        vocabulary = self.vocabulary
        ids = np.fromiter((vocabulary.get(token, 0) for token in body), np.int64, len(body))
        keys, _ = self._grams(ids, np.array([len(body)]))
        keys = np.unique(keys)
        found = np.minimum(np.searchsorted(self._keys, keys), len(self._keys) - 1)
        hits = found[self._keys[found] == keys]  # the query's n-grams that some reference tune has
        counts = np.zeros(len(self.bodies))
        if len(hits):
            starts, stops = self._offsets[hits], self._offsets[hits + 1]
            total = int((stops - starts).sum())
            if total:
                owners = np.concatenate([self._owners[a:b] for a, b in zip(starts.tolist(), stops.tolist())])
                counts = np.bincount(owners, minlength=len(self.bodies)).astype(np.float64)
        # shared n-grams over the larger n-gram count, times the length ratio (an upper bound of
        # the similarity): ranks the true nearest among the first few far more often than either
        length = len(body)
        ratio = np.minimum(self._lengths, length) / np.maximum(self._lengths, length)
        score = counts / np.maximum(self._gram_counts, len(keys)) * ratio
        take = min(self.candidates, len(self.bodies))
        chosen = np.argpartition(-score, take - 1)[:take]
        chosen = chosen[np.argsort(-score[chosen])].tolist()
        best, best_index = -1.0, chosen[0]
        for index in chosen:
            if ratio[index] <= best:
                continue  # its lengths alone keep it below the best found
            other = self.bodies[index]
            longest = max(length, len(other))
            limit = int((1.0 - best) * longest) if best > 0 else None
            value = 1.0 - levenshtein(body, other, limit) / longest
            if value > best:
                best, best_index = value, index
        return Nearest(best, best_index, self.names[best_index], self.titles[best_index])


def _title_of(tokens: Sequence[str]) -> str:
    out = []
    for token in tokens[1:] if tokens and tokens[0] == BOS else tokens:
        if len(token) > 2 and token[1] == ":" and token[0] in "RMKL":
            break
        out.append(" " if token == SPACE else token)
    return "".join(out).strip()


# ---------------------------------------------------------------------------------------------
# The entry points


def validate_tune(tune_or_text: Tune | str, *, options: ValidateOptions | None = None,
                  novelty: NoveltyIndex | None = None, tokens: Sequence[str] | None = None,
                  label: str | None = None, file: str | None = None, line: int = 1) -> Report:
    """Validate one tune. Never raises for a bad tune: a syntax error is an error in the report.

    Parameters
    ----------
    tune_or_text
        The tune's ABC text (from its X: line), or an already parsed Tune. With a Tune, errors
        carry bar numbers but no line and column, and the novelty check needs ``tokens``.
    options
        Instrument, strictness, closing bar (see :class:`ValidateOptions`).
    novelty
        The reference index for the novelty check (:func:`folkrnn.corpus.default_novelty_index`); None skips it.
    tokens
        The tune's model tokens, if the caller has them (saves tokenising the text again).
    label, file, line
        How reports name the tune, the file it came from, and the line of its X: in that file.

    Raises
    ------
    OptionError
        An unknown instrument.
    """
    options = options or ValidateOptions()
    instrument = instrument_range(options.instrument) if options.instrument else None
    text = tune_or_text if isinstance(tune_or_text, str) else None
    report = Report(label=label or "", file=file, line=line if file else None)
    offset = line - 1 if file else 0
    lexed = None
    if text is not None:
        if not report.label:
            report.label = TuneText(text).label
        try:
            tune, lexed = parse_lexed(text)
        except FolkError as error:
            report.errors.append(Issue("syntax", error.message, None,
                                       error.line + offset if error.line is not None else None,
                                       error.col))
            return report
    else:
        tune = tune_or_text
        if not report.label:
            report.label = " ".join(part for part in (
                f"X:{tune.number}" if tune.number else "", repr(tune.title) if tune.title else "") if part)
    _check_header(tune, report)
    if lexed is not None:
        _unreadable_lengths(lexed, report, offset)
    report.warnings.extend(Issue("parser", message) for message in tune.warnings)
    checker = _Checker(tune, report, lexed, offset)
    repeat_of = checker.repeats()
    checker.lengths(repeat_of)
    checker.closing(options)
    report.structure = checker.structure(repeat_of)
    for part in report.structure["parts"]:
        if part["bars"] % _USUAL_PART_BARS and not report.structure["free_meter"]:
            report.warnings.append(Issue(
                "part-length", f"part {part['label']} has {part['bars']} bar{'' if part['bars'] == 1 else 's'}; "
                "parts are usually 4, 8 or 16 bars", part["first_bar"]))
    report.range = _range(tune, report, instrument, checker.bars)
    report.tune = tune  # its form is measured when asked for (Report.form)
    if novelty is not None:
        if tokens is None and text is not None:
            try:
                tokens = tokenize(text)
            except FolkError:
                tokens = None
        if tokens is not None:
            report.nearest = novelty.nearest(body_of(tokens))
            if report.nearest is not None and report.nearest.similarity >= options.copy_threshold:
                issue = Issue("probable-copy", f"{report.nearest.similarity:.0%} similar to "
                              f"{report.nearest.title or report.nearest.name} "
                              f"({report.nearest.name}): a probable copy")
                (report.errors if options.strict else report.warnings).append(issue)
    # errors in written order, by bar
    report.errors.sort(key=_order)
    report.warnings.sort(key=_order)
    return report


def _order(issue: Issue) -> tuple:
    return (issue.bar if issue.bar is not None else -1, issue.line or 0, issue.col or 0)


def validate_text(text: str, *, file: str | None = None, options: ValidateOptions | None = None,
                  novelty: NoveltyIndex | None = None) -> list[Report]:
    """Validate every tune of a tunebook's text; a tune that cannot be read is reported, and the
    rest are still checked. Raises AbcError when the text holds no tune at all."""
    tunes = split_tunebook(text, file)
    if not tunes:
        raise AbcError("no tunes in this file", file=file)
    return [validate_tune(tune.text, options=options, novelty=novelty, label=tune.label,
                          file=file, line=tune.line) for tune in tunes]


def validate_file(path, *, options: ValidateOptions | None = None,
                  novelty: NoveltyIndex | None = None) -> list[Report]:
    """Validate every tune of an ABC file. Raises AbcError when the file cannot be read."""
    return validate_text(read_text(path), file=str(path), options=options, novelty=novelty)


# A name that moved to its owner: the novelty index of the default corpus is built in folkrnn.corpus
# (validate sits below corpus). Old code that asks this module for it still gets it, with a
# DeprecationWarning; folkrnn itself never does.
__getattr__ = moved_names(__name__, {"default_novelty_index": "folkrnn.corpus"})
