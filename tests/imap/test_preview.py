"""
PREVIEW (RFC 8970): the text chosen and how it is cleaned up, byte-exact
FETCH transcripts on every store with encoded and HTML messages, LAZY,
imapclient, and an SQL store keeping previews for the next process.
"""

from __future__ import annotations

import base64

from twisted.internet import reactor, task
from twisted.trial import unittest

from harness import IMAPServerTestCase, RawClient, on_every_store

from twisted_mailhub.imap.preview import PREVIEW_LENGTH, choose_part, preview_text
from twisted_mailhub.mime.parse import parse_message
from twisted_mailhub.model import AppendRequest

HEAD = b"From: carol@example.net\r\nTo: alice@example.org\r\nSubject: s\r\nMIME-Version: 1.0\r\n"

PLAIN_QP = HEAD + (
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    b"Caf=C3=A9 at  noon?\r\n\r\n   See you =\r\nthere.\r\n")

HTML_LATIN1 = HEAD + (
    b"Content-Type: text/html; charset=iso-8859-1\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\n"
    + base64.encodebytes(
        "<html><head><title>Newsletter</title><style>p {color: red}</style></head>"
        "<body><script>track()</script><p>Cr\u00e8me&nbsp;br\u00fbl\u00e9e &amp; "
        "<b>more</b></p><p>Second<br>line</p></body></html>".encode("latin-1"))
    .replace(b"\n", b"\r\n"))

ALTERNATIVE = HEAD + (
    b"Content-Type: multipart/mixed; boundary=outer\r\n\r\n"
    b"--outer\r\nContent-Type: multipart/alternative; boundary=alt\r\n\r\n"
    b"--alt\r\nContent-Type: text/html\r\n\r\n<p>The HTML one</p>\r\n"
    b"--alt\r\nContent-Type: text/plain\r\n\r\nThe plain one\r\n"
    b"--alt--\r\n"
    b"--outer\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=a.txt\r\n"
    b"\r\nAttached text\r\n--outer--\r\n")

ATTACHMENT_ONLY = HEAD + (
    b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
    b"--b\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n"
    b"--b\r\nContent-Type: text/plain\r\nContent-Disposition: attachment\r\n\r\nnotes\r\n"
    b"--b--\r\n")

LONG = HEAD + b"\r\n" + b" ".join(b"word%03d" % i for i in range(100)) + b"\r\n"


def preview_of(message: bytes) -> str:
    structure = parse_message(message)
    part = choose_part(structure)
    if part is None:
        return ""
    return preview_text(message[part.body_start:part.end], part)


class PreviewTextTests(unittest.TestCase):
    def test_quoted_printable_utf8_with_white_space_collapsed(self) -> None:
        self.assertEqual(preview_of(PLAIN_QP), "Caf\u00e9 at noon? See you there.")

    def test_html_is_reduced_to_its_text(self) -> None:
        # No title, style or script; entities decoded; paragraphs and <br>
        # separate words.
        self.assertEqual(preview_of(HTML_LATIN1), "Cr\u00e8me br\u00fbl\u00e9e & more Second line")

    def test_plain_preferred_among_alternatives_and_attachments_skipped(self) -> None:
        self.assertEqual(preview_of(ALTERNATIVE), "The plain one")

    def test_no_text_no_preview(self) -> None:
        self.assertEqual(preview_of(ATTACHMENT_ONLY), "")

    def test_cut_to_the_recommended_length(self) -> None:
        words = " ".join("word%03d" % i for i in range(100))
        self.assertEqual(preview_of(LONG), words[:PREVIEW_LENGTH].rstrip())
        self.assertEqual(PREVIEW_LENGTH, 200)

    def test_a_body_without_content_type_is_plain_text(self) -> None:
        self.assertEqual(preview_of(b"Subject: x\r\n\r\n\tHello\r\n\r\n\x00there\x07\r\n"),
                         "Hello there")


