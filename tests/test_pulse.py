"""The controls that open a performance, the pulse features the MIDI model reads, and the renderings
that start on a downbeat (folkrnn.events, folkrnn.pulse, folkrnn.midi, folkrnn.schemes)."""

from __future__ import annotations

import numpy as np
import pytest

from folkrnn import pulse
from folkrnn.abc import tokenize_and_parse
from folkrnn.errors import ModelError, OptionError
from folkrnn.events import CONTROLS, EventConfig, density_of, events_to_notes, notes_to_events
from folkrnn.midi import tune_performances, tune_to_performance
from folkrnn.schemes import default_scheme, scheme
from folkrnn.train import transpose_events
from folkrnn.vocab import Vocabulary

JIG = """X:1
T:Pickup Jig
R:jig
M:6/8
L:1/8
K:D
A|dfa afd|gbg faf|edc BAG|FAF D2:|
"""

REEL = """X:2
T:Downbeat Reel
R:reel
M:4/4
L:1/8
K:G
GABc dedB|dedB dedB|c2ec B2dB|cAAG A2BA|
"""


def _tune(text):
    return tokenize_and_parse(text)[1]


def test_controls_extend_the_vocabulary_and_round_trip():
    plain, controlled = EventConfig(), EventConfig(controls=True)
    assert plain.vocab_size == 388 and plain.names() == controlled.names()[:388]
    assert controlled.vocab_size == 388 + sum(len(values) for _, values in CONTROLS)
    for event_id in range(controlled.vocab_size):
        assert controlled.name_to_id(controlled.id_to_name(event_id)) == event_id
    ids = controlled.controls_of(tempo=120, meter="6/8", key=-2, density=7)
    assert [controlled.id_to_name(i) for i in ids] == ["TEMPO_120", "METER_6/8", "KEY_-2", "DENSITY_7"]
    assert controlled.id_to_name(controlled.control_id("TEMPO", None)) == "TEMPO_UNKNOWN"
    with pytest.raises(OptionError, match="TEMPO 121"):
        controlled.control_id("TEMPO", 121)  # off the grid
    with pytest.raises(OptionError, match="no controls"):
        plain.control_id("KEY", 0)
    # a config saved before controls existed reads as one without them
    assert EventConfig.from_dict(plain.to_dict() | {"controls": False}) == plain
    assert not EventConfig.from_dict({k: v for k, v in plain.to_dict().items() if k != "controls"}).controls


def test_decoding_skips_the_controls():
    config = EventConfig(controls=True)
    notes = events_to_notes(notes_to_events(tune_to_performance(_tune(REEL)), config), config)
    opened = config.controls_of(tempo=200, meter="4/4", key=1, density=6) + notes_to_events(notes, config)
    assert events_to_notes(opened, config) == notes
    assert density_of(30, 5.0) == 6 and density_of(100, 1.0) == 12 and density_of(3, 0.0) == 0


def test_a_pickup_waits_for_its_place_in_the_bar():
    tune = _tune(JIG)
    plain = tune_to_performance(tune, tempo=120, straight=True)
    aligned = tune_to_performance(tune, tempo=120, straight=True, downbeat=True)
    # at 120 dotted quarters a minute a 6/8 bar lasts 1 s; the pickup eighth is its last sixth
    assert plain[0].start == pytest.approx(0.0)
    assert aligned[0].start == pytest.approx(5 / 6)
    assert aligned[1].start == pytest.approx(1.0)  # the first downbeat
    assert [n.pitch for n in aligned] == [n.pitch for n in plain]
    # a tune with no pickup starts on its downbeat either way
    assert tune_to_performance(_tune(REEL), tempo=200, straight=True, downbeat=True)[0].start == pytest.approx(0.0)


