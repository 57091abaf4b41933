"""
The in-process index of a mailbox: what every session of this process that
has the mailbox selected shares.

A L{MailboxIndex} holds the L{MessageMeta} of a mailbox's messages (UIDs,
flags, MODSEQs, sizes, dates) and small per-message values derived from
their content (the protocol layer keeps pre-rendered ENVELOPE and
BODYSTRUCTURE there, see L{MailboxIndex.memo}).  It is filled lazily from
the store and kept current by the store's change events, which it listens
to like a session does; so a FETCH of flags, or a flag-only SEARCH, reads
no row of the store once the index is warm.

The index is a cache and never the record: it is checked against the
store's L{MailboxStatus} (HIGHESTMODSEQ, message count, UIDNEXT) whenever a
session opens the mailbox, and dropped when they disagree.  Two rules keep
it exact while loads from the store are in flight:

  - a loaded meta never replaces one with a higher MODSEQ (the event that
    brought the newer one came after the read);
  - an expunged UID is remembered, so a load that was in flight, or an
    event that was late, cannot bring it back (UIDs are never reused).

L{IndexedMailbox} puts an index in front of any L{IMailbox}: it provides
what the wrapped mailbox provides and answers C{uids} and C{metadata} from
the index.  L{acquire} and L{release} share one index per mailbox among the
sessions of a process, which also share one \\Recent claim per new message
(L{MailboxIndex.claim_recent}); memoised values a store can keep
(L{ISummaryStore}) are handed to it and asked back in bulk.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from dataclasses import replace
from types import MappingProxyType
from typing import AbstractSet, Any, Callable, Hashable, Iterable, Mapping
from weakref import WeakKeyDictionary

from twisted.internet.defer import Deferred
from zope.interface import implementer, providedBy
from zope.interface.declarations import directlyProvides

from twisted_mailhub.interfaces import IMailbox, IMailboxListener, INotifier, ISummaryStore
from twisted_mailhub.model import (
    FlagsChanged,
    MailboxEvent,
    MailboxRemoved,
    MailboxStatus,
    MessageMeta,
    MessagesAdded,
    MessagesExpunged,
)

#: Loading more than this fraction of a mailbox's messages loads all of them.
FULL_LOAD_FRACTION = 0.25

#: Bytes of memoised values one index keeps at most, and all indexes of the
#: process together.  Past them new values are not kept (rather than older
#: ones dropped: a FETCH 1:* of a mailbox larger than the budget would
#: otherwise evict each value before it is asked for again).
MEMO_BUDGET = 64 * 1024 * 1024
PROCESS_MEMO_BUDGET = 256 * 1024 * 1024


class _MemoUse:
    """The bytes of memoised values held by all indexes of the process."""

    used = 0

#: Expunged UIDs an index remembers before it starts afresh.
MAX_TOMBSTONES = 100_000

_NONE: frozenset[int] = frozenset()

#: Unused indexes a process keeps warm (and subscribed) for a later SELECT.
KEEP_UNUSED = 16


@implementer(IMailboxListener)
class MailboxIndex:
    """
    The shared metadata of one mailbox (identified by its C{key}) in this
    process.  Create it through L{acquire}.
    """

    def __init__(self, mailbox: IMailbox) -> None:
        self.key: Hashable = mailbox.key
        self._mailbox = mailbox
        self._metas: dict[int, MessageMeta] = {}
        # Whether _metas holds every message of the mailbox.
        self._complete = False
        # The store's HIGHESTMODSEQ that the index is known to be current
        # with: read at the first validate() or full load, then advanced by
        # events only (a load does not prove that no change was missed).
        # None until the index is first checked against the store.
        self.highestmodseq: int | None = None
        self._max_uid = 0
        # Expunged UIDs, which a load in flight or a late event may still name.
        self._gone: set[int] = set()
        # Interned flag sets: most messages share a handful of them.
        self._flagsets: dict[frozenset[str], frozenset[str]] = {}
        # The UIDs held with each interned flag set, kept with _metas: a
        # flag search unites a few sets instead of testing every message.
        self._by_flags: dict[frozenset[str], set[int]] = {}
        # Memoised values per message.
        self._memo: dict[int, dict[str, bytes]] = {}
        self._memo_bytes = 0
        # Memoised values the store keeps but does not have yet.
        self._unsaved: dict[int, dict[str, bytes]] = {}
        # Messages the store was asked for kept values of and had none.
        self._not_kept: set[int] = set()
        # Messages whose raw header the store did not give (recall_headers).
        self._no_header: set[int] = set()
        self.users = 0
        self.removed = False
        # Every UID up to this was claimed by a session of this process.
        self._claimed_upto = 0
        self._claiming: bool | None = None
        self._claiming_upto = 0
        self._claim_waiters: list[Deferred] = []

    def __repr__(self) -> str:
        state = "complete" if self._complete else "partial"
        return f"<MailboxIndex {self.key!r} {len(self._metas)} messages, {state}>"

    @property
    def complete(self) -> bool:
        return self._complete

    @property
    def count(self) -> int:
        """How many messages the index holds."""
        return len(self._metas)

    # -- keeping current ---------------------------------------------------------

    def mailbox_event(self, event: MailboxEvent) -> None:
        if isinstance(event, (MessagesAdded, FlagsChanged)):
            for meta in event.messages:
                self._merge(meta)
                self._advance(meta.modseq)
        elif isinstance(event, MessagesExpunged):
            for uid in event.uids:
                self._forget(uid)
            self._advance(event.modseq)
        elif isinstance(event, MailboxRemoved):
            self.removed = True
            self.reset()

    def _merge(self, meta: MessageMeta) -> None:
        if meta.uid in self._gone:
            return
        known = self._metas.get(meta.uid)
        if known is not None and known.modseq > meta.modseq:
            return
        flags = self._flagsets.setdefault(meta.flags, meta.flags)
        if known is None or known.flags is not flags:
            if known is not None:
                self._by_flags[known.flags].discard(meta.uid)
            self._by_flags.setdefault(flags, set()).add(meta.uid)
        if flags is not meta.flags:
            meta = replace(meta, flags=flags)
        self._metas[meta.uid] = meta
        if meta.uid > self._max_uid:
            self._max_uid = meta.uid

    def _advance(self, modseq: int) -> None:
        if self.highestmodseq is not None and modseq > self.highestmodseq:
            self.highestmodseq = modseq

    def _forget(self, uid: int) -> None:
        self._drop(uid)
        # UIDs are never reused, so a late event or load naming this UID
        # must not bring it back.
        self._gone.add(uid)
        if len(self._gone) > MAX_TOMBSTONES:
            self.reset()
        self._drop_memo(uid)
        self._unsaved.pop(uid, None)
        self._not_kept.discard(uid)
        self._no_header.discard(uid)

    def _drop(self, uid: int) -> None:
        known = self._metas.pop(uid, None)
        if known is not None:
            self._by_flags[known.flags].discard(uid)

    def reset(self) -> None:
        """Forget everything; the next reads load from the store again."""
        self._metas = {}
        self._by_flags = {}
        self._complete = False
        self.highestmodseq = None
        self._max_uid = 0
        self._flagsets = {}
        self._gone = set()
        self.drop_memos()
        self._unsaved = {}
        self._not_kept = set()
        self._no_header = set()

    def matches(self, status: MailboxStatus) -> bool:
        """
        Whether the index agrees with the store's C{status}: it has heard of
        every change up to the store's HIGHESTMODSEQ, and when complete it
        holds as many messages as the store.
        """
        if self.highestmodseq != status.highestmodseq or self._max_uid >= status.uidnext:
            return False
        return not self._complete or len(self._metas) == status.messages

    def check(self, status: MailboxStatus) -> None:
        """
        Compare with the store's C{status} (read now): an index that missed a
        change (another process, another program, a restart) starts afresh.
        """
        if self.highestmodseq is not None and not self.matches(status):
            self.reset()
        if self.highestmodseq is None:
            self.highestmodseq = status.highestmodseq

    # -- reading -----------------------------------------------------------------

    async def load_all(self) -> None:
        """Make the index complete: one pass over the store's metadata."""
        if self._complete:
            return
        mailbox = self._mailbox
        status = await mailbox.status()
        uids = await mailbox.uids()
        metas = await mailbox.metadata(uids) if uids else []
        listed = {m.uid for m in metas}
        for uid in [u for u in self._metas if u not in listed and u <= (uids[-1] if uids else 0)]:
            # Gone in the store but announced before our read: an expunge
            # whose event this index will still receive, or missed.
            self._drop(uid)
        for meta in metas:
            self._merge(meta)
        # What is held now is at least as new as the status read first.
        self.highestmodseq = max(self.highestmodseq or 0, status.highestmodseq)
        self._complete = True

    async def uids(self) -> list[int]:
        """Every UID, ascending (from the index when it is complete)."""
        if self._complete:
            return sorted(self._metas)
        return list(await self._mailbox.uids())

    async def metadata(self, uids: Iterable[int]) -> list[MessageMeta]:
        """L{IMailbox.metadata}, served from the index where it can be."""
        wanted = sorted(set(uids))
        if not wanted:
            return []
        metas = self._metas
        if not self._complete:
            missing = [u for u in wanted if u not in metas]
            if missing:
                await self._load(missing)
        return [metas[u] for u in wanted if u in metas]

    def keywords(self) -> set[str] | None:
        """
        The keywords (flags not starting with a backslash) of the mailbox's
        messages, or None unless the index is complete.  Read from the
        interned flag sets, so the cost is that of the few distinct sets,
        not of the messages; a keyword whose last message lost it may still
        be named until the next reset, which RFC 3501 7.2.6 allows (FLAGS
        lists the flags applicable in the mailbox).
        """
        if not self._complete:
            return None
        return {f for flags in self._flagsets for f in flags if not f.startswith("\\")}

    def known(self, uid: int) -> MessageMeta | None:
        """The meta of C{uid} if the index holds it (no store access)."""
        return self._metas.get(uid)

    def flag_sets(self) -> Iterable[frozenset[str]]:
        """
        Every distinct flag set the index has shared among its messages
        (some perhaps no longer in use): a flag search none of them
        satisfies matches no message.
        """
        return tuple(self._flagsets)

    def with_flags(self, flags: frozenset[str]) -> AbstractSet[int]:
        """
        The UIDs held whose flags are C{flags}, one of L{flag_sets}: the
        index's own set, which changes as the index does and which the
        caller must not change.
        """
        return self._by_flags.get(flags, _NONE)

    def held(self) -> Mapping[int, MessageMeta]:
        """
        A read-only view, UID to meta, of what the index holds now: every
        message of the mailbox when L{complete}.  For loops over many
        messages, where L{known} per message would cost a call each.
        """
        return MappingProxyType(self._metas)

    async def prepare(self, count: int, messages: int) -> None:
        """
        A command is about to read C{count} of the mailbox's C{messages}
        messages: when that is a large share, load them all in one pass.
        """
        if not self._complete and count > 64 and count >= FULL_LOAD_FRACTION * messages:
            await self.load_all()

    async def _load(self, uids: list[int]) -> None:
        for meta in await self._mailbox.metadata(uids):
            self._merge(meta)

    # -- \\Recent ----------------------------------------------------------------

    async def claim_recent(self, upto: int, claim: bool = True) -> list[int]:
        """
        L{IMailbox.claim_recent} for a session whose view ends at UID
        C{upto}, shared by the sessions of this process: new messages are
        \\Recent for one session only (RFC 3501 2.3.2), so once a claim of
        this process covered C{upto} (or is under way and will), the others
        are told none without asking the store.  Telling 1,000 idling
        sessions of one new message thus costs one transaction, not 1,000.
        """
        if upto <= self._claimed_upto:
            return []
        if self._claiming is not None and self._claiming_upto >= upto:
            waiting: Deferred = Deferred()
            self._claim_waiters.append(waiting)
            await waiting
            return []
        if not claim:
            return list(await self._mailbox.claim_recent(False))
        self._claiming, self._claiming_upto = True, upto
        try:
            claimed = list(await self._mailbox.claim_recent(True))
        finally:
            self._claimed_upto = max(self._claimed_upto, upto)
            self._claiming = None
            waiters, self._claim_waiters = self._claim_waiters, []
            for waiting in waiters:
                waiting.callback(None)
        return claimed

    # -- memoised values ---------------------------------------------------------

    def memo(self, uid: int, name: str) -> bytes | None:
        """A value stored with L{remember} for C{uid}, or C{None}."""
        values = self._memo.get(uid)
        return None if values is None else values.get(name)

    def remember(self, uid: int, name: str, value: bytes, *, keep: bool = False) -> None:
        """
        Keep C{value} (e.g. a rendered BODYSTRUCTURE) for C{uid} while the
        index is in use and the message exists, within L{MEMO_BUDGET} and
        L{PROCESS_MEMO_BUDGET}.  Only immutable facts of a message belong
        here.  With C{keep}, the store is also given it at the next L{save},
        when it keeps summaries (L{ISummaryStore}), budget or not.
        """
        if uid not in self._metas:
            return
        if keep and ISummaryStore.providedBy(self._mailbox):
            self._unsaved.setdefault(uid, {})[name] = value
        values = self._memo.get(uid)
        old = len(values.get(name, b"")) if values else 0
        grow = len(value) - old
        if grow > 0 and (self._memo_bytes + grow > MEMO_BUDGET
                         or _MemoUse.used + grow > PROCESS_MEMO_BUDGET):
            return
        if values is None:
            values = self._memo[uid] = {}
        values[name] = value
        self._memo_bytes += grow
        _MemoUse.used += grow

    def _drop_memo(self, uid: int) -> None:
        values = self._memo.pop(uid, None)
        if values:
            size = sum(len(v) for v in values.values())
            self._memo_bytes -= size
            _MemoUse.used -= size

    def drop_memos(self) -> None:
        """Forget every memoised value (the metadata stays)."""
        _MemoUse.used -= self._memo_bytes
        self._memo = {}
        self._memo_bytes = 0

    async def recall(self, uids: Iterable[int], names: Iterable[str],
                     ) -> dict[int, dict[str, bytes]]:
        """
        Bring into memory the values the store keeps (L{ISummaryStore})
        under C{names} for those of C{uids} that lack one, in one request.
        Asked once per message: what the store does not have is computed and
        given to it (L{remember} with C{keep}, then L{save}).  Returns the
        values read, for the caller to use even where the budget did not
        admit them (see L{BatchMemo}).
        """
        store = ISummaryStore(self._mailbox, None)
        if store is None:
            return {}
        names = list(names)
        wanted = [u for u in uids if u in self._metas and u not in self._not_kept
                  and any(self.memo(u, n) is None for n in names)]
        if not wanted:
            return {}
        found = await store.summaries(wanted, names)
        for uid in wanted:
            values = found.get(uid)
            if not values:
                self._not_kept.add(uid)
                continue
            for name, value in values.items():
                self.remember(uid, name, value)
        return found

    async def recall_headers(self, uids: Iterable[int]) -> dict[int, dict[str, bytes]]:
        """
        Bring into memory the raw top-level headers (the C{header} memo) of
        those of C{uids} that lack one, from a store that gives them under
        that name without a message being opened (the SQL store cuts them
        from the content it holds, in one statement per batch); asked once
        per message unless the budget did not admit them.  Returns the
        headers read, as C{{uid: {"header": value}}}.
        """
        store = ISummaryStore(self._mailbox, None)
        if store is None:
            return {}
        wanted = [u for u in uids if u in self._metas and u not in self._no_header
                  and self.memo(u, "header") is None]
        if not wanted:
            return {}
        found = await store.summaries(wanted, ["header"])
        headers: dict[int, dict[str, bytes]] = {}
        for uid in wanted:
            value = found.get(uid, {}).get("header")
            if value is None:
                self._no_header.add(uid)
            else:
                self.remember(uid, "header", value)
                headers[uid] = {"header": value}
        return headers

    @property
    def unsaved(self) -> bool:
        """Whether there are kept values the store does not have yet."""
        return bool(self._unsaved)

    async def save(self) -> None:
        """Give the store the kept values it does not have yet."""
        store = ISummaryStore(self._mailbox, None)
        unsaved, self._unsaved = self._unsaved, {}
        if store is not None and unsaved:
            await store.keep_summaries(unsaved)
            self._not_kept.difference_update(unsaved)

    def size_estimate(self) -> int:
        """Approximate bytes the index holds (metas, their dict, memoised values)."""
        per_meta = sys.getsizeof(MessageMeta(0, frozenset(), None, 0, 0)) + 3 * 32  # type: ignore[arg-type]
        return (sys.getsizeof(self._metas) + len(self._metas) * per_meta
                + self._memo_bytes + len(self._memo) * 250)


