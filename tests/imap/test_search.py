"""
Tests for the generic SEARCH evaluator, against a small in-memory mailbox
defined here.
"""

from __future__ import annotations

import base64
from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_mailhub.errors import MessageExpunged
from twisted_mailhub.imap import search as search_module
from twisted_mailhub.imap.search import SearchContext, is_metadata_only, search
from twisted_mailhub.criteria import (
    Age,
    All,
    And,
    Body,
    Date,
    Flag,
    Header,
    ModSeq,
    New,
    Not,
    Or,
    Recent,
    Sequence,
    Size,
    Text,
    Uid,
)
from twisted_mailhub.ranges import SequenceSet
from twisted_mailhub.interfaces import IMailbox, IMessage, ISearchableMailbox, ITextIndexedMailbox
from twisted_mailhub.model import MessageMeta

UTC = timezone.utc
PST = timezone(timedelta(hours=-8))
NOW = datetime(1994, 2, 10, 12, 0, 0, tzinfo=UTC)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def _crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode("utf-8")


# (uid, flags, internaldate, modseq, content)
MESSAGES = [
    (1, {"\\Seen"}, datetime(1994, 2, 1, 23, 30, tzinfo=PST), 10, _crlf(
        "From: Alice Smith <alice@example.org>\n"
        "To: Bob <bob@example.net>\n"
        "Subject: Quarterly report\n"
        "Date: Tue, 1 Feb 1994 21:52:25 -0800\n"
        "Message-ID: <1@example.org>\n"
        "\n"
        "Numbers are up this quarter.\n"
    )),
    (3, {"\\Flagged", "\\Answered"}, datetime(1994, 2, 2, 7, 0, tzinfo=UTC), 20, _crlf(
        "From: =?UTF-8?Q?J=C3=BCrgen?= <juergen@example.de>\n"
        "To: alice@example.org\n"
        "Cc: Carol <carol@example.com>\n"
        f"Subject: =?UTF-8?B?{_b64('Grüße aus Köln')}?=\n"
        "Date: Wed, 2 Feb 1994 08:00:00 +0100\n"
        "\n"
        "See you at the cathedral.\n"
    )),
    (4, set(), datetime(1994, 2, 3, 9, 0, tzinfo=UTC), 30, _crlf(
        "From: dave@example.com\n"
        "To: bob@example.net\n"
        "Subject: Plans\n"
        "Date: Thu, 3 Feb 1994 10:00:00 +0000\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/mixed; boundary="XYZ"\n'
        "\n"
        "--XYZ\n"
        "Content-Type: text/plain; charset=utf-8\n"
        "Content-Transfer-Encoding: base64\n"
        "\n"
        f"{_b64('Meet me for a secret rendezvous at the café.')}\n"
        "--XYZ\n"
        "Content-Type: application/octet-stream\n"
        "Content-Transfer-Encoding: base64\n"
        "\n"
        "AAECAwQFBgc=\n"
        "--XYZ--\n"
    )),
    (7, {"\\Draft", "$Junk"}, datetime(1994, 2, 4, 9, 0, tzinfo=UTC), 40, _crlf(
        "From: eve@example.com\n"
        "Subject: Draft without a date\n"
        "\n"
        "Unfinished.\n"
    )),
    (8, {"\\Deleted"}, datetime(1994, 2, 5, 9, 0, tzinfo=UTC), 50, _crlf(
        "From: spam@example.com\n"
        "Subject: Big one\n"
        "Date: Sat, 5 Feb 1994 09:00:00 +0000\n"
        "\n" + "lorem ipsum dolor\n" * 300
    )),
    (10, {"\\Seen", "$Forwarded"}, datetime(1994, 2, 6, 12, 0, tzinfo=UTC), 60, _crlf(
        "From: frank@example.com\n"
        "To: grace@example.com\n"
        "Bcc: Heidi <heidi@example.com>\n"
        "Subject: Re: lunch\n"
        "X-Mailer:\n"
        "Date: Sun, 6 Feb 1994 12:00:00 +0000\n"
        "\n"
        "Noon works.\n"
    )),
    (11, {"\\Seen"}, datetime(1994, 2, 7, 12, 0, tzinfo=UTC), 70, _crlf(
        "From: ivan@example.fr\n"
        "To: bob@example.net\n"
        "Subject: Nouvelles\n"
        "Date: Mon, 7 Feb 1994 12:00:00 +0100\n"
        "MIME-Version: 1.0\n"
        "Content-Type: text/plain; charset=utf-8\n"
        "Content-Transfer-Encoding: quoted-printable\n"
        "\n"
        "Le caf=C3=A9 est ferm=C3=A9 lundi.\n"
    )),
    (12, {"\\Answered"}, datetime(1994, 2, 8, 12, 0, tzinfo=UTC), 80, _crlf(
        "From: judy@example.com\n"
        "Subject: Late night\n"
        "Date: Mon, 31 Jan 1994 23:30:00 -0800\n"
        "\n"
        "Written just before midnight.\n"
    )),
    (15, set(), NOW - timedelta(days=1), 90, _crlf(
        "From: ken@example.com\n"
        "Cc: alice@example.org\n"
        "Subject: Hello again\n"
        "Date: Wed, 9 Feb 1994 12:00:00 +0000\n"
        "\n"
        "Hi.\n"
    )),
    (16, {"\\Seen"}, NOW - timedelta(seconds=30), 100, _crlf(
        "From: leo@example.com\n"
        "Subject: Just now\n"
        "Date: Thu, 10 Feb 1994 11:59:30 +0000\n"
        "\n"
        "Fresh.\n"
    )),
]

