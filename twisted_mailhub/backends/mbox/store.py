"""
L{MboxBackend}: users' mail as mbox files in a directory tree.

The layout and file-name encoding are described in
L{twisted_mailhub.backends.mbox.naming}, the per-mailbox index in
L{twisted_mailhub.backends.mbox.index}.  Per user, the directory also
holds C{.subscriptions} (one name per line, UTF-8) and C{.uidvalidity}
(the last UIDVALIDITY handed out, so a mailbox created again gets a new
one even after a restart).
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from typing import Any

from zope.interface import implementer

from twisted_mailhub.backends.filebackend import FileBackend, FileMailStore
from twisted_mailhub.backends.files import (
    fsync_directory,
    read_number,
    replace_file,
    write_number,
)
from twisted_mailhub.backends.folders import publish_all
from twisted_mailhub.backends.identity import fresh_uidvalidity
from twisted_mailhub.backends.mbox.folder import IndexCache, open_folder
from twisted_mailhub.backends.mbox.index import Index, signature
from twisted_mailhub.backends.mbox.locking import locked_file, locked_mbox
from twisted_mailhub.backends.mbox.mailbox import MboxMailbox
from twisted_mailhub.backends.mbox.naming import (
    CHILDREN_SUFFIX,
    check_level,
    children_directory,
    decode_level,
    encode_level,
    index_file,
    mailbox_file,
    user_directory,
)
from twisted_mailhub.errors import InvalidMailboxName, MailboxExists
from twisted_mailhub.interfaces import ICheckableBackend, IMailStore, ISummarizingBackend
from twisted_mailhub.model import MailboxInfo, MailboxRemoved
from twisted_mailhub.watch import IWatchableBackend


#: The user's summaries file (a dot name: the backend's own, never a mailbox).
SUMMARY_FILE = ".summaries"

#: The user's full-text index (L{twisted_mailhub.backends.textindex}), a dot
#: name too, as is the journal SQLite writes beside it (C{-journal}).
TEXT_INDEX_FILE = ".search.sqlite"


@implementer(IMailStore)
class MboxMailStore(FileMailStore):
    """One user's directory of mbox files."""

    summary_file = SUMMARY_FILE
    text_index_file = TEXT_INDEX_FILE
    _check_level = staticmethod(check_level)

    def _path(self, name: str) -> str:
        return mailbox_file(self.directory, name, self.delimiter)

    # -- the BaseMailStore core ----------------------------------------------

    def _list_sync(self) -> list[MailboxInfo]:
        infos: list[MailboxInfo] = []

        def walk(directory: str, prefix: str) -> None:
            try:
                names = sorted(os.listdir(directory))
            except (FileNotFoundError, NotADirectoryError):
                return
            files = set()
            for filename in names:
                full = os.path.join(directory, filename)
                try:
                    mode = os.lstat(full).st_mode
                except FileNotFoundError:
                    continue
                if stat.S_ISREG(mode):
                    level = decode_level(filename)
                    if level is None or (not prefix and level != "INBOX"
                                         and level.upper() == "INBOX"):
                        continue
                    files.add(filename)
                    index = self.backend.cache.peek(full)
                    special = index.special_use if index is not None else frozenset()
                    infos.append(MailboxInfo(prefix + level, True, special))
            for filename in names:
                if not filename.endswith(CHILDREN_SUFFIX):
                    continue
                base = filename[: -len(CHILDREN_SUFFIX)]
                level = decode_level(base)
                full = os.path.join(directory, filename)
                if level is None or not stat.S_ISDIR(os.lstat(full).st_mode):
                    continue
                if base not in files:
                    infos.append(MailboxInfo(prefix + level, False))
                walk(full, prefix + level + self.delimiter)

        walk(self.directory, "")
        return infos

    async def _info(self, name: str) -> MailboxInfo | None:
        return await self.backend.run(self._info_sync, name)

    def _info_sync(self, name: str) -> MailboxInfo | None:
        """
        What L{_list_sync} says of C{name}, looking at its own path only,
        so that opening a mailbox (SELECT, STATUS) does not cost a listing
        of the whole tree.
        """
        levels = name.split(self.delimiter)
        try:
            path = self._path(name)
        except InvalidMailboxName:
            return None
        # The listing descends only through children directories that
        # are directories themselves (not links to one).
        directory = self.directory
        for level in levels[:-1]:
            directory = os.path.join(directory, encode_level(level) + CHILDREN_SUFFIX)
            if not _is_directory(directory):
                return None
        # A top-level file named INBOX in another case is not shown.
        hidden = len(levels) == 1 and name != "INBOX" and name.upper() == "INBOX"
        try:
            regular = not hidden and stat.S_ISREG(os.lstat(path).st_mode)
        except (FileNotFoundError, NotADirectoryError):
            regular = False
        if regular:
            index = self.backend.cache.peek(path)
            return MailboxInfo(name, True, index.special_use if index is not None
                               else frozenset())
        if _is_directory(children_directory(path)):
            return MailboxInfo(name, False)
        return None

    async def _open(self, name: str, read_only: bool) -> MboxMailbox:
        path = self._path(name)

        def opened():
            with open_folder(path, self.settings, self.backend.cache) as folder:
                return folder.events, folder.index.key, folder.index.uidvalidity

        events, key, uidvalidity = await self.backend.run(opened)
        publish_all(self, key, events)
        self.backend.opened(self, name, path, key)
        return MboxMailbox(self, name, path, key, uidvalidity, read_only)

    def _create_sync(self, name: str, special_use: frozenset[str], selectable: bool) -> None:
        path = self._path(name)
        directory = os.path.dirname(path)
        os.makedirs(directory, 0o700, exist_ok=True)
        if not selectable:
            os.makedirs(children_directory(path), 0o700, exist_ok=True)
            return
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise MailboxExists(f"Mailbox already exists: {name}")
        try:
            os.fsync(fd)
            created = os.fstat(fd)
        finally:
            os.close(fd)
        index = Index(self._new_uidvalidity(), special_use=frozenset(special_use))
        index.file = signature(created)
        self.backend.cache.save(path, index)
        fsync_directory(directory)

    async def _delete(self, name: str) -> None:
        await self._remove(name, keep_children=False)

    async def _make_unselectable(self, name: str) -> None:
        await self._remove(name, keep_children=True)

    async def _remove(self, name: str, keep_children: bool) -> None:
        path = self._path(name)

        def remove() -> str | None:
            key = None
            if os.path.exists(path):
                with locked_mbox(path, self.settings.lock_timeout,
                                 self.settings.stale_lock_after, self.settings.on_lock_wait):
                    index = self.backend.cache.load(path)
                    key = index.key if index is not None else None
                    os.unlink(path)
                    _unlink_quietly(index_file(path))
                    self.backend.cache.forget(path)
            children = children_directory(path)
            if keep_children:
                os.makedirs(children, 0o700, exist_ok=True)
            else:
                try:
                    os.rmdir(children)
                except FileNotFoundError:
                    pass
            fsync_directory(os.path.dirname(path))
            return key

        key = await self.backend.run(remove)
        if key is not None:
            publish_all(self, key, [MailboxRemoved()])

    async def _rename(self, pairs: list[tuple[str, str]]) -> None:
        # Inferiors live in the children directory and move with it.
        old, new = pairs[0]
        keys = await self.backend.run(self._rename_sync, old, new, [o for o, _ in pairs])
        for key in keys:
            publish_all(self, key, [MailboxRemoved()])

    def _rename_sync(self, old: str, new: str, names: list[str]) -> list[str]:
        source, target = self._path(old), self._path(new)
        keys = []
        for name in names:
            index = self.backend.cache.peek(self._path(name))
            if index is not None:
                keys.append(index.key)
        for existing in (target, index_file(target), children_directory(target)):
            if os.path.lexists(existing):
                raise MailboxExists(f"Mailbox already exists: {new}")
        os.makedirs(os.path.dirname(target), 0o700, exist_ok=True)
        if os.path.exists(source):
            with locked_mbox(source, self.settings.lock_timeout,
                             self.settings.stale_lock_after, self.settings.on_lock_wait):
                _rename_file_no_replace(source, target, new)
                if os.path.exists(index_file(source)):
                    _rename_file_no_replace(index_file(source), index_file(target), new)
        if os.path.isdir(children_directory(source)):
            os.rename(children_directory(source), children_directory(target))
        for name in names:
            self.backend.cache.forget(self._path(name))
        fsync_directory(os.path.dirname(source))
        fsync_directory(os.path.dirname(target))
        return keys

    def _edit_subscriptions(self, change: Callable[[set[str]], set[str]] | None) -> set[str]:
        path = os.path.join(self.directory, ".subscriptions")
        with locked_file(os.path.join(self.directory, ".subscriptions.lock"),
                         self.settings.lock_timeout):
            try:
                with open(path, "rb") as f:
                    names = {line for line in f.read().decode("utf-8").split("\n") if line}
            except FileNotFoundError:
                names = set()
            if change is not None:
                updated = change(names)
                if updated != names:
                    data = "".join(name + "\n" for name in sorted(updated)).encode("utf-8")
                    replace_file(path, [data], 0o600)
                names = updated
        return names

    # -- UIDVALIDITY ---------------------------------------------------------

    def _new_uidvalidity(self) -> int:
        """
        A UIDVALIDITY never handed out before for this user: the clock in
        seconds, or one more than the last value if that is not less.
        """
        with locked_file(os.path.join(self.directory, ".uidvalidity"),
                         self.settings.lock_timeout) as fd:
            value = fresh_uidvalidity(read_number(fd), time.time())
            write_number(fd, value)
            return value

    def taken_uidvalidity(self, value: int) -> None:
        """A mailbox took C{value} from elsewhere: later values are drawn above it."""
        with locked_file(os.path.join(self.directory, ".uidvalidity"),
                         self.settings.lock_timeout) as fd:
            if value > read_number(fd):
                write_number(fd, value)


