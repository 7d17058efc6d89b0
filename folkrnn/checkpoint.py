"""Saving and loading models: ``model.safetensors`` + ``config.json``, and the training state to resume.

A model directory holds everything needed to use the model, and nothing that can run code:

- ``model.safetensors``: the weights (float32, or float16 to ship small; always loaded as float32);
- ``config.json``: the format and its version, the model config, the vocabulary in id order, the
  encoding and its parameters, and the training record (the model's card);
- ``titles.txt`` (an ABC model's, optional): its corpus' titles, one a line (each with its tunes'
  rhythms after a tab), whose words, in their order, a title the model writes is made of
  (:mod:`folkrnn.abc.titles`); an older folder's
  ``title_words.txt`` holds the words alone, one a line (any order); without either, any letters.

Training also leaves ``training_state.safetensors``: the float32 weights, the optimiser's tensors
and the RNG states, with everything else (epoch, step, data-order position, schedule, history) as
JSON in the file's metadata, so one atomic rename makes the whole resume point consistent.

No pickle anywhere, and torch is never imported here: loading uses safetensors' NumPy API. Every
file is written to a temporary name and renamed into place (``os.replace``), so a kill at any
moment leaves the previous good file. Anything wrong with a model directory raises one
:class:`~folkrnn.errors.ModelError`.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from folkrnn import __version__
from folkrnn.errors import ModelError, OptionError
from folkrnn.files import write_atomic
from folkrnn.infer import NumpyLSTM
from folkrnn.limits import check_model_size
from folkrnn.schemes import scheme
from folkrnn.vocab import Vocabulary

__all__ = [
    "FORMAT", "FORMAT_VERSION", "MODEL_FILE", "CONFIG_FILE", "STATE_FILE", "Checkpoint",
    "save_model", "load_model", "read_config", "update_training_record", "model_card", "format_card",
    "save_training_state", "load_training_state", "expected_shapes", "check_safetensors", "SHIPPED", "shipped_model",
]

FORMAT = "folkrnn-model"  # config.json's "format"
FORMAT_VERSION = 1  # bumped when config.json or the weight names change incompatibly
STATE_FORMAT = "folkrnn-training-state"  # the resume file's metadata "format"
MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
STATE_FILE = "training_state.safetensors"
ENCODINGS = ("abc", "midi")
SHIPPED = Path(__file__).resolve().parent / "models"  # the shipped default models: models/abc, models/midi
_MODEL_FIELDS = ("vocab_size", "embedding_size", "hidden_size", "layers", "dropout")


def _model_fields(model_config: Mapping) -> dict:
    """The model config's fields a checkpoint keeps (a model saved before position features has none)."""
    out = {name: model_config[name] for name in _MODEL_FIELDS}
    out["features"] = model_config.get("features") or ""
    out["feature_sizes"] = list(model_config.get("feature_sizes") or [])
    return out


@dataclass
class Checkpoint:
    """A loaded model directory: the weights as float32 NumPy arrays and what config.json says."""

    path: Path  # the model directory
    model_config: dict  # ModelConfig fields (vocab_size, embedding_size, hidden_size, layers, dropout)
    vocabulary: Vocabulary  # tokens in id order
    encoding: str  # "abc" or "midi"
    encoding_params: dict  # ABC normalisation settings or EventConfig fields
    training: dict  # the training record (corpus, hash, epochs, losses, hardware, command, time)
    weights: dict[str, np.ndarray] = field(repr=False)  # state dict, float32
    config: dict = field(repr=False, default_factory=dict)  # config.json as read
    title_words: tuple[str, ...] | None = None  # the words of titles.txt, or title_words.txt's (None: neither)
    titles: tuple[str, ...] | None = None  # titles.txt's titles (None: the folder has none)
    title_rhythms: dict[str, tuple[str, ...]] | None = None  # titles.txt's rhythms of its titles (None: none)

    def engine(self):
        """The NumPy LSTM on these weights (no torch), with the model's ``title_words`` and ``titles``
        (the sampler reads them there, as it reads ``features``)."""
        engine = NumpyLSTM(self.weights)
        engine.title_words, engine.titles, engine.title_rhythms = self.title_words, self.titles, self.title_rhythms
        return engine

    def feature_reader(self):
        """``ids -> model input`` for this model: the ids themselves, or ``(T, 1 + F)`` with the
        features of its scheme (:mod:`folkrnn.schemes`) for a model that reads them."""
        name = self.model_config.get("features")
        if not name:
            return lambda ids: np.asarray(ids, np.int64)
        module = scheme(name, self.encoding)
        shared = module.classes(self.vocabulary.tokens, self.encoding_params)
        return lambda ids: module.with_features(np.asarray(ids, np.int64), shared)


