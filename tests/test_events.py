"""Performance RNN's event encoding: the vocabulary, each encoding and decoding rule on cases
worked out by hand, round trips on generated performances and on real MIDI files (music21's
testPrimitive, cross-checked with pretty_midi), reading (format 0/1, running status, tempo
changes, sustain, drums, selection), bad input and a fuzzed reader."""

from __future__ import annotations

import dataclasses
import os
import random
import warnings
from pathlib import Path

import mido
import music21
import numpy as np
import pretty_midi
import pytest
from typer.testing import CliRunner

from folkrnn.cli import app
from folkrnn.errors import MidiError, OptionError
from folkrnn.events import (
    EventConfig,
    PerformanceNote,
    event_names,
    events_to_notes,
    names_to_ids,
    notes_to_events,
)
from folkrnn.midi import MidiWarning, decode_to_midi, encode_midi, read_performance, write_performance

PRIMITIVES = Path(music21.__file__).parent / "midi" / "testPrimitive"
CONFIG = EventConfig()
STEP = 1 / CONFIG.steps_per_second


def names(notes, config=CONFIG):
    return event_names(notes_to_events(notes, config), config)


# --- the vocabulary -----------------------------------------------------------------------------

def test_default_vocabulary_is_performance_rnns_388():
    assert CONFIG.vocab_size == 388
    vocabulary = CONFIG.names()
    assert len(vocabulary) == len(set(vocabulary)) == 388
    assert vocabulary[0] == "NOTE_ON_0" and vocabulary[127] == "NOTE_ON_127"
    assert vocabulary[128] == "NOTE_OFF_0" and vocabulary[255] == "NOTE_OFF_127"
    assert vocabulary[256] == "TIME_SHIFT_1" and vocabulary[355] == "TIME_SHIFT_100"
    assert vocabulary[356] == "VELOCITY_1" and vocabulary[387] == "VELOCITY_32"


@pytest.mark.parametrize("config", [
    CONFIG,
    EventConfig(steps_per_second=125, max_shift_steps=50, velocity_bins=16, min_pitch=21,
                max_pitch=108),
    EventConfig(velocity_events=False),
])
def test_names_and_ids_are_inverse(config):
    vocabulary = config.names()
    assert len(vocabulary) == config.vocab_size
    assert names_to_ids(vocabulary, config) == list(range(config.vocab_size))
    assert event_names(range(config.vocab_size), config) == vocabulary


def test_config_is_stored_as_a_dict_and_checked():
    config = EventConfig(velocity_bins=16, min_pitch=21)
    stored = dataclasses.asdict(config)
    assert EventConfig.from_dict(stored) == config
    with pytest.raises(OptionError, match="unknown setting"):
        EventConfig.from_dict({**stored, "tempo": 1})
    with pytest.raises(OptionError):
        EventConfig(min_pitch=90, max_pitch=80)
    with pytest.raises(OptionError):
        EventConfig(velocity_bins=0)
    with pytest.raises(OptionError):
        CONFIG.name_to_id("NOTE_ON_128")
    with pytest.raises(OptionError):
        EventConfig(velocity_events=False).name_to_id("VELOCITY_3")


def test_velocity_bins_are_four_velocities_wide():
    # bin = (v - 1) // 4 + 1, decoded as 1 + (bin - 1) * 4
    for velocity in range(1, 128):
        velocity_bin = CONFIG.velocity_to_bin(velocity)
        assert velocity_bin == (velocity - 1) // 4 + 1
        low = CONFIG.bin_to_velocity(velocity_bin)
        assert low <= velocity < low + 4
    assert CONFIG.velocity_to_bin(1) == 1 and CONFIG.velocity_to_bin(127) == 32


# --- encoding rules, by hand --------------------------------------------------------------------

def test_a_chord_then_a_note():
    notes = [PerformanceNote(60, 0.0, 0.5, 80), PerformanceNote(64, 0.0, 0.5, 80),
             PerformanceNote(67, 0.5, 0.75, 100)]
    assert names(notes) == [
        "VELOCITY_20", "NOTE_ON_60", "NOTE_ON_64", "TIME_SHIFT_50",
        "NOTE_OFF_60", "NOTE_OFF_64", "VELOCITY_25", "NOTE_ON_67", "TIME_SHIFT_25", "NOTE_OFF_67"]


