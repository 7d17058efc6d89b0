"""Sampling tunes from an ABC language model: strategies, priming, conditioning and constrained decoding.

**Strategies** (those of the lecture notes behind folk-rnn), chosen by :class:`SampleConfig`:

- ``sample``: temperature sampling (the logits are divided by T), optionally cut to the k most
  probable tokens (top-k) and then to the smallest set whose probability reaches p (nucleus,
  top-p), in that order;
- ``greedy``: the most probable token every step (whether an untitled tune is a dance, the endings
  a form's parts take and where a loose form's parts close are still drawn from the seed: see
  below);
- ``beam``: beam search with W hypotheses, scored by total log-probability (of the tempered,
  masked distribution). Finished tunes are ranked by ``log_prob / tokens ** length_penalty``
  (``tokens`` counts every token after ``<s>``; ``length_penalty`` 0 ranks by the raw total,
  which favours short tunes, 1 by the mean log-probability per token; the default 0.7 lies
  between, as in machine translation).

**Conditioning** forces tokens: a given title is written character by character after ``<s>``
(the model reads it, as folk-rnn v1 did, so the title shapes the tune), and a given rhythm, meter
or mode fixes the ``R:``, ``M:`` or ``K:`` token (the rest of the header is still the model's).
A **prime** (body tokens) is forced after the header; the model continues it. A tune whose rhythm
is not given (nor named by its title) is a dance the model chooses, in one of the dance's meters
(:data:`folkrnn.tables.DANCES`), :data:`DANCE_SHARE` (85%) of the time, drawn from its seed; the
others take one of the other rhythms the model knows (``R:other``, ``R:air``: the corpus's tunes
with no dance R:, half of it) and a title that names no dance. ``rhythm="dance"``: always a dance;
``"any"``: any rhythm, the model's choice.

**Form** (:class:`folkrnn.abc.grammar.Form`): ``Conditions.form`` ("AABB", "AB", ..., "free")
holds for every tune; without it each tune takes the usual form of the dance its R: names, and the
grammar keeps its parts, repeats and endings, closes each part on its tonic (a first ending on any
note) and ends the tune with its last part. A rhythm with no usual form keeps parts of whole 4-bar
phrases, each closing after 1, 2, 3 or 4 phrases as often as its rhythm's parts do in the corpus
(:attr:`folkrnn.tables.Dance.part_closes`, drawn from the seed at the start of the phrase's last
bar), on its tonic too. A
repeated part closes with first and second endings as often as its dance's parts do in the corpus
(:attr:`folkrnn.tables.Dance.endings`), drawn from the tune's seed: the model alone all but never
writes them.

**The tune's own past**: a model with position features reads them with every token
(:class:`folkrnn.abc.features.Positions`, one per tune); ``SampleConfig.lookback`` adds a copy
prior to the tokens two bars, a phrase and a part ago offer where dance tunes repeat (_lookback),
``SampleConfig.first_rest`` a penalty on rests
until the tune has one, and ``SampleConfig.compass`` keeps each tune within a compass
(:class:`folkrnn.abc.grammar.Compass`).

**Constrained decoding** (on by default): :class:`AbcGrammar` follows the tune token by token, a
state machine over the ABC tokens that tracks the position in the bar in exact integer ticks (the
meter, lengths, broken rhythm, tuplets, chords, grace groups, ties) and the repeats and endings,
and before each step masks every token that would

- overfill the bar, or leave it in a state that no sequence of notes can fill exactly;
- write a bar line before the bar is full. Short bars are allowed only where players write them
  and abc2midi plays them through: the first bar (a pickup); the bar that completes the pickup,
  at the :| of a repeat that began with the pickup (written after its ``|:``, or the tune's own
  when the :| repeats from the start), or at a section line (``||``, ``|:``) followed by the
  pickup again; and the last bar of the tune. A repeat that began with the pickup ends with the
  bar that completes it;
- open a repeat or an ending that cannot be balanced: ``|:`` inside an open repeat, ``:|`` with
  nothing to close (a ``:|`` without ``|:`` only in the first section, repeating from the start),
  an ending 1 outside a repeat; after the ``:|`` that closes ending 1 only ending 2 may follow;
- end the tune anywhere but at a complete bar with its repeats closed. ``</s>`` after a complete
  bar that has no closing bar line gets one (``||``, or ``:|`` when a repeat is open): every tune
  ends with a closing bar, after at least ``min_bars`` bars.

The grammar is stricter than ABC where abc2midi reads ABC otherwise than our parser, or warns, so
that every tune it lets through passes the validator and ``abc2midi -c``: no inline ``[M:]``
changes (abc2midi times tuplets by the header meter, and checks the bars of a repeat against its
first pass); a chord's notes all as long as the first, and no length after ``]`` when they have
one (abc2midi takes that length alone), and at most four of them (the corpus's largest); the notes
of a tuplet alike, and no chords or grace notes in a tuplet, no tuplet in a tuplet; broken rhythm
only between two notes (or chords) of equal length, not into or out of a tuplet or after grace
notes; grace notes together shorter than four times their note (abc2midi plays them at a quarter
of their length, taken from it); ties only between single notes of the same pitch, and across
plain bar lines only; titles the model writes begin with a letter or digit.

**The length guard.** ``closing_tokens`` before ``max_tokens`` the grammar steers to an end (no
new repeats, endings, tuplets, chords or ornaments; ``</s>`` as soon as it is allowed). A tune
that still has not ended, or that reaches a state with no allowed token, cannot be finished: it
is retried with the next seed, and the failure is reported in :attr:`Sampled.failures`; it is
never returned as if it were whole.

**Batched and reproducible.** :func:`sample_tunes` runs many tunes through each step of the NumPy
LSTM. Each tune draws its random numbers from its own seed (a counter-based generator: draw t of
seed s is a hash of (s, t)), so a tune depends only on its seed and options, not on the others in
its batch. The one thing a batch changes is the floating-point rounding of the matrix products
(BLAS sums in another order for another batch size: under 1e-6 of the largest logit). A decision
that rounding could change (see :func:`choose_tokens`) is never taken in a batch: that tune is made again
on its own, as ``compose`` makes it, so tune i of a batch is the tune ``compose`` makes from its
seed, bit for bit. Drawing along the tokens ranked by probability keeps such decisions rare.

The loop is :func:`folkrnn.decode.loop.decode`, the one performances use too; this module resolves
a request (the conditions, the options) into the ABC grammar's constraint (:class:`AbcConstraint`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from folkrnn.abc.features import Positions, classes
from folkrnn.abc.grammar import (
    LOOSE_PART_BARS,
    TICKS_PER_UNIT,
    AbcGrammar,
    Compass,
    Form,
    TokenClass,
    classify,
    parse_form,
)
from folkrnn.abc.grammar import SPACE as _SPACE
from folkrnn.abc.titles import TitleWords, titles_ident
from folkrnn.abc.tokens import named_dance
from folkrnn.decode.beam import beam_search as beam
from folkrnn.decode.choice import choose_tokens, one_blas_thread, rounding_noise, uniforms
from folkrnn.decode.loop import DONE, Constraint, Row, decode
from folkrnn.decode.workers import MIN_PER_WORKER, default_workers
from folkrnn.errors import OptionError
from folkrnn.limits import MAX_BEAM_WIDTH
from folkrnn.tables import DANCE_SHARE, DANCES, ENDINGS_AGAIN, PART_CLOSES
from folkrnn.vocab import UnknownTokenError

__all__ = [
    "SampleConfig", "Conditions", "Sampled", "AbcGrammar", "STRATEGIES", "TICKS_PER_UNIT",
    "sample_tunes", "sample_one", "beam_search", "uniforms", "title_tokens",
    "choose_tokens", "rounding_noise", "one_blas_thread", "default_workers", "MIN_PER_WORKER", "AbcConstraint",
    "sample_headers", "check_request",
]

STRATEGIES = ("sample", "greedy", "beam")


# ---------------------------------------------------------------------------------------------
# Options


@dataclass(frozen=True)
class SampleConfig:
    """How tunes are drawn from the model. Persisted in summaries with ``asdict``."""

    strategy: str = "sample"  # "sample", "greedy" or "beam"
    temperature: float = 1.0  # the logits are divided by this (> 0); 1 is the model as trained
    top_k: int = 0  # sample only among the k most probable tokens (0: no cut)
    # then only the smallest set reaching this probability (1: no cut). The defaults of top_p,
    # lookback and first_rest were calibrated on the validation split (benchmarks/calibrate_sampling.py)
    # for the model trained in session 9 (3x256, 50 epochs): the setting the classifier tells from
    # real tunes least often. 6 runs of 300 tunes a setting: lookback 1.75, top-p 1, first rest
    # 0.75-1.25: 73.4-73.9% (lookback 1.5: 73.8-74.5%, 1.25: 75.1-75.5%; top-p 0.95 or 0.98 at any
    # lookback: 74.7% or more, the nucleus cutting the wide leaps and the rare notes that give real
    # tunes their range), bars coming back 27.2% (real 25.9%), half bars 43.3% (39.6%), tunes with
    # a rest inside 10.4% at first rest 1 (0.75: 12.2%; real 20.6%, its reels, jigs and hornpipes 16%).
    # Taken again in session 10, with the lookback bonus's cadence rule (_lookback): lookback 1.75,
    # top-p 1, first rest 1: 73.1% (first rest 0.75: 72.6%, 1.5: 73.3%; lookback 1.5: 73.1-73.8%, 2:
    # 75.6-76.4%; top-p 0.995: 74.0%, 0.99: 74.5%, 0.98: 76.6%), tunes holding a token the corpus
    # seldom writes 6.8% (real 6.1%; top-p 0.99: 2.3%). First rest taken again in session 13, in both
    # the default forms and --form free (calibrate_sampling.py --form free), lookback 1.75, top-p 1;
    # classifier default / free, and free tunes with a rest inside: first rest 1: 73.9 / 68.5%, 18.7%;
    # 1.25: 74.5 / 68.4%, 16.8%; 1.5: 74.5 / 68.2%, 14.2%; 1.75: 74.7 / 69.0%, 13.1%; 2: 74.5 / 69.9%,
    # 10.4%; 2.5: 75.2 / 71.1%, 7.7% (real 20.6%, the default forms' tunes 9.1% at 1.5). 1 to 1.5 are
    # within the runs' noise (about 1 point); 1.5 is the free output's lowest and the least that keeps
    # its tunes with a rest inside under issue 10's 15%: a fiddler seldom stops inside a dance tune.
    # Taken again in session 14 for the model that reads the bar a phrase ago (lookback-2, 50 epochs),
    # which copies bars more on its own (bars repeating 11.6% of the model alone's, against 4.5%), with
    # the bonus offering by a bar's place in its phrase (_lookback): top-p 1, first rest 1.5, lookback
    # 0.5 / 0.75 / 1 / 1.25 / 1.75: 77.6 / 75.3 / 75.5 / 74.4 / 75.5%, bars repeating 16.4 / 19.7 /
    # 23.1 / 26.5 / 33.1% (real 25.9%); at 1.25, first rest 0.75 / 1 / 1.5: 73.9 / 74.3 / 74.4%,
    # --form free 68.4 / 67.5 / 68.7%, free tunes with a rest inside 22.6 / 18.6 / 14.1%. First rest taken
    # again in session 15, when a free part came to close by its 16th bar (_LONGEST_PART): the runaway
    # parts had held many of the free tunes' rests. Lookback 1.25, first rest 0.5 / 0.75 / 1 / 1.5: default
    # 74.4 / 74.7 / 74.8 / 74.4% (rest inside 16.3 / 11.8 / 10.7 / 7.8%), --form free 68.5 / 68.5 / 68.6 /
    # 69.5% (19.3 / 16.6 / 12.4 / 8.9%): 1 is the least that keeps free tunes' rests under 15%. On the test
    # split (four seeds of 500) 1 against 1.5: default 72.3 / 72.2%, rests 12.2 / 8.4% (real 17.2%); free
    # 71.0 / 71.8%, rests 10.4-13.0% / 6.4-10.4%.
    top_p: float = 1.0
    beam_width: int = 4  # hypotheses beam search keeps
    length_penalty: float = 0.7  # beam: rank by log-probability / tokens ** this
    constrain: bool = True  # full bars, balanced repeats, a closing bar (AbcGrammar)
    max_tokens: int = 1000  # the length guard (folk-rnn stopped at 1,000 tokens too)
    closing_tokens: int = 64  # steer to an end this many tokens before max_tokens
    min_bars: int = 4  # a tune may not end before this many bars
    compass: int = 24  # semitones from a tune's lowest note to its highest, at most (0: any; Compass)
    lookback: float = 1.25  # added to the logit of each token (not a bar line, ending or field) two bars,
    # a phrase or a part ago offers (0: none; _lookback)
    max_title: int = 60  # title characters the model may write
    title_words: bool = True  # a title the model writes is made of its corpus titles' words, in their order,
    # where the model folder lists them (titles.txt; an older title_words.txt: the words alone;
    # folkrnn.abc.titles); False: any letters
    title_copies: bool = False  # a title the model writes may be a whole corpus title (False: never one; titles.txt)
    attempts: int = 10  # seeds tried for one tune before it is reported as not made
    first_rest: float = 1.0  # taken from the logits of rests until the tune has one (0: none)
    endings: bool = True  # a part held to a form closes with first and second endings as often as its
    # dance's do (folkrnn.tables.Dance.endings); False: as often as the model writes them

    def check(self) -> SampleConfig:
        """Raise OptionError for an option out of its range; return self."""
        if self.strategy not in STRATEGIES:
            raise OptionError(f"unknown strategy {self.strategy!r}; choose one of {', '.join(STRATEGIES)}")
        if not self.temperature > 0 or not np.isfinite(self.temperature):
            raise OptionError(f"--temperature must be greater than 0, not {self.temperature}")
        if not 0 <= self.lookback <= 10 or not np.isfinite(self.lookback):
            raise OptionError(f"--lookback must be between 0 and 10, not {self.lookback}")
        if not 0 <= self.first_rest <= 10 or not np.isfinite(self.first_rest):
            raise OptionError(f"--first-rest must be between 0 and 10, not {self.first_rest}")
        if self.compass and not 12 <= self.compass <= 60:
            raise OptionError(f"--compass must be 0 (none) or 12-60 semitones, not {self.compass}")
        if self.temperature > 100:
            raise OptionError(f"--temperature must be at most 100, not {self.temperature}")
        if self.top_k < 0:
            raise OptionError(f"--top-k must be 0 (off) or more, not {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise OptionError(f"--top-p must be in (0, 1], not {self.top_p}")
        if not 1 <= self.beam_width <= MAX_BEAM_WIDTH:
            raise OptionError(f"--beam-width must be between 1 and {MAX_BEAM_WIDTH}, not {self.beam_width}")
        if self.length_penalty < 0:
            raise OptionError(f"the length penalty must be 0 or more, not {self.length_penalty}")
        if self.max_tokens < 16 or self.closing_tokens < 0 or self.closing_tokens >= self.max_tokens:
            raise OptionError("max_tokens must be at least 16, and closing_tokens below it")
        if self.min_bars < 1 or self.attempts < 1 or self.max_title < 0:
            raise OptionError("min_bars and attempts must be at least 1, max_title at least 0")
        return self

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Conditions:
    """What is forced: the title, header values and a prime of body tokens."""

    title: str | None = None  # the title the model reads (None: the model writes one)
    rhythm: str | None = None  # R: value as the model's tokens name it ("reel"); None: a dance the model
    # chooses among the dances DANCE_SHARE of the time, else another rhythm; "dance": always a dance;
    # "any": any rhythm
    meter: str | tuple[str, ...] | None = None  # M: value ("6/8"), or the values the model may choose among
    mode: str | None = None  # K: mode ("maj", "min", "dor", "mix", ...)
    prime: tuple[str, ...] = ()  # body tokens the tune starts with
    form: str | None = None  # "AABB", "AB", "ABC", "AABBCC", ... or "free"; None: the usual form of the tune's dance
    part_bars: int | None = None  # bars in each part (None: the dance's, or 8 for repeated parts, 16 for others)


@dataclass
class Sampled:
    """One tune drawn from the model."""

    index: int  # which tune of the request this is
    seed: int  # the seed that made it (the last one tried)
    tokens: list[str] = field(default_factory=list)  # <s> ... </s>, closing bar included
    log_prob: float = 0.0  # sum of log-probabilities of the chosen tokens (forced ones excluded)
    failures: list[tuple[int, str]] = field(default_factory=list)  # seeds tried before, and why
    ok: bool = False  # False: no seed made a whole tune (the reasons are in failures)
    title_warnings: list[str] = field(default_factory=list)  # title characters left out

    @property
    def requested_seed(self) -> int:
        return self.failures[0][0] if self.failures else self.seed


# ---------------------------------------------------------------------------------------------
# Conditions -> forced tokens


def title_tokens(title: str, vocabulary) -> tuple[list[str], list[str]]:
    """A title as the model's title tokens (spaces as ``▁``), and the characters it cannot read.

    Accents are folded to ASCII first, as the tokenizer does; a character the vocabulary lacks
    tries its other case, else it is left out (and named in the second list).
    """
    import unicodedata

    folded = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode("ascii")
    folded = " ".join(folded.split())
    out, missing = [], []
    for char in folded:
        token = _SPACE if char == " " else char
        if token in vocabulary:
            out.append(token)
        elif char.swapcase() in vocabulary:
            out.append(char.swapcase())
        else:
            missing.append(char)
    while out and out[-1] == _SPACE:
        out.pop()
    return out, missing


@dataclass
class _Plan:
    """A request resolved against a vocabulary: the grammar and the forced tokens."""

    grammar: AbcGrammar
    classes: object  # the vocabulary classified for Positions, when the model reads position features or
    # the sampler offers repeats (the lookback bonus)
    features: int  # the position features the model reads with each token (0: none; 7: lookback-1,
    # 8: lookback-2, folkrnn.schemes)
    compass: Compass | None  # the compass every tune keeps (None: any)
    title: list[int]  # forced after <s>
    prime: list[int]  # forced when the body begins
    warnings: list[str]
    titles: TitleWords | None = None  # the words (and order) a title the model writes keeps to (None: any)
    rhythms: np.ndarray = field(default_factory=lambda: np.zeros(0, np.intp))  # the R: token ids
    title_dances: dict[str, int] = field(default_factory=dict)  # a dance a title may name -> its R: id
    ending: int = -1  # the token of a first ending ([1); -1: the model has none, or endings are the model's
    endings: dict[int, float] = field(default_factory=dict)  # R: id -> its dance's share of parts with endings
    # a tune whose rhythm nobody asked for: the R: ids of the dances it may take, and of the other
    # rhythms (air, other); it takes a dance DANCE_SHARE of the time, drawn from its seed (_dance_or_not)
    dance_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.intp))
    other_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.intp))
    other_titles: TitleWords | None = None  # the titles such a tune writes when it takes no dance
    # a loose form's parts: R: id -> of the parts of its rhythm that reach 1, 2, 3 phrases, the share that
    # close there (Dance.part_closes; _part_close)
    part_closes: dict[int, tuple[float | None, ...]] = field(default_factory=dict)


# Where a model folder's titles.txt gives the rhythms of its titles' tunes, a tune held to some dances
# takes its title from their tunes' titles, when they have at least this many (else from every title
# that names no other dance). Of the default corpus's training titles 1,759 of 3,622 are of tunes in a
# dance's R: (reel 670 tunes, jig 483, hornpipe 462; strathspey 99, march and slip jig 80: too few to
# write new titles from); most of the rest are Aird's, with no R:, airs and songs among them. Default
# output (4 x 500 tunes, seeds 2024-11024) with every title: rests in 14.4% of tunes, the classifier
# 73.6%; with the dance tunes' titles: 12.3%, 72.5%. A title shapes the tune the model writes, and an
# air's title ("O'er the Hills of Glenurchie") made a reel more of an air.
_MIN_DANCE_TITLES = 300


_TITLE_CHOICES: dict[tuple, tuple] = {}  # (ids of the titles and rhythms, dances, novel) -> (choice, titles, rhythms)


def _titles_for(titles: tuple[str, ...], dances: frozenset[str], rhythms: dict[str, tuple[str, ...]] | None,
                novel: bool) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The titles a tune held to ``dances`` makes its own from (those that name no other dance, and,
    by ``rhythms``, titles.txt's, the titles of tunes of those dances when there are enough of them:
    :data:`_MIN_DANCE_TITLES`), and, with ``novel``, the other titles, which it may not write whole.
    Worked out once per model and dances (a server asks for it with every tune)."""
    key = (id(titles), id(rhythms), dances, novel)
    known = _TITLE_CHOICES.get(key)
    if known is not None and known[1] is titles and known[2] is rhythms:  # held there: the ids are theirs
        return known[0]
    chosen = [title for title in titles if named_dance(title) in dances | {"other"}]
    if rhythms:  # (a title titles.txt gives no rhythm may be of any)
        of_dances = [title for title in chosen if title not in rhythms or dances.intersection(rhythms[title])]
        if len(of_dances) >= _MIN_DANCE_TITLES:
            chosen = of_dances
    kept = set(chosen)
    forbidden = tuple(title for title in titles if title not in kept) if novel else ()
    if len(_TITLE_CHOICES) >= 32:
        _TITLE_CHOICES.clear()  # (one step, whatever other threads do)
    _TITLE_CHOICES[key] = ((tuple(chosen), forbidden), titles, rhythms)
    return tuple(chosen), forbidden


