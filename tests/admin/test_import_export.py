"""
``mailhub import`` and ``mailhub export`` run as processes on real SQLite
and mbox stores: mail goes in from an mbox file and a Maildir++ tree, out
again, and in again for another user, and a server shows every message
byte for byte with its flags and INTERNALDATE.
"""

from __future__ import annotations

import os
import pty
import subprocess
import sys

import pytest
from admin_harness import (
    Store,
    assert_same_mail,
    dovecot_maildir,
    fetch_all,
    list_mailboxes,
    mailhub,
    ok,
    samples,
    write_mbox,
)
from test_plugin import REPO, running_twistd


@pytest.fixture(params=["sqlite", "mbox"])
def store(request, tmp_path) -> Store:
    return Store(request.param, tmp_path)


def sources(tmp_path, messages):
    mbox = tmp_path / "python.mbox"
    write_mbox(mbox, messages[:4])
    maildir = tmp_path / "Maildir"
    dovecot_maildir(maildir, {"": messages[:3], ".Archive.2024": messages[3:],
                              ".Caf&AOk-": messages[1:2]})
    return mbox, maildir


def test_round_trip_keeps_bytes_flags_and_dates(store, tmp_path):
    messages = samples()
    mbox, maildir = sources(tmp_path, messages)
    ok(mailhub("import", "alice", "--mbox", str(mbox), "--folder", "Lists/python", *store.args))
    ok(mailhub("import", "alice", "--maildir", str(maildir), *store.args))
    alice = {"INBOX": messages[:3], "Archive/2024": messages[3:], "Café": messages[1:2],
             "Lists/python": messages[:4]}

    exported = tmp_path / "exported"
    ok(mailhub("export", "alice", "--maildir", str(exported), *store.args))
    assert (exported / ".Archive.2024" / "maildirfolder").exists()
    assert (exported / ".Caf&AOk-" / "cur").is_dir()
    ok(mailhub("export", "alice", "--mbox", str(tmp_path / "out.mbox"), "--folder",
               "Lists/python", *store.args))
    ok(mailhub("import", "bob", "--maildir", str(exported), *store.args))
    ok(mailhub("import", "bob", "--mbox", str(tmp_path / "out.mbox"), "--folder", "Again",
               *store.args))
    bob = dict(alice, Again=messages[:4])

    with running_twistd(tmp_path, *store.server_args()) as ports:
        port = ports["IMAP"]
        for user, mailboxes in (("alice", alice), ("bob", bob)):
            assert set(mailboxes) <= list_mailboxes(port, user)
            for name, expected in mailboxes.items():
                assert_same_mail(fetch_all(port, user, name), expected)


def test_import_adds_to_a_mailbox_and_creates_folders_below_folder(store, tmp_path):
    messages = samples()
    _, maildir = sources(tmp_path, messages)
    ok(mailhub("import", "alice", "--maildir", str(maildir), "--folder", "Old", *store.args))
    ok(mailhub("import", "alice", "--maildir", str(maildir), "--folder", "Old", *store.args))
    listed = ok(mailhub("mailboxes", "alice", *store.args)).stdout
    assert listed.split("\n")[0].split() == ["MESSAGES", "UNSEEN", "SIZE", "MAILBOX"]
    counts = {line.split()[-1]: line.split()[0] for line in listed.splitlines()[1:]}
    assert counts["Old"] == "6"
    assert counts["Old/Archive/2024"] == "6"
    assert counts["Old/Café"] == "2"
    assert counts["INBOX"] == "0"


def test_unknown_user_is_refused_and_not_created(tmp_path):
    store = Store("sqlite", tmp_path, users=("alice",))
    mbox = tmp_path / "in.mbox"
    write_mbox(mbox, samples()[:1])
    result = mailhub("import", "carol", "--mbox", str(mbox), *store.args)
    assert result.returncode == 1
    assert "no such user: carol" in result.stderr
    again = mailhub("mailboxes", "carol", *store.args)
    assert again.returncode == 1 and "no such user" in again.stderr


def test_accounts_of_the_sql_store_are_known_without_configuration(tmp_path):
    url = f"sqlite:{tmp_path / 'accounts.sqlite'}"
    ok(mailhub("adduser", "dave", "--password", "pw", "--store", url))
    mbox = tmp_path / "in.mbox"
    write_mbox(mbox, samples()[:2])
    ok(mailhub("import", "dave", "--mbox", str(mbox), "--store", url, "--quiet"))
    assert "no such user" in mailhub("import", "erin", "--mbox", str(mbox),
                                     "--store", url).stderr


