"""MailhubRealm opens the user's store through the backend."""

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import UsernamePassword
from twisted.cred.portal import Portal
from twisted.trial.unittest import TestCase
from zope.interface import Interface

from twisted_mailhub.auth.checkers import InMemoryChecker
from twisted_mailhub.auth.realm import MailhubRealm
from twisted_mailhub.interfaces import IMailStore


class FakeBackend:
    def __init__(self):
        self.opened = []

    async def open_store(self, username):
        self.opened.append(username)
        return ("store of", username)


class MailhubRealmTests(TestCase):
    async def test_request_avatar_opens_store(self):
        backend = FakeBackend()
        iface, store, logout = await MailhubRealm(backend).requestAvatar(
            b"al\xc3\xafce", None, IMailStore)
        self.assertIs(iface, IMailStore)
        self.assertEqual(store, ("store of", "alïce"))
        self.assertEqual(backend.opened, ["alïce"])
        self.assertIsNone(logout())

    def test_other_interfaces_not_implemented(self):
        class IOther(Interface):
            pass

        self.assertRaises(NotImplementedError,
                          MailhubRealm(FakeBackend()).requestAvatar, "a", None, IOther)

    async def test_through_a_portal(self):
        backend = FakeBackend()
        checker = InMemoryChecker({"alice": "pw"})
        self.assertTrue(ICredentialsChecker.providedBy(checker))
        portal = Portal(MailhubRealm(backend), [checker])
        _, store, _ = await portal.login(UsernamePassword(b"alice", b"pw"), None, IMailStore)
        self.assertEqual(store, ("store of", "alice"))
