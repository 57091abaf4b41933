"""
Generic behaviour shared by every backend.

L{BaseMailStore} implements the mailbox-tree rules of RFC 3501 section 6.3
(INBOX, implicit superiors, DELETE of a mailbox with children, hierarchy
RENAME, RENAME of INBOX) on top of a small core of single-record operations
that a backend provides.  L{BaseMailbox} holds the listener plumbing.
"""

from __future__ import annotations

import weakref
from contextlib import asynccontextmanager
from collections.abc import Container
from typing import Any, AsyncIterator, Callable, Hashable, Iterable, Protocol, TypeVar

from twisted.internet.defer import DeferredLock
from twisted.logger import Logger

from twisted_mailhub.errors import (
    InvalidMailboxName,
    MailboxExists,
    MailboxHasChildren,
    MailboxNotFound,
    MessageExpunged,
    NotSelectable,
)
from twisted_mailhub.interfaces import (
    ICopyableMailbox,
    IMailbox,
    IMailboxListener,
    IMoveableMailbox,
    INotifier,
    IRemovableMailbox,
    ISummarizer,
)
from twisted_mailhub.model import (
    RECENT,
    AppendRequest,
    FlagUpdate,
    MailboxCreated,
    MailboxDeleted,
    MailboxEvent,
    MailboxInfo,
    MailboxRenamed,
    SubscriptionChanged,
    TreeEvent,
    TreeKey,
    canonical_flag,
)

log = Logger()

MAX_NAME_LENGTH = 1000
_FORBIDDEN = set("\x00\r\n") | {chr(c) for c in range(0x01, 0x20)} | {"\x7f"}


def normalize_name(name: str, delimiter: str = "/") -> str:
    """
    ``INBOX`` in any case becomes ``INBOX``, also as the first level of a
    longer name (RFC 3501 section 5.1: INBOX is case-insensitive).
    """
    head, sep, rest = name.partition(delimiter)
    if head.upper() == "INBOX":
        return "INBOX" + sep + rest
    return name


def validate_name(name: str, delimiter: str = "/") -> str:
    """
    Return the normalised C{name} or raise L{InvalidMailboxName}.

    Rejected: empty names or levels, control characters, the LIST wildcards
    ``*`` and ``%``, and names longer than L{MAX_NAME_LENGTH}.  Since names
    never contain an empty level, ``..`` or a leading delimiter cannot be
    used by a filesystem backend to escape its directory; such backends
    still refuse ``.`` and ``..`` levels themselves.
    """
    if not name:
        raise InvalidMailboxName("Mailbox name is empty")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidMailboxName("Mailbox name is too long")
    if any(c in _FORBIDDEN for c in name):
        raise InvalidMailboxName("Mailbox name contains a control character")
    if "*" in name or "%" in name:
        raise InvalidMailboxName("Mailbox name contains a wildcard (* or %)")
    levels = name.split(delimiter)
    if any(level == "" for level in levels):
        raise InvalidMailboxName("Mailbox name has an empty hierarchy level")
    if any(level in (".", "..") for level in levels):
        raise InvalidMailboxName("Mailbox name has a '.' or '..' level")
    return normalize_name(name, delimiter)


def superiors(name: str, delimiter: str = "/") -> list[str]:
    """``["a", "a/b"]`` for ``"a/b/c"``."""
    levels = name.split(delimiter)
    return [delimiter.join(levels[:i]) for i in range(1, len(levels))]


