"""form: the parts, repeated bars, rests, range and tonic of hand-written tunes whose figures are
worked out by hand below; the aggregate figures; the classifier two-sample test on samples from
one distribution and from two; and the whole O'Neill collection against ANCHORS.md's figures
(measured there with an ABC scanner independent of folkrnn)."""

from __future__ import annotations

from dataclasses import FrozenInstanceError

import numpy as np
import pytest

from folkrnn.abc import parse
from folkrnn.form import (
    FEATURE_NAMES,
    STATISTICS,
    Part,
    ends_on_tonic,
    form_features,
    form_of,
    form_statistics,
    half_bar_share,
    in_dance_form,
    in_form,
    parts,
    range_semitones,
    regular_part,
    repeated_bar_share,
    rest_inside,
    two_sample_accuracy,
)


def head(meter: str, key: str) -> str:
    return f"X:1\nT:t\nM:{meter}\nL:1/8\nK:{key}\n"


# --- hand-written tunes, figures worked out by hand --------------------------------------------

# An AABB reel with a pickup: FG (2/8) and the closing d2d2 d2 (6/8) make one bar, so each part is
# 7 full bars + 1 = 8. Full bars (14): A3 = A5 = A1, A6 = A2, B3 = B5 = B1, B6 = B2, and B7 = A7:
# 7 repeated. Halves (28, 4 eighths each): new are A2dA BAFA B2AB G2E2 E2FG dcde fdec a2fa gfed
# cBAG FGAB cdec d2fg = 13, so 15 repeat. E4 (64) to A5 (81) = 17; ends on D, the tonic.
REEL = head("4/4", "D") + """FG|A2dA BAFA|A2dA B2AB|A2dA BAFA|G2E2 E2FG|
A2dA BAFA|A2dA B2AB|dcde fdec|d2d2 d2:|
|:fg|a2fa gfed|cBAG FGAB|a2fa gfed|cdec d2fg|
a2fa gfed|cBAG FGAB|dcde fdec|d2d2 d2:|
"""

# A jig with first and second endings. The pickup D before |: joins part A; part A counts
# D (1/6) + 7 full bars + ending 2 (5/6) = 8, part B the pickup B (1/6, dropped: a lone pickup is
# no bar) + 7 + ending 2 (full) = 8. Full bars (17: 7 + ending 1 of A, 7 + both endings of B):
# A5, A6, B5 repeat = 3. Halves (34, of 3 eighths): 21 new (G2B AGA B2d dBG c2e A3 ABc dBA G3
# G2D d2g gfg e2a a3 gfe d3 a2g fed ede g3 g2B), 13 repeat (B4's second half B2d is A2's first).
# D4 (62) to A5 (81) = 19; ends on G.
JIG = head("6/8", "G") + """D|:G2B AGA|B2d dBG|c2e dBG|A3 ABc|
G2B AGA|B2d dBG|c2e dBA|1 G3 G2D:|2 G3 G2||
|:B|d2g gfg|e2a a3|d2g gfe|d3 B2d|
d2g gfg|e2a a2g|fed ede|1 g3 g2B:|2 g3 g3|]
"""

# Three repeated 8-bar parts split by :: (AABBCC), in A mixolydian. Bars (24): bars 5 and 6 of
# each part repeat bars 1 and 2, and C's last bar A4 repeats B's: 7. Halves (2 eighths): 48, less
# the empty second halves of the two A4 bars = 46; 24 are new, 22 repeat. D4 (62) to A5 (81) = 19;
# ends on A, the tonic of Amix.
THREE_PARTS = head("2/4", "Amix") + """|:A2 AB|c2 cd|e2 ed|c2 BA|A2 AB|c2 cd|e2 dc|B2 A2::
e2 ea|g2 ge|d2 dg|f2 fd|e2 ea|g2 ge|d2 Bc|A4::
c2 cA|B2 BG|A2 AE|F2 FD|c2 cA|B2 BG|A2 GB|A4:|
"""

# One unrepeated part of 16 bars (the pickup D2 and the closing G4 make one): regular. Full bars
# (15): bars 9-13 repeat bars 1-5 = 5. Halves (3 eighths of 3/4): 28 with a note (A6 and G6 have
# none starting in their second half); 13 new, 15 repeat. D4 (62) to E5 (76) = 14; ends on G.
AIR = head("3/4", "G") + """D2|G4 A2|B4 c2|d4 e2|d4 B2|c4 A2|B4 G2|A6|A4 D2|
G4 A2|B4 c2|d4 e2|d4 B2|c4 A2|B4 A2|G6|G4|]
"""

