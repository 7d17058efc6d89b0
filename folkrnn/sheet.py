"""Tune -> sheet music: the tune written as MEI, then engraved by verovio into SVG pages.

Verovio reads MEI, its own format, completely; its ABC reader draws key changes as clefs, beams
grace notes into the melody and draws no endings. So the MEI is made here from the Tune, and says
what a tunebook engraver such as abcm2ps draws:

- the key signature of K:, and each key change in the tune (a ``K:`` line, an inline ``[K:]``)
  as a new key signature, with naturals cancelling the old one; accidentals where the key and
  the bar's earlier notes do not already give the note;
- grace notes as small notes before their note, apart from the melody's beams (one: a slashed
  eighth; more: beamed sixteenths);
- tuplets beamed on their own, their number over the beam, and a bracket where their notes do
  not make one beam;
- beams by the beat: a dotted quarter in compound meters, half a bar in 4/4 and 2/2, else the
  beat; ties across bar lines;
- repeat signs, first and second endings (volta brackets), double bars, and a final bar;
- four bars a line, each part (after a repeat sign or a double bar) on a new line, so parts of
  8 bars make two lines; a pickup is not counted as a bar, and a second ending stands on the line
  of the first. Each line but the first starts with its bar number, counted as abcm2ps counts
  (a bar line closes a bar once a whole bar's time has passed since the last one that did, and
  a second ending takes the number of the first);
- pitches spelled in the key: a note of its scale by the signature, any other by the spelling
  nearest the key on the line of fifths (F sharp, the leading note, in G minor); given the ABC
  text, every note keeps the letter it is written with (``^d`` in G is D sharp);
- the title, a subtitle naming the rhythm and the key, and C: as the composer;
- given the tune's ABC text, what the Tune does not keep: slurs, chord symbols (above the staff),
  text annotations (``"^text"``), and decorations as abcm2ps draws them: staccato, accents,
  tenuto, marcato and bowings on the note, trills, fermatas, mordents, and turns, a turn for
  ``~`` (abcm2ps draws the roll as a wave); a decoration not listed in _DECORATIONS is not drawn.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from fractions import Fraction

from folkrnn.abc.lexer import ANNOT, CHORD_START, DECO, GRACE_END, GRACE_START, NOTE, SLUR, SPACE, lex, parse_key
from folkrnn.abc.parser import tune_from_lexed
from folkrnn.abc.writer import TUPLET_RATIOS, is_binary, tuplet_plans
from folkrnn.errors import FolkError, OptionError
from folkrnn.music import LETTER_SEMITONES, MODE_NAMES, BarLine, Key, Meter, Note, Tune, parse_meter, signature_items
from folkrnn.pdf import MM, Placement, svgs_to_pdf
from folkrnn.tables import PAPERS

__all__ = ["tune_to_mei", "engrave", "key_changes", "tunes_to_pdf", "page_size", "svg_size", "subtitle",
           "BARS_PER_LINE"]

BARS_PER_LINE = 4  # bars a line, where no part boundary breaks it first

_MEI_NS = "http://www.music-encoding.org/ns/mei"
_XML_ID = "{http://www.w3.org/XML/1998/namespace}id"
_SECTION_BARS = ("|:", ":|", "::", "||", "[|", "|]")  # bar lines that end or start a part
_TUPLET_RATIOS = TUPLET_RATIOS + ((5, 3), (7, 6))  # the writer's, and two a staff can draw that ABC needs rarely
_ACCID = {-2: "ff", -1: "f", 0: "n", 1: "s", 2: "ss"}
# Written note values, longest first: (quarter notes, MEI @dur, dots).
_VALUES = sorted(((Fraction(4, 2 ** k) * factor, 2 ** k, dots) for k in range(8)
                  for dots, factor in ((0, Fraction(1)), (1, Fraction(3, 2)), (2, Fraction(7, 4)))),
                 reverse=True)


# --- the voice: notes, chords and rests between the bar lines ---------------------------------


@dataclass
class _Event:
    onset: Fraction  # quarter notes
    length: Fraction  # quarter notes sounding
    pitches: tuple[int, ...]  # () for a rest
    graces: tuple[int, ...] = ()  # grace notes before it, in written order
    tie: bool = False  # tied to the next event (a note cut by a bar line)
    continued: bool = False  # tied from the event before it
    sources: tuple[int, ...] = ()  # the indices in Tune.notes of the notes it sounds


def _voice(notes: list[Note], end: Fraction) -> list[_Event]:
    """The notes as one voice from 0 to ``end``: chords of the notes that start together (as long as
    the shortest), a note cut where the next starts, rests in the gaps; graces on the next note."""
    main = sorted((n for n in notes if not n.grace and n.duration > 0), key=lambda n: (n.onset, n.pitch))
    starts: dict[Fraction, list[Note]] = {}
    sources: dict[Fraction, list[int]] = {}
    for index, note in enumerate(notes):
        if not note.grace and note.duration > 0:
            sources.setdefault(note.onset, []).append(index)
    for note in main:
        starts.setdefault(note.onset, []).append(note)
    onsets = sorted(starts)
    events: list[_Event] = []
    time = Fraction(0)
    for i, onset in enumerate(onsets):
        if onset > time:
            events.append(_Event(time, onset - time, ()))
        length = min(n.duration for n in starts[onset])
        if i + 1 < len(onsets):
            length = min(length, onsets[i + 1] - onset)
        events.append(_Event(onset, length, tuple(sorted(n.pitch for n in starts[onset])),
                             sources=tuple(sources[onset])))
        time = onset + length
    if end > time:
        events.append(_Event(time, end - time, ()))
    graces: dict[int, list[int]] = {}
    event_onsets = [e.onset for e in events if e.pitches]
    sounding = [e for e in events if e.pitches]
    for note in notes:
        if note.grace:
            k = bisect_left(event_onsets, note.onset)  # the first sounding event at or after the grace
            if k < len(sounding):
                graces.setdefault(id(sounding[k]), []).append(note.pitch)
    for event in sounding:
        event.graces = tuple(graces.get(id(event), ()))
    return events


def _split(events: list[_Event], cuts: list[Fraction]) -> list[_Event]:
    """Events cut at the bar lines (``cuts``, ascending), the first piece tied to the next."""
    out = []
    for event in events:
        end = event.onset + event.length
        edges = [event.onset, *cuts[bisect_right(cuts, event.onset):bisect_left(cuts, end)], end]
        for k, (a, b) in enumerate(zip(edges, edges[1:])):
            last = k == len(edges) - 2
            out.append(_Event(a, b - a, event.pitches, event.graces if k == 0 else (),
                              bool(event.pitches) and (not last or event.tie), k > 0 and bool(event.pitches),
                              event.sources))
    return out


def _values(length: Fraction) -> list[tuple[int, int]]:
    """A binary length as written notes (@dur, dots), tied: 5 eighths -> a half and an eighth."""
    out = []
    left = length
    for value, dur, dots in _VALUES:
        while left >= value:
            out.append((dur, dots))
            left -= value
    return out or [(_VALUES[-1][1], 0)]


def _tuplet_plan(lengths: list[Fraction]) -> tuple[int, int, int] | None:
    """(p, q, r): the first r lengths (r >= 2) are a p:q tuplet (:func:`~folkrnn.abc.writer.tuplet_plans`);
    of the ratios that fit, the one whose notes need the fewest dots (five in the time of three
    eighths are eighths, not dotted sixteenths). None when none fits."""
    plans = [(sum(dots for length in lengths[:r] for _, dots in _values(length * factor)), order, (p, q, r))
             for order, (p, q, r, factor) in enumerate(tuplet_plans(lengths, _TUPLET_RATIOS))]
    return min(plans)[2] if plans else None


# --- the measures: bar lines, endings, pickups, numbers, lines --------------------------------


@dataclass
class _Measure:
    start: Fraction
    end: Fraction
    left: set[str] = field(default_factory=set)  # bar lines at its start
    right: set[str] = field(default_factory=set)  # bar lines at its end
    ending: int = 0  # the ending that starts here (0: none)
    pickup: bool = False  # an upbeat, not counted as a bar
    meter: Meter | None = None  # the meter in force
    number: int = 0
    new_line: bool = False

    @property
    def length(self) -> Fraction:
        return self.end - self.start

    @property
    def full(self) -> Fraction | None:
        """The length of a whole bar in its meter (None in free meter)."""
        return self.meter.bar_length if self.meter is not None and not self.meter.free else None


def _bar_lines(tune: Tune, end: Fraction) -> list[BarLine]:
    if tune.bars:
        return list(tune.bars)
    full = tune.meter.bar_length
    out = []
    if full:
        position = full
        while position < end:
            out.append(BarLine(position, "|", 0))
            position += full
    return out


def _measures(tune: Tune, end: Fraction, bars_per_line: int) -> list[_Measure]:
    bars = _bar_lines(tune, end)
    edges = sorted({Fraction(0), end} | {bar.onset for bar in bars if 0 <= bar.onset <= end})
    measures = [_Measure(a, b) for a, b in zip(edges, edges[1:]) if b > a]
    if not measures:  # nothing written: one empty bar
        return [_Measure(Fraction(0), tune.meter.bar_length or Fraction(4), meter=tune.meter)]
    at_start = {m.start: m for m in measures}
    at_end = {m.end: m for m in measures}
    for bar in bars:
        if bar.onset in at_start:
            at_start[bar.onset].left.add(bar.kind)
            if bar.ending:
                at_start[bar.onset].ending = bar.ending[0]
        if bar.onset in at_end:
            at_end[bar.onset].right.add(bar.kind)
    changes = sorted(_meters_at(tune), key=lambda change: change[0])
    for measure in measures:
        measure.meter = tune.meter
        for onset, meter in changes:
            if onset <= measure.start:
                measure.meter = meter
    # pickups: a short first bar, or a short bar that starts a part (not an ending's)
    for i, measure in enumerate(measures):
        short = bool(measure.full) and measure.length < measure.full
        starts_part = i == 0 or bool(measure.left & set(_SECTION_BARS))
        measure.pickup = short and starts_part and not measure.ending and i + 1 < len(measures)
    # numbers, as abcm2ps counts: a bar line closes a bar once a whole bar's time has passed since
    # the last one that did, so a pickup is not a bar, and a part's short last bar and the next
    # part's pickup make one bar; a measure is numbered by the bar it starts in, and a second
    # ending after a counted bar line takes the number of the first
    closed, number, first_ending = Fraction(0), 1, 1
    for i, measure in enumerate(measures):
        measure.number = number
        if not measure.full or measure.end - closed >= measure.full:
            number += 1
            closed = measure.end
            after = measures[i + 1] if i + 1 < len(measures) else None
            if after is not None and after.ending == 1:
                first_ending = number
            elif after is not None and after.ending > 1:
                number = first_ending
    if measures[0].pickup:
        measures[0].number = 0
    # lines: each part on a new line, then every bars_per_line bars; a later ending counts from
    # where the first ending began, so it stays on the line of the first; a line never holds
    # nothing but a pickup
    place = 0  # bars of the part so far
    ending_place = 0
    on_line = 0  # bars (not pickups) on the line so far
    for i, measure in enumerate(measures):
        starts_part = i > 0 and bool(measure.left & set(_SECTION_BARS)) and not measure.ending
        if measure.ending == 1:
            ending_place = place
        elif measure.ending > 1:
            place = ending_place
        if starts_part:
            place = 0
            if on_line:
                measure.new_line, on_line = True, 0
        if measure.pickup:
            continue
        if place and place % bars_per_line == 0 and not measure.ending > 1 and on_line:
            measure.new_line, on_line = True, 0
        place += 1
        on_line += 1
    return measures


def _bar_position(measure: _Measure, onset: Fraction) -> Fraction:
    """Quarter notes from the start of the bar (a pickup counts back from its end)."""
    if measure.pickup and measure.full:
        return measure.full - measure.length + (onset - measure.start)
    return onset - measure.start


def _beam_span(meter: Meter) -> Fraction:
    """Quarter notes a beam may cover: a dotted quarter in compound meters, half a bar in 4/4 and
    2/2, else one beat (as tunebooks group eighths)."""
    if meter.free:
        return Fraction(1)
    if meter.compound:
        return Fraction(12, meter.denominator)  # three of the meter's units
    if meter.bar_length == 4 and meter.numerator in (4, 2):
        return Fraction(2)
    return Fraction(4, meter.denominator)


# --- keys ---------------------------------------------------------------------------------------


def key_changes(tune: Tune) -> list[tuple[Fraction, Key]]:
    """The tune's key changes in the body (``[K:D]``, a ``K:`` line) as (onset, Key), in order;
    a key that cannot be read is left out (the parser has warned about it). MusicXML reads them too."""
    out = []
    for change in tune.changes:
        if change.field != "K":
            continue
        try:
            out.append((change.onset, parse_key(change.value)[0]))
        except ValueError:
            continue
    return out


def _key_at(tune: Tune) -> list[tuple[Fraction, Key]]:
    """The keys in force: (onset, key), the header key at 0, then each K: change."""
    keys = [(Fraction(0), tune.key)]
    for onset, key in key_changes(tune):
        if onset <= 0:
            keys[0] = (Fraction(0), key)
        else:
            keys.append((onset, key))
    return keys


def _meters_at(tune: Tune) -> list[tuple[Fraction, Meter]]:
    out = []
    for change in tune.changes:
        if change.field == "M" and change.onset > 0:
            try:
                out.append((change.onset, parse_meter(change.value)))
            except ValueError:
                continue
    return out


def _key_sig(key: Key, element: ET.Element) -> ET.Element:
    """``<keySig>``: "2s", "1f", "0", or its accidentals one by one when the signature is not a
    usual one (``K:D exp ^g``)."""
    signature = key.accidentals
    sharps = sum(1 for a in signature.values() if a > 0)
    flats = sum(1 for a in signature.values() if a < 0)
    sig = f"{sharps}s" if sharps and not flats else f"{flats}f" if flats and not sharps else "0"
    usual = {0: "C", 1: "G", 2: "D", 3: "A", 4: "E", 5: "B", 6: "F#", 7: "C#",
             -1: "F", -2: "Bb", -3: "Eb", -4: "Ab", -5: "Db", -6: "Gb", -7: "Cb"}
    count = sharps - flats
    if count in usual and dict(signature_items(usual[count], "maj")) == signature:
        element.set("sig", sig)
        return element
    octave = {"C": 5, "D": 5, "E": 5, "F": 5, "G": 4, "A": 4, "B": 4}
    for letter in ("FCGDAEB" if sharps >= flats else "BEADGCF"):
        if signature[letter]:
            ET.SubElement(element, "keyAccid", {"pname": letter.lower(), "oct": str(octave[letter]),
                                                "accid": _ACCID[signature[letter]]})
    return element


def subtitle(tune: Tune) -> str:
    """The rhythm and the key in words: ``"reel · D major"`` (``R:other``, the model's word for a
    tune of no rhythm it knows, is left out: ``"A dorian"``)."""
    tonic = tune.key.tonic.replace("b", "\u266d").replace("#", "\u266f")
    key = f"{tonic} {MODE_NAMES.get(tune.key.mode, tune.key.mode)}"
    rhythm = tune.rhythm.strip()
    rhythm = "" if rhythm.lower() == "other" else rhythm
    return " \u00b7 ".join(part for part in (rhythm, key) if part)


# --- MEI ----------------------------------------------------------------------------------------


class _Ids:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"


_FIFTHS = {"F": -1, "C": 0, "G": 1, "D": 2, "A": 3, "E": 4, "B": 5}  # letters on the line of fifths


def _fifths(tonic: str) -> int:
    """A tonic's place on the line of fifths: "G" 1, "F#" 6, "Bb" -2."""
    return _FIFTHS[tonic[0].upper()] + 7 * (tonic.count("#") - tonic.count("b"))


