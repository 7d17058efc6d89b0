"""Performance RNN's event encoding: performed notes (seconds) <-> NOTE_ON/NOTE_OFF/TIME_SHIFT/VELOCITY ids.

The rules are Magenta's (Oore et al. 2018, note-seq ``performance_lib``):

- times are rounded half up to steps of ``1/steps_per_second`` s; a note that rounds to zero
  length gets one step, and a note of no length at all (silent) is left out;
- notes are ordered by start time, then pitch; at one step every NOTE_OFF comes before any
  NOTE_ON;
- a gap longer than ``max_shift_steps`` is written as several TIME_SHIFTs;
- a VELOCITY event (``bin = (v - 1) // bin_size + 1``, ``bin_size = ceil(127 / velocity_bins)``)
  precedes a NOTE_ON only when the bin changes;
- decoding closes the open notes of a pitch first-in first-out, ignores a stray NOTE_OFF and a
  note that starts and ends on the same step, and ends a note never closed at the end of the
  sequence, after at most 5 s.

Ids are laid out NOTE_ON (pitch range), NOTE_OFF (pitch range), TIME_SHIFT (1..max_shift_steps),
VELOCITY (1..velocity_bins): 388 ids with the defaults, as in Performance RNN. Their readable
names are ``NOTE_ON_60``, ``NOTE_OFF_60``, ``TIME_SHIFT_10``, ``VELOCITY_5``.

**Controls** (``controls=True``, the models folkrnn trains now): four more blocks of ids follow,
and a performance opens with one of each, in this order. They say what is being played, as
Performance RNN's conditioning signals do, and the model reads them at every step
(:mod:`folkrnn.pulse`):

- ``TEMPO_120``: beats per minute (the beat a dotted quarter in compound meters, else a quarter),
  on a grid of :data:`TEMPO_GRID` from :data:`TEMPOS`; the corpus's renderings play at exactly
  such a tempo and start on a downbeat, so the beat grid is known at every step;
- ``METER_6/8``: one of :data:`METERS`;
- ``KEY_2``: the key signature, sharps positive and flats negative (-7..7);
- ``DENSITY_6``: notes per second over the whole piece, rounded down (``DENSITY_12``: 12 or more).

Each block has an ``_UNKNOWN`` id first (a MIDI file says no tempo, meter or key). Decoding skips
controls.

Reading and writing MIDI files is ``folkrnn.midi``'s job, and so is the file-level pair built on
this module, ``folkrnn.midi.encode_midi`` and ``decode_to_midi``: this module imports nothing of it.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields

import numpy as np

from folkrnn.errors import MidiError, OptionError
from folkrnn.moved import moved_names

__all__ = [
    "EventConfig", "PerformanceNote", "notes_to_events", "events_to_notes",
    "event_names", "names_to_ids",
    "MAX_OPEN_NOTE_SECONDS", "TEMPO_GRID", "TEMPOS", "METERS", "KEYS", "DENSITIES", "CONTROLS",
    "density_of",
]

# A note whose NOTE_OFF never comes ends at the end of the sequence, but after at most this long
# (Performance RNN's MAX_NOTE_DURATION_SECONDS).
MAX_OPEN_NOTE_SECONDS = 5.0

# The controls (see the module docstring). Each block's first value (None) is "unknown".
TEMPO_GRID = 4  # beats per minute between two TEMPO controls
TEMPOS: tuple[int | None, ...] = (None, *range(40, 241, TEMPO_GRID))
METERS: tuple[str | None, ...] = (None, "2/4", "3/4", "4/4", "2/2", "3/2", "6/8", "9/8", "12/8", "3/8", "6/4")
KEYS: tuple[int | None, ...] = (None, *range(-7, 8))
DENSITIES: tuple[int | None, ...] = (None, *range(0, 13))
CONTROLS: tuple[tuple[str, tuple], ...] = (("TEMPO", TEMPOS), ("METER", METERS), ("KEY", KEYS),
                                           ("DENSITY", DENSITIES))


def density_of(count: int, seconds: float) -> int:
    """The DENSITY control's value: ``count`` notes over ``seconds``, per second, rounded down, at most 12."""
    return min(12, int(count / seconds)) if seconds > 0 else 0


