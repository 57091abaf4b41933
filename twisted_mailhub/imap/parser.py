"""
The sans-IO IMAP command parser: bytes from the client in, events out.

    parser = CommandParser()
    parser.receive_data(data)
    while (event := parser.next_event()) is not None:
        ...

There are no sockets, no clock and no Twisted here; the protocol layer feeds
the bytes and acts on the events.  L{twisted_mailhub.imap.framing} splits
the stream into commands, L{twisted_mailhub.imap.grammar} and this module
(the command table, SEARCH and FETCH) turn each command into a
L{twisted_mailhub.imap.commands} value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Union

from twisted_mailhub.imap import commands as c
from twisted_mailhub.imap import grammar as g
from twisted_mailhub.imap import grammar_notify
from twisted_mailhub.imap.esearch import PartialRange
from twisted_mailhub import criteria as sk
from twisted_mailhub.imap.framing import (
    DIGITS,
    CommandFrame,
    Cursor,
    Framer,
    LiteralAnnounced,
    Oversize,
    TAG_CHARS,
    ParseError,
    Part,
    RawLineFrame,
)
from twisted_mailhub.imap.grammar import LPAREN, MAX_NUMBER64, RPAREN, SP, Context
from twisted_mailhub.ranges import SequenceSet

__all__ = [
    "CommandParser", "Event", "CommandReceived", "ContinuationRequest",
    "CommandError", "RawLine", "FatalError",
]


# -- events --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CommandReceived:
    """A complete, well-formed command."""

    command: c.Command


@dataclass(frozen=True, slots=True)
class ContinuationRequest:
    """
    A synchronizing literal of C{size} bytes was announced and is
    acceptable: the server must send a ``+`` continuation request, then the
    parser waits for the literal.
    """

    tag: str | None
    size: int


@dataclass(frozen=True, slots=True)
class CommandError:
    """
    A command was malformed or refused: answer ``tag BAD [code] message``
    (``* BAD`` when C{tag} is None), or C{tag NO ...} when C{condition} says
    so.  The parser has already skipped the rest of the command.
    """

    tag: str | None
    message: str
    code: str | None = None
    condition: str = "BAD"


@dataclass(frozen=True, slots=True)
class RawLine:
    """The line requested by L{CommandParser.expect_line}, end of line stripped."""

    line: bytes


@dataclass(frozen=True, slots=True)
class FatalError:
    """The stream cannot be resynchronised; the connection must be closed."""

    message: str


Event = Union[CommandReceived, ContinuationRequest, CommandError, RawLine, FatalError]


class CommandParser:
    """
    Turns the client's bytes into L{Event}s.

    Memory stays bounded by about C{max_line_length} (the line text of one
    command) plus C{max_literal_size} (all literals of one command), plus
    whatever was received and not yet asked for with L{next_event}.
    """

    def __init__(
        self, *, max_line_length: int = 65536, max_literal_size: int = 64 * 2**20,
        utf8: bool = False, max_non_synchronizing: int | None = None,
    ) -> None:
        self._framer = Framer(max_line_length, max_literal_size, max_non_synchronizing)
        self.utf8 = utf8

    @property
    def max_literal_size(self) -> int:
        """The largest literal (and total of literals) one command may carry."""
        return self._framer.max_literal_size

    @max_literal_size.setter
    def max_literal_size(self, value: int) -> None:
        self._framer.max_literal_size = value

    @property
    def max_line_length(self) -> int:
        """The longest line text (all lines together) of one command."""
        return self._framer.max_line_length

    @max_line_length.setter
    def max_line_length(self, value: int) -> None:
        self._framer.max_line_length = value

    @property
    def buffered(self) -> int:
        """Bytes held: received and not consumed, plus the command so far."""
        return self._framer.buffered

    def receive_data(self, data: bytes) -> None:
        """Feed bytes received from the client."""
        self._framer.receive_data(data)

    def expect_line(self) -> None:
        """Return the next line as a L{RawLine} (AUTHENTICATE, IDLE's DONE)."""
        self._framer.expect_line()

    def discard_buffer(self) -> int:
        """
        Drop everything received but not yet delivered as an event, as after
        STARTTLS (RFC 9051 section 6.2.1: no command may be pipelined behind
        it).  Return the number of bytes dropped.
        """
        return self._framer.discard_buffer()

    def next_event(self) -> Event | None:
        """The next event, or None when more data is needed."""
        frame = self._framer.next_frame()
        if frame is None:
            return None
        if isinstance(frame, RawLineFrame):
            return RawLine(frame.line)
        if isinstance(frame, Oversize):
            return CommandError(g.read_tag((frame.head,)), frame.message, "TOOBIG",
                                frame.condition)
        if isinstance(frame, LiteralAnnounced):
            tag = g.read_tag(frame.parts)
            problem = check_prefix(frame.parts)
            if problem is not None:
                self._framer.abandon_command()
                return CommandError(tag, problem.message, problem.code)
            return ContinuationRequest(tag, frame.size)
        assert isinstance(frame, CommandFrame)
        if frame.parts == (b"",):
            return CommandError(None, "Empty command line")
        try:
            return CommandReceived(parse_command(frame.parts, utf8=self.utf8))
        except ParseError as e:
            return CommandError(e.tag, e.message, e.code, e.condition)


# -- the command table -----------------------------------------------------------


def parse_command(parts: tuple[Part, ...], *, utf8: bool = False) -> c.Command:
    """
    Parse one framed command.  A L{ParseError} raised has its C{tag}
    attribute set to the command's tag, or None if the tag is invalid.
    """
    if len(parts) == 1:
        fetch = _pipelined_fetch(parts[0], utf8)
        if fetch is not None:
            return fetch
    return _parse_command(parts, utf8)


# A FETCH of plain numbers, ranges and * (no literal): what downloaders send
# by the hundred, one message each.  Such commands differ in tag and set
# only, so the rest (items and modifiers) is parsed once per spelling and
# kept; the tag and set are read by a regular expression.  The tag class is
# TAG_CHARS; the set group stops where the grammar's sequence-set would
# (the SP after it is no set character), and anything the expression does
# not take goes to the full parser.
_TAG_CLASS = b"".join(re.escape(bytes([ch])) for ch in sorted(TAG_CHARS))
_PLAIN_FETCH = re.compile(
    rb"([" + _TAG_CLASS + rb"]+) (UID )?FETCH ([0-9][0-9:,*]*) ([^\r\n]+)", re.IGNORECASE)
_FETCH_SHAPES: dict[tuple[bool, bytes, bool], tuple] = {}
_MOST_SHAPES = 256


def _pipelined_fetch(line: bytes, utf8: bool) -> c.Fetch | None:
    """The FETCH C{line} is, from a kept shape (see L{_PLAIN_FETCH}); else None."""
    match = _PLAIN_FETCH.fullmatch(line)
    if match is None:
        return None
    tag, uid, set_text, rest = match.groups()
    key = (uid is not None, rest, utf8)
    shape = _FETCH_SHAPES.get(key)
    if shape is None:
        try:
            command = _parse_command((line,), utf8)
        except ParseError:
            return None  # the caller parses it again, to raise the error
        if len(_FETCH_SHAPES) >= _MOST_SHAPES:
            _FETCH_SHAPES.clear()
        _FETCH_SHAPES[key] = (command.attrs, command.changedsince, command.vanished,
                              command.partial)
        return command
    try:
        seq = SequenceSet.parse(set_text.decode("ascii"))
    except ValueError:
        return None
    attrs, changedsince, vanished, partial = shape
    return c.Fetch(tag.decode("ascii"), seq, attrs, key[0], changedsince, vanished, partial)


def _parse_command(parts: tuple[Part, ...], utf8: bool) -> c.Command:
    cursor = Cursor(parts, utf8)
    tag = None
    try:
        tag = g.parse_tag(cursor)
        name = cursor.word("command name")
        parser = _COMMANDS.get(name)
        if parser is None:
            raise ParseError(f"Unknown command: {name}")
        ctx = Context(cursor, utf8)
        command = parser(ctx, tag, name)
        cursor.finish()
        if ctx.refusal is not None:
            raise ctx.refusal
        return command
    except ParseError as e:
        e.tag = tag
        raise


def check_prefix(parts: tuple[Part, ...]) -> ParseError | None:
    """
    Check the tag and command name of a command whose synchronizing literal
    was just announced, so that a command bound to fail is refused before
    the client sends the literal.
    """
    cursor = Cursor(parts)
    try:
        g.parse_tag(cursor)
        name = cursor.word("command name")
        if name not in _COMMANDS:
            return ParseError(f"Unknown command: {name}")
        if name == "UID" and cursor.skip(SP):
            sub = cursor.word("UID command")
            if sub not in _UID_COMMANDS:
                return ParseError(f"Unknown UID command: {sub}")
    except ParseError as e:
        return e
    return None


def _uid(ctx: Context, tag: str, name: str) -> c.Command:
    ctx.c.sp("UID command")
    sub = ctx.c.word("UID command")
    if sub == "EXPUNGE":
        # RFC 4315 section 2.1
        ctx.c.sp("UID set")
        return c.Expunge(tag, g.sequence_set(ctx, "UID set"))
    parser = _UID_COMMANDS.get(sub)
    if parser is None:
        raise ParseError(f"Unknown UID command: {sub}")
    return parser(ctx, tag, sub, True)


# -- SEARCH (RFC 9051 section 6.4.4, RFC 4731, RFC 7162, RFC 5032) ---------------

_SEARCH_RETURNS = ("MIN", "MAX", "ALL", "COUNT", "SAVE", "PARTIAL",
                   # RFC 5267 section 4
                   "CONTEXT", "UPDATE")
_CHARSETS = ("US-ASCII", "UTF-8")
_SEARCH_FLAGS = {
    "ANSWERED": "\\Answered", "DELETED": "\\Deleted", "DRAFT": "\\Draft",
    "FLAGGED": "\\Flagged", "SEEN": "\\Seen",
}
_SEARCH_HEADERS = {"BCC": "Bcc", "CC": "Cc", "FROM": "From", "SUBJECT": "Subject", "TO": "To"}
_SEARCH_DATES = {
    "BEFORE": ("internal", "before"), "ON": ("internal", "on"), "SINCE": ("internal", "since"),
    "SENTBEFORE": ("sent", "before"), "SENTON": ("sent", "on"), "SENTSINCE": ("sent", "since"),
    # RFC 8514 section 4.3
    "SAVEDBEFORE": ("saved", "before"), "SAVEDON": ("saved", "on"),
    "SAVEDSINCE": ("saved", "since"),
}
# RFC 8474 section 7: objectid = 1*255(ALPHA / DIGIT / "_" / "-")
_OBJECTID_CHARS = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
MAX_SEARCH_DEPTH = 64
MAX_UID = 2**32 - 1


def _search(ctx: Context, tag: str, name: str, uid: bool = False) -> c.Search:
    cur = ctx.c
    cur.sp("search criteria")
    returns = partial = None
    update: tuple[c.FetchAttr, ...] = ()
    charset = None
    if cur.peek_word() == "RETURN":
        returns, partial, update = _return_options(ctx, "SEARCH")
        cur.sp("search criteria")
    if cur.peek_word() == "CHARSET":
        cur.word("CHARSET")
        cur.sp("charset")
        raw = cur.quoted("charset") if cur.peek() == g.DQUOTE else cur.atom("charset")
        charset = raw.decode("ascii", "replace").upper()
        if charset not in _CHARSETS:
            raise ParseError(f"Unsupported charset: {charset}",
                             "BADCHARSET (" + " ".join(_CHARSETS) + ")")
        cur.sp("search criteria")
    return c.Search(tag, _search_keys(ctx, charset), charset, uid, returns, partial, update)


def _return_options(ctx: Context, command: str
                    ) -> tuple[tuple[str, ...], PartialRange | None, tuple[c.FetchAttr, ...]]:
    """
    ``RETURN (options)`` of SEARCH (RFC 4731) and SORT (RFC 5267 section
    3): the option names, the range of a PARTIAL (RFC 9394 section 4) and
    the FETCH attributes of ``UPDATE (fetch-att ...)`` (RFC 5465 section
    7: told of each new message that joins the result).
    """
    cur = ctx.c
    cur.word("RETURN")
    cur.sp("RETURN options")
    partial: list[PartialRange] = []
    update: list[c.FetchAttr] = []

    def option() -> str:
        word = cur.word("RETURN option")
        if word not in _SEARCH_RETURNS:
            raise ParseError(f"Unknown {command} RETURN option: {word}")
        if word == "PARTIAL":
            cur.sp("PARTIAL range")
            partial.append(_partial_range(ctx))
        elif word == "UPDATE" and cur.peek_bytes(2) == b" (":
            cur.advance()
            update.extend(g.paren_list(ctx, lambda: _fetch_att(ctx), "UPDATE attributes",
                                       empty=False))
        return word

    returns = tuple(g.paren_list(ctx, option, "RETURN options"))
    # RFC 9394 section 3.1: one PARTIAL or one ALL, not both, not twice.
    if returns.count("PARTIAL") + returns.count("ALL") > 1:
        raise ParseError("At most one of PARTIAL and ALL may be given")
    return returns, (partial[0] if partial else None), tuple(update)


def _partial_range(ctx: Context) -> PartialRange:
    """``nz-number ":" nz-number`` or ``"-" nz-number ":" "-" nz-number``."""
    cur = ctx.c
    negative = cur.skip(ord("-"))
    first = cur.number("PARTIAL range", nonzero=True)
    cur.expect(ord(":"), "in PARTIAL range")
    if cur.skip(ord("-")) != negative:
        raise ParseError("PARTIAL range ends must have the same sign")
    last = cur.number("PARTIAL range", nonzero=True)
    return PartialRange(-first, -last) if negative else PartialRange(first, last)


def _search_keys(ctx: Context, charset: str | None) -> sk.SearchKey:
    """The search keys that end SEARCH, SORT and THREAD: one, or their AND."""
    reader = _SearchReader(ctx, charset)
    keys = [reader.key(0)]
    while ctx.c.skip(SP):
        keys.append(reader.key(0))
    return keys[0] if len(keys) == 1 else sk.And(tuple(keys))


# -- SORT and THREAD (RFC 5256 section 5, RFC 5267 section 5, RFC 5957) ----------


def _sort(ctx: Context, tag: str, name: str, uid: bool = False) -> c.Sort:
    """``SORT [RETURN (options)] (criteria) charset search-keys``"""
    from twisted_mailhub.imap.sort import SORT_KEYS, Criterion

    cur = ctx.c
    cur.sp("sort criteria")
    returns = partial = None
    update: tuple[c.FetchAttr, ...] = ()
    if cur.peek_word() == "RETURN":
        # RFC 5267 section 3 (ESORT): the return options of ESEARCH.
        returns, partial, update = _return_options(ctx, "SORT")
        cur.sp("sort criteria")

    def criterion() -> Criterion:
        word = cur.word("sort criterion")
        reverse = word == "REVERSE"
        if reverse:
            cur.sp("sort criterion after REVERSE")
            word = cur.word("sort criterion after REVERSE")
            if word not in SORT_KEYS:
                raise ParseError(f"Expected a sort key after REVERSE, not {word}")
        if word not in SORT_KEYS:
            raise ParseError(f"Unknown sort criterion: {word}")
        return Criterion(word, reverse)

    criteria = tuple(g.paren_list(ctx, criterion, "sort criteria", empty=False))
    cur.sp("charset")
    charset = _sort_charset(ctx)
    cur.sp("search criteria")
    return c.Sort(tag, criteria, _search_keys(ctx, charset), charset, uid, returns, partial,
                  update)


def _thread(ctx: Context, tag: str, name: str, uid: bool = False) -> c.Thread:
    """``THREAD algorithm charset search-keys``"""
    from twisted_mailhub.imap.thread import ALGORITHMS

    cur = ctx.c
    cur.sp("threading algorithm")
    algorithm = cur.word("threading algorithm")
    if algorithm not in ALGORITHMS:
        raise ParseError(f"Unknown threading algorithm: {algorithm}")
    cur.sp("charset")
    charset = _sort_charset(ctx)
    cur.sp("search criteria")
    return c.Thread(tag, algorithm, _search_keys(ctx, charset), charset, uid)


def _sort_charset(ctx: Context) -> str:
    """
    The charset SORT and THREAD require (RFC 5256 section 3).  One the
    server cannot read is NO [BADCHARSET], as the RFC answers "can't sort
    that charset"; the strings are then read as UTF-8 to check the rest.
    """
    cur = ctx.c
    raw = cur.quoted("charset") if cur.peek() == g.DQUOTE else cur.atom("charset")
    charset = raw.decode("ascii", "replace").upper()
    if charset not in _CHARSETS:
        ctx.refuse(f"Unsupported charset: {charset}",
                   "BADCHARSET (" + " ".join(_CHARSETS) + ")")
        return "UTF-8"
    return charset


class _SearchReader:
    def __init__(self, ctx: Context, charset: str | None) -> None:
        self.ctx = ctx
        self.cur = ctx.c
        self.charset = charset

    def string(self, what: str) -> str:
        raw = self.cur.astring(what)
        # Without CHARSET, UTF-8 is accepted as well as US-ASCII (its subset).
        codec = "ascii" if self.charset == "US-ASCII" else "utf-8"
        try:
            return raw.decode(codec)
        except UnicodeDecodeError:
            raise ParseError(f"Search string is not valid {self.charset or 'UTF-8'}") from None

    def arg(self, what: str) -> None:
        self.cur.sp(what)

    def key(self, depth: int) -> sk.SearchKey:
        cur = self.cur
        if depth > MAX_SEARCH_DEPTH:
            raise ParseError("Search criteria nested too deeply")
        first = cur.peek()
        if first == LPAREN:
            cur.advance()
            keys = [self.key(depth + 1)]
            while cur.skip(SP):
                keys.append(self.key(depth + 1))
            cur.expect(RPAREN, "after search keys")
            return sk.And(tuple(keys))
        if first is not None and first in g.SEQUENCE_START:
            return sk.Sequence(g.sequence_set(self.ctx))
        word = cur.word("search key")
        if word in ("ALL", "NEW", "OLD", "RECENT"):
            return {"ALL": sk.All(), "NEW": sk.New(), "OLD": sk.Recent(False),
                    "RECENT": sk.Recent(True)}[word]
        if word in _SEARCH_FLAGS:
            return sk.Flag(_SEARCH_FLAGS[word])
        if word.startswith("UN") and word[2:] in _SEARCH_FLAGS:
            return sk.Flag(_SEARCH_FLAGS[word[2:]], present=False)
        if word in ("KEYWORD", "UNKEYWORD"):
            self.arg("keyword")
            return sk.Flag(cur.atom("keyword").decode("ascii"), present=word == "KEYWORD")
        if word in _SEARCH_DATES:
            self.arg("date")
            field, op = _SEARCH_DATES[word]
            return sk.Date(field, op, g.search_date(self.ctx))  # type: ignore[arg-type]
        if word in _SEARCH_HEADERS:
            self.arg("search string")
            return sk.Header(_SEARCH_HEADERS[word], self.string("search string"))
        if word == "HEADER":
            self.arg("header field name")
            field = self.cur.astring("header field name")
            if not field.isascii():
                raise ParseError("Invalid header field name")
            self.arg("search string")
            return sk.Header(field.decode("ascii"), self.string("search string"))
        if word in ("BODY", "TEXT"):
            self.arg("search string")
            value = self.string("search string")
            return sk.Body(value) if word == "BODY" else sk.Text(value)
        if word in ("LARGER", "SMALLER"):
            self.arg("size")
            return sk.Size(word.lower(), cur.number("size", limit=MAX_NUMBER64))  # type: ignore[arg-type]
        if word == "UID":
            self.arg("UID set")
            return sk.Uid(g.sequence_set(self.ctx, "UID set"))
        if word in ("UIDAFTER", "UIDBEFORE"):
            # RFC 9738 section 3.2: UIDs greater (less) than the one given.
            # Explicit bounds, not "n+1:*", which would name the last
            # message when n is beyond it.
            self.arg("UID")
            uid = cur.number("UID", nonzero=True)
            low, high = (uid + 1, MAX_UID) if word == "UIDAFTER" else (1, uid - 1)
            if low > high:
                return sk.Not(sk.All())
            return sk.Uid(SequenceSet(((low, high),)))
        if word == "NOT":
            self.arg("search key")
            return sk.Not(self.key(depth + 1))
        if word == "OR":
            self.arg("search key")
            left = self.key(depth + 1)
            self.arg("search key")
            return sk.Or(left, self.key(depth + 1))
        if word == "MODSEQ":
            return self.modseq()
        if word in ("EMAILID", "THREADID"):
            return self.object_id(word)
        if word == "SAVEDATESUPPORTED":
            return sk.SaveDateKnown()
        if word in ("OLDER", "YOUNGER"):
            self.arg("interval")
            return sk.Age(word.lower(), cur.number("interval", nonzero=True))  # type: ignore[arg-type]
        raise ParseError(f"Unknown search key: {word}")

    def object_id(self, word: str) -> sk.SearchKey:
        """RFC 8474 section 6: ``EMAILID objectid`` / ``THREADID objectid``."""
        from twisted_mailhub.imap.objectid import identity_of_email_id

        cur = self.cur
        self.arg("object id")
        raw = cur.take_while(_OBJECTID_CHARS)
        if not raw:
            raise cur.missing_or_invalid("object id")
        if len(raw) > 255:
            raise ParseError("Object id longer than 255 characters")
        identity = identity_of_email_id(raw.decode("ascii")) if word == "EMAILID" else None
        if identity is None:
            # No THREADID is ever given (section 5.2: then SEARCH THREADID
            # matches nothing), nor an EMAILID of another form.
            return sk.Not(sk.All())
        return sk.Identity(identity)

    def modseq(self) -> sk.ModSeq:
        # RFC 7162 section 3.1.5: MODSEQ [entry-name entry-type-req] modseq
        cur = self.cur
        self.arg("mod-sequence")
        entry = entry_type = None
        if cur.peek() == g.DQUOTE:
            raw = cur.quoted("MODSEQ entry name")
            if not raw.lower().startswith(b"/flags/") or not raw.isascii():
                raise ParseError("Invalid MODSEQ entry name")
            entry = raw.decode("ascii")
            self.arg("MODSEQ entry type")
            entry_type = cur.word("MODSEQ entry type").lower()
            if entry_type not in ("priv", "shared", "all"):
                raise ParseError(f"Invalid MODSEQ entry type: {entry_type}")
            self.arg("mod-sequence")
        return sk.ModSeq(cur.number("mod-sequence", limit=MAX_NUMBER64), entry, entry_type)


# -- FETCH (RFC 9051 section 6.4.5, RFC 3516, RFC 7162) ------------------------------

_FETCH_NAME_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-")
_FETCH_SIMPLE = frozenset({
    "ENVELOPE", "FLAGS", "INTERNALDATE", "RFC822", "RFC822.HEADER", "RFC822.SIZE",
    "RFC822.TEXT", "BODY", "BODYSTRUCTURE", "UID", "MODSEQ",
    # RFC 8474 section 5.3, RFC 8514 section 4.2
    "EMAILID", "THREADID", "SAVEDATE",
})
_FAST = (c.FetchAttr("FLAGS"), c.FetchAttr("INTERNALDATE"), c.FetchAttr("RFC822.SIZE"))
# RFC 3501 section 6.4.5
_MACROS = {
    "FAST": _FAST,
    "ALL": _FAST + (c.FetchAttr("ENVELOPE"),),
    "FULL": _FAST + (c.FetchAttr("ENVELOPE"), c.FetchAttr("BODY")),
}


def _fetch(ctx: Context, tag: str, name: str, uid: bool = False) -> c.Fetch:
    cur = ctx.c
    cur.sp("sequence set")
    seq = g.sequence_set(ctx)
    cur.sp("FETCH attributes")
    if cur.peek() == LPAREN:
        attrs = tuple(g.paren_list(ctx, lambda: _fetch_att(ctx), "FETCH attributes", empty=False))
    elif cur.peek_word() in _MACROS:
        attrs = _MACROS[cur.word("FETCH macro")]
    else:
        attrs = (_fetch_att(ctx),)
    changedsince = None
    vanished = False
    partial = None
    if not cur.at_end():
        cur.sp("FETCH modifiers")
        for modifier in g.paren_list(ctx, lambda: _fetch_modifier(ctx), "FETCH modifiers",
                                     empty=False):
            if modifier is None:
                vanished = True
            elif isinstance(modifier, PartialRange):
                if partial is not None:
                    raise ParseError("PARTIAL given twice")
                partial = modifier
            else:
                changedsince = modifier
    # RFC 7162 section 3.2.6
    if vanished and not uid:
        raise ParseError("VANISHED is only allowed in UID FETCH")
    if vanished and changedsince is None:
        raise ParseError("VANISHED requires CHANGEDSINCE")
    # RFC 9394 section 3.3: a modifier of UID FETCH.
    if partial is not None and not uid:
        raise ParseError("PARTIAL is only allowed in UID FETCH")
    return c.Fetch(tag, seq, attrs, uid, changedsince, vanished, partial)


_FETCH_MODIFIERS = ("CHANGEDSINCE", "VANISHED", "PARTIAL")


def _fetch_modifier(ctx: Context) -> int | PartialRange | None:
    word = ctx.c.word("FETCH modifier")
    if word == "VANISHED":
        return None
    if word == "PARTIAL":
        ctx.c.sp("PARTIAL range")
        return _partial_range(ctx)
    if word != "CHANGEDSINCE":
        raise ParseError(f"Unknown FETCH modifier: {word}")
    ctx.c.sp("CHANGEDSINCE value")
    return ctx.c.number("CHANGEDSINCE value", limit=MAX_NUMBER64)


def _fetch_att(ctx: Context) -> c.FetchAttr:
    cur = ctx.c
    raw = cur.take_while(_FETCH_NAME_CHARS)
    if not raw:
        raise cur.missing_or_invalid("FETCH attribute")
    name = raw.decode("ascii").upper()
    if name in _FETCH_SIMPLE and not (name == "BODY" and cur.peek() == ord("[")):
        return c.FetchAttr(name)
    if name == "PREVIEW":
        return c.FetchAttr(name, lazy=_preview_modifiers(ctx))
    if name in ("BODY", "BODY.PEEK"):
        cur.expect(ord("["), f"after {name}")
        section = _section(ctx)
        return c.FetchAttr("BODY[]", section, _partial(ctx), peek=name == "BODY.PEEK")
    if name in ("BINARY", "BINARY.PEEK", "BINARY.SIZE"):
        # RFC 3516 section 4.1: section-binary = "[" [section-part] "]"
        cur.expect(ord("["), f"after {name}")
        part = _section_part(ctx) if cur.peek() != ord("]") else ()
        cur.expect(ord("]"), f"after {name} section")
        section = c.Section(part)
        if name == "BINARY.SIZE":
            return c.FetchAttr(name, section)
        return c.FetchAttr("BINARY[]", section, _partial(ctx), peek=name == "BINARY.PEEK")
    raise ParseError(f"Unknown FETCH attribute: {raw.decode('ascii')}")


def _preview_modifiers(ctx: Context) -> bool:
    """
    RFC 8970 section 6: ``PREVIEW [SP "(" preview-mod *(SP preview-mod) ")"]``,
    LAZY the one modifier; whether it was given.  A list of FETCH modifiers
    is not PREVIEW's (FETCH 1 PREVIEW (CHANGEDSINCE 5)).
    """
    cur = ctx.c
    if cur.peek_bytes(2) != b" (":
        return False
    mark = cur.mark()
    cur.advance(2)
    word = cur.peek_word()
    cur.reset(mark)
    if word in _FETCH_MODIFIERS:
        return False
    cur.advance()

    def modifier() -> str:
        word = cur.word("PREVIEW modifier")
        if word != "LAZY":
            raise ParseError(f"Unknown PREVIEW modifier: {word}")
        return word

    g.paren_list(ctx, modifier, "PREVIEW modifiers", empty=False)
    return True


def _section_part(ctx: Context) -> tuple[int, ...]:
    cur = ctx.c
    part = [cur.number("section part", nonzero=True)]
    while cur.peek_bytes(2)[:1] == b"." and cur.peek_bytes(2)[1:] in _DIGIT_BYTES:
        cur.advance()
        part.append(cur.number("section part", nonzero=True))
    return tuple(part)


_DIGIT_BYTES = {bytes((d,)) for d in DIGITS}
_SECTION_TEXTS = ("HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME")


def _section(ctx: Context) -> c.Section:
    """RFC 9051 ``section-spec`` after the ``[``, through the ``]``."""
    cur = ctx.c
    if cur.skip(ord("]")):
        return c.Section()
    part: tuple[int, ...] = ()
    if cur.peek() in DIGITS:
        part = _section_part(ctx)
        if cur.skip(ord("]")):
            return c.Section(part)
        if not cur.skip(ord(".")):
            raise ParseError("Expected ] after section")
    raw = cur.take_while(_FETCH_NAME_CHARS)
    text = raw.decode("ascii").upper()
    if text not in _SECTION_TEXTS or (text == "MIME" and not part):
        raise ParseError(f"Invalid section: {raw.decode('ascii') or 'empty'}")
    fields: tuple[str, ...] = ()
    if text.startswith("HEADER.FIELDS"):
        cur.sp("header field names")

        def field() -> str:
            name = cur.astring("header field name")
            if not name.isascii():
                raise ParseError("Invalid header field name")
            return name.decode("ascii").upper()

        fields = tuple(g.paren_list(ctx, field, "header field names", empty=False))
    cur.expect(ord("]"), "after section")
    return c.Section(part, text, fields)


def parse_section(text: bytes) -> c.Section:
    """
    A section-spec on its own (as an IMAP URL's ``;SECTION=`` holds one,
    RFC 5092), e.g. ``1.2.MIME`` or ``HEADER.FIELDS (FROM)``.  Raises
    L{ParseError}.
    """
    if b"]" in text or b"\r" in text or b"\n" in text:
        raise ParseError("Invalid section")
    cursor = Cursor((text + b"]",))
    section = _section(Context(cursor, False))
    cursor.finish()
    return section


def _partial(ctx: Context) -> tuple[int, int] | None:
    """``<origin.count>``"""
    cur = ctx.c
    if not cur.skip(ord("<")):
        return None
    origin = cur.number("partial origin", limit=MAX_NUMBER64)
    cur.expect(ord("."), "in partial range")
    count = cur.number("partial length", nonzero=True, limit=MAX_NUMBER64)
    cur.expect(ord(">"), "after partial range")
    return origin, count


_COMMANDS: dict[str, Callable[[Context, str, str], c.Command]] = {
    **{name: g.cmd_simple for name in g.SIMPLE},
    "ID": g.cmd_id, "LOGIN": g.cmd_login, "AUTHENTICATE": g.cmd_authenticate,
    "SORT": _sort, "THREAD": _thread,
    "ENABLE": g.cmd_enable, "SELECT": g.cmd_select, "EXAMINE": g.cmd_select,
    "CREATE": g.cmd_create, "DELETE": g.cmd_one_mailbox,
    "SUBSCRIBE": g.cmd_one_mailbox, "UNSUBSCRIBE": g.cmd_one_mailbox,
    "RENAME": g.cmd_rename, "LIST": g.cmd_list, "LSUB": g.cmd_list,
    "STATUS": g.cmd_status, "APPEND": g.cmd_append, "COPY": g.cmd_copy,
    "MOVE": g.cmd_copy, "STORE": g.cmd_store, "SEARCH": _search, "FETCH": _fetch,
    "UID": _uid,
    # RFC 8508 section 5
    "REPLACE": g.cmd_replace,
    "GETQUOTA": g.cmd_getquota, "GETQUOTAROOT": g.cmd_getquotaroot, "SETQUOTA": g.cmd_setquota,
    "COMPRESS": g.cmd_compress,
    "RESETKEY": g.cmd_resetkey, "GENURLAUTH": g.cmd_genurlauth, "URLFETCH": g.cmd_urlfetch,
    # RFC 5267 section 4.3.5
    "CANCELUPDATE": lambda ctx, tag, name: _cancelupdate(ctx, tag),
    # RFC 5465 section 8
    "NOTIFY": lambda ctx, tag, name: grammar_notify.cmd_notify(ctx, tag, _fetch_att),
}


def _cancelupdate(ctx: Context, tag: str) -> c.CancelUpdate:
    """``CANCELUPDATE 1*(SP quoted)``"""
    cur = ctx.c
    tags = []
    cur.sp("tag")
    while True:
        if cur.peek() != g.DQUOTE:
            raise cur.missing_or_invalid("quoted tag")
        tags.append(cur.quoted("tag").decode("utf-8", "replace"))
        if not cur.skip(SP):
            return c.CancelUpdate(tag, tuple(tags))
_UID_COMMANDS: dict[str, Callable[..., c.Command]] = {
    "COPY": g.cmd_copy, "MOVE": g.cmd_copy, "STORE": g.cmd_store,
    "SEARCH": _search, "FETCH": _fetch, "EXPUNGE": _uid,
    "SORT": _sort, "THREAD": _thread, "REPLACE": g.cmd_replace,
}
