"""
SORT and THREAD (RFC 5256), ESORT (RFC 5267) and SORT=DISPLAY (RFC 5957):
the base subject and the other sort values, the two threading algorithms
and their response, the grammar, byte-exact transcripts on every store,
imapclient's sort() and thread(), and the values kept for the next SORT.
"""

from __future__ import annotations

import re
from datetime import datetime

import pytest
from twisted.internet import reactor, task

from harness import IMAPServerTestCase, on_every_store
from sort_messages import MESSAGES

from twisted_mailhub import criteria as K
from twisted_mailhub import index
from twisted_mailhub.imap import commands as C
from twisted_mailhub.imap.framing import ParseError
from twisted_mailhub.imap.handlers.sorting import header_values, sorted_set
from twisted_mailhub.imap.parser import parse_command
from twisted_mailhub.imap.sort import (
    MEMO_NAME,
    Criterion,
    Entry,
    SortValues,
    base_subject,
    collate,
    message_ids,
    order,
    sent_time,
)
from twisted_mailhub.imap.thread import ordered_subject, references, render
from twisted_mailhub.mime.parse import parse_message
from twisted_mailhub.model import AppendRequest

# -- base subject (RFC 5256 section 2.1) ---------------------------------------------


@pytest.mark.parametrize("subject, base, reply", [
    ("Meeting notes", "Meeting notes", False),
    # Every artifact at once: a trailer, a reply leader, a list blob and
    # a forward leader.
    ("Re: [list] Fwd: subject (fwd)", "subject", True),
    ("RE: Re: re:  spaced   out ", "spaced out", True),
    ("Fw: one", "one", True),
    ("FWD:two", "two", True),
    ("Re[2]: counted", "counted", True),
    ("re [list]: blob before the colon", "blob before the colon", True),
    ("[list] Re: blob before the leader", "blob before the leader", True),
    # A blob goes only when something is left after it (step 4).
    ("[PATCH] fix the parser", "fix the parser", False),
    ("[PATCH] [v2]", "[v2]", False),
    ("[only a blob]", "[only a blob]", False),
    # "[fwd: ...]" around the whole subject, then the steps again (step 6).
    ("[Fwd: Re: Budget]", "Budget", True),
    ("[fwd: hello] (fwd)", "hello", True),
    ("Subject (fwd) (FWD)", "Subject", True),
    # Not artifacts.
    ("Reply all", "Reply all", False),
    ("Fwiw: not a forward", "Fwiw: not a forward", False),
    ("Re", "Re", False),
    ("Re:", "", True),
    ("", "", False),
    ("tab\tand\r\n continuation", "tab and continuation", False),
])
def test_base_subject(subject: str, base: str, reply: bool) -> None:
    assert base_subject(subject) == (base, reply)


def test_encoded_words_are_decoded_before_extraction() -> None:
    structure = parse_message(
        b"Subject: =?UTF-8?Q?Re=3A_=5Bliste=5D_=C3=89t=C3=A9?= =?UTF-8?B?IChmd2Qp?=\r\n"
        b"From: x@example.org\r\n\r\nbody\r\n")
    values = SortValues.of(structure)
    # "Re: [liste] Été (fwd)": every artifact is removed once decoded.
    assert values.subject == collate("Été")
    assert values.reply


def test_collation_is_unicode_casemap() -> None:
    # RFC 5051: titlecase, then canonical decomposition.
    assert collate("été") == collate("ÉTÉ") == collate("e\u0301te\u0301")
    assert collate("abc") == "ABC"
    assert collate("") < collate("a") < collate("B") < collate("c")
    # No one-character titlecase of "ß": it stays as it is.
    assert collate("straße") == "STRAßE"


