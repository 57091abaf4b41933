"""
CATENATE (RFC 4469): the grammar of APPEND's CATENATE parts, transcripts
following the examples of the RFC's appendix A on every store, the failures
of section 4 (BADURL, TOOBIG) leaving every mailbox as it was, and imaplib
sessions building messages from parts of others.
"""

from __future__ import annotations

import re

from twisted.trial import unittest

from harness import IMAPServerTestCase, on_every_store

from twisted_mailhub.imap import commands as C
from twisted_mailhub.model import AppendRequest
from twisted_mailhub.policy import ServerPolicy

BOUNDARY = b"------------030308070208000400050907"
DRAFT_HEADER = (
    b"Return-Path: <bar@example.org>\r\n"
    b"Message-ID: <419399E1.6000505@example.org>\r\n"
    b"Date: Thu, 12 Nov 2004 16:57:05 +0000\r\n"
    b"From: Bob Ar <bar@example.org>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"To: foo@example.net\r\n"
    b"Subject: About our holiday trip\r\n"
    b"Content-Type: multipart/mixed;\r\n"
    b"              boundary=\"" + BOUNDARY + b"\"\r\n"
    b"\r\n"
)
PART1_MIME = (b"Content-Type: text/plain; charset=us-ascii; format=flowed\r\n"
              b"Content-Transfer-Encoding: 7bit\r\n\r\n")
PART1_BODY = b"Our travel agent has sent the schedule.\r\n\r\nCheers,\r\nBob"
PART2_MIME = (b"Content-Type: application/x-zip-compressed; name=\"trip.zip\"\r\n"
              b"Content-Transfer-Encoding: base64\r\n\r\n")
PART2_BODY = b"UEsDBAoAAAAAAOaDbk8AAAAAAAAAAAAAAAAFABwAeC50eHRVVAkAA9Y="
# The draft of examples 1 and 2: multipart/mixed of text/plain and a zip.
DRAFT = (DRAFT_HEADER + b"--" + BOUNDARY + b"\r\n" + PART1_MIME + PART1_BODY
         + b"\r\n--" + BOUNDARY + b"\r\n" + PART2_MIME + PART2_BODY
         + b"\r\n--" + BOUNDARY + b"--\r\n")
# The message attached by example 1 in place of the zip.
OTHER = (b"From: Farren Oo <foo@example.org>\r\nSubject: The new schedule\r\n"
         b"Date: Thu, 11 Nov 2004 16:00:00 +0000\r\n\r\nMonday: the beach.\r\n")
SEPARATOR = b"\r\n--" + BOUNDARY + b"\r\n"      # the TEXT {42} of the examples
CLOSING = b"\r\n--" + BOUNDARY + b"--\r\n"      # the TEXT {44}


