"""MIDI files <-> performed notes, and a Tune played as a musician would: expressive or straight.

Reading uses symusic (C++, measured fastest: see ``benchmarks/midi_speed.py``), imported lazily.
Writing builds the file's bytes here (the bytes pretty_midi and mido wrote, without their cost),
always atomically (a temporary file in the same folder, then ``os.replace``), so no half-written
file is ever left.

**Reading** (``read_performance``, ``read_note_arrays``): format 0 and 1, running status and tempo
changes (ticks become seconds through the tempo map); drum tracks are skipped; the other
instruments are merged unless a program or a track name picks some; the sustain pedal (CC64 >= 64)
extends a note to the pedal release or to the next onset of its pitch, as in Performance RNN.

**Playing a Tune** (``tune_to_performance``, ``write_tune_midi``): the tune is unfolded (repeats
and endings), timed at the tempo of its rhythm (``RHYTHM_TEMPOS``) unless Q: or ``tempo`` says
otherwise, and voiced by a General MIDI instrument (``INSTRUMENTS``). By default it is
expressive: velocity follows the beat position in the meter, hornpipes, strathspeys and their
kin get a lilt (off-beat eighths late), each instrument has its articulation, and a small seeded
humanisation moves onsets and velocities (same seed, same file). ``straight=True`` gives exact
timing, full note lengths and one velocity. Grace notes are short notes just before their beat.
Accents and the lilt follow the header meter (inline ``[M:]`` changes are not followed) and the
written bar lines (a short first bar is a pickup).

**Training data** (``tune_performances``, ``midi_folder_performances``): event-id sequences
for the MIDI-event model.
"""

from __future__ import annotations

import math
import random
import re
import warnings
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from os import PathLike
from pathlib import Path

import numpy as np

from folkrnn import tables
from folkrnn.errors import MidiError, OptionError
from folkrnn.events import (
    KEYS,
    METERS,
    TEMPO_GRID,
    TEMPOS,
    EventConfig,
    PerformanceNote,
    arrays_to_events,
    density_of,
    events_to_notes,
    notes_to_events,
)
from folkrnn.files import read_input, write_atomic
from folkrnn.limits import MAX_INPUT_BYTES
from folkrnn.music import TICKS, Key, Meter, Tune, unfold_segments
from folkrnn.tables import Instrument, find_instrument

__all__ = [
    "MidiWarning", "MidiInfo", "Instrument", "INSTRUMENTS", "RHYTHM_TEMPOS", "LILT",
    "read_note_arrays", "read_performance", "read_midi_info", "write_performance",
    "tune_tempo", "q_field", "tune_to_performance", "write_tune_midi",
    "tune_performances", "midi_folder_performances", "encode_midi", "decode_to_midi",
]


class MidiWarning(UserWarning):
    """Something odd in a MIDI file that was read anyway (an implausible tempo)."""


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------

_DEFAULT_MSPQ = 500_000  # MIDI's default tempo, 120 quarter notes per minute
_MAX_SECONDS = 24 * 3600  # a file longer than a day is corrupt, not music
_PLAUSIBLE_QPM = (4.0, 1000.0)  # outside this a tempo is read, with a MidiWarning


def _check_head(first: bytes, name: str) -> None:
    if first and not first.startswith(b"MThd"):
        raise MidiError("is not a MIDI file (it does not start with MThd)", file=name)


def _load_score(path: str | PathLike):
    """Read a MIDI file with symusic, turning every failure into one MidiError naming the file."""
    from symusic import Score

    name = str(path)
    # no FIFO, device or file over the limit; not a MIDI file is said from the first bytes
    data = read_input(path, limit=MAX_INPUT_BYTES, error=MidiError, what="a MIDI file",
                      check=lambda first: _check_head(first, name))
    if not data:
        raise MidiError("is empty", file=name)
    if not data.startswith(b"MThd"):
        raise MidiError("is not a MIDI file (it does not start with MThd)", file=name)
    if len(data) < 14:
        raise MidiError(f"is truncated: the header needs 14 bytes, the file has {len(data)}",
                        file=name)
    division = int.from_bytes(data[12:14], "big")
    if division & 0x8000:
        raise MidiError("uses SMPTE time division, which is not supported", file=name)
    if division == 0:
        raise MidiError("has 0 ticks per quarter note", file=name)
    try:
        return Score.from_midi(data)
    except Exception as error:  # symusic raises RuntimeError with its own text
        reason = " ".join(str(error).split())[:160] or type(error).__name__
        raise MidiError(f"is damaged or truncated ({reason})", file=name) from None


