"""
Message content: stored once, in chunks, shared by reference count.

A C{contents} row is written at APPEND with the parsed structure and the
header columns SEARCH uses; the raw bytes go into C{chunks} rows of
L{CHUNK_SIZE}, and its decoded text into the full-text index
(L{twisted_mailhub.backends.sql.fts}).  COPY adds message rows pointing at
the same content and increments its C{refcount}; once the last message of
a content is expunged, L{reap} deletes it with its chunks and its text,
soon after and in a transaction of its own.  All functions here run in a
pool thread, inside the caller's transaction.
"""

from __future__ import annotations

import json
from typing import Any, Iterable

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.engine import Connection

from twisted_mailhub.backends.sql import fts
from twisted_mailhub.backends.sql.engine import after_commit
from twisted_mailhub.backends.sql.rows import binary_rows
from twisted_mailhub.backends.sql.schema import (
    CHUNK_SIZE,
    HEADER_COLUMNS,
    chunks,
    contents,
    summaries,
)


def fold(value: str) -> str:
    """The case folding header columns are stored and searched with."""
    return value.casefold()


def parse(content: bytes) -> Any:
    """Parse C{content} once (L{twisted_mailhub.mime.parse.parse_message})."""
    from twisted_mailhub.mime.parse import parse_message

    return parse_message(content)


def sent_day(structure: Any) -> int | None:
    """The SENT* date of a message (Date: field, own zone) as an ordinal."""
    from twisted_mailhub.mime.text import sent_date

    day = sent_date(structure)
    return None if day is None else day.toordinal()


def content_row(content: bytes, structure: Any) -> dict[str, Any]:
    """The C{contents} values for a parsed message (without C{refcount})."""
    row: dict[str, Any] = {
        "size": len(content),
        "structure": json.dumps(structure.to_json(), separators=(",", ":")),
        "sent_day": sent_day(structure),
    }
    from twisted_mailhub.mime.text import header_search_values

    for field, column in HEADER_COLUMNS.items():
        # What the generic evaluator matches too: the values and, for the
        # address fields, their parsed addresses.  Rows stored before keep
        # the values alone (no migration: the column keeps its meaning).
        values = header_search_values(structure, field)
        # Values are unfolded, so "\n" cannot occur inside one of them.  A
        # NUL, which PostgreSQL text refuses and no search string holds,
        # is kept as U+FFFD.
        row[column] = ("\n".join(fold(v) for v in values).replace("\0", "\ufffd")
                       if values else None)
    return row


def insert_content(conn: Connection, content: bytes, row: dict[str, Any], refcount: int) -> int:
    """Store C{content} with its prepared C{row}; return the content id."""
    content_id = conn.execute(
        contents.insert().values(refcount=refcount, **row)
    ).inserted_primary_key[0]
    pieces = [
        {"content_id": content_id, "seq": i, "data": content[start:start + CHUNK_SIZE]}
        for i, start in enumerate(range(0, len(content), CHUNK_SIZE))
    ]
    if pieces:
        conn.execute(chunks.insert(), pieces)
    return content_id


# Built once: every RETR and FETCH of a large message runs it.
_RANGE = (
    select(chunks.c.seq, chunks.c.data)
    .join(contents, contents.c.id == chunks.c.content_id)
    .where(chunks.c.content_id == bindparam("content_id"),
           chunks.c.seq.between(bindparam("first"), bindparam("last")),
           contents.c.refcount > 0)
    .order_by(chunks.c.seq)
)


def read_range(conn: Connection, content_id: int, size: int, offset: int, length: int | None) -> bytes:
    """Bytes C{[offset, offset+length)} of a content, reading only their chunks."""
    offset = max(0, offset)
    end = size if length is None else min(size, offset + max(0, length))
    if offset >= end:
        return b""
    first, last = offset // CHUNK_SIZE, (end - 1) // CHUNK_SIZE
    # A released content (count zero) reads as gone, as if already reaped.
    params = {"content_id": content_id, "first": first, "last": last}
    if conn.dialect.driver == "psycopg":
        rows = binary_rows(conn, _RANGE, params)
    else:
        rows = conn.execute(_RANGE, params).all()
    data = b"".join(bytes(data) for _, data in rows)
    start = offset - first * CHUNK_SIZE
    return data[start:start + (end - offset)]


def load_structure(conn: Connection, content_id: int) -> dict[str, Any] | None:
    """The structure JSON of a content, or C{None} if it is gone."""
    raw = conn.execute(
        select(contents.c.structure).where(contents.c.id == content_id, contents.c.refcount > 0)
    ).scalar()
    return None if raw is None else json.loads(raw)


def _by_count(counts: dict[int, int]) -> dict[int, list[int]]:
    grouped: dict[int, list[int]] = {}
    for content_id, n in counts.items():
        grouped.setdefault(n, []).append(content_id)
    return grouped


def add_references(conn: Connection, counts: dict[int, int]) -> None:
    """
    Add to the refcount of each content id its count: one UPDATE per batch
    of contents gaining the same number (usually all of them).
    """
    for n, ids in _by_count(counts).items():
        ids.sort()
        for start in range(0, len(ids), 500):
            conn.execute(
                update(contents)
                .where(contents.c.id.in_(ids[start:start + 500]))
                .values(refcount=contents.c.refcount + n)
            )


#: The after-commit key under which released contents are handed to the
#: reaper (L{twisted_mailhub.backends.sql.reaper}).
RELEASED = "released-contents"


def release(conn: Connection, content_ids: Iterable[int]) -> None:
    """
    Drop one reference per occurrence in C{content_ids}.  Contents nobody
    refers to any more are no longer reachable (searches go through message
    rows; L{read_range} and L{load_structure} find nothing of them), and are
    deleted later by L{reap}, out of the transaction: deleting their text
    from the full-text index is most of the cost of an EXPUNGE.
    """
    counts: dict[int, int] = {}
    for content_id in content_ids:
        counts[content_id] = counts.get(content_id, 0) + 1
    if not counts:
        return
    add_references(conn, {content_id: -n for content_id, n in counts.items()})
    after_commit(conn, RELEASED, counts)


def reap(conn: Connection, content_ids: list[int] | None = None, limit: int = 500) -> list[int]:
    """
    Delete, with their chunks, summaries and text, the contents among
    C{content_ids} (or any C{limit} of them when C{None}) that nobody refers
    to; return the ids deleted.  A content is never referred to again once
    its count reached zero, so this may run at any later time.
    """
    dead_query = select(contents.c.id).where(contents.c.refcount <= 0)
    if content_ids is None:
        dead = conn.execute(dead_query.limit(limit)).scalars().all()
    else:
        dead = conn.execute(dead_query.where(contents.c.id.in_(content_ids))).scalars().all()
    if dead:
        dead = list(dead)
        if fts.indexed(conn):
            fts.delete(conn, dead)
        conn.execute(delete(summaries).where(summaries.c.content_id.in_(dead)))
        conn.execute(delete(chunks).where(chunks.c.content_id.in_(dead)))
        conn.execute(delete(contents).where(contents.c.id.in_(dead)))
    return dead


def count_contents(conn: Connection) -> int:
    """How many content rows exist (for tests and maintenance)."""
    return conn.execute(select(func.count()).select_from(contents)).scalar_one()
