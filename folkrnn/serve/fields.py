"""A tune's options as a URL query string: checked field by field, and written back canonically.

The web composer's permalinks, downloads and tunebook all name a tune by one query string
(``rhythm=reel&seed=7``). :func:`parse_query` turns one into :class:`folkrnn.compose.ComposeOptions`
(checked by the same ``check`` as the command line, so the limits are the CLI's, with tighter caps
on what a stranger on the network may ask for), or raises :class:`FieldError` naming the field;
:func:`canonical_query` writes the options back in one order, so that one tune has one address.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from urllib.parse import urlencode

from folkrnn.compose import ComposeOptions
from folkrnn.errors import FolkError
from folkrnn.tables import MAX_SEED

__all__ = ["FieldError", "FIELDS", "LIMITS", "parse_query", "canonical_query", "field_of"]

# what a request may ask for, at most (the CLI allows more: a stranger's request is bounded)
LIMITS = {
    "title": 100,  # characters
    "prime": 400,  # characters
    "temperature": 5.0,
    "beam_width": 8,
    "query": 2000,  # characters of a whole query string
}

# the fields, in their canonical order, and how each is read
FIELDS: dict[str, str] = {
    "title": "text", "rhythm": "word", "meter": "word", "mode": "word", "key": "word", "form": "word",
    "part_bars": "int", "prime": "text", "seed": "int", "strategy": "word", "temperature": "float",
    "top_k": "int", "top_p": "float", "beam_width": "int", "tempo": "float", "instrument": "word",
}
_WORD = re.compile(r"[A-Za-z0-9/#_+-]{1,24}")
_FLAG = re.compile(r"--([a-z][a-z-]*)")


class FieldError(FolkError):
    """A request's field that cannot be taken: ``field`` names it, ``status`` is 400 (malformed) or
    422 (well formed, out of range)."""

    def __init__(self, field: str, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.field, self.message, self.status = field, message, status

    def to_json(self) -> dict:
        return {"error": {"field": self.field, "message": self.message}}


def _value(name: str, text: str):
    kind = FIELDS[name]
    if kind == "text":
        if len(text) > LIMITS[name]:
            raise FieldError(name, f"{name} is {len(text)} characters long; at most {LIMITS[name]}")
        if any(ord(c) < 32 and c not in "\n\t" for c in text):
            raise FieldError(name, f"{name} holds control characters", 400)
        return text
    if kind == "word":
        if not _WORD.fullmatch(text):
            raise FieldError(name, f"{name} {text[:40]!r} is not one of the values it takes", 400)
        return text
    if kind == "int":
        if not re.fullmatch(r"[0-9]{1,19}", text):
            raise FieldError(name, f"{name} must be a whole number of at most 19 digits, not {text[:40]!r}", 400)
        return int(text)
    try:
        value = float(text)
    except ValueError:
        raise FieldError(name, f"{name} must be a number, not {text[:40]!r}", 400) from None
    if not math.isfinite(value):
        raise FieldError(name, f"{name} must be a finite number, not {text[:40]!r}", 400)
    return value


def parse_query(params: Mapping[str, str] | list[tuple[str, str]], *, need_seed: bool = False,
                vocabulary_size: int | None = None) -> ComposeOptions:
    """The options a query string asks for, checked (:meth:`ComposeOptions.check`).

    Empty fields count as absent. Raises :class:`FieldError` for an unknown field, one given
    twice, a malformed value or one out of range; ``need_seed``: a seed must be given (a download
    names one tune)."""
    pairs = list(params.multi_items() if hasattr(params, "multi_items") else
                 params.items() if isinstance(params, Mapping) else params)
    values: dict = {}
    for name, text in pairs:
        if name not in FIELDS:
            raise FieldError(name[:40], f"unknown field {name[:40]!r}; the fields are {', '.join(FIELDS)}", 400)
        if name in values:
            raise FieldError(name, f"{name} is given twice", 400)
        text = text.strip() if FIELDS[name] != "text" else text
        if text == "":
            continue
        values[name] = _value(name, text)
    if need_seed and "seed" not in values:
        raise FieldError("seed", "a seed is needed to name one tune", 400)
    if values.get("seed", 0) > MAX_SEED:
        raise FieldError("seed", f"seed must be between 0 and {MAX_SEED}")
    if values.get("temperature", 1.0) > LIMITS["temperature"]:
        raise FieldError("temperature", f"temperature must be at most {LIMITS['temperature']:g} here")
    if values.get("beam_width", 1) > LIMITS["beam_width"]:
        raise FieldError("beam_width", f"beam_width must be at most {LIMITS['beam_width']} here")
    if vocabulary_size is not None and values.get("top_k", 0) > vocabulary_size:
        raise FieldError("top_k", f"top_k must be at most the vocabulary's size, {vocabulary_size}")
    options = ComposeOptions(formats=["abc"], **values)
    try:
        options.check()
    except FolkError as error:
        raise FieldError(field_of(str(error), values), str(error)) from None
    return options


def field_of(message: str, values: dict) -> str:
    """The field an option error names (``--top-p must ...`` -> ``top_p``)."""
    for flag in _FLAG.findall(message):
        name = flag.replace("-", "_")
        if name in FIELDS:
            return name
    return next(iter(values), "query")


def canonical_query(options: ComposeOptions) -> str:
    """The options as a query string: the fields set, in :data:`FIELDS` order, defaults left out
    (the same tune, the same address)."""
    defaults = ComposeOptions()
    pairs = []
    for name in FIELDS:
        value = getattr(options, name)
        if value is None or (name != "seed" and value == getattr(defaults, name)):
            continue
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        pairs.append((name, str(value)))
    return urlencode(pairs)
