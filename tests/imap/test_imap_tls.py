"""
TLS for IMAP over real sockets: STARTTLS on the plain port and implicit TLS
(RFC 8314), with the client verifying the certificate the test made; the
plaintext-password policy; and the STARTTLS command-injection case.
"""

from __future__ import annotations

import imaplib
import os
import socket
import ssl
import warnings

from harness import IMAPServerTestCase
from twisted.internet import reactor
from twisted.protocols.tls import TLSMemoryBIOFactory

from twisted_mailhub.auth.tls import generate_self_signed, make_tls_options
from twisted_mailhub.policy import ServerPolicy


class TLSMixin:
    def tls_options(self):
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        self.cert = os.path.join(directory, "cert.pem")
        key = os.path.join(directory, "key.pem")
        generate_self_signed(self.cert, key, hostnames=("localhost", "127.0.0.1"))
        return make_tls_options(self.cert, key)

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.cert)
        context.check_hostname = True
        return context


class StartTLSTests(TLSMixin, IMAPServerTestCase):
    # As on a public interface: no passwords before TLS.
    policy = ServerPolicy(auth_failure_delay=0.0, auth_failure_delay_max=0.0,
                          allow_plaintext_auth=False)

    async def test_capabilities_and_login_around_starttls(self) -> None:
        def run():
            c = imaplib.IMAP4("127.0.0.1", self.port, timeout=20)
            before = c.capabilities
            try:
                c.login("alice", "wonderland")
                refused = None
            except imaplib.IMAP4.error as e:
                refused = str(e)
            c.starttls(ssl_context=self.client_context())
            after = c.capabilities
            typ, _ = c.login("alice", "wonderland")
            cipher = c.sock.version()
            c.logout()
            return before, refused, after, typ, cipher

        before, refused, after, typ, version = await self.in_thread(run)
        self.assertIn("STARTTLS", before)
        self.assertIn("LOGINDISABLED", before)
        self.assertFalse([cap for cap in before if cap in ("AUTH=PLAIN", "AUTH=LOGIN")])
        self.assertIn("PRIVACYREQUIRED", refused)
        self.assertNotIn("STARTTLS", after)
        self.assertNotIn("LOGINDISABLED", after)
        self.assertIn("AUTH=PLAIN", after)
        self.assertEqual(typ, "OK")
        self.assertIn(version, ("TLSv1.2", "TLSv1.3"))

    async def test_plaintext_sasl_refused_before_tls(self) -> None:
        def run():
            c = imaplib.IMAP4("127.0.0.1", self.port, timeout=20)
            try:
                c.authenticate("PLAIN", lambda _: b"\0alice\0wonderland")
            except imaplib.IMAP4.error as e:
                return str(e)
            finally:
                c.shutdown()

        self.assertIn("PRIVACYREQUIRED", await self.in_thread(run))

    async def test_commands_pipelined_behind_starttls_are_discarded(self) -> None:
        def run():
            raw = socket.create_connection(("127.0.0.1", self.port), timeout=20)
            f = raw.makefile("rb")
            f.readline()
            # The injected command rides in the same packet as STARTTLS.
            raw.sendall(b"a STARTTLS\r\nb LOGIN alice wonderland\r\n")
            ok = f.readline()
            tls = self.client_context().wrap_socket(raw, server_hostname="127.0.0.1")
            tls.sendall(b"c CAPABILITY\r\n")
            lines = []
            g = tls.makefile("rb")
            while True:
                line = g.readline()
                lines.append(line)
                if line.startswith(b"c "):
                    break
            tls.close()
            return ok, lines

        ok, lines = await self.in_thread(run)
        self.assertEqual(ok, b"a OK Begin TLS negotiation now\r\n")
        # Only c's answer: b was never run, and we are still not logged in.
        self.assertEqual([line[:2] for line in lines], [b"* ", b"c "])
        self.assertIn(b"AUTH=PLAIN", lines[0])


class ImplicitTLSTests(TLSMixin, IMAPServerTestCase):
    policy = ServerPolicy(auth_failure_delay=0.0, auth_failure_delay_max=0.0,
                          allow_plaintext_auth=False)

    async def setUp(self) -> None:
        await super().setUp()
        wrapped = TLSMemoryBIOFactory(self.factory.tls_options, False, self.factory)
        self.tls_port = reactor.listenTCP(0, wrapped, interface="127.0.0.1")
        self.addCleanup(self.tls_port.stopListening)

    async def test_imaps(self) -> None:
        def run():
            c = imaplib.IMAP4_SSL("127.0.0.1", self.tls_port.getHost().port,
                                  ssl_context=self.client_context(), timeout=20)
            caps = c.capabilities
            typ, _ = c.login("alice", "wonderland")
            c.select("INBOX")
            c.logout()
            return caps, typ

        caps, typ = await self.in_thread(run)
        self.assertNotIn("STARTTLS", caps)
        self.assertNotIn("LOGINDISABLED", caps)
        self.assertEqual(typ, "OK")

    async def test_tls_1_1_refused(self) -> None:
        def attempt(highest):
            context = self.client_context()
            # Let this client offer old versions, so that a refusal is the server's.
            context.set_ciphers("DEFAULT:@SECLEVEL=0")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                context.minimum_version = ssl.TLSVersion.TLSv1
                context.maximum_version = highest
            try:
                c = imaplib.IMAP4_SSL("127.0.0.1", self.tls_port.getHost().port,
                                      ssl_context=context, timeout=20)
            except (ssl.SSLError, OSError) as e:
                return type(e).__name__
            c.shutdown()
            return "connected"

        def run():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                old = ssl.TLSVersion.TLSv1_1
            return attempt(old), attempt(ssl.TLSVersion.TLSv1_2)

        old, current = await self.in_thread(run)
        self.assertNotEqual(old, "connected")
        self.assertEqual(current, "connected")
