"""
SEARCH pushed down to SQL.

L{compile_key} turns the part of a search-key tree that the stored columns
answer into one SQL condition on C{messages} (joined to C{contents} for
header fields and SENT* dates).  BODY and TEXT become conditions on the
full-text index (L{twisted_mailhub.backends.sql.fts}) where the database
has one.  A tree containing anything else (BODY or TEXT without the index,
HEADER on a field without a column, ...) compiles to C{None}, and the
generic evaluator of L{twisted_mailhub.imap.search} handles it.

The semantics follow that evaluator exactly: keywords match without regard
to case, header substrings compare C{str.casefold}ed values, dates are
calendar days in the zone they were written in, and a message without a
field (or without a usable Date:) matches no positive test on it.  The
caller restricts the result to the session's view of the mailbox, so
conditions here may also match messages the session has not seen yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Sequence

from sqlalchemy import ColumnElement, and_, exists, false, func, not_, or_, select, true

from twisted_mailhub.backends.sql import fts
from twisted_mailhub.backends.sql.content import fold
from twisted_mailhub.backends.sql.rows import EPOCH
from twisted_mailhub.backends.sql.schema import (
    FLAG_COLUMNS,
    HEADER_COLUMNS,
    contents,
    keywords,
    messages,
)
from twisted_mailhub import criteria as sk
from twisted_mailhub.ranges import compress
from twisted_mailhub.model import canonical_flag

#: Sets of UIDs larger than this (\\Recent, ``$``) are left to the generic evaluator.
MAX_LISTED_UIDS = 5000
#: A UID set of more disjoint ranges than this is left to the generic evaluator.
MAX_SPANS = 200


@dataclass(frozen=True)
class Compiled:
    """
    A condition on C{messages}; C{join} when it uses C{contents} columns,
    C{text} when it uses the full-text index.
    """

    condition: ColumnElement[bool]
    join: bool
    text: bool = False


class _Unsupported(Exception):
    """Raised inside the compiler for a key SQL does not answer."""


def compile_key(key: sk.SearchKey, context: Any, dialect: str = "",
                text_index: bool = False) -> Compiled | None:
    """
    The SQL form of C{key} under C{context} (a
    L{twisted_mailhub.imap.search.SearchContext}), or C{None} when some
    part of it must be evaluated generically.  C{text_index} says whether
    the database (of C{dialect}) has the full-text index BODY and TEXT need.
    """
    compiler = _Compiler(context, dialect if text_index else None)
    try:
        condition = compiler.compile(key)
    except _Unsupported:
        return None
    return Compiled(condition, compiler.join, compiler.text)


class _Compiler:
    def __init__(self, context: Any, text_dialect: str | None = None) -> None:
        self.text_dialect = text_dialect
        self.text = False
        self.view: Sequence[int] = list(context.uids)
        self.recent = context.recent
        self.saved = context.saved
        self.now: datetime = context.now or datetime.now(timezone.utc)
        if self.now.tzinfo is None:
            self.now = self.now.replace(tzinfo=timezone.utc)
        self.join = False

    def compile(self, key: sk.SearchKey) -> ColumnElement[bool]:
        method = getattr(self, "_" + type(key).__name__.lower(), None)
        if method is None:
            raise _Unsupported(type(key).__name__)
        return method(key)

    # -- combinators -----------------------------------------------------------

    def _and(self, key: sk.And) -> ColumnElement[bool]:
        if not key.keys:
            return true()
        return and_(*(self.compile(k) for k in key.keys))

    def _or(self, key: sk.Or) -> ColumnElement[bool]:
        return or_(self.compile(key.left), self.compile(key.right))

    def _not(self, key: sk.Not) -> ColumnElement[bool]:
        # Every condition built here is NULL-free, so SQL's NOT is the
        # boolean one.
        return not_(self.compile(key.key))

    # -- message columns -------------------------------------------------------

    def _all(self, key: sk.All) -> ColumnElement[bool]:
        return true()

    def _flag(self, key: sk.Flag) -> ColumnElement[bool]:
        flag = canonical_flag(key.flag)
        if flag in FLAG_COLUMNS:
            column = messages.c[FLAG_COLUMNS[flag]]
            return column.is_(True) if key.present else column.is_(False)
        if flag.startswith("\\"):
            # A backslash name that is not a stored system flag (\Recent is
            # its own key): kept verbatim among the keywords.
            has = exists().where(
                keywords.c.message_id == messages.c.id, keywords.c.keyword == flag
            )
        else:
            if not flag.isascii():
                # SQL lower() folds ASCII only.
                raise _Unsupported("non-ASCII keyword")
            has = exists().where(
                keywords.c.message_id == messages.c.id,
                func.lower(keywords.c.keyword) == flag.casefold(),
            )
        return has if key.present else not_(has)

    def _size(self, key: sk.Size) -> ColumnElement[bool]:
        if key.op == "larger":
            return messages.c.size > key.value
        return messages.c.size < key.value

    def _modseq(self, key: sk.ModSeq) -> ColumnElement[bool]:
        return messages.c.modseq >= key.value

    def _date(self, key: sk.Date) -> ColumnElement[bool]:
        day = key.value.toordinal()
        if key.field == "saved":
            # No day column for save dates: the metadata answers it.
            raise _Unsupported("save date")
        if key.field == "internal":
            return _compare(messages.c.internal_day, key.op, day)
        self.join = True
        column = contents.c.sent_day
        return and_(column.is_not(None), _compare(column, key.op, day))

    def _identity(self, key: sk.Identity) -> ColumnElement[bool]:
        return messages.c.object_id == key.value

    def _savedateknown(self, key: sk.SaveDateKnown) -> ColumnElement[bool]:
        # Every row has its save date (schema version 5).
        return true()

    def _age(self, key: sk.Age) -> ColumnElement[bool]:
        # RFC 5032 section 2, to the second: a date with a fraction of a
        # second matches OLDER when its whole second is the target.
        target_us = (key.target(self.now) - EPOCH) // timedelta(microseconds=1)
        if key.op == "older":
            return messages.c.internal_us < target_us + 1_000_000
        return messages.c.internal_us >= target_us

    # -- UID sets --------------------------------------------------------------

    def _uid(self, key: sk.Uid) -> ColumnElement[bool]:
        if key.set.saved:
            return self._listed(self.saved)
        if not self.view:
            return false()
        # "*" is the largest UID of the session's view (as in resolve_uids);
        # messages outside the view are dropped by the caller.
        return _any_range(key.set.bounds(self.view[-1]))

    def _sequence(self, key: sk.Sequence) -> ColumnElement[bool]:
        if key.set.saved:
            return self._listed(self.saved)
        count = len(self.view)
        ranges = []
        for low, high in key.set.bounds(count):
            low, high = max(low, 1), min(high, count)
            if low <= high:
                # The view is ascending, so a run of sequence numbers is a
                # UID interval; UIDs in it outside the view are expunged.
                ranges.append((self.view[low - 1], self.view[high - 1]))
        return _any_range(ranges)

    def _recent(self, key: sk.Recent) -> ColumnElement[bool]:
        listed = self._listed(self.recent)
        return listed if key.present else not_(listed)

    def _new(self, key: sk.New) -> ColumnElement[bool]:
        return and_(self._listed(self.recent), messages.c.seen.is_(False))

    def _listed(self, uids: Any) -> ColumnElement[bool]:
        uids = sorted(set(uids))
        if len(uids) > MAX_LISTED_UIDS:
            raise _Unsupported("too many listed UIDs")
        return _any_range(compress(uids))

    # -- header columns --------------------------------------------------------

    def _header(self, key: sk.Header) -> ColumnElement[bool]:
        column_name = HEADER_COLUMNS.get(key.name.lower())
        if column_name is None or "\n" in key.value:
            raise _Unsupported("header without a column")
        self.join = True
        column = contents.c[column_name]
        needle = fold(key.value)
        if not needle:
            return column.is_not(None)
        return and_(column.is_not(None), column.contains(needle, autoescape=True))

    # -- the full-text index ---------------------------------------------------

    def _body(self, key: sk.Body) -> ColumnElement[bool]:
        return self._contains("body", key.value)

    def _text(self, key: sk.Text) -> ColumnElement[bool]:
        return self._contains("text", key.value)

    def _contains(self, field: str, needle: str) -> ColumnElement[bool]:
        if self.text_dialect is None:
            raise _Unsupported("no full-text index")
        self.text = True
        return fts.condition(self.text_dialect, field, needle)


def _compare(column: Any, op: str, value: int) -> ColumnElement[bool]:
    if op == "before":
        return column < value
    if op == "on":
        return column == value
    return column >= value


def _any_range(ranges: list[tuple[int, int]]) -> ColumnElement[bool]:
    singles = sorted({low for low, high in ranges if low == high})
    spans = [(low, high) for low, high in ranges if low != high]
    if len(spans) > MAX_SPANS:
        # SQLite parses a long OR chain into a tree deeper than it allows.
        raise _Unsupported("too many UID ranges")
    parts = [messages.c.uid.between(low, high) for low, high in spans]
    if singles:
        parts.append(messages.c.uid.in_(singles))
    return or_(*parts) if parts else false()


def search_query(mailbox_id: int, compiled: Compiled) -> Any:
    """The SELECT of matching UIDs, ascending."""
    query = select(messages.c.uid)
    if compiled.join:
        query = query.join(contents, contents.c.id == messages.c.content_id)
    return query.where(messages.c.mailbox_id == mailbox_id, compiled.condition).order_by(
        messages.c.uid
    )
