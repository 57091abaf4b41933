"""
NOTIFY (RFC 5465): the grammar and its BAD rules, then transcripts over a
real socket on every store where one client asks for events and another
(or a delivery, or another server process) makes them happen, with what
the first client reads while it sends no command at all.
"""

from __future__ import annotations

import re

import pytest

from harness import IMAPServerTestCase, on_every_store

from twisted_mailhub.imap import commands as C
from twisted_mailhub.imap.parser import CommandError, CommandParser
from twisted_mailhub.model import AppendRequest

BADEVENT = b"[BADEVENT (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange)]"


def parse(line: bytes):
    parser = CommandParser()
    parser.receive_data(line + b"\r\n")
    return parser.next_event()


def message(subject: str) -> bytes:
    return (f"From: alice@example.org\r\nTo: bob@example.org\r\nSubject: {subject}\r\n\r\n"
            f"{subject}\r\n").encode("ascii")


# -- the grammar ----------------------------------------------------------------------


def test_notify_none_and_set_status() -> None:
    assert parse(b"a notify none").command == C.Notify("a", None)
    # Section 3.1's example, with the parentheses its ABNF asks for.
    command = parse(b"b notify set status (selected (MessageNew (uid body.peek[header.fields"
                    b" (from to subject)]) MessageExpunge)) (subtree Lists (MessageNew"
                    b" MessageExpunge))").command
    assert command.status
    selected, subtree = command.groups
    assert selected.filter == "SELECTED"
    assert selected.events == ("MessageNew", "MessageExpunge")
    assert [a.name for a in selected.fetch] == ["UID", "BODY[]"]
    assert selected.fetch[1].peek and selected.fetch[1].section.fields == ("FROM", "TO", "SUBJECT")
    assert subtree == C.NotifyGroup("SUBTREE", ("Lists",), ("MessageNew", "MessageExpunge"))


def test_notify_filters_and_event_names_any_case() -> None:
    # Section 6's examples.
    command = parse(b"a notify set (mailboxes INBOX (Messagenew messageExpunge))"
                    b" (personal (SubscriptionChange))").command
    assert command.groups == (
        C.NotifyGroup("MAILBOXES", ("INBOX",), ("MessageNew", "MessageExpunge")),
        C.NotifyGroup("PERSONAL", (), ("SubscriptionChange",)))
    command = parse(b'a NOTIFY SET (Selected-Delayed NONE) (subtree ("a b" Lists) NONE)'
                    b" (inboxes (MailboxName)) (subscribed (MessageNew FlagChange"
                    b" MessageExpunge))").command
    assert [g.filter for g in command.groups] == [
        "SELECTED-DELAYED", "SUBTREE", "INBOXES", "SUBSCRIBED"]
    assert command.groups[1].mailboxes == ("a b", "Lists")
    assert command.groups[0].events == ()
    # An unknown event is syntax (event-ext); the server refuses it with NO.
    assert parse(b"a NOTIFY SET (personal (x-Vendor))").command.groups[0].events == ("x-Vendor",)


def test_search_and_sort_update_with_fetch_attributes() -> None:
    # Section 7's example: RETURN (... UPDATE (fetch-att ...)).
    command = parse(b'a00 SEARCH RETURN (COUNT UPDATE (UID BODY[HEADER.FIELDS (TO FROM'
                    b' SUBJECT)])) FROM "boss"').command
    assert command.returns == ("COUNT", "UPDATE")
    assert [a.name for a in command.update_fetch] == ["UID", "BODY[]"]
    command = parse(b"a UID SORT RETURN (UPDATE (FLAGS) MIN) (DATE) UTF-8 ALL").command
    assert command.returns == ("UPDATE", "MIN")
    assert command.update_fetch == (C.FetchAttr("FLAGS"),)
    assert parse(b"a SEARCH RETURN (UPDATE) ALL").command.update_fetch == ()
    event = parse(b"a SEARCH RETURN (UPDATE ()) ALL")
    assert isinstance(event, CommandError)
    assert event.message == "Empty UPDATE attributes"


