"""Training the language model: TrainConfig, the loop, evaluation, resume and DDP.

One function, :func:`train`, runs the same code on a laptop CPU, one GPU, or many processes under
``torchrun`` (DDP: gloo on CPUs, NCCL on GPUs; only rank 0 writes). What it does, in order:

- **Data.** Tunes become id arrays. Each epoch sorts them by length with a little seeded noise and
  cuts the order into batches, so a batch holds tunes of similar length and padding stays a few
  percent (it is measured and reported). Batches are visited in shuffled order.
- **Truncated BPTT.** A batch longer than ``bptt`` tokens is cut into near-equal chunks; the LSTM
  state is carried from chunk to chunk and detached, and each chunk is one optimiser step with
  ``clip_grad_norm_``.
- **DDP.** Every rank plans the same global batches; rank r takes its share of each batch's rows.
  Loss is the sum over a rank's tokens divided by the global token count (times the world size,
  since DDP averages gradients), and dropout masks are drawn for the whole global batch from a
  generator seeded by (seed, step), so N processes compute the same losses as one at the same
  global batch.
- **Determinism.** Data order, augmentation and dropout are functions of (seed, epoch, step), so the
  same seed, data and device give the same losses, and a resumed run continues exactly.
- **Checkpoints.** The best model (by validation loss) is kept as ``model.safetensors`` +
  ``config.json``; the resume point (weights, optimiser, schedule, RNG, data position, and the
  model, training settings and corpus: its recipe and the sha256 of every file read) is
  ``training_state.safetensors``; each evaluation is one line of ``train_log.jsonl``. So
  ``folkrnn train --resume --out DIR`` needs nothing but DIR (:func:`resume_plan`).

MIDI augmentation works on event names: transposition moves NOTE_ON/NOTE_OFF pitches by k semitones
(a tune that would leave the pitch range is kept untransposed), and time-stretch rescales the
TIME_SHIFT steps and re-chains them; both are drawn per tune and epoch.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import random
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from folkrnn.abc.features import pad_inputs
from folkrnn.abc.titles import TITLES_FILE, WORDS_FILE, corpus_title_rhythms, write_titles
from folkrnn.checkpoint import (
    MODEL_FILE,
    STATE_FILE,
    check_safetensors,
    load_model,
    load_training_state,
    save_model,
    save_training_state,
    update_training_record,
)
from folkrnn.corpus import corpus_files, file_hashes, rebuild_corpus, source_keys
from folkrnn.errors import CorpusError, ModelError, OptionError
from folkrnn.events import EventConfig, events_to_notes
from folkrnn.files import write_atomic
from folkrnn.ngram import fit_ngram
from folkrnn.schemes import scheme
from folkrnn.vocab import BOS, EOS, UnknownTokenError, Vocabulary

__all__ = [
    "TrainConfig", "TrainResult", "CorpusLike", "train", "evaluate_loss", "plan_epoch",
    "chunk_spans", "padding_fraction", "resumed_settings", "resumed_run", "resume_plan", "RESUME_MAY_CHANGE",
    "transpose_events", "stretch_events", "corpus_vocabulary", "performance_record",
]

LOG_FILE = "train_log.jsonl"


def _logged_batches(line: str) -> float:
    """The batches an evaluation logged in ``line`` of the log had seen; infinity for a line that
    is not one (blank, or cut short by a kill while it was written): such a line is dropped."""
    try:
        entry = json.loads(line)
    except ValueError:
        return math.inf
    return entry.get("batches", 0) if isinstance(entry, dict) else math.inf


# The TrainConfig fields a resumed run may change: how long it goes on (epochs, patience: with the
# cosine schedule a new --epochs re-stretches the decay over the new total), how often it evaluates
# and saves, where it runs, and this invocation's own stop limits and bookkeeping. Every other field
# (batch size, seed, bptt, optimiser, learning rate and schedule, augmentation, weights dtype)
# decides what is computed, and must be the run's own for it to continue exactly.
RESUME_MAY_CHANGE = ("epochs", "patience", "eval_interval", "checkpoint_interval", "device", "max_minutes",
                     "max_batches", "resume", "force", "progress", "command", "out")
# limits of one invocation: `folkrnn train --resume` does not carry them over (0 unless given again)
_RESUME_NOT_CARRIED = ("max_minutes", "max_batches")
_LENGTH_JITTER = 0.02  # batching sorts by log length plus noise in +-this: more shuffles more, pads more


@dataclass
class TrainConfig:
    """How to train. Model shape lives in ModelConfig; this is everything else."""

    epochs: int = 30  # passes over the training split (at most; early stopping may end sooner)
    batch_size: int = 64  # tunes per optimiser step, over all processes together
    lr: float = 3e-3  # peak learning rate (folk-rnn: 0.003 with RMSprop)
    optimizer: str = "adamw"  # "adamw" or "rmsprop"
    weight_decay: float = 0.0  # AdamW's decoupled weight decay
    clip_norm: float = 5.0  # largest global gradient L2 norm, applied every step
    schedule: str = "cosine"  # "cosine" (warm-up, then cosine decay), "plateau" or "constant"
    warmup_steps: int = 50  # steps of linear warm-up (cosine and plateau)
    min_lr_ratio: float = 0.05  # cosine decays to lr * this
    plateau_factor: float = 0.5  # plateau: multiply the rate by this after an evaluation without progress
    patience: int = 3  # early stopping: evaluations without a better valid loss; 0 = never stop early
    bptt: int = 256  # truncated backprop-through-time: longest chunk in tokens
    seed: int = 0  # seeds initial weights, data order, augmentation and dropout
    device: str = "auto"  # "auto", "cpu" or "cuda"
    out: str = "outputs/model"  # directory for the model, resume point and log
    eval_interval: int = 0  # batches between evaluations; 0 = once per epoch
    checkpoint_interval: int = 50  # batches between resume points (also at each evaluation); 0 = evaluations only
    max_minutes: float = 0.0  # stop cleanly (resume point saved) after this long; 0 = no limit
    max_batches: int = 0  # stop cleanly after this many batches in all; 0 = no limit
    augment_transpose: int = 0  # MIDI: transpose each tune by a random k in [-this, +this] semitones
    augment_stretch: float = 0.0  # MIDI: stretch each tune's time by a random factor in 1 +- this
    weights_dtype: str = "float32"  # how model.safetensors stores weights: "float32" or "float16"
    resume: bool = False  # continue from <out>/training_state.safetensors
    force: bool = False  # allow starting afresh over an existing model in <out>
    progress: bool = True  # show a progress bar (rank 0, when stderr is a terminal)
    command: str = ""  # the command line, for the training record

    def __post_init__(self) -> None:
        checks = [
            (self.epochs >= 1, f"epochs must be at least 1, not {self.epochs}"),
            (self.batch_size >= 1, f"batch size must be at least 1, not {self.batch_size}"),
            (self.lr > 0 and math.isfinite(self.lr), f"learning rate must be positive, not {self.lr}"),
            (self.optimizer in ("adamw", "rmsprop"), f"optimizer must be adamw or rmsprop, not {self.optimizer!r}"),
            (self.schedule in ("cosine", "plateau", "constant"),
             f"schedule must be cosine, plateau or constant, not {self.schedule!r}"),
            (self.clip_norm > 0, f"clip norm must be positive, not {self.clip_norm}"),
            (self.bptt >= 1, f"bptt must be at least 1, not {self.bptt}"),
            (self.device in ("auto", "cpu", "cuda"), f"device must be auto, cpu or cuda, not {self.device!r}"),
            (self.patience >= 0, "patience must be 0 or more"),
            (0 <= self.augment_transpose <= 12, "transposition augmentation must be 0-12 semitones"),
            (0 <= self.augment_stretch < 0.5, "time-stretch augmentation must be in [0, 0.5)"),
            (self.weights_dtype in ("float32", "float16"), "weights dtype must be float32 or float16"),
            (self.max_minutes >= 0 and self.max_batches >= 0, "limits must be 0 or more"),
        ]
        for ok, message in checks:
            if not ok:
                raise OptionError(message)


class CorpusLike(Protocol):
    """What :func:`train` needs of a corpus (``folkrnn.corpus.Corpus`` is one)."""

    train: list[list[str]]  # token sequences, each from <s> to </s>
    valid: list[list[str]]
    test: list[list[str]]
    encoding: str  # "abc" or "midi"
    info: dict  # sources, content hash, settings (normalisation or EventConfig)


@dataclass
class TrainResult:
    """What a training run did."""

    out: Path  # the model directory
    stopped: str  # "epochs", "early stopping", "time limit" or "batch limit"
    epochs: float  # epochs completed (fractional when stopped mid-epoch)
    steps: int  # optimiser steps
    batches: int  # batches
    batch_losses: list[float]  # training loss of every batch (nats/token), in order
    evaluations: list[dict]  # one per evaluation, as in train_log.jsonl
    best_valid_loss: float | None  # nats/token
    test_loss: float | None  # nats/token of the best model on the test split
    train_loss: float | None  # nats/token of the best model on the training split
    tokens_per_s: float  # non-padding training tokens per second (this run)
    padding: float  # fraction of computed positions that were padding
    wall_s: float  # seconds, this run and any it resumed
    record: dict = field(default_factory=dict)  # the training record written to config.json


# --- vocabulary and data -----------------------------------------------------------------------


def corpus_vocabulary(corpus: CorpusLike) -> Vocabulary:
    """The vocabulary for a corpus: its own if it carries one, the event list for MIDI, else built.

    MIDI uses exactly ``EventConfig(**settings).names()`` plus the specials, so ids do not depend
    on which events happen to occur. ABC uses every token of all three splits, sorted, so the
    validation and test tunes never hit an unknown token.
    """
    own = getattr(corpus, "vocabulary", None)
    if isinstance(own, Vocabulary):
        return own
    if corpus.encoding == "midi":
        settings = dict((corpus.info or {}).get("settings") or {})
        return Vocabulary.from_event_names(EventConfig.from_dict(settings).names())
    return Vocabulary.build(list(corpus.train) + list(corpus.valid) + list(corpus.test))


def _as_ids(tunes: Sequence[Sequence[str]], vocabulary: Vocabulary, split: str = "train",
            features: str = "", encoding: str = "abc", settings: dict | None = None) -> list[np.ndarray]:
    """Each tune as an int64 id array framed by <s> ... </s>; tunes with no target are dropped.

    With ``features`` (a model that reads a feature scheme, :mod:`folkrnn.schemes`), each tune is
    ``(T, 1 + F)``: the id, then its features (the scheme's ``with_features``, given the
    encoding's ``settings``)."""
    if features:
        module = scheme(features, encoding)
        shared = module.classes(vocabulary.tokens, settings)
        return [module.with_features(ids, shared) for ids in _as_ids(tunes, vocabulary, split)]
    out = []
    for number, tokens in enumerate(tunes, 1):
        tokens = list(tokens)
        if not tokens or tokens[0] != BOS:
            tokens.insert(0, BOS)
        if tokens[-1] != EOS:
            tokens.append(EOS)
        if len(tokens) >= 3:  # <s> and </s> alone teach nothing
            try:
                out.append(np.asarray(vocabulary.encode(tokens), dtype=np.int64))
            except UnknownTokenError as error:
                raise CorpusError(f"{split} tune {number}: token {error.token!r} does not belong to "
                                  f"this encoding's vocabulary") from None
    return out


def plan_epoch(lengths: np.ndarray, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """The batches of one epoch, as arrays of tune indices: similar lengths together, order shuffled.

    All tunes are sorted by length with a little noise (each length is scaled by a random factor
    within +-2%, drawn afresh each epoch, ties broken at random), cut into batches of consecutive
    tunes, and the batches are visited in random order. The noise changes which tunes share a
    batch from epoch to epoch while padding stays a few percent (3% at batch 64 on the default
    corpus, against 10% for length-sorted pools of 2,048 tunes and 63% unsorted).

    Parameters
    ----------
    lengths
        Length of every tune.
    batch_size, seed, epoch
        The plan is a pure function of these (and ``lengths``).
    """
    rng = np.random.default_rng([seed, epoch, 1])
    noise = rng.uniform(-_LENGTH_JITTER, _LENGTH_JITTER, size=len(lengths))
    tiebreak = rng.permutation(len(lengths))
    order = np.lexsort((tiebreak, np.log(np.maximum(lengths, 1)) + noise))
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def chunk_spans(positions: int, bptt: int) -> list[tuple[int, int]]:
    """Cut ``positions`` steps into the fewest chunks of at most ``bptt``, as equal as possible."""
    if positions <= 0:
        return []
    count = math.ceil(positions / bptt)
    size = math.ceil(positions / count)
    return [(start, min(start + size, positions)) for start in range(0, positions, size)]


def padding_fraction(lengths: np.ndarray, batches: Sequence[np.ndarray], bptt: int) -> float:
    """Share of the positions a plan computes that are padding (what training reports)."""
    computed = real = 0
    for batch in batches:
        rows = lengths[batch]
        positions = int(rows.max()) - 1
        computed += len(rows) * sum(end - begin for begin, end in chunk_spans(positions, bptt))
        real += int((rows - 1).sum())
    return 1 - real / computed if computed else 0.0


_NOTE = re.compile(r"^(NOTE_ON|NOTE_OFF)_(\d+)$")
_KEY = re.compile(r"^KEY_(-?\d+)$")
_SHIFT = re.compile(r"^TIME_SHIFT_(\d+)$")


def transpose_events(names: Sequence[str], semitones: int, vocabulary: Vocabulary) -> list[str]:
    """Move every NOTE_ON/NOTE_OFF by ``semitones``, and a KEY control with them (its signature
    moves 7 fifths a semitone, written with -6..5 sharps); the tune unchanged if a note would leave
    the range."""
    if semitones == 0:
        return list(names)
    out = []
    for name in names:
        match = _NOTE.match(name)
        if match:
            name = f"{match.group(1)}_{int(match.group(2)) + semitones}"
            if name not in vocabulary:
                return list(names)
        elif key := _KEY.match(name):
            name = f"KEY_{(int(key.group(1)) + 7 * semitones + 6) % 12 - 6}"
        out.append(name)
    return out


def stretch_events(names: Sequence[str], factor: float, max_shift: int) -> list[str]:
    """Scale time by ``factor``: each run of TIME_SHIFTs is rescaled and re-chained.

    Rounding is carried over (the stretched onset of every event is the rounded stretched onset
    of the original), so no drift builds up.
    """
    if factor == 1.0:
        return list(names)
    out: list[str] = []
    original = 0  # steps elapsed in the original
    emitted = 0  # steps emitted so far
    for name in names:
        match = _SHIFT.match(name)
        if match:
            original += int(match.group(1))
            continue
        target = round(original * factor)
        gap = target - emitted
        while gap > 0:
            step = min(gap, max_shift)
            out.append(f"TIME_SHIFT_{step}")
            gap -= step
        emitted = max(emitted, target)
        out.append(name)
    target = round(original * factor)
    while target > emitted:
        step = min(target - emitted, max_shift)
        out.append(f"TIME_SHIFT_{step}")
        emitted += step
    return out


def performance_record(tunes: Sequence[np.ndarray], settings: dict) -> dict:
    """What a MIDI corpus's performances hold that its performer keeps to (``folkrnn.perform``): the
    longest note, in seconds, and the lowest and highest pitch. ``tunes``: id arrays of a vocabulary
    of event names (``Vocabulary.from_event_names``: an event's id is its token's)."""
    config = EventConfig.from_dict(dict(settings))
    longest, low, high, count = 0.0, 127, 0, 0
    for ids in tunes:
        ids = _token_ids(ids)
        notes = events_to_notes(ids[ids < config.vocab_size].tolist(), config)
        if notes:
            longest = max(longest, max(note.end - note.start for note in notes))
            low, high = min(low, min(n.pitch for n in notes)), max(high, max(n.pitch for n in notes))
            count += len(notes)
    return {"max_note_s": round(longest, 3), "lowest_pitch": low, "highest_pitch": high, "notes": count}


def _augment(tunes: list[list[str]], vocabulary: Vocabulary, config: TrainConfig, epoch: int) -> list[list[str]]:
    rng = np.random.default_rng([config.seed, epoch, 2])
    shifts = [int(_SHIFT.match(t).group(1)) for t in vocabulary.tokens if _SHIFT.match(t)]
    max_shift = max(shifts) if shifts else 1
    out = []
    for tokens in tunes:
        k = int(rng.integers(-config.augment_transpose, config.augment_transpose + 1))
        factor = float(rng.uniform(1 - config.augment_stretch, 1 + config.augment_stretch))
        if config.augment_transpose:
            tokens = transpose_events(tokens, k, vocabulary)
        if config.augment_stretch:
            tokens = stretch_events(tokens, factor, max_shift)
        out.append(tokens)
    return out


def _token_ids(tune: np.ndarray) -> np.ndarray:
    """One tune's token ids (its first column when it carries features)."""
    return tune[:, 0] if tune.ndim == 2 else tune


def _targets(batch):
    """The token ids of a padded batch (its first column when it carries features)."""
    return batch[..., 0] if batch.ndim == 3 else batch


# --- distributed -------------------------------------------------------------------------------


class _Dist:
    """Rank, world size and collectives; a single process when torchrun did not start us."""

    def __init__(self, torch, device_kind: str) -> None:
        self.torch = torch
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.started_here = False
        if self.world > 1:
            import torch.distributed as dist

            if not dist.is_initialized():
                backend = "nccl" if device_kind == "cuda" else "gloo"
                dist.init_process_group(backend=backend)
                self.started_here = True
            self.dist = dist

    def sum(self, values: list[float], device) -> list[float]:
        """Sum floats over all ranks (float64)."""
        if self.world == 1:
            return values
        tensor = self.torch.tensor(values, dtype=self.torch.float64, device=device)
        self.dist.all_reduce(tensor)
        return tensor.tolist()

    def close(self) -> None:
        if self.world > 1 and self.started_here:
            self.dist.destroy_process_group()


# --- schedule ----------------------------------------------------------------------------------


class _Schedule:
    """Learning-rate factor per step: warm-up, then cosine decay or plateau halving, or constant."""

    def __init__(self, config: TrainConfig, total_steps: int) -> None:
        self.config = config
        self.total_steps = max(1, total_steps)
        self.plateau_scale = 1.0

    def factor(self, step: int) -> float:
        config = self.config
        warmup = min(config.warmup_steps, self.total_steps // 10)  # short runs warm up briefly
        warm = min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0
        if config.schedule == "constant":
            return 1.0
        if config.schedule == "plateau":
            return warm * self.plateau_scale
        progress = min(1.0, step / self.total_steps)
        cosine = 0.5 * (1 + math.cos(math.pi * progress))
        return warm * (config.min_lr_ratio + (1 - config.min_lr_ratio) * cosine)

    def on_evaluation(self, improved: bool) -> None:
        if self.config.schedule == "plateau" and not improved:
            self.plateau_scale *= self.config.plateau_factor

    def state_dict(self) -> dict:
        return {"total_steps": self.total_steps, "plateau_scale": self.plateau_scale}

    def load_state_dict(self, state: dict) -> None:
        self.plateau_scale = float(state["plateau_scale"])


# --- optimiser state without pickle ------------------------------------------------------------


def _flatten_optimizer(optimizer) -> tuple[dict[str, np.ndarray], dict]:
    """Optimiser state dict -> (named NumPy tensors, JSON-able rest)."""
    import torch

    state = optimizer.state_dict()
    tensors: dict[str, np.ndarray] = {}
    scalars: dict[str, dict] = {}
    for index, entry in state["state"].items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{index}.{key}"] = value.detach().cpu().numpy().copy()
            else:
                scalars.setdefault(str(index), {})[key] = value
    groups = json.loads(json.dumps(state["param_groups"], default=list))
    return tensors, {"param_groups": groups, "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, np.ndarray], meta: dict, device) -> dict:
    import torch

    state: dict[int, dict] = {}
    for name, value in tensors.items():
        if not name.startswith("optimizer."):
            continue
        _, index, key = name.split(".", 2)
        state.setdefault(int(index), {})[key] = torch.from_numpy(value.copy()).to(
            device if value.ndim else "cpu")
    for index, values in meta.get("scalars", {}).items():
        state.setdefault(int(index), {}).update(values)
    groups = meta["param_groups"]
    for group in groups:
        if "betas" in group and isinstance(group["betas"], list):
            group["betas"] = tuple(group["betas"])
    return {"state": state, "param_groups": groups}


# --- evaluation --------------------------------------------------------------------------------


def evaluate_loss(model, tunes: Sequence[np.ndarray], *, batch_size: int = 64, bptt: int = 1024,
                  pad_id: int = 0, device=None, rank: int = 0, world: int = 1) -> tuple[float, int]:
    """Summed cross-entropy (nats) and target count of ``tunes`` under ``model``, in eval mode.

    Batches are sorted by length; under DDP each rank takes every ``world``-th batch (the caller
    sums over ranks).
    """
    import torch

    if not tunes:
        return 0.0, 0
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    lengths = np.array([len(ids) for ids in tunes])
    order = np.argsort(lengths, kind="stable")
    total, count = 0.0, 0
    with torch.no_grad():
        for number, start in enumerate(range(0, len(order), batch_size)):
            if number % world != rank:
                continue
            rows = [tunes[i] for i in order[start:start + batch_size]]
            batch = torch.from_numpy(pad_inputs(rows, max(len(r) for r in rows), pad_id)).to(device)
            state = None
            for begin, end in chunk_spans(batch.shape[1] - 1, bptt):
                inputs, targets = batch[:, begin:end], _targets(batch)[:, begin + 1:end + 1]
                with _autocast(device):
                    logits, state = model(inputs, state)
                total += _summed_loss(logits, targets, pad_id).item()
                count += int((targets != pad_id).sum())
    model.train(was_training)
    return total, count


def _summed_loss(logits, targets, pad_id: int):
    """Cross-entropy summed over the real (non-padding) targets, in float32.

    The model's ``(B, T, V)`` logits are a view of time-major ``(T, B, V)`` memory, so the loss is
    taken in that order and no copy of the logits is made.
    """
    import torch.nn.functional as F

    time_major = logits.transpose(0, 1).float()  # (T, B, V), contiguous
    return F.cross_entropy(time_major.reshape(-1, time_major.shape[-1]), targets.t().reshape(-1),
                           ignore_index=pad_id, reduction="sum")


def _autocast(device):
    import contextlib

    import torch

    if getattr(device, "type", str(device)).startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


# --- the record --------------------------------------------------------------------------------


def _hardware(torch, device, world: int) -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"device": str(device), "cpu": cpu, "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "world_size": world,
            "python": platform.python_version(), "torch": torch.__version__}
    if str(device).startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def _data_hash(splits: dict[str, list[np.ndarray]], vocabulary: Vocabulary) -> str:
    digest = hashlib.sha256(vocabulary.to_json().encode("utf-8"))
    for name, tunes in splits.items():
        digest.update(name.encode())
        for ids in tunes:
            digest.update(np.ascontiguousarray(_token_ids(ids)).tobytes())
    return digest.hexdigest()


def _corpus_summary(info: dict) -> dict:
    """The parts of corpus.info worth carrying in a model card (no per-tune lists)."""
    keep = {}
    for key, value in (info or {}).items():
        if key in ("rejections", "duplicate_examples", "files"):
            continue
        keep[key] = value
    return json.loads(json.dumps(keep, default=str))


# --- the loop ----------------------------------------------------------------------------------


def _pick_device(torch, name: str, dist_local_rank: int, world: int):
    if name == "cuda" and not torch.cuda.is_available():
        raise OptionError("--device cuda asked for, but torch sees no CUDA GPU")
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    index = dist_local_rank if world > 1 else 0
    torch.cuda.set_device(index)
    return torch.device("cuda", index)


def _model_config(model: Any, vocab_size: int, previous: dict | None, encoding: str = "abc") -> dict:
    """Model hyperparameters: defaults, then a checkpoint's, then the caller's (None = unset)."""
    from folkrnn.model import ModelConfig  # lazily: folkrnn.model imports torch

    if model is None:
        given: dict = {}
    elif isinstance(model, ModelConfig):
        given = asdict(model)
    else:
        given = dict(model)
    given.pop("vocab_size", None)
    given = {key: value for key, value in given.items() if value is not None}
    unknown = sorted(set(given) - {f.name for f in fields(ModelConfig)})
    if unknown:
        raise OptionError(f"unknown model settings {unknown}")
    if previous is not None:
        conflicts = {key: (previous[key], value) for key, value in given.items()
                     if key in previous and previous[key] != value}
        if conflicts:
            raise ModelError("cannot resume: the checkpoint's model differs "
                             + ", ".join(f"{k} {old} vs {new}" for k, (old, new) in conflicts.items()))
        merged = {key: value for key, value in previous.items() if key != "vocab_size"}
    else:
        merged = given
    if merged.get("features"):  # the one check of the scheme a run trains with
        merged["feature_sizes"] = merged.get("feature_sizes") or scheme(merged["features"], encoding).feature_sizes(
            vocab_size)
    return ModelConfig(vocab_size=vocab_size, **merged).to_dict()


def _dropout_masks(torch, seed: int, step: int, layers: int, batch: int, steps: int, hidden: int,
                   rows: slice, dropout: float):
    """Time-major keep-masks ``(T, rows, H)`` per layer, drawn for the whole global batch from
    (seed, step) so that every rank sees the same masks as a single process would."""
    rng = np.random.default_rng([seed, step, 3])
    threshold = round(dropout * 65536)  # keep when the 16-bit draw >= threshold
    shape = (layers, steps, batch, hidden)
    count = layers * steps * batch * hidden
    # the generator's raw 64-bit words cut into four 16-bit draws each: 3x faster than
    # rng.integers, which spent ~1.5% of a training step here
    draws = rng.bit_generator.random_raw((count + 3) // 4).view(np.uint16)[:count].reshape(shape)
    keep = draws[:, :, rows] >= threshold
    return [torch.from_numpy(np.ascontiguousarray(mask)) for mask in keep]


def resumed_settings(out: str | os.PathLike) -> dict:
    """The TrainConfig fields of the run saved in ``out`` (read from the resume point's header)."""
    return dict(resumed_run(out)["train_config"])


def resumed_run(out: str | os.PathLike) -> dict:
    """What the run folder ``out`` says about its run, read from the resume point's header
    (``training_state.safetensors``, without loading its tensors).

    Returns ``{"train_config", "model", "encoding", "corpus", "commands"}``: the TrainConfig fields,
    the ModelConfig fields, ``"abc"`` or ``"midi"``, and the corpus record: ``recipe`` (the
    arguments that rebuild the corpus: sources as absolute paths or music21 collection names,
    encoding, normalisation or EventConfig, split and rendering; see
    ``folkrnn.corpus.Corpus.recipe``), ``files`` (sha256 of every file read), ``content_hash`` and
    ``data_hash``. A resume point written before corpora were recorded gets what its first command
    line says (``--corpus``, ``--encoding``; ``{}`` when nothing is known).

    Raises ModelError when there is nothing to resume or the file is not a folkrnn training state.
    """
    path = Path(out) / STATE_FILE
    if not path.exists():
        raise ModelError(f"nothing to resume: {path} does not exist")
    header = check_safetensors(path)
    try:
        meta = json.loads((header.get("__metadata__") or {})["folkrnn"])
        run = {"train_config": dict(meta["train_config"]), "model": dict(meta.get("model") or {}),
               "encoding": meta.get("encoding"), "commands": list(meta.get("commands") or [])}
    except (KeyError, TypeError, ValueError):
        raise ModelError(f"{path} is not a folkrnn training state") from None
    run["corpus"] = meta.get("corpus") or _legacy_corpus(run)
    return run


def _legacy_corpus(run: dict) -> dict:
    """The corpus of a run recorded before resume points carried it: its first command's
    ``--corpus``/``--source``/``-s`` paths (as typed) and ``--encoding``, when it was ``folkrnn train``."""
    import shlex

    first = (run["commands"] or [run["train_config"].get("command") or ""])[0]
    try:
        words = shlex.split(first)
    except ValueError:
        return {}
    if words[:2] != ["folkrnn", "train"]:
        return {}
    sources = [value for option, value in zip(words, words[1:]) if option in ("--corpus", "--source", "-s")]
    sources += [word.split("=", 1)[1] for word in words if word.startswith(("--corpus=", "--source="))]
    return {"recipe": {"sources": sources or None, "given": sources or None, "encoding": run["encoding"]},
            "legacy": True}


def _option(key: str) -> str:
    """The ``folkrnn train`` option that sets a TrainConfig or ModelConfig field."""
    names = {"augment_transpose": "--transpose", "augment_stretch": "--stretch", "sources": "--corpus"}
    return names.get(key, "--" + key.replace("_", "-"))


def _shown(key: str, value: Any) -> str:
    """A setting as the command line writes it: ``--hidden-size 256``, ``--no-positions``."""
    if key == "features":
        return "--positions" if value else "--no-positions"
    if key == "weights_dtype":
        return "--fp16" if value == "float16" else "--no-fp16"
    if key == "sources":
        return " ".join(f"--corpus {item}" for item in value) if value else "the default corpus"
    return f"{_option(key)} {value}"


def resume_plan(out: str | os.PathLike, *, train_given: dict | None = None, model_given: dict | None = None,
                sources: Sequence[str | os.PathLike] | None = None, encoding: str | None = None,
                **corpus_options) -> tuple[dict, dict, Any]:
    """What ``folkrnn train --resume --out OUT`` trains: the run in ``out`` as it was started, with
    the options given again.

    Parameters
    ----------
    out
        The run folder.
    train_given, model_given
        The TrainConfig and ModelConfig fields given on the command line (only those).
    sources, encoding
        The corpus sources and encoding given on the command line, or None.
    corpus_options
        For ``folkrnn.corpus.rebuild_corpus`` (cache_dir, workers).

    Returns
    -------
    (train settings, model settings, corpus)
        TrainConfig fields (the run's, with the given ones of :data:`RESUME_MAY_CHANGE`; the stop
        limits max_minutes and max_batches only when given), the given model fields, and the
        run's corpus built again from its recorded sources.

    Raises
    ------
    OptionError
        A given option that contradicts the run (naming both values) and may not change.
    CorpusError
        The corpus files changed since the run started (or are gone).
    ModelError
        Nothing to resume in ``out``.
    """
    run = resumed_run(out)
    where = Path(out)

    def conflict(key: str, old: Any, new: Any) -> OptionError:
        return OptionError(f"cannot resume {where}: it was trained with {_shown(key, old)}, "
                           f"not {_shown(key, new)}")

    previous = run["train_config"]
    known = {f.name for f in fields(TrainConfig)}
    settings = {key: value for key, value in previous.items() if key in known}
    for key in _RESUME_NOT_CARRIED:
        settings.pop(key, None)
    for key, value in (train_given or {}).items():
        if key in previous and key not in RESUME_MAY_CHANGE and previous[key] != value:
            raise conflict(key, previous[key], value)
        settings[key] = value
    settings["resume"], settings["force"] = True, False
    settings["out"] = os.fspath(out)
    model = {key: value for key, value in (model_given or {}).items() if value is not None}
    for key, value in model.items():
        if key not in run["model"]:
            continue
        old = run["model"][key]
        if key == "features":  # --positions names no scheme: a run keeps the one it was started with
            if bool(old) != bool(value):
                raise conflict(key, old, value)
            model[key] = old
        elif old != value:
            raise conflict(key, old, value)

    record = run["corpus"] or {}
    recipe = dict(record.get("recipe") or {})
    was = run["encoding"] or recipe.get("encoding") or "abc"
    if encoding is not None and encoding != was:
        raise conflict("encoding", was, encoding)
    recipe["encoding"] = was
    if sources and (record.get("legacy") or not record):
        recipe.update(sources=[os.fspath(item) for item in sources], given=None)
    elif sources:
        if source_keys(sources) != recipe.get("sources"):
            raise conflict("sources", recipe.get("given") or recipe.get("sources"),
                           [os.fspath(item) for item in sources])
    recorded = record.get("files")
    if recorded:
        try:
            now = file_hashes(corpus_files(recipe.get("sources") or None, was))
        except CorpusError as error:
            raise CorpusError(f"cannot resume {where}: its corpus changed since the run started ({error})") from None
        _check_files(where, recorded, now)
    try:
        corpus = rebuild_corpus(recipe, **corpus_options)
    except CorpusError as error:
        if not record.get("legacy") or sources:
            raise
        raise CorpusError(f"cannot resume {where}: its first command's corpus ({_shown('sources', recipe['sources'])}) "
                          f"cannot be read from here ({error}); give its --corpus again") from None
    return settings, model, corpus


def _check_files(where: Path, recorded: dict[str, str], now: dict[str, str]) -> None:
    """CorpusError naming what changed when the files' hashes differ from the recorded ones."""
    def show(path: str) -> str:
        relative = os.path.relpath(path)
        return path if relative.startswith("..") else relative

    changed = [path for path in recorded if path in now and now[path] != recorded[path]]
    removed = [path for path in recorded if path not in now]
    added = [path for path in now if path not in recorded]
    parts = []
    for what, paths in (("changed", changed), ("removed", removed), ("added", added)):
        if paths:
            more = f" and {len(paths) - 1} more" if len(paths) > 1 else ""
            parts.append(f"{show(paths[0])}{more} {what}")
    if parts:
        raise CorpusError(f"cannot resume {where}: its corpus files changed since the run started "
                          f"({'; '.join(parts)}); restore them, or start afresh with --force")


def _corpus_record(corpus: CorpusLike, splits: dict[str, list[np.ndarray]], vocabulary: Vocabulary) -> dict:
    """What the resume point records of the corpus: how to build it again and what it held."""
    record: dict = {"content_hash": (getattr(corpus, "info", None) or {}).get("content_hash"),
                    "data_hash": _data_hash(splits, vocabulary)}
    recipe = getattr(corpus, "recipe", None)
    if recipe:
        record["recipe"] = json.loads(json.dumps(recipe, default=str))
    files = getattr(corpus, "files", None)
    if files:
        record["files"] = file_hashes(files)
    return record


def train(corpus: CorpusLike, config: TrainConfig, model: Any = None) -> TrainResult:
    """Train a language model on a corpus and leave it in ``config.out``.

    Parameters
    ----------
    corpus
        Train/valid/test token sequences, the encoding name and info (see :class:`CorpusLike`).
    config
        How to train.
    model
        ModelConfig, or a dict of its fields (``vocab_size`` is taken from the corpus; None
        values and missing fields take the defaults, or the checkpoint's when resuming).

    Returns
    -------
    TrainResult

    Raises
    ------
    CorpusError
        No usable tunes for training.
    ModelError
        ``resume`` with a checkpoint of another encoding, vocabulary or model, or a damaged one;
        an existing model in ``out`` without ``force``.
    OptionError
        Bad settings (unknown encoding, a device that is not there, ...).
    """
    import torch

    encoding = getattr(corpus, "encoding", None)
    if encoding not in ("abc", "midi"):
        raise OptionError(f"unknown encoding {encoding!r}; choose abc or midi")
    if (config.augment_transpose or config.augment_stretch) and encoding != "midi":
        raise OptionError("transposition and time-stretch augmentation apply to MIDI corpora only")
    if config.augment_stretch and ((getattr(corpus, "info", None) or {}).get("settings") or {}).get("controls"):
        raise OptionError("time-stretch augmentation would move the beat off the TEMPO its controls give; "
                          "a corpus with controls takes --transpose only")
    out = Path(config.out)
    tensors: dict[str, np.ndarray] = {}
    meta: dict = {}
    if config.resume:
        tensors, meta = load_training_state(out / STATE_FILE)
        if meta.get("encoding") != encoding:
            raise ModelError(f"cannot resume {out}: it was trained on {meta.get('encoding')!r} "
                             f"tokens, this corpus is {encoding!r}")
    vocabulary = corpus_vocabulary(corpus)
    model_config = _model_config(model, len(vocabulary), meta.get("model"), encoding)
    settings = dict((corpus.info or {}).get("settings") or {})
    if model_config["features"] and encoding == "midi" and not settings.get("controls"):
        raise OptionError("the pulse features read the controls that open each performance, and this MIDI "
                          "corpus has none; build it with controls (the default), or train with --no-positions")
    splits = {name: _as_ids(getattr(corpus, name, None) or [], vocabulary, name, model_config["features"],
                            encoding, settings)
              for name in ("train", "valid", "test")}
    if not splits["train"]:
        raise CorpusError("the corpus has no training tunes (it is empty, or none of its tunes is valid)")
    if config.resume:
        old, new = meta.get("vocabulary") or [], vocabulary.to_list()
        if old != new:
            differ = sorted(set(old) ^ set(new))[:3]
            raise ModelError(f"cannot resume {out}: its vocabulary differs from this corpus's "
                             f"({len(old)} vs {len(new)} tokens; e.g. {differ})")
        previous = meta.get("train_config") or {}
        for key, value in asdict(config).items():
            if key in previous and key not in RESUME_MAY_CHANGE and previous[key] != value:
                raise ModelError(f"cannot resume {out} exactly: it was trained with {key} {previous[key]}, "
                                 f"not {value}")
        corpus_record = meta.get("corpus") or _corpus_record(corpus, splits, vocabulary)
        for key in ("content_hash", "data_hash"):
            old = corpus_record.get(key)
            if key == "content_hash":
                new = (getattr(corpus, "info", None) or {}).get(key)
            else:
                new = _data_hash(splits, vocabulary)
            if old and new and old != new:
                raise ModelError(f"cannot resume {out}: its corpus changed since the run started "
                                 f"({key.replace('_', ' ')} {old[:12]} vs {new[:12]})")
    elif not config.force and ((out / MODEL_FILE).exists() or (out / STATE_FILE).exists()):
        raise ModelError(f"{out} already holds a model; resume it or use --force to start afresh")
    else:
        corpus_record = _corpus_record(corpus, splits, vocabulary)

    device_kind = "cuda" if config.device == "cuda" or (
        config.device == "auto" and torch.cuda.is_available()) else "cpu"
    dist = _Dist(torch, device_kind)
    try:
        trainer = _Trainer(config, model_config, vocabulary, splits, dict(getattr(corpus, "info", None) or {}),
                           encoding, dist)
        trainer.corpus_record = corpus_record
        if encoding == "abc":  # the titles whose words and order a title the model writes keeps to (folkrnn.abc.titles)
            trainer.titles = corpus_title_rhythms(getattr(corpus, "train", None) or [])
        if meta:
            trainer.restore(tensors, meta)
        result = trainer.run()
        if dist.world > 1:
            dist.dist.barrier()  # every rank is done with its collectives before any tears down
        return result
    finally:
        dist.close()


class _Trainer:
    """One training run's state and steps (see the module docstring for what happens)."""

    def __init__(self, config: TrainConfig, model_config: dict, vocabulary: Vocabulary,
                 splits: dict[str, list[np.ndarray]], info: dict, encoding: str, dist: _Dist) -> None:
        import torch

        from folkrnn.model import LanguageModel, ModelConfig  # lazily: folkrnn.model imports torch

        self.started = time.perf_counter()
        self.torch = torch
        self.config, self.vocabulary, self.splits, self.encoding, self.dist = config, vocabulary, splits, encoding, dist
        self.model_config = ModelConfig(**model_config)
        self.out = Path(config.out)
        self.pad_id = vocabulary.pad_id
        self.device = _pick_device(torch, config.device, dist.local_rank, dist.world)
        if self.device.type == "cpu" and dist.world > 1:
            # ranks share the cores: more threads than cores only slow each other down
            local = int(os.environ.get("LOCAL_WORLD_SIZE", dist.world))
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // local))
        torch.manual_seed(config.seed)
        if self.device.type == "cuda":
            torch.cuda.manual_seed(config.seed)
        self.net = LanguageModel(self.model_config).to(self.device)
        parameters = self.net.parameters()
        if config.optimizer == "adamw":
            self.optimizer = torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)
        else:
            self.optimizer = torch.optim.RMSprop(parameters, lr=config.lr)
        self.lengths = np.array([len(ids) for ids in splits["train"]])
        self.steps_per_epoch = sum(len(chunk_spans(int(self.lengths[b].max()) - 1, config.bptt))
                                   for b in plan_epoch(self.lengths, config.batch_size, config.seed, 0))
        self.schedule = _Schedule(config, self.steps_per_epoch * config.epochs)
        self.encoding_params = dict(info.get("settings") or {})
        self.is_writer = dist.rank == 0
        # where training stands; everything here goes into the resume point
        self.position = {"epoch": 0, "batch": 0}  # the next batch to train
        self.step = 0  # optimiser steps taken
        self.batches = 0  # batches trained
        self.history: dict[str, list] = {"batch_losses": [], "evaluations": [], "epoch_train_losses": []}
        self.best_valid: float | None = None
        self.bad_evaluations = 0
        self.epoch_sums = [0.0, 0.0]  # this epoch's summed train loss and target count
        self.wall_before = 0.0  # seconds spent by the runs this one resumes
        # this run's speed figures
        self.run_tokens = 0
        self.run_seconds = 0.0
        self.computed_positions = 0
        self.real_positions = 0
        self.plan_size = 1
        self.base_record = {
            "encoding": encoding,
            "corpus": _corpus_summary(info),
            "corpus_hash": info.get("content_hash") or info.get("hash"),
            "data_hash": _data_hash(splits, vocabulary),
            "split": {name: {"tunes": len(tunes), "tokens": int(sum(len(t) for t in tunes))}
                      for name, tunes in splits.items()},
            "train_config": {k: v for k, v in asdict(config).items() if k not in ("progress", "command")},
            **({"performance": performance_record(splits["train"], self.encoding_params)}
               if encoding == "midi" else {}),
            "hardware": _hardware(torch, self.device, dist.world),
            "command": config.command or " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        self.commands = [self.base_record["command"]]  # this run's command, after those it resumes
        self.corpus_record: dict | None = None  # how to build the corpus again (folkrnn train --resume)
        self.titles: dict[str, tuple[str, ...]] = {}  # the training titles and their tunes' rhythms, written
        # beside the model

    # --- saving and restoring ------------------------------------------------------------

    def weights(self) -> dict[str, np.ndarray]:
        return {name: value.detach().float().cpu().numpy() for name, value in self.net.state_dict().items()}

    def record(self, **extra) -> dict:
        """The training record as it stands."""
        evaluations = self.history["evaluations"]
        return {
            **self.base_record,
            "epochs": round(self.position["epoch"] + self.position["batch"] / self.plan_size, 4),
            "steps": self.step, "batches": self.batches,
            "losses": {"train": self.history["epoch_train_losses"],
                       "valid": [e["valid_loss"] for e in evaluations if e["valid_loss"] is not None]},
            "best_valid_loss_nats": self.best_valid,
            "padding": round(1 - self.real_positions / self.computed_positions, 4) if self.computed_positions else None,
            "tokens_per_s": round(self.run_tokens / self.run_seconds, 1) if self.run_seconds else None,
            "wall_time_s": round(self.wall_before + time.perf_counter() - self.started, 1),
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            **extra,
        }

    def save_model(self, **extra) -> None:
        save_model(self.out, self.weights(), self.model_config.to_dict(), self.vocabulary, self.encoding,
                   self.encoding_params, self.record(**extra), dtype=self.config.weights_dtype)
        if self.encoding == "abc":  # its titles beside it, or none (a folder used afresh); no older word file
            if self.titles:
                write_titles(self.out, self.titles)
            else:
                (self.out / TITLES_FILE).unlink(missing_ok=True)
            (self.out / WORDS_FILE).unlink(missing_ok=True)

    def save_resume_point(self) -> None:
        torch = self.torch
        tensors = {f"model.{name}": value for name, value in self.weights().items()}
        optimizer_tensors, optimizer_meta = _flatten_optimizer(self.optimizer)
        tensors.update(optimizer_tensors)
        tensors["rng.torch"] = torch.get_rng_state().numpy()
        if self.device.type == "cuda":
            tensors["rng.cuda"] = torch.cuda.get_rng_state(self.device).numpy()
        save_training_state(self.out / STATE_FILE, tensors, {
            "encoding": self.encoding, "vocabulary": self.vocabulary.to_list(),
            "model": self.model_config.to_dict(), "train_config": asdict(self.config),
            "position": self.position, "step": self.step, "batches": self.batches,
            "history": self.history, "best_valid": self.best_valid,
            "bad_evaluations": self.bad_evaluations, "epoch_sums": self.epoch_sums,
            "schedule": self.schedule.state_dict(), "optimizer": optimizer_meta,
            "wall_s": self.wall_before + time.perf_counter() - self.started,
            "rng_python": _python_rng_to_json(random.getstate()),
            "rng_numpy": _numpy_rng_to_json(np.random.get_state()),
            "commands": self.commands, "corpus": self.corpus_record, "started": self.base_record["started"],
        })

    def restore(self, tensors: dict[str, np.ndarray], meta: dict) -> None:
        torch = self.torch
        weights = {name[len("model."):]: torch.from_numpy(value.copy())
                   for name, value in tensors.items() if name.startswith("model.")}
        try:
            self.net.load_state_dict(weights, strict=True)
            self.optimizer.load_state_dict(_unflatten_optimizer(tensors, meta["optimizer"], self.device))
            self.schedule.load_state_dict(meta["schedule"])
            self.position = dict(meta["position"])
            self.step, self.batches = int(meta["step"]), int(meta["batches"])
            self.history = meta["history"]
            self.best_valid, self.bad_evaluations = meta["best_valid"], int(meta["bad_evaluations"])
            self.epoch_sums = list(meta["epoch_sums"])
            self.wall_before = float(meta["wall_s"])
            # the card names the command that started the run, then each one that resumed it
            earlier = meta.get("commands") or [meta["train_config"].get("command") or "?"]
            self.commands = [*earlier, self.base_record["command"]]
            self.base_record["command"] = " ; then ".join(self.commands)
            # and when the run started, not this resume (a resume point from before it was kept: this one)
            self.base_record["started"] = meta.get("started") or self.base_record["started"]
            random.setstate(_python_rng_from_json(meta["rng_python"]))
            np.random.set_state(_numpy_rng_from_json(meta["rng_numpy"]))
        except (RuntimeError, KeyError, ValueError, TypeError) as error:
            raise ModelError(f"cannot resume {self.out}: the training state does not fit "
                             f"({' '.join(str(error).split())[:200]})") from None
        torch.set_rng_state(torch.from_numpy(tensors["rng.torch"].copy()))
        if self.device.type == "cuda" and "rng.cuda" in tensors:
            torch.cuda.set_rng_state(torch.from_numpy(tensors["rng.cuda"].copy()), self.device)

    # --- evaluating ----------------------------------------------------------------------

    def evaluate(self, tunes: list[np.ndarray]) -> float | None:
        """Mean loss in nats/token over ``tunes`` (all ranks together), or None when empty."""
        total, count = evaluate_loss(self.net, tunes, batch_size=self.config.batch_size,
                                     bptt=max(self.config.bptt, 256), pad_id=self.pad_id, device=self.device,
                                     rank=self.dist.rank, world=self.dist.world)
        total, count = self.dist.sum([total, float(count)], self.device)
        return total / count if count else None

    # --- training ------------------------------------------------------------------------

    def epoch_data(self, epoch: int) -> tuple[list[np.ndarray], np.ndarray]:
        """The training tunes of an epoch (augmented for MIDI when asked) and their lengths."""
        config, tunes = self.config, self.splits["train"]
        if not (config.augment_transpose or config.augment_stretch):
            return tunes, self.lengths
        names = _augment([self.vocabulary.decode(_token_ids(rows)) for rows in tunes], self.vocabulary, config, epoch)
        tunes = [np.asarray(self.vocabulary.encode(t), dtype=np.int64) for t in names]
        if self.model_config.features:  # the features of the augmented events, read afresh
            module = scheme(self.model_config.features, self.encoding)
            shared = module.classes(self.vocabulary.tokens, self.encoding_params)
            tunes = [module.with_features(ids, shared) for ids in tunes]
        return tunes, np.array([len(ids) for ids in tunes])

    def train_batch(self, model, rows: list[np.ndarray]) -> float:
        """Train on one global batch (this rank's share of it); returns its mean loss in nats/token."""
        torch, config, dist = self.torch, self.config, self.dist
        length = max(len(ids) for ids in rows)
        global_batch = pad_inputs(rows, length, self.pad_id)
        counts = (_targets(global_batch)[:, 1:] != self.pad_id)  # (B, T-1) which targets are real
        share = np.array_split(np.arange(len(rows)), dist.world)[dist.rank]
        mine = slice(int(share[0]), int(share[-1]) + 1) if len(share) else None
        # a rank without rows still runs one all-padding row, so DDP's collectives line up
        local = global_batch[mine] if mine is not None else pad_inputs([global_batch[0, :0]], length, self.pad_id)
        batch = torch.from_numpy(local).to(self.device)
        state = None
        loss_sum = 0.0
        targets_total = 0
        for begin, end in chunk_spans(length - 1, config.bptt):
            count = int(counts[:, begin:end].sum())  # real targets in the global chunk
            inputs, targets = batch[:, begin:end], _targets(batch)[:, begin + 1:end + 1]
            for group in self.optimizer.param_groups:
                group["lr"] = config.lr * self.schedule.factor(self.step)
            masks = None
            if self.device.type == "cpu" and self.model_config.dropout > 0:
                masks = _dropout_masks(torch, config.seed, self.step, self.model_config.layers, len(rows),
                                       end - begin, self.model_config.hidden_size,
                                       mine if mine is not None else slice(0, 1), self.model_config.dropout)
            with _autocast(self.device):
                logits, state = model(inputs, state, masks)
            chunk_loss = _summed_loss(logits, targets, self.pad_id)
            self.optimizer.zero_grad(set_to_none=True)
            # DDP averages gradients over ranks; scaling by world / global count makes the result
            # the gradient of the global batch's mean loss
            (chunk_loss * (dist.world / max(count, 1))).backward()
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), config.clip_norm)
            self.optimizer.step()
            state = tuple(s.detach() for s in state)
            loss_sum += chunk_loss.item() if mine is not None else 0.0
            targets_total += count
            self.computed_positions += len(rows) * (end - begin)
            self.step += 1
        (loss_sum,) = dist.sum([loss_sum], self.device)
        self.real_positions += targets_total
        self.epoch_sums[0] += loss_sum
        self.epoch_sums[1] += targets_total
        self.run_tokens += targets_total
        return loss_sum / max(targets_total, 1)

    def run(self) -> TrainResult:
        config, dist = self.config, self.dist
        model = self.net
        if dist.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            devices = [self.device.index] if self.device.type == "cuda" else None
            model = DistributedDataParallel(self.net, device_ids=devices)
        log_path = self.out / LOG_FILE
        if self.is_writer:
            self.out.mkdir(parents=True, exist_ok=True)
            if not config.resume and log_path.exists():
                log_path.unlink()
            elif config.resume and log_path.exists():
                # drop evaluations logged after the resume point by the run that was stopped, and a
                # last line cut short by a kill (-9) while it was being written
                kept = [line for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines()
                        if _logged_batches(line) <= self.batches]
                write_atomic(log_path, "".join(line + "\n" for line in kept), error=ModelError)
        deadline = self.started + config.max_minutes * 60 if config.max_minutes else None
        stopped = None
        progress = _progress(config.progress and self.is_writer)
        if progress is not None:
            progress.start()
            task = progress.add_task("training", total=self.steps_per_epoch * config.epochs, completed=self.step,
                                     loss=float("nan"), speed=0.0)
        self.net.train()
        try:
            while stopped is None and self.position["epoch"] < config.epochs:
                epoch = self.position["epoch"]
                tunes, lengths = self.epoch_data(epoch)
                plan = plan_epoch(lengths, config.batch_size, config.seed, epoch)
                self.plan_size = len(plan)
                while stopped is None and self.position["epoch"] == epoch:
                    began = time.perf_counter()
                    loss = self.train_batch(model, [tunes[i] for i in plan[self.position["batch"]]])
                    self.run_seconds += time.perf_counter() - began
                    self.history["batch_losses"].append(loss)
                    self.batches += 1
                    self.position["batch"] += 1
                    end_of_epoch = self.position["batch"] >= len(plan)
                    running = self.epoch_sums[0] / self.epoch_sums[1] if self.epoch_sums[1] else None
                    if end_of_epoch:
                        self.history["epoch_train_losses"].append(running)
                        self.epoch_sums = [0.0, 0.0]
                        self.position = {"epoch": epoch + 1, "batch": 0}
                    if progress is not None:
                        progress.update(task, completed=self.step, loss=loss,
                                        speed=self.run_tokens / max(self.run_seconds, 1e-9),
                                        description=f"epoch {min(epoch + 1, config.epochs)}/{config.epochs}")
                    evaluate_now = end_of_epoch or bool(
                        config.eval_interval and self.batches % config.eval_interval == 0)
                    if evaluate_now:
                        stopped = self.evaluation(running, log_path)
                    out_of_time = deadline is not None and time.perf_counter() > deadline
                    out_of_time = bool(dist.sum([float(out_of_time)], self.device)[0])  # all ranks agree
                    if stopped is None and out_of_time:
                        stopped = "time limit"
                    if stopped is None and config.max_batches and self.batches >= config.max_batches:
                        stopped = "batch limit"
                    if self.is_writer and (evaluate_now or stopped or (
                            config.checkpoint_interval and self.batches % config.checkpoint_interval == 0)):
                        self.save_resume_point()
        finally:
            if progress is not None:
                progress.stop()
        return self.finish(stopped or "epochs")

    def evaluation(self, train_loss: float | None, log_path: Path) -> str | None:
        """Validate, keep the best model, log; returns "early stopping" when patience runs out."""
        valid = self.evaluate(self.splits["valid"])
        improved = valid is not None and (self.best_valid is None or valid < self.best_valid)
        if improved:
            self.best_valid, self.bad_evaluations = valid, 0
        elif valid is not None:
            self.bad_evaluations += 1
        self.schedule.on_evaluation(improved)
        entry = {
            "epoch": round(self.position["epoch"] + self.position["batch"] / self.plan_size, 4),
            "step": self.step, "batches": self.batches, "train_loss": train_loss, "valid_loss": valid,
            "best_valid_loss": self.best_valid, "lr": self.config.lr * self.schedule.factor(self.step),
            "tokens_per_s": round(self.run_tokens / self.run_seconds, 1) if self.run_seconds else None,
            "padding": round(1 - self.real_positions / self.computed_positions, 4) if self.computed_positions else None,
            "wall_s": round(self.wall_before + time.perf_counter() - self.started, 2),
        }
        self.history["evaluations"].append(entry)
        if self.is_writer:
            with open(log_path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(entry) + "\n")
            if improved or valid is None:  # without a valid split the latest model is the best one
                self.save_model()
        if self.config.patience and self.bad_evaluations >= self.config.patience:
            return "early stopping"
        return None

    def ngram_losses(self, test_loss: float | None, order: int = 5) -> dict:
        """The card's baseline: an interpolated Kneser-Ney ``order``-gram fitted to the same
        training split and tokens, scored on the test split (``ngram_test_loss_nats``), next to
        the model's own ``test_loss_nats``."""
        if not self.splits["test"] or not self.splits["train"]:
            return {}
        decode = self.vocabulary.decode
        ngram = fit_ngram([decode(_token_ids(ids)) for ids in self.splits["train"]], order=order,
                          vocabulary=[t for t in self.vocabulary.tokens if t not in ("<pad>", "<s>")])
        baseline = ngram.cross_entropy([decode(_token_ids(ids)) for ids in self.splits["test"]])
        return {"test_loss_nats": test_loss, "ngram_test_loss_nats": baseline, "ngram_order": order}

    def finish(self, stopped: str) -> TrainResult:
        """Leave the best model in ``out`` with its losses on every split in its record."""
        dist = self.dist
        if self.is_writer and not (self.out / MODEL_FILE).exists():
            self.save_model()
        if dist.world > 1:
            dist.dist.barrier()  # rank 0's files are complete before anyone reads them
        final: dict = {"stopped": stopped}
        # the best model's losses on every split, whatever stopped the run (a run stopped by its
        # time limit is often the one kept); scored as stored, so float16 shipping is what is scored
        best = load_model(self.out).weights
        self.net.load_state_dict({k: self.torch.from_numpy(v) for k, v in best.items()}, strict=True)
        for name in ("train", "valid", "test"):
            tunes = self.splits[name]
            if name == "train":
                # every k-th training tune, about as many as the test split holds: the whole split
                # would take minutes (a MIDI corpus: 10M events) and tells no more
                step = max(1, len(tunes) // max(len(self.splits["test"]), 64))
                tunes = tunes[::step]
                final["train_loss_tunes"] = len(tunes)
            final[f"{name}_loss_nats"] = self.evaluate(tunes)
        if self.is_writer:  # the n-gram on the same tokens: ABC tokens or events alike
            final.update(self.ngram_losses(final.get("test_loss_nats")))
        record = self.record(**final)
        if self.is_writer:
            update_training_record(self.out, record)
        return TrainResult(
            out=self.out, stopped=stopped, epochs=record["epochs"], steps=self.step, batches=self.batches,
            batch_losses=list(self.history["batch_losses"]), evaluations=list(self.history["evaluations"]),
            best_valid_loss=self.best_valid, test_loss=final.get("test_loss_nats"),
            train_loss=final.get("train_loss_nats"),
            tokens_per_s=self.run_tokens / self.run_seconds if self.run_seconds else 0.0,
            padding=1 - self.real_positions / self.computed_positions if self.computed_positions else 0.0,
            wall_s=record["wall_time_s"], record=record)


def _python_rng_to_json(state) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _python_rng_from_json(data) -> tuple:
    version, internal, gauss = data
    return (version, tuple(internal), gauss)


def _numpy_rng_to_json(state) -> list:
    name, keys, position, has_gauss, cached = state
    return [name, keys.tolist(), int(position), int(has_gauss), float(cached)]


def _numpy_rng_from_json(data) -> tuple:
    name, keys, position, has_gauss, cached = data
    return (name, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached)


def _progress(enabled: bool):
    """A rich progress bar on a terminal, or None."""
    if not enabled or not sys.stderr.isatty():
        return None
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.3f}"), TextColumn("{task.fields[speed]:,.0f} tok/s"),
        TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True), transient=False)