def test_message_ids_are_normalised() -> None:
    # RFC 5256 section 3: quoting must not make one ID two.
    assert message_ids('<"01KF8JCEOCBS0045PS"@xxx.yyy.com>') == [
        "<01KF8JCEOCBS0045PS@xxx.yyy.com>"]
    assert message_ids("<a@b> (comment) <c @ d>\r\n <no-at-sign> <@x> <e@f>") == [
        "<a@b>", "<c@d>", "<e@f>"]
    assert message_ids("") == message_ids(None) == []


def test_sent_time() -> None:
    # RFC 5256 section 2.2's example: the same instant.
    assert sent_time("31 Dec 2000 16:01:33 -0800") == sent_time("1 Jan 2001 00:01:33 +0000")
    # A zone that cannot be read is UTC.
    assert sent_time("Tue, 8 Feb 2022 10:00:00 XYZ") == sent_time("8 Feb 2022 10:00:00 +0000")
    assert sent_time("yesterday") is None
    assert sent_time(None) is None


def test_values_of_a_message() -> None:
    structure = parse_message(
        b"From: =?UTF-8?Q?J=C3=BCrgen?= <juergen@example.de>, bob@example.net\r\n"
        b"To: undisclosed-recipients:;\r\n"
        b"Cc: \"Carol C.\" <carol@example.com>\r\n"
        b"Subject: Re: plans\r\n"
        b"Date: Wed, 2 Mar 2022 21:00:00 -0800\r\n"
        b"Message-ID: <m1@example.de>\r\n"
        b"In-Reply-To: <m0@example.de> (sent earlier)\r\n\r\nbody\r\n")
    values = SortValues.of(structure)
    assert values.subject == "PLANS" and values.reply
    # FROM, TO, CC: the addr-mailbox (local part) of the first address; a
    # group's first address structure holds the group name.
    assert (values.from_, values.to, values.cc) == ("JUERGEN", "UNDISCLOSED-RECIPIENTS", "CAROL")
    # RFC 5957: the display name, else the address.
    assert values.display_from == collate("Jürgen")
    assert values.display_to == "UNDISCLOSED-RECIPIENTS"
    assert values.sent == sent_time("3 Mar 2022 05:00:00 +0000")
    assert values.message_id == "<m1@example.de>"
    # Without References, the first ID of In-Reply-To.
    assert values.references == ("<m0@example.de>",)
    assert SortValues.decode(values.encode()) == values
    assert SortValues.decode(b"not json") is None
    # A message with none of the fields sorts as empty strings.
    empty = SortValues.of(parse_message(b"\r\nbody\r\n"))
    assert empty == SortValues()


# -- SORT ----------------------------------------------------------------------------


def entry(uid, subject="", date=None, arrival=None, size=100, message_id=None, refs=()):
    base, reply = base_subject(subject)
    return Entry(uid, float(uid if arrival is None else arrival), size,
                 SortValues(subject=collate(base), reply=reply, sent=date,
                            message_id=message_id, references=tuple(refs)))


def uids(entries) -> list[int]:
    return [e.uid for e in entries]


def test_order_by_criteria_in_priority_then_mailbox_order() -> None:
    entries = [entry(1, "b", 30), entry(2, "a", 20), entry(3, "b", 10), entry(4, "a", 20),
               entry(5, "", 50)]
    assert uids(order(entries, [Criterion("SUBJECT")])) == [5, 2, 4, 1, 3]
    assert uids(order(entries, [Criterion("SUBJECT"), Criterion("DATE", True)])) == [
        5, 2, 4, 1, 3]
    assert uids(order(entries, [Criterion("SUBJECT"), Criterion("DATE")])) == [5, 2, 4, 3, 1]
    # REVERSE reverses its criterion only, not the implicit sequence order
    # of equal messages (RFC 5256 section 3, REVERSE).
    assert uids(order(entries, [Criterion("SUBJECT", True)])) == [1, 3, 2, 4, 5]
    assert uids(order(entries, [Criterion("DATE", True)])) == [5, 1, 2, 4, 3]


