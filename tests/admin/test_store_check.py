"""
``mailhub check``: real SQLite (and PostgreSQL, when configured) stores and
mbox directories are filled by ``mailhub import``, damaged on purpose
behind the store's back, checked, repaired, and then served by a real
server to imaplib as if nothing had happened (less what was truly lost).
"""

from __future__ import annotations

import imaplib
import json
import re
import sqlite3
import subprocess

import pytest
from admin_harness import (
    PASSWORD,
    Store,
    assert_same_mail,
    fetch_all,
    mailhub,
    ok,
    samples,
    write_mbox,
)
from stores import PG_URL, create_pg_database, drop_pg_database
from test_plugin import DEADLINE, running_twistd
from zope.interface.verify import verifyClass

from twisted_mailhub.backends.mbox import MboxBackend
from twisted_mailhub.backends.mbox.index import read_index
from twisted_mailhub.backends.mbox.index import read_index
from twisted_mailhub.backends.sql import SQLBackend
from twisted_mailhub.interfaces import ICheckableBackend


def test_the_stores_provide_the_check():
    verifyClass(ICheckableBackend, SQLBackend)
    verifyClass(ICheckableBackend, MboxBackend)


def filled(store: Store, tmp_path, *folders: str) -> list:
    messages = samples()
    source = tmp_path / "in.mbox"
    write_mbox(source, messages)
    for folder in folders:
        ok(mailhub("import", "alice", "--mbox", str(source), "--folder", folder, "-q",
                   *store.args))
    return messages


def check(store: Store, *args: str):
    return mailhub("check", *args, *store.args)


def append_uid(port: int, mailbox: str) -> int:
    """APPEND a message over IMAP; the UID the server gave it (UIDPLUS)."""
    with imaplib.IMAP4("127.0.0.1", port, timeout=DEADLINE) as client:
        client.login("alice", PASSWORD)
        typ, data = client.append(mailbox, None, None, b"Subject: after\r\n\r\nnew\r\n")
        assert typ == "OK", data
        client.logout()
    return int(re.search(rb"APPENDUID \d+ (\d+)", data[0]).group(1))


def status(port: int, mailbox: str) -> dict[str, int]:
    with imaplib.IMAP4("127.0.0.1", port, timeout=DEADLINE) as client:
        client.login("alice", PASSWORD)
        typ, data = client.status(mailbox, "(MESSAGES UNSEEN UIDNEXT)")
        assert typ == "OK"
        client.logout()
    return {k.decode(): int(v) for k, v in re.findall(rb"(\w+) (\d+)", data[0])}


def test_clean_store_is_clean(tmp_path):
    store = Store("sqlite", tmp_path)
    filled(store, tmp_path, "INBOX", "Lists/python")
    result = check(store)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("no problem found")
    # bob, a user of the configuration only, has no mail yet.
    assert "1 user(s), 3 mailbox(es), 12 message(s) checked" in result.stdout


# -- SQLite ---------------------------------------------------------------------


def _ids(db: sqlite3.Connection, mailbox: str, uid: int) -> tuple[int, int]:
    return db.execute(
        "SELECT m.id, m.content_id FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id "
        "WHERE b.name = ? AND m.uid = ?", (mailbox, uid)).fetchone()


def damage_sqlite(path) -> None:
    """What a crash of some other program, or a careless hand, can leave."""
    db = sqlite3.connect(path)  # foreign keys are not enforced here
    with db:
        db.execute("UPDATE mailboxes SET uidnext = 2, highestmodseq = 1, message_count = 99,"
                   " unseen_count = 0 WHERE name = 'INBOX'")
        _, lost_chunks = _ids(db, "INBOX", 3)
        db.execute("DELETE FROM chunks WHERE content_id = ?", (lost_chunks,))
        _, lost_row = _ids(db, "Copy", 1)
        db.execute("DELETE FROM chunks WHERE content_id = ?", (lost_row,))
        # Its summaries (kept since the APPEND) go with it: the one orphaned
        # summary row is the one inserted below.
        db.execute("DELETE FROM summaries WHERE content_id = ?", (lost_row,))
        db.execute("DELETE FROM contents WHERE id = ?", (lost_row,))
        resized, _ = _ids(db, "Copy", 2)
        db.execute("UPDATE messages SET size = 1 WHERE id = ?", (resized,))
        _, miscounted = _ids(db, "INBOX", 4)
        db.execute("UPDATE contents SET refcount = 7 WHERE id = ?", (miscounted,))
        db.execute("INSERT INTO contents (size, refcount, structure) VALUES (5, 1, '{}')")
        db.execute("INSERT INTO chunks (content_id, seq, data) VALUES (424242, 0, x'00')")
        db.execute("INSERT INTO summaries (content_id, name, data) VALUES (424242, 'x', x'00')")
        db.execute("INSERT INTO keywords (message_id, keyword) VALUES (434343, 'stray')")
    db.close()