class GrammarTests(unittest.TestCase):
    def parse(self, data: bytes):
        from twisted_mailhub.imap.parser import CommandParser

        parser = CommandParser()
        parser.receive_data(data)
        return parser.next_event()

    def test_parts_in_order(self) -> None:
        event = self.parse(b'a APPEND Drafts (\\Seen) CATENATE (URL "/Drafts/;UID=1" '
                           b'TEXT {3+}\r\nabc url /x/;uid=2 text ~{2+}\r\n\x00b)\r\n')
        self.assertEqual(event.command, C.Append("a", "Drafts", (C.AppendMessage(
            b"", frozenset({"\\Seen"}), None, catenate=(C.CatenateUrl(b"/Drafts/;UID=1"), b"abc", C.CatenateUrl(b"/x/;uid=2"), b"\x00b")),),))

    def test_with_multiappend(self) -> None:
        """RFC 4469 section 1: CATENATE and MULTIAPPEND together."""
        event = self.parse(b'a APPEND INBOX {2+}\r\nhi CATENATE (TEXT {2+}\r\nyo) '
                           b'(\\Flagged) CATENATE (URL "/INBOX/;UID=9")\r\n')
        messages = event.command.messages
        self.assertEqual([m.content for m in messages], [b"hi", b"", b""])
        self.assertEqual([m.catenate for m in messages],
                         [None, (b"yo",), (C.CatenateUrl(b"/INBOX/;UID=9"),)])
        self.assertEqual(messages[2].flags, frozenset({"\\Flagged"}))

    def test_utf8_part(self) -> None:
        """RFC 6855 section 4: cat-part =/ utf8-literal."""
        event = self.parse(b'a APPEND INBOX CATENATE (UTF8 (~{2+}\r\n\xc3\xa9) TEXT {1+}\r\nx)\r\n')
        self.assertEqual(event.command.messages[0].catenate, (b"\xc3\xa9", b"x"))
        event = self.parse(b'a APPEND INBOX CATENATE (UTF8 ({2+}\r\nab))\r\n')
        self.assertEqual((event.condition, event.message),
                         ("BAD", "UTF8 data must be a literal8 (~{n})"))

    def test_bad_syntax(self) -> None:
        for line, message in [
            (b"a APPEND INBOX CATENATE ()", "Empty CATENATE parts"),
            (b"a APPEND INBOX CATENATE", "Missing CATENATE parts"),
            (b"a APPEND INBOX CATENATE (FILE x)", "Unknown CATENATE part: FILE (expected TEXT, URL or UTF8)"),
            (b"a APPEND INBOX CATENATE (TEXT)", "Expected SP before TEXT literal"),
            (b'a APPEND INBOX CATENATE (TEXT "quoted")', "Expected literal after TEXT"),
            (b"a APPEND INBOX CATENATE (URL)", "Expected SP before URL"),
            (b'a APPEND INBOX CATENATE (URL "/INBOX/;UID=1"', "Expected ) after CATENATE parts"),
            (b'a APPEND INBOX CATENATE (URL "/INBOX/;UID=1") x', "Expected message literal"),
        ]:
            event = self.parse(line + b"\r\n")
            self.assertEqual((event.condition, event.message), ("BAD", message), line)


def expected_example_1(other: bytes) -> bytes:
    return (DRAFT_HEADER + SEPARATOR + PART1_MIME + PART1_BODY + SEPARATOR + other + CLOSING)


class CatenateCase(IMAPServerTestCase):
    async def setUp(self) -> None:
        await super().setUp()
        self.alice = await self.backend.open_store("alice")
        for name in ("Drafts", "Sent"):
            await self.alice.create_mailbox(name)
        drafts = await self.alice.get_mailbox("Drafts")
        self.draft_uid, self.other_uid = [m.uid for m in await drafts.append(
            [AppendRequest(DRAFT), AppendRequest(OTHER)])]
        self.uidvalidity = drafts.uidvalidity
        inbox = await self.alice.get_mailbox("INBOX")
        [meta] = await inbox.append([AppendRequest(OTHER, frozenset({"\\Answered"}))])
        self.inbox_uid, self.inbox_uidvalidity = meta.uid, inbox.uidvalidity

    def session(self, user: bytes = b"alice wonderland"):
        c = self.raw()
        c.line()
        c.command(b"t0 LOGIN " + user)
        return c

    def send_parts(self, c, pieces: list[bytes]) -> list[bytes]:
        """
        Send a command whose literals are synchronizing: C{pieces} alternate
        line text (ending in ``{n}``) and literal data; each literal waits
        for its continuation, as the RFC's examples show.
        """
        replies = []
        for i, piece in enumerate(pieces):
            if i % 2 == 0 and i < len(pieces) - 1:
                c.send(piece + b"\r\n")
                replies.append(c.line())
            else:
                c.send(piece)
        c.send(b"\r\n")
        return replies

    def fetch_body(self, c, mailbox: bytes, uid: int) -> bytes:
        c.command(b"x1 EXAMINE " + mailbox)
        c.send(b"x2 UID FETCH %d BODY.PEEK[]\r\n" % uid)
        head = c.line()
        found = re.search(rb"\{(\d+)\}\r\n$", head)
        assert found, head
        body = c.read_exact(int(found.group(1)))
        c.until_tagged(b"x2")
        c.command(b"x3 UNSELECT")
        return body

    def count(self, c, mailbox: bytes) -> int:
        line = c.command(b"s STATUS " + mailbox + b" (MESSAGES)")[0]
        return int(re.search(rb"MESSAGES (\d+)", line).group(1))


