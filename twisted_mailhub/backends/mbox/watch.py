"""
Noticing what other programs did to watched mbox files (see
L{twisted_mailhub.watch}).

L{SignatureProbe} compares the size, mtime (ns) and inode of each watched
mailbox's mbox file and index file with the previous poll.  A local
delivery program changes the mbox file; another server process changes the
index too (flag changes only touch the index).  The watcher then reads the
mailbox's status, which takes the mailbox's locks and brings the index up
to date with the file (L{MboxFolder.refresh}): a message appended by
another program gets its UID there, and is announced.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Hashable

from twisted_mailhub.backends.mbox.index import FileSignature, signature
from twisted_mailhub.backends.mbox.naming import index_file

if TYPE_CHECKING:
    from twisted_mailhub.backends.mbox.store import MboxBackend

_Seen = tuple[FileSignature | None, FileSignature | None] | None


class SignatureProbe:
    """Which watched mailboxes' files changed since the previous poll."""

    def __init__(self, backend: "MboxBackend") -> None:
        self.backend = backend
        self._seen: dict[Hashable, _Seen] = {}

    async def __call__(self, keys: list[Hashable]) -> list[Hashable]:
        paths = {key: self.backend.watched_path(key) for key in keys}
        seen = await self.backend.run(_signatures, paths)
        previous, self._seen = self._seen, seen
        # A newly watched key is checked once too: a change between the
        # watcher's first read and this poll must not be missed.
        return [key for key in keys if key not in previous or previous[key] != seen[key]]


def _signatures(paths: dict[Hashable, str | None]) -> dict[Hashable, _Seen]:
    return {
        key: None if path is None else (_signature(path), _signature(index_file(path)))
        for key, path in paths.items()
    }


def _signature(path: str) -> FileSignature | None:
    try:
        return signature(os.stat(path))
    except FileNotFoundError:
        return None
