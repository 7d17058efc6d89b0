"""The one exception family that folkrnn raises on bad input, with where the input went wrong.

Anything else escaping the library is a bug. The CLI prints ``str(error)`` as one line and exits
non-zero; tracebacks are for bugs only.
"""

from __future__ import annotations

__all__ = ["FolkError", "AbcError", "MidiError", "ModelError", "CorpusError", "OptionError"]


class FolkError(Exception):
    """Bad input, named precisely enough for a person to find and fix it.

    Parameters
    ----------
    message
        What was wrong or what was expected.
    file, tune, line, col
        Where: the file path, the tune (``"X:3 'The Kesh'"``), and 1-based line and column.
    """

    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        tune: str | None = None,
        line: int | None = None,
        col: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.tune = tune
        self.line = line
        self.col = col

    def located(self, *, file: str | None = None, tune: str | None = None,
                line_offset: int = 0) -> FolkError:
        """Fill in the context an outer layer knows (the file, the tune, where the tune starts)."""
        if file is not None and self.file is None:
            self.file = file
        if tune is not None and self.tune is None:
            self.tune = tune
        if line_offset and self.line is not None:
            self.line += line_offset
        return self

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = self.file
            if self.line is not None:
                where += f":{self.line}"
                if self.col is not None:
                    where += f":{self.col}"
        elif self.line is not None:
            where = f"line {self.line}" + (f", column {self.col}" if self.col is not None else "")
        parts = [p for p in (where, f"tune {self.tune}" if self.tune else "") if p]
        prefix = ", ".join(parts)
        # one line, always: messages may quote input that contains newlines
        text = f"{prefix}: {self.message}" if prefix else self.message
        return " ".join(text.split())


class AbcError(FolkError):
    """ABC text that cannot be read."""


class MidiError(FolkError):
    """A MIDI file that cannot be read or written."""


class ModelError(FolkError):
    """A checkpoint that is missing, corrupt, foreign, or of the wrong kind."""


class CorpusError(FolkError):
    """A collection with nothing usable in it."""


class OptionError(FolkError):
    """An option out of its range."""

    exit_code = 2
