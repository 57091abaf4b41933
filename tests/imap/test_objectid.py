"""
OBJECTID (RFC 8474) and SAVEDATE (RFC 8514): the grammar, transcripts
following the RFCs' examples on every store, and imaplib sessions on every
store checking what a caching client relies on -- ids that survive RENAME
and a restart, the same EMAILID after COPY and MOVE, and a copy's own save
date.
"""

from __future__ import annotations

import re
import time
from datetime import date, datetime, timedelta, timezone

from twisted.cred.portal import Portal
from twisted.internet import reactor
from twisted.trial import unittest

from harness import USERS, IMAPServerTestCase, RawClient, on_every_store

from twisted_mailhub import criteria as sk
from twisted_mailhub.auth.checkers import InMemoryChecker
from twisted_mailhub.auth.realm import MailhubRealm
from twisted_mailhub.imap import commands as C
from twisted_mailhub.imap.protocol import IMAPServerFactory

OBJECTID = rb"[A-Za-z0-9_-]{1,255}"


def literal(data: bytes) -> bytes:
    return b"{%d+}\r\n" % len(data) + data


def imap_date(day: date) -> bytes:
    return day.strftime("%d-%b-%Y").encode("ascii")


# The three messages of RFC 8474 section 5.3's example.
MESSAGE_A = (b"Subject: Message A\r\nMessage-ID: <fake.1521475657.54797@example.com>\r\n"
             b"From: a@example.com\r\n\r\nA\r\n")
MESSAGE_B = (b"Subject: Re: Message A\r\nMessage-ID: <fake.1521475657.21213@example.org>\r\n"
             b"References: <fake.1521475657.54797@example.com>\r\nFrom: b@example.org\r\n"
             b"\r\nB\r\n")
MESSAGE_C = (b"Subject: Message C\r\nMessage-ID: <fake.1521475657.60280@example.com>\r\n"
             b"From: c@example.com\r\n\r\nC\r\n")


class GrammarTests(unittest.TestCase):
    def parse(self, line: bytes):
        from twisted_mailhub.imap.parser import CommandParser

        parser = CommandParser()
        parser.receive_data(line + b"\r\n")
        return parser.next_event()

    def test_fetch_items(self) -> None:
        attrs = self.parse(b"a FETCH 1:* (emailid THREADID SaveDate UID)").command.attrs
        self.assertEqual(attrs, (C.FetchAttr("EMAILID"), C.FetchAttr("THREADID"),
                                 C.FetchAttr("SAVEDATE"), C.FetchAttr("UID")))
        self.assertEqual(self.parse(b"a UID FETCH 1 SAVEDATE").command.attrs,
                         (C.FetchAttr("SAVEDATE"),))

    def test_status_item(self) -> None:
        self.assertEqual(self.parse(b"a STATUS foo (mailboxid MESSAGES)").command.items,
                         ("MAILBOXID", "MESSAGES"))

    def test_search_keys(self) -> None:
        def key(text: bytes):
            return self.parse(b"a SEARCH " + text).command.key

        self.assertEqual(key(b"EMAILID M6d99ac3275bb4e"), sk.Identity("6d99ac3275bb4e"))
        # Object ids are case-sensitive (RFC 8474 section 7).
        self.assertEqual(key(b"emailid Mab_C-d"), sk.Identity("ab_C-d"))
        # Not a form this server gives: nothing can match.
        self.assertEqual(key(b"EMAILID T64b478a75b7ea9"), sk.Not(sk.All()))
        self.assertEqual(key(b"EMAILID M"), sk.Not(sk.All()))
        # No THREADID is ever given (section 5.2): SEARCH THREADID matches nothing.
        self.assertEqual(key(b"THREADID T64b478a75b7ea9"), sk.Not(sk.All()))
        self.assertEqual(key(b"SAVEDBEFORE 1-Feb-2019"), sk.Date("saved", "before", date(2019, 2, 1)))
        self.assertEqual(key(b"SAVEDON 28-Dec-2014"), sk.Date("saved", "on", date(2014, 12, 28)))
        self.assertEqual(key(b"savedsince 28-Dec-2014"),
                         sk.Date("saved", "since", date(2014, 12, 28)))
        self.assertEqual(key(b"SAVEDATESUPPORTED UNSEEN"),
                         sk.And((sk.SaveDateKnown(), sk.Flag("\\Seen", False))))
        self.assertEqual(key(b"OR EMAILID Mx EMAILID My"),
                         sk.Or(sk.Identity("x"), sk.Identity("y")))

    def test_bad_search_keys(self) -> None:
        for line, message in [
            (b"a SEARCH EMAILID", "Missing object id"),
            (b"a SEARCH EMAILID (M1)", "Invalid object id"),
            (b"a SEARCH THREADID \"T1\"", "Invalid object id"),
            (b"a SEARCH EMAILID M" + b"x" * 255, "Object id longer than 255 characters"),
            (b"a SEARCH SAVEDON 31-Feb-2019", None),
            (b"a SEARCH SAVEDSINCE", None),
        ]:
            event = self.parse(line)
            self.assertEqual(event.condition, "BAD", line)
            if message is not None:
                self.assertEqual(event.message, message, line)
        # 255 characters is the longest allowed.
        self.assertEqual(self.parse(b"a SEARCH EMAILID M" + b"x" * 254).command.key,
                         sk.Identity("x" * 254))


