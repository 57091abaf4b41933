"""
The full-text index of the SQL store: what BODY and TEXT search.

SEARCH BODY and TEXT are substring tests on decoded text, without regard to
case (RFC 3501 section 6.4.4; L{twisted_mailhub.imap.search} is the
reference).  The C{content_text} table holds, for each C{contents} row,
the folded C{header} and C{body} strings of
L{twisted_mailhub.backends.fulltext.index_text}: the very strings the
generic evaluator searches, so the index agrees with it on every script.

The index depends on the database:

  - SQLite: an FTS5 virtual table with the trigram tokenizer (SQLite 3.34
    or later), case sensitive, its rowid the content id, and
    C{detail=none}: the index keeps which rows hold a trigram but not
    where, a sixth of the size of C{detail=full} (which phrase queries
    would need) and quicker to write.  A needle with a run of three or
    more characters is a C{GLOB '*needle*'} on the column: FTS5 takes the
    rows holding all its trigrams from the index and the GLOB itself is
    then checked on each, so the answer is exact.  A shorter needle has no
    trigram; it is tested with C{instr()} on the text of the mailbox's own
    messages, each found by rowid.
  - PostgreSQL: a plain table with GIN C{pg_trgm} indexes on both columns.
    C{LIKE '%needle%'} (case sensitive, on folded text) uses them to find
    candidates and re-checks each one, so the answer is exact.  Word
    indexes (C{tsvector}) were not used: they find words, and IMAP asks
    for substrings.  Without the C{pg_trgm} extension (it needs the right
    to create it in the database) the table has no index and LIKE reads it
    whole, which is still far quicker than parsing the messages again.
  - Anything else, or an SQLite without FTS5: no table.  BODY and TEXT are
    then left to the generic evaluator.

Rows are written in the transaction of the APPEND that stores the content
(COPY shares the content, hence its row) and deleted with the content.
"""

from __future__ import annotations

import json
import weakref
from typing import Any, Iterable

