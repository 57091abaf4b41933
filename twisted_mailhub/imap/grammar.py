"""
The IMAP command grammar (RFC 3501 and RFC 9051 section 9, with the
extensions' ABNF): the values shared by commands (mailbox names, flags,
dates, sequence sets) and the parsers of the commands other than SEARCH and
FETCH, which live with the command table in L{twisted_mailhub.imap.parser}.

Each command parser takes a L{Context} positioned after the command name
and returns a L{twisted_mailhub.imap.commands} value, or raises
L{ParseError} saying what is wrong.
"""

from __future__ import annotations

import base64
import re
from datetime import date, datetime, timedelta, timezone
from typing import Callable

from twisted_mailhub.imap import commands as c
from twisted_mailhub.imap import mutf7
from twisted_mailhub.imap.framing import (
    ATOM_CHARS,
    DIGITS,
    LIST_CHARS,
    TAG_CHARS,
    Cursor,
    ParseError,
    Part,
)
from twisted_mailhub.ranges import STAR, SequenceSet
from twisted_mailhub.model import RECENT, SYSTEM_FLAGS, canonical_flag

SP, DQUOTE, BACKSLASH, LPAREN, RPAREN = 0x20, 0x22, 0x5C, 0x28, 0x29
MAX_NUMBER64 = 2**63 - 1
_SEQUENCE_CHARS = ATOM_CHARS | {ord("*")}
SEQUENCE_START = DIGITS | frozenset(b"*$")
_MONTHS = {
    m: i + 1 for i, m in enumerate(
        "JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split()
    )
}
_DATE_TIME = re.compile(
    rb"( ?[0-9]|[0-9]{2})-([A-Za-z]{3})-([0-9]{4}) "
    rb"([0-9]{2}):([0-9]{2}):([0-9]{2}) ([+-])([0-9]{2})([0-9]{2})"
)
_BASE64 = re.compile(rb"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")


class Context:
    """
    What the grammar needs to know of the session: UTF8=ACCEPT (RFC 6855).
    C{refusal} is a NO found while parsing (a well-formed argument the
    server cannot take), raised once the whole command proved well formed,
    so that a syntax error later in the line still gets BAD.
    """

    def __init__(self, cursor: Cursor, utf8: bool) -> None:
        self.c = cursor
        self.utf8 = utf8
        self.refusal: ParseError | None = None

    def refuse(self, message: str, code: str | None = None) -> None:
        """Answer NO once the command is parsed (the first refusal wins)."""
        if self.refusal is None:
            self.refusal = ParseError(message, code, "NO")


def parse_tag(cursor: Cursor) -> str:
    """The command's tag and the SP after it (RFC 9051 ``tag``)."""
    tag = cursor.take_while(TAG_CHARS)
    if not tag:
        raise ParseError("Missing tag" if cursor.at_end() else "Invalid tag")
    if not cursor.skip(SP):
        if cursor.at_end():
            raise ParseError("Expected SP after tag")
        raise ParseError("Invalid character in tag")
    return tag.decode("ascii")


def read_tag(parts: tuple[Part, ...]) -> str | None:
    """The tag of a command, or None if it has no valid tag."""
    try:
        return parse_tag(Cursor(parts))
    except ParseError:
        return None


# -- values shared by several commands ------------------------------------------


def mailbox(ctx: Context, what: str = "mailbox name") -> str:
    """A mailbox name, decoded and with INBOX normalised."""
    return _decode_name(ctx, ctx.c.astring(what))


def list_mailbox(ctx: Context) -> str:
    """RFC 9051 ``list-mailbox``: a name that may hold ``%`` and ``*``."""
    cur = ctx.c
    if cur.peek() == DQUOTE or cur.at_literal():
        raw = cur.string("mailbox pattern")
    else:
        raw = cur.take_while(LIST_CHARS)
        if not raw:
            raise cur.missing_or_invalid("mailbox pattern")
    return _decode_name(ctx, raw)