def test_date_falls_back_to_arrival() -> None:
    entries = [entry(1, date=200, arrival=50), entry(2, date=None, arrival=150),
               entry(3, date=100, arrival=300)]
    assert uids(order(entries, [Criterion("DATE")])) == [3, 2, 1]
    assert uids(order(entries, [Criterion("ARRIVAL")])) == [1, 2, 3]


def test_sorted_set_keeps_the_order_and_ranges_only_ascending() -> None:
    # RFC 5267 section 3.2: 23765,23764,23763 is not written 23765:23763.
    assert sorted_set([23765, 23764, 23763, 23761]) == b"23765,23764,23763,23761"
    assert sorted_set([13, 6, 1, 2, 5, 3, 4, 7, 8, 9]) == b"13,6,1:2,5,3:4,7:9"
    assert sorted_set([4]) == b"4"


# -- THREAD --------------------------------------------------------------------------


def by_uid(e: Entry) -> int:
    return e.uid


def test_render_the_rfc_examples() -> None:
    # RFC 5256 section 4: (2)(3 6 (4 23)(44 7 96)), and ((3)(5)) for
    # siblings whose parent is not there.
    tree = references([
        entry(2, "two", 1, message_id="<2@x>"),
        entry(3, "three", 2, message_id="<3@x>"),
        entry(6, "three", 3, message_id="<6@x>", refs=["<3@x>"]),
        entry(4, "three", 4, message_id="<4@x>", refs=["<3@x>", "<6@x>"]),
        entry(23, "three", 5, message_id="<23@x>", refs=["<6@x>", "<4@x>"]),
        entry(44, "three", 6, message_id="<44@x>", refs=["<6@x>"]),
        entry(7, "three", 7, message_id="<7@x>", refs=["<44@x>"]),
        entry(96, "three", 8, message_id="<96@x>", refs=["<7@x>"]),
    ])
    assert render(tree, by_uid) == b"THREAD (2)(3 6 (4 23)(44 7 96))"
    siblings = references([entry(3, "x", 1, refs=["<1@x>"]), entry(5, "y", 2, refs=["<1@x>"])])
    assert render(siblings, by_uid) == b"THREAD ((3)(5))"
    assert render([], by_uid) == b"THREAD"


def test_ordered_subject() -> None:
    threads = ordered_subject([
        entry(1, "Re: apples", 10), entry(2, "pears", 5), entry(3, "apples", 30),
        entry(4, "Apples", 20), entry(5, "pears", 40), entry(6, "plums", 1)])
    # A thread per base subject, the first by date the parent of the rest,
    # threads by their first date; subjects compare without case.
    assert render(threads, by_uid) == b"THREAD (6)(2 5)(1 (4)(3))"


def test_references_links_the_chain_of_references() -> None:
    # A message naming its ancestors links them, even those not there:
    # the dummy with one child at the top is pruned (step 3).
    threads = references([
        entry(1, "topic", 10, message_id="<1@x>"),
        entry(2, "Re: topic", 30, message_id="<3@x>", refs=["<1@x>", "<2@x>"]),
    ])
    assert render(threads, by_uid) == b"THREAD (1 2)"


def test_references_in_reply_to_a_missing_message_joins_by_subject() -> None:
    # Step 5: a reply whose parent is not there goes under the thread of
    # its subject; a second original of one subject makes a dummy.
    threads = references([
        entry(1, "topic", 10, message_id="<1@x>"),
        entry(2, "Re: topic", 20, message_id="<2@x>", refs=["<gone@x>"]),
        entry(3, "topic", 30, message_id="<3@x>"),
        entry(4, "other", 40, message_id="<4@x>"),
    ])
    assert render(threads, by_uid) == b"THREAD ((1 2)(3))(4)"