def test_renderings_open_with_controls_at_a_grid_tempo():
    config = EventConfig(controls=True)
    names = config.names()
    for events in tune_performances([_tune(JIG)], config, renderings=4):
        opening = [names[i] for i in events[:4]]
        assert opening[0].startswith("TEMPO_") and int(opening[0][6:]) % 4 == 0
        assert opening[1:3] == ["METER_6/8", "KEY_2"]
        assert opening[3].startswith("DENSITY_")
    # without controls, nothing changes
    assert all(events[0] < config.control_offset for events in tune_performances([_tune(JIG)], EventConfig()))


def _features(events, config):
    vocabulary = Vocabulary.from_event_names(config.names())
    ids = [vocabulary.bos_id] + [vocabulary.id(config.id_to_name(e)) for e in events]
    shared = pulse.classes(vocabulary.tokens, config.to_dict())
    return vocabulary, ids, pulse.with_features(ids, shared)


def test_the_pulse_finds_every_downbeat_of_a_straight_rendering():
    config = EventConfig(controls=True)
    tune = _tune(REEL)
    notes = tune_to_performance(tune, tempo=200, straight=True, downbeat=True)
    events = config.controls_of(tempo=200, meter="4/4", key=1, density=8) + notes_to_events(notes, config)
    vocabulary, ids, features = _features(events, config)
    assert features.shape == (len(ids), 1 + len(pulse.FEATURE_NAMES))
    assert tuple(features[0, 1:]) == (0,) * len(pulse.FEATURE_NAMES)  # <s>: nothing known
    onsets = [row for row in features if vocabulary.tokens[row[0]].startswith("NOTE_ON")]
    assert len(onsets) == 29
    # two bars of eighths at 200 quarters a minute: every other onset on a beat (phase 1), beats 1..4 in turn
    assert [row[1] for row in onsets[:16]] == [1, 7] * 8
    assert [row[2] for row in onsets[:16]] == [1, 1, 2, 2, 3, 3, 4, 4] * 2
    # then c2ec: beats 1, 2 (off), 2 (half) ... and the last bar's A2 on beat 3
    assert [tuple(row[1:3]) for row in onsets[16:19]] == [(1, 1), (1, 2), (7, 2)]
    # the controls ride along with every event
    assert {tuple(row[3:]) for row in features[4:]} == {tuple(features[4, 3:])}
    assert all(features[4, 3:] > 0)


def test_an_unknown_tempo_leaves_the_pulse_unknown():
    config = EventConfig(controls=True)
    notes = tune_to_performance(_tune(REEL), tempo=200, straight=True)
    events = config.controls_of(density=8) + notes_to_events(notes, config)
    _, _, features = _features(events, config)
    assert not features[:, 1:3].any()


def test_pulse_never_drifts_over_a_long_performance():
    config = EventConfig(controls=True)
    # 500 beats at 132 a minute (a beat of 45.45 steps): phase and beat counted exactly
    vocabulary = Vocabulary.from_event_names(config.names())
    shared = pulse.classes(vocabulary.tokens, config.to_dict())
    tracker = pulse.Pulse(shared)
    for name in ("TEMPO_132", "METER_2/4", "KEY_0", "DENSITY_4"):
        tracker.push(vocabulary.id(name))
    shift = vocabulary.id("TIME_SHIFT_1")
    for _ in range(round(500 * 6000 / 132)):  # 22727 steps: 499.99 beats
        features = tracker.push(shift)
    assert features[:2] == (12, 2)  # the last twelfth of beat 2 of the bar
    assert tracker.push(shift)[:2] == (1, 1)
    clone = tracker.clone()
    assert clone.push(shift) == tracker.push(shift)


