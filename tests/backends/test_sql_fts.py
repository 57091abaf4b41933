"""
The SQL store's full-text index (SEARCH BODY and TEXT), its STATUS counters
and the upgrade of a version 1 database, on SQLite and on PostgreSQL (when
MAILHUB_TEST_POSTGRESQL_URL names a server; each test gets its own
database, dropped afterwards).
"""

from __future__ import annotations

import os
import random
import re
from datetime import datetime, timedelta, timezone

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    case,
    event,
    func,
    insert,
    select,
    text,
)
from twisted.internet import defer
from twisted.trial import unittest

from harness import IMAPServerTestCase
from stores import PG_URL, make_store
from test_sql import _GenericOnly
from tests_messages import CORPUS

from twisted_mailhub.backends.sql import fts, open_backend
from twisted_mailhub.backends.sql import content as content_store
from twisted_mailhub.backends.sql.schema import SCHEMA_VERSION, mailboxes, messages, schema_version
from twisted_mailhub import criteria as sk
from twisted_mailhub.imap.search import SearchContext, search
from twisted_mailhub.model import AppendRequest

PG_SKIP = None if PG_URL else "set MAILHUB_TEST_POSTGRESQL_URL to a PostgreSQL server URL to run these tests"
DATE = datetime(2024, 3, 1, 9, 0, tzinfo=timezone.utc)


# -- the corpus: tests_messages.CORPUS, searched for these ------------------------------

NEEDLES = [
    "", "a", "x", "é", "ab", "ca", "zz", "%", "_", '"', "100%", "0%", "under_score", "r_s",
    '"quoted"', "café", "CAFÉ", "rendez-vous à", "andré müller", "extraordinary", "résumé",
    "STRASSE", "große", "straße", "привет", "ПРИВЕТ", "köln", "übersicht", "übersicht-2024.pdf",
    "résumé.doc", "binaryneedle", "docneedle", "application/pdf", "content-type", "charset",
    "inner sujet déjà", "секретный", "frank@", "see the attached", "日本語", "テキスト",
    "\u201csmart\u201d", "€5", "hello", "<b>world</b>", "subject: ok", "subject:", "from: ivan",
    "needle-at-the-end", "of text\r\nfiller", "not anywhere", "meet \"quoted\" at",
    "[urgent]", "*star*", "what?", "t?", "*", "[", "a*b", "*star* what",
]


def _corpus_keys() -> list[sk.SearchKey]:
    keys: list[sk.SearchKey] = []
    for needle in NEEDLES:
        keys += [sk.Body(needle), sk.Text(needle)]
    keys += [
        sk.Not(sk.Body("ab")), sk.Not(sk.Text("résumé")),
        sk.And((sk.Text("example"), sk.Flag("\\Seen"))),
        sk.And((sk.Body("the"), sk.Not(sk.Text("ab")))),
        sk.Or(sk.Body("привет"), sk.Header("subject", "minutes")),
        sk.Or(sk.Text("x"), sk.Flag("\\Flagged")),
        sk.And((sk.Body("a"), sk.Body("of"), sk.Size("larger", 300))),
        sk.Not(sk.Or(sk.Body("日本語"), sk.Text("zz"))),
    ]
    return keys


# -- stores -----------------------------------------------------------------------------


class _Stores:
    """Backends of C{kind}, closed (and dropped) at cleanup."""

    kind = "sqlite"

    async def backend(self):
        backend = await make_store(self.kind, self)
        self.addCleanup(backend.close)
        await backend.ready()
        return backend

    async def reopen(self, backend):
        await backend.close()
        again = open_backend(backend.url.render_as_string(hide_password=False))
        self.addCleanup(again.close)
        await again.ready()
        return again

    def record_statements(self, backend) -> list[str]:
        statements: list[str] = []

        def before(conn, cursor, statement, parameters, context, executemany):
            statements.append(statement)

        event.listen(backend.db.engine, "before_cursor_execute", before)
        self.addCleanup(event.remove, backend.db.engine, "before_cursor_execute", before)
        return statements


