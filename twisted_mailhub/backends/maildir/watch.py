"""
Noticing what other programs did to watched Maildir folders (see
L{twisted_mailhub.watch}).

L{SignatureProbe} compares the size, mtime and inode of each watched
folder's C{new/} and C{cur/} directories, C{dovecot-uidlist} and
C{mailhub-state} with the previous poll.  A delivery adds a file to
C{new/} or C{cur/}; a mail reader renames (flags) or removes files in
them; Dovecot and other server processes rewrite the two files.  Maildir
writers finish each change with one rename, so a change is reported at
once, and again every L{RECHECK_SECONDS} while a directory changed less
than a second ago (file times are coarse: a second change in the same
tick leaves them as they were).  The watcher then reads the folder's status, which
brings it up to date and announces what changed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Hashable
from typing import TYPE_CHECKING

from twisted_mailhub.backends.maildir.cache import (
    SETTLE_SECONDS,
    UIDLIST_FILE,
    Signature,
    signature_of,
)
from twisted_mailhub.backends.filetree import TreePlaces, TreeProbe
from twisted_mailhub.backends.maildir.state import STATE_FILE
from twisted_mailhub.backends.mbox.naming import user_directory
from twisted_mailhub.model import TreeKey

if TYPE_CHECKING:
    from twisted_mailhub.backends.maildir.store import MaildirBackend

_Seen = tuple[Signature, ...] | None


#: While a folder changed less than a second ago, how often it is looked
#: at again although its signatures stayed the same.
RECHECK_SECONDS = 0.2


class SignatureProbe:
    """
    Which watched folders changed since the previous poll; and which
    watched trees (L{TreeKey}s), from the user's Maildir directory, whose
    entries are the folders (Maildir++ keeps them all at its top), and the
    subscriptions file.
    """

    def __init__(self, backend: MaildirBackend) -> None:
        self.backend = backend
        self._seen: dict[Hashable, _Seen] = {}
        self._reported: dict[Hashable, float] = {}
        self._trees = TreeProbe(backend, self._tree_places)

    def _tree_places(self, username: str) -> TreePlaces:
        from twisted_mailhub.backends.maildir.store import SUBSCRIPTIONS_FILE

        directory = user_directory(self.backend.root, username)
        return directory, False, (os.path.join(directory, SUBSCRIPTIONS_FILE),)

    async def __call__(self, keys: list[Hashable]) -> list[Hashable]:
        trees = [key for key in keys if isinstance(key, TreeKey)]
        changed = await self._trees(trees) if trees else []
        keys = [key for key in keys if not isinstance(key, TreeKey)]
        return changed + await self._folders(keys)

    async def _folders(self, keys: list[Hashable]) -> list[Hashable]:
        paths = {key: self.backend.watched_path(key) for key in keys}
        seen, recent = await self.backend.run(_signatures, paths)
        previous, self._seen = self._seen, seen
        now = time.monotonic()
        reported, self._reported = self._reported, {}
        changed = []
        for key in keys:
            last = reported.get(key)
            if (key not in previous or seen[key] != previous[key]
                    or (key in recent and (last is None or now - last >= RECHECK_SECONDS))):
                changed.append(key)
                last = now
            if key in recent and last is not None:
                self._reported[key] = last
        return changed


def _signatures(paths: dict[Hashable, str | None]) -> tuple[dict[Hashable, _Seen], set]:
    seen: dict[Hashable, _Seen] = {}
    recent = set()
    limit = (time.time() - SETTLE_SECONDS) * 1e9
    for key, path in paths.items():
        if path is None:
            seen[key] = None
            continue
        sigs = tuple(signature_of(os.path.join(path, name))
                     for name in ("new", "cur", UIDLIST_FILE, STATE_FILE))
        seen[key] = sigs
        if any(sig is not None and sig[1] >= limit for sig in sigs[:2]):
            recent.add(key)
    return seen, recent