@on_every_store
class TranscriptTests(IMAPServerTestCase):
    """The examples of RFC 8474 and RFC 8514, byte for byte where ids allow."""

    def session(self) -> RawClient:
        c = self.raw()
        c.line()
        c.command(b"t0 LOGIN alice wonderland")
        return c

    async def test_mailboxid_of_create_status_rename_and_list(self) -> None:
        """RFC 8474 sections 4.1 and 4.3."""

        def run():
            c = self.session()
            out = [c.command(line) for line in (
                b"3 create foo", b"4 create bar", b"5 create foo",
                b"6 status foo (mailboxid)", b"7 status bar (mailboxid)",
                b"8 rename foo renamed", b"9 status renamed (mailboxid)",
                b"10 status bar (mailboxid)",
                b'11 list "" "*" return (status (mailboxid))',
                b"12 select renamed", b"13 examine bar")]
            c.close()
            return out

        out = await self.in_thread(run)
        created = []
        for tag, lines in ((b"3", out[0]), (b"4", out[1])):
            self.assertEqual(len(lines), 1, lines)
            m = re.fullmatch(tag + rb" OK \[MAILBOXID \((" + OBJECTID + rb")\)\] CREATE completed\r\n",
                             lines[0])
            self.assertIsNotNone(m, lines)
            created.append(m.group(1))
        foo, bar = created
        self.assertNotEqual(foo, bar)
        self.assertTrue(foo[:1].isalpha() and bar[:1].isalpha())
        self.assertEqual(out[2], [b"5 NO [ALREADYEXISTS] Mailbox already exists: foo\r\n"])
        self.assertEqual(out[3], [b"* STATUS foo (MAILBOXID (%s))\r\n" % foo,
                                  b"6 OK STATUS completed\r\n"])
        self.assertEqual(out[4], [b"* STATUS bar (MAILBOXID (%s))\r\n" % bar,
                                  b"7 OK STATUS completed\r\n"])
        self.assertEqual(out[5][-1], b"8 OK RENAME completed\r\n")
        # The renamed mailbox keeps its MAILBOXID.
        self.assertEqual(out[6], [b"* STATUS renamed (MAILBOXID (%s))\r\n" % foo,
                                  b"9 OK STATUS completed\r\n"])
        self.assertEqual(out[7], [b"* STATUS bar (MAILBOXID (%s))\r\n" % bar,
                                  b"10 OK STATUS completed\r\n"])
        listing = out[8]
        inbox = re.fullmatch(rb"\* STATUS INBOX \(MAILBOXID \((" + OBJECTID + rb")\)\)\r\n",
                             listing[1])
        self.assertIsNotNone(inbox, listing)
        self.assertEqual(listing[2:], [
            b'* LIST (\\HasNoChildren) "/" bar\r\n',
            b"* STATUS bar (MAILBOXID (%s))\r\n" % bar,
            b'* LIST (\\HasNoChildren) "/" renamed\r\n',
            b"* STATUS renamed (MAILBOXID (%s))\r\n" % foo,
            b"11 OK LIST completed\r\n"])
        self.assertNotIn(inbox.group(1), (foo, bar))
        # Section 4.2: an untagged OK [MAILBOXID] on SELECT and EXAMINE.
        self.assertIn(b"* OK [MAILBOXID (%s)] Ok\r\n" % foo, out[9])
        self.assertEqual(out[9][-1], b"12 OK [READ-WRITE] SELECT completed\r\n")
        self.assertIn(b"* OK [MAILBOXID (%s)] Ok\r\n" % bar, out[10])
        self.assertEqual(out[10][-1], b"13 OK [READ-ONLY] EXAMINE completed\r\n")

    async def test_emailid_threadid_fetch_move_and_search(self) -> None:
        """RFC 8474 sections 5.3 and 6, the example of section 5.3."""

        def run():
            c = self.session()
            c.command(b"4 create foo")
            for tag, message in ((b"5", MESSAGE_A), (b"11", MESSAGE_B), (b"17", MESSAGE_C)):
                c.command(tag + b' append inbox "20-Mar-2018 03:07:37 +1100" ' + literal(message))
            c.command(b"21 select inbox")
            out = [c.command(b"22 fetch 1:* (emailid threadid)")]
            ids = re.findall(rb"EMAILID \((" + OBJECTID + rb")\)", b"".join(out[0]))
            out.append(c.command(b"27 search emailid " + ids[0]))
            out.append(c.command(b"28 search threadid T64b478a75b7ea9"))
            out.append(c.command(b"29 uid search or emailid %s emailid %s" % (ids[0], ids[2])))
            out.append(c.command(b"30 search emailid Mnosuchid"))
            out += [c.command(line) for line in (
                b"23 move 2 foo", b"24 fetch 1:* (emailid threadid)",
                b"25 select foo", b"26 fetch 1:* (emailid threadid)")]
            c.close()
            return ids, out

        ids, out = await self.in_thread(run)
        self.assertEqual(len(ids), 3)
        self.assertEqual(len(set(ids)), 3)
        a, b, c = ids
        # This server computes no threads: THREADID is NIL (section 5.2).
        self.assertEqual(out[0], [
            b"* 1 FETCH (EMAILID (%s) THREADID NIL)\r\n" % a,
            b"* 2 FETCH (EMAILID (%s) THREADID NIL)\r\n" % b,
            b"* 3 FETCH (EMAILID (%s) THREADID NIL)\r\n" % c,
            b"22 OK FETCH completed\r\n"])
        self.assertEqual(out[1], [b"* SEARCH 1\r\n", b"27 OK SEARCH completed\r\n"])
        self.assertEqual(out[2], [b"* SEARCH\r\n", b"28 OK SEARCH completed\r\n"])
        self.assertEqual(out[3], [b"* SEARCH 1 3\r\n", b"29 OK SEARCH completed\r\n"])
        self.assertEqual(out[4], [b"* SEARCH\r\n", b"30 OK SEARCH completed\r\n"])
        move = out[5]
        self.assertRegex(move[0], rb"^\* OK \[COPYUID \d+ 2 1\] ")
        self.assertEqual(move[1:], [b"* 2 EXPUNGE\r\n", b"23 OK MOVE completed\r\n"])
        self.assertEqual(out[6], [
            b"* 1 FETCH (EMAILID (%s) THREADID NIL)\r\n" % a,
            b"* 2 FETCH (EMAILID (%s) THREADID NIL)\r\n" % c,
            b"24 OK FETCH completed\r\n"])
        self.assertEqual(out[7][-1], b"25 OK [READ-WRITE] SELECT completed\r\n")
        # The moved message keeps its EMAILID (section 5.1).
        self.assertEqual(out[8], [b"* 1 FETCH (EMAILID (%s) THREADID NIL)\r\n" % b,
                                  b"26 OK FETCH completed\r\n"])

    async def test_savedate_fetch_and_search(self) -> None:
        """RFC 8514 sections 4.2 and 4.3."""
        today = datetime.now(timezone.utc).date()

        def run():
            c = self.session()
            c.command(b"1 create Trash")
            before = datetime.now(timezone.utc).replace(microsecond=0)
            c.command(b'2 append inbox "01-Jan-2015 18:50:53 +0100" ' + literal(MESSAGE_A))
            c.command(b"3 append inbox " + literal(MESSAGE_B))
            c.command(b"4 select inbox")
            first = c.command(b"5 fetch 1:2 (savedate internaldate)")
            # The copy's save date is when it was copied, a second later at least.
            time.sleep(1.1)
            c.command(b"6 copy 1 Trash")
            after = datetime.now(timezone.utc)
            c.command(b"7 select Trash")
            copied = c.command(b"8 fetch 1 (savedate internaldate)")
            c.command(b"9 select inbox")
            again = c.command(b"10 fetch 1 (savedate)")
            searches = [c.command(b"s%d search %s" % (n, key)) for n, key in enumerate((
                b"savedon " + imap_date(today),
                b"savedsince " + imap_date(today),
                b"savedsince " + imap_date(today + timedelta(days=1)),
                b"savedbefore " + imap_date(today),
                b"savedbefore " + imap_date(today + timedelta(days=1)),
                b"savedatesupported",
                b"not savedatesupported",
                # The INTERNALDATE is something else: the 2015 message is older.
                b"before " + imap_date(today),
            ))]
            c.close()
            return before, after, first, copied, again, searches

        before, after, first, copied, again, searches = await self.in_thread(run)

        def saved(line: bytes) -> datetime:
            m = re.search(rb'SAVEDATE "([^"]+)"', line)
            self.assertIsNotNone(m, line)
            return datetime.strptime(m.group(1).decode().strip(), "%d-%b-%Y %H:%M:%S %z")

        self.assertEqual(len(first), 3, first)
        self.assertRegex(first[0], rb'^\* 1 FETCH \(SAVEDATE "[ \d]\d-[A-Z][a-z]{2}-\d{4} '
                                   rb'\d\d:\d\d:\d\d [+-]\d{4}" '
                                   rb'INTERNALDATE " 1-Jan-2015 18:50:53 \+0100"\)\r\n$')
        for line in first[:2]:
            self.assertTrue(before - timedelta(seconds=1) <= saved(line) <= after, line)
        original = saved(first[0])
        copy = saved(copied[0])
        # A copy keeps the INTERNALDATE but is saved anew (RFC 8514 section 3).
        self.assertIn(b'INTERNALDATE " 1-Jan-2015 18:50:53 +0100"', copied[0])
        self.assertGreater(copy, original)
        self.assertTrue(copy <= after, (copy, after))
        # The original's save date does not change.
        self.assertEqual(saved(again[0]), original)
        answers = [lines[0] for lines in searches]
        self.assertEqual(answers, [b"* SEARCH 1 2\r\n", b"* SEARCH 1 2\r\n", b"* SEARCH\r\n",
                                   b"* SEARCH\r\n", b"* SEARCH 1 2\r\n", b"* SEARCH 1 2\r\n",
                                   b"* SEARCH\r\n", b"* SEARCH 1\r\n"])

    async def test_capabilities(self) -> None:
        def run():
            c = self.raw()
            greeting = c.line()
            caps = c.command(b"a CAPABILITY")
            c.close()
            return greeting, caps

        greeting, caps = await self.in_thread(run)
        words = caps[0].split()
        self.assertIn(b"OBJECTID", words)
        self.assertIn(b"SAVEDATE", words)


