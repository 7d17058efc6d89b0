"""The tunebook: the tunes that ``folkrnn serve`` keeps, in SQLite or PostgreSQL, through one code path.

:class:`Tunebook` saves a finished tune with its options (``query``, the permalink) and the model
that wrote it, finds tunes by title, rhythm and mode, removes them, and exports them all as one
ABC file. It is written with SQLAlchemy Core, so the same statements run on both databases; the
only difference is whose ``INSERT ... ON CONFLICT DO NOTHING`` builds the save (SQLite 3.35 or later,
for its ``RETURNING``).

**Nothing lost.** Each save is one transaction, committed before :meth:`Tunebook.save` returns. A
SQLite tunebook runs in WAL mode with ``synchronous=FULL`` (a committed tune survives a killed
process and a power cut) and waits for the lock (``busy_timeout``) rather than failing, so
several processes (``folkrnn serve --workers N``) can share one file. Several servers on several
machines can share one PostgreSQL tunebook: saving the same tune twice, even at the same moment
from two processes, keeps one row and gives both the same id.

**One tune per permalink.** A tune is identified by its model and its query: the same options
with the same seed and model make the same tune, so saving it again returns the row already there.
The unique key is the SHA-256 of the two (``digest``): a B-tree index entry has a size limit in
PostgreSQL (about 2.7 kB) that a long query (a title and a prime in percent-encoded UTF-8) could
pass.

**Safe.** Every value travels as a bound parameter; no SQL is built from text. Title searches
escape LIKE's wildcards, so ``100%`` finds only titles with ``100%`` in them. Text that a
database cannot store alike on both (a NUL character, a lone surrogate) is refused with an
:class:`~folkrnn.errors.OptionError` naming the field, as are bad search and paging values. A
database that cannot be opened or used raises :class:`TunebookError` with one line saying what
and where (never a URL's password).
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    exc,
    func,
    inspect,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.schema import CreateIndex

from folkrnn import tables
from folkrnn.errors import FolkError, OptionError

__all__ = ["Tunebook", "TunebookError", "DEFAULT_PATH", "MAX_LIMIT", "MAX_SEED"]

#: The tunebook that ``Tunebook()`` opens: a SQLite file in the current folder.
DEFAULT_PATH = "tunebook.sqlite"
#: The most tunes one :meth:`Tunebook.search` returns.
MAX_LIMIT = 200
#: The largest offset a search takes.
MAX_OFFSET = 2**31 - 1
#: Seeds run from 0 to 2^63 - 1 (:data:`folkrnn.tables.MAX_SEED`): a signed 64-bit BIGINT holds them all.
MAX_SEED = tables.MAX_SEED
#: The largest id (the id column is a 32-bit INTEGER on PostgreSQL).
_MAX_ID = 2**31 - 1
#: How long a SQLite writer waits for another process's lock before giving up, in milliseconds.
BUSY_TIMEOUT_MS = 30_000
#: Tunes read per query by :meth:`Tunebook.export_abc`.
_EXPORT_BATCH = 100

_TEXT_FIELDS = ("title", "rhythm", "meter", "mode", "key", "query", "model", "abc")
_REQUIRED = ("query", "model", "abc")  # the rest may be missing or empty
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_X_LINE = re.compile(r"^X:[^\n]*", re.MULTILINE)

_metadata = MetaData()
tunes = Table(
    "tunes",
    _metadata,
    Column("id", Integer, primary_key=True),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("title", Text, nullable=False),
    # the title casefolded, which the search matches: the same on both databases, for all of Unicode
    # (SQLite's LIKE and lower() fold ASCII only)
    Column("title_folded", Text, nullable=False),
    Column("rhythm", Text),
    Column("meter", Text),
    Column("mode", Text),  # the K: mode code: "maj", "min", "dor", "mix", ...
    Column("key", Text),  # the K: field: "D", "Edor", ...
    Column("seed", BigInteger, nullable=False),
    Column("query", Text, nullable=False),
    Column("model", Text, nullable=False),
    Column("abc", Text, nullable=False),
    # sha256(model NUL query): the unique key; in CREATE TABLE itself, so no process ever sees the
    # table without it
    Column("digest", String(64), nullable=False, unique=True),
    # ids are never reused, so a removed tune's id (an old link) never shows another tune
    sqlite_autoincrement=True,
)
# Newest first by id: filtered by rhythm or mode, the index gives the rows in order. A substring
# cannot use a B-tree, but counting title matches scans the narrow index instead of the table
# (which holds every tune's ABC).
Index("ix_tunes_rhythm", tunes.c.rhythm, tunes.c.id)
Index("ix_tunes_mode", tunes.c.mode, tunes.c.id)
Index("ix_tunes_title_folded", tunes.c.title_folded)

_LISTED = [column for column in tunes.c if column.name not in ("abc", "title_folded", "digest")]
_PUBLIC = [*_LISTED, tunes.c.abc]


class TunebookError(FolkError):
    """A tunebook database that cannot be opened or used: a bad path or URL, no server, not a tunebook."""


class Tunebook:
    """The saved tunes, in a SQLite file or a PostgreSQL database.

    Parameters
    ----------
    url
        ``None``: ``tunebook.sqlite`` in the current folder. A path: a SQLite file there (made, with its
        table, if missing). A URL as given: ``sqlite:///path``, ``postgresql://user:password@host/db``
        (run with psycopg 3, as ``postgresql+psycopg://``).

    Raises
    ------
    TunebookError
        The database cannot be opened, or holds a ``tunes`` table that is not a tunebook's.
    """

    def __init__(self, url: str | os.PathLike[str] | None = None) -> None:
        self.url, self.where = _resolve(url)
        self._password = self.url.password if isinstance(self.url.password, str) else None
        backend = self.url.get_backend_name()
        self._insert = sqlite.insert if backend == "sqlite" else postgresql.insert
        if backend == "sqlite":
            if sqlite3.sqlite_version_info < (3, 35):
                raise TunebookError(f"cannot open the tunebook {self.where}: it needs SQLite 3.35 or later "
                                    f"(INSERT ... RETURNING), and this Python has SQLite {sqlite3.sqlite_version}")
            _check_sqlite_path(self.url, self.where)
        self._engine = self._open()

    # --- opening -------------------------------------------------------------------------------

    def _open(self) -> Engine:
        """Connect, make the table and its indexes if missing, and check that the table is a tunebook's."""
        backend = self.url.get_backend_name()
        options: dict[str, Any] = {}
        if backend == "postgresql":
            # a server that is gone (restarted, failed over) leaves dead connections in the pool
            options["pool_pre_ping"] = True
            if "connect_timeout" not in self.url.query:
                options["connect_args"] = {"connect_timeout": 10}  # an unreachable host: 10 s, not minutes
        try:
            engine = create_engine(self.url, **options)
        except ImportError as error:
            raise TunebookError(f"cannot open the tunebook {self.where}: a PostgreSQL tunebook needs the psycopg "
                                f"driver: pip install 'folkrnn[postgres]' ({error})") from None
        except (exc.ArgumentError, ValueError) as error:
            raise TunebookError(f"cannot open the tunebook {self.where}: {self._reason(error)}") from None
        if backend == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        try:
            _while_racing(lambda: engine.connect().close())  # WAL: a new file's first connections race too
            missing = _create_schema(engine)
        except exc.SQLAlchemyError as error:
            engine.dispose()
            raise TunebookError(f"cannot open the tunebook {self.where}: {self._reason(error)}") from None
        if missing:
            engine.dispose()
            raise TunebookError(f"cannot open the tunebook {self.where}: its table 'tunes' is not a folkrnn "
                                f"tunebook's (no column {', '.join(missing)})")
        return engine

    def _reason(self, error: BaseException) -> str:
        """The driver's own first line about ``error``, without the password."""
        original = getattr(error, "orig", None) or error
        lines = [line.strip() for line in str(original).splitlines() if line.strip()]
        reason = lines[0] if lines else type(original).__name__
        if self._password:
            reason = reason.replace(self._password, "***")
        return reason

    def _failed(self, doing: str, error: exc.SQLAlchemyError) -> TunebookError:
        return TunebookError(f"the tunebook {self.where} could not {doing}: {self._reason(error)}")

    # --- the tunes -----------------------------------------------------------------------------

    def save(self, tune: Mapping[str, Any]) -> tuple[int, bool]:
        """Save ``tune`` (its ``model``, ``query``, ``abc``, ``seed``, and ``title``, ``rhythm``,
        ``meter``, ``mode``, ``key`` where known; other keys are ignored) in one committed transaction.

        Returns ``(id, created)``: a tune with the same model and query already saved is kept as it is,
        and its id comes back with ``created`` False.
        """
        values = _tune_values(tune)
        statement = (self._insert(tunes).values(**values).on_conflict_do_nothing(index_elements=["digest"])
                     .returning(tunes.c.id))
        try:
            with self._engine.begin() as connection:
                tune_id = connection.execute(statement).scalar()
                created = tune_id is not None
                if not created:  # saved before (by this process or another): the row that is there
                    tune_id = connection.execute(
                        select(tunes.c.id).where(tunes.c.digest == values["digest"])).scalar_one()
        except exc.SQLAlchemyError as error:
            raise self._failed("save the tune", error) from None
        return int(tune_id), created

    def get(self, tune_id: int) -> dict[str, Any] | None:
        """The tune with this id, every column (``abc`` included, ``created`` as an ISO string), or None."""
        tune_id = _id(tune_id)
        if tune_id is None:
            return None
        try:
            with self._engine.connect() as connection:
                row = connection.execute(select(*_PUBLIC).where(tunes.c.id == tune_id)).first()
        except exc.SQLAlchemyError as error:
            raise self._failed("read the tune", error) from None
        return None if row is None else _as_dict(row)

    def search(self, text: str | None = None, rhythm: str | None = None, mode: str | None = None,
               offset: int = 0, limit: int = 50) -> tuple[list[dict[str, Any]], int]:
        """The saved tunes, newest first, whose title holds ``text`` (any case) and whose rhythm and mode
        are ``rhythm`` and ``mode`` exactly (None or "": any).

        Returns ``(tunes, total)``: at most ``limit`` tunes (1 to :data:`MAX_LIMIT`) after skipping
        ``offset``, without their ABC, and how many match in all.
        """
        conditions = []
        text = _text_or_none(text, "text")
        if text:
            conditions.append(tunes.c.title_folded.contains(text.casefold(), autoescape=True))
        for name, value in (("rhythm", rhythm), ("mode", mode)):
            value = _text_or_none(value, name)
            if value:
                conditions.append(tunes.c[name] == value)
        offset = _whole(offset, "offset", 0, MAX_OFFSET)
        limit = _whole(limit, "limit", 1, MAX_LIMIT)
        rows_query = select(*_LISTED).where(*conditions).order_by(tunes.c.id.desc()).offset(offset).limit(limit)
        count_query = select(func.count()).select_from(tunes).where(*conditions)
        try:
            with self._engine.connect() as connection:
                rows = [_as_dict(row) for row in connection.execute(rows_query)]
                total = int(connection.execute(count_query).scalar_one())
        except exc.SQLAlchemyError as error:
            raise self._failed("search", error) from None
        return rows, total

    def delete(self, tune_id: int) -> bool:
        """Remove the tune with this id; False when there was none."""
        tune_id = _id(tune_id)
        if tune_id is None:
            return False
        try:
            with self._engine.begin() as connection:
                return connection.execute(tunes.delete().where(tunes.c.id == tune_id)).rowcount == 1
        except exc.SQLAlchemyError as error:
            raise self._failed("remove the tune", error) from None

    def export_abc(self) -> Iterator[str]:
        """Every saved tune's ABC, oldest first, as one tunebook: numbered ``X:1``, ``X:2``, ... in order
        (each tune's X: line rewritten) and separated by blank lines.

        Streamed: the tunes are read :data:`_EXPORT_BATCH` at a time, each batch on a connection of its
        own that is returned at once, so a slow reader holds no connection or lock. Tunes saved while
        the export runs come at its end; a tune removed before its batch is read is left out.
        """
        number = 0
        last_id = 0
        while True:
            query = (select(tunes.c.id, tunes.c.abc).where(tunes.c.id > last_id)
                     .order_by(tunes.c.id).limit(_EXPORT_BATCH))
            try:
                with self._engine.connect() as connection:
                    batch = connection.execute(query).all()
            except exc.SQLAlchemyError as error:
                raise self._failed("export the tunes", error) from None
            for tune_id, abc in batch:
                number += 1
                last_id = tune_id
                yield ("\n" if number > 1 else "") + _numbered(abc, number)
            if len(batch) < _EXPORT_BATCH:
                return

    def count(self) -> int:
        """How many tunes are saved."""
        try:
            with self._engine.connect() as connection:
                return int(connection.execute(select(func.count()).select_from(tunes)).scalar_one())
        except exc.SQLAlchemyError as error:
            raise self._failed("count the tunes", error) from None

    def close(self) -> None:
        """Close the pooled connections."""
        self._engine.dispose()

    def __enter__(self) -> Tunebook:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Tunebook({self.where!r})"


# --- helpers -----------------------------------------------------------------------------------


def _resolve(url: str | os.PathLike[str] | None) -> tuple[URL, str]:
    """The SQLAlchemy URL of ``url`` (a path becomes a SQLite file's, ``postgresql://`` gets psycopg 3),
    and how messages name it: a SQLite file's path, else the URL as given without its password."""
    if url is None:
        url = DEFAULT_PATH
    if isinstance(url, os.PathLike) or not _SCHEME.match(url):
        path = os.fspath(url)
        if not path:
            raise TunebookError("cannot open the tunebook: the path is empty")
        return URL.create("sqlite+pysqlite", database=path), path
    try:
        parsed = make_url(url)
    except (exc.ArgumentError, ValueError):
        scheme = url.split("://", 1)[0]
        raise TunebookError(f"cannot open the tunebook: {scheme}://... is not a database URL that can be read") \
            from None
    backend, _, driver = parsed.drivername.partition("+")
    where = parsed.render_as_string(hide_password=True)
    if backend in ("postgresql", "postgres") and driver in ("", "psycopg"):
        return parsed.set(drivername="postgresql+psycopg"), where
    if backend == "sqlite" and driver in ("", "pysqlite"):
        return parsed.set(drivername="sqlite+pysqlite"), parsed.database or ":memory:"
    if backend in ("postgresql", "postgres", "sqlite"):
        raise TunebookError(f"cannot open the tunebook {where}: the driver {driver!r} is not supported: "
                            f"write {backend}:// (folkrnn uses {'psycopg 3' if backend != 'sqlite' else 'sqlite3'})")
    raise TunebookError(f"cannot open the tunebook {where}: unknown kind of database {parsed.drivername!r}: "
                        "give a file path, sqlite:///path or postgresql://user:password@host/database")


def _check_sqlite_path(url: URL, where: str) -> None:
    """Refuse, with a clear reason, the SQLite paths that sqlite3 would only call 'unable to open'."""
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    if path.is_dir():
        raise TunebookError(f"cannot open the tunebook {where}: it is a folder, not a file")
    if path.exists() and not path.is_file():
        raise TunebookError(f"cannot open the tunebook {where}: it is not a regular file")
    parent = path.parent
    if not parent.is_dir():
        raise TunebookError(f"cannot open the tunebook {where}: the folder {str(parent)!r} does not exist")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """Every SQLite connection: wait for locks (first, so switching to WAL waits too), WAL, and an fsync
    per commit (``synchronous=FULL``), so a tune saved is on disk when :meth:`Tunebook.save` returns."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")
    finally:
        cursor.close()


def _create_schema(engine: Engine) -> list[str]:
    """Make the table and its indexes where missing; the tunebook's columns that a ``tunes`` table
    already there lacks (none: it is a tunebook). Several processes opening a new tunebook at once race
    to make it (the check and the CREATE are two steps): the losers try again and find it made."""

    def make() -> list[str]:
        with engine.begin() as connection:
            _metadata.create_all(connection)
            columns = {column["name"] for column in inspect(connection).get_columns("tunes")}
            missing = [column.name for column in tunes.c if column.name not in columns]
            if missing:
                return missing
            for index in tunes.indexes:  # an index missing from a table made by another process
                connection.execute(CreateIndex(index, if_not_exists=True))
        return []

    return _while_racing(make)


def _while_racing(step: Callable[[], Any]) -> Any:
    """``step()``, done again while another process opening the same new tunebook gets in its way.

    SQLite answers "database is locked" at once, without waiting out the busy timeout, to a
    transaction that read the schema and then writes it while another one writes (waiting could
    deadlock), and both refuse the second CREATE of one table. The loser waits a little, longer
    each time and with some randomness, and tries again, for up to about 20 s. Any other error (no
    server, a wrong password) is raised at once."""
    attempts = 40
    for attempt in range(attempts):
        try:
            return step()
        except (exc.OperationalError, exc.ProgrammingError, exc.IntegrityError) as error:
            said = str(error)
            racing = not isinstance(error, exc.OperationalError) or any(
                words in said for words in ("locked", "busy", "already exists"))
            if attempt == attempts - 1 or not racing:
                raise
            time.sleep(min(1.0, 0.02 * (attempt + 1)) * (0.5 + random.random()))
    raise AssertionError("unreachable")


def _tune_values(tune: Mapping[str, Any]) -> dict[str, Any]:
    """The row for ``tune``, checked: text fields are text (None or "" where optional), the seed a whole
    number from 0 to :data:`MAX_SEED`."""
    if not isinstance(tune, Mapping):
        raise OptionError(f"a tune to save is a dict, not {type(tune).__name__}")
    values: dict[str, Any] = {}
    for name in _TEXT_FIELDS:
        value = _text_or_none(tune.get(name), name)
        if name in _REQUIRED and not value:
            raise OptionError(f"{name} is needed to save a tune")
        values[name] = value or None
    values["title"] = values["title"] or ""
    values["title_folded"] = values["title"].casefold()
    values["seed"] = _whole(tune.get("seed"), "seed", 0, MAX_SEED)
    values["digest"] = hashlib.sha256(f"{values['model']}\0{values['query']}".encode()).hexdigest()
    values["created"] = datetime.now(timezone.utc)
    return values


def _text_or_none(value: Any, name: str) -> str | None:
    """``value`` if it is text that both databases store as it is (no NUL, no lone surrogate), or None."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise OptionError(f"{name} must be text, not {type(value).__name__}")
    if "\0" in value:
        raise OptionError(f"{name} must not contain a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise OptionError(f"{name} is not valid Unicode text (a lone surrogate)") from None
    return value


def _whole(value: Any, name: str, low: int, high: int) -> int:
    """``value`` (an int, or a string of digits as a query string gives it) as an int from low to high."""
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d{1,30}\s*", value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise OptionError(f"{name} must be a whole number, not {value!r}"[:200])
    if not low <= value <= high:
        raise OptionError(f"{name} must be {low} to {high}, not {value}")
    return value


def _id(tune_id: Any) -> int | None:
    """A tune id as an int, or None when no tune can have it (out of the id column's range)."""
    if isinstance(tune_id, bool) or not isinstance(tune_id, int):
        raise OptionError(f"id must be a whole number, not {tune_id!r}"[:200])
    return tune_id if 1 <= tune_id <= _MAX_ID else None


def _as_dict(row: Any) -> dict[str, Any]:
    """A row as a plain dict, ``created`` an ISO 8601 string in UTC (SQLite gives it back without a zone)."""
    tune = dict(row._mapping)
    created = tune["created"]
    if isinstance(created, datetime):
        created = created.replace(tzinfo=timezone.utc) if created.tzinfo is None else created.astimezone(timezone.utc)
        tune["created"] = created.isoformat(timespec="seconds")
    if tune.get("seed") is not None:
        tune["seed"] = int(tune["seed"])
    return tune


def _numbered(abc: str, number: int) -> str:
    """``abc`` as tune ``number`` of a tunebook: its first X: line (or a new one) says ``X:number``, and it
    holds no blank line (a blank line ends a tune in ABC)."""
    lines = [line.rstrip() for line in abc.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    text = "\n".join(line for line in lines if line)
    if _X_LINE.search(text):
        text = _X_LINE.sub(f"X:{number}", text, count=1)
    else:
        text = f"X:{number}\n{text}"
    return text + "\n"
