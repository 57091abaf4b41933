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


class MbsyncTLSTests(IMAPServerTestCase):
    """
    mbsync over STARTTLS and over implicit TLS, checking the certificate:
    a finished sync ends by itself (the server closes TLS after LOGOUT).
    """

    if not MBSYNC:
        skip = "mbsync is needed (the CI script installs isync)"

    def tls_options(self):
        from twisted_mailhub.auth.tls import generate_self_signed, make_tls_options

        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        self.cert = os.path.join(directory, "cert.pem")
        key = os.path.join(directory, "key.pem")
        generate_self_signed(self.cert, key, hostnames=("localhost", "127.0.0.1"))
        return make_tls_options(self.cert, key)

    async def setUp(self) -> None:
        await super().setUp()
        from twisted.internet import reactor
        from twisted.protocols.tls import TLSMemoryBIOFactory

        wrapped = TLSMemoryBIOFactory(self.factory.tls_options, False, self.factory)
        self.tls_port = reactor.listenTCP(0, wrapped, interface="127.0.0.1")
        self.addCleanup(self.tls_port.stopListening)
        store = await self.backend.open_store("alice")
        inbox = await store.get_mailbox("INBOX")
        await inbox.append([AppendRequest(simple_message(f"secret {i}")) for i in range(2)])

    def config(self, home: Path, port: int, tls_type: str) -> Path:
        rc = home / "mbsyncrc"
        rc.write_text(
            f"IMAPAccount hub\nHost 127.0.0.1\nPort {port}\nUser alice\n"
            f"Pass wonderland\nSSLType {tls_type}\nCertificateFile {self.cert}\n"
            "AuthMechs LOGIN\n\n"
            "IMAPStore remote\nAccount hub\n\n"
            f"MaildirStore local\nPath {home}/Mail/\nInbox {home}/Mail/INBOX\n\n"
            "Channel hub\nFar :remote:\nNear :local:\nPatterns INBOX\nCreate Near\n"
            "SyncState *\n"
        )
        return rc

    async def sync_over(self, port: int, tls_type: str) -> None:
        home = Path(os.path.abspath(self.mktemp()))
        (home / "Mail").mkdir(parents=True)
        rc = self.config(home, port, tls_type)

        def run():
            # Bounded: before the fix mbsync waited for the server's close.
            return subprocess.run([MBSYNC, "-c", str(rc), "hub"], capture_output=True,
                                  text=True, env=dict(os.environ, HOME=str(home)), timeout=30)

        result = await self.in_thread(run)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(len(list((home / "Mail" / "INBOX" / "new").iterdir())), 2)

    async def test_sync_over_starttls_ends_by_itself(self) -> None:
        await self.sync_over(self.port, "STARTTLS")

    async def test_sync_over_imaps_ends_by_itself(self) -> None:
        await self.sync_over(self.tls_port.getHost().port, "IMAPS")


class MbsyncCompressionTests(IMAPServerTestCase):
    """
    mbsync turns COMPRESS=DEFLATE on by itself when the server offers it:
    a sync both ways, with a message of some megabytes and pipelined
    fetches, runs through the compressed stream.
    """

    if not MBSYNC:
        skip = "mbsync is needed (the CI script installs isync)"

    async def setUp(self) -> None:
        await super().setUp()
        from twisted_mailhub.imap.protocol import IMAPServerProtocol

        self.compressed: list[bool] = []
        compressed = self.compressed

        class Recording(IMAPServerProtocol):
            def connectionLost(self, reason=None) -> None:
                compressed.append(self.compressing)
                super().connectionLost(reason)

        self.factory.protocol = Recording

    async def test_sync_through_compression(self) -> None:
        import base64

        big = (b"From: carol@example.net\r\nTo: alice@example.org\r\nSubject: photos\r\n"
               b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"
               b"\r\n" + base64.encodebytes(os.urandom(3 * 2**20)).replace(b"\n", b"\r\n"))
        store = await self.backend.open_store("alice")
        inbox = await store.get_mailbox("INBOX")
        await inbox.append([AppendRequest(simple_message(f"note {i}")) for i in range(40)]
                           + [AppendRequest(big)])

        home = Path(os.path.abspath(self.mktemp()))
        (home / "Mail").mkdir(parents=True)
        rc = home / "mbsyncrc"
        rc.write_text(
            f"IMAPAccount hub\nHost 127.0.0.1\nPort {self.port}\nUser alice\n"
            "Pass wonderland\nSSLType None\nAuthMechs LOGIN\n\n"
            "IMAPStore remote\nAccount hub\n\n"
            f"MaildirStore local\nPath {home}/Mail/\nInbox {home}/Mail/INBOX\n\n"
            "Channel hub\nFar :remote:\nNear :local:\nPatterns INBOX\nCreate Near\n"
            "SyncState *\n"
        )

        def sync():
            # -Dn prints the protocol as mbsync sees it (inflated).
            return subprocess.run([MBSYNC, "-Dn", "-c", str(rc), "hub"], capture_output=True,
                                  text=True, env=dict(os.environ, HOME=str(home)), timeout=60)

        first = await self.in_thread(sync)
        self.assertEqual(first.returncode, 0, first.stderr)
        self.assertIn("COMPRESS DEFLATE\n", first.stdout)
        self.assertIn(" OK DEFLATE active\n", first.stdout)
        pulled = sorted((home / "Mail" / "INBOX" / "new").iterdir())
        self.assertEqual(len(pulled), 41)
        [photos] = [p for p in pulled if b"Subject: photos" in p.read_bytes()]
        self.assertTrue(photos.read_bytes().endswith(big.split(b"\r\n\r\n", 1)[1]
                                                     .replace(b"\r\n", b"\n")))

        (home / "Mail" / "INBOX" / "new" / "1.local").write_bytes(simple_message("from laptop"))
        second = await self.in_thread(sync)
        self.assertEqual(second.returncode, 0, second.stderr)
        uids = await inbox.uids()
        self.assertEqual(len(uids), 42)
        uploaded = await (await inbox.open_message(uids[-1])).read()
        self.assertIn(b"\r\nSubject: from laptop\r\n", uploaded)
        # Both syncs ran compressed from the server's side too.
        self.assertEqual(self.compressed, [True, True])
