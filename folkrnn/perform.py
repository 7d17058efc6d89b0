"""Performances from a MIDI-event model: sample event sequences (NumPy, no torch) and write MIDI files.

The MIDI-event model (Performance RNN's events, trained by ``folkrnn train --encoding midi``) writes
a performance one event at a time. Sampling is the decoding loop ABC tunes use
(:func:`folkrnn.decode.loop.decode`): the same token choice (temperature, top-k, top-p, greedy)
with its counter-based random numbers, so the same seed and options give the same performance on
every machine and in any batch (a decision that a batch's float rounding could change is made again
with the piece on its own, as in ``sample_tunes``).

**The event grammar** (:class:`EventGrammar`; ``PerformConfig.guards``, on by default) makes every
performance playable by its instrument, as the ABC grammar makes every tune whole: one note at a
time on a monophonic instrument (the fiddle, the default, flutes, whistles, pipes: a dance tune is
one line), at most ``max_voices`` on another; every note ended within ``max_note`` seconds; pitches
in the instrument's range; a VELOCITY before the first note, and no end (``</s>``) before it. A
performance stops when the model ends it, when it reaches ``seconds`` (the last TIME_SHIFT is
shortened to land on the limit), or after ``max_events`` events; the notes still sounding end with
it. Without the grammar (``guards=False``, ``--no-guards``) the raw model writes what it likes
(notes never ended are closed by ``folkrnn.events.events_to_notes`` after at most 5 s).

**Priming.** The events of a MIDI file (``prime``) start every performance; the model continues
them, and the file's notes are part of the result. Control tokens (``EventGrammar(controls=...)``)
are forced the same way, before the prime; a model that reads feature columns with each event gets
them from a tracker per piece (``EventGrammar(tracker=...)``), as ABC models get their positions.

``perform`` writes ``<out>/perf-0001.mid`` ... (``folkrnn.midi.write_performance``, atomically) and
``summary.json`` (the seed, events, notes and seconds of each piece, and the command that makes it
again); nothing is overwritten without ``force``.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import shlex
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from folkrnn import __version__
from folkrnn.checkpoint import SHIPPED, load_model
from folkrnn.compose import parse_key_option
from folkrnn.decode.loop import DONE, Constraint, Row, decode
from folkrnn.errors import FolkError, MidiError, ModelError, OptionError
from folkrnn.events import CONTROLS, KEYS, METERS, TEMPO_GRID, TEMPOS, EventConfig, PerformanceNote, events_to_notes
from folkrnn.files import EXISTS, exists, folder_lock, prepare_folder, staged, write_atomic
from folkrnn.limits import check_count
from folkrnn.midi import beat_quarters, encode_midi, key_from_fifths, write_performance
from folkrnn.music import key_signature, parse_meter
from folkrnn.sample import SampleConfig
from folkrnn.schemes import scheme
from folkrnn.tables import DANCES, INSTRUMENTS, MAX_SEED, Instrument, find_instrument

__all__ = [
    "PerformConfig", "Controls", "Performance", "Performer", "PerformResult", "EventGrammar", "load_performer",
    "prime_events", "sample_performances", "perform", "max_note_seconds", "DEFAULT_INSTRUMENT",
    "DEFAULT_MAX_NOTE", "file_signatures",
]

_STRATEGIES = ("sample", "greedy")
DEFAULT_INSTRUMENT = "fiddle"  # who plays a performance unless told (folkrnn.tables.INSTRUMENTS)
# How long a note may sound, in seconds, when neither the options nor the model say: longer than the
# long notes of a dance tune at a dance's tempo (a reel's half note at 100 half notes a minute is 0.6 s),
# far shorter than the hanging notes of 10-20 s the raw model writes
DEFAULT_MAX_NOTE = 2.0


@dataclass(frozen=True)
class PerformConfig:
    """How performances are drawn from the model. Persisted in summaries with ``asdict``."""

    strategy: str = "sample"  # "sample" or "greedy"
    temperature: float = 1.0  # the logits are divided by this (> 0)
    top_k: int = 0  # sample only among the k most probable events (0: no cut)
    # then only the smallest set reaching this probability (1: no cut). 0.9 was chosen on the validation
    # split (benchmarks/perform_quality.py --split valid, seeds 100 and 200, n=100): against 0.85 and 0.95,
    # its onset regularity and grid share came closest to the real tunes' (0.68 vs 0.64, 92% vs 94%) and
    # its pitch range within 2 semitones of theirs; 0.95 wanders (range 21 vs 17 with seed 200). Checked
    # again on the 16-epoch model (seed 100): 0.9 keeps 94% of onsets on a grid (real 94%), 0.95 86%
    top_p: float = 0.9
    seconds: float = 30.0  # a performance stops when it is this long (0: only max_events stops it)
    max_events: int = 5000  # and after this many events, the prime's included
    # who plays (folkrnn.tables.INSTRUMENTS, or an alias): the range the grammar keeps to, and one
    # note at a time when the instrument is monophonic (None: any pitch, max_voices at once)
    instrument: str | None = DEFAULT_INSTRUMENT
    guards: bool = True  # the event grammar (EventGrammar): playable by the instrument; False: the raw model
    max_note: float | None = None  # seconds a note sounds at most (None: the model's own figure, else 2)
    max_voices: int = 4  # notes sounding at once at most, on a polyphonic instrument (a monophonic one: 1)
    attempts: int = 10  # seeds tried for a piece before it is reported as not made (no notes)

    def sample_config(self) -> SampleConfig:
        """The :class:`~folkrnn.sample.SampleConfig` of the token choice (checked)."""
        return SampleConfig(strategy=self.strategy, temperature=self.temperature, top_k=self.top_k,
                            top_p=self.top_p).check()

    def check(self) -> PerformConfig:
        """Raise OptionError for an option out of its range; return self."""
        if self.strategy not in _STRATEGIES:
            raise OptionError(f"unknown strategy {self.strategy!r} for performances; choose sample or greedy")
        self.sample_config()
        if not (math.isfinite(self.seconds) and 0 <= self.seconds <= 3600):
            raise OptionError(f"--seconds must be in 0..3600 (0: no limit), not {self.seconds}")
        if not 1 <= self.max_events <= 1_000_000:
            raise OptionError(f"--max-events must be in 1..1000000, not {self.max_events}")
        if self.instrument is not None and find_instrument(self.instrument) is None:
            raise OptionError(f"unknown instrument {self.instrument!r}; choose one of: {', '.join(INSTRUMENTS)}")
        if self.max_note is not None and not (math.isfinite(self.max_note) and 0.01 <= self.max_note <= 60):
            raise OptionError(f"--max-note must be in 0.01..60 seconds, not {self.max_note}")
        if not 1 <= self.max_voices <= 16:
            raise OptionError(f"--max-voices must be in 1..16, not {self.max_voices}")
        if self.attempts < 1:
            raise OptionError("attempts must be at least 1")
        return self


@dataclass(frozen=True)
class Controls:
    """What a performance plays: the controls that open it (``folkrnn.events``), each None for the
    model's own choice among the values it knows (never "unknown": the pulse needs a tempo and a
    meter). A model without controls takes none."""

    rhythm: str | None = None  # a dance (folkrnn.tables.DANCES): its meters and its tempo, unless given
    tempo: float | None = None  # beats per minute (a dotted quarter in compound meters, else a quarter)
    meter: str | None = None  # "6/8", one of folkrnn.events.METERS
    key: str | None = None  # "D", "Bb", "Ador": its key signature
    density: float | None = None  # notes per second

    def allowed(self, config: EventConfig) -> list[list[int]]:
        """The control ids each of the four (TEMPO, METER, KEY, DENSITY) may take, in order.
        Raises OptionError for a value out of range or unknown."""
        dance = None
        if self.rhythm is not None:
            dance = DANCES.get(str(self.rhythm).strip().lower())
            if dance is None:
                raise OptionError(f"unknown rhythm {self.rhythm!r} for performances; choose one of: "
                                  f"{', '.join(DANCES)}")
        known = {kind: [config.control_id(kind, value) for value in values if value is not None]
                 for kind, values in CONTROLS}
        tempo = self.tempo if self.tempo is not None else (dance.tempo if dance is not None else None)
        if tempo is not None:
            if not (math.isfinite(tempo) and 20 <= tempo <= 400):
                raise OptionError(f"--tempo must be in 20..400 beats per minute, not {tempo:g}")
            nearest = min(TEMPOS[1:], key=lambda value: (abs(value - tempo), value))
            if abs(nearest - tempo) > TEMPO_GRID:
                raise OptionError(f"--tempo {tempo:g} is outside the {TEMPOS[1]}..{TEMPOS[-1]} beats per minute "
                                  "the model knows")
            known["TEMPO"] = [config.control_id("TEMPO", nearest)]
        if self.meter is not None:
            try:
                meter = str(parse_meter(str(self.meter)))
            except ValueError:
                meter = str(self.meter)
            if meter not in METERS:
                raise OptionError(f"--meter {self.meter!r}: the model knows {', '.join(m for m in METERS if m)}")
            known["METER"] = [config.control_id("METER", meter)]
        elif dance is not None and any(m in METERS for m in dance.meters):
            known["METER"] = [config.control_id("METER", m) for m in dance.meters if m in METERS]
        if self.key is not None:
            tonic, mode = parse_key_option(str(self.key))
            fifths = sum(key_signature(tonic, mode or "maj").values())
            if fifths not in KEYS:
                raise OptionError(f"--key {self.key!r} has {abs(fifths)} accidentals; the model knows up to 7")
            known["KEY"] = [config.control_id("KEY", fifths)]
        if self.density is not None:
            if not (math.isfinite(self.density) and 0 < self.density <= 30):
                raise OptionError(f"--density must be in 0..30 notes per second, not {self.density:g}")
            known["DENSITY"] = [config.control_id("DENSITY", min(12, int(self.density)))]
        return [known[kind] for kind, _ in CONTROLS]

    def given(self) -> dict:
        """The controls given, for summaries and commands."""
        return {name: value for name, value in asdict(self).items() if value is not None}


@dataclass
class Performance:
    """One performance drawn from the model."""

    index: int  # which piece of the request this is
    seed: int  # the seed that made it (the last one tried)
    events: list[int] = field(default_factory=list)  # event ids (EventConfig), prime first; no <s>, </s>
    notes: list[PerformanceNote] = field(default_factory=list)  # decoded, sorted by start and pitch
    seconds: float = 0.0  # its length: the time of its last event
    ended: str = ""  # "end" (the model ended it), "seconds" or "events" (a limit did)
    log_prob: float = 0.0  # sum of log-probabilities of the chosen events (the prime's excluded)
    prime_events: int = 0  # how many of the events are the prime's
    failures: list[tuple[int, str]] = field(default_factory=list)  # seeds tried before, and why
    ok: bool = False  # False: no seed made a performance with notes
    controls: dict = field(default_factory=dict)  # what its controls say: tempo, meter, key (fifths), density

    @property
    def requested_seed(self) -> int:
        return self.failures[0][0] if self.failures else self.seed


class _Layout:
    """Where the events sit in the model's vocabulary, for the grammar and the decoding."""

    def __init__(self, vocabulary, config: EventConfig, where: str) -> None:
        names = config.names()
        missing = [name for name in names if name not in vocabulary]
        if missing:
            raise ModelError(f"{where}: the vocabulary lacks events of its own EventConfig "
                             f"({', '.join(missing[:3])}); the model is damaged")
        self.config = config
        self.vocab_of = np.array([vocabulary.id(name) for name in names], np.int64)  # event -> token
        self.event_of = np.full(len(vocabulary), -1, np.int64)  # token -> event (-1: special)
        self.event_of[self.vocab_of] = np.arange(len(names))
        pitches = config.num_pitches
        self.on, self.off = self.vocab_of[:pitches], self.vocab_of[pitches:2 * pitches]
        self.bos, self.eos = vocabulary.bos_id, vocabulary.eos_id
        self.allowed = self.event_of >= 0  # (V,) what may ever be chosen, </s> aside


