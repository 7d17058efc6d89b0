"""The training corpus: collections of tunes read, tokenised, de-duplicated, split and cached.

Sources are music21's shipped folk collections (:data:`COLLECTIONS`; the dance-music ones marked
``default`` are the default corpus, read from disk, offline),
ABC files and folders, folk-rnn's published data files, and (for ``encoding="midi"``) MIDI
folders.

For ``encoding="midi"`` ABC sources are played: each tune is rendered expressively
(``folkrnn.midi.tune_performances``, several tempos and instruments, seeded by the tune's body; see
:class:`Rendering`) and its performances become event sequences, while MIDI files are read as they
are. So the default MIDI corpus is the expressive renderings of the default ABC corpus, and a
rendered tune keeps the split it has in the ABC corpus: its performances all sit in that split
(no leakage between train and test). Each tune is tokenised on its own; a tune that cannot be read is
recorded as a rejection and the rest go on. Exact duplicates (the same normalised body) are dropped,
keeping the first, and every tune goes to train, valid or test by a hash of its normalised body, so the
same tune in two collections can never sit in two splits, and adding tunes never moves the ones
already there.

The built corpus is cached as JSON (no pickle) under a key that covers the source files (paths,
sizes, modification times), the normalisation settings, the split and the tokenizer's code, so it
is rebuilt whenever any of them changes.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import folkrnn.abc
from folkrnn import __version__
from folkrnn.abc import Normalisation, read_text, split_tunebook, tokenize_and_parse, tokenize_keyed
from folkrnn.abc.lexer import KEY_MODE_WORDS
from folkrnn.abc.tokens import body_of
from folkrnn.errors import CorpusError, FolkError, OptionError
from folkrnn.files import EXISTS, exists, write_atomic
from folkrnn.limits import MAX_CORPUS_FILE_BYTES
from folkrnn.processes import worker_started
from folkrnn.tables import COLLECTIONS, DEFAULT_COLLECTIONS, INSTRUMENTS, MUSIC21_TERMS, Collection, find_instrument

# folkrnn.events and folkrnn.midi are imported inside the functions of a MIDI corpus: they bring
# numpy, which reading an ABC corpus (and importing this module) does not need.

__all__ = [
    "Corpus", "Collection", "Source", "COLLECTIONS", "DEFAULT_COLLECTIONS", "SPLITS",
    "build_corpus", "corpus_stats", "export_text", "export_split", "write_manifest",
    "resolve_sources", "source_files", "read_tunes", "looks_like_folkrnn", "folkrnn_to_abc",
    "split_of", "body_of", "default_novelty_index", "music21_corpus_dir", "default_cache_dir", "Rendering",
    "source_keys", "corpus_files", "file_hashes", "rebuild_corpus", "CorpusSpec",
]

SPLITS = ("train", "valid", "test")
CACHE_FORMAT = 1  # bump when the cache file's layout changes
_KEEP_CACHES = 4  # corpus caches kept per cache folder, most recently used first

# the music21 collections by name (folkrnn.tables.COLLECTIONS, the default corpus marked there)
_COLLECTIONS_BY_NAME = {collection.name: collection for collection in COLLECTIONS}
_USER_LICENCE = "supplied by the user: its licence is the user's to check"


@dataclass(frozen=True)
class Rendering:
    """How ABC tunes are played into a MIDI corpus (``folkrnn.midi.tune_performances``).

    Recorded in the corpus info (``info["rendering"]``), so the cache key and a model's card carry it.
    """

    renderings: int = 2  # performances of each tune
    tempo_factors: tuple[float, ...] = (0.9, 1.0, 1.1)  # each plays at its rhythm's tempo times one of these
    instruments: tuple[str, ...] = ("fiddle", "flute", "accordion", "piano")  # articulation and dynamics
    seed: int = 0  # with each tune's normalised body, seeds the choices and the humanisation

    def check(self) -> Rendering:
        """Raise OptionError for a setting out of range; return self."""
        if self.renderings < 1:
            raise OptionError(f"renderings must be at least 1, not {self.renderings}")
        if not self.tempo_factors or not all(0.25 <= f <= 4 for f in self.tempo_factors):
            raise OptionError("tempo factors must be given, each in 0.25..4")
        if not self.instruments:
            raise OptionError("name at least one instrument to render with")
        unknown = [name for name in self.instruments if find_instrument(name) is None]
        if unknown:
            raise OptionError(f"unknown instrument {unknown[0]!r}; choose from {', '.join(INSTRUMENTS)}")
        return self

    def to_dict(self) -> dict:
        return {"renderings": self.renderings, "tempo_factors": list(self.tempo_factors),
                "instruments": list(self.instruments), "seed": self.seed}


@dataclass(frozen=True)
class CorpusSpec:
    """What decides a corpus: its sources, encoding, tokenizer settings, split rule and rendering.

    The same spec over unchanged files makes the same corpus, so the spec (with the files' sizes and
    times and the tokenizer's code) is what the cache key covers. :meth:`of` makes one from
    :func:`build_corpus`'s arguments, checked and with the defaults filled in: ``settings`` is then
    always a ``Normalisation`` (ABC) or an ``EventConfig`` (MIDI), and ``rendering`` is set for a
    MIDI corpus only.
    """

    sources: tuple[str | os.PathLike, ...] | None  # as given (see resolve_sources); None: the default corpus
    encoding: str  # "abc" (ABC tokens) or "midi" (performance events)
    settings: Any  # folkrnn.abc.Normalisation for ABC, folkrnn.events.EventConfig for MIDI
    seed: int = 0  # the split rule (see split_of)
    valid_fraction: float = 0.05
    test_fraction: float = 0.05
    rendering: Rendering | None = None  # how a MIDI corpus plays its ABC tunes (None for ABC)

    @classmethod
    def of(cls, sources: Sequence[str | os.PathLike] | None = None, *, encoding: str = "abc",
           settings: Any = None, seed: int = 0, valid_fraction: float = 0.05, test_fraction: float = 0.05,
           rendering: Rendering | None = None) -> CorpusSpec:
        """:func:`build_corpus`'s arguments as a spec. Raises OptionError for an unknown encoding,
        split fractions out of range or a rendering out of range."""
        if encoding not in _SUFFIXES:
            raise OptionError(f"unknown encoding {encoding!r}; choose abc or midi")
        if not (0 <= valid_fraction < 1 and 0 <= test_fraction < 1
                and valid_fraction + test_fraction < 1):
            raise OptionError("valid and test fractions must be in [0, 1) and add up to less than 1")
        if encoding == "midi":
            from folkrnn.events import EventConfig  # lazily: numpy (see the imports)

            if settings is None:
                settings = EventConfig(controls=True)  # performances open with their controls (folkrnn.events)
            rendering = (rendering or Rendering()).check()
        else:
            if settings is None:
                settings = Normalisation()
            rendering = None
        return cls(tuple(sources) if sources else None, encoding, settings, seed, valid_fraction,
                   test_fraction, rendering)

    def split_rule(self) -> dict:
        """The split rule as recorded in the corpus info and the cache key."""
        return {"seed": self.seed, "valid_fraction": self.valid_fraction, "test_fraction": self.test_fraction,
                "rule": "sha1(f'{seed}:' + body tokens joined by U+001F; a tune rewritten from halved"
                        " notation: its body tokens as written), first 8 bytes / 2**64:"
                        " test below test_fraction, valid below test+valid, else train"}

    def recipe(self, resolved: Sequence[Source]) -> dict:
        """What :func:`rebuild_corpus` needs to make this corpus again, from any folder."""
        return {"sources": [_source_key(source) for source in resolved],
                "given": [os.fspath(item) for item in self.sources] if self.sources else None,
                "encoding": self.encoding, "settings": _settings_dict(self.settings), "seed": self.seed,
                "valid_fraction": self.valid_fraction, "test_fraction": self.test_fraction,
                "rendering": self.rendering.to_dict() if self.rendering is not None else None}

    def reader(self, played: bool = False) -> _Reader:
        """How a file of this corpus is read: tokenised as ABC, played (an ABC source of a MIDI
        corpus, ``played``), or encoded as events (a MIDI file)."""
        if self.encoding == "abc":
            return _AbcReader(self.settings)
        if played:
            return _PlayedReader(_played_normalisation(), self.settings, self.rendering)
        return _MidiReader(self.settings)


def _played_normalisation() -> Any:
    """The normalisation of the ABC tokens that decide a played tune's duplicates and split: the
    default one as written, so that a tune keeps the split it has in the default ABC corpus (which
    keys a tune it rewrites from halved notation by its tokens as written: _ReadTune.key)."""
    return Normalisation(whole_bars=False)


# ---------------------------------------------------------------------------------------------
# Sources


@dataclass(frozen=True)
class Source:
    """A place tunes come from: a music21 collection, or a file or folder the user named."""

    name: str  # the collection's name, or the path as the user wrote it
    path: Path  # a file or a folder
    origin: str  # "music21" or "user"
    licence: str  # the licence note recorded in the manifest


def music21_corpus_dir() -> Path:
    """The ``corpus/`` folder of the installed music21, found without importing music21."""
    spec = importlib.util.find_spec("music21")
    if spec is None or spec.origin is None:
        raise CorpusError("music21 is not installed, and the default corpus ships inside it "
                          "(pip install music21), or name your own files with --source")
    return Path(spec.origin).parent / "corpus"


def _music21_version() -> str | None:
    try:
        from importlib.metadata import version
        return version("music21")
    except Exception:  # noqa: BLE001 - a missing or odd distribution just goes unrecorded
        return None


def _collection_source(name: str) -> Source:
    collection = _COLLECTIONS_BY_NAME.get(name)
    if collection is None:
        known = ", ".join(_COLLECTIONS_BY_NAME)
        raise CorpusError(f"unknown music21 collection {name!r}; the collections are {known}")
    folder = music21_corpus_dir() / name
    if not folder.is_dir():
        raise CorpusError(f"music21's corpus has no folder {name!r} (a music21 installed without "
                          "its corpus?)", file=str(folder))
    return Source(name, folder, "music21", f"{collection.licence} {MUSIC21_TERMS}")


def resolve_sources(sources: Sequence[str | os.PathLike] | None) -> list[Source]:
    """Names and paths -> sources, in the order given, each once.

    ``None`` (or an empty list) is the default corpus: the music21 collections of dance music
    marked ``default`` in :data:`COLLECTIONS` (O'Neill's, Ryan's, Aird's, misc). In a list,
    ``"default"`` stands for those, a collection's name (``"oneills1850"``, ``"essenFolksong"``,
    or ``"music21:oneills1850"``) for one of :data:`COLLECTIONS`, and anything else is a path to an ABC file, a
    folk-rnn data file or a folder (write ``./oneills1850`` for a folder of that name).
    Raises CorpusError for a path that does not exist or an unknown collection.
    """
    if not sources:
        sources = ["default"]
    resolved: list[Source] = []
    seen: set[Path] = set()

    def add(source: Source) -> None:
        key = source.path.resolve()
        if key not in seen:
            seen.add(key)
            resolved.append(source)

    for item in sources:
        text = os.fspath(item)
        if text == "default":
            for collection in DEFAULT_COLLECTIONS:
                add(_collection_source(collection.name))
        elif text.startswith("music21:"):
            add(_collection_source(text.split(":", 1)[1]))
        elif text in _COLLECTIONS_BY_NAME and not isinstance(item, os.PathLike):
            add(_collection_source(text))
        else:
            path = Path(text).expanduser()
            if not path.exists():
                raise CorpusError("no such file or folder", file=text)
            add(Source(text, path, "user", _USER_LICENCE))
    return resolved


_SUFFIXES = {"abc": (".abc",), "midi": (".mid", ".midi")}


def _is_abc_source(source: Source) -> bool:
    """Whether a MIDI corpus plays this source (ABC) rather than reads it (MIDI files): music21's
    collections, a file that is not ``.mid``/``.midi``, and a folder with ``*.abc`` files but no
    MIDI files."""
    if source.origin == "music21":
        return True
    if source.path.is_file():
        return source.path.suffix.lower() not in _SUFFIXES["midi"]
    for path in source.path.rglob("*"):
        if path.suffix.lower() in _SUFFIXES["midi"]:
            return False
    return any(path.suffix.lower() == ".abc" for path in source.path.rglob("*.[aA][bB][cC]"))


def source_files(source: Source, encoding: str = "abc") -> list[Path]:
    """The files of a source: the file itself, or a folder's ``*.abc`` (or ``*.mid``/``*.midi``)
    files found recursively, hidden ones left out, sorted by relative path.
    Raises CorpusError for a folder with none."""
    if source.path.is_file():
        return [source.path]
    suffixes = _SUFFIXES[encoding]
    files = []
    for path in source.path.rglob("*"):
        relative = path.relative_to(source.path)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if path.suffix.lower() in suffixes and path.is_file():
            files.append(path)
    if not files:
        raise CorpusError(f"no {' or '.join('*' + s for s in suffixes)} files in this folder",
                          file=str(source.path))
    return sorted(files, key=lambda p: p.relative_to(source.path).as_posix())


def source_keys(sources: Sequence[str | os.PathLike] | None) -> list[str]:
    """The sources as names that mean the same from any folder: ``music21:<collection>`` for a
    music21 collection (``default`` expanded), the absolute path for a file or folder.
    ``build_corpus(source_keys(x))`` is ``build_corpus(x)``. Raises CorpusError as
    :func:`resolve_sources` does."""
    return [_source_key(source) for source in resolve_sources(sources)]


def _source_key(source: Source) -> str:
    return f"music21:{source.name}" if source.origin == "music21" else str(source.path.resolve())


def corpus_files(sources: Sequence[str | os.PathLike] | None, encoding: str = "abc") -> list[str]:
    """The absolute paths of every file :func:`build_corpus` reads for these sources, in its
    order. Raises CorpusError for a source that does not exist or a folder with no tunes."""
    out = []
    for source in resolve_sources(sources):
        played = encoding == "midi" and _is_abc_source(source)  # a MIDI corpus plays ABC sources
        out += [str(path.resolve()) for path in source_files(source, "abc" if played else encoding)]
    return out


def file_hashes(paths: Iterable[str | os.PathLike]) -> dict[str, str]:
    """sha256 of each file's bytes, by path as given; a file that cannot be read maps to ``""``."""
    hashes = {}
    for path in paths:
        digest = hashlib.sha256()
        try:
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
            hashes[os.fspath(path)] = digest.hexdigest()
        except OSError:
            hashes[os.fspath(path)] = ""
    return hashes


