"""
Identities and save dates in the SQL store (schema version 5): the upgrade
from version 4 gives every existing mailbox and message one, copies of a
message sharing its identity.  On SQLite, and on PostgreSQL when
MAILHUB_TEST_POSTGRESQL_URL is set.
"""

from __future__ import annotations

import os

from sqlalchemy import inspect, select
from twisted.internet import threads
from twisted.trial import unittest

from stores import PG_URL, create_pg_database, drop_pg_database

from twisted_mailhub.backends.sql import open_backend
from twisted_mailhub.backends.sql.schema import SCHEMA_VERSION, schema_version
from twisted_mailhub.model import AppendRequest, is_object_id
from twisted_mailhub.testing import make_message
from twisted_mailhub.testing.support import DATE


class _Upgrade:
    async def make_url(self) -> str:
        raise NotImplementedError

    async def test_upgrade_from_version_4(self) -> None:
        url = await self.make_url()
        backend = open_backend(url)
        store = await backend.open_store("alice")
        inbox = await store.get_mailbox("INBOX")
        metas = await inbox.append([AppendRequest(make_message(n), internaldate=DATE)
                                    for n in range(3)])
        await store.create_mailbox("Archive")
        archive = await store.get_mailbox("Archive")
        pairs = await inbox.copy_to([metas[0].uid], archive)

        def to_version_4(conn) -> None:
            conn.exec_driver_sql("DROP INDEX ix_messages_mailbox_object")
            for table, column in (("mailboxes", "object_id"), ("messages", "object_id"),
                                  ("messages", "saved_us")):
                conn.exec_driver_sql(f"ALTER TABLE {table} DROP COLUMN {column}")
            conn.execute(schema_version.update().values(version=4))

        await backend.db.write(to_version_4)
        await backend.close()

        upgraded = open_backend(url)
        self.addCleanup(upgraded.close)
        await upgraded.ready()
        version = await upgraded.db.read(
            lambda conn: conn.execute(select(schema_version.c.version)).scalar_one())
        self.assertEqual(version, SCHEMA_VERSION)
        indexes = await upgraded.db.read(
            lambda conn: {i["name"] for i in inspect(conn).get_indexes("messages")})
        self.assertIn("ix_messages_mailbox_object", indexes)

        store = await upgraded.open_store("alice")
        inbox, archive = await store.get_mailbox("INBOX"), await store.get_mailbox("Archive")
        boxes = [(await inbox.status()).identity, (await archive.status()).identity]
        self.assertTrue(all(is_object_id(b) for b in boxes), boxes)
        self.assertNotEqual(boxes[0], boxes[1])
        now = await inbox.metadata(await inbox.uids())
        [copy] = await archive.metadata([pairs[0][1]])
        self.assertTrue(all(is_object_id(m.identity) for m in now))
        self.assertEqual(len({m.identity for m in now}), 3)
        # The copy shares its original's content, so it is the same message.
        self.assertEqual(copy.identity, now[0].identity)
        # When they were saved is not known: the INTERNALDATE stands in.
        self.assertEqual([m.saved for m in now + [copy]], [DATE] * 4)
        # Everything else is as it was.
        self.assertEqual([(m.uid, m.flags, m.internaldate, m.size) for m in now],
                         [(m.uid, m.flags, m.internaldate, m.size) for m in metas])

        # New messages and mailboxes get their own from now on.
        [new] = await inbox.append([AppendRequest(make_message(9))])
        self.assertNotIn(new.identity, {m.identity for m in now})
        await store.create_mailbox("Later")
        later = (await (await store.get_mailbox("Later")).status()).identity
        self.assertNotIn(later, boxes)


class SQLiteUpgradeTests(_Upgrade, unittest.TestCase):
    async def make_url(self) -> str:
        path = self.mktemp()
        os.makedirs(path)
        return "sqlite:" + os.path.join(path, "mail.db")


class PostgreSQLUpgradeTests(_Upgrade, unittest.TestCase):
    skip = None if PG_URL else "set MAILHUB_TEST_POSTGRESQL_URL to a PostgreSQL server URL"

    async def make_url(self) -> str:
        url = await threads.deferToThread(create_pg_database)
        self.addCleanup(threads.deferToThread, drop_pg_database, url)
        return url