@dataclass
class Performer:
    """A MIDI-event model loaded for sampling."""

    path: Path  # the model directory
    label: str  # how the user named it ("default" for the shipped model)
    engine: object  # the NumPy LSTM
    vocabulary: object  # the model's Vocabulary
    events: EventConfig  # the event vocabulary it was trained on
    training: dict = field(default_factory=dict)  # its training record
    features: str = ""  # the feature scheme it reads with each event (folkrnn.schemes: "pulse-1"), or none
    layout: _Layout = field(init=False, repr=False)  # where the events sit in the vocabulary

    def __post_init__(self) -> None:
        self.layout = _Layout(self.vocabulary, self.events, str(self.path))

    def tracker(self) -> Callable[[], object] | None:
        """A factory of the feature trackers its rows need (one per performance), or None."""
        if not self.features:
            return None
        module = scheme(self.features, "midi")
        shared = module.classes(self.vocabulary.tokens, self.events.to_dict())
        return lambda: module.Pulse(shared)


def load_performer(model: str | os.PathLike | None = None) -> Performer:
    """Load a MIDI-event model for sampling (NumPy only). ``None``: the shipped default model.

    Raises
    ------
    ModelError
        No default model installed, a missing or damaged model, or an ABC model.
    """
    if model is None:
        path, label = SHIPPED / "midi", "default"
        if not (path / "config.json").is_file():
            raise ModelError(f"no default MIDI-event model is installed (expected {path}); train one "
                             f"with `folkrnn train --encoding midi --out {path}` or pass --model DIR")
    else:
        path, label = Path(model), str(model)
    checkpoint = load_model(path)
    if checkpoint.encoding != "midi":
        raise ModelError(f"{path} is an {checkpoint.encoding.upper()} model; performances need a "
                         "MIDI-event model (compose and generate write tunes with ABC models)")
    try:
        config = EventConfig.from_dict(dict(checkpoint.encoding_params))
    except (OptionError, TypeError) as error:
        raise ModelError(f"{path}: config.json's event settings are not an EventConfig ({error})") from None
    return Performer(path=checkpoint.path, label=label, engine=checkpoint.engine(),
                     vocabulary=checkpoint.vocabulary, events=config, training=dict(checkpoint.training),
                     features=checkpoint.model_config.get("features") or "")