# ---------------------------------------------------------------------------------------------
# folk-rnn's published data format: tunes separated by blank lines, each a few header lines
# (M:6/8, K:Cmaj) and then the body's tokens separated by spaces.

_FOLKRNN_FIRST = re.compile(r"^(?:<s>\s|[TRMKL]:)")
_FOLKRNN_HEADER_TOKEN = re.compile(r"^[RMKL]:\S+$")
_SIMPLE_TOKEN = re.compile(r"""
    (?:\^\^|__|\^|_|=)?[A-Ga-g][,']*  # a pitch
  | [zxZ]                             # a rest
  | \d*/?\d*[<>]?                     # a length, a broken rhythm (2 /2 3/2 > 2< ...)
  | [|:\[\]]+\d*                      # bars, repeats, endings (| |: :| :: |1 [2 ...)
  | \(\d | [{}()\-.~] | </?s>         # tuplets, braces, ties, sequence marks
""", re.VERBOSE)


def looks_like_folkrnn(text: str) -> bool:
    """Whether a text is in folk-rnn's data format rather than ABC: no X: lines, the first line a
    header field (M:, K:, R:, T:, L:) or ``<s>``, and nine body tokens in ten single model tokens
    (``G E E E 2 D E``), where ABC writes notes together (``GEEE2DE``)."""
    if re.search(r"^X:", text, re.MULTILINE):
        return False
    first = next((line.strip() for line in text.splitlines()
                  if line.strip() and not line.lstrip().startswith("%")), "")
    if not _FOLKRNN_FIRST.match(first):
        return False
    body = [token for tune in _folkrnn_tunes(text) for token in tune.body]
    if not body:
        return False
    simple = sum(1 for token in body if _SIMPLE_TOKEN.fullmatch(token))
    return simple >= 0.9 * len(body)


