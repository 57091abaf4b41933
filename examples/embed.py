"""
Embedding the IMAP server in an existing Twisted application.

The application here already runs its own periodic job (it delivers a
"report" message to alice's INBOX every few seconds); the IMAP server is
added next to it, sharing the reactor and the in-memory store:

    python examples/embed.py                       # a free port on 127.0.0.1
    python examples/embed.py tcp:1143:interface=127.0.0.1

It prints the address it listens on.  Log in as alice, password wonderland.
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from email.message import EmailMessage
from email.policy import SMTP

from twisted.cred.portal import Portal
from twisted.internet import defer, task
from twisted.internet.endpoints import serverFromString
from twisted.logger import Logger

from twisted_mailhub.auth.checkers import InMemoryChecker
from twisted_mailhub.auth.realm import MailhubRealm
from twisted_mailhub.backends.memory import MemoryBackend
from twisted_mailhub.imap.protocol import IMAPServerFactory
from twisted_mailhub.model import AppendRequest

log = Logger()
DEFAULT_ENDPOINT = "tcp:0:interface=127.0.0.1"


def report(number: int) -> bytes:
    """The bytes of the application's report message number C{number}."""
    message = EmailMessage()
    message["From"] = "app@example.invalid"
    message["To"] = "alice@example.invalid"
    message["Subject"] = f"Report {number}"
    message["Date"] = datetime.now(timezone.utc)
    message.set_content(f"This is report {number} from the application.\n")
    return message.as_bytes(policy=SMTP)  # CRLF line ends, as IMAP wants


class Reporter:
    """The application's own job: deliver a report to a user's INBOX."""

    def __init__(self, backend: MemoryBackend, user: str) -> None:
        self.backend = backend
        self.user = user
        self.sent = 0

    async def deliver(self) -> None:
        self.sent += 1
        store = await self.backend.open_store(self.user)
        inbox = await store.get_mailbox("INBOX")
        await inbox.append([AppendRequest(report(self.sent))])


async def main(reactor, description: str = DEFAULT_ENDPOINT) -> None:
    backend = MemoryBackend()
    portal = Portal(MailhubRealm(backend), [InMemoryChecker({"alice": "wonderland"})])

    reporter = Reporter(backend, "alice")
    job = task.LoopingCall(lambda: defer.ensureDeferred(reporter.deliver()))
    job.clock = reactor
    job.start(5.0)  # the first report is delivered at once

    port = await serverFromString(reactor, description).listen(IMAPServerFactory(portal))
    address = port.getHost()
    print(f"IMAP server listening on {address.host}:{address.port}", flush=True)

    async def shutdown() -> None:
        job.stop()
        await port.stopListening()
        await backend.close()

    # The reactor waits for this before it stops (Ctrl-C or SIGTERM).
    reactor.addSystemEventTrigger("before", "shutdown", lambda: defer.ensureDeferred(shutdown()))
    await defer.Deferred()  # run until the reactor stops

if __name__ == "__main__":
    task.react(lambda reactor, *args: defer.ensureDeferred(main(reactor, *args)), sys.argv[1:])
