"""
mutt, the Debian mail client, against the server: open INBOX, read a
message, save it to another folder, delete it, and sync - as a user would.
mutt runs in a real terminal (tmux) and is driven by keystrokes it is given
at start-up, so it exits by itself when done.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from harness import IMAPServerTestCase, on_every_store
from tests_messages import simple_message
from twisted.internet import reactor, task

from twisted_mailhub.model import AppendRequest

MUTT = shutil.which("mutt")
TMUX = shutil.which("tmux")


@on_every_store
class MuttTests(IMAPServerTestCase):
    if not (MUTT and TMUX):
        skip = "mutt and tmux are needed (the CI script installs both)"

    async def test_read_save_delete(self) -> None:
        store = await self.backend.open_store("alice")
        inbox = await store.get_mailbox("INBOX")
        await inbox.append([AppendRequest(simple_message("Hello from Bob", "Hi Alice,"))])
        await store.create_mailbox("Saved")

        home = os.path.abspath(self.mktemp())
        os.makedirs(home)
        rc = os.path.join(home, "muttrc")
        with open(rc, "w") as f:
            f.write(
                "set imap_user=alice\nset imap_pass=wonderland\n"
                f"set folder=imap://127.0.0.1:{self.port}/\nset spoolfile=+INBOX\n"
                "set ssl_starttls=no\nset ssl_force_tls=no\nset imap_idle=no\n"
                "set confirmappend=no\nset delete=yes\nset move=no\nset mark_old=no\n"
                "set header_cache=\nset message_cachedir=\n"
            )
        keys = "<display-message><exit><save-message>=Saved<enter><sync-mailbox><quit>"
        socket_name = "mailhub-test-%d" % os.getpid()
        env = dict(os.environ, HOME=home, TERM="xterm")
        subprocess.run(
            [TMUX, "-L", socket_name, "new-session", "-d", "-x", "120", "-y", "30",
             f"{MUTT} -n -F {rc} -e 'push \"{keys}\"'"],
            check=True, env=env)
        self.addCleanup(subprocess.run, [TMUX, "-L", socket_name, "kill-server"],
                        stderr=subprocess.DEVNULL)
        # Wait (bounded) for mutt to finish and its terminal to close.
        for _ in range(600):
            alive = subprocess.run([TMUX, "-L", socket_name, "has-session"],
                                   stderr=subprocess.DEVNULL).returncode == 0
            if not alive:
                break
            await task.deferLater(reactor, 0.05, lambda: None)
        self.assertFalse(alive, "mutt did not finish")

        saved = await store.get_mailbox("Saved")
        self.assertEqual((await inbox.status()).messages, 0)
        uids = await saved.uids()
        self.assertEqual(len(uids), 1)
        [meta] = await saved.metadata(uids)
        # It was read before it was saved, and the copy keeps that.
        self.assertIn("\\Seen", meta.flags)
        content = await (await saved.open_message(uids[0])).read()
        self.assertEqual(content, simple_message("Hello from Bob", "Hi Alice,"))
