"""
The Maildir backend: the conformance suite, and sharing the tree with other
mail programs (Python's C{mailbox.Maildir} standing for mutt and procmail,
files written the way Dovecot writes them, a second server process).
"""

from __future__ import annotations

import mailbox
import os
import re
import socket
import subprocess
import sys
import textwrap
import time

from test_watch import WatchMixin
from twisted.internet import defer, threads
from twisted.trial import unittest

import twisted_mailhub
from twisted_mailhub.backends.base import copy_messages
from twisted_mailhub.backends.maildir import MaildirBackend
from twisted_mailhub.backends.maildir import folder as maildir_folder
from twisted_mailhub.backends.maildir import locking as maildir_locking
from twisted_mailhub.backends.maildir.content import served_form, stored_form
from twisted_mailhub.backends.maildir.naming import folder_directory_name, folder_name
from twisted_mailhub.errors import InvalidMailboxName, PermissionDenied, StoreUnavailable
from twisted_mailhub.interfaces import IContentAccess
from twisted_mailhub.model import (
    AppendRequest,
    FlagsChanged,
    MailboxRemoved,
    MessagesAdded,
    MessagesExpunged,
)
from twisted_mailhub.testing import BackendConformanceMixin, RecordingListener, make_message


class MaildirConformanceTests(BackendConformanceMixin, unittest.TestCase):
    persistent = True

    async def make_backend(self) -> MaildirBackend:
        return MaildirBackend(self.mktemp())

    async def restart_backend(self, backend: MaildirBackend) -> MaildirBackend:
        await backend.close()
        return MaildirBackend(backend.root)


def lf_message(n: int) -> bytes:
    """A message as mail programs write Maildir files: LF line endings."""
    return b"From: sender%d@example.org\nSubject: message %d\n\nBody %d.\n" % (n, n, n)


def crlf(data: bytes) -> bytes:
    return data.replace(b"\n", b"\r\n")


