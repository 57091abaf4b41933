"""
``mailhub deliver``: the message on standard input into a user's mailbox,
with the exit status an MTA acts on for each case (0, 64 EX_USAGE, 65
EX_DATAERR, 67 EX_NOUSER, 75 EX_TEMPFAIL), and a running server's idling
IMAP client told of the delivered message.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from imapclient import IMAPClient
from twisted.trial import unittest

from lmtp_harness import KINDS, Server, command_env, imap_messages, mailhub_command, store_url

from twisted_mailhub.auth.directory import UserDirectory
from twisted_mailhub.backends.memory import MemoryBackend
from twisted_mailhub.deliver import (
    EX_DATAERR,
    EX_NOUSER,
    EX_OK,
    EX_TEMPFAIL,
    EX_USAGE,
    deliver_message,
)
from twisted_mailhub.errors import MessageTooBig, OverQuota

USERS = {"alice": "wonderland", "bob": "builder"}
MESSAGE = (b"From bounce@bar.example Thu Dec  3 10:00:00 2026\n"
           b"From: Chris <chris@bar.example>\nTo: alice@foo.example\nSubject: Lunch\n"
           b"\nAt noon?\n")
TOLD_WITHIN = 10.0


def write_config(directory: Path, store: str, extra: str = "") -> Path:
    users = ", ".join(f'"{name}:{password}"' for name, password in USERS.items())
    config = directory / "mailhub.toml"
    config.write_text(f'store = "{store}"\nuser = [{users}]\n'
                      f'imap = ["tcp:0:interface=127.0.0.1"]\n{extra}')
    return config


def deliver(*args: str, stdin: bytes = MESSAGE) -> subprocess.CompletedProcess:
    return subprocess.run(mailhub_command("deliver", *args), input=stdin, env=command_env(),
                          capture_output=True, timeout=60)


@pytest.fixture(params=KINDS)
def site(request, tmp_path: Path) -> Iterator[tuple[Server, Path]]:
    """A running server and its configuration file, which deliver reads too."""
    store = store_url(request.param, tmp_path, request)
    config = write_config(tmp_path, store)
    with Server(tmp_path, ("--config", str(config))) as server:
        yield server, config


def test_a_delivered_message_reaches_the_idle_client(site) -> None:
    server, config = site
    port = server.port("IMAP")
    with IMAPClient("127.0.0.1", port=port, ssl=False, timeout=TOLD_WITHIN) as watcher:
        watcher.login("alice", USERS["alice"])
        watcher.select_folder("INBOX")
        watcher.idle()
        result = deliver("--config", str(config), "-u", "alice", "-f", "chris@bar.example")
        assert (result.returncode, result.stderr) == (EX_OK, b"")
        # Delivered by another process: the store's watcher announces it.
        deadline = time.monotonic() + TOLD_WITHIN
        seen: list[Any] = []
        while (1, b"EXISTS") not in seen:
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"no EXISTS within {TOLD_WITHIN}s; got {seen!r}")
            seen += watcher.idle_check(timeout=left)
        watcher.idle_done()
    [stored] = imap_messages(port, "alice", USERS["alice"])
    # The mbox "From " line is gone, Return-Path and Received come first,
    # and every line ends in CRLF.
    header, _, body = stored.partition(b"\r\n\r\n")
    lines = header.split(b"\r\n")
    assert lines[0] == b"Return-Path: <chris@bar.example>"
    assert lines[1].startswith(b"Received: by ") and b"(twisted_mailhub deliver)" in lines[1]
    assert lines[2].startswith(b"\tfor <alice>; ")
    assert lines[3:] == [b"From: Chris <chris@bar.example>", b"To: alice@foo.example",
                         b"Subject: Lunch"]
    assert body == b"At noon?\r\n"


def test_folder_if_it_exists_else_inbox(site) -> None:
    server, config = site
    port = server.port("IMAP")
    with IMAPClient("127.0.0.1", port=port, ssl=False, timeout=10) as client:
        client.login("bob", USERS["bob"])
        client.create_folder("Lists")
    assert deliver("--config", str(config), "-u", "bob", "-m", "Lists").returncode == EX_OK
    assert deliver("--config", str(config), "-u", "bob", "-m", "Missing").returncode == EX_OK
    assert len(imap_messages(port, "bob", USERS["bob"], "Lists")) == 1
    assert len(imap_messages(port, "bob", USERS["bob"])) == 1


def test_unknown_user_is_67_and_nothing_is_stored(site) -> None:
    server, config = site
    result = deliver("--config", str(config), "-u", "carol")
    assert result.returncode == EX_NOUSER
    assert result.stderr == b"mailhub deliver: no such user: carol\n"
    for user, password in USERS.items():
        assert imap_messages(server.port("IMAP"), user, password) == []


def test_bad_arguments_are_64(tmp_path: Path) -> None:
    config = write_config(tmp_path, f"sqlite:{tmp_path / 'mail.sqlite'}")
    missing_user = deliver("--config", str(config))
    assert missing_user.returncode == EX_USAGE
    assert b"-u/--user" in missing_user.stderr
    assert deliver("--config", str(config), "-u", "alice", "--bogus").returncode == EX_USAGE


@pytest.mark.parametrize("stdin, why", [
    (b"", b"holds no message"),
    (b"From nobody Thu Dec  3 10:00:00 2026\n", b"holds no message"),
    (b"This is not a mail at all.\n", b"holds no message"),
    (b"Subject: big\n\n" + b"x" * 2000 + b"\n", b"message too big: the limit is 1024 bytes"),
])
def test_unusable_input_is_65(tmp_path: Path, stdin: bytes, why: bytes) -> None:
    config = write_config(tmp_path, f"sqlite:{tmp_path / 'mail.sqlite'}", 'max-literal = "1K"\n')
    result = deliver("--config", str(config), "-u", "alice", stdin=stdin)
    assert result.returncode == EX_DATAERR
    assert why in result.stderr


def test_a_store_that_fails_is_75(tmp_path: Path) -> None:
    broken = tmp_path / "broken.sqlite"
    broken.write_bytes(b"this is not an SQLite database" * 100)
    result = deliver("--store", f"sqlite:{broken}", "-u", "alice")
    assert result.returncode == EX_TEMPFAIL
    assert result.stderr.startswith(b"mailhub deliver: the mail store is unusable: ")


def test_an_unreadable_configuration_is_75_so_the_mta_retries(tmp_path: Path) -> None:
    config = tmp_path / "mailhub.toml"
    config.write_text("store = [not valid\n")
    result = deliver("--config", str(config), "-u", "alice")
    assert result.returncode == EX_TEMPFAIL
    assert b"not valid TOML" in result.stderr
    assert deliver("--config", str(tmp_path / "missing.toml"), "-u", "alice"
                   ).returncode == EX_TEMPFAIL


def test_over_quota_is_75_so_the_mta_retries(tmp_path: Path) -> None:
    config = write_config(tmp_path, f"sqlite:{tmp_path / 'mail.sqlite'}",
                          "quota-messages = 1\n")
    assert deliver("--config", str(config), "-u", "alice").returncode == EX_OK
    result = deliver("--config", str(config), "-u", "alice")
    assert result.returncode == EX_TEMPFAIL
    assert result.stderr.startswith(b"mailhub deliver: alice is over quota: ")
    assert deliver("--config", str(config), "-u", "bob").returncode == EX_OK


def test_users_of_the_sql_store_and_of_the_password_file(tmp_path: Path) -> None:
    store = f"sqlite:{tmp_path / 'mail.sqlite'}"
    added = subprocess.run(mailhub_command("adduser", "dave", "--password", "pw", "--store",
                                           store, "--scheme", "PLAIN"),
                           env=command_env(), capture_output=True, timeout=60)
    assert added.returncode == 0, added.stderr
    passwd = tmp_path / "passwd"
    passwd.write_text("carol:{PLAIN}secret\n")
    config = write_config(tmp_path, store, f'passwd = "{passwd}"\n')
    for user in ("dave", "carol", "alice"):
        result = deliver("--config", str(config), "-u", user)
        assert (user, result.returncode, result.stderr) == (user, EX_OK, b"")
    assert deliver("--store", store, "-u", "dave").returncode == EX_OK
    # Without the configuration file, only the store's own users exist.
    assert deliver("--store", store, "-u", "carol").returncode == EX_NOUSER


class StoreOutcomeTests(unittest.TestCase):
    """What the store says at append time, as the exit status (in this process)."""

    async def outcome(self, error: Exception) -> int:
        backend = RefusingBackend(error)
        return await deliver_message(backend, UserDirectory([{"alice": "x"}.get]), "alice",
                                     b"Subject: x\r\n\r\nbody\r\n")

    async def test_over_quota_is_75(self) -> None:
        self.assertEqual(await self.outcome(OverQuota("storage limit reached")), EX_TEMPFAIL)

    async def test_too_big_for_the_mailbox_is_65(self) -> None:
        self.assertEqual(await self.outcome(MessageTooBig()), EX_DATAERR)

    async def test_a_store_failure_is_75(self) -> None:
        self.assertEqual(await self.outcome(RuntimeError("disk on fire")), EX_TEMPFAIL)
        self.flushLoggedErrors(RuntimeError)

    async def test_delivered_is_0(self) -> None:
        backend = MemoryBackend()
        users = UserDirectory([{"alice": "x"}.get])
        self.assertEqual(await deliver_message(backend, users, "alice", b"Subject: x\n\n"),
                         EX_OK)
        self.assertEqual(await deliver_message(backend, users, "zed", b"Subject: x\n\n"),
                         EX_NOUSER)


class RefusingBackend:
    """A backend whose every mailbox refuses to append with C{error}."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.inner = MemoryBackend()
        self.notifier = self.inner.notifier

    async def open_store(self, username: str) -> Any:
        return RefusingStore(await self.inner.open_store(username), self.error)


class RefusingStore:
    def __init__(self, store: Any, error: Exception) -> None:
        self.store = store
        self.error = error

    async def get_mailbox(self, name: str, read_only: bool = False) -> Any:
        mailbox = await self.store.get_mailbox(name, read_only)
        error = self.error

        class Refusing:
            async def append(self, requests: Any, origin: Any = None) -> Any:
                raise error

        refusing = Refusing()
        refusing.name = mailbox.name  # type: ignore[attr-defined]
        return refusing
