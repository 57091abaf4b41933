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

from typing import Hashable, Iterable, NamedTuple

from twisted_mailhub import index
from twisted_mailhub.errors import MessageExpunged
from twisted_mailhub.interfaces import IBulkMessageAccess, IContentAccess, IMailbox, IMessage

DELETED = "\\Deleted"
SEEN = "\\Seen"

# At most this many messages are opened in one round trip for pipelined
# RETR and TOP commands...
OPEN_AHEAD = 50
# ... and no more than this many octets of them (a backend may read small
# messages whole when it opens them; one read by its content alone, larger
# than this, is opened instead).
OPEN_AHEAD_OCTETS = 4 * 1024 * 1024


class Entry(NamedTuple):
    """One message of the snapshot."""

    uid: int
    size: int


class Size(NamedTuple):
    """What RETR and TOP use of a message's meta: its size."""

    uid: int
    size: int


class ReadContent:
    """
    A message whose whole content was read ahead (L{IContentAccess}), for
    RETR and TOP, which use only its C{meta.size} and L{read}.
    """

    def __init__(self, uid: int, content: bytes) -> None:
        self.meta = Size(uid, len(content))
        self._content = content

    async def read(self, offset: int = 0, length: int | None = None) -> bytes:
        """Up to C{length} bytes of the message from C{offset}."""
        if length is None:
            return self._content[offset:]
        return self._content[offset : offset + length]


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

    def __init__(self, mailbox: IMailbox, uids: list[int], sizes: list[int]) -> None:
        self.mailbox = mailbox
        # The snapshot as two parallel lists rather than one object per
        # message: a login lists the whole INBOX, and building 10,000
        # objects there cost more than everything else the login does.
        self._uids = uids
        self._sizes = sizes
        self._total = sum(sizes)
        self.deleted: set[int] = set()
        self.retrieved: set[int] = set()
        # Messages opened ahead of the RETR or TOP asking for them, by number.
        self._opened: dict[int, IMessage | ReadContent] = {}

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
                # Complete now: read it in place, with no await between the
                # UIDs and their sizes.
                held = view.index.held()
                uids = sorted(held)
                return cls(mailbox, uids, [held[u].size for u in uids])
            uids = await view.uids()
            metas = await view.metadata(uids) if uids else []
        finally:
            release()
        return cls(mailbox, [m.uid for m in metas], [m.size for m in metas])

    # -- reading ---------------------------------------------------------------

    def entry(self, number: int, *, allow_deleted: bool = False) -> Entry:
        """
        The entry for 1-based C{number}; L{NoSuchMessage} when out of
        range, L{MarkedDeleted} when marked (unless C{allow_deleted}).
        """
        if not 1 <= number <= len(self._uids):
            raise NoSuchMessage(number)
        if number in self.deleted and not allow_deleted:
            raise MarkedDeleted(number)
        return Entry(self._uids[number - 1], self._sizes[number - 1])

    def listing(self) -> list[tuple[int, Entry]]:
        """C{(number, entry)} of every message not marked deleted."""
        deleted = self.deleted
        return [(n, Entry(uid, size))
                for n, (uid, size) in enumerate(zip(self._uids, self._sizes), 1)
                if n not in deleted]

    def stat(self) -> tuple[int, int]:
        """Count and total size of the messages not marked deleted."""
        gone = sum(self._sizes[n - 1] for n in self.deleted)
        return len(self._uids) - len(self.deleted), self._total - gone

    def unique_id(self, entry: Entry) -> str:
        """The UIDL value of C{entry}."""
        return unique_id(self.mailbox.uidvalidity, entry.uid)

    async def open(self, number: int, ahead: Iterable[int] = ()) -> IMessage | ReadContent:
        """
        The message numbered C{number}, for RETR and TOP.  Raises
        L{NoSuchMessage}, L{MarkedDeleted}, or L{MessageExpunged} when
        another client removed it since the snapshot.

        C{ahead} are the numbers the client will ask for next (pipelined
        commands): when the mailbox provides L{IBulkMessageAccess} they are
        opened in the same round trip, else when it provides
        L{IContentAccess} their contents are read in it (those of at most
        L{OPEN_AHEAD_OCTETS}: a larger one is opened when asked for), and a
        later C{open} of one of them takes it from there.  A message opened
        ahead and removed before it is read is served as it was when opened,
        as if the removal came after.
        """
        entry = self.entry(number)
        message = self._opened.pop(number, None)
        if message is not None:
            return message
        bulk = IBulkMessageAccess(self.mailbox, None)
        access = IContentAccess(self.mailbox, None) if bulk is None else None
        numbers = self._ahead(number, ahead) if bulk is not None or access is not None else []
        if not numbers:
            # Nothing known ahead: forget what was opened for commands that
            # never came.
            self._opened.clear()
            return await self.mailbox.open_message(entry.uid)
        by_uid = {self._uids[n - 1]: n for n in numbers}
        by_uid[entry.uid] = number
        if bulk is None:
            found = await access.contents(sorted(by_uid), OPEN_AHEAD_OCTETS)
            self._opened = {by_uid[uid]: ReadContent(uid, content)
                            for uid, content in found.items() if uid in by_uid}
            message = self._opened.pop(number, None)
            if message is None:
                # Larger than read ahead, or gone (then this raises).
                return await self.mailbox.open_message(entry.uid)
            return message
        opened = await bulk.open_messages(sorted(by_uid))
        self._opened = {by_uid[m.meta.uid]: m for m in opened if m.meta.uid in by_uid}
        message = self._opened.pop(number, None)
        if message is None:
            raise MessageExpunged(f"Message {entry.uid} has been expunged")
        return message

    def _ahead(self, number: int, ahead: Iterable[int]) -> list[int]:
        """The numbers of C{ahead} worth opening with C{number}, in order."""
        numbers: list[int] = []
        octets = 0
        for n in ahead:
            if (n == number or n in numbers or n in self.deleted
                    or not 1 <= n <= len(self._uids)):
                continue
            octets += self._sizes[n - 1]
            if len(numbers) + 1 >= OPEN_AHEAD or octets > OPEN_AHEAD_OCTETS:
                break
            numbers.append(n)
        return numbers

    # -- marks -------------------------------------------------------------------

    def delete(self, number: int) -> None:
        """Mark C{number} deleted (L{NoSuchMessage}, L{MarkedDeleted})."""
        self.entry(number)
        self.deleted.add(number)
        self._opened.pop(number, None)

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
            seen = sorted(self._uids[n - 1] for n in self.retrieved - self.deleted)
            if seen:
                await self.mailbox.store_flags(seen, "add", {SEEN}, origin=origin)
        doomed = sorted(self._uids[n - 1] for n in self.deleted)
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