def test_references_duplicate_ids_and_loops() -> None:
    threads = references([
        entry(1, "a", 10, message_id="<1@x>"),
        # The same ID again: the first message keeps it.
        entry(2, "b", 20, message_id="<1@x>"),
        entry(3, "c", 30, message_id="<3@x>", refs=["<1@x>"]),
        # Each names the other: the second link would make a loop.
        entry(4, "d", 40, message_id="<4@x>", refs=["<5@x>"]),
        entry(5, "e", 50, message_id="<5@x>", refs=["<4@x>"]),
        # Naming itself is no link.
        entry(6, "f", 60, message_id="<6@x>", refs=["<6@x>"]),
    ])
    assert render(threads, by_uid) == b"THREAD (1 3)(2)(5 4)(6)"


def test_references_later_message_corrects_a_truncated_chain() -> None:
    # Step 1.B: a message's own last reference is its parent, whatever an
    # earlier message's (truncated) References made of it.
    threads = references([
        entry(1, "one", 10, message_id="<1@x>", refs=["<0@x>", "<3@x>"]),
        entry(2, "two", 20, message_id="<2@x>"),
        entry(3, "three", 30, message_id="<3@x>", refs=["<2@x>"]),
    ])
    assert render(threads, by_uid) == b"THREAD (2 3 1)"


def test_deep_threads_need_no_recursion() -> None:
    depth = 5000
    chain = [entry(1, "deep", 0, message_id="<0@x>")]
    for n in range(1, depth):
        chain.append(entry(n + 1, "deep", n, message_id=f"<{n}@x>", refs=[f"<{n - 1}@x>"]))
    data = render(references(chain), by_uid)
    assert data == b"THREAD (" + b" ".join(b"%d" % n for n in range(1, depth + 1)) + b")"


# -- grammar -------------------------------------------------------------------------


def parse(line: bytes) -> C.Command:
    return parse_command((line,))


def test_parse_sort_and_thread() -> None:
    assert parse(b"A282 SORT (SUBJECT) UTF-8 SINCE 1-Feb-1994") == C.Sort(
        "A282", (Criterion("SUBJECT"),), K.Date("internal", "since", datetime(1994, 2, 1).date()),
        "UTF-8")
    cmd = parse(b'e UID SORT RETURN (MIN COUNT) (REVERSE date displayfrom) "us-ascii" '
                b"UNDELETED UNKEYWORD $Junk")
    assert cmd == C.Sort("e", (Criterion("DATE", True), Criterion("DISPLAYFROM")),
                         K.And((K.Flag("\\Deleted", False), K.Flag("$Junk", False))),
                         "US-ASCII", True, ("MIN", "COUNT"))
    assert parse(b"t THREAD references UTF-8 ALL") == C.Thread("t", "REFERENCES", K.All(),
                                                              "UTF-8")
    assert parse(b"t UID THREAD ORDEREDSUBJECT UTF-8 1:*").uid


@pytest.mark.parametrize("line, message, condition", [
    (b"a SORT", "Missing sort criteria", "BAD"),
    (b"a SORT DATE UTF-8 ALL", "Expected ( before sort criteria", "BAD"),
    (b"a SORT () UTF-8 ALL", "Empty sort criteria", "BAD"),
    (b"a SORT (DATE FOO) UTF-8 ALL", "Unknown sort criterion: FOO", "BAD"),
    (b"a SORT (REVERSE REVERSE DATE) UTF-8 ALL",
     "Expected a sort key after REVERSE, not REVERSE", "BAD"),
    (b"a SORT (DATE) UTF-8", "Missing search criteria", "BAD"),
    (b"a SORT (DATE) ALL", "Missing search criteria", "BAD"),
    (b"a SORT (DATE) UTF-8 NOSUCHKEY", "Unknown search key: NOSUCHKEY", "BAD"),
    (b"a SORT RETURN (RELEVANCY) (DATE) UTF-8 ALL", "Unknown SORT RETURN option: RELEVANCY",
     "BAD"),
    (b"a SORT (DATE) KOI8-R ALL", "Unsupported charset: KOI8-R", "NO"),
    (b"a THREAD UTF-8 ALL", "Unknown threading algorithm: UTF-8", "BAD"),
    (b"a THREAD REFERENCES", "Missing charset", "BAD"),
])
def test_bad_sort_and_thread(line: bytes, message: str, condition: str) -> None:
    with pytest.raises(ParseError) as raised:
        parse(line)
    assert (raised.value.message, raised.value.condition) == (message, condition)


