"""
The asynchronous face of an mbox mailbox: L{IMailbox} and L{IMessage}.

Every method runs one L{MboxFolder} operation in the backend's thread
pool, with the file locked and the index brought up to date first, then
publishes the events the operation caused (including those of changes
made by other programs) on the reactor thread
(L{twisted_mailhub.backends.folders}, shared with the Maildir store).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Any

from zope.interface import implementer

from twisted_mailhub.backends.base import sorted_unique
from twisted_mailhub.backends.folders import FolderMailbox, HeldMessage, with_origin
from twisted_mailhub.backends.mbox.folder import MboxFolder, open_folder
from twisted_mailhub.interfaces import IMailbox, IRemovableMailbox, IRestorableMailbox

class MboxMessage(HeldMessage):
    """A message of an mbox file, as read when it was opened."""


@implementer(IMailbox, IRemovableMailbox, IRestorableMailbox)
class MboxMailbox(FolderMailbox):
    """
    One session's handle on an mbox mailbox.  Its folder's identity is the
    key of its index, made anew when a mailbox of the same name is.
    """

    message_class = MboxMessage

    def _open_folder(self) -> Any:
        store = self._store
        return open_folder(self._path, store.settings, store.backend.cache)

    @staticmethod
    def _identity_of(folder: MboxFolder) -> str:
        return folder.index.key

    @staticmethod
    def _uidvalidity_of(folder: MboxFolder) -> int:
        return folder.index.uidvalidity

    async def remove(
        self, uids: Iterable[int], origin: Hashable | None = None
    ) -> list[int]:
        """
        L{IRemovableMailbox}: expunge the existing C{uids} whatever their
        flags.  The folder expunges by \\Deleted, so the flag is set first
        in the same locked operation, but its event is dropped: others are
        told only of the expunge (RFC 6851 section 3.3, for MOVE).
        """
        uids = sorted_unique(uids)

        def remove_now(folder: MboxFolder) -> list[int]:
            before = len(folder.events)
            folder.store_flags(uids, "add", {"\\Deleted"})
            del folder.events[before:]
            return folder.expunge(uids)

        return await self._run(
            lambda folder: with_origin(folder, origin, lambda: remove_now(folder)),
            write=True,
        )
