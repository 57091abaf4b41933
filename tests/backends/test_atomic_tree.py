"""
CREATE and RENAME of the SQL store racing from two servers over one
database (two backends: no lock of this process is shared between them, so
only the transactions keep the tree consistent).  SQLite, and PostgreSQL
when MAILHUB_TEST_POSTGRESQL_URL is set.
"""

from __future__ import annotations

import os

from twisted.internet import threads
from twisted.internet.defer import ensureDeferred, gatherResults
from twisted.trial import unittest

from stores import PG_URL, create_pg_database, drop_pg_database

from twisted_mailhub.backends.sql import open_backend
from twisted_mailhub.errors import MailboxExists
from twisted_mailhub.model import AppendRequest
from twisted_mailhub.testing import make_message

ROUNDS = 5


async def outcome(awaitable) -> str:
    try:
        await awaitable
    except MailboxExists:
        return "exists"
    return "ok"


class AtomicTreeTests(unittest.TestCase):
    async def database_url(self) -> str:
        path = os.path.abspath(self.mktemp())
        os.makedirs(path)
        return "sqlite:" + os.path.join(path, "mail.db")

    async def two_servers(self):
        url = await self.database_url()
        stores = []
        for _ in range(2):
            backend = open_backend(url)
            self.addCleanup(backend.close)
            stores.append(await backend.open_store("alice"))
        return stores

    async def race(self, *calls) -> list[str]:
        return await gatherResults([ensureDeferred(outcome(call)) for call in calls])

    async def test_create_one_name(self) -> None:
        one, two = await self.two_servers()
        for n in range(ROUNDS):
            name = f"Projects{n}/New"
            self.assertCountEqual(
                await self.race(one.create_mailbox(name), two.create_mailbox(name)),
                ["ok", "exists"])
        names = [info.name for info in await one.list_mailboxes()]
        self.assertEqual(len(names), len(set(names)))
        self.assertEqual(len(names), 1 + 2 * ROUNDS)

    async def test_create_siblings_under_a_new_parent(self) -> None:
        # Both create the missing "Shared"n: neither may fail for it.
        one, two = await self.two_servers()
        for n in range(ROUNDS):
            self.assertEqual(await self.race(one.create_mailbox(f"Shared{n}/Left"),
                                             two.create_mailbox(f"Shared{n}/Right")),
                             ["ok", "ok"])
        names = {info.name for info in await two.list_mailboxes()}
        for n in range(ROUNDS):
            self.assertLessEqual({f"Shared{n}", f"Shared{n}/Left", f"Shared{n}/Right"}, names)

    async def test_rename_two_to_one_name(self) -> None:
        one, two = await self.two_servers()
        for n in range(ROUNDS):
            for name, count in ((f"Left{n}", 1), (f"Right{n}", 2)):
                await one.create_mailbox(name)
                await (await one.get_mailbox(name)).append(
                    [AppendRequest(make_message(i)) for i in range(count)])
            target = f"Target{n}"
            results = await self.race(one.rename_mailbox(f"Left{n}", target),
                                      two.rename_mailbox(f"Right{n}", target))
            self.assertCountEqual(results, ["ok", "exists"])
            winner, loser = ((f"Left{n}", f"Right{n}") if results[0] == "ok"
                             else (f"Right{n}", f"Left{n}"))
            names = {info.name for info in await two.list_mailboxes()}
            self.assertIn(target, names)
            self.assertIn(loser, names)
            self.assertNotIn(winner, names)
            counts = {f"Left{n}": 1, f"Right{n}": 2}
            self.assertEqual((await one.mailbox_status(target)).messages, counts[winner])
            self.assertEqual((await one.mailbox_status(loser)).messages, counts[loser])


class PostgreSQLAtomicTreeTests(AtomicTreeTests):
    skip = None if PG_URL else "set MAILHUB_TEST_POSTGRESQL_URL to run these on PostgreSQL"

    async def database_url(self) -> str:
        url = await threads.deferToThread(create_pg_database)
        self.addCleanup(threads.deferToThread, drop_pg_database, url)
        return url
