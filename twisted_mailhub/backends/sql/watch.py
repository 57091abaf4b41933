"""
Noticing what other processes wrote to the SQL store (see
L{twisted_mailhub.watch}).

  - SQLite: L{SQLiteVersionProbe} asks C{PRAGMA data_version} on a
    connection of its own, which changes whenever any other connection (of
    any process) commits; only then are the C{mailboxes} rows of the watched
    mailboxes read to see which changed.  Polled by a L{PollingTrigger}.
  - PostgreSQL: L{PostgresTrigger}.  After each commit this process sends
    C{NOTIFY} on the channel L{CHANNEL} with the mailbox id as payload; a
    connection of its own, in a thread of its own, C{LISTEN}s and tells the
    watcher which mailbox changed.  It reconnects when the connection drops
    and then checks every watched mailbox, since notifications sent in
    between are lost.
    A change whose C{NOTIFY} never left (its process died right after
    the commit) is found by a slow sweep of every watched mailbox, every
    L{SWEEP_INTERVAL} seconds.
  - Other databases: the C{mailboxes} rows are polled (L{RowProbe}).

An access key replaced by RESETKEY changes no status: L{RowProbe} (so
SQLite too) sees it in the row, and PostgreSQL sends C{ID TOKEN keyreset};
either way the watcher announces an L{AccessKeyReset}.

A user's tree (its L{TreeKey}: mailboxes created, deleted, renamed,
subscriptions) is read as a L{TreeSnapshot} (L{read_tree}, the row id being
the identity a rename keeps) when it may have changed: on SQLite whenever
C{data_version} moved, on PostgreSQL when another process's C{NOTIFY} names
the user (payload C{tree TOKEN USERNAME}), at the sweeps and after a
reconnection.  Other databases do not watch trees.
"""

from __future__ import annotations

import sqlite3
import threading
import uuid
from typing import TYPE_CHECKING, Any, Hashable

from sqlalchemy import select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import NoResultFound
from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import implementer

from twisted_mailhub.backends.base import BaseMailStore, holding_tree
from twisted_mailhub.backends.sql.mailbox import SQLMailbox
from twisted_mailhub.backends.sql.schema import mailboxes, subscriptions, users
from twisted_mailhub.errors import MailboxNotFound
from twisted_mailhub.model import (
    AccessKeyReset,
    MailboxEvent,
    MailboxRemoved,
    MailboxStatus,
    TreeKey,
)
from twisted_mailhub.trees import TreeSnapshot
from twisted_mailhub.watch import ChangeWatcher, IChangeTrigger

if TYPE_CHECKING:
    from twisted_mailhub.backends.sql.backend import SQLBackend

log = Logger()

#: The NOTIFY channel (channels are per database already).
CHANNEL = "mailhub_changes"

#: Seconds the listening thread waits for notifications between checks
#: of whether it should stop.
LISTEN_WAKEUP = 0.2

#: Seconds L{PostgresTrigger.stop} waits for the listening thread.
STOP_TIMEOUT = 2.0

#: Seconds between two sweeps of the watched mailboxes on PostgreSQL, the
#: bound on how late a change whose notification was lost is announced.
SWEEP_INTERVAL = 30.0

_Row = tuple[Any, ...] | None


class WatchedSQLMailbox(SQLMailbox):
    """The read side of a mailbox row for the watcher; deletion is L{MailboxNotFound}."""

    def __init__(self, backend: "SQLBackend", mailbox_id: int) -> None:
        super().__init__(backend, mailbox_id, "", 0, True)

    async def status(self) -> MailboxStatus:
        try:
            return await super().status()
        except NoResultFound:
            raise MailboxNotFound("Mailbox no longer exists") from None


async def read_tree(backend: "SQLBackend", username: str) -> TreeSnapshot:
    """The L{TreeSnapshot} of C{username}'s tree (empty for no such user)."""
    async with holding_tree(backend.notifier, username):
        return await backend.db.read(_tree_txn, username)


