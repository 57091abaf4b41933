"""
``mailhub mailboxes`` and ``mailhub mailbox``, run as processes on SQLite
and mbox stores; a real server then shows the tree and counters they
report and made.
"""

from __future__ import annotations

import imaplib
import re

import pytest
from admin_harness import PASSWORD, Store, mailhub, ok, samples, write_mbox
from test_plugin import DEADLINE, running_twistd


@pytest.fixture(params=["sqlite", "mbox"])
def store(request, tmp_path) -> Store:
    return Store(request.param, tmp_path)


def listing(store: Store, user: str = "alice") -> dict[str, list[str]]:
    out = ok(mailhub("mailboxes", user, *store.args)).stdout.splitlines()
    assert out[0].split() == ["MESSAGES", "UNSEEN", "SIZE", "MAILBOX"]
    rows = {}
    for line in out[1:]:
        messages, unseen, size, name = line.split(None, 3)
        rows[name] = [messages, unseen, size]
    return rows


def stats(store: Store, name: str) -> dict[str, str]:
    out = ok(mailhub("mailbox", "stats", "alice", name, *store.args)).stdout
    return dict(line.split(": ", 1) for line in out.splitlines())


def test_create_rename_delete_and_counts(store, tmp_path):
    messages = samples()
    source = tmp_path / "in.mbox"
    write_mbox(source, messages)
    ok(mailhub("import", "alice", "--mbox", str(source), *store.args))
    ok(mailhub("mailbox", "create", "alice", "Archive/2024", *store.args))
    assert ok(mailhub("mailbox", "create", "alice", "Sent", "--special-use", "\\Sent",
                      *store.args)).stdout == "created Sent\n"

    size = sum(len(m.content) for m in messages)
    unseen = sum(1 for m in messages if "\\Seen" not in m.flags)
    assert listing(store) == {
        "INBOX": ["6", str(unseen), str(size)],
        "Archive": ["0", "0", "0"],
        "Archive/2024": ["0", "0", "0"],
        "Sent \\Sent": ["0", "0", "0"],
    }
    inbox = stats(store, "INBOX")
    assert (inbox["messages"], inbox["unseen"], inbox["size"]) == ("6", str(unseen), str(size))
    assert inbox["deleted"] == "1"  # sample 6
    assert inbox["uidnext"] == "7"
    assert int(inbox["uidvalidity"]) > 0 and int(inbox["highestmodseq"]) >= 1

    ok(mailhub("mailbox", "rename", "alice", "Archive", "Old", *store.args))
    ok(mailhub("mailbox", "delete", "alice", "Old", *store.args))  # keeps Old/2024
    rows = listing(store)
    assert rows["Old"] == ["-", "-", "-"] and "Old/2024" in rows and "Archive" not in rows

    with running_twistd(tmp_path, *store.server_args()) as ports:
        with imaplib.IMAP4("127.0.0.1", ports["IMAP"], timeout=DEADLINE) as client:
            client.login("alice", PASSWORD)
            typ, data = client.list()
            assert typ == "OK"
            listed = {re.search(rb'"?([^" ]+)"?$', line).group(1).decode(): line
                      for line in data}
            assert set(listed) == {"INBOX", "Old", "Old/2024", "Sent"}
            assert b"\\Noselect" in listed["Old"]
            assert b"\\Sent" in listed["Sent"]
            typ, data = client.status("INBOX", "(MESSAGES UNSEEN UIDNEXT UIDVALIDITY)")
            assert typ == "OK"
            assert re.search(rb"MESSAGES 6 ", data[0])
            assert re.search(rb"UNSEEN %d\b" % unseen, data[0])
            assert re.search(rb"UIDVALIDITY %s\b" % inbox["uidvalidity"].encode(), data[0])
            client.logout()


def test_errors_are_one_line_and_exit_1(store):
    ok(mailhub("mailbox", "create", "alice", "Work", *store.args))
    again = mailhub("mailbox", "create", "alice", "Work", *store.args)
    assert again.returncode == 1
    assert again.stderr == "mailhub: Mailbox already exists: Work\n"
    missing = mailhub("mailbox", "stats", "alice", "Nope", *store.args)
    assert missing.returncode == 1 and "Nope" in missing.stderr
    inbox = mailhub("mailbox", "delete", "alice", "INBOX", *store.args)
    assert inbox.returncode == 1 and "INBOX cannot be deleted" in inbox.stderr
    usage = mailhub("mailbox", "frobnicate", "alice", "Work", *store.args)
    assert usage.returncode == 2


def test_renaming_inbox_moves_its_messages(store, tmp_path):
    source = tmp_path / "in.mbox"
    write_mbox(source, samples()[:2])
    ok(mailhub("import", "alice", "--mbox", str(source), *store.args))
    ok(mailhub("mailbox", "rename", "alice", "INBOX", "Before", *store.args))
    rows = listing(store)
    assert rows["INBOX"][0] == "0" and rows["Before"][0] == "2"


def test_configuration_errors_are_usage_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("stor = 'sqlite:x'\n")
    result = mailhub("mailboxes", "alice", "--config", str(bad))
    assert result.returncode == 2 and "unknown key" in result.stderr
    result = mailhub("mailboxes", "alice", "--store", "nosuch:thing")
    assert result.returncode == 2 and "unknown scheme" in result.stderr
