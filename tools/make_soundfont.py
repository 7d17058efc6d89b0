"""Make the web composer's instrument samples: folkrnn/serve/static/soundfont/<instrument>-mp3/<note>.mp3.

abcjs plays a tune from one MP3 per instrument and note, fetched from ``<soundFontUrl><instrument>-mp3/
<note>.mp3`` (its General MIDI instrument name, "violin"; its note name, "Bb4"). By default it asks
a remote host for them; ``folkrnn serve`` ships its own so that the page plays offline. Each note
is one MIDI note rendered by FluidSynth from the FluidR3 General MIDI SoundFont (MIT licence,
Debian's fluid-soundfont-gm), cut to a short sample with a release, mono, and encoded with LAME.

Build-time tools only (the package needs none of them to run):

    apt-get install -y fluidsynth fluid-soundfont-gm lame
    .venv/bin/python tools/make_soundfont.py [--out folkrnn/serve/static/soundfont] [--sf2 PATH]

mido (a folkrnn dependency) writes the one-note MIDI files; numpy cuts, fades and levels them.
The same SoundFont and tools give the same samples.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import wave
from pathlib import Path

import mido
import numpy as np

# The General MIDI sounds shipped: (abcjs's instrument name, 0-based program). Every folkrnn
# instrument plays with the nearest of them (the page's INSTRUMENT_FALLBACK says which).
INSTRUMENTS = (
    ("acoustic_grand_piano", 0),
    ("accordion", 21),
    ("acoustic_guitar_steel", 25),
    ("violin", 40),
    ("flute", 73),
    ("whistle", 78),
    ("bagpipe", 109),
)
# The notes: D3 to C7 (MIDI 50-96). folkrnn writes its tunes in about G3..E6 once transposed to
# their key (the fiddle's range reaches A6); abcjs loads only the notes a tune uses.
LOWEST, HIGHEST = 50, 96
NAMES = ("C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B")  # abcjs's pitch-to-note-name

RATE = 22050  # Hz
HOLD = 1.5  # seconds the key is held
LENGTH = 1.9  # seconds kept: the hold, then the release, faded out over the last FADE
FADE = 0.25
PEAK = 0.5  # each instrument's loudest note, of full scale (abcjs adds up to ~1.1 gain; notes overlap)
VELOCITY = 100
BITRATE = 32  # kbit/s, mono


def note_name(pitch: int) -> str:
    """MIDI pitch -> abcjs's note name (60 -> "C4", 70 -> "Bb4")."""
    return f"{NAMES[pitch % 12]}{pitch // 12 - 1}"


def one_note_midi(path: Path, program: int, pitch: int) -> None:
    midi = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    ticks = int(HOLD * 2 * 480)  # 120 bpm: a beat is half a second
    track.append(mido.MetaMessage("set_tempo", tempo=500_000, time=0))
    track.append(mido.Message("program_change", program=program, channel=0, time=0))
    track.append(mido.Message("note_on", note=pitch, velocity=VELOCITY, channel=0, time=0))
    track.append(mido.Message("note_off", note=pitch, velocity=0, channel=0, time=ticks))
    # silence after the note off, so that FluidSynth renders the release
    track.append(mido.MetaMessage("end_of_track", time=int((LENGTH - HOLD + 0.5) * 2 * 480)))
    midi.save(path)


def render(sf2: Path, midi: Path, wav: Path) -> np.ndarray:
    """FluidSynth, dry (no reverb, no chorus) -> mono float samples."""
    subprocess.run(["fluidsynth", "-ni", "-q", "-R", "0", "-C", "0", "-g", "1.0", "-r", str(RATE),
                    "-F", str(wav), str(sf2), str(midi)], check=True, stdout=subprocess.DEVNULL)
    with wave.open(str(wav)) as reader:
        channels, width = reader.getnchannels(), reader.getsampwidth()
        data = reader.readframes(reader.getnframes())
    if width != 2:
        raise SystemExit(f"{wav}: expected 16-bit samples, not {8 * width}-bit")
    samples = np.frombuffer(data, dtype="<i2").astype(np.float64) / 32768.0
    return samples.reshape(-1, channels).mean(axis=1)


def shape(samples: np.ndarray) -> np.ndarray:
    """Cut to LENGTH seconds from the first sound, fade out over the last FADE seconds."""
    loud = np.flatnonzero(np.abs(samples) > 1e-4)
    start = int(loud[0]) if loud.size else 0
    out = samples[start:start + int(LENGTH * RATE)].copy()
    out = np.pad(out, (0, max(0, int(LENGTH * RATE) - out.size)))
    fade = int(FADE * RATE)
    out[-fade:] *= np.linspace(1.0, 0.0, fade) ** 2
    return out


def encode(samples: np.ndarray, wav: Path, mp3: Path) -> None:
    pcm = np.clip(np.round(samples * 32767), -32768, 32767).astype("<i2")
    with wave.open(str(wav), "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(RATE)
        writer.writeframes(pcm.tobytes())
    subprocess.run(["lame", "--quiet", "-m", "m", "-b", str(BITRATE), "--noreplaygain", str(wav), str(mp3)], check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    here = Path(__file__).resolve().parent.parent
    parser.add_argument("--out", type=Path, default=here / "folkrnn" / "serve" / "static" / "soundfont")
    parser.add_argument("--sf2", type=Path, default=Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"))
    args = parser.parse_args(argv)
    for tool in ("fluidsynth", "lame"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found: apt-get install -y fluidsynth fluid-soundfont-gm lame")
    if not args.sf2.is_file():
        raise SystemExit(f"{args.sf2} not found: apt-get install -y fluid-soundfont-gm")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name, program in INSTRUMENTS:
            notes = {}
            for pitch in range(LOWEST, HIGHEST + 1):
                midi = work / "note.mid"
                one_note_midi(midi, program, pitch)
                notes[pitch] = shape(render(args.sf2, midi, work / "note.wav"))
            # one gain for the whole instrument: its notes keep their balance, its loudest sits at PEAK
            gain = PEAK / max(float(np.abs(samples).max()) for samples in notes.values())
            folder = args.out / f"{name}-mp3"
            folder.mkdir(parents=True, exist_ok=True)
            for pitch, samples in notes.items():
                encode(samples * gain, work / "out.wav", folder / f"{note_name(pitch)}.mp3")
            size = sum(path.stat().st_size for path in folder.iterdir())
            print(f"{name}: {len(notes)} notes, {size / 1024:.0f} KiB", file=sys.stderr)
    total = sum(path.stat().st_size for path in args.out.rglob("*.mp3"))
    print(f"{args.out}: {total / 1024:.0f} KiB", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
