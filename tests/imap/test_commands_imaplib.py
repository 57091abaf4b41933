"""
Every IMAP4rev1 command, end to end over a loopback socket with Python's
imaplib, as a client program would use it.
"""

from __future__ import annotations

import imaplib
import re

from harness import IMAPServerTestCase, on_every_store

MESSAGE = (
    b"From: Alice Liddell <alice@example.org>\r\n"
    b"To: Bob <bob@example.com>\r\n"
    b"Subject: Tea party\r\n"
    b"Date: Mon, 7 Feb 2022 16:20:00 +0000\r\n"
    b"Message-ID: <tea@example.org>\r\n"
    b"\r\n"
    b"Come at four.\r\n"
)


def message(subject: str, body: str = "Hello.", sender: str = "carol@example.net") -> bytes:
    return (f"From: {sender}\r\nTo: alice@example.org\r\nSubject: {subject}\r\n"
            f"Date: Tue, 8 Feb 2022 10:00:00 +0100\r\n\r\n{body}\r\n").encode()


class AnyStateTests(IMAPServerTestCase):
    async def test_capability_before_and_after_login(self) -> None:
        def run():
            c = self.imaplib_client(login=None)
            before = c.capabilities
            c.login("alice", "wonderland")
            typ, data = c.capability()
            c.logout()
            return before, typ, data

        before, typ, data = await self.in_thread(run)
        self.assertIn("IMAP4REV1", before)
        # Loopback: plaintext login is allowed, so no LOGINDISABLED.
        self.assertNotIn("LOGINDISABLED", before)
        self.assertIn("AUTH=PLAIN", before)
        self.assertEqual(typ, "OK")
        caps = data[0].split()
        self.assertIn(b"IDLE", caps)
        self.assertNotIn(b"AUTH=PLAIN", caps)

    async def test_noop_and_logout(self) -> None:
        def run():
            c = self.imaplib_client()
            noop = c.noop()
            bye = c.logout()
            return noop, bye

        noop, bye = await self.in_thread(run)
        self.assertEqual(noop[0], "OK")
        self.assertEqual(bye[0], "BYE")


@on_every_store
class AuthenticationTests(IMAPServerTestCase):
    async def test_login_wrong_password(self) -> None:
        def run():
            c = self.imaplib_client(login=None)
            try:
                c.login("alice", "wrong")
            except imaplib.IMAP4.error as e:
                return str(e)
            finally:
                c.shutdown()

        error = await self.in_thread(run)
        self.assertIn("AUTHENTICATIONFAILED", error)

    async def test_authenticate_plain(self) -> None:
        def run():
            c = self.imaplib_client(login=None)
            typ, _ = c.authenticate("PLAIN", lambda _: b"\0alice\0wonderland")
            typ2, data = c.select("INBOX")
            c.logout()
            return typ, typ2

        self.assertEqual(await self.in_thread(run), ("OK", "OK"))

    async def test_authenticate_plain_bad_password(self) -> None:
        def run():
            c = self.imaplib_client(login=None)
            try:
                c.authenticate("PLAIN", lambda _: b"\0alice\0nope")
            except imaplib.IMAP4.error as e:
                return str(e)
            finally:
                c.shutdown()

        self.assertIn("AUTHENTICATIONFAILED", await self.in_thread(run))

    async def test_users_are_separated(self) -> None:
        def run():
            a = self.imaplib_client("alice")
            a.create("Private")
            a.append("Private", None, None, MESSAGE)
            a.logout()
            b = self.imaplib_client("bob")
            listing = b.list()
            status = b.status("Private", "(MESSAGES)")
            b.logout()
            return listing, status

        listing, status = await self.in_thread(run)
        self.assertNotIn(b"Private", b"".join(x for x in listing[1] if x))
        self.assertEqual(status[0], "NO")


