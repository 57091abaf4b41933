"""
The promise of a migration that keeps UIDVALIDITY and UIDs, checked with
a real offline client: mbsync has synchronised a laptop's Maildir with
the old server; after ``mailhub sync`` the same channel, with the same
state files, is pointed at the new server and finds nothing to transfer.
"""

from __future__ import annotations

from sync_harness import (
    Mbsync,
    account,
    append,
    create,
    imap,
    message,
    nothing_transferred,
    run_sync,
    running_server,
)


def test_mbsync_finds_nothing_to_transfer_after_migration(tmp_path):
    target_store = f"sqlite:{tmp_path / 'target' / 'mail.sqlite'}"
    with running_server(tmp_path / "source", "--store", "sqlite:source.sqlite",
                        "--user", "alice:wonderland") as source, \
            running_server(tmp_path / "target", "--store", target_store,
                           "--user", "alice:wonderland") as target:
        client = imap(source.port)
        create(client, "Sent", "\\Sent")
        create(client, "Lists/Twisted")
        for n in range(8):
            append(client, "INBOX", message(n), ["", "\\Seen", "\\Flagged $Todo"][n % 3],
                   "01-Feb-2020 10:00:00 +0530")
        client.select("INBOX")
        client.uid("STORE", "2", "+FLAGS", "(\\Deleted)")
        client.uid("EXPUNGE", "2")
        for n in range(3):
            append(client, "Lists/Twisted", message(20 + n), "\\Seen")
        append(client, "Sent", message(30), "\\Seen \\Answered")
        client.logout()

        laptop = Mbsync(tmp_path / "laptop", "alice", "wonderland")
        laptop.point_at(source.port)
        first = laptop.run()
        assert not nothing_transferred(first), first
        assert nothing_transferred(laptop.run())
        before = laptop.maildir()
        assert sum(1 for name in before if "/cur/" in name or "/new/" in name) == 11

        result = run_sync(tmp_path, "--from", f"imap://alice@127.0.0.1:{source.port}",
                          "--store", target_store)
        assert result.returncode == 0, result.stderr
        assert account(target.port) == account(source.port)

        laptop.point_at(target.port)
        counters = laptop.run()
        assert nothing_transferred(counters), counters
        assert laptop.maildir() == before