def _plan(vocabulary, conditions: Conditions, config: SampleConfig, features: int = 0,
          title_words: Sequence[str] | None = None, titles: Sequence[str] | None = None,
          title_rhythms: dict[str, tuple[str, ...]] | None = None) -> _Plan:
    warnings: list[str] = []
    fixed: dict[str, frozenset[int]] = {}
    for letter, values, option in (("R", conditions.rhythm, "--rhythm"), ("M", conditions.meter, "--meter"),
                                   ("K", conditions.mode, "--mode")):
        if values is None or (letter == "R" and values in ("any", "dance")):
            continue
        ids = set()
        for value in (values,) if isinstance(values, str) else values:
            token = f"{letter}:{value}" if letter != "K" else f"K:C{value}"
            if token not in vocabulary:
                known = sorted(t[2:] if letter != "K" else t[3:] for t in vocabulary
                               if t.startswith(f"{letter}:") and len(t) > 2)
                raise OptionError(f"{option} {value}: the model knows no {token} token; it knows "
                                  f"{', '.join(known) or 'none'}")
            ids.add(vocabulary.id(token))
        if ids:
            fixed[letter] = frozenset(ids)
    title_ids: list[int] = []
    title_length = None
    if conditions.title is not None:
        if not any(t == _SPACE or len(t) == 1 and t.isalpha() and t.lower() not in "abcdefg"
                   for t in vocabulary):
            raise OptionError("this model was trained without titles; it cannot read --title")
        chars, missing = title_tokens(conditions.title, vocabulary)
        if missing:
            warnings.append(f"the model knows no {', '.join(repr(c) for c in dict.fromkeys(missing))} "
                            "in titles; left out of what it reads")
        title_ids = vocabulary.encode(chars)
        title_length = len(title_ids)
    prime_ids = []
    for token in conditions.prime:
        if token not in vocabulary:
            raise UnknownTokenError(token, vocabulary.nearest(token))
        prime_ids.append(vocabulary.id(token))
    # the rhythms the model knows: R: token id -> dance (folkrnn.tables.DANCES), and the dances among
    # them (air, song, other aside)
    rhythms = {vocabulary.id(f"R:{name}"): dance for name, dance in DANCES.items() if f"R:{name}" in vocabulary}
    dances = {token: dance for token, dance in rhythms.items() if dance.meters}
    asked = None if conditions.meter is None else \
        {conditions.meter} if isinstance(conditions.meter, str) else set(conditions.meter)
    dance_ids, other_ids = (), ()
    if conditions.rhythm in (None, "dance") and "R" not in fixed and dances:
        # the default model is for dance music: a tune whose rhythm is not asked for is a dance, one
        # written in the meter asked for when there is one, DANCE_SHARE of the time; the others take
        # one of the corpus's other rhythms (an air, a tune with no dance R:). "dance": always a dance
        fitting = [token for token, dance in dances.items() if asked is None or asked & set(dance.meters)]
        dance_ids = tuple(fitting or dances)
        if conditions.rhythm is None:
            other_ids = tuple(token for token in rhythms if token not in dances)
        fixed["R"] = frozenset(dance_ids + other_ids)
    # a dance in its own meters, unless --meter says otherwise
    rhythm_meters = {} if asked is not None else {
        token: [vocabulary.id(f"M:{m}") for m in dance.meters if f"M:{m}" in vocabulary]
        for token, dance in dances.items()}
    form, rhythm_forms = _forms(conditions, rhythms)
    # a title the model writes: of the words of its corpus' titles, in their order (the model folder's
    # titles.txt; an older folder's title_words.txt: the words alone); when R: is held to some dances,
    # of the titles that name no other dance (a jig is not "Mrs Baird's Strathspey"), and where
    # titles.txt gives the rhythms of its titles' tunes, of those dances' titles (_titles_for)
    # (a tune drawn to take another rhythm than a dance writes a title that names no dance: others)
    chosen = others = None  # (words, titles, novel, forbidden)
    if (titles or title_words) and config.title_words and config.constrain and title_length is None \
            and config.max_title:
        novel, forbidden = not config.title_copies, ()
        if titles and "R" in fixed:
            if other_ids:
                # every title that names no dance: with the other rhythms' own (airs' among them), 4 x 500
                # free tunes rested in 14.8% (one seed 16.2%), with these 14.2% (at most 15.0%)
                names = frozenset(vocabulary.tokens[token][2:] for token in other_ids)
                other, other_forbidden = _titles_for(tuple(titles), names, None, novel)
                others = (title_words or (), other, novel, other_forbidden) if other else None
            held = frozenset(vocabulary.tokens[token][2:] for token in (dance_ids or fixed["R"]))
            titles, forbidden = _titles_for(tuple(titles), held, title_rhythms, novel)
        chosen = (title_words or (), titles, novel, forbidden)
    key = (tuple(vocabulary.tokens), config.constrain, tuple(sorted((k, tuple(sorted(v))) for k, v in fixed.items())),
           title_length, config.min_bars, config.max_title, form, tuple(sorted(rhythm_forms.items())),
           tuple(sorted((k, tuple(v)) for k, v in rhythm_meters.items())),
           # a grammar per word list: requests of one kin (AbcConstraint.kin) share their words
           titles_ident(vocabulary.tokens, *chosen) if chosen else None,
           titles_ident(vocabulary.tokens, *others) if others else None,
           not prime_ids)  # a prime's first bar is kept as written, a pickup of any length, and its parts
    # close where the musician closed them (only the tune's last part on the tonic: AbcGrammar's part_tonics)
    grammar = _GRAMMARS.get(key)
    if grammar is not None and grammar.learnt > MAX_GRAMMAR_STATES:  # a server's: memory stays bounded
        del _GRAMMARS[key]
        grammar = None
    if grammar is None:
        grammar = AbcGrammar(vocabulary.tokens, constrain=config.constrain, fixed=fixed,
                             title_length=title_length, min_bars=config.min_bars,
                             max_title=config.max_title, form=form, rhythm_forms=rhythm_forms,
                             rhythm_meters=rhythm_meters, short_pickups=not prime_ids,
                             part_tonics=not prime_ids)
        if len(_GRAMMARS) >= 32:  # a server sees many titles (a title length is a grammar)
            _GRAMMARS.pop(next(iter(_GRAMMARS)))
        _GRAMMARS[key] = grammar
    compass = None
    if config.constrain and config.compass:
        key = (tuple(vocabulary.tokens), config.compass)
        compass = _COMPASSES.get(key) or _COMPASSES.setdefault(key, Compass(vocabulary.tokens, config.compass))
    follow = features or (config.lookback and config.constrain)
    endings = {token: dance.endings for token, dance in dances.items() if dance.endings is not None} \
        if config.endings and config.constrain else {}
    return _Plan(grammar, classes(vocabulary.tokens) if follow else None, features, compass, title_ids,
                 prime_ids, warnings, TitleWords(grammar, *chosen) if chosen else None,
                 np.array([i for i, token in enumerate(vocabulary.tokens) if token.startswith("R:")], np.intp),
                 {vocabulary.tokens[token][2:]: token for token in dances},
                 vocabulary.id("[1") if endings and "[1" in vocabulary else -1, endings,
                 np.array(dance_ids if other_ids else (), np.intp), np.array(other_ids, np.intp),
                 TitleWords(grammar, *others) if others else None,
                 _loose_parts(rhythms, conditions, config))


