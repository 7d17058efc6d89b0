"""The tables several modules share, each defined once: dances, instruments, modes, rhythms, output
formats, paper sizes, the music21 collections a corpus is built from (the default corpus among
them) and the seed limit.

Everything else reads them from here, the CLI's choices and help texts included, so that two copies
cannot drift apart (as ``render --instrument`` and ``validate --instrument`` once did). This module
imports nothing from folkrnn, so any module may import it.

**Dances** (:data:`DANCES`) are keyed by the R: values the tokenizer maps every R: field to
(:data:`RHYTHMS`, in the tokenizer's order). Their meters and forms were measured on music21's
dance collections (O'Neill's 1850, Ryan's Mammoth, Aird's Airs and the misc collection: 4,296
tunes with notes, once each), reading each R: field as the tokenizer does:

- **Meters** are the meters a dance is written in, the usual one first. 37% of the reels (all
  Ryan's) and 50% of the hornpipes (Ryan's and O'Neill's) are written in 2/4 with L:1/16: the
  same music in halved note values (about 7 notes a bar, as in a 2/2 bar of eighths), which
  players today read in cut or common time. Those 2/4 spellings are left out, so that
  ``--rhythm reel`` and a title ending in "Hornpipe" give the meters a musician expects, and the
  tokenizer writes such a tune in the dance's usual meter in eighths, each 2/4 bar one bar
  (``Normalisation.whole_bars``), so that a model learns a reel in one notation.
- **Forms** are counted as written (see :mod:`folkrnn.form`): parts split at repeat signs and
  double bars, a pickup and the closing short bar of a part make one bar, a part closed by ``:|``
  or with endings is played twice. A dance gets a form only when one form (with its part length)
  holds more than half of its tunes in its meters, over at least 20 tunes; otherwise ``"free"``.
  The shares are written next to each dance.
- **Endings**: how often a repeated part is closed by first and second endings (``|1 ... :|2``)
  rather than a plain ``:|``, in every meter; the sampler keeps a tune held to a form of parts
  (the dance's usual one, or ``--form``: a slip jig or march, whose usual form is free, takes its
  share under ``--form AABB``) to these shares, which the model alone all but never writes
  (folkrnn.sample).
- **Tempos** are beats per minute at a moderate session pace, the beat a dotted quarter in
  compound meters and a quarter otherwise (a reel at 200 is 100 half notes). Kinds of a dance
  that R: names on their own ("double jig", "clog") keep their own tempo (:class:`Variant`).
- **Tonics** are the keys the session repertoire mostly uses, which the model's tunes (written
  in C) are moved to when no key is asked for: reels in D, jigs and hornpipes in G, E minor
  (airs and waltzes in A minor), A dorian, D mixolydian (strathspeys in A).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "Dance", "Variant", "DANCES", "DANCE_SHARE", "ENDINGS_AGAIN", "PART_CLOSES", "RHYTHMS", "usual_tonic",
    "Instrument", "INSTRUMENTS", "INSTRUMENT_NAMES", "find_instrument",
    "Mode", "MODES", "MODE_WORDS",
    "Format", "FORMATS", "COMPOSE_FORMATS", "GENERATE_FORMATS", "find_format", "Paper", "PAPERS",
    "Collection", "COLLECTIONS", "DEFAULT_COLLECTIONS", "MUSIC21_TERMS",
    "MAX_SEED",
]

MAX_SEED = 2 ** 63 - 1  # the largest seed any command takes (NumPy's generators take 64 bits)


# ---------------------------------------------------------------------------------------------
# Modes


@dataclass(frozen=True)
class Mode:
    """A mode of K:, as the model's tokens write it, and what goes with it."""

    code: str  # as K: and the model's tokens write it ("dor")
    name: str  # in words, as --mode takes it ("dorian")
    fifths: int  # offset on the line of fifths from the major key of the same tonic (dor: -2)
    tonic: str  # the tonic tunes in this mode are usually played in, unless the dance says otherwise
    aliases: tuple[str, ...] = ()  # other words options take for it ("minor", "m", "aeolian")


