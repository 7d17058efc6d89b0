"""The ABC, MusicXML, MIDI and WAV files folkrnn writes, as the real tools read them (issue 13):
abcm2ps (line breaks and bar counts), abc2midi (tempo, key, ``-c``), mido (meta events),
MuseScore 3 (MusicXML import, headless) and FluidSynth (WAV). A test skips where its tool is not
installed."""

from __future__ import annotations

import io
import os
import re
import shlex
import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from folkrnn.abc import Normalisation, detokenize, parse, tokenize
from folkrnn.abc.writer import tune_to_abc
from folkrnn.cli import app
from folkrnn.compose import ComposeOptions, command_of, compose, generate
from folkrnn.midi import write_tune_midi
from folkrnn.render import find_soundfont, tune_to_musicxml, tune_to_wav


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed")
    return path


@pytest.fixture(scope="module")
def model(tiny_model_dir) -> str:
    return str(tiny_model_dir)


# A reel whose parts open with a pickup and close with the bar that completes it, a jig with a
# 9-bar part, and one with endings: the layouts that went wrong.
PICKUP_REEL = """X:1
T:Pickup Reel
R:reel
M:4/4
L:1/8
K:D
A2|:d2fd A2FA|BcdB A2FA|d2fd A2FA|BAGF E2A2|d2fd A2FA|BcdB A2FA|d2fd AdfA|BAGF E2:|
|:fg|a2fa g2eg|f2df e2ce|a2fa g2eg|fdec d2fg|a2fa g2eg|f2df e2ce|agfe dcBA|BAGF E2||
"""
NINE_BAR_JIG = """X:2
T:Nine Bar Jig
R:jig
M:6/8
L:1/8
K:Em
|:EFG B2A|GFE B,2E|EFG B2A|GFE F2D|EFG B2A|GFE B,2E|EFG B2d|edB AFD|E3 E2:|
"""
ENDINGS_JIG = """X:3
T:Endings Jig
R:jig
M:6/8
L:1/8
K:G
|:D|GAG GAB|ABA ABd|edd gdd|edB dBA|GAG GAB|ABA ABd|edd gdB|1 AGF G2:|2 AGF G2||
|:d|gfg age|dBd gdB|gfg age|dBd g2d|gfg age|dBd gdB|cBA BAG|AGF G2|]
"""


def abcm2ps_systems(abc: str, tmp_path: Path) -> list[list[int]]:
    """The bar numbers abcm2ps prints on each staff system of one tune (``-j1``: every bar's)."""
    need("abcm2ps")
    source = tmp_path / "tune.abc"
    source.write_text(abc)
    for old in tmp_path.glob("page*.svg"):
        old.unlink()
    done = subprocess.run(["abcm2ps", "-g", "-j1", "--measurefont", "Courier 9", str(source),
                           "-O", str(tmp_path / "page.svg")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    svg = "".join(path.read_text() for path in sorted(tmp_path.glob("page*.svg")))
    numbers = []  # (y, bar number): measure numbers are the only text set in Courier
    font = ""
    for match in re.finditer(r'<g [^>]*style="font:([^"]*)"|<text x="[^"]*" y="([^"]*)">(\d+)</text>', svg):
        if match.group(1) is not None:
            font = match.group(1)
        elif "Courier" in font:
            numbers.append((float(match.group(2)), int(match.group(3))))
    systems: list[list[int]] = [[1]]  # abcm2ps prints no number on the first bar
    top = None
    for y, number in numbers:
        if top is not None and y - top > 40:
            systems.append([])
        top = y if top is None or y - top > 40 else top
        systems[-1].append(number)
    return systems


def new_bars(systems: list[list[int]]) -> list[list[int]]:
    """The bars that start on each system (a part's pickup carries the number of the bar it
    completes, which began on the line before)."""
    seen: set[int] = set()
    out = []
    for system in systems:
        out.append([n for n in system if n not in seen])
        seen.update(system)
    return out


def assert_phrased(abc: str, tmp_path: Path, *, phrases: bool = True) -> list[list[int]]:
    lines = new_bars(abcm2ps_systems(abc, tmp_path))
    assert all(len(line) >= 2 for line in lines), f"a lone bar on a line: {lines}\n{abc}"
    if phrases:  # every line starts a 4-bar phrase: bars 1, 5, 9, ...
        assert all(line[0] % 4 == 1 for line in lines), f"lines off the phrases: {lines}\n{abc}"
    return lines


# --- ABC -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("writer", ["detokenize", "tune_to_abc"])
def test_lines_break_on_phrases_as_abcm2ps_draws_them(writer, tmp_path):
    def write(text: str) -> str:
        if writer == "detokenize":
            return detokenize(tokenize(text, Normalisation(transpose=False, detect_mode=False)), short_keys=True)
        return tune_to_abc(parse(text))

    reel = write(PICKUP_REEL)
    # the pickup rides on the first line with bars 1-4: pickup + 4, 4, pickup + 4, 4
    assert assert_phrased(reel, tmp_path) == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12], [13, 14, 15, 16]]
    assert reel.split("\nK:D\n")[1].startswith("A2")  # (the pickup)
    # nine bars: 4 + 5, not 4 + 4 + 1
    assert assert_phrased(write(NINE_BAR_JIG), tmp_path) == [[1, 2, 3, 4], [5, 6, 7, 8, 9]]
    endings = write(ENDINGS_JIG)
    assert_phrased(endings, tmp_path, phrases=False)
    assert endings.rstrip().endswith("|]")  # a final bar where the tune ends (not ||)


