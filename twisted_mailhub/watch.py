"""
Changes made by other processes, announced to this process's listeners.

Several server processes may share one store (an SQLite file, a PostgreSQL
database, a directory of mbox files that local delivery also writes).  Each
process's L{LocalNotifier} only hears the writes of its own process;
L{ChangeWatcher} fills the gap without knowing anything about the store:

  - it is the backend's L{INotifier} (wrapping the local one), so it knows
    which mailbox keys have listeners here and sees every event this
    process publishes;
  - for each watched key it remembers what this process last knew
    (HIGHESTMODSEQ, UIDNEXT, UIDVALIDITY from L{IMailbox.status});
  - when an L{IChangeTrigger} (store specific: a cheap poll, LISTEN/NOTIFY,
    file signatures) says a key may have changed, it reads C{status()}
    again and, if it moved, turns L{IMailbox.changes_since} into
    L{MessagesAdded}, L{FlagsChanged} and L{MessagesExpunged} events
    published to the same listeners as local ones.

Events this process published itself are not announced again: the MODSEQ
of every local event is noted and the messages, flag changes and expunges
carrying it are left out of what C{changes_since} returns.  What slips
through (a change committed here between a poll and its read) is announced
twice, which listeners must tolerate anyway.

A message appended here must not be announced before a lower UID that
another process appended first (sequence numbers follow UIDs, RFC 3501
section 2.3.1.2).  A local L{MessagesAdded} whose first UID is above the
UIDNEXT this process knows is therefore held back and published by the next
check, in UID order with the messages it skipped.

A user's tree of mailboxes (its L{TreeKey}) is watched too when the backend
can read a L{TreeSnapshot} of it: the names, identities (kept by a rename)
and selectability of its mailboxes and its subscriptions.  When the trigger
says the tree may have changed, a new snapshot is compared with the last
one and the difference published as L{MailboxCreated}, L{MailboxDeleted},
L{MailboxRenamed} and L{SubscriptionChanged}.  Differences that a tree
event published here explains (the same names) are left out: they were
told when they were made.  The backend reads a snapshot while no change of
the tree is under way in this process, so each local change is in it with
its event published, or not at all.  A local tree event makes the tree be
read again at once, so that another process cannot undo the change
between two reads unseen.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Hashable, Iterable

from twisted.internet import defer
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import Attribute, Interface, implementer

from twisted_mailhub.errors import MailboxNotFound
from twisted_mailhub.interfaces import IBackend, IMailbox, IMailboxListener, INotifier
from twisted_mailhub.model import (
    FlagsChanged,
    MailboxEvent,
    MailboxRemoved,
    MessageMeta,
    MessagesAdded,
    MessagesExpunged,
    TreeEvent,
    TreeKey,
)
from twisted_mailhub.notify import LocalNotifier
from twisted_mailhub.trees import TreeSnapshot, explained, tree_changes

log = Logger()

#: Default seconds between two polls of a polling trigger.
DEFAULT_POLL_INTERVAL = 0.05


class IChangeTrigger(Interface):
    """
    Tells a L{ChangeWatcher} when watched mailboxes may have changed.

    Every method is called on the reactor thread; the trigger calls
    L{ChangeWatcher.check} or L{ChangeWatcher.removed} on the reactor
    thread too.  Anything that may block runs elsewhere.
    """

    def start(watcher):
        """Begin serving C{watcher} (a L{ChangeWatcher})."""

    def watch(key):
        """C{key} has listeners in this process now."""

    def unwatch(key):
        """C{key} has no listener left in this process."""

    def changed_here(key, event):
        """
        This process committed C{event} (a L{MailboxEvent}) to C{key}, or a
        L{TreeEvent} to a L{TreeKey}; a trigger whose transport needs
        writers to speak up (NOTIFY) does so.
        """

    def stop():
        """Asynchronous.  Stop; no call reaches the watcher afterwards."""


class IWatchableBackend(IBackend):
    """Optional: a backend that can announce other processes' changes."""

    notifier = Attribute("A L{ChangeWatcher}.")

    def watch_changes(poll_interval=DEFAULT_POLL_INTERVAL):
        """
        Start announcing changes made by other processes (idempotent).
        C{poll_interval} is in seconds, for triggers that poll.  Stopped by
        L{IBackend.close}.
        """


