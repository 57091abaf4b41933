"""
Quota refusals over LMTP, end to end: ``twistd mailhub --lmtp`` with a
default quota, Python's LMTP client, and IMAP to look at what was stored.
A recipient over quota gets ``452 4.2.2`` (RFC 2033 section 4.2: a reply of
its own, the others of the same transaction still get the message) and
nothing is stored for that recipient.
"""

from __future__ import annotations

import imaplib
from pathlib import Path
from typing import Iterator

import pytest

from lmtp_harness import Server, lmtp_send, lmtp_tcp
from stores import PG_URL, create_pg_database, drop_pg_database
from test_plugin import DEADLINE

USERS = {"alice": "wonderland", "bob": "builder"}
KINDS = ["sqlite", "mbox"] + (["postgresql"] if PG_URL else [])
CONFIG = """
quota-messages = 2
quota-storage = "8K"

[quota.users.alice]
messages = "unlimited"
"""


@pytest.fixture(params=KINDS)
def server(request, tmp_path: Path) -> Iterator[Server]:
    kind = request.param
    if kind == "sqlite":
        store = "sqlite:" + str(tmp_path / "mail.sqlite")
    elif kind == "mbox":
        store = "mbox:" + str(tmp_path / "mail")
    else:
        store = create_pg_database()
        request.addfinalizer(lambda: drop_pg_database(store))
    config = tmp_path / "mailhub.toml"
    config.write_text(CONFIG)
    users = [a for name, pw in USERS.items() for a in ("--user", f"{name}:{pw}")]
    with Server(tmp_path, ("--config", str(config), "--store", store, *users,
                           "--imap", "tcp:0:interface=127.0.0.1",
                           "--lmtp", "tcp:0:interface=127.0.0.1")) as running:
        yield running


def message(subject: str, padding: int = 0) -> bytes:
    return (f"From: Chris <chris@bar.example>\r\nTo: alice@foo.example, bob@foo.example\r\n"
            f"Subject: {subject}\r\n\r\nSee you at noon.\r\n{'x' * padding}\r\n").encode()


def mailbox_state(port: int, user: str) -> tuple[bytes, list[bytes]]:
    with imaplib.IMAP4("127.0.0.1", port, timeout=DEADLINE) as client:
        client.login(user, USERS[user])
        typ, status = client.status("INBOX", "(MESSAGES SIZE)")
        assert typ == "OK", status
        typ, quota = client.getquotaroot("INBOX")
        assert typ == "OK", quota
        client.logout()
    return status[0], quota[1]


def test_a_recipient_over_quota_gets_452_and_nothing_stored(server: Server) -> None:
    send = lmtp_tcp(server.port("LMTP"))
    recipients = ["alice@foo.example", "bob@foo.example"]
    first = lmtp_send(send, "chris@bar.example", recipients, message("one"))
    second = lmtp_send(send, "chris@bar.example", recipients, message("two"))
    third = lmtp_send(send, "chris@bar.example", recipients, message("three"))
    assert [reply[0] for reply in first.values()] == [250, 250]
    assert [reply[0] for reply in second.values()] == [250, 250]
    # bob has his 2 messages; alice has no message limit.
    assert third["alice@foo.example"][0] == 250
    assert third["bob@foo.example"][0] == 452
    assert third["bob@foo.example"][1].startswith(b"4.2.2 ")

    imap = server.port("IMAP")
    bob_status, bob_quota = mailbox_state(imap, "bob")
    assert bob_status.startswith(b"INBOX (MESSAGES 2 SIZE ")
    assert bob_quota[0].endswith(b" MESSAGE 2 2)")
    alice_status, alice_quota = mailbox_state(imap, "alice")
    assert alice_status.startswith(b"INBOX (MESSAGES 3 SIZE ")
    assert b"MESSAGE" not in alice_quota[0]

    # Storage counts too: 8 KiB in all, for alice as for everyone.
    big = lmtp_send(send, "chris@bar.example", ["alice@foo.example"],
                    message("big", padding=8 * 1024))
    assert big["alice@foo.example"][0] == 452
    assert mailbox_state(imap, "alice")[0].startswith(b"INBOX (MESSAGES 3 SIZE ")
