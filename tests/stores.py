"""
The stores the end-to-end tests run against: memory, SQLite, mbox, Maildir, and
PostgreSQL when MAILHUB_TEST_POSTGRESQL_URL names a server (each test then
gets a database of its own, dropped afterwards; an unreachable server fails
the test rather than skipping it).
"""

from __future__ import annotations

import os
import uuid

from twisted.internet import defer, threads

PG_URL = os.environ.get("MAILHUB_TEST_POSTGRESQL_URL")


def _admin_url():
    from sqlalchemy.engine import make_url

    return make_url(PG_URL).set(drivername="postgresql+psycopg")


def create_pg_database() -> str:
    """Create a uniquely named database; return its URL."""
    from sqlalchemy import create_engine, text

    name = "mailhub_test_" + uuid.uuid4().hex[:16]
    admin = create_engine(_admin_url(), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return _admin_url().set(database=name).render_as_string(hide_password=False)


def drop_pg_database(url: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = make_url(url).database
    admin = create_engine(_admin_url(), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


async def make_store(kind: str, testcase):
    """A new, empty backend of C{kind} whose cleanup C{testcase} owns."""
    if kind == "memory":
        from twisted_mailhub.backends.memory import MemoryBackend

        return MemoryBackend()
    if kind == "sqlite":
        from twisted_mailhub.backends.sql import open_backend

        path = os.path.abspath(testcase.mktemp()) + ".sqlite"
        return open_backend("sqlite:" + path)
    if kind == "mbox":
        from twisted_mailhub.backends.mbox import MboxBackend

        root = os.path.abspath(testcase.mktemp())
        os.makedirs(root)
        return MboxBackend(root)
    if kind == "maildir":
        from twisted_mailhub.backends.maildir import MaildirBackend

        root = os.path.abspath(testcase.mktemp())
        os.makedirs(root)
        return MaildirBackend(root)
    if kind == "postgresql":
        from twisted_mailhub.backends.sql import open_backend

        url = await threads.deferToThread(create_pg_database)
        backend = open_backend(url)

        async def close_then_drop() -> None:
            # Trial runs cleanups before tearDown: close the backend here
            # (tearDown's close is then a no-op), so that writes the server
            # still has under way (summaries kept after a FETCH) finish
            # before the database goes.
            await backend.close()
            await threads.deferToThread(drop_pg_database, url)

        testcase.addCleanup(lambda: defer.ensureDeferred(close_then_drop()))
        return backend
    raise ValueError(kind)


def store_kinds() -> list[str]:
    """The persistent stores every end-to-end test class also runs against."""
    kinds = ["sqlite", "mbox", "maildir"]
    if PG_URL:
        kinds.append("postgresql")
    return kinds