# The order is the CLI's (the common modes of the session repertoire first).
MODES: dict[str, Mode] = {mode.code: mode for mode in (
    Mode("maj", "major", 0, "G", ("ionian",)),
    Mode("min", "minor", -3, "E", ("m", "aeolian")),
    Mode("dor", "dorian", -2, "A"),
    Mode("mix", "mixolydian", -1, "D"),
    Mode("phr", "phrygian", -4, "E"),
    Mode("lyd", "lydian", 1, "F"),
    Mode("loc", "locrian", -5, "B"),
)}
# Every word an option takes for a mode -> its code: "major", "maj", "ionian" -> "maj".
MODE_WORDS: dict[str, str] = {word: mode.code for mode in MODES.values()
                              for word in (mode.name, mode.code, *mode.aliases)}


def _tonics(**overrides: str) -> dict[str, str]:
    """The usual tonic of each mode (:attr:`Mode.tonic`), with a dance's own where it differs."""
    return {code: overrides.get(code, mode.tonic) for code, mode in MODES.items()}


# ---------------------------------------------------------------------------------------------
# Dances and rhythms


@dataclass(frozen=True)
class Variant:
    """A kind of a dance that R: names on its own ("double jig"), played at its own pace."""

    tempo: float  # beats per minute (a dotted quarter in compound meters, else a quarter)
    lilt: float = 0.5  # where an off-beat eighth falls within its quarter (0.5: straight)


@dataclass(frozen=True)
class Dance:
    """A rhythm of R: as the tokenizer names it: how it is written, played and keyed."""

    name: str  # as a person writes it in R: ("slip jig")
    meters: tuple[str, ...]  # the meters it is written in, the usual one first; (): none fixed
    tempo: float | None  # beats per minute (see :attr:`beat`); None: chosen by the meter
    form: str  # its usual form as played ("AABB"); "free" where no form holds a majority
    part_bars: int | None  # bars in each part of that form (8 or 16); None with "free"
    tonics: dict[str, str]  # mode code -> the tonic it is usually played in ("maj" -> "D")
    lilt: float = 0.5  # where an off-beat eighth falls within its quarter (0.5: straight)
    variants: dict[str, Variant] = field(default_factory=dict)  # R: name, letters only -> its kind
    # of its repeated parts (in its tunes with a repeated part, every meter), the share closed by
    # first and second endings where no earlier part of the tune had them (ENDINGS_AGAIN after one
    # that had); None: too few tunes to measure
    endings: float | None = None
    # of its parts of whole 4-bar phrases (16 bars at most), the share that close after 1, 2 and 3
    # phrases, of those that reach so far: a dance with no usual form (and a tune of no dance) keeps
    # its parts to them (folkrnn.sample; a share no part reaches is None, and closes). None: too few
    # parts (under 100), PART_CLOSES holds
    part_closes: tuple[float | None, ...] | None = None

    @property
    def beat(self) -> str:
        """What :attr:`tempo` counts in the usual meter: ``"3/8"`` (a dotted quarter) in compound
        meters (6/8, 9/8, 12/8), else ``"1/4"``. MIDI counts it in the tune's own meter."""
        if self.meters:
            numerator, denominator = self.meters[0].split("/")
            if int(numerator) % 3 == 0 and int(numerator) > 3 and denominator == "8":
                return "3/8"
        return "1/4"