async def _fill(mailbox, corpus=CORPUS):
    flags = [frozenset({"\\Seen"}) if i % 2 else frozenset() for i in range(len(corpus))]
    return await mailbox.append(
        [AppendRequest(data, flags[i], DATE + timedelta(hours=i)) for i, data in enumerate(corpus)]
    )


async def _compare_with_generic(case, mailbox, keys, pushed_down: bool = True) -> None:
    uids = await mailbox.uids()
    context = SearchContext(uids, set(), now=DATE)
    generic = _GenericOnly(mailbox)
    for key in keys:
        if pushed_down:
            case.assertIsNotNone(await mailbox.search(key, context), key)
        case.assertEqual(await search(mailbox, key, context),
                         await search(generic, key, context), key)


def _real_counts(conn, mailbox_id: int) -> dict[str, int]:
    box = conn.execute(select(mailboxes.c.recent_floor).where(mailboxes.c.id == mailbox_id)).one()
    m = messages.c
    row = conn.execute(
        select(
            func.count(),
            func.coalesce(func.sum(case((m.seen, 0), else_=1)), 0),
            func.coalesce(func.sum(case((m.deleted, 1), else_=0)), 0),
            func.coalesce(func.sum(case((m.uid >= box.recent_floor, 1), else_=0)), 0),
            func.coalesce(func.sum(m.size), 0),
        ).where(m.mailbox_id == mailbox_id)
    ).one()
    return dict(zip(("messages", "unseen", "deleted", "recent", "size"), (int(v) for v in row)))


def _status_counts(status) -> dict[str, int]:
    return {name: getattr(status, name) for name in ("messages", "unseen", "deleted", "recent", "size")}


class FullTextSearchMixin(_Stores):

    async def test_corpus_matches_generic_evaluator(self) -> None:
        backend = await self.backend()
        inbox = await (await backend.open_store("alice")).get_mailbox("INBOX")
        await _fill(inbox)
        await inbox.store_flags([3], "add", {"\\Flagged"})
        statements = self.record_statements(backend)
        context = SearchContext(await inbox.uids(), set())
        for key in _corpus_keys():
            self.assertIsNotNone(await inbox.search(key, context), key)
        # Answered by the index: no message bytes read, no structure parsed.
        self.assertTrue([s for s in statements if fts.TABLE in s])
        self.assertEqual([s for s in statements if re.search(r"\b(chunks|structure)\b", s)], [])
        await _compare_with_generic(self, inbox, _corpus_keys())

    async def test_index_follows_append_copy_and_expunge(self) -> None:
        backend = await self.backend()
        store = await backend.open_store("alice")
        inbox = await store.get_mailbox("INBOX")
        await store.create_mailbox("Archive")
        archive = await store.get_mailbox("Archive")
        metas = await _fill(inbox, CORPUS[:4])
        context = SearchContext(await inbox.uids(), set())
        self.assertEqual(await inbox.search(sk.Text("привет"), context), [metas[2].uid])
        pairs = await inbox.copy_to([metas[2].uid, metas[3].uid], archive)
        self.assertEqual(await self._text_rows(backend), 4)  # COPY shares the row
        archive_context = SearchContext(await archive.uids(), set())
        self.assertEqual(await archive.search(sk.Text("привет"), archive_context), [pairs[0][1]])
        await inbox.store_flags([m.uid for m in metas], "add", {"\\Deleted"})
        await inbox.expunge()
        await backend.reaper.flush()
        self.assertEqual(await self._text_rows(backend), 2)  # still referenced by Archive
        self.assertEqual(await inbox.search(sk.Text("привет"), SearchContext([], set())), [])
        self.assertEqual(await archive.search(sk.Body("секретный"), archive_context), [pairs[1][1]])
        await store.delete_mailbox("Archive")
        await backend.reaper.flush()
        self.assertEqual(await self._text_rows(backend), 0)

    async def _text_rows(self, backend) -> int:
        return await backend.db.read(
            lambda conn: conn.execute(text(f"SELECT count(*) FROM {fts.TABLE}")).scalar_one()
        )


