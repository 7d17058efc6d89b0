"""Worker processes for :func:`folkrnn.decode.loop.decode`: the jobs shared among forked processes.

Each worker claims jobs from one shared pool as its batch has room, decodes with one BLAS thread
and sends each result back as it is made: the constraint and the choice of tokens are Python, so a
second core doubles that part. The results do not depend on the number of workers (a row depends
only on its seed).
"""

from __future__ import annotations

import gc
import os
import signal
import sys
import time
from collections.abc import Callable

from folkrnn.decode.choice import one_blas_thread
from folkrnn.errors import FolkError
from folkrnn.processes import worker_started

__all__ = ["MIN_PER_WORKER", "default_workers", "can_fork", "in_workers"]

# a worker that ended by one of these was stopped with its group (kill, timeout): not a failure
_STOPPED = (-signal.SIGINT, -signal.SIGTERM, -signal.SIGHUP)
MIN_PER_WORKER = 64  # fewer jobs than this a worker would decode in batches too small to pay

# run(claim, on_finish, on_step): decode the jobs claim(k) hands out (up to k more positions),
# calling on_finish with each result (which has an ``index``) and on_step after every step
Run = Callable[[Callable[[int], list[int]], Callable[[object], None], Callable[[], None]], None]


def default_workers() -> int:
    """The cores this process may use (at most 16)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 16))


def can_fork() -> bool:
    """Whether worker processes can be forked safely: on Linux (macOS's system libraries do not
    survive a fork, and Windows has none)."""
    import multiprocessing

    return sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()


def _worker(run: Run, count: int, claimed, queue, parent: int) -> None:
    """A worker process: decode the jobs it claims, sending each result (and the steps, now and then) back."""
    worker_started(parent)  # Ctrl-C and SIGTERM are the parent's to handle; die with the parent
    # no cyclic garbage collection in a worker: decoding makes no cycles, the process ends with its
    # jobs, and a collection would walk every state its constraint has learnt (see decode_claimed)
    gc.disable()
    steps, last = 0, time.monotonic()

    def step() -> None:
        nonlocal steps, last
        steps += 1
        if time.monotonic() - last > 0.1:
            queue.put(("steps", steps))
            steps, last = 0, time.monotonic()

    def claim(wanted: int) -> list[int]:
        with claimed.get_lock():
            first = claimed.value
            claimed.value = min(first + wanted, count)
            return list(range(first, claimed.value))

    try:
        with one_blas_thread():  # the workers share the cores already
            run(claim, lambda result: queue.put(("result", result)), step)
        queue.put(("steps", steps))
        queue.put(("done", None))
    except BaseException as error:  # noqa: BLE001 - every failure goes back to the parent
        try:
            queue.put(("error", error))
        except Exception:  # noqa: BLE001 - an error that cannot be pickled goes back as text
            queue.put(("error", f"{type(error).__name__}: {error}"))


def in_workers(run: Run, count: int, workers: int, on_finish: Callable[[object], None] | None,
               on_step: Callable[[], None] | None, *, keep: bool = True) -> dict[int, object]:
    """The results of ``count`` jobs decoded by ``workers`` forked processes, by their index
    (``keep``; else none: each goes to ``on_finish`` only).

    Raises the error a worker raised (or FolkError when one died); the workers are gone when it returns.
    """
    import multiprocessing
    import queue as queues

    context = multiprocessing.get_context("fork")  # the model and the constraint's states come along
    messages = context.Queue()
    claimed = context.Value("q", 0)  # the next unclaimed position
    processes = [context.Process(target=_worker, daemon=True, args=(run, count, claimed, messages, os.getpid()))
                 for _ in range(workers)]
    results: dict[int, object] = {}
    running = len(processes)
    try:
        for process in processes:
            process.start()
        while running:
            try:
                kind, payload = messages.get(timeout=0.5)
            except queues.Empty:
                dead = [p.exitcode for p in processes if p.exitcode not in (None, 0)]
                if any(code in _STOPPED for code in dead):  # Ctrl-C or SIGTERM to the group: the run stops
                    raise KeyboardInterrupt from None
                if dead:
                    raise FolkError(f"a sampling worker process died (exit code {dead[0]})") from None
                continue
            if kind == "result":
                if keep:
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
    return results
