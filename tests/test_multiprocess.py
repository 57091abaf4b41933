"""
Two ``twistd mailhub`` processes on one store: a client idling on one sees
what is done through the other (APPEND, a flag change, an expunge), within
a second, over real sockets with IMAPClient and imaplib; concurrent APPENDs
through both get unique, ascending UIDs with nothing lost; on an mbox store
a message delivered by Python's C{mailbox} module (taking its locks, as
procmail would) is announced to idling clients of both processes.

The two processes of a store are shared by the tests of that store; each
test works in a mailbox of its own.
"""

from __future__ import annotations

import email.utils
import imaplib
import mailbox
import threading
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pytest
from imapclient import IMAPClient

from stores import PG_URL, create_pg_database, drop_pg_database
from test_plugin import running_twistd

USER, PASSWORD = "alice", "wonderland"
#: How soon a change made through one process must reach an idling client
#: of the other.
ANNOUNCED_WITHIN = 1.0
KINDS = ["sqlite", "mbox", "maildir"] + (["postgresql"] if PG_URL else [])


@dataclass
class Servers:
    kind: str
    store: str
    ports: tuple[int, int]


@pytest.fixture(scope="module", params=KINDS)
def servers(request, tmp_path_factory) -> Iterator[Servers]:
    kind = request.param
    root = tmp_path_factory.mktemp(kind)
    with ExitStack() as stack:
        if kind == "sqlite":
            store = "sqlite:" + str(root / "mail.sqlite")
        elif kind == "mbox":
            store = "mbox:" + str(root / "mail")
        elif kind == "maildir":
            store = "maildir:" + str(root / "mail")
        else:
            url = create_pg_database()
            stack.callback(drop_pg_database, url)
            store = url
        ports = []
        for n in (1, 2):
            workdir = root / f"process{n}"
            workdir.mkdir()
            listening = stack.enter_context(running_twistd(
                workdir, "--store", store, "--user", f"{USER}:{PASSWORD}",
                "--imap", "tcp:0:interface=127.0.0.1"))
            ports.append(listening["IMAP"])
            # Log in once before starting the next process, so that the
            # two do not race to create the user's INBOX.
            with imaplib.IMAP4("127.0.0.1", ports[-1], timeout=10) as client:
                client.login(USER, PASSWORD)
        yield Servers(kind, store, (ports[0], ports[1]))


def connect(port: int) -> IMAPClient:
    client = IMAPClient("127.0.0.1", port=port, ssl=False, timeout=10)
    client.login(USER, PASSWORD)
    return client


def message(subject: str) -> bytes:
    return (
        f"From: Bob <bob@example.org>\r\nTo: {USER}@example.org\r\n"
        f"Subject: {subject}\r\nMessage-ID: <{uuid.uuid4().hex}@example.org>\r\n"
        f"Date: {email.utils.formatdate()}\r\n\r\nHello from {subject}.\r\n"
    ).encode()


def fresh_mailbox(client: IMAPClient) -> str:
    name = "box-" + uuid.uuid4().hex[:8]
    client.create_folder(name)
    return name


def idle_until(client: IMAPClient, done: Callable[[list], bool], what: str) -> list:
    """Collect IDLE responses until C{done(responses)}, for ANNOUNCED_WITHIN seconds."""
    deadline = time.monotonic() + ANNOUNCED_WITHIN
    seen: list = []
    while not done(seen):
        left = deadline - time.monotonic()
        if left <= 0:
            pytest.fail(f"no {what} within {ANNOUNCED_WITHIN}s; got {seen!r}")
        seen += client.idle_check(timeout=left)
    return seen


def has(kind: bytes, number: int | None = None) -> Callable[[list], bool]:
    def check(responses: list) -> bool:
        return any(len(r) >= 2 and r[1] == kind and (number is None or r[0] == number)
                   for r in responses)
    return check