class CounterMixin(_Stores):

    async def assert_counters_exact(self, backend, *boxes) -> None:
        for box in boxes:
            real = await backend.db.read(_real_counts, box.mailbox_id)
            self.assertEqual(_status_counts(await box.status()), real, box.name)

    async def test_counters_after_random_operations(self) -> None:
        backend = await self.backend()
        store = await backend.open_store("alice")
        await store.create_mailbox("Other")
        inbox, other = await store.get_mailbox("INBOX"), await store.get_mailbox("Other")
        rng = random.Random(8)
        flags = ["\\Seen", "\\Deleted", "\\Flagged", "$Label"]
        for step in range(60):
            box = rng.choice([inbox, other])
            uids = await box.uids()
            op = rng.random()
            if op < 0.3 or not uids:
                await box.append([
                    AppendRequest(b"Subject: m%d\r\n\r\n" % step + b"x" * rng.randint(0, 300),
                                  frozenset(rng.sample(flags, rng.randint(0, 2))))
                    for _ in range(rng.randint(1, 4))
                ])
            elif op < 0.6:
                await box.store_flags(rng.sample(uids, rng.randint(1, len(uids))),
                                      rng.choice(["set", "add", "remove"]),
                                      rng.sample(flags, rng.randint(0, 2)))
            elif op < 0.75:
                await box.copy_to(rng.sample(uids, rng.randint(1, len(uids))),
                                  other if box is inbox else inbox)
            elif op < 0.9:
                chosen = None if rng.random() < 0.5 else rng.sample(uids, rng.randint(1, len(uids)))
                await box.expunge(chosen)
            else:
                await box.claim_recent()
            await self.assert_counters_exact(backend, inbox, other)
        self.assertGreater((await inbox.status()).messages + (await other.status()).messages, 0)

    async def test_counters_under_concurrent_writers(self) -> None:
        backend = await self.backend()
        store = await backend.open_store("alice")
        await store.create_mailbox("Other")
        sessions = [await (await backend.open_store("alice")).get_mailbox("INBOX") for _ in range(4)]
        other = await store.get_mailbox("Other")
        await sessions[0].append([AppendRequest(b"Subject: seed\r\n\r\nx", frozenset()) for _ in range(8)])
        uids = await sessions[0].uids()
        work = []
        for i, session in enumerate(sessions):
            work += [
                session.append([AppendRequest(b"Subject: c\r\n\r\n" + b"y" * i, frozenset({"\\Seen"}))]),
                session.store_flags(uids[i::2], "add" if i % 2 else "remove", {"\\Seen", "\\Deleted"}),
                session.copy_to(uids[i:i + 3], other),
                session.expunge(uids[i:i + 2]),
                session.claim_recent(),
            ]
        await defer.gatherResults([defer.ensureDeferred(w) for w in work], consumeErrors=True)
        await self.assert_counters_exact(backend, sessions[0], other)

    async def test_rename_inbox_moves_counts(self) -> None:
        backend = await self.backend()
        store = await backend.open_store("alice")
        inbox = await store.get_mailbox("INBOX")
        contents = [b"Subject: r\r\n\r\nx", b"Subject: s\r\n\r\nyy"]
        await inbox.append([AppendRequest(contents[0], frozenset({"\\Deleted"})),
                            AppendRequest(contents[1], frozenset())])
        await store.rename_mailbox("INBOX", "Old")
        old, inbox = await store.get_mailbox("Old"), await store.get_mailbox("INBOX")
        self.assertEqual(_status_counts(await old.status()),
                         {"messages": 2, "unseen": 2, "deleted": 1, "recent": 2,
                          "size": sum(map(len, contents))})
        await self.assert_counters_exact(backend, old, inbox)
        self.assertEqual((await inbox.status()).messages, 0)

    async def test_status_reads_one_row(self) -> None:
        backend = await self.backend()
        inbox = await (await backend.open_store("alice")).get_mailbox("INBOX")
        await inbox.append([AppendRequest(b"Subject: s\r\n\r\nx", frozenset()) for _ in range(30)])
        statements = self.record_statements(backend)
        status = await inbox.status()
        self.assertEqual(status.messages, 30)
        self.assertEqual([s for s in statements if "messages" in s.split("FROM", 1)[-1]], [])


