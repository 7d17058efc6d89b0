"""Sampling tunes from an ABC language model: strategies, priming, conditioning and constrained decoding.

**Strategies** (those of the lecture notes behind folk-rnn), chosen by :class:`SampleConfig`:

- ``sample``: temperature sampling (the logits are divided by T), optionally cut to the k most
  probable tokens (top-k) and then to the smallest set whose probability reaches p (nucleus,
  top-p), in that order;
- ``greedy``: the most probable token every step;
- ``beam``: beam search with W hypotheses, scored by total log-probability (of the tempered,
  masked distribution). Finished tunes are ranked by ``log_prob / tokens ** length_penalty``
  (``tokens`` counts every token after ``<s>``; ``length_penalty`` 0 ranks by the raw total,
  which favours short tunes, 1 by the mean log-probability per token; the default 0.7 lies
  between, as in machine translation).

**Conditioning** forces tokens: a given title is written character by character after ``<s>``
(the model reads it, as folk-rnn v1 did, so the title shapes the tune), and a given rhythm, meter
or mode fixes the ``R:``, ``M:`` or ``K:`` token (the rest of the header is still the model's).
A **prime** (body tokens) is forced after the header; the model continues it. A tune whose rhythm
is not given is a dance the model chooses (``rhythm="any"``: any rhythm), in one of the dance's
meters (:data:`folkrnn.tables.DANCES`).

**Form** (:class:`folkrnn.abc.grammar.Form`): ``Conditions.form`` ("AABB", "AB", ..., "free")
holds for every tune; without it each tune takes the usual form of the dance its R: names, and the
grammar keeps its parts, repeats and endings and ends it with its last part, on its tonic.

**The tune's own past**: a model with position features reads them with every token
(:class:`folkrnn.abc.features.Positions`, one per tune); ``SampleConfig.lookback`` adds a copy
prior to the tokens two bars and a part ago offer, and ``SampleConfig.compass`` keeps each tune
within a compass (:class:`folkrnn.abc.grammar.Compass`).

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
one (abc2midi takes that length alone); the notes of a tuplet alike, and no chords or grace notes
in a tuplet, no tuplet in a tuplet; broken rhythm only between two notes (or chords) of equal
length, not into or out of a tuplet or after grace notes; grace notes together shorter than four
times their note (abc2midi plays them at a quarter of their length, taken from it); ties only
between single notes of the same pitch, and across plain bar lines only;
titles the model writes begin with a letter or digit.

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
"""

from __future__ import annotations

import itertools
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from folkrnn.abc.features import Positions, classes
from folkrnn.abc.grammar import LOOSE_PART_BARS, TICKS_PER_UNIT, AbcGrammar, Compass, Form, parse_form
from folkrnn.abc.grammar import SPACE as _SPACE
from folkrnn.decode.choice import choose_tokens, one_blas_thread, rounding_noise, uniforms
from folkrnn.errors import OptionError
from folkrnn.tables import DANCES