def read_file(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def write_file(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


class MaildirTestCase(unittest.TestCase):
    """A fresh backend per test, closed at the end."""

    def setUp(self) -> None:
        self.root = os.path.abspath(self.mktemp())
        self.backend = self.make()

    def make(self, **options) -> MaildirBackend:
        backend = MaildirBackend(self.root, **options)
        self.addCleanup(lambda: defer.ensureDeferred(backend.close()))
        return backend

    def path(self, *parts: str) -> str:
        return os.path.join(self.root, "alice", *parts)

    async def inbox(self, backend: MaildirBackend | None = None):
        store = await (backend or self.backend).open_store("alice")
        return store, await store.get_mailbox("INBOX")

    async def listen(self, box) -> RecordingListener:
        listener = RecordingListener()
        box.subscribe(listener)
        self.addCleanup(box.unsubscribe, listener)
        return listener

    async def contents(self, box) -> list[bytes]:
        return [await (await box.open_message(uid)).read() for uid in await box.uids()]

    def maildir(self, *folder: str) -> mailbox.Maildir:
        return mailbox.Maildir(self.path(*folder), factory=None, create=False)

    def files(self, subdir: str, *folder: str) -> list[str]:
        return sorted(os.listdir(self.path(*folder, subdir)))

    def uidlist(self, *folder: str) -> list[str]:
        return read_file(self.path(*folder, "dovecot-uidlist")).decode().splitlines()


class FileFormatTests(MaildirTestCase):
    async def test_files_are_what_dovecot_and_mutt_read(self) -> None:
        _, inbox = await self.inbox()
        plain, flagged = await inbox.append([
            AppendRequest(crlf(lf_message(1))),
            AppendRequest(crlf(lf_message(2)), frozenset({"\\Seen", "\\Answered", "$Junk"})),
        ])
        # No flags: new/, no info.  Flags: cur/, letters in ASCII order.
        [new_name] = self.files("new")
        [cur_name] = self.files("cur")
        self.assertRegex(new_name, r"^\d+\.M\d+P\d+Q\d+\.[^:/]+,S=\d+,W=\d+$")
        base, info = cur_name.split(":2,")
        self.assertEqual(info, "RSa")
        # Stored with LF endings; S= the file's size, W= the size served (CRLF).
        stored = read_file(self.path("cur", cur_name))
        self.assertEqual(stored, lf_message(2))
        self.assertIn(f",S={len(stored)},W={len(crlf(stored))}", base)
        self.assertEqual(flagged.size, len(crlf(stored)))
        header, first, second = self.uidlist()
        self.assertRegex(header, r"^3 V\d+ N3 G[0-9a-f]{32}$")
        self.assertEqual(header.split()[1], f"V{inbox.uidvalidity}")
        # Each record carries the message's GUID (G), Dovecot's field for it,
        # which is the identity the server reports (RFC 8474 EMAILID).
        self.assertEqual([first, second], [f"{plain.uid} G{plain.identity} :{new_name}",
                                           f"{flagged.uid} G{flagged.identity} :{base}"])
        self.assertRegex(plain.identity, r"^[0-9a-f]{32}$")
        self.assertEqual(read_file(self.path("dovecot-keywords")), b"0 $Junk\n")
        # Python's mailbox module, like mutt, sees the same messages and flags.
        box = self.maildir()
        self.assertEqual(sorted((m.get_subdir(), m.get_flags()) for m in box),
                         [("cur", "RSa"), ("new", "")])

    async def test_keywords_shared_through_dovecot_keywords(self) -> None:
        # A folder as Dovecot leaves it: its keywords file, a message with
        # letters, a UID list Dovecot appended to without rewriting N.
        os.makedirs(self.path())
        for sub in ("cur", "new", "tmp"):
            os.mkdir(self.path(sub))
        write_file(self.path("dovecot-keywords"), b"0 Important\n1 $Later\n")
        write_file(self.path("cur", "1700000000.M1P2.host,S=10,W=11:2,Sb"), b"Subject: a\n\n")
        write_file(self.path("cur", "1700000001.M1P2.host:2,aP"), b"Subject: b\n\n")
        write_file(self.path("dovecot-uidlist"),
                   b"3 V1234 N5 G00112233445566778899aabbccddeeff\n"
                   b"5 :1700000000.M1P2.host,S=10,W=11\n"
                   b"9 W99 P12345 :1700000001.M1P2.host\n")
        _, inbox = await self.inbox()
        self.assertEqual(inbox.uidvalidity, 1234)
        first, second = await inbox.metadata(await inbox.uids())
        self.assertEqual((first.uid, first.flags), (5, {"\\Seen", "$Later"}))
        self.assertEqual((second.uid, second.flags), (9, {"Important"}))
        self.assertEqual((await inbox.status()).uidnext, 10)
        # A keyword of any case is the one the file names; P stays.
        update = await inbox.store_flags([9], "add", {"$later", "NewOne", "\\Flagged"})
        self.assertEqual(update.changed[0].flags, {"Important", "$Later", "NewOne", "\\Flagged"})
        self.assertEqual(read_file(self.path("dovecot-keywords")),
                         b"0 Important\n1 $Later\n2 NewOne\n")
        self.assertIn("1700000001.M1P2.host:2,FPabc", self.files("cur"))
        [meta] = await inbox.append([AppendRequest(b"Subject: c\r\n\r\n")])
        self.assertEqual(meta.uid, 10)
        # The fields Dovecot wrote are kept when the list is rewritten.
        self.assertEqual(self.uidlist()[1:], [
            "5 :1700000000.M1P2.host,S=10,W=11",
            "9 W99 P12345 :1700000001.M1P2.host",
            f"10 G{meta.identity} :{self.files('new')[0]}",
        ])

    async def test_more_than_26_keywords(self) -> None:
        _, inbox = await self.inbox()
        keywords = frozenset(f"$K{n:02d}" for n in range(30))
        [meta] = await inbox.append([AppendRequest(make_message(1), keywords)])
        self.assertEqual(meta.flags, keywords)
        [name] = self.files("cur")
        self.assertEqual(name.split(":2,")[1], "abcdefghijklmnopqrstuvwxyz")
        backend = self.make()
        _, inbox = await self.inbox(backend)
        self.assertEqual((await inbox.metadata([meta.uid]))[0].flags, keywords)

    async def test_line_endings(self) -> None:
        _, inbox = await self.inbox()
        sent = [crlf(lf_message(1)), lf_message(2), b"Subject: mixed\r\n\nx\r\r\n"]
        metas = await inbox.append([AppendRequest(content) for content in sent])
        # CRLF, as IMAP sends it, is stored with the LF other programs
        # expect; what would not come back the same is stored as it came.
        stored = sorted(read_file(self.path("new", name)) for name in self.files("new"))
        self.assertEqual(stored, sorted([lf_message(1), lf_message(2), sent[2]]))
        for backend in (self.backend, self.make()):
            _, inbox = await self.inbox(backend)
            self.assertEqual(await self.contents(inbox), sent)
            self.assertEqual([m.size for m in await inbox.metadata(await inbox.uids())],
                             [len(content) for content in sent])
        self.assertEqual([m.size for m in metas], [len(content) for content in sent])
        # Files other programs wrote: LF is served as CRLF, CRLF as it is.
        write_file(self.path("new", "1700000000.M1P1.other"), lf_message(3))
        write_file(self.path("new", "1700000001.M1P1.other"), crlf(lf_message(4)))
        self.assertEqual((await self.contents(inbox))[3:],
                         [crlf(lf_message(3)), crlf(lf_message(4))])
        self.assertEqual(stored_form(crlf(lf_message(1))), (lf_message(1), False))
        self.assertEqual(served_form(lf_message(1)), crlf(lf_message(1)))

    async def test_folder_names_as_dovecot_spells_them(self) -> None:
        store, _ = await self.inbox()
        for name in ["Work/Projects", "lists.python", "Café/Crème", "a\\b", "R&D", "INBOX/Sub"]:
            await store.create_mailbox(name)
        on_disk = sorted(n for n in os.listdir(self.path()) if n.startswith("."))
        self.assertEqual(on_disk, sorted([
            ".Work", ".Work.Projects", ".lists\\2epython", ".Caf&AOk-", ".Caf&AOk-.Cr&AOg-me",
            ".a\\5cb", ".R&-D", ".INBOX.Sub"]))
        # Dovecot's CREATE makes no directory for "Deep": a name that only
        # holds others, not selectable.
        os.makedirs(self.path(".Deep.Folder", "cur"))
        infos = {info.name: info.selectable for info in await store.list_mailboxes()}
        self.assertEqual(infos, {
            "INBOX": True, "Work": True, "Work/Projects": True, "lists.python": True,
            "Café": True, "Café/Crème": True, "a\\b": True, "R&D": True, "INBOX/Sub": True,
            "Deep": False, "Deep/Folder": True})
        self.assertTrue(os.path.isfile(self.path(".Work.Projects", "maildirfolder")))
        for name in infos:
            if name != "INBOX":
                self.assertEqual(folder_name(folder_directory_name(name)), name)

    async def test_directories_that_are_not_folders_are_ignored(self) -> None:
        store, _ = await self.inbox()
        for name in (".Inbox", ".INBOX", ".bad..level", ".\\zz", ".Caf\xe9", ".&Jjo"):
            os.makedirs(self.path(name, "cur"))
        write_file(self.path(".plainfile"), b"")
        os.symlink(self.path("cur"), self.path(".Linked"))
        self.assertEqual([info.name for info in await store.list_mailboxes()], ["INBOX"])

    async def test_only_regular_files_are_messages(self) -> None:
        _, inbox = await self.inbox()
        secret = os.path.abspath(self.mktemp())
        write_file(secret, b"Subject: not mail\n\nsecret\n")
        os.symlink(secret, self.path("new", "1700000000.M1P1.host"))
        os.mkdir(self.path("cur", "1700000001.M1P1.host:2,S"))
        write_file(self.path("new", ".hidden"), b"Subject: hidden\n\n")
        self.assertEqual(await inbox.uids(), [])

    async def test_subscriptions_file_is_dovecots(self) -> None:
        store, _ = await self.inbox()
        await store.subscribe("Café/a.b")
        await store.subscribe("INBOX")
        self.assertEqual(read_file(self.path("subscriptions")),
                         b"V\t2\n\nCaf&AOk-\ta\\2eb\nINBOX\n")
        write_file(self.path("subscriptions"), b"V\t2\n\nWork\tProjects\nArchive\n")
        self.assertEqual(await store.subscriptions(), {"Work/Projects", "Archive"})


class ContentAccessTests(MaildirTestCase):
    """L{IContentAccess.contents}: what L{IMailbox.open_message} serves, in one call."""

    async def test_contents_are_the_served_bytes(self) -> None:
        _, inbox = await self.inbox()
        self.assertTrue(IContentAccess.providedBy(inbox))
        sent = [crlf(lf_message(1)), b"Subject: mixed\r\n\nx\r\r\n"]
        await inbox.append([AppendRequest(content) for content in sent])
        write_file(self.path("new", "1700000000.M1P1.other"), lf_message(3))
        uids = await inbox.uids()
        served = {uid: await (await inbox.open_message(uid)).read() for uid in uids}
        found = await inbox.contents(uids + [99], 1 << 20)
        self.assertEqual(found, served)
        self.assertEqual(list(found.values()), sent + [crlf(lf_message(3))])

    async def test_expunged_and_larger_messages_are_left_out(self) -> None:
        _, inbox = await self.inbox()
        metas = await inbox.append([AppendRequest(make_message(n), frozenset({"\\Deleted"})
                                                  if n == 1 else frozenset())
                                    for n in range(3)])
        await inbox.expunge()
        first, _, last = metas
        size = max(first.size, last.size)
        self.assertEqual(await inbox.contents([last.uid, first.uid, metas[1].uid], size),
                         {first.uid: make_message(0), last.uid: make_message(2)})
        smaller = await inbox.contents([first.uid, last.uid], size - 1)
        self.assertEqual({uid: len(content) for uid, content in smaller.items()},
                         {meta.uid: meta.size for meta in (first, last) if meta.size < size})
        self.assertEqual(await inbox.contents([], 1 << 20), {})

    async def test_files_renamed_or_removed_while_read(self) -> None:
        _, inbox = await self.inbox()
        metas = await inbox.append([AppendRequest(make_message(n)) for n in range(3)])
        moved, removed = sorted(self.files("new"))[:2]
        read = maildir_folder.Folder.content
        located = []

        def content(folder, uid):
            # Another program moves one file to cur/ and removes another
            # once the folder is listed, before its messages are read.
            if not located:
                os.rename(self.path("new", moved), self.path("cur", moved + ":2,S"))
                os.remove(self.path("new", removed))
            located.append(uid)
            return read(folder, uid)

        self.patch(maildir_folder.Folder, "content", content)
        found = await inbox.contents([meta.uid for meta in metas], 1 << 20)
        self.assertEqual(located, [meta.uid for meta in metas])
        served = {make_message(n): meta.uid for n, meta in enumerate(metas)}
        left = {served[crlf(read_file(self.path(d, name)))]
                for d in ("new", "cur") for name in self.files(d)}
        self.assertEqual(len(left), 2)
        self.assertEqual(sorted(found), sorted(left))
        for uid, content in found.items():
            self.assertEqual(content, await (await inbox.open_message(uid)).read())
        self.assertEqual(await inbox.uids(), sorted(found))


class CopyTests(MaildirTestCase):
    async def test_copy_links_the_file_and_keeps_flags_apart(self) -> None:
        store, inbox = await self.inbox()
        await store.create_mailbox("Archive")
        archive = await store.get_mailbox("Archive")
        [meta] = await inbox.append([AppendRequest(lf_message(1), frozenset({"\\Seen", "$A"}))])
        [(source, copied)] = await copy_messages(inbox, archive, [meta.uid])
        self.assertEqual(source, meta.uid)
        [original] = self.files("cur")
        [copy] = self.files("cur", ".Archive")
        self.assertEqual(os.stat(self.path("cur", original)).st_ino,
                         os.stat(self.path(".Archive", "cur", copy)).st_ino)
        self.assertNotEqual(original.split(":")[0], copy.split(":")[0])
        [arrived] = await archive.metadata([copied])
        self.assertEqual((arrived.flags, arrived.internaldate, arrived.size),
                         (meta.flags, meta.internaldate, meta.size))
        self.assertEqual(await self.contents(archive), [lf_message(1)])
        await archive.store_flags([copied], "set", {"\\Flagged"})
        self.assertEqual((await inbox.metadata([meta.uid]))[0].flags, {"\\Seen", "$A"})
        self.assertEqual(self.files("tmp", ".Archive"), [])
        self.assertEqual(read_file(self.path(".Archive", "dovecot-keywords")), b"0 $A\n")


class NameTests(MaildirTestCase):
    async def test_hostile_names_refused(self) -> None:
        store, _ = await self.inbox()
        for name in ["../evil", "a/../../evil", "/etc/passwd", "a\x00b", ".", "..", "a//b",
                     "", "x" * 300]:
            for attempt in (store.create_mailbox, store.get_mailbox,
                            lambda name: store.rename_mailbox("INBOX", name)):
                await self.assertFailure(defer.ensureDeferred(attempt(name)), InvalidMailboxName)
        self.assertEqual(sorted(os.listdir(self.root)), ["alice"])
        self.assertEqual(sorted(os.listdir(self.path())),
                         ["cur", "dovecot-uidlist", "mailhub-state", "mailhub-uidvalidity",
                          "new", "tmp"])

    async def test_hostile_user_names_refused(self) -> None:
        for username in ["..", ".", "", "../bob", "a/b", "x\x00", "/etc"]:
            await self.assertFailure(defer.ensureDeferred(self.backend.open_store(username)),
                                     PermissionDenied)
        self.assertEqual(os.listdir(self.root), [])

    async def test_delete_and_rename_move_the_directories(self) -> None:
        store, _ = await self.inbox()
        await store.create_mailbox("Work/Projects")
        work = await store.get_mailbox("Work")
        await work.append([AppendRequest(make_message(1))])
        listener = await self.listen(work)
        await store.delete_mailbox("Work")
        await listener.wait_for(lambda es: MailboxRemoved() in es)
        # The name stays, without messages, as an empty directory.
        self.assertEqual(os.listdir(self.path(".Work")), [])
        await store.rename_mailbox("Work", "Archive/2020")
        self.assertEqual(sorted(n for n in os.listdir(self.path()) if n.startswith(".")),
                         [".Archive", ".Archive.2020", ".Archive.2020.Projects"])
        self.assertEqual(os.listdir(self.path(".Archive.2020")), [])
        self.assertEqual([n for n in os.listdir(self.path("tmp"))], [])


class OtherProgramTests(MaildirTestCase):
    async def test_delivery_into_new_gets_the_next_uid(self) -> None:
        _, inbox = await self.inbox()
        [first] = await inbox.append([AppendRequest(make_message(0))])
        listener = await self.listen(inbox)
        # Python's mailbox module delivers as procmail does: tmp/, then new/.
        self.maildir().add(lf_message(1))
        status = await inbox.status()
        self.assertEqual((status.messages, status.uidnext), (2, first.uid + 2))
        [event] = listener.events
        self.assertIsInstance(event, MessagesAdded)
        [added] = event.messages
        self.assertEqual(added.uid, first.uid + 1)
        self.assertGreater(added.modseq, first.modseq)
        self.assertEqual(added.size, len(crlf(lf_message(1))))
        self.assertEqual(await (await inbox.open_message(added.uid)).read(), crlf(lf_message(1)))
        self.assertEqual(self.uidlist()[-1].split(" ")[0], str(added.uid))

    async def test_flag_rename_by_another_program_is_seen(self) -> None:
        _, inbox = await self.inbox()
        metas = await inbox.append([AppendRequest(make_message(n)) for n in range(2)])
        listener = await self.listen(inbox)
        box = self.maildir()
        [key] = [k for k in box.keys() if b"message 1" in box.get_bytes(k)]
        message = box[key]
        message.set_subdir("cur")
        message.set_flags("PRS")
        box[key] = message
        [meta] = await inbox.metadata([metas[1].uid])
        self.assertEqual(meta.flags, {"\\Seen", "\\Answered"})
        self.assertGreater(meta.modseq, metas[1].modseq)
        [event] = listener.events
        self.assertEqual(event, FlagsChanged((meta,)))
        # A change made here keeps the letter P (passed) of the other program.
        await inbox.store_flags([meta.uid], "add", {"\\Flagged"})
        self.assertEqual(box.get_message(key).get_flags(), "FPRS")
        changed, _ = await inbox.changes_since(metas[1].modseq)
        self.assertEqual([m.uid for m in changed], [metas[1].uid])

    async def test_removal_by_another_program_is_an_expunge(self) -> None:
        _, inbox = await self.inbox()
        metas = await inbox.append([AppendRequest(make_message(n)) for n in range(3)])
        listener = await self.listen(inbox)
        box = self.maildir()
        [key] = [k for k in box.keys() if b"message 0" in box.get_bytes(k)]
        box.remove(key)
        self.assertEqual(await inbox.uids(), [metas[1].uid, metas[2].uid])
        [event] = listener.events
        self.assertIsInstance(event, MessagesExpunged)
        self.assertEqual(event.uids, (metas[0].uid,))
        self.assertEqual(await inbox.changes_since(metas[2].modseq), ([], [metas[0].uid]))
        self.assertEqual(len(self.uidlist()), 3)

    async def test_uids_survive_restart_and_other_writers(self) -> None:
        _, inbox = await self.inbox()
        ours = await inbox.append([AppendRequest(make_message(n), frozenset({"$Mine"}))
                                   for n in range(3)])
        self.maildir().add(lf_message(9))
        # Another server process on the same tree, then a restart of this one.
        other = self.make()
        _, other_inbox = await self.inbox(other)
        [theirs] = await other_inbox.append([AppendRequest(make_message(10))])
        metas = await other_inbox.metadata(await other_inbox.uids())
        self.assertEqual([m.uid for m in metas], [1, 2, 3, 4, 5])
        self.assertEqual(theirs.uid, 5)
        await self.backend.close()
        _, again = await self.inbox(self.make())
        self.assertEqual(await again.metadata(await again.uids()), metas)
        self.assertEqual(again.uidvalidity, inbox.uidvalidity)
        self.assertEqual(metas[:3], ours)
        # A lost UID list means the UIDs are gone: a new UIDVALIDITY says so.
        os.unlink(self.path("dovecot-uidlist"))
        _, reset = await self.inbox(self.make())
        self.assertNotEqual(reset.uidvalidity, inbox.uidvalidity)
        self.assertEqual(await reset.uids(), [1, 2, 3, 4, 5])

    async def test_two_processes_append_concurrently(self) -> None:
        _, inbox = await self.inbox()
        child = self.child_appending(40)
        child.stdin.write(b"go\n")
        child.stdin.flush()
        mine = []
        for n in range(40):
            mine += await inbox.append([AppendRequest(make_message(n))])
        line = await threads.deferToThread(child.stdout.readline)
        theirs = [int(uid) for uid in line.split()]
        self.assertEqual(child.wait(), 0)
        uids = await inbox.uids()
        self.assertEqual(len(uids), 80)
        self.assertEqual(sorted([m.uid for m in mine] + theirs), uids)
        self.assertEqual(uids, list(range(1, 81)))
        contents = await self.contents(inbox)
        self.assertEqual(sum(b"from the child" in c for c in contents), 40)
        self.assertEqual(len(self.uidlist()), 81)

    def child_appending(self, count: int) -> subprocess.Popen:
        env = dict(os.environ)
        source_root = os.path.dirname(os.path.dirname(twisted_mailhub.__file__))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [source_root, env.get("PYTHONPATH")]))
        child = subprocess.Popen([sys.executable, "-c", APPENDER, self.root, str(count)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        self.addCleanup(child.stdout.close)
        self.addCleanup(child.stdin.close)
        self.addCleanup(lambda: child.poll() is None and child.kill())
        self.assertEqual(child.stdout.readline(), b"ready\n")
        return child


APPENDER = textwrap.dedent("""
    import sys
    from twisted.internet import defer, task
    from twisted_mailhub.backends.maildir import MaildirBackend
    from twisted_mailhub.model import AppendRequest

    async def main(reactor):
        backend = MaildirBackend(sys.argv[1])
        inbox = await (await backend.open_store("alice")).get_mailbox("INBOX")
        print("ready", flush=True)
        sys.stdin.readline()
        uids = []
        for n in range(int(sys.argv[2])):
            content = b"Subject: %d\\r\\n\\r\\nfrom the child\\r\\n" % n
            [meta] = await inbox.append([AppendRequest(content)])
            uids.append(meta.uid)
        print(" ".join(map(str, uids)), flush=True)
        await backend.close()

    task.react(lambda reactor: defer.ensureDeferred(main(reactor)))
""")


class StateLossTests(MaildirTestCase):
    """C{mailhub-state} lost while C{dovecot-uidlist} survives."""

    async def test_modseqs_go_on_and_the_lost_history_is_admitted(self) -> None:
        _, inbox = await self.inbox()
        metas = await inbox.append([AppendRequest(make_message(n)) for n in range(4)])
        await inbox.store_flags([metas[0].uid], "add", {"\\Deleted"})
        await inbox.expunge()
        await inbox.store_flags([metas[1].uid], "add", {"\\Flagged"})
        known = (await inbox.status()).highestmodseq
        self.assertEqual(await inbox.expunges_remembered_after(), 0)
        await self.backend.close()
        os.unlink(self.path("mailhub-state"))

        _, again = await self.inbox(self.make())
        # Same UIDs under the same UIDVALIDITY, so a client keeps its cache...
        self.assertEqual(again.uidvalidity, inbox.uidvalidity)
        self.assertEqual(await again.uids(), [m.uid for m in metas[1:]])
        # ...and what it holds is older than anything now: every message
        # counts as changed since the client's HIGHESTMODSEQ, and the server
        # admits that it no longer knows the expunges before.
        status = await again.status()
        self.assertGreater(status.highestmodseq, known)
        changed, expunged = await again.changes_since(known)
        self.assertEqual([m.uid for m in changed], [m.uid for m in metas[1:]])
        self.assertEqual(expunged, [])
        self.assertGreater(await again.expunges_remembered_after(), known)
        # Flags kept in the file names survive; MODSEQs keep growing.
        [flagged] = await again.metadata([metas[1].uid])
        self.assertIn("\\Flagged", flagged.flags)
        update = await again.store_flags([metas[2].uid], "add", {"\\Seen"})
        self.assertGreater(update.changed[0].modseq, status.highestmodseq)
        # The rebuilt state is kept: a restart does not move MODSEQs again.
        await self.backend.close()
        _, third = await self.inbox(self.make())
        self.assertEqual((await third.status()).highestmodseq, update.changed[0].modseq)

    async def test_unused_folder_starts_from_one(self) -> None:
        store, _ = await self.inbox()
        await store.create_mailbox("Empty")
        os.unlink(self.path(".Empty", "mailhub-state"))
        box = await store.get_mailbox("Empty")
        self.assertEqual((await box.status()).highestmodseq, 1)
        self.assertEqual(await box.expunges_remembered_after(), 0)


class CrashTests(MaildirTestCase):
    async def test_failure_before_the_uid_list_leaves_a_whole_message(self) -> None:
        _, inbox = await self.inbox()
        [kept] = await inbox.append([AppendRequest(make_message(0))])

        def crash(lock, data, mode=0o600):
            raise OSError("power lost")

        self.patch(maildir_locking.DotLock, "replace", crash)
        with self.assertRaises(OSError):
            await inbox.append([AppendRequest(make_message(1))])
        self.patch(maildir_locking.DotLock, "replace", DOT_LOCK_REPLACE)
        # The file was in new/ already: the next look gives it its UID.
        self.assertEqual(len(self.files("new")), 2)
        self.assertEqual(self.files("tmp"), [])
        _, inbox = await self.inbox(self.make())
        metas = await inbox.metadata(await inbox.uids())
        self.assertEqual([m.uid for m in metas], [kept.uid, kept.uid + 1])
        self.assertEqual(await self.contents(inbox), [make_message(0), make_message(1)])
        self.assertFalse(os.path.exists(self.path("dovecot-uidlist.lock")))

    async def test_failure_while_writing_leaves_no_message(self) -> None:
        _, inbox = await self.inbox()
        real_fsync = os.fsync
        written = []

        def failing_fsync(fd):
            written.append(fd)
            if len(written) == 2:
                raise OSError("disk full")
            real_fsync(fd)

        self.patch(maildir_folder.os, "fsync", failing_fsync)
        with self.assertRaises(OSError):
            await inbox.append([AppendRequest(make_message(n)) for n in range(3)])
        self.patch(maildir_folder.os, "fsync", real_fsync)
        self.assertEqual((self.files("new"), self.files("cur"), self.files("tmp")), ([], [], []))
        self.assertEqual(await inbox.uids(), [])
        [meta] = await inbox.append([AppendRequest(make_message(4))])
        self.assertEqual(meta.uid, 1)


DOT_LOCK_REPLACE = maildir_locking.DotLock.replace


class LockingTests(MaildirTestCase):
    def lock_path(self) -> str:
        return self.path("dovecot-uidlist.lock")

    async def test_waits_for_a_lock_held_elsewhere(self) -> None:
        waits = []
        backend = self.make(on_lock_wait=waits.append)
        _, inbox = await self.inbox(backend)
        # As Dovecot holds it while it assigns UIDs: a fresh lock file.
        write_file(self.lock_path(), b"")
        appending = defer.ensureDeferred(inbox.append([AppendRequest(make_message(0))]))
        for _ in range(200):
            if waits:
                break
            await threads.deferToThread(time.sleep, 0.01)
        self.assertEqual(waits, [self.path("dovecot-uidlist")])
        self.assertFalse(appending.called)
        os.unlink(self.lock_path())
        [meta] = await appending
        self.assertEqual(meta.uid, 1)

    async def test_wait_is_bounded(self) -> None:
        _, inbox = await self.inbox(self.make(lock_timeout=0.05))
        write_file(self.lock_path(), b"")
        await self.assertFailure(
            defer.ensureDeferred(inbox.append([AppendRequest(make_message(0))])),
            StoreUnavailable)
        self.assertTrue(os.path.exists(self.lock_path()))
        os.unlink(self.lock_path())
        self.assertEqual(await inbox.uids(), [])

    async def test_lock_of_a_dead_process_is_broken_at_once(self) -> None:
        _, inbox = await self.inbox(self.make(lock_timeout=5))
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        write_file(self.lock_path(), b"%d:%s\n" % (dead.pid, socket.gethostname().encode()))
        [meta] = await inbox.append([AppendRequest(make_message(0))])
        self.assertEqual(meta.uid, 1)
        self.assertFalse(os.path.exists(self.lock_path()))

    async def test_process_killed_while_replacing_leaves_a_lock_broken_at_once(self) -> None:
        # Killed after the new UID list is written and before it is in
        # place: the lock must still name the dead process, or the next
        # writer waits out the age rule (two minutes by default).
        _, inbox = await self.inbox(self.make(lock_timeout=5))
        [kept] = await inbox.append([AppendRequest(make_message(0))])
        child = subprocess.run([sys.executable, "-c", textwrap.dedent("""
            import os, sys
            from twisted_mailhub.backends.maildir import locking
            os.fsync = lambda fd: os._exit(9)
            with locking.dotlocked(sys.argv[1], timeout=5, stale_after=120) as lock:
                lock.replace(b"3 V1 N2\\n")
        """), self.path("dovecot-uidlist")], timeout=60)
        self.assertEqual(child.returncode, 9)
        self.assertTrue(os.path.exists(self.lock_path()))
        [meta] = await inbox.append([AppendRequest(make_message(1))])
        self.assertEqual(meta.uid, kept.uid + 1)
        self.assertFalse(os.path.exists(self.lock_path()))

    async def test_old_lock_is_broken(self) -> None:
        _, inbox = await self.inbox(self.make(lock_timeout=5, stale_lock_after=60))
        write_file(self.lock_path(), b"")
        os.utime(self.lock_path(), (1, 1))
        await inbox.append([AppendRequest(make_message(0))])
        self.assertFalse(os.path.exists(self.lock_path()))
        self.assertEqual([n for n in os.listdir(self.path("tmp"))], [])


class MaildirWatchTests(WatchMixin, unittest.TestCase):
    """The change watcher's tests, with two backends on one Maildir tree."""

    kind = "maildir"
    renames_seen = False

    async def backends(self, interval_a: float = 0.02):
        root = os.path.abspath(self.mktemp())
        os.makedirs(root)
        a, b = MaildirBackend(root), MaildirBackend(root)
        self.addCleanup(lambda: defer.ensureDeferred(a.close()))
        self.addCleanup(lambda: defer.ensureDeferred(b.close()))
        a.watch_changes(interval_a)
        b.watch_changes(0.02)
        return a, b

    async def test_delivery_by_another_program_is_announced(self) -> None:
        (a, _, box_a), _, listener = await self.inbox_pair()
        path = os.path.join(a.root, "alice")
        mailbox.Maildir(path, factory=None, create=False).add(lf_message(1))
        events = await listener.wait_for(lambda es: any(isinstance(e, MessagesAdded) for e in es))
        [added] = [m for e in events if isinstance(e, MessagesAdded) for m in e.messages]
        self.assertEqual(added.uid, 1)
        self.assertEqual(re.findall(rb"Body \d", await (await box_a.open_message(1)).read()),
                         [b"Body 1"])