def _watchable(key: Hashable) -> bool:
    """Whether C{key} names a mailbox (a L{TreeKey} has no status to compare)."""
    return not isinstance(key, TreeKey)


@dataclass(eq=False, slots=True)
class _WatchedTree:
    """What this process knows of one watched tree."""

    snapshot: TreeSnapshot | None = None
    # Tree events published here that the next comparison may find.
    local: list[TreeEvent] = field(default_factory=list)
    checking: bool = False
    again: bool = False
    # Waiting for the first snapshot (L{ChangeWatcher.watching}).
    waiting: list[defer.Deferred] = field(default_factory=list)

    def settled(self) -> None:
        waiting, self.waiting = self.waiting, []
        for d in waiting:
            d.callback(None)


@dataclass(eq=False, slots=True)
class _Watched:
    """What this process knows of one watched mailbox."""

    mailbox: IMailbox | None = None
    # None until the first status() came back.
    modseq: int | None = None
    uidnext: int = 0
    uidvalidity: int = 0
    # MODSEQs of events published here above `modseq`; UID -> MODSEQ of
    # local expunges not yet below `modseq`.
    local: set[int] = field(default_factory=set)
    local_expunged: dict[int, int] = field(default_factory=dict)
    held: list[MessagesAdded] = field(default_factory=list)
    held_retried: bool = False
    checking: bool = False
    again: bool = False
    removed: bool = False


