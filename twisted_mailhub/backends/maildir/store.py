"""
L{MaildirBackend}: each user's mail as a Maildir++ tree.

The layout and names are described in
L{twisted_mailhub.backends.maildir.naming}, a folder's files in
L{twisted_mailhub.backends.maildir.folder}.  Besides its folders, a user's
directory holds C{subscriptions} (Dovecot's format: a C{V\\t2} line, an
empty line, then one name per line with its levels spelled as on disk and
separated by tabs) and C{mailhub-uidvalidity} (the last UIDVALIDITY handed
out, so that a mailbox created again gets a new one even after a restart).
"""

from __future__ import annotations

import errno
import os
import shutil
import time
import uuid
from collections.abc import Callable
from typing import Any

from zope.interface import implementer

from twisted_mailhub.backends.base import superiors
from twisted_mailhub.backends.filebackend import FileBackend, FileMailStore
from twisted_mailhub.backends.files import fsync_directory, read_number, write_number
from twisted_mailhub.backends.folders import publish_all
from twisted_mailhub.backends.identity import fresh_uidvalidity
from twisted_mailhub.backends.maildir.folder import FolderCache, create_folder, open_folder
from twisted_mailhub.backends.maildir.locking import dotlocked, process_lock
from twisted_mailhub.backends.maildir.mailbox import MaildirMailbox
from twisted_mailhub.backends.maildir.naming import (
    check_level,
    decode_level,
    encode_level,
    folder_directory_name,
    folder_name,
)
from twisted_mailhub.backends.maildir.uidlist import UnreadableUidList, parse_uidlist
from twisted_mailhub.backends.mbox.locking import locked_file
from twisted_mailhub.backends.mbox.naming import user_directory
from twisted_mailhub.errors import MailboxExists
from twisted_mailhub.interfaces import IMailStore, ISummarizingBackend
from twisted_mailhub.model import MailboxInfo, MailboxRemoved
from twisted_mailhub.watch import IWatchableBackend

SUBSCRIPTIONS_FILE = "subscriptions"
UIDVALIDITY_FILE = "mailhub-uidvalidity"
_SUBSCRIPTIONS_HEADER = "V\t2\n\n"


#: The user's summaries file, in the root beside INBOX's cur/ and new/
#: (not a folder: folders are directories).
SUMMARY_FILE = "mailhub-summaries"

#: The user's full-text index (L{twisted_mailhub.backends.textindex}), beside
#: the summaries file (not a dot name: those are folders), as is the journal
#: SQLite writes beside it (C{-journal}).
TEXT_INDEX_FILE = "mailhub-search.sqlite"


