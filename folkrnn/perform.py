"""Performances from a MIDI-event model: sample event sequences (NumPy, no torch) and write MIDI files.

The MIDI-event model (Performance RNN's events, trained by ``folkrnn train --encoding midi``) writes
a performance one event at a time. Sampling reuses :mod:`folkrnn.sample`'s machinery: its token
choice (temperature, top-k, top-p, greedy) with its counter-based random numbers, so the same seed
and options give the same performance on every machine and in any batch (a decision that a batch's
float rounding could change is made again with the piece on its own, as in ``sample_tunes``).

**Light guards** (``PerformConfig.guards``, on by default) keep the events decodable as written: a
NOTE_OFF only for a sounding pitch, a NOTE_ON only for a silent one, and no end (``</s>``) before the
first note. A performance stops when the model ends it, when it reaches ``seconds`` (the last
TIME_SHIFT is shortened to land on the limit), or after ``max_events`` events. Notes still sounding
then end with it (``folkrnn.events.events_to_notes`` closes them, after at most 5 s).

**Priming.** The events of a MIDI file (``prime``) start every performance; the model continues
them, and the file's notes are part of the result.

``perform`` writes ``<out>/perf-0001.mid`` ... (``folkrnn.midi.write_performance``, atomically) and
``summary.json`` (the seed, events, notes and seconds of each piece, and the command that makes it
again); nothing is overwritten without ``force``.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import shlex
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from folkrnn.errors import FolkError, ModelError, OptionError
from folkrnn.events import EventConfig, PerformanceNote, events_to_notes
from folkrnn.sample import SampleConfig, choose_tokens, one_blas_thread, rounding_noise
from folkrnn.tables import INSTRUMENTS, MAX_SEED, find_instrument

__all__ = [
    "PerformConfig", "Performance", "Performer", "PerformResult", "load_performer", "prime_events",
    "sample_performances", "perform",
]

_STRATEGIES = ("sample", "greedy")


@dataclass(frozen=True)
class PerformConfig:
    """How performances are drawn from the model. Persisted in summaries with ``asdict``."""

    strategy: str = "sample"  # "sample" or "greedy"
    temperature: float = 1.0  # the logits are divided by this (> 0)
    top_k: int = 0  # sample only among the k most probable events (0: no cut)
    top_p: float = 1.0  # then only the smallest set reaching this probability (1: no cut)
    seconds: float = 30.0  # a performance stops when it is this long (0: only max_events stops it)
    max_events: int = 5000  # and after this many events, the prime's included
    guards: bool = True  # NOTE_OFF only when sounding, NOTE_ON only when silent, no end before a note
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
        if self.attempts < 1:
            raise OptionError("attempts must be at least 1")
        return self


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

    @property
    def requested_seed(self) -> int:
        return self.failures[0][0] if self.failures else self.seed


class _Layout:
    """Where the events sit in the model's vocabulary, for the guards and the decoding."""

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

    def masks(self, rows: Sequence[_Row], guards: bool) -> np.ndarray:
        """(B, V) the tokens each row may take next."""
        masks = np.repeat(self.allowed[None, :], len(rows), axis=0)
        if guards:
            sounding = np.stack([row.sounding for row in rows])  # (B, pitches)
            masks[:, self.on] = sounding == 0
            masks[:, self.off] = sounding > 0
            masks[:, self.eos] = [row.notes > 0 for row in rows]
        else:
            masks[:, self.eos] = True
        return masks


@dataclass
class Performer:
    """A MIDI-event model loaded for sampling."""

    path: Path  # the model directory
    label: str  # how the user named it ("default" for the shipped model)
    engine: object  # the NumPy LSTM
    vocabulary: object  # the model's Vocabulary
    events: EventConfig  # the event vocabulary it was trained on
    training: dict = field(default_factory=dict)  # its training record
    layout: _Layout = field(init=False, repr=False)  # where the events sit in the vocabulary

    def __post_init__(self) -> None:
        self.layout = _Layout(self.vocabulary, self.events, str(self.path))


def load_performer(model: str | os.PathLike | None = None) -> Performer:
    """Load a MIDI-event model for sampling (NumPy only). ``None``: the shipped default model.

    Raises
    ------
    ModelError
        No default model installed, a missing or damaged model, or an ABC model.
    """
    from folkrnn.checkpoint import SHIPPED, load_model

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
                     vocabulary=checkpoint.vocabulary, events=config, training=dict(checkpoint.training))