def _tempo_map(score, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(tempo-change ticks, seconds at each change, seconds per tick after it, tpq)."""
    tpq = int(score.ticks_per_quarter)
    tempos = score.tempos.numpy()
    ticks = tempos["time"].astype(np.int64)
    mspq = tempos["mspq"].astype(np.int64)
    if len(ticks):
        order = np.argsort(ticks, kind="stable")
        ticks, mspq = ticks[order], mspq[order]
        bad = np.flatnonzero(mspq <= 0)
        if len(bad):
            raise MidiError(f"has an impossible tempo ({int(mspq[bad[0]])} microseconds per "
                            f"quarter note) at tick {int(ticks[bad[0]])}", file=name)
        qpm = 60e6 / mspq
        odd = np.flatnonzero((qpm < _PLAUSIBLE_QPM[0]) | (qpm > _PLAUSIBLE_QPM[1]))
        if len(odd):
            warnings.warn(f"{name}: implausible tempo {qpm[odd[0]]:.4g} quarter notes per "
                          f"minute at tick {int(ticks[odd[0]])}; read as written", MidiWarning,
                          stacklevel=3)
    if not len(ticks) or ticks[0] > 0:
        ticks = np.concatenate([[0], ticks])
        mspq = np.concatenate([[_DEFAULT_MSPQ], mspq])
    seconds_per_tick = mspq / 1e6 / tpq
    seconds_at = np.concatenate([[0.0], np.cumsum(np.diff(ticks) * seconds_per_tick[:-1])])
    return ticks, seconds_at, seconds_per_tick, tpq


def _to_seconds(tick: np.ndarray, tempo_map) -> np.ndarray:
    ticks, seconds_at, seconds_per_tick, _ = tempo_map
    index = np.searchsorted(ticks, tick, side="right") - 1
    return seconds_at[index] + (tick - ticks[index]) * seconds_per_tick[index]


def _apply_sustain(start: np.ndarray, end: np.ndarray, pitch: np.ndarray,
                   pedal_time: np.ndarray, pedal_value: np.ndarray, sequence_end: float):
    """Performance RNN's sustain rule for one instrument, vectorised. Returns (end, keep).

    With the pedal down (CC64 >= 64) when its key is released, a note sounds on until the pedal
    is lifted, or until its pitch is struck again while the pedal is down; a pedal never lifted
    holds it to the end of the sequence. Pedal events count before notes at the same time.
    """
    order = np.argsort(pedal_time, kind="stable")
    pedal_time, down = pedal_time[order], pedal_value[order] >= 64
    count = len(pedal_time)
    # the time of the first release after each pedal event (sequence_end when none)
    release = np.where(down, np.inf, pedal_time)
    next_release = np.minimum.accumulate(release[::-1])[::-1]
    next_release = np.concatenate([next_release[1:], [np.inf]])
    next_release = np.where(np.isinf(next_release), max(sequence_end, pedal_time[-1]), next_release)

    def pedal_down(times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        index = np.searchsorted(pedal_time, times, side="right") - 1
        safe = np.clip(index, 0, count - 1)
        return (index >= 0) & down[safe], safe

    held, index = pedal_down(end)
    extended = np.where(held, np.maximum(end, next_release[index]), end)
    # the next onset of the same pitch, in (start, pitch) order
    n = len(start)
    order = np.lexsort((np.arange(n), start, pitch))
    same_pitch_next = np.full(n, np.inf)
    follows = pitch[order][1:] == pitch[order][:-1]
    same_pitch_next[order[:-1][follows]] = start[order][1:][follows]
    down_then, _ = pedal_down(np.where(np.isfinite(same_pitch_next), same_pitch_next, 0.0))
    cut = np.isfinite(same_pitch_next) & down_then & (same_pitch_next < extended)
    new_end = np.where(cut, same_pitch_next, extended)
    keep = new_end > start  # a note struck again at its own start, pedal down: only one stays
    keep |= ~cut & (new_end == start)  # zero-length notes from the file stay (they get a step)
    return new_end, keep


def _track_matches(track, program: int | None, instrument: str | None) -> bool:
    if program is not None and int(track.program) != program:
        return False
    if instrument is not None and instrument.strip().lower() not in track.name.strip().lower():
        return False
    return True


def read_note_arrays(path: str | PathLike, *, program: int | None = None,
                     instrument: str | None = None,
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A MIDI file's notes as arrays (pitch, start s, end s, velocity), sustain applied.

    Drum tracks are skipped and the rest merged, or only the tracks with ``program`` (0-127)
    and/or whose name contains ``instrument`` (case-insensitive) are read. Raises MidiError,
    naming the file, for a file that cannot be read or has no notes to give.
    """
    name = str(path)
    if program is not None and not 0 <= program <= 127:
        raise OptionError(f"program {program} is outside General MIDI's 0..127")
    score = _load_score(path)
    tempo_map = _tempo_map(score, name)
    tracks = [track for track in score.tracks if track.note_num() > 0]
    if not tracks:
        raise MidiError("has no notes", file=name)
    melodic = [track for track in tracks if not track.is_drum]
    if not melodic:
        raise MidiError("has only drum notes (channel 10), which are skipped", file=name)
    chosen = [track for track in melodic if _track_matches(track, program, instrument)]
    if not chosen:
        have = "; ".join(sorted({f"program {int(t.program)} {t.name.strip()!r}" for t in melodic}))
        wanted = " and ".join(part for part in (
            f"program {program}" if program is not None else "",
            f"name containing {instrument!r}" if instrument is not None else "") if part)
        raise MidiError(f"has no instrument with {wanted}; it has: {have}", file=name)

    parts = []
    for track in chosen:
        notes = track.notes.numpy()
        tick = notes["time"].astype(np.int64)
        start = _to_seconds(tick, tempo_map)
        end = _to_seconds(tick + notes["duration"].astype(np.int64), tempo_map)
        pitch = notes["pitch"].astype(np.int64)
        velocity = notes["velocity"].astype(np.int64)
        pedal = None
        if len(track.controls):
            controls = track.controls.numpy()
            is_sustain = controls["number"] == 64
            if is_sustain.any():
                pedal = (_to_seconds(controls["time"][is_sustain].astype(np.int64), tempo_map),
                         controls["value"][is_sustain].astype(np.int64))
        parts.append((pitch, start, end, velocity, pedal))
    sequence_end = max(float(part[2].max()) for part in parts)
    out = []
    for pitch, start, end, velocity, pedal in parts:
        if pedal is not None:
            end, keep = _apply_sustain(start, end, pitch, pedal[0], pedal[1], sequence_end)
            pitch, start, end, velocity = pitch[keep], start[keep], end[keep], velocity[keep]
        out.append((pitch, start, end, velocity))
    pitch, start, end, velocity = (np.concatenate(column) for column in zip(*out))
    last = float(end.max()) if len(end) else 0.0
    if last > _MAX_SECONDS:
        raise MidiError(f"lasts {last / 3600:.0f} hours, more than a day: the file is corrupt "
                        f"or its tempo is absurd", file=name)
    return pitch, start, end, velocity


def read_performance(path: str | PathLike, *, program: int | None = None,
                     instrument: str | None = None) -> list[PerformanceNote]:
    """A MIDI file's notes as PerformanceNotes (seconds), sorted by start and pitch.

    See ``read_note_arrays`` for what is read and the errors.
    """
    pitch, start, end, velocity = read_note_arrays(path, program=program, instrument=instrument)
    order = np.lexsort((pitch, start))
    return [PerformanceNote(int(p), float(s), float(e), int(v))
            for p, s, e, v in zip(pitch[order], start[order], end[order], velocity[order])]


@dataclass(frozen=True)
class MidiInfo:
    """What a MIDI file says about its music besides the notes (the first of each, if any)."""

    qpm: float | None  # first tempo, quarter notes per minute
    meter: Meter | None  # first time signature
    key: Key | None  # first key signature (major or minor only: MIDI knows no other modes)


def read_midi_info(path: str | PathLike) -> MidiInfo:
    """The first tempo, time signature and key signature of a MIDI file, where it has them."""
    score = _load_score(path)
    qpm = None
    if len(score.tempos):
        first = min(score.tempos, key=lambda tempo: tempo.time)
        if first.mspq > 0:
            qpm = 60e6 / first.mspq
    meter = None
    if len(score.time_signatures):
        sig = min(score.time_signatures, key=lambda sig: sig.time)
        if sig.numerator > 0 and sig.denominator > 0:
            meter = Meter(int(sig.numerator), int(sig.denominator))
    key = None
    if len(score.key_signatures):
        sig = min(score.key_signatures, key=lambda sig: sig.time)
        key = key_from_fifths(int(sig.key), bool(sig.tonality))
    return MidiInfo(qpm, meter, key)


_MAJOR_BY_FIFTHS = {-7: "Cb", -6: "Gb", -5: "Db", -4: "Ab", -3: "Eb", -2: "Bb", -1: "F", 0: "C",
                    1: "G", 2: "D", 3: "A", 4: "E", 5: "B", 6: "F#", 7: "C#"}
_MINOR_BY_FIFTHS = {-7: "Ab", -6: "Eb", -5: "Bb", -4: "F", -3: "C", -2: "G", -1: "D", 0: "A",
                    1: "E", 2: "B", 3: "F#", 4: "C#", 5: "G#", 6: "D#", 7: "A#"}


def key_from_fifths(fifths: int, minor: bool) -> Key | None:
    if not -7 <= fifths <= 7:
        return None
    return Key(_MINOR_BY_FIFTHS[fifths], "min") if minor else Key(_MAJOR_BY_FIFTHS[fifths], "maj")


def key_fifths(key: Key) -> int:
    """Sharps (positive) or flats (negative) in a key's signature."""
    return sum(key.accidentals.values())


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------

def write_performance(notes: Iterable[PerformanceNote], path: str | PathLike, *, program: int = 0,
                      qpm: float = 120.0, meter: Meter | None = None, key: Key | None = None,
                      name: str = "", resolution: int = 480, title: str = "",
                      instrument_name: str = "") -> Path:
    """Write performed notes as a one-instrument MIDI file, atomically.

    ``qpm``, ``meter`` and ``key`` go into the file's tempo, time and key signatures, so that
    notation programs (and ``midi2abc``) find the beat; they do not move any note. The metronome
    clicks on the beat: a dotted quarter (36 MIDI clocks) in 6/8, 9/8 and 12/8, as abc2midi
    writes it. ``title`` is the sequence name (the first track's name, as abc2midi writes T:),
    ``name`` the instrument track's name and ``instrument_name`` its instrument name.
    Raises OptionError for a program, tempo or resolution a MIDI file cannot hold, MidiError for
    a note or meter it cannot (a pitch or velocity outside 0..127, a meter like 3/5).
    """
    if not 0 <= program <= 127:
        raise OptionError(f"program {program} is outside General MIDI's 0..127")
    if not 1.0 <= qpm <= 1000.0:
        raise OptionError(f"tempo {qpm} quarter notes per minute is outside 1..1000")
    if not 1 <= resolution <= 0x7FFF:
        raise OptionError(f"resolution {resolution} ticks per quarter note is outside 1..32767")
    return write_atomic(path, _midi_file(notes, program=program, qpm=qpm, meter=meter, key=key,
                                         name=name, resolution=resolution, title=title,
                                         instrument_name=instrument_name),
                        error=MidiError)


def _latin1(text: str) -> str:
    """``text`` as MIDI files hold text (Latin-1), with '?' for what Latin-1 lacks."""
    return text.encode("latin-1", "replace").decode("latin-1") if text else text


# The bytes of the files folkrnn has always written: pretty_midi's file (a conductor track, then
# the instrument's track on channel 1), saved by mido with running status, with the sequence name,
# the instrument name and the compound meters' click added. ``_midi_file`` writes those same bytes
# directly: building them with the two libraries, and reading them back to add what pretty_midi
# cannot write, took most of the time ``generate`` spent on a tune's MIDI file.
_END_OF_TRACK = b"\x01\xff\x2f\x00"  # one tick after the last event, as pretty_midi ends a track
_NOTE_ON = 0x90  # channel 1: pretty_midi's first channel; a note off is a note on of velocity 0
_PROGRAM_CHANGE = 0xC0
# pretty_midi's key numbers (0-11 major C..B, 12-23 minor) as mido writes them: (sharps, minor)
_KEY_SIGNATURES = ((0, 0), (-5, 0), (2, 0), (-3, 0), (4, 0), (-1, 0), (6, 0), (1, 0), (-4, 0),
                   (3, 0), (-2, 0), (5, 0), (-3, 1), (4, 1), (-1, 1), (6, 1), (1, 1), (-4, 1),
                   (3, 1), (-2, 1), (5, 1), (0, 1), (-5, 1), (2, 1))


def _variable_int(value: int) -> bytes:
    """A MIDI variable-length quantity: 7 bits a byte, most significant first, the high bit set on
    every byte but the last."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | value & 0x7F)
        value >>= 7
    return bytes(reversed(out))


def _meta(kind: int, data: bytes) -> bytes:
    """A meta event at delta 0: FF, its kind, its length, its data."""
    return b"\x00\xff" + bytes((kind,)) + _variable_int(len(data)) + data


def _chunk(name: bytes, data: bytes) -> bytes:
    return name + len(data).to_bytes(4, "big") + data


def _midi_file(notes: Iterable[PerformanceNote], *, program: int, qpm: float, meter: Meter | None,
               key: Key | None, name: str, resolution: int, title: str, instrument_name: str) -> bytes:
    """The bytes of ``write_performance``'s file: a format 1 file of two tracks.

    The conductor track holds the sequence name, the tempo, the time signature (4/4 when there is
    no meter) and the key signature; the instrument's track its name, its instrument name, the
    program and the notes, sorted by tick, then pitch, then velocity (so a note off comes before a
    note on of its pitch at the same tick). A time in seconds becomes the nearest tick, as
    pretty_midi rounds it (half to even; a time at or before 0 is tick 0).
    """
    # MIDI text is Latin-1 (mido's charset): a title in other scripts, or with a U+FFFD where
    # its bytes were not UTF-8, keeps what Latin-1 holds and '?' for the rest
    name, title, instrument_name = (_latin1(text).encode("latin-1") for text in (name, title, instrument_name))
    seconds_per_tick = 60.0 / (float(qpm) * resolution)  # pretty_midi's tick scale
    tempo = int(6e7 / (60.0 / (seconds_per_tick * resolution)))  # microseconds a quarter, as pretty_midi has it
    if tempo > 0xFFFFFF:
        raise OptionError(f"tempo {qpm} quarter notes per minute is too slow for a MIDI file (at least 3.6)")

    conductor = [_meta(0x03, title)] if title else []
    conductor.append(_meta(0x51, tempo.to_bytes(3, "big")))
    numerator, denominator = (4, 4) if meter is None or meter.free else (meter.numerator, meter.denominator)
    if not 0 < numerator <= 255 or denominator < 1 or denominator & (denominator - 1):
        raise MidiError(f"meter {numerator}/{denominator} cannot be written in a MIDI file "
                        "(its denominator must be a power of 2, its numerator at most 255)")
    clocks = 36 if denominator == 8 and numerator % 3 == 0 and numerator > 3 else 24
    conductor.append(_meta(0x58, bytes((numerator, denominator.bit_length() - 1, clocks, 8))))
    if key is not None:
        fifths = max(-7, min(7, key_fifths(key)))
        tonic = (7 * fifths + (9 if key.mode == "min" else 0)) % 12
        sharps, minor = _KEY_SIGNATURES[tonic + (12 if key.mode == "min" else 0)]
        conductor.append(_meta(0x59, bytes((sharps & 0xFF, minor))))
    conductor.append(_END_OF_TRACK)

    track = [_meta(0x03, name)] if name else []
    if instrument_name:
        track.append(_meta(0x04, instrument_name))
    track.append(bytes((0, _PROGRAM_CHANGE, program)))
    track.append(_note_events(notes, seconds_per_tick))
    track.append(_END_OF_TRACK)
    header = _chunk(b"MThd", (1).to_bytes(2, "big") + (2).to_bytes(2, "big") + resolution.to_bytes(2, "big"))
    return header + _chunk(b"MTrk", b"".join(conductor)) + _chunk(b"MTrk", b"".join(track))


def _note_events(notes: Iterable[PerformanceNote], seconds_per_tick: float) -> bytes:
    """The notes as note-on and note-off events, with their delta times, after a program change:
    the first event says note on, the others share it (running status)."""
    notes = list(notes)
    if not notes:
        return b""
    pitch = np.array([int(note.pitch) for note in notes], dtype=np.int64)
    velocity = np.array([max(1, int(note.velocity)) for note in notes], dtype=np.int64)
    if not (0 <= pitch.min() and pitch.max() <= 127 and velocity.max() <= 127):
        bad = next(note for note in notes if not 0 <= int(note.pitch) <= 127 or int(note.velocity) > 127)
        raise MidiError(f"a note of pitch {bad.pitch} and velocity {bad.velocity} cannot be written in a "
                        "MIDI file (both must be in 0..127)")
    seconds = np.array([[float(note.start), float(note.end)] for note in notes], dtype=np.float64)
    if not np.isfinite(seconds).all() or seconds.max() / seconds_per_tick >= 2.0 ** 48:
        raise MidiError("a note's time is not finite, or too late for a MIDI file")
    # time / tick scale, rounded half to even, as pretty_midi's time_to_tick does (0 at or before 0)
    ticks = np.where(seconds > 0, np.rint(seconds / seconds_per_tick), 0).astype(np.int64)
    # one sort key: tick, then pitch, then velocity (0 for a note off)
    keys = np.concatenate([(ticks[:, 0] << 14) | (pitch << 7) | velocity, (ticks[:, 1] << 14) | (pitch << 7)])
    keys.sort()
    return _delta_bytes(np.diff(keys >> 14, prepend=0), keys >> 7 & 0x7F, keys & 0x7F, _NOTE_ON)


def _delta_bytes(deltas: np.ndarray, first: np.ndarray, second: np.ndarray, status: int) -> bytes:
    """Events of two data bytes, each after its delta time, the status byte written once: the
    variable-length deltas built for all events at once (7 bits a byte, high bit on all but the
    last)."""
    width = max(1, (int(deltas.max()).bit_length() + 6) // 7)  # bytes of the longest delta
    shifts = 7 * np.arange(width - 1, -1, -1, dtype=np.int64)
    groups = (deltas[:, None] >> shifts) & 0x7F
    groups[:, :-1] |= 0x80
    length = np.ones(len(deltas), dtype=np.int64)  # bytes of each delta
    for k in range(1, width):
        length += (deltas >> 7 * k) > 0
    keep = np.arange(width) >= (width - length)[:, None]
    rows = np.concatenate([groups, first[:, None], second[:, None]], axis=1).astype(np.uint8)
    rows_keep = np.concatenate([keep, np.ones((len(deltas), 2), dtype=bool)], axis=1)
    data = rows[rows_keep].tobytes()
    at = int(length[0])  # the first event's delta, then its status byte
    return data[:at] + bytes((status,)) + data[at:]


# ---------------------------------------------------------------------------------------------
# Playing a Tune
# ---------------------------------------------------------------------------------------------

# The instruments (General MIDI program, articulation, dynamics) and the dances (tempo, lilt) are
# folkrnn.tables's; these are views of them, every name an option takes included.
INSTRUMENTS: dict[str, Instrument] = dict(tables.INSTRUMENT_NAMES)

# Beats per minute by rhythm (R:, letters only, lower case), from the dances and their kinds. A
# beat is a dotted quarter in compound meters (6/8, 9/8, 12/8) and a quarter otherwise, so a reel
# at 200 is 100 half notes, and a jig at 116 is 116 dotted quarters.
RHYTHM_TEMPOS: dict[str, float] = {
    **{name: dance.tempo for name, dance in tables.DANCES.items() if dance.tempo is not None},
    **{name: kind.tempo for dance in tables.DANCES.values() for name, kind in dance.variants.items()},
}
# When R: is missing or unknown, the meter decides.
_METER_RHYTHMS = {(6, 8): "jig", (9, 8): "slipjig", (12, 8): "slide", (2, 4): "polka",
                  (3, 4): "waltz", (4, 4): "reel", (2, 2): "reel", (3, 2): "threetwo"}
_FALLBACK_TEMPO = 100.0

# The lilt: where an off-beat eighth falls within its quarter (0.5 is straight; 2/3 a triplet feel).
LILT: dict[str, float] = {
    **{name: dance.lilt for name, dance in tables.DANCES.items() if dance.lilt != 0.5},
    **{name: kind.lilt for dance in tables.DANCES.values() for name, kind in dance.variants.items()
       if kind.lilt != 0.5},
}

_STRAIGHT_VELOCITY = 80
_BASE_VELOCITY = 72
_GRACE_SECONDS = 0.04  # longest grace note; at most a sixty-fourth note at fast tempos
_RELEASE_SECONDS = 0.04  # the most a note is released before its written end (articulation)
_ONSET_JITTER = 0.008  # s, standard deviation of the humanised onset (clipped at 2.5 sigma)
_VELOCITY_JITTER = 3.0  # standard deviation of the humanised velocity


def _rhythm_name(text: str) -> str:
    return re.sub(r"[^a-z]", "", text.lower())


def beat_quarters(meter: Meter) -> Fraction:
    """The beat in quarter notes: a dotted quarter in compound meters, else a quarter."""
    return Fraction(3, 2) if meter.compound else Fraction(1)


def _q_field_qpm(text: str) -> float | None:
    """Q: -> quarter notes per minute. ``1/4=120``, ``3/8=100``, ``"Allegro" 1/4=120``; a bare
    number is taken as quarter notes per minute, as abc2midi plays it; text alone gives None."""
    text = re.sub(r'"[^"]*"', " ", text)
    match = re.search(r"((?:\d+/\d+\s*)+)=\s*(\d+(?:\.\d+)?)", text)
    if match:
        beat = sum(Fraction(part) for part in match.group(1).split())
        return float(beat * 4) * float(match.group(2))
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*", text)
    if match:
        return float(match.group(1))
    return None


def tune_tempo(tune: Tune, tempo: float | None = None) -> float:
    """Quarter notes per minute for playing ``tune``.

    ``tempo`` (beats per minute, the beat a dotted quarter in compound meters, else a quarter)
    wins; then the tune's Q: field; then ``RHYTHM_TEMPOS`` by R:, or by the meter.
    """
    beat = beat_quarters(tune.meter)
    if tempo is not None:
        if not 20 <= tempo <= 400:
            raise OptionError(f"tempo {tempo} is outside 20..400 beats per minute")
        return float(tempo * beat)
    if tune.tempo:
        qpm = _q_field_qpm(tune.tempo)
        if qpm is not None and 10 <= qpm <= 1000:
            return qpm
    rhythm = _rhythm_name(tune.rhythm)
    if rhythm not in RHYTHM_TEMPOS:
        rhythm = _METER_RHYTHMS.get((tune.meter.numerator, tune.meter.denominator), "")
    return float(RHYTHM_TEMPOS.get(rhythm, _FALLBACK_TEMPO) * beat)


def q_field(tune: Tune, tempo: float | None = None) -> str:
    """The value of a Q: field that plays ``tune`` at ``tune_tempo(tune, tempo)``, in whole beats
    of its meter: ``"3/8=116"`` for a jig, ``"1/4=200"`` for a reel. A Q: read back by
    ``tune_tempo`` (or by abc2midi) gives that tempo, rounded to a whole number of beats."""
    beat = beat_quarters(tune.meter)
    beats = max(1, round(tune_tempo(tune, tempo) / float(beat)))
    return f"{beat / 4}={beats}"


def _instrument(name: str) -> Instrument:
    style = find_instrument(name)
    if style is None:
        raise OptionError(f"unknown instrument {name!r}; choose one of: {', '.join(tables.INSTRUMENTS)}")
    return style


# A played note in integer ticks (``_played_notes``): pitch, onset, duration, grace, and its
# position in its bar (None in free meter).
_Played = tuple[int, int, int, bool, int | None]


def _tick_grid(*times: Iterable[Fraction]) -> int:
    """Ticks a quarter note that count all ``times`` exactly: ``music.TICKS``, which times every
    parsed tune, or a multiple of it for a tune made by hand with finer times."""
    grid = TICKS
    for denominator in {time.denominator for group in times for time in group}:
        if grid % denominator:
            grid = math.lcm(grid, denominator)
    return grid


def _played_notes(tune: Tune) -> tuple[list[_Played], int]:
    """``tune.unfold()`` in integer ticks, each note with its position in its bar, and the ticks a
    quarter note they count (``_tick_grid``).

    Ticks keep the times exact, as Fractions would, at a fraction of the cost: playing a tune
    works out thousands of times. The positions come from the written bar lines
    (``_metric_positions``) when ``music.unfold_segments`` gives the same notes as
    ``Tune.unfold`` (it does unless P: reorders parts); otherwise they are counted in played
    time from the first bar line.
    """
    notes = tune.unfold()
    bar_length = tune.meter.bar_length
    grid = _tick_grid((bar_length,), (note.onset for note in notes), (note.duration for note in notes),
                      (note.onset for note in tune.notes), (note.duration for note in tune.notes),
                      (bar.onset for bar in tune.bars))

    def ticks(time: Fraction) -> int:
        return time.numerator * (grid // time.denominator)

    bar = ticks(bar_length)
    onsets = [ticks(note.onset) for note in notes]
    positions: list[int | None] | None = None
    if not bar:
        positions = [None] * len(notes)
    else:
        try:
            segments = unfold_segments(tune.notes, tune.bars)[0]
            if [note for note, _ in segments] == notes:
                written = [ticks(note.onset) for note in tune.notes]
                end = max((onset + ticks(note.duration) for onset, note in zip(written, tune.notes)),
                          default=0)
                positions = _metric_positions([written[index] for _, index in segments],
                                              [ticks(line.onset) for line in tune.bars], end, bar)
        except (ImportError, TypeError, ValueError, IndexError):
            pass
    if positions is None:
        first_bar = min((ticks(line.onset) for line in tune.bars if line.onset > 0), default=0)
        pickup = bar - first_bar if 0 < first_bar < bar else 0
        positions = [(onset + pickup) % bar for onset in onsets]
    played = [(note.pitch, onset, ticks(note.duration), note.grace, position)
              for note, onset, position in zip(notes, onsets, positions)]
    return played, grid


def _metric_positions(onsets: list[int], bar_lines: list[int], end: int, bar: int) -> list[int]:
    """Each played note's position in its bar, in ticks from the downbeat, from its written onset
    and the written bar lines (``end``: where the last written note ends): a short first bar is
    a pickup, ending on the next downbeat. ``bar`` is the length of a full bar."""
    # bar k runs from edges[k] to edges[k + 1]; edges[0] is the start of the tune
    edges = [0] + sorted({line for line in bar_lines if line > 0})
    end = max(end, *bar_lines, edges[-1])
    if end > edges[-1]:
        edges.append(end)
    lengths = [b - a for a, b in zip(edges, edges[1:])]
    # A short bar is a pickup (its notes lead into the next downbeat) when it opens the tune or
    # completes, with the short bar before it, one full bar (a section's end, then its pickup).
    pickup = [length < bar and (k == 0 or (lengths[k - 1] < bar and lengths[k - 1] + length == bar))
              for k, length in enumerate(lengths)]
    last = max(len(lengths) - 1, 0)
    out = []
    for onset in onsets:
        k = min(max(bisect_right(edges, onset) - 1, 0), last)
        if not lengths:
            position = onset % bar
        elif pickup[k]:
            position = (bar - lengths[k] + onset - edges[k]) % bar
        else:
            position = (onset - edges[k]) % bar
        out.append(position)
    return out


def _accent(position: Fraction | None, meter: Meter) -> float:
    """Velocity added for a note at ``position`` in the bar: downbeat, strong beat, beat, off-beat."""
    if position is None:
        return 0.0
    beat = beat_quarters(meter) if meter.compound else Fraction(4, meter.denominator)
    beats = max(1, int(meter.bar_length / beat))
    if position % beat == 0:
        index = int(position / beat)
        if index == 0:
            return 20.0
        if beats % 2 == 0 and index == beats // 2:
            return 12.0
        return 6.0
    if position % (beat / 2) == 0 or (meter.compound and position % (beat / 3) == 0):
        return 0.0
    return -6.0


def _lilt_warp(position: float, lilt: float) -> float:
    """Move a time within its quarter note so an off-beat eighth lands at ``lilt`` of the quarter."""
    whole = math.floor(position)
    f = position - whole
    if f <= 0.5:
        return whole + f * lilt / 0.5
    return whole + lilt + (f - 0.5) * (1 - lilt) / 0.5


def tune_to_performance(tune: Tune, *, straight: bool = False, tempo: float | None = None,
                        instrument: str = "fiddle", seed: int = 0, downbeat: bool = False) -> list[PerformanceNote]:
    """Play a Tune: its unfolded notes as PerformanceNotes (seconds), sorted by start and pitch.

    Parameters
    ----------
    tune
        The tune; its repeats and endings are expanded (``Tune.unfold``).
    straight
        Exact timing, full written lengths and one velocity, for practice and comparisons.
    tempo
        Beats per minute (dotted quarters in 6/8, 9/8, 12/8; quarters otherwise); by default
        the Q: field, else the rhythm's tempo (``tune_tempo``).
    instrument
        A name from ``INSTRUMENTS``: it sets the articulation and dynamics (and, when written,
        the program). Raises OptionError for an unknown name.
    seed
        Seeds the humanisation: the same seed gives the same performance.
    downbeat
        Time 0 is a downbeat: a tune that opens with a pickup waits for the pickup's place in its
        bar (and the beat grid of the performance starts at 0). Otherwise the first note starts at 0.
    """
    style = _instrument(instrument)
    qpm = tune_tempo(tune, tempo)
    seconds_per_quarter = 60.0 / qpm
    played, grid = _played_notes(tune)  # times in ticks: a quarter note is ``grid`` of them
    if not played:
        return []
    rng = random.Random(seed)
    lilt = 0.5 if straight else LILT.get(_rhythm_name(tune.rhythm), 0.5)
    if tune.meter.compound or tune.meter.denominator not in (2, 4):
        lilt = 0.5

    def warp(onset: int, position: int | None) -> float:
        """Played time in quarters, with the lilt applied relative to the beat."""
        value = onset / grid  # as float(Fraction(onset, grid)): the quotient correctly rounded
        if lilt == 0.5 or position is None:
            return value
        position = position / grid
        shift = position - math.floor(position)
        base = value - shift
        return base + _lilt_warp(shift, lilt)

    accents: dict[int | None, float] = {}  # by position: a tune has few

    def accent(position: int | None) -> float:
        if position not in accents:
            accents[position] = _accent(None if position is None else Fraction(position, grid), tune.meter)
        return accents[position]

    jitter: dict[int, float] = {}  # one onset jitter per distinct onset: chords stay together
    notes: list[tuple[float, float, int, int, bool]] = []  # start, end, pitch, velocity, grace
    graces: dict[int, list[tuple[int, int | None]]] = {}
    main_starts: dict[int, float] = {}  # by onset: where its first main note starts (s), jitter included
    for pitch, onset, duration, grace, position in played:
        if grace:
            graces.setdefault(onset, []).append((pitch, position))
            continue
        start = warp(onset, position)
        end_position = None if position is None else position + duration
        end = warp(onset + duration, end_position)
        start_s, end_s = start * seconds_per_quarter, end * seconds_per_quarter
        if straight:
            velocity = _STRAIGHT_VELOCITY
        else:
            if onset not in jitter:
                jitter[onset] = max(-2.5, min(2.5, rng.gauss(0, 1))) * _ONSET_JITTER
            start_s += jitter[onset]
            length = max(end_s - start_s, 0.0)
            end_s = start_s + length - min((1 - style.articulation) * length, _RELEASE_SECONDS)
            velocity = (_BASE_VELOCITY + style.dynamics * accent(position)
                        + rng.gauss(0, _VELOCITY_JITTER))
            velocity = int(round(min(127, max(1, velocity))))
        if onset not in main_starts:
            main_starts[onset] = start * seconds_per_quarter + jitter.get(onset, 0.0)
        notes.append((start_s, end_s, pitch, velocity, False))

    # Grace notes: short notes just before their beat; the note they interrupt is cut short.
    main_count = len(notes)
    main_notes = sorted((n[0], n[1]) for n in notes)
    main_note_starts = [start for start, _ in main_notes]
    main_onsets = sorted(main_starts)
    for onset, group in graces.items():
        # graces lead into the next main note (at their onset, or the first after it)
        k = bisect_left(main_onsets, onset)
        if k < len(main_onsets):
            beat_start = main_starts[main_onsets[k]]
        else:
            beat_start = warp(onset, group[0][1]) * seconds_per_quarter
        length = min(_GRACE_SECONDS, seconds_per_quarter / 16)
        # a group takes at most a third of the note before it, which stays a note
        before = bisect_right(main_note_starts, beat_start - 1e-9) - 1
        if before >= 0:
            previous_length = main_notes[before][1] - main_notes[before][0]
            if previous_length > 0:
                length = min(length, previous_length / (3 * len(group)))
        first = beat_start - length * len(group)
        for k, (pitch, _) in enumerate(group):
            velocity = _STRAIGHT_VELOCITY if straight else int(max(1, _BASE_VELOCITY - 10))
            notes.append((first + k * length, first + (k + 1) * length, pitch, velocity, True))
        for i in range(main_count):
            start_s, end_s, pitch, velocity, grace = notes[i]
            if start_s < first < end_s:
                notes[i] = (start_s, first, pitch, velocity, grace)

    # No two notes of one pitch overlap: the earlier one ends where the later one starts.
    notes.sort(key=lambda n: (n[0], n[2]))
    last_of_pitch: dict[int, int] = {}
    for i, (start_s, _end, pitch, _velocity, _grace) in enumerate(notes):
        j = last_of_pitch.get(pitch)
        if j is not None and notes[j][1] > start_s:
            s, _, p, v, g = notes[j]
            notes[j] = (s, start_s, p, v, g)
        last_of_pitch[pitch] = i
    lead = -min(n[0] for n in notes)
    lead = lead if lead > 0 else 0.0
    if downbeat:  # from the downbeat the first note's bar starts on (whole bars earlier, if need be)
        first = next(((onset, position) for _, onset, _, grace, position in played if not grace), None)
        origin = 0.0 if first is None or first[1] is None else (first[0] - first[1]) / grid
        bar = float(tune.meter.bar_length or 0) * seconds_per_quarter
        lead = -origin * seconds_per_quarter
        while bar > 0 and min(n[0] for n in notes) + lead < -1e-9:
            lead += bar
    return [PerformanceNote(pitch, start_s + lead, end_s + lead, velocity)
            for start_s, end_s, pitch, velocity, _ in notes if end_s > start_s]


def write_tune_midi(tune: Tune, path: str | PathLike, *, straight: bool = False,
                    tempo: float | None = None, instrument: str = "fiddle", seed: int = 0) -> Path:
    """Play ``tune`` (``tune_to_performance``) into a MIDI file with its instrument, tempo, meter
    and key, written atomically; its title names the sequence and the track (as abc2midi names
    them), the instrument's name the instrument. Returns the path."""
    notes = tune_to_performance(tune, straight=straight, tempo=tempo, instrument=instrument,
                                seed=seed)
    if not notes:
        raise MidiError("the tune has no notes to play", tune=_label(tune))
    style = _instrument(instrument)
    title = tune.title or "Untitled"
    return write_performance(notes, path, program=style.program, qpm=tune_tempo(tune, tempo),
                             meter=tune.meter, key=tune.key, name=title, title=title,
                             instrument_name=style.name)


def _label(tune: Tune) -> str:
    parts = ([f"X:{tune.number}"] if tune.number else []) + ([repr(tune.title)] if tune.title else [])
    return " ".join(parts) or "(untitled)"


# ---------------------------------------------------------------------------------------------
# Training data
# ---------------------------------------------------------------------------------------------

def tune_performances(tunes: Iterable[Tune], config: EventConfig | None = None, *,
                      tempo_factors: Sequence[float] = (0.9, 1.0, 1.1),
                      instruments: Sequence[str] = ("fiddle", "flute", "accordion", "piano"),
                      renderings: int = 2, seed: int = 0) -> Iterator[list[int]]:
    """Expressive renderings of tunes as event-id sequences: the MIDI-event model's training data.

    Each tune is played ``renderings`` times, each time at its rhythm's tempo times one of
    ``tempo_factors`` and by one of ``instruments`` (articulation and dynamics differ), chosen
    with a generator seeded by ``seed`` and the tune's position, so the corpus is reproducible.
    A tune that cannot be played (no notes) is skipped.
    """
    config = config or EventConfig()
    for style in instruments:
        _instrument(style)  # fail early on a bad name
    if renderings < 1:
        raise OptionError("renderings must be at least 1")
    for position, tune in enumerate(tunes):
        rng = random.Random(f"{seed}:{position}")
        for _ in range(renderings):
            factor = rng.choice(list(tempo_factors))
            style = rng.choice(list(instruments))
            qpm = tune_tempo(tune) * factor
            beats = qpm / float(beat_quarters(tune.meter))
            beats = min(400.0, max(20.0, beats))
            if config.controls:  # a tempo of the TEMPO grid, from a downbeat: the beat is known throughout
                beats = float(min(TEMPOS[-1], max(TEMPOS[1], TEMPO_GRID * round(beats / TEMPO_GRID))))
            notes = tune_to_performance(tune, tempo=beats, instrument=style,
                                        seed=rng.randrange(2**31), downbeat=config.controls)
            if notes and config.controls:
                yield tune_controls(tune, notes, config, int(beats)) + notes_to_events(notes, config)
            elif notes:
                yield notes_to_events(notes, config)


def tune_controls(tune: Tune, notes: Sequence[PerformanceNote], config: EventConfig, tempo: int | None) -> list[int]:
    """The control ids that open a performance of ``tune`` at ``tempo`` beats per minute (the
    TEMPO grid's, or None), as played in ``notes`` (``folkrnn.events``' controls)."""
    meter = str(tune.meter) if str(tune.meter) in METERS else None
    fifths = key_fifths(tune.key) if tune.key is not None else None
    fifths = fifths if fifths in KEYS else None
    seconds = max(note.end for note in notes) - min(note.start for note in notes)
    return config.controls_of(tempo=tempo, meter=meter, key=fifths, density=density_of(len(notes), seconds))


def midi_folder_performances(folder: str | PathLike, config: EventConfig | None = None, *,
                             recursive: bool = True,
                             on_error: Callable[[Path, MidiError], None] | None = None,
                             ) -> Iterator[tuple[Path, list[int]]]:
    """Every MIDI file (``.mid``, ``.midi``) in ``folder`` as (path, event ids), sorted by path.

    A file that cannot be read is passed to ``on_error`` (default: a MidiWarning) and skipped.
    Raises MidiError when the folder does not exist.
    """
    root = Path(folder)
    if not root.is_dir():
        raise MidiError("is not a folder", file=str(root))
    pattern = "**/*" if recursive else "*"
    paths = sorted(p for p in root.glob(pattern)
                   if p.suffix.lower() in (".mid", ".midi") and p.is_file())
    for path in paths:
        try:
            pitch, start, end, velocity = read_note_arrays(path)
        except MidiError as error:
            if on_error is not None:
                on_error(path, error)
            else:
                warnings.warn(str(error), MidiWarning, stacklevel=2)
            continue
        yield path, file_controls(pitch, start, end, config) + arrays_to_events(pitch, start, end, velocity, config)


def file_controls(pitch: np.ndarray, start: np.ndarray, end: np.ndarray, config: EventConfig | None) -> list[int]:
    """The control ids that open the events of a MIDI file's notes (tempo, meter and key unknown:
    a file's grid is not known), or none for a vocabulary without controls."""
    if config is None or not config.controls or not len(pitch):
        return []
    keep = (pitch >= config.min_pitch) & (pitch <= config.max_pitch)
    seconds = float(end[keep].max() - start[keep].min()) if keep.any() else 0.0
    return config.controls_of(density=density_of(int(keep.sum()), seconds))


# ---------------------------------------------------------------------------------------------
# MIDI files <-> Performance RNN events


def encode_midi(path: str | PathLike, config: EventConfig | None = None, *,
                program: int | None = None, instrument: str | None = None) -> list[int]:
    """Read a MIDI file and encode its notes as event ids.

    Drum tracks are skipped and the other instruments merged, unless ``program`` (0-127) or
    ``instrument`` (part of a track name) picks some. The sustain pedal extends notes. Raises
    MidiError, naming the file, when it cannot be read or has no notes.
    """
    pitch, start, end, velocity = read_note_arrays(path, program=program, instrument=instrument)
    events = arrays_to_events(pitch, start, end, velocity, config)
    return file_controls(pitch, start, end, config) + events if events else []


def decode_to_midi(ids: Sequence[int], path: str | PathLike, config: EventConfig | None = None, *,
                   program: int = 0, qpm: float = 120.0) -> list[PerformanceNote]:
    """Decode event ids and write them as a one-instrument MIDI file (atomically); returns the notes."""
    notes = events_to_notes(ids, config)
    write_performance(notes, path, program=program, qpm=qpm)
    return notes
