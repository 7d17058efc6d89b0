"""compose and generate: the files and their readers (pretty_midi, music21, verovio, wave), keys,
provenance, determinism, generate == compose, and every bad input: one line, non-zero exit, no
half-written file."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from folkrnn.abc import parse
from folkrnn.cli import app
from folkrnn.compose import (
    ComposeOptions,
    compose,
    generate,
    load_composer,
    parse_key_option,
    prime_tokens,
    transpose_tokens,
    usual_tonic,
)
from folkrnn.errors import AbcError, ModelError, OptionError
from folkrnn.tables import DANCES
from folkrnn.validate import validate_tune

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def model(tiny_model_dir) -> str:
    return str(tiny_model_dir)


def run(*args: str):
    result = CliRunner().invoke(app, list(args))
    return result


def one_line_error(result, code: int | None = None) -> str:
    assert result.exit_code != 0 and (code is None or result.exit_code == code), result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def no_partial_files(folder: Path) -> None:
    assert not [p for p in folder.rglob("*") if ".part" in p.name or ".tmp" in p.name]


# --- compose: the files and their readers --------------------------------------------------------


def test_compose_writes_every_format_and_readers_open_them(model, tmp_path):
    import pretty_midi
    from music21 import converter

    options = ComposeOptions(title="The Humours of Ballyloughlin", seed=1, model=model,
                             out=str(tmp_path), formats=["abc", "mid", "svg", "musicxml", "wav"])
    composed = compose(options)
    names = sorted(p.name for p in composed.files)
    assert names == sorted(f"the-humours-of-ballyloughlin.{s}" for s in ("abc", "mid", "svg", "musicxml", "wav"))
    text = (tmp_path / "the-humours-of-ballyloughlin.abc").read_text()
    assert text == composed.abc
    header = text.split("\n")
    assert header[0] == "X:1" and header[1] == "T:The Humours of Ballyloughlin"
    assert [line[:2] for line in header[:9]] == ["X:", "T:", "R:", "N:", "% ", "M:", "L:", "Q:", "K:"]
    assert "seed 1" in header[3] and "sha256" in header[3]  # a short N: line, and the command below it
    assert header[4].startswith("% folkrnn compose --seed 1 ") and "--temperature 1 " in header[4]
    tune = parse(text)
    assert validate_tune(text).valid and tune.notes
    # MIDI: pretty_midi reads it, a fiddle (program 40), the notes of the tune played once per pass
    midi = pretty_midi.PrettyMIDI(str(tmp_path / "the-humours-of-ballyloughlin.mid"))
    played = [n for n in tune.unfold()]
    assert midi.instruments[0].program == 40
    assert len(midi.instruments[0].notes) == len(played)
    assert sorted({n.pitch for n in midi.instruments[0].notes}) == sorted({n.pitch for n in played})
    # MusicXML: music21 reads it back with the title, the key and the notes
    score = converter.parse(str(tmp_path / "the-humours-of-ballyloughlin.musicxml"))
    assert score.metadata.bestTitle == "The Humours of Ballyloughlin"
    xml_notes = [n for n in score.recurse().notes if not n.duration.isGrace]
    sounding = sum(len(n.pitches) if n.isChord else 1 for n in xml_notes if not (n.tie and n.tie.type != "start"))
    assert sounding == len([n for n in tune.notes if not n.grace])
    assert score.recurse().getElementsByClass("KeySignature")[0].sharps == \
        {"maj": 0, "min": -3, "dor": -2, "mix": -1}[tune.key.mode] + {"D": 2, "G": 1, "A": 3, "E": 4}[tune.key.tonic]
    # SVG: verovio's page, with the title
    svg = (tmp_path / "the-humours-of-ballyloughlin.svg").read_text()
    assert svg.lstrip().startswith(("<?xml", "<svg")) and "Humours" in svg
    # WAV: a mono 16-bit file as long as the performance
    with wave.open(str(tmp_path / "the-humours-of-ballyloughlin.wav")) as handle:
        assert handle.getnchannels() == 1 and handle.getsampwidth() == 2
        seconds = handle.getnframes() / handle.getframerate()
    assert abs(seconds - midi.get_end_time()) < 1.0
    no_partial_files(tmp_path)


def test_same_seed_byte_identical_files(model, tmp_path):
    formats = ["abc", "mid", "svg", "musicxml", "wav"]
    first = compose(ComposeOptions(seed=7, model=model, out=str(tmp_path / "a"), formats=formats))
    second = compose(ComposeOptions(seed=7, model=model, out=str(tmp_path / "b"), formats=formats))
    for a, b in zip(first.files, second.files):
        assert a.name == b.name and a.read_bytes() == b.read_bytes(), a.name
    other = compose(ComposeOptions(seed=8, model=model, out=str(tmp_path / "c"), formats=["abc"]))
    assert other.abc != first.abc


def test_keys_follow_the_mode_and_rhythm_or_the_key_option(model, tmp_path):
    assert usual_tonic("maj", "reel") == "D" and usual_tonic("maj", "jig") == "G"
    assert usual_tonic("dor") == "A" and usual_tonic("min", "jig") == "E" and usual_tonic("mix") == "D"
    assert parse_key_option("F#") == ("F#", None) and parse_key_option("Ador") == ("A", "dor")
    assert parse_key_option("E minor") == ("E", "min") and parse_key_option("Bb") == ("Bb", None)
    with pytest.raises(OptionError):
        parse_key_option("H")
    for options, key in ((dict(rhythm="reel", mode="major"), ("D", "maj")),
                         (dict(mode="dorian"), ("A", "dor")), (dict(mode="minor", rhythm="jig"), ("E", "min")),
                         (dict(mode="major", key="F#"), ("F#", "maj")),
                         (dict(key="Bb", mode="mixolydian"), ("Bb", "mix"))):
        composed = compose(ComposeOptions(seed=3, model=model, **options), write=False)
        assert (composed.tune.key.tonic, composed.tune.key.mode) == key
        assert validate_tune(composed.abc).valid
    # the same tune in two keys: the same intervals
    in_d = compose(ComposeOptions(seed=4, model=model, mode="major", key="D"), write=False)
    in_g = compose(ComposeOptions(seed=4, model=model, mode="major", key="G"), write=False)
    d_pitches = [n.pitch for n in in_d.tune.notes]
    g_pitches = [n.pitch for n in in_g.tune.notes]
    assert len(set(np.subtract(g_pitches, d_pitches))) == 1


def test_transpose_tokens_spells_in_the_key():
    assert transpose_tokens(["K:Cdor", "c", "=B", "_e", "[K:Gmaj]", "^f"], "A") == \
        ["K:Ador", "A", "^G", "=c", "[K:Emaj]", "^d"]  # a written accidental stays written
    assert transpose_tokens(["K:Cmaj", "c", "_B"], "F") == ["K:Fmaj", "f", "_e"]
    # the title's letters are not notes: "The Ace" stays as it is in D
    title = ["<s>", "T", "h", "e", "▁", "A", "c", "e", "R:reel", "M:4/4"]
    assert transpose_tokens([*title, "K:Cmaj", "c", "e"], "D") == [*title, "K:Dmaj", "d", "f"]


def test_model_written_titles_are_not_transposed(model):
    composed = compose(ComposeOptions(seed=3, model=model, mode="major", key="D"), write=False)
    untransposed = compose(ComposeOptions(seed=3, model=model, mode="major", key="C"), write=False)
    assert composed.tune.field_values("T") == untransposed.tune.field_values("T")
    assert composed.tune.key.tonic != untransposed.tune.key.tonic


def test_prime_is_read_as_abc_or_tokens(model):
    vocabulary = load_composer(model).vocabulary
    assert prime_tokens("K:D\nd2fd AdFA", vocabulary) == (
        ["c", "2", "e", "c", "G", "c", "E", "G"], {"K": "maj", "tonic": "D"})
    assert prime_tokens("M:6/8 K:Cmaj |: G", vocabulary) == (["|:", "G"], {"M": "6/8", "K": "maj"})
    with pytest.raises(AbcError, match="prime is not ABC"):
        prime_tokens("abc}}} ((((", vocabulary)
    with pytest.raises(OptionError, match="nearest"):
        prime_tokens("c'''' d", vocabulary)


def test_a_prime_is_continued_in_its_own_key(model):
    composed = compose(ComposeOptions(seed=5, model=model, prime="K:D\nd2fd AdFA", meter="4/4"), write=False)
    body = composed.abc.split("\nK:")[1].split("\n", 1)[1].replace(" ", "")
    assert composed.tune.key.tonic == "D" and body.startswith("d2fdAdFA")
    assert "--prime" in composed.abc


def test_title_and_header_options_are_in_the_tune(model):
    composed = compose(ComposeOptions(seed=6, model=model, title="Tom's Jig", rhythm="jig", meter="6/8"),
                       write=False)
    assert composed.tune.title == "Tom's Jig" and composed.tune.rhythm == "jig"
    assert str(composed.tune.meter) == "6/8"
    title = composed.tokens[1:composed.tokens.index("R:jig")]
    assert "".join(title).replace("\u2581", " ") in ("Tom's Jig", "Toms Jig")


def test_a_dance_in_the_title_sets_its_rhythm_and_meter_unless_told_otherwise(model):
    from folkrnn.compose import DANCE_METERS, dance_of_title, meters_of_title

    assert [dance_of_title(t) for t in ("The Kesh Jig", "Drops of Brandy Slip Jig", "Kerry Polka",
                                         "The Blue Waltz", "The Jig of Slurs", "Slip Jig of Ballyhoura",
                                         "Quick Step 25th Regt", "The Humours")] == \
        ["jig", "slipjig", "polka", "waltz", "jig", "slipjig", "march", None]
    vocabulary = load_composer(model).vocabulary
    for seed in range(4):
        jig = compose(ComposeOptions(seed=seed, model=model, title="The Kesh Jig"), write=False)
        reel = compose(ComposeOptions(seed=seed, model=model, title="The Silver Reel"), write=False)
        assert str(jig.tune.meter) == "6/8" and jig.tune.rhythm == "jig"
        assert str(reel.tune.meter) in DANCE_METERS["reel"] and reel.tune.rhythm == "reel"
        assert any("M:6/8" in w and "from the title" in w for w in jig.warnings)
    told = compose(ComposeOptions(seed=1, model=model, title="The Kesh Jig", meter="2/4", rhythm="reel"),
                   write=False)
    assert str(told.tune.meter) == "2/4" and told.tune.rhythm == "reel"
    assert meters_of_title("The Blue Waltz", vocabulary) == (("3/4",) if "M:3/4" in vocabulary else None)


@pytest.mark.parametrize("strategy", ["greedy", "beam"])
def test_other_strategies_compose(model, strategy):
    composed = compose(ComposeOptions(seed=1, model=model, strategy=strategy, beam_width=2), write=False)
    assert composed.report.valid and f"--strategy {strategy}" in composed.abc


# --- generate --------------------------------------------------------------------------------


def test_generate_writes_tunebook_midi_and_summary_and_tune_i_is_compose(model, tmp_path):
    import pretty_midi

    out = tmp_path / "gen"
    result = generate(ComposeOptions(seed=100, model=model, out=str(out), formats=["abc", "mid"]), 8)
    assert len(result.tunes) == 8 and not result.rejected and not result.interrupted
    book = (out / "tunes.abc").read_text()
    assert [line for line in book.splitlines() if line.startswith("X:")] == [f"X:{i}" for i in range(1, 9)]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["requested"] == 8 and summary["written"] == 8 and summary["valid"] == 8
    assert sum(summary["distribution"]["meter"].values()) == 8
    assert summary["novelty"]["reference"].startswith("not checked")
    mids = sorted(out.glob("*.mid"))
    assert len(mids) == 8 and all(pretty_midi.PrettyMIDI(str(p)).instruments[0].notes for p in mids)
    for entry in summary["tunes"][:3]:
        alone = compose(ComposeOptions(seed=entry["seed"], model=model), write=False)
        made = result.tunes[entry["x"] - 1]
        assert alone.tokens == made.tokens
        assert alone.abc.split("\n", 1)[1] == made.abc.split("\n", 1)[1]  # all but X:


def test_generate_without_keep_holds_no_tune_and_writes_the_same_files(model, tmp_path, monkeypatch):
    # memory must not grow with -n: each finished tune (its parsed Tune, tokens, report) is let go
    # once its files and its place in the tunebook and summary are written
    import gc
    import weakref

    import folkrnn.compose as composing

    made = []
    finish = composing._finish

    def watched(*args, **kwargs):
        composed, reason = finish(*args, **kwargs)
        if composed is not None:
            made.append(weakref.ref(composed.tune))
        return composed, reason

    options = dict(seed=100, model=model, formats=["abc", "mid"])
    kept = generate(ComposeOptions(out=str(tmp_path / "kept"), **options), 8, workers=1)
    monkeypatch.setattr(composing, "_finish", watched)
    light = generate(ComposeOptions(out=str(tmp_path / "light"), **options), 8, workers=1, keep=False)
    gc.collect()
    assert light.tunes == [] and light.written == kept.written == len(kept.tunes) == 8
    assert len(made) == 8 and all(ref() is None for ref in made)
    assert (tmp_path / "light" / "tunes.abc").read_bytes() == (tmp_path / "kept" / "tunes.abc").read_bytes()
    summaries = [json.loads((tmp_path / name / "summary.json").read_text()) for name in ("kept", "light")]
    for summary in summaries:
        summary.pop("seconds"), summary.pop("tunes_per_second")
    assert summaries[0] == summaries[1]
    names = [sorted(path.name for path in (tmp_path / name).iterdir()) for name in ("kept", "light")]
    assert names[0] == names[1]


def test_decode_without_keep_hands_each_tune_on_and_returns_none(model):
    from folkrnn.sample import sample_tunes

    composer = load_composer(model)
    seen = []
    out = sample_tunes(composer.engine, composer.vocabulary, range(3, 9), on_finish=seen.append, keep=False)
    assert out == [] and sorted(tune.index for tune in seen) == list(range(6))
    kept = sample_tunes(composer.engine, composer.vocabulary, range(3, 9))
    assert [tune.tokens for tune in kept] == [tune.tokens for tune in sorted(seen, key=lambda t: t.index)]


def test_generate_with_a_novelty_index_flags_copies(model, tmp_path):
    from folkrnn.abc.tokens import body_of
    from folkrnn.validate import NoveltyIndex

    first = compose(ComposeOptions(seed=300, model=model), write=False)
    index = NoveltyIndex([body_of(first.tokens), ["c", "d", "e", "|"]])
    result = generate(ComposeOptions(seed=300, model=model, out=str(tmp_path / "n")), 2, novelty=index)
    summary = json.loads((tmp_path / "n" / "summary.json").read_text())
    # the tune made from compose's seed (300, or the seed after it where 300 made no whole tune: in
    # generate that is tune 2's) is the copy, and only it
    same = [tune["x"] for tune in summary["tunes"] if tune["seed"] == first.seed]
    assert len(same) == 1 and summary["novelty"]["probable_copies"] == same
    assert summary["tunes"][same[0] - 1]["nearest"]["similarity"] == 1.0
    assert result.tunes[2 - same[0]].report.nearest.similarity < 0.85


def interrupt_at_write(monkeypatch, number: int) -> None:
    """Ctrl-C while generate writes its ``number``-th tune's files."""
    import folkrnn.compose as compose_module

    real = compose_module.write_formats
    calls = []

    def interrupting(*args, **kwargs):
        calls.append(1)
        if len(calls) == number:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(compose_module, "write_formats", interrupting)


