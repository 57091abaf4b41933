"""
The SQL backend: users, mailboxes and messages in one SQL database.

SQLite (a single file, the embedded default) and PostgreSQL (through
psycopg 3) are supported; see docs/backends-sql.md for the schema, its
versioning and the upgrade path.
"""

from __future__ import annotations

from twisted_mailhub.backends.sql.backend import SQLBackend, UnknownUser, UserExists
from twisted_mailhub.backends.sql.migrate import SchemaError, SchemaTooNew


def open_backend(url: str, **options) -> SQLBackend:
    """
    The L{SQLBackend} for C{url}: ``sqlite:PATH`` (a file, relative to the
    working directory or absolute) or any SQLAlchemy URL such as
    ``sqlite:///mail.db`` or ``postgresql://user@host/db``.  C{options}
    are passed to L{SQLBackend} (C{notifier}, C{pool_size}).
    """
    return SQLBackend(url, **options)


__all__ = [
    "SQLBackend",
    "SchemaError",
    "SchemaTooNew",
    "UnknownUser",
    "UserExists",
    "open_backend",
]