def _decode_name(ctx: Context, raw: bytes) -> str:
    if ctx.utf8:
        # RFC 6855 section 3: once UTF8=ACCEPT is enabled, names are UTF-8.
        try:
            name = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ParseError("Invalid UTF-8 mailbox name") from None
    else:
        try:
            name = mutf7.decode(raw)
        except ValueError:
            # A valid astring, so the command is well formed: it names a
            # mailbox that cannot exist, which is NO (as Dovecot and Cyrus
            # answer), not BAD.
            ctx.refuse("Invalid modified UTF-7 mailbox name", "CANNOT")
            name = raw.decode("latin-1")
    # RFC 3501 section 5.1: INBOX is case-insensitive, and so is the INBOX
    # of its children's names.
    head = name[:6].upper()
    if head == "INBOX" or head == "INBOX/":
        name = head + name[6:]
    return name


def sequence_set(ctx: Context, what: str = "sequence set") -> SequenceSet:
    text = ctx.c.take_while(_SEQUENCE_CHARS)
    if not text:
        raise ctx.c.missing_or_invalid(what)
    try:
        return SequenceSet.parse(text.decode("ascii"))
    except ValueError:
        raise ParseError(f"Invalid {what}: {text.decode('ascii')}") from None


def flag(ctx: Context) -> str:
    """A flag: ``\\`` + atom (canonical if a system flag), or a keyword atom."""
    cur = ctx.c
    if cur.skip(BACKSLASH):
        name = cur.take_while(ATOM_CHARS)
        if not name:
            raise ParseError("Invalid flag: \\")
        return canonical_flag("\\" + name.decode("ascii"))
    return cur.atom("flag").decode("ascii")


def flag_list(ctx: Context) -> list[str]:
    """``(`` [flag *(SP flag)] ``)``"""
    cur = ctx.c
    cur.expect(LPAREN, "before flag list")
    flags: list[str] = []
    if cur.skip(RPAREN):
        return flags
    flags.append(flag(ctx))
    while cur.skip(SP):
        flags.append(flag(ctx))
    cur.expect(RPAREN, "after flag list")
    return flags


def check_flags(flags: list[str], command: str) -> frozenset[str]:
    """Flags a client may set: no ``\\Recent``, no unknown ``\\`` flag in STORE."""
    for f in flags:
        if f == RECENT:
            raise ParseError(f"\\Recent cannot be set by {command}")
        if command == "STORE" and f.startswith("\\") and f not in SYSTEM_FLAGS:
            raise ParseError(f"Invalid flag: {f}")
    return frozenset(flags)


def paren_list(ctx: Context, item: Callable[[], object], what: str, *, empty: bool = True) -> list:
    """``(`` item *(SP item) ``)``; the caller's C{item} reads one item."""
    cur = ctx.c
    cur.expect(LPAREN, f"before {what}")
    items: list = []
    if cur.skip(RPAREN):
        if not empty:
            raise ParseError(f"Empty {what}")
        return items
    items.append(item())
    while cur.skip(SP):
        items.append(item())
    cur.expect(RPAREN, f"after {what}")
    return items


def search_date(ctx: Context) -> date:
    """RFC 9051 ``date``: ``d-Mon-yyyy``, optionally quoted."""
    cur = ctx.c
    if cur.peek() == DQUOTE:
        text = cur.quoted("date")
    else:
        text = cur.atom("date")
    found = re.fullmatch(rb"([0-9]{1,2})-([A-Za-z]{3})-([0-9]{4})", text)
    month = _MONTHS.get(found.group(2).decode().upper()) if found else None
    if found is None or month is None:
        raise ParseError(f"Invalid date: {text.decode('ascii', 'replace')}")
    try:
        return date(int(found.group(3)), month, int(found.group(1)))
    except ValueError:
        raise ParseError(f"Invalid date: {text.decode('ascii')}") from None


def date_time(ctx: Context) -> datetime:
    """RFC 9051 ``date-time``: ``"dd-Mon-yyyy hh:mm:ss +zzzz"``."""
    text = ctx.c.quoted("date-time")
    found = _DATE_TIME.fullmatch(text)
    month = _MONTHS.get(found.group(2).decode().upper()) if found else None
    if found is None or month is None:
        raise ParseError(f"Invalid date-time: {text.decode('ascii', 'replace')}")
    day, _, year, hh, mm, ss, sign, zh, zm = found.groups()
    try:
        offset = timedelta(hours=int(zh), minutes=int(zm))
        zone = timezone(-offset if sign == b"-" else offset)
        return datetime(int(year), month, int(day), int(hh), int(mm), int(ss), tzinfo=zone)
    except ValueError:
        raise ParseError(f"Invalid date-time: {text.decode('ascii')}") from None


