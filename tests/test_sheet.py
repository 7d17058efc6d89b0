"""Sheet music (SVG and PDF) checked against real tools: abcm2ps's engraving of the same ABC, and
poppler (pdfinfo, pdftotext, pdftoppm) and librsvg (rsvg-convert) reading what folkrnn writes.

abcm2ps's PostScript names what it draws (``bar``, ``thbar``, ``rdots``, ``sh0`` in a key
signature, ``ghd`` for a grace note head, ``bnum`` for a tuplet number, ``repbra`` for an ending,
``(9)show`` for a bar number), one system after another; verovio's SVG names it by class
(``g.system``, ``g.measure``, ``g.keySig``, ``g.tuplet``, ``g.ending``, ``g.mNum``). Each test
compares the two, tune by tune and line by line, on tiny tunes in tests/data/sheet/.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections import Counter
from fractions import Fraction
from pathlib import Path

import pytest

from folkrnn.abc import parse
from folkrnn.abc.lexer import lex
from folkrnn.abc.parser import tune_from_lexed
from folkrnn.render import tune_to_svg, tunes_to_pdf
from folkrnn.sheet import engrave, tune_to_mei

DATA = Path(__file__).parent / "data" / "sheet"
FIXTURES = sorted(path.stem for path in DATA.glob("*.abc"))
SVG = "{http://www.w3.org/2000/svg}"
MEI = "{http://www.music-encoding.org/ns/mei}"
XML_ID = "{http://www.w3.org/XML/1998/namespace}id"
HREF = "{http://www.w3.org/1999/xlink}href"
SHARP, FLAT, NATURAL = "E262", "E260", "E261"  # SMuFL accidentals, as verovio's glyph ids start

needs_abcm2ps = pytest.mark.skipif(shutil.which("abcm2ps") is None, reason="abcm2ps is not installed")
needs_poppler = pytest.mark.skipif(shutil.which("pdftoppm") is None or shutil.which("pdfinfo") is None,
                                   reason="poppler-utils is not installed")


def fixture(name: str) -> str:
    return (DATA / f"{name}.abc").read_text()


# --- what abcm2ps draws, system by system -----------------------------------------------------


def abcm2ps_systems(abc: str, *, bar_numbers: bool = True) -> list[dict]:
    """abcm2ps's engraving of ``abc`` (its PostScript), one dict a system (staff line)."""
    text = ("%%measurenb 0\n" if bar_numbers else "") + abc
    ps = subprocess.run(["abcm2ps", "-q", "-O", "-", "-"], input=text, capture_output=True, text=True,
                        timeout=60).stdout
    body = ps[ps.index("%%EndSetup"):]
    systems = []
    for chunk in re.split(r"/y0\{", body)[1:]:
        parts = [(float(x), kind) for x, kind in re.findall(r"[\d.]+ (-?[\d.]+) -?[\d.]+ (bar|thbar|dbar)\b", chunk)]
        parts += [(float(x), "rdots") for x in re.findall(r"(-?[\d.]+) -?[\d.]+ rdots", chunk)]
        heads = [float(x) for x in re.findall(r"(-?[\d.]+) -?[\d.]+ (?:hd|Hd|HD|HDD|r\d+)\b", chunk)]
        first = min(heads) if heads else 0.0
        lines: list[list[tuple[float, str]]] = []  # bar lines: a repeat sign is a bar, a thick bar and dots
        for x, kind in sorted(part for part in parts if part[0] > first):
            if lines and x - lines[-1][-1][0] <= 12:
                lines[-1].append((x, kind))
            else:
                lines.append([(x, kind)])
        kinds = {kind for _, kind in lines[-1]} if lines else set()
        signatures = []
        for line in chunk.splitlines():
            marks = re.findall(r"-?[\d.]+ -?[\d.]+ (sh0|ft0|nt0)", line)
            if marks:
                signatures.append((marks.count("sh0"), marks.count("ft0")))
        systems.append({
            "measures": len(lines),
            "number": (re.findall(r"\((\d+)\)show", chunk) or [None])[0],
            "keys": signatures,
            "accidentals": len(re.findall(r" (?:y|gsc) (?:sh0|ft0|nt0|dsh0|dft0)", chunk)),  # notes, graces
            "graces": chunk.count(" ghd"),
            "tuplets": chunk.count(" bnum"),
            "endings": chunk.count(" repbra"),
            "repeats": chunk.count(" rdots"),
            "final": "thbar" in kinds and "rdots" not in kinds,
        })
    return systems


