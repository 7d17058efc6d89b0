"""Writing files so that nothing is ever half-written: one atomic writer and one folder check.

Every file folkrnn writes (ABC, MIDI, SVG, MusicXML, WAV, tunebooks, summaries, models, corpus
caches) goes through :func:`write_atomic`: the bytes go to a temporary file in the same folder,
are flushed to disk, and the temporary file is renamed over the target. A reader, or a user
after a crash or a full disk, sees the old file or the new one, never a mixture.

Nothing is replaced without ``force``, even by two commands racing for one name: a writer that may
not overwrite gives its finished temporary file the final name with :func:`publish`, which creates
the name only if nothing (not even a dangling link) is there, in one step (a hard link, else
``O_EXCL``). :func:`staged` does the same for a writer that makes the file itself (a renderer),
and :func:`folder_lock` keeps a second batch (generate, perform) out of a folder being written.

Every input file a command reads (ABC, MIDI, standard input) goes through :func:`read_input`, which
refuses what is not a regular file and reads no more than the limit (:mod:`folkrnn.limits`).
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from os import PathLike
from pathlib import Path

from folkrnn.errors import FolkError, OptionError

__all__ = ["write_atomic", "prepare_folder", "default_permissions", "read_input", "exists", "publish",
           "staged", "folder_lock", "EXISTS"]

EXISTS = "the file exists; pass --force to overwrite it"

# what os.link says where the file system has no hard links (FAT, some network and FUSE mounts)
_NO_LINKS = {errno.EPERM, errno.EACCES, errno.EXDEV, errno.EMLINK, errno.ENOSYS,
             getattr(errno, "ENOTSUP", errno.EPERM), getattr(errno, "EOPNOTSUPP", errno.EPERM)}


def default_permissions(path: str | PathLike) -> Path:
    """Give ``path`` the permissions a plain ``open(path, "w")`` would (0666 less the umask).

    Temporary files are made 0600 (as ``tempfile.mkstemp`` makes them), and a rename keeps that, so
    files written through a temporary name get the usual permissions back with this.
    """
    mask = os.umask(0)
    os.umask(mask)
    try:
        os.chmod(path, 0o666 & ~mask)
    except OSError:
        pass
    return Path(path)


def write_atomic(path: str | PathLike, data: bytes | str | Iterable[bytes], error: type[FolkError] = OptionError, *,
                 overwrite: bool = True) -> Path:
    """Write ``data`` (text is UTF-8 encoded; an iterable of bytes is written piece by piece, as it
    comes) to ``path`` through a temporary file and ``os.replace``.

    Either the whole file appears, with the usual permissions, or none does and the old file is
    untouched. Raises ``error`` (a FolkError kind), naming the file, when the folder cannot be
    written or the disk is full, and, without ``overwrite``, when anything is at ``path`` already
    (checked again at the moment the name is given: see :func:`publish`).
    """
    path = Path(path)
    if not overwrite and exists(path):
        raise error(EXISTS, file=str(path))
    if isinstance(data, str):
        data = data.encode("utf-8")
    folder = path.parent if str(path.parent) else Path(".")
    temporary: Path | None = None
    handle = -1  # the temporary file's descriptor until a stream owns it
    try:
        # the name is chosen before the file is made, inside this try: Ctrl-C or SIGTERM at any
        # moment, even as the file appears, finds the name to remove (mkstemp would hand it back
        # only after making the file, and an interruption in between left it behind)
        while temporary is None:
            temporary = folder / f".{path.name}.{secrets.token_hex(4)}.part"
            try:
                handle = _create(temporary)
            except FileExistsError:  # another writer's: leave it, take another name
                temporary = None
            except OSError as failure:
                temporary = None
                raise error(f"cannot write here: {failure.strerror or failure}", file=str(path)) from None
        stream = os.fdopen(handle, "wb")
        handle = -1
        with stream:
            for piece in (data,) if isinstance(data, bytes | bytearray) else data:
                stream.write(piece)
            stream.flush()
            os.fsync(stream.fileno())
        default_permissions(temporary)
        publish(temporary, path, overwrite=overwrite, error=error)
    except BaseException as failure:
        if handle >= 0:
            try:
                os.close(handle)
            except OSError:
                pass
        if temporary is not None:
            _remove(temporary)
        if isinstance(failure, OSError):
            raise error(f"cannot write: {failure.strerror or failure}", file=str(path)) from None
        raise
    _sync_folder(folder)
    return path


def exists(path: str | PathLike) -> bool:
    """Whether anything is at ``path``: a file, a folder, or a link, even one that leads nowhere."""
    return os.path.lexists(path)


def publish(temporary: str | PathLike, path: str | PathLike, *, overwrite: bool = True,
            error: type[FolkError] = OptionError) -> Path:
    """Give the finished file ``temporary`` the name ``path``, in one step no other process can split.

    ``overwrite``: replace whatever is there (``os.replace``). Otherwise create ``path`` only if
    nothing is there, checked and done at once: a hard link, which fails when anything is at
    ``path`` (a dangling link too), then the temporary name goes; where the file system has no
    hard links, ``path`` is claimed with ``O_EXCL`` and the temporary renamed over it. Of two
    writers racing for one name one wins, and the other gets ``error`` ("the file exists"): nothing
    is lost. The temporary name is gone when this returns or raises.
    """
    temporary, path = Path(temporary), Path(path)
    try:
        if overwrite:
            os.replace(temporary, path)
            return path
        try:
            os.link(temporary, path)
        except FileExistsError:
            raise error(EXISTS, file=str(path)) from None
        except OSError as failure:
            if failure.errno not in _NO_LINKS:
                raise
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            except FileExistsError:
                raise error(EXISTS, file=str(path)) from None
            os.replace(temporary, path)
    except OSError as failure:
        raise error(f"cannot write: {failure.strerror or failure}", file=str(path)) from None
    finally:
        _remove(temporary)
    return path


@contextmanager
def staged(path: str | PathLike, *, overwrite: bool = True, error: type[FolkError] = OptionError) -> Iterator[Path]:
    """A hidden temporary name beside ``path``, with its suffix, to make the file under; when the
    block ends without error the file gets its name (:func:`publish`), else it is removed.

    Without ``overwrite`` an existing ``path`` is refused before the block runs, and again, at
    once, when the name is given.
    """
    path = Path(path)
    if not overwrite and exists(path):
        raise error(EXISTS, file=str(path))
    temporary = path.with_name(f".{path.stem}.{os.getpid()}-{secrets.token_hex(4)}.part{path.suffix}")
    try:
        yield temporary
        publish(temporary, path, overwrite=overwrite, error=error)
    finally:
        _remove(temporary)


@contextmanager
def folder_lock(folder: str | PathLike, error: type[FolkError] = OptionError) -> Iterator[None]:
    """Hold ``folder`` while a batch (generate, perform) writes into it: a second batch into the same
    folder is refused at once, with one line, instead of mixing its files with the first's.

    An advisory lock (``flock``) on the folder itself: no lock file is left behind, and a process
    that is killed lets go. Where the system or the file system has no such locks, nothing is held.
    """
    try:
        import fcntl
    except ImportError:  # not on a POSIX system
        yield
        return
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        yield
        return
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise error("another folkrnn command is writing into this folder; wait for it to finish or "
                        "choose another --out", file=str(folder)) from None
        except OSError:
            pass  # a file system without locks
        yield
    finally:
        os.close(descriptor)


def _create(path: Path) -> int:
    """Make ``path``, which must not exist, for writing, readable by its owner alone (as mkstemp
    does; :func:`default_permissions` widens it once written)."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)