@on_every_store
class MailboxTests(IMAPServerTestCase):
    async def test_create_list_rename_delete(self) -> None:
        def run():
            c = self.imaplib_client()
            results = {}
            results["create"] = c.create("Work/Projects/Tea")
            results["list"] = c.list()
            results["list_percent"] = c.list('""', "%")
            results["list_ref"] = c.list("Work/", "%")
            results["exists"] = c.create("Work")
            results["rename"] = c.rename("Work", "Job")
            results["list_after"] = c.list('""', "*")
            results["delete_parent"] = c.delete("Job")
            results["list_noselect"] = c.list('""', "Job")
            results["delete_again"] = c.delete("Job")
            results["delete_inbox"] = c.delete("INBOX")
            results["delete_missing"] = c.delete("Nope")
            results["delimiter"] = c.list('""', '""')
            c.logout()
            return results

        r = await self.in_thread(run)
        self.assertEqual(r["create"][0], "OK")
        names = [line.decode() for line in r["list"][1]]
        self.assertTrue(any(n.endswith(' "Work/Projects/Tea"') or n.endswith(" Work/Projects/Tea")
                            for n in names), names)
        self.assertTrue(any("INBOX" in n for n in names))
        percent = b" ".join(r["list_percent"][1])
        self.assertIn(b"Work", percent)
        self.assertNotIn(b"Work/Projects", percent)
        self.assertIn(b"\\HasChildren", percent)
        self.assertIn(b"Work/Projects", b" ".join(r["list_ref"][1]))
        self.assertEqual(r["exists"][0], "NO")
        self.assertIn(b"ALREADYEXISTS", r["exists"][1][0])
        self.assertEqual(r["rename"][0], "OK")
        after = b" ".join(r["list_after"][1])
        self.assertIn(b"Job/Projects/Tea", after)
        self.assertNotIn(b"Work", after)
        self.assertEqual(r["delete_parent"][0], "OK")
        self.assertIn(b"\\Noselect", r["list_noselect"][1][0])
        self.assertEqual(r["delete_again"][0], "NO")
        self.assertEqual(r["delete_inbox"][0], "NO")
        self.assertEqual(r["delete_missing"][0], "NO")
        self.assertEqual(r["delimiter"][1][0], b'(\\Noselect) "/" ""')

    async def test_rename_inbox_moves_messages(self) -> None:
        def run():
            c = self.imaplib_client()
            c.append("INBOX", None, None, MESSAGE)
            c.rename("INBOX", "Old")
            inbox = c.status("INBOX", "(MESSAGES)")
            old = c.status("Old", "(MESSAGES)")
            c.logout()
            return inbox, old

        inbox, old = await self.in_thread(run)
        self.assertIn(b"(MESSAGES 0)", inbox[1][0])
        self.assertIn(b"(MESSAGES 1)", old[1][0])

    async def test_subscribe_lsub(self) -> None:
        def run():
            c = self.imaplib_client()
            c.create("News/Tech")
            c.subscribe("News/Tech")
            lsub = c.lsub('""', "*")
            lsub_pct = c.lsub('""', "%")
            c.unsubscribe("News/Tech")
            empty = c.lsub('""', "*")
            c.logout()
            return lsub, lsub_pct, empty

        lsub, pct, empty = await self.in_thread(run)
        self.assertIn(b"News/Tech", lsub[1][0])
        # RFC 3501 6.3.9: the unsubscribed parent shows as \Noselect under %.
        self.assertEqual(pct[1][0], b'(\\Noselect) "/" News')
        self.assertEqual(empty[1], [None])

    async def test_status(self) -> None:
        def run():
            c = self.imaplib_client()
            c.append("INBOX", "(\\Seen)", None, MESSAGE)
            c.append("INBOX", None, None, MESSAGE)
            st = c.status("INBOX", "(MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN)")
            c.logout()
            return st

        typ, data = await self.in_thread(run)
        self.assertEqual(typ, "OK")
        m = re.search(rb"MESSAGES (\d+) RECENT (\d+) UIDNEXT (\d+) UIDVALIDITY (\d+) UNSEEN (\d+)",
                      data[0])
        self.assertIsNotNone(m, data)
        self.assertEqual((m.group(1), m.group(2), m.group(3), m.group(5)), (b"2", b"2", b"3", b"1"))

    async def test_unicode_mailbox_names_use_modified_utf7(self) -> None:
        def run():
            c = self.imaplib_client()
            c.create("&ZeVnLIqe-")
            listing = c.list('""', "*")
            c.logout()
            return listing

        listing = await self.in_thread(run)
        self.assertIn(b"&ZeVnLIqe-", b" ".join(listing[1]))
        store = await self.backend.open_store("alice")
        names = [i.name for i in await store.list_mailboxes()]
        self.assertIn("日本語", names)


