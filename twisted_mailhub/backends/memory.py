"""
A mail store kept in this process's memory.

Everything is lost when the process exits; the backend serves tests, demos
and embedders that bring their own persistence.  All the state of one
mailbox lives in one L{_MailboxState} shared by every session that selects
it, so sessions see each other's changes at once; each SELECT gets its own
L{MemoryMailbox} view, which only adds the session's read-only flag.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import replace
from datetime import datetime, timezone
from typing import Hashable, Iterable

from zope.interface import implementer

from twisted_mailhub.backends.base import (
    FLAG_MODES,
    BaseMailbox,
    BaseMailStore,
    apply_flags,
    clean_flags,
    sorted_unique,
    summarize,
)
from twisted_mailhub.backends.identity import check_identity, next_uid, refuse_new_uidvalidity
from twisted_mailhub.errors import MailboxNotFound, MessageExpunged, ReadOnlyMailbox
from twisted_mailhub.mime.parse import header_length
from twisted_mailhub.interfaces import (
    IAccessKeys,
    IBackend,
    IContentAccess,
    ICopyableMailbox,
    IMailbox,
    IMailStore,
    IMessage,
    IMoveableMailbox,
    INotifier,
    IRemovableMailbox,
    IRestorableMailbox,
    ISummarizer,
    ISummarizingBackend,
    ISummaryStore,
)
from twisted_mailhub.model import (
    AccessKeyReset,
    AppendRequest,
    FlagsChanged,
    FlagUpdate,
    MailboxInfo,
    MailboxRemoved,
    MailboxStatus,
    MessageMeta,
    MessagesAdded,
    MessagesExpunged,
    kept_object_id,
    new_access_key,
    new_object_id,
)
from twisted_mailhub.notify import LocalNotifier

# Mailbox keys are unique in the process, so several memory backends may
# share one notifier without their events mixing.
_KEYS = itertools.count(1)
_MAX_UIDVALIDITY = 2**32 - 1


class _Stored:
    """
    One message: its current meta, its bytes, its parsed structure and its
    summaries (L{ISummaryStore}; shared with its copies, as the content is).
    """

    __slots__ = ("meta", "content", "structure", "summaries")

    def __init__(self, meta: MessageMeta, content: bytes, structure: object,
                 summaries: dict[str, bytes] | None = None) -> None:
        self.meta = meta
        self.content = content
        self.structure = structure
        self.summaries = summaries if summaries is not None else {}


class _MailboxState:
    """Everything about one mailbox, shared by all its L{MemoryMailbox} views."""

    def __init__(
        self, name: str, uidvalidity: int, selectable: bool, special_use: frozenset[str]
    ) -> None:
        self.key: Hashable = ("memory", next(_KEYS))
        self.identity = new_object_id()
        self.name = name
        self.uidvalidity = uidvalidity
        self.selectable = selectable
        self.special_use = special_use
        self.uidnext = 1
        # RFC 7162 wants a positive HIGHESTMODSEQ even for an empty mailbox.
        self.highestmodseq = 1
        # Insertion order is UID order: UIDs are only ever appended.
        self.messages: dict[int, _Stored] = {}
        self.expunged: dict[int, int] = {}
        self.recent: set[int] = set()
        self.size = 0
        self.removed = False
        #: The URLAUTH mailbox access key (L{IAccessKeys}), once made.
        self.access_key: bytes | None = None

    def info(self) -> MailboxInfo:
        return MailboxInfo(self.name, self.selectable, self.special_use)

    def next_modseq(self) -> int:
        self.highestmodseq += 1
        return self.highestmodseq

    def add(
        self,
        content: bytes,
        flags: frozenset[str],
        internaldate: datetime,
        structure: object,
        modseq: int,
        uid: int | None = None,
        identity: str | None = None,
        summaries: dict[str, bytes] | None = None,
    ) -> MessageMeta:
        """Add a message; a copy passes its source's C{identity} and summaries."""
        uid = self.uidnext if uid is None else uid
        self.uidnext = uid + 1
        meta = MessageMeta(uid, flags, internaldate, len(content), modseq,
                           kept_object_id(identity), datetime.now(timezone.utc))
        self.messages[uid] = _Stored(meta, content, structure, summaries)
        self.recent.add(uid)
        self.size += len(content)
        return meta

    def clear(self) -> None:
        self.messages.clear()
        self.recent.clear()
        self.size = 0