# Of the repeated parts that follow a part with first and second endings, the share that have them
# too, over every dance: 57 of 82 (jigs 21/29, reels 16/27, hornpipes 13/15); after a part without
# them, 3% to 11% (Dance.endings): a tune keeps its way of closing a repeat.
ENDINGS_AGAIN = 0.70
# Of the tunes whose rhythm nobody asked for (by --rhythm, a title naming a dance or a prime's R:), the
# share that take a dance, drawn from each tune's seed (folkrnn.sample); the others take one of the other
# rhythms the model knows (R:other, R:air: half the default corpus has no dance R:). Issue 10 asks for
# 80% at least; with every tune a dance, real tunes of the training split in the same dances and their
# usual forms were told from the test split 71.3% of the time, with 10% of other tunes among them 67.1%
# (benchmarks/form_bound.py).
DANCE_SHARE = 0.85
# Of the parts of every rhythm's tunes that are whole 4-bar phrases, 16 bars at most (8,858 of 9,225:
# 4 bars 1,310, 8 bars 7,053, 12 bars 112, 16 bars 383), the share that close after 1, 2 and 3
# phrases of those that reach so far: Dance.part_closes where a rhythm has too few parts of its own.
PART_CLOSES = (0.148, 0.934, 0.226)

DANCES: dict[str, Dance] = {
    # meters: 2/2 440, 2/4 260 (Ryan's halved notation), 4/4 3 of 703. Form, in 2/2 and 4/4 (443):
    # AB 8 bars 192 (43%), AABB 8 92 (21%), AAB (4-bar A repeated, 8-bar B) 86 (19%), ABC 8 14;
    # in every meter (703): AABB 8 285 (41%), AB 8 222 (32%). 83% of the parts are 8 bars, but no
    # form holds a majority: O'Neill's mostly writes a reel's parts once, Ryan's with repeats.
    # AABB of 8 bars is the plurality over every meter, 83% of the parts are 8 bars, and O'Neill's
    # unrepeated 8-bar parts are the same parts written without the repeat signs players follow:
    # a reel is AABB in 8-bar parts.
    # endings: 97 of 855 repeated parts (11%; 77 of 504 first parts, 20 of 351 after one without);
    # 97 of 504 tunes with a repeated part have them (19%).
    "reel": Dance("reel", ("2/2", "4/4"), 200, "AABB", 8, _tonics(maj="D"), endings=0.113),
    # meters: 6/8 449, 9/8 23 (Ryan's slip jigs named jigs), 2/4 7, 2/2 6 of 485. Form, in 6/8
    # (449): AABB 8 bars 360 (80%), AABBCC 8 29 (6%), AB 8 13 (3%).
    # endings: 64 of 1,014 (6%; first parts 23 of 499); 64 of 499 tunes (13%).
    "jig": Dance("jig", ("6/8",), 116, "AABB", 8, _tonics(),
                 variants={"doublejig": Variant(116), "singlejig": Variant(120)}, endings=0.063),
    # meters: 9/8 83 of 83. Form (83): AAB (4-bar A repeated, 8-bar B) 27 (33%), AABB 4 bars 27
    # (33%), AB 8 11 (13%); 66% of the parts are 4 bars.
    # endings: 7 of 140 (5%); 7 of 78 tunes (9%). Parts of whole phrases (208 of 209): 4 bars 137,
    # 8 bars 71 (none reaches 12).
    "slipjig": Dance("slip jig", ("9/8",), 116, "free", None, _tonics(),
                     variants={"hopjig": Variant(116)}, endings=0.050, part_closes=(0.659, 1.0, None)),
    # meters: 2/4 236 (halved notation, O'Neill's and Ryan's), 2/2 226, 4/4 7 of 469. Form, in 2/2
    # and 4/4 (233): AABB 8 bars 196 (84%), AABBCCDD 8 8 (3%), AABBCC 8 7 (3%). Written in 4/4:
    # abc2midi, the reference player, refuses R:hornpipe in 2/2 ("Hornpipe must be in 2/4 or 4/4
    # time"), and a 2/2 hornpipe is the same music as a 4/4 one.
    # endings: 28 of 1,009 (3%); 28 of 499 tunes (6%).
    "hornpipe": Dance("hornpipe", ("4/4",), 160, "AABB", 8, _tonics(), lilt=0.60,
                      variants={"clog": Variant(150, 0.60)}, endings=0.028),
    # no R:polka in the four collections: the meter is the polka's own; the form is not measured.
    "polka": Dance("polka", ("2/4",), 140, "free", None, _tonics(maj="D")),
    # meters: 12/8 2 of 2. Form: AABB 4 bars 2; too few tunes to measure.
    "slide": Dance("slide", ("12/8",), 130, "free", None, _tonics(maj="D")),
    # meters: 3/4 4 of 4. Form: AB 8 bars 2, AB 16 1, AAB 1; too few tunes to measure.
    "waltz": Dance("waltz", ("3/4",), 132, "free", None, _tonics(min="A")),
    # meters: 2/4 1 of 1 (the others are the march's own); form not measurable (1 tune).
    # endings: 4 of 173 (2%); 4 of 85 tunes (5%).
    # parts of whole phrases (194 of 210): 4 bars 19, 8 bars 155, 12 bars 6, 16 bars 14.
    "march": Dance("march", ("2/4", "4/4", "6/8"), 110, "free", None, _tonics(maj="D"), endings=0.023,
                   part_closes=(0.098, 0.886, 0.3)),
    # meters: 4/4 46, 2/2 15, 2/4 3 of 64 (all Ryan's). Form, in 4/4 and 2/2 (61): AB 8 bars 48
    # (79%), AABB 4 7 (11%), AABB 8 3 (5%): Ryan's writes a strathspey's parts out, unrepeated.
    # endings: 6 of 87 (7%); 6 of 58 tunes (10%).
    "strathspey": Dance("strathspey", ("4/4", "2/2"), 120, "AB", 8, _tonics(maj="A", mix="A"),
                        lilt=0.58, variants={"highland": Variant(150, 0.58), "fling": Variant(150, 0.58)},
                        endings=0.069),
    # not a dance: no meter fixed. Form (33): AB 8 bars 13 (39%), A 16 4 (12%).
    "air": Dance("air", (), 72, "free", None, _tonics(min="A"),
                 variants={"slowair": Variant(60), "lament": Variant(56)}),
    # no R:mazurka in the four collections: the meter is the mazurka's own.
    "mazurka": Dance("mazurka", ("3/4",), 120, "free", None, _tonics(min="A")),
    # no R:barndance in the four collections: the meters are the barndance's own.
    "barndance": Dance("barndance", ("4/4", "2/2"), 170, "free", None, _tonics(maj="D"), lilt=0.58,
                       variants={"germandance": Variant(160, 0.58), "schottische": Variant(150, 0.58)}),
    # not a dance: no meter fixed (songs come from the Essen collection, not these four).
    "song": Dance("song", (), 90, "free", None, _tonics(min="A")),
    # no R:, or one the tokenizer knows no rhythm in (2,452 tunes): the meter sets the tempo. Parts of
    # whole phrases (4,379 of 4,658, 2,211 tunes): 4 bars 788, 8 bars 3,171, 12 bars 100, 16 bars 320.
    "other": Dance("other", (), None, "free", None, _tonics(),
                   variants={"polska": Variant(110), "setdance": Variant(120), "threetwo": Variant(160),
                             "planxty": Variant(96), "rant": Variant(180), "countrydance": Variant(140)},
                   part_closes=(0.18, 0.883, 0.238)),
}
# The forms offered by name (folkrnn.abc.grammar.parse_form reads any such letters: a letter twice
# is a repeated part); "free" imposes none.
FORMS: tuple[str, ...] = ("AABB", "AABBCC", "AB", "ABC", "free")
# The R: values the tokenizer maps every R: field to, in its order.
RHYTHMS: tuple[str, ...] = tuple(DANCES)


