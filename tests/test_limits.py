"""The limits (folkrnn.limits) and the hardening of issue 11: each limit refused before the work
starts with one line, no traceback anywhere, and messages that say what is wrong and where."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import time
import tracemalloc
from fractions import Fraction
from pathlib import Path

import pytest
from typer.testing import CliRunner

from folkrnn.abc import parse, read_text
from folkrnn.checkpoint import SHIPPED, load_model
from folkrnn.cli import app
from folkrnn.errors import AbcError, MidiError, ModelError, OptionError
from folkrnn.events import PerformanceNote
from folkrnn.files import read_input
from folkrnn.limits import (
    MAX_BEAM_WIDTH,
    MAX_NOTES_PER_BAR,
    MAX_PARAMETERS,
    MAX_RENDER_NOTES,
    MAX_TRANSCRIBE_NOTES,
    MAX_TUNES,
    check_model_size,
)
from folkrnn.music import BarLine, Key, Meter, Note, Tune

runner = CliRunner()
HEAD = "X:1\nT:Limit\nM:4/4\nL:1/8\nK:D\n"
needs_abc_model = pytest.mark.skipif(not (SHIPPED / "abc" / "config.json").is_file(), reason="no shipped ABC model")
needs_midi_model = pytest.mark.skipif(not (SHIPPED / "midi" / "config.json").is_file(), reason="no shipped MIDI model")


def one_line_error(result) -> str:
    """The CLI's failure: a non-zero exit, no traceback, and one line on stderr."""
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def folkrnn(*args: str, stdin: bytes | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """``python -m folkrnn ARGS`` in its own process (for what would hang or fill the memory in this one)."""
    return subprocess.run([sys.executable, "-m", "folkrnn", *args], input=stdin, capture_output=True,
                          timeout=timeout)


# --- -n ---------------------------------------------------------------------------------------


def test_generate_n_over_the_limit_is_refused_before_any_work(tmp_path):
    started = time.perf_counter()
    result = runner.invoke(app, ["generate", "-n", "1000000000", "--out", str(tmp_path / "x")])
    assert f"at most {MAX_TUNES:,}" in one_line_error(result) and result.exit_code == 2
    assert time.perf_counter() - started < 5 and not (tmp_path / "x").exists()


def test_perform_n_over_the_limit_is_refused_before_any_work(tmp_path):
    result = runner.invoke(app, ["perform", "-n", str(MAX_TUNES + 1), "--out", str(tmp_path / "x")])
    assert f"at most {MAX_TUNES:,} performances" in one_line_error(result)
    assert not (tmp_path / "x").exists()


@needs_abc_model
def test_generate_hands_the_seeds_on_as_a_range_not_a_list(tmp_path, monkeypatch):
    import folkrnn.compose as compose

    seen = []

    def spy(engine, vocabulary, seeds, **options):  # records the seeds and makes no tune
        seen.append(seeds)
        return []

    monkeypatch.setattr(compose, "sample_tunes", spy)
    options = compose.ComposeOptions(seed=5, formats=["abc"], out=str(tmp_path))
    compose.generate(options, MAX_TUNES, novelty=None, workers=1)
    assert seen == [range(5, 5 + MAX_TUNES)] and isinstance(seen[0], range)


def test_decode_keeps_a_range_of_seeds_a_range(monkeypatch):
    from folkrnn.decode import loop

    got = {}

    def claimed(engine, constraint, choice, seeds, **options):
        got["seeds"] = seeds
        return {index: index for index in range(len(seeds))}

    monkeypatch.setattr(loop, "decode_claimed", claimed)
    assert loop.decode(None, None, None, range(10, 13)) == [0, 1, 2]
    assert got["seeds"] == range(10, 13)


# --- input files ------------------------------------------------------------------------------


def test_validate_refuses_a_device_at_once():
    result = folkrnn("validate", "--no-novelty", "/dev/zero", timeout=30)
    lines = result.stderr.decode().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "is a device" in lines[0], lines


def test_validate_refuses_a_fifo_instead_of_hanging(tmp_path):
    fifo = tmp_path / "pipe.abc"
    os.mkfifo(fifo)
    result = folkrnn("validate", "--no-novelty", str(fifo), timeout=30)
    lines = result.stderr.decode().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "FIFO" in lines[0], lines
    with pytest.raises(MidiError, match="FIFO"):
        read_input(fifo, limit=100, error=MidiError, what="a MIDI file")


def test_standard_input_is_read_with_the_same_cap():
    result = folkrnn("tokenize", "-", stdin=b"X:1\nT:t\nK:D\n" + b"A" * (17 * 2**20), timeout=60)
    err = result.stderr.decode()
    assert result.returncode == 2 and "larger than 16 MiB" in err and "Traceback" not in err


def test_a_file_over_the_limit_is_refused_unread(tmp_path, monkeypatch):
    big = tmp_path / "big.abc"
    big.write_bytes(b"X:1\nK:D\n" + b"A" * 1000)
    with pytest.raises(AbcError, match="at most 100 bytes"):
        read_text(big, limit=100)
    with pytest.raises(AbcError, match="larger than 100 bytes"):
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(big.read_bytes())))
        read_text("-", limit=100)