_COMPASSES: dict[tuple, Compass] = {}


def _loose_parts(rhythms: dict, conditions: Conditions, config: SampleConfig) -> dict[int, tuple[float | None, ...]]:
    """The plan's ``part_closes``, where tunes take their rhythm's loose form of 4-bar phrases (no
    --form, no --part-bars; the grammar on): R: id -> Dance.part_closes (PART_CLOSES where it has none),
    for the rhythms (``rhythms``: R: id -> dance) with no usual form."""
    if conditions.form is not None or conditions.part_bars is not None or not config.constrain:
        return {}
    return {token: dance.part_closes or PART_CLOSES for token, dance in rhythms.items() if dance.form == "free"}


def check_request(vocabulary, conditions: Conditions, config: SampleConfig, features: int = 0) -> list[str]:
    """Resolve a request against the vocabulary as :func:`sample_tunes` will, before sampling:
    raises OptionError for what the model cannot do (an R: it has no token for, a form that
    cannot be kept); returns the warnings (title letters it knows no token for)."""
    return list(_plan(vocabulary, conditions, config.check(), features).warnings)


def _forms(conditions: Conditions, dances: dict) -> tuple[Form | None, dict[int, Form | None]]:
    """The form every tune takes (or None), and the form by R: token (``dances``: R: token id ->
    dance, every rhythm the model knows) for the rest: a given ``--form`` holds for every tune;
    without one, each tune takes the usual form of the dance its R: names (a rhythm with none: parts
    of whole phrases, a multiple of 4 bars, as 97% of real parts are)."""
    if conditions.form is not None:
        return parse_form(conditions.form, conditions.part_bars), {}
    if conditions.part_bars is not None and not 1 <= conditions.part_bars <= 64:
        raise OptionError(f"--part-bars must be between 1 and 64, not {conditions.part_bars}")
    return None, {token: Form((), conditions.part_bars or LOOSE_PART_BARS) if dance.form == "free"
                  else parse_form(dance.form, conditions.part_bars or dance.part_bars)
                  for token, dance in dances.items()}