class _UserTree:
    """One user's mailboxes and subscriptions."""

    def __init__(self, username: str) -> None:
        self.username = username
        self.mailboxes: dict[str, _MailboxState] = {}
        self.subscriptions: set[str] = set()
        # Seeded from the clock so that a value is not handed out again
        # for this user by a later process either.
        self._uidvalidity = int(time.time()) % _MAX_UIDVALIDITY

    def new_uidvalidity(self) -> int:
        self._uidvalidity = self._uidvalidity % _MAX_UIDVALIDITY + 1
        return self._uidvalidity

    def taken(self, uidvalidity: int) -> None:
        """A mailbox took C{uidvalidity} from elsewhere: never hand it out."""
        self._uidvalidity = max(self._uidvalidity, uidvalidity)


@implementer(IMessage)
class MemoryMessage:
    """A message as opened by FETCH; C{meta} is a snapshot taken at opening."""

    def __init__(self, stored: _Stored) -> None:
        self.meta = stored.meta
        self._content = stored.content
        self._structure = stored.structure

    async def structure(self):
        """The L{MessageStructure} parsed at APPEND."""
        return self._structure

    async def read(self, offset: int = 0, length: int | None = None) -> bytes:
        """Up to C{length} bytes of the raw message from C{offset}."""
        if length is None:
            return self._content[offset:]
        return self._content[offset : offset + length]


@implementer(IMailbox, ICopyableMailbox, IMoveableMailbox, IRemovableMailbox, IRestorableMailbox,
             ISummaryStore, IContentAccess)
