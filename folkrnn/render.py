"""Tune -> a file, the format chosen by the file's suffix; every file written atomically.

Each format is one entry of ``RENDERERS``: a function ``(tune, path, **options)`` whose heavy
back-end is imported inside it, so that writing ABC or MIDI never imports music21 or verovio.

- ``.abc``: ``folkrnn.abc.writer``;
- ``.mid``/``.midi``: ``folkrnn.midi``, expressive or straight;
- ``.svg``: sheet music: ``folkrnn.sheet`` writes the Tune as MEI (key changes, grace notes,
  tuplets, endings, repeats, a final bar, four bars a line, bar numbers, a title and a subtitle
  naming the rhythm and key) and verovio engraves it, on one page as tall as the music;
- ``.pdf``: the same engraving on A4 or Letter pages (``paper=``), written by ``folkrnn.pdf``
  (no other library); ``tunes_to_pdf`` puts a tunebook in one PDF, as many tunes a page as fit;
- ``.musicxml``/``.xml``: music21, built from the Tune (not by music21 reading ABC, which it does
  leniently and wrongly): measures from the bar lines, a pickup, ties across bar lines, tuplets,
  chords, grace notes, repeats and endings (repeat brackets), pitches spelled in the key;
- ``.wav``: the expressive performance of ``folkrnn.midi`` (mono, 22,050 Hz, 16-bit), played by
  FluidSynth with a General MIDI SoundFont when there is one (``soundfont=``, else Debian's
  fluid-soundfont-gm), else by a small synthesiser in NumPy: a tone, an envelope, bow or breath
  noise and a vibrato per instrument family.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np

from folkrnn import __version__
from folkrnn.abc.writer import spell_pitch, tune_to_abc
from folkrnn.errors import OptionError
from folkrnn.files import EXISTS, exists, staged, write_atomic
from folkrnn.limits import MAX_NOTES_PER_BAR, MAX_RENDER_NOTES
from folkrnn.midi import beat_quarters, tune_tempo, tune_to_performance, write_tune_midi
from folkrnn.music import Tune
from folkrnn.tables import FORMATS, PAPERS, find_instrument

__all__ = ["RENDERERS", "render", "renderer_for", "check_size", "slug", "formats", "tune_to_svg", "tunes_to_pdf",
           "tune_to_score", "tune_to_musicxml", "tune_to_wav", "find_soundfont", "SOUNDFONTS"]


def _render_abc(tune: Tune, path: Path, **options) -> Path:
    _no_options("abc", options)
    return write_atomic(path, tune_to_abc(tune).encode("utf-8"), error=OptionError)


def _render_midi(tune: Tune, path: Path, *, straight: bool = False, tempo: float | None = None,
                 instrument: str = "fiddle", seed: int = 0, **options) -> Path:
    _no_options("mid", options)
    return write_tune_midi(tune, path, straight=straight, tempo=tempo, instrument=instrument,
                           seed=seed)


def _no_options(name: str, options: dict) -> None:
    if options:
        raise OptionError(f"the {name} format takes no option {', '.join(sorted(options))}")


# --- .svg and .pdf: verovio engraves the MEI of folkrnn.sheet ------------------------------------


def _render_svg(tune: Tune, path: Path, *, abc: str | None = None, **options) -> Path:

    _no_options("svg", options)
    return write_atomic(path, tune_to_svg(tune, abc=abc).encode("utf-8"), error=OptionError)


def _render_pdf(tune: Tune, path: Path, *, paper: str = "a4", abc: str | None = None, **options) -> Path:

    _no_options("pdf", options)
    return write_atomic(path, tunes_to_pdf([tune], paper=paper, abcs=[abc]), error=OptionError)


def _measure_spans(tune: Tune) -> list[tuple]:
    """The tune's measures as verovio counts them: (start, end) between distinct bar onsets."""
    end = tune.length
    onsets = sorted({bar.onset for bar in tune.bars} | {0} | {end})
    return [(a, b) for a, b in zip(onsets, onsets[1:]) if b > a]