def shipped_model(encoding: str = "abc") -> Path:
    """The folder of the default model shipped for ``encoding`` (package data).

    Raises ModelError, saying how to get one, when this installation has none.
    """
    path = SHIPPED / encoding
    if not (path / CONFIG_FILE).is_file():
        raise ModelError(f"no default model is installed (expected {path}); train one with "
                         f"`folkrnn train --out {path}` or pass --model DIR")
    return path


# --- writing -----------------------------------------------------------------------------------


def _atomic_write(path: Path, data: bytes) -> None:
    """Write one file of a model directory atomically (the folder is made if needed)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ModelError(f"cannot create the folder: {error.strerror or error}", file=str(path.parent)) from None
    write_atomic(path, data, error=ModelError)


def _serialize(tensors: Mapping[str, np.ndarray], metadata: dict[str, str] | None = None) -> bytes:
    from safetensors.numpy import save

    # np.ascontiguousarray would turn 0-d arrays (an optimiser's step count) into 1-d ones
    arrays = {name: np.array(value, order="C", copy=None) for name, value in tensors.items()}
    return save(arrays, metadata=metadata)


def expected_shapes(model_config: Mapping) -> dict[str, tuple[int, ...]]:
    """Every weight name of the language model and its shape, from the model config."""
    vocab, width = model_config["vocab_size"], model_config["embedding_size"]
    hidden, layers = model_config["hidden_size"], model_config["layers"]
    shapes: dict[str, tuple[int, ...]] = {"embedding.weight": (vocab, width)}
    for layer in range(layers):
        inputs = width if layer == 0 else hidden
        shapes[f"lstm.{layer}.weight_ih_l0"] = (4 * hidden, inputs)
        shapes[f"lstm.{layer}.weight_hh_l0"] = (4 * hidden, hidden)
        shapes[f"lstm.{layer}.bias_ih_l0"] = (4 * hidden,)
        shapes[f"lstm.{layer}.bias_hh_l0"] = (4 * hidden,)
    for k, size in enumerate(model_config.get("feature_sizes") or ()):
        shapes[f"feature_embeddings.{k}.weight"] = (size, width)
    shapes["head.weight"] = (vocab, hidden)
    shapes["head.bias"] = (vocab,)
    return shapes


def save_model(
    directory: str | os.PathLike,
    weights: Mapping[str, np.ndarray],
    model_config: Mapping,
    vocabulary: Vocabulary,
    encoding: str,
    encoding_params: Mapping | None = None,
    training: Mapping | None = None,
    *,
    dtype: str = "float32",
) -> Path:
    """Write ``model.safetensors`` and ``config.json`` into ``directory``, each atomically.

    Parameters
    ----------
    directory
        The model directory (created if needed).
    weights
        The model's state dict as NumPy arrays.
    model_config
        ModelConfig fields (``asdict(config)``).
    vocabulary
        The vocabulary; its size must equal ``model_config["vocab_size"]``.
    encoding, encoding_params
        ``"abc"`` or ``"midi"``, and its settings (normalisation switches or EventConfig fields).
    training
        The training record (the card).
    dtype
        ``"float32"``, or ``"float16"`` to halve the file (loaded back as float32).

    Returns
    -------
    Path
        The directory.
    """
    directory = Path(directory)
    model_config = _model_fields(model_config)
    _check_model(model_config, vocabulary, encoding, where=str(directory))
    if dtype not in ("float32", "float16"):
        raise ModelError(f"weights can be stored as float32 or float16, not {dtype!r}")
    shapes = expected_shapes(model_config)
    arrays = {name: np.asarray(value) for name, value in weights.items()}
    _check_weights(arrays, shapes, str(directory))
    arrays = {name: arrays[name].astype(dtype) for name in shapes}
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": model_config,
        "weights": {"file": MODEL_FILE, "dtype": dtype,
                    "parameters": int(sum(int(np.prod(shape)) for shape in shapes.values()))},
        "encoding": {"name": encoding, "params": dict(encoding_params or {})},
        "vocabulary": vocabulary.to_list(),
        "training": dict(training or {}),
    }
    config["folkrnn_version"] = __version__
    text = json.dumps(config, indent=1, ensure_ascii=False, allow_nan=False) + "\n"
    # weights first: if a kill falls between the two renames, the old config still describes the
    # same network and vocabulary (they never change within one training run)
    _atomic_write(directory / MODEL_FILE, _serialize(arrays))
    _atomic_write(directory / CONFIG_FILE, text.encode("utf-8"))
    return directory


def update_training_record(directory: str | os.PathLike, training: Mapping) -> None:
    """Replace the training record in a model's ``config.json`` (atomically), weights untouched."""
    directory = Path(directory)
    config = read_config(directory)
    config["training"] = dict(training)
    text = json.dumps(config, indent=1, ensure_ascii=False, allow_nan=False) + "\n"
    _atomic_write(directory / CONFIG_FILE, text.encode("utf-8"))