class MemoryMailbox(BaseMailbox):
    """One session's view of a mailbox; the state behind it is shared."""

    def __init__(self, state: _MailboxState, store: "MemoryMailStore", read_only: bool) -> None:
        self._state = state
        self._store = store
        self.notifier = store.notifier
        self.read_only = read_only

    def __repr__(self) -> str:
        mode = "read-only" if self.read_only else "read-write"
        return f"<MemoryMailbox {self._store.username}:{self._state.name} {mode}>"

    @property
    def name(self) -> str:
        return self._state.name

    @property
    def key(self) -> Hashable:
        return self._state.key

    @property
    def uidvalidity(self) -> int:
        return self._state.uidvalidity

    # -- reads -------------------------------------------------------------

    async def status(self) -> MailboxStatus:
        """Counters of the mailbox (unseen and deleted scan the metas)."""
        state = self._state
        unseen = deleted = 0
        for stored in state.messages.values():
            flags = stored.meta.flags
            if "\\Seen" not in flags:
                unseen += 1
            if "\\Deleted" in flags:
                deleted += 1
        return MailboxStatus(
            messages=len(state.messages),
            uidnext=state.uidnext,
            uidvalidity=state.uidvalidity,
            unseen=unseen,
            highestmodseq=state.highestmodseq,
            recent=len(state.recent),
            size=state.size,
            deleted=deleted,
            identity=state.identity,
        )

    async def uids(self) -> list[int]:
        """All UIDs, ascending."""
        return list(self._state.messages)

    async def metadata(self, uids: Iterable[int]) -> list[MessageMeta]:
        """Metas of the existing messages among C{uids}, ascending."""
        messages = self._state.messages
        return [messages[uid].meta for uid in sorted_unique(uids) if uid in messages]

    async def open_message(self, uid: int) -> MemoryMessage:
        """The message with this UID, or L{MessageExpunged}."""
        stored = self._state.messages.get(uid)
        if stored is None:
            raise MessageExpunged(f"Message {uid} no longer exists")
        return MemoryMessage(stored)

    async def contents(self, uids: Iterable[int], limit: int) -> dict[int, bytes]:
        """L{IContentAccess}: the contents held, up to C{limit} octets each."""
        messages = self._state.messages
        found = {}
        for uid in sorted_unique(uids):
            stored = messages.get(uid)
            if stored is not None and len(stored.content) <= limit:
                found[uid] = stored.content
        return found

    async def summaries(self, uids: Iterable[int], names: Iterable[str],
                        ) -> dict[int, dict[str, bytes]]:
        """
        L{ISummaryStore}: those kept with the messages; the C{header} (the
        raw top-level header) is cut from the content.
        """
        messages, names = self._state.messages, set(names)
        found = {}
        for uid in sorted_unique(uids):
            stored = messages.get(uid)
            if stored is not None:
                values = {n: v for n, v in stored.summaries.items() if n in names}
                if "header" in names:
                    values["header"] = stored.content[: header_length(stored.content)]
                if values:
                    found[uid] = values
        return found

    async def keep_summaries(self, values: dict[int, dict[str, bytes]]) -> None:
        """L{ISummaryStore}: add those not kept yet."""
        messages = self._state.messages
        for uid, named in values.items():
            stored = messages.get(uid)
            if stored is not None:
                for name, value in named.items():
                    stored.summaries.setdefault(name, value)

    async def changes_since(self, modseq: int) -> tuple[list[MessageMeta], list[int]]:
        """Metas changed after C{modseq} and UIDs expunged after it."""
        state = self._state
        metas = [s.meta for s in state.messages.values() if s.meta.modseq > modseq]
        expunged = sorted(uid for uid, when in state.expunged.items() if when > modseq)
        return metas, expunged

    async def claim_recent(self, claim: bool = True) -> list[int]:
        """UIDs no session has been told of; C{claim} takes them for the caller."""
        recent = sorted(self._state.recent)
        if claim:
            self._state.recent.clear()
        return recent

    # -- writes ------------------------------------------------------------

    def _writable(self) -> _MailboxState:
        if self.read_only:
            raise ReadOnlyMailbox(f"Mailbox is read-only: {self.name}")
        if self._state.removed:
            raise MailboxNotFound(f"Mailbox no longer exists: {self.name}")
        return self._state

    async def append(
        self, requests: Iterable[AppendRequest], origin: Hashable | None = None
    ) -> list[MessageMeta]:
        """Append all of C{requests} or, if one cannot be parsed, none."""
        state = self._writable()
        requests = list(requests)
        # Parse everything before touching the state, so that a failure
        # leaves the mailbox as it was.
        parsed = [_parse(request.content) for request in requests]
        if not requests:
            return []
        summarizer = self._store.backend.summarizer
        summaries = [summarize(summarizer, request.content, structure)
                     for request, structure in zip(requests, parsed)]
        uids, uid = [], state.uidnext
        for request in requests:
            uids.append(next_uid(uid, request.uid))
            uid = uids[-1] + 1
        now = datetime.now(timezone.utc)
        modseq = state.next_modseq()
        metas = [
            state.add(
                request.content,
                clean_flags(request.flags),
                now if request.internaldate is None else request.internaldate,
                structure,
                modseq,
                uid,
                request.identity,
                values,
            )
            for request, structure, uid, values in zip(requests, parsed, uids, summaries)
        ]
        self._publish(MessagesAdded(tuple(metas), origin))
        return metas

    async def restore_identity(self, uidvalidity: int, uidnext: int = 1) -> MailboxStatus:
        """L{IRestorableMailbox}: take C{uidvalidity} while never used; raise UIDNEXT."""
        check_identity(uidvalidity, uidnext)
        state = self._writable()
        if uidvalidity != state.uidvalidity:
            if state.messages or state.expunged or state.highestmodseq != 1:
                raise refuse_new_uidvalidity(state.name, state.uidvalidity, uidvalidity)
            state.uidvalidity, state.uidnext = uidvalidity, uidnext
            self._store._tree.taken(uidvalidity)
            self._publish(MailboxRemoved())
        elif uidnext > state.uidnext:
            state.uidnext = uidnext
        return await self.status()

    async def store_flags(
        self,
        uids: Iterable[int],
        mode: str,
        flags: Iterable[str],
        unchangedsince: int | None = None,
        origin: Hashable | None = None,
    ) -> FlagUpdate:
        """Change flags; only messages whose flags really change get a MODSEQ."""
        if mode not in FLAG_MODES:
            raise ValueError(f"Unknown flag store mode {mode!r}")
        state = self._writable()
        flags = clean_flags(flags)
        update = FlagUpdate()
        pending: list[tuple[_Stored, frozenset[str]]] = []
        for uid in sorted_unique(uids):
            stored = state.messages.get(uid)
            if stored is None:
                continue
            if unchangedsince is not None and stored.meta.modseq > unchangedsince:
                update.modified.append(uid)
                continue
            new = apply_flags(stored.meta.flags, mode, flags)
            if new != stored.meta.flags:
                pending.append((stored, new))
        if pending:
            modseq = state.next_modseq()
            for stored, new in pending:
                stored.meta = replace(stored.meta, flags=new, modseq=modseq)
                update.changed.append(stored.meta)
            self._publish(FlagsChanged(tuple(update.changed), origin))
        return update

    async def expunge(
        self, uids: Iterable[int] | None = None, origin: Hashable | None = None
    ) -> list[int]:
        """Remove the \\Deleted messages (among C{uids} when given)."""
        state = self._writable()
        candidates = state.messages if uids is None else sorted_unique(uids)
        gone = [
            uid
            for uid in candidates
            if uid in state.messages and "\\Deleted" in state.messages[uid].meta.flags
        ]
        return self._expunge_now(state, gone, origin)

    async def remove(
        self, uids: Iterable[int], origin: Hashable | None = None
    ) -> list[int]:
        """L{IRemovableMailbox}: expunge the existing C{uids} whatever their flags."""
        state = self._writable()
        return self._expunge_now(
            state, [uid for uid in sorted_unique(uids) if uid in state.messages], origin
        )

    def _expunge_now(
        self, state: _MailboxState, gone: list[int], origin: Hashable | None
    ) -> list[int]:
        if not gone:
            return []
        gone.sort()
        modseq = state.next_modseq()
        for uid in gone:
            stored = state.messages.pop(uid)
            state.size -= stored.meta.size
            state.recent.discard(uid)
            state.expunged[uid] = modseq
        self._publish(MessagesExpunged(tuple(gone), modseq, origin))
        return gone

    async def move_to(
        self, uids: Iterable[int], destination: IMailbox, origin: Hashable | None = None
    ) -> list[tuple[int, int]] | None:
        """
        L{IMoveableMailbox}: move into another mailbox of the same backend
        (or this one) with no await in between; C{None} for others.
        """
        if not isinstance(destination, MemoryMailbox) or (
            destination._store.backend is not self._store.backend
        ):
            return None
        source = self._writable()
        target = destination._writable()
        moving = [source.messages[uid] for uid in sorted_unique(uids) if uid in source.messages]
        if not moving:
            return []
        self._expunge_now(source, [stored.meta.uid for stored in moving], origin)
        # Taken after the expunge's: into this same mailbox, the arrivals
        # are the later change.
        modseq = target.next_modseq()
        pairs, metas = [], []
        for stored in moving:
            meta = target.add(stored.content, stored.meta.flags, stored.meta.internaldate,
                              stored.structure, modseq, identity=stored.meta.identity,
                              summaries=stored.summaries)
            pairs.append((stored.meta.uid, meta.uid))
            metas.append(meta)
        destination._publish(MessagesAdded(tuple(metas), origin))
        return pairs

    async def copy_to(
        self, uids: Iterable[int], destination: IMailbox, origin: Hashable | None = None
    ) -> list[tuple[int, int]] | None:
        """Copy into another mailbox of the same backend; C{None} for others."""
        if not isinstance(destination, MemoryMailbox) or (
            destination._store.backend is not self._store.backend
        ):
            return None
        target = destination._writable()
        messages = self._state.messages
        sources = [messages[uid] for uid in sorted_unique(uids) if uid in messages]
        if not sources:
            return []
        modseq = target.next_modseq()
        pairs = []
        metas = []
        for stored in sources:
            meta = target.add(
                stored.content,
                stored.meta.flags,
                stored.meta.internaldate,
                stored.structure,
                modseq,
                identity=stored.meta.identity,
                summaries=stored.summaries,
            )
            pairs.append((stored.meta.uid, meta.uid))
            metas.append(meta)
        destination._publish(MessagesAdded(tuple(metas), origin))
        return pairs