@dataclass
class _FolkrnnTune:
    line: int  # 1-based line where the tune starts
    title: str = ""
    header: dict[str, str] = field(default_factory=dict)
    body: list[str] = field(default_factory=list)


def _folkrnn_tunes(text: str) -> list[_FolkrnnTune]:
    """Split folk-rnn data into tunes: at blank lines, or where a header line follows a body line
    (so one tune a line, as ``export`` writes, reads back too)."""
    tunes: list[_FolkrnnTune] = []
    current: _FolkrnnTune | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            current = None
            continue
        if line.startswith("%"):
            continue
        if current is None or (current.body and _FOLKRNN_FIRST.match(line)):
            current = _FolkrnnTune(number)
            tunes.append(current)
        if line.startswith("T:"):
            current.title = line[2:].strip()
            continue
        tokens = line.split()
        if tokens and tokens[0] == "<s>":  # our own export: <s> title characters R: M: K: ... </s>
            tokens = tokens[1:]
            title = []
            while tokens and not _FOLKRNN_HEADER_TOKEN.match(tokens[0]):
                title.append(tokens.pop(0))
            current.title = "".join(title).replace("\u2581", " ")
        for token in tokens:
            if token in ("<s>", "</s>"):
                continue
            if not current.body and _FOLKRNN_HEADER_TOKEN.match(token):
                current.header[token[0]] = token[2:]
            else:
                current.body.append(token)
    return [tune for tune in tunes if tune.body or tune.header]


def _is_bar_token(token: str) -> bool:
    return "|" in token or token.startswith("::") or bool(re.fullmatch(r"\[\d[\d,\-]*", token))


def folkrnn_to_abc(tune: _FolkrnnTune | str, number: int = 1) -> str:
    """One folk-rnn tune (its text, or as read) -> ABC text: ``X:n``, ``T:`` if it has a title,
    ``R:``, ``M:``, ``L:1/8`` (unless it names one), ``K:``, and the body tokens joined (with a
    space around bar lines, so ``:|`` ``|:`` stay two bars). A mode-only ``K:maj`` (folk-rnn v3)
    means C."""
    if isinstance(tune, str):
        tunes = _folkrnn_tunes(tune)
        if len(tunes) != 1:
            raise CorpusError(f"expected one folk-rnn tune, found {len(tunes)}")
        tune = tunes[0]
    lines = [f"X:{number}"]
    if tune.title:
        lines.append(f"T:{tune.title}")
    if "R" in tune.header:
        lines.append(f"R:{tune.header['R']}")
    if "M" in tune.header:
        lines.append(f"M:{tune.header['M']}")
    lines.append(f"L:{tune.header.get('L', '1/8')}")
    key = tune.header.get("K", "C")
    if len(key) >= 3 and key[:3].lower() in KEY_MODE_WORDS:  # a mode with no tonic
        key = "C" + key
    lines.append(f"K:{key}")
    body = []
    for token in tune.body:
        body.append(f" {token} " if _is_bar_token(token) else token)
    lines.append(re.sub(" +", " ", "".join(body)).strip())
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Reading one file (runs in the worker processes)


@dataclass(frozen=True)
class _RawTune:
    text: str  # ABC text of one tune
    line: int  # 1-based line in its file where it starts
    number: str  # its X: (or its place in a folk-rnn file)
    title: str  # its first T:, or ""


def read_tunes(path: str | os.PathLike) -> list[_RawTune]:
    """The tunes of one file, as ABC texts: an ABC tunebook split at X:, or a folk-rnn data file
    converted tune by tune. Raises a FolkError for a file that is empty, binary or not text."""
    text = read_text(path, limit=MAX_CORPUS_FILE_BYTES)
    if looks_like_folkrnn(text):
        tunes = []
        for index, tune in enumerate(_folkrnn_tunes(text), 1):
            tunes.append(_RawTune(folkrnn_to_abc(tune, index), tune.line, str(index), tune.title))
        return tunes
    tunes = []
    for tune in split_tunebook(text, os.fspath(path)):
        tunes.append(_RawTune(tune.text, tune.line, *tune.number_and_title))
    return tunes


def _reason(message: str) -> str:
    """An error message with its particulars (quoted text, numbers) blanked, to count by kind."""
    message = re.sub(r"^(bad [A-Za-z+]: field):.*$", r"\1", message)
    message = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", message)
    return re.sub(r"\d+", "N", message)


def _rejection(source: str, file: str, number: str | None, title: str | None, error: Exception,
               line: int | None = None) -> dict:
    if isinstance(error, FolkError):
        message = error.message
        where = str(error)
    else:  # a bug in folkrnn: keep the build going, but say so loudly in the stats
        message = f"internal error ({type(error).__name__}: {error}); please report it"
        where = message
    return {"source": source, "file": file, "tune": number, "title": title, "line": line,
            "reason": _reason(message), "message": where}


@dataclass(frozen=True)
class _FileJob:
    """One file for a worker to read, and how."""

    source: str  # the name of the source it belongs to
    path: str  # the file, as found
    relative: str  # its path inside the source's folder; "" for a file named as a source itself
    size: int  # bytes: files are shared out among the workers by size
    reader: _Reader  # how it is read (see CorpusSpec.reader)

    @property
    def named(self) -> bool:
        """Whether the user named this file itself (it must then be readable)."""
        return self.relative == ""

    @property
    def label(self) -> str:
        """The file as origins and rejections name it: ``source/relative``, or the source."""
        return f"{self.source}/{self.relative}" if self.relative else self.source


@dataclass(frozen=True)
class _ReadTune:
    """One tune a worker read."""

    tokens: list[str]  # its tokens (ABC, or for a MIDI file the event names framed by <s> </s>)
    origin: str  # "source/file#X" ("source/file" for a MIDI file)
    performances: list[bytes] | None = None  # an ABC tune played for a MIDI corpus: its renderings (_pack)
    key: list[str] | None = None  # the tokens that decide its duplicates and split, where not its own
    # (a tune the tokenizer rewrote from halved notation: its tokens as written, folkrnn.abc.tokenize_keyed)


@dataclass
class _FileResult:
    """What a worker made of one file: its tunes and rejected tunes, or why it was skipped whole."""

    tunes: list[_ReadTune] = field(default_factory=list)
    rejections: list[dict] = field(default_factory=list)  # see _rejection
    file_error: dict | None = None  # a rejection for the whole file (unreadable, no tunes), else None


def _skipped(job: _FileJob, error: Exception) -> _FileResult:
    return _FileResult(file_error=_rejection(job.source, job.label, None, None, error))


def _read_tunebook(job: _FileJob, tune_tokens) -> _FileResult:
    """Tokenise every tune of one ABC or folk-rnn file with ``tune_tokens(text) -> (tokens,
    performances, key)`` (:class:`_ReadTune`); a tune that raises is a rejection, and the rest go on."""
    try:
        tunes = read_tunes(job.path)
    except FolkError as error:
        return _skipped(job, error)
    if not tunes:
        return _skipped(job, CorpusError("no tunes in this file", file=job.path))
    result = _FileResult()
    for tune in tunes:
        try:
            tokens, performances, key = tune_tokens(tune.text)
        except Exception as error:  # noqa: BLE001 - FolkError is expected; anything else is a bug
            if isinstance(error, FolkError):
                error.located(file=job.path, tune=f"X:{tune.number} {tune.title!r}", line_offset=tune.line - 1)
            result.rejections.append(_rejection(job.source, job.label, tune.number, tune.title, error, tune.line))
            continue
        result.tunes.append(_ReadTune(tokens, f"{job.label}#{tune.number}", performances, key))
    return result


