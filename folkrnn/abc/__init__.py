"""ABC notation: reading tunebooks, the model tokens and their normalisation, and ABC -> Tune."""

from folkrnn.abc.lexer import lex
from folkrnn.abc.parser import parse
from folkrnn.abc.text import TuneText, decode_bytes, read_text, split_tunebook, split_tunes
from folkrnn.abc.tokens import (
    BOS,
    EOS,
    RHYTHMS,
    SPACE,
    TOKENIZER_VERSION,
    Normalisation,
    detokenize,
    map_rhythm,
    tokenize,
    tokenize_and_parse,
    tokenize_keyed,
)

__all__ = [
    "BOS", "EOS", "RHYTHMS", "SPACE", "TOKENIZER_VERSION", "Normalisation", "TuneText", "decode_bytes",
    "detokenize", "lex", "map_rhythm", "parse", "read_text", "split_tunebook", "split_tunes",
    "tokenize", "tokenize_and_parse", "tokenize_keyed",
]
