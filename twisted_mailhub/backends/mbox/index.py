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

Small changes (flags, appends, the \\Recent claim, UIDNEXT) are appended to
the index file as journal records after the JSON document, so that their
cost does not grow with the mailbox.  The document is rewritten with the
records folded in (atomically: temporary file, fsync, rename) when the
records outgrow a share of it, and for changes no record expresses
(EXPUNGE, the rescan of a file another program rewrote).  The format of
the records is described before L{Change}.
"""

from __future__ import annotations

import json
import os
import uuid
import zlib
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from twisted_mailhub.backends.files import pwrite_all, replace_file
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


# -- the journal ---------------------------------------------------------------
#
# After the JSON document (one line: compact JSON escapes every newline),
# the index file holds zero or more records, each
#
#     "\n@" LENGTH " " CRC " " PAYLOAD
#
# LENGTH and CRC being 8 lowercase hex digits: the byte length of PAYLOAD
# and its CRC-32, chained from the record before (L{encode_record});
# PAYLOAD is a JSON object (L{Change}).  A record is whole when its
# length is all there and its checksum matches; the first
# one that is not ends the journal (a crash in the middle of a write: the
# operation was never acknowledged), and the bytes from there on are cut
# off before the next record is written.  An index written without records
# is the plain JSON document, as before the journal existed.

_RECORD_MARK = b"\n@"
_HEADER = len(_RECORD_MARK) + 8 + 1 + 8 + 1
_SETTABLE = ("uidvalidity", "uidnext", "highestmodseq", "recent_after", "file", "pending")
#: Bytes at the start of a document that include the mailbox's key.
HEAD = 64


@dataclass(slots=True)
class Change:
    """
    One journal record: fields set (JSON C{"set"}: an object), messages
    added at the end (C{"add"}: rows as in the document) and flags changed
    (C{"flags"}: rows of UID, flags, MODSEQ), applied in that order.
    """

    set: dict = field(default_factory=dict)
    added: list[Entry] = field(default_factory=list)
    flags: list[tuple[int, frozenset[str], int]] = field(default_factory=list)

    def to_json(self) -> dict:
        data: dict = {}
        if self.set:
            data["set"] = {name: list(value) if isinstance(value, tuple) else value
                           for name, value in self.set.items()}
        if self.added:
            data["add"] = [entry.to_json() for entry in self.added]
        if self.flags:
            data["flags"] = [[uid, sorted(flags), modseq] for uid, flags, modseq in self.flags]
        return data

    @classmethod
    def from_json(cls, data: dict) -> Change:
        if not isinstance(data, dict):
            raise TypeError("A journal record is an object")
        values = {}
        for name, value in data.get("set", {}).items():
            if name not in _SETTABLE:
                raise ValueError(f"Unknown field {name!r} in a journal record")
            if name in ("file", "pending"):
                value = tuple(value) if value is not None else None
            elif not isinstance(value, int):
                raise TypeError(f"{name} must be an integer")
            values[name] = value
        return cls(values, [Entry.from_json(row) for row in data.get("add", [])],
                   [(int(uid), frozenset(flags), int(modseq))
                    for uid, flags, modseq in data.get("flags", [])])

    def apply(self, index: Index) -> None:
        """
        Make C{index} what it was after the change.  Raises L{ValueError},
        leaving C{index} untouched, for a change that cannot follow its
        state.
        """
        last = index.entries[-1].uid if index.entries else 0
        for entry in self.added:
            if entry.uid <= last:
                raise ValueError(f"Journal adds UID {entry.uid} after UID {last}")
            last = entry.uid
        added = {entry.uid for entry in self.added}
        for uid, _, _ in self.flags:
            if uid not in added and index.entry(uid) is None:
                raise ValueError(f"Journal changes flags of unknown UID {uid}")
        for name, value in self.set.items():
            setattr(index, name, value)
        index.entries.extend(self.added)
        for uid, flags, modseq in self.flags:
            entry = index.entry(uid)
            entry.flags, entry.modseq = flags, modseq


def encode_record(change: Change, chain: int) -> tuple[bytes, int]:
    """
    The bytes of one journal record of C{change} following a record (or
    document) whose chained checksum is C{chain}, and its own.
    """
    payload = json.dumps(change.to_json(), separators=(",", ":")).encode("utf-8")
    crc = zlib.crc32(payload, chain)
    return _RECORD_MARK + b"%08x %08x " % (len(payload), crc) + payload, crc


@dataclass(slots=True)
class Loaded:
    """An index file as read: the index with its journal replayed."""

    index: Index
    # Bytes of the JSON document, and up to the end of the last whole record.
    document: int
    end: int
    # The chained checksum at C{end} (see L{encode_record}).
    chain: int
    records: int = 0
    # Bytes after the last whole record (a torn or damaged record), and why.
    tail: int = 0
    problem: str = ""
    # The start of the document, through the mailbox's key.
    head: bytes = b""

    @property
    def journal(self) -> int:
        """Bytes of whole journal records."""
        return self.end - self.document

    def replay(self, data: bytes, offset: int, continuing: bool = False) -> bool:
        """
        Apply the records of C{data}, the bytes of the file from C{offset}
        (at most L{end}) on.  When C{continuing} (records written since
        this state was read), C{False} if the first new one is not whole
        or does not follow this state (the file is not the one read
        before: it must be read again).
        """
        position = self.end - offset
        first = True
        self.tail, self.problem = 0, ""
        while position < len(data):
            outcome = _replay_one(data, position, self.index, self.chain)
            if isinstance(outcome, str):
                if continuing and first:
                    return False
                self.tail, self.problem = len(data) - position, outcome
                break
            first = False
            position, self.chain = outcome
            self.records += 1
        self.end = offset + position
        return True


def parse_index(data: bytes) -> Loaded:
    """
    The index of the bytes of an index file.  Raises L{ValueError},
    L{KeyError} or L{TypeError} when the JSON document is unreadable; a
    bad journal record only ends the journal (L{Loaded.tail}).
    """
    document = data.find(b"\n")
    if document < 0:
        document = len(data)
    head = data[:document]
    loaded = Loaded(Index.from_json(json.loads(head)), document, document, zlib.crc32(head),
                    head=head[:HEAD])
    loaded.replay(data, 0)
    return loaded


def _replay_one(data: bytes, position: int, index: Index,
                chain: int) -> tuple[int, int] | str:
    """Apply the record at C{position}; its end and checksum, or what is wrong with it."""
    header = data[position : position + _HEADER]
    if len(header) < _HEADER:
        return "a journal record is cut short"
    if not header.startswith(_RECORD_MARK) or header[-1:] != b" " or header[10:11] != b" ":
        return "a journal record has a damaged header"
    try:
        length, crc = int(header[2:10], 16), int(header[11:19], 16)
    except ValueError:
        return "a journal record has a damaged header"
    end = position + _HEADER + length
    payload = data[position + _HEADER : end]
    if len(payload) < length:
        return "a journal record is cut short"
    if zlib.crc32(payload, chain) != crc:
        return "a journal record fails its checksum"
    try:
        Change.from_json(json.loads(payload)).apply(index)
    except (ValueError, KeyError, TypeError) as e:
        return f"a journal record cannot be applied ({e})"
    return end, crc


def load_index(path: str) -> Loaded | None:
    """The index file at C{path} as read, or C{None} if there is none."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    return parse_index(data)


