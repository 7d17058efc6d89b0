"""ABC 2.1 text -> a header and a flat list of body items, shared by the tokenizer and the parser.

The lexer knows the syntax and nothing of meaning: it says that ``^f'3/2`` is a note with a sharp,
letter f, one octave mark and length 3/2 of the unit, but not which MIDI pitch or how long that is.
Items are tuples ``(kind, offset, *values)``; ``offset`` points into the body text so that an error
can name its line and column.

For speed the lexer keeps them as *records*, ``(kind, lead, *values)``, one shared object per
distinct piece of text (``A2``, `` ^f'3/2``, ``|:``: the same few hundred recur in every tune), with
each record's offset in a parallel list; ``lead`` is the white space the text starts with. Reading a
line is then one ``findall`` and one dictionary look-up per item, and the parser and tokenizer can
memoise what they derive from a record (a pitch under a key, a length in ticks) by its identity.
``Lexed.items`` gives the plain items.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from itertools import accumulate

from folkrnn.errors import AbcError
from folkrnn.music import Key, Meter, parse_meter

__all__ = ["Header", "Lexed", "Record", "lex", "cache_by_record", "shared_record", "SPACE",
           "parse_key_cached", "parse_meter_cached", "parse_unit_cached", "parse_key", "parse_unit", "default_unit",
           "bar_kind", "KEY_MODE_WORDS",
           "NOTE", "REST", "MREST", "BAR", "ENDING", "BROKEN", "TUPLET", "CHORD_START",
           "CHORD_END", "GRACE_START", "GRACE_END", "TIE", "FIELD", "DECO", "ANNOT", "SLUR",
           "OVERLAY"]

# Item kinds.
NOTE, REST, MREST, BAR, ENDING, BROKEN, TUPLET = "note", "rest", "mrest", "bar", "ending", "broken", "tuplet"
CHORD_START, CHORD_END, GRACE_START, GRACE_END, TIE = "[", "]", "{", "}", "-"
FIELD, DECO, ANNOT, SLUR, OVERLAY = "field", "deco", "annot", "slur", "&"

_ACCIDENTALS = {"^": 1, "^^": 2, "_": -1, "__": -2, "=": 0}

# One alternative per item kind; the order matters (inline field before ending before chord).
_BODY = re.compile(r"""[ \t`]*(?:
  (?P<note>(?P<acc>\^\^|\^|__|_|=)?(?P<letter>[A-Ga-g])(?P<oct>[,']*)(?P<num>\d+)?(?P<slash>/+)?(?P<den>\d+)?)
| (?P<rest>(?P<rkind>[zx])(?P<rnum>\d+)?(?P<rslash>/+)?(?P<rden>\d+)?)
| (?P<mrest>[ZX](?P<mnum>\d+)?)
| (?P<field>\[(?P<fname>[A-Za-z]):(?P<fvalue>[^\]\n]*)\])
| (?P<ibar>\[\|\])
| (?P<bar>(?P<bcore>:*\[?\|[\|\]]*:*|:{2,})(?:\[?(?P<bend>\d+(?:[,-]\d+)*))?)
| (?P<ending>\[(?P<enum>\d+(?:[,-]\d+)*))
| (?P<chord>\[)
| (?P<chordend>\](?P<cnum>\d+)?(?P<cslash>/+)?(?P<cden>\d+)?)
| (?P<tuplet>\((?P<tp>\d+)(?::(?P<tq>\d*)(?::(?P<tr>\d*))?)?)
| (?P<broken>>+|<+)
| (?P<slur>\.?[()])
| (?P<tie>\.?-)
| (?P<grace>\{/?)
| (?P<graceend>\})
| (?P<annot>"[^"\n]*")
| (?P<deco>![^!\n]*!|\+[^+\n]*\+|[.~H-Wh-w])
| (?P<space>[ \t`y$*\\]+|!)
| (?P<overlay>&)
| (?P<colon>:)
| (?P<stray>\d+|[=^_]+(?![A-Ga-g=^_])|\])
)""", re.VERBOSE)

# The same alternatives with no groups: findall gives each item's whole text, white space before it
# included. A line reads this way only when the texts tile it exactly and every one is known.
_TOKEN = re.compile(re.sub(r"\(\?P<\w+>", "(?:", _BODY.pattern), re.VERBOSE)
_SPACE_CHARS = re.compile(r"[y$*\\!]")  # a line that may hold white-space items, dropped after
SPACE = "space"  # the kind of a record that is no item (white space, a remark field [r:...])


class Record(tuple):
    """One lexed item with its offset replaced by its leading white space: ``(kind, lead, *values)``.

    Records are shared (one per distinct text), so they hash and compare by identity: a cache
    keyed by a record is one pointer look-up.
    """

    __slots__ = ()
    __hash__ = object.__hash__
    __eq__ = object.__eq__
    __ne__ = object.__ne__


_MAX_RECORDS = 1 << 15
_RECORDS: dict[str, Record] = {}  # item text (leading white space included) -> its record
_CACHES_OF_RECORDS: list[dict] = []  # caches keyed by records elsewhere, emptied with _RECORDS


def cache_by_record() -> dict:
    """A new dict keyed by records, emptied whenever the record table is (so it stays bounded)."""
    cache: dict = {}
    _CACHES_OF_RECORDS.append(cache)
    return cache


def cache_for(caches: dict, state, limit: int = 256) -> dict:
    """The cache of ``state`` (a small hashable value: a key signature, a unit, a scale) inside
    ``caches``, made empty when first asked for; all are dropped once ``limit`` states are held."""
    cache = caches.get(state)
    if cache is None:
        if len(caches) >= limit:
            caches.clear()
        cache = caches[state] = {}
    return cache


def shared_record(values: tuple) -> Record:
    """The shared record of these values (for a record the lexer makes, not reads)."""
    text = "\0" + repr(values)
    record = _RECORDS.get(text)
    return record if record is not None else _intern(text, Record(values))


def _intern(text: str, record: Record) -> Record:
    if len(_RECORDS) >= _MAX_RECORDS:
        _RECORDS.clear()
        for cache in _CACHES_OF_RECORDS:
            cache.clear()
    _RECORDS[text] = record
    return record


_CONTINUED_ENDING = re.compile(r"[ \t]*(\d+(?:[,-]\d+)*)")

_QP_DEBRIS = re.compile(r"=20|=$", re.MULTILINE)

_NOTE_GROUPS = tuple(_BODY.groupindex[name] for name in ("acc", "letter", "oct", "num", "slash", "den"))

# A body line that is really a field: `K:G`, `w: la la`, but not the notes `G:|`.
_FIELD_LINE = re.compile(r"^([A-Za-z+]):(.*)$")

# How K: spells a mode (its first three letters, or none, or "m") -> its code.
KEY_MODE_WORDS = {
    "": "maj", "m": "min", "maj": "maj", "ion": "maj", "min": "min", "aeo": "min",
    "dor": "dor", "phr": "phr", "lyd": "lyd", "mix": "mix", "loc": "loc",
}
_KEY = re.compile(r"^\s*([A-Ga-g])([#b]?)\s*([A-Za-z]*)(.*)$")
_KEY_SETTING = re.compile(r"^[a-z][a-z-]*=")  # clef=, middle=, transpose=, octave=, ...
_KEY_ACC = re.compile(r"(\^\^|\^|__|_|=)([A-Ga-g])")


@dataclass
class Header:
    """The header fields of one tune, in order, and the meaning of the ones that shape the body."""

    fields: list[tuple[str, str]] = field(default_factory=list)
    meter: Meter = field(default_factory=Meter)
    unit: Fraction | None = None  # None: not given, so the meter's default applies
    key: Key = field(default_factory=Key)
    key_text: str = ""
    mode_given: bool = False  # K: named a mode (or "m"), rather than only a tonic
    voices: list[str] = field(default_factory=list)
    propagate: str = "pitch"  # %%propagate-accidentals: pitch (every octave) or octave


@dataclass
class Lexed:
    """A lexed tune: header, body items, the body text the offsets point into, and where it starts."""

    header: Header
    body: str
    body_line: int  # 1-based line of the body's first line within the tune text
    warnings: list[str] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)  # the items, as shared records
    offsets: list[int] = field(default_factory=list)  # each record's text's offset in the body

    @property
    def items(self) -> list[tuple]:
        """The body items ``(kind, offset, *values)``, in written order."""
        return [(record[0], offset + record[1], *record[2:])
                for record, offset in zip(self.records, self.offsets)]

    def offset(self, index: int) -> int:
        """The body offset of record ``index``'s item."""
        return self.offsets[index] + self.records[index][1]

    def where(self, offset: int) -> tuple[int, int]:
        """(line, column) within the tune text of a body offset, both 1-based."""
        line = self.body.count("\n", 0, offset)
        col = offset - (self.body.rfind("\n", 0, offset) + 1) + 1
        return self.body_line + line, col

    def error(self, message: str, offset: int) -> AbcError:
        line, col = self.where(offset)
        return AbcError(message, line=line, col=col)


