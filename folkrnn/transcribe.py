"""Performed notes (seconds) -> a Tune on a metrical grid, spelled in a key, and so to ABC.

A performance from a MIDI file or from the MIDI-event model becomes notation in four steps:

1. **Tempo.** Given, or read from the file, or estimated: folk dance music moves mostly in
   eighth notes, so the most common gap between onsets is taken as an eighth
   (``estimate_tempo``), then refined, within 8%, to the steady grid of eighths that the
   onsets fit best (a gap-based guess a few per cent off drifts a whole step in a few bars);
   the result is kept within 40-320 quarter notes per minute.
2. **Grid.** Onsets and ends are rounded to ``divisions`` per quarter note, or to thirds of a
   quarter (triplet eighths) where that fits much better and the beat then holds whole
   triplets (thirds that do not, say a note from the second third held into the next beat,
   go back to the duple grid), so the writer can write every length as ABC players read it.
   Notes far shorter than a grid step that lead into the next note are grace notes. A gap left
   by articulation (less than 0.6 of a sixteenth note) is not a rest: the note is held to the
   next onset; before a real rest, and at the end, an end is rounded as if held 0.4 of a step
   longer, for the same release.
3. **Meter and bar lines.** Given, or from the file, or estimated (``estimate_meter``): for
   each candidate meter and pickup, the notes' weight (an onset, its length, its loudness) is
   summed at each sixteenth of the bar and correlated with the meter's beat strengths; a tune
   that ends on a bar line gets a bonus. Given a downbeat (a MIDI file with a time signature
   whose first note comes after a silence: its time 0), the bar lines count from there.
4. **Key.** Given, or from the file, or estimated (``estimate_key``): Krumhansl-Kessler key
   profiles, correlated with the duration-weighted pitch-class histogram; dorian and
   mixolydian profiles are the minor and major ones with the one differing degree's weight
   moved; each pitch class heard that the candidate's scale lacks costs a penalty, and a tune
   that ends (or, less, begins) on the candidate tonic gets a bonus, which separates relative
   modes.

The Tune is one voice (see ``folkrnn.abc.writer``), with L:1/8 unless asked otherwise.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Sequence
from fractions import Fraction
from os import PathLike

import numpy as np

from folkrnn.abc.lexer import parse_key
from folkrnn.abc.writer import tune_to_abc
from folkrnn.errors import MidiError, OptionError
from folkrnn.events import PerformanceNote
from folkrnn.limits import MAX_TRANSCRIBE_NOTES
from folkrnn.midi import read_midi_info, read_performance
from folkrnn.music import BarLine, Key, Meter, Note, Tune, key_signature, parse_meter, pitch_class_name

__all__ = [
    "transcribe", "transcribe_midi", "performance_to_abc",
    "estimate_tempo", "estimate_meter", "estimate_key", "same_notes",
]

# Krumhansl & Kessler (1982) probe-tone profiles, from the tonic up by semitones.
_MAJOR = [6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88]
_MINOR = [6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17]
_DORIAN = _MINOR[:8] + [_MINOR[9], _MINOR[8]] + _MINOR[10:]  # major sixth in, minor sixth out
_MIXOLYDIAN = _MAJOR[:10] + [_MAJOR[11], _MAJOR[10]]  # minor seventh in, major seventh out
_PROFILES = {"maj": _MAJOR, "min": _MINOR, "dor": _DORIAN, "mix": _MIXOLYDIAN}
_FINAL_TONIC_BONUS = 0.15
_FIRST_TONIC_BONUS = 0.05
# Each pitch class heard (over 1% of the time) that the candidate's scale lacks costs this much.
_OUT_OF_SCALE_PENALTY = 0.2
_SCALES = {mode: [step in steps for step in range(12)] for mode, steps in {
    "maj": (0, 2, 4, 5, 7, 9, 11), "min": (0, 2, 3, 5, 7, 8, 10),
    "dor": (0, 2, 3, 5, 7, 9, 10), "mix": (0, 2, 4, 5, 7, 9, 10)}.items()}
_MODE_PRIOR = {"maj": 0.02, "min": 0.01, "dor": 0.0, "mix": 0.0}  # ties go to the common modes

# Candidate meters for estimation, with a small prior for the common ones of folk dance music.
_METER_PRIOR = {(4, 4): 0.03, (6, 8): 0.03, (2, 4): 0.0, (3, 4): 0.01, (9, 8): 0.0, (12, 8): 0.0}
_TEMPO_RANGE = (40.0, 320.0)
# A MIDI file whose first note starts this many seconds or more after time 0 starts on a silence.
_SILENT_START = 0.05


def _as_meter(meter: Meter | str | None) -> Meter | None:
    if meter is None or isinstance(meter, Meter):
        return meter
    try:
        return parse_meter(meter)
    except ValueError as error:
        raise OptionError(f"meter {meter!r}: {error}") from None


def _as_key(key: Key | str | None) -> Key | None:
    if key is None or isinstance(key, Key):
        return key
    try:
        return parse_key(key)[0]
    except ValueError as error:
        raise OptionError(f"key {key!r}: {error}") from None


# ---------------------------------------------------------------------------------------------
# Estimates
# ---------------------------------------------------------------------------------------------

def _onsets(notes: Sequence[PerformanceNote]) -> np.ndarray:
    return np.unique(np.round(np.array([n.start for n in notes], dtype=float), 3))


def _gap_mode(gaps: np.ndarray) -> tuple[float, float]:
    """The most common gap (3% log bins, refined by the median within 10%) and the share of
    gaps within 10% of it."""
    bins = np.round(np.log(gaps) / math.log(1.03)).astype(int)
    counts = Counter(bins.tolist())
    best = max(counts, key=lambda b: (counts[b] + 0.5 * (counts.get(b - 1, 0) + counts.get(b + 1, 0)), -b))
    centre = 1.03 ** best
    near = gaps[np.abs(gaps - centre) <= 0.1 * centre]
    value = float(np.median(near)) if len(near) else centre
    return value, len(near) / len(gaps)


def estimate_tempo(notes: Sequence[PerformanceNote]) -> float:
    """Quarter notes per minute, taking the most common gap between onsets as an eighth note
    (or, where the two commonest gaps are a swung pair, 1.15:1 to 1.9:1, the most common sum of
    two gaps as a quarter).

    Gaps are binned on a log scale (3% bins); the chosen bin is refined by the median of the
    gaps within 10% of it. Raises MidiError with fewer than two distinct onsets.
    """
    onsets = _onsets(notes)
    gaps = np.diff(onsets)
    gaps = gaps[gaps > 0.045]  # chord spreads and grace notes are not the pulse
    if len(gaps) == 0:
        raise MidiError("too few notes to estimate a tempo; give one")
    # One gap is an eighth; two gaps in a row are a quarter, even when the eighths are swung
    # (long-short), which splits the single gaps in two. The sharper of the two peaks wins.
    eighth, share = _gap_mode(gaps)
    qpm = 60.0 / (2 * eighth)
    others = gaps[np.abs(gaps - eighth) > 0.1 * eighth]
    if len(gaps) > 2 and len(others):
        second, _ = _gap_mode(others)
        ratio = max(second, eighth) / min(second, eighth)
        quarter, pair_share = _gap_mode(gaps[:-1] + gaps[1:])
        # long-short eighths (a lilt of 1.15:1 to 1.9:1) sum, two by two, to a quarter note
        if 1.15 <= ratio <= 1.9 and pair_share > share + 0.15:
            qpm = 60.0 / quarter
    qpm = _refine_tempo(onsets, qpm)
    while qpm > _TEMPO_RANGE[1]:
        qpm /= 2
    while qpm < _TEMPO_RANGE[0]:
        qpm *= 2
    return qpm


def _refine_tempo(onsets: np.ndarray, qpm: float, spread: float = 0.08) -> float:
    """The tempo within ``spread`` (a share) of ``qpm`` at which the onsets sit best on one
    steady grid of eighth notes, refined by a least-squares line through the onsets near it.

    A gap-based estimate is a few per cent off, and a grid a few per cent off drifts a whole
    step in a few bars. Each candidate eighth is scored by how the onsets' phases on it agree:
    the squared length of the mean of ``exp(2 pi i h t / eighth)``, summed over h = 1, 2, 3 (the
    grid, its sixteenths and its triplets), so that a tune of eighths, one of sixteenths and a
    jig all score at their own grid; the score is 1 per harmonic when every onset is on it. The
    best (unless it is at the edge of the window: no peak) is refined by fitting
    ``onset = origin + eighth * index`` to the onsets within a fifth of a step of its grid.
    """
    times = onsets - onsets[0]
    if len(times) < 8:
        return qpm
    eighth = 30.0 / qpm
    steps = eighth * np.linspace(1 - spread, 1 + spread, 641)  # (C,) 0.025% apart
    coherence = np.zeros(len(steps))
    for first in range(0, len(steps), 128):  # (c, N) at a time
        turns = times[None, :] / steps[first:first + 128, None]
        for harmonic in (1, 2, 3):  # the grid's halves and thirds count too
            phases = np.exp(2j * np.pi * harmonic * turns)
            coherence[first:first + 128] += np.abs(phases.mean(axis=1)) ** 2
    best = int(coherence.argmax())
    if not 8 <= best < len(steps) - 8:  # no peak inside the window: the estimate stays
        return qpm
    step = float(steps[best])
    for _ in range(2):
        phase = float(np.angle(np.exp(2j * np.pi * times / step).mean())) / (2 * np.pi) * step
        index = np.round((times - phase) / step)
        near = np.abs(times - phase - index * step) < 0.2 * step
        if near.sum() < 8 or np.ptp(index[near]) < 4:
            break
        slope = float(np.polyfit(index[near], times[near], 1)[0])
        if not abs(slope / step - 1) < 0.02:
            break
        step = slope
    return 30.0 / step


def _template(meter: Meter, slots: int) -> np.ndarray:
    """Metrical strength at each sixteenth of a bar: downbeat 1, the middle of a bar of an even
    number of beats 0.6, other beats 0.4, beat subdivisions (eighths) 0.2, the rest 0."""
    beat = Fraction(3, 2) if meter.compound else Fraction(4, meter.denominator)
    sub = beat / 3 if meter.compound else beat / 2
    beats = max(1, int(meter.bar_length / beat))
    out = np.zeros(slots)
    for slot in range(slots):
        position = Fraction(slot, 4)
        if position == 0:
            out[slot] = 1.0
        elif position % beat == 0:
            out[slot] = 0.6 if beats % 2 == 0 and position == meter.bar_length / 2 else 0.4
        elif position % sub == 0:
            out[slot] = 0.2
    return out


def _phase_scores(onsets: list[Fraction], weights: list[float], end: Fraction,
                  meter: Meter, velocities: list[int] | None = None) -> list[tuple[float, Fraction]]:
    """For each pickup (the first note at ``phase`` quarter notes into a bar, in sixteenths):
    the correlation between where the weight of the notes falls in the bar and the meter's
    strengths, with a bonus when the last note ends on a bar line and a small one for no pickup."""
    slots = int(meter.bar_length * 4)
    if slots < 2:
        return [(0.0, Fraction(0))]
    template = _template(meter, slots)
    # weight at each sixteenth from the first onset (notes off that grid do not count)
    sixteenths = [(onset * 4, w) for onset, w in zip(onsets, weights)]
    grid = [(int(q), w) for q, w in sixteenths if q.denominator == 1]
    slot_of = np.array([q for q, _ in grid], dtype=np.int64)
    weight = np.array([w for _, w in grid])
    loud = None
    if velocities is not None:
        loud = np.array([v for (q, _), v in zip(sixteenths, velocities) if q.denominator == 1],
                        dtype=float)
        if not len(loud) or loud.std() == 0:
            loud = None  # a straight performance: loudness says nothing
    out = []
    for shift in range(slots):
        where = (slot_of + shift) % slots
        profile = np.bincount(where, weights=weight, minlength=slots)
        score = float(np.corrcoef(profile, template)[0, 1]) if profile.std() > 0 else 0.0
        if loud is not None:
            # how loud notes are, on average, at each place in the bar
            counts = np.bincount(where, minlength=slots)
            mean = np.bincount(where, weights=loud, minlength=slots) / np.maximum(counts, 1)
            mean[counts == 0] = loud.mean()
            if mean.std() > 0:
                score = 0.5 * score + 0.5 * float(np.corrcoef(mean, template)[0, 1])
        phase = Fraction(shift, 4)
        if (end + phase) % meter.bar_length == 0:
            score += 0.1
        if shift == 0:
            score += 0.02
        out.append((score, phase))
    return out


def _best_phase(onsets, weights, end, meter: Meter, velocities=None) -> tuple[Fraction, float]:
    score, phase = max(_phase_scores(onsets, weights, end, meter, velocities),
                       key=lambda p: (p[0], -p[1]))
    return phase, score


def _weights(durations: list[Fraction], velocities: list[int]) -> list[float]:
    """A note's metrical weight: one for its onset, its length (capped at a half note), and
    how much louder than average it is."""
    mean_velocity = sum(velocities) / len(velocities) if velocities else 0
    return [1.0 + min(float(d), 2.0) + max(0.0, (v - mean_velocity) / 8.0)
            for d, v in zip(durations, velocities)]


def estimate_meter(notes: Sequence[PerformanceNote], qpm: float | None = None,
                   divisions: int = 4) -> Meter:
    """Choose among 2/4, 3/4, 4/4, 6/8, 9/8, 12/8 by the best pickup's strong-beat score."""
    qpm = qpm or estimate_tempo(notes)
    # (thirds of a beat, whole triplets or not, are left out of the meter's profile)
    grid = _quantise(notes, qpm, divisions, True, writable=False)
    if not grid:
        raise MidiError("no notes to estimate a meter from")
    onsets = [onset for onset, _, _, _, grace in grid if not grace]
    durations = [duration for _, duration, _, _, grace in grid if not grace]
    velocities = [velocity for _, _, _, velocity, grace in grid if not grace]
    end = max(o + d for o, d in zip(onsets, durations))
    weights = _weights(durations, velocities)
    scored = []
    for (numerator, denominator), prior in _METER_PRIOR.items():
        meter = Meter(numerator, denominator)
        _, score = _best_phase(onsets, weights, end, meter, velocities)
        scored.append((score + prior, meter))
    return max(scored, key=lambda pair: pair[0])[1]


