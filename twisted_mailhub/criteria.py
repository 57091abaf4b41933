"""
Search criteria: the tree a store's C{search} receives
(L{twisted_mailhub.interfaces.ISearchableMailbox}).

The keys and their meaning are those of IMAP SEARCH (RFC 3501 section 6.4.4,
RFC 9051 section 6.4.4), which other front ends map onto.  The IMAP parser
builds these trees; the generic evaluator (L{twisted_mailhub.imap.search})
and stores' own fast paths walk them.  Strings are ``str``, already decoded
from whatever charset the client used.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Callable, Literal

from twisted_mailhub.ranges import SequenceSet


@dataclass(frozen=True, slots=True)
class All:
    """ALL"""


@dataclass(frozen=True, slots=True)
class Flag:
    """
    ANSWERED, DELETED, DRAFT, FLAGGED, SEEN, KEYWORD (``present`` true) and
    their UN- forms (``present`` false).  ``flag`` is canonical
    (``"\\Seen"``) or a keyword.
    """

    flag: str
    present: bool = True


@dataclass(frozen=True, slots=True)
class Recent:
    """RECENT (``present``) / OLD (not ``present``)."""

    present: bool = True


@dataclass(frozen=True, slots=True)
class New:
    """NEW: \\Recent and not \\Seen."""


@dataclass(frozen=True, slots=True)
class Date:
    """
    BEFORE/ON/SINCE (``field="internal"``, the INTERNALDATE),
    SENTBEFORE/SENTON/SENTSINCE (``field="sent"``, the Date: header) and
    SAVEDBEFORE/SAVEDON/SAVEDSINCE (``field="saved"``, when the message
    was put into this mailbox, L{MessageMeta.saved}; the INTERNALDATE for a
    message whose store keeps none, RFC 8514 section 4.3), compared by
    calendar date, ignoring time and zone (RFC 3501 6.4.4).
    """

    field: Literal["internal", "sent", "saved"]
    op: Literal["before", "on", "since"]
    value: date


@dataclass(frozen=True, slots=True)
class Header:
    """
    HEADER name value, and FROM/TO/CC/BCC/SUBJECT (``name`` the field).
    Case-insensitive substring of the decoded field value; an empty
    ``value`` matches every message that has the field.
    """

    name: str
    value: str


@dataclass(frozen=True, slots=True)
class Body:
    """BODY: substring of the decoded body text."""

    value: str


@dataclass(frozen=True, slots=True)
class Text:
    """TEXT: substring of the header or body."""

    value: str


@dataclass(frozen=True, slots=True)
class Size:
    """LARGER (``op="larger"``) / SMALLER: RFC822.SIZE strictly compared."""

    op: Literal["larger", "smaller"]
    value: int


@dataclass(frozen=True, slots=True)
class Sequence:
    """A bare sequence set: message sequence numbers."""

    set: SequenceSet


@dataclass(frozen=True, slots=True)
class Uid:
    """UID sequence-set."""

    set: SequenceSet


@dataclass(frozen=True, slots=True)
class ModSeq:
    """
    MODSEQ n (RFC 7162 section 3.1.5): messages with MODSEQ >= n.
    ``entry`` (e.g. ``"/flags/\\Seen"``) and ``entry_type`` ("priv",
    "shared" or "all") are the optional metadata item named by the client.
    """

    value: int
    entry: str | None = None
    entry_type: str | None = None


@dataclass(frozen=True, slots=True)
class Age:
    """OLDER/YOUNGER n (RFC 5032): INTERNALDATE older/younger than n seconds."""

    op: Literal["older", "younger"]
    seconds: int

    def target(self, now: datetime) -> datetime:
        """
        The time INTERNALDATE is compared with (RFC 5032 section 2): the
        whole second C{seconds} before C{now}.  Matching is to the second,
        so a store compares its dates without their fractions of a second.
        """
        return now.replace(microsecond=0) - timedelta(seconds=self.seconds)


@dataclass(frozen=True, slots=True)
class Identity:
    """
    EMAILID (RFC 8474 section 6): the message whose
    L{MessageMeta.identity} is exactly ``value`` (case matters).
    """

    value: str


@dataclass(frozen=True, slots=True)
class SaveDateKnown:
    """
    SAVEDATESUPPORTED (RFC 8514 section 4.3): the messages whose store
    keeps when they were saved (L{MessageMeta.saved} is not C{None}).
    """


@dataclass(frozen=True, slots=True)
class Not:
    """NOT key"""

    key: "SearchKey"


@dataclass(frozen=True, slots=True)
class Or:
    """OR key1 key2"""

    left: "SearchKey"
    right: "SearchKey"


@dataclass(frozen=True, slots=True)
class And:
    """A parenthesised list, or the top-level list: all must match."""

    keys: tuple["SearchKey", ...]


SearchKey = (
    All | Flag | Recent | New | Date | Header | Body | Text | Size | Sequence | Uid
    | ModSeq | Age | Not | Or | And
    | Identity | SaveDateKnown
)


def any_key(key: SearchKey, test: Callable[[SearchKey], bool]) -> bool:
    """Whether C{test} holds for C{key} or for any key inside it (NOT, OR, lists)."""
    if test(key):
        return True
    if isinstance(key, Not):
        return any_key(key.key, test)
    if isinstance(key, Or):
        return any_key(key.left, test) or any_key(key.right, test)
    if isinstance(key, And):
        return any(any_key(k, test) for k in key.keys)
    return False