def test_velocity_event_only_when_the_bin_changes():
    # 80 and 78 share bin 20 (77..80); 81 is bin 21
    notes = [PerformanceNote(60, 0.0, 0.1, 80), PerformanceNote(62, 0.1, 0.2, 78),
             PerformanceNote(64, 0.2, 0.3, 81)]
    got = [name for name in names(notes) if name.startswith("VELOCITY")]
    assert got == ["VELOCITY_20", "VELOCITY_21"]
    assert not any(n.startswith("VELOCITY") for n in names(notes, EventConfig(velocity_events=False)))


def test_note_offs_come_before_note_ons_at_the_same_step():
    # the note starting at 0.2 s is earlier in time order than the one ending then
    notes = [PerformanceNote(60, 0.0, 0.2, 64), PerformanceNote(72, 0.2, 0.4, 64),
             PerformanceNote(48, 0.1, 0.2, 64)]
    got = names(notes)
    at_step_20 = got[got.index("TIME_SHIFT_10", 3) + 1:]
    assert at_step_20[:3] == ["NOTE_OFF_60", "NOTE_OFF_48", "NOTE_ON_72"]


def test_long_gaps_chain_time_shifts():
    notes = [PerformanceNote(60, 0.0, 0.01, 64), PerformanceNote(60, 2.51, 2.52, 64)]
    got = names(notes)
    assert got[got.index("NOTE_OFF_60") + 1:got.index("NOTE_ON_60", 2)] == [
        "TIME_SHIFT_100", "TIME_SHIFT_100", "TIME_SHIFT_50"]


def test_leading_silence_is_kept_and_times_round_half_up():
    # 0.125 s is 12.5 steps -> 13; 0.3049 s is 30.49 steps -> 30; the shift precedes the velocity
    got = names([PerformanceNote(60, 0.125, 0.3049, 64)])
    assert got == ["TIME_SHIFT_13", "VELOCITY_16", "NOTE_ON_60", "TIME_SHIFT_17", "NOTE_OFF_60"]


def test_a_note_that_rounds_to_zero_length_gets_one_step():
    notes = [PerformanceNote(60, 0.5, 0.501, 64), PerformanceNote(62, 0.5, 0.502, 64)]
    assert names(notes) == ["TIME_SHIFT_50", "VELOCITY_16", "NOTE_ON_60", "NOTE_ON_62",
                            "TIME_SHIFT_1", "NOTE_OFF_60", "NOTE_OFF_62"]
    decoded = events_to_notes(notes_to_events(notes))
    assert [(n.pitch, round(n.start, 6), round(n.end, 6)) for n in decoded] == [
        (60, 0.5, 0.51), (62, 0.5, 0.51)]


def test_a_note_of_no_length_is_left_out_and_cuts_no_real_note_short():
    # music21's test16.mid: a zero-length G4 and a real one (474 ms) start at one tick; the silent
    # one used to take the real one's NOTE_OFF, shortening it to 10 ms
    notes = [PerformanceNote(67, 0.25, 0.25, 80), PerformanceNote(67, 0.25, 0.724, 80)]
    assert names(notes) == ["TIME_SHIFT_25", "VELOCITY_20", "NOTE_ON_67", "TIME_SHIFT_47", "NOTE_OFF_67"]
    [note] = events_to_notes(notes_to_events(notes))
    assert (note.pitch, note.start, round(note.end, 6)) == (67, 0.25, 0.72)


def test_music21_test16_round_trips_with_the_real_note_whole(tmp_path):
    path = PRIMITIVES / "test16.mid"
    ids = encode_midi(path)
    decode_to_midi(ids, tmp_path / "back.mid")
    back = read_performance(tmp_path / "back.mid")
    sounding = [n for n in read_performance(path) if n.end > n.start]
    assert [(n.pitch, round(n.start, 2), round(n.end - n.start, 2)) for n in back] == [
        (n.pitch, round(n.start, 2), round(n.end - n.start, 2)) for n in sounding]
    assert round(back[0].end - back[0].start, 2) == 0.47  # not 0.01


