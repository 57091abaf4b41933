"""
The twisted_mailhub server of the benchmark, run as a process of its own so
that the measuring client does not share its interpreter (and GIL).

    python -m benchmarks.server --store URL [--fill N] [--fill-only]

With C{--fill N} the INBOX of the benchmark user is first filled with the
N generated messages of L{benchmarks.messages} through the store's own API
(in batches, as a bulk import would), and the 50 extra mailboxes are
created with a few messages each.  With C{--fill-only} the process exits
after the fill (prints C{{"filled": N, "seconds": ...}}); otherwise it
serves IMAP and POP3 on ephemeral loopback ports, printing one JSON line
C{{"imap": PORT, "pop3": PORT, "pid": PID}} once it listens, and runs until
it receives SIGTERM or its parent process exits.

The server is the one C{twistd mailhub} runs (L{make_service}), with the
per-address and per-user connection limits raised (what
C{--max-connections-per-ip} and C{--max-connections-per-user} set) so that
the benchmark can hold 10,000 idle connections.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

from twisted.internet import defer, task

from twisted_mailhub.backends.registry import open_backend
from twisted_mailhub.config import MailhubSettings
from twisted_mailhub.model import AppendRequest

from benchmarks.messages import EXTRA_MESSAGES, extra_mailbox_names, generate

USER, PASSWORD = "bench", "bench"
FILL_BATCH = 250
CONNECTION_LIMIT = 50_000


def raise_fd_limit() -> None:
    """Let this process hold as many descriptors as the hard limit allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _requests(first: int, count: int, seed: int) -> list[AppendRequest]:
    out = []
    for i in range(first, first + count):
        m = generate(i, seed, USER)
        out.append(AppendRequest(m.content, m.flags, m.internaldate))
    return out


async def fill(backend, n: int, seed: int, extras: int) -> None:
    """Append N messages to the INBOX of L{USER} and create the extra mailboxes."""
    store = await backend.open_store(USER)
    inbox = await store.get_mailbox("INBOX")
    for first in range(0, n, FILL_BATCH):
        await inbox.append(_requests(first, min(FILL_BATCH, n - first), seed))
    for k, name in enumerate(extra_mailbox_names(extras)):
        await store.create_mailbox(name)
        mailbox = await store.get_mailbox(name)
        await mailbox.append(_requests(n + k * EXTRA_MESSAGES, EXTRA_MESSAGES, seed))


async def analyze(backend) -> None:
    """
    On PostgreSQL, gather the planner statistics that autovacuum keeps on
    a deployed server: without them (a server with autovacuum off, just
    filled) the planner scans whole mailboxes where an index would do.
    """
    db = getattr(backend, "db", None)
    if db is None or db.dialect != "postgresql":
        return
    from sqlalchemy import text

    await db.write(lambda conn: conn.execute(text("ANALYZE")))


async def _run(reactor, args) -> None:
    from twisted_mailhub.service import give_summarizer, make_service

    backend = open_backend(args.store)
    # As the server and the import commands do: summaries made as stored.
    give_summarizer(backend)
    if args.fill:
        start = time.perf_counter()
        await fill(backend, args.fill, args.seed, args.extras)
        seconds = time.perf_counter() - start
        await analyze(backend)
        if args.fill_only:
            await defer.ensureDeferred(backend.close())
            print(json.dumps({"filled": args.fill, "seconds": seconds}), flush=True)
            return
    settings = MailhubSettings(
        imap=("tcp:0:interface=127.0.0.1:backlog=4096",),
        pop3=("tcp:0:interface=127.0.0.1:backlog=1024",),
        store=args.store, users={USER: PASSWORD},
        max_connections_per_ip=CONNECTION_LIMIT, max_connections_per_user=CONNECTION_LIMIT)
    service = make_service(settings, backend=backend)
    service.startService()
    while len(service.ports) < 2:
        await task.deferLater(reactor, 0.01, lambda: None)
    ports = {label.lower(): port.getHost().port for label, port in service.ports}
    print(json.dumps({**ports, "pid": os.getpid()}), flush=True)
    stopped = defer.Deferred()
    reactor.addSystemEventTrigger("before", "shutdown", lambda: defer.ensureDeferred(
        _stop(service, stopped)))
    # Stop with the benchmark, even when it is killed without stopping us.
    parent = os.getppid()
    watch = task.LoopingCall(lambda: os.getppid() != parent and reactor.stop())
    watch.start(1.0, now=False)
    await stopped


async def _stop(service, stopped) -> None:
    await service.stopService()
    stopped.callback(None)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--store", required=True, help="store URL")
    parser.add_argument("--fill", type=int, default=0, help="messages to put in the INBOX first")
    parser.add_argument("--fill-only", action="store_true", help="exit after the fill")
    parser.add_argument("--seed", type=int, default=1, help="message generator seed")
    parser.add_argument("--extras", type=int, default=50, help="extra mailboxes to create")
    args = parser.parse_args(argv)
    raise_fd_limit()
    task.react(lambda reactor: defer.ensureDeferred(_run(reactor, args)))


if __name__ == "__main__":
    sys.exit(main())
