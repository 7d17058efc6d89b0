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

from conftest import random_performer
from folkrnn.cli import app
from folkrnn.errors import MidiError, ModelError, OptionError
from folkrnn.events import EventConfig, events_to_notes, names_to_ids
from folkrnn.perform import PerformConfig, Performer, load_performer, perform, prime_events, sample_performances

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
    assert summary["options"]["instrument"] == summary["instrument"] == "fiddle" and summary["max_voices"] == 1
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


# --- the event grammar --------------------------------------------------------------------------


def most_at_once(notes) -> int:
    """The most notes sounding at one time (a note ending when another starts does not overlap it)."""
    edges = sorted([(n.start, 1) for n in notes] + [(n.end, -1) for n in notes])
    count = most = 0
    for _, change in edges:
        count += change
        most = max(most, count)
    return most


def breaches(piece, config: EventConfig, instrument: str, max_note: float, voices: int) -> set[str]:
    """The rules of the event grammar a piece breaks, worked out from its events and decoded notes."""
    from folkrnn.tables import INSTRUMENTS

    low, high = INSTRUMENTS[instrument].lowest, INSTRUMENTS[instrument].highest
    notes = events_to_notes(piece.events, config)
    kinds = [config.decode_id(event)[0] for event in piece.events]
    found = set()
    if any(not low <= note.pitch <= high for note in notes):
        found.add("range")
    if any(note.duration > max_note + 1e-9 for note in notes):
        found.add("length")
    if most_at_once(notes) > voices:
        found.add("voices")
    if "NOTE_ON" in kinds and "VELOCITY" not in kinds[:kinds.index("NOTE_ON")]:
        found.add("velocity")
    return found


@pytest.mark.parametrize("instrument, voices", [("fiddle", 1), ("whistle", 1), ("piano", 3)])
def test_the_grammar_keeps_random_logits_playable(instrument, voices):
    performer, config = random_performer(salt=3), EventConfig()
    options = PerformConfig(seconds=4, max_events=600, max_note=0.5, max_voices=3, instrument=instrument)
    pieces = sample_performances(performer, list(range(8)), options=options)
    for piece in pieces:
        assert piece.ok and piece.notes and events_to_notes(piece.events, config) == piece.notes
        check_guards(piece.events, config)
        assert breaches(piece, config, instrument, 0.5, voices) == set()
    # the checks can fail: the raw model breaks every rule
    raw = sample_performances(performer, list(range(8)), options=PerformConfig(
        seconds=4, max_events=600, guards=False, instrument=instrument))
    assert set().union(*(breaches(p, config, instrument, 0.5, voices) for p in raw)) == \
        {"range", "length", "voices", "velocity"}


def test_the_shipped_model_plays_a_fiddle_tune_one_note_at_a_time():
    """The hanging chords of the raw model (several notes at once, notes of many seconds, pitches
    no fiddle plays) are gone with the grammar; the same seed gives the same piece alone or in a batch."""
    from folkrnn.checkpoint import SHIPPED

    if not (SHIPPED / "midi" / "config.json").is_file():
        pytest.skip("no shipped MIDI-event model")
    from folkrnn.perform import max_note_seconds

    performer = load_performer(None)
    config, seeds = performer.events, [1, 2, 3, 4, 5, 6]
    options = PerformConfig(seconds=12)
    longest = max_note_seconds(options, performer)  # the corpus's longest note, from the card
    pieces = sample_performances(performer, seeds, options=options)  # the fiddle, by default
    for piece in pieces:
        assert piece.ok and len(piece.notes) >= 10
        assert breaches(piece, config, "fiddle", longest, 1) == set()
    assert sample_performances(performer, [seeds[2]], options=options)[0].events == pieces[2].events
    piano = PerformConfig(seconds=12, max_voices=2, instrument="piano")
    chords = sample_performances(performer, seeds[:3], options=piano)
    for piece in chords:
        assert breaches(piece, config, "piano", longest, 2) == set()
    assert [p.events for p in sample_performances(performer, seeds[1:2], options=piano)] == [chords[1].events]
    # the raw model, the same seeds: it does overlap its notes (the grammar is what stops it)
    raw = sample_performances(performer, seeds, options=PerformConfig(seconds=12, guards=False, top_p=1.0))
    assert "voices" in set().union(*(breaches(p, config, "fiddle", longest, 1) for p in raw))


def test_a_note_on_while_a_note_sounds_is_written_after_its_note_off():
    """On a monophonic instrument the sampler ends the sounding note itself, the model reading the
    NOTE_OFF before the NOTE_ON it chose; a prime's chord is kept as it is and ended the same way."""
    config = EventConfig()
    prime = names_to_ids(["VELOCITY_20", "NOTE_ON_60", "NOTE_ON_64", "NOTE_ON_67", "TIME_SHIFT_30"], config)
    pieces = sample_performances(random_performer(salt=4), [1, 2, 3], prime=prime,
                                 options=PerformConfig(seconds=3, max_note=1.0, instrument="fiddle"))
    for piece in pieces:
        assert piece.events[:len(prime)] == prime
        later = [note for note in piece.notes if note.start >= 0.3]
        assert later and most_at_once(later) == 1 and all(note.duration <= 1.0 for note in piece.notes)
        sounding: set[int] = set()
        for position, event in enumerate(piece.events):  # after the prime, a NOTE_ON comes only into silence
            kind, pitch = config.decode_id(event)
            if kind == "NOTE_ON":
                assert position < len(prime) or not sounding
                sounding.add(pitch)
            elif kind == "NOTE_OFF":
                sounding.discard(pitch)


