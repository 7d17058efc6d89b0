"""Reading ABC files as text and splitting tunebooks into tunes, keeping where each tune starts.

Real collections come as UTF-8 or Latin-1, with or without a byte-order mark, with CRLF or CR line
ends, and sometimes as something that is not text at all: all of that is settled here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from folkrnn.errors import AbcError
from folkrnn.files import read_input
from folkrnn.limits import MAX_INPUT_BYTES

__all__ = ["TuneText", "decode_bytes", "read_text", "refuse_binary", "split_tunes", "split_tunebook"]

_X_LINE = re.compile(r"^X:", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class TuneText:
    """One tune's text and where it came from: ``line`` is the 1-based line of its X: field."""

    text: str
    file: str | None = None
    line: int = 1

    @property
    def number_and_title(self) -> tuple[str, str]:
        """The header's first X: and T: values ("" when absent), read up to K:."""
        number = title = ""
        for raw in self.text.split("\n", 60)[:60]:
            if raw.startswith("X:") and not number:
                number = raw[2:].strip()
            elif raw.startswith("T:") and not title:
                title = raw[2:].strip()
            elif raw.startswith("K:"):
                break
        return number, title

    @property
    def label(self) -> str:
        """``"X:3 'The Kesh'"``: how error messages name the tune."""
        number, title = self.number_and_title
        parts = ([f"X:{number}"] if number else []) + ([repr(title)] if title else [])
        return " ".join(parts) or "(no X:)"


def decode_bytes(data: bytes, name: str | None = None) -> str:
    """Bytes of an ABC file -> text with ``\\n`` line ends. Raises AbcError for binary data."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            data = data.decode("utf-16").encode("utf-8")
        except UnicodeDecodeError:
            raise AbcError("file starts with a UTF-16 mark but is not UTF-16 text", file=name) from None
    refuse_binary(data, name)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")  # every byte is a Latin-1 character: never fails
    return text.replace("\r\n", "\n").replace("\r", "\n")


def refuse_binary(data: bytes, name: str | None = None) -> None:
    """Raise AbcError when the first 4 KiB of ``data`` look binary (a NUL byte, or more than one
    control character in twenty)."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return  # UTF-16 text: decode_bytes reads it
    sample = data[3:4099] if data.startswith(b"\xef\xbb\xbf") else data[:4096]
    if b"\x00" in sample or (sample and sum(b < 9 or 13 < b < 32 for b in sample) > len(sample) // 20):
        raise AbcError("this is a binary file, not ABC text", file=name)


def read_text(path: str | Path, limit: int | None = None) -> str:
    """Read an ABC file (``"-"``: standard input) as text: UTF-8 or Latin-1, BOM and CRLF handled.

    At most ``limit`` bytes (default :data:`folkrnn.limits.MAX_INPUT_BYTES`); a FIFO, a device or a
    larger file is refused before it is read, and binary data from its first block. Raises AbcError.
    """
    name = "<stdin>" if str(path) == "-" else str(path)
    data = read_input(path, limit=MAX_INPUT_BYTES if limit is None else limit, error=AbcError,
                      what="an ABC file", check=lambda first: refuse_binary(first, name))
    text = decode_bytes(data, name)
    if not text.strip():
        raise AbcError("the file is empty", file=name)
    return text


def split_tunebook(text: str, file: str | None = None) -> list[TuneText]:
    """The tunes of a tunebook, each from its X: line up to the next X: line.

    Text before the first X: is the file header (ABC 2.1 section 2.2.2); it is not a tune.
    A text with no X: line at all is taken to be a single tune.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    starts = [m.start() for m in _X_LINE.finditer(text)]
    if not starts:
        return [TuneText(text, file, 1)] if text.strip() else []
    tunes = []
    line = text.count("\n", 0, starts[0]) + 1
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else len(text)
        chunk = text[start:end]
        tunes.append(TuneText(chunk.rstrip() + "\n", file, line))
        line += chunk.count("\n")
    return tunes


def split_tunes(text: str) -> list[str]:
    """The tunes of a tunebook as texts, each starting at its X: line."""
    return [tune.text for tune in split_tunebook(text)]
