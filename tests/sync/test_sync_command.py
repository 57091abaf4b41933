"""
``mailhub sync`` from a second ``twistd mailhub`` (SQLite) into a store
served by another server: what a user's clients see afterwards over IMAP
is the same account, UIDVALIDITY and UIDs included; runs after a change,
after a kill and after a Ctrl-C copy only what is missing.
"""

from __future__ import annotations

import re
import signal

import imapclient
import pytest
from sync_harness import (
    Lines,
    account,
    append,
    count_messages,
    create,
    imap,
    message,
    run_sync,
    running_server,
    start_sync,
)

SOURCE_USER = ("alice", "wonderland")
TARGET_USER = "alice:elsewhere"

#: Flags and INTERNALDATEs (zones included) the source's INBOX messages get.
FLAGS = ["", "\\Seen", "\\Seen \\Answered $Forwarded", "\\Flagged Junk", "\\Draft",
         "$Label1 \\Deleted", "\\Seen $MDNSent NonJunk"]
DATES = ["01-Feb-2020 10:00:00 +0530", "15-Aug-2021 23:59:59 -0700", "29-Feb-2024 00:00:01 +0000",
         " 3-Mar-2019 12:30:45 +1245"]


def fill(port: int) -> None:
    """A source account with what a migration must not lose."""
    client = imap(port)
    create(client, "Sent", "\\Sent")
    create(client, "Trash", "\\Trash")
    create(client, "Work/Projects")
    create(client, "Empty")
    create(client, imapclient.imap_utf7.encode("Entwürfe").decode())
    for n in range(12):
        append(client, "INBOX", message(n), FLAGS[n % len(FLAGS)], DATES[n % len(DATES)])
    # Bytes as they came: bare LF line ends, 8-bit text, and one message over
    # the SQL store's chunk size.
    append(client, "INBOX", b"Subject: bare\nMessage-ID: <bare@x>\n\nno CR \xe9\xff\n", "\\Seen")
    append(client, "INBOX", message(99, size=600_000), "$Big", DATES[0])
    # A gap in the UIDs: one message expunged.
    client.select("INBOX")
    client.uid("STORE", "3", "+FLAGS", "(\\Deleted)")
    assert client.uid("EXPUNGE", "3")[0] == "OK"
    for n in range(3):
        append(client, "Work/Projects", message(100 + n), "\\Seen $Work", DATES[1])
    append(client, "Sent", message(200), "\\Seen", DATES[2])
    append(client, imapclient.imap_utf7.encode("Entwürfe").decode(), message(300), "\\Draft")
    for name in ("Work/Projects", "Sent", "Old"):
        client.subscribe(f'"{name}"')
    client.logout()


def same_account(source_port: int, target_port: int) -> dict:
    source = account(source_port, *SOURCE_USER)
    target = account(target_port, "alice", "elsewhere")
    assert target["subscribed"] == source["subscribed"]
    assert sorted(target["folders"]) == sorted(source["folders"])
    for name, folder in source["folders"].items():
        assert target["folders"][name] == folder, name
    return source


@pytest.mark.parametrize("kind", ["sqlite", "mbox"])
def test_migration_keeps_the_account_as_clients_saw_it(tmp_path, kind):
    target_store = (f"sqlite:{tmp_path / 'target' / 'mail.sqlite'}" if kind == "sqlite"
                    else f"mbox:{tmp_path / 'target' / 'mail'}")
    with running_server(tmp_path / "source", "--store", "sqlite:source.sqlite",
                        "--user", ":".join(SOURCE_USER)) as source, \
            running_server(tmp_path / "target", "--store", target_store,
                           "--user", TARGET_USER) as target:
        fill(source.port)
        url = f"imap://alice@127.0.0.1:{source.port}"
        first = run_sync(tmp_path, "--from", url, "--store", target_store, "--batch", "5")
        assert first.returncode == 0, first.stderr
        assert "INBOX: 13 messages; UIDVALIDITY" in first.stdout
        assert "and UIDs kept" in first.stdout
        assert "INBOX: 13 copied, 0 already there" in first.stdout
        assert "subscriptions: 3 added" in first.stdout
        assert first.stdout.rstrip().endswith("done: 7 folders, copied 18 messages")
        seen = same_account(source.port, target.port)
        inbox = seen["folders"]["INBOX"]
        assert 3 not in [m.uid for m in inbox.messages] and inbox.uidnext == 15
        assert seen["folders"]["Sent"].special_use == {"\\sent"}
        assert len(seen["folders"]["Entwürfe"].messages) == 1

        # The source changes: flags, a new message.  Only that is carried over.
        client = imap(source.port)
        client.select("INBOX")
        client.uid("STORE", "1", "+FLAGS", "(\\Answered $Later)")
        client.uid("STORE", "2", "-FLAGS", "(\\Seen)")
        append(client, "INBOX", message(500), "\\Flagged", DATES[3])
        client.logout()
        second = run_sync(tmp_path, "--from", url, "--store", target_store)
        assert second.returncode == 0, second.stderr
        assert "INBOX: 1 copied, 13 already there, 2 with flags updated" in second.stdout
        assert "Work/Projects: 0 copied, 3 already there, 0 with flags updated" in second.stdout
        same_account(source.port, target.port)

        third = run_sync(tmp_path, "--from", url, "--store", target_store)
        assert third.returncode == 0, third.stderr
        assert "done: 7 folders, copied 0 messages" in third.stdout
        assert count_messages(target.port, password="elsewhere") == (14, 14)