# -- a version 1 database ---------------------------------------------------------------

# The layout of schema version 1 as the code before version 2 created it.
V1 = MetaData()
Id = BigInteger().with_variant(Integer(), "sqlite")
Table("schema_version", V1, Column("version", Integer, nullable=False))
Table("users", V1, Column("id", Id, primary_key=True, autoincrement=True),
      Column("username", String(255), nullable=False, unique=True),
      Column("password_hash", Text, nullable=True),
      Column("next_uidvalidity", BigInteger, nullable=False))
V1_MAILBOXES = Table(
    "mailboxes", V1, Column("id", Id, primary_key=True, autoincrement=True),
    Column("user_id", ForeignKey("users.id"), nullable=False),
    Column("name", String(1000), nullable=False),
    Column("selectable", Boolean, nullable=False, default=True),
    Column("special_use", Text, nullable=False, default=""),
    Column("uidvalidity", BigInteger, nullable=False),
    Column("uidnext", BigInteger, nullable=False, default=1),
    Column("highestmodseq", BigInteger, nullable=False, default=1),
    Column("recent_floor", BigInteger, nullable=False, default=1),
    UniqueConstraint("user_id", "name", name="uq_mailboxes_user_name"))
Table("subscriptions", V1, Column("user_id", ForeignKey("users.id"), primary_key=True),
      Column("name", String(1000), primary_key=True))
Table("contents", V1, Column("id", Id, primary_key=True, autoincrement=True),
      Column("size", BigInteger, nullable=False), Column("refcount", Integer, nullable=False),
      Column("structure", Text, nullable=False),
      *(Column(c, Text, nullable=True) for c in
        ("h_from", "h_to", "h_cc", "h_bcc", "h_subject", "h_message_id")),
      Column("sent_day", Integer, nullable=True))
Table("chunks", V1, Column("content_id", ForeignKey("contents.id"), primary_key=True),
      Column("seq", Integer, primary_key=True, autoincrement=False),
      Column("data", LargeBinary, nullable=False))
Table("messages", V1, Column("id", Id, primary_key=True, autoincrement=True),
      Column("mailbox_id", ForeignKey("mailboxes.id"), nullable=False),
      Column("uid", BigInteger, nullable=False),
      Column("content_id", ForeignKey("contents.id"), nullable=False),
      *(Column(c, Boolean, nullable=False, default=False)
        for c in ("seen", "answered", "flagged", "deleted", "draft")),
      Column("modseq", BigInteger, nullable=False),
      Column("internal_us", BigInteger, nullable=False), Column("internal_tz", Integer, nullable=False),
      Column("internal_day", Integer, nullable=False), Column("size", BigInteger, nullable=False),
      UniqueConstraint("mailbox_id", "uid", name="uq_messages_mailbox_uid"))
Table("keywords", V1, Column("message_id", ForeignKey("messages.id"), primary_key=True),
      Column("keyword", String(255), primary_key=True))
Table("expunged", V1, Column("mailbox_id", ForeignKey("mailboxes.id"), primary_key=True),
      Column("uid", BigInteger, primary_key=True, autoincrement=False),
      Column("modseq", BigInteger, nullable=False))


