"""PasswordVerifier: the bound, the order of the queue, cancelling a wait."""

from __future__ import annotations

import threading
import time

from twisted.internet import reactor, task
from twisted.internet.defer import CancelledError, ensureDeferred
from twisted.trial.unittest import TestCase

from twisted_mailhub.auth.schemes import hash_password
from twisted_mailhub.auth.verifier import SUSPECT, PasswordVerifier

STORED = hash_password("secret", "BLF-CRYPT", rounds=4)  # a slow scheme: checked in the pool


class HeldCheck:
    """Records the order checks start in and holds each until let go."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.gates: dict[str, threading.Event] = {}
        self.lock = threading.Lock()
        self.released = False

    def gate(self, password: str) -> threading.Event:
        with self.lock:
            if password not in self.gates:
                self.gates[password] = threading.Event()
                if self.released:
                    self.gates[password].set()
            return self.gates[password]

    def __call__(self, password: str, stored: str) -> bool:
        with self.lock:
            self.started.append(password)
        self.gate(password).wait(10)
        return password == "secret"

    def release_all(self) -> None:
        with self.lock:
            self.released = True
        for password in list(self.gates):
            self.gate(password).set()


class VerifierTests(TestCase):
    def setUp(self) -> None:
        self.check = HeldCheck()
        self.verifier = PasswordVerifier(1, check=self.check)
        self.addCleanup(self.verifier.stop)
        self.addCleanup(self.check.release_all)

    async def until(self, condition) -> None:
        deadline = time.monotonic() + 10
        while not condition():
            self.assertLess(time.monotonic(), deadline, "timed out")
            await task.deferLater(reactor, 0.005, lambda: None)

    def start(self, password: str, suspect: bool = False):
        marked = SUSPECT.set(suspect)
        try:
            return ensureDeferred(self.verifier.verify(password, STORED))
        finally:
            SUSPECT.reset(marked)

    async def test_unmarked_checks_go_before_suspect_ones(self) -> None:
        flood = [self.start(f"guess {i}", suspect=True) for i in range(4)]
        user = self.start("secret")
        await self.until(lambda: self.check.started == ["guess 0"])
        self.assertEqual((self.verifier.running, self.verifier.waiting), (1, 4))
        self.check.gate("guess 0").set()
        # The user came last but is checked next.
        await self.until(lambda: len(self.check.started) == 2)
        self.assertEqual(self.check.started[1], "secret")
        self.check.release_all()
        self.assertTrue(await user)
        self.assertEqual([await d for d in flood], [False] * 4)
        self.assertEqual(self.check.started,
                         ["guess 0", "secret", "guess 1", "guess 2", "guess 3"])
        self.assertEqual((self.verifier.running, self.verifier.waiting), (0, 0))

    async def test_cancelled_wait_leaves_the_queue(self) -> None:
        first = self.start("guess 0")
        second = self.start("guess 1")
        third = self.start("secret")
        await self.until(lambda: self.check.started == ["guess 0"])
        second.cancel()
        with self.assertRaises(CancelledError):
            await second
        self.assertEqual(self.verifier.waiting, 1)
        self.check.release_all()
        self.assertEqual((await first, await third), (False, True))
        self.assertEqual(self.check.started, ["guess 0", "secret"])

    async def test_cheap_schemes_are_checked_on_the_spot(self) -> None:
        self.check.release_all()
        self.assertTrue(await PasswordVerifier(1).verify("pw", "{PLAIN}pw"))
        verifier = PasswordVerifier(1, check=self.check)
        self.assertFalse(await verifier.verify_unknown("pw", "{SSHA256}"))
        self.assertEqual(self.check.started[-1:], ["pw"])
        self.assertEqual(verifier.running, 0)

    def test_concurrency_must_be_positive(self) -> None:
        with self.assertRaises(ValueError):
            PasswordVerifier(0)