def test_generated_tunes_are_spelled_as_tunebooks_write_them(model, tmp_path):
    """Short keys, a final |], a Q: line, a short N: line and the command in a comment (which
    abcm2ps and abc2midi leave out of the music), lines on the phrases."""
    need("abc2midi")
    result = generate(ComposeOptions(seed=30, model=model, out=str(tmp_path / "book"), formats=["abc"]), 6,
                      novelty=None, workers=1)
    assert len(result.tunes) == 6
    for tune in result.tunes:
        header = tune.abc.split("\nK:")[0].split("\n")
        key = tune.abc.split("\nK:")[1].split("\n")[0]
        assert re.fullmatch(r"[A-G][#b]?(m|dor|mix|phr|lyd|loc)?", key), key  # K:G, K:Em, K:Ador
        assert not re.search(r"\[K:[^\]]*(maj|min)\]", tune.abc)
        note = next(line for line in header if line.startswith("N:"))
        assert len(note) <= 100 and "%" not in note  # abcjs prints N: on one line, unwrapped
        assert command_of(tune.abc).startswith(f"folkrnn compose --seed {tune.seed} ")
        assert any(line.startswith("Q:") for line in header)
        folder = tmp_path / f"ps{tune.index}"
        folder.mkdir()
        assert_phrased(tune.abc, folder, phrases=False)
    # abc2midi reads the key as written: K:Em is E minor, and the comment is no field
    book = tmp_path / "book" / "tunes.abc"
    out = subprocess.run(["abc2midi", str(book), "-c"], capture_output=True, text=True, timeout=60).stdout
    assert not [line for line in out.splitlines() if "Error" in line or "Warning" in line], out


def test_short_keys_and_the_final_bar_read_the_same_in_abc2midi(tmp_path):
    import mido

    need("abc2midi")
    tokens = ["<s>", "T", "R:jig", "M:6/8", "K:Cmin", "|:", "c", "d", "e", "f", "g", "a", ":|",
              "[K:Gmaj]", "g", "a", "b", "c'", "2", "z", "||", "</s>"]
    short = detokenize(tokens, short_keys=True)
    assert "\nK:Cm\n" in short and "[K:G]" in short and short.rstrip().endswith("|]")
    long = detokenize(tokens)
    assert "\nK:Cmin\n" in long and "[K:Gmaj]" in long
    assert tokenize(short, Normalisation(transpose=False)) == tokenize(long, Normalisation(transpose=False))
    assert [(n.onset, n.pitch) for n in parse(short).unfold()] == [(n.onset, n.pitch) for n in parse(long).unfold()]
    keys = []
    for name, text in (("short", short), ("long", long)):
        (tmp_path / f"{name}.abc").write_text(text)
        subprocess.run(["abc2midi", str(tmp_path / f"{name}.abc"), "-o", str(tmp_path / f"{name}.mid")],
                       capture_output=True, timeout=60)
        keys.append([m.key for track in mido.MidiFile(tmp_path / f"{name}.mid").tracks for m in track
                     if m.type == "key_signature"])
    assert keys[0] == keys[1] and keys[0][:2] == ["Cm", "G"]