class PreviewGrammarTests(unittest.TestCase):
    """Section 6: ``PREVIEW [SP "(" preview-mod *(SP preview-mod) ")"]``."""

    def parse(self, line: bytes):
        from twisted_mailhub.imap.parser import CommandParser

        parser = CommandParser()
        parser.receive_data(line + b"\r\n")
        return parser.next_event()

    def test_forms(self) -> None:
        from twisted_mailhub.imap import commands as C

        lazy, plain = C.FetchAttr("PREVIEW", lazy=True), C.FetchAttr("PREVIEW")
        self.assertEqual(self.parse(b"a FETCH 1 PREVIEW").command.attrs, (plain,))
        self.assertEqual(self.parse(b"a FETCH 1 preview (lazy)").command.attrs, (lazy,))
        self.assertEqual(self.parse(b"a FETCH 1 (FLAGS PREVIEW (LAZY LAZY) UID)").command.attrs,
                         (C.FetchAttr("FLAGS"), lazy, C.FetchAttr("UID")))
        # A list of FETCH modifiers after a lone PREVIEW is the FETCH's.
        fetch = self.parse(b"a UID FETCH 1 PREVIEW (CHANGEDSINCE 7)").command
        self.assertEqual((fetch.attrs, fetch.changedsince), ((plain,), 7))

    def test_errors(self) -> None:
        for line, message in [(b"a FETCH 1 (PREVIEW ())", "Empty PREVIEW modifiers"),
                              (b"a FETCH 1 (PREVIEW (LAZY)", "Expected ) after FETCH attributes"),
                              (b"a FETCH 1 PREVIEW (SOON)", "Unknown PREVIEW modifier: SOON")]:
            event = self.parse(line)
            self.assertEqual((event.condition, event.message), ("BAD", message), line)


@on_every_store
class PreviewTranscriptTests(IMAPServerTestCase):
    async def setUp(self) -> None:
        await super().setUp()
        store = await self.backend.open_store("alice")
        inbox = await store.get_mailbox("INBOX")
        await inbox.append([AppendRequest(m) for m in
                            (PLAIN_QP, HTML_LATIN1, ALTERNATIVE, ATTACHMENT_ONLY)])

    def session(self, *lines: bytes) -> list[list[bytes]]:
        c = self.raw()
        c.line()
        c.command(b"t0 LOGIN alice wonderland")
        c.command(b"t1 EXAMINE INBOX")
        out = [c.command(line) for line in lines]
        c.close()
        return out

    async def test_fetch_preview(self) -> None:
        out = await self.in_thread(self.session, b"t2 FETCH 1:4 (PREVIEW)",
                                   b"t3 UID FETCH 2 (RFC822.SIZE PREVIEW)")
        html = "Cr\u00e8me br\u00fbl\u00e9e & more Second line".encode()
        self.assertEqual(out[0], [
            b"* 1 FETCH (PREVIEW {29}\r\n",
            "Caf\u00e9 at noon? See you there.)\r\n".encode(),
            b"* 2 FETCH (PREVIEW {%d}\r\n" % len(html),
            html + b")\r\n",
            b'* 3 FETCH (PREVIEW "The plain one")\r\n',
            # Section 3.2: nothing to show is the empty string, not NIL.
            b'* 4 FETCH (PREVIEW "")\r\n',
            b"t2 OK FETCH completed\r\n"])
        self.assertEqual(out[1], [
            b"* 2 FETCH (UID 2 RFC822.SIZE %d PREVIEW {%d}\r\n" % (len(HTML_LATIN1), len(html)),
            html + b")\r\n",
            b"t3 OK FETCH completed\r\n"])

    async def test_lazy(self) -> None:
        """Section 4.1: LAZY gives what is at hand, NIL for the rest."""
        out = await self.in_thread(self.session, b"t2 FETCH 3:4 (UID PREVIEW (LAZY))",
                                   b"t3 FETCH 3 (PREVIEW)",
                                   b"t4 FETCH 3:4 (PREVIEW (LAZY) UID)",
                                   b"t5 FETCH 3 (PREVIEW (BRIEF))")
        self.assertEqual(out[0], [b"* 3 FETCH (UID 3 PREVIEW NIL)\r\n",
                                  b"* 4 FETCH (UID 4 PREVIEW NIL)\r\n",
                                  b"t2 OK FETCH completed\r\n"])
        self.assertEqual(out[1], [b'* 3 FETCH (PREVIEW "The plain one")\r\n',
                                  b"t3 OK FETCH completed\r\n"])
        self.assertEqual(out[2], [b'* 3 FETCH (PREVIEW "The plain one" UID 3)\r\n',
                                  b"* 4 FETCH (PREVIEW NIL UID 4)\r\n",
                                  b"t4 OK FETCH completed\r\n"])
        self.assertEqual(out[3], [b"t5 BAD Unknown PREVIEW modifier: BRIEF\r\n"])

    async def test_preview_does_not_set_seen(self) -> None:
        out = await self.in_thread(self.session, b"t2 CLOSE", b"t3 SELECT INBOX",
                                   b"t4 FETCH 1 (PREVIEW)", b"t5 FETCH 1 (FLAGS)")
        self.assertEqual(out[2][-1], b"t4 OK FETCH completed\r\n")
        self.assertNotIn(b"\\Seen", out[3][0])

    async def test_imapclient(self) -> None:
        def run():
            client = self.imapclient_client()
            caps = client.capabilities()
            client.select_folder("INBOX", readonly=True)
            found = client.fetch([1, 2, 3, 4], ["PREVIEW"])
            client.logout()
            return caps, found

        caps, found = await self.in_thread(run)
        self.assertIn(b"PREVIEW", caps)
        previews = {uid: data[b"PREVIEW"] for uid, data in found.items()}
        self.assertEqual(previews, {
            1: "Caf\u00e9 at noon? See you there.".encode(),
            2: "Cr\u00e8me br\u00fbl\u00e9e & more Second line".encode(),
            3: b"The plain one",
            4: b""})


