"""
mutt and a ``twistd mailhub`` serving a Maildir store (``maildir:DIR``),
both ways a user would meet them: mutt as an IMAP client of the server
(read a message, save it to another folder, delete it, sync), and mutt
opening the user's Maildir itself (``mutt -f DIR/alice``) while the server
runs: it sees the messages and flags the server wrote, and the flags it
changes there are what IMAP clients of the server see next.

mutt runs in a real terminal (tmux); what it shows is read from the
terminal's screen.
"""

from __future__ import annotations

import email.utils
import imaplib
import os
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from test_plugin import running_twistd, wait_for

MUTT = shutil.which("mutt")
TMUX = shutil.which("tmux")
USER, PASSWORD = "alice", "wonderland"

pytestmark = pytest.mark.skipif(
    not (MUTT and TMUX), reason="mutt and tmux are needed (the CI script installs both)")


def message(subject: str) -> bytes:
    return (
        f"From: Bob <bob@example.org>\r\nTo: {USER}@example.org\r\nSubject: {subject}\r\n"
        f"Date: {email.utils.formatdate()}\r\nMessage-ID: <{uuid.uuid4().hex}@example.org>\r\n"
        f"\r\nHello from {subject}.\r\n"
    ).encode()


class Terminal:
    """mutt in a detached tmux session of its own."""

    def __init__(self, home: Path, command: str) -> None:
        self.socket = f"mailhub-maildir-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.env = dict(os.environ, HOME=str(home), TERM="xterm")
        self.tmux("new-session", "-d", "-x", "120", "-y", "30", command)

    def tmux(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([TMUX, "-L", self.socket, *args], env=self.env,
                              capture_output=True, check=False)

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p").stdout.decode("utf-8", "replace")

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", *keys)

    def alive(self) -> bool:
        return self.tmux("has-session").returncode == 0

    def wait_until_closed(self) -> None:
        wait_for(lambda: not self.alive(), "mutt to finish")

    def close(self) -> None:
        self.tmux("kill-server")


@pytest.fixture
def terminals():
    opened: list[Terminal] = []
    yield lambda home, command: opened.append(Terminal(home, command)) or opened[-1]
    for terminal in opened:
        terminal.close()


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "mail"
    workdir = tmp_path / "server"
    workdir.mkdir()
    with running_twistd(workdir, "--store", f"maildir:{root}", "--user", f"{USER}:{PASSWORD}",
                        "--imap", "tcp:0:interface=127.0.0.1") as listening:
        yield listening["IMAP"], root / USER


def imap(port: int) -> imaplib.IMAP4:
    client = imaplib.IMAP4("127.0.0.1", port, timeout=20)
    client.login(USER, PASSWORD)
    return client


def flags_by_subject(client: imaplib.IMAP4, mailbox: str = "INBOX") -> dict[str, set[str]]:
    _, [exists] = client.select(mailbox)
    if int(exists) == 0:
        return {}
    _, data = client.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    found = {}
    for item in data:
        if not isinstance(item, tuple):
            continue
        flags = re.search(rb"FLAGS \(([^)]*)\)", item[0]).group(1).decode().split()
        subject = item[1].decode().partition(":")[2].strip()
        # \Recent is the session's, not the message's.
        found[subject] = set(flags) - {"\\Recent"}
    return found


def test_mutt_over_imap(server, tmp_path, terminals) -> None:
    port, maildir = server
    with imap(port) as client:
        client.append("INBOX", None, None, message("Hello from Bob"))
        client.create("Saved")
    home = tmp_path / "home"
    home.mkdir()
    rc = home / "muttrc"
    rc.write_text(
        f"set imap_user={USER}\nset imap_pass={PASSWORD}\n"
        f"set folder=imap://127.0.0.1:{port}/\nset spoolfile=+INBOX\n"
        "set ssl_starttls=no\nset ssl_force_tls=no\nset imap_idle=no\n"
        "set confirmappend=no\nset delete=yes\nset move=no\nset mark_old=no\n"
        "set header_cache=\nset message_cachedir=\n")
    keys = "<display-message><exit><save-message>=Saved<enter><sync-mailbox><quit>"
    terminal = terminals(home, f"{MUTT} -n -F {rc} -e 'push \"{keys}\"'")
    terminal.wait_until_closed()

    with imap(port) as client:
        assert flags_by_subject(client, "INBOX") == {}
        # It was read before it was saved, and the copy keeps that.
        assert flags_by_subject(client, "Saved") == {"Hello from Bob": {"\\Seen"}}
    # On disk: INBOX is empty, the saved copy is a file of .Saved/cur
    # marked seen, as any Maildir program would find it.
    assert os.listdir(maildir / "cur") == os.listdir(maildir / "new") == []
    [saved] = os.listdir(maildir / ".Saved" / "cur")
    assert saved.endswith(":2,S")
    assert b"Hello from Bob" in (maildir / ".Saved" / "cur" / saved).read_bytes()


def test_mutt_opens_the_maildir_the_server_writes(server, tmp_path, terminals) -> None:
    port, maildir = server
    with imap(port) as client:
        for subject, flags in [
            ("unread one", None), ("plain one", r"(\Seen)"), ("flagged one", r"(\Seen \Flagged)"),
            ("replied one", r"(\Seen \Answered $Work)"), ("deleted one", None),
        ]:
            client.append("INBOX", flags, None, message(subject))
        client.select("INBOX")
        client.store("5", "+FLAGS", r"(\Seen \Deleted)")
    home = tmp_path / "home"
    home.mkdir()
    rc = home / "muttrc"
    rc.write_text(
        f"set folder={maildir}\nset spoolfile={maildir}\nset mbox_type=Maildir\n"
        'set index_format="[%Z] %s"\nset sort=date-sent\nset mark_old=no\nset delete=no\n'
        "set maildir_trash=yes\nset move=no\nset quit=yes\nset header_cache=\nset wait_key=no\n")
    terminal = terminals(home, f"{MUTT} -n -F {rc} -f {maildir}")
    wanted = ["[N  ] unread one", "[   ] plain one", "[  !] flagged one", "[r  ] replied one",
              "[ D ] deleted one"]
    wait_for(lambda: all(line in terminal.screen() for line in wanted),
             "mutt to show the server's messages and flags")

    # In mutt: flag "plain one", mark "unread one" read, write the Maildir.
    terminal.keys(":", 'push "<tag-pattern>~s plain<enter><tag-prefix><flag-message>'
                  '<untag-pattern>~A<enter><tag-pattern>~s unread<enter><tag-prefix>'
                  '<toggle-new><sync-mailbox><quit>"', "Enter")
    terminal.wait_until_closed()

    with imap(port) as client:
        deadline = time.monotonic() + 10
        while True:
            seen = flags_by_subject(client)
            if "\\Flagged" in seen["plain one"] or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    assert seen == {
        "unread one": {"\\Seen"},
        "plain one": {"\\Seen", "\\Flagged"},
        "flagged one": {"\\Seen", "\\Flagged"},
        "replied one": {"\\Seen", "\\Answered", "$Work"},
        "deleted one": {"\\Seen", "\\Deleted"},
    }