# Rests inside (bars 1 and 2), a range of three octaves (D3 50 to D6 86), the last note A (the
# trailing z4 is not inside), a repeated 4-bar part: AA, not 8-bar parts, but a multiple of 4.
# No bar repeats; halves: 7 with notes, none repeats.
WIDE = head("4/4", "D") + "|:D,2 F,A, D2 z2|d2 fa d'2 z2|A,4 E4|a4 z4:|\n"

CASES = {
    # name: (text, label, [(bars, repeated, endings)], all 8, multiple of 4, bars, repeated,
    #        halves, repeated halves, rest inside, range, ends on tonic)
    "reel": (REEL, "AABB", [(8, True, 0), (8, True, 0)], True, True, 14, 7, 28, 15, False, 17, True),
    "jig-endings": (JIG, "AABB", [(8, True, 2), (8, True, 2)], True, True, 17, 3, 34, 13, False, 19, True),
    "three-parts": (THREE_PARTS, "AABBCC", [(8, True, 0)] * 3, True, True, 24, 7, 46, 22, False, 19, True),
    "air-16": (AIR, "A", [(16, False, 0)], True, True, 15, 5, 28, 15, False, 14, True),
    "wide-rests": (WIDE, "AA", [(4, True, 0)], False, True, 4, 0, 7, 0, True, 36, False),
}


@pytest.mark.parametrize("name", list(CASES))
def test_form_of_hand_worked_tunes(name):
    (text, label, expected_parts, all_8, of_4, bars, repeated, halves, repeated_halves, rest,
     span, tonic) = CASES[name]
    form = form_of(text)
    assert form.label == label
    assert [(p.bars, p.repeated, p.endings) for p in form.parts] == expected_parts
    assert (form.all_parts_8, form.parts_multiple_of_4) == (all_8, of_4)
    assert (form.bars, form.repeated_bars) == (bars, repeated)
    assert (form.half_bars, form.repeated_half_bars) == (halves, repeated_halves)
    assert form.repeated_bar_share == pytest.approx(repeated / bars)
    assert form.half_bar_share == pytest.approx(repeated_halves / halves)
    assert form.no_repeated_bar == (repeated == 0)
    assert (form.rest_inside, form.range_semitones, form.ends_on_tonic) == (rest, span, tonic)
    assert form.over_two_octaves == (span > 24)
    # the one-figure functions agree, from text or from a parsed Tune
    tune = parse(text)
    assert form_of(tune) == form
    assert repeated_bar_share(tune) == form.repeated_bar_share
    assert half_bar_share(text) == form.half_bar_share
    assert (rest_inside(tune), range_semitones(tune), ends_on_tonic(tune)) == (rest, span, tonic)
    assert parts(tune) == form.parts


def test_form_names_played_length_and_json():
    reel = form_of(REEL)
    assert reel.name == "AABB" and reel.played_bars == 32 and reel.written_bars == 16
    assert form_of(WIDE).name == "free" and form_of(WIDE).label == "AA"
    assert form_of(AIR).played_bars == 16
    assert [p.letter for p in form_of(THREE_PARTS).parts] == ["A", "B", "C"]
    summary = reel.to_dict()
    assert summary["label"] == "AABB" and summary["parts"][0] == {
        "letter": "A", "bars": 8, "repeated": True, "endings": 0}
    assert summary["repeated_bar_share"] == 0.5
    with pytest.raises(FrozenInstanceError):
        reel.label = "AB"
    assert in_form(reel, "AABB") and not in_form(reel, "AABB", part_bars=16)
    assert not in_form(form_of(AIR), "AABB")


def test_a_part_written_again_keeps_its_letter():
    a = "A2AB c2cd|e2ed c2BA|A2AB c2cd|e2dc B2A2||"
    b = "e2ea g2ge|d2dg f2fd|e2ea g2ge|d2Bc A4||"
    form = form_of(head("4/4", "D") + a + "\n" + b + "\n" + a + "\n")
    assert form.label == "ABA" and [p.bars for p in form.parts] == [4, 4, 4]
    # a repeated A then an unrepeated 16-bar B: AAB, each part regular
    a8, b16 = (a[:-2] + "|") * 2, (b[:-2] + "|") * 4
    aab = form_of(head("4/4", "D") + "|:" + a8[:-1] + ":|\n" + b16[:-1] + "|]\n")
    assert aab.label == "AAB" and [(p.bars, p.repeated) for p in aab.parts] == [(8, True), (16, False)]
    assert aab.all_parts_8


