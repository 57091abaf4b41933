"""run_sasl with a real Portal, MailhubRealm and checkers."""

from twisted.cred.portal import Portal
from twisted.trial.unittest import TestCase

from twisted_mailhub.auth.checkers import ChainedChecker, HashedPasswordChecker, InMemoryChecker
from twisted_mailhub.auth.realm import MailhubRealm
from twisted_mailhub.auth.sasl import (
    SASLCancelled,
    SASLFailure,
    UnknownMechanism,
    run_sasl,
    sasl_mechanisms,
    sends_plaintext,
)
from twisted_mailhub.auth.schemes import hash_password
from twisted_mailhub.auth.scramclient import ScramSha256Client
from twisted_mailhub.interfaces import IMailStore


def test_advertised_mechanisms():
    assert sasl_mechanisms(secure=True) == ["SCRAM-SHA-256", "PLAIN", "LOGIN"]
    assert sasl_mechanisms(secure=False) == ["SCRAM-SHA-256"]
    assert sends_plaintext("plain") and not sends_plaintext("SCRAM-SHA-256")


class FakeBackend:
    def __init__(self):
        self.opened = []

    async def open_store(self, username):
        self.opened.append(username)
        return f"store:{username}"


class Client:
    """The protocol side: records challenges, answers from a script or a function."""

    def __init__(self, answers=()):
        self.challenges = []
        self.answers = list(answers)

    def send_challenge(self, data):
        self.challenges.append(data)

    async def receive_response(self):
        answer = self.answers.pop(0)
        if callable(answer):
            answer = answer(self.challenges[-1])
        if answer == b"*":
            raise SASLCancelled()
        return answer


class RunSaslTests(TestCase):
    def setUp(self):
        self.backend = FakeBackend()
        bcrypt_users = {"bea": hash_password("bee", "BLF-CRYPT", rounds=4)}
        self.portal = Portal(MailhubRealm(self.backend), [ChainedChecker([
            InMemoryChecker({"alice": "wonderland", "user": "pencil"}),
            HashedPasswordChecker(bcrypt_users.get),
        ])])

    async def sasl(self, mechanism, initial, client, **kw):
        return await run_sasl(mechanism, initial, self.portal, client.send_challenge,
                              client.receive_response, IMailStore, **kw)

    async def test_plain_initial_response(self):
        avatar_id, store, logout = await self.sasl("PLAIN", b"\0alice\0wonderland", Client())
        self.assertEqual((avatar_id, store), ("alice", "store:alice"))
        self.assertEqual(self.backend.opened, ["alice"])
        logout()

    async def test_plain_after_empty_challenge(self):
        client = Client([b"alice\0alice\0wonderland"])
        avatar_id, _, _ = await self.sasl("plain", None, client)
        self.assertEqual((avatar_id, client.challenges), ("alice", [b""]))

    async def test_plain_wrong_password_and_authzid_mismatch(self):
        for initial, user in ((b"\0alice\0wrong", "alice"), (b"bob\0alice\0wonderland", "alice"),
                              (b"\0ghost\0x", "ghost")):
            with self.assertRaises(SASLFailure) as caught:
                await self.sasl("PLAIN", initial, Client())
            self.assertEqual(caught.exception.username, user)  # for the failure log
        self.assertEqual(self.backend.opened, [])

    async def test_plain_refused_when_plaintext_not_allowed(self):
        with self.assertRaises(SASLFailure):
            await self.sasl("PLAIN", b"\0alice\0wonderland", Client(), allow_plaintext=False)

    async def test_login_mechanism(self):
        client = Client([b"bea", b"bee"])
        avatar_id, store, _ = await self.sasl("LOGIN", None, client)
        self.assertEqual(client.challenges, [b"Username:", b"Password:"])
        self.assertEqual((avatar_id, store), ("bea", "store:bea"))

    async def test_cancel(self):
        with self.assertRaises(SASLCancelled):
            await self.sasl("LOGIN", None, Client([b"alice", b"*"]))

    async def test_unknown_mechanism(self):
        with self.assertRaises(UnknownMechanism):
            await self.sasl("CRAM-MD5", None, Client())

    async def test_scram_end_to_end(self):
        scram = ScramSha256Client("alice", "wonderland")
        client = Client([scram.final, b""])
        avatar_id, store, _ = await self.sasl("SCRAM-SHA-256", scram.first(), client)
        self.assertEqual((avatar_id, store), ("alice", "store:alice"))
        self.assertEqual(len(client.challenges), 2)
        scram.check(client.challenges[1])  # the server proved it knows the keys

    async def test_scram_wrong_password(self):
        scram = ScramSha256Client("alice", "wonderlant")
        with self.assertRaises(SASLFailure) as caught:
            await self.sasl("SCRAM-SHA-256", scram.first(), Client([scram.final]))
        self.assertEqual(caught.exception.username, "alice")
        self.assertEqual(self.backend.opened, [])

    async def test_scram_refused_for_bcrypt_user_even_with_right_password(self):
        scram = ScramSha256Client("bea", "bee")
        with self.assertRaises(SASLFailure):
            await self.sasl("SCRAM-SHA-256", None, Client([scram.first(), scram.final]))

    async def test_scram_unknown_user(self):
        scram = ScramSha256Client("ghost", "boo")
        with self.assertRaises(SASLFailure):
            await self.sasl("SCRAM-SHA-256", scram.first(), Client([scram.final]))

    async def test_scram_data_after_success_fails_and_logs_out(self):
        logged_out = []

        class LoggingRealm(MailhubRealm):
            async def _open(self, username):
                iface, store, _ = await super()._open(username)
                return iface, store, lambda: logged_out.append(username)

        self.portal.realm = LoggingRealm(self.backend)
        scram = ScramSha256Client("user", "pencil")
        with self.assertRaises(SASLFailure):
            await self.sasl("SCRAM-SHA-256", scram.first(), Client([scram.final, b"junk"]))
        self.assertEqual(logged_out, ["user"])

    async def test_scram_with_a_single_checker_portal(self):
        portal = Portal(MailhubRealm(self.backend), [InMemoryChecker({"u": "p"})])
        scram = ScramSha256Client("u", "p")
        client = Client([scram.final, b""])
        avatar_id, _, _ = await run_sasl("SCRAM-SHA-256", scram.first(), portal,
                                         client.send_challenge, client.receive_response,
                                         IMailStore)
        self.assertEqual(avatar_id, "u")

    async def test_scram_fails_when_no_checker_offers_scram_keys(self):
        from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse

        portal = Portal(MailhubRealm(self.backend),
                        [InMemoryUsernamePasswordDatabaseDontUse(u=b"p")])
        scram = ScramSha256Client("u", "p")
        client = Client([scram.final])
        with self.assertRaises(SASLFailure):
            await run_sasl("SCRAM-SHA-256", scram.first(), portal, client.send_challenge,
                           client.receive_response, IMailStore)
