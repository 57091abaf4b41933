"""
A read-only IMAP archive of ``.eml`` files: a custom backend built on the
base classes of L{twisted_mailhub.backends.base}.

Point it at a directory tree, such as an old mail export::

    export/
      0001-welcome.eml        INBOX (the top directory)
      0002-invoice.eml
      Projects/               mailbox "Projects"
        kickoff.eml
        Archive/              mailbox "Projects/Archive"
          2019-notes.eml

Every directory is a mailbox and every C{*.eml} file in it a message; hidden
files and directories (a leading dot) are ignored, and so is a top-level
directory called INBOX in any case, whose name would clash with the top
directory's.  Files may use CRLF or bare LF line ends: they are served with
CRLF, as IMAP requires.

UIDs are recorded in a small index file per mailbox (C{.mailhub-archive.json},
in the mailbox's directory or, with C{state_dir}, in a separate tree of the
same shape, so that the archive itself may be read-only media).  When a
mailbox is selected, files not yet in its index get the next UIDs in file
name order, so UIDs and UIDVALIDITY stay the same across restarts and new
files get higher UIDs.  A file that disappears, or whose size or
modification time changes, is reported as expunged (and a changed file
comes back under a new UID), because IMAP never lets the content of a UID
change.  Only one server should serve a given index tree at a time.

The archive is read-only: every mailbox is opened read-only, even by
SELECT, so APPEND, STORE, EXPUNGE, COPY into the archive and changes to the
mailbox tree are refused.  Messages have no flags and none are \\Recent;
INTERNALDATE is the file's modification time.  Subscriptions are kept in
memory for each user, so clients that subscribe work, but they are
forgotten on restart.  Every user who can log in sees the same archive.
All file I/O and MIME parsing run in the backend's thread pool, never on
the reactor thread.

Serve a directory with::

    python examples/eml_archive.py DIR --imap tcp:1143:interface=127.0.0.1 --user alice:secret
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from twisted.internet import task
from twisted.internet.defer import Deferred, DeferredLock
from twisted.internet.threads import deferToThreadPool
from twisted.logger import globalLogBeginner, textFileLogObserver
from twisted.python import usage
from twisted.python.threadpool import ThreadPool
from zope.interface import implementer

from twisted_mailhub.backends.base import BaseMailbox, BaseMailStore, validate_name
from twisted_mailhub.backends.files import replace_file
from twisted_mailhub.config import MailhubSettings, settings_from_mapping
from twisted_mailhub.errors import (
    InvalidMailboxName,
    MailboxNotFound,
    MessageExpunged,
    PermissionDenied,
    ReadOnlyMailbox,
)
from twisted_mailhub.interfaces import IBackend, IMailbox, IMailStore, IMessage, INotifier
from twisted_mailhub.model import (
    AppendRequest,
    FlagUpdate,
    MailboxInfo,
    MailboxStatus,
    MessageMeta,
    MessagesAdded,
    MessagesExpunged,
)
from twisted_mailhub.notify import LocalNotifier
from twisted_mailhub.service import make_service

INDEX_NAME = ".mailhub-archive.json"
"""The file name of a mailbox's index."""

FORMAT_VERSION = 1
_MAX_UIDVALIDITY = 2**32 - 1
_BARE_LF = re.compile(rb"(?<!\r)\n")


# -- the index of one mailbox (built and read in pool threads) -----------------