@implementer(IWatchableBackend, ICheckableBackend, ISummarizingBackend)
class MboxBackend(FileBackend):
    """
    Mail as mbox files: C{root/<user>/INBOX} and one file per mailbox.

    C{lock_timeout} bounds every wait for another program's lock (then the
    operation fails with L{StoreUnavailable}); a dotlock older than
    C{stale_lock_after} seconds (300 by default) is removed.
    C{on_lock_wait}, if given, is called on the reactor thread with the
    mbox path whenever an operation starts waiting for a lock held
    elsewhere.
    """

    kind = "mbox"
    mailbox_class = MboxMailbox
    cache_class = IndexCache
    default_stale_lock_after = 300.0

    def _store(self, username: str) -> MboxMailStore:
        return MboxMailStore(self, username, user_directory(self.root, username))

    def _prepare(self, store: MboxMailStore) -> None:
        os.makedirs(store.directory, 0o700, exist_ok=True)
        if not os.path.exists(mailbox_file(store.directory, "INBOX")):
            try:
                store._create_sync("INBOX", frozenset(), True)
            except MailboxExists:
                pass

    def _probe(self) -> Any:
        from twisted_mailhub.backends.mbox.watch import SignatureProbe

        return SignatureProbe(self)

    async def list_users(self) -> list[str]:
        """The users that have a directory under the root, sorted."""
        from twisted_mailhub.backends.mbox.check import list_users

        return await self.run(list_users, self.root)

    async def check(self, usernames: list[str] | None = None, repair: bool = False) -> Any:
        """L{ICheckableBackend}: see L{twisted_mailhub.backends.mbox.check}."""
        from twisted_mailhub.backends.mbox.check import check_backend

        return await check_backend(self, usernames, repair)


def _is_directory(path: str) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return False


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


__all__ = ["MboxBackend", "MboxMailStore"]


def _rename_file_no_replace(source: str, target: str, name: str) -> None:
    """
    Rename a file, failing rather than replacing one that another process
    created at C{target} meanwhile (os.rename would silently replace it):
    a hard link cannot be made over an existing name.
    """
    try:
        os.link(source, target)
    except FileExistsError:
        raise MailboxExists(f"Mailbox already exists: {name}")
    os.unlink(source)
