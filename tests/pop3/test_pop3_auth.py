"""
CAPA, STLS, implicit TLS, SASL AUTH (RFC 5034) and the plaintext policy,
over real sockets with poplib.
"""

from __future__ import annotations

import base64
import os
import poplib
import ssl
import tempfile

from pop3_harness import POP3ServerTestCase, message
from twisted_mailhub.auth.scramclient import ScramSha256Client
from twisted_mailhub.auth.tls import generate_self_signed, make_tls_options
from twisted_mailhub.policy import ServerPolicy

_CERT_DIR = tempfile.mkdtemp(prefix="pop3-tls-")
CERT = os.path.join(_CERT_DIR, "cert.pem")
KEY = os.path.join(_CERT_DIR, "key.pem")
generate_self_signed(CERT, KEY, hostnames=("localhost", "127.0.0.1"))


def client_context() -> ssl.SSLContext:
    """A client context that trusts only our certificate, checking the name."""
    context = ssl.create_default_context(cafile=CERT)
    context.check_hostname = True
    return context


class TLSCase(POP3ServerTestCase):
    def tls_options(self):
        return make_tls_options(CERT, KEY)


class CapaTests(TLSCase):
    async def test_capa_before_and_after_stls_and_login(self) -> None:
        def run():
            c = self.pop(login=None)
            before = c.capa()
            c.stls(context=client_context())
            after_tls = c.capa()
            c.user("alice")
            c.pass_("wonderland")
            logged_in = c.capa()
            c.quit()
            return before, after_tls, logged_in

        before, after_tls, logged_in = await self.in_thread(run)
        for caps in (before, after_tls, logged_in):
            for tag in ("TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "USER"):
                self.assertIn(tag, caps)
            self.assertEqual(caps["EXPIRE"], ["NEVER"])
            self.assertEqual(caps["IMPLEMENTATION"], ["twisted_mailhub"])
            self.assertNotIn("LOGIN-DELAY", caps)
        self.assertIn("STLS", before)
        self.assertNotIn("STLS", after_tls)
        self.assertNotIn("STLS", logged_in)
        self.assertEqual(after_tls["SASL"], ["SCRAM-SHA-256", "PLAIN", "LOGIN"])

    async def test_stls_verifies_and_then_serves(self) -> None:
        await self.deliver(message("secret"))

        def run():
            c = self.pop(login=None)
            c.stls(context=client_context())
            cert = c.sock.getpeercert()
            c.user("alice")
            c.pass_("wonderland")
            body = c.retr(1)[1]
            c.quit()
            return cert, body

        cert, body = await self.in_thread(run)
        self.assertIn(("IP Address", "127.0.0.1"), cert["subjectAltName"])
        self.assertIn(b"Subject: secret", body)

    async def test_stls_twice_and_after_login_fail(self) -> None:
        def run():
            c = self.pop(login=None)
            c.stls(context=client_context())
            out = []
            try:
                c._shortcmd("STLS")
            except poplib.error_proto as e:
                out.append(e.args[0])
            c.quit()
            return out

        self.assertEqual(await self.in_thread(run), [b"-ERR TLS is already active"])

    async def test_pipelined_data_after_stls_is_discarded(self) -> None:
        def run():
            raw = self.raw()
            raw.line()
            # An attacker-injected command in the clear must not run inside TLS.
            raw.send(b"STLS\r\nUSER alice\r\n")
            reply = raw.line()
            context = client_context()
            tls = context.wrap_socket(raw.sock, server_hostname="localhost")
            tls.sendall(b"PASS wonderland\r\n")
            answer = tls.recv(1000)
            tls.close()
            return reply, answer

        reply, answer = await self.in_thread(run)
        self.assertEqual(reply, b"+OK Begin TLS negotiation\r\n")
        self.assertEqual(answer, b"-ERR USER first\r\n")


class NoTLSConfiguredTests(POP3ServerTestCase):
    async def test_stls_without_tls_configured(self) -> None:
        def run():
            c = self.pop(login=None)
            caps = c.capa()
            try:
                c._shortcmd("STLS")
            except poplib.error_proto as e:
                return caps, e.args[0]
            finally:
                c.quit()

        caps, error = await self.in_thread(run)
        self.assertNotIn("STLS", caps)
        self.assertEqual(error, b"-ERR TLS is not configured on this server")


class ImplicitTLSTests(TLSCase):
    implicit_tls = True

    async def test_implicit_tls_session(self) -> None:
        await self.deliver(message("over tls"))

        def run():
            c = self.pop_ssl(client_context())
            caps = c.capa()
            c.user("alice")
            c.pass_("wonderland")
            stat = c.stat()
            c.quit()
            return caps, stat

        caps, stat = await self.in_thread(run)
        self.assertNotIn("STLS", caps)
        self.assertIn("USER", caps)
        self.assertEqual(stat[0], 1)


class PlaintextPolicyTests(TLSCase):
    # Loopback is treated like a remote network here.
    policy = ServerPolicy(allow_plaintext_auth=False, auth_failure_delay=0.0,
                          auth_failure_delay_max=0.0)

    async def test_user_pass_and_plain_refused_without_tls(self) -> None:
        def run():
            c = self.pop(login=None)
            caps = c.capa()
            errors = []
            for cmd in ("USER alice", "PASS wonderland", "AUTH PLAIN AGFsaWNlAHdvbmRlcmxhbmQ="):
                try:
                    c._shortcmd(cmd)
                except poplib.error_proto as e:
                    errors.append(e.args[0])
            c.stls(context=client_context())
            caps_tls = c.capa()
            c.user("alice")
            c.pass_("wonderland")
            c.quit()
            return caps, errors, caps_tls

        caps, errors, caps_tls = await self.in_thread(run)
        self.assertNotIn("USER", caps)
        self.assertEqual(caps["SASL"], ["SCRAM-SHA-256"])
        self.assertEqual(len(errors), 3)
        self.assertTrue(all(e.startswith(b"-ERR [AUTH] Plaintext authentication needs TLS")
                            for e in errors))
        self.assertIn("USER", caps_tls)
        self.assertEqual(caps_tls["SASL"], ["SCRAM-SHA-256", "PLAIN", "LOGIN"])

    async def test_scram_allowed_without_tls(self) -> None:
        def run():
            c = self.pop(login=None)
            scram = ScramSha256Client("alice", "wonderland")
            first = c._shortcmd("AUTH SCRAM-SHA-256 " + base64.b64encode(scram.first()).decode())
            server_first = base64.b64decode(first[2:])
            final = c._shortcmd(base64.b64encode(scram.final(server_first)).decode())
            scram.check(base64.b64decode(final[2:]))
            done = c._shortcmd("")
            stat = c.stat()
            c.quit()
            return done, stat

        done, stat = await self.in_thread(run)
        self.assertTrue(done.startswith(b"+OK alice has 0 messages"))
        self.assertEqual(stat, (0, 0))


class SASLTests(POP3ServerTestCase):
    async def test_plain_with_initial_response(self) -> None:
        def run():
            c = self.pop(login=None)
            reply = c._shortcmd("AUTH PLAIN " + base64.b64encode(b"\0alice\0wonderland").decode())
            c.quit()
            return reply

        self.assertEqual(await self.in_thread(run), b"+OK alice has 0 messages (0 octets)")

    async def test_plain_with_continuation(self) -> None:
        def run():
            raw = self.raw()
            raw.line()
            raw.send(b"AUTH PLAIN\r\n")
            challenge = raw.line()
            raw.send(base64.b64encode(b"\0alice\0wonderland") + b"\r\nSTAT\r\n")
            out = challenge, raw.line(), raw.line()
            raw.close()
            return out

        challenge, ok, stat = await self.in_thread(run)
        self.assertEqual(challenge, b"+ \r\n")  # RFC 5034: an empty challenge is "+ "
        self.assertTrue(ok.startswith(b"+OK"))
        self.assertEqual(stat, b"+OK 0 0\r\n")

    async def test_cancel_with_star(self) -> None:
        def run():
            raw = self.raw()
            raw.line()
            raw.send(b"AUTH PLAIN\r\n")
            raw.line()
            raw.send(b"*\r\nSTAT\r\n")
            out = raw.line(), raw.line()
            raw.close()
            return out

        cancelled, stat = await self.in_thread(run)
        self.assertEqual(cancelled, b"-ERR Authentication cancelled\r\n")
        self.assertTrue(stat.startswith(b"-ERR STAT is not valid"))

    async def test_bad_credentials_bad_base64_and_unknown_mechanism(self) -> None:
        def run():
            c = self.pop(login=None)
            out = []
            for cmd in ("AUTH PLAIN " + base64.b64encode(b"\0alice\0nope").decode(),
                        "AUTH PLAIN =AAA", "AUTH CRAM-MD5"):
                try:
                    c._shortcmd(cmd)
                except poplib.error_proto as e:
                    out.append(e.args[0])
            # After failures the client may still log in (RFC 5034 section 4).
            out.append(c._shortcmd(
                "AUTH PLAIN " + base64.b64encode(b"\0alice\0wonderland").decode()))
            c.quit()
            return out

        bad, b64, unknown, ok = await self.in_thread(run)
        self.assertEqual(bad, b"-ERR [AUTH] Invalid credentials")
        self.assertEqual(b64, b"-ERR Invalid base64 data")
        self.assertEqual(unknown, b"-ERR Unsupported mechanism: CRAM-MD5")
        self.assertTrue(ok.startswith(b"+OK"))

    async def test_auth_without_mechanism_lists_them(self) -> None:
        def run():
            c = self.pop(login=None)
            c._putcmd("AUTH")
            listing = c._getlongresp()
            c.quit()
            return listing

        _, mechanisms, _ = await self.in_thread(run)
        self.assertEqual(mechanisms, [b"SCRAM-SHA-256", b"PLAIN", b"LOGIN"])

    async def test_scram_with_continuation(self) -> None:
        def run():
            c = self.pop(login=None)
            scram = ScramSha256Client("bob", "builder")
            empty = c._shortcmd("AUTH SCRAM-SHA-256")
            first = c._shortcmd(base64.b64encode(scram.first()).decode())
            final = c._shortcmd(base64.b64encode(
                scram.final(base64.b64decode(first[2:]))).decode())
            scram.check(base64.b64decode(final[2:]))
            done = c._shortcmd("")
            c.quit()
            return empty, done

        empty, done = await self.in_thread(run)
        self.assertEqual(empty, b"+ ")
        self.assertTrue(done.startswith(b"+OK bob has 0 messages"))