# -- over the wire -------------------------------------------------------------------


async def fill(backend) -> None:
    store = await backend.open_store("alice")
    inbox = await store.get_mailbox("INBOX")
    await inbox.append([AppendRequest(content, internaldate=when) for content, when in MESSAGES])


@on_every_store
class SortTranscriptTests(IMAPServerTestCase):
    async def setUp(self) -> None:
        await super().setUp()
        await fill(self.backend)

    def login(self):
        c = self.raw()
        c.line()
        c.command(b"t0 LOGIN alice wonderland")
        return c

    async def test_sort_thread_and_esort(self) -> None:
        def run():
            c = self.login()
            out = [c.command(b"t1 SORT (DATE) UTF-8 ALL")]
            c.command(b"t2 SELECT INBOX")
            out += [c.command(line) for line in (
                b"t3 SORT (SUBJECT REVERSE DATE) UTF-8 ALL",
                b"t4 UID SORT (REVERSE ARRIVAL) UTF-8 2:11",
                b"t5 SORT (FROM) US-ASCII SUBJECT meeting SINCE 1-Mar-2022",
                b"t6 THREAD REFERENCES UTF-8 ALL",
                b"t7 THREAD ORDEREDSUBJECT UTF-8 ALL",
                b"t8 SORT RETURN (MIN MAX COUNT ALL) (DATE) UTF-8 ALL",
                b"t9 UID SORT RETURN () (SIZE) UTF-8 SUBJECT nothing",
                b"t10 SORT (SUBJECT) UTF-8 TEXT nothing",
                b"t11 THREAD ORDEREDSUBJECT UTF-8 TEXT nothing",
            )]
            c.close()
            return out

        out = await self.in_thread(run)
        self.assertEqual(out[0], [b"t1 BAD SORT not allowed without a selected mailbox\r\n"])
        self.assertEqual(out[1:], [
            [b"* SORT 14 12 9 8 5 6 11 10 7 4 3 2 1 13\r\n", b"t3 OK SORT completed\r\n"],
            [b"* SORT 11 10 9 8 7 5 4 3 2 6\r\n", b"t4 OK SORT completed\r\n"],
            [b"* SORT 1 7 2 3 4 13\r\n", b"t5 OK SORT completed\r\n"],
            [b"* THREAD ((1 (2 (13)(3))(4))(7))(5 6)(9 8)(11 10)(12)(14)\r\n",
             b"t6 OK THREAD completed\r\n"],
            [b"* THREAD (13 (1)(2)(3)(4)(7))(6 5)(8 9)(10 11)(12 14)\r\n",
             b"t7 OK THREAD completed\r\n"],
            [b'* ESEARCH (TAG "t8") MIN 13 MAX 14 ALL 13,6,1:2,5,3:4,7:12,14 COUNT 14\r\n',
             b"t8 OK SORT completed\r\n"],
            [b'* ESEARCH (TAG "t9") UID\r\n', b"t9 OK SORT completed\r\n"],
            [b"* SORT\r\n", b"t10 OK SORT completed\r\n"],
            [b"* THREAD\r\n", b"t11 OK THREAD completed\r\n"],
        ])

    async def test_bad_arguments_say_what_is_wrong(self) -> None:
        def run():
            c = self.login()
            c.command(b"t1 SELECT INBOX")
            out = [c.command(line) for line in (
                b"t2 SORT (DATE FOO) UTF-8 ALL",
                b"t3 SORT (REVERSE) UTF-8 ALL",
                b"t4 SORT (DATE) KOI8-R ALL",
                b"t5 THREAD FOO UTF-8 ALL",
                b"t6 SORT (DATE) UTF-8",
                b"t7 THREAD REFERENCES UTF-8 (SUBJECT",
                b"t8 SORT RETURN (SAVE) (DATE) UTF-8 SUBJECT budget",
                b"t9 FETCH $ (UID)",
            )]
            c.close()
            return out

        out = await self.in_thread(run)
        self.assertEqual(out, [
            [b"t2 BAD Unknown sort criterion: FOO\r\n"],
            [b"t3 BAD Expected SP before sort criterion after REVERSE\r\n"],
            [b"t4 NO [BADCHARSET (US-ASCII UTF-8)] Unsupported charset: KOI8-R\r\n"],
            [b"t5 BAD Unknown threading algorithm: FOO\r\n"],
            [b"t6 BAD Missing search criteria\r\n"],
            [b"t7 BAD Missing search string\r\n"],
            # The session goes on; RETURN (SAVE) keeps the result for "$".
            [b"t8 OK SORT completed\r\n"],
            [b"* 8 FETCH (UID 8)\r\n", b"* 9 FETCH (UID 9)\r\n", b"t9 OK FETCH completed\r\n"],
        ])

    async def test_modseq_criterion(self) -> None:
        def run():
            c = self.login()
            c.command(b"t1 SELECT INBOX")
            c.command(b"t2 STORE 4 +FLAGS (\\Flagged)")
            out = [c.command(b"t3 FETCH 4 (MODSEQ)"),
                   c.command(b"t4 SORT (REVERSE DATE) UTF-8 MODSEQ 1"),
                   c.command(b"t5 SORT RETURN (COUNT) (DATE) UTF-8 FLAGGED MODSEQ 1"),
                   c.command(b"t6 THREAD REFERENCES UTF-8 FLAGGED MODSEQ 1")]
            c.close()
            return out

        out = await self.in_thread(run)
        highest = int(re.search(rb"^\* 4 FETCH \(MODSEQ \((\d+)\)\)", b"".join(out[0]),
                                re.M).group(1))
        # RFC 7162 sections 3.1.9 and 3.1.10: the highest MODSEQ returned.
        self.assertEqual(out[1], [
            b"* SORT 14 12 11 10 9 8 7 4 3 5 2 1 6 13 (MODSEQ %d)\r\n" % highest,
            b"t4 OK SORT completed\r\n"])
        self.assertEqual(out[2], [b'* ESEARCH (TAG "t5") COUNT 1 MODSEQ %d\r\n' % highest,
                                  b"t5 OK SORT completed\r\n"])
        # THREAD is unchanged by CONDSTORE.
        self.assertEqual(out[3], [b"* THREAD (4)\r\n", b"t6 OK THREAD completed\r\n"])

    async def test_expunges_wait_for_sort_but_not_uid_sort(self) -> None:
        def run():
            a, b = self.login(), self.login()
            a.command(b"a1 SELECT INBOX")
            b.command(b"b1 SELECT INBOX")
            b.command(b"b2 STORE 1:3 +FLAGS.SILENT (\\Deleted)")
            b.command(b"b3 EXPUNGE")
            out = [a.command(b"a2 SORT (SUBJECT) UTF-8 SUBJECT meeting"),
                   a.command(b"a3 THREAD ORDEREDSUBJECT UTF-8 SUBJECT meeting"),
                   a.command(b"a4 UID SORT (SUBJECT) UTF-8 SUBJECT meeting"),
                   a.command(b"a5 SORT (SUBJECT) UTF-8 SUBJECT meeting")]
            a.close()
            b.close()
            return out

        out = await self.in_thread(run)
        # RFC 5256 section 3: no EXPUNGE while answering SORT or THREAD;
        # the expunged messages are simply not found.
        self.assertEqual(out[0], [b"* SORT 4 7 13\r\n", b"a2 OK SORT completed\r\n"])
        self.assertEqual(out[1], [b"* THREAD (13 (4)(7))\r\n", b"a3 OK THREAD completed\r\n"])
        self.assertEqual(out[2], [b"* SORT 4 7 13\r\n"] + [b"* 1 EXPUNGE\r\n"] * 3
                         + [b"a4 OK SORT completed\r\n"])
        self.assertEqual(out[3], [b"* SORT 1 4 10\r\n", b"a5 OK SORT completed\r\n"])