def flags_of(responses: list, seq: int) -> set[bytes]:
    for r in responses:
        if len(r) >= 3 and r[0] == seq and r[1] == b"FETCH":
            items = r[2]
            for name, value in zip(items[::2], items[1::2]):
                if name == b"FLAGS":
                    return set(value)
    return set()


def test_idle_sees_append_flags_and_expunge_of_other_process(servers: Servers) -> None:
    watcher, writer = connect(servers.ports[0]), connect(servers.ports[1])
    try:
        box = fresh_mailbox(writer)
        writer.append(box, message("first"))
        assert watcher.select_folder(box)[b"EXISTS"] == 1
        watcher.idle()

        writer.append(box, message("second"))
        idle_until(watcher, has(b"EXISTS", 2),
                   "EXISTS 2 after an APPEND through the other process")

        writer.select_folder(box)
        writer.add_flags([2], [b"\\Flagged"])
        seen = idle_until(watcher, lambda rs: b"\\Flagged" in flags_of(rs, 2),
                          "FETCH FLAGS (\\Flagged) for message 2")
        assert b"\\Deleted" not in flags_of(seen, 2)

        writer.add_flags([1], [b"\\Deleted"])
        writer.expunge()
        idle_until(watcher, has(b"EXPUNGE", 1),
                   "EXPUNGE 1 after an expunge through the other process")
        watcher.idle_done()

        # What the session now shows is what the store holds.
        uids = watcher.search()
        assert len(uids) == 1
        fetched = watcher.fetch(uids, ["FLAGS", "BODY.PEEK[HEADER.FIELDS (SUBJECT)]"])
        (data,) = fetched.values()
        assert b"second" in data[b"BODY[HEADER.FIELDS (SUBJECT)]"]
        assert b"\\Flagged" in data[b"FLAGS"]
    finally:
        watcher.logout()
        writer.logout()


def test_a_warm_index_shows_the_other_process_changes(servers: Servers) -> None:
    # Process 1 keeps its index of a mailbox after the session that read it
    # left; the next session there must see what process 2 did meanwhile.
    reader, writer = connect(servers.ports[0]), connect(servers.ports[1])
    try:
        box = fresh_mailbox(writer)
        for n in range(3):
            writer.append(box, message(f"warm {n}"))
        reader.select_folder(box)
        first = reader.fetch(reader.search(), ["FLAGS"]).values()
        assert all(set(d[b"FLAGS"]) <= {b"\\Recent"} for d in first)
        reader.unselect_folder()
        writer.select_folder(box)
        writer.add_flags([1], [b"\\Flagged"])
        writer.add_flags([2], [b"\\Deleted"])
        writer.expunge()
        reader.select_folder(box)
        fetched = reader.fetch(reader.search(), ["FLAGS"])
        assert len(fetched) == 2
        assert [b"\\Flagged" in d[b"FLAGS"] for _, d in sorted(fetched.items())] == [True, False]
    finally:
        reader.logout()
        writer.logout()


def test_noop_sees_changes_of_other_process(servers: Servers) -> None:
    # The same without IDLE: imaplib, the standard library client, on NOOP.
    writer = connect(servers.ports[1])
    box = fresh_mailbox(writer)
    with imaplib.IMAP4("127.0.0.1", servers.ports[0], timeout=10) as reader:
        reader.login(USER, PASSWORD)
        assert reader.select(box) == ("OK", [b"0"])
        writer.append(box, message("noop"))
        deadline = time.monotonic() + ANNOUNCED_WITHIN
        while True:
            reader.noop()
            exists = reader.response("EXISTS")[1]
            if exists and exists[-1] == b"1":
                break
            if time.monotonic() > deadline:
                pytest.fail(f"NOOP did not report EXISTS 1 within {ANNOUNCED_WITHIN}s")
            time.sleep(0.02)
    writer.logout()