_EIGHTH, _SIXTEENTH = Fraction(1, 8), Fraction(1, 16)


def default_unit(meter: Meter) -> Fraction:
    """ABC 2.1's default L:: 1/16 when the meter is below 3/4, else 1/8 (free meter: 1/8)."""
    if meter.free:
        return _EIGHTH
    return _SIXTEENTH if 4 * meter.numerator < 3 * meter.denominator else _EIGHTH


def parse_unit(text: str) -> Fraction:
    """``"1/8"`` -> Fraction(1, 8). Raises ValueError."""
    num, sep, den = text.strip().partition("/")
    if not num.strip().isdigit() or (sep and not den.strip().isdigit()):
        raise ValueError(f"{text.strip()!r} is not a note length such as 1/8")
    if sep and int(den) == 0:
        raise ValueError(f"{text.strip()} divides by zero; a note length is 1/8, 1/16, ...")
    value = Fraction(int(num), int(den) if sep else 1)
    if value <= 0 or value > 4 or value.denominator > 512:
        raise ValueError(f"note length {text!r} is out of range")
    return value


def parse_key(text: str) -> tuple[Key, bool]:
    """A K: field -> (Key, whether a mode was named). Raises ValueError.

    Handles ``G``, ``Gm``, ``E Minor``, ``A Dorian``, ``Amix``, ``F#m``, ``Bb``, ``HP``/``Hp``
    (the Highland pipes: A mixolydian, whose signature has F# and C#), ``none`` and empty (C major
    with no signature), explicit accidentals (``D ^g``, ``D exp ^f _b``), and ignores clef and
    other settings (``clef=bass``, ``transpose=-2``, ``treble``).
    """
    raw = text.split("%", 1)[0].strip()
    # settings such as clef=bass or transpose=-2 go; `Dmix=c` (an explicit natural) stays
    words = [w for w in raw.split() if not _KEY_SETTING.match(w)]
    raw = " ".join(words)
    if raw in ("", "none", "None", "NONE") or raw.lower() in ("treble", "bass", "alto", "tenor"):
        return Key("C", "maj"), False
    if raw[:2] in ("HP", "Hp"):
        signature = {"C": 1, "D": 0, "E": 0, "F": 1, "G": 0, "A": 0, "B": 0}
        return Key("A", "mix", tuple(signature.items())), True
    m = _KEY.match(raw)
    if not m:
        if raw.startswith(("^", "_", "=")):  # only explicit accidentals, on C
            m = _KEY.match("C " + raw)
        if not m:
            raise ValueError(f"K:{text.strip()} is not a key")
    letter, accidental, mode_word, rest = m.groups()
    tonic = letter.upper() + accidental
    mode_key = mode_word[:3].lower()
    if mode_word and mode_word.lower() == "m":
        mode_key = "m"
    if mode_key in ("exp",):
        mode_key, rest = "", "exp " + rest
    elif mode_key not in KEY_MODE_WORDS:
        # a clef name or other word after the tonic: `K:G treble`
        if mode_word.lower() in ("treble", "bass", "alto", "tenor", "clef", "perc", "none"):
            mode_key = ""
        else:
            hint = "; a flat is b, as in Eb" if mode_word.lower() in ("s", "es", "is") else ""
            raise ValueError(f"K:{text.strip()} has an unknown mode {mode_word!r} (modes: maj, "
                             f"min, m, dor, phr, lyd, mix, loc{hint})")
    mode = KEY_MODE_WORDS[mode_key]
    key = Key(tonic, mode)
    explicit = _KEY_ACC.findall(rest)
    if explicit:
        signature = dict.fromkeys("CDEFGAB", 0) if "exp" in rest.split() else key.accidentals
        for acc, note in explicit:
            signature[note.upper()] = _ACCIDENTALS[acc]
        key = Key(tonic, mode, tuple(signature.items()))
    return key, bool(mode_word) and mode_key != ""


