"""
Pipelined FETCH commands: the messages of those queued behind the running
one are opened ahead (imap/readahead.py); every answer must still be what
the command would have given on its own, in order, with current flags.
"""

from __future__ import annotations

import re

from harness import IMAPServerTestCase, on_every_store
from tests_messages import simple_message

from twisted_mailhub.model import AppendRequest

COUNT = 40


def bodies(text: bytes) -> dict[int, bytes]:
    """Sequence number -> BODY[] literal of each untagged FETCH in C{text}."""
    found = {}
    for match in re.finditer(rb"\* (\d+) FETCH \(.*?BODY\[\] \{(\d+)\}\r\n", text):
        start = match.end()
        found[int(match.group(1))] = text[start:start + int(match.group(2))]
    return found


@on_every_store
class PipelinedFetchTests(IMAPServerTestCase):
    async def setUp(self) -> None:
        await super().setUp()
        store = await self.backend.open_store("alice")
        inbox = await store.get_mailbox("INBOX")
        self.messages = [simple_message(f"pipelined {n}") for n in range(1, COUNT + 1)]
        await inbox.append([AppendRequest(m) for m in self.messages])

    def session(self):
        c = self.raw()
        c.line()
        c.command(b"a1 LOGIN alice wonderland")
        c.command(b"a2 SELECT INBOX")
        return c

    async def test_answers_in_order_with_the_right_bodies(self) -> None:
        order = [7, 3, 40, 1, 22, 22, 9, 31, 2, 18, 5, 39, 12]

        def run():
            c = self.session()
            c.send(b"".join(b"f%d FETCH %d BODY.PEEK[]\r\n" % (i, n) for i, n in enumerate(order)))
            out = [c.until_tagged(b"f%d" % i) for i in range(len(order))]
            c.close()
            return out

        out = await self.in_thread(run)
        for i, (n, lines) in enumerate(zip(order, out)):
            text = b"".join(lines)
            self.assertEqual(bodies(text), {n: self.messages[n - 1]}, (i, n))
            self.assertTrue(lines[-1].startswith(b"f%d OK " % i), lines[-1])

    async def test_a_store_between_fetches_is_seen_by_the_next(self) -> None:
        def run():
            c = self.session()
            c.send(b"f1 FETCH 4 (FLAGS BODY.PEEK[])\r\n"
                   b"f2 FETCH 5 (FLAGS BODY.PEEK[])\r\n"
                   b"s1 STORE 6 +FLAGS.SILENT (\\Flagged)\r\n"
                   b"f3 FETCH 6 (FLAGS BODY.PEEK[])\r\n"
                   b"f4 UID FETCH 7 (FLAGS BODY[])\r\n"
                   b"f5 FETCH 7 (FLAGS)\r\n")
            out = {tag: b"".join(c.until_tagged(tag)) for tag in (b"f1", b"f2", b"s1", b"f3",
                                                                   b"f4", b"f5")}
            c.close()
            return out

        out = await self.in_thread(run)
        self.assertIn(b"* 6 FETCH (FLAGS (\\Flagged \\Recent) BODY[] {", out[b"f3"])
        self.assertEqual(bodies(out[b"f3"]), {6: self.messages[5]})
        # BODY[] (no PEEK) sets \Seen, and the client is told.
        self.assertIn(b"\\Seen", out[b"f4"])
        self.assertIn(b"* 7 FETCH (FLAGS (\\Seen \\Recent))", out[b"f5"])

    async def test_a_message_expunged_meanwhile_is_left_out(self) -> None:
        def run():
            c = self.session()
            other = self.imaplib_client()
            other.select("INBOX")
            # The first FETCH is large, so that the ones behind it are
            # parsed and their messages opened while it is being sent.
            c.send(b"f1 FETCH 1:30 BODY.PEEK[]\r\nf2 FETCH 35 BODY.PEEK[]\r\n"
                   b"f3 FETCH 36 BODY.PEEK[]\r\n")
            first = c.until_tagged(b"f1")
            other.store("36", "+FLAGS", "(\\Deleted)")
            other.expunge()
            other.logout()
            second, third = c.until_tagged(b"f2"), c.until_tagged(b"f3")
            after = c.command(b"n1 NOOP")
            c.close()
            return first, second, third, after

        first, second, third, after = await self.in_thread(run)
        self.assertEqual(len(bodies(b"".join(first))), 30)
        self.assertEqual(bodies(b"".join(second)), {35: self.messages[34]})
        # Message 36 went while it waited: it is either sent whole (opened
        # before it went) or left out with EXPUNGEISSUED; never garbled.
        got = bodies(b"".join(third))
        self.assertIn(got, ({36: self.messages[35]}, {}))
        if not got:
            self.assertIn(b"EXPUNGEISSUED", third[-1])
        self.assertIn(b"* 36 EXPUNGE\r\n", b"".join(after))