def _tree_txn(conn: Connection, username: str) -> TreeSnapshot:
    user_id = select(users.c.id).where(users.c.username == username).scalar_subquery()
    c = mailboxes.c
    rows = conn.execute(select(c.id, c.name, c.selectable).where(c.user_id == user_id)).all()
    names = conn.execute(
        select(subscriptions.c.name).where(subscriptions.c.user_id == user_id)).scalars()
    return TreeSnapshot({row.name: (row.id, bool(row.selectable)) for row in rows},
                        frozenset(names), BaseMailStore.delimiter)


def _rows_txn(conn: Connection, ids: list[int]) -> dict[int, _Row]:
    c = mailboxes.c
    found = conn.execute(
        select(c.id, c.name, c.selectable, c.uidvalidity, c.uidnext, c.highestmodseq,
               c.access_key)
        .where(c.id.in_(ids))
    ).all()
    return {row[0]: tuple(row[1:]) for row in found}


#: Where the access key is in a row of L{_rows_txn}.
_KEY = 5


def _access_key_txn(conn: Connection, mailbox_id: int) -> bytes | None:
    return conn.execute(select(mailboxes.c.access_key).where(mailboxes.c.id == mailbox_id)
                        ).scalar()


class RowProbe:
    """
    Which watched mailboxes changed, from their C{mailboxes} rows (UIDNEXT,
    HIGHESTMODSEQ, name): the check of L{PollingTrigger} for any database.
    A renamed or deleted mailbox is reported to the watcher as removed, a
    new access key (RESETKEY, or the first one GENURLAUTH made) is
    announced as an L{AccessKeyReset}, unless this process reset it
    (L{changed_here}).
    """

    def __init__(self, backend: "SQLBackend") -> None:
        self.backend = backend
        self._rows: dict[Hashable, _Row] = {}
        # The access key each watched mailbox had when last read, from the
        # moment it is watched (a RESETKEY right after a SELECT is told).
        self._access: dict[Hashable, bytes | None] = {}
        # Keys whose access key this process reset since the last read:
        # their event was published here.
        self._own_resets: set[Hashable] = set()

    def watched(self, key: Hashable) -> None:
        """C{key} is watched from now on (L{PollingTrigger}'s C{on_watch})."""
        if isinstance(key, TreeKey):
            return
        d = self.backend.db.read(_access_key_txn, key[2])
        # A poll that read the row meanwhile read it later.
        d.addCallback(lambda access: self._access.setdefault(key, access))
        d.addErrback(lambda f: log.failure("Reading an access key failed", f))

    def changed_here(self, key: Hashable, event: MailboxEvent) -> None:
        """L{IChangeTrigger.changed_here}, through L{PollingTrigger}."""
        if isinstance(event, AccessKeyReset):
            self._own_resets.add(key)

    async def __call__(self, keys: list[Hashable]) -> list[Hashable]:
        # Trees are not watched through the rows (see the module docstring).
        ids = {key[2]: key for key in keys if not isinstance(key, TreeKey)}
        # A reset this process made is in what this read returns: its own
        # event was published before this probe was.
        own, self._own_resets = self._own_resets, set()
        rows = await self.backend.db.read_statements(_rows_txn, sorted(ids))
        changed = []
        previous, self._rows = self._rows, {}
        access, self._access = self._access, {}
        for mailbox_id, key in ids.items():
            row = rows.get(mailbox_id)
            self._rows[key] = row
            if row is not None:
                if (key in access and row[_KEY] is not None and row[_KEY] != access[key]
                        and key not in own):
                    # A first key (GENURLAUTH) looks the same when it and
                    # a RESETKEY fall between two reads: both are told.
                    self.backend.notifier.announce(key, AccessKeyReset())
                self._access[key] = row[_KEY]
            if key not in previous:
                # Newly watched: what changed since the watcher's own first
                # read must not fall between it and this one.
                changed.append(key)
                continue
            old = previous[key]
            if old is not None and (row is None or row[:3] != old[:3]):
                self.backend.notifier.removed(key)
                continue
            if (row and row[:_KEY]) != (old and old[:_KEY]):
                changed.append(key)
        return changed