# The header fields of the corpus repeat (K:G, M:6/8, L:1/8): what they mean is read once each.
# Pure functions of their text, returning immutable values; an error is not remembered.
parse_key_cached = lru_cache(maxsize=4096)(parse_key)
parse_meter_cached = lru_cache(maxsize=1024)(parse_meter)
parse_unit_cached = lru_cache(maxsize=1024)(parse_unit)


def bar_kind(text: str) -> str:
    """Canonical kind of a written bar line: ``| || |] [| |: :| ::``."""
    left = text.startswith(":")
    right = text.endswith(":")
    if left and right:
        return "::"
    if left:
        return ":|"
    if right:
        return "|:"
    core = text.strip(":")
    if core in ("|", ""):
        return "|"
    if core.startswith("[") :
        return "[|"
    if core.endswith("]"):
        return "|]"
    return "||"


def _endings(text: str) -> tuple[int, ...]:
    numbers: list[int] = []
    for part in text.split(","):
        lo, dash, hi = part.partition("-")
        if dash and lo and hi:
            numbers.extend(range(int(lo), int(hi) + 1))
        elif lo:
            numbers.append(int(lo))
    return tuple(numbers)


def _length(num: str | None, slash: str | None, den: str | None) -> tuple[int, int]:
    """The (numerator, denominator) multiplier of the unit: ``3/2``, ``/``, ``//``, ``/4``."""
    n = int(num) if num else 1
    if slash:
        d = int(den) if den else 2 ** len(slash)
        if den and len(slash) > 1:
            d = int(den) * 2 ** (len(slash) - 1)
    else:
        d = 1
    return n, d


