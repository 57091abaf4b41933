"""
MESSAGELIMIT (RFC 9738): the grammar of UIDAFTER and UIDBEFORE, the
option, and on every store byte-exact transcripts following section 3.1's
examples with a limit of 5 (the RFC's examples use 1000), and imaplib
clients that walk a mailbox larger than the limit to its end.
"""

from __future__ import annotations

import imaplib
import re

from twisted.trial import unittest

from harness import IMAPServerTestCase, on_every_store
from tests_messages import simple_message

from twisted_mailhub import criteria as sk
from twisted_mailhub.imap.parser import CommandParser
from twisted_mailhub.model import AppendRequest
from twisted_mailhub.policy import ServerPolicy
from twisted_mailhub.ranges import SequenceSet

LIMIT = 5
POLICY = ServerPolicy(auth_failure_delay=0.0, auth_failure_delay_max=0.0, message_limit=LIMIT)


def parse(line: bytes):
    parser = CommandParser()
    parser.receive_data(line + b"\r\n")
    return parser.next_event()


class GrammarTests(unittest.TestCase):
    def test_uidafter_and_uidbefore(self) -> None:
        def key(text: bytes):
            return parse(b"a UID SEARCH " + text).command.key

        self.assertEqual(key(b"UIDAFTER 25000"), sk.Uid(SequenceSet(((25001, 2**32 - 1),))))
        self.assertEqual(key(b"uidbefore 20"), sk.Uid(SequenceSet(((1, 19),))))
        # Section 3.2: UIDBEFORE 1 is the empty set; so is UIDAFTER the largest UID.
        self.assertEqual(key(b"UIDBEFORE 1"), sk.Not(sk.All()))
        self.assertEqual(key(b"UIDAFTER 4294967295"), sk.Not(sk.All()))
        self.assertEqual(key(b"UIDAFTER 3 UNDELETED"),
                         sk.And((sk.Uid(SequenceSet(((4, 2**32 - 1),))),
                                 sk.Flag("\\Deleted", present=False))))

    def test_bad_uids(self) -> None:
        for line, message in [
            (b"a SEARCH UIDAFTER 0", "Invalid UID: must not be 0"),
            (b"a SEARCH UIDBEFORE", "Missing UID"),
            (b"a SEARCH UIDAFTER x", "Invalid UID"),
            (b"a SEARCH UIDBEFORE 4294967296", "Number too large for UID"),
        ]:
            event = parse(line)
            self.assertEqual((event.condition, event.message), ("BAD", message), line)


class OptionTests(unittest.TestCase):
    def test_command_line_and_config_file(self) -> None:
        from twisted_mailhub.config import MailhubOptions

        def policy(*args: str) -> ServerPolicy:
            options = MailhubOptions()
            options.parseOptions(list(args))
            return options.settings.policy()

        # Off unless the admin sets it (RFC 9738 section 4.2).
        self.assertIsNone(policy().message_limit)
        self.assertEqual(policy("--message-limit", "1000").message_limit, 1000)
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("message-limit = 2000\n")
        self.assertEqual(policy("--config", path).message_limit, 2000)
        from twisted.python import usage

        with self.assertRaises(usage.UsageError) as caught:
            policy("--message-limit", "0")
        self.assertEqual(str(caught.exception), "--message-limit: must be at least 1, not 0")


def code_of(line: bytes) -> bytes:
    return re.sub(rb"APPENDUID \d+|COPYUID \d+", lambda m: m.group().split()[0] + b" v", line)