def test_max_note_comes_from_the_options_else_the_model():
    from folkrnn.perform import DEFAULT_MAX_NOTE, max_note_seconds

    performer = random_performer()
    assert max_note_seconds(PerformConfig(), performer) == DEFAULT_MAX_NOTE == 2.0
    performer.training = {"performance": {"max_note_s": 0.4}}
    assert max_note_seconds(PerformConfig(), performer) == 0.4
    assert max_note_seconds(PerformConfig(max_note=1.5), performer) == 1.5
    pieces = sample_performances(performer, [1, 2], options=PerformConfig(seconds=4, instrument="piano"))
    assert all(note.duration <= 0.4 + 1e-9 for piece in pieces for note in piece.notes)
    with pytest.raises(OptionError, match="max-note"):
        sample_performances(performer, [1], options=PerformConfig(max_note=0))
    with pytest.raises(OptionError, match="max-voices"):
        sample_performances(performer, [1], options=PerformConfig(max_voices=0))
    with pytest.raises(OptionError, match="unknown instrument"):
        sample_performances(performer, [1], options=PerformConfig(instrument="theremin"))


# ---------------------------------------------------------------------------------------------
# Controls: what a performance plays


def test_performances_open_with_the_controls_asked_for(performer, midi_model, tmp_path):
    from folkrnn.events import KEYS, METERS, TEMPOS
    from folkrnn.perform import Controls
    from folkrnn.tables import DANCES

    assert performer.events.controls  # a model trained now: its corpus opens with controls
    chosen = sample_performances(performer, [1, 2, 3], options=PerformConfig(seconds=5))
    for piece in chosen:  # the model's own choice: never an unknown tempo, meter or key
        assert set(piece.controls) == {"tempo", "meter", "key", "density"}
        assert piece.controls["tempo"] in TEMPOS[1:] and piece.controls["meter"] in METERS[1:]
        assert piece.controls["key"] in KEYS[1:]
    asked = Controls(rhythm="jig", key="Ador", density=6)
    for piece in sample_performances(performer, [1, 2, 3], options=PerformConfig(seconds=5), controls=asked):
        assert piece.controls["meter"] in DANCES["jig"].meters
        assert abs(piece.controls["tempo"] - DANCES["jig"].tempo) <= 2  # the grid's nearest
        assert piece.controls["key"] == 1 and piece.controls["density"] == 6  # A dorian: one sharp, as G major
    fixed = Controls(tempo=151, meter="2/4", key="Bb")
    piece = sample_performances(performer, [4], options=PerformConfig(seconds=5), controls=fixed)[0]
    assert (piece.controls["tempo"], piece.controls["meter"], piece.controls["key"]) == (152, "2/4", -2)
    # the files say it: tempo (quarters a minute), time and key signatures
    import pretty_midi

    result = perform(performer, 1, seed=4, options=PerformConfig(seconds=5), controls=fixed, out=tmp_path)
    midi = pretty_midi.PrettyMIDI(str(result.files[0]))
    assert midi.get_tempo_changes()[1][0] == pytest.approx(152, abs=0.01)
    assert (midi.time_signature_changes[0].numerator, midi.time_signature_changes[0].denominator) == (2, 4)
    assert pretty_midi.key_number_to_key_name(midi.key_signature_changes[0].key_number) == "Bb Major"
    summary = json.loads(result.summary_path.read_text())
    assert summary["controls"] == {"tempo": 151, "meter": "2/4", "key": "Bb"}
    assert "--tempo 151 --meter 2/4 --key Bb" in summary["pieces"][0]["command"]


@pytest.mark.parametrize("controls, message", [
    ({"rhythm": "polka-ish"}, "unknown rhythm"),
    ({"tempo": 500}, "20..400"),
    ({"tempo": 25}, "outside the 40..240"),
    ({"meter": "5/8"}, "the model knows"),
    ({"key": "H"}, "not a key"),
    ({"density": -1}, "0..30"),
])
def test_bad_controls_are_option_errors(performer, controls, message):
    from folkrnn.perform import Controls

    with pytest.raises(OptionError, match=message):
        sample_performances(performer, [1], controls=Controls(**controls))


def test_a_model_without_controls_takes_none():
    from folkrnn.perform import Controls

    plain = random_performer()
    assert sample_performances(plain, [1], options=PerformConfig(seconds=2), controls=Controls())[0].controls == {}
    with pytest.raises(OptionError, match="has no controls"):
        sample_performances(plain, [1], controls=Controls(rhythm="reel"))


def test_cli_perform_with_controls(midi_model, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["perform", "--model", str(midi_model), "-n", "2", "--seconds", "4", "--seed", "3",
                                 "--rhythm", "reel", "--key", "D", "--out", str(tmp_path / "ok")])
    assert result.exit_code == 0, result.output
    pieces = json.loads((tmp_path / "ok" / "summary.json").read_text())["pieces"]
    assert all(piece["controls"]["key"] == 2 for piece in pieces)
    result = runner.invoke(app, ["perform", "--model", str(midi_model), "--tempo", "999", "--out", str(tmp_path / "x")])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "20..400" in result.output and not (tmp_path / "x" / "perf-0001.mid").exists()