# Grammars by vocabulary and conditions: the states each has learnt are kept for the next request,
# up to a bound (a grammar past it is started afresh: a server runs for weeks)
_GRAMMARS: dict[tuple, AbcGrammar] = {}
MAX_GRAMMAR_STATES = 30_000  # about 2,000 tunes make 7,500


# ---------------------------------------------------------------------------------------------
# The ABC grammar as the decoding loop's constraint (folkrnn.decode.loop)


class _Row(Row):
    """One tune being sampled: where the grammar stands (``sid``), and its compass."""

    __slots__ = ("sid", "compass", "span", "rested", "again", "bars")

    def __init__(self, index: int, seed: int, bos: int, sid: int, title: list[int],
                 classes=None, compass: Compass | None = None, width: int = 0) -> None:
        # the title is forced now, the prime later; a model that reads position features (``width``
        # of them; 0: none) or the lookback bonus follows where the tune stands (Positions)
        super().__init__(index, seed, bos, title, Positions(classes, width or 7) if classes is not None else None)
        self.sid = sid
        self.compass = compass  # its lowest and highest notes so far, when a compass holds
        self.span = compass.start() if compass is not None else None
        self.rested = False  # a rest has been written in the tune's body
        # in a second ending: (where it starts, where the first ending starts, the first's tokens
        # before its last note or rest, that note), to keep it from copying the first (_fresh_endings)
        self.again: tuple[int, int, int, int] | None = None
        self.bars = _BarCounts() if self.tracker is not None else None  # its bars, for the lookback bonus

    @property
    def positions(self) -> Positions | None:
        return self.tracker

    def append(self, token: int) -> None:
        """Write one more token (and follow where the tune now stands)."""
        self.ids.append(token)
        if self.tracker is not None:
            self.feature = self.tracker.push(token)
        if self.compass is not None:
            self.compass.take(self.span, token)

    def fork(self, sid: int) -> _Row:
        """A copy to go on differently (beam search)."""
        row = _Row(self.index, self.seed, self.ids[0], sid, [])
        row.ids, row.forced, row.log_prob, row.rested = list(self.ids), list(self.forced), self.log_prob, self.rested
        row.again = self.again
        row.bars = self.bars.clone() if self.bars is not None else None
        if self.tracker is not None:
            row.tracker, row.feature = self.tracker.clone(), self.feature
        if self.compass is not None:
            row.compass, row.span = self.compass, list(self.span)
        return row


def _restrict(plan: _Plan, masks: np.ndarray, rows: list[_Row], sids: np.ndarray | None = None) -> None:
    """In place: what the grammar's masks leave to each row's own history (a tie's pitch, the compass,
    the words of a title the model writes, the dance its title names, the endings its form's parts
    take)."""
    if sids is None:
        sids = np.fromiter((row.sid for row in rows), np.intp, len(rows))
    plan.grammar.restrict_ties(masks, sids, [row.ids for row in rows])
    if plan.compass is not None:
        plan.compass.restrict(masks, [row.span if not row.forced else None for row in rows])
    if plan.titles is not None:
        at = plan.titles.rows(sids)
        if len(at) and plan.other_titles is not None:
            other = ~_takes_dance([rows[i] for i in at.tolist()])
            if other.any():
                plan.other_titles.restrict(masks, at[other], [rows[i].ids for i in at[other].tolist()])
            at = at[~other]
        if len(at):
            plan.titles.restrict(masks, at, [rows[i].ids for i in at.tolist()])
    _title_dance(plan, masks, rows)
    _dance_or_not(plan, masks, rows)
    _endings(plan, masks, rows, sids)


