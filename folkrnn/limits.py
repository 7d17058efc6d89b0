"""The limits folkrnn keeps to, in one place: each is checked before the work starts, and each gives
a one-line error.

Without them a slip of the keyboard (``-n 1000000000``, ``validate /dev/zero``, a bar of 10,000
notes, a model config with a million layers) costs gigabytes or hours before anything fails. The
README's "Limits" section lists these values; change them here and there together.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from folkrnn.errors import FolkError, OptionError

__all__ = [
    "MAX_TUNES", "MAX_INPUT_BYTES", "MAX_CORPUS_FILE_BYTES", "MAX_BEAM_WIDTH", "MAX_NOTES_PER_BAR",
    "MAX_RENDER_NOTES", "MAX_TRANSCRIBE_NOTES", "MAX_LAYERS", "MAX_HIDDEN_SIZE", "MAX_EMBEDDING_SIZE",
    "MAX_VOCAB_SIZE", "MAX_PARAMETERS", "check_count", "parameter_count", "check_model_size",
]

# tunes of one generate, performances of one perform (-n): the ABC grammar learns states as tunes are
# made (~n**0.6 of them, ~200 bytes a transition) and keeps them for the request; 50,000 tunes stay
# under ~2 GB a process (measured to 5,000: 0.94 GB before generate streamed, projected beyond)
MAX_TUNES = 50_000
MAX_INPUT_BYTES = 16 * 2**20  # an ABC or MIDI file (or standard input) a command reads: 16 MiB
MAX_CORPUS_FILE_BYTES = 256 * 2**20  # one file of a training corpus (folk-rnn's data files are big)
MAX_BEAM_WIDTH = 64  # --beam-width: each hypothesis is a row of every step
MAX_NOTES_PER_BAR = 128  # rendering (ABC, MIDI, SVG, MusicXML, WAV): a bar of 64ths in 4/4, twice over
MAX_RENDER_NOTES = 5_000  # rendering: notes in one tune (music21 takes ~15 s for MusicXML)
MAX_TRANSCRIBE_NOTES = 20_000  # transcribe: notes in one MIDI file (~30 minutes of dance music)
MAX_LAYERS = 16  # model config: LSTM layers
MAX_HIDDEN_SIZE = 8192  # model config: units per layer
MAX_EMBEDDING_SIZE = 8192  # model config: token embedding width
MAX_VOCAB_SIZE = 100_000  # model config: token ids
MAX_PARAMETERS = 500_000_000  # model config: weights in all (2 GB as float32)


def check_count(count: int, what: str = "tunes") -> None:
    """Refuse an ``-n`` below 1 or above :data:`MAX_TUNES` (OptionError), before any work."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise OptionError(f"-n must be at least 1, not {count}")
    if count > MAX_TUNES:
        raise OptionError(f"-n must be at most {MAX_TUNES:,} {what}, not {count:,}")


def parameter_count(vocab_size: int, embedding_size: int, hidden_size: int, layers: int,
                    feature_sizes: Sequence[int] = (), *, embedding: bool = True) -> int:
    """Weights of the language model (``folkrnn.model``): stacked LSTM layers with nn.LSTM's two
    biases, the output layer, and (``embedding``) the token and feature embedding tables."""
    count = 0
    for layer in range(layers):
        inputs = embedding_size if layer == 0 else hidden_size
        count += 4 * hidden_size * (inputs + hidden_size) + 2 * 4 * hidden_size
    count += hidden_size * vocab_size + vocab_size  # output layer
    return count + ((vocab_size + sum(feature_sizes)) * embedding_size if embedding else 0)


def check_model_size(config: Mapping, *, error: type[FolkError] = OptionError, where: str = "") -> None:
    """Refuse a model config too big to build, from its numbers alone (before any weight is
    allocated or read). ``config`` has positive integers ``vocab_size``, ``embedding_size``,
    ``hidden_size``, ``layers`` and perhaps ``feature_sizes``; raises ``error`` naming ``where``."""
    prefix = f"{where}: " if where else ""
    for name, limit in (("layers", MAX_LAYERS), ("hidden_size", MAX_HIDDEN_SIZE),
                        ("embedding_size", MAX_EMBEDDING_SIZE), ("vocab_size", MAX_VOCAB_SIZE)):
        value = config[name]
        if value > limit:
            raise error(f"{prefix}model {name} is {value:,}; folkrnn builds models of at most {limit:,}")
    sizes = config.get("feature_sizes") or ()
    if len(sizes) > MAX_LAYERS or any(not isinstance(size, int) or size > MAX_VOCAB_SIZE for size in sizes):
        raise error(f"{prefix}model feature_sizes {list(sizes)[:MAX_LAYERS + 1]!r} are too many or too large")
    count = parameter_count(config["vocab_size"], config["embedding_size"], config["hidden_size"],
                            config["layers"], sizes)
    if count > MAX_PARAMETERS:
        raise error(f"{prefix}the model would have {count:,} weights; folkrnn builds models of at most "
                    f"{MAX_PARAMETERS:,}")
