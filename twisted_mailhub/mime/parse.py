"""
One pass over a raw message: the MIME tree with absolute byte offsets, the
ENVELOPE, and decoded header values.

The parser never raises on malformed input and never copies the message
body: boundaries are found with one regular-expression scan per multipart,
and line counts with C{bytes.count}.  Lines may end in CRLF or a bare LF;
offsets are into the bytes as given.

Malformed input is handled as follows:
  - a header block with no blank line after it runs to the end of the
    entity (the body is empty);
  - lines in a header that are not fields are ignored;
  - a syntactically invalid Content-Type means text/plain; charset=us-ascii
    (RFC 2045 section 5.2);
  - a multipart with no boundary parameter, or in which no delimiter line
    is found, gets one text/plain child spanning its whole body (the IMAP
    grammar needs at least one child);
  - a multipart with no close delimiter ends its last child at its own end;
  - a message/rfc822 body is parsed as a message whatever its transfer
    encoding;
  - at L{MAX_DEPTH} levels of nesting, multipart and message parts are not
    descended into and are reported as application/octet-stream.
"""

from __future__ import annotations

import re

from twisted_mailhub.mime.headers import (
    decode_header_value,
    first_token,
    parse_addresses,
    parse_content_type,
    parse_disposition,
    parse_language,
    split_fields,
)
from twisted_mailhub.mime.structure import BodyPart, Envelope, MessageStructure

MAX_DEPTH = 100
"""Entities nested deeper than this are leaves."""

# The blank line that ends a header block.
_BLANK_RE = re.compile(rb"\n\r?\n")

_MESSAGE_SUBTYPES = ("rfc822", "global")


def parse_message(data: bytes) -> MessageStructure:
    """Parse a whole RFC 5322 message.  Never raises on malformed input."""
    return _parse_message(data, 0, len(data), 0)


def _parse_message(data: bytes, start: int, end: int, depth: int) -> MessageStructure:
    root, fields = _parse_entity(data, start, end, depth, digest_child=False)
    headers: dict[str, list[str]] = {}
    for name, raw in fields:
        headers.setdefault(name, []).append(decode_header_value(raw))
    return MessageStructure(
        root=root, envelope=_envelope(fields), headers=headers, size=end - start
    )


def _header_end(data: bytes, start: int, end: int) -> int:
    """Where the body of the entity [start, end) begins."""
    if data.startswith(b"\n", start, end):
        return start + 1
    if data.startswith(b"\r\n", start, end):
        return start + 2
    m = _BLANK_RE.search(data, start, end)
    return m.end() if m else end


def header_length(message: bytes) -> int:
    """
    The length of the top-level header of C{message} through the blank
    line that ends it (what BODY[HEADER] is), the whole length when there
    is no blank line: the C{header_start}/C{body_start} of its structure's
    root, without parsing the rest.
    """
    return _header_end(message, 0, len(message))


def count_lines(data: bytes, start: int, end: int) -> int:
    """Text lines in data[start:end]; a last line without a line ending counts."""
    if end <= start:
        return 0
    n = data.count(b"\n", start, end)
    if data[end - 1] != 0x0A:
        n += 1
    return n