@on_every_store
class PipelinedStatusTests(IMAPServerTestCase):
    async def setUp(self) -> None:
        await super().setUp()
        store = await self.backend.open_store("alice")
        self.names = [f"Box{n}" for n in range(12)]
        for n, name in enumerate(self.names):
            await store.create_mailbox(name)
            box = await store.get_mailbox(name)
            await box.append([AppendRequest(simple_message(f"{name} {i}")) for i in range(n)])

    async def test_each_answer_is_its_own_in_order(self) -> None:
        message = simple_message("appended in the pipeline")

        def run():
            c = self.raw()
            c.line()
            c.command(b"a1 LOGIN alice wonderland")
            lines = [b"s%d STATUS %s (MESSAGES UIDNEXT)\r\n" % (n, name.encode())
                     for n, name in enumerate(self.names)]
            c.send(b"".join(lines[:6]) + b"x1 STATUS Nowhere (MESSAGES)\r\n"
                   + b"".join(lines[6:])
                   + b"p1 APPEND Box3 {%d+}\r\n%s\r\n" % (len(message), message)
                   + b"s99 STATUS Box3 (MESSAGES)\r\n")
            out = {}
            for tag in [b"s%d" % n for n in range(6)] + [b"x1"] + [
                    b"s%d" % n for n in range(6, 12)] + [b"p1", b"s99"]:
                out[tag] = c.until_tagged(tag)
            c.close()
            return out

        out = await self.in_thread(run)
        for n, name in enumerate(self.names):
            self.assertEqual(out[b"s%d" % n][0], b"* STATUS %s (MESSAGES %d UIDNEXT %d)\r\n" % (
                name.encode(), n, n + 1))
        self.assertTrue(out[b"x1"][-1].startswith(b"x1 NO "), out[b"x1"])
        # The STATUS behind the APPEND counts the new message.
        self.assertEqual(out[b"s99"][0], b"* STATUS Box3 (MESSAGES 4)\r\n")

    async def test_the_first_status_of_a_run_is_asked_with_the_others(self) -> None:
        from twisted_mailhub.interfaces import IBulkStatusQuery, IStatusQuery

        store_class = type(await self.backend.open_store("alice"))
        asked: list[list[str]] = []
        for method in ("mailbox_status", "mailbox_statuses"):
            original = getattr(store_class, method, None)
            if original is None:
                continue

            def counting(store, names, _original=original, _method=method):
                asked.append([names] if _method == "mailbox_status" else list(names))
                return _original(store, names)

            self.patch(store_class, method, counting)

        def run():
            c = self.raw()
            c.line()
            c.command(b"a1 LOGIN alice wonderland")
            c.send(b"".join(b"s%d STATUS %s (MESSAGES)\r\n" % (n, name.encode())
                            for n, name in enumerate(self.names)))
            out = [c.until_tagged(b"s%d" % n) for n in range(len(self.names))]
            c.close()
            return out

        out = await self.in_thread(run)
        for n, name in enumerate(self.names):
            self.assertEqual(out[n][0], b"* STATUS %s (MESSAGES %d)\r\n" % (name.encode(), n))
        if IBulkStatusQuery.implementedBy(store_class):
            # One store call (one statement in the SQL store) for the run.
            self.assertEqual(asked, [self.names])
        elif IStatusQuery.implementedBy(store_class):
            self.assertEqual(sorted(sum(asked, [])), sorted(self.names))