def test_generate_interrupted_keeps_finished_tunes(model, tmp_path, monkeypatch):
    interrupt_at_write(monkeypatch, 4)
    out = tmp_path / "ctrl-c"
    result = run("generate", "-n", "9", "--seed", "5", "--model", model, "--out", str(out))
    assert result.exit_code == 130 and "interrupted: kept 3 finished tunes" in result.output
    book = (out / "tunes.abc").read_text()
    assert book.count("X:") == 3 and len(list(out.glob("*.mid"))) == 3
    assert all(validate_tune(text).valid for text in ("X:" + t for t in book.split("X:")[1:]))
    assert json.loads((out / "summary.json").read_text())["interrupted"] is True
    no_partial_files(out)


def test_generate_full_disk_halfway_one_line_and_no_half_file(model, tmp_path, monkeypatch):
    import folkrnn.files as files

    real = os.fdopen
    opened = []

    class FullDisk:
        def __init__(self, handle):
            self.handle = handle

        def write(self, data):
            self.handle.write(data[: len(data) // 2])  # half of it lands, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):
            return getattr(self.handle, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

    def fdopen(fd, *args, **kwargs):
        handle = real(fd, *args, **kwargs)
        opened.append(1)
        return FullDisk(handle) if len(opened) >= 4 else handle

    monkeypatch.setattr(files.os, "fdopen", fdopen)
    out = tmp_path / "full"
    result = run("generate", "-n", "8", "--seed", "1", "--model", model, "--out", str(out))
    lines = [line for line in result.output.splitlines() if line.startswith("error")]
    assert result.exit_code != 0 and len(lines) == 1 and "No space left on device" in lines[0]
    no_partial_files(out)
    for path in out.glob("*.mid"):
        import pretty_midi

        assert pretty_midi.PrettyMIDI(str(path)).instruments  # whole files only


# --- the command line: options and errors ----------------------------------------------------


def test_cli_compose_prints_the_tune_and_a_random_seed(model, tmp_path):
    result = run("compose", "--model", model, "--out", str(tmp_path), "--format", "abc,mid", "--rhythm", "reel")
    assert result.exit_code == 0, result.output
    assert "X:1" in result.output and "R:reel" in result.output
    seed = int(result.output.split("seed: ")[1].split()[0])
    abc = next(tmp_path.glob("*.abc")).read_text()
    made = int(abc.split("--seed ")[1].split()[0])  # the seed asked for, or a later one when it failed
    assert seed <= made <= seed + 10 and abc in result.output
    again = run("compose", "--model", model, "--out", str(tmp_path / "again"), "--format", "abc",
                "--rhythm", "reel", "--seed", str(seed))
    assert again.exit_code == 0, again.output
    assert next((tmp_path / "again").glob("*.abc")).read_text() == abc


def test_cli_never_overwrites_without_force(model, tmp_path):
    args = ["compose", "--model", model, "--out", str(tmp_path), "--seed", "2", "--format", "abc,mid"]
    assert run(*args).exit_code == 0
    abc = next(tmp_path.glob("*.abc"))
    before = abc.read_bytes()
    abc.write_text("mine")
    line = one_line_error(run(*args), 2)
    assert "exists" in line and "--force" in line and abc.read_text() == "mine"
    assert run(*args, "--force").exit_code == 0 and abc.read_bytes() == before


@pytest.mark.parametrize("args,code,words", [
    (["--temperature", "0"], 2, "temperature"),
    (["--temperature", "-1"], 2, "temperature"),
    (["--top-p", "0"], 2, "top-p"),
    (["--top-p", "1.5"], 2, "top-p"),
    (["--top-k", "-3"], 2, "top-k"),
    (["--key", "H"], 2, "key"),
    (["--meter", "7"], 2, "meter"),
    (["--format", "abc,ogg"], 2, "format"),
    (["--paper", "a5"], 2, "paper"),
    (["--instrument", "theremin"], 2, "instrument"),
    (["--rhythm", "polka"], 2, "R:polka"),
    (["--prime", "}}}((("], 1, "prime is not ABC"),
    (["--prime", "c'''' d"], 2, "nearest"),
    (["--meter", "6/8", "--prime", "c8 d8"], 1, "prime does not fit"),
])
def test_cli_compose_bad_options(model, tmp_path, args, code, words):
    line = one_line_error(run("compose", "--model", model, "--out", str(tmp_path), *args), code)
    assert words in line
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("form", [[], ["--form", "free"]])
def test_a_prime_changing_key_after_a_note_says_where_a_key_changes(tmp_path, form):
    # the grammar lets a key change only at a bar line, with a form or without (the shipped model,
    # whose vocabulary has inline key changes); the message says so, not "--form free lifts it"
    line = one_line_error(run("compose", "--seed", "3", "--prime", "dB d2[K:G] dB|", "--format", "abc",
                              "--out", str(tmp_path), *form), 1)
    assert "a key change goes at a bar line" in line and "--form free" not in line
    assert not list(tmp_path.iterdir())


def test_cli_generate_n_below_one(model, tmp_path):
    line = one_line_error(run("generate", "-n", "0", "--model", model, "--out", str(tmp_path / "g")), 2)
    assert "-n" in line


def test_cli_model_errors(model, tmp_path):
    line = one_line_error(run("compose", "--model", str(tmp_path / "nowhere"), "--out", str(tmp_path)))
    assert "does not exist" in line
    # a MIDI-event model
    from folkrnn.checkpoint import expected_shapes, save_model
    from folkrnn.events import EventConfig, event_names
    from folkrnn.vocab import Vocabulary

    vocabulary = Vocabulary.from_event_names(event_names(range(EventConfig().vocab_size)))
    config = {"vocab_size": len(vocabulary), "embedding_size": 4, "hidden_size": 4, "layers": 1, "dropout": 0.0}
    weights = {name: np.zeros(shape, np.float32) for name, shape in expected_shapes(config).items()}
    save_model(tmp_path / "midi-model", weights, config, vocabulary, "midi")
    line = one_line_error(run("compose", "--model", str(tmp_path / "midi-model"), "--out", str(tmp_path / "o")))
    assert "MIDI" in line and "ABC model" in line


def test_no_default_model_is_a_one_line_error(monkeypatch, tmp_path):
    import folkrnn.checkpoint as checkpoint_module

    monkeypatch.setattr(checkpoint_module, "SHIPPED", tmp_path / "models")
    with pytest.raises(ModelError, match="no default model is installed"):
        load_composer(None)
    line = one_line_error(run("compose", "--out", str(tmp_path)))
    assert "no default model" in line and "--model" in line


def test_cli_out_is_a_file_and_no_permission(model, tmp_path, monkeypatch):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    line = one_line_error(run("compose", "--model", model, "--out", str(a_file)), 2)
    assert "is a file" in line
    from folkrnn import files

    def refused(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(files, "_create", refused)
    out = tmp_path / "locked"
    line = one_line_error(run("compose", "--model", model, "--out", str(out), "--seed", "1"))
    assert "Permission denied" in line
    assert not list(out.iterdir())


def test_compose_never_imports_torch(model, tmp_path):
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from folkrnn.cli import app\n"
        f"result = CliRunner().invoke(app, ['compose', '--model', {model!r}, '--out', {str(tmp_path)!r},"
        " '--seed', '1', '--format', 'abc,mid,svg'])\n"
        "assert result.exit_code == 0, result.output\n"
        "print('torch' in sys.modules, 'music21' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]


# --- the renderers on a tune with every feature ------------------------------------------------

FEATURES = """X:1
T:Every Feature
R:reel
M:4/4
L:1/8
K:Ador
|:A|eAA2 (3cBA GB|[ce]d {g}B>A G2 z2|1 eAAB c2-cB:|2 eAAg a4||
|:e2 ed e2 ga|bgaf gedB|1 [EA]4 A3e:|2 A4 A3||
"""


def test_svg_draws_endings_and_musicxml_keeps_the_structure(tmp_path):
    from music21 import converter, spanner

    from folkrnn.render import _ending_spans, tune_to_musicxml, tune_to_svg

    tune = parse(FEATURES)
    assert [number for number, _, _ in _ending_spans(tune)] == [1, 2, 1, 2]
    svg = tune_to_svg(tune, abc=FEATURES)
    assert svg.count('class="ending') >= 4 and "Every Feature" in svg and "reel" in svg
    path = tmp_path / "every.musicxml"
    path.write_bytes(tune_to_musicxml(tune))
    score = converter.parse(str(path))
    brackets = score.recurse().getElementsByClass(spanner.RepeatBracket)
    assert sorted(b.number for b in brackets) == ["1", "1", "2", "2"]
    measures = score.parts[0].getElementsByClass("Measure")
    assert len(measures) == 9  # the pickup and eight bars
    assert measures[0].duration.quarterLength == 0.5  # the pickup
    kinds = {b.direction for m in measures for b in (m.leftBarline, m.rightBarline) if getattr(b, "direction", None)}
    assert kinds == {"start", "end"}
    notes = list(score.recurse().notes)
    assert any(n.duration.isGrace for n in notes) and any(n.isChord for n in notes)
    assert any(n.duration.tuplets for n in notes)


@pytest.mark.slow
def test_generate_in_worker_processes_is_the_same_batch_and_ctrl_c_keeps_what_finished(model, tmp_path,
                                                                                      monkeypatch):
    import multiprocessing

    from folkrnn.sample import MIN_PER_WORKER

    count = 2 * MIN_PER_WORKER
    books = []
    for workers in ("1", "2"):
        out = tmp_path / f"w{workers}"
        result = run("generate", "-n", str(count), "--seed", "40", "--model", model, "--out", str(out),
                     "--format", "abc", "--workers", workers)
        assert result.exit_code == 0, result.output
        books.append((out / "tunes.abc").read_text())
    assert books[0] == books[1] and books[0].count("X:") == count
    interrupt_at_write(monkeypatch, 5)
    out = tmp_path / "ctrl-c"
    result = run("generate", "-n", str(count), "--seed", "40", "--model", model, "--out", str(out), "--workers", "2")
    assert result.exit_code == 130 and "interrupted: kept 4 finished tunes" in result.output
    assert (out / "tunes.abc").read_text().count("X:") == 4 and len(list(out.glob("*.mid"))) == 4
    assert not multiprocessing.active_children()
    no_partial_files(out)
    assert run("generate", "-n", "3", "--workers", "0", "--model", model, "--out", str(tmp_path / "z")).exit_code != 0


def test_a_tune_is_placed_in_the_octave_a_fiddler_plays_it_in():
    # from C to D, up a tone would take this reel to f'' (above E6, the top of third position, where
    # 99% of the dance collections' notes stay); down a seventh keeps it between D4 and F5
    from folkrnn.compose import _octave_for, transpose_tokens

    tokens = "<s> R:reel M:2/2 K:Cmaj c' b a g e' d' c' a | b a g e c d e g |".split()
    octave = _octave_for(tokens, "D")
    assert octave == -1
    assert transpose_tokens(tokens, "D", octave=octave)[4:8] == ["d", "c", "B", "A"]
    low = "<s> R:reel M:2/2 K:Cmaj C D E G A c B G | C E G c e g e c |".split()
    assert _octave_for(low, "D") == 0  # already low: up the tone, as before


@pytest.mark.slow
def test_a_title_the_shipped_model_writes_names_no_other_dance(tmp_path):
    # untitled tunes write their own titles from the corpus's words; a jig is not "Mrs Baird's
    # Strathspey" (with --rhythm jig, 29 of 300 titles named another dance before), and a title that
    # names a dance the rhythm allows is of that dance ("O'Reilly's Reel" is a reel)
    from folkrnn.abc.tokens import title_rhythm
    from folkrnn.compose import generate

    for rhythm, count in (("jig", 60), (None, 60)):
        out = tmp_path / f"gen-{rhythm}"
        result = generate(ComposeOptions(seed=5, rhythm=rhythm, out=str(out), formats=["abc"]), count,
                          novelty=None)
        named = [(t.tune.title, t.tune.rhythm) for t in result.tunes if title_rhythm(t.tune.title) != "other"]
        assert named  # the test sees some
        assert all(title_rhythm(title) == rhythm_of.replace(" ", "") for title, rhythm_of in named), named


def test_rhythm_dance_takes_a_dance_the_title_or_prime_names(model):
    """--rhythm dance: always a dance. A prime's own dance R: is one (no clash with the option), and
    so is the dance a title names; a prime of another rhythm is refused, in one line."""
    primed = compose(ComposeOptions(seed=5, model=model, rhythm="dance", prime="R:jig\nM:6/8\nK:G\nGAG GBd"),
                     write=False)
    assert primed.tune.rhythm == "jig"
    titled = compose(ComposeOptions(seed=5, model=model, rhythm="dance", title="Tom's Jig"), write=False)
    assert titled.tune.rhythm == "jig" and str(titled.tune.meter) == "6/8"
    with pytest.raises(OptionError, match="--prime sets R:other but --rhythm says dance"):
        compose(ComposeOptions(seed=5, model=model, rhythm="dance", prime="R:other\nK:G\nGAG GBd"), write=False)
    for seed in range(6):
        tokens = compose(ComposeOptions(seed=seed, model=model, rhythm="dance"), write=False).tokens
        assert next(t for t in tokens if t.startswith("R:")) in {f"R:{name}" for name, d in DANCES.items() if d.meters}