__all__ = [
    "SampleConfig", "Conditions", "Sampled", "AbcGrammar", "STRATEGIES", "TICKS_PER_UNIT",
    "sample_tunes", "sample_one", "beam_search", "uniforms", "title_tokens",
    "choose_tokens", "rounding_noise", "one_blas_thread", "default_workers", "MIN_PER_WORKER",
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
    # then only the smallest set reaching this probability (1: no cut). The defaults of top_p and
    # lookback were calibrated on the validation split (benchmarks/calibrate_sampling.py): with
    # them, bars and half bars come back about as often as in real tunes, and rests inside a tune
    # are fewer than at 1.0 and 0 (the tail the nucleus cuts).
    top_p: float = 0.95
    beam_width: int = 4  # hypotheses beam search keeps
    length_penalty: float = 0.7  # beam: rank by log-probability / tokens ** this
    constrain: bool = True  # full bars, balanced repeats, a closing bar (AbcGrammar)
    max_tokens: int = 1000  # the length guard (folk-rnn stopped at 1,000 tokens too)
    closing_tokens: int = 64  # steer to an end this many tokens before max_tokens
    min_bars: int = 4  # a tune may not end before this many bars
    compass: int = 24  # semitones from a tune's lowest note to its highest, at most (0: any; Compass)
    lookback: float = 1.5  # added to the logit of each token two bars or a part ago offers (0: none)
    max_title: int = 60  # title characters the model may write
    attempts: int = 10  # seeds tried for one tune before it is reported as not made

    def check(self) -> SampleConfig:
        """Raise OptionError for an option out of its range; return self."""
        if self.strategy not in STRATEGIES:
            raise OptionError(f"unknown strategy {self.strategy!r}; choose one of {', '.join(STRATEGIES)}")
        if not self.temperature > 0 or not np.isfinite(self.temperature):
            raise OptionError(f"--temperature must be greater than 0, not {self.temperature}")
        if not 0 <= self.lookback <= 10 or not np.isfinite(self.lookback):
            raise OptionError(f"--lookback must be between 0 and 10, not {self.lookback}")
        if self.compass and not 12 <= self.compass <= 60:
            raise OptionError(f"--compass must be 0 (none) or 12-60 semitones, not {self.compass}")
        if self.temperature > 100:
            raise OptionError(f"--temperature must be at most 100, not {self.temperature}")
        if self.top_k < 0:
            raise OptionError(f"--top-k must be 0 (off) or more, not {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise OptionError(f"--top-p must be in (0, 1], not {self.top_p}")
        if self.beam_width < 1:
            raise OptionError(f"--beam-width must be at least 1, not {self.beam_width}")
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
    # chooses among the dances; "any": any rhythm
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
    features: bool  # the model reads position features
    compass: Compass | None  # the compass every tune keeps (None: any)
    title: list[int]  # forced after <s>
    prime: list[int]  # forced when the body begins
    warnings: list[str]


def _plan(vocabulary, conditions: Conditions, config: SampleConfig, features: int = 0) -> _Plan:
    from folkrnn.vocab import UnknownTokenError

    warnings: list[str] = []
    fixed: dict[str, frozenset[int]] = {}
    for letter, values, option in (("R", conditions.rhythm, "--rhythm"), ("M", conditions.meter, "--meter"),
                                   ("K", conditions.mode, "--mode")):
        if values is None or (letter == "R" and values == "any"):
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
    # the dances the model knows: R: token id -> dance (folkrnn.tables.DANCES; air, song, other aside)
    dances = {vocabulary.id(f"R:{name}"): dance for name, dance in DANCES.items()
              if dance.meters and f"R:{name}" in vocabulary}
    asked = None if conditions.meter is None else \
        {conditions.meter} if isinstance(conditions.meter, str) else set(conditions.meter)
    if conditions.rhythm is None and "R" not in fixed and dances:
        # the default model is for dance music: a tune whose rhythm is not asked for is a dance, one
        # written in the meter asked for when there is one
        fitting = [token for token, dance in dances.items() if asked is None or asked & set(dance.meters)]
        fixed["R"] = frozenset(fitting or dances)
    # a dance in its own meters, unless --meter says otherwise
    rhythm_meters = {} if asked is not None else {
        token: [vocabulary.id(f"M:{m}") for m in dance.meters if f"M:{m}" in vocabulary]
        for token, dance in dances.items()}
    form, rhythm_forms = _forms(conditions, dances)
    key = (tuple(vocabulary.tokens), config.constrain, tuple(sorted((k, tuple(sorted(v))) for k, v in fixed.items())),
           title_length, config.min_bars, config.max_title, form, tuple(sorted(rhythm_forms.items())),
           tuple(sorted((k, tuple(v)) for k, v in rhythm_meters.items())))
    grammar = _GRAMMARS.get(key)
    if grammar is None:
        grammar = AbcGrammar(vocabulary.tokens, constrain=config.constrain, fixed=fixed,
                             title_length=title_length, min_bars=config.min_bars,
                             max_title=config.max_title, form=form, rhythm_forms=rhythm_forms,
                             rhythm_meters=rhythm_meters)
        if len(_GRAMMARS) >= 8:
            _GRAMMARS.pop(next(iter(_GRAMMARS)))
        _GRAMMARS[key] = grammar
    compass = None
    if config.constrain and config.compass:
        key = (tuple(vocabulary.tokens), config.compass)
        compass = _COMPASSES.get(key) or _COMPASSES.setdefault(key, Compass(vocabulary.tokens, config.compass))
    follow = features or (config.lookback and config.constrain)
    return _Plan(grammar, classes(vocabulary.tokens) if follow else None, bool(features), compass, title_ids,
                 prime_ids, warnings)


_COMPASSES: dict[tuple, Compass] = {}


def _forms(conditions: Conditions, dances: dict) -> tuple[Form | None, dict[int, Form | None]]:
    """The form every tune takes (or None), and the form by R: token (``dances``: R: token id ->
    dance) for the rest: a given ``--form`` holds for every tune; without one, each tune takes the
    usual form of the dance its R: names (a dance with none: parts of whole phrases, a multiple of
    4 bars, as 97% of real parts are), and a tune of no dance is free."""
    if conditions.form is not None:
        return parse_form(conditions.form, conditions.part_bars), {}
    if conditions.part_bars is not None and not 1 <= conditions.part_bars <= 64:
        raise OptionError(f"--part-bars must be between 1 and 64, not {conditions.part_bars}")
    return None, {token: Form((), conditions.part_bars or LOOSE_PART_BARS) if dance.form == "free"
                  else parse_form(dance.form, conditions.part_bars or dance.part_bars)
                  for token, dance in dances.items()}


# Grammars by vocabulary and conditions: the states each has learnt are kept for the next request.
_GRAMMARS: dict[tuple, AbcGrammar] = {}


# ---------------------------------------------------------------------------------------------
# The sampler


class _Row:
    """One tune being sampled."""

    __slots__ = ("index", "seed", "ids", "sid", "forced", "log_prob", "reason", "positions", "feature",
                 "compass", "span")

    def __init__(self, index: int, seed: int, bos: int, sid: int, title: list[int],
                 classes=None, compass: Compass | None = None) -> None:
        self.index, self.seed = index, seed
        self.ids = [bos]
        self.sid = sid
        self.forced = list(title)  # tokens still to force (the title now, the prime later)
        self.log_prob = 0.0
        self.reason = ""
        # a model that reads position features: where the tune stands, and the features of its last token
        self.positions = Positions(classes) if classes is not None else None
        self.feature = self.positions.push(bos) if classes is not None else ()
        self.compass = compass  # its lowest and highest notes so far, when a compass holds
        self.span = compass.start() if compass is not None else None

    def append(self, token: int) -> None:
        """Write one more token (and follow where the tune now stands)."""
        self.ids.append(token)
        if self.positions is not None:
            self.feature = self.positions.push(token)
        if self.compass is not None:
            self.compass.take(self.span, token)

    def fork(self, sid: int) -> _Row:
        """A copy to go on differently (beam search)."""
        row = _Row(self.index, self.seed, self.ids[0], sid, [])
        row.ids, row.forced, row.log_prob = list(self.ids), list(self.forced), self.log_prob
        if self.positions is not None:
            row.positions, row.feature = self.positions.clone(), self.feature
        if self.compass is not None:
            row.compass, row.span = self.compass, list(self.span)
        return row


def _restrict(plan: _Plan, masks: np.ndarray, rows: list[_Row]) -> None:
    """In place: what the grammar's masks leave to each row's own history (a tie's pitch, the compass)."""
    sids = [row.sid for row in rows]
    plan.grammar.restrict_ties(masks, sids, [row.ids for row in rows])
    if plan.compass is not None:
        plan.compass.restrict(masks, [row.span if not row.forced else None for row in rows])


def _inputs(rows: list[_Row], plan: _Plan) -> np.ndarray:
    """The model's input for each row's next step: ``(B,)`` ids, or ``(B, 1 + F)`` with features."""
    if plan.features:
        return np.array([(row.ids[-1],) + row.feature for row in rows], np.int64)
    return np.array([row.ids[-1] for row in rows], np.int64)


# The features whose offers the lookback bonus favours: back2 and backpart (folkrnn.abc.features).
# Not back1, the bar just before: favouring it makes a bar come back over and over (3 or more times
# in a row in 11.7% of 300 tunes, against 2.3% without it and none of the real validation tunes).
_OFFERS = slice(4, 6)


def _lookback(logits: np.ndarray, rows: list[_Row], bonus: float) -> np.ndarray:
    """The logits with ``bonus`` added to each token the tune offers to repeat here (what was written
    at this point of the bar two bars ago, and at this bar of the part before): a copy prior, as the
    Lookback RNN's "repeat" labels give its melody model. A new array; the model's own when bonus is 0."""
    if not bonus or not rows or rows[0].positions is None:
        return logits
    logits = logits.copy()
    for i, row in enumerate(rows):
        offered = {token - 1 for token in row.feature[_OFFERS] if token}
        if offered:
            logits[i, list(offered)] += bonus
    return logits


def _advance(row: _Row, token: int, plan: _Plan, config: SampleConfig, eos: int) -> str:
    """Move a row on by one token. Returns "" (go on), "done" or a failure reason."""
    grammar = plan.grammar
    before = row.sid
    nxt = grammar.next(before, token)
    if nxt < 0:
        return f"token {grammar.tokens[token]!r} is not allowed here"
    was_body = grammar.in_body(before)
    if token == eos:
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
        return "done"
    row.append(token)
    row.sid = nxt
    if not was_body and grammar.in_body(nxt) and plan.prime:
        row.forced = list(plan.prime)
    if len(row.ids) >= config.max_tokens:
        return f"no end after {config.max_tokens} tokens (the length guard)"
    if len(row.ids) >= config.max_tokens - config.closing_tokens:
        row.sid = grammar.closing(row.sid)
    return ""


def _run_batch(engine, plan: _Plan, vocabulary, config: SampleConfig, jobs: list[tuple[int, int]],
               exact: bool, on_step: Callable[[], None] | None, settle: Callable[[_Row], None],
               one_thread: bool = False, more: Callable[[int], list[tuple[int, int]]] | None = None,
               capacity: int = 0) -> list[tuple[int, int]]:
    """Sample the (index, seed) jobs together; ``settle`` gets each row as it finishes or fails.
    Returns the fragile jobs: each met a decision the batch's rounding could flip, and must be made
    on its own.

    ``exact``: every row computed on its own (a batch of one per step, as ``compose`` makes a
    tune; the rows still share the rest of the work), so nothing is fragile. ``one_thread``: with
    one BLAS thread (the results are the same; a batch of one is faster so on a busy machine).
    ``more(room)``: new jobs for the rows that have finished (continuous batching: the batch stays
    near ``capacity`` rows until no job is left, rather than dwindling to its longest tune)."""
    if one_thread:
        with one_blas_thread():
            return _sample_rows(engine, plan, vocabulary, config, jobs, exact, on_step, settle, more, capacity)
    return _sample_rows(engine, plan, vocabulary, config, jobs, exact, on_step, settle, more, capacity)


def _sample_rows(engine, plan: _Plan, vocabulary, config: SampleConfig, jobs: list[tuple[int, int]],
                 exact: bool, on_step: Callable[[], None] | None, settle: Callable[[_Row], None],
                 more: Callable[[int], list[tuple[int, int]]] | None, capacity: int) -> list[tuple[int, int]]:
    from folkrnn.infer import select_state

    grammar = plan.grammar
    bos, eos = vocabulary.bos_id, vocabulary.eos_id
    rows = [_Row(index, seed, bos, grammar.start, plan.title, plan.classes, plan.compass) for index, seed in jobs]
    # exact: one state per row, each stepped alone; else one batched state
    state = [engine.init_state(1) for _ in rows] if exact else engine.init_state(len(rows))
    current = _inputs(rows, plan)
    fragile: list[tuple[int, int]] = []
    refill = max(1, capacity // 8)  # new rows join a few at a time (each join copies the state)
    while rows:
        if exact:
            stepped = [engine.step(current[i:i + 1], state[i]) for i in range(len(rows))]
            logits = np.concatenate([out for out, _ in stepped])
            state = [new for _, new in stepped]
        else:
            logits, state = engine.step(current, state)
        logits = _lookback(logits, rows, config.lookback)
        masks = grammar.masks([row.sid for row in rows])
        _restrict(plan, masks, rows)
        free = [i for i, row in enumerate(rows) if not row.forced]
        chosen = np.zeros(len(rows), np.int64)
        logps = np.zeros(len(rows))
        unsure = np.zeros(len(rows), bool)
        if free:
            sub = np.asarray(free)
            empty = ~masks[sub].any(axis=1)
            if empty.any():  # a dead end: no token is allowed (cannot happen for a feasible state)
                masks[sub[empty], eos] = True
            seeds = np.array([rows[i].seed for i in free], np.uint64)
            steps = np.array([len(rows[i].ids) for i in free], np.uint64)
            picked = logits[sub]
            noise = 0.0 if exact else rounding_noise(picked, config.temperature)
            ids, logp, close_calls = choose_tokens(picked, masks[sub], config, seeds, steps, noise)
            chosen[sub] = ids
            logps[sub] = logp
            if not exact:
                unsure[sub] = close_calls
            for k in np.flatnonzero(empty):
                rows[free[k]].reason = "the constraint reached a state with no allowed token"
        keep: list[int] = []
        for i, row in enumerate(rows):
            if row.reason:
                settle(row)
                continue
            if unsure[i]:
                fragile.append((row.index, row.seed))
                continue
            if row.forced:
                token = row.forced.pop(0)
                if not masks[i, token]:
                    hint = " (the tune's form may not allow it there: --form free lifts it)" \
                        if grammar.state(row.sid).form >= 0 else ""
                    row.reason = (f"the prime does not fit here: {grammar.tokens[token]!r} after "
                                  f"{' '.join(vocabulary.decode(row.ids[-8:]))}{hint}")
                    settle(row)
                    continue
            else:
                token = int(chosen[i])
                row.log_prob += float(logps[i])
            outcome = _advance(row, token, plan, config, eos)
            if outcome == "done":
                settle(row)
            elif outcome:
                row.reason = outcome
                settle(row)
            else:
                keep.append(i)
        if on_step is not None:
            on_step()
        if len(keep) < len(rows):
            state = [state[i] for i in keep] if exact else select_state(state, keep)
            rows = [rows[i] for i in keep]
        if more is not None and (capacity - len(rows) >= refill or not rows):
            added = more(capacity - len(rows))
            if added:
                rows += [_Row(index, seed, bos, grammar.start, plan.title, plan.classes, plan.compass)
                         for index, seed in added]
                fresh = engine.init_state(len(added))
                state = (np.concatenate([state[0], fresh[0]], axis=1),
                         np.concatenate([state[1], fresh[1]], axis=1))
        current = _inputs(rows, plan)
    return fragile


def _result(row: _Row, vocabulary, failures: list[tuple[int, str]], warnings: list[str]) -> Sampled:
    return Sampled(index=row.index, seed=row.seed, tokens=vocabulary.decode(row.ids),
                   log_prob=row.log_prob, failures=list(failures), ok=True, title_warnings=list(warnings))


def sample_tunes(engine, vocabulary, seeds: Sequence[int], *, config: SampleConfig | None = None,
                 conditions: Conditions | None = None, next_seed: Callable[[int], int] | None = None,
                 batch_size: int = 1024, on_finish: Callable[[Sampled], None] | None = None,
                 on_step: Callable[[], None] | None = None, workers: int = 1) -> list[Sampled]:
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

    Returns
    -------
    list[Sampled]
        In the order of ``seeds``.
    """
    config = (config or SampleConfig()).check()
    conditions = conditions or Conditions()
    plan = _plan(vocabulary, conditions, config, getattr(engine, "features", 0))
    workers = min(int(workers), len(seeds) // MIN_PER_WORKER)
    if workers > 1 and config.strategy != "beam" and _can_fork():
        return _sample_in_workers(engine, vocabulary, list(seeds), workers, plan, config, on_finish, on_step,
                                  next_seed, batch_size)
    if config.strategy == "beam":
        out = []
        for index, seed in enumerate(seeds):
            result = beam_search(engine, vocabulary, seed=seed, config=config, conditions=conditions,
                                 index=index, plan=plan, on_step=on_step)
            if on_finish is not None:
                on_finish(result)
            out.append(result)
        return out
    results = _sample(engine, vocabulary, list(seeds), plan, config, next_seed, batch_size, on_finish,
                      on_step, claim=None)
    return [results[index] for index in range(len(seeds))]


def _sample(engine, vocabulary, seeds: list[int], plan: _Plan, config: SampleConfig,
            next_seed: Callable[[int], int] | None, batch_size: int,
            on_finish: Callable[[Sampled], None] | None, on_step: Callable[[], None] | None,
            claim: Callable[[int], list[int]] | None) -> dict[int, Sampled]:
    """The tunes of the seeds this process claims (``claim(k)``: up to k more positions in
    ``seeds``, shared by worker processes; None: all of them, here), by their position."""
    next_seed = next_seed or (lambda seed: seed + 1)
    results: dict[int, Sampled] = {}
    failures: dict[int, list[tuple[int, str]]] = {}
    retries: deque[tuple[int, int]] = deque()  # (position, seed) after a failed seed
    if claim is None:
        unclaimed = iter(range(len(seeds)))

        def claim(count: int) -> list[int]:
            return list(itertools.islice(unclaimed, count))

    def more(room: int) -> list[tuple[int, int]]:
        jobs = [retries.popleft() for _ in range(min(room, len(retries)))]
        return jobs + [(index, int(seeds[index])) for index in claim(room - len(jobs))]

    def settle(row: _Row) -> None:
        if not row.reason:
            result = _result(row, vocabulary, failures.get(row.index, []), plan.warnings)
        else:
            history = failures.setdefault(row.index, [])
            history.append((row.seed, row.reason))
            if len(history) < config.attempts:
                retries.append((row.index, next_seed(row.seed)))
                return
            result = Sampled(index=row.index, seed=row.seed, failures=list(history), ok=False,
                             title_warnings=list(plan.warnings))
        results[row.index] = result
        if on_finish is not None:
            on_finish(result)

    alone = len(seeds) == 1  # compose's case: exactly as alone, with one BLAS thread (see one_blas_thread)
    exact_jobs: list[tuple[int, int]] = []
    while True:
        jobs = more(1 if alone else batch_size)
        if jobs and alone:  # on its own from the start: the exact computation, as compose makes it
            exact_jobs += jobs
        elif jobs:
            exact_jobs += _run_batch(engine, plan, vocabulary, config, jobs, exact=False, on_step=on_step,
                                     settle=settle, more=more, capacity=batch_size)
            continue
        if not exact_jobs:
            break
        # the close calls, made again exactly: each row on its own, the rows in step together
        batch, exact_jobs = exact_jobs[:batch_size], exact_jobs[batch_size:]
        _run_batch(engine, plan, vocabulary, config, batch, exact=True, on_step=on_step, settle=settle,
                   one_thread=alone)
    return results


# ---------------------------------------------------------------------------------------------
# Worker processes

MIN_PER_WORKER = 64  # fewer tunes than this a worker would sample in batches too small to pay


def default_workers() -> int:
    """The cores this process may use (at most 16)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 16))


def _can_fork() -> bool:
    """Whether worker processes can be forked safely: on Linux (macOS's system libraries do not
    survive a fork, and Windows has none)."""
    import multiprocessing

    return sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()


def _worker(engine, vocabulary, seeds: list[int], plan: _Plan, config: SampleConfig, options: dict,
            claimed, queue) -> None:
    """A worker process: sample the tunes it claims, sending each (and the steps, now and then) back."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    steps, last = 0, time.monotonic()

    def step() -> None:
        nonlocal steps, last
        steps += 1
        if time.monotonic() - last > 0.1:
            queue.put(("steps", steps))
            steps, last = 0, time.monotonic()

    def claim(count: int) -> list[int]:
        with claimed.get_lock():
            first = claimed.value
            claimed.value = min(first + count, len(seeds))
            return list(range(first, claimed.value))

    try:
        with one_blas_thread():  # the workers share the cores already
            _sample(engine, vocabulary, seeds, plan, config, on_finish=lambda s: queue.put(("tune", s)),
                    on_step=step, claim=claim, **options)
        queue.put(("steps", steps))
        queue.put(("done", None))
    except BaseException as error:  # noqa: BLE001 - every failure goes back to the parent
        try:
            queue.put(("error", error))
        except Exception:  # noqa: BLE001 - an error that cannot be pickled goes back as text
            queue.put(("error", f"{type(error).__name__}: {error}"))


def _sample_in_workers(engine, vocabulary, seeds: list[int], workers: int, plan: _Plan, config: SampleConfig,
                       on_finish: Callable[[Sampled], None] | None, on_step: Callable[[], None] | None,
                       next_seed: Callable[[int], int] | None, batch_size: int) -> list[Sampled]:
    import multiprocessing
    import queue as queues

    from folkrnn.errors import FolkError

    context = multiprocessing.get_context("fork")  # the model and the grammar's states come along
    messages = context.Queue()
    claimed = context.Value("q", 0)  # the next unclaimed position in seeds
    # each worker's batch holds about a quarter of the tunes (with two workers), so that half of
    # them wait in the shared pool for whichever worker has room: both finish together
    share = max(MIN_PER_WORKER // 2, -(-len(seeds) // (2 * workers)))
    options = dict(next_seed=next_seed, batch_size=min(batch_size, share))
    processes = [context.Process(target=_worker, daemon=True,
                                 args=(engine, vocabulary, seeds, plan, config, options, claimed, messages))
                 for _ in range(workers)]
    results: dict[int, Sampled] = {}
    running = len(processes)
    try:
        for process in processes:
            process.start()
        while running:
            try:
                kind, payload = messages.get(timeout=0.5)
            except queues.Empty:
                dead = [p.exitcode for p in processes if p.exitcode not in (None, 0)]
                if dead:
                    raise FolkError(f"a sampling worker process died (exit code {dead[0]})") from None
                continue
            if kind == "tune":
                results[payload.index] = payload
                if on_finish is not None:
                    on_finish(payload)
            elif kind == "steps":
                for _ in range(payload if on_step is not None else 0):
                    on_step()
            elif kind == "done":
                running -= 1
            elif isinstance(payload, BaseException):
                raise payload
            else:
                raise FolkError(f"a sampling worker failed: {payload}")
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join(timeout=5)
        messages.close()
    return [results[index] for index in range(len(seeds))]


def sample_one(engine, vocabulary, seed: int, *, config: SampleConfig | None = None,
               conditions: Conditions | None = None) -> Sampled:
    """One tune, made on its own (as ``compose`` makes it); a failed seed is followed by seed + 1."""
    return sample_tunes(engine, vocabulary, [seed], config=config, conditions=conditions)[0]


# ---------------------------------------------------------------------------------------------
# Beam search


def beam_search(engine, vocabulary, *, seed: int = 0, config: SampleConfig | None = None,
                conditions: Conditions | None = None, index: int = 0, plan: _Plan | None = None,
                on_step: Callable[[], None] | None = None) -> Sampled:
    """The most probable tune by beam search (deterministic: the seed is only recorded).

    W hypotheses are extended by every allowed token; the W best by total log-probability live on.
    A hypothesis that ends is set aside; the search stops when W have ended, when none is left
    alive, or at the length guard. The finished tune with the best
    ``log_prob / tokens ** length_penalty`` wins.
    """
    from folkrnn.infer import select_state

    config = (config or SampleConfig(strategy="beam")).check()
    conditions = conditions or Conditions()
    plan = plan or _plan(vocabulary, conditions, config, getattr(engine, "features", 0))
    grammar = plan.grammar
    bos, eos = vocabulary.bos_id, vocabulary.eos_id
    width = config.beam_width
    beams = [_Row(index, seed, bos, grammar.start, plan.title, plan.classes, plan.compass)]
    state = engine.init_state(1)
    ended: list[tuple[float, _Row]] = []
    reason = ""
    while beams:
        logits, state = engine.step(_inputs(beams, plan), state)
        logits = _lookback(logits, beams, config.lookback)
        if on_step is not None:
            on_step()
        masks = grammar.masks([row.sid for row in beams])
        _restrict(plan, masks, beams)
        z = logits.astype(np.float64) / config.temperature
        z[~masks] = -np.inf
        top = z.max(axis=1, keepdims=True)
        with np.errstate(invalid="ignore"):
            logp = z - top - np.log(np.exp(z - top).sum(axis=1, keepdims=True))  # (W, V)
        candidates: list[tuple[float, int, int]] = []  # (score, beam, token)
        for b, row in enumerate(beams):
            if row.forced:
                token = row.forced[0]
                if masks[b, token]:
                    candidates.append((row.log_prob, b, token))
                continue
            allowed = np.flatnonzero(masks[b])
            if len(allowed) > width:
                best = allowed[np.argsort(-logp[b, allowed], kind="stable")[:width]]
            else:
                best = allowed
            candidates.extend((row.log_prob + float(logp[b, t]), b, int(t)) for t in best)
        if not candidates:
            reason = "the constraint left no allowed token"
            break
        candidates.sort(key=lambda item: (-item[0], item[1], item[2]))
        survivors: list[_Row] = []
        parents: list[int] = []
        for score, b, token in candidates:
            if len(survivors) >= width:
                break
            parent = beams[b]
            row = parent.fork(parent.sid)
            was_forced = bool(row.forced)
            if was_forced:
                row.forced.pop(0)
            row.log_prob = score
            outcome = _advance(row, token, plan, config, eos)
            if outcome == "done":
                tokens_after_bos = len(row.ids) - 1
                ended.append((score / max(tokens_after_bos, 1) ** config.length_penalty, row))
            elif outcome:
                reason = outcome
            else:
                survivors.append(row)
                parents.append(b)
        if len(ended) >= width or not survivors:
            break
        state = select_state(state, parents)
        beams = survivors
    if not ended:
        return Sampled(index=index, seed=seed, failures=[(seed, reason or "no hypothesis ended")],
                       ok=False, title_warnings=list(plan.warnings))
    ended.sort(key=lambda item: -item[0])
    best = ended[0][1]
    return Sampled(index=index, seed=seed, tokens=vocabulary.decode(best.ids), log_prob=best.log_prob,
                   ok=True, title_warnings=list(plan.warnings))
