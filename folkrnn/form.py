"""The form of a tune: its parts, their lengths and repeats, and the bars that come back.

Dance tunes have a form that players hear at once: parts of 8 bars, each played twice (AABB), bars
and half-bar motifs that return, a last note on the tonic. :func:`form_of` measures it for one tune
(ABC text or a parsed :class:`folkrnn.music.Tune`) and gives a frozen :class:`Form`;
:func:`form_statistics` turns many into the figures of issue 10's table; :func:`form_features`
and :func:`two_sample_accuracy` give a classifier two-sample test (can logistic regression tell
generated tunes from real ones by their form? 50% means it cannot).

Everything is read **as written**, not as played: repeats are not unfolded, and a bar that returns
through a repeat sign does not count as a repeated bar.

Counting rules (those of ``/work/shared/ANCHORS.md``):

- **Bars.** A bar is the music between two bar lines (several written at one moment, ``:|`` then
  ``[2``, are one). A full bar counts 1 (a ``Z4`` rest 4, an over-long bar 1). Short bars add up by
  their length: a pickup and the part's closing short bar make one bar together; a short bar left
  over counts only if it is more than half a bar (a pickup alone is not a bar).
- **Parts.** Parts split at repeat signs (``|:``, ``:|``, ``::``) and double bars (``||``, ``|]``,
  ``[|``). A stretch shorter than one full bar between two of them (a pickup written before
  ``|:``) joins the next part (at the end of the tune, the last one).
- **Endings.** First and second endings belong to the part they end; its length counts the body
  and one ending (the last, which leads out of the part). A last ending that no section line
  closes runs, as written, to the next one; when it is longer than the first ending, it is cut
  at the first ending's length and the rest is a part of its own.
- **Repeated.** A part is repeated when a ``:|`` or ``::`` closes it or it has endings; it is then
  played twice (or once per ending when there are more than two).
- **Label.** Each part gets a letter, a part written the same as an earlier one (the same notes,
  bar by bar) that part's letter, and the label plays each letter once per pass: ``AABB``,
  ``AABBCC``, ``AB``, ``ABC``, ``AAB``, ``ABA``. The label always says what was written, whatever
  the parts' lengths; :attr:`Form.name` is the label when every part is regular (8 bars; an
  unrepeated one 8 or 16, as a repeated part written out), else ``"free"``.
- **Repeated bars.** A full bar repeats when its notes (pitch, onset in the bar and duration of
  each sounding note; grace notes left out) equal those of an earlier full bar of the tune. A half
  bar likewise (the notes starting in the first or second half of a full bar, timed from the
  half's start). Bars and halves with no note starting in them are not counted. Short bars
  (pickups, closing bars) are not counted either.
- **Phrases that come back.** A part's full bars are read in stretches of 8 (bars 1-8, 9-16, ...);
  in each that reaches a 5th bar, the second 4-bar phrase comes back when its first bar equals the
  stretch's first (bar 5 is bar 1 again), as in most dance tunes (78% of the A parts of the
  corpus's AABB tunes in 8-bar parts).
- **Rest inside.** Silence between two sounding notes (a written rest, ``x`` or ``Z``); silence
  before the first note or after the last is not inside.
- **Range.** Lowest to highest sounding note, grace notes left out; over two octaves is > 24
  semitones.
- **Ends on the tonic.** The pitch class of the last sounding note (of any note of a closing
  chord) is the tonic of the K: in force at the end.

All figures are exact functions of the parsed tune, counted in integer ticks. Measuring a tune
takes about as long as parsing it (a tenth of a millisecond or so for a dance tune): thousands of
tunes per second, parsing included.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from itertools import accumulate
from operator import add, gt, itemgetter
from typing import NamedTuple

import numpy as np

from folkrnn.abc import parse
from folkrnn.abc.lexer import parse_key_cached
from folkrnn.abc.tokens import body_of, map_rhythm
from folkrnn.music import FAST_FRACTIONS, TICKS, Tune, count_bars, parse_meter
from folkrnn.tables import DANCES

__all__ = [
    "Part", "Form", "form_of", "form_statistics", "form_features", "FEATURE_NAMES", "STATISTICS",
    "two_sample_accuracy", "part_closes", "in_form", "in_dance_form", "parts", "repeated_bar_share", "half_bar_share",
    "rest_inside", "range_semitones", "ends_on_tonic", "regular_part", "PART_BARS", "RareTokens",
]

PART_BARS = 8  # the usual part: 8 bars, played twice (16 bars when written out unrepeated)
_SECTION = frozenset(("||", "|]", "[|", "|:", ":|", "::"))
_CLOSES = frozenset((":|", "::"))


# ---------------------------------------------------------------------------------------------
# The result


@dataclass(frozen=True, slots=True)
class Part:
    """One part of a tune, as written."""

    letter: str  # "A", "B", ...: the same letter for a part written the same as an earlier one
    bars: int  # its bars, by the counting rules (pickup + closing short bar = 1; one ending)
    repeated: bool  # closed by :| or ::, or has endings
    endings: int = 0  # how many endings it has (0: none)
    first_bar: int = 0  # index of its first written bar (0-based, pickups included)
    phrases: int = 0  # stretches of 8 full bars (bars 1-8, 9-16, ...) that reach a 5th bar
    phrase_returns: int = 0  # of those, the ones whose 5th bar is their 1st again

    @property
    def has_endings(self) -> bool:
        return self.endings > 0

    @property
    def passes(self) -> int:
        """How often it is played: once, twice when repeated, once per ending beyond two."""
        return max(2, self.endings) if self.repeated or self.endings else 1


@dataclass(frozen=True, slots=True)
class Form:
    """The form of one tune (see the module's counting rules)."""

    parts: tuple[Part, ...]
    label: str  # letters as played: "AABB", "AB", "AABBCC"; "" for a tune with no bars
    all_parts_8: bool  # every part 8 bars (an unrepeated one 8 or 16)
    parts_multiple_of_4: bool  # every part a multiple of 4 bars
    bars: int  # full bars counted for repeated_bar_share
    repeated_bars: int  # of those, bars equal to an earlier bar
    half_bars: int  # half bars with notes, counted for half_bar_share
    repeated_half_bars: int  # of those, halves equal to an earlier half
    rest_inside: bool  # silence between two notes
    range_semitones: int  # lowest to highest sounding note
    ends_on_tonic: bool  # last note's pitch class is the tonic of K:
    meter: str = ""  # M: as written ("6/8"), the header's
    rhythm: str = ""  # R: as written ("Double Jig"), the header's
    commonest_bar: int = 0  # how often its commonest full bar is written

    @property
    def phrases(self) -> int:
        """8-bar stretches of its parts that reach a 5th bar (:attr:`Part.phrases`)."""
        return sum(part.phrases for part in self.parts)

    @property
    def phrase_returns(self) -> int:
        """Of :attr:`phrases`, those whose second phrase begins as the first (bar 5 = bar 1)."""
        return sum(part.phrase_returns for part in self.parts)

    @property
    def repeated_bar_share(self) -> float:
        """Share of the full bars that equal an earlier full bar (0 when there are none)."""
        return self.repeated_bars / self.bars if self.bars else 0.0

    @property
    def half_bar_share(self) -> float:
        """Share of the half bars that equal an earlier half bar (0 when there are none)."""
        return self.repeated_half_bars / self.half_bars if self.half_bars else 0.0

    @property
    def no_repeated_bar(self) -> bool:
        return self.repeated_bars == 0

    @property
    def over_two_octaves(self) -> bool:
        return self.range_semitones > 24

    @property
    def played_bars(self) -> int:
        """Bars as played: each part's bars times its passes."""
        return sum(part.bars * part.passes for part in self.parts)

    @property
    def written_bars(self) -> int:
        return sum(part.bars for part in self.parts)

    @property
    def name(self) -> str:
        """The label when every part is regular (:func:`regular_part`), else ``"free"``."""
        return self.label if self.all_parts_8 and self.label else "free"

    def to_dict(self) -> dict:
        """A JSON-ready summary (what the validator's report and summary.json carry)."""
        return {
            "label": self.label, "name": self.name,
            "parts": [{"letter": p.letter, "bars": p.bars, "repeated": p.repeated, "endings": p.endings}
                      for p in self.parts],
            "all_parts_8": self.all_parts_8, "parts_multiple_of_4": self.parts_multiple_of_4,
            "repeated_bar_share": round(self.repeated_bar_share, 4),
            "half_bar_share": round(self.half_bar_share, 4),
            "rest_inside": self.rest_inside, "range_semitones": self.range_semitones,
            "ends_on_tonic": self.ends_on_tonic, "commonest_bar": self.commonest_bar,
        }


def regular_part(part: Part, part_bars: int = PART_BARS) -> bool:
    """A part of ``part_bars`` bars, or, unrepeated, of ``part_bars`` or twice that (written out)."""
    if part.repeated:
        return part.bars == part_bars
    return part.bars in (part_bars, 2 * part_bars)


def in_form(form: Form, label: str, part_bars: int = PART_BARS) -> bool:
    """Whether a tune is in the form ``label`` (``"AABB"``) with every part ``part_bars`` bars."""
    return bool(form.parts) and form.label == label and all(p.bars == part_bars for p in form.parts)


def in_dance_form(form: Form) -> bool | None:
    """Whether a dance tune is written in its dance's meter and usual form, as
    :data:`folkrnn.tables.DANCES` gives them (a dance whose form is ``"free"``: the meter alone).

    None when the tune's R: names no dance with a fixed meter (an air, a song, none).
    """
    dance = DANCES.get(map_rhythm(form.rhythm))
    if dance is None or not dance.meters:
        return None
    try:
        meter = str(parse_meter(form.meter))  # C -> 4/4, C| -> 2/2
    except ValueError:
        return False
    if meter not in dance.meters:
        return False
    return dance.form == "free" or not dance.part_bars or in_form(form, dance.form, dance.part_bars)


# ---------------------------------------------------------------------------------------------
# Reading the bars of a tune


def _ticks(quarters) -> int | Fraction:
    """Quarter notes -> ticks (``music.TICKS`` a quarter): an int for every parsed time."""
    denominator = quarters.denominator
    if TICKS % denominator:
        return quarters * TICKS  # a hand-made time finer than a tick: exact, as a Fraction
    return quarters.numerator * (TICKS // denominator)


def _tick_list(values: list) -> list:
    """``[_ticks(v) for v in values]``, in one pass when every value is a parsed time (a Fraction
    whose denominator divides TICKS, read through CPython's private fields as music.py does)."""
    if FAST_FRACTIONS:
        try:
            if not any(TICKS % d for d in {value._denominator for value in values}):
                return [value._numerator * (TICKS // value._denominator) for value in values]
        except AttributeError:  # an int or a float among them: the plain way
            pass
    return [_ticks(value) for value in values]


class _Measure(NamedTuple):
    start: int  # ticks
    length: int  # ticks
    expected: int  # a full bar in ticks (0: free meter)
    first: int  # the sounding notes [first:last] (_Bars.pitches etc.) start in it
    last: int
    after: int | None  # index of the boundary closing it (None: the tune ends without one)


class _Bars(NamedTuple):
    measures: list[_Measure]
    kinds: list[frozenset]  # per boundary: the bar line kinds written there
    endings: list[tuple[int, ...]]  # per boundary: the ending that starts there, or ()
    pitches: list[int]  # per sounding note (grace notes left out), in written order
    onsets: list  # per sounding note: onset in ticks
    durations: list  # per sounding note: duration in ticks


def _meters(tune: Tune) -> list[tuple[int, int]]:
    """(onset in ticks, bar length in ticks) of the header meter and each M: change."""
    meter = tune.meter
    out = [(0, 0 if meter.free else _ticks(meter.bar_length))]
    for change in tune.changes:
        if change.field != "M":
            continue
        try:
            meter = parse_meter(change.value.split("%", 1)[0])
        except ValueError:
            continue
        onset = _ticks(change.onset)
        length = 0 if meter.free else _ticks(meter.bar_length)
        if onset == out[-1][0]:
            out[-1] = (onset, length)
        else:
            out.append((onset, length))
    return out


_GRACE = itemgetter(3)


def _bars(tune: Tune) -> _Bars:
    """The tune cut at its bar lines (those written at one moment grouped), times in ticks."""
    notes = tune.notes
    if any(map(_GRACE, notes)):
        sounding = [note for note in notes if not note[3]]
        before = [0, *accumulate(not note[3] for note in notes)]  # note index -> sounding index
    else:
        sounding, before = notes, None
    pitches = [note[0] for note in sounding]
    onsets = _tick_list([note[1] for note in sounding])
    durations = _tick_list([note[2] for note in sounding])
    kinds: list[set] = []
    endings: list[tuple[int, ...]] = []
    where: list = []  # onset of each boundary, ticks
    indices: list[int] = []  # sounding notes written before it
    bar_lines = tune.bars
    for bar, onset in zip(bar_lines, _tick_list([bar.onset for bar in bar_lines])):
        if where and where[-1] == onset:
            kinds[-1].add(bar.kind)
            if bar.ending:
                endings[-1] = bar.ending
            continue
        where.append(onset)
        indices.append(bar.note_index if before is None else before[bar.note_index])
        kinds.append({bar.kind})
        endings.append(bar.ending)
    if tune.end is not None:
        end = _ticks(tune.end)
    else:
        end = max((o + d for o, d in zip(onsets[-16:], durations[-16:])), default=0)
    if where and where[-1] > end:
        end = where[-1]
    meters = _meters(tune)
    single = meters[0][1] if len(meters) == 1 else None
    measures: list[_Measure] = []
    previous, previous_note = 0, 0
    stops = list(zip(where, indices, range(len(where))))
    if not where or end > where[-1]:
        stops.append((end, len(sounding), None))
    for onset, note_index, after in stops:
        if onset > previous:
            if single is not None:
                expected = single
            else:  # the meter in force at the end of the measure
                expected = meters[0][1]
                for change_onset, length in meters:
                    if change_onset < onset:
                        expected = length
            measures.append(_Measure(previous, onset - previous, expected, previous_note,
                                     note_index, after))
        previous, previous_note = onset, note_index
    return _Bars(measures, [frozenset(k) for k in kinds], endings, pitches, onsets, durations)


def _bar_count(measures: Iterable[_Measure]) -> int:
    """Bars in some measures: full ones 1 each (a whole-bar rest its bars), short ones by length,
    their sum rounded half down (a pickup and its closing short bar make one; a lone pickup none)."""
    return count_bars((m.length, m.expected, m.length // m.expected if m.expected and m.length > m.expected
                       and m.first == m.last and not m.length % m.expected else 0)  # Z4
                      for m in measures)


def _is_full(m: _Measure) -> bool:
    return not m.expected or m.length >= m.expected


# ---------------------------------------------------------------------------------------------
# The measures, one function each


def _signatures(bars: _Bars) -> tuple[list, list]:
    """Per measure, its sounding notes as (pitches, onsets in the bar, durations), or None if it
    has none; and, for each full bar in turn, the same for the notes starting in its first and in
    its second half (onsets from the half's start), None for a half with none."""
    pitches, onsets, durations = bars.pitches, bars.onsets, bars.durations
    whole: list[tuple | None] = []
    halves: list[tuple | None] = []
    for m in bars.measures:
        a, b = m.first, m.last
        full = not m.expected or m.length >= m.expected
        if a == b:
            whole.append(None)
            if full and m.expected:
                halves += (None, None)
            continue
        start = m.start
        offsets = [onset - start for onset in onsets[a:b]]
        whole.append((tuple(pitches[a:b]), tuple(offsets), tuple(durations[a:b])))
        if full and m.expected:
            middle = m.expected // 2 if type(m.expected) is int else m.expected / 2
            k = bisect_left(offsets, middle)  # onsets never go back within a bar
            halves.append((tuple(pitches[a:a + k]), tuple(offsets[:k]), tuple(durations[a:a + k]))
                          if k else None)
            halves.append((tuple(pitches[a + k:b]), tuple(o - middle for o in offsets[k:]),
                           tuple(durations[a + k:b])) if a + k < b else None)
    return whole, halves


def _repeats(signatures: Iterable[tuple | None]) -> tuple[int, int]:
    """(counted, equal to an earlier one) over signatures; None is not counted."""
    counted = [s for s in signatures if s is not None]
    return len(counted), len(counted) - len(set(counted))


def repeated_bar_share(tune: Tune | str) -> float:
    """Share of the tune's full bars whose notes equal an earlier full bar's, as written."""
    return form_of(tune).repeated_bar_share


def half_bar_share(tune: Tune | str) -> float:
    """Share of the tune's half bars whose notes equal an earlier half bar's, as written."""
    return form_of(tune).half_bar_share


def _rest_inside(bars: _Bars) -> bool:
    onsets = bars.onsets
    if len(onsets) < 2:
        return False
    # the latest end reached after each note; silence when the next note starts later
    reached = accumulate(map(add, onsets, bars.durations), max)
    return any(map(gt, onsets[1:], reached))


def rest_inside(tune: Tune | str) -> bool:
    """Whether there is silence between two sounding notes (not before the first or after the last)."""
    return _rest_inside(_bars(_as_tune(tune)))


def range_semitones(tune: Tune | str) -> int:
    """Semitones from the lowest to the highest sounding note (grace notes left out); 0 if none."""
    pitches = [note[0] for note in _as_tune(tune).notes if not note[3]]
    return max(pitches) - min(pitches) if pitches else 0


def _tonic(tune: Tune) -> int:
    """Pitch class of the tonic of the K: in force at the end of the tune."""
    key = tune.key
    for change in tune.changes:
        if change.field == "K":
            try:
                key = parse_key_cached(change.value)[0]
            except ValueError:
                pass
    return key.tonic_pitch_class


def ends_on_tonic(tune: Tune | str) -> bool:
    """Whether the last sounding note (any note of a closing chord) is the tonic of K:."""
    tune = _as_tune(tune)
    sounding = [note for note in tune.notes[-12:] if not note[3]]
    if not sounding:
        return False
    last = max(note[1] for note in sounding)
    tonic = _tonic(tune)
    return any(note[0] % 12 == tonic for note in sounding if note[1] == last)


# ---------------------------------------------------------------------------------------------
# Parts


class _RawPart:
    __slots__ = ("body", "endings", "repeated")

    def __init__(self) -> None:
        self.body: list[int] = []  # measure indices
        self.endings: list[list[int]] = []
        self.repeated = False

    def measures(self) -> list[int]:
        """The measures its length counts: the body and its last ending."""
        return self.body + (self.endings[-1] if self.endings else [])

    def all_measures(self) -> list[int]:
        return self.body + [i for ending in self.endings for i in ending]


def _split_parts(bars: _Bars) -> list[_RawPart]:
    """The parts, split at repeat signs and double bars, endings kept with their part."""
    measures, kinds, endings = bars.measures, bars.kinds, bars.endings
    out: list[_RawPart] = []
    current = _RawPart()
    target = current.body
    for index, m in enumerate(measures):
        target.append(index)
        after = m.after
        if after is None:
            continue
        written = kinds[after]
        closes = not written.isdisjoint(_CLOSES)
        if endings[after]:
            if closes:
                current.repeated = True
            current.endings.append([])
            target = current.endings[-1]
            continue
        if written.isdisjoint(_SECTION):
            continue
        if closes:
            current.repeated = True
        if len(current.endings) > 1:
            # a last ending no section line closed before: cut it at the first ending's length
            first, last = current.endings[0], current.endings[-1]
            if _bar_count(measures[i] for i in last) > _bar_count(measures[i] for i in first):
                rest = _RawPart()
                rest.body = last[len(first):]
                rest.repeated = closes
                current.endings[-1] = last[:len(first)]
                current.repeated = True
                out.append(current)
                current = rest
        out.append(current)
        current = _RawPart()
        target = current.body
    if current.body or current.endings:
        out.append(current)
    for part in out:
        if part.endings:
            part.repeated = True
    # a stretch of less than a full bar joins the next part (a pickup before |:), or the last
    merged: list[_RawPart] = []
    carry: list[int] = []
    for part in out:
        if carry:
            part.body = carry + part.body
            carry = []
        if not any(_is_full(measures[i]) for i in part.all_measures()):
            carry = part.all_measures()
            continue
        merged.append(part)
    if carry:
        if merged:
            last = merged[-1]
            if last.endings:
                last.endings[-1] = last.endings[-1] + carry
            else:
                last.body = last.body + carry
        elif any(measures[i].first < measures[i].last for i in carry):
            part = _RawPart()
            part.body = carry
            merged.append(part)
    return merged


def _parts(bars: _Bars, signatures: list) -> tuple[Part, ...]:
    letters: dict[tuple, str] = {}
    used = 0
    out = []
    for raw in _split_parts(bars):
        counted = raw.measures()
        key = tuple(signatures[i] for i in counted)
        letter = letters.get(key)
        if letter is None:
            letter = chr(ord("A") + min(used, 25))
            used += 1
            letters[key] = letter
        full = [signatures[i] for i in counted if _is_full(bars.measures[i])]
        starts = range(0, len(full) - 4, 8)  # stretches of 8 full bars that reach a 5th
        returns = sum(1 for k in starts if full[k] is not None and full[k + 4] == full[k])
        out.append(Part(letter, _bar_count(bars.measures[i] for i in counted), raw.repeated,
                        len(raw.endings), min(raw.all_measures()), len(starts), returns))
    return tuple(out)


def parts(tune: Tune | str) -> tuple[Part, ...]:
    """The tune's parts, in written order (see the module's counting rules)."""
    tune = _as_tune(tune)
    bars = _bars(tune)
    return _parts(bars, _signatures(bars)[0])


# ---------------------------------------------------------------------------------------------
# One tune


def _as_tune(tune: Tune | str) -> Tune:
    if isinstance(tune, str):
        return parse(tune)
    return tune


def form_of(tune: Tune | str) -> Form:
    """The :class:`Form` of one tune, from its ABC text or a parsed Tune.

    Raises AbcError (from the parser) when ABC text cannot be read.
    """
    tune = _as_tune(tune)
    bars = _bars(tune)
    signatures, halves = _signatures(bars)
    found = _parts(bars, signatures)
    full = [s for s, m in zip(signatures, bars.measures) if _is_full(m)]
    counted, repeated = _repeats(full)
    half_counted, half_repeated = _repeats(halves)
    commonest = Counter(s for s in full if s is not None).most_common(1)
    meter = next((value for name, value in tune.fields if name == "M"), "")
    return Form(
        parts=found,
        label="".join(part.letter * part.passes for part in found),
        all_parts_8=bool(found) and all(regular_part(part) for part in found),
        parts_multiple_of_4=bool(found) and all(part.bars and part.bars % 4 == 0 for part in found),
        bars=counted, repeated_bars=repeated, half_bars=half_counted,
        repeated_half_bars=half_repeated,
        rest_inside=_rest_inside(bars),
        range_semitones=max(bars.pitches) - min(bars.pitches) if bars.pitches else 0,
        ends_on_tonic=ends_on_tonic(tune),
        meter=meter.strip(), rhythm=tune.rhythm.strip(), commonest_bar=commonest[0][1] if commonest else 0,
    )


# ---------------------------------------------------------------------------------------------
# Many tunes


# The figures of form_statistics, in the order of issue 10's table: key -> what it is.
STATISTICS: dict[str, str] = {
    "dance_share": "tunes carrying a dance R:",
    "dance_form": "dance tunes in their dance's form and meter",
    "parts_multiple_of_4": "parts a multiple of 4 bars",
    "all_parts_8": "tunes whose parts are all 8 bars (16 unrepeated)",
    "aabb": "AABB: two 8-bar parts, each played twice",
    "played_multiple_of_8": "played length a multiple of 8 bars",
    "repeated_bars": "bars repeating an earlier bar",
    "no_repeated_bar": "tunes with no repeated bar",
    "repeated_half_bars": "half-bars repeating an earlier half-bar",
    "one_bar_five_times": "tunes with one bar written 5 times or more",
    "phrase_returns": "8-bar phrases whose 5th bar is their 1st again",
    "rest_inside": "tunes with a rest inside",
    "over_two_octaves": "range over two octaves",
    "ends_on_tonic": "last note is the tonic of K:",
}


def part_closes(forms: Iterable[Form], phrase: int = 4, phrases: int = 4) -> tuple[tuple[float | None, ...], Counter]:
    """How the parts of ``forms`` close after whole phrases: of their parts of ``phrase`` bars,
    twice that, ... up to ``phrases`` phrases, the share that close after 1, 2, ... ``phrases - 1``
    phrases of those that reach so far (None where none does), and the count of each length. The
    sampler holds the parts of a loose form to these shares (:attr:`folkrnn.tables.Dance.part_closes`)."""
    lengths = Counter(part.bars for form in forms for part in form.parts
                      if part.bars and part.bars % phrase == 0 and part.bars <= phrase * phrases)
    left, shares = sum(lengths.values()), []
    for k in range(1, phrases):
        closing = lengths[k * phrase]
        shares.append(round(closing / left, 3) if left else None)
        left -= closing
    return tuple(shares), lengths


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def form_statistics(forms: Sequence[Form]) -> dict:
    """The aggregate figures of many tunes, each a share in [0, 1] (None for no tunes).

    - ``dance_share``: of all tunes, the dance tunes (``dance_tunes`` of them: an R: naming a
      dance with a fixed meter);
    - ``dance_form``: of the dance tunes, those in its meter and usual form (:func:`in_dance_form`);
    - ``parts_multiple_of_4``: of all parts of all tunes, those of 4, 8, 12, ... bars;
    - ``all_parts_8``: of the tunes, those whose parts are all 8 bars (unrepeated: 8 or 16);
    - ``aabb``: tunes labelled AABB with both parts 8 bars;
    - ``played_multiple_of_8``: tunes whose length as played is a multiple of 8 bars;
    - ``repeated_bars``: of all full bars of all tunes, those equal to an earlier bar of their tune;
      ``mean_repeated_bar_share`` is the mean of the per-tune shares;
    - ``no_repeated_bar``: tunes with no repeated bar;
    - ``repeated_half_bars``: as ``repeated_bars``, for half bars;
    - ``one_bar_five_times``: tunes whose commonest full bar is written 5 times or more, more than
      the four times (bars 1, 3, 5 and 7 of a part) a part's phrases give one bar: a loop;
    - ``phrase_returns``: of the stretches of 8 full bars of all parts (bars 1-8, 9-16, ...) that
      reach a 5th bar, those whose 5th bar equals their 1st: the second 4-bar phrase beginning as
      the first did;
    - ``rest_inside``, ``over_two_octaves``, ``ends_on_tonic``: shares of the tunes.

    Also ``tunes`` (how many), ``parts`` (how many), ``part_bars`` (how many parts of each length)
    and ``labels`` (the ten commonest labels with their shares).
    """
    n = len(forms)
    all_parts = [part for form in forms for part in form.parts]
    bars = sum(form.bars for form in forms)
    halves = sum(form.half_bars for form in forms)

    def share(count: int, total: int) -> float | None:
        return round(count / total, 4) if total else None

    labels = Counter(form.label or "-" for form in forms)
    dances = [verdict for verdict in map(in_dance_form, forms) if verdict is not None]
    return {
        "tunes": n,
        "dance_tunes": len(dances),
        "dance_share": share(len(dances), n),
        "dance_form": share(sum(dances), len(dances)),
        "parts": len(all_parts),
        "parts_multiple_of_4": share(sum(1 for p in all_parts if p.bars and p.bars % 4 == 0), len(all_parts)),
        "all_parts_8": share(sum(form.all_parts_8 for form in forms), n),
        "aabb": share(sum(in_form(form, "AABB") for form in forms), n),
        "played_multiple_of_8": share(sum(1 for form in forms if form.played_bars
                                          and form.played_bars % 8 == 0), n),
        "repeated_bars": share(sum(form.repeated_bars for form in forms), bars),
        "mean_repeated_bar_share": _mean([form.repeated_bar_share for form in forms]),
        "no_repeated_bar": share(sum(form.no_repeated_bar for form in forms), n),
        "repeated_half_bars": share(sum(form.repeated_half_bars for form in forms), halves),
        "mean_half_bar_share": _mean([form.half_bar_share for form in forms]),
        "one_bar_five_times": share(sum(form.commonest_bar >= 5 for form in forms), n),
        "phrase_returns": share(sum(form.phrase_returns for form in forms), sum(form.phrases for form in forms)),
        "rest_inside": share(sum(form.rest_inside for form in forms), n),
        "over_two_octaves": share(sum(form.over_two_octaves for form in forms), n),
        "ends_on_tonic": share(sum(form.ends_on_tonic for form in forms), n),
        "part_bars": {str(k): v for k, v in sorted(Counter(p.bars for p in all_parts).items())},
        "labels": {label: round(count / n, 4) for label, count in labels.most_common(10)},
    }


# The classifier's features, one row per tune (form_features).
FEATURE_NAMES = (
    "parts", "mean_part_bars", "share_parts_of_4", "all_parts_8", "share_parts_repeated",
    "has_endings", "written_bars", "played_bars", "repeated_bar_share", "half_bar_share",
    "no_repeated_bar", "rest_inside", "range_semitones", "over_two_octaves", "ends_on_tonic",
)


def form_features(forms: Sequence[Form]) -> np.ndarray:
    """One row of :data:`FEATURE_NAMES` per tune (float64, shape (len(forms), 15))."""
    rows = []
    for form in forms:
        count = len(form.parts)
        rows.append((
            count,
            sum(p.bars for p in form.parts) / count if count else 0.0,
            sum(1 for p in form.parts if p.bars and p.bars % 4 == 0) / count if count else 0.0,
            form.all_parts_8,
            sum(p.repeated for p in form.parts) / count if count else 0.0,
            any(p.endings for p in form.parts),
            form.written_bars, form.played_bars,
            form.repeated_bar_share, form.half_bar_share, form.no_repeated_bar, form.rest_inside,
            form.range_semitones, form.over_two_octaves, form.ends_on_tonic,
        ))
    return np.asarray(rows, np.float64).reshape(len(rows), len(FEATURE_NAMES))


# ---------------------------------------------------------------------------------------------
# The classifier two-sample test


def _fit_logistic(x: np.ndarray, y: np.ndarray, l2: float, steps: int) -> np.ndarray:
    """Weights (intercept last) of L2-regularised logistic regression, by Newton's method.

    Minimises ``sum(log(1 + exp(-s_i x_i.w))) + l2/2 |w|^2`` (intercept not penalised); ``x`` has
    its column of ones already.
    """
    n, d = x.shape
    w = np.zeros(d)
    penalty = np.full(d, l2)
    penalty[-1] = 0.0
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ w, -35, 35)))
        gradient = x.T @ (p - y) + penalty * w
        hessian = (x * (p * (1 - p))[:, None]).T @ x + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def two_sample_accuracy(features_a, features_b, folds: int = 5, seed: int = 0, l2: float = 1.0,
                        steps: int = 100, draws: int = 10) -> float:
    """Cross-validated accuracy of logistic regression telling sample a from sample b.

    The larger sample is subsampled (at random) to the size of the smaller, so that guessing gives
    50%. Each class is shuffled and dealt into ``folds`` folds; for each fold a model is fitted on
    the others, with features standardised by the training folds' mean and standard deviation, L2
    penalty ``l2`` on the weights and Newton steps (at most ``steps``), and scored on the held-out
    fold. Returns the share of held-out tunes classified right, averaged over ``draws`` such
    subsamplings and deals (from ``seed``): 0.5 means the two samples cannot be told apart by these
    features, 1.0 always. NaN when a sample has fewer than 2 rows.

    One draw leaves most of a large sample out, and which tunes it keeps moves the figure: the
    500 tunes of seed 2024's default output against the 221 real test tunes gave 68.1% to 74.7%
    over 40 single draws (sd 1.3 points), and 71.1% to 72.1% as the mean of 10 (sd 0.3).
    """
    a = np.asarray(features_a, np.float64)
    b = np.asarray(features_b, np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if b.ndim == 1:
        b = b[:, None]
    if draws < 1:
        raise ValueError(f"draws must be at least 1, not {draws}")
    if min(len(a), len(b)) < 2:
        return float("nan")
    rng = np.random.default_rng(seed)
    return float(np.mean([_held_out_accuracy(a, b, rng, folds, l2, steps) for _ in range(draws)]))


def _held_out_accuracy(a: np.ndarray, b: np.ndarray, rng: np.random.Generator, folds: int, l2: float,
                       steps: int) -> float:
    """One draw of :func:`two_sample_accuracy`: subsample, deal into folds, fit and score."""
    size = min(len(a), len(b))
    a = a[rng.permutation(len(a))[:size]]
    b = b[rng.permutation(len(b))[:size]]
    folds = max(2, min(folds, size))
    fold_of = np.arange(size) % folds  # each class dealt into the folds after its shuffle
    x = np.vstack([a, b])
    y = np.r_[np.ones(size), np.zeros(size)]
    fold = np.r_[fold_of, fold_of]
    right = 0
    for k in range(folds):
        train, test = fold != k, fold == k
        mean = x[train].mean(axis=0)
        std = x[train].std(axis=0)
        std[std < 1e-12] = 1.0
        standard = (x - mean) / std
        design = np.hstack([standard, np.ones((len(x), 1))])
        w = _fit_logistic(design[train], y[train], l2, steps)
        predicted = (design[test] @ w) > 0
        right += int((predicted == (y[test] == 1)).sum())
    return right / len(x)


# ---------------------------------------------------------------------------------------------
# Tokens a corpus seldom writes


class RareTokens:
    """How often tunes use a body token that a corpus seldom writes: a double sharp, a quintuplet,
    a sixteenth of a sixteenth. Sampling at temperature 1 from the whole distribution draws such
    tokens far more often than real tunes hold them, and a musician sees each one at once.

    ``corpus``: token lists (normalised, as the model reads them); a token is rare when it is less
    than ``threshold`` of the corpus's body tokens (:func:`folkrnn.abc.tokens.body_of`: after ``K:``,
    without ``</s>``), or not in it at all.
    """

    def __init__(self, corpus: Iterable[Sequence[str]], threshold: float = 1e-4) -> None:
        counts: Counter[str] = Counter()
        for tokens in corpus:
            counts.update(body_of(tokens))
        total = sum(counts.values())
        self.threshold = threshold
        self._common = frozenset(token for token, n in counts.items() if n >= threshold * total)

    def rare(self, tokens: Sequence[str]) -> list[str]:
        """The rare body tokens of one tune, in order."""
        return [token for token in body_of(tokens) if token not in self._common]

    def share(self, tunes: Iterable[Sequence[str]]) -> float:
        """The share of ``tunes`` (token lists) with at least one rare body token (0 for none)."""
        flags = [bool(self.rare(tokens)) for tokens in tunes]
        return sum(flags) / len(flags) if flags else 0.0