@dataclass(frozen=True)
class _AbcReader:
    """Reads an ABC or folk-rnn file into ABC tokens, tune by tune (an ABC corpus)."""

    normalisation: Any  # folkrnn.abc.Normalisation

    def read(self, job: _FileJob) -> _FileResult:
        def read(text: str) -> tuple[list[str], None, list[str] | None]:
            tokens, key = tokenize_keyed(text, self.normalisation)
            return tokens, None, key

        return _read_tunebook(job, read)


@dataclass(frozen=True)
class _PlayedReader:
    """Reads an ABC or folk-rnn file for a MIDI corpus: each tune is tokenised (its tokens decide
    its duplicates and its split) and played into performances."""

    normalisation: Any  # folkrnn.abc.Normalisation: the tokens that decide the split
    events: Any  # folkrnn.events.EventConfig
    rendering: Rendering

    def read(self, job: _FileJob) -> _FileResult:
        def played(text: str) -> tuple[list[str], list[bytes], None]:
            tokens, parsed = tokenize_and_parse(text, self.normalisation)
            return tokens, _performances(parsed, tokens, self), None

        return _read_tunebook(job, played)


@dataclass(frozen=True)
class _MidiReader:
    """Reads a MIDI file as one tune of event names (a MIDI corpus)."""

    events: Any  # folkrnn.events.EventConfig

    def read(self, job: _FileJob) -> _FileResult:
        from folkrnn.midi import encode_midi  # lazily: numpy (see the imports)

        try:
            ids = encode_midi(job.path, self.events)
            if not ids:
                raise CorpusError("the file has no notes in the event range", file=job.path)
        except Exception as error:  # noqa: BLE001 - MidiError expected; anything else is a bug
            return _skipped(job, error)
        names = self.events.names()
        return _FileResult(tunes=[_ReadTune(["<s>", *(names[i] for i in ids), "</s>"], job.label)])


_Reader = _AbcReader | _PlayedReader | _MidiReader


def _read_file(job: _FileJob) -> _FileResult:
    """Worker: read one file as its job's reader says."""
    return job.reader.read(job)


def _performances(tune, tokens: Sequence[str], played: _PlayedReader) -> list[bytes]:
    """A parsed tune's expressive renderings as packed event ids (see :func:`_pack`), seeded by
    the rendering seed and the tune's normalised body (the same tune plays the same anywhere)."""
    from folkrnn.midi import tune_performances  # lazily: numpy (see the imports)

    rendering = played.rendering
    digest = hashlib.sha1(f"{rendering.seed}:".encode() + _body_digest(body_of(tokens))).digest()
    seed = int.from_bytes(digest[:6], "big")
    performances = [_pack(ids, played.events.vocab_size) for ids in tune_performances(
        [tune], played.events, tempo_factors=rendering.tempo_factors,
        instruments=rendering.instruments, renderings=rendering.renderings, seed=seed)]
    if not performances:
        raise CorpusError("the tune has no notes to play")
    return performances


def _pack(ids: Sequence[int], vocab_size: int) -> bytes:
    """Event ids as little-endian uint16 bytes (uint32 for a vocabulary past 65,535): a
    performance of thousands of events travels between processes and sits in the cache compactly."""
    import numpy as np

    return np.asarray(ids, dtype="<u2" if vocab_size <= 1 << 16 else "<u4").tobytes()


def _unpack(data: bytes, names: Sequence[str]) -> list[str]:
    """Packed event ids -> event names, framed by ``<s>`` and ``</s>``. The names are the
    vocabulary's own string objects, so millions of events cost a pointer each."""
    import numpy as np

    ids = np.frombuffer(data, dtype="<u2" if len(names) <= 1 << 16 else "<u4")
    return ["<s>", *map(names.__getitem__, ids.tolist()), "</s>"]


# ---------------------------------------------------------------------------------------------
# Split and duplicates


def _body_digest(body: Sequence[str]) -> bytes:
    return hashlib.sha1("\x1f".join(body).encode("utf-8")).digest()


def split_of(body: Sequence[str], *, seed: int = 0, valid_fraction: float = 0.05,
             test_fraction: float = 0.05) -> str:
    """Which split a tune belongs to, from its normalised body alone.

    ``h = sha1(f"{seed}:" + body tokens joined by U+001F)``; its first 8 bytes as a number in
    [0, 1) put the tune in test below ``test_fraction``, in valid below ``test_fraction +
    valid_fraction``, and in train otherwise. The same body always lands in the same split,
    whatever else is in the corpus.
    """
    digest = hashlib.sha1(f"{seed}:".encode() + "\x1f".join(body).encode("utf-8")).digest()
    position = int.from_bytes(digest[:8], "big") / 2 ** 64
    if position < test_fraction:
        return "test"
    if position < test_fraction + valid_fraction:
        return "valid"
    return "train"


# ---------------------------------------------------------------------------------------------
# The corpus


@dataclass
class Corpus:
    """Tunes split for training, each a list of tokens, with a record of how they were made."""

    train: list[list[str]]  # tunes of the training split
    valid: list[list[str]]  # tunes for validation (early stopping, model choice)
    test: list[list[str]]  # tunes held out for the final evaluation
    encoding: str  # "abc" (ABC tokens) or "midi" (performance events)
    info: dict  # sources with counts, content hash, normalisation, split rule, rejections
    origins: dict[str, list[str]] = field(default_factory=dict)  # split -> "source/file#X" per tune
    cache_path: Path | None = None  # where it is cached (None: not cached)
    from_cache: bool = False  # whether this build was read from the cache
    seconds: float = 0.0  # how long build_corpus took
    recipe: dict = field(default_factory=dict)  # build_corpus's arguments, cwd-independent: rebuild_corpus(recipe)
    files: list[str] = field(default_factory=list)  # the files read, absolute paths in reading order
    cache_error: str = ""  # why the cache could not be written ("": written, read, or not asked for)

    def split(self, name: str) -> list[list[str]]:
        """The tunes of one split by name (train, valid or test)."""
        if name not in SPLITS:
            raise OptionError(f"unknown split {name!r}; choose train, valid or test")
        return getattr(self, name)

    def __len__(self) -> int:
        return len(self.train) + len(self.valid) + len(self.test)

    @property
    def content_hash(self) -> str:
        """sha256 of the split tunes: names this exact corpus in a training record."""
        return self.info["content_hash"]


def _content_hash(splits: dict[str, list[list[str]]]) -> str:
    digest = hashlib.sha256()
    for name in SPLITS:
        for tokens in splits[name]:
            digest.update(name.encode())
            digest.update(b"\x1e")
            digest.update("\x1f".join(tokens).encode("utf-8"))
            digest.update(b"\n")
    return digest.hexdigest()


def _settings_dict(settings: Any) -> dict:
    if settings is None:
        return {}
    if hasattr(settings, "to_dict"):
        return settings.to_dict()
    if is_dataclass(settings):
        return asdict(settings)
    return dict(settings)


def _code_fingerprint(encoding: str, *, played: bool = False) -> dict:
    """The tokenizer's version and a hash of the code that makes the tokens (for a MIDI corpus
    that plays ABC tunes, the ABC reader's code too)."""
    package = Path(folkrnn.__file__).parent
    files = []
    if encoding == "abc" or played:
        version = folkrnn.abc.TOKENIZER_VERSION  # read when called: a test raises it
        files = sorted((package / "abc").glob("*.py")) + [package / "music.py"]
    if encoding != "abc":
        version = __version__
        files += [package / "events.py", package / "midi.py"]
    files += [package / "corpus.py", package / "tables.py"]  # tables: the collections, dances and instruments
    digest = hashlib.sha1()
    for path in files:
        if path.is_file():
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return {"tokenizer_version": version, "folkrnn_version": __version__,
            "code": digest.hexdigest()}