# The draws that decide endings: the same stream as the token choices' (folkrnn.decode.choice.uniforms),
# far past any step a row takes
_ENDING_DRAWS = 1 << 40


def _endings(plan: _Plan, masks: np.ndarray, rows: list[_Row], sids: np.ndarray) -> None:
    """In place: where a part held to a form may close with first and second endings of one bar
    (``[1`` after the bar before its last, :meth:`AbcGrammar.before_last_bar`), the tune takes them
    as often as its dance's repeated parts do in the corpus (:attr:`folkrnn.tables.Dance.endings`;
    ``ENDINGS_AGAIN`` after a part that had them), drawn from the row's seed, and otherwise a plain
    ``:|``. The model alone gives ``[1`` there 0.3% of the time (20 real first endings of the
    validation split: 0.4%), so that its tunes had none against 13% of real dance tunes."""
    ending = plan.ending
    if ending < 0 or not len(rows):
        return
    at, shares = [], []
    for i in np.flatnonzero(masks[:, ending]).tolist():
        row = rows[i]
        if row.forced:  # a prime's own tokens
            continue
        if not plan.grammar.before_last_bar(int(sids[i])):
            continue
        share = _by_rhythm(row, plan.endings)
        if share is not None:
            at.append(i)
            shares.append(ENDINGS_AGAIN if ending in row.ids else share)
    if not at:
        return
    draws = uniforms([rows[i].seed for i in at], [len(rows[i].ids) + _ENDING_DRAWS for i in at])
    for i, take in zip(at, (draws < np.array(shares)).tolist()):
        if take:
            masks[i] = False
        masks[i, ending] = take


def _by_rhythm(row: _Row, table: dict):
    """What ``table`` (R: token id -> value) gives the rhythm ``row``'s tune wrote (None: none it holds).
    The grammar forgets the R: once the body starts (its states are shared), so the row's tokens say."""
    return next((table[token] for token in row.ids if token in table), None)


_DANCE_DRAW = 1 << 41  # its draw: the token choices' stream, far past any step a row takes (and the endings')


def _dance_or_not(plan: _Plan, masks: np.ndarray, rows: list[_Row]) -> None:
    """In place: where R: comes next in a tune whose rhythm nobody asked for, it is a dance
    :data:`DANCE_SHARE` of the time, drawn from the row's seed, and otherwise one of the other rhythms."""
    if not len(plan.other_ids) or not len(rows):
        return
    at = [i for i in np.flatnonzero(masks[:, plan.other_ids].any(axis=1)).tolist()
          if masks[i, plan.dance_ids].any() and not rows[i].forced]
    if not at:
        return
    for i, dance in zip(at, _takes_dance([rows[i] for i in at]).tolist()):
        masks[i, plan.other_ids if dance else plan.dance_ids] = False


def _takes_dance(rows: list[_Row]) -> np.ndarray:
    """Per row: whether its tune, if nobody asked for its rhythm, is to be a dance (drawn from its seed)."""
    return uniforms([row.seed for row in rows], [_DANCE_DRAW] * len(rows)) < DANCE_SHARE


_CLOSE_DRAWS = 3 << 40  # the draws that close a loose form's parts: far past any step, the endings' and the dance's


def _part_close(plan: _Plan, row: _Row, phrases: int) -> bool:
    """Whether the part of a loose form that ``row`` is writing closes with the bar now starting,
    the last of its ``phrases``-th phrase: as often as the parts of its rhythm that reach so far
    do in the corpus (:attr:`folkrnn.tables.Dance.part_closes`), drawn from the row's seed; the
    longest part always. Held to it (AbcGrammar.part_close), the part closes on its tonic, as a
    strict form's do. The model alone ran on: of a march's parts 47% were 16 bars (real 7%), of
    other tunes' 55% (real 7%); their last note was the tonic in 71% and 66% (real 96% and 92%)."""
    closes = _by_rhythm(row, plan.part_closes)
    share = closes[phrases - 1] if closes is not None and phrases <= len(closes) else None
    return share is None or bool(uniforms([row.seed], [len(row.ids) + _CLOSE_DRAWS])[0] < share)


def _title_dance(plan: _Plan, masks: np.ndarray, rows: list[_Row]) -> None:
    """In place: a tune whose title names a dance ("O'Reilly's Reel", "The Reel of Fife":
    :func:`folkrnn.abc.tokens.named_dance`) writes that dance in R:, where its masks allow it, as a
    title given on the command line sets it. In the corpus 508 of the 527 titles that end with a
    dance's name are of that dance. Of 500 tunes that wrote their own title, 24 named another dance
    at its end than the one they were written in when nothing held R: to the title; with R: held to
    the dance the title ends with, 24 of 500 (seed 2024) still named one before its end ("Paine's
    Reel of Angus" a slip jig); now none."""
    rhythms = plan.rhythms
    if not len(rhythms) or not len(rows):
        return
    tokens = plan.grammar.tokens
    for i in np.flatnonzero(masks[:, rhythms].any(axis=1)).tolist():  # rows where R: comes next
        title = "".join(" " if tokens[t] == _SPACE else tokens[t] for t in rows[i].ids[1:])
        token = plan.title_dances.get(named_dance(title))
        if token is not None and masks[i, token]:
            masks[i, rhythms] = False
            masks[i, token] = True


# The features whose offers the lookback bonus favours: back2 and backpart (folkrnn.abc.features), and
# the tracker's offer of the bar a phrase ago (Positions.offer4; lookback-2's ``phrase`` column).
# Not back1, the bar just before: favouring it makes a bar come back over and over (3 or more times
# in a row in 11.7% of 300 tunes, against 2.3% without it and none of the real validation tunes).
_BACK2, _BACKPART = 4, 5
# ... and only in a part's first 16 bars (the ``bar`` feature, 1 + the part's full bars so far, below
# 17), the longest part a dance tune has. Past them a part that had missed its end became a loop, each
# bar copying the one two bars back: with --form free, bars repeating an earlier bar were 43.0% of 500
# tunes with the bonus there, 23.3% without (real tunes 28.8%).
_BAR_FEATURE, _LOOKBACK_BARS = 1, 16
# Which bar it offers depends on the bar's place in its stretch of 8 (a part's bars 1-8, 9-16), as
# dance tunes repeat: a part's second 4-bar phrase begins as its first did, and its third bar may be
# its first again. In the default corpus's tunes written AABB in 8-bar parts without endings (351),
# bar 5 is bar 1 again in 78% of A parts and 58% of B parts, bar 6 bar 2 in 64% and 38%, bars 7 and
# 8 bars 3 and 4 in 31% and 23%; bar 3 is bar 1 in 33% and 29%. A bar copies the bar two back
# without the bar four back being the same in at most 2% of any of bars 4-8, and bar 4 is bar 2 in
# 1%. The bonus offers two bars back in a stretch's 3rd bar only, and the bar a phrase (four bars)
# ago in its bars 5-8; what a part ago offers, in every bar. Offering two bars back everywhere but a
# stretch's 8th bar, as before, wrote a part's second phrase as its first in 29% of A parts (bar 5)
# and bar 4 as bar 2 in 20% (seed 2024, 1,000 tunes); the model that reads the bar a phrase ago, with
# this rule, 62% and 0%, bar 6 as bar 2 in 58%. Validation split (6 runs of 300 tunes, first rest
# 1.5), the classifier at the bonus that brings bars back as often as real tunes (25.9%): 74.4% at
# 1.25 (bars repeating 26.5%), against 74.9% (23.4%) with the old offers and 74.2-74.5% with two bars
# back offered in all of a stretch's first phrase; at 1.75, 75.5% (33.1%).
_BACK2_PLACES = np.array([place == 2 for place in range(8)])
_PHRASE_PLACES = np.array([place >= 4 for place in range(8)])
# A later part closes as the part before it did: in those tunes, bars 15 and 16 are bars 7 and 8 again
# (the B part's cadence is the A part's) in 30% and 54%, and bars 11 and 12 (a phrase back) in 8% and
# 13%. With the bonus offering both alike, the default output (seed 2024, 1,000 tunes; 189 such tunes)
# wrote them as bars 7 and 8 in 7% and 19%, as bars 11 and 12 in 13% and 3%. In a stretch's last two
# bars, where the part has a part before it, the bonus offers that part's bar alone, twice over: 29%
# and 29%, and 6% and 2% (with --first-rest 1, 30% and 29%, 6% and 3%; with every part closing on its
# tonic, AbcGrammar._final_end, 26% and 54%, 6% and 2%). Validation split (6 runs of 300): classifier
# 74.6% before, 74.4% after; bars repeating an earlier bar 26.5% and 27.4% (real 25.9%).
_CADENCE_PLACES = np.array([place >= 6 for place in range(8)])
# How long a part of a tune held to no form (--form free) may run. The position features count a part's
# bars up to 16 (folkrnn.abc.features), and past them the model loses its place: with --form free, 53
# of 500 tunes (seed 2024) had a part of more than 16 bars, 41 of more than 24 and one of 139, whose
# bars wandered through long notes and rests; the model alone (--lookback 0), 49, 43 and 143. Real
# tunes' parts run past 16 bars in 109 of the default corpus's 4,348 tunes (111 of 9,225 parts), past 24
# in 27; the longest is 48. So from a free part's 16th bar a bar line that could close the
# part must (AbcConstraint._end_long_parts); where none could (a repeat opened by a pickup closes only
# after the bar completing it; a tied note crosses a plain bar line), a part that has run its 16 bars
# steers the tune to its end, as the length guard does (AbcGrammar.closing). With --form free (seed
# 3024, 1,000 tunes, --first-rest 1) 13 tunes have a part of 17 bars and none a longer one.
_LONGEST_PART = 16
# What the bonus never favours: the tune's structure (bar lines, endings, inline key and meter
# fields, its end), which is the model's and the form's to choose. Favoured, the plain bar line two
# bars before a part's last bar kept parts from ending: with --form free, 19% of 500 tunes ran as one
# part of up to 154 bars, and parts a multiple of 4 bars were 86.0% (92.5% with the structure left out).
_STRUCTURE = frozenset(int(TokenClass[name]) for name in ("BAR", "ENDING", "EOS", "FIELD_K", "FIELD_M"))
_COPYABLE: dict[tuple, np.ndarray] = {}