def test_parts_split_at_section_lines_and_repeats_without_an_opening():
    # no |: at all: the first :| repeats from the start; || ends an unrepeated part
    body = "d2fd AdFA|dfaf gfed|cBcd efge|fdec d4:|fdfa gfed|cBcd efge|fdfa gfed|cAGE D4||\n"
    form = form_of(head("4/4", "D") + body)
    assert [(p.bars, p.repeated) for p in form.parts] == [(4, True), (4, False)]
    assert form.label == "AAB"
    # a last ending that no section line closes is cut at the first ending's length
    run_on = ("|:d2fd AdFA|dfaf gfed|cBcd efge|1 fdec d4:|2 fdec d3e|"
              "fdfa gfed|cBcd efge|fdfa gfed|cAGE D4|]\n")
    form = form_of(head("4/4", "D") + run_on)
    assert [(p.bars, p.repeated, p.endings) for p in form.parts] == [(4, True, 2), (4, False, 0)]


def test_rests_at_the_edges_are_not_inside_and_a_chord_can_end_on_the_tonic():
    edges = form_of(head("4/4", "G") + "z2 GA B2 c2|d8|B4 [G,DG]2 z2|]\n")
    assert not edges.rest_inside and edges.ends_on_tonic
    assert form_of(head("4/4", "G") + "GABc d4|Z2|d8|]\n").rest_inside  # a multi-bar rest
    # the K: in force at the end names the tonic
    assert form_of(head("4/4", "G") + "GABc d4|[K:D] d8|]\n").ends_on_tonic
    assert not form_of(head("4/4", "G") + "GABc d4|[K:C] d8|]\n").ends_on_tonic


def test_a_tune_with_no_bar_lines_or_notes():
    empty = form_of("X:1\nT:t\nM:4/4\nK:C\n")
    assert empty.parts == () and empty.label == "" and empty.name == "free"
    assert empty.repeated_bar_share == 0.0 and not empty.ends_on_tonic and empty.range_semitones == 0
    free = form_of("X:1\nT:t\nM:none\nL:1/8\nK:C\nCDE|FGA|Bcd||\n")
    assert [p.bars for p in free.parts] == [3]


def test_dance_tunes_in_their_dance_form_and_meter():
    from folkrnn.tables import DANCES

    jig = DANCES["jig"]
    as_jig = form_of(JIG.replace("T:t\n", "T:t\nR:double jig\n"))
    expected = "6/8" in jig.meters and (jig.form == "free" or (jig.form, jig.part_bars) == ("AABB", 8))
    assert in_dance_form(as_jig) is expected
    # a jig in 4/4 is not in its dance's meter; an air or a tune with no R: is no dance tune
    assert in_dance_form(form_of(REEL.replace("T:t\n", "T:t\nR:jig\n"))) is False
    assert in_dance_form(form_of(AIR.replace("T:t\n", "T:t\nR:air\n"))) is None
    assert in_dance_form(form_of(REEL)) is None
    # a hornpipe in C (4/4) with the reel's AABB form of 8-bar parts
    hornpipe = DANCES["hornpipe"]
    as_hornpipe = form_of(REEL.replace("M:4/4", "M:C").replace("T:t\n", "T:t\nR:hornpipe\n"))
    assert in_dance_form(as_hornpipe) is ("4/4" in hornpipe.meters and (
        hornpipe.form == "free" or (hornpipe.form, hornpipe.part_bars) == ("AABB", 8)))
    stats = form_statistics([as_jig, as_hornpipe, form_of(REEL)])
    assert stats["dance_tunes"] == 2 and stats["dance_share"] == round(2 / 3, 4)
    assert stats["dance_form"] == (in_dance_form(as_jig) + in_dance_form(as_hornpipe)) / 2


def test_the_validator_reports_the_form():
    from folkrnn.validate import validate_tune

    report = validate_tune(JIG)
    assert report.valid and report.form == form_of(JIG).to_dict()
    assert report.to_dict()["form"]["label"] == "AABB"
    assert validate_tune(parse(REEL)).form["parts"][1]["bars"] == 8
    assert validate_tune("X:1\nT:t\nK:C\nC D [E|\n").form == {}  # unreadable: no form


def test_regular_part():
    assert regular_part(Part("A", 8, True)) and regular_part(Part("A", 16, False))
    assert regular_part(Part("A", 8, False)) and not regular_part(Part("A", 16, True))
    assert not regular_part(Part("A", 12, False)) and regular_part(Part("A", 16, True), part_bars=16)


# --- many tunes -----------------------------------------------------------------------------------


