"""
Durable file operations shared by the stores that keep mail in files (mbox,
Maildir, the summaries file).

  - L{pread_exactly} and L{pread_upto}: a byte range of a file, read with
    C{pread} until it is complete (a regular file may return less than
    asked, and a large range is read in parts);
  - L{write_all} and L{pwrite_all}: every byte of a buffer written, however
    many C{write} or C{pwrite} calls it takes;
  - L{replace_file}: a file's content replaced so that a crash leaves
    either the old content or the new.  The new content goes to a
    temporary file, is fsynced, renamed over the target, and the
    directory is fsynced so that the rename itself is durable;
  - L{fsync_directory}: a directory's entries (a rename, a new file) made
    durable;
  - L{read_number} and L{write_number}: a counter kept as one decimal
    number in a small file, rewritten in place under the caller's lock;
  - L{process_gone}: whether the process a file names as its writer (a
    dotlock, a temporary file) is gone, so that what it left can go too.

Everything here blocks: call it off the reactor thread.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable

#: The most one C{pread} is asked for.
_READ_PART = 1 << 24


class ShortRead(EOFError):
    """A file ended before the byte range that had to be read from it."""

    def __init__(self, length: int, offset: int, got: int) -> None:
        super().__init__(f"wanted {length} octet(s) at offset {offset}, "
                         f"the file ends after {got}")
        self.length = length
        self.offset = offset
        self.got = got


def pread_upto(fd: int, length: int, offset: int) -> bytes:
    """
    The C{length} octets of C{fd} from C{offset}, or fewer when the file
    ends first (none for a C{length} of 0 or less).  For a file that may
    have changed: the caller looks at what it got.
    """
    parts = []
    while length > 0:
        chunk = os.pread(fd, min(length, _READ_PART), offset)
        if not chunk:
            break
        parts.append(chunk)
        length -= len(chunk)
        offset += len(chunk)
    return b"".join(parts)


def pread_exactly(fd: int, length: int, offset: int) -> bytes:
    """
    The C{length} octets of C{fd} from C{offset}; L{ShortRead} when the
    file ends before them.
    """
    # One call is almost always enough, and the summaries file reads many
    # short lines: the loop only when it was not.
    data = os.pread(fd, length, offset) if 0 < length <= _READ_PART else b""
    if len(data) < length:
        data += pread_upto(fd, length - len(data), offset + len(data))
        if len(data) < length:
            raise ShortRead(length, offset, len(data))
    return data


def write_all(fd: int, data: bytes) -> None:
    """Write every octet of C{data} to C{fd}, at its current offset."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def pwrite_all(fd: int, data: bytes, offset: int) -> None:
    """Write every octet of C{data} to C{fd} from C{offset}."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


def replace_file(path: str, chunks: Iterable[bytes], mode: int | None = None,
                 temporary: str | None = None) -> os.stat_result:
    """
    Atomically give C{path} the concatenation of C{chunks} and return the
    new file's stat.  The permission bits are kept from the file being
    replaced (or C{mode}, or 0600 for a new file).  On any error the
    temporary file is removed and C{path} is untouched.

    The content is written first to C{temporary}, which must be on the
    same file system and is the caller's own (a name only it writes, under
    a lock it holds: whatever is there is truncated); by default a dot name
    beside C{path} that no other writer can pick.  The directory fsynced
    is C{path}'s.
    """
    directory, base = os.path.split(path)
    if mode is None:
        try:
            mode = os.stat(path).st_mode & 0o7777
        except FileNotFoundError:
            mode = 0o600
    if temporary is None:
        temporary = os.path.join(directory, f".{base}.{secrets.token_hex(6)}.tmp")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    else:
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    fd = os.open(temporary, flags, mode)
    try:
        try:
            # The umask may have taken bits off (and a file truncated keeps its own).
            os.fchmod(fd, mode)
            for chunk in chunks:
                write_all(fd, chunk)
            os.fsync(fd)
            stat = os.fstat(fd)
        finally:
            os.close(fd)
        _rename(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise
    fsync_directory(directory)
    return stat


def fsync_directory(directory: str) -> None:
    """Make the entries of C{directory} (a rename, a new file) durable."""
    fd = os.open(directory or ".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_number(fd: int) -> int:
    """The number the counter file C{fd} holds; 0 when empty or unreadable."""
    try:
        return int(os.pread(fd, 32, 0).strip() or 0)
    except ValueError:
        return 0


def write_number(fd: int, value: int) -> None:
    """Make C{value} what the counter file C{fd} holds, durably."""
    os.ftruncate(fd, 0)
    os.pwrite(fd, b"%d\n" % value, 0)
    os.fsync(fd)


def process_gone(pid: int, since: float | None = None) -> bool:
    """
    True if no process C{pid} runs on this host: C{kill(pid, 0)} says ESRCH,
    or it is a zombie, dead but not yet reaped by its parent.  A process of
    another user (EPERM) is alive.  With C{since} (the time a file naming
    C{pid}, a lock or a temporary file, was written), a process that started
    later is not the one that wrote it: pids are reused, quickly where many
    processes come and go.
    """
    if pid <= 0:
        return False  # 0 and negative numbers name process groups, not a process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            # "pid (comm) state ...": comm may hold spaces and parentheses.
            fields = stat.read().rpartition(b")")[2].split()
    except OSError:
        return False
    if fields[:1] == [b"Z"]:
        return True
    started = _start_time(fields)
    # A second of slack: the file's mtime and the boot time are coarse.
    return since is not None and started is not None and started > since + 1.0


def _start_time(fields: list[bytes]) -> float | None:
    """When the process of these C{/proc/PID/stat} fields (after comm) started."""
    try:
        ticks = int(fields[19])  # field 22 of the whole line: starttime
        return _boot_time() + ticks / os.sysconf("SC_CLK_TCK")
    except (IndexError, ValueError, OSError):
        return None


def _boot_time() -> float:
    with open("/proc/stat", "rb") as stat:
        for line in stat:
            if line.startswith(b"btime "):
                return float(line.split()[1])
    raise OSError("no btime in /proc/stat")


def _rename(source: str, target: str) -> None:
    # A seam: tests replace it to fail between writing and renaming.
    os.replace(source, target)
