"""
The asynchronous face of a mailbox kept in files: what the mbox and Maildir
stores share.

Such a store has a I{folder} object per mailbox that does the file work
synchronously, under the store's locks: it is opened (and brought up to date
with what other programs changed) by the store's C{open_folder}, offers the
mailbox operations (C{status}, C{metadata}, C{content}, C{append},
C{store_flags}, C{expunge}, ...), and records the events they cause in its
C{events} list.  L{FolderMailbox} runs each operation in the backend's thread
pool (C{backend.run}) and publishes the events on the reactor thread.

A folder names the mailbox it holds by an I{identity} (the mbox index's key,
the Maildir GUID), so that a mailbox deleted and made again under the same
name is not taken for the one a session had selected.

The backends themselves share L{twisted_mailhub.backends.filebackend}.

The summaries of messages (L{ISummaryStore}) are kept in one file per user
(L{twisted_mailhub.backends.summaryfile}), keyed by the message's
identity; the store names it (C{summary_path}) and the backend holds the
L{SummaryFiles} and the L{ISummarizer} it was given, if any.  The file is
compacted (L{compact_summaries}) when a store is opened and it has grown
to mostly lines of messages that are gone (L{compact_when_due}).

The full-text index (L{twisted_mailhub.backends.textindex}, one database
per user beside the summaries file: the store's C{text_index_path}) is
also keyed by identity: appended messages are indexed with their APPEND,
the others by the first SEARCH BODY or TEXT that needs them
(L{FolderMailbox.text_matches}), and the entries of messages that are gone
are removed when the summaries file is compacted.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Hashable, Iterable
from dataclasses import replace
from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.logger import Logger
from zope.interface import implementer

from twisted_mailhub.backends.base import BaseMailbox, sorted_unique, summarize
from twisted_mailhub.backends.fulltext import index_text, message_text
from twisted_mailhub.backends.identity import check_identity
from twisted_mailhub.backends.summaryfile import SummaryFile
from twisted_mailhub.backends.textindex import FILL_BATCH, FILL_BYTES, TextIndex, Unusable
from twisted_mailhub.errors import MailboxNotFound, MessageExpunged, ReadOnlyMailbox
from twisted_mailhub.interfaces import (
    IContentAccess,
    IMessage,
    ISummarizer,
    ISummaryStore,
    ITextIndexedMailbox,
)
from twisted_mailhub.model import (
    AppendRequest,
    FlagUpdate,
    MailboxEvent,
    MailboxStatus,
    MessageMeta,
)

log = Logger()

#: What a failing full-text index raises: logged, and the search or APPEND
#: goes on without it (as it does, silently, when the index is L{Unusable}).
INDEX_ERRORS = (sqlite3.Error, OSError)


@implementer(IMessage)
class HeldMessage:
    """A message as read when it was opened; its content is held in memory."""

    def __init__(self, meta: MessageMeta, content: bytes) -> None:
        self.meta = meta
        self._content = content
        self._structure = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} uid={self.meta.uid} size={self.meta.size}>"

    async def structure(self):
        """The parsed MIME structure, computed on first use."""
        if self._structure is None:
            # Imported late so that using the backend does not need the
            # parser until a client asks for structure.
            from twisted_mailhub.mime.parse import parse_message

            self._structure = parse_message(self._content)
        return self._structure

    async def read(self, offset: int = 0, length: int | None = None) -> bytes:
        """Up to C{length} bytes of the message from C{offset}."""
        if length is None:
            return self._content[offset:]
        return self._content[offset : offset + length]


@implementer(IContentAccess, ISummaryStore, ITextIndexedMailbox)
class FolderMailbox(BaseMailbox):
    """
    One session's handle on a mailbox kept in files.  A subclass says how
    to open its folder and read the folder's identity, events and
    UIDVALIDITY (L{_open_folder}, L{_identity_of}, L{_events_of},
    L{_uidvalidity_of}); the operations are the same for every such store.
    """

    message_class: type[HeldMessage] = HeldMessage

    def __init__(self, store: Any, name: str, path: str, identity: str,
                 uidvalidity: int, read_only: bool) -> None:
        self.name = name
        self.read_only = read_only
        self.notifier = store.notifier
        self.key: Hashable = store.backend.mailbox_key(identity)
        self._store = store
        self._path = path
        self._identity = identity
        self._uidvalidity = uidvalidity

    def __repr__(self) -> str:
        mode = "read-only" if self.read_only else "read-write"
        return f"<{type(self).__name__} {self._store.username}:{self.name} {mode}>"

    @property
    def uidvalidity(self) -> int:
        """The UIDVALIDITY, as of the last operation."""
        return self._uidvalidity

    # -- what a store's folders differ in ------------------------------------

    def _open_folder(self) -> Any:
        """A context manager giving this mailbox's folder, up to date and locked."""
        raise NotImplementedError

    @staticmethod
    def _identity_of(folder: Any) -> str:
        raise NotImplementedError

    @staticmethod
    def _events_of(folder: Any) -> list[MailboxEvent]:
        """What the folder's refresh and the operation caused, in order."""
        return folder.events

    @staticmethod
    def _uidvalidity_of(folder: Any) -> int:
        return folder.uidvalidity

    # -- running operations --------------------------------------------------

    async def _run(self, operation: Callable[[Any], Any], write: bool = False) -> Any:
        if write and self.read_only:
            raise ReadOnlyMailbox(f"Mailbox is read-only: {self.name}")
        try:
            result, events, identity, uidvalidity = await self._store.backend.run(
                self._in_thread, operation)
        except MailboxNotFound:
            raise MailboxNotFound(f"Mailbox no longer exists: {self.name}")
        publish_all(self._store, identity, events)
        if identity != self._identity:
            raise MailboxNotFound(f"Mailbox no longer exists: {self.name}")
        self._uidvalidity = uidvalidity
        if isinstance(result, BaseException):
            raise result
        return result

    def _in_thread(self, operation: Callable[[Any], Any]) -> tuple[Any, list, str, int]:
        with self._open_folder() as folder:
            identity = self._identity_of(folder)
            if identity != self._identity:
                # Another mailbox now has this name; this one is gone.
                return None, self._events_of(folder), identity, self._uidvalidity_of(folder)
            try:
                result = operation(folder)
            except Exception as e:  # noqa: BLE001 - re-raised on the reactor thread
                # The refresh before the failure happened and its events
                # must still be published; what is cached of the folder may
                # be half changed by the failed operation.
                self._store.backend.cache.forget(self._path)
                result = e
            return result, self._events_of(folder), identity, self._uidvalidity_of(folder)

    # -- reads -------------------------------------------------------------

    async def status(self) -> MailboxStatus:
        """Counters of the folder; notices changes made by other programs."""
        return await self._run(lambda folder: folder.status())

    async def uids(self) -> list[int]:
        """All UIDs, ascending."""
        metas = await self._run(lambda folder: folder.metadata())
        return [meta.uid for meta in metas]

    async def metadata(self, uids: Iterable[int]) -> list[MessageMeta]:
        """Metas of the existing messages among C{uids}, ascending."""
        wanted = sorted_unique(uids)
        return await self._run(lambda folder: folder.metadata(wanted))

    async def open_message(self, uid: int) -> HeldMessage:
        """The message with this UID, read now; L{MessageExpunged} if gone."""
        meta, content = await self._run(lambda folder: folder.content(uid))
        return self.message_class(meta, content)

    async def contents(self, uids: Iterable[int], limit: int) -> dict[int, bytes]:
        """
        L{IContentAccess}: each message read as L{open_message} reads it,
        all in one pass over the folder; those larger than C{limit} are not
        read, those gone (found gone by the read, too) are left out.
        """
        wanted = sorted_unique(uids)
        if not wanted:
            return {}
        return await self._run(lambda folder: _contents_of(folder, wanted, limit))

    async def claim_recent(self, claim: bool = True) -> list[int]:
        """UIDs no session has been told of; C{claim} takes them for the caller."""
        return await self._run(lambda folder: folder.claim_recent(claim))

    async def changes_since(self, modseq: int) -> tuple[list[MessageMeta], list[int]]:
        """Metas changed after C{modseq} and UIDs expunged after it."""
        return await self._run(lambda folder: folder.changes_since(modseq))

    # -- summaries -----------------------------------------------------------

    def _summary_file(self) -> SummaryFile:
        return self._store.backend.summary_files.at(self._store.summary_path)

    async def summaries(self, uids: Iterable[int], names: Iterable[str],
                        ) -> dict[int, dict[str, bytes]]:
        """
        L{ISummaryStore}: from the user's summaries file, by identity; the
        C{header} (the raw top-level header) is cut from the message itself,
        for all of C{uids} in one pass, without parsing the rest.
        """
        wanted, names = sorted_unique(uids), list(names)
        if not wanted or not names:
            return {}
        summaries = self._summary_file()
        kept = [name for name in names if name != "header"]

        def read(folder: Any) -> dict[int, dict[str, bytes]]:
            metas = folder.metadata(wanted)
            values: dict[int, dict[str, bytes]] = {}
            if kept:
                found = summaries.get((meta.identity for meta in metas), kept)
                values = {meta.uid: found[meta.identity] for meta in metas
                          if meta.identity in found}
            if len(kept) < len(names):
                for meta in metas:
                    header = folder.header(meta.uid)
                    if header is not None:
                        values.setdefault(meta.uid, {})["header"] = header
            return values

        return await self._run(read)

    async def keep_summaries(self, values: dict[int, dict[str, bytes]]) -> None:
        """L{ISummaryStore}: append those not kept yet to the summaries file."""
        if not values:
            return
        summaries = self._summary_file()

        def keep(folder: Any) -> None:
            summaries.add({meta.identity: values[meta.uid]
                           for meta in folder.metadata(sorted(values))})

        await self._run(keep)

    # -- full-text search ------------------------------------------------------

    def _text_index(self) -> TextIndex:
        return self._store.backend.text_indexes.at(self._store.text_index_path)

    async def text_matches(self, terms: Iterable[tuple[str, str]],
                           ) -> list[frozenset[int]] | None:
        """
        L{ITextIndexedMailbox}: from the user's full-text index.  Messages
        without an entry are read and indexed first, a batch at a time
        (L{FILL_BATCH} messages or L{FILL_BYTES}), the folder's locks let go
        between batches and while their text is extracted; C{None} (the
        generic evaluator reads the messages) when the index fails.
        """
        terms = list(terms)
        index = self._text_index()
        if not terms or index.unusable:
            return None
        backend = self._store.backend
        while True:
            found, read = await self._run(lambda folder: _search_folder(folder, index, terms))
            if found is not None or not read:
                return found
            try:
                await backend.run(index.add_contents, read)
            except Unusable:
                return None
            except INDEX_ERRORS:
                log.failure("Indexing the text of {count} messages failed", count=len(read))
                return None

    # -- writes ------------------------------------------------------------

    async def append(
        self, requests: Iterable[AppendRequest], origin: Hashable | None = None
    ) -> list[MessageMeta]:
        """
        Append all of C{requests}, durable when this returns.  With a
        summarizer, their summaries are computed first (in a pool thread,
        outside the folder's locks) and written once the messages are,
        before anyone hears of them; a copy's are already kept.
        """
        requests = list(requests)
        if not requests:
            return []
        if self.read_only:
            raise ReadOnlyMailbox(f"Mailbox is read-only: {self.name}")
        backend = self._store.backend
        summaries = self._summary_file()
        index = self._text_index()
        values, texts = await backend.run(
            _prepare_all, backend.summarizer, summaries, index, requests)

        def append_now(folder: Any) -> list[MessageMeta]:
            metas = folder.append(requests)
            if any(values):
                try:
                    summaries.add({meta.identity: found
                                   for meta, found in zip(metas, values) if found})
                except OSError:
                    # The messages are stored; their summaries come at a FETCH.
                    log.failure("Keeping the summaries of appended messages failed")
            return metas

        metas = await self._run(
            lambda folder: with_origin(folder, origin, lambda: append_now(folder)), write=True)
        rows = [(meta.identity, *text) for meta, text in zip(metas, texts)
                if text is not None and meta.identity]
        if rows:
            try:
                await backend.run(index.add, rows)
            except Unusable:
                pass
            except INDEX_ERRORS:
                # The messages are stored; the first SEARCH needing them indexes them.
                log.failure("Indexing the text of appended messages failed")
        return metas

    async def store_flags(
        self,
        uids: Iterable[int],
        mode: str,
        flags: Iterable[str],
        unchangedsince: int | None = None,
        origin: Hashable | None = None,
    ) -> FlagUpdate:
        """Change flags; only messages whose flags really change get a MODSEQ."""
        uids, flags = sorted_unique(uids), frozenset(flags)
        return await self._run(
            lambda folder: with_origin(
                folder, origin, lambda: folder.store_flags(uids, mode, flags, unchangedsince)
            ),
            write=True,
        )

    async def expunge(
        self, uids: Iterable[int] | None = None, origin: Hashable | None = None
    ) -> list[int]:
        """Remove the \\Deleted messages (among C{uids} when given)."""
        wanted = None if uids is None else sorted_unique(uids)
        return await self._run(
            lambda folder: with_origin(folder, origin, lambda: folder.expunge(wanted)),
            write=True,
        )

    async def restore_identity(self, uidvalidity: int, uidnext: int = 1) -> MailboxStatus:
        """L{IRestorableMailbox}: recorded where the folder keeps its UIDs."""
        check_identity(uidvalidity, uidnext)
        if uidvalidity != self._uidvalidity:
            await self._store.backend.run(self._store.taken_uidvalidity, uidvalidity)
        return await self._run(
            lambda folder: folder.restore_identity(self.name, uidvalidity, uidnext), write=True
        )


