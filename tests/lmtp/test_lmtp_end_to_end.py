"""
``twistd mailhub --lmtp`` as a process of its own, on each persistent
store: Python's LMTP client delivers to two users and one unknown address
over TCP and over a UNIX socket, and the users' IDLE clients (IMAPClient)
are told of the new mail at once.
"""

from __future__ import annotations

import email
import time
import uuid
from pathlib import Path
from typing import Iterator

import pytest
from imapclient import IMAPClient

from lmtp_harness import (
    KINDS, Server, imap_messages, lmtp_send, lmtp_tcp, lmtp_unix, store_url)

USERS = {"alice": "wonderland", "bob": "builder"}
#: How long an idling client may wait for the EXISTS of a delivery made in
#: the same process (it is sent as soon as the store's append is done).
TOLD_WITHIN = 10.0


@pytest.fixture(params=KINDS)
def server(request, tmp_path: Path) -> Iterator[Server]:
    store = store_url(request.param, tmp_path, request)
    users = [a for name, pw in USERS.items() for a in ("--user", f"{name}:{pw}")]
    with Server(tmp_path, ("--store", store, *users, "--imap", "tcp:0:interface=127.0.0.1",
                           "--lmtp", "tcp:0:interface=127.0.0.1",
                           "--lmtp", f"unix:{tmp_path / 'lmtp.sock'}")) as running:
        yield running


def message(subject: str) -> bytes:
    return (f"From: Chris <chris@bar.example>\r\nTo: alice@foo.example, bob@foo.example\r\n"
            f"Subject: {subject}\r\nMessage-ID: <{uuid.uuid4().hex}@bar.example>\r\n"
            f"\r\nSee you at noon.\r\n").encode()


def idling(port: int, user: str) -> IMAPClient:
    client = IMAPClient("127.0.0.1", port=port, ssl=False, timeout=TOLD_WITHIN)
    client.login(user, USERS[user])
    client.select_folder("INBOX")
    client.idle()
    return client


def wait_for_exists(client: IMAPClient, count: int) -> None:
    deadline = time.monotonic() + TOLD_WITHIN
    seen: list = []
    while not any(r[1:2] == (b"EXISTS",) and r[0] == count for r in seen):
        left = deadline - time.monotonic()
        if left <= 0:
            pytest.fail(f"no EXISTS {count} within {TOLD_WITHIN}s; got {seen!r}")
        seen += client.idle_check(timeout=left)


def test_two_users_and_an_unknown_one_idle_clients_told(server: Server) -> None:
    imap = server.port("IMAP")
    watchers = {user: idling(imap, user) for user in USERS}
    try:
        replies = lmtp_send(lmtp_tcp(server.port("LMTP")), "chris@bar.example",
                            ["alice@foo.example", "nobody@foo.example", "bob@foo.example"],
                            message("Lunch"))
        assert replies == {
            "alice@foo.example": (250, b"2.0.0 Delivered"),
            "nobody@foo.example": (550, b"5.1.1 No such user here"),
            "bob@foo.example": (250, b"2.0.0 Delivered"),
        }
        for watcher in watchers.values():
            wait_for_exists(watcher, 1)
    finally:
        for watcher in watchers.values():
            watcher.idle_done()
            watcher.logout()
    for user in USERS:
        [stored] = imap_messages(imap, user, USERS[user])
        parsed = email.message_from_bytes(stored)
        assert parsed["Subject"] == "Lunch"
        assert parsed["Return-Path"] == "<chris@bar.example>"
        assert "with LMTP" in parsed["Received"]
        assert parsed.get_payload() == "See you at noon.\r\n"


