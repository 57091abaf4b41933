"""
What the SQL store keeps for quotas: each account's own limits in its users
row (schema version 4, with the upgrade from version 3), and the totals of
a tree summed from the mailbox counters.  On SQLite, and on PostgreSQL when
MAILHUB_TEST_POSTGRESQL_URL is set.
"""

from __future__ import annotations

import os

from sqlalchemy import inspect, select
from twisted.internet import threads
from twisted.trial import unittest

from stores import PG_URL, create_pg_database, drop_pg_database

from twisted_mailhub.backends.sql import UnknownUser, open_backend
from twisted_mailhub.backends.sql.quota import UnknownQuotaResource
from twisted_mailhub.backends.sql.schema import QUOTA_COLUMNS, SCHEMA_VERSION, schema_version
from twisted_mailhub.interfaces import IQuotaLimits, IUsageQuery
from twisted_mailhub.model import AppendRequest
from twisted_mailhub.testing import make_message


class _QuotaColumns:
    async def make_url(self) -> str:
        raise NotImplementedError

    async def open(self, url: str):
        backend = open_backend(url)
        self.addCleanup(backend.close)
        await backend.ready()
        return backend

    async def test_limits_of_an_account(self) -> None:
        backend = await self.open(await self.make_url())
        self.assertTrue(IQuotaLimits.providedBy(backend))
        await backend.add_user("alice", "{PLAIN}x")
        self.assertEqual(await backend.quota_limits("alice"), {})
        await backend.set_quota_limits("alice", {"storage": 2**31, "messages": None})
        self.assertEqual(await backend.quota_limits("alice"),
                         {"storage": 2**31, "messages": None})
        await backend.set_quota_limits("alice", {"messages": 0}, reset=["storage"])
        self.assertEqual(await backend.quota_limits("alice"), {"messages": 0})
        await backend.set_quota_limits("alice", {}, reset=["messages"])
        self.assertEqual(await backend.quota_limits("alice"), {})
        self.assertEqual(await backend.quota_limits("nobody"), {})
        with self.assertRaises(UnknownUser):
            await backend.set_quota_limits("nobody", {"messages": 5})
        with self.assertRaises(UnknownUser):
            await backend.set_quota_limits("nobody", {})
        with self.assertRaises(UnknownQuotaResource):
            await backend.set_quota_limits("alice", {"mailboxes": 5})
        with self.assertRaises(ValueError):
            await backend.set_quota_limits("alice", {"storage": -5})

    async def test_totals_of_a_tree(self) -> None:
        backend = await self.open(await self.make_url())
        store = await backend.open_store("alice")
        self.assertTrue(IUsageQuery.providedBy(store))
        self.assertEqual(await store.usage(), (0, 0))
        first, second = make_message(1), make_message(2)
        inbox = await store.get_mailbox("INBOX")
        metas = await inbox.append([AppendRequest(first), AppendRequest(second)])
        await store.create_mailbox("Archive")
        archive = await store.get_mailbox("Archive")
        await inbox.copy_to([metas[0].uid], archive)
        self.assertEqual(await store.usage(), (3, 2 * len(first) + len(second)))
        await inbox.move_to([metas[1].uid], archive)
        self.assertEqual(await store.usage(), (3, 2 * len(first) + len(second)))
        await store.delete_mailbox("Archive")
        self.assertEqual(await store.usage(), (1, len(first)))
        other = await backend.open_store("bob")
        self.assertEqual(await other.usage(), (0, 0))

    async def test_upgrade_from_version_3(self) -> None:
        url = await self.make_url()
        backend = open_backend(url)
        await backend.add_user("alice", "{PLAIN}x")
        store = await backend.open_store("alice")
        inbox = await store.get_mailbox("INBOX")
        await inbox.append([AppendRequest(make_message(1))])

        def to_version_3(conn) -> None:
            for column in QUOTA_COLUMNS.values():
                conn.exec_driver_sql(f"ALTER TABLE users DROP COLUMN {column}")
            conn.execute(schema_version.update().values(version=3))

        await backend.db.write(to_version_3)
        await backend.close()

        upgraded = await self.open(url)
        version = await upgraded.db.read(
            lambda conn: conn.execute(select(schema_version.c.version)).scalar_one())
        self.assertEqual(version, SCHEMA_VERSION)
        columns = await upgraded.db.read(
            lambda conn: {c["name"] for c in inspect(conn).get_columns("users")})
        self.assertLessEqual(set(QUOTA_COLUMNS.values()), columns)
        # Accounts and mail are as they were, following the default.
        self.assertEqual(await upgraded.lookup_password("alice"), "{PLAIN}x")
        self.assertEqual(await upgraded.quota_limits("alice"), {})
        self.assertEqual((await (await upgraded.open_store("alice")).usage())[0], 1)
        await upgraded.set_quota_limits("alice", {"messages": 10})
        self.assertEqual(await upgraded.quota_limits("alice"), {"messages": 10})


class SQLiteQuotaTests(_QuotaColumns, unittest.TestCase):
    async def make_url(self) -> str:
        path = self.mktemp()
        os.makedirs(path)
        return "sqlite:" + os.path.join(path, "mail.db")


class PostgreSQLQuotaTests(_QuotaColumns, unittest.TestCase):
    skip = None if PG_URL else "set MAILHUB_TEST_POSTGRESQL_URL to a PostgreSQL server URL"

    async def make_url(self) -> str:
        url = await threads.deferToThread(create_pg_database)
        self.addCleanup(threads.deferToThread, drop_pg_database, url)
        return url