def text_value(raw: bytes) -> str:
    """Identification strings (ID) are UTF-8; stray bytes are replaced."""
    return raw.decode("utf-8", "replace")


# -- commands without arguments -------------------------------------------------

SIMPLE = {
    "CAPABILITY": c.Capability, "NOOP": c.Noop, "LOGOUT": c.Logout,
    "STARTTLS": c.StartTLS, "NAMESPACE": c.Namespace, "IDLE": c.Idle,
    "CHECK": c.Check, "CLOSE": c.Close, "UNSELECT": c.Unselect,
    "EXPUNGE": c.Expunge, "UNAUTHENTICATE": c.Unauthenticate,
}


def cmd_simple(ctx: Context, tag: str, name: str) -> c.Command:
    return SIMPLE[name](tag)


# -- any state and not authenticated ---------------------------------------------


def cmd_id(ctx: Context, tag: str, name: str) -> c.Id:
    """RFC 2971: ``ID (field value ...)`` or ``ID NIL``."""
    cur = ctx.c
    cur.sp("ID parameters")
    if cur.peek() != LPAREN:
        if cur.take_while(ATOM_CHARS).upper() != b"NIL":
            raise ParseError("Expected ( or NIL for ID parameters")
        return c.Id(tag, None)

    def pair() -> tuple[str, str | None]:
        field = text_value(cur.string("ID field name"))
        cur.sp("ID field value")
        value = cur.nstring("ID field value")
        return field, None if value is None else text_value(value)

    return c.Id(tag, tuple(paren_list(ctx, pair, "ID parameters")))


def cmd_login(ctx: Context, tag: str, name: str) -> c.Login:
    ctx.c.sp("user name")
    user = ctx.c.astring("user name")
    ctx.c.sp("password")
    return c.Login(tag, user, ctx.c.astring("password"))


def cmd_authenticate(ctx: Context, tag: str, name: str) -> c.Authenticate:
    cur = ctx.c
    cur.sp("authentication mechanism")
    mechanism = cur.word("authentication mechanism")
    initial = None
    if not cur.at_end():
        # RFC 4959: the initial response, "=" standing for an empty one.
        cur.sp("initial response")
        token = cur.atom("initial response")
        if token == b"=":
            initial = b""
        elif _BASE64.fullmatch(token):
            initial = base64.b64decode(token)
        else:
            raise ParseError("Invalid base64 in initial response")
    return c.Authenticate(tag, mechanism, initial)


# -- authenticated -------------------------------------------------------------


def cmd_compress(ctx: Context, tag: str, name: str) -> c.Compress:
    """RFC 4978 section 5: ``COMPRESS SP algorithm``; DEFLATE is the one."""
    ctx.c.sp("compression mechanism")
    mechanism = ctx.c.word("compression mechanism")
    if mechanism != "DEFLATE":
        raise ParseError(f"Unknown compression mechanism: {mechanism}")
    return c.Compress(tag, mechanism)


def cmd_enable(ctx: Context, tag: str, name: str) -> c.Enable:
    ctx.c.sp("capability name")
    caps = [ctx.c.word("capability name")]
    while ctx.c.skip(SP):
        caps.append(ctx.c.word("capability name"))
    return c.Enable(tag, tuple(caps))


def cmd_select(ctx: Context, tag: str, name: str) -> c.Select:
    cur = ctx.c
    cur.sp("mailbox name")
    box = mailbox(ctx)
    condstore = False
    qresync = None
    if not cur.at_end():
        cur.sp(f"{name} parameters")
        for param in paren_list(ctx, lambda: _select_param(ctx, name), f"{name} parameters",
                                empty=False):
            if param == "CONDSTORE":
                condstore = True
            else:
                qresync = param
    return c.Select(tag, box, name == "EXAMINE", condstore, qresync)