def prime_events(path: str | os.PathLike, config: EventConfig | None = None) -> list[int]:
    """The events of a MIDI file, to start performances with. Raises MidiError for a file that
    cannot be read or has no notes."""
    config = config or EventConfig()
    ids = [event for event in encode_midi(path, config) if event < config.control_offset]  # its controls: ours
    if not any(event < config.num_pitches for event in ids):
        raise MidiError("the prime has no notes in the model's pitch range", file=str(path))
    return ids


# ---------------------------------------------------------------------------------------------
# The event grammar


class _Row(Row):
    """One performance being written: its events, the notes sounding, the time."""

    __slots__ = ("events", "sounding", "heard", "step", "voiced", "ended", "decoded", "opened")

    def __init__(self, index: int, seed: int, start: int, forced: list[int], voiced: bool, tracker=None) -> None:
        super().__init__(index, seed, start, forced, tracker)
        self.events: list[int] = []  # event ids (EventConfig), without the special tokens
        self.sounding: list[tuple[int, int]] = []  # (onset step, pitch index) of each sounding note, oldest first
        self.heard = False  # a note has sounded (time has passed while one sounded)
        self.step = 0  # time, in steps
        self.voiced = voiced  # a VELOCITY event has come (or the events have none)
        self.ended = ""  # "end", "seconds" or "events": what ended it
        self.decoded: list[PerformanceNote] = []  # its notes, once it has ended
        self.opened: list[int] = []  # the control tokens written so far


