"""
Debian's Postfix delivering into the server over LMTP, as a site runs it.

A private Postfix instance (its own configuration directory, queue and log,
smtpd on an unprivileged loopback port, ``virtual_transport`` pointing at
our LMTP listener) takes mail with Python's smtplib for two users and one
unknown address of a virtual domain.  The users' IDLE clients see the mail
arrive; the unknown recipient, refused by our RCPT reply, bounces, and the
bounce itself comes back to the sender's mailbox through LMTP.
"""

from __future__ import annotations

import email
import os
import pwd
import shutil
import smtplib
import socket
import subprocess
import tempfile
import time
from email.policy import default as default_policy
from pathlib import Path
from typing import Any, Iterator

import pytest
from imapclient import IMAPClient

from lmtp_harness import Server, imap_messages

POSTFIX = shutil.which("postfix") or (os.path.exists("/usr/sbin/postfix") and "/usr/sbin/postfix")
USERS = {"alice": "wonderland", "bob": "builder", "carol": "secret"}
DEADLINE = 30.0


def _runnable() -> bool:
    if not POSTFIX or os.geteuid() != 0:
        return False
    try:
        pwd.getpwnam("postfix")
    except KeyError:
        return False
    return True


pytestmark = pytest.mark.skipif(
    not _runnable(), reason="needs Debian's postfix package (installed by the CI script) and "
    "root, which starting a Postfix instance takes")

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
maillog_file = {root}/maillog
maillog_file_prefixes = {root}
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.test.example
mydomain = test.example
myorigin = $myhostname
mydestination =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
local_recipient_maps =
relay_domains =
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
# Every address of the domain goes to the LMTP server, which knows its users:
# an unknown one is refused there, at RCPT, and Postfix bounces it.
virtual_mailbox_domains = foo.example
virtual_mailbox_maps =
smtpd_reject_unlisted_recipient = no
virtual_transport = lmtp:inet:127.0.0.1:{lmtp_port}
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
smtputf8_enable = yes
biff = no
"""

# No chroot: the queue is a private directory, not Debian's prepared one.
MASTER_CF = """\
127.0.0.1:{smtp_port} inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n -  0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n -  - trivial-rewrite
bounce    unix  - - n -  0 bounce
defer     unix  - - n -  0 bounce
trace     unix  - - n -  0 bounce
verify    unix  - - n -  1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -  - proxymap
smtp      unix  - - n -  - smtp
relay     unix  - - n -  - smtp
showq     unix  n - n -  - showq
error     unix  - - n -  - error
retry     unix  - - n -  - error
discard   unix  - - n -  - discard
lmtp      unix  - - n -  - lmtp
anvil     unix  - - n -  1 anvil
scache    unix  - - n -  1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition: Any, what: str, log: Path | None = None) -> Any:
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        result = condition()
        if result:
            return result
        time.sleep(0.1)
    text = log.read_text(errors="replace") if log and log.exists() else ""
    pytest.fail(f"timed out waiting for {what}\n{text}")


class Postfix:
    """A private Postfix instance under C{root}, relaying a domain to LMTP on C{lmtp_port}."""

    def __init__(self, root: Path, lmtp_port: int) -> None:
        self.root = root
        self.config = root / "conf"
        self.smtp_port = free_port()
        self.log = root / "maillog"
        self.config.mkdir()
        (root / "queue").mkdir()
        (root / "data").mkdir()
        shutil.chown(root / "data", "postfix")
        (self.config / "main.cf").write_text(MAIN_CF.format(root=root, lmtp_port=lmtp_port))
        (self.config / "master.cf").write_text(MASTER_CF.format(smtp_port=self.smtp_port))

    def command(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([POSTFIX, "-c", str(self.config), *args], capture_output=True,
                              text=True, timeout=DEADLINE)

    def start(self) -> None:
        result = self.command("start")
        assert result.returncode == 0, (result.stdout, result.stderr,
                                        self.log.read_text(errors="replace")
                                        if self.log.exists() else "")

        def accepting() -> bool:
            try:
                socket.create_connection(("127.0.0.1", self.smtp_port), timeout=1).close()
                return True
            except OSError:
                return False

        wait_until(accepting, "Postfix's smtpd to accept connections", self.log)

    def stop(self) -> None:
        self.command("stop")
        wait_until(lambda: self.command("status").returncode != 0, "Postfix to stop", self.log)

    def logged(self, text: str) -> bool:
        return self.log.exists() and text in self.log.read_text(errors="replace")


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Server, Postfix]]:
    users = [a for name, pw in USERS.items() for a in ("--user", f"{name}:{pw}")]
    with Server(tmp_path, ("--store", f"sqlite:{tmp_path / 'mail.sqlite'}", *users,
                           "--imap", "tcp:0:interface=127.0.0.1",
                           "--lmtp", "tcp:0:interface=127.0.0.1")) as server:
        # Postfix's daemons run as the postfix user: their directory must be
        # reachable by it, which a private temporary directory is not.
        root = Path(tempfile.mkdtemp(prefix="mailhub-postfix-"))
        root.chmod(0o755)
        postfix = Postfix(root, server.port("LMTP"))
        try:
            postfix.start()
            try:
                yield server, postfix
            finally:
                postfix.stop()
        finally:
            shutil.rmtree(root, ignore_errors=True)


