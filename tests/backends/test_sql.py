"""
The SQL backend: the conformance suite on SQLite and PostgreSQL, plus what
is particular to SQL storage (schema versions, users, shared and chunked
content, SEARCH pushdown, statements issued, crash safety).

PostgreSQL runs when MAILHUB_TEST_POSTGRESQL_URL names a server where the
test may create databases (e.g. postgresql://postgres@127.0.0.1:5432/postgres);
each backend gets its own database, dropped afterwards.
"""

from __future__ import annotations

import os
import random
import re
import sys
import tempfile
from datetime import date, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import event, func, select
from twisted.internet import defer, threads
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial import unittest
from zope.interface import implementer

import twisted_mailhub
from twisted_mailhub.backends.sql import SchemaTooNew, SQLBackend, UnknownUser, UserExists, open_backend
from twisted_mailhub.backends.sql.engine import parse_url
from twisted_mailhub.backends.sql.migrate import SchemaError, prepare
from twisted_mailhub.backends.sql.schema import CHUNK_SIZE, SCHEMA_VERSION, chunks, contents, schema_version
from twisted_mailhub import criteria as sk
from twisted_mailhub.imap.search import SearchContext, search
from twisted_mailhub.ranges import SequenceSet
from twisted_mailhub.interfaces import IMailbox
from twisted_mailhub.model import AppendRequest
from twisted_mailhub.testing import BackendConformanceMixin, make_message

from stores import create_pg_database, drop_pg_database

PG_VARIABLE = "MAILHUB_TEST_POSTGRESQL_URL"
PG_URL = os.environ.get(PG_VARIABLE)
PG_SKIP = None if PG_URL else f"set {PG_VARIABLE} to a PostgreSQL server URL to run these tests"
DATE = datetime(2023, 5, 17, 10, 30, 0, tzinfo=timezone(timedelta(hours=2)))


# -- making backends -------------------------------------------------------------


class SQLiteMixin:
    """Backends over a fresh SQLite file in the test's temporary directory."""

    async def make_backend(self) -> SQLBackend:
        path = self.mktemp()
        os.makedirs(path)
        return open_backend("sqlite:" + os.path.join(path, "mail.db"))

    async def restart_backend(self, backend: SQLBackend) -> SQLBackend:
        await backend.close()
        return open_backend(str(backend.url))


class PostgreSQLMixin:
    """Backends each over a new PostgreSQL database, dropped at cleanup."""

    async def make_backend(self) -> SQLBackend:
        # An unreachable server fails the test here: it is not a skip.
        url = await threads.deferToThread(create_pg_database)
        self.addCleanup(threads.deferToThread, drop_pg_database, url)
        backend = open_backend(url)
        self.addCleanup(backend.close)
        return backend

    async def restart_backend(self, backend: SQLBackend) -> SQLBackend:
        await backend.close()
        new = open_backend(backend.url.render_as_string(hide_password=False))
        self.addCleanup(new.close)
        return new


# -- the conformance suite ------------------------------------------------------------


class SQLiteConformanceTests(SQLiteMixin, BackendConformanceMixin, unittest.TestCase):
    persistent = True


class PostgreSQLConformanceTests(PostgreSQLMixin, BackendConformanceMixin, unittest.TestCase):
    persistent = True
    skip = PG_SKIP


# -- what is particular to SQL --------------------------------------------------------


@implementer(IMailbox)
class _GenericOnly:
    """A mailbox seen through IMailbox only, so SEARCH is evaluated generically."""

    def __init__(self, mailbox) -> None:
        self._mailbox = mailbox

    def metadata(self, uids):
        return self._mailbox.metadata(uids)

    def open_message(self, uid):
        return self._mailbox.open_message(uid)


def _message(sender: str, to: str, subject: str, sent: str, body: bytes = b"body\r\n",
             extra: bytes = b"") -> bytes:
    return (
        f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n".encode()
        + (f"Date: {sent}\r\n".encode() if sent else b"")
        + extra
        + b"\r\n"
        + body
    )


SEARCH_CORPUS = [
    (_message("Alice <alice@example.org>", "bob@example.org", "Hello 100%", "Wed, 17 May 2023 23:30:00 -0700"),
     {"\\Seen"}, DATE),
    (_message("Bob <bob@example.org>", "alice@example.org", "re: under_score", "Thu, 18 May 2023 01:00:00 +0200",
              extra=b"Cc: Carol <carol@example.org>\r\n"),
     {"\\Flagged", "$Junk"}, DATE + timedelta(days=1)),
    (_message("=?utf-8?q?Andr=C3=A9?= <andre@example.org>", "bob@example.org", "R\u00e9sum\u00e9 STRASSE",
              "not a date", body=b"x" * 5000),
     {"\\Deleted", "$junk"}, DATE - timedelta(days=3)),
    (_message("carol@example.org", "dave@example.org", "", ""),
     set(), datetime(2023, 5, 16, 23, 0, tzinfo=timezone.utc)),
    (_message("Dave <dave@EXAMPLE.org>", "alice@example.org", "Meeting", "17 May 2023 08:00 +0000",
              extra=b"Bcc: secret@example.org\r\nMessage-ID: <abc@x>\r\n"),
     {"\\Answered", "\\Draft", "Work"}, DATE + timedelta(hours=20)),
]