@on_every_store
class MessageLimitTranscriptTests(IMAPServerTestCase):
    """Twelve messages, UIDs 1 to 12, and a limit of 5."""

    policy = POLICY

    async def setUp(self) -> None:
        await super().setUp()
        store = await self.backend.open_store("alice")
        await store.create_mailbox("Trash")
        inbox = await store.get_mailbox("INBOX")
        await inbox.append([AppendRequest(simple_message(f"m{i}")) for i in range(1, 13)])

    def session(self):
        c = self.raw()
        c.line()
        c.command(b"t0 LOGIN alice wonderland")
        c.command(b"t1 SELECT INBOX")
        return c

    def run_commands(self, *lines: bytes) -> list[list[bytes]]:
        c = self.session()
        out = [[code_of(x) for x in c.command(line)] for line in lines]
        c.close()
        return out

    async def test_capability(self) -> None:
        def run():
            c = self.raw()
            greeting = c.line()
            c.close()
            return greeting

        self.assertRegex(await self.in_thread(run), rb"[ \[]MESSAGELIMIT=5[] ]")

    async def test_fetch(self) -> None:
        out = await self.in_thread(self.run_commands,
                                   b"03 FETCH 1:* (UID FLAGS)",
                                   b"04 FETCH 6:10 (FLAGS)",
                                   b"05 UID FETCH 1:7 (FLAGS)")
        self.assertEqual(out[0], [
            b"* %d FETCH (UID %d FLAGS (\\Recent))\r\n" % (n, n) for n in range(12, 7, -1)
        ] + [b"03 OK [MESSAGELIMIT 5 8] FETCH completed with 5 partial results\r\n"])
        # Within the limit: as ever, in ascending order.
        self.assertEqual(out[1], [b"* %d FETCH (FLAGS (\\Recent))\r\n" % n for n in range(6, 11)]
                         + [b"04 OK FETCH completed\r\n"])
        self.assertEqual(out[2], [
            b"* %d FETCH (UID %d FLAGS (\\Recent))\r\n" % (n, n) for n in range(7, 2, -1)
        ] + [b"05 OK [MESSAGELIMIT 5 3] FETCH completed with 5 partial results\r\n"])

    async def test_fetch_with_content_and_partial(self) -> None:
        out = await self.in_thread(self.run_commands,
                                   b"f1 FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT)])",
                                   b"10 UID FETCH 1:* (UID FLAGS) (PARTIAL -1:-6)",
                                   b"11 UID FETCH 1:* (FLAGS) (PARTIAL -1:-5)")
        subjects = [line for line in out[0] if line.startswith(b"Subject:")]
        self.assertEqual(subjects, [b"Subject: m%d\r\n" % n for n in range(12, 7, -1)])
        self.assertEqual(out[0][-1],
                         b"f1 OK [MESSAGELIMIT 5 8] FETCH completed with 5 partial results\r\n")
        # A PARTIAL range wider than the limit does nothing.
        self.assertEqual(out[1], [b"10 NO [MESSAGELIMIT 5] FETCH exceeds the maximum "
                                  b"5-message limit\r\n"])
        self.assertEqual(out[2][-1], b"11 OK FETCH completed\r\n")
        self.assertEqual(len(out[2]), 6)

    async def test_search(self) -> None:
        out = await self.in_thread(
            self.run_commands,
            b"04 UID SEARCH UID 2:11 UNDELETED",
            b"r1 SEARCH SUBJECT m1",
            b"r2 UID SEARCH UID 3:7 UNDELETED",
            b"12 UID SEARCH UIDAFTER 9 UNDELETED",
            b"r3 UID SEARCH RETURN (COUNT MIN) UIDBEFORE 8",
            b"r4 SEARCH 2:12 OR SUBJECT m1 SUBJECT m7")
        # The messages searched count, not those found (section 3.1).
        self.assertEqual(out[0], [b"* SEARCH 11 10 9 8 7\r\n",
                                  b"04 OK [MESSAGELIMIT 5 7] SEARCH completed with 5 "
                                  b"partial results\r\n"])
        self.assertEqual(out[1], [b"* SEARCH 12 11 10\r\n",
                                  b"r1 OK [MESSAGELIMIT 5 8] SEARCH completed with 5 "
                                  b"partial results\r\n"])
        self.assertEqual(out[2], [b"* SEARCH 3 4 5 6 7\r\n", b"r2 OK SEARCH completed\r\n"])
        self.assertEqual(out[3], [b"* SEARCH 10 11 12\r\n", b"12 OK SEARCH completed\r\n"])
        self.assertEqual(out[4], [b'* ESEARCH (TAG "r3") UID MIN 3 COUNT 5\r\n',
                                  b"r3 OK [MESSAGELIMIT 5 3] SEARCH completed with 5 "
                                  b"partial results\r\n"])
        # A sequence set at the top of the criteria bounds what is searched.
        self.assertEqual(out[5], [b"* SEARCH 12 11 10\r\n",
                                  b"r4 OK [MESSAGELIMIT 5 8] SEARCH completed with 5 "
                                  b"partial results\r\n"])

    async def test_search_of_an_empty_uid_range(self) -> None:
        # Section 3.2: UIDBEFORE 1 is the empty set, as is UIDAFTER the
        # largest UID: no message is searched, so the result is not partial.
        out = await self.in_thread(self.run_commands,
                                   b"e1 UID SEARCH UIDBEFORE 1 UNDELETED",
                                   b"e2 SEARCH UIDAFTER 4294967295",
                                   b"e3 UID SEARCH RETURN (COUNT) UIDAFTER 12")
        self.assertEqual(out, [
            [b"* SEARCH\r\n", b"e1 OK SEARCH completed\r\n"],
            [b"* SEARCH\r\n", b"e2 OK SEARCH completed\r\n"],
            [b'* ESEARCH (TAG "e3") UID COUNT 0\r\n', b"e3 OK SEARCH completed\r\n"],
        ])

    async def test_searchres_holds_the_truncated_result(self) -> None:
        # Section 3.4: $ holds what was found among the messages searched.
        out = await self.in_thread(self.run_commands,
                                   b"D0004 UID SEARCH RETURN (SAVE) UID 1:12 UNDELETED",
                                   b"D0005 UID FETCH $ (UID)")
        self.assertEqual(out[0], [b"D0004 OK [MESSAGELIMIT 5 8] SEARCH completed with 5 "
                                  b"partial results\r\n"])
        self.assertEqual(out[1], [b"* %d FETCH (UID %d)\r\n" % (n, n) for n in range(8, 13)]
                         + [b"D0005 OK FETCH completed\r\n"])

    async def test_copy_move(self) -> None:
        out = await self.in_thread(self.run_commands,
                                   b'05 UID COPY 1:12 "Trash"',
                                   b"s1 STATUS Trash (MESSAGES)",
                                   b'c1 UID COPY 8:12 "Trash"',
                                   b'06 UID MOVE 1:12 "Trash"',
                                   b'07 MOVE 1:* "Trash"',
                                   b"s2 STATUS Trash (MESSAGES)")
        # COPY is atomic: refused, nothing copied.
        self.assertEqual(out[0], [b"05 NO [MESSAGELIMIT 5 8] Too many messages to copy, "
                                  b"try a smaller subset\r\n"])
        self.assertEqual(out[1][0], b"* STATUS Trash (MESSAGES 0)\r\n")
        self.assertEqual(out[2], [b"c1 OK [COPYUID v 8:12 1:5] COPY completed\r\n"])
        self.assertEqual(out[3], [
            b"* OK [COPYUID v 8:12 6:10] Some messages were not moved\r\n",
            *[b"* 8 EXPUNGE\r\n"] * 5,
            b"06 OK [MESSAGELIMIT 5 8] MOVE completed for the last 5 messages\r\n"])
        # MOVE by sequence numbers: the client renumbers and repeats.
        self.assertEqual(out[4], [
            b"* OK [COPYUID v 3:7 11:15] Some messages were not moved\r\n",
            *[b"* 3 EXPUNGE\r\n"] * 5,
            b"07 OK [MESSAGELIMIT 5 3] MOVE completed for the last 5 messages\r\n"])
        self.assertEqual(out[5][0], b"* STATUS Trash (MESSAGES 15)\r\n")

    async def test_store_and_uid_expunge(self) -> None:
        out = await self.in_thread(self.run_commands,
                                   b"07 UID STORE 1:12 +FLAGS (\\Deleted)",
                                   b"s1 UID STORE 1:7 +FLAGS.SILENT (\\Deleted)",
                                   b"08 UID EXPUNGE 1:12",
                                   b"x1 UID EXPUNGE 1:12",
                                   b"c1 STORE 1:2 -FLAGS.SILENT (\\Deleted)",
                                   b"s2 STATUS INBOX (MESSAGES)")
        self.assertEqual(out[0], [
            b"* %d FETCH (UID %d FLAGS (\\Deleted \\Recent))\r\n" % (n, n)
            for n in range(12, 7, -1)
        ] + [b"07 OK [MESSAGELIMIT 5 8] STORE completed for the last 5 messages\r\n"])
        self.assertEqual(out[1], [b"s1 OK [MESSAGELIMIT 5 3] STORE completed for the last "
                                  b"5 messages\r\n"])
        # Ten \Deleted messages: UID EXPUNGE removes the five highest.
        self.assertEqual(out[2], [b"* 8 EXPUNGE\r\n"] * 5
                         + [b"08 OK [MESSAGELIMIT 5 8] UID EXPUNGE completed for the last "
                            b"5 messages\r\n"])
        self.assertEqual(out[3], [b"* 3 EXPUNGE\r\n"] * 5
                         + [b"x1 OK EXPUNGE completed\r\n"])
        self.assertEqual(out[5][0], b"* STATUS INBOX (MESSAGES 2)\r\n")

    async def test_expunge_close_status_sort_thread_are_not_limited(self) -> None:
        out = await self.in_thread(self.run_commands,
                                   b"s1 STORE 1:5 +FLAGS.SILENT (\\Deleted)",
                                   b"s2 STORE 6:10 +FLAGS.SILENT (\\Deleted)",
                                   b"s3 STATUS INBOX (UNSEEN)",
                                   b"o1 SORT (SUBJECT) UTF-8 ALL",
                                   b"o2 THREAD ORDEREDSUBJECT UTF-8 ALL",
                                   b"09 EXPUNGE")
        self.assertEqual(out[2][0], b"* STATUS INBOX (UNSEEN 12)\r\n")
        self.assertEqual(out[3][0], b"* SORT 1 10 11 12 2 3 4 5 6 7 8 9\r\n")
        self.assertEqual(out[3][-1], b"o1 OK SORT completed\r\n")
        self.assertEqual(out[4][-1], b"o2 OK THREAD completed\r\n")
        self.assertEqual(out[5], [b"* 1 EXPUNGE\r\n"] * 10 + [b"09 OK EXPUNGE completed\r\n"])

    async def test_multiappend(self) -> None:
        # Section 3.1: MULTIAPPEND is atomic, so more than the limit is NO.
        message = simple_message("new")
        literal = b" {%d+}\r\n" % len(message) + message

        def run():
            c = self.session()
            out = [c.command(b"a1 APPEND INBOX" + literal * 6),
                   [code_of(x) for x in c.command(b"a2 APPEND INBOX" + literal * 5)],
                   c.command(b"s1 STATUS INBOX (MESSAGES)")]
            c.close()
            return out

        out = await self.in_thread(run)
        self.assertEqual(out[0], [b"a1 NO [MESSAGELIMIT 5] Too many messages to append; "
                                  b"at most 5 at once\r\n"])
        self.assertEqual(out[1][-1], b"a2 OK [APPENDUID v 13:17] APPEND completed\r\n")
        self.assertEqual(out[2][0], b"* STATUS INBOX (MESSAGES 17)\r\n")

    async def test_expungeissued_goes_tagged(self) -> None:
        # Section 3.1: EXPUNGEISSUED in the tagged OK, MESSAGELIMIT untagged.
        def run():
            c = self.session()
            other = self.session()
            other.command(b"o1 STORE 11 +FLAGS.SILENT (\\Deleted)")
            other.command(b"o2 EXPUNGE")
            other.close()
            out = c.command(b"11 FETCH 1:* (UID FLAGS)")
            c.close()
            return out

        out = await self.in_thread(run)
        self.assertEqual(out, [
            b"* 12 FETCH (UID 12 FLAGS (\\Recent))\r\n",
            b"* 10 FETCH (UID 10 FLAGS (\\Recent))\r\n",
            b"* 9 FETCH (UID 9 FLAGS (\\Recent))\r\n",
            b"* 8 FETCH (UID 8 FLAGS (\\Recent))\r\n",
            b"* NO [MESSAGELIMIT 5 8] FETCH completed with 5 partial results\r\n",
            b"11 OK [EXPUNGEISSUED] Some messages were expunged and could not be fetched\r\n",
        ])