def default_cache_dir() -> Path:
    """Where built corpora are cached: ``$FOLKRNN_CACHE``, else ``corpora/cache/`` of a source
    checkout when writable, else ``$XDG_CACHE_HOME/folkrnn`` (``~/.cache/folkrnn``)."""
    if os.environ.get("FOLKRNN_CACHE"):
        return Path(os.environ["FOLKRNN_CACHE"]).expanduser()
    repo = Path(__file__).resolve().parent.parent
    corpora = repo / "corpora"
    if corpora.is_dir() and (repo / "pyproject.toml").is_file() and os.access(corpora, os.W_OK):
        return corpora / "cache"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "folkrnn"


def _write_atomic(path: Path, text: str, overwrite: bool = True) -> None:
    """Write a text file whole or not at all (folkrnn.files), making its folder first.
    Raises CorpusError naming the file when it cannot be written (or, without ``overwrite``, exists)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CorpusError(f"cannot create the folder: {error.strerror or error}", file=str(path.parent)) from None
    write_atomic(path, text, error=CorpusError, overwrite=overwrite)


def _load_cache(path: Path, key: str) -> dict | None:
    try:
        with open(path, encoding="utf-8") as stream:
            data = json.load(stream)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT or data.get("key") != key:
        return None
    try:
        os.utime(path)  # most recently used: kept longest by the pruning below
    except OSError:
        pass
    return data


def _prune_cache(folder: Path, keep: int = _KEEP_CACHES) -> None:
    caches = sorted(folder.glob("corpus-*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    for stale in caches[keep:]:
        try:
            stale.unlink()
        except OSError:
            pass


def _read_batch(jobs: list[_FileJob]) -> list[_FileResult]:
    """Worker: read a batch of files."""
    return [_read_file(job) for job in jobs]


def _read_files(jobs: list[_FileJob], workers: int) -> list[_FileResult]:
    """Step 3: read every file, in ``workers`` processes (inline when 1); results in job order.

    Files are packed, in order, into batches of about 1/(6 * workers) of all the bytes (a big
    file alone), and the biggest batches start first, so the workers finish together.
    """
    if workers <= 1 or len(jobs) < 2:
        return [_read_file(job) for job in jobs]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    sizes = [job.size for job in jobs]
    target = max(1, sum(sizes) // (6 * workers))
    batches: list[list[int]] = [[]]
    weight = 0
    for index, size in enumerate(sizes):
        if batches[-1] and weight + size > target:
            batches.append([])
            weight = 0
        batches[-1].append(index)
        weight += size
    batches.sort(key=lambda batch: -sum(sizes[i] for i in batch))
    # fork is fastest; a process that has imported torch gets spawn, which is safe with threads
    method = "spawn" if "torch" in sys.modules or sys.platform != "linux" else "fork"
    context = multiprocessing.get_context(method)
    results: list[_FileResult | None] = [None] * len(jobs)
    # the readers ignore Ctrl-C and die with this process (kill -9, timeout: none is left reading)
    pool = ProcessPoolExecutor(max_workers=min(workers, len(batches)), mp_context=context,
                               initializer=worker_started, initargs=(os.getpid(),))
    try:
        futures = [(batch, pool.submit(_read_batch, [jobs[i] for i in batch])) for batch in batches]
        for batch, future in futures:
            for index, result in zip(batch, future.result()):
                results[index] = result
    except BaseException:  # Ctrl-C, SIGTERM, a failure: stop the readers now, not after every batch
        processes = list((getattr(pool, "_processes", None) or {}).values())
        # (shutdown forgets the pool's manager thread and its results queue)
        manager, result_queue = getattr(pool, "_executor_manager_thread", None), getattr(pool, "_result_queue", None)
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.terminate()
        for process in processes:
            process.join(timeout=5)
        # A reader stopped while it sent its results leaves half a message in the results pipe, and
        # the manager thread reading the rest of it forever; this process would wait for that thread
        # at exit (hung), or write to its wake-up pipe as the thread closed it (a traceback). With
        # this end's copy of the pipe's writer closed, the thread reads the end of the pipe, winds
        # the pool up, and is waited for here (Ctrl-C a second into a build, Python 3.11).
        writer = getattr(result_queue, "_writer", None)
        if writer is not None:
            writer.close()
        if manager is not None:
            manager.join(timeout=5)
        raise
    pool.shutdown()
    return results  # type: ignore[return-value]


@dataclass(frozen=True)
class _Plan:
    """Step 1: the sources resolved and their files listed, each file a job with its reader."""

    sources: list[Source]
    jobs: list[_FileJob]  # in reading order
    files: list[list]  # [source, absolute path, size, mtime_ns] of each job: the files in the cache key
    rendered: int  # files of ABC sources that a MIDI corpus plays

    @property
    def paths(self) -> list[str]:
        """The files read, absolute paths in reading order (:attr:`Corpus.files`)."""
        return [entry[1] for entry in self.files]


def _plan(spec: CorpusSpec) -> _Plan:
    """Step 1: resolve the sources and list their files. Raises CorpusError for a source that does
    not exist or a folder with no tunes."""
    resolved = resolve_sources(spec.sources)
    jobs, files, rendered = [], [], 0
    for source in resolved:
        played = spec.encoding == "midi" and _is_abc_source(source)  # a MIDI corpus plays ABC sources
        reader = spec.reader(played)
        for path in source_files(source, "abc" if played else spec.encoding):
            relative = "" if path == source.path else path.relative_to(source.path).as_posix()
            stat = path.stat()
            jobs.append(_FileJob(source.name, str(path), relative, stat.st_size, reader))
            files.append([source.name, str(path.resolve()), stat.st_size, stat.st_mtime_ns])
            rendered += played
    return _Plan(resolved, jobs, files, rendered)


@dataclass(frozen=True)
class _Identity:
    """Step 2: what names a build: its recipe, its records of settings and code, its cache key."""

    recipe: dict  # see CorpusSpec.recipe
    settings: dict  # the settings as a dict
    split: dict  # see CorpusSpec.split_rule
    code: dict  # see _code_fingerprint
    rendering: dict | None  # how ABC tunes were played (None when none was)
    key: str  # sha256 of all of these and the files' paths, sizes and times

    def cache_path(self, encoding: str, cache_dir: str | os.PathLike | None) -> Path:
        folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        return folder / f"corpus-{encoding}-{self.key[:20]}.json"


def _identify(spec: CorpusSpec, plan: _Plan) -> _Identity:
    """Step 2: the build's recipe, records and cache key."""
    settings = _settings_dict(spec.settings)
    split = spec.split_rule()
    code = _code_fingerprint(spec.encoding, played=bool(plan.rendered))
    rendering = None
    if plan.rendered:
        rendering = {**spec.rendering.to_dict(), "normalisation": _settings_dict(_played_normalisation()),
                     "how": "folkrnn.midi.tune_performances of each ABC tune as written (its own "
                            "key), seeded by sha1(f'{seed}:' + sha1 of its normalised body)"}
    payload = {"format": CACHE_FORMAT, "encoding": spec.encoding, "code": code, "settings": settings,
               "split": split, "files": plan.files, "rendering": rendering}
    key = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
    return _Identity(spec.recipe(plan.sources), settings, split, code, rendering, key)


def _cached(spec: CorpusSpec, plan: _Plan, identity: _Identity, path: Path) -> Corpus | None:
    """The corpus as cached at ``path`` under this key, or None (no entry, another key, unreadable)."""
    data = _load_cache(path, identity.key)
    if data is None:
        return None
    if data.get("packed"):
        names = spec.settings.names()
        data["splits"] = {name: [_unpack(base64.b64decode(text), names) for text in data["splits"][name]]
                          for name in SPLITS}
    return Corpus(**{name: data["splits"][name] for name in SPLITS}, encoding=spec.encoding,
                  info=data["info"], origins=data["origins"], cache_path=path, from_cache=True,
                  recipe=identity.recipe, files=plan.paths)