_SHAPING_FIELDS = frozenset("MLKV")  # the header fields _header_field reads


def _header_field(header: Header, name: str, value: str, line: int) -> None:
    value = value.strip()
    try:
        if name == "M":
            header.meter = parse_meter_cached(value.split("%", 1)[0])
        elif name == "L":
            header.unit = parse_unit_cached(value.split("%", 1)[0])
        elif name == "K":
            header.key, header.mode_given = parse_key_cached(value)
            header.key_text = value
        elif name == "V":
            voice = value.split()[0] if value.split() else ""
            if voice and voice not in header.voices:
                header.voices.append(voice)
    except (ValueError, ZeroDivisionError) as error:
        raise AbcError(f"bad {name}: field: {error}", line=line, col=1) from None


def lex(text: str) -> Lexed:
    """Lex one tune's text (from X: onwards). Raises AbcError naming line and column."""
    lines = text.split("\n")
    header = Header()
    i = 0
    # The header runs up to and including the first K: line.
    seen_k = False
    skipped_header: list[int] = []
    while i < len(lines):
        line = lines[i]
        i += 1
        stripped = line.strip()
        if not stripped or stripped.startswith("%"):
            if stripped.startswith("%%propagate-accidentals"):
                words = stripped.split()
                if len(words) > 1 and words[1] in ("pitch", "octave"):
                    header.propagate = words[1]
            continue
        m = _FIELD_LINE.match(stripped)
        if not m:
            if not header.fields:
                raise AbcError("expected a field line such as X:1", line=i, col=1)
            if "|" in stripped and not any(later.startswith("K:") for later in lines[i:]):
                # music, and no K: follows: the header never ended (a stray line with a bar
                # sign before K:, such as a broken-off `I (1) :| (2) ||`, is skipped below)
                raise AbcError("expected a K: field to end the header before the music",
                               line=i, col=1)
            # a stray line inside the header (a broken-off field value): skipped, as abc2midi does
            skipped_header.append(i)
            continue
        name, value = m.groups()
        if name == "+" and header.fields:
            last_name, last_value = header.fields[-1]
            header.fields[-1] = (last_name, f"{last_value} {value.strip()}")
            continue
        header.fields.append((name, value.strip()))
        if name in _SHAPING_FIELDS:
            _header_field(header, name, value, i)
        if name == "K":
            seen_k = True
            break
    if not seen_k:
        raise AbcError("no K: field: a tune's header must end with K:", line=max(i, 1), col=1)
    body_lines = lines[i:]
    # ABC 2.1 section 2.2.1: the tune body ends at the first empty line (white space only);
    # what follows is free text between tunes, as abc2midi and abcm2ps read it
    end = next((j for j, line in enumerate(body_lines) if not line.strip()), None)
    ignored = 0
    if end is not None:
        ignored = sum(1 for line in body_lines[end:] if line.strip() and not line.lstrip().startswith("%"))
        body_lines = body_lines[:end]
    body = "\n".join(body_lines)
    if "=\n" in body or "=20" in body:
        # quoted-printable debris from e-mailed files: a soft line break, an encoded space
        body = _QP_DEBRIS.sub(lambda m: " " if m.group(0) == "=20" else " " * len(m.group(0)), body)
        body_lines = body.split("\n")
    lexed = Lexed(header, body, i + 1)
    if skipped_header:
        lexed.warnings.append("skipped header lines that are not fields: "
                              + ", ".join(map(str, skipped_header)))
    if ignored:
        lexed.warnings.append(f"the tune ends at the empty line {i + 1 + end}; "
                              f"{ignored} line(s) after it were ignored")
    _lex_body(lexed, body_lines)
    return lexed


