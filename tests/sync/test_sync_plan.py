"""Deciding per folder what is already there, what to copy and under which UID."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from twisted_mailhub.model import MessageMeta
from twisted_mailhub.sync import plan
from twisted_mailhub.sync.source import SourceMessage

DAY = datetime(2023, 7, 4, 9, 0, tzinfo=timezone(timedelta(hours=2)))


def source(uid: int, size: int = 100, flags=(), mid: str | None = "", day: int = 0):
    return SourceMessage(uid, frozenset(flags), DAY + timedelta(days=day), size,
                         mid if mid != "" else f"<{uid}@x>")


def target(uid: int, size: int = 100, flags=(), day: int = 0):
    # The same instant in another zone is the same INTERNALDATE.
    when = (DAY + timedelta(days=day)).astimezone(timezone.utc)
    return MessageMeta(uid, frozenset(flags), when, size, 1)


def test_match_by_uid_needs_size_and_date_to_agree():
    pairs, left, others = plan.match_by_uid(
        [source(1), source(2), source(3, size=50), source(5)],
        [target(1, flags={"\\Seen"}), target(3), target(4), target(5, day=1)])
    assert [(s.uid, t.uid) for s, t in pairs] == [(1, 1)]
    assert [s.uid for s in left] == [2, 3, 5]
    assert [t.uid for t in others] == [3, 4, 5]
    assert plan.uid_clashes([source(1), source(3, size=50), source(5)],
                            [target(1), target(3), target(5, day=1), target(9)]) == 2


def test_fingerprints_pair_copies_one_to_one():
    twins = [source(1, mid="<same@x>"), source(2, mid="<same@x>"), source(3, mid="<same@x>")]
    pairs, left = plan.match_by_fingerprint(
        twins + [source(4)],
        [(target(10), "<same@x>"), (target(11), "<same@x>"), (target(12), None),
         (target(13, size=7), "<4@x>")])
    assert [(s.uid, t.uid) for s, t in pairs] == [(1, 10), (2, 11)]
    assert [s.uid for s in left] == [3, 4]
    # No Message-ID on either side still matches on date and size.
    pairs, left = plan.match_by_fingerprint([source(5, mid=None)], [(target(14), None)])
    assert [(s.uid, t.uid) for s, t in pairs] == [(5, 14)] and not left


def test_flag_changes_grouped_by_new_flags():
    pairs = [(source(1, flags={"\\Seen"}), target(1)),
             (source(2, flags={"\\Seen"}), target(2)),
             (source(3), target(3)),
             (source(4, flags={"$A"}), target(4, flags={"$B"}))]
    assert plan.flag_changes(pairs) == {frozenset({"\\Seen"}): [1, 2], frozenset({"$A"}): [4]}


def test_assign_uids_keeps_those_still_possible_first():
    missing = [source(7), source(2), source(9)]
    assert [(m.uid, u) for m, u in plan.assign_uids(missing, True, 5)] == \
        [(7, 7), (9, 9), (2, None)]
    assert [(m.uid, u) for m, u in plan.assign_uids(missing, False, 1)] == \
        [(7, None), (2, None), (9, None)]


def test_batches_bound_count_and_bytes():
    items = [(source(n, size=size), None) for n, size in enumerate([10, 10, 10, 500, 10, 10])]
    sizes = [[m.size for m, _ in run] for run in plan.batches(items, 2, 100)]
    assert sizes == [[10, 10], [10], [500], [10, 10]]
