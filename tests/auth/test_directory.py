"""Who has a mailbox: trial users, the password file and the SQL store's users."""

from __future__ import annotations

import os

from twisted.trial import unittest
from zope.interface.verify import verifyObject

from twisted_mailhub.auth.directory import IUserDirectory, UserDirectory, directory_for
from twisted_mailhub.backends.memory import MemoryBackend
from twisted_mailhub.backends.sql import open_backend
from twisted_mailhub.config import MailhubSettings


class DirectoryTests(unittest.TestCase):
    def test_provides_the_interface(self) -> None:
        self.assertTrue(verifyObject(IUserDirectory, UserDirectory([])))

    async def test_every_source_of_logins_is_asked(self) -> None:
        passwd = os.path.abspath(self.mktemp())
        with open(passwd, "w") as f:
            f.write("carol:{PLAIN}x\n")
        backend = open_backend("sqlite:" + os.path.abspath(self.mktemp()))
        self.addCleanup(backend.close)
        await backend.add_user("dave", "{PLAIN}y")
        # A user the store only opened (no password: cannot log in) is not one.
        await backend.open_store("eve")
        settings = MailhubSettings(users={"alice": "pw"}, passwd=passwd)
        users = directory_for(settings, backend)
        for name in ("alice", "carol", "dave"):
            self.assertTrue(await users.exists(name), name)
        for name in ("eve", "mallory", ""):
            self.assertFalse(await users.exists(name), name)

    async def test_a_store_without_users(self) -> None:
        users = directory_for(MailhubSettings(), MemoryBackend())
        self.assertFalse(await users.exists("alice"))

    async def test_a_failing_source_is_not_taken_for_no(self) -> None:
        async def down(name: str) -> None:
            raise ConnectionError("database down")

        with self.assertRaises(ConnectionError):
            await UserDirectory([{}.get, down]).exists("alice")