VIEW = [m[0] for m in MESSAGES]
SIZES = {m[0]: len(m[4]) for m in MESSAGES}
CONTENT = {m[0]: m[4] for m in MESSAGES}


@implementer(IMessage)
class FakeMessage:
    def __init__(self, mailbox: "FakeMailbox", meta: MessageMeta, content: bytes) -> None:
        self.mailbox = mailbox
        self.meta = meta
        self.content = content

    async def structure(self):
        from twisted_mailhub.mime.parse import parse_message

        return parse_message(self.content)

    async def read(self, offset=0, length=None):
        self.mailbox.reads.append(self.meta.uid)
        end = None if length is None else offset + length
        return self.content[offset:end]


@implementer(IMailbox)
class FakeMailbox:
    """The parts of IMailbox SEARCH uses, counting what is read."""

    name = "INBOX"
    key = "inbox"
    uidvalidity = 1
    read_only = False

    def __init__(self) -> None:
        self.messages = {
            uid: FakeMessage(self, MessageMeta(uid, frozenset(flags), when, len(content), modseq),
                             content)
            for uid, flags, when, modseq, content in MESSAGES
        }
        # UIDs expunged after the session last looked: metadata() and
        # open_message() no longer find them.
        self.gone: set[int] = set()
        # UIDs expunged between the metadata() and open_message() calls.
        self.gone_on_open: set[int] = set()
        self.metadata_calls: list[list[int]] = []
        self.opened: list[int] = []
        self.reads: list[int] = []

    async def uids(self):
        return sorted(u for u in self.messages if u not in self.gone)

    async def metadata(self, uids):
        self.metadata_calls.append(list(uids))
        return [self.messages[u].meta for u in sorted(uids)
                if u in self.messages and u not in self.gone]

    async def open_message(self, uid):
        self.opened.append(uid)
        if uid not in self.messages or uid in self.gone or uid in self.gone_on_open:
            raise MessageExpunged()
        return self.messages[uid]


def run(coroutine):
    """Drive a coroutine that never waits on anything to its result."""
    outcome = []
    Deferred.fromCoroutine(coroutine).addBoth(outcome.append)
    assert outcome, "the search did not complete synchronously"
    if isinstance(outcome[0], Failure):
        outcome[0].raiseException()
    return outcome[0]


