"""
Creating the schema and bringing an older one up to date.

The C{schema_version} table holds one row: the layout version of the
database.  On open, L{prepare} (in one write transaction):

  - creates every table and records L{SCHEMA_VERSION} in an empty database;
  - applies the steps of L{MIGRATIONS} in order to an older database, each
    step taking version C{n} to C{n + 1};
  - refuses a database newer than this code with L{SchemaTooNew}, so an
    older server never writes into a layout it does not understand.
"""

from __future__ import annotations

from typing import Callable

from sqlalchemy import inspect, select, text
from sqlalchemy.engine import Connection

from twisted_mailhub.backends.sql.schema import SCHEMA_VERSION, metadata, schema_version


class SchemaError(Exception):
    """The database cannot be used by this version of the code."""


class SchemaTooNew(SchemaError):
    """The database was written by a newer version of twisted_mailhub."""


Migration = Callable[[Connection], None]

#: MIGRATIONS[n] upgrades a version n database to version n + 1.
MIGRATIONS: dict[int, Migration] = {}

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
    return found


def current_version(conn: Connection) -> int | None:
    """The recorded version, or C{None} in a database without our tables."""
    if not inspect(conn).has_table("schema_version"):
        return None
    version = conn.execute(select(schema_version.c.version)).scalar()
    if version is None:
        raise SchemaError("The schema_version table is empty; is this a twisted_mailhub store?")
    return int(version)
