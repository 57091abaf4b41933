"""
Replacing a file so that a crash leaves either the old or the new content.

The new content goes to a temporary file in the same directory, is
fsynced, renamed over the target, and the directory is fsynced so the
rename itself is durable.  Temporary names start with a dot, which the
mailbox layout reserves (see L{twisted_mailhub.backends.mbox.naming}).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable


def replace_file(path: str, chunks: Iterable[bytes], mode: int | None = None) -> os.stat_result:
    """
    Atomically give C{path} the concatenation of C{chunks} and return the
    new file's stat.  The permission bits are kept from the file being
    replaced (or C{mode}, or 0600 for a new file).  On any error the
    temporary file is removed and C{path} is untouched.
    """
    directory, base = os.path.split(path)
    if mode is None:
        try:
            mode = os.stat(path).st_mode & 0o7777
        except FileNotFoundError:
            mode = 0o600
    temporary = os.path.join(directory, f".{base}.{secrets.token_hex(6)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        try:
            for chunk in chunks:
                _write_all(fd, chunk)
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


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _rename(source: str, target: str) -> None:
    # A seam: tests replace it to fail between writing and renaming.
    os.replace(source, target)
