"""The validator: every check on hand-made tunes (good, bad, edge cases), positions in messages,
novelty on a toy corpus, the CLI's output and exit codes, and agreement with ``abc2midi -c`` on real
corpus tunes and broken variants of them."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from folkrnn.abc import parse
from folkrnn.cli import app
from folkrnn.errors import OptionError
from folkrnn.form import form_of
from folkrnn.validate import (
    NoveltyIndex,
    ValidateOptions,
    instrument_range,
    levenshtein,
    pitch_name,
    similarity,
    validate_text,
    validate_tune,
)

REPO = Path(__file__).resolve().parent.parent
HEAD = "X:1\nT:Test\nR:reel\nM:4/4\nL:1/8\nK:D\n"  # the body starts on line 7


def check(body: str, head: str = HEAD, **options):
    return validate_tune(head + body + "\n", options=ValidateOptions(**options) if options else None)


def codes(issues) -> list[str]:
    return [issue.code for issue in issues]


# --- bar lengths -------------------------------------------------------------------------------

REEL = ("A|:d2fd AdFA|dfaf gfed|cBcd efge|fdec d2dA|\n"
        "d2fd AdFA|dfaf gfed|cBcd efge|fdec d3:|\n"
        "|:e|fdfa gfed|cBcd efge|fdfa gfed|cAGE D2De|\n"
        "fdfa gfed|cBcd efge|fdec dBAF|1 GFGA d3:|2 GFGA d3||\n")


def test_a_well_formed_reel_is_valid_with_its_structure():
    report = check(REEL)
    assert report.valid, report.format()
    assert codes(report.warnings) == []
    assert report.structure["sections"] == "AABB"
    assert [part["bars"] for part in report.structure["parts"]] == [8, 8]
    assert report.structure["pickup"] is True
    # lowest F#4 (66), highest A5 (81): worked out from the notes written
    assert (report.range["lowest"], report.range["highest"]) == (62, 81)
    assert report.range["lowest_name"] == "D4" and report.range["highest_name"] == "A5"


def test_overfull_bar_names_bar_number_line_and_column():
    report = check("A|d2fd AdFA|dfaf gfed e|cBcd efge|fdec d3||")
    assert codes(report.errors) == ["bar-too-long"]
    error = report.errors[0]
    # bar 0 is the pickup A; bar 2 ends at the bar line in column 24 of line 7
    assert (error.bar, error.line, error.col) == (2, 7, 24)
    assert "9 eighths" not in error.message and "9/2 quarters" in error.message


def test_underfull_bar_in_the_middle_is_an_error():
    report = check("d2fd AdFA|dfaf ged|cBcd efge|fdec d4||")
    assert codes(report.errors) == ["bar-too-short"]
    assert report.errors[0].bar == 2 and "7/2 quarters where the meter has 4 quarters" in report.errors[0].message


def test_pickup_needs_its_complement_in_the_last_bar():
    assert check("A|d2fd AdFA|fdec d3||").valid  # 1 + 7 = 8
    short = check("A|d2fd AdFA|fdec d2||")  # 1 + 6: the last bar is short of the complement
    assert short.valid and sorted(codes(short.warnings)) == ["last-bar-short", "part-length"]


def test_pickup_into_each_section_and_across_a_section_line():
    # part A ends 7/8 and part B starts with a 1/8 pickup
    report = check("d2fd AdFA|dfaf gfed|cBcd efge|fdec d3||e|fdfa gfed|cBcd efge|fdfa gfed|cAGE D4||")
    assert report.valid and report.structure["sections"] == "AB"
    # 6/8 + 1/8 do not make a bar
    bad = check("d2fd AdFA|dfaf gfed|cBcd efge|fdec d2||e|fdfa gfed|cBcd efge|fdfa gfed|cAGE D4||")
    assert codes(bad.errors) == ["bar-too-short", "bar-too-short"]


def test_a_section_pickup_completed_by_its_own_last_bar_only_at_the_end():
    # part B has a pickup e and a last bar of 7/8: fine at the end of the tune
    assert check("d2fd AdFA|dfaf gfed|cBcd efge|fdec d4||e|fdfa gfed|cBcd efge|fdfa gfed|cAGE D3||").valid
    # not before another part that starts on the beat: a player would lose an eighth there
    report = check("A|d2fd AdFA|dfaf gfed|fdec d3||e|fdfa gfed|cAGE D3||d2fd AdFA|d8||")
    assert codes(report.errors) == ["bar-too-short"] and report.errors[0].bar == 5  # bars 0, 1-3, 3, 4, 5


def test_the_last_bar_of_a_repeat_completes_the_pickup_played_on_the_way_back():
    # `:|` after 7/8 goes back to |:, after the 1/8 pickup A: a player plays 7/8 + A
    assert check("A|:d2fd AdFA|dfaf gfed|cBcd efge|fdec d3:|").valid
    # the same with endings: ending 1 completes the pickup, ending 2 is whole
    assert check("A|:d2fd AdFA|dfaf gfed|cBcd efge|1 fdec d3:|2 fdec d4||").valid
    bad = check("A|:d2fd AdFA|dfaf gfed|cBcd efge|1 fdec d2:|2 fdec d4||")
    assert codes(bad.errors) == ["bar-too-short"] and bad.errors[0].bar == 4


def test_an_ending_written_inside_a_bar_completes_it_on_each_pass():
    # `efge [1 d2:|[2 d4` : 4/8 + 2/8 twice would not do; 6/8 + 2/8 (ending 1) and + 2/8 (ending 2)
    assert check("|:d2fd AdFA|dfaf gfed|cBcd ef[1 d2:|[2 d2||e8||").valid
    bad = check("|:d2fd AdFA|dfaf gfed|cBcd ef[1 d2:|[2 d3||e8||")
    assert codes(bad.errors) == ["bar-too-short"]


def test_inline_and_body_line_meter_changes_and_unit_changes():
    assert check("d2fd AdFA|[M:3/4] d2 f2 A2|\nM:6/8\ndfa gfe|[L:1/16] d2f2a2 g2f2e2||").valid
    bad = check("d2fd AdFA|[M:3/4] d2 f2 A2 B2|d2 f2 A2||")
    assert codes(bad.errors) == ["bar-too-long"] and "4 quarters where the meter has 3 quarters" \
        in bad.errors[0].message


def test_multi_bar_rests_and_free_meter():
    report = check("d2fd AdFA|Z2|d2fd AdFA|d8||")
    assert report.valid and report.structure["bars"] == 5
    free = check("d2fd AdFA gfe|d2||", head=HEAD.replace("M:4/4", "M:none"))
    assert free.valid and "free-meter" in codes(free.warnings)


def test_tuplets_and_broken_rhythm_count_exactly():
    assert check("(3ddd d2 A>F A2|(3def (3gfe d4||").valid
    assert codes(check("(3ddd d2 A>F A2|(3def (3gfe d4 d||").errors) == ["bar-too-long"]


# --- repeats, endings, closing bar -------------------------------------------------------------


@pytest.mark.parametrize("body, error_codes, warning_codes", [
    ("|:d8|d8:||:e8|e8:|", [], []),
    ("d8|d8:||:e8|e8:|", [], []),  # the first :| goes back to the start
    ("|:d8|d8::e8|e8:|", [], []),
    ("|:d8|d8|e8|e8||", ["repeat-unclosed"], []),
    ("|:d8|d8|:e8|e8:|", ["repeat-nested"], []),
    ("|:d8|d8:|e8|e8:|", [], ["repeat-unopened"]),  # plays, but say where the repeat starts
    ("d8|d8||e8|e8:|", [], ["repeat-from-start"]),
    ("|:d8|1d8:|2e8||", [], []),
    ("|:d8|1d8:|2e8:|3f8||", [], []),
    ("|:d8|2d8:|1e8||", ["ending-order", "ending-order"], []),
    ("|:d8|1d8|2e8:|", ["ending-unclosed"], []),
    ("|:d8|1d8:|e8|2f8||", ["ending-misplaced"], []),  # ending 2 must start at the :|
    ("|:d8|d8:|2f8||", ["ending-order"], []),  # an ending 2 with no ending 1
    ("d8|1d8|e8||", ["ending-unclosed"], []),  # an ending where nothing repeats
    ("|:d8|d8:||:", ["repeat-empty"], []),
    ("|:d8|d8|d6:|", ["bar-too-short"], []),  # a short last bar played again is not a last bar
])
def test_repeats_and_endings(body, error_codes, warning_codes):
    report = check(body)
    assert sorted(codes(report.errors)) == sorted(error_codes), report.format()
    assert [c for c in codes(report.warnings) if c != "part-length"] == warning_codes, report.format()


def test_repeat_error_points_at_the_bar_line():
    report = check("|:d8|d8|\n|:e8|e8:|")
    assert codes(report.errors) == ["repeat-nested"]
    assert (report.errors[0].line, report.errors[0].col) == (8, 1)


def test_closing_bar_is_a_warning_unless_required():
    report = check("d8|d8|d8|d8")
    assert report.valid and "no-closing-bar" in codes(report.warnings)
    strict = check("d8|d8|d8|d8", require_closing_bar=True)
    assert codes(strict.errors) == ["no-closing-bar"]


def test_trailing_rest_after_the_last_bar_line_is_measured():
    # `z` is not a note, but it makes the last bar 9/8 long
    assert codes(check("d8|d8|d8|d8 z").errors) == ["bar-too-long"]
    assert check("d8|d8|d8|d6 z2").valid


# --- structure ---------------------------------------------------------------------------------


def test_structure_strings_and_part_lengths():
    assert check("|:d8|d8|d8|d8:||:e8|e8|e8|e8:|").structure["sections"] == "AABB"
    assert check("d8|d8|d8|d8||e8|e8|e8|e8||d8|d8|d8|d8||").structure["sections"] == "ABA"
    odd = check("|:d8|d8|d8|d8|d8|d8|d8:|")
    assert odd.valid and codes(odd.warnings) == ["part-length"]
    assert odd.structure["parts"][0]["bars"] == 7 and odd.structure["parts"][0]["passes"] == 2
    three = check("|:d8|1d8:|2e8:|3f8||")
    assert three.structure["sections"] == "AAA" and three.structure["parts"][0]["endings"] == 3
    # a pickup into each part and the part's closing short bar make one bar, as folkrnn.form counts
    # them: 4-bar parts (a generated tune's), not the 3 the warning once said
    picked = check("d4 | d8 | d8 | d8 | d4 || d4 | e8 | e8 | e8 | e4 |]")
    assert [part["bars"] for part in picked.structure["parts"]] == [4, 4] == [
        part.bars for part in form_of(HEAD + "d4 | d8 | d8 | d8 | d4 || d4 | e8 | e8 | e8 | e4 |]\n").parts]
    assert "part-length" not in codes(picked.warnings) and picked.structure["parts"][1]["first_bar"] == 5


# --- range and instruments ---------------------------------------------------------------------


def test_range_and_instruments():
    assert pitch_name(60) == "C4" and pitch_name(66) == "F#4" and pitch_name(81) == "A5"
    body = "C,D,E,F, GABc|d8||"  # C3 .. D5 written
    report = check(body, head=HEAD.replace("K:D", "K:C"))
    assert (report.range["lowest"], report.range["highest"]) == (48, 74)
    fiddle = check(body, head=HEAD.replace("K:D", "K:C"), instrument="violin")
    # below G3 (55): C3, D3, E3, F3, all in bar 1
    assert codes(fiddle.errors) == ["out-of-range"] and fiddle.errors[0].bar == 1
    assert "C3, D3, E3, F3 below the fiddle's range G3-B6" in fiddle.errors[0].message
    assert fiddle.range["outside"] == 4
    whistle = check("d8|d'8||", instrument="whistle")  # d' is D6 (86): the top of a D whistle
    assert whistle.valid
    assert not check("d8|e'8||", instrument="whistle").valid
    with pytest.raises(OptionError, match="unknown instrument 'kazoo'"):
        instrument_range("kazoo")


# --- syntax, header, tunebooks -----------------------------------------------------------------


def test_syntax_error_is_reported_with_its_line():
    report = check("d8|d8|\nd2 ?? d4|")
    assert codes(report.errors) == ["syntax"] and report.errors[0].line == 8
    assert not report.valid and report.structure == {}


def test_header_checks():
    report = validate_tune("X:1\nT:t\nL:1/8\nK:D\nd8|d8|d8|d8||\n")
    assert report.valid and "header" in codes(report.warnings)
    assert any("no M: field" in issue.message for issue in report.warnings)


def test_a_bad_tune_in_a_tunebook_is_reported_and_the_rest_still_checked():
    book = (HEAD + "d8|d8|d8|d8||\n\n" + HEAD.replace("X:1", "X:2") + "d8|d ?? 8|\n\n"
            + HEAD.replace("X:1", "X:3") + "d8|d9|d8|d8||\n")
    reports = validate_text(book, file="book.abc")
    assert [r.valid for r in reports] == [True, False, False]
    assert codes(reports[1].errors) == ["syntax"] and reports[1].errors[0].line == 15
    assert reports[2].line == 17 and reports[2].errors[0].line == 23
    assert reports[2].label == "X:3 'Test'"


def test_a_parsed_tune_validates_like_its_text():
    text = HEAD + "A|d2fd AdFA|dfaf gfed e|cBcd efge|fdec d3||\n"
    from_text, from_tune = validate_tune(text), validate_tune(parse(text))
    assert [(i.code, i.bar) for i in from_text.errors] == [(i.code, i.bar) for i in from_tune.errors]
    assert from_tune.errors[0].line is None  # no text, no positions
    assert from_text.to_dict().keys() >= {"valid", "errors", "warnings", "structure", "range", "nearest"}


# --- novelty -----------------------------------------------------------------------------------


def test_levenshtein_and_similarity_by_hand():
    assert levenshtein("kitten", "sitting") == 3
    assert levenshtein("", "abc") == 3 and levenshtein("abc", "abc") == 0
    assert levenshtein(["a", "b"], ["b", "a"]) == 2
    assert similarity("kitten", "sitting") == pytest.approx(1 - 3 / 7)
    assert levenshtein("a" * 40, "b" * 40, limit=5) > 5


def test_levenshtein_matches_dynamic_programming():
    def table(a, b):
        row = list(range(len(b) + 1))
        for i, x in enumerate(a, 1):
            new = [i]
            for j, y in enumerate(b, 1):
                new.append(min(row[j] + 1, new[j - 1] + 1, row[j - 1] + (x != y)))
            row = new
        return row[-1]

    rng = random.Random(0)
    for _ in range(300):
        a = [rng.choice("abcd") for _ in range(rng.randrange(0, 90))]
        b = [rng.choice("abcd") for _ in range(rng.randrange(0, 90))]
        assert levenshtein(a, b) == table(a, b)


def toy_index() -> NoveltyIndex:
    rng = random.Random(1)
    alphabet = ["c", "d", "e", "f", "g", "a", "b", "2", "|", "/2", "z"]
    bodies = [[rng.choice(alphabet) for _ in range(rng.randrange(40, 120))] for _ in range(300)]
    return NoveltyIndex(bodies, [f"toy#{i}" for i in range(300)], [f"Toy {i}" for i in range(300)])


def test_novelty_finds_copies_and_near_copies():
    index = toy_index()
    rng = random.Random(2)
    exact = index.nearest(index.bodies[17])
    assert (exact.similarity, exact.index, exact.title) == (1.0, 17, "Toy 17")
    for target in rng.sample(range(len(index)), 20):
        body = list(index.bodies[target])
        for _ in range(len(body) // 10):  # 10% of the tokens changed: still a probable copy
            body[rng.randrange(len(body))] = rng.choice(["c", "d", "e"])
        found = index.nearest(body)
        assert found.index == target and found.similarity == pytest.approx(similarity(body, index.bodies[target]))
        assert found.similarity >= 0.85


def test_novelty_nearest_is_close_to_brute_force():
    index = toy_index()
    rng = random.Random(3)
    shortfall = []
    for _ in range(20):
        query = [rng.choice(["c", "d", "e", "f", "g", "2", "|"]) for _ in range(80)]
        truth = max(similarity(query, body) for body in index.bodies)
        shortfall.append(truth - index.nearest(query).similarity)
    assert min(shortfall) >= 0 and sum(shortfall) / len(shortfall) < 0.03


def test_probable_copy_is_a_warning_or_with_strict_an_error():
    from folkrnn.abc import tokenize
    from folkrnn.abc.tokens import body_of

    text = HEAD + REEL
    index = NoveltyIndex([body_of(tokenize(text))], ["reels.abc#1"], ["Test"])
    report = validate_tune(text, novelty=index)
    assert report.valid and report.nearest.similarity == 1.0 and "probable-copy" in codes(report.warnings)
    strict = validate_tune(text, novelty=index, options=ValidateOptions(strict=True))
    assert codes(strict.errors) == ["probable-copy"]
    other = validate_tune(HEAD + "|:d8|d8:||:e8|e8:|\n", novelty=index)
    assert other.nearest.similarity < 0.85 and "probable-copy" not in codes(other.warnings)


# --- the command -------------------------------------------------------------------------------


def test_cli_exit_codes_text_and_json(tmp_path):
    good, bad = tmp_path / "good.abc", tmp_path / "bad.abc"
    good.write_text(HEAD + REEL)
    bad.write_text(HEAD + "d8|d9|d8|d8||\n\n" + HEAD.replace("X:1", "X:2") + REEL)
    runner = CliRunner()
    result = runner.invoke(app, ["validate", str(good), "--no-novelty"])
    assert result.exit_code == 0 and "valid; AABB (8+8 bars)" in result.output
    result = runner.invoke(app, ["validate", str(good), str(bad), "--no-novelty", "--json"])
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert [item["valid"] for item in data] == [True, False, True]
    assert data[1]["errors"][0]["code"] == "bar-too-long" and data[1]["errors"][0]["bar"] == 2
    result = runner.invoke(app, ["validate", str(tmp_path / "missing.abc"), "--no-novelty"])
    assert result.exit_code == 2 and "no such file" in result.output
    binary = tmp_path / "noise.abc"
    binary.write_bytes(bytes(range(256)))
    assert runner.invoke(app, ["validate", str(binary), "--no-novelty"]).exit_code == 2
    result = runner.invoke(app, ["validate", str(good), "--instrument", "kazoo", "--no-novelty"])
    assert result.exit_code == 2 and "unknown instrument" in result.output
    assert "Traceback" not in result.output


def test_cli_against_a_corpus_and_strict(tmp_path, monkeypatch):
    monkeypatch.setenv("FOLKRNN_CACHE", str(tmp_path / "cache"))  # keep the checkout's cache as it is
    corpus = tmp_path / "mine"
    corpus.mkdir()
    (corpus / "book.abc").write_text(HEAD + REEL + "\n" + HEAD.replace("X:1", "X:2") + "|:d8|d8:||:e8|e8:|\n")
    tune = tmp_path / "tune.abc"
    tune.write_text(HEAD + REEL)
    runner = CliRunner()
    args = ["validate", str(tune), "--against", str(corpus), "--json"]
    result = runner.invoke(app, args + ["--no-strict"])
    assert result.exit_code == 0, result.output
    nearest = json.loads(result.stdout)[0]["nearest"]
    assert nearest["similarity"] == 1.0 and nearest["name"].endswith("book.abc#1")
    assert runner.invoke(app, args + ["--strict"]).exit_code == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(app, ["validate", str(tune), "--against", str(empty)])
    assert result.exit_code == 2 and "error:" in result.output


# --- agreement with abc2midi -c ----------------------------------------------------------------


@pytest.mark.slow
def test_agreement_with_abc2midi_on_real_tunes_and_broken_variants():
    """A fixed sample (the full figures are in docs/validate.md, from benchmarks/validate_agreement.py):
    of the broken variants abc2midi flags, we flag >= 95%; of the real tunes it passes, we pass >= 95%."""
    from folkrnn.reference import abc2midi_available

    if not abc2midi_available():
        pytest.skip("abc2midi is not installed")
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from validate_agreement import KINDS, agreement, corpus_tunes
    finally:
        sys.path.pop(0)
    result = agreement(corpus_tunes(), sample=250, seed=7)
    assert result["abc2midi_passes"] >= 40 and result["broken_abc2midi_flags"] >= 100
    assert all(result["broken"][kind]["abc2midi_flags"] >= 20 for kind in KINDS)
    assert result["pass_agreement"] >= 0.95, result["real"]["only_us"]
    assert result["flag_agreement"] >= 0.95, {k: v["we_miss"] for k, v in result["broken"].items()}
