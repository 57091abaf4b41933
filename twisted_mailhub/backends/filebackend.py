"""
What the mbox and Maildir backends share, besides their mailboxes
(L{twisted_mailhub.backends.folders}).

L{FileBackend}: the root directory, a thread pool for the file work, the
notifier that other programs' changes are announced through, the summaries
files and full-text indexes, and where each mailbox was last opened, for
the watcher.
L{FileMailStore}: one user's directory, the settings every folder of the
backend shares (L{FolderSettings}), and the checks of names and the
thread hops that only the layout's own functions differ in.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from twisted_mailhub.backends.base import BaseMailStore, validate_name
from twisted_mailhub.backends.folders import FolderMailbox, compact_when_due
from twisted_mailhub.backends.summaryfile import SummaryFiles
from twisted_mailhub.backends.textindex import TextIndexes
from twisted_mailhub.interfaces import INotifier, ISummarizer
from twisted_mailhub.model import MailboxInfo
from twisted_mailhub.notify import LocalNotifier
from twisted_mailhub.watch import DEFAULT_POLL_INTERVAL, ChangeWatcher, PollingTrigger


@dataclass(slots=True)
class FolderSettings:
    """What every folder of one backend shares."""

    lock_timeout: float
    stale_lock_after: float
    new_uidvalidity: Callable[[], int]
    on_lock_wait: Callable[[str], None] | None = None


class FileMailStore(BaseMailStore):
    """
    One user's directory of a L{FileBackend}: the part the mbox and Maildir
    stores share.  A subclass names its L{summary_file} and
    L{text_index_file}, checks each level
    of a name the layout's way (L{_check_level}), and provides the
    L{BaseMailStore} core, the blocking L{_list_sync}, L{_create_sync} and
    L{_edit_subscriptions} among it, and L{_new_uidvalidity}.
    """

    #: The name of the user's summaries file in the directory.
    summary_file: str
    #: The name of the user's full-text index (L{twisted_mailhub.backends.textindex}).
    text_index_file: str

    def __init__(self, backend: FileBackend, username: str, directory: str) -> None:
        super().__init__(username, backend.notifier)
        self.backend = backend
        self.directory = directory
        self.summary_path = os.path.join(directory, self.summary_file)
        self.text_index_path = os.path.join(directory, self.text_index_file)
        self.settings = FolderSettings(
            lock_timeout=backend.lock_timeout,
            stale_lock_after=backend.stale_lock_after,
            new_uidvalidity=self._new_uidvalidity,
            on_lock_wait=backend._lock_wait,
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.username}>"

    # -- what a subclass says -------------------------------------------------

    @staticmethod
    def _check_level(level: str) -> None:
        """Raise L{InvalidMailboxName} for a level this layout cannot hold."""
        raise NotImplementedError

    def _list_sync(self) -> list[MailboxInfo]:
        raise NotImplementedError

    def _create_sync(self, name: str, special_use: frozenset[str], selectable: bool) -> None:
        raise NotImplementedError

    def _edit_subscriptions(self, change: Callable[[set[str]], set[str]] | None) -> set[str]:
        """The subscribed names, changed by C{change} if given (blocks)."""
        raise NotImplementedError

    def _new_uidvalidity(self) -> int:
        raise NotImplementedError

    # -- names this layout refuses, checked before any lookup ----------------

    def _check(self, name: str) -> str:
        name = validate_name(name, self.delimiter)
        for level in name.split(self.delimiter):
            self._check_level(level)
        return name

    async def get_mailbox(self, name: str, read_only: bool = False) -> Any:
        """The mailbox C{name}; see L{IMailStore.get_mailbox}."""
        return await super().get_mailbox(self._check(name), read_only)

    async def create_mailbox(self, name: str, special_use: frozenset[str] = frozenset()) -> None:
        """Create C{name} and its superiors; see L{IMailStore.create_mailbox}."""
        if name.endswith(self.delimiter) and len(name) > 1:
            name = name[:-1]
        await super().create_mailbox(self._check(name), special_use)

    async def delete_mailbox(self, name: str) -> None:
        """Delete C{name}; see L{IMailStore.delete_mailbox}."""
        await super().delete_mailbox(self._check(name))

    async def rename_mailbox(self, old: str, new: str) -> None:
        """Rename C{old} and its inferiors; see L{IMailStore.rename_mailbox}."""
        await super().rename_mailbox(self._check(old), self._check(new))

    # -- the BaseMailStore core, in the backend's threads -----------------------

    async def _list(self) -> list[MailboxInfo]:
        return await self.backend.run(self._list_sync)

    async def _create(self, name: str, special_use: frozenset[str], selectable: bool) -> None:
        await self.backend.run(self._create_sync, name, special_use, selectable)

    async def _subscriptions(self) -> set[str]:
        return await self.backend.run(self._edit_subscriptions, None)

    async def _subscribe(self, name: str) -> None:
        await self.backend.run(self._edit_subscriptions, lambda names: names | {name})

    async def _unsubscribe(self, name: str) -> None:
        await self.backend.run(self._edit_subscriptions, lambda names: names - {name})


class FileBackend:
    """
    A backend keeping each user's mail in files under C{root/<user>/}: the
    part the mbox and Maildir backends share.  A subclass names its
    L{kind}, its L{mailbox_class} and L{cache_class}, its default
    C{stale_lock_after}, the store of a user (L{_store}), what a user's
    tree needs before use (L{_prepare}) and what watches its files
    (L{_probe}).

    C{lock_timeout} bounds every wait for a lock another program holds
    (then the operation fails with L{StoreUnavailable}); a lock older than
    C{stale_lock_after} seconds is broken.  C{on_lock_wait}, if given, is
    called on the reactor thread with the locked file's path whenever an
    operation starts waiting.
    """

    #: The first item of every mailbox key, and the name of the threads.
    kind: str
    mailbox_class: type[FolderMailbox]
    #: Made with no argument: what the backend keeps of its folders between operations.
    cache_class: type
    default_stale_lock_after: float

    def __init__(
        self,
        root: str,
        *,
        notifier: INotifier | None = None,
        lock_timeout: float = 30.0,
        stale_lock_after: float | None = None,
        threads: int = 4,
        on_lock_wait: Callable[[str], None] | None = None,
    ) -> None:
        self.root = os.path.abspath(root)
        os.makedirs(self.root, 0o700, exist_ok=True)
        # Local events pass through it; watch_changes() adds other programs'.
        self.notifier = ChangeWatcher(
            self._watched_mailbox, notifier if notifier is not None else LocalNotifier(),
            read_tree=self._watched_tree,
        )
        # Mailbox key -> (store, name, path, identity) as last opened.
        self._opened: dict[Hashable, tuple[Any, str, str, str]] = {}
        self.lock_timeout = lock_timeout
        self.stale_lock_after = (self.default_stale_lock_after if stale_lock_after is None
                                 else stale_lock_after)
        self.on_lock_wait = on_lock_wait
        self.summarizer: ISummarizer | None = None
        self.summary_files = SummaryFiles()
        self.text_indexes = TextIndexes()
        #: The compaction of each summaries file under way (L{compact_when_due}).
        self.summary_compactions: dict[str, Any] = {}
        self.cache = self.cache_class()
        self._pool = ThreadPool(minthreads=0, maxthreads=threads, name=f"{self.kind}-backend")
        self._shutdown_trigger = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.root}>"

    # -- what a subclass says -------------------------------------------------

    def _store(self, username: str) -> Any:
        """The store of C{username} (not prepared yet)."""
        raise NotImplementedError

    def _prepare(self, store: Any) -> None:
        """Make what a new user's tree needs (blocks; idempotent)."""
        raise NotImplementedError

    def _probe(self) -> Any:
        """What compares the files of watched mailboxes (L{PollingTrigger})."""
        raise NotImplementedError

    # -- the backend --------------------------------------------------------

    def use_summarizer(self, summarizer: ISummarizer | None) -> None:
        """
        L{ISummarizingBackend}: each appended message's summaries are
        computed in the backend's threads and written to the user's
        summaries file with the message.
        """
        self.summarizer = summarizer

    def mailbox_key(self, identity: str) -> Hashable:
        """The L{IMailbox.key} of the mailbox whose folder has C{identity}."""
        return (self.kind, self.root, identity)

    async def run(self, function: Callable[..., Any], *args: Any) -> Any:
        """Run the blocking C{function} in the backend's thread pool."""
        from twisted.internet import reactor

        if not self._pool.started:
            # Started on first use, so that a backend that is never used
            # or never closed does not keep threads; the reactor stops the
            # pool when it shuts down.
            self._pool.start()
            self._shutdown_trigger = reactor.addSystemEventTrigger(
                "during", "shutdown", self._pool.stop
            )
        return await deferToThreadPool(reactor, self._pool, function, *args)

    async def open_store(self, username: str) -> Any:
        """The tree of C{username}, created with an empty INBOX on first use."""
        store = self._store(username)

        def prepare() -> int:
            self._prepare(store)
            return self.summary_files.at(store.summary_path).opened()

        compact_when_due(store, await self.run(prepare))
        return store

    async def close(self) -> None:
        """Stop watching and the worker threads (waiting for running operations)."""
        await self.notifier.stop()
        if self._shutdown_trigger is not None:
            from twisted.internet import reactor

            reactor.removeSystemEventTrigger(self._shutdown_trigger)
            self._shutdown_trigger = None
        if self._pool.started:
            self._pool.stop()

    # -- changes made by other programs ---------------------------------------

    def watch_changes(self, poll_interval: float = DEFAULT_POLL_INTERVAL) -> None:
        """
        Announce what other programs (local delivery, mutt, Dovecot,
        another server process) do to mailboxes with listeners here, by
        comparing the size, mtime and inode of their files every
        C{poll_interval} seconds while some mailbox has listeners.
        Idempotent.
        """
        if not self.notifier.started:
            self.notifier.start(PollingTrigger(self._probe(), poll_interval))

    def opened(self, store: Any, name: str, path: str, identity: str) -> None:
        """Remember where the mailbox with C{identity} was last opened."""
        self._opened[self.mailbox_key(identity)] = (store, name, path, identity)

    def watched_path(self, key: Hashable) -> str | None:
        """The file or directory of the mailbox C{key} as last opened, if it was."""
        found = self._opened.get(key)
        return None if found is None else found[2]

    async def _watched_tree(self, username: str) -> Any:
        from twisted_mailhub.backends.filetree import read_tree

        return await read_tree(self, username)

    def _watched_mailbox(self, key: Hashable) -> FolderMailbox | None:
        found = self._opened.get(key)
        if found is None:
            return None
        store, name, path, identity = found
        return self.mailbox_class(store, name, path, identity, 0, True)

    def _lock_wait(self, path: str) -> None:
        if self.on_lock_wait is not None:
            from twisted.internet import reactor

            reactor.callFromThread(self.on_lock_wait, path)