def _prepare_all(summarizer: ISummarizer | None, summaries: SummaryFile, index: TextIndex,
                 requests: list[AppendRequest],
                 ) -> tuple[list[dict[str, bytes]], list[tuple[str, str] | None]]:
    """
    The summaries and the folded (header, body) text of each request,
    each message parsed once for both: C{{}} for a copy whose summaries
    are kept already, C{None} for one already indexed (for all when the
    index fails).
    """
    names = frozenset(summarizer.names) if summarizer is not None else frozenset()
    unindexed = _unindexed(index, requests)
    values: list[dict[str, bytes]] = []
    texts: list[tuple[str, str] | None] = []
    for request, text_wanted in zip(requests, unindexed):
        summary_wanted = summarizer is not None and not (
            request.identity and names <= summaries.names_of(request.identity))
        structure = None
        if summary_wanted and text_wanted:
            from twisted_mailhub.mime.parse import parse_message

            try:
                structure = parse_message(request.content)
            except Exception:  # noqa: BLE001 - each use below says so
                structure = None
        values.append(summarize(summarizer, request.content, structure)
                      if summary_wanted else {})
        texts.append(_text_or_none(request.content, structure) if text_wanted else None)
    return values, texts


def _unindexed(index: TextIndex, requests: list[AppendRequest]) -> list[bool]:
    """Whether each request is to be indexed: not a copy of an indexed message."""
    if index.unusable:
        return [False] * len(requests)
    kept = [r.identity for r in requests if r.identity]
    try:
        missing = set(index.missing(kept)) if kept else set()
    except Unusable:
        return [False] * len(requests)
    except INDEX_ERRORS:
        log.failure("Reading the full-text index {path} failed", path=index.path)
        return [False] * len(requests)
    return [not r.identity or r.identity in missing for r in requests]