def _tonic_name(pitch_class: int, mode: str) -> str:
    names = {pitch_class_name(pitch_class), pitch_class_name(pitch_class, prefer_flats=True)}
    return min(sorted(names), key=lambda name: (
        sum(abs(a) for a in key_signature(name, mode).values()), "b" in name))


def estimate_key(notes: Sequence[PerformanceNote] | Sequence[Note]) -> Key:
    """Krumhansl-Kessler key finding over maj, min, dor and mix (see the module docstring)."""
    histogram = np.zeros(12)
    timed = []
    for note in notes:
        if isinstance(note, PerformanceNote):
            length, start = note.end - note.start, note.start
        else:
            length, start = float(note.duration), float(note.onset)
        histogram[note.pitch % 12] += max(length, 1e-3)
        timed.append((start, note.pitch))
    if not histogram.any():
        return Key("C", "maj")
    first_pitch = min(timed)[1]  # the lowest of the first onset
    last_start = max(start for start, _ in timed)
    last_pitch = min(pitch for start, pitch in timed if start == last_start)
    present = histogram > 0.01 * histogram.sum()
    best = None
    for mode, profile in _PROFILES.items():
        scale = np.array(_SCALES[mode])
        for tonic in range(12):
            rotated = np.roll(profile, tonic)
            r = float(np.corrcoef(histogram, rotated)[0, 1]) if histogram.std() > 0 else 0.0
            in_scale = np.roll(scale, tonic)
            r -= _OUT_OF_SCALE_PENALTY * int(np.sum(present & ~in_scale))
            if last_pitch % 12 == tonic:
                r += _FINAL_TONIC_BONUS
            if first_pitch % 12 == tonic:
                r += _FIRST_TONIC_BONUS
            r += _MODE_PRIOR[mode]
            if best is None or r > best[0]:
                best = (r, tonic, mode)
    _, tonic, mode = best
    return Key(_tonic_name(tonic, mode), mode)


