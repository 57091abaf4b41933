"""
PARTIAL (RFC 9394): the range grammar, and byte-exact transcripts after
the RFC's examples on every store -- SEARCH and UID SEARCH, SORT (ESORT),
SAVE with PARTIAL (section 3.2) and the UID FETCH modifier (sections 3.3
and 3.4) -- plus imaplib.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from harness import IMAPServerTestCase, on_every_store

from twisted_mailhub.imap.esearch import PartialRange
from twisted_mailhub.imap.parser import CommandError, CommandParser
from twisted_mailhub.model import AppendRequest
from twisted_mailhub.testing import make_message

START = datetime(2024, 5, 1, 9, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("first, last, expected", [
    (1, 3, [10, 20, 30]),
    (3, 1, [10, 20, 30]),
    (4, 9, [40, 50]),
    (6, 9, []),
    (-1, -2, [40, 50]),
    (-2, -1, [40, 50]),
    (-4, -9, [10, 20]),
    (-5, -5, [10]),
    (-6, -9, []),
])
def test_pick(first, last, expected):
    assert PartialRange(first, last).pick([10, 20, 30, 40, 50]) == expected


@pytest.mark.parametrize("line, message", [
    (b"a SEARCH RETURN (PARTIAL 1:5 ALL) ALL", "At most one of PARTIAL and ALL may be given"),
    (b"a SEARCH RETURN (PARTIAL 1:5 PARTIAL 6:9) ALL",
     "At most one of PARTIAL and ALL may be given"),
    (b"a SEARCH RETURN (PARTIAL 0:5) ALL", "Invalid PARTIAL range: must not be 0"),
    (b"a SEARCH RETURN (PARTIAL -1:5) ALL", "PARTIAL range ends must have the same sign"),
    (b"a SEARCH RETURN (PARTIAL 1:-5) ALL", "PARTIAL range ends must have the same sign"),
    (b"a SEARCH RETURN (PARTIAL 1:*) ALL", "Invalid PARTIAL range"),
    (b"a SEARCH RETURN (PARTIAL 5) ALL", "Expected : in PARTIAL range"),
    (b"a SEARCH RETURN (PARTIAL) ALL", "Expected SP before PARTIAL range"),
    (b"a SORT RETURN (ALL PARTIAL 1:2) (DATE) UTF-8 ALL",
     "At most one of PARTIAL and ALL may be given"),
    (b"a FETCH 1:* (FLAGS) (PARTIAL 1:5)", "PARTIAL is only allowed in UID FETCH"),
    (b"a UID FETCH 1:* (FLAGS) (PARTIAL 1:5 PARTIAL 1:2)", "PARTIAL given twice"),
])
def test_malformed_ranges_are_bad(line, message):
    parser = CommandParser()
    parser.receive_data(line + b"\r\n")
    event = parser.next_event()
    assert isinstance(event, CommandError)
    assert (event.condition, event.message) == ("BAD", message)


@on_every_store
class PartialTranscriptTests(IMAPServerTestCase):
    """
    30 messages appended, the first two expunged: message n has UID n + 2.
    UIDs 5 and 6 are $Junk, UID 30 is \\Deleted, so ``UNDELETED UNKEYWORD
    $Junk`` finds 25 messages: UIDs 3, 4 and 7 to 29.
    """

    async def setUp(self) -> None:
        await super().setUp()
        inbox = await (await self.backend.open_store("alice")).get_mailbox("INBOX")
        # In arrival order, a minute apart.
        await inbox.append([AppendRequest(make_message(n), frozenset(),
                                          START + timedelta(minutes=n)) for n in range(30)])

    def session(self, *lines: bytes) -> list[list[bytes]]:
        c = self.raw()
        c.line()
        c.command(b"t0 LOGIN alice wonderland")
        c.command(b"t1 SELECT INBOX")
        c.command(b"t1 STORE 1:2 +FLAGS.SILENT (\\Deleted)")
        c.command(b"t1 EXPUNGE")
        c.command(b"t1 UID STORE 5:6 +FLAGS.SILENT ($Junk)")
        c.command(b"t1 UID STORE 30 +FLAGS.SILENT (\\Deleted)")
        out = []
        mark = 0
        for line in lines:
            if line == b"MARK":
                # The HIGHESTMODSEQ now, for a later CHANGEDSINCE %d.
                [status] = [r for r in c.command(b"s STATUS INBOX (HIGHESTMODSEQ)")
                            if r.startswith(b"* STATUS ")]
                mark = int(status.rsplit(b" ", 1)[1].rstrip(b")\r\n"))
                continue
            out.append(c.command(line % mark if b"%d" in line else line))
        c.close()
        return out

    async def test_search(self) -> None:
        """Section 3.1, the A01 to A04 examples."""
        out = await self.in_thread(
            self.session,
            b"A01 UID SEARCH RETURN (PARTIAL -1:-5) UNDELETED UNKEYWORD $Junk",
            b"A02 UID SEARCH RETURN (PARTIAL 20:40) UNDELETED UNKEYWORD $Junk",
            b"A03 UID SEARCH RETURN (PARTIAL 1:3) UNDELETED UNKEYWORD $Junk",
            b"A04 UID SEARCH RETURN (PARTIAL 26:30) UNDELETED UNKEYWORD $Junk",
            b"A05 SEARCH RETURN (PARTIAL 3:1) UNDELETED UNKEYWORD $Junk",
            b"A06 SEARCH RETURN (COUNT PARTIAL -30:-24 MIN) UNDELETED UNKEYWORD $Junk",
            b"A07 UID SEARCH RETURN (partial -26:-40) UNDELETED UNKEYWORD $Junk",
            b"A08 SEARCH RETURN (PARTIAL 1:10) KEYWORD $Nothing",
        )
        self.assertEqual(out, [
            [b'* ESEARCH (TAG "A01") UID PARTIAL (-1:-5 25:29)\r\n', b"A01 OK SEARCH completed\r\n"],
            [b'* ESEARCH (TAG "A02") UID PARTIAL (20:40 24:29)\r\n', b"A02 OK SEARCH completed\r\n"],
            [b'* ESEARCH (TAG "A03") UID PARTIAL (1:3 3:4,7)\r\n', b"A03 OK SEARCH completed\r\n"],
            [b'* ESEARCH (TAG "A04") UID PARTIAL (26:30 NIL)\r\n', b"A04 OK SEARCH completed\r\n"],
            # Message sequence numbers: UID - 2.
            [b'* ESEARCH (TAG "A05") PARTIAL (3:1 1:2,5)\r\n', b"A05 OK SEARCH completed\r\n"],
            [b'* ESEARCH (TAG "A06") MIN 1 PARTIAL (-30:-24 1:2) COUNT 25\r\n',
             b"A06 OK SEARCH completed\r\n"],
            [b'* ESEARCH (TAG "A07") UID PARTIAL (-26:-40 NIL)\r\n', b"A07 OK SEARCH completed\r\n"],
            [b'* ESEARCH (TAG "A08") PARTIAL (1:10 NIL)\r\n', b"A08 OK SEARCH completed\r\n"],
        ])

    async def test_sort(self) -> None:
        """Positions in the sort order, results in that order (RFC 5267 3.2)."""
        out = await self.in_thread(
            self.session,
            b"E01 UID SORT RETURN (PARTIAL 1:3) (REVERSE ARRIVAL) US-ASCII UNDELETED UNKEYWORD $Junk",
            b"E02 UID SORT RETURN (PARTIAL -1:-3 COUNT) (REVERSE ARRIVAL) US-ASCII UNDELETED"
            b" UNKEYWORD $Junk",
            b"E03 SORT RETURN (PARTIAL 2:4) (ARRIVAL) US-ASCII UNDELETED UNKEYWORD $Junk",
            b"E04 SORT RETURN (PARTIAL 99:100) (ARRIVAL) US-ASCII ALL",
        )
        self.assertEqual(out, [
            [b'* ESEARCH (TAG "E01") UID PARTIAL (1:3 29,28,27)\r\n', b"E01 OK SORT completed\r\n"],
            [b'* ESEARCH (TAG "E02") UID PARTIAL (-1:-3 7,4,3) COUNT 25\r\n',
             b"E02 OK SORT completed\r\n"],
            [b'* ESEARCH (TAG "E03") PARTIAL (2:4 2,5:6)\r\n', b"E03 OK SORT completed\r\n"],
            [b'* ESEARCH (TAG "E04") PARTIAL (99:100 NIL)\r\n', b"E04 OK SORT completed\r\n"],
        ])

    async def test_save_with_partial(self) -> None:
        """Section 3.2, table 1: what "$" holds."""
        out = await self.in_thread(
            self.session,
            b"S1 UID SEARCH RETURN (SAVE PARTIAL 1:2) UNDELETED UNKEYWORD $Junk",
            b"S2 UID SEARCH UID $",
            b"S3 UID SEARCH RETURN (SAVE PARTIAL 1:2 MAX) UNDELETED UNKEYWORD $Junk",
            b"S4 UID SEARCH UID $",
            b"S5 UID SEARCH RETURN (SAVE PARTIAL -2:-3 MIN MAX) UNDELETED UNKEYWORD $Junk",
            b"S6 UID SEARCH UID $",
            b"S7 UID SEARCH RETURN (SAVE PARTIAL 1:2 COUNT) UNDELETED UNKEYWORD $Junk",
            b"S8 UID SEARCH RETURN (COUNT) UID $",
            b"S9 UID SORT RETURN (SAVE PARTIAL 1:2 MIN) (REVERSE ARRIVAL) US-ASCII UNDELETED",
            b"SA UID SEARCH UID $",
        )
        self.assertEqual([lines[0] for lines in out], [
            b'* ESEARCH (TAG "S1") UID PARTIAL (1:2 3:4)\r\n',
            b"* SEARCH 3 4\r\n",
            b'* ESEARCH (TAG "S3") UID MAX 29 PARTIAL (1:2 3:4)\r\n',
            b"* SEARCH 3 4 29\r\n",
            b'* ESEARCH (TAG "S5") UID MIN 3 MAX 29 PARTIAL (-2:-3 27:28)\r\n',
            b"* SEARCH 3 27 28 29\r\n",
            b'* ESEARCH (TAG "S7") UID PARTIAL (1:2 3:4) COUNT 25\r\n',
            b'* ESEARCH (TAG "S8") UID COUNT 25\r\n',
            # MIN of a SORT is the first in the sort order.
            b'* ESEARCH (TAG "S9") UID MIN 29 PARTIAL (1:2 29,28)\r\n',
            b"* SEARCH 28 29\r\n",
        ])

    async def test_uid_fetch(self) -> None:
        """Sections 3.3 and 3.4."""
        out = await self.in_thread(
            self.session,
            b"10 UID FETCH 1:* (UID FLAGS) (PARTIAL -1:-3)",
            b"11 UID FETCH 7:20 (UID FLAGS) (PARTIAL 1:3)",
            b"12 UID FETCH 40:50 (UID FLAGS) (PARTIAL 1:3)",
            b"MARK",
            b"13 UID STORE 7,29 +FLAGS.SILENT (\\Flagged)",
            b"101 UID FETCH 1:* (FLAGS) (PARTIAL 1:5 CHANGEDSINCE %d)",
        )
        self.assertEqual(out[0], [
            b"* 26 FETCH (UID 28 FLAGS (\\Recent))\r\n",
            b"* 27 FETCH (UID 29 FLAGS (\\Recent))\r\n",
            b"* 28 FETCH (UID 30 FLAGS (\\Deleted \\Recent))\r\n",
            b"10 OK FETCH completed\r\n"])
        self.assertEqual(out[1], [
            b"* 5 FETCH (UID 7 FLAGS (\\Recent))\r\n",
            b"* 6 FETCH (UID 8 FLAGS (\\Recent))\r\n",
            b"* 7 FETCH (UID 9 FLAGS (\\Recent))\r\n",
            b"11 OK FETCH completed\r\n"])
        # No message in the set: none in the range either.
        self.assertEqual(out[2], [b"12 OK FETCH completed\r\n"])
        # Of the first five, only UID 7 changed since (section 3.4).
        self.assertEqual(len(out[4]), 2, out[4])
        self.assertRegex(out[4][0], rb"^\* 5 FETCH \(UID 7 FLAGS \(\\Flagged \\Recent\) MODSEQ \(\d+\)\)\r\n$")
        self.assertEqual(out[4][1], b"101 OK FETCH completed\r\n")

    async def test_imaplib(self) -> None:
        def run():
            client = self.imaplib_client()
            _, caps = client.capability()
            client.select("INBOX")
            client.uid("STORE", "1:10", "+FLAGS.SILENT", "(\\Seen)")
            typ, _ = client.uid("SEARCH", "RETURN", "(PARTIAL", "-1:-3)", "SEEN")
            _, esearch = client.response("ESEARCH")
            client.logout()
            return caps[0].split(), typ, esearch

        caps, typ, esearch = await self.in_thread(run)
        self.assertIn(b"PARTIAL", caps)
        self.assertEqual(typ, "OK")
        [data] = esearch
        self.assertRegex(data, rb'^\(TAG "[A-Z0-9]+"\) UID PARTIAL \(-1:-3 8:10\)$')
