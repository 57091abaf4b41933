"""
fetchmail, a widely used POP3 client, against the server: fetching with
and without --keep, delivering to a file through --mda.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from pop3_harness import POP3ServerTestCase, message
from twisted_mailhub.auth.tls import generate_self_signed, make_tls_options

FETCHMAIL = shutil.which("fetchmail")


class FetchmailTests(POP3ServerTestCase):
    if FETCHMAIL is None:
        skip = "fetchmail is not installed"

    def tls_options(self):
        self.home = os.path.abspath(self.mktemp())
        os.makedirs(self.home)
        self.cert = os.path.join(self.home, "cert.pem")
        key = os.path.join(self.home, "key.pem")
        generate_self_signed(self.cert, key, hostnames=("localhost", "127.0.0.1"))
        return make_tls_options(self.cert, key)

    async def setUp(self) -> None:
        await super().setUp()
        self.rcfile = os.path.join(self.home, "fetchmailrc")
        # fetchmail upgrades with STLS by default and checks the certificate.
        with open(self.rcfile, "w") as f:
            f.write(f'poll localhost service {self.port} protocol pop3 '
                    f'user "alice" password "wonderland" '
                    f'sslcertck sslcertfile "{self.cert}"\n')
        os.chmod(self.rcfile, 0o600)  # fetchmail refuses a readable rc file
        self.mbox = os.path.join(self.home, "delivered.mbox")
        await self.deliver(message("first"), message("second", ".leading dot\r\nmore"),
                           message("third"))

    def fetchmail(self, *options: str) -> subprocess.CompletedProcess:
        command = [FETCHMAIL, "-f", self.rcfile, "--nodetach", "--all",
                   "--pidfile", os.path.join(self.home, "fetchmail.pid"),
                   "--mda", f"cat >> {self.mbox}", *options]
        env = dict(os.environ, HOME=self.home)
        return subprocess.run(command, env=env, capture_output=True, timeout=60)

    def delivered(self) -> bytes:
        with open(self.mbox, "rb") as f:
            return f.read()

    async def test_fetch_with_keep(self) -> None:
        done = await self.in_thread(self.fetchmail, "--keep", "--verbose")
        self.assertEqual(done.returncode, 0, done.stderr)
        transcript = done.stdout + done.stderr
        self.assertIn(b"POP3> STLS", transcript)
        self.assertIn(b"POP3< +OK alice has 3 messages", transcript)
        delivered = self.delivered()
        self.assertEqual(delivered.count(b"\nSubject: "), 3)
        # Un-stuffed by fetchmail: the dot-stuffing was byte-correct.
        self.assertIn(b"\n.leading dot\n", delivered.replace(b"\r\n", b"\n"))
        self.assertEqual(len(await (await self.inbox()).uids()), 3)

    async def test_fetch_without_keep_deletes_on_the_server(self) -> None:
        done = await self.in_thread(self.fetchmail, "--nokeep")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(self.delivered().count(b"\nSubject: "), 3)
        self.assertEqual(await (await self.inbox()).uids(), [])
        again = await self.in_thread(self.fetchmail, "--nokeep")
        # fetchmail's exit status 1 means "no mail".
        self.assertEqual(again.returncode, 1, again.stderr)
        self.assertEqual(self.delivered().count(b"\nSubject: "), 3)