# ---------------------------------------------------------------------------------------------
# Quantisation
# ---------------------------------------------------------------------------------------------

def _triplet_beats(positions: list[float], divisions: int) -> set[int]:
    """The beats (quarter notes, by index) whose onsets sit on thirds of the beat (sixths from 8
    divisions up) rather than on the grid: an onset clearly off the grid, and the
    triplet grid fitting the beat's onsets with a quarter of the grid's squared error."""
    thirds = 3 * divisions // 2
    by_beat: dict[int, list[float]] = {}
    for value in positions:
        by_beat.setdefault(math.floor(value + 0.5 / divisions), []).append(value)
    out = set()
    for beat, values in by_beat.items():
        duple = [abs(v - round(v * divisions) / divisions) for v in values]
        triple = [abs(v - round(v * thirds) / thirds) for v in values]
        off_grid = sum(d > 0.3 / divisions for d in duple)
        if off_grid >= 1 and sum(t * t for t in triple) < 0.25 * sum(d * d for d in duple):
            out.add(beat)
    return out


def _snap(value: float, divisions: int, triplet_beats: set[int], within: bool = True) -> Fraction:
    """Round a time in quarter notes to the grid, or, in a triplet beat, to the triplet grid;
    ``within``: kept within the beat, so that a third of a beat lies in the beat it came from."""
    if triplet_beats:
        beat = math.floor(value + 0.5 / divisions)
        if beat in triplet_beats:
            thirds = 3 * divisions // 2
            snapped = Fraction(round(value * thirds), thirds)
            return min(max(snapped, Fraction(beat)), Fraction(beat + 1)) if within else snapped
    return Fraction(round(value * divisions), divisions)


