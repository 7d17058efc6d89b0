"""Where a performance stands in its beat: the features a MIDI-event model reads beside its events.

Performance RNN hears time only as TIME_SHIFTs, 10 ms at a time, and has to count them to keep a
pulse; its performances drift and lose the beat within seconds. Magenta conditions it on note
density and a pitch-class histogram, fed at every step. folkrnn's performances open with four
controls (``folkrnn.events``: TEMPO, METER, KEY, DENSITY), and this module tells the model, with
every event, what they say and where the event stands in the beat:

============  ==========================================================================  ======
feature       value after an event (0: not known: no TEMPO or METER yet, or an unknown one)  size
============  ==========================================================================  ======
``phase``     how far into the beat the time is, in twelfths of the beat (1 + n)             13
``beat``      which beat of the bar (1 + n, up to 12 beats)                                  13
``tempo``     the TEMPO control (1 + its index in ``events.TEMPOS``)                         53
``meter``     the METER control                                                          12
``key``       the KEY control                                                            17
``density``   the DENSITY control                                                        15
============  ==========================================================================  ======

Time 0 is the first event after the controls, a downbeat (the corpus's renderings start on one:
``folkrnn.midi.tune_to_performance(downbeat=True)``); the beat is a dotted quarter in compound
meters and a quarter otherwise (``folkrnn.midi.beat_quarters``), as TEMPO counts it. Phase and beat
are computed in whole numbers (steps times beats per minute), so they never drift.

:class:`Pulse` follows one performance event by event; training (:func:`with_features`, for whole
sequences) and the performer (one :class:`Pulse` per piece, one :meth:`Pulse.push` per event) both
go through it, so the features a model learnt from are the features it is given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fractions import Fraction

import numpy as np

from folkrnn.events import CONTROLS, EventConfig
from folkrnn.midi import beat_quarters
from folkrnn.music import parse_meter

__all__ = ["SCHEME", "FEATURE_NAMES", "feature_sizes", "Pulse", "classes", "with_features"]

SCHEME = "pulse-1"  # the name a model's config gives this set of features
FEATURE_NAMES = ("phase", "beat", "tempo", "meter", "key", "density")
PHASES = 12  # twelfths of a beat: a compound eighth is 4, a simple sixteenth 3
_BEATS = 12
_CONTROL_KINDS = tuple(kind for kind, _ in CONTROLS)


def feature_sizes(vocab_size: int = 0) -> tuple[int, ...]:
    """How many values each feature takes, in :data:`FEATURE_NAMES` order."""
    return (1 + PHASES, 1 + _BEATS) + tuple(1 + len(values) for _, values in CONTROLS)


def _beats_per_bar(meter: str) -> int:
    """Beats in a bar of ``meter`` (0 when the beat does not divide the bar)."""
    parsed = parse_meter(meter)
    beats = Fraction(parsed.bar_length) / beat_quarters(parsed)
    return int(beats) if beats.denominator == 1 and 1 <= beats <= _BEATS else 0


class _Classes:
    """The vocabulary read once: each token's time shift (steps) and its control, if any."""

    def __init__(self, tokens: Sequence[str], steps_per_second: int) -> None:
        self.minute = 60 * int(steps_per_second)  # steps in a minute
        self.shift = np.zeros(len(tokens), np.int64)
        self.control = np.full(len(tokens), -1, np.int64)  # which control (index in CONTROLS)
        self.value = np.zeros(len(tokens), np.int64)  # 1 + the value's index in its block
        self.tempo: dict[int, int] = {}  # token -> beats per minute (known tempos)
        self.beats: dict[int, int] = {}  # token -> beats per bar (known meters)
        for token, name in enumerate(tokens):
            kind, _, text = name.rpartition("_")
            if kind == "TIME_SHIFT":
                self.shift[token] = int(text)
            elif kind in _CONTROL_KINDS:
                k = _CONTROL_KINDS.index(kind)
                values = CONTROLS[k][1]
                shown = [("UNKNOWN" if v is None else str(v)) for v in values]
                if text not in shown:
                    continue
                self.control[token], self.value[token] = k, 1 + shown.index(text)
                value = values[shown.index(text)]
                if kind == "TEMPO" and value is not None:
                    self.tempo[token] = int(value)
                elif kind == "METER" and value is not None:
                    self.beats[token] = _beats_per_bar(str(value))


class Pulse:
    """One performance followed event by event: :meth:`push` gives the features read with each."""

    __slots__ = ("_c", "step", "tempo", "beats", "controls")

    def __init__(self, shared: _Classes) -> None:
        self._c = shared
        self.step = 0  # time since the controls, in steps
        self.tempo = 0  # beats per minute (0: unknown)
        self.beats = 0  # beats in a bar (0: unknown)
        self.controls = [0] * len(CONTROLS)

    def clone(self) -> Pulse:
        other = Pulse(self._c)
        other.step, other.tempo, other.beats, other.controls = self.step, self.tempo, self.beats, list(self.controls)
        return other

    def push(self, token: int) -> tuple[int, ...]:
        """Take one token id; return the features the model reads with it."""
        c = self._c
        kind = c.control[token]
        if kind >= 0:
            self.controls[kind] = int(c.value[token])
            if kind == 0:
                self.tempo = c.tempo.get(token, 0)
            elif kind == 1:
                self.beats = c.beats.get(token, 0)
        else:
            self.step += int(c.shift[token])
        phase = beat = 0
        if self.tempo:
            beats_so_far, within = divmod(self.step * self.tempo, c.minute)
            phase = 1 + within * PHASES // c.minute
            if self.beats:
                beat = 1 + beats_so_far % self.beats
        return (phase, beat, *self.controls)


def classes(tokens: Sequence[str], settings: Mapping | None = None) -> _Classes:
    """The vocabulary read once, to share among many :class:`Pulse`; ``settings``: the model's
    EventConfig fields (its steps per second)."""
    config = EventConfig.from_dict(dict(settings)) if settings else EventConfig()
    return _Classes(tokens, config.steps_per_second)


def with_features(ids: Sequence[int], shared: _Classes) -> np.ndarray:
    """``(T, 1 + F)`` int64: each token id of one performance, then the features read with it."""
    pulse = Pulse(shared)
    out = np.empty((len(ids), 1 + len(FEATURE_NAMES)), np.int64)
    for t, token in enumerate(ids):
        token = int(token)
        out[t, 0] = token
        out[t, 1:] = pulse.push(token)
    return out