@on_every_store
class SortWithIMAPClientTests(IMAPServerTestCase):
    async def setUp(self) -> None:
        await super().setUp()
        await fill(self.backend)

    async def test_imapclient_sort_and_thread(self) -> None:
        def run():
            c = self.imapclient_client()
            caps = c.capabilities()
            c.select_folder("INBOX", readonly=True)
            r = {
                "caps": caps,
                "date": c.sort("REVERSE DATE"),
                "subject": c.sort(["SUBJECT", "DATE"], ["SINCE", "5-Mar-2022"]),
                "display": c.sort("DISPLAYFROM", "NOT FROM alice"),
                "references": c.thread(),
                "ordered": c.thread("ORDEREDSUBJECT", ["SUBJECT", "loop"]),
            }
            c.logout()
            return r

        r = await self.in_thread(run)
        for cap in (b"SORT", b"SORT=DISPLAY", b"THREAD=REFERENCES", b"THREAD=ORDEREDSUBJECT",
                    b"ESORT"):
            self.assertIn(cap, r["caps"])
        self.assertEqual(r["date"], [14, 12, 11, 10, 9, 8, 7, 4, 3, 5, 2, 1, 6, 13])
        self.assertEqual(r["subject"], [12, 14, 8, 9, 5, 10, 11, 13, 7])
        # The display name where there is one, else the address: bob@,
        # Carol, dave@, Erin, frank@, ..., Jürgen Ober, Mallory, Peggy, then
        # the group "Team".
        self.assertEqual(r["display"], [2, 3, 4, 6, 8, 9, 10, 11, 5, 13, 14, 12])
        self.assertEqual(r["references"],
                         (((1, (2, (13,), (3,)), (4,)), (7,)), (5, 6), (9, 8), (11, 10), (12,),
                          (14,)))
        self.assertEqual(r["ordered"], ((10, 11),))


