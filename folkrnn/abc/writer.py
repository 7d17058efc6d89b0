"""Tune -> ABC text: the notes of a Tune written back as ABC 2.1 that reads back to the same notes.

What it writes:

- a header with X:, T:, the tune's other descriptive fields (R:, C:, O:, Q:, N:, ...), M:, L:, K:;
- pitches spelled in the key: the key signature applies, and an accidental (``^``, ``_``, ``=``)
  is written only when the note differs from what the signature and the earlier accidentals of
  the bar give. The bar's accidentals are tracked both ways ABC readers apply them (same letter
  and octave, as ABC 2.1 says; same letter in every octave, as abc2midi does), and an accidental
  is written whenever either reading would get the note wrong;
- lengths in units of L; a note that crosses a bar line is split and tied (``-``), a gap becomes
  a rest; a long-short pair of equal written notes becomes ``>`` (``<`` for short-long);
- only lengths that ABC players accept: a written length is a power-of-two fraction of L (``3/2``,
  ``/4``, never ``/3``). Lengths that are not (thirds, fifths) are written in tuplets: from the
  first such note to where the lengths sum to a power-of-two fraction again, within the bar,
  ``(3`` (three notes of one length in the time of two), ``(3:2:r`` (r notes, say a quarter and
  an eighth of a triplet: ``(3:2:2B2A``), or another ratio ``(p:q:r``. Where no tuplet fits (a
  tune that ends on a third of a beat), that bar's boundaries move to the nearest points of a
  binary grid fine enough to keep every note: the one place the notes written differ from the
  Tune's;
- bar lines, repeats and endings from ``tune.bars`` (a closing ``||`` written ``|]``), or, when
  there are none, a bar line every bar of the meter; lines broken on the phrases, four bars to a
  line from the first full bar (``folkrnn.abc.layout``);
- the key as tunebooks write it (``K:G``, ``K:Em``, ``K:Ador``).

The body is one voice: notes that start together form a chord lasting as long as its shortest
note, and a note still sounding when the next one starts is cut there (ABC cannot write the
overlap in one voice). Inline field changes (``[K:]``, ``[M:]``) are not written: every pitch is
spelled against the header key, with the accidentals it needs.
"""

from __future__ import annotations

import itertools
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction

from folkrnn.abc.layout import Measure, phrase_breaks
from folkrnn.music import LETTER_SEMITONES, LETTERS, BarLine, Key, Note, Tune, key_signature

__all__ = ["tune_to_abc", "spell_pitch", "format_length", "is_binary", "tuplet_plans", "TUPLET_RATIOS"]

# Header fields worth keeping, in the order they are written after X: and T:.
_KEPT_FIELDS = "CORAQBDFGHNSZ"
_ACCIDENTAL_TEXT = {-2: "__", -1: "_", 0: "=", 1: "^", 2: "^^"}


def format_length(units: Fraction) -> str:
    """A length in units of L as ABC writes it: 1 -> "", 2 -> "2", 1/2 -> "/2", 3/2 -> "3/2"."""
    if units == 1:
        return ""
    if units.denominator == 1:
        return str(units.numerator)
    if units.numerator == 1:
        return f"/{units.denominator}"
    return f"{units.numerator}/{units.denominator}"


def is_binary(value: Fraction) -> bool:
    """A length whose denominator is a power of two (one ABC and staff notation write plainly)."""
    d = value.denominator
    return d & (d - 1) == 0


def _key_fifths(signature: dict[str, int]) -> int:
    return sum(signature.values())