def _ending_spans(tune: Tune) -> list[tuple[int, int, int]]:
    """(number, first measure, last measure) of each ending, by measure index.

    Ending 1 runs to the :| that closes it; a later ending to the next repeat or section line (or
    the end), but over no more bars than ending 1 (an ending never closed is not bracketed over
    the rest of the tune)."""
    spans = _measure_spans(tune)
    starts = {a: i for i, (a, _) in enumerate(spans)}
    ends = {b: i for i, (_, b) in enumerate(spans)}
    out = []
    first_length = None
    bars = tune.bars
    for k, bar in enumerate(bars):
        if not bar.ending or bar.onset not in starts:
            continue
        number = bar.ending[0]
        first, last = starts[bar.onset], len(spans) - 1
        for later in bars[k + 1:]:
            if later.onset <= bar.onset:
                continue
            closes = later.kind in (":|", "::")
            section = later.kind in ("||", "|]", "[|", "|:")
            if closes or later.ending or (number != 1 and section):
                last = ends.get(later.onset, last)
                break
        if number == 1:
            first_length = last - first + 1
        elif first_length:
            last = min(last, first + first_length - 1)
        out.append((number, first, last))
    return out


def tune_to_svg(tune: Tune, *, abc: str | None = None) -> str:
    """Engrave a tune (``folkrnn.sheet``): one SVG page as tall as the music, 210 mm wide.

    Parameters
    ----------
    tune
        The tune.
    abc
        The tune's ABC text, when the caller has it: its slurs, decorations and chord symbols,
        which the Tune does not keep, are drawn too.
    """
    from folkrnn.sheet import engrave  # lazily: start-up (only engraving needs sheet)

    return engrave(tune, scale=45, abc=abc)[0]


def check_paper(paper: str) -> str:
    """The paper's name as ``folkrnn.tables.PAPERS`` spells it; OptionError for one it lacks."""
    name = str(paper).lower()
    if name not in PAPERS:
        raise OptionError(f"--paper {paper!r}: choose one of {', '.join(PAPERS)}")
    return name


def tunes_to_pdf(tunes: list[Tune], *, paper: str = "a4", title: str = "",
                 abcs: list[str | None] | None = None) -> bytes:
    """Tunes engraved on pages of ``paper`` (``folkrnn.tables.PAPERS``) as one PDF: as many
    tunes on a page as fit, a tune longer than a page on pages of its own (``folkrnn.sheet``,
    ``folkrnn.pdf``). ``abcs``: each tune's ABC text (or None), for its slurs, decorations and
    chord symbols."""
    from folkrnn.sheet import tunes_to_pdf as engrave_pdf  # lazily: start-up (only engraving needs sheet)

    paper = check_paper(paper)
    for tune in tunes:  # a tunebook's PDF (generate) comes here without render(): the same limits
        check_size(tune, ".pdf")
    return engrave_pdf(tunes, paper=paper, title=title, abcs=abcs)


# --- .musicxml: music21 from the Tune --------------------------------------------------------

def _render_musicxml(tune: Tune, path: Path, *, instrument: str = "fiddle", tempo: float | None = None,
                     **options) -> Path:

    _no_options("musicxml", options)
    return write_atomic(path, tune_to_musicxml(tune, instrument=instrument, tempo=tempo), error=OptionError)


_M21_MODES = {"maj": "major", "min": "minor", "dor": "dorian", "mix": "mixolydian",
              "phr": "phrygian", "lyd": "lydian", "loc": "locrian"}


def _m21_key(tune_key):
    """A key signature: with its mode in major and minor; for the other modes only the sharps or
    flats (MuseScore 3 reports "Unsupported mode" for a dorian or mixolydian <mode>)."""
    from music21 import key

    if tune_key.mode in ("maj", "min"):
        return key.Key(tune_key.tonic.replace("b", "-"), _M21_MODES[tune_key.mode])
    return key.KeySignature(max(-7, min(7, sum(tune_key.accidentals.values()))))


