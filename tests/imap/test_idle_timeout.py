"""
Silent clients do not hold connections for ever: the IDLE timeout (RFC
2177), the autologout timer (RFC 9051 section 5.4) on the server's
injectable clock, and TCP keepalive on accepted connections.
"""

from __future__ import annotations

import socket

from harness import IMAPServerTestCase
from twisted.cred.portal import Portal
from twisted.internet import reactor, task

from twisted_mailhub.auth.checkers import InMemoryChecker
from twisted_mailhub.auth.realm import MailhubRealm
from twisted_mailhub.imap.protocol import IMAPServerFactory
from twisted_mailhub.policy import ServerPolicy

MINUTE = 60.0


class ClockedServerTestCase(IMAPServerTestCase):
    """The server's timers run on a fake clock the test advances."""

    async def setUp(self) -> None:
        await super().setUp()
        await self.listening.stopListening()
        self.clock = task.Clock()
        portal = Portal(MailhubRealm(self.backend), [InMemoryChecker(dict(self.users))])
        self.factory = IMAPServerFactory(portal, policy=self.policy, clock=self.clock)
        self.listening = reactor.listenTCP(0, self.factory, interface="127.0.0.1")
        self.port = self.listening.getHost().port

    async def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        # Let the reactor write what the timers said.
        await task.deferLater(reactor, 0, lambda: None)


class IdleTimeoutTests(ClockedServerTestCase):
    async def idling(self):
        def run():
            c = self.raw()
            c.line()
            c.command(b"a LOGIN alice wonderland")
            c.command(b"b SELECT INBOX")
            c.send(b"c IDLE\r\n")
            return c, c.line()

        c, go_ahead = await self.in_thread(run)
        self.addCleanup(c.close)
        self.assertEqual(go_ahead, b"+ idling\r\n")
        return c

    async def test_a_client_silent_in_idle_is_logged_out(self) -> None:
        c = await self.idling()
        await self.advance(30 * MINUTE)

        def rest():
            return c.line(), c.closed()

        bye, closed = await self.in_thread(rest)
        self.assertTrue(bye.startswith(b"* BYE "), bye)
        self.assertTrue(closed)
        self.assertEqual(self.factory.connections, set())

    async def test_idle_is_allowed_29_minutes_and_more_than_the_autologout(self) -> None:
        c = await self.idling()
        await self.advance(29 * MINUTE + 59)

        def done():
            c.send(b"DONE\r\n")
            return c.until_tagged(b"c")[-1], c.command(b"d NOOP")[-1]

        self.assertEqual(await self.in_thread(done),
                         (b"c OK IDLE terminated\r\n", b"d OK NOOP completed\r\n"))


class ShortIdleTimeoutTests(ClockedServerTestCase):
    policy = ServerPolicy(idle_command_timeout=45 * MINUTE, idle_timeout=31 * MINUTE,
                          auth_failure_delay=0.0, auth_failure_delay_max=0.0)

    async def test_the_idle_timeout_is_the_policys(self) -> None:
        c = self.raw()
        self.addCleanup(c.close)

        def run():
            c.line()
            c.command(b"a LOGIN alice wonderland")
            c.send(b"c IDLE\r\n")
            return c.line()

        self.assertEqual(await self.in_thread(run), b"+ idling\r\n")
        # Past the autologout timer: IDLE has its own.
        await self.advance(44 * MINUTE)
        self.assertEqual(len(self.factory.connections), 1)
        await self.advance(1 * MINUTE)

        def rest():
            return c.line(), c.closed()

        bye, closed = await self.in_thread(rest)
        self.assertTrue(bye.startswith(b"* BYE "))
        self.assertTrue(closed)


class AutologoutTests(ClockedServerTestCase):
    async def test_autologout_before_login_and_after(self) -> None:
        before, after = self.raw(), self.raw()
        self.addCleanup(before.close)
        self.addCleanup(after.close)

        def login():
            before.line()
            after.line()
            return after.command(b"a LOGIN alice wonderland")[-1]

        self.assertTrue((await self.in_thread(login)).startswith(b"a OK"))
        await self.advance(60)

        def first():
            return before.line(), before.closed()

        bye, closed = await self.in_thread(first)
        self.assertIn(b"Autologout", bye)
        self.assertTrue(closed)
        # The logged-in connection has 30 minutes, counted from its last word.
        await self.advance(30 * MINUTE - 61)
        self.assertEqual(await self.in_thread(after.command, b"b NOOP"),
                         [b"b OK NOOP completed\r\n"])
        await self.advance(30 * MINUTE - 1)
        self.assertEqual(len(self.factory.connections), 1)
        await self.advance(1)

        def second():
            return after.line(), after.closed()

        bye, closed = await self.in_thread(second)
        self.assertIn(b"Autologout", bye)
        self.assertTrue(closed)


def server_keepalive(factory) -> int:
    (protocol,) = factory.connections
    handle = protocol.transport.getHandle()
    return handle.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)


class KeepaliveTests(IMAPServerTestCase):
    async def test_accepted_connections_have_keepalive(self) -> None:
        c = self.raw()
        self.addCleanup(c.close)
        await self.in_thread(c.line)
        self.assertEqual(server_keepalive(self.factory), 1)


class NoKeepaliveTests(IMAPServerTestCase):
    policy = ServerPolicy(tcp_keepalive=False, auth_failure_delay=0.0)

    async def test_keepalive_can_be_turned_off(self) -> None:
        c = self.raw()
        self.addCleanup(c.close)
        await self.in_thread(c.line)
        self.assertEqual(server_keepalive(self.factory), 0)