@implementer(INotifier)
class ChangeWatcher:
    """
    An L{INotifier} that also announces changes other processes made.

    C{resolve(key)} returns (or returns an awaitable of) an L{IMailbox}
    whose C{status} and C{changes_since} describe C{key}, or C{None}.
    C{read_tree(username)}, if given, returns an awaitable of the
    L{TreeSnapshot} of that user's tree, read while no change of it runs
    in this process (L{twisted_mailhub.backends.base.holding_tree}): the
    L{TreeKey}s with listeners
    are then watched too, and the trigger is told of them (L{IChangeTrigger.watch})
    like mailbox keys.  Until L{start} is given a trigger this is a plain
    pass-through to C{inner}.
    """

    def __init__(self, resolve: Callable[[Hashable], Any],
                 inner: INotifier | None = None, *,
                 read_tree: Callable[[str], Awaitable[TreeSnapshot]] | None = None) -> None:
        self.inner = inner if inner is not None else LocalNotifier()
        self._resolve = resolve
        self._read_tree = read_tree
        self._trigger: IChangeTrigger | None = None
        self._listeners: dict[Hashable, list[IMailboxListener]] = {}
        self._watched: dict[Hashable, _Watched] = {}
        self._trees: dict[TreeKey, _WatchedTree] = {}
        self._running: set[defer.Deferred] = set()

    @property
    def started(self) -> bool:
        """Whether a trigger is running."""
        return self._trigger is not None

    def start(self, trigger: IChangeTrigger) -> None:
        """Start watching with C{trigger}; the keys already listened to first."""
        if self._trigger is not None:
            return
        self._trigger = trigger
        trigger.start(self)
        for key in self._listeners:
            if self._can_watch(key):
                self._watch(key)

    async def stop(self) -> None:
        """Stop the trigger and wait for the checks under way."""
        trigger, self._trigger = self._trigger, None
        watched, self._watched = self._watched, {}
        trees, self._trees = self._trees, {}
        for tree in trees.values():
            tree.settled()
        for key, state in watched.items():
            # Nothing will look again: what was held back goes out as it is.
            for event in state.held:
                self.inner.publish(key, event)
        if trigger is not None:
            await _awaited(trigger.stop())
        while self._running:
            await defer.DeferredList(list(self._running))

    # -- INotifier ---------------------------------------------------------

    def subscribe(self, key: Hashable, listener: IMailboxListener) -> None:
        """Deliver C{key}'s events to C{listener}; the first one starts a watch."""
        listeners = self._listeners.setdefault(key, [])
        if listener not in listeners:
            listeners.append(listener)
        self.inner.subscribe(key, listener)
        if (self._trigger is not None and key not in self._watched
                and key not in self._trees and self._can_watch(key)):
            self._watch(key)

    def unsubscribe(self, key: Hashable, listener: IMailboxListener) -> None:
        """Stop delivering; the last listener of C{key} ends its watch."""
        self.inner.unsubscribe(key, listener)
        listeners = self._listeners.get(key)
        if listeners and listener in listeners:
            listeners.remove(listener)
        if listeners is not None and not listeners:
            del self._listeners[key]
            watched = self._watched.pop(key, None) or self._trees.pop(key, None)
            if isinstance(watched, _WatchedTree):
                watched.settled()
            if watched is not None and self._trigger is not None:
                self._trigger.unwatch(key)

    def publish(self, key: Hashable, event: MailboxEvent) -> None:
        """A change committed by this process: deliver it and note it."""
        if not _watchable(key):
            if self._trigger is not None and self._read_tree is not None:
                self._trigger.changed_here(key, event)
            tree = self._trees.get(key)
            if tree is not None:
                tree.local.append(event)
                # Read the tree again soon, so that the snapshot holds this
                # change before another process can undo it unseen.
                self._check_tree_soon(key)
            self.inner.publish(key, event)
            return
        if self._trigger is not None:
            self._trigger.changed_here(key, event)
        state = self._watched.get(key)
        if state is not None and not self._note_local(key, state, event):
            return
        self.inner.publish(key, event)

    # -- called by triggers ------------------------------------------------

    def watching(self, key: Hashable) -> defer.Deferred:
        """
        Fires once C{key} (a L{TreeKey}) is watched from what it holds now,
        so that a change another process makes afterwards is told; at once
        if it is not watched.
        """
        tree = self._trees.get(key) if isinstance(key, TreeKey) else None
        if tree is None or tree.snapshot is not None:
            return defer.succeed(None)
        d: defer.Deferred = defer.Deferred()
        tree.waiting.append(d)
        return d

    def watched(self) -> list[Hashable]:
        """The keys with listeners in this process (trees watched included)."""
        return list(self._watched) + list(self._trees)

    def check(self, key: Hashable | None = None) -> None:
        """C{key} (every watched key when C{None}) may have changed: look."""
        keys = self.watched() if key is None else [key]
        for each in keys:
            if isinstance(each, TreeKey):
                self._check_tree_soon(each)
                continue
            state = self._watched.get(each)
            if state is None or state.removed:
                continue
            if state.checking:
                state.again = True
                continue
            self._run(self._check(each, state))

    def announce(self, key: Hashable, event: MailboxEvent) -> None:
        """
        Another process made a change to C{key} that no status shows (an
        L{AccessKeyReset}): tell this process's listeners, if it is watched.
        """
        state = self._watched.get(key)
        if state is not None and not state.removed:
            self.inner.publish(key, event)

    def removed(self, key: Hashable) -> None:
        """C{key} was deleted or renamed away by another process."""
        state = self._watched.get(key)
        if state is not None and not state.removed:
            state.removed = True
            self.inner.publish(key, MailboxRemoved())

    # -- inside ------------------------------------------------------------

    def _can_watch(self, key: Hashable) -> bool:
        return _watchable(key) or (isinstance(key, TreeKey) and self._read_tree is not None)

    def _watch(self, key: Hashable) -> None:
        assert self._trigger is not None
        if isinstance(key, TreeKey):
            tree = self._trees[key] = _WatchedTree(checking=True)
            self._trigger.watch(key)
            self._run(self._check_tree(key, tree))
            return
        state = self._watched[key] = _Watched()
        self._trigger.watch(key)
        state.checking = True
        self._run(self._check(key, state, baseline=True))

    def _check_tree_soon(self, key: TreeKey) -> None:
        tree = self._trees.get(key)
        if tree is None:
            return
        if tree.checking:
            tree.again = True
            return
        tree.checking = True
        self._run(self._check_tree(key, tree))

    async def _check_tree(self, key: TreeKey, tree: _WatchedTree) -> None:
        assert self._read_tree is not None
        try:
            while self._trees.get(key) is tree:
                tree.again = False
                # A local event published during the read may or may not
                # be in what it returns: it explains this comparison and
                # the next.
                before = len(tree.local)
                snapshot = await self._read_tree(key.username)
                if self._trees.get(key) is not tree:
                    return
                known, tree.local = tree.local, tree.local[before:]
                previous, tree.snapshot = tree.snapshot, snapshot
                tree.settled()
                if previous is not None:
                    for event in tree_changes(previous, snapshot):
                        if not explained(event, known, snapshot.delimiter):
                            self.inner.publish(key, event)
                if not tree.again:
                    break
        finally:
            tree.checking = False
            # Also when the read failed: the next check reads it again.
            tree.settled()

    def _run(self, coroutine: Any) -> None:
        d = defer.ensureDeferred(coroutine)
        self._running.add(d)
        d.addErrback(lambda f: log.failure("Checking a mailbox for changes failed", f))
        d.addBoth(lambda _: self._running.discard(d))

    def _note_local(self, key: Hashable, state: _Watched, event: MailboxEvent) -> bool:
        """Remember a local event; False if it is held back for the next check."""
        if isinstance(event, MailboxRemoved):
            state.removed = True
            return True
        if state.modseq is None:
            return True
        if isinstance(event, MessagesExpunged):
            state.local.add(event.modseq)
            for uid in event.uids:
                state.local_expunged[uid] = event.modseq
        elif isinstance(event, (MessagesAdded, FlagsChanged)):
            state.local.update(meta.modseq for meta in event.messages)
        if isinstance(event, MessagesAdded) and event.messages:
            first = event.messages[0].uid
            if first > state.uidnext or state.held:
                # A lower UID came from elsewhere and is not announced yet.
                state.held.append(event)
                self.check(key)
                return False
            state.uidnext = max(state.uidnext, event.messages[-1].uid + 1)
        while state.modseq + 1 in state.local:
            state.modseq += 1
            state.local.discard(state.modseq)
        return True

    async def _check(self, key: Hashable, state: _Watched, baseline: bool = False) -> None:
        state.checking = True
        try:
            while self._watched.get(key) is state and not state.removed:
                state.again = False
                await self._check_once(key, state, baseline)
                baseline = False
                if not state.again:
                    break
        finally:
            state.checking = False

    async def _check_once(self, key: Hashable, state: _Watched, baseline: bool) -> None:
        if state.mailbox is None:
            state.mailbox = await _awaited(self._resolve(key))
            if state.mailbox is None:
                return
        mailbox = state.mailbox
        try:
            status = await mailbox.status()
        except MailboxNotFound:
            if self._watched.get(key) is state:
                self.removed(key)
            return
        if self._watched.get(key) is not state:
            return
        if baseline or state.modseq is None:
            state.modseq = max(status.highestmodseq, state.modseq or 0)
            state.uidnext = max(status.uidnext, state.uidnext)
            state.uidvalidity = status.uidvalidity
            return
        if status.uidvalidity != state.uidvalidity:
            self.removed(key)
            return
        if (status.highestmodseq <= state.modseq and status.uidnext <= state.uidnext
                and not state.held):
            return
        since = state.modseq
        metas, gone = await mailbox.changes_since(since)
        if self._watched.get(key) is not state or state.removed:
            return
        # A change committed after the status was read may be this
        # process's own, its event not published yet (the writer's result
        # can come back after this read): it is left for the next check,
        # which its commit triggers.
        metas = [meta for meta in metas if meta.modseq <= status.highestmodseq]
        # Local events published during the read may have moved state.modseq
        # past changes read as new (and dropped them from state.local):
        # everything up to it has been announced or is this process's own.
        known = state.modseq
        held_events, state.held = state.held, []
        held = {meta.uid for event in held_events for meta in event.messages}
        # Held messages this read predates wait for the next one.
        seen = {meta.uid for meta in metas} | set(gone)
        unseen = [e for e in held_events if any(m.uid not in seen for m in e.messages)]
        if unseen and not state.held_retried:
            state.held, state.held_retried, state.again = unseen, True, True
        else:
            state.held_retried = False
        added: list[MessageMeta] = []
        flagged: list[MessageMeta] = []
        for meta in sorted(metas, key=lambda m: m.uid):
            if meta.uid >= state.uidnext or meta.uid in held:
                added.append(meta)
            elif meta.modseq > known and meta.modseq not in state.local:
                flagged.append(meta)
        expunged = tuple(uid for uid in gone if uid not in state.local_expunged)
        floor = max(state.modseq, status.highestmodseq)
        state.modseq = floor
        state.local = {m for m in state.local if m > floor}
        state.local_expunged = {u: m for u, m in state.local_expunged.items() if m > floor}
        if added:
            state.uidnext = max(state.uidnext, added[-1].uid + 1)
        state.uidnext = max(state.uidnext, status.uidnext)
        if expunged:
            self.inner.publish(key, MessagesExpunged(expunged, status.highestmodseq))
        if flagged:
            self.inner.publish(key, FlagsChanged(tuple(flagged)))
        if added:
            self.inner.publish(key, MessagesAdded(tuple(added)))
        if unseen and not state.held:
            # Read twice without them: announce them as they were.
            for event in unseen:
                state.uidnext = max(state.uidnext, event.messages[-1].uid + 1)
                self.inner.publish(key, event)