class BatchMemo:
    """
    A L{MailboxIndex}'s memo with the values read from the store for one
    batch of a command in front of it: past the memo's budget those are not
    kept, and without this every message of the batch would be opened to
    render again what the store has just given.
    """

    __slots__ = ("_index", "_values")

    def __init__(self, index: MailboxIndex, *values: dict[int, dict[str, bytes]]) -> None:
        self._index = index
        merged: dict[int, dict[str, bytes]] = {}
        for found in values:
            for uid, named in found.items():
                merged.setdefault(uid, {}).update(named)
        self._values = merged

    def memo(self, uid: int, name: str) -> bytes | None:
        values = self._values.get(uid)
        if values is not None:
            value = values.get(name)
            if value is not None:
                return value
        return self._index.memo(uid, name)

    def remember(self, uid: int, name: str, value: bytes, *, keep: bool = False) -> None:
        self._index.remember(uid, name, value, keep=keep)


# -- sharing one index per mailbox ---------------------------------------------------


class _Registry:
    """The indexes of one notifier (one backend), in use and kept warm."""

    def __init__(self) -> None:
        self.active: dict[Hashable, MailboxIndex] = {}
        self.unused: OrderedDict[Hashable, MailboxIndex] = OrderedDict()


_registries: WeakKeyDictionary[Any, _Registry] = WeakKeyDictionary()


