"""
REPLACE and UID REPLACE (RFC 8508): the grammar of section 5, transcripts
shaped like the examples of sections 3.2 and 3.3 on every store, the
failures that leave every mailbox as it was (a number or UID naming no
message, a read-only mailbox, a target that does not exist, a message over
APPENDLIMIT), QRESYNC's VANISHED (section 4.5) and CATENATE of the very
message replaced (section 4.2).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from twisted.trial import unittest

from harness import IMAPServerTestCase, on_every_store

from twisted_mailhub.imap import commands as C
from twisted_mailhub.model import AppendRequest
from twisted_mailhub.policy import ServerPolicy
from twisted_mailhub.ranges import SequenceSet

FIRST = (b"Date: Thu, 1 Jan 2015 00:05:00 -0500 (EST)\r\n"
         b"From: Fritz Schmidt <fritz.ze@example.org>\r\n"
         b"Subject: happy new year !!\r\n"
         b"To: miss.mitzy@example.org\r\n\r\n"
         b"Just saying hello\r\n")
SECOND = FIRST.replace(b"happy new year !!", b"happy new year !!!").replace(
    b"hello\r\n", b"hello, and more.\r\n")
OTHER = b"From: someone@example.org\r\nSubject: other\r\n\r\nkeep me\r\n"
ZONE = timezone(timedelta(hours=-5))
WHEN = datetime(2015, 1, 1, 0, 5, tzinfo=ZONE)


class GrammarTests(unittest.TestCase):
    def parse(self, data: bytes):
        from twisted_mailhub.imap.parser import CommandParser

        parser = CommandParser()
        parser.receive_data(data)
        return parser.next_event()

    def test_replace(self) -> None:
        event = self.parse(b"A003 REPLACE 4 Drafts (\\Seen \\Draft) {5+}\r\nhello\r\n")
        self.assertEqual(event.command, C.Replace(
            "A003", SequenceSet(((4, 4),)), "Drafts",
            C.AppendMessage(b"hello", frozenset({"\\Seen", "\\Draft"}))))

    def test_uid_replace_with_date_and_star(self) -> None:
        event = self.parse(b'a UID REPLACE * Sent "01-Jan-2015 00:05:00 -0500" {2+}\r\nhi\r\n')
        command = event.command
        self.assertEqual((command.uid, str(command.number), command.mailbox),
                         (True, "*", "Sent"))
        self.assertEqual(command.message, C.AppendMessage(b"hi", frozenset(), WHEN))

    def test_catenate(self) -> None:
        """Section 4.2: the message may be built by CATENATE."""
        event = self.parse(b'a UID REPLACE 7 Drafts CATENATE (URL "/Drafts/;UID=7" '
                           b'TEXT {2+}\r\nhi)\r\n')
        self.assertEqual(event.command.message.catenate,
                         (C.CatenateUrl(b"/Drafts/;UID=7"), b"hi"))

    def test_bad_syntax(self) -> None:
        for line, message in [
            (b"a REPLACE", "Missing message number"),
            (b"a REPLACE 1:3 Drafts {1+}\r\nx", "REPLACE takes one message number, not a set: 1:3"),
            (b"a UID REPLACE 4,5 Drafts {1+}\r\nx", "REPLACE takes one UID, not a set: 4,5"),
            (b"a REPLACE $ Drafts {1+}\r\nx", "REPLACE takes one message number, not a set: $"),
            (b"a REPLACE 0 Drafts {1+}\r\nx", "Invalid message number: 0"),
            (b"a REPLACE 1 Drafts", "Missing message literal"),
            (b"a REPLACE 1 Drafts (\\Seen)", "Missing message literal"),
            # Section 4.7: one message, never MULTIAPPEND's several.
            (b"a REPLACE 1 Drafts {1+}\r\nx {1+}\r\ny", "REPLACE takes one message, not several"),
        ]:
            event = self.parse(line + b"\r\n")
            self.assertEqual((event.condition, event.message), ("BAD", message), line)

    def test_uid_replace_is_known_before_the_literal(self) -> None:
        """A synchronizing literal of UID REPLACE gets its continuation."""
        from twisted_mailhub.imap.parser import ContinuationRequest

        event = self.parse(b"a UID REPLACE 1 Drafts {5}\r\n")
        self.assertEqual(event, ContinuationRequest("a", 5))


class ReplaceCase(IMAPServerTestCase):
    async def setUp(self) -> None:
        await super().setUp()
        store = await self.backend.open_store("alice")
        for name in ("Drafts", "Sent"):
            await store.create_mailbox(name)
        drafts = await store.get_mailbox("Drafts")
        metas = await drafts.append([AppendRequest(OTHER), AppendRequest(FIRST)])
        self.other_uid, self.first_uid = [m.uid for m in metas]
        self.drafts = drafts.uidvalidity
        self.sent = (await store.get_mailbox("Sent")).uidvalidity

    def session(self):
        c = self.raw()
        c.line()
        c.command(b"t0 LOGIN alice wonderland")
        return c

    def send_literal(self, c, head: bytes, data: bytes) -> list[bytes]:
        """C{head} ends in ``{n}``: wait for the continuation, send C{data}."""
        c.send(head + b"\r\n")
        plus = c.line()
        c.send(data + b"\r\n")
        return [plus]

    def messages(self, c, mailbox: bytes) -> list[tuple[int, bytes]]:
        """The (UID, content) of each message of C{mailbox}, read-only."""
        c.command(b"x1 EXAMINE " + mailbox)
        c.send(b"x2 UID FETCH 1:* BODY.PEEK[]\r\n")
        out = []
        while True:
            head = c.line()
            if head.startswith(b"x2 "):
                break
            found = re.search(rb"UID (\d+) BODY\[\] \{(\d+)\}\r\n$", head)
            assert found, head
            out.append((int(found.group(1)), c.read_exact(int(found.group(2)))))
            c.line()
        c.command(b"x3 UNSELECT")
        return out


@on_every_store
class TranscriptTests(ReplaceCase):
    async def test_replace_in_the_selected_mailbox(self) -> None:
        """Section 3.2: the new message arrives, the old one is expunged."""
        new = self.first_uid + 1

        def run():
            c = self.session()
            caps = c.command(b"t1 CAPABILITY")[0]
            c.command(b"A002 SELECT Drafts")
            plus = self.send_literal(c, b"A003 REPLACE 2 Drafts (\\Seen \\Draft) {%d}"
                                     % len(SECOND), SECOND)
            done = c.until_tagged(b"A003")
            flags = c.command(b"A004 UID FETCH 1:* (FLAGS)")
            return caps, plus, done, flags, self.messages(c, b"Drafts")

        caps, plus, done, flags, messages = await self.in_thread(run)
        self.assertIn(b" REPLACE", caps)
        self.assertEqual(plus, [b"+ Ready for literal data\r\n"])
        self.assertEqual(done[:2], [
            b"* OK [APPENDUID %d %d] Replacement message ready\r\n" % (self.drafts, new),
            b"* 2 EXPUNGE\r\n",
        ])
        self.assertEqual(done[2], b"* 2 EXISTS\r\n")
        self.assertEqual(done[-1], b"A003 OK REPLACE completed\r\n")
        self.assertEqual(flags[1], b"* 2 FETCH (UID %d FLAGS (\\Seen \\Draft \\Recent))\r\n" % new)
        self.assertEqual(messages, [(self.other_uid, OTHER), (new, SECOND)])

    async def test_uid_replace_into_another_mailbox(self) -> None:
        """Section 3.3: the target may be another mailbox; date and flags kept."""

        def run():
            c = self.session()
            c.command(b"A002 SELECT Drafts")
            self.send_literal(c, b'A003 UID REPLACE %d Sent (\\Seen) "01-Jan-2015 00:05:00 -0500"'
                              b" {%d}" % (self.first_uid, len(SECOND)), SECOND)
            done = c.until_tagged(b"A003")
            c.command(b"A004 SELECT Sent")
            fetched = c.command(b"A005 FETCH 1 (FLAGS INTERNALDATE)")
            c.command(b"A006 UNSELECT")
            return done, fetched, self.messages(c, b"Drafts"), self.messages(c, b"Sent")

        done, fetched, drafts, sent = await self.in_thread(run)
        self.assertEqual(done, [
            b"* OK [APPENDUID %d 1] Replacement message ready\r\n" % self.sent,
            b"* 2 EXPUNGE\r\n",
            b"A003 OK UID REPLACE completed\r\n",
        ])
        self.assertEqual(fetched[0], b'* 1 FETCH (FLAGS (\\Seen \\Recent) '
                                     b'INTERNALDATE " 1-Jan-2015 00:05:00 -0500")\r\n')
        self.assertEqual(drafts, [(self.other_uid, OTHER)])
        self.assertEqual(sent, [(1, SECOND)])

    async def test_qresync_gets_vanished(self) -> None:
        """Section 4.5: with QRESYNC the old message is told as VANISHED."""

        def run():
            c = self.session()
            c.command(b"A001 ENABLE QRESYNC")
            c.command(b"A002 SELECT Drafts")
            self.send_literal(c, b"A003 UID REPLACE %d Drafts {%d}"
                              % (self.first_uid, len(SECOND)), SECOND)
            return c.until_tagged(b"A003")

        done = await self.in_thread(run)
        self.assertEqual(done[1], b"* VANISHED %d\r\n" % self.first_uid)
        self.assertNotIn(b"EXPUNGE", b"".join(done))
        self.assertRegex(done[-1], rb"^A003 OK \[HIGHESTMODSEQ \d+\] UID REPLACE completed\r\n$")

    async def test_catenate_of_the_replaced_message(self) -> None:
        """Section 4.2: a URL may name the message being replaced."""
        header, _, body = FIRST.partition(b"\r\n\r\n")
        url = b'"/Drafts;UIDVALIDITY=%d/;UID=%d/;section=HEADER"' % (self.drafts, self.first_uid)
        tail = b"Edited body\r\n"

        def run():
            c = self.session()
            c.command(b"A002 SELECT Drafts")
            self.send_literal(c, b"A003 UID REPLACE %d Drafts CATENATE (URL %s TEXT {%d}"
                              % (self.first_uid, url, len(tail)), tail + b")")
            return c.until_tagged(b"A003"), self.messages(c, b"Drafts")

        done, messages = await self.in_thread(run)
        self.assertEqual(done[-1], b"A003 OK UID REPLACE completed\r\n")
        self.assertEqual(messages, [(self.other_uid, OTHER),
                                    (self.first_uid + 1, header + b"\r\n\r\n" + tail)])

    async def test_other_session_is_told_of_both(self) -> None:
        """Another session of the mailbox sees the new message and the expunge."""

        def run():
            watcher, c = self.session(), self.session()
            watcher.command(b"w1 SELECT Drafts")
            c.command(b"A002 SELECT Drafts")
            self.send_literal(c, b"A003 REPLACE 2 Drafts {%d}" % len(SECOND), SECOND)
            c.until_tagged(b"A003")
            return watcher.command(b"w2 NOOP")

        told = await self.in_thread(run)
        self.assertIn(b"* 2 EXPUNGE\r\n", told)
        self.assertIn(b"* 2 EXISTS\r\n", told)
        self.assertEqual(told[-1], b"w2 OK NOOP completed\r\n")


@on_every_store
class FailureTests(ReplaceCase):
    """Every failure leaves both mailboxes as they were."""

    def attempt(self, select: bytes, line: bytes, data: bytes = SECOND) -> tuple:
        def run():
            c = self.session()
            c.command(b"A002 " + select)
            c.send(line % len(data) + b"\r\n")
            reply = c.line()
            if reply.startswith(b"+"):
                c.send(data + b"\r\n")
                reply = c.until_tagged(b"A003")[-1]
            c.command(b"A004 UNSELECT")
            return reply, self.messages(c, b"Drafts"), self.messages(c, b"Sent")

        return self.in_thread(run)

    async def check(self, select: bytes, line: bytes, expected: bytes) -> None:
        reply, drafts, sent = await self.attempt(select, line)
        self.assertEqual(reply, expected)
        self.assertEqual(drafts, [(self.other_uid, OTHER), (self.first_uid, FIRST)])
        self.assertEqual(sent, [])

    async def test_uid_of_no_message_is_no(self) -> None:
        """Section 3.3: the UID may have been expunged meanwhile: NO."""
        await self.check(b"SELECT Drafts", b"A003 UID REPLACE 99 Sent {%d}",
                         b"A003 NO No message with UID 99\r\n")

    async def test_sequence_number_out_of_range_is_bad(self) -> None:
        await self.check(b"SELECT Drafts", b"A003 REPLACE 3 Sent {%d}",
                         b"A003 BAD Invalid message sequence number: 3 (mailbox has 2)\r\n")

    async def test_read_only_mailbox(self) -> None:
        await self.check(b"EXAMINE Drafts", b"A003 REPLACE 2 Sent {%d}",
                         b"A003 NO [READ-ONLY] Mailbox is read-only\r\n")

    async def test_target_that_does_not_exist(self) -> None:
        await self.check(b"SELECT Drafts", b"A003 REPLACE 2 Archive {%d}",
                         b"A003 NO [TRYCREATE] Mailbox does not exist: Archive\r\n")

    async def test_not_selected(self) -> None:
        reply, drafts, sent = await self.attempt(b"NOOP", b"A003 REPLACE 1 Sent {%d}")
        self.assertEqual(reply, b"A003 BAD REPLACE not allowed without a selected mailbox\r\n")


@on_every_store
class TooBigTests(ReplaceCase):
    policy = ServerPolicy(auth_failure_delay=0.0, auth_failure_delay_max=0.0,
                          max_literal_size=100)

    async def test_over_appendlimit(self) -> None:
        """RFC 7889 section 4: the literal is refused before it is sent."""

        def run():
            c = self.session()
            caps = c.command(b"t1 CAPABILITY")[0]
            c.command(b"A002 SELECT Drafts")
            reply = c.command(b"A003 REPLACE 2 Drafts {%d}" % len(SECOND))
            c.command(b"A004 UNSELECT")
            return caps, reply, self.messages(c, b"Drafts")

        caps, reply, drafts = await self.in_thread(run)
        self.assertIn(b" APPENDLIMIT=100", caps)
        self.assertEqual(len(reply), 1)
        self.assertTrue(reply[0].startswith(b"A003 NO [TOOBIG] "), reply)
        self.assertEqual(drafts, [(self.other_uid, OTHER), (self.first_uid, FIRST)])