def test_the_comment_line_remakes_the_tune(model, tmp_path):
    first = CliRunner().invoke(app, ["compose", "--model", model, "--seed", "3", "--rhythm", "jig", "--tempo", "100",
                                     "--format", "abc", "--out", str(tmp_path / "a")])
    assert first.exit_code == 0, first.output
    abc = next((tmp_path / "a").glob("*.abc")).read_text()
    command = command_of(abc)
    assert command is not None and "--tempo 100" in command and "Q:3/8=100" in abc
    again = CliRunner().invoke(app, shlex.split(command)[1:] + ["--format", "abc", "--out", str(tmp_path / "b")])
    assert again.exit_code == 0, again.output
    assert next((tmp_path / "b").glob("*.abc")).read_text() == abc
    # a tune written before the comment line: its N: line is the command
    assert command_of("X:1\nT:t\nN:folkrnn compose --seed 4 --temperature 1; model default (sha256 0); "
                      "folkrnn 0.1.0\nM:6/8\nK:G\nGAG|\n") == "folkrnn compose --seed 4 --temperature 1"


@pytest.mark.parametrize("tempo", [None, 96.0])
def test_abc2midi_plays_the_abc_at_the_tempo_of_our_midi(model, tmp_path, tempo):
    import mido

    need("abc2midi")
    composed = compose(ComposeOptions(seed=5, model=model, rhythm="jig", tempo=tempo, formats=["abc", "mid"],
                                      out=str(tmp_path)))
    ours = mido.MidiFile(next(path for path in composed.files if path.suffix == ".mid"))
    abc = next(path for path in composed.files if path.suffix == ".abc")
    theirs_path = tmp_path / "abc2midi.mid"
    subprocess.run(["abc2midi", str(abc), "-o", str(theirs_path)], capture_output=True, timeout=60)
    theirs = mido.MidiFile(theirs_path)

    def tempos(midi):
        return [m.tempo for track in midi.tracks for m in track if m.type == "set_tempo"]

    assert tempos(ours) == tempos(theirs)[:1]  # one tempo: the Q: line's
    assert round(mido.tempo2bpm(tempos(ours)[0]) / 1.5) == (tempo or 116)  # dotted quarters a minute
    assert abs(ours.length - theirs.length) < 0.03 * theirs.length


def test_generated_hornpipes_play_cleanly_in_abc2midi(model, tmp_path):
    need("abc2midi")
    result = generate(ComposeOptions(seed=11, model=model, rhythm="hornpipe", out=str(tmp_path), formats=["abc"]), 4,
                      novelty=None, workers=1)
    assert result.tunes and all(str(tune.tune.meter) == "4/4" for tune in result.tunes)
    out = subprocess.run(["abc2midi", str(result.tunebook_path), "-c"], capture_output=True, text=True,
                         timeout=60).stdout
    assert not [line for line in out.splitlines() if "Error" in line or "Warning" in line], out


@pytest.mark.slow
def test_shipped_model_tunes_break_on_phrases_in_abcm2ps(tmp_path):
    """The shipped model's tunes (most open with a pickup) as abcm2ps lays them out."""
    result = generate(ComposeOptions(seed=100, out=str(tmp_path / "book"), formats=["abc"]), 8,
                      novelty=None, workers=1)
    for tune in result.tunes:
        folder = tmp_path / str(tune.index)
        folder.mkdir()
        lines = assert_phrased(tune.abc, folder, phrases=tune.report.form.get("name") in ("AABB", "AB"))
        assert all(len(line) <= 5 for line in lines)


