"""Shared test data and helpers: the Kesh jig (the tune several test files play, render and
transcribe); one tiny ABC model, trained once per test session for the sampling, composing and
evaluating tests; an engine of random logits, with an ABC vocabulary (``VOCABULARY``) and a
performer of MIDI events (``random_performer``) to run it; and abc2midi's verdict on a tunebook.

Test files import ``KESH`` where they need it at collection time (``parametrize``); a test that
only needs it at run time can take the ``kesh`` fixture.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from types import SimpleNamespace

import numpy as np
import pytest

from folkrnn.vocab import Vocabulary

KESH = """X:1
T:The Kesh
R:jig
M:6/8
L:1/8
K:G
|:GAG GAB|ABA ABd|edd gdd|edB dBA|GAG GAB|ABA ABd|edd gdB|1 AGF G3:|2 AGF G2||
"""

# An ABC vocabulary like the default corpus's (title characters, headers and the body tokens), for the
# sampling tests that run on random logits (RandomEngine); ABC_BODY[:31] are its notes.
ABC_BODY = ["C,", "D,", "E,", "F,", "G,", "A,", "B,", "C", "D", "E", "F", "G", "A", "B", "c", "d", "e",
            "f", "g", "a", "b", "c'", "d'", "e'", "^F", "^c", "_B", "=B", "^G", "_e", "=f",
            "2", "3", "4", "5", "6", "8", "12", "/2", "/4", "3/2", "3/4", "/8", "7/4",
            "|", "||", "|:", ":|", "[1", "[2", "[", "]", "{", "}", "-", ">", "<", ">>", "<<", "(3", "(2",
            "(4", "(5", "(6", "(9", "(3:2:3", "z", "x", "[K:Gmaj]", "[K:Cmin]"]
_ABC_HEADERS = ["R:reel", "R:jig", "R:hornpipe", "R:waltz", "R:song", "R:other", "M:2/4", "M:3/4",
                "M:4/4", "M:6/8", "M:9/8", "M:2/2", "M:3/2", "M:5/8", "M:12/8", "M:none",
                "K:Cmaj", "K:Cmin", "K:Cdor", "K:Cmix"]
_ABC_TITLE = list("TheKsJigRlofHumursBaycn ") + ["\u2581", "'", "%"]
VOCABULARY = Vocabulary.build([ABC_BODY + _ABC_HEADERS + _ABC_TITLE])

# O'Neill's jigs, reels, hornpipes and airs (music21's corpus): (file, how many of its tunes)
_TINY_SOURCES = (("0721-0730.abc", 10), ("1176-1275.abc", 40), ("1556-1624.abc", 20),
                 ("0550-0625.abc", 30), ("0900-0950.abc", 30))


@pytest.fixture
def kesh() -> str:
    """The Kesh, a two-part jig in G with first and second endings (one tune, X:1)."""
    return KESH


@pytest.fixture(scope="session")
def tiny_corpus() -> SimpleNamespace:
    """The tiny model's corpus: 130 tokenized O'Neill tunes, the last 8 split 4 + 4 for validation
    and test (tunes the tokenizer refuses are left out)."""
    from folkrnn.abc import read_text, split_tunebook, tokenize
    from folkrnn.corpus import music21_corpus_dir
    from folkrnn.errors import FolkError

    source = music21_corpus_dir() / "oneills1850"
    tunes = []
    for name, limit in _TINY_SOURCES:
        for text in split_tunebook(read_text(source / name))[:limit]:
            try:
                tunes.append(tokenize(text.text))
            except FolkError:
                continue
    return SimpleNamespace(train=tunes[:-8], valid=tunes[-8:-4], test=tunes[-4:], encoding="abc",
                           info={"content_hash": "tiny-oneills", "settings": {}})


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_corpus):
    """The folder of a tiny ABC model (2 x 64 LSTM, 6 epochs, about 20 s on one thread), trained
    once per test session."""
    import torch

    from folkrnn.train import TrainConfig, train

    folder = tmp_path_factory.mktemp("tiny-abc-model")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(tiny_corpus, TrainConfig(epochs=6, batch_size=16, bptt=64, out=str(folder), progress=False,
                                          lr=2e-2, force=True),
              {"embedding_size": 16, "hidden_size": 64, "layers": 2, "dropout": 0.0})
    finally:
        torch.set_num_threads(threads)
    return folder


@pytest.fixture(scope="session")
def tiny(tiny_model_dir):
    """The tiny model loaded for sampling: its NumPy engine, vocabulary and folder."""
    from folkrnn.checkpoint import load_model

    model = load_model(tiny_model_dir)
    return SimpleNamespace(engine=model.engine(), vocabulary=model.vocabulary, path=model.path)


class RandomEngine:
    """Logits drawn at random for every step: the harshest test of a constraint. Each row's
    logits depend on its own history only (a hash of it), so batching cannot change a tune."""

    def __init__(self, size: int, scale: float = 3.0, salt: int = 0) -> None:
        self.size, self.scale, self.salt = size, scale, salt

    def init_state(self, batch: int):
        return np.zeros((1, batch, 1), np.int64), np.zeros((1, batch, 1), np.int64)

    def step(self, ids, state):
        ids = np.atleast_1d(ids)
        history = np.array([hash((int(h), int(i), self.salt)) & 0xFFFFFFFF
                            for h, i in zip(state[0][0, :, 0], ids)], np.int64)
        logits = np.stack([np.random.default_rng(h).normal(0, self.scale, self.size) for h in history])
        return logits.astype(np.float32), (history.reshape(1, -1, 1), state[1])


def random_performer(scale: float = 3.0, salt: int = 0):
    """A performer of random logits every step (history-hashed, so batching changes nothing): the
    harshest test of the MIDI-event guards."""
    from pathlib import Path

    from folkrnn.events import EventConfig
    from folkrnn.perform import Performer

    config = EventConfig()
    vocabulary = Vocabulary.from_event_names(config.names())
    return Performer(path=Path("random"), label="random", engine=RandomEngine(len(vocabulary), scale, salt),
                     vocabulary=vocabulary, events=config)


def abc2midi_messages(texts: list[str], tmp_path) -> list[str]:
    """What abc2midi -c prints over a tunebook of ``texts``, a line each; skips the test where
    abc2midi is not installed."""
    if shutil.which("abc2midi") is None:
        pytest.skip("abc2midi is not installed")
    book = tmp_path / "book.abc"
    book.write_text("\n".join(texts))
    return subprocess.run(["abc2midi", str(book), "-c"], capture_output=True, text=True, timeout=60).stdout.splitlines()


def abc2midi_problems(texts: list[str], tmp_path) -> list[str]:
    """abc2midi -c's bar-length and repeat warnings over a tunebook (hornpipe meter notes aside)."""
    return [line for line in abc2midi_messages(texts, tmp_path)
            if ("Warning" in line or "Error" in line) and ("time units" in line or "repeat" in line.lower()
                                                           or "|:" in line or "ending" in line.lower())]