class BaseMailStore:
    """
    A user's mailbox tree, generic over a core a backend implements.

    The core (all asynchronous):

      - C{_list()}: every L{MailboxInfo}, selectable or not.
      - C{_open(name, read_only)}: the L{IMailbox} of an existing selectable
        record.
      - C{_create(name, special_use, selectable)}: one new record with a
        fresh UIDVALIDITY (the name does not exist).
      - C{_delete(name)}: remove one record and its messages.
      - C{_make_unselectable(name)}: remove a record's messages and mark it
        non-selectable.
      - C{_rename(pairs)}: rename several records at once, atomically;
        records keep their UIDVALIDITY and messages.
      - C{_subscriptions()}, C{_subscribe(name)}, C{_unsubscribe(name)}.

    A backend may override L{_rename_inbox} to move INBOX's messages more
    cheaply than copy-then-expunge, and L{_create_tree}, L{_rename_tree}
    or L{_delete_tree} (check and change, run while this process holds the
    user's tree lock) to do a whole CREATE, RENAME or DELETE in one step
    that other processes cannot interleave with.
    """

    delimiter = "/"

    def __init__(self, username: str, notifier: INotifier) -> None:
        self.username = username
        self.notifier = notifier

    # -- the interface -----------------------------------------------------

    async def list_mailboxes(self) -> list[MailboxInfo]:
        return sorted(await self._list(), key=lambda info: info.name)

    async def get_mailbox(self, name: str, read_only: bool = False):
        name = validate_name(name, self.delimiter)
        info = await self._info(name)
        if info is None:
            raise MailboxNotFound(f"Mailbox does not exist: {name}")
        if not info.selectable:
            raise NotSelectable(f"Mailbox is not selectable: {name}")
        return await self._open(name, read_only)

    async def create_mailbox(self, name: str, special_use: frozenset[str] = frozenset()) -> None:
        # A trailing delimiter only says the client intends to create
        # inferiors under the name (RFC 3501 section 6.3.3).
        if name.endswith(self.delimiter) and len(name) > 1:
            name = name[:-1]
        name = validate_name(name, self.delimiter)
        async with self._tree_changing():
            await self._create_tree(name, frozenset(special_use))
        self._publish_tree(MailboxCreated(name))

    async def delete_mailbox(self, name: str) -> None:
        name = validate_name(name, self.delimiter)
        if name == "INBOX":
            raise InvalidMailboxName("INBOX cannot be deleted")
        async with self._tree_changing():
            await self._delete_tree(name)
        self._publish_tree(MailboxDeleted(name))

    async def _delete_tree(self, name: str) -> None:
        infos = {info.name: info for info in await self._list()}
        info = infos.get(name)
        if info is None:
            raise MailboxNotFound(f"Mailbox does not exist: {name}")
        prefix = name + self.delimiter
        has_children = any(other.startswith(prefix) for other in infos)
        if has_children:
            if not info.selectable:
                raise MailboxHasChildren(
                    f"Mailbox has inferior hierarchical names: {name}"
                )
            await self._make_unselectable(name)
        else:
            await self._delete(name)

    async def rename_mailbox(self, old: str, new: str) -> None:
        old = validate_name(old, self.delimiter)
        new = validate_name(new, self.delimiter)
        async with self._tree_changing():
            await self._rename_tree(old, new)
        self._publish_tree(MailboxRenamed(old, new))

    async def _rename_tree(self, old: str, new: str) -> None:
        infos = {info.name: info for info in await self._list()}
        if old not in infos:
            raise MailboxNotFound(f"Mailbox does not exist: {old}")
        if new in infos:
            raise MailboxExists(f"Mailbox already exists: {new}")
        if new.startswith(old + self.delimiter):
            raise InvalidMailboxName("Cannot rename a mailbox into its own inferior")
        for parent in superiors(new, self.delimiter):
            if parent not in infos:
                await self._create(parent, frozenset(), True)
        if old == "INBOX":
            await self._rename_inbox(new)
            return
        prefix = old + self.delimiter
        pairs = [(old, new)] + [
            (name, new + name[len(old):]) for name in sorted(infos) if name.startswith(prefix)
        ]
        await self._rename(pairs)

    async def subscriptions(self) -> set[str]:
        return set(await self._subscriptions())

    async def subscribe(self, name: str) -> None:
        name = validate_name(name, self.delimiter)
        async with self._tree_changing():
            await self._subscribe(name)
        self._publish_tree(SubscriptionChanged(name, True))

    async def unsubscribe(self, name: str) -> None:
        name = normalize_name(name, self.delimiter)
        async with self._tree_changing():
            await self._unsubscribe(name)
        self._publish_tree(SubscriptionChanged(name, False))

    def _publish_tree(self, event: TreeEvent) -> None:
        """Tell this tree's listeners (see L{TreeKey}) of a change made here."""
        self.notifier.publish(TreeKey(self.username), event)

    # -- generic helpers ---------------------------------------------------

    async def _create_tree(self, name: str, special_use: frozenset[str]) -> None:
        """
        Create C{name} (already validated) and its missing superiors, or
        raise L{MailboxExists}.  Runs under L{_tree_changing}; a backend
        whose storage can check and create in one step overrides it.
        """
        existing = {info.name for info in await self._list()}
        if name in existing:
            raise MailboxExists(f"Mailbox already exists: {name}")
        for parent in superiors(name, self.delimiter):
            if parent not in existing:
                await self._create(parent, frozenset(), True)
        await self._create(name, special_use, True)

    @asynccontextmanager
    async def _tree_changing(self) -> AsyncIterator[None]:
        """
        Hold the lock of this user's tree in this process: CREATE, DELETE
        and RENAME check the tree and then change it across several
        awaits, and two of them interleaving could both pass the check
        (two RENAMEs to one name).  Other processes sharing the storage
        are the backend's to exclude (the SQL store does each change in one
        transaction).  The change's event is published as the lock is
        released, before anything that waited for it is answered: the
        watcher of other processes' tree changes (L{holding_tree}) relies
        on that.
        """
        try:
            lock = _tree_lock(self.notifier, self.username)
        except TypeError:
            # A notifier that cannot be weakly referenced: a lock per store.
            lock = self.__dict__.setdefault("_own_tree_lock", DeferredLock())
        await lock.acquire()
        try:
            yield
        finally:
            lock.release()

    async def _info(self, name: str) -> MailboxInfo | None:
        for info in await self._list():
            if info.name == name:
                return info
        return None

    async def _rename_inbox(self, new: str) -> None:
        """
        RFC 3501 section 6.3.5: INBOX's messages move to a new mailbox
        C{new}; INBOX stays, empty.  Inferiors of INBOX are not renamed.
        """
        await self._create(new, frozenset(), True)
        inbox = await self._open("INBOX", False)
        target = await self._open(new, False)
        uids = await inbox.uids()
        if uids:
            await move_messages(inbox, target, uids)