def _select_param(ctx: Context, command: str) -> object:
    cur = ctx.c
    param = cur.word(f"{command} parameter")
    if param == "CONDSTORE":
        return param
    if param != "QRESYNC":
        raise ParseError(f"Unknown {command} parameter: {param}")
    # RFC 7162 section 3.2.5: (uidvalidity modseq [known-uids] [seq-match-data])
    cur.sp("QRESYNC parameters")
    cur.expect(LPAREN, "before QRESYNC parameters")
    uidvalidity = cur.number("UIDVALIDITY", nonzero=True)
    cur.sp("mod-sequence")
    modseq = cur.number("mod-sequence", limit=MAX_NUMBER64)
    known = None
    match = None
    if cur.skip(SP):
        if cur.peek() != LPAREN:
            known = _known_set(sequence_set(ctx, "known UIDs"), "known UIDs")
            if cur.skip(SP) and cur.peek() != LPAREN:
                raise ParseError("Expected ( before sequence match data")
        if cur.skip(LPAREN):
            seqs = sequence_set(ctx, "known sequence set")
            cur.sp("known UID set")
            match = (seqs, sequence_set(ctx, "known UID set"))
            cur.expect(RPAREN, "after sequence match data")
            # Both ascending (RFC 7162 section 3.2.5.2), pair by pair.
            if (_ascending_count(seqs, "known sequence set")
                    != _ascending_count(match[1], "known UID set")):
                raise ParseError("Known sequence set and known UID set differ in length")
    cur.expect(RPAREN, "after QRESYNC parameters")
    return (uidvalidity, modseq, known, match)


def _known_set(seqset: SequenceSet, what: str) -> SequenceSet:
    """RFC 7162 section 7: the QRESYNC sets are numbers; ``*`` (or ``$``) is not allowed."""
    if seqset.saved or any(STAR in pair for pair in seqset.ranges):
        raise ParseError(f"Invalid {what}: * is not allowed")
    return seqset


def _ascending_count(seqset: SequenceSet, what: str) -> int:
    """How many numbers C{seqset} holds, which must be ascending (and without ``*``)."""
    _known_set(seqset, what)
    count, last = 0, 0
    for low, high in seqset.bounds(0):
        if low <= last:
            raise ParseError(f"Invalid {what}: not in ascending order")
        count += high - low + 1
        last = high
    return count


_SPECIAL_USE = {
    f.lower(): f
    for f in ("\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash")
}


def cmd_create(ctx: Context, tag: str, name: str) -> c.Create:
    cur = ctx.c
    cur.sp("mailbox name")
    box = mailbox(ctx)
    uses: list[str] = []
    if not cur.at_end():
        cur.sp("CREATE parameters")

        def param() -> None:
            word = cur.word("CREATE parameter")
            if word != "USE":
                raise ParseError(f"Unknown CREATE parameter: {word}")
            # RFC 6154 section 6: USE (use-attr ...)
            cur.sp("special-use attributes")
            uses.extend(paren_list(ctx, lambda: _use_attr(ctx), "special-use attributes"))

        paren_list(ctx, param, "CREATE parameters", empty=False)
    return c.Create(tag, box, frozenset(uses))


def _use_attr(ctx: Context) -> str:
    if not ctx.c.skip(BACKSLASH):
        raise ParseError("Invalid special-use attribute")
    word = "\\" + ctx.c.atom("special-use attribute").decode("ascii")
    return _SPECIAL_USE.get(word.lower(), word)


def cmd_one_mailbox(ctx: Context, tag: str, name: str) -> c.Command:
    ctx.c.sp("mailbox name")
    box = mailbox(ctx)
    kind = {"DELETE": c.Delete, "SUBSCRIBE": c.Subscribe, "UNSUBSCRIBE": c.Unsubscribe}[name]
    return kind(tag, box)


def cmd_rename(ctx: Context, tag: str, name: str) -> c.Rename:
    ctx.c.sp("mailbox name")
    old = mailbox(ctx)
    ctx.c.sp("new mailbox name")
    return c.Rename(tag, old, mailbox(ctx, "new mailbox name"))


