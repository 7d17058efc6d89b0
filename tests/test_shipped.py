"""The shipped default models load, and their cards are true.

The ABC model's card claims a test loss and a Kneser-Ney 5-gram test loss on the default corpus:
both are recomputed here, from the corpus rebuilt from music21 (its content hash must be the one
the card names), with the NumPy engine that compose uses, and the model must be at least 20%
below the baseline, as the training issue asks.
"""

from __future__ import annotations

import numpy as np
import pytest

from folkrnn.checkpoint import MODEL_FILE, SHIPPED, load_model, shipped_model

LIMIT_BYTES = 30 * 1024 * 1024


@pytest.fixture(scope="module")
def abc_model():
    return load_model(shipped_model("abc"))


@pytest.fixture(scope="module")
def default_corpus():
    from folkrnn.corpus import build_corpus

    return build_corpus()


def check_sample_loss(model, corpus, size: int, tolerance: float) -> list:
    """The card names this corpus, and a random sample of ``size`` of its test tunes scores near
    the card's test loss (a sample's mean is near the whole split's). Returns the test split."""
    from folkrnn.evaluate import model_loss

    card = model.training
    assert corpus.content_hash == card["corpus_hash"]
    test = corpus.split("test")
    assert len(test) == card["split"]["test"]["tunes"]
    rng = np.random.default_rng(0)
    sample = [test[i] for i in sorted(rng.choice(len(test), size=size, replace=False))]
    total, tokens, _ = model_loss(model.engine(), model.vocabulary, sample, read=model.feature_reader())
    assert total / tokens == pytest.approx(card["test_loss_nats"], abs=tolerance)
    return test


def test_shipped_models_are_small_and_say_what_they_are(abc_model):
    for folder in sorted(p for p in SHIPPED.iterdir() if p.is_dir()):
        model = load_model(folder)
        assert model.encoding == folder.name
        assert (folder / MODEL_FILE).stat().st_size <= LIMIT_BYTES
        assert model.model_config["layers"] == 3
        card = model.training
        for key in ("corpus", "split", "command", "hardware", "wall_time_s", "epochs",
                    "train_loss_nats", "valid_loss_nats", "test_loss_nats"):
            assert card.get(key) is not None, f"{folder.name}: the card has no {key}"
    assert abc_model.training["ngram_order"] == 5


@pytest.mark.slow
def test_abc_card_losses_are_true(abc_model, default_corpus):
    from folkrnn.evaluate import model_loss
    from folkrnn.ngram import fit_ngram

    card = abc_model.training
    test = check_sample_loss(abc_model, default_corpus, 200, tolerance=0.08)
    total, tokens, _ = model_loss(abc_model.engine(), abc_model.vocabulary, test)
    assert total / tokens == pytest.approx(card["test_loss_nats"], rel=1e-4)
    vocabulary = [t for t in abc_model.vocabulary.tokens if t not in ("<pad>", "<s>")]
    ngram = fit_ngram(default_corpus.split("train"), 5, vocabulary=vocabulary)
    assert ngram.cross_entropy(test) == pytest.approx(card["ngram_test_loss_nats"], rel=1e-6)
    assert card["test_loss_nats"] <= 0.8 * card["ngram_test_loss_nats"]


@pytest.mark.slow
def test_midi_card_loss_is_true():
    """The event model's test loss, recomputed on a sample of the played default corpus's test split,
    and below a Kneser-Ney 5-gram's on the same events (the card's figure, recomputed)."""
    from folkrnn.corpus import build_corpus
    from folkrnn.ngram import fit_ngram

    model = load_model(shipped_model("midi"))
    card = model.training
    sources = [source["name"] for source in card["corpus"]["sources"]]
    corpus = build_corpus(sources, encoding="midi")
    test = check_sample_loss(model, corpus, 150, tolerance=0.1)
    assert card["test_loss_nats"] < np.log(len(model.vocabulary)) - 1.0  # far below guessing
    vocabulary = [t for t in model.vocabulary.tokens if t not in ("<pad>", "<s>")]
    ngram = fit_ngram(corpus.split("train"), 5, vocabulary=vocabulary)
    assert ngram.cross_entropy(test) == pytest.approx(card["ngram_test_loss_nats"], rel=1e-6)
    assert card["test_loss_nats"] < card["ngram_test_loss_nats"]


def test_the_readme_shows_what_compose_writes():
    """The README's first command and the tune it prints, byte for byte, from the shipped model."""
    import re
    import shlex
    from pathlib import Path

    from folkrnn.compose import ComposeOptions, compose

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    command = re.search(r"pip install \. && (folkrnn compose [^\n]*)", readme).group(1)
    args = shlex.split(command)[2:]
    options = dict(zip((a.lstrip("-") for a in args[::2]), args[1::2]))
    composed = compose(ComposeOptions(title=options["title"], seed=int(options["seed"])), write=False)
    shown = re.search(r"```\n(X:1\n.*?)```", readme, re.S).group(1)
    assert composed.abc == shown


@pytest.mark.slow
def test_the_dance_tables_part_closes_are_the_corpus_parts(default_corpus):
    """The shares at which a loose form's parts close after 1, 2 and 3 phrases (Dance.part_closes,
    PART_CLOSES) are those of the default corpus's parts, every split, each rhythm with 100 parts
    or more of whole phrases its own, the others every rhythm's."""
    from collections import defaultdict

    from folkrnn.abc.tokens import detokenize
    from folkrnn.form import form_of, part_closes
    from folkrnn.tables import DANCES, PART_CLOSES

    forms = defaultdict(list)
    for split in ("train", "valid", "test"):
        for tokens in default_corpus.split(split):
            rhythm = next(token[2:] for token in tokens if token.startswith("R:"))
            forms[rhythm].append(form_of(detokenize(tokens)))
    everything = [form for kind in forms.values() for form in kind]
    assert part_closes(everything)[0] == PART_CLOSES
    for name, dance in DANCES.items():
        if dance.form != "free":
            assert dance.part_closes is None, name  # a strict form's parts close where the form says
            continue
        shares, lengths = part_closes(forms.get(name, []))
        assert (dance.part_closes == shares) if sum(lengths.values()) >= 100 else dance.part_closes is None, name
