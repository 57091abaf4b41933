"""
Synchronous operations on one mbox file and its index, under its locks.

An L{MboxFolder} exists only inside L{open_folder}, which holds the locks
(see L{twisted_mailhub.backends.mbox.locking}) and first brings the index
up to date with the file (L{MboxFolder.refresh}): messages another program
appended get UIDs, messages it removed are recorded as expunged, status
fields it changed become flag changes.  Each operation collects the
mailbox events it causes in L{MboxFolder.events}; the caller publishes them
on the reactor thread.  Everything here blocks and runs in a worker thread.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone

from twisted.logger import Logger

from twisted_mailhub.backends.base import clean_flags, flag_changes
from twisted_mailhub.backends.filebackend import FolderSettings
from twisted_mailhub.backends.files import pread_exactly, pread_upto, pwrite_all, replace_file
from twisted_mailhub.backends.identity import next_uid, refuse_new_uidvalidity
from twisted_mailhub.backends.mbox import format as mbox
from twisted_mailhub.backends.mbox.index import (
    Change,
    Entry,
    FileSignature,
    Index,
    Loaded,
    append_records,
    encode_index,
    encode_record,
    load_index,
    signature,
    written,
)
from twisted_mailhub.backends.mbox.locking import locked_mbox
from twisted_mailhub.backends.mbox.naming import index_file
from twisted_mailhub.errors import MessageExpunged
from twisted_mailhub.mime.parse import header_length
from twisted_mailhub.model import (
    AppendRequest,
    FlagsChanged,
    FlagUpdate,
    MailboxEvent,
    MailboxRemoved,
    MailboxStatus,
    MessageMeta,
    MessagesAdded,
    MessagesExpunged,
    kept_object_id,
)

log = Logger()

#: How much of a message is read first for its header alone.
HEADER_READ = 8192


#: Journal records are folded into the index's JSON document once they
#: pass this share of the document's size (and L{JOURNAL_MINIMUM} bytes):
#: replaying them then costs at most about what reading the document
#: does, and the rewrites cost about as much as the records written.
JOURNAL_SHARE = 0.5
JOURNAL_MINIMUM = 64 * 1024


class IndexCache:
    """
    Parsed indexes, reused while the index file is unchanged on disk; when
    another process added journal records, only those are read.

    L{load} and the writes are only used under the mailbox's locks, so one
    path is never touched by two threads at once; L{peek} is for readers
    without them.
    """

    def __init__(self, journal_share: float = JOURNAL_SHARE,
                 journal_minimum: int = JOURNAL_MINIMUM) -> None:
        self._entries: dict[str, tuple[FileSignature, Loaded]] = {}
        self.journal_share = journal_share
        self.journal_minimum = journal_minimum

    def load(self, path: str) -> Index | None:
        """The index of the mbox file C{path}, brought up to date with the disk."""
        return self._load(path, True)

    def peek(self, path: str) -> Index | None:
        """
        For a reader without the locks, an index of C{path} whose key and
        special-use attributes are current: those of the index file that
        is there.  Other fields may lag (records another process added are
        not read): they are L{load}'s business.  An index in use is never
        changed, only replaced by one read afresh.
        """
        cached = self._entries.get(path)
        if cached is not None:
            known, loaded = cached
            name = index_file(path)
            try:
                current = signature(os.stat(name))
                if known == current:
                    return loaded.index
                if known[2] == current[2] and loaded.head:
                    # Records were added, or the index was rewritten: the
                    # same key at the start is the same mailbox, whose key
                    # and special-use attributes never change.
                    with open(name, "rb") as f:
                        if f.read(len(loaded.head)) == loaded.head:
                            return loaded.index
            except FileNotFoundError:
                pass
        return self._load(path, False)

    def _load(self, path: str, locked: bool) -> Index | None:
        name = index_file(path)
        try:
            current = signature(os.stat(name))
        except FileNotFoundError:
            self._entries.pop(path, None)
            return None
        cached = self._entries.get(path)
        if cached is not None:
            known, loaded = cached
            if known == current:
                return loaded.index
            if locked and known[2] == current[2] and current[0] > loaded.end and \
                    self._continue(name, loaded):
                self._entries[path] = (current, loaded)
                return loaded.index
        try:
            loaded = load_index(name)
        except (ValueError, KeyError, TypeError):
            log.warn("Unreadable index {name}; rebuilding it", name=name)  # noqa: G010
            self._entries.pop(path, None)
            return None
        except FileNotFoundError:
            loaded = None
        if loaded is None:
            self._entries.pop(path, None)
            return None
        if loaded.tail and locked:
            log.warn("Ignoring the last {size} bytes of {name}: {problem}",  # noqa: G010
                     size=loaded.tail, name=name, problem=loaded.problem)
        self._entries[path] = (current, loaded)
        return loaded.index

    def _continue(self, name: str, loaded: Loaded) -> bool:
        # The same file, grown: another process added records.
        try:
            with open(name, "rb") as f:
                f.seek(loaded.end)
                data = f.read()
        except FileNotFoundError:
            return False
        return loaded.replay(data, loaded.end, continuing=True)

    def save(self, path: str, index: Index) -> None:
        """Rewrite the index of C{path} (a new file renamed over the old one)."""
        document = encode_index(index)
        stat = replace_file(index_file(path), [document], 0o600)
        self._entries[path] = (signature(stat), written(index, document))

    def record(self, path: str, index: Index, changes: list[Change]) -> None:
        """
        Store C{changes}, made to C{index} since it was loaded or saved, as
        journal records, or rewrite the index when the journal is due for
        folding in (or C{index} is not the one loaded).
        """
        cached = self._entries.get(path)
        if cached is None or cached[1].index is not index:
            self.save(path, index)
            return
        loaded = cached[1]
        chain = loaded.chain
        records = []
        for change in changes:
            data, chain = encode_record(change, chain)
            records.append(data)
        size = sum(len(data) for data in records)
        if loaded.journal + size > max(self.journal_minimum,
                                       self.journal_share * loaded.document):
            self.save(path, index)
            return
        stat = append_records(index_file(path), loaded.end, records)
        loaded.end += size
        loaded.chain = chain
        loaded.records += len(records)
        loaded.tail, loaded.problem = 0, ""
        self._entries[path] = (signature(stat), loaded)

    def forget(self, path: str) -> None:
        """Drop what is known of C{path}: it is read again on next use."""
        self._entries.pop(path, None)


@contextmanager
def open_folder(path: str, settings: FolderSettings, cache: IndexCache) -> Iterator[MboxFolder]:
    """Lock the mbox file C{path}, bring its index up to date, yield it."""
    with locked_mbox(path, settings.lock_timeout, settings.stale_lock_after,
                     settings.on_lock_wait) as fd:
        try:
            index = cache.load(path)
            folder = MboxFolder(path, fd, index, settings, cache)
            folder.refresh()
            yield folder
        except BaseException:
            # The cached index may be half changed.
            cache.forget(path)
            raise


class MboxFolder:
    """One locked mbox file and its index."""

    def __init__(self, path: str, fd: int, index: Index | None, settings: FolderSettings,
                 cache: IndexCache) -> None:
        self.path = path
        self.events: list[MailboxEvent] = []
        self._fd = fd
        self._settings = settings
        self._cache = cache
        # A change only a rewrite of the index can store, or those that
        # journal records can (see IndexCache.record).
        self._dirty = index is None
        self._changes: list[Change] = []
        self.index = index if index is not None else Index(settings.new_uidvalidity())

    def save(self) -> None:
        """Store the index if it changed."""
        if self._dirty:
            self._cache.save(self.path, self.index)
        elif self._changes:
            self._cache.record(self.path, self.index, self._changes)
        self._dirty = False
        self._changes = []

    def _log(self, change: Change) -> None:
        """C{change} was made to the index: store it with the next L{save}."""
        self._changes.append(change)

    # -- reconciling with the file -------------------------------------------

    def refresh(self) -> None:
        """Take in whatever other programs did to the file since we last looked."""
        index = self.index
        stat = os.fstat(self._fd)
        if index.pending is not None:
            self._finish_interrupted_append(stat)
            stat = os.fstat(self._fd)
        current = signature(stat)
        if index.file != current:
            old = index.file
            if old is not None and self._grew_by_appending(old, current):
                known = len(index.entries)
                tail = pread_exactly(self._fd, current[0] - old[0], old[0])
                self._add_new(mbox.scan(tail, old[0]), tail, old[0])
                index.file = current
                self._log(Change({"uidnext": index.uidnext,
                                  "highestmodseq": index.highestmodseq,
                                  "file": current}, index.entries[known:]))
            else:
                self._rescan(current[0])
                index.file = current
                self._dirty = True
        self.save()

    def _finish_interrupted_append(self, stat: os.stat_result) -> None:
        # An append of ours died between writing and recording.  If the
        # write is incomplete, nobody was told of it: cut it off.  If it
        # is complete, the messages are picked up like any delivery.
        offset, end = self.index.pending
        if offset <= stat.st_size < end:
            log.warn("Removing an interrupted append from {path}", path=self.path)  # noqa: G010
            os.ftruncate(self._fd, offset)
            os.fsync(self._fd)
        self.index.pending = None
        self._log(Change({"pending": None}))

    def _grew_by_appending(self, old: tuple[int, int, int], new: tuple[int, int, int]) -> bool:
        old_size, _, old_inode = old
        size, _, inode = new
        if inode != old_inode or size <= old_size:
            return False
        entries = self.index.entries
        if entries and pread_upto(self._fd, 5, entries[-1].start) != mbox.SEPARATOR:
            return False
        before = pread_exactly(self._fd, min(2, old_size), old_size - min(2, old_size))
        after = pread_upto(self._fd, 6, old_size)
        if after.startswith(mbox.SEPARATOR):
            return not before or before.endswith(b"\n")
        # A newline completing the empty line after a last message that
        # had none, then the separator.
        return after == b"\n" + mbox.SEPARATOR and before.endswith(b"\n") and before != b"\n\n"

    def _read_found(self, found: mbox.StoredMessage, data: bytes, base: int):
        stored = data[found.body_start - base : found.body_end - base]
        return mbox.content_of(stored)

    def _new_entry(self, found: mbox.StoredMessage, content: bytes, status: str,
                   modseq: int, uid: int | None = None) -> Entry:
        index = self.index
        if uid is None:
            uid = index.uidnext
            index.uidnext += 1
        return Entry(
            uid=uid,
            flags=mbox.flags_from_status(status),
            modseq=modseq,
            internaldate=mbox.date_of_from_line(found.from_line) or mbox.now(),
            start=found.start,
            body_start=found.body_start,
            body_end=found.body_end,
            digest=mbox.digest(content),
            size=len(content),
            status=status,
        )

    def _add_new(self, found: list[mbox.StoredMessage], data: bytes, base: int) -> None:
        if not found:
            return
        modseq = self.index.next_modseq()
        added = []
        for message in found:
            content, status = self._read_found(message, data, base)
            entry = self._new_entry(message, content, status, modseq)
            self.index.entries.append(entry)
            added.append(entry.meta())
        self.events.append(MessagesAdded(tuple(added)))

    def _rescan(self, size: int) -> None:
        """Match every message of the file against the index by digest."""
        index = self.index
        data = pread_exactly(self._fd, size, 0)
        found = mbox.scan(data)
        read = [self._read_found(message, data, 0) for message in found]
        digests = [mbox.digest(content) for content, _ in read]
        where: dict[str, deque[int]] = {}
        for position, entry in enumerate(index.entries):
            where.setdefault(entry.digest, deque()).append(position)
        matched: list[tuple[int, int]] = []
        fresh: list[int] = []
        floor = 0
        for i, wanted in enumerate(digests):
            candidates = where.get(wanted)
            while candidates and candidates[0] < floor:
                candidates.popleft()
            if candidates:
                position = candidates.popleft()
                matched.append((i, position))
                floor = position + 1
            else:
                fresh.append(i)
        if matched and fresh and fresh[0] < matched[-1][0]:
            self._renumber(found, read, dict(matched))
            return
        kept = {position for _, position in matched}
        gone = [entry.uid for position, entry in enumerate(index.entries) if position not in kept]
        if gone:
            modseq = index.next_modseq()
            index.expunged.extend((uid, modseq) for uid in gone)
            self.events.append(MessagesExpunged(tuple(gone), modseq))
        entries = []
        changed = []
        modseq = None
        for i, position in matched:
            entry = index.entries[position]
            message, (_, status) = found[i], read[i]
            entry.start, entry.body_start, entry.body_end = (
                message.start, message.body_start, message.body_end)
            if status != entry.status:
                entry.status = status
                flags = mbox.flags_from_status(status)
                if flags != entry.flags:
                    modseq = modseq or index.next_modseq()
                    entry.flags = flags
                    entry.modseq = modseq
                    changed.append(entry.meta())
            entries.append(entry)
        index.entries = entries
        if changed:
            self.events.append(FlagsChanged(tuple(changed)))
        if fresh:
            self._add_new([found[i] for i in fresh], data, 0)

    def _renumber(self, found: list[mbox.StoredMessage], read: list[tuple[bytes, str]],
                  matched: dict[int, int]) -> None:
        """The file's order contradicts the UIDs: start a new UIDVALIDITY."""
        index = self.index
        old_entries = index.entries
        log.warn("Messages of {path} reordered; new UIDVALIDITY", path=self.path)  # noqa: G010
        index.uidvalidity = max(self._settings.new_uidvalidity(), index.uidvalidity + 1)
        index.uidnext = 1
        index.recent_after = 0
        index.expunged = []
        index.entries = []
        modseq = index.next_modseq()
        for i, message in enumerate(found):
            content, status = read[i]
            entry = self._new_entry(message, content, status, modseq)
            if i in matched:
                previous = old_entries[matched[i]]
                entry.flags, entry.internaldate, entry.trim = (
                    previous.flags, previous.internaldate, previous.trim)
                entry.size = len(content) - entry.trim
            index.entries.append(entry)
        self.events.append(MailboxRemoved())

    # -- reading -------------------------------------------------------------

    def status(self) -> MailboxStatus:
        """The counters of the mailbox."""
        index = self.index
        unseen = deleted = size = 0
        for entry in index.entries:
            if "\\Seen" not in entry.flags:
                unseen += 1
            if "\\Deleted" in entry.flags:
                deleted += 1
            size += entry.size
        return MailboxStatus(
            messages=len(index.entries),
            uidnext=index.uidnext,
            uidvalidity=index.uidvalidity,
            unseen=unseen,
            highestmodseq=index.highestmodseq,
            recent=sum(1 for entry in index.entries if entry.uid > index.recent_after),
            size=size,
            deleted=deleted,
            identity=index.key,
        )

    def metadata(self, uids: Iterable[int] | None = None) -> list[MessageMeta]:
        """Metas of the existing messages among C{uids} (all when C{None})."""
        if uids is None:
            return [entry.meta() for entry in self.index.entries]
        wanted = set(uids)
        return [entry.meta() for entry in self.index.entries if entry.uid in wanted]

    def identities(self) -> list[tuple[int, str]]:
        """The (UID, identity) of every message, without making their metas."""
        return [(entry.uid, entry.identity or entry.digest) for entry in self.index.entries]

    def content(self, uid: int, retry: bool = True) -> tuple[MessageMeta, bytes]:
        """The meta and the content of message C{uid}, as served to clients."""
        entry = self.index.entry(uid)
        if entry is None:
            raise MessageExpunged(f"Message {uid} no longer exists")
        # Short when the file changed behind our back: the digest tells.
        stored = pread_upto(self._fd, entry.body_end - entry.body_start, entry.body_start)
        content, _ = mbox.content_of(stored)
        if mbox.digest(content) != entry.digest and retry:
            # Changed behind our back without changing size, mtime or inode.
            self.index.file = None
            self.refresh()
            return self.content(uid, retry=False)
        return entry.meta(), content[: len(content) - entry.trim]

    def header(self, uid: int) -> bytes | None:
        """
        The top-level header of message C{uid} as served (through the blank
        line that ends it), read from the start of the message only; the
        whole message when it has no body.  C{None} when it is gone.
        """
        entry = self.index.entry(uid)
        if entry is None:
            return None
        length = entry.body_end - entry.body_start
        want = HEADER_READ
        while want < length:
            stored = pread_upto(self._fd, want, entry.body_start)
            # Whole lines only: unquoting and field splitting are by line.
            stored = stored[: stored.rfind(b"\n") + 1]
            served, _ = mbox.content_of(stored)
            end = header_length(served)
            # Far enough from the cut that no blank line can straddle it.
            if end <= len(served) - 4:
                return served[:end]
            want *= 4
        _, content = self.content(uid)
        return content[: header_length(content)]

    def claim_recent(self, claim: bool) -> list[int]:
        """UIDs not yet reported to any session; C{claim} reports them."""
        index = self.index
        recent = [entry.uid for entry in index.entries if entry.uid > index.recent_after]
        if claim and index.recent_after != index.uidnext - 1:
            index.recent_after = index.uidnext - 1
            self._log(Change({"recent_after": index.recent_after}))
            self.save()
        return recent

    def changes_since(self, modseq: int) -> tuple[list[MessageMeta], list[int]]:
        """Metas changed after C{modseq} and UIDs expunged after it."""
        metas = [entry.meta() for entry in self.index.entries if entry.modseq > modseq]
        expunged = sorted(uid for uid, when in self.index.expunged if when > modseq)
        return metas, expunged

    # -- writing -------------------------------------------------------------

    def append(self, requests: list[AppendRequest]) -> list[MessageMeta]:
        """
        Append C{requests} in one write and fsync.  Before writing, the
        index records the append as pending, so that a crash in the middle
        is cut off on the next open (L{refresh}); once the messages are
        durable in the file, the index records them.
        """
        index = self.index
        size = os.fstat(self._fd).st_size
        tail = pread_exactly(self._fd, min(2, size), size - min(2, size))
        chunks = [mbox.padding_before_append(tail)]
        offset = size + len(chunks[0])
        modseq = index.highestmodseq + 1
        entries = []
        uid = index.uidnext
        saved = datetime.now(timezone.utc)
        for request in requests:
            uid = next_uid(uid, request.uid)
            date = request.internaldate or mbox.now()
            from_line = mbox.make_from_line(mbox.sender_of(request.content), date)
            flags = clean_flags(request.flags)
            data, trim, status = mbox.render(request.content, from_line, flags)
            body_start = offset + len(from_line)
            body_end = offset + len(data) - 1
            content, _ = mbox.content_of(data[len(from_line) : -1])
            entries.append(Entry(uid, flags, modseq, date, offset, body_start, body_end,
                                 mbox.digest(content), len(content) - trim, trim, status,
                                 kept_object_id(request.identity), saved))
            chunks.append(data)
            offset += len(data)
            uid += 1
        index.pending = (size, offset)
        self._log(Change({"pending": index.pending}))
        self.save()
        try:
            pwrite_all(self._fd, b"".join(chunks), size)
            os.fsync(self._fd)
        except BaseException:
            os.ftruncate(self._fd, size)
            index.pending = None
            self._log(Change({"pending": None}))
            self.save()
            raise
        index.pending = None
        index.highestmodseq = modseq
        index.uidnext = uid
        index.entries.extend(entries)
        index.file = signature(os.fstat(self._fd))
        self._log(Change({"pending": None, "highestmodseq": modseq, "uidnext": uid,
                          "file": index.file}, entries))
        self.save()
        metas = [entry.meta() for entry in entries]
        self.events.append(MessagesAdded(tuple(metas)))
        return metas

    def restore_identity(self, name: str, uidvalidity: int, uidnext: int) -> MailboxStatus:
        """
        Take C{uidvalidity} if this mailbox never held a message (then
        UIDNEXT is C{uidnext}), or raise UIDNEXT to C{uidnext} under the
        UIDVALIDITY it has.
        """
        index = self.index
        if uidvalidity != index.uidvalidity:
            if index.entries or index.expunged or index.highestmodseq != 1:
                raise refuse_new_uidvalidity(name, index.uidvalidity, uidvalidity)
            index.uidvalidity, index.uidnext = uidvalidity, uidnext
            index.recent_after = min(index.recent_after, uidnext - 1)
            self.events.append(MailboxRemoved())
        elif uidnext > index.uidnext:
            index.uidnext = uidnext
        else:
            return self.status()
        self._log(Change({"uidvalidity": index.uidvalidity, "uidnext": index.uidnext,
                          "recent_after": index.recent_after}))
        self.save()
        return self.status()

    def store_flags(self, uids: Iterable[int], mode: str, flags: Iterable[str],
                    unchangedsince: int | None = None) -> FlagUpdate:
        """Change flags in the index (the file is updated on the next rewrite)."""
        update = FlagUpdate()
        pending = flag_changes(self.index.entries, set(uids), mode, clean_flags(flags),
                               unchangedsince, update)
        if pending:
            modseq = self.index.next_modseq()
            for entry, new in pending:
                entry.flags = new
                entry.modseq = modseq
                update.changed.append(entry.meta())
            self._log(Change({"highestmodseq": modseq},
                             flags=[(entry.uid, entry.flags, modseq) for entry, _ in pending]))
            self.save()
            self.events.append(FlagsChanged(tuple(update.changed)))
        return update

    def expunge(self, uids: Iterable[int] | None = None) -> list[int]:
        """
        Remove the \\Deleted messages (among C{uids} when given) by writing
        the remaining ones to a new file renamed over the old one.  The
        rewrite also brings every message's status fields up to date, so
        other mail programs see the flags set over IMAP.
        """
        index = self.index
        wanted = None if uids is None else set(uids)
        gone = [
            entry.uid for entry in index.entries
            if "\\Deleted" in entry.flags and (wanted is None or entry.uid in wanted)
        ]
        if not gone:
            return []
        removed = set(gone)
        kept = [entry for entry in index.entries if entry.uid not in removed]
        chunks, placed = self._rendered(kept)
        stat = replace_file(self.path, chunks)
        # From here on the file is the new one; the descriptor we hold
        # the locks through still names the old one.
        modseq = index.next_modseq()
        for entry, (start, body_start, body_end, status) in zip(kept, placed):
            entry.start, entry.body_start, entry.body_end, entry.status = (
                start, body_start, body_end, status)
        index.entries = kept
        index.expunged.extend((uid, modseq) for uid in gone)
        index.file = signature(stat)
        self._dirty = True
        self.save()
        self.events.append(MessagesExpunged(tuple(gone), modseq))
        return gone

    def _rendered(self, entries: list[Entry]) -> tuple[list[bytes], list[tuple]]:
        chunks = []
        placed = []
        offset = 0
        for entry in entries:
            from_line = pread_upto(self._fd, entry.body_start - entry.start, entry.start)
            stored = pread_upto(self._fd, entry.body_end - entry.body_start, entry.body_start)
            content, _ = mbox.content_of(stored)
            if mbox.digest(content) != entry.digest:
                raise RuntimeError(f"Message {entry.uid} of {self.path} changed during rewrite")
            data, _, status = mbox.render(content, from_line, entry.flags)
            chunks.append(data)
            placed.append((offset, offset + len(from_line), offset + len(data) - 1, status))
            offset += len(data)
        return chunks, placed
