"""Tune -> a file, the format chosen by the file's suffix; every file written atomically.

Each format is one entry of ``RENDERERS``: a function ``(tune, path, **options)`` whose heavy
back-end is imported inside it, so that writing ABC or MIDI never imports music21 or verovio.

- ``.abc``: ``folkrnn.abc.writer``;
- ``.mid``/``.midi``: ``folkrnn.midi``, expressive or straight;
- ``.svg``: sheet music engraved by verovio from ABC text (the tune's own text when the caller
  passes ``abc=``, else the Tune written as ABC). Verovio ignores R: and draws no endings from
  ABC, so the page gets a subtitle naming the rhythm and key, and the endings are added to the
  MEI that verovio makes of the ABC (as ``<ending>`` elements) before it engraves: first and
  second time bars get their brackets;
- ``.musicxml``/``.xml``: music21, built from the Tune (not by music21 reading ABC, which it does
  leniently and wrongly): measures from the bar lines, a pickup, ties across bar lines, tuplets,
  chords, grace notes, repeats and endings (repeat brackets), pitches spelled in the key;
- ``.wav``: a small additive synthesiser in NumPy plays the expressive performance of
  ``folkrnn.midi`` (mono, 22,050 Hz, 16-bit), with a tone per instrument family.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from os import PathLike
from pathlib import Path

from folkrnn.errors import OptionError
from folkrnn.files import write_atomic
from folkrnn.music import Tune
from folkrnn.tables import FORMATS, find_instrument

__all__ = ["RENDERERS", "render", "renderer_for", "slug", "formats", "tune_to_svg", "tune_to_score",
           "tune_to_musicxml", "tune_to_wav"]


def _render_abc(tune: Tune, path: Path, **options) -> Path:
    from folkrnn.abc.writer import tune_to_abc

    _no_options("abc", options)
    return write_atomic(path, tune_to_abc(tune).encode("utf-8"), error=OptionError)


def _render_midi(tune: Tune, path: Path, *, straight: bool = False, tempo: float | None = None,
                 instrument: str = "fiddle", seed: int = 0, **options) -> Path:
    from folkrnn.midi import write_tune_midi

    _no_options("mid", options)
    return write_tune_midi(tune, path, straight=straight, tempo=tempo, instrument=instrument,
                           seed=seed)


def _no_options(name: str, options: dict) -> None:
    if options:
        raise OptionError(f"the {name} format takes no option {', '.join(sorted(options))}")


# --- .svg: verovio --------------------------------------------------------------------------

_MEI = "http://www.music-encoding.org/ns/mei"


def _render_svg(tune: Tune, path: Path, *, abc: str | None = None, **options) -> Path:

    _no_options("svg", options)
    return write_atomic(path, tune_to_svg(tune, abc=abc).encode("utf-8"), error=OptionError)


def _page_text(tune: Tune, abc: str) -> str:
    """The ABC that verovio engraves: a second T: (the subtitle) naming the rhythm and the key."""
    from folkrnn.music import MODE_NAMES

    rhythm = tune.rhythm.strip()
    tonic = tune.key.tonic.replace("b", "\u266d").replace("#", "\u266f")
    key = f"{tonic} {MODE_NAMES.get(tune.key.mode, tune.key.mode)}"
    subtitle = " \u00b7 ".join(part for part in (rhythm, key) if part)
    lines = abc.split("\n")
    title_at = next((i for i, line in enumerate(lines) if line.startswith("T:")), None)
    if title_at is None:
        return abc
    lines.insert(title_at + 1, f"T:{subtitle}")
    return "\n".join(lines)


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
    """Engrave a tune with verovio: one page, title, subtitle (rhythm, key), meter, key, endings.

    Parameters
    ----------
    tune
        The tune (for the subtitle and the endings).
    abc
        Its ABC text (default: the Tune written as ABC).
    """
    import xml.etree.ElementTree as ET

    import verovio

    if abc is None:
        from folkrnn.abc.writer import tune_to_abc

        abc = tune_to_abc(tune)
    verovio.enableLog(verovio.LOG_OFF) if hasattr(verovio, "enableLog") else None
    toolkit = verovio.toolkit()
    toolkit.setOptions({"pageWidth": 2100, "pageHeight": 60000, "adjustPageHeight": True,
                        "scale": 45, "footer": "none", "header": "auto", "breaks": "auto",
                        "pageMarginTop": 80, "pageMarginBottom": 80,
                        "xmlIdChecksum": True})  # ids from the input: the same tune, the same file
    if not toolkit.loadData(_page_text(tune, abc)):
        raise OptionError("verovio could not read this tune's ABC")
    endings = _ending_spans(tune)
    if endings:
        ET.register_namespace("", _MEI)
        try:
            root = ET.fromstring(toolkit.getMEI())
        except ET.ParseError:
            root = None
        section = root.find(f".//{{{_MEI}}}section") if root is not None else None
        measures = [child for child in section if child.tag == f"{{{_MEI}}}measure"] \
            if section is not None else []
        if measures and len(measures) == len(_measure_spans(tune)):
            for number, first, last in endings:
                members = measures[first:last + 1]
                children = list(section)
                if not members or any(m not in children for m in members):
                    continue
                at = children.index(members[0])
                bracket = ET.Element(f"{{{_MEI}}}ending", {"n": str(number), "label": f"{number}."})
                for member in children[at:children.index(members[-1]) + 1]:
                    section.remove(member)
                    bracket.append(member)
                section.insert(at, bracket)
            toolkit.loadData(ET.tostring(root, encoding="unicode"))
    return toolkit.renderToSVG(1)


# --- .musicxml: music21 from the Tune --------------------------------------------------------

def _render_musicxml(tune: Tune, path: Path, **options) -> Path:

    _no_options("musicxml", options)
    return write_atomic(path, tune_to_musicxml(tune), error=OptionError)


def _m21_pitch(pitch: int, signature: dict):
    from music21 import pitch as m21pitch

    from folkrnn.abc.writer import spell_pitch

    letter, alter = spell_pitch(pitch, signature)
    octave = (pitch - alter - {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}[letter]) // 12 - 1
    out = m21pitch.Pitch(letter)
    out.octave = octave
    if alter:
        out.accidental = m21pitch.Accidental(alter)
    return out


def tune_to_score(tune: Tune):
    """A music21 Score of the tune, built from its notes and bar lines (see the module docstring)."""
    from fractions import Fraction

    from music21 import bar as m21bar
    from music21 import chord, key, metadata, meter, note, spanner, stream, tie

    signature = tune.key.accidentals
    score = stream.Score()
    score.metadata = metadata.Metadata()
    score.metadata.title = tune.title or "Untitled"
    score.metadata.movementName = tune.title or "Untitled"
    part = stream.Part()
    part.partName = "Melody"
    spans = _measure_spans(tune)
    if not spans:
        spans = [(Fraction(0), tune.meter.bar_length or Fraction(4))]
    main = sorted((n for n in tune.notes if not n.grace), key=lambda n: (n.onset, n.pitch))
    graces = [n for n in tune.notes if n.grace]
    bar_at: dict = {}
    for bar in tune.bars:
        bar_at.setdefault(bar.onset, []).append(bar)
    full = tune.meter.bar_length
    measures = []
    for index, (start, end) in enumerate(spans):
        measure = stream.Measure(number=index if index == 0 and full and end - start < full else
                                 index + (0 if spans[0][1] - spans[0][0] < full else 1))
        if index == 0:
            measure.timeSignature = meter.TimeSignature(f"{tune.meter.numerator}/{tune.meter.denominator}") \
                if not tune.meter.free else None
            tonic = tune.key.tonic.replace("b", "-")
            mode = {"maj": "major", "min": "minor", "dor": "dorian", "mix": "mixolydian",
                    "phr": "phrygian", "lyd": "lydian", "loc": "locrian"}[tune.key.mode]
            measure.keySignature = key.Key(tonic, mode)
            if full and end - start < full:
                measure.paddingLeft = float(full - (end - start))
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


def tune_to_musicxml(tune: Tune) -> bytes:
    """The tune as MusicXML bytes (music21), ready for MuseScore and other notation programs."""
    from music21.musicxml.m21ToXml import GeneralObjectExporter

    data = GeneralObjectExporter(tune_to_score(tune)).parse()
    # the date of writing is left out, and music21's random part ids made fixed, so that the same
    # tune always gives the same file
    data = re.sub(rb"\s*<encoding-date>[^<]*</encoding-date>", b"", data)
    return re.sub(rb'id="P[0-9a-f]{16,}"', b'id="P1"', data)


# --- .wav: a small additive synthesiser ------------------------------------------------------

# Tone by instrument family: relative amplitudes of the first harmonics, and how fast a note
# dies away after its attack (1/s; 0: held, as a bow or breath holds it).
_TONES = {
    "bowed": ((1.0, 0.5, 0.33, 0.25, 0.2, 0.15, 0.1), 0.0),
    "wind": ((1.0, 0.2, 0.08, 0.03), 0.0),
    "reed": ((1.0, 0.6, 0.45, 0.3, 0.2, 0.1), 0.0),
    "plucked": ((1.0, 0.6, 0.3, 0.2, 0.1), 3.0),
    "struck": ((1.0, 0.4, 0.2, 0.1), 2.0),
}
_RATE = 22050


def _render_wav(tune: Tune, path: Path, *, instrument: str = "fiddle", tempo: float | None = None,
                seed: int = 0, straight: bool = False, **options) -> Path:

    _no_options("wav", options)
    return write_atomic(path, tune_to_wav(tune, instrument=instrument, tempo=tempo, seed=seed,
                                          straight=straight), error=OptionError)


def tune_to_wav(tune: Tune, *, instrument: str = "fiddle", tempo: float | None = None, seed: int = 0,
                straight: bool = False, rate: int = _RATE) -> bytes:
    """The tune played (``folkrnn.midi.tune_to_performance``) and synthesised: WAV bytes."""
    import io
    import wave

    import numpy as np

    from folkrnn.midi import tune_to_performance

    notes = tune_to_performance(tune, straight=straight, tempo=tempo, instrument=instrument, seed=seed)
    harmonics, decay = _TONES[find_instrument(instrument).family]  # a known name: played above
    release = 0.06
    end = max((n.end for n in notes), default=0.0) + release + 0.2
    out = np.zeros(int(end * rate) + 1, np.float64)
    for n in notes:
        start = int(n.start * rate)
        length = max(int((n.end - n.start + release) * rate), 1)
        t = np.arange(length) / rate
        frequency = 440.0 * 2.0 ** ((n.pitch - 69) / 12)
        tone = np.zeros(length)
        for h, amplitude in enumerate(harmonics, start=1):
            if h * frequency < rate / 2:
                tone += amplitude * np.sin(2 * np.pi * h * frequency * t)
        envelope = np.minimum(t / 0.012, 1.0)  # attack
        if decay:
            envelope *= np.exp(-decay * t)
        held = n.end - n.start
        envelope *= np.clip((held + release - t) / release, 0.0, 1.0)  # release
        out[start:start + length] += tone * envelope * (n.velocity / 127.0)
    peak = np.abs(out).max()
    if peak > 0:
        out *= 0.8 / peak
    pcm = (out * 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(pcm.tobytes())
    return buffer.getvalue()


# suffix -> function(tune, path, **options) -> path written: one per format of folkrnn.tables.FORMATS
_WRITERS: dict[str, Callable[..., Path]] = {
    "abc": _render_abc, "mid": _render_midi, "svg": _render_svg, "musicxml": _render_musicxml,
    "wav": _render_wav,
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
    if path.exists() and not force:
        raise OptionError("the file exists; pass --force to overwrite it", file=str(path))
    return renderer(tune, path, **options)


def slug(text: str, fallback: str = "tune") -> str:
    """A file name from a title: ``"The Kesh"`` -> ``"the-kesh"``, accents folded, at most 60 characters."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    words = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return words[:60].rstrip("-") or fallback
