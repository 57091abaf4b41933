"""
L{SQLMailStore}: one user's tree as rows of C{mailboxes}.

The RFC 3501 rules (implicit superiors, DELETE with children, hierarchy
RENAME) come from L{BaseMailStore}; this module provides its core, each
operation one transaction.  CREATE and RENAME are each one transaction
that locks the user's row, checks the tree and changes it, so two sessions
or servers racing to one name get one success and one L{MailboxExists};
the unique (user, name) constraint backs that up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from zope.interface import implementer

from twisted_mailhub.backends.base import BaseMailStore, superiors, validate_name
from twisted_mailhub.backends.sql.mailbox import SQLMailbox, remove_messages, status_of_row
from twisted_mailhub.backends.sql.quota import usage_txn
from twisted_mailhub.backends.sql.schema import (
    COUNTER_COLUMNS,
    expunged,
    mailboxes,
    messages,
    subscriptions,
    users,
)
from twisted_mailhub.errors import (
    InvalidMailboxName,
    MailboxExists,
    MailboxNotFound,
    MailhubError,
    NotSelectable,
)
from twisted_mailhub.interfaces import IBulkStatusQuery, IMailStore, IStatusQuery, IUsageQuery
from twisted_mailhub.model import (
    MailboxInfo,
    MailboxRemoved,
    MailboxStatus,
    MessagesExpunged,
    new_object_id,
)

if TYPE_CHECKING:
    from twisted_mailhub.backends.sql.backend import SQLBackend

_MAX_UIDVALIDITY = 2**32 - 1


@implementer(IMailStore, IStatusQuery, IBulkStatusQuery, IUsageQuery)
class SQLMailStore(BaseMailStore):
    """The mailboxes and subscriptions of one C{users} row."""

    def __init__(self, backend: "SQLBackend", username: str, user_id: int) -> None:
        super().__init__(username, backend.notifier)
        self.backend = backend
        self.user_id = user_id

    def __repr__(self) -> str:
        return f"<SQLMailStore {self.username}>"

    async def get_mailbox(self, name: str, read_only: bool = False) -> SQLMailbox:
        # One indexed lookup, rather than the generic listing of the tree.
        name = validate_name(name, self.delimiter)
        row = await self.backend.db.read_statements(_find_txn, self.user_id, name)
        return _selectable(row, name, lambda: SQLMailbox(
            self.backend, row.id, row.name, row.uidvalidity, read_only))

    async def mailbox_status(self, name: str) -> MailboxStatus:
        """L{IStatusQuery}: the counters of the mailbox row, in one transaction."""
        name = validate_name(name, self.delimiter)
        row = await self.backend.db.read_statements(_find_txn, self.user_id, name)
        return _selectable(row, name, lambda: status_of_row(row))

    async def mailbox_statuses(self, names: Iterable[str]) -> dict[str, Any]:
        """L{IBulkStatusQuery}: the counters of several mailbox rows, in one statement."""
        outcomes: dict[str, Any] = {}
        valid: dict[str, str] = {}
        for name in names:
            try:
                valid[name] = validate_name(name, self.delimiter)
            except MailhubError as e:
                outcomes[name] = e
        rows = await self.backend.db.read_statements(_find_many_txn, self.user_id,
                                                     sorted(set(valid.values())))
        for asked, name in valid.items():
            row = rows.get(name)
            try:
                outcomes[asked] = _selectable(row, name, lambda: status_of_row(row))
            except MailhubError as e:
                outcomes[asked] = e
        return outcomes

    async def usage(self) -> tuple[int, int]:
        """L{IUsageQuery}: the sums of the counters of the user's mailbox rows."""
        return await self.backend.db.read_statements(usage_txn, self.user_id)

    def _publish_removed(self, mailbox_ids: list[int]) -> None:
        for mailbox_id in mailbox_ids:
            self.notifier.publish(self.backend.mailbox_key(mailbox_id), MailboxRemoved())

    async def _list(self) -> list[MailboxInfo]:
        return await self.backend.db.read_statements(_list_txn, self.user_id)

    async def _open(self, name: str, read_only: bool) -> SQLMailbox:
        row = await self.backend.db.read_statements(_find_txn, self.user_id, name)
        if row is None or not row.selectable:
            raise MailboxNotFound(f"Mailbox does not exist: {name}")
        return SQLMailbox(self.backend, row.id, row.name, row.uidvalidity, read_only)

    async def _create(self, name: str, special_use: frozenset[str], selectable: bool) -> None:
        try:
            await self.backend.db.write(create_mailbox, self.user_id, name, special_use, selectable)
        except IntegrityError:
            raise MailboxExists(f"Mailbox already exists: {name}") from None

    async def _delete(self, name: str) -> None:
        removed = await self.backend.db.write(_delete_txn, self.user_id, name, False)
        self._publish_removed([removed])

    async def _make_unselectable(self, name: str) -> None:
        removed = await self.backend.db.write(_delete_txn, self.user_id, name, True)
        self._publish_removed([removed])

    async def _rename(self, pairs: list[tuple[str, str]]) -> None:
        try:
            moved = await self.backend.db.write(_rename_txn, self.user_id, pairs)
        except IntegrityError:
            raise MailboxExists("A mailbox of the new name already exists") from None
        self._publish_removed(moved)

    async def _create_tree(self, name: str, special_use: frozenset[str]) -> None:
        """CREATE of C{name} and its missing superiors as one transaction."""
        await self._tree_write(_create_tree_txn, self.user_id, name, special_use, self.delimiter)

    async def _rename_tree(self, old: str, new: str) -> None:
        """RENAME (checks, superiors, inferiors or INBOX's messages) as one transaction."""
        removed, inbox = await self._tree_write(
            _rename_tree_txn, self.user_id, old, new, self.delimiter)
        self._publish_removed(removed)
        if inbox is not None and inbox[1]:
            # INBOX's message rows moved to the new mailbox (no copying).
            inbox_id, uids, modseq = inbox
            self.notifier.publish(
                self.backend.mailbox_key(inbox_id), MessagesExpunged(tuple(uids), modseq)
            )

    async def _tree_write(self, fn, *args):
        # Each transaction first locks the user's row, so changes of one
        # tree are serialised in the database and each sees the others'
        # results.  The unique (user, name) constraint backs that up
        # against writers that do not: a violation is retried, when the
        # check then answers cleanly.
        for attempt in range(3):
            try:
                return await self.backend.db.write(fn, *args)
            except IntegrityError:
                if attempt == 2:
                    raise MailboxExists("A mailbox of that name already exists") from None
        raise AssertionError("unreachable")

    async def _subscriptions(self) -> set[str]:
        return await self.backend.db.read_statements(_subscriptions_txn, self.user_id)

    async def _subscribe(self, name: str) -> None:
        await self.backend.db.write(_subscribe_txn, self.user_id, name, True)

    async def _unsubscribe(self, name: str) -> None:
        await self.backend.db.write(_subscribe_txn, self.user_id, name, False)