class EventGrammar(Constraint):
    """The MIDI-event grammar: performances playable by the instrument by construction, as
    :class:`~folkrnn.abc.grammar.AbcGrammar` makes tunes whole (the constraint of
    :func:`folkrnn.decode.loop.decode`; the rows are performances, their results :class:`Performance`).

    With ``options.guards`` (the default), before each step it masks every event that would

    - start a note outside the instrument's range (``folkrnn.tables.INSTRUMENTS``: its ``lowest`` to
      ``highest``, within the model's pitches; no instrument: all of them);
    - start the first note before a VELOCITY event sets its loudness (when the events have velocities);
    - end a note that is not sounding (a NOTE_OFF only for a sounding pitch);
    - let a note sound longer than ``max_note`` seconds: a TIME_SHIFT longer than the time the oldest
      sounding note has left is masked, so at 0 left only a NOTE_OFF, a NOTE_ON (which ends that note,
      below), a VELOCITY or the end may come;
    - end the performance (``</s>``) before a note has sounded;
    - write a control (``controls``: they open a performance, forced).

    When the model chooses a NOTE_ON that would sound more notes than the instrument plays at once
    (one on a monophonic instrument, ``max_voices`` on another), or a pitch already sounding, or
    while a note has had its ``max_note``, the sampler first writes the NOTE_OFFs that make room (the
    notes to end, the oldest first), then forces the NOTE_ON: the model reads every event written, as
    in the performances it learnt from, rather than a NOTE_ON that no real performance has there.
    The model's choice of the NOTE_ON is what scores; the events written for it score nothing.

    Forced events (``controls``, then the prime) are taken as they come; the grammar follows them,
    and ends by the rules above what they leave sounding. Without ``guards`` it only follows: the raw
    model (any event, the end at any time).

    Every performance ends when the model ends it, at ``options.seconds`` (the last TIME_SHIFT is
    shortened to land on the limit) or after ``options.max_events`` events; the notes still sounding
    end with it. One that ends with no notes fails (its seed is retried).

    ``tracker``: a factory of feature trackers, one per row (``push(token_id) -> tuple[int, ...]``),
    for a model that reads feature columns with each token (:class:`~folkrnn.decode.loop.Row`).
    """

    def __init__(self, layout: _Layout, options: PerformConfig, *, instrument: Instrument | None = None,
                 max_note: float = DEFAULT_MAX_NOTE, prime: Sequence[int] = (),
                 controls: Sequence[Sequence[int]] = (), tracker: Callable[[], object] | None = None) -> None:
        config = layout.config
        self.layout, self.options, self.config = layout, options, config
        self.guards = options.guards
        self.bos, self.eos = layout.bos, layout.eos
        self.prime = [int(event) for event in prime]
        # the controls: for each, the tokens it may take (one: given; several: the model chooses among them);
        # the prime comes after them
        self.controls = [np.asarray([int(layout.vocab_of[event]) for event in ids], np.int64) for ids in controls]
        if any(not len(ids) for ids in self.controls):
            raise OptionError("a control with no value to take")
        self.forced = [int(layout.vocab_of[event]) for event in self.prime]
        self.tracker = tracker
        self.voices = 1 if instrument is not None and instrument.monophonic else options.max_voices
        self.max_steps = max(1, round(max_note * config.steps_per_second))  # a note sounds this long at most
        self.limit = round(options.seconds * config.steps_per_second) if options.seconds else 0
        # the first control id (TEMPO, METER, KEY, DENSITY follow the VELOCITYs), when the events have them
        self.control_offset = config.control_offset
        pitches = config.num_pitches
        low, high = config.min_pitch, config.max_pitch
        if instrument is not None:
            low, high = max(low, instrument.lowest), min(high, instrument.highest)
            if low > high:
                raise OptionError(f"the {instrument.name}'s range (MIDI {instrument.lowest}-{instrument.highest}) "
                                  f"and the model's pitches ({config.min_pitch}-{config.max_pitch}) do not meet")
        self.shifts = layout.vocab_of[config.time_shift_offset:config.velocity_offset]  # TIME_SHIFT 1, 2, ...
        # (V,) what a row may take before its own state is counted: no NOTE_OFF, no end, NOTE_ONs in range
        self.base = layout.allowed.copy()
        if self.guards:
            self.base[layout.off] = False
            self.base[layout.on] = False
            self.base[layout.on[low - config.min_pitch:high - config.min_pitch + 1]] = True
            self.base[layout.vocab_of[self.control_offset:]] = False
        else:
            self.base[self.eos] = True
        self.pitches = pitches

    def start(self, index: int, seed: int) -> _Row:
        return _Row(index, seed, self.bos, [] if self.controls else self.forced, not self.config.velocity_events,
                    self.tracker() if self.tracker is not None else None)

    def masks(self, rows: list[_Row]) -> np.ndarray:
        masks = np.repeat(self.base[None, :], len(rows), axis=0)  # (B, V)
        opening = [i for i, row in enumerate(rows) if len(row.opened) < len(self.controls)]
        for i in opening:  # a control's values, and nothing else, whatever the guards
            masks[i] = False
            masks[i, self.controls[len(rows[i].opened)]] = True
        if not self.guards:
            return masks
        layout = self.layout
        for i, row in enumerate(rows):
            if len(row.opened) < len(self.controls):
                continue
            if not row.voiced:
                masks[i, layout.on] = False
            if row.heard:
                masks[i, self.eos] = True
            if row.sounding:
                masks[i, layout.off[[pitch for _, pitch in row.sounding]]] = True
                left = self.max_steps - (row.step - row.sounding[0][0])  # the oldest note's time left
                masks[i, self.shifts[max(left, 0):]] = False
        return masks

    def misfit(self, row: _Row, token: int) -> str:
        return ""  # forced events are taken as they come

    def _room(self, row: _Row, pitch: int) -> list[int]:
        """The pitches whose notes end before a NOTE_ON of ``pitch``, the oldest first: the same
        pitch, notes that have had their time, and the oldest others while too many would sound."""
        ending = [pitch == p or row.step - onset >= self.max_steps for onset, p in row.sounding]
        excess = len(ending) - sum(ending) + 1 - self.voices
        for k in range(len(ending)):
            if excess <= 0:
                break
            if not ending[k]:
                ending[k], excess = True, excess - 1
        return [p for (_, p), end in zip(row.sounding, ending) if end]

    def advance(self, row: _Row, token: int, chosen: bool) -> str:
        layout, config = self.layout, self.config
        if token == self.eos:
            row.ended = "end"
            return self._end(row)
        event = int(layout.event_of[token])
        if len(row.opened) < len(self.controls):  # a control: the model reads it; it is no event
            row.append(token)
            row.opened.append(token)
            if len(row.opened) == len(self.controls):
                row.forced = list(self.forced)  # the prime, after the controls
            return ""
        pitches = self.pitches
        if event < pitches:
            if chosen and self.guards:
                ending = self._room(row, event)
                if ending:  # end them first; the NOTE_ON comes after
                    row.forced[:0] = [int(layout.off[p]) for p in ending[1:]] + [token]
                    event = pitches + ending[0]
                    token = int(layout.vocab_of[event])
        if event < pitches:
            row.sounding.append((row.step, event))
        elif event < 2 * pitches:
            pitch = event - pitches
            for k, (_, p) in enumerate(row.sounding):  # the oldest note of the pitch ends (first in, first out)
                if p == pitch:
                    del row.sounding[k]
                    break
        elif event < config.velocity_offset:
            shift = event - config.time_shift_offset + 1
            if self.limit and row.step + shift >= self.limit:
                shift = self.limit - row.step  # the last shift lands on the limit
                event = config.time_shift_offset + shift - 1
                token = int(layout.vocab_of[event])
                row.ended = "seconds"
            row.step += shift
            row.heard = row.heard or bool(row.sounding)
        elif event < self.control_offset:
            row.voiced = True
        row.append(token)
        row.events.append(event)
        if not row.ended and len(row.events) >= self.options.max_events:
            row.ended = "events"
        return self._end(row) if row.ended else ""

    def _end(self, row: _Row) -> str:
        row.decoded = events_to_notes(row.events, self.config)
        return DONE if row.decoded else f"no notes (ended by {row.ended})"

    def fork(self, row: _Row) -> _Row:
        copy = _Row(row.index, row.seed, row.ids[0], list(row.forced), row.voiced)
        copy.opened = list(row.opened)
        copy.ids, copy.log_prob, copy.events = list(row.ids), row.log_prob, list(row.events)
        copy.sounding, copy.heard, copy.step = list(row.sounding), row.heard, row.step
        if row.tracker is not None:
            copy.tracker, copy.feature = row.tracker.clone(), row.feature
        return copy

    def result(self, row: _Row, failures: list[tuple[int, str]]) -> Performance:
        if row.reason:
            return Performance(index=row.index, seed=row.seed, events=row.events, ended=row.ended,
                               failures=failures, ok=False)
        opened = {}
        for token in row.opened:
            kind, value = self.config.decode_id(int(self.layout.event_of[token]))
            opened[kind.lower()] = value
        return Performance(index=row.index, seed=row.seed, events=row.events, notes=row.decoded,
                           seconds=row.step / self.config.steps_per_second, ended=row.ended,
                           log_prob=row.log_prob, prime_events=len(self.prime), failures=failures, ok=True,
                           controls=opened)


