"""Performances from a MIDI-event model: a tiny model trained here on played music21 tunes, sampled
with the NumPy engine; the same seed gives the same piece in any batch, the guards and limits hold,
the files read back in pretty_midi and music21, a prime starts every piece, and bad options get a
one-line error with nothing overwritten."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import RandomEngine
from folkrnn.cli import app
from folkrnn.errors import MidiError, ModelError, OptionError
from folkrnn.events import EventConfig, events_to_notes
from folkrnn.perform import PerformConfig, Performer, load_performer, perform, prime_events, sample_performances
from folkrnn.vocab import Vocabulary

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def midi_model(tmp_path_factory) -> Path:
    """A tiny MIDI-event model: 4 batches on the played tunes of music21's miscFolk collection."""
    import torch

    from folkrnn.corpus import build_corpus
    from folkrnn.train import TrainConfig, train

    folder = tmp_path_factory.getbasetemp() / "tiny-midi-model"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        corpus = build_corpus(["miscFolk"], encoding="midi", workers=1,
                              cache_dir=tmp_path_factory.getbasetemp() / "midi-cache")
        train(corpus, TrainConfig(epochs=1, batch_size=16, bptt=128, max_batches=4, out=str(folder),
                                  progress=False, lr=1e-2, force=True),
              {"embedding_size": 16, "hidden_size": 32, "layers": 2, "dropout": 0.0})
    finally:
        torch.set_num_threads(threads)
    return folder


@pytest.fixture(scope="session")
def performer(midi_model) -> Performer:
    return load_performer(midi_model)


def random_performer(scale: float = 3.0, salt: int = 0) -> Performer:
    """Random logits every step (history-hashed, so batching changes nothing): the harshest test
    of the guards."""
    config = EventConfig()
    vocabulary = Vocabulary.from_event_names(config.names())
    return Performer(path=Path("random"), label="random", engine=RandomEngine(len(vocabulary), scale, salt),
                     vocabulary=vocabulary, events=config)


def check_guards(events: list[int], config: EventConfig) -> None:
    """Every NOTE_OFF closes a sounding note; no NOTE_ON of a sounding pitch."""
    sounding: set[int] = set()
    for event in events:
        kind, pitch = config.decode_id(event)
        if kind == "NOTE_ON":
            assert pitch not in sounding
            sounding.add(pitch)
        elif kind == "NOTE_OFF":
            assert pitch in sounding
            sounding.discard(pitch)


# --- sampling -----------------------------------------------------------------------------------


def test_a_batch_gives_each_seed_the_piece_it_gives_alone(performer):
    options = PerformConfig(seconds=6)
    seeds = [3, 4, 5, 6, 7]
    together = sample_performances(performer, seeds, options=options)
    again = sample_performances(performer, seeds, options=options)
    for piece, repeat in zip(together, again):
        alone = sample_performances(performer, [piece.seed], options=options)[0]
        assert piece.ok and piece.events == alone.events == repeat.events
        assert piece.notes == alone.notes and piece.log_prob == pytest.approx(alone.log_prob)
    assert len({tuple(piece.events) for piece in together}) == len(seeds)  # seeds differ
    greedy = PerformConfig(strategy="greedy", seconds=6)
    assert [p.events for p in sample_performances(performer, [1, 2], options=greedy)] == \
        [p.events for p in sample_performances(performer, [1], options=greedy)] * 2


def test_temperature_changes_the_piece(performer):
    hot = sample_performances(performer, [9], options=PerformConfig(seconds=6, temperature=3.0))[0]
    cold = sample_performances(performer, [9], options=PerformConfig(seconds=6, temperature=0.5))[0]
    assert hot.events != cold.events


@pytest.mark.parametrize("salt", [0, 1, 2])
def test_guards_keep_random_logits_decodable(salt):
    performer = random_performer(salt=salt)
    config = performer.events
    pieces = sample_performances(performer, list(range(6)), options=PerformConfig(seconds=4, max_events=400))
    for piece in pieces:
        assert piece.ok and piece.notes
        check_guards(piece.events, config)
        # the events decode to the notes reported, and every NOTE_ON gives a note that ends in time
        assert events_to_notes(piece.events, config) == piece.notes
        assert all(0 <= note.start < note.end <= piece.seconds + 1e-9 for note in piece.notes)
    unguarded = sample_performances(performer, list(range(6)),
                                    options=PerformConfig(seconds=4, max_events=400, guards=False))
    with pytest.raises(AssertionError):  # without the guards, random logits do break them
        for piece in unguarded:
            check_guards(piece.events, config)


def test_limits_end_a_piece_exactly(performer):
    random = random_performer()
    for piece in sample_performances(random, [1, 2, 3], options=PerformConfig(seconds=2.5, max_events=10_000)):
        shifts = sum(performer.events.decode_id(e)[1] for e in piece.events
                     if performer.events.decode_id(e)[0] == "TIME_SHIFT")
        assert piece.ended in ("seconds", "end")
        assert shifts == round(piece.seconds * 100) and piece.seconds <= 2.5
        if piece.ended == "seconds":
            assert piece.seconds == 2.5
    for piece in sample_performances(random, [1, 2], options=PerformConfig(seconds=0, max_events=50)):
        assert piece.ended in ("events", "end") and len(piece.events) <= 50