def _parse_entity(
    data: bytes, start: int, end: int, depth: int, digest_child: bool
) -> tuple[BodyPart, list[tuple[str, bytes]]]:
    body_start = _header_end(data, start, end)
    fields = split_fields(data[start:body_start])
    part = BodyPart(header_start=start, body_start=body_start, end=end)
    seen: dict[str, bytes] = {}
    for name, raw in fields:
        if name.startswith("content-") and name not in seen:
            seen[name] = raw

    ctype = seen.get("content-type")
    parsed = parse_content_type(ctype) if ctype is not None else None
    if parsed is not None:
        part.type, part.subtype, part.params = parsed
    elif ctype is None and digest_child:
        # RFC 2046 section 5.1.5: the default in a digest is message/rfc822.
        part.type, part.subtype, part.params = "message", "rfc822", []
    else:
        # RFC 2045 section 5.2: absent or invalid means text/plain us-ascii.
        part.type, part.subtype, part.params = "text", "plain", [("charset", "us-ascii")]

    cte = seen.get("content-transfer-encoding")
    if cte is not None:
        part.encoding = first_token(cte).decode("latin-1").upper() or "7BIT"
    part.id = seen.get("content-id") or None
    part.description = seen.get("content-description") or None
    part.md5 = seen.get("content-md5") or None
    part.location = seen.get("content-location") or None
    disp = seen.get("content-disposition")
    if disp is not None:
        part.disposition = parse_disposition(disp)
    lang = seen.get("content-language")
    if lang is not None:
        part.language = parse_language(lang)

    is_message = part.type == "message" and part.subtype in _MESSAGE_SUBTYPES
    if depth >= MAX_DEPTH and (part.type == "multipart" or is_message):
        part.type, part.subtype = "application", "octet-stream"
        is_message = False
    if part.type == "multipart":
        part.children = _split_multipart(data, part, depth)
    elif is_message:
        part.message = _parse_message(data, body_start, end, depth + 1)
        part.lines = count_lines(data, body_start, end)
    elif part.type == "text":
        part.lines = count_lines(data, body_start, end)
    return part, fields


def _boundary_re(raw: bytes) -> re.Pattern[bytes]:
    # RFC 2046 section 5.1.1: a delimiter line is "--" boundary, optionally
    # "--" for the close delimiter, then linear whitespace, at the start of
    # a line.  The line break before it belongs to the delimiter.
    return re.compile(rb"^--" + re.escape(raw) + rb"(--)?[ \t]*\r?$", re.M)


def _delimiters(data: bytes, start: int, end: int, boundary: str) -> list[re.Match[bytes]]:
    if not boundary:
        return []
    # An 8-bit boundary (invalid, but seen) was decoded as UTF-8 or as
    # latin-1; try both spellings of it.
    for codec in ("utf-8", "latin-1"):
        try:
            raw = boundary.encode(codec)
        except UnicodeEncodeError:
            continue
        delims = list(_boundary_re(raw).finditer(data, start, end))
        if delims or boundary.isascii():
            return delims
    return []


def _split_multipart(data: bytes, part: BodyPart, depth: int) -> list[BodyPart]:
    start, end = part.body_start, part.end
    delims = _delimiters(data, start, end, dict(part.params).get("boundary", ""))
    digest = part.subtype == "digest"
    children = []
    for k, m in enumerate(delims):
        if m.group(1):  # close delimiter: the rest is the epilogue
            break
        child_start = m.end()
        if data.startswith(b"\n", child_start, end):
            child_start += 1
        if k + 1 < len(delims):
            child_end = delims[k + 1].start()
            if child_end > child_start and data[child_end - 1] == 0x0A:
                child_end -= 1
                if child_end > child_start and data[child_end - 1] == 0x0D:
                    child_end -= 1
        else:
            child_end = end  # no close delimiter: truncated multipart
        child, _ = _parse_entity(data, child_start, child_end, depth + 1, digest)
        children.append(child)
    if not children:
        children.append(
            BodyPart(
                header_start=start,
                body_start=start,
                end=end,
                params=[("charset", "us-ascii")],
                lines=count_lines(data, start, end),
            )
        )
    return children


def _envelope(fields: list[tuple[str, bytes]]) -> Envelope:
    first: dict[str, bytes] = {}
    for name, raw in fields:
        first.setdefault(name, raw)

    def addresses(name: str):  # type: ignore[no-untyped-def]
        raw = first.get(name)
        return parse_addresses(raw) if raw is not None else None

    from_ = addresses("from")
    # RFC 9051 section 7.5.2: an absent or empty Sender or Reply-To is the
    # From value.
    return Envelope(
        date=first.get("date"),
        subject=first.get("subject"),
        from_=from_,
        sender=addresses("sender") or from_,
        reply_to=addresses("reply-to") or from_,
        to=addresses("to"),
        cc=addresses("cc"),
        bcc=addresses("bcc"),
        in_reply_to=first.get("in-reply-to"),
        message_id=first.get("message-id"),
    )