_SELECTION_OPTIONS = {"SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"}
_RETURN_OPTIONS = {"SUBSCRIBED", "CHILDREN", "SPECIAL-USE", "STATUS"}
STATUS_ITEMS = (
    "MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "HIGHESTMODSEQ",
    "SIZE", "DELETED", "DELETED-STORAGE", "APPENDLIMIT",
    # RFC 8474 section 4.3
    "MAILBOXID",
)


def cmd_list(ctx: Context, tag: str, name: str) -> c.List:
    """LIST and LSUB, with RFC 5258 selection and return options."""
    cur = ctx.c
    lsub = name == "LSUB"
    extended = False
    selection: list[str] = []
    cur.sp("reference name")
    if not lsub and cur.peek() == LPAREN:
        extended = True
        selection = paren_list(ctx, lambda: _option(ctx, "selection", _SELECTION_OPTIONS),
                               "selection options")
        if "RECURSIVEMATCH" in selection and not set(selection) - {"RECURSIVEMATCH", "REMOTE"}:
            # RFC 5258 section 3.1
            raise ParseError("RECURSIVEMATCH needs another selection option")
        cur.sp("reference name")
    reference = mailbox(ctx, "reference name")
    cur.sp("mailbox pattern")
    if not lsub and cur.peek() == LPAREN:
        extended = True
        patterns = paren_list(ctx, lambda: list_mailbox(ctx), "mailbox patterns", empty=False)
    else:
        patterns = [list_mailbox(ctx)]
    returns: list[str] = []
    status: list[str] = []
    if not lsub and not cur.at_end():
        cur.sp("RETURN options")
        if cur.peek_word() != "RETURN":
            raise ParseError("Expected RETURN options")
        cur.word("RETURN")
        cur.sp("RETURN options")
        extended = True

        def option() -> str:
            word = _option(ctx, "return", _RETURN_OPTIONS)
            if word == "STATUS":
                # RFC 5819: STATUS (status-att ...)
                cur.sp("STATUS items")
                status.extend(_status_items(ctx))
            return word

        returns = paren_list(ctx, option, "RETURN options")
    return c.List(
        tag, reference, tuple(patterns), lsub, frozenset(selection),
        frozenset(returns), tuple(status), extended,
    )


def _option(ctx: Context, kind: str, known: set[str]) -> str:
    word = ctx.c.word(f"LIST {kind} option")
    if word not in known:
        raise ParseError(f"Unknown LIST {kind} option: {word}")
    return word


def _status_items(ctx: Context) -> list[str]:
    def item() -> str:
        word = ctx.c.word("STATUS item")
        if word not in STATUS_ITEMS:
            raise ParseError(f"Unknown STATUS item: {word}")
        return word

    return paren_list(ctx, item, "STATUS items", empty=False)


def cmd_status(ctx: Context, tag: str, name: str) -> c.Status:
    ctx.c.sp("mailbox name")
    box = mailbox(ctx)
    ctx.c.sp("STATUS items")
    return c.Status(tag, box, tuple(_status_items(ctx)))


def cmd_append(ctx: Context, tag: str, name: str) -> c.Append:
    """APPEND, with MULTIAPPEND (RFC 3502), literal8 (RFC 3516) and CATENATE (RFC 4469)."""
    cur = ctx.c
    cur.sp("mailbox name")
    box = mailbox(ctx)
    messages = []
    while True:
        cur.sp("message literal")
        messages.append(append_message(ctx))
        if cur.at_end():
            return c.Append(tag, box, tuple(messages))