def test_sqlite_damage_is_found_repaired_and_served(tmp_path):
    store = Store("sqlite", tmp_path)
    messages = filled(store, tmp_path, "INBOX", "Copy")
    damage_sqlite(store.path)

    found = check(store)
    assert found.returncode == 1, found.stderr
    lines = found.stdout.splitlines()
    expected = [
        ("alice:INBOX:", "UIDNEXT 2 is not above UID 6"),
        ("alice:INBOX:", "HIGHESTMODSEQ 1 is below"),
        ("alice:INBOX:", "counters disagree with the messages: messages 99 (is 6), unseen 0"),
        ("alice:INBOX:", "1 message(s) whose content is lost (UID 3)"),
        ("alice:Copy:", "1 message(s) whose content is lost (UID 1)"),
        ("alice:Copy:", "1 message(s) whose size differs from their content (UID 2)"),
        ("store:", "1 content reference count(s) wrong"),
        ("store:", "1 content(s) no message refers to"),
        ("store:", "1 chunk row(s) of no content"),
        ("store:", "1 summary row(s) of no content"),
        ("store:", "1 keyword row(s) of no message"),
    ]
    for where, what in expected:
        assert any(line.startswith(where) and what in line for line in lines), (what, lines)
    assert lines[-1].endswith("run again with --repair to fix them")

    only_alice = check(store, "alice")
    assert only_alice.returncode == 1
    assert not any(line.startswith("store:") for line in only_alice.stdout.splitlines())
    unknown = check(store, "nobody")
    assert unknown.returncode == 1 and "No such user: nobody" in unknown.stderr

    repaired = check(store, "--repair")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert "; removed" in repaired.stdout and "; corrected" in repaired.stdout
    assert repaired.stdout.splitlines()[-1].endswith("problem(s) found and repaired")
    again = check(store)
    assert again.returncode == 0 and again.stdout.strip().endswith("no problem found")
    db = sqlite3.connect(store.path)
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    db.close()

    stats = ok(mailhub("mailbox", "stats", "alice", "INBOX", *store.args)).stdout
    assert "messages: 5\n" in stats and "uidnext: 7\n" in stats
    with running_twistd(tmp_path, *store.server_args()) as ports:
        port = ports["IMAP"]
        inbox = fetch_all(port, "alice", "INBOX")
        assert [f.uid for f in inbox] == [1, 2, 4, 5, 6]
        assert_same_mail(inbox, messages[:2] + messages[3:])
        copy = fetch_all(port, "alice", "Copy")
        assert [f.uid for f in copy] == [2, 3, 4, 5, 6]
        assert_same_mail(copy, messages[1:])
        unseen = sum(1 for m in messages[:2] + messages[3:] if "\\Seen" not in m.flags)
        assert status(port, "INBOX") == {"MESSAGES": 5, "UNSEEN": unseen, "UIDNEXT": 7}
        assert append_uid(port, "INBOX") == 7
    assert check(store).returncode == 0


def test_repair_next_to_a_running_server_announces_what_it_removes(tmp_path):
    store = Store("sqlite", tmp_path)
    messages = filled(store, tmp_path, "INBOX")
    with running_twistd(tmp_path, *store.server_args()) as ports:
        with imaplib.IMAP4("127.0.0.1", ports["IMAP"], timeout=DEADLINE) as client:
            client.login("alice", PASSWORD)
            assert client.select("INBOX") == ("OK", [b"6"])
            db = sqlite3.connect(store.path)
            with db:
                _, lost = _ids(db, "INBOX", 3)
                db.execute("DELETE FROM chunks WHERE content_id = ?", (lost,))
            db.close()
            client.send(b"I1 IDLE\r\n")
            assert client.readline().startswith(b"+")
            repaired = check(store, "--repair")
            assert repaired.returncode == 0, repaired.stdout + repaired.stderr
            assert "alice:INBOX: 1 message(s) whose content is lost (UID 3); removed" in (
                repaired.stdout)
            while not (line := client.readline()).endswith(b"EXPUNGE\r\n"):
                assert line, "the server closed the connection"
            assert line == b"* 3 EXPUNGE\r\n"
            client.send(b"DONE\r\n")
            while not (line := client.readline()).startswith(b"I1 "):
                assert line
            client.logout()
        assert_same_mail(fetch_all(ports["IMAP"], "alice", "INBOX"),
                         messages[:2] + messages[3:])


