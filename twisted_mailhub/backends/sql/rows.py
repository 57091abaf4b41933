"""
Between C{messages} rows and L{MessageMeta}: flags, dates and UID batches.

Everything here runs in a pool thread inside the caller's transaction and
reads only C{messages}, C{keywords} and C{mailboxes}, never content.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from operator import attrgetter, itemgetter
from typing import Any, Iterable, Iterator

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.engine import Connection, Row

from twisted_mailhub.backends.sql.schema import FLAG_COLUMNS, keywords, mailboxes, messages
from twisted_mailhub.errors import MailboxNotFound
from twisted_mailhub.ranges import compress
from twisted_mailhub.model import RECENT, MessageMeta, canonical_flag

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_US = timedelta(microseconds=1)

#: At most this many bound values in one statement (SQLite's old limit is 999).
BATCH = 500

#: Columns a L{MessageMeta} is built from.
META_COLUMNS = (
    messages.c.id,
    messages.c.uid,
    messages.c.modseq,
    messages.c.size,
    messages.c.internal_us,
    messages.c.internal_tz,
    messages.c.internal_day,
    messages.c.object_id,
    messages.c.saved_us,
    *(messages.c[column] for column in FLAG_COLUMNS.values()),
)


def date_columns(when: datetime) -> dict[str, int]:
    """The C{internal_*} column values for an INTERNALDATE."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    offset = when.utcoffset() or timedelta(0)
    return {
        "internal_us": (when - EPOCH) // _US,
        "internal_tz": int(offset.total_seconds()),
        "internal_day": when.date().toordinal(),
    }


# The epoch in each zone offset seen: a stored date is one addition away.
_EPOCHS: dict[int, datetime] = {}


def internaldate(us: int, tz: int) -> datetime:
    """The INTERNALDATE stored as C{internal_us}/C{internal_tz}."""
    epoch = _EPOCHS.get(tz)
    if epoch is None:
        epoch = _EPOCHS[tz] = EPOCH.astimezone(timezone(timedelta(seconds=tz)))
    try:
        # Fixed offsets have no DST: adding to the zone's epoch is exact,
        # and four times faster than fromtimestamp() and replace().
        return epoch + timedelta(microseconds=us)
    except OverflowError:
        # Past year 9999 (or before year 1) in that zone, not in UTC.
        return EPOCH + timedelta(microseconds=us)


def split_flags(flags: Iterable[str]) -> tuple[dict[str, bool], frozenset[str]]:
    """
    C{(system, keywords)}: the five flag columns' values and the keyword
    set.  \\Recent is not a stored flag and is dropped.
    """
    system = dict.fromkeys(FLAG_COLUMNS.values(), False)
    keyword_set = set()
    for flag in flags:
        flag = canonical_flag(flag)
        if flag in FLAG_COLUMNS:
            system[FLAG_COLUMNS[flag]] = True
        elif flag != RECENT:
            keyword_set.add(flag)
    return system, frozenset(keyword_set)


_FLAG_ITEMS = tuple(FLAG_COLUMNS.items())
# The flag set of each combination of the system flag columns, made once:
# loading a mailbox's metadata builds no set for messages without keywords.
_SYSTEM_SETS: dict[tuple[bool, ...], frozenset[str]] = {}


# The flag columns' values of a row (or a dict of columns) in one call.
_ROW_FLAGS = attrgetter(*(column for _, column in _FLAG_ITEMS))
_DICT_FLAGS = itemgetter(*(column for _, column in _FLAG_ITEMS))


def flags_of(row: Row | dict[str, Any], keyword_set: Iterable[str]) -> frozenset[str]:
    # Keys of _SYSTEM_SETS are tuples of the columns' values as read: 0/1
    # and False/True hash and compare alike.
    present = _ROW_FLAGS(row) if isinstance(row, Row) else _DICT_FLAGS(row)
    return _flag_set(present, keyword_set)


def _flag_set(present: tuple, keyword_set: Iterable[str]) -> frozenset[str]:
    system = _SYSTEM_SETS.get(present)
    if system is None:
        system = _SYSTEM_SETS[present] = frozenset(
            flag for (flag, _), on in zip(_FLAG_ITEMS, present) if on)
    return system | frozenset(keyword_set) if keyword_set else system


# Where each column of META_COLUMNS is in a row: SQLAlchemy's Row is
# several times faster to index than to read by attribute name.
_AT = {column.name: i for i, column in enumerate(META_COLUMNS)}
_META_VALUES = itemgetter(*(_AT[name] for name in (
    "uid", "internal_us", "internal_tz", "size", "modseq", "object_id", "saved_us")))
_META_FLAGS = itemgetter(*(_AT[column] for _, column in _FLAG_ITEMS))
#: The UID of a row that starts with META_COLUMNS.
row_uid = itemgetter(_AT["uid"])


def meta_of(row: Row, keyword_set: Iterable[str]) -> MessageMeta:
    """
    The metadata of a row whose first columns are L{META_COLUMNS}, in that
    order (as every query of this package selects them).
    """
    uid, us, tz, size, modseq, object_id, saved_us = _META_VALUES(row)
    return MessageMeta(
        uid=uid,
        flags=_flag_set(_META_FLAGS(row), keyword_set),
        internaldate=internaldate(us, tz),
        size=size,
        modseq=modseq,
        identity=object_id,
        saved=internaldate(saved_us, 0),
    )