@implementer(IMailStore)
class MemoryMailStore(BaseMailStore):
    """One user's tree, implemented through the L{BaseMailStore} core."""

    def __init__(self, backend: "MemoryBackend", tree: _UserTree) -> None:
        super().__init__(tree.username, backend.notifier)
        self.backend = backend
        self._tree = tree

    def __repr__(self) -> str:
        return f"<MemoryMailStore {self.username}>"

    async def _list(self) -> list[MailboxInfo]:
        return [state.info() for state in self._tree.mailboxes.values()]

    async def _open(self, name: str, read_only: bool) -> MemoryMailbox:
        return MemoryMailbox(self._tree.mailboxes[name], self, read_only)

    async def _create(self, name: str, special_use: frozenset[str], selectable: bool) -> None:
        self._tree.mailboxes[name] = _MailboxState(
            name, self._tree.new_uidvalidity(), selectable, special_use
        )

    async def _delete(self, name: str) -> None:
        state = self._tree.mailboxes.pop(name)
        self._remove(state)

    async def _make_unselectable(self, name: str) -> None:
        state = self._tree.mailboxes[name]
        # The name stays as a hierarchy node; its old state (and the key
        # sessions listen on) goes away like a deleted mailbox.
        self._tree.mailboxes[name] = _MailboxState(
            name, self._tree.new_uidvalidity(), False, frozenset()
        )
        self._remove(state)

    async def _rename(self, pairs: list[tuple[str, str]]) -> None:
        mailboxes = self._tree.mailboxes
        moved = [(mailboxes.pop(old), new) for old, new in pairs]
        for state, new in moved:
            state.name = new
            mailboxes[new] = state
        for state, _ in moved:
            self.notifier.publish(state.key, MailboxRemoved())

    async def _subscriptions(self) -> set[str]:
        return set(self._tree.subscriptions)

    async def _subscribe(self, name: str) -> None:
        self._tree.subscriptions.add(name)

    async def _unsubscribe(self, name: str) -> None:
        self._tree.subscriptions.discard(name)

    def _remove(self, state: _MailboxState) -> None:
        state.removed = True
        state.clear()
        self.notifier.publish(state.key, MailboxRemoved())


