"""``folkrnn serve`` as a real process on a free port, for the tests (tests/test_serve.py,
tests/test_serve_browser.py) and the benchmarks (benchmarks/serve_load.py, serve_fuzz.py)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

# a budget of requests no test or load run reaches (the budget's own tests set theirs)
UNLIMITED = {"FOLKRNN_SERVE_RATE": "1000", "FOLKRNN_SERVE_BURST": "10000"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_serve(folder: Path, db: str | os.PathLike | None = None, *, workers: int = 1, budget: bool = False,
                seconds: float = 120) -> tuple[subprocess.Popen, str]:
    """``folkrnn serve`` run in ``folder`` (its tunebook ``db``, default ``folder/tunebook.sqlite``) on a
    free port, once it answers ``/api/health``: the process and its base URL. What it prints goes to
    ``folder/serve-<port>.log``. ``budget``: the default request budget (else :data:`UNLIMITED`).
    Raises RuntimeError, with the log's end, when it exits or does not answer in ``seconds``."""
    folder = Path(folder)
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("FOLKRNN_SERVE_")}
    if not budget:
        env.update(UNLIMITED)
    log_path = folder / f"serve-{port}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "folkrnn", "serve", "--port", str(port), "--db",
             str(db if db is not None else folder / "tunebook.sqlite"), "--workers", str(workers)],
            cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + seconds
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"folkrnn serve exited ({process.returncode}): {log_path.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(base + "/api/health", timeout=2) as response:
                if json.load(response).get("ok"):
                    return process, base
        except (OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            stop(process)
            raise RuntimeError(f"folkrnn serve did not answer in {seconds:g} s: {log_path.read_text()[-2000:]}")
        time.sleep(0.1)


def stop(process: subprocess.Popen) -> None:
    """Stop a server as Ctrl-C would, or kill it when it does not stop."""
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