@on_every_store
class ImaplibTests(IMAPServerTestCase):
    """What a caching client sees through imaplib, across a restart."""

    async def restart(self) -> None:
        """A new server over a new backend object on the same stored mail."""
        from test_index import twin

        await self.listening.stopListening()
        for protocol in list(self.factory.connections):
            protocol.transport.abortConnection()
        old = self.backend
        self.backend = twin(old)
        await old.close()
        portal = Portal(MailhubRealm(self.backend), [InMemoryChecker(dict(USERS))])
        self.factory = IMAPServerFactory(portal, policy=self.policy)
        self.listening = reactor.listenTCP(0, self.factory, interface="127.0.0.1")
        self.port = self.listening.getHost().port

    def snapshot(self):
        """MAILBOXIDs by name and (UID, EMAILID, SAVEDATE) by mailbox."""
        client = self.imaplib_client()
        ids, messages = {}, {}
        typ, listing = client.list()
        for line in listing:
            name = line.decode().rsplit(" ", 1)[1].strip('"')
            typ, data = client.status(name, "(MAILBOXID)")
            ids[name] = re.search(rb"MAILBOXID \((" + OBJECTID + rb")\)", data[0]).group(1)
            client.select(name, readonly=True)
            typ, data = client.uid("FETCH", "1:*", "(EMAILID SAVEDATE)")
            messages[name] = sorted(
                (int(m.group(1)), m.group(2), m.group(3)) for m in
                re.finditer(rb"UID (\d+) EMAILID \((" + OBJECTID + rb")\) SAVEDATE (\"[^\"]+\")",
                            b" ".join(d for d in data if isinstance(d, bytes))))
            client.close()
        client.logout()
        return ids, messages

    async def test_ids_survive_rename_copy_move_and_restart(self) -> None:
        def build():
            client = self.imaplib_client()
            typ, caps = client.capability()
            self.assertIn(b"OBJECTID", caps[0].split())
            for name in ("Work", "Trash"):
                self.assertEqual(client.create(name)[0], "OK")
            for n in range(3):
                client.append("INBOX", None, None, MESSAGE_C.replace(b"C\r\n", b"%d\r\n" % n))
            client.select("INBOX")
            typ, data = client.fetch("1:3", "(EMAILID)")
            emailids = re.findall(rb"EMAILID \((" + OBJECTID + rb")\)", b" ".join(data))
            self.assertEqual(client.copy("1", "Work")[0], "OK")
            self.assertEqual(client.uid("MOVE", "3", "Trash")[0], "OK")
            typ, data = client.search(None, "EMAILID", emailids[1].decode())
            found = data[0]
            client.logout()
            return emailids, found

        emailids, found = await self.in_thread(build)
        self.assertEqual(len(set(emailids)), 3)
        self.assertEqual(found, b"2")
        ids, messages = await self.in_thread(self.snapshot)
        self.assertEqual(set(ids), {"INBOX", "Work", "Trash"})
        self.assertEqual(len(set(ids.values())), 3)
        # COPY and MOVE keep the EMAILID.
        self.assertEqual([m[1] for m in messages["Work"]], [emailids[0]])
        self.assertEqual([m[1] for m in messages["Trash"]], [emailids[2]])
        self.assertEqual([m[1] for m in messages["INBOX"]], emailids[:2])

        def rename():
            client = self.imaplib_client()
            self.assertEqual(client.rename("Work", "Done")[0], "OK")
            client.logout()

        await self.in_thread(rename)
        renamed, after_rename = await self.in_thread(self.snapshot)
        self.assertEqual(renamed["Done"], ids["Work"])
        self.assertEqual(after_rename["Done"], messages["Work"])

        if self.store == "memory":
            return
        await self.restart()
        restarted, after_restart = await self.in_thread(self.snapshot)
        self.assertEqual((restarted, after_restart), (renamed, after_rename))

        def search_saved():
            client = self.imaplib_client()
            client.select("Trash", readonly=True)
            today = datetime.now(timezone.utc).date()
            typ, since = client.search(None, "SAVEDSINCE", imap_date(today).decode())
            typ, before = client.search(None, "SAVEDBEFORE", imap_date(today).decode())
            typ, by_id = client.uid("SEARCH", "EMAILID", emailids[2].decode())
            client.logout()
            return since[0], before[0], by_id[0]

        since, before, by_id = await self.in_thread(search_saved)
        self.assertEqual((since, before), (b"1", b""))
        self.assertEqual(by_id, str(after_restart["Trash"][0][0]).encode())