def usual_tonic(mode: str, rhythm: str = "") -> str:
    """The tonic a tune of this mode (``"dor"``) and rhythm (``"reel"``) is usually played in."""
    dance = DANCES.get(rhythm)
    if dance is not None:
        return dance.tonics.get(mode, dance.tonics["maj"])
    return MODES.get(mode, MODES["maj"]).tonic


# ---------------------------------------------------------------------------------------------
# Instruments


@dataclass(frozen=True)
class Instrument:
    """An instrument: its General MIDI sound, its written range and how it is played."""

    name: str  # canonical name, as options take it ("uilleann-pipes")
    program: int  # General MIDI program, 0-based (40 is the violin)
    lowest: int  # lowest playable written MIDI pitch
    highest: int  # highest playable written MIDI pitch
    articulation: float  # fraction of its written length a note sounds (expressive; <= 40 ms off)
    dynamics: float  # scale of the metric accents: 0 for instruments with no dynamics (pipes)
    family: str  # the tone WAV files give it: bowed, wind, reed, plucked or struck
    monophonic: bool  # plays one note at a time (no chords, no double stops)
    aliases: tuple[str, ...] = ()  # other names options take for it ("violin")
    note: str = ""  # what the range is, in words
    usual_highest: int = 0  # the highest written pitch tunes usually reach (0: ``highest``): composing
    # places a tune in the octave that keeps it below this where it can
    usual_middle: int = 0  # the median written pitch of its tunes (0: none known): composing then
    # places a tune in the octave whose median is nearest this


