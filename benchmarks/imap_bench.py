"""
IMAP benchmark: fill a mailbox of N messages in each store, then measure
what a client feels, over a real loopback socket with Python's imaplib.

    python -m benchmarks.imap_bench --store memory: --store sqlite:bench.sqlite -n 1000 -n 10000

For each store and N it prints SELECT, STATUS, NOOP and single-message STORE
latencies (median of several runs), the FETCH 1:* (UID FLAGS) rate, FETCH of
full bodies in MB/s, SEARCH latencies (a flag and a header key), and the
APPEND rate over IMAP.  The mailbox is filled through the store's own API in
batches (what a bulk import would do), so the figures for large N are not
dominated by the fill.
"""

from __future__ import annotations

import argparse
import imaplib
import os
import resource
import shutil
import socket
import statistics
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone

from twisted.cred.portal import Portal
from twisted.internet import reactor
from twisted.internet.threads import blockingCallFromThread

from twisted_mailhub.auth.checkers import InMemoryChecker
from twisted_mailhub.auth.realm import MailhubRealm
from twisted_mailhub.backends.registry import open_backend
from twisted_mailhub.imap.protocol import IMAPServerFactory
from twisted_mailhub.model import AppendRequest

USER, PASSWORD = "bench", "bench"
FILL_BATCH = 500


def make_message(i: int) -> bytes:
    body = ("Line %d of a benchmark message body, long enough to look real.\r\n" % i) * (
        20 + i % 60)
    return (
        f"From: Sender {i % 97} <sender{i % 97}@example.org>\r\n"
        f"To: {USER}@example.com\r\nSubject: Benchmark message {i}\r\n"
        f"Date: Tue, 1 Mar 2022 10:{i % 60:02d}:00 +0000\r\n"
        f"Message-ID: <{i}@bench.example.org>\r\n\r\n{body}"
    ).encode()


def median_ms(fn, runs: int = 7) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


class Server:
    """A reactor in a background thread serving one store on 127.0.0.1."""

    def __init__(self, url: str) -> None:
        self.url = url

    def start(self) -> None:
        def setup():
            self.backend = open_backend(self.url)
            portal = Portal(MailhubRealm(self.backend), [InMemoryChecker({USER: PASSWORD})])
            self.port = reactor.listenTCP(0, IMAPServerFactory(portal), interface="127.0.0.1")
            return self.port.getHost().port

        self.portnum = blockingCallFromThread(reactor, setup)

    async def _fill(self, start: int, count: int) -> None:
        store = await self.backend.open_store(USER)
        inbox = await store.get_mailbox("INBOX")
        base = datetime(2022, 3, 1, tzinfo=timezone.utc)
        requests = [AppendRequest(make_message(i), frozenset({"\\Seen"}) if i % 3 else frozenset(),
                                  base + timedelta(minutes=i))
                    for i in range(start, start + count)]
        await inbox.append(requests)

    def fill(self, n: int) -> float:
        from twisted.internet.defer import Deferred

        start = time.perf_counter()
        for first in range(0, n, FILL_BATCH):
            count = min(FILL_BATCH, n - first)
            blockingCallFromThread(reactor, lambda: Deferred.fromCoroutine(
                self._fill(first, count)))
        return n / (time.perf_counter() - start)

    def stop(self) -> None:
        from twisted.internet.defer import ensureDeferred

        async def close():
            await self.port.stopListening()
            closer = getattr(self.backend, "close", None)
            if closer is not None:
                await closer()

        blockingCallFromThread(reactor, lambda: ensureDeferred(close()))