@implementer(IMailStore)
class MaildirMailStore(FileMailStore):
    """One user's Maildir++ tree."""

    summary_file = SUMMARY_FILE
    text_index_file = TEXT_INDEX_FILE
    _check_level = staticmethod(check_level)

    def folder_path(self, name: str) -> str:
        """The directory of the (validated) mailbox C{name}."""
        if name == "INBOX":
            return self.directory
        return os.path.join(self.directory, folder_directory_name(name, self.delimiter))

    def _check(self, name: str) -> str:
        name = super()._check(name)
        if name != "INBOX":
            folder_directory_name(name, self.delimiter)
        return name

    # -- the BaseMailStore core ----------------------------------------------

    def _list_sync(self) -> list[MailboxInfo]:
        found: dict[str, bool] = {}
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            entries = []
        for entry in entries:
            if not entry.name.startswith("."):
                continue
            name = folder_name(entry.name, self.delimiter)
            if name is None or not entry.is_dir(follow_symlinks=False):
                continue
            found[name] = os.path.isdir(os.path.join(entry.path, "cur"))
        # Maildir++ has no directory for a level that only holds others
        # (Dovecot makes none): such a name is a hierarchy node.
        for name in list(found):
            for parent in superiors(name, self.delimiter):
                if parent != "INBOX":
                    found.setdefault(parent, False)
        infos = [MailboxInfo("INBOX", True, self.backend.cache.special_use(self.directory))]
        for name, selectable in found.items():
            special = (self.backend.cache.special_use(self.folder_path(name))
                       if selectable else frozenset())
            infos.append(MailboxInfo(name, selectable, special))
        return infos

    async def _open(self, name: str, read_only: bool) -> MaildirMailbox:
        path = self.folder_path(name)

        def opened():
            with open_folder(path, self.settings, self.backend.cache) as folder:
                return folder.synced + folder.events, folder.guid, folder.uidvalidity

        events, guid, uidvalidity = await self.backend.run(opened)
        publish_all(self, guid, events)
        self.backend.opened(self, name, path, guid)
        return MaildirMailbox(self, name, path, guid, uidvalidity, read_only)

    def _create_sync(self, name: str, special_use: frozenset[str], selectable: bool) -> None:
        path = self.folder_path(name)
        if not selectable:
            os.makedirs(path, 0o700, exist_ok=True)
            return
        try:
            create_folder(path, self._new_uidvalidity(), special_use, self._scratch())
        except FileExistsError:
            raise MailboxExists(f"Mailbox already exists: {name}")

    def _scratch(self) -> str:
        scratch = os.path.join(self.directory, "tmp")
        os.makedirs(scratch, 0o700, exist_ok=True)
        return scratch

    async def _delete(self, name: str) -> None:
        await self._remove(name, keep_name=False)

    async def _make_unselectable(self, name: str) -> None:
        await self._remove(name, keep_name=True)

    async def _remove(self, name: str, keep_name: bool) -> None:
        path = self.folder_path(name)

        def remove() -> str | None:
            guid = None
            with process_lock(path):
                if os.path.isdir(path):
                    guid = _guid_of(path)
                    aside = os.path.join(self._scratch(), f"mailhub-deleted.{uuid.uuid4().hex}")
                    if os.path.isdir(os.path.join(path, "cur")):
                        # Wait for whoever is assigning UIDs, then take it away whole.
                        with dotlocked(os.path.join(path, "dovecot-uidlist"),
                                       self.settings.lock_timeout,
                                       self.settings.stale_lock_after):
                            os.rename(path, aside)
                    else:
                        os.rename(path, aside)
                    self.backend.cache.forget(path)
                    if keep_name:
                        # An empty directory: a name without messages.
                        os.mkdir(path, 0o700)
                    fsync_directory(self.directory)
                    shutil.rmtree(aside, ignore_errors=True)
                elif keep_name:
                    os.makedirs(path, 0o700, exist_ok=True)
            return guid

        guid = await self.backend.run(remove)
        if guid is not None:
            publish_all(self, guid, [MailboxRemoved()])

    async def _rename(self, pairs: list[tuple[str, str]]) -> None:
        guids = await self.backend.run(self._rename_sync, pairs)
        for guid in guids:
            publish_all(self, guid, [MailboxRemoved()])

    def _rename_sync(self, pairs: list[tuple[str, str]]) -> list[str]:
        """
        Rename each folder directory of C{pairs} (Maildir++ keeps inferiors
        in directories of their own); on a failure the ones already renamed
        go back.  Never replaces a folder another process made meanwhile.
        """
        moves = [(self.folder_path(old), self.folder_path(new), new) for old, new in pairs]
        guids = []
        done: list[tuple[str, str]] = []
        try:
            for source, target, new in moves:
                if not os.path.isdir(source):
                    continue
                with process_lock(source):
                    guid = _guid_of(source)
                    _rename_directory_no_replace(source, target, new)
                    self.backend.cache.forget(source)
                done.append((source, target))
                if guid is not None:
                    guids.append(guid)
        except BaseException:
            for source, target in reversed(done):
                try:
                    os.rename(target, source)
                except OSError:
                    pass
            raise
        fsync_directory(self.directory)
        return guids

    def _edit_subscriptions(self, change: Callable[[set[str]], set[str]] | None) -> set[str]:
        path = os.path.join(self.directory, SUBSCRIPTIONS_FILE)
        with process_lock(path):
            if change is None:
                return _read_subscriptions(path, self.delimiter)
            with dotlocked(path, self.settings.lock_timeout,
                           self.settings.stale_lock_after) as lock:
                names = _read_subscriptions(path, self.delimiter)
                updated = change(names)
                if updated != names:
                    lock.replace(_render_subscriptions(updated, self.delimiter))
                return updated

    # -- UIDVALIDITY ---------------------------------------------------------

    def _new_uidvalidity(self) -> int:
        """
        A UIDVALIDITY never handed out before for this user: the clock in
        seconds, or one more than the last value if that is not less.
        """
        with locked_file(os.path.join(self.directory, UIDVALIDITY_FILE),
                         self.settings.lock_timeout) as fd:
            value = fresh_uidvalidity(read_number(fd), time.time())
            write_number(fd, value)
            return value

    def taken_uidvalidity(self, value: int) -> None:
        """A mailbox took C{value} from elsewhere: later values are drawn above it."""
        with locked_file(os.path.join(self.directory, UIDVALIDITY_FILE),
                         self.settings.lock_timeout) as fd:
            if value > read_number(fd):
                write_number(fd, value)