ATOMS = [
    sk.All(),
    sk.Flag("\\Seen"), sk.Flag("\\Seen", False), sk.Flag("\\Deleted"), sk.Flag("\\Flagged"),
    sk.Flag("\\Answered", False), sk.Flag("\\Draft"), sk.Flag("$JUNK"), sk.Flag("work"),
    sk.Flag("$Junk", False), sk.Flag("\\Recent"),
    sk.Date("internal", "on", DATE.date()), sk.Date("internal", "before", DATE.date()),
    sk.Date("internal", "since", date(2023, 5, 17)), sk.Date("internal", "on", date(2023, 5, 16)),
    sk.Date("sent", "on", date(2023, 5, 17)), sk.Date("sent", "before", date(2023, 5, 18)),
    sk.Date("sent", "since", date(2023, 5, 18)),
    sk.Header("from", "alice"), sk.Header("from", "ANDR\u00c9"), sk.Header("from", "example.org"),
    sk.Header("to", "bob"), sk.Header("cc", ""), sk.Header("cc", "carol"), sk.Header("bcc", "SECRET"),
    sk.Header("subject", "100%"), sk.Header("subject", "0%"), sk.Header("subject", "under_score"),
    sk.Header("subject", "r_"), sk.Header("subject", ""), sk.Header("subject", "strasse"),
    sk.Header("message-id", "abc@"), sk.Header("from", "dave@example"),
    sk.Size("larger", 200), sk.Size("smaller", 200), sk.Size("larger", 5000),
    sk.Uid(SequenceSet.parse("2:4")), sk.Uid(SequenceSet.parse("4:*")), sk.Uid(SequenceSet.parse("9:*")),
    sk.Uid(SequenceSet.parse("1,3,5")), sk.Sequence(SequenceSet.parse("2")),
    sk.Sequence(SequenceSet.parse("3:*")), sk.Sequence(SequenceSet.parse("1,4:7")),
    sk.ModSeq(3), sk.ModSeq(1),
    sk.Recent(), sk.Recent(False), sk.New(),
    sk.Uid(SequenceSet((), saved=True)),
    sk.Age("older", 3600), sk.Age("younger", 86400 * 2),
]


def _random_key(rng: random.Random, depth: int = 0) -> sk.SearchKey:
    choice = rng.random()
    if depth >= 3 or choice < 0.5:
        return rng.choice(ATOMS)
    if choice < 0.65:
        return sk.Not(_random_key(rng, depth + 1))
    if choice < 0.8:
        return sk.Or(_random_key(rng, depth + 1), _random_key(rng, depth + 1))
    return sk.And(tuple(_random_key(rng, depth + 1) for _ in range(rng.randint(0, 3))))