@on_every_store
class TranscriptTests(CatenateCase):
    """Appendix A's examples, with this store's UIDVALIDITY and UIDs."""

    async def test_example_1_replace_an_attachment(self) -> None:
        v, d, o = self.uidvalidity, self.draft_uid, self.other_uid

        def run():
            c = self.session()
            caps = c.command(b"t1 CAPABILITY")[0]
            replies = self.send_parts(c, [
                b'A003 APPEND Drafts (\\Seen \\Draft $MDNSent) CATENATE (URL '
                b'"/Drafts;UIDVALIDITY=%d/;UID=%d/;section=HEADER" TEXT {42}' % (v, d),
                SEPARATOR,
                b' URL "/Drafts;UIDVALIDITY=%d/;UID=%d/;section=1.MIME" '
                b'URL "/Drafts;UIDVALIDITY=%d/;UID=%d/;section=1" TEXT {42}' % (v, d, v, d),
                SEPARATOR,
                b' URL "/Drafts;UIDVALIDITY=%d/;UID=%d" TEXT {44}' % (v, o),
                CLOSING + b")",
            ])
            done = c.until_tagged(b"A003")
            body = self.fetch_body(c, b"Drafts", o + 1)
            flags = c.command(b"f1 EXAMINE Drafts") + c.command(b"f2 UID FETCH %d FLAGS" % d)
            return caps, replies, done, body, flags

        caps, replies, done, body, flags = await self.in_thread(run)
        self.assertIn(b" CATENATE", caps)
        self.assertEqual(replies, [b"+ Ready for literal data\r\n"] * 3)
        self.assertEqual(done, [b"A003 OK [APPENDUID %d %d] APPEND completed\r\n" % (v, o + 1)])
        self.assertEqual(body, expected_example_1(OTHER))
        # Section 3: no \Seen is set on the message read from.
        [line] = [f for f in flags if f.startswith(b"* 1 FETCH")]
        self.assertNotIn(b"\\Seen", line)

    async def test_example_2_edited_text_and_headers(self) -> None:
        v, d = self.uidvalidity, self.draft_uid
        text = (DRAFT_HEADER.replace(b"About our holiday trip", b"About our trip")
                + b"--" + BOUNDARY + b"\r\n" + PART1_MIME
                + b"Our travel agent has sent the updated schedule.\r\n\r\nCheers,\r\nBob"
                + SEPARATOR)

        def run():
            c = self.session()
            replies = self.send_parts(c, [
                b"A003 APPEND Drafts (\\Seen \\Draft $MDNSent) CATENATE (TEXT {%d}" % len(text),
                text,
                b' URL "/Drafts;UIDVALIDITY=%d/;UID=%d/;Section=2.MIME" '
                b'URL "/Drafts;UIDVALIDITY=%d/;UID=%d/;Section=2" TEXT {44}' % (v, d, v, d),
                CLOSING + b")",
            ])
            done = c.until_tagged(b"A003")
            c.command(b"A0 SELECT Drafts")
            store = c.command(b"A004 UID STORE %d +FLAGS.SILENT (\\Deleted)" % d)
            body = self.fetch_body(c, b"Drafts", self.other_uid + 1)
            return replies, done, store, body

        replies, done, store, body = await self.in_thread(run)
        self.assertEqual(replies, [b"+ Ready for literal data\r\n"] * 2)
        self.assertEqual(done, [b"A003 OK [APPENDUID %d %d] APPEND completed\r\n"
                                % (v, self.other_uid + 1)])
        self.assertEqual(store, [b"A004 OK STORE completed\r\n"])
        self.assertEqual(body, text + PART2_MIME + PART2_BODY + CLOSING)

    async def test_example_4_badurl_stores_nothing(self) -> None:
        v, d = self.uidvalidity, self.draft_uid
        missing = b"/Drafts;UIDVALIDITY=%d/;UID=%d/;section=1.5.9" % (v, d + 100)
        header = (b"From: Farren Oo <foo@example.org>\r\nSubject: Digest\r\n"
                  b"Content-Type: multipart/digest;\r\n boundary=\"" + BOUNDARY + b"\"\r\n\r\n"
                  b"--" + BOUNDARY + b"\r\n")

        def run():
            c = self.session()
            before = self.count(c, b"Sent")
            self.send_parts(c, [
                b"A003 APPEND Sent (\\Seen $MDNSent) CATENATE (TEXT {%d}" % len(header),
                header,
                b' URL "/Drafts;UIDVALIDITY=%d/;UID=%d" TEXT {42}' % (v, d),
                SEPARATOR,
                b' URL "' + missing + b'" TEXT {42}',
                SEPARATOR,
                b' URL "/Drafts;UIDVALIDITY=%d/;UID=%d" TEXT {44}' % (v, self.other_uid),
                CLOSING + b")",
            ])
            done = c.until_tagged(b"A003")
            return before, done, self.count(c, b"Sent")

        before, done, after = await self.in_thread(run)
        self.assertEqual(done, [b"A003 NO [BADURL " + missing + b"] CATENATE failed: "
                                b"No message with the URL's UID\r\n"])
        self.assertEqual((before, after), (0, 0))

    async def test_url_of_another_mailbox_with_section_and_partial(self) -> None:
        """Parts of INBOX and Drafts catenated into Sent, byte for byte."""
        def run():
            c = self.session()
            c.send(b'a1 APPEND Sent CATENATE (TEXT {14+}\r\nSubject: x\r\n\r\n'
                   b' URL "/INBOX;UIDVALIDITY=%d/;UID=%d/;SECTION=TEXT" '
                   b'URL "/Drafts/;UID=%d/;SECTION=HEADER.FIELDS%%20(SUBJECT%%20FROM)/;PARTIAL=6.20" '
                   b'URL "imap://alice@127.0.0.1/Drafts/;UID=%d/;SECTION=2/;PARTIAL=4")\r\n'
                   % (self.inbox_uidvalidity, self.inbox_uid, self.draft_uid, self.draft_uid))
            done = c.until_tagged(b"a1")
            seen = c.command(b"a2 EXAMINE INBOX") + c.command(b"a3 FETCH 1 FLAGS")
            c.command(b"a4 UNSELECT")
            return done, self.fetch_body(c, b"Sent", 1), seen

        done, body, seen = await self.in_thread(run)
        self.assertRegex(done[0], rb"^a1 OK \[APPENDUID \d+ 1\] APPEND completed\r\n$")
        # HEADER.FIELDS keeps the message's order of the fields.
        fields = b"From: Bob Ar <bar@example.org>\r\nSubject: About our holiday trip\r\n\r\n"
        self.assertEqual(body, b"Subject: x\r\n\r\n" + b"Monday: the beach.\r\n"
                         + fields[6:26] + PART2_BODY[4:])
        self.assertIn(b"* 1 FETCH (FLAGS (\\Answered \\Recent))\r\n", seen)

    async def test_relative_to_the_selected_mailbox_and_into_it(self) -> None:
        def run():
            c = self.session()
            c.command(b"a0 SELECT Drafts")
            c.send(b'a1 APPEND Drafts CATENATE (URL ";UID=%d" TEXT {7+}\r\nP.S. 1\n)\r\n'
                   % self.other_uid)
            done = c.until_tagged(b"a1")
            return done, self.fetch_body(c, b"Drafts", self.other_uid + 1)

        done, body = await self.in_thread(run)
        self.assertIn(b"* 3 EXISTS\r\n", done)
        self.assertEqual(body, OTHER + b"P.S. 1\n")

    async def test_utf8_names_and_headers(self) -> None:
        """
        The mailbox name of a URL is UTF-8 (RFC 5092) whether or not
        UTF8=ACCEPT is enabled, and an 8-bit header built by CATENATE is
        refused to a client that did not enable it (RFC 6855 section 4).
        """
        await self.alice.create_mailbox("\u00c9t\u00e9")
        box = await self.alice.get_mailbox("\u00c9t\u00e9")
        await box.append([AppendRequest("Subject: \u00e9t\u00e9\r\n\r\nx\n".encode())])

        def run():
            c = self.session()
            c.send(b'a2 APPEND INBOX CATENATE (TEXT {6+}\r\nX: 1\r\n '
                   b'URL "/%C3%89t%C3%A9/;UID=1")\r\n')
            refused = c.until_tagged(b"a2")
            c.command(b"a3 ENABLE UTF8=ACCEPT")
            c.send(b'a4 APPEND INBOX CATENATE (TEXT {6+}\r\nX: 1\r\n '
                   b'URL "/%C3%89t%C3%A9/;UID=1")\r\n')
            done = c.until_tagged(b"a4")
            return refused, done, self.fetch_body(c, b"INBOX", self.inbox_uid + 1)

        refused, done, body = await self.in_thread(run)
        self.assertEqual(refused, [b"a2 NO [CANNOT] Message has 8-bit header fields; "
                                   b"ENABLE UTF8=ACCEPT first (RFC 6855 section 4)\r\n"])
        self.assertTrue(done[-1].startswith(b"a4 OK [APPENDUID "), done)
        self.assertEqual(body, "X: 1\r\nSubject: \u00e9t\u00e9\r\n\r\nx\n".encode())

    async def test_multiappend_is_all_or_nothing(self) -> None:
        """A failing URL in the second message stores neither (RFC 3502 section 6.3.11)."""
        def run():
            c = self.session()
            c.send(b'a1 APPEND Sent CATENATE (URL "/Drafts/;UID=%d") '
                   b'(\\Flagged) CATENATE (TEXT {4+}\r\nhi\r\n URL "/Drafts/;UID=%d/;SECTION=7")\r\n'
                   % (self.draft_uid, self.draft_uid))
            done = c.until_tagged(b"a1")
            c.send(b'a2 APPEND Sent CATENATE (URL "/Drafts/;UID=%d") {4+}\r\nhi\r\n\r\n'
                   % self.draft_uid)
            ok = c.until_tagged(b"a2")
            return done, self.count(c, b"Sent"), ok

        done, count, ok = await self.in_thread(run)
        self.assertEqual(done, [b'a1 NO [BADURL /Drafts/;UID=%d/;SECTION=7] CATENATE failed: '
                                b'No such body part\r\n' % self.draft_uid])
        self.assertEqual(count, 2)
        self.assertRegex(ok[0], rb"^a2 OK \[APPENDUID \d+ 1:2\] APPEND completed\r\n$")

    async def test_bad_urls(self) -> None:
        v, d = self.uidvalidity, self.draft_uid
        cases = [
            (b"/Drafts;UIDVALIDITY=%d/;UID=%d" % (v + 1, d),
             b"UIDVALIDITY of the URL does not match the mailbox"),
            (b"/Nowhere/;UID=1", b"Mailbox does not exist: Nowhere"),
            (b"/Drafts/;UID=%d/;SECTION=1.HEADER" % d, b"Body part is not a message"),
            (b"/Drafts/;UID=%d/;SECTION=1.FOO" % d, b"Invalid SECTION in URL: Invalid section: FOO"),
            (b"/Drafts", b"URL names no message (;UID=)"),
            (b"http://example.com/x", b"Not an IMAP URL"),
            (b";UID=1", b"URL relative to a selected mailbox, and none is"),
            (b"/Drafts/;UID=1 ]", b"Unexpected text in URL:  ]"),
            # Percent-escapes of the URL's own (RFC 5092) are given back as
            # sent, not escaped again.
            (b"/My%20Drafts/;UID=1", b"Mailbox does not exist: My Drafts"),
            (b"/Drafts/;UID=%d/;SECTION=%%31.FOO" % d,
             b"Invalid SECTION in URL: Invalid section: FOO"),
        ]

        def run():
            c = self.session()
            out = []
            for i, (url, _) in enumerate(cases):
                q = b'"' + url + b'"'
                out.append(c.command(b"b%d APPEND Sent CATENATE (URL %s)" % (i, q))[-1])
            return out, self.count(c, b"Sent")

        out, count = await self.in_thread(run)
        for i, ((url, reason), line) in enumerate(zip(cases, out)):
            # Section 5: url-resp-text is any TEXT-CHAR but "]".
            shown = url.replace(b"]", b"%5D")
            self.assertEqual(line, b"b%d NO [BADURL %s] CATENATE failed: %s\r\n"
                             % (i, shown, reason))
        self.assertEqual(count, 0)


