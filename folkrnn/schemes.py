"""The feature schemes a model may read beside its tokens, by the name its config gives them.

============  ========  ==========================================================================
scheme        encoding  module
============  ========  ==========================================================================
lookback-2    abc       :mod:`folkrnn.abc.phrases`: lookback-1's, and the bar a phrase (four bars)
                        ago in the part
lookback-1    abc       :mod:`folkrnn.abc.features`: beat, bar, part, and the bars one and two
                        bars and a part ago (Magenta's Lookback RNN, for ABC tokens)
pulse-1       midi      :mod:`folkrnn.pulse`: the phase of the beat, the beat of the bar, and the
                        controls (tempo, meter, key, density), as Performance RNN's conditioning
============  ========  ==========================================================================

Each module gives ``SCHEME``, ``FEATURE_NAMES``, ``feature_sizes(vocab_size)``,
``classes(tokens, settings)`` (the vocabulary read once; ``settings``, the encoding's) and
``with_features(ids, shared)`` (``(T, 1 + F)``: each id, then its features).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from folkrnn.errors import OptionError

__all__ = ["SCHEMES", "scheme", "default_scheme"]

SCHEMES: dict[str, tuple[str, str]] = {  # a new model of an encoding reads the first of its own
    "lookback-2": ("abc", "folkrnn.abc.phrases"),
    "lookback-1": ("abc", "folkrnn.abc.features"),
    "pulse-1": ("midi", "folkrnn.pulse"),
}


def scheme(name: str, encoding: str) -> ModuleType:
    """The module of feature scheme ``name`` for a model of ``encoding``. Raises OptionError for a
    scheme this folkrnn does not know, or one of another encoding."""
    if name not in SCHEMES:
        raise OptionError(f"unknown features {name!r} (this folkrnn knows {', '.join(SCHEMES)})")
    own, module = SCHEMES[name]
    if own != encoding:
        raise OptionError(f"features {name!r} are for {own.upper()} models, not {encoding.upper()}")
    return importlib.import_module(module)


def default_scheme(encoding: str) -> str:
    """The scheme a new model of ``encoding`` reads unless told otherwise."""
    return next(name for name, (own, _) in SCHEMES.items() if own == encoding)