def _is_binary(value: Fraction) -> bool:
    """Whether a time in quarter notes is a power-of-two fraction (on a duple grid)."""
    return value.denominator & (value.denominator - 1) == 0


def _ragged_triplets(placed: list[tuple[Fraction, Fraction, int, int, bool]],
                     divisions: int) -> set[int]:
    """The beats whose thirds do not make whole tuplets, as the ABC writer will see them.

    The voice is taken as the writer writes it: notes that start together last as long as the
    shortest, a note is cut at the next onset, a gap is a rest. From the first onset (which,
    like the last end, must not fall on a third), the voice's notes and rests go from one point
    of the duple grid to the next; where they pass through thirds on the way, the stretch must
    be a whole triplet: a triplet eighth's worth (three steps of the triplet grid), or twice,
    four or eight times that, up to a half note, so that ``(3`` writes it. Returns the beats
    (by index, ``floor`` of the third) of the thirds where this fails.
    """
    shortest: dict[Fraction, Fraction] = {}
    for onset, duration, _, _, grace in placed:
        if not grace:
            shortest[onset] = min(shortest.get(onset, duration), duration)
    onsets = sorted(shortest)
    if not onsets:
        return set()
    points = []  # where the voice's notes and rests start, then its end
    for k, onset in enumerate(onsets):
        points.append(onset)
        end = onset + shortest[onset]
        if k + 1 < len(onsets) and end < onsets[k + 1]:
            points.append(end)  # a rest follows
    points.append(max(onset + shortest[onset] for onset in onsets))
    whole = set()
    length = Fraction(2, divisions)
    while length <= 2:
        whole.add(length)
        length *= 2
    ragged = {math.floor(point) for point in (points[0], points[-1]) if not _is_binary(point)}
    run_start, inside = points[0], []
    for point in points[1:]:
        if not _is_binary(point):
            inside.append(point)
            continue
        if inside and point - run_start not in whole:
            ragged.update(math.floor(third) for third in inside)
        run_start, inside = point, []
    ragged.update(math.floor(third) for third in inside)  # (a voice that ends on a third)
    return ragged