def test_released_contents_are_not_damage(tmp_path):
    """A content whose count reached zero waits for the server to delete it."""
    store = Store("sqlite", tmp_path)
    filled(store, tmp_path, "INBOX")
    db = sqlite3.connect(store.path)
    with db:
        db.execute("INSERT INTO contents (size, refcount, structure) VALUES (5, 0, '{}')")
    db.close()
    clean = check(store)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert check(store, "--repair").returncode == 0
    db = sqlite3.connect(store.path)
    assert db.execute("SELECT count(*) FROM contents WHERE refcount = 0").fetchone() == (0,)
    db.close()


@pytest.mark.skipif(not PG_URL, reason="MAILHUB_TEST_POSTGRESQL_URL names no server")
def test_postgresql_damage_is_repaired(tmp_path):
    import psycopg
    from sqlalchemy.engine import make_url

    url = create_pg_database()
    try:
        store = Store("sqlite", tmp_path)
        store.url = url
        store.config.write_text(f'store = "{url}"\nuser = ["alice:{PASSWORD}"]\n')
        messages = filled(store, tmp_path, "INBOX")
        parsed = make_url(url)
        with psycopg.connect(host=parsed.host, port=parsed.port, user=parsed.username,
                             dbname=parsed.database) as db:
            db.execute("UPDATE mailboxes SET uidnext = 3, total_size = 0 WHERE name = 'INBOX'")
            db.execute("DELETE FROM chunks WHERE content_id = (SELECT content_id FROM messages"
                       " WHERE uid = 2)")
            db.execute("INSERT INTO contents (size, refcount, structure) VALUES (5, 1, '{}')")
        found = check(store)
        assert found.returncode == 1, found.stdout + found.stderr
        for what in ("UIDNEXT 3 is not above UID 6", "counters disagree",
                     "content is lost (UID 2)", "1 content(s) no message refers to"):
            assert what in found.stdout, found.stdout
        assert check(store, "--repair").returncode == 0
        assert check(store).returncode == 0
        with running_twistd(tmp_path, *store.server_args()) as ports:
            inbox = fetch_all(ports["IMAP"], "alice", "INBOX")
            assert_same_mail(inbox, messages[:1] + messages[2:])
            assert append_uid(ports["IMAP"], "INBOX") == 7
    finally:
        drop_pg_database(url)


# -- mbox ---------------------------------------------------------------------------


def test_mbox_index_damage_is_found_repaired_and_served(tmp_path):
    store = Store("mbox", tmp_path)
    messages = filled(store, tmp_path, "INBOX")
    index_path = store.path / "alice" / "INBOX.mailhub"
    # The journal folded in: the test writes a plain JSON document back.
    index = read_index(str(index_path)).to_json()
    index["uidnext"], index["highestmodseq"], index["recent_after"] = 2, 1, 1000
    entry = index["messages"][2]  # start, body_start, body_end of UID 3
    entry[4:7] = [value + 7 for value in entry[4:7]]
    index_path.write_text(json.dumps(index))
    (store.path / "alice" / "Gone.mailhub").write_text(json.dumps(index))

    found = check(store)
    assert found.returncode == 1, found.stderr
    for what in ("alice:INBOX: UIDNEXT 2 is not above UID 6",
                 "alice:INBOX: HIGHESTMODSEQ 1 is below",
                 "alice:INBOX: \\Recent is marked up to UID 1000",
                 "alice:INBOX: 1 message(s) are not where the index says",
                 "alice: index Gone.mailhub of no mbox file"):
        assert what in found.stdout, found.stdout

    repaired = check(store, "--repair", "alice")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert "matched again by content" in repaired.stdout
    assert not (store.path / "alice" / "Gone.mailhub").exists()
    assert check(store).returncode == 0

    with running_twistd(tmp_path, *store.server_args()) as ports:
        port = ports["IMAP"]
        inbox = fetch_all(port, "alice", "INBOX")
        assert [f.uid for f in inbox] == [1, 2, 3, 4, 5, 6]  # the same UIDs
        assert_same_mail(inbox, messages)
        assert append_uid(port, "INBOX") == 7


def test_mbox_unreadable_index_is_rebuilt(tmp_path):
    store = Store("mbox", tmp_path)
    messages = filled(store, tmp_path, "INBOX")
    (store.path / "alice" / "INBOX.mailhub").write_bytes(b"{not json")
    found = check(store)
    assert found.returncode == 1
    assert "alice:INBOX: the index cannot be read" in found.stdout
    assert ok(check(store, "--repair")).stdout.splitlines()[-1].endswith("repaired")
    assert check(store).returncode == 0
    with running_twistd(tmp_path, *store.server_args()) as ports:
        # Flags, keywords and dates survive in the file itself.
        assert_same_mail(fetch_all(ports["IMAP"], "alice", "INBOX"), messages)