def prime_events(path: str | os.PathLike, config: EventConfig | None = None) -> list[int]:
    """The events of a MIDI file, to start performances with. Raises MidiError for a file that
    cannot be read or has no notes."""
    from folkrnn.errors import MidiError
    from folkrnn.events import encode_midi

    ids = encode_midi(path, config)
    if not ids:
        raise MidiError("the prime has no notes in the model's pitch range", file=str(path))
    return ids


# ---------------------------------------------------------------------------------------------
# Sampling


class _Row:
    """One performance being written."""

    def __init__(self, index: int, seed: int, layout: _Layout, prime: Sequence[int]) -> None:
        self.index, self.seed = index, seed
        self.ids = [layout.bos]  # model tokens so far
        self.events: list[int] = []
        self.forced = [int(layout.vocab_of[event]) for event in prime]
        self.sounding = np.zeros(layout.config.num_pitches, np.int64)  # open notes per pitch
        self.notes = 0  # NOTE_ONs so far
        self.step = 0  # time, in steps
        self.log_prob = 0.0
        self.ended = ""


def _advance(row: _Row, token: int, layout: _Layout, options: PerformConfig) -> None:
    """Take one token: track the open notes and the time; end the row at </s> or a limit."""
    if token == layout.eos:
        row.ended = "end"
        return
    config = layout.config
    event = int(layout.event_of[token])
    pitches = config.num_pitches
    if event < pitches:
        row.sounding[event] += 1
        row.notes += 1
    elif event < 2 * pitches:
        row.sounding[event - pitches] = max(0, row.sounding[event - pitches] - 1)
    elif event < config.velocity_offset:
        shift = event - config.time_shift_offset + 1
        limit = round(options.seconds * config.steps_per_second) if options.seconds else 0
        if limit and row.step + shift >= limit:
            shift = limit - row.step  # the last shift lands on the limit
            event = config.time_shift_offset + shift - 1
            token = int(layout.vocab_of[event])
            row.ended = "seconds"
        row.step += shift
    row.ids.append(token)
    row.events.append(event)
    if not row.ended and len(row.events) >= options.max_events:
        row.ended = "events"


def _run(engine, layout: _Layout, options: PerformConfig, jobs: list[tuple[int, int]],
         prime: Sequence[int], exact: bool, on_step: Callable[[], None] | None
         ) -> tuple[list[_Row], list[tuple[int, int]]]:
    """Sample the (index, seed) jobs together: (finished rows, fragile jobs). ``exact``: each row
    computed on its own, so nothing is fragile (see ``folkrnn.sample._run_batch``)."""
    from folkrnn.infer import select_state

    config = options.sample_config()
    rows = [_Row(index, seed, layout, prime) for index, seed in jobs]
    state = [engine.init_state(1) for _ in rows] if exact else engine.init_state(len(rows))
    finished: list[_Row] = []
    fragile: list[tuple[int, int]] = []
    while rows:
        current = np.array([row.ids[-1] for row in rows], np.int64)
        if exact:
            stepped = [engine.step(current[i:i + 1], state[i]) for i in range(len(rows))]
            logits = np.concatenate([out for out, _ in stepped])  # (B, V)
            state = [new for _, new in stepped]
        else:
            logits, state = engine.step(current, state)  # (B, V)
        free = [i for i, row in enumerate(rows) if not row.forced]
        chosen, logps = {}, {}
        unsure: set[int] = set()
        if free:
            sub = np.asarray(free)
            masks = layout.masks([rows[i] for i in free], options.guards)
            seeds = np.array([rows[i].seed for i in free], np.uint64)
            steps = np.array([len(rows[i].ids) for i in free], np.uint64)
            noise = 0.0 if exact else rounding_noise(logits[sub], config.temperature)
            ids, logp, close_calls = choose_tokens(logits[sub], masks, config, seeds, steps, noise)
            for k, i in enumerate(free):
                chosen[i], logps[i] = int(ids[k]), float(logp[k])
                if not exact and close_calls[k]:
                    unsure.add(i)
        keep: list[int] = []
        for i, row in enumerate(rows):
            if i in unsure:
                fragile.append((row.index, row.seed))
                continue
            if row.forced:
                token = row.forced.pop(0)
            else:
                token = chosen[i]
                row.log_prob += logps[i]
            _advance(row, token, layout, options)
            if row.ended:
                finished.append(row)
            else:
                keep.append(i)
        if on_step is not None:
            on_step()
        if len(keep) < len(rows):
            state = [state[i] for i in keep] if exact else select_state(state, keep)
            rows = [rows[i] for i in keep]
    return finished, fragile