def _switch_voice(value: str, first_voice: str | None,
                  skipped: set[str]) -> tuple[str, bool]:
    """A V: field: (the first voice, whether this is it); other voices are noted in ``skipped``."""
    voice = value.split()[0] if value.split() else ""
    if first_voice is None:
        first_voice = voice
    if voice != first_voice:
        skipped.add(voice)
    return first_voice, voice == first_voice


def _record(m: re.Match) -> Record | None:
    """The record of one matched item, or None for an item that acts on the lexer itself."""
    kind = m.lastgroup
    lead = m.start(kind) - m.start()
    if kind == "note":
        acc, letter, octave, num, slash, den = m.group(*_NOTE_GROUPS)
        if slash or den:
            n, d = _length(num, slash, den)
        else:
            n, d = int(num) if num else 1, 1
        return Record((NOTE, lead, _ACCIDENTALS[acc] if acc else None, letter,
                       (octave.count("'") - octave.count(",")) if octave else 0, n, d))
    if kind == "space":
        return Record((SPACE, lead))
    if kind == "ibar":
        # `[|]`, ABC 2.1's invisible bar line: a bar line for the player, unseen
        return Record((BAR, lead, "|", (), "[|]"))
    if kind == "bar":
        core, bend = m.group("bcore"), m.group("bend")
        return Record((BAR, lead, bar_kind(core), _endings(bend) if bend else (), core))
    if kind == "deco":
        return Record((DECO, lead, m.group("deco")))
    if kind == "slur":
        return Record((SLUR, lead, m.group("slur")[-1]))
    if kind == "annot":
        return Record((ANNOT, lead, m.group("annot")))
    if kind == "tie":
        return Record((TIE, lead))
    if kind == "broken":
        text = m.group("broken")
        return Record((BROKEN, lead, len(text) if text[0] == ">" else -len(text)))
    if kind == "rest":
        n, d = _length(m.group("rnum"), m.group("rslash"), m.group("rden"))
        return Record((REST, lead, m.group("rkind"), n, d))
    if kind == "chord":
        return Record((CHORD_START, lead))
    if kind == "chordend":
        n, d = _length(m.group("cnum"), m.group("cslash"), m.group("cden"))
        return Record((CHORD_END, lead, n, d))
    if kind == "tuplet":
        p = int(m.group("tp"))
        q = m.group("tq")
        r = m.group("tr")
        return Record((TUPLET, lead, p, int(q) if q else None, int(r) if r else None))
    if kind == "grace":
        return Record((GRACE_START, lead))
    if kind == "graceend":
        return Record((GRACE_END, lead))
    if kind == "field":
        name, value = m.group("fname"), m.group("fvalue").strip()
        if name in ("K", "M", "L", "P", "Q"):
            return Record((FIELD, lead, name, value))
        if name in ("I", "N", "r", "R", "T", "U", "W", "w"):
            return Record((SPACE, lead))  # remarks and instructions that do not change the notes
        return None  # [V:...] switches voice; an unknown field is an error
    if kind == "ending":
        return Record((ENDING, lead, _endings(m.group("enum"))))
    if kind == "mrest":
        return Record((MREST, lead, int(m.group("mnum") or 1)))
    return None  # colon, stray, overlay