# ---------------------------------------------------------------------------------------------
# Sampling


def max_note_seconds(options: PerformConfig, performer: Performer) -> float:
    """How long a note may sound: ``options.max_note``, else the model's own figure (its training
    record's ``performance.max_note_s``), else :data:`DEFAULT_MAX_NOTE`."""
    if options.max_note is not None:
        return float(options.max_note)
    figure = (performer.training.get("performance") or {}).get("max_note_s")
    try:
        figure = float(figure)
    except (TypeError, ValueError):
        return DEFAULT_MAX_NOTE
    return figure if math.isfinite(figure) and 0 < figure <= 60 else DEFAULT_MAX_NOTE


def _check_prime(prime: Sequence[int], options: PerformConfig, config: EventConfig) -> list[int]:
    """The prime's events, refused (OptionError, one line) when a piece cannot hold them: outside
    the model's ids, as many events as ``--max-events``, or as long as ``--seconds``."""
    prime = [int(event) for event in prime]
    if any(not 0 <= event < config.vocab_size for event in prime):
        raise OptionError(f"the prime holds events outside the model's {config.vocab_size}")
    if len(prime) >= options.max_events:
        notes = sum(1 for event in prime if event < config.num_pitches)
        raise OptionError(f"the prime is too long: {notes:,} notes in {len(prime):,} events, and a piece has "
                          f"at most --max-events {options.max_events:,} events, the prime's included; "
                          "give a shorter prime or a larger --max-events")
    prime_steps = sum(event - config.time_shift_offset + 1 for event in prime
                      if config.time_shift_offset <= event < config.velocity_offset)
    if options.seconds and prime_steps >= round(options.seconds * config.steps_per_second):
        raise OptionError(f"the prime lasts {prime_steps / config.steps_per_second:.2f} s, as long "
                          f"as --seconds allows ({options.seconds:g} s)")
    return prime


