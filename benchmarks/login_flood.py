"""
Password-guessing flood: what it costs the server, and what a real user
feels meanwhile.  Run by hand:

    python -m benchmarks.login_flood --seconds 24 --connections 30 --addresses 8

It starts a server in a child process (``twistd mailhub`` built with
L{make_service}) over a fresh SQLite store holding one user whose password
is hashed with the default scheme (Argon2id), then, for C{--seconds}:

  - C{--connections} clients each send wrong IMAP LOGINs in a loop (half of
    them for the real user, half for unknown ones), from C{--addresses}
    loopback source addresses (127.0.0.2, 127.0.0.3, ...);
  - every second a client from 127.0.0.1 logs in with the right password and
    its latency is recorded.

The child's resident memory is sampled from ``/proc`` all along.  Printed:
memory before and at its peak, the number of refused logins answered, and the
real user's login latencies (median, maximum).
"""

from __future__ import annotations

import argparse
import imaplib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

USER, PASSWORD = "alice", "correct horse battery staple"


def serve(store: str, port: int) -> None:
    """The child: add the user, then serve IMAP on 127.0.0.1:C{port}."""
    from twisted.internet import reactor
    from twisted.internet.defer import ensureDeferred

    from twisted_mailhub.auth.schemes import hash_password
    from twisted_mailhub.backends.registry import open_backend
    from twisted_mailhub.config import MailhubSettings
    from twisted_mailhub.service import make_service

    settings = MailhubSettings(imap=(f"tcp:{port}:interface=127.0.0.1",), store=store)
    backend = open_backend(store)

    async def start() -> None:
        await backend.add_user(USER, hash_password(PASSWORD))
        make_service(settings, backend=backend).startService()
        print("ready", flush=True)

    reactor.callWhenRunning(lambda: ensureDeferred(start()))
    reactor.run()


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SourcedIMAP(imaplib.IMAP4):
    """imaplib from a chosen loopback source address."""

    def __init__(self, host: str, port: int, source: str, timeout: float) -> None:
        self._source = source
        super().__init__(host, port, timeout=timeout)

    def _create_socket(self, timeout):
        return socket.create_connection((self.host, self.port), timeout,
                                        source_address=(self._source, 0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=24.0)
    parser.add_argument("--connections", type=int, default=30)
    parser.add_argument("--addresses", type=int, default=8)
    parser.add_argument("--serve", nargs=2, metavar=("STORE", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return

    workdir = tempfile.mkdtemp(prefix="mailhub-flood-")
    port = free_port()
    child = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.login_flood", "--serve",
         "sqlite:" + os.path.join(workdir, "flood.sqlite"), str(port)],
        stdout=subprocess.PIPE,
    )
    try:
        if child.stdout.readline() != b"ready\n":
            raise SystemExit("the server did not start")
        time.sleep(1.0)
        before = rss_kib(child.pid)
        stop = time.monotonic() + args.seconds
        refused = [0]
        errors = [0]
        lock = threading.Lock()

        def flood(i: int) -> None:
            source = f"127.0.0.{2 + i % max(args.addresses, 1)}"
            n = 0
            while time.monotonic() < stop:
                n += 1
                name = USER if (i + n) % 2 else f"nobody{i}x{n}"
                try:
                    client = SourcedIMAP("127.0.0.1", port, source, timeout=120)
                    try:
                        client.login(name, "wrong guess %d" % n)
                    except imaplib.IMAP4.error:
                        with lock:
                            refused[0] += 1
                    finally:
                        client.shutdown()
                except OSError:
                    with lock:
                        errors[0] += 1

        peak = [before]

        def sample() -> None:
            while time.monotonic() < stop + 5:
                peak[0] = max(peak[0], rss_kib(child.pid))
                time.sleep(0.2)

        threads = [threading.Thread(target=flood, args=(i,)) for i in range(args.connections)]
        sampler = threading.Thread(target=sample)
        sampler.start()
        for t in threads:
            t.start()
        latencies = []
        while time.monotonic() < stop:
            time.sleep(1.0)
            started = time.perf_counter()
            client = SourcedIMAP("127.0.0.1", port, "127.0.0.1", timeout=120)
            client.login(USER, PASSWORD)
            latencies.append(time.perf_counter() - started)
            client.logout()
        for t in threads:
            t.join()
        sampler.join()
        print(f"flood: {args.connections} connections from {args.addresses} addresses "
              f"for {args.seconds:.0f} s; {refused[0]} refusals answered, "
              f"{errors[0]} connection errors")
        print(f"server RSS: {before / 1024:.0f} MiB before, {peak[0] / 1024:.0f} MiB peak")
        print(f"real user's login: median {statistics.median(latencies):.2f} s, "
              f"max {max(latencies):.2f} s over {len(latencies)} logins")
    finally:
        child.terminate()
        child.wait()


if __name__ == "__main__":
    main()