class SQLBackendTestsMixin:
    """Tests of the SQL backend run on each database."""

    async def backend(self) -> SQLBackend:
        backend = await self.make_backend()
        self.addCleanup(backend.close)
        return backend

    async def inbox_with(self, count: int, size: int = 0):
        backend = await self.backend()
        store = await backend.open_store("alice")
        inbox = await store.get_mailbox("INBOX")
        body = b"x" * size if size else None
        metas = await inbox.append(
            [AppendRequest(make_message(n, body), frozenset(), DATE) for n in range(count)]
        )
        return backend, store, inbox, metas

    async def record_statements(self, backend: SQLBackend) -> list[str]:
        """The statements run from now on, after the reaper's work so far (its
        sweep at the store's opening runs on a timer and would show up)."""
        await backend.reaper.flush()
        statements: list[str] = []

        def before(conn, cursor, statement, parameters, context, executemany):
            statements.append(statement)

        event.listen(backend.db.engine, "before_cursor_execute", before)
        self.addCleanup(event.remove, backend.db.engine, "before_cursor_execute", before)
        return statements

    async def record_round_trips(self, backend: SQLBackend) -> list[str]:
        """
        What the connections send to the database from now on, one entry a
        round trip: every statement with the BEGIN, COMMIT and pings the
        driver adds around them, which C{before_cursor_execute} does not
        see (PostgreSQL: the protocol trace of libpq, one entry per reply
        that ends in ReadyForQuery; SQLite: the statements the library runs).
        """
        await backend.reaper.flush()
        sent: list[str] = []
        engine = backend.db.engine
        postgresql = backend.db.dialect == "postgresql"
        traces: dict[int, Any] = {}

        def checkout(dbapi_connection, record, proxy):
            if not postgresql:
                dbapi_connection.set_trace_callback(sent.append)
                return
            from psycopg import pq

            trace = tempfile.TemporaryFile()
            traces[id(dbapi_connection)] = trace
            pgconn = dbapi_connection.pgconn
            pgconn.trace(trace.fileno())
            pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)

        def checkin(dbapi_connection, record):
            if dbapi_connection is None:
                return
            if not postgresql:
                dbapi_connection.set_trace_callback(None)
                return
            trace = traces.pop(id(dbapi_connection), None)
            if trace is None:
                return
            dbapi_connection.pgconn.untrace()
            trace.seek(0)
            request = None
            text = trace.read().decode("utf-8", "replace")
            # One message a match (the text of a statement may span lines).
            for kind, name, body in re.findall(r"^([FB])\t\d+\t(\w+)(.*?)(?=^[FB]\t\d+\t|\Z)",
                                               text, re.M | re.S):
                if kind == "F" and name in ("Query", "Parse") and request is None:
                    # Query: "text"; Parse: "name" "text" parameter types.
                    pattern = r'\t "(.*)"\s*$' if name == "Query" else r'\t "[^"]*" "(.*)" \d+'
                    request = re.match(pattern, body, re.S).group(1)
                elif kind == "B" and name == "ReadyForQuery":
                    sent.append(request or "")
                    request = None
            trace.close()

        # At checkout, before SQLAlchemy's own use of the connection.
        event.listen(engine, "checkout", checkout, insert=True)
        event.listen(engine, "checkin", checkin)

        def stop():
            event.remove(engine, "checkout", checkout)
            event.remove(engine, "checkin", checkin)

        self.addCleanup(stop)
        return sent

    async def count_rows(self, backend: SQLBackend, table) -> int:
        return await backend.db.read(
            lambda conn: conn.execute(select(func.count()).select_from(table)).scalar_one()
        )

    # -- schema versions --------------------------------------------------------------

    async def test_schema_version_recorded(self) -> None:
        backend = await self.backend()
        await backend.ready()
        version = await backend.db.read(lambda conn: conn.execute(select(schema_version.c.version)).scalar_one())
        self.assertEqual(version, SCHEMA_VERSION)

    async def test_newer_schema_refused(self) -> None:
        backend = await self.backend()
        await backend.ready()
        await backend.db.write(lambda conn: conn.execute(schema_version.update().values(version=SCHEMA_VERSION + 1)))
        reopened = await self.restart_backend(backend)
        self.addCleanup(reopened.close)
        with self.assertRaises(SchemaTooNew) as caught:
            await reopened.ready()
        self.assertIn(f"schema version {SCHEMA_VERSION + 1}", str(caught.exception))
        with self.assertRaises(SchemaTooNew):
            await reopened.open_store("alice")

    async def test_migrations_applied_in_order(self) -> None:
        backend = await self.backend()
        await backend.ready()
        applied = []
        steps = {
            SCHEMA_VERSION: lambda conn: applied.append(SCHEMA_VERSION),
            SCHEMA_VERSION + 1: lambda conn: applied.append(SCHEMA_VERSION + 1),
        }
        found = await backend.db.write(prepare, SCHEMA_VERSION + 2, steps)
        self.assertEqual((found, applied), (SCHEMA_VERSION, [SCHEMA_VERSION, SCHEMA_VERSION + 1]))
        version = await backend.db.read(lambda conn: conn.execute(select(schema_version.c.version)).scalar_one())
        self.assertEqual(version, SCHEMA_VERSION + 2)

    async def test_missing_migration_is_an_error(self) -> None:
        backend = await self.backend()
        await backend.ready()
        with self.assertRaises(SchemaError):
            await backend.db.write(prepare, SCHEMA_VERSION + 1, {})

    # -- users ------------------------------------------------------------------------

    async def test_users(self) -> None:
        backend = await self.backend()
        await backend.add_user("alice", "{PLAIN}one")
        await backend.add_user("bob", "{PLAIN}two")
        with self.assertRaises(UserExists):
            await backend.add_user("alice", "{PLAIN}three")
        await backend.set_password("alice", "{ARGON2ID}$argon2id$v=19$x")
        self.assertEqual(await backend.lookup_password("alice"), "{ARGON2ID}$argon2id$v=19$x")
        self.assertIsNone(await backend.lookup_password("carol"))
        self.assertEqual(await backend.list_users(), ["alice", "bob"])
        with self.assertRaises(UnknownUser):
            await backend.set_password("carol", "x")
        store = await backend.open_store("alice")
        self.assertEqual([i.name for i in await store.list_mailboxes()], ["INBOX"])
        await backend.delete_user("alice")
        self.assertEqual(await backend.list_users(), ["bob"])
        with self.assertRaises(UnknownUser):
            await backend.delete_user("alice")

    async def test_delete_user_removes_mail(self) -> None:
        backend, store, inbox, metas = await self.inbox_with(3)
        await backend.delete_user("alice")
        await backend.reaper.flush()
        self.assertEqual(await self.count_rows(backend, contents), 0)
        self.assertEqual(await self.count_rows(backend, chunks), 0)
        store = await backend.open_store("alice")
        self.assertEqual((await (await store.get_mailbox("INBOX")).status()).messages, 0)

    async def test_store_user_gets_password_later(self) -> None:
        backend = await self.backend()
        await backend.open_store("alice")
        self.assertIsNone(await backend.lookup_password("alice"))
        await backend.add_user("alice", "{PLAIN}x")
        self.assertEqual(await backend.lookup_password("alice"), "{PLAIN}x")

    # -- content ----------------------------------------------------------------------

    async def test_copy_shares_content(self) -> None:
        backend, store, inbox, metas = await self.inbox_with(3)
        await store.create_mailbox("Archive")
        archive = await store.get_mailbox("Archive")
        pairs = await inbox.copy_to([m.uid for m in metas], archive)
        self.assertEqual(len(pairs), 3)
        self.assertEqual(await self.count_rows(backend, contents), 3)
        await inbox.store_flags([m.uid for m in metas], "add", {"\\Deleted"})
        await inbox.expunge()
        await backend.reaper.flush()
        self.assertEqual(await self.count_rows(backend, contents), 3)
        message = await archive.open_message(pairs[1][1])
        self.assertEqual(await message.read(), make_message(1))
        await archive.store_flags([p[1] for p in pairs], "add", {"\\Deleted"})
        await archive.expunge()
        await backend.reaper.flush()
        self.assertEqual(await self.count_rows(backend, contents), 0)
        self.assertEqual(await self.count_rows(backend, chunks), 0)

    async def test_copy_of_runs_and_of_scattered_uids_keeps_each_message(self) -> None:
        # A few runs of consecutive UIDs are copied by INSERT ... SELECT, many
        # scattered ones row by row: both give each copy its original's
        # flags, keywords, dates, size, identity and content.
        backend, store, inbox, metas = await self.inbox_with(40)
        await inbox.store_flags([m.uid for m in metas if m.uid % 3 == 0], "add",
                                {"\\Seen", "$Label1"})
        await inbox.store_flags([m.uid for m in metas if m.uid % 5 == 0], "add", {"\\Flagged"})
        await inbox.store_flags([7, 8, 20], "add", {"\\Deleted"})
        await inbox.expunge([7, 8, 20])
        originals = {m.uid: m for m in await inbox.metadata(await inbox.uids())}
        for name, wanted in (("Runs", list(range(1, 16))),
                             ("Scattered", list(range(1, 41, 2)))):
            await store.create_mailbox(name)
            target = await store.get_mailbox(name)
            pairs = await inbox.copy_to(wanted, target)
            self.assertEqual([old for old, _ in pairs], [u for u in wanted if u in originals])
            self.assertEqual([new for _, new in pairs], list(range(1, len(pairs) + 1)))
            copies = {m.uid: m for m in await target.metadata([new for _, new in pairs])}
            for old, new in pairs:
                original, copy = originals[old], copies[new]
                self.assertEqual((copy.flags, copy.internaldate, copy.size, copy.identity),
                                 (original.flags, original.internaldate, original.size,
                                  original.identity))
                self.assertEqual(await (await target.open_message(new)).read(),
                                 await (await inbox.open_message(old)).read())
            status = await target.status()
            self.assertEqual((status.messages, status.uidnext, status.recent),
                             (len(pairs), len(pairs) + 1, len(pairs)))
            self.assertEqual(status.unseen, sum(
                1 for old, _ in pairs if "\\Seen" not in originals[old].flags))

    async def test_bulk_status_equals_status_one_by_one(self) -> None:
        from zope.interface.verify import verifyObject

        from twisted_mailhub.errors import MailhubError
        from twisted_mailhub.interfaces import IBulkStatusQuery

        backend, store, inbox, metas = await self.inbox_with(3)
        await store.create_mailbox("Lists/python")
        verifyObject(IBulkStatusQuery, store)
        names = ["INBOX", "Lists/python", "Lists", "Nowhere", "inbox", "bad\x00name"]
        outcomes = await store.mailbox_statuses(names)
        self.assertEqual(sorted(outcomes), sorted(names))
        for name in names:
            try:
                expected = await store.mailbox_status(name)
            except MailhubError as e:
                self.assertIsInstance(outcomes[name], type(e), name)
            else:
                self.assertEqual(outcomes[name], expected, name)

    async def test_released_contents_are_reaped_after_the_expunge(self) -> None:
        backend, store, inbox, metas = await self.inbox_with(4)
        await inbox.store_flags([m.uid for m in metas[:2]], "add", {"\\Deleted"})
        await inbox.expunge()
        # The EXPUNGE only dropped the references; the reaper deletes the
        # contents shortly after, and nothing reaches them in between.
        context = SearchContext([m.uid for m in metas], set())
        self.assertEqual(await inbox.search(sk.Text("message 0"), context), [])
        self.assertEqual(await inbox.search(sk.Text("message 2"), context), [metas[2].uid])
        await backend.reaper.flush()
        self.assertEqual(await self.count_rows(backend, contents), 2)
        self.assertEqual(
            [await (await inbox.open_message(m.uid)).read() for m in metas[2:]],
            [make_message(2), make_message(3)])

    async def test_contents_left_unreaped_are_swept_at_open(self) -> None:
        backend, store, inbox, metas = await self.inbox_with(3)
        await inbox.store_flags([metas[0].uid], "add", {"\\Deleted"})
        # As if the process stopped between the EXPUNGE and its reaping.
        backend.reaper.released = lambda ids: None
        await inbox.expunge()
        reopened = await self.restart_backend(backend)
        self.addCleanup(reopened.close)
        await reopened.ready()
        await reopened.reaper.flush()
        self.assertEqual(await self.count_rows(reopened, contents), 2)

    async def test_read_ranges_across_chunks(self) -> None:
        body = bytes(random.Random(7).getrandbits(8) for _ in range(3 * CHUNK_SIZE + 123))
        content = make_message(1, body)
        backend, store, inbox, _ = await self.inbox_with(0)
        [meta] = await inbox.append([AppendRequest(content)])
        self.assertEqual(await self.count_rows(backend, chunks), 4)
        message = await inbox.open_message(meta.uid)
        self.assertEqual(await message.read(), content)
        for offset, length in [(0, 10), (CHUNK_SIZE - 5, 10), (CHUNK_SIZE, CHUNK_SIZE),
                               (2 * CHUNK_SIZE + 1, None), (len(content) - 3, 100),
                               (len(content), 5), (10, 0), (5, 3 * CHUNK_SIZE)]:
            expected = content[offset:] if length is None else content[offset:offset + length]
            self.assertEqual(await message.read(offset, length), expected, (offset, length))

    async def test_opened_messages_carry_their_keywords_in_one_statement(self) -> None:
        backend, store, inbox, _ = await self.inbox_with(0)
        flags = [frozenset({"\\Seen", "$Label1", "Work", "$Junk"}), frozenset({"\\Flagged"}),
                 frozenset({"Personal"})]
        metas = await inbox.append([AppendRequest(make_message(n), f, DATE)
                                    for n, f in enumerate(flags)])
        statements = await self.record_round_trips(backend)
        opened = await inbox.open_messages([m.uid for m in metas])
        self.assertEqual([m.meta.flags for m in opened], flags)
        # The rows, keywords and small contents of a few messages: one query.
        self.assertEqual(len([s for s in statements if s.lstrip().upper().startswith("SELECT")]),
                         1, statements)
        single = await inbox.open_message(metas[0].uid)
        self.assertEqual(single.meta.flags, flags[0])
        self.assertEqual(await single.read(), make_message(0))

    async def test_range_read_touches_only_needed_chunks(self) -> None:
        content = make_message(1, b"y" * (4 * CHUNK_SIZE))
        backend, store, inbox, _ = await self.inbox_with(0)
        [meta] = await inbox.append([AppendRequest(content)])
        message = await inbox.open_message(meta.uid)
        statements = await self.record_round_trips(backend)
        data = await message.read(CHUNK_SIZE + 10, 20)
        self.assertEqual(data, content[CHUNK_SIZE + 10:CHUNK_SIZE + 30])
        [query] = [s for s in statements if "chunks" in s]
        self.assertIn("BETWEEN", query)

    # -- statements issued --------------------------------------------------------------

    async def test_counters_and_flags_do_not_touch_content(self) -> None:
        backend, store, inbox, metas = await self.inbox_with(2000)
        statements = await self.record_statements(backend)
        status = await inbox.status()
        uids = await inbox.uids()
        update = await inbox.store_flags([uids[1234]], "add", {"\\Seen", "$Done"})
        await inbox.metadata(uids)
        self.assertEqual(status.messages, 2000)
        self.assertEqual(len(uids), 2000)
        self.assertEqual(len(update.changed), 1)
        touching = [s for s in statements if re.search(r"\b(contents|chunks)\b", s)]
        self.assertEqual(touching, [])
        self.assertLess(len(statements), 40)

    async def test_reads_of_one_statement_take_one_round_trip(self) -> None:
        # What STATUS, LIST, FETCH of a body, a search on flags and POP3's
        # RETR of a large message ask the store: each one statement, which
        # needs no transaction (a BEGIN and a COMMIT, two more round trips
        # to a server) nor a ping of a connection just used.
        large = make_message(1, b"z" * (2 * CHUNK_SIZE))
        backend, store, inbox, metas = await self.inbox_with(3)
        [big] = await inbox.append([AppendRequest(large)])
        await store.create_mailbox("Other")
        opened = await inbox.open_message(big.uid)
        calls = [
            lambda: store.mailbox_status("INBOX"),
            lambda: store.mailbox_statuses(["INBOX", "Other", "Nowhere"]),
            lambda: store.list_mailboxes(),
            lambda: inbox.status(),
            lambda: inbox.open_message(metas[1].uid),
            lambda: inbox.open_messages([m.uid for m in metas]),
            lambda: opened.read(CHUNK_SIZE, 10),
            lambda: inbox.search(sk.Flag("\\Seen", False), SearchContext([m.uid for m in metas] + [big.uid],
                                                             set())),
        ]
        for call in calls:  # connections made, statements compiled
            await call()
        sent = await self.record_round_trips(backend)
        for n, call in enumerate(calls):
            await call()
            self.assertEqual(len(sent), n + 1, sent)
        self.assertEqual([s for s in sent if not s.lstrip().upper().startswith("SELECT")], [],
                         sent)

    async def test_connection_idle_for_a_while_is_pinged(self) -> None:
        from twisted_mailhub.backends.sql import engine as engine_module

        backend, store, inbox, metas = await self.inbox_with(1)
        await inbox.status()
        sent = await self.record_round_trips(backend)
        await inbox.status()
        self.patch(engine_module, "PING_AFTER_IDLE", 0.0)
        await inbox.status()
        pings = [s for s in sent if not s.lstrip().upper().startswith("SELECT")]
        # SQLite makes no round trips: no ping, whatever the pool's age.
        expected = 1 if backend.db.dialect == "postgresql" else 0
        self.assertEqual(len(pings), expected, sent)
        self.assertEqual(len(sent), 2 + expected, sent)

    async def test_reads_of_several_statements_keep_their_transaction(self) -> None:
        # The rows and keywords of metadata, and the changes since a
        # modseq (rows, then expunged UIDs), must come from one snapshot.
        backend, store, inbox, metas = await self.inbox_with(3)
        await inbox.metadata([m.uid for m in metas])
        sent = await self.record_round_trips(backend)
        await inbox.metadata([m.uid for m in metas])
        await inbox.changes_since(1)
        begins = [s for s in sent if s.lstrip().upper().startswith("BEGIN")]
        self.assertEqual(len(begins), 2, sent)

    async def test_status_by_name_in_one_statement(self) -> None:
        from zope.interface.verify import verifyObject

        from twisted_mailhub.errors import MailboxNotFound, NotSelectable
        from twisted_mailhub.interfaces import IStatusQuery

        backend, store, inbox, metas = await self.inbox_with(5)
        verifyObject(IStatusQuery, store)
        await inbox.store_flags([metas[0].uid], "add", {"\\Seen", "\\Deleted"})
        await store.create_mailbox("a/b")
        statements = await self.record_statements(backend)
        by_name = await store.mailbox_status("INBOX")
        self.assertEqual(len([s for s in statements if s.lstrip().upper().startswith("SELECT")]), 1)
        self.assertEqual(by_name, await (await store.get_mailbox("inbox")).status())
        self.assertEqual((by_name.messages, by_name.unseen, by_name.deleted), (5, 4, 1))
        await store.delete_mailbox("a")  # has an inferior: stays as a hierarchy name
        with self.assertRaises(NotSelectable):
            await store.mailbox_status("a")
        with self.assertRaises(MailboxNotFound):
            await store.mailbox_status("nowhere")
        with self.assertRaises(NotSelectable):
            await store.get_mailbox("a")

    # -- SEARCH -------------------------------------------------------------------------

    async def searchable_inbox(self):
        backend = await self.backend()
        store = await backend.open_store("alice")
        inbox = await store.get_mailbox("INBOX")
        metas = await inbox.append(
            [AppendRequest(content, frozenset(flags), when) for content, flags, when in SEARCH_CORPUS]
        )
        await inbox.store_flags([metas[1].uid], "add", {"Later"})
        uids = await inbox.uids()
        # The session knows all but the last message; 2 and 4 are recent for it.
        context = SearchContext(uids[:-1], {uids[1], uids[3]}, saved=[uids[0], uids[2]],
                                now=DATE + timedelta(hours=1))
        return inbox, context

    async def test_search_pushdown_matches_generic(self) -> None:
        inbox, context = await self.searchable_inbox()
        generic = _GenericOnly(inbox)
        rng = random.Random(1234)
        keys = ATOMS + [_random_key(rng) for _ in range(150)]
        for key in keys:
            pushed = await inbox.search(key, context)
            self.assertIsNotNone(pushed, key)
            view = set(context.uids)
            self.assertEqual(
                sorted(u for u in pushed if u in view), await search(generic, key, context), key
            )

    async def test_uidafter_and_uidbefore_are_pushed_down(self) -> None:
        """RFC 9738 section 3.2's keys, as the parser makes them, in SQL as generically."""
        from twisted_mailhub.imap.parser import CommandParser

        inbox, context = await self.searchable_inbox()
        uids = context.uids
        generic = _GenericOnly(inbox)
        for text, expected in [(b"UIDAFTER %d" % uids[1], uids[2:]),
                               (b"UIDBEFORE %d" % uids[2], uids[:2]),
                               (b"UIDBEFORE 1", []), (b"UIDAFTER 4294967295", []),
                               (b"UIDAFTER %d" % (uids[-1] + 5), []),
                               (b"NOT UIDAFTER %d UIDAFTER %d" % (uids[3], uids[0]),
                                uids[1:4])]:
            parser = CommandParser()
            parser.receive_data(b"a UID SEARCH " + text + b"\r\n")
            key = parser.next_event().command.key
            pushed = await inbox.search(key, context)
            self.assertIsNotNone(pushed, text)
            self.assertEqual(sorted(u for u in pushed if u in set(uids)), expected, text)
            self.assertEqual(await search(generic, key, context), expected, text)

    async def test_older_and_younger_to_the_second(self) -> None:
        """
        RFC 5032 section 2: OLDER/YOUNGER match to the second, inclusive,
        in SQL as in the generic evaluator, whatever fraction of a second
        a date was kept with.
        """
        backend = await self.backend()
        inbox = await (await backend.open_store("alice")).get_mailbox("INBOX")
        target = DATE - timedelta(seconds=60)
        await inbox.append([AppendRequest(make_message(n), frozenset(), target + delta)
                            for n, delta in enumerate((timedelta(microseconds=999_999),
                                                       timedelta(0), timedelta(seconds=-1),
                                                       timedelta(seconds=1)))])
        uids = await inbox.uids()
        context = SearchContext(uids, set(), now=DATE + timedelta(microseconds=250_000))
        for key, expected in [(sk.Age("older", 60), uids[:3]),
                              (sk.Age("younger", 60), [uids[0], uids[1], uids[3]]),
                              (sk.Age("older", 61), [uids[2]]),
                              (sk.Age("younger", 59), [uids[3]])]:
            self.assertEqual(sorted(await inbox.search(key, context)), expected, key)
            self.assertEqual(await search(_GenericOnly(inbox), key, context), expected, key)

    async def test_search_declines_keys_without_columns(self) -> None:
        inbox, context = await self.searchable_inbox()
        for key in [sk.Header("received", "x"), sk.Header("subject", "a\nb"),
                    sk.And((sk.Flag("\\Seen"), sk.Header("received", "x")))]:
            self.assertIsNone(await inbox.search(key, context), key)
        # BODY and TEXT go to the full-text index (tests/backends/test_sql_fts.py).
        for key in [sk.Body("body"), sk.Text("x"), sk.And((sk.Flag("\\Seen"), sk.Body("body")))]:
            self.assertIsNotNone(await inbox.search(key, context), key)
            self.assertEqual(await search(inbox, key, context),
                             await search(_GenericOnly(inbox), key, context), key)

    # -- concurrency ----------------------------------------------------------------------

    async def test_concurrent_writers(self) -> None:
        backend, store, inbox, _ = await self.inbox_with(0)
        sessions = [await (await backend.open_store("alice")).get_mailbox("INBOX") for _ in range(6)]
        work = []
        for i, session in enumerate(sessions):
            work.append(defer.ensureDeferred(session.append([AppendRequest(make_message(i))])))
            work.append(defer.ensureDeferred(session.claim_recent()))
            work.append(defer.ensureDeferred(session.status()))
        await defer.gatherResults(work, consumeErrors=True)
        uids = await inbox.uids()
        self.assertEqual(len(uids), 6)
        await defer.gatherResults([
            defer.ensureDeferred(s.store_flags(uids, "add", {f"k{i}"})) for i, s in enumerate(sessions)
        ], consumeErrors=True)
        metas = await inbox.metadata(uids)
        self.assertEqual({frozenset(m.flags) for m in metas}, {frozenset(f"k{i}" for i in range(6))})
        modseqs = sorted({m.modseq for m in metas})
        self.assertEqual(len(modseqs), 1)
        self.assertEqual((await inbox.status()).highestmodseq, modseqs[0])