def _spell(pitch: int, signature: dict[str, int], tonic: int, written: str | None = None) -> tuple[str, int, int]:
    """(letter, alteration, octave) of a MIDI pitch in a key; middle C is C4.

    A note written with a letter (``written``, from the ABC text: ``^d`` is D sharp, not E flat, in
    G) keeps it. A note of the key's scale takes the signature's letter. Any other takes the spelling nearest
    the middle of that scale on the line of fifths, then nearest the tonic (``tonic``, on the
    line of fifths): F sharp, not G flat, in G minor (the leading note); B flat in D major.
    """
    pitch_class = pitch % 12
    if written is not None:
        alter = (pitch_class - LETTER_SEMITONES[written] + 6) % 12 - 6
        if alter in _ACCID:
            return written, alter, (pitch - alter - LETTER_SEMITONES[written]) // 12 - 1
    for letter in "CDEFGAB":
        if (LETTER_SEMITONES[letter] + signature[letter]) % 12 == pitch_class:
            alter = signature[letter]
            break
    else:
        middle = sum(signature.values()) + 2
        letter, alter = min(((letter, alter) for letter in "CDEFGAB" for alter in (-1, 0, 1)
                             if (LETTER_SEMITONES[letter] + alter) % 12 == pitch_class),
                            key=lambda option: (abs(_FIFTHS[option[0]] + 7 * option[1] - middle),
                                                abs(_FIFTHS[option[0]] + 7 * option[1] - tonic)))
    return letter, alter, (pitch - alter - LETTER_SEMITONES[letter]) // 12 - 1