def measure(url: str, n: int) -> dict[str, float]:
    server = Server(url)
    server.start()
    try:
        results = {"fill/s": server.fill(n)}
        c = imaplib.IMAP4("127.0.0.1", server.portnum)
        # imaplib writes a literal and its closing CRLF separately; without
        # TCP_NODELAY, Nagle's algorithm and delayed ACKs add ~40 ms to every
        # APPEND, which would measure the client, not the server.
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.login(USER, PASSWORD)
        results["SELECT ms"] = median_ms(lambda: c.select("INBOX"))
        results["STATUS ms"] = median_ms(lambda: c.status("INBOX", "(MESSAGES UNSEEN UIDNEXT)"))
        results["NOOP ms"] = median_ms(c.noop)
        middle = str(n // 2)
        results["STORE 1 ms"] = median_ms(
            lambda: c.uid("STORE", middle, "+FLAGS", "(\\Flagged)"), runs=5)
        start = time.perf_counter()
        typ, data = c.fetch("1:*", "(UID FLAGS)")
        elapsed = time.perf_counter() - start
        assert typ == "OK" and len(data) == n, (typ, len(data))
        results["FETCH FLAGS msg/s"] = n / elapsed
        bodies = min(n, 2000)
        start = time.perf_counter()
        typ, data = c.fetch("1:%d" % bodies, "(BODY.PEEK[])")
        elapsed = time.perf_counter() - start
        size = sum(len(part[1]) for part in data if isinstance(part, tuple))
        results["FETCH bodies MB/s"] = size / elapsed / 2**20
        results["SEARCH UNSEEN ms"] = median_ms(lambda: c.search(None, "UNSEEN"), runs=3)
        results["SEARCH FROM ms"] = median_ms(
            lambda: c.search(None, "FROM", "sender42"), runs=3)
        appends = 200
        msg = make_message(n + 1)
        start = time.perf_counter()
        for _ in range(appends):
            c.append("INBOX", None, None, msg)
        results["APPEND msg/s"] = appends / (time.perf_counter() - start)
        c.logout()
    finally:
        server.stop()
    results["max RSS MB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--store", action="append", default=[],
                        help="store URL (repeatable).  'sqlite:' and 'mbox:' alone make a "
                        "fresh store in a temporary directory; a postgresql:// URL names a "
                        "server on which a fresh database is created and dropped per run")
    parser.add_argument("-n", "--messages", type=int, action="append", default=[],
                        help="mailbox size (repeatable; default 1000)")
    args = parser.parse_args(argv)
    stores = args.store or ["memory:", "sqlite:"]
    sizes = args.messages or [1000]
    thread = threading.Thread(target=reactor.run, kwargs={"installSignalHandlers": False},
                              daemon=True)
    thread.start()
    rows = []
    try:
        for url in stores:
            for n in sizes:
                workdir = tempfile.mkdtemp(prefix="mailhub-bench-")
                real, dropper = url, None
                if url in ("sqlite:", "mbox:"):
                    real = url + os.path.join(workdir, "store")
                elif url.startswith("postgresql"):
                    real, dropper = fresh_database(url)
                try:
                    rows.append((url, n, measure(real, n)))
                finally:
                    shutil.rmtree(workdir, ignore_errors=True)
                    if dropper is not None:
                        dropper()
                print_table(rows[-1:], header=len(rows) == 1)
    finally:
        reactor.callFromThread(reactor.stop)
        thread.join(10)


def fresh_database(url: str):
    """A new empty database on the server of C{url}, and a function dropping it."""
    import uuid

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin_url = make_url(url).set(drivername="postgresql+psycopg")
    name = "mailhub_bench_" + uuid.uuid4().hex[:12]

    def run(sql: str) -> None:
        engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(text(sql))
        finally:
            engine.dispose()

    run(f'CREATE DATABASE "{name}"')
    return (admin_url.set(database=name).render_as_string(hide_password=False),
            lambda: run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def print_table(rows, header: bool) -> None:
    keys = list(rows[0][2])
    if header:
        print(f"{'store':<24} {'N':>7} " + " ".join(f"{k:>17}" for k in keys))
    for url, n, results in rows:
        print(f"{url:<24} {n:>7} " + " ".join(f"{results[k]:>17.1f}" for k in keys), flush=True)


if __name__ == "__main__":
    main()