# Written ranges, as folk tunes are written (a D whistle sounds an octave above what is written,
# as do the piccolo and the soprano recorder; the guitar and the bouzouki an octave below). The
# nearest General MIDI sounds: bowed strings play legato, winds breathe between notes, plucked and
# struck strings ring for the note's length; bagpipes and organs cannot accent by loudness.
INSTRUMENTS: dict[str, Instrument] = {instrument.name: instrument for instrument in (
    # the fiddle and the uilleann pipes can sound two notes (double stops, the regulators' chords),
    # but a dance tune on them is one line: monophonic, as a performance of one plays it
    Instrument("fiddle", 40, 55, 95, 0.95, 1.0, "bowed", True, ("violin",),
               "G3 (open G) to B6: no tune of the dance collections goes above A6, and 99% stay "
               "at or below E6 (third position); the violin itself reaches E7 and beyond", 88,
               72),  # a tune's median pitch, O'Neill's and Ryan's (2,303 tunes): C5; 10-90%: A4-E5
    Instrument("viola", 41, 48, 88, 0.95, 1.0, "bowed", False, (), "C3 to E6"),
    Instrument("cello", 42, 36, 76, 0.95, 1.0, "bowed", False, (), "C2 to E5"),
    Instrument("whistle", 78, 62, 86, 0.85, 0.6, "wind", True, ("tin-whistle", "tinwhistle", "penny-whistle"),
               "D tin whistle, written D4 to D6 (sounds an octave higher)"),
    Instrument("flute", 73, 62, 93, 0.88, 0.8, "wind", True, ("irish-flute",),
               "simple-system wooden flute in D: D4 to A6"),
    Instrument("concert-flute", 73, 60, 96, 0.88, 0.8, "wind", True, (), "Boehm flute: C4 to C7"),
    Instrument("piccolo", 72, 62, 96, 0.85, 0.8, "wind", True, (),
               "written D4 to C7 (sounds an octave higher)"),
    Instrument("recorder", 74, 60, 86, 0.85, 0.6, "wind", True, (),
               "soprano recorder, written C4 to D6 (sounds an octave higher)"),
    Instrument("uilleann-pipes", 109, 62, 86, 1.0, 0.0, "reed", True, ("pipes", "uilleann"),
               "chanter in D: D4 to D6 (the regulators can chord)"),
    Instrument("bagpipe", 109, 67, 81, 1.0, 0.0, "reed", True, ("bagpipes", "highland-pipes"),
               "Highland pipe chanter: low G (G4) to high A (A5), written"),
    Instrument("accordion", 21, 52, 93, 0.92, 0.5, "reed", False, ("melodeon", "button-accordion"),
               "two-row B/C button accordion or melodeon: E3 to A6"),
    Instrument("concertina", 23, 52, 93, 0.90, 0.5, "reed", False, (),
               "30-button Anglo concertina in C/G: E3 to A6"),
    Instrument("harmonica", 22, 60, 96, 0.90, 0.7, "reed", False, (), "10-hole diatonic harmonica in C: C4 to C7"),
    Instrument("mandolin", 25, 55, 91, 1.0, 1.0, "plucked", False, (), "G3 to G6 (17th fret of the E string)"),
    Instrument("banjo", 105, 55, 91, 1.0, 1.0, "plucked", False, ("tenor-banjo",),
               "Irish tenor banjo, GDAE, written like the mandolin (sounds an octave lower): G3 to G6"),
    Instrument("bouzouki", 25, 55, 93, 1.0, 1.0, "plucked", False, (),
               "Irish bouzouki, GDAD, written like the guitar (sounds an octave lower): about G3 to A6"),
    Instrument("guitar", 25, 52, 88, 1.0, 1.0, "plucked", False, (), "written E3 to E6 (sounds an octave lower)"),
    Instrument("harp", 46, 36, 93, 1.0, 1.0, "plucked", False, (), "34-string lever harp: C2 to A6"),
    Instrument("dulcimer", 15, 50, 88, 1.0, 1.0, "struck", False, (), "hammered dulcimer: about D3 to E6"),
    Instrument("piano", 0, 21, 108, 0.90, 1.2, "struck", False, (), "A0 to C8"),
    Instrument("harpsichord", 6, 29, 89, 0.95, 0.0, "plucked", False, (), "five octaves, F1 to F6"),
    Instrument("organ", 19, 36, 96, 1.0, 0.0, "reed", False, (), "a 61-note manual: C2 to C7"),
    Instrument("clarinet", 71, 52, 96, 0.90, 0.8, "reed", True, (), "B-flat clarinet, written E3 to C7"),
    Instrument("oboe", 68, 58, 93, 0.90, 0.8, "reed", True, (), "B-flat3 to A6"),
)}
# Every name an option takes (canonical names and aliases) -> its instrument.
INSTRUMENT_NAMES: dict[str, Instrument] = {name: instrument for instrument in INSTRUMENTS.values()
                                           for name in (instrument.name, *instrument.aliases)}


