"""
TLS connections end properly: after LOGOUT over IMAPS or after STARTTLS the
server sends its TLS close_notify and closes the TCP connection, so a raw
TLS client reads a clean end of stream at once instead of waiting for a
timeout.
"""

from __future__ import annotations

import socket
import ssl

from harness import IMAPServerTestCase
from stream_reading import read_line, read_to_eof
from test_imap_tls import TLSMixin
from twisted.internet import reactor
from twisted.protocols.tls import TLSMemoryBIOFactory


class TLSCloseMixin(TLSMixin):
    def wrap(self, sock: socket.socket) -> ssl.SSLSocket:
        return self.client_context().wrap_socket(
            sock, server_hostname="127.0.0.1", suppress_ragged_eofs=False)


class IMAPSCloseTests(TLSCloseMixin, IMAPServerTestCase):
    async def setUp(self) -> None:
        await super().setUp()
        wrapped = TLSMemoryBIOFactory(self.factory.tls_options, False, self.factory)
        self.tls_port = reactor.listenTCP(0, wrapped, interface="127.0.0.1")
        self.addCleanup(self.tls_port.stopListening)

    async def test_logout_over_imaps_closes_the_connection(self) -> None:
        def run():
            raw = socket.create_connection(("127.0.0.1", self.tls_port.getHost().port),
                                           timeout=10)
            tls = self.wrap(raw)
            greeting = read_line(tls)
            tls.sendall(b"a LOGIN alice wonderland\r\nb LOGOUT\r\n")
            rest = read_to_eof(tls)
            tls.close()
            return greeting, rest

        greeting, rest = await self.in_thread(run)
        self.assertTrue(greeting.startswith(b"* OK"))
        self.assertIn(b"* BYE ", rest)
        self.assertTrue(rest.endswith(b"b OK LOGOUT completed\r\n"))


class StartTLSCloseTests(TLSCloseMixin, IMAPServerTestCase):
    async def test_logout_after_starttls_closes_the_connection(self) -> None:
        def run():
            raw = socket.create_connection(("127.0.0.1", self.port), timeout=10)
            read_line(raw)
            raw.sendall(b"a STARTTLS\r\n")
            ok = read_line(raw)
            tls = self.wrap(raw)
            tls.sendall(b"b LOGOUT\r\n")
            rest = read_to_eof(tls)
            tls.close()
            return ok, rest

        ok, rest = await self.in_thread(run)
        self.assertEqual(ok, b"a OK Begin TLS negotiation now\r\n")
        self.assertTrue(rest.startswith(b"* BYE "))
        self.assertTrue(rest.endswith(b"b OK LOGOUT completed\r\n"))
