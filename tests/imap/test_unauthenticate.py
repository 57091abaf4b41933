"""
UNAUTHENTICATE (RFC 8437): one connection logs in, gives the login back and
logs in again, as the same user or another, with nothing of the first login
left behind: not its mailbox, ENABLEd extensions, saved search, or slot in
the per-user connection cap.
"""

from __future__ import annotations

import dataclasses
import os

from twisted.trial import unittest

from harness import IMAPServerTestCase, RawClient, on_every_store
from tests_messages import simple_message

from twisted_mailhub import index
from twisted_mailhub.model import AppendRequest


def login(port: int, user: bytes = b"alice", password: bytes = b"wonderland") -> RawClient:
    c = RawClient(port)
    c.line()
    c.command(b"t0 LOGIN " + user + b" " + password)
    return c


@on_every_store
class UnauthenticateTranscriptTests(IMAPServerTestCase):
    async def setUp(self) -> None:
        await super().setUp()
        alice = await (await self.backend.open_store("alice")).get_mailbox("INBOX")
        await alice.append([AppendRequest(simple_message(f"for alice {i}")) for i in range(3)])
        bob = await (await self.backend.open_store("bob")).get_mailbox("INBOX")
        await bob.append([AppendRequest(simple_message("for bob"))])

    async def test_login_again_as_another_user(self) -> None:
        def run():
            c = login(self.port)
            caps = c.command(b"t1 CAPABILITY")[0].split()
            c.command(b"t2 ENABLE CONDSTORE")
            c.command(b"t3 SELECT INBOX")
            c.command(b"t4 STORE 1:3 +FLAGS.SILENT (\\Deleted)")
            c.command(b"t5 SEARCH RETURN (SAVE) ALL")
            out = [c.command(b"t6 UNAUTHENTICATE"),
                   c.command(b"t7 CAPABILITY"),
                   c.command(b"t8 SELECT INBOX"),
                   c.command(b"t9 LOGIN bob builder"),
                   c.command(b"t10 SELECT INBOX"),
                   c.command(b"t11 FETCH $ (UID)"),
                   c.command(b"t12 FETCH 1 (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])"),
                   c.command(b"t13 LOGOUT")]
            c.close()
            return caps, out

        caps, out = await self.in_thread(run)
        self.assertIn(b"UNAUTHENTICATE", caps)
        # No EXPUNGE, nothing but the OK (section 3); alice's mailbox is
        # left as it was, \Deleted messages and all.
        self.assertEqual(out[0], [b"t6 OK UNAUTHENTICATE completed\r\n"])
        after = out[1][0].split()
        self.assertIn(b"AUTH=PLAIN", after)
        self.assertNotIn(b"UNAUTHENTICATE", after)
        self.assertNotIn(b"COMPRESS=DEFLATE", after)
        self.assertEqual(out[2], [b"t8 BAD SELECT not allowed before authentication\r\n"])
        self.assertRegex(out[3][0], rb"^t9 OK \[CAPABILITY .*UNAUTHENTICATE.*\] LOGIN completed")
        # Bob's mail, and CONDSTORE no longer enabled: no HIGHESTMODSEQ.
        self.assertIn(b"* 1 EXISTS\r\n", out[4])
        self.assertFalse([line for line in out[4] if b"HIGHESTMODSEQ" in line])
        # SEARCHRES: $ was forgotten, so it names no message.
        self.assertEqual(out[5], [b"t11 OK FETCH completed\r\n"])
        self.assertEqual(out[6], [
            b"* 1 FETCH (UID 1 BODY[HEADER.FIELDS (SUBJECT)] {20}\r\n",
            b"Subject: for bob\r\n",
            b"\r\n",
            b")\r\n",
            b"t12 OK FETCH completed\r\n"])
        alice = await (await self.backend.open_store("alice")).get_mailbox("INBOX")
        metas = await alice.metadata(await alice.uids())
        self.assertEqual([("\\Deleted" in m.flags) for m in metas], [True, True, True])

    async def test_the_released_mailbox_tells_nothing(self) -> None:
        """The mailbox closed by UNAUTHENTICATE has no listener left on the connection."""
        alice = await (await self.backend.open_store("alice")).get_mailbox("INBOX")

        def first():
            c = login(self.port)
            c.command(b"t1 SELECT INBOX")
            c.command(b"t2 UNAUTHENTICATE")
            return c

        c = await self.in_thread(first)
        notifier = getattr(alice, "notifier", None)
        if notifier is not None:
            # The shared index of the mailbox is no longer in use.
            self.assertEqual(index._registry(notifier).active, {})
        await alice.append([AppendRequest(simple_message("new for alice"))])

        def second():
            out = [c.command(b"t3 NOOP"), c.command(b"t4 LOGIN alice wonderland"),
                   c.command(b"t5 NOOP"), c.command(b"t6 SELECT INBOX")]
            c.close()
            return out

        out = await self.in_thread(second)
        self.assertEqual(out[0], [b"t3 OK NOOP completed\r\n"])
        self.assertEqual(out[2], [b"t5 OK NOOP completed\r\n"])
        self.assertIn(b"* 4 EXISTS\r\n", out[3])


