"""
Serialising server responses (RFC 9051 section 7): status responses, data
responses and continuation requests, as ``bytes``.

Pure functions: the session decides what to say, this module says it.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Iterable

from twisted_mailhub.imap import wire

CRLF = b"\r\n"
_LITERAL_AT_END = re.compile(rb"\{\d+\+?\}\Z")
_MONTHS = [b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun",
           b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"]


def _text(text: str) -> bytes:
    # resp-text is TEXT-CHARs: no CR, LF or NUL (RFC 9051 section 9, CHAR is
    # %x01-7F), whatever a client's name echoed in it holds; keep it 7-bit
    # for old clients.
    out = (text.replace("\r", " ").replace("\n", " ").replace("\x00", " ")
           .encode("ascii", "replace"))
    if out.endswith(b"}") and _LITERAL_AT_END.search(out):
        # A line ending in {n} announces a literal (RFC 9051 section 4.3):
        # text echoing a client's "{5}" must not end with it.
        out += b"."
    return out


def status(tag: str | None, condition: str, text: str, code: str | bytes | None = None) -> bytes:
    """
    ``tag OK [CODE] text`` (``*`` when C{tag} is None).  C{condition} is
    OK, NO, BAD, PREAUTH or BYE.
    """
    head = b"*" if tag is None else tag.encode("ascii", "replace")
    out = head + b" " + condition.encode("ascii") + b" "
    if code:
        if isinstance(code, str):
            code = code.encode("utf-8")
        out += b"[" + code + b"] "
    return out + _text(text or condition) + CRLF


def untagged(data: bytes) -> bytes:
    """``* data``"""
    return b"* " + data + CRLF


def continuation(text: str = "Ready") -> bytes:
    return b"+ " + _text(text) + CRLF


def continuation_data(data: bytes) -> bytes:
    """A continuation carrying base64 SASL data (may be empty)."""
    return b"+ " + data + CRLF


def capability(caps: Iterable[str]) -> bytes:
    return untagged(b"CAPABILITY " + " ".join(caps).encode("ascii"))


def capability_code(caps: Iterable[str]) -> str:
    return "CAPABILITY " + " ".join(caps)


def exists(count: int) -> bytes:
    return untagged(b"%d EXISTS" % count)


def recent(count: int) -> bytes:
    return untagged(b"%d RECENT" % count)


def expunge(seq: int) -> bytes:
    return untagged(b"%d EXPUNGE" % seq)


def flags(flag_names: Iterable[str]) -> bytes:
    return untagged(b"FLAGS " + wire.flag_list(flag_names, ordered=True))


def fetch(seq: int, items: Iterable[bytes], verb: bytes = b"FETCH") -> bytes:
    """
    ``* seq FETCH (item item ...)`` from already-serialised items; with
    C{verb} ``UIDFETCH`` (RFC 9586, UIDONLY) C{seq} is the message's UID.
    """
    return untagged(b"%d %s " % (seq, verb) + wire.plist(items))


def search(numbers: Iterable[int], modseq: int | None = None) -> bytes:
    # One join of str, encoded once: about a third faster than formatting
    # each of thousands of numbers as bytes.
    body = (" ".join(["SEARCH", *map(str, numbers)])).encode("ascii")
    if modseq is not None:
        body += b" (MODSEQ %d)" % modseq
    return untagged(body)


def internaldate(value: datetime) -> bytes:
    """RFC 3501 date-time: ``"17-Jul-1996 02:44:25 -0700"`` (day space-padded)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    offset = value.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset else 0
    sign = b"-" if minutes < 0 else b"+"
    minutes = abs(minutes)
    return b'"%2d-%s-%04d %02d:%02d:%02d %s%02d%02d"' % (
        value.day, _MONTHS[value.month - 1], value.year,
        value.hour, value.minute, value.second,
        sign, minutes // 60, minutes % 60,
    )