@on_every_store
class AppendSelectTests(IMAPServerTestCase):
    async def test_append_with_flags_and_date_then_select(self) -> None:
        def run():
            c = self.imaplib_client()
            r = {}
            r["append"] = c.append("INBOX", "(\\Flagged $Important)",
                                   imaplib.Time2Internaldate(1644250800), MESSAGE)
            r["select"] = c.select("INBOX")
            r["untagged"] = dict(c.untagged_responses)
            r["fetch"] = c.fetch("1", "(FLAGS INTERNALDATE RFC822.SIZE UID)")
            r["missing"] = c.append("Nowhere", None, None, MESSAGE)
            c.logout()
            return r

        r = await self.in_thread(run)
        self.assertEqual(r["append"][0], "OK")
        self.assertRegex(r["append"][1][0], rb"\[APPENDUID \d+ 1\]")
        self.assertEqual(r["select"], ("OK", [b"1"]))
        fetched = r["fetch"][1][0]
        self.assertIn(b"\\Flagged", fetched)
        self.assertIn(b"$Important", fetched)
        self.assertIn(b"\\Recent", fetched)
        self.assertIn(b"RFC822.SIZE %d" % len(MESSAGE), fetched)
        self.assertIn(b"UID 1", fetched)
        self.assertEqual(r["missing"][0], "NO")
        self.assertIn(b"TRYCREATE", r["missing"][1][0])

    async def test_examine_is_read_only(self) -> None:
        def run():
            c = self.imaplib_client()
            c.append("INBOX", None, None, MESSAGE)
            typ, _ = c.select("INBOX", readonly=True)
            readonly = list(c.untagged_responses.get("READ-ONLY", []))
            store = c._simple_command("STORE", "1", "+FLAGS", "(\\Seen)")
            fetch = c.fetch("1", "(BODY[])")
            flags = c.fetch("1", "(FLAGS)")
            c.logout()
            return readonly, store, flags

        readonly, store, flags = await self.in_thread(run)
        self.assertEqual(readonly, [b""])
        self.assertEqual(store[0], "NO")
        # EXAMINE must not set \Seen implicitly, nor claim \Recent.
        self.assertNotIn(b"\\Seen", flags[1][0])


