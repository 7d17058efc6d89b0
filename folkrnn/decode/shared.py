"""One decoding loop that many callers share: a server's requests step the model together.

``folkrnn serve`` answers many musicians at once. Each request is its own constraint (its title,
meter, form ...) and its own way of choosing tokens (temperature, top-k, top-p), but they all read
one model, so the rows of every request in flight join one continuous batch
(:func:`folkrnn.decode.loop.run_batch`): 50 musicians composing at once cost about one batch, not
50 sampling loops. :class:`SharedLoop` runs that batch in a thread of its own, outside the caller's
event loop; :meth:`SharedLoop.decode` has :func:`folkrnn.decode.loop.decode`'s signature and
results, so ``sample_tunes(..., decoder=shared.decode)`` is all a caller changes.

The results are those of the loop alone, bit for bit: a row whose choice the batch's float
rounding could flip (a *fragile* row) is made again on its own, by a second thread with its own
engine (:meth:`folkrnn.infer.NumpyLSTM.twin`) in the exact way ``compose`` makes a tune, while
the batch goes on. The constraints' state (a grammar's caches) is touched under one lock; the
model steps of the two threads run outside it.

A caller watches its rows as they grow (:attr:`Request.rows`: the newest attempt at each job), and
may :meth:`Request.cancel` (a musician who closed the page): its rows leave the batch at their
next step.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence

import numpy as np

from folkrnn.decode.loop import Constraint, Row, run_batch

__all__ = ["SharedLoop", "Request", "CANCELLED"]

CANCELLED = "cancelled"  # the reason a cancelled request's rows fail with


class Request:
    """One caller's jobs in a :class:`SharedLoop`: its constraint, its choice, its seeds."""

    def __init__(self, constraint: Constraint, choice, seeds: Sequence[int], attempts: int,
                 next_seed: Callable[[int], int] | None, base: int,
                 on_finish: Callable[[object], None] | None) -> None:
        self.constraint, self.choice = constraint, choice
        self.seeds = [int(seed) for seed in seeds]
        self.attempts, self.next_seed = max(1, int(attempts)), next_seed or (lambda seed: seed + 1)
        self.base = base  # the loop's index of job 0
        kin = constraint.kin()  # requests of one kin share the constraint's batched calls
        self.kin = ("request", id(self)) if kin is None else kin
        self.way = (choice.strategy, choice.temperature, choice.top_k, choice.top_p)  # ... and of one way, a choice
        self.on_finish = on_finish
        self.results: list = [None] * len(self.seeds)
        self.failures: dict[int, list[tuple[int, str]]] = {}
        self.rows: dict[int, Row] = {}  # job -> the row of its newest attempt (for watching it grow)
        self.remaining = len(self.seeds)
        self.cancelled = False
        self.error: BaseException | None = None  # what stopped the loop, if anything did
        self.finished = threading.Event()
        if not self.seeds:
            self.finished.set()

    def cancel(self) -> None:
        """Stop: jobs not started never start, rows in the batch fail at their next step."""
        self.cancelled = True

    def wait(self, timeout: float | None = None) -> list:
        """The results, in the order of the seeds, once every job has ended."""
        if not self.finished.wait(timeout):
            raise TimeoutError("the request has not finished")
        if self.error is not None:
            raise RuntimeError(f"the decoding loop stopped: {self.error}") from self.error
        return list(self.results)