def copyable(tokens: Sequence[str]) -> np.ndarray:
    """Per offer (0: none, else 1 + a token id): whether the lookback bonus may favour it."""
    key = tuple(tokens)
    table = _COPYABLE.get(key)
    if table is None:
        table = np.array([False] + [classify(token)[0] not in _STRUCTURE for token in key])
        _COPYABLE[key] = table
    return table


# A bar the tune has already written this many times offers no more bonus. The bonus makes bars come
# back about as often as in real tunes, but it also kept copying one bar: a jig's A part was
# "dBB dBG |" eight times. Tunes with one bar written 5 times or more (folkrnn.form, one_bar_five_times)
# were 9.9% of the default output (four seeds of 500, 2024-11024) and 15.7% with --form free, against
# 5.0% of the real test tunes and 2.6% of the training split's; with this rule 4.35% and 6.95%. Bars
# and half bars repeating an earlier one hardly moved (seed 2024: 26.1 -> 25.2%, 42.4 -> 41.6%), nor
# the classifier (validation split, 6 runs of 300: 74.5 -> 74.2%, free 68.2 -> 69.0%; test split, eight
# seeds: 72.3 -> 72.8%). At 3 the bonus gave up too soon (bars repeating 23.2%, free 19.4%).
_WORN = 4


class _BarCounts:
    """The full bars a tune has written, as its :class:`~folkrnn.abc.features.Positions` keeps them
    (a map of what was written at each point of the bar), counted by their tokens (bar lines and
    endings left out): whether the bar an offer comes from, two bars, a phrase or a part back, has been
    written ``_WORN`` times. :meth:`follow` reads each full bar as the tracker takes it in, at every step."""

    __slots__ = ("counts", "known", "any_worn")

    def __init__(self) -> None:
        self.counts: dict[tuple, int] = {}  # a bar's tokens -> how often it is written
        self.known: dict[int, tuple[dict, tuple]] = {}  # id of a bar's map -> (the map, its tokens)
        self.any_worn = False  # a bar has been written _WORN times

    def clone(self) -> _BarCounts:
        other = _BarCounts.__new__(_BarCounts)
        other.counts, other.known, other.any_worn = dict(self.counts), dict(self.known), self.any_worn
        return other

    def _tokens(self, bar: dict | None) -> tuple | None:
        entry = self.known.get(id(bar)) if bar is not None else None
        return entry[1] if entry is not None and entry[0] is bar else None

    def follow(self, tracker: Positions, lines: frozenset[int]) -> None:
        """Count the full bars the tracker has taken in since the last call (``lines``: the ids of
        bar lines and endings)."""
        for bar in tracker.history:  # the last two full bars
            if self._tokens(bar) is None:
                tokens = tuple(token for token in bar.values() if token not in lines)
                self.known[id(bar)] = (bar, tokens)  # (the map kept, so that its id is not reused)
                count = self.counts[tokens] = self.counts.get(tokens, 0) + 1
                self.any_worn = self.any_worn or count >= _WORN

    def worn(self, bar: dict | None) -> bool:
        """Whether ``bar`` (a map the tracker keeps) is a full bar written ``_WORN`` times or more."""
        tokens = self._tokens(bar)
        return tokens is not None and self.counts[tokens] >= _WORN


def _lookback(logits: np.ndarray, rows: list[_Row], bonus: float, favoured: np.ndarray) -> np.ndarray:
    """The logits with ``bonus`` added to each token the tune offers to repeat here (what was written
    at this point of the bar two bars ago, four bars ago in the part, and at this bar of the part
    before): a copy prior, as the Lookback RNN's "repeat" labels give its melody model. ``favoured``
    (indexed by offer, :func:`copyable`) leaves the structure out: bar lines, endings, inline
    fields, the end. Two bars back is offered in the 3rd bar of a part's stretch of 8 bars, four
    bars back in its 5th to 8th (:data:`_BACK2_PLACES`, :data:`_PHRASE_PLACES`), and in its last two
    bars, where the part has a part before it, that part's bar alone, with twice the bonus
    (:data:`_CADENCE_PLACES`); nothing past a
    part's 16th bar, nor what a bar the tune has written ``_WORN`` times offers (``row.bars``, where
    a row has them: :class:`_BarCounts`). A new array; the model's own when bonus is 0."""
    if not bonus or not rows or rows[0].tracker is None:
        return logits
    logits = logits.copy()
    offers = np.array([row.feature for row in rows], np.int64)  # (B, F): an offer is 1 + its token id, 0 none
    bars = offers[:, _BAR_FEATURE]
    within = (bars > 0) & (bars <= _LOOKBACK_BARS)
    place = (bars - 1) % 8  # the bar's place in its stretch of 8
    back2 = offers[:, _BACK2] * (within & _BACK2_PLACES[place])
    phrase = np.array([row.tracker.offer4 for row in rows], np.int64) * (within & _PHRASE_PLACES[place])
    backpart = offers[:, _BACKPART] * within
    back2, phrase, backpart = (np.where(favoured[offer], offer, 0) for offer in (back2, phrase, backpart))
    # nor what a bar the tune has written _WORN times offers (the tracker's bar two back, the bar a
    # phrase ago, this bar of the part before)
    for i, row in enumerate(rows):
        counts = getattr(row, "bars", None)
        if counts is not None and counts.any_worn:
            for offer, bar in zip((back2, phrase, backpart), row.tracker.offering_bars()):
                if offer[i] and counts.worn(bar):
                    offer[i] = 0
    cadence = _CADENCE_PLACES[place] & (backpart > 0)  # ... where the part before offers its own close
    phrase[cadence] = 0
    # each token offered gets the bonus once (two may offer the same), the close of the part before twice
    gains = np.full(len(rows), float(bonus))
    for offered, gain in ((back2, gains), (np.where(phrase != back2, phrase, 0), gains),
                          (np.where((backpart != back2) & (backpart != phrase), backpart, 0), gains * (1 + cadence))):
        at = np.flatnonzero(offered)
        logits[at, offered[at] - 1] += gain[at]
    return logits


def _first_rest(logits: np.ndarray, rows: list[_Row], penalty: float, rests: np.ndarray, grammar) -> np.ndarray:
    """The logits with ``penalty`` taken from each rest's until the tune has one (in its body): real
    tunes that rest at all rest often (3.4 rests in a tune that has one, in the corpus's reels, jigs
    and hornpipes; 16% of them have one), where the model's tunes scattered single rests through
    many more (2.0 in a tune with one, 20% of tunes; the model alone, 45%). A new array; the model's
    own when the penalty is 0."""
    if not penalty or not rows or not len(rests):
        return logits
    at = [i for i, row in enumerate(rows) if not row.rested and grammar.in_body(row.sid)]
    if not at:
        return logits
    logits = logits.copy()
    logits[np.ix_(at, rests)] -= penalty
    return logits