class NoLimitTests(IMAPServerTestCase):
    """The default: no limit, none advertised; UIDAFTER and UIDBEFORE work all the same."""

    async def test_default(self) -> None:
        store = await self.backend.open_store("alice")
        inbox = await store.get_mailbox("INBOX")
        await inbox.append([AppendRequest(simple_message(f"m{i}")) for i in range(1, 13)])

        def run():
            c = self.raw()
            out = [c.line()]
            c.command(b"t0 LOGIN alice wonderland")
            c.command(b"t1 SELECT INBOX")
            out.append(c.command(b"t2 UID SEARCH UIDAFTER 3 UIDBEFORE 12"))
            out.append(c.command(b"t3 FETCH 1:* (UID)")[-1])
            c.close()
            return out

        greeting, search, fetched = await self.in_thread(run)
        self.assertNotIn(b"MESSAGELIMIT", greeting)
        self.assertEqual(search, [b"* SEARCH 4 5 6 7 8 9 10 11\r\n", b"t2 OK SEARCH completed\r\n"])
        self.assertEqual(fetched, b"t3 OK FETCH completed\r\n")


class CodeReadingIMAP4(imaplib.IMAP4):
    """imaplib, keeping the text of each tagged response (with its code)."""

    tagged_text = b""

    def _command_complete(self, name, tag):
        typ, data = super()._command_complete(name, tag)
        self.tagged_text = data[-1] if data and isinstance(data[-1], bytes) else b""
        return typ, data

    def message_limit(self) -> int | None:
        """The lowest UID processed, if the last command hit the limit."""
        found = re.match(rb"\[MESSAGELIMIT \d+ (\d+)\]", self.tagged_text)
        return int(found.group(1)) if found else None