def context(**kwargs) -> SearchContext:
    kwargs.setdefault("uids", VIEW)
    kwargs.setdefault("recent", {15, 16})
    kwargs.setdefault("now", NOW)
    return SearchContext(**kwargs)


def find(key, mailbox=None, **kwargs) -> list[int]:
    return run(search(mailbox or FakeMailbox(), key, context(**kwargs)))


def seqset(text: str) -> SequenceSet:
    return SequenceSet.parse(text)


# -- metadata-only keys -------------------------------------------------------


def test_all_is_the_whole_view():
    assert find(All()) == VIEW
    assert find(And(())) == VIEW


def test_empty_view_matches_nothing():
    assert find(All(), uids=[]) == []
    assert find(Sequence(seqset("1:*")), uids=[]) == []


@pytest.mark.parametrize(
    "key, expected",
    [
        (Flag("\\Seen"), [1, 10, 11, 16]),
        (Flag("\\Seen", present=False), [3, 4, 7, 8, 12, 15]),
        (Flag("\\Answered"), [3, 12]),
        (Flag("\\Answered", present=False), [1, 4, 7, 8, 10, 11, 15, 16]),
        (Flag("\\Flagged"), [3]),
        (Flag("\\Deleted"), [8]),
        (Flag("\\Deleted", present=False), [1, 3, 4, 7, 10, 11, 12, 15, 16]),
        (Flag("\\Draft"), [7]),
        (Flag("\\draft"), [7]),
        (Flag("$Junk"), [7]),
        (Flag("$junk"), [7]),
        (Flag("$Junk", present=False), [1, 3, 4, 8, 10, 11, 12, 15, 16]),
        (Flag("$NoSuchKeyword"), []),
    ],
)
def test_flag_keys(key, expected):
    assert find(key) == expected


def test_recent_old_new():
    assert find(Recent()) == [15, 16]
    assert find(Recent(present=False)) == [1, 3, 4, 7, 8, 10, 11, 12]
    # NEW is \Recent and not \Seen; 16 is recent but seen.
    assert find(New()) == [15]
    assert find(New(), recent=set()) == []


def test_larger_and_smaller_are_strict():
    big = SIZES[8]
    assert big == max(SIZES.values())
    assert find(Size("larger", big - 1)) == [8]
    assert find(Size("larger", big)) == []
    smallest_uid = min(SIZES, key=SIZES.get)
    small = SIZES[smallest_uid]
    assert find(Size("smaller", small)) == []
    assert find(Size("smaller", small + 1)) == [smallest_uid]


def test_internal_date_uses_the_date_in_its_own_zone():
    # Message 1 arrived 23:30 on 1 Feb at -0800, i.e. 2 Feb in UTC: the
    # search compares 1 Feb, as written in its INTERNALDATE.
    assert find(Date("internal", "on", date(1994, 2, 1))) == [1]
    assert find(Date("internal", "on", date(1994, 2, 2))) == [3]
    assert find(Date("internal", "before", date(1994, 2, 2))) == [1]
    assert find(Date("internal", "before", date(1994, 2, 1))) == []
    assert find(Date("internal", "since", date(1994, 2, 8))) == [12, 15, 16]
    assert find(Date("internal", "since", date(1994, 2, 11))) == []


def test_modseq_is_greater_or_equal():
    assert find(ModSeq(60)) == [10, 11, 12, 15, 16]
    assert find(ModSeq(101)) == []
    assert find(ModSeq(1)) == VIEW


def test_older_and_younger_are_inclusive_to_the_second():
    day = 24 * 3600
    # Message 15 arrived exactly one day before NOW, message 16 30s before.
    assert find(Age("younger", day)) == [15, 16]
    assert find(Age("younger", day - 1)) == [16]
    assert find(Age("older", day)) == [1, 3, 4, 7, 8, 10, 11, 12, 15]
    assert find(Age("older", 30)) == VIEW
    assert find(Age("older", 29)) == VIEW
    assert find(Age("younger", 29)) == []


