"""Our parser against abc2midi on minimal tunes, one per disagreement found on the default corpus.

Where our reading was wrong and is fixed, the tune goes to both and the notes must be equal.
Where abc2midi is wrong (docs/abc2midi.md says why), our notes must be the ones worked out by
hand, and abc2midi's must still differ, so that the document is revisited if abc2midi changes.
"""

from __future__ import annotations

from fractions import Fraction as F

import pytest

from folkrnn.abc import parse
from folkrnn.errors import AbcError
from folkrnn.reference import abc2midi_available, abc2midi_notes, compare_notes

needs_abc2midi = pytest.mark.skipif(not abc2midi_available(), reason="abc2midi is not installed")

H4 = "X:1\nM:4/4\nL:1/4\nK:C\n"  # one quarter note per letter
H8 = "X:1\nM:4/4\nL:1/8\nK:C\n"
PITCH = {"C": 60, "D": 62, "E": 64, "F": 65, "G": 67, "A": 69, "B": 71, "c": 72, "d": 74}


def ours(text: str) -> list[tuple[F, int]]:
    return sorted((note.onset, note.pitch) for note in parse(text).unfold() if not note.grace)


def quarters(letters: str) -> list[tuple[F, int]]:
    """``"C D E"`` -> one quarter note each from beat 0: [(0, 60), (1, 62), (2, 64)]."""
    return [(F(beat), PITCH[letter]) for beat, letter in enumerate(letters.split())]


# Readings of ours that were wrong, now the same as abc2midi's (docs/abc2midi.md, "Fixed").
AGREE = {
    "an empty line ends the tune (ABC 2.1 2.2.1)": H4 + "CD|\n\nEF|",
    "> from a tuplet note to a plain one is ignored": H8 + "(3ABc >GA2 A2 A2|",
    "a || passed again inside a repeat keeps the ending count": H4 + "AB||CD|1EF:|2GA||",
    "a || inside a |: section does not move the repeat start": H4 + "|:AB:||:CD||EF:|",
    "|1 ... :| with no ending 2 goes back once": H4 + "|:CD|1EF:|GA|]",
    "|1,2 ... :|3 goes back twice": H4 + "|:CD|1,2EF:|3GA|]",
    "a |: while a |: is open closes it, as ::": H4 + "|:CD|EF|]\n|:GA:|",
    "an inline [V:1] brings the first voice back": H4 + "[V:1]CD|\n[V:2]EF|\n[V:1]GA|",
    "a P: line after another voice still labels the part":
        "X:1\nM:4/4\nL:1/4\nP:BA\nK:C\nP:A\n[V:1] CD|\n[V:2] EF|\nP:B\n[V:1] GA|\n[V:2] Bc|",
    "a tie on notes of a chord": H4 + "[C2-E2-][EC]z2|",
    "an explicit natural glued to the mode, K:Dmix=c": "X:1\nM:4/4\nL:1/8\nK:Dmix=c\nFcfc FCGB|",
    "> inside a chord is ignored": H8 + "G[Ae>]A B2 c4|",
    "a stray header line with a bar sign before K: is skipped":
        "X:1\nM:4/4\nL:1/4\nI (1) :| (2) ||\nK:C\nCD|",
    "harness: a decoration before an invisible bar": H4 + "CDEF|GAB H[|]|]\nCDEF|",
    "harness: a trill after a lone !": H8 + "CD|!EF TGA|Bc|",
}


@needs_abc2midi
@pytest.mark.parametrize("text", AGREE.values(), ids=list(AGREE))
def test_fixed_readings_agree_with_abc2midi(text):
    mine = ours(text)
    assert compare_notes(mine, abc2midi_notes(text)) is None, mine


# abc2midi's faults: (tune, our notes worked out by hand). Each heading is a section of the doc.
FAULTS = {
    "A: after endings and ||, :| repeats from the ||":
        (H4 + "CD|1EF:|2GA||Bc:|", quarters("C D E F C D G A B c B c")),
    "A: a second set of endings with no |: repeats from the ||":
        (H4 + "CD|1EF:|2GA||Bc|1DE:|2FG|]", quarters("C D E F C D G A B c D E B c F G")),
    "A: with voices, a :| after a :| repeats from it":
        (H4 + "[V:1] CD:|\n[V:2] EF:|\n[V:1] GA:|\n[V:2] Bc:|", quarters("C D C D G A G A")),
    "A: with a header P:, a second :| in a part repeats from the first":
        ("X:1\nM:4/4\nL:1/4\nP:AB\nK:C\nP:A\nCD:|\nP:B\nEF:|GA:|",
         quarters("C D C D E F E F G A G A")),
    "B: a :| closing the last ending ends the section":
        (H4 + "|:CD|1EF:|2GA:|", quarters("C D E F C D G A")),
    "C: ||: starts a repeat": (H4 + "CD|EF||:GA:|", quarters("C D E F G A G A")),
    "D: :[|] ends a repeat": (H4 + "|:CD:[|]EF|]", quarters("C D C D E F")),
    "E: a line continuation joins | and an ending number":
        (H4 + "|:CD|\\\n1EF:|2GA|]", quarters("C D E F C D G A")),
    "F: ||1 is a bar and a first ending": (H4 + "|:AB:|CD||1EF:|2GA|]",
                                           quarters("A B A B C D E F C D G A")),
    "G: > between a chord and a longer note is ignored":
        (H4 + "[AC]<a3 B4|", [(F(0), 60), (F(0), 69), (F(1), 81), (F(4), 71)]),
    "H: an ending 2 with no ending 1 is played on the second pass":
        (H4 + "|:CD:|2GA|]", quarters("C D C D G A")),
}


@pytest.mark.parametrize("text, expected", FAULTS.values(), ids=list(FAULTS))
def test_abc2midi_faults_are_played_as_written(text, expected):
    assert ours(text) == expected


@needs_abc2midi
@pytest.mark.parametrize("text, expected", FAULTS.values(), ids=list(FAULTS))
def test_abc2midi_still_plays_the_faults_otherwise(text, expected):
    assert compare_notes(expected, abc2midi_notes(text)) is not None


@pytest.mark.parametrize("text, said", [
    ("X:1\nM: 2/2]\nL:1/8\nK:C\nCD|", "line 2, column 1: bad M: field: meter '2/2]' is not N/D"),
    ("X:1\nM:2/4\nL:1/8\nK: Es\nCD|", "unknown mode 's' (modes: maj, min, m, dor, phr, lyd, mix, "
                                      "loc; a flat is b, as in Eb)"),
    ("X:1\nM:2/4\nL:1/8\nK:C\nA>G G> ||", "line 5, column 6: broken rhythm (> or <) with no note"),
])
def test_malformed_tunes_get_a_clear_error(text, said):
    with pytest.raises(AbcError) as caught:
        parse(text)
    assert said in str(caught.value)