def spell_pitch(pitch: int, signature: dict[str, int]) -> tuple[str, int]:
    """Choose a letter and alteration for a MIDI pitch in a key: (letter, alter).

    A note of the scale takes the signature's spelling. Otherwise a natural sign on an altered
    letter comes first (F natural in G major); then sharps in sharp keys and flats in flat keys;
    with no signature, sharps, except E flat; B flat rather than A sharp unless in five sharps.
    """
    pitch_class = pitch % 12
    for letter in LETTERS:
        if (LETTER_SEMITONES[letter] + signature[letter]) % 12 == pitch_class:
            return letter, signature[letter]
    options = []
    for letter in LETTERS:
        for alter in (0, 1, -1):
            if (LETTER_SEMITONES[letter] + alter) % 12 == pitch_class:
                options.append((letter, alter))
    fifths = _key_fifths(signature)
    prefer_flat = fifths < 0 or (fifths == 0 and pitch_class == 3) or (fifths < 5 and pitch_class == 10)

    def rank(option: tuple[str, int]) -> tuple[int, int]:
        alter = option[1]
        if alter == 0:
            return (0, 0)
        return (1, 0 if (alter < 0) == prefer_flat else 1)

    return min(options, key=rank)


@dataclass
class _Speller:
    """Spells notes in a bar, tracking the accidentals written so far in the bar."""

    signature: dict[str, int]
    by_letter: dict[str, int] = field(default_factory=dict)  # the same letter in any octave
    by_octave: dict[tuple[str, int], int] = field(default_factory=dict)  # same letter and octave
    unsure: set[str] = field(default_factory=set)  # letters a grace note's accidental may carry to

    def new_bar(self) -> None:
        self.by_letter.clear()
        self.by_octave.clear()
        self.unsure.clear()

    def write(self, pitch: int, grace: bool = False) -> str:
        """A note's ABC pitch, with an accidental where a reader could get it wrong without.

        A grace note's accidental is its own (it does not carry, as folkrnn and abc2midi read
        it); since other readers may carry it, the next note of its letter in the bar gets an
        explicit accidental too.
        """
        letter, alter = spell_pitch(pitch, self.signature)
        octave = (pitch - alter - LETTER_SEMITONES[letter] - 60) // 12
        implied_letter = self.by_letter.get(letter, self.signature[letter])
        implied_octave = self.by_octave.get((letter, octave), self.signature[letter])
        text = ""
        if implied_letter != alter or implied_octave != alter or (
                letter in self.unsure and not grace):
            text = _ACCIDENTAL_TEXT[alter]
            if grace:
                self.unsure.add(letter)
            else:
                self.by_letter[letter] = alter
                self.by_octave[(letter, octave)] = alter
                self.unsure.discard(letter)
        if octave >= 1:
            return text + letter.lower() + "'" * (octave - 1)
        return text + letter + "," * (-octave)


@dataclass
class _Event:
    """A note, chord or rest of the one voice, possibly a piece of a longer one (tied on)."""

    onset: Fraction
    units: Fraction  # length in units of L
    pitches: tuple[int, ...]  # () for a rest
    graces: tuple[int, ...] = ()
    tie: bool = False  # tied to the next piece


def _header(tune: Tune) -> list[str]:
    lines = [f"X:{tune.number or 1}"]
    titles = tune.field_values("T") or ["Untitled"]
    lines += [f"T:{title}" for title in titles]
    for letter in _KEPT_FIELDS:
        lines += [f"{letter}:{value}" for value in tune.field_values(letter)]
    meter = tune.meter
    lines.append(f"M:{meter.symbol or meter}")
    lines.append(f"L:{tune.unit.numerator}/{tune.unit.denominator}")
    lines.append(f"K:{_key_text(tune.key)}")
    return lines


def _key_text(key: Key) -> str:
    mode = {"maj": "", "min": "m"}.get(key.mode, key.mode)  # as tunebooks write it: G, Em, Ador
    text = f"{key.tonic}{mode}"
    if key.accidentals != key_signature(key.tonic, key.mode):
        marks = [f"{_ACCIDENTAL_TEXT[alter]}{letter.lower()}"
                 for letter, alter in key.accidentals.items() if alter]
        text += " exp" + ("".join(f" {m}" for m in marks) if marks else "")
    return text