def _registry(notifier: INotifier) -> _Registry:
    registry = _registries.get(notifier)
    if registry is None:
        registry = _registries[notifier] = _Registry()
    return registry


def acquire(mailbox: IMailbox) -> MailboxIndex | None:
    """
    The shared index of C{mailbox}, subscribed to its events; C{None} if
    the mailbox has no notifier to keep an index current.  Pair with
    L{release}.
    """
    notifier = getattr(mailbox, "notifier", None)
    if notifier is None:
        return None
    registry = _registry(notifier)
    index = registry.active.get(mailbox.key)
    if index is None:
        index = registry.unused.pop(mailbox.key, None)
    if index is None or index.removed:
        index = MailboxIndex(mailbox)
        mailbox.subscribe(index)
    registry.active[mailbox.key] = index
    index.users += 1
    return index


def release(mailbox: IMailbox, index: MailboxIndex) -> None:
    """A session no longer uses C{index}; it stays warm for a while."""
    index.users -= 1
    if index.users > 0:
        return
    notifier = getattr(mailbox, "notifier", None)
    registry = _registry(notifier)
    if registry.active.get(index.key) is index:
        del registry.active[index.key]
    if index.removed:
        mailbox.unsubscribe(index)
        return
    # Kept warm with its metadata; the memoised values go (what a store
    # keeps of them comes back in one request at the next FETCH).
    index.drop_memos()
    registry.unused[index.key] = index
    while len(registry.unused) > KEEP_UNUSED:
        _, old = registry.unused.popitem(last=False)
        old._mailbox.unsubscribe(old)