# --- tunebooks: a SQLite file, or a schema of a real PostgreSQL server ---------------------------

POSTGRES = os.environ.get("FOLKRNN_TEST_POSTGRES", "")
REQUIRE_POSTGRES = os.environ.get("CI_REQUIRE_POSTGRES") == "1"
TUNEBOOK_BACKENDS = ["sqlite", "postgresql"]


def postgres_or_skip() -> str:
    """The test server's URL; skips (or, under CI_REQUIRE_POSTGRES=1, fails) when there is none."""
    if not POSTGRES:
        message = ("FOLKRNN_TEST_POSTGRES is not set: no PostgreSQL server to test the tunebook against "
                   "(e.g. postgresql://folkrnn:folkrnn@127.0.0.1:5432/folkrnn_test)")
        if REQUIRE_POSTGRES:
            pytest.fail(f"CI_REQUIRE_POSTGRES=1 but {message}", pytrace=False)
        pytest.skip(message)
    return POSTGRES


@pytest.fixture(params=TUNEBOOK_BACKENDS)
def db_url(request, tmp_path):
    """The URL of a new, empty tunebook: a SQLite file, or a PostgreSQL schema of its own (dropped after)."""
    if request.param == "sqlite":
        yield str(tmp_path / "tunebook.sqlite")
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    base = make_url(postgres_or_skip()).set(drivername="postgresql+psycopg")
    schema = f"test_{uuid.uuid4().hex[:16]}"
    admin = create_engine(base)
    try:
        with admin.begin() as connection:
            connection.execute(text(f"CREATE SCHEMA {schema}"))  # a name made here, not input
    except Exception as error:
        admin.dispose()
        pytest.fail(f"the PostgreSQL server at FOLKRNN_TEST_POSTGRES cannot be used: {error}", pytrace=False)
    url = make_url(postgres_or_skip()).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()