def _measure_numbers(lengths: list, full, opens_part: list[bool] | None = None) -> list[tuple[int, bool]]:
    """(number, implicit) for each measure: bar 1 is the first full bar. A short first measure (a
    pickup) is bar 0; the pickup of a later part (a short measure after a repeat sign or double
    bar, or one that makes a full bar with the short closing bar before it) is implicit and not
    counted, as MusicXML and MuseScore number them. ``opens_part[k]``: a repeat sign or a double
    bar stands at the start of measure k."""
    out: list[tuple[int, bool]] = []
    number = 0
    for k, length in enumerate(lengths):
        short = bool(full) and length < full
        if k == 0 and short and len(lengths) > 1:
            out.append((0, True))
            continue
        after_short = k > 0 and lengths[k - 1] < full and lengths[k - 1] + length == full
        if short and k + 1 < len(lengths) and not out[k - 1][1] and (
                after_short or (opens_part is not None and opens_part[k])):
            out.append((number, True))
            continue
        number += 1
        out.append((number, False))
    return out


def _m21_pitch(pitch: int, signature: dict):
    from music21 import pitch as m21pitch

    letter, alter = spell_pitch(pitch, signature)
    octave = (pitch - alter - {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}[letter]) // 12 - 1
    out = m21pitch.Pitch(letter)
    out.octave = octave
    if alter:
        out.accidental = m21pitch.Accidental(alter)
    return out


def tune_to_score(tune: Tune, *, instrument: str = "fiddle", tempo: float | None = None):
    """A music21 Score of the tune, built from its notes and bar lines (see the module docstring).

    Its one part is played by ``instrument`` (its name and General MIDI program), under a
    metronome mark of the tune's tempo (``folkrnn.midi.tune_tempo``: ``tempo``, else Q:, else the
    dance's, as the MIDI file plays it). Bar 1 is the first full bar: pickups are implicit
    measures (:func:`_measure_numbers`). Every key change of the body starts a new key signature
    where it stands, and the notes after it are spelled in it.
    """
    from bisect import bisect_right
    from fractions import Fraction

    from music21 import bar as m21bar
    from music21 import chord, duration, metadata, meter, note, spanner, stream, tie
    from music21 import instrument as m21instrument
    from music21 import tempo as m21tempo

    player = find_instrument(instrument)
    if player is None:
        raise OptionError(f"unknown instrument {instrument!r}")
    from folkrnn.sheet import key_changes  # lazily: start-up (only engraving needs sheet)

    changes = key_changes(tune)
    change_onsets = [onset for onset, _ in changes]

    def signature_at(onset) -> dict:
        """The key signature in force at ``onset`` (a change at a note's onset applies to it)."""
        k = bisect_right(change_onsets, onset)
        return changes[k - 1][1].accidentals if k else tune.key.accidentals

    score = stream.Score()
    score.metadata = metadata.Metadata()
    score.metadata.title = tune.title or "Untitled"
    score.metadata.movementName = tune.title or "Untitled"
    part = stream.Part()
    name = player.name.replace("-", " ").capitalize()
    part.partName = name
    voice = m21instrument.Instrument()
    voice.instrumentName = voice.partName = name
    voice.midiProgram, voice.midiChannel = player.program, 0
    part.insert(0, voice)
    spans = _measure_spans(tune)
    if not spans:
        spans = [(Fraction(0), tune.meter.bar_length or Fraction(4))]
    main = sorted((n for n in tune.notes if not n.grace), key=lambda n: (n.onset, n.pitch))
    graces = [n for n in tune.notes if n.grace]
    bar_at: dict = {}
    for bar in tune.bars:
        bar_at.setdefault(bar.onset, []).append(bar)
    full = tune.meter.bar_length
    numbers = _measure_numbers([end - start for start, end in spans], full,
                               [any(bar.kind != "|" and not bar.ending for bar in bar_at.get(start, []))
                                for start, _ in spans])
    implicit_count = 0
    measures = []
    for index, (start, end) in enumerate(spans):
        number, implicit = numbers[index]
        measure = stream.Measure(number=number)
        if implicit:
            measure.showNumber = stream.enums.ShowNumber.NEVER  # implicit="yes"
            if index:  # MuseScore's numbers for the measures it does not count: X1, X2, ...
                implicit_count += 1
                measure.numberSuffix = f"X{implicit_count}"
        if index == 0:
            measure.timeSignature = meter.TimeSignature(f"{tune.meter.numerator}/{tune.meter.denominator}") \
                if not tune.meter.free else None
            measure.keySignature = _m21_key(tune.key)
            if full and end - start < full:
                measure.paddingLeft = float(full - (end - start))
            beat = beat_quarters(tune.meter)
            beats = round(tune_tempo(tune, tempo) / float(beat))
            measure.insert(0, m21tempo.MetronomeMark(number=beats, referent=duration.Duration(float(beat))))
        # the sounding voice of this measure: notes (cut at the bar lines) and rests
        events: dict = {}
        for n in main:
            a, b = max(n.onset, start), min(n.onset + n.duration, end)
            if b <= a:
                continue
            events.setdefault(a, []).append((n, a > n.onset, b < n.onset + n.duration, b - a))
        time = start
        for onset in sorted(events):
            group = events[onset]
            if onset > time:
                measure.append(note.Rest(quarterLength=onset - time))
            length = min(item[3] for item in group)
            nxt = min([o for o in events if o > onset] + [end])
            length = min(length, nxt - onset)
            pitches = sorted({item[0].pitch for item in group})
            signature = signature_at(onset)
            for g in graces:
                if g.onset == onset and start <= g.onset < end:
                    grace = note.Note(_m21_pitch(g.pitch, signature), quarterLength=0.5).getGrace()
                    measure.append(grace)
            if len(pitches) == 1:
                element = note.Note(_m21_pitch(pitches[0], signature), quarterLength=length)
            else:
                element = chord.Chord([_m21_pitch(p, signature) for p in pitches], quarterLength=length)
            continued, continues = group[0][1], group[0][2]
            if continued and continues:
                element.tie = tie.Tie("continue")
            elif continued:
                element.tie = tie.Tie("stop")
            elif continues:
                element.tie = tie.Tie("start")
            measure.append(element)
            time = onset + length
        if time < end:
            measure.append(note.Rest(quarterLength=end - time))
        for onset, new_key in changes:  # (after the notes: append places a note after them)
            if start <= onset < end:
                measure.insert(float(onset - start), _m21_key(new_key))
        for bar in bar_at.get(start, []):
            if bar.starts_repeat:
                measure.leftBarline = m21bar.Repeat(direction="start")
        for bar in bar_at.get(end, []):
            if bar.ends_repeat:
                measure.rightBarline = m21bar.Repeat(direction="end")
            elif bar.kind in ("||", "[|") and measure.rightBarline is None:
                measure.rightBarline = m21bar.Barline("double")
            elif bar.kind == "|]":
                measure.rightBarline = m21bar.Barline("final")
        measures.append(measure)
        part.append(measure)
    if measures and measures[-1].rightBarline is None:
        measures[-1].rightBarline = m21bar.Barline("final")
    for number, first, last in _ending_spans(tune):
        part.insert(0, spanner.RepeatBracket(measures[first:last + 1], number=number))
    score.insert(0, part)
    return score


