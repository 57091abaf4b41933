"""
The index kept next to each mbox file (C{<file>.mailhub}, JSON).

The mbox file holds the messages; the index holds what IMAP needs and mbox
cannot: UIDVALIDITY, UIDNEXT, the mailbox's identity (its C{key}), each
message's UID, flags, MODSEQ, INTERNALDATE, identity and save date, the
expunge history for QRESYNC, and which UIDs are still
\\Recent.  Each message is recorded with its place in the file and a digest
of its content (L{twisted_mailhub.backends.mbox.format.digest}), so that
when another program rewrites the file the messages can be recognised
again.  The index also records the size, mtime and inode of the mbox file
as last seen, which is how a change by another program is noticed.

The index is replaced atomically on every change.
"""

from __future__ import annotations

import json
import os
import uuid
from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import datetime

from twisted_mailhub.backends.mbox.atomic import replace_file
from twisted_mailhub.model import MessageMeta

FORMAT_VERSION = 1


@dataclass(slots=True)
class Entry:
    """One message: its IMAP state and where its stored text is in the file."""

    uid: int
    flags: frozenset[str]
    modseq: int
    internaldate: datetime
    start: int
    body_start: int
    body_end: int
    digest: str
    size: int
    trim: int = 0
    status: str = ""
    # The message's identity and when it was saved here, for a message
    # this server put in the file; "" and None for one found in it
    # (another program's delivery, or an index written before they were
    # kept), whose identity is then its digest and its save date its
    # INTERNALDATE (the From line's date, the delivery's).
    identity: str = ""
    saved: datetime | None = None

    def meta(self) -> MessageMeta:
        """The L{MessageMeta} of this message."""
        return MessageMeta(self.uid, self.flags, self.internaldate, self.size, self.modseq,
                           self.identity or self.digest, self.saved or self.internaldate)

    def to_json(self) -> list:
        row = [
            self.uid, sorted(self.flags), self.modseq, self.internaldate.isoformat(),
            self.start, self.body_start, self.body_end, self.digest, self.size,
            self.trim, self.status,
        ]
        if self.identity or self.saved is not None:
            row += [self.identity, self.saved.isoformat() if self.saved is not None else None]
        return row

    @classmethod
    def from_json(cls, row: list) -> Entry:
        (uid, flags, modseq, date, start, body_start, body_end, digest, size, trim,
         status) = row[:11]
        identity, saved = (row[11], row[12]) if len(row) > 12 else ("", None)
        return cls(uid, frozenset(flags), modseq, datetime.fromisoformat(date), start,
                   body_start, body_end, digest, size, trim, status, identity,
                   datetime.fromisoformat(saved) if saved is not None else None)


def _uid_of(entry: Entry) -> int:
    return entry.uid


FileSignature = tuple[int, int, int]
"""(size, mtime in ns, inode) of an mbox file."""


def signature(stat: os.stat_result) -> FileSignature:
    """The L{FileSignature} of a stat result."""
    return (stat.st_size, stat.st_mtime_ns, stat.st_ino)


@dataclass(slots=True)
class Index:
    """Everything the index file holds about one mailbox."""

    uidvalidity: int
    key: str = field(default_factory=lambda: uuid.uuid4().hex)
    uidnext: int = 1
    # RFC 7162 wants a positive HIGHESTMODSEQ even for an empty mailbox.
    highestmodseq: int = 1
    # UIDs above this one have not been reported to any session yet.
    recent_after: int = 0
    special_use: frozenset[str] = frozenset()
    entries: list[Entry] = field(default_factory=list)
    # (uid, modseq of its expunge), in expunge order.
    expunged: list[tuple[int, int]] = field(default_factory=list)
    file: FileSignature | None = None
    # (offset, expected end) of an append in progress; see MboxFolder.append.
    pending: tuple[int, int] | None = None

    def next_modseq(self) -> int:
        """Allocate a MODSEQ greater than any before."""
        self.highestmodseq += 1
        return self.highestmodseq

    def by_uid(self) -> dict[int, Entry]:
        """The entries keyed by UID."""
        return {entry.uid: entry for entry in self.entries}

    def entry(self, uid: int) -> Entry | None:
        """
        The entry of C{uid}, or C{None}.  Entries are in file order, which
        is UID order (a message found before known ones gets the mailbox a
        new UIDVALIDITY), so a binary search finds it; a miss is confirmed
        by a scan, which costs only for a UID that is gone.
        """
        entries = self.entries
        i = bisect_left(entries, uid, key=_uid_of)
        if i < len(entries) and entries[i].uid == uid:
            return entries[i]
        return next((entry for entry in entries if entry.uid == uid), None)

    def to_json(self) -> dict:
        return {
            "version": FORMAT_VERSION,
            "key": self.key,
            "uidvalidity": self.uidvalidity,
            "uidnext": self.uidnext,
            "highestmodseq": self.highestmodseq,
            "recent_after": self.recent_after,
            "special_use": sorted(self.special_use),
            "file": list(self.file) if self.file else None,
            "pending": list(self.pending) if self.pending else None,
            "messages": [entry.to_json() for entry in self.entries],
            "expunged": [list(pair) for pair in self.expunged],
        }

    @classmethod
    def from_json(cls, data: dict) -> Index:
        if data.get("version") != FORMAT_VERSION:
            raise ValueError(f"Unknown index format {data.get('version')!r}")
        return cls(
            uidvalidity=data["uidvalidity"],
            key=data["key"],
            uidnext=data["uidnext"],
            highestmodseq=data["highestmodseq"],
            recent_after=data["recent_after"],
            special_use=frozenset(data["special_use"]),
            entries=[Entry.from_json(row) for row in data["messages"]],
            expunged=[(uid, modseq) for uid, modseq in data["expunged"]],
            file=tuple(data["file"]) if data["file"] else None,
            pending=tuple(data["pending"]) if data["pending"] else None,
        )


def read_index(path: str) -> Index | None:
    """The index stored at C{path}, or C{None} if there is none."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    return Index.from_json(json.loads(data))


def write_index(path: str, index: Index) -> os.stat_result:
    """Atomically store C{index} at C{path}; return the new file's stat."""
    data = json.dumps(index.to_json(), separators=(",", ":")).encode("utf-8")
    return replace_file(path, [data], 0o600)
