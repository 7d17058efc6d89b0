"""performance_quality: each figure on hand-made note lists with answers worked out by hand, onset
regularity telling a steady pulse from random onsets, the transcription check on a played tune, the
table and its targets, real performances from a MIDI corpus, and a piano roll."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import KESH
from folkrnn.events import EventConfig, PerformanceNote, notes_to_events
from folkrnn.performance_quality import (
    ROWS,
    TARGETS,
    check_transcription,
    control_counts,
    crop,
    grid_fit,
    long_notes,
    names_to_controls,
    note_array,
    notes_per_second,
    onset_regularity,
    onsets,
    performance_figures,
    performance_table,
    pitch_range,
    plot_piano_rolls,
    polyphony,
    real_performances,
    table_lines,
)

N = PerformanceNote


def metronome(period: float, seconds: float = 30.0, jitter: float = 0.008, seed: int = 0) -> list[N]:
    """A note every ``period`` s, each onset moved by up to ``jitter`` s, each note half a period."""
    rng = np.random.default_rng(seed)
    starts = np.arange(0.5, seconds, period) + rng.uniform(-jitter, jitter, len(np.arange(0.5, seconds, period)))
    return [N(60 + k % 5, float(s), float(s + period / 2)) for k, s in enumerate(starts)]


def random_onsets(per_second: float, seconds: float = 30.0, seed: int = 0) -> list[N]:
    rng = np.random.default_rng(seed)
    starts = np.sort(rng.uniform(0, seconds, int(per_second * seconds)))
    return [N(int(rng.integers(55, 80)), float(s), float(s) + 0.1) for s in starts]


def kesh_played(seed: int = 0, straight: bool = False, tempo: float | None = None,
                downbeat: bool = False) -> list[N]:
    from folkrnn.abc import parse
    from folkrnn.midi import tune_to_performance

    return tune_to_performance(parse(KESH), straight=straight, seed=seed, tempo=tempo, downbeat=downbeat)


# --- one performance, by hand ------------------------------------------------------------------


def test_two_overlapping_notes_sound_more_than_one_at_once():
    # 0-1 s and 0.5-1.5 s: 2 s of notes over 1.5 s of sound, two at once for 0.5 s
    mean, most, heard = polyphony([N(60, 0.0, 1.0), N(64, 0.5, 1.5)])
    assert mean == pytest.approx(2 / 1.5) and mean > 1 and most == 2 and heard == pytest.approx(1.5)


def test_a_melody_sounds_one_note_at_a_time():
    # a note ending as the next starts does not overlap it; the silence between does not count
    mean, most, heard = polyphony([N(60, 0.0, 0.5), N(62, 0.5, 1.0), N(64, 2.0, 2.5)])
    assert (mean, most, heard) == (pytest.approx(1.0), 1, pytest.approx(1.5))
    # a chord of three for 1 s inside a 2 s note: (2 + 3 * 1) / 2 = 2.5 on average, 4 at most
    mean, most, _ = polyphony([N(48, 0, 2), N(60, 0.5, 1.5), N(64, 0.5, 1.5), N(67, 0.5, 1.5)])
    assert mean == pytest.approx(2.5) and most == 4
    assert math.isnan(polyphony([])[0]) and polyphony([])[1] == 0
    assert polyphony([N(60, 1.0, 1.0)])[1] == 0  # a note of no length is no note


def test_long_notes_density_and_range_by_hand():
    notes = [N(60, 0.0, 0.5), N(67, 0.5, 3.0), N(72, 1.0, 3.0), N(55, 3.0, 4.0)]
    assert long_notes(notes) == (1, 4)  # 2.5 s is long; exactly 2 s is not
    assert notes_per_second(notes) == pytest.approx(4 / 4.0)  # 4 notes from 0 s to 4 s
    assert pitch_range(notes) == 72 - 55
    assert pitch_range([]) == 0 and math.isnan(notes_per_second([]))


def test_note_arrays_lists_and_cropping_agree():
    notes = [N(64, 1.0, 2.0, 90), N(60, 0.0, 0.5, 70), N(62, 0.0, 0.0)]
    array = note_array(notes)
    assert array.tolist() == [[60, 0.0, 0.5, 70], [64, 1.0, 2.0, 90]]  # sorted, no empty note
    assert note_array(np.array([[64, 1.0, 2.0], [60, 0.0, 0.5]]))[:, 3].tolist() == [100, 100]
    assert polyphony(array) == polyphony(notes)
    with pytest.raises(ValueError):
        note_array(np.zeros((2, 5)))
    cropped = crop(notes + [N(67, 3.0, 4.0)], 1.5)
    assert cropped[:, :3].tolist() == [[60, 0.0, 0.5], [64, 1.0, 1.5]]


def test_a_chord_is_one_onset():
    notes = [N(60, 1.0, 2.0), N(64, 1.01, 2.0), N(67, 1.015, 2.0), N(72, 1.5, 2.0)]
    assert onsets(notes).tolist() == [1.0, 1.5]


# --- onset regularity ----------------------------------------------------------------------------


@pytest.mark.parametrize("period", [0.15, 0.3, 0.5, 0.9])
def test_a_metronome_is_regular(period):
    notes = metronome(period)
    assert onset_regularity(notes) > 0.8
    share, fitted = grid_fit(notes)
    assert share == 1.0 and fitted == pytest.approx(period, rel=0.01) or \
        fitted == pytest.approx(period / round(period / fitted), rel=0.01)


@pytest.mark.parametrize("per_second", [1, 3, 6, 10])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_onsets_are_not_regular(per_second, seed):
    notes = random_onsets(per_second, seed=seed)
    assert onset_regularity(notes) < 0.25
    assert grid_fit(notes)[0] < 0.7


def test_a_played_tune_is_regular_and_chords_do_not_change_it():
    played = kesh_played(seed=3)
    value = onset_regularity(played)
    assert value > 0.6
    # every note doubled an octave up, a few ms late: the same onsets
    doubled = played + [N(n.pitch + 12, n.start + 0.005, n.end) for n in played]
    assert onset_regularity(doubled) == pytest.approx(value, abs=0.02)
    # the same notes at random times are not regular
    rng = np.random.default_rng(0)
    shuffled = [N(n.pitch, s, s + n.duration) for n, s in
                zip(played, np.sort(rng.uniform(0, played[-1].end, len(played))))]
    assert onset_regularity(shuffled) < 0.25 < value
    assert math.isnan(onset_regularity(played[:5]))  # too few onsets to say


# --- transcription -------------------------------------------------------------------------------


def test_a_played_tune_transcribes_to_clean_abc():
    check = check_transcription(kesh_played(seed=1))
    assert check.transcribed and check.valid and check.steady_meter, check.problems
    assert check.abc.startswith("X:1") and "M:" in check.abc and check.meter == "6/8"
    assert check.abc2midi_clean in (True, None)  # None: abc2midi is not installed
    assert check.ok and check.to_dict()["ok"]


@pytest.mark.parametrize("hints, meter, qpm", [
    # the Kesh's own: 6/8 at 116 dotted quarters a minute is 174 quarters a minute
    ({"tempo": 116, "meter": "6/8", "key": 1, "density": 5}, "6/8", 174),
    # meter and tempo are taken as given, not estimated: 3/4 at 174 quarters a minute
    ({"tempo": 174, "meter": "3/4"}, "3/4", 174),
])
def test_a_steady_performance_transcribes_at_its_controls(hints, meter, qpm):
    played = kesh_played(seed=2, tempo=116, downbeat=True)  # time 0 a downbeat (the Kesh has no pickup)
    check = check_transcription(played, hints=hints)
    assert check.hinted and check.meter == meter and check.qpm == qpm, check.problems
    assert f"M:{meter}" in check.abc and f"Q:1/4={qpm}" in check.abc
    assert check.transcribed and check.valid and check.steady_meter, check.problems
    if "key" in hints:  # one sharp: G major, as the file's key signature says
        assert "K:G" in check.abc and check.ok
    # without a tempo or a meter the hints are not enough: all three are estimated
    assert not check_transcription(played, hints={"meter": "3/4"}).hinted
    assert not check_transcription(played, hints={}).hinted


def test_controls_are_read_from_the_names_that_open_a_sequence():
    names = ["<s>", "TEMPO_120", "METER_6/8", "KEY_-2", "DENSITY_5", "VELOCITY_20", "NOTE_ON_62",
             "TIME_SHIFT_10", "NOTE_OFF_62", "</s>"]
    assert names_to_controls(names) == {"tempo": 120, "meter": "6/8", "key": -2, "density": 5}
    unknown = ["<s>", "TEMPO_UNKNOWN", "METER_UNKNOWN", "KEY_UNKNOWN", "DENSITY_3", "NOTE_ON_60"]
    assert names_to_controls(unknown) == {"density": 3}
    # a sequence without controls, and names after the first event (no control there), give nothing
    assert names_to_controls(["<s>", "NOTE_ON_60", "TEMPO_120", "</s>"]) == {}
    assert names_to_controls(["TEMPO_7", "METER_5/4", "KEY_9"]) == {}  # values no block holds
    assert control_counts([{"meter": "6/8"}, {"meter": "6/8"}, {"meter": "4/4"}, {}], "meter") == \
        {"6/8": 2, "4/4": 1, "?": 1}
    assert control_counts([{}, {}], "tempo") == {}


def test_nothing_to_transcribe_is_a_failure_not_an_error():
    check = check_transcription([])
    assert not check.transcribed and not check.ok and "no notes" in check.problems[0]


def test_an_abc2midi_fault_fails_the_check(monkeypatch):
    import folkrnn.performance_quality as quality  # patched where check_transcription looks them up

    monkeypatch.setattr(quality, "abc2midi_available", lambda: True)
    monkeypatch.setattr(quality, "abc2midi_check",
                        lambda text: ["line 6, col 3: warning: Track 0 Bar 1 has 5 time units while "
                                      "the time signature has 6", "line 7, col 1: warning: Grace "
                                      "sequence exceeds host note. Grace sequence cut off."])
    check = check_transcription(kesh_played(seed=1))
    assert check.valid and check.abc2midi_clean is False and not check.ok
    assert len(check.problems) == 1 and "time units" in check.problems[0]  # grace notes are no fault
    assert check_transcription(kesh_played(seed=1), abc2midi=False).abc2midi_clean is None


# --- many performances ---------------------------------------------------------------------------


def test_the_table_measures_both_sides_and_checks_the_targets():
    real = [kesh_played(seed=seed) for seed in range(4)]
    # a model that plays sustained clusters at random: polyphonic, long notes, wide, irregular
    rng = np.random.default_rng(0)
    generated = []
    for _ in range(4):
        starts = np.sort(rng.uniform(0, 20, 60))
        generated.append([N(int(rng.integers(40, 90)), float(s), float(s + rng.uniform(0.1, 3.0)))
                          for s in starts])
    table = performance_table(generated, real, seconds=15, transcribe=False)
    real_figures, figures, met = table["real"], table["generated"], table["met"]
    assert real_figures["mean_sounding"] == pytest.approx(1.0, abs=0.01) and real_figures["long_note_share"] == 0
    assert real_figures["pitch_range_median"] == pytest.approx(13, abs=1)
    assert real_figures["onset_regularity_median"] > 0.6 > 0.25 > figures["onset_regularity_median"]
    assert figures["mean_sounding"] > 2 and figures["long_note_share"] > 0.2
    assert figures["max_sounding_median"] >= 4 and real_figures["max_sounding_median"] <= 2
    assert met["mean_sounding"] is False and met["long_note_share"] is False
    assert met["pitch_range_median"] is False and met["onset_regularity_median"] is False
    assert met["transcribed_share"] is None and figures["transcribed_share"] is None
    low, high = real_figures["notes_per_second_iqr"]
    assert low <= real_figures["notes_per_second_median"] <= high
    assert set(table["rows"]) == set(ROWS) and set(TARGETS) <= set(met)
    # crop: no note of either side lasts past 15 s
    assert figures["notes"] < 240 and real_figures["notes"] < sum(len(piece) for piece in real)
    lines = table_lines(table, markdown=True)
    assert len(lines) == 2 + len(ROWS) and "(NOT met)" in lines[2] and "IQR" in "".join(lines)


def test_real_performances_against_themselves_meet_every_target():
    # the same tune at five tempos, alternately on each side
    pieces = [kesh_played(seed=seed, tempo=100 + 4 * seed) for seed in range(5)]
    table = performance_table(pieces[1::2], pieces[::2], seconds=20)
    assert all(table["met"].values()), table["met"]
    details = table["generated"]["transcription"]
    assert details["transcribed"] == details["valid"] == 2 and table["generated"]["transcribed_share"] == 1.0


def test_the_table_transcribes_each_side_at_its_own_controls():
    played = [kesh_played(seed=seed, tempo=116, downbeat=True) for seed in range(3)]
    controls = {"tempo": 116, "meter": "6/8", "key": 1}
    table = performance_table(played[:2], played[2:], seconds=20, hints=[controls, {}],
                              real_hints=[controls], abc2midi=False)
    assert table["generated"]["transcription"]["hinted"] == 1 and table["real"]["transcription"]["hinted"] == 1
    assert table["generated"]["transcribed_share"] == table["real"]["transcribed_share"] == 1.0
    with pytest.raises(ValueError):
        performance_figures(played, hints=[controls])


def test_a_piece_with_no_notes_counts_against_transcription():
    figures = performance_figures([kesh_played(), []], abc2midi=False)
    assert figures["pieces"] == 2 and figures["pieces_with_notes"] == 1
    assert figures["transcribed_share"] == 0.5


@pytest.mark.parametrize("controls", [False, True])
def test_real_performances_from_a_midi_corpus(controls):
    config = EventConfig(controls=controls)
    names = config.names()

    def piece(seed: int) -> list[str]:
        opening = config.controls_of(tempo=100 + 4 * seed, meter="6/8", key=1, density=5) if controls else []
        events = opening + notes_to_events(kesh_played(seed=seed), config)
        return ["<s>", *(names[i] for i in events), "</s>"]

    corpus = SimpleNamespace(test=[piece(0), piece(1), piece(2), piece(3)], info={"settings": config.to_dict()},
                             origins={"test": ["a#1@1", "a#1@2", "b#2@1", "b#2@2"]})
    every = real_performances(corpus)
    assert len(every) == 2  # the first rendering of each tune
    assert np.allclose(every[0][:, :3], note_array(kesh_played(seed=0))[:, :3], atol=0.006)
    assert len(real_performances(corpus, 1, seed=5)) == 1
    assert len(real_performances(corpus, first_rendering_only=False)) == 4
    arrays, read = real_performances(corpus, with_controls=True)
    assert len(arrays) == 2 and np.array_equal(arrays[1], every[1])
    assert read == ([{"tempo": 100, "meter": "6/8", "key": 1, "density": 5},
                     {"tempo": 108, "meter": "6/8", "key": 1, "density": 5}] if controls else [{}, {}])


def test_piano_rolls_are_drawn(tmp_path):
    path = plot_piano_rolls([random_onsets(3), kesh_played()], ["random", "the Kesh"], tmp_path / "roll.png",
                            seconds=20)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
