"""
Connecting to the database and running work off the reactor thread.

L{Database} owns the SQLAlchemy engine and a bounded L{ThreadPool}; every
statement runs in one of its threads, inside a transaction that
L{Database.read} or L{Database.write} opens and commits.  The Deferred they
return fires on the reactor thread after the commit.

SQLite allows one writer at a time per file.  Instead of letting sessions
race for the lock and fail with "database is locked", writers of this
process take a mutex and open their transaction with C{BEGIN IMMEDIATE}
(other processes then wait up to the busy timeout).  Readers run
concurrently with the writer thanks to WAL mode.

Since the writers queue anyway, those that ask for it
(L{Database.write_grouped}, which APPEND uses) share a commit: the writer
that takes the mutex runs every grouped write waiting by then, each in a
savepoint of one transaction, and commits (and so fsyncs) once for all of
them.  Each still succeeds or fails alone, and none is reported before
the commit that holds it.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Callable, Iterable, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.pool import StaticPool
from twisted.internet import reactor as _global_reactor
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from twisted_mailhub.errors import StoreUnavailable

T = TypeVar("T")

#: How long an SQLite writer waits for another process's lock (ms).
SQLITE_BUSY_TIMEOUT_MS = 30_000

#: PostgreSQL SQLSTATEs after which the whole transaction is simply retried.
_RETRY_SQLSTATES = {"40001", "40P01"}  # serialization_failure, deadlock_detected
_MAX_ATTEMPTS = 5


def parse_url(url: str) -> URL:
    """
    Turn a store URL into an SQLAlchemy L{URL}.

    ``sqlite:PATH`` (no ``//``) is the short form for an SQLite file, the
    path relative to the working directory or absolute.  Any other string
    is an SQLAlchemy URL; ``postgresql://`` without a driver uses psycopg
    (version 3).
    """
    if url.startswith("sqlite:") and not url.startswith("sqlite://"):
        path = url[len("sqlite:"):]
        if not path:
            raise ValueError("sqlite: needs a file name, e.g. sqlite:mail.db")
        return URL.create("sqlite", database=os.path.abspath(path))
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def is_memory_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def make_engine(url: URL, pool_size: int) -> Engine:
    """An engine configured for durable, concurrent use of C{url}'s database."""
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url, pool_size)
    options: dict[str, Any] = {"pool_size": pool_size, "max_overflow": 0, "pool_pre_ping": True}
    if url.get_backend_name() in ("mysql", "mariadb"):
        options["isolation_level"] = "READ COMMITTED"
    return create_engine(url, **options)