def test_older_and_younger_disregard_fractions_of_a_second():
    """
    RFC 5032 section 2: "exact matching, to the resolution of a second".
    A date kept with a fraction of a second (an APPEND without a date, on
    a store that keeps one) is compared by its whole second, and so is now.
    """
    mailbox = FakeMailbox()
    for uid, fraction in ((1, 999_999), (3, 0), (4, 1)):
        meta = mailbox.messages[uid].meta
        mailbox.messages[uid].meta = MessageMeta(
            uid, meta.flags, NOW - timedelta(seconds=60) + timedelta(microseconds=fraction),
            meta.size, meta.modseq)
    view = dict(uids=[1, 3, 4])
    later = NOW + timedelta(microseconds=500_000)
    for now in (NOW, later):
        assert find(Age("older", 60), mailbox, now=now, **view) == [1, 3, 4]
        assert find(Age("younger", 60), mailbox, now=now, **view) == [1, 3, 4]
        assert find(Age("older", 61), mailbox, now=now, **view) == []
        assert find(Age("younger", 59), mailbox, now=now, **view) == []


def test_now_defaults_to_the_clock():
    # Every message is from 1994: all are older than a minute by the clock.
    assert find(Age("older", 60), now=None) == VIEW


@pytest.mark.parametrize(
    "text, expected",
    [
        ("1", [1]),
        ("2:3", [3, 4]),
        ("1,3,5", [1, 4, 8]),
        ("*", [16]),
        ("9:*", [15, 16]),
        ("*:9", [15, 16]),
        ("1:*", VIEW),
        # Numbers past the end of the view name no message.
        ("11", []),
        ("10:20", [16]),
    ],
)
def test_sequence_sets_use_the_sessions_numbering(text, expected):
    assert find(Sequence(seqset(text))) == expected


def test_sequence_star_is_the_last_message_of_the_view():
    # The session has not been told of message 16 yet.
    assert find(Sequence(seqset("*")), uids=VIEW[:-1]) == [15]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("3:7", [3, 4, 7]),
        ("7:3", [3, 4, 7]),
        ("2", []),
        ("5:6", []),
        ("*", [16]),
        ("12:*", [12, 15, 16]),
        # n:* always includes the largest UID, even when n is larger.
        ("100:*", [16]),
        ("1,8,100", [1, 8]),
    ],
)
def test_uid_sets(text, expected):
    assert find(Uid(seqset(text))) == expected


def test_uid_star_is_the_largest_uid_of_the_view():
    assert find(Uid(seqset("*")), uids=VIEW[:-1]) == [15]


def test_saved_result_for_sequence_and_uid():
    saved = SequenceSet((), saved=True)
    # 99 was expunged since; it is not in the view.
    assert find(Sequence(saved), saved=[3, 12, 99]) == [3, 12]
    assert find(Uid(saved), saved=[12, 3]) == [3, 12]
    assert find(Uid(saved)) == []
    assert find(Or(Sequence(saved), Flag("\\Deleted")), saved=[1]) == [1, 8]


def test_nesting_of_and_or_not():
    seen, recent = Flag("\\Seen"), Recent()
    assert find(And((seen, Not(recent)))) == [1, 10, 11]
    assert find(Or(Flag("\\Flagged"), Flag("\\Deleted"))) == [3, 8]
    assert find(Not(Or(seen, Flag("\\Answered")))) == [4, 7, 8, 15]
    assert find(Not(Not(seen))) == [1, 10, 11, 16]
    assert find(Or(And((seen, recent)), And((Uid(seqset("3:4")), Not(seen))))) == [3, 4, 16]
    assert find(And((Or(seen, recent), Size("smaller", SIZES[8])))) == [1, 10, 11, 15, 16]


# -- economy ------------------------------------------------------------------


def test_metadata_only_search_never_opens_a_message():
    mailbox = FakeMailbox()
    key = And((
        Or(Flag("\\Seen"), Not(Recent())),
        Size("larger", 10),
        Date("internal", "since", date(1994, 1, 1)),
        ModSeq(1),
        Age("older", 1),
        Not(New()),
        Uid(seqset("1:*")),
        Sequence(seqset("1:*")),
    ))
    assert is_metadata_only(key)
    assert find(key, mailbox) == [1, 3, 4, 7, 8, 10, 11, 12, 16]
    assert mailbox.opened == []
    assert mailbox.reads == []


