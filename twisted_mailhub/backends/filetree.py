"""
Trees of mailboxes kept in files (the mbox and Maildir stores), as the
change watcher (L{twisted_mailhub.watch}) reads them to tell what another
program changed: L{read_tree} lists one, L{TreeProbe} says which watched
trees may have changed since the last poll.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Hashable
from typing import Any

from twisted_mailhub.backends.base import holding_tree
from twisted_mailhub.model import TreeKey
from twisted_mailhub.trees import TreeSnapshot


async def read_tree(backend: Any, username: str) -> TreeSnapshot:
    """
    The L{TreeSnapshot} of C{username}'s tree, read through the store.  The
    files keep no identity a listing could give cheaply, so another
    program's rename is told as deletions and creations.
    """
    store = await backend.open_store(username)
    async with holding_tree(backend.notifier, username):
        infos = await store.list_mailboxes()
        subscribed = frozenset(await store.subscriptions())
    return TreeSnapshot({info.name: (None, info.selectable) for info in infos},
                        subscribed, store.delimiter)


#: While a tree's directories changed less than this many seconds ago, it
#: is looked at again every L{TREE_RECHECK_SECONDS} although their
#: signatures stayed the same (file times are coarse: a second change in
#: the same tick leaves them as they were).
TREE_SETTLE_SECONDS = 1.0
TREE_RECHECK_SECONDS = 0.2

#: Where a user's tree lives: the directory whose entries are its mailboxes
#: (walked down into its subdirectories when C{recursive}) and other files
#: a tree change rewrites (the subscriptions).
TreePlaces = tuple[str, bool, tuple[str, ...]]


class TreeProbe:
    """
    Which watched trees (L{TreeKey}s) may have changed since the previous
    poll, from the size, mtime and inode of their directories and files
    (L{TreePlaces}, from C{places(username)}).  A mailbox created, deleted
    or renamed changes a directory's entries, a subscription the file.
    """

    def __init__(self, backend: Any, places: Callable[[str], TreePlaces]) -> None:
        self.backend = backend
        self._places = places
        self._seen: dict[Hashable, tuple] = {}
        self._reported: dict[Hashable, float] = {}

    async def __call__(self, keys: list[TreeKey]) -> list[Hashable]:
        places = {key: self._places(key.username) for key in keys}
        seen = await self.backend.run(_tree_signatures, places)
        previous, self._seen = self._seen, {key: sig for key, (sig, _) in seen.items()}
        now, wall = time.monotonic(), time.time()
        reported, self._reported = self._reported, {}
        changed: list[Hashable] = []
        for key in keys:
            sig, newest = seen[key]
            last = reported.get(key)
            recent = newest >= (wall - TREE_SETTLE_SECONDS) * 1e9
            if (key not in previous or sig != previous[key]
                    or (recent and (last is None or now - last >= TREE_RECHECK_SECONDS))):
                changed.append(key)
                last = now
            if recent and last is not None:
                self._reported[key] = last
        return changed


def _tree_signatures(places: dict[Hashable, TreePlaces]) -> dict[Hashable, tuple[tuple, int]]:
    out: dict[Hashable, tuple[tuple, int]] = {}
    for key, (root, recursive, files) in places.items():
        sigs: list[tuple] = []
        newest = 0
        directories = [root]
        while directories:
            directory = directories.pop()
            try:
                st = os.stat(directory)
            except (FileNotFoundError, NotADirectoryError):
                continue
            sigs.append((directory, st.st_mtime_ns, st.st_ino))
            newest = max(newest, st.st_mtime_ns)
            if recursive:
                try:
                    with os.scandir(directory) as entries:
                        directories.extend(sorted(
                            e.path for e in entries if e.is_dir(follow_symlinks=False)))
                except (FileNotFoundError, NotADirectoryError):
                    pass
        for path in files:
            try:
                st = os.stat(path)
            except (FileNotFoundError, NotADirectoryError):
                sigs.append((path, None))
                continue
            sigs.append((path, st.st_size, st.st_mtime_ns, st.st_ino))
            newest = max(newest, st.st_mtime_ns)
        out[key] = (tuple(sigs), newest)
    return out
