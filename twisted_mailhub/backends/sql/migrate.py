"""
Creating the schema and bringing an older one up to date.

The C{schema_version} table holds one row: the layout version of the
database.  On open, L{prepare} (in one write transaction):

  - creates every table and records L{SCHEMA_VERSION} in an empty database;
  - applies the steps of L{MIGRATIONS} in order to an older database, each
    step taking version C{n} to C{n + 1};
  - refuses a database newer than this code with L{SchemaTooNew}, so an
    older server never writes into a layout it does not understand;
  - makes sure the full-text index (L{twisted_mailhub.backends.sql.fts})
    exists where the database can have one, creating and filling it if a
    database made without one is opened where it can be had, and refuses
    a database whose index this SQLite cannot read (no FTS5).

Version history:

  1. the first layout;
  2. the STATUS counters of C{mailboxes} (L{COUNTER_COLUMNS}) and the
     C{content_text} full-text index;
  3. C{summaries}, values derived from a content once and kept with it;
  4. the quota limits of each account, two columns of C{users}
     (L{QUOTA_COLUMNS}), NULL (the server's default) for every account;
  5. identities and save dates (RFC 8474 OBJECTID, RFC 8514 SAVEDATE):
     C{mailboxes.object_id}, C{messages.object_id} and
     C{messages.saved_us}, given to every existing row by the upgrade.
"""

from __future__ import annotations

from typing import Callable

from sqlalchemy import bindparam, case, func, inspect, select, text, update
from sqlalchemy.engine import Connection

from twisted_mailhub.backends.sql import fts
from twisted_mailhub.backends.sql.schema import (
    COUNTER_COLUMNS,
    QUOTA_COLUMNS,
    SCHEMA_VERSION,
    mailboxes,
    messages,
    metadata,
    schema_version,
    summaries,
)
from twisted_mailhub.model import new_object_id


class SchemaError(Exception):
    """The database cannot be used by this version of the code."""


class SchemaTooNew(SchemaError):
    """The database was written by a newer version of twisted_mailhub."""


Migration = Callable[[Connection], None]


def _v1_to_v2(conn: Connection) -> None:
    """
    Add and compute the STATUS counters.  (The text index is created and
    filled by L{prepare} after the steps, see L{ensure_text_index}.)
    """
    for name in COUNTER_COLUMNS:
        conn.exec_driver_sql(
            f"ALTER TABLE mailboxes ADD COLUMN {name} BIGINT NOT NULL DEFAULT 0"
        )
    compute_counters(conn)


def _v2_to_v3(conn: Connection) -> None:
    """Add the C{summaries} table; it fills as messages are first fetched."""
    summaries.create(conn)


def _v3_to_v4(conn: Connection) -> None:
    """Add the accounts' quota limits; every account follows the default."""
    for name in QUOTA_COLUMNS.values():
        conn.exec_driver_sql(f"ALTER TABLE users ADD COLUMN {name} BIGINT")


def _v4_to_v5(conn: Connection) -> None:
    """
    Add the identities and save dates, and give every existing mailbox and
    message one.  Messages sharing a content are copies of one message, so
    they share an identity.  When a message was saved is not known: its
    INTERNALDATE stands in, the date RFC 8514 section 4.3 falls back to.
    A column already there (a step that was begun by hand) is kept, and
    only rows without a value are given one.
    """
    found = inspect(conn)
    for table, column, kind, default in (
            ("mailboxes", "object_id", "VARCHAR(64)", "''"),
            ("messages", "object_id", "VARCHAR(64)", "''"),
            ("messages", "saved_us", "BIGINT", "0")):
        if column not in {c["name"] for c in found.get_columns(table)}:
            conn.exec_driver_sql(
                f"ALTER TABLE {table} ADD COLUMN {column} {kind} NOT NULL DEFAULT {default}")
    conn.execute(update(messages).where(messages.c.saved_us == 0)
                 .values(saved_us=messages.c.internal_us))
    box_ids = list(conn.execute(
        select(mailboxes.c.id).where(mailboxes.c.object_id == "")).scalars())
    if box_ids:
        conn.execute(
            update(mailboxes).where(mailboxes.c.id == bindparam("b_id"))
            .values(object_id=bindparam("b_object")),
            [{"b_id": box_id, "b_object": new_object_id()} for box_id in box_ids])
    content_ids = list(conn.execute(
        select(messages.c.content_id).where(messages.c.object_id == "").distinct()).scalars())
    if content_ids:
        conn.execute(
            update(messages).where(messages.c.content_id == bindparam("b_content"),
                                   messages.c.object_id == "")
            .values(object_id=bindparam("b_object")),
            [{"b_content": content_id, "b_object": new_object_id()}
             for content_id in content_ids])
    indexes = {index["name"] for index in inspect(conn).get_indexes("messages")}
    for index in messages.indexes:
        if index.name == "ix_messages_mailbox_object" and index.name not in indexes:
            index.create(conn)


