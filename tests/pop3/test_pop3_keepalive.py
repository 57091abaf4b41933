"""TCP keepalive on accepted POP3 connections, and the policy that turns it off."""

from __future__ import annotations

import socket

from pop3_harness import POP3ServerTestCase
from twisted_mailhub.policy import ServerPolicy


def server_keepalive(factory) -> int:
    (protocol,) = factory.connections
    return protocol.transport.getHandle().getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)


class KeepaliveTests(POP3ServerTestCase):
    async def test_accepted_connections_have_keepalive(self) -> None:
        c = self.raw()
        self.addCleanup(c.close)
        self.assertTrue((await self.in_thread(c.line)).startswith(b"+OK"))
        self.assertEqual(server_keepalive(self.factory), 1)


class NoKeepaliveTests(POP3ServerTestCase):
    policy = ServerPolicy(tcp_keepalive=False, auth_failure_delay=0.0)

    async def test_keepalive_can_be_turned_off(self) -> None:
        c = self.raw()
        self.addCleanup(c.close)
        self.assertTrue((await self.in_thread(c.line)).startswith(b"+OK"))
        self.assertEqual(server_keepalive(self.factory), 0)
