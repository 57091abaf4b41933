"""
What the ``mailhub sync`` tests share: running the command from the source
tree, filling a source account over IMAP, and reading back everything a
migration must keep (folders, special use, subscriptions, UIDVALIDITY,
UIDNEXT, and per message its UID, flags, INTERNALDATE and bytes) from any
IMAP server with imapclient, a client independent of the command's own.
"""

from __future__ import annotations

import imaplib
import os
import pty
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Iterator

import imapclient
import pytest
from test_plugin import DEADLINE, LISTENING, REPO, subprocess_env, twistd_command, wait_for

#: Seconds one run of the command may take.
SYNC_DEADLINE = 120


def sync_env(password: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    env["PYTHONUNBUFFERED"] = "1"
    env["MAILHUB_SYNC_PASSWORD"] = password
    return env


def sync_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "twisted_mailhub.cli", "sync", *args]


def run_sync(cwd: Path, *args: str, password: str = "wonderland") -> subprocess.CompletedProcess:
    """Run C{mailhub sync ARGS} to completion."""
    return subprocess.run(sync_command(*args), cwd=cwd, env=sync_env(password),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=SYNC_DEADLINE)


def start_sync(cwd: Path, *args: str, password: str = "wonderland") -> subprocess.Popen:
    """Start C{mailhub sync ARGS}; its output lines are read from C{.stdout}."""
    return subprocess.Popen(sync_command(*args), cwd=cwd, env=sync_env(password),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@dataclass
class Server:
    """A C{twistd mailhub} process of a test and its IMAP port."""

    process: subprocess.Popen
    ports: dict[str, int]
    log: Path

    @property
    def port(self) -> int:
        """The plain IMAP port."""
        return self.ports["IMAP"]

    def pause(self) -> None:
        """Stop the process where it is (SIGSTOP): its clients then wait."""
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)


@contextmanager
def running_server(directory: Path, *args: str) -> Iterator[Server]:
    """
    C{twistd -n mailhub --imap tcp:0:interface=127.0.0.1 ARGS} in
    C{directory} (made if missing); stopped with SIGTERM at the end, which
    must be clean.
    """
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / "twistd.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            twistd_command("--pidfile=", "-n", "mailhub", "--imap",
                           "tcp:0:interface=127.0.0.1", *args),
            cwd=directory, env=subprocess_env(directory), stdin=subprocess.DEVNULL,
            stdout=out, stderr=subprocess.STDOUT)
    server = None
    try:
        expected = 1 + sum(1 for a in args if a in ("--imap", "--imaps", "--pop3", "--pop3s"))

        def listening() -> dict[str, int] | None:
            found = LISTENING.findall(log.read_text(errors="replace"))
            if len(found) < expected:
                return None
            return {label: int(port) for label, _, port in found}

        server = Server(process, wait_for(listening, "the server to listen", process, log), log)
        yield server
    except BaseException:
        process.kill()
        process.wait()
        raise
    finally:
        if server is not None and process.poll() is None:
            server.resume()
    process.send_signal(signal.SIGTERM)
    try:
        status = process.wait(timeout=DEADLINE)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    output = log.read_text(errors="replace")
    # twistd may re-raise the signal after a clean shutdown.
    assert status in (0, -signal.SIGTERM), output
    assert "Traceback" not in output, output


