"""Names that moved to their owners, still found where they were: a module's ``__getattr__``.

When a name moves (to break an import cycle, or to live beside what it works on), old code that
imports it from its old module keeps working, with a DeprecationWarning that says where it went.
folkrnn itself always imports from the owner. A leaf: imports nothing of folkrnn until a moved name
is asked for.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Mapping

__all__ = ["moved_names"]


def moved_names(module: str, moves: Mapping[str, str]) -> Callable[[str], object]:
    """A module ``__getattr__`` for ``module``: ``moves`` maps each moved name to its new module."""

    def __getattr__(name: str) -> object:
        owner = moves.get(name)
        if owner is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        warnings.warn(f"{module}.{name} moved to {owner}.{name}", DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(owner), name)

    return __getattr__