def test_transposition_moves_the_key_control_with_the_notes():
    config = EventConfig(controls=True)
    vocabulary = Vocabulary.from_event_names(config.names())
    names = ["TEMPO_120", "METER_6/8", "KEY_2", "DENSITY_6", "NOTE_ON_62", "TIME_SHIFT_10", "NOTE_OFF_62"]
    assert transpose_events(names, 2, vocabulary)[2:5] == ["KEY_4", "DENSITY_6", "NOTE_ON_64"]
    assert transpose_events(names, -4, vocabulary)[2] == "KEY_-2"  # D to B flat
    assert transpose_events(names, -3, vocabulary)[2] == "KEY_5"  # D to B
    assert transpose_events(names, 5, vocabulary)[2] == "KEY_1"  # D to G
    assert transpose_events(names, 4, vocabulary)[2] == "KEY_-6"  # D to F sharp: written G flat
    assert all(n in vocabulary for k in range(-6, 7) for n in transpose_events(names, k, vocabulary))


def test_schemes_belong_to_their_encoding():
    assert default_scheme("abc") == "lookback-2" and default_scheme("midi") == "pulse-1"
    assert scheme("lookback-1", "abc").FEATURE_NAMES + ("phrase",) == scheme("lookback-2", "abc").FEATURE_NAMES
    assert scheme("pulse-1", "midi") is pulse
    with pytest.raises(OptionError, match="for MIDI models"):
        scheme("pulse-1", "abc")
    with pytest.raises(OptionError, match="unknown features"):
        scheme("lookback-9", "abc")
    assert pulse.feature_sizes() == (13, 13) + tuple(1 + len(v) for _, v in CONTROLS)


def test_a_tiny_pulse_model_trains_and_loads(tmp_path):
    """Train a tiny MIDI model with pulse features on two rendered tunes; load and score it."""
    pytest.importorskip("torch")
    from types import SimpleNamespace

    from folkrnn.checkpoint import load_model
    from folkrnn.evaluate import model_loss
    from folkrnn.train import TrainConfig, train

    config = EventConfig(controls=True)
    names = config.names()
    performances = [["<s>", *(names[i] for i in events), "</s>"]
                    for events in tune_performances([_tune(JIG), _tune(REEL)], config, renderings=2)]
    corpus = SimpleNamespace(train=performances, valid=performances[:1], test=performances[1:2], encoding="midi",
                             info={"content_hash": "two-tunes", "settings": config.to_dict()})
    train(corpus, TrainConfig(epochs=1, batch_size=4, bptt=64, out=str(tmp_path), progress=False),
          {"hidden_size": 16, "layers": 1, "embedding_size": 8, "features": "pulse-1"})
    model = load_model(tmp_path)
    assert model.model_config["features"] == "pulse-1"
    assert model.engine().features == len(pulse.FEATURE_NAMES)
    total, tokens, scored = model_loss(model.engine(), model.vocabulary, performances[:2], read=model.feature_reader())
    assert scored == 2 and np.isfinite(total) and total / tokens < np.log(config.vocab_size + 3) + 1
    # the performer reads the pulse with every event, as training did: alone or in a batch, the same piece
    from folkrnn.perform import Controls, PerformConfig, load_performer, sample_performances

    performer = load_performer(tmp_path)
    assert performer.features == "pulse-1" and performer.tracker() is not None
    options = PerformConfig(seconds=4)
    pieces = sample_performances(performer, [5, 6, 7], options=options, controls=Controls(rhythm="reel"))
    alone = sample_performances(performer, [6], options=options, controls=Controls(rhythm="reel"))[0]
    assert pieces[1].events == alone.events and all(piece.ok for piece in pieces)
    assert {piece.controls["meter"] for piece in pieces} <= {"2/2", "4/4", "2/4"}
        # a corpus without controls cannot feed the pulse
    bare = SimpleNamespace(**{**vars(corpus), "info": {"content_hash": "x", "settings": EventConfig().to_dict()}})
    with pytest.raises(OptionError, match="controls"):
        train(bare, TrainConfig(epochs=1, out=str(tmp_path / "bare"), progress=False), {"features": "pulse-1"})
    # a model whose config names a scheme of the other encoding is refused on loading
    import json

    card = json.loads((tmp_path / "config.json").read_text())
    card["model"]["features"] = "lookback-1"
    (tmp_path / "config.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="for ABC models"):
        load_model(tmp_path)
