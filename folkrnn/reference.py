"""Run the reference ABC tools (abcmidi's abc2midi) and read what they produce, for cross-checks.

abc2midi is the player folkrnn's ABC reading must agree with. This module feeds it one tune,
reads back the MIDI file it writes as exact ``(onset, pitch)`` pairs, collects the warnings of
its check-only mode, and compares two note lists. What abc2midi does by default, and how this
module undoes it so that onsets are the written ones (see /work/helpers/abc2midi_findings.md):

- Every note-on comes 1 tick (of 480 per quarter note) after the written onset; the tick is
  taken off again here.
- Chord notes are spread by ``%%MIDI chordattack`` (10 ticks each by default); a
  ``%%MIDI chordattack 0`` line is put after the X: line so a chord's notes start together.
- ``-NGRA -NGUI -NFER -NFNP`` drop grace notes, guitar chords, fermatas and dynamics.
- abc2midi plays ``~``, ``R``, ``T`` and ``!trill!`` as extra notes (no flag turns this off);
  they are taken out of the body first unless ``ornaments=True``.
- A tune with voices becomes a format-1 file: a meta track, then one ``note track`` per voice
  (numbered voices by number, named ones in the order the header declares them). Only the
  first voice with notes is read; gchord, drone and drum tracks and channel 10 never are.
- abc2midi shortens a staccato note, and then ignores a broken rhythm next to it (``A>.B`` and
  ``.A>B`` play as ``AB``, though the dot is only a decoration); staccato dots are taken out.
- abc2midi reads a one-letter decoration right before an invisible bar line (``H[|]``, a
  fermata over the bar) as the start of a chord and plays the rest of the tune as one chord;
  such a decoration is taken out, as it never changes the notes.
- With ``R:hornpipe`` abc2midi plays ``>`` as 2:1 rather than 3:1; that R: line is hidden.
- ``-quiet`` hides the bar-length warnings, so the check runs without it.

What is left where abc2midi and folkrnn still differ on the default corpus, and who is right, is
in docs/abc2midi.md; none of it is hidden here, because each case changes the written notes.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from fractions import Fraction
from pathlib import Path

from folkrnn.errors import AbcError

__all__ = [
    "ABC2MIDI_TICKS", "abc2midi_available", "abc2midi_notes", "abc2midi_check", "compare_notes",
    "strip_ornaments",
]

ABC2MIDI_TICKS = 480  # abc2midi's ticks per quarter note
_ONSET_DELAY = 1  # abc2midi starts every note this many ticks late
_PLAIN_FLAGS = ["-NGRA", "-NGUI", "-NFER", "-NFNP"]
_MESSAGE = re.compile(r"^(Warning|Error) in line-char (\d+)-(\d+) : ?(.*)$")
_DRUM_CHANNEL = 9  # MIDI channel 10, counted from 0
_VOICE_TRACKS = {"note track", "notes/lyric track"}  # what abc2midi names a voice's track
_TRACK_NAMES = _VOICE_TRACKS | {"gchord track", "drum track", "drone track"}


def _executable() -> str | None:
    return shutil.which("abc2midi")


def abc2midi_available() -> bool:
    """Whether the ``abc2midi`` program (Debian package ``abcmidi``) is on PATH."""
    return _executable() is not None


def _tune_label(tune_text: str) -> str | None:
    number = re.search(r"^X:\s*(\S*)", tune_text, re.MULTILINE)
    title = re.search(r"^T:\s*(.*?)\s*$", tune_text, re.MULTILINE)
    parts = []
    if number:
        parts.append(f"X:{number.group(1)}")
    if title:
        parts.append(f"'{title.group(1)}'")
    return " ".join(parts) or None


_HORNPIPE = re.compile(r"^R:.*hornpipe.*$", re.MULTILINE | re.IGNORECASE)


def _prepare(tune_text: str, directives: list[str]) -> str:
    """The tune with X: first (abc2midi plays nothing before one) and ``directives`` after it."""
    lines = tune_text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    index = next((i for i, line in enumerate(lines) if line.startswith("X:")), None)
    if index is None:
        lines.insert(0, "X:1")
        index = 0
    lines[index + 1:index + 1] = directives
    return "\n".join(lines).rstrip("\n") + "\n"


_FIELD_LINE = re.compile(r"^[A-Za-z+]:")
_LETTER_DECORATIONS = "HIJKLMNOPQSUVWhijklmnopqrstuvw"  # ABC 2.1's H-W, h-w (T, R: ornaments)


def strip_ornaments(tune_text: str) -> str:
    """``tune_text`` without the ornaments abc2midi plays as extra notes: ``~``, ``R``, ``T``
    and ``!trill!`` in the body (after the first K: line), outside strings, ``!...!``
    decorations, inline fields and comments (a lone ``!`` with no partner on its line is an old
    line break, and the music after it is still searched). Staccato dots and a one-letter
    decoration before ``[|]`` go too (see the module docstring). Everything else is kept as
    written.
    """
    out, in_body = [], False
    for line in tune_text.split("\n"):
        if not in_body or _FIELD_LINE.match(line) or line.startswith("%"):
            in_body = in_body or line.startswith("K:")
            out.append(line)
            continue
        kept, i = [], 0
        while i < len(line):
            char = line[i]
            if char == "%":
                kept.append(line[i:])
                break
            if char in "\"!" or (char == "[" and re.match(r"\[[A-Za-z]:", line[i:i + 3])):
                close = "]" if char == "[" else char
                end = line.find(close, i + 1)
                if end < 0 and char == "!":  # a lone `!` (an old line break): music follows
                    kept.append(char)
                    i += 1
                    continue
                end = len(line) - 1 if end < 0 else end
                piece = line[i:end + 1]
                if piece not in ("!trill!", "!roll!"):
                    kept.append(piece)
                i = end + 1
                continue
            if char == ".":
                # abc2midi plays a staccato note shorter, and then refuses a broken rhythm
                # between it and its neighbour ("notes not equal durations"): `A>.B` and
                # `.A>B` play as `AB`. The dot does not change the written notes, so it goes.
                i += 1
                continue
            if char in _LETTER_DECORATIONS and line.startswith("[|]", i + 1):
                # abc2midi reads a one-letter decoration before an invisible bar (`H[|]`) as
                # the start of a chord, and piles the rest of the tune into it; the decoration
                # (a fermata, a bowing) does not change the notes, so it goes
                i += 1
                continue
            if char not in "~TR":
                kept.append(char)
            i += 1
        out.append("".join(kept))
    return "\n".join(out)


def _run(arguments: list[str], cwd: str, timeout: float,
         tune_text: str) -> subprocess.CompletedProcess:
    executable = _executable()
    if executable is None:
        raise AbcError("abc2midi is not installed (Debian/Ubuntu: apt install abcmidi)",
                       tune=_tune_label(tune_text))
    try:
        return subprocess.run([executable, *arguments], cwd=cwd, capture_output=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise AbcError(f"abc2midi took more than {timeout:g} s",
                       tune=_tune_label(tune_text)) from None


def _messages(output: bytes) -> list[str]:
    """abc2midi's warnings and errors, one string each: ``line 6, col 17: warning: ...``."""
    found = []
    for raw in output.decode("latin-1").splitlines():
        line = raw.strip()
        banner = "abc2midi" in line and line[:1].isdigit()  # "4.84 January 20 2023 abc2midi"
        if not line or banner or line.startswith("writing MIDI file"):
            continue
        match = _MESSAGE.match(line)
        if match:
            kind, row, col, text = match.groups()
            found.append(f"line {row}, col {col}: {kind.lower()}: {' '.join(text.split())}")
        else:
            found.append(line)
    return found