# abcjs (what folkrnn.org drew its tunes with) parses in Node; .ci/run installs it into .node/ (npm).
ABCJS_PARSE = """
const abcjs = require(process.argv[1]);
const tunes = abcjs.parseOnly(require('fs').readFileSync(0, 'utf8'));
console.log(JSON.stringify(tunes.map(tune => ({
  warnings: tune.warnings || [], notes: (tune.metaText || {}).notes || '', title: (tune.metaText || {}).title || '',
  staves: (tune.lines || []).filter(line => line.staff).length}))));
"""


def abcjs_parse(abc: str) -> list[dict]:
    import json

    node = need("node")
    module = Path(__file__).resolve().parent.parent / ".node" / "node_modules" / "abcjs"
    if not module.is_dir():
        pytest.skip("abcjs is not installed (npm install --prefix .node abcjs, as .ci/run does)")
    done = subprocess.run([node, "-e", ABCJS_PARSE, str(module)], input=abc, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.slow
def test_abcjs_reads_the_shipped_models_tunes_without_a_warning(tmp_path):
    """abcjs parses a generated tunebook with no warning, shows a short N: line (the command that
    remakes the tune is a comment it does not print), and draws the lines the ABC breaks."""
    result = generate(ComposeOptions(seed=300, out=str(tmp_path / "book"), formats=["abc"]), 12,
                      novelty=None, workers=1)
    parsed = abcjs_parse((tmp_path / "book" / "tunes.abc").read_text())
    assert len(parsed) == len(result.tunes) == 12
    for tune, seen in zip(result.tunes, parsed):
        assert seen["warnings"] == [], (tune.abc, seen["warnings"])
        assert seen["notes"] and len(seen["notes"]) <= 100 and "folkrnn compose" not in seen["notes"]
        body = tune.abc.split("\nK:", 1)[1].split("\n")[1:]
        assert seen["staves"] == sum(1 for line in body if line.strip() and not line.startswith("%"))


# --- MusicXML ------------------------------------------------------------------------------------

# Part A opens with a pickup and closes with its complement; part B opens with its own pickup and
# changes key (to G) halfway through its first bar.
KEY_CHANGE_REEL = """X:1
T:Key Change Reel
R:reel
N:made by folkrnn 0.1.0, model default (sha256 0123456789ab), seed 1
M:4/4
L:1/8
K:D
A2|:d2fd A2FA|BcdB A2FA|d2fd A2FA|BAGF E2A2|d2fd A2FA|BcdB A2FA|d2fd AdfA|BAGF E2:|
|:fg|a2fa [K:G]g2eg|f2df e2ce|a2fa g2eg|fdec d2fg|a2fa g2eg|f2df e2ce|agfe dcBA|BAGF G2|]
"""


def test_musicxml_credits_instrument_tempo_bar_numbers_and_keys():
    xml = tune_to_musicxml(parse(KEY_CHANGE_REEL), instrument="flute").decode("utf-8")
    assert "Music21" not in xml and '<creator type="composer">' not in xml
    assert "<software>folkrnn " in xml and "sha256 0123456789ab" in xml  # folkrnn and the model
    part = re.search(r"<score-part.*?</score-part>", xml, re.S).group(0)
    assert "<part-name>Flute</part-name>" in part and "<instrument-name>Flute</instrument-name>" in part
    assert "<midi-program>74</midi-program>" in part  # General MIDI 73 (0-based), 1-based in MusicXML
    assert re.search(r"<metronome[^>]*>\s*<beat-unit>quarter</beat-unit>\s*<per-minute>200</per-minute>", xml)
    measures = re.findall(r'<measure implicit="(yes|no)" number="([^"]+)"', xml)
    assert measures[0] == ("yes", "0")  # the pickup: bar 1 is the first full bar
    assert measures[9] == ("yes", "X1")  # part B's pickup is not counted either
    assert [number for implicit, number in measures if implicit == "no"] == [str(n) for n in range(1, 17)]
    fifths = re.findall(r"<fifths>(-?\d+)</fifths>", xml)
    assert fifths == ["2", "1"]  # D major, then G major where [K:G] stands
    # the notes after the change are read in G: "e2ce" has a C natural, which needs no sign in G
    # (today's D signature gave it a natural sign; without the <key> it would read C sharp)
    after = xml.split('<measure implicit="no" number="10">')[1].split("</measure>")[0]
    assert re.search(r"<step>C</step>\s*<octave>", after) and "<accidental>" not in after


def test_jig_metronome_counts_dotted_quarters():
    xml = tune_to_musicxml(parse("X:1\nT:J\nR:jig\nM:6/8\nL:1/8\nK:G\nGAG GAB|ABA ABd:|\n")).decode()
    assert re.search(r"<beat-unit>quarter</beat-unit>\s*<beat-unit-dot />\s*<per-minute>116</per-minute>", xml)


TIED_ODD_LENGTHS = "X:1\nT:T\nR:reel\nM:4/4\nL:1/8\nK:D\nf2-f/2f/2 e2 d3|A2-A/2B/2c d3 d-|d8|]\n"


def test_lengths_no_single_note_writes_become_tied_notes_in_musicxml():
    """f2-f/2 is five sixteenths: no note value writes it, so MusicXML gets tied notes (music21 refused)."""
    import music21

    xml = tune_to_musicxml(parse(TIED_ODD_LENGTHS))
    score = music21.converter.parse(xml, format="musicxml")
    notes = list(score.flatten().notes)
    assert score.flatten().highestTime == 12.0  # three bars of 4/4
    assert [float(n.quarterLength) for n in notes[:3]] == [1.0, 0.25, 0.25]  # f2 tied to f/2, then f/2
    assert notes[0].tie.type == "start" and notes[1].tie.type == "stop"
    assert b"<type>complex</type>" not in xml


@pytest.mark.slow
def test_musescore_opens_the_musicxml_without_a_warning(tmp_path):
    tool = shutil.which("mscore3") or shutil.which("musescore3") or need("mscore")
    source = tmp_path / "reel.musicxml"
    source.write_bytes(tune_to_musicxml(parse(KEY_CHANGE_REEL)))
    dorian = tmp_path / "dorian.musicxml"
    dorian.write_bytes(tune_to_musicxml(parse("X:1\nT:D\nR:reel\nM:4/4\nL:1/8\nK:Ador\n"
                                              "|:A2BA GEDE|A2BA G2ed:|\n")))
    tied = tmp_path / "tied.musicxml"
    tied.write_bytes(tune_to_musicxml(parse(TIED_ODD_LENGTHS)))
    for path in (source, dorian, tied):
        done = subprocess.run([tool, "-o", str(path.with_suffix(".mscx")), str(path)], capture_output=True,
                              text=True, timeout=120, env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
        said = [line for line in (done.stderr + done.stdout).splitlines()
                if line.strip() and not line.startswith(("QStandardPaths", "convert <", "\tto <", "... success"))]
        assert done.returncode == 0 and said == [], said
    score = source.with_suffix(".mscx").read_text()
    measures = re.findall(r"<Measure[ >].*?</Measure>", score, re.S)
    assert len(measures) == 18
    assert [i for i, m in enumerate(measures) if "<irregular>1</irregular>" in m] == [0, 9]
    assert '<program value="40"/>' in score  # a fiddle
    assert '<metaTag name="composer"></metaTag>' in score
    assert score.count("<KeySig>") == 2 and "<Tempo>" in score


# --- MIDI ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("rhythm, meter, clocks", [("jig", "6/8", 36), ("slip jig", "9/8", 36),
                                                    ("slide", "12/8", 36), ("reel", "4/4", 24),
                                                    ("waltz", "3/4", 24)])