def idling(port: int, user: str) -> IMAPClient:
    client = IMAPClient("127.0.0.1", port=port, ssl=False, timeout=DEADLINE)
    client.login(user, USERS[user])
    client.select_folder("INBOX")
    client.idle()
    return client


def wait_for_exists(client: IMAPClient, count: int) -> None:
    deadline = time.monotonic() + DEADLINE
    seen: list = []
    while not any(r[1:2] == (b"EXISTS",) and r[0] == count for r in seen):
        left = deadline - time.monotonic()
        if left <= 0:
            pytest.fail(f"no EXISTS {count} within {DEADLINE}s; got {seen!r}")
        seen += client.idle_check(timeout=left)


def test_postfix_delivers_over_lmtp_and_bounces_the_unknown_user(site) -> None:
    server, postfix = site
    imap = server.port("IMAP")
    content = ("From: Carol <carol@foo.example>\r\nTo: alice@foo.example, bob@foo.example\r\n"
               "Subject: Café at noon\r\nMIME-Version: 1.0\r\n"
               "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"
               "\r\nÀ midi, au café ?\r\n").encode()
    watchers = {user: idling(imap, user) for user in ("alice", "bob", "carol")}
    try:
        with smtplib.SMTP("127.0.0.1", postfix.smtp_port, timeout=DEADLINE) as smtp:
            refused = smtp.sendmail("carol@foo.example",
                                    ["alice@foo.example", "nobody@foo.example",
                                     "bob@foo.example"],
                                    content, mail_options=["BODY=8BITMIME"])
        # Postfix queued all three: the refusal comes from our LMTP server.
        assert refused == {}
        for watcher in watchers.values():
            wait_for_exists(watcher, 1)
    finally:
        for watcher in watchers.values():
            watcher.idle_done()
            watcher.logout()

    for user in ("alice", "bob"):
        [stored] = imap_messages(imap, user, USERS[user])
        parsed = email.message_from_bytes(stored, policy=default_policy)
        assert parsed["Subject"] == "Café at noon"
        assert parsed.get_content() == "À midi, au café ?\r\n"
        assert parsed["Return-Path"] == "<carol@foo.example>"
        received = parsed.get_all("Received")
        # Ours on top (Postfix's LMTP client, by name), Postfix's below it.
        assert "from mx.test.example" in received[0] and "with LMTP" in received[0]
        assert "by mx.test.example (Postfix)" in received[1]

    # The bounce came back through LMTP to the sender's INBOX.
    [bounce] = imap_messages(imap, "carol", USERS["carol"])
    parsed = email.message_from_bytes(bounce, policy=default_policy)
    assert parsed["Return-Path"] == "<>"
    assert parsed["Subject"] == "Undelivered Mail Returned to Sender"
    assert b"nobody@foo.example" in bounce and b"550 5.1.1 No such user here" in bounce
    assert wait_until(lambda: postfix.logged("status=bounced"), "the bounce in the log",
                      postfix.log)
    log = postfix.log.read_text(errors="replace")
    assert log.count("status=sent (250 2.0.0 Delivered)") == 3, log
