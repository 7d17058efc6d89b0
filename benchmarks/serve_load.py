"""Load on ``folkrnn serve``: many musicians composing at once against one at a time, over loopback.

Starts ``folkrnn serve`` (the real server, uvicorn, on a free port) and composes tunes through
``GET /api/compose`` (the streamed events, read as the page reads them):

1. one client, one tune at a time (``--single`` tunes): the baseline;
2. ``--clients`` clients at once, each composing ``--each`` tunes one after another.

Every request has its own seed (no tune comes from the server's cache). Prints tunes per second of
both, their ratio, the p95 time from request to the first streamed token, the p95 time to a whole
tune against one client's, and the JSON line last. Targets (the web-composer issue): throughput
>= 10x, p95 first token < 300 ms, p95 whole tune <= 3x one client's.

It also prints the ceiling this machine puts on the ratio: the shipped model's arithmetic alone (the
NumPy engine stepping ``--clients`` rows at once for a tune's mean length, with every core BLAS
wants; no grammar, no token choice, no HTTP) in tunes per second, against the one-at-a-time rate.
Whatever the server does, 50 musicians at once cannot get more than that.

    python benchmarks/serve_load.py                # 50 clients x 4 tunes, 40 alone
    python benchmarks/serve_load.py --workers 2    # two server processes
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from serving import start_serve, stop  # noqa: E402


class Connection:
    """One client's keep-alive HTTP/1.1 connection, read by hand: a light client, so that the
    load measures the server and not the client's parsing (both share this machine's cores)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def compose(self, seed: int, rhythm: str) -> dict:
        """One tune: seconds to the first streamed token and to the whole tune, and whether it came."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        start = time.perf_counter()
        self.writer.write(f"GET /api/compose?seed={seed}&rhythm={rhythm} HTTP/1.1\r\nHost: load\r\n\r\n".encode())
        status = int((await self.reader.readline()).split()[1])
        chunked = False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"transfer-encoding:") and b"chunked" in line.lower():
                chunked = True
        if status != 200 or not chunked:  # a refusal: its JSON body is read and dropped
            self.writer.close()
            self.writer = None
            return {"first": None, "whole": None, "ok": False, "status": status}
        first = whole = None
        pending = b""
        while True:
            size = int((await self.reader.readline()).strip(), 16)
            data = await self.reader.readexactly(size + 2)  # the chunk and its CRLF
            if size == 0:
                break
            pending += data[:-2]
            if first is None and b"event: progress" in pending:
                first = time.perf_counter() - start
            if whole is None and b"event: tune" in pending and pending.endswith(b"\n\n"):
                whole = time.perf_counter() - start
            pending = pending[-20:] if whole is None else pending
        return {"first": first, "whole": whole, "ok": whole is not None, "status": status}

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


async def run(port: int, clients: int, each: int, single: int, warm: int) -> dict:
    rhythms = ["reel", "jig", "hornpipe", "slipjig"]
    # warm up, as a server that has run a while is: the grammar of each dance learns its common states
    # (a cold one computes a mask for most steps of its first tunes)
    async def warm_client(c: int) -> None:
        connection = Connection(port)
        for i in range(-(-warm // clients)):
            await connection.compose(10_000_000 + c * 1000 + i, rhythms[(c + i) % len(rhythms)])
        connection.close()

    await asyncio.gather(*(warm_client(c) for c in range(clients)))
    alone_client = Connection(port)
    start = time.perf_counter()
    alone = [await alone_client.compose(1000 + i, rhythms[i % len(rhythms)]) for i in range(single)]
    alone_time = time.perf_counter() - start
    alone_client.close()

    async def one_client(c: int) -> list[dict]:
        connection = Connection(port)
        try:
            return [await connection.compose(100_000 + c * 1000 + i, rhythms[(c + i) % len(rhythms)])
                    for i in range(each)]
        finally:
            connection.close()

    start = time.perf_counter()
    cpu = time.process_time()
    together = [result for results in await asyncio.gather(*(one_client(c) for c in range(clients)))
                for result in results]
    together_time = time.perf_counter() - start
    client_cpu = time.process_time() - cpu
    made_alone = [r for r in alone if r["ok"]]
    made = [r for r in together if r["ok"]]
    single_rate = len(made_alone) / alone_time
    rate = len(made) / together_time
    return {
        "clients": clients, "tunes_alone": len(alone), "tunes_together": len(together),
        "failed": len(alone) - len(made_alone) + len(together) - len(made),
        "statuses": sorted({r["status"] for r in alone + together}),
        "single_tunes_per_s": round(single_rate, 2), "concurrent_tunes_per_s": round(rate, 2),
        "throughput_ratio": round(rate / single_rate, 2),
        "p95_first_token_ms": round(1000 * p95([r["first"] for r in made]), 1),
        "single_p95_first_token_ms": round(1000 * p95([r["first"] for r in made_alone]), 1),
        "p95_whole_tune_s": round(p95([r["whole"] for r in made]), 3),
        "single_p95_whole_tune_s": round(p95([r["whole"] for r in made_alone]), 3),
        "whole_tune_ratio": round(p95([r["whole"] for r in made]) / p95([r["whole"] for r in made_alone]), 2),
        "client_cpu_s": round(client_cpu, 2), "concurrent_wall_s": round(together_time, 2),
    }


def ceiling(rows: int) -> dict:
    """The shipped model's arithmetic alone for ``rows`` tunes at once, and for one: tunes per second."""
    import numpy as np

    from folkrnn.checkpoint import load_model, shipped_model
    from folkrnn.sample import sample_tunes

    model = load_model(shipped_model("abc"))
    engine = model.engine()
    tokens = float(np.mean([len(r.tokens) for r in sample_tunes(engine, model.vocabulary, list(range(40)))]))
    steps = round(tokens)
    width = 1 + (engine.features or 0)

    def rate(batch: int) -> float:
        best = float("inf")
        for _ in range(3):
            state = engine.init_state(batch)
            ids = np.zeros((batch, width) if engine.features else batch, np.int64)
            start = time.perf_counter()
            for _ in range(steps):
                _, state = engine.step(ids, state)
            best = min(best, time.perf_counter() - start)
        return batch / best

    return {"mean_tokens": round(tokens, 1), "model_alone_batch_tunes_per_s": round(rate(rows), 1),
            "model_alone_one_tunes_per_s": round(rate(1), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--each", type=int, default=4, help="tunes each concurrent client composes")
    parser.add_argument("--single", type=int, default=40, help="tunes composed one at a time")
    parser.add_argument("--workers", type=int, default=1, help="server processes")
    parser.add_argument("--warm", type=int, default=400, help="tunes composed first (by the clients at once), "
                        "not measured")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        try:
            server, base = start_serve(Path(folder), workers=args.workers)
        except RuntimeError as error:
            raise SystemExit(str(error)) from None
        try:
            figures = asyncio.run(run(int(base.rsplit(":", 1)[1]), args.clients, args.each, args.single, args.warm))
        finally:
            stop(server)
    figures["workers"] = args.workers
    figures.update(ceiling(args.clients))
    figures["ceiling_ratio"] = round(figures["model_alone_batch_tunes_per_s"] / figures["single_tunes_per_s"], 2)
    print(f"one at a time: {figures['single_tunes_per_s']} tunes/s; {args.clients} clients: "
          f"{figures['concurrent_tunes_per_s']} tunes/s ({figures['throughput_ratio']}x; target >= 10x)")
    print(f"p95 first token: {figures['p95_first_token_ms']} ms (target < 300); one client's: "
          f"{figures['single_p95_first_token_ms']} ms")
    print(f"p95 whole tune: {figures['p95_whole_tune_s']} s against one client's "
          f"{figures['single_p95_whole_tune_s']} s "
          f"({figures['whole_tune_ratio']}x; target <= 3x); failed: {figures['failed']}")
    print(f"ceiling: the model's arithmetic alone, {args.clients} rows at once, makes "
          f"{figures['model_alone_batch_tunes_per_s']} tunes/s ({figures['mean_tokens']} tokens a tune; one row: "
          f"{figures['model_alone_one_tunes_per_s']}): {figures['ceiling_ratio']}x the one-at-a-time rate")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