def append_message(ctx: Context) -> c.AppendMessage:
    """
    One message of APPEND after its SP: ``[flag-list SP] [date-time SP]``
    then the literal, a ``UTF8 (literal8)`` (RFC 6855 section 4) or
    ``CATENATE (parts)`` (RFC 4469 section 5).
    """
    cur = ctx.c
    flags: frozenset[str] = frozenset()
    when = None
    if cur.peek() == LPAREN:
        flags = check_flags(flag_list(ctx), "APPEND")
        cur.sp("message literal")
    if cur.peek() == DQUOTE:
        when = date_time(ctx)
        cur.sp("message literal")
    if cur.peek_word() == "CATENATE":
        cur.advance(len("CATENATE"))
        cur.sp("CATENATE parts")
        parts = tuple(paren_list(ctx, lambda: _cat_part(ctx), "CATENATE parts", empty=False))
        return c.AppendMessage(b"", flags, when, catenate=parts)
    utf8 = cur.peek_word() == "UTF8"
    if utf8:
        # RFC 6855 section 4: utf8-literal = "UTF8" SP "(" literal8 ")"
        cur.word("UTF8")
        cur.sp("UTF8 message literal")
        cur.expect(LPAREN, "before UTF8 message literal")
    if not cur.at_literal():
        raise cur.missing_or_invalid("message literal") if cur.at_end() else ParseError(
            "Expected message literal"
        )
    literal = cur.take_literal()
    if utf8:
        if not literal.binary:
            raise ParseError("UTF8 message data must be a literal8 (~{n})")
        cur.expect(RPAREN, "after UTF8 message literal")
    return c.AppendMessage(literal.data, flags, when, utf8)


def _cat_part(ctx: Context) -> bytes | c.CatenateUrl:
    """
    RFC 4469 section 5 ``cat-part``: ``TEXT`` literal or ``URL`` astring.
    A TEXT literal may be a literal8, as the message literal of APPEND may
    (RFC 3516 section 4.4).  The URL is read later: a URL that is not one
    the server can use is NO [BADURL] (section 4.1), not BAD.
    """
    cur = ctx.c
    word = cur.word("CATENATE part")
    if word == "UTF8":
        # RFC 6855 section 4: cat-part =/ utf8-literal
        cur.sp("UTF8 literal")
        cur.expect(LPAREN, "before UTF8 literal")
        if not cur.at_literal() or not (literal := cur.take_literal()).binary:
            raise ParseError("UTF8 data must be a literal8 (~{n})")
        cur.expect(RPAREN, "after UTF8 literal")
        return literal.data
    if word == "TEXT":
        cur.sp("TEXT literal")
        if not cur.at_literal():
            raise cur.missing_or_invalid("TEXT literal") if cur.at_end() else ParseError(
                "Expected literal after TEXT")
        return cur.take_literal().data
    if word == "URL":
        cur.sp("URL")
        return c.CatenateUrl(cur.astring("URL"))
    raise ParseError(f"Unknown CATENATE part: {word} (expected TEXT, URL or UTF8)")


# -- URLAUTH (RFC 4467 section 9) ------------------------------------------------

_MECHANISM = re.compile(rb"[A-Za-z0-9.-]+")


def _mechanism(ctx: Context) -> str:
    """``mechanism = "INTERNAL" / 1*(ALPHA / DIGIT / "-" / ".")``, case-insensitive."""
    word = ctx.c.atom("URLAUTH mechanism")
    if not _MECHANISM.fullmatch(word):
        raise ParseError(f"Invalid URLAUTH mechanism: {word.decode('ascii')}")
    return word.decode("ascii").upper()


def cmd_resetkey(ctx: Context, tag: str, name: str) -> c.ResetKey:
    """``RESETKEY [SP mailbox *(SP mechanism)]``"""
    cur = ctx.c
    if cur.at_end():
        return c.ResetKey(tag)
    cur.sp("mailbox name")
    box = mailbox(ctx)
    mechanisms = []
    while cur.skip(SP):
        mechanisms.append(_mechanism(ctx))
    return c.ResetKey(tag, box, tuple(mechanisms))


def cmd_genurlauth(ctx: Context, tag: str, name: str) -> c.GenUrlAuth:
    """``GENURLAUTH 1*(SP url-rump SP mechanism)``; the URLs are read by the handler."""
    cur = ctx.c
    pairs = []
    while True:
        cur.sp("URL")
        url = cur.astring("URL")
        cur.sp("URLAUTH mechanism")
        pairs.append((url, _mechanism(ctx)))
        if cur.at_end():
            return c.GenUrlAuth(tag, tuple(pairs))


def cmd_urlfetch(ctx: Context, tag: str, name: str) -> c.UrlFetch:
    """``URLFETCH 1*(SP url-full)``"""
    cur = ctx.c
    urls = []
    while True:
        cur.sp("URL")
        urls.append(cur.astring("URL"))
        if cur.at_end():
            return c.UrlFetch(tag, tuple(urls))


