"""
A new SQLite file is put in WAL mode by the first connection of whichever
server opens it: servers (or backends) starting together on one new file
all open it, none told that the database is locked.
"""

from __future__ import annotations

import multiprocessing
import os
import sqlite3

import pytest

from twisted_mailhub.backends.sql import engine


class _Cursor:
    """Answers the WAL switch "database is locked" C{refusals} times first."""

    def __init__(self, refusals: int, message: str = "database is locked") -> None:
        self.refusals = refusals
        self.message = message
        self.executed = 0

    def execute(self, sql: str) -> None:
        assert sql == "PRAGMA journal_mode = WAL"
        self.executed += 1
        if self.refusals:
            self.refusals -= 1
            raise sqlite3.OperationalError(self.message)


def test_the_switch_is_tried_again_while_the_file_is_locked():
    cursor = _Cursor(refusals=3)
    engine._use_wal(cursor)
    assert cursor.executed == 4


def test_other_errors_are_not_tried_again():
    cursor = _Cursor(refusals=1, message="disk I/O error")
    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        engine._use_wal(cursor)
    assert cursor.executed == 1


def test_waiting_is_bounded(monkeypatch):
    monkeypatch.setattr(engine, "SQLITE_BUSY_TIMEOUT_MS", 50)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        engine._use_wal(_Cursor(refusals=10**6))


def _open(path: str, start, results) -> None:
    try:
        db = engine.make_engine(engine.parse_url("sqlite:" + path), 1)
        start.wait()
        with db.connect() as conn:
            mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
        db.dispose()
        results.put(mode)
    except Exception as e:  # reported, not raised, in the child
        results.put(repr(e))


def test_processes_opening_a_new_file_together(tmp_path):
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    found = []
    for n in range(8):
        path = os.fspath(tmp_path / f"new{n}.sqlite")
        start = context.Barrier(4)
        children = [context.Process(target=_open, args=(path, start, results))
                    for _ in range(4)]
        for child in children:
            child.start()
        for child in children:
            child.join(60)
        found += [results.get(timeout=10) for _ in children]
    assert found == ["wal"] * len(found)
