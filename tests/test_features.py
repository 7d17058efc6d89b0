"""Position features (folkrnn.abc.features): values worked out by hand, and the same features in
training and in the sampler."""

from __future__ import annotations

import numpy as np
import pytest

from folkrnn.abc import tokenize
from folkrnn.abc.features import FEATURE_NAMES, SCHEME, Positions, feature_sizes, tune_features

REEL = """X:1
T:Test
R:reel
M:4/4
L:1/8
K:Cmaj
|:GA|cdec dcA2|cdec d2GA|cdec dcA2|Bcd2 c2:|
|:ef|gfge d2ef|gfge d2:|
"""


def _features(text: str):
    tokens = tokenize(text)
    vocabulary = sorted(set(tokens))
    ids = [vocabulary.index(t) for t in tokens]
    return tokens, vocabulary, tune_features(ids, vocabulary)


def _column(name: str) -> int:
    return FEATURE_NAMES.index(name)


def test_header_and_title_have_no_position():
    tokens, _, features = _features(REEL)
    body = tokens.index("K:Cmaj")
    assert not features[:body + 1].any()  # title, R:, M:, K: (K: starts the body: read after it)
    assert not features[-1].any()  # </s>


def test_beat_bar_and_part_by_hand():
    tokens, _, features = _features(REEL)
    beat, bar, part = (features[:, _column(n)] for n in ("beat", "bar", "part"))
    body = tokens.index("K:Cmaj") + 1
    # |: G A | : after |: time 0 (beat 1); after G one eighth = 2 sixteenths (beat 3); pickup not counted
    assert tokens[body:body + 4] == ["|:", "G", "A", "|"]
    assert list(beat[body:body + 4]) == [1, 3, 5, 1]
    assert list(bar[body:body + 4]) == [1, 1, 1, 1]  # the pickup is not a bar
    # "A 2" at the end of the first full bar: A ends at 14 sixteenths... then 2 makes it 16
    first_bar = tokens.index("|", body + 3)
    after = tokens.index("|", first_bar + 1)
    assert tokens[after - 2:after] == ["A", "2"]
    assert beat[after - 2] == 15 and beat[after - 1] == 17
    assert bar[after] == 2  # the first full bar done (1 + 1)
    # part B starts after :| |: with bar 1 again and part 2
    second = tokens.index(":|")
    assert part[second] == 2 and bar[second] == 1 and part[second - 1] == 1


def test_lookback_offers_the_bar_before_and_flags_repeats():
    tokens, vocabulary, features = _features(REEL)
    back1, back2, repeated = (features[:, _column(n)] for n in ("back1", "back2", "repeated"))
    # bar 2 (c d e c d 2 G A) begins like bar 1 (c d e c d c A 2): at its first tokens the
    # model is offered the next token of bar 1, and the ones it copies are flagged
    bars = [i for i, t in enumerate(tokens) if t == "|"]
    start = bars[1] + 1  # first token of the second full bar
    for k in range(4):  # c d e c
        assert vocabulary[back1[start + k - 1] - 1] == tokens[start + k]
        assert repeated[start + k] & 1
    assert not repeated[start + 5] & 1  # "2" where bar 1 had "c"
    # the third full bar equals the first: back2 offers it exactly
    third = bars[2] + 1
    for k in range(8):
        assert vocabulary[back2[third + k - 1] - 1] == tokens[third + k]


def test_backpart_offers_the_same_bar_of_the_previous_part():
    tokens, vocabulary, features = _features(REEL)
    backpart = features[:, _column("backpart")]
    b_first_bar = tokens.index("|", tokens.index("e", tokens.index(":|"))) + 1  # after the B pickup
    assert tokens[b_first_bar] == "g"
    # at the B part's first full bar, the A part's first full bar offers its own first note "c"
    assert vocabulary[backpart[b_first_bar - 1] - 1] == "c"


JIG = """X:1
T:Test
R:jig
M:6/8
L:1/8
K:Cmaj
|:E|GAG cBA|GED C2E|GAG cBA|B3 G2E|GAG cBA|GED C2D|EFG AGF|G3 G2:|
"""


def test_phrase_offers_the_bar_four_back_in_the_part():
    """lookback-2 (folkrnn.abc.phrases): its eighth column offers what was written at this point of
    the bar four bars back in this part, none in the part's first four bars."""
    from folkrnn.abc import phrases

    tokens = tokenize(JIG)
    vocabulary = sorted(set(tokens))
    ids = [vocabulary.index(t) for t in tokens]
    eight = phrases.with_features(ids, vocabulary)
    seven = tune_features(ids, vocabulary)
    assert eight.shape == (len(ids), 1 + 8) and seven.shape == (len(ids), 7)
    assert (eight[:, 1:8] == seven).all()  # lookback-1's seven columns, unchanged
    phrase = eight[:, 1 + phrases.FEATURE_NAMES.index("phrase")]
    bars = [i for i, t in enumerate(tokens) if t == "|"]  # bars[0] ends the pickup "E"
    # bars 1-4 of the part: no bar four back (the pickup is not a bar)
    assert not phrase[:bars[4]].any()
    # bar 5 (G A G c B A) is bar 1 again: at every token the phrase column offers the next one,
    # from the bar line before it on
    fifth, first = bars[4] + 1, bars[0] + 1
    for k in range(6):
        assert vocabulary[phrase[fifth + k - 1] - 1] == tokens[first + k] == tokens[fifth + k]
    # bar 7 (E F G A G F) is offered bar 3's "G A G ..."; bar 8 is offered bar 4's "B 3 ..."
    seventh, third = bars[6] + 1, bars[2] + 1
    assert vocabulary[phrase[seventh - 1] - 1] == tokens[third] == "G"
    assert list(phrases.feature_sizes(len(vocabulary))) == list(feature_sizes(len(vocabulary))) + [len(vocabulary) + 1]
    assert (phrase <= len(vocabulary)).all()


