"""
The sample IMAP4rev1 connection of RFC 3501 section 8, over a socket, with
the same message content: 18 messages in INBOX, two of them recent, message
17 the first unseen, and message 12 the "IMAP4rev1 WG mtg summary and
minutes" message whose header and body shape the RFC shows.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from harness import IMAPServerTestCase, on_every_store

HEADER = (
    b"Date: Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\r\n"
    b"From: Terry Gray <gray@cac.washington.edu>\r\n"
    b"Subject: IMAP4rev1 WG mtg summary and minutes\r\n"
    b"To: imap@cac.washington.edu\r\n"
    b"cc: minutes@CNRI.Reston.VA.US, John Klensin <KLENSIN@MIT.EDU>\r\n"
    b"Message-Id: <B27397-0100000@cac.washington.edu>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n"
    b"\r\n"
)


def minutes_body() -> bytes:
    """92 lines, 3028 bytes: the BODY the RFC reports for message 12."""
    lines = [b"IMAP4rev1 WG minutes, line %02d" % i
             for i in range(1, 93)]
    body = b"\r\n".join(lines) + b"\r\n"
    # Pad the last line so the body has exactly the RFC's 3028 bytes.
    missing = 3028 - len(body)
    assert missing >= 0
    lines[-1] += b"." * missing
    body = b"\r\n".join(lines) + b"\r\n"
    assert len(body) == 3028 and body.count(b"\r\n") == 92
    return body


def filler(n: int) -> bytes:
    return (b"From: someone@example.org\r\nSubject: message %d\r\n"
            b"Date: Tue, 16 Jul 1996 10:00:00 -0700\r\n\r\nbody %d\r\n" % (n, n))


@on_every_store
class SampleDialogTests(IMAPServerTestCase):
    users = {"mrc": "secret"}

    async def setUp(self) -> None:
        await super().setUp()
        store = await self.backend.open_store("mrc")
        inbox = await store.get_mailbox("INBOX")
        from twisted_mailhub.model import AppendRequest

        pdt = timezone(timedelta(hours=-7))
        requests = []
        for n in range(1, 19):
            if n == 12:
                content = HEADER + minutes_body()
                date = datetime(1996, 7, 17, 2, 44, 25, tzinfo=pdt)
            else:
                content, date = filler(n), datetime(1996, 7, 16, 10, 0, tzinfo=pdt)
            # 1-16 seen; 17 and 18 unseen and (not having been reported) recent.
            flags = frozenset({"\\Seen"}) if n <= 16 else frozenset()
            requests.append(AppendRequest(content, flags, date))
        await inbox.append(requests[:16])
        # An earlier session saw the first 16 arrive.
        await inbox.claim_recent(True)
        await inbox.append(requests[16:])

    async def test_sample_dialog(self) -> None:
        lines = await self.in_thread(self._dialog)
        text = b"".join(lines)
        self.assertTrue(lines[0].startswith(b"* OK "))
        self.assertIn(b"a001 OK ", text)
        select = b"".join(lines[lines.index(b"--select\r\n"):lines.index(b"--fetch-full\r\n")])
        self.assertIn(b"* 18 EXISTS\r\n", select)
        self.assertIn(b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n", select)
        self.assertIn(b"* 2 RECENT\r\n", select)
        self.assertIn(b"* OK [UNSEEN 17] ", select)
        self.assertRegex(select, rb"\* OK \[UIDVALIDITY \d+\] ")
        self.assertIn(b"a002 OK [READ-WRITE] SELECT completed\r\n", select)
        full = b"".join(lines[lines.index(b"--fetch-full\r\n") + 1:
                              lines.index(b"--fetch-header\r\n")])
        size = len(HEADER) + 3028
        expected = (
            b'* 12 FETCH (FLAGS (\\Seen) INTERNALDATE "17-Jul-1996 02:44:25 -0700" '
            b"RFC822.SIZE %d ENVELOPE (\"Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\" "
            b'"IMAP4rev1 WG mtg summary and minutes" '
            b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
            b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
            b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
            b'((NIL NIL "imap" "cac.washington.edu")) '
            # The formal syntax (1*address) puts no space between addresses;
            # the RFC's sample breaks the line there for editorial clarity.
            b'((NIL NIL "minutes" "CNRI.Reston.VA.US")'
            b'("John Klensin" NIL "KLENSIN" "MIT.EDU")) NIL NIL '
            b'"<B27397-0100000@cac.washington.edu>") '
            b'BODY ("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 3028 92))\r\n'
            b"a003 OK FETCH completed\r\n" % size
        )
        self.assertEqual(full, expected)
        header = b"".join(lines[lines.index(b"--fetch-header\r\n") + 1:
                                lines.index(b"--store\r\n")])
        self.assertEqual(
            header,
            b"* 12 FETCH (BODY[HEADER] {%d}\r\n" % len(HEADER) + HEADER + b")\r\n"
            b"a004 OK FETCH completed\r\n")
        self.assertEqual(len(HEADER), 342)
        store = b"".join(lines[lines.index(b"--store\r\n") + 1:lines.index(b"--logout\r\n")])
        self.assertEqual(store, b"* 12 FETCH (FLAGS (\\Seen \\Deleted))\r\n"
                                b"a005 OK STORE completed\r\n")
        logout = b"".join(lines[lines.index(b"--logout\r\n") + 1:])
        self.assertTrue(logout.startswith(b"* BYE "))
        self.assertTrue(logout.endswith(b"a006 OK LOGOUT completed\r\n"))

    def _dialog(self) -> list[bytes]:
        c = self.raw()
        out = [c.line()]
        out += c.command(b"a001 login mrc secret")
        out.append(b"--select\r\n")
        out += c.command(b"a002 select inbox")
        out.append(b"--fetch-full\r\n")
        out += c.command(b"a003 fetch 12 full")
        out.append(b"--fetch-header\r\n")
        c.send(b"a004 fetch 12 body[header]\r\n")
        first = c.line()
        out.append(first)
        n = int(re.search(rb"\{(\d+)\}", first).group(1))
        out.append(c.read_exact(n))
        out += c.until_tagged(b"a004")
        out.append(b"--store\r\n")
        out += c.command(b"a005 store 12 +flags \\deleted")
        out.append(b"--logout\r\n")
        out += c.command(b"a006 logout")
        self.assertTrue(c.closed())
        c.close()
        return out
