"""Composing: a model and some options in, finished tunes out as files (``compose`` and ``generate``).

``compose`` makes one tune and writes ``<out>/<slug>.abc|.mid|.svg|.musicxml[.wav|.pdf]``;
``generate`` makes many at once and writes ``<out>/tunes.abc`` (a tunebook), one MIDI file per
tune (``tunes.pdf`` with ``pdf``) and ``summary.json``. Both use :mod:`folkrnn.sample` on the
NumPy engine (torch is never imported), check every tune with :mod:`folkrnn.validate`, and write
every file atomically.

**Titles and dances.** The model reads the title (as folk-rnn v1 did), so the title shapes the
tune; a title that names a dance ("The Kesh Jig", "... Slip Jig", "The Reel of Tulloch")
also fixes R: to that rhythm when the model knows it and ``rhythm`` is not given
(:func:`rhythm_of_title`). The dance, given as ``rhythm`` or named by the title, fixes M: to one of
the meters it is written in (:data:`folkrnn.tables.DANCES`; the model chooses among them) when
``meter`` is not given: ``--rhythm reel`` gives a reel in 2/2 or 4/4. The model alone, reading
the title and R:, wrote the usual meter for only 74% of jigs, 70% of hornpipes and 0% of waltzes
(the default corpus has 12 waltzes and no polkas), and ``--rhythm reel`` gave 46% of reels in
2/4, so the dance is taken at its word.

**Keys.** The model writes in C (keeping the mode). The output is moved to ``key`` or, without
one, to the usual tonic of the tune's mode and rhythm (:func:`folkrnn.tables.usual_tonic`): the
keys that the session repertoire mostly uses, D and G major, E minor, A dorian, D mixolydian. Of
the octaves the tonic can move to, the one that keeps more notes inside the fiddle's range
(:data:`folkrnn.tables.INSTRUMENTS`, G3-B6) wins, then the one with fewer notes above E6, then
the one whose median is nearest C5 (the middle of the fiddle tunes' register), then the smaller
move (:func:`_octave_for`).

**Reproducible.** Every ABC file carries the command that makes the tune again (model, seed,
temperature and options) on a ``% folkrnn compose ...`` comment line, below a short N: line naming
folkrnn, the model and the seed (:func:`provenance`), and tune i of ``generate`` is the tune
``compose`` makes from the seed recorded for it. A seed that cannot make a whole tune is followed by the next one
(``compose``: seed + 1; ``generate``: the next seed no tune of the batch uses); what failed and
why is reported.

**Nothing lost.** Nothing is overwritten without ``force``. ``compose`` writes all its files or
none. ``generate`` writes each tune's files as the tune is finished, and the tunebook and the
summary at the end, also when interrupted (Ctrl-C) or when a write fails (a full disk): the
tunes finished by then are kept, in whole files.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shlex
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path

from folkrnn import __version__, tables
from folkrnn.abc import Normalisation, detokenize, parse, tokenize
from folkrnn.abc.grammar import parse_form
from folkrnn.abc.lexer import parse_key
from folkrnn.abc.tokens import NOTE_TOKEN, Transposer, named_dance, shift_to_c
from folkrnn.checkpoint import MODEL_FILE, load_model, shipped_model
from folkrnn.errors import AbcError, FolkError, ModelError, OptionError
from folkrnn.files import EXISTS, exists, folder_lock, prepare_folder, publish, write_atomic
from folkrnn.limits import check_count
from folkrnn.midi import q_field
from folkrnn.music import LETTER_SEMITONES, Key, Tune, parse_meter
from folkrnn.render import check_paper, find_soundfont, render, slug, tunes_to_pdf
from folkrnn.sample import Conditions, SampleConfig, Sampled, default_workers, sample_tunes
from folkrnn.tables import (
    COMPOSE_FORMATS,
    DANCES,
    INSTRUMENTS,
    MAX_SEED,
    MODES,
    find_format,
    find_instrument,
    usual_tonic,
)
from folkrnn.validate import COPY_THRESHOLD, NoveltyIndex, validate_tune

__all__ = [
    "USUAL_TONICS", "MODE_CODES", "FORMATS", "ComposeOptions", "Composer",
    "Composed", "GenerateResult", "load_composer", "compose", "generate", "usual_tonic",
    "transpose_tokens", "prime_tokens", "parse_key_option", "parse_formats", "provenance",
    "remake_command", "command_of", "tempo_field", "conditions_of", "random_seed", "write_formats",
]

FORMATS = tuple(tables.FORMATS)  # the formats compose and generate write (folkrnn.tables.FORMATS)

# Mode names as the options take them -> the model's K: mode (folkrnn.tables.MODES).
MODE_CODES = tables.MODE_WORDS

# The usual tonic per mode, and per rhythm where it differs ("default" otherwise): a view of
# folkrnn.tables.DANCES, whose usual_tonic compose uses.
USUAL_TONICS: dict[str, dict[str, str]] = {
    code: {"default": mode.tonic, **{rhythm: dance.tonics[code] for rhythm, dance in DANCES.items()
                                     if dance.tonics[code] != mode.tonic}}
    for code, mode in MODES.items()
}


def parse_key_option(text: str) -> tuple[str, str | None]:
    """``--key`` -> (tonic, mode or None): ``"D"``, ``"F#"``, ``"Bb"``, ``"Ador"``, ``"E minor"``."""
    match = re.fullmatch(r"\s*([A-Ga-g])([#b\u266f\u266d]?)\s*([A-Za-z]*)\s*", text or "")
    if not match:
        raise OptionError(f"--key {text!r} is not a key: write a tonic (D, F#, Bb), optionally "
                          "with a mode (Ador, E minor)")
    accidental = {"\u266f": "#", "\u266d": "b"}.get(match.group(2), match.group(2))
    tonic = match.group(1).upper() + accidental
    word = match.group(3).lower()
    if not word:
        return tonic, None
    mode = MODE_CODES.get(word) or MODE_CODES.get(word[:3])
    if mode is None:
        raise OptionError(f"--key {text!r}: unknown mode {match.group(3)!r}")
    return tonic, mode


def parse_formats(text: str | list[str]) -> list[str]:
    """``"abc,mid,svg"`` -> ``["abc", "mid", "svg"]``, checked; OptionError for an unknown one."""
    items = text if isinstance(text, list) else str(text).split(",")
    out = []
    for item in items:
        if not item.strip().lstrip("."):
            continue
        name = find_format(item)
        if name is None:
            raise OptionError(f"--format: unknown format {item.strip()!r}; choose from {', '.join(FORMATS)}")
        if name not in out:
            out.append(name)
    if not out:
        raise OptionError("--format names no format")
    return out


# ---------------------------------------------------------------------------------------------
# Options


@dataclass
class ComposeOptions:
    """Everything ``compose`` and ``generate`` take (the CLI's options, one field each)."""

    title: str | None = None  # the title the model reads; None: the model writes one
    rhythm: str | None = None  # R: (reel, jig, ...); None: the model's choice
    meter: str | None = None  # M: (6/8); None: the model's choice
    mode: str | None = None  # major, minor, dorian, ... (or maj, min, dor ...); None: the model's
    key: str | None = None  # the key to write the tune in; None: the usual tonic of mode and rhythm
    form: str | None = None  # AABB, AB, ABC, AABBCC, ... or free; None: the usual form of the tune's dance
    part_bars: int | None = None  # bars in each part; None: the dance's (8 for repeated parts, 16 for others)
    prime: str | None = None  # ABC (or the model's tokens) the tune begins with
    seed: int | None = None  # None: a random seed, printed and recorded
    temperature: float = 1.0  # > 0
    top_k: int = 0  # 0: off
    top_p: float = SampleConfig.top_p  # in (0, 1]
    strategy: str = "sample"  # sample, greedy or beam
    beam_width: int = 4  # beam search width
    constrain: bool = True  # full bars, balanced repeats, closing bar
    compass: int = 24  # semitones from the lowest note to the highest, at most (0: any)
    lookback: float = SampleConfig.lookback  # the copy prior on what two bars, a phrase or a part ago offers
    first_rest: float = SampleConfig.first_rest  # taken from a rest's logit until the tune has one
    model: str | None = None  # model directory; None: the shipped default
    instrument: str = "fiddle"  # MIDI (and WAV) instrument
    tempo: float | None = None  # beats per minute (a dotted quarter in 6/8, 9/8, 12/8, else a quarter): Q:
    soundfont: str | None = None  # a General MIDI SoundFont the WAV is played with (None: found, else built in)
    formats: list[str] = field(default_factory=lambda: list(COMPOSE_FORMATS))
    paper: str = "a4"  # the PDF's page size (folkrnn.tables.PAPERS)
    out: str = "outputs"  # the folder written into
    force: bool = False  # overwrite files that exist

    def sample_config(self) -> SampleConfig:
        return SampleConfig(strategy=self.strategy, temperature=self.temperature, top_k=self.top_k,
                            top_p=self.top_p, beam_width=self.beam_width, constrain=self.constrain,
                            compass=self.compass, lookback=self.lookback, first_rest=self.first_rest)

    def check(self) -> ComposeOptions:
        """Raise OptionError for any option out of its range; return self (normalised)."""
        self.sample_config().check()
        if self.seed is not None and not 0 <= self.seed <= MAX_SEED:
            raise OptionError(f"--seed must be between 0 and {MAX_SEED}, not {self.seed}")
        if self.mode is not None:
            code = MODE_CODES.get(str(self.mode).lower())
            if code is None:
                raise OptionError(f"--mode {self.mode!r}: choose one of "
                                  f"{', '.join(mode.name for mode in MODES.values())}")
            self.mode = code
        if self.key is not None:
            tonic, mode = parse_key_option(self.key)
            if mode is not None:
                if self.mode is not None and self.mode != mode:
                    raise OptionError(f"--key {self.key} and --mode {self.mode} disagree")
                self.mode = mode
        if self.meter is not None:
            try:
                meter = parse_meter(self.meter)
            except ValueError as error:
                raise OptionError(f"--meter {self.meter!r}: {error}") from None
            if meter.free:
                raise OptionError("--meter must be a time signature (6/8, 4/4, ...), not free meter")
            self.meter = str(meter)
        if self.title is not None:
            self.title = printable_title(self.title)  # before the model reads it or a file holds it
        if self.title is not None and not self.title.strip():
            self.title = None
        if self.form is not None:
            form = parse_form(self.form, self.part_bars)
            self.form = form.label if form is not None else "free"
        elif self.part_bars is not None and not 1 <= self.part_bars <= 64:
            raise OptionError(f"--part-bars must be between 1 and 64, not {self.part_bars}")
        self.formats = parse_formats(self.formats)
        self.paper = check_paper(self.paper)
        if find_instrument(self.instrument) is None:
            raise OptionError(f"--instrument {self.instrument!r}: choose one of {', '.join(INSTRUMENTS)}")
        if self.tempo is not None and not 20 <= self.tempo <= 400:
            raise OptionError(f"--tempo must be between 20 and 400 beats per minute, not {self.tempo:g}")
        if self.soundfont is not None:
            self.soundfont = str(self.soundfont)
            find_soundfont(self.soundfont)  # it exists, and FluidSynth is there to play it
        return self


# ---------------------------------------------------------------------------------------------
# The model


@dataclass
class Composer:
    """A loaded ABC model, ready to sample: its engine, vocabulary and identity."""

    path: Path  # the model directory
    label: str  # how N: lines name it ("default" or the path given)
    engine: object  # NumpyLSTM
    vocabulary: object  # Vocabulary
    settings: dict  # the normalisation it was trained with
    training: dict  # its training record
    digest: str = ""  # sha256 of model.safetensors, first 12 hex digits

    @property
    def identity(self) -> str:
        return f"{self.label} (sha256 {self.digest})" if self.digest else self.label


_COMPOSERS: dict[tuple, Composer] = {}


def load_composer(model: str | os.PathLike | None = None) -> Composer:
    """Load an ABC model for composing (cached per process). ``None``: the shipped default.

    Raises
    ------
    ModelError
        No default model installed, an unknown path, a damaged model, or a model of another kind.
    """
    if model is None:
        path, label = shipped_model("abc"), "default"
    else:
        path, label = Path(model), str(model)
    weights = (path if path.is_dir() else path.parent) / MODEL_FILE
    stamp = (str(path.resolve()), weights.stat().st_mtime_ns if weights.exists() else 0)
    cached = _COMPOSERS.get(stamp)
    if cached is not None:
        return cached
    checkpoint = load_model(path)
    if checkpoint.encoding != "abc":
        raise ModelError(f"{path} is a {checkpoint.encoding.upper()}-event model (Performance RNN); "
                         "compose and generate need an ABC model")
    digest = hashlib.sha256()
    with open(checkpoint.path / MODEL_FILE, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            digest.update(chunk)
    composer = Composer(path=checkpoint.path, label=label, engine=checkpoint.engine(),
                        vocabulary=checkpoint.vocabulary, settings=dict(checkpoint.encoding_params),
                        training=dict(checkpoint.training), digest=digest.hexdigest()[:12])
    _COMPOSERS[stamp] = composer
    return composer


# ---------------------------------------------------------------------------------------------
# The prime


def prime_tokens(text: str, vocabulary, *, key: str | None = None,
                 mode: str | None = None) -> tuple[list[str], dict[str, str]]:
    """``--prime`` -> (body tokens, header values it sets: "R", "M", "K" mode).

    The prime is either the model's own tokens separated by spaces (folk-rnn's form, e.g.
    ``M:4/4 K:Cmaj |: G``) or ABC: header fields (``M:6/8``, ``K:D``, ``R:jig``) then music.
    ABC is read in its own K:, else in ``key``, else in C, and moved to C as the model reads.

    Raises
    ------
    AbcError
        The prime is not ABC.
    OptionError
        A token the model does not know (with the nearest it does), or a bad header field.
    """
    pieces = text.split()
    header: dict[str, str] = {}
    tokens_given = pieces and all(piece in vocabulary for piece in pieces)
    if tokens_given and (key is None or any(piece.startswith("K:") for piece in pieces)):
        body = []
        for piece in pieces:
            if len(piece) > 2 and piece[1] == ":" and piece[0] in "RMK" and not body:
                header[piece[0]] = piece[3:] if piece[0] == "K" else piece[2:]
            else:
                body.append(piece)
        return body, header
    fields: dict[str, str] = {}
    rest = text.strip()
    modes = "|".join(sorted(MODE_CODES, key=len, reverse=True))
    while True:
        match = re.match(r"([A-Za-z]):", rest)
        if not match or match.group(1) not in "XTRMLKNCOQ":
            break
        letter, rest = match.group(1), rest[2:]
        if letter == "K":  # a key, and a mode word after a space (K:D dorian)
            value = re.match(rf"\s*(\S+)(\s+(?:{modes})\b)?", rest, re.IGNORECASE)
        elif letter in "ML":
            value = re.match(r"\s*(\S+)()", rest)
        else:  # up to the end of the line or the next field
            value = re.match(r"([^\n]*?)()(?=\s+[A-Za-z]:|\n|$)", rest)
        if value is None:
            break
        fields[letter] = (value.group(1) + (value.group(2) or "")).strip()
        rest = rest[value.end():].lstrip()
        if letter == "K":
            break
    if not rest.strip():
        raise AbcError("the prime has no music in it")
    for word in _unknown_words(rest):  # the ABC reader would drop it without a word (N, O, T: decorations)
        nearest = ", ".join(repr(t) for t in vocabulary.nearest(word))
        raise OptionError(f"--prime: {word!r} is neither ABC music nor a token the model knows (nearest: {nearest})")
    meter = fields.get("M", "4/4")
    written_key = fields.get("K")
    if not written_key:
        tonic = parse_key_option(key)[0] if key else "C"
        written_key = tonic + (mode or "maj")
    lines = ["X:1", "T:prime", f"M:{meter}", f"L:{fields.get('L', '1/8')}"]
    if "R" in fields:
        lines.append(f"R:{fields['R']}")
    lines += [f"K:{written_key}", rest]
    try:
        tokens = tokenize("\n".join(lines) + "\n", Normalisation(detect_mode=False, title=False))
    except FolkError as error:
        raise AbcError(f"the prime is not ABC: {error}") from None
    position = next(i for i, token in enumerate(tokens) if token.startswith("K:"))
    if "R" in fields:
        header["R"] = next(t for t in tokens if t.startswith("R:"))[2:]
    if "M" in fields:
        header["M"] = next(t for t in tokens if t.startswith("M:"))[2:]
    if fields.get("K"):
        header["K"] = tokens[position][3:]
        try:
            tonic = parse_key(fields["K"])[0].tonic
        except (ValueError, FolkError):
            tonic = None
        if tonic:
            header["tonic"] = tonic
    body = [token for token in tokens[position + 1:] if token != "</s>"]
    for token in body + [f"{k}:{('C' if k == 'K' else '') + v}" for k, v in header.items() if k in "RMK"]:
        if token not in vocabulary:
            nearest = ", ".join(repr(t) for t in vocabulary.nearest(token))
            raise OptionError(f"--prime: the model knows no token {token!r} (nearest: {nearest})")
    return body, header


# ABC music letters: notes, rests, the spacer; the other letters are (single-letter) decorations
_NOT_MUSIC = re.compile(r"[^\W\dA-Ga-gzZxy_]{2,}")
# what may hold any letters: strings, !decorations!, +decorations+, inline fields, comments
_QUOTED = re.compile(r'"[^"]*"|![^!\n]*!|\+[^+\n]*\+|\[[A-Za-z]:[^\]]*\]|%[^\n]*')


def _unknown_words(music: str) -> list[str]:
    """The words of a prime's music that no ABC reader takes as music: a run of two or more
    letters that are neither notes nor rests (``NOTATOKEN``, ``hello``). ABC reads H-W as
    decorations, so such text would be dropped without a word."""
    return [word for word in _QUOTED.sub(" ", music).split() if _NOT_MUSIC.search(word)]


# ---------------------------------------------------------------------------------------------
# Tokens -> the tune in its key


_ACCIDENTALS = {"^^": 2, "^": 1, "__": -2, "_": -1, "=": 0}


def _step_of(token: str) -> tuple[int | None, int] | None:
    match = NOTE_TOKEN.match(token)
    if not match:
        return None
    letter = match.group(2)
    octave = (1 if letter.islower() else 0) + match.group(3).count("'") - match.group(3).count(",")
    return _ACCIDENTALS.get(match.group(1)), octave * 7 + "CDEFGAB".index(letter.upper())


def transpose_tokens(tokens: list[str], tonic: str, *, octave: int = 0) -> list[str]:
    """Move a tune's tokens from C to ``tonic`` (the mode kept), by the smallest interval, then
    ``octave`` octaves. Spellings follow the key: the tokenizer's own transposer, run backwards."""
    steps, semitones = shift_to_c(tonic)
    transposer = Transposer(-steps + 7 * octave, -semitones + 12 * octave)
    body = _body_start(tokens)
    out = list(tokens[:body])  # the title's letters are not notes
    try:
        for token in tokens[body:]:
            if token.startswith("K:") or (token.startswith("[K:") and token.endswith("]")):
                value = token[2:] if token.startswith("K:") else token[3:-1]
                new_tonic, mode = transposer.set_key(Key(value[:-3], value[-3:]))
                out.append(f"K:{new_tonic}{mode}" if token.startswith("K:") else f"[K:{new_tonic}{mode}]")
                continue
            parsed = _step_of(token)
            if parsed is None:
                out.append(token)
                continue
            acc, step = parsed
            out.append(transposer.note(acc, step, False))
    except (ValueError, KeyError) as error:
        raise OptionError(f"cannot write this tune in {tonic}: {error}") from None
    return out


def _body_start(tokens: list[str]) -> int:
    """Where the body begins: after the header's ``K:`` token (the title's letters come before
    it and must not be read as notes); 0 for a body alone."""
    for index, token in enumerate(tokens):
        if token.startswith("K:"):
            return index
    return 0


def _pitches(tokens: list[str]) -> list[int]:
    """Rough pitches of the note tokens (the written accidental, else natural): for the range."""
    out = []
    for token in tokens[_body_start(tokens):]:
        parsed = _step_of(token)
        if parsed is not None:
            acc, step = parsed
            octave, index = divmod(step, 7)
            out.append(60 + 12 * octave + LETTER_SEMITONES["CDEFGAB"[index]] + (acc or 0))
    return out


def _octave_for(tokens: list[str], tonic: str) -> int:
    """Which octave of the tonic keeps the tune most inside the fiddle's range, then most below the
    highest note its tunes usually reach (E6, third position), then with its median nearest the
    middle of the fiddle tunes' register (C5: a tune the model wrote high, B4 to E6 in E minor,
    is read an octave down, as a fiddler would play it), then moves it least."""
    _, semitones = shift_to_c(tonic)
    pitches = _pitches(tokens)
    fiddle = INSTRUMENTS["fiddle"]
    low, high, usual = fiddle.lowest, fiddle.highest, fiddle.usual_highest or fiddle.highest
    middle = sorted(pitches)[len(pitches) // 2] if pitches and fiddle.usual_middle else None
    best = None
    for octave in (0, 1, -1):
        shift = -semitones + 12 * octave
        outside = sum(not low <= p + shift <= high for p in pitches)
        off = abs(middle + shift - fiddle.usual_middle) if middle is not None else 0
        rank = (outside, sum(p + shift > usual for p in pitches), off, abs(shift), -shift)
        if best is None or rank < best[0]:
            best = (rank, octave)
    return best[1]


def _header_value(tokens: list[str], prefix: str) -> str:
    return next((t[len(prefix):] for t in tokens if t.startswith(prefix)), "")


def printable_title(text: str) -> str:
    """A title as typed, as text every file can hold: bytes that were not UTF-8 (which Python
    hands over as lone surrogates) become U+FFFD, control characters (BEL, ESC, tab, newline)
    spaces, format characters (bidi overrides, zero-width spaces) nothing, and runs of spaces one."""
    import unicodedata

    if any("\ud800" <= char <= "\udfff" for char in text):
        kept = "".join("\ufffd" if "\ud800" <= char <= "\udfff" and not "\udc80" <= char <= "\udcff"
                       else char for char in text)  # a lone surrogate that is no escaped byte
        text = kept.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    text = "".join(" " if unicodedata.category(char) == "Cc" else "" if unicodedata.category(char) == "Cf"
                   else char for char in text)
    return " ".join(text.split())


def _clean_title(text: str) -> str:
    """A T: value no ABC reader mistakes: no comment sign, no leading punctuation."""
    text = " ".join(text.replace("%", " percent ").replace("\\", " ").split())
    return text.lstrip(":|[]") or "Untitled"


def provenance(options: ComposeOptions, seed: int, composer: Composer) -> list[str]:
    """Two header lines: an N: line naming what made the tune (folkrnn, the model, the seed), short
    enough that abcjs, which prints N:, does not run it off the page; then a comment, which no
    ABC program prints, with the whole command that makes the tune again (``% folkrnn compose
    --seed 7 ...``: :func:`command_of` reads it back)."""
    # (no % in the N: line: abc2midi and abcm2ps would read the rest of it as a comment)
    # the model by its folder's name (the command below has its path) and the digest of its weights
    name = composer.label if composer.label == "default" else Path(composer.label).name or composer.label
    model = f"{name} (sha256 {composer.digest})" if composer.digest else name
    note = f"N:folkrnn {__version__}, model {model}, seed {seed}: the next line remakes it"
    return [note.replace("%", " percent "), f"% {remake_command(options, seed)}"]


def tempo_field(rhythm: str, meter: str, tempo: float | None = None) -> str:
    """The Q: line of a tune of this R: and M:: ``tempo`` beats per minute, else its dance's
    (``folkrnn.midi.tune_tempo``), so that abc2midi plays it at the tempo of our own MIDI."""
    try:
        parsed = parse_meter(meter) if meter else parse_meter("4/4")
    except ValueError:
        parsed = parse_meter("4/4")
    return f"Q:{q_field(Tune(fields=[('R', rhythm)], meter=parsed), tempo)}"


def command_of(abc: str) -> str | None:
    """The command that makes a composed tune again, read from its ABC text (see :func:`provenance`;
    a tune written before then carried it in its N: line). None when there is none."""
    for line in abc.split("\n"):
        for prefix in ("% folkrnn compose ", "N:folkrnn compose "):
            if line.startswith(prefix):
                return line[len(prefix) - len("folkrnn compose "):].split("; model ")[0].strip()
        if line.startswith("K:"):
            break
    return None


def remake_command(options: ComposeOptions, seed: int) -> str:
    """``folkrnn compose --seed 7 --temperature 1 ...``: the options that make this tune, the
    defaults included (so a later change of a default does not change what the command makes)."""
    parts = ["folkrnn", "compose", "--seed", str(seed)]
    config = options.sample_config()
    parts += ["--temperature", f"{config.temperature:g}", "--strategy", config.strategy]
    if config.strategy == "sample":
        parts += ["--top-k", str(config.top_k), "--top-p", f"{config.top_p:g}"]
    if config.strategy == "beam":
        parts += ["--beam-width", str(config.beam_width)]
    if not config.constrain:
        parts.append("--no-constrain")
    elif config.compass != SampleConfig.compass:
        parts += ["--compass", str(config.compass)]
    if config.constrain:  # the calibrated priors too: a later default must not change the tune
        parts += ["--lookback", f"{config.lookback:g}", "--first-rest", f"{config.first_rest:g}"]
    for flag, value in (("--title", options.title), ("--rhythm", options.rhythm),
                        ("--meter", options.meter),
                        ("--mode", MODES[options.mode].name if options.mode in MODES else options.mode),
                        ("--key", options.key), ("--form", options.form), ("--part-bars", options.part_bars),
                        ("--prime", options.prime)):
        if value is not None:
            parts += [flag, " ".join(str(value).split())]
    if options.tempo is not None:
        parts += ["--tempo", f"{options.tempo:g}"]
    if options.model is not None:
        parts += ["--model", str(options.model)]
    return shlex.join(parts)  # on a comment line: a % in it starts nothing


@dataclass
class Composed:
    """One finished tune."""

    index: int  # its place in the request (0-based)
    seed: int  # the seed that made it
    tokens: list[str]  # the model's tokens (in C)
    abc: str  # the ABC text, in its key, with the N: line
    tune: object  # the parsed Tune
    report: object  # the validator's Report
    slug: str  # file name stem
    log_prob: float = 0.0
    failures: list[tuple[int, str]] = field(default_factory=list)  # seeds that failed first, and why
    files: list[Path] = field(default_factory=list)  # what was written for it
    warnings: list[str] = field(default_factory=list)  # for the person (left-out title letters ...)

    @property
    def title(self) -> str:
        return self.tune.title

    def summary(self) -> dict:
        report = self.report
        return {
            "x": self.index + 1, "title": self.title, "seed": self.seed,
            "rhythm": self.tune.rhythm, "meter": str(self.tune.meter),
            "key": f"{self.tune.key.tonic}{self.tune.key.mode}", "tokens": len(self.tokens),
            "log_prob": round(self.log_prob, 3), "valid": report.valid,
            "warnings": [issue.code for issue in report.warnings],
            "sections": report.structure.get("sections", ""),
            "form": report.form,
            "nearest": report.nearest.to_dict() if report.nearest else None,
            "probable_copy": any(issue.code == "probable-copy" for issue in report.warnings + report.errors),
            "retried": [{"seed": seed, "reason": reason} for seed, reason in self.failures],
            "files": [path.name for path in self.files],
        }


def _finish(sampled: Sampled, options: ComposeOptions, composer: Composer, *, number: int = 1,
            novelty=None, from_title: tuple[str, ...] = ()) -> tuple[Composed | None, str]:
    """Sampled tokens -> the tune in its key, checked. Returns (tune, "") or (None, why not).
    ``from_title``: the header letters the title's dance set (said in a note)."""
    tokens = sampled.tokens
    mode = _header_value(tokens, "K:C") or "maj"
    rhythm = _header_value(tokens, "R:")
    if options.key:
        tonic = parse_key_option(options.key)[0]
    else:
        tonic = usual_tonic(mode, rhythm)
    try:
        moved = transpose_tokens(tokens, tonic, octave=_octave_for(tokens, tonic))
        text = detokenize(moved, number=number, short_keys=True)
    except FolkError as error:
        return None, f"cannot write the tune: {error}"
    except (ValueError, IndexError, KeyError) as error:  # unconstrained tokens need not be ABC
        return None, f"the tokens are not a tune ({type(error).__name__}: {error})"
    lines = text.rstrip("\n").split("\n")
    title_at = next(i for i, line in enumerate(lines) if line.startswith("T:"))
    shown = options.title if options.title is not None else lines[title_at][2:]
    lines[title_at] = f"T:{_clean_title(shown)}"
    after = title_at + 1 + (1 if len(lines) > title_at + 1 and lines[title_at + 1].startswith("R:") else 0)
    lines[after:after] = provenance(options, sampled.seed, composer)
    key_at = next(i for i, line in enumerate(lines) if line.startswith("K:"))
    lines.insert(key_at, tempo_field(rhythm, _header_value(tokens, "M:"), options.tempo))
    text = "\n".join(lines) + "\n"
    try:
        tune = parse(text)
    except FolkError as error:
        return None, f"the tune does not read back: {error}"
    report = validate_tune(text, tokens=tokens, novelty=novelty)
    if not report.valid and options.constrain:
        return None, "the validator found " + "; ".join(str(issue) for issue in report.errors[:2])
    if not tune.notes:
        return None, "the tune has no notes"
    warnings = list(sampled.title_warnings)
    if from_title:
        flags = {"R": "--rhythm", "M": "--meter"}
        warnings.append("note: " + " and ".join(
            f"{letter}:{_header_value(tokens, letter + ':')} ({flags[letter]} chooses another)"
            for letter in from_title) + " from the title")
    if not report.valid:
        warnings.append("--no-constrain: the validator found " +
                        "; ".join(str(issue) for issue in report.errors[:3]))
    return Composed(index=sampled.index, seed=sampled.seed, tokens=tokens, abc=text, tune=tune,
                    report=report, slug=slug(tune.title, fallback=f"tune-{sampled.seed}"),
                    log_prob=sampled.log_prob, failures=list(sampled.failures),
                    warnings=warnings), ""


def conditions_of(options: ComposeOptions, composer: Composer) -> tuple[Conditions, tuple[str, ...]]:
    """What the sampler is to force, and which header letters ("R", "M") the title's dance set."""
    prime: tuple[str, ...] = ()
    rhythm, meter, mode = options.rhythm, options.meter, options.mode
    if options.prime:
        body, header = prime_tokens(options.prime.replace("\\n", "\n"), composer.vocabulary,
                                    key=options.key, mode=mode)
        if options.key is None and header.get("tonic"):
            options.key = header["tonic"]  # the tune is written in the key its beginning is in
        for letter, flag, given in (("R", "--rhythm", rhythm), ("M", "--meter", meter), ("K", "--mode", mode)):
            if letter in header and given is not None and header[letter] != given and not (
                    letter == "R" and given == "dance" and DANCE_METERS.get(header[letter])):
                raise OptionError(f"--prime sets {letter}:{header[letter]} but {flag} says {given}")
        rhythm = header.get("R", rhythm)
        meter = header.get("M", meter)
        mode = header.get("K", mode)
        prime = tuple(body)
    # A given rhythm (or the prime's) keeps the tune in its dance's meters: the grammar does that
    # for every dance R:. A title naming a dance sets that R:, and its meters with it.
    from_title = []
    if rhythm in (None, "dance") and options.title:
        named = rhythm_of_title(options.title, composer.vocabulary)
        meters = meters_of_title(options.title, composer.vocabulary) if meter is None else None
        from_title += (["R"] if named else []) + (["M"] if meters else [])
        rhythm = named or rhythm
        if named is None:
            meter = meters  # a dance the model has no R: token for: its meters still hold
    return Conditions(title=options.title, rhythm=rhythm, meter=meter, mode=mode, prime=prime,
                      form=options.form, part_bars=options.part_bars), tuple(from_title)


def dance_of_title(title: str) -> str | None:
    """The dance a title names (:func:`folkrnn.abc.tokens.named_dance`): "The Kesh Jig" -> "jig",
    "... Slip Jig" -> "slipjig", "The Reel of Tulloch" -> "reel"; None when it names none."""
    rhythm = named_dance(title)
    return None if rhythm == "other" else rhythm


def rhythm_of_title(title: str, vocabulary) -> str | None:
    """The dance the title names (:func:`dance_of_title`) if the model has its R: token, else None.
    A tune asked for by such a title is given that R:."""
    dance = dance_of_title(title)
    return dance if dance is not None and f"R:{dance}" in vocabulary else None


def meters_of_title(title: str, vocabulary) -> tuple[str, ...] | None:
    """The meters a dance named by the title is written in that the model knows
    (:func:`meters_of_rhythm`); None when the title names no dance."""
    return meters_of_rhythm(dance_of_title(title), vocabulary)


def meters_of_rhythm(rhythm: str | None, vocabulary) -> tuple[str, ...] | None:
    """The meters the dance ``rhythm`` (``"reel"``) is written in (:data:`folkrnn.tables.DANCES`)
    that the model knows; the model chooses among them. None for no dance, a rhythm with no meter
    of its own (air, song, other), or a model that knows none of its meters."""
    meters = tuple(m for m in DANCE_METERS.get(rhythm or "", ()) if f"M:{m}" in vocabulary)
    return meters or None


# The meters each dance is written in (a view of folkrnn.tables.DANCES): a jig in 6/8, a reel in
# cut or common time, a waltz in 3/4 ...
DANCE_METERS = {name: dance.meters for name, dance in DANCES.items() if dance.meters}


def random_seed() -> int:
    return secrets.randbelow(1_000_000)


# ---------------------------------------------------------------------------------------------
# Writing


def write_formats(composed: Composed, folder: Path, stem: str, formats: list[str],
                   options: ComposeOptions, *, overwrite: bool = True, made: list[Path] | None = None) -> list[Path]:
    """Write one tune in each format; each file atomically, and none at all if one fails or the
    run is interrupted (those written are removed). ``overwrite``: replace files that exist (else
    one that exists, or appears meanwhile, is refused: OptionError). Returns the paths written;
    ``made``, a list, holds them as they are written (the caller knows them even when an interruption
    lands as this returns)."""
    written: list[Path] = made if made is not None else []
    try:
        for name in formats:
            path = folder / f"{stem}.{name}"
            if name == "abc":
                write_atomic(path, composed.abc.encode("utf-8"), error=OptionError, overwrite=overwrite)
            elif name == "mid":  # played expressively, humanised by the tune's own seed, at its Q:
                render(composed.tune, path, force=overwrite, instrument=options.instrument, seed=composed.seed)
            elif name == "wav":
                render(composed.tune, path, force=overwrite, instrument=options.instrument, seed=composed.seed,
                       soundfont=options.soundfont)
            elif name == "svg":  # the text too: its slurs, decorations and chord symbols
                render(composed.tune, path, force=overwrite, abc=composed.abc)
            elif name == "pdf":
                render(composed.tune, path, force=overwrite, paper=options.paper, abc=composed.abc)
            elif name == "musicxml":  # the part's instrument; the metronome mark from Q:
                render(composed.tune, path, force=overwrite, instrument=options.instrument)
            else:
                render(composed.tune, path, force=overwrite)
            written.append(path)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return written


def _write_all_or_nothing(composed: Composed, folder: Path, formats: list[str],
                          options: ComposeOptions) -> list[Path]:
    """compose's files: each made under a temporary name, then all given their names. Without
    --force each name is taken only if nothing is there at that moment (folkrnn.files.publish): of
    two composes racing for one name, one writes all its files and the other none."""
    finals = [folder / f"{composed.slug}.{name}" for name in formats]
    if not options.force:
        existing = [path for path in finals if exists(path)]  # a dangling link too
        if existing:
            raise OptionError(EXISTS, file=str(existing[0]))
    stem = f".{composed.slug}.{os.getpid()}-{secrets.token_hex(3)}.part"
    temporaries: list[Path] = []
    published: list[Path] = []
    try:
        temporaries = write_formats(composed, folder, stem, formats, options)
        for temporary, final in zip(temporaries, finals):
            publish(temporary, final, overwrite=options.force)
            published.append(final)
    except BaseException as error:
        if not options.force:  # names this run created, and no other process could have: all or none
            for final in published:
                final.unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise OptionError(f"cannot write: {error.strerror or error}", file=str(folder)) from None
        raise
    finally:
        for temporary in temporaries:
            temporary.unlink(missing_ok=True)
        for leftover in folder.glob(f"{stem}.*"):
            leftover.unlink(missing_ok=True)
    return finals


# ---------------------------------------------------------------------------------------------
# compose


def compose(options: ComposeOptions, *, composer: Composer | None = None, write: bool = True,
            decoder=None) -> Composed:
    """Make one tune and write it in every format asked for (all files, or none).

    Parameters
    ----------
    options
        The options (see :class:`ComposeOptions`); a missing seed is drawn at random and recorded.
    composer
        A model already loaded (default: ``options.model`` or the shipped default).
    write
        Write the files (False: only make the tune).
    decoder
        The decoding loop (None: its own; ``folkrnn serve`` passes the loop its requests share,
        :meth:`folkrnn.decode.shared.SharedLoop.decode`: the same tune).

    Raises
    ------
    FolkError
        Bad options (OptionError), a missing or foreign model (ModelError), a prime that is not
        ABC (AbcError), no seed making a whole tune, or a file that cannot be written.
    """
    options.check()
    composer = composer or load_composer(options.model)
    if options.seed is None:
        options.seed = random_seed()
    config = options.sample_config()
    conditions, from_title = conditions_of(options, composer)
    folder = Path(options.out)
    if write:
        prepare_folder(folder)
    seed = options.seed
    failures: list[tuple[int, str]] = []
    composed = None
    for _ in range(config.attempts):
        sampled = sample_tunes(composer.engine, composer.vocabulary, [seed], config=config,
                               conditions=conditions, decoder=decoder)[0]
        failures += sampled.failures
        if not sampled.ok:
            break
        composed, reason = _finish(sampled, options, composer, from_title=from_title)
        if composed is not None:
            composed.failures = failures
            break
        failures.append((sampled.seed, reason))
        seed = sampled.seed + 1
    if composed is None:
        why = failures[-1][1] if failures else "no reason given"
        raise FolkError(f"no tune could be finished from seed {options.seed} in "
                        f"{len(failures)} tries; the last: {why}")
    if write:
        composed.files = _write_all_or_nothing(composed, folder, options.formats, options)
    return composed


# ---------------------------------------------------------------------------------------------
# generate


@dataclass
class GenerateResult:
    """What ``generate`` made and wrote."""

    tunes: list[Composed]  # in the order of their numbers (only with generate(keep=True))
    rejected: list[dict]  # tunes given up on, with their seeds and reasons
    retried: list[dict]  # seeds that failed before another made the tune
    summary_path: Path | None
    tunebook_path: Path | None
    interrupted: bool = False
    seconds: float = 0.0
    error: FolkError | None = None  # a write that failed (a full disk): what was done is kept
    written: int = 0  # tunes finished, in the tunebook and the summary (kept or not)


class _Finished:
    """The finished tunes of a ``generate``, held on disk, not in memory: each tune's ABC text and
    its summary.json entry go into one unnamed temporary file in the output folder (gone with the
    process, however it ends) as the tune finishes, in whatever order; what stays in memory per
    tune is where they lie and its mode. The end writes them out in the order of their numbers."""

    def __init__(self, folder: Path):
        self.file = tempfile.TemporaryFile(dir=folder)
        self.where: dict[int, tuple[int, int, int, str]] = {}  # index -> (offset, ABC bytes, entry bytes, mode)
        self.end = 0

    def __len__(self) -> int:
        return len(self.where)

    def add(self, composed: Composed) -> None:
        abc = composed.abc.encode("utf-8")
        # the entry as it stands in summary.json's "tunes" list (json.dumps indents it by two there)
        entry = json.dumps(composed.summary(), indent=1, ensure_ascii=False).replace("\n", "\n  ").encode("utf-8")
        self.file.seek(self.end)
        self.file.write(abc + entry)
        self.where[composed.index] = (self.end, len(abc), len(entry), composed.tune.key.mode)
        self.end += len(abc) + len(entry)

    def tunes(self):
        """(index, ABC text, summary entry as written, mode) per tune, in the order of their numbers."""
        for index in sorted(self.where):
            offset, abc, entry, mode = self.where[index]
            self.file.seek(offset)
            data = self.file.read(abc + entry)
            yield index, data[:abc], data[abc:], mode

    def close(self) -> None:
        self.file.close()


def _novelty_for(composer: Composer):
    """The reference corpus for the novelty check: the model's own training corpus, if its card
    names one that can be read here. Returns (index or None, description)."""
    corpus = (composer.training or {}).get("corpus") or {}
    sources = [source for source in corpus.get("sources", []) if isinstance(source, dict)]
    if not sources:
        return None, "not checked: the model's card names no training corpus"
    try:
        from folkrnn.corpus import DEFAULT_COLLECTIONS, build_corpus  # lazily: start-up (novelty only)
        names = [source.get("name") for source in sources]
        default = {collection.name for collection in DEFAULT_COLLECTIONS}
        if set(names) == default:
            built = build_corpus(None)
        else:
            built = build_corpus([source.get("path") if source.get("origin") == "user" else source.get("name")
                                  for source in sources])
        return NoveltyIndex.from_corpus(built), f"the training split of {', '.join(names)}"
    except (FolkError, OSError, ImportError) as error:
        return None, f"not checked: {error}"


def generate(options: ComposeOptions, count: int, *, composer: Composer | None = None,
             progress: Callable[[int, int], None] | None = None, novelty="auto",
             batch_size: int = 1024, workers: int | None = None, keep: bool = True) -> GenerateResult:
    """Make ``count`` tunes at once and write the tunebook, their files and ``summary.json``.

    Tune i is made from seed ``options.seed + i`` (the seed recorded for it, which ``compose
    --seed`` turns into the same tune); a seed that fails is followed by the seed ``count`` above
    it, which no other tune of the batch uses, so the batch is the same whatever order its tunes
    finish in. ``options.formats``: ``abc`` is the tunebook (always written), ``pdf`` the tunebook
    as sheet music (``tunes.pdf``, pages of ``options.paper``), ``mid``, ``svg``, ``musicxml``,
    ``wav`` one file per tune.

    Parameters
    ----------
    options, composer
        As for :func:`compose`.
    count
        How many tunes (at least 1).
    progress
        Called with (tunes finished, count) as tunes finish.
    novelty
        A ``NoveltyIndex`` to compare against, None for no check, or "auto": the model's own
        training corpus when its card names one.
    batch_size
        Tunes per step of the model at most.
    workers
        Processes that sample the tunes (None: one per core, see
        :func:`folkrnn.sample.default_workers`); the tunes do not depend on it.
    keep
        Keep every finished tune (its parsed Tune, tokens, report) in ``result.tunes``. False:
        ``result.tunes`` is empty and memory does not grow with ``count``: each tune's text and
        summary entry wait on disk (:class:`_Finished`) for the tunebook and the summary.

    Returns
    -------
    GenerateResult
        Also when interrupted (Ctrl-C) or when writing fails: the tunes finished by then are in
        the tunebook and the summary; ``interrupted`` or ``error`` says what happened.
    """
    started = time.perf_counter()
    options.check()
    check_count(count, "tunes")  # before the model is loaded or a folder made (folkrnn.limits)
    composer = composer or load_composer(options.model)
    if options.seed is None:
        options.seed = random_seed()
    if workers is not None and not 1 <= workers <= 256:
        raise OptionError(f"--workers must be between 1 and 256, not {workers}")
    config = options.sample_config()
    if options.seed + count * (config.attempts + 1) > MAX_SEED:
        raise OptionError("--seed is too large for this many tunes")
    conditions, from_title = conditions_of(options, composer)
    folder = Path(options.out)
    prepare_folder(folder)
    # one batch at a time in a folder: a second is refused here, at once, not half-way through with
    # its files mixed among the first's; the lock and the spool go at the end, whatever ends it
    with ExitStack() as held:
        held.enter_context(folder_lock(folder))
        tunebook, summary_path = folder / "tunes.abc", folder / "summary.json"
        sheets = folder / "tunes.pdf" if "pdf" in options.formats else None  # the tunebook as sheet music
        if not options.force:
            for path in (tunebook, summary_path, sheets):
                if path is not None and exists(path):  # a dangling link too
                    raise OptionError(EXISTS, file=str(path))
        if novelty == "auto":
            novelty, novelty_source = _novelty_for(composer)
        else:
            novelty_source = "given" if novelty is not None else "not checked"
        per_tune = [name for name in options.formats if name not in ("abc", "pdf")]  # pdf: one tunes.pdf
        width = max(4, len(str(count)))

        try:
            finished_tunes = _Finished(folder)
        except OSError as failure:
            raise OptionError(f"cannot write here: {failure.strerror or failure}", file=str(folder)) from None
        held.callback(finished_tunes.close)
        done: dict[int, Composed] = {}  # with keep
        rejected: list[dict] = []
        retried: list[dict] = []
        history: dict[int, list[tuple[int, str]]] = {}
        error: FolkError | None = None
        interrupted = False
        retry_jobs: list[tuple[int, int]] = []

        def finished(sampled: Sampled) -> None:
            nonlocal error
            if error is not None:
                return
            index = sampled.index
            for seed, reason in sampled.failures:
                retried.append({"tune": index + 1, "seed": seed, "reason": reason})
            history.setdefault(index, []).extend(sampled.failures)
            if not sampled.ok:
                rejected.append({"tune": index + 1, "seeds": [s for s, _ in history[index]],
                                 "reason": history[index][-1][1] if history[index] else "unknown"})
                return
            composed, reason = _finish(sampled, options, composer, number=index + 1, novelty=novelty,
                                       from_title=from_title)
            if composed is None:
                history[index].append((sampled.seed, reason))
                retried.append({"tune": index + 1, "seed": sampled.seed, "reason": reason})
                if len(history[index]) < config.attempts:
                    retry_jobs.append((index, sampled.seed + count))
                else:
                    rejected.append({"tune": index + 1, "seeds": [s for s, _ in history[index]],
                                     "reason": reason})
                return
            composed.failures = list(history[index])
            stem = f"{index + 1:0{width}d}-{composed.slug}"
            made: list[Path] = []  # the tune's files as they are written
            try:
                if per_tune:  # all of the tune's files or none (an interruption removes what was written)
                    write_formats(composed, folder, stem, per_tune, options, overwrite=options.force, made=made)
                composed.files = made
                finished_tunes.add(composed)  # the tune is kept once this has put it in the spool
            except BaseException as failure:
                # a full disk, or Ctrl-C or SIGTERM between the files and the spool: the files go
                # too, so that what is kept (tunebook, summary, files) agrees
                if composed.index not in finished_tunes.where:
                    for path in made:
                        path.unlink(missing_ok=True)
                if isinstance(failure, FolkError):
                    error = failure
                elif isinstance(failure, OSError):
                    error = OptionError(f"cannot write: {failure.strerror or failure}", file=str(folder))
                else:
                    raise
                return
            if keep:
                done[index] = composed
            if progress is not None:
                progress(len(finished_tunes) + len(rejected), count)

        # the first round: tune i from seed + i, as ranges (nothing sized by -n is built before the
        # work); a later round: the tunes whose tune failed, each with its next seed
        indices: Sequence[int] = range(count)
        seeds: Sequence[int] = range(options.seed, options.seed + count)
        try:
            while len(seeds) and error is None:
                def relay(sampled: Sampled, indices: Sequence[int] = indices) -> None:
                    sampled.index = indices[sampled.index]
                    finished(sampled)

                sample_tunes(composer.engine, composer.vocabulary, seeds,
                             config=config, conditions=conditions, next_seed=lambda seed: seed + count,
                             batch_size=batch_size, on_finish=relay, keep=False,
                             workers=default_workers() if workers is None else workers)
                jobs = sorted(dict(retry_jobs).items())
                indices, seeds = [index for index, _ in jobs], [seed for _, seed in jobs]
                retry_jobs[:] = []
        except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (folkrnn.processes): keep the finished tunes
            interrupted = True
        except FolkError as failure:  # a worker process died (the OOM killer): keep the finished tunes
            error = error or failure
        tunes = [done[index] for index in sorted(done)]
        result = GenerateResult(tunes=tunes, rejected=rejected, retried=retried, summary_path=None,
                                tunebook_path=None, interrupted=interrupted, error=error,
                                written=len(finished_tunes))
        try:
            _write_book(result, finished_tunes, folder, tunebook, summary_path, options, count, composer,
                        novelty_source, started)
        except FolkError as failure:
            result.error = result.error or failure
        except OSError as failure:
            result.error = result.error or OptionError(f"cannot write: {failure.strerror or failure}",
                                                       file=str(folder))
    result.seconds = time.perf_counter() - started
    return result


def _write_book(result: GenerateResult, finished: _Finished, folder: Path, tunebook: Path, summary_path: Path,
                options: ComposeOptions, count: int, composer: Composer, novelty_source: str,
                started: float) -> None:
    """The tunebook and summary.json of the finished tunes, read back from ``finished`` in the
    order of their numbers; each file is made under a temporary name and then given its own."""
    written = len(finished)
    if written:
        book = (b"\n" + abc if number else abc for number, (_, abc, _, _) in enumerate(finished.tunes()))
        write_atomic(tunebook, book, error=OptionError, overwrite=options.force)  # a blank line between tunes
        result.tunebook_path = tunebook
        if "pdf" in options.formats:
            texts = [abc.decode("utf-8") for _, abc, _, _ in finished.tunes()]
            parsed = [tune.tune for tune in result.tunes] if result.tunes else [parse(text) for text in texts]
            write_atomic(folder / "tunes.pdf", tunes_to_pdf(parsed, paper=options.paper, abcs=texts),
                         error=OptionError, overwrite=options.force)
    # what the summary counts, tune by tune in the order of their numbers (ties keep that order)
    valid = 0
    warnings: Counter = Counter()
    rhythms: Counter = Counter()
    meters: Counter = Counter()
    modes: Counter = Counter()
    keys: Counter = Counter()
    forms: Counter = Counter()
    copies: list[int] = []
    for index, _, text, mode in finished.tunes():
        entry = json.loads(text)
        valid += entry["valid"]
        warnings.update(entry["warnings"])
        rhythms[entry["rhythm"] or "?"] += 1
        meters[entry["meter"]] += 1
        modes[mode] += 1
        keys[entry["key"]] += 1
        forms[entry["form"].get("name", "?")] += 1
        if "probable-copy" in entry["warnings"]:
            copies.append(index + 1)
    seconds = time.perf_counter() - started
    summary = {
        "folkrnn": __version__,
        "model": composer.identity,
        "options": {key: value for key, value in asdict(options).items() if key not in ("out", "force")},
        "sampling": options.sample_config().to_dict(),
        "requested": count,
        "written": written,
        "interrupted": result.interrupted,
        "error": str(result.error) if result.error else None,
        "seconds": round(seconds, 3),
        "tunes_per_second": round(written / seconds, 2) if seconds > 0 else None,
        "valid": valid,
        "warnings": dict(warnings.most_common()),
        "rejected": result.rejected,
        "retried": result.retried,
        "distribution": {
            "rhythm": dict(rhythms.most_common()),
            "meter": dict(meters.most_common()),
            "mode": dict(modes.most_common()),
            "key": dict(keys.most_common()),
            "form": dict(forms.most_common()),
        },
        "novelty": {"reference": novelty_source, "threshold": COPY_THRESHOLD, "probable_copies": copies},
        "tunebook": tunebook.name if written else None,
        "tunes": [],  # written below, entry by entry, as json.dumps(summary, indent=1) would
    }
    head = json.dumps(summary, indent=1, ensure_ascii=False) + "\n"  # ends with: "tunes": []\n}\n

    def pieces():
        if not written:
            yield head.encode("utf-8")
            return
        yield head[:-len("]\n}\n")].encode("utf-8")
        for number, (_, _, entry, _) in enumerate(finished.tunes()):
            yield (b",\n  " if number else b"\n  ") + entry
        yield b"\n ]\n}\n"

    write_atomic(summary_path, pieces(), error=OptionError, overwrite=options.force)
    result.summary_path = summary_path
