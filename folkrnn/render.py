"""Tune -> a file, the format chosen by the file's suffix; every file written atomically.

``.abc`` (``folkrnn.abc.writer``) and ``.mid``/``.midi`` (``folkrnn.midi``) are here now. Each
format is one entry of ``RENDERERS``: a function ``(tune, path, **options)`` whose heavy
back-end (music21, verovio, a synthesiser) is imported inside it, so that a new format (svg,
musicxml, wav) is one function and one entry, and writing ABC never imports them.
"""

from __future__ import annotations

import re
import unicodedata
from os import PathLike
from pathlib import Path
from typing import Callable

from folkrnn.errors import OptionError
from folkrnn.music import Tune

__all__ = ["RENDERERS", "render", "renderer_for", "slug", "formats"]


def _render_abc(tune: Tune, path: Path, **options) -> Path:
    from folkrnn.abc.writer import tune_to_abc
    from folkrnn.midi import write_atomic

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


# suffix -> function(tune, path, **options) -> path written
RENDERERS: dict[str, Callable[..., Path]] = {
    ".abc": _render_abc,
    ".mid": _render_midi,
    ".midi": _render_midi,
}

# formats other issues add; named here so the error can say they are coming, not unknown
_PLANNED = (".svg", ".musicxml", ".xml", ".wav")


def formats() -> list[str]:
    """The suffixes ``render`` can write now, without their dots: ``["abc", "mid", "midi"]``."""
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
        raise error.located(file=str(path))
    if path.exists() and not force:
        raise OptionError("the file exists; pass --force to overwrite it", file=str(path))
    return renderer(tune, path, **options)


def slug(text: str, fallback: str = "tune") -> str:
    """A file name from a title: ``"The Kesh"`` -> ``"the-kesh"``, accents folded, at most 60 characters."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    words = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return words[:60].rstrip("-") or fallback