@on_every_store
class MessageLimitClientTests(IMAPServerTestCase):
    """
    A client that knows the limit walks a mailbox of 23 messages (gaps in
    its UIDs) with a limit of 5, repeating each command on the rest until
    no MESSAGELIMIT code comes back, as section 3.1 says it must.
    """

    policy = POLICY

    async def setUp(self) -> None:
        await super().setUp()
        store = await self.backend.open_store("alice")
        await store.create_mailbox("Archive")
        inbox = await store.get_mailbox("INBOX")
        metas = await inbox.append([AppendRequest(simple_message(f"m{i}", body=f"b{i % 3}"))
                                    for i in range(1, 27)])
        # UIDs 4, 13 and 20 expunged: 23 messages left.
        await inbox.store_flags([metas[i].uid for i in (3, 12, 19)], "add", {"\\Deleted"})
        await inbox.expunge(None)
        self.uids = [m.uid for m in metas if m.uid not in (metas[3].uid, metas[12].uid,
                                                           metas[19].uid)]

    def client(self) -> CodeReadingIMAP4:
        client = CodeReadingIMAP4("127.0.0.1", self.port, timeout=20)
        client.login("alice", "wonderland")
        return client

    async def test_walk_with_uidbefore(self) -> None:
        def run():
            client = self.client()
            assert "MESSAGELIMIT=5" in client.capabilities
            client.select("INBOX")
            found, fetched, rounds = [], [], 0
            criteria = ["BODY", "b1"]
            before = None
            while True:
                rounds += 1
                scope = [] if before is None else ["UIDBEFORE", str(before)]
                _, data = client.uid("SEARCH", *scope, *criteria)
                found += [int(x) for x in data[0].split()]
                before = client.message_limit()
                if before is None:
                    break
            # FETCH in slices, from the top down, with UID ranges.
            top = "*"
            while True:
                _, data = client.uid("FETCH", f"1:{top}", "(UID)")
                fetched += [int(re.search(rb"UID (\d+)", d).group(1)) for d in data]
                lowest = client.message_limit()
                if lowest is None or lowest == 1:
                    break
                top = str(lowest - 1)
            client.logout()
            return sorted(found), sorted(fetched), rounds

        found, fetched, rounds = await self.in_thread(run)
        self.assertEqual(found, [u for i, u in enumerate(range(1, 27), 1)
                                 if u in self.uids and i % 3 == 1])
        self.assertEqual(fetched, self.uids)
        self.assertEqual(rounds, 5)

    async def test_new_mail_with_uidafter(self) -> None:
        # Section 3.2: UIDAFTER turns the last UID a client knows into the
        # range of what is new; a short answer needs no second round.
        def run():
            client = self.client()
            client.select("INBOX")
            _, data = client.uid("SEARCH", "UIDAFTER", "24")
            new = data[0].split()
            code = client.message_limit()
            client.logout()
            return new, code

        new, code = await self.in_thread(run)
        self.assertEqual(new, [b"25", b"26"])
        self.assertIsNone(code)

    async def test_move_all_and_expunge_all(self) -> None:
        def run():
            client = self.client()
            client.select("INBOX")
            rounds = 0
            while True:
                rounds += 1
                typ, _ = client.uid("MOVE", "1:*", "Archive")
                assert typ == "OK"
                if client.message_limit() is None:
                    break
            left = client.select("INBOX")[1][0]
            client.select("Archive")
            client.uid("STORE", "1:*", "+FLAGS.SILENT", r"(\Deleted)")
            stores = 1
            while client.message_limit() is not None:
                client.uid("STORE", f"1:{client.message_limit() - 1}", "+FLAGS.SILENT",
                           r"(\Deleted)")
                stores += 1
            expunges = 0
            while True:
                expunges += 1
                client.uid("EXPUNGE", "1:*")
                if client.message_limit() is None:
                    break
            remaining = client.select("Archive")[1][0]
            client.logout()
            return rounds, left, stores, expunges, remaining

        self.assertEqual(await self.in_thread(run), (5, b"0", 5, 5, b"0"))