def test_bad_sources_and_targets_are_reported(store, tmp_path):
    messages = samples()
    mbox, maildir = sources(tmp_path, messages)
    ok(mailhub("import", "alice", "--mbox", str(mbox), *store.args))

    not_mbox = tmp_path / "notes.txt"
    not_mbox.write_text("just some notes\n")
    result = mailhub("import", "alice", "--mbox", str(not_mbox), *store.args)
    assert result.returncode == 1 and "not an mbox file" in result.stderr
    result = mailhub("import", "alice", "--maildir", str(tmp_path), *store.args)
    assert result.returncode == 1 and "not a Maildir" in result.stderr
    result = mailhub("import", "alice", "--mbox", str(tmp_path / "missing"), *store.args)
    assert result.returncode == 1 and "no such mbox file" in result.stderr

    result = mailhub("export", "alice", "--mbox", str(mbox), *store.args)
    assert result.returncode == 1 and "exists" in result.stderr
    assert mbox.read_bytes().count(b"mhtest-") == 8  # untouched (Subject and Message-ID)
    result = mailhub("export", "alice", "--mbox", str(tmp_path / "x"), "--folder", "Nope",
                     *store.args)
    assert result.returncode == 1 and "Nope" in result.stderr

    result = mailhub("import", "alice", *store.args)
    assert result.returncode == 2 and "--mbox" in result.stderr


def test_maildir_cannot_hold_a_dot_in_a_name(tmp_path):
    store = Store("sqlite", tmp_path)
    ok(mailhub("mailbox", "create", "alice", "lists.python", *store.args))
    result = mailhub("export", "alice", "--maildir", str(tmp_path / "md"), *store.args)
    assert result.returncode == 1
    assert "lists.python" in result.stderr and "--folder" in result.stderr
    ok(mailhub("export", "alice", "--maildir", str(tmp_path / "md"), "--folder",
               "lists.python", *store.args))


def test_summary_progress_and_quiet(tmp_path):
    store = Store("sqlite", tmp_path)
    messages = samples()
    _, maildir = sources(tmp_path, messages)

    plain = ok(mailhub("import", "alice", "--maildir", str(maildir), *store.args))
    assert plain.stderr == ""
    assert plain.stdout.startswith("imported 7 messages (")
    assert "into 3 mailbox(es) of alice" in plain.stdout
    quiet = ok(mailhub("import", "bob", "--maildir", str(maildir), "--quiet", *store.args))
    assert quiet.stdout == quiet.stderr == ""

    # On a terminal, a bar on standard error.
    controller, terminal = pty.openpty()
    try:
        result = mailhub("export", "alice", "--maildir", str(tmp_path / "out"),
                         *store.args, stderr=terminal)
        os.close(terminal)
        terminal = -1
        shown = b""
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(controller)
        if terminal >= 0:
            os.close(terminal)
    assert result.returncode == 0
    assert b"\r" in shown
    assert b"INBOX" in shown and b"3/3 messages" in shown and b"MB" in shown
    assert b"msg/s" in shown
    assert result.stdout.startswith("exported 7 messages")


_PEAK = """
import resource, sys
from twisted_mailhub.cli import main
try:
    main(sys.argv[1:])
finally:
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
"""


def _peak_kb(*args: str, cwd) -> int:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, "-c", _PEAK, *args], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return int(result.stderr.strip().splitlines()[-1])


def test_large_mailboxes_stream(tmp_path):
    """Importing and exporting 150 MB never holds the mailbox in memory."""
    store = Store("mbox", tmp_path)
    small = tmp_path / "small.mbox"
    write_mbox(small, samples()[:1])
    big = tmp_path / "big.mbox"
    part = b"x" * 76 + b"\n"
    with open(big, "wb") as f:
        for number in range(300):  # 150 MB
            f.write(b"From sender@example.net Mon Jan  6 10:00:00 2025\n"
                    b"Subject: mhtest-%d big\nStatus: RO\n\n" % number)
            f.write(part * (500 * 1024 // len(part)))
            f.write(b"\n")
    assert big.stat().st_size > 145 * 1024 * 1024

    baseline = _peak_kb("import", "bob", "--mbox", str(small), "-q", *store.args, cwd=tmp_path)
    imported = _peak_kb("import", "alice", "--mbox", str(big), "-q", *store.args, cwd=tmp_path)
    exported = _peak_kb("export", "alice", "--mbox", str(tmp_path / "out.mbox"), "-q",
                        *store.args, cwd=tmp_path)
    assert (tmp_path / "out.mbox").stat().st_size > 145 * 1024 * 1024
    # A few batches of at most 4 MB, never the 150 MB.
    assert imported - baseline < 64 * 1024, (baseline, imported)
    assert exported - baseline < 64 * 1024, (baseline, exported)