def _ending_spans(measures: list[_Measure]) -> dict[int, tuple[int, int]]:
    """first measure -> (last measure, number) of each ending: it runs to the repeat sign or
    section line that closes it, or up to the next ending or part; a later ending over no more
    bars than the first."""
    out: dict[int, tuple[int, int]] = {}
    first_length = 0
    for i, measure in enumerate(measures):
        if not measure.ending:
            continue
        last = i
        while last + 1 < len(measures) and not measures[last].right & set(_SECTION_BARS) \
                and not measures[last + 1].ending and not measures[last + 1].left & set(_SECTION_BARS):
            last += 1
        if measure.ending == 1:
            first_length = last - i + 1
        elif first_length:
            last = min(last, i + first_length - 1)
        out[i] = (last, measure.ending)
    return out


def _right_bar(measures: list[_Measure], index: int) -> str | None:
    """MEI @right of a measure: repeat signs, a double bar, and a final bar at the end."""
    right = measures[index].right
    last = index == len(measures) - 1
    if "::" in right or (":|" in right and not last and "|:" in measures[index + 1].left):
        return "rptboth"
    if ":|" in right:
        return "rptend"
    if last or "|]" in right:
        return "end"
    if right & {"||", "[|"}:
        return "dbl"
    return None


def tune_to_mei(tune: Tune, *, bars_per_line: int = BARS_PER_LINE, abc: str | None = None) -> str:
    """The tune as an MEI document for verovio (see the module docstring).

    Parameters
    ----------
    tune
        The tune.
    bars_per_line
        Bars a line at most; each part starts a new line.
    abc
        The tune's ABC text, for its slurs, decorations and chord symbols; ignored when its notes
        are not the tune's.
    """
    ids = _Ids()
    end = max([tune.length, tune.end or Fraction(0)] + [n.onset + n.duration for n in tune.notes])
    measures = _measures(tune, end, bars_per_line)
    events = _split(_voice(tune.notes, measures[-1].end), [m.start for m in measures[1:]])
    onsets = [event.onset for event in events]  # ascending: the voice is in time order
    keys = _key_at(tune)
    meters = dict(_meters_at(tune))

    mei = ET.Element("mei", {"xmlns": _MEI_NS, "meiversion": "4.0.1"})
    head = ET.SubElement(mei, "meiHead")
    description = ET.SubElement(head, "fileDesc")
    statement = ET.SubElement(description, "titleStmt")
    ET.SubElement(statement, "title").text = tune.title or "Untitled"
    ET.SubElement(statement, "title", {"type": "subordinate"}).text = subtitle(tune)
    composers = tune.field_values("C")
    if composers:
        ET.SubElement(statement, "composer").text = composers[0]  # verovio prints it at the right
    ET.SubElement(description, "pubStmt")
    score = ET.SubElement(ET.SubElement(ET.SubElement(ET.SubElement(mei, "music"), "body"), "mdiv"), "score")
    staff_def = ET.SubElement(ET.SubElement(ET.SubElement(score, "scoreDef"), "staffGrp"), "staffDef",
                              {"n": "1", "lines": "5"})
    pitches = sorted(n.pitch for n in tune.notes if not n.grace)
    low = bool(pitches) and pitches[len(pitches) // 2] < 55  # a tune that lies low reads in the bass clef
    ET.SubElement(staff_def, "clef", {"shape": "F" if low else "G", "line": "4" if low else "2"})
    _key_sig(keys[0][1], ET.SubElement(staff_def, "keySig"))
    if not tune.meter.free:
        _meter_sig(tune.meter, staff_def)
    section = ET.SubElement(score, "section")

    endings = _ending_spans(measures)
    state = _State(keys[0][1], list(keys[1:]))
    if abc is not None:
        state.letters = _written_letters(tune, abc)
    container, closes_at = section, -1
    for index, measure in enumerate(measures):
        if index in endings:
            last, number = endings[index]
            container = ET.SubElement(section, "ending", {"n": str(number), "label": f"{number}."})
            closes_at = last
        if measure.new_line:
            ET.SubElement(container, "sb")
        # a key or meter change at this bar line: a new scoreDef before the measure
        change = ET.Element("scoreDef")
        while state.keys and state.keys[0][0] <= measure.start:
            key = state.keys.pop(0)[1]
            _key_sig(key, ET.SubElement(change, "keySig"))
            state.key = key
        if measure.start in meters:
            _meter_sig(meters[measure.start], change)
        if len(change):
            container.append(change)
        element = ET.SubElement(container, "measure", {"n": str(measure.number), _XML_ID: ids("m")})
        if measure.full and measure.length != measure.full:
            element.set("metcon", "false")
        if measure.left & {"|:", "::"} and not (index and _right_bar(measures, index - 1) == "rptboth"):
            element.set("left", "rptstart")
        right = _right_bar(measures, index)
        if right:
            element.set("right", right)
        layer = ET.SubElement(ET.SubElement(element, "staff", {"n": "1"}), "layer", {"n": "1"})
        inside = events[bisect_left(onsets, measure.start):bisect_left(onsets, measure.end)]
        _fill_layer(layer, inside, measure, state, ids)
        if index == closes_at:
            container = section
    _link_ties(section)
    if abc is not None:
        _draw_marks(section, tune, abc, state)
    return ET.tostring(mei, encoding="unicode")


def _meter_sig(meter: Meter, parent: ET.Element) -> None:
    attributes = {"count": str(meter.numerator), "unit": str(meter.denominator)}
    if meter.symbol == "C":
        attributes["sym"] = "common"
    elif meter.symbol == "C|":
        attributes["sym"] = "cut"
    ET.SubElement(parent, "meterSig", attributes)


@dataclass
class _State:
    """What carries from measure to measure: the key signature and the key changes to come."""

    key: Key
    keys: list[tuple[Fraction, Key]]
    # Tune.notes index -> (onset, element) of each note or chord that draws it (more than one when tied)
    drawn: dict[int, list[tuple[Fraction, ET.Element]]] = field(default_factory=dict)
    rests: dict[Fraction, ET.Element] = field(default_factory=dict)  # onset -> the rest written there
    # Tune.notes index -> (its pitch, the letter it is written with in the ABC text)
    letters: dict[int, tuple[int, str]] = field(default_factory=dict)

    @property
    def signature(self) -> dict[str, int]:
        return self.key.accidentals

    @property
    def tonic(self) -> int:
        return _fifths(self.key.tonic)


@dataclass
class _Item:
    """One written note, chord or rest of a measure."""

    onset: Fraction
    position: Fraction  # quarter notes from the start of the bar
    dur: int  # MEI @dur: 4 a quarter, 8 an eighth
    dots: int
    pitches: tuple[int, ...]  # () for a rest
    graces: tuple[int, ...]
    tie: bool  # tied to the next item
    continued: bool  # tied from the item before
    tuplet: int = -1  # its tuplet's index in the measure; -1: none
    sources: tuple[int, ...] = ()  # the indices in Tune.notes of the notes it sounds

    @property
    def beamable(self) -> bool:
        return bool(self.pitches) and self.dur >= 8


def _items(events: list[_Event], measure: _Measure):
    """The measure's events as written notes, and its tuplets as (p, q) by index. A length that is
    not a binary fraction starts a tuplet; where none fits, it is rounded to a 32nd."""
    factors = [Fraction(1)] * len(events)
    tuplet_of: dict[int, int] = {}
    tuplets: list[tuple[int, int]] = []
    i = 0
    while i < len(events):
        if is_binary(events[i].length):
            i += 1
            continue
        plan = _tuplet_plan([e.length for e in events[i:]])
        if plan is None:
            events[i].length = max(Fraction(round(events[i].length * 8), 8), Fraction(1, 8))
            i += 1
            continue
        p, q, r = plan
        for k in range(i, i + r):
            factors[k] = Fraction(p, q)
            tuplet_of[k] = len(tuplets)
        tuplets.append((p, q))
        i += r
    items: list[_Item] = []
    for k, event in enumerate(events):
        pieces = _values(event.length * factors[k])
        onset = event.onset
        for j, (dur, dots) in enumerate(pieces):
            last = j == len(pieces) - 1
            items.append(_Item(onset, _bar_position(measure, onset), dur, dots, event.pitches,
                               event.graces if j == 0 else (), event.tie if last else bool(event.pitches),
                               event.continued if j == 0 else bool(event.pitches), tuplet_of.get(k, -1),
                               event.sources))
            onset += Fraction(4, dur) * (2 - Fraction(1, 2 ** dots)) / factors[k]
    return items, tuplets


def _beams(items: list[_Item], span: Fraction) -> list[list[_Item]]:
    """Items grouped as beamed: beamable notes within one beat span, a tuplet's notes on their own."""
    groups: list[list[_Item]] = []
    for item in items:
        previous = groups[-1] if groups else None
        if (previous and item.beamable and previous[-1].beamable and previous[-1].tuplet == item.tuplet
                and (item.tuplet >= 0 or previous[0].position // span == item.position // span)):
            previous.append(item)
        else:
            groups.append([item])
    return groups


def _fill_layer(layer: ET.Element, events: list[_Event], measure: _Measure, state: _State, ids: _Ids) -> None:
    """Write one measure's events into its layer: tuplets, beams, graces, accidentals, key changes."""
    items, tuplets = _items(events, measure)
    groups = _beams(items, _beam_span(measure.meter))
    accidentals: dict[tuple[str, int], int] = {}  # (letter, octave) -> alteration, as written so far
    tuplet_element, tuplet_index = None, -1
    for group in groups:
        # a key change inside the measure goes before the first note at or after it
        while state.keys and state.keys[0][0] <= group[0].onset:
            key = state.keys.pop(0)[1]
            _key_sig(key, ET.SubElement(layer, "keySig"))
            state.key = key
            accidentals.clear()
        parent = layer
        if group[0].tuplet >= 0:
            if group[0].tuplet != tuplet_index:
                p, q = tuplets[group[0].tuplet]
                members = sum(1 for it in items if it.tuplet == group[0].tuplet)
                one_beam = len(group) == members > 1  # the beam says which notes: no bracket
                tuplet_element = ET.SubElement(layer, "tuplet", {
                    "num": str(p), "numbase": str(q), "num.visible": "true", "num.place": "above",
                    "bracket.visible": "false" if one_beam else "true", "bracket.place": "above"})
                tuplet_index = group[0].tuplet
            parent = tuplet_element
        else:
            tuplet_index = -1
        if group[0].graces:  # before the beam: graces inside it at its start would join it
            _graces(parent, group[0].graces, state, ids)
        if len(group) > 1:
            parent = ET.SubElement(parent, "beam")
        for position, item in enumerate(group):
            if item.graces and position:  # verovio draws a grace inside a beam apart from it
                _graces(parent, item.graces, state, ids)
            if not item.pitches:
                state.rests.setdefault(item.onset, ET.SubElement(parent, "rest", _dur(item, ids("r"))))
                continue
            holder = parent
            if len(item.pitches) > 1:
                holder = ET.SubElement(parent, "chord", _dur(item, ids("c")))
            written = dict(state.letters[source] for source in item.sources if source in state.letters)
            for pitch in item.pitches:
                note = ET.SubElement(holder, "note", _dur(item, None) if len(item.pitches) == 1 else {})
                note.set(_XML_ID, ids("n"))
                letter, alter, octave = _spell(pitch, state.signature, state.tonic, written.get(pitch))
                note.set("pname", letter.lower())
                note.set("oct", str(octave))
                note.set("data-pitch", str(pitch))
                place = (letter, octave)
                if item.continued:  # a note tied over shows no accidental
                    accidentals[place] = alter
                elif accidentals.get(place, state.signature[letter]) != alter:
                    note.set("accid", _ACCID[alter])
                    accidentals[place] = alter
                elif alter:
                    note.set("accid.ges", _ACCID[alter])
                if item.tie:
                    note.set("data-tie", "1")
            for source in item.sources:
                state.drawn.setdefault(source, []).append((item.onset, holder if holder is not parent else note))
    while state.keys and state.keys[0][0] < measure.end:  # a key change after the last note
        key = state.keys.pop(0)[1]
        _key_sig(key, ET.SubElement(layer, "keySig"))
        state.key = key


def _dur(item: _Item, xml_id: str | None) -> dict[str, str]:
    out = {"dur": str(item.dur)}
    if item.dots:
        out["dots"] = str(item.dots)
    if xml_id:
        out[_XML_ID] = xml_id
    return out


def _graces(parent: ET.Element, pitches: tuple[int, ...], state: _State, ids: _Ids) -> None:
    """Grace notes, stems up: one a slashed eighth (a cut), more beamed sixteenths."""
    holder = parent if len(pitches) == 1 else ET.SubElement(parent, "beam")
    shown: dict[tuple[str, int], int] = {}
    for pitch in pitches:
        letter, alter, octave = _spell(pitch, state.signature, state.tonic)
        attributes = {"pname": letter.lower(), "oct": str(octave), "dur": "8" if len(pitches) == 1 else "16",
                      "grace": "acc" if len(pitches) == 1 else "unacc", "stem.dir": "up", _XML_ID: ids("g")}
        if shown.get((letter, octave), state.signature[letter]) != alter:
            attributes["accid"] = _ACCID[alter]
            shown[(letter, octave)] = alter
        elif alter:
            attributes["accid.ges"] = _ACCID[alter]
        ET.SubElement(holder, "note", attributes)


def _link_ties(section: ET.Element) -> None:
    """A ``<tie>`` from each note marked as tied to the next note of the same pitch, placed in the
    measure where it starts; the marks are then removed."""
    sequence = []  # (measure, note) in order
    for measure in section.iter("measure"):
        for note in measure.iter():
            if note.tag.endswith("note") and note.get("grace") is None:
                sequence.append((measure, note))
    for k, (measure, note) in enumerate(sequence):
        if note.attrib.pop("data-tie", None) is None:
            continue
        pitch = note.get("data-pitch")
        for _, other in sequence[k + 1:k + 12]:
            if other.get("data-pitch") == pitch:
                ET.SubElement(measure, "tie", {"startid": "#" + note.get(_XML_ID),
                                               "endid": "#" + other.get(_XML_ID)})
                break
    for _, note in sequence:
        note.attrib.pop("data-pitch", None)


# --- what the Tune does not keep: slurs, decorations, chord symbols ------------------------------

# A decoration as written (``!trill!``, ``T``; ``+trill+`` reads as ``!trill!``) -> what it draws:
# ("artic", value) adds to the note's @artic, any other (element, attributes) is a control event.
_DECORATIONS: dict[str, tuple[str, object]] = {}
for _names, _drawn in (
    ((".", "!staccato!"), ("artic", "stacc")),
    (("L", "!accent!", "!>!", "!emphasis!"), ("artic", "acc")),
    (("!tenuto!",), ("artic", "ten")),
    (("!marcato!", "!^!"), ("artic", "marc")),
    (("u", "!upbow!"), ("artic", "upbow")),
    (("v", "!downbow!"), ("artic", "dnbow")),
    (("T", "!trill!"), ("trill", {"place": "above"})),
    (("H", "!fermata!"), ("fermata", {"place": "above"})),
    (("!invertedfermata!",), ("fermata", {"place": "below", "form": "inv"})),
    (("M", "!mordent!", "!lowermordent!"), ("mordent", {"place": "above", "form": "lower"})),
    (("P", "!uppermordent!", "!pralltriller!"), ("mordent", {"place": "above", "form": "upper"})),
    (("~", "!roll!", "!turn!"), ("turn", {"place": "above"})),
    (("!invertedturn!",), ("turn", {"place": "above", "form": "lower"})),
):
    _DECORATIONS.update(dict.fromkeys(_names, _drawn))
_ON_RESTS = {"fermata", "harm", "dir"}  # what a rest can carry


def _marks(tune: Tune, abc: str) -> tuple[list, list[tuple]]:
    """The lexer's records of ``abc`` and its marks (``tune_from_lexed``'s ``marks``): none when
    the text cannot be read or its notes are not the tune's (not in the same order and time)."""
    marks: list[tuple] = []
    try:
        lexed = lex(abc)
        written = tune_from_lexed(lexed, marks=marks)
    except (FolkError, ValueError, ZeroDivisionError, OverflowError):
        return [], []
    if list(map(_timing, written.notes)) != list(map(_timing, tune.notes)):
        return [], []
    return lexed.records, marks


def _written_letters(tune: Tune, abc: str) -> dict[int, tuple[int, str]]:
    """Tune.notes index -> (pitch, the letter its note is written with in ``abc``, upper case), from
    the text's marks (none when it is not the tune's). A chord's notes share the count of notes
    before it: the first takes that index, the next the one after, as the Tune keeps them."""
    records, marks = _marks(tune, abc)
    out: dict[int, tuple[int, str]] = {}
    notes = tune.notes
    last = None  # (before, onset) of the last note mark, and the index it took
    for index, before, onset in marks:
        record = records[index]
        if record[0] is not NOTE:
            continue
        k = last[1] + 1 if last is not None and last[0] == (before, onset) else before
        last = ((before, onset), k)
        if k < len(notes) and notes[k].onset == onset and not notes[k].grace:
            out[k] = (notes[k].pitch, record[3].upper())
    return out


def _timing(note: Note) -> tuple:
    return note.onset, note.duration, note.grace


def _draw_marks(section: ET.Element, tune: Tune, abc: str, state: _State) -> None:
    """Slurs, decorations and chord symbols of the ABC text, on the notes they are written at:
    a mark before a note (or chord, or rest, or the second of two tied notes where it is drawn
    apart) belongs to it, a ``)`` to the note before it."""
    from bisect import bisect_left

    records, marks = _marks(tune, abc)
    if not marks:
        return
    drawn = sorted(state.drawn)
    measure_of = {element: measure for measure in section.iter("measure") for element in measure.iter()}
    opened: list[tuple[Fraction, ET.Element] | None] = []  # the first note of each slur still open

    def next_target(before: int, onset: Fraction) -> tuple[Fraction, ET.Element] | None:
        """The note, chord or rest written next after a mark: ``before`` notes of the Tune come before
        it, at ``onset``."""
        k = bisect_left(drawn, before)
        if k:  # a tied note drawn again here (after a bar line)
            for piece in state.drawn[drawn[k - 1]][1:]:
                if piece[0] == onset:
                    return piece
        following = state.drawn[drawn[k]][0] if k < len(drawn) else None
        rest = state.rests.get(onset)
        if rest is not None and (following is None or onset < following[0]):
            return onset, rest
        return following

    def control(name: str, target: ET.Element, attributes: dict) -> ET.Element:
        return ET.SubElement(measure_of[target], name, {**attributes, "startid": "#" + target.get(_XML_ID)})

    for index, before, onset in marks:
        record = records[index]
        kind, text = record[0], record[2]
        if kind is NOTE:  # an accidental as written, a courtesy one too (^F in G), as abcm2ps shows it,
            # on the note and on the grace notes written before it
            graces = _written_graces(records, index)
            if record[2] is None and not graces:
                continue  # (a note's letter: see _written_letters)
            target = next_target(before, onset)
            if target is not None and target[0] == onset:  # (not the second note of a tie: none is drawn)
                if record[2] is not None:
                    _show_written_accidental(target[1], record[3], record[4])
                drawn_graces = _graces_before(measure_of[target[1]], target[1]) if graces else []
                for grace in graces:
                    for element in drawn_graces:
                        _show_written_accidental(element, grace[3], grace[4])
            continue
        if kind is SLUR and text == ")":  # from the note after its "(" to the note drawn last before it
            start = opened.pop() if opened else None
            k = bisect_left(drawn, before) - 1
            ends = [piece for piece in state.drawn[drawn[k]] if piece[0] < onset] if k >= 0 else []
            if start is not None and ends and start[0] < ends[-1][0]:
                control("slur", start[1], {"endid": "#" + ends[-1][1].get(_XML_ID)})
            continue
        target = next_target(before, onset)
        if kind is SLUR:
            opened.append(target if target is not None and target[1].tag != "rest" else None)
            continue
        if target is None:
            continue
        element = target[1]
        if kind is ANNOT:  # "G" a chord symbol, "^text" and "_text" words above and below the staff
            text = text.strip('"')
            if text[:1] in ("^", "_") and text[1:].strip():
                control("dir", element, {"place": "above" if text[0] == "^" else "below"}).text = text[1:]
            elif text.strip() and text[:1] not in ("^", "_", "<", ">", "@"):
                # as written (F#m, Bb): verovio would draw ♯ and ♭ in its music font, which the SVG does
                # not carry
                control("harm", element, {"place": "above"}).text = text
            continue
        if kind is DECO:
            if text[:1] == "+":
                text = "!" + text[1:-1] + "!"
            name, value = _DECORATIONS.get(text, ("", None))
            if not name or (element.tag == "rest" and name not in _ON_RESTS):
                continue
            if name == "artic":
                values = element.get("artic", "").split()
                if value not in values:
                    element.set("artic", " ".join(values + [value]))
            else:
                control(name, element, value)


def _written_graces(records: list, index: int) -> list[tuple]:
    """The note records written with an accidental in the grace group just before record ``index``
    (a note, or a chord's first; decorations, chord symbols and slurs may stand between them)."""
    k = index - 1
    while k >= 0 and records[k][0] in (DECO, ANNOT, SLUR, SPACE, CHORD_START):
        k -= 1
    if k < 0 or records[k][0] is not GRACE_END:
        return []
    written = []
    for record in reversed(records[:k]):
        if record[0] is GRACE_START:
            break
        if record[0] is NOTE and record[2] is not None:
            written.append(record)
    return written[::-1]


def _graces_before(measure: ET.Element, target: ET.Element) -> list[ET.Element]:
    """The grace notes drawn just before ``target`` (a note or chord) in ``measure``: those after
    the last sounding note before it, in written order."""
    graces: list[ET.Element] = []
    for note in measure.iter("note"):
        if note is target or note in target:
            return graces
        if note.get("grace") is None:
            graces = []
        else:
            graces.append(note)
    return []


def _show_written_accidental(element: ET.Element, letter: str, octave: int) -> None:
    """Show the accidental of the note written as ``letter`` (ABC: C is middle C, c the octave
    above) ``octave`` octaves up, in ``element`` (a note, or a chord of them), when the key and the
    bar made it silent: the engraver spells by the sounding pitch, so only a note spelt with the
    written letter takes it."""
    written = str(4 + letter.islower() + octave)
    for note in [element] if element.tag == "note" else element.iter("note"):
        if note.get("pname") == letter.lower() and note.get("oct") == written and note.get("accid") is None:
            note.set("accid", note.attrib.pop("accid.ges", "n"))


# --- engraving ----------------------------------------------------------------------------------


def page_size(paper: str) -> tuple[int, int]:
    """(width, height) of a paper size in verovio's units (tenths of a millimetre)."""
    sheet = PAPERS[paper]
    return round(sheet.width_mm * 10), round(sheet.height_mm * 10)


def engrave(tune: Tune, *, width: int = 2100, height: int | None = None, scale: int = 100,
            margins: tuple[int, int, int, int] = (80, 100, 80, 100), abc: str | None = None) -> list[str]:
    """Engrave a tune with verovio: SVG pages.

    Parameters
    ----------
    tune
        The tune.
    abc
        The tune's ABC text, for its slurs, decorations and chord symbols (:func:`tune_to_mei`).
    width, height
        Page size in tenths of a millimetre (A4: 2100 x 2970); ``height=None``: one page as tall
        as the music.
    scale
        Size of the SVG in percent (100: a pixel for each tenth of a millimetre).
    margins
        Top, right, bottom and left margins, in tenths of a millimetre.
    """
    import verovio

    if hasattr(verovio, "enableLog"):
        verovio.enableLog(verovio.LOG_OFF)
    # verovio keeps the path to its fonts per thread: a toolkit made in any other thread than the first
    # (a server's) finds none unless it is told where they are
    toolkit = verovio.toolkit(False)
    toolkit.setResourcePath(os.path.join(os.path.dirname(verovio.__file__), "data"))
    top, right, bottom, left = margins
    toolkit.setOptions({
        "pageWidth": width, "pageHeight": height or 60000, "adjustPageHeight": height is None,
        "scale": scale, "header": "auto", "footer": "none", "breaks": "encoded",
        "minLastJustification": 0.5,  # a last line of four bars spans the page, as the others do
        "pageMarginTop": top, "pageMarginRight": right, "pageMarginBottom": bottom, "pageMarginLeft": left,
        "xmlIdChecksum": True,  # ids from the input: the same tune, the same file
        "svgAdditionalAttribute": ["note@grace"],  # grace notes say so (data-grace), for pages and tests
    })
    if not toolkit.loadData(tune_to_mei(tune, abc=abc)):
        raise OptionError("verovio could not engrave this tune")
    return [toolkit.renderToSVG(page) for page in range(1, toolkit.getPageCount() + 1)]


_VIEWBOX = re.compile(r'class="definition-scale"[^>]*viewBox="0 0 (\d+) (\d+)"')


def svg_size(svg: str) -> tuple[float, float]:
    """(width, height) of a verovio page in tenths of a millimetre."""
    match = _VIEWBOX.search(svg)
    if match is None:
        raise ValueError("not a verovio page")
    return int(match.group(1)) / 10, int(match.group(2)) / 10


def tunes_to_pdf(tunes: list[Tune], *, paper: str = "a4", title: str = "",
                 abcs: list[str | None] | None = None) -> bytes:
    """Tunes engraved on pages of ``paper`` as one PDF: one under another while they fit on the
    page, a tune longer than a page on pages of its own. ``abcs``: each tune's ABC text (or None),
    for its slurs, decorations and chord symbols."""
    width, height = page_size(paper)
    side = 150  # left and right margins: 15 mm
    gap = 50  # each tune's own margin above and below it: 5 mm
    pages: list[list[Placement]] = []
    top = None  # where the next tune goes on the last page (tenths of a millimetre); None: a new page
    for tune, abc in zip(tunes, abcs or [None] * len(tunes)):
        block = engrave(tune, width=width, margins=(gap, side, gap, side), abc=abc)[0]
        block_height = svg_size(block)[1]
        if block_height > height - 2 * gap:  # longer than a page: verovio's own pages
            for page in engrave(tune, width=width, height=height, margins=(100, side, 100, side), abc=abc):
                pages.append([Placement(page, 0.0, 0.0, width / 10 * MM)])
            top = None
            continue
        if top is None or top + block_height > height - gap:
            pages.append([])
            top = gap
        pages[-1].append(Placement(block, 0.0, top / 10 * MM, width / 10 * MM))
        top += block_height + 30  # 3 mm more between tunes
    if not pages:
        pages.append([])
    return svgs_to_pdf(pages, (width / 10 * MM, height / 10 * MM),
                       title=title or (tunes[0].title if len(tunes) == 1 else "folkrnn tunebook"))
