"""One batched decoding loop for every constraint: ABC tunes and MIDI-event performances alike.

The loop knows nothing of what the tokens mean. A :class:`Constraint` does: it starts a
:class:`Row` per (index, seed) job, says which tokens each row may take next (``masks``), may
adjust the logits first (``adjust``: the ABC sampler's lookback bonus), and follows each token a row
takes (``advance``: go on, done, or a failure reason). The loop

- steps the model for a batch of rows (the NumPy LSTM: ``init_state(batch)``,
  ``step(inputs, state) -> (logits, state)``). A model that reads F feature columns with each
  token gets each row's ``feature`` tuple (``(B, 1 + F)``): a row's ``tracker`` (``push(token_id)
  -> tuple[int, ...]``, e.g. :class:`folkrnn.abc.features.Positions`) makes it from every token the
  row writes;
- forces a row's ``forced`` tokens one per step (a title, a prime, control tokens, a token a
  constraint writes for the model), else chooses one with :func:`~folkrnn.decode.choice.choose_tokens`
  (counter-based random numbers: a row's choice depends on its seed and step only);
- makes again on its own every row that met a decision the batch's float rounding could flip (a
  *fragile* row), so row i of a batch is the row made alone, bit for bit;
- settles finished and failed rows as they end, retries a failed row with the next seed, and keeps
  the batch full with new jobs as rows end (continuous batching), in one process or several
  (:mod:`folkrnn.decode.workers`).

:func:`decode` is the whole of it; :func:`run_batch` is one batch, and :func:`folkrnn.decode.beam.beam_search`
runs the same protocol as a beam search.
"""

from __future__ import annotations

import gc
import itertools
from collections import deque
from collections.abc import Callable, Sequence

import numpy as np

import folkrnn.decode.workers as pool
from folkrnn.decode.choice import choose_tokens, one_blas_thread, rounding_noise
from folkrnn.infer import select_state

__all__ = ["DONE", "Row", "Constraint", "decode", "run_batch", "inputs"]

DONE = "done"  # what Constraint.advance returns for a row that has ended well

Job = tuple[int, int]  # (index, seed)


class Row:
    """One sequence being decoded. A constraint keeps its own state in a subclass (with ``__slots__``).

    ``ids`` are the model's tokens so far (the first is the start token the model reads first);
    ``forced`` the tokens still to force, one per step, before any is chosen; ``log_prob`` sums the
    log-probabilities of the chosen ones; ``reason`` says why the row failed ("" while it has not).
    A row with a ``tracker`` gives the model ``feature`` (the tracker's output for its last token)
    with its last token.
    """

    __slots__ = ("index", "seed", "ids", "forced", "log_prob", "reason", "tracker", "feature")

    def __init__(self, index: int, seed: int, start: int, forced: Sequence[int] = (), tracker=None) -> None:
        self.index, self.seed = index, seed
        self.ids = [start]
        self.forced = list(forced)
        self.log_prob = 0.0
        self.reason = ""
        self.tracker = tracker
        self.feature: tuple[int, ...] = tracker.push(start) if tracker is not None else ()

    def append(self, token: int) -> None:
        """Write one more token (and the features it gives)."""
        self.ids.append(token)
        if self.tracker is not None:
            self.feature = self.tracker.push(token)


class Constraint:
    """What the loop asks of a language: subclasses define ``start``, ``masks``, ``advance`` and ``result``.

    ``eos`` is the end token (allowed to a row whose masks allow nothing, so that the choice has
    something to take while the row fails).
    """

    eos: int

    def start(self, index: int, seed: int) -> Row:
        """A new row for job ``index`` with ``seed``."""
        raise NotImplementedError

    def masks(self, rows: list[Row]) -> np.ndarray:
        """``(B, V)`` bool: the tokens each row may take next (forced ones included)."""
        raise NotImplementedError

    def adjust(self, logits: np.ndarray, rows: list[Row]) -> np.ndarray:
        """The logits the choice sees (``(B, V)``); a new array when changed. Default: the model's own."""
        return logits

    def misfit(self, row: Row, token: int) -> str:
        """Why a forced token the masks refuse fails its row ("": take it anyway)."""
        return f"the forced token {token} is not allowed here"

    def advance(self, row: Row, token: int, chosen: bool) -> str:
        """Write ``token`` (``chosen``: by the model, else forced) and follow it. Returns "" (go on),
        :data:`DONE`, or why the row failed."""
        raise NotImplementedError

    def fork(self, row: Row) -> Row:
        """A copy of a row to go on differently (beam search)."""
        raise NotImplementedError

    def kin(self) -> object | None:
        """A key equal for constraints whose ``masks`` and ``adjust`` treat each other's rows as their
        own (the same grammar, the same bonus ...): a batch shared by several requests
        (:class:`folkrnn.decode.shared.SharedLoop`) then calls one of them for all their rows at
        once. None (the default): this constraint's rows only."""
        return None

    def choices(self, rows: list[Row], choice) -> list[tuple[object, np.ndarray]] | None:
        """How each row is chosen, when not all alike: (choice, positions in ``rows``) per group, or
        None (the default): every row by the loop's ``choice``. A loop shared by several requests
        (:class:`folkrnn.decode.shared.SharedLoop`) has one group per request."""
        return None

    def result(self, row: Row, failures: list[tuple[int, str]]):
        """The public result of a row that ended (``row.reason`` "") or failed its last attempt;
        ``failures``: the (seed, reason) of every failed attempt, this one's included. It has the
        row's ``index`` (worker processes send results back by it)."""
        raise NotImplementedError