def read_index(path: str) -> Index | None:
    """The index stored at C{path} (its journal replayed), or C{None} if there is none."""
    loaded = load_index(path)
    return None if loaded is None else loaded.index


def append_records(path: str, end: int, records: Iterable[bytes]) -> os.stat_result:
    """
    Write journal C{records} to the index file at C{path} after its first
    C{end} bytes (cutting off whatever follows: a torn record), fsync, and
    return the file's stat.
    """
    fd = os.open(path, os.O_WRONLY)
    try:
        if os.fstat(fd).st_size != end:
            os.ftruncate(fd, end)
        pwrite_all(fd, b"".join(records), end)
        os.fsync(fd)
        return os.fstat(fd)
    finally:
        os.close(fd)


def encode_index(index: Index) -> bytes:
    """The JSON document of C{index} (one line)."""
    return json.dumps(index.to_json(), separators=(",", ":")).encode("utf-8")


def write_index(path: str, index: Index) -> os.stat_result:
    """Atomically store C{index} at C{path} with no journal; return the new file's stat."""
    return replace_file(path, [encode_index(index)], 0o600)


def written(index: Index, document: bytes) -> Loaded:
    """The L{Loaded} state of an index file just written with C{document} alone."""
    return Loaded(index, len(document), len(document), zlib.crc32(document),
                  head=document[:HEAD])