def test_binary_is_told_from_the_first_block(tmp_path):
    seen = []
    noisy = tmp_path / "noise.abc"
    noisy.write_bytes(b"\x00\x01\x02" * 400_000)  # 1.2 MB
    with pytest.raises(AbcError, match="binary"):
        read_text(noisy)

    def check(first: bytes) -> None:
        seen.append(len(first))
        raise AbcError("binary")

    with pytest.raises(AbcError):
        read_input(noisy, limit=2**24, error=AbcError, check=check)
    assert seen == [65536]


# --- beam width ---------------------------------------------------------------------------------


def test_beam_width_has_an_upper_limit(tmp_path):
    from folkrnn.sample import SampleConfig

    SampleConfig(strategy="beam", beam_width=MAX_BEAM_WIDTH).check()
    with pytest.raises(OptionError, match=f"between 1 and {MAX_BEAM_WIDTH}"):
        SampleConfig(strategy="beam", beam_width=MAX_BEAM_WIDTH + 1).check()
    result = runner.invoke(app, ["compose", "--strategy", "beam", "--beam-width", "10000", "--out", str(tmp_path)])
    assert "--beam-width" in one_line_error(result) and result.exit_code == 2


# --- rendering and transcription ------------------------------------------------------------------


def test_a_bar_of_too_many_notes_is_refused_in_every_format(tmp_path):
    tune = parse(HEAD + "A/32" * (MAX_NOTES_PER_BAR + 1) + "|\n")
    for suffix in (".abc", ".mid", ".svg", ".musicxml"):
        started = time.perf_counter()
        with pytest.raises(OptionError, match=f"bar 1 has {MAX_NOTES_PER_BAR + 1} notes"):
            from folkrnn.render import render

            render(tune, tmp_path / f"t{suffix}")
        assert time.perf_counter() - started < 2 and not (tmp_path / f"t{suffix}").exists()


def test_the_cli_refuses_a_10000_note_bar_in_one_line(tmp_path):
    source = tmp_path / "bar.abc"
    source.write_text(HEAD + "A/4" * 10_000 + "|\n")
    result = runner.invoke(app, ["render", str(source), "-f", "svg", "--out", str(tmp_path / "o")])
    assert "notes" in one_line_error(result)