def _voice(notes: list[Note]) -> list[tuple[Fraction, Fraction, tuple[int, ...], tuple[int, ...]]]:
    """Notes -> (onset, duration, pitches, graces) groups of one voice, gaps not yet filled."""
    main = sorted((n for n in notes if not n.grace), key=lambda n: (n.onset, n.pitch))
    grace_notes = [n for n in notes if n.grace]  # in written order
    onsets: list[Fraction] = []
    groups: dict[Fraction, list[Note]] = {}
    for note in main:
        if note.duration <= 0:
            continue
        if note.onset not in groups:
            groups[note.onset] = []
            onsets.append(note.onset)
        groups[note.onset].append(note)
    out = []
    for i, onset in enumerate(onsets):
        duration = min(n.duration for n in groups[onset])
        if i + 1 < len(onsets):
            duration = min(duration, onsets[i + 1] - onset)
        pitches = tuple(sorted(n.pitch for n in groups[onset]))  # unisons stay: [AA]
        out.append([onset, duration, pitches, []])
    # each grace goes before the first group starting at or after it
    starts = [group[0] for group in out]
    for grace in grace_notes:
        k = bisect_left(starts, grace.onset)
        if k < len(out):
            out[k][3].append(grace.pitch)
    return [(o, d, p, tuple(g)) for o, d, p, g in out]


def _bar_lines(tune: Tune, end: Fraction) -> list[BarLine]:
    if tune.bars:
        bars = list(tune.bars)
        last = bars[-1]
        if last.kind == "||" and not last.ending and last.onset >= end:  # the tune's final bar
            bars[-1] = replace(last, kind="|]")
        return bars
    bar_length = tune.meter.bar_length
    if not bar_length:
        return [BarLine(end, "|]", 0)] if end > 0 else []
    out = []
    position = bar_length
    while position < end:
        out.append(BarLine(position, "|", 0))
        position += bar_length
    out.append(BarLine(end, "|]", 0))
    return out


def _line_breaks(bars: list[BarLine], end: Fraction, bar_length: Fraction) -> set[int]:
    """The indices of the bar lines a line of music ends at (``folkrnn.abc.layout``)."""
    measures, start = [], Fraction(0)
    for k, bar in enumerate(bars):
        measures.append(Measure(bar.onset - start, bar.kind, bool(k and bars[k - 1].ending)))
        start = bar.onset
    measures.append(Measure(max(end - start, Fraction(0)), "", bool(bars and bars[-1].ending)))
    return phrase_breaks(measures, bar_length or None)


def _bar_text(bar: BarLine) -> str:
    return bar.kind + (",".join(str(n) for n in bar.ending) if bar.ending else "")


# Tuplet ratios tried in order: p notes in the time of q.
TUPLET_RATIOS = ((3, 2), (6, 4), (5, 4), (7, 4), (9, 8), (2, 3), (4, 3), (5, 2), (7, 8))


def tuplet_plans(units: Sequence[Fraction], ratios: Sequence[tuple[int, int]] = TUPLET_RATIOS):
    """The tuplets that could start a run of lengths, one per ratio that fits, in ``ratios``' order.

    Yields (p, q, r, factor): the first r lengths (at least two) sum to a binary length, and
    each, times ``factor = p/q``, is binary, so ``(p:q:r`` writes them with lengths ABC players
    accept (and a staff draws them as plain notes under a bracket). Members may be binary
    themselves (a quarter note inside a triplet: ``(3:2:2B2A``).
    """
    for p, q in ratios:
        factor = Fraction(p, q)
        total = Fraction(0)
        for r, value in enumerate(units, start=1):
            if not is_binary(value * factor):
                break
            total += value
            if is_binary(total) and r >= 2:
                yield p, q, r, factor
                break


def _tuplet_plan(units: list[Fraction]) -> tuple[int, int, int, Fraction] | None:
    """A tuplet for the lengths from one that is not a binary fraction up to its bar line: the
    first ratio that fits (:func:`tuplet_plans`), or None."""
    return next(tuplet_plans(units), None)


