"""The comparison tool, run against in-process IMAP and POP3 servers."""

from __future__ import annotations

import io
import re
import socket

from pop3_harness import POP3ServerTestCase
from twisted_mailhub.compare import main
from twisted_mailhub.compare.counting import Counter, CountingSocket


def rows(table: str) -> dict[tuple[str, str], list[str]]:
    """{(task, protocol): [sent, received, round trips, ms, outcome]} from the table."""
    out: dict[tuple[str, str], list[str]] = {}
    task = ""
    for line in table.splitlines()[2:]:
        cells = re.split(r"\s{2,}", line.strip())
        if cells[0] != "POP3":
            task = cells.pop(0)
        out[(task, cells[0])] = cells[1:]
    return out


class CompareToolTests(POP3ServerTestCase):
    async def test_figures_are_plausible(self) -> None:
        buffer = io.StringIO()
        argv = ["--imap", f"127.0.0.1:{self.imap_port}", "--pop3", f"127.0.0.1:{self.port}",
                "--user", "alice", "--password", "wonderland", "--generate", "40"]
        code = await self.in_thread(main, argv, buffer)
        output = buffer.getvalue()
        self.assertEqual(code, 0, output)
        self.assertTrue(output.startswith("appended 46 generated messages"), output[:40])
        table = rows(output.split("\n\n", 1)[1])
        self.assertEqual(len(table), 12)
        find_imap = table[("find messages from one sender", "IMAP")]
        find_pop3 = table[("find messages from one sender", "POP3")]
        # POP3 must fetch every header; IMAP SEARCH returns only the UIDs.
        self.assertGreater(int(find_pop3[1]), 2 * int(find_imap[1]))
        self.assertIn("8 messages from bob@example.com", " ".join(find_imap))
        self.assertIn("8 messages from bob@example.com", " ".join(find_pop3))
        download_pop3 = table[("download all new mail", "POP3")]
        # Some messages carry a 300 kB attachment (about 400 kB in base64).
        self.assertGreater(int(download_pop3[1]), 2 * 400_000)
        self.assertEqual(table[("work with several folders", "POP3")][:4], ["-"] * 4)
        self.assertIn("not possible: POP3 has no folders", output)
        self.assertIn("not possible: POP3 has no read/unread flags", output)
        for cells in table.values():
            if cells[0] != "-":
                self.assertGreater(int(cells[2]), 0)  # at least one round trip

    async def test_unreachable_server(self) -> None:
        await self.ports.pop(0).stopListening()
        buffer = io.StringIO()
        argv = ["--imap", f"127.0.0.1:{self.imap_port}", "--pop3", f"127.0.0.1:{self.port}",
                "--user", "alice", "--password", "wonderland"]
        self.assertEqual(await self.in_thread(main, argv, buffer), 1)


def test_counting_socket_counts_bytes_and_round_trips() -> None:
    a, b = socket.socketpair()
    counter = Counter()
    counted = CountingSocket(a, counter)
    counted.sendall(b"hello\r\n")
    b.sendall(b"+OK\r\n")
    reader = counted.makefile("rb")
    assert reader.readline() == b"+OK\r\n"
    counted.sendall(b"x")
    b.sendall(b"yz")
    assert counted.recv(10) == b"yz"
    assert (counter.sent, counter.received, counter.round_trips) == (8, 7, 2)
    a.close()
    b.close()
