"""
Noticing what other programs did to watched mbox files (see
L{twisted_mailhub.watch}).

L{SignatureProbe} compares the size, mtime (ns) and inode of each watched
mailbox's mbox file and index file with the previous poll, and reports a
change once the files stayed the same for one poll interval.  A local
delivery program changes the mbox file; another server process changes the
index too (flag changes only touch the index).  The watcher then reads the
mailbox's status, which takes the mailbox's locks and brings the index up
to date with the file (L{MboxFolder.refresh}): a message appended by
another program gets its UID there, and is announced.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Hashable

from twisted_mailhub.backends.filetree import TreePlaces, TreeProbe
from twisted_mailhub.backends.mbox.index import FileSignature, signature
from twisted_mailhub.backends.mbox.naming import index_file, user_directory
from twisted_mailhub.model import TreeKey

if TYPE_CHECKING:
    from twisted_mailhub.backends.mbox.store import MboxBackend

_Seen = tuple[FileSignature | None, FileSignature | None] | None


class SignatureProbe:
    """
    Which watched mailboxes' files changed since the previous poll; and
    which watched trees (L{TreeKey}s), from the user's directory and its
    subdirectories (the hierarchy) and the subscriptions file.
    """

    def __init__(self, backend: "MboxBackend") -> None:
        self.backend = backend
        self._seen: dict[Hashable, _Seen] = {}
        # The signatures of the last check asked for.
        self._reported: dict[Hashable, _Seen] = {}
        self._trees = TreeProbe(backend, self._tree_places)

    def _tree_places(self, username: str) -> TreePlaces:
        directory = user_directory(self.backend.root, username)
        return directory, True, (os.path.join(directory, ".subscriptions"),)

    async def __call__(self, keys: list[Hashable]) -> list[Hashable]:
        trees = [key for key in keys if isinstance(key, TreeKey)]
        changed = await self._trees(trees) if trees else []
        keys = [key for key in keys if not isinstance(key, TreeKey)]
        return changed + await self._mailboxes(keys)

    async def _mailboxes(self, keys: list[Hashable]) -> list[Hashable]:
        paths = {key: self.backend.watched_path(key) for key in keys}
        seen = await self.backend.run(_signatures, paths)
        previous, self._seen = self._seen, seen
        reported, self._reported = self._reported, {}
        changed = []
        for key in keys:
            now = seen[key]
            if key not in previous:
                # Newly watched: checked once, so that a change between the
                # watcher's first read and this poll is not missed.
                changed.append(key)
            elif now == previous[key] and reported.get(key) != now:
                # Changed, and the same for a whole interval since: a
                # program writing without the locks is probably done.
                changed.append(key)
            else:
                self._reported[key] = reported.get(key)
                continue
            self._reported[key] = now
        return changed


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