def find_instrument(name: str) -> Instrument | None:
    """The instrument called ``name`` (any case; spaces or underscores for hyphens; an alias such
    as ``violin``), or None."""
    return INSTRUMENT_NAMES.get(str(name).strip().lower().replace(" ", "-").replace("_", "-"))


# ---------------------------------------------------------------------------------------------
# Output formats


@dataclass(frozen=True)
class Format:
    """A file format folkrnn writes, named by its file suffix."""

    name: str  # as --format takes it, and the file suffix without its dot ("mid")
    description: str  # what the file holds, for help texts
    aliases: tuple[str, ...] = ()  # other suffixes written the same way ("midi")
    media_type: str | None = None  # as a web page downloads it (None: folkrnn serve offers no download)


FORMATS: dict[str, Format] = {fmt.name: fmt for fmt in (
    Format("abc", "ABC notation", (), "text/vnd.abc; charset=utf-8"),
    Format("mid", "MIDI, played expressively", ("midi",), "audio/midi"),
    Format("svg", "sheet music", (), "image/svg+xml"),
    Format("musicxml", "MusicXML, for notation programs", ("xml",), "application/vnd.recordare.musicxml+xml"),
    Format("wav", "audio"),
    Format("pdf", "sheet music to print; generate: one tunebook, tunes.pdf"),
)}

# What compose writes unless told otherwise, and generate (its tunebook, and a MIDI file a tune).
COMPOSE_FORMATS: tuple[str, ...] = ("abc", "mid", "svg", "musicxml")
GENERATE_FORMATS: tuple[str, ...] = ("abc", "mid")