@implementer(IWatchableBackend, ISummarizingBackend)
class MaildirBackend(FileBackend):
    """
    Mail as Maildir++ trees: C{root/<user>/} is the user's INBOX and holds
    the other folders.

    C{lock_timeout} bounds every wait for a lock another program holds
    (then the operation fails with L{StoreUnavailable}); a
    C{dovecot-uidlist.lock} older than C{stale_lock_after} seconds (120 by
    default) is broken.  C{on_lock_wait}, if given, is called on the
    reactor thread with the locked file's path whenever an operation
    starts waiting.
    """

    kind = "maildir"
    mailbox_class = MaildirMailbox
    cache_class = FolderCache
    default_stale_lock_after = 120.0

    def _store(self, username: str) -> MaildirMailStore:
        return MaildirMailStore(self, username, user_directory(self.root, username))

    def _prepare(self, store: MaildirMailStore) -> None:
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(store.directory, sub), 0o700, exist_ok=True)

    def _probe(self) -> Any:
        from twisted_mailhub.backends.maildir.watch import SignatureProbe

        return SignatureProbe(self)


def _guid_of(path: str) -> str | None:
    try:
        with open(os.path.join(path, "dovecot-uidlist"), "rb") as f:
            return parse_uidlist(f.read()).guid or None
    except (FileNotFoundError, NotADirectoryError, UnreadableUidList):
        return None


def _rename_directory_no_replace(source: str, target: str, name: str) -> None:
    # rename(2) would silently replace an empty directory, and the check
    # and the rename are not one step: another process creating the target
    # in between makes the rename fail on the non-empty directory instead.
    if os.path.lexists(target):
        raise MailboxExists(f"Mailbox already exists: {name}")
    try:
        os.rename(source, target)
    except OSError as e:
        if e.errno in (errno.ENOTEMPTY, errno.EEXIST):
            raise MailboxExists(f"Mailbox already exists: {name}") from e
        raise


def _read_subscriptions(path: str, delimiter: str) -> set[str]:
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return set()
    lines = text.split("\n")
    if lines and lines[0].startswith("V\t"):
        lines = lines[1:]
    names = set()
    for line in lines:
        if not line:
            continue
        levels = [decode_level(spelled) for spelled in line.split("\t")]
        if any(level is None or delimiter in level for level in levels):
            continue
        names.add(delimiter.join(levels))  # type: ignore[arg-type]
    return names


def _render_subscriptions(names: set[str], delimiter: str) -> bytes:
    lines = ["\t".join(encode_level(level) for level in name.split(delimiter))
             for name in sorted(names)]
    return (_SUBSCRIPTIONS_HEADER + "".join(line + "\n" for line in lines)).encode("utf-8")


__all__ = ["MaildirBackend", "MaildirMailStore"]