def _show_accidentals(score) -> None:
    """Which accidentals are printed, as a reader applies them: a sign wherever the note differs
    from the key signature in force where it stands (a key change within a measure included) or
    from an earlier sign on its line or space in the measure; none on a note tied over."""
    from music21 import key, note, pitch, stream

    for part in score.parts:
        signature = None
        for measure in part.getElementsByClass(stream.Measure):
            shown: dict = {}
            for element in sorted(measure.elements, key=lambda e: (e.offset, e.classSortOrder)):
                if isinstance(element, key.KeySignature):
                    signature = element
                    continue
                if not isinstance(element, note.NotRest):
                    continue
                held = element.tie is not None and element.tie.type in ("stop", "continue")
                for tone in element.pitches:
                    alter = int(tone.alter)
                    if signature is not None and signature.accidentalByStep(tone.step) is not None:
                        usual = int(signature.accidentalByStep(tone.step).alter)
                    else:
                        usual = 0
                    display = not held and alter != shown.get((tone.step, tone.octave), usual)
                    if not held:
                        shown[(tone.step, tone.octave)] = alter
                    if alter or display:
                        tone.accidental = pitch.Accidental(alter)
                        tone.accidental.displayStatus = display
                    else:
                        tone.accidental = None


def tune_to_musicxml(tune: Tune, *, instrument: str = "fiddle", tempo: float | None = None) -> bytes:
    """The tune as MusicXML bytes (music21, :func:`tune_to_score`), ready for MuseScore and other
    notation programs: credited to folkrnn (and, through the tune's N: line, its model) in the
    encoding, with no composer (music21 would name itself)."""
    from xml.sax.saxutils import escape

    from music21.musicxml.m21ToXml import GeneralObjectExporter

    score = tune_to_score(tune, instrument=instrument, tempo=tempo)
    score.makeNotation(inPlace=True)  # beams, as the exporter would make them
    # a length no single note value writes (f2-f/2: five sixteenths) as tied notes that do
    score.splitAtDurations(recurse=True)
    _show_accidentals(score)  # but the signs ours: music21 misses a key change within a measure
    exporter = GeneralObjectExporter(score)
    exporter.makeNotation = False
    data = exporter.parse()
    # the date of writing is left out, and music21's random part ids made fixed, so that the same
    # tune always gives the same file
    data = re.sub(rb"\s*<encoding-date>[^<]*</encoding-date>", b"", data)
    data = re.sub(rb'\s*<creator type="composer">Music21</creator>', b"", data)
    credit = f"<software>folkrnn {__version__}</software>"
    notes = " ".join(tune.field_values("N"))
    if notes:
        credit += f"\n      <encoding-description>{escape(notes)}</encoding-description>"
    data = re.sub(rb"(\s*)(<software>music21)", lambda m: m.group(1) + credit.encode("utf-8") + m.group(1)
                  + m.group(2), data, count=1)
    data = re.sub(rb'number="\d+X(\d+)"', rb'number="X\1"', data)  # implicit measures: X1, X2, ...
    data = re.sub(rb'id="I[0-9a-f]{16,}"', b'id="P1-I1"', data)
    return re.sub(rb'id="P[0-9a-f]{16,}"', b'id="P1"', data)


