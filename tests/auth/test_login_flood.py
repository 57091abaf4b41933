"""
A flood of wrong logins over real sockets, IMAP and POP3 together: the
password checks running at once never exceed the verifier's bound, unknown
and known users go through the same check, and a real user still gets in
while the flood is pending.

The verifier's check is wrapped to count the checks running at once and to
hold wrong passwords until the test lets them go, so the flood is really
pending when the test looks; nothing here depends on timing.  The flood
comes from other loopback addresses (127.0.0.2, ...) than the real user
(127.0.0.1).
"""

from __future__ import annotations

import base64
import imaplib
import poplib
import socket
import threading
import time

from twisted.cred.portal import Portal
from twisted.internet import defer, reactor, task
from twisted.internet.task import Clock
from twisted.trial import unittest

from twisted_mailhub.auth.checkers import ChainedChecker, HashedPasswordChecker
from twisted_mailhub.auth.realm import MailhubRealm
from twisted_mailhub.auth.schemes import hash_password, work_factor
from twisted_mailhub.auth.throttle import FailureThrottle
from twisted_mailhub.auth.verifier import PasswordVerifier, check_password
from twisted_mailhub.backends.memory import MemoryBackend
from twisted_mailhub.imap.protocol import IMAPServerFactory
from twisted_mailhub.policy import ServerPolicy
from twisted_mailhub.pop3 import POP3ServerFactory

PASSWORD = "right password"
BOUND = 2
WAIT = 30.0  # the longest any step may take before the test fails


