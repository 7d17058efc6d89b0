"""Fuzz ``folkrnn serve`` over loopback: random and hostile requests against the real server.

1. ``--count`` requests from tests/serve_fuzz_cases.py (every field out of range, unknown fields,
   markup and SQL, path traversal, broken JSON, bodies over the cap) to a server with a large
   request budget, so that they reach the code behind the rate limit;
2. raw malformed HTTP over a socket (bad request lines, huge headers);
3. a flood: ``--flood`` requests as fast as one client can send them, to a server with the default
   budget: they must get 429, and the server's memory must stay bounded.

Prints how many were tried, how many got 2xx, 4xx and 5xx (the target is 0), whether the server
still answers afterwards, and its resident memory before and after; JSON last.

    python benchmarks/serve_fuzz.py --count 1000
"""

from __future__ import annotations

import argparse
import collections
import json
import socket
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from serve_fuzz_cases import cases  # noqa: E402
from serving import start_serve, stop  # noqa: E402


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def raw(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        try:
            return sock.recv(200)
        except (TimeoutError, ConnectionResetError):
            return b""


RAW = [
    b"GARBAGE\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"GET /api/compose?seed=1 HTTP/1.1\r\nHost: x\r\n" + b"X: " +
    b"a" * 100_000 + b"\r\n\r\n", b"POST /api/tunebook HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n{",
    b"POST /api/tunebook HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    b"POST /api/tunebook HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\n",
    b"GET /api/tunebook/1 HTTP/1.1\r\nHost: x\r\n\r\n" * 50, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--flood", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    figures: dict = {}
    with tempfile.TemporaryDirectory() as folder:
        # 1 and 2: a server with a large budget
        server, base = start_serve(Path(folder), Path(folder) / "fuzz.sqlite")
        port = int(base.rsplit(":", 1)[1])
        try:
            before = rss_mib(server.pid)
            statuses: collections.Counter = collections.Counter()
            started = time.perf_counter()
            with httpx.Client(base_url=base, timeout=120) as client:
                for method, path, query, body, headers in cases(args.count, seed=args.seed):
                    try:
                        response = client.request(method, path, params=query, content=body, headers=headers)
                        statuses[response.status_code] += 1
                    except httpx.HTTPError as error:
                        statuses[f"no answer: {type(error).__name__}"] += 1
                raw_answers = [raw(port, data)[:12].decode("latin-1") for data in RAW]
                alive = client.get("/api/health").status_code == 200
                tune = client.get("/api/compose", params={"seed": 1, "rhythm": "reel"})
                alive = alive and "event: tune" in tune.text
            figures["fuzz_seconds"] = round(time.perf_counter() - started, 1)
            figures["rss_mib_before"], figures["rss_mib_after_fuzz"] = round(before, 1), round(rss_mib(server.pid), 1)
        finally:
            stop(server)
        tried = sum(statuses.values())
        figures.update({
            "tried": tried,
            "2xx": sum(n for s, n in statuses.items() if isinstance(s, int) and s < 300),
            "4xx": sum(n for s, n in statuses.items() if isinstance(s, int) and 400 <= s < 500),
            "5xx": sum(n for s, n in statuses.items() if isinstance(s, int) and s >= 500),
            "no_answer": sum(n for s, n in statuses.items() if not isinstance(s, int)),
            "statuses": {str(s): n for s, n in sorted(statuses.items(), key=str)},
            "raw_malformed": len(RAW), "raw_answers": raw_answers,
            "still_answers": alive,
        })
        # 3: a flood against the default budget
        flood_server, base = start_serve(Path(folder), Path(folder) / "flood.sqlite", budget=True)
        try:
            before = rss_mib(flood_server.pid)
            flood: collections.Counter = collections.Counter()
            with httpx.Client(base_url=base, timeout=60) as client:
                for i in range(args.flood):
                    path = "/api/compose" if i % 3 == 0 else "/api/tunebook"
                    flood[client.get(path, params={"seed": i}).status_code] += 1
            figures["flood"] = {"sent": args.flood, "statuses": {str(s): n for s, n in sorted(flood.items())},
                                "rss_mib_before": round(before, 1),
                                "rss_mib_after": round(rss_mib(flood_server.pid), 1)}
        finally:
            stop(flood_server)
    print(f"fuzz: {figures['tried']} requests: {figures['2xx']} 2xx, {figures['4xx']} 4xx, {figures['5xx']} 5xx "
          f"(target 0), {figures['no_answer']} without an answer; {len(RAW)} malformed raw requests; "
          f"still answers: {figures['still_answers']}")
    print(f"memory: {figures['rss_mib_before']} -> {figures['rss_mib_after_fuzz']} MiB over the fuzz; flood of "
          f"{args.flood}: {figures['flood']['statuses']}, {figures['flood']['rss_mib_before']} -> "
          f"{figures['flood']['rss_mib_after']} MiB")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
