"""
What the admin command tests share: running ``mailhub`` from the source
tree as a process, a set of messages with flags and dates written as an
mbox file and as a Maildir++ tree the way other mail programs write them,
and reading a user's mail back over IMAP from a real server.
"""

from __future__ import annotations

import base64
import imaplib
import os
import random
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from test_plugin import DEADLINE, REPO

PASSWORD = "secret"


def mailhub(*args: str, cwd: Path | None = None, stdin: str = "",
            stderr: int | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run C{mailhub ARGS} from the source tree; capture its output as text."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    return subprocess.run(
        [sys.executable, "-m", "twisted_mailhub.cli", *args],
        cwd=cwd, env=env, input=stdin, text=True, timeout=timeout,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE if stderr is None else stderr,
    )


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    """C{result}, after checking the command succeeded."""
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    return result


class Store:
    """
    A store of one kind in C{tmp_path} and the arguments that name it: a
    configuration file giving the store and the users (so the mbox store,
    which keeps no accounts, knows them too).
    """

    def __init__(self, kind: str, tmp_path: Path, users: tuple[str, ...] = ("alice", "bob")):
        self.kind = kind
        self.users = users
        if kind == "sqlite":
            self.path = tmp_path / "mail.sqlite"
            self.url = f"sqlite:{self.path}"
        else:
            self.path = tmp_path / "mbox-store"
            self.url = f"mbox:{self.path}"
        self.config = tmp_path / "mailhub.toml"
        self.config.write_text(
            f'store = "{self.url}"\n'
            + "user = [" + ", ".join(f'"{u}:{PASSWORD}"' for u in users) + "]\n")

    @property
    def args(self) -> tuple[str, ...]:
        """The options every admin command is given."""
        return ("--config", str(self.config))

    def server_args(self) -> tuple[str, ...]:
        """The options of C{twistd mailhub} serving this store."""
        users = [f"--user={user}:{PASSWORD}" for user in self.users]
        return ("--store", self.url, *users, "--imap", "tcp:0:interface=127.0.0.1")


# -- messages ------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """A message with what a store must keep of it."""

    content: bytes
    flags: frozenset[str]
    date: datetime

    @property
    def tag(self) -> str:
        return re.search(rb"mhtest-\d+", self.content).group().decode()


def _message(number: int, subject: str, body: bytes, eol: bytes = b"\n",
             extra: bytes = b"") -> bytes:
    header = (f"From: Sender {number} <sender{number}@example.net>{eol.decode()}"
              f"To: alice@example.org{eol.decode()}"
              f"Subject: mhtest-{number} {subject}{eol.decode()}"
              f"Date: Mon, 6 Jan 2025 10:{number:02d}:00 +0100{eol.decode()}"
              f"Message-ID: <mhtest-{number}@example.net>{eol.decode()}").encode()
    return header + extra + eol + body


