"""
SORT (RFC 5256 section 3, with DISPLAYFROM and DISPLAYTO of RFC 5957):
the values messages are sorted by, and the sort itself.

Sans-IO: L{SortValues.of} derives a message's values from its parsed
structure once (they are immutable facts of the message, so the protocol
layer keeps them, encoded with L{SortValues.encode}, beside the rendered
ENVELOPE in the mailbox index and the store's summaries); L{order} sorts
L{Entry} values by a client's sort criteria.

Strings are compared as RFC 5256 section 7 asks, by the i;unicode-casemap
collation of RFC 5051 (L{collate}): each character titlecased, then the
whole string canonically decomposed, compared by code point.
"""

from __future__ import annotations

import calendar
import json
import re
import unicodedata
from dataclasses import dataclass
from email.utils import parsedate_tz
from typing import Iterable, Sequence

from twisted_mailhub.mime.headers import decode_header_value, to_text
from twisted_mailhub.mime.structure import Address, MessageStructure

__all__ = [
    "HEADER_KEYS", "MEMO_NAME", "SORT_KEYS", "Criterion", "Entry", "SortValues",
    "base_subject", "collate", "message_ids", "order", "sent_time",
]

#: The sort keys a client may name (RFC 5256 section 5, RFC 5957 section 5).
SORT_KEYS = ("ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO",
             "DISPLAYFROM", "DISPLAYTO")

#: Sort keys read from the message's header (the others need only its metadata).
HEADER_KEYS = frozenset({"CC", "DATE", "FROM", "SUBJECT", "TO", "DISPLAYFROM", "DISPLAYTO"})

#: The name the values are kept under in the index and the store's summaries.
#: A change of what L{SortValues.encode} writes takes a new name.
MEMO_NAME = "SORT"


# -- collation (RFC 5051) ----------------------------------------------------------

_TITLE: dict[str, str] = {}


def _title(ch: str) -> str:
    # The simple (one character) titlecase mapping, which falls back to the
    # simple uppercase mapping (UAX 44); Python gives the full mappings, so
    # a character whose mapping is longer than one keeps its form.
    mapped = _TITLE.get(ch)
    if mapped is None:
        mapped = ch.title()
        if len(mapped) != 1:
            mapped = ch.upper()
            if len(mapped) != 1:
                mapped = ch
        _TITLE[ch] = mapped
    return mapped


def collate(text: str) -> str:
    """
    The i;unicode-casemap key of C{text} (RFC 5051 section 2): equal keys
    are equal strings for SORT and THREAD, and keys compare as the strings
    collate (Python compares by code point, as UTF-8 octets do).
    """
    if text.isascii():
        return text.upper()
    return unicodedata.normalize("NFD", "".join(map(_title, text)))


# -- base subject (RFC 5256 section 2.1) ------------------------------------------

_SPACES = re.compile(r"[ \t\r\n]+")
# subj-trailer = "(fwd)" / WSP, at the end (step 2).
_TRAILER = re.compile(r"(?:\(fwd\)| )$", re.I)
# subj-blob = "[" *BLOBCHAR "]" *WSP
_BLOB = r"\[[^\[\]]*\] *"
# subj-leader = (*subj-blob subj-refwd) / WSP, where
# subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":" (step 3).
_LEADER = re.compile(rf"(?:{_BLOB})*(?:re|fwd?) *(?:{_BLOB})?:| ", re.I)
_BLOB_PREFIX = re.compile(_BLOB)
_FWD_HDR = "[fwd:"