@dataclass
class _Merged:
    """Step 4: the files' tunes in reading order, duplicates dropped and each kept tune in its split."""

    counts: dict[str, dict]  # per source name: its files, tunes, rejections, ... (info["sources"])
    splits: dict[str, list]  # split -> tunes: token lists, or a played tune's performances (packed bytes)
    origins: dict[str, list[str]]  # split -> "source/file#X" of each tune ("...@n" for a performance)
    rejections: list[dict] = field(default_factory=list)
    duplicates: list[dict] = field(default_factory=list)  # {"tune": origin, "duplicate_of": origin}
    performances: dict[str, int] = field(default_factory=lambda: {name: 0 for name in SPLITS})
    seen: dict[bytes, str] = field(default_factory=dict)  # body digest -> origin of the tune kept

    @classmethod
    def empty(cls, sources: Sequence[Source]) -> _Merged:
        counts = {source.name: {"name": source.name, "origin": source.origin, "path": _display_path(source),
                                "licence": source.licence, "files": 0, "files_skipped": 0, "tunes": 0,
                                "rejected": 0, "duplicates": 0, "kept": 0, **{name: 0 for name in SPLITS}}
                  for source in sources}
        return cls(counts, {name: [] for name in SPLITS}, {name: [] for name in SPLITS})

    def add_file(self, job: _FileJob, result: _FileResult, spec: CorpusSpec) -> None:
        """One file's result. Raises CorpusError for a file the user named that cannot be read."""
        counts = self.counts[job.source]
        if result.file_error is not None:
            if job.named:  # a file the user named must be readable
                raise CorpusError(result.file_error["message"])
            counts["files_skipped"] += 1
            self.rejections.append(result.file_error)
            return
        counts["files"] += 1
        counts["tunes"] += len(result.tunes) + len(result.rejections)
        counts["rejected"] += len(result.rejections)
        self.rejections.extend(result.rejections)
        for tune in result.tunes:
            self.add_tune(job.source, tune, spec)

    def add_tune(self, source: str, tune: _ReadTune, spec: CorpusSpec) -> None:
        """One tune: rejected with no notes, dropped as a duplicate, or kept in its body's split."""
        counts = self.counts[source]
        body = body_of(tune.key or tune.tokens)
        if not body:
            counts["rejected"] += 1
            file, number = tune.origin.rsplit("#", 1)[0], tune.origin.rsplit("#", 1)[-1]
            self.rejections.append({"source": source, "file": file, "tune": number, "title": None, "line": None,
                                    "reason": "the tune has no notes",
                                    "message": f"{tune.origin}: the tune has no notes"})
            return
        digest = _body_digest(body)
        if digest in self.seen:
            counts["duplicates"] += 1
            self.duplicates.append({"tune": tune.origin, "duplicate_of": self.seen[digest]})
            return
        self.seen[digest] = tune.origin
        name = split_of(body, seed=spec.seed, valid_fraction=spec.valid_fraction,
                        test_fraction=spec.test_fraction)
        if tune.performances is not None:  # a tune played for a MIDI corpus: its performances, all in its split
            for number, packed in enumerate(tune.performances, 1):
                self.splits[name].append(packed)
                self.origins[name].append(f"{tune.origin}@{number}")
            self.performances[name] += len(tune.performances)
        else:
            self.splits[name].append(tune.tokens)
            self.origins[name].append(tune.origin)
        counts["kept"] += 1
        counts[name] += 1


def _merge(spec: CorpusSpec, plan: _Plan, results: list[_FileResult]) -> _Merged:
    """Step 4: merge the files' tunes in reading order, drop duplicates and split the rest.
    Raises CorpusError for an unreadable file the user named, or when no tune is left."""
    merged = _Merged.empty(plan.sources)
    for job, result in zip(plan.jobs, results):
        merged.add_file(job, result, spec)
    if not any(merged.splits.values()):
        first = f" (first: {merged.rejections[0]['message']})" if merged.rejections else ""
        where = ", ".join(source.name for source in plan.sources)
        raise CorpusError(f"no valid tunes in {where}: {len(merged.rejections)} rejected{first}")
    return merged


@dataclass(frozen=True)
class _Splits:
    """Step 5: the split tunes as the corpus holds them and as its cache file stores them."""

    tunes: dict[str, list[list[str]]]  # split -> token lists (a MIDI corpus: event names)
    stored: dict[str, list]  # split -> what the cache stores: the token lists, or packed ids in base64
    packed: bool  # whether ``stored`` holds packed ids


def _final_splits(spec: CorpusSpec, merged: _Merged) -> _Splits:
    """Step 5: a MIDI corpus's tunes as event names, and as packed ids (base64) for the cache."""
    if spec.encoding != "midi":
        return _Splits(merged.splits, merged.splits, False)
    names = spec.settings.names()
    index = {token: number for number, token in enumerate(names)}
    tunes, stored = {}, {}
    for name in SPLITS:
        stored[name] = [base64.b64encode(item if isinstance(item, bytes) else _pack(
            [index[token] for token in item[1:-1]], len(names))).decode("ascii") for item in merged.splits[name]]
        tunes[name] = [_unpack(item, names) if isinstance(item, bytes) else item for item in merged.splits[name]]
    return _Splits(tunes, stored, True)


def _info(spec: CorpusSpec, plan: _Plan, identity: _Identity, merged: _Merged, splits: _Splits) -> dict:
    """Step 6: the corpus info: sources with counts, rejections, settings, split rule, code, hashes."""
    return {
        "encoding": spec.encoding,
        "sources": list(merged.counts.values()),
        "tunes": {name: len(splits.tunes[name]) for name in SPLITS},
        "duplicates": len(merged.duplicates),
        "duplicate_examples": merged.duplicates[:20],
        "rejected": len(merged.rejections),
        "rejections": merged.rejections,
        "settings": identity.settings,
        **({"rendering": {**identity.rendering, "files": plan.rendered, "performances": merged.performances}}
           if identity.rendering else {}),
        "split": identity.split,
        "code": identity.code,
        "music21_version": _music21_version(),
        "content_hash": _content_hash(splits.tunes),
        "cache_key": identity.key,
    }


def _store(corpus: Corpus, path: Path, key: str, splits: _Splits) -> None:
    """Step 7: cache the corpus at ``path`` and prune old entries. A cache that cannot be written
    only costs time next run: recorded in ``corpus.cache_error``, not raised."""
    payload = {"format": CACHE_FORMAT, "key": key, "info": corpus.info, "splits": splits.stored,
               "packed": splits.packed, "origins": corpus.origins}
    try:
        _write_atomic(path, json.dumps(payload, ensure_ascii=False, separators=(",", ":")))
        _prune_cache(path.parent)
        corpus.cache_path = path
    except (OSError, CorpusError) as failure:
        corpus.cache_path = None
        reason = failure.message if isinstance(failure, CorpusError) else (failure.strerror or str(failure))
        corpus.cache_error = (f"built without a cache: {path.parent} cannot hold one "
                              f"({' '.join(str(reason).split())})")


