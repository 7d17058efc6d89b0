"""The web composer's HTTP side: pages, the JSON API, the compose stream, and what keeps it safe.

:func:`create_app` builds the Starlette application ``folkrnn serve`` runs on uvicorn. The API is
written up in ``docs/serve.md``. Tunes come from a :class:`folkrnn.serve.studio.Studio` (the model
and the decoding loop every request shares); saved tunes go to a
:class:`folkrnn.serve.tunebook.Tunebook`. Blocking work (composing, rendering, the database) runs in
threads, never in the event loop.

Safety, for a server any page on the network may talk to: every field is checked and every refusal
is a 4xx JSON body naming it (:class:`folkrnn.serve.fields.FieldError`); no request names a path;
a Content-Security-Policy lets the page load and call nothing but its own origin; each client has a
budget of requests (a token bucket: 429 beyond it), the tunes composed at once are bounded (429),
and request bodies are capped (413).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import threading
import time
from collections import OrderedDict
from pathlib import Path
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from folkrnn import __version__
from folkrnn.compose import ComposeOptions
from folkrnn.errors import FolkError
from folkrnn.serve.fields import FIELDS, LIMITS, FieldError, canonical_query, parse_query
from folkrnn.serve.studio import DOWNLOADS, Draft, Studio, Watch
from folkrnn.serve.tunebook import Tunebook, TunebookError
from folkrnn.tables import FORMS, INSTRUMENTS, MAX_SEED, MODES

__all__ = ["create_app", "STATIC", "SECURITY_HEADERS", "Settings"]

STATIC = Path(__file__).parent / "static"
MAX_BODY = 16 * 1024  # bytes a request body may have
PROGRESS_EVERY = 0.1  # seconds between progress events
POLL = 0.02  # seconds between looks at a row being written

SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
        "media-src 'self' blob: data:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'; form-action 'self'"),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
}


class Settings:
    """What ``folkrnn serve`` was started with (the environment passes it to --workers' processes)."""

    def __init__(self, model: str | None = None, db: str | None = None, *, rate: float = 20.0,
                 burst: int = 200, composing: int = 128, capacity: int = 256) -> None:
        self.model, self.db = model, db
        self.rate, self.burst = rate, burst  # requests per second per client, and the bucket's size
        self.composing, self.capacity = composing, capacity

    ENV = {"model": "FOLKRNN_SERVE_MODEL", "db": "FOLKRNN_SERVE_DB", "rate": "FOLKRNN_SERVE_RATE",
           "burst": "FOLKRNN_SERVE_BURST", "composing": "FOLKRNN_SERVE_COMPOSING",
           "capacity": "FOLKRNN_SERVE_CAPACITY"}

    def to_env(self) -> dict[str, str]:
        return {name: str(getattr(self, key)) for key, name in self.ENV.items() if getattr(self, key) is not None}

    @classmethod
    def from_env(cls) -> Settings:
        get = os.environ.get
        return cls(get(cls.ENV["model"]) or None, get(cls.ENV["db"]) or None,
                   rate=float(get(cls.ENV["rate"], 20.0)), burst=int(get(cls.ENV["burst"], 200)),
                   composing=int(get(cls.ENV["composing"], 128)), capacity=int(get(cls.ENV["capacity"], 256)))


class _Buckets:
    """A token bucket per client address: ``rate`` requests a second, ``burst`` at once. The
    clients remembered are bounded (the longest idle is forgotten first)."""

    def __init__(self, rate: float, burst: int, clients: int = 10_000) -> None:
        self.rate, self.burst, self.clients = rate, burst, clients
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, client: str) -> float:
        """0 when the request may go on, else the seconds to wait."""
        now = time.monotonic()
        with self._lock:
            bucket = self._buckets.pop(client, None) or [float(self.burst), now]
            bucket[0] = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
            bucket[1] = now
            self._buckets[client] = bucket
            while len(self._buckets) > self.clients:
                self._buckets.popitem(last=False)
            if bucket[0] >= 1:
                bucket[0] -= 1
                return 0.0
            return (1 - bucket[0]) / self.rate