# --- .wav: FluidSynth with a General MIDI SoundFont, else a small synthesiser -------------------

_RATE = 22050
# Where Debian's fluid-soundfont-gm (and other distributions' General MIDI SoundFonts) install.
SOUNDFONTS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/default-GM.sf2",
              "/usr/share/soundfonts/FluidR3_GM.sf2", "/usr/share/soundfonts/default.sf2")
_NO_SOUNDFONT = "none"  # --soundfont none: the built-in synthesiser even where FluidSynth is there


@dataclass(frozen=True)
class _Tone:
    """How the built-in synthesiser voices an instrument family."""

    harmonics: tuple[float, ...]  # relative amplitudes of the first harmonics
    attack: float  # s, from silence to the peak
    decay: float  # s, from the peak down to the sustain level
    sustain: float  # level held while a bow or breath holds the note (0..1)
    release: float  # s, from the note's end to silence
    ring: float = 0.0  # 1/s: a plucked or struck string dies away as it sounds (0: held)
    vibrato_cents: float = 0.0  # depth of the vibrato, cents either side
    vibrato_rate: float = 5.5  # Hz
    vibrato_delay: float = 0.18  # s after the onset before the vibrato sets in (then 0.25 s to full)
    noise: float = 0.0  # bow or breath noise (or a pluck's click), relative to the tone
    noise_kind: str = "bow"  # bow: low and rough, all along; breath: airy; pluck: at the onset only