def test_concurrent_appends_through_both_processes(servers: Servers) -> None:
    clients, per_client = 8, 5
    setup = connect(servers.ports[0])
    box = fresh_mailbox(setup)
    setup.logout()
    subjects: dict[int, list[str]] = {}
    uids: dict[int, list[int]] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(clients)

    def append_all(n: int) -> None:
        try:
            client = connect(servers.ports[n % 2])
            mine = subjects[n] = [f"client {n} message {i}" for i in range(per_client)]
            got = uids[n] = []
            start.wait(timeout=30)
            for subject in mine:
                response = client.append(box, message(subject))
                # [APPENDUID <uidvalidity> <uid>] (RFC 4315)
                got.append(int(response.split(b"]")[0].split()[-1]))
            client.logout()
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=append_all, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors

    every_uid = [uid for n in range(clients) for uid in uids[n]]
    assert len(set(every_uid)) == clients * per_client
    for n in range(clients):
        assert uids[n] == sorted(uids[n])  # one client's appends ascend

    for port in servers.ports:
        reader = connect(port)
        reader.use_uid = False  # keyed by sequence number
        exists = reader.select_folder(box, readonly=True)[b"EXISTS"]
        assert exists == clients * per_client
        fetched = reader.fetch(range(1, exists + 1), ["UID", "BODY.PEEK[HEADER.FIELDS (SUBJECT)]"])
        reader.logout()
        by_seq = [fetched[seq] for seq in sorted(fetched)]
        listed = [data[b"UID"] for data in by_seq]
        assert listed == sorted(every_uid)
        stored = {data[b"UID"]: data[b"BODY[HEADER.FIELDS (SUBJECT)]"].decode().strip()
                  for data in by_seq}
        for n in range(clients):
            for uid, subject in zip(uids[n], subjects[n]):
                assert stored[uid] == f"Subject: {subject}"


def _mbox_path(servers: Servers) -> Path:
    from twisted_mailhub.backends.mbox.naming import mailbox_file, user_directory

    root = servers.store.partition(":")[2]
    return Path(mailbox_file(user_directory(root, USER), "INBOX"))


def lock_like_a_delivery_agent(spool: mailbox.mbox) -> None:
    """
    Take the dotlock and lockf lock as procmail and Postfix do: a server
    holds them for a moment while it reads or writes the file, and the
    delivery agent tries again until it has them (mailbox.lock does not
    wait).
    """
    deadline = time.monotonic() + 10.0
    while True:
        try:
            spool.lock()
            return
        except mailbox.ExternalClashError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.mark.parametrize("servers", ["mbox"], indirect=True)
def test_local_delivery_to_mbox_is_announced(servers: Servers) -> None:
    idlers = [connect(port) for port in servers.ports]
    try:
        counts = [c.select_folder("INBOX")[b"EXISTS"] for c in idlers]
        for client in idlers:
            client.idle()

        subject = "delivered " + uuid.uuid4().hex[:8]
        spool = mailbox.mbox(str(_mbox_path(servers)), create=False)
        lock_like_a_delivery_agent(spool)
        try:
            spool.add(message(subject))
            spool.flush()
        finally:
            spool.unlock()
            spool.close()

        for client, count in zip(idlers, counts):
            idle_until(client, has(b"EXISTS", count + 1), "EXISTS after a local delivery")
            client.idle_done()
            client.use_uid = False  # keyed by sequence number
            fetched = client.fetch([count + 1], ["BODY.PEEK[HEADER.FIELDS (SUBJECT)]"])
            assert subject.encode() in fetched[count + 1][b"BODY[HEADER.FIELDS (SUBJECT)]"]
        uids = [c.fetch([counts[0] + 1], ["UID"])[counts[0] + 1][b"UID"] for c in idlers]
        assert uids[0] == uids[1]  # both processes gave it the same UID
    finally:
        for client in idlers:
            client.logout()