def _snap_to_binary(span: list[_Event], unit_quarters: Fraction) -> list[_Event]:
    """The last resort for lengths that no tuplet writes (B/3 alone, a tune ending on a third
    of a beat): the span's boundaries move to the nearest point of a binary grid, from its first
    onset, fine enough (at most half the shortest length) that no event vanishes. A span that
    ends on a bar line keeps its total length when that is binary."""
    shortest = min(event.units for event in span)
    total = sum((event.units for event in span), Fraction(0))
    step = Fraction(1)
    while step > shortest / 2 or (is_binary(total) and (total / step).denominator != 1):
        step /= 2
    out, edge, new_edge = [], Fraction(0), Fraction(0)
    for event in span:
        edge += event.units
        end = round(edge / step) * step
        out.append(_Event(span[0].onset + new_edge * unit_quarters, end - new_edge,
                          event.pitches, event.graces, event.tie))
        new_edge = end
    return out


def _writable(events: list[_Event], bar_onsets: list[Fraction], unit_quarters: Fraction) -> None:
    """Make every length one that ABC players accept, in place: each length that is not a binary
    fraction must start a tuplet (``_tuplet_plan``) within its bar; the lengths of a bar where
    none fits go onto the binary grid (``_snap_to_binary``)."""
    i = 0
    while i < len(events):
        if is_binary(events[i].units):
            i += 1
            continue
        k = bisect_right(bar_onsets, events[i].onset)
        next_bar = bar_onsets[k] if k < len(bar_onsets) else None
        j = i
        while j < len(events) and (next_bar is None or events[j].onset < next_bar):
            j += 1
        plan = _tuplet_plan([event.units for event in events[i:j]])
        if plan is None:
            events[i:j] = _snap_to_binary(events[i:j], unit_quarters)
            continue
        i += plan[2]