def test_notes_outside_the_pitch_range_are_left_out():
    config = EventConfig(min_pitch=48, max_pitch=84)
    ids = notes_to_events([PerformanceNote(30, 0, 0.1, 64), PerformanceNote(60, 0, 0.1, 64)], config)
    assert [n.pitch for n in events_to_notes(ids, config)] == [60]


# --- decoding rules, by hand --------------------------------------------------------------------

def test_open_notes_of_a_pitch_close_first_in_first_out():
    ids = names_to_ids(["VELOCITY_10", "NOTE_ON_60", "TIME_SHIFT_10", "VELOCITY_20", "NOTE_ON_60",
                        "TIME_SHIFT_10", "NOTE_OFF_60", "TIME_SHIFT_10", "NOTE_OFF_60"])
    notes = events_to_notes(ids)
    assert [(round(n.start, 6), round(n.end, 6), n.velocity) for n in notes] == [
        (0.0, 0.2, 37), (0.1, 0.3, 77)]


def test_a_stray_note_off_is_ignored_and_velocity_defaults_to_100():
    ids = names_to_ids(["NOTE_OFF_62", "NOTE_ON_60", "TIME_SHIFT_5", "NOTE_OFF_60", "NOTE_OFF_60"])
    notes = events_to_notes(ids)
    assert [(n.pitch, n.velocity) for n in notes] == [(60, 100)]


def test_a_note_never_closed_ends_at_the_end_capped_at_five_seconds():
    ids = names_to_ids(["NOTE_ON_60", "TIME_SHIFT_50", "NOTE_ON_62", "TIME_SHIFT_100"]
                       + ["TIME_SHIFT_100"] * 6)
    notes = {n.pitch: n for n in events_to_notes(ids)}
    assert notes[60].end - notes[60].start == pytest.approx(5.0)
    # 62 opens at 0.5 s; the sequence ends at 7.5 s; 5 s later is 5.5 s
    assert notes[62].start == pytest.approx(0.5) and notes[62].end == pytest.approx(5.5)
    short = events_to_notes(names_to_ids(["NOTE_ON_60", "TIME_SHIFT_30"]))
    assert short[0].end == pytest.approx(0.3)


def test_a_note_opened_and_closed_on_one_step_is_dropped():
    assert events_to_notes(names_to_ids(["NOTE_ON_60", "NOTE_OFF_60", "TIME_SHIFT_3"])) == []


def test_an_id_outside_the_vocabulary_is_a_midi_error():
    with pytest.raises(MidiError, match="outside the vocabulary"):
        events_to_notes([60, 400])


# --- round trips --------------------------------------------------------------------------------

def random_performance(seed: int, count: int = 300) -> list[PerformanceNote]:
    """Chords, long gaps, very short and very long notes; no two notes of a pitch overlap."""
    rng = random.Random(seed)
    notes, free_at, time = [], {}, 0.0
    while len(notes) < count:
        time += rng.choice([0.0, 0.0, rng.uniform(0.001, 0.3), rng.uniform(1.0, 3.5)])
        for _ in range(rng.choice([1, 1, 1, 2, 3, 4])):  # a chord now and then
            pitch = rng.randint(21, 108)
            if free_at.get(pitch, -1.0) > time:
                continue
            length = rng.choice([rng.uniform(0.0, 0.004), rng.uniform(0.01, 0.5),
                                 rng.uniform(0.5, 4.0), rng.uniform(5.0, 12.0)])
            note = PerformanceNote(pitch, round(time, 6), round(time + length, 6), rng.randint(1, 127))
            free_at[pitch] = note.end + 0.02  # a gap, so offsets and onsets never tie
            notes.append(note)
    return notes


def assert_same_performance(original, decoded, tolerance: float, config=CONFIG):
    """Every note back: same pitch, onset and offset within ``tolerance`` (zero-length ones get a
    step), velocity in the same bin."""
    assert len(decoded) == len(original)
    step = 1 / config.steps_per_second
    key = lambda n: (round(n.start * config.steps_per_second + 1e-9), n.pitch)  # noqa: E731
    for a, b in zip(sorted(original, key=key), sorted(decoded, key=key)):
        assert a.pitch == b.pitch
        assert abs(a.start - b.start) <= tolerance, (a, b)
        end = max(a.end, a.start + step / 2)  # a note that rounds to zero length gets one step
        assert abs(end - b.end) <= tolerance + (step if a.end - a.start < step else 0), (a, b)
        if config.velocity_events:
            assert config.velocity_to_bin(a.velocity) == config.velocity_to_bin(b.velocity)


