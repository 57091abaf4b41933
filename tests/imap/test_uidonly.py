"""
UIDONLY (RFC 9586): the UIDFETCH response as serialised, which commands
are refused with BAD [UIDREQUIRED] once it is enabled, and transcripts on
every store: UIDFETCH for asked-for and unsolicited FETCH data, VANISHED
for every expunge, while a session that did not enable it is unchanged.
"""

from __future__ import annotations

from twisted.trial import unittest

from harness import IMAPServerTestCase, on_every_store

from tests_messages import simple_message
from twisted_mailhub.imap import commands as C
from twisted_mailhub.imap import fetch as F
from twisted_mailhub.imap import responses, uidonly
from twisted_mailhub.imap.session import CommandFailed
from twisted_mailhub.model import AppendRequest, MessageMeta


class SerialiserTests(unittest.TestCase):
    def test_uidfetch(self) -> None:
        self.assertEqual(responses.fetch(42, [b"FLAGS (\\Seen)"], b"UIDFETCH"),
                         b"* 42 UIDFETCH (FLAGS (\\Seen))\r\n")
        self.assertEqual(responses.fetch(3, [b"FLAGS ()"]), b"* 3 FETCH (FLAGS ())\r\n")

    def test_meta_renderer(self) -> None:
        from datetime import datetime, timezone

        meta = MessageMeta(uid=42, flags=frozenset({"\\Seen"}), size=10, modseq=7,
                           internaldate=datetime(2024, 5, 1, tzinfo=timezone.utc))
        # The template of the common items, and the general path.
        render = F.meta_renderer([C.FetchAttr("FLAGS")], uid=False, modseq=True, verb=b"UIDFETCH")
        self.assertEqual(render(42, meta, False), b"* 42 UIDFETCH (FLAGS (\\Seen) MODSEQ (7))\r\n")
        render = F.meta_renderer([C.FetchAttr("INTERNALDATE")], uid=False, modseq=False,
                                 verb=b"UIDFETCH")
        self.assertEqual(render(42, meta, False),
                         b'* 42 UIDFETCH (INTERNALDATE " 1-May-2024 00:00:00 +0000")\r\n')


class CheckTests(unittest.TestCase):
    def parse(self, line: bytes) -> C.Command:
        from twisted_mailhub.imap.parser import CommandParser

        parser = CommandParser()
        parser.receive_data(line + b"\r\n")
        return parser.next_event().command

    def refused(self, line: bytes) -> str:
        with self.assertRaises(CommandFailed) as caught:
            uidonly.check(self.parse(line))
        self.assertEqual((caught.exception.condition, caught.exception.code),
                         ("BAD", "UIDREQUIRED"))
        return caught.exception.text

    def test_message_numbers_refused(self) -> None:
        for line, what in [
            (b"a FETCH 1:* FLAGS", "FETCH without UID"),
            (b"a STORE 1 +FLAGS (\\Seen)", "STORE without UID"),
            (b"a SEARCH ALL", "SEARCH without UID"),
            (b"a SORT (DATE) UTF-8 ALL", "SORT without UID"),
            (b"a THREAD REFERENCES UTF-8 ALL", "THREAD without UID"),
            (b"a COPY 1 Archive", "COPY without UID"),
            (b"a MOVE 1 Archive", "MOVE without UID"),
            (b"a REPLACE 1 Drafts {1+}\r\nx", "REPLACE without UID"),
            (b"a UID SEARCH 1:5", "A search key that is a sequence set"),
            (b"a UID SEARCH OR SEEN NOT 2", "A search key that is a sequence set"),
            (b"a UID SORT (DATE) UTF-8 1:5", "A search key that is a sequence set"),
            (b"a SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541 "
             b"(1,3,5 1,3,5)))", "QRESYNC message sequence match data"),
        ]:
            self.assertEqual(self.refused(line),
                             what + ": message sequence numbers are not allowed with UIDONLY")

    def test_uids_allowed(self) -> None:
        for line in [
            b"a UID FETCH 1:* FLAGS", b"a UID STORE 1 +FLAGS (\\Seen)", b"a UID SEARCH UID 1:5",
            b"a UID SEARCH $", b"a UID COPY 1 Archive", b"a UID MOVE 1 Archive",
            b"a UID REPLACE 1 Drafts {1+}\r\nx", b"a EXPUNGE", b"a UID EXPUNGE 1:3",
            b"a SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211))",
            b"a NOOP",
        ]:
            uidonly.check(self.parse(line))


