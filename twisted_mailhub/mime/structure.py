"""
The parsed shape of a message, with byte offsets into its raw content.

A L{MessageStructure} is computed once (at APPEND or delivery) by
L{twisted_mailhub.mime.parse.parse_message} and may be stored by a backend
as JSON (L{MessageStructure.to_json} / L{MessageStructure.from_json}), so
that FETCH of ENVELOPE, BODYSTRUCTURE or a body section never re-parses the
message, and a section is read as a byte range.

Header values here are ``bytes`` exactly as in the message (unfolded, not
decoded): ENVELOPE and BODYSTRUCTURE send them that way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Address = tuple[bytes | None, bytes | None, bytes | None, bytes | None]
"""(name, adl, mailbox, host) as in RFC 3501 ``address``; a group start has
host None and mailbox the group name; a group end is all None."""


@dataclass(slots=True)
class Envelope:
    """RFC 3501 section 7.4.2 ENVELOPE fields; ``None`` is NIL."""

    date: bytes | None = None
    subject: bytes | None = None
    from_: list[Address] | None = None
    sender: list[Address] | None = None
    reply_to: list[Address] | None = None
    to: list[Address] | None = None
    cc: list[Address] | None = None
    bcc: list[Address] | None = None
    in_reply_to: bytes | None = None
    message_id: bytes | None = None


@dataclass(slots=True)
class BodyPart:
    """
    One MIME entity.  Offsets are absolute in the whole message:
    ``[header_start, body_start)`` is the entity's header (including the
    blank line that ends it) and ``[body_start, end)`` its body.
    """

    header_start: int
    body_start: int
    end: int
    type: str = "text"  # lower case
    subtype: str = "plain"  # lower case
    params: list[tuple[str, str]] = field(default_factory=list)  # RFC 2231 decoded
    id: bytes | None = None
    description: bytes | None = None
    encoding: str = "7BIT"  # upper case as sent in BODYSTRUCTURE
    md5: bytes | None = None
    disposition: tuple[str, list[tuple[str, str]]] | None = None
    language: list[str] | None = None
    location: bytes | None = None
    lines: int = 0  # body lines, for text/* and message/rfc822
    children: list["BodyPart"] = field(default_factory=list)  # multipart/*
    # For message/rfc822 (and message/global): the encapsulated message.
    message: "MessageStructure | None" = None

    @property
    def body_size(self) -> int:
        return self.end - self.body_start


@dataclass(slots=True)
class MessageStructure:
    """
    The root entity of a message (or of an encapsulated message/rfc822),
    its ENVELOPE, and the header fields SEARCH and SORT use.

    ``headers`` maps lower-cased field names to their values in order, each
    decoded to ``str`` (RFC 2047 encoded words decoded, unfolded) for
    case-insensitive substring search.
    """

    root: BodyPart
    envelope: Envelope
    headers: dict[str, list[str]] = field(default_factory=dict)
    size: int = 0

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dict (bytes as latin-1 strings)."""
        from twisted_mailhub.mime.serial import structure_to_json

        return structure_to_json(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "MessageStructure":
        from twisted_mailhub.mime.serial import structure_from_json

        return structure_from_json(data)