def test_notify_tells_changes_of_other_process(servers: Servers) -> None:
    # RFC 5465: with NOTIFY, what another server process does is told with
    # no command in progress: STATUS for a watched mailbox, EXISTS with
    # the MessageNew attributes, FETCH of flags and EXPUNGE for the
    # selected one.
    from harness import RawClient

    writer = connect(servers.ports[1])
    watcher = RawClient(servers.ports[0])
    watcher.sock.settimeout(ANNOUNCED_WITHIN * 5)
    try:
        box, other = fresh_mailbox(writer), fresh_mailbox(writer)
        writer.append(box, message("first"))
        watcher.line()
        watcher.command(b"a LOGIN %s %s" % (USER.encode(), PASSWORD.encode()))
        watcher.command(b"b SELECT " + box.encode())
        assert watcher.command(
            b"c NOTIFY SET (selected (MessageNew (UID) MessageExpunge FlagChange))"
            b" (mailboxes %s (MessageNew MessageExpunge))" % other.encode()
        ) == [b"c OK NOTIFY completed\r\n"]

        writer.append(other, message("elsewhere"))
        status = watcher.line()
        assert status.startswith(b"* STATUS %s (MESSAGES 1 UIDNEXT 2 " % other.encode()), status

        writer.append(box, message("second"))
        lines = [watcher.line()]
        while b"FETCH" not in lines[-1]:
            lines.append(watcher.line())
        assert lines[0] == b"* 2 EXISTS\r\n", lines
        assert lines[-1] == b"* 2 FETCH (UID 2)\r\n", lines

        writer.select_folder(box)
        writer.add_flags([1], [b"\\Deleted"])
        flags = watcher.line()
        assert flags.startswith(b"* 1 FETCH (UID 1 FLAGS (\\Deleted"), flags
        writer.expunge()
        assert watcher.line() == b"* 1 EXPUNGE\r\n"
        assert watcher.command(b"d NOOP") == [b"d OK NOOP completed\r\n"]
    finally:
        watcher.close()
        writer.logout()


@pytest.mark.parametrize("servers", ["mbox", "maildir"], indirect=True)
def test_search_text_finds_what_others_stored(servers: Servers) -> None:
    """
    SEARCH TEXT through one process finds a message appended through the
    other, and one delivered by another program, which no process indexed.
    """
    first, second = connect(servers.ports[0]), connect(servers.ports[1])
    try:
        box = fresh_mailbox(first)
        word = "zanzibar" + uuid.uuid4().hex[:8]
        first.append(box, message("plain"))
        first.append(box, message(f"about {word}"))
        for client in (second, first):
            client.select_folder(box)
            assert client.search(["TEXT", word]) == [2]
            assert client.search(["NOT", "TEXT", word]) == [1]

        delivered = "delivered" + uuid.uuid4().hex[:8]
        if servers.kind == "mbox":
            spool = mailbox.mbox(str(_mbox_path(servers)), create=False)
            lock_like_a_delivery_agent(spool)
            try:
                spool.add(message(f"from {delivered}"))
                spool.flush()
            finally:
                spool.unlock()
                spool.close()
        else:
            inbox = Path(servers.store.partition(":")[2]) / USER
            mailbox.Maildir(str(inbox), factory=None, create=False).add(
                message(f"from {delivered}"))
        for client in (first, second):
            count = client.select_folder("INBOX")[b"EXISTS"]
            client.use_uid = False
            assert client.search(["TEXT", delivered.upper()]) == [count]
            client.use_uid = True
    finally:
        first.logout()
        second.logout()