# --- what folkrnn's SVG draws, system by system -------------------------------------------------


def classes(element: ET.Element) -> list[str]:
    return (element.get("class") or "").split()


def glyphs(element: ET.Element) -> list[str]:
    return [use.get(HREF, use.get("href", ""))[1:5] for use in element.iter(f"{SVG}use")]


def svg_systems(svg: str) -> list[dict]:
    """folkrnn's engraving (verovio's SVG), one dict a system."""
    root = ET.fromstring(svg)
    systems = []
    for system in root.iter(f"{SVG}g"):
        if "system" not in classes(system):
            continue
        groups = list(system.iter(f"{SVG}g"))
        signatures = []
        for group in groups:
            if "keySig" in classes(group) and glyphs(group):  # C major draws an empty one
                marks = glyphs(group)
                if marks.count(SHARP) or marks.count(FLAT) or not marks.count(NATURAL):
                    signatures.append((marks.count(SHARP), marks.count(FLAT)))
                else:  # naturals alone: the change to C major
                    signatures.append((0, 0))
        numbers = ["".join(g.itertext()).strip() for g in groups if "mNum" in classes(g)]
        bar_lines = [g for g in groups if "barLine" in classes(g)]
        last = bar_lines[-1] if bar_lines else None
        widths = [float(p.get("stroke-width", 0)) for p in last.iter(f"{SVG}path")] if last is not None else []
        systems.append({
            "measures": sum("measure" in classes(g) for g in groups),
            "number": numbers[0] if numbers else None,
            "keys": signatures,
            "accidentals": sum("accid" in classes(g) and bool(glyphs(g)) for g in groups),  # drawn ones
            "graces": sum("note" in classes(g) and g.get("data-grace") is not None for g in groups),
            "tuplets": sum("tuplet" in classes(g) for g in groups),
            "endings": sum("ending" in classes(g) for g in groups),
            "repeats": sum(glyphs(g).count("E044") // 2 for g in bar_lines),
            "final": len(widths) == 2 and max(widths) > 2 * min(widths) and "E044" not in glyphs(last),
            "element": system,
        })
    return systems


def svg_of(abc: str) -> str:
    return tune_to_svg(parse(abc), abc=abc)


COMPARED = ("measures", "number", "keys", "accidentals", "graces", "tuplets", "endings", "repeats")


# --- line by line against abcm2ps -----------------------------------------------------------------


@needs_abcm2ps
@pytest.mark.parametrize("name", FIXTURES)
def test_each_line_draws_what_abcm2ps_draws(name):
    """Lines, bars a line, bar numbers, key signatures and key changes, accidentals, grace notes,
    tuplets, endings and repeat signs: the same as abcm2ps's engraving of the same ABC (written
    with a line break every four bars or at a part's end, as tunebooks write it)."""
    abc = fixture(name)
    expected = abcm2ps_systems(abc)
    drawn = svg_systems(svg_of(abc))
    assert len(drawn) == len(expected), f"{len(drawn)} lines, abcm2ps {len(expected)}"
    for line, (ours, theirs) in enumerate(zip(drawn, expected), start=1):
        for what in COMPARED:
            assert ours[what] == theirs[what], f"line {line}: {what} {ours[what]!r}, abcm2ps {theirs[what]!r}"


@needs_abcm2ps
@pytest.mark.parametrize("name", FIXTURES)
def test_lines_follow_the_phrases_not_the_abc_line_breaks(name):
    """The same tune written on one long line is laid out as before: four bars a line, each part
    on a new line, a pickup not counted (abcm2ps, which follows the ABC's lines, is the reference
    for the ABC written on phrases)."""
    abc = fixture(name)
    head, _, body = abc.partition("\nK:")
    key, _, notes = body.partition("\n")
    one_line = head + "\nK:" + key + "\n" + " ".join(line for line in notes.splitlines()
                                                       if not line.startswith("%") and not line.startswith("K:"))
    if "\nK:" in notes:  # a K: line must stay a line: keep the tune as written
        one_line = abc
    drawn = [system["measures"] for system in svg_systems(svg_of(one_line))]
    assert drawn == [system["measures"] for system in abcm2ps_systems(abc)]


def test_key_change_is_a_key_signature_not_a_clef():
    """graces_key_change.abc moves from D to G with a K: line: one clef a line, and the second
    part's lines carry one sharp (the issue's bug drew a treble clef there and kept two sharps,
    so C natural read as C sharp)."""
    systems = svg_systems(svg_of(fixture("graces_key_change")))
    for system in systems:
        clefs = [g for g in system["element"].iter(f"{SVG}g") if "clef" in classes(g)]
        assert len(clefs) == 1
    assert systems[0]["keys"][0] == (2, 0)
    assert systems[-1]["keys"] == [(1, 0)] and systems[-2]["keys"] == [(1, 0)]


def test_grace_notes_are_small_notes_outside_the_beams():
    """{f}ef{f/2}e2: two grace notes, drawn small, and no beam holds one with the melody."""
    root = ET.fromstring(svg_of(fixture("graces_key_change")))
    graces = [g for g in root.iter(f"{SVG}g") if "note" in classes(g) and g.get("data-grace")]
    assert len(graces) == 8
    for beam in (g for g in root.iter(f"{SVG}g") if "beam" in classes(g)):
        notes = [g for g in beam.iter(f"{SVG}g") if "note" in classes(g)]
        kinds = {g.get("data-grace") is not None for g in notes}
        assert len(kinds) == 1, "a beam joins grace notes and melody notes"


def test_every_tuplet_says_which_notes_it_holds():
    """A tuplet number stands over a beam of exactly its notes, or it gets a bracket: never a bare
    3 over the five notes of (3DCB,DC."""
    root = ET.fromstring(svg_of(fixture("hornpipe_triplets")))
    tuplets = [g for g in root.iter(f"{SVG}g") if "tuplet" in classes(g)]
    assert len(tuplets) == 10
    for tuplet in tuplets:
        bracket = any("tupletBracket" in classes(g) for g in tuplet.iter(f"{SVG}g"))
        beams = [g for g in tuplet.iter(f"{SVG}g") if "beam" in classes(g)]
        notes = [g for g in tuplet.iter(f"{SVG}g") if "note" in classes(g)]
        beamed = [g for beam in beams for g in beam.iter(f"{SVG}g") if "note" in classes(g)]
        assert bracket or (len(beams) == 1 and len(beamed) == len(notes) == 3)
    # and no beam holds a tuplet's notes together with notes outside it
    for beam in (g for g in root.iter(f"{SVG}g") if "beam" in classes(g)):
        inside = [g for g in beam.iter(f"{SVG}g") if "tuplet" in classes(g)]
        assert not inside


@needs_abcm2ps
@pytest.mark.parametrize("name", ["jig_endings", "inline_keys"])
def test_the_tune_ends_on_a_final_bar(name):
    """A thin and a thick line at the end: abcm2ps draws one for |] (jig_endings), and folkrnn
    also for a tune that ends on || (inline_keys), as a printed tune ends."""
    drawn = svg_systems(svg_of(fixture(name)))
    assert drawn[-1]["final"]
    assert not any(system["final"] for system in drawn[:-1])
    if name == "jig_endings":
        assert abcm2ps_systems(fixture(name))[-1]["final"]


def test_title_and_subtitle_name_the_tune_its_rhythm_and_key():
    text = " ".join(ET.fromstring(svg_of(fixture("jig_endings"))).itertext())
    assert "The Test Jig" in text and "jig \u00b7 G major" in text
    text = " ".join(ET.fromstring(svg_of(fixture("inline_keys"))).itertext())
    assert "polka \u00b7 F major" in text
    # R:other, the model's word for a tune of no rhythm it knows, is no word for a musician
    other = fixture("jig_endings").replace("R:jig", "R:other")
    assert "R:other" in other
    text = " ".join(ET.fromstring(svg_of(other)).itertext())
    assert "G major" in text and "other" not in text


# --- slurs, decorations and chord symbols, read from the ABC text --------------------------------

MARKS = ("slur", "tie", "harm", "artic", "trill", "fermata", "mordent", "turn")
# abcm2ps's PostScript names for the decorations of ornaments_chords.abc -> verovio's classes
ABCM2PS_DECORATIONS = {"stc": "artic", "accent": "artic", "upb": "artic", "dnb": "artic", "trl": "trill",
                       "hld": "fermata", "lmrd": "mordent", "grm": "turn", "turn": "turn"}
CHORD_SYMBOLS = ["G", "D", "Am7", "G", "C", "D", "G", "Em", "C", "D", "G", "D", "G"]


def svg_marks(svg: str) -> tuple[Counter, list[str]]:
    """The marks verovio drew (by class) and the chord symbols' texts, in order."""
    root = ET.fromstring(svg)
    groups = [g for g in root.iter(f"{SVG}g") if classes(g)]
    counts = Counter(classes(g)[0] for g in groups if classes(g)[0] in MARKS)
    return counts, ["".join(g.itertext()).strip() for g in groups if "harm" in classes(g)]


def abcm2ps_marks(abc: str) -> tuple[Counter, list[str]]:
    """What abcm2ps drew: slurs and ties (it draws both with SL), decorations as verovio's classes,
    and the chord symbols' texts, in order."""
    ps = subprocess.run(["abcm2ps", "-q", "-O", "-", "-"], input=abc, capture_output=True, text=True,
                        timeout=60).stdout
    body = ps[ps.index("%%EndSetup"):]
    counts = Counter({"slur+tie": len(re.findall(r" SL$", body, re.MULTILINE))})
    # one a line: "x y stc", or flipped below the staff "x y gsave 1 -1 scale neg accent grestore"
    for name in re.findall(r" (" + "|".join(ABCM2PS_DECORATIONS) + r")(?: grestore)?$", body, re.MULTILINE):
        counts[ABCM2PS_DECORATIONS[name]] += 1
    return counts, re.findall(r"\(([^()]*)\)gcshow", body)


def test_slurs_decorations_and_chord_symbols_are_drawn_from_the_abc():
    """ornaments_chords.abc, counted by hand: 6 slurs (one over a triplet, one across a bar line),
    a tie (G-|G2; f2-f is one note), 13 chord symbols, 7 articulations (4 staccato dots, two of
    them on chords, an accent, an up and a down bow), 2 trills, 2 fermatas, a mordent and 2 rolls
    (drawn as turns). The ties merge written notes: the marks after them still find their own
    notes, and the chord symbol on G-|"G"G2 stands at the bar's first note."""
    abc = fixture("ornaments_chords")
    counts, symbols = svg_marks(svg_of(abc))
    assert counts == {"slur": 6, "tie": 1, "harm": 13, "artic": 7, "trill": 2, "fermata": 2, "mordent": 1,
                      "turn": 2}
    assert symbols == CHORD_SYMBOLS
    mei = ET.fromstring(tune_to_mei(parse(abc), abc=abc))
    artic = [(element.tag.split("}")[1], element.get("pname"), element.get("artic"))
             for element in mei.iter() if element.get("artic")]
    assert artic == [("note", "f", "upbow"), ("note", "d", "stacc"), ("note", "c", "stacc"),
                     ("note", "g", "dnbow"), ("note", "e", "acc"), ("chord", None, "stacc"),
                     ("chord", None, "stacc")]
    measures = {m.get("n"): m for m in mei.iter(f"{MEI}measure")}
    first = next(e for e in measures["8"].iter() if e.tag in (f"{MEI}note", f"{MEI}chord"))
    assert [(h.text, h.get("startid")) for h in measures["8"].iter(f"{MEI}harm")][0] == ("G", "#" + first.get(XML_ID))
    slur = list(measures["7"].iter(f"{MEI}slur"))[-1]
    assert slur.get("endid") == "#" + first.get(XML_ID)  # (FG-|G2): from F to the G after the bar line


def test_without_the_abc_text_or_with_another_tune_s_no_marks_are_drawn():
    """The Tune keeps no slurs, decorations or chord symbols; a text whose notes are not the tune's
    is not read for them."""
    abc = fixture("ornaments_chords")
    assert svg_marks(tune_to_svg(parse(abc)))[0] == {"tie": 1}
    assert svg_marks(tune_to_svg(parse(fixture("jig_endings")), abc=abc))[0] == {}


@pytest.mark.parametrize("name", [name for name in FIXTURES if name != "ornaments_chords"])
def test_a_tune_without_marks_engraves_the_same_with_its_text(name):
    assert tune_to_svg(parse(fixture(name)), abc=fixture(name)) == tune_to_svg(parse(fixture(name)))


@needs_abcm2ps
def test_slurs_decorations_and_chord_symbols_are_abcm2ps_s():
    abc = fixture("ornaments_chords")
    ours, our_symbols = svg_marks(svg_of(abc))
    theirs, their_symbols = abcm2ps_marks(abc)
    assert ours["slur"] + ours["tie"] + 1 == theirs["slur+tie"]  # abcm2ps ties f2-f, folkrnn writes f3
    for what in ("artic", "trill", "fermata", "mordent", "turn"):
        assert ours[what] == theirs[what], what
    assert our_symbols == their_symbols == CHORD_SYMBOLS


@needs_poppler
def test_render_draws_them_in_svg_and_pdf(tmp_path):
    """``folkrnn render`` gives the tune's text to the engraver: the chord symbols are in the PDF's
    text, the slurs in the SVG."""
    from typer.testing import CliRunner

    from folkrnn.cli import app

    book = tmp_path / "book.abc"
    book.write_text(fixture("ornaments_chords"))
    for suffix in ("svg", "pdf"):
        result = CliRunner().invoke(app, ["render", str(book), "--format", suffix, "--out", str(tmp_path)])
        assert result.exit_code == 0, result.output
    assert svg_marks((tmp_path / "the-test-ornaments.svg").read_text())[0]["slur"] == 6
    text = subprocess.run(["pdftotext", str(tmp_path / "the-test-ornaments.pdf"), "-"], capture_output=True,
                          text=True, timeout=60).stdout
    assert "Am7" in text and "Em" in text


# --- PDF --------------------------------------------------------------------------------------------


def pdfinfo(path: Path) -> dict[str, str]:
    out = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert not out.stderr.strip(), out.stderr  # poppler found nothing wrong with the file
    return dict(line.split(":", 1) for line in out.stdout.splitlines() if ":" in line)


@needs_poppler
@pytest.mark.parametrize(("paper", "size"), [("a4", "595.276 x 841.89"), ("letter", "612 x 792")])
def test_pdf_pages_are_a4_or_letter_and_a_tunebook_shares_them(tmp_path, paper, size):
    tunes = [parse(fixture(name)) for name in FIXTURES]
    path = tmp_path / "tunes.pdf"
    path.write_bytes(tunes_to_pdf(tunes, paper=paper))
    info = pdfinfo(path)
    assert info["Page size"].strip().startswith(size + " pts")
    pages = int(info["Pages"])
    assert 1 < pages < len(tunes)  # several tunes a page where they fit
    text = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True).stdout
    for tune in tunes:
        assert tune.title in text
    assert "jig \u00b7 G major" in text