class SQLiteBackendTests(SQLiteMixin, SQLBackendTestsMixin, unittest.TestCase):
    async def test_short_url_forms(self) -> None:
        path = self.mktemp()
        os.makedirs(path)
        relative = os.path.relpath(os.path.join(path, "a.db"))
        self.assertEqual(parse_url("sqlite:" + relative).database, os.path.abspath(relative))
        self.assertEqual(str(parse_url("postgresql://u@h/db")), "postgresql+psycopg://u@h/db")
        full = os.path.abspath(os.path.join(path, "b.db"))
        backend = open_backend("sqlite:///" + full)
        self.addCleanup(backend.close)
        await backend.open_store("alice")
        self.assertTrue(os.path.exists(full))

    async def test_sqlite_durability_settings(self) -> None:
        backend = await self.backend()
        await backend.ready()

        def pragmas(conn):
            return [conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                    for name in ("journal_mode", "synchronous", "busy_timeout")]

        journal, synchronous, busy = await backend.db.read(pragmas)
        self.assertEqual((journal, synchronous), ("wal", 2))  # 2 is FULL
        self.assertGreater(busy, 0)

    async def test_killed_process_keeps_acknowledged_messages(self) -> None:
        path = os.path.join(os.path.abspath(self.mktemp()), "mail.db")
        os.makedirs(os.path.dirname(path))
        env = dict(os.environ)
        root = os.path.dirname(os.path.dirname(twisted_mailhub.__file__))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
        out, err, code = await getProcessOutputAndValue(
            sys.executable, ["-c", _CRASHING_WRITER, path], env=env
        )
        self.assertEqual(code, 9, err)
        acknowledged = [int(line) for line in out.split()]
        self.assertEqual(len(acknowledged), 25, err)

        backend = open_backend("sqlite:" + path)
        self.addCleanup(backend.close)
        inbox = await (await backend.open_store("alice")).get_mailbox("INBOX")
        uids = await inbox.uids()
        self.assertTrue(set(acknowledged) <= set(uids))
        for n, uid in enumerate(acknowledged):
            self.assertEqual(await (await inbox.open_message(uid)).read(), make_message(n))
        check = await backend.db.read(lambda conn: conn.exec_driver_sql("PRAGMA integrity_check").scalar())
        self.assertEqual(check, "ok")
        [new] = await inbox.append([AppendRequest(make_message(99))])
        self.assertGreater(new.uid, max(uids))