def test_notify_tells_tree_changes_of_other_process(servers: Servers) -> None:
    # RFC 5465 sections 5.4 and 5.5: MailboxName and SubscriptionChange
    # for mailboxes created, renamed, deleted and (un)subscribed through
    # the other process, as LIST responses with no command in progress.
    from harness import RawClient

    writer = connect(servers.ports[1])
    watcher = RawClient(servers.ports[0])
    watcher.sock.settimeout(ANNOUNCED_WITHIN * 5)
    box = "tree-" + uuid.uuid4().hex[:8]
    try:
        watcher.line()
        watcher.command(b"a LOGIN %s %s" % (USER.encode(), PASSWORD.encode()))
        assert watcher.command(b"b NOTIFY SET (personal (MailboxName SubscriptionChange))") == [
            b"b OK NOTIFY completed\r\n"]
        name, renamed = box.encode(), box.encode() + b"-renamed"
        writer.create_folder(box)
        assert watcher.line() == b'* LIST (\\HasNoChildren) "/" %s\r\n' % name
        writer.subscribe_folder(box)
        assert watcher.line() == b'* LIST (\\HasNoChildren \\Subscribed) "/" %s\r\n' % name
        writer.rename_folder(box, box + "-renamed")
        if servers.kind in ("sqlite", "postgresql"):
            # The row keeps its id: a rename is told as one.
            assert watcher.line() == (b'* LIST (\\HasNoChildren) "/" %s ("OLDNAME" (%s))\r\n'
                                      % (renamed, name))
        else:
            # A file store's listing knows names only.
            lines = {watcher.line(), watcher.line()}
            assert lines == {b'* LIST (\\NonExistent \\Subscribed) "/" %s\r\n' % name,
                             b'* LIST (\\HasNoChildren) "/" %s\r\n' % renamed}, lines
        writer.unsubscribe_folder(box)
        assert watcher.line() == b'* LIST (\\NonExistent) "/" %s\r\n' % name
        writer.delete_folder(box + "-renamed")
        assert watcher.line() == b'* LIST (\\NonExistent) "/" %s\r\n' % renamed
        assert watcher.command(b"c NOOP") == [b"c OK NOOP completed\r\n"]
    finally:
        watcher.close()
        writer.logout()


def test_resetkey_is_told_to_sessions_of_other_process(servers: Servers) -> None:
    # RFC 4467 BASE.6.3.RESETKEY: "Any current IMAP session logged in as the
    # user that has the mailbox selected will receive an untagged OK
    # response with the URLMECH status response code", in any process.
    from harness import RawClient

    writer = RawClient(servers.ports[1])
    watcher = RawClient(servers.ports[0])
    watcher.sock.settimeout(ANNOUNCED_WITHIN * 5)
    try:
        for c in (writer, watcher):
            c.line()
            c.command(b"a LOGIN %s %s" % (USER.encode(), PASSWORD.encode()))
        box = fresh_mailbox_raw(writer)
        watcher.command(b"b SELECT " + box)
        if servers.kind not in ("sqlite", "postgresql"):
            # mbox and Maildir keep no access keys and offer no URLAUTH.
            assert writer.command(b"c RESETKEY " + box)[-1].startswith(b"c BAD ")
            return
        # A URL made first, which the reset revokes.
        url = b"imap://%s@example.org/%s/;uid=1;urlauth=anonymous" % (USER.encode(), box)
        assert writer.command(b'g GENURLAUTH "' + url + b'" INTERNAL')[-1] == (
            b"g OK GENURLAUTH completed\r\n")
        assert writer.command(b"c RESETKEY " + box) == [
            b"c OK [URLMECH INTERNAL] RESETKEY completed\r\n"]
        watcher.send(b"d IDLE\r\n")
        lines = [watcher.line()]
        if lines[0] == b"+ idling\r\n":
            lines.append(watcher.line())
        assert b"* OK [URLMECH INTERNAL] Mailbox access key reset\r\n" in lines, lines
        watcher.send(b"DONE\r\n")
        assert watcher.until_tagged(b"d")[-1] == b"d OK IDLE terminated\r\n"
    finally:
        watcher.close()
        writer.close()


def fresh_mailbox_raw(client) -> bytes:
    name = b"box-" + uuid.uuid4().hex[:8].encode()
    assert client.command(b"m CREATE " + name)[-1].endswith(b" CREATE completed\r\n")
    return name
