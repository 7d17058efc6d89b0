"""evaluate: the metric functions on hand-worked examples, the test loss against a direct
computation, and a whole evaluation of a tiny model trained in seconds, through the CLI too."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from folkrnn.abc import parse
from folkrnn.checkpoint import expected_shapes, load_model, save_model
from folkrnn.cli import app
from folkrnn.errors import ModelError, OptionError
from folkrnn.evaluate import (
    EvaluateConfig,
    compare,
    evaluate,
    form_comparison,
    histograms,
    kl_divergence,
    length_in_bars,
    model_loss,
    notes_per_bar,
    overlap_area,
    pitch_class_entropy,
    pitch_classes_used,
    pitch_range,
    title_meter,
)
from folkrnn.vocab import Vocabulary

HEAD = "X:1\nT:t\nM:4/4\nL:1/8\nK:C\n"


# --- metrics, by hand --------------------------------------------------------------------------


def test_pitch_metrics_by_hand():
    tune = parse(HEAD + "C2 G2 c2 {d}G2|\n")  # C4 G4 C5 G4 and a grace D5
    assert pitch_range(tune) == 12  # 60 .. 72, the grace note left out
    assert pitch_classes_used(tune) == 2  # C and G
    assert pitch_class_entropy(tune) == pytest.approx(1.0)  # two classes, two notes each
    one = parse(HEAD + "C8|\n")
    assert (pitch_range(one), pitch_classes_used(one), pitch_class_entropy(one)) == (0, 1, 0.0)
    # four classes with counts 4, 2, 1, 1: -(1/2 log 1/2 + 1/4 log 1/4 + 2/8 log 1/8) = 1.75 bits
    four = parse(HEAD + "CCCC EEGA|\n")
    assert pitch_class_entropy(four) == pytest.approx(1.75)


def test_bar_metrics_by_hand():
    # pickup G, three full bars, last bar 7/8: the pickup and its complement make one bar
    tune = parse(HEAD + "G|c2 c2 c2 c2|d8|e4 e4|f6 f|\n")
    assert length_in_bars(tune) == 4
    assert notes_per_bar(tune) == pytest.approx((1 + 4 + 1 + 2 + 2) / 4)
    assert length_in_bars(parse(HEAD + "c8|Z3|d8|\n")) == 5  # a three-bar rest counts three


def test_overlap_and_kl_by_hand():
    assert overlap_area([2, 2, 0], [0, 2, 2]) == pytest.approx(0.5)
    assert overlap_area([1, 1], [5, 5]) == pytest.approx(1.0)
    assert overlap_area([1, 0], [0, 1]) == 0.0
    # p = (3/4, 1/4), q = (1/4, 3/4): 3/4 ln 3 + 1/4 ln(1/3) = 1/2 ln 3
    assert kl_divergence([3, 1], [1, 3], smoothing=0) == pytest.approx(0.5 * math.log(3))
    assert kl_divergence([4, 4], [1, 1]) == pytest.approx(0.0)
    # smoothing keeps an empty bin finite: (1.5, 0.5) against (0.5, 1.5), the same ratio as above
    assert kl_divergence([1, 0], [0, 1]) == pytest.approx(0.5 * math.log(3))


def test_histograms_and_compare():
    bins, real, generated = histograms([1, 2, 2], [2, 3], "integer")
    assert bins == [0.5, 1.5, 2.5, 3.5] and real.tolist() == [1, 2, 0] and generated.tolist() == [0, 1, 1]
    bins, real, generated = histograms(["6/8", "4/4", "6/8"], ["3/4"], "category")
    assert bins == ["6/8", "4/4", "3/4"] and real.tolist() == [2, 1, 0] and generated.tolist() == [0, 0, 1]
    summary = compare([1, 2, 2], [2, 3], "integer")
    # real (1/3, 2/3, 0) against generated (0, 1/2, 1/2): overlap 1/2
    assert summary["overlap_area"] == pytest.approx(0.5) and summary["real_mean"] == pytest.approx(5 / 3, abs=1e-3)
    assert title_meter("X:1\nT:a\nR:jig\nM:6/8\nL:1/8\nK:Cmaj\nabc|\n") == "6/8"


def test_form_comparison_side_by_side():
    from folkrnn.form import STATISTICS, form_of

    aabb = form_of(HEAD + "|:" + "c2 c2 d2 e2|" * 7 + "c8:|\n|:" + "e2 e2 f2 g2|" * 7 + "e8:|\n")
    odd = form_of(HEAD + "c2 d2 e2 f2|g2 a2 b2 c'2|d'8|\n")  # 3 bars, nothing repeated
    result = form_comparison([aabb] * 12, [odd] * 9 + [aabb] * 3)
    real, generated = result["real"], result["generated"]
    assert real["tunes"] == 12 and generated["tunes"] == 12
    assert real["aabb"] == 1.0 and generated["aabb"] == 0.25
    assert real["all_parts_8"] == 1.0 and generated["all_parts_8"] == 0.25
    assert generated["no_repeated_bar"] == 0.75 and real["no_repeated_bar"] == 0.0
    assert set(STATISTICS) <= set(real) and list(result["rows"]) == list(STATISTICS)
    # 9 of 12 generated tunes are unlike every real one: the classifier finds them (3/4 + 1/8)
    assert 0.8 <= result["classifier_accuracy"] <= 0.95
    same = form_comparison([aabb] * 10, [aabb] * 10)
    assert same["classifier_accuracy"] <= 0.6
    assert form_comparison([aabb], [odd])["classifier_accuracy"] is None  # too few to tell


# --- the model's test loss ---------------------------------------------------------------------


def random_model(directory: Path, tokens: list[str], hidden: int = 12, encoding: str = "abc") -> Path:
    vocabulary = Vocabulary.build([tokens]) if encoding == "abc" else Vocabulary.from_event_names(tokens)
    config = {"vocab_size": len(vocabulary), "embedding_size": 6, "hidden_size": hidden,
              "layers": 2, "dropout": 0.0}
    rng = np.random.default_rng(0)
    weights = {name: rng.standard_normal(shape).astype(np.float32) * 0.5
               for name, shape in expected_shapes(config).items()}
    return save_model(directory, weights, config, vocabulary, encoding, {}, {})


TOKENS = ["<s>", "</s>", "R:jig", "M:6/8", "K:Cmaj", "c", "d", "e", "2", "|", ":|", "T", "h"]


def test_test_loss_is_the_mean_over_every_token_after_s(tmp_path):
    model = load_model(random_model(tmp_path / "m", TOKENS))
    engine, vocabulary = model.engine(), model.vocabulary
    tunes = [["<s>", "R:jig", "M:6/8", "K:Cmaj", "c", "d", "|", "</s>"],
             ["<s>", "T", "R:jig", "M:6/8", "K:Cmaj", "e", "2", "c", "d", "e", ":|", "</s>"],
             ["<s>", "R:jig", "</s>"]]
    expected = 0.0
    for tune in tunes:  # one tune at a time, no batching, no padding
        ids = vocabulary.encode(tune)
        logits, _ = engine.run(ids[:-1])
        logits = logits.astype(np.float64)
        log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        expected -= log_probs[np.arange(len(ids) - 1), ids[1:]].sum()
    total, count, scored = model_loss(engine, vocabulary, tunes, batch_size=2)
    assert count == 7 + 11 + 2 and scored == 3
    assert total == pytest.approx(expected, rel=1e-5)


def test_the_title_test_samples_headers_on_the_decoding_loop(tmp_path):
    from folkrnn.sample import SampleConfig, sample_headers

    model = load_model(random_model(tmp_path / "m", TOKENS))
    engine, vocabulary = model.engine(), model.vocabulary
    raw = SampleConfig(top_p=1.0)
    first = sample_headers(engine, vocabulary, [[], ["<s>", "T", "h"]], [3, 4], config=raw, max_tokens=50)
    assert first == sample_headers(engine, vocabulary, [[], ["T", "h"]], [3, 4], config=raw, max_tokens=50)
    assert first[1][:3] == ["<s>", "T", "h"]
    assert all(len(tokens) <= 50 and "<s>" not in tokens[1:] and "<pad>" not in tokens for tokens in first)
    # a row depends on its seed alone, not on the batch it was made in
    assert sample_headers(engine, vocabulary, [["T", "h"]], [4], config=raw, max_tokens=50) == first[1:]
    stopped = sample_headers(engine, vocabulary, [[]] * 4, [1, 2, 3, 4], config=raw, max_tokens=50,
                             stop=lambda token: token == "|")
    assert all(tokens[-1] in ("|", "</s>") or len(tokens) == 50 for tokens in stopped)
    assert any(tokens[-1] == "|" for tokens in stopped)


# --- a whole evaluation of a tiny trained model ------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tiny_model_dir, tiny_corpus):
    """The session's tiny model (conftest.py: a 2 x 64 LSTM trained on 130 O'Neill tunes) and its
    corpus."""
    return tiny_model_dir, tiny_corpus


def test_evaluate_writes_a_true_report_and_plots(tiny, tmp_path):
    from folkrnn.ngram import fit_ngram

    model, corpus = tiny
    result = evaluate(model, tmp_path / "report", EvaluateConfig(n=24, titles_per_type=2), corpus=corpus)
    for key in ("test_loss_nats", "ngram_test_loss_nats", "validity_rate", "novelty_rate",
                "title_conditioning_accuracy"):
        assert key in result
    written = json.loads((tmp_path / "report" / "report.json").read_text())
    assert written["test_loss_nats"] == result["test_loss_nats"]
    # the card's test loss is the same quantity, computed by torch during training
    card = load_model(model).training
    assert result["test_loss_nats"] == pytest.approx(card["test_loss_nats"], rel=1e-3)
    vocabulary = [t for t in load_model(model).vocabulary.tokens if t not in ("<pad>", "<s>")]
    baseline = fit_ngram(corpus.train, 5, vocabulary).cross_entropy(corpus.test)
    assert result["ngram_test_loss_nats"] == pytest.approx(baseline, abs=1e-5)
    assert result["test_perplexity"] == pytest.approx(math.exp(result["test_loss_nats"]), rel=1e-3)
    bits = result["test_loss_nats"] * result["test_tokens"] / math.log(2) / result["test_tunes"]
    assert result["test_loss_bits_per_tune"] == pytest.approx(bits, abs=0.01)
    assert result["generated"] == 24 and 0 <= result["validity_rate"] <= 1
    assert result["title_conditioning"]["titles"] + result["title_conditioning"]["skipped_titles"] == 10
    for name in ("pitch_range", "pitch_classes", "pitch_class_entropy", "notes_per_bar", "length_bars",
                 "structure", "rhythm", "meter", "mode", "novelty"):
        metric = result["metrics"][name]
        assert 0 <= metric["overlap_area"] <= 1 and metric["real_n"] > 0
    # the form section: every figure, generated next to the test split, and the classifier
    form = written["form"]
    assert form["real"]["tunes"] > 0 and form["generated"]["tunes"] == result["generated_readable"]
    for key in ("parts_multiple_of_4", "all_parts_8", "repeated_bars", "no_repeated_bar",
                "repeated_half_bars", "rest_inside", "over_two_octaves", "ends_on_tonic"):
        assert key in form["real"] and key in form["generated"]
    assert written["form_classifier_accuracy"] == form["classifier_accuracy"]
    assert 0 <= form["classifier_accuracy"] <= 1
    report = (tmp_path / "report" / "report.md").read_text()
    assert "| LSTM |" in report and "Kneser-Ney 5-gram" in report and "overlap" in report
    assert "## Form" in report and "| tunes with no repeated bar |" in report
    assert "Classifier two-sample test" in report
    for name in ("numeric.png", "categories.png", "novelty.png", "form_part_lengths.png",
                 "form_repeated_bars.png"):
        assert (tmp_path / "report" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({name})" in report


def test_evaluate_cli_and_its_errors(tiny, tmp_path, monkeypatch):
    model, corpus = tiny
    monkeypatch.setenv("FOLKRNN_CACHE", str(tmp_path / "cache"))
    book = tmp_path / "tunes"
    book.mkdir()
    from folkrnn.abc import detokenize

    (book / "book.abc").write_text("\n".join(detokenize(t, number=i + 1) for i, t in enumerate(
        corpus.train + corpus.valid + corpus.test)))
    runner = CliRunner()
    result = runner.invoke(app, ["evaluate", "--model", str(model), "--n", "6", "--titles", "1",
                                 "--out", str(tmp_path / "out"), "--corpus", str(book)])
    assert result.exit_code == 0, result.output
    assert "nats/token" in result.output and (tmp_path / "out" / "report.md").is_file()
    missing = runner.invoke(app, ["evaluate", "--model", str(tmp_path / "nothing"), "--n", "2"])
    assert missing.exit_code != 0 and "does not exist" in missing.output and "Traceback" not in missing.output
    # a MIDI-event model whose card names no corpus to rebuild
    midi = random_model(tmp_path / "midi", ["NOTE_ON_60", "NOTE_OFF_60", "TIME_SHIFT_1"], encoding="midi")
    wrong = runner.invoke(app, ["evaluate", "--model", str(midi), "--n", "2", "--out", str(tmp_path / "o2")])
    assert wrong.exit_code != 0 and "names no corpus" in wrong.output and "Traceback" not in wrong.output
    with pytest.raises(OptionError):
        EvaluateConfig(n=0)
    # a model whose vocabulary cannot write the corpus's test tunes
    with pytest.raises(ModelError, match="vocabulary"):
        evaluate(random_model(tmp_path / "small", TOKENS), tmp_path / "o3", EvaluateConfig(n=2),
                 corpus=corpus)


# --- a MIDI-event model: test loss next to an n-gram on its events, performances next to real ones


@pytest.fixture(scope="module")
def tiny_midi(tmp_path_factory):
    """A tiny MIDI-event model (4 batches on the played tunes of music21's miscFolk collection, as
    test_perform.py trains one), its corpus, and the corpus cache (shared with test_perform.py)."""
    import torch

    from folkrnn.corpus import build_corpus
    from folkrnn.train import TrainConfig, train

    cache = tmp_path_factory.getbasetemp() / "midi-cache"
    folder = tmp_path_factory.getbasetemp() / "tiny-midi-evaluate"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        corpus = build_corpus(["miscFolk"], encoding="midi", workers=1, cache_dir=cache)
        train(corpus, TrainConfig(epochs=1, batch_size=16, bptt=128, max_batches=4, out=str(folder),
                                  progress=False, lr=1e-2, force=True),
              {"embedding_size": 16, "hidden_size": 32, "layers": 2, "dropout": 0.0})
    finally:
        torch.set_num_threads(threads)
    return folder, corpus, cache


def test_evaluate_a_midi_model(tiny_midi, tmp_path):
    from folkrnn.ngram import fit_ngram
    from folkrnn.performance_quality import ROWS, TARGETS

    model, corpus, _ = tiny_midi
    result = evaluate(model, tmp_path / "report", EvaluateConfig(n=4, seconds=8, titles_per_type=0),
                      corpus=corpus)
    written = json.loads((tmp_path / "report" / "report.json").read_text())
    assert written["test_loss_nats"] == result["test_loss_nats"] and result["encoding"] == "midi"
    # the card's test loss is the same quantity, computed by torch during training
    assert result["test_loss_nats"] == pytest.approx(load_model(model).training["test_loss_nats"], rel=1e-3)
    assert result["test_tunes"] == len(corpus.test) and result["test_controls_dropped"] == 0
    vocabulary = [t for t in load_model(model).vocabulary.tokens if t not in ("<pad>", "<s>")]
    baseline = fit_ngram(corpus.train, 5, vocabulary).cross_entropy(corpus.test)
    assert result["ngram_test_loss_nats"] == pytest.approx(baseline, abs=1e-5)
    # the performance section: every row, both sides, each target judged or None
    table = written["performance"]
    assert table["generated"]["pieces"] == 4 and result["generated"] == 4
    assert 1 <= table["real"]["pieces"] <= 4 and table["real"]["pieces_with_notes"] == table["real"]["pieces"]
    assert set(table["rows"]) == set(ROWS) and set(table["met"]) == set(TARGETS)
    assert table["real"]["mean_sounding"] == pytest.approx(1.0, abs=0.05)
    assert table["real"]["onset_regularity_median"] > 0.3 and table["seconds"] == 8
    assert result["validity_rate"] == (table["generated"]["transcribed_share"] or 0.0)
    # both sides open with controls: each piece is transcribed at its own tempo, meter and key
    assert table["real"]["transcription"]["hinted"] == table["real"]["pieces"]
    assert table["generated"]["transcription"]["hinted"] == result["generated_made"]
    assert sum(result["controls"]["generated"]["meter"].values()) == result["generated"]
    assert sum(result["controls"]["real"]["tempo"].values()) == table["real"]["pieces"]
    report = (tmp_path / "report" / "report.md").read_text()
    assert "- Real, controls: tempo " in report and "at their controls' tempo, meter and key" in report
    assert "| LSTM |" in report and "Kneser-Ney 5-gram" in report and "nats/event" in report
    assert "| mean notes sounding at once (while any sounds) |" in report and "## Performances" in report
    assert (tmp_path / "report" / "piano_roll.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "](piano_roll.png)" in report


def test_evaluate_a_midi_model_from_the_cli_on_its_own_corpus(tiny_midi, tmp_path, monkeypatch):
    model, _, cache = tiny_midi
    monkeypatch.setenv("FOLKRNN_CACHE", str(cache))  # the card's corpus is rebuilt, from this cache
    result = CliRunner().invoke(app, ["evaluate", "--model", str(model), "--n", "2", "--out",
                                      str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "nats/event" in result.output and "2 performances of 30 s" in result.output
    written = json.loads((tmp_path / "out" / "report.json").read_text())
    assert written["corpus_note"] is None and written["performance"]["generated"]["pieces"] == 2
