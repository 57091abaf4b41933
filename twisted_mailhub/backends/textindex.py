"""
The full-text index of the stores that keep mail in files (mbox, Maildir):
what SEARCH BODY and TEXT look up instead of parsing every message.

One SQLite database per user, beside the summaries file (the store names
it: C{text_index_path}), holds for each message identity
(L{MessageMeta.identity}) the folded header and body text of
L{twisted_mailhub.backends.fulltext.index_text}, in an FTS5 table with the
trigram tokenizer, as the SQL store's index does
(L{twisted_mailhub.backends.sql.fts}):

    entries (id INTEGER PRIMARY KEY, identity TEXT UNIQUE)
    texts   FTS5 (header, body), its rowid the entry's id
    state   (key, value): C{generation}, replaced when entries are removed

An identity names one immutable content, so an entry never goes stale and
the copies of a message in several mailboxes share it.  The database is a
cache: an entry is written when a message is appended, and a message found
without one (delivered by another program, or stored before the index
existed) is indexed by the first search that needs it, so an answer is
always complete.  A missing database is made again, a corrupt one is
deleted and made again, and any other failure leaves the search to the
generic evaluator: never a wrong answer.  Entries of messages that are gone
stay until L{TextIndex.prune} (when the summaries file is compacted, and at
C{mailhub check --repair}).

Every method blocks: they are called in the backend's threads.  Processes
sharing a store share the database through SQLite's own locking.  The
rollback journal is used, not WAL: it leaves no file beside the database
between transactions, so deleting the database while servers run is
noticed by each of them (the file at the path is another, or none) and
nothing of the old one is applied to the new one.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from twisted.logger import Logger

from twisted_mailhub.backends.fulltext import fold, glob_pattern, message_text

log = Logger()

T = TypeVar("T")

#: The layout written by this code (C{PRAGMA user_version}).
VERSION = 1

#: Messages read per pass, and the most bytes, when a search indexes
#: messages that have no entry (the folder's locks are let go between).
FILL_BATCH = 200
FILL_BYTES = 16 * 1024 * 1024

#: Identities looked up or deleted per statement.
_CHUNK = 500

_SCHEMA = (
    "CREATE TABLE entries (id INTEGER PRIMARY KEY, identity TEXT NOT NULL UNIQUE)",
    "CREATE VIRTUAL TABLE texts USING fts5("
    "header, body, tokenize = 'trigram case_sensitive 1', detail = none)",
    "CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
)

# SQLite's primary result codes for a damaged file.
_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26


class Unusable(Exception):
    """This SQLite cannot hold the index (no FTS5 with the trigram tokenizer)."""


def _corrupt(error: sqlite3.Error) -> bool:
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB)
    text = str(error)
    return "malformed" in text or "not a database" in text


class TextIndex:
    """
    The index database at C{path}.  Safe to use from several threads (one
    at a time: a lock guards the connection).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._file: tuple[int, int] | None = None
        #: Identities known to have an entry, valid for one generation.
        self._known: set[str] = set()
        self._generation: str | None = None
        self.unusable = False

    def __repr__(self) -> str:
        return f"<TextIndex {self.path}>"

    # -- the connection --------------------------------------------------------

    def _close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except sqlite3.Error:
                pass
        self._conn, self._file = None, None
        self._known, self._generation = set(), None

    def _connection(self) -> sqlite3.Connection:
        """The connection to the file now at C{path}, made (and the file) if need be."""
        try:
            st = os.stat(self.path)
            current: tuple[int, int] | None = (st.st_dev, st.st_ino)
        except FileNotFoundError:
            current = None
        if self._conn is not None and current == self._file:
            return self._conn
        # First use, or the file was deleted or replaced.
        self._close()
        if current is None:
            # It holds the text of the mail: as private as the mail is (the
            # journal SQLite writes beside it takes the same mode).
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
        conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None,
                               check_same_thread=False)
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version != VERSION:
                self._create(conn)
            st = os.stat(self.path)
        except BaseException:
            conn.close()
            raise
        self._conn, self._file = conn, (st.st_dev, st.st_ino)
        return conn

    def _create(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            if conn.execute("PRAGMA user_version").fetchone()[0] == VERSION:
                conn.execute("COMMIT")  # another process made it meanwhile
                return
            # A new file, or another layout (or tables of ours in a file
            # without our version: not to be trusted): start again.
            for table in ("texts", "entries", "state"):
                conn.execute(f"DROP TABLE IF EXISTS {table}")
            for ddl in _SCHEMA:
                try:
                    conn.execute(ddl)
                except sqlite3.OperationalError as e:
                    if "no such module" in str(e) or "no such tokenizer" in str(e):
                        raise Unusable(str(e)) from e
                    raise
            conn.execute("INSERT INTO state (key, value) VALUES ('generation', ?)",
                         (secrets.token_hex(8),))
            conn.execute(f"PRAGMA user_version = {VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _rollback(self) -> None:
        if self._conn is not None and self._conn.in_transaction:
            try:
                self._conn.execute("ROLLBACK")
            except sqlite3.Error:
                self._close()

    def _remove_files(self) -> None:
        for suffix in ("", "-wal", "-shm", "-journal"):
            try:
                os.unlink(self.path + suffix)
            except FileNotFoundError:
                pass

    def _use(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """
        Run C{work} on the connection, lock held; a corrupt file is deleted
        and made again once.  L{Unusable} when this SQLite cannot hold it.
        """
        if self.unusable:
            raise Unusable(self.path)
        with self._lock:
            for attempt in (1, 2):
                try:
                    return work(self._connection())
                except BaseException as e:
                    self._rollback()
                    if isinstance(e, Unusable):
                        self.unusable = True
                        log.warn("SQLite lacks FTS5 with the trigram tokenizer; BODY and "
                                 "TEXT searches of {path} will read every message",
                                 path=self.path)
                        self._close()
                    if (attempt == 2 or not isinstance(e, sqlite3.DatabaseError)
                            or not _corrupt(e)):
                        raise
                    log.warn("The full-text index {path} is damaged ({error}); made anew",
                             path=self.path, error=str(e))
                    self._close()
                    self._remove_files()
            raise AssertionError("unreachable")

    # -- which identities have an entry ----------------------------------------

    def _catch_up(self, conn: sqlite3.Connection) -> None:
        """Forget what is known when entries were removed since (transaction open)."""
        row = conn.execute("SELECT value FROM state WHERE key = 'generation'").fetchone()
        generation = row[0] if row is not None else None
        if generation is None or generation != self._generation:
            self._known = set()
            self._generation = generation

    def _missing(self, conn: sqlite3.Connection, identities: Iterable[str]) -> list[str]:
        """Those of C{identities} without an entry (transaction open)."""
        self._catch_up(conn)
        wanted = set(identities)
        if not self._known and len(wanted) > _CHUNK:
            # Learning them all at once is quicker than asking for each.
            self._known.update(row[0] for row in conn.execute("SELECT identity FROM entries"))
        unknown = list(wanted - self._known)
        for start in range(0, len(unknown), _CHUNK):
            chunk = unknown[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            self._known.update(row[0] for row in conn.execute(
                f"SELECT identity FROM entries WHERE identity IN ({marks})", chunk))
        return [i for i in unknown if i not in self._known]

    def missing(self, identities: Iterable[str]) -> list[str]:
        """Those of C{identities} the index has no entry for."""
        identities = list(identities)

        def read(conn: sqlite3.Connection) -> list[str]:
            conn.execute("BEGIN")
            missing = self._missing(conn, identities)
            conn.execute("COMMIT")
            return missing

        return self._use(read)

    # -- writing ---------------------------------------------------------------

    def add(self, texts: Iterable[tuple[str, str, str]]) -> int:
        """
        Keep the (identity, folded header, folded body) of each message
        not indexed yet (L{text_of} makes them); how many were new.
        """
        rows = list(texts)
        if not rows:
            return 0

        def write(conn: sqlite3.Connection) -> int:
            conn.execute("BEGIN IMMEDIATE")
            self._catch_up(conn)
            added = 0
            for identity, header, body in rows:
                cursor = conn.execute(
                    "INSERT OR IGNORE INTO entries (identity) VALUES (?)", (identity,))
                if cursor.rowcount == 1:
                    conn.execute("INSERT INTO texts (rowid, header, body) VALUES (?, ?, ?)",
                                 (cursor.lastrowid, header, body))
                    added += 1
            conn.execute("COMMIT")
            self._known.update(identity for identity, _, _ in rows)
            return added

        return self._use(write)

    def add_contents(self, messages: Iterable[tuple[str, bytes]]) -> int:
        """L{add} the (identity, content) of each message, its text extracted here."""
        return self.add(text_of(identity, content) for identity, content in messages)

    def prune(self, live: Iterable[str]) -> int:
        """Remove the entries of identities not in C{live}; how many were removed."""
        live = frozenset(live)
        if not os.path.exists(self.path):
            return 0

        def write(conn: sqlite3.Connection) -> int:
            conn.execute("BEGIN IMMEDIATE")
            dead = [row_id for row_id, identity in conn.execute("SELECT id, identity FROM entries")
                    if identity not in live]
            for start in range(0, len(dead), _CHUNK):
                chunk = dead[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                conn.execute(f"DELETE FROM texts WHERE rowid IN ({marks})", chunk)
                conn.execute(f"DELETE FROM entries WHERE id IN ({marks})", chunk)
            if dead:
                # Other processes' lists of what has an entry are now wrong.
                conn.execute("UPDATE state SET value = ? WHERE key = 'generation'",
                             (secrets.token_hex(8),))
            conn.execute("COMMIT")
            return len(dead)

        return self._use(write)

    # -- searching -------------------------------------------------------------

    def search(self, terms: list[tuple[str, str]], identities: Iterable[str],
               ) -> tuple[list[str], list[frozenset[str] | None]]:
        """
        C{(missing, found)}: C{missing} lists those of C{identities} that
        have no entry (index them and ask again); when there are none,
        C{found} holds, for each C{(field, needle)} of C{terms}, the
        identities whose C{field} (C{"body"}, or C{"text"}: header or
        body) contains C{needle} as the generic evaluator decides it
        (C{None}: every message).
        """
        identities = list(identities)

        def read(conn: sqlite3.Connection) -> tuple[list[str], list[Any]]:
            # One read transaction: the entries found are the ones searched,
            # whatever a prune elsewhere does meanwhile.
            conn.execute("BEGIN")
            missing = self._missing(conn, identities)
            found = [] if missing else [_matching(conn, f, needle) for f, needle in terms]
            conn.execute("COMMIT")
            return missing, found

        return self._use(read)


def text_of(identity: str, content: bytes) -> tuple[str, str, str]:
    """The row L{TextIndex.add} takes for the message C{content}."""
    return (identity, *message_text(content))


def _matching(conn: sqlite3.Connection, field: str, needle: str) -> frozenset[str] | None:
    needle = fold(needle)
    if not needle:
        return None  # the empty string is in every text
    columns = ["body"] if field == "body" else ["header", "body"]
    pattern = glob_pattern(needle)
    if pattern is not None:
        # One indexed GLOB per column (an OR of the two would scan).
        union = " UNION ".join(f"SELECT rowid FROM texts WHERE {c} GLOB ?" for c in columns)
        rows = conn.execute(f"SELECT identity FROM entries WHERE id IN ({union})",
                            [pattern] * len(columns))
    else:
        # No trigram to look up: every text is read.
        found = " OR ".join(f"instr(t.{c}, ?) > 0" for c in columns)
        rows = conn.execute(f"SELECT e.identity FROM entries e JOIN texts t ON t.rowid = e.id "
                            f"WHERE {found}", [needle] * len(columns))
    return frozenset(row[0] for row in rows)


class TextIndexes:
    """The L{TextIndex} of each path, one per path in the process."""

    def __init__(self) -> None:
        self._indexes: dict[str, TextIndex] = {}
        self._lock = threading.Lock()

    def at(self, path: str) -> TextIndex:
        """The index at C{path}."""
        with self._lock:
            found = self._indexes.get(path)
            if found is None:
                found = self._indexes[path] = TextIndex(path)
            return found


__all__ = ["FILL_BATCH", "FILL_BYTES", "TextIndex", "TextIndexes", "Unusable", "text_of"]