def _grace_flags(notes: list[PerformanceNote], step_seconds: float) -> list[bool]:
    """Grace notes: much shorter than a grid step, leading into a longer note within a step
    (a group of short notes chains on to the note it leads into)."""
    is_grace = [False] * len(notes)
    short = [n.end - n.start <= 0.55 * step_seconds for n in notes]
    for i, note in enumerate(notes):
        if not short[i]:
            continue
        last = note.start
        for j in range(i + 1, len(notes)):
            later = notes[j]
            if later.start > last + 1.5 * step_seconds:
                break
            if short[j]:
                last = max(last, later.start)
            elif later.start > note.start + 1e-6:
                is_grace[i] = True
                break
    return is_grace


def _quantise(notes: Sequence[PerformanceNote], qpm: float, divisions: int, triplets: bool,
              origin: float | None = None, writable: bool = True,
              ) -> list[tuple[Fraction, Fraction, int, int, bool]]:
    """Notes -> (onset, duration, pitch, velocity, grace) in quarter notes, from the first onset,
    or, given ``origin`` (seconds, a point of the grid such as a downbeat), from there.

    Onsets and ends of notes in a triplet beat go to the triplet grid. ``writable``: the grid
    the ABC is written from: thirds only where the beat then holds whole tuplets
    (``_ragged_triplets``), other beats staying on the duple grid, so that every length can be
    written as ABC players read it; and ends before a rest or at the end rounded for a release
    (see ``_place``). Estimates take the plain grid (False).
    """
    if not notes:
        return []
    notes = sorted(notes, key=lambda n: (n.start, n.pitch))
    seconds_per_quarter = 60.0 / qpm
    step_seconds = seconds_per_quarter / divisions
    is_grace = _grace_flags(notes, step_seconds)
    main = [n for n, g in zip(notes, is_grace) if not g]
    if not main:  # nothing but short notes: they are the music, not ornaments
        main, is_grace = notes, [False] * len(notes)
    # Follow the tempo: the grid is refitted (least squares over the last 24 onsets that sit
    # clearly on it) as the performance goes, so a tempo a little off, or drifting, does not
    # pile up an error. Each note's place is measured against the grid of its moment. A first
    # pass finds where the grid starts and its first tempo; the second measures.
    def follow(origin: float, spq: float, tolerance: float) -> tuple[list, list]:
        slowest, fastest = 1.1 * spq, 0.9 * spq
        history: list[tuple[float, float]] = []
        places = []
        for note in main:
            position = (note.start - origin) / spq
            places.append((position, (note.end - origin) / spq))
            on_grid = round(position * divisions) / divisions
            if abs(position - on_grid) < tolerance and (not history or history[-1][0] < on_grid):
                history.append((on_grid, note.start))
                recent = history[-24:]
                if len(recent) >= 4 and recent[-1][0] - recent[0][0] >= 2:
                    slope, intercept = np.polyfit([h[0] for h in recent], [h[1] for h in recent], 1)
                    if fastest <= slope <= slowest:
                        spq, origin = float(slope), float(intercept)
        return history, places

    # (the first note's own timing error must not shift the whole grid, hence the fitted origin)
    spq = seconds_per_quarter
    start = main[0].start if origin is None else origin
    history, raw = follow(start, spq, 0.45 / divisions)
    first = history[:24]
    if len(first) >= 4 and first[-1][0] - first[0][0] >= 2:
        slope, intercept = np.polyfit([h[0] for h in first], [h[1] for h in first], 1)
        if 0.9 * spq <= slope <= 1.1 * spq:
            start, spq = float(intercept), float(slope)
    history, raw = follow(start, spq, 0.25 / divisions)
    triplet_beats = _triplet_beats([on for on, _ in raw], divisions) if triplets else set()
    while True:
        out = _place(notes, is_grace, main, raw, divisions, triplet_beats, seconds_per_quarter / 4,
                     writable)
        ragged = _ragged_triplets(out, divisions) & triplet_beats if writable else set()
        if not ragged:
            break
        triplet_beats -= ragged  # back to the duple grid, and place again
    if origin is None and out and out[0][0] < 0:  # the first note came early: before the grid
        shift = -out[0][0]
        out = [(onset + shift, *rest) for onset, *rest in out]
    return out