def test_killed_or_interrupted_sync_resumes_without_duplicates(tmp_path):
    target_store = f"sqlite:{tmp_path / 'target' / 'mail.sqlite'}"
    total = 40
    with running_server(tmp_path / "source", "--store", "sqlite:source.sqlite",
                        "--user", ":".join(SOURCE_USER)) as source, \
            running_server(tmp_path / "target", "--store", target_store,
                           "--user", TARGET_USER) as target:
        client = imap(source.port)
        for n in range(total):
            append(client, "INBOX", message(n, size=2000), "\\Seen" if n % 3 else "$New",
                   DATES[n % len(DATES)])
        client.logout()
        args = ("--from", f"imap://alice@127.0.0.1:{source.port}", "--store", target_store,
                "--batch", "2")

        # Killed: once 4 are stored, the source is paused so the command
        # cannot get further than the batches it already has, then SIGKILL.
        sync = start_sync(tmp_path, *args)
        lines = Lines(sync.stdout)
        lines.wait_for(r"^INBOX: 4 of 40 copied$")
        source.pause()
        sync.kill()
        sync.wait()
        source.resume()
        stored, distinct = count_messages(target.port, password="elsewhere")
        assert 4 <= stored < total and stored == distinct

        # Interrupted with Ctrl-C: the batch under way is finished, then it stops.
        sync = start_sync(tmp_path, *args)
        lines = Lines(sync.stdout)
        match = lines.wait_for(rf"^INBOX: (\d+) already there|^INBOX: \d+ of \d+ copied$")
        source.pause()
        sync.send_signal(signal.SIGINT)
        source.resume()
        assert sync.wait(timeout=60) == 1
        assert "run the same command again to continue" in sync.stderr.read()
        again, distinct = count_messages(target.port, password="elsewhere")
        assert stored <= again < total and again == distinct, match.group(0)

        last = run_sync(tmp_path, *args)
        assert last.returncode == 0, last.stderr
        assert re.search(rf"INBOX: {total - again} copied, {again} already there", last.stdout)
        assert count_messages(target.port, password="elsewhere") == (total, total)
        same_account(source.port, target.port)


def test_target_already_holding_mail_gets_new_uids(tmp_path):
    target_store = f"sqlite:{tmp_path / 'target' / 'mail.sqlite'}"
    with running_server(tmp_path / "source", "--store", "sqlite:source.sqlite",
                        "--user", ":".join(SOURCE_USER)) as source, \
            running_server(tmp_path / "target", "--store", target_store,
                           "--user", TARGET_USER) as target:
        client = imap(source.port)
        for n in range(5):
            append(client, "INBOX", message(n), FLAGS[n], DATES[n % len(DATES)])
        client.logout()
        here = imap(target.port, "alice", "elsewhere")
        append(here, "INBOX", message(1000, subject="already here"), "\\Seen")
        here.logout()
        args = ("--from", f"imap://alice@127.0.0.1:{source.port}", "--store", target_store,
                "--batch", "2")
        first = run_sync(tmp_path, *args)
        assert first.returncode == 0, first.stderr
        # Usually the UIDVALIDITY differs; both servers draw it from the clock,
        # though, so it may be the same by chance, which must not mislead.
        assert re.search(r"INBOX: 5 messages; UIDs not kept \((the mailbox here already holds "
                         r"1 messages|UIDVALIDITY \d+ is the same here by chance)", first.stdout)
        assert "copies get new UIDs" in first.stdout
        source_inbox = account(source.port, *SOURCE_USER)["folders"]["INBOX"]
        target_inbox = account(target.port, "alice", "elsewhere")["folders"]["INBOX"]
        ours, *copied = target_inbox.messages
        assert b"already here" in ours.body
        assert [(m.flags, m.internaldate, m.zone, m.body) for m in copied] == \
            [(m.flags, m.internaldate, m.zone, m.body) for m in source_inbox.messages]

        # Recognised again by Message-ID, date and size: nothing doubled.
        client = imap(source.port)
        client.select("INBOX")
        client.uid("STORE", "1", "+FLAGS", "(\\Flagged)")
        client.logout()
        second = run_sync(tmp_path, *args)
        assert second.returncode == 0, second.stderr
        assert "INBOX: 0 copied, 5 already there, 1 with flags updated" in second.stdout
        assert count_messages(target.port, password="elsewhere") == (6, 6)