def test_badurl_code() -> None:
    # RFC 4469 section 4.1: "the first URL specified as a parameter", so
    # as sent, its escapes included; only what url-resp-text (section 5)
    # and 7-bit response text cannot carry is escaped.
    from twisted_mailhub.imap.catenate import badurl_code

    assert badurl_code(b"/a%20b/;UID=1") == "BADURL /a%20b/;UID=1"
    assert badurl_code(b'imap://u@[::1]/INBOX/;UID=1 "x"') == (
        'BADURL imap://u@[::1%5D/INBOX/;UID=1 "x"')
    assert badurl_code("/Grüße/;UID=1".encode()) == "BADURL /Gr%C3%BC%C3%9Fe/;UID=1"
    assert badurl_code(b"/a\x00\r\n\tb") == "BADURL /a%00%0D%0A%09b"
    assert badurl_code(b"") == "BADURL %20"


@on_every_store
class OtherUserTests(CatenateCase):
    """One user never reaches another's mail through a URL."""

    async def test_bob_cannot_catenate_alices_mail(self) -> None:
        urls = [b"imap://alice@127.0.0.1/INBOX/;UID=%d" % self.inbox_uid,
                b"imap://alice@127.0.0.1/Drafts;UIDVALIDITY=%d/;UID=%d" % (self.uidvalidity,
                                                                           self.draft_uid),
                b"/alice/INBOX/;UID=%d" % self.inbox_uid,
                b"/../alice/INBOX/;UID=%d" % self.inbox_uid,
                b"/Drafts/;UID=%d" % self.draft_uid]

        def run():
            c = self.session(b"bob builder")
            out = [c.command(b'b%d APPEND INBOX CATENATE (URL "%s")' % (i, u))[-1]
                   for i, u in enumerate(urls)]
            return out, self.count(c, b"INBOX")

        out, count = await self.in_thread(run)
        for i, line in enumerate(out):
            self.assertTrue(line.startswith(b"b%d NO [BADURL %s] " % (i, urls[i])), line)
        self.assertIn(b"another user's mailbox", out[0])
        self.assertEqual(count, 0)
        self.assertEqual((await (await self.alice.get_mailbox("INBOX")).status()).messages, 1)


