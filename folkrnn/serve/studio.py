"""The web composer's tunes: one model, one shared decoding loop, the same tunes as ``compose``.

A :class:`Studio` holds what every request of ``folkrnn serve`` shares: the loaded model, the
decoding loop their tunes are sampled in together (:class:`folkrnn.decode.shared.SharedLoop`), the
threads that finish tunes (parsing, checking, writing ABC: Python work that must not block the
event loop), and a small cache of finished tunes by their options (a download, a save or a reload
after composing costs nothing). Every tune is made by :func:`folkrnn.compose.compose` itself, so
the ABC is the bytes ``folkrnn compose`` writes for the same options, and every file is written by
:func:`folkrnn.compose.write_formats`, the CLI's own writer.
"""

from __future__ import annotations

import dataclasses
import tempfile
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from folkrnn.abc.grammar import SPACE, TokenClass, classify
from folkrnn.compose import Composed, ComposeOptions, compose, conditions_of, load_composer, random_seed, write_formats
from folkrnn.decode.shared import Request, SharedLoop
from folkrnn.errors import FolkError
from folkrnn.sample import Conditions, check_request
from folkrnn.serve.fields import FieldError, canonical_query, field_of, parse_query
from folkrnn.tables import FORMATS

__all__ = ["Studio", "Watch", "Draft", "DOWNLOADS"]

# the files a tune downloads as: suffix -> media type (folkrnn.tables.FORMATS)
DOWNLOADS = {name: fmt.media_type for name, fmt in FORMATS.items() if fmt.media_type}


class Watch:
    """What a caller sees of one tune being composed: the shared loop's request for its current
    seed (its row grows token by token), and a way to stop it."""

    def __init__(self) -> None:
        self.request: Request | None = None
        self.cancelled = False

    def submitted(self, request: Request) -> None:
        self.request = request
        if self.cancelled:
            request.cancel()

    def cancel(self) -> None:
        self.cancelled = True
        if self.request is not None:
            self.request.cancel()

    def row(self):
        """The row being written (its ``ids``, ``seed``), or None before the first."""
        request = self.request
        return None if request is None else request.rows.get(0)


class Draft:
    """The ABC of a tune being written, grown token by token (in C, as the model writes it): the
    title and header lines, then the body's tokens as they come, a bar line spaced out and a line
    break after every fourth bar. Each token is read once, so that many pages watching many tunes
    cost little."""

    def __init__(self) -> None:
        self.title: list[str] = []
        self.header: list[str] = []
        self.body: list[str] = []
        self.bars = 0
        self.tokens = 0

    def add(self, tokens: list[str]) -> None:
        for token in tokens:
            self.tokens += 1
            kind = classify(token)[0]  # the grammar's own classes: what a header, a bar line, an ending is
            if kind in (TokenClass.SPECIAL, TokenClass.EOS):
                continue
            if kind == TokenClass.HEAD and not self.body:
                self.header.append(token)
            elif not self.header and not self.body:  # the title, a character a token
                self.title.append(" " if token == SPACE else token)
            elif kind in (TokenClass.BAR, TokenClass.ENDING):
                self.bars += 1
                self.body.append(f" {token}" + ("\n" if self.bars % 4 == 0 else " "))
            else:
                self.body.append(token)

    def text(self) -> str:
        header = "".join(line + "\n" for line in self.header if not line.startswith("K:"))
        key = next((line for line in self.header if line.startswith("K:")), None)
        body = ("L:1/8\n" + key + "\n" + "".join(self.body)) if key else ""  # the model's unit: an eighth
        return "X:1\nT:" + "".join(self.title) + "\n" + header + body