def test_midi_names_the_tune_and_clicks_on_the_beat_as_abc2midi_does(rhythm, meter, clocks, tmp_path):
    import mido

    need("abc2midi")
    text = f"X:1\nT:The Test Tune\nR:{rhythm}\nM:{meter}\nL:1/8\nK:G\nGABc defg|gfed cBAG|]\n"
    write_tune_midi(parse(text), tmp_path / "ours.mid")
    (tmp_path / "tune.abc").write_text(text)
    subprocess.run(["abc2midi", str(tmp_path / "tune.abc"), "-o", str(tmp_path / "theirs.mid")],
                   capture_output=True, timeout=60)
    ours, theirs = mido.MidiFile(tmp_path / "ours.mid"), mido.MidiFile(tmp_path / "theirs.mid")

    def metas(midi, kind):
        return [m for track in midi.tracks for m in track if m.type == kind]

    assert ours.tracks[0][0].type == "track_name" and ours.tracks[0][0].name == "The Test Tune"
    assert [m.name for m in metas(ours, "track_name")] == ["The Test Tune"] * 2
    assert "The Test Tune" in [m.name for m in metas(theirs, "track_name")]
    assert [m.name for m in metas(ours, "instrument_name")] == ["fiddle"]
    assert [m.clocks_per_click for m in metas(ours, "time_signature")] == [clocks]
    if meter == "6/8":  # (abc2midi's clicks elsewhere follow no beat: 27 in 9/8, 18 in 3/4)
        assert [m.clocks_per_click for m in metas(theirs, "time_signature")][:1] == [clocks]