@dataclass(frozen=True, slots=True)
class Entry:
    """
    One indexed message: its UID and MODSEQ, its file, the file's C{(size,
    mtime_ns)} when indexed, the size served (with CRLF line ends), and
    whether the file already has CRLF line ends so ranges can be read in
    place.
    """

    uid: int
    modseq: int
    name: str
    stamp: tuple[int, int]
    size: int
    native: bool

    def meta(self) -> MessageMeta:
        """The L{MessageMeta} of this message; INTERNALDATE is the file's mtime."""
        internaldate = datetime.fromtimestamp(self.stamp[1] // 10**9, UTC)
        return MessageMeta(self.uid, frozenset(), internaldate, self.size, self.modseq)


@dataclass(frozen=True, slots=True)
class Index:
    """
    A snapshot of a mailbox's index.  Snapshots are never changed: a scan
    builds a new one, which the reactor thread then installs.
    """

    uidvalidity: int
    uidnext: int = 1
    # RFC 7162 wants a positive HIGHESTMODSEQ even for an empty mailbox.
    highestmodseq: int = 1
    entries: dict[int, Entry] = field(default_factory=dict)  # in UID order
    expunged: dict[int, int] = field(default_factory=dict)  # UID -> MODSEQ of removal

    def to_json(self) -> dict[str, Any]:
        """The JSON form stored in the index file."""
        return {
            "version": FORMAT_VERSION,
            "uidvalidity": self.uidvalidity,
            "uidnext": self.uidnext,
            "highestmodseq": self.highestmodseq,
            "messages": [
                [e.uid, e.modseq, e.name, *e.stamp, e.size, e.native]
                for e in self.entries.values()
            ],
            "expunged": sorted(self.expunged.items()),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Index:
        """The index stored as C{data}; raises C{ValueError} or C{KeyError} if malformed."""
        if data["version"] != FORMAT_VERSION:
            raise ValueError(f"unknown index version {data['version']!r}")
        entries = {}
        for uid, modseq, name, disk_size, mtime_ns, size, native in data["messages"]:
            entries[uid] = Entry(uid, modseq, name, (disk_size, mtime_ns), size, native)
        return cls(
            data["uidvalidity"],
            data["uidnext"],
            data["highestmodseq"],
            entries,
            {uid: modseq for uid, modseq in data["expunged"]},
        )


@dataclass(frozen=True, slots=True)
class ScanResult:
    """What one scan of a directory found: the new index and what changed."""

    index: Index
    added: list[Entry]
    expunged: list[int]


def load_index(path: str) -> Index | None:
    """The index stored at C{path}; C{None} if there is none or it is unreadable."""
    try:
        with open(path, "rb") as f:
            return Index.from_json(json.load(f))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError):
        # Starting over under a new UIDVALIDITY is the recovery IMAP
        # defines: clients discard what they cached and fetch again.
        return None


def scan(directory: str, index_path: str, previous: Index | None) -> ScanResult:
    """
    Compare the C{*.eml} files of C{directory} with its index (C{previous},
    or the one stored at C{index_path}), give new files the next UIDs in
    name order, and store the index again if anything changed.

    Raises C{FileNotFoundError} if C{directory} is gone.
    """
    index = previous if previous is not None else load_index(index_path)
    dirty = index is None
    if index is None:
        index = Index(uidvalidity=int(time.time()) % _MAX_UIDVALIDITY + 1)

    found: dict[str, tuple[int, int]] = {}
    with os.scandir(directory) as listing:
        for item in listing:
            if item.name.startswith(".") or not item.name.endswith(".eml"):
                continue
            if item.is_file():
                stat = item.stat()
                found[item.name] = (stat.st_size, stat.st_mtime_ns)

    kept = {uid: e for uid, e in index.entries.items() if found.get(e.name) == e.stamp}
    gone = [uid for uid in index.entries if uid not in kept]
    indexed = {e.name for e in kept.values()}
    fresh = []
    for name in sorted(found.keys() - indexed):
        try:
            with open(os.path.join(directory, name), "rb") as f:
                stat = os.fstat(f.fileno())
                content = f.read()
        except FileNotFoundError:
            continue  # removed since the listing; nothing to index
        served = _BARE_LF.sub(b"\r\n", content)
        fresh.append((name, (stat.st_size, stat.st_mtime_ns), len(served), served == content))

    if not gone and not fresh and not dirty:
        return ScanResult(index, [], [])
    modseq = index.highestmodseq + 1 if gone or fresh else index.highestmodseq
    uid = index.uidnext
    added = []
    for name, stamp, size, native in fresh:
        added.append(Entry(uid, modseq, name, stamp, size, native))
        uid += 1
    index = Index(
        index.uidvalidity,
        uid,
        modseq,
        {**kept, **{e.uid: e for e in added}},
        {**index.expunged, **{g: modseq for g in gone}},
    )
    os.makedirs(os.path.dirname(index_path), exist_ok=True)
    replace_file(index_path, [json.dumps(index.to_json()).encode("utf-8")], 0o644)
    return ScanResult(index, added, gone)


def read_message(path: str, entry: Entry, offset: int, length: int | None) -> bytes:
    """
    Up to C{length} served bytes of C{entry}'s file from C{offset}.  Raises
    L{MessageExpunged} if the file is gone or is no longer the one indexed.
    """
    try:
        with open(path, "rb") as f:
            stat = os.fstat(f.fileno())
            if (stat.st_size, stat.st_mtime_ns) != entry.stamp:
                raise FileNotFoundError(path)  # another file now has the name
            if entry.native:
                f.seek(offset)
                return f.read() if length is None else f.read(length)
            served = _BARE_LF.sub(b"\r\n", f.read())
    except FileNotFoundError:
        raise MessageExpunged(f"Message {entry.uid} no longer exists") from None
    return served[offset:] if length is None else served[offset : offset + length]


def list_names(root: str, skip: str) -> list[str]:
    """The mailbox names of the directories under C{root}, except C{skip}."""
    names = ["INBOX"]
    for directory, subdirectories, _ in os.walk(root):
        kept = []
        for sub in subdirectories:
            path = os.path.join(directory, sub)
            name = os.path.relpath(path, root).replace(os.sep, "/")
            if sub.startswith(".") or path == skip or _unservable(name):
                continue
            kept.append(sub)
            names.append(name)
        subdirectories[:] = kept  # os.walk descends only into these
    return names


def _unservable(name: str) -> bool:
    if name.split("/")[0].upper() == "INBOX":
        return True
    try:
        name.encode("utf-8")  # undecodable bytes come back as lone surrogates
        validate_name(name)
    except (UnicodeEncodeError, InvalidMailboxName):
        return True
    return False


# -- the IMailStore, IMailbox and IMessage ------------------------------------


class _Folder:
    """The state of one mailbox, shared by every session that selects it."""

    def __init__(self, name: str, directory: str, index_path: str) -> None:
        self.name = name
        self.directory = directory
        self.index_path = index_path
        self.key: Hashable = ("eml-archive", directory)
        self.index: Index | None = None
        self.lock = DeferredLock()


@implementer(IMessage)
class ArchiveMessage:
    """One C{.eml} file as FETCH reads it."""

    def __init__(self, backend: ArchiveBackend, path: str, entry: Entry) -> None:
        self.meta = entry.meta()
        self._backend = backend
        self._path = path
        self._entry = entry
        self._structure: Any = None

    async def structure(self) -> Any:
        """The parsed MIME structure, parsed in a pool thread on first use."""
        if self._structure is None:
            from twisted_mailhub.mime.parse import parse_message

            content = await self.read()
            self._structure = await self._backend.run(parse_message, content)
        return self._structure

    async def read(self, offset: int = 0, length: int | None = None) -> bytes:
        """Up to C{length} bytes of the message (with CRLF line ends) from C{offset}."""
        return await self._backend.run(read_message, self._path, self._entry, offset, length)


@implementer(IMailbox)
class ArchiveMailbox(BaseMailbox):
    """A view of one archive directory; always read-only."""

    read_only = True

    def __init__(self, backend: ArchiveBackend, folder: _Folder) -> None:
        assert folder.index is not None
        self._backend = backend
        self._folder = folder
        self.name = folder.name
        self.key = folder.key
        self.notifier = backend.notifier
        self.uidvalidity = folder.index.uidvalidity

    def __repr__(self) -> str:
        return f"<ArchiveMailbox {self.name!r} in {self._backend.root}>"

    @property
    def _index(self) -> Index:
        assert self._folder.index is not None
        return self._folder.index

    async def status(self) -> MailboxStatus:
        """Counters from the index; no file is read."""
        index = self._index
        return MailboxStatus(
            messages=len(index.entries),
            uidnext=index.uidnext,
            uidvalidity=index.uidvalidity,
            unseen=len(index.entries),
            highestmodseq=index.highestmodseq,
            size=sum(e.size for e in index.entries.values()),
        )

    async def uids(self) -> list[int]:
        """All UIDs, ascending."""
        return list(self._index.entries)

    async def metadata(self, uids: Iterable[int]) -> list[MessageMeta]:
        """Metas of the existing messages among C{uids}, ascending."""
        entries = self._index.entries
        return [entries[uid].meta() for uid in sorted(set(uids)) if uid in entries]

    async def open_message(self, uid: int) -> ArchiveMessage:
        """The message with this UID, or L{MessageExpunged}."""
        entry = self._index.entries.get(uid)
        if entry is None:
            raise MessageExpunged(f"Message {uid} no longer exists")
        return ArchiveMessage(self._backend, os.path.join(self._folder.directory, entry.name),
                              entry)

    async def changes_since(self, modseq: int) -> tuple[list[MessageMeta], list[int]]:
        """Files indexed after C{modseq}, and UIDs whose files went away after it."""
        index = self._index
        metas = [e.meta() for e in index.entries.values() if e.modseq > modseq]
        return metas, sorted(uid for uid, when in index.expunged.items() if when > modseq)

    async def claim_recent(self, claim: bool = True) -> list[int]:
        """Nothing in an archive is \\Recent."""
        return []

    async def append(self, requests: Iterable[AppendRequest],
                     origin: Hashable | None = None) -> list[MessageMeta]:
        """Refused: the archive is read-only."""
        raise ReadOnlyMailbox(f"Mailbox is read-only: {self.name}")

    async def store_flags(self, uids: Iterable[int], mode: str, flags: Iterable[str],
                          unchangedsince: int | None = None,
                          origin: Hashable | None = None) -> FlagUpdate:
        """Refused: the archive is read-only."""
        raise ReadOnlyMailbox(f"Mailbox is read-only: {self.name}")

    async def expunge(self, uids: Iterable[int] | None = None,
                      origin: Hashable | None = None) -> list[int]:
        """Refused: the archive is read-only."""
        raise ReadOnlyMailbox(f"Mailbox is read-only: {self.name}")


@implementer(IMailStore)
class ArchiveStore(BaseMailStore):
    """
    The archive's tree as one user's store.  Reads go to the backend; the
    core methods that would change the tree refuse with L{PermissionDenied}
    (L{BaseMailStore} has by then already refused invalid, missing or
    existing names with their own errors).
    """

    def __init__(self, backend: ArchiveBackend, username: str) -> None:
        super().__init__(username, backend.notifier)
        self.backend = backend

    def __repr__(self) -> str:
        return f"<ArchiveStore {self.username} of {self.backend.root}>"

    async def _list(self) -> list[MailboxInfo]:
        return [MailboxInfo(name) for name in await self.backend.list_names()]

    async def _open(self, name: str, read_only: bool) -> ArchiveMailbox:
        return await self.backend.open_mailbox(name)

    async def _create(self, name: str, special_use: frozenset[str], selectable: bool) -> None:
        raise PermissionDenied("The archive is read-only")

    async def _delete(self, name: str) -> None:
        raise PermissionDenied("The archive is read-only")

    async def _make_unselectable(self, name: str) -> None:
        raise PermissionDenied("The archive is read-only")

    async def _rename(self, pairs: list[tuple[str, str]]) -> None:
        raise PermissionDenied("The archive is read-only")

    async def _subscriptions(self) -> set[str]:
        return set(self.backend.subscriptions(self.username))

    async def _subscribe(self, name: str) -> None:
        self.backend.subscriptions(self.username).add(name)

    async def _unsubscribe(self, name: str) -> None:
        self.backend.subscriptions(self.username).discard(name)


@implementer(IBackend)
class ArchiveBackend:
    """
    A read-only archive of C{.eml} files under C{root}, the same for every
    user (see the module docstring for the layout).

    Indexes are written under C{state_dir} (default: C{root} itself), in
    directories of the same shape as C{root}'s.  File I/O runs in a pool of
    at most C{threads} threads, started on first use and stopped by
    L{close}.
    """

    def __init__(self, root: str, *, state_dir: str | None = None,
                 notifier: INotifier | None = None, threads: int = 4) -> None:
        self.root = os.path.abspath(root)
        if not os.path.isdir(self.root):
            raise NotADirectoryError(f"Not a directory: {root}")
        self.state_dir = self.root if state_dir is None else os.path.abspath(state_dir)
        self.notifier = notifier if notifier is not None else LocalNotifier()
        self._folders: dict[str, _Folder] = {}
        self._subscriptions: dict[str, set[str]] = {}
        self._pool = ThreadPool(minthreads=0, maxthreads=threads, name="eml-archive")
        self._shutdown_trigger: Any = None

    def __repr__(self) -> str:
        return f"<ArchiveBackend {self.root}>"

    async def run(self, function: Callable[..., Any], *args: Any) -> Any:
        """Run the blocking C{function(*args)} in the backend's thread pool."""
        from twisted.internet import reactor

        if not self._pool.started:
            self._pool.start()
            # An embedder that never calls close() must not be kept alive
            # by the pool's threads after the reactor stops.
            self._shutdown_trigger = reactor.addSystemEventTrigger(
                "during", "shutdown", self._pool.stop
            )
        return await deferToThreadPool(reactor, self._pool, function, *args)

    async def open_store(self, username: str) -> ArchiveStore:
        """The archive as C{username}'s store."""
        return ArchiveStore(self, username)

    async def close(self) -> None:
        """Stop the worker threads, waiting for running reads."""
        if self._shutdown_trigger is not None:
            from twisted.internet import reactor

            reactor.removeSystemEventTrigger(self._shutdown_trigger)
            self._shutdown_trigger = None
        if self._pool.started:
            self._pool.stop()

    def subscriptions(self, username: str) -> set[str]:
        """The (mutable) set of names C{username} subscribed to."""
        return self._subscriptions.setdefault(username, set())

    async def list_names(self) -> list[str]:
        """Every mailbox name of the archive."""
        return await self.run(list_names, self.root, self.state_dir)

    async def open_mailbox(self, name: str) -> ArchiveMailbox:
        """
        The mailbox C{name} (an existing, valid name), its index brought up
        to date with the directory first.  Sessions that have it selected
        are told of the files that came and went.
        """
        folder = self._folders.get(name)
        if folder is None:
            levels = [] if name == "INBOX" else name.split("/")
            folder = _Folder(
                name,
                os.path.join(self.root, *levels),
                os.path.join(self.state_dir, *levels, INDEX_NAME),
            )
            self._folders[name] = folder
        async with folder.lock:
            try:
                result = await self.run(scan, folder.directory, folder.index_path, folder.index)
            except FileNotFoundError:
                raise MailboxNotFound(f"Mailbox does not exist: {name}") from None
            folder.index = result.index
            if result.expunged:
                self.notifier.publish(folder.key, MessagesExpunged(
                    tuple(result.expunged), result.index.highestmodseq))
            if result.added:
                self.notifier.publish(folder.key, MessagesAdded(
                    tuple(e.meta() for e in result.added)))
        return ArchiveMailbox(self, folder)


# -- serving it ---------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve the archive until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(description="Serve a directory of .eml files over IMAP.")
    parser.add_argument("root", metavar="DIR", help="the archive; its top directory is INBOX")
    parser.add_argument("--imap", action="append", default=[], metavar="ENDPOINT",
                        help="listen for IMAP on this endpoint (repeatable)")
    parser.add_argument("--user", action="append", default=[], metavar="NAME:PASSWORD",
                        help="a user kept in memory (repeatable)")
    parser.add_argument("--passwd", metavar="FILE", help="a password file of NAME:HASH lines")
    parser.add_argument("--state", metavar="DIR",
                        help="keep the indexes here instead of in the archive")
    args = parser.parse_args(argv)
    values: dict[str, Any] = {"imap": args.imap, "user": args.user}
    if args.passwd:
        values["passwd"] = args.passwd
    try:
        settings = settings_from_mapping(values)
        backend = ArchiveBackend(args.root, state_dir=args.state)
    except (usage.UsageError, NotADirectoryError) as e:
        parser.error(str(e))
    # The store URL is only logged when a backend is given.
    settings = replace(settings, store=f"archive of .eml files in {backend.root}")
    task.react(_serve, [settings, backend])


def _serve(reactor: Any, settings: MailhubSettings, backend: ArchiveBackend) -> Deferred:
    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stdout)], redirectStandardIO=False)
    service = make_service(settings, reactor=reactor, backend=backend)
    service.startService()
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    return Deferred()  # never fires: serve until the reactor is stopped


if __name__ == "__main__":
    main()