def _read_notes(midi_path: Path, tune_text: str) -> list[tuple[Fraction, int]]:
    import mido  # runtime dependency; imported here so that importing this module stays cheap

    try:
        midi = mido.MidiFile(str(midi_path))
    except (OSError, ValueError, EOFError) as error:
        raise AbcError(f"abc2midi wrote a MIDI file mido cannot read: {error}",
                       tune=_tune_label(tune_text)) from None
    for track in midi.tracks:
        names = [msg.text for msg in track if msg.type == "text" and msg.text in _TRACK_NAMES]
        if names and names[0] not in _VOICE_TRACKS:  # "gchord track", "drum track", "drone track"
            continue
        tick, notes = 0, []
        for msg in track:
            tick += msg.time
            if msg.type == "note_on" and msg.velocity > 0 and msg.channel != _DRUM_CHANNEL:
                onset = Fraction(max(tick - _ONSET_DELAY, 0), midi.ticks_per_beat)
                notes.append((onset, msg.note))
        if notes:
            return sorted(notes)
    return []


def abc2midi_notes(tune_text: str, *, timeout: float = 10,
                   ornaments: bool = False) -> list[tuple[Fraction, int]]:
    """The notes abc2midi plays for one tune, as ``(onset, pitch)`` sorted by onset then pitch.

    Parameters
    ----------
    tune_text
        One tune, from its X: line (an X:1 line is added when it has none).
    timeout
        Seconds abc2midi may take.
    ornaments
        Let abc2midi play ``~`` and ``R`` (rolls) and ``T``/``!trill!`` (trills) as the extra
        notes it makes of them. By default they are taken out of the text first, so that the
        notes are the written ones.

    Returns
    -------
    list of (Fraction, int)
        Onset in quarter notes from the start (exact, 1/480 resolution) and MIDI pitch, of the
        first voice only, repeats played out, grace notes and guitar chords left out. Empty
        when abc2midi wrote a file with no notes in it.

    Raises
    ------
    AbcError
        abc2midi is missing, timed out, or wrote no MIDI file (its messages are quoted).
    """
    played = tune_text if ornaments else strip_ornaments(tune_text)
    # abc2midi plays `>` as 2:1 instead of 3:1 when R: says hornpipe (its own lilt, a
    # performance choice, not the notation): hide the R: field so onsets are the written ones
    played = _HORNPIPE.sub("R:", played)
    text = _prepare(played, ["%%MIDI chordattack 0"])
    with tempfile.TemporaryDirectory(prefix="folkrnn-abc2midi-") as folder:
        source, target = Path(folder) / "tune.abc", Path(folder) / "tune.mid"
        source.write_text(text, encoding="utf-8")
        result = _run([source.name, "-o", target.name, *_PLAIN_FLAGS, "-quiet", "-silent"],
                      folder, timeout, tune_text)
        if not target.exists() or target.stat().st_size == 0:
            said = "; ".join(_messages(result.stdout + result.stderr)[:3]) or "no message"
            raise AbcError(f"abc2midi wrote no MIDI file (exit {result.returncode}: {said})",
                           tune=_tune_label(tune_text))
        return _read_notes(target, tune_text)


