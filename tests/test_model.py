"""The vocabulary, the torch language model, and the NumPy engine that must match it."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from folkrnn.errors import FolkError, ModelError, OptionError
from folkrnn.events import EventConfig
from folkrnn.infer import NumpyLSTM, select_state
from folkrnn.model import LanguageModel, ModelConfig
from folkrnn.vocab import BOS, EOS, PAD, UnknownTokenError, Vocabulary

ABC_TUNES = [
    ["<s>", "T", "h", "e", "R:jig", "M:6/8", "K:Cmaj", "|:", "G", "A", "G", "|", "c", "2", ":|", "</s>"],
    ["<s>", "R:reel", "M:4/4", "K:Cdor", "^F", "/2", "|", "z", "c'", "|", "</s>"],
]


# --- vocabulary ------------------------------------------------------------------------------


def test_vocabulary_is_specials_then_sorted_whatever_the_order_of_tunes():
    forward = Vocabulary.build(ABC_TUNES)
    backward = Vocabulary.build([list(reversed(t)) for t in reversed(ABC_TUNES)])
    assert forward == backward
    assert forward.tokens[:3] == (PAD, BOS, EOS)
    rest = forward.tokens[3:]
    assert list(rest) == sorted(rest)
    assert set(rest) == {t for tune in ABC_TUNES for t in tune} - {BOS, EOS}
    assert (forward.pad_id, forward.bos_id, forward.eos_id, forward.unk_id) == (0, 1, 2, None)


def test_vocabulary_round_trips_through_json_and_ids():
    vocabulary = Vocabulary.build(ABC_TUNES, unk=True)
    assert vocabulary.unk_id == 3
    again = Vocabulary.from_json(vocabulary.to_json())
    assert again == vocabulary and again.tokens == vocabulary.tokens
    ids = vocabulary.encode(ABC_TUNES[0])
    assert vocabulary.decode(ids) == ABC_TUNES[0]
    assert all(vocabulary.id(token) == index for index, token in enumerate(vocabulary.tokens))
    assert vocabulary.id("never seen") == vocabulary.unk_id  # with <unk>, unknown maps to it


def test_unknown_token_names_the_token_and_its_nearest_neighbours():
    vocabulary = Vocabulary.build(ABC_TUNES)
    with pytest.raises(UnknownTokenError) as caught:
        vocabulary.encode(["<s>", "M:6/4"])
    message = str(caught.value)
    assert "'M:6/4'" in message and "M:6/8" in message and "\n" not in message
    assert caught.value.nearest[0] == "M:6/8"
    assert isinstance(caught.value, FolkError)


@pytest.mark.parametrize("tokens, needle", [
    (["<pad>", "<s>", "</s>", "a", "a"], "twice"),
    (["<s>", "</s>", "a"], "special"),
    (["<pad>", "<s>", "</s>", ""], "non-empty"),
])
def test_bad_vocabularies_are_refused(tokens, needle):
    with pytest.raises(ModelError, match=needle):
        Vocabulary(tokens)
    with pytest.raises(ModelError):
        Vocabulary.from_json("{not json")


def test_midi_vocabulary_keeps_event_ids():
    config = EventConfig()
    names = config.names()
    vocabulary = Vocabulary.from_event_names(names)
    assert len(vocabulary) == config.vocab_size + 3 == 391
    assert vocabulary.tokens[:len(names)] == tuple(names)
    for name in ("NOTE_ON_60", "NOTE_OFF_0", "TIME_SHIFT_10", "VELOCITY_5"):
        assert vocabulary.id(name) == config.name_to_id(name)
    assert vocabulary.tokens[-3:] == (PAD, BOS, EOS)
    with pytest.raises(ModelError):
        Vocabulary.from_event_names(["NOTE_ON_1", "<s>"])


# --- model config and the torch model -----------------------------------------------------------


def test_model_config_checks_and_round_trips():
    config = ModelConfig(vocab_size=137)
    assert (config.hidden_size, config.layers, config.dropout) == (512, 3, 0.5)
    assert ModelConfig.from_dict(config.to_dict()) == config
    with pytest.raises(OptionError):
        ModelConfig(vocab_size=0)
    with pytest.raises(OptionError):
        ModelConfig(vocab_size=10, dropout=1.0)
    with pytest.raises(ModelError, match="unknown"):
        ModelConfig.from_dict({"vocab_size": 10, "heads": 4})
    # the formula matches what torch allocates, embedding included or not
    model = LanguageModel(config)
    assert config.parameter_count() == sum(p.numel() for p in model.parameters())
    assert config.parameter_count(embedding=False) == config.parameter_count() - 137 * 256


def test_forward_returns_logits_and_an_explicit_state_that_carries():
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=20, embedding_size=8, hidden_size=16, layers=3, dropout=0.5)
    model = LanguageModel(config).eval()
    ids = torch.randint(0, 20, (4, 30))
    h, c = model.init_state(4)
    assert h.shape == c.shape == (3, 4, 16) and not h.any()
    with torch.no_grad():
        logits, (h, c) = model(ids)
        assert logits.shape == (4, 30, 20) and h.shape == (3, 4, 16)
        first, state = model(ids[:, :13])
        second, state = model(ids[:, 13:], state)
    torch.testing.assert_close(torch.cat([first, second], 1), logits)
    torch.testing.assert_close(state[0], h)


def test_dropout_uses_the_masks_it_is_given():
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=20, embedding_size=8, hidden_size=16, layers=2, dropout=0.5)
    model = LanguageModel(config).train()
    ids = torch.randint(0, 20, (3, 7))
    masks = [torch.rand(7, 3, 16) < 0.5 for _ in range(2)]  # time-major (T, B, H)
    one, _ = model(ids, None, masks)
    two, _ = model(ids, None, [m.clone() for m in masks])
    other, _ = model(ids, None, [~m for m in masks])
    torch.testing.assert_close(one, two)
    assert not torch.allclose(one, other)
    with pytest.raises(ValueError):
        model(ids, None, masks[:1])
    # inverted dropout: with one layer and an all-keep mask, the head sees 2 h instead of h
    single = LanguageModel(ModelConfig(vocab_size=20, embedding_size=8, hidden_size=16, layers=1, dropout=0.5))
    kept, _ = single.train()(ids, None, [torch.ones(7, 3, 16, dtype=torch.bool)])
    plain, _ = single.eval()(ids)
    bias = single.head.bias.detach()
    torch.testing.assert_close((kept - bias).detach(), 2 * (plain - bias).detach())


# --- the NumPy engine --------------------------------------------------------------------------


def _numpy_weights(model: LanguageModel) -> dict[str, np.ndarray]:
    return {name: value.detach().numpy().copy() for name, value in model.state_dict().items()}


def _scaled_model(scale: float) -> LanguageModel:
    torch.manual_seed(1)
    model = LanguageModel(ModelConfig(vocab_size=137)).eval()  # the real 3 x 512 shape
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(scale)  # larger weights saturate the gates and grow the cells
    return model


@pytest.mark.parametrize("scale", [1.0, 2.0])
def test_numpy_engine_matches_torch_over_200_steps(scale):
    """The issue's bar: max abs logit difference <= 1e-4 over 200 steps of a random sequence."""
    model = _scaled_model(scale)
    engine = NumpyLSTM(_numpy_weights(model))
    ids = torch.randint(0, 137, (200,), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected, (h, c) = model(ids[None])
    expected = expected[0].numpy()
    state = engine.init_state(1)
    stepped = np.stack([engine.step(int(token), state)[0][0] for token in ids])
    assert np.abs(stepped - expected).max() <= 1e-4
    assert np.abs(state[0] - h.numpy()).max() <= 1e-4 and np.abs(state[1] - c.numpy()).max() <= 1e-4
    ran, _ = engine.run(ids.numpy())
    assert ran.shape == (200, 137) and np.abs(ran - expected).max() <= 1e-4
    assert stepped.dtype == np.float32


def test_numpy_engine_is_as_close_to_float64_as_torch_is_when_cells_grow_large():
    """Weights x4 grow the cells to ~85 over 200 steps: float32 itself is only good to ~1e-3 there
    (torch's own float32 result is that far from float64), and the engine must be no worse."""
    model = _scaled_model(4.0)
    engine = NumpyLSTM(_numpy_weights(model))
    ids = torch.randint(0, 137, (1, 200), generator=torch.Generator().manual_seed(2))
    exact = LanguageModel(model.config).double().eval()
    exact.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
    with torch.no_grad():
        single, _ = model(ids)
        reference, (_, cells) = exact(ids)
    assert cells.abs().max() > 50
    ours, _ = engine.run(ids.numpy())
    torch_error = np.abs(single.numpy() - reference.numpy()).max()
    our_error = np.abs(ours - reference.numpy()).max()
    assert our_error <= 2 * torch_error + 1e-5


def test_numpy_engine_batches_and_continues_state():
    torch.manual_seed(3)
    model = LanguageModel(ModelConfig(vocab_size=30, embedding_size=12, hidden_size=24, layers=3)).eval()
    engine = NumpyLSTM(_numpy_weights(model))
    ids = torch.randint(0, 30, (5, 40))
    with torch.no_grad():
        expected, _ = model(ids)
    logits, state = engine.run(ids[:, :25].numpy())
    rest, state = engine.run(ids[:, 25:].numpy(), state)
    assert np.abs(np.concatenate([logits, rest], 1) - expected.numpy()).max() <= 1e-5
    # one step for a batch = row by row
    batch_state = engine.init_state(5)
    single_states = [engine.init_state(1) for _ in range(5)]
    for t in range(10):
        batch_logits, _ = engine.step(ids[:, t].numpy(), batch_state)
        for row in range(5):
            row_logits, _ = engine.step(int(ids[row, t]), single_states[row])
            assert np.abs(row_logits[0] - batch_logits[row]).max() <= 1e-5
    picked = select_state(batch_state, [4, 0])
    assert np.array_equal(picked[0][:, 0], batch_state[0][:, 4])


def test_numpy_engine_refuses_weights_and_ids_that_do_not_fit():
    model = LanguageModel(ModelConfig(vocab_size=10, embedding_size=4, hidden_size=6, layers=2))
    weights = _numpy_weights(model)
    with pytest.raises(ModelError, match="missing"):
        NumpyLSTM({k: v for k, v in weights.items() if k != "head.bias"})
    bad = dict(weights)
    bad["lstm.1.weight_hh_l0"] = np.zeros((24, 5), np.float32)
    with pytest.raises(ModelError, match="shape"):
        NumpyLSTM(bad)
    engine = NumpyLSTM(weights)
    with pytest.raises(ModelError, match="out of range"):
        engine.step(10)
    with pytest.raises(ModelError, match="state"):
        engine.step([1, 2], engine.init_state(3))


def test_inference_modules_never_import_torch(tmp_path):
    """The compose path: vocab, checkpoint loading and the NumPy engine, in a fresh interpreter."""
    from folkrnn.checkpoint import save_model

    model = LanguageModel(ModelConfig(vocab_size=len(Vocabulary.build(ABC_TUNES)), embedding_size=4,
                                      hidden_size=6, layers=2))
    save_model(tmp_path / "m", _numpy_weights(model), model.config.to_dict(), Vocabulary.build(ABC_TUNES),
               "abc", {}, {})
    script = (
        "import sys, json\n"
        "import folkrnn.infer, folkrnn.vocab, folkrnn.checkpoint\n"
        f"checkpoint = folkrnn.checkpoint.load_model({str(tmp_path / 'm')!r})\n"
        "logits, state = checkpoint.engine().step(checkpoint.vocabulary.bos_id)\n"
        "print(json.dumps({'torch': 'torch' in sys.modules, 'shape': list(logits.shape)}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"torch": False, "shape": [1, len(Vocabulary.build(ABC_TUNES))]}
