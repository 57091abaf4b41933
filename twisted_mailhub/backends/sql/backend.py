"""
L{SQLBackend}: users and their mail trees in one SQL database.

Constructing the backend touches no database: it starts the thread pool and
queues the schema check (create or migrate, see
L{twisted_mailhub.backends.sql.migrate}) as the pool's first job.  Every
operation waits for that job; L{SQLBackend.ready} lets a server fail at
start-up, rather than at the first login, when the store is unusable.
"""

from __future__ import annotations

import time
from typing import Any, Hashable, Iterable

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_mailhub.backends.base import validate_name
from twisted_mailhub.backends.sql.engine import Database, is_memory_sqlite, parse_url
from twisted_mailhub.backends.sql.migrate import prepare
from twisted_mailhub.backends.sql.quota import limits_txn, set_limits_txn
from twisted_mailhub.backends.sql.reaper import ContentReaper
from twisted_mailhub.backends.sql.schema import mailboxes, subscriptions, users
from twisted_mailhub.backends.sql.store import SQLMailStore, clear_mailbox, create_mailbox
from twisted_mailhub.errors import StoreUnavailable
from twisted_mailhub.interfaces import ICheckableBackend, INotifier
from twisted_mailhub.interfaces import IAccessKeys, IQuotaLimits
from twisted_mailhub.interfaces import ISummarizer, ISummarizingBackend
from twisted_mailhub.errors import InvalidMailboxName, MailboxNotFound
from twisted_mailhub.model import AccessKeyReset, MailboxRemoved, new_access_key
from twisted_mailhub.notify import LocalNotifier
from twisted_mailhub.watch import (
    DEFAULT_POLL_INTERVAL,
    ChangeWatcher,
    IWatchableBackend,
    PollingTrigger,
)

_MAX_UIDVALIDITY = 2**32 - 1


class UserExists(ValueError):
    """A user of that name already has a password."""


class UnknownUser(LookupError):
    """No user of that name."""