def sample_performances(performer: Performer, seeds: Sequence[int], *, options: PerformConfig | None = None,
                        prime: Sequence[int] = (), next_seed: Callable[[int], int] | None = None,
                        batch_size: int = 256, on_finish: Callable[[Performance], None] | None = None,
                        on_step: Callable[[], None] | None = None) -> list[Performance]:
    """Sample one performance per seed, many at a time; piece i depends only on ``seeds[i]``, the
    options and the prime.

    Parameters
    ----------
    performer
        The model (:func:`load_performer`).
    seeds
        One seed per piece (0 to 2**63 - 1).
    options
        How to sample and when to stop.
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

    Returns
    -------
    list[Performance]
        In the order of ``seeds``.
    """
    options = (options or PerformConfig()).check()
    layout, engine, config = performer.layout, performer.engine, performer.events
    prime = [int(event) for event in prime]
    if any(not 0 <= event < config.vocab_size for event in prime):
        raise OptionError(f"the prime holds events outside the model's {config.vocab_size}")
    if len(prime) >= options.max_events:
        raise OptionError(f"the prime has {len(prime)} events, as many as --max-events allows")
    prime_steps = sum(event - config.time_shift_offset + 1 for event in prime
                      if config.time_shift_offset <= event < config.velocity_offset)
    if options.seconds and prime_steps >= round(options.seconds * config.steps_per_second):
        raise OptionError(f"the prime lasts {prime_steps / config.steps_per_second:.2f} s, as long "
                          f"as --seconds allows ({options.seconds:g} s)")
    for seed in seeds:
        if not 0 <= int(seed) <= MAX_SEED:
            raise OptionError(f"seeds must be in 0..{MAX_SEED}, not {seed}")
    next_seed = next_seed or (lambda seed: seed + 1)
    results: dict[int, Performance] = {}
    failures: dict[int, list[tuple[int, str]]] = {}

    def settle(rows: list[_Row]) -> list[tuple[int, int]]:
        again = []
        for row in rows:
            history = failures.setdefault(row.index, [])
            notes = events_to_notes(row.events, config)
            if notes:
                piece = Performance(index=row.index, seed=row.seed, events=row.events, notes=notes,
                                    seconds=row.step / config.steps_per_second, ended=row.ended,
                                    log_prob=row.log_prob, prime_events=len(prime),
                                    failures=list(history), ok=True)
            else:
                history.append((row.seed, f"no notes (ended by {row.ended})"))
                if len(history) < options.attempts:
                    again.append((row.index, int(next_seed(row.seed))))
                    continue
                piece = Performance(index=row.index, seed=row.seed, events=row.events,
                                    ended=row.ended, failures=list(history), ok=False)
            results[row.index] = piece
            if on_finish is not None:
                on_finish(piece)
        return again

    pending = [(index, int(seed)) for index, seed in enumerate(seeds)]
    alone = len(pending) == 1
    while pending:
        jobs, pending = pending, []
        exact_jobs = jobs if len(jobs) == 1 else []
        if len(jobs) > 1:
            for start in range(0, len(jobs), batch_size):
                done, fragile = _run(engine, layout, options, jobs[start:start + batch_size], prime,
                                     False, on_step)
                pending += settle(done)
                exact_jobs += fragile
        # the close calls, made again exactly: each row on its own, the rows in step together
        for start in range(0, len(exact_jobs), batch_size):
            if alone:
                with one_blas_thread():
                    done, _ = _run(engine, layout, options, exact_jobs[start:start + batch_size],
                                   prime, True, on_step)
            else:
                done, _ = _run(engine, layout, options, exact_jobs[start:start + batch_size], prime,
                               True, on_step)
            pending += settle(done)
    return [results[index] for index in range(len(seeds))]


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
            instrument: str) -> str:
    """The command that makes one piece again."""
    parts = ["folkrnn", "perform", "-n", "1", "--seed", str(seed), "--temperature", f"{options.temperature:g}",
             "--strategy", options.strategy, "--seconds", f"{options.seconds:g}",
             "--max-events", str(options.max_events), "--instrument", instrument]
    if options.strategy == "sample":
        parts += ["--top-k", str(options.top_k), "--top-p", f"{options.top_p:g}"]
    if not options.guards:
        parts.append("--no-guards")
    if prime is not None:
        parts += ["--prime", prime]
    if model is not None:
        parts += ["--model", model]
    return shlex.join(parts)