class _Guard:
    """Every response gets the security headers; an API request over its client's budget gets 429."""

    def __init__(self, app, buckets: _Buckets) -> None:
        self.app, self.buckets = app, buckets
        self.headers = [(name.encode(), value.encode()) for name, value in SECURITY_HEADERS.items()]

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = (scope.get("client") or ("-", 0))[0]
        wait = self.buckets.take(client) if scope["path"].startswith("/api/") else 0.0

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                names = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (name, value) for name, value in self.headers if name not in names]
            await send(message)

        if wait:
            response = _error(429, None, "too many requests; slow down", {"retry-after": str(max(1, round(wait)))})
            await response(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)


def _seed_as_text(tune: dict) -> dict:
    """A saved tune for JSON: its seed as text (JavaScript's numbers hold 53 bits, seeds 63)."""
    return {**tune, "seed": str(tune["seed"])} if "seed" in tune else tune


def _error(status: int, field: str | None, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": {"field": field, "message": message}}, status_code=status, headers=headers)


def _event(name: str, data: dict) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


def create_app(settings: Settings | None = None, *, studio: Studio | None = None, tunebook=None) -> Starlette:
    """The application: a studio and a tunebook made from ``settings`` unless given."""
    settings = settings or Settings()
    if studio is None:
        studio = Studio(settings.model, capacity=settings.capacity, composing=settings.composing)
    if tunebook is None:
        tunebook = Tunebook(settings.db)
    buckets = _Buckets(settings.rate, settings.burst)

    async def run(function, *args):
        return await asyncio.get_running_loop().run_in_executor(studio.executor, function, *args)

    # -- pages

    async def page(request: Request) -> Response:
        name = "tunebook.html" if request.url.path.rstrip("/") == "/tunebook" else "index.html"
        return FileResponse(STATIC / name, headers={"cache-control": "no-cache"})

    # -- the API

    async def options(request: Request) -> Response:
        vocabulary = studio.composer.vocabulary
        known = set(vocabulary)
        defaults = ComposeOptions()
        return JSONResponse({
            "model": studio.model, "version": __version__,
            "rhythms": sorted(token[2:] for token in known if token.startswith("R:") and len(token) > 2),
            "meters": sorted((token[2:] for token in known if token.startswith("M:") and len(token) > 2),
                             key=lambda m: (m != "none", m)),
            "modes": [{"code": mode.code, "name": mode.name} for mode in MODES.values()
                      if f"K:C{mode.code}" in known],
            "forms": list(FORMS), "strategies": ["sample", "greedy", "beam"],
            "instruments": [{"name": name, "program": instrument.program}
                            for name, instrument in INSTRUMENTS.items()],
            "formats": list(DOWNLOADS),
            "fields": list(FIELDS),
            "limits": {**LIMITS, "top_k": studio.vocabulary_size, "tempo": [20, 400], "part_bars": [1, 64],
                       "seed": ["0", str(MAX_SEED)]},  # text: JavaScript's numbers hold 53 bits
            "defaults": {"temperature": defaults.temperature, "top_k": defaults.top_k, "top_p": defaults.top_p,
                         "strategy": defaults.strategy, "beam_width": defaults.beam_width,
                         "instrument": defaults.instrument},
        })

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True, "model": studio.model, "composing": studio.busy})

    async def prime(request: Request) -> Response:
        params = request.query_params
        unknown = [name for name in params if name not in ("prime", "key", "mode", "rhythm", "meter")]
        if unknown:
            return _error(400, unknown[0][:40], f"unknown field {unknown[0][:40]!r}")
        if not params.get("prime", "").strip():
            return JSONResponse({"ok": True, "tokens": 0})
        _, conditions = await run(studio.resolve, params)
        return JSONResponse({"ok": True, "tokens": len(conditions.prime)})

    async def compose_stream(request: Request) -> Response:
        options = await run(studio.options, request.query_params)
        if not studio.claim():
            return _error(429, None, "too many tunes are being composed; try again in a moment",
                          {"retry-after": "2"})
        query = canonical_query(options)
        watch = Watch()

        async def events():
            future = asyncio.get_running_loop().run_in_executor(studio.executor, studio.compose, options, watch)
            try:
                yield _event("start", {"seed": str(options.seed), "query": query})
                draft, last, seed = Draft(), 0.0, None
                decode = studio.composer.vocabulary.decode
                while True:
                    done = future.done()
                    row = watch.row()
                    if row is None:
                        if done:
                            break
                        await asyncio.wait({future}, timeout=POLL)
                        continue
                    if seed is not None and row.seed != seed:
                        yield _event("retry", {"seed": str(row.seed), "reason": "no whole tune from seed "
                                               f"{seed}; trying {row.seed}"})
                        draft = Draft()
                    seed = row.seed
                    count = len(row.ids)  # a row made again exactly writes the same tokens from the start
                    now = time.monotonic()
                    # the first tokens at once, then every PROGRESS_EVERY, and the whole of them when done
                    if count > draft.tokens and (draft.tokens == 0 or done or now - last >= PROGRESS_EVERY):
                        draft.add(decode(row.ids[draft.tokens:count]))
                        yield _event("progress", {"abc": draft.text(), "tokens": count})
                        last = now
                    if done:
                        break
                    await asyncio.wait({future}, timeout=POLL)  # at once when the tune is done
                try:
                    composed = future.result()
                except FolkError as error:
                    yield _event("error", {"message": str(error).splitlines()[0]})
                    return
                except Exception:  # a bug: the page hears of it, the log gets the traceback
                    logging.getLogger("folkrnn.serve").exception("composing %s failed", query)
                    yield _event("error", {"message": "the server failed on this tune; it has been logged"})
                    return
                summary = composed.summary()  # its seeds as text, as everywhere in the API (53-bit numbers)
                summary["seed"] = str(summary["seed"])
                summary["retried"] = [{**retry, "seed": str(retry["seed"])} for retry in summary["retried"]]
                yield _event("tune", {"abc": composed.abc, "title": composed.title, "seed": str(composed.seed),
                                      "query": query, "summary": summary, "warnings": composed.warnings})
            finally:
                watch.cancel()
                if not future.done():  # the page went away: the place is free when the tune stops
                    future.add_done_callback(lambda _: studio.release())
                else:
                    studio.release()

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"cache-control": "no-cache", "x-accel-buffering": "no"})

    async def _tune_for(params, need_seed=True):
        options = await run(functools.partial(studio.options, params, need_seed=need_seed))
        if not studio.claim():
            raise HTTPException(429, "too many tunes are being composed; try again in a moment")
        try:
            composed = await run(studio.compose, options)
        finally:
            studio.release()
        return options, composed

    async def download(request: Request) -> Response:
        suffix = request.path_params["suffix"]
        if suffix not in DOWNLOADS:
            return _error(404, "format", f"no download .{suffix[:20]}; there are {', '.join(DOWNLOADS)}")
        options, composed = await _tune_for(request.query_params)
        data = await run(studio.render, composed, options, suffix)
        return Response(data, media_type=DOWNLOADS[suffix], headers={
            "content-disposition": f'attachment; filename="{composed.slug}.{suffix}"'})

    async def save(request: Request) -> Response:
        body = await _body(request)
        try:
            data = json.loads(body or b"null")
        except (ValueError, UnicodeDecodeError):
            return _error(400, None, "the body must be JSON: {\"query\": \"...\"}")
        if not isinstance(data, dict) or set(data) != {"query"} or not isinstance(data["query"], str):
            return _error(400, "query", "the body must be {\"query\": \"<a tune's options, seed included>\"}")
        text = data["query"].lstrip("?")
        if len(text) > LIMITS["query"]:
            return _error(413, "query", f"the query is over {LIMITS['query']} characters")
        try:
            pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text), max_num_fields=len(FIELDS))
        except ValueError as error:
            return _error(400, "query", f"the query cannot be read: {error}")
        _, composed = await _tune_for(pairs)
        tune = composed.tune
        record = {"title": composed.title, "rhythm": tune.rhythm or "", "meter": str(tune.meter),
                  "mode": tune.key.mode, "key": f"{tune.key.tonic}{tune.key.mode}", "seed": str(composed.seed),
                  "query": canonical_query(parse_query(pairs)), "model": studio.model, "abc": composed.abc}
        tune_id, created = await run_in_threadpool(tunebook.save, record)
        return JSONResponse({"id": tune_id, "title": composed.title, "created": created},
                            status_code=201 if created else 200)

    async def book(request: Request) -> Response:
        params = request.query_params
        unknown = [name for name in params if name not in ("q", "rhythm", "mode", "offset", "limit")]
        if unknown:
            return _error(400, unknown[0][:40], f"unknown field {unknown[0][:40]!r}")
        numbers = {}
        for name, default in (("offset", 0), ("limit", 50)):
            text = params.get(name, "") or str(default)
            if not text.isdigit() or len(text) > 9:
                return _error(400, name, f"{name} must be a whole number, not {text[:20]!r}")
            numbers[name] = int(text)
        if numbers["limit"] > 200:
            return _error(422, "limit", "limit must be at most 200")
        text = params.get("q") or None
        if text is not None and len(text) > LIMITS["title"]:
            return _error(422, "q", f"q is over {LIMITS['title']} characters")
        tunes, total = await run_in_threadpool(tunebook.search, text, params.get("rhythm") or None,
                                               params.get("mode") or None, numbers["offset"], numbers["limit"])
        return JSONResponse({"total": total, "tunes": [_seed_as_text(tune) for tune in tunes]})

    def _id(request: Request) -> int:
        text = request.path_params["id"]
        if not text.isdigit() or len(text) > 18:
            raise FieldError("id", f"no tune {text[:20]!r}", 404)
        return int(text)

    async def book_tune(request: Request) -> Response:
        tune_id = _id(request)
        if request.method == "DELETE":
            if not await run_in_threadpool(tunebook.delete, tune_id):
                return _error(404, "id", f"no tune {tune_id} in the tunebook")
            return Response(status_code=204)
        tune = await run_in_threadpool(tunebook.get, tune_id)
        if tune is None:
            return _error(404, "id", f"no tune {tune_id} in the tunebook")
        return JSONResponse(_seed_as_text(tune))

    async def book_abc(request: Request) -> Response:
        def chunks():
            for text in tunebook.export_abc():
                yield text.encode("utf-8")

        return StreamingResponse(iterate_in_threadpool(chunks()), media_type="text/vnd.abc; charset=utf-8",
                                 headers={"content-disposition": 'attachment; filename="tunebook.abc"'})

    async def _body(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
            raise HTTPException(413, f"the body is over {MAX_BODY} bytes")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                raise HTTPException(413, f"the body is over {MAX_BODY} bytes")
        return body

    # -- errors: JSON, never a traceback

    async def field_error(request: Request, error: FieldError) -> Response:
        return JSONResponse(error.to_json(), status_code=error.status)

    async def folk_error(request: Request, error: FolkError) -> Response:
        return _error(422, None, str(error).splitlines()[0])

    async def database_error(request: Request, error: TunebookError) -> Response:
        return _error(503, None, str(error).splitlines()[0], {"retry-after": "5"})

    async def http_error(request: Request, error: HTTPException) -> Response:
        headers = dict(error.headers or {})
        if error.status_code == 429:
            headers.setdefault("retry-after", "2")
        return _error(error.status_code, None, str(error.detail), headers)

    async def crash(request: Request, error: Exception) -> Response:
        return _error(500, None, "the server failed on this request; it has been logged")

    routes = [
        Route("/", page), Route("/tunebook", page),
        Route("/api/options", options), Route("/api/health", health), Route("/api/prime", prime),
        Route("/api/compose", compose_stream),
        Route("/api/tune.{suffix}", download),
        Route("/api/tunebook", book, methods=["GET"]), Route("/api/tunebook", save, methods=["POST"]),
        Route("/api/tunebook.abc", book_abc),
        Route("/api/tunebook/{id}", book_tune, methods=["GET", "DELETE"]),
        Mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={
        FieldError: field_error, TunebookError: database_error, FolkError: folk_error, HTTPException: http_error,
        Exception: crash},
        middleware=[Middleware(_Guard, buckets=buckets)])
    app.state.studio, app.state.tunebook, app.state.settings = studio, tunebook, settings
    return app


def app_from_env() -> Starlette:
    """The application of one ``folkrnn serve --workers N`` process (its settings from the
    environment the parent set)."""
    return create_app(Settings.from_env())
