"""
SORT and THREAD checked against Dovecot: the same messages appended to a
private Dovecot on loopback (its own configuration, base directory and
Maildir, started and stopped here) and to this server, the same commands
sent to both, the same untagged answers expected.
"""

from __future__ import annotations

import imaplib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from harness import IMAPServerTestCase, on_every_store
from sort_messages import MESSAGES

DOVECOT = shutil.which("dovecot") or (
    "/usr/sbin/dovecot" if os.path.exists("/usr/sbin/dovecot") else None)

COMMANDS = [
    b"SORT (ARRIVAL) UTF-8 ALL",
    b"SORT (DATE) UTF-8 ALL",
    b"SORT (REVERSE DATE) UTF-8 ALL",
    b"SORT (SUBJECT) UTF-8 ALL",
    b"SORT (REVERSE SUBJECT) UTF-8 ALL",
    b"SORT (SUBJECT REVERSE DATE) UTF-8 ALL",
    b"SORT (FROM) UTF-8 ALL",
    b"SORT (REVERSE FROM DATE) UTF-8 ALL",
    b"SORT (TO) UTF-8 ALL",
    b"SORT (CC) UTF-8 ALL",
    b"SORT (SIZE) UTF-8 ALL",
    b"SORT (REVERSE SIZE) UTF-8 ALL",
    b"SORT (DISPLAYFROM) UTF-8 ALL",
    b"SORT (DISPLAYTO) UTF-8 ALL",
    b"SORT (SUBJECT) UTF-8 SUBJECT meeting",
    b"SORT (DATE) US-ASCII SINCE 5-Mar-2022",
    b"UID SORT (REVERSE ARRIVAL) UTF-8 2:11",
    b"SORT RETURN (MIN MAX COUNT ALL) (DATE) UTF-8 ALL",
    b"UID SORT RETURN () (SUBJECT) UTF-8 NOT SUBJECT budget",
    b"SORT RETURN (COUNT) (DATE) UTF-8 SUBJECT nothing-matches",
    b"THREAD ORDEREDSUBJECT UTF-8 ALL",
    b"THREAD REFERENCES UTF-8 ALL",
    b"UID THREAD REFERENCES UTF-8 UNDELETED",
    b"THREAD REFERENCES UTF-8 1:6",
    b"THREAD ORDEREDSUBJECT US-ASCII TEXT nothing-matches",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateDovecot:
    """A Dovecot of one user, on a loopback port, in a directory of its own."""

    user, password = "alice", "wonderland"

    def __init__(self) -> None:
        self.root = tempfile.mkdtemp(prefix="mailhub-sort-dovecot-")
        os.chmod(self.root, 0o755)
        if os.geteuid() == 0:
            mail_user, login_user, internal_user = "nobody", "dovenull", "dovecot"
        else:
            mail_user = login_user = internal_user = pwd.getpwuid(os.geteuid()).pw_name
        account = pwd.getpwnam(mail_user)
        self.port = _free_port()
        for sub in ("mail", "home", f"home/{self.user}"):
            os.makedirs(os.path.join(self.root, sub))
            os.chown(os.path.join(self.root, sub), account.pw_uid, account.pw_gid)
        with open(os.path.join(self.root, "passwd"), "w") as f:
            f.write(f"{self.user}:{{PLAIN}}{self.password}::::::\n")
        os.chmod(os.path.join(self.root, "passwd"), 0o644)
        self.config = os.path.join(self.root, "dovecot.conf")
        with open(self.config, "w") as f:
            f.write(f"""\
base_dir = {self.root}/run
state_dir = {self.root}/state
log_path = {self.root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
default_internal_user = {internal_user}
default_login_user = {login_user}
first_valid_uid = {min(account.pw_uid, 500)}
mail_location = maildir:{self.root}/mail/%u
passdb {{
  driver = passwd-file
  args = username_format=%u {self.root}/passwd
}}
userdb {{
  driver = static
  args = uid={account.pw_uid} gid={account.pw_gid} home={self.root}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
""")
        self.process = subprocess.Popen([DOVECOT, "-F", "-c", self.config],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("Dovecot did not start")
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def _fill(port: int) -> None:
    client = imaplib.IMAP4("127.0.0.1", port, timeout=20)
    client.login("alice", "wonderland")
    for content, when in MESSAGES:
        typ, _ = client.append("INBOX", None, imaplib.Time2Internaldate(when), content)
        assert typ == "OK"
    client.logout()


def _answers(port: int) -> list[list[bytes]]:
    """The untagged lines of each of L{COMMANDS}, the tagged status apart."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    reader = sock.makefile("rb")
    reader.readline()

    def command(tag: bytes, line: bytes) -> list[bytes]:
        sock.sendall(tag + b" " + line + b"\r\n")
        lines = []
        while True:
            got = reader.readline()
            if not got:
                raise ConnectionError("connection closed")
            if got.startswith(tag + b" "):
                assert got.split(b" ")[1] == b"OK", got
                return lines
            lines.append(got)

    command(b"l", b"LOGIN alice wonderland")
    command(b"s", b"EXAMINE INBOX")
    out = [command(b"t%d" % i, line) for i, line in enumerate(COMMANDS)]
    sock.close()
    return out


@on_every_store
class SameAsDovecotTests(IMAPServerTestCase):
    if DOVECOT is None:
        skip = "Dovecot is needed (the CI script installs dovecot-imapd)"

    async def test_sort_and_thread_answers_match(self) -> None:
        def run():
            dovecot = PrivateDovecot()
            try:
                _fill(dovecot.port)
                theirs = _answers(dovecot.port)
            finally:
                dovecot.stop()
            _fill(self.port)
            return theirs, _answers(self.port)

        theirs, ours = await self.in_thread(run)
        for line, expected, got in zip(COMMANDS, theirs, ours):
            # Dovecot answers an empty THREAD with "* THREAD " and a space
            # the grammar does not have (RFC 5256 section 5: thread-data).
            expected = [re.sub(rb"^\* THREAD \r\n$", b"* THREAD\r\n", e) for e in expected]
            self.assertEqual(got, expected, line.decode())
