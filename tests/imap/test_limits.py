"""
Limits against hostile or broken clients, hit over real sockets: timeouts,
repeated bad commands, connection caps and the authentication-failure delay.
"""

from __future__ import annotations

import imaplib

from harness import IMAPServerTestCase
from twisted.cred.portal import Portal
from twisted.internet import reactor, task

from twisted_mailhub.auth.checkers import InMemoryChecker
from twisted_mailhub.auth.realm import MailhubRealm
from twisted_mailhub.auth.throttle import FailureThrottle
from twisted_mailhub.imap.protocol import IMAPServerFactory
from twisted_mailhub.policy import ServerPolicy


class TimeoutTests(IMAPServerTestCase):
    policy = ServerPolicy(login_timeout=0.3, idle_timeout=0.6, auth_failure_delay=0.0)

    async def test_login_timeout(self) -> None:
        def run():
            c = self.raw()
            c.line()
            bye = c.line()
            return bye, c.closed()

        bye, closed = await self.in_thread(run)
        self.assertTrue(bye.startswith(b"* BYE "))
        self.assertTrue(closed)

    async def test_autologout_after_login(self) -> None:
        def run():
            c = self.raw()
            c.line()
            c.command(b"a LOGIN alice wonderland")
            bye = c.line()
            return bye, c.closed()

        bye, closed = await self.in_thread(run)
        self.assertIn(b"Autologout", bye)
        self.assertTrue(closed)

    async def test_idle_is_exempt_from_autologout(self) -> None:
        def run():
            c = self.raw()
            c.line()
            c.command(b"a LOGIN alice wonderland")
            c.command(b"b SELECT INBOX")
            c.send(b"c IDLE\r\n")
            c.line()
            # Longer than the autologout timer, measured by the server's own
            # clock: a NOOP-free wait that the server must survive.
            return c

        c = await self.in_thread(run)
        await task.deferLater(reactor, 1.0, lambda: None)

        def finish():
            c.send(b"DONE\r\n")
            done = c.until_tagged(b"c")
            c.close()
            return done

        done = await self.in_thread(finish)
        self.assertEqual(done[-1], b"c OK IDLE terminated\r\n")


class BadCommandTests(IMAPServerTestCase):
    policy = ServerPolicy(max_bad_commands=3, auth_failure_delay=0.0)

    async def test_bye_after_too_many_bad_commands(self) -> None:
        def run():
            c = self.raw()
            c.line()
            answers = [c.command(b"x%d BLAH" % i)[-1] for i in range(2)]
            c.send(b"x2 BLAH\r\n")
            answers.append(c.line())
            answers.append(c.line())
            return answers, c.closed()

        answers, closed = await self.in_thread(run)
        self.assertTrue(all(a.split(b" ")[1] == b"BAD" for a in answers[:3]))
        self.assertTrue(answers[3].startswith(b"* BYE "))
        self.assertTrue(closed)

    async def test_good_commands_reset_the_count(self) -> None:
        def run():
            c = self.raw()
            c.line()
            for i in range(5):
                c.command(b"x%d BLAH" % i)
                c.command(b"n%d NOOP" % i)
            last = c.command(b"z NOOP")
            c.close()
            return last

        self.assertEqual((await self.in_thread(run))[-1], b"z OK NOOP completed\r\n")


class ConnectionCapTests(IMAPServerTestCase):
    policy = ServerPolicy(max_connections_per_address=2, max_connections_per_user=1,
                          auth_failure_delay=0.0)

    async def test_per_address_cap(self) -> None:
        def run():
            a, b, c = self.raw(), self.raw(), self.raw()
            greetings = [a.line(), b.line(), c.line()]
            closed = c.closed()
            for x in (a, b, c):
                x.close()
            return greetings, closed

        greetings, closed = await self.in_thread(run)
        self.assertTrue(greetings[0].startswith(b"* OK"))
        self.assertTrue(greetings[2].startswith(b"* BYE [UNAVAILABLE]"))
        self.assertTrue(closed)

    async def test_per_user_cap(self) -> None:
        def run():
            a = self.imaplib_client()
            b = self.imaplib_client(login=None)
            try:
                b.login("alice", "wonderland")
                second = "logged in"
            except imaplib.IMAP4.error as e:
                second = str(e)
            a.logout()
            b.login("alice", "wonderland")
            b.logout()
            return second

        self.assertIn("LIMIT", await self.in_thread(run))


class FailureDelayTests(IMAPServerTestCase):
    async def setUp(self) -> None:
        self.clock = task.Clock()
        await super().setUp()
        await self.listening.stopListening()
        self.throttle = FailureThrottle(self.clock, 5.0, 60.0)
        portal = Portal(MailhubRealm(self.backend), [InMemoryChecker(dict(self.users))])
        self.factory = IMAPServerFactory(portal, policy=self.policy, throttle=self.throttle,
                                         clock=self.clock)
        self.listening = reactor.listenTCP(0, self.factory, interface="127.0.0.1")
        self.port = self.listening.getHost().port

    async def test_failures_delay_the_next_answer(self) -> None:
        c = self.raw()
        self.addCleanup(c.close)
        await self.in_thread(c.line)
        first = await self.in_thread(c.command, b"a LOGIN alice nope")
        self.assertIn(b"AUTHENTICATIONFAILED", first[-1])
        self.assertGreater(self.throttle.delay_for("127.0.0.1"), 0)
        # The next attempt from this address waits for the throttle's delay,
        # which runs on the (fake) clock: no answer until it advances.
        c.send(b"b LOGIN alice wonderland\r\n")
        answer = self.in_thread(c.until_tagged, b"b")
        for _ in range(20):
            await task.deferLater(reactor, 0.01, lambda: None)
        self.assertFalse(answer.called)
        self.clock.advance(self.throttle.delay_for("127.0.0.1") + 1)
        self.assertTrue((await answer)[-1].startswith(b"b OK"))