def _text_or_none(content: bytes, structure: Any = None) -> tuple[str, str] | None:
    try:
        if structure is None:
            return message_text(content)
        return index_text(content, structure)
    except Exception:  # noqa: BLE001 - the message is stored all the same
        log.failure("Extracting the text of an appended message failed")
        return None


def _contents_of(folder: Any, uids: list[int], limit: int) -> dict[int, bytes]:
    """
    In the folder's thread, locks held: C{{uid: content}} of the messages
    among C{uids} that exist and serve at most C{limit} octets.
    """
    found: dict[int, bytes] = {}
    for meta in folder.metadata(uids):
        if meta.size > limit:
            continue
        try:
            _, content = folder.content(meta.uid)
        except MessageExpunged:
            continue
        # The size recorded may be stale when another program changed the
        # message: what is served is what counts.
        if len(content) <= limit:
            found[meta.uid] = content
    return found


def _search_folder(folder: Any, index: TextIndex, terms: list[tuple[str, str]],
                   ) -> tuple[list[frozenset[int]] | None, list[tuple[str, bytes]]]:
    """
    In the folder's thread, locks held: C{(found, [])} when every message
    has an entry (C{found} the UIDs of each term, or C{None} when the
    index cannot answer), else C{(None, read)} with the (identity,
    content) of the next batch of messages to index.
    """
    pairs = folder.identities()
    identities = [identity for _, identity in pairs]
    if not all(identities):
        return None, []
    try:
        missing, found = index.search(terms, identities)
    except Unusable:
        return None, []
    except INDEX_ERRORS:
        log.failure("Searching the full-text index {path} failed", path=index.path)
        return None, []
    if not missing:
        every = frozenset(uid for uid, _ in pairs)
        return [every if matching is None else
                frozenset(uid for uid, identity in pairs if identity in matching)
                for matching in found], []
    wanted = set(missing)
    read: list[tuple[str, bytes]] = []
    held = 0
    for uid, identity in pairs:
        if identity not in wanted:
            continue
        wanted.discard(identity)
        try:
            _, content = folder.content(uid)
        except MessageExpunged:
            continue
        read.append((identity, content))
        held += len(content)
        if len(read) >= FILL_BATCH or held >= FILL_BYTES:
            break
    return None, read


