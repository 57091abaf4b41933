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

A commit only appends to the write-ahead log (WAL) and fsyncs it, which
is what makes it durable.  Copying the log's pages back into the database
file (a checkpoint, with fsyncs of both files) is done in the pool once
the log holds L{CHECKPOINT_FRAMES} pages, beside the next commands,
instead of by SQLite inside the commit that crosses that threshold, which
made that command wait for megabytes to be copied and synced.

On a database server every statement is a round trip, and so are the
C{BEGIN} and C{COMMIT} around it.  L{Database.read_statements} runs reads
whose statements need no snapshot in common outside a transaction, and a
connection is pinged before use only if it sat idle in the pool for a while
(L{PING_AFTER_IDLE}), not at every checkout.
"""

from __future__ import annotations

import os
import struct
import threading
import time
from typing import Any, Callable, Iterable, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError
from sqlalchemy.pool import StaticPool
from twisted.internet import reactor as _global_reactor
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from twisted_mailhub.errors import StoreUnavailable

T = TypeVar("T")

_log = Logger()

#: How long an SQLite writer waits for another process's lock (ms).
SQLITE_BUSY_TIMEOUT_MS = 30_000

#: PostgreSQL SQLSTATEs after which the whole transaction is simply retried.
_RETRY_SQLSTATES = {"40001", "40P01"}  # serialization_failure, deadlock_detected
_MAX_ATTEMPTS = 5

#: Pages in the WAL not yet copied into the database file past which a
#: checkpoint starts (SQLite files; SQLite's own default threshold).
CHECKPOINT_FRAMES = 1000

#: Frames (pages) in the WAL past which what a checkpoint beside writers
#: left (their commits meanwhile) is checkpointed under the writers' mutex:
#: the log starts again from its beginning only once it is all in the
#: database file, which commits arriving all the while would never allow.
CHECKPOINT_FORCE_FRAMES = 4000

#: Frames left by a checkpoint beside writers up to which the rest is
#: copied under the mutex (more are first copied beside them again).
CHECKPOINT_LEFT_FRAMES = 256
_CHECKPOINT_PASSES = 3

#: A server connection back in the pool for longer than this (seconds) is
#: pinged before it is used again: the server may have closed it meanwhile
#: (a restart, an idle timeout).  One used more recently is taken as alive,
#: which saves a round trip per transaction; should it be dead after all,
#: L{Database.read} runs its work again on a new connection, and a write
#: fails as it would had the server gone down during its transaction.
PING_AFTER_IDLE = 1.0

#: Where a pooled connection keeps when it was last put back in the pool.
_IDLE_SINCE = "mailhub_idle_since"


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
    # LIFO: the connection used last is taken next, so that under a light
    # load one connection stays in use (not pinged, see _ping_when_idle)
    # while the others idle, instead of each turn going to the one idle
    # longest.
    options: dict[str, Any] = {"pool_size": pool_size, "max_overflow": 0, "pool_use_lifo": True}
    if url.get_backend_name() in ("mysql", "mariadb"):
        options["isolation_level"] = "READ COMMITTED"
    engine = create_engine(url, **options)
    _ping_when_idle(engine)
    return engine


def _ping_when_idle(engine: Engine) -> None:
    """
    What SQLAlchemy's C{pool_pre_ping} does, only for connections idle
    longer than L{PING_AFTER_IDLE}: under load a connection is back in use
    within milliseconds, and a ping before each transaction cost one more
    round trip per read.
    """

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection, record):
        if record is not None:
            record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection, record, _proxy):
        since = record.info.pop(_IDLE_SINCE, None)
        if since is None or time.monotonic() - since < PING_AFTER_IDLE:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as e:
            # The pool discards the connection and checks out another.
            raise DisconnectionError("pooled connection is gone") from e


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
            _use_wal(cursor)
            # Checkpoints are Database's, off the command path.
            cursor.execute("PRAGMA wal_autocheckpoint = 0")
        # FULL: in WAL mode every commit is fsynced before it is reported,
        # so an acknowledged APPEND survives a power cut, not only a crash.
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    return engine


def _use_wal(cursor: Any) -> None:
    """
    Put the database file in WAL mode (it stays so).  The switch of a new
    file needs it to itself, and SQLite answers "database is locked" at
    once, without its busy timeout, to a connection whose switch meets
    another's: two servers (or two backends of one) starting together on
    a new file.  Try again then, for as long as a lock is waited for.
    """
    import sqlite3

    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    delay = 0.001
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(2 * delay, 0.1)


#: The wal-index header (https://sqlite.org/walformat.html, section 2.2):
#: its first copy's version, isInit and mxFrame, then the checkpoint
#: information's nBackfill; in the host's byte order.
_WAL_INDEX = struct.Struct("=I8xB3xI76xI")
_WAL_INDEX_VERSION = 3007000


def wal_state(shm_path: str) -> tuple[int, int] | None:
    """
    The length of an SQLite WAL in frames and how many of them are
    checkpointed, read from the wal-index file beside it, or C{None} when
    that cannot be told.
    """
    try:
        fd = os.open(shm_path, os.O_RDONLY)
    except OSError:
        return None
    try:
        data = os.pread(fd, _WAL_INDEX.size, 0)
    except OSError:
        return None
    finally:
        os.close(fd)
    if len(data) < _WAL_INDEX.size:
        return None
    version, initialised, frames, backfilled = _WAL_INDEX.unpack(data)
    if version != _WAL_INDEX_VERSION or not initialised:
        return None
    return frames, min(frames, backfilled)


def wal_frames(shm_path: str) -> int | None:
    """How many frames of an SQLite WAL are not yet checkpointed (L{wal_state})."""
    state = wal_state(shm_path)
    return None if state is None else state[0] - state[1]


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
        # WAL checkpoints (SQLite files): whether one is started or
        # running, and the running one's Deferred.
        self._wal = self._sqlite and not is_memory_sqlite(url)
        self._shm_path = f"{url.database}-shm" if self._wal else ""
        self._checkpoints = False
        self._checkpoint_lock = threading.Lock()
        self._checkpoint_pending = False
        self._checkpoint_running: Deferred | None = None

    def start(self) -> None:
        if not self._started:
            self._pool.start()
            self._started = True
            self._checkpoints = self._wal
            # Like the reactor's own pool: an embedder that never calls
            # stop() must not keep the process alive after the reactor.
            self._trigger = self._reactor.addSystemEventTrigger(
                "during", "shutdown", self._pool.stop
            )

    def stop(self) -> Deferred:
        """Close the connections (in the pool) and stop its threads."""
        if not self._started:
            return Deferred.fromCoroutine(_nothing())
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        # No checkpoint after this: closing the last connection to the file
        # checkpoints it (SQLite), and another process's writes do theirs.
        self._checkpoints = False
        if self._checkpoint_running is not None:
            done: Deferred = Deferred()
            self._checkpoint_running.addBoth(lambda result: (done.callback(None), result)[1])
            await done
        await self._dispose()

    def _dispose(self) -> Deferred:
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

    def read_statements(self, fn: Callable[..., T], *args: Any) -> Deferred:
        """
        L{read} for a C{fn} that only reads and whose statements need no
        snapshot in common (most often it runs one): on PostgreSQL and
        SQLite they run outside a transaction, each consistent in itself,
        which saves the C{BEGIN} and C{COMMIT} (two round trips to a
        server).
        """
        return deferToThreadPool(self._reactor, self._pool, self._run_read, fn, args, True)

    def write(self, fn: Callable[..., T], *args: Any) -> Deferred:
        """
        Run C{fn(connection, *args)} in a write transaction; the Deferred
        fires after the commit (or fails after the rollback).
        """
        return deferToThreadPool(self._reactor, self._pool, self.run_write, fn, *args)

    def write_grouped(self, fn: Callable[..., T], *args: Any,
                      prepare: Callable[[], Any] | None = None) -> Deferred:
        """
        L{write}, sharing the commit with the other grouped writes waiting
        for the writer's mutex (SQLite; elsewhere it is L{write}).  C{fn}
        must leave the transaction usable when it raises (it then rolls
        back to its savepoint alone), as every statement error does.

        With C{prepare}, C{prepare()} runs first, in the same pool thread
        and outside any transaction (parsing, say), and its result is given
        to C{fn} after C{args}; if it raises, nothing is written.
        """
        if self._write_lock is None:
            if prepare is None:
                return self.write(fn, *args)
            return deferToThreadPool(self._reactor, self._pool, self._prepared_write,
                                     prepare, fn, args)
        job = _Grouped(fn, args)
        if prepare is None:
            with self._grouped_lock:
                self._grouped.append(job)
        d = deferToThreadPool(self._reactor, self._pool, self._run_grouped, job, prepare)
        if prepare is not None:
            d.addCallback(self._wait_grouped, job)
        return d

    def _wait_grouped(self, result: Any, job: "_Grouped") -> Any:
        if result is not _QUEUED:
            return result
        # Queued behind a writer: waiting for the mutex in a thread of its
        # own frees the preparing one, so that more writes get prepared
        # (and join the next commit) meanwhile.
        return deferToThreadPool(self._reactor, self._pool, self._run_grouped, job)

    # -- in a pool thread ------------------------------------------------------

    def _prepared_write(self, prepare: Callable[[], Any], fn: Callable[..., T],
                        args: tuple) -> T:
        return self.run_write(fn, *args, prepare())

    def _run_grouped(self, job: "_Grouped", prepare: Callable[[], Any] | None = None) -> Any:
        assert self._write_lock is not None
        if prepare is not None:
            job.args = (*job.args, prepare())
            with self._grouped_lock:
                self._grouped.append(job)
            # Written at once when no writer holds the mutex (one hop in
            # all); otherwise left to the next writer (see _wait_grouped).
            if not self._write_lock.acquire(blocking=False):
                return _QUEUED
        else:
            self._write_lock.acquire()
        try:
            if not job.done:
                with self._grouped_lock:
                    batch, self._grouped = self._grouped, []
                self._write_batch(batch)
        finally:
            self._write_lock.release()
        return job.outcome()

    def _write_batch(self, batch: list["_Grouped"]) -> None:
        """Run C{batch} in one transaction, a savepoint each; commit once."""
        if len(batch) == 1:
            return self._write_alone(batch[0])
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
        self._wrote()
        if pending:
            self._reactor.callFromThread(self._committed, pending)

    def _write_alone(self, job: "_Grouped") -> None:
        """A batch of one: its transaction is its savepoint."""
        try:
            with self.engine.connect() as conn:
                conn.info.pop(_AFTER_COMMIT, None)  # left by a failed transaction
                with conn.begin():
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                    job.value = job.fn(conn, *job.args)
                pending = conn.info.pop(_AFTER_COMMIT, None)
        except BaseException as e:
            # Rolled back, the job's statements with it.
            job.value, job.error, job.done = None, e, True
            if not isinstance(e, Exception):
                raise
            return
        job.done = True
        self._wrote()
        if pending:
            self._reactor.callFromThread(self._committed, pending)

    def run_read(self, fn: Callable[..., T], *args: Any) -> T:
        return self._run_read(fn, args, False)

    def _run_read(self, fn: Callable[..., T], args: tuple, separate: bool) -> T:
        try:
            try:
                return self._read_once(fn, args, separate)
            except DBAPIError as e:
                if not e.connection_invalidated:
                    raise
                # The connection was dead (PING_AFTER_IDLE); SQLAlchemy
                # dropped it, and a read can simply be run again.
                return self._read_once(fn, args, separate)
        except OperationalError as e:
            raise _unavailable(e) from e

    def _read_once(self, fn: Callable[..., T], args: tuple, separate: bool = False) -> T:
        with self.engine.connect() as conn:
            if separate and self.dialect in ("postgresql", "sqlite"):
                if not self._sqlite:
                    conn.execution_options(isolation_level="AUTOCOMMIT")
                # On SQLite the driver is in autocommit mode already (see
                # _sqlite_engine): without a BEGIN each statement is its
                # own transaction.
                return fn(conn, *args)
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
        self._wrote()
        if pending:
            self._reactor.callFromThread(self._committed, pending)
        return result

    # -- WAL checkpoints (SQLite files) ----------------------------------------

    def _wrote(self) -> None:
        """
        In the writer's thread, after a commit: start a checkpoint once the
        WAL holds L{CHECKPOINT_FRAMES} pages not yet in the database file.
        """
        if not self._checkpoints:
            return
        with self._checkpoint_lock:
            if self._checkpoint_pending or not self._checkpoint_due():
                return
            self._checkpoint_pending = True
        self._reactor.callFromThread(self._start_checkpoint)

    def _checkpoint_due(self) -> bool:
        frames = wal_frames(self._shm_path)
        return frames is None or frames >= CHECKPOINT_FRAMES

    def _start_checkpoint(self) -> None:
        if not self._checkpoints:
            with self._checkpoint_lock:
                self._checkpoint_pending = False
            return
        d = deferToThreadPool(self._reactor, self._pool, self._checkpoint_while_due)
        self._checkpoint_running = d
        d.addErrback(self._checkpoint_failed)
        d.addBoth(self._checkpoint_done)

    def _checkpoint_while_due(self) -> None:
        passes = 0
        try:
            while True:
                self.checkpoint()
                passes += 1
                with self._checkpoint_lock:
                    # Writers that committed meanwhile left it to this loop;
                    # a few passes at most, as frames that readers still
                    # need stay in the log (a later write starts again).
                    frames = wal_frames(self._shm_path)
                    if (passes >= _CHECKPOINT_PASSES or not self._checkpoints
                            or frames is None or frames < CHECKPOINT_FRAMES):
                        self._checkpoint_pending = False
                        return
        except BaseException:
            with self._checkpoint_lock:
                self._checkpoint_pending = False
            raise

    def _checkpoint_failed(self, failure: Any) -> None:
        # The log stays as it is, every commit in it durable; a later
        # write starts another try.
        _log.failure("WAL checkpoint failed", failure)

    def _checkpoint_done(self, _: Any) -> None:
        self._checkpoint_running = None

    def checkpoint(self) -> tuple[int, int, int]:
        """
        In a pool thread: copy the committed pages of the WAL into the
        database file (SQLite's passive checkpoint, beside readers and
        writers); C{(busy, frames in the log, frames checkpointed)}.  When
        the log is long and writes went on meanwhile, what they added is
        checkpointed under the writers' mutex.
        """
        if not self._wal:
            return 0, 0, 0
        with self.engine.connect() as conn:
            driver = conn.connection.driver_connection
            result = tuple(driver.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone())
            # What was committed meanwhile is not in the result's counts:
            # while it is much, it is copied beside writers again, so that
            # writers wait for little.
            for _ in range(_CHECKPOINT_PASSES - 1):
                state = wal_state(self._shm_path)
                if state is None or state[0] - state[1] < CHECKPOINT_LEFT_FRAMES:
                    break
                result = tuple(driver.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone())
            state = wal_state(self._shm_path)
            if state is not None and state[1] < state[0] >= CHECKPOINT_FORCE_FRAMES:
                assert self._write_lock is not None
                with self._write_lock:
                    result = tuple(driver.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone())
        return result  # type: ignore[return-value]

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


#: What L{Database._run_grouped} gives for a prepared write left queued.
_QUEUED = object()


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