class _Mux(Constraint):
    """The constraint of a batch whose rows belong to several requests: each call goes to the
    row's own request (rows are grouped by request for the batched calls)."""

    def __init__(self, loop: SharedLoop) -> None:
        self.loop = loop
        self.eos = -1

    def _owner(self, row: Row) -> tuple[Request, int]:
        return self.loop._owners[row.index]

    def _groups(self, rows: list[Row], by: str = "kin") -> list[tuple[Request, np.ndarray | None]]:
        """The rows by their request's ``kin`` (:meth:`Constraint.kin`) or ``way`` of choosing: one
        request of each group stands for all its rows (positions None: every row is in it)."""
        owners = self.loop._owners
        groups: dict[object, tuple[Request, list[int]]] = {}
        for position, row in enumerate(rows):
            request = owners[row.index][0]
            groups.setdefault(getattr(request, by), (request, []))[1].append(position)
        if len(groups) == 1:
            return [(next(iter(groups.values()))[0], None)]
        return [(request, np.asarray(at)) for request, at in groups.values()]

    def start(self, index: int, seed: int) -> Row:
        request, job = self.loop._owners[index]
        with self.loop._lock:
            row = request.constraint.start(index, seed)
        request.rows[job] = row
        return row

    def masks(self, rows: list[Row]) -> np.ndarray:
        with self.loop._lock:
            groups = self._groups(rows)
            if groups[0][1] is None:
                return groups[0][0].constraint.masks(rows)
            out = None
            for request, at in groups:
                part = request.constraint.masks([rows[i] for i in at])
                if out is None:
                    out = np.zeros((len(rows), part.shape[1]), bool)
                out[at] = part
            return out

    def adjust(self, logits: np.ndarray, rows: list[Row]) -> np.ndarray:
        with self.loop._lock:
            groups = self._groups(rows)
            if groups[0][1] is None:
                return groups[0][0].constraint.adjust(logits, rows)
            out = logits.copy()
            for request, at in groups:
                out[at] = request.constraint.adjust(logits[at], [rows[i] for i in at])
            return out

    def choices(self, rows: list[Row], choice):
        # by the way of choosing, not by request: most requests choose alike, and one call for all
        # their rows is far cheaper than one per request
        return [(request.choice, at) for request, at in self._groups(rows, "way")]

    def misfit(self, row: Row, token: int) -> str:
        with self.loop._lock:
            return self._owner(row)[0].constraint.misfit(row, token)

    def advance(self, row: Row, token: int, chosen: bool) -> str:
        request = self._owner(row)[0]
        if request.cancelled:
            return CANCELLED
        with self.loop._lock:
            return request.constraint.advance(row, token, chosen)

    def result(self, row: Row, failures: list[tuple[int, str]]):
        with self.loop._lock:
            return self._owner(row)[0].constraint.result(row, failures)


