"""
Timeouts, the failure delay, and large messages: RETR in ranges with flow
control, TOP reading only what it needs.
"""

from __future__ import annotations

from twisted.cred.portal import Portal
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial import unittest

from pop3_harness import POP3ServerTestCase, message
from twisted_mailhub.auth.checkers import InMemoryChecker
from twisted_mailhub.auth.realm import MailhubRealm
from twisted_mailhub.backends.memory import MemoryBackend, MemoryMessage
from twisted_mailhub.policy import ServerPolicy
from twisted_mailhub.pop3 import POP3ServerFactory
from twisted_mailhub.pop3.maildrop import MaildropLocks
from twisted_mailhub.pop3.session import READ_CHUNK


def big_message(lines: int) -> bytes:
    body = b"".join(b"%08d the quick brown fox jumps over the lazy dog\r\n" % i
                    for i in range(lines))
    return b"From: big@example.net\r\nSubject: big\r\n\r\n" + body


class LargeMessageTests(POP3ServerTestCase):
    async def test_large_retr_arrives_intact_and_is_read_in_ranges(self) -> None:
        content = big_message(60000)  # about 3.5 MB
        await self.deliver(content)
        reads = []
        original = MemoryMessage.read

        async def recording_read(message, offset=0, length=None):
            reads.append((offset, length))
            return await original(message, offset, length)

        self.patch(MemoryMessage, "read", recording_read)

        def run():
            c = self.pop()
            try:
                return c.retr(1)
            finally:
                c.quit()

        status, lines, octets = await self.in_thread(run)
        self.assertEqual(b"\r\n".join(lines) + b"\r\n", content)
        self.assertEqual(status, b"+OK %d octets" % len(content))
        self.assertGreaterEqual(len(reads), len(content) // READ_CHUNK)
        self.assertTrue(all(length is not None and length <= READ_CHUNK for _, length in reads))

    async def test_top_reads_only_the_start(self) -> None:
        content = big_message(60000)
        await self.deliver(content)
        reads = []
        original = MemoryMessage.read

        async def recording_read(message, offset=0, length=None):
            reads.append((offset, length))
            return await original(message, offset, length)

        self.patch(MemoryMessage, "read", recording_read)

        def run():
            c = self.pop()
            try:
                return c.top(1, 3)
            finally:
                c.quit()

        _, lines, _ = await self.in_thread(run)
        self.assertEqual(lines[-1], b"00000002 the quick brown fox jumps over the lazy dog")
        self.assertEqual(len(reads), 1)


class TimerTests(unittest.TestCase):
    """Timeouts and delays with a fake clock and an in-memory transport."""

    def connect(self, policy: ServerPolicy, throttle=None):
        self.clock = Clock()
        backend = MemoryBackend()
        portal = Portal(MailhubRealm(backend), [InMemoryChecker({"alice": "wonderland"})])
        factory = POP3ServerFactory(portal, policy=policy, clock=self.clock,
                                    locks=MaildropLocks(), throttle=throttle)
        protocol = factory.buildProtocol(None)
        transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 40000))
        protocol.makeConnection(transport)
        return protocol, transport

    def test_login_timeout(self) -> None:
        protocol, transport = self.connect(ServerPolicy(login_timeout=60.0))
        self.clock.advance(59)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(2)
        self.assertTrue(transport.value().endswith(b"-ERR Autologout; idle for too long\r\n"))
        self.assertTrue(transport.disconnecting)

    def test_autologout_after_login_is_at_least_ten_minutes(self) -> None:
        # RFC 1939 section 3: an autologout timer of at least 10 minutes,
        # even if the policy asks for less.
        protocol, transport = self.connect(ServerPolicy(idle_timeout=60.0,
                                                        auth_failure_delay=0.0))
        protocol.dataReceived(b"USER alice\r\nPASS wonderland\r\n")
        self.assertIn(b"+OK alice has 0 messages", transport.value())
        self.clock.advance(599)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(2)
        self.assertTrue(transport.disconnecting)

    def test_failed_login_delays_the_next_answer(self) -> None:
        policy = ServerPolicy(auth_failure_delay=5.0, auth_failure_delay_max=5.0)
        protocol, transport = self.connect(policy)
        protocol.dataReceived(b"USER alice\r\nPASS wrong\r\n")
        self.assertTrue(transport.value().endswith(b"-ERR [AUTH] Invalid credentials\r\n"))
        transport.clear()
        protocol.dataReceived(b"USER alice\r\nPASS wonderland\r\n")
        self.assertEqual(transport.value(), b"+OK send PASS\r\n")
        self.clock.advance(4.9)
        self.assertEqual(transport.value(), b"+OK send PASS\r\n")
        self.clock.advance(0.2)
        self.assertIn(b"+OK alice has 0 messages", transport.value())