# One lock per user tree and notifier (that is, per backend, or per group of
# backends sharing a notifier), whichever store object of it is used.
_TREE_LOCKS: "weakref.WeakKeyDictionary[Any, dict[str, DeferredLock]]" = (
    weakref.WeakKeyDictionary())


def _tree_lock(notifier: Any, username: str) -> DeferredLock:
    locks = _TREE_LOCKS.setdefault(notifier, {})
    lock = locks.get(username)
    if lock is None:
        lock = locks[username] = DeferredLock()
    return lock


@asynccontextmanager
async def holding_tree(notifier: Any, username: str) -> AsyncIterator[None]:
    """
    Hold the lock of C{username}'s tree in this process (the stores whose
    notifier is C{notifier}), which its CREATE, DELETE, RENAME, SUBSCRIBE
    and UNSUBSCRIBE hold while they change it.  A read of the tree under it
    sees each of this process's changes either not at all or with its
    L{TreeEvent} already published (L{twisted_mailhub.trees.TreeSnapshot}).
    """
    lock = _tree_lock(notifier, username)
    await lock.acquire()
    try:
        yield
    finally:
        lock.release()


class BaseMailbox:
    """
    Listener plumbing for an L{IMailbox}: events go through the store's
    L{INotifier} under L{key}, so sessions in other processes can be told
    when the notifier spans processes.
    """

    key: Hashable
    notifier: INotifier

    def subscribe(self, listener: IMailboxListener) -> None:
        self.notifier.subscribe(self.key, listener)

    def unsubscribe(self, listener: IMailboxListener) -> None:
        self.notifier.unsubscribe(self.key, listener)

    def _publish(self, event: MailboxEvent) -> None:
        self.notifier.publish(self.key, event)


