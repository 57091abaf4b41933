"""
Resolving a FETCH BODY[section] / BINARY[section] to a byte range of the
raw message (RFC 3501 section 6.4.5, RFC 9051 section 6.4.5), so that the
caller reads only what it sends.

Part numbering: the parts of a message are the children of its root when
the root is multipart, else the root alone (part 1, RFC 3501 section
6.4.5: "non-multipart ... messages ... only have a part 1").  Below a
multipart part, N.M is its M-th child; below a message/rfc822 (or
message/global) part, N.M is part M of the encapsulated message.

A section naming a part that does not exist, or HEADER/TEXT on a part that
is not an encapsulated message, resolves to an empty range: the server
answers with an empty string rather than an error.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from twisted_mailhub.mime.headers import field_spans
from twisted_mailhub.mime.structure import BodyPart, MessageStructure


@dataclass(frozen=True, slots=True)
class Section:
    """
    A section of a message, as BODY[...] and BINARY[...] name one.
    ``part`` is the part number path (``()`` for the whole message);
    ``text`` is None, "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT"
    or "MIME"; ``fields`` the upper-cased field names of HEADER.FIELDS(.NOT),
    in the client's order.
    """

    part: tuple[int, ...] = ()
    text: str | None = None
    fields: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SectionPlan:
    """
    What to send for a section: ``length`` bytes of the raw message from
    ``offset``.  When ``fields`` is not None the range is a header block
    to pass through L{filter_header} with ``fields`` and ``exclude``.
    """

    offset: int
    length: int
    fields: tuple[str, ...] | None = None
    exclude: bool = False

    @property
    def empty(self) -> bool:
        return self.length == 0 and self.fields is None


EMPTY = SectionPlan(0, 0)

_MESSAGE_SUBTYPES = ("rfc822", "global")


def _is_message(part: BodyPart) -> bool:
    return part.type == "message" and part.subtype in _MESSAGE_SUBTYPES and part.message is not None


def _parts_of(msg: MessageStructure) -> list[BodyPart]:
    root = msg.root
    return root.children if root.type == "multipart" and root.children else [root]


def part_for(structure: MessageStructure, path: tuple[int, ...]) -> BodyPart | None:
    """The entity named by a part number path, or None when there is none."""
    candidates = _parts_of(structure)
    part: BodyPart | None = None
    for n in path:
        if not 1 <= n <= len(candidates):
            return None
        part = candidates[n - 1]
        if part.type == "multipart" and part.children:
            candidates = part.children
        elif _is_message(part):
            assert part.message is not None
            candidates = _parts_of(part.message)
        else:
            candidates = []
    return part


def _span(start: int, end: int, fields: tuple[str, ...] | None = None, exclude: bool = False) -> SectionPlan:
    return SectionPlan(start, max(0, end - start), fields, exclude)


def resolve(structure: MessageStructure, section: Section) -> SectionPlan:
    """The byte range (and header filter) that answers ``section``."""
    text = section.text
    if section.part:
        part = part_for(structure, section.part)
        if part is None:
            return EMPTY
        if text is None:
            return _span(part.body_start, part.end)
        if text == "MIME":
            return _span(part.header_start, part.body_start)
        if not _is_message(part):
            return EMPTY
        assert part.message is not None
        root = part.message.root
    else:
        root = structure.root
        if text is None:
            return _span(root.header_start, root.end)
        if text == "MIME":
            return EMPTY
    if text == "HEADER":
        return _span(root.header_start, root.body_start)
    if text == "TEXT":
        return _span(root.body_start, root.end)
    if text in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
        return _span(
            root.header_start,
            root.body_start,
            tuple(f.lower() for f in section.fields),
            text == "HEADER.FIELDS.NOT",
        )
    return EMPTY


def filter_header(header: bytes, fields: tuple[str, ...], exclude: bool) -> bytes:
    """
    The lines of ``header`` whose field name is (``exclude`` false) or is
    not (``exclude`` true) one of ``fields``, compared case-insensitively,
    with their folded continuation lines, in message order, followed by
    the blank line that ends a header (RFC 9051 section 6.4.5).
    """
    wanted = {f.lower() for f in fields}
    out = []
    for name, start, end in field_spans(header):
        if (name in wanted) != exclude:
            line = header[start:end]
            if not line.endswith(b"\n"):
                line += b"\r\n"
            out.append(line)
    out.append(b"\r\n")
    return b"".join(out)


_B64_JUNK_RE = re.compile(rb"[^A-Za-z0-9+/]")


def binary_decode(body: bytes, encoding: str) -> bytes | None:
    """
    The content of a body with its Content-Transfer-Encoding removed, for
    BINARY[] (RFC 3516 section 4.2).  None for an unknown encoding (the
    server answers NO [UNKNOWN-CTE]).  Damaged base64 is decoded as far as
    it goes: characters outside the alphabet are ignored (RFC 2045 section
    6.8) and a partial final quantum dropped.
    """
    enc = encoding.strip().lower()
    if enc in ("", "7bit", "8bit", "binary"):
        return body
    if enc == "base64":
        clean = _B64_JUNK_RE.sub(b"", body.split(b"=", 1)[0])
        clean = clean[: len(clean) - len(clean) % 4] if len(clean) % 4 == 1 else clean
        try:
            return base64.b64decode(clean + b"=" * (-len(clean) % 4))
        except binascii.Error:
            return b""
    if enc == "quoted-printable":
        return qp_decode(body)
    return None


# One encoded line: its text and its line break (empty on the last line).
_QP_LINE_RE = re.compile(rb"([^\r\n]*)(\r\n|\n|\r|$)")
_QP_ESCAPE_RE = re.compile(rb"=([0-9A-Fa-f]{2})")


def qp_decode(body: bytes) -> bytes:
    """
    Decode quoted-printable (RFC 2045 section 6.7).  Trailing white space
    on each line is transport padding and is deleted (rule 3); a line that
    then ends in "=" is a soft line break, the "=" and the line break are
    dropped (rule 5, "=" followed by white space included).  Hard line
    breaks are kept as they are.  An "=" not followed by two hex digits is
    kept literally, as the RFC advises robust decoders to do.
    """
    out = []
    for m in _QP_LINE_RE.finditer(body):
        text, eol = m.group(1).rstrip(b" \t"), m.group(2)
        if not text and not eol:  # the empty match at the end
            break
        if text.endswith(b"="):
            text, eol = text[:-1], b""
        out.append(_QP_ESCAPE_RE.sub(lambda e: bytes((int(e.group(1), 16),)), text))
        out.append(eol)
    return b"".join(out)