class UnauthenticateLimitsTests(IMAPServerTestCase):
    policy = dataclasses.replace(IMAPServerTestCase.policy, max_connections_per_user=1)

    async def test_the_user_connection_slot_is_given_back(self) -> None:
        def run():
            a = login(self.port)
            b = RawClient(self.port)
            b.line()
            out = [b.command(b"b1 LOGIN alice wonderland"),
                   a.command(b"a1 UNAUTHENTICATE"),
                   b.command(b"b2 LOGIN alice wonderland"),
                   a.command(b"a2 LOGIN alice wonderland"),
                   a.command(b"a3 LOGIN bob builder")]
            a.close()
            b.close()
            return out

        out = await self.in_thread(run)
        self.assertEqual(out[0], [b"b1 NO [LIMIT] Too many connections for this user\r\n"])
        self.assertEqual(out[1], [b"a1 OK UNAUTHENTICATE completed\r\n"])
        self.assertRegex(out[2][0], rb"^b2 OK \[CAPABILITY .*\] LOGIN completed")
        self.assertEqual(out[3], [b"a2 NO [LIMIT] Too many connections for this user\r\n"])
        self.assertRegex(out[4][0], rb"^a3 OK \[CAPABILITY .*\] LOGIN completed")

    async def test_unauthenticated_limits_apply_again(self) -> None:
        """A literal larger than a client that is not logged in may send is refused again."""

        def run():
            c = login(self.port)
            c.command(b"t1 UNAUTHENTICATE")
            c.send(b"t2 LOGIN {100000}\r\n")
            refused = c.line()
            after = c.command(b"t3 NOOP")
            c.close()
            return refused, after

        refused, after = await self.in_thread(run)
        self.assertRegex(refused, rb"^t2 (BAD|NO) \[TOOBIG\] ")
        self.assertEqual(after, [b"t3 OK NOOP completed\r\n"])


class UnauthenticateDisabledTests(IMAPServerTestCase):
    """RFC 8437 section 8: an admin can turn it off."""

    policy = dataclasses.replace(IMAPServerTestCase.policy, unauthenticate=False)

    async def test_not_offered_and_refused(self) -> None:
        def run():
            c = login(self.port)
            out = [c.command(b"t1 CAPABILITY"), c.command(b"t2 UNAUTHENTICATE"),
                   c.command(b"t3 SELECT INBOX")]
            c.close()
            return out

        out = await self.in_thread(run)
        self.assertNotIn(b"UNAUTHENTICATE", out[0][0].split())
        self.assertEqual(out[1], [b"t2 BAD UNAUTHENTICATE is not enabled on this server\r\n"])
        self.assertEqual(out[2][-1], b"t3 OK [READ-WRITE] SELECT completed\r\n")


class UnauthenticateTLSTests(IMAPServerTestCase):
    """Section 3: TLS is the one thing that stays."""

    def tls_options(self):
        from twisted_mailhub.auth.tls import generate_self_signed, make_tls_options

        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        cert = os.path.join(directory, "cert.pem")
        key = os.path.join(directory, "key.pem")
        generate_self_signed(cert, key, hostnames=("localhost", "127.0.0.1"))
        return make_tls_options(cert, key)

    async def test_tls_stays(self) -> None:
        import imaplib
        import ssl

        def run():
            client = imaplib.IMAP4("127.0.0.1", self.port, timeout=20)
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            client.starttls(context)
            client.login("alice", "wonderland")
            # imaplib knows no UNAUTHENTICATE: say in which states it may be sent.
            imaplib.Commands.setdefault("UNAUTHENTICATE", ("AUTH", "SELECTED"))
            typ, _ = client._simple_command("UNAUTHENTICATE")
            client.state = "NONAUTH"
            caps = client.capability()[1][0].split()
            cipher = client.sock.cipher()
            client.login("bob", "builder")
            status = client.status("INBOX", "(MESSAGES)")
            client.logout()
            return typ, caps, cipher, status

        typ, caps, cipher, status = await self.in_thread(run)
        self.assertEqual(typ, "OK")
        # Still over TLS: no STARTTLS to offer, and the socket is the TLS one.
        self.assertNotIn(b"STARTTLS", caps)
        self.assertIsNotNone(cipher)
        self.assertEqual(status, ("OK", [b"INBOX (MESSAGES 0)"]))


class UnauthenticateOptionTests(unittest.TestCase):
    def test_option_and_config_key_turn_it_off(self) -> None:
        from twisted_mailhub.config import MailhubOptions

        def policy(*args: str):
            options = MailhubOptions()
            options.parseOptions(list(args))
            return options.settings.policy()

        self.assertTrue(policy().unauthenticate)
        self.assertFalse(policy("--no-unauthenticate").unauthenticate)
        config = os.path.abspath(self.mktemp())
        with open(config, "w") as f:
            f.write("unauthenticate = false\n")
        self.assertFalse(policy("--config", config).unauthenticate)