def test_unix_socket_and_detail_folder(server: Server) -> None:
    imap = server.port("IMAP")
    with IMAPClient("127.0.0.1", port=imap, ssl=False, timeout=10) as client:
        client.login("alice", USERS["alice"])
        client.create_folder("Lists")
    socket_path = server.listening["LMTP"][1]
    replies = lmtp_send(lmtp_unix(socket_path), "", ["alice+Lists", "bob+Nothing"],
                        message("Digest"))
    assert set(replies.values()) == {(250, b"2.0.0 Delivered")}
    [into_folder] = imap_messages(imap, "alice", USERS["alice"], "Lists")
    assert into_folder.startswith(b"Return-Path: <>\r\nReceived: from client.example\r\n")
    assert b"Subject: Digest" in into_folder
    # bob has no folder "Nothing": his INBOX gets it.
    [into_inbox] = imap_messages(imap, "bob", USERS["bob"])
    assert b"Subject: Digest" in into_inbox


@pytest.mark.parametrize("kind", KINDS)
def test_a_user_over_quota_gets_452_and_the_others_their_mail(request, tmp_path: Path,
                                                               kind: str) -> None:
    store = store_url(kind, tmp_path, request)
    users = [a for name, pw in USERS.items() for a in ("--user", f"{name}:{pw}")]
    with Server(tmp_path, ("--store", store, *users, "--quota-messages", "1",
                           "--imap", "tcp:0:interface=127.0.0.1",
                           "--lmtp", "tcp:0:interface=127.0.0.1")) as server:
        lmtp = lmtp_tcp(server.port("LMTP"))
        assert lmtp_send(lmtp, "chris@bar.example", ["alice"], message("first")) == {
            "alice": (250, b"2.0.0 Delivered")}
        # alice is at her limit of one message; bob is not.
        assert lmtp_send(lmtp, "chris@bar.example", ["alice", "bob"], message("second")) == {
            "alice": (452, b"4.2.2 Mailbox full; try again later"),
            "bob": (250, b"2.0.0 Delivered"),
        }
        imap = server.port("IMAP")
        [kept] = imap_messages(imap, "alice", USERS["alice"])
        assert b"Subject: first" in kept
        assert len(imap_messages(imap, "bob", USERS["bob"])) == 1


def test_notify_client_told_of_deliveries(server: Server) -> None:
    # RFC 5465: a client that asked NOTIFY for its inboxes is told of LMTP
    # deliveries there (STATUS), and of one into the selected folder
    # (EXISTS and the FETCH it asked for), without sending a command.
    from harness import RawClient

    imap = server.port("IMAP")
    with IMAPClient("127.0.0.1", port=imap, ssl=False, timeout=10) as client:
        client.login("alice", USERS["alice"])
        client.create_folder("Lists")
    watcher = RawClient(imap)
    watcher.sock.settimeout(TOLD_WITHIN)
    try:
        watcher.line()
        watcher.command(b"a LOGIN alice " + USERS["alice"].encode())
        watcher.command(b"b SELECT Lists")
        assert watcher.command(
            b"c NOTIFY SET (selected (MessageNew (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])"
            b" MessageExpunge)) (inboxes (MessageNew MessageExpunge))"
        ) == [b"c OK NOTIFY completed\r\n"]
        lmtp = lmtp_tcp(server.port("LMTP"))
        assert lmtp_send(lmtp, "chris@bar.example", ["alice"], message("Lunch")) == {
            "alice": (250, b"2.0.0 Delivered")}
        status = watcher.line()
        assert status.startswith(b"* STATUS INBOX (MESSAGES 1 UIDNEXT 2 UIDVALIDITY "), status
        assert lmtp_send(lmtp, "chris@bar.example", ["alice+Lists"], message("Digest")) == {
            "alice+Lists": (250, b"2.0.0 Delivered")}
        assert watcher.line() == b"* 1 EXISTS\r\n"
        assert watcher.line() == b"* 1 RECENT\r\n"
        assert watcher.line() == b"* 1 FETCH (UID 1 BODY[HEADER.FIELDS (SUBJECT)] {19}\r\n"
        assert watcher.read_exact(19) == b"Subject: Digest\r\n\r\n"
        assert watcher.line() == b")\r\n"
    finally:
        watcher.close()