class TooBigTests(CatenateCase):
    policy = ServerPolicy(auth_failure_delay=0.0, auth_failure_delay_max=0.0,
                          max_literal_size=len(DRAFT) + 10)

    async def test_over_the_append_limit(self) -> None:
        """RFC 4469 section 4.2: TOOBIG past the server's message size limit."""
        def run():
            c = self.session()
            out = c.command(b'a1 APPEND Sent CATENATE (URL "/Drafts/;UID=%d" URL "/Drafts/;UID=%d")'
                            % (self.draft_uid, self.draft_uid))
            fits = c.command(b'a2 APPEND Sent CATENATE (URL "/Drafts/;UID=%d")' % self.draft_uid)
            return out, fits

        out, fits = await self.in_thread(run)
        self.assertEqual(out, [b"a1 NO [TOOBIG] CATENATE message over %d bytes\r\n"
                               % (len(DRAFT) + 10)])
        self.assertTrue(fits[-1].startswith(b"a2 OK [APPENDUID "), fits)


@on_every_store
class ImaplibTests(CatenateCase):
    """A client building messages with imaplib (LITERAL+ for the TEXT parts)."""

    async def test_forward_parts_into_sent(self) -> None:
        def run():
            client = self.imaplib_client()
            typ, caps = client.capability()
            assert b"CATENATE" in caps[0].split(), caps
            prefix = b"Subject: Fwd\r\n\r\n"
            args = (b"CATENATE (TEXT {%d+}\r\n%s URL \"/Drafts/;UID=%d/;SECTION=1\" "
                    b"URL \"/INBOX/;UID=%d\")" % (len(prefix), prefix, self.draft_uid,
                                                  self.inbox_uid))
            typ, data = client._simple_command("APPEND", "Sent", "(\\Seen)", args)
            code = client.response("APPENDUID")
            client.select("Sent", readonly=True)
            fetched = client.uid("FETCH", "1", "(FLAGS BODY.PEEK[])")
            client.logout()
            return typ, code, fetched, prefix

        typ, code, fetched, prefix = await self.in_thread(run)
        self.assertEqual(typ, "OK")
        self.assertEqual(code[1][0].split()[1], b"1")
        [(head, body), _] = fetched[1]
        self.assertIn(b"FLAGS (\\Seen \\Recent)", head)
        self.assertEqual(body, prefix + PART1_BODY + OTHER)