# Tone by instrument family (folkrnn.tables.Instrument.family): a bowed string has a bright,
# sawtooth-like spectrum, bow noise and a vibrato that sets in after the onset; a flute or whistle
# a nearly pure tone with breath noise and a slower, shallower vibrato; reeds (pipes, accordion)
# a steady, odd-harmonic tone without vibrato; plucked and struck strings ring and die away.
_TONES = {
    "bowed": _Tone((1.0, 0.55, 0.36, 0.27, 0.21, 0.17, 0.14, 0.12, 0.1, 0.08), 0.06, 0.12, 0.8, 0.09,
                   vibrato_cents=15.0, vibrato_rate=5.6, noise=0.06, noise_kind="bow"),
    "wind": _Tone((1.0, 0.3, 0.1, 0.05, 0.02), 0.045, 0.08, 0.85, 0.06,
                  vibrato_cents=8.0, vibrato_rate=5.0, vibrato_delay=0.25, noise=0.08, noise_kind="breath"),
    "reed": _Tone((1.0, 0.35, 0.55, 0.2, 0.35, 0.12, 0.2, 0.08), 0.025, 0.05, 0.9, 0.05,
                  noise=0.015, noise_kind="breath"),
    "plucked": _Tone((1.0, 0.65, 0.4, 0.28, 0.18, 0.12, 0.08), 0.004, 0.05, 0.7, 0.12, ring=3.0,
                     noise=0.1, noise_kind="pluck"),
    "struck": _Tone((1.0, 0.45, 0.22, 0.12, 0.06), 0.003, 0.06, 0.6, 0.18, ring=2.2),
}


def _render_wav(tune: Tune, path: Path, *, instrument: str = "fiddle", tempo: float | None = None,
                seed: int = 0, straight: bool = False, soundfont: str | None = None, **options) -> Path:

    _no_options("wav", options)
    return write_atomic(path, tune_to_wav(tune, instrument=instrument, tempo=tempo, seed=seed,
                                          straight=straight, soundfont=soundfont), error=OptionError)


def find_soundfont(soundfont: str | PathLike | None = None) -> str | None:
    """The SoundFont a WAV is played with, or None for the built-in synthesiser.

    ``soundfont`` names one (it must exist, and FluidSynth must be installed); ``"none"`` asks for
    the built-in synthesiser; None takes the first of :data:`SOUNDFONTS` present when the
    ``fluidsynth`` program is installed (Debian: ``apt-get install fluidsynth fluid-soundfont-gm``).
    """
    import shutil

    if soundfont is not None and str(soundfont).strip().lower() == _NO_SOUNDFONT:
        return None
    if soundfont is not None:
        if not Path(soundfont).is_file():
            raise OptionError("no such SoundFont file", file=str(soundfont))
        if shutil.which("fluidsynth") is None:
            raise OptionError("--soundfont needs FluidSynth, which is not installed "
                              "(Debian: apt-get install fluidsynth)")
        return str(soundfont)
    if shutil.which("fluidsynth") is None:
        return None
    return next((path for path in SOUNDFONTS if Path(path).is_file()), None)


def tune_to_wav(tune: Tune, *, instrument: str = "fiddle", tempo: float | None = None, seed: int = 0,
                straight: bool = False, rate: int = _RATE, soundfont: str | PathLike | None = None) -> bytes:
    """The tune played (``folkrnn.midi.tune_to_performance``) as WAV bytes: mono, 16-bit, ``rate`` Hz.

    FluidSynth plays our MIDI file with a General MIDI SoundFont when there is one
    (:func:`find_soundfont`: ``soundfont``, else Debian's fluid-soundfont-gm); otherwise the
    built-in synthesiser does, with a tone, an envelope (attack, decay, sustain, release), bow or
    breath noise and a vibrato per instrument family (``_TONES``).
    """
    notes = tune_to_performance(tune, straight=straight, tempo=tempo, instrument=instrument, seed=seed)
    font = find_soundfont(soundfont)
    if font is not None:
        end = max((n.end for n in notes), default=0.0)
        samples = _fluidsynth(tune, font, rate, end, instrument=instrument, tempo=tempo, seed=seed,
                              straight=straight)
    else:
        samples = _synthesise(notes, _TONES[find_instrument(instrument).family], rate, seed)
    peak = np.abs(samples).max() if len(samples) else 0.0
    if peak > 0:
        samples = samples * (0.8 / peak)
    return _wav_bytes(samples, rate)


def _wav_bytes(samples, rate: int) -> bytes:
    import io
    import wave

    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(pcm.tobytes())
    return buffer.getvalue()