def _sqlite_engine(url: URL, pool_size: int) -> Engine:
    connect_args = {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    if is_memory_sqlite(url):
        engine = create_engine(url, poolclass=StaticPool, connect_args=connect_args)
    else:
        # One connection per pool thread, plus one spare for the writer.
        engine = create_engine(
            url, pool_size=pool_size + 1, max_overflow=0, connect_args=connect_args
        )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        # Database begins the transactions, not the driver, so that writers
        # can say BEGIN IMMEDIATE.  Not through SQLAlchemy's "begin" event:
        # any connection event listener on the engine makes every
        # connection join the engine's event dispatch, which cost more
        # than the rest of an empty read transaction.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        if not is_memory_sqlite(url):
            cursor.execute("PRAGMA journal_mode = WAL")
        # FULL: in WAL mode every commit is fsynced before it is reported,
        # so an acknowledged APPEND survives a power cut, not only a crash.
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    return engine


class Database:
    """
    An engine and the bounded thread pool every statement runs in.

    Create it, call L{start}, and L{stop} it when done; between the two,
    L{read} and L{write} run a function C{fn(connection, *args)} in a
    transaction in a pool thread.
    """

    def __init__(self, url: URL, pool_size: int = 4, reactor: Any = None) -> None:
        self.url = url
        self.dialect = url.get_backend_name()
        if is_memory_sqlite(url):
            pool_size = 1  # one shared connection: one thread at a time
        self.engine = make_engine(url, pool_size)
        self._reactor = reactor if reactor is not None else _global_reactor
        self._pool = ThreadPool(minthreads=0, maxthreads=pool_size, name="mailhub-sql")
        self._sqlite = self.dialect == "sqlite"
        self._write_lock = threading.Lock() if self._sqlite else None
        self._started = False
        self._trigger: Any = None
        self._commit_handlers: dict[str, Callable[[list[Any]], None]] = {}
        # Grouped writes not yet taken by a writer (see write_grouped).
        self._grouped: list[_Grouped] = []
        self._grouped_lock = threading.Lock()

    def start(self) -> None:
        if not self._started:
            self._pool.start()
            self._started = True
            # Like the reactor's own pool: an embedder that never calls
            # stop() must not keep the process alive after the reactor.
            self._trigger = self._reactor.addSystemEventTrigger(
                "during", "shutdown", self._pool.stop
            )

    def stop(self) -> Deferred:
        """Close the connections (in the pool) and stop its threads."""
        if not self._started:
            return Deferred.fromCoroutine(_nothing())
        d = deferToThreadPool(self._reactor, self._pool, self.engine.dispose)

        def _stop(result):
            self._pool.stop()
            self._started = False
            if self._trigger is not None:
                self._reactor.removeSystemEventTrigger(self._trigger)
                self._trigger = None
            return result

        return d.addBoth(_stop)

    def call(self, fn: Callable[..., T], *args: Any) -> Deferred:
        """Run C{fn(*args)} (CPU work such as parsing) in a pool thread."""
        return deferToThreadPool(self._reactor, self._pool, fn, *args)

    def read(self, fn: Callable[..., T], *args: Any) -> Deferred:
        """Run C{fn(connection, *args)} in a read-only transaction."""
        return deferToThreadPool(self._reactor, self._pool, self.run_read, fn, *args)

    def write(self, fn: Callable[..., T], *args: Any) -> Deferred:
        """
        Run C{fn(connection, *args)} in a write transaction; the Deferred
        fires after the commit (or fails after the rollback).
        """
        return deferToThreadPool(self._reactor, self._pool, self.run_write, fn, *args)

    def write_grouped(self, fn: Callable[..., T], *args: Any) -> Deferred:
        """
        L{write}, sharing the commit with the other grouped writes waiting
        for the writer's mutex (SQLite; elsewhere it is L{write}).  C{fn}
        must leave the transaction usable when it raises (it then rolls
        back to its savepoint alone), as every statement error does.
        """
        if self._write_lock is None:
            return self.write(fn, *args)
        job = _Grouped(fn, args)
        with self._grouped_lock:
            self._grouped.append(job)
        return deferToThreadPool(self._reactor, self._pool, self._run_grouped, job)

    # -- in a pool thread ------------------------------------------------------

    def _run_grouped(self, job: "_Grouped") -> Any:
        assert self._write_lock is not None
        with self._write_lock:
            if not job.done:
                with self._grouped_lock:
                    batch, self._grouped = self._grouped, []
                self._write_batch(batch)
        return job.outcome()

    def _write_batch(self, batch: list["_Grouped"]) -> None:
        """Run C{batch} in one transaction, a savepoint each; commit once."""
        pending = None
        try:
            with self.engine.connect() as conn:
                conn.info.pop(_AFTER_COMMIT, None)  # left by a failed transaction
                with conn.begin():
                    # The driver is in autocommit mode: without this, each
                    # job's savepoint would be a transaction of its own.
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                    for job in batch:
                        before = {key: list(items) for key, items in
                                  conn.info.get(_AFTER_COMMIT, {}).items()}
                        try:
                            with conn.begin_nested():
                                job.value = job.fn(conn, *job.args)
                        except Exception as e:  # noqa: BLE001 - that job's own failure
                            job.error = e
                            conn.info[_AFTER_COMMIT] = before
                pending = conn.info.pop(_AFTER_COMMIT, None)
        except BaseException as e:
            # Nothing of the batch was committed: every job fails with it.
            failure = _unavailable(e) if isinstance(e, OperationalError) else e
            if failure is not e:
                failure.__cause__ = e
            for job in batch:
                job.value, job.error, job.done = None, failure, True
            if not isinstance(e, Exception):
                raise
            return
        for job in batch:
            job.done = True
        if pending:
            self._reactor.callFromThread(self._committed, pending)

    def run_read(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return self._read_once(fn, args)
        except OperationalError as e:
            raise _unavailable(e) from e

    def _read_once(self, fn: Callable[..., T], args: tuple) -> T:
        with self.engine.connect() as conn:
            if self.dialect == "postgresql":
                # One snapshot for all statements of the call.
                conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                if self._sqlite:
                    # A deferred BEGIN takes no lock, so it cannot be busy:
                    # straight to the driver, as SQLAlchemy's statement
                    # machinery cost more than the BEGIN itself.
                    conn.connection.driver_connection.execute("BEGIN")
                return fn(conn, *args)

    def run_write(self, fn: Callable[..., T], *args: Any) -> T:
        for attempt in range(_MAX_ATTEMPTS):
            try:
                if self._write_lock is None:
                    return self._write_once(fn, args)
                with self._write_lock:
                    return self._write_once(fn, args)
            except DBAPIError as e:
                if attempt + 1 < _MAX_ATTEMPTS and _retryable(e):
                    continue
                if isinstance(e, OperationalError) and not _retryable(e):
                    raise _unavailable(e) from e
                raise
        raise AssertionError("unreachable")

    def _write_once(self, fn: Callable[..., T], args: tuple) -> T:
        with self.engine.connect() as conn:
            conn.info.pop(_AFTER_COMMIT, None)  # left by a failed attempt
            with conn.begin():
                if self._sqlite:
                    # Through SQLAlchemy, which turns SQLITE_BUSY into the
                    # error that run_write retries on.
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                result = fn(conn, *args)
            pending = conn.info.pop(_AFTER_COMMIT, None)
        if pending:
            self._reactor.callFromThread(self._committed, pending)
        return result

    # -- after the commit ------------------------------------------------------

    def on_commit(self, key: str, handler: Callable[[list[Any]], None]) -> None:
        """
        Call C{handler(items)} in the reactor thread after each committed
        write transaction that passed C{key} to L{after_commit}, with the
        items it passed.  Items of a rolled back transaction are dropped.
        """
        self._commit_handlers[key] = handler

    def _committed(self, pending: dict[str, list[Any]]) -> None:
        for key, items in pending.items():
            handler = self._commit_handlers.get(key)
            if handler is not None:
                handler(items)


class _Grouped:
    """One write of L{Database.write_grouped}, and its outcome once committed."""

    __slots__ = ("fn", "args", "done", "value", "error")

    def __init__(self, fn: Callable[..., Any], args: tuple) -> None:
        self.fn = fn
        self.args = args
        self.done = False
        self.value: Any = None
        self.error: BaseException | None = None

    def outcome(self) -> Any:
        if self.error is not None:
            if isinstance(self.error, OperationalError):
                raise _unavailable(self.error) from self.error
            raise self.error
        return self.value


#: Where after_commit keeps its items on a connection during a transaction.
_AFTER_COMMIT = "mailhub_after_commit"


def after_commit(conn: Connection, key: str, items: Iterable[Any]) -> None:
    """
    Inside a write transaction: hand C{items} to the handler registered for
    C{key} with L{Database.on_commit} once the transaction has committed.
    """
    conn.info.setdefault(_AFTER_COMMIT, {}).setdefault(key, []).extend(items)


def _unavailable(error: OperationalError) -> StoreUnavailable:
    # The database's own text (host names, paths) stays in the chained
    # exception for the log; clients see the generic message.
    return StoreUnavailable("The mail store is temporarily unavailable")


def _retryable(error: DBAPIError) -> bool:
    sqlstate = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
    return sqlstate in _RETRY_SQLSTATES


async def _nothing() -> None:
    return None