@needs_poppler
@pytest.mark.skipif(shutil.which("rsvg-convert") is None, reason="librsvg2-bin is not installed")
def test_pdf_page_looks_like_the_svg(tmp_path):
    """The PDF writer draws what librsvg draws of the same engraving: poppler's rendering of the
    page and rsvg-convert's of the SVG agree on where the ink is, within a pixel."""
    import numpy as np

    from folkrnn.sheet import engrave

    Image = pytest.importorskip("PIL.Image")

    tune = parse(fixture("graces_key_change"))
    (tmp_path / "tune.pdf").write_bytes(tunes_to_pdf([tune]))
    subprocess.run(["pdftoppm", "-r", "150", "-gray", "-png", "-singlefile", str(tmp_path / "tune.pdf"),
                    str(tmp_path / "page")], check=True, timeout=60)
    # the block tunes_to_pdf places at the top of the page: 210 mm wide, 5 mm down
    svg = engrave(tune, width=2100, margins=(50, 150, 50, 150))[0]
    (tmp_path / "tune.svg").write_text(svg)
    page = np.asarray(Image.open(tmp_path / "page.png").convert("L")) < 160
    subprocess.run(["rsvg-convert", "-w", str(page.shape[1]), "-b", "white", str(tmp_path / "tune.svg"), "-o",
                    str(tmp_path / "svg.png")], check=True, timeout=60)
    drawn = np.asarray(Image.open(tmp_path / "svg.png").convert("L")) < 160
    top = round(5 * 150 / 25.4)
    page = page[top:top + drawn.shape[0], :]
    drawn = drawn[:page.shape[0], :]

    def near(a, b):  # the share of a's ink that b has within one pixel
        grown = b.copy()
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                grown |= np.roll(np.roll(b, dy, 0), dx, 1)
        return (a & grown).sum() / max(a.sum(), 1)

    assert drawn.sum() > 20000
    assert near(drawn, page) > 0.95 and near(page, drawn) > 0.95
    music = slice(drawn.shape[0] // 5, None)  # below the title, whose font the two tools choose
    assert near(drawn[music], page[music]) > 0.99 and near(page[music], drawn[music]) > 0.99


@needs_poppler
def test_render_writes_a_pdf_per_tune_and_takes_paper(tmp_path):
    from typer.testing import CliRunner

    from folkrnn.cli import app

    book = tmp_path / "book.abc"
    book.write_text(fixture("jig_endings") + "\n" + fixture("hornpipe_triplets"))
    result = CliRunner().invoke(app, ["render", str(book), "--format", "pdf", "--paper", "letter",
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    written = sorted((tmp_path / "out").glob("*.pdf"))
    assert [p.name for p in written] == ["the-test-hornpipe.pdf", "the-test-jig.pdf"]
    assert pdfinfo(written[0])["Page size"].strip().startswith("612 x 792")
    result = CliRunner().invoke(app, ["render", str(book), "--format", "pdf", "--paper", "a5",
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code != 0


@pytest.mark.slow
@needs_poppler
def test_generate_writes_one_tunebook_pdf_and_compose_one_pdf(tmp_path):
    from typer.testing import CliRunner

    from folkrnn.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["generate", "-n", "4", "--seed", "7", "--workers", "1", "--format", "abc,pdf",
                                 "--out", str(tmp_path / "gen")])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "gen").iterdir()) == ["summary.json", "tunes.abc", "tunes.pdf"]
    info = pdfinfo(tmp_path / "gen" / "tunes.pdf")
    assert info["Page size"].strip().startswith("595.276 x 841.89") and 1 <= int(info["Pages"]) <= 4
    result = runner.invoke(app, ["compose", "--seed", "3", "--format", "pdf", "--paper", "letter",
                                 "--out", str(tmp_path / "one")])
    assert result.exit_code == 0, result.output
    (pdf,) = (tmp_path / "one").glob("*.pdf")
    assert pdfinfo(pdf)["Page size"].strip().startswith("612 x 792")


@pytest.mark.slow
@needs_abcm2ps
def test_generated_tunes_keep_their_key_changes_as_abcm2ps_draws_them(tmp_path):
    """The issue's repro: generate -n 30 --seed 100; every tune's key signatures (in order, each
    change once) and its count of bars and accidentals are abcm2ps's for the same ABC."""
    from typer.testing import CliRunner

    from folkrnn.abc import split_tunebook
    from folkrnn.cli import app

    result = CliRunner().invoke(app, ["generate", "-n", "30", "--seed", "100", "--workers", "1", "--format",
                                      "abc,svg", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    texts = split_tunebook((tmp_path / "tunes.abc").read_text(), "tunes.abc")
    svgs = sorted(tmp_path.glob("*.svg"))
    assert len(texts) == len(svgs) == 30

    def changes(systems):
        keys = [key for system in systems for key in system["keys"]]
        return [key for i, key in enumerate(keys) if not i or key != keys[i - 1]]

    for text, svg in zip(texts, svgs):
        ours, theirs = svg_systems(svg.read_text()), abcm2ps_systems(text.text)
        assert changes(ours) == changes(theirs), svg.name
        # the sheet engraves the parsed tune: a tuplet written with an explicit ratio whose notes
        # sound as plain values ("(3:2:3E3/2F3/2D3/2", three eighths) is drawn as those plain
        # notes, where abcm2ps draws the sign as written; elsewhere the counts agree
        ratio = re.search(r"\(\d:\d", text.text) is not None
        for what in ("measures", "accidentals", "graces", "tuplets", "endings"):
            drawn, reference = sum(s[what] for s in ours), sum(s[what] for s in theirs)
            if what == "tuplets" and ratio:
                assert drawn <= reference, (svg.name, what)
            elif what == "accidentals":
                assert drawn == reference + _carried_across_octaves(text.text), (svg.name, what)
            else:
                assert drawn == reference, (svg.name, what)


def _carried_across_octaves(text: str) -> int:
    """Notes that sound an accidental written on their letter in another octave earlier in the bar,
    with no sign of their own. ABC 2.1 (``%%propagate-accidentals pitch``, its default) and abc2midi,
    the reference player, play ``^C c`` in D mixolydian as two C sharps; the sheet draws what sounds,
    a sharp on each, where abcm2ps draws what is written (no sign on the c, which a reader plays as C)."""
    from folkrnn.abc import parse

    signature = parse(text).key.accidentals
    body = text.split("\nK:", 1)[1].split("\n", 1)[1]
    body = re.sub(r'"[^"]*"|![^!]*!|%[^\n]*|\[[A-Za-z]:[^\]]*\]', "", body)
    alterations = {"^^": 2, "^": 1, "=": 0, "_": -1, "__": -2}
    count = 0
    for bar in re.split(r"[|\n]", body):
        by_letter: dict[str, int] = {}  # letter -> the alteration last written on it, in any octave
        by_place: dict[tuple[str, str], int] = {}  # (letter, octave as written) -> the one it shows
        for accidental, letter, marks in re.findall(r"(\^\^|__|[_=^]?)([A-Ga-g])([,']*)", bar):
            name, place = letter.upper(), (letter, marks)
            if accidental:
                by_letter[name] = by_place[place] = alterations[accidental]
            elif place not in by_place and by_letter.get(name, signature[name]) != signature[name]:
                count += 1  # carried from another octave: drawn here, once for this place
                by_place[place] = by_letter[name]
    return count


def test_an_accidental_carried_across_octaves_is_counted():
    assert _carried_across_octaves("X:1\nT:T\nM:4/4\nL:1/8\nK:Dmix\nF^C c2 E c3|c8|]\n") == 1
    assert _carried_across_octaves("X:1\nT:T\nM:4/4\nL:1/8\nK:G\n^f F =C c C2 ^C2|]\n") == 0


def test_a_note_keeps_the_letter_it_is_written_with():
    """^d in G is D sharp on the sheet, as abcm2ps draws it (the sounding pitch alone spelt it E flat,
    and the e after it took a natural it does not need); without the text, the spelling is the
    engraver's own."""
    abc = "X:1\nT:T\nM:4/4\nL:1/8\nK:G\nc2ed ^d>ec2|[^D_B]4 _e2e2|]\n"

    def shown(text: str) -> list[tuple[str, str | None]]:
        return [(re.search(r'pname="(\w)"', a).group(1), (re.search(r' accid="(\w+)"', a) or [None, None])[1])
                for a in re.findall(r"<note ([^>]*)>", text)]

    assert shown(tune_to_mei(parse(abc), abc=abc)) == [
        ("c", None), ("e", None), ("d", None), ("d", "s"), ("e", None), ("c", None),
        ("d", "s"), ("b", "f"), ("e", "f"), ("e", None)]
    assert shown(tune_to_mei(parse(abc)))[3] == ("e", "f")
    # an accidental carries to the bar's end on its letter, and only there: B after ^A in F is B flat,
    # and d after _e is still D sharp
    for text, drawn in (("K:F\n^A B c2 A B c2|]", [("a", "s"), ("b", None), ("c", None), ("a", None), ("b", None),
                                                   ("c", None)]),
                        ("K:G\n^d d _e d e4|]", [("d", "s"), ("d", None), ("e", "f"), ("d", None), ("e", None)])):
        abc = "X:1\nT:T\nM:4/4\nL:1/8\n" + text + "\n"
        assert shown(tune_to_mei(parse(abc), abc=abc)) == drawn, text


def test_accidentals_are_shown_as_written_courtesy_ones_too():
    """^F in G sounds as F does, but the musician wrote the sign, and abcm2ps draws it: so do we (not
    on the second note of a tie, which is not drawn)."""
    abc = "X:1\nT:T\nM:4/4\nL:1/8\nK:G\nG^FGA B^c=cB|[^F^c]2 =F2 ^F2-^F2|]\n"
    mei = tune_to_mei(parse(abc), abc=abc)
    def shown(text: str) -> list[tuple[str, str | None]]:
        return [(re.search(r'pname="(\w)"', a).group(1), (re.search(r' accid="(\w+)"', a) or [None, None])[1])
                for a in re.findall(r"<note ([^>]*)>", text)]

    assert shown(mei) == [("g", None), ("f", "s"), ("g", None), ("a", None), ("b", None), ("c", "s"), ("c", "n"),
                          ("b", None), ("f", "s"), ("c", "s"), ("f", "n"), ("f", "s")]
    plain = tune_to_mei(parse(abc))  # without the text: only the accidentals the key and bar need
    assert shown(plain)[1] == ("f", None) and shown(plain)[8] == ("f", None)


@needs_abcm2ps
def test_a_grace_notes_written_accidental_is_drawn_as_abcm2ps_draws_it():
    """``{^f}g`` in G: the grace note's sharp is the key's, but it is written, and abcm2ps draws it,
    as it does a main note's; before a chord, a decorated or slurred note, and beside an accidental
    the key needs. Seen on a generated jig (generate -n 30 --seed 100: "The Widow Machree")."""
    for body in ("{^f}gfe d2B|", "{g^f}gfe d2B|", "{^f}[gB]fe d2B|", "{^f}~g fe d2B|", "{^f}(g fe) d2B|",
                 "^f{^f}gfe d2B|", "{^c}gfe d2B|", "{f}gfe d2B|", "{=f}g^fe d2B|"):
        abc = f"X:1\nT:T\nM:6/8\nL:1/8\nK:G\n{body}\n"
        pages = engrave(parse(abc), abc=abc)
        assert [system["accidentals"] for system in svg_systems(pages[0])] == \
            [system["accidentals"] for system in abcm2ps_systems(abc)], body
    abc = "X:1\nT:T\nM:6/8\nL:1/8\nK:G\n{^f}gfe d2B|\n"
    assert re.search(r'<note [^>]*grace="acc"[^>]*accid="s"|<note [^>]*accid="s"[^>]*grace="acc"',
                     tune_to_mei(parse(abc), abc=abc))


def test_a_written_accidental_after_a_broken_rhythm_is_drawn():
    """``d>^c``: the broken rhythm moves ^c to the dotted note's end; the sign written there is drawn
    there (it was looked for where the undotted note would have ended, and lost), as abcm2ps draws
    it. Seen on a generated hornpipe (generate -n 30 --seed 100: "After the Liverpool Hornpipe")."""
    abc = "X:1\nT:T\nM:4/4\nL:1/8\nK:G\n^c>gf>e d>!trill!^cf>d|e>fe>^d c/2A/2G3|]\n"
    mei = tune_to_mei(parse(abc), abc=abc)
    assert [a for a in re.findall(r' accid="(\w+)"', mei)] == ["s", "s", "s"]
    pages = engrave(parse(abc), abc=abc)
    assert [system["accidentals"] for system in svg_systems(pages[0])] == \
        [system["accidentals"] for system in abcm2ps_systems(abc)] == [3]
    # the marks move to the note after the broken rhythm: its own, its decorations, before a grace too
    lexed, marks = lex("X:1\nM:4/4\nL:1/8\nK:C\nd>!trill!{g}^c d2 e2 f2|\n"), []
    tune_from_lexed(lexed, marks=marks)
    assert [(str(lexed.records[index][0]), onset) for index, _, onset in marks][:3] == \
        [("note", 0), ("deco", Fraction(3, 4)), ("note", Fraction(3, 4))]

