"""
The URLAUTH mailbox access keys (L{IAccessKeys}) of the memory and SQL
backends, and the SQL upgrade from schema version 5 that adds them.
"""

from __future__ import annotations

import os

from sqlalchemy import inspect, select
from twisted.internet import threads
from twisted.trial import unittest

from stores import PG_URL, create_pg_database, drop_pg_database

from twisted_mailhub.backends.memory import MemoryBackend
from twisted_mailhub.backends.sql import open_backend
from twisted_mailhub.backends.sql.schema import SCHEMA_VERSION, schema_version
from twisted_mailhub.errors import MailboxNotFound
from twisted_mailhub.interfaces import IAccessKeys
from twisted_mailhub.model import ACCESS_KEY_BYTES, AccessKeyReset
from twisted_mailhub.testing.support import RecordingListener


class _Keys:
    async def backend(self):
        raise NotImplementedError

    async def test_keys_per_user_and_mailbox(self) -> None:
        backend = await self.backend()
        self.assertTrue(IAccessKeys.providedBy(backend))
        alice, bob = await backend.open_store("alice"), await backend.open_store("bob")
        await alice.create_mailbox("Sent")
        self.assertIsNone(await backend.access_key("alice", "INBOX"))
        inbox = await backend.access_key("alice", "INBOX", create=True)
        self.assertEqual(len(inbox), ACCESS_KEY_BYTES)
        self.assertEqual(await backend.access_key("alice", "INBOX", create=True), inbox)
        sent = await backend.access_key("alice", "Sent", create=True)
        bobs = await backend.access_key("bob", "INBOX", create=True)
        self.assertEqual(len({inbox, sent, bobs}), 3)
        # No such mailbox, no such user: nothing, and no user is made.
        self.assertIsNone(await backend.access_key("alice", "Nowhere", create=True))
        self.assertIsNone(await backend.access_key("nobody", "INBOX", create=True))
        if hasattr(backend, "list_users"):
            self.assertEqual(await backend.list_users(), ["alice", "bob"])

        new = await backend.reset_access_key("alice", "INBOX")
        self.assertNotIn(new, (inbox, sent))
        self.assertEqual(await backend.access_key("alice", "INBOX"), new)
        with self.assertRaises(MailboxNotFound):
            await backend.reset_access_key("alice", "Nowhere")

        # A rename keeps the key; a delete takes it with the mailbox.
        await alice.rename_mailbox("Sent", "Sent Mail")
        self.assertEqual(await backend.access_key("alice", "Sent Mail"), sent)
        await alice.delete_mailbox("Sent Mail")
        await alice.create_mailbox("Sent Mail")
        self.assertIsNone(await backend.access_key("alice", "Sent Mail"))

        await backend.remove_access_keys("alice")
        self.assertIsNone(await backend.access_key("alice", "INBOX"))
        self.assertEqual(await backend.access_key("bob", "INBOX"), bobs)

    async def test_reset_is_told_to_the_mailbox_listeners(self) -> None:
        # The sessions with the mailbox selected are told (RFC 4467
        # BASE.6.3.RESETKEY); those of other mailboxes are not.
        backend = await self.backend()
        alice = await backend.open_store("alice")
        await alice.create_mailbox("Sent")
        inbox, sent = await alice.get_mailbox("INBOX"), await alice.get_mailbox("Sent")
        heard, elsewhere = RecordingListener(), RecordingListener()
        backend.notifier.subscribe(inbox.key, heard)
        backend.notifier.subscribe(sent.key, elsewhere)
        origin = object()
        await backend.reset_access_key("alice", "INBOX", origin=origin)
        await backend.access_key("alice", "Sent", create=True)
        self.assertEqual(heard.events, [AccessKeyReset(origin)])
        self.assertEqual(elsewhere.events, [])

    async def test_hierarchy_node_has_no_key(self) -> None:
        backend = await self.backend()
        alice = await backend.open_store("alice")
        await alice.create_mailbox("a/b")
        await backend.access_key("alice", "a", create=True)
        await alice.delete_mailbox("a")  # has children: stays as \Noselect
        self.assertIsNone(await backend.access_key("alice", "a", create=True))


class MemoryKeysTests(_Keys, unittest.TestCase):
    async def backend(self):
        return MemoryBackend()


class SQLiteKeysTests(_Keys, unittest.TestCase):
    async def backend(self):
        self.url = "sqlite:" + os.path.abspath(self.mktemp()) + ".sqlite"
        backend = open_backend(self.url)
        self.addCleanup(lambda: backend.close())
        return backend

    async def test_kept_across_a_restart(self) -> None:
        backend = await self.backend()
        await backend.open_store("alice")
        key = await backend.access_key("alice", "INBOX", create=True)
        await backend.close()
        again = open_backend(self.url)
        self.addCleanup(again.close)
        self.assertEqual(await again.access_key("alice", "INBOX"), key)

    async def test_upgrade_from_version_5(self) -> None:
        backend = await self.backend()
        await backend.open_store("alice")

        def to_version_5(conn) -> None:
            conn.exec_driver_sql("ALTER TABLE mailboxes DROP COLUMN access_key")
            conn.execute(schema_version.update().values(version=5))

        await backend.db.write(to_version_5)
        await backend.close()
        upgraded = open_backend(self.url)
        self.addCleanup(upgraded.close)
        await upgraded.ready()
        version = await upgraded.db.read(
            lambda conn: conn.execute(select(schema_version.c.version)).scalar_one())
        self.assertEqual(version, SCHEMA_VERSION)
        columns = await upgraded.db.read(
            lambda conn: {c["name"] for c in inspect(conn).get_columns("mailboxes")})
        self.assertIn("access_key", columns)
        self.assertIsNone(await upgraded.access_key("alice", "INBOX"))
        key = await upgraded.access_key("alice", "INBOX", create=True)
        self.assertEqual(len(key), ACCESS_KEY_BYTES)


class PostgreSQLKeysTests(_Keys, unittest.TestCase):
    if not PG_URL:
        skip = "set MAILHUB_TEST_POSTGRESQL_URL to a PostgreSQL server URL"

    async def backend(self):
        url = await threads.deferToThread(create_pg_database)
        self.addCleanup(threads.deferToThread, drop_pg_database, url)
        backend = open_backend(url)
        self.addCleanup(lambda: backend.close())
        return backend