_CRASHING_WRITER = r"""
import os, sys
from twisted.internet import defer, task
from twisted_mailhub.backends.sql import open_backend
from twisted_mailhub.model import AppendRequest
from twisted_mailhub.testing import make_message

async def main(reactor):
    backend = open_backend("sqlite:" + sys.argv[1])
    inbox = await (await backend.open_store("alice")).get_mailbox("INBOX")
    for n in range(25):
        [meta] = await inbox.append([AppendRequest(make_message(n))])
        sys.stdout.write("%d\n" % meta.uid)
        sys.stdout.flush()
    # More appends in flight, never acknowledged, when the process dies.
    for n in range(25, 30):
        defer.ensureDeferred(inbox.append([AppendRequest(make_message(n, b"z" * 300000))]))
    os._exit(9)

task.react(lambda reactor: defer.ensureDeferred(main(reactor)))
"""


class PostgreSQLBackendTests(PostgreSQLMixin, SQLBackendTestsMixin, unittest.TestCase):
    skip = PG_SKIP

    async def test_read_after_the_server_closed_the_connections(self) -> None:
        # Connections used just now are not pinged; should the server have
        # closed them meanwhile, a read runs again on a new connection.
        from sqlalchemy import create_engine, text
        from sqlalchemy.pool import NullPool

        backend, store, inbox, metas = await self.inbox_with(2)
        await inbox.status()

        def terminate():
            # From a connection of its own: every one of the pool is closed.
            other = create_engine(backend.db.url, poolclass=NullPool)
            try:
                with other.connect() as conn:
                    return conn.execute(text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )).scalar()
            finally:
                other.dispose()

        self.assertGreater(await threads.deferToThread(terminate), 0)
        self.assertEqual((await inbox.status()).messages, 2)
        self.assertEqual(len(await inbox.uids()), 2)
