"""The abc2midi harness, checked against notes worked out by hand (pinning abc2midi's habits)."""

from __future__ import annotations

from fractions import Fraction as F

import pytest

from folkrnn import reference
from folkrnn.errors import AbcError
from folkrnn.reference import (
    abc2midi_available,
    abc2midi_check,
    abc2midi_notes,
    compare_notes,
    strip_ornaments,
)

needs_abc2midi = pytest.mark.skipif(not abc2midi_available(), reason="abc2midi is not installed")

HEAD = "X:1\nT:Test\nM:4/4\nL:1/8\nK:G\n"

# (body after HEAD, expected (onset in quarter notes, MIDI pitch) pairs, worked out by hand)
CASES = {
    "scale in G": ("GABc d2e2|", [(0, 67), (F(1, 2), 69), (1, 71), (F(3, 2), 72), (2, 74), (3, 76)]),
    "repeat plays twice": ("|:AB:|", [(0, 69), (F(1, 2), 71), (1, 69), (F(3, 2), 71)]),
    "triplet of eighths in a quarter": ("(3abc d2|", [(0, 81), (F(1, 3), 83), (F(2, 3), 72), (1, 74)]),
    "broken rhythm": ("A>B c2|", [(0, 69), (F(3, 4), 71), (1, 72)]),
    "key signature sharpens f, natural lasts the bar":
        ("f =f f|f|", [(0, 78), (F(1, 2), 77), (1, 77), (F(3, 2), 78)]),
    "chord notes start together": ("[GBd]2 g2|", [(0, 67), (0, 71), (0, 74), (1, 79)]),
    "first and second endings": ("|:G|1A:|2B|", [(0, 67), (F(1, 2), 69), (1, 67), (F(3, 2), 71)]),
    "tie across the bar line is one note": ("A4 B2 c2-|c2 d2|", [(0, 69), (2, 71), (3, 72), (5, 74)]),
    "grace notes are dropped": ("{ag}A B|", [(0, 69), (F(1, 2), 71)]),
    "roll and trill are not expanded": ("~A TB !trill!c|", [(0, 69), (F(1, 2), 71), (1, 72)]),
}


@needs_abc2midi
@pytest.mark.parametrize("body, expected", CASES.values(), ids=list(CASES))
def test_abc2midi_notes_match_hand_worked_values(body, expected):
    notes = abc2midi_notes(HEAD + body)
    assert notes == [(F(onset), pitch) for onset, pitch in expected]
    assert compare_notes(notes, expected) is None


@needs_abc2midi
def test_accidentals_carry_to_every_octave_of_the_letter():
    # abc2midi departs from ABC 2.1 here: ^f also sharpens a later F in another octave.
    notes = abc2midi_notes("X:1\nM:4/4\nL:1/8\nK:C\n^f F f|")
    assert [pitch for _, pitch in notes] == [78, 66, 78]


@needs_abc2midi
def test_only_the_first_voice_is_read():
    text = "X:1\nM:4/4\nL:1/4\nK:C\nV:2\nC,D,E,F,|\nV:1\nCDEF|\n"
    assert abc2midi_notes(text) == [(F(0), 60), (F(1), 62), (F(2), 64), (F(3), 65)]


@needs_abc2midi
def test_a_tune_without_x_still_plays():
    assert abc2midi_notes("M:4/4\nL:1/4\nK:C\nCD|") == [(F(0), 60), (F(1), 62)]


@needs_abc2midi
def test_ornaments_can_be_left_to_abc2midi():
    plain = abc2midi_notes(HEAD + "TB2 c2|")
    played = abc2midi_notes(HEAD + "TB2 c2|", ornaments=True)
    assert plain == [(F(0), 71), (F(1), 72)]
    assert len(played) > len(plain)  # the trill alternates with the note above


@needs_abc2midi
def test_check_reports_a_short_bar_with_its_line():
    messages = abc2midi_check(HEAD + "GABc d2e2|GABc d2|GABc d2e2|\n")
    assert any(message.startswith("line 6, col") and "Bar 1 has 3 time units" in message
               for message in messages), messages


@needs_abc2midi
def test_check_of_a_clean_tune_is_empty():
    assert abc2midi_check(HEAD + "GABc d2e2|GABc d2e2|\n") == []


@needs_abc2midi
def test_no_playable_key_raises_abc_error():
    with pytest.raises(AbcError, match="abc2midi wrote no MIDI file"):
        abc2midi_notes("X:1\nM:4/4\nL:1/8\nK:\nABc|\n")


def test_missing_abc2midi_raises_abc_error(monkeypatch):
    monkeypatch.setattr(reference.shutil, "which", lambda name: None)
    assert not abc2midi_available()
    with pytest.raises(AbcError, match="not installed"):
        abc2midi_notes(HEAD + "GABc|")


def test_compare_notes_allows_one_tick_and_names_the_first_difference():
    ours = [(F(0), 60), (F(1, 3), 62)]
    assert compare_notes(ours, [(F(0), 60), (F(159, 480), 62)]) is None
    message = compare_notes(ours, [(F(0), 60), (F(158, 480), 62)])
    assert message is not None and message.startswith("note 1:")
    assert "pitch 62" in compare_notes(ours, [(F(0), 60), (F(1, 3), 64)])
    longer = compare_notes(ours, ours + [(F(1), 64)])
    assert longer is not None and "2 notes here, 3 in abc2midi" in longer
    assert compare_notes(list(reversed(ours)), ours) is None  # order does not matter


def test_strip_ornaments_touches_only_the_body():
    text = 'X:1\nT:Trip To Rome\nR:reel\nK:D\n~A TB !trill!c !fermata!d "Tr"e [R:x] % T~\nT:Part\n'
    assert strip_ornaments(text) == (
        'X:1\nT:Trip To Rome\nR:reel\nK:D\nA B c !fermata!d "Tr"e [R:x] % T~\nT:Part\n')