@pytest.mark.parametrize("seed", range(8))
def test_random_performances_round_trip_in_memory(seed):
    original = random_performance(seed)
    decoded = events_to_notes(notes_to_events(original))
    assert_same_performance(original, decoded, STEP / 2 + 1e-9)


def test_round_trip_with_another_config():
    config = EventConfig(steps_per_second=125, max_shift_steps=37, velocity_bins=16)
    original = random_performance(99)
    decoded = events_to_notes(notes_to_events(original, config), config)
    assert_same_performance(original, decoded, 0.5 / 125 + 1e-9, config)


def tempo_map_file(notes, tempos, path: Path, ticks_per_beat=480, running_status=False,
                   file_format=1):
    """Write notes (seconds) under a tempo map [(tick, microseconds per quarter)] with mido."""
    def to_tick(seconds):
        elapsed = 0.0
        for i, (at, tempo) in enumerate(tempos):
            nxt = tempos[i + 1][0] if i + 1 < len(tempos) else None
            span = (nxt - at) * tempo / 1e6 / ticks_per_beat if nxt is not None else None
            if span is None or seconds < elapsed + span:
                return at + round((seconds - elapsed) * 1e6 * ticks_per_beat / tempo)
            elapsed += span
        raise AssertionError
    events = [(to_tick(n.start), 1, mido.Message("note_on", note=n.pitch, velocity=n.velocity))
              for n in notes]
    # a note at least a tick long, so its note-off never sorts before its own note-on
    events += [(max(to_tick(n.end), to_tick(n.start) + 1), 0,
                mido.Message("note_off", note=n.pitch, velocity=0)) for n in notes]
    events += [(tick, -1, mido.MetaMessage("set_tempo", tempo=tempo)) for tick, tempo in tempos]
    events.sort(key=lambda e: (e[0], e[1]))
    midi = mido.MidiFile(type=file_format, ticks_per_beat=ticks_per_beat)
    track = mido.MidiTrack()
    last = 0
    for tick, _, message in events:
        track.append(message.copy(time=tick - last))
        last = tick
    midi.tracks.append(track)
    midi.save(str(path))
    return max(tempo for _, tempo in tempos) / 1e6 / ticks_per_beat  # longest tick, seconds


@pytest.mark.parametrize("seed", range(3))
def test_random_performances_round_trip_through_files_with_tempo_changes(tmp_path, seed):
    original = random_performance(seed, 200)
    tempos = [(0, 500_000), (2_000, 300_000), (9_000, 1_100_000), (20_000, 650_000)]
    tick = tempo_map_file(original, tempos, tmp_path / "in.mid", file_format=seed % 2)
    ids = encode_midi(tmp_path / "in.mid")
    assert_same_performance(original, events_to_notes(ids), STEP / 2 + tick)
    # and back out as a file, read again: pretty_midi's ticks (480 a quarter at 120) add a little
    decode_to_midi(ids, tmp_path / "out.mid")
    assert_same_performance(original, read_performance(tmp_path / "out.mid"),
                            STEP / 2 + tick + 1 / 960)