def test_sheet_music_of_a_very_long_tune_is_refused_but_abc_is_written(tmp_path):
    from folkrnn.render import render

    notes = [Note(69, Fraction(i, 2), Fraction(1, 2)) for i in range(MAX_RENDER_NOTES + 8)]
    bars = [BarLine(Fraction(4 * k), "|", 8 * k) for k in range(1, len(notes) // 8 + 1)]
    tune = Tune(fields=[("X", "1"), ("T", "Long")], meter=Meter(4, 4), unit=Fraction(1, 8), key=Key("D", "maj"),
                notes=notes, bars=bars)
    for suffix in (".svg", ".musicxml", ".wav"):
        with pytest.raises(OptionError, match=f"at most {MAX_RENDER_NOTES:,}"):
            render(tune, tmp_path / f"long{suffix}")
    assert render(tune, tmp_path / "long.abc").stat().st_size > 0


def test_transcribe_has_a_note_limit_checked_first():
    from folkrnn.transcribe import transcribe

    notes = [PerformanceNote(60 + i % 12, i * 0.25, i * 0.25 + 0.2, 80) for i in range(MAX_TRANSCRIBE_NOTES + 1)]
    started = time.perf_counter()
    with pytest.raises(MidiError, match=f"at most {MAX_TRANSCRIBE_NOTES:,}"):
        transcribe(notes)
    assert time.perf_counter() - started < 1


@pytest.mark.slow
def test_transcribe_grows_about_linearly():
    # 16k notes took over a minute when every note scanned every later bar line; now a few seconds
    from folkrnn.abc.writer import tune_to_abc
    from folkrnn.transcribe import transcribe

    lengths = [0.25, 0.25, 0.5, 0.125, 0.125, 0.75, 0.25]
    notes, time_s = [], 0.0
    for i in range(16_000):
        length = lengths[i % len(lengths)]
        notes.append(PerformanceNote(60 + (i * 5) % 19, time_s, time_s + 0.9 * length, 80))
        time_s += length
    started = time.perf_counter()
    text = tune_to_abc(transcribe(notes, qpm=120, meter="4/4", key="D"))
    assert time.perf_counter() - started < 30 and text.count("|") > 1000


def test_transcribe_names_the_file_when_it_cannot_find_a_tempo(tmp_path):
    import mido

    midi = mido.MidiFile(type=0, ticks_per_beat=480)  # one note and no tempo: nothing to go on
    midi.tracks.append(mido.MidiTrack([mido.Message("note_on", note=60, velocity=64, time=240),
                                       mido.Message("note_off", note=60, velocity=0, time=240)]))
    path = tmp_path / "one.mid"
    midi.save(str(path))
    result = runner.invoke(app, ["transcribe", str(path)])
    line = one_line_error(result)
    assert "one.mid" in line and "too few notes to estimate a tempo" in line


# --- model size --------------------------------------------------------------------------------


def test_model_sizes_are_checked_from_the_numbers():
    small = {"vocab_size": 200, "embedding_size": 128, "hidden_size": 256, "layers": 3}
    check_model_size(small)
    for name, value in (("layers", 10**6), ("hidden_size", 10**6), ("embedding_size", 10**6),
                        ("vocab_size", 10**7)):
        with pytest.raises(OptionError, match=f"model {name} is"):
            check_model_size({**small, name: value})
    with pytest.raises(OptionError, match=f"at most {MAX_PARAMETERS:,}"):
        check_model_size({**small, "hidden_size": 8192, "layers": 16})


@needs_abc_model
def test_a_config_with_a_million_layers_is_refused_before_anything_is_allocated(tmp_path):
    model = tmp_path / "big"
    shutil.copytree(SHIPPED / "abc", model)
    config = json.loads((model / "config.json").read_text())
    config["model"]["layers"] = 1_000_000
    (model / "config.json").write_text(json.dumps(config))
    tracemalloc.start()
    try:
        with pytest.raises(ModelError, match="layers is 1,000,000"):
            load_model(model)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20  # it was 1 GB
    result = runner.invoke(app, ["info", str(model)])
    assert "layers" in one_line_error(result)


def test_the_torch_model_config_refuses_a_huge_model_before_torch_allocates():
    pytest.importorskip("torch")
    from folkrnn.model import ModelConfig

    with pytest.raises(OptionError, match="layers"):
        ModelConfig(vocab_size=100, layers=1_000_000)
    assert ModelConfig(vocab_size=100).parameter_count() > 0


@needs_abc_model
def test_a_vocabulary_with_a_token_twice_names_the_file(tmp_path):
    model = tmp_path / "twice"
    shutil.copytree(SHIPPED / "abc", model)
    config = json.loads((model / "config.json").read_text())
    config["vocabulary"][-1] = config["vocabulary"][-2]
    (model / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match=r"config\.json: vocabulary has .* twice"):
        load_model(model)


# --- titles ----------------------------------------------------------------------------------


def test_printable_title():
    from folkrnn.compose import printable_title

    assert printable_title("bad\udcffutf") == "bad\ufffdutf"  # a byte that was not UTF-8
    assert printable_title("x\ud800y") == "x\ufffdy"
    assert printable_title("bell\x07 esc\x1b[31m red\u202e") == "bell esc [31m red"
    assert printable_title("The Kesh Jig") == "The Kesh Jig"


@needs_abc_model
def test_a_title_of_undecodable_bytes_and_control_characters_is_cleaned(tmp_path):
    result = runner.invoke(app, ["compose", "--title", "bad\udcffutf \x07\x1b[1m", "--seed", "1",
                                 "--format", "abc,mid", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    text = next(tmp_path.glob("*.abc")).read_text(encoding="utf-8")
    assert "T:bad\ufffdutf [1m" in text
    assert not any(ord(char) < 32 and char != "\n" for char in text)
    assert len(list(tmp_path.glob("*.mid"))) == 1


@pytest.mark.slow
@needs_abc_model
def test_generate_with_an_undecodable_title_writes_its_tunebook(tmp_path):
    from folkrnn.compose import ComposeOptions, generate

    options = ComposeOptions(title="bad\udcffutf", seed=3, formats=["abc", "mid"], out=str(tmp_path))
    result = generate(options, 2, novelty=None, workers=1)
    assert result.error is None and (tmp_path / "tunes.abc").is_file()
    assert "T:bad\ufffdutf" in (tmp_path / "tunes.abc").read_text(encoding="utf-8")


# --- training without torch -------------------------------------------------------------------


def test_train_without_torch_says_how_to_install_it(tmp_path):
    code = ("import sys; sys.modules['torch'] = None\n"
            "from folkrnn.cli import main\n"
            f"sys.argv = ['folkrnn', 'train', '--out', {str(tmp_path / 'm')!r}]\n"
            "main()\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith("error: training needs torch: pip install 'folkrnn[train]'")
    assert "torch==" in lines[0]  # the pin of the README and pyproject.toml


# --- wrong or unclear results ---------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("abc2midi") is None, reason="abc2midi is not installed")
@needs_midi_model
def test_the_issue_performance_transcribes_to_abc_abc2midi_reads(tmp_path):
    out = tmp_path / "p"
    assert runner.invoke(app, ["perform", "-n", "1", "--seed", "765066", "--out", str(out)]).exit_code == 0
    result = runner.invoke(app, ["transcribe", str(out / "perf-0001.mid"), "--out", str(tmp_path / "t.abc")])
    assert result.exit_code == 0, result.output
    checked = subprocess.run(["abc2midi", str(tmp_path / "t.abc"), "-c"], capture_output=True, text=True,
                             timeout=60)
    assert "power of 2" not in checked.stdout and "Error" not in checked.stdout, checked.stdout


@pytest.mark.skipif(shutil.which("abc2midi") is None, reason="abc2midi is not installed")
@pytest.mark.parametrize("length", ["A/3", "A3/5", "z/3", "[AB]/3", "A/6"])
def test_validate_flags_lengths_abc2midi_cannot_read(length, tmp_path):
    from folkrnn.validate import validate_text

    text = HEAD + f"{length} B c d e f g a|\n"
    [report] = validate_text(text)
    assert [issue.code for issue in report.errors][:1] == ["length-divisor"], report.format()
    assert "not a power of 2" in report.errors[0].message
    (tmp_path / "t.abc").write_text(text)
    checked = subprocess.run(["abc2midi", str(tmp_path / "t.abc"), "-c"], capture_output=True, text=True,
                             timeout=60)
    assert "power of 2" in checked.stdout  # the reference player agrees


def test_validate_accepts_binary_lengths_and_triplets():
    from folkrnn.validate import validate_text

    [report] = validate_text(HEAD + "A/ B/ c/4 d/4 e/ (3fga b3/2 a/ g2|\n")
    assert not [issue for issue in report.errors if issue.code == "length-divisor"], report.format()


@needs_abc_model
def test_an_unknown_word_in_the_prime_is_an_error_with_suggestions():
    from folkrnn.compose import load_composer, prime_tokens

    vocabulary = load_composer().vocabulary
    for prime in ("M:4/4 K:Cmaj |: G NOTATOKEN", "K:D d2fd AdFA hello"):
        with pytest.raises(OptionError, match=r"--prime: '(NOTATOKEN|hello)' is neither ABC .*nearest: '"):
            prime_tokens(prime, vocabulary)
    body, _ = prime_tokens('K:D "D"d2fd !trill!A2 TdFA ~g2 (3abc {g}a [df]2 z2|', vocabulary)
    assert body


@pytest.mark.parametrize("text, message", [
    (HEAD.replace("L:1/8", "L:1/0") + "ABcd|\n", "bad L: field: 1/0 divides by zero"),
    (HEAD + "A/0 Bcd|\n", "note length 1/0 divides by zero"),
])
def test_zero_lengths_are_named_as_such(text, message):
    from folkrnn.validate import validate_text

    [report] = validate_text(text)
    shown = report.format()
    assert message in shown and "Fraction" not in shown and "256 units" not in shown


@needs_midi_model
def test_a_prime_too_long_says_so_with_the_limit(tmp_path):
    from folkrnn.midi import write_performance

    prime = write_performance([PerformanceNote(60 + i % 12, i * 0.1, i * 0.1 + 0.08, 80) for i in range(300)],
                              tmp_path / "long.mid")
    result = runner.invoke(app, ["perform", "--prime", str(prime), "--max-events", "100",
                                 "--out", str(tmp_path / "o")])
    line = one_line_error(result)
    assert "too long: 300 notes" in line and "--max-events 100" in line and "as many as" not in line
    assert not (tmp_path / "o").exists()


def test_validate_counts_a_bar_of_10000_notes_as_one_bar_too_long():
    from folkrnn.validate import validate_text

    [report] = validate_text(HEAD + "A" * 10_000 + "|\n")
    assert [issue.code for issue in report.errors] == ["bar-too-long"]
    assert "5000 quarters where the meter has 4 quarters" in report.errors[0].message
    assert report.structure["bars"] == 1 and [part["bars"] for part in report.structure["parts"]] == [1]
    assert "(1 bar)" in report.format() and "1250" not in report.format()


def test_corpus_build_warns_when_the_cache_folder_cannot_be_written(tmp_path):
    source = tmp_path / "tunes.abc"
    source.write_text("X:1\nT:A Reel\nR:reel\nM:4/4\nL:1/8\nK:D\n|:ABcd efga|gfed cBAG:|\n")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = runner.invoke(app, ["corpus", "build", "--source", str(source), "--cache-dir", str(blocker)])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "without a cache" in warnings[0] and "a-file" in warnings[0]


@needs_midi_model
def test_perform_names_the_shipped_model_not_its_path(tmp_path):
    from folkrnn.perform import PerformConfig, perform

    result = perform(None, 1, options=PerformConfig(seconds=3), seed=1, out=tmp_path)
    summary = json.loads(result.summary_path.read_text())
    assert summary["model"] == "default" and str(SHIPPED) not in result.summary_path.read_text()


@pytest.mark.slow
def test_evaluate_names_the_shipped_model_not_its_path(tiny_model_dir, tiny_corpus, tmp_path, monkeypatch):
    import folkrnn.evaluate
    from folkrnn.evaluate import EvaluateConfig, evaluate

    monkeypatch.setattr(folkrnn.evaluate, "shipped_model", lambda encoding="abc": Path(tiny_model_dir))
    result = evaluate(None, tmp_path / "report", EvaluateConfig(n=4, titles_per_type=0), corpus=tiny_corpus)
    report = (tmp_path / "report" / "report.md").read_text()
    assert result["model"] == "default" and report.startswith("# Evaluation of default")
    assert str(tiny_model_dir) not in report
    assert str(tiny_model_dir) not in (tmp_path / "report" / "report.json").read_text()
