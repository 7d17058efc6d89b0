"""How long folkrnn's processes live: workers die with their parent, and SIGTERM stops a command as
Ctrl-C does.

- A worker process (generate's samplers, the corpus builder's readers) calls :func:`die_with_parent`
  first: on Linux the kernel kills it when its parent dies (``prctl(PR_SET_PDEATHSIG)``), however
  the parent dies (``kill -9``, ``timeout``, the OOM killer); elsewhere a thread watches the parent.
  Without it, workers are adopted by PID 1 and sample on, holding memory, for minutes.
- The CLI calls :func:`stop_on_sigterm`: SIGTERM (``kill``, ``timeout``, a service manager) raises
  KeyboardInterrupt, so what Ctrl-C keeps (generate's finished tunes, train's checkpoint) SIGTERM
  keeps too, and temporary files are removed on the way out.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

__all__ = ["die_with_parent", "worker_started", "stop_on_sigterm"]

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent: int) -> None:
    """Make this process die when the process ``parent`` (its parent, by pid) does.

    Linux: the kernel sends SIGKILL on the parent's death; the parent may have died before this
    call, so it is checked once after. Elsewhere: a daemon thread polls the parent twice a second.
    """
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0:
                if os.getppid() != parent:  # the parent died before the death signal was asked for
                    os._exit(1)
                return
        except (OSError, AttributeError):
            pass
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True, name="folkrnn-parent").start()


def _watch_parent(parent: int) -> None:
    while True:
        if os.getppid() != parent:
            os._exit(1)
        time.sleep(0.5)


def worker_started(parent: int) -> None:
    """The first thing a worker process does: Ctrl-C and SIGTERM are the parent's to handle (a
    worker ignores Ctrl-C, and a SIGTERM sent to it alone ends it at once), and it dies with its
    parent. A ``ProcessPoolExecutor`` initializer, or called at the top of a worker's target."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a forked worker would inherit the parent's handler
    die_with_parent(parent)


def _terminated(signum, frame) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM does not cut the saving short
    raise KeyboardInterrupt


def stop_on_sigterm() -> None:
    """From now on SIGTERM raises KeyboardInterrupt in the main thread, as Ctrl-C does (the first one:
    more are ignored while the command keeps what it has; SIGKILL still ends it)."""
    try:
        signal.signal(signal.SIGTERM, _terminated)
    except ValueError:  # not the main thread: leave SIGTERM as it is
        pass