def _v5_to_v6(conn: Connection) -> None:
    """Add the URLAUTH mailbox access keys; no mailbox has one yet."""
    if "access_key" not in {c["name"] for c in inspect(conn).get_columns("mailboxes")}:
        kind = mailboxes.c.access_key.type.compile(dialect=conn.dialect)
        conn.exec_driver_sql(f"ALTER TABLE mailboxes ADD COLUMN access_key {kind}")


#: MIGRATIONS[n] upgrades a version n database to version n + 1.
MIGRATIONS: dict[int, Migration] = {1: _v1_to_v2, 2: _v2_to_v3, 3: _v3_to_v4, 4: _v4_to_v5,
                                    5: _v5_to_v6}


def compute_counters(conn: Connection) -> None:
    """Set the counter columns of every mailbox from its messages (one UPDATE)."""
    m = messages.c

    def total(expression):
        return (
            select(func.coalesce(func.sum(expression), 0))
            .where(m.mailbox_id == mailboxes.c.id)
            .scalar_subquery()
        )

    conn.execute(update(mailboxes).values(
        message_count=total(1),
        unseen_count=total(case((m.seen, 0), else_=1)),
        deleted_count=total(case((m.deleted, 1), else_=0)),
        recent_count=total(case((m.uid >= mailboxes.c.recent_floor, 1), else_=0)),
        total_size=total(m.size),
    ))


# Any constant works: it names the lock, shared by every process opening the
# same PostgreSQL database.
_PG_LOCK_ID = 0x6D61696C687562


def prepare(
    conn: Connection,
    target: int = SCHEMA_VERSION,
    migrations: dict[int, Migration] | None = None,
) -> int:
    """
    Create or upgrade the schema on C{conn} (inside a write transaction)
    to version C{target}; return the version found before.  An empty
    database reports 0.
    """
    migrations = MIGRATIONS if migrations is None else migrations
    if conn.dialect.name == "postgresql":
        # Two servers starting at once must not both create the tables.
        conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _PG_LOCK_ID})
    found = current_version(conn)
    if found is None:
        metadata.create_all(conn)
        if fts.supported(conn.dialect.name):
            fts.create(conn)
        conn.execute(schema_version.insert().values(version=target))
        return 0
    if found > target:
        raise SchemaTooNew(
            f"The mail store has schema version {found}, newer than the "
            f"version {target} this twisted_mailhub understands; upgrade "
            "twisted_mailhub (or restore a backup made before the upgrade)."
        )
    for version in range(found, target):
        step = migrations.get(version)
        if step is None:
            raise SchemaError(f"No migration from schema version {version} to {version + 1}")
        step(conn)
        conn.execute(schema_version.update().values(version=version + 1))
    ensure_text_index(conn)
    return found


def ensure_text_index(conn: Connection) -> None:
    """
    Create and fill the full-text index if the database can have one and
    has none (a version 1 database, or one made where SQLite lacked FTS5);
    raise L{SchemaError} if it has one this SQLite cannot read.
    """
    if not fts.supported(conn.dialect.name):
        return
    if fts.present(conn):
        if not fts.usable(conn):
            raise SchemaError(
                "The mail store has a full-text index this SQLite cannot read (it "
                "lacks FTS5 with the trigram tokenizer, SQLite 3.34 or later); "
                "open it with a Python whose sqlite3 module has FTS5."
            )
    elif fts.create(conn):
        fts.fill(conn)


def current_version(conn: Connection) -> int | None:
    """The recorded version, or C{None} in a database without our tables."""
    if not inspect(conn).has_table("schema_version"):
        return None
    version = conn.execute(select(schema_version.c.version)).scalar()
    if version is None:
        raise SchemaError("The schema_version table is empty; is this a twisted_mailhub store?")
    return int(version)