class SQLiteVersionProbe(RowProbe):
    """
    L{RowProbe}, reading the rows only when C{PRAGMA data_version} of a
    connection kept for this says another connection committed.
    """

    def __init__(self, backend: "SQLBackend") -> None:
        super().__init__(backend)
        self._connection: sqlite3.Connection | None = None
        self._version: int | None = None
        self._trees: set[Hashable] = set()

    def _data_version(self) -> int:
        # In a pool thread; one probe runs at a time.
        if self._connection is None:
            self._connection = sqlite3.connect(
                self.backend.url.database, timeout=5, isolation_level=None,
                check_same_thread=False,
            )
        return self._connection.execute("PRAGMA data_version").fetchone()[0]

    async def __call__(self, keys: list[Hashable]) -> list[Hashable]:
        version = await self.backend.db.call(self._data_version)
        trees = [key for key in keys if isinstance(key, TreeKey)]
        if (version == self._version and all(key in self._rows for key in keys
                                              if not isinstance(key, TreeKey))
                and all(key in self._trees for key in trees)):
            return []
        self._version = version
        # Another connection committed: any watched tree may have changed
        # (one read of its rows each; a newly watched tree is read once,
        # like a newly watched mailbox).
        self._trees = set(trees)
        return await super().__call__(keys) + trees

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await self.backend.db.call(connection.close)


