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

Lines of messages that are gone stay until the file is compacted
(L{SummaryFile.compact}): rewritten, under the same lock, into a new file
holding only the lines of the identities still in use, which is made
durable and then renamed over the old one, so that a crash leaves one
whole file or the other.  A writer that waited for the lock on the old
file sees that its name now leads to another and opens it again; a reader
sees the new inode and indexes the new file afresh, and reads values
through a descriptor opened on the file it indexed.

The new file is written as C{.<name>.compact.<pid>} beside the file.  One
left by a process that died while compacting is removed the first time
the file is opened in a process (L{SummaryFile.opened}) and before each
compaction: one naming a process that no longer exists (or this one, when
it is not compacting), or older than L{LEFTOVER_AGE}.  L{SummaryFile.survey}
says, for C{mailhub check}, what the file holds besides the lines in use.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from twisted.logger import Logger

from twisted_mailhub.backends.files import (
    pread_exactly,
    process_gone,
    replace_file,
    write_all,
)

log = Logger()

#: A compaction's new file older than this (seconds) is a leftover, whatever
#: process its name gives (pids are reused).
LEFTOVER_AGE = 3600.0

#: The new files this process's compactions are writing (by any SummaryFile).
_writing: set[str] = set()
_writing_lock = threading.Lock()

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
        self._tidied = False
        #: The size when last compacted or found not worth it, in this process.
        self.checked_size = 0

    def __repr__(self) -> str:
        return f"<SummaryFile {self.path}>"

    # -- reading -------------------------------------------------------------

    def _catch_up(self) -> int | None:
        """
        Index the lines appended since the last look (lock held); a
        descriptor open on the file indexed (the caller closes it), or
        C{None} when there is no file.
        """
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            self._records, self._upto, self._inode = {}, 0, None
            return None
        try:
            self._index(fd)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _index(self, fd: int) -> None:
        st = os.fstat(fd)
        if st.st_ino != self._inode or st.st_size < self._upto:
            # Made anew (compacted, or removed and written again).
            self._records, self._upto, self._inode = {}, 0, st.st_ino
        if st.st_size == self._upto:
            return
        data = pread_exactly(fd, st.st_size - self._upto, self._upto)
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
            _close(self._catch_up())
            return frozenset().union(*(names for _, _, names in self._records.get(key, ())))

    def get(self, keys: Iterable[str], names: Iterable[str]) -> dict[str, dict[str, bytes]]:
        """C{{key: {name: value}}} of the kept values among C{names}; absent when none."""
        wanted = frozenset(names)
        found: dict[str, dict[str, bytes]] = {}
        with self._lock:
            # The places are those of the file this descriptor is open on,
            # whatever a compaction does to the name meanwhile.
            fd = self._catch_up()
            if fd is None:
                return found
            places = {key: [(offset, length) for offset, length, kept in self._records[key]
                            if kept & wanted]
                      for key in set(keys) if key in self._records}
        try:
            for key, spots in places.items():
                for offset, length in spots:
                    line = pread_exactly(fd, length, offset)
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
            _close(self._catch_up())
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
            fd = self._locked()
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    # A line cut short by a crash: ours must not continue it.
                    lines.insert(0, b"\n")
                write_all(fd, b"".join(lines))
            finally:
                os.close(fd)

    def _locked(self) -> int:
        """A descriptor on the file now at the path, created if need be, flock-ed."""
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    current = os.stat(self.path).st_ino
                except FileNotFoundError:
                    current = None
                if current == os.fstat(fd).st_ino:
                    return fd
            except BaseException:
                os.close(fd)
                raise
            # Compacted (or removed) while we waited: that file is no longer read.
            os.close(fd)

    # -- compacting ------------------------------------------------------------

    def size(self) -> int:
        """The file's size in octets; 0 when there is none."""
        return self.mark()[1]

    def mark(self) -> tuple[int | None, int]:
        """The file's inode and size now: where lines appended from now on start."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None, 0
        return st.st_ino, st.st_size

    def opened(self) -> int:
        """
        The file's size, for a store being opened; the first time in this
        process, the leftovers of compactions that did not finish are
        removed first (L{remove_leftovers}).
        """
        if not self._tidied:
            self._tidied = True
            self._tidy()
        return self.size()

    def compact(self, live: Iterable[str], since: tuple[int | None, int],
                values: bool = False) -> tuple[int, int]:
        """
        Rewrite the file keeping the whole lines of the keys in C{live},
        and every line appended after the L{mark} C{since} (taken before
        C{live} was gathered: their messages may be newer than it).  With
        C{values}, a line is kept only if its values can be read too (each
        line is decoded: for a repair, not for the routine compaction).
        Returns the sizes before and after; (0, 0) when there is no file
        or it was made anew since the mark.  Blocks, holding the writers'
        lock while it copies.
        """
        keep = frozenset(live)
        self._tidy()
        with self._lock:
            try:
                fd = os.open(self.path, os.O_RDWR)
            except FileNotFoundError:
                return 0, 0
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                inode = os.fstat(fd).st_ino
                if inode != _inode_of(self.path) or inode != since[0]:
                    return 0, 0  # compacted by another process meanwhile
                size = os.fstat(fd).st_size
                data = pread_exactly(fd, size, 0)
                kept, pos = [], 0
                while True:
                    end = data.find(b"\n", pos)
                    if end < 0:
                        break  # a torn last line: dropped
                    record = _record(data[pos:end])
                    if (record is not None and (pos >= since[1] or record[0] in keep)
                            and (not values or _values(data[pos:end], record[0]))):
                        kept.append(data[pos:end + 1])
                    pos = end + 1
                body = b"".join(kept)
                if len(body) == size:
                    return size, size
                # A name of this process's own: the writers' lock is held.
                temporary = self._temporary()
                with _writing_lock:
                    _writing.add(temporary)
                try:
                    replace_file(self.path, [body], temporary=temporary)
                finally:
                    with _writing_lock:
                        _writing.discard(temporary)
                return size, len(body)
            finally:
                # Unlocking the old file lets waiting writers find the new one.
                os.close(fd)

    def _temporary(self) -> str:
        """Where this process writes the new file when it compacts."""
        directory, base = os.path.split(self.path)
        return os.path.join(directory, f".{base}.compact.{os.getpid()}")

    def keys(self) -> frozenset[str]:
        """The keys the file has lines of."""
        with self._lock:
            _close(self._catch_up())
            return frozenset(self._records)

    # -- what compactions left ---------------------------------------------------

    def leftovers(self, max_age: float = LEFTOVER_AGE) -> list[str]:
        """
        The paths of the new files of compactions that did not finish: of
        a process that is gone, or of this one but not being written, or
        older than C{max_age} seconds.  The new file of a compaction under
        way (younger) is none of them.
        """
        return [path for path, _ in self._leftovers(max_age)]

    def remove_leftovers(self, max_age: float = LEFTOVER_AGE) -> list[str]:
        """Remove the L{leftovers}; the paths removed."""
        removed = []
        for path, mine in self._leftovers(max_age):
            with _writing_lock:
                # Judged again where a compaction of this process may have
                # taken the name since.
                if mine and path in _writing:
                    continue
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    continue
            log.info("Removed {path}, left by a compaction that did not finish", path=path)
            removed.append(path)
        return removed

    def _tidy(self) -> None:
        """L{remove_leftovers}, for the store's sake: a failure is logged."""
        try:
            self.remove_leftovers()
        except OSError:
            log.failure("Removing what compactions of {path} left failed", path=self.path)

    def _leftovers(self, max_age: float) -> list[tuple[str, bool]]:
        """The leftovers, each with whether its name is this process's."""
        directory, base = os.path.split(self.path)
        prefix = f".{base}.compact."
        try:
            names = sorted(os.listdir(directory or "."))
        except FileNotFoundError:
            return []
        found = []
        for name in names:
            pid = name[len(prefix):]
            if not name.startswith(prefix) or not pid.isdigit():
                continue
            path = os.path.join(directory, name)
            try:
                mtime = os.lstat(path).st_mtime
            except FileNotFoundError:
                continue  # renamed or removed meanwhile
            mine = int(pid) == os.getpid()
            with _writing_lock:
                if mine and path in _writing:
                    continue
            if mine or time.time() - mtime > max_age or process_gone(int(pid), since=mtime):
                found.append((path, mine))
        return found

    # -- checking ---------------------------------------------------------------

    def survey(self, live: Iterable[str],
               since: tuple[int | None, int] = (None, 0)) -> Survey:
        """
        What the file holds, against C{live}, the keys in use (and those
        of every line appended after the L{mark} C{since}, taken before
        C{live} was gathered): read whole under a shared lock (so that no
        line being appended is taken for a torn one), the values of every
        line decoded.  Blocks.
        """
        keep = frozenset(live)
        while True:
            try:
                fd = os.open(self.path, os.O_RDONLY)
            except FileNotFoundError:
                return Survey()
            try:
                fcntl.flock(fd, fcntl.LOCK_SH)
                st = os.fstat(fd)
                if st.st_ino == _inode_of(self.path):
                    data = pread_exactly(fd, st.st_size, 0)
                    newer = since[1] if st.st_ino == since[0] else len(data)
                    break
            finally:
                os.close(fd)
            # Compacted while we waited: look at the new file.
        lines = unreadable = dead_octets = 0
        keys: set[str] = set()
        dead: set[str] = set()
        pos = 0
        while pos < len(data):
            end = data.find(b"\n", pos)
            if end < 0:
                unreadable += 1  # cut short at the end
                break
            line = data[pos:end]
            record = _record(line)
            if record is None or not _values(line, record[0]):
                unreadable += 1
            else:
                lines += 1
                keys.add(record[0])
                if record[0] not in keep and pos < newer:
                    dead.add(record[0])
                    dead_octets += end + 1 - pos
            pos = end + 1
        return Survey(len(data), lines, unreadable, len(keys), len(dead), dead_octets)


def _inode_of(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return None


def _close(fd: int | None) -> None:
    if fd is not None:
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


@dataclass(frozen=True, slots=True)
class Survey:
    """What L{SummaryFile.survey} found in a summaries file."""

    #: The file's size in octets (0: there is none).
    size: int = 0
    #: The whole lines that can be read.
    lines: int = 0
    #: The lines that cannot: cut short (the last one, or one a crash left
    #: before another was appended), of the wrong length, or whose values
    #: do not decode.
    unreadable: int = 0
    #: The keys the file has lines of, and how many of them are not in use.
    keys: int = 0
    dead_keys: int = 0
    #: The octets of the lines of keys not in use.
    dead_octets: int = 0


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