def test_form_statistics_by_hand():
    forms = [form_of(text) for text in (REEL, JIG, THREE_PARTS, AIR, WIDE)]
    stats = form_statistics(forms)
    assert set(STATISTICS) <= set(stats)
    assert stats["tunes"] == 5 and stats["parts"] == 2 + 2 + 3 + 1 + 1
    assert stats["dance_tunes"] == 0 and stats["dance_share"] == 0 and stats["dance_form"] is None  # no R:
    assert stats["parts_multiple_of_4"] == 1.0
    assert stats["all_parts_8"] == 0.8  # all but WIDE
    assert stats["aabb"] == 0.4  # the reel and the jig
    # played: 32, 32, 48, 16, 8: all multiples of 8
    assert stats["played_multiple_of_8"] == 1.0
    assert stats["repeated_bars"] == round((7 + 3 + 7 + 5 + 0) / (14 + 17 + 24 + 15 + 4), 4)
    assert stats["repeated_half_bars"] == round((15 + 13 + 22 + 15 + 0) / (28 + 34 + 46 + 28 + 7), 4)
    assert stats["no_repeated_bar"] == 0.2 and stats["rest_inside"] == 0.2
    assert stats["over_two_octaves"] == 0.2 and stats["ends_on_tonic"] == 0.8
    assert stats["part_bars"] == {"4": 1, "8": 7, "16": 1}
    assert stats["labels"]["AABB"] == 0.4
    empty = form_statistics([])
    assert empty["tunes"] == 0 and empty["all_parts_8"] is None


def test_phrases_that_come_back_by_hand():
    """Bar 5 of each stretch of 8 full bars equal to its bar 1: a pickup and endings do not count as
    bars (the part's last ending does), a 16-bar part has two stretches, a 4-bar part none."""
    jig = head("6/8", "G") + (
        "|:E|GAG cBA|GED C2E|GAG cBA|B3 G2E|GAG cBA|GED C2D|EFG AGF|G3 G2:|\n"  # bar 5 = bar 1
        "|:d|gfg a2g|fed cBA|gfg a2g|f3 d2c|Bcd efg|fed cBA|1 GAB cde|d3 d2:|2 GAB AGF|G3 G2|]\n")
    form = form_of(jig)
    assert [(p.phrases, p.phrase_returns) for p in form.parts] == [(1, 1), (1, 0)]
    assert (form.phrases, form.phrase_returns) == (2, 1)
    long = head("4/4", "D") + (
        "defg a2f2|gfed c2A2|B2d2 A2F2|E4 D4|defg a2f2|gfed c2A2|B2d2 A2F2|E4 D4|"
        "f2f2 e2e2|d2d2 c2c2|B2d2 A2F2|E4 D4|f2a2 e2c2|d2f2 c2A2|B2d2 A2F2|E4 D4||\n"
        "d4 c4|B4 A4|G4 F4|E8|]\n")
    form = form_of(long)
    assert [p.bars for p in form.parts] == [16, 4]
    assert [(p.phrases, p.phrase_returns) for p in form.parts] == [(2, 1), (0, 0)]
    stats = form_statistics([form_of(jig), form])
    assert stats["phrase_returns"] == round(2 / 4, 4)
    assert form_statistics([form_of(head("4/4", "D") + "d4 c4|B4 A4|]\n")])["phrase_returns"] is None


def test_form_features_one_row_per_tune():
    forms = [form_of(REEL), form_of(WIDE)]
    features = form_features(forms)
    assert features.shape == (2, len(FEATURE_NAMES)) and features.dtype == np.float64
    row = dict(zip(FEATURE_NAMES, features[0]))
    assert row["parts"] == 2 and row["mean_part_bars"] == 8 and row["repeated_bar_share"] == 0.5
    assert row["played_bars"] == 32 and row["all_parts_8"] == 1
    assert dict(zip(FEATURE_NAMES, features[1]))["rest_inside"] == 1
    assert form_features([]).shape == (0, len(FEATURE_NAMES))


# --- the classifier two-sample test --------------------------------------------------------------


def test_two_samples_from_one_distribution_are_indistinguishable():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(600, 6))
    b = rng.normal(size=(400, 6))
    accuracy = two_sample_accuracy(a, b, folds=5, seed=0)
    assert 0.42 <= accuracy <= 0.58
    # the same data, the same seed: the same accuracy
    assert two_sample_accuracy(a, b, folds=5, seed=0) == accuracy


def test_clearly_different_samples_are_told_apart():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(300, 5))
    b = rng.normal(size=(300, 5))
    b[:, 2] += 4.0  # one feature shifted by four standard deviations
    assert two_sample_accuracy(a, b) > 0.97
    # a constant feature (standard deviation 0) does no harm
    a[:, 0] = b[:, 0] = 1.0
    assert two_sample_accuracy(a, b) > 0.97
    # a weak difference is found, but not perfectly
    c = rng.normal(size=(1000, 3))
    d = rng.normal(size=(1000, 3))
    d[:, 0] += 0.5
    assert 0.55 < two_sample_accuracy(c, d) < 0.7


