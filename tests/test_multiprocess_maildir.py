"""
Two ``twistd mailhub`` processes on one Maildir store, and a message
another program delivers into the user's Maildir (Python's C{mailbox}
module, writing into C{tmp/} and renaming into C{new/} as procmail and
Dovecot's LDA do): clients idling on both processes are told of it, and
both give it the same UID.
"""

from __future__ import annotations

import mailbox
import uuid
from pathlib import Path

import pytest

from test_multiprocess import USER, Servers, connect, has, idle_until, message, servers

__all__ = ["servers"]


@pytest.mark.parametrize("servers", ["maildir"], indirect=True)
def test_delivery_into_the_maildir_is_announced(servers: Servers) -> None:
    idlers = [connect(port) for port in servers.ports]
    try:
        counts = [c.select_folder("INBOX")[b"EXISTS"] for c in idlers]
        for client in idlers:
            client.idle()

        subject = "delivered " + uuid.uuid4().hex[:8]
        inbox = Path(servers.store.partition(":")[2]) / USER
        mailbox.Maildir(str(inbox), factory=None, create=False).add(message(subject))

        for client, count in zip(idlers, counts):
            idle_until(client, has(b"EXISTS", count + 1), "EXISTS after a delivery")
            client.idle_done()
            client.use_uid = False  # keyed by sequence number
            fetched = client.fetch([count + 1], ["BODY.PEEK[HEADER.FIELDS (SUBJECT)]"])
            assert subject.encode() in fetched[count + 1][b"BODY[HEADER.FIELDS (SUBJECT)]"]
        uids = [c.fetch([counts[0] + 1], ["UID"])[counts[0] + 1][b"UID"] for c in idlers]
        assert uids[0] == uids[1]  # both processes gave it the same UID
    finally:
        for client in idlers:
            client.logout()