# --- WAV -----------------------------------------------------------------------------------------

LONG_NOTE = "X:1\nT:Long\nM:4/4\nL:1/4\nQ:1/4=60\nK:C\nA4|\n"  # A4 (440 Hz) for 4 seconds


def samples_of(data: bytes) -> tuple[np.ndarray, int]:
    with wave.open(io.BytesIO(data)) as handle:
        assert handle.getnchannels() == 1 and handle.getsampwidth() == 2
        rate = handle.getframerate()
        return np.frombuffer(handle.readframes(handle.getnframes()), "<i2").astype(np.float64), rate


def instantaneous_frequency(signal: np.ndarray, rate: int, low: float, high: float) -> np.ndarray:
    """The frequency of the partial between ``low`` and ``high`` Hz at each sample: the phase
    slope of the analytic signal of that band."""
    spectrum = np.fft.rfft(signal)
    spectrum[(np.fft.rfftfreq(len(signal), 1 / rate) < low) | (np.fft.rfftfreq(len(signal), 1 / rate) > high)] = 0
    analytic = np.fft.ifft(np.concatenate([spectrum, np.zeros(len(signal) - len(spectrum))]) * 2)
    return np.diff(np.unwrap(np.angle(analytic))) * rate / (2 * np.pi)


def vibrato(data: bytes) -> tuple[float, float]:
    """(depth in cents either side, rate in Hz) of the pitch swing of LONG_NOTE's held part."""
    signal, rate = samples_of(data)
    cents = 1200 * np.log2(instantaneous_frequency(signal, rate, 380, 500)[int(0.8 * rate):int(3.0 * rate)] / 440)
    swing = cents - cents.mean()
    power = np.abs(np.fft.rfft(swing * np.hanning(len(swing))))
    frequencies = np.fft.rfftfreq(len(swing), 1 / rate)
    band = (frequencies > 2) & (frequencies < 12)
    return float(swing.std() * np.sqrt(2)), float(frequencies[band][np.argmax(power[band])])