def summary_lines(path) -> dict[str, list[bytes]]:
    """The whole lines of a summaries file, by identity."""
    lines: dict[str, list[bytes]] = {}
    for line in path.read_bytes().splitlines(keepends=True):
        lines.setdefault(line.split(b" ", 1)[0].decode(), []).append(line)
    return lines


def leftover(directory, pid: int) -> str:
    """What a compaction of the summaries file by process C{pid} leaves when killed."""
    name = f"..summaries.compact.{pid}"
    (directory / name).write_bytes(b"half a file")
    return name


def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_mbox_summaries_file_is_checked_and_compacted(tmp_path):
    store = Store("mbox", tmp_path)
    messages = filled(store, tmp_path, "INBOX", "Old")
    alice = store.path / "alice"
    summaries = alice / ".summaries"
    inbox_keys = {entry.meta().identity
                  for entry in read_index(str(alice / "INBOX.mailhub")).entries}
    kept = summary_lines(summaries)
    assert len(kept) == 12 and inbox_keys < set(kept)
    ok(mailhub("mailbox", "delete", "alice", "Old", *store.args))
    size = summaries.stat().st_size
    gone = sum(len(line) for key, lines in kept.items() if key not in inbox_keys
               for line in lines)
    again = kept[sorted(set(kept) - inbox_keys)[0]][0]
    # Garbage is reported from the size at which the server compacts.
    repeats = (1 << 20) // len(again) + 1
    with open(summaries, "ab") as f:
        f.write(b'd0d0 ENVELOPE 40 {"ENVELOPE":"(Mon')  # a crash, then a writer's line
        f.write(b"\n" + again * repeats)
        body = b'{"ENVELOPE":nope}'
        f.write(b"cafe ENVELOPE %d " % len(body) + body + b"\n")
        f.write(b'f00d ENVELOPE 9 {"ENVEL')  # a crash at the very end
    damaged = summaries.stat().st_size
    dead = leftover(alice, dead_pid())
    running = leftover(alice, 1)  # a compaction under way in another process

    found = check(store)
    assert found.returncode == 1, found.stdout + found.stderr
    lines = found.stdout.splitlines()
    assert (f"alice: {dead} was left by a compaction of the summaries file that did not finish"
            in lines), lines
    assert "alice: 3 line(s) of the summaries file cannot be read (cut short or damaged)" in (
        lines)
    assert (f"alice: the summaries file is {damaged} octets, "
            f"{gone + repeats * len(again)} of them in "
            "the lines of 6 of 12 message(s) that are gone") in lines, lines
    assert not any(f"{running} was" in line for line in lines)
    assert lines[-1].endswith("3 problem(s) found; run again with --repair to fix them")
    assert summaries.stat().st_size == damaged and (alice / dead).exists()  # only looked at

    repaired = check(store, "--repair")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    after = size - gone
    assert f"alice: {dead} was left by a compaction of the summaries file that did not " \
        "finish; deleted" in repaired.stdout
    assert repaired.stdout.count(f"; compacted to {after} octets") == 2, repaired.stdout
    assert not (alice / dead).exists() and (alice / running).exists()
    # The lines of the messages that exist, byte for byte, and nothing else.
    assert summary_lines(summaries) == {key: kept[key] for key in inbox_keys}
    assert summaries.stat().st_size == after
    again = check(store)
    assert again.returncode == 0 and again.stdout.strip().endswith("no problem found")

    with running_twistd(tmp_path, *store.server_args()) as ports:
        assert_same_mail(fetch_all(ports["IMAP"], "alice", "INBOX"), messages)


def test_a_server_removes_what_compactions_left_when_it_opens_the_store(tmp_path):
    store = Store("mbox", tmp_path)
    filled(store, tmp_path, "INBOX")
    alice = store.path / "alice"
    dead, running = leftover(alice, dead_pid()), leftover(alice, 1)
    assert check(store).returncode == 1
    with running_twistd(tmp_path, *store.server_args()) as ports:
        with imaplib.IMAP4("127.0.0.1", ports["IMAP"], timeout=DEADLINE) as client:
            client.login("alice", PASSWORD)
            client.logout()
        assert not (alice / dead).exists() and (alice / running).exists()
    clean = check(store)
    assert clean.returncode == 0, clean.stdout


def test_memory_store_cannot_be_checked(tmp_path):
    result = mailhub("check", "--store", "memory:")
    assert result.returncode == 2
    assert "memory:" in result.stderr