# -- QUOTA (RFC 9208 section 7) -------------------------------------------------


def quota_root(ctx: Context) -> str:
    """A ``quota-root-name`` (an astring, opaque to clients)."""
    return text_value(ctx.c.astring("quota root"))


def cmd_getquota(ctx: Context, tag: str, name: str) -> c.GetQuota:
    ctx.c.sp("quota root")
    return c.GetQuota(tag, quota_root(ctx))


def cmd_getquotaroot(ctx: Context, tag: str, name: str) -> c.GetQuotaRoot:
    ctx.c.sp("mailbox name")
    return c.GetQuotaRoot(tag, mailbox(ctx))


def cmd_setquota(ctx: Context, tag: str, name: str) -> c.SetQuota:
    """``SETQUOTA root (RESOURCE limit ...)``; the list may be empty."""
    cur = ctx.c
    cur.sp("quota root")
    root = quota_root(ctx)
    cur.sp("resource limits")

    def resource() -> tuple[str, int]:
        word = cur.word("resource name")
        cur.sp("resource limit")
        return word, cur.number("resource limit", limit=MAX_NUMBER64)

    return c.SetQuota(tag, root, tuple(paren_list(ctx, resource, "resource limits")))


# -- selected ------------------------------------------------------------------


def cmd_copy(ctx: Context, tag: str, name: str, uid: bool = False) -> c.Copy:
    ctx.c.sp("sequence set")
    seq = sequence_set(ctx)
    ctx.c.sp("mailbox name")
    return c.Copy(tag, seq, mailbox(ctx), uid, name == "MOVE")


def cmd_replace(ctx: Context, tag: str, name: str, uid: bool = False) -> c.Replace:
    """
    RFC 8508 section 5: ``REPLACE SP seq-number SP mailbox append-message``
    (one message: MULTIAPPEND's several are not allowed, section 4.7), and
    the same after ``UID``, where the number is a UID.
    """
    cur = ctx.c
    what = "UID" if uid else "message number"
    cur.sp(what)
    number = sequence_set(ctx, what)
    if number.saved or len(number.ranges) != 1 or number.ranges[0][0] != number.ranges[0][1]:
        raise ParseError(f"REPLACE takes one {what}, not a set: {number}")
    cur.sp("mailbox name")
    box = mailbox(ctx)
    cur.sp("message literal")
    message = append_message(ctx)
    if cur.peek() == SP:
        raise ParseError("REPLACE takes one message, not several")
    return c.Replace(tag, number, box, message, uid)


def cmd_store(ctx: Context, tag: str, name: str, uid: bool = False) -> c.Store:
    cur = ctx.c
    cur.sp("sequence set")
    seq = sequence_set(ctx)
    cur.sp("STORE data item")
    unchangedsince = None
    if cur.peek() == LPAREN:
        def modifier() -> int:
            word = cur.word("STORE modifier")
            if word != "UNCHANGEDSINCE":
                raise ParseError(f"Unknown STORE modifier: {word}")
            cur.sp("UNCHANGEDSINCE value")
            return cur.number("UNCHANGEDSINCE value", limit=MAX_NUMBER64)

        # RFC 7162 section 3.1.3
        unchangedsince = paren_list(ctx, modifier, "STORE modifiers", empty=False)[-1]
        cur.sp("STORE data item")
    item = cur.word("STORE data item")
    mode = {"+": "add", "-": "remove"}.get(item[:1], "set")
    base = item[1:] if mode != "set" else item
    if base not in ("FLAGS", "FLAGS.SILENT"):
        raise ParseError(f"Unknown STORE data item: {item}")
    cur.sp("flags")
    if cur.peek() == LPAREN:
        flags = flag_list(ctx)
    else:
        flags = [flag(ctx)]
        while cur.skip(SP):
            flags.append(flag(ctx))
    return c.Store(
        tag, seq, mode, check_flags(flags, "STORE"), base == "FLAGS.SILENT", uid,  # type: ignore[arg-type]
        unchangedsince,
    )