class Studio:
    """The model and the machinery every request shares (see the module's docstring).

    ``capacity``: rows the shared batch steps together; ``composing``: tunes being made at once,
    at most (more are refused: the server answers 429); ``cache``: finished tunes kept.
    """

    def __init__(self, model: str | None = None, *, capacity: int = 256, composing: int = 128,
                 cache: int = 256) -> None:
        # one BLAS thread for the whole process: the batch's matrix products are small, and with the
        # threads that finish tunes busy, OpenBLAS's waiting threads made each step several times slower
        # (a batch of 50 requests: 13 -> 55 tunes/s measured)
        try:
            from threadpoolctl import threadpool_limits

            threadpool_limits(1)
        except ImportError:
            pass
        self.composer = load_composer(model)
        # the shared batch steps an engine of its own (the same weights, its own work arrays): the
        # composer is cached for the process, and another thread composing with it (compose() itself,
        # another Studio) must never step the batch's engine at the same time
        self._batched = dataclasses.replace(self.composer, engine=self.composer.engine.twin())
        self.loop = SharedLoop(self._batched.engine, capacity=capacity)
        # beam search runs outside the shared batch: on an engine of its own
        self._beam = dataclasses.replace(self.composer, engine=self.composer.engine.twin())
        self.limit = composing
        self.executor = ThreadPoolExecutor(max_workers=composing + 8, thread_name_prefix="folkrnn-tune")
        self._busy = 0
        self._busy_lock = threading.Lock()
        self._cache: OrderedDict[str, Composed] = OrderedDict()
        self._cache_size = cache
        self._cache_lock = threading.Lock()

    @property
    def model(self) -> str:
        return self.composer.identity

    @property
    def vocabulary_size(self) -> int:
        return len(self.composer.vocabulary)

    # -- requests

    def options(self, params, *, need_seed: bool = False) -> ComposeOptions:
        """A request's options, checked against the CLI's rules and this model (FieldError names
        the field); a missing seed is drawn."""
        return self.resolve(params, need_seed=need_seed)[0]

    def resolve(self, params, *, need_seed: bool = False) -> tuple[ComposeOptions, Conditions]:
        """:meth:`options`, and what the sampler is to force for them (the prime's tokens ...)."""
        options = parse_query(params, need_seed=need_seed, vocabulary_size=self.vocabulary_size)
        try:  # on a copy: compose resolves its own (a prime's key must not reach the N: line twice)
            conditions, _ = conditions_of(dataclasses.replace(options), self.composer)
            check_request(self.composer.vocabulary, conditions, options.sample_config(),
                          getattr(self.composer.engine, "features", 0))
        except FolkError as error:
            field = "prime" if options.prime and not str(error).startswith("--") else \
                field_of(str(error), {name: 1 for name in ("rhythm", "meter", "mode", "form")})
            raise FieldError(field, str(error).splitlines()[0]) from None
        if options.seed is None:
            options.seed = random_seed()
        return options, conditions

    def claim(self) -> bool:
        """Take one of the places for a tune being composed (False: all are taken)."""
        with self._busy_lock:
            if self._busy >= self.limit:
                return False
            self._busy += 1
            return True

    def release(self) -> None:
        with self._busy_lock:
            self._busy -= 1

    @property
    def busy(self) -> int:
        return self._busy

    # -- tunes

    def compose(self, options: ComposeOptions, watch: Watch | None = None) -> Composed:
        """The tune the options name (blocking: run it in :attr:`executor`), from the cache when it
        was made before."""
        query = canonical_query(options)
        with self._cache_lock:
            cached = self._cache.get(query)
            if cached is not None:
                self._cache.move_to_end(query)
                return cached
        options = dataclasses.replace(options, formats=["abc"])
        if options.strategy == "beam":
            with self.loop.exclusive():  # the grammars the batch uses are not for two threads at once
                composed = compose(options, composer=self._beam, write=False)
        else:
            def decoder(*args, **kwargs):
                return self.loop.decode(*args, on_submit=watch.submitted if watch else None, **kwargs)

            composed = compose(options, composer=self._batched, write=False, decoder=decoder)
        with self._cache_lock:
            self._cache[query] = composed
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return composed

    def render(self, composed: Composed, options: ComposeOptions, suffix: str) -> bytes:
        """One of the tune's files (:data:`DOWNLOADS`), written by compose's own writer."""
        if suffix == "abc":
            return composed.abc.encode("utf-8")
        with tempfile.TemporaryDirectory(prefix="folkrnn-serve-") as folder:
            path, = write_formats(composed, Path(folder), "tune", [suffix], options)
            return path.read_bytes()

    def close(self) -> None:
        self.loop.close()
        self.executor.shutdown(wait=False, cancel_futures=True)