def _passing(result: Any, finished: defer.Deferred) -> Any:
    finished.callback(None)
    return result


async def _awaited(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


@implementer(IChangeTrigger)
class PollingTrigger:
    """
    Polls while some key is watched: every C{interval} seconds,
    C{probe(keys)} (which must not block the reactor: it hands its work to
    a thread) returns, or returns an awaitable of, the keys that changed.
    One probe runs at a time.  C{on_changed_here}, if given, is called
    with each L{IChangeTrigger.changed_here}, C{on_watch} with each key
    as it starts being watched.
    """

    def __init__(self, probe: Callable[[list[Hashable]], Awaitable[Iterable[Hashable]] | Any],
                 interval: float = DEFAULT_POLL_INTERVAL, *, clock: Any = None,
                 on_changed_here: Callable[[Hashable, MailboxEvent], None] | None = None,
                 on_watch: Callable[[Hashable], None] | None = None,
                 on_stop: Callable[[], Any] | None = None) -> None:
        if interval <= 0:
            raise ValueError(f"The poll interval must be positive, not {interval!r}")
        self.interval = interval
        self._probe = probe
        self._clock = clock
        self._on_changed_here = on_changed_here
        self._on_watch = on_watch
        self._on_stop = on_stop
        self._watcher: ChangeWatcher | None = None
        self._keys: set[Hashable] = set()
        self._loop: LoopingCall | None = None
        self._loop_done: defer.Deferred | None = None
        # The poll running, if one is.
        self._polling: defer.Deferred | None = None
        self._failing = False

    def start(self, watcher: ChangeWatcher) -> None:
        self._watcher = watcher

    def watch(self, key: Hashable) -> None:
        self._keys.add(key)
        if self._on_watch is not None:
            self._on_watch(key)
        if self._loop is None and self._watcher is not None:
            self._loop = LoopingCall(self._poll)
            if self._clock is not None:
                self._loop.clock = self._clock
            self._loop_done = self._loop.start(self.interval, now=False)
            self._loop_done.addErrback(lambda f: log.failure("Change polling stopped", f))

    def unwatch(self, key: Hashable) -> None:
        self._keys.discard(key)
        if not self._keys:
            self._stop_loop()

    def changed_here(self, key: Hashable, event: MailboxEvent) -> None:
        if self._on_changed_here is not None:
            self._on_changed_here(key, event)

    async def stop(self) -> None:
        self._watcher = None
        self._keys.clear()
        done = self._stop_loop()
        if done is not None:
            await done
        # A poll still running (of a loop stopped when its last key went,
        # too) may still use what on_stop and the backend close.
        polling = self._polling
        if polling is not None and not polling.called:
            finished: defer.Deferred = defer.Deferred()
            polling.addBoth(_passing, finished)
            await finished
        if self._on_stop is not None:
            await _awaited(self._on_stop())

    def _stop_loop(self) -> defer.Deferred | None:
        loop, done = self._loop, self._loop_done
        self._loop = self._loop_done = None
        if loop is not None and loop.running:
            loop.stop()
        return done

    def _poll(self) -> defer.Deferred:
        self._polling = defer.ensureDeferred(self._tick())
        return self._polling

    async def _tick(self) -> None:
        keys = sorted(self._keys, key=repr)
        if not keys:
            return
        try:
            changed = await _awaited(self._probe(keys))
        except Exception:
            if not self._failing:
                log.failure("Polling for changes failed; retrying")
            self._failing = True
            return
        self._failing = False
        watcher = self._watcher
        if watcher is None:
            return
        for key in changed:
            if key in self._keys:
                watcher.check(key)