def single_instrument_primitives() -> list[Path]:
    out = []
    for path in sorted(PRIMITIVES.glob("*.mid")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # pretty_midi on meta events
            midi = pretty_midi.PrettyMIDI(str(path))
        if len(midi.instruments) == 1:
            out.append(path)
    return out


def test_music21_primitives_are_there():
    assert len(single_instrument_primitives()) >= 10


@pytest.mark.parametrize("path", single_instrument_primitives(), ids=lambda p: p.name)
def test_real_single_instrument_files_round_trip(path, tmp_path):
    # the reader agrees with pretty_midi (an independent reader) where no pedal is involved
    reference = pretty_midi.PrettyMIDI(str(path))
    instrument = reference.instruments[0]
    has_pedal = any(cc.number == 64 for cc in instrument.control_changes)
    ours = read_performance(path)
    if not has_pedal:
        # pretty_midi folds a zero-length note into the next note-on of its pitch; we keep it
        expected = sorted((n.pitch, n.start, n.end) for n in instrument.notes)
        got = sorted((n.pitch, n.start, n.end) for n in ours if n.end > n.start)
        assert len(got) == len(expected)
        for a, b in zip(got, expected):
            assert a[0] == b[0] and a[1:] == pytest.approx(b[1:], abs=1e-5)
    tick = max(60 / tempo for tempo in reference.get_tempo_changes()[1]) / reference.resolution
    ids = encode_midi(path)
    sounding = [n for n in ours if n.end > n.start]  # a note of no length is silent: not encoded
    assert_same_performance(sounding, events_to_notes(ids), STEP / 2 + tick)
    decode_to_midi(ids, tmp_path / "back.mid")
    assert_same_performance(sounding, read_performance(tmp_path / "back.mid"), STEP / 2 + tick + 1 / 960)


@pytest.mark.parametrize("name", ["test02.mid", "test03.mid", "test04.mid", "test17.mid"])
def test_multi_instrument_files_encode_and_decode(name, tmp_path):
    path = PRIMITIVES / name
    ids = encode_midi(path)
    assert ids and max(ids) < CONFIG.vocab_size
    notes = decode_to_midi(ids, tmp_path / "merged.mid")
    assert notes
    assert len(pretty_midi.PrettyMIDI(str(tmp_path / "merged.mid")).instruments[0].notes) == len(notes)


def test_one_instrument_is_selected_by_program_or_name():
    path = PRIMITIVES / "test04.mid"
    reference = pretty_midi.PrettyMIDI(str(path))
    flutes = sum(len(i.notes) for i in reference.instruments if i.program == 73)
    by_program = event_names(encode_midi(path, program=73))
    assert sum(name.startswith("NOTE_ON") for name in by_program) == flutes
    by_name = event_names(encode_midi(path, instrument="flute"))
    assert by_name == by_program
    with pytest.raises(MidiError, match="no instrument with program 12; it has: program 45"):
        encode_midi(path, program=12)


# --- reading: running status, drums, sustain ---------------------------------------------------

def chunk(kind: bytes, data: bytes) -> bytes:
    return kind + len(data).to_bytes(4, "big") + data


def test_running_status_and_format_0(tmp_path):
    # format 0, 96 ticks a quarter, 120 qpm; the second and third note-ons share one status byte,
    # and note-offs are note-ons of velocity 0
    track = bytes([0x00, 0x90, 60, 100,  # note on 60
                   0x30, 64, 90,  # +48 ticks: running status, note on 64
                   0x30, 60, 0,  # +48: note on 60 velocity 0 = off
                   0x00, 64, 0,  # note 64 off
                   0x00, 0xFF, 0x2F, 0x00])
    data = chunk(b"MThd", (0).to_bytes(2, "big") + (1).to_bytes(2, "big") + (96).to_bytes(2, "big"))
    (tmp_path / "rs.mid").write_bytes(data + chunk(b"MTrk", track))
    notes = read_performance(tmp_path / "rs.mid")
    assert [(n.pitch, n.start, n.end, n.velocity) for n in notes] == [
        (60, 0.0, 0.5, 100), (64, 0.25, 0.5, 90)]


def multitrack_file(path: Path, tracks: list[tuple[int, int, list]], ticks_per_beat=100):
    """tracks: (channel, program, [(tick, message kind, value1, value2)]) at 120 qpm."""
    midi = mido.MidiFile(type=1, ticks_per_beat=ticks_per_beat)
    for channel, program, events in tracks:
        track = mido.MidiTrack()
        track.append(mido.Message("program_change", channel=channel, program=program, time=0))
        last = 0
        for tick, kind, a, b in sorted(events, key=lambda e: (e[0], e[1] != "control_change")):
            if kind == "control_change":
                message = mido.Message(kind, channel=channel, control=a, value=b, time=tick - last)
            else:
                message = mido.Message(kind, channel=channel, note=a, velocity=b, time=tick - last)
            track.append(message)
            last = tick
        midi.tracks.append(track)
    midi.save(str(path))


def test_drums_are_skipped(tmp_path):
    drums = [(0, "note_on", 36, 100), (50, "note_off", 36, 0)]
    piano = [(0, "note_on", 60, 100), (100, "note_off", 60, 0)]
    multitrack_file(tmp_path / "band.mid", [(9, 0, drums), (0, 0, piano)])
    assert [n.pitch for n in read_performance(tmp_path / "band.mid")] == [60]
    multitrack_file(tmp_path / "drums.mid", [(9, 0, drums)])
    with pytest.raises(MidiError, match="only drum"):
        encode_midi(tmp_path / "drums.mid")


def test_the_sustain_pedal_extends_notes(tmp_path):
    # 100 ticks = 0.5 s. Pedal down at 0.25 s, up at 1.5 s.
    events = [
        (0, "note_on", 60, 80), (100, "note_off", 60, 0),  # released under the pedal: to 1.5 s
        (0, "note_on", 64, 80), (40, "note_off", 64, 0),  # released before the pedal: unchanged
        (20, "note_on", 67, 80), (60, "note_off", 67, 0),  # struck again at 0.8 s: ends there
        (160, "note_on", 67, 80), (180, "note_off", 67, 0),  # and sustained to 1.5 s
        (340, "note_on", 72, 80), (360, "note_off", 72, 0),  # after the pedal: unchanged
        (50, "control_change", 64, 127), (300, "control_change", 64, 0),
    ]
    multitrack_file(tmp_path / "pedal.mid", [(0, 0, events)])
    got = sorted((n.pitch, n.start, n.end) for n in read_performance(tmp_path / "pedal.mid"))
    assert got == [(60, 0.0, 1.5), (64, 0.0, 0.2), (67, 0.1, 0.8), (67, 0.8, 1.5), (72, 1.7, 1.8)]


def test_a_pedal_never_lifted_holds_to_the_end(tmp_path):
    events = [(0, "control_change", 64, 100), (0, "note_on", 60, 80), (20, "note_off", 60, 0),
              (200, "note_on", 62, 80), (400, "note_off", 62, 0)]
    multitrack_file(tmp_path / "held.mid", [(0, 0, events)])
    got = sorted((n.pitch, n.start, n.end) for n in read_performance(tmp_path / "held.mid"))
    assert got == [(60, 0.0, 2.0), (62, 1.0, 2.0)]


# --- bad input ----------------------------------------------------------------------------------

def one_line(error: Exception) -> str:
    text = str(error)
    assert "\n" not in text
    return text


def test_bad_files_get_one_line_midi_errors(tmp_path):
    good = (PRIMITIVES / "test03.mid").read_bytes()
    cases = {
        "empty.mid": b"",
        "text.mid": b"X:1\nT:not midi\nK:G\nGAB|\n",
        "header-only.mid": good[:10],
        "truncated.mid": good[: len(good) // 2],
        "smpte.mid": good[:12] + bytes([0xE7, 0x28]) + good[14:],
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(MidiError) as caught:
            encode_midi(tmp_path / name)
        assert one_line(caught.value).startswith(str(tmp_path / name)), name
    with pytest.raises(MidiError, match="cannot be read"):
        encode_midi(tmp_path / "missing.mid")
    with pytest.raises(MidiError, match="folder"):
        encode_midi(tmp_path)


def test_a_file_with_no_notes(tmp_path):
    midi = pretty_midi.PrettyMIDI()
    midi.instruments.append(pretty_midi.Instrument(0))
    midi.write(str(tmp_path / "silent.mid"))
    with pytest.raises(MidiError, match="has no notes"):
        encode_midi(tmp_path / "silent.mid")


def test_absurd_tempos(tmp_path):
    fast = mido.MidiFile(type=0, ticks_per_beat=480)
    fast.tracks.append(mido.MidiTrack([
        mido.MetaMessage("set_tempo", tempo=30, time=0),  # 2,000,000 quarter notes a minute
        mido.Message("note_on", note=60, velocity=64, time=0),
        mido.Message("note_off", note=60, velocity=0, time=480)]))
    fast.save(str(tmp_path / "fast.mid"))
    with pytest.warns(MidiWarning, match="implausible tempo"):
        ids = encode_midi(tmp_path / "fast.mid")
    assert event_names(ids)[-2:] == ["TIME_SHIFT_1", "NOTE_OFF_60"]  # a clear result: one step
    midi = mido.MidiFile(tmp_path / "fast.mid")
    midi.tracks[0][0] = mido.MetaMessage("set_tempo", tempo=0, time=0)
    midi.save(str(tmp_path / "zero.mid"))
    with pytest.raises(MidiError, match="impossible tempo"):
        encode_midi(tmp_path / "zero.mid")
    # a tempo that stretches a few ticks over days
    slow = mido.MidiFile(type=0, ticks_per_beat=1)
    slow.tracks.append(mido.MidiTrack([
        mido.MetaMessage("set_tempo", tempo=16_777_215, time=0),
        mido.Message("note_on", note=60, velocity=64, time=0),
        mido.Message("note_off", note=60, velocity=0, time=200_000)]))
    slow.save(str(tmp_path / "slow.mid"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MidiWarning)
        with pytest.raises(MidiError, match="more than a day"):
            encode_midi(tmp_path / "slow.mid")


@pytest.mark.slow
def test_a_file_of_100k_notes_encodes_quickly(tmp_path):
    import time

    rng = np.random.default_rng(0)
    count = 100_000
    starts = np.sort(rng.uniform(0, 3000, count))
    notes = [PerformanceNote(int(p), float(s), float(s + d), int(v)) for p, s, d, v in zip(
        rng.integers(21, 109, count), starts, rng.uniform(0.01, 1.0, count),
        rng.integers(1, 128, count))]
    write_performance(notes, tmp_path / "big.mid")
    started = time.perf_counter()
    ids = encode_midi(tmp_path / "big.mid")
    assert time.perf_counter() - started < 5.0
    kinds = event_names(ids)
    assert sum(name.startswith("NOTE_ON") for name in kinds) == count


def test_fuzzed_files_raise_only_midi_errors(tmp_path):
    """Truncated and mutated bytes of real files: a result of valid ids, or a MidiError."""
    rng = random.Random(1)
    sources = [(PRIMITIVES / name).read_bytes() for name in ("test03.mid", "test09.mid", "test14.mid")]
    path = tmp_path / "fuzz.mid"
    outcomes = {"ok": 0, "error": 0}
    for trial in range(450):
        data = bytearray(sources[trial % len(sources)])
        how = trial % 3
        if how == 0:
            data = data[: rng.randrange(len(data))]
        elif how == 1:
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(14, len(data))] = rng.randrange(256)
        else:
            at = rng.randrange(14, len(data))
            data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        path.write_bytes(bytes(data))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MidiWarning)
            try:
                ids = encode_midi(path)
            except MidiError as error:
                one_line(error)
                outcomes["error"] += 1
                continue
        assert all(0 <= i < CONFIG.vocab_size for i in ids)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MidiWarning)
            assert all(0 <= n.pitch <= 127 for n in read_performance(path))
        outcomes["ok"] += 1
    assert outcomes["error"] > 0


# --- writing ------------------------------------------------------------------------------------

def test_writing_is_atomic(tmp_path, monkeypatch):
    ids = notes_to_events([PerformanceNote(60, 0, 0.5, 80)])
    target = tmp_path / "song.mid"
    target.write_bytes(b"precious")

    def broken_replace(source, destination):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(MidiError, match="No space left"):
        decode_to_midi(ids, target)
    monkeypatch.undo()
    assert target.read_bytes() == b"precious"
    assert [p.name for p in tmp_path.iterdir()] == ["song.mid"]  # no temporary file left
    with pytest.raises(MidiError, match="cannot write"):
        decode_to_midi(ids, tmp_path / "no" / "such" / "folder.mid")


# --- the command --------------------------------------------------------------------------------

def test_encode_command_prints_ids_or_names(tmp_path):
    runner = CliRunner()
    path = PRIMITIVES / "test05.mid"
    result = runner.invoke(app, ["encode", str(path)])
    assert result.exit_code == 0
    assert [int(x) for x in result.stdout.split()] == encode_midi(path)
    result = runner.invoke(app, ["encode", str(path), "--names"])
    assert result.stdout.split() == event_names(encode_midi(path))
    (tmp_path / "bad.mid").write_bytes(b"MThd\x00\x00")
    result = runner.invoke(app, ["encode", str(tmp_path / "bad.mid")])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert "Traceback" not in result.output