class PreviewKeptByTheStoreTests(IMAPServerTestCase):
    """
    A preview made once is kept with the message by an SQL store: another
    server process on the same database answers PREVIEW, LAZY or not,
    without reading a message.
    """

    store = "sqlite"

    async def test_second_process_reads_no_message(self) -> None:
        from sqlalchemy import event, func, select
        from twisted.cred.portal import Portal

        from harness import USERS
        from test_index import twin
        from twisted_mailhub.auth.checkers import InMemoryChecker
        from twisted_mailhub.auth.realm import MailhubRealm
        from twisted_mailhub.backends.sql.schema import summaries
        from twisted_mailhub.imap.protocol import IMAPServerFactory

        inbox = await (await self.backend.open_store("alice")).get_mailbox("INBOX")
        await inbox.append([AppendRequest(m) for m in (PLAIN_QP, HTML_LATIN1, ATTACHMENT_ONLY)])

        def fetch(port: int, *commands: bytes) -> list[list[bytes]]:
            c = RawClient(port)
            c.line()
            c.command(b"t0 LOGIN alice wonderland")
            c.command(b"t1 EXAMINE INBOX")
            out = [c.command(command) for command in commands]
            c.close()
            return out

        [first] = await self.in_thread(fetch, self.port, b"t2 FETCH 1:3 (PREVIEW)")

        async def kept() -> int:
            return await self.backend.db.read(lambda conn: conn.execute(
                select(func.count()).select_from(summaries)
                .where(summaries.c.name == "PREVIEW")).scalar_one())

        # Kept after the answer, by a write the client does not wait for.
        for _ in range(200):
            if await kept() == 3:
                break
            await task.deferLater(reactor, 0.01, lambda: None)
        self.assertEqual(await kept(), 3)

        other = twin(self.backend)
        self.addCleanup(other.close)
        factory = IMAPServerFactory(Portal(MailhubRealm(other), [InMemoryChecker(dict(USERS))]),
                                    policy=self.policy)
        listening = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(listening.stopListening)
        statements: list[str] = []
        event.listen(other.db.engine, "before_cursor_execute",
                     lambda conn, cursor, statement, *args: statements.append(statement))
        # LAZY first: the kept previews are at hand in the new process too.
        second = await self.in_thread(fetch, listening.getHost().port,
                                      b"t2 FETCH 1:3 (PREVIEW (LAZY))", b"t2 FETCH 1:3 (PREVIEW)")
        self.assertEqual(second, [first, first])
        self.assertNotIn(b"NIL", b"".join(first))
        self.assertFalse([s for s in statements if "chunks" in s or "contents" in s])