@on_every_store
class FetchTests(IMAPServerTestCase):
    async def setUp(self) -> None:
        await super().setUp()
        self.multipart = (
            b"From: a@example.org\r\nSubject: parts\r\nMIME-Version: 1.0\r\n"
            b'Content-Type: multipart/mixed; boundary="xyz"\r\n\r\n'
            b"preamble\r\n--xyz\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            b"first part\r\n--xyz\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Transfer-Encoding: base64\r\n"
            b'Content-Disposition: attachment; filename="a.bin"\r\n\r\n'
            b"AAECAwQ=\r\n--xyz--\r\n"
        )

        def fill():
            c = self.imaplib_client()
            c.append("INBOX", None, None, MESSAGE)
            c.append("INBOX", None, None, self.multipart)
            c.logout()

        await self.in_thread(fill)

    async def test_every_fetch_item(self) -> None:
        def run():
            c = self.imaplib_client()
            c.select("INBOX")
            r = {}
            for name, items in [
                ("all", "ALL"), ("fast", "FAST"), ("full", "FULL"),
                ("envelope", "ENVELOPE"), ("bodystructure", "BODYSTRUCTURE"),
                ("body", "BODY"), ("rfc822", "RFC822"),
                ("header", "RFC822.HEADER"), ("text", "RFC822.TEXT"),
                ("peek_fields", "BODY.PEEK[HEADER.FIELDS (SUBJECT)]"),
                ("peek_not", "BODY.PEEK[HEADER.FIELDS.NOT (SUBJECT FROM TO DATE MESSAGE-ID)]"),
                ("partial", "BODY.PEEK[]<0.4>"),
                ("part1", "BODY.PEEK[1]"), ("part2mime", "BODY.PEEK[2.MIME]"),
                ("binary", "BINARY.PEEK[2]"), ("binsize", "BINARY.SIZE[2]"),
            ]:
                r[name] = c.fetch("2" if name in ("part2mime", "binary", "binsize") else "1", items)
            r["part1_multi"] = c.fetch("2", "BODY.PEEK[1]")
            r["flags_after"] = c.fetch("1", "FLAGS")
            c.logout()
            return r

        r = await self.in_thread(run)
        for name, (typ, _) in r.items():
            self.assertEqual(typ, "OK", name)
        self.assertIn(b"ENVELOPE", r["all"][1][0])
        self.assertIn(b"RFC822.SIZE", r["fast"][1][0])
        self.assertIn(b"BODY (", r["full"][1][0])
        self.assertIn(b'"Tea party"', r["envelope"][1][0])
        self.assertIn(b'("Alice Liddell" NIL "alice" "example.org")', r["envelope"][1][0])
        self.assertIn(b'"TEXT" "PLAIN"', r["bodystructure"][1][0])
        self.assertEqual(r["rfc822"][1][0][1], MESSAGE)
        self.assertEqual(r["header"][1][0][1], MESSAGE.split(b"\r\n\r\n")[0] + b"\r\n\r\n")
        self.assertEqual(r["text"][1][0][1], b"Come at four.\r\n")
        self.assertEqual(r["peek_fields"][1][0][1], b"Subject: Tea party\r\n\r\n")
        self.assertEqual(r["peek_not"][1][0][1], b"\r\n")
        self.assertIn(b"BODY[]<0>", r["partial"][1][0][0])
        self.assertEqual(r["partial"][1][0][1], b"From")
        self.assertEqual(r["part1"][1][0][1], b"Come at four.\r\n")
        self.assertEqual(r["part1_multi"][1][0][1], b"first part")
        self.assertIn(b"application/octet-stream", r["part2mime"][1][0][1])
        self.assertEqual(r["binary"][1][0][1], b"\x00\x01\x02\x03\x04")
        self.assertIn(b"BINARY.SIZE[2] 5", r["binsize"][1][0])
        # RFC822 and RFC822.TEXT set \Seen; the PEEKs and RFC822.HEADER do not
        # matter any more once it is set.
        self.assertIn(b"\\Seen", r["flags_after"][1][0])

    async def test_peek_does_not_set_seen(self) -> None:
        def run():
            c = self.imaplib_client()
            c.select("INBOX")
            c.fetch("2", "(BODY.PEEK[] RFC822.HEADER)")
            peeked = c.fetch("2", "FLAGS")
            read = c.fetch("2", "BODY[TEXT]")
            after = c.fetch("2", "FLAGS")
            c.logout()
            return peeked, read, after

        peeked, read, after = await self.in_thread(run)
        self.assertNotIn(b"\\Seen", peeked[1][0])
        self.assertIn(b"FLAGS (\\Seen", b"".join(
            x if isinstance(x, bytes) else x[0] for x in read[1]))
        self.assertIn(b"\\Seen", after[1][0])

    async def test_uid_fetch_includes_uid(self) -> None:
        def run():
            c = self.imaplib_client()
            c.select("INBOX")
            r = c.uid("FETCH", "1:*", "(FLAGS)")
            c.logout()
            return r

        typ, data = await self.in_thread(run)
        self.assertEqual(len(data), 2)
        self.assertIn(b"UID 1", data[0])
        self.assertIn(b"UID 2", data[1])


