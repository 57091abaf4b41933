"""
A private Dovecot on a loopback port for the migration tests.

It reads only the configuration written here (C{dovecot -F -c FILE}): its
own base and state directories, a passwd-file with one user, Maildir mail
under a temporary directory, no TLS.  Nothing of the system's Dovecot (the
service the package installs, its configuration, its ports 143 and 993) is
used or touched, so that one may be running or not.

As root, mail processes run as C{nobody} and login processes as
C{dovenull}, as Debian's package sets up; otherwise as the invoking user.
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
from typing import Iterator

import pytest

DOVECOT = shutil.which("dovecot") or next(
    (path for path in ("/usr/sbin/dovecot",) if os.access(path, os.X_OK)), None)


def require_dovecot() -> str:
    """
    The dovecot binary.  CI installs it (.ci/run), so there its absence
    fails the test; elsewhere the test is skipped, saying why.
    """
    if DOVECOT is None:
        message = "Dovecot is needed: apt-get install dovecot-imapd (as .ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return DOVECOT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config(root: str, port: int, mail_user: str, login_user: str, internal_user: str) -> str:
    account = pwd.getpwnam(mail_user)
    return f"""\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {internal_user}
default_login_user = {login_user}
first_valid_uid = {min(account.pw_uid, 500)}
mail_location = maildir:{root}/mail/%u
namespace inbox {{
  inbox = yes
  separator = .
  mailbox Sent {{
    special_use = \\Sent
  }}
  mailbox Trash {{
    special_use = \\Trash
  }}
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={mail_user} gid={account.pw_gid} home={root}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"""


@contextmanager
def running_dovecot(user: str, password: str) -> Iterator[int]:
    """Run a private Dovecot with one empty account; yield its IMAP port."""
    binary = require_dovecot()
    # Not under pytest's temporary directory: mail processes may run as
    # another user, who must be able to reach the mail.
    root = tempfile.mkdtemp(prefix="mailhub-sync-dovecot-")
    os.chmod(root, 0o755)
    if os.geteuid() == 0:
        mail_user, login_user, internal_user = "nobody", "dovenull", "dovecot"
    else:
        mail_user = login_user = internal_user = pwd.getpwuid(os.geteuid()).pw_name
    account = pwd.getpwnam(mail_user)
    port = _free_port()
    config = os.path.join(root, "dovecot.conf")
    process = None
    try:
        with open(config, "w") as f:
            f.write(_config(root, port, mail_user, login_user, internal_user))
        with open(os.path.join(root, "passwd"), "w") as f:
            f.write(f"{user}:{password}::::::\n")
        for sub in ("mail", "home", f"home/{user}"):
            os.makedirs(os.path.join(root, sub))
            os.chown(os.path.join(root, sub), account.pw_uid, account.pw_gid)
        log = os.path.join(root, "dovecot.log")
        process = subprocess.Popen([binary, "-F", "-c", config], stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    text = open(log, errors="replace").read() if os.path.exists(log) else ""
                    pytest.fail(f"Dovecot did not start listening:\n{text[-3000:]}")
                time.sleep(0.05)
        yield port
    finally:
        if process is not None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(root, ignore_errors=True)
