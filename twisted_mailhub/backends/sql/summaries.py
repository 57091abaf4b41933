"""
The C{summaries} table: values derived once from a content and kept with it
(L{twisted_mailhub.interfaces.ISummaryStore}).

Summaries are keyed by content, so the copies of a message share them, and
deleted with the content (L{twisted_mailhub.backends.sql.content.release}).
Functions here run in a pool thread inside the caller's transaction.
"""

from __future__ import annotations

from sqlalchemy import Integer, and_, bindparam, cast, func, literal_column, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from twisted_mailhub.backends.sql.schema import CHUNK_SIZE, chunks, contents, messages, summaries

#: The name under which L{read} gives a message's raw top-level header, cut
#: from the first chunk of its content (it is not kept: the content is).
HEADER = "header"

#: Messages whose summaries one statement reads or writes.
BATCH = 500

_READ = (
    select(messages.c.uid, summaries.c.name, summaries.c.data)
    .join(summaries, summaries.c.content_id == messages.c.content_id)
    .where(messages.c.mailbox_id == bindparam("mailbox_id"),
           messages.c.uid.in_(bindparam("uids", expanding=True)),
           summaries.c.name.in_(bindparam("names", expanding=True)))
)
_CONTENTS = (
    select(messages.c.uid, messages.c.content_id)
    .where(messages.c.mailbox_id == bindparam("mailbox_id"),
           messages.c.uid.in_(bindparam("uids", expanding=True)))
)
_KNOWN = (
    select(summaries.c.content_id, summaries.c.name)
    .where(summaries.c.content_id.in_(bindparam("ids", expanding=True)))
)


def read(conn: Connection, mailbox_id: int, uids: list[int], names: list[str],
         ) -> dict[int, dict[str, bytes]]:
    """
    The kept summaries among C{names} of the messages C{uids}, and with
    L{HEADER} among them, their top-level headers.
    """
    found: dict[int, dict[str, bytes]] = {}
    kept = [name for name in names if name != HEADER]
    for start in range(0, len(uids), BATCH):
        batch = uids[start:start + BATCH]
        if kept:
            params = {"mailbox_id": mailbox_id, "uids": batch, "names": kept}
            for uid, name, data in conn.execute(_READ, params):
                found.setdefault(uid, {})[name] = bytes(data)
        if len(kept) < len(names):
            for uid, data in conn.execute(_headers(conn.dialect.name),
                                          {"mailbox_id": mailbox_id, "uids": batch}):
                found.setdefault(uid, {})[HEADER] = bytes(data)
    return found


def _headers(dialect: str):
    """
    The statement giving (uid, header) of the messages whose top-level
    header lies in their first chunk, its extent read from the stored
    structure (C{root.off}: header start, body start, end) by the database,
    so that only the header bytes travel.
    """
    if dialect == "postgresql":
        def offset(i: int):
            return cast(literal_column(f"CAST(contents.structure AS json) #>> '{{root,off,{i}}}'"),
                        Integer)
    else:
        def offset(i: int):
            return cast(func.json_extract(contents.c.structure, f"$.root.off[{i}]"), Integer)
    start, end = offset(0), offset(1)
    return (
        select(messages.c.uid, func.substr(chunks.c.data, start + 1, end - start))
        .select_from(messages.join(contents, contents.c.id == messages.c.content_id)
                     .join(chunks, and_(chunks.c.content_id == messages.c.content_id,
                                        chunks.c.seq == 0)))
        .where(messages.c.mailbox_id == bindparam("mailbox_id"),
               messages.c.uid.in_(bindparam("uids", expanding=True)),
               end <= CHUNK_SIZE)
    )


def keep(conn: Connection, mailbox_id: int, values: dict[int, dict[str, bytes]]) -> int:
    """
    Store C{values} for the messages that still exist, leaving those already
    kept alone; returns how many rows were added.
    """
    uids = sorted(values)
    rows = []
    for start in range(0, len(uids), BATCH):
        params = {"mailbox_id": mailbox_id, "uids": uids[start:start + BATCH]}
        contents = dict(conn.execute(_CONTENTS, params).all())
        if not contents:
            continue
        known = set(conn.execute(_KNOWN, {"ids": sorted(set(contents.values()))}).all())
        for uid, content_id in contents.items():
            for name, data in values[uid].items():
                if (content_id, name) not in known:
                    known.add((content_id, name))
                    rows.append({"content_id": content_id, "name": name, "data": data})
    if rows:
        try:
            with conn.begin_nested():
                conn.execute(summaries.insert(), rows)
        except IntegrityError:
            # Another process kept some of them first: theirs are the same.
            return 0
    return len(rows)