class IndexedMailbox:
    """
    An L{IMailbox} (and whatever optional interfaces the wrapped one
    provides) whose reads of metadata go through a L{MailboxIndex}.
    Everything else is the wrapped mailbox's.
    """

    def __init__(self, mailbox: IMailbox, index: MailboxIndex) -> None:
        self._inner = mailbox
        self.index = index
        directlyProvides(self, providedBy(mailbox))

    def __getattr__(self, name: str) -> Any:
        # Only reached for what this class does not define itself.
        return getattr(self._inner, name)

    def __repr__(self) -> str:
        return f"<IndexedMailbox {self._inner!r}>"

    @property
    def wrapped(self) -> IMailbox:
        return self._inner

    async def validate(self) -> MailboxStatus:
        """
        Check the index against the store (at SELECT): a complete index that
        disagrees is dropped.  Returns the status read.
        """
        status = await self._inner.status()
        self.index.check(status)
        return status

    async def uids(self) -> list[int]:
        return await self.index.uids()

    async def metadata(self, uids: Iterable[int]) -> list[MessageMeta]:
        return await self.index.metadata(uids)


def wrap(mailbox: IMailbox) -> tuple[IMailbox, Callable[[], None]]:
    """
    C{(mailbox, close)}: C{mailbox} behind its shared index, and the
    function that releases the index; the mailbox itself when no index can
    be kept for it.
    """
    if isinstance(mailbox, IndexedMailbox):
        return mailbox, lambda: None
    index = acquire(mailbox)
    if index is None:
        return mailbox, lambda: None
    released = []

    def close() -> None:
        if not released:
            released.append(True)
            release(mailbox, index)

    return IndexedMailbox(mailbox, index), close