def abc2midi_check(tune_text: str, *, timeout: float = 10) -> list[str]:
    """abc2midi's warnings and errors for one tune in check-only mode (``abc2midi -c``).

    Each is one line such as ``"line 6, col 17: warning: Track 0 Bar 1 has 3 time units while
    the time signature has 4"``; line numbers count in ``tune_text`` itself. Bars count from 0,
    and "time units" are beats of the meter's denominator. Raises AbcError when abc2midi is
    missing or times out.
    """
    text = _prepare(tune_text, [])
    added = 0 if re.search(r"^X:", tune_text, re.MULTILINE) else 1  # the X:1 line put first
    with tempfile.TemporaryDirectory(prefix="folkrnn-abc2midi-") as folder:
        source = Path(folder) / "tune.abc"
        source.write_text(text, encoding="utf-8")
        result = _run([source.name, "-c"], folder, timeout, tune_text)
    messages = _messages(result.stdout + result.stderr)
    if added:
        messages = [re.sub(r"^line (\d+)", lambda m: f"line {int(m.group(1)) - added}", message)
                    for message in messages]
    return messages


def compare_notes(ours: list[tuple[Fraction, int]], reference: list[tuple[Fraction, int]],
                  tolerance: Fraction = Fraction(1, ABC2MIDI_TICKS)) -> str | None:
    """None when two note lists agree, else one line naming the first difference.

    Both lists are sorted by (onset, pitch) first. They agree when they have the same length and
    each pair has the same pitch and onsets no more than ``tolerance`` quarter notes apart.
    """
    ours, reference = sorted(ours), sorted(reference)
    counts = f"({len(ours)} notes here, {len(reference)} in abc2midi)"
    for index, (mine, theirs) in enumerate(zip(ours, reference)):
        if mine[1] != theirs[1] or abs(mine[0] - theirs[0]) > tolerance:
            return (f"note {index}: ours pitch {mine[1]} at {_beats(mine[0])}, abc2midi pitch "
                    f"{theirs[1]} at {_beats(theirs[0])} {counts}")
    if len(ours) != len(reference):
        index = min(len(ours), len(reference))
        extra, side = (ours, "ours") if len(ours) > len(reference) else (reference, "abc2midi")
        onset, pitch = extra[index]
        return f"note {index}: only {side} has more, from pitch {pitch} at {_beats(onset)} {counts}"
    return None


def _beats(onset: Fraction) -> str:
    """An onset for people: ``"7/2 (3.5)"``, or ``"3"``."""
    if onset.denominator == 1:
        return str(onset.numerator)
    return f"{onset} ({float(onset):.3f})"