def _first_ending(ids: list[int], endings: tuple[int, int, int], sounds: frozenset[int]) -> tuple | None:
    """For ``ids`` that have just opened a second ending (``endings``: the ids of ``[1``, ``[2`` and
    ``:|``): (where the second ending starts, where the first one did, how many of the first's
    tokens come before its last note or rest, that note); None when there is no first ending to
    compare with."""
    first, _, close = endings
    try:
        start = len(ids) - 2 - ids[-2::-1].index(first)  # the [1 before this [2
        end = ids.index(close, start)
    except ValueError:
        return None
    sounding = [k for k in range(start + 1, end) if ids[k] in sounds]
    if not sounding:
        return None
    return len(ids), start + 1, sounding[-1] - start - 1, ids[sounding[-1]]


class AbcConstraint(Constraint):
    """The ABC grammar (:class:`AbcGrammar`, the compass, tied pitches and the lookback bonus) for
    :func:`folkrnn.decode.loop.decode`: a request resolved against a vocabulary (``plan``) and the
    sampling options (``config``); the rows are tunes, their results :class:`Sampled`."""

    def __init__(self, plan: _Plan, config: SampleConfig, vocabulary) -> None:
        self.plan, self.config, self.vocabulary = plan, config, vocabulary
        self.grammar = plan.grammar
        self.bos, self.eos = vocabulary.bos_id, vocabulary.eos_id
        # the length guard: a row this long fails; from this length on the grammar steers to an end
        self._longest, self._closing = config.max_tokens, config.max_tokens - config.closing_tokens
        self._copyable = copyable(self.grammar.tokens)
        self._rests = np.array([i for i, token in enumerate(self.grammar.tokens)
                                if classify(token)[0] == TokenClass.REST], np.intp)
        self._rest_set = frozenset(self._rests.tolist())
        # first and second endings ([1 ... :| [2 ...): a second ending may not copy the first (with
        # the grammar on, as the compass, the endings' shares and the lookback bonus)
        ids = {token: i for i, token in enumerate(self.grammar.tokens)}
        self._again = (ids["[1"], ids["[2"], ids[":|"]) \
            if config.constrain and {"[1", "[2", ":|"} <= ids.keys() else None
        self._sounds = frozenset(i for i, token in enumerate(self.grammar.tokens)
                                 if classify(token)[0] in (TokenClass.NOTE, TokenClass.REST))
        # what a bar's tokens leave out when _BarCounts counts them: bar lines and endings
        self._bar_lines = frozenset(i for i, token in enumerate(self.grammar.tokens)
                                    if classify(token)[0] in (TokenClass.BAR, TokenClass.ENDING))
        # a part of a free tune that has run _LONGEST_PART bars ends at its next bar line (_end_long_parts)
        self._plain_bar = ids.get("|")
        self._part_ends = np.array([ids[token] for token in ("||", ":|", "|:") if token in ids] + [self.eos], np.intp)

    def start(self, index: int, seed: int) -> _Row:
        plan = self.plan
        return _Row(index, seed, self.bos, self.grammar.start, plan.title, plan.classes, plan.compass, plan.features)

    def masks(self, rows: list[_Row]) -> np.ndarray:
        sids = np.fromiter((row.sid for row in rows), np.intp, len(rows))
        masks = self.grammar.masks(sids)
        _restrict(self.plan, masks, rows, sids)
        self._fresh_endings(masks, rows)
        self._end_long_parts(masks, rows)
        return masks

    def _end_long_parts(self, masks: np.ndarray, rows: list[_Row]) -> None:
        """In place: in a tune held to no form (``--form free``, or a dance whose usual form is free),
        a part in its :data:`_LONGEST_PART`-th bar or later closes at the next bar line (``||``,
        ``:|``, ``|:`` or the end), where the grammar allows one there, not a plain ``|`` (the
        tracker counts the part's bars: rows without one are left, and so is a prime being forced)."""
        if self._plain_bar is None or not self.config.constrain:
            return
        for i in np.flatnonzero(masks[:, self._plain_bar]):  # rows at a bar line
            row = rows[i]
            if row.tracker is not None and row.tracker.bar >= _LONGEST_PART - 1 and not row.forced \
                    and masks[i, self._part_ends].any() and self.grammar.state(row.sid).form < 0:
                masks[i, self._plain_bar] = False

    def _fresh_endings(self, masks: np.ndarray, rows: list[_Row]) -> None:
        """In place: a second ending that has copied the first up to its last note (or rest) may
        not take that note too, nor a rest, where another token is allowed: two endings that are the same bar
        say nothing, and a player reads them as a mistake. 9 of 167 endings (two runs of 500
        default tunes) were copies, against 4 of 237 in the four collections the default corpus
        is made of."""
        for i, row in enumerate(rows):
            again = row.again
            if again is None or row.forced:
                continue
            second, first, count, note = again
            ids = row.ids
            if len(ids) == second + count and masks[i, note] and ids[second:] == ids[first:first + count]:
                allowed = masks[i].copy()
                allowed[note] = False
                allowed[self._rests] = False  # nor a rest instead, where the bar wants its last note
                if allowed.any():
                    masks[i] = allowed

    def adjust(self, logits: np.ndarray, rows: list[_Row]) -> np.ndarray:
        if self.config.lookback:
            for row in rows:
                if row.bars is not None:
                    row.bars.follow(row.tracker, self._bar_lines)
        logits = _lookback(logits, rows, self.config.lookback, self._copyable)
        return _first_rest(logits, rows, self.config.first_rest, self._rests, self.grammar)

    def kin(self) -> tuple:
        # masks: the grammar, the compass rows carry and the endings; adjust: the lookback bonus and
        # the first rest's (a row's title and prime are its own forced tokens, not the constraint's).
        # The plan's dance and other R: ids, its title words and its loose parts' shares follow from
        # the grammar's key (_plan), so one grammar means one of each
        return (AbcConstraint, id(self.grammar), id(self.plan.compass), self.config.lookback,
                self.plan.ending, self.config.first_rest)

    def misfit(self, row: _Row, token: int) -> str:
        if self.grammar.past_chosen_chord(row.sid, token):
            return ""  # a prime's chord of five or six notes: the model's own hold four at most
        if classify(self.grammar.tokens[token])[0] == TokenClass.FIELD_K and row.ids and \
                classify(self.grammar.tokens[row.ids[-1]])[0] not in (TokenClass.BAR, TokenClass.ENDING):
            hint = " (a key change goes at a bar line, not after a note)"
        elif self.grammar.state(row.sid).form >= 0:
            hint = " (the tune's form may not allow it there: --form free lifts it)"
        else:
            hint = ""
        return (f"the prime does not fit here: {self.grammar.tokens[token]!r} after "
                f"{' '.join(self.vocabulary.decode(row.ids[-8:]))}{hint}")

    def advance(self, row: _Row, token: int, chosen: bool) -> str:
        """Move a row on by one token. Returns "" (go on), DONE or a failure reason."""
        grammar = self.grammar
        before = row.sid
        nxt = grammar.next(before, token)
        if nxt < 0:
            return f"token {grammar.tokens[token]!r} is not allowed here"
        if token == self.eos:
            fix = grammar.eos_fix(before)
            if fix is not None:
                how, bar = fix
                bar_id = grammar.tokens.index(bar) if bar in grammar.tokens else None
                if bar_id is None:
                    return f"the model has no {bar} token to close the tune"
                if how == "replace":
                    row.ids[-1] = bar_id
                else:
                    row.ids.append(bar_id)
            row.ids.append(token)
            row.sid = nxt
            return DONE
        row.append(token)
        row.sid = nxt
        if self._again is not None and token == self._again[1]:
            row.again = _first_ending(row.ids, self._again, self._sounds)
        if token in self._rest_set and grammar.in_body(before):
            row.rested = True
        if self.plan.prime and not grammar.in_body(before) and grammar.in_body(nxt):
            row.forced = list(self.plan.prime)
        if self.plan.part_closes and not row.forced:
            phrases = grammar.phrase_bar(row.sid)
            if phrases:  # (a tune the length guard asks to end closes the part)
                close = grammar.state(row.sid).closing or _part_close(self.plan, row, phrases)
                row.sid = grammar.part_close(row.sid, close)
        if row.tracker is not None and row.tracker.bar >= _LONGEST_PART and self.config.constrain \
                and not row.forced and grammar.state(row.sid).form < 0:
            row.sid = grammar.closing(row.sid)  # a part no bar line could close (_end_long_parts): the end
        length = len(row.ids)
        if length >= self._closing:
            if length >= self._longest:
                return f"no end after {self._longest} tokens (the length guard)"
            row.sid = grammar.closing(row.sid)
        return ""

    def fork(self, row: _Row) -> _Row:
        return row.fork(row.sid)

    def result(self, row: _Row, failures: list[tuple[int, str]]) -> Sampled:
        if row.reason:
            return Sampled(index=row.index, seed=row.seed, failures=failures, ok=False,
                           title_warnings=list(self.plan.warnings))
        return Sampled(index=row.index, seed=row.seed, tokens=self.vocabulary.decode(row.ids),
                       log_prob=row.log_prob, failures=failures, ok=True, title_warnings=list(self.plan.warnings))