class SharedLoop:
    """A continuous batch over one engine that any number of threads submit requests to.

    ``capacity`` rows step together at most (more jobs wait their turn). The loop's threads start
    with the first request and live as long as the process (they are daemons), or until
    :meth:`close`.
    """

    def __init__(self, engine, *, capacity: int = 256) -> None:
        self.engine = engine
        twin = getattr(engine, "twin", None)
        self.exact_engine = twin() if twin is not None else engine
        self.capacity = max(1, int(capacity))
        self._lock = threading.RLock()  # the constraints' state (both threads change it)
        self._owners: dict[int, tuple[Request, int]] = {}  # loop index -> (request, job)
        self._next = 0
        self._jobs: deque[tuple[int, int]] = deque()  # (loop index, seed): waiting for the batch
        self._fragile: deque[tuple[int, int]] = deque()  # waiting to be made exactly
        self._wake = threading.Condition()
        self._mux = _Mux(self)
        self._threads: list[threading.Thread] = []
        self._closed = False
        self.steps = 0  # batch steps so far (for tests and benchmarks)
        self.rows_stepped = 0  # rows summed over those steps

    # -- submitting

    def submit(self, constraint: Constraint, choice, seeds: Sequence[int], *, attempts: int = 1,
               next_seed: Callable[[int], int] | None = None,
               on_finish: Callable[[object], None] | None = None) -> Request:
        """Queue one request's jobs; returns at once (``Request.wait`` for the results)."""
        if self._closed:
            raise RuntimeError("the shared decoding loop is closed")
        with self._wake:
            if self._mux.eos < 0:
                self._mux.eos = constraint.eos
            elif constraint.eos != self._mux.eos:
                raise ValueError("every request of a shared loop must read the same vocabulary")
            request = Request(constraint, choice, seeds, attempts, next_seed, self._next, on_finish)
            self._next += len(request.seeds)
            for job, seed in enumerate(request.seeds):
                self._owners[request.base + job] = (request, job)
                self._jobs.append((request.base + job, seed))
            if not self._threads:
                self._start()
            self._wake.notify_all()
        return request

    def decode(self, engine, constraint: Constraint, choice, seeds: Sequence[int], *, attempts: int = 1,
               next_seed: Callable[[int], int] | None = None, on_finish: Callable[[object], None] | None = None,
               on_submit: Callable[[Request], None] | None = None, **_ignored) -> list:
        """:func:`folkrnn.decode.loop.decode`, run in the shared batch (``engine`` must be this
        loop's; batch size and workers are the loop's own). ``on_submit`` is given the request."""
        if engine is not self.engine:
            raise ValueError("a shared loop decodes with its own engine only")
        request = self.submit(constraint, choice, seeds, attempts=attempts, next_seed=next_seed,
                              on_finish=on_finish)
        if on_submit is not None:
            on_submit(request)
        try:
            return request.wait()
        except BaseException:
            request.cancel()
            raise

    def exclusive(self):
        """A context holding the constraints' lock: for a caller that runs a constraint of the same
        kind outside this loop (a beam search, whose grammar the batch's requests may share)."""
        return self._lock

    def close(self) -> None:
        """Stop the threads once the rows in flight have ended (requests waiting are cancelled)."""
        with self._wake:
            self._closed = True
            for index, _ in list(self._jobs) + list(self._fragile):
                self._owners[index][0].cancel()
            self._wake.notify_all()
        for thread in self._threads:
            thread.join(timeout=30)

    # -- the threads

    def _start(self) -> None:
        for name, target in (("folkrnn-batch", self._batch_lane), ("folkrnn-exact", self._exact_lane)):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def _take(self, queue: deque, room: int) -> list[tuple[int, int]]:
        jobs = []
        while queue and len(jobs) < room:
            index, seed = queue.popleft()
            request = self._owners[index][0]
            if request.cancelled:  # never started: it ends as a failure at once
                self._give_up(request, index, seed, CANCELLED)
                continue
            jobs.append((index, seed))
        return jobs

    def _wait_for(self, queue: deque) -> bool:
        with self._wake:
            while not queue and not self._closed:
                self._wake.wait()
            return bool(queue)

    def _lane(self, queue: deque, engine, exact: bool) -> None:
        def more(room: int) -> list[tuple[int, int]]:
            return self._take(queue, room)

        def on_step() -> None:
            self.steps += 1

        while self._wait_for(queue):
            jobs = more(self.capacity)
            if not jobs:
                continue
            try:
                run_batch(engine, self._mux, jobs and self._owners[jobs[0][0]][0].choice, jobs, exact=exact,
                          settle=self._settle, on_step=None if exact else on_step, more=more,
                          capacity=self.capacity, on_fragile=self._to_exact)
            except BaseException as error:  # a bug, or memory: every request in flight hears of it
                self._fail_all(error)

    def _batch_lane(self) -> None:
        self._lane(self._jobs, self.engine, exact=False)

    def _exact_lane(self) -> None:
        self._lane(self._fragile, self.exact_engine, exact=True)

    def _to_exact(self, job: tuple[int, int]) -> None:
        with self._wake:
            self._fragile.append(job)
            self._wake.notify_all()

    # -- ending rows

    def _settle(self, row: Row) -> None:
        request, job = self._owners[row.index]
        if row.reason:
            history = request.failures.setdefault(job, [])
            history.append((row.seed, row.reason))
            if row.reason != CANCELLED and not request.cancelled and len(history) < request.attempts:
                with self._wake:
                    self._jobs.appendleft((row.index, int(request.next_seed(row.seed))))
                    self._wake.notify_all()
                return
        result = self._mux.result(row, list(request.failures.get(job, [])))
        self._finish(request, row.index, job, result)

    def _give_up(self, request: Request, index: int, seed: int, reason: str) -> None:
        job = index - request.base
        history = request.failures.setdefault(job, [])
        history.append((seed, reason))
        row = request.constraint.start(index, seed)
        row.reason = reason
        with self._lock:
            result = request.constraint.result(row, list(history))
        self._finish(request, index, job, result)

    def _finish(self, request: Request, index: int, job: int, result) -> None:
        if hasattr(result, "index"):
            result.index = job  # its place in its own request
        request.results[job] = result
        if request.on_finish is not None:
            try:
                request.on_finish(result)
            except Exception as error:  # the caller's problem, not the batch's
                request.error = error
        with self._wake:  # both threads end rows
            self._owners.pop(index, None)
            request.remaining -= 1
            if request.remaining == 0:
                request.finished.set()

    def _fail_all(self, error: BaseException) -> None:
        with self._wake:
            requests = {id(request): request for request, _ in self._owners.values()}
            self._owners.clear()
            self._jobs.clear()
            self._fragile.clear()
        for request in requests.values():
            request.error = error
            request.finished.set()