from sqlalchemy import (
    ColumnElement,
    column,
    exists,
    func,
    inspect,
    literal_column,
    or_,
    select,
    table,
    text,
    true,
    union,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from twisted.logger import Logger

from twisted_mailhub.backends.fulltext import (
    MIN_INDEXED,
    NUL_STANDIN,
    fold,
    glob_pattern,
    index_text,
)
from twisted_mailhub.backends.sql.schema import chunks, contents, messages

log = Logger()

__all__ = ["MIN_INDEXED", "NUL_STANDIN", "TABLE", "condition", "create", "delete", "fill",
           "fold", "index_text", "indexed", "insert", "known", "present", "supported", "usable"]

#: The table's name on every database.
TABLE = "content_text"

#: Contents re-indexed per statement when filling the index, and the most
#: raw bytes read at once doing so.
FILL_BATCH = 200
FILL_BYTES = 16 * 1024 * 1024

_KEYS = {"sqlite": "rowid", "postgresql": "content_id"}

_SQLITE_DDL = (
    f"CREATE VIRTUAL TABLE {TABLE} USING fts5("
    "header, body, tokenize = 'trigram case_sensitive 1', detail = none)"
)
_PG_DDL = (
    f"CREATE TABLE {TABLE} ("
    " content_id BIGINT PRIMARY KEY REFERENCES contents (id),"
    " header TEXT NOT NULL,"
    " body TEXT NOT NULL)"
)
_PG_INDEXES = tuple(
    f"CREATE INDEX ix_{TABLE}_{name} ON {TABLE} USING gin ({name} gin_trgm_ops)"
    for name in ("header", "body")
)


def _table(dialect: str) -> Any:
    return table(TABLE, column(_KEYS[dialect]), column("header"), column("body"))


def supported(dialect: str) -> bool:
    """Whether this code knows an index for C{dialect}."""
    return dialect in _KEYS


# -- creating and checking -------------------------------------------------------


def present(conn: Connection) -> bool:
    """Whether the database has a C{content_text} table."""
    dialect = conn.dialect.name
    if dialect == "sqlite":
        return conn.execute(
            text("SELECT 1 FROM sqlite_master WHERE name = :name"), {"name": TABLE}
        ).first() is not None
    return inspect(conn).has_table(TABLE)


def usable(conn: Connection) -> bool:
    """Whether the present table can be read here (SQLite: FTS5 is compiled in)."""
    try:
        with conn.begin_nested():
            conn.execute(text(f"SELECT 1 FROM {TABLE} LIMIT 0"))
    except DBAPIError:
        return False
    return True


def create(conn: Connection) -> bool:
    """
    Create the table (and indexes) for the database of C{conn}, inside the
    caller's transaction; C{False} when this database cannot have one.
    """
    dialect = conn.dialect.name
    if dialect == "sqlite":
        try:
            with conn.begin_nested():
                conn.exec_driver_sql(_SQLITE_DDL)
        except DBAPIError as e:
            log.warn("SQLite lacks FTS5 with the trigram tokenizer ({error}); "
                     "BODY and TEXT searches will read every message", error=str(e.orig))
            return False
        return True
    if dialect == "postgresql":
        conn.exec_driver_sql(_PG_DDL)
        try:
            with conn.begin_nested():
                conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        except DBAPIError as e:
            log.warn("Cannot create the pg_trgm extension ({error}); BODY and TEXT "
                     "searches will scan the text table", error=str(e.orig).strip())
            return True
        for ddl in _PG_INDEXES:
            conn.exec_driver_sql(ddl)
        return True
    return False


def fill(conn: Connection) -> int:
    """
    Index every content that has no row yet, a batch at a time (holding
    the raw bytes of at most L{FILL_BATCH} messages, and no more than
    L{FILL_BYTES} unless one message is larger); return how many.
    """
    from twisted_mailhub.mime.structure import MessageStructure

    key = _table(conn.dialect.name).c[_KEYS[conn.dialect.name]]
    done, last = 0, 0
    while True:
        page = conn.execute(
            select(contents.c.id, contents.c.size)
            .where(contents.c.id > last, ~exists().where(key == contents.c.id))
            .order_by(contents.c.id)
            .limit(FILL_BATCH)
        ).all()
        if not page:
            return done
        last = page[-1].id
        batch: list[int] = []
        held = 0
        for row in page:
            batch.append(row.id)
            held += row.size
            if held >= FILL_BYTES or row is page[-1]:
                structures = dict(conn.execute(
                    select(contents.c.id, contents.c.structure).where(contents.c.id.in_(batch))
                ).all())
                pieces: dict[int, list[bytes]] = {}
                for content_id, data in conn.execute(
                    select(chunks.c.content_id, chunks.c.data)
                    .where(chunks.c.content_id.in_(batch))
                    .order_by(chunks.c.content_id, chunks.c.seq)
                ):
                    pieces.setdefault(content_id, []).append(bytes(data))
                rows = []
                for content_id in batch:
                    structure = MessageStructure.from_json(json.loads(structures[content_id]))
                    data = b"".join(pieces.get(content_id, ()))
                    rows.append((content_id, *index_text(data, structure)))
                insert(conn, rows)
                done += len(rows)
                batch, held = [], 0


# -- writing ---------------------------------------------------------------------


def insert(conn: Connection, rows: Iterable[tuple[int, str, str]]) -> None:
    """Add the (content id, header, body) rows, in one statement."""
    params = [{"k": key, "h": header, "b": body} for key, header, body in rows]
    if params:
        conn.execute(
            text(f"INSERT INTO {TABLE} ({_KEYS[conn.dialect.name]}, header, body) "
                 "VALUES (:k, :h, :b)"),
            params,
        )


def delete(conn: Connection, content_ids: list[int]) -> None:
    """Remove the rows of C{content_ids} (a batch small enough for one statement)."""
    index = _table(conn.dialect.name)
    conn.execute(index.delete().where(index.c[_KEYS[conn.dialect.name]].in_(content_ids)))


# -- searching -------------------------------------------------------------------

_known: "weakref.WeakKeyDictionary[Engine, bool]" = weakref.WeakKeyDictionary()


def known(engine: Engine) -> bool | None:
    """Whether C{engine}'s database has the index, if L{indexed} has looked."""
    return _known.get(engine)


def indexed(conn: Connection) -> bool:
    """
    Whether the database of C{conn} has the index (looked up once per
    engine: the schema is settled when the store is opened).
    """
    found = _known.get(conn.engine)
    if found is None:
        found = _known[conn.engine] = supported(conn.dialect.name) and present(conn)
    return found


def before_search(conn: Connection) -> None:
    """
    Prepare the read transaction of C{conn} for a search using the index.

    PostgreSQL does not count the cost of reading TOASTed text when it
    weighs a scan of C{content_text} against its trigram indexes, and picks
    the scan for all but very large tables: on 10,000 messages a search
    took about 50 ms reading the table and 2 to 15 ms through the indexes.
    For the rest of this transaction only (C{SET LOCAL}) it is steered to
    bitmap scans, which use the trigram indexes.
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        conn.exec_driver_sql("SET LOCAL enable_indexscan = off")


def condition(dialect: str, field: str, needle: str) -> ColumnElement[bool]:
    """
    The condition on C{messages} that its content's C{field} (C{"body"},
    or C{"text"} for header or body) contains C{needle}.
    """
    needle = fold(needle)
    if not needle:
        # The empty string is in every text (as in the generic evaluator).
        return true()
    index = _table(dialect)
    key = index.c[_KEYS[dialect]]
    columns = [index.c.body] if field == "body" else [index.c.header, index.c.body]
    if dialect == "sqlite":
        pattern = glob_pattern(needle)
        if pattern is not None:
            # One indexed GLOB per column (an OR of the two would scan).
            queries = [select(key).where(c.op("GLOB")(pattern)) for c in columns]
            return messages.c.content_id.in_(union(*queries) if len(queries) > 1 else queries[0])
        found = or_(*(func.instr(c, needle) > 0 for c in columns))
    else:
        if len(needle) >= MIN_INDEXED:
            # One query per column, as for SQLite: an OR of the two LIKEs
            # made PostgreSQL filter the rows of one index by the other
            # column (TEXT took 150 ms where BODY took 7).
            queries = [select(key).where(c.contains(needle, autoescape=True)) for c in columns]
            return messages.c.content_id.in_(union(*queries) if len(queries) > 1 else queries[0])
        found = or_(*(c.contains(needle, autoescape=True) for c in columns))
    return exists().where(key == messages.c.content_id, found)