def sorted_unique(uids: Iterable[int]) -> list[int]:
    """The distinct C{uids} in ascending order."""
    return sorted(set(uids))


# -- helpers for backends and callers ------------------------------------------

FLAG_MODES = ("set", "add", "remove")


def clean_flags(flags: Iterable[str]) -> frozenset[str]:
    """
    Canonicalise system flags and drop C{\\Recent}, which is per-session
    state and never stored (see L{MessageMeta}).
    """
    cleaned = {canonical_flag(flag) for flag in flags}
    cleaned.discard(RECENT)
    return frozenset(cleaned)


def apply_flags(current: frozenset[str], mode: str, flags: frozenset[str]) -> frozenset[str]:
    """
    The flags a message has after a STORE of C{flags} with C{mode}
    (C{"set"}, C{"add"} or C{"remove"}).  C{flags} must already be
    cleaned (L{clean_flags}).
    """
    if mode == "set":
        return flags
    if mode == "add":
        return current | flags
    if mode == "remove":
        return current - flags
    raise ValueError(f"Unknown flag store mode {mode!r}; expected one of {FLAG_MODES}")


class Flagged(Protocol):
    """What L{flag_changes} reads of a message a folder holds."""

    uid: int
    modseq: int
    flags: frozenset[str]


_F = TypeVar("_F", bound=Flagged)


def flag_changes(messages: Iterable[_F], wanted: Container[int], mode: str,
                 flags: frozenset[str], unchangedsince: int | None,
                 update: FlagUpdate) -> list[tuple[_F, frozenset[str]]]:
    """
    The C{messages} whose UIDs are C{wanted} and whose flags a STORE of
    C{flags} with C{mode} changes, each with its flags after.  One changed
    after C{unchangedsince} is left alone and its UID put in
    C{update.modified} (RFC 7162 section 3.1.3).  C{flags} must already be
    cleaned (L{clean_flags}).
    """
    changes = []
    for message in messages:
        if message.uid not in wanted:
            continue
        if unchangedsince is not None and message.modseq > unchangedsince:
            update.modified.append(message.uid)
            continue
        new = apply_flags(message.flags, mode, flags)
        if new != message.flags:
            changes.append((message, new))
    return changes