def _fluidsynth(tune: Tune, soundfont: str, rate: int, end: float, **performance):
    """Our MIDI file played by the ``fluidsynth`` program: mono samples in -1..1, cut 0.8 s after
    the last note ends (the reverb's tail), with a short fade."""
    import subprocess
    import tempfile
    import wave

    with tempfile.TemporaryDirectory(prefix="folkrnn-wav-") as folder:
        midi, wav = Path(folder) / "tune.mid", Path(folder) / "tune.wav"
        write_tune_midi(tune, midi, **performance)
        command = ["fluidsynth", "-ni", "-q", "-g", "0.5", "-r", str(rate), "-T", "wav", "-O", "s16",
                   "-F", str(wav), soundfont, str(midi)]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise OptionError(f"fluidsynth could not play the tune: {error}") from None
        if done.returncode != 0 or not wav.is_file():
            why = (done.stderr or done.stdout).strip().splitlines()
            raise OptionError(f"fluidsynth could not play the tune with {soundfont}: "
                              f"{why[-1] if why else f'exit code {done.returncode}'}")
        with wave.open(str(wav)) as handle:
            channels, width = handle.getnchannels(), handle.getsampwidth()
            frames = handle.readframes(handle.getnframes())
    if width != 2:
        raise OptionError(f"fluidsynth wrote {8 * width}-bit samples, not 16-bit")
    samples = np.frombuffer(frames, "<i2").astype(np.float64) / 32768.0
    samples = samples.reshape(-1, channels).mean(axis=1)
    samples = samples[:int((end + 0.8) * rate)]
    fade = min(len(samples), int(0.2 * rate))
    if fade:
        samples[-fade:] *= np.linspace(1.0, 0.0, fade)
    return samples


def _synthesise(notes, tone: _Tone, rate: int, seed: int):
    """The built-in synthesiser: performed notes -> mono samples (any scale)."""
    rng = np.random.default_rng(seed)  # the noise: the same seed, the same file
    end = max((n.end for n in notes), default=0.0) + tone.release + 0.2
    out = np.zeros(int(end * rate) + 1, np.float64)
    for n in notes:
        start = int(n.start * rate)
        held = max(n.end - n.start, 1.0 / rate)
        length = max(int((held + tone.release) * rate), 1)
        t = np.arange(length) / rate
        frequency = 440.0 * 2.0 ** ((n.pitch - 69) / 12)
        # vibrato: the pitch swings vibrato_cents either side at vibrato_rate, fading in after a delay
        depth = tone.vibrato_cents * np.clip((t - tone.vibrato_delay) / 0.25, 0.0, 1.0)
        swing = depth * np.sin(2 * np.pi * tone.vibrato_rate * t)
        phase = 2 * np.pi * np.cumsum(frequency * 2.0 ** (swing / 1200)) / rate
        sound = np.zeros(length)
        for h, amplitude in enumerate(tone.harmonics, start=1):
            if h * frequency * 1.01 < rate / 2:
                partial = amplitude * np.sin(h * phase)
                if tone.ring:  # higher partials of a string die away faster
                    partial *= np.exp(-tone.ring * (0.6 + 0.4 * h) * t)
                sound += partial
        if tone.noise:
            noise = rng.standard_normal(length)
            if tone.noise_kind == "bow":  # rough and low: smoothed, and louder as the bow bites
                noise = np.convolve(noise, np.ones(6) / 6, mode="same")
                noise *= 1.0 + 2.0 * np.exp(-t / 0.04)
            elif tone.noise_kind == "breath":  # airy: the middle and high part, a chiff at the onset
                noise = np.convolve(np.diff(noise, prepend=0.0), np.ones(3) / 3, mode="same")
                noise *= 0.6 + 1.0 * np.exp(-t / 0.03)
            else:  # the pluck's click, gone in a few milliseconds
                noise *= np.exp(-t / 0.006)
            sound += tone.noise * noise * sum(tone.harmonics) ** 0.5
        out[start:start + length] += sound * _envelope(t, held, tone) * (n.velocity / 127.0)
    return out


def _envelope(t, held: float, tone: _Tone):
    """Attack, decay to the sustain level, sustain, then release from the note's end."""
    level = np.where(t < tone.attack, t / tone.attack,
                     tone.sustain + (1 - tone.sustain) * np.exp(-(t - tone.attack) / tone.decay))
    at_end = np.interp(held, t, level) if len(t) > 1 else 1.0
    released = at_end * np.clip(1 - (t - held) / tone.release, 0.0, 1.0)
    return np.where(t < held, level, released)