def tune_to_abc(tune: Tune) -> str:
    """Write a Tune as ABC text (see the module docstring). Ends with a newline."""
    unit_quarters = tune.unit * 4
    groups = _voice(tune.notes)
    end = max([onset + duration for onset, duration, _, _ in groups] + [tune.length, Fraction(0)])
    bars = _bar_lines(tune, end)
    bar_onsets = [bar.onset for bar in bars]

    # The voice as events between time 0 and the end: notes, chords and rests, split at bars.
    events: list[_Event] = []
    time = Fraction(0)

    def add(onset: Fraction, duration: Fraction, pitches: tuple[int, ...], graces: tuple[int, ...]):
        # the bar lines inside the note, found by bisection (a scan of all later bars is quadratic)
        cuts = bar_onsets[bisect_right(bar_onsets, onset):bisect_left(bar_onsets, onset + duration)]
        edges = [onset] + cuts + [onset + duration]
        for k, (a, b) in enumerate(zip(edges, edges[1:])):
            if b <= a:
                continue
            events.append(_Event(a, (b - a) / unit_quarters, pitches,
                                 graces if k == 0 else (), bool(pitches) and k < len(edges) - 2))

    for onset, duration, pitches, graces in groups:
        if onset > time:
            add(time, onset - time, (), ())
        add(onset, duration, pitches, graces)
        time = onset + duration
    if bars and bars[-1].onset > time and tune.bars:
        add(time, bars[-1].onset - time, (), ())

    _writable(events, bar_onsets, unit_quarters)
    speller = _Speller(tune.key.accidentals)
    beat = Fraction(3, 2) if tune.meter.compound else (
        Fraction(4, tune.meter.denominator) if not tune.meter.free else Fraction(1))
    out: list[str] = []
    bar_index = 0
    line: list[str] = []
    breaks = _line_breaks(bars, end, tune.meter.bar_length)

    def flush_bars_until(onset: Fraction) -> None:
        nonlocal bar_index, line
        while bar_index < len(bars) and bars[bar_index].onset <= onset:
            bar = bars[bar_index]
            speller.new_bar()
            bar_index += 1
            if bar_index - 1 not in breaks:
                line.append(_bar_text(bar))
                continue
            # a line ends here: a |: opening the next part, and an ending's number, start the next
            # (a |: that closes a bar of music, the second ending's, ends its line: see layout)
            opens = bar.kind == "|:" and bar.onset == (bars[bar_index - 2].onset if bar_index > 1 else 0)
            if not opens:
                line.append(bar.kind)
            out.append("".join(line).strip())
            line = [bar.kind] if opens else []
            if bar.ending:
                line.append(("" if opens else "[") + ",".join(str(n) for n in bar.ending))

    def note_text(event: _Event, units: Fraction) -> str:
        text = ""
        if event.graces:
            text += "{" + "".join(speller.write(p, grace=True) for p in event.graces) + "}"
        if not event.pitches:
            return text + "z" + format_length(units)
        if len(event.pitches) == 1:
            text += speller.write(event.pitches[0]) + format_length(units)
        else:
            text += "[" + "".join(speller.write(p) for p in event.pitches) + "]" + format_length(units)
        return text + ("-" if event.tie else "")

    i = 0
    while i < len(events):
        event = events[i]
        flush_bars_until(event.onset)
        if line and not line[-1].endswith(("|", ":")) and tune.meter.bar_length \
                and _on_beat(event.onset, bars, beat, tune, bar_onsets):
            line.append(" ")
        next_bar = bars[bar_index].onset if bar_index < len(bars) else None
        # a tuplet: from a length that is not a binary fraction to where the lengths sum to a
        # binary one again, within the bar
        if not is_binary(event.units):
            run = []
            for later in itertools.islice(events, i, None):  # no copy of the rest of the tune
                if next_bar is not None and later.onset >= next_bar:
                    break
                run.append(later)
            plan = _tuplet_plan([e.units for e in run])
            if plan is None:  # (_writable leaves none of these)
                line.append(note_text(event, event.units))
                i += 1
                continue
            p, q, r, factor = plan
            # "(3" for three notes of one length; abc2midi warns at "(3" over mixed lengths
            even = len({member.units for member in run[:r]}) == 1
            line.append(f"({p}" if (p, q, r) == (3, 2, 3) and even else f"({p}:{q}:{r}")
            for member in run[:r]:
                line.append(note_text(member, member.units * factor))
            i += r
            continue
        # broken rhythm: two single notes, long-short or short-long, within the bar
        if i + 1 < len(events):
            second = events[i + 1]
            same_bar = next_bar is None or second.onset < next_bar
            plain = (len(event.pitches) == 1 and len(second.pitches) == 1 and not event.tie
                     and is_binary(second.units)
                     and not second.tie and not second.graces and same_bar)
            # only where the pair is written as notes of at most one unit ("A>B", "A/>B/")
            # and fills a span of its own length in the bar (so "g>e", never "f<g" off it)
            written_quarters = 2 * min(event.units, second.units) * unit_quarters
            plain = (plain and min(event.units, second.units) <= Fraction(1, 2)
                     and _bar_position(event.onset, bars, tune, bar_onsets) % (2 * written_quarters) == 0)
            if plain and event.units == 3 * second.units:
                written = 2 * second.units
                line.append(note_text(event, written) + ">" + note_text(second, written))
                i += 2
                continue
            if plain and second.units == 3 * event.units:
                written = 2 * event.units
                line.append(note_text(event, written) + "<" + note_text(second, written))
                i += 2
                continue
        line.append(note_text(event, event.units))
        i += 1
    flush_bars_until(max(end, bars[-1].onset if bars else end))
    if line:
        out.append("".join(line).strip())
    body = "\n".join(text for text in out if text)
    return "\n".join(_header(tune) + ([body] if body else [])) + "\n"


def _bar_position(onset: Fraction, bars: list[BarLine], tune: Tune,
                  bar_onsets: list[Fraction] | None = None) -> Fraction:
    """Quarter notes from the last bar line to ``onset`` (a pickup counts back from its end).
    ``bar_onsets``: the bars' onsets, when the caller has them (saves a list per note)."""
    k = bisect_right(bar_onsets if bar_onsets is not None else [b.onset for b in bars], onset) - 1
    start = bars[k].onset if k >= 0 else Fraction(0)
    if k < 0 and bars and bars[0].onset < tune.meter.bar_length:
        start = bars[0].onset - tune.meter.bar_length
    return onset - start


def _on_beat(onset: Fraction, bars: list[BarLine], beat: Fraction, tune: Tune,
             bar_onsets: list[Fraction] | None = None) -> bool:
    """Whether ``onset`` falls on a beat of its bar (a space goes before it)."""
    return _bar_position(onset, bars, tune, bar_onsets) % beat == 0