@pytest.mark.parametrize("line, message", [
    (b"a NOTIFY", "Missing NOTIFY SET or NONE"),
    (b"a NOTIFY SET", "Missing NOTIFY event groups"),
    (b"a NOTIFY SET STATUS", "Missing NOTIFY event groups"),
    (b"a NOTIFY RESET (selected NONE)", "Expected SET or NONE after NOTIFY, not RESET"),
    (b"a NOTIFY NONE (selected NONE)", "Unexpected characters after command"),
    (b"a NOTIFY SET (elsewhere (MessageNew MessageExpunge))",
     "Unknown NOTIFY mailbox filter: ELSEWHERE"),
    (b"a NOTIFY SET (selected MessageNew)", "Expected a list of events or NONE"),
    (b"a NOTIFY SET (selected ())", "Invalid NOTIFY event"),
    (b"a NOTIFY SET (subtree (MessageNew MessageExpunge))", "Expected SP before NOTIFY events"),
    # Section 5: MessageNew and MessageExpunge together; FlagChange needs both.
    (b"a NOTIFY SET (selected (MessageNew))",
     "MessageNew and MessageExpunge must be given together"),
    (b"a NOTIFY SET (personal (MessageExpunge))",
     "MessageNew and MessageExpunge must be given together"),
    (b"a NOTIFY SET (personal (FlagChange))",
     "FlagChange and AnnotationChange need MessageNew and MessageExpunge"),
    (b"a NOTIFY SET (selected (AnnotationChange))",
     "FlagChange and AnnotationChange need MessageNew and MessageExpunge"),
    # Section 6.1: one SELECTED group, message events only.
    (b"a NOTIFY SET (selected NONE) (selected-delayed NONE)",
     "Only one SELECTED or SELECTED-DELAYED event group is allowed"),
    (b"a NOTIFY SET (selected (MailboxName))",
     "Only message events are allowed with SELECTED: MailboxName"),
    # The fetch-att list belongs to SELECTED only (section 8).
    (b"a NOTIFY SET (personal (MessageNew (UID) MessageExpunge))",
     "MessageNew attributes are only allowed with SELECTED"),
    (b"a NOTIFY SET (selected (MessageNew (UID NOSUCH) MessageExpunge))",
     "Unknown FETCH attribute: NOSUCH"),
])
def test_notify_bad(line: bytes, message: str) -> None:
    event = parse(line)
    assert isinstance(event, CommandError), event
    assert (event.condition, event.message) == ("BAD", message)


# -- transcripts ------------------------------------------------------------------------


