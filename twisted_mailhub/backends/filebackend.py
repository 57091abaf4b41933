"""
L{FileBackend}: what the mbox and Maildir backends share, besides their
mailboxes (L{twisted_mailhub.backends.folders}): the root directory, a
thread pool for the file work, the notifier that other programs' changes
are announced through, the summaries files, the settings every folder of
the backend shares (L{FolderSettings}), and where each mailbox was last
opened, for the watcher.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from twisted_mailhub.backends.folders import FolderMailbox, compact_when_due
from twisted_mailhub.backends.summaryfile import SummaryFiles
from twisted_mailhub.interfaces import INotifier, ISummarizer
from twisted_mailhub.notify import LocalNotifier
from twisted_mailhub.watch import DEFAULT_POLL_INTERVAL, ChangeWatcher, PollingTrigger


@dataclass(slots=True)
class FolderSettings:
    """What every folder of one backend shares."""

    lock_timeout: float
    stale_lock_after: float
    new_uidvalidity: Callable[[], int]
    on_lock_wait: Callable[[str], None] | None = None


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
            self._watched_mailbox, notifier if notifier is not None else LocalNotifier()
        )
        # Mailbox key -> (store, name, path, identity) as last opened.
        self._opened: dict[Hashable, tuple[Any, str, str, str]] = {}
        self.lock_timeout = lock_timeout
        self.stale_lock_after = (self.default_stale_lock_after if stale_lock_after is None
                                 else stale_lock_after)
        self.on_lock_wait = on_lock_wait
        self.summarizer: ISummarizer | None = None
        self.summary_files = SummaryFiles()
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
