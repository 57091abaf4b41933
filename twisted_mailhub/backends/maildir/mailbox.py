"""
The asynchronous face of a Maildir folder: L{IMailbox} and L{IMessage}.

Every method runs one L{Folder} operation in the backend's thread pool,
with the folder brought up to date first, then publishes the events the
operation caused (those of changes other programs made included) on the
reactor thread (L{twisted_mailhub.backends.folders}, shared with the mbox
store).
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Iterable
from typing import Any

from zope.interface import implementer

from twisted_mailhub.backends.base import sorted_unique
from twisted_mailhub.backends.folders import FolderMailbox, HeldMessage, with_origin
from twisted_mailhub.backends.maildir.folder import Folder, open_folder
from twisted_mailhub.errors import ReadOnlyMailbox
from twisted_mailhub.interfaces import (
    ICopyableMailbox,
    IExpungeHistory,
    IMailbox,
    IRemovableMailbox,
    IRestorableMailbox,
)


class MaildirMessage(HeldMessage):
    """A message file of a Maildir folder, as read when it was opened."""


@implementer(IMailbox, ICopyableMailbox, IRemovableMailbox, IRestorableMailbox,
             IExpungeHistory)
class MaildirMailbox(FolderMailbox):
    """
    One session's handle on a Maildir folder.  Its folder's identity is the
    GUID of its C{dovecot-uidlist}, made anew when a folder of the same name
    is.
    """

    message_class = MaildirMessage

    def _open_folder(self) -> Any:
        store = self._store
        return open_folder(self._path, store.settings, store.backend.cache)

    @staticmethod
    def _identity_of(folder: Folder) -> str:
        return folder.guid

    @staticmethod
    def _events_of(folder: Folder) -> list:
        # What the sync with other programs' changes found comes first.
        return folder.synced + folder.events

    async def expunges_remembered_after(self) -> int:
        """
        L{IExpungeHistory}: the expunges before a lost C{mailhub-state} are
        forgotten (L{twisted_mailhub.backends.maildir.state.FolderState.rebuilt}).
        """
        return await self._run(lambda folder: folder.state.history_from)

    async def remove(self, uids: Iterable[int], origin: Hashable | None = None) -> list[int]:
        """
        L{IRemovableMailbox}: expunge the existing C{uids} whatever their
        flags; others are told only of the expunge (RFC 6851 section 3.3).
        """
        uids = sorted_unique(uids)
        return await self._run(
            lambda folder: with_origin(
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
                lambda folder: with_origin(folder, origin, lambda: folder.place(deliveries)),
                write=True,
            )
        finally:
            # Placed files are linked elsewhere by now; a failure leaves none.
            await self._store.backend.run(_remove_all, [d.tmp for d in deliveries])
        return [(source, meta.uid) for (source, _), meta in zip(linked, metas)]


def _remove_all(paths: list[str]) -> None:
    for path in paths:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
