"""Writing files so that nothing is ever half-written: one atomic writer and one folder check.

Every file folkrnn writes (ABC, MIDI, SVG, MusicXML, WAV, tunebooks, summaries, models, corpus
caches) goes through :func:`write_atomic`: the bytes go to a temporary file in the same folder,
are flushed to disk, and the temporary file is renamed over the target. A reader, or a user
after a crash or a full disk, sees the old file or the new one, never a mixture.
"""

from __future__ import annotations

import os
import tempfile
from os import PathLike
from pathlib import Path

from folkrnn.errors import FolkError, OptionError

__all__ = ["write_atomic", "prepare_folder", "default_permissions"]


def default_permissions(path: str | PathLike) -> Path:
    """Give ``path`` the permissions a plain ``open(path, "w")`` would (0666 less the umask).

    ``tempfile.mkstemp`` makes its files 0600, and a rename keeps them, so files written through
    a temporary name get the usual permissions back with this.
    """
    mask = os.umask(0)
    os.umask(mask)
    try:
        os.chmod(path, 0o666 & ~mask)
    except OSError:
        pass
    return Path(path)


def write_atomic(path: str | PathLike, data: bytes | str, error: type[FolkError] = OptionError) -> Path:
    """Write ``data`` (text is UTF-8 encoded) to ``path`` through a temporary file and ``os.replace``.

    Either the whole file appears, with the usual permissions, or none does and the old file is
    untouched. Raises ``error`` (a FolkError kind), naming the file, when the folder cannot be
    written or the disk is full.
    """
    path = Path(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    folder = path.parent if str(path.parent) else Path(".")
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=folder)
    except OSError as failure:
        raise error(f"cannot write here: {failure.strerror or failure}", file=str(path)) from None
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        default_permissions(temporary)
        os.replace(temporary, path)
    except BaseException as failure:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        if isinstance(failure, OSError):
            raise error(f"cannot write: {failure.strerror or failure}", file=str(path)) from None
        raise
    _sync_folder(folder)
    return path


def _sync_folder(folder: Path) -> None:
    """Make a rename durable; not every filesystem lets a folder be opened, so failures pass."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def prepare_folder(out: str | PathLike, error: type[FolkError] = OptionError) -> Path:
    """Make sure ``out`` is a folder this process can write into, creating it if needed.

    Raises ``error`` with one line when ``out`` is a file, cannot be created, or is not writable.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise error("--out is a file, not a folder", file=str(out))
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as failure:
        raise error(f"cannot create the folder: {failure.strerror or failure}", file=str(out)) from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise error("cannot write here: permission denied", file=str(out))
    return out