@on_every_store
class MetadataPathTests(IMAPServerTestCase):
    """EMAILID, THREADID and SAVEDATE come from metadata: no message is opened."""

    async def test_fetch_opens_no_message(self) -> None:
        from twisted_mailhub.model import AppendRequest

        store = await self.backend.open_store("alice")
        inbox = await store.get_mailbox("INBOX")
        await inbox.append([AppendRequest(m) for m in (MESSAGE_A, MESSAGE_B, MESSAGE_C)])

        def refuse(*args, **kwargs):
            raise AssertionError("a message was opened")

        for name in ("open_message", "open_messages"):
            if hasattr(type(inbox), name):
                self.patch(type(inbox), name, refuse)

        def run():
            c = self.raw()
            c.line()
            c.command(b"t0 LOGIN alice wonderland")
            c.command(b"t1 EXAMINE INBOX")
            out = c.command(b"t2 FETCH 1:* (UID EMAILID THREADID SAVEDATE FLAGS)")
            c.close()
            return out

        out = await self.in_thread(run)
        self.assertEqual(out[-1], b"t2 OK FETCH completed\r\n")
        self.assertEqual(len(out), 4, out)
        for n, line in enumerate(out[:3], 1):
            self.assertRegex(line, rb"^\* %d FETCH \(UID %d EMAILID \(M" % (n, n) + OBJECTID
                             + rb"\) THREADID NIL SAVEDATE \"[^\"]+\" FLAGS \(\\Recent\)\)\r\n$")