@implementer(IQuotaLimits)
@implementer(IWatchableBackend, ICheckableBackend, IAccessKeys, ISummarizingBackend)
class SQLBackend:
    """
    A mail store in the database at C{url} (any SQLAlchemy URL, or the
    ``sqlite:PATH`` short form), with at most C{pool_size} concurrent
    database threads.
    """

    def __init__(self, url: str, *, notifier: INotifier | None = None, pool_size: int = 4,
                 reactor: Any = None) -> None:
        self.url = parse_url(url)
        # Local events pass through it; watch_changes() adds other processes'.
        self.notifier = ChangeWatcher(
            self._watched_mailbox, notifier if notifier is not None else LocalNotifier(),
            read_tree=self._watched_tree,
        )
        self.db = Database(self.url, pool_size=pool_size, reactor=reactor)
        self.reaper = ContentReaper(self.db, reactor)
        self._reactor = reactor
        self._identity = self.url.render_as_string(hide_password=True)
        self._ready: Failure | bool = False
        self._waiting: list[Deferred] = []
        self._closed = False
        # Computes each new message's summaries (use_summarizer).
        self.summarizer: ISummarizer | None = None
        self.db.start()
        self.db.write(prepare).addBoth(self._prepared)

    def __repr__(self) -> str:
        return f"<SQLBackend {self._identity}>"

    def use_summarizer(self, summarizer: ISummarizer | None) -> None:
        """
        L{ISummarizingBackend}: the summaries of each message are computed
        with the parse at APPEND, in a database thread, and written in the
        transaction that stores the message.
        """
        self.summarizer = summarizer

    def mailbox_key(self, mailbox_id: int) -> Hashable:
        """The notifier key of a mailbox row of this database."""
        return ("sql", self._identity, mailbox_id)

    # -- changes made by other processes ---------------------------------------

    def watch_changes(self, poll_interval: float = DEFAULT_POLL_INTERVAL) -> None:
        """
        Announce to this process's listeners what other processes write:
        PostgreSQL by LISTEN/NOTIFY, SQLite by polling C{PRAGMA
        data_version} every C{poll_interval} seconds while a mailbox has
        listeners, other databases by polling the mailbox rows.  An
        in-memory SQLite database has no other process.  Idempotent.
        """
        from twisted_mailhub.backends.sql import watch

        if self.notifier.started or self._closed or is_memory_sqlite(self.url):
            return
        if self.db.dialect == "postgresql":
            trigger: Any = watch.PostgresTrigger(self, self._reactor)
        elif self.db.dialect == "sqlite":
            probe = watch.SQLiteVersionProbe(self)
            trigger = PollingTrigger(probe, poll_interval, clock=self._reactor,
                                     on_stop=probe.close, on_changed_here=probe.changed_here,
                                     on_watch=probe.watched)
        else:
            rows = watch.RowProbe(self)
            trigger = PollingTrigger(rows, poll_interval, clock=self._reactor,
                                     on_changed_here=rows.changed_here, on_watch=rows.watched)
        self.notifier.start(trigger)

    async def _watched_tree(self, username: str) -> Any:
        from twisted_mailhub.backends.sql.watch import read_tree

        return await read_tree(self, username)

    def _watched_mailbox(self, key: Hashable) -> Any:
        from twisted_mailhub.backends.sql.watch import WatchedSQLMailbox

        return WatchedSQLMailbox(self, key[2])

    # -- start and stop --------------------------------------------------------

    def _prepared(self, result: Any) -> None:
        self._ready = result if isinstance(result, Failure) else True
        if self._ready is True:
            self.reaper.sweep()
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(None)

    async def ready(self) -> None:
        """
        Wait until the schema is created or upgraded; raise what prevented
        it (an unreachable server, L{SchemaTooNew}, ...).
        """
        if self._closed:
            raise StoreUnavailable("The mail store is closed")
        if self._ready is False:
            d: Deferred = Deferred()
            self._waiting.append(d)
            await d
        if isinstance(self._ready, Failure):
            self._ready.raiseException()

    async def close(self) -> None:
        """Wait for running work, close the connections, stop the threads."""
        if self._closed:
            return
        if self._ready is False:
            d: Deferred = Deferred()
            self._waiting.append(d)
            await d
        self._closed = True
        await self.notifier.stop()
        await self.reaper.stop()
        await self.db.stop()

    # -- IBackend --------------------------------------------------------------

    async def open_store(self, username: str) -> SQLMailStore:
        """The tree of C{username}, created (user and INBOX) on first use."""
        await self.ready()
        user_id = await self.db.write(_ensure_user_txn, username)
        return SQLMailStore(self, username, user_id)

    # -- users -----------------------------------------------------------------

    async def add_user(self, username: str, password_hash: str) -> None:
        """
        Add a user with the opaque C{password_hash}.  A user known only
        from an earlier L{open_store} gets the password; one that already
        has a password raises L{UserExists}.
        """
        await self.ready()
        await self.db.write(_add_user_txn, username, password_hash)

    async def set_password(self, username: str, password_hash: str) -> None:
        """Replace the password hash; L{UnknownUser} if there is no such user."""
        await self.ready()
        await self.db.write(_set_password_txn, username, password_hash)

    async def lookup_password(self, username: str) -> str | None:
        """The stored hash, or C{None} for an unknown user or one without password."""
        await self.ready()
        return await self.db.read_statements(_lookup_txn, username)

    async def delete_user(self, username: str) -> None:
        """Delete the user with all mailboxes and messages; L{UnknownUser} if absent."""
        await self.ready()
        removed = await self.db.write(_delete_user_txn, username)
        for mailbox_id in removed:
            self.notifier.publish(self.mailbox_key(mailbox_id), MailboxRemoved())

    async def quota_limits(self, username: str) -> dict[str, int | None]:
        """L{IQuotaLimits}: the limits of its own the account has (users table)."""
        await self.ready()
        return await self.db.read_statements(limits_txn, username)

    async def set_quota_limits(self, username: str, limits: dict[str, int | None],
                               reset: Iterable[str] = ()) -> None:
        """L{IQuotaLimits}: change the account's own limits; L{UnknownUser} if absent."""
        await self.ready()
        if not await self.db.write(set_limits_txn, username, dict(limits), list(reset)):
            raise UnknownUser(f"No such user: {username}")

    async def list_users(self) -> list[str]:
        """Every user name, sorted."""
        await self.ready()
        return await self.db.read(_list_users_txn)

    # -- IAccessKeys -------------------------------------------------------------

    async def access_key(self, username: str, mailbox: str, create: bool = False) -> bytes | None:
        """L{IAccessKeys}: the key of the mailbox, made first with C{create}."""
        await self.ready()
        if not _could_exist(username, mailbox):
            return None
        key = await self.db.read_statements(_access_key_txn, username, mailbox)
        if key is None and create:
            key = await self.db.write(_make_access_key_txn, username, mailbox)
        return key

    async def reset_access_key(self, username: str, mailbox: str,
                               origin: Hashable | None = None) -> bytes:
        """L{IAccessKeys}: a new key in place of the old."""
        await self.ready()
        if not _could_exist(username, mailbox):
            raise MailboxNotFound(f"Mailbox does not exist: {mailbox}")
        found = await self.db.write(_reset_access_key_txn, username, mailbox)
        if found is None:
            raise MailboxNotFound(f"Mailbox does not exist: {mailbox}")
        mailbox_id, key = found
        self.notifier.publish(self.mailbox_key(mailbox_id), AccessKeyReset(origin))
        return key

    async def remove_access_keys(self, username: str) -> None:
        """L{IAccessKeys}: forget every key of the user."""
        await self.ready()
        await self.db.write(_remove_access_keys_txn, username)

    # -- consistency -----------------------------------------------------------

    async def check(self, usernames: list[str] | None = None, repair: bool = False) -> Any:
        """L{ICheckableBackend}: see L{twisted_mailhub.backends.sql.check}."""
        from twisted_mailhub.backends.sql.check import check_backend

        return await check_backend(self, usernames, repair)


# -- transactions ----------------------------------------------------------------