def build_corpus(
    sources: Sequence[str | os.PathLike] | None = None,
    *,
    encoding: str = "abc",
    settings: Any = None,
    seed: int = 0,
    valid_fraction: float = 0.05,
    test_fraction: float = 0.05,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
    rebuild: bool = False,
    workers: int | None = None,
    rendering: Rendering | None = None,
) -> Corpus:
    """Read, tokenise, de-duplicate and split a corpus, from the cache when it is up to date.

    Parameters
    ----------
    sources
        Collection names and paths (see :func:`resolve_sources`); None is the default corpus,
        music21's dance-music collections (:data:`DEFAULT_COLLECTIONS`).
    encoding
        ``"abc"`` (ABC tokens via ``folkrnn.abc.tokenize``) or ``"midi"`` (performance events:
        MIDI files encoded by ``folkrnn.midi.encode_midi``; ABC sources, the default corpus
        among them, played by ``folkrnn.midi.tune_performances``, each tune in its ABC split).
    settings
        ``folkrnn.abc.Normalisation`` for ABC (None: the defaults), ``EventConfig`` for MIDI (None:
        the defaults, with controls).
    rendering
        How a MIDI corpus plays its ABC tunes (None: :class:`Rendering`'s defaults, two
        performances of each tune).
    seed, valid_fraction, test_fraction
        The split rule (see :func:`split_of`); 90/5/5 by default.
    cache_dir, use_cache, rebuild
        Where the cache lives (default :func:`default_cache_dir`), whether to use it at all, and
        whether to ignore an existing entry and build afresh (the result is still cached).
    workers
        Processes that tokenise (default: up to 2, one per CPU).

    The arguments up to the split rule are a :class:`CorpusSpec`; the build is its steps in turn:
    list the files (:func:`_plan`), name the build (:func:`_identify`), read the cache, read the
    files (:func:`_read_files`), merge, de-duplicate and split (:func:`_merge`), make the final
    splits (:func:`_final_splits`), describe them (:func:`_info`) and cache them (:func:`_store`).

    Raises
    ------
    CorpusError
        A source that does not exist, a folder with no tunes, a named file that is not text,
        or a corpus with no valid tunes.
    """
    started = time.perf_counter()
    spec = CorpusSpec.of(sources, encoding=encoding, settings=settings, seed=seed, valid_fraction=valid_fraction,
                         test_fraction=test_fraction, rendering=rendering)
    plan = _plan(spec)
    identity = _identify(spec, plan)
    cache_path = identity.cache_path(spec.encoding, cache_dir) if use_cache else None
    corpus = None
    if cache_path is not None and not rebuild and cache_path.is_file():
        corpus = _cached(spec, plan, identity, cache_path)
    if corpus is None:
        results = _read_files(plan.jobs, workers if workers is not None else min(2, os.cpu_count() or 1))
        merged = _merge(spec, plan, results)
        splits = _final_splits(spec, merged)
        corpus = Corpus(splits.tunes["train"], splits.tunes["valid"], splits.tunes["test"], spec.encoding,
                        _info(spec, plan, identity, merged, splits), merged.origins, recipe=identity.recipe,
                        files=plan.paths)
        if cache_path is not None:
            _store(corpus, cache_path, identity.key, splits)
    corpus.seconds = time.perf_counter() - started
    return corpus


def rebuild_corpus(recipe: dict, **options) -> Corpus:
    """The corpus a :attr:`Corpus.recipe` describes (``options``: cache_dir, workers, ...).
    Raises CorpusError as :func:`build_corpus` does."""
    encoding = recipe.get("encoding", "abc")
    settings = recipe.get("settings")
    if settings is not None:
        if encoding == "midi":
            from folkrnn.events import EventConfig  # lazily: numpy (see the imports)

            settings = EventConfig.from_dict(settings)
        else:
            settings = Normalisation.from_dict(settings)
    rendering = recipe.get("rendering")
    if rendering:
        rendering = Rendering(renderings=int(rendering["renderings"]),
                              tempo_factors=tuple(rendering["tempo_factors"]),
                              instruments=tuple(rendering["instruments"]), seed=int(rendering["seed"]))
    return build_corpus(recipe.get("sources") or None, encoding=encoding, settings=settings,
                        seed=recipe.get("seed", 0), valid_fraction=recipe.get("valid_fraction", 0.05),
                        test_fraction=recipe.get("test_fraction", 0.05), rendering=rendering or None,
                        **options)


def _display_path(source: Source) -> str:
    if source.origin == "music21":
        return f"music21/corpus/{source.name}"
    return source.name


# ---------------------------------------------------------------------------------------------
# Statistics, export, manifest


def _header_value(tokens: Sequence[str], prefix: str) -> str | None:
    for token in tokens:
        if token.startswith(prefix):
            return token[len(prefix):]
        if token.startswith("K:") and prefix != "K:":
            return None
    return None


def corpus_stats(corpus: Corpus, *, examples: int = 5) -> dict:
    """Counts that describe a corpus, as a JSON-ready dict.

    Tunes per split and per source (read, rejected, duplicates, kept), per rhythm (``R:``),
    meter (``M:``) and mode (``K:``); tokens in all and per split; the vocabulary's size (and
    how many valid/test tokens never occur in train); rejections by reason with a few examples.
    """
    all_tunes = [tokens for name in SPLITS for tokens in corpus.split(name)]
    rhythm, meter, mode = Counter(), Counter(), Counter()
    if corpus.encoding == "abc":
        for tokens in all_tunes:
            rhythm[_header_value(tokens, "R:") or "(none)"] += 1
            meter[_header_value(tokens, "M:") or "(none)"] += 1
            mode[_header_value(tokens, "K:") or "(none)"] += 1
    vocabulary = Counter(token for tokens in all_tunes for token in tokens)
    train_vocabulary = {token for tokens in corpus.train for token in tokens}
    unseen = sorted(set(vocabulary) - train_vocabulary)
    token_counts = {name: sum(len(tokens) for tokens in corpus.split(name)) for name in SPLITS}
    lengths = [len(tokens) for tokens in all_tunes]
    rejections = corpus.info.get("rejections", [])
    by_reason = Counter(rejection["reason"] for rejection in rejections)
    return {
        "encoding": corpus.encoding,
        "content_hash": corpus.info.get("content_hash"),
        "tunes": {"total": len(all_tunes), **{name: len(corpus.split(name)) for name in SPLITS}},
        "sources": [{key: source[key] for key in ("name", "origin", "files", "files_skipped",
                                                  "tunes", "rejected", "duplicates", "kept",
                                                  *SPLITS)}
                    for source in corpus.info.get("sources", [])],
        "rhythm": dict(rhythm.most_common()),
        "meter": dict(meter.most_common()),
        "mode": dict(mode.most_common()),
        "tokens": {"total": sum(token_counts.values()), **token_counts,
                   "mean_per_tune": round(sum(lengths) / len(lengths), 1) if lengths else 0,
                   "max_per_tune": max(lengths, default=0)},
        "vocabulary": {"size": len(vocabulary), "train": len(train_vocabulary),
                       "unseen_in_train": unseen},
        "duplicates": corpus.info.get("duplicates", 0),
        "rejected": {
            "total": len(rejections),
            "by_reason": dict(by_reason.most_common()),
            "examples": [rejection["message"] for rejection in rejections[:examples]],
        },
    }


def export_text(tunes: Iterable[Sequence[str]]) -> str:
    """Tunes -> folk-rnn's one-tune-a-line format: tokens separated by spaces (title spaces are
    the token ``▁``, so no token holds a space)."""
    return "".join(" ".join(tokens) + "\n" for tokens in tunes)


def export_split(corpus: Corpus, split: str, out: str | os.PathLike | None = None, *,
                 force: bool = False) -> str | Path:
    """Export one split: returns the text when ``out`` is None, else writes ``out`` atomically
    (refusing to overwrite an existing file unless ``force``) and returns its path."""
    text = export_text(corpus.split(split))
    if out is None:
        return text
    path = Path(out)
    if path.is_dir():
        raise OptionError("is a folder, not a file", file=str(path))
    if exists(path) and not force:  # a dangling link too
        raise OptionError(EXISTS, file=str(path))
    _write_atomic(path, text, overwrite=force)
    return path


def corpora_dir() -> Path:
    """The ``corpora/`` folder of a source checkout, else ``./corpora``."""
    repo = Path(__file__).resolve().parent.parent
    if (repo / "corpora").is_dir() and (repo / "pyproject.toml").is_file():
        return repo / "corpora"
    return Path("corpora")


def _portable(message: str) -> str:
    """A message with the installed music21's path written as ``music21/corpus``."""
    try:
        return message.replace(str(music21_corpus_dir()), "music21/corpus")
    except CorpusError:
        return message