def _make_v1(conn) -> None:
    """
    A version 1 store as its APPEND and COPY left it: INBOX with the corpus
    (some \\Seen, some \\Deleted, a keyword), an Archive sharing two of its
    contents, the \\Recent floor in the middle of INBOX, an expunge record.
    """
    from twisted_mailhub.backends.sql.rows import date_columns

    V1.create_all(conn)
    conn.execute(insert(V1.tables["schema_version"]).values(version=1))
    user = conn.execute(insert(V1.tables["users"]).values(
        username="alice", password_hash=None, next_uidvalidity=10)).inserted_primary_key[0]
    inbox = conn.execute(insert(V1_MAILBOXES).values(
        user_id=user, name="INBOX", uidvalidity=8, uidnext=len(CORPUS) + 2, highestmodseq=5,
        recent_floor=5)).inserted_primary_key[0]
    archive = conn.execute(insert(V1_MAILBOXES).values(
        user_id=user, name="Archive", uidvalidity=9, uidnext=3, highestmodseq=2,
        recent_floor=1)).inserted_primary_key[0]
    table = V1.tables["messages"]
    for i, data in enumerate(CORPUS):
        structure = content_store.parse(data)
        shared = i in (2, 3)
        content_id = content_store.insert_content(
            conn, data, content_store.content_row(data, structure), refcount=2 if shared else 1)
        # uid 1 was expunged, so INBOX holds uids 2..
        flags = {"seen": i % 2 == 1, "deleted": i % 3 == 0, "flagged": i == 4}
        message_id = conn.execute(insert(table).values(
            mailbox_id=inbox, uid=i + 2, content_id=content_id, modseq=4, size=len(data),
            **flags, **date_columns(DATE + timedelta(days=i)))).inserted_primary_key[0]
        if i == 1:
            conn.execute(insert(V1.tables["keywords"]).values(message_id=message_id, keyword="$Work"))
        if shared:
            conn.execute(insert(table).values(
                mailbox_id=archive, uid=i - 1, content_id=content_id, modseq=2, size=len(data),
                seen=True, **date_columns(DATE)))
    conn.execute(insert(V1.tables["expunged"]).values(mailbox_id=inbox, uid=1, modseq=3))


class MigrationMixin(_Stores):

    async def test_version_1_database_upgrades_and_works(self) -> None:
        made = await self.backend()
        url = made.url.render_as_string(hide_password=False)
        await made.close()
        # Replace what the fresh backend created with a version 1 store.
        from sqlalchemy import create_engine

        if made.url.get_backend_name() == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(made.url.database + suffix):
                    os.remove(made.url.database + suffix)
        engine = create_engine(made.url)
        try:
            with engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    conn.exec_driver_sql("DROP SCHEMA public CASCADE")
                    conn.exec_driver_sql("CREATE SCHEMA public")
                _make_v1(conn)
        finally:
            engine.dispose()

        # Small batches, so that filling the index takes several.
        self.patch(fts, "FILL_BATCH", 3)
        self.patch(fts, "FILL_BYTES", 2000)
        backend = open_backend(url)
        self.addCleanup(backend.close)
        await backend.ready()
        version = await backend.db.read(lambda conn: conn.execute(select(schema_version.c.version)).scalar_one())
        self.assertEqual(version, SCHEMA_VERSION)
        store = await backend.open_store("alice")
        inbox, archive = await store.get_mailbox("INBOX"), await store.get_mailbox("Archive")
        # The counters were computed from the messages.
        self.assertEqual(_status_counts(await inbox.status()), {
            "messages": len(CORPUS), "unseen": 4, "deleted": 3, "recent": len(CORPUS) - 3,
            "size": sum(len(d) for d in CORPUS)})
        self.assertEqual(_status_counts(await archive.status())["messages"], 2)
        # The index was filled from the stored contents.
        await _compare_with_generic(self, inbox, _corpus_keys())
        await _compare_with_generic(self, archive, [sk.Text("привет"), sk.Body("секретный")])
        # And the upgraded store keeps working.
        [meta] = await inbox.append([AppendRequest(b"Subject: after\r\n\r\nupgraded body\r\n")])
        context = SearchContext(await inbox.uids(), set())
        self.assertEqual(await inbox.search(sk.Body("upgraded"), context), [meta.uid])
        await inbox.expunge()
        await self.assert_upgraded_counts(backend, inbox, archive)
        # The forwarded message (shared with Archive) was \\Deleted in INBOX.
        key = sk.Body("секретный")
        self.assertEqual(await inbox.search(key, SearchContext(await inbox.uids(), set())), [])
        self.assertEqual(await archive.search(key, SearchContext(await archive.uids(), set())), [2])

    async def assert_upgraded_counts(self, backend, *boxes) -> None:
        for box in boxes:
            real = await backend.db.read(_real_counts, box.mailbox_id)
            self.assertEqual(_status_counts(await box.status()), real)