def base_subject(subject: str) -> tuple[str, bool]:
    """
    The base subject of a decoded Subject value (RFC 5256 section 2.1
    steps 2 to 7; step 1, decoding the encoded words, is the caller's), and
    whether the subject marks a reply or forward: whether the extraction
    removed a subj-refwd, a "(fwd)" trailer, or a "[fwd: ...]" wrapper
    (section 3, REFERENCES).  The base subject is not collated.
    """
    # Step 1: tabs and continuations are spaces, runs of spaces one space.
    text = _SPACES.sub(" ", subject)
    reply = False
    while True:
        # Step 2: trailers, as many as there are.
        while True:
            found = _TRAILER.search(text)
            if found is None:
                break
            if found.group() != " ":
                reply = True
            text = text[:found.start()]
        # Steps 3 to 5: leaders and blobs, until neither is left.
        while True:
            changed = False
            while True:
                found = _LEADER.match(text)
                if found is None or not found.end():
                    break
                if found.group() != " ":
                    reply = True
                text = text[found.end():]
                changed = True
            found = _BLOB_PREFIX.match(text)
            # Step 4: a blob goes only when a non-empty subj-base remains.
            if found is not None and found.end() < len(text):
                text = text[found.end():]
                changed = True
            if not changed:
                break
        # Step 6: "[fwd: ...]" around the whole, then again from step 2.
        if text[:len(_FWD_HDR)].lower() == _FWD_HDR and text.endswith("]"):
            text = text[len(_FWD_HDR):-1]
            reply = True
            continue
        return text, reply


# -- message IDs (RFC 5256 section 3, REFERENCES) ----------------------------------

_ANGLED = re.compile(r"<([^<>]*)>")
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"', re.S)
_UNESCAPE = re.compile(r"\\(.)", re.S)
_COMMENT = re.compile(r"\((?:[^()\\]|\\.)*\)")


def _normal_id(inner: str) -> str | None:
    # The msg-id normalised (RFC 5256 section 3: quoting must not make two
    # spellings of one ID differ): quoted parts unquoted, comments and
    # folding whitespace dropped.  Without "@" between two non-empty parts
    # it is not a valid msg-id.
    text = _QUOTED.sub(lambda m: _UNESCAPE.sub(r"\1", m.group(1)), inner)
    text = _COMMENT.sub("", text)
    text = "".join(text.split())
    left, at, right = text.rpartition("@")
    if not at or not left or not right:
        return None
    return f"<{text}>"


def message_ids(value: str | None) -> list[str]:
    """The valid msg-ids in a header value, normalised, in order."""
    if not value:
        return []
    found = (_normal_id(m.group(1)) for m in _ANGLED.finditer(value))
    return [i for i in found if i is not None]


# -- the values of one message ----------------------------------------------------


def _first_address(addresses: list[Address] | None) -> Address | None:
    # The first address structure of the ENVELOPE field (a group start
    # is one: its addr-mailbox holds the group name).
    return addresses[0] if addresses else None


def _addr_mailbox(address: Address | None) -> str:
    # RFC 5256 section 3: FROM, TO and CC sort by the [IMAP] addr-mailbox
    # of the first address: the local part alone.
    if address is None or not address[2]:
        return ""
    return to_text(address[2])


def _display(address: Address | None) -> str:
    # RFC 5957 section 3: the decoded addr-name when not empty, else
    # addr-mailbox@addr-host, else addr-mailbox, else the empty string.
    if address is None:
        return ""
    name, _adl, mailbox, host = address
    if name:
        decoded = decode_header_value(name)
        if decoded:
            return decoded
    if mailbox and host:
        return to_text(mailbox + b"@" + host)
    return to_text(mailbox) if mailbox else ""


