"""Random and hostile requests for folkrnn serve: used by tests/test_serve.py (a few hundred, in
process) and benchmarks/serve_fuzz.py (a thousand and more, over loopback to the real server).

Each case is (method, path, query pairs, body bytes or None, headers). They mix well-formed
requests with every field out of range, unknown fields, huge and binary values, path traversal,
markup and SQL in every text field, broken JSON and bodies over the cap."""

from __future__ import annotations

import json
import random

FIELDS = ["title", "rhythm", "meter", "mode", "key", "form", "part_bars", "prime", "seed", "strategy",
          "temperature", "top_k", "top_p", "beam_width", "tempo", "instrument"]
GOOD = {
    "title": ["The Kesh Jig", "Reel", "Drowsy Maggie", "An Phis Fliuch"], "rhythm": ["reel", "jig", "hornpipe", "any"],
    "meter": ["6/8", "4/4", "2/2", "3/4"], "mode": ["major", "minor", "dorian", "mix"], "key": ["D", "G", "Ador", "Bb"],
    "form": ["AABB", "AB", "free", "ABC"], "part_bars": ["8", "16"], "prime": ["|: GABc dedB |", "D2 FA"],
    "seed": ["0", "1", "42", "9223372036854775807"], "strategy": ["sample", "greedy"],
    "temperature": ["0.5", "1", "1.2"], "top_k": ["0", "10"], "top_p": ["0.9", "1"], "beam_width": ["2"],
    "tempo": ["100", "240"], "instrument": ["fiddle", "flute", "whistle"],
}
HOSTILE = [
    "", " ", "-1", "0", "1e309", "nan", "inf", "-inf", "1e-400", "0x10", "99999999999999999999999999",
    "9223372036854775808", "18446744073709551616", "3.5", "1,5", "true", "null", "[]", "{}",
    "<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "'; DROP TABLE tunes; --", "%", "%00",
    "\x00", "\x7f", "\u202e", "\ud7ff", "é" * 50, "𝄞" * 30, "a" * 5000, "../../etc/passwd", "..\\..\\boot.ini",
    "K:Cmaj\nX:2", "|:|:|:|:", "[[[[[[[[", "((((((((3", "{{{{", "z" * 300, "A" * 399, "A/0", "A0/0",
    "M:13/0", "L:1/0", "${jndi:ldap://x}", "{{7*7}}", "$(reboot)", "`id`", "\r\nX-Evil: 1",
]
PATHS = [
    "/", "/tunebook", "/api/options", "/api/health", "/api/prime", "/api/compose", "/api/tune.abc", "/api/tune.mid",
    "/api/tune.musicxml", "/api/tune.svg", "/api/tune.pdf", "/api/tune.", "/api/tunebook", "/api/tunebook.abc",
    "/api/tunebook/1", "/api/tunebook/0", "/api/tunebook/-1", "/api/tunebook/99999999999999999999",
    "/api/tunebook/abc", "/static/app.js", "/static/../pyproject.toml", "/static/%2e%2e/pyproject.toml",
    "/static//etc/passwd", "/api/", "/api/compose/extra", "/../../etc/passwd", "/api/tune.abc/..", "/%00",
    "/api/tunebook/1/../2", "/static/vendor/../../app.py",
]
ENDPOINTS = [
    ("GET", "/api/compose"), ("GET", "/api/compose"), ("GET", "/api/compose"), ("GET", "/api/prime"),
    ("GET", "/api/tune.abc"), ("GET", "/api/tune.mid"), ("GET", "/api/tune.musicxml"), ("GET", "/api/tune.svg"),
    ("POST", "/api/tunebook"), ("POST", "/api/tunebook"), ("GET", "/api/tunebook"), ("GET", "/api/tunebook/1"),
    ("DELETE", "/api/tunebook/2"), ("GET", "/api/tunebook.abc"), ("GET", "/api/options"),
]
METHODS = ["GET", "GET", "GET", "POST", "DELETE", "PUT", "PATCH", "OPTIONS", "HEAD"]


def _query(rng: random.Random) -> list[tuple[str, str]]:
    pairs = []
    for _ in range(rng.randint(0, 6)):
        roll = rng.random()
        name = rng.choice(FIELDS) if roll < 0.85 else rng.choice(["bogus", "__proto__", "seed[]", "a" * 300, ""])
        if rng.random() < 0.5:
            value = rng.choice(GOOD.get(name, ["1"]))
        else:
            value = rng.choice(HOSTILE)
        pairs.append((name, value))
    if rng.random() < 0.3:
        pairs.append(("seed", str(rng.randint(0, 10 ** 6))))
    return pairs


def _body(rng: random.Random) -> bytes:
    roll = rng.random()
    if roll < 0.3:
        query = "&".join(f"{name}={value}" for name, value in _query(rng))
        return json.dumps({"query": query}).encode()
    if roll < 0.5:
        return json.dumps({"query": rng.choice(HOSTILE)}).encode()
    if roll < 0.6:
        return b"{" * rng.randint(1, 5000)
    if roll < 0.7:
        return bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 300)))
    if roll < 0.8:
        return b'{"query": "' + b"a" * rng.choice([100, 17000, 70000]) + b'"}'
    if roll < 0.9:
        return json.dumps(rng.choice([[], {}, None, 3, "x", {"query": None}, {"query": ["seed=1"]}])).encode()
    return b""


def cases(count: int, seed: int = 0) -> list[tuple[str, str, list[tuple[str, str]], bytes | None, dict]]:
    """``count`` requests, the same for the same seed."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        if rng.random() < 0.75:  # an endpoint as it is meant to be called, with hostile values
            method, path = rng.choice(ENDPOINTS)
        else:
            method, path = rng.choice(METHODS), rng.choice(PATHS)
        if path.startswith("/api/tunebook") and rng.random() < 0.5 and method == "GET":
            query = [(rng.choice(["q", "rhythm", "mode", "offset", "limit", "sort"]), rng.choice(HOSTILE + ["5"]))]
        else:
            query = _query(rng)
        body = _body(rng) if method in ("POST", "PUT", "PATCH") else None
        headers = {}
        if body is not None:
            headers["content-type"] = rng.choice(["application/json", "text/plain",
                                                  "application/x-www-form-urlencoded"])
        out.append((method, path, query, body, headers))
    return out