def with_origin(folder: Any, origin: Hashable | None, write: Callable[[], Any]) -> Any:
    """Run C{write} and mark the events it causes with the caller's C{origin}."""
    before = len(folder.events)
    result = write()
    for i in range(before, len(folder.events)):
        folder.events[i] = replace(folder.events[i], origin=origin)
    return result


def publish_all(store: Any, identity: str, events: list[MailboxEvent]) -> None:
    """Publish C{events} of the mailbox C{identity} of C{store}, in order."""
    key = store.backend.mailbox_key(identity)
    for event in events:
        store.notifier.publish(key, event)


# -- compacting the summaries file ---------------------------------------------

#: A summaries file smaller than this is never compacted automatically.
COMPACT_MIN_SIZE = 1 << 20
#: ... nor one whose lines are less than this fraction of messages that are gone.
COMPACT_DEAD_FRACTION = 0.5


async def live_identities(store: Any) -> frozenset[str] | None:
    """
    The identities of every message in C{store}'s mailboxes, from their
    indexes (no message is read); C{None} when a mailbox went away or got
    messages while they were gathered (a message moved from a mailbox not
    yet looked at to one already looked at would be missed).
    """
    live: set[str] = set()
    seen: list[tuple[Any, int]] = []
    for info in await store._list():
        if not info.selectable:
            continue
        try:
            box = await store.get_mailbox(info.name, read_only=True)
            uidnext = (await box.status()).uidnext
            metas = await box.metadata(await box.uids())
        except (MailboxNotFound, MessageExpunged):
            return None
        live.update(meta.identity for meta in metas if meta.identity)
        seen.append((box, uidnext))
    for box, uidnext in seen:
        try:
            if (await box.status()).uidnext != uidnext:
                return None
        except MailboxNotFound:
            return None
    return frozenset(live)