def sent_time(value: str | None) -> int | None:
    """
    The sent date of a Date value in seconds since the epoch, UTC (RFC 5256
    section 2.2: a time zone that cannot be read is UTC), or None when the
    value cannot be read as a date (the INTERNALDATE stands in for it).
    """
    if not value:
        return None
    try:
        parts = parsedate_tz(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parts is None:
        return None
    try:
        return calendar.timegm(tuple(parts[:6]) + (0, 0, 0)) - (parts[9] or 0)
    except (TypeError, ValueError, OverflowError):
        return None


@dataclass(frozen=True, slots=True)
class SortValues:
    """
    What SORT and THREAD read of one message's header.  Strings are
    collated (L{collate}) except the message IDs, which compare exactly.
    C{sent} is None when the Date field is missing or unreadable.
    """

    subject: str = ""
    reply: bool = False
    sent: int | None = None
    from_: str = ""
    to: str = ""
    cc: str = ""
    display_from: str = ""
    display_to: str = ""
    message_id: str | None = None
    references: tuple[str, ...] = ()

    @classmethod
    def of(cls, structure: MessageStructure) -> "SortValues":
        """The values of a message from its parsed structure."""
        headers = structure.headers

        def first(name: str) -> str | None:
            values = headers.get(name)
            return values[0] if values else None

        subject, reply = base_subject(first("subject") or "")
        envelope = structure.envelope
        sender = _first_address(envelope.from_)
        recipient = _first_address(envelope.to)
        ids = message_ids(first("message-id"))
        # RFC 5256 section 3: the References field's IDs; without a valid
        # one, the first valid ID of In-Reply-To.
        references = message_ids(first("references")) or message_ids(first("in-reply-to"))[:1]
        return cls(
            subject=collate(subject),
            reply=reply,
            sent=sent_time(first("date")),
            from_=collate(_addr_mailbox(sender)),
            to=collate(_addr_mailbox(recipient)),
            cc=collate(_addr_mailbox(_first_address(envelope.cc))),
            display_from=collate(_display(sender)),
            display_to=collate(_display(recipient)),
            message_id=ids[0] if ids else None,
            references=tuple(references),
        )

    def encode(self) -> bytes:
        """The values as bytes to keep (see L{MEMO_NAME})."""
        return json.dumps(
            [self.subject, self.reply, self.sent, self.from_, self.to, self.cc,
             self.display_from, self.display_to, self.message_id, list(self.references)],
            ensure_ascii=False, separators=(",", ":"),
        ).encode("utf-8")

    @classmethod
    def decode(cls, data: bytes) -> "SortValues | None":
        """Values from L{encode}'s bytes; None if they are not such bytes."""
        try:
            (subject, reply, sent, from_, to, cc, display_from, display_to, message_id,
             references) = json.loads(data)
            return cls(subject, bool(reply), sent, from_, to, cc, display_from, display_to,
                       message_id, tuple(references))
        except (ValueError, TypeError):
            return None


# -- sorting -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Criterion:
    """One sort criterion: a key of L{SORT_KEYS}, and REVERSE."""

    key: str
    reverse: bool = False


@dataclass(slots=True)
class Entry:
    """
    A message being sorted or threaded: its UID, INTERNALDATE (seconds since
    the epoch), RFC822.SIZE and header values.
    """

    uid: int
    arrival: float
    size: int
    values: SortValues

    @property
    def date(self) -> float:
        """The sent date, or the INTERNALDATE without one (RFC 5256 section 2.2)."""
        sent = self.values.sent
        return self.arrival if sent is None else sent


_KEYS = {
    "ARRIVAL": lambda e: e.arrival,
    "CC": lambda e: e.values.cc,
    "DATE": lambda e: e.date,
    "FROM": lambda e: e.values.from_,
    "SIZE": lambda e: e.size,
    "SUBJECT": lambda e: e.values.subject,
    "TO": lambda e: e.values.to,
    "DISPLAYFROM": lambda e: e.values.display_from,
    "DISPLAYTO": lambda e: e.values.display_to,
}


def order(entries: Iterable[Entry], criteria: Sequence[Criterion]) -> list[Entry]:
    """
    C{entries} sorted by C{criteria}, in priority order; messages equal by
    all of them stay in mailbox order (ascending UID, which is sequence
    order), REVERSE or not (RFC 5256 section 3).
    """
    result = sorted(entries, key=lambda e: e.uid)
    # Stable sorts from the least significant criterion to the first; a
    # reversed stable sort keeps equal entries in their order.
    for criterion in reversed(criteria):
        result.sort(key=_KEYS[criterion.key], reverse=criterion.reverse)
    return result
