"""
The mbox file format, as mutt, procmail and Postfix local delivery write it.

A file is a sequence of messages, each introduced by a C{From sender date}
line at the start of a line and followed by one empty line.  Body lines
that would look like a separator are quoted the I{mboxrd} way: a line
matching C{>*From } gets one more C{>} when written and loses one when read,
so quoting is exactly reversible.

Mail programs keep per-message state in header fields (C{Status},
C{X-Status}, C{X-Keywords}, and C{X-UID}, C{X-IMAP}, C{X-IMAPbase},
C{Content-Length} written by other servers, and C{Lines}, which mutt adds
when it rewrites a file).  Those fields are read to
learn flags set by other programs and are never served to clients: the
I{content} of a stored message is its unquoted text without them.

Everything here is pure: bytes in, values out.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from twisted_mailhub.model import canonical_flag

SEPARATOR = b"From "
INTERNAL_HEADERS = frozenset(
    {b"status", b"x-status", b"x-keywords", b"x-uid", b"x-imap", b"x-imapbase",
     b"content-length", b"lines"}
)

_SEPARATOR_LINE = re.compile(rb"^From ", re.MULTILINE)
_QUOTE = re.compile(rb"^(>*From )", re.MULTILINE)
_UNQUOTE = re.compile(rb"^>(>*From )", re.MULTILINE)
_FIELD_NAME = re.compile(rb"^([!-9;-~]+)[ \t]*:")
_ADDRESS = re.compile(rb"<([^<>\s]+@[^<>\s]+)>|([^\s<>@:,]+@[^\s<>,;]+)")

# X-Status letters (as mutt and UW-IMAP use them) and the flag each means.
_X_STATUS = {"A": "\\Answered", "F": "\\Flagged", "T": "\\Draft", "D": "\\Deleted"}


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """
    One message found in an mbox file.

    C{start} is the offset of its C{From } line, C{[body_start, body_end)}
    its stored (quoted) text without the separating empty line.
    """

    start: int
    from_line: bytes
    body_start: int
    body_end: int


def quote(content: bytes) -> bytes:
    """mboxrd-quote C{content}: every C{>*From } line gains a C{>}."""
    return _QUOTE.sub(rb">\1", content)


def unquote(stored: bytes) -> bytes:
    """Undo L{quote}: every C{>+From } line loses one C{>}."""
    # Every such line holds ">From ", which a substring search rules out
    # far faster than the expression can.
    if b">From " not in stored:
        return stored
    return _UNQUOTE.sub(rb"\1", stored)


def scan(data: bytes, base: int = 0) -> list[StoredMessage]:
    """
    Split C{data} (the file, or its tail starting at file offset C{base})
    into messages.  Bytes before the first separator line are ignored.

    Each message runs to the next line starting with C{From } or to the end
    of C{data}; one trailing empty line, the separator, is not part of it.
    """
    starts = [m.start() for m in _SEPARATOR_LINE.finditer(data)]
    messages = []
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else len(data)
        newline = data.find(b"\n", start, end)
        body_start = end if newline < 0 else newline + 1
        body_end = end
        if data.endswith(b"\n\n", body_start, end):
            body_end -= 1
        messages.append(
            StoredMessage(base + start, data[start:body_start], base + body_start,
                          base + max(body_start, body_end))
        )
    return messages


def padding_before_append(tail: bytes) -> bytes:
    """
    What to write after a file ending in C{tail} (its last two bytes, or
    fewer) before a new separator line, so that the last message keeps its
    content and the new C{From } line starts after an empty line.
    """
    if not tail or tail.endswith(b"\n\n"):
        return b""
    if tail.endswith(b"\n"):
        return b"\n"
    return b"\n\n"


def render(content: bytes, from_line: bytes, flags: frozenset[str]) -> tuple[bytes, int, str]:
    """
    The stored form of a message: separator line, status fields for
    C{flags}, the quoted content, and the empty line that ends it.

    Returns C{(data, trim, status)}: C{trim} is 1 when a newline had to be
    added to end the content (it is removed again when serving), C{status}
    the L{status_key} of the fields written.
    """
    # Internal fields in the content itself would be taken for ours.
    body, _ = content_of(quote(content))
    trim = 0 if body.endswith(b"\n") else 1
    body += b"\n" * trim
    eol = b"\r\n" if _first_line_ending(body) == b"\r\n" else b"\n"
    # A first line starting with white space would continue our fields.
    fields = b"" if body[:1] in (b" ", b"\t") else status_fields(flags, eol)
    stored = fields + quote(body)
    return from_line + stored + b"\n", trim, status_key(fields)


def content_of(stored: bytes) -> tuple[bytes, str]:
    """
    The content of a stored message (unquoted, without internal header
    fields) and the L{status_key} of its status fields.
    """
    text = unquote(stored)
    header_end = _header_end(text)
    kept = []
    status = []
    for field in _fields(text[:header_end]):
        match = _FIELD_NAME.match(field)
        name = match.group(1).lower() if match else None
        if name in INTERNAL_HEADERS:
            if name in (b"status", b"x-status", b"x-keywords"):
                status.append(field)
            continue
        kept.append(field)
    return b"".join(kept) + text[header_end:], status_key(b"".join(status))


def digest(content: bytes) -> str:
    """The fingerprint used to recognise a message after a rewrite."""
    return hashlib.sha256(content).hexdigest()[:32]


def status_key(fields: bytes) -> str:
    """A comparable summary of status fields, to notice another program's change."""
    lines = (line.strip().decode("latin-1") for line in fields.splitlines())
    return "\n".join(sorted(line for line in lines if line))