# -- transactions ----------------------------------------------------------------


def _list_txn(conn: Connection, user_id: int) -> list[MailboxInfo]:
    rows = conn.execute(
        select(mailboxes.c.name, mailboxes.c.selectable, mailboxes.c.special_use)
        .where(mailboxes.c.user_id == user_id)
    ).all()
    return [
        MailboxInfo(row.name, bool(row.selectable), frozenset(row.special_use.split()))
        for row in rows
    ]


def _selectable(row, name: str, make):
    if row is None:
        raise MailboxNotFound(f"Mailbox does not exist: {name}")
    if not row.selectable:
        raise NotSelectable(f"Mailbox is not selectable: {name}")
    return make()


# Built once: STATUS and SELECT run it for every command, and building the
# statement anew cost as much as running it.
_FIND = select(mailboxes).where(mailboxes.c.user_id == bindparam("user_id"),
                                mailboxes.c.name == bindparam("name"))


def _find_txn(conn: Connection, user_id: int, name: str):
    return conn.execute(_FIND, {"user_id": user_id, "name": name}).first()


_FIND_MANY = select(mailboxes).where(mailboxes.c.user_id == bindparam("user_id"),
                                     mailboxes.c.name.in_(bindparam("names", expanding=True)))


def _find_many_txn(conn: Connection, user_id: int, names: list[str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for start in range(0, len(names), 500):
        params = {"user_id": user_id, "names": names[start:start + 500]}
        found.update((row.name, row) for row in conn.execute(_FIND_MANY, params))
    return found


def _find_for_update(conn: Connection, user_id: int, name: str):
    row = conn.execute(
        select(mailboxes)
        .where(mailboxes.c.user_id == user_id, mailboxes.c.name == name)
        .with_for_update()
    ).first()
    if row is None:
        raise MailboxNotFound(f"Mailbox does not exist: {name}")
    return row


def new_uidvalidity(conn: Connection, user_id: int) -> int:
    """Draw the next UIDVALIDITY of a user (never handed out twice)."""
    current = conn.execute(
        select(users.c.next_uidvalidity).where(users.c.id == user_id).with_for_update()
    ).scalar_one()
    following = current % _MAX_UIDVALIDITY + 1
    conn.execute(update(users).where(users.c.id == user_id).values(next_uidvalidity=following))
    return current


def create_mailbox(conn: Connection, user_id: int, name: str, special_use: frozenset[str],
                   selectable: bool, **counters: int) -> int:
    """Insert one C{mailboxes} row with a fresh UIDVALIDITY; return its id."""
    return conn.execute(
        insert(mailboxes).values(
            user_id=user_id,
            name=name,
            selectable=selectable,
            special_use=" ".join(sorted(special_use)),
            uidvalidity=new_uidvalidity(conn, user_id),
            object_id=new_object_id(),
            **counters,
        )
    ).inserted_primary_key[0]


def clear_mailbox(conn: Connection, mailbox_id: int) -> None:
    """Delete a mailbox's messages (releasing content) and expunge records."""
    doomed = conn.execute(
        select(messages.c.id, messages.c.content_id).where(messages.c.mailbox_id == mailbox_id)
    ).all()
    remove_messages(conn, [row.id for row in doomed], [row.content_id for row in doomed])
    conn.execute(delete(expunged).where(expunged.c.mailbox_id == mailbox_id))
    conn.execute(
        update(mailboxes).where(mailboxes.c.id == mailbox_id)
        .values(**dict.fromkeys(COUNTER_COLUMNS, 0))
    )


def _delete_txn(conn: Connection, user_id: int, name: str, keep_node: bool) -> int:
    row = _find_for_update(conn, user_id, name)
    clear_mailbox(conn, row.id)
    conn.execute(delete(mailboxes).where(mailboxes.c.id == row.id))
    if keep_node:
        # A fresh row (new key and UIDVALIDITY) stands for the hierarchy
        # node, as if the mailbox had been deleted and the name reserved.
        create_mailbox(conn, user_id, name, frozenset(), False)
    return row.id


def _rename_txn(conn: Connection, user_id: int, pairs: list[tuple[str, str]]) -> list[int]:
    moved = []
    for old, new in pairs:
        row = _find_for_update(conn, user_id, old)
        conn.execute(update(mailboxes).where(mailboxes.c.id == row.id).values(name=new))
        moved.append(row.id)
    return moved


def _rename_inbox_txn(conn: Connection, user_id: int, new: str) -> tuple[int, list[int], int]:
    inbox = _find_for_update(conn, user_id, "INBOX")
    # The new mailbox has a new UIDVALIDITY, so the messages keep their UIDs.
    # The messages move with their counts.
    new_id = create_mailbox(
        conn, user_id, new, frozenset(), True,
        uidnext=inbox.uidnext,
        highestmodseq=inbox.highestmodseq,
        recent_floor=inbox.recent_floor,
        **{name: inbox._mapping[name] for name in COUNTER_COLUMNS},
    )
    uids = list(conn.execute(
        select(messages.c.uid).where(messages.c.mailbox_id == inbox.id).order_by(messages.c.uid)
    ).scalars())
    if not uids:
        return inbox.id, [], inbox.highestmodseq
    modseq = inbox.highestmodseq + 1
    conn.execute(update(messages).where(messages.c.mailbox_id == inbox.id).values(mailbox_id=new_id))
    conn.execute(
        insert(expunged), [{"mailbox_id": inbox.id, "uid": uid, "modseq": modseq} for uid in uids]
    )
    conn.execute(
        update(mailboxes).where(mailboxes.c.id == inbox.id)
        .values(highestmodseq=modseq, **dict.fromkeys(COUNTER_COLUMNS, 0))
    )
    return inbox.id, uids, modseq


def _lock_user(conn: Connection, user_id: int) -> None:
    conn.execute(select(users.c.id).where(users.c.id == user_id).with_for_update()).one()


def _names(conn: Connection, user_id: int) -> set[str]:
    return set(conn.execute(
        select(mailboxes.c.name).where(mailboxes.c.user_id == user_id)).scalars())


def _create_tree_txn(conn: Connection, user_id: int, name: str, special_use: frozenset[str],
                     delimiter: str) -> None:
    _lock_user(conn, user_id)
    existing = _names(conn, user_id)
    if name in existing:
        raise MailboxExists(f"Mailbox already exists: {name}")
    for parent in superiors(name, delimiter):
        if parent not in existing:
            create_mailbox(conn, user_id, parent, frozenset(), True)
    create_mailbox(conn, user_id, name, special_use, True)


def _rename_tree_txn(conn: Connection, user_id: int, old: str, new: str, delimiter: str,
                     ) -> tuple[list[int], tuple[int, list[int], int] | None]:
    """
    RFC 3501 section 6.3.5 in one transaction; returns the ids of the rows
    renamed away, and for a RENAME of INBOX its id, the UIDs moved out and
    the MODSEQ of their expunge.
    """
    _lock_user(conn, user_id)
    existing = _names(conn, user_id)
    if old not in existing:
        raise MailboxNotFound(f"Mailbox does not exist: {old}")
    if new in existing:
        raise MailboxExists(f"Mailbox already exists: {new}")
    if new.startswith(old + delimiter):
        raise InvalidMailboxName("Cannot rename a mailbox into its own inferior")
    for parent in superiors(new, delimiter):
        if parent not in existing:
            create_mailbox(conn, user_id, parent, frozenset(), True)
    if old == "INBOX":
        return [], _rename_inbox_txn(conn, user_id, new)
    prefix = old + delimiter
    pairs = [(old, new)] + [
        (name, new + name[len(old):]) for name in sorted(existing) if name.startswith(prefix)
    ]
    return _rename_txn(conn, user_id, pairs), None


def _subscriptions_txn(conn: Connection, user_id: int) -> set[str]:
    return set(conn.execute(
        select(subscriptions.c.name).where(subscriptions.c.user_id == user_id)
    ).scalars())


def _subscribe_txn(conn: Connection, user_id: int, name: str, subscribe: bool) -> None:
    where = (subscriptions.c.user_id == user_id, subscriptions.c.name == name)
    present = conn.execute(select(subscriptions.c.name).where(*where)).first() is not None
    if subscribe and not present:
        conn.execute(insert(subscriptions).values(user_id=user_id, name=name))
    elif not subscribe and present:
        conn.execute(delete(subscriptions).where(*where))