# ---------------------------------------------------------------------------------------------
# Sampling


def sample_tunes(engine, vocabulary, seeds: Sequence[int], *, config: SampleConfig | None = None,
                 conditions: Conditions | None = None, next_seed: Callable[[int], int] | None = None,
                 batch_size: int = 1024, on_finish: Callable[[Sampled], None] | None = None,
                 on_step: Callable[[], None] | None = None, workers: int = 1,
                 keep: bool = True, decoder: Callable | None = None) -> list[Sampled]:
    """Sample one tune per seed, many at a time; tune i depends only on ``seeds[i]`` and the options.

    Parameters
    ----------
    engine
        The NumPy LSTM (``Checkpoint.engine()``) or anything with ``init_state(batch)`` and
        ``step(ids, state) -> (logits, state)``.
    vocabulary
        The model's :class:`~folkrnn.vocab.Vocabulary`.
    seeds
        One seed per tune.
    config, conditions
        How to sample, and what to force.
    next_seed
        The seed to try after a failed one (default: the failed seed + 1, as ``compose`` does).
    batch_size
        Tunes per step at most.
    on_finish
        Called with each tune as soon as it is made (or given up on), in the order they finish.
    on_step
        Called after every step of the model (for progress).
    workers
        Processes to share the tunes among (each claims tunes from one shared pool as its batch
        has room, samples with one BLAS thread and sends its tunes back as they finish): the
        grammar and the choice of tokens are Python, so a second core doubles that part. Used on
        Linux (where processes fork safely) when every worker gets at least ``MIN_PER_WORKER``
        tunes; the tunes are the same whatever the number (tune i depends only on its seed).
    keep
        Keep the tunes and return them (False: each goes to ``on_finish`` only, and the list is
        empty: memory does not grow with the number of seeds).
    decoder
        The loop that runs the grammar: :func:`folkrnn.decode.loop.decode` (None), or a loop
        shared with other requests (:meth:`folkrnn.decode.shared.SharedLoop.decode`: the same
        tunes). Beam search runs on its own either way.

    Returns
    -------
    list[Sampled]
        In the order of ``seeds`` (empty without ``keep``).
    """
    config = (config or SampleConfig()).check()
    conditions = conditions or Conditions()
    plan = _plan(vocabulary, conditions, config, getattr(engine, "features", 0), getattr(engine, "title_words", None),
                 getattr(engine, "titles", None), getattr(engine, "title_rhythms", None))
    if config.strategy == "beam":
        out = []
        for index, seed in enumerate(seeds):
            result = beam_search(engine, vocabulary, seed=seed, config=config, conditions=conditions,
                                 index=index, plan=plan, on_step=on_step)
            if on_finish is not None:
                on_finish(result)
            if keep:
                out.append(result)
        return out
    return (decoder or decode)(engine, AbcConstraint(plan, config, vocabulary), config, seeds,
                               attempts=config.attempts, next_seed=next_seed, batch_size=batch_size,
                               on_finish=on_finish, on_step=on_step, workers=workers, keep=keep)


def sample_one(engine, vocabulary, seed: int, *, config: SampleConfig | None = None,
               conditions: Conditions | None = None) -> Sampled:
    """One tune, made on its own (as ``compose`` makes it); a failed seed is followed by seed + 1."""
    return sample_tunes(engine, vocabulary, [seed], config=config, conditions=conditions)[0]


def beam_search(engine, vocabulary, *, seed: int = 0, config: SampleConfig | None = None,
                conditions: Conditions | None = None, index: int = 0, plan: _Plan | None = None,
                on_step: Callable[[], None] | None = None) -> Sampled:
    """The most probable tune by beam search (deterministic given the seed, which draws only what
    the sampler draws from a tune's seed in every strategy: whether an untitled tune is a dance, the
    endings a form's parts take and where a loose form's parts close).

    W hypotheses are extended by every allowed token; the W best by total log-probability live on.
    A hypothesis that ends is set aside; the search stops when W have ended, when none is left
    alive, or at the length guard. The finished tune with the best
    ``log_prob / tokens ** length_penalty`` wins (:func:`folkrnn.decode.beam.beam_search`).
    """
    config = (config or SampleConfig(strategy="beam")).check()
    conditions = conditions or Conditions()
    plan = plan or _plan(vocabulary, conditions, config, getattr(engine, "features", 0),
                         getattr(engine, "title_words", None), getattr(engine, "titles", None),
                         getattr(engine, "title_rhythms", None))
    best, reason = beam(engine, AbcConstraint(plan, config, vocabulary), index=index, seed=seed,
                        width=config.beam_width, temperature=config.temperature,
                        length_penalty=config.length_penalty, on_step=on_step)
    if best is None:
        return Sampled(index=index, seed=seed, failures=[(seed, reason)], ok=False,
                       title_warnings=list(plan.warnings))
    return Sampled(index=index, seed=seed, tokens=vocabulary.decode(best.ids), log_prob=best.log_prob,
                   ok=True, title_warnings=list(plan.warnings))


# ---------------------------------------------------------------------------------------------
# The model's own headers: no grammar


class _Headers(Constraint):
    """The raw model after each prompt, up to the first token ``stop`` accepts, ``</s>`` or
    ``max_tokens``: what it writes unconstrained (evaluate's title test). The results are token lists."""

    def __init__(self, vocabulary, prompts: list[list[int]], max_tokens: int, stop: Callable[[str], bool] | None,
                 tracker: Callable[[], object] | None) -> None:
        self.vocabulary, self.prompts, self.max_tokens = vocabulary, prompts, max_tokens
        self.stop, self.tracker = stop, tracker
        self.bos, self.eos = vocabulary.bos_id, vocabulary.eos_id
        self.allowed = np.ones(len(vocabulary), bool)
        self.allowed[[vocabulary.pad_id, vocabulary.bos_id]] = False

    def start(self, index: int, seed: int) -> Row:
        return Row(index, seed, self.bos, self.prompts[index], self.tracker() if self.tracker else None)

    def masks(self, rows: list[Row]) -> np.ndarray:
        return np.repeat(self.allowed[None, :], len(rows), axis=0)

    def advance(self, row: Row, token: int, chosen: bool) -> str:
        row.append(token)
        if chosen and (token == self.eos or len(row.ids) >= self.max_tokens
                       or (self.stop is not None and self.stop(self.vocabulary.tokens[token]))):
            return DONE
        return ""

    def result(self, row: Row, failures: list[tuple[int, str]]) -> list[str]:
        return [self.vocabulary.tokens[token] for token in row.ids]


def sample_headers(engine, vocabulary, prompts: Sequence[Sequence[str]], seeds: Sequence[int], *,
                   config: SampleConfig | None = None, max_tokens: int = 120,
                   stop: Callable[[str], bool] | None = None) -> list[list[str]]:
    """What the model writes after each prompt on its own, with no grammar: row i reads ``<s>`` and
    ``prompts[i]`` (tokens; a leading ``<s>`` is taken as the start), then samples with ``seeds[i]``
    and ``config``'s choice (temperature, top-k, top-p) until ``</s>``, a token ``stop`` accepts, or
    ``max_tokens`` tokens in all. A model that reads position features gets them as
    :func:`sample_tunes` gives them. Returns each row's tokens, ``<s>`` and the prompt included, on
    the same decoding loop as :func:`sample_tunes`."""
    config = (config or SampleConfig()).check()
    ids = [vocabulary.encode([token for k, token in enumerate(prompt) if k or token != "<s>"]) for prompt in prompts]
    if len(ids) != len(seeds):
        raise OptionError(f"{len(ids)} prompts but {len(seeds)} seeds")
    width = getattr(engine, "features", 0)
    shared = classes(vocabulary.tokens) if width else None
    constraint = _Headers(vocabulary, ids, max_tokens, stop, (lambda: Positions(shared, width)) if shared else None)
    return decode(engine, constraint, config, list(seeds))