@on_every_store
class NotifyTranscriptTests(IMAPServerTestCase):
    async def setUp(self) -> None:
        await super().setUp()
        store = await self.backend.open_store("alice")
        inbox = await store.get_mailbox("INBOX")
        await inbox.append([AppendRequest(message(f"m{i}")) for i in (1, 2, 3)])
        for name in ("Lists", "Lists/Lemonade", "Lists/Im2000", "misc"):
            await store.create_mailbox(name)
        lemonade = await store.get_mailbox("Lists/Lemonade")
        await lemonade.append([AppendRequest(message("l1")), AppendRequest(message("l2"))])

    def login(self):
        c = self.raw()
        c.line()
        c.command(b"t0 LOGIN alice wonderland")
        return c

    def other(self, select: bytes | None = None):
        b = self.login()
        if select is not None:
            b.command(b"b0 SELECT " + select)
        return b

    async def test_capability_bad_input_and_badevent(self) -> None:
        def run():
            c = self.login()
            out = [c.command(b"t1 CAPABILITY"),
                   c.command(b"t2 NOTIFY SET (selected (MessageNew))"),
                   c.command(b"t3 NOTIFY SET (personal (MessageNew MessageExpunge"
                             b" AnnotationChange))"),
                   c.command(b"t4 NOTIFY SET (personal (MailboxMetadataChange))"),
                   c.command(b"t5 NOTIFY SET (inboxes (ServerMetadataChange x-Other))"),
                   c.command(b"t6 NOTIFY NONE"),
                   c.command(b"t7 NOOP")]
            c.close()
            return out

        out = await self.in_thread(run)
        self.assertIn(b"NOTIFY", out[0][0].split())
        self.assertEqual(out[1], [b"t2 BAD MessageNew and MessageExpunge must be given"
                                  b" together\r\n"])
        # Section 3.1: NO, with the events the server does support.
        self.assertEqual(out[2], [b"t3 NO " + BADEVENT + b" Unsupported NOTIFY event:"
                                  b" AnnotationChange\r\n"])
        self.assertEqual(out[3], [b"t4 NO " + BADEVENT + b" Unsupported NOTIFY event:"
                                  b" MailboxMetadataChange\r\n"])
        self.assertEqual(out[4], [b"t5 NO " + BADEVENT + b" Unsupported NOTIFY event:"
                                  b" ServerMetadataChange x-Other\r\n"])
        self.assertEqual(out[5], [b"t6 OK NOTIFY completed\r\n"])
        self.assertEqual(out[6], [b"t7 OK NOOP completed\r\n"])

    async def test_not_before_login(self) -> None:
        def run():
            c = self.raw()
            c.line()
            out = c.command(b"t1 NOTIFY NONE")
            c.close()
            return out

        self.assertEqual(await self.in_thread(run),
                         [b"t1 BAD NOTIFY not allowed before authentication\r\n"])

    async def test_set_status_then_new_mail_elsewhere(self) -> None:
        # Section 3.1's example: STATUS of the subtree, then one more when
        # mail arrives there, with no command in progress.
        def run():
            c = self.login()
            setting = c.command(
                b"b notify set status (selected (MessageNew (uid body.peek[header.fields"
                b" (from to subject)]) MessageExpunge)) (subtree Lists (MessageNew"
                b" MessageExpunge))")
            c.command(b"c select inbox")
            d = self.other()
            d.command(b"d1 APPEND Lists/Lemonade {%d+}\r\n" % len(message("l3"))
                      + message("l3"))
            pushed = c.line()
            d.command(b"d2 APPEND INBOX {%d+}\r\n" % len(message("Re: good morning"))
                      + message("Re: good morning"))
            exists = [c.line(), c.line()]
            fetch = [c.line(), c.read_exact(75), c.line()]
            c.close()
            d.close()
            return setting, pushed, exists, fetch

        setting, pushed, exists, fetch = await self.in_thread(run)
        status = rb"^\* STATUS %s \(MESSAGES %d UIDNEXT %d UIDVALIDITY \d+\)\r\n$"
        told = sorted(setting[:-1])
        self.assertEqual(len(told), 3, setting)
        self.assertRegex(told[0], status % (b"Lists", 0, 1))
        self.assertRegex(told[1], status % (b"Lists/Im2000", 0, 1))
        self.assertRegex(told[2], status % (b"Lists/Lemonade", 2, 3))
        self.assertEqual(setting[-1], b"b OK NOTIFY completed\r\n")
        self.assertRegex(pushed, rb"^\* STATUS Lists/Lemonade \(MESSAGES 3 UIDNEXT 4"
                                 rb" UIDVALIDITY \d+\)\r\n$")
        self.assertEqual(exists, [b"* 4 EXISTS\r\n", b"* 4 RECENT\r\n"])
        self.assertEqual(fetch, [
            b"* 4 FETCH (UID 4 BODY[HEADER.FIELDS (FROM TO SUBJECT)] {75}\r\n",
            b"From: alice@example.org\r\nTo: bob@example.org\r\nSubject: Re: good morning"
            b"\r\n\r\n",
            b")\r\n"])

    async def test_selected_events_at_any_time(self) -> None:
        # Sections 5.1 to 5.3 for the selected mailbox: EXISTS (and
        # RECENT), FETCH (UID FLAGS), EXPUNGE, each pushed at once.
        def run():
            c = self.login()
            c.command(b"a1 SELECT INBOX")
            out = [c.command(b"a2 NOTIFY SET (selected (MessageNew MessageExpunge"
                             b" FlagChange))")]
            d = self.other(b"INBOX")
            d.command(b"d1 APPEND INBOX {%d+}\r\n" % len(message("m4")) + message("m4"))
            out.append([c.line(), c.line()])
            d.command(b"d2 UID STORE 2 +FLAGS.SILENT ($Junk)")
            out.append(c.line())
            while not out[-1].startswith(b"* 2 FETCH"):
                out[-1] = c.line()
            d.command(b"d3 UID STORE 1 +FLAGS.SILENT (\\Deleted)")
            out.append(c.line())
            d.command(b"d4 EXPUNGE")
            out.append(c.line())
            out.append(c.command(b"a3 NOOP"))
            c.close()
            d.close()
            return out

        out = await self.in_thread(run)
        self.assertEqual(out[0], [b"a2 OK NOTIFY completed\r\n"])
        # The SELECT claimed \\Recent of the three messages before.
        self.assertEqual(out[1], [b"* 4 EXISTS\r\n", b"* 4 RECENT\r\n"])
        self.assertEqual(out[2], b"* 2 FETCH (UID 2 FLAGS (\\Recent $Junk))\r\n")
        self.assertEqual(out[3], b"* 1 FETCH (UID 1 FLAGS (\\Deleted \\Recent))\r\n")
        self.assertEqual(out[4], b"* 1 EXPUNGE\r\n")
        self.assertEqual(out[5], [b"a3 OK NOOP completed\r\n"])

    async def test_selected_delayed_keeps_expunges_for_noop(self) -> None:
        # Section 6.1.2: EXPUNGE waits for a command that allows it; a
        # FETCH by message number is not one (RFC 3501 section 7.4.1).
        def run():
            c = self.login()
            c.command(b"a1 SELECT INBOX")
            c.command(b"a2 NOTIFY SET (selected-delayed (MessageNew MessageExpunge))")
            d = self.other(b"INBOX")
            d.command(b"d1 STORE 1 +FLAGS.SILENT (\\Deleted)")
            d.command(b"d2 EXPUNGE")
            d.command(b"d3 APPEND INBOX {%d+}\r\n" % len(message("m4")) + message("m4"))
            out = [[c.line(), c.line()],
                   c.command(b"a3 FETCH 1 (UID)"),
                   c.command(b"a4 NOOP")]
            c.close()
            d.close()
            return out

        pushed, fetch, noop = await self.in_thread(run)
        # The new message is told at once, the expunge is not.
        self.assertEqual(pushed, [b"* 4 EXISTS\r\n", b"* 4 RECENT\r\n"])
        self.assertEqual(fetch, [b"a3 OK [EXPUNGEISSUED] Some messages were expunged and could"
                                 b" not be fetched\r\n"])
        self.assertEqual(noop, [b"* 1 EXPUNGE\r\n", b"a4 OK NOOP completed\r\n"])

    async def test_other_mailboxes_status(self) -> None:
        # Sections 5.1 to 5.3 for another mailbox, with CONDSTORE enabled.
        def run():
            c = self.login()
            c.command(b"a0 ENABLE CONDSTORE")
            c.command(b"a1 SELECT INBOX")
            out = [c.command(b"a2 NOTIFY SET (mailboxes (misc INBOX) (MessageNew"
                             b" MessageExpunge FlagChange))")]
            d = self.other(b"misc")
            d.command(b"d1 APPEND misc {%d+}\r\n" % len(message("x")) + message("x"))
            out.append(c.line())
            d.command(b"d2 STORE 1 +FLAGS.SILENT (\\Seen \\Deleted)")
            out.append(c.line())
            d.command(b"d3 EXPUNGE")
            out.append(c.line())
            # The selected INBOX is not told through its name (section 3.1).
            d.command(b"d4 APPEND INBOX {%d+}\r\n" % len(message("y")) + message("y"))
            out.append(c.command(b"a3 NOOP"))
            c.close()
            d.close()
            return out

        out = await self.in_thread(run)
        self.assertEqual(out[0], [b"a2 OK NOTIFY completed\r\n"])
        status = rb"^\* STATUS misc \(MESSAGES %d UIDNEXT 2 UIDVALIDITY \d+ UNSEEN %d" \
                 rb" HIGHESTMODSEQ \d+\)\r\n$"
        self.assertRegex(out[1], status % (1, 1))
        self.assertRegex(out[2], status % (1, 0))
        self.assertRegex(out[3], status % (0, 0))
        self.assertEqual(out[4][0], b"* 4 EXISTS\r\n")
        self.assertEqual(out[4][-1], b"a3 OK NOOP completed\r\n")
        self.assertNotIn(b"STATUS", b"".join(out[4]))

    async def test_flag_changes_elsewhere_without_condstore(self) -> None:
        # Section 3.1: STATUS of a mailbox with FlagChange carries
        # UIDVALIDITY and HIGHESTMODSEQ (the server supports CONDSTORE);
        # section 5.1: UNSEEN tells a client without CONDSTORE of \\Seen.
        def run():
            c = self.login()
            out = [c.command(b"a1 NOTIFY SET STATUS (mailboxes Lists/Lemonade (MessageNew"
                             b" MessageExpunge FlagChange))")]
            d = self.other(b"Lists/Lemonade")
            d.command(b"d1 STORE 2 +FLAGS.SILENT (\\Seen)")
            out.append(c.line())
            out.append(d.command(b"d2 FETCH 2 (MODSEQ)"))
            c.close()
            d.close()
            return out

        out = await self.in_thread(run)
        self.assertRegex(out[0][0], rb"^\* STATUS Lists/Lemonade \(MESSAGES 2 UIDNEXT 3"
                                    rb" UIDVALIDITY \d+ UNSEEN 2 HIGHESTMODSEQ \d+\)\r\n$")
        modseq = re.search(rb"\* 2 FETCH \(.*MODSEQ \((\d+)\)", b"".join(out[2])).group(1)
        self.assertRegex(out[1], rb"^\* STATUS Lists/Lemonade \(MESSAGES 2 UIDNEXT 3"
                                 rb" UIDVALIDITY \d+ UNSEEN 1 HIGHESTMODSEQ " + modseq
                         + rb"\)\r\n$")

    async def test_search_context_fetches_new_matches(self) -> None:
        # Section 7's example: the new message that joins the result is
        # told by EXISTS, ADDTO and a FETCH of the attributes UPDATE named,
        # merged with those of NOTIFY's MessageNew (section 5.2); a message
        # that joins by a flag change gets no FETCH.
        def run():
            c = self.login()
            c.command(b"a1 SELECT INBOX")
            c.command(b"a2 NOTIFY SET (selected (MessageNew (UID) MessageExpunge))")
            out = [c.command(b'a00 SEARCH RETURN (COUNT UPDATE (UID BODY.PEEK[HEADER.FIELDS'
                             b' (SUBJECT)])) FROM "boss"')]
            d = self.other(b"INBOX")
            boss = b"From: boss@example.org\r\nSubject: Re: good morning\r\n\r\nHi\r\n"
            d.command(b"d1 APPEND INBOX {%d+}\r\n" % len(boss) + boss)
            out.append([c.line(), c.line(), c.line(), c.line(), c.read_exact(29), c.line()])
            d.command(b"d2 APPEND INBOX {%d+}\r\n" % len(message("x")) + message("x"))
            out.append([c.line(), c.line(), c.line()])
            c.close()
            d.close()
            return out

        out = await self.in_thread(run)
        self.assertEqual(out[0], [b'* ESEARCH (TAG "a00") COUNT 0\r\n',
                                  b"a00 OK SEARCH completed\r\n"])
        self.assertEqual(out[1], [
            b"* 4 EXISTS\r\n", b"* 4 RECENT\r\n",
            b'* ESEARCH (TAG "a00") ADDTO (0 4)\r\n',
            b"* 4 FETCH (UID 4 BODY[HEADER.FIELDS (SUBJECT)] {29}\r\n",
            b"Subject: Re: good morning\r\n\r\n", b")\r\n"])
        # Not from the boss: NOTIFY's attributes alone.
        self.assertEqual(out[2], [b"* 5 EXISTS\r\n", b"* 5 RECENT\r\n",
                                  b"* 5 FETCH (UID 5)\r\n"])

    async def test_a_failing_store_costs_the_status_not_the_session(self) -> None:
        def start():
            c = self.login()
            c.command(b"a1 NOTIFY SET (mailboxes misc (MessageNew MessageExpunge))")
            return c

        c = await self.in_thread(start)
        [protocol] = [p for p in self.factory.connections if p.session.notifications.active]

        async def broken():
            raise RuntimeError("the store is down")

        watched = protocol.session.notifications._watches["misc"].mailbox
        self.patch(watched, "status", broken)

        def run():
            d = self.other()
            d.command(b"d1 APPEND misc {%d+}\r\n" % len(message("x")) + message("x"))
            out = c.command(b"a2 NOOP")
            c.close()
            d.close()
            return out

        self.assertEqual(await self.in_thread(run), [b"a2 OK NOOP completed\r\n"])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    async def test_set_replaces_the_events(self) -> None:
        # Section 3.1: NOTIFY SET replaces the list of events.
        def run():
            c = self.login()
            c.command(b"a1 NOTIFY SET (personal (MailboxName))")
            c.command(b"a2 NOTIFY SET (selected (MessageNew MessageExpunge))")
            d = self.other()
            d.command(b"d1 CREATE Unwatched")
            d.command(b"d2 APPEND misc {%d+}\r\n" % len(message("x")) + message("x"))
            out = c.command(b"a3 NOOP")
            c.close()
            d.close()
            return out

        self.assertEqual(await self.in_thread(run), [b"a3 OK NOOP completed\r\n"])

    async def test_own_changes_are_not_told(self) -> None:
        # Section 5: the server SHOULD NOT tell a client of its own changes.
        def run():
            c = self.login()
            c.command(b"a1 NOTIFY SET (personal (MessageNew MessageExpunge MailboxName"
                      b" SubscriptionChange))")
            out = [c.command(b"a2 APPEND misc {%d+}\r\n" % len(message("x")) + message("x")),
                   c.command(b"a3 CREATE Own"),
                   c.command(b"a4 SUBSCRIBE Own"),
                   c.command(b"a5 RENAME Own Mine"),
                   c.command(b"a6 DELETE Mine"),
                   c.command(b"a7 NOOP")]
            c.close()
            return out

        out = await self.in_thread(run)
        self.assertEqual(len(out[0]), 1, out[0])
        self.assertEqual([len(r) for r in out[1:]], [1, 1, 1, 1, 1], out)

    async def test_mailbox_names_and_subscriptions(self) -> None:
        # Sections 5.4 and 5.5: LIST for created, renamed, deleted and
        # (un)subscribed mailboxes, attributes as they are now.
        def run():
            c = self.login()
            out = [c.command(b"a1 NOTIFY SET (personal (MailboxName SubscriptionChange))")]
            d = self.other()
            d.command(b"d1 CREATE NewMailbox")
            out.append(c.line())
            d.command(b"d2 SUBSCRIBE NewMailbox")
            out.append(c.line())
            d.command(b"d3 RENAME NewMailbox Renamed")
            out.append(c.line())
            d.command(b"d4 UNSUBSCRIBE NewMailbox")
            out.append(c.line())
            d.command(b"d5 CREATE Lists/Sub")
            out.append([c.line(), c.line()])
            d.command(b"d6 DELETE Renamed")
            out.append(c.line())
            d.command(b"d7 DELETE Lists/Sub")
            out.append([c.line(), c.line()])
            c.close()
            d.close()
            return out

        out = await self.in_thread(run)
        self.assertEqual(out[0], [b"a1 OK NOTIFY completed\r\n"])
        self.assertEqual(out[1], b'* LIST (\\HasNoChildren) "/" NewMailbox\r\n')
        self.assertEqual(out[2], b'* LIST (\\HasNoChildren \\Subscribed) "/" NewMailbox\r\n')
        self.assertEqual(out[3], b'* LIST (\\HasNoChildren) "/" Renamed ("OLDNAME" (NewMailbox))'
                                 b"\r\n")
        self.assertEqual(out[4], b'* LIST (\\NonExistent) "/" NewMailbox\r\n')
        self.assertEqual(out[5], [b'* LIST (\\HasNoChildren) "/" Lists/Sub\r\n',
                                  b'* LIST (\\HasChildren) "/" Lists\r\n'])
        self.assertEqual(out[6], b'* LIST (\\NonExistent) "/" Renamed\r\n')
        self.assertEqual(out[7], [b'* LIST (\\NonExistent) "/" Lists/Sub\r\n',
                                  b'* LIST (\\HasChildren) "/" Lists\r\n'])

    async def test_new_mailbox_in_a_subtree_is_watched(self) -> None:
        # Section 6.5: the subtree is what it is when the event happens.
        def run():
            c = self.login()
            c.command(b"a1 NOTIFY SET (subtree Lists (MessageNew MessageExpunge MailboxName))")
            d = self.other()
            d.command(b"d1 CREATE Lists/New")
            out = [[c.line(), c.line()]]
            d.command(b"d2 APPEND Lists/New {%d+}\r\n" % len(message("n")) + message("n"))
            out.append(c.line())
            d.command(b"d3 APPEND misc {%d+}\r\n" % len(message("n")) + message("n"))
            out.append(c.command(b"a2 NOOP"))
            c.close()
            d.close()
            return out

        out = await self.in_thread(run)
        self.assertEqual(out[0], [b'* LIST (\\HasNoChildren) "/" Lists/New\r\n',
                                  b'* LIST (\\HasChildren) "/" Lists\r\n'])
        self.assertRegex(out[1], rb"^\* STATUS Lists/New \(MESSAGES 1 UIDNEXT 2 UIDVALIDITY"
                                 rb" \d+\)\r\n$")
        self.assertEqual(out[2], [b"a2 OK NOOP completed\r\n"])

    async def test_notify_none_and_idle(self) -> None:
        # Section 4: IDLE tells what NOTIFY asked for; NOTIFY NONE ends it.
        def run():
            c = self.login()
            c.command(b"a1 NOTIFY SET (mailboxes misc (MessageNew MessageExpunge))")
            c.send(b"a2 IDLE\r\n")
            out = [c.line()]
            d = self.other()
            d.command(b"d1 APPEND misc {%d+}\r\n" % len(message("x")) + message("x"))
            out.append(c.line())
            c.send(b"DONE\r\n")
            out.append(c.until_tagged(b"a2"))
            out.append(c.command(b"a3 NOTIFY NONE"))
            d.command(b"d2 APPEND misc {%d+}\r\n" % len(message("x")) + message("x"))
            out.append(c.command(b"a4 NOOP"))
            c.close()
            d.close()
            return out

        out = await self.in_thread(run)
        self.assertEqual(out[0], b"+ idling\r\n")
        self.assertRegex(out[1], rb"^\* STATUS misc \(MESSAGES 1 UIDNEXT 2 UIDVALIDITY \d+\)")
        self.assertEqual(out[2], [b"a2 OK IDLE terminated\r\n"])
        self.assertEqual(out[3], [b"a3 OK NOTIFY completed\r\n"])
        self.assertEqual(out[4], [b"a4 OK NOOP completed\r\n"])

    async def test_delivery_is_told(self) -> None:
        # A delivery (LMTP, the deliver command) appends through the store,
        # as no IMAP session: its mail is told like another client's.
        def start():
            c = self.login()
            c.command(b"a1 SELECT misc")
            c.command(b"a2 NOTIFY SET (selected (MessageNew (UID FLAGS) MessageExpunge))"
                      b" (inboxes (MessageNew MessageExpunge))")
            return c

        c = await self.in_thread(start)
        store = await self.backend.open_store("alice")
        inbox = await store.get_mailbox("INBOX")
        await inbox.append([AppendRequest(message("delivered"))])
        misc = await store.get_mailbox("misc")
        await misc.append([AppendRequest(message("filed"), frozenset({"$Filed"}))])

        def read():
            out = [c.line(), c.line(), c.line(), c.line(), c.line(), c.line()]
            c.close()
            return out

        out = await self.in_thread(read)
        self.assertRegex(out[0], rb"^\* STATUS INBOX \(MESSAGES 4 UIDNEXT 5 UIDVALIDITY \d+\)")
        self.assertEqual(out[1:], [
            b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Filed)\r\n",
            b"* OK [PERMANENTFLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft $Filed \\*)]"
            b" Flags permitted\r\n",
            b"* 1 EXISTS\r\n", b"* 1 RECENT\r\n",
            b"* 1 FETCH (UID 1 FLAGS (\\Recent $Filed))\r\n"])


