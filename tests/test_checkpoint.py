"""Model directories: the round trip, float16 storage, atomic writes, the card, and every way a
model can be bad (missing, foreign, truncated, corrupt, a pickle) ending in one ModelError line."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from folkrnn import checkpoint as ckpt
from folkrnn.checkpoint import (
    CONFIG_FILE,
    MODEL_FILE,
    format_card,
    load_model,
    load_training_state,
    model_card,
    read_config,
    save_model,
    save_training_state,
    update_training_record,
)
from folkrnn.cli import app
from folkrnn.errors import ModelError
from folkrnn.infer import NumpyLSTM
from folkrnn.model import LanguageModel, ModelConfig
from folkrnn.vocab import Vocabulary

VOCABULARY = Vocabulary.build([["<s>", "M:6/8", "K:Cmaj", "G", "A", "|", "2", "</s>"]])
RECORD = {"corpus_hash": "abc123", "epochs": 3, "losses": {"train": [2.0, 1.5], "valid": [1.9]},
          "command": "folkrnn train --epochs 3", "wall_time_s": 12.5, "test_loss_nats": 1.4}


def _model(seed: int = 0) -> LanguageModel:
    torch.manual_seed(seed)
    return LanguageModel(ModelConfig(vocab_size=len(VOCABULARY), embedding_size=6, hidden_size=10, layers=3))


def _weights(model: LanguageModel) -> dict[str, np.ndarray]:
    return {name: value.detach().numpy().copy() for name, value in model.state_dict().items()}


@pytest.fixture
def saved(tmp_path):
    model = _model()
    directory = save_model(tmp_path / "model", _weights(model), model.config.to_dict(), VOCABULARY, "abc",
                           {"transpose": True}, RECORD)
    return directory, model


def _cli(*args):
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_round_trip_keeps_everything(saved):
    directory, model = saved
    assert sorted(p.name for p in directory.iterdir()) == [CONFIG_FILE, MODEL_FILE]  # no temp files left
    loaded = load_model(directory)
    assert loaded.vocabulary == VOCABULARY
    assert loaded.model_config == model.config.to_dict()
    assert (loaded.encoding, loaded.encoding_params) == ("abc", {"transpose": True})
    assert loaded.training == RECORD
    for name, value in _weights(model).items():
        assert loaded.weights[name].dtype == np.float32
        assert np.array_equal(loaded.weights[name], value)
    # the same directory rebuilds the torch model strictly, and the NumPy engine agrees with it
    again = LanguageModel(ModelConfig.from_dict(loaded.model_config)).eval()
    again.load_state_dict({k: torch.from_numpy(v) for k, v in loaded.weights.items()}, strict=True)
    ids = torch.tensor([[1, 4, 5, 6, 3, 2]])
    with torch.no_grad():
        expected, _ = again(ids)
    got, _ = loaded.engine().run(ids.numpy())
    assert np.abs(got - expected.numpy()).max() < 1e-5
    # either file names the directory too
    assert load_model(directory / MODEL_FILE).vocabulary == VOCABULARY
    assert load_model(directory / CONFIG_FILE).vocabulary == VOCABULARY


def test_float16_storage_is_half_the_size_and_loads_as_float32(saved, tmp_path):
    directory, model = saved
    half = save_model(tmp_path / "half", _weights(model), model.config.to_dict(), VOCABULARY, "abc",
                      dtype="float16")
    ratio = (half / MODEL_FILE).stat().st_size / (directory / MODEL_FILE).stat().st_size
    assert 0.45 < ratio < 0.6
    loaded = load_model(half)
    for name, value in _weights(model).items():
        assert loaded.weights[name].dtype == np.float32
        assert np.array_equal(loaded.weights[name], value.astype(np.float16).astype(np.float32))
    assert read_config(half)["weights"]["dtype"] == "float16"


def test_an_interrupted_save_leaves_the_last_good_model(saved, monkeypatch):
    directory, _ = saved
    before = load_model(directory).weights
    other = _model(seed=1)

    def killed(source, destination):
        raise KeyboardInterrupt  # as if the process died just before the rename

    monkeypatch.setattr(ckpt.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        save_model(directory, _weights(other), other.config.to_dict(), VOCABULARY, "abc", {}, {"epochs": 99})
    monkeypatch.undo()
    after = load_model(directory)
    assert after.training == RECORD
    assert all(np.array_equal(after.weights[name], before[name]) for name in before)


def test_update_training_record_touches_only_the_record(saved):
    directory, _ = saved
    weights_before = (directory / MODEL_FILE).read_bytes()
    update_training_record(directory, {**RECORD, "ngram_test_loss_nats": 1.9})
    assert load_model(directory).training["ngram_test_loss_nats"] == 1.9
    assert (directory / MODEL_FILE).read_bytes() == weights_before


def test_card_as_text_and_json(saved):
    directory, model = saved
    card = model_card(directory)
    assert card["vocab_size"] == len(VOCABULARY)
    assert card["weights"]["parameters"] == model.config.parameter_count()
    assert card["training"]["corpus_hash"] == "abc123"
    text = format_card(card)
    assert "3 x 10 LSTM" in text and f"{len(VOCABULARY)} tokens" in text and "test 1.4000" in text
    code, output = _cli("info", str(directory), "--json")
    assert code == 0 and json.loads(output)["model"] == model.config.to_dict()
    code, output = _cli("info", str(directory))
    assert code == 0 and "encoding" in output and "abc" in output


# --- bad models ------------------------------------------------------------------------------


def _break(directory, how):
    config_path, weights_path = directory / CONFIG_FILE, directory / MODEL_FILE
    config = json.loads(config_path.read_text())
    if how == "missing directory":
        return directory / "nope"
    if how == "no config":
        config_path.unlink()
    elif how == "foreign config":
        config_path.write_text(json.dumps({"model_type": "gpt2", "vocab_size": 50257}))
    elif how == "future format":
        config_path.write_text(json.dumps({**config, "format_version": 2}))
    elif how == "config not json":
        config_path.write_text("{\"format\": \"folkrnn-model\", ")
    elif how == "vocabulary size":
        config_path.write_text(json.dumps({**config, "vocabulary": config["vocabulary"][:-1]}))
    elif how == "other shape":
        config_path.write_text(json.dumps({**config, "model": {**config["model"], "hidden_size": 12}}))
    elif how == "unknown encoding":
        config_path.write_text(json.dumps({**config, "encoding": {"name": "mp3", "params": {}}}))
    elif how == "truncated weights":
        data = weights_path.read_bytes()
        weights_path.write_bytes(data[: len(data) // 2])
    elif how == "corrupt header":
        data = bytearray(weights_path.read_bytes())
        data[8:20] = b"\x00garbage!!\xff\xfe"
        weights_path.write_bytes(bytes(data))
    elif how == "missing weights":
        weights_path.unlink()
    elif how == "empty weights":
        weights_path.write_bytes(b"")
    elif how == "missing tensor":
        from safetensors.numpy import load_file, save_file

        tensors = load_file(weights_path)
        tensors.pop("head.bias")
        save_file(tensors, weights_path)
    elif how == "nan weights":
        from safetensors.numpy import load_file, save_file

        tensors = load_file(weights_path)
        tensors["head.bias"][0] = np.nan
        save_file(tensors, weights_path)
    return directory


BREAKAGES = ["missing directory", "no config", "foreign config", "future format", "config not json",
             "vocabulary size", "other shape", "unknown encoding", "truncated weights", "corrupt header",
             "missing weights", "empty weights", "missing tensor", "nan weights"]


@pytest.mark.parametrize("how", BREAKAGES)
def test_every_broken_model_is_one_model_error(saved, how):
    directory, _ = saved
    target = _break(directory, how)
    with pytest.raises(ModelError) as caught:
        load_model(target)
    assert "\n" not in str(caught.value)
    code, output = _cli("info", str(target))
    assert code == 1 and output.startswith("error: ") and output.count("\n") == 1


def test_future_format_names_both_versions(saved):
    directory, _ = saved
    _break(directory, "future format")
    with pytest.raises(ModelError, match="format version 2; this folkrnn reads version 1"):
        load_model(directory)


class _Trap:
    """Unpickling this creates a file: proof that something ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("as_name", ["evil.pkl", MODEL_FILE, "model.pt"])