# suffix -> function(tune, path, **options) -> path written: one per format of folkrnn.tables.FORMATS
_WRITERS: dict[str, Callable[..., Path]] = {
    "abc": _render_abc, "mid": _render_midi, "svg": _render_svg, "musicxml": _render_musicxml,
    "wav": _render_wav, "pdf": _render_pdf,
}
RENDERERS: dict[str, Callable[..., Path]] = {f".{suffix}": _WRITERS[fmt.name] for fmt in FORMATS.values()
                                             for suffix in (fmt.name, *fmt.aliases)}

# formats other issues add; named here so the error can say they are coming, not unknown
_PLANNED: tuple[str, ...] = ()


def formats() -> list[str]:
    """The suffixes ``render`` can write, without their dots: ``["abc", "mid", "midi", "svg", ...]``."""
    return [suffix[1:] for suffix in RENDERERS]


def renderer_for(suffix: str) -> Callable[..., Path]:
    """The function that writes files with this suffix (``".mid"``); OptionError if none does."""
    suffix = suffix.lower()
    renderer = RENDERERS.get(suffix)
    if renderer is None:
        known = ", ".join(RENDERERS)
        if suffix in _PLANNED:
            raise OptionError(f"{suffix} files cannot be written yet; this version writes {known}")
        raise OptionError(f"unknown format {suffix or '(no suffix)'!r}; choose one of {known}")
    return renderer


def render(tune: Tune, path: str | PathLike, *, force: bool = False, **options) -> Path:
    """Write ``tune`` to ``path`` in the format its suffix names, atomically.

    Options go to the format: for MIDI ``straight``, ``tempo``, ``instrument``, ``seed`` (see
    ``folkrnn.midi.tune_to_performance``). Raises OptionError for an unknown suffix, an option
    the format does not take, or an existing file without ``force``.
    """
    path = Path(path)
    try:
        renderer = renderer_for(path.suffix)
    except OptionError as error:
        raise error.located(file=str(path)) from None
    if not force and exists(path):  # a dangling link too
        raise OptionError(EXISTS, file=str(path))
    check_size(tune, path.suffix)
    if force:
        return renderer(tune, path, **options)
    # made under a temporary name, then given its own only if nothing took it meanwhile (a
    # second command writing into the folder): checked and named in one step (folkrnn.files.publish)
    with staged(path, overwrite=False) as temporary:
        renderer(tune, temporary, **options)
    return path


_ENGRAVED = (".svg", ".pdf", ".musicxml", ".xml", ".wav")  # the formats whose back-ends slow down with size


def check_size(tune: Tune, suffix: str) -> None:
    """Refuse, before any work, a tune too big to render (:mod:`folkrnn.limits`): a bar of more than
    ``MAX_NOTES_PER_BAR`` notes in any format, or more than ``MAX_RENDER_NOTES`` notes as sheet music
    or audio (music21 and verovio take minutes over a bar of 10,000 notes). Raises OptionError."""
    from bisect import bisect_right
    from collections import Counter

    if suffix.lower() in _ENGRAVED and len(tune.notes) > MAX_RENDER_NOTES:
        raise OptionError(f"the tune has {len(tune.notes):,} notes; {suffix.lower()} files are rendered for "
                          f"tunes of at most {MAX_RENDER_NOTES:,}")
    lines = sorted({bar.onset for bar in tune.bars if bar.onset > 0})
    per_bar = Counter(bisect_right(lines, note.onset) for note in tune.notes)
    if per_bar:
        bar, count = per_bar.most_common(1)[0]
        if count > MAX_NOTES_PER_BAR:
            raise OptionError(f"bar {bar + 1} has {count:,} notes; folkrnn renders bars of at most "
                              f"{MAX_NOTES_PER_BAR} notes")


def slug(text: str, fallback: str = "tune") -> str:
    """A file name from a title: ``"The Kesh"`` -> ``"the-kesh"``, accents folded, at most 60 characters."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    words = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return words[:60].rstrip("-") or fallback
