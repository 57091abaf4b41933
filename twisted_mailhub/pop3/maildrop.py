"""
The POP3 view of a user's INBOX: a snapshot taken at login, the deletion
marks of one session, and the maildrop lock.

RFC 1939 numbers messages from 1 and requires the numbers to stay valid for
the whole session (section 3), while IMAP sessions may add and expunge
messages at any time.  L{Maildrop} therefore keeps the (UID, size) list it
read at login; a message another client expunged since then is still
listed, but reading it fails with L{MessageExpunged}.  Deletions are only
marks until L{Maildrop.commit} runs in the UPDATE state (section 6), which
flags exactly the marked UIDs ``\\Deleted`` and expunges exactly those.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Hashable

from twisted_mailhub import index
from twisted_mailhub.interfaces import IMailbox, IMessage

DELETED = "\\Deleted"
SEEN = "\\Seen"


@dataclass(frozen=True, slots=True)
class Entry:
    """One message of the snapshot."""

    uid: int
    size: int


class NoSuchMessage(LookupError):
    """The message number is not in the snapshot."""


class MarkedDeleted(LookupError):
    """The message is marked deleted in this session."""


def unique_id(uidvalidity: int, uid: int) -> str:
    """
    The UIDL value of a message: ``<uidvalidity>.<uid>``.

    Both numbers are stable across sessions and restarts (the store's
    guarantee), and a UID is never reused within one UIDVALIDITY, so the
    pair never names two different messages.  It uses only digits and
    ``.``, within RFC 1939 section 7's 0x21-0x7E and 70 characters.
    """
    return f"{uidvalidity}.{uid}"


class Maildrop:
    """The messages one POP3 session works on, numbered from 1."""

    def __init__(self, mailbox: IMailbox, entries: list[Entry]) -> None:
        self.mailbox = mailbox
        self.entries = entries
        self.deleted: set[int] = set()
        self.retrieved: set[int] = set()

    @classmethod
    async def snapshot(cls, mailbox: IMailbox) -> "Maildrop":
        """
        Read the UIDs and sizes of C{mailbox} as they are now, from this
        process's index of it (kept warm for the next login) when it has one.
        """
        view, release = index.wrap(mailbox)
        try:
            if isinstance(view, index.IndexedMailbox):
                await view.validate()
                await view.index.load_all()
            uids = await view.uids()
            metas = await view.metadata(uids) if uids else []
        finally:
            release()
        return cls(mailbox, [Entry(m.uid, m.size) for m in metas])

    # -- reading ---------------------------------------------------------------

    def entry(self, number: int, *, allow_deleted: bool = False) -> Entry:
        """
        The entry for 1-based C{number}; L{NoSuchMessage} when out of
        range, L{MarkedDeleted} when marked (unless C{allow_deleted}).
        """
        if not 1 <= number <= len(self.entries):
            raise NoSuchMessage(number)
        if number in self.deleted and not allow_deleted:
            raise MarkedDeleted(number)
        return self.entries[number - 1]

    def listing(self) -> list[tuple[int, Entry]]:
        """C{(number, entry)} of every message not marked deleted."""
        return [(n, e) for n, e in enumerate(self.entries, 1) if n not in self.deleted]

    def stat(self) -> tuple[int, int]:
        """Count and total size of the messages not marked deleted."""
        live = self.listing()
        return len(live), sum(e.size for _, e in live)

    def unique_id(self, entry: Entry) -> str:
        """The UIDL value of C{entry}."""
        return unique_id(self.mailbox.uidvalidity, entry.uid)

    async def open(self, number: int) -> IMessage:
        """
        The message numbered C{number}, for RETR and TOP.  Raises
        L{NoSuchMessage}, L{MarkedDeleted}, or L{MessageExpunged} when
        another client removed it since the snapshot.
        """
        return await self.mailbox.open_message(self.entry(number).uid)

    # -- marks -------------------------------------------------------------------

    def delete(self, number: int) -> None:
        """Mark C{number} deleted (L{NoSuchMessage}, L{MarkedDeleted})."""
        self.entry(number)
        self.deleted.add(number)

    def reset(self) -> None:
        """RSET: unmark every message."""
        self.deleted.clear()

    def note_retrieved(self, number: int) -> None:
        """Remember that RETR sent C{number} in full."""
        self.retrieved.add(number)

    async def commit(self, mark_seen: bool, origin: Hashable | None = None) -> list[int]:
        """
        The UPDATE state: add ``\\Seen`` to retrieved messages if
        C{mark_seen}, then flag the marked messages ``\\Deleted`` and expunge
        them, by UID and only them.  Returns the UIDs actually expunged
        (those another client removed meanwhile are simply absent).
        """
        if mark_seen:
            seen = sorted(self.entries[n - 1].uid for n in self.retrieved - self.deleted)
            if seen:
                await self.mailbox.store_flags(seen, "add", {SEEN}, origin=origin)
        doomed = sorted(self.entries[n - 1].uid for n in self.deleted)
        if not doomed:
            return []
        await self.mailbox.store_flags(doomed, "add", {DELETED}, origin=origin)
        return await self.mailbox.expunge(doomed, origin=origin)


class MaildropLocks:
    """
    The RFC 1939 section 8 maildrop lock: one POP3 session per maildrop.

    Only POP3 sessions take it; IMAP sessions neither take nor honour it,
    since they tolerate concurrent changes.  The lock lives in this process:
    several server processes over one SQL store do not see each other's.
    """

    def __init__(self) -> None:
        self._owners: dict[Hashable, object] = {}

    def acquire(self, key: Hashable, owner: object) -> bool:
        """Take the lock on C{key} for C{owner}; False if someone holds it."""
        holder = self._owners.setdefault(key, owner)
        return holder is owner

    def release(self, key: Hashable, owner: object) -> None:
        """Release C{key} if C{owner} holds it."""
        if self._owners.get(key) is owner:
            del self._owners[key]

    def __contains__(self, key: Hashable) -> bool:
        return key in self._owners


#: Shared by every POP3 factory of the process unless one is given its own,
#: so a plain and an implicit-TLS port serving one store share the locks.
DEFAULT_LOCKS = MaildropLocks()
