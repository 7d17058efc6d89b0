"""How a performance plays: polyphony, long notes, density, range, onset regularity and whether it
transcribes, each a small pure function of a list of notes; and sampled performances next to real ones.

A performance is a list of :class:`folkrnn.events.PerformanceNote` (pitch, start and end in
seconds, velocity), or an ``(N, 3)`` or ``(N, 4)`` array with those columns. Notes of no length
are left out everywhere. The figures, one performance at a time:

- **sounding at once** (:func:`polyphony`): the number of notes sounding, averaged over the time
  when at least one sounds (1.0: one note at a time, like a fiddle or a flute), and its maximum.
  A note ending when the next starts does not overlap it;
- **long notes** (:func:`long_notes`): notes longer than 2 s (the real tunes, played at dance
  tempo, have almost none);
- **notes per second** (:func:`notes_per_second`): notes over the time from the first onset to
  the last end;
- **pitch range** (:func:`pitch_range`): semitones from the lowest to the highest note;
- **onset regularity** (:func:`onset_regularity`, the headline): the peak, at lags of 0.1-1.0 s,
  of the autocorrelation of the onsets (see its docstring). 1 is a metronome, random onsets
  score about 0.1 at any density, the default corpus's tunes as its MIDI corpus plays them
  about 0.65. :func:`grid_fit` is a second, plainer reading of the same thing: the share of
  onsets within 30 ms of the best steady grid. The autocorrelation is the headline because its
  floor stays put: random onsets' best grid share climbs from 0.35 to 0.5 as they thin out (the
  best of thousands of grids catches some by chance), their autocorrelation peak stays near 0.1;
- **transcription** (:func:`check_transcription`): ``folkrnn.transcribe.transcribe`` turns the
  notes into a Tune; its ABC (``tune_to_abc``) must pass the validator (``folkrnn.validate``:
  syntax, and every bar the length of the meter) in a steady meter (not free), and abc2midi must
  read it with no error and no bar-length or repeat warning. A piece with controls (``TEMPO_120``
  ... open it, see ``folkrnn.events``) is transcribed as its MIDI file is: with the tempo, meter
  and key they give and time 0 a downbeat (the ``hints``); one without has all three estimated.

:func:`performance_table` puts the figures of sampled and real performances side by side with the
targets of the performance issue (:data:`TARGETS`); :func:`real_performances` takes the real ones
from a MIDI corpus (``folkrnn.corpus.build_corpus(encoding="midi")``: its ABC tunes as played for
training), with their controls (:func:`names_to_controls`; :func:`control_counts` tallies them);
:func:`plot_piano_rolls` draws performances as piano rolls (matplotlib, imported only there).
NumPy only: no torch.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from folkrnn.abc.writer import tune_to_abc
from folkrnn.errors import FolkError
from folkrnn.events import CONTROLS, EventConfig, PerformanceNote, events_to_notes
from folkrnn.perform import file_signatures
from folkrnn.reference import abc2midi_available, abc2midi_check
from folkrnn.transcribe import transcribe
from folkrnn.validate import validate_tune

__all__ = [
    "note_array", "crop", "polyphony", "long_notes", "notes_per_second", "pitch_range",
    "onsets", "onset_regularity", "grid_fit", "Transcription", "check_transcription",
    "performance_figures", "performance_table", "ROWS", "TARGETS", "real_performances",
    "format_value", "table_lines", "plot_piano_rolls", "LONG_NOTE_SECONDS", "names_to_controls",
    "control_counts",
]

LONG_NOTE_SECONDS = 2.0  # a note longer than this counts as a long note
_MERGE_SECONDS = 0.02  # onsets closer than this are one onset (a chord, a spread chord)
_MIN_ONSETS = 8  # fewer onsets than this: no regularity figure (NaN)

# The rows of the table, in order: key -> label.
ROWS: dict[str, str] = {
    "mean_sounding": "mean notes sounding at once (while any sounds)",
    "max_sounding_median": "most notes at once, median per piece",
    "long_note_share": f"notes longer than {LONG_NOTE_SECONDS:g} s",
    "notes_per_second_median": "notes per second, median",
    "pitch_range_median": "pitch range, median (semitones)",
    "onset_regularity_median": "onset regularity, median (autocorrelation peak)",
    "grid_fit_median": "onsets within 30 ms of a steady grid, median",
    "transcribed_share": "performances that transcribe to valid, abc2midi-clean ABC",
}

# The performance issue's targets, as text for people; performance_table checks each.
TARGETS: dict[str, str] = {
    "mean_sounding": "<= 1.05",
    "long_note_share": "<= 0.5%",
    "notes_per_second_median": "within the real IQR",
    "pitch_range_median": "within 3 semitones of real",
    "onset_regularity_median": "within 20% of real",
    "transcribed_share": ">= 90%",
}


# ---------------------------------------------------------------------------------------------
# Notes


def note_array(notes) -> np.ndarray:
    """(N, 4) float array of pitch, start, end, velocity, sorted by start then pitch, notes of no
    length left out. ``notes``: PerformanceNotes (anything with ``pitch``, ``start``, ``end``,
    ``velocity``) or an (N, 3) or (N, 4) array (velocity 100 when absent)."""
    if isinstance(notes, np.ndarray):
        array = np.asarray(notes, float)
        if not array.size:
            array = np.zeros((0, 4))
        if array.ndim != 2 or array.shape[1] not in (3, 4):
            raise ValueError(f"a note array has 3 or 4 columns, not the shape {array.shape}")
        if array.shape[1] == 3:
            array = np.column_stack([array, np.full(len(array), 100.0)])
    else:
        notes = list(notes)
        array = np.array([(n.pitch, n.start, n.end, getattr(n, "velocity", 100)) for n in notes],
                         float).reshape(-1, 4)
    array = array[array[:, 2] > array[:, 1]]
    return array[np.lexsort((array[:, 0], array[:, 1]))]


def crop(notes, seconds: float):
    """The notes that start before ``seconds``, ended there at the latest (an array as
    :func:`note_array`). Real performances are cropped to the length of the sampled ones, so that
    length-dependent figures (pitch range) compare like with like."""
    array = note_array(notes)
    array = array[array[:, 1] < seconds]
    array[:, 2] = np.minimum(array[:, 2], seconds)
    return array[array[:, 2] > array[:, 1]]


def polyphony(notes) -> tuple[float, int, float]:
    """(mean notes sounding while any sounds, most notes sounding at once, seconds when any sounds).

    The mean is time-weighted: the summed note lengths over the time when at least one note
    sounds. A note that ends as another starts does not overlap it. (nan, 0, 0.0) for no notes.

    >>> from folkrnn.events import PerformanceNote as N
    >>> polyphony([N(60, 0, 1), N(64, 0.5, 1.5)])  # 0.5 s of two notes in 1.5 s of sound
    (1.3333333333333333, 2, 1.5)
    """
    array = note_array(notes)
    if not len(array):
        return math.nan, 0, 0.0
    times = np.concatenate([array[:, 1], array[:, 2]])
    steps = np.concatenate([np.ones(len(array)), -np.ones(len(array))])
    order = np.lexsort((steps, times))  # at one instant the ends (-1) come before the starts
    times, steps = times[order], steps[order]
    sounding = np.cumsum(steps)[:-1]  # notes sounding from times[k] to times[k + 1]
    spans = np.diff(times)
    heard = float(spans[sounding > 0].sum())
    mean = float((sounding * spans).sum() / heard) if heard > 0 else math.nan
    return mean, int(sounding.max()), heard


def long_notes(notes, threshold: float = LONG_NOTE_SECONDS) -> tuple[int, int]:
    """(notes longer than ``threshold`` seconds, notes)."""
    array = note_array(notes)
    return int((array[:, 2] - array[:, 1] > threshold).sum()), len(array)


def notes_per_second(notes) -> float:
    """Notes over the seconds from the first onset to the last end; nan for no notes."""
    array = note_array(notes)
    if not len(array):
        return math.nan
    span = float(array[:, 2].max() - array[:, 1].min())
    return len(array) / span if span > 0 else math.nan


def pitch_range(notes) -> int:
    """Semitones from the lowest to the highest pitch; 0 for no notes."""
    array = note_array(notes)
    return int(array[:, 0].max() - array[:, 0].min()) if len(array) else 0


def onsets(notes, merge: float = _MERGE_SECONDS) -> np.ndarray:
    """The distinct onsets, sorted: an onset within ``merge`` seconds of the last one kept joins it
    (the notes of a chord start once)."""
    starts = np.unique(note_array(notes)[:, 1])
    if not len(starts):
        return starts
    kept = [starts[0]]
    for start in starts[1:]:
        if start - kept[-1] > merge:
            kept.append(start)
    return np.asarray(kept)


def onset_regularity(notes, *, lags: tuple[float, float] = (0.1, 1.0), sigma: float = 0.015,
                     rate: int = 200) -> float:
    """How steady the pulse of the onsets is: the peak of their autocorrelation, in [-1, 1].

    The distinct onsets (:func:`onsets`) become a signal sampled ``rate`` times a second, a
    Gaussian of ``sigma`` seconds at each onset (the timing slack); its mean is removed and its
    autocorrelation, each lag's products averaged over the time the signal and its shifted copy
    overlap, is divided by its value at lag 0. The result is the highest value at lags from
    ``lags[0]`` to ``lags[1]`` seconds (at most half the piece): a pulse from a sixteenth note at a
    fast reel to a slow beat.

    A metronome scores about 0.87 (its onsets jittered by 8 ms), steady music with varied rhythms
    about 0.5 (not every beat has an onset), random onsets about 0.1 at any density, 1 to 10 a
    second. NaN for fewer than 8 onsets.
    """
    times = onsets(notes)
    if len(times) < _MIN_ONSETS:
        return math.nan
    times = times - times[0]
    width = int(math.ceil(4 * sigma * rate))
    size = int(round(times[-1] * rate)) + 2 * width + 1
    signal = np.zeros(size)
    np.add.at(signal, np.round(times * rate).astype(np.int64) + width, 1.0)
    kernel = np.exp(-0.5 * (np.arange(-width, width + 1) / (sigma * rate)) ** 2)
    signal = np.convolve(signal, kernel, mode="same")
    signal -= signal.mean()
    spectrum = np.fft.rfft(signal, 2 * size)
    correlation = np.fft.irfft(spectrum * np.conj(spectrum))[:size]  # (size,) lag 0, 1, ...
    correlation /= size - np.arange(size)  # the mean product over the overlap
    if correlation[0] <= 0:
        return math.nan
    low = max(1, int(round(lags[0] * rate)))
    high = min(int(round(lags[1] * rate)), size // 2)
    if high < low:
        return math.nan
    return float(correlation[low:high + 1].max() / correlation[0])


def grid_fit(notes, *, tolerance: float = 0.03, periods: tuple[float, float] = (0.1, 1.0),
             max_periods: int = 6000) -> tuple[float, float]:
    """(share of onsets within ``tolerance`` of the best steady grid, its period in seconds).

    The grid is every multiple of a period plus a phase; periods from ``periods[0]`` to
    ``periods[1]`` seconds are tried, spaced so that neighbours drift apart by at most half the
    tolerance over the piece (at most ``max_periods`` of them), and every phase. For a short
    period the tolerance shrinks to an eighth of it, so that no grid is denser than a quarter of
    the time line. A metronome scores 1, the default corpus's tunes as played about 0.95; random
    onsets score about 0.35 (10 a second) to 0.5 (two a second), since the best of many grids
    catches some by chance. (nan, nan) for fewer than 8 onsets.
    """
    times = onsets(notes)
    count = len(times)
    if count < _MIN_ONSETS:
        return math.nan, math.nan
    span = max(float(times[-1] - times[0]), 1.0)
    ratio = tolerance / (2 * span)
    number = min(max_periods, int(math.log(periods[1] / periods[0]) / math.log1p(ratio)) + 1)
    candidates = np.geomspace(periods[0], periods[1], number)
    best_share, best_period = -1.0, math.nan
    for first in range(0, number, 512):
        period = candidates[first:first + 512]  # (P,)
        slack = np.minimum(tolerance, period / 8)  # (P,)
        phase = np.sort(times[None, :] % period[:, None], axis=1)  # (P, n)
        wrapped = np.concatenate([phase, phase + period[:, None]], axis=1)  # (P, 2n) once around
        offset = np.arange(len(period))[:, None] * 3.0 * periods[1]  # keeps the rows apart
        flat = (wrapped + offset).ravel()
        ends = np.searchsorted(flat, (phase + offset + 2 * slack[:, None]).ravel(), side="right")
        begins = (np.arange(len(period))[:, None] * 2 * count + np.arange(count)[None, :]).ravel()
        hits = (ends - begins).reshape(len(period), count).max(axis=1)  # (P,) most in one window
        k = int(hits.argmax())
        if hits[k] / count > best_share:
            best_share, best_period = hits[k] / count, float(period[k])
    return float(best_share), best_period


# ---------------------------------------------------------------------------------------------
# Transcription


# abc2midi -c messages that mean the ABC does not play as written (grace-note notes do not)
_ABC2MIDI_FAULT = re.compile(r"error|time units|repeat|ending|\|:", re.IGNORECASE)


@dataclass
class Transcription:
    """What became of one performance transcribed to ABC."""

    transcribed: bool = False  # folkrnn.transcribe made a Tune of it
    valid: bool = False  # the validator passed its ABC
    steady_meter: bool = False  # a meter that is not free, every bar its length (no bar errors)
    abc2midi_clean: bool | None = None  # abc2midi -c found nothing wrong (None: not checked)
    meter: str | None = None  # the meter (the hints', else estimated)
    qpm: float | None = None  # the tempo, quarter notes per minute (the hints', else estimated)
    hinted: bool = False  # tempo, meter (and key, where known) came from the piece's controls, time 0 a downbeat
    problems: tuple[str, ...] = ()  # why not: validator error codes, abc2midi lines, or the failure
    abc: str = ""  # the ABC text

    @property
    def ok(self) -> bool:
        """Transcribed, valid, in a steady meter and (where checked) clean in abc2midi."""
        return self.transcribed and self.valid and self.steady_meter and self.abc2midi_clean is not False

    def to_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}


def check_transcription(notes, *, hints: dict | None = None, abc2midi: bool = True) -> Transcription:
    """Transcribe a performance and check the ABC it makes.

    ``hints``: the piece's controls (``{"tempo": 120, "meter": "6/8", "key": 2, ...}``, as
    ``Performance.controls`` or :func:`names_to_controls` give them). With a tempo and a meter the
    piece is transcribed as ``folkrnn perform`` writes its MIDI file and ``folkrnn transcribe``
    reads it back: that tempo, meter and key (``folkrnn.perform.file_signatures``), time 0 a
    downbeat. Without (None, or no tempo or meter) tempo, meter and key are estimated.
    ``abc2midi``: also run ``abc2midi -c`` on it (skipped when abc2midi is not installed:
    ``abc2midi_clean`` stays None). Never raises for a bad performance: a transcriber that fails
    on one, even by a bug, makes it a failure, named in ``problems``.
    """
    array = note_array(notes)
    result = Transcription()
    given: dict = {}
    if hints and hints.get("tempo") and hints.get("meter"):
        given = {"downbeat": 0.0, **file_signatures(hints)}  # qpm, meter and (where known) key
        result.hinted = True
    try:
        performance = [PerformanceNote(int(p), float(s), float(e), int(v)) for p, s, e, v in array]
        tune = transcribe(performance, title="Performance", **given)
        result.abc = tune_to_abc(tune)
    except FolkError as error:
        result.problems = (f"transcribe: {error}",)
        return result
    except Exception as error:  # noqa: BLE001 - a transcriber bug: counted and named, not fatal
        result.problems = (f"transcribe: bug: {type(error).__name__}: {error}",)
        return result
    result.transcribed = True
    result.meter = str(tune.meter)
    qpm = next((value for name, value in tune.fields if name == "Q"), None)
    result.qpm = float(qpm.split("=")[-1]) if qpm else None
    report = validate_tune(result.abc)
    problems = [f"validator: {issue.code}" for issue in report.errors]
    result.valid = report.valid
    result.steady_meter = not tune.meter.free and not any(
        issue.code.startswith("bar-") for issue in report.errors)
    if abc2midi:
        if abc2midi_available():
            try:
                faults = [line for line in abc2midi_check(result.abc) if _ABC2MIDI_FAULT.search(line)]
            except FolkError as error:  # abc2midi timed out or vanished
                faults = [f"abc2midi: {error}"]
            result.abc2midi_clean = not faults
            problems += [f"abc2midi: {line}" for line in faults]
    result.problems = tuple(problems)
    return result


# ---------------------------------------------------------------------------------------------
# Many performances


def _median(values) -> float | None:
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return float(np.median(values)) if values else None


def _rounded(value, digits: int = 4):
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else round(value, digits)


def performance_figures(performances: Sequence, *, hints: Sequence[dict | None] | None = None,
                        transcribe: bool = True, abc2midi: bool = True,
                        on_piece: Callable[[], None] | None = None) -> dict:
    """Every figure of :data:`ROWS` over a list of performances (each a note list or array).

    Pooled figures: ``mean_sounding`` (all pieces' note time over all their sounding time) and
    ``long_note_share`` (of all notes). Per-piece figures are summarised by their median (and, for
    notes per second, the quartiles). ``transcribe``: also transcribe each piece
    (:func:`check_transcription`; slow-ish, about 30 ms a piece), with its ``hints`` (the pieces'
    controls, one per piece, or None) where given; else ``transcribed_share`` is None.
    ``on_piece`` is called after each piece.
    """
    if hints is not None and len(hints) != len(performances):
        raise ValueError(f"{len(hints)} hints for {len(performances)} performances")
    paired = zip([note_array(piece) for piece in performances], hints or [None] * len(performances))
    paired = [(array, hint) for array, hint in paired if len(array)]
    arrays = [array for array, _ in paired]
    note_time = heard = 0.0
    most, long_count, note_count = [], 0, 0
    density, ranges, regularity, grid = [], [], [], []
    checks: list[Transcription] = []
    for array, hint in paired:
        mean, peak, sounding = polyphony(array)
        note_time += float((array[:, 2] - array[:, 1]).sum())
        heard += sounding
        most.append(peak)
        longs, total = long_notes(array)
        long_count, note_count = long_count + longs, note_count + total
        density.append(notes_per_second(array))
        ranges.append(pitch_range(array))
        regularity.append(onset_regularity(array))
        grid.append(grid_fit(array)[0])
        if transcribe:
            checks.append(check_transcription(array, hints=hint, abc2midi=abc2midi))
        if on_piece is not None:
            on_piece()
    quartiles = np.percentile(density, [25, 75]).tolist() if density else [None, None]
    figures = {
        "pieces": len(performances), "pieces_with_notes": len(arrays), "notes": note_count,
        "mean_sounding": _rounded(note_time / heard if heard else None),
        "max_sounding_median": _rounded(_median(most)),
        "long_notes": long_count,
        "long_note_share": _rounded(long_count / note_count if note_count else None, 5),
        "notes_per_second_median": _rounded(_median(density), 3),
        "notes_per_second_iqr": [_rounded(q, 3) for q in quartiles],
        "pitch_range_median": _rounded(_median(ranges), 1),
        "onset_regularity_median": _rounded(_median(regularity)),
        "grid_fit_median": _rounded(_median(grid)),
        "transcribed_share": None,
    }
    if transcribe:
        ok = sum(check.ok for check in checks)
        figures.update({
            # a piece with no notes cannot be transcribed: it counts against the share
            "transcribed_share": _rounded(ok / len(performances) if performances else None),
            "transcription": {
                "transcribed": sum(c.transcribed for c in checks),
                "valid": sum(c.valid for c in checks),
                "steady_meter": sum(c.steady_meter for c in checks),
                "abc2midi_clean": sum(c.abc2midi_clean is True for c in checks),
                "abc2midi_checked": sum(c.abc2midi_clean is not None for c in checks),
                "ok": ok,
                "hinted": sum(c.hinted for c in checks),
                "meters": _counts(c.meter for c in checks if c.meter),
                "problems": _counts(re.sub(r"\b\d+\b", "#", re.sub(r"line \d+, col \d+: ", "", problem))
                                    for c in checks for problem in c.problems[:3]),
            },
        })
    figures["per_piece"] = {"notes_per_second": [_rounded(v, 3) for v in density],
                            "pitch_range": ranges, "onset_regularity": [_rounded(v) for v in regularity],
                            "max_sounding": most}
    return figures


def _counts(values) -> dict:
    from collections import Counter

    return dict(Counter(values).most_common(8))


def _verdicts(generated: dict, real: dict) -> dict:
    """Each target of :data:`TARGETS`: met (True/False) or None when a figure is missing."""

    def both(key):
        return generated.get(key), real.get(key)

    out: dict[str, bool | None] = {}
    value = generated.get("mean_sounding")
    out["mean_sounding"] = None if value is None else value <= 1.05
    value = generated.get("long_note_share")
    out["long_note_share"] = None if value is None else value <= 0.005
    value, (low, high) = generated.get("notes_per_second_median"), real.get("notes_per_second_iqr") or (None, None)
    out["notes_per_second_median"] = None if None in (value, low, high) else low <= value <= high
    value, target = both("pitch_range_median")
    out["pitch_range_median"] = None if None in (value, target) else abs(value - target) <= 3
    value, target = both("onset_regularity_median")
    out["onset_regularity_median"] = None if None in (value, target) or target <= 0 else \
        abs(value / target - 1) <= 0.2
    value = generated.get("transcribed_share")
    out["transcribed_share"] = None if value is None else value >= 0.9
    return out


def performance_table(performances: Sequence, real: Sequence, *, seconds: float | None = None,
                      hints: Sequence[dict | None] | None = None,
                      real_hints: Sequence[dict | None] | None = None,
                      transcribe: bool = True, abc2midi: bool = True,
                      on_piece: Callable[[], None] | None = None) -> dict:
    """Sampled performances next to real ones: the issue's table as a dict.

    Parameters
    ----------
    performances, real
        Note lists (or arrays), the model's and the real tunes' as played.
    seconds
        Crop both sides to this many seconds first (:func:`crop`; None: as they are).
    hints, real_hints
        The controls of each piece of ``performances`` and of ``real`` (None: none), for the
        transcription check (see :func:`check_transcription`). Cropping keeps time 0, so a
        downbeat at time 0 stays one.
    transcribe, abc2midi
        Check that each transcribes to clean ABC (see :func:`check_transcription`).

    Returns
    -------
    dict
        ``generated`` and ``real`` (:func:`performance_figures` of each), ``targets`` (the text of
        each target), ``met`` (each target met: True, False, None when not measured), ``rows``
        (:data:`ROWS`) and ``seconds``.
    """
    if seconds is not None:
        performances = [crop(piece, seconds) for piece in performances]
        real = [crop(piece, seconds) for piece in real]
    generated = performance_figures(performances, hints=hints, transcribe=transcribe, abc2midi=abc2midi,
                                    on_piece=on_piece)
    real_figures = performance_figures(real, hints=real_hints, transcribe=transcribe, abc2midi=abc2midi,
                                       on_piece=on_piece)
    return {"seconds": seconds, "generated": generated, "real": real_figures, "targets": dict(TARGETS),
            "met": _verdicts(generated, real_figures), "rows": dict(ROWS),
            "onset_regularity": "peak of the onset autocorrelation at lags 0.1-1.0 s (Gaussian "
                                "onsets, sigma 15 ms; 1: a metronome, about 0.1: random onsets)"}


def format_value(key: str, value) -> str:
    """A figure of the table as text (shares as percentages)."""
    if value is None:
        return "-"
    if key in ("long_note_share", "transcribed_share", "grid_fit_median"):
        return f"{value:.1%}" if key != "long_note_share" else f"{value:.2%}"
    if key == "notes_per_second_median":
        return f"{value:.2f}"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def table_lines(table: dict, generated_label: str = "perform", real_label: str = "real tunes, rendered",
                markdown: bool = False) -> list[str]:
    """The table as text lines (aligned, or a Markdown table)."""
    generated, real, met = table["generated"], table["real"], table["met"]
    rows = []
    for key, label in table["rows"].items():
        real_text = format_value(key, real.get(key))
        if key == "notes_per_second_median" and real.get("notes_per_second_iqr", [None])[0] is not None:
            low, high = real["notes_per_second_iqr"]
            real_text += f" (IQR {low:.2f}-{high:.2f})"
        verdict = met.get(key)
        target = table["targets"].get(key, "")
        if target:
            target += " " + {True: "(met)", False: "(NOT met)", None: "(-)"}[verdict]
        rows.append((label, format_value(key, generated.get(key)), real_text, target))
    if markdown:
        lines = [f"| | {generated_label} | {real_label} | target |", "|---|---:|---:|---|"]
        return lines + [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    width = max(len(row[0]) for row in rows) + 2
    lines = [f"{'':<{width}}{generated_label:>14}{real_label:>30}   target"]
    return lines + [f"{a:<{width}}{b:>14}{c:>30}   {d}" for a, b, c, d in rows]


# ---------------------------------------------------------------------------------------------
# Real performances


def names_to_controls(names: Sequence[str]) -> dict:
    """The controls that open an event sequence, read from its names: ``["<s>", "TEMPO_120",
    "METER_6/8", "KEY_2", "DENSITY_5", "NOTE_ON_62", ...]`` -> ``{"tempo": 120, "meter": "6/8",
    "key": 2, "density": 5}`` (the shape of ``Performance.controls``). An ``_UNKNOWN`` control, or
    a value its block does not hold, is left out; reading stops at the first performance event
    (controls only open a sequence). A sequence without controls gives ``{}``.

    >>> names_to_controls(["<s>", "TEMPO_100", "METER_UNKNOWN", "KEY_-1", "DENSITY_4", "NOTE_ON_60"])
    {'tempo': 100, 'key': -1, 'density': 4}
    """
    blocks = {kind: {str(value): value for value in values if value is not None} for kind, values in CONTROLS}
    out: dict = {}
    for name in names:
        kind, _, text = str(name).partition("_")
        if kind in blocks:
            if text in blocks[kind]:
                out[kind.lower()] = blocks[kind][text]
        elif _PERFORMANCE_EVENT.match(str(name)):
            break
    return out


_PERFORMANCE_EVENT = re.compile(r"(NOTE_ON|NOTE_OFF|TIME_SHIFT|VELOCITY)_\d+$")


def control_counts(controls: Sequence[dict], kind: str) -> dict:
    """How often each value of control ``kind`` ("tempo", "meter", "key", "density") occurs among
    pieces' controls, most common first ("?" where a piece has none); ``{}`` when no piece has
    controls at all."""
    from collections import Counter

    if not any(controls):
        return {}
    return dict(Counter("?" if piece.get(kind) is None else piece[kind] for piece in controls).most_common())


def real_performances(corpus, count: int | None = None, *, split: str = "test", seed: int = 0,
                      first_rendering_only: bool = True, with_controls: bool = False):
    """Real performances from a MIDI corpus (``build_corpus(..., encoding="midi")``): its ``split``
    decoded to notes (arrays as :func:`note_array`).

    A played ABC corpus holds several renderings of each tune (origins ``file#X@1``, ``@2``); with
    ``first_rendering_only`` each tune counts once. ``count``: that many, drawn without
    replacement with ``seed`` (None: all, in corpus order). ``with_controls``: return
    ``(arrays, controls)``, each piece's controls as :func:`names_to_controls` reads them
    (``{}`` for a corpus without).
    """
    config = EventConfig.from_dict(dict(corpus.info.get("settings") or {}))
    index = {name: number for number, name in enumerate(config.names())}
    pieces = list(corpus.split(split)) if hasattr(corpus, "split") else list(getattr(corpus, split))
    origins = (getattr(corpus, "origins", None) or {}).get(split) or []
    chosen = list(range(len(pieces)))
    if first_rendering_only and len(origins) == len(pieces):
        chosen = [i for i in chosen if "@" not in origins[i] or origins[i].endswith("@1")]
    if count is not None and count < len(chosen):
        rng = np.random.default_rng(seed)
        chosen = sorted(rng.choice(chosen, size=count, replace=False).tolist())
    out, controls = [], []
    for i in chosen:
        ids = [index[name] for name in pieces[i] if name in index]
        out.append(note_array(events_to_notes(ids, config)))
        controls.append(names_to_controls(pieces[i]))
    return (out, controls) if with_controls else out


# ---------------------------------------------------------------------------------------------
# Piano rolls


def plot_piano_rolls(pieces: Sequence, labels: Sequence[str], path: str | os.PathLike, *,
                     seconds: float | None = None, title: str = "Piano rolls") -> Path:
    """Draw performances as piano rolls, one panel each, stacked, on one time and pitch scale; a
    note is a bar from its start to its end at its pitch, darker when louder. Writes a PNG and
    returns its path. ``seconds``: the time axis (default: the longest piece)."""
    import matplotlib  # a dependency, imported here for start-up time

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arrays = [note_array(piece) for piece in pieces]
    filled = [array for array in arrays if len(array)]
    low = min((array[:, 0].min() for array in filled), default=60) - 2
    high = max((array[:, 0].max() for array in filled), default=72) + 2
    end = seconds or max((array[:, 2].max() for array in filled), default=1.0)
    figure, axes = plt.subplots(len(arrays), 1, figsize=(13, 2.6 * len(arrays) + 0.6), squeeze=False)
    colours = plt.get_cmap("Blues")
    for axis, array, label in zip(axes[:, 0], arrays, labels):
        for pitch, start, stop, velocity in array:
            axis.broken_barh([(start, stop - start)], (pitch - 0.4, 0.8),
                             facecolors=colours(0.35 + 0.65 * min(velocity, 127) / 127),
                             edgecolor="#1f3b5c", linewidth=0.3)
        mean, most, _ = polyphony(array) if len(array) else (math.nan, 0, 0)
        axis.set_title(f"{label}: {len(array)} notes, {notes_per_second(array):.1f}/s, range "
                       f"{pitch_range(array)}, sounding at once {mean:.2f} (most {most}), "
                       f"regularity {onset_regularity(array):.2f}", fontsize=9, loc="left")
        axis.set_xlim(0, end)
        axis.set_ylim(low, high)
        axis.set_ylabel("MIDI pitch")
        for octave in range(int(low // 12 + 1) * 12, int(high) + 1, 12):  # the Cs
            axis.axhline(octave, color="#cccccc", linewidth=0.5, zorder=0)
    axes[-1, 0].set_xlabel("seconds")
    figure.suptitle(title)
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path
