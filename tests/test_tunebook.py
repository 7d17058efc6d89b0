"""The tunebook (folkrnn.serve.tunebook) on SQLite and on a real PostgreSQL server: saving, finding,
removing and exporting tunes; hostile text kept verbatim and never run as SQL; nothing lost when a
process is killed right after a save or when several save at once; and one FolkError line for every
database that cannot be opened.

Every behaviour test runs on both databases. PostgreSQL's come from ``FOLKRNN_TEST_POSTGRES`` (a
URL such as ``postgresql://folkrnn:folkrnn@127.0.0.1:5432/folkrnn_test``; each test gets a schema
of its own, dropped after it); without it they are skipped, unless ``CI_REQUIRE_POSTGRES=1``, where
they fail, so CI cannot skip them unseen.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path

import pytest

from conftest import postgres_or_skip
from folkrnn.errors import FolkError, OptionError
from folkrnn.serve import tunebook as tunebook_module
from folkrnn.serve.tunebook import MAX_LIMIT, MAX_SEED, Tunebook, TunebookError

ROOT = Path(__file__).resolve().parents[1]

HOSTILE = [
    "'; DROP TABLE tunes; --",
    "Robert'); DROP TABLE tunes;--",
    '"double" and \'single\' quotes',
    "<script>alert('x')</script>",
    "100% _under_ \\back\\slash /slash/ [brackets]",
    "line\nbreak\ttab\r\nreturn",
    "🎻 Ríl Mhór – Ōkami ‮ reversed",
    " leading and trailing spaces ",
]


def tune(n: int | str, **fields) -> dict:
    """A tune to save, its query (so its identity) made from ``n``."""
    values = {"title": f"Tune {n}", "rhythm": "reel", "meter": "4/4", "mode": "maj", "key": "D",
              "seed": 1000 + (n if isinstance(n, int) else 0), "query": f"rhythm=reel&seed={n}", "model": "abc-test",
              "abc": f"X:1\nT:Tune {n}\nR:reel\nM:4/4\nL:1/8\nK:D\n|:DEF GAB|c2 d2:|\n"}
    values.update(fields)
    return values


# --- the databases -----------------------------------------------------------------------------


@pytest.fixture
def book(db_url):
    """A new, empty tunebook on each database."""
    opened = Tunebook(db_url)
    yield opened
    opened.close()


def run_saver(url: str, prefix: str, count: int, shared: int = 0, wait: bool = False) -> subprocess.Popen:
    """A process that opens the tunebook at ``url``, prints ``ready`` and waits for a line on its standard
    input (so that several start saving together), then saves ``count`` tunes named ``prefix-i`` (and, for
    the first ``shared``, the tune ``shared-i`` too), printing ``name id`` after each save returns, then
    ``done``, then, with ``wait``, waits to be killed."""
    script = (
        "import sys\n"
        "from folkrnn.serve.tunebook import Tunebook\n"
        "url, prefix, count, shared, wait = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), "
        "sys.argv[5] == '1'\n"
        "book = Tunebook(url)\n"
        "print('ready', flush=True)\n"
        "sys.stdin.readline()\n"
        "for i in range(count):\n"
        "    for name in [f'{prefix}-{i}'] + ([f'shared-{i}'] if i < shared else []):\n"
        "        tune_id, _ = book.save({'title': name, 'rhythm': 'jig', 'mode': 'dor', 'seed': i, "
        "'query': 'seed=' + name, 'model': 'abc-test', 'abc': 'X:1\\nT:' + name + '\\nK:Ador\\nABc|\\n'})\n"
        "        print(name, tune_id, flush=True)\n"
        "print('done', flush=True)\n"
        "if wait:\n"
        "    sys.stdin.read()\n"
    )
    return subprocess.Popen([sys.executable, "-c", script, url, prefix, str(count), str(shared), "1" if wait else "0"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)


def start(*processes: subprocess.Popen) -> None:
    """Wait until every saver has opened the tunebook, then let them all save at once."""
    for process in processes:
        assert process.stdout.readline() == "ready\n", process.stderr.read() if process.poll() is not None else ""
    for process in processes:
        process.stdin.write("go\n")
        process.stdin.flush()


# --- saving and reading ------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2**31, 2**53 + 1, MAX_SEED])
def test_save_get_round_trip(book, seed):
    saved = tune(1, seed=seed, title="The Kesh", key="Gmaj", mode="maj", rhythm="jig", meter="6/8")
    before = datetime.now(timezone.utc).replace(microsecond=0)
    tune_id, created = book.save(saved)
    assert created and isinstance(tune_id, int) and tune_id >= 1
    got = book.get(tune_id)
    assert got is not None
    assert set(got) == {"id", "created", "title", "rhythm", "meter", "mode", "key", "seed", "query", "model", "abc"}
    assert {name: got[name] for name in saved} == saved
    assert type(got["seed"]) is int and got["seed"] == seed
    assert got["id"] == tune_id
    when = datetime.fromisoformat(got["created"])
    assert when.utcoffset().total_seconds() == 0 and before <= when <= datetime.now(timezone.utc)
    assert book.count() == 1


def test_optional_fields_may_be_missing(book):
    tune_id, _ = book.save({"query": "seed=3", "model": "m", "abc": "X:1\nK:C\nC|\n", "seed": 3})
    got = book.get(tune_id)
    assert got["title"] == "" and got["rhythm"] is None and got["mode"] is None and got["key"] is None


def test_saving_again_keeps_one(book):
    first = book.save(tune(1))
    assert first[1] is True
    # the same model and query: the tune already there, whatever else differs
    assert book.save(tune(1, title="Another Title", abc="X:1\nK:C\nC|\n")) == (first[0], False)
    assert book.get(first[0])["title"] == "Tune 1"
    # another model, or another query: another tune
    other_model, created = book.save(tune(1, model="abc-other"))
    assert created and other_model != first[0]
    assert book.save(tune(2))[1] is True
    assert book.count() == 3


def test_long_query_and_title(book):
    """A query longer than a PostgreSQL B-tree entry may be (2.7 kB) still saves and stays unique."""
    long_query = "prime=" + "%F0%9F%8E%BB" * 600 + "&seed=1"
    tune_id, created = book.save(tune(1, query=long_query, title="é" * 300))
    assert created and book.save(tune(1, query=long_query)) == (tune_id, False)
    assert book.get(tune_id)["query"] == long_query


@pytest.mark.parametrize("bad, field", [
    ({"query": ""}, "query"), ({"query": None}, "query"), ({"model": ""}, "model"), ({"abc": None}, "abc"),
    ({"seed": -1}, "seed"), ({"seed": MAX_SEED + 1}, "seed"), ({"seed": None}, "seed"), ({"seed": True}, "seed"),
    ({"seed": 1.5}, "seed"), ({"title": 7}, "title"), ({"rhythm": ["reel"]}, "rhythm"),
    ({"title": "nul\0inside"}, "title"), ({"abc": "X:1\0"}, "abc"), ({"query": "lone \ud800 surrogate"}, "query"),
])
def test_save_refuses_bad_values(book, bad, field):
    with pytest.raises(OptionError) as caught:
        book.save(tune(1, **bad))
    assert field in str(caught.value) and "\n" not in str(caught.value)
    assert book.count() == 0


def test_save_refuses_what_is_not_a_tune(book):
    with pytest.raises(OptionError, match="dict"):
        book.save(["not", "a", "tune"])


def test_seed_as_decimal_text(book):
    """A seed as a query string gives it (JavaScript keeps 2^63 - 1 as text) is read as the number."""
    tune_id, _ = book.save(tune(1, seed=str(MAX_SEED)))
    assert book.get(tune_id)["seed"] == MAX_SEED


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_text_is_kept_verbatim(book, text):
    tune_id, _ = book.save(tune(1, title=text, rhythm=text, meter=text, mode=text, key=text, query=text,
                                model=text, abc=text))
    got = book.get(tune_id)
    assert all(got[name] == text for name in ("title", "rhythm", "meter", "mode", "key", "query", "model", "abc"))
    assert book.save(tune(2))[1] is True  # the table is still there
    rows, total = book.search(text=text, rhythm=text, mode=text)
    assert total == 1 and rows[0]["title"] == text
    assert book.search(text=text)[1] == 1
    assert book.count() == 2


def test_get_and_delete_missing_ids(book):
    assert book.get(1) is None
    for missing in (0, -1, 12345, 2**31, 2**70):
        assert book.get(missing) is None
        assert book.delete(missing) is False
    for bad in ("1", 1.0, None, True):
        with pytest.raises(OptionError, match="id"):
            book.get(bad)


def test_delete(book):
    ids = [book.save(tune(n))[0] for n in range(3)]
    assert book.delete(ids[2]) is True
    assert book.get(ids[2]) is None and book.delete(ids[2]) is False
    assert book.count() == 2
    # an id is never given again: an old link to a removed tune never shows another
    new_id, created = book.save(tune(2))
    assert created and new_id > ids[2]


def test_reopened_tunebook_keeps_its_tunes(db_url):
    with Tunebook(db_url) as first:
        tune_id, _ = first.save(tune(1))
    with Tunebook(db_url) as second, Tunebook(db_url) as third:
        assert second.get(tune_id)["title"] == "Tune 1"
        assert third.save(tune(1)) == (tune_id, False)


# --- searching ---------------------------------------------------------------------------------


def titles(found: tuple[list[dict], int]) -> list[str]:
    return [row["title"] for row in found[0]]


def test_search_title_any_case_substring(book):
    for n, title in enumerate(["The Kesh Jig", "KESH", "Morrison's", "Éamonn an Chnoic", "Die Straße", "ΣΟΦΙΑ"]):
        book.save(tune(n, title=title))
    assert titles(book.search("kesh")) == ["KESH", "The Kesh Jig"]
    assert titles(book.search("esh j")) == ["The Kesh Jig"]
    assert titles(book.search("'s")) == ["Morrison's"]
    assert titles(book.search("éamonn")) == titles(book.search("ÉAMONN")) == ["Éamonn an Chnoic"]
    assert titles(book.search("STRASSE")) == ["Die Straße"]
    assert titles(book.search("σοφια")) == ["ΣΟΦΙΑ"]
    assert book.search("nothing like it") == ([], 0)
    assert book.search("")[1] == book.search(None)[1] == 6


def test_search_escapes_like_wildcards(book):
    for n, title in enumerate(["100% Reel", "1000 Reel", "a_b", "axb", "back\\slash", "backXslash", "slash/ed",
                               "[ab]", "a"]):
        book.save(tune(n, title=title))
    assert titles(book.search("100%")) == ["100% Reel"]
    assert titles(book.search("%")) == ["100% Reel"]
    assert titles(book.search("a_b")) == ["a_b"]
    assert titles(book.search("_")) == ["a_b"]
    assert titles(book.search("\\")) == ["back\\slash"]
    assert titles(book.search("/")) == ["slash/ed"]
    assert titles(book.search("[ab]")) == ["[ab]"]
    assert titles(book.search("'")) == []


def test_search_rhythm_and_mode_exactly(book):
    book.save(tune(1, rhythm="reel", mode="maj", title="A"))
    book.save(tune(2, rhythm="jig", mode="dor", title="B"))
    book.save(tune(3, rhythm="slipjig", mode="dor", title="C"))
    book.save(tune(4, rhythm="jig", mode="maj", title="D"))
    assert titles(book.search(rhythm="jig")) == ["D", "B"]
    assert titles(book.search(mode="dor")) == ["C", "B"]
    assert titles(book.search(rhythm="jig", mode="dor")) == ["B"]
    assert titles(book.search(text="b", rhythm="jig", mode="dor")) == ["B"]
    assert titles(book.search(text="c", rhythm="jig")) == []
    assert book.search(rhythm="Jig") == ([], 0)  # exactly: not any case, not a substring
    assert book.search(rhythm="ji") == ([], 0)
    assert book.search(rhythm="", mode="")[1] == 4


def test_search_pages_newest_first(book):
    ids = [book.save(tune(n))[0] for n in range(7)]
    newest_first = ids[::-1]
    rows, total = book.search(limit=3)
    assert total == 7 and [row["id"] for row in rows] == newest_first[:3]
    assert [row["id"] for row in book.search(offset=3, limit=3)[0]] == newest_first[3:6]
    assert [row["id"] for row in book.search(offset=6, limit=3)[0]] == newest_first[6:]
    assert book.search(offset=10) == ([], 7)
    assert [row["id"] for row in book.search(offset="2", limit="2")[0]] == newest_first[2:4]  # as a query gives them
    assert all("abc" not in row for row in rows)
    assert set(rows[0]) == {"id", "created", "title", "rhythm", "meter", "mode", "key", "seed", "query", "model"}
    assert len(book.search(limit=MAX_LIMIT)[0]) == 7


@pytest.mark.parametrize("arguments, field", [
    ({"offset": -1}, "offset"), ({"offset": "x"}, "offset"), ({"offset": 2**40}, "offset"),
    ({"offset": None}, "offset"), ({"offset": True}, "offset"), ({"limit": 0}, "limit"),
    ({"limit": MAX_LIMIT + 1}, "limit"), ({"limit": "ten"}, "limit"), ({"limit": 1.5}, "limit"),
    ({"text": 5}, "text"), ({"text": "a\0b"}, "text"), ({"rhythm": ["reel"]}, "rhythm"), ({"mode": "\udc80"}, "mode"),
])
def test_search_refuses_bad_values(book, arguments, field):
    with pytest.raises(OptionError) as caught:
        book.search(**arguments)
    assert str(caught.value).startswith(field) and "\n" not in str(caught.value)


# --- exporting ---------------------------------------------------------------------------------


def test_export_numbers_the_tunes_in_order(book):
    assert "".join(book.export_abc()) == ""
    book.save(tune(1, abc="X:7\nT:First\nK:D\nDEF|\n"))
    second, _ = book.save(tune(2, abc="X:3\nT:Removed\nK:D\nDEF|\n"))
    book.save(tune(3, abc="T:No X line\nK:G\nGAB|"))
    book.save(tune(4, abc="X:99\r\nT:Windows\r\n\r\nK:A\r\nABc|\r\n\r\n"))
    book.delete(second)
    text = "".join(book.export_abc())
    assert text == ("X:1\nT:First\nK:D\nDEF|\n\n"
                    "X:2\nT:No X line\nK:G\nGAB|\n\n"
                    "X:3\nT:Windows\nK:A\nABc|\n")
    assert book.get(1)["abc"] == "X:7\nT:First\nK:D\nDEF|\n"  # stored as it was


def test_export_streams(book, monkeypatch):
    """The tunes come a batch at a time, and no batch is read before it is needed: a tune saved while
    the export runs comes at its end."""
    monkeypatch.setattr(tunebook_module, "_EXPORT_BATCH", 2)
    for n in range(5):
        book.save(tune(n))
    chunks = book.export_abc()
    assert next(chunks).startswith("X:1\nT:Tune 0\n")
    book.save(tune(5))
    rest = list(chunks)
    assert len(rest) == 5
    assert rest[-1].startswith("\nX:6\nT:Tune 5\n")
    tunes_out = "".join(book.export_abc()).split("\n\n")
    assert [part.splitlines()[0] for part in tunes_out] == [f"X:{n}" for n in range(1, 7)]


# --- several users at once, and killed processes -----------------------------------------------


def test_kill_9_right_after_saves_loses_nothing(db_url):
    """A process killed (SIGKILL) in the middle of saving: every tune whose save had returned is there."""
    Tunebook(db_url).close()  # the table made first, so the process starts saving at once
    process = run_saver(db_url, "killed", 2000)
    printed = {}
    try:
        start(process)
        for line in process.stdout:
            name, tune_id = line.split()
            printed[name] = int(tune_id)
            if len(printed) == 25:
                break
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    assert len(printed) == 25, process.stderr.read()
    assert process.returncode == -signal.SIGKILL
    with Tunebook(db_url) as book:
        for name, tune_id in printed.items():
            got = book.get(tune_id)
            assert got is not None and got["title"] == name and got["abc"] == f"X:1\nT:{name}\nK:Ador\nABc|\n"
        assert book.count() >= 25
        assert book.search(rhythm="jig", mode="dor")[1] == book.count()
    if not db_url.startswith("postgresql"):
        with sqlite3.connect(db_url) as connection:
            assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_kill_9_while_waiting_after_saves(db_url):
    process = run_saver(db_url, "waiting", 20, wait=True)
    try:
        start(process)
        lines = [process.stdout.readline().split() for _ in range(21)]
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    assert lines[-1] == ["done"], process.stderr.read()
    with Tunebook(db_url) as book:
        assert book.count() == 20
        for name, tune_id in lines[:-1]:
            assert book.get(int(tune_id))["title"] == name


def test_two_processes_save_at_once(db_url):
    """Two processes open a new tunebook (both making its table) and save 50 tunes each, 10 of them the
    same tunes: nothing fails, nothing is lost, and the shared tunes are kept once, with one id."""
    processes = [run_saver(db_url, prefix, 50, shared=10) for prefix in ("one", "two")]
    start(*processes)
    outputs = []
    for process in processes:
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0 and err == "", err
        outputs.append(dict(line.split() for line in out.splitlines() if line != "done"))
    assert all(len(output) == 60 for output in outputs)
    for i in range(10):
        assert outputs[0][f"shared-{i}"] == outputs[1][f"shared-{i}"]
    with Tunebook(db_url) as book:
        assert book.count() == 110
        for output in outputs:
            for name, tune_id in output.items():
                assert book.get(int(tune_id))["title"] == name


def test_processes_open_a_new_tunebook_at_once(db_url):
    """``folkrnn serve --workers N`` starts N processes that open a new tunebook together, each making its
    table if missing: whoever loses the race finds the table made, and none fails."""
    script = ("import sys\nfrom folkrnn.serve.tunebook import Tunebook\nprint('ready', flush=True)\n"
              "sys.stdin.readline()\nTunebook(sys.argv[1]).close()\n")
    processes = [subprocess.Popen([sys.executable, "-c", script, db_url], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
                 for _ in range(4)]
    start(*processes)
    for process in processes:
        _, err = process.communicate(timeout=60)
        assert process.returncode == 0 and err == "", err
    with Tunebook(db_url) as book:
        assert book.save(tune(1))[1] and book.count() == 1


def test_threads_share_one_tunebook(book):
    """The server's worker threads share one Tunebook: saves of different and of the same tunes at once."""
    errors: list[BaseException] = []
    ids: dict[int, list[int]] = {}

    def work(worker: int) -> None:
        try:
            for n in range(15):
                book.save(tune(f"{worker}-{n}"))
                ids.setdefault(n, []).append(book.save(tune(f"same-{n}"))[0])
                book.search(text="tune", limit=5)
        except BaseException as error:  # noqa: B036 - reported by the test below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert book.count() == 4 * 15 + 15
    assert all(len(set(same)) == 1 for same in ids.values())


