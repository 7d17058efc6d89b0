"""A Tune played as MIDI: playback order, tempo by rhythm and Q:, instruments, expressive and
straight playing, grace notes and chords; the files checked with pretty_midi, music21 and
abcmidi's midi2abc; `folkrnn render`; and the performance corpus for the MIDI-event model."""

from __future__ import annotations

import shutil
import statistics
import subprocess
import warnings
from fractions import Fraction as F

import pretty_midi
import pytest
from typer.testing import CliRunner

from conftest import KESH
from folkrnn.abc import parse
from folkrnn.cli import app
from folkrnn.errors import MidiError, OptionError
from folkrnn.events import EventConfig, events_to_notes
from folkrnn.midi import (
    INSTRUMENTS,
    RHYTHM_TEMPOS,
    midi_folder_performances,
    read_midi_info,
    read_performance,
    tune_performances,
    tune_tempo,
    tune_to_performance,
    write_tune_midi,
)
from folkrnn.music import BarLine, Key, Meter, Note, Tune
from folkrnn.render import render, slug


def hand_tune(rhythm: str = "reel", meter=(4, 4), q: str | None = None) -> Tune:
    """Two bars of eighths in G, built by hand: G A B c d e f g | a g f e d c B A."""
    pitches = [67, 69, 71, 72, 74, 76, 78, 79, 81, 79, 78, 76, 74, 72, 71, 69]
    notes = [Note(p, F(i, 2), F(1, 2)) for i, p in enumerate(pitches)]
    fields = [("X", "1"), ("T", "Hand"), ("R", rhythm)] + ([("Q", q)] if q else [])
    return Tune(fields=fields, meter=Meter(*meter), key=Key("G", "maj"), notes=notes,
                bars=[BarLine(F(4), "|", 8), BarLine(F(8), "|]", 16)])


# --- playback order, tempo, instrument ---------------------------------------------------------

def test_the_kesh_straight_has_92_notes_with_repeats_and_endings(tmp_path):
    tune = parse(KESH)
    notes = tune_to_performance(tune, straight=True)
    assert len(notes) == 92
    write_tune_midi(tune, tmp_path / "kesh.mid", straight=True)
    midi = pretty_midi.PrettyMIDI(str(tmp_path / "kesh.mid"))
    assert len(midi.instruments[0].notes) == 92
    # the second ending, not the first, closes the tune: ... A G F G2
    assert [n.pitch for n in notes[-4:]] == [69, 67, 66, 67]


def test_tempo_follows_the_rhythm_q_and_the_option():
    reel, jig, air = hand_tune("reel"), hand_tune("jig", (6, 8)), hand_tune("air", (3, 4))
    assert tune_tempo(reel) == RHYTHM_TEMPOS["reel"]
    assert tune_tempo(jig) == RHYTHM_TEMPOS["jig"] * 1.5  # dotted quarters
    assert tune_tempo(air) < tune_tempo(jig) < tune_tempo(reel)
    assert tune_tempo(hand_tune("Slip Jig", (9, 8))) == RHYTHM_TEMPOS["slipjig"] * 1.5
    assert tune_tempo(hand_tune("", (2, 4))) == RHYTHM_TEMPOS["polka"]  # by the meter
    assert tune_tempo(hand_tune("reel", q="1/4=96")) == 96
    assert tune_tempo(hand_tune("jig", (6, 8), q="3/8=100")) == 150
    assert tune_tempo(hand_tune("reel", q='"Allegro" 1/2=100')) == 200
    assert tune_tempo(hand_tune("reel", q="80")) == 80  # as abc2midi plays a bare number
    assert tune_tempo(hand_tune("reel", q="Allegro")) == RHYTHM_TEMPOS["reel"]
    assert tune_tempo(hand_tune("jig", (6, 8), q="1/4=90"), tempo=120) == 180
    with pytest.raises(OptionError, match="tempo"):
        tune_tempo(reel, tempo=1000)


def test_straight_timing_is_exact_at_the_tempo():
    tune = hand_tune("reel")
    notes = tune_to_performance(tune, straight=True, tempo=120)
    assert [(n.start, n.end) for n in notes] == [(i * 0.25, (i + 1) * 0.25) for i in range(16)]
    assert {n.velocity for n in notes} == {80}


def test_instruments_choose_the_program(tmp_path):
    tune = hand_tune()
    for name, program in (("fiddle", 40), ("flute", 73), ("accordion", 21), ("piano", 0)):
        write_tune_midi(tune, tmp_path / f"{name}.mid", instrument=name)
        midi = pretty_midi.PrettyMIDI(str(tmp_path / f"{name}.mid"))
        assert midi.instruments[0].program == program == INSTRUMENTS[name].program
    with pytest.raises(OptionError, match="unknown instrument 'kazoo'; choose one of: fiddle"):
        tune_to_performance(tune, instrument="kazoo")


# --- expressive playing -------------------------------------------------------------------------

