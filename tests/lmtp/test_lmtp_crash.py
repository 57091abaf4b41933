"""
SIGKILL during LMTP delivery, on each persistent store: the server is
killed in the middle of a DATA transfer, right after a 250, and at random
moments while a client delivers one message after another.  After a
restart no half message is in the mailbox, every message acknowledged
with 250 is there whole, and whatever else is there is whole too (a
message stored but not yet acknowledged may be delivered again by the
MTA: a duplicate, never a loss).
"""

from __future__ import annotations

import hashlib
import random
import socket
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from lmtp_harness import KINDS, Server, imap_messages, store_url

USER, PASSWORD = "alice", "wonderland"


@pytest.fixture(params=KINDS)
def server(request, tmp_path: Path) -> Iterator[Server]:
    store = store_url(request.param, tmp_path, request)
    server = Server(tmp_path, ("--store", store, "--user", f"{USER}:{PASSWORD}",
                               "--imap", "tcp:0:interface=127.0.0.1",
                               "--lmtp", "tcp:0:interface=127.0.0.1"))
    with server:
        yield server


def body_of(number: int, lines: int) -> bytes:
    """A body whose every line says which message it belongs to, and a checksum at the end."""
    text = b"".join(b"message %d line %d: %s\r\n" % (number, i, b"x" * 60) for i in range(lines))
    return text + b"sha256 " + hashlib.sha256(text).hexdigest().encode() + b"\r\n"


def message(number: int, lines: int = 2000) -> bytes:
    return (b"From: load@bar.example\r\nSubject: number %d\r\nX-Number: %d\r\n\r\n"
            % (number, number)) + body_of(number, lines)


def stuffed(content: bytes) -> bytes:
    return content.replace(b"\r\n.", b"\r\n..") + b".\r\n"


class Client:
    """A raw LMTP client: the test decides when each byte is sent."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.buffer = b""
        assert self.reply().startswith(b"220 ")
        self.sock.sendall(b"LHLO client.example\r\n")
        while not self.reply().startswith(b"250 "):
            pass

    def reply(self) -> bytes:
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server gone")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line

    def begin(self) -> None:
        """Everything up to the 354."""
        self.sock.sendall(b"MAIL FROM:<load@bar.example>\r\nRCPT TO:<alice@foo.example>\r\n"
                          b"DATA\r\n")
        replies = [self.reply() for _ in range(3)]
        assert [r[:4] for r in replies] == [b"250 ", b"250 ", b"354 "], replies

    def deliver(self, content: bytes) -> bytes:
        self.begin()
        self.sock.sendall(stuffed(content))
        return self.reply()

    def close(self) -> None:
        self.sock.close()


def check_whole(stored: list[bytes]) -> list[int]:
    """The numbers of the stored messages, each checked to be whole."""
    numbers = []
    for content in stored:
        header, _, body = content.partition(b"\r\n\r\n")
        number = int(header.split(b"X-Number: ")[1].split(b"\r\n")[0])
        lines = body.count(b"\r\n") - 1
        assert body == body_of(number, lines), f"message {number} is not whole"
        numbers.append(number)
    return numbers


def test_kill_during_data_leaves_no_half_message(server: Server) -> None:
    client = Client(server.port("LMTP"))
    client.begin()
    content = stuffed(message(1))
    client.sock.sendall(content[: len(content) // 2])
    # Let the server read what was sent before it dies.
    time.sleep(0.5)
    server.kill()
    client.close()
    server.start()
    assert imap_messages(server.port("IMAP"), USER, PASSWORD) == []


def test_kill_right_after_250_keeps_the_message(server: Server) -> None:
    client = Client(server.port("LMTP"))
    assert client.deliver(message(7)) == b"250 2.0.0 Delivered"
    server.kill()
    client.close()
    server.start()
    stored = imap_messages(server.port("IMAP"), USER, PASSWORD)
    assert check_whole(stored) == [7]


def test_kill_at_random_moments_loses_nothing_acknowledged(server: Server) -> None:
    rng = random.Random(20330)
    acknowledged: set[int] = set()
    number = 100
    for round in range(4):
        port = server.port("LMTP")
        stop = threading.Event()

        def deliver_until_killed() -> None:
            nonlocal number
            try:
                client = Client(port)
                while not stop.is_set():
                    number += 1
                    if client.deliver(message(number, rng.randint(10, 3000))).startswith(b"250 "):
                        acknowledged.add(number)
            except (OSError, AssertionError):
                pass  # the server died under us

        sender = threading.Thread(target=deliver_until_killed)
        sender.start()
        time.sleep(rng.uniform(0.3, 1.5))
        server.kill()
        stop.set()
        sender.join(timeout=30)
        assert not sender.is_alive()
        server.start()
        stored = check_whole(imap_messages(server.port("IMAP"), USER, PASSWORD))
        missing = acknowledged - set(stored)
        assert not missing, f"acknowledged but lost after kill {round + 1}: {sorted(missing)}"
    assert len(acknowledged) > 4, "too few deliveries to have tested anything"
