"""
FETCH of one message's whole content (BODY[], BODY.PEEK[], RFC822, partial
BODY[]<a.b>) takes its own path on stores that read contents directly
(imap/handlers/messages.py, L{F.whole_content}): its responses must be the
very bytes the general path gives, \\Seen must be set as RFC 9051 section
6.4.5 says, and every other store must answer the same.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

from harness import IMAPServerTestCase, on_every_store
from tests_messages import simple_message

from twisted_mailhub.imap import fetch as F
from twisted_mailhub.imap.commands import FetchAttr
from twisted_mailhub.imap.handlers import messages as handlers
from twisted_mailhub.interfaces import IContentAccess
from twisted_mailhub.mime.sections import Section
from twisted_mailhub.model import AppendRequest, MessageMeta

_LITERAL_AT_END = re.compile(rb"\{(\d+)\}\r\n$")


def reply(c, tag: bytes) -> bytes:
    """The raw bytes up to and including the line tagged C{tag}, literals whole."""
    out = b""
    while True:
        while b"\r\n" not in c.buffer:
            chunk = c.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("closed; had %r" % (out + c.buffer)[-200:])
            c.buffer += chunk
        end = c.buffer.index(b"\r\n") + 2
        line, c.buffer = c.buffer[:end], c.buffer[end:]
        out += line
        match = _LITERAL_AT_END.search(line)
        if match is not None:
            size = int(match.group(1))
            while len(c.buffer) < size:
                chunk = c.sock.recv(1 << 20)
                if not chunk:
                    raise ConnectionError("closed inside a literal")
                c.buffer += chunk
            out, c.buffer = out + c.buffer[:size], c.buffer[size:]
            continue
        if line.startswith(tag + b" "):
            return out


def large_message(size: int) -> bytes:
    line = b"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuv\r\n"
    return simple_message("large", "x").rstrip(b"\r\n") + b"\r\n" + line * (size // len(line))


# Commands of the fast path's shapes (and a few around it), with %d for the
# message's number; each is sent as FETCH and as UID FETCH.
SHAPES = [
    b"BODY.PEEK[]",
    b"BODY[]",
    b"RFC822",
    b"BODY.PEEK[]<0.10>",
    b"BODY.PEEK[]<7.100000>",
    b"BODY.PEEK[]<99999999.5>",
    b"BODY.PEEK[]<0.0>",
    b"BINARY.PEEK[]",
    b"(BODY.PEEK[])",
    b"(UID BODY.PEEK[])",
]


@on_every_store
class WholeContentFetchTests(IMAPServerTestCase):
    async def setUp(self) -> None:
        await super().setUp()
        store = await self.backend.open_store("alice")
        inbox = await store.get_mailbox("INBOX")
        self.messages = [
            simple_message("first"),
            simple_message("with a NUL", "before\0after"),
            large_message(F.STREAM_THRESHOLD + 1000),   # streamed by the general path
            large_message(F.WHOLE_LIMIT + 1000),        # general path
            simple_message("seen already"),
            simple_message("last", "bye"),
        ]
        await inbox.append([AppendRequest(m, flags={"\\Seen"} if i == 4 else set())
                            for i, m in enumerate(self.messages)])

    def session(self, select: bytes = b"SELECT", enable: bytes = b""):
        c = self.raw()
        c.line()
        c.command(b"a1 LOGIN alice wonderland")
        if enable:
            c.command(b"a2 ENABLE " + enable)
        c.command(b"a3 " + select + b" INBOX")
        return c

    def transcript(self, select: bytes, enable: bytes) -> dict:
        """Each shape's reply for each message, FETCH and UID FETCH, in one session (PEEK only)."""
        # RFC 9586: with UIDONLY, UID FETCH only (FETCH is BAD [UIDREQUIRED]).
        forms = (b"UID ",) if enable == b"UIDONLY" else (b"", b"UID ")

        def run():
            c = self.session(select, enable)
            out = {}
            for shape in SHAPES:
                if b"PEEK" not in shape and b"UID" not in shape:
                    continue
                for n in range(1, len(self.messages) + 1):
                    for uid in forms:
                        tag = b"t%d" % len(out)
                        c.send(tag + b" " + uid + b"FETCH %d " % n + shape + b"\r\n")
                        out[(shape, n, uid)] = reply(c, tag)
            c.close()
            return out
        return self.in_thread(run)

    async def test_responses_are_those_of_the_general_path(self) -> None:
        async def declined(session, cmd, whole):
            return False, None

        for select, enable in ((b"SELECT", b""), (b"EXAMINE", b"CONDSTORE"),
                               (b"SELECT", b"UIDONLY")):
            fast = await self.transcript(select, enable)
            general_path = self.patch(handlers, "_fetch_whole", declined)
            general = await self.transcript(select, enable)
            general_path.restore()
            self.assertEqual(fast.keys(), general.keys())
            for key in fast:
                self.assertEqual(fast[key], general[key], (select, enable, key))
        # RFC 9586 section 3.3: a UIDFETCH numbered by the UID.
        self.assertTrue(fast[(b"BODY.PEEK[]", 2, b"UID ")].startswith(
            b"* 2 UIDFETCH (BODY[] {"), fast[(b"BODY.PEEK[]", 2, b"UID ")])

    async def test_every_store_takes_the_fast_path(self) -> None:
        # Every store reads contents directly: the comparison above is
        # between two paths on each of them, not the general path twice.
        store = await self.backend.open_store("alice")
        self.assertIsNotNone(IContentAccess(await store.get_mailbox("INBOX"), None))
        answered = []
        fetch_whole = handlers._fetch_whole

        async def spy(session, cmd, whole):
            done, result = await fetch_whole(session, cmd, whole)
            answered.append(done)
            return done, result

        self.patch(handlers, "_fetch_whole", spy)

        def run():
            c = self.session()
            c.send(b"f1 FETCH 1 BODY.PEEK[]\r\nf2 FETCH 6 BODY.PEEK[]\r\n")
            out = reply(c, b"f1"), reply(c, b"f2")
            c.close()
            return out

        first, last = await self.in_thread(run)
        self.assertEqual(answered, [True, True])
        self.assertEqual(first, b"* 1 FETCH (BODY[] {%d}\r\n%s)\r\nf1 OK FETCH completed\r\n"
                         % (len(self.messages[0]), self.messages[0]))
        self.assertIn(self.messages[5], last)

    async def test_whole_message_bytes(self) -> None:
        def run():
            c = self.session()
            c.send(b"f1 FETCH 1 BODY.PEEK[]\r\nf2 FETCH 2 BODY.PEEK[]\r\n"
                   b"u1 UID FETCH 6 BODY.PEEK[]<1.4>\r\n")
            out = reply(c, b"f1"), reply(c, b"f2"), reply(c, b"u1")
            c.close()
            return out

        first, nul, partial = await self.in_thread(run)
        message = self.messages[0]
        self.assertEqual(first, b"* 1 FETCH (BODY[] {%d}\r\n%s)\r\nf1 OK FETCH completed\r\n"
                         % (len(message), message))
        # A NUL cannot be sent in a literal: 0x80 stands for it.
        self.assertIn(b"before\x80after", nul)
        self.assertNotIn(b"\0", nul)
        self.assertTrue(partial.startswith(b"* 6 FETCH (UID 6 BODY[]<1> {4}\r\nrom:)\r\n"),
                        partial)

    async def test_body_without_peek_sets_seen(self) -> None:
        def run():
            c = self.session()
            out = {}
            for tag, line in ((b"f1", b"FETCH 1 BODY[]"), (b"f2", b"FETCH 1 BODY[]"),
                              (b"f3", b"UID FETCH 2 RFC822"), (b"f4", b"FETCH 3 BODY[]<0.5>"),
                              (b"f5", b"FETCH 6 BODY.PEEK[]"),
                              (b"f6", b"FETCH 1:6 FLAGS")):
                c.send(tag + b" " + line + b"\r\n")
                out[tag] = reply(c, tag)
            c.close()
            return out

        out = await self.in_thread(run)
        # RFC 9051 section 6.4.5: the FLAGS follow the newly set \Seen.
        self.assertIn(b" FLAGS (\\Seen \\Recent))\r\nf1 OK", out[b"f1"])
        self.assertNotIn(b"FLAGS", out[b"f2"])  # \Seen already: nothing new
        self.assertIn(b"* 2 FETCH (UID 2 RFC822 {", out[b"f3"])
        self.assertIn(b"FLAGS (\\Seen \\Recent)", out[b"f3"])
        self.assertIn(b" FLAGS (\\Seen \\Recent))\r\nf4 OK", out[b"f4"])
        flags = out[b"f6"]
        for n in (1, 2, 3, 5):
            self.assertIn(b"* %d FETCH (FLAGS (\\Seen \\Recent))" % n, flags)
        self.assertIn(b"* 6 FETCH (FLAGS (\\Recent))", flags)

    async def test_examine_sets_no_seen(self) -> None:
        def run():
            c = self.session(b"EXAMINE")
            c.send(b"f1 FETCH 1 BODY[]\r\nf2 FETCH 1 RFC822\r\nf3 FETCH 1 FLAGS\r\n")
            out = reply(c, b"f1"), reply(c, b"f2"), reply(c, b"f3")
            c.close()
            return out

        first, second, flags = await self.in_thread(run)
        message = self.messages[0]
        self.assertEqual(first, b"* 1 FETCH (BODY[] {%d}\r\n%s)\r\nf1 OK FETCH completed\r\n"
                         % (len(message), message))
        self.assertTrue(second.startswith(b"* 1 FETCH (RFC822 {%d}\r\n" % len(message)))
        self.assertTrue(flags.startswith(b"* 1 FETCH (FLAGS ("), flags)
        self.assertNotIn(b"\\Seen", flags)

    async def test_pipelined_downloads(self) -> None:
        # Small and large contents read ahead, the largest not.
        order = [1, 3, 2, 4, 6, 5, 3, 1, 6, 4, 2, 2, 5, 3]

        def run():
            c = self.session()
            c.send(b"".join(b"p%d FETCH %d BODY.PEEK[]\r\n" % (i, n)
                            for i, n in enumerate(order)))
            out = [reply(c, b"p%d" % i) for i in range(len(order))]
            c.close()
            return out

        out = await self.in_thread(run)
        for i, (n, text) in enumerate(zip(order, out)):
            message = self.messages[n - 1].replace(b"\0", b"\x80")
            self.assertEqual(text, b"* %d FETCH (BODY[] {%d}\r\n%s)\r\np%d OK FETCH completed\r\n"
                             % (n, len(message), message, i), (i, n))

    async def test_invalid_and_absent_numbers(self) -> None:
        def run():
            c = self.session()
            out = []
            for tag, line in ((b"b1", b"FETCH 7 BODY.PEEK[]"), (b"u1", b"UID FETCH 99 BODY[]"),
                              (b"s1", b"FETCH * BODY.PEEK[]<0.4>")):
                c.send(tag + b" " + line + b"\r\n")
                out.append(reply(c, tag))
            c.close()
            return out

        bad, absent, star = await self.in_thread(run)
        self.assertTrue(bad.startswith(b"b1 BAD "), bad)
        self.assertEqual(absent, b"u1 OK FETCH completed\r\n")
        self.assertEqual(star, b"* 6 FETCH (BODY[]<0> {4}\r\nFrom)\r\ns1 OK FETCH completed\r\n")