def test_velocity_follows_the_beat():
    tune = parse(KESH)
    notes = tune_to_performance(tune, seed=3)
    # 6/8 from the start: downbeats at 0, 3, 6, ... eighths; second beats at 1.5 quarters
    seconds_per_eighth = 60 / tune_tempo(tune) / 2
    downbeat, second_beat, off_beat = [], [], []
    for note in notes:
        position = round(note.start / seconds_per_eighth) % 6
        (downbeat if position == 0 else second_beat if position == 3 else off_beat).append(
            note.velocity)
    assert statistics.mean(downbeat) > statistics.mean(second_beat) + 3
    assert statistics.mean(second_beat) > statistics.mean(off_beat) + 3


def test_hornpipes_lilt_and_reels_do_not():
    def off_beat_fraction(rhythm):
        tune = hand_tune(rhythm)
        notes = tune_to_performance(tune, seed=1, tempo=120)
        fractions = [(notes[i].start - notes[i - 1].start) / 0.5 for i in range(1, 16, 2)]
        return statistics.mean(fractions)  # where the off-beat eighth falls in its beat
    assert off_beat_fraction("hornpipe") == pytest.approx(0.60, abs=0.03)
    assert off_beat_fraction("strathspey") > 0.54
    assert off_beat_fraction("reel") == pytest.approx(0.50, abs=0.03)
    straight = tune_to_performance(hand_tune("hornpipe"), straight=True, tempo=120)
    assert straight[1].start == 0.25


def test_humanisation_is_seeded(tmp_path):
    tune = parse(KESH)
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        write_tune_midi(tune, tmp_path / f"{name}.mid", seed=seed)
    a, b, c = ((tmp_path / f"{name}.mid").read_bytes() for name in "abc")
    assert a == b and a != c
    notes = tune_to_performance(tune, seed=7)
    exact = tune_to_performance(tune, straight=True)
    shifts = [abs(x.start - y.start) for x, y in zip(notes, exact)]
    assert 0 < max(shifts) <= 0.03  # small: at most 2.5 standard deviations of 8 ms, and a lead
    assert len({n.velocity for n in notes}) > 5


def test_grace_notes_sound_just_before_the_beat_and_chords_together():
    tune = parse("X:1\nT:G\nM:4/4\nL:1/8\nQ:1/4=120\nK:D\nA2 {g}f2 [DA]4|]\n")
    notes = tune_to_performance(tune, straight=True)
    grace = next(n for n in notes if n.pitch == 79)
    main = next(n for n in notes if n.pitch == 78)
    assert main.start == pytest.approx(0.5) and grace.end == pytest.approx(main.start)
    assert 0 < grace.end - grace.start <= 0.04
    first = next(n for n in notes if n.pitch == 69 and n.start < 0.5)
    assert first.end == pytest.approx(grace.start)  # the grace takes its time from A
    chord = [n for n in notes if n.start == pytest.approx(1.0)]
    assert sorted(n.pitch for n in chord) == [62, 69] and len({n.end for n in chord}) == 1


def test_a_tune_without_notes_is_a_midi_error(tmp_path):
    with pytest.raises(MidiError, match="no notes"):
        write_tune_midi(Tune(fields=[("T", "Empty")]), tmp_path / "empty.mid")
    assert not (tmp_path / "empty.mid").exists()


# --- the files, read by other tools -------------------------------------------------------------

def test_files_load_in_pretty_midi_and_music21(tmp_path):
    import music21

    tune = parse(KESH)
    write_tune_midi(tune, tmp_path / "kesh.mid", instrument="flute")
    midi = pretty_midi.PrettyMIDI(str(tmp_path / "kesh.mid"))
    assert midi.get_tempo_changes()[1][0] == pytest.approx(tune_tempo(tune), rel=1e-4)
    assert [(s.numerator, s.denominator) for s in midi.time_signature_changes] == [(6, 8)]
    score = music21.converter.parse(str(tmp_path / "kesh.mid"))
    pitches = [p.midi for p in score.flatten().pitches]
    assert pitches == [n.pitch for n in tune_to_performance(tune, straight=True)]
    info = read_midi_info(tmp_path / "kesh.mid")
    assert (info.meter.numerator, info.meter.denominator) == (6, 8)
    assert info.key.accidentals == tune.key.accidentals


@pytest.mark.skipif(shutil.which("midi2abc") is None, reason="abcmidi's midi2abc is not installed")
@pytest.mark.parametrize("abc", [
    KESH,
    "X:2\nT:Chromatic\nR:hornpipe\nM:4/4\nL:1/8\nK:Ddor\n(3ABc dc ^c=cBA|_B2 ^G2 A4|F,2 a'2 d4|]\n",
], ids=["kesh", "accidentals"])
def test_midi2abc_gives_back_the_same_pitches(abc, tmp_path):
    tune = parse(abc)
    for straight in (True, False):
        path = tmp_path / f"{straight}.mid"
        write_tune_midi(tune, path, straight=straight, seed=2)
        text = subprocess.run(["midi2abc", str(path)], capture_output=True, text=True,
                              check=True).stdout
        back = parse(text)
        assert [n.pitch for n in back.notes] == [n.pitch for n in tune.unfold()]


