"""
POP3 over TLS ends properly: after QUIT on port 995 (implicit TLS) or after
STLS, the server sends close_notify and closes the TCP connection at once.
"""

from __future__ import annotations

import socket
import ssl

from pop3_harness import message
from stream_reading import read_line, read_to_eof
from test_pop3_auth import TLSCase, client_context


def wrap(sock: socket.socket) -> ssl.SSLSocket:
    # Ragged EOFs are not suppressed: a TCP close without close_notify fails.
    return client_context().wrap_socket(sock, server_hostname="127.0.0.1",
                                        suppress_ragged_eofs=False)


class POP3SCloseTests(TLSCase):
    implicit_tls = True

    async def test_quit_over_pop3s_closes_the_connection(self) -> None:
        await self.deliver(message("one"))

        def run():
            tls = wrap(socket.create_connection(("127.0.0.1", self.tls_port), timeout=10))
            read_line(tls)
            tls.sendall(b"USER alice\r\nPASS wonderland\r\nQUIT\r\n")
            rest = read_to_eof(tls)
            tls.close()
            return rest

        rest = await self.in_thread(run)
        self.assertTrue(rest.startswith(b"+OK"))
        self.assertTrue(rest.endswith(b"signing off\r\n"))

    async def test_quit_before_login_over_pop3s(self) -> None:
        def run():
            tls = wrap(socket.create_connection(("127.0.0.1", self.tls_port), timeout=10))
            read_line(tls)
            tls.sendall(b"QUIT\r\n")
            rest = read_to_eof(tls)
            tls.close()
            return rest

        rest = await self.in_thread(run)
        self.assertTrue(rest.startswith(b"+OK"))
        self.assertEqual(rest.count(b"\r\n"), 1)


class STLSCloseTests(TLSCase):
    async def test_quit_after_stls_closes_the_connection(self) -> None:
        def run():
            raw = socket.create_connection(("127.0.0.1", self.port), timeout=10)
            read_line(raw)
            raw.sendall(b"STLS\r\n")
            ok = read_line(raw)
            tls = wrap(raw)
            tls.sendall(b"USER alice\r\nPASS wonderland\r\nQUIT\r\n")
            rest = read_to_eof(tls)
            tls.close()
            return ok, rest

        ok, rest = await self.in_thread(run)
        self.assertEqual(ok, b"+OK Begin TLS negotiation\r\n")
        self.assertTrue(rest.endswith(b"signing off\r\n"))