# -- the test classes -----------------------------------------------------------------


class SQLiteFullTextTests(FullTextSearchMixin, unittest.TestCase):
    kind = "sqlite"

    async def test_without_fts5_search_falls_back_and_index_is_built_later(self) -> None:
        # An SQLite without FTS5: creating the virtual table fails.
        self.patch(fts, "_SQLITE_DDL", fts._SQLITE_DDL.replace("fts5(", "no_such_module("))
        backend = await self.backend()
        inbox = await (await backend.open_store("alice")).get_mailbox("INBOX")
        await _fill(inbox)
        context = SearchContext(await inbox.uids(), set())
        self.assertIsNone(await inbox.search(sk.Body("résumé"), context))
        await _compare_with_generic(self, inbox, [sk.Body("résumé"), sk.Text("привет")], pushed_down=False)
        # Opened where FTS5 exists, the store gets its index, filled.
        self.patch(fts, "_SQLITE_DDL", fts._SQLITE_DDL.replace("no_such_module(", "fts5("))
        backend = await self.reopen(backend)
        inbox = await (await backend.open_store("alice")).get_mailbox("INBOX")
        await _compare_with_generic(self, inbox, _corpus_keys())


class SQLiteCounterTests(CounterMixin, unittest.TestCase):
    kind = "sqlite"


class SQLiteMigrationTests(MigrationMixin, unittest.TestCase):
    kind = "sqlite"


class PostgreSQLFullTextTests(FullTextSearchMixin, unittest.TestCase):
    kind = "postgresql"
    skip = PG_SKIP

    async def test_trigram_indexes_exist(self) -> None:
        backend = await self.backend()
        names = await backend.db.read(lambda conn: set(conn.exec_driver_sql(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'content_text'").scalars()))
        self.assertLessEqual({"ix_content_text_header", "ix_content_text_body"}, names)


class PostgreSQLCounterTests(CounterMixin, unittest.TestCase):
    kind = "postgresql"
    skip = PG_SKIP


class PostgreSQLMigrationTests(MigrationMixin, unittest.TestCase):
    kind = "postgresql"
    skip = PG_SKIP


# -- end to end -------------------------------------------------------------------------


class SearchTextOverIMAPTests(IMAPServerTestCase):
    """SEARCH TEXT and BODY from imaplib against an SQLite store use the index."""

    store = "sqlite"

    async def test_search_text_and_body(self) -> None:
        inbox = await (await self.backend.open_store("alice")).get_mailbox("INBOX")
        await _fill(inbox)
        statements: list[str] = []
        event.listen(self.backend.db.engine, "before_cursor_execute",
                     lambda conn, cursor, statement, *rest: statements.append(statement))

        def client():
            c = self.imaplib_client()
            try:
                c.select("INBOX")
                found = {}
                for criteria in ["BODY extraordinary", "TEXT quarterly", "BODY ab",
                                 'TEXT "subject: ok"', "BODY minutes", "NOT BODY a"]:
                    typ, data = c.uid("SEARCH", criteria)
                    assert typ == "OK", (criteria, data)
                    found[criteria] = [int(n) for n in data[0].split()]
                # A non-ASCII term goes as a literal.
                c.literal = "RÉSUMÉ".encode("utf-8")
                typ, data = c.uid("SEARCH", "CHARSET", "UTF-8", "TEXT")
                assert typ == "OK", data
                found["TEXT résumé"] = [int(n) for n in data[0].split()]
                return found
            finally:
                c.logout()

        found = await self.in_thread(client)
        # ("printable" in the attached message's Content-Transfer-Encoding holds "ab".)
        self.assertEqual(found, {
            "TEXT résumé": [2, 3], "BODY extraordinary": [2], "TEXT quarterly": [3],
            "BODY ab": [4, 7], 'TEXT "subject: ok"': [7], "BODY minutes": [], "NOT BODY a": [6],
        })
        self.assertTrue([s for s in statements if fts.TABLE in s])
