"""
The asynchronous face of a Maildir folder: L{IMailbox} and L{IMessage}.

Every method runs one L{Folder} operation in the backend's thread pool,
with the folder brought up to date first, then publishes the events the
operation caused (those of changes other programs made included) on the
reactor thread.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable, Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from zope.interface import implementer

from twisted_mailhub.backends.base import BaseMailbox, sorted_unique
from twisted_mailhub.backends.identity import check_identity
from twisted_mailhub.backends.maildir.folder import Folder, open_folder
from twisted_mailhub.errors import MailboxNotFound, ReadOnlyMailbox
from twisted_mailhub.interfaces import (
    ICopyableMailbox,
    IMailbox,
    IMessage,
    IRemovableMailbox,
    IRestorableMailbox,
)
from twisted_mailhub.model import (
    AppendRequest,
    FlagUpdate,
    MailboxEvent,
    MailboxStatus,
    MessageMeta,
)

if TYPE_CHECKING:
    from twisted_mailhub.backends.maildir.store import MaildirMailStore


@implementer(IMessage)
class MaildirMessage:
    """A message as read when it was opened; its content is held in memory."""

    def __init__(self, meta: MessageMeta, content: bytes) -> None:
        self.meta = meta
        self._content = content
        self._structure = None

    def __repr__(self) -> str:
        return f"<MaildirMessage uid={self.meta.uid} size={self.meta.size}>"

    async def structure(self):
        """The parsed MIME structure, computed on first use."""
        if self._structure is None:
            from twisted_mailhub.mime.parse import parse_message

            self._structure = parse_message(self._content)
        return self._structure

    async def read(self, offset: int = 0, length: int | None = None) -> bytes:
        """Up to C{length} bytes of the message from C{offset}."""
        if length is None:
            return self._content[offset:]
        return self._content[offset : offset + length]


@implementer(IMailbox, ICopyableMailbox, IRemovableMailbox, IRestorableMailbox)
class MaildirMailbox(BaseMailbox):
    """One session's handle on a Maildir folder."""

    def __init__(self, store: MaildirMailStore, name: str, path: str, guid: str,
                 uidvalidity: int, read_only: bool) -> None:
        self.name = name
        self.read_only = read_only
        self.notifier = store.notifier
        self.key: Hashable = store.backend.mailbox_key(guid)
        self._store = store
        self._path = path
        self._guid = guid
        self._uidvalidity = uidvalidity

    def __repr__(self) -> str:
        mode = "read-only" if self.read_only else "read-write"
        return f"<MaildirMailbox {self._store.username}:{self.name} {mode}>"

    @property
    def uidvalidity(self) -> int:
        """The UIDVALIDITY, as of the last operation."""
        return self._uidvalidity

    async def _run(self, operation: Callable[[Folder], Any], write: bool = False) -> Any:
        if write and self.read_only:
            raise ReadOnlyMailbox(f"Mailbox is read-only: {self.name}")
        try:
            result, events, guid, uidvalidity = await self._store.backend.run(
                self._in_thread, operation)
        except MailboxNotFound:
            raise MailboxNotFound(f"Mailbox no longer exists: {self.name}")
        _publish_all(self._store, guid, events)
        if guid != self._guid:
            raise MailboxNotFound(f"Mailbox no longer exists: {self.name}")
        self._uidvalidity = uidvalidity
        if isinstance(result, BaseException):
            raise result
        return result

    def _in_thread(self, operation):
        store = self._store
        with open_folder(self._path, store.settings, store.backend.cache) as folder:
            if folder.guid != self._guid:
                # Another mailbox now has this name; this one is gone.
                return None, folder.synced + folder.events, folder.guid, folder.uidvalidity
            try:
                result = operation(folder)
            except Exception as e:  # noqa: BLE001 - re-raised on the reactor thread
                # The sync before the failure happened and its events must
                # still be published; what is cached may be half changed.
                store.backend.cache.forget(self._path)
                result = e
            return result, folder.synced + folder.events, folder.guid, folder.uidvalidity

    # -- reads -------------------------------------------------------------

    async def status(self) -> MailboxStatus:
        """Counters of the folder; notices changes made by other programs."""
        return await self._run(Folder.status)

    async def uids(self) -> list[int]:
        """All UIDs, ascending."""
        metas = await self._run(lambda folder: folder.metadata())
        return [meta.uid for meta in metas]

    async def metadata(self, uids: Iterable[int]) -> list[MessageMeta]:
        """Metas of the existing messages among C{uids}, ascending."""
        wanted = sorted_unique(uids)
        return await self._run(lambda folder: folder.metadata(wanted))

    async def open_message(self, uid: int) -> MaildirMessage:
        """The message with this UID, read now; L{MessageExpunged} if gone."""
        meta, content = await self._run(lambda folder: folder.content(uid))
        return MaildirMessage(meta, content)

    async def claim_recent(self, claim: bool = True) -> list[int]:
        """UIDs no session has been told of; C{claim} takes them for the caller."""
        return await self._run(lambda folder: folder.claim_recent(claim))

    async def changes_since(self, modseq: int) -> tuple[list[MessageMeta], list[int]]:
        """Metas changed after C{modseq} and UIDs expunged after it."""
        return await self._run(lambda folder: folder.changes_since(modseq))

    # -- writes ------------------------------------------------------------

    async def append(
        self, requests: Iterable[AppendRequest], origin: Hashable | None = None
    ) -> list[MessageMeta]:
        """Deliver C{requests}, durable when this returns (see L{Folder.append})."""
        requests = list(requests)
        if not requests:
            return []
        return await self._run(
            lambda folder: _with_origin(folder, origin, lambda: folder.append(requests)),
            write=True,
        )

    async def store_flags(
        self,
        uids: Iterable[int],
        mode: str,
        flags: Iterable[str],
        unchangedsince: int | None = None,
        origin: Hashable | None = None,
    ) -> FlagUpdate:
        """Change flags (file renames); only messages whose flags change get a MODSEQ."""
        uids = sorted_unique(uids)
        flags = frozenset(flags)
        return await self._run(
            lambda folder: _with_origin(
                folder, origin, lambda: folder.store_flags(uids, mode, flags, unchangedsince)
            ),
            write=True,
        )

    async def expunge(
        self, uids: Iterable[int] | None = None, origin: Hashable | None = None
    ) -> list[int]:
        """Remove the \\Deleted messages (among C{uids} when given)."""
        uids = None if uids is None else sorted_unique(uids)
        return await self._run(
            lambda folder: _with_origin(folder, origin, lambda: folder.expunge(uids)),
            write=True,
        )

    async def remove(self, uids: Iterable[int], origin: Hashable | None = None) -> list[int]:
        """
        L{IRemovableMailbox}: expunge the existing C{uids} whatever their
        flags; others are told only of the expunge (RFC 6851 section 3.3).
        """
        uids = sorted_unique(uids)
        return await self._run(
            lambda folder: _with_origin(
                folder, origin, lambda: folder.expunge(uids, deleted_only=False)),
            write=True,
        )

    async def copy_to(self, uids: Iterable[int], destination: Any,
                      origin: Hashable | None = None) -> list[tuple[int, int]] | None:
        """
        L{ICopyableMailbox}: into another folder of this backend, each file
        is hard-linked (the bytes are not read or written again; Dovecot
        copies the same way), then placed in C{destination} as APPEND
        places a message.
        """
        destination = getattr(destination, "wrapped", destination)
        if (not isinstance(destination, MaildirMailbox)
                or destination._store.backend is not self._store.backend):
            return None
        if destination.read_only:
            raise ReadOnlyMailbox(f"Mailbox is read-only: {destination.name}")
        uids = sorted_unique(uids)
        if not uids:
            return []
        linked = await self._run(lambda folder: folder.link_out(uids, destination._path))
        if not linked:
            return []
        deliveries = [delivery for _, delivery in linked]
        try:
            metas = await destination._run(
                lambda folder: _with_origin(folder, origin, lambda: folder.place(deliveries)),
                write=True,
            )
        finally:
            # Placed files are linked elsewhere by now; a failure leaves none.
            await self._store.backend.run(_remove_all, [d.tmp for d in deliveries])
        return [(source, meta.uid) for (source, _), meta in zip(linked, metas)]

    async def restore_identity(self, uidvalidity: int, uidnext: int = 1) -> MailboxStatus:
        """L{IRestorableMailbox}: recorded in C{dovecot-uidlist}."""
        check_identity(uidvalidity, uidnext)
        if uidvalidity != self._uidvalidity:
            await self._store.backend.run(self._store.taken_uidvalidity, uidvalidity)
        return await self._run(
            lambda folder: folder.restore_identity(self.name, uidvalidity, uidnext), write=True
        )


def _with_origin(folder: Folder, origin: Hashable | None, write: Callable[[], Any]) -> Any:
    """Run C{write} and mark the events it causes with the caller's C{origin}."""
    before = len(folder.events)
    result = write()
    for i in range(before, len(folder.events)):
        folder.events[i] = replace(folder.events[i], origin=origin)
    return result


def _remove_all(paths: list[str]) -> None:
    for path in paths:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def _publish_all(store: MaildirMailStore, guid: str, events: list[MailboxEvent]) -> None:
    key = store.backend.mailbox_key(guid)
    for event in events:
        store.notifier.publish(key, event)
