"""
``mailhub sync`` from Dovecot, the server people most often move from: a
private Dovecot (see L{dovecot_harness}) with "." as its hierarchy
delimiter, special-use folders from its configuration and a folder that
is only hierarchy.  After the migration a client sees the same account on
twisted_mailhub, and mbsync, synchronised with Dovecot before, finds
nothing to transfer.
"""

from __future__ import annotations

from dovecot_harness import running_dovecot
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

USER, PASSWORD = "carol", "dove-secret"


def test_migration_from_dovecot(tmp_path):
    target_store = f"sqlite:{tmp_path / 'target' / 'mail.sqlite'}"
    with running_dovecot(USER, PASSWORD) as dovecot, \
            running_server(tmp_path / "target", "--store", target_store,
                           "--user", f"{USER}:{PASSWORD}") as target:
        client = imap(dovecot, USER, PASSWORD)
        for name in ("Sent", "Trash", "Work.Projects", "Archive", "Archive.2023"):
            create(client, name)
        dates = ["01-Feb-2020 10:00:00 +0530", "15-Aug-2021 23:59:59 -0700"]
        flags = ["", "\\Seen", "\\Seen \\Answered $Forwarded", "\\Flagged $Todo", "\\Draft"]
        for n in range(10):
            append(client, "INBOX", message(n, size=n * 500), flags[n % len(flags)],
                   dates[n % 2])
        client.select("INBOX")
        client.store("3", "+FLAGS", "(\\Deleted)")
        client.expunge()
        for n in range(3):
            append(client, "Work.Projects", message(50 + n), "\\Seen $Work", dates[1])
        append(client, "Sent", message(60), "\\Seen")
        append(client, "Archive.2023", message(70, size=300_000), "\\Seen", dates[0])
        for name in ("Work.Projects", "Sent"):
            client.subscribe(name)
        client.logout()
        laptop = Mbsync(tmp_path / "laptop", USER, PASSWORD)
        laptop.point_at(dovecot)
        assert not nothing_transferred(laptop.run())
        before = laptop.maildir()

        result = run_sync(tmp_path, "--from", f"imap://{USER}@127.0.0.1:{dovecot}",
                          "--store", target_store, "--batch", "4", password=PASSWORD)
        assert result.returncode == 0, result.stderr
        assert "Work.Projects -> Work/Projects: 3 messages; UIDVALIDITY" in result.stdout
        old, new = account(dovecot, USER, PASSWORD), account(target.port, USER, PASSWORD)
        assert new == old
        # What the comparison covers: names across delimiters, special use,
        # a name that is only hierarchy, subscriptions.
        assert old["folders"]["Work"].selectable is False
        assert old["folders"]["Sent"].special_use == {"\\sent"}
        assert len(old["folders"]["Archive/2023"].messages) == 1
        assert old["subscribed"] == {"Work/Projects", "Sent"}

        again = run_sync(tmp_path, "--from", f"imap://{USER}@127.0.0.1:{dovecot}",
                         "--store", target_store, password=PASSWORD)
        assert again.returncode == 0, again.stderr
        assert "copied 0 messages" in again.stdout

        laptop.point_at(target.port)
        counters = laptop.run()
        assert nothing_transferred(counters), counters
        assert laptop.maildir() == before