@implementer(IChangeTrigger)
class PostgresTrigger:
    """LISTEN/NOTIFY between the processes sharing one PostgreSQL database."""

    def __init__(self, backend: "SQLBackend", reactor: Any = None) -> None:
        if reactor is None:
            from twisted.internet import reactor
        self.backend = backend
        self._reactor = reactor
        # Our own notifications come back to us too; the token tells them apart.
        self._token = uuid.uuid4().hex[:12]
        self._watcher: ChangeWatcher | None = None
        self._keys: dict[int, Hashable] = {}
        self._trees: dict[str, TreeKey] = {}
        self._outgoing: dict[int, bool] = {}
        # The users whose trees changed here, to be named in a NOTIFY.
        self._outgoing_trees: set[str] = set()
        # The mailboxes whose access key was reset here (RESETKEY).
        self._outgoing_resets: set[int] = set()
        self._sending: Deferred | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._thread_done: Deferred | None = None
        self._sweep: LoopingCall | None = None
        self.connections = 0

    # -- IChangeTrigger ------------------------------------------------------

    def start(self, watcher: ChangeWatcher) -> None:
        self._watcher = watcher

    def watch(self, key: Hashable) -> None:
        if isinstance(key, TreeKey):
            self._trees[key.username] = key
        else:
            self._keys[key[2]] = key
        if self._thread is None and self._watcher is not None:
            self._thread_done = Deferred()
            self._thread = threading.Thread(
                target=self._listen, name="mailhub-pg-listen", daemon=True
            )
            self._thread.start()
        if self._sweep is None and self._watcher is not None:
            self._sweep = LoopingCall(self._swept)
            self._sweep.clock = self._reactor
            self._sweep.start(SWEEP_INTERVAL, now=False)

    def unwatch(self, key: Hashable) -> None:
        # The listening connection stays: it is one per process.
        if isinstance(key, TreeKey):
            self._trees.pop(key.username, None)
        else:
            self._keys.pop(key[2], None)
        if not self._keys and not self._trees:
            self._stop_sweep()

    def changed_here(self, key: Hashable, event: MailboxEvent) -> None:
        if self._watcher is None:
            return
        if isinstance(key, TreeKey):
            self._outgoing_trees.add(key.username)
        elif isinstance(event, AccessKeyReset):
            self._outgoing_resets.add(key[2])
        else:
            removed = isinstance(event, MailboxRemoved)
            self._outgoing[key[2]] = self._outgoing.get(key[2], False) or removed
        if self._sending is None:
            self._send()

    async def stop(self) -> None:
        self._watcher = None
        self._stopping.set()
        self._stop_sweep()
        if self._thread_done is not None:
            # The thread sees the flag within LISTEN_WAKEUP, unless it is
            # still connecting to a server that does not answer; it is a
            # daemon thread and may be left to finish on its own.
            waiting, thread = self._thread_done, self._thread
            waiting.addTimeout(STOP_TIMEOUT, self._reactor)
            try:
                await waiting
            except defer.TimeoutError:
                log.warn("The change listener did not stop in time; leaving it")
            else:
                if thread is not None:
                    # It has said its last word; wait (in a pool thread)
                    # until it has really ended.
                    await self.backend.db.call(thread.join, STOP_TIMEOUT)
        while self._sending is not None:
            await self._sending

    # -- the sweep -----------------------------------------------------------

    def _swept(self) -> None:
        if self._watcher is not None and (self._keys or self._trees):
            self._watcher.check()

    def _stop_sweep(self) -> None:
        sweep, self._sweep = self._sweep, None
        if sweep is not None and sweep.running:
            sweep.stop()

    # -- sending -------------------------------------------------------------

    def _send(self) -> None:
        outgoing, self._outgoing = self._outgoing, {}
        trees, self._outgoing_trees = self._outgoing_trees, set()
        resets, self._outgoing_resets = self._outgoing_resets, set()
        payloads = [
            f"{mailbox_id} {self._token}" + (" removed" if removed else "")
            for mailbox_id, removed in sorted(outgoing.items())
        ] + [f"{mailbox_id} {self._token} keyreset" for mailbox_id in sorted(resets)] + [
            f"tree {self._token} {username}" for username in sorted(trees)]
        d = self.backend.db.write(_notify_txn, payloads)
        self._sending = d
        d.addErrback(lambda f: log.failure("Sending change notifications failed", f))

        def sent(_: Any) -> None:
            self._sending = None
            if ((self._outgoing or self._outgoing_trees or self._outgoing_resets)
                    and self._watcher is not None):
                self._send()

        d.addCallback(sent)

    # -- receiving (the listening thread) -------------------------------------

    def _listen(self) -> None:
        import psycopg

        conninfo = self.backend.url.set(drivername="postgresql").render_as_string(
            hide_password=False)
        delay = 0.1
        try:
            while not self._stopping.is_set():
                try:
                    with psycopg.connect(
                        conninfo, autocommit=True, connect_timeout=10,
                        application_name="mailhub-listen",
                        keepalives=1, keepalives_idle=30, keepalives_interval=10,
                        keepalives_count=3,
                    ) as conn:
                        conn.execute(f"LISTEN {CHANNEL}")
                        delay = 0.1
                        self._reactor.callFromThread(self._connected)
                        while not self._stopping.is_set():
                            for notify in conn.notifies(timeout=LISTEN_WAKEUP):
                                self._reactor.callFromThread(self._notified, notify.payload)
                except Exception as e:  # noqa: BLE001 - any failure: reconnect
                    if self._stopping.is_set():
                        break
                    self._reactor.callFromThread(
                        log.warn, "Change notifications interrupted ({error}); reconnecting",
                        error=type(e).__name__)
                    self._stopping.wait(delay)
                    delay = min(delay * 2, 5.0)
        finally:
            self._reactor.callFromThread(self._listener_stopped)

    # -- on the reactor thread -----------------------------------------------

    def _listener_stopped(self) -> None:
        done, self._thread_done = self._thread_done, None
        if done is not None and not done.called:
            done.callback(None)

    def _connected(self) -> None:
        self.connections += 1
        if self._watcher is not None:
            # What was sent before we listened (or while we were away) is
            # lost: look at everything.
            self._watcher.check()

    def _notified(self, payload: str) -> None:
        watcher = self._watcher
        if watcher is None:
            return
        if payload.startswith("tree "):
            # "tree TOKEN USERNAME"; a user name may hold spaces.
            _, token, username = (payload.split(" ", 2) + ["", ""])[:3]
            tree = self._trees.get(username)
            if token != self._token and tree is not None:
                watcher.check(tree)
            return
        parts = payload.split()
        try:
            mailbox_id, token = int(parts[0]), parts[1]
        except (IndexError, ValueError):
            return
        if token == self._token:
            return
        key = self._keys.get(mailbox_id)
        if key is None:
            return
        if parts[2:] == ["removed"]:
            watcher.removed(key)
        elif parts[2:] == ["keyreset"]:
            watcher.announce(key, AccessKeyReset())
        else:
            watcher.check(key)


def _notify_txn(conn: Connection, payloads: list[str]) -> None:
    for payload in payloads:
        conn.execute(text("SELECT pg_notify(:channel, :payload)"),
                     {"channel": CHANNEL, "payload": payload})