def find_format(name: str) -> str | None:
    """The format a name or suffix means (``".midi"`` -> ``"mid"``; any case), or None."""
    wanted = str(name).strip().lower().lstrip(".")
    for fmt in FORMATS.values():
        if wanted == fmt.name or wanted in fmt.aliases:
            return fmt.name
    return None


# ---------------------------------------------------------------------------------------------
# Paper sizes of the PDF


@dataclass(frozen=True)
class Paper:
    """A page size for printed sheet music."""

    name: str  # as --paper takes it
    width_mm: float
    height_mm: float


PAPERS: dict[str, Paper] = {paper.name: paper for paper in (
    Paper("a4", 210.0, 297.0),
    Paper("letter", 215.9, 279.4),  # 8.5 x 11 inches
)}


# ---------------------------------------------------------------------------------------------
# The music21 collections a corpus is built from by name (folkrnn.corpus reads them)


@dataclass(frozen=True)
class Collection:
    """One of music21's shipped ABC collections, with where it comes from and on what terms."""

    name: str  # the folder under music21/corpus/
    title: str  # what it is, in a few words
    licence: str  # its own licence note, from its licence file and the tunes' own headers
    licence_files: tuple[str, ...]  # the licence files the note was read from (relative to music21/)
    default: bool = False  # in the default corpus (``None`` or ``"default"``)


MUSIC21_TERMS = (
    "music21 corpus terms (music21/corpus/license.txt): distributed with music21 with the "
    "permission of the encoders, believed out of copyright in the United States or licensed for "
    "use; some encodings may not be used commercially; use within the licence of each repertory."
)

# Every collection folkrnn knows by name, the default corpus in its order first (the order decides
# which of two duplicate tunes is kept). The default corpus is dance music: Essen (mostly German
# and Chinese songs, and non-commercial only) is there by name, `--source essenFolksong`.
COLLECTIONS: tuple[Collection, ...] = (
    Collection(
        "oneills1850",
        "O'Neill's Music of Ireland (1903): airs, reels, jigs, hornpipes; ABC by Norbert Paap",
        "Tunes from a 1903 book (public domain); transcriptions by Norbert Paap and others as "
        "named in each tune's Z: field.",
        ("corpus/license.txt",),
        default=True,
    ),
    Collection(
        "ryansMammoth",
        "Ryan's Mammoth Collection (1883) / Cole's 1000 Fiddle Tunes, one tune per file",
        "Tunes from an 1883 book (public domain); transcriptions contributed by Ray Davies, "
        "John Chambers and others as named in each tune's Z: field.",
        ("corpus/license.txt",),
        default=True,
    ),
    Collection(
        "airdsAirs",
        "Aird's Selection of Scotch, English, Irish and Foreign Airs (1778-1803); ABC by Jack Campin",
        "Tunes from books printed 1778-1803 (public domain); transcriptions by Jack Campin, 2009 "
        "(Z: field of every tune).",
        ("corpus/license.txt",),
        default=True,
    ),
    Collection(
        "miscFolk",
        "Miscellaneous: Colonial and Civil War American fife music, Northumbrian Minstrelsy",
        "Old tunes (public domain); ABC tidied by its encoders as described in each file's "
        "comments.",
        ("corpus/license.txt",),
        default=True,
    ),
    Collection(
        "essenFolksong",
        "Essen Folksong Collection: European and Chinese folk songs (EsAC), ABC by Seymour Schlien",
        "Non-commercial only. Legal status unclear (many encoders); encoded under Helmut "
        "Schaffrath, taken over by Ewa Dahlig-Turek, who permits non-commercial distribution and "
        "use with music21; ABC encodings by Seymour Schlien, distributed with music21 by his "
        "permission (music21/corpus/essenFolksong/license.txt).",
        ("corpus/license.txt", "corpus/essenFolksong/license.txt"),
    ),
)
DEFAULT_COLLECTIONS: tuple[Collection, ...] = tuple(c for c in COLLECTIONS if c.default)
