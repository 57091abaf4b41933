"""
Real ``twistd mailhub`` processes with LMTP listeners for end-to-end tests,
which can be stopped cleanly, killed with SIGKILL and started again on the
same store, and the clients the tests use against them.
"""

from __future__ import annotations

import imaplib
import re
import signal
import smtplib
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stores import PG_URL, create_pg_database, drop_pg_database
from test_plugin import DEADLINE, REPO, subprocess_env, twistd_command, wait_for

LISTENING = re.compile(r"\b(IMAPS?|POP3S?|LMTP) listening on (\S+)")
LISTENER_OPTIONS = ("--imap", "--imaps", "--pop3", "--pop3s", "--lmtp")
#: The persistent stores a server process is run on.
KINDS = ["sqlite", "mbox", "maildir"] + (["postgresql"] if PG_URL else [])


def store_url(kind: str, directory: Path, request: Any) -> str:
    """A fresh store of C{kind} in C{directory} (a database of its own for PostgreSQL)."""
    if kind == "sqlite":
        return f"sqlite:{directory / 'mail.sqlite'}"
    if kind in ("mbox", "maildir"):
        return f"{kind}:{directory / 'mail'}"
    url = create_pg_database()
    request.addfinalizer(lambda: drop_pg_database(url))
    return url


@dataclass
class Server:
    """
    A C{twistd -n mailhub ARGS} process run in C{workdir}.  After L{start},
    C{listening} maps each label to the listeners' addresses in the order
    logged (C{"127.0.0.1:PORT"} or a UNIX socket path).
    """

    workdir: Path
    args: tuple[str, ...]
    process: subprocess.Popen | None = None
    listening: dict[str, list[str]] = field(default_factory=dict)
    runs: int = 0

    @property
    def log(self) -> Path:
        return self.workdir / f"twistd-{self.runs}.log"

    def start(self) -> "Server":
        self.runs += 1
        expected = sum(1 for a in self.args if a in LISTENER_OPTIONS) or 1
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                twistd_command("--pidfile=", "-n", "mailhub", *self.args),
                cwd=self.workdir, env=subprocess_env(self.workdir),
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)

        def listening() -> dict[str, list[str]] | None:
            found = LISTENING.findall(self.log.read_text(errors="replace"))
            if len(found) < expected:
                return None
            result: dict[str, list[str]] = {}
            for label, address in found:
                result.setdefault(label, []).append(address)
            return result

        self.listening = wait_for(listening, "the server to listen", self.process, self.log)
        return self

    def port(self, label: str, index: int = 0) -> int:
        return int(self.listening[label][index].rpartition(":")[2])

    def kill(self) -> None:
        """SIGKILL: no chance to finish anything."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=DEADLINE)

    def stop(self) -> str:
        """SIGTERM, and check the server shut down cleanly; return its log."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                status = self.process.wait(timeout=DEADLINE)
            except subprocess.TimeoutExpired:
                self.process.kill()
                raise
        else:
            status = self.process.returncode
        output = self.log.read_text(errors="replace")
        assert status in (0, -signal.SIGTERM), output
        assert "Traceback" not in output, output
        return output

    def __enter__(self) -> "Server":
        return self.start()

    def __exit__(self, kind: Any, value: Any, tb: Any) -> None:
        if kind is None:
            self.stop()
        elif self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def lmtp_send(connect: Any, sender: str, recipients: list[str], message: bytes
              ) -> dict[str, tuple[int, bytes]]:
    """
    One transaction over C{smtplib.LMTP}; return the final reply of each
    recipient: its RCPT reply if refused there, else its reply after DATA
    (RFC 2033 section 4.2, one per accepted recipient in RCPT order).
    """
    client: smtplib.LMTP = connect()
    try:
        client.ehlo("client.example")
        code, text = client.mail(sender)
        assert code == 250, (code, text)
        replies = {address: client.rcpt(address) for address in recipients}
        accepted = [address for address, (code, _) in replies.items() if code == 250]
        if accepted:
            replies[accepted[0]] = client.data(message)
            for address in accepted[1:]:
                replies[address] = client.getreply()
        client.quit()
    finally:
        client.close()
    return replies


def lmtp_tcp(port: int) -> Any:
    return lambda: smtplib.LMTP("127.0.0.1", port, timeout=DEADLINE)


def lmtp_unix(path: str) -> Any:
    return lambda: smtplib.LMTP(path, timeout=DEADLINE)


def imap_messages(port: int, user: str, password: str, mailbox: str = "INBOX"
                  ) -> list[bytes]:
    """Every message of C{mailbox}, whole, in UID order."""
    with imaplib.IMAP4("127.0.0.1", port, timeout=DEADLINE) as client:
        client.login(user, password)
        typ, data = client.select(mailbox, readonly=True)
        assert typ == "OK", data
        typ, data = client.uid("FETCH", "1:*", "(BODY.PEEK[])")
        assert typ == "OK"
        client.logout()
    return [item[1] for item in data if isinstance(item, tuple)]


def mailhub_command(*args: str) -> list[str]:
    """The ``mailhub`` command run from the source tree with this interpreter."""
    return [sys.executable, "-m", "twisted_mailhub.cli", *args]


def command_env() -> dict[str, str]:
    import os

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    return env