def _could_exist(username: str, mailbox: str) -> bool:
    """
    Whether a user and mailbox of these names may be stored.  The names of
    the access key calls come from client URLs unchecked; PostgreSQL
    refuses a NUL in any text, where it should simply find nothing.
    """
    if "\x00" in username:
        return False
    try:
        validate_name(mailbox)
    except InvalidMailboxName:
        return False
    return True


def _key_row(username: str, mailbox: str):
    return (mailboxes.c.user_id == select(users.c.id).where(users.c.username == username)
            .scalar_subquery(),
            mailboxes.c.name == mailbox, mailboxes.c.selectable.is_(True))


def _access_key_txn(conn: Connection, username: str, mailbox: str) -> bytes | None:
    key = conn.execute(select(mailboxes.c.access_key).where(*_key_row(username, mailbox))).scalar()
    return bytes(key) if key is not None else None


def _make_access_key_txn(conn: Connection, username: str, mailbox: str) -> bytes | None:
    """
    A new key for the mailbox if it has none; the key it then has, or None
    without such a mailbox.
    """
    where = _key_row(username, mailbox) + (mailboxes.c.access_key.is_(None),)
    key = new_access_key()
    if conn.execute(update(mailboxes).where(*where).values(access_key=key)).rowcount:
        return key
    # Another writer made one first, or there is no such mailbox.
    return _access_key_txn(conn, username, mailbox)


def _reset_access_key_txn(conn: Connection, username: str,
                          mailbox: str) -> tuple[int, bytes] | None:
    """The mailbox's row id and the new key it was given; None without such a mailbox."""
    mailbox_id = conn.execute(select(mailboxes.c.id).where(*_key_row(username, mailbox))).scalar()
    if mailbox_id is None:
        return None
    key = new_access_key()
    conn.execute(update(mailboxes).where(mailboxes.c.id == mailbox_id).values(access_key=key))
    return mailbox_id, key


def _remove_access_keys_txn(conn: Connection, username: str) -> None:
    user_id = _user_id(conn, username)
    if user_id is not None:
        conn.execute(update(mailboxes).where(mailboxes.c.user_id == user_id)
                     .values(access_key=None))


def _user_id(conn: Connection, username: str, lock: bool = False) -> int | None:
    query = select(users.c.id).where(users.c.username == username)
    if lock:
        query = query.with_for_update()
    return conn.execute(query).scalar()


def _insert_user(conn: Connection, username: str, password_hash: str | None) -> int:
    # Seeded from the clock so that a user deleted and added again does not
    # get UIDVALIDITY values a client may still have cached.
    seed = int(time.time()) % _MAX_UIDVALIDITY + 1
    user_id = conn.execute(
        insert(users)
        .values(username=username, password_hash=password_hash, next_uidvalidity=seed)
    ).inserted_primary_key[0]
    create_mailbox(conn, user_id, "INBOX", frozenset(), True)
    return user_id


def _ensure_user_txn(conn: Connection, username: str) -> int:
    user_id = _user_id(conn, username)
    if user_id is None:
        user_id = _insert_user(conn, username, None)
    elif conn.execute(
        select(mailboxes.c.id).where(mailboxes.c.user_id == user_id, mailboxes.c.name == "INBOX")
    ).first() is None:
        create_mailbox(conn, user_id, "INBOX", frozenset(), True)
    return user_id


def _add_user_txn(conn: Connection, username: str, password_hash: str) -> None:
    row = conn.execute(
        select(users.c.id, users.c.password_hash).where(users.c.username == username)
        .with_for_update()
    ).first()
    if row is None:
        _insert_user(conn, username, password_hash)
    elif row.password_hash is not None:
        raise UserExists(f"User already exists: {username}")
    else:
        conn.execute(update(users).where(users.c.id == row.id).values(password_hash=password_hash))


def _set_password_txn(conn: Connection, username: str, password_hash: str) -> None:
    done = conn.execute(
        update(users).where(users.c.username == username).values(password_hash=password_hash)
    )
    if done.rowcount == 0:
        raise UnknownUser(f"No such user: {username}")


def _lookup_txn(conn: Connection, username: str) -> str | None:
    return conn.execute(
        select(users.c.password_hash).where(users.c.username == username)
    ).scalar()


def _delete_user_txn(conn: Connection, username: str) -> list[int]:
    user_id = _user_id(conn, username, lock=True)
    if user_id is None:
        raise UnknownUser(f"No such user: {username}")
    ids = conn.execute(select(mailboxes.c.id).where(mailboxes.c.user_id == user_id)).scalars().all()
    for mailbox_id in ids:
        clear_mailbox(conn, mailbox_id)
    conn.execute(delete(mailboxes).where(mailboxes.c.user_id == user_id))
    conn.execute(delete(subscriptions).where(subscriptions.c.user_id == user_id))
    conn.execute(delete(users).where(users.c.id == user_id))
    return list(ids)


def _list_users_txn(conn: Connection) -> list[str]:
    return list(conn.execute(select(users.c.username).order_by(users.c.username)).scalars())