def samples() -> list[Sample]:
    """Messages covering what import and export must keep byte for byte."""
    zone = timezone(timedelta(hours=2))
    base = datetime(2024, 5, 17, 9, 30, 15, tzinfo=zone)
    attachment = random.Random(9).randbytes(300 * 1024)  # more than one SQL chunk

    encoded = base64.encodebytes(attachment).replace(b"\n", b"\r\n")
    mime = (b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n")
    return [
        Sample(_message(1, "plain", b"Hello Alice,\nsee you.\n"),
               frozenset({"\\Seen"}), base),
        Sample(_message(2, "from lines", b"From the desk of Bob:\n>From the archive\n"
                        b">>From deeper\nend\n"),
               frozenset({"\\Seen", "\\Answered", "\\Flagged"}), base + timedelta(days=1)),
        Sample(_message(3, "crlf and 8bit", "Grüße aus Köln\r\n\r\n-- \r\nBob\r\n".encode(),
                        eol=b"\r\n", extra=b"Content-Type: text/plain; charset=utf-8\r\n"
                        b"Content-Transfer-Encoding: 8bit\r\n"),
               frozenset(), base + timedelta(days=2, hours=3)),
        Sample(_message(4, "keywords", b"tagged\n"),
               frozenset({"$Forwarded", "work", "\\Seen"}), base + timedelta(days=3)),
        Sample(_message(5, "attachment", b"--b1\r\nContent-Type: text/plain\r\n\r\nSee the file."
                        b"\r\n--b1\r\nContent-Type: application/octet-stream\r\n"
                        b"Content-Transfer-Encoding: base64\r\n\r\n" + encoded
                        + b"--b1--\r\n", eol=b"\r\n", extra=mime),
               frozenset({"\\Draft"}), base + timedelta(days=4)),
        Sample(_message(6, "deleted", b"to be purged\n"),
               frozenset({"\\Deleted", "\\Seen"}), base + timedelta(days=5)),
    ]


def write_mbox(path: Path, messages: list[Sample]) -> None:
    """
    Write C{messages} as mail programs write an mbox file: the From line in
    local time, Status/X-Status/X-Keywords fields at the end of the header,
    From lines quoted the mboxrd way.
    """
    out = bytearray()
    for sample in messages:
        stamp = time.asctime(sample.date.astimezone().timetuple())
        out += f"From sender@example.net {stamp}\n".encode()
        header, sep, body = sample.content.partition(b"\n\n")
        if not sep:
            header, sep, body = sample.content.partition(b"\r\n\r\n")
        eol = b"\r\n" if sep == b"\r\n\r\n" else b"\n"
        flags = sample.flags
        status = b"Status: " + (b"RO" if "\\Seen" in flags else b"O") + eol
        xstatus = "".join(letter for letter, flag in
                          (("A", "\\Answered"), ("F", "\\Flagged"), ("T", "\\Draft"),
                           ("D", "\\Deleted")) if flag in flags)
        if xstatus:
            status += b"X-Status: " + xstatus.encode() + eol
        keywords = sorted(flag for flag in flags if not flag.startswith("\\"))
        if keywords:
            status += b"X-Keywords: " + " ".join(keywords).encode() + eol
        body = re.sub(rb"(?m)^(>*From )", rb">\1", body)
        out += header + eol + status + sep[len(eol):] + body + b"\n"
    path.write_bytes(bytes(out))


MAILDIR_LETTERS = {"\\Draft": "D", "\\Flagged": "F", "\\Answered": "R", "\\Seen": "S",
                   "\\Deleted": "T"}


def dovecot_maildir(root: Path, folders: dict[str, list[Sample]]) -> None:
    """
    Write a Maildir++ tree as Dovecot does: C{folders} maps a Maildir++
    directory name (C{""} for the top) to its messages, keywords in
    C{dovecot-keywords}, unflagged messages in C{new}, times as mtimes.
    """
    for entry, messages in folders.items():
        path = root / entry if entry else root
        for sub in ("cur", "new", "tmp"):
            (path / sub).mkdir(parents=True, exist_ok=True)
        if entry:
            (path / "maildirfolder").write_bytes(b"")
        keywords: list[str] = []
        for number, sample in enumerate(messages):
            letters = [MAILDIR_LETTERS[f] for f in sample.flags if f in MAILDIR_LETTERS]
            for flag in sorted(sample.flags):
                if flag == "$Forwarded":
                    letters.append("P")
                elif not flag.startswith("\\"):
                    if flag not in keywords:
                        keywords.append(flag)
                    letters.append(chr(ord("a") + keywords.index(flag)))
            unique = f"{1700000000 + number}.M{number}P1.example,S={len(sample.content)}"
            if sample.flags:
                file = path / "cur" / f"{unique}:2,{''.join(sorted(letters))}"
            else:
                file = path / "new" / unique
            file.write_bytes(sample.content)
            stamp = sample.date.timestamp()
            os.utime(file, (stamp, stamp))
        if keywords:
            (path / "dovecot-keywords").write_text(
                "".join(f"{i} {k}\n" for i, k in enumerate(keywords)))


# -- reading back over IMAP ------------------------------------------------------------


@dataclass(frozen=True)
class Fetched:
    uid: int
    flags: frozenset[str]
    date: datetime
    content: bytes


def fetch_all(port: int, user: str, mailbox: str) -> list[Fetched]:
    """Every message of C{mailbox}, by UID, read over IMAP without changing it."""
    with imaplib.IMAP4("127.0.0.1", port, timeout=DEADLINE) as client:
        client.login(user, PASSWORD)
        typ, _ = client.select(_quote(mailbox), readonly=True)
        assert typ == "OK", mailbox
        typ, data = client.uid("FETCH", "1:*", "(UID FLAGS INTERNALDATE BODY.PEEK[])")
        assert typ == "OK"
        found = []
        for item in data:
            if not isinstance(item, tuple):
                continue
            meta, content = item
            uid = int(re.search(rb"UID (\d+)", meta).group(1))
            flags = re.search(rb"FLAGS \(([^)]*)\)", meta).group(1).decode().split()
            date = imaplib.Internaldate2tuple(meta)
            stamp = time.mktime(date)
            found.append(Fetched(uid, frozenset(flags) - {"\\Recent"},
                                 datetime.fromtimestamp(stamp, timezone.utc), content))
        client.logout()
    return sorted(found, key=lambda f: f.uid)


def list_mailboxes(port: int, user: str) -> set[str]:
    """The names LIST shows C{user} (decoded from modified UTF-7)."""
    from twisted_mailhub.imap.mutf7 import decode

    with imaplib.IMAP4("127.0.0.1", port, timeout=DEADLINE) as client:
        client.login(user, PASSWORD)
        typ, data = client.list()
        assert typ == "OK"
        client.logout()
    names = set()
    for line in data:
        match = re.match(rb'\(([^)]*)\) (?:"[^"]*"|NIL) (.*)$', line)
        name = match.group(2)
        if name.startswith(b'"'):
            name = name[1:-1].replace(b'\\"', b'"').replace(b"\\\\", b"\\")
        names.add(decode(name))
    return names


def _quote(mailbox: str) -> str:
    from twisted_mailhub.imap.mutf7 import encode

    return '"' + encode(mailbox).decode("ascii") + '"'


def assert_same_mail(fetched: list[Fetched], expected: list[Sample]) -> None:
    """The messages of a mailbox are C{expected}, in order, byte for byte."""
    assert [f.content for f in fetched] == [s.content for s in expected]
    assert [f.flags for f in fetched] == [s.flags for s in expected]
    assert [f.date for f in fetched] == [s.date for s in expected]