def sample_performances(performer: Performer, seeds: Sequence[int], *, options: PerformConfig | None = None,
                        prime: Sequence[int] = (), next_seed: Callable[[int], int] | None = None,
                        batch_size: int = 256, on_finish: Callable[[Performance], None] | None = None,
                        on_step: Callable[[], None] | None = None, workers: int = 1,
                        controls: Controls | None = None) -> list[Performance]:
    """Sample one performance per seed, many at a time; piece i depends only on ``seeds[i]``, the
    options and the prime.

    Parameters
    ----------
    performer
        The model (:func:`load_performer`).
    seeds
        One seed per piece (0 to 2**63 - 1).
    options
        How to sample, for which instrument, and when to stop.
    prime
        Event ids every piece starts with (:func:`prime_events`).
    next_seed
        The seed to try after one whose piece has no notes (default: seed + 1).
    batch_size
        Pieces per step at most.
    on_finish
        Called with each piece as soon as it is made (or given up on).
    on_step
        Called after every step of the model (for progress).
    workers
        Processes to share the pieces among (as in :func:`folkrnn.sample.sample_tunes`); the pieces
        do not depend on it.
    controls
        What the pieces play (:class:`Controls`: rhythm, tempo, meter, key, density; None: the
        model's choice), for a model whose performances open with controls.

    Returns
    -------
    list[Performance]
        In the order of ``seeds``.
    """
    options = (options or PerformConfig()).check()
    layout, engine, config = performer.layout, performer.engine, performer.events
    prime = _check_prime(prime, options, config)
    for seed in seeds:
        if not 0 <= int(seed) <= MAX_SEED:
            raise OptionError(f"seeds must be in 0..{MAX_SEED}, not {seed}")
    instrument = None if options.instrument is None else find_instrument(options.instrument)
    if config.controls:
        allowed = (controls or Controls()).allowed(config)
    elif controls is not None and controls.given():
        raise OptionError(f"{performer.label} has no controls: it takes no --rhythm, --tempo, --meter, --key "
                          "or --density (a model trained by this folkrnn does)")
    else:
        allowed = []
    grammar = EventGrammar(layout, options, instrument=instrument,
                           max_note=max_note_seconds(options, performer), prime=prime, controls=allowed,
                           tracker=performer.tracker())
    return decode(engine, grammar, options.sample_config(), seeds, attempts=options.attempts,
                  next_seed=next_seed, batch_size=batch_size, on_finish=on_finish, on_step=on_step,
                  workers=workers)