async def compact_summaries(store: Any, dead_fraction: float = 0.0) -> tuple[int, int]:
    """
    Rewrite C{store}'s summaries file keeping only the lines of messages
    that still exist (L{SummaryFile.compact}), when at least
    C{dead_fraction} of the identities it has lines of are gone.  Returns
    its sizes before and after (equal when nothing was done).
    """
    backend = store.backend
    summaries = backend.summary_files.at(store.summary_path)
    mark = await backend.run(summaries.mark)
    before = mark[1]
    live = await live_identities(store)
    if live is None:
        return before, before  # another time
    await prune_text_index(store, live)
    keys = await backend.run(summaries.keys)
    if not keys or len(keys - live) < dead_fraction * len(keys) or not keys - live:
        summaries.checked_size = before
        return before, before
    before, after = await backend.run(summaries.compact, live, mark)
    summaries.checked_size = after
    return before, after


async def prune_text_index(store: Any, live: frozenset[str] | None = None) -> int:
    """
    Remove from C{store}'s full-text index the entries of identities not
    in C{live} (from L{live_identities} when not given); how many.  A
    failure is logged: the entries stay for another time.
    """
    if live is None:
        live = await live_identities(store)
        if live is None:
            return 0
    backend = store.backend
    index = backend.text_indexes.at(store.text_index_path)
    if index.unusable:
        return 0
    try:
        pruned = await backend.run(index.prune, live)
    except Unusable:
        return 0
    except INDEX_ERRORS:
        log.failure("Pruning the full-text index of {user} failed", user=store.username)
        return 0
    if pruned:
        log.info("Removed {count} entries of gone messages from the full-text index of {user}",
                 count=pruned, user=store.username)
    return pruned


def compact_when_due(store: Any, size: int) -> Deferred | None:
    """
    Start compacting C{store}'s summaries file, of C{size} octets, in the
    background when it is large and has doubled since last looked at (in
    this process); the work, or C{None} when not due.  Failures are logged.
    """
    backend = store.backend
    summaries = backend.summary_files.at(store.summary_path)
    running = backend.summary_compactions.get(store.summary_path)
    if running is not None:
        return running
    if size < max(COMPACT_MIN_SIZE, 2 * summaries.checked_size):
        return None

    async def work() -> None:
        try:
            before, after = await compact_summaries(store, COMPACT_DEAD_FRACTION)
            if after < before:
                log.info("Compacted the summaries of {user}: {before} to {after} octets",
                         user=store.username, before=before, after=after)
        except Exception:  # noqa: BLE001 - a cache: the next open tries again
            log.failure("Compacting the summaries of {user} failed", user=store.username)
        finally:
            del backend.summary_compactions[store.summary_path]

    done = Deferred()
    backend.summary_compactions[store.summary_path] = done
    ensureDeferred(work()).chainDeferred(done)
    return done
