"""
Byte-exact transcripts of what ``ENABLE IMAP4rev2`` changes (RFC 9051
appendix E), next to the same commands in an IMAP4rev1 session, which keeps
its behaviour (appendix A: the server offers both).
"""

from __future__ import annotations

import re

from harness import IMAPServerTestCase, on_every_store
from tests_messages import simple_message

from twisted_mailhub.interfaces import IAccessKeys
from twisted_mailhub.model import AppendRequest


def test_utf8_astring() -> None:
    from twisted_mailhub.imap import wire

    assert wire.utf8_astring("INBOX") == b"INBOX"
    assert wire.utf8_astring("") == b'""'
    assert wire.utf8_astring("Entwürfe") == '"Entwürfe"'.encode()
    assert wire.utf8_astring('a "b" \\ c') == b'"a \\"b\\" \\\\ c"'
    # CR and LF cannot be quoted, nor can more than 1024 octets.
    assert wire.utf8_astring("a\r\nb") == b"{4}\r\na\r\nb"
    assert wire.utf8_astring("é" * 600) == b"{1200}\r\n" + "é".encode() * 600


def normalized(lines: list[bytes]) -> list[bytes]:
    """The lines with the values that differ per run and store replaced."""
    out = []
    for line in lines:
        line = re.sub(rb"UIDVALIDITY \d+", b"UIDVALIDITY n", line)
        if b"[MAILBOXID (" in line:
            # RFC 8474: only stores that keep mailbox identities send it.
            continue
        out.append(line)
    return out


