"""
Parsed IMAP commands: plain values produced by L{twisted_mailhub.imap.parser}.

One class per command.  Mailbox names are ``str`` (decoded from modified
UTF-7, ``INBOX`` in any case normalised to ``"INBOX"``); flags are ``str``
(system flags canonical); authentication material stays ``bytes``.
Every command carries the client's ``tag`` (``str``) and a ``uid`` flag
where the UID prefix applies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar, Literal

from twisted_mailhub.criteria import SearchKey
from twisted_mailhub.imap.esearch import PartialRange
from twisted_mailhub.imap.sort import Criterion
from twisted_mailhub.mime.sections import Section
from twisted_mailhub.ranges import SequenceSet


@dataclass(frozen=True, slots=True)
class Command:
    tag: str
    # The command name as the RFC spells it; set on each subclass.
    name: ClassVar[str] = ""


# -- any state ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Capability(Command):
    name: ClassVar[str] = "CAPABILITY"


@dataclass(frozen=True, slots=True)
class Noop(Command):
    name: ClassVar[str] = "NOOP"


@dataclass(frozen=True, slots=True)
class Logout(Command):
    name: ClassVar[str] = "LOGOUT"


@dataclass(frozen=True, slots=True)
class Id(Command):
    """RFC 2971.  ``params`` is None for ``ID NIL``."""

    name: ClassVar[str] = "ID"
    params: tuple[tuple[str, str | None], ...] | None = None


# -- not authenticated --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StartTLS(Command):
    name: ClassVar[str] = "STARTTLS"


@dataclass(frozen=True, slots=True)
class Login(Command):
    name: ClassVar[str] = "LOGIN"
    username: bytes = b""
    password: bytes = b""


@dataclass(frozen=True, slots=True)
class Authenticate(Command):
    """``initial`` is the SASL-IR initial response, decoded (b"" for ``=``)."""

    name: ClassVar[str] = "AUTHENTICATE"
    mechanism: str = ""
    initial: bytes | None = None


# -- authenticated ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Compress(Command):
    """RFC 4978.  ``mechanism`` is upper case; only DEFLATE is parsed."""

    name: ClassVar[str] = "COMPRESS"
    mechanism: str = "DEFLATE"


@dataclass(frozen=True, slots=True)
class Unauthenticate(Command):
    """RFC 8437: back to the not authenticated state."""

    name: ClassVar[str] = "UNAUTHENTICATE"


@dataclass(frozen=True, slots=True)
class Enable(Command):
    name: ClassVar[str] = "ENABLE"
    capabilities: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Select(Command):
    """SELECT, or EXAMINE when ``read_only``.  ``condstore``/``qresync``: RFC 7162."""

    name: ClassVar[str] = "SELECT"
    mailbox: str = ""
    read_only: bool = False
    condstore: bool = False
    # QRESYNC (uidvalidity, modseq, known-uids or None, seq-match or None)
    qresync: tuple[int, int, SequenceSet | None, tuple[SequenceSet, SequenceSet] | None] | None = None


@dataclass(frozen=True, slots=True)
class Create(Command):
    name: ClassVar[str] = "CREATE"
    mailbox: str = ""
    special_use: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Delete(Command):
    name: ClassVar[str] = "DELETE"
    mailbox: str = ""


@dataclass(frozen=True, slots=True)
class Rename(Command):
    name: ClassVar[str] = "RENAME"
    old: str = ""
    new: str = ""


@dataclass(frozen=True, slots=True)
class Subscribe(Command):
    name: ClassVar[str] = "SUBSCRIBE"
    mailbox: str = ""


@dataclass(frozen=True, slots=True)
class Unsubscribe(Command):
    name: ClassVar[str] = "UNSUBSCRIBE"
    mailbox: str = ""


@dataclass(frozen=True, slots=True)
class List(Command):
    """
    LIST and LSUB (``lsub`` true), with the RFC 5258 extended forms.
    ``reference`` and ``patterns`` are decoded names that may hold the
    wildcards ``*`` and ``%``.  Options are upper-case atoms; ``return_status``
    holds the STATUS items of RFC 5819 RETURN (STATUS (...)).
    """

    name: ClassVar[str] = "LIST"
    reference: str = ""
    patterns: tuple[str, ...] = ()
    lsub: bool = False
    selection: frozenset[str] = frozenset()
    returns: frozenset[str] = frozenset()
    return_status: tuple[str, ...] = ()
    extended: bool = False


@dataclass(frozen=True, slots=True)
class Namespace(Command):
    name: ClassVar[str] = "NAMESPACE"


@dataclass(frozen=True, slots=True)
class Status(Command):
    """``items`` upper case: MESSAGES, RECENT, UIDNEXT, UIDVALIDITY, UNSEEN, ..."""

    name: ClassVar[str] = "STATUS"
    mailbox: str = ""
    items: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CatenateUrl:
    """A CATENATE ``URL`` part (RFC 4469 section 5): the URL as sent."""

    url: bytes


@dataclass(frozen=True, slots=True)
class AppendMessage:
    """
    One message of APPEND: C{content}, or with CATENATE (RFC 4469) the
    C{catenate} parts to join -- the bytes of ``TEXT`` literals and
    L{CatenateUrl}s -- and an empty C{content}.
    """

    content: bytes
    flags: frozenset[str] = frozenset()
    internaldate: datetime | None = None
    #: Sent as RFC 6855 section 4 ``UTF8 (literal8)``: headers may be UTF-8.
    utf8: bool = False
    catenate: tuple[bytes | CatenateUrl, ...] | None = None


@dataclass(frozen=True, slots=True)
class Append(Command):
    """APPEND; several ``messages`` with MULTIAPPEND (RFC 3502)."""

    name: ClassVar[str] = "APPEND"
    mailbox: str = ""
    messages: tuple[AppendMessage, ...] = ()


@dataclass(frozen=True, slots=True)
class Idle(Command):
    name: ClassVar[str] = "IDLE"


@dataclass(frozen=True, slots=True)
class GetQuota(Command):
    """RFC 9208 section 4.1.1.  ``root`` is the quota root name (``str``)."""

    name: ClassVar[str] = "GETQUOTA"
    root: str = ""


@dataclass(frozen=True, slots=True)
class GetQuotaRoot(Command):
    """RFC 9208 section 4.1.2: the roots of ``mailbox``, which need not exist."""

    name: ClassVar[str] = "GETQUOTAROOT"
    mailbox: str = ""


@dataclass(frozen=True, slots=True)
class SetQuota(Command):
    """RFC 9208 section 4.1.3.  ``limits`` are ``(RESOURCE, limit)`` pairs, upper case."""

    name: ClassVar[str] = "SETQUOTA"
    root: str = ""
    limits: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True, slots=True)
class ResetKey(Command):
    """
    RFC 4467 section 7 RESETKEY: a new access key for C{mailbox} (for
    C{mechanisms}, upper case), or with no mailbox every key removed.
    """

    name: ClassVar[str] = "RESETKEY"
    mailbox: str | None = None
    mechanisms: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class GenUrlAuth(Command):
    """RFC 4467 section 7 GENURLAUTH: C{(url-rump, mechanism)} pairs, URLs as sent."""

    name: ClassVar[str] = "GENURLAUTH"
    pairs: tuple[tuple[bytes, str], ...] = ()


@dataclass(frozen=True, slots=True)
class UrlFetch(Command):
    """RFC 4467 section 7 URLFETCH: the URLs as sent."""

    name: ClassVar[str] = "URLFETCH"
    urls: tuple[bytes, ...] = ()


# -- selected -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Check(Command):
    name: ClassVar[str] = "CHECK"


@dataclass(frozen=True, slots=True)
class Close(Command):
    name: ClassVar[str] = "CLOSE"


@dataclass(frozen=True, slots=True)
class Unselect(Command):
    name: ClassVar[str] = "UNSELECT"


@dataclass(frozen=True, slots=True)
class CancelUpdate(Command):
    """CANCELUPDATE (RFC 5267 section 4.3.5): the tags of updating contexts."""

    name: ClassVar[str] = "CANCELUPDATE"
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Expunge(Command):
    """EXPUNGE, or UID EXPUNGE (RFC 4315) when ``uids`` is given."""

    name: ClassVar[str] = "EXPUNGE"
    uids: SequenceSet | None = None


@dataclass(frozen=True, slots=True)
class Search(Command):
    """
    SEARCH / UID SEARCH.  ``charset`` is upper case or None.  ``returns`` is
    None for a plain SEARCH, or the ESEARCH RETURN options (RFC 4731:
    MIN, MAX, ALL, COUNT, SAVE; RFC 9394: PARTIAL, whose range is
    ``partial``) - an empty tuple for ``RETURN ()``.
    """

    name: ClassVar[str] = "SEARCH"
    key: SearchKey | None = None
    charset: str | None = None
    uid: bool = False
    returns: tuple[str, ...] | None = None
    partial: PartialRange | None = None
    #: RFC 5465 section 7: ``UPDATE (fetch-att ...)``, for new messages.
    update_fetch: tuple[FetchAttr, ...] = ()


@dataclass(frozen=True, slots=True)
class Sort(Command):
    """
    SORT / UID SORT (RFC 5256).  ``criteria`` are
    L{twisted_mailhub.imap.sort.Criterion} values in priority order;
    ``charset`` is upper case; ``returns`` is None for a plain SORT, or the
    ESORT RETURN options (RFC 5267 section 3.1) - empty for ``RETURN ()``
    - and PARTIAL, whose range is ``partial`` (RFC 9394).
    """

    name: ClassVar[str] = "SORT"
    criteria: tuple[Criterion, ...] = ()
    key: SearchKey | None = None
    charset: str = "UTF-8"
    uid: bool = False
    returns: tuple[str, ...] | None = None
    partial: PartialRange | None = None
    #: RFC 5465 section 7: ``UPDATE (fetch-att ...)``, for new messages.
    update_fetch: tuple[FetchAttr, ...] = ()


@dataclass(frozen=True, slots=True)
class Thread(Command):
    """THREAD / UID THREAD (RFC 5256).  ``algorithm`` is upper case."""

    name: ClassVar[str] = "THREAD"
    algorithm: str = "REFERENCES"
    key: SearchKey | None = None
    charset: str = "UTF-8"
    uid: bool = False


@dataclass(frozen=True, slots=True)
class FetchAttr:
    """
    One FETCH data item.  ``name`` is one of FLAGS, INTERNALDATE,
    RFC822.SIZE, ENVELOPE, BODY (no section: the non-extensible
    BODYSTRUCTURE), BODYSTRUCTURE, UID, RFC822, RFC822.HEADER, RFC822.TEXT,
    BODY[] (``section`` set; ``peek`` for BODY.PEEK), BINARY[], BINARY.SIZE,
    MODSEQ, PREVIEW (RFC 8970; ``lazy`` for its LAZY modifier), EMAILID and
    THREADID (RFC 8474), SAVEDATE (RFC 8514).
    ``partial`` is ``(origin, count)``.
    """

    name: str
    section: Section | None = None
    partial: tuple[int, int] | None = None
    peek: bool = False
    lazy: bool = False


@dataclass(frozen=True, slots=True)
class Fetch(Command):
    """
    FETCH / UID FETCH, macros (ALL, FAST, FULL) already expanded;
    ``partial`` the PARTIAL modifier of UID FETCH (RFC 9394 section 3.3).
    """

    name: ClassVar[str] = "FETCH"
    set: SequenceSet = field(default_factory=lambda: SequenceSet(()))
    attrs: tuple[FetchAttr, ...] = ()
    uid: bool = False
    changedsince: int | None = None
    vanished: bool = False
    partial: PartialRange | None = None


@dataclass(frozen=True, slots=True)
class Store(Command):
    """STORE / UID STORE.  ``mode`` is "set" (FLAGS), "add" (+) or "remove" (-)."""

    name: ClassVar[str] = "STORE"
    set: SequenceSet = field(default_factory=lambda: SequenceSet(()))
    mode: Literal["set", "add", "remove"] = "set"
    flags: frozenset[str] = frozenset()
    silent: bool = False
    uid: bool = False
    unchangedsince: int | None = None


@dataclass(frozen=True, slots=True)
class Copy(Command):
    """COPY / UID COPY, and MOVE / UID MOVE (RFC 6851) when ``move``."""

    name: ClassVar[str] = "COPY"
    set: SequenceSet = field(default_factory=lambda: SequenceSet(()))
    mailbox: str = ""
    uid: bool = False
    move: bool = False


@dataclass(frozen=True, slots=True)
class Replace(Command):
    """
    REPLACE / UID REPLACE (RFC 8508): append C{message} to C{mailbox}, then
    expunge the one message C{number} (a sequence number, or a UID when
    C{uid}) names in the selected mailbox.  C{number} is a set of one
    number or ``*``.
    """

    name: ClassVar[str] = "REPLACE"
    number: SequenceSet = field(default_factory=lambda: SequenceSet(()))
    mailbox: str = ""
    message: AppendMessage = field(default_factory=lambda: AppendMessage(b""))
    uid: bool = False


@dataclass(frozen=True, slots=True)
class NotifyGroup:
    """
    One RFC 5465 event group: a mailbox filter and its events.

    ``filter`` is SELECTED, SELECTED-DELAYED, INBOXES, PERSONAL,
    SUBSCRIBED, SUBTREE or MAILBOXES (upper case); ``mailboxes`` the names
    given to SUBTREE and MAILBOXES.  ``events`` are the event names in the
    RFC's spelling (``MessageNew``, ...; an unknown one as the client
    wrote it), empty for NONE; ``fetch`` the attributes of MessageNew.
    """

    filter: str
    mailboxes: tuple[str, ...] = ()
    events: tuple[str, ...] = ()
    fetch: tuple[FetchAttr, ...] = ()


@dataclass(frozen=True, slots=True)
class Notify(Command):
    """NOTIFY (RFC 5465 section 3.1): ``groups`` is None for NOTIFY NONE."""

    name: ClassVar[str] = "NOTIFY"
    groups: tuple[NotifyGroup, ...] | None = None
    status: bool = False


# Which commands are allowed in which state (RFC 3501 section 3).
ANY_STATE = (Capability, Noop, Logout, Id)
NOT_AUTHENTICATED = (StartTLS, Login, Authenticate)
AUTHENTICATED = (
    Enable, Select, Create, Delete, Rename, Subscribe, Unsubscribe, List,
    Namespace, Status, Append, Idle, GetQuota, GetQuotaRoot, SetQuota, Compress,
    Unauthenticate, Notify, ResetKey, GenUrlAuth, UrlFetch,
)
SELECTED = (Check, Close, Unselect, Expunge, Search, Fetch, Store, Copy, Sort, Thread, Replace)
# RFC 5267 section 5: command-select.
SELECTED += (CancelUpdate,)