def saved_us(when: datetime) -> int:
    """The C{saved_us} column value of a save date."""
    return (when - EPOCH) // _US


def driver_rows(conn: Connection, statement: Any) -> list[tuple]:
    """
    The rows of C{statement}, run by the database driver itself on C{conn}'s
    connection (in its transaction), as plain tuples: for statements that
    return thousands of rows (STORE 1:* ... RETURNING), where building a
    SQLAlchemy C{Row} each cost as much as the statement.  Every parameter
    of C{statement} must be a number or a boolean: they are written into
    the SQL text.  Columns come as the driver gives them (booleans as 0 or
    1 on SQLite), which L{meta_of} reads alike.
    """
    sql = str(statement.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    cursor = conn.connection.driver_connection.cursor()
    try:
        cursor.execute(sql)
        return cursor.fetchall()
    finally:
        cursor.close()


#: The psycopg text of the statements L{binary_rows} ran, compiled on first use.
_BINARY_SQL: dict[int, tuple[Any, str, Any]] = {}


def binary_rows(conn: Connection, statement: Any, params: dict[str, Any]) -> list[Any]:
    """
    The rows of C{statement} (built once, its parameters bound by name,
    none of them expanding) with C{params}, run by psycopg in C{conn}'s
    transaction with the binary format of results; as named tuples.

    For statements that read content: in the text format each byte of a
    C{bytea} crosses the socket as two hexadecimal digits that the driver
    then decodes, which halved the rate at which contents were read.
    """
    entry = _BINARY_SQL.get(id(statement))
    if entry is None or entry[0] is not statement:
        compiled = statement.compile(dialect=conn.dialect)
        entry = _BINARY_SQL[id(statement)] = (statement, str(compiled), compiled)
    _, sql, compiled = entry
    from psycopg.rows import namedtuple_row

    cursor = conn.connection.driver_connection.cursor(binary=True, row_factory=namedtuple_row)
    try:
        cursor.execute(sql, compiled.construct_params(params))
        return cursor.fetchall()
    finally:
        cursor.close()


def uid_conditions(column: Any, uids: Iterable[int]) -> Iterator[ColumnElement[bool]]:
    """
    Conditions on C{column} that together select C{uids}, each small
    enough for one statement: contiguous runs become BETWEEN.
    """
    runs = compress(sorted(set(uids)))
    singles: list[int] = []
    spans: list[tuple[int, int]] = []
    for low, high in runs:
        if low == high:
            singles.append(low)
        else:
            spans.append((low, high))
    for start in range(0, len(spans), BATCH // 2):
        yield or_(*(column.between(low, high) for low, high in spans[start:start + BATCH // 2]))
    for start in range(0, len(singles), BATCH):
        yield column.in_(singles[start:start + BATCH])


def load_rows(conn: Connection, mailbox_id: int, uids: Iterable[int] | None,
              extra: Iterable[ColumnElement[bool]] = ()) -> list[tuple[Row, frozenset[str]]]:
    """
    The message rows (L{META_COLUMNS} plus C{content_id}) and keywords of
    the existing messages among C{uids} (all when C{None}), ascending.
    """
    extra = list(extra)
    conditions = [None] if uids is None else list(uid_conditions(messages.c.uid, uids))
    rows: dict[int, Row] = {}
    found: dict[int, set[str]] = {}
    for condition in conditions:
        where = [messages.c.mailbox_id == mailbox_id, *extra]
        if condition is not None:
            where.append(condition)
        rows.update((row_uid(row), row) for row in conn.execute(
            select(*META_COLUMNS, messages.c.content_id).where(*where)))
        keyword_query = (
            select(messages.c.uid, keywords.c.keyword)
            .join(keywords, keywords.c.message_id == messages.c.id)
            .where(*where)
        )
        for uid, keyword in conn.execute(keyword_query):
            found.setdefault(uid, set()).add(keyword)
    empty: frozenset[str] = frozenset()
    return [(rows[uid], frozenset(found[uid]) if uid in found else empty)
            for uid in sorted(rows)]


def load_metas(conn: Connection, mailbox_id: int, uids: Iterable[int] | None,
               extra: Iterable[ColumnElement[bool]] = ()) -> list[MessageMeta]:
    return [meta_of(row, kws) for row, kws in load_rows(conn, mailbox_id, uids, extra)]


def lock_mailbox(conn: Connection, mailbox_id: int) -> Row:
    """
    The C{mailboxes} row, locked for the rest of the transaction (on
    servers; SQLite writers are serialised anyway).  Raises
    L{MailboxNotFound} if it was deleted or made non-selectable.
    """
    row = conn.execute(
        select(mailboxes).where(mailboxes.c.id == mailbox_id).with_for_update()
    ).first()
    if row is None or not row.selectable:
        raise MailboxNotFound("Mailbox no longer exists")
    return row