class KeptSortValuesTests(IMAPServerTestCase):
    """
    A message's sort values are read once: the index keeps them for the
    sessions of the process, and a store that keeps summaries keeps them
    for the next process.
    """

    store = "sqlite"

    async def test_second_reading_opens_no_message(self) -> None:
        store = await self.backend.open_store("alice")
        inbox = await store.get_mailbox("INBOX")
        await inbox.append([AppendRequest(content, internaldate=when)
                            for content, when in MESSAGES])
        view, close = index.wrap(inbox)
        self.addCleanup(close)
        uids = await view.uids()
        await view.metadata(uids)
        first = await header_values(view, uids)
        self.assertEqual(len(first), len(MESSAGES))

        def no_opening(*args, **kwargs):
            raise AssertionError("a message was opened")

        inbox.open_messages = inbox.open_message = no_opening
        self.assertEqual(await header_values(view, uids), first)

        # Kept after the answer by a write no one waits for.
        from twisted_mailhub.backends.sql import open_backend

        other = open_backend(self.backend.url.render_as_string(hide_password=False))
        self.addCleanup(other.close)
        box = await (await other.open_store("alice")).get_mailbox("INBOX")
        box.open_messages = box.open_message = no_opening
        fresh, close_fresh = index.wrap(box)
        self.addCleanup(close_fresh)
        await fresh.metadata(await fresh.uids())
        for _ in range(200):
            kept = await box.summaries(uids, [MEMO_NAME])
            if len(kept) == len(uids):
                break
            await task.deferLater(reactor, 0.01, lambda: None)
        self.assertEqual(await header_values(fresh, uids), first)
