"""
POP3 and IMAP on one store: deletions reach IMAP clients as EXPUNGE, what
IMAP removes never crashes POP3, UIDL survives sessions and restarts,
\\Seen on RETR is configurable, and the maildrop lock binds POP3 only.
"""

from __future__ import annotations

import os
import poplib

from twisted.cred.portal import Portal
from twisted.internet import reactor

from pop3_harness import POP3ServerTestCase, message
from twisted_mailhub.auth.checkers import InMemoryChecker
from twisted_mailhub.auth.realm import MailhubRealm
from twisted_mailhub.pop3 import POP3ServerFactory


class InterplayTests(POP3ServerTestCase):
    async def setUp(self) -> None:
        await super().setUp()
        self.metas = await self.deliver(message("one"), message("two"), message("three"))

    async def test_dele_quit_expunges_only_marked_and_imap_sees_expunge(self) -> None:
        def run():
            imap = self.imap()
            imap.select("INBOX")
            # IMAP marks message 3 \Deleted; POP3 must not expunge it.
            imap.store("3", "+FLAGS", "(\\Deleted)")
            pop = self.pop()
            pop.dele(2)
            pop.quit()
            imap.noop()
            expunged = imap.response("EXPUNGE")
            typ, data = imap.uid("SEARCH", "ALL")
            imap.logout()
            return expunged, data

        expunged, data = await self.in_thread(run)
        self.assertEqual(expunged, ("EXPUNGE", [b"2"]))
        self.assertEqual(data[0].split(), [b"%d" % self.metas[0].uid, b"%d" % self.metas[2].uid])

    async def test_dele_quit_is_told_to_a_notify_client(self) -> None:
        # RFC 5465: an IMAP client that asked NOTIFY for INBOX is told of a
        # POP3 deletion with no command in progress: EXPUNGE in the
        # selected INBOX, STATUS when another mailbox is selected.
        from harness import RawClient

        store = await self.backend.open_store("alice")
        await store.create_mailbox("Archive")

        def run():
            watchers = []
            for selected in (b"INBOX", b"Archive"):
                c = RawClient(self.imap_port)
                c.line()
                c.command(b"a LOGIN alice wonderland")
                c.command(b"b SELECT " + selected)
                c.command(b"c NOTIFY SET (selected (MessageNew MessageExpunge))"
                          b" (inboxes (MessageNew MessageExpunge))")
                watchers.append(c)
            pop = self.pop()
            pop.dele(2)
            pop.quit()
            out = [c.line() for c in watchers]
            for c in watchers:
                c.close()
            return out

        in_inbox, elsewhere = await self.in_thread(run)
        self.assertEqual(in_inbox, b"* 2 EXPUNGE\r\n")
        self.assertRegex(elsewhere, rb"^\* STATUS INBOX \(MESSAGES 2 UIDNEXT 4 UIDVALIDITY \d+\)")

    async def test_message_expunged_by_imap_during_pop3_session(self) -> None:
        def run():
            pop = self.pop()
            imap = self.imap()
            imap.select("INBOX")
            imap.store("1", "+FLAGS", "(\\Deleted)")
            imap.expunge()
            out = [pop.stat(), pop.list(1)]
            for call in (lambda: pop.retr(1), lambda: pop.top(1, 0)):
                try:
                    call()
                except poplib.error_proto as e:
                    out.append(e.args[0])
            out.append(pop.retr(2)[1])
            out.append(pop.dele(1))
            out.append(pop.dele(3))
            out.append(pop.quit())
            imap.noop()
            expunged = imap.response("EXPUNGE")
            imap.logout()
            return out, expunged

        out, expunged = await self.in_thread(run)
        stat, list1, retr_err, top_err, two, dele1, dele3, quit = out
        # The snapshot keeps its numbering for the whole session.
        self.assertEqual(stat[0], 3)
        self.assertEqual(retr_err, b"-ERR message was removed")
        self.assertEqual(top_err, b"-ERR message was removed")
        self.assertIn(b"Subject: two", two)
        self.assertTrue(quit.startswith(b"+OK"))
        self.assertEqual(expunged, ("EXPUNGE", [b"2"]))  # "three", now number 2
        remaining = await (await self.inbox()).uids()
        self.assertEqual(remaining, [self.metas[1].uid])

    async def test_new_mail_during_session_waits_for_the_next_one(self) -> None:
        pop_first = await self.in_thread(self.pop)
        await self.deliver(message("four"))
        stat = await self.in_thread(pop_first.stat)
        await self.in_thread(pop_first.quit)
        stat_next = await self.in_thread(lambda: self.pop().stat())
        self.assertEqual((stat[0], stat_next[0]), (3, 4))

    async def test_uidl_stable_across_sessions(self) -> None:
        def session():
            c = self.pop()
            try:
                return c.uidl()[1]
            finally:
                c.quit()

        first = await self.in_thread(session)

        def delete_first():
            c = self.pop()
            c.dele(1)
            c.quit()

        await self.in_thread(delete_first)
        second = await self.in_thread(session)
        ids = lambda listing: [l.split()[1] for l in listing]
        self.assertEqual(ids(second), ids(first)[1:])
        # Numbers are renumbered from 1; the unique ids are not.
        self.assertEqual([l.split()[0] for l in second], [b"1", b"2"])

    async def test_retr_does_not_mark_seen_by_default(self) -> None:
        await self.in_thread(lambda: (lambda c: (c.retr(1), c.quit()))(self.pop()))
        metas = await (await self.inbox()).metadata([self.metas[0].uid])
        self.assertNotIn("\\Seen", metas[0].flags)

    async def test_in_use_lock_binds_pop3_but_not_imap(self) -> None:
        def run():
            first = self.pop()
            second = self.pop(login=None)
            second.user("alice")
            try:
                second.pass_("wonderland")
                locked = None
            except poplib.error_proto as e:
                locked = e.args[0]
            # IMAP is not blocked by the POP3 session, nor does it block one.
            imap = self.imap()
            typ, _ = imap.select("INBOX")
            first.quit()
            second.user("alice")
            relogin = second.pass_("wonderland")
            second.quit()
            imap.logout()
            return locked, typ, relogin

        locked, typ, relogin = await self.in_thread(run)
        self.assertEqual(locked, b"-ERR [IN-USE] maildrop is in use by another POP3 session")
        self.assertEqual(typ, "OK")
        self.assertTrue(relogin.startswith(b"+OK alice has 3 messages"))

    async def test_lock_released_when_connection_drops(self) -> None:
        def run():
            first = self.pop()
            first.close()

        await self.in_thread(run)
        # Let the server notice the closed connection.
        while self.factory.connections:
            await self._turn()
        self.assertTrue((await self.in_thread(lambda: self.pop().quit())).startswith(b"+OK"))

    async def test_other_users_are_not_locked(self) -> None:
        def run():
            a = self.pop("alice")
            b = self.pop("bob")
            out = a.stat(), b.stat()
            a.quit()
            b.quit()
            return out

        a, b = await self.in_thread(run)
        self.assertEqual((a[0], b[0]), (3, 0))

    async def test_lock_shared_between_factories(self) -> None:
        # A second listener (say the POP3S port) over the same lock table.
        other = self.make_factory()
        port = reactor.listenTCP(0, other, interface="127.0.0.1")
        self.ports.append(port)

        def run():
            first = self.pop()
            second = self.pop(login=None, port=port.getHost().port)
            second.user("alice")
            try:
                second.pass_("wonderland")
            except poplib.error_proto as e:
                return e.args[0]
            finally:
                second.quit()
                first.quit()

        self.assertTrue((await self.in_thread(run)).startswith(b"-ERR [IN-USE]"))

    async def _turn(self):
        from twisted.internet.task import deferLater

        await deferLater(reactor, 0.01, lambda: None)


