"""
Text of a message for SEARCH (RFC 9051 section 6.4.4: HEADER, BODY, TEXT
and the address/subject keys match decoded text, case-insensitively) and
its sent date (SENTBEFORE, SENTON, SENTSINCE).
"""

from __future__ import annotations

import datetime
import re
from email.utils import parsedate_to_datetime
from typing import Iterator

from twisted_mailhub.mime.headers import (
    charset_decode,
    decode_header_value,
    decode_words,
    split_fields,
)
from twisted_mailhub.mime.sections import binary_decode
from twisted_mailhub.mime.structure import BodyPart, MessageStructure

__all__ = ["decode_header_value", "header_search_values", "search_text", "sent_date",
           "text_parts"]

# The address keys of SEARCH and the ENVELOPE fields they are matched with.
_ADDRESS_FIELDS = {"from": "from_", "to": "to", "cc": "cc", "bcc": "bcc"}


def header_search_values(structure: MessageStructure, name: str) -> list[str]:
    """
    The texts a SEARCH HEADER (or FROM, TO, CC, BCC, SUBJECT) needle is
    looked for in: each C{name} field's decoded value, and for the address
    fields also each address of the ENVELOPE as addr-spec (``local@domain``
    without comments, quotes or folding) and its decoded display name, since
    RFC 3501 6.4.4 matches FROM against "the envelope structure's FROM
    field".  Empty when the message has no such field.  The SQL store keeps
    these joined by newlines, so both searches agree.
    """
    values = structure.headers.get(name)
    if not values:
        return []
    out = list(values)
    attr = _ADDRESS_FIELDS.get(name)
    addresses = getattr(structure.envelope, attr, None) if attr else None
    for display, _adl, mailbox, host in addresses or ():
        if host is None:  # a group marker
            continue
        if mailbox:
            spec = mailbox + b"@" + host if host else mailbox
            out.append(_to_text(spec))
        if display:
            out.append(decode_header_value(display))
    return out


def _to_text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def text_parts(structure: MessageStructure) -> Iterator[BodyPart]:
    """The text/* leaf parts, depth first, including those of attached
    messages."""
    stack = [structure.root]
    while stack:
        part = stack.pop()
        if part.children:
            stack.extend(reversed(part.children))
        elif part.message is not None:
            stack.append(part.message.root)
        elif part.type == "text":
            yield part


def decode_body(data: bytes, part: BodyPart) -> str:
    """A text part's body, transfer-decoded and charset-decoded (an unknown
    encoding is taken as is; an unknown charset as UTF-8, else latin-1)."""
    body = data[part.body_start : part.end]
    decoded = binary_decode(body, part.encoding)
    if decoded is None:
        decoded = body
    return charset_decode(decoded, dict(part.params).get("charset", ""))


def search_text(data: bytes, structure: MessageStructure) -> tuple[str, str]:
    """
    (header text, body text) of a message for substring search.

    The header text is one ``Name: value`` line per field of the top-level
    header, values decoded (RFC 2047).  The body text is everything after
    that header as RFC 3501 section 6.4.4 counts it, in message order: the
    header lines of each MIME part and of each attached message/rfc822
    (decoded the same way), the decoded file names of the parts (RFC 2231
    parameters and the common RFC 2047 words in quotes), and the decoded
    text/* bodies (transfer- and charset-decoded), joined by newlines.
    Bodies of other types are not searched.
    """
    root = structure.root
    header_lines = _header_lines(data, root) + _file_names(root)
    return "\n".join(header_lines), "\n".join(_body_lines(data, structure))


def _header_lines(data: bytes, part: BodyPart) -> list[str]:
    return [
        f"{name}: {decode_header_value(raw)}"
        for name, raw in split_fields(data[part.header_start : part.body_start])
    ]


def _file_names(part: BodyPart) -> list[str]:
    params = list(part.params)
    if part.disposition is not None:
        params += part.disposition[1]
    return [decode_words(value) for name, value in params if name in ("name", "filename")]


def _body_lines(data: bytes, structure: MessageStructure) -> Iterator[str]:
    # (part, whether its own header is to be included): the root's header
    # is the message header, not body.
    stack: list[tuple[BodyPart, bool]] = [(structure.root, False)]
    while stack:
        part, with_header = stack.pop()
        if with_header:
            yield from _header_lines(data, part)
            yield from _file_names(part)
        if part.children:
            stack.extend((child, True) for child in reversed(part.children))
        elif part.message is not None:
            stack.append((part.message.root, True))
        elif part.type == "text":
            yield decode_body(data, part)


_LOOSE_DATE_RE = re.compile(
    r"(\d{1,2})\s+(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s+(\d{2,4})",
    re.I,
)
_MONTHS = "jan feb mar apr may jun jul aug sep oct nov dec".split()


def parse_date(value: str) -> datetime.date | None:
    """The calendar date of an RFC 5322 date-time, as written (its own time
    zone), tolerating obsolete and sloppy forms."""
    try:
        return parsedate_to_datetime(value).date()
    except (TypeError, ValueError, IndexError, OverflowError):
        pass
    m = _LOOSE_DATE_RE.search(value)
    if m is None:
        return None
    year = int(m.group(3))
    if year < 100:  # RFC 5322 section 4.3 two-digit years
        year += 2000 if year < 50 else 1900
    try:
        return datetime.date(year, _MONTHS.index(m.group(2).lower()) + 1, int(m.group(1)))
    except ValueError:
        return None


def sent_date(structure: MessageStructure) -> datetime.date | None:
    """The date of the message's Date header, disregarding time and time
    zone (RFC 9051 SENTON), or None when absent or unreadable."""
    values = structure.headers.get("date")
    if not values:
        return None
    return parse_date(values[0])