async def copy_messages(
    source: IMailbox, destination: IMailbox, uids: Iterable[int], origin: Hashable | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[tuple[int, int]]:
    """
    Copy the existing messages among C{uids} from C{source} into
    C{destination}, keeping flags, INTERNALDATE and identity; return
    C{[(source_uid, new_uid), ...]} in ascending source order.

    Uses L{ICopyableMailbox.copy_to} when C{source} provides it and accepts
    C{destination}; otherwise reads each message and appends them all in
    one atomic L{IMailbox.append}, calling C{progress} (when given) with
    the count of messages read so far before each.
    """
    uids = sorted_unique(uids)
    copyable = ICopyableMailbox(source, None)
    if copyable is not None:
        pairs = await copyable.copy_to(uids, destination, origin=origin)
        if pairs is not None:
            return list(pairs)
    metas = await source.metadata(uids)
    requests = []
    copied = []
    for done, meta in enumerate(metas):
        if progress is not None:
            progress(done)
        try:
            message = await source.open_message(meta.uid)
        except MessageExpunged:
            continue
        content = await message.read(0, None)
        # The copy is the same message (RFC 8474 section 5.1: same EMAILID).
        requests.append(AppendRequest(content, meta.flags, meta.internaldate,
                                      identity=meta.identity))
        copied.append(meta.uid)
    if not requests:
        return []
    added = await destination.append(requests, origin=origin)
    return [(uid, meta.uid) for uid, meta in zip(copied, added)]


async def move_messages(
    source: IMailbox, destination: IMailbox, uids: Iterable[int], origin: Hashable | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[list[tuple[int, int]], list[int]]:
    """
    Move the existing messages among C{uids} from C{source} into
    C{destination} (RFC 6851 section 3.3); return C{(pairs, removed)}: the
    C{[(source_uid, new_uid), ...]} of the messages now in C{destination}
    and the source UIDs removed, both ascending.

    With L{IMoveableMailbox} this is one atomic change of the store.
    Otherwise the messages are copied (L{copy_messages}) and then removed
    from C{source}: by L{IRemovableMailbox.remove} when provided, so other
    sessions are told only of the expunge; else by the last resort of
    flagging them \\Deleted and expunging those UIDs, where other sessions
    may see the flag change first.  A failure between the two steps leaves
    the messages in both mailboxes, never in neither.
    """
    uids = sorted_unique(uids)
    if not uids:
        return [], []
    moveable = IMoveableMailbox(source, None)
    if moveable is not None:
        pairs = await moveable.move_to(uids, _unwrapped(destination), origin=origin)
        if pairs is not None:
            pairs = list(pairs)
            return pairs, [old for old, _ in pairs]
    pairs = await copy_messages(source, destination, uids, origin=origin, progress=progress)
    moved = [old for old, _ in pairs]
    if not moved:
        return [], []
    removable = IRemovableMailbox(source, None)
    if removable is not None:
        removed = await removable.remove(moved, origin=origin)
    else:
        await source.store_flags(moved, "add", {"\\Deleted"}, origin=origin)
        removed = await source.expunge(moved, origin=origin)
    return pairs, list(removed)


async def replace_message(
    source: IMailbox, uid: int, destination: IMailbox, request: AppendRequest,
    origin: Hashable | None = None,
) -> tuple[Any, list[int]]:
    """
    Store C{request} in C{destination}, then remove message C{uid} of
    C{source}; return C{(meta, removed)}: the new message's L{MessageMeta}
    and C{[uid]}, or C{[]} when that message was already gone.

    The removal takes L{IRemovableMailbox.remove} when provided, so other
    sessions are told only of the expunge; else the message is flagged
    \\Deleted and exactly that UID expunged.  A failure of the append
    removes nothing; a failure between the two steps leaves both messages,
    never neither.  C{destination} may be C{source}.
    """
    [meta] = await destination.append([request], origin=origin)
    removable = IRemovableMailbox(source, None)
    if removable is not None:
        removed = await removable.remove([uid], origin=origin)
    else:
        await source.store_flags([uid], "add", {"\\Deleted"}, origin=origin)
        removed = await source.expunge([uid], origin=origin)
    return meta, list(removed)


def _unwrapped(mailbox: IMailbox) -> IMailbox:
    # A session's view of a mailbox (twisted_mailhub.index) wraps the
    # backend's object, which is what a backend recognises as its own.
    return getattr(mailbox, "wrapped", mailbox)


def summarize(summarizer: ISummarizer | None, content: bytes,
              structure: Any = None) -> dict[str, bytes]:
    """
    The summaries of C{content} by C{summarizer} (L{ISummarizer}), parsing
    it first unless its C{structure} is given; C{{}} when there is no
    summarizer or it fails (logged: the message is stored all the same,
    and its values are derived later, as for messages stored before).
    Blocking: call it where the store does its work, off the reactor thread.
    """
    if summarizer is None:
        return {}
    try:
        if structure is None:
            from twisted_mailhub.mime.parse import parse_message

            structure = parse_message(content)
        return dict(summarizer.summarize(content, structure))
    except Exception:  # noqa: BLE001 - a summary is never worth a lost message
        log.failure("Summarizing a message failed; it is stored without summaries")
        return {}
