"""ABC text <-> model tokens, with the normalisation for modelling (folk-rnn v2 style, extended).

A tune becomes ``<s>``, its title's characters, ``R:`` rhythm, ``M:`` meter, ``K:`` mode, the body
tokens, ``</s>``. Normalisation transposes the tonic to C keeping the mode, rescales lengths to
L:1/8, strips what a model need not learn (chord symbols, annotations, decorations, slurs,
fingerings, lyrics), makes bar tokens canonical and maps R: to a small set of rhythms. Each step can
be turned off (:class:`Normalisation`); the settings travel with any model trained on the tokens.

``detokenize(tokenize(x))`` is the normalised ABC text of x, and tokenising that text again gives
the same tokens.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from fractions import Fraction
from functools import lru_cache

from folkrnn.abc.layout import Measure, phrase_breaks
from folkrnn.abc.lexer import (
    ANNOT,
    BAR,
    BROKEN,
    CHORD_END,
    CHORD_START,
    DECO,
    ENDING,
    FIELD,
    GRACE_END,
    GRACE_START,
    MREST,
    NOTE,
    REST,
    SLUR,
    TIE,
    TUPLET,
    Lexed,
    cache_by_record,
    cache_for,
    default_unit,
    lex,
    parse_key_cached,
    parse_meter_cached,
    parse_unit_cached,
    shared_record,
)
from folkrnn.abc.parser import default_tuplet_q, tune_from_lexed
from folkrnn.abc.writer import format_length
from folkrnn.errors import AbcError, FolkError
from folkrnn.music import (
    LETTER_SEMITONES,
    LETTERS,
    Key,
    Tune,
    expand_parts,
    key_signature,
    parse_meter,
    signature_items,
)
from folkrnn.tables import DANCES, RHYTHMS

__all__ = ["Normalisation", "NOTE_TOKEN", "body_of", "named_dance", "title_rhythm", "tokenize", "tokenize_and_parse",
           "tokenize_keyed", "tokenize_lexed", "detokenize",
           "map_rhythm", "RHYTHMS", "TOKENIZER_VERSION", "BOS", "EOS", "SPACE"]

TOKENIZER_VERSION = 1
BOS, EOS = "<s>", "</s>"
SPACE = "\u2581"  # a space inside a title, as one token ("▁"), so tokens never contain spaces

_RHYTHM_WORDS = [  # checked in order: the first word found in the lower-cased R: field wins
    ("slipjig", ("slip jig", "slipjig", "slip-jig", "hop jig", "hopjig")),
    ("slide", ("slide",)),
    ("jig", ("jig",)),
    ("reel", ("reel",)),
    ("hornpipe", ("hornpipe", "clog")),
    ("strathspey", ("strathspey", "fling")),
    ("polka", ("polka",)),
    ("waltz", ("waltz", "walzer", "valse")),
    ("mazurka", ("mazurka", "mazur")),
    ("barndance", ("barndance", "barn dance", "schottische", "german")),
    ("march", ("march", "marsch", "quickstep", "quick step")),
    ("air", ("air", "lament", "slow")),
    ("song", ("song", "lied", "lieder", "ballad", "romanze", "xiaodiao", "shange", "carol",
              "hymn", "chanson", "canzone")),
]
RHYTHM_NAMES = {"slipjig": "slip jig"}


@lru_cache(maxsize=4096)
def map_rhythm(text: str) -> str:
    """A free-text R: field -> one of :data:`RHYTHMS` ("Double Jig" -> "jig", "" -> "other")."""
    lowered = text.lower()
    for rhythm, words in _RHYTHM_WORDS:
        if any(word in lowered for word in words):
            return rhythm
    return "other"


_TITLE_DANCES = frozenset(name for name, dance in DANCES.items() if dance.meters)  # dances, not air or song


@lru_cache(maxsize=4096)
def title_rhythm(title: str) -> str:
    """The dance a title ends with ("The Silver Spear Reel", "Kitty's Wedding -- Hornpipe.",
    "Drops of Brandy (Slip Jig)") as one of :data:`RHYTHMS`, or "other". Only the last one or two
    words count, and only dances (a title ending "Air" or "Song" says nothing of its rhythm)."""
    words = re.findall(r"[a-z]+", title.lower())[-2:]
    for text in (" ".join(words), words[-1] if words else ""):
        rhythm = map_rhythm(text) if text else "other"
        if rhythm in _TITLE_DANCES and (text.endswith(("reel", "jig", "pipe", "spey", "polka", "waltz", "mazurka",
                                                       "dance", "schottische", "march", "step", "slide", "fling",
                                                       "clog"))):
            return rhythm
    return "other"


@lru_cache(maxsize=4096)
def named_dance(title: str) -> str:
    """The dance a title names: the one its last words name (:func:`title_rhythm`), else the first
    one named in it ("The Reel of Tulloch", "The Jig of Slurs", "Quick March 10th. Regt"), by the same
    words; "other" when it names none. In the default corpus's training split, 508 of the 527 titles
    that end with a dance are of that dance, and 63 of the 66 that name one only before their end
    (Aird's "Quick Step 25th Regt", "Reel of Fife": most have no R:) are in its meters. Composing reads
    titles so (a title that names a dance gets it, one the model writes as one given); the
    tokenizer's :func:`title_rhythm`, which gives a tune with no R: its rhythm, reads only the end."""
    last = title_rhythm(title)
    if last != "other":
        return last
    words = re.findall(r"[a-z]+", title.lower())
    return next((rhythm for k in range(1, len(words))
                 if (rhythm := title_rhythm(" ".join(words[:k]))) != "other"), "other")


@dataclass(frozen=True)
class Normalisation:
    """Which normalisation steps :func:`tokenize` applies. Saved with every model as a dict."""

    transpose: bool = True  # move the tonic to C, keeping the mode
    unit_length: bool = True  # rescale note lengths to L:1/8
    strip: bool = True  # drop chord symbols, annotations, decorations, slurs, fingerings, lyrics
    canonical_bars: bool = True  # || |] [| -> ||, :: -> :| |:, endings as their own token
    map_rhythm: bool = True  # R: to the small rhythm set, else the R: text itself
    detect_mode: bool = True  # a K: naming only a tonic takes its mode from the final note
    title: bool = True  # put the title's characters in the sequence
    clean_titles: bool = True  # titles as English titles: no "-- Reel", "Man, The" or "No. 3", caps cased
    rhythm_from_title: bool = True  # a tune with no R: takes the dance its (first) title ends with
    # a reel or hornpipe written in 2/4 in sixteenths (Ryan's halved notation) is written in its
    # dance's meter, every note twice as long (see _halved_notation)
    whole_bars: bool = True

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Normalisation:
        known = {name: bool(value) for name, value in data.items() if name in cls.__dataclass_fields__}
        known.setdefault("clean_titles", False)  # saved before titles were cleaned: raw titles
        known.setdefault("rhythm_from_title", False)
        known.setdefault("whole_bars", False)  # saved before halved notation was undone
        return cls(**known)


_DEFAULT_SETTINGS = Normalisation()


# ---------------------------------------------------------------------------------------------
# Transposition on spellings: a note is a diatonic step number (octave * 7 + letter index) and
# an accidental; moving the tonic to C shifts every step by `steps` and every pitch by `semitones`.

_LETTER_INDEX = {letter: i for i, letter in enumerate(LETTERS)}
# The degree (semitones above the tonic) the final note sits on -> the mode it implies.
_FINAL_DEGREE_MODE = {0: "maj", 9: "min", 2: "dor", 7: "mix"}


def _step_pitch(step: int) -> int:
    """Natural pitch of a diatonic step (0 = middle C)."""
    return 60 + 12 * (step // 7) + LETTER_SEMITONES[LETTERS[step % 7]]


def shift_to_c(tonic: str) -> tuple[int, int]:
    """(diatonic steps, semitones) that move ``tonic`` to C by the smallest interval."""
    pitch_class = (LETTER_SEMITONES[tonic[0]] + tonic.count("#") - tonic.count("b")) % 12
    semitones = (-pitch_class) % 12
    if semitones > 6:
        semitones -= 12
    steps = (-_LETTER_INDEX[tonic[0]]) % 7
    if semitones < 0 and steps > 0:
        steps -= 7
    if semitones > 0 and steps == 0 and tonic[0] != "C":
        steps = 7
    return steps, semitones


def _accidental_text(alter: int) -> str:
    return {-2: "__", -1: "_", 0: "=", 1: "^", 2: "^^"}[alter]


def _note_text(step: int) -> str:
    """Letter and octave marks of a diatonic step: 0 -> C, 7 -> c, 14 -> c', -7 -> C,."""
    octave, index = divmod(step, 7)
    letter = LETTERS[index]
    if octave >= 1:
        return letter.lower() + "'" * (octave - 1)
    return letter + "," * (-octave)


def _ascii_title(text: str) -> str:
    if text.isascii() and text.isprintable():
        return " ".join(text.split())  # what the general way gives such a title, sooner
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    folded = re.sub(r"\s+", " ", folded).strip()
    return "".join(ch for ch in folded if 32 <= ord(ch) < 127)


# ---------------------------------------------------------------------------------------------
# Title cleaning (Normalisation.clean_titles): the title a tune's book gives, as an English title.
# Each rule is general (no list of titles); the result of cleaning cleans to itself, so that
# tokenize(detokenize(tokens)) gives the same tokens.

_ARTICLES = ("the", "a", "an", "le", "la", "les", "l'", "el", "il", "lo", "der", "die", "das",
             "de", "het", "na", "an t-")
# A trailing ", The" (O'Neill's "Absent Minded Man, The"), perhaps with stray dots or a Ryan's
# "-- JIG" between (Ryan's "NIGHT OF FUN -- JIG., THE")
_INVERSION = re.compile(r"^(.+?)(?:[\s.,;]*[,.;]\s*(" + "|".join(re.escape(a) for a in _ARTICLES)
                        + r")|\s+(the))[\s.]*$", re.IGNORECASE)  # "Hills of Ireland. The", "X The"
_DANCE = (r"(?:highland\s+|double\s+|single\s+|set\s+)?(?:slip\s*-?\s*jig|hop\s+jig|jig|reel|"
          r"hornpipe|strathspey|strathsy|fling|clog|polka|waltz|mazurka|march|quick\s*step|"
          r"schottische|barn\s*dance|slide|set\s+dance)s?")
# Ryan's " -- Reel", " -- HIGHLAND FLING", "- JIG", with whatever follows the dance ("No.2.", "(or ...)")
_DANCE_SUFFIX = re.compile(r"(?:\s*-{1,2}\s+|\s+-{1,2}\s*)(" + _DANCE + r")\b.*$", re.IGNORECASE)
_DASHES = re.compile(r"[\s.,;]*(?:\s-{2,}\s*|\s*-{2,}\s)")  # other "X -- Y": "X, Y"
_POSSESSIVE_END = re.compile(r"(?:'s|s')$", re.IGNORECASE)
_ESCAPE = re.compile(r"\\[`'^\"~,.=:]")  # ABC accent escapes (\'e is e acute): keep the letter
_BRACKETS = re.compile(r"\([^()]*\)|\[[^\[\]]*\]|\{[^{}]*\}")  # bracketed notes
_NUMBERING = re.compile(  # No. 3, #12, (1st Setting), 2nd Setting., a page "S. 414f", "p. 12"
    r"\b(?:No|Nr|Nro|Num)\.?\s*\d+[a-z]?\b\.?|#\s*\d+"
    r"|\b(?:\d+(?:st|nd|rd|th|d)|first|second|third|fourth|another)\.?\s+(?:setting|set|version)\b\.?"
    r"|(?:,\s*|\s+)[SsPp]p?\.\s*\d+[a-z]*\.?\s*$", re.IGNORECASE)
_LEADING_NUMBER = re.compile(r"^\s*(?:\d+[.)]\s*|T:\s*)+")  # "1. ...", "12) ...", a doubled "T:"
_TRAILING_NUMBER = re.compile(r"(?:\s+|,\s*)\d{1,2}$")  # "Chevy Chase 3": a variant's number
_STRAY_BRACKETS = re.compile(r"[()\[\]{}]")
_INNER_COLON = re.compile(r"(?<=[A-Za-z]):(?=[A-Za-z])")  # Ryan's "Wat:er", "Rat:tle"
_SPACES = re.compile(r"\s+")
_EDGES = " .,;:-/"  # stripped from both ends (not an apostrophe: "Belles of Edinboro'")
_ET_CETERA = re.compile(r"\s*&c\b\.?")
_SPACE_BEFORE_MARK = re.compile(r"\s+([,;.!?])")
_WORD = re.compile(r"[A-Za-z][A-Za-z']*|[^A-Za-z]+")
_SMALL_WORDS = frozenset((  # lower-case but first and last: English, and Gaelic, French, Scots particles
    "a", "an", "and", "as", "at", "but", "by", "for", "from", "in", "into", "nor", "of", "on", "or",
    "the", "to", "upon", "with", "o'", "i'", "a'", "na", "nan", "nam", "de", "du", "des", "la", "le",
    "les", "von", "van"))
_ROMAN = re.compile(r"[IVX]+")
_PREFIXED = re.compile(r"^(Mc|[A-Z]')([a-z])(?=[a-z]{2})")  # McDonald, O'Neill, A'Willie (not O'er)
_MC_CAPS = re.compile(r"Ma?c[A-Z']{2,}")  # McLEAN'S: capitals after a Mc


def _title_case_word(word: str, edge: bool) -> str:
    """One word (letters and apostrophes): an all-capitals word of two letters or more becomes
    Capitalised (I'M -> I'm, O'NEILL -> O'Neill, MCDONALD -> McDonald), and a small word
    (of, the, and, a, ...) is lower-case unless it is at an edge (first, last, after . ! ? ;)."""
    lower = word.lower()
    if lower in _SMALL_WORDS or lower.rstrip("'") in _SMALL_WORDS and word.endswith("'"):
        return word[0].upper() + lower[1:] if edge else lower
    letters = word.replace("'", "")
    if (len(letters) >= 2 and letters.isupper() and not _ROMAN.fullmatch(letters)
            or _MC_CAPS.fullmatch(word)):
        word = word[0] + lower[1:]
        word = _PREFIXED.sub(lambda m: m.group(1) + m.group(2).upper(), word)
    return word


@lru_cache(maxsize=16384)
def clean_title(text: str) -> str:
    """A T: field -> the title as an English title (see the rules above); idempotent."""
    text = _ESCAPE.sub("", text).replace("\\", "").replace('"', "")
    text = _ET_CETERA.sub("", text).replace("&", " and ").replace("=", "-")
    text = _LEADING_NUMBER.sub("", text)
    text = _INNER_COLON.sub("", text).replace(":", " ")  # and Aird's "Col: Wemys", "Fancy:"
    article = ""
    previous = None
    while previous != text:  # notes inside notes, suffix after suffix
        previous = text
        inverted = None if article else _INVERSION.match(text)
        if inverted:
            text, article = inverted.group(1), inverted.group(2) or inverted.group(3)
        text = _STRAY_BRACKETS.sub(" ", _BRACKETS.sub(" ", text))
        dance = _DANCE_SUFFIX.search(text)
        if dance:
            head = text[: dance.start()].rstrip(" .,;")
            text = f"{head} {dance.group(1)}" if _POSSESSIVE_END.search(head) else head
        text = _DASHES.sub(", ", text)
        text = _NUMBERING.sub(" ", text)
        text = _SPACES.sub(" ", text).strip(_EDGES)
        text = _TRAILING_NUMBER.sub("", text)
        text = _SPACE_BEFORE_MARK.sub(r"\1", text).strip(_EDGES).rstrip()
    if article and text:
        article = article[0].upper() + article[1:].lower()
        text = (article if article.endswith("'") else article + " ") + text
    text = _SPACES.sub(" ", text).strip(_EDGES)
    pieces = _WORD.findall(text)
    last = max((i for i, piece in enumerate(pieces) if piece[0].isalpha() or piece.strip(" .,;:!?-/'")),
               default=-1)  # the last word (a number too: "Spirit of 1880")
    edge = True
    for i, piece in enumerate(pieces):
        if piece[0].isalpha():
            pieces[i] = _title_case_word(piece, edge or i == last)
            edge = False
        elif any(mark in piece for mark in ".!?;"):
            edge = True
    return "".join(pieces)


def _detect_key(lexed: Lexed, tune: Tune) -> Key:
    """The tune's key, its mode taken from the final note when K: named only a tonic.

    ``K:G`` ending on E is E minor (aeolian), on A it is A dorian, on D D mixolydian; a final
    note on any other degree (or a modified signature) keeps the written major.
    """
    key = lexed.header.key
    if lexed.header.mode_given or key.mode != "maj":
        return key
    final = next((note.pitch % 12 for note in reversed(tune.notes) if not note.grace), None)
    if final is None:
        return key
    standard = signature_items(key.tonic, key.mode)
    if key.signature != standard:
        return key
    degree = (final - key.tonic_pitch_class) % 12
    mode = _FINAL_DEGREE_MODE.get(degree)
    if mode is None or mode == "maj":
        return key
    # name the new tonic by spelling the final note within the signature
    signature = key.accidentals
    for letter in LETTERS:
        if (LETTER_SEMITONES[letter] + signature[letter]) % 12 == final:
            alter = signature[letter]
            return Key(letter + ("#" * alter if alter > 0 else "b" * -alter), mode, key.signature)
    return key


# (steps, semitones, tonic, mode, signature) -> what Transposer.set_key works out for that key
_ENTERED_KEYS: dict[tuple, tuple[str, str, tuple]] = {}


class Transposer:
    """Rewrites spellings for a fixed (steps, semitones) shift, under a key that may change."""

    def __init__(self, steps: int, semitones: int) -> None:
        self.steps, self.semitones = steps, semitones
        self.needed: dict[str, int] = {}  # target letter -> accidental to write when none is carried
        self._cache: dict[tuple, str] = {}  # (accidental, step, carried) -> note text
        self.state: tuple = (steps, semitones, ())  # what the spellings depend on

    def set_key(self, key: Key) -> tuple[str, str]:
        """Enter ``key``: returns the transposed key's (tonic, mode), remembering which letters need
        an explicit accidental because the transposed signature is not the standard one."""
        entered = (self.steps, self.semitones, key.tonic, key.mode, key.signature)
        known = _ENTERED_KEYS.get(entered)
        if known is None:
            known = self._enter(key)
            if len(_ENTERED_KEYS) >= 4096:
                _ENTERED_KEYS.clear()
            _ENTERED_KEYS[entered] = known
        tonic, mode, needed = known
        self.needed = dict(needed)
        self._cache = {}
        self.state = (self.steps, self.semitones, needed)
        return tonic, mode

    def _enter(self, key: Key) -> tuple[str, str, tuple]:
        """set_key's work: (tonic, mode, the needed accidentals as sorted pairs)."""
        target_signature: dict[str, int] = {}
        for letter, alter in key.signature:
            step = _LETTER_INDEX[letter]
            new_step = step + self.steps
            new_alter = alter + self.semitones - (_step_pitch(new_step) - _step_pitch(step))
            target_signature[LETTERS[new_step % 7]] = new_alter
        tonic_alter = key.tonic.count("#") - key.tonic.count("b")
        step = _LETTER_INDEX[key.tonic[0]]
        new_step = step + self.steps
        new_alter = tonic_alter + self.semitones - (_step_pitch(new_step) - _step_pitch(step))
        if abs(new_alter) > 1:
            raise ValueError(f"the key {key.tonic} cannot be moved to C by this interval")
        tonic = LETTERS[new_step % 7] + ("#" if new_alter > 0 else "b" if new_alter < 0 else "")
        standard = key_signature(tonic, key.mode)
        needed = {letter: alter for letter, alter in target_signature.items() if standard[letter] != alter}
        return tonic, key.mode, tuple(sorted(needed.items()))

    def note(self, acc: int | None, step: int, carried: bool) -> str:
        cache_key = (acc, step, carried)
        text = self._cache.get(cache_key)
        if text is None:
            text = self._cache[cache_key] = self._note(acc, step, carried)
        return text

    def _note(self, acc: int | None, step: int, carried: bool) -> str:
        new_step = step + self.steps
        letter = LETTERS[new_step % 7]
        if acc is not None:
            new_acc = acc + self.semitones - (_step_pitch(new_step) - _step_pitch(step))
            if not -2 <= new_acc <= 2:
                raise ValueError("transposing this note needs a triple accidental")
            return _accidental_text(new_acc) + _note_text(new_step)
        if not carried and letter in self.needed:
            return _accidental_text(self.needed[letter]) + _note_text(new_step)
        return _note_text(new_step)


def tokenize(tune_text: str, settings: Normalisation | None = None) -> list[str]:
    """One tune's ABC text -> its normalised model tokens, ``<s>`` to ``</s>``. Raises AbcError."""
    return tokenize_and_parse(tune_text, settings)[0]


def tokenize_and_parse(tune_text: str,
                       settings: Normalisation | None = None) -> tuple[list[str], Tune]:
    """One reading of a tune for both its uses: (its model tokens, the Tune as written).

    The same as ``(tokenize(text), parse(text))`` at the cost of one: the tokenizer parses every
    tune anyway, to check it and to find its final note. Raises AbcError.
    """
    tokens, tune, _ = _tokenize_text(tune_text, settings or _DEFAULT_SETTINGS, keyed=False)
    return tokens, tune


def tokenize_keyed(tune_text: str, settings: Normalisation | None = None) -> tuple[list[str], list[str] | None]:
    """One tune's tokens, and the tokens that decide its duplicates and its split in a corpus where
    those are not the same: a tune :attr:`Normalisation.whole_bars` rewrote from halved notation is
    keyed by its tokens as written, so that it keeps the split it had before (and that a MIDI corpus
    played from the same ABC gives it); None for every other tune. Raises AbcError."""
    tokens, _, key = _tokenize_text(tune_text, settings or _DEFAULT_SETTINGS, keyed=True)
    return tokens, key


def _tokenize_text(tune_text: str, settings: Normalisation,
                   keyed: bool) -> tuple[list[str], Tune, list[str] | None]:
    """Lex and tokenise one tune: its tokens, its Tune as written and, with ``keyed``, its tokens as
    written where whole_bars rewrote it (its M: is not the header's), else None. Raises AbcError."""
    try:
        lexed = lex(tune_text)
        tokens, tune = tokenize_lexed(lexed, settings)
        key = None
        if keyed and settings.whole_bars and f"M:{lexed.header.meter}" not in tokens:
            key = tokenize_lexed(lexed, replace(settings, whole_bars=False))[0]
        return tokens, tune, key
    except FolkError:
        raise
    except (ValueError, ZeroDivisionError, OverflowError, KeyError) as error:
        raise AbcError(f"cannot normalise this tune: {error}") from None


def tokenize_lexed(lexed: Lexed, settings: Normalisation) -> tuple[list[str], Tune]:
    """Tokenise an already lexed tune; also returns the Tune parsed on the way."""
    header = lexed.header
    meter = header.meter
    unit = header.unit if header.unit is not None else default_unit(meter)
    # parsing checks the tune as the parser would (a tune we tokenise is a tune we can play),
    # and gives its final note for the mode
    tune = tune_from_lexed(lexed)
    key = _detect_key(lexed, tune) if settings.detect_mode else header.key
    tokens = [BOS]
    if settings.title:
        titles = [value for name, value in header.fields if name == "T"]
        title = _ascii_title(titles[0]) if titles else ""  # the first T: (later ones: other names)
        if settings.clean_titles:
            title = clean_title(title)
        tokens.extend(title.replace(" ", SPACE))
    rhythm_text = next((value for name, value in header.fields if name == "R"), "")
    if settings.map_rhythm:
        rhythm = map_rhythm(rhythm_text)
        if not rhythm_text.strip() and settings.rhythm_from_title:  # no R: at all (R:other stays other)
            titles = [value for name, value in header.fields if name == "T"]
            rhythm = title_rhythm(titles[0]) if titles else "other"
    else:
        rhythm = re.sub(r"\s+", "_", rhythm_text.strip().lower()) or "other"
    tokens.append(f"R:{rhythm}")
    if settings.whole_bars and settings.unit_length and _halved_notation(lexed, rhythm, unit):
        meter = parse_meter_cached(DANCES[rhythm].meters[0])
        unit = unit * 2
    tokens.append(f"M:{meter}")
    if not settings.unit_length:
        tokens.append(f"L:{unit.numerator}/{unit.denominator}")
    transposer = None
    if settings.transpose:
        steps, semitones = shift_to_c(key.tonic)
        transposer = Transposer(steps, semitones)
        tonic, mode = transposer.set_key(key)
        tokens.append(f"K:{tonic}{mode}")
    else:
        tokens.append(f"K:{key.tonic}{key.mode}")
    items, offsets = lexed.records, lexed.offsets
    order = _part_order_of_items(header.fields, items, offsets)
    if order is not None:
        items, offsets = order
    _body_tokens(lexed, items, offsets, settings, transposer, unit, meter, tokens)
    tokens.append(EOS)
    return tokens, tune


def _halved_notation(lexed: Lexed, rhythm: str, unit: Fraction) -> bool:
    """Whether a tune is written in halved notation: a dance whose meters are a whole 4/4 or 2/2 bar
    (a reel, a hornpipe, a strathspey) written in 2/4 with the sixteenth its commonest note, as
    Ryan's Mammoth writes 37% of its reels and O'Neill's and Ryan's half their hornpipes. Each 2/4
    bar of sixteenths is then one bar of the dance in eighths, as players read it. A tune that
    changes its meter or unit length on the way is left as written."""
    dance, meter = DANCES.get(rhythm), lexed.header.meter
    if dance is None or not dance.meters or "2/4" in dance.meters or str(meter) != "2/4" \
            or parse_meter_cached(dance.meters[0]).bar_length != 2 * meter.bar_length:
        return False
    lengths: dict[Fraction, int] = {}
    for record in lexed.records:
        kind = record[0]
        if kind is NOTE:
            length = Fraction(record[5] or 1, record[6]) * unit
            lengths[length] = lengths.get(length, 0) + 1
        elif kind is FIELD and record[2] in ("M", "L"):
            return False
    return bool(lengths) and max(lengths, key=lengths.__getitem__) == Fraction(1, 16)


def _part_order_of_items(fields: list[tuple[str, str]], items: list[tuple],
                         offsets: list[int]) -> tuple[list[tuple], list[int]] | None:
    """The body records and their offsets in the order a header P: field plays the parts, or None."""
    header = [value for name, value in fields if name == "P"]
    if not header or not any(item[0] is FIELD and item[2] == "P" for item in items):
        return None
    order = expand_parts(header[0])
    chunks: dict[str, list[tuple[tuple, int]]] = {}
    current = ""
    chunks[current] = []
    for item, offset in zip(items, offsets):
        if item[0] is FIELD and item[2] == "P":
            current = item[3].strip()[:1]
            chunks.setdefault(current, [])
            continue
        chunks[current].append((item, offset))
    out = list(chunks[""])
    for label in order:
        if label in chunks and label != "":
            part = chunks[label]
            if out and part and out[-1][0][0] is not BAR and part[0][0][0] is not BAR:
                out.append((shared_record((BAR, part[0][0][1], "|", (), "|")), part[0][1]))
            out.extend(part)
    return [item for item, _ in out], [offset for _, offset in out]


# A note's tokens when no accidental is carried in its bar, under a spelling state (transposition
# and key), a length scale and the accidental rule: record -> (tokens, the slot an accidental it
# carries through the bar takes, or None). Keyed by that state.
_NOTE_TOKENS: dict[tuple, dict] = cache_by_record()
# Length tokens at a scale: (n, d) as written -> the length token ("" for one unit).
# (emptied with the records its lengths come from)
_LENGTH_TOKENS: dict[tuple[int, int], dict[tuple[int, int], str]] = cache_by_record()
_ONE = Fraction(1)


# A bar line's tokens, with canonical bars and without: record -> tokens
_BAR_TOKENS = {True: cache_by_record(), False: cache_by_record()}


def _bar_tokens(item: tuple, canonical: bool) -> tuple[str, ...]:
    _, _, bar, ending, raw = item
    if not canonical:
        return (raw + ("[" + ",".join(map(str, ending)) if ending else ""),)
    tokens = [":|", "|:"] if bar == "::" else ["||" if bar in ("[|", "|]") else bar]
    if ending:
        tokens.append("[" + ",".join(map(str, ending)))
    return tuple(tokens)


def _body_tokens(lexed: Lexed, items: list[tuple], offsets: list[int], settings: Normalisation,
                 transposer: Transposer | None, unit: Fraction, meter, tokens: list[str]) -> None:
    scale = unit * 8 if settings.unit_length else _ONE
    scale_key = (scale.numerator, scale.denominator)  # (quicker to hash than the Fraction)
    scaled = scale_key != (1, 1)
    lengths = cache_for(_LENGTH_TOKENS, scale_key)  # (n, d) as written -> its length token at this scale
    # the letters (or letter and octave) with an accidental written in this bar
    carried: set = set()
    by_octave = lexed.header.propagate == "octave"
    note_tokens = cache_for(_NOTE_TOKENS, (transposer and transposer.state, scale_key, by_octave))
    canonical = settings.canonical_bars
    bar_tokens = _BAR_TOKENS[canonical]
    strip = settings.strip
    in_chord = False
    in_grace = False
    append = tokens.append
    extend = tokens.extend

    def error(message: str, item: tuple) -> AbcError:
        index = next(i for i, other in enumerate(items) if other is item)
        return lexed.error(message, offsets[index] + item[1])

    for item in items:
        kind = item[0]
        if kind is NOTE:
            if not carried:
                known = note_tokens.get(item)
                if known is not None:
                    extend(known[0])
                    if known[1] is not None and not in_grace:
                        carried.add(known[1])
                    continue
            _, _, acc, letter, octave, n, d = item
            upper = letter.upper()
            octave_number = octave + (1 if letter.islower() else 0)
            slot = (upper, octave_number) if by_octave else upper
            nothing_carried = not carried
            was_carried = slot in carried
            if acc is not None and not in_grace:
                carried.add(slot)
            if transposer is not None:
                text = transposer.note(acc, octave_number * 7 + _LETTER_INDEX[upper], was_carried)
            else:
                text = ((_accidental_text(acc) if acc is not None else "")
                        + _note_text(octave_number * 7 + _LETTER_INDEX[upper]))
            length = ""
            if n != 1 or d != 1 or scaled:
                length = lengths.get((n, d))
                if length is None:
                    length = lengths[(n, d)] = format_length(Fraction(n or 1, d) * scale)
            append(text)
            if length:
                append(length)
            if nothing_carried:
                note_tokens[item] = ((text, length) if length else (text,),
                                     slot if acc is not None else None)
        elif kind is BAR:
            if carried:
                carried.clear()
            known = bar_tokens.get(item)
            if known is None:
                known = bar_tokens[item] = _bar_tokens(item, canonical)
            extend(known)
        elif kind is REST:
            _, _, rest_kind, n, d = item
            append("z" if strip or rest_kind == "z" else "x")
            length = lengths.get((n, d))
            if length is None:
                length = lengths[(n, d)] = format_length(Fraction(n or 1, d) * scale)
            if length:
                append(length)
        elif kind is TIE:
            append("-")
        elif kind is BROKEN:
            count = item[2]
            append(">" * count if count > 0 else "<" * -count)
        elif kind is CHORD_START:
            in_chord = True
            append("[")
        elif kind is CHORD_END:
            in_chord = False
            append("]")
            length = format_length(Fraction(item[2] or 1, item[3]))
            if length:
                append(length)
        elif kind is GRACE_START:
            in_grace = True
            append("{")
        elif kind is GRACE_END:
            in_grace = False
            append("}")
        elif kind is TUPLET:
            _, _, p, q, r = item
            if q is None and r is None:
                append(f"({p}")
            else:
                append(f"({p}:{q or default_tuplet_q(p, meter.numerator % 3 == 0)}:{r or p}")
        elif kind is ENDING:
            ending = item[2]
            if not tokens or not tokens[-1].endswith(("|", ":")):
                append("|")
                carried.clear()
            append("[" + ",".join(map(str, ending)))
        elif kind is MREST:
            if meter.free:
                raise error("a multi-bar rest Z needs a meter", item)
            bar_units = format_length(meter.bar_length / 4 / unit * scale)
            for i in range(item[2]):
                if i:
                    append("|")
                append("z")
                if bar_units:
                    append(bar_units)
        elif kind is FIELD:
            _, _, name, value = item
            try:
                unit, meter, scale, lengths = _body_field(
                    name, value, transposer, settings, unit, meter, scale, lengths, carried, append)
            except ValueError as problem:
                raise error(f"bad inline {name}: field: {problem}", item) from None
            if name == "K" or name == "L":
                scale_key = (scale.numerator, scale.denominator)
                scaled = scale_key != (1, 1)
                note_tokens = cache_for(_NOTE_TOKENS,
                                         (transposer and transposer.state, scale_key, by_octave))
        elif not strip:
            if kind is DECO or kind is ANNOT:
                append(item[2])
            elif kind is SLUR:
                append(item[2])
    if in_chord or in_grace:
        raise lexed.error("a chord or grace group is not closed", len(lexed.body))


def _body_field(name, value, transposer, settings, unit, meter, scale, lengths, carried, append):
    """An inline field or body field line: key and meter tokens, and a new unit length."""
    if name == "K":
        key, _ = parse_key_cached(value)
        carried.clear()
        if transposer is not None:
            tonic, mode = transposer.set_key(key)
            append(f"[K:{tonic}{mode}]")
        else:
            append(f"[K:{key.tonic}{key.mode}]")
    elif name == "M":
        meter = parse_meter_cached(value.split("%", 1)[0])
        append(f"[M:{meter}]")
    elif name == "L":
        unit = parse_unit_cached(value.split("%", 1)[0])
        if settings.unit_length:
            scale = unit * 8
            lengths = cache_for(_LENGTH_TOKENS, (scale.numerator, scale.denominator))
        else:
            append(f"[L:{unit.numerator}/{unit.denominator}]")
    return unit, meter, scale, lengths


# ---------------------------------------------------------------------------------------------
# tokens -> ABC text

_HEADER_TOKEN = re.compile(r"^[RMLK]:")
# A note token: (accidental)(letter)(octave marks), as the tokenizer writes it (the grammar, the
# compass and compose read notes through it)
NOTE_TOKEN = re.compile(r"^(\^\^|\^|__|_|=)?([A-Ga-g])([,']*)$")
_LENGTH_TOKEN = re.compile(r"^(\d+)?(?:/(\d+))?$")


def _beat_units(meter_text: str) -> Fraction:
    """Units of L:1/8 per beamed group: 3 in compound meters, 4 in 4/4 and 2/2, else 2."""
    try:
        meter = parse_meter(meter_text)
    except ValueError:
        return Fraction(2)
    if meter.free:
        return Fraction(2)
    if meter.compound:
        return Fraction(3 * 8, meter.denominator)
    if meter.bar_length in (4,) and meter.numerator in (4, 2):
        return Fraction(4)
    return Fraction(8, meter.denominator)


def detokenize(tokens: list[str], *, number: int = 1, short_keys: bool = False) -> str:
    """Model tokens -> the ABC text of the normalised tune (X:, T:, R:, M:, L:, K:, body).

    Lines break on the phrases (:func:`folkrnn.abc.layout.phrase_breaks`), and a tune that ends
    on ``||`` ends on ``|]``. ``short_keys``: keys as tunebooks write them (``K:G``, ``K:Em``,
    ``[K:Ador]``) rather than as the model's tokens (``K:Gmaj``, ``K:Emin``): a K: naming only a
    tonic is major in ABC, but the tokenizer reads it as the mode of the final note
    (:class:`Normalisation` ``detect_mode``), so the model's form is the one that always reads
    back to the same tokens.

    Raises AbcError when the sequence has no K: token, or a ``]`` ends a grace group.
    """
    seq = list(tokens)
    skipped = 0  # tokens before seq[0] in ``tokens``, so that an error can say where
    if seq and seq[0] == BOS:
        seq = seq[1:]
        skipped = 1
    if EOS in seq:
        seq = seq[: seq.index(EOS)]
    title_chars: list[str] = []
    i = 0
    while i < len(seq) and not (len(seq[i]) > 2 and _HEADER_TOKEN.match(seq[i])):
        title_chars.append(" " if seq[i] == SPACE else seq[i])
        i += 1
    fields = {"R": "", "M": "4/4", "L": "1/8", "K": ""}
    while i < len(seq) and len(seq[i]) > 2 and _HEADER_TOKEN.match(seq[i]):
        fields[seq[i][0]] = seq[i][2:]
        i += 1
    if not fields["K"]:
        raise AbcError("the token sequence has no K: token")
    rhythm = RHYTHM_NAMES.get(fields["R"], fields["R"].replace("_", " "))
    title = "".join(title_chars).strip() or "Untitled"
    lines = [f"X:{number}", f"T:{title}"]
    if rhythm:
        lines.append(f"R:{rhythm}")
    key = short_key(fields["K"]) if short_keys else fields["K"]
    lines += [f"M:{fields['M']}", f"L:{fields['L']}", f"K:{key}"]
    body = _body_text(seq[i:], _beat_units(fields["M"]), skipped + i,
                      bar_units=_bar_units(fields["M"], fields["L"]))
    if short_keys:
        body = [_INLINE_KEY.sub(lambda m: f"[K:{short_key(m.group(1))}]", line) for line in body]
    lines.extend(body)
    return "\n".join(lines) + "\n"


_INLINE_KEY = re.compile(r"\[K:([^\]]*)\]")
_SHORT_MODES = {"maj": "", "min": "m"}


def short_key(value: str) -> str:
    """A key token's value as tunebooks write it: ``"Gmaj"`` -> ``"G"``, ``"Emin"`` -> ``"Em"``,
    ``"Ador"`` and ``"Dmix"`` as they are; anything else unchanged."""
    match = re.fullmatch(r"([A-G][#b]?)(maj|min|dor|mix|phr|lyd|loc)", value)
    if not match:
        return value
    return match.group(1) + _SHORT_MODES.get(match.group(2), match.group(2))


def _bar_units(meter_text: str, unit_text: str) -> Fraction | None:
    """A full bar in units of L (None in free meter or when M: or L: cannot be read)."""
    try:
        meter = parse_meter(meter_text)
        unit = Fraction(unit_text)
    except (ValueError, ZeroDivisionError):
        return None
    if meter.free or not meter.bar_length or unit <= 0:
        return None
    return meter.bar_length / (4 * unit)


def _body_text(body: list[str], beat: Fraction, first: int = 0, *,
               bar_units: Fraction | None = None) -> list[str]:
    """Join body tokens into lines of music, a space between beamed groups and after bar lines.

    The measures are written first, then joined into lines that break on the phrases
    (:func:`folkrnn.abc.layout.phrase_breaks`; ``bar_units`` is a full bar in units of L).
    ``first`` is the index of ``body[0]`` in the token list, for errors."""
    # each measure: (its text, the bar that closes it, the ending the bar opens ("" or "1"), length)
    measures: list[tuple[str, str, str, Fraction]] = []
    line: list[str] = []
    position = Fraction(0)  # within the bar, in units of L:1/8
    tuplet_left, tuplet_factor = 0, Fraction(1)
    depth = 0  # inside [] or {}
    opened: list[str] = []  # the [ and { still open, innermost last
    k = 0
    n = len(body)
    while k < n:
        token = body[k]
        nxt = body[k + 1] if k + 1 < n else ""
        starts_event = depth == 0 and (token == "[" or token == "{" or token.startswith("(")
                                       or token == "z" or NOTE_TOKEN.match(token) is not None)
        if (starts_event and line and position > 0 and position % beat == 0
                and line[-1][-1] not in " }<>" and not line[-1].startswith("(")):
            line.append(" ")
        if token in ("|", "||", "|]", "[|", "|:", ":|", "::"):
            ending = ""
            if nxt.startswith("[") and nxt[1:2].isdigit():
                ending = nxt[1:]
                k += 1
            # (a bar line inside a chord closes the measure too: the chord's ] then reports it)
            measures.append(("".join(line).strip(), token, ending, position))
            line, position = [], Fraction(0)
            k += 1
            continue
        line.append(token)
        if token in ("[", "{"):
            depth += 1
            opened.append(token)
        elif token in ("]", "}"):
            if token == "]" and opened and opened[-1] == "{":
                raise AbcError(f"token {first + k + 1} of the sequence, ']', closes a grace group "
                               f"opened with '{{': {' '.join(body[max(k - 4, 0):k + 1])!r}")
            depth -= 1
            if opened:
                opened.pop()
        if token.startswith("(") and token[1:2].isdigit():
            parts = token[1:].split(":")
            p = int(parts[0])
            q = int(parts[1]) if len(parts) > 1 and parts[1] else (3 if p in (2, 4, 8) else 2)
            r = int(parts[2]) if len(parts) > 2 and parts[2] else p
            tuplet_left, tuplet_factor = r, Fraction(q, p)
        # the duration of a note, rest or chord (its first note), at its end
        if depth == 0 and (token == "]" or token == "z" or NOTE_TOKEN.match(token)):
            units = Fraction(1)
            if _LENGTH_TOKEN.match(nxt) and nxt:
                line.append(nxt)
                k += 1
                num, den = _LENGTH_TOKEN.match(nxt).groups()
                units = Fraction(int(num or 1), int(den or 1))
            if token == "]":
                if "[" not in line:  # a bar line inside the chord broke the line
                    raise AbcError(f"token {first + k + 1} of the sequence, ']', closes a chord with a "
                                   f"bar line inside it: {' '.join(body[max(k - 4, 0):k + 1])!r}")
                units *= _chord_first_units(line)
            if tuplet_left:
                units *= tuplet_factor
                tuplet_left -= 1
            position += units
        elif depth == 1 and token == "]":
            pass
        k += 1
    measures.append(("".join(line).strip(), "", "", position))
    # the tune's last bar line is a final bar: ||, the model's only double bar, becomes |]
    if measures[-1][0] == "" and len(measures) > 1 and measures[-2][1] == "||" and not measures[-2][2]:
        text, _, ending, length = measures[-2]
        measures[-2] = (text, "|]", ending, length)
    layout = [Measure(length if text else Fraction(0), bar, bool(measures[index - 1][2]) if index else False)
              for index, (text, bar, _, length) in enumerate(measures)]
    breaks = phrase_breaks(layout, bar_units)
    lines: list[str] = []
    pieces: list[str] = []
    for index, (text, bar, ending, _) in enumerate(measures):
        pieces.append(text)
        if index in breaks:
            if bar == "|:" and not text:  # a repeat that opens the next part starts its line
                lines.append(" ".join(piece for piece in pieces if piece))
                pieces = [bar + (ending and "[" + ending)]
                continue
            pieces.append(bar)
            lines.append(" ".join(piece for piece in pieces if piece))
            pieces = ["[" + ending] if ending else []
            continue
        if bar:
            pieces.append(bar + (ending if bar in ("|", ":|") else ending and "[" + ending))
    if any(pieces):
        lines.append(" ".join(piece for piece in pieces if piece))
    return [text for text in lines if text]


def _chord_first_units(line: list[str]) -> Fraction:
    """The length of the first note of the chord that ``line`` ends with."""
    start = len(line) - 1 - line[::-1].index("[")
    if start + 2 < len(line):
        match = _LENGTH_TOKEN.match(line[start + 2])
        if match and line[start + 2]:
            num, den = match.groups()
            return Fraction(int(num or 1), int(den or 1))
    return Fraction(1)


def body_of(tokens: Sequence[str]) -> list[str]:
    """The normalised body of a tune: its tokens after the header's K: token, without ``</s>``
    (title, rhythm, meter and mode left out). For MIDI events, every event."""
    start = next((i + 1 for i, token in enumerate(tokens) if token.startswith("K:")), None)
    if start is None:
        start = 1 if tokens and tokens[0] == "<s>" else 0
    end = len(tokens) - 1 if tokens and tokens[-1] == "</s>" else len(tokens)
    return list(tokens[start:end])
