"""InMemoryChecker, HashedPasswordChecker and ChainedChecker."""

from twisted.cred.credentials import Anonymous, UsernamePassword
from twisted.cred.error import UnauthorizedLogin, UnhandledCredentials
from twisted.internet.defer import succeed
from twisted.trial.unittest import TestCase

from twisted_mailhub.auth.checkers import ChainedChecker, HashedPasswordChecker, InMemoryChecker
from twisted_mailhub.auth.credentials import IScramVerified, ScramVerified
from twisted_mailhub.auth.schemes import hash_password
from twisted_mailhub.auth.scram import derive_scram_credentials, user_salt
from twisted_mailhub.auth.verifier import PasswordVerifier, check_password


class InMemoryCheckerTests(TestCase):
    def setUp(self):
        self.checker = InMemoryChecker({"alice": "secret", "bob": "pä ss"})

    async def test_right_password(self):
        self.assertEqual(await self.checker.requestAvatarId(UsernamePassword("alice", "secret")),
                         "alice")

    async def test_bytes_credentials_as_twisted_protocols_send_them(self):
        creds = UsernamePassword(b"bob", "pä ss".encode())
        self.assertEqual(await self.checker.requestAvatarId(creds), "bob")

    async def test_wrong_password_and_unknown_user(self):
        for creds in (UsernamePassword("alice", "Secret"), UsernamePassword("carol", "secret"),
                      UsernamePassword(b"\xff", b"secret")):
            with self.assertRaises(UnauthorizedLogin):
                await self.checker.requestAvatarId(creds)

    async def test_scram_verified_only_for_known_users(self):
        self.assertEqual(await self.checker.requestAvatarId(ScramVerified("alice")), "alice")
        with self.assertRaises(UnauthorizedLogin):
            await self.checker.requestAvatarId(ScramVerified("mallory"))

    async def test_other_credentials_are_unhandled(self):
        with self.assertRaises(UnhandledCredentials):
            await self.checker.requestAvatarId(Anonymous())

    async def test_scram_credentials_derived_with_per_user_salt(self):
        creds = await self.checker.scram_credentials("alice")
        self.assertEqual(creds, derive_scram_credentials("secret", user_salt("alice")))
        self.assertIsNone(await self.checker.scram_credentials("nobody"))


class HashedPasswordCheckerTests(TestCase):
    def setUp(self):
        self.table = {
            "alice": hash_password("secret", "BLF-CRYPT", rounds=4),
            "scram": hash_password("pencil", "SCRAM-SHA-256"),
        }
        self.lookups = []

        async def lookup(username):
            self.lookups.append(username)
            return self.table.get(username)

        self.checker = HashedPasswordChecker(lookup)

    async def test_checks_against_looked_up_hash(self):
        self.assertEqual(
            await self.checker.requestAvatarId(UsernamePassword("alice", "secret")), "alice")
        with self.assertRaises(UnauthorizedLogin):
            await self.checker.requestAvatarId(UsernamePassword("alice", "wrong"))
        self.assertEqual(self.lookups, ["alice", "alice"])

    async def test_lookup_may_return_deferred_or_value(self):
        stored = self.table["alice"]
        for lookup in (lambda u: succeed(stored), lambda u: stored):
            checker = HashedPasswordChecker(lookup)
            self.assertEqual(
                await checker.requestAvatarId(UsernamePassword("alice", "secret")), "alice")

    async def test_unknown_user_costs_a_hash_of_the_same_scheme(self):
        seen = []

        def recording(password, stored):
            seen.append(stored)
            return check_password(password, stored)

        checker = HashedPasswordChecker(self.checker._lookup,
                                        verifier=PasswordVerifier(check=recording))
        await checker.requestAvatarId(UsernamePassword("alice", "secret"))
        with self.assertRaises(UnauthorizedLogin):
            await checker.requestAvatarId(UsernamePassword("ghost", "secret"))
        self.assertEqual(len(seen), 2)
        self.assertEqual(seen[0], self.table["alice"])
        # Same scheme and the same cost (bcrypt cost 4), not the default 12.
        self.assertTrue(seen[1].startswith("{BLF-CRYPT}$2b$04$"), seen[1])
        self.assertNotEqual(seen[1], seen[0])

    async def test_scram_credentials_only_where_possible(self):
        self.assertIsNone(await self.checker.scram_credentials("alice"))  # bcrypt
        creds = await self.checker.scram_credentials("scram")
        self.assertEqual(creds.iterations, 4096)
        self.assertEqual(creds, derive_scram_credentials("pencil", creds.salt, 4096))

    async def test_lookup_errors_propagate(self):
        def broken(username):
            raise ConnectionError("database down")

        with self.assertRaises(ConnectionError):
            await HashedPasswordChecker(broken).requestAvatarId(UsernamePassword("a", "b"))


class ChainedCheckerTests(TestCase):
    def setUp(self):
        self.first = InMemoryChecker({"alice": "one"})
        self.second = HashedPasswordChecker(
            lambda u: {"bob": hash_password("two", "SSHA256"),
                       "carol": hash_password("three", "BLF-CRYPT", rounds=4)}.get(u))
        self.chain = ChainedChecker([self.first, self.second])

    def test_interfaces_are_the_union(self):
        self.assertIn(IScramVerified, self.chain.credentialInterfaces)
        self.assertEqual(len(self.chain.credentialInterfaces), 2)

    async def test_tries_each_in_turn(self):
        self.assertEqual(await self.chain.requestAvatarId(UsernamePassword("alice", "one")),
                         "alice")
        self.assertEqual(await self.chain.requestAvatarId(UsernamePassword("bob", "two")), "bob")
        self.assertEqual(await self.chain.requestAvatarId(ScramVerified("carol")), "carol")
        for creds in (UsernamePassword("bob", "one"), UsernamePassword("dave", "x"),
                      ScramVerified("dave")):
            with self.assertRaises(UnauthorizedLogin):
                await self.chain.requestAvatarId(creds)

    async def test_scram_credentials_asks_each(self):
        self.assertIsNotNone(await self.chain.scram_credentials("alice"))
        self.assertIsNone(await self.chain.scram_credentials("carol"))  # bcrypt only
        self.assertIsNone(await self.chain.scram_credentials("dave"))
