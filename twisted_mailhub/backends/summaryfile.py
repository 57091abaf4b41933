"""
Summaries (L{twisted_mailhub.interfaces.ISummaryStore}) kept in one file
per user, for the stores that keep mail in files (mbox, Maildir).

Summaries are keyed by the message's identity (L{MessageMeta.identity}):
a message keeps its identity across flag changes, restarts, a COPY and a
MOVE, and an identity belongs to one content only, so the copies of a
message find its summaries without anything being copied, and no rename
or delete of a mailbox has to touch the file.

The file only ever grows, by whole lines appended under an exclusive
C{flock} (so that the processes sharing a store do not interleave their
lines), each line being::

    IDENTITY SP NAME *("," NAME) SP LENGTH SP JSON-OBJECT LF

where the JSON object maps each name to its value, bytes written as the
code points U+0000 to U+00FF, and LENGTH is its length in octets.  A reader keeps, per identity, where its
lines are and which names they hold, reads the lines others appended
since it last looked, and reads a value only when asked for it.  A line
left incomplete by a crash has the wrong length and is skipped (the next
writer starts a new line first): a summary is derived again when missing, never trusted when torn.
Summaries of messages that are gone stay in the file (a few hundred bytes
a message).
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections.abc import Iterable

_Record = tuple[int, int, frozenset[str]]

_NAME_SETS: dict[str, frozenset[str]] = {}


def _valid(word: str) -> bool:
    return bool(word) and not any(c in word for c in " ,{\r\n\t")


class SummaryFile:
    """
    The summaries file at C{path}.  Safe to use from several threads of
    one process; processes share the file through its lock.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._records: dict[str, list[_Record]] = {}
        self._upto = 0
        self._inode: int | None = None

    def __repr__(self) -> str:
        return f"<SummaryFile {self.path}>"

    # -- reading -------------------------------------------------------------

    def _catch_up(self) -> None:
        """Index the lines appended since the last look (lock held)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._records, self._upto, self._inode = {}, 0, None
            return
        if st.st_ino != self._inode or st.st_size < self._upto:
            # Made anew (compacted, or removed and written again).
            self._records, self._upto, self._inode = {}, 0, st.st_ino
        if st.st_size == self._upto:
            return
        with open(self.path, "rb") as f:
            f.seek(self._upto)
            data = f.read(st.st_size - self._upto)
        pos = 0
        while True:
            end = data.find(b"\n", pos)
            if end < 0:
                break
            record = _record(data[pos:end])
            if record is not None:
                key, names = record
                self._records.setdefault(key, []).append((self._upto + pos, end - pos, names))
            pos = end + 1
        self._upto += pos

    def names_of(self, key: str) -> frozenset[str]:
        """The names kept for C{key}."""
        with self._lock:
            self._catch_up()
            return frozenset().union(*(names for _, _, names in self._records.get(key, ())))

    def get(self, keys: Iterable[str], names: Iterable[str]) -> dict[str, dict[str, bytes]]:
        """C{{key: {name: value}}} of the kept values among C{names}; absent when none."""
        wanted = frozenset(names)
        with self._lock:
            self._catch_up()
            places = {key: [(offset, length) for offset, length, kept in self._records[key]
                            if kept & wanted]
                      for key in set(keys) if key in self._records}
        found: dict[str, dict[str, bytes]] = {}
        if not any(places.values()):
            return found
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return found
        try:
            for key, spots in places.items():
                for offset, length in spots:
                    line = os.pread(fd, length, offset)
                    values = _values(line, key)
                    for name, value in values.items():
                        if name in wanted:
                            found.setdefault(key, {})[name] = value
        finally:
            os.close(fd)
        return found

    # -- writing -------------------------------------------------------------

    def add(self, values: dict[str, dict[str, bytes]]) -> None:
        """Append C{values}, C{{key: {name: value}}}, leaving the names a key has alone."""
        with self._lock:
            self._catch_up()
            lines = []
            for key, named in values.items():
                if not _valid(key):
                    continue
                known = frozenset().union(*(n for _, _, n in self._records.get(key, ())))
                new = {name: value for name, value in named.items()
                       if _valid(name) and name not in known}
                if new:
                    lines.append(_line(key, new))
            if not lines:
                return
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    # A line cut short by a crash: ours must not continue it.
                    lines.insert(0, b"\n")
                os.write(fd, b"".join(lines))
            finally:
                os.close(fd)


def _line(key: str, values: dict[str, bytes]) -> bytes:
    body = json.dumps({n: v.decode("latin-1") for n, v in values.items()},
                      separators=(",", ":")).encode("ascii")
    return f"{key} {','.join(sorted(values))} {len(body)} ".encode("ascii") + body + b"\n"


def _record(line: bytes) -> tuple[str, frozenset[str]] | None:
    """The key and names of a whole line (without its LF), else C{None}."""
    parts = line.split(b" ", 3)
    if len(parts) != 4 or not parts[2].isdigit() or int(parts[2]) != len(parts[3]):
        return None
    try:
        key, names = parts[0].decode("ascii"), parts[1].decode("ascii")
    except UnicodeError:
        return None
    if not _valid(key):
        return None
    # Most lines name the same few sets: share them.
    kept = _NAME_SETS.get(names)
    if kept is None:
        kept = _NAME_SETS.setdefault(names, frozenset(names.split(",")))
    return key, kept


def _values(line: bytes, key: str) -> dict[str, bytes]:
    """The values of one line of C{key}; C{{}} for a foreign line."""
    try:
        parts = line.split(b" ", 3)
        if parts[0].decode("ascii") != key:
            return {}
        decoded = json.loads(parts[3])
        return {name: value.encode("latin-1") for name, value in decoded.items()}
    except (ValueError, UnicodeError, AttributeError, IndexError):
        return {}


class SummaryFiles:
    """The L{SummaryFile} of each path, one per path in the process."""

    def __init__(self) -> None:
        self._files: dict[str, SummaryFile] = {}
        self._lock = threading.Lock()

    def at(self, path: str) -> SummaryFile:
        with self._lock:
            found = self._files.get(path)
            if found is None:
                found = self._files[path] = SummaryFile(path)
            return found
