"""
Byte-exact transcripts of the extensions clients use: ESEARCH and SEARCHRES,
CONDSTORE, LIST-EXTENDED and LIST-STATUS, ENABLE, UNSELECT, NAMESPACE, ID,
UIDPLUS, LITERAL+ and SASL-IR.
"""

from __future__ import annotations

import base64
import re

from harness import IMAPServerTestCase, on_every_store
from tests_messages import simple_message


@on_every_store
class ExtensionTranscriptTests(IMAPServerTestCase):
    async def setUp(self) -> None:
        await super().setUp()
        store = await self.backend.open_store("alice")
        inbox = await store.get_mailbox("INBOX")
        from twisted_mailhub.model import AppendRequest

        await inbox.append([AppendRequest(simple_message(f"m{i}")) for i in range(1, 6)])
        await store.create_mailbox("Archive/2022")
        await store.subscribe("Archive/2022")

    def login(self):
        c = self.raw()
        c.line()
        c.command(b"t0 LOGIN alice wonderland")
        return c

    async def test_esearch_and_searchres(self) -> None:
        def run():
            c = self.login()
            c.command(b"t1 SELECT INBOX")
            out = [c.command(b"t2 SEARCH RETURN (MIN MAX COUNT) 2:4"),
                   c.command(b"t3 UID SEARCH RETURN (ALL) 1,3,5"),
                   c.command(b"t4 SEARCH RETURN (SAVE) 2:3"),
                   c.command(b"t5 FETCH $ (UID)"),
                   c.command(b"t6 SEARCH RETURN () UID 9")]
            c.close()
            return out

        out = await self.in_thread(run)
        self.assertEqual(out[0], [b'* ESEARCH (TAG "t2") MIN 2 MAX 4 COUNT 3\r\n',
                                  b"t2 OK SEARCH completed\r\n"])
        self.assertEqual(out[1], [b'* ESEARCH (TAG "t3") UID ALL 1,3,5\r\n',
                                  b"t3 OK SEARCH completed\r\n"])
        self.assertEqual(out[2], [b"t4 OK SEARCH completed\r\n"])
        self.assertEqual(out[3], [b"* 2 FETCH (UID 2)\r\n", b"* 3 FETCH (UID 3)\r\n",
                                  b"t5 OK FETCH completed\r\n"])
        self.assertEqual(out[4], [b'* ESEARCH (TAG "t6")\r\n', b"t6 OK SEARCH completed\r\n"])

    async def test_condstore(self) -> None:
        def run():
            c = self.login()
            out = [c.command(b"t1 SELECT INBOX (CONDSTORE)")]
            out.append(c.command(b"t2 UID STORE 1 (UNCHANGEDSINCE 1) +FLAGS (\\Seen)"))
            out.append(c.command(b"t3 FETCH 1:5 (FLAGS) (CHANGEDSINCE 5)"))
            out.append(c.command(b"t4 UID STORE 2 (UNCHANGEDSINCE 1000) +FLAGS.SILENT (\\Answered)"))
            modseq = re.search(rb"MODSEQ \((\d+)\)", out[-1][0]).group(1)
            out.append(c.command(b"t5 SEARCH MODSEQ " + modseq))
            c.close()
            return out

        out = await self.in_thread(run)
        select = b"".join(out[0])
        m = re.search(rb"\[HIGHESTMODSEQ (\d+)\]", select)
        self.assertIsNotNone(m)
        highest = int(m.group(1))
        # Message 1 was last changed at APPEND, after MODSEQ 1: the store fails.
        self.assertEqual(out[1][-1], b"t2 OK [MODIFIED 1] Some messages were modified since\r\n")
        store = out[3]
        self.assertRegex(store[0], rb"^\* 2 FETCH \(UID 2 MODSEQ \((\d+)\)\)\r\n$")
        new_modseq = int(re.search(rb"MODSEQ \((\d+)\)", store[0]).group(1))
        self.assertGreater(new_modseq, highest)
        self.assertEqual(out[4][0], b"* SEARCH 2 (MODSEQ %d)\r\n" % new_modseq)

    async def test_list_extended_and_status(self) -> None:
        def run():
            c = self.login()
            out = [c.command(b't1 LIST (SUBSCRIBED) "" "*"'),
                   c.command(b't2 LIST "" ("INBOX" "Archive") RETURN (CHILDREN STATUS (MESSAGES))'),
                   c.command(b't3 LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"')]
            c.close()
            return out

        out = await self.in_thread(run)
        self.assertEqual(out[0], [b'* LIST (\\HasNoChildren \\Subscribed) "/" Archive/2022\r\n',
                                  b"t1 OK LIST completed\r\n"])
        self.assertEqual(out[1], [
            b'* LIST (\\HasChildren) "/" Archive\r\n',
            b"* STATUS Archive (MESSAGES 0)\r\n",
            b'* LIST (\\HasNoChildren) "/" INBOX\r\n',
            b"* STATUS INBOX (MESSAGES 5)\r\n",
            b"t2 OK LIST completed\r\n",
        ])
        self.assertEqual(out[2], [b'* LIST (\\HasChildren) "/" Archive ("CHILDINFO" ("SUBSCRIBED"))\r\n',
                                  b"t3 OK LIST completed\r\n"])

    async def test_enable_unselect_namespace_id(self) -> None:
        def run():
            c = self.login()
            out = [c.command(b"t1 ENABLE CONDSTORE X-UNKNOWN"),
                   c.command(b"t2 NAMESPACE"),
                   c.command(b't3 ID ("name" "tester")'),
                   c.command(b"t4 SELECT INBOX")[-1],
                   c.command(b"t5 STORE 1 +FLAGS.SILENT (\\Deleted)")[-1],
                   c.command(b"t6 UNSELECT"),
                   c.command(b"t7 STATUS INBOX (MESSAGES)")]
            c.close()
            return out

        out = await self.in_thread(run)
        self.assertEqual(out[0], [b"* ENABLED CONDSTORE\r\n", b"t1 OK ENABLE completed\r\n"])
        self.assertEqual(out[1], [b'* NAMESPACE (("" "/")) NIL NIL\r\n',
                                  b"t2 OK NAMESPACE completed\r\n"])
        self.assertEqual(out[2][0], b'* ID ("name" "twisted_mailhub" "version" "0.1.0")\r\n')
        self.assertEqual(out[5], [b"t6 OK UNSELECT completed\r\n"])
        # UNSELECT does not expunge (RFC 3691).
        self.assertEqual(out[6][0], b"* STATUS INBOX (MESSAGES 5)\r\n")

    async def test_literal_plus_and_sasl_ir(self) -> None:
        def run():
            c = self.raw()
            c.line()
            token = base64.b64encode(b"\0alice\0wonderland")
            auth = c.command(b"t1 AUTHENTICATE PLAIN " + token)
            msg = simple_message("non-sync")
            c.send(b"t2 APPEND INBOX {%d+}\r\n" % len(msg) + msg + b"\r\n")
            append = c.until_tagged(b"t2")
            c.close()
            return auth, append

        auth, append = await self.in_thread(run)
        self.assertTrue(auth[-1].startswith(b"t1 OK [CAPABILITY "))
        self.assertEqual(len(append), 1)
        self.assertRegex(append[0], rb"^t2 OK \[APPENDUID \d+ 6\] APPEND completed\r\n$")

    async def test_multiappend_is_all_or_nothing(self) -> None:
        """RFC 3502 section 6.3.11: one APPEND, several messages, one APPENDUID set."""
        first, second = simple_message("multi one"), simple_message("multi two")

        def run():
            c = self.login()
            caps = c.command(b"t1 CAPABILITY")
            # The second literal is synchronising: the server asks for it.
            c.send(b"t2 APPEND INBOX (\\Seen) {%d+}\r\n" % len(first) + first
                   + b" {%d}\r\n" % len(second))
            go_ahead = c.line()
            c.send(second + b"\r\n")
            appended = c.until_tagged(b"t2")
            # An empty second message makes the whole command fail.
            c.send(b"t3 APPEND INBOX {%d+}\r\n" % len(first) + first + b" {0+}\r\n\r\n")
            refused = c.until_tagged(b"t3")
            c.command(b"t4 SELECT INBOX")
            fetched = c.command(b"t5 UID FETCH 6:* (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            c.close()
            return caps, go_ahead, appended, refused, fetched

        caps, go_ahead, appended, refused, fetched = await self.in_thread(run)
        self.assertIn(b" MULTIAPPEND", caps[0])
        self.assertTrue(go_ahead.startswith(b"+ "))
        self.assertRegex(appended[-1], rb"^t2 OK \[APPENDUID \d+ 6:7\] APPEND completed\r\n$")
        self.assertTrue(refused[-1].startswith(b"t3 NO "), refused)
        text = b"".join(fetched)
        self.assertEqual(text.count(b" FETCH ("), 2, text)
        self.assertIn(b"* 6 FETCH (UID 6 FLAGS (\\Seen \\Recent) ", text)
        self.assertIn(b"* 7 FETCH (UID 7 FLAGS (\\Recent) ", text)
        self.assertIn(b"Subject: multi one", text)
        self.assertIn(b"Subject: multi two", text)

    async def test_appendlimit(self) -> None:
        """RFC 7889: the limit in CAPABILITY and STATUS, TOOBIG above it."""
        limit = self.policy.max_literal_size

        def run():
            c = self.login()
            caps = c.command(b"t1 CAPABILITY")
            status = c.command(b"t2 STATUS INBOX (APPENDLIMIT MESSAGES)")
            too_big = c.command(b"t3 APPEND INBOX {%d}" % (limit + 1))
            after = c.command(b"t4 STATUS INBOX (MESSAGES)")
            c.close()
            return caps, status, too_big, after

        caps, status, too_big, after = await self.in_thread(run)
        self.assertIn(b" APPENDLIMIT=%d" % limit, caps[0])
        self.assertEqual(status[0], b"* STATUS INBOX (APPENDLIMIT %d MESSAGES 5)\r\n" % limit)
        self.assertTrue(too_big[-1].startswith(b"t3 NO [TOOBIG] "), too_big)
        self.assertEqual(after[0], b"* STATUS INBOX (MESSAGES 5)\r\n")

    async def test_authenticate_plain_with_continuation_and_cancel(self) -> None:
        def run():
            c = self.raw()
            c.line()
            c.send(b"t1 AUTHENTICATE PLAIN\r\n")
            plus = c.line()
            c.send(b"*\r\n")
            cancelled = c.until_tagged(b"t1")
            c.send(b"t2 AUTHENTICATE PLAIN\r\n")
            c.line()
            c.send(base64.b64encode(b"\0alice\0wonderland") + b"\r\n")
            ok = c.until_tagged(b"t2")
            c.close()
            return plus, cancelled, ok

        plus, cancelled, ok = await self.in_thread(run)
        self.assertEqual(plus, b"+ \r\n")
        self.assertTrue(cancelled[-1].startswith(b"t1 BAD "))
        self.assertTrue(ok[-1].startswith(b"t2 OK "))


@on_every_store
class IMAP4rev2Tests(IMAPServerTestCase):
    async def test_enable_imap4rev2(self) -> None:
        store = await self.backend.open_store("alice")
        inbox = await store.get_mailbox("INBOX")
        from twisted_mailhub.model import AppendRequest

        await inbox.append([AppendRequest(simple_message(f"m{i}")) for i in range(1, 4)])

        def run():
            c = self.raw()
            greeting = c.line()
            c.command(b"t0 LOGIN alice wonderland")
            out = [greeting,
                   c.command(b"t1 ENABLE IMAP4rev2"),
                   c.command(b"t2 SELECT INBOX"),
                   c.command(b"t3 FETCH 1 FLAGS"),
                   c.command(b"t4 SEARCH 2:3")]
            c.close()
            return out

        greeting, enable, select, fetch, search = await self.in_thread(run)
        self.assertIn(b"IMAP4rev2", greeting)
        self.assertEqual(enable[0], b"* ENABLED IMAP4rev2\r\n")
        text = b"".join(select)
        self.assertIn(b"* 3 EXISTS\r\n", text)
        # RFC 9051: no RECENT response, no \Recent flag, ESEARCH for SEARCH.
        self.assertNotIn(b"RECENT", text)
        self.assertEqual(fetch[0], b"* 1 FETCH (FLAGS ())\r\n")
        self.assertEqual(search[0], b'* ESEARCH (TAG "t4") ALL 2:3\r\n')