# --- render -------------------------------------------------------------------------------------

def test_render_chooses_the_format_by_suffix(tmp_path):
    tune = parse(KESH)
    render(tune, tmp_path / "kesh.mid", straight=True)
    assert len(read_performance(tmp_path / "kesh.mid")) == 92
    render(tune, tmp_path / "kesh.abc")
    assert parse((tmp_path / "kesh.abc").read_text()).unfold() == tune.unfold()
    with pytest.raises(OptionError, match="exists; pass --force"):
        render(tune, tmp_path / "kesh.mid")
    render(tune, tmp_path / "kesh.mid", force=True, instrument="harp")
    with pytest.raises(OptionError, match="unknown format"):
        render(tune, tmp_path / "kesh.doc")
    with pytest.raises(OptionError, match="takes no option"):
        render(tune, tmp_path / "other.abc", straight=True)


def test_slug():
    assert slug("The Kesh") == "the-kesh"
    assert slug("Ríl Mhór, The (Big Reel)") == "ril-mhor-the-big-reel"
    assert slug("???", fallback="tune-3") == "tune-3"


def test_render_command(tmp_path):
    book = tmp_path / "book.abc"
    book.write_text(KESH + "\nX:2\nT:The Kesh\nR:reel\nM:4/4\nL:1/8\nK:D\nABcd efga|]\n\n"
                    "X:3\nT:Broken\nM:4/4\nK:G\nAB ]|\n")
    runner = CliRunner()
    out = tmp_path / "out"
    result = runner.invoke(app, ["render", str(book), "--out", str(out), "--straight",
                                 "--instrument", "whistle"])
    assert result.exit_code == 1  # the third tune cannot be read
    assert sorted(p.name for p in out.iterdir()) == ["the-kesh-2.mid", "the-kesh.mid"]
    assert "tune X:3 'Broken'" in result.stderr and result.stderr.count("error:") == 1
    assert pretty_midi.PrettyMIDI(str(out / "the-kesh.mid")).instruments[0].program == 78
    assert len(read_performance(out / "the-kesh.mid")) == 92
    again = runner.invoke(app, ["render", str(book), "--out", str(out)])
    assert again.exit_code == 1 and "--force" in again.stderr
    before = (out / "the-kesh.mid").read_bytes()
    assert runner.invoke(app, ["render", str(book), "--out", str(out), "--force",
                               "--tempo", "100"]).exit_code == 1  # X:3 still broken
    assert (out / "the-kesh.mid").read_bytes() != before
    abc = runner.invoke(app, ["render", str(book), "--out", str(out), "--format", "abc"])
    assert (out / "the-kesh.abc").exists()
    svg = runner.invoke(app, ["render", str(book), "--out", str(out), "--format", "svg"])
    assert svg.exit_code == 1 and (out / "the-kesh.svg").exists()  # X:3 is still broken
    bad = runner.invoke(app, ["render", str(book), "--instrument", "kazoo", "--out", str(out),
                              "--force"])
    assert bad.exit_code != 0 and "unknown instrument" in bad.stderr and abc.exit_code == 1


# --- the performance corpus ---------------------------------------------------------------------

def test_tune_performances_are_reproducible_training_data():
    tunes = [parse(KESH), parse("X:2\nT:Reel\nR:reel\nM:4/4\nL:1/8\nK:D\n|:ABcd efga:|\n")]
    config = EventConfig()
    first = list(tune_performances(tunes, config, renderings=3, seed=5))
    again = list(tune_performances(tunes, config, renderings=3, seed=5))
    other = list(tune_performances(tunes, config, renderings=3, seed=6))
    assert len(first) == 6 and first == again and first != other
    assert all(0 <= i < config.vocab_size for ids in first for i in ids)
    assert len(events_to_notes(first[0], config)) == 92
    assert len({tuple(ids) for ids in first[:3]}) == 3  # three different renderings
    with pytest.raises(OptionError):
        list(tune_performances(tunes, instruments=("kazoo",)))


def test_midi_folder_performances(tmp_path):
    tune = parse(KESH)
    write_tune_midi(tune, tmp_path / "a.mid", straight=True)
    (tmp_path / "sub").mkdir()
    write_tune_midi(tune, tmp_path / "sub" / "b.MIDI")
    (tmp_path / "broken.mid").write_bytes(b"MThd\x00")
    (tmp_path / "notes.txt").write_text("not music")
    errors = []
    found = list(midi_folder_performances(tmp_path, on_error=lambda p, e: errors.append(p.name)))
    assert [path.name for path, _ in found] == ["a.mid", "b.MIDI"]
    assert errors == ["broken.mid"]
    assert len(events_to_notes(found[0][1])) == 92
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert len(list(midi_folder_performances(tmp_path, recursive=False))) == 1
    assert any("broken.mid" in str(w.message) for w in caught)
    with pytest.raises(MidiError, match="not a folder"):
        list(midi_folder_performances(tmp_path / "nowhere"))