def test_dry_run_and_chosen_folders(tmp_path):
    target_store = f"sqlite:{tmp_path / 'target.sqlite'}"
    with running_server(tmp_path / "source", "--store", "sqlite:source.sqlite",
                        "--user", ":".join(SOURCE_USER)) as source:
        fill(source.port)
        url = f"imap://alice@127.0.0.1:{source.port}"
        dry = run_sync(tmp_path, "--from", url, "--store", target_store, "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert "INBOX: 13 would be copied, 0 already there" in dry.stdout
        assert "done: 7 folders, would copy 18 messages" in dry.stdout
        chosen = run_sync(tmp_path, "--from", url, "--store", target_store,
                          "--folder", "Work/Projects", "--folder", "Nowhere")
        assert chosen.returncode == 1
        assert "Nowhere: no such folder on the source" in chosen.stderr
        assert "Work/Projects: 3 copied" in chosen.stdout
        assert "INBOX" not in chosen.stdout
        with running_server(tmp_path / "target", "--store", target_store,
                            "--user", TARGET_USER) as target:
            seen = account(target.port, "alice", "elsewhere")
        # The dry run made nothing; the chosen folder came with its subscription.
        assert {name: len(f.messages) for name, f in seen["folders"].items()} == \
            {"INBOX": 0, "Work": 0, "Work/Projects": 3}
        assert seen["subscribed"] == {"Work/Projects"}


def test_bad_usage_and_refused_login(tmp_path):
    store = f"sqlite:{tmp_path / 'target.sqlite'}"
    no_store = run_sync(tmp_path, "--from", "imap://alice@127.0.0.1:1")
    assert no_store.returncode == 2 and "--store" in no_store.stderr
    in_url = run_sync(tmp_path, "--from", "imap://alice:pw@127.0.0.1:1", "--store", store)
    assert in_url.returncode == 2 and "not in the URL" in in_url.stderr
    memory = run_sync(tmp_path, "--from", "imap://alice@127.0.0.1:1", "--store", "memory:")
    assert memory.returncode == 2
    with running_server(tmp_path / "source", "--store", "sqlite:source.sqlite",
                        "--user", ":".join(SOURCE_USER)) as source:
        wrong = run_sync(tmp_path, "--from", f"imap://alice@127.0.0.1:{source.port}",
                         "--store", store, password="not-it")
    assert wrong.returncode == 1
    assert "cannot log in to imap://alice@127.0.0.1" in wrong.stderr
    assert "Traceback" not in wrong.stderr


def test_source_over_starttls_and_imaps(tmp_path):
    from twisted_mailhub.auth.tls import generate_self_signed

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    generate_self_signed(cert, key, hostnames=("localhost", "127.0.0.1"))
    store = f"sqlite:{tmp_path / 'target.sqlite'}"
    with running_server(tmp_path / "source", "--store", "sqlite:source.sqlite",
                        "--user", ":".join(SOURCE_USER), "--tls-cert", str(cert),
                        "--tls-key", str(key), "--imaps", "tcp:0:interface=127.0.0.1") as source:
        client = imap(source.port)
        append(client, "INBOX", message(1), "\\Seen", DATES[0])
        client.logout()
        plain = f"imap://alice@127.0.0.1:{source.port}"
        implicit = f"imaps://alice@127.0.0.1:{source.ports['IMAPS']}"

        untrusted = run_sync(tmp_path, "--from", implicit, "--store", store)
        assert untrusted.returncode == 1
        assert "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr
        assert "Traceback" not in untrusted.stderr

        trusted = ("--store", store, "--cafile", str(cert))
        over_starttls = run_sync(tmp_path, "--from", plain, *trusted)
        assert over_starttls.returncode == 0, over_starttls.stderr
        assert over_starttls.stdout.startswith(f"logged in to {plain}\n")
        assert "INBOX: 1 copied" in over_starttls.stdout

        over_imaps = run_sync(tmp_path, "--from", implicit, *trusted)
        assert over_imaps.returncode == 0, over_imaps.stderr
        assert "INBOX: 0 copied, 1 already there" in over_imaps.stdout

        unchecked = run_sync(tmp_path, "--from", implicit, "--store", store, "--insecure")
        assert unchecked.returncode == 0, unchecked.stderr