def test_whole_content_shapes() -> None:
    whole = F.whole_content([FetchAttr("BODY[]", Section(), peek=True)])
    assert whole == F.Whole(b"BODY[]", None, False)
    assert F.whole_content([FetchAttr("BODY[]", Section(), (3, 9))]) == F.Whole(
        b"BODY[]<3>", (3, 9), True)
    assert F.whole_content([FetchAttr("RFC822")]) == F.Whole(b"RFC822", None, True)
    for attrs in ([FetchAttr("BODY[]", Section(text="TEXT"), peek=True)],
                  [FetchAttr("BINARY[]", Section(), peek=True)],
                  [FetchAttr("RFC822.HEADER")],
                  [FetchAttr("FLAGS"), FetchAttr("BODY[]", Section(), peek=True)], []):
        assert F.whole_content(attrs) is None, attrs


def _done(coroutine):
    """The result of a coroutine that never waits (a message held in memory)."""
    try:
        coroutine.send(None)
    except StopIteration as stop:
        return stop.value
    raise AssertionError("the coroutine waited")


class _Message:
    def __init__(self, content: bytes) -> None:
        self.content = content

    async def read(self, offset: int = 0, length: int | None = None) -> bytes:
        return self.content[offset:] if length is None else self.content[offset:offset + length]


def test_render_whole_gives_the_bytes_of_render() -> None:
    when = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
    for content in (b"", b"a", b"Subject: x\r\n\r\nnul \0 here\r\n", b"y" * 70_000):
        meta = MessageMeta(17, frozenset({"\\Seen"}), when, len(content), 41)
        for attr in (FetchAttr("RFC822"), FetchAttr("BODY[]", Section(), peek=True),
                     FetchAttr("BODY[]", Section()), FetchAttr("BODY[]", Section(), (0, 1)),
                     FetchAttr("BODY[]", Section(), (1, 10**6), peek=True),
                     FetchAttr("BODY[]", Section(), (len(content), 3))):
            whole = F.whole_content([attr])
            for uid, modseq in ((False, False), (True, False), (False, True), (True, True)):
                pieces = _done(F.render(5, meta, _Message(content), [attr], uid=uid,
                                        recent=False, modseq=modseq))
                assert all(isinstance(p, bytes) for p in pieces)
                assert F.render_whole(5, meta, content, whole, uid=uid, modseq=modseq) == (
                    b"".join(pieces)), (content[:10], attr, uid, modseq)