def test_metadata_is_fetched_in_batches(monkeypatch):
    monkeypatch.setattr(search_module, "BATCH_SIZE", 3)
    mailbox = FakeMailbox()
    assert find(Flag("\\Seen"), mailbox) == [1, 10, 11, 16]
    assert mailbox.metadata_calls == [[1, 3, 4], [7, 8, 10], [11, 12, 15], [16]]


def test_uid_and_sequence_keys_narrow_what_metadata_is_fetched():
    mailbox = FakeMailbox()
    find(And((Uid(seqset("3:7")), Flag("\\Seen", present=False))), mailbox)
    assert mailbox.metadata_calls == [[3, 4, 7]]
    mailbox = FakeMailbox()
    find(Or(Sequence(seqset("1")), Sequence(seqset("*"))), mailbox)
    assert mailbox.metadata_calls == [[1, 16]]


def test_messages_gone_from_metadata_do_not_match():
    mailbox = FakeMailbox()
    mailbox.gone = {4, 8}
    assert find(All(), mailbox) == [1, 3, 7, 10, 11, 12, 15, 16]


def test_is_metadata_only():
    assert is_metadata_only(All())
    assert is_metadata_only(Not(Or(Flag("\\Seen"), Uid(seqset("1")))))
    assert not is_metadata_only(Header("subject", "x"))
    assert not is_metadata_only(Date("sent", "on", date(1994, 1, 1)))
    assert is_metadata_only(Date("internal", "on", date(1994, 1, 1)))
    assert not is_metadata_only(And((Flag("\\Seen"), Not(Body("x")))))


# -- the ISearchableMailbox fast path ------------------------------------------


@implementer(ISearchableMailbox)
class SearchableMailbox(FakeMailbox):
    def __init__(self, answer) -> None:
        super().__init__()
        self.answer = answer
        self.asked = []

    async def search(self, key, context):
        self.asked.append((key, context))
        return self.answer


def test_fast_path_answer_is_used():
    mailbox = SearchableMailbox([16, 3])
    ctx = context()
    assert run(search(mailbox, Flag("\\Seen"), ctx)) == [3, 16]
    assert mailbox.asked == [(Flag("\\Seen"), ctx)]
    assert mailbox.metadata_calls == []


def test_fast_path_answer_is_limited_to_the_view():
    # 17 arrived after the session last heard from the mailbox.
    mailbox = SearchableMailbox([1, 17])
    assert find(All(), mailbox) == [1]


def test_fast_path_declining_falls_back_to_the_generic_evaluator():
    mailbox = SearchableMailbox(None)
    assert find(Flag("\\Seen"), mailbox) == [1, 10, 11, 16]
    assert len(mailbox.asked) == 1
    assert mailbox.metadata_calls


def test_fast_path_may_answer_with_a_plain_value():
    @implementer(ISearchableMailbox)
    class Immediate(FakeMailbox):
        def search(self, key, context):
            return [4]

    assert find(All(), Immediate()) == [4]


def test_fast_path_empty_list_is_an_answer():
    mailbox = SearchableMailbox([])
    assert find(All(), mailbox) == []
    assert mailbox.metadata_calls == []


# -- a mailbox's full-text index (ITextIndexedMailbox) ---------------------------


@implementer(ITextIndexedMailbox)
class TextIndexedMailbox(FakeMailbox):
    """
    Answers BODY and TEXT terms as an index would: what the generic
    evaluator finds over all its messages, and a message 17 the session has
    not been told of.
    """

    def __init__(self, declines: bool = False) -> None:
        super().__init__()
        self.declines = declines
        self.asked: list[list[tuple[str, str]]] = []

    async def text_matches(self, terms):
        self.asked.append(list(terms))
        if self.declines:
            return None
        plain, everything = FakeMailbox(), SearchContext(sorted(self.messages), set(), now=NOW)
        return [set(await search(plain, Body(needle) if field == "body" else Text(needle),
                                 everything)) | {17}
                for field, needle in terms]


