"""
The consistency check of the SQL store (L{ICheckableBackend.check}).

What is compared, per mailbox row (one transaction each):

  - messages whose content is lost: no C{contents} row, or chunks that do
    not add up to its size.  They cannot be served; a repair removes them
    and records their expunge (clients are told, QRESYNC included);
  - a message size that differs from its content's size (the content wins);
  - the counters STATUS reads (L{COUNTER_COLUMNS}) against the rows;
  - UIDNEXT above every UID used, HIGHESTMODSEQ at least every MODSEQ
    given (of messages and of expunges), the \\Recent floor at most UIDNEXT.

And over the whole database (one transaction), when no user is named:

  - mailboxes, subscriptions, messages, keywords and expunge records
    whose owner row is gone;
  - content reference counts against the messages referring to it, and
    contents nothing refers to;
  - chunks, summaries and full-text rows of contents that are gone, and
    contents missing from the full-text index.

Without repair everything runs in read transactions.  With it, each
mailbox's transaction locks the mailbox row first, as every writer does,
so a repair can run next to a live server.  Every function here runs in a
pool thread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import case, delete, exists, func, insert, select, update
from sqlalchemy.engine import Connection

from twisted_mailhub.backends.sql import fts
from twisted_mailhub.backends.sql.mailbox import remove_messages
from twisted_mailhub.backends.sql.rows import BATCH
from twisted_mailhub.backends.sql.schema import (
    COUNTER_COLUMNS,
    chunks,
    contents,
    expunged,
    keywords,
    mailboxes,
    messages,
    subscriptions,
    summaries,
    users,
)
from twisted_mailhub.backends.sql.store import clear_mailbox
from twisted_mailhub.consistency import CheckReport, Problem
from twisted_mailhub.model import MessagesExpunged

if TYPE_CHECKING:
    from twisted_mailhub.backends.sql.backend import SQLBackend

_COUNTER_NAMES = {
    "message_count": "messages",
    "unseen_count": "unseen",
    "deleted_count": "deleted",
    "recent_count": "recent",
    "total_size": "size",
}


async def check_backend(backend: "SQLBackend", usernames: list[str] | None = None,
                        repair: bool = False) -> CheckReport:
    """
    L{ICheckableBackend.check} of C{backend}: each mailbox of C{usernames}
    in a transaction of its own, then (when no user is named) the rows of
    the whole database.  Removed messages are announced as expunged.
    """
    await backend.ready()
    report = CheckReport()
    boxes = await backend.db.read(mailbox_ids_txn, usernames)
    report.users = len({user for _, user, _ in boxes})
    run = backend.db.write if repair else backend.db.read
    for mailbox_id, user, name in boxes:
        found, removed, modseq = await run(check_mailbox_txn, mailbox_id, user, name, repair)
        report.merge(found)
        if removed:
            backend.notifier.publish(backend.mailbox_key(mailbox_id),
                                     MessagesExpunged(tuple(removed), modseq))
    if usernames is None:
        report.merge(await run(check_store_txn, repair))
    return report


def mailbox_ids_txn(conn: Connection, usernames: list[str] | None
                    ) -> list[tuple[int, str, str]]:
    """
    C{(mailbox id, user name, mailbox name)} of every mailbox of
    C{usernames} (all when C{None}), in user and name order.  Raises
    C{LookupError} for an unknown user.
    """
    query = (
        select(mailboxes.c.id, users.c.username, mailboxes.c.name)
        .join(users, users.c.id == mailboxes.c.user_id)
        .order_by(users.c.username, mailboxes.c.name)
    )
    if usernames is not None:
        found = set(conn.execute(
            select(users.c.username).where(users.c.username.in_(usernames))).scalars())
        missing = [name for name in usernames if name not in found]
        if missing:
            from twisted_mailhub.backends.sql.backend import UnknownUser

            raise UnknownUser(f"No such user: {missing[0]}")
        query = query.where(users.c.username.in_(usernames))
    return [tuple(row) for row in conn.execute(query)]


def check_mailbox_txn(conn: Connection, mailbox_id: int, user: str, name: str, repair: bool
                      ) -> tuple[CheckReport, list[int], int]:
    """
    Check (and with C{repair}, fix) one mailbox row.  Returns the report,
    the UIDs removed for lost content and the MODSEQ of their expunge.
    """
    report = CheckReport(mailboxes=1)
    query = select(mailboxes).where(mailboxes.c.id == mailbox_id)
    box = conn.execute(query.with_for_update() if repair else query).first()
    if box is None:
        return CheckReport(), [], 0  # deleted meanwhile

    def found(kind: str, description: str) -> None:
        report.add(Problem(kind, description, user, name, repaired=repair))

    m = messages.c
    # What was given so far, before any repair adds to it.
    max_uid, max_modseq = conn.execute(
        select(func.coalesce(func.max(m.uid), 0), func.coalesce(func.max(m.modseq), 0))
        .where(m.mailbox_id == mailbox_id)
    ).one()
    gone_uid, gone_modseq = conn.execute(
        select(func.coalesce(func.max(expunged.c.uid), 0),
               func.coalesce(func.max(expunged.c.modseq), 0))
        .where(expunged.c.mailbox_id == mailbox_id)
    ).one()
    fixes: dict[str, Any] = {}
    used_uid = max(int(max_uid), int(gone_uid))
    if box.uidnext <= used_uid:
        found("uidnext", f"UIDNEXT {box.uidnext} is not above UID {used_uid}, already used"
              + (f"; set to {used_uid + 1}" if repair else ""))
        fixes["uidnext"] = used_uid + 1
    uidnext = fixes.get("uidnext", box.uidnext)
    used_modseq = max(int(max_modseq), int(gone_modseq))
    modseq = box.highestmodseq
    if modseq < used_modseq:
        # One more than any given, so that clients that saw a MODSEQ above
        # the old value resynchronise.
        found("highestmodseq", f"HIGHESTMODSEQ {modseq} is below MODSEQ {used_modseq}, "
              "already given" + (f"; set to {used_modseq + 1}" if repair else ""))
        modseq = used_modseq + 1
    if box.recent_floor > uidnext:
        found("recent", f"the \\Recent floor {box.recent_floor} is above UIDNEXT {uidnext}"
              + (f"; set to {uidnext}" if repair else ""))
        fixes["recent_floor"] = uidnext

    counts = _counts(conn, mailbox_id, box.recent_floor)
    report.messages = counts["message_count"]
    wrong = [column for column in COUNTER_COLUMNS if box._mapping[column] != counts[column]]
    if wrong:
        found("counters", "counters disagree with the messages: " + ", ".join(
            f"{_COUNTER_NAMES[column]} {box._mapping[column]} (is {counts[column]})"
            for column in wrong) + ("; corrected" if repair else ""))

    stored = (
        select(func.coalesce(func.sum(func.length(chunks.c.data)), 0))
        .where(chunks.c.content_id == m.content_id)
        .scalar_subquery()
    )
    bad = conn.execute(
        select(m.id, m.uid, m.content_id, m.size, contents.c.id.label("present"),
               contents.c.size.label("content_size"), stored.label("stored"))
        .select_from(messages.outerjoin(contents, contents.c.id == m.content_id))
        .where(m.mailbox_id == mailbox_id)
        .where((contents.c.id.is_(None)) | (stored != contents.c.size)
               | (m.size != contents.c.size))
        .order_by(m.uid)
    ).all()
    lost = [row for row in bad if row.present is None or row.stored != row.content_size]
    resized = [row for row in bad if row.present is not None and row.stored == row.content_size]
    removed: list[int] = []
    if lost:
        uids = [row.uid for row in lost]
        found("lost-content", f"{len(lost)} message(s) whose content is lost "
              f"(UID {_uid_list(uids)})" + ("; removed" if repair else ""))
        if repair:
            modseq += 1
            remove_messages(conn, [row.id for row in lost], [row.content_id for row in lost])
            for start in range(0, len(uids), BATCH):
                conn.execute(delete(expunged).where(
                    expunged.c.mailbox_id == mailbox_id,
                    expunged.c.uid.in_(uids[start:start + BATCH])))
            conn.execute(insert(expunged), [
                {"mailbox_id": mailbox_id, "uid": uid, "modseq": modseq} for uid in uids])
            removed = uids
    if resized:
        found("message-size", f"{len(resized)} message(s) whose size differs from their "
              f"content (UID {_uid_list([row.uid for row in resized])})"
              + ("; sizes corrected" if repair else ""))
        if repair:
            modseq += 1
            for row in resized:
                conn.execute(update(messages).where(m.id == row.id)
                             .values(size=row.content_size, modseq=modseq))

    if repair:
        # Whatever the repairs above changed, the counters become the truth.
        after = _counts(conn, mailbox_id, fixes.get("recent_floor", box.recent_floor))
        fixes.update({column: after[column] for column in COUNTER_COLUMNS
                      if box._mapping[column] != after[column]})
        report.messages = after["message_count"]
    if modseq != box.highestmodseq:
        fixes["highestmodseq"] = modseq
    if repair and fixes:
        conn.execute(update(mailboxes).where(mailboxes.c.id == mailbox_id).values(**fixes))
    return report, removed, modseq


def _counts(conn: Connection, mailbox_id: int, recent_floor: int) -> dict[str, int]:
    """The L{COUNTER_COLUMNS} values the messages of a mailbox add up to."""
    m = messages.c
    actual = conn.execute(
        select(
            func.count(),
            func.coalesce(func.sum(case((m.seen, 0), else_=1)), 0),
            func.coalesce(func.sum(case((m.deleted, 1), else_=0)), 0),
            func.coalesce(func.sum(case((m.uid >= recent_floor, 1), else_=0)), 0),
            func.coalesce(func.sum(m.size), 0),
        ).where(m.mailbox_id == mailbox_id)
    ).one()
    return dict(zip(COUNTER_COLUMNS, (int(value) for value in actual)))


def check_store_txn(conn: Connection, repair: bool) -> CheckReport:
    """Check (and with C{repair}, fix) what belongs to no single mailbox."""
    report = CheckReport()

    def found(kind: str, count: int, what: str, done: str) -> None:
        report.add(Problem(kind, f"{count} {what}" + (f"; {done}" if repair else ""),
                           repaired=repair))

    m = messages.c
    # Mailboxes (with their messages) and subscriptions of users gone.
    homeless = list(conn.execute(select(mailboxes.c.id).where(
        ~exists().where(users.c.id == mailboxes.c.user_id))).scalars())
    if homeless:
        found("orphaned-mailbox", len(homeless), "mailbox(es) of no user", "deleted")
        if repair:
            for mailbox_id in homeless:
                clear_mailbox(conn, mailbox_id)
                conn.execute(delete(mailboxes).where(mailboxes.c.id == mailbox_id))
    unowned = ~exists().where(users.c.id == subscriptions.c.user_id)
    count = _count(conn, subscriptions, unowned)
    if count:
        found("orphaned-subscription", count, "subscription(s) of no user", "deleted")
        if repair:
            conn.execute(delete(subscriptions).where(unowned))

    stray = list(conn.execute(
        select(m.id, m.content_id).where(~exists().where(mailboxes.c.id == m.mailbox_id))))
    if stray:
        found("orphaned-message", len(stray), "message(s) of no mailbox", "deleted")
        if repair:
            remove_messages(conn, [row.id for row in stray], [row.content_id for row in stray])
    for table, column, parent, kind, what in (
        (keywords, keywords.c.message_id, messages.c.id, "orphaned-keyword",
         "keyword row(s) of no message"),
        (expunged, expunged.c.mailbox_id, mailboxes.c.id, "orphaned-expunge",
         "expunge record(s) of no mailbox"),
    ):
        condition = ~exists().where(parent == column)
        count = _count(conn, table, condition)
        if count:
            found(kind, count, what, "deleted")
            if repair:
                conn.execute(delete(table).where(condition))

    # Reference counts, then contents nobody refers to.
    references = (
        select(m.content_id, func.count().label("n")).group_by(m.content_id).subquery()
    )
    actual = func.coalesce(references.c.n, 0)
    miscounted = conn.execute(
        select(contents.c.id, contents.c.refcount, actual.label("n"))
        .select_from(contents.outerjoin(references, references.c.content_id == contents.c.id))
        .where((contents.c.refcount != actual) | (actual == 0))
    ).all()
    # A content whose count reached zero is released, not lost: the server
    # deletes it soon after the EXPUNGE (backends/sql/reaper.py).
    released = [row.id for row in miscounted if row.n == 0 and row.refcount <= 0]
    unused = [row.id for row in miscounted if row.n == 0 and row.refcount > 0]
    if released and repair:
        _drop_contents(conn, released)
    recount = [row for row in miscounted if row.n != 0]
    if recount:
        found("refcount", len(recount), "content reference count(s) wrong", "corrected")
        if repair:
            for row in recount:
                conn.execute(update(contents).where(contents.c.id == row.id)
                             .values(refcount=row.n))
    if unused:
        found("orphaned-content", len(unused), "content(s) no message refers to", "deleted")
        if repair:
            _drop_contents(conn, unused)

    indexed = fts.indexed(conn)
    no_content = [
        (chunks, chunks.c.content_id, "orphaned-chunk", "chunk row(s) of no content"),
        (summaries, summaries.c.content_id, "orphaned-summary", "summary row(s) of no content"),
    ]
    if indexed:
        text_table = fts._table(conn.dialect.name)
        key = text_table.c[fts._KEYS[conn.dialect.name]]
        no_content.append((text_table, key, "orphaned-text", "full-text row(s) of no content"))
    for table, column, kind, what in no_content:
        condition = ~exists().where(contents.c.id == column)
        count = _count(conn, table, condition)
        if count:
            found(kind, count, what, "deleted")
            if repair:
                conn.execute(delete(table).where(condition))
    if indexed:
        # Contents deleted above as unused are not missing from it.
        missing = len(set(conn.execute(
            select(contents.c.id).where(~exists().where(key == contents.c.id))).scalars())
            - set(unused) - set(released))
        if missing:
            found("unindexed-content", missing, "content(s) missing from the full-text index",
                  "indexed")
            if repair:
                fts.fill(conn)
    return report


def _count(conn: Connection, table: Any, condition: Any) -> int:
    return conn.execute(select(func.count()).select_from(table).where(condition)).scalar_one()


def _drop_contents(conn: Connection, ids: list[int]) -> None:
    """Delete contents with their chunks, summaries and full-text rows."""
    indexed = fts.indexed(conn)
    for start in range(0, len(ids), BATCH):
        batch = ids[start:start + BATCH]
        if indexed:
            fts.delete(conn, batch)
        conn.execute(delete(summaries).where(summaries.c.content_id.in_(batch)))
        conn.execute(delete(chunks).where(chunks.c.content_id.in_(batch)))
        conn.execute(delete(contents).where(contents.c.id.in_(batch)))


def _uid_list(uids: list[int], most: int = 10) -> str:
    shown = ", ".join(str(uid) for uid in uids[:most])
    return shown + (f" and {len(uids) - most} more" if len(uids) > most else "")