def _manifest(corpus: Corpus, stats: dict) -> dict:
    sources = []
    for source in corpus.info["sources"]:
        entry = dict(source)
        collection = _COLLECTIONS_BY_NAME.get(source["name"]) if source["origin"] == "music21" \
            else None
        if collection is not None:
            entry["title"] = collection.title
            entry["licence_note"] = collection.licence
            entry["licence_files"] = [f"music21/{name}" for name in collection.licence_files]
        sources.append(entry)
    return {
        "generated_by": "folkrnn corpus build --write-manifest",
        "folkrnn_version": __version__,
        "music21_version": corpus.info.get("music21_version"),
        "encoding": corpus.encoding,
        "code": corpus.info.get("code"),
        "settings": corpus.info.get("settings"),
        "split": corpus.info.get("split"),
        "content_hash": corpus.info.get("content_hash"),
        "sources": sources,
        "totals": {
            "tunes": stats["tunes"],
            "duplicates": stats["duplicates"],
            "rejected": stats["rejected"]["total"],
            "tokens": stats["tokens"],
            "vocabulary_size": stats["vocabulary"]["size"],
        },
        "rejected_by_reason": stats["rejected"]["by_reason"],
        "rejections": [_portable(rejection["message"])
                       for rejection in corpus.info.get("rejections", [])[:100]],
        "rhythm": stats["rhythm"],
        "meter": stats["meter"],
        "mode": stats["mode"],
    }


def _readme(manifest: dict) -> str:
    totals = manifest["totals"]
    lines = [
        "# corpora",
        "",
        "The collections folkrnn learns from, with their licence notes and counts. This file and",
        "`manifest.json` are written by `folkrnn corpus build --write-manifest`",
        "(`folkrnn.corpus.write_manifest`); do not edit them by hand. Built corpora are cached",
        "in `corpora/cache/` (git-ignored), keyed by the source files, the normalisation",
        "settings, the split rule and the tokenizer's code, and rebuilt when any of them changes.",
        "",
        "## Sources",
        "",
        f"The default corpus is the {len(manifest['sources'])} ABC collections of dance music that ship inside",
        f"music21 (version {manifest['music21_version']}), read from its `corpus/` folder on disk with no",
        "network. Add your own ABC files or folders, or folk-rnn data files, with `--source`; the",
        "other collections music21 ships can be named too: "
        + ", ".join(f"`--source {c.name}` ({c.title})" for c in COLLECTIONS
                    if c.name not in {s["name"] for s in manifest["sources"]}) + ".",
        "",
        "| source | what it is | files | tunes read | rejected | duplicates | kept | train | "
        "valid | test |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for source in manifest["sources"]:
        lines.append(
            f"| {source['name']} | {source.get('title', source['path'])} | {source['files']:,} | "
            f"{source['tunes']:,} | {source['rejected']:,} | {source['duplicates']:,} | "
            f"{source['kept']:,} | {source['train']:,} | {source['valid']:,} | "
            f"{source['test']:,} |")
    tunes = totals["tunes"]
    lines += [
        f"| **all** | | | {sum(s['tunes'] for s in manifest['sources']):,} | "
        f"{totals['rejected']:,} | {totals['duplicates']:,} | {tunes['total']:,} | "
        f"{tunes['train']:,} | {tunes['valid']:,} | {tunes['test']:,} |",
        "",
        f"Tokens: {totals['tokens']['total']:,} in all (train {totals['tokens']['train']:,}, "
        f"valid {totals['tokens']['valid']:,}, test {totals['tokens']['test']:,}); "
        f"{totals['tokens']['mean_per_tune']} a tune on average, "
        f"{totals['tokens']['max_per_tune']:,} at most. Vocabulary: "
        f"{totals['vocabulary_size']:,} tokens (title characters included).",
        "",
        f"Content hash (sha256 of the split tunes): `{manifest['content_hash']}`.",
        "",
        "## Licences",
        "",
        "The music21 corpus as a whole (`music21/corpus/license.txt`): the encodings are",
        "distributed with music21 with the permission of their encoders and, to the best of",
        "music21's knowledge, are out of copyright in the United States or licensed for use;",
        "some may not be used commercially, and each repertory's own licence applies.",
        "",
        "**The Essen Folksong Collection is for non-commercial use only**",
        "(`music21/corpus/essenFolksong/license.txt`): Ewa Dahlig-Turek permitted non-commercial",
        "distribution and use with music21, and Seymour Schlien, who made the ABC encodings,",
        "permitted their distribution with music21. It is not in the default corpus; a model",
        "trained with `--source essenFolksong` inherits that restriction.",
        "",
    ]
    for source in manifest["sources"]:
        lines.append(f"- **{source['name']}**: {source.get('licence_note', source['licence'])}")
    lines += [
        "",
        "## How the corpus is made",
        "",
        "- Each tune is tokenised with `folkrnn.abc.tokenize` (settings: "
        + ", ".join(f"`{k}={v}`" for k, v in (manifest["settings"] or {}).items()) + ").",
        "  A tune that cannot be read is rejected, with its file, X:, title and reason, and the",
        "  rest go on. With `clean_titles` its first T: is read as an English title: a trailing",
        "  `, The` moved to the front, Ryan's `-- Reel` suffixes, bracketed notes, `No. 3`, `1st",
        "  Setting` and page references dropped, capitals cased (`THE GOLD RING` -> `The Gold Ring`).",
        "  With `whole_bars` a reel, hornpipe or strathspey in halved notation (2/4, the sixteenth its",
        "  commonest note) is written in its dance's meter in eighths, each 2/4 bar one bar.",
        "- Exact duplicates (the same normalised body: the tokens after `K:`, title, rhythm,",
        "  meter and mode left out; a tune rewritten from halved notation: its body as written)",
        "  are dropped across all collections, keeping the first in the order of the table above.",
        "- Split: " + manifest["split"]["rule"] + f" (seed {manifest['split']['seed']}, valid "
        f"{manifest['split']['valid_fraction']}, test {manifest['split']['test_fraction']}).",
        "  A tune's split depends on its body alone: duplicates cannot straddle splits, and",
        "  adding tunes never moves the others.",
        "",
        "## Rejected tunes, by reason",
        "",
        "| reason | tunes |",
        "|---|--:|",
    ]
    for reason, count in list(manifest["rejected_by_reason"].items())[:15]:
        lines.append(f"| {reason.replace('|', '&#124;')} | {count} |")
    if manifest["rejections"]:
        lines += ["", "Each of them (the first 100):", "", "```"]
        lines += manifest["rejections"]
        lines.append("```")
    lines += ["", "## Rhythm, meter and mode of the kept tunes", ""]
    for title, key in (("rhythm", "rhythm"), ("meter", "meter"), ("mode", "mode")):
        values = ", ".join(f"{name} {count:,}" for name, count in list(manifest[key].items())[:14])
        lines.append(f"- **{title}**: {values}")
    lines.append("")
    return "\n".join(lines)


def write_manifest(corpus: Corpus, folder: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """Write ``manifest.json`` and ``README.md`` describing ``corpus`` into ``folder`` (default
    the checkout's ``corpora/``), atomically. Returns their paths."""
    folder = Path(folder) if folder is not None else corpora_dir()
    stats = corpus_stats(corpus)
    manifest = _manifest(corpus, stats)
    manifest_path, readme_path = folder / "manifest.json", folder / "README.md"
    _write_atomic(manifest_path, json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    _write_atomic(readme_path, _readme(manifest))
    return manifest_path, readme_path


# ---------------------------------------------------------------------------------------------
# The novelty check's reference: a corpus


@lru_cache(maxsize=2)
def default_novelty_index(sources: tuple[str, ...] | None = None):
    """The novelty index of the default corpus's training split (built once per process), or of
    every tune of the corpus that ``sources`` names (paths or music21 collection names): a
    :class:`folkrnn.validate.NoveltyIndex`."""
    from folkrnn.validate import NoveltyIndex  # lazily: validate is only needed here

    if sources is None:
        return NoveltyIndex.from_corpus(build_corpus())
    corpus = build_corpus(list(sources))
    if not len(corpus):
        raise OptionError("the corpus to compare against has no tunes")
    return NoveltyIndex.from_corpus(corpus, splits=SPLITS)