class GatedCheck:
    """
    A password check that records what it was asked, counts how many run
    at once, and holds every wrong password until L{release}.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.seen: list[tuple[str, str]] = []
        self.gate = threading.Event()

    def __call__(self, password: str, stored: str) -> bool:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self.seen.append((password, stored))
        try:
            if password != PASSWORD:
                self.gate.wait(WAIT)
            return check_password(password, stored)
        finally:
            with self.lock:
                self.running -= 1

    def release(self) -> None:
        self.gate.set()


def in_own_thread(fn, *args) -> defer.Deferred:
    """Run a blocking client in a thread of its own (the flood would fill a pool)."""
    d: defer.Deferred = defer.Deferred()

    def run() -> None:
        try:
            result = fn(*args)
        except BaseException as e:  # noqa: BLE001 - handed to the Deferred
            reactor.callFromThread(d.errback, e)
        else:
            reactor.callFromThread(d.callback, result)

    threading.Thread(target=run, daemon=True).start()
    return d


class SourcedIMAP(imaplib.IMAP4):
    def __init__(self, port: int, source: str) -> None:
        self._source = source
        super().__init__("127.0.0.1", port, timeout=WAIT)

    def _create_socket(self, timeout):
        return socket.create_connection((self.host, self.port), timeout,
                                        source_address=(self._source, 0))


class SourcedPOP3(poplib.POP3):
    def __init__(self, port: int, source: str) -> None:
        self._source = source
        super().__init__("127.0.0.1", port, timeout=WAIT)

    def _create_socket(self, timeout):
        return socket.create_connection((self.host, self.port), timeout,
                                        source_address=(self._source, 0))


def plain(user: str, password: str) -> bytes:
    return b"\0" + user.encode() + b"\0" + password.encode()


class LoginFloodTests(unittest.TestCase):
    async def setUp(self) -> None:
        self.stored = {"alice": hash_password(PASSWORD, "BLF-CRYPT", rounds=4)}
        self.check = GatedCheck()
        self.verifier = PasswordVerifier(BOUND, check=self.check)
        self.addCleanup(self.verifier.stop)
        self.addCleanup(self.check.release)
        checker = HashedPasswordChecker(self.stored.get, verifier=self.verifier)
        portal = Portal(MailhubRealm(MemoryBackend()), [ChainedChecker([checker])])
        # The throttle's delays run on a clock the test moves.
        self.clock = Clock()
        self.throttle = FailureThrottle(self.clock, base_delay=1.0, max_delay=30.0)
        policy = ServerPolicy()
        self.imap = IMAPServerFactory(portal, policy=policy, throttle=self.throttle)
        self.pop3 = POP3ServerFactory(portal, policy=policy, throttle=self.throttle)
        self.ports = [reactor.listenTCP(0, f, interface="127.0.0.1")
                      for f in (self.imap, self.pop3)]
        self.imap_port, self.pop3_port = (p.getHost().port for p in self.ports)

    async def tearDown(self) -> None:
        self.check.release()
        for port in self.ports:
            await port.stopListening()
        for factory in (self.imap, self.pop3):
            for protocol in list(factory.connections):
                protocol.transport.abortConnection()
        await task.deferLater(reactor, 0, lambda: None)

    # -- clients ---------------------------------------------------------------

    def imap_login(self, source: str, user: str, password: str) -> str:
        client = SourcedIMAP(self.imap_port, source)
        try:
            client.login(user, password)
            return "OK"
        except imaplib.IMAP4.error as e:
            return "NO " + str(e)
        finally:
            client.shutdown()

    def imap_authenticate(self, source: str, user: str, password: str) -> str:
        client = SourcedIMAP(self.imap_port, source)
        try:
            client.authenticate("PLAIN", lambda _: plain(user, password))
            return "OK"
        except imaplib.IMAP4.error as e:
            return "NO " + str(e)
        finally:
            client.shutdown()

    def pop3_pass(self, source: str, user: str, password: str) -> str:
        client = SourcedPOP3(self.pop3_port, source)
        try:
            client.user(user)
            client.pass_(password)
            return "OK"
        except poplib.error_proto as e:
            return "NO " + str(e)
        finally:
            client.sock.close()

    def pop3_auth(self, source: str, user: str, password: str) -> str:
        client = SourcedPOP3(self.pop3_port, source)
        try:
            client._shortcmd("AUTH PLAIN " + base64.b64encode(plain(user, password)).decode())
            return "OK"
        except poplib.error_proto as e:
            return "NO " + str(e)
        finally:
            client.sock.close()

    # -- helpers ---------------------------------------------------------------

    async def until(self, condition, what: str) -> None:
        """Poll C{condition} (on the reactor) until true, for at most WAIT s."""
        deadline = time.monotonic() + WAIT
        while not condition():
            if time.monotonic() > deadline:
                self.fail(f"timed out waiting for {what}")
            await task.deferLater(reactor, 0.01, lambda: None)

    async def finish(self, flood: list[defer.Deferred]) -> list[str]:
        """Let the held checks go, run the throttle's delays out, collect the answers."""
        self.check.release()
        deadline = time.monotonic() + WAIT
        while not all(d.called for d in flood):
            if time.monotonic() > deadline:
                self.fail("the flood was not answered")
            self.clock.advance(30)
            await task.deferLater(reactor, 0.01, lambda: None)
        return [await d for d in flood]

    async def log_alice_in(self, source: str = "127.0.0.1") -> None:
        self.assertEqual(
            await in_own_thread(self.imap_login, source, "alice", PASSWORD), "OK")

    # -- the tests ---------------------------------------------------------------

    async def test_concurrent_checks_never_exceed_the_bound(self) -> None:
        # Alice logged in once: her hash is what unknown users cost.
        await self.log_alice_in()
        self.check.seen.clear()
        clients = [self.imap_login, self.imap_authenticate, self.pop3_pass, self.pop3_auth]
        flood = []
        for i in range(16):
            # Eight addresses, so the per-address throttle lets eight checks
            # through at once and only the verifier's bound holds them back.
            source = f"127.0.0.{2 + i % 8}"
            user = "alice" if i % 2 else f"nobody{i}"
            flood.append(in_own_thread(clients[i % 4], source, user, f"guess {i}"))
        await self.until(
            lambda: self.verifier.running == BOUND and self.verifier.waiting >= 4,
            "the flood to fill the verifier")
        self.assertEqual(self.check.running, BOUND)
        answers = await self.finish(flood)

        self.assertTrue(all(a.startswith("NO") for a in answers), answers)
        self.assertIn("AUTHENTICATIONFAILED", answers[0])
        self.assertIn("[AUTH]", answers[2])
        self.assertEqual(self.check.most, BOUND)
        # Every attempt went through the one check: known users against
        # their hash, unknown ones against a dummy of the same scheme and cost.
        self.assertEqual(len(self.check.seen), 16)
        known = [s for p, s in self.check.seen if s == self.stored["alice"]]
        dummies = [s for p, s in self.check.seen if s != self.stored["alice"]]
        self.assertEqual(len(known), 8)
        self.assertEqual(len(dummies), 8)
        self.assertEqual({work_factor(s) for s in dummies}, {work_factor(self.stored["alice"])})
        self.assertEqual(self.verifier.running, 0)

    async def test_a_real_user_gets_in_while_a_flood_is_pending(self) -> None:
        await self.log_alice_in()
        flood = [in_own_thread(self.imap_login if i % 2 else self.pop3_pass,
                               "127.0.0.2", "alice" if i % 3 else f"nobody{i}", f"guess {i}")
                 for i in range(12)]
        await self.until(lambda: self.throttle.pending("127.0.0.2") == 12,
                         "the flood to reach the server")
        # One address holds one check at a time; the rest wait their turn.
        self.assertEqual(self.verifier.running, 1)

        await self.log_alice_in()
        await in_own_thread(self.expect_pop3_ok)
        self.assertFalse(any(d.called for d in flood))
        self.assertEqual(self.throttle.pending("127.0.0.2"), 12)
        self.assertEqual(self.throttle.delay_for("127.0.0.1"), 0)

        answers = await self.finish(flood)
        self.assertTrue(all(a.startswith("NO") for a in answers), answers)
        self.assertEqual(self.check.most, BOUND)
        # Eleven failures from there, counted one by one: the next waits 30 s.
        self.assertEqual(self.throttle.delay_for("127.0.0.2"), 30)

    def expect_pop3_ok(self) -> None:
        client = SourcedPOP3(self.pop3_port, "127.0.0.1")
        try:
            client.user("alice")
            client.pass_(PASSWORD)
            client.stat()
        finally:
            client.quit()

    async def test_a_client_that_leaves_while_waiting_costs_no_check(self) -> None:
        await self.log_alice_in()
        self.check.seen.clear()
        first = in_own_thread(self.imap_login, "127.0.0.2", "alice", "guess 1")
        await self.until(lambda: self.verifier.running == 1, "the first check")


        def connect_and_send() -> socket.socket:
            raw = socket.create_connection(("127.0.0.1", self.imap_port), WAIT,
                                           source_address=("127.0.0.2", 0))
            raw.makefile("rb").readline()  # the greeting
            raw.sendall(b"a LOGIN alice guess2\r\n")
            return raw

        raw = await in_own_thread(connect_and_send)
        await self.until(lambda: self.throttle.pending("127.0.0.2") == 2,
                         "the second attempt to wait")
        raw.close()
        await self.until(lambda: len(self.imap.connections) == 1, "the server to see it leave")
        self.assertTrue((await self.finish([first]))[0].startswith("NO"))


        def dropped() -> bool:
            self.clock.advance(30)  # the second's turn comes after a delay
            return self.throttle.pending("127.0.0.2") == 0

        await self.until(dropped, "the second attempt to be dropped")
        self.assertEqual([p for p, _ in self.check.seen], ["guess 1"])