def status_fields(flags: frozenset[str], eol: bytes = b"\n") -> bytes:
    """
    C{Status}, C{X-Status} and C{X-Keywords} fields for C{flags}; nothing
    for a message without flags, which other programs show as new.
    """
    if not flags:
        return b""
    xstatus = "".join(letter for letter, flag in _X_STATUS.items() if flag in flags)
    keywords = sorted(f for f in flags if not f.startswith("\\"))
    out = b"Status: " + (b"RO" if "\\Seen" in flags else b"O") + eol
    if xstatus:
        out += b"X-Status: " + xstatus.encode() + eol
    if keywords:
        out += b"X-Keywords: " + " ".join(keywords).encode("utf-8", "replace") + eol
    return out


def flags_from_status(key: str) -> frozenset[str]:
    """The flags a L{status_key} records."""
    flags: set[str] = set()
    for line in key.split("\n"):
        name, _, value = line.partition(":")
        name = name.strip().lower()
        value = value.strip()
        if name == "status" and "R" in value:
            flags.add("\\Seen")
        elif name == "x-status":
            flags.update(_X_STATUS[c] for c in value if c in _X_STATUS)
        elif name == "x-keywords":
            flags.update(
                canonical_flag(word) for word in re.split(r"[\s,]+", value) if word
            )
    flags.discard("\\Recent")
    return frozenset(flags)


def make_from_line(sender: str, when: datetime) -> bytes:
    """A separator line C{From sender asctime}, the date in local time."""
    sender = re.sub(r"[\s\x00-\x1f]+", "", sender) or "MAILER-DAEMON"
    stamp = time.asctime(when.astimezone().timetuple())
    return f"From {sender} {stamp}\n".encode("utf-8", "replace")


def sender_of(content: bytes) -> str:
    """The envelope sender to put on a separator line, from Return-Path or From."""
    header = content[: _header_end(content)]
    for wanted in (b"return-path", b"from"):
        for field in _fields(header):
            match = _FIELD_NAME.match(field)
            if match and match.group(1).lower() == wanted:
                found = _ADDRESS.search(field, match.end())
                if found:
                    return (found.group(1) or found.group(2)).decode("ascii", "replace")
    return "MAILER-DAEMON"


def date_of_from_line(line: bytes) -> datetime | None:
    """The date of a separator line (local time, as ctime writes it), if readable."""
    words = line.decode("latin-1").split()
    # "From sender Www Mmm dd hh:mm:ss yyyy", possibly with a zone before the year.
    for tail in (words[-5:], words[-6:-1] + words[-1:]):
        if len(tail) != 5:
            continue
        try:
            parsed = time.strptime(" ".join(tail), "%a %b %d %H:%M:%S %Y")
        except ValueError:
            continue
        return datetime.fromtimestamp(time.mktime(parsed)).astimezone()
    return None


def now() -> datetime:
    """The current time, timezone-aware, to the second as INTERNALDATE carries it."""
    return datetime.now(UTC).replace(microsecond=0)


def _first_line_ending(data: bytes) -> bytes:
    newline = data.find(b"\n")
    if newline > 0 and data[newline - 1 : newline] == b"\r":
        return b"\r\n"
    return b"\n"


def _header_end(text: bytes) -> int:
    """
    Where the header ends: the offset of the empty line after it (0 when
    the text starts with one, the whole length when there is none).
    """
    if text.startswith((b"\n", b"\r\n")):
        return 0
    best = -1
    for blank in (b"\n\n", b"\n\r\n"):
        at = text.find(blank)
        if at >= 0 and (best < 0 or at < best):
            best = at
    if best < 0:
        return len(text)
    return best + 1


def _fields(header: bytes) -> list[bytes]:
    """Header fields with their continuation lines, each with its line endings."""
    fields: list[bytes] = []
    for line in header.splitlines(keepends=True):
        if fields and line[:1] in (b" ", b"\t"):
            fields[-1] += line
        else:
            fields.append(line)
    return fields