# ---------------------------------------------------------------------------------------------
# Files


@dataclass
class PerformResult:
    """What :func:`perform` made and wrote."""

    pieces: list[Performance]  # in the order asked for (made or not)
    files: list[Path]  # the MIDI files written
    summary_path: Path | None  # summary.json
    seconds: float  # wall time
    interrupted: bool = False  # Ctrl-C stopped it: the pieces finished by then are kept
    error: FolkError | None = None  # a write that failed: the pieces finished by then are kept


def _remake(options: PerformConfig, seed: int, model: str | None, prime: str | None,
            instrument: str, controls: Controls | None = None) -> str:
    """The command that makes one piece again."""
    parts = ["folkrnn", "perform", "-n", "1", "--seed", str(seed), "--temperature", f"{options.temperature:g}",
             "--strategy", options.strategy, "--seconds", f"{options.seconds:g}",
             "--max-events", str(options.max_events), "--instrument", instrument]
    for name, value in (controls.given() if controls is not None else {}).items():
        parts += [f"--{name}", f"{value:g}" if isinstance(value, float) else str(value)]
    if options.strategy == "sample":
        parts += ["--top-k", str(options.top_k), "--top-p", f"{options.top_p:g}"]
    if not options.guards:
        parts.append("--no-guards")
    else:  # the grammar's options, where they are not the defaults
        if options.max_note is not None:
            parts += ["--max-note", f"{options.max_note:g}"]
        if options.max_voices != PerformConfig.max_voices:
            parts += ["--max-voices", str(options.max_voices)]
    if prime is not None:
        parts += ["--prime", prime]
    if model is not None:
        parts += ["--model", model]
    return shlex.join(parts)


def file_signatures(controls: dict) -> dict:
    """A piece's controls as a MIDI file's tempo (quarters a minute), time and key signatures."""
    out: dict = {}
    meter = parse_meter(controls["meter"]) if controls.get("meter") else None
    if meter is not None:
        out["meter"] = meter
    if controls.get("tempo"):
        out["qpm"] = float(controls["tempo"] * (beat_quarters(meter) if meter is not None else 1))
    if controls.get("key") is not None:
        out["key"] = key_from_fifths(int(controls["key"]), False)
    return out


class _Paths:
    """The files of one perform, ``perf-0001.mid`` ... by piece index, made when asked for."""

    def __init__(self, folder: Path, width: int, count: int) -> None:
        self.folder, self.width, self.count = folder, width, count

    def __getitem__(self, index: int) -> Path:
        return self.folder / f"perf-{index + 1:0{self.width}d}.mid"

    def existing(self) -> list[Path]:
        """The ones already in the folder (one listing of it, not a look-up per piece)."""
        pattern = re.compile(rf"perf-(\d{{{self.width}}})\.mid")
        found = []
        for entry in os.scandir(self.folder):
            match = pattern.fullmatch(entry.name)
            if match and 1 <= int(match.group(1)) <= self.count:
                found.append(Path(entry.path))
        return sorted(found)