@pytest.mark.parametrize("key", [
    Body("quarter"), Text("café"), Not(Text("köln")),
    And((Flag("\\Seen"), Not(Body("fermé")))),
    Or(Text("heidi"), Size("larger", SIZES[8])),
])
def test_text_index_answers_body_and_text_without_reading(key):
    mailbox = TextIndexedMailbox()
    assert find(key, mailbox) == find(key, FakeMailbox())
    assert mailbox.opened == [] and mailbox.reads == []
    assert len(mailbox.asked) == 1


def test_text_index_is_asked_each_term_once():
    mailbox = TextIndexedMailbox()
    key = Or(And((Text("café"), Body("quarter"))), Not(Text("café")))
    assert find(key, mailbox) == find(key, FakeMailbox())
    assert mailbox.asked == [[("body", "quarter"), ("text", "café")]]


def test_text_index_with_header_keys_reads_only_structure():
    mailbox = TextIndexedMailbox()
    key = And((Text("café"), Header("subject", "")))
    assert find(key, mailbox) == find(key, FakeMailbox())
    assert mailbox.reads == []


def test_text_index_answer_is_limited_to_the_view():
    # 11 is in the mailbox but not (yet) in the session's view.
    view = [uid for uid in VIEW if uid != 11]
    assert find(Text("café"), TextIndexedMailbox(), uids=view) == [4]


def test_text_index_declining_falls_back_to_reading():
    mailbox = TextIndexedMailbox(declines=True)
    assert find(Text("café"), mailbox) == [4, 11]
    assert mailbox.reads


def test_text_index_is_not_asked_without_text_keys():
    mailbox = TextIndexedMailbox()
    find(And((Flag("\\Seen"), Header("subject", "x"))), mailbox)
    assert mailbox.asked == []


# -- algebra of the combinators (metadata keys) ---------------------------------

_leaves = st.one_of(
    st.sampled_from(
        ["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft", "$Junk", "$Forwarded"]
    ).flatmap(lambda f: st.builds(Flag, st.just(f), st.booleans())),
    st.builds(Recent, st.booleans()),
    st.just(New()),
    st.builds(Size, st.sampled_from(["larger", "smaller"]), st.integers(0, 6000)),
    st.builds(ModSeq, st.integers(0, 110)),
    st.builds(Uid, st.lists(st.integers(1, 20), min_size=1).map(SequenceSet.from_numbers)),
    st.builds(Sequence, st.lists(st.integers(1, 12), min_size=1).map(SequenceSet.from_numbers)),
)
_keys = st.recursive(
    _leaves,
    lambda inner: st.one_of(
        st.builds(Not, inner),
        st.builds(Or, inner, inner),
        st.lists(inner, min_size=1, max_size=3).map(lambda ks: And(tuple(ks))),
    ),
    max_leaves=6,
)


@settings(max_examples=150, deadline=None)
@given(_keys, _keys)
def test_combinators_are_set_operations(a, b):
    found_a, found_b = set(find(a)), set(find(b))
    assert set(find(Not(a))) == set(VIEW) - found_a
    assert set(find(Or(a, b))) == found_a | found_b
    assert set(find(And((a, b)))) == found_a & found_b


# -- keys that need the header or the content ---------------------------------


@pytest.mark.parametrize(
    "key, expected",
    [
        (Header("subject", "report"), [1]),
        (Header("subject", "REPORT"), [1]),
        # Encoded words are decoded; casefolding makes ß match "ss".
        (Header("subject", "köln"), [3]),
        (Header("subject", "GRÜSSE"), [3]),
        (Header("from", "jürgen"), [3]),
        (Header("from", "alice"), [1]),
        (Header("to", "bob"), [1, 4, 11]),
        (Header("cc", "alice"), [15]),
        (Header("bcc", "heidi"), [10]),
        (Header("message-id", "<1@example.org>"), [1]),
        (Header("Message-ID", "1@EXAMPLE"), [1]),
        # An empty string tests for the field's presence.
        (Header("x-mailer", ""), [10]),
        (Header("X-Mailer", ""), [10]),
        (Header("cc", ""), [3, 15]),
        (Header("x-absent", ""), []),
        (Header("subject", "nowhere to be found"), []),
    ],
)
def test_header_keys(key, expected):
    assert find(key) == expected