class Lines:
    """The output lines of a running command, read in a thread, awaited with a deadline."""

    def __init__(self, stream) -> None:
        self.queue: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream) -> None:
        for line in stream:
            self.queue.put(line.rstrip("\n"))
        self.queue.put(None)

    def wait_for(self, pattern: str, deadline: float = SYNC_DEADLINE) -> re.Match:
        """The first line (from here on) matching C{pattern}; fails at EOF or timeout."""
        end = time.monotonic() + deadline
        while True:
            try:
                line = self.queue.get(timeout=max(0.01, end - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no line matching {pattern!r} in time: {self.seen}")
            if line is None:
                raise AssertionError(f"output ended before {pattern!r}: {self.seen}")
            self.seen.append(line)
            match = re.search(pattern, line)
            if match:
                return match


# -- filling a source -----------------------------------------------------------


def imap(port: int, user: str = "alice", password: str = "wonderland") -> imaplib.IMAP4:
    client = imaplib.IMAP4("127.0.0.1", port, timeout=30)
    client.login(user, password)
    return client


def message(n: int, size: int = 0, subject: str | None = None) -> bytes:
    """A message numbered C{n}, with about C{size} bytes of body."""
    body = b"".join(b"line %d of message %d\r\n" % (i, n) for i in range(max(1, size // 24)))
    return (b"From: Bob <bob@example.org>\r\nTo: alice@example.org\r\n"
            b"Subject: " + (subject or f"message {n}").encode() + b"\r\n"
            b"Message-ID: <%d.sync@example.org>\r\n"
            b"Date: Tue, 04 Jul 2023 09:%02d:00 +0200\r\n\r\n" % (n, n % 60)) + body


def append(client: imaplib.IMAP4, folder: str, content: bytes, flags: str = "",
           date: str | None = None) -> None:
    typ, data = client.append(folder, f"({flags})", f'"{date}"' if date else None, content)
    assert typ == "OK", data


def create(client: imaplib.IMAP4, name: str, special_use: str | None = None) -> None:
    """CREATE C{name} (quoted), with RFC 6154 USE when C{special_use} is given."""
    quoted = '"' + name + '"'
    if special_use:
        typ, data = client._simple_command("CREATE", quoted, f"(USE ({special_use}))")
    else:
        typ, data = client.create(quoted)
    assert typ == "OK", data


# -- reading an account back ----------------------------------------------------


@dataclass(frozen=True)
class Message:
    uid: int
    flags: frozenset[str]
    internaldate: datetime
    zone: object
    body: bytes


@dataclass(frozen=True)
class Folder:
    selectable: bool
    special_use: frozenset[str]
    uidvalidity: int | None = None
    uidnext: int | None = None
    messages: tuple[Message, ...] = ()


_SPECIAL = {"\\all", "\\archive", "\\drafts", "\\flagged", "\\junk", "\\sent", "\\trash"}
_LIST = re.compile(rb'^\((?P<attrs>[^)]*)\) (?:"(?P<delim>[^"]*)"|NIL) (?P<name>.*)$')


def _list(client: imapclient.IMAPClient, *extra: str) -> list[tuple[set[str], str, str]]:
    """LIST "" "*" EXTRA, as (lower-cased attributes, delimiter, decoded name)."""
    typ, data = client._imap._simple_command("LIST", '""', '"*"', *extra)
    assert typ == "OK", data
    out = []
    for line in client._imap._untagged_response(typ, data, "LIST")[1]:
        if isinstance(line, tuple):
            head, name = line
            match = _LIST.match(head)
        else:
            match = _LIST.match(line)
            name = match.group("name")
            if name.startswith(b'"'):
                name = name[1:-1].replace(b'\\"', b'"').replace(b"\\\\", b"\\")
        attrs = {a.lower() for a in match.group("attrs").decode().split()}
        out.append((attrs, (match.group("delim") or b"").decode(),
                    imapclient.imap_utf7.decode(name)))
    return out


def account(port: int, user: str = "alice", password: str = "wonderland") -> dict:
    """
    Everything of an account a migration must keep: C{{"folders": {name:
    Folder}, "subscribed": set}}, names with their levels joined by "/"
    whatever the server's delimiter.
    """
    client = imapclient.IMAPClient("127.0.0.1", port=port, ssl=False, timeout=60)
    client.normalise_times = False
    client.login(user, password)
    try:
        caps = client.capabilities()
        extra = ("RETURN", "(SPECIAL-USE)") if b"SPECIAL-USE" in caps else ()
        folders = {}
        for attrs, delimiter, name in _list(client, *extra):
            key = "/".join(name.split(delimiter)) if delimiter else name
            selectable = not attrs & {"\\noselect", "\\nonexistent"}
            special = frozenset(attrs & _SPECIAL)
            if not selectable:
                folders[key] = Folder(False, special)
                continue
            info = client.select_folder(name, readonly=True)
            uids = client.search(["ALL"]) if info[b"EXISTS"] else []
            fetched = client.fetch(uids, ["FLAGS", "INTERNALDATE", "BODY.PEEK[]"]) \
                if uids else {}
            messages = tuple(sorted(
                (Message(
                    uid=uid,
                    flags=frozenset(f.decode() for f in data[b"FLAGS"]
                                    if f.lower() != b"\\recent"),
                    internaldate=data[b"INTERNALDATE"],
                    zone=data[b"INTERNALDATE"].utcoffset(),
                    body=data[b"BODY[]"],
                ) for uid, data in fetched.items()), key=lambda m: m.uid))
            folders[key] = Folder(True, special, info[b"UIDVALIDITY"], info[b"UIDNEXT"],
                                  messages)
            client.unselect_folder() if b"UNSELECT" in caps else client.close_folder()
        subscribed = set()
        for attrs, delimiter, name in _lsub(client):
            subscribed.add("/".join(name.split(delimiter)) if delimiter else name)
        return {"folders": folders, "subscribed": subscribed}
    finally:
        client.logout()


def _lsub(client: imapclient.IMAPClient) -> list[tuple[set[str], str, str]]:
    return [(set(f.decode().lower() for f in flags), (delimiter or b"").decode(), name)
            for flags, delimiter, name in client.list_sub_folders()]


def count_messages(port: int, folder: str = "INBOX", user: str = "alice",
                   password: str = "wonderland") -> tuple[int, int]:
    """(messages, distinct Message-IDs) of a folder: copies made twice show."""
    client = imap(port, user, password)
    try:
        typ, data = client.select(folder, readonly=True)
        assert typ == "OK", data
        typ, data = client.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])") \
            if int(data[0]) else ("OK", [])
        ids = [part[1].strip() for part in data if isinstance(part, tuple)]
        return len(ids), len(set(ids))
    finally:
        client.logout()


# -- mbsync -------------------------------------------------------------------

MBSYNC = shutil.which("mbsync")

#: mbsync's progress line: channels, boxes, then far (F) and near (N) side
#: counters of new messages (+), flag changes (*) and expunges (#).
_COUNTERS = re.compile(r"C: \d+/\d+\s+B: \d+/\d+\s+F: (.*?)\s+N: (.*?)\s*$")


class Mbsync:
    """
    One mbsync channel between an IMAP account and a local Maildir, with its
    sync state kept in the Maildir (C{SyncState *}), as a laptop has it.
    """

    def __init__(self, home: Path, user: str, password: str) -> None:
        if MBSYNC is None:
            pytest.skip("mbsync is needed (the CI script installs isync)")
        self.home = home
        self.user = user
        self.password = password
        (home / "Mail").mkdir(parents=True, exist_ok=True)

    def point_at(self, port: int) -> None:
        """Write the configuration for the server on C{port} (same channel, same state)."""
        (self.home / "mbsyncrc").write_text(
            f"IMAPAccount hub\nHost 127.0.0.1\nPort {port}\nUser {self.user}\n"
            f"Pass {self.password}\nSSLType None\nAuthMechs LOGIN\n\n"
            "IMAPStore remote\nAccount hub\n\n"
            f"MaildirStore local\nPath {self.home}/Mail/\nInbox {self.home}/Mail/INBOX\n"
            "SubFolders Verbatim\n\n"
            "Channel hub\nFar :remote:\nNear :local:\nPatterns *\nCreate Both\n"
            "Expunge Both\nSyncState *\n")

    def run(self) -> dict[str, list[int]]:
        """
        Sync once, on a terminal so that mbsync shows its counters; return
        the last counters, C{{"far": [...], "near": [...]}}: done/total of
        new messages, flag changes and expunges on each side.
        """
        master, slave = pty.openpty()
        process = subprocess.Popen([MBSYNC, "-c", str(self.home / "mbsyncrc"), "hub"],
                                   stdin=subprocess.DEVNULL, stdout=slave, stderr=subprocess.PIPE,
                                   env=dict(os.environ, HOME=str(self.home)))
        os.close(slave)
        output = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the terminal closed with the process
                break
            if not chunk:
                break
            output += chunk
        os.close(master)
        errors = process.stderr.read().decode(errors="replace")
        assert process.wait(timeout=SYNC_DEADLINE) == 0, errors
        assert "UIDVALIDITY" not in errors, errors
        lines = [line for line in re.split(r"[\r\n]+", output.decode(errors="replace"))
                 if _COUNTERS.search(line)]
        assert lines, output
        far, near = _COUNTERS.search(lines[-1]).groups()
        return {"far": [int(n) for n in re.findall(r"\d+", far)],
                "near": [int(n) for n in re.findall(r"\d+", near)]}

    def maildir(self) -> dict[str, bytes]:
        """Every file of the local Maildir (messages and sync state) and its bytes."""
        root = self.home / "Mail"
        return {str(path.relative_to(root)): path.read_bytes()
                for path in sorted(root.rglob("*")) if path.is_file()}


def nothing_transferred(counters: dict[str, list[int]]) -> bool:
    return not any(counters["far"]) and not any(counters["near"])