def _place(notes: list[PerformanceNote], is_grace: list[bool], main: list[PerformanceNote],
           raw: list[tuple[float, float]], divisions: int, triplet_beats: set[int],
           sixteenth_seconds: float, writable: bool) -> list[tuple[Fraction, Fraction, int, int, bool]]:
    """The notes on the grid: main notes from their measured places (``raw``, quarter notes),
    each grace note at the first main onset after it. ``writable``: thirds kept within their
    beat (``_snap``), and ends rounded for a release."""
    seconds_at: dict[Fraction, float] = {}  # where each grid onset was played
    quantised = []
    for note, (on, off) in zip(main, raw):
        onset = _snap(on, divisions, triplet_beats, writable)
        end = _snap(off, divisions, triplet_beats, writable)
        quantised.append([onset, end, note])
        seconds_at.setdefault(onset, note.start)
    distinct = sorted(seconds_at)
    # the first grace of each group, to hold the note before it up to the main note
    grace_starts = sorted(n.start for n, g in zip(notes, is_grace) if g)
    for entry, (_, off) in zip(quantised, raw):
        onset, end, note = entry
        position = bisect_right(distinct, onset)
        following = distinct[position] if position < len(distinct) else None
        if writable and _is_binary(end):
            # released a little early, as players do (see below), even before a rest or at the
            # end: the end is rounded as if held four tenths of a grid step longer
            later = Fraction(round(off * divisions + 0.4), divisions)
            if following is None or later <= following:
                end = max(end, later)
        if end <= onset:
            end = onset + Fraction(1, divisions)
        if following is not None and end < following:
            following_seconds = seconds_at[following]
            # cut short by the grace notes of the next note: it lasts up to that note
            k = bisect_left(grace_starts, note.end - 0.02)
            cut_by_graces = k < len(grace_starts) and grace_starts[k] <= note.end + 0.02
            # released a little early, as players do: not a rest
            released = following_seconds - note.end < 0.6 * sixteenth_seconds
            if cut_by_graces or released:
                end = following
        entry[1] = end
    out = [(onset, end - onset, note.pitch, note.velocity, False) for onset, end, note in quantised]
    # each grace goes to the first main onset after it
    starts_seconds = [seconds_at[o] for o in distinct]
    for note, grace in zip(notes, is_grace):
        if grace:
            k = int(np.searchsorted(starts_seconds, note.start + 1e-6))
            if k < len(distinct):
                out.append((distinct[k], Fraction(0), note.pitch, note.velocity, True))
    out.sort(key=lambda item: (item[0], not item[4], item[2]))
    return out