@dataclass(frozen=True)
class EventConfig:
    """The event vocabulary. Stored with every MIDI-event model (``asdict`` / ``from_dict``)."""

    steps_per_second: int = 100  # time resolution: one TIME_SHIFT step is 1/steps_per_second s
    max_shift_steps: int = 100  # longest single TIME_SHIFT; longer gaps chain several
    velocity_bins: int = 32  # MIDI velocities 1..127 fall into this many equal bins
    min_pitch: int = 0  # lowest pitch with NOTE_ON/NOTE_OFF ids; notes outside the range are dropped
    max_pitch: int = 127  # highest pitch with NOTE_ON/NOTE_OFF ids
    velocity_events: bool = True  # False: no VELOCITY ids, every decoded note gets velocity 100
    controls: bool = False  # TEMPO, METER, KEY and DENSITY ids open every performance (see above)

    def __post_init__(self) -> None:
        checks = [
            (1 <= self.steps_per_second <= 10_000, "steps_per_second must be 1..10000"),
            (1 <= self.max_shift_steps <= 100_000, "max_shift_steps must be 1..100000"),
            (1 <= self.velocity_bins <= 127, "velocity_bins must be 1..127"),
            (0 <= self.min_pitch <= self.max_pitch <= 127,
             "the pitch range must satisfy 0 <= min_pitch <= max_pitch <= 127"),
        ]
        for ok, message in checks:
            if not ok:
                raise OptionError(f"EventConfig: {message}")

    @classmethod
    def from_dict(cls, values: dict) -> EventConfig:
        """Rebuild a config stored with ``dataclasses.asdict``; unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)  # a config saved before controls has none: False
        if unknown:
            raise OptionError(f"EventConfig: unknown setting(s) {', '.join(unknown)}")
        return cls(**values)

    def to_dict(self) -> dict:
        return asdict(self)

    # --- the id layout -------------------------------------------------------------------
    @property
    def num_pitches(self) -> int:
        return self.max_pitch - self.min_pitch + 1

    @property
    def note_off_offset(self) -> int:
        return self.num_pitches

    @property
    def time_shift_offset(self) -> int:
        return 2 * self.num_pitches

    @property
    def velocity_offset(self) -> int:
        return 2 * self.num_pitches + self.max_shift_steps

    @property
    def control_offset(self) -> int:
        """The first control id (TEMPO_UNKNOWN), when there are controls."""
        return self.velocity_offset + (self.velocity_bins if self.velocity_events else 0)

    @property
    def vocab_size(self) -> int:
        """388 with the defaults: 128 NOTE_ON, 128 NOTE_OFF, 100 TIME_SHIFT, 32 VELOCITY (and the
        controls, when there are)."""
        return self.control_offset + (sum(len(values) for _, values in CONTROLS) if self.controls else 0)

    def control_id(self, kind: str, value) -> int:
        """The id of control ``kind`` ("TEMPO", "METER", "KEY", "DENSITY") at ``value`` (None:
        unknown). Raises OptionError for a value the block does not hold, or a config without controls."""
        if not self.controls:
            raise OptionError("this event vocabulary has no controls")
        offset = self.control_offset
        for name, values in CONTROLS:
            if name == kind:
                if value not in values:
                    raise OptionError(f"{kind} {value!r} is not a control value ({_shown(values)})")
                return offset + values.index(value)
            offset += len(values)
        raise OptionError(f"unknown control {kind!r}")

    def controls_of(self, *, tempo: int | None = None, meter: str | None = None, key: int | None = None,
                    density: int | None = None) -> list[int]:
        """The four control ids that open a performance (None: unknown)."""
        return [self.control_id("TEMPO", tempo), self.control_id("METER", meter), self.control_id("KEY", key),
                self.control_id("DENSITY", density)]

    @property
    def velocity_bin_size(self) -> int:
        return math.ceil(127 / self.velocity_bins)

    def velocity_to_bin(self, velocity: int) -> int:
        """MIDI velocity 1..127 -> bin 1..velocity_bins (values outside 1..127 are clamped)."""
        velocity = min(max(int(velocity), 1), 127)
        return (velocity - 1) // self.velocity_bin_size + 1

    def bin_to_velocity(self, velocity_bin: int) -> int:
        """Bin -> the lowest MIDI velocity in it, as Performance RNN decodes it."""
        return 1 + (velocity_bin - 1) * self.velocity_bin_size

    def names(self) -> list[str]:
        """Readable event names in id order: ``NOTE_ON_0`` ... ``VELOCITY_32``."""
        pitches = range(self.min_pitch, self.max_pitch + 1)
        out = [f"NOTE_ON_{p}" for p in pitches] + [f"NOTE_OFF_{p}" for p in pitches]
        out += [f"TIME_SHIFT_{s}" for s in range(1, self.max_shift_steps + 1)]
        if self.velocity_events:
            out += [f"VELOCITY_{b}" for b in range(1, self.velocity_bins + 1)]
        if self.controls:
            out += [f"{kind}_{'UNKNOWN' if value is None else value}" for kind, values in CONTROLS for value in values]
        return out

    def id_to_name(self, event_id: int) -> str:
        kind, value = self.decode_id(event_id)
        return f"{kind}_{'UNKNOWN' if value is None else value}"

    def name_to_id(self, name: str) -> int:
        """``"NOTE_ON_60"`` -> its id. Raises OptionError for a name outside this vocabulary."""
        kind, _, value_text = name.strip().upper().rpartition("_")
        try:
            value = int(value_text)
        except ValueError:
            value = None
        ranges = {
            "NOTE_ON": (0, self.min_pitch, self.max_pitch),
            "NOTE_OFF": (self.note_off_offset, self.min_pitch, self.max_pitch),
            "TIME_SHIFT": (self.time_shift_offset, 1, self.max_shift_steps),
        }
        if self.velocity_events:
            ranges["VELOCITY"] = (self.velocity_offset, 1, self.velocity_bins)
        if kind in ranges and value is not None:
            offset, low, high = ranges[kind]
            if low <= value <= high:
                return offset + value - low
        if self.controls and name.strip().upper() in (names := self.names()[self.control_offset:]):
            return self.control_offset + names.index(name.strip().upper())
        raise OptionError(f"{name!r} is not an event of this vocabulary "
                          f"(NOTE_ON_p, NOTE_OFF_p, TIME_SHIFT_s, VELOCITY_b)")

    def decode_id(self, event_id: int) -> tuple[str, int]:
        """Id -> (kind, value), e.g. 316 -> ("TIME_SHIFT", 61). Raises MidiError when out of range."""
        event_id = int(event_id)
        if 0 <= event_id < self.note_off_offset:
            return "NOTE_ON", event_id + self.min_pitch
        if event_id < self.time_shift_offset and event_id >= 0:
            return "NOTE_OFF", event_id - self.note_off_offset + self.min_pitch
        if event_id < self.velocity_offset and event_id >= 0:
            return "TIME_SHIFT", event_id - self.time_shift_offset + 1
        if event_id < self.control_offset and event_id >= 0:
            return "VELOCITY", event_id - self.velocity_offset + 1
        offset = self.control_offset
        for kind, values in CONTROLS if self.controls else ():
            if offset <= event_id < offset + len(values):
                return kind, values[event_id - offset]
            offset += len(values)
        raise MidiError(f"event id {event_id} is outside the vocabulary of {self.vocab_size}")


@dataclass(frozen=True, slots=True)
class PerformanceNote:
    """One performed note: MIDI ``pitch``, ``start`` and ``end`` in seconds, MIDI ``velocity``.

    This is performance time (seconds), unlike ``folkrnn.music.Note`` (quarter notes).
    """

    pitch: int
    start: float
    end: float
    velocity: int = 100

    def __post_init__(self) -> None:
        if not 0 <= self.pitch <= 127:
            raise ValueError(f"pitch {self.pitch} is outside MIDI's 0..127")
        if not 0 <= self.velocity <= 127:
            raise ValueError(f"velocity {self.velocity} is outside MIDI's 0..127")
        if not (math.isfinite(self.start) and math.isfinite(self.end)):
            raise ValueError("start and end must be finite")
        if self.start < 0 or self.end < self.start:
            raise ValueError(f"a note from {self.start} s to {self.end} s is not a note")

    @property
    def duration(self) -> float:
        return self.end - self.start


def notes_to_events(notes: Iterable[PerformanceNote], config: EventConfig | None = None) -> list[int]:
    """Encode performed notes as event ids (Performance RNN's rules, see the module docstring).

    Notes outside ``config``'s pitch range, and notes of no length, are left out. The sequence
    starts at time 0, so leading silence becomes TIME_SHIFTs.
    """
    notes = list(notes)
    pitch = np.fromiter((n.pitch for n in notes), dtype=np.int64, count=len(notes))
    start = np.fromiter((n.start for n in notes), dtype=np.float64, count=len(notes))
    end = np.fromiter((n.end for n in notes), dtype=np.float64, count=len(notes))
    velocity = np.fromiter((n.velocity for n in notes), dtype=np.int64, count=len(notes))
    return arrays_to_events(pitch, start, end, velocity, config)


def arrays_to_events(pitch: np.ndarray, start: np.ndarray, end: np.ndarray, velocity: np.ndarray,
                     config: EventConfig | None = None) -> list[int]:
    """``notes_to_events`` on parallel arrays (seconds), vectorised: the fast path for files."""
    config = config or EventConfig()
    # a note of no length (its on and off at one tick) is silent: left out, it cannot cut short a
    # real note of its pitch that starts with it (music21's test16.mid)
    keep = (pitch >= config.min_pitch) & (pitch <= config.max_pitch) & (end > start)
    if not keep.all():
        pitch, start, end, velocity = pitch[keep], start[keep], end[keep], velocity[keep]
    n = len(pitch)
    if n == 0:
        return []
    # Notes in Performance RNN's order: by start time (unrounded), then pitch.
    order = np.lexsort((pitch, start))
    pitch, start, end, velocity = pitch[order], start[order], end[order], velocity[order]
    sps = config.steps_per_second
    # Round half up to steps; a note that rounds to zero length gets one step.
    start_step = np.floor(start * sps + 0.5).astype(np.int64)
    end_step = np.maximum(np.floor(end * sps + 0.5).astype(np.int64), start_step + 1)

    # Every note gives an onset and an offset event; sort by (step, offsets first, note order).
    steps = np.concatenate([end_step, start_step])
    is_on = np.concatenate([np.zeros(n, np.int64), np.ones(n, np.int64)])
    note_index = np.concatenate([np.arange(n), np.arange(n)])
    order = np.lexsort((note_index, is_on, steps))
    steps, is_on, note_index = steps[order], is_on[order], note_index[order]
    num_events = 2 * n

    # TIME_SHIFTs before each event: ceil(delta / max) of them, all of max length but the last.
    delta = np.diff(steps, prepend=0)
    max_shift = config.max_shift_steps
    shift_count = -(-delta // max_shift)  # ceil, 0 when delta is 0
    shift_last = delta - (shift_count - 1) * max_shift

    # A VELOCITY event before a NOTE_ON whose bin differs from the previous NOTE_ON's.
    velocity_count = np.zeros(num_events, np.int64)
    bins = np.zeros(num_events, np.int64)
    if config.velocity_events:
        onsets = np.flatnonzero(is_on)
        clipped = np.clip(velocity[note_index[onsets]], 1, 127)
        onset_bins = (clipped - 1) // config.velocity_bin_size + 1
        changed = onset_bins != np.concatenate([[0], onset_bins[:-1]])
        velocity_count[onsets] = changed
        bins[onsets] = onset_bins

    per_event = shift_count + velocity_count + 1
    base = np.cumsum(per_event) - per_event  # where each event's tokens begin
    out = np.empty(int(per_event.sum()), dtype=np.int64)
    # time shifts
    total_shifts = int(shift_count.sum())
    if total_shifts:
        owner = np.repeat(np.arange(num_events), shift_count)
        within = np.arange(total_shifts) - np.repeat(np.cumsum(shift_count) - shift_count, shift_count)
        value = np.where(within == shift_count[owner] - 1, shift_last[owner], max_shift)
        out[base[owner] + within] = config.time_shift_offset + value - 1
    # velocities
    with_velocity = np.flatnonzero(velocity_count)
    out[base[with_velocity] + shift_count[with_velocity]] = config.velocity_offset + bins[with_velocity] - 1
    # the note events themselves
    note_id = pitch[note_index] - config.min_pitch + np.where(is_on == 1, 0, config.note_off_offset)
    out[base + shift_count + velocity_count] = note_id
    return out.tolist()


def _shown(values: tuple) -> str:
    known = [value for value in values if value is not None]
    return f"{known[0]}..{known[-1]}" if all(isinstance(v, int) for v in known) else ", ".join(map(str, known))


def events_to_notes(ids: Sequence[int], config: EventConfig | None = None, *,
                    max_open_seconds: float = MAX_OPEN_NOTE_SECONDS) -> list[PerformanceNote]:
    """Decode event ids to performed notes, sorted by start and pitch.

    Open notes of a pitch close first-in first-out; a stray NOTE_OFF is ignored, and so is a note
    that starts and ends on the same step; a note never closed ends at the end of the sequence,
    after at most ``max_open_seconds``. Before the first VELOCITY event, notes get velocity 100.
    Raises MidiError for an id outside the vocabulary.
    """
    config = config or EventConfig()
    sps = config.steps_per_second
    num_pitches = config.num_pitches
    off_offset, shift_offset = config.note_off_offset, config.time_shift_offset
    velocity_offset, control_offset, vocab_size = config.velocity_offset, config.control_offset, config.vocab_size
    min_pitch, bin_size = config.min_pitch, config.velocity_bin_size
    open_notes: dict[int, deque[tuple[int, int]]] = {}
    found: list[tuple[int, int, int, int]] = []  # (start step, end step, pitch, velocity)
    step = 0
    velocity = 100
    for position, event_id in enumerate(ids):
        event_id = int(event_id)
        if 0 <= event_id < num_pitches:  # NOTE_ON
            open_notes.setdefault(event_id, deque()).append((step, velocity))
        elif num_pitches <= event_id < shift_offset:  # NOTE_OFF
            queue = open_notes.get(event_id - off_offset)
            if queue:
                start_step, note_velocity = queue.popleft()
                if start_step != step:
                    found.append((start_step, step, event_id - off_offset + min_pitch, note_velocity))
        elif shift_offset <= event_id < velocity_offset:  # TIME_SHIFT
            step += event_id - shift_offset + 1
        elif velocity_offset <= event_id < control_offset:  # VELOCITY
            velocity = 1 + (event_id - velocity_offset) * bin_size
        elif control_offset <= event_id < vocab_size:  # a control: nothing to play
            continue
        else:
            raise MidiError(f"event id {event_id} at position {position} is outside the "
                            f"vocabulary of {vocab_size}")
    cap = int(round(max_open_seconds * sps))
    for index, queue in open_notes.items():
        for start_step, note_velocity in queue:
            end_step = min(step, start_step + cap)
            if end_step > start_step:
                found.append((start_step, end_step, index + min_pitch, note_velocity))
    found.sort(key=lambda note: (note[0], note[2], note[1]))
    return [PerformanceNote(p, s / sps, e / sps, v) for s, e, p, v in found]


def event_names(ids: Iterable[int], config: EventConfig | None = None) -> list[str]:
    """Ids -> readable names (``NOTE_ON_60`` ...)."""
    config = config or EventConfig()
    return [config.id_to_name(i) for i in ids]


def names_to_ids(names: Iterable[str], config: EventConfig | None = None) -> list[int]:
    """Readable names -> ids; raises OptionError for a name outside the vocabulary."""
    config = config or EventConfig()
    return [config.name_to_id(name) for name in names]


# Names that moved to their owners: ``encode_midi`` and ``decode_to_midi`` read and write MIDI files,
# so they live in folkrnn.midi (events imports nothing of midi: no import cycle). Old code that
# asks this module for them still gets them, with a DeprecationWarning; folkrnn itself never does.
__getattr__ = moved_names(__name__, {"encode_midi": "folkrnn.midi", "decode_to_midi": "folkrnn.midi"})