class NotifyManyNamesTests(IMAPServerTestCase):
    async def test_subtree_of_thousands_of_names(self) -> None:
        """A SUBTREE of many names tells the changes under any of them, and no others."""
        names = b" ".join(b"n%d" % i for i in range(5000))

        def run():
            c = self.raw()
            c.line()
            c.command(b"t0 LOGIN alice wonderland")
            out = [c.command(b"a1 NOTIFY SET (subtree (" + names + b" box1) (MailboxName))")]
            d = self.raw()
            d.line()
            d.command(b"t0 LOGIN alice wonderland")
            for tag, name in ((b"d1", b"box10"), (b"d2", b"box1x/y"), (b"d3", b"box1/a/b"),
                              (b"d4", b"n4999"), (b"d5", b"n49999")):
                d.command(tag + b" CREATE " + name)
            out.append(c.command(b"a2 NOOP"))
            c.close()
            d.close()
            return out

        out = await self.in_thread(run)
        self.assertEqual(out[0], [b"a1 OK NOTIFY completed\r\n"])
        self.assertEqual(out[1], [
            b'* LIST (\\HasNoChildren) "/" box1/a/b\r\n',
            b'* LIST (\\HasChildren) "/" box1/a\r\n',
            b'* LIST (\\HasNoChildren) "/" n4999\r\n',
            b"a2 OK NOOP completed\r\n",
        ])