def perform(model: str | os.PathLike | Performer | None, count: int = 1, *,
            options: PerformConfig | None = None, seed: int | None = None,
            prime: str | os.PathLike | None = None, instrument: str = "piano",
            out: str | os.PathLike = "outputs/performances", force: bool = False,
            progress: Callable[[int, int], None] | None = None, batch_size: int = 256) -> PerformResult:
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
        The General MIDI instrument of the files (``folkrnn.tables.INSTRUMENTS``).
    out, force
        The folder to write into, and whether files there may be overwritten.
    progress
        Called with (pieces finished, count).

    Raises
    ------
    OptionError, ModelError, MidiError
        Bad options, a missing or foreign model, an unreadable prime, files that exist without
        ``force``; all before anything is written.
    """
    from folkrnn import __version__
    from folkrnn.files import prepare_folder, write_atomic
    from folkrnn.midi import write_performance

    started = time.perf_counter()
    options = (options or PerformConfig()).check()
    if not isinstance(count, int) or count < 1:
        raise OptionError(f"-n must be at least 1, not {count}")
    style = find_instrument(instrument)
    if style is None:
        raise OptionError(f"unknown instrument {instrument!r}; choose one of: {', '.join(INSTRUMENTS)}")
    if seed is None:
        seed = secrets.randbelow(1_000_000)
    if not 0 <= seed <= MAX_SEED - count * options.attempts:  # retries take seeds after the last piece's
        raise OptionError(f"--seed must be in 0..{MAX_SEED - count * options.attempts} for {count} pieces")
    performer = model if isinstance(model, Performer) else load_performer(model)
    model_label = None if performer.label == "default" else performer.label
    prime_ids = prime_events(prime, performer.events) if prime is not None else []

    folder = prepare_folder(out)
    width = max(4, len(str(count)))
    paths = [folder / f"perf-{i + 1:0{width}d}.mid" for i in range(count)]
    summary_path = folder / "summary.json"
    if not force:
        for path in [*paths, summary_path]:
            if path.exists():
                raise OptionError("the file exists; pass --force to overwrite it", file=str(path))

    done: dict[int, Performance] = {}
    files: list[Path] = []
    error: FolkError | None = None
    interrupted = False
    fresh = iter(range(seed + count, MAX_SEED))

    def finished(piece: Performance) -> None:
        nonlocal error
        done[piece.index] = piece
        if piece.ok and error is None:
            try:
                files.append(write_performance(piece.notes, paths[piece.index], program=style.program,
                                               name=str(instrument).strip().lower()))
            except FolkError as failure:
                error = failure
        if progress is not None:
            progress(len(done), count)

    try:
        sample_performances(performer, [seed + i for i in range(count)], options=options,
                            prime=prime_ids, next_seed=lambda _: next(fresh), batch_size=batch_size,
                            on_finish=finished)
    except KeyboardInterrupt:
        interrupted = True
    pieces = [done[i] for i in sorted(done)]
    summary = {
        "folkrnn_version": __version__,
        "model": str(performer.path), "model_label": performer.label,
        "events": performer.events.to_dict(),
        "options": asdict(options),
        "instrument": str(instrument).strip().lower(), "program": style.program,
        "prime": None if prime is None else {"file": str(prime), "events": len(prime_ids)},
        "seed": seed, "count": count, "made": sum(piece.ok for piece in pieces),
        "interrupted": interrupted, "error": None if error is None else str(error),
        "elapsed_s": round(time.perf_counter() - started, 3),
        "pieces": [{
            "file": paths[piece.index].name if piece.ok and paths[piece.index] in files else None,
            "seed": piece.seed, "requested_seed": piece.requested_seed, "ok": piece.ok,
            "events": len(piece.events), "notes": len(piece.notes), "seconds": round(piece.seconds, 3),
            "ended": piece.ended, "log_prob": round(piece.log_prob, 4),
            "failures": [{"seed": s, "reason": r} for s, r in piece.failures],
            "command": _remake(options, piece.seed, model_label, None if prime is None else str(prime),
                               str(instrument).strip().lower()),
        } for piece in pieces],
    }
    try:
        write_atomic(summary_path, json.dumps(summary, indent=1) + "\n")
    except FolkError as failure:
        error = error or failure
        summary_path = None
    return PerformResult(pieces=pieces, files=sorted(files), summary_path=summary_path,
                         seconds=time.perf_counter() - started, interrupted=interrupted, error=error)