@on_every_store
class TranscriptTests(IMAPServerTestCase):
    async def setUp(self) -> None:
        await super().setUp()
        store = await self.backend.open_store("alice")
        await store.create_mailbox("Archive")
        inbox = await store.get_mailbox("INBOX")
        metas = await inbox.append([AppendRequest(simple_message(f"message {n}"))
                                    for n in range(5)])
        self.uids = [m.uid for m in metas]
        # Gaps, so that UIDs and sequence numbers differ.
        await inbox.store_flags(self.uids[:2], "add", {"\\Deleted"})
        await inbox.expunge(self.uids[:2])
        self.uids = self.uids[2:]

    def session(self, enable: bool = True):
        c = self.raw()
        c.line()
        c.command(b"a0 LOGIN alice wonderland")
        if enable:
            assert c.command(b"a1 ENABLE UIDONLY")[0] == b"* ENABLED UIDONLY\r\n"
        return c

    async def test_capability(self) -> None:
        caps = await self.in_thread(lambda: self.session(False).command(b"c CAPABILITY")[0])
        self.assertIn(b" UIDONLY", caps)

    async def test_fetch_and_store(self) -> None:
        u3, u4, u5 = self.uids

        def run():
            c = self.session()
            select = c.command(b"a2 SELECT INBOX")
            return (select, c.command(b"a3 FETCH 1 FLAGS"),
                    c.command(b"a4 UID FETCH 1:* (FLAGS)"),
                    c.command(b"a5 UID FETCH %d (UID RFC822.SIZE)" % u4),
                    c.command(b"a6 UID STORE %d +FLAGS (\\Flagged)" % u5),
                    c.command(b"a7 UID STORE %d +FLAGS.SILENT (\\Seen)" % u5))

        select, refused, fetched, with_uid, stored, silent = await self.in_thread(run)
        self.assertFalse([line for line in select if b"UNSEEN" in line])
        self.assertEqual(refused, [b"a3 BAD [UIDREQUIRED] FETCH without UID: message sequence "
                                   b"numbers are not allowed with UIDONLY\r\n"])
        self.assertEqual(fetched, [b"* %d UIDFETCH (FLAGS (\\Recent))\r\n" % u for u in self.uids]
                         + [b"a4 OK FETCH completed\r\n"])
        self.assertRegex(with_uid[0], rb"^\* %d UIDFETCH \(UID %d RFC822\.SIZE \d+\)\r\n$"
                         % (u4, u4))
        self.assertEqual(stored, [b"* %d UIDFETCH (FLAGS (\\Flagged \\Recent))\r\n" % u5,
                                  b"a6 OK STORE completed\r\n"])
        self.assertEqual(silent, [b"a7 OK STORE completed\r\n"])

    async def test_condstore_modseq(self) -> None:
        u5 = self.uids[2]

        def run():
            c = self.session()
            c.command(b"a2 ENABLE CONDSTORE")
            c.command(b"a3 SELECT INBOX")
            return c.command(b"a4 UID STORE %d +FLAGS.SILENT (\\Seen)" % u5)

        lines = await self.in_thread(run)
        self.assertRegex(lines[0], rb"^\* %d UIDFETCH \(MODSEQ \(\d+\)\)\r\n$" % u5)

    async def test_expunges_are_vanished(self) -> None:
        u3, u4, u5 = self.uids

        def run():
            c = self.session()
            c.command(b"a2 SELECT INBOX")
            c.command(b"a3 UID STORE %d +FLAGS.SILENT (\\Deleted)" % u3)
            expunged = c.command(b"a4 EXPUNGE")
            moved = c.command(b"a5 UID MOVE %d Archive" % u5)
            return expunged, moved

        expunged, moved = await self.in_thread(run)
        self.assertEqual(expunged, [b"* VANISHED %d\r\n" % u3, b"a4 OK EXPUNGE completed\r\n"])
        self.assertEqual(moved[1:], [b"* VANISHED %d\r\n" % u5, b"a5 OK MOVE completed\r\n"])
        self.assertRegex(moved[0], rb"^\* OK \[COPYUID \d+ %d 1\] Moved\r\n$" % u5)

    async def test_changes_of_other_sessions(self) -> None:
        """Unsolicited FETCH is UIDFETCH, EXPUNGE is VANISHED; the other session is unchanged."""
        u3, u4, u5 = self.uids

        def run():
            c, other = self.session(), self.session(False)
            c.command(b"a2 SELECT INBOX")
            other.command(b"o1 SELECT INBOX")
            other.command(b"o2 UID STORE %d +FLAGS (\\Answered)" % u4)
            mine = other.command(b"o3 UID STORE %d +FLAGS (\\Deleted)" % u3)
            mine += other.command(b"o4 EXPUNGE")
            return c.command(b"a3 NOOP"), mine

        told, other = await self.in_thread(run)
        self.assertIn(b"* VANISHED %d\r\n" % u3, told)
        self.assertIn(b"* %d UIDFETCH (FLAGS (\\Answered \\Recent))\r\n" % u4, told)
        self.assertEqual(told[-1], b"a3 OK NOOP completed\r\n")
        self.assertFalse([line for line in told if b" FETCH " in line or b"EXPUNGE" in line])
        self.assertIn(b"* 1 EXPUNGE\r\n", other)

    async def test_uid_search(self) -> None:
        u3, u4, u5 = self.uids

        def run():
            c = self.session()
            c.command(b"a2 SELECT INBOX")
            return (c.command(b"a3 UID SEARCH UID %d:*" % u4), c.command(b"a4 UID SEARCH 1"),
                    c.command(b"a5 UID SEARCH RETURN (ALL) ALL"))

        found, refused, esearch = await self.in_thread(run)
        self.assertEqual(found, [b"* SEARCH %d %d\r\n" % (u4, u5), b"a3 OK SEARCH completed\r\n"])
        self.assertEqual(refused[0][:27], b"a4 BAD [UIDREQUIRED] A sear")
        self.assertEqual(esearch[0], b'* ESEARCH (TAG "a5") UID ALL %d:%d\r\n' % (u3, u5))

    async def test_not_enabled_with_a_mailbox_selected(self) -> None:
        """
        ENABLE comes before SELECT (RFC 9051 6.3.1): with a mailbox selected
        UIDONLY is left out of ENABLED and message numbers go on working.
        """
        u3 = self.uids[0]

        def run():
            c = self.session(False)
            c.command(b"a2 SELECT INBOX")
            enabled = c.command(b"a3 ENABLE UIDONLY")
            return enabled, c.command(b"a4 FETCH 1 (FLAGS)"), c.command(
                b"a5 UID FETCH %d (FLAGS)" % u3)

        enabled, by_number, by_uid = await self.in_thread(run)
        self.assertEqual(enabled, [b"* ENABLED\r\n", b"a3 OK ENABLE completed\r\n"])
        self.assertEqual(by_number[0], b"* 1 FETCH (FLAGS (\\Recent))\r\n")
        self.assertEqual(by_uid[0], b"* 1 FETCH (UID %d FLAGS (\\Recent))\r\n" % u3)

    async def test_qresync_select(self) -> None:
        """SELECT (QRESYNC ...) tells changed flags in UIDFETCH responses."""

        def run():
            c = self.session()
            c.command(b"a2 ENABLE QRESYNC")
            uidvalidity = int(c.command(b"a3 STATUS INBOX (UIDVALIDITY)")[0]
                              .split(b"UIDVALIDITY ")[1].split(b")")[0])
            return c.command(b"a4 SELECT INBOX (QRESYNC (%d 1))" % uidvalidity)

        lines = await self.in_thread(run)
        fetched = [line for line in lines if b"FETCH" in line]
        self.assertEqual(len(fetched), 3, lines)
        for uid, line in zip(self.uids, fetched):
            self.assertRegex(line, rb"^\* %d UIDFETCH \(FLAGS \([^)]*\) MODSEQ \(\d+\)\)\r\n$" % uid)

    async def test_idle_pushes_uidfetch_and_vanished(self) -> None:
        u3, u4, u5 = self.uids

        def run():
            c, other = self.session(), self.session(False)
            c.command(b"a2 SELECT INBOX")
            other.command(b"o1 SELECT INBOX")
            c.send(b"a3 IDLE\r\n")
            plus = c.line()
            other.command(b"o2 UID STORE %d +FLAGS (\\Seen)" % u5)
            pushed = [c.line()]
            other.command(b"o3 UID STORE %d +FLAGS.SILENT (\\Deleted)" % u3)
            pushed.append(c.line())
            other.command(b"o4 EXPUNGE")
            pushed.append(c.line())
            c.send(b"DONE\r\n")
            return plus, pushed, c.until_tagged(b"a3")

        plus, pushed, done = await self.in_thread(run)
        self.assertEqual(plus[:1], b"+")
        self.assertEqual(pushed, [b"* %d UIDFETCH (FLAGS (\\Seen \\Recent))\r\n" % u5,
                                  b"* %d UIDFETCH (FLAGS (\\Deleted \\Recent))\r\n" % u3,
                                  b"* VANISHED %d\r\n" % u3])
        self.assertEqual(done, [b"a3 OK IDLE terminated\r\n"])
