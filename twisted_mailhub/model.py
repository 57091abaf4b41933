"""
Plain value types exchanged across the store interfaces.

Conventions at this boundary (see :mod:`twisted_mailhub.interfaces`):

- mailbox names are ``str`` (Unicode; modified UTF-7 is a wire concern),
  with ``"INBOX"`` always spelled in upper case;
- flags and keywords are ``str`` as on the wire (``"\\Seen"``, ``"$Junk"``),
  system flags in their canonical capitalisation (:func:`canonical_flag`);
- message content is ``bytes``;
- dates are timezone-aware :class:`datetime.datetime`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Hashable

SYSTEM_FLAGS = ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft")
RECENT = "\\Recent"
_CANONICAL = {f.lower(): f for f in SYSTEM_FLAGS + (RECENT,)}


def canonical_flag(flag: str) -> str:
    """
    Return C{flag} with a system flag's canonical capitalisation.

    System flags are case-insensitive (RFC 3501 section 2.3.2); keywords are
    kept as the client spelled them.
    """
    if flag.startswith("\\"):
        return _CANONICAL.get(flag.lower(), flag)
    return flag


@dataclass(frozen=True, slots=True)
class MessageMeta:
    """
    What a mailbox knows about one message without reading its content.

    ``flags`` never contains ``\\Recent``: that is per-session state kept
    by the protocol layer (see :meth:`IMailbox.claim_recent`).

    ``identity`` names the message's immutable content (see
    :func:`is_object_id` for its form): it never changes, a copy or a move
    into another mailbox keeps it, and two different messages never share
    one (two deliveries of the same bytes may).  ``saved`` is when the
    message was put into *this* mailbox: APPEND, COPY and MOVE set it to
    the time they ran, whatever the INTERNALDATE; it never changes while
    the message stays.  Every store gives both; C{None} is for a value the
    store cannot keep (the protocol layer then falls back, or answers NIL
    where the protocol allows it).
    """

    uid: int
    flags: frozenset[str]
    internaldate: datetime
    size: int
    modseq: int
    identity: str | None = None
    saved: datetime | None = None


@dataclass(frozen=True, slots=True)
class MailboxStatus:
    """Counters a STATUS or SELECT reports, computed without reading messages."""

    messages: int
    uidnext: int
    uidvalidity: int
    unseen: int
    highestmodseq: int
    recent: int = 0
    size: int = 0
    deleted: int = 0
    #: The mailbox's own identity (:func:`is_object_id`): given when it is
    #: created, kept across renames and restarts, never given to another
    #: mailbox; a mailbox deleted and created again gets a new one.
    identity: str | None = None


@dataclass(frozen=True, slots=True)
class MailboxInfo:
    """
    One entry of a user's mailbox tree.

    ``selectable`` is false for a name that exists only as a hierarchy node
    (RFC 3501 section 6.3.4: a deleted mailbox that still has children).
    ``special_use`` holds RFC 6154 attributes such as ``"\\Sent"``.
    """

    name: str
    selectable: bool = True
    special_use: frozenset[str] = frozenset()


_OBJECT_ID_CHARS = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
)
#: The longest identity a store may give (the protocol layer may add a
#: letter of its own in front).
MAX_OBJECT_ID = 250


def is_object_id(value: str) -> bool:
    """
    Whether C{value} is usable as a message or mailbox identity: 1 to
    L{MAX_OBJECT_ID} letters, digits, C{_} and C{-} (case matters).
    """
    return 0 < len(value) <= MAX_OBJECT_ID and _OBJECT_ID_CHARS.issuperset(value)


def new_object_id() -> str:
    """A fresh random identity (32 hex digits) for a message or a mailbox."""
    return uuid.uuid4().hex


#: Bytes of a URLAUTH mailbox access key: 256 bits, over the 128 that
#: RFC 4467 section 2.2 asks for.
ACCESS_KEY_BYTES = 32


def new_access_key() -> bytes:
    """A fresh, unpredictable mailbox access key (L{IAccessKeys})."""
    import secrets

    return secrets.token_bytes(ACCESS_KEY_BYTES)


def kept_object_id(value: str | None) -> str:
    """C{value} when it is a usable identity (a copy's), else a new one."""
    if value is not None and is_object_id(value):
        return value
    return new_object_id()


# -- change notifications ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class MessagesAdded:
    """New messages arrived (APPEND, COPY, MOVE, delivery), in UID order."""

    messages: tuple[MessageMeta, ...]
    origin: Hashable | None = None


@dataclass(frozen=True, slots=True)
class FlagsChanged:
    """Flags of these messages changed; ``messages`` carry the new state."""

    messages: tuple[MessageMeta, ...]
    origin: Hashable | None = None


@dataclass(frozen=True, slots=True)
class MessagesExpunged:
    """These UIDs were removed; ``modseq`` is the mailbox's new HIGHESTMODSEQ."""

    uids: tuple[int, ...]
    modseq: int
    origin: Hashable | None = None


@dataclass(frozen=True, slots=True)
class MailboxRemoved:
    """The mailbox was deleted or renamed away; selected sessions must leave it."""

    origin: Hashable | None = None


@dataclass(frozen=True, slots=True)
class AccessKeyReset:
    """
    The mailbox was given a new access key (L{IAccessKeys.reset_access_key}):
    what was signed with the old one no longer verifies.
    """

    origin: Hashable | None = None


MailboxEvent = MessagesAdded | FlagsChanged | MessagesExpunged | MailboxRemoved | AccessKeyReset


@dataclass(frozen=True, slots=True)
class TreeKey:
    """
    The notifier key of one user's tree of mailboxes: the L{TreeEvent}s of
    that user are published under it (the events of each mailbox under
    the mailbox's own key).
    """

    username: str


@dataclass(frozen=True, slots=True)
class MailboxCreated:
    """C{name} was created (and any of its superiors that were missing)."""

    name: str


@dataclass(frozen=True, slots=True)
class MailboxDeleted:
    """C{name} was deleted, or became a hierarchy node (not selectable)."""

    name: str


@dataclass(frozen=True, slots=True)
class MailboxRenamed:
    """C{old} is now C{new}, its inferiors with it (INBOX: its messages only)."""

    old: str
    new: str


@dataclass(frozen=True, slots=True)
class SubscriptionChanged:
    """C{name} was subscribed (or unsubscribed, when not C{subscribed})."""

    name: str
    subscribed: bool


TreeEvent = MailboxCreated | MailboxDeleted | MailboxRenamed | SubscriptionChanged


@dataclass(frozen=True, slots=True)
class AppendRequest:
    """
    One message to append: content plus the optional flags and date.
    Its save date (L{MessageMeta.saved}) is always the time of the append.

    ``uid`` asks for that UID instead of the next one; only an
    L{IRestorableMailbox} honours it (see there), so callers set it only
    on one.
    """

    content: bytes
    flags: frozenset[str] = frozenset()
    internaldate: datetime | None = None
    uid: int | None = None
    #: The identity to keep (L{MessageMeta.identity}) when the message is
    #: one that exists already: a COPY done by reading and appending, a
    #: migration.  C{None} for a new message, which gets a new identity.
    identity: str | None = None


@dataclass(slots=True)
class FlagUpdate:
    """Result of :meth:`IMailbox.store_flags`."""

    changed: list[MessageMeta] = field(default_factory=list)
    # UIDs that failed an UNCHANGEDSINCE test (RFC 7162 section 3.1.3).
    modified: list[int] = field(default_factory=list)