def test_a_prime_starts_every_piece(performer, tmp_path):
    first = sample_performances(performer, [11], options=PerformConfig(seconds=5))[0]
    from folkrnn.midi import write_performance

    write_performance(first.notes, tmp_path / "prime.mid")
    prime = prime_events(tmp_path / "prime.mid", performer.events)
    pieces = sample_performances(performer, [1, 2], options=PerformConfig(seconds=12), prime=prime)
    for piece in pieces:
        assert piece.events[:len(prime)] == prime and piece.prime_events == len(prime)
        assert len(piece.events) > len(prime)
    with pytest.raises(OptionError, match="prime lasts"):
        sample_performances(performer, [1], options=PerformConfig(seconds=1), prime=prime)
    with pytest.raises(MidiError):
        prime_events(tmp_path / "nothing.mid")


def test_sampling_imports_no_torch(midi_model):
    code = (
        "import sys\n"
        "from folkrnn.perform import load_performer, sample_performances, PerformConfig\n"
        f"p = load_performer({str(midi_model)!r})\n"
        "pieces = sample_performances(p, [1, 2], options=PerformConfig(seconds=3))\n"
        "assert all(piece.ok for piece in pieces)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=120)


# --- files --------------------------------------------------------------------------------------


def test_perform_writes_midi_files_and_a_true_summary(performer, tmp_path):
    import music21
    import pretty_midi

    out = tmp_path / "out"
    result = perform(performer, 3, options=PerformConfig(seconds=8), seed=40, out=out, instrument="fiddle")
    assert [path.name for path in result.files] == ["perf-0001.mid", "perf-0002.mid", "perf-0003.mid"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seed"] == 40 and summary["made"] == 3 and summary["options"]["seconds"] == 8
    for index, entry in enumerate(summary["pieces"]):
        piece = result.pieces[index]
        assert entry["seed"] == 40 + index == piece.seed and entry["file"] == f"perf-{index + 1:04d}.mid"
        midi = pretty_midi.PrettyMIDI(str(out / entry["file"]))
        notes = midi.instruments[0].notes
        assert len(notes) == entry["notes"] == len(piece.notes) and midi.instruments[0].program == 40
        assert sorted((n.pitch, round(n.start, 2)) for n in notes) == \
            sorted((n.pitch, round(n.start, 2)) for n in piece.notes)
        assert midi.get_end_time() <= entry["seconds"] + 0.01 and entry["seconds"] <= 8
        assert "--seed" in entry["command"] and str(40 + index) in entry["command"]
    score = music21.converter.parse(str(out / "perf-0001.mid"))
    assert len(score.flatten().notes) > 0
    # piece i is the piece `perform -n 1 --seed seed+i` makes
    alone = perform(performer, 1, options=PerformConfig(seconds=8), seed=41, out=tmp_path / "alone",
                    instrument="fiddle")
    assert alone.pieces[0].events == result.pieces[1].events
    assert (tmp_path / "alone" / "perf-0001.mid").read_bytes() == (out / "perf-0002.mid").read_bytes()


def test_nothing_is_overwritten_without_force(performer, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "perf-0002.mid").write_bytes(b"mine")
    with pytest.raises(OptionError, match="--force"):
        perform(performer, 2, seed=1, out=out)
    assert (out / "perf-0002.mid").read_bytes() == b"mine" and not (out / "perf-0001.mid").exists()
    perform(performer, 2, seed=1, out=out, force=True, options=PerformConfig(seconds=3))
    assert (out / "perf-0002.mid").read_bytes()[:4] == b"MThd"
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left


@pytest.mark.parametrize("options, message", [
    (dict(temperature=0), "temperature"),
    (dict(top_p=1.5), "top-p"),
    (dict(seconds=-1), "seconds"),
    (dict(max_events=0), "max-events"),
    (dict(strategy="beam"), "sample or greedy"),
])
def test_bad_options_are_option_errors(performer, tmp_path, options, message):
    with pytest.raises(OptionError, match=message):
        perform(performer, 1, options=PerformConfig(**options), out=tmp_path)
    assert not list(tmp_path.iterdir())


def test_an_abc_model_is_refused(midi_model, tmp_path):
    import shutil

    abc = tmp_path / "abc-model"
    shutil.copytree(midi_model, abc)
    config = json.loads((abc / "config.json").read_text())
    config["encoding"] = {"name": "abc", "params": {}}
    (abc / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="MIDI-event model"):
        load_performer(abc)


# --- the command --------------------------------------------------------------------------------


def test_cli_perform(midi_model, tmp_path):
    runner = CliRunner()
    out = tmp_path / "perf"
    args = ["perform", "--model", str(midi_model), "-n", "2", "--seconds", "4", "--seed", "7",
            "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["perf-0001.mid", "perf-0002.mid", "summary.json"]
    assert "wrote 2 performances" in result.stderr
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and again.stderr.count("\n") == 1 and "--force" in again.stderr
    cases = [
        (["--temperature", "0"], 2),
        (["--prime", str(tmp_path / "missing.mid")], 1),
        (["--instrument", "theremin"], 2),
        (["--model", str(tmp_path / "no-model")], 1),
    ]
    for extra, code in cases:
        result = runner.invoke(app, ["perform", "--model", str(midi_model), "--out", str(tmp_path / "x"),
                                     "--force", *extra])
        assert result.exit_code == code, result.output
        assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
        assert "Traceback" not in result.output
