"""
Real clients on what the admin commands write and import: mutt reads an
exported mbox file and Maildir (its own idea of each message's flags is
asked with its patterns), and an IMAP client idling on a running server is
told of mail that ``mailhub import`` adds meanwhile.
"""

from __future__ import annotations

import imaplib
import os
import re
import shutil
import subprocess
import time

import pytest
from admin_harness import (
    PASSWORD,
    Store,
    assert_same_mail,
    fetch_all,
    mailhub,
    ok,
    samples,
    write_mbox,
)
from test_plugin import DEADLINE, running_twistd

MUTT = shutil.which("mutt")
TMUX = shutil.which("tmux")
needs_mutt = pytest.mark.skipif(not (MUTT and TMUX),
                                reason="mutt and tmux are needed (the CI script installs both)")

#: mutt patterns and the samples (by number) each must match.
PATTERNS = {
    "all": ("~A", {1, 2, 3, 4, 5, 6}),
    "flagged": ("~F", {2}),
    "unread": ("~U", {3, 5}),
    "replied": ("~Q", {2}),
    "deleted": ("~D", {6}),
}


def mutt_matches(folder, home) -> dict[str, set[int]]:
    """
    Open C{folder} read-only in mutt (in a tmux terminal) and pipe the
    messages each of L{PATTERNS} matches to a file; return the sample
    numbers found in each.
    """
    home.mkdir(exist_ok=True)
    rc = home / "muttrc"
    rc.write_text(
        "set pipe_split=yes\nset pipe_decode=no\nset wait_key=no\nset quit=yes\n"
        "set delete=no\nset move=no\nset mark_old=no\nset confirmappend=no\n"
        "set header_cache=\nset mbox_type=mbox\nset sort=date-sent\n")
    keys = ""
    for name, (pattern, _) in PATTERNS.items():
        out = home / f"{name}.txt"
        keys += (f"<untag-pattern>~A<enter><tag-pattern>{pattern}<enter>"
                 f"<tag-prefix><pipe-message>grep -o mhtest-[0-9]* >> {out}<enter>")
    keys += "<quit>"
    socket_name = f"mailhub-admin-{os.getpid()}"
    env = dict(os.environ, HOME=str(home), TERM="xterm")
    subprocess.run(
        [TMUX, "-L", socket_name, "new-session", "-d", "-x", "150", "-y", "40",
         f"{MUTT} -n -R -F {rc} -f {folder} -e 'push \"{keys}\"'"],
        check=True, env=env)
    try:
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end:
            if subprocess.run([TMUX, "-L", socket_name, "has-session"],
                              stderr=subprocess.DEVNULL).returncode != 0:
                break
            time.sleep(0.05)
        else:
            screen = subprocess.run([TMUX, "-L", socket_name, "capture-pane", "-p"],
                                    capture_output=True, text=True).stdout
            pytest.fail("mutt did not finish:\n" + screen)
    finally:
        subprocess.run([TMUX, "-L", socket_name, "kill-server"], stderr=subprocess.DEVNULL)
    found = {}
    for name in PATTERNS:
        out = home / f"{name}.txt"
        text = out.read_text() if out.exists() else ""
        found[name] = {int(n) for n in re.findall(r"mhtest-(\d+)", text)}
    return found


@needs_mutt
@pytest.mark.parametrize("form", ["mbox", "maildir"])
def test_mutt_reads_what_export_writes(tmp_path, form):
    store = Store("sqlite", tmp_path)
    source = tmp_path / "in.mbox"
    write_mbox(source, samples())
    ok(mailhub("import", "alice", "--mbox", str(source), *store.args))
    target = tmp_path / ("out.mbox" if form == "mbox" else "out-maildir")
    ok(mailhub("export", "alice", f"--{form}", str(target), *store.args))

    found = mutt_matches(target, tmp_path / "home")
    assert found == {name: numbers for name, (_, numbers) in PATTERNS.items()}


@pytest.mark.parametrize("kind", ["sqlite", "mbox"])
def test_idling_client_sees_imported_mail(tmp_path, kind):
    store = Store(kind, tmp_path)
    messages = samples()
    source = tmp_path / "in.mbox"
    write_mbox(source, messages)
    with running_twistd(tmp_path, *store.server_args()) as ports:
        port = ports["IMAP"]
        with imaplib.IMAP4("127.0.0.1", port, timeout=DEADLINE) as client:
            client.login("alice", PASSWORD)
            typ, data = client.select("INBOX")
            assert (typ, data) == ("OK", [b"0"])
            client.send(b"I1 IDLE\r\n")
            assert client.readline().startswith(b"+")

            ok(mailhub("import", "alice", "--mbox", str(source), *store.args))

            exists = 0
            while exists < len(messages):
                line = client.readline()
                assert line, "the server closed the connection"
                match = re.match(rb"\* (\d+) EXISTS", line)
                if match:
                    exists = int(match.group(1))
            assert exists == len(messages)
            client.send(b"DONE\r\n")
            while not (line := client.readline()).startswith(b"I1 "):
                assert line
            assert line.startswith(b"I1 OK")
            client.logout()
        assert_same_mail(fetch_all(port, "alice", "INBOX"), messages)