def _remove(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


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


# --- reading ----------------------------------------------------------------------------------

_FIRST_BLOCK = 1 << 16  # what ``check`` sees before the rest of a file is read


def read_input(path: str | PathLike, *, limit: int, error: type[FolkError] = OptionError,
               what: str = "a file", check=None) -> bytes:
    """The bytes of one input file (``"-"``: standard input), at most ``limit`` of them.

    Refuses with one line naming the file, before reading it: a folder, and anything that is not
    a regular file (a FIFO would block forever, ``/dev/zero`` never ends), and a file larger than
    ``limit`` (:mod:`folkrnn.limits`); standard input and a file that grows while it is read are
    cut off at ``limit`` with the same error. ``check(first_block)``, when given, sees the first
    64 KiB before the rest is read (a test for binary data) and may raise.

    Raises ``error`` (a FolkError kind): no such file, not a regular file, too large, unreadable.
    """
    import stat
    import sys

    name = str(path)
    if name == "-":
        return _read_capped(sys.stdin.buffer, limit, error, "<stdin>", check)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise error("cannot be read: no such file", file=name) from None
    except OSError as failure:
        raise error(f"cannot be read: {failure.strerror or failure}", file=name) from None
    mode = info.st_mode
    if stat.S_ISDIR(mode):
        raise error(f"is a folder, not {what}", file=name)
    if not stat.S_ISREG(mode):
        kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
                else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file")
        raise error(f"is {kind}, not {what}: folkrnn reads regular files, or '-' for standard input",
                    file=name)
    if info.st_size > limit:
        raise error(f"is {_size(info.st_size)}; folkrnn reads files of at most {_size(limit)}", file=name)
    try:
        with open(path, "rb") as stream:
            return _read_capped(stream, limit, error, name, check)
    except OSError as failure:
        raise error(f"cannot be read: {failure.strerror or failure}", file=name) from None


def _read_capped(stream, limit: int, error: type[FolkError], name: str, check) -> bytes:
    first = stream.read(min(_FIRST_BLOCK, limit + 1))
    if check is not None:
        check(first)
    if len(first) > limit:
        raise error(f"is larger than {_size(limit)}, the most folkrnn reads", file=name)
    rest = stream.read(limit + 1 - len(first))  # b"" at once when the first block was all
    if len(first) + len(rest) > limit:
        raise error(f"is larger than {_size(limit)}, the most folkrnn reads", file=name)
    return first + rest


def _size(count: int) -> str:
    """Bytes for a person: ``16 MiB``, ``3.2 GiB``, ``512 bytes``."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= scale:
            return f"{count / scale:.3g} {unit}".replace(".0 ", " ")
    return f"{count} bytes"