def test_two_sample_accuracy_on_forms_and_tiny_samples():
    reels = form_features([form_of(REEL)] * 20)
    wide = form_features([form_of(WIDE)] * 20)
    assert two_sample_accuracy(reels, wide) == 1.0
    assert np.isnan(two_sample_accuracy(reels[:1], wide))


def test_the_accuracy_is_the_mean_of_several_draws_of_the_larger_sample():
    # 600 tunes against 150: one draw keeps a quarter of the larger sample, and which quarter
    # moves the figure; the mean of ten moves far less from seed to seed
    rng = np.random.default_rng(3)
    a = rng.normal(size=(600, 4))
    b = rng.normal(size=(150, 4))
    b[:, 1] += 0.6
    one = np.array([two_sample_accuracy(a, b, seed=s, draws=1) for s in range(30)])
    ten = np.array([two_sample_accuracy(a, b, seed=s, draws=10) for s in range(30)])
    assert abs(one.mean() - ten.mean()) < 0.01  # the same quantity
    assert ten.std() < 0.5 * one.std()  # measured with less noise
    with pytest.raises(ValueError, match="draws"):
        two_sample_accuracy(a, b, draws=0)


# --- the real thing: O'Neill's Music of Ireland against ANCHORS.md ---------------------------------

# ANCHORS.md, measured on 300 random O'Neill tunes with a scanner independent of folkrnn
ANCHORS = {"all_parts_8": 0.77, "parts_multiple_of_4": 0.97, "aabb": 0.31, "played_multiple_of_8": 0.92,
           "repeated_bars": 0.25, "repeated_half_bars": 0.37, "no_repeated_bar": 0.07,
           "rest_inside": 0.22, "over_two_octaves": 0.03, "ends_on_tonic": 0.82}


@pytest.mark.slow
def test_oneills_tunes_give_the_anchor_figures():
    import time

    from folkrnn.abc import read_text, split_tunebook
    from folkrnn.corpus import music21_corpus_dir
    from folkrnn.errors import FolkError

    texts: dict[str, str] = {}  # by X: number (some tunes are in two files)
    for path in sorted((music21_corpus_dir() / "oneills1850").glob("*.abc")):
        for tune in split_tunebook(read_text(path)):
            texts.setdefault(tune.number_and_title[0] or f"{path.name}#{len(texts)}", tune.text)
    tunes = []
    for text in texts.values():
        try:
            tunes.append(parse(text))
        except FolkError:
            pass
    started = time.perf_counter()
    forms = [form_of(tune) for tune in tunes]
    rate = len(forms) / (time.perf_counter() - started)
    stats = form_statistics(forms)
    print(f"\n{len(forms)} O'Neill tunes, {rate:.0f} tunes/s")
    for key, anchor in ANCHORS.items():
        print(f"  {STATISTICS[key]:<52} {stats[key]:6.1%}  (ANCHORS.md {anchor:.0%})")
    assert len(forms) > 1700
    for key, anchor in ANCHORS.items():
        # 300 tunes give the anchors a standard error of up to 2.9 points; rules may differ a little
        assert abs(stats[key] - anchor) <= 0.05, (key, stats[key], anchor)
    assert rate > 1000


def test_rare_tokens_are_those_a_corpus_seldom_writes():
    from folkrnn.form import RareTokens

    # two tunes, 9,998 body tokens: "^^F" twice, "(5" never; the header and "</s>" are not counted
    tune = ["<s>", "T", "R:reel", "M:4/4", "K:Cmaj"] + ["c", "d", "|"] * 1666 + ["^^F", "</s>"]
    rarity = RareTokens([tune, tune], threshold=2e-4)
    assert rarity.rare(["R:reel", "K:Cmaj", "c", "(5", "d", "_B", "|", "^^F", "</s>"]) == ["(5", "_B"]
    assert rarity.rare(["(5", "K:Cmaj", "c"]) == []  # before K: is the header
    assert RareTokens([tune, tune], threshold=3e-4).rare(["K:Cmaj", "^^F", "</s>"]) == ["^^F"]
    tunes = [["K:Cmaj", "c", "|"], ["K:Cmaj", "(5", "c"], ["K:Cmaj", "d"], ["K:Cmaj", "_B", "_B"]]
    assert rarity.share(tunes) == 0.5 and rarity.share([]) == 0.0