# ---------------------------------------------------------------------------------------------
# Transcription
# ---------------------------------------------------------------------------------------------

def transcribe(notes: Sequence[PerformanceNote], *, meter: Meter | str | None = None,
               qpm: float | None = None, key: Key | str | None = None,
               unit: Fraction | None = None, divisions: int = 4, triplets: bool = True,
               downbeat: float | None = None, title: str = "Transcription",
               rhythm: str = "") -> Tune:
    """Quantise a performance into a Tune (one voice) with bar lines, meter and key.

    Parameters
    ----------
    notes
        The performance, in seconds.
    meter, qpm, key
        Given values (``"6/8"``, ``Meter``; quarter notes per minute; ``"Ador"``, ``Key``), or
        None to estimate them.
    unit
        L: for the ABC (default 1/8).
    divisions
        Grid steps per quarter note (4: sixteenths).
    triplets
        Allow triplet eighths where they fit much better than the grid (and make whole
        triplets there; other thirds of a beat go back to the grid).
    downbeat
        Where a bar begins, in seconds (a MIDI file's time 0, when the file says its meter):
        the grid and the bar lines count from there, and the notes before the first bar line
        are a pickup (silence before the first note is not written). None: the grid starts at
        the first note, and the bar lines go where the notes' accents fit the meter best.
    title, rhythm
        T: and R: of the Tune.

    Raises MidiError when there are no notes or more than :data:`folkrnn.limits.MAX_TRANSCRIBE_NOTES`,
    OptionError for a bad option.
    """
    notes = [n for n in notes]
    if not notes:
        raise MidiError("no notes to transcribe")
    if len(notes) > MAX_TRANSCRIBE_NOTES:  # before any work (folkrnn.limits)
        raise MidiError(f"{len(notes):,} notes: transcribe takes at most {MAX_TRANSCRIBE_NOTES:,}; "
                        "cut the file into parts")
    if divisions not in (1, 2, 4, 8, 16):
        raise OptionError("divisions must be 1, 2, 4, 8 or 16 per quarter note")
    if qpm is not None and not 10 <= qpm <= 1000:
        raise OptionError(f"tempo {qpm} is outside 10..1000 quarter notes per minute")
    qpm = qpm or estimate_tempo(notes)
    meter = _as_meter(meter) or estimate_meter(notes, qpm, divisions)
    grid = _quantise(notes, qpm, divisions, triplets, origin=downbeat)
    phase = None
    if downbeat is not None:  # the first note's place in its bar, then the notes from there
        first = grid[0][0]
        phase = first % meter.bar_length if not meter.free else Fraction(0)
        grid = [(onset - first, *rest) for onset, *rest in grid]
    key = _as_key(key) or estimate_key(notes)
    tune_notes = [Note(pitch, onset, duration, grace) for onset, duration, pitch, _, grace in grid]

    bars: list[BarLine] = []
    end = max(n.end for n in tune_notes)
    if not meter.free:
        if phase is None:
            main = [(n.onset, n.duration) for n in tune_notes if not n.grace]
            velocities = [v for _, _, _, v, g in grid if not g]
            weights = _weights([d for _, d in main], velocities)
            phase, _ = _best_phase([o for o, _ in main], weights, end, meter, velocities)
        bar = meter.bar_length
        position = (bar - phase) % bar or bar
        index = 0
        while position < end:
            while index < len(tune_notes) and tune_notes[index].onset < position:
                index += 1
            bars.append(BarLine(position, "|", index))
            position += bar
        bars.append(BarLine(end, "|]", len(tune_notes)))
    fields = [("X", "1"), ("T", title)]
    if rhythm:
        fields.append(("R", rhythm))
    fields += [("M", str(meter)), ("L", "1/8"), ("Q", f"1/4={round(qpm)}"), ("K", str(key))]
    return Tune(fields=fields, meter=meter, unit=unit or Fraction(1, 8), key=key,
                notes=tune_notes, bars=bars)


