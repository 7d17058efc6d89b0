"""folkrnn: learn folk music from ABC and MIDI with a three-layer LSTM, and write new tunes."""

from folkrnn.errors import FolkError

__version__ = "0.1.0"

__all__ = ["FolkError", "__version__"]
