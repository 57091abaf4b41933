"""
The read-only ``.eml`` archive example (C{examples/eml_archive.py}): the
parts of the backend conformance suite that apply to a store nobody can
write to, the archive's own guarantees, and the example serving a directory
to a real IMAP client.
"""

from __future__ import annotations

import imaplib
import importlib.util
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from test_plugin import DEADLINE, REPO, stop_cleanly, subprocess_env, wait_for
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from twisted_mailhub.backends.base import copy_messages
from twisted_mailhub.errors import MessageExpunged, PermissionDenied, ReadOnlyMailbox
from twisted_mailhub.interfaces import IBackend, IMailbox, IMailStore, IMessage
from twisted_mailhub.mime.parse import parse_message
from twisted_mailhub.model import AppendRequest, MessagesAdded, MessagesExpunged
from twisted_mailhub.testing import (
    ConformanceBase,
    MessageConformance,
    RecordingListener,
    TreeConformance,
    added_uids,
    expunged_uids,
    make_message,
    make_multipart_message,
)

EXAMPLE = REPO / "examples" / "eml_archive.py"


def _load_example():
    spec = importlib.util.spec_from_file_location("eml_archive", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


eml_archive = _load_example()
ArchiveBackend = eml_archive.ArchiveBackend
INDEX_NAME = eml_archive.INDEX_NAME


def write(path: str | Path, content: bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(content)


class ArchiveConformanceTests(ConformanceBase, unittest.TestCase):
    """
    The conformance tests that hold for a read-only store.

    Most of the suite creates mailboxes or APPENDs messages to have
    something to check; those cannot apply.  What remains are the checks of
    an empty store, of names refused before anything is written, of
    subscriptions (which the archive keeps in memory), and the reading
    checks, whose messages are written as files (L{inbox_with}) instead of
    being appended.
    """

    async def make_backend(self) -> ArchiveBackend:
        root = self.mktemp()
        os.makedirs(root)
        return ArchiveBackend(root)

    async def inbox_with(self, count, store=None, flags=frozenset()):
        """Like the suite's, with the messages written as C{.eml} files."""
        self.assertEqual(flags, frozenset(), "the archive stores no flags")
        if store is None:
            store = await self.store()
        for n in range(count):
            write(os.path.join(store.backend.root, f"{n:04d}.eml"), make_message(n))
        inbox = await store.get_mailbox("INBOX")
        return store, inbox, await inbox.metadata(await inbox.uids())

    test_new_store_has_only_inbox = TreeConformance.test_new_store_has_only_inbox
    test_invalid_names_refused = TreeConformance.test_invalid_names_refused
    test_missing_mailbox = TreeConformance.test_missing_mailbox
    test_subscriptions = TreeConformance.test_subscriptions
    test_empty_mailbox_highestmodseq_positive = (
        MessageConformance.test_empty_mailbox_highestmodseq_positive
    )
    test_metadata_and_missing_messages = MessageConformance.test_metadata_and_missing_messages
    test_read_ranges = MessageConformance.test_read_ranges


class ArchiveBackendTests(unittest.TestCase):
    """What the archive itself promises: layout, stable UIDs, read-only."""

    def setUp(self) -> None:
        self.root = Path(self.mktemp())
        self.root.mkdir()
        self._backends: list[ArchiveBackend] = []
        self.addCleanup(self._close)

    async def _close(self) -> None:
        for backend in self._backends:
            await backend.close()

    def backend(self, **kwargs) -> ArchiveBackend:
        backend = ArchiveBackend(str(self.root), **kwargs)
        self._backends.append(backend)
        return backend

    async def inbox(self, backend: ArchiveBackend | None = None):
        store = await (backend or self.backend()).open_store("alice")
        return await store.get_mailbox("INBOX")

    async def test_provides_interfaces(self) -> None:
        write(self.root / "a.eml", make_message(1))
        backend = self.backend()
        verifyObject(IBackend, backend)
        store = await backend.open_store("alice")
        verifyObject(IMailStore, store)
        inbox = await store.get_mailbox("INBOX")
        verifyObject(IMailbox, inbox)
        message = await inbox.open_message(1)
        verifyObject(IMessage, message)
        self.assertEqual(message.meta.uid, 1)

    async def test_directories_are_mailboxes(self) -> None:
        write(self.root / "Projects" / "Archive" / "x.eml", make_message(1))
        (self.root / "Empty").mkdir()
        (self.root / ".hidden").mkdir()
        (self.root / "Inbox").mkdir()  # would clash with the top directory
        (self.root / "with*wildcard").mkdir()
        store = await self.backend().open_store("alice")
        names = [info.name for info in await store.list_mailboxes()]
        self.assertEqual(names, ["Empty", "INBOX", "Projects", "Projects/Archive"])
        mailbox = await store.get_mailbox("Projects/Archive")
        self.assertEqual(await (await mailbox.open_message(1)).read(), make_message(1))

    async def test_files_in_name_order(self) -> None:
        write(self.root / "b.eml", make_message(2))
        write(self.root / "a.eml", make_message(1))
        write(self.root / "notes.txt", b"not a message")
        write(self.root / ".draft.eml", make_message(3))
        inbox = await self.inbox()
        self.assertEqual(await inbox.uids(), [1, 2])
        contents = [await (await inbox.open_message(uid)).read() for uid in (1, 2)]
        self.assertEqual(contents, [make_message(1), make_message(2)])
        status = await inbox.status()
        self.assertEqual(
            (status.messages, status.unseen, status.recent, status.uidnext, status.size),
            (2, 2, 0, 3, len(make_message(1)) + len(make_message(2))),
        )
        [meta] = await inbox.metadata([1])
        self.assertEqual(meta.flags, frozenset())
        mtime = os.stat(self.root / "a.eml").st_mtime
        self.assertEqual(meta.internaldate.timestamp(), int(mtime))
        self.assertEqual(await inbox.claim_recent(), [])

    async def test_bare_lf_served_as_crlf(self) -> None:
        content = make_multipart_message()
        write(self.root / "unix.eml", content.replace(b"\r\n", b"\n"))
        inbox = await self.inbox()
        message = await inbox.open_message(1)
        self.assertEqual(message.meta.size, len(content))
        self.assertEqual(await message.read(), content)
        self.assertEqual(await message.read(30, 40), content[30:70])
        self.assertEqual(await message.structure(), parse_message(content))

    async def test_uids_stable_across_restart(self) -> None:
        write(self.root / "b.eml", make_message(2))
        write(self.root / "c.eml", make_message(3))
        backend = self.backend()
        inbox = await self.inbox(backend)
        before = (inbox.uidvalidity, await inbox.metadata(await inbox.uids()))
        highest = (await inbox.status()).highestmodseq
        await backend.close()

        write(self.root / "a.eml", make_message(1))  # sorts first, arrives last
        inbox = await self.inbox()
        uids = await inbox.uids()
        self.assertEqual(uids, [1, 2, 3])
        self.assertEqual((inbox.uidvalidity, await inbox.metadata([1, 2])), before)
        self.assertEqual(await (await inbox.open_message(3)).read(), make_message(1))
        changed, expunged = await inbox.changes_since(highest)
        self.assertEqual(([m.uid for m in changed], expunged), ([3], []))
        self.assertGreater(changed[0].modseq, highest)

    async def test_removed_and_changed_files_are_expunged(self) -> None:
        for n in range(3):
            write(self.root / f"{n}.eml", make_message(n))
        backend = self.backend()
        store = await backend.open_store("alice")
        selected = await store.get_mailbox("INBOX")
        highest = (await selected.status()).highestmodseq
        opened = await selected.open_message(1)
        listener = RecordingListener()
        selected.subscribe(listener)
        self.addCleanup(selected.unsubscribe, listener)

        os.remove(self.root / "0.eml")
        write(self.root / "1.eml", make_message(1) + b"edited\r\n")
        await self.assert_raises(MessageExpunged, opened.read())
        await store.get_mailbox("INBOX")  # another session selects it

        events = await listener.wait_for(lambda ev: added_uids(ev) and expunged_uids(ev))
        [gone] = [e for e in events if isinstance(e, MessagesExpunged)]
        [added] = [e for e in events if isinstance(e, MessagesAdded)]
        self.assertEqual(gone.uids, (1, 2))
        self.assertEqual([m.uid for m in added.messages], [4])
        self.assertEqual(await selected.uids(), [3, 4])
        self.assertEqual(await (await selected.open_message(4)).read(),
                         make_message(1) + b"edited\r\n")
        await self.assert_raises(MessageExpunged, selected.open_message(1))
        self.assertEqual((await selected.changes_since(highest))[1], [1, 2])
        self.assertEqual((await selected.status()).highestmodseq, gone.modseq)

    async def test_writes_refused(self) -> None:
        write(self.root / "a.eml", make_message(1))
        write(self.root / "Sub" / "b.eml", make_message(2))
        store = await self.backend().open_store("alice")
        inbox = await store.get_mailbox("INBOX")
        self.assertTrue(inbox.read_only)
        files = sorted(p.relative_to(self.root) for p in self.root.rglob("*.eml"))
        await self.assert_raises(ReadOnlyMailbox, inbox.append([AppendRequest(make_message())]))
        await self.assert_raises(ReadOnlyMailbox, inbox.store_flags([1], "add", {"\\Deleted"}))
        await self.assert_raises(ReadOnlyMailbox, inbox.expunge())
        sub = await store.get_mailbox("Sub")
        await self.assert_raises(ReadOnlyMailbox, copy_messages(inbox, sub, [1]))
        await self.assert_raises(PermissionDenied, store.create_mailbox("New"))
        await self.assert_raises(PermissionDenied, store.delete_mailbox("Sub"))
        await self.assert_raises(PermissionDenied, store.rename_mailbox("Sub", "Other"))
        await self.assert_raises(PermissionDenied, store.rename_mailbox("INBOX", "Old"))
        self.assertEqual(sorted(p.relative_to(self.root) for p in self.root.rglob("*.eml")),
                         files)
        self.assertEqual([info.name for info in await store.list_mailboxes()], ["INBOX", "Sub"])
        self.assertEqual(await sub.uids(), [1])

    async def test_index_in_state_dir(self) -> None:
        write(self.root / "Sub" / "a.eml", make_message(1))
        state = Path(self.mktemp())
        backend = self.backend(state_dir=str(state))
        sub = await (await backend.open_store("alice")).get_mailbox("Sub")
        await backend.close()
        self.assertEqual(list(self.root.rglob(INDEX_NAME)), [])
        self.assertTrue((state / "Sub" / INDEX_NAME).is_file())
        again = await (await self.backend(state_dir=str(state)).open_store("bob")).get_mailbox(
            "Sub"
        )
        self.assertEqual(again.uidvalidity, sub.uidvalidity)

    async def assert_raises(self, exception, awaitable):
        try:
            await awaitable
        except exception as e:
            return e
        self.fail(f"{exception.__name__} not raised")


# -- the example serving a directory to imaplib --------------------------------

INBOX_MESSAGES = {
    "0001-welcome.eml": make_message(1),
    "0002-invoice.eml": (
        b"From: billing@example.org\r\nTo: alice@example.org\r\n"
        b"Subject: Your invoice\r\nDate: Thu, 18 May 2023 09:00:00 +0000\r\n\r\n"
        b"Amount due: 42.\r\n"
    ),
}
ARCHIVED = b"From: bob@example.org\nSubject: kickoff notes\n\nWritten on Unix.\n"


def make_archive(root: Path) -> None:
    for name, content in INBOX_MESSAGES.items():
        write(root / name, content)
    write(root / "Projects" / "Archive" / "kickoff.eml", ARCHIVED)


@contextmanager
def serving(tmp_path: Path, root: Path) -> Iterator[int]:
    """Run the example on C{root}; yield its IMAP port; stop it with SIGTERM."""
    output = tmp_path / "archive.out"
    with open(output, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, str(EXAMPLE), str(root), "--imap", "tcp:0:interface=127.0.0.1",
             "--user", "alice:secret"],
            cwd=tmp_path,
            env=subprocess_env(tmp_path),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        match = wait_for(
            lambda: re.search(r"IMAP listening on 127\.0\.0\.1:(\d+)", output.read_text()),
            "the archive to listen", process, output,
        )
        yield int(match.group(1))
    finally:
        stop_cleanly(process, output)


def test_archive_served_over_imap(tmp_path):
    root = tmp_path / "export"
    make_archive(root)
    with (
        serving(tmp_path, root) as port,
        imaplib.IMAP4("127.0.0.1", port, timeout=DEADLINE) as client,
    ):
        client.login("alice", "secret")
        typ, listing = client.list()
        assert typ == "OK"
        names = sorted(line.rsplit(b" ", 1)[1].strip(b'"') for line in listing)
        assert names == [b"INBOX", b"Projects", b"Projects/Archive"]

        # SELECT is answered READ-ONLY, which imaplib raises on; the server
        # has INBOX selected, and every write is refused.
        with pytest.raises(client.readonly):
            client.select("INBOX")
        client.is_readonly = True
        for typ, data in (
            client.store("1", "+FLAGS", "(\\Deleted)"),
            client.expunge(),
            client.append("INBOX", None, None, make_message(9)),
            client.copy("1", "Projects"),
            client.create("New"),
            client.delete("Projects/Archive"),
        ):
            assert typ == "NO", (typ, data)
        assert client.status("INBOX", "(MESSAGES UIDNEXT)") == (
            "OK", [b"INBOX (MESSAGES 2 UIDNEXT 3)"])

        typ, count = client.select("INBOX", readonly=True)
        assert (typ, count) == ("OK", [b"2"])
        typ, data = client.fetch("2", "(BODY.PEEK[])")
        assert typ == "OK" and data[0][1] == INBOX_MESSAGES["0002-invoice.eml"]
        assert client.search(None, "SUBJECT", "invoice") == ("OK", [b"2"])
        assert client.uid("SEARCH", "BODY", "number") == ("OK", [b"1"])

        # A file with bare LF line ends is served with CRLF.
        typ, count = client.select("Projects/Archive", readonly=True)
        assert (typ, count) == ("OK", [b"1"])
        typ, data = client.fetch("1", "(RFC822.SIZE BODY.PEEK[])")
        crlf = ARCHIVED.replace(b"\n", b"\r\n")
        assert typ == "OK"
        assert b"RFC822.SIZE %d " % len(crlf) in data[0][0]
        assert data[0][1] == crlf
        client.logout()

    assert {name: (root / name).read_bytes() for name in INBOX_MESSAGES} == INBOX_MESSAGES
    assert (root / "Projects" / "Archive" / "kickoff.eml").read_bytes() == ARCHIVED


def test_uids_survive_a_restart(tmp_path):
    root = tmp_path / "export"
    make_archive(root)

    def examine(port: int) -> tuple[bytes, list]:
        with imaplib.IMAP4("127.0.0.1", port, timeout=DEADLINE) as client:
            client.login("alice", "secret")
            client.select("INBOX", readonly=True)
            [uidvalidity] = client.response("UIDVALIDITY")[1]
            typ, data = client.uid("FETCH", "1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            assert typ == "OK"
            client.logout()
        return uidvalidity, [item for item in data if isinstance(item, tuple)]

    with serving(tmp_path, root) as port:
        first = examine(port)
    write(root / "0000-late.eml", make_message(7))
    with serving(tmp_path, root) as port:
        uidvalidity, fetched = examine(port)
    assert uidvalidity == first[0]
    assert fetched[:2] == first[1]
    assert b"UID 3 " in fetched[2][0] and fetched[2][1].startswith(b"Subject: message 7")


def test_missing_directory_is_a_usage_error(tmp_path):
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), str(tmp_path / "nowhere")],
        cwd=tmp_path, env=subprocess_env(tmp_path), capture_output=True, text=True,
        timeout=DEADLINE, check=False,
    )
    assert result.returncode == 2
    assert "Not a directory" in result.stderr


def test_twistd_serves_the_archive_by_store_url(tmp_path, monkeypatch):
    from test_plugin import running_twistd

    root = tmp_path / "archive"
    make_archive(root)
    monkeypatch.setenv("PYTHONPATH", str(REPO / "examples"))
    url = f"python:eml_archive:ArchiveBackend?root={root}"
    with running_twistd(tmp_path, "--store", url, "--user", "a:b",
                        "--imap", "tcp:0:interface=127.0.0.1") as ports:
        with imaplib.IMAP4("127.0.0.1", ports["IMAP"], timeout=DEADLINE) as client:
            client.login("a", "b")
            typ, data = client.select("INBOX", readonly=True)
            assert typ == "OK" and int(data[0]) > 0
            typ, fetched = client.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            assert typ == "OK" and b"Subject:" in fetched[0][1]
            client.logout()