def inputs(rows: Sequence[Row], features: int) -> np.ndarray:
    """The model's input for each row's next step: ``(B,)`` ids, or ``(B, 1 + F)`` with features."""
    if features:
        return np.array([(row.ids[-1],) + row.feature for row in rows], np.int64)
    return np.array([row.ids[-1] for row in rows], np.int64)


# ---------------------------------------------------------------------------------------------
# The whole request


def decode(engine, constraint: Constraint, choice, seeds: Sequence[int], *, attempts: int = 1,
           next_seed: Callable[[int], int] | None = None, batch_size: int = 1024,
           on_finish: Callable[[object], None] | None = None, on_step: Callable[[], None] | None = None,
           workers: int = 1, keep: bool = True) -> list:
    """One result per seed (``constraint.result``), in the order of ``seeds``; result i depends only
    on ``seeds[i]`` (and the seeds after it that its failures try) and the options.

    Parameters
    ----------
    engine
        ``init_state(batch)`` and ``step(inputs, state) -> (logits, state)``; ``features``: the
        feature columns it reads with each token (0 or absent: none).
    constraint
        The language (:class:`Constraint`).
    choice
        How tokens are chosen: ``strategy`` ("sample" or "greedy"), ``temperature``, ``top_k``,
        ``top_p`` (:func:`~folkrnn.decode.choice.choose_tokens`).
    attempts, next_seed
        Seeds tried per job before its failure is the result; the seed after a failed one
        (default: + 1).
    batch_size
        Rows per step at most.
    on_finish, on_step
        Called with each result as soon as it is made, and after every step of the model.
    workers
        Processes to share the jobs among (:func:`folkrnn.decode.workers.in_workers`; on Linux,
        when each gets at least ``MIN_PER_WORKER``); the results do not depend on it.
    keep
        Keep the results and return them (False: each goes to ``on_finish`` only and nothing is
        returned, so that a request of a million tunes holds only the tunes being made).
    """
    if not isinstance(seeds, range):  # a range stays one: a million seeds need no list
        seeds = list(seeds)
    workers = min(int(workers), len(seeds) // pool.MIN_PER_WORKER)
    if workers > 1 and pool.can_fork():
        # each worker's batch holds about a quarter of the jobs (with two workers), so that half of
        # them wait in the shared pool for whichever worker has room: both finish together
        share = max(pool.MIN_PER_WORKER // 2, -(-len(seeds) // (2 * workers)))

        def run(claim, finish, step) -> None:
            decode_claimed(engine, constraint, choice, seeds, attempts=attempts, next_seed=next_seed,
                           batch_size=min(batch_size, share), on_finish=finish, on_step=step, claim=claim,
                           keep=False)  # each result goes to the parent as it is made

        results = pool.in_workers(run, len(seeds), workers, on_finish, on_step, keep=keep)
    else:
        results = decode_claimed(engine, constraint, choice, seeds, attempts=attempts, next_seed=next_seed,
                                 batch_size=batch_size, on_finish=on_finish, on_step=on_step, keep=keep)
    return [results[index] for index in range(len(seeds))] if keep else []


def decode_claimed(engine, constraint: Constraint, choice, seeds: Sequence[int], *, attempts: int,
                   next_seed: Callable[[int], int] | None, batch_size: int,
                   on_finish: Callable[[object], None] | None, on_step: Callable[[], None] | None,
                   claim: Callable[[int], list[int]] | None = None, keep: bool = True) -> dict[int, object]:
    """The results of the jobs this process claims (``claim(k)``: up to k more positions in
    ``seeds``, shared by worker processes; None: all of them, here), by their position (``keep``;
    else none: each goes to ``on_finish`` only)."""
    # the cyclic garbage collector is off while decoding many rows: the loop makes no cycles (what
    # it drops, reference counting frees), and a collection walks every state the constraint has
    # learnt (a tenth of the time of a long request went on that; one row is left as it is)
    collecting = gc.isenabled() and len(seeds) > 1
    if collecting:
        gc.disable()
    try:
        return _decode_claimed(engine, constraint, choice, seeds, attempts, next_seed, batch_size, on_finish,
                               on_step, claim, keep)
    finally:
        if collecting:
            gc.enable()


def _decode_claimed(engine, constraint: Constraint, choice, seeds: Sequence[int], attempts: int,
                    next_seed: Callable[[int], int] | None, batch_size: int,
                    on_finish: Callable[[object], None] | None, on_step: Callable[[], None] | None,
                    claim: Callable[[int], list[int]] | None, keep: bool = True) -> dict[int, object]:
    next_seed = next_seed or (lambda seed: seed + 1)
    results: dict[int, object] = {}
    failures: dict[int, list[tuple[int, str]]] = {}
    retries: deque[Job] = deque()  # (position, seed) after a failed seed
    if claim is None:
        unclaimed = iter(range(len(seeds)))

        def claim(count: int) -> list[int]:
            return list(itertools.islice(unclaimed, count))

    def more(room: int) -> list[Job]:
        jobs = [retries.popleft() for _ in range(min(room, len(retries)))]
        return jobs + [(index, int(seeds[index])) for index in claim(room - len(jobs))]

    def settle(row: Row) -> None:
        history = failures.get(row.index, [])
        if row.reason:
            history = failures.setdefault(row.index, [])
            history.append((row.seed, row.reason))
            if len(history) < attempts:
                retries.append((row.index, int(next_seed(row.seed))))
                return
        result = constraint.result(row, list(history))
        if keep:
            results[row.index] = result
        if on_finish is not None:
            on_finish(result)

    alone = len(seeds) == 1  # compose's case: exactly as alone, with one BLAS thread (see one_blas_thread)
    exact_jobs: list[Job] = []
    while True:
        jobs = more(1 if alone else batch_size)
        if jobs and alone:  # on its own from the start: the exact computation, as compose makes it
            exact_jobs += jobs
        elif jobs:
            exact_jobs += run_batch(engine, constraint, choice, jobs, exact=False, settle=settle,
                                    on_step=on_step, more=more, capacity=batch_size)
            continue
        if not exact_jobs:
            break
        # the close calls, made again exactly: each row on its own, the rows in step together
        batch, exact_jobs = exact_jobs[:batch_size], exact_jobs[batch_size:]
        run_batch(engine, constraint, choice, batch, exact=True, settle=settle, on_step=on_step,
                  one_thread=alone)
    return results


# ---------------------------------------------------------------------------------------------
# One batch


def run_batch(engine, constraint: Constraint, choice, jobs: list[Job], *, exact: bool,
              settle: Callable[[Row], None], on_step: Callable[[], None] | None = None,
              more: Callable[[int], list[Job]] | None = None, capacity: int = 0,
              one_thread: bool = False, on_fragile: Callable[[Job], None] | None = None) -> list[Job]:
    """Decode the (index, seed) jobs together; ``settle`` gets each row as it ends or fails.
    Returns the fragile jobs: each met a decision the batch's rounding could flip, and must be made
    on its own.

    ``exact``: every row computed on its own (a batch of one per step, as ``compose`` makes a
    tune; the rows still share the rest of the work), so nothing is fragile. ``one_thread``: with
    one BLAS thread (the results are the same; a batch of one is faster so on a busy machine).
    ``more(room)``: new jobs for the rows that have ended (continuous batching: the batch stays
    near ``capacity`` rows until no job is left, rather than dwindling to its longest row).
    ``on_fragile``: given each fragile job as soon as it is found (and none are returned), for a
    batch that may never end (a server's)."""
    if one_thread:
        with one_blas_thread():
            return _run_rows(engine, constraint, choice, jobs, exact, settle, on_step, more, capacity, on_fragile)
    return _run_rows(engine, constraint, choice, jobs, exact, settle, on_step, more, capacity, on_fragile)


def _choose(logits: np.ndarray, masks: np.ndarray, choice, rows: list[Row], exact: bool,
            groups: list[tuple[object, np.ndarray]] | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``choose_tokens`` for these rows (their logits and masks), by one choice or by each group's."""
    if groups is None:
        groups = [(choice, None)]
    ids = np.zeros(len(rows), np.int64)
    logp = np.zeros(len(rows))
    close_calls = np.zeros(len(rows), bool)
    for how, at in groups:
        part = rows if at is None else [rows[i] for i in at]
        seeds = np.array([row.seed for row in part], np.uint64)
        steps = np.array([len(row.ids) for row in part], np.uint64)
        picked, allowed = (logits, masks) if at is None else (logits[at], masks[at])
        noise = 0.0 if exact else rounding_noise(picked, how.temperature)
        got = choose_tokens(picked, allowed, how, seeds, steps, noise)
        if at is None:
            ids, logp, close_calls = got
        else:
            ids[at], logp[at], close_calls[at] = got
    return ids, logp, close_calls


def _run_rows(engine, constraint: Constraint, choice, jobs: list[Job], exact: bool,
              settle: Callable[[Row], None], on_step: Callable[[], None] | None,
              more: Callable[[int], list[Job]] | None, capacity: int,
              on_fragile: Callable[[Job], None] | None = None) -> list[Job]:
    features = getattr(engine, "features", 0)
    eos = constraint.eos
    rows = [constraint.start(index, seed) for index, seed in jobs]
    # exact: each row stepped as on its own (``step_each``: in one call, bit for bit; else one
    # state per row, each stepped alone); else one batched state
    each = getattr(engine, "step_each", None) if exact else None
    apart = exact and each is None
    state = [engine.init_state(1) for _ in rows] if apart else engine.init_state(len(rows))
    current = inputs(rows, features)
    fragile: list[Job] = []
    refill = max(1, capacity // 8)  # new rows join a few at a time (each join copies the state)
    while rows:
        if apart:
            stepped = [engine.step(current[i:i + 1], state[i]) for i in range(len(rows))]
            logits = np.concatenate([out for out, _ in stepped])  # (B, V)
            state = [new for _, new in stepped]
        elif exact:
            logits, state = each(current, state)  # (B, V)
        else:
            logits, state = engine.step(current, state)  # (B, V)
        logits = constraint.adjust(logits, rows)
        masks = constraint.masks(rows)  # (B, V)
        free = [i for i, row in enumerate(rows) if not row.forced]
        # per row, as Python values (the loop below reads them one at a time)
        chosen: list[int] = []
        logps: list[float] = []
        unsure: list[bool] = []
        if free:
            every = len(free) == len(rows)  # the usual case: no copies
            sub = np.asarray(free)
            free_masks = masks if every else masks[sub]
            empty = ~free_masks.any(axis=1)
            if empty.any():  # a dead end: no token is allowed (cannot happen for a feasible state)
                free_masks[empty, eos] = True
                if not every:
                    masks[sub[empty], eos] = True
            free_rows = rows if every else [rows[i] for i in free]
            ids, logp, close_calls = _choose(logits if every else logits[sub], free_masks, choice, free_rows,
                                             exact, constraint.choices(free_rows, choice))
            if exact:  # nothing is fragile computed on its own
                close_calls = np.zeros(len(free), bool)
            if every:
                chosen, logps, unsure = ids.tolist(), logp.tolist(), close_calls.tolist()
            else:
                chosen, logps, unsure = [0] * len(rows), [0.0] * len(rows), [False] * len(rows)
                for i, token, value, close_call in zip(free, ids.tolist(), logp.tolist(), close_calls.tolist()):
                    chosen[i], logps[i], unsure[i] = token, value, close_call
            for k in np.flatnonzero(empty):
                rows[free[k]].reason = "the constraint reached a state with no allowed token"
        keep: list[int] = []
        advance, kept = constraint.advance, keep.append
        for i, row in enumerate(rows):
            if row.reason:
                settle(row)
                continue
            forced = row.forced
            if forced:
                token = forced.pop(0)
                if not masks[i, token]:
                    row.reason = constraint.misfit(row, token)
                    if row.reason:
                        settle(row)
                        continue
                outcome = advance(row, token, False)
            elif unsure[i]:
                (on_fragile or fragile.append)((row.index, row.seed))
                continue
            else:
                row.log_prob += logps[i]
                outcome = advance(row, chosen[i], True)
            if not outcome:
                kept(i)
            elif outcome == DONE:
                settle(row)
            else:
                row.reason = outcome
                settle(row)
        if on_step is not None:
            on_step()
        if len(keep) < len(rows):
            state = [state[i] for i in keep] if apart else select_state(state, keep)
            rows = [rows[i] for i in keep]
        if more is not None and (capacity - len(rows) >= refill or not rows):
            added = more(capacity - len(rows))
            if added:
                rows += [constraint.start(index, seed) for index, seed in added]
                fresh = engine.init_state(len(added))
                state = (np.concatenate([state[0], fresh[0]], axis=1),
                         np.concatenate([state[1], fresh[1]], axis=1))
        current = inputs(rows, features)
    return fragile
