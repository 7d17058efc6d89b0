"""MIDI file -> event ids: folkrnn's encoder against MidiTok's MIDILike tokenizer, on the same files.

The files: music21's MIDI test files (testPrimitive and two from omr), folk tunes from O'Neill's
rendered expressively to MIDI, and a few long random performances. Each encoder reads every file
from disk and turns it into ids; the best of several rounds counts. A plain pretty_midi reader
with our event encoder is timed too, to show where the speed comes from (reading).

    .venv/bin/python benchmarks/midi_speed.py [--rounds 5] [--tunes 40]

The last line is JSON; ``ratio`` is MidiTok's time over ours (>= 1.0: we are as fast or faster).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import tempfile
import time
import warnings
from pathlib import Path

import music21
import pretty_midi

from folkrnn.abc import parse, read_text, split_tunes
from folkrnn.events import EventConfig, PerformanceNote, notes_to_events
from folkrnn.midi import encode_midi, write_performance, write_tune_midi


def corpus_files(folder: Path, tunes: int, long_files: int) -> list[Path]:
    root = Path(music21.__file__).parent
    files = sorted((root / "midi" / "testPrimitive").glob("*.mid"))
    files += sorted((root / "omr").glob("*.mid"))
    made = 0
    for path in sorted((root / "corpus" / "oneills1850").glob("*.abc")):
        for text in split_tunes(read_text(path)):
            if made == tunes:
                break
            try:
                tune = parse(text)
                target = folder / f"tune{made:03d}.mid"
                write_tune_midi(tune, target, seed=made)
            except Exception:  # noqa: BLE001 - a corpus tune we cannot play is simply left out
                continue
            files.append(target)
            made += 1
    rng = random.Random(0)
    for k in range(long_files):
        notes, time_s = [], 0.0
        for _ in range(3000):
            time_s += rng.choice([0.0, 0.05, 0.1, 0.25])
            notes.append(PerformanceNote(rng.randint(36, 96), time_s, time_s + rng.uniform(0.05, 1.0),
                                         rng.randint(20, 120)))
        target = folder / f"long{k}.mid"
        write_performance(notes, target)
        files.append(target)
    return files


def pretty_midi_encode(path: Path, config: EventConfig) -> list[int]:
    """The straightforward encoder: pretty_midi reads, our event encoder encodes."""
    midi = pretty_midi.PrettyMIDI(str(path))
    notes = [PerformanceNote(n.pitch, max(0.0, n.start), max(n.start, n.end), n.velocity)
             for instrument in midi.instruments if not instrument.is_drum for n in instrument.notes]
    return notes_to_events(notes, config)


def best_time(function, files, rounds: int) -> float:
    for path in files:  # warm up: imports, caches
        function(path)
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for path in files:
            function(path)
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tunes", type=int, default=40, help="O'Neill's tunes rendered to MIDI")
    parser.add_argument("--long", type=int, default=3, help="random 3000-note performances")
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    from miditok import MIDILike, TokenizerConfig

    config = EventConfig()
    tokenizer = MIDILike(TokenizerConfig())
    with tempfile.TemporaryDirectory() as folder:
        files = corpus_files(Path(folder), args.tunes, args.long)
        notes = sum(len(i.notes) for f in files for i in pretty_midi.PrettyMIDI(str(f)).instruments)
        ours = best_time(lambda p: encode_midi(p, config), files, args.rounds)
        theirs = best_time(lambda p: tokenizer.encode(p), files, args.rounds)
        plain = best_time(lambda p: pretty_midi_encode(p, config), files, args.rounds)
    print(f"{len(files)} files, {notes:,} notes; best of {args.rounds} rounds")
    print(f"  folkrnn encode_midi (symusic + numpy)   {ours * 1000:9.1f} ms")
    print(f"  MidiTok MIDILike                        {theirs * 1000:9.1f} ms")
    print(f"  pretty_midi + notes_to_events           {plain * 1000:9.1f} ms")
    print(f"  ratio MidiTok / folkrnn: {theirs / ours:.1f}x; MidiTok / pretty_midi encoder: "
          f"{theirs / plain:.2f}x")
    print(json.dumps({
        "benchmark": "midi_speed", "files": len(files), "notes": notes, "rounds": args.rounds,
        "folkrnn_s": round(ours, 5), "miditok_s": round(theirs, 5), "pretty_midi_s": round(plain, 5),
        "ratio": round(theirs / ours, 2), "pretty_midi_ratio": round(theirs / plain, 2),
        "python": sys.version.split()[0], "machine": platform.machine(),
    }))


if __name__ == "__main__":
    main()