def test_a_pickle_is_refused_without_being_unpickled(saved, tmp_path, as_name):
    directory, _ = saved
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Trap(str(marker)))
    if as_name == MODEL_FILE:
        target = directory / MODEL_FILE  # a pickle posing as the weights of a real model directory
        target.write_bytes(payload)
        where = directory
    else:
        target = tmp_path / as_name
        target.write_bytes(payload)
        where = target
    with pytest.raises(ModelError, match="pickle"):
        load_model(where)
    code, output = _cli("info", str(where))
    assert code == 1 and "pickle" in output and output.count("\n") == 1
    assert not marker.exists()
    # the trap is real: unpickling it would have created the file
    pickle.loads(payload).close()
    assert marker.exists()


def test_a_torch_save_file_is_refused(saved, tmp_path):
    directory, model = saved
    path = tmp_path / "model.pt"
    torch.save(model.state_dict(), path)
    with pytest.raises(ModelError, match="torch zip"):
        load_model(path)


# --- the training state ----------------------------------------------------------------------


def test_training_state_round_trip_and_refusals(tmp_path):
    tensors = {"model.w": np.arange(6, dtype=np.float32).reshape(2, 3), "optimizer.0.step": np.array(3.0, np.float32),
               "rng.torch": np.arange(10, dtype=np.uint8)}
    meta = {"position": {"epoch": 1, "batch": 4}, "history": {"batch_losses": [2.5, float("nan")]}}
    path = tmp_path / "state.safetensors"
    save_training_state(path, tensors, meta)
    loaded, loaded_meta = load_training_state(path)
    assert loaded.keys() == tensors.keys()
    assert all(np.array_equal(loaded[k], v) and loaded[k].dtype == v.dtype for k, v in tensors.items())
    assert loaded_meta["position"] == {"epoch": 1, "batch": 4}
    with pytest.raises(ModelError, match="nothing to resume"):
        load_training_state(tmp_path / "absent.safetensors")
    from safetensors.numpy import save_file

    save_file({"x": np.zeros(2, np.float32)}, tmp_path / "plain.safetensors")
    with pytest.raises(ModelError, match="not a folkrnn training state"):
        load_training_state(tmp_path / "plain.safetensors")
    data = path.read_bytes()
    path.write_bytes(data[:-7])
    with pytest.raises(ModelError, match="truncated"):
        load_training_state(path)


def test_save_refuses_weights_that_do_not_fit(tmp_path):
    model = _model()
    weights = _weights(model)
    with pytest.raises(ModelError, match="vocabulary has"):
        save_model(tmp_path / "a", weights, {**model.config.to_dict(), "vocab_size": 99}, VOCABULARY, "abc")
    with pytest.raises(ModelError, match="missing"):
        save_model(tmp_path / "b", {k: v for k, v in weights.items() if k != "head.bias"},
                   model.config.to_dict(), VOCABULARY, "abc")
    with pytest.raises(ModelError, match="encoding"):
        save_model(tmp_path / "c", weights, model.config.to_dict(), VOCABULARY, "wav")
    assert not os.path.exists(tmp_path / "a" / MODEL_FILE)
    NumpyLSTM(weights)  # the weights themselves were fine