def test_sent_dates_disregard_time_and_zone():
    # Message 12 was sent 23:30 on 31 Jan at -0800 (1 Feb in UTC).
    assert find(Date("sent", "on", date(1994, 1, 31))) == [12]
    assert find(Date("sent", "before", date(1994, 2, 1))) == [12]
    assert find(Date("sent", "on", date(1994, 2, 1))) == [1]
    # Message 3 was sent 08:00 on 2 Feb at +0100 (07:00 UTC, same day).
    assert find(Date("sent", "on", date(1994, 2, 2))) == [3]
    assert find(Date("sent", "since", date(1994, 2, 6))) == [10, 11, 15, 16]


def test_message_without_date_header_matches_no_sent_key():
    far_past, far_future = date(1900, 1, 1), date(2100, 1, 1)
    everything_dated = [u for u in VIEW if u != 7]
    assert find(Date("sent", "before", far_future)) == everything_dated
    assert find(Date("sent", "since", far_past)) == everything_dated
    assert find(Not(Date("sent", "before", far_future))) == [7]


def test_body_searches_the_decoded_body_only():
    # The text part is base64: the raw message does not contain the word.
    assert b"rendezvous" not in CONTENT[4]
    assert find(Body("RENDEZVOUS")) == [4]
    assert find(Body("Quarterly")) == []
    assert find(Body("quarter")) == [1]
    assert find(Body("fermé")) == [11]


def test_text_searches_header_and_body():
    assert find(Text("quarterly")) == [1]
    assert find(Text("FERMÉ")) == [11]
    assert find(Text("café")) == [4, 11]
    assert find(Text("heidi")) == [10]
    assert find(Text("köln")) == [3]
    assert find(Text("absent everywhere")) == []


def test_content_keys_combine_with_metadata_keys():
    key = And((Or(Header("from", "alice"), Text("rendezvous")), Not(Flag("\\Seen"))))
    assert find(key) == [4]
    assert find(Not(Body("u"))) == [10, 15, 16]
    assert find(Or(Body("noon"), Flag("\\Deleted"))) == [8, 10]


def test_header_keys_open_only_messages_still_in_question():
    mailbox = FakeMailbox()
    assert find(And((Header("subject", "o"), Flag("\\Seen"))), mailbox) == [1, 11, 16]
    assert mailbox.opened == [1, 10, 11, 16]
    assert mailbox.reads == []


def test_body_is_read_only_when_cheaper_keys_do_not_decide():
    mailbox = FakeMailbox()
    assert find(Or(Flag("\\Seen"), Body("rendezvous")), mailbox) == [1, 4, 10, 11, 16]
    assert mailbox.reads == [3, 4, 7, 8, 12, 15]


def test_header_key_decides_before_the_body_is_read():
    mailbox = FakeMailbox()
    assert find(And((Body("e"), Header("subject", "plans"))), mailbox) == [4]
    assert mailbox.reads == [4]


def test_text_found_in_the_header_needs_no_read():
    mailbox = FakeMailbox()
    assert find(Text("Quarterly"), mailbox, uids=[1]) == [1]
    assert mailbox.opened == [1]
    assert mailbox.reads == []


def test_message_expunged_during_search_does_not_match():
    mailbox = FakeMailbox()
    mailbox.gone_on_open = {4, 10}
    assert find(Or(Body("rendezvous"), Header("bcc", "heidi")), mailbox) == []
    # Message 4 is to Bob, but it is gone when its header is looked at.
    assert find(Or(Header("to", "bob"), Flag("\\Seen")), mailbox) == [1, 10, 11, 16]