def test_the_built_in_synthesiser_has_vibrato_an_envelope_and_a_tone_per_family():
    tune = parse(LONG_NOTE)
    fiddle = tune_to_wav(tune, instrument="fiddle", straight=True, soundfont="none")
    depth, rate = vibrato(fiddle)
    assert 8 <= depth <= 30 and 4.5 <= rate <= 7  # a fiddler's vibrato, cents either side and Hz
    assert vibrato(tune_to_wav(tune, instrument="uilleann-pipes", straight=True, soundfont="none"))[0] < 2
    # the vibrato sets in after the onset: the first 0.15 s hold the pitch
    signal, sample_rate = samples_of(fiddle)
    pitch = 1200 * np.log2(instantaneous_frequency(signal, sample_rate, 380, 500) / 440)
    assert np.ptp(pitch[int(0.05 * sample_rate):int(0.15 * sample_rate)]) < \
        0.5 * np.ptp(pitch[int(1.0 * sample_rate):int(1.1 * sample_rate)])
    # an attack (not a click) rising to a peak, then the decay to the level a bow sustains
    window = sample_rate // 200  # 5 ms
    rms = np.sqrt(np.convolve(signal ** 2, np.ones(window) / window, mode="valid"))
    peak = rms[:int(0.5 * sample_rate)].max()
    rise = (np.argmax(rms >= 0.9 * peak) - np.argmax(rms >= 0.1 * peak)) / sample_rate
    assert 0.025 <= rise <= 0.12, rise
    assert rms[int(1.5 * sample_rate)] < 0.92 * peak
    # bow noise: energy between the harmonics, where a pure additive tone has none
    spectrum = np.abs(np.fft.rfft(signal[sample_rate:3 * sample_rate]))
    frequencies = np.fft.rfftfreq(2 * sample_rate, 1 / sample_rate)
    between = spectrum[(frequencies % 440 > 150) & (frequencies % 440 < 290) & (frequencies < 5000)].mean()
    assert between > 1e-4 * spectrum.max()
    # a flute is darker than a fiddle: the spectral centroid of the same note
    flute, _ = samples_of(tune_to_wav(tune, instrument="flute", straight=True, soundfont="none"))

    def centroid(values):
        power = np.abs(np.fft.rfft(values[sample_rate:3 * sample_rate])) ** 2
        return (power * frequencies).sum() / power.sum()

    assert centroid(flute) < 0.8 * centroid(signal)


def test_the_wav_is_fluidsynth_playing_our_midi_with_a_general_midi_soundfont(tmp_path):
    need("fluidsynth")
    soundfont = find_soundfont()
    if soundfont is None:
        pytest.skip("no General MIDI SoundFont installed (Debian: fluid-soundfont-gm)")
    tune = parse(KEY_CHANGE_REEL)
    ours, rate = samples_of(tune_to_wav(tune, seed=3))
    # FluidSynth itself, on our MIDI file
    write_tune_midi(tune, tmp_path / "tune.mid", seed=3)
    subprocess.run(["fluidsynth", "-ni", "-q", "-r", str(rate), "-F", str(tmp_path / "direct.wav"), soundfont,
                    str(tmp_path / "tune.mid")], capture_output=True, timeout=300, check=True)
    with wave.open(str(tmp_path / "direct.wav")) as handle:
        direct = np.frombuffer(handle.readframes(handle.getnframes()), "<i2").astype(np.float64)
        direct = direct.reshape(-1, handle.getnchannels()).mean(axis=1)
    length = min(len(ours), len(direct)) - rate  # (our file fades out at its end)
    correlation = np.corrcoef(ours[:length], direct[:length])[0, 1]
    assert correlation > 0.99
    built_in, _ = samples_of(tune_to_wav(tune, seed=3, soundfont="none"))
    assert abs(np.corrcoef(built_in[:length], ours[:length])[0, 1]) < 0.5


def test_soundfont_option_errors_are_one_line(model, tmp_path):
    result = CliRunner().invoke(app, ["compose", "--model", model, "--seed", "1", "--format", "abc,wav",
                                      "--soundfont", str(tmp_path / "missing.sf2"), "--out", str(tmp_path)])
    assert result.exit_code != 0 and result.output.startswith("error: ") and "SoundFont" in result.output
    assert len(result.output.strip().splitlines()) == 1
    result = CliRunner().invoke(app, ["compose", "--model", model, "--seed", "1", "--tempo", "500",
                                      "--out", str(tmp_path)])
    assert result.exit_code != 0 and not list(tmp_path.glob("*.abc"))