@on_every_store
class IMAP4rev2TranscriptTests(IMAPServerTestCase):
    async def setUp(self) -> None:
        await super().setUp()
        store = await self.backend.open_store("alice")
        inbox = await store.get_mailbox("INBOX")
        await inbox.append([AppendRequest(simple_message(f"m{i}")) for i in range(1, 4)])
        await store.create_mailbox("Archive/2022")
        await store.subscribe("Archive/2022")

    def login(self, rev2: bool = True):
        c = self.raw()
        c.line()
        c.command(b"t0 LOGIN alice wonderland")
        if rev2:
            assert c.command(b"e1 ENABLE IMAP4rev2") == [b"* ENABLED IMAP4rev2\r\n",
                                                         b"e1 OK ENABLE completed\r\n"]
        return c

    async def test_removed_commands_and_items_are_bad(self) -> None:
        # RFC 9051 appendix E items 12, 17, 18, 19: not in the IMAP4rev2
        # grammar, so BAD once the client speaks IMAP4rev2.
        commands = [
            b't1 LSUB "" "*"',
            b"t2 STATUS INBOX (MESSAGES RECENT)",
            b't3 LIST "" "*" RETURN (STATUS (RECENT))',
            b"t4 SELECT INBOX",
            b"t5 CHECK",
            b"t6 FETCH 1 RFC822",
            b"t7 FETCH 1 (UID RFC822.HEADER)",
            b"t8 UID FETCH 1 RFC822.TEXT",
            b"t9 SEARCH NEW",
            b"t10 UID SEARCH NOT OLD",
            b"t11 SEARCH RETURN (COUNT) OR SEEN (RECENT)",
            b"t12 NOOP",
        ]

        def run():
            c = self.login()
            out = [c.command(line) for line in commands]
            c.close()
            return out

        out = await self.in_thread(run)
        del out[3]  # SELECT
        self.assertEqual(out, [
            [b"t1 BAD LSUB is not part of IMAP4rev2; use LIST (SUBSCRIBED)\r\n"],
            [b"t2 BAD STATUS RECENT is not part of IMAP4rev2\r\n"],
            [b"t3 BAD STATUS RECENT is not part of IMAP4rev2\r\n"],
            [b"t5 BAD CHECK is not part of IMAP4rev2; use NOOP\r\n"],
            [b"t6 BAD RFC822 is not part of IMAP4rev2; use BODY[]\r\n"],
            [b"t7 BAD RFC822.HEADER is not part of IMAP4rev2; use BODY.PEEK[HEADER]\r\n"],
            [b"t8 BAD RFC822.TEXT is not part of IMAP4rev2; use BODY[TEXT]\r\n"],
            [b"t9 BAD SEARCH NEW is not part of IMAP4rev2 (it has no \\Recent)\r\n"],
            [b"t10 BAD SEARCH OLD is not part of IMAP4rev2 (it has no \\Recent)\r\n"],
            [b"t11 BAD SEARCH RECENT is not part of IMAP4rev2 (it has no \\Recent)\r\n"],
            # A BAD is no reason to drop the connection, nor to set \Seen.
            [b"t12 OK NOOP completed\r\n"],
        ])

        def flags():
            c = self.login(rev2=False)
            c.command(b"f1 EXAMINE INBOX")
            lines = c.command(b"f2 FETCH 1 FLAGS")
            c.close()
            return lines

        self.assertEqual(await self.in_thread(flags),
                         [b"* 1 FETCH (FLAGS ())\r\n", b"f2 OK FETCH completed\r\n"])

    async def test_rev1_session_keeps_them(self) -> None:
        def run():
            c = self.login(rev2=False)
            out = [c.command(b't1 LSUB "" "*"'),
                   c.command(b"t2 STATUS INBOX (MESSAGES RECENT)"),
                   c.command(b"t3 EXAMINE INBOX")[-1],
                   c.command(b"t4 CHECK"),
                   c.command(b"t5 FETCH 1 RFC822.TEXT"),
                   c.command(b"t6 SEARCH NEW"),
                   c.command(b"t7 SEARCH OLD")]
            c.close()
            return out

        out = await self.in_thread(run)
        self.assertEqual(out, [
            [b'* LSUB () "/" Archive/2022\r\n', b"t1 OK LSUB completed\r\n"],
            [b"* STATUS INBOX (MESSAGES 3 RECENT 3)\r\n", b"t2 OK STATUS completed\r\n"],
            b"t3 OK [READ-ONLY] EXAMINE completed\r\n",
            [b"t4 OK CHECK completed\r\n"],
            [b"* 1 FETCH (RFC822.TEXT {8}\r\n", b"Hello.\r\n", b")\r\n",
             b"t5 OK FETCH completed\r\n"],
            [b"* SEARCH 1 2 3\r\n", b"t6 OK SEARCH completed\r\n"],
            [b"* SEARCH\r\n", b"t7 OK SEARCH completed\r\n"],
        ])

    async def test_select_sends_list_and_closed(self) -> None:
        # RFC 9051 section 6.3.2 (appendix E items 9, 10, 11, 12): LIST with
        # the mailbox's attributes; no RECENT, no UNSEEN code; CLOSED when
        # a mailbox was selected before.
        def run():
            c = self.login()
            out = [c.command(b"t1 SELECT INBOX"), c.command(b"t2 EXAMINE Archive/2022")]
            c.close()
            return out

        first, second = await self.in_thread(run)
        # RFC 4467: stores that keep URLAUTH keys tell the mechanisms.
        urlmech = ([b"* OK [URLMECH INTERNAL] URL mechanisms\r\n"]
                   if IAccessKeys.providedBy(self.backend) else [])
        self.assertEqual(normalized(first), [
            b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n",
            b"* OK [PERMANENTFLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft \\*)]"
            b" Flags permitted\r\n",
            b"* 3 EXISTS\r\n",
            b"* OK [UIDVALIDITY n] UIDs valid\r\n",
            b"* OK [UIDNEXT 4] Predicted next UID\r\n",
            b'* LIST (\\HasNoChildren) "/" INBOX\r\n',
            *urlmech,
            b"t1 OK [READ-WRITE] SELECT completed\r\n",
        ])
        self.assertEqual(normalized(second), [
            b"* OK [CLOSED] Previous mailbox closed\r\n",
            b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n",
            b"* OK [PERMANENTFLAGS ()] No permanent flags permitted\r\n",
            b"* 0 EXISTS\r\n",
            b"* OK [UIDVALIDITY n] UIDs valid\r\n",
            b"* OK [UIDNEXT 1] Predicted next UID\r\n",
            b'* LIST (\\HasNoChildren) "/" Archive/2022\r\n',
            *urlmech,
            b"t2 OK [READ-ONLY] EXAMINE completed\r\n",
        ])

        def rev1():
            c = self.login(rev2=False)
            lines = c.command(b"t1 SELECT INBOX")
            c.close()
            return lines

        self.assertNotIn(b"LIST", b"".join(await self.in_thread(rev1)))

    async def test_select_list_attributes(self) -> None:
        store = await self.backend.open_store("alice")
        await store.create_mailbox("Sent", frozenset({"\\Sent"}))

        def run():
            c = self.login()
            out = [c.command(b"t1 EXAMINE Archive"), c.command(b"t2 EXAMINE Sent")]
            c.close()
            return out

        archive, sent = await self.in_thread(run)
        self.assertIn(b'* LIST (\\HasChildren) "/" Archive\r\n', archive)
        self.assertIn(b'* LIST (\\HasNoChildren \\Sent) "/" Sent\r\n', sent)

    async def test_unsolicited_fetch_has_uid(self) -> None:
        # RFC 9051 section 7.5.2 (appendix E item 21).
        def run():
            rev2, rev1, other = self.login(), self.login(rev2=False), self.login(rev2=False)
            rev2.command(b"a1 SELECT INBOX")
            rev1.command(b"b1 SELECT INBOX")
            other.command(b"c1 SELECT INBOX")
            other.command(b"c2 STORE 2 +FLAGS.SILENT (\\Flagged)")
            out = [rev2.command(b"a2 NOOP"), rev1.command(b"b2 NOOP")]
            for c in (rev2, rev1, other):
                c.close()
            return out

        rev2, rev1 = await self.in_thread(run)
        self.assertEqual(rev2, [b"* 2 FETCH (UID 2 FLAGS (\\Flagged))\r\n",
                                b"a2 OK NOOP completed\r\n"])
        self.assertEqual(rev1, [b"* 2 FETCH (FLAGS (\\Flagged))\r\n",
                                b"b2 OK NOOP completed\r\n"])

    async def test_enable_with_a_mailbox_selected(self) -> None:
        # RFC 9051 6.3.1: clients must not, servers need not check; the
        # selected mailbox follows the session's IMAP4rev2 rules at once.
        def run():
            c, other = self.login(rev2=False), self.login(rev2=False)
            c.command(b"a1 SELECT INBOX")
            out = [c.command(b"a2 FETCH 1 FLAGS"), c.command(b"a3 ENABLE IMAP4rev2"),
                   c.command(b"a4 FETCH 1 FLAGS")]
            other.command(b"b1 SELECT INBOX")
            other.command(b"b2 STORE 1 +FLAGS.SILENT (\\Seen)")
            out.append(c.command(b"a5 NOOP"))
            c.close()
            other.close()
            return out

        out = await self.in_thread(run)
        self.assertEqual(out, [
            [b"* 1 FETCH (FLAGS (\\Recent))\r\n", b"a2 OK FETCH completed\r\n"],
            [b"* ENABLED IMAP4rev2\r\n", b"a3 OK ENABLE completed\r\n"],
            [b"* 1 FETCH (FLAGS ())\r\n", b"a4 OK FETCH completed\r\n"],
            [b"* 1 FETCH (UID 1 FLAGS (\\Seen))\r\n", b"a5 OK NOOP completed\r\n"],
        ])

    async def test_mailbox_names_are_utf8(self) -> None:
        # RFC 9051 section 5.1 (appendix E item 16): UTF-8 names, quoted;
        # an IMAP4rev1 session sees the same mailbox in modified UTF-7.
        def run():
            c = self.login()
            out = [c.command('t1 CREATE "Entwürfe"'.encode()),
                   c.command(b't2 LIST "" "Entw*"'),
                   c.command('t3 STATUS "Entwürfe" (MESSAGES)'.encode()),
                   c.command('t4 RENAME "Entwürfe" "Brouillons-été"'.encode()),
                   c.command(b't5 LIST "" "*" RETURN (STATUS (MESSAGES))')]
            c.close()
            old = self.login(rev2=False)
            out.append(old.command(b't6 LIST "" "B*"'))
            out.append(old.command(b"t7 SELECT Brouillons-&AOk-t&AOk-")[-1])
            old.close()
            return out

        out = await self.in_thread(run)
        self.assertTrue(out[0][-1].startswith(b"t1 OK "))
        self.assertEqual(out[1], ['* LIST (\\HasNoChildren) "/" "Entwürfe"\r\n'.encode(),
                                  b"t2 OK LIST completed\r\n"])
        self.assertEqual(out[2], ['* STATUS "Entwürfe" (MESSAGES 0)\r\n'.encode(),
                                  b"t3 OK STATUS completed\r\n"])
        self.assertEqual(out[3], [b"t4 OK RENAME completed\r\n"])
        self.assertEqual(out[4], [
            b'* LIST (\\HasChildren) "/" Archive\r\n',
            b"* STATUS Archive (MESSAGES 0)\r\n",
            b'* LIST (\\HasNoChildren) "/" Archive/2022\r\n',
            b"* STATUS Archive/2022 (MESSAGES 0)\r\n",
            '* LIST (\\HasNoChildren) "/" "Brouillons-été"\r\n'.encode(),
            '* STATUS "Brouillons-été" (MESSAGES 0)\r\n'.encode(),
            b'* LIST (\\HasNoChildren) "/" INBOX\r\n',
            b"* STATUS INBOX (MESSAGES 3)\r\n",
            b"t5 OK LIST completed\r\n",
        ])
        self.assertEqual(out[5], [b'* LIST (\\HasNoChildren) "/" Brouillons-&AOk-t&AOk-\r\n',
                                  b"t6 OK LIST completed\r\n"])
        self.assertEqual(out[6], b"t7 OK [READ-WRITE] SELECT completed\r\n")

    async def test_names_must_be_net_unicode(self) -> None:
        # RFC 9051 section 5.1: no 8-bit names that are not Net-Unicode
        # (RFC 5198: NFC, and RFC 6855 section 3: no C1 controls).
        nfd = "Entwu\u0308rfe".encode()

        def run():
            c = self.login()
            out = [c.command(b't1 CREATE "' + nfd + b'"'),
                   c.command(b't2 CREATE "A\xc2\x85B"'),
                   c.command(b't3 RENAME Archive/2022 "' + nfd + b'"'),
                   c.command(b't4 CREATE "\xff"'),
                   c.command(b't5 LIST "" "*"')]
            c.close()
            return out

        out = await self.in_thread(run)
        self.assertEqual(out[:3], [
            [b"t1 NO [CANNOT] Mailbox name is not in Unicode Normalization Form C\r\n"],
            [b"t2 NO [CANNOT] Mailbox name is not Net-Unicode (RFC 5198)\r\n"],
            [b"t3 NO [CANNOT] Mailbox name is not in Unicode Normalization Form C\r\n"],
        ])
        self.assertEqual(out[3], [b"t4 BAD Invalid UTF-8 in quoted mailbox name\r\n"])
        self.assertEqual(out[4], [b'* LIST (\\HasChildren) "/" Archive\r\n',
                                  b'* LIST (\\HasNoChildren) "/" Archive/2022\r\n',
                                  b'* LIST (\\HasNoChildren) "/" INBOX\r\n',
                                  b"t5 OK LIST completed\r\n"])

    async def test_search_is_esearch(self) -> None:
        # RFC 9051 section 6.4.4 (appendix E item 4): ESEARCH, with UID for
        # UID SEARCH; RETURN () is ALL; CHARSET UTF-8 is accepted (and
        # assumed without CHARSET); an unknown charset is NO [BADCHARSET].
        def run():
            c = self.login()
            c.command(b"t1 SELECT INBOX")
            out = [c.command(b"t2 SEARCH 2:3"),
                   c.command(b"t3 UID SEARCH RETURN () ALL"),
                   c.command(b't4 SEARCH CHARSET UTF-8 SUBJECT "m2"'),
                   c.command('t5 SEARCH SUBJECT "ü"'.encode()),
                   c.command(b"t6 SEARCH CHARSET KOI8-X ALL")]
            c.close()
            return out

        out = await self.in_thread(run)
        self.assertEqual(out, [
            [b'* ESEARCH (TAG "t2") ALL 2:3\r\n', b"t2 OK SEARCH completed\r\n"],
            [b'* ESEARCH (TAG "t3") UID ALL 1:3\r\n', b"t3 OK SEARCH completed\r\n"],
            [b'* ESEARCH (TAG "t4") ALL 2\r\n', b"t4 OK SEARCH completed\r\n"],
            [b'* ESEARCH (TAG "t5")\r\n', b"t5 OK SEARCH completed\r\n"],
            [b"t6 NO [BADCHARSET (US-ASCII UTF-8)] Unsupported charset: KOI8-X\r\n"],
        ])