def transcribe_midi(path: str | PathLike, *, program: int | None = None,
                    instrument: str | None = None, meter: Meter | str | None = None,
                    qpm: float | None = None, key: Key | str | None = None,
                    **options) -> Tune:
    """Transcribe a MIDI file. Tempo, meter and key not given come from the file's own tempo,
    time and key signatures where it has them, else are estimated. Other options as
    ``transcribe``; the title defaults to the file name.

    A file with a time signature counts its bars from time 0, as MIDI does: when its first note
    starts later (a pickup after a silence, as ``folkrnn perform`` writes one), time 0 is the
    downbeat the bar lines count from. A first note at time 0 may be a pickup written without
    its silence, so there the bar lines are estimated as for a file without one.
    """
    from pathlib import Path

    notes = read_performance(path, program=program, instrument=instrument)
    info = read_midi_info(path)
    options.setdefault("title", Path(path).stem)
    if info.meter is not None and notes and min(n.start for n in notes) >= _SILENT_START:
        options.setdefault("downbeat", 0.0)
    try:
        return transcribe(notes, meter=meter or info.meter, qpm=qpm or info.qpm,
                          key=key or info.key, **options)
    except MidiError as error:  # "too few notes to estimate a tempo" says which file
        raise error.located(file=str(path)) from None


def _comparable(notes: Sequence[Note]) -> list[tuple[Fraction, int, Fraction, bool]]:
    main = sorted({n.onset for n in notes if not n.grace})
    out = []
    for note in notes:
        onset = note.onset
        if note.grace:  # a grace belongs to the main note it leads into
            k = bisect_left(main, onset)
            onset = main[k] if k < len(main) else onset
        out.append((onset, note.pitch, note.duration, note.grace))
    out.sort(key=lambda item: (item[0], not item[3], item[1], item[2]))
    first = out[0][0] if out else Fraction(0)
    return [(onset - first, pitch, duration, grace) for onset, pitch, duration, grace in out]


def same_notes(expected: Sequence[Note], got: Sequence[Note]) -> bool:
    """Whether two note lists agree: pitch, onset (from the first note) and duration in quarter
    notes, grace or not. Grace notes count at the main note they lead into, and notes that
    start together in any order."""
    return _comparable(expected) == _comparable(got)


def performance_to_abc(notes: Sequence[PerformanceNote], **options) -> str:
    """``transcribe`` then ``tune_to_abc``: a performance as ABC text."""
    return tune_to_abc(transcribe(notes, **options))