@pytest.mark.parametrize("body, times", [
    ("c>d e", [1, 1.5, 2, 3]),  # time in eighths after each token: > makes c 3/2 and d 1/2
    ("c<d e", [1, 0.5, 2, 3]),
    ("(3cde f", [None, 2 / 3, 4 / 3, 2, 3]),  # a triplet: each 2/3 of an eighth
    ("[ce]2 g", [None, None, None, None, 2, 3]),  # [ c e ] 2 g: the chord takes 2 after ]
    ("{g}c d", [None, None, None, 1, 2]),  # grace notes take no time
])
def test_time_follows_lengths_broken_rhythm_tuplets_and_chords(body, times):
    text = f"X:1\nT:t\nM:4/4\nL:1/8\nK:Cmaj\n{body} z4|\n"
    tokens = tokenize(text)
    vocabulary = sorted(set(tokens))
    positions = Positions(vocabulary)
    start = tokens.index("K:Cmaj") + 1
    for token in tokens[:start]:
        positions.push(vocabulary.index(token))
    for token, expected in zip(tokens[start:], times):
        positions.push(vocabulary.index(token))
        if expected is not None:
            assert positions.time / (positions.bar_len / 8) == pytest.approx(expected), token


@pytest.mark.slow
def test_sizes_bound_every_value_on_the_whole_corpus():
    from folkrnn.corpus import build_corpus
    from folkrnn.train import corpus_vocabulary

    corpus = build_corpus(None)
    vocabulary = corpus_vocabulary(corpus)
    from folkrnn.abc import phrases

    for module in (phrases, None):  # lookback-2's eight columns, then lookback-1's seven
        sizes = np.array(module.feature_sizes(len(vocabulary)) if module else feature_sizes(len(vocabulary)))
        for tokens in corpus.test:
            ids = vocabulary.encode(tokens)
            features = module.with_features(ids, vocabulary.tokens)[:, 1:] if module else \
                tune_features(ids, vocabulary.tokens)
            assert (features >= 0).all() and (features < sizes).all()


@pytest.mark.slow
def test_the_sampler_feeds_the_features_training_computes(tiny_features_model):
    """One code path: what the sampler gives the model at each step is tune_features of the tune."""
    from folkrnn.sample import sample_one

    model = tiny_features_model
    inputs = []

    class Recording:
        features = model.engine.features

        def init_state(self, batch=1):
            return model.engine.init_state(batch)

        def step(self, ids, state):
            inputs.append(np.array(ids, copy=True))
            return model.engine.step(ids, state)

    result = sample_one(Recording(), model.vocabulary, 3)
    assert result.ok
    fed = np.concatenate(inputs)  # (T, 1 + F), the batch of one stepped alone
    ids = model.vocabulary.encode(result.tokens)
    expected = model.read(ids)  # what training reads: the scheme's features (folkrnn.schemes)
    assert expected.shape[1] == 1 + model.engine.features
    # the last steps may differ where </s> closed the tune with a bar line written for it
    n = min(len(fed), len(expected)) - 2
    assert n > 20 and (fed[:n] == expected[:n]).all()


@pytest.fixture(scope="module", params=[SCHEME, "lookback-2"])
def tiny_features_model(tmp_path_factory, request):
    """A small model with position features, trained for a few batches (enough to sample from)."""
    from types import SimpleNamespace

    from folkrnn.checkpoint import load_model
    from folkrnn.corpus import build_corpus
    from folkrnn.train import TrainConfig, train

    corpus = build_corpus(None)
    small = SimpleNamespace(train=corpus.train[:200], valid=corpus.valid[:20], test=corpus.test[:20],
                            encoding="abc", info={"content_hash": "tiny", "settings": {}},
                            vocabulary=None)
    del small.vocabulary
    out = tmp_path_factory.mktemp("features-model")
    train(small, TrainConfig(epochs=1, batch_size=32, bptt=128, out=str(out), progress=False, force=True,
                             max_batches=4),
          {"embedding_size": 16, "hidden_size": 32, "layers": 2, "dropout": 0.0, "features": request.param})
    loaded = load_model(out)
    return SimpleNamespace(engine=loaded.engine(), vocabulary=loaded.vocabulary, read=loaded.feature_reader())
