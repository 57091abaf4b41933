"""
mbsync (isync), a two-way IMAP/Maildir synchroniser, against the server:
pull every folder, then push local changes back - a flag, a deletion and a
new message - as someone syncing a laptop would.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from harness import IMAPServerTestCase, on_every_store
from tests_messages import simple_message

from twisted_mailhub.model import AppendRequest

MBSYNC = shutil.which("mbsync")


@on_every_store
class MbsyncTests(IMAPServerTestCase):
    if not MBSYNC:
        skip = "mbsync is needed (the CI script installs isync)"

    def config(self, home: Path) -> Path:
        rc = home / "mbsyncrc"
        rc.write_text(
            f"IMAPAccount hub\nHost 127.0.0.1\nPort {self.port}\nUser alice\n"
            "Pass wonderland\nSSLType None\nAuthMechs LOGIN\n\n"
            "IMAPStore remote\nAccount hub\n\n"
            f"MaildirStore local\nPath {home}/Mail/\nInbox {home}/Mail/INBOX\n"
            "SubFolders Verbatim\n\n"
            "Channel hub\nFar :remote:\nNear :local:\nPatterns *\nCreate Both\n"
            "Expunge Both\nSyncState *\n"
        )
        return rc

    def sync(self, home: Path, rc: Path) -> subprocess.CompletedProcess:
        return subprocess.run([MBSYNC, "-c", str(rc), "hub"], capture_output=True, text=True,
                              env=dict(os.environ, HOME=str(home)), timeout=60)

    async def test_two_way_sync(self) -> None:
        store = await self.backend.open_store("alice")
        inbox = await store.get_mailbox("INBOX")
        await inbox.append([AppendRequest(simple_message(f"note {i}")) for i in range(3)])
        await store.create_mailbox("Work")
        work = await store.get_mailbox("Work")
        await work.append([AppendRequest(simple_message("work"), frozenset({"\\Flagged"}))])

        home = Path(os.path.abspath(self.mktemp()))
        (home / "Mail").mkdir(parents=True)
        rc = self.config(home)
        first = await self.in_thread(self.sync, home, rc)
        self.assertEqual(first.returncode, 0, first.stderr)
        pulled = sorted((home / "Mail" / "INBOX" / "new").iterdir())
        self.assertEqual(len(pulled), 3)
        [flagged] = list((home / "Mail" / "Work" / "new").iterdir())
        self.assertTrue(flagged.name.endswith("F"))
        # Maildir files use local line ends; mbsync may add its own X-TUID header.
        local = flagged.read_bytes()
        self.assertIn(b"\nSubject: work\n", local)
        self.assertTrue(local.endswith(b"\n\nHello.\n"))

        # Locally: read the first, delete the second, write a new one in Work.
        cur = home / "Mail" / "INBOX" / "cur"
        pulled[0].rename(cur / (pulled[0].name + "S"))
        pulled[1].rename(cur / (pulled[1].name + "T"))
        (home / "Mail" / "Work" / "new" / "1.local").write_bytes(simple_message("from laptop"))
        second = await self.in_thread(self.sync, home, rc)
        self.assertEqual(second.returncode, 0, second.stderr)

        metas = await inbox.metadata(await inbox.uids())
        self.assertEqual([(m.uid, "\\Seen" in m.flags) for m in metas], [(1, True), (3, False)])
        uids = await work.uids()
        self.assertEqual(len(uids), 2)
        uploaded = await (await work.open_message(uids[1])).read()
        self.assertIn(b"\r\nSubject: from laptop\r\n", uploaded)
        self.assertTrue(uploaded.endswith(b"\r\n\r\nHello.\r\n"))
