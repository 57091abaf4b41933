"""
Dovecot beside twisted_mailhub: a private instance on loopback, holding the
same generated messages.

L{running} writes a configuration into a temporary directory (its own
base_dir, a Maildir per user under it, a passwd-file with a plaintext
password, no TLS, loopback listeners on free ports), writes the generated
messages straight into the Maildir (C{cur/}, flags in the file names,
INTERNALDATE as the file's mtime, as Dovecot's own delivery would leave
them), runs C{dovecot -F -c CONFIG} as a child, lets Dovecot build its
index with one SELECT of each mailbox, and stops it at the end.

When the benchmark runs as root, mail processes run as C{nobody} and login
processes as C{dovenull} (as Debian's package sets up); otherwise every
process runs as the invoking user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from typing import Callable, Iterator

from benchmarks.figures import Target, pss
from benchmarks.messages import EXTRA_MESSAGES, extra_mailbox_names, generate

_FLAG_LETTERS = {"\\Draft": "D", "\\Flagged": "F", "\\Answered": "R", "\\Seen": "S",
                 "\\Deleted": "T"}


def version() -> str | None:
    """C{dovecot --version}, or C{None} when Dovecot is not installed."""
    binary = shutil.which("dovecot")
    if binary is None:
        return None
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def _die_with_parent() -> None:
    """In the child: ask Linux for SIGTERM when the benchmark exits (no-op elsewhere)."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config(root: str, imap: int, pop3: int, idle: int, mail_user: str,
            login_user: str, internal_user: str) -> str:
    uid = pwd.getpwnam(mail_user).pw_uid
    limit = idle + 500
    return f"""\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap pop3
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {internal_user}
default_login_user = {login_user}
first_valid_uid = {min(uid, 500)}
mail_location = maildir:{root}/mail/%u
mail_max_userip_connections = {limit}
default_process_limit = {limit}
default_client_limit = {limit}
default_vsz_limit = 1G
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={mail_user} gid={pwd.getpwnam(mail_user).pw_gid} home={root}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap}
  }}
  inet_listener imaps {{
    port = 0
  }}
  service_count = 0
  process_min_avail = 1
  client_limit = {limit}
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {pop3}
  }}
  inet_listener pop3s {{
    port = 0
  }}
  service_count = 0
  client_limit = {limit}
}}
service imap {{
  process_limit = {limit}
}}
service anvil {{
  client_limit = {limit * 4}
}}
service auth {{
  client_limit = {limit * 3}
}}
"""


def fill_maildir(path: str, first: int, count: int, seed: int, user: str, uid: int,
                 gid: int) -> None:
    """Write generated messages C{first} to C{first + count - 1} into the Maildir C{path}."""
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(path, sub), exist_ok=True)
    for i in range(first, first + count):
        m = generate(i, seed, user)
        letters = "".join(sorted(_FLAG_LETTERS[f] for f in m.flags))
        stamp = int(m.internaldate.timestamp())
        name = f"{1_600_000_000 + i}.M{i:07d}P1.bench,S={len(m.content)}:2,{letters}"
        file = os.path.join(path, "cur", name)
        with open(file, "wb") as f:
            f.write(m.content)
        os.utime(file, (stamp, stamp))
    for dirpath, dirnames, filenames in os.walk(path):
        os.chown(dirpath, uid, gid)
        for name in filenames:
            os.chown(os.path.join(dirpath, name), uid, gid)


def _children() -> dict[int, int]:
    """Every process's parent, C{{pid: ppid}}."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            fields = stat.rpartition(")")[2].split()
            parents[int(entry)] = int(fields[1])
    return parents


def _tree(root: int) -> list[int]:
    parents = _children()
    tree, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, parent in parents.items() if parent in frontier]
        tree += frontier
    return tree


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def _wait_listening(proc: subprocess.Popen, port: int, logfile: str, deadline: float) -> None:
    """Wait until Dovecot accepts connections; raise with its log if it exits or hangs."""
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                try:
                    with open(logfile, errors="replace") as f:
                        tail = f.read()[-2000:]
                except OSError:
                    tail = ""
                raise RuntimeError(f"Dovecot did not start listening:\n{tail}")
            time.sleep(0.05)


@contextmanager
def running(n: int, seed: int, user: str, password: str, log: Callable[[str], None],
            idle: int = 10_000) -> Iterator[Target]:
    """A Dovecot holding the N generated messages (and extra mailboxes) of C{user}."""
    root = tempfile.mkdtemp(prefix="mailhub-bench-dovecot-")
    os.chmod(root, 0o755)
    if os.geteuid() == 0:
        mail_user, login_user, internal_user = "nobody", "dovenull", "dovecot"
    else:
        mail_user = login_user = internal_user = pwd.getpwuid(os.geteuid()).pw_name
    account = pwd.getpwnam(mail_user)
    imap, pop3 = _free_port(), _free_port()
    config = os.path.join(root, "dovecot.conf")
    proc = None
    try:
        with open(config, "w") as f:
            f.write(_config(root, imap, pop3, idle, mail_user, login_user, internal_user))
        with open(os.path.join(root, "passwd"), "w") as f:
            f.write(f"{user}:{password}::::::\n")
        os.chmod(os.path.join(root, "passwd"), 0o644)
        for sub in ("mail", "home", "home/" + user):
            os.makedirs(os.path.join(root, sub), exist_ok=True)
        os.chown(os.path.join(root, "home", user), account.pw_uid, account.pw_gid)
        log(f"Dovecot N={n}: writing the Maildir")
        maildir = os.path.join(root, "mail", user)
        fill_maildir(maildir, 0, n, seed, user, account.pw_uid, account.pw_gid)
        for k, name in enumerate(extra_mailbox_names()):
            folder = os.path.join(maildir, "." + name)
            fill_maildir(folder, n + k * EXTRA_MESSAGES, EXTRA_MESSAGES, seed, user,
                         account.pw_uid, account.pw_gid)
            open(os.path.join(folder, "maildirfolder"), "w").close()
        os.chown(os.path.join(root, "mail"), account.pw_uid, account.pw_gid)
        logfile = os.path.join(root, "dovecot.log")
        with open(logfile, "ab") as errors:
            proc = subprocess.Popen(["dovecot", "-F", "-c", config], stdout=subprocess.DEVNULL,
                                    stderr=errors, preexec_fn=_die_with_parent)
        _wait_listening(proc, imap, logfile, time.monotonic() + 60)
        master = proc.pid

        def session_pid() -> int:
            deadline = time.monotonic() + 10
            while True:
                imaps = [p for p in _tree(master) if _comm(p) == "imap"]
                if len(imaps) == 1:
                    return imaps[0]
                if time.monotonic() > deadline:
                    raise RuntimeError(f"expected one Dovecot imap process, found {imaps}")
                time.sleep(0.05)

        target = Target("Dovecot", "127.0.0.1", imap, pop3, user, password, session_pid,
                        lambda: sum(pss(p) for p in _tree(master)))
        log(f"Dovecot N={n}: indexing")
        client = target.imap()
        client.command(b"SELECT INBOX")
        for name in extra_mailbox_names():
            client.command(b"SELECT " + name.encode())
        client.close()
        yield target
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(root, ignore_errors=True)