@on_every_store
class StoreSearchCopyTests(IMAPServerTestCase):
    async def setUp(self) -> None:
        await super().setUp()

        def fill():
            c = self.imaplib_client()
            for i in range(1, 6):
                c.append("INBOX", None, None, message(f"note {i}", f"body number {i}"))
            c.append("INBOX", None, None, MESSAGE)
            c.logout()

        await self.in_thread(fill)

    async def test_store_modes(self) -> None:
        def run():
            c = self.imaplib_client()
            c.select("INBOX")
            r = {}
            r["add"] = c.store("1:2", "+FLAGS", "(\\Flagged $Todo)")
            r["remove"] = c.store("1", "-FLAGS", "(\\Flagged)")
            r["set"] = c.store("3", "FLAGS", "(\\Answered)")
            r["silent"] = c.store("4", "+FLAGS.SILENT", "(\\Draft)")
            r["check"] = c.fetch("1:4", "FLAGS")
            for name, args in (("bad_seq", ("99", "+FLAGS", "(\\Seen)")),
                               ("recent", ("1", "+FLAGS", "(\\Recent)"))):
                try:
                    r[name] = c._simple_command("STORE", *args)
                except imaplib.IMAP4.error as e:
                    r[name] = ("BAD", str(e))
            c.logout()
            return r

        r = await self.in_thread(run)
        self.assertEqual(r["add"][1], [b"1 (FLAGS (\\Flagged \\Recent $Todo))",
                                       b"2 (FLAGS (\\Flagged \\Recent $Todo))"])
        self.assertEqual(r["remove"][1], [b"1 (FLAGS (\\Recent $Todo))"])
        self.assertEqual(r["set"][1], [b"3 (FLAGS (\\Answered \\Recent))"])
        self.assertEqual(r["silent"][1], [None])
        self.assertIn(b"4 (FLAGS (\\Draft \\Recent))", r["check"][1])
        self.assertEqual(r["bad_seq"][0], "BAD")
        self.assertEqual(r["recent"][0], "BAD")

    async def test_search_keys(self) -> None:
        def run():
            c = self.imaplib_client()
            c.select("INBOX")
            c.store("2", "+FLAGS", "(\\Seen)")
            c.store("3", "+FLAGS", "(\\Deleted)")
            c.store("4", "+FLAGS", "(\\Answered \\Draft \\Flagged $Work)")
            r = {"check": c.check()}
            for name, crit in [
                ("all", ["ALL"]), ("seen", ["SEEN"]), ("unseen", ["UNSEEN"]),
                ("deleted", ["DELETED"]), ("subject", ["SUBJECT", "note"]),
                ("from", ["FROM", "alice"]), ("body", ["BODY", "number 4"]),
                ("text", ["TEXT", "four"]), ("or", ["OR", "SEEN", "DELETED"]),
                ("not", ["NOT", "SUBJECT", "note"]), ("larger", ["LARGER", "1"]),
                ("senton", ["SENTON", "7-Feb-2022"]), ("sentsince", ["SENTSINCE", "8-Feb-2022"]),
                ("seq", ["2:4", "UNDELETED"]), ("uid", ["UID", "5:*"]),
                ("header", ["HEADER", "Message-ID", "tea@"]), ("nested", ["(OR", "1", "2)", "SEEN"]),
                ("new", ["NEW"]), ("since", ["SINCE", "1-Jan-2000"]),
                ("answered", ["ANSWERED"]), ("unanswered", ["UNANSWERED"]),
                ("draft", ["DRAFT"]), ("undraft", ["UNDRAFT"]),
                ("flagged", ["FLAGGED"]), ("unflagged", ["UNFLAGGED"]),
                ("keyword", ["KEYWORD", "$work"]), ("unkeyword", ["UNKEYWORD", "$Work"]),
                ("undeleted", ["UNDELETED"]), ("recent", ["RECENT"]), ("old", ["OLD"]),
                ("to", ["TO", "bob@example.com"]), ("cc", ["CC", "nobody"]),
                ("bcc", ["BCC", "nobody"]), ("smaller", ["SMALLER", "10"]),
                ("before", ["BEFORE", "1-Jan-2000"]), ("on", ["ON", "1-Jan-2000"]),
                ("sentbefore", ["SENTBEFORE", "8-Feb-2022"]),
                ("all_keys", ["NOT", "DELETED", "SEEN"]),
            ]:
                r[name] = c.search(None, *crit)
            r["uid_search"] = c.uid("SEARCH", "SUBJECT", "note 5")
            r["charset"] = c.search("UTF-8", "SUBJECT", "note")
            r["badcharset"] = c._simple_command("SEARCH", "CHARSET", "KOI8-R", "ALL")
            c.logout()
            return r

        r = await self.in_thread(run)
        expect = {
            "all": b"1 2 3 4 5 6", "seen": b"2", "unseen": b"1 3 4 5 6", "deleted": b"3",
            "subject": b"1 2 3 4 5", "from": b"6", "body": b"4", "text": b"6",
            "or": b"2 3", "not": b"6", "larger": b"1 2 3 4 5 6", "senton": b"6",
            "sentsince": b"1 2 3 4 5", "seq": b"2 4", "uid": b"5 6", "header": b"6",
            "nested": b"2", "new": b"1 3 4 5 6", "since": b"1 2 3 4 5 6",
            "uid_search": b"5", "charset": b"1 2 3 4 5",
            "answered": b"4", "unanswered": b"1 2 3 5 6", "draft": b"4",
            "undraft": b"1 2 3 5 6", "flagged": b"4", "unflagged": b"1 2 3 5 6",
            "keyword": b"4", "unkeyword": b"1 2 3 5 6", "undeleted": b"1 2 4 5 6",
            "recent": b"1 2 3 4 5 6", "old": b"", "to": b"6", "cc": b"", "bcc": b"",
            "smaller": b"", "before": b"", "on": b"", "sentbefore": b"6", "all_keys": b"2",
        }
        self.assertEqual(r["check"][0], "OK")
        for name, value in expect.items():
            self.assertEqual(r[name], ("OK", [value]), name)
        self.assertEqual(r["badcharset"][0], "NO")

    async def test_copy_move_expunge(self) -> None:
        def run():
            c = self.imaplib_client()
            c.create("Archive")
            c.select("INBOX")
            r = {}
            r["copy"] = c.copy("1:2", "Archive")
            r["copy_missing"] = c.copy("1", "Missing")
            r["uid_copy"] = c._simple_command("UID", "COPY", "3", "Archive")
            r["move"] = c._simple_command("MOVE", "4", "Archive")
            r["move_untagged"] = c.untagged_responses.pop("EXPUNGE", [])
            c.store("1", "+FLAGS", "(\\Deleted)")
            c.store("3", "+FLAGS", "(\\Deleted)")
            r["expunge"] = c.expunge()
            r["count"] = c.search(None, "ALL")
            r["archive"] = c.status("Archive", "(MESSAGES)")
            c.store("1", "+FLAGS", "(\\Deleted)")
            r["uid_expunge"] = c.uid("EXPUNGE", "999")
            r["close"] = c.close()
            r["after_close"] = c.status("INBOX", "(MESSAGES)")
            c.logout()
            return r

        r = await self.in_thread(run)
        self.assertEqual(r["copy"][0], "OK")
        self.assertRegex(r["copy"][1][0], rb"\[COPYUID \d+ 1:2 1:2\]")
        self.assertEqual(r["copy_missing"][0], "NO")
        self.assertIn(b"TRYCREATE", r["copy_missing"][1][0])
        self.assertRegex(r["uid_copy"][1][0], rb"\[COPYUID \d+ 3 3\]")
        self.assertEqual(r["move"][0], "OK")
        self.assertEqual(r["move_untagged"], [b"4"])
        # Messages 1 and 3 expunged; the second EXPUNGE is renumbered (RFC 3501 7.4.1).
        self.assertEqual(r["expunge"], ("OK", [b"1", b"2"]))
        self.assertEqual(r["count"], ("OK", [b"1 2 3"]))
        self.assertIn(b"(MESSAGES 4)", r["archive"][1][0])
        self.assertEqual(r["uid_expunge"][0], "OK")
        self.assertEqual(r["close"][0], "OK")
        self.assertIn(b"(MESSAGES 2)", r["after_close"][1][0])