@implementer(IBackend, IAccessKeys, ISummarizingBackend)
class MemoryBackend:
    """
    Users' trees in memory.  Every L{open_store} of one user returns the
    same tree, so all of a user's sessions share mailbox state.
    """

    def __init__(self, notifier: INotifier | None = None) -> None:
        self.notifier = notifier if notifier is not None else LocalNotifier()
        self._stores: dict[str, MemoryMailStore] = {}
        self.summarizer: ISummarizer | None = None

    def use_summarizer(self, summarizer: ISummarizer | None) -> None:
        """L{ISummarizingBackend}: summaries are made with the parse at APPEND."""
        self.summarizer = summarizer

    def __repr__(self) -> str:
        return f"<MemoryBackend users={len(self._stores)}>"

    async def open_store(self, username: str) -> MemoryMailStore:
        """The tree of C{username}, created with an empty INBOX on first use."""
        store = self._stores.get(username)
        if store is None:
            tree = _UserTree(username)
            store = MemoryMailStore(self, tree)
            await store._create("INBOX", frozenset(), True)
            self._stores[username] = store
        return store

    async def close(self) -> None:
        """Nothing to release; the trees stay usable."""

    # -- IAccessKeys -------------------------------------------------------

    def _state(self, username: str, mailbox: str) -> _MailboxState | None:
        store = self._stores.get(username)
        state = store._tree.mailboxes.get(mailbox) if store is not None else None
        return state if state is not None and state.selectable else None

    async def access_key(self, username: str, mailbox: str, create: bool = False) -> bytes | None:
        """L{IAccessKeys}: the key of the mailbox, made first with C{create}."""
        state = self._state(username, mailbox)
        if state is None:
            return None
        if state.access_key is None and create:
            state.access_key = new_access_key()
        return state.access_key

    async def reset_access_key(self, username: str, mailbox: str,
                               origin: Hashable | None = None) -> bytes:
        """L{IAccessKeys}: a new key in place of the old."""
        state = self._state(username, mailbox)
        if state is None:
            raise MailboxNotFound(f"Mailbox does not exist: {mailbox}")
        state.access_key = key = new_access_key()
        self.notifier.publish(state.key, AccessKeyReset(origin))
        return key

    async def remove_access_keys(self, username: str) -> None:
        """L{IAccessKeys}: forget every key of the user."""
        store = self._stores.get(username)
        for state in store._tree.mailboxes.values() if store is not None else ():
            state.access_key = None


def _parse(content: bytes):
    # Imported on first use so that importing the backend does not pull in
    # the MIME parser.
    from twisted_mailhub.mime.parse import parse_message

    return parse_message(content)


__all__ = ["MemoryBackend", "MemoryMailStore", "MemoryMailbox", "MemoryMessage"]
