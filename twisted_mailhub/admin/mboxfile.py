"""
Reading and writing one mbox file for ``mailhub import`` and ``export``,
one message at a time.

The format is the one the mbox store and mutt use (see
L{twisted_mailhub.backends.mbox.format}): each message starts with a
C{From sender date} line after an empty line (or at the start of the
file) and ends with one empty line; body lines that would look like a
separator are quoted the I{mboxrd} way, which is undone on reading.

Flags travel in the C{Status} (C{R}: \\Seen), C{X-Status} (C{A}
\\Answered, C{F} \\Flagged, C{T} \\Draft, C{D} \\Deleted) and
C{X-Keywords} fields; they, and the other fields mail programs keep in
mbox files (C{Content-Length}, C{Lines}, C{X-UID}, ...), are not part of a
message's content.  The INTERNALDATE is the date of the C{From} line,
or of the C{Date} field when the C{From} line has none.

A message that does not end with a line break gains one in mbox form (the
format cannot tell); every other byte is kept.  Everything here blocks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO, Iterator

from twisted_mailhub.backends.mbox import format as mbox


@dataclass(frozen=True, slots=True)
class SourceMessage:
    """One message read from an mbox file or a Maildir folder."""

    content: bytes
    flags: frozenset[str]
    internaldate: datetime | None
    #: How many bytes of the source it took (for progress).
    stored_size: int


class MboxReader:
    """The messages of the mbox file C{path}, in file order."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._file: BinaryIO = open(path, "rb")
        self.size = os.fstat(self._file.fileno()).st_size
        if self.size and not self._file.read(5) == mbox.SEPARATOR:
            self._file.close()
            raise ValueError(f"{path} is not an mbox file (it does not start with 'From ')")
        self._file.seek(0)

    def __iter__(self) -> Iterator[SourceMessage]:
        from_line: bytes | None = None
        lines: list[bytes] = []
        previous_blank = True
        for line in self._file:
            if previous_blank and line.startswith(mbox.SEPARATOR):
                if from_line is not None:
                    yield _message(from_line, lines)
                from_line, lines, previous_blank = line, [], False
                continue
            lines.append(line)
            previous_blank = line in (b"\n", b"\r\n")
        if from_line is not None:
            yield _message(from_line, lines)

    def close(self) -> None:
        self._file.close()


def _message(from_line: bytes, lines: list[bytes]) -> SourceMessage:
    stored_size = len(from_line) + sum(len(line) for line in lines)
    if lines and lines[-1] in (b"\n", b"\r\n"):
        lines.pop()  # the empty line ending the message
    content, status = mbox.content_of(b"".join(lines))
    date = mbox.date_of_from_line(from_line.rstrip(b"\r\n")) or header_date(content)
    return SourceMessage(content, mbox.flags_from_status(status), date, stored_size)


def header_date(content: bytes, field: bytes = b"date") -> datetime | None:
    """The date of the header field C{field} of C{content}, if it has a readable one."""
    from email.utils import parsedate_to_datetime

    end = content.find(b"\n\n")
    crlf = content.find(b"\r\n\r\n")
    if crlf >= 0 and (end < 0 or crlf < end):
        end = crlf
    header = content if end < 0 else content[:end]
    for line in header.split(b"\n"):
        name, colon, value = line.partition(b":")
        if colon and name.strip().lower() == field:
            try:
                found = parsedate_to_datetime(value.strip().decode("latin-1"))
            except (TypeError, ValueError, IndexError):
                return None
            return found if found.tzinfo is not None else found.astimezone()
    return None


class MboxWriter:
    """
    A new mbox file at C{path} (one that exists is never overwritten),
    written one message at a time and synced to disk on L{close}.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._file: BinaryIO = open(path, "xb")

    def write(self, content: bytes, flags: frozenset[str], internaldate: datetime) -> int:
        """Append one message; return the bytes written."""
        from_line = mbox.make_from_line(mbox.sender_of(content), internaldate)
        data, _, _ = mbox.render(content, from_line, frozenset(flags))
        self._file.write(data)
        return len(data)

    def close(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
