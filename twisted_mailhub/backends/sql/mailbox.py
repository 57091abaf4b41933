"""
L{SQLMailbox} and L{SQLMessage}: one mailbox row and its messages.

Each operation is one transaction run in the backend's thread pool by a
function named C{_..._txn}; events are published on the reactor thread
once that transaction has committed.  Counters live on the mailbox row,
which every writer locks first, so concurrent writers to one mailbox
queue up instead of interleaving.  Besides UIDNEXT and HIGHESTMODSEQ they
are the counts STATUS reports (L{COUNTER_COLUMNS}): every transaction that
adds or removes messages or changes \\Seen or \\Deleted adjusts them by
what it changed, so STATUS reads one row whatever the mailbox's size.
"""

from __future__ import annotations

import json
from dataclasses import replace

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Hashable, Iterable

from sqlalchemy import (
    ARRAY,
    BigInteger,
    and_,
    any_,
    bindparam,
    delete,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection, Row
from zope.interface import implementer

from twisted_mailhub.backends.base import BaseMailbox, summarize
from twisted_mailhub.backends.identity import MAX_UID, check_identity, next_uid
from twisted_mailhub.backends.identity import refuse_new_uidvalidity
from twisted_mailhub.backends.sql import content as content_store
from twisted_mailhub.backends.sql import summaries as summary_store
from twisted_mailhub.backends.sql import fts
from twisted_mailhub.backends.sql.rows import (
    BATCH,
    META_COLUMNS,
    binary_rows,
    date_columns,
    driver_rows,
    internaldate,
    flags_of,
    load_metas,
    load_rows,
    lock_mailbox,
    meta_of,
    row_uid,
    saved_us,
    split_flags,
    uid_conditions,
)
from twisted_mailhub.backends.sql.schema import (
    CHUNK_SIZE,
    COUNTER_COLUMNS,
    FLAG_COLUMNS,
    chunks,
    contents,
    expunged,
    keywords,
    mailboxes,
    messages,
    users,
)
from twisted_mailhub.backends.sql.schema import summaries as summaries_table
from twisted_mailhub.errors import MessageExpunged, ReadOnlyMailbox
from twisted_mailhub.interfaces import (
    IBulkMessageAccess,
    IContentAccess,
    ICopyableMailbox,
    IMessage,
    IMoveableMailbox,
    IRemovableMailbox,
    IRestorableMailbox,
    ISearchableMailbox,
    ISummarizer,
    ISummaryStore,
)
from twisted_mailhub.model import (
    AppendRequest,
    FlagsChanged,
    FlagUpdate,
    MailboxRemoved,
    MailboxStatus,
    MessageMeta,
    MessagesAdded,
    MessagesExpunged,
    kept_object_id,
)

if TYPE_CHECKING:
    from twisted_mailhub.backends.sql.backend import SQLBackend


@implementer(IMessage)
class SQLMessage:
    """A message row; its content is read in chunk-sized ranges on demand."""

    def __init__(self, backend: "SQLBackend", meta: MessageMeta, content_id: int,
                 structure: Any = None, content: bytes | None = None) -> None:
        self.meta = meta
        self._backend = backend
        self._content_id = content_id
        # A MessageStructure, or the JSON text stored at APPEND until asked
        # for: a FETCH of BODY[] or a POP3 RETR never needs it parsed.
        self._structure: Any = structure
        # The whole content of a small message, read with its row.
        self._content = content

    async def structure(self) -> Any:
        """The L{MessageStructure} stored at APPEND (never re-parsed)."""
        if isinstance(self._structure, str):
            from twisted_mailhub.mime.structure import MessageStructure

            self._structure = MessageStructure.from_json(json.loads(self._structure))
        if self._structure is None:
            data = await self._backend.db.read_statements(content_store.load_structure,
                                                           self._content_id)
            if data is None:
                raise MessageExpunged("Message has been expunged")
            from twisted_mailhub.mime.structure import MessageStructure

            self._structure = MessageStructure.from_json(data)
        return self._structure

    async def read(self, offset: int = 0, length: int | None = None) -> bytes:
        """Up to C{length} bytes from C{offset}; reads only the chunks needed."""
        if self._content is not None:
            offset = max(0, offset)
            end = len(self._content) if length is None else offset + max(0, length)
            return self._content[offset:end]
        data = await self._backend.db.read_statements(
            content_store.read_range, self._content_id, self.meta.size, offset, length
        )
        end = self.meta.size if length is None else min(self.meta.size, offset + length)
        if not data and 0 <= offset < end:
            # Bytes were due but no chunk was left: the content is gone.
            raise MessageExpunged("Message has been expunged")
        return data


@implementer(ISearchableMailbox, ICopyableMailbox, IMoveableMailbox, IRemovableMailbox,
             IBulkMessageAccess, IContentAccess, ISummaryStore, IRestorableMailbox)
class SQLMailbox(BaseMailbox):
    """One selectable C{mailboxes} row as an L{IMailbox}."""

    def __init__(self, backend: "SQLBackend", mailbox_id: int, name: str,
                 uidvalidity: int, read_only: bool) -> None:
        self._backend = backend
        self.mailbox_id = mailbox_id
        self.name = name
        self.uidvalidity = uidvalidity
        self.read_only = read_only
        self.key: Hashable = backend.mailbox_key(mailbox_id)
        self.notifier = backend.notifier

    def __repr__(self) -> str:
        return f"<SQLMailbox {self.name!r} id={self.mailbox_id}>"

    def _check_writable(self) -> None:
        if self.read_only:
            raise ReadOnlyMailbox(f"Mailbox is read-only: {self.name}")

    # -- reading ----------------------------------------------------------------

    async def status(self) -> MailboxStatus:
        return await self._backend.db.read_statements(_status_txn, self.mailbox_id)

    async def uids(self) -> list[int]:
        return await self._backend.db.read_statements(_uids_txn, self.mailbox_id)

    async def metadata(self, uids: Iterable[int]) -> list[MessageMeta]:
        uids = sorted(set(uids))
        if not uids:
            return []
        return await self._backend.db.read(load_metas, self.mailbox_id, uids)

    async def open_message(self, uid: int) -> SQLMessage:
        # One transaction (one thread hop) for the row, its structure and,
        # for a small message, its content: FETCH of many small messages is
        # bound by round trips, not bytes.  Without a transaction: the
        # statement is the only one.
        found = await self._backend.db.read_statements(_open_txn, self.mailbox_id, uid)
        if found is None:
            raise MessageExpunged(f"Message {uid} has been expunged")
        row, kws, structure, content = found
        return SQLMessage(self._backend, meta_of(row, kws), row.content_id, structure, content)

    async def open_messages(self, uids: Iterable[int]) -> list[SQLMessage]:
        # One statement per batch, each message whole in one: they need no
        # snapshot in common (one expunged in between reads as gone).
        opened = await self._backend.db.read_statements(_open_many_txn, self.mailbox_id,
                                                        list(uids))
        return [
            SQLMessage(self._backend, meta_of(row, kws), row.content_id, structure, content)
            for row, kws, structure, content in opened
        ]

    async def contents(self, uids: Iterable[int], limit: int) -> dict[int, bytes]:
        """L{IContentAccess}: the chunks of the messages, one statement per batch."""
        wanted = sorted(set(uids))
        if not wanted:
            return {}
        return await self._backend.db.read(_contents_txn, self.mailbox_id, wanted, limit)

    async def summaries(self, uids: Iterable[int], names: Iterable[str],
                        ) -> dict[int, dict[str, bytes]]:
        """L{ISummaryStore}: kept summaries, one statement per batch of messages."""
        wanted, names = sorted(set(uids)), sorted(set(names))
        if not wanted or not names:
            return {}
        # Kept summaries never change: no snapshot needed across statements.
        return await self._backend.db.read_statements(summary_store.read, self.mailbox_id,
                                                      wanted, names)

    async def keep_summaries(self, values: dict[int, dict[str, bytes]]) -> None:
        """L{ISummaryStore}: add the summaries not kept yet."""
        if values:
            await self._backend.db.write(summary_store.keep, self.mailbox_id, values)

    async def changes_since(self, modseq: int) -> tuple[list[MessageMeta], list[int]]:
        return await self._backend.db.read(_changes_txn, self.mailbox_id, modseq)

    async def claim_recent(self, claim: bool = True) -> list[int]:
        if claim:
            return await self._backend.db.write(_claim_recent_txn, self.mailbox_id, True)
        return await self._backend.db.read(_claim_recent_txn, self.mailbox_id, False)

    async def search(self, key: Any, context: Any) -> list[int] | None:
        from twisted_mailhub.backends.sql.search import compile_key

        db = self._backend.db
        text_index = fts.known(db.engine)
        if text_index is None:
            text_index = await db.read(fts.indexed)
        compiled = compile_key(key, context, db.dialect, text_index=text_index)
        if compiled is None:
            return None
        # Without text: one statement, which needs no transaction around it.
        read = db.read if compiled.text else db.read_statements
        return await read(_search_txn, self.mailbox_id, compiled)

    # -- writing ----------------------------------------------------------------

    async def append(self, requests: Iterable[AppendRequest], origin: Hashable | None = None,
                     ) -> list[MessageMeta]:
        self._check_writable()
        requests = list(requests)
        if not requests:
            return []
        db = self._backend.db
        # Decode the text unless the database is known to have no index.
        with_text = fts.supported(db.dialect) and fts.known(db.engine) is not False
        summarizer = self._backend.summarizer
        # Parsed in the thread that then writes (one hop, not two), before
        # it queues for the writer's mutex; concurrent APPENDs share a
        # commit (and its fsync).
        metas = await db.write_grouped(
            _append_txn, self.mailbox_id,
            prepare=lambda: _prepare(requests, with_text, summarizer))
        self._publish(MessagesAdded(tuple(metas), origin))
        return metas

    async def restore_identity(self, uidvalidity: int, uidnext: int = 1) -> MailboxStatus:
        """L{IRestorableMailbox}: one transaction, L{_restore_txn}."""
        self._check_writable()
        check_identity(uidvalidity, uidnext)
        changed, status = await self._backend.db.write(
            _restore_txn, self.mailbox_id, uidvalidity, uidnext
        )
        self.uidvalidity = status.uidvalidity
        if changed:
            self._publish(MailboxRemoved())
        return status

    async def store_flags(self, uids: Iterable[int], mode: str, flags: Iterable[str],
                          unchangedsince: int | None = None, origin: Hashable | None = None,
                          ) -> FlagUpdate:
        self._check_writable()
        if mode not in ("set", "add", "remove"):
            raise ValueError(f"Unknown flag store mode: {mode!r}")
        uids = sorted(set(uids))
        if not uids:
            return FlagUpdate()
        result = await self._backend.db.write(
            _store_txn, self.mailbox_id, uids, mode, frozenset(flags), unchangedsince
        )
        if result.changed:
            self._publish(FlagsChanged(tuple(result.changed), origin))
        return result

    async def expunge(self, uids: Iterable[int] | None = None, origin: Hashable | None = None,
                      ) -> list[int]:
        self._check_writable()
        wanted = None if uids is None else sorted(set(uids))
        if wanted == []:
            return []
        removed, modseq = await self._backend.db.write(_expunge_txn, self.mailbox_id, wanted)
        if removed:
            self._publish(MessagesExpunged(tuple(removed), modseq, origin))
        return removed

    async def copy_to(self, uids: Iterable[int], destination: Any, origin: Hashable | None = None,
                      ) -> list[tuple[int, int]] | None:
        if not isinstance(destination, SQLMailbox) or destination._backend is not self._backend:
            return None
        destination._check_writable()
        uids = sorted(set(uids))
        if not uids:
            return []
        pairs, metas = await self._backend.db.write(
            _copy_txn, self.mailbox_id, destination.mailbox_id, uids
        )
        if metas:
            destination._publish(MessagesAdded(tuple(metas), origin))
        return pairs

    async def move_to(self, uids: Iterable[int], destination: Any, origin: Hashable | None = None,
                      ) -> list[tuple[int, int]] | None:
        """L{IMoveableMailbox}: one transaction (L{_move_txn}) within this database."""
        if not isinstance(destination, SQLMailbox) or destination._backend is not self._backend:
            return None
        self._check_writable()
        destination._check_writable()
        uids = sorted(set(uids))
        if not uids:
            return []
        pairs, metas, modseq = await self._backend.db.write(
            _move_txn, self.mailbox_id, destination.mailbox_id, uids
        )
        if pairs:
            self._publish(MessagesExpunged(tuple(old for old, _ in pairs), modseq, origin))
            destination._publish(MessagesAdded(tuple(metas), origin))
        return pairs

    async def remove(self, uids: Iterable[int], origin: Hashable | None = None) -> list[int]:
        """L{IRemovableMailbox}: expunge the existing C{uids} whatever their flags."""
        self._check_writable()
        wanted = sorted(set(uids))
        if not wanted:
            return []
        removed, modseq = await self._backend.db.write(_expunge_txn, self.mailbox_id, wanted, True)
        if removed:
            self._publish(MessagesExpunged(tuple(removed), modseq, origin))
        return removed


# -- transactions (run in a pool thread) -------------------------------------


def _status_txn(conn: Connection, mailbox_id: int) -> MailboxStatus:
    return status_of_row(conn.execute(select(mailboxes).where(mailboxes.c.id == mailbox_id)).one())


def status_of_row(box: Row) -> MailboxStatus:
    """The L{MailboxStatus} a C{mailboxes} row holds (its counters)."""
    return MailboxStatus(
        messages=box.message_count,
        uidnext=box.uidnext,
        uidvalidity=box.uidvalidity,
        unseen=box.unseen_count,
        highestmodseq=box.highestmodseq,
        recent=box.recent_count,
        size=box.total_size,
        deleted=box.deleted_count,
        identity=box.object_id,
    )


def _counted(mailbox_id: int, **deltas: int) -> Any:
    """
    The UPDATE of a mailbox row adding C{deltas} (by column name, among
    L{COUNTER_COLUMNS}) to its counters; further C{.values()} may be added.
    """
    assert set(deltas) <= set(COUNTER_COLUMNS), deltas
    values = {name: mailboxes.c[name] + delta for name, delta in deltas.items() if delta}
    return update(mailboxes).where(mailboxes.c.id == mailbox_id).values(**values)


def _uids_txn(conn: Connection, mailbox_id: int) -> list[int]:
    return list(conn.execute(
        select(messages.c.uid).where(messages.c.mailbox_id == mailbox_id).order_by(messages.c.uid)
    ).scalars())


def _changes_txn(conn: Connection, mailbox_id: int, modseq: int,
                 ) -> tuple[list[MessageMeta], list[int]]:
    metas = load_metas(conn, mailbox_id, None, [messages.c.modseq > modseq])
    gone = conn.execute(
        select(expunged.c.uid)
        .where(expunged.c.mailbox_id == mailbox_id, expunged.c.modseq > modseq)
        .order_by(expunged.c.uid)
    ).scalars().all()
    return metas, list(gone)


def _claim_recent_txn(conn: Connection, mailbox_id: int, claim: bool) -> list[int]:
    if claim:
        box = lock_mailbox(conn, mailbox_id)
    else:
        box = conn.execute(select(mailboxes).where(mailboxes.c.id == mailbox_id)).one()
    recent = list(conn.execute(
        select(messages.c.uid)
        .where(messages.c.mailbox_id == mailbox_id, messages.c.uid >= box.recent_floor)
        .order_by(messages.c.uid)
    ).scalars())
    if claim and (box.recent_floor != box.uidnext or box.recent_count):
        conn.execute(
            update(mailboxes).where(mailboxes.c.id == mailbox_id)
            .values(recent_floor=box.uidnext, recent_count=0)
        )
    return recent


def _search_txn(conn: Connection, mailbox_id: int, compiled: Any) -> list[int]:
    from twisted_mailhub.backends.sql.search import search_query

    if compiled.text:
        fts.before_search(conn)
    return list(conn.execute(search_query(mailbox_id, compiled)).scalars())


def _prepare(requests: list[AppendRequest], with_text: bool,
             summarizer: ISummarizer | None = None) -> list[tuple]:
    """
    Parse (and decode the text for the full-text index, when C{with_text};
    compute the summaries, when there is a C{summarizer}) outside the
    write transaction, so the writer lock is held briefly.
    """
    prepared = []
    for request in requests:
        when = request.internaldate or datetime.now(timezone.utc).replace(microsecond=0)
        system, kws = split_flags(request.flags)
        structure = content_store.parse(request.content)
        prepared.append((
            request.content,
            content_store.content_row(request.content, structure),
            system,
            kws,
            date_columns(when),
            fts.index_text(request.content, structure) if with_text else None,
            request.uid,
            kept_object_id(request.identity),
            summarize(summarizer, request.content, structure),
        ))
    return prepared


def _append_txn(conn: Connection, mailbox_id: int, prepared: list) -> list[MessageMeta]:
    box = lock_mailbox(conn, mailbox_id)
    uid, modseq = box.uidnext, box.highestmodseq + 1
    metas, texts = [], []
    unseen = deleted = size = 0
    saved = _now()
    kept = []
    for data, row, system, kws, dates, text, wanted, identity, values in prepared:
        uid = next_uid(uid, wanted)
        content_id = content_store.insert_content(conn, data, row, refcount=1)
        kept.extend({"content_id": content_id, "name": name, "data": value}
                    for name, value in values.items())
        if text is not None:
            texts.append((content_id, *text))
        message_id = conn.execute(
            insert(messages).values(
                mailbox_id=mailbox_id, uid=uid, content_id=content_id, modseq=modseq,
                size=len(data), **system, **dates, object_id=identity,
                saved_us=saved_us(saved),
            )
        ).inserted_primary_key[0]
        if kws:
            conn.execute(insert(keywords), [{"message_id": message_id, "keyword": k} for k in kws])
        values = {**system, "uid": uid, "modseq": modseq, "size": len(data), **dates}
        metas.append(MessageMeta(
            uid=uid,
            flags=flags_of(values, kws),
            internaldate=_date_of(dates),
            size=len(data),
            modseq=modseq,
            identity=identity,
            saved=saved,
        ))
        unseen += not system["seen"]
        deleted += system["deleted"]
        size += len(data)
        uid += 1
    if texts and fts.indexed(conn):
        fts.insert(conn, texts)
    if kept:
        # With the message, in its transaction: FETCH of its ENVELOPE or
        # BODYSTRUCTURE never needs its content, in any process.
        conn.execute(summaries_table.insert(), kept)
    # Every new UID is >= recent_floor (which is at most UIDNEXT): all are \Recent.
    conn.execute(
        _counted(mailbox_id, message_count=len(metas), unseen_count=unseen,
                 deleted_count=deleted, recent_count=len(metas), total_size=size)
        .values(uidnext=uid, highestmodseq=modseq)
    )
    return metas


def _restore_txn(conn: Connection, mailbox_id: int, uidvalidity: int, uidnext: int,
                 ) -> tuple[bool, MailboxStatus]:
    """
    L{IRestorableMailbox.restore_identity}: whether the UIDVALIDITY
    changed, and the new status.  A mailbox that has never held a message
    has no message or expunge rows and its first HIGHESTMODSEQ.
    """
    box = lock_mailbox(conn, mailbox_id)
    changed = box.uidvalidity != uidvalidity
    if changed:
        held = box.message_count or box.highestmodseq != 1 or conn.execute(
            select(expunged.c.uid).where(expunged.c.mailbox_id == mailbox_id).limit(1)
        ).first()
        if held:
            raise refuse_new_uidvalidity(box.name, box.uidvalidity, uidvalidity)
        conn.execute(update(mailboxes).where(mailboxes.c.id == mailbox_id).values(
            uidvalidity=uidvalidity, uidnext=uidnext,
            recent_floor=min(box.recent_floor, uidnext)))
        if uidvalidity < MAX_UID:
            # The user's later mailboxes must not be given this value again.
            conn.execute(update(users).where(
                users.c.id == box.user_id, users.c.next_uidvalidity <= uidvalidity,
            ).values(next_uidvalidity=uidvalidity + 1))
    elif uidnext > box.uidnext:
        conn.execute(update(mailboxes).where(mailboxes.c.id == mailbox_id)
                     .values(uidnext=uidnext))
    return changed, _status_txn(conn, mailbox_id)


def _now() -> datetime:
    """A save date: now, to the microsecond the C{saved_us} column keeps."""
    return datetime.now(timezone.utc)


def _date_of(dates: dict[str, int]) -> datetime:
    return internaldate(dates["internal_us"], dates["internal_tz"])


def _store_txn(conn: Connection, mailbox_id: int, uids: list[int], mode: str,
               flags: frozenset[str], unchangedsince: int | None) -> FlagUpdate:
    system, kws = split_flags(flags)
    if (mode != "set" and not kws and unchangedsince is None and any(system.values())
            and conn.dialect.update_returning):
        return _store_system_txn(conn, mailbox_id, uids, mode,
                                 {column for column, on in system.items() if on})
    box = lock_mailbox(conn, mailbox_id)
    wanted_system = {column for column, on in system.items() if on}
    modseq = box.highestmodseq + 1
    result = FlagUpdate()
    updates, kw_added, kw_removed = [], [], []
    unseen = deleted = 0
    for row, old_kws in load_rows(conn, mailbox_id, uids):
        if unchangedsince is not None and row.modseq > unchangedsince:
            result.modified.append(row.uid)
            continue
        old_system = {column for column in FLAG_COLUMNS.values() if row._mapping[column]}
        if mode == "set":
            new_system, new_kws = set(wanted_system), set(kws)
        elif mode == "add":
            new_system, new_kws = old_system | wanted_system, old_kws | kws
        else:
            new_system, new_kws = old_system - wanted_system, old_kws - kws
        if new_system == old_system and new_kws == old_kws:
            continue
        values = {column: column in new_system for column in FLAG_COLUMNS.values()}
        unseen += ("seen" in old_system) - ("seen" in new_system)
        deleted += ("deleted" in new_system) - ("deleted" in old_system)
        updates.append({"b_id": row.id, **values})
        kw_added += [{"message_id": row.id, "keyword": k} for k in new_kws - old_kws]
        kw_removed += [{"b_id": row.id, "b_kw": k} for k in old_kws - new_kws]
        result.changed.append(replace(
            meta_of(row, ()), flags=flags_of(values, new_kws), modseq=modseq))
    if not updates:
        return result
    conn.execute(
        update(messages)
        .where(messages.c.id == bindparam("b_id"))
        .values(modseq=modseq, **{c: bindparam(c) for c in FLAG_COLUMNS.values()}),
        updates,
    )
    if kw_removed:
        conn.execute(
            delete(keywords).where(
                keywords.c.message_id == bindparam("b_id"), keywords.c.keyword == bindparam("b_kw")
            ),
            kw_removed,
        )
    if kw_added:
        conn.execute(insert(keywords), kw_added)
    conn.execute(
        _counted(mailbox_id, unseen_count=unseen, deleted_count=deleted)
        .values(highestmodseq=modseq)
    )
    return result


def _store_system_txn(conn: Connection, mailbox_id: int, uids: list[int], mode: str,
                      columns: set[str]) -> FlagUpdate:
    """
    STORE +FLAGS / -FLAGS of system flags only, as set operations: one
    UPDATE ... RETURNING per run of UIDs changes exactly the rows whose
    flags differ, instead of reading every row and writing it back.
    """
    box = lock_mailbox(conn, mailbox_id)
    value = mode == "add"
    modseq = box.highestmodseq + 1
    result = FlagUpdate()
    counts = {"unseen_count": 0, "deleted_count": 0}
    changed: list[tuple] = []
    for condition in uid_conditions(messages.c.uid, uids):
        where = [messages.c.mailbox_id == mailbox_id, condition,
                 or_(*(messages.c[column] != value for column in columns))]
        # The counters move by the rows whose \Seen / \Deleted will flip.
        for column, counter, sign in (("seen", "unseen_count", -1), ("deleted", "deleted_count", 1)):
            if column in columns:
                flips = conn.execute(select(func.count()).select_from(messages).where(
                    *where, messages.c[column] != value)).scalar_one()
                counts[counter] += flips * (sign if value else -sign)
        changed.extend(driver_rows(conn, (
            update(messages).where(*where)
            .values(modseq=modseq, **{column: value for column in columns})
            .returning(*META_COLUMNS)
        )))
    if not changed:
        return result
    changed.sort(key=row_uid)
    kws: dict[int, set[str]] = {}
    for condition in uid_conditions(messages.c.uid, [row_uid(row) for row in changed]):
        for uid, keyword in conn.execute(
                select(messages.c.uid, keywords.c.keyword)
                .join(keywords, keywords.c.message_id == messages.c.id)
                .where(messages.c.mailbox_id == mailbox_id, condition)):
            kws.setdefault(uid, set()).add(keyword)
    result.changed = [meta_of(row, kws.get(row_uid(row), ())) for row in changed]
    conn.execute(_counted(mailbox_id, **counts).values(highestmodseq=modseq))
    return result


def remove_messages(conn: Connection, ids: list[int], content_ids: list[int]) -> None:
    """Delete message rows (with keywords) and release their contents."""
    for start in range(0, len(ids), BATCH):
        batch = ids[start:start + BATCH]
        conn.execute(delete(keywords).where(keywords.c.message_id.in_(batch)))
        conn.execute(delete(messages).where(messages.c.id.in_(batch)))
    content_store.release(conn, content_ids)


def _expunge_txn(conn: Connection, mailbox_id: int, uids: list[int] | None,
                 any_flags: bool = False) -> tuple[list[int], int]:
    """
    Remove the messages among C{uids} (all when C{None}) flagged \\Deleted,
    or whatever their flags with C{any_flags}; return their UIDs and the
    MODSEQ of the expunge.
    """
    box = lock_mailbox(conn, mailbox_id)
    m = messages.c
    where = [m.mailbox_id == mailbox_id]
    if not any_flags:
        where.append(m.deleted.is_(True))
    conditions = [None] if uids is None else list(uid_conditions(m.uid, uids))
    doomed = []
    for condition in conditions:
        query = select(m.id, m.uid, m.content_id, m.seen, m.deleted, m.size).where(*where)
        if condition is not None:
            query = query.where(condition)
        doomed += conn.execute(query).all()
    if not doomed:
        return [], box.highestmodseq
    modseq = box.highestmodseq + 1
    doomed.sort(key=lambda row: row.uid)
    remove_messages(conn, [row.id for row in doomed], [row.content_id for row in doomed])
    conn.execute(
        insert(expunged),
        [{"mailbox_id": mailbox_id, "uid": row.uid, "modseq": modseq} for row in doomed],
    )
    conn.execute(
        _counted(
            mailbox_id,
            message_count=-len(doomed),
            unseen_count=-sum(1 for row in doomed if not row.seen),
            deleted_count=-sum(1 for row in doomed if row.deleted),
            recent_count=-sum(1 for row in doomed if row.uid >= box.recent_floor),
            total_size=-sum(row.size for row in doomed),
        ).values(highestmodseq=modseq)
    )
    return [row.uid for row in doomed], modseq


def _copy_txn(conn: Connection, source_id: int, target_id: int, uids: list[int],
              ) -> tuple[list[tuple[int, int]], list[MessageMeta]]:
    # Lock in id order so two opposite COPYs cannot deadlock.
    locked = {mid: lock_mailbox(conn, mid) for mid in sorted({source_id, target_id})}
    target = locked[target_id]
    found = load_rows(conn, source_id, uids)
    if not found:
        return [], []
    first, modseq = target.uidnext, target.highestmodseq + 1
    # RFC 8514 section 3: a copy is saved now, whenever the original was.
    saved = _now()
    pairs, metas, refs = [], [], {}
    copied_keywords: dict[int, frozenset[str]] = {}
    unseen = deleted = size = 0
    for uid, (row, kws) in enumerate(found, start=first):
        if kws:
            copied_keywords[uid] = kws
        refs[row.content_id] = refs.get(row.content_id, 0) + 1
        metas.append(replace(meta_of(row, kws), uid=uid, modseq=modseq, saved=saved))
        pairs.append((row.uid, uid))
        unseen += not row.seen
        deleted += bool(row.deleted)
        size += row.size
    last = first + len(found) - 1
    runs = _runs(pairs)
    if len(runs) <= _COPY_RUNS:
        # A run of consecutive UIDs is copied by the database itself, one
        # INSERT ... SELECT, its UIDs shifted to the new ones.
        for low, high, new in runs:
            conn.execute(_copied_run(source_id, target_id, low, high, new - low, modseq,
                                     saved_us(saved)))
    else:
        rows = [_copied_row(row, target_id, uid, modseq, saved_us(saved))
                for uid, (row, _) in enumerate(found, start=first)]
        # One multi-row INSERT per batch.
        for start in range(0, len(rows), BATCH):
            conn.execute(insert(messages), rows[start:start + BATCH])
    # The new rows' ids are read back by their (new, consecutive) UIDs for
    # the keywords.
    if copied_keywords:
        new_ids = dict(conn.execute(
            select(messages.c.uid, messages.c.id)
            .where(messages.c.mailbox_id == target_id, messages.c.uid.between(first, last))
        ).all())
        conn.execute(insert(keywords), [
            {"message_id": new_ids[uid], "keyword": k}
            for uid, kws in copied_keywords.items() for k in sorted(kws)
        ])
    content_store.add_references(conn, refs)
    # The new UIDs are >= the target's recent_floor: all are \Recent there.
    conn.execute(
        _counted(target_id, message_count=len(found), unseen_count=unseen,
                 deleted_count=deleted, recent_count=len(found), total_size=size)
        .values(uidnext=last + 1, highestmodseq=modseq)
    )
    return pairs, metas


#: Runs of consecutive UIDs up to which COPY has the database copy the rows.
_COPY_RUNS = 8

#: The columns a copy takes from its original as they are.
_KEPT_COLUMNS = ("content_id", "size", "internal_us", "internal_tz", "internal_day",
                 *FLAG_COLUMNS.values(), "object_id")


def _runs(pairs: list[tuple[int, int]]) -> list[tuple[int, int, int]]:
    """C{(low, high, new)}: the runs of consecutive old UIDs, and where each goes."""
    runs: list[tuple[int, int, int]] = []
    for old, new in pairs:
        if runs and old == runs[-1][1] + 1:
            low, _, to = runs[-1]
            runs[-1] = (low, old, to)
        else:
            runs.append((old, old, new))
    return runs


def _copied_run(source_id: int, target_id: int, low: int, high: int, shift: int,
                modseq: int, saved: int) -> Any:
    m = messages.c
    kept = [m[name] for name in _KEPT_COLUMNS]
    return insert(messages).from_select(
        ["mailbox_id", "uid", "modseq", "saved_us", *_KEPT_COLUMNS],
        select(literal(target_id), m.uid + shift, literal(modseq), literal(saved), *kept)
        .where(m.mailbox_id == source_id, m.uid.between(low, high)),
    )


def _copied_row(row: Row, target_id: int, uid: int, modseq: int, saved: int) -> dict:
    mapping = row._mapping
    return dict({name: mapping[name] for name in _KEPT_COLUMNS},
                mailbox_id=target_id, uid=uid, modseq=modseq, saved_us=saved)


def _move_txn(conn: Connection, source_id: int, target_id: int, uids: list[int],
              ) -> tuple[list[tuple[int, int]], list[MessageMeta], int]:
    """
    RFC 6851 MOVE as one transaction: the message rows are re-pointed to
    the target (new UID and MODSEQ there; flags, keywords, INTERNALDATE and
    content stay, so no reference count changes), their old UIDs recorded
    in C{expunged}, and both rows' counters moved by what left and came.
    Returns the UID pairs, the new metas and the source's expunge MODSEQ.
    """
    # Lock in id order, as _copy_txn does, so opposite MOVEs cannot deadlock.
    locked = {mid: lock_mailbox(conn, mid) for mid in sorted({source_id, target_id})}
    source, target = locked[source_id], locked[target_id]
    found = load_rows(conn, source_id, uids)
    if not found:
        return [], [], source.highestmodseq
    gone_modseq = source.highestmodseq + 1
    # Into the same mailbox, one change: the expunge and the arrivals share it.
    modseq = gone_modseq if source_id == target_id else target.highestmodseq + 1
    first = target.uidnext
    saved = _now()
    pairs, metas, moves = [], [], []
    unseen = deleted = recent = size = 0
    for uid, (row, kws) in enumerate(found, start=first):
        moves.append({"b_id": row.id, "b_uid": uid})
        metas.append(replace(meta_of(row, kws), uid=uid, modseq=modseq, saved=saved))
        pairs.append((row.uid, uid))
        unseen += not row.seen
        deleted += bool(row.deleted)
        recent += row.uid >= source.recent_floor
        size += row.size
    count = len(found)
    conn.execute(
        update(messages).where(messages.c.id == bindparam("b_id"))
        .values(mailbox_id=target_id, uid=bindparam("b_uid"), modseq=modseq,
                saved_us=saved_us(saved)),
        moves,
    )
    conn.execute(
        insert(expunged),
        [{"mailbox_id": source_id, "uid": old, "modseq": gone_modseq} for old, _ in pairs],
    )
    conn.execute(
        _counted(source_id, message_count=-count, unseen_count=-unseen,
                 deleted_count=-deleted, recent_count=-recent, total_size=-size)
        .values(highestmodseq=gone_modseq)
    )
    # The new UIDs are >= the target's recent_floor: all are \Recent there.
    conn.execute(
        _counted(target_id, message_count=count, unseen_count=unseen,
                 deleted_count=deleted, recent_count=count, total_size=size)
        .values(uidnext=first + count, highestmodseq=modseq)
    )
    return pairs, metas, gone_modseq


# Messages up to this size are read whole when opened.
PREFETCH_SIZE = 64 * 1024


def _open_txn(conn, mailbox_id: int, uid: int):
    found = _open_many_txn(conn, mailbox_id, [uid])
    if not found:
        return None
    row, kws, structure, content = found[0]
    if content is None and row.size <= PREFETCH_SIZE:
        return None  # the content went with a concurrent expunge
    return row, kws, structure, content


# Opening messages is what every FETCH of content does, one round trip per
# few messages: one statement (built once, so SQLAlchemy only looks up its
# compiled form) reads the rows, their keywords (space-separated: a keyword
# is an atom, which has no space), their structures and the bytes of the
# small ones.  A second statement for the keywords cost as much as the first.
_KEYWORD_LIST = (
    select(func.aggregate_strings(keywords.c.keyword, literal_column("' '")))
    .where(keywords.c.message_id == messages.c.id)
    .scalar_subquery()
)
_OPEN_ROWS = (
    select(*META_COLUMNS, messages.c.content_id, contents.c.structure, chunks.c.data,
           _KEYWORD_LIST.label("keyword_list"))
    .select_from(
        messages.join(contents, contents.c.id == messages.c.content_id).outerjoin(
            chunks,
            and_(chunks.c.content_id == messages.c.content_id, chunks.c.seq == 0,
                 messages.c.size <= min(PREFETCH_SIZE, CHUNK_SIZE)),
        )
    )
    .where(messages.c.mailbox_id == bindparam("mailbox_id"))
)
_OPEN = _OPEN_ROWS.where(messages.c.uid.in_(bindparam("uids", expanding=True)))


# The same for psycopg, whose binary results carry the contents as they
# are (binary_rows): the UIDs as one array, not an expanding list.
_OPEN_ANY = _OPEN_ROWS.where(messages.c.uid == any_(bindparam("uids", type_=ARRAY(BigInteger))))


def _open_many_txn(conn, mailbox_id: int, uids: list[int]):
    out = []
    wanted = sorted(set(uids))
    binary = conn.dialect.driver == "psycopg"
    for start in range(0, len(wanted), BATCH):
        params = {"mailbox_id": mailbox_id, "uids": wanted[start:start + BATCH]}
        if binary:
            rows = sorted(binary_rows(conn, _OPEN_ANY, params), key=row_uid)
        else:
            rows = sorted(conn.execute(_OPEN, params).all(), key=row_uid)
        for row in rows:
            content = row.data
            if content is not None:
                content = bytes(content)
                if len(content) != row.size:
                    content = None
            listed = row.keyword_list
            kws = frozenset(listed.split(" ")) if listed else frozenset()
            out.append((row, kws, row.structure, content))
    return out


# The raw bytes of whole messages, without their rows' metadata or
# structure: what FETCH BODY[] of one message sends and all it needs.  A
# released content (count zero) reads as gone, as in read_range.  This runs
# once per command of a download, so the driver runs it from SQL text made
# once per dialect and number of UIDs (rounded up to a power of two, the
# last UID repeated): SQLAlchemy's execution of an expanding IN cost several
# times the statement.
_CONTENT_SQL: dict[tuple[str, int], tuple[str, tuple[str, ...] | None]] = {}


def _contents_sql(dialect: Any, count: int) -> tuple[str, tuple[str, ...] | None]:
    key = (dialect.name, count)
    found = _CONTENT_SQL.get(key)
    if found is None:
        statement = (
            select(messages.c.uid, messages.c.size, chunks.c.data)
            .select_from(
                messages.join(contents, contents.c.id == messages.c.content_id)
                .join(chunks, chunks.c.content_id == messages.c.content_id)
            )
            .where(messages.c.mailbox_id == bindparam("mailbox_id"),
                   messages.c.uid.in_([bindparam(f"uid{i}") for i in range(count)]),
                   messages.c.size <= bindparam("limit"),
                   contents.c.refcount > literal_column("0"))
            .order_by(messages.c.uid, chunks.c.seq)
        )
        compiled = statement.compile(dialect=dialect)
        positions = compiled.positiontup
        found = _CONTENT_SQL[key] = (compiled.string,
                                     tuple(positions) if positions else None)
    return found


def _contents_txn(conn, mailbox_id: int, uids: list[int], limit: int) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    cursor = conn.connection.driver_connection.cursor()
    try:
        for start in range(0, len(uids), BATCH):
            batch = uids[start:start + BATCH]
            count = 1 << (len(batch) - 1).bit_length()
            sql, positions = _contents_sql(conn.dialect, count)
            params = {f"uid{i}": batch[min(i, len(batch) - 1)] for i in range(count)}
            params["mailbox_id"], params["limit"] = mailbox_id, limit
            cursor.execute(sql, [params[name] for name in positions] if positions else params)
            pieces: dict[int, list] = {}
            sizes: dict[int, int] = {}
            for uid, size, data in cursor.fetchall():
                pieces.setdefault(uid, []).append(data)
                sizes[uid] = size
            for uid, parts in pieces.items():
                content = bytes(parts[0]) if len(parts) == 1 else b"".join(parts)
                if len(content) == sizes[uid]:
                    out[uid] = content
    finally:
        cursor.close()
    return out