# --- SQLite's settings -------------------------------------------------------------------------


def test_sqlite_settings(tmp_path):
    """WAL, an fsync per commit, and a wait for other processes' locks, on every connection."""
    book = Tunebook(tmp_path / "book.sqlite")
    try:
        with book._engine.connect() as connection:
            raw = connection.connection.driver_connection
            assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert raw.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
            assert raw.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000
    finally:
        book.close()


def test_paths_and_sqlite_urls(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with Tunebook() as book:
        book.save(tune(1))
    assert (tmp_path / "tunebook.sqlite").is_file()
    with Tunebook(Path("tunebook.sqlite")) as book:
        assert book.count() == 1
    with Tunebook(f"sqlite:///{tmp_path / 'tunebook.sqlite'}") as book:
        assert book.count() == 1
    with Tunebook("sqlite:///other.sqlite") as book:
        assert book.count() == 0
    assert (tmp_path / "other.sqlite").is_file()


# --- databases that cannot be opened -----------------------------------------------------------


def _not_sqlite(folder: Path) -> str:
    (folder / "notes.txt").write_text("these are not the tunes you are looking for\n" * 50)
    return str(folder / "notes.txt")


def _foreign_table(folder: Path) -> str:
    path = folder / "foreign.sqlite"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE tunes (id INTEGER PRIMARY KEY, name TEXT)")
    return str(path)


@pytest.mark.parametrize("make, expected", [
    (lambda folder: str(folder), "folder"),
    (lambda folder: str(folder / "missing" / "book.sqlite"), "does not exist"),
    (lambda folder: "", "empty"),
    (_not_sqlite, "not a database"),
    (_foreign_table, "not a folkrnn tunebook"),
    (lambda folder: f"sqlite:///{folder}", "folder"),
    (lambda folder: "mysql://tunes:s3cret-pw@dbhost/tunes", "unknown kind of database"),
    (lambda folder: "ftp://example.org/tunes", "unknown kind of database"),
    (lambda folder: "postgresql+psycopg2://tunes:s3cret-pw@dbhost/tunes", "psycopg2"),
    (lambda folder: "postgresql://tunes:s3cret-pw@127.0.0.1:1/tunes", "127.0.0.1"),
    (lambda folder: "postgresql://tunes:s3cret-pw@127.0.0.1:notaport/tunes", "postgresql://"),
])
def test_bad_databases_give_one_line(tmp_path, make, expected):
    target = make(tmp_path)
    with pytest.raises(TunebookError) as caught:
        Tunebook(target)
    message = str(caught.value)
    assert isinstance(caught.value, FolkError)
    assert expected in message and message.startswith("cannot open the tunebook")
    assert "\n" not in message and "s3cret-pw" not in message and "Traceback" not in message
    assert len(message) < 300


def test_postgresql_without_its_driver(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg raises ImportError
    with pytest.raises(TunebookError) as caught:
        Tunebook("postgresql://tunes:s3cret-pw@127.0.0.1:1/tunes")
    message = str(caught.value)
    assert "pip install 'folkrnn[postgres]'" in message and "s3cret-pw" not in message and "\n" not in message


def test_old_sqlite_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(tunebook_module.sqlite3, "sqlite_version_info", (3, 31, 1))
    with pytest.raises(TunebookError, match="needs SQLite 3.35"):
        Tunebook(tmp_path / "book.sqlite")


def test_wrong_password_is_not_shown():
    url = postgres_or_skip()
    from sqlalchemy.engine import make_url

    wrong = make_url(url).set(password="wr0ng-s3cret").render_as_string(hide_password=False)
    with pytest.raises(TunebookError) as caught:
        Tunebook(wrong)
    message = str(caught.value)
    assert "wr0ng-s3cret" not in message and "***" in message and "\n" not in message


def test_unreadable_database_while_running(tmp_path):
    """A tunebook that breaks after it was opened (here: its file replaced by a folder) gives one
    TunebookError line, not a driver's exception."""
    path = tmp_path / "book.sqlite"
    book = Tunebook(path)
    book.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.mkdir()
    with pytest.raises(TunebookError) as caught:
        book.save(tune(1))
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)


# --- the PostgreSQL tests cannot be skipped in CI, and the CLI starts without SQLAlchemy ------


def test_ci_cannot_skip_postgres():
    """Under CI_REQUIRE_POSTGRES=1 without a server URL, the PostgreSQL tests fail rather than skip."""
    env = {name: value for name, value in os.environ.items() if name != "FOLKRNN_TEST_POSTGRES"}
    env["CI_REQUIRE_POSTGRES"] = "1"
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__,
                             "-k", "test_optional_fields_may_be_missing"],
                            env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stdout
    assert "ERROR tests/test_tunebook.py::test_optional_fields_may_be_missing[postgresql]" in result.stdout
    assert "FOLKRNN_TEST_POSTGRES is not set" in result.stdout and "skipped" not in result.stdout


def test_cli_does_not_import_sqlalchemy():
    result = subprocess.run([sys.executable, "-c", "import sys, folkrnn.cli; print('sqlalchemy' in sys.modules)"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "False", result.stderr