class MarkSeenTests(POP3ServerTestCase):
    mark_seen_on_retr = True

    async def test_retr_marks_seen_at_quit_but_top_does_not(self) -> None:
        metas = await self.deliver(message("one"), message("two"), message("three"))

        def run():
            imap = self.imap()
            imap.select("INBOX")
            pop = self.pop()
            pop.retr(1)
            pop.top(2, 1)
            pop.retr(3)
            pop.dele(3)
            pop.quit()
            typ, data = imap.search(None, "SEEN")
            imap.logout()
            return data[0].split()

        seen = await self.in_thread(run)
        self.assertEqual(seen, [b"1"])
        remaining = await (await self.inbox()).metadata([m.uid for m in metas])
        self.assertEqual([("\\Seen" in m.flags) for m in remaining], [True, False])

    async def test_no_seen_without_quit(self) -> None:
        metas = await self.deliver(message("one"))

        def run():
            pop = self.pop()
            pop.retr(1)
            pop.close()

        await self.in_thread(run)
        got = await (await self.inbox()).metadata([metas[0].uid])
        self.assertNotIn("\\Seen", got[0].flags)


class RestartTests(POP3ServerTestCase):
    """UIDL values survive a restart of the server over an SQLite store."""

    def make_backend(self):
        from twisted_mailhub.backends.sql import open_backend

        self.db_path = os.path.abspath(self.mktemp() + ".sqlite")
        return open_backend("sqlite:" + self.db_path)

    async def test_uidl_stable_across_restart(self) -> None:
        await self.deliver(message("one"), message("two"))

        def uidl(port):
            c = poplib.POP3("127.0.0.1", port, timeout=20)
            c.user("alice")
            c.pass_("wonderland")
            try:
                return c.uidl()[1]
            finally:
                c.quit()

        before = await self.in_thread(uidl, self.port)
        await self.ports[0].stopListening()
        await self.backend.close()

        from twisted_mailhub.backends.sql import open_backend

        self.backend = open_backend("sqlite:" + self.db_path)
        portal = Portal(MailhubRealm(self.backend), [InMemoryChecker(dict(self.users))])
        self.factory = POP3ServerFactory(portal, policy=self.policy, locks=self.locks)
        self.ports[0] = reactor.listenTCP(0, self.factory, interface="127.0.0.1")
        after = await self.in_thread(uidl, self.ports[0].getHost().port)
        self.assertEqual(after, before)
        self.assertEqual(len(after), 2)