class NotifyOverflowTests(IMAPServerTestCase):
    async def test_too_many_mailboxes(self) -> None:
        from twisted_mailhub.imap import notify

        store = await self.backend.open_store("alice")
        for i in range(3):
            await store.create_mailbox(f"box{i}")
        self.patch(notify, "MAX_WATCHED", 3)

        def run():
            c = self.raw()
            c.line()
            c.command(b"t0 LOGIN alice wonderland")
            out = [c.command(b"a1 NOTIFY SET (personal (MessageNew MessageExpunge))"),
                   c.command(b"a2 NOTIFY SET (subtree box1 (MessageNew MessageExpunge"
                             b" MailboxName))")]
            d = self.raw()
            d.line()
            d.command(b"t0 LOGIN alice wonderland")
            for tag, name in ((b"d1", b"box1/a"), (b"d2", b"box1/b"), (b"d3", b"box1/c")):
                d.command(tag + b" CREATE " + name)
            lines = [c.line()]
            while b"NOTIFICATIONOVERFLOW" not in lines[-1]:
                lines.append(c.line())
            out.append(lines)
            # As after NOTIFY NONE (section 5.8).
            d.command(b"d4 APPEND box1 {%d+}\r\n" % len(message("x")) + message("x"))
            out.append(c.command(b"a3 NOOP"))
            c.close()
            d.close()
            return out

        out = await self.in_thread(run)
        # Section 3.1: NO [NOTIFICATIONOVERFLOW], and the earlier state stays.
        self.assertEqual(out[0], [b"a1 NO [NOTIFICATIONOVERFLOW] Too many mailboxes to watch"
                                  b"\r\n"])
        self.assertEqual(out[1], [b"a2 OK NOTIFY completed\r\n"])
        self.assertEqual(out[2][-1], b"* OK [NOTIFICATIONOVERFLOW] Too many mailboxes to watch;"
                                     b" notifications ended\r\n")
        self.assertEqual(out[3], [b"a3 OK NOOP completed\r\n"])