# --- reading -----------------------------------------------------------------------------------

_PICKLE_HINT = "folkrnn never unpickles models; use a folkrnn model directory (model.safetensors + config.json)"


def check_safetensors(path: Path) -> dict:
    """Check that ``path`` is a whole safetensors file without reading it as anything else.

    Recognises pickles and torch ``.pt`` zips by their first bytes and refuses them; nothing in
    the file is ever executed. Returns the parsed header.

    Raises
    ------
    ModelError
        Missing, not safetensors, or truncated.
    """
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            head = handle.read(9)
            # safetensors: 8-byte little-endian header size, then a JSON object
            looks_safe = len(head) == 9 and head[8:9] == b"{"
            if not looks_safe:
                if head[:4] == b"PK\x03\x04":
                    raise ModelError(f"{path} is a torch zip archive (torch.save), not safetensors; "
                                     f"{_PICKLE_HINT}")
                if head[:1] == b"\x80" and head[1:2] in (b"\x01", b"\x02", b"\x03", b"\x04", b"\x05"):
                    raise ModelError(f"{path} is a pickle, not safetensors; {_PICKLE_HINT}")
                raise ModelError(f"{path} is not a safetensors file" + (f" (only {size} bytes)" if size < 9 else ""))
            (header_size,) = struct.unpack("<Q", head[:8])
            if header_size > min(size - 8, 100_000_000):
                raise ModelError(f"{path} is truncated or not a safetensors file")
            handle.seek(8)
            header_bytes = handle.read(header_size)
    except FileNotFoundError:
        raise ModelError(f"{path} does not exist") from None
    except IsADirectoryError:
        raise ModelError(f"{path} is a directory, not a weights file") from None
    except OSError as error:
        raise ModelError(f"cannot read {path}: {error.strerror or error}") from None
    try:
        header = json.loads(header_bytes)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ModelError(f"{path} is not a safetensors file (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise ModelError(f"{path} is not a safetensors file (its header is not a JSON object)")
    end = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            end = max(end, int(entry["data_offsets"][1]))
        except (TypeError, KeyError, IndexError, ValueError):
            raise ModelError(f"{path} is not a safetensors file (bad entry {name!r})") from None
    if 8 + header_size + end != size:
        raise ModelError(f"{path} is truncated or corrupt: {size} bytes, "
                         f"its header promises {8 + header_size + end}")
    return header


def _read_tensors(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    from safetensors.numpy import load

    header = check_safetensors(path)
    try:
        tensors = load(path.read_bytes())
    except Exception as error:  # safetensors raises its own error type for any malformed file
        raise ModelError(f"{path} is corrupt: {' '.join(str(error).split())}") from None
    return tensors, dict(header.get("__metadata__") or {})


def _model_dir(path: str | os.PathLike) -> Path:
    """The model directory named by ``path`` (the directory, or one of its two files)."""
    path = Path(path)
    if not path.exists():
        raise ModelError(f"model {path} does not exist")
    if path.is_file():
        if path.name != CONFIG_FILE:
            check_safetensors(path)  # refuses pickles and .pt archives by their first bytes
        path = path.parent
    if not (path / CONFIG_FILE).is_file():
        raise ModelError(f"{path} is not a folkrnn model: it has no {CONFIG_FILE}")
    return path


def read_config(path: str | os.PathLike) -> dict:
    """``config.json`` of a model directory, checked to be ours and of our format version."""
    directory = _model_dir(path)
    config_path = directory / CONFIG_FILE
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ModelError(f"{config_path} is not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise ModelError(f"{config_path} is not valid JSON (line {error.lineno}: {error.msg})") from None
    except OSError as error:
        raise ModelError(f"cannot read {config_path}: {error.strerror or error}") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ModelError(f"{config_path} is not a folkrnn model config (no \"format\": \"{FORMAT}\")")
    version = config.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelError(f"{config_path} has format version {version!r}; "
                         f"this folkrnn reads version {FORMAT_VERSION}")
    for key in ("model", "vocabulary", "encoding"):
        if key not in config:
            raise ModelError(f"{config_path} has no {key!r}")
    return config


def _check_model(model_config: Mapping, vocabulary: Vocabulary, encoding: str, where: str) -> None:
    missing = [name for name in _MODEL_FIELDS if name not in model_config]
    if missing:
        raise ModelError(f"{where}: model config lacks {missing}")
    for name in _MODEL_FIELDS[:4]:
        value = model_config[name]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ModelError(f"{where}: model {name} must be a positive integer, not {value!r}")
    # the sizes, from the numbers alone: before expected_shapes lists a million layers' weights
    check_model_size(model_config, error=ModelError, where=where)
    if model_config["vocab_size"] != len(vocabulary):
        raise ModelError(f"{where}: the model has {model_config['vocab_size']} token ids but the "
                         f"vocabulary has {len(vocabulary)} tokens")
    if encoding not in ENCODINGS:
        raise ModelError(f"{where}: unknown encoding {encoding!r} (expected one of {', '.join(ENCODINGS)})")
    features, sizes = model_config.get("features"), model_config.get("feature_sizes")
    if features:
        try:
            module = scheme(features, encoding)
        except OptionError as error:
            raise ModelError(f"{where}: {error}") from None
        if list(sizes or ()) != list(module.feature_sizes(model_config["vocab_size"])):
            raise ModelError(f"{where}: feature sizes {sizes!r} do not fit {features!r} and this vocabulary")


def _check_weights(arrays: Mapping[str, np.ndarray], shapes: Mapping[str, tuple], where: str) -> None:
    missing = sorted(set(shapes) - set(arrays))
    unexpected = sorted(set(arrays) - set(shapes))
    if missing or unexpected:
        raise ModelError(f"{where}: weights do not match the model config "
                         f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    for name, shape in shapes.items():
        if tuple(arrays[name].shape) != tuple(shape):
            raise ModelError(f"{where}: weight {name} has shape {tuple(arrays[name].shape)}, "
                             f"the config says {tuple(shape)}")
        if not np.issubdtype(arrays[name].dtype, np.floating):
            raise ModelError(f"{where}: weight {name} is {arrays[name].dtype}, not floating point")


def load_model(path: str | os.PathLike) -> Checkpoint:
    """Load a model directory for inference, strictly, with NumPy only.

    Parameters
    ----------
    path
        The model directory, or its ``model.safetensors`` or ``config.json``.

    Raises
    ------
    ModelError
        Missing, foreign, of another format version, truncated, corrupt, a pickle, or weights
        that do not fit the config and vocabulary.
    """
    directory = _model_dir(path)
    config = read_config(directory)
    where = str(directory)
    try:
        vocabulary = Vocabulary.from_json(config["vocabulary"])
    except ModelError as error:  # name the file whose vocabulary is wrong
        raise ModelError(f"{directory / CONFIG_FILE}: {error}") from None
    encoding_block = config["encoding"]
    if not isinstance(encoding_block, dict) or "name" not in encoding_block:
        raise ModelError(f"{where}: config.json's encoding must be an object with a name")
    model_config = config["model"]
    if not isinstance(model_config, dict):
        raise ModelError(f"{where}: config.json's model must be an object")
    _check_model(model_config, vocabulary, encoding_block["name"], where)
    tensors, _ = _read_tensors(directory / MODEL_FILE)
    _check_weights(tensors, expected_shapes(model_config), where)
    weights = {name: value.astype(np.float32, copy=False) for name, value in tensors.items()}
    for name, value in weights.items():
        if not np.isfinite(value).all():
            raise ModelError(f"{where}: weight {name} holds NaN or infinite values")
    title_words = titles = title_rhythms = None
    if encoding_block["name"] == "abc":
        # lazily: the abc package (about 50 ms to import), which loading a MIDI model does not need
        from folkrnn.abc.titles import read_title_file, read_words, words_of_titles

        titles, title_rhythms = read_title_file(directory) or (None, None)
        title_words = read_words(directory) if titles is None else tuple(words_of_titles(titles))
    return Checkpoint(
        path=directory,
        model_config=_model_fields(model_config),
        vocabulary=vocabulary,
        encoding=encoding_block["name"],
        encoding_params=dict(encoding_block.get("params") or {}),
        training=dict(config.get("training") or {}),
        weights=weights,
        config=config,
        title_words=title_words,
        titles=titles,
        title_rhythms=title_rhythms,
    )


# --- the card ----------------------------------------------------------------------------------


def model_card(path: str | os.PathLike) -> dict:
    """What ``folkrnn info`` shows: config, encoding, vocabulary size, weights and training record.

    The model is loaded in full first, so a damaged model raises ModelError here too.
    """
    checkpoint = load_model(path)  # the whole check: a card is only shown for a usable model
    directory, config = checkpoint.path, checkpoint.config
    weights_path = directory / MODEL_FILE
    header = check_safetensors(weights_path)
    return {
        "path": str(directory),
        "format_version": config["format_version"],
        "model": config["model"],
        "weights": {**config.get("weights", {}), "bytes": weights_path.stat().st_size,
                    "tensors": len([k for k in header if k != "__metadata__"])},
        "encoding": config["encoding"],
        "vocab_size": len(config["vocabulary"]),
        "training": config.get("training", {}),
    }


def format_card(card: Mapping) -> str:
    """The card as readable text, one fact a line."""
    model, weights = card["model"], card.get("weights", {})
    encoding = card["encoding"]
    params = encoding.get("params") or {}
    settings = f" ({', '.join(f'{k}={v}' for k, v in params.items())})" if params else ""
    parameters = weights.get("parameters")
    lines = [
        ("model", card["path"]),
        ("network", f"{model['layers']} x {model['hidden_size']} LSTM, embedding "
                    f"{model['embedding_size']}, dropout {model['dropout']}"),
        ("parameters", f"{parameters:,} ({weights.get('dtype', '?')}, {weights.get('bytes', 0) / 1e6:.1f} MB)"
         if isinstance(parameters, int) else "?"),
        ("encoding", f"{encoding.get('name')}{settings}"),
        ("vocabulary", f"{card['vocab_size']} tokens"),
    ]
    training = dict(card.get("training") or {})
    shown = {"encoding", "corpus", "corpus_hash", "split", "epochs", "steps", "stopped", "wall_time_s",
             "hardware", "train_loss_nats", "valid_loss_nats", "test_loss_nats", "best_valid_loss_nats",
             "tokens_per_s", "padding", "command", "finished", "losses", "train_config", "data_hash",
             "started", "batches", "ngram_test_loss_nats", "ngram_order", "train_loss_tunes"}
    if training:
        corpus = training.get("corpus") or {}
        names = [source.get("name", "?") for source in corpus.get("sources", []) if isinstance(source, dict)]
        split = training.get("split") or {}
        counts = " / ".join(f"{split[name]['tunes']:,} {name}" for name in ("train", "valid", "test")
                            if isinstance(split.get(name), dict))
        hash_text = str(training.get("corpus_hash") or training.get("data_hash") or "?")[:16]
        lines.append(("corpus", f"{', '.join(names) or '?'} (hash {hash_text}; {counts or '? tunes'})"))
        hardware = training.get("hardware") or {}
        wall = training.get("wall_time_s")
        minutes = f"{wall / 60:.1f} min" if isinstance(wall, (int, float)) else "? min"
        stopped = training.get("stopped", "?")
        ending = "ran all epochs" if stopped == "epochs" else f"stopped by {stopped}"
        lines.append(("trained", f"{training.get('epochs', '?')} epochs, {training.get('steps', '?')} steps, "
                                 f"{ending}, {minutes}"))
        if hardware:
            where = hardware.get("gpu") or hardware.get("cpu") or hardware.get("device")
            lines.append(("hardware", f"{where}, {hardware.get('world_size', 1)} process(es), "
                                      f"{hardware.get('torch_threads', '?')} threads"))
        losses = [f"{name} {training[key]:.4f}" for name, key in (
            ("train", "train_loss_nats"), ("valid", "valid_loss_nats"), ("test", "test_loss_nats"))
            if isinstance(training.get(key), (int, float))]
        if losses:
            sample = training.get("train_loss_tunes")
            lines.append(("loss", ", ".join(losses) + " nats/token"
                          + (f" (train: {sample:,} of its tunes)" if isinstance(sample, int) else "")))
        baseline, test = training.get("ngram_test_loss_nats"), training.get("test_loss_nats")
        if isinstance(baseline, (int, float)) and isinstance(test, (int, float)) and baseline > 0:
            lines.append(("baseline", f"Kneser-Ney {training.get('ngram_order', '?')}-gram {baseline:.4f} "
                                      f"nats/token on test; the model is {1 - test / baseline:.1%} below it"))
        if isinstance(training.get("tokens_per_s"), (int, float)):
            padding = training.get("padding")
            lines.append(("speed", f"{training['tokens_per_s']:,.0f} tokens/s"
                          + (f", padding {padding:.1%}" if isinstance(padding, (int, float)) else "")))
        for key in ("command", "finished"):
            if training.get(key):
                lines.append((key, str(training[key])))
        for key, value in training.items():
            if key not in shown and not isinstance(value, (dict, list)):
                lines.append((key, str(value)))
    width = max(len(label) for label, _ in lines) + 2
    return "\n".join(f"{label:<{width}}{text}" for label, text in lines)


# --- the training state ------------------------------------------------------------------------


def save_training_state(path: str | os.PathLike, tensors: Mapping[str, np.ndarray], meta: Mapping) -> None:
    """Write the resume point: NumPy tensors plus JSON-able ``meta``, in one atomic file.

    Parameters
    ----------
    path
        The file, usually ``<out>/training_state.safetensors``.
    tensors
        Weights, optimiser tensors and RNG states, flattened to names.
    meta
        Everything else (must be JSON-serialisable).
    """
    text = json.dumps({"format": STATE_FORMAT, "format_version": FORMAT_VERSION, **meta},
                      ensure_ascii=False, allow_nan=True)
    _atomic_write(Path(path), _serialize(tensors, {"folkrnn": text}))


def load_training_state(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict]:
    """Read what :func:`save_training_state` wrote: ``(tensors, meta)``."""
    path = Path(path)
    if path.is_dir():
        path = path / STATE_FILE
    if not path.exists():
        raise ModelError(f"nothing to resume: {path} does not exist")
    tensors, metadata = _read_tensors(path)
    try:
        meta = json.loads(metadata["folkrnn"])
    except (KeyError, json.JSONDecodeError):
        raise ModelError(f"{path} is not a folkrnn training state") from None
    if not isinstance(meta, dict) or meta.get("format") != STATE_FORMAT:
        raise ModelError(f"{path} is not a folkrnn training state")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelError(f"{path} has format version {meta.get('format_version')!r}; "
                         f"this folkrnn reads version {FORMAT_VERSION}")
    return tensors, meta