def _lex_body(lexed: Lexed, lines: list[str]) -> None:
    """Read the body's ``lines`` (``lexed.body`` split at its line ends) into records."""
    records, offsets = lexed.records, lexed.offsets
    first_voice = lexed.header.voices[0] if lexed.header.voices else None
    in_voice = True  # are we in the first voice?
    skipped_voices: set[str] = set()
    overlaid = False
    continued = False  # did the last music line end with a `\` continuation?
    stray: list[str] = []
    offset = 0
    match = _BODY.match
    findall = _TOKEN.findall
    known = _RECORDS.__getitem__
    append, append_offset = records.append, offsets.append
    for line in lines:
        start = offset
        offset += len(line) + 1
        stripped = line.strip()
        if not stripped or stripped.startswith("%"):
            continue
        fm = _FIELD_LINE.match(stripped) if stripped[1:2] == ":" else None  # (the pattern's own test)
        if fm and not (fm.group(1) in "ABCDEFGabcdefg" and fm.group(2)[:1] in ("|", ":", "")):
            name, value = fm.group(1), fm.group(2).strip()
            if name == "V":
                first_voice, in_voice = _switch_voice(value, first_voice, skipped_voices)
            elif name == "P" or (in_voice and name in ("K", "M", "L", "Q")):
                # a part label belongs to the whole tune, whichever voice was written last
                append(Record((FIELD, 0, name, value)))
                append_offset(start + line.index(":") - 1)
            continued = False
            continue
        pos = 0
        if not in_voice:
            pos = line.find("[V:")  # an inline [V:1] may bring the first voice back
            if pos < 0:
                continue
        end = line.find("%")
        if end < 0:
            end = len(line)
        while end > pos and line[end - 1] in " \t`":  # so that every match holds an item
            end -= 1
        if continued and records and records[-1][0] is BAR and not records[-1][3]:
            # `|\` then `1 ...` on the next line: the continuation joins them into `|1`
            em = _CONTINUED_ENDING.match(line, pos, end)
            if em:
                _, lead, bar, _, core = records[-1]
                records[-1] = shared_record((BAR, lead, bar, _endings(em.group(1)), core))
                pos = em.end()
        continued = line[:end].rstrip().endswith("\\")
        if pos >= end:
            continue
        # The fast way: the line's item texts, every one already known, tiling the line exactly.
        texts = findall(line, pos, end)
        if sum(map(len, texts)) == end - pos:
            try:
                line_records = list(map(known, texts))
            except KeyError:
                pass
            else:
                line_offsets = list(accumulate(map(len, texts), initial=start + pos))
                line_offsets.pop()
                if _SPACE_CHARS.search(line, pos, end):
                    kept = [(record, at) for record, at in zip(line_records, line_offsets)
                            if record[0] is not SPACE]
                    line_records = [record for record, _ in kept]
                    line_offsets = [at for _, at in kept]
                records += line_records
                offsets += line_offsets
                continue
        # The slow way, item by item: new texts, voices, overlays, stray signs and errors.
        while pos < end:
            m = match(line, pos, end)
            if m is None:
                raise lexed.error(f"unexpected {line[pos]!r} in the music", start + pos)
            text_start = pos
            pos = m.end()
            text = m.group()
            record = _RECORDS.get(text)
            if record is None:
                record = _record(m)
                if record is not None:
                    _intern(text, record)
            if record is not None:
                if record[0] is not SPACE:
                    append(record)
                    append_offset(start + text_start)
                continue
            kind = m.lastgroup
            at = start + m.start(kind)
            if kind == "field":
                name, value = m.group("fname"), m.group("fvalue").strip()
                if name == "V":
                    first_voice, in_voice = _switch_voice(value, first_voice, skipped_voices)
                    if not in_voice:
                        # the rest of this line belongs to another voice, up to a [V: switch
                        pos = line.find("[V:", pos)
                        if pos < 0:
                            break
                else:
                    raise lexed.error(f"unknown inline field [{name}:]", at)
            elif kind == "colon":
                # a repeat sign split from its bar line (`|` at the end of one line, `:` at the
                # start of the next): join them, as abc2midi does
                if records and records[-1][0] is BAR:
                    _, lead, bar, ending, core = records[-1]
                    joined = core + ":"
                    records[-1] = shared_record((BAR, lead, bar_kind(joined), ending, joined))
                else:
                    stray.append(f"':' at line {lexed.where(at)[0]}")
            elif kind == "stray":
                stray.append(f"{m.group('stray')!r} at line {lexed.where(at)[0]}")
            elif kind == "overlay":
                # a second voice overlaid on this bar: keep the first voice, skip to the bar line
                bar_at = line.find("|", pos, end)
                pos = end if bar_at < 0 else bar_at
                overlaid = True
    if skipped_voices:
        lexed.warnings.append("kept only the first voice; skipped " + ", ".join(sorted(skipped_voices)))
    if stray:
        lexed.warnings.append("ignored stray " + ", ".join(stray[:5]) + (" ..." if len(stray) > 5 else ""))
    if overlaid:
        lexed.warnings.append("kept only the first voice of overlaid bars (&)")