def perform(model: str | os.PathLike | Performer | None, count: int = 1, *,
            options: PerformConfig | None = None, seed: int | None = None,
            prime: str | os.PathLike | None = None, instrument: str | None = None,
            out: str | os.PathLike = "outputs/performances", force: bool = False,
            progress: Callable[[int, int], None] | None = None, batch_size: int = 256,
            controls: Controls | None = None) -> PerformResult:
    """Sample ``count`` performances and write ``<out>/perf-0001.mid`` ... and ``summary.json``.

    Piece i is made from seed ``seed + i`` (``perform -n 1 --seed`` that seed makes it again); a
    seed whose piece has no notes is followed by the next seed no piece uses. Each MIDI file is
    written as its piece is finished, the summary at the end, also when interrupted (Ctrl-C) or
    when a write fails: the pieces finished by then are kept, in whole files.

    Parameters
    ----------
    model
        A model directory, a loaded :class:`Performer`, or None for the shipped MIDI-event model.
    count
        How many pieces (at least 1).
    options
        How to sample and when to stop (:class:`PerformConfig`).
    seed
        The first piece's seed (None: random, recorded in the summary).
    prime
        A MIDI file whose events start every piece.
    instrument
        Who plays (``folkrnn.tables.INSTRUMENTS``), in place of ``options.instrument``: the General
        MIDI instrument of the files, and the range and voices the event grammar keeps to
        (:class:`EventGrammar`).
    out, force
        The folder to write into, and whether files there may be overwritten.
    progress
        Called with (pieces finished, count).
    controls
        What the pieces play (:class:`Controls`); each file then carries its piece's tempo, meter
        and key signature, with time 0 on a downbeat, so notation programs and ``folkrnn transcribe``
        find its bars.

    Raises
    ------
    OptionError, ModelError, MidiError
        Bad options, a missing or foreign model, an unreadable prime, files that exist without
        ``force``; all before anything is written.
    """
    started = time.perf_counter()
    options = options or PerformConfig()
    if instrument is not None:
        options = replace(options, instrument=instrument)
    options = options.check()
    check_count(count, "performances")  # before the model is loaded or a folder made (folkrnn.limits)
    instrument = str(options.instrument or "piano").strip().lower()  # no instrument: the files sound as a piano
    style = find_instrument(instrument)
    if seed is None:
        seed = secrets.randbelow(1_000_000)
    if not 0 <= seed <= MAX_SEED - count * options.attempts:  # retries take seeds after the last piece's
        raise OptionError(f"--seed must be in 0..{MAX_SEED - count * options.attempts} for {count} pieces")
    performer = model if isinstance(model, Performer) else load_performer(model)
    model_label = None if performer.label == "default" else performer.label
    prime_ids = prime_events(prime, performer.events) if prime is not None else []
    _check_prime(prime_ids, options, performer.events)  # before the folder: one line, nothing made

    folder = prepare_folder(out)
    with folder_lock(folder):  # one batch at a time in a folder; released at the end, whatever ends it
        width = max(4, len(str(count)))
        paths = _Paths(folder, width, count)  # perf-0001.mid ...: made when asked for, not -n at once
        summary_path = folder / "summary.json"
        if not force:
            for path in [*paths.existing(), summary_path]:
                if exists(path):  # a dangling link too
                    raise OptionError(EXISTS, file=str(path))

        done: dict[int, Performance] = {}
        files: list[Path] = []
        error: FolkError | None = None
        interrupted = False
        fresh = iter(range(seed + count, MAX_SEED))

        def finished(piece: Performance) -> None:
            nonlocal error
            done[piece.index] = piece
            if piece.ok and error is None:
                try:  # named only if nothing took the name meanwhile, without --force (files.publish)
                    with staged(paths[piece.index], overwrite=force) as temporary:
                        write_performance(piece.notes, temporary, program=style.program,
                                          name=instrument, **file_signatures(piece.controls))
                    files.append(paths[piece.index])
                except FolkError as failure:
                    error = failure
            if progress is not None:
                progress(len(done), count)

        try:
            sample_performances(performer, range(seed, seed + count), options=options,
                                prime=prime_ids, next_seed=lambda _: next(fresh), batch_size=batch_size,
                                on_finish=finished, controls=controls)
        except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (folkrnn.processes): keep the finished pieces
            interrupted = True
        except FolkError as failure:  # a worker process died (the OOM killer): keep the finished pieces
            error = error or failure
        pieces = [done[i] for i in sorted(done)]
        written = set(files)
        summary = {
            "folkrnn_version": __version__,
            # the shipped model by its name, a user's by the path given: no path of this machine
            "model": performer.label, "model_label": performer.label,
            "events": performer.events.to_dict(),
            "options": asdict(options),
            "instrument": instrument, "program": style.program,
            "max_note_s": max_note_seconds(options, performer),
            "max_voices": 1 if style.monophonic else options.max_voices,
            "prime": None if prime is None else {"file": str(prime), "events": len(prime_ids)},
            "controls": controls.given() if controls is not None else {},
            "seed": seed, "count": count, "made": sum(piece.ok for piece in pieces),
            "interrupted": interrupted, "error": None if error is None else str(error),
            "elapsed_s": round(time.perf_counter() - started, 3),
            "pieces": [{
                "file": paths[piece.index].name if piece.ok and paths[piece.index] in written else None,
                "seed": piece.seed, "requested_seed": piece.requested_seed, "ok": piece.ok,
                "events": len(piece.events), "notes": len(piece.notes), "seconds": round(piece.seconds, 3),
                "ended": piece.ended, "log_prob": round(piece.log_prob, 4), "controls": piece.controls,
                "failures": [{"seed": s, "reason": r} for s, r in piece.failures],
                "command": _remake(options, piece.seed, model_label, None if prime is None else str(prime),
                                   instrument, controls),
            } for piece in pieces],
        }
        try:
            write_atomic(summary_path, json.dumps(summary, indent=1) + "\n", overwrite=force)
        except FolkError as failure:
            error = error or failure
            summary_path = None
    return PerformResult(pieces=pieces, files=sorted(files), summary_path=summary_path,
                         seconds=time.perf_counter() - started, interrupted=interrupted, error=error)
