"""
The delivery core LMTP and ``mailhub deliver`` share: which user and
folder an address names, the trace fields, and the append into the store.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from twisted.trial import unittest

from twisted_mailhub.auth.directory import UserDirectory
from twisted_mailhub.backends.memory import MemoryBackend
from twisted_mailhub.delivery import (
    Destination,
    LocalDelivery,
    Outcome,
    received_field,
    to_crlf,
    without_return_path,
)

WHEN = datetime(2026, 3, 1, 9, 30, 5, tzinfo=timezone(timedelta(hours=1)))


def delivery(users: set[str], separators: str = "+") -> LocalDelivery:
    return LocalDelivery(MemoryBackend(), UserDirectory([{u: "" for u in users}.get]),
                         detail_separators=separators)


class AddressTests(unittest.TestCase):
    def test_split_detail(self) -> None:
        plus = delivery(set())
        self.assertEqual(plus.split_detail("alice+lists"), ("alice", "lists"))
        self.assertEqual(plus.split_detail("alice+lists+python"), ("alice", "lists+python"))
        self.assertEqual(plus.split_detail("alice"), ("alice", None))
        # A separator first or last is no detail.
        self.assertEqual(plus.split_detail("+alice"), ("+alice", None))
        self.assertEqual(plus.split_detail("alice+"), ("alice", None))
        # Like Postfix's recipient_delimiter, any of several characters.
        both = delivery(set(), "+-")
        self.assertEqual(both.split_detail("alice-lists"), ("alice", "lists"))
        self.assertEqual(both.split_detail("alice-a+b"), ("alice", "a+b"))
        self.assertEqual(delivery(set(), "").split_detail("alice+lists"), ("alice+lists", None))

    async def test_find_tries_the_whole_address_then_the_local_part(self) -> None:
        d = delivery({"alice", "bob@example.org", "a+b"})
        self.assertEqual(await d.find("alice", "example.org"), Destination("alice"))
        self.assertEqual(await d.find("alice+Lists", "example.org"),
                         Destination("alice", "Lists"))
        self.assertEqual(await d.find("bob", "example.org"), Destination("bob@example.org"))
        self.assertEqual(await d.find("bob+x", "example.org"),
                         Destination("bob@example.org", "x"))
        # A user whose name holds the separator is found as it is.
        self.assertEqual(await d.find("a+b", "example.org"), Destination("a+b"))
        self.assertIsNone(await d.find("bob", "other.example"))
        self.assertIsNone(await d.find("carol", None))
        self.assertEqual(await d.find("alice", None), Destination("alice"))

    async def test_detail_off(self) -> None:
        d = delivery({"alice"}, "")
        self.assertIsNone(await d.find("alice+lists", "example.org"))


class TraceTests(unittest.TestCase):
    def test_received_field_for_lmtp(self) -> None:
        self.assertEqual(
            received_field(by="mail.example", when=WHEN, from_name="mx.example",
                           from_info="[127.0.0.1]", protocol="LMTP", id="abc123",
                           recipient="alice@example.org", comment="twisted_mailhub"),
            b"Received: from mx.example ([127.0.0.1])\r\n"
            b"\tby mail.example (twisted_mailhub) with LMTP id abc123\r\n"
            b"\tfor <alice@example.org>; Sun, 01 Mar 2026 09:30:05 +0100\r\n")

    def test_received_field_without_from_or_recipient(self) -> None:
        self.assertEqual(
            received_field(by="mail.example", when=WHEN, comment="twisted_mailhub deliver"),
            b"Received: by mail.example (twisted_mailhub deliver);\r\n"
            b"\tSun, 01 Mar 2026 09:30:05 +0100\r\n")

    def test_a_client_name_cannot_break_the_field(self) -> None:
        field = received_field(by="m", when=WHEN, from_name="evil); x\r\nBcc: a",
                               from_info=None)
        first, *continued, last = field.split(b"\r\n")
        self.assertEqual(last, b"")
        self.assertEqual(len(continued), 2)
        self.assertTrue(all(line.startswith(b"\t") for line in continued))
        self.assertIn(b"from evil???x??Bcc:?a\r\n", field)

    def test_return_path_fields_of_the_header_are_removed(self) -> None:
        message = (b"Return-Path: <forged@example>\r\nSubject: x\r\nreturn-path: <a>\r\n"
                   b" folded\r\n\r\nReturn-Path: in the body stays\r\n")
        self.assertEqual(without_return_path(message),
                         b"Subject: x\r\n\r\nReturn-Path: in the body stays\r\n")
        untouched = b"Subject: y\r\n\r\nbody\r\n"
        self.assertIs(without_return_path(untouched), untouched)

    def test_bare_line_feeds_become_crlf(self) -> None:
        self.assertEqual(to_crlf(b"a\nb\r\nc\n"), b"a\r\nb\r\nc\r\n")


class DeliverTests(unittest.TestCase):
    async def read_all(self, d: LocalDelivery, user: str, box: str) -> list[bytes]:
        mailbox = await (await d.backend.open_store(user)).get_mailbox(box)
        return [await (await mailbox.open_message(uid)).read() for uid in await mailbox.uids()]

    async def test_into_the_folder_or_else_the_inbox(self) -> None:
        d = delivery({"alice"})
        store = await d.backend.open_store("alice")
        await store.create_mailbox("Lists")
        into = await d.deliver(Destination("alice", "Lists"), b"Subject: 1\r\n\r\n")
        self.assertEqual((into.outcome, into.mailbox, into.uid), (Outcome.DELIVERED, "Lists", 1))
        elsewhere = await d.deliver(Destination("alice", "Missing"), b"Subject: 2\r\n\r\n")
        self.assertEqual(elsewhere.mailbox, "INBOX")
        bad_name = await d.deliver(Destination("alice", ""), b"Subject: 3\r\n\r\n")
        self.assertEqual(bad_name.mailbox, "INBOX")

    async def test_trace_fields_and_line_ends(self) -> None:
        d = delivery({"alice"})
        received = received_field(by="m", when=WHEN)
        await d.deliver(Destination("alice"), b"Return-Path: <old@x>\nSubject: s\n\nhi\n",
                        sender="new@example.org", received=received)
        [stored] = await self.read_all(d, "alice", "INBOX")
        self.assertEqual(stored, b"Return-Path: <new@example.org>\r\n" + received
                         + b"Subject: s\r\n\r\nhi\r\n")

    async def test_null_sender(self) -> None:
        d = delivery({"alice"})
        await d.deliver(Destination("alice"), b"Subject: bounce\r\n\r\n", sender="")
        [stored] = await self.read_all(d, "alice", "INBOX")
        self.assertTrue(stored.startswith(b"Return-Path: <>\r\nSubject: bounce"))
