"""
The shipped fail2ban filter against the log of a real ``twistd mailhub``:
failed IMAP and POP3 logins (LOGIN, AUTHENTICATE, USER/PASS, AUTH), each
from its own loopback address, must be matched exactly, each with its own
address; successful logins, and user names built to forge a line or a
field, must not be.  The jail is checked by fail2ban's own configuration test.
"""

from __future__ import annotations

import base64
import imaplib
import poplib
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from test_plugin import DEADLINE, REPO, running_twistd, wait_for

FILTER = REPO / "examples" / "fail2ban" / "filter.d" / "mailhub.conf"
JAIL = REPO / "examples" / "fail2ban" / "jail.d" / "mailhub.conf"
LOOPBACK = "tcp:0:interface=127.0.0.1"

needs_fail2ban = pytest.mark.skipif(
    shutil.which("fail2ban-regex") is None,
    reason="fail2ban (Debian package) is needed; the CI script installs it")


class IMAPFrom(imaplib.IMAP4):
    """imaplib connecting from a chosen local address."""

    def __init__(self, source: str, port: int) -> None:
        self.source = source
        super().__init__("127.0.0.1", port, timeout=DEADLINE)

    def _create_socket(self, timeout):
        return socket.create_connection((self.host, self.port), timeout,
                                        source_address=(self.source, 0))


class POP3From(poplib.POP3):
    """poplib connecting from a chosen local address."""

    def __init__(self, source: str, port: int) -> None:
        self.source = source
        super().__init__("127.0.0.1", port, timeout=DEADLINE)

    def _create_socket(self, timeout):
        return socket.create_connection((self.host, self.port), timeout,
                                        source_address=(self.source, 0))


def matched(log: Path, token: str = "ip", filter_spec: str = str(FILTER)) -> list[str]:
    """What fail2ban-regex reports (C{token}: ip, user) for each line the filter matches."""
    result = subprocess.run(["fail2ban-regex", "-o", token, str(log), filter_spec],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.splitlines()


@needs_fail2ban
def test_the_filter_matches_exactly_the_failed_logins(tmp_path):
    with running_twistd(tmp_path, "--store", "memory:", "--user", "alice:wonderland",
                        "--imap", LOOPBACK, "--pop3", LOOPBACK,
                        "--max-connections-per-ip", "2") as ports:
        imap, pop3 = ports["IMAP"], ports["POP3"]

        # Successful logins: never a match.
        for source in ("127.0.0.1", "127.0.0.20"):
            client = IMAPFrom(source, imap)
            client.login("alice", "wonderland")
            client.logout()
            pop = POP3From(source, pop3)
            pop.user("alice")
            pop.pass_("wonderland")
            pop.quit()

        # One failure per address, so that no failure delay applies and
        # each line must carry its own address.
        client = IMAPFrom("127.0.0.11", imap)
        with pytest.raises(imaplib.IMAP4.error):
            client.login("bob", "guess")
        client.logout()

        # A user name, sent as a literal, that tries to end the line and
        # write a second one naming another address.
        forged = (b"evil\r\n2030-01-01T00:00:00+0000 [twisted_mailhub.auth#info] "
                  b"authentication failed: user=<x> rip=10.0.0.66 proto=imap mech=LOGIN")
        with socket.create_connection(("127.0.0.1", imap), timeout=DEADLINE,
                                      source_address=("127.0.0.12", 0)) as sock:
            stream = sock.makefile("rb")
            stream.readline()
            sock.sendall(b"a LOGIN {%d+}\r\n%s {5+}\r\nguess\r\n" % (len(forged), forged))
            assert b"AUTHENTICATIONFAILED" in stream.readline()
            sock.sendall(b"b LOGOUT\r\n")

        client = IMAPFrom("127.0.0.13", imap)
        with pytest.raises(imaplib.IMAP4.error):
            client.authenticate("PLAIN", lambda _: b"\0alice\0guess")
        client.logout()

        pop = POP3From("127.0.0.14", pop3)
        pop.user("alice")
        with pytest.raises(poplib.error_proto):
            pop.pass_("guess")
        pop.quit()

        # A POP3 user name with spaces and brackets that tries to add a field.
        pop = POP3From("127.0.0.15", pop3)
        pop.user("x> rip=10.0.0.77 proto=pop3 mech=USER")
        with pytest.raises(poplib.error_proto):
            pop.pass_("guess")
        pop.quit()

        pop = POP3From("127.0.0.16", pop3)
        with pytest.raises(poplib.error_proto):
            pop._shortcmd("AUTH PLAIN " + base64.b64encode(b"\0alice\0guess").decode())
        pop.quit()

        # The third connection from one address is turned away.
        held = [socket.create_connection(("127.0.0.1", imap), timeout=DEADLINE,
                                         source_address=("127.0.0.30", 0)) for _ in range(3)]
        try:
            assert b"Too many connections" in held[2].makefile("rb").readline()
        finally:
            for sock in held:
                sock.close()

        log = tmp_path / "twistd.log"
        wait_for(lambda: log.read_text(errors="replace").count("connection refused:") == 1,
                 "the refused connection to be logged", log=log)

    failed = ["127.0.0.11", "127.0.0.12", "127.0.0.13", "127.0.0.14", "127.0.0.15",
              "127.0.0.16"]
    assert matched(log) == failed
    users = matched(log, "user")
    assert users[0] == "bob" and users[3] == "alice"
    # The hostile names are there, made harmless: one field, no space.
    assert users[1].startswith("evil??2030-01-01T00:00:00+0000?[twisted_mailhub.auth#info]")
    assert users[4] == "x??rip=10.0.0.77?proto=pop3?mech=USER"
    assert all(" " not in user for user in users)
    # Refused connections count only in the aggressive mode.
    assert matched(log, filter_spec=f"{FILTER}[mode=aggressive]") == failed + ["127.0.0.30"]


@needs_fail2ban
def test_the_jail_passes_fail2bans_configuration_test(tmp_path):
    # fail2ban's configuration as installed, with the distribution's own
    # jails left out and ours added, reading a log that exists.
    config = tmp_path / "fail2ban"
    shutil.copytree("/etc/fail2ban", config)
    shutil.rmtree(config / "jail.d")
    (config / "jail.d").mkdir()
    shutil.copy(FILTER, config / "filter.d" / "mailhub.conf")
    log = tmp_path / "twistd.log"
    log.write_text("")
    jail = JAIL.read_text()
    assert "logpath  = /var/log/mailhub/twistd.log" in jail
    (config / "jail.d" / "mailhub.conf").write_text(
        jail.replace("/var/log/mailhub/twistd.log", str(log)))
    result = subprocess.run(["fail2ban-client", "-c", str(config), "--test"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    dump = subprocess.run(["fail2ban-client", "-c", str(config), "-d"],
                          capture_output=True, text=True, timeout=120)
    assert "['add', 'mailhub', 'auto']" in dump.stdout, dump.stdout + dump.stderr
    assert "['set', 'mailhub', 'maxretry', 5]" in dump.stdout


def test_the_operating_guide_shows_the_shipped_rules():
    guide = (REPO / "docs" / "operating.md").read_text()
    section = guide.split("## fail2ban", 1)[1]
    blocks = [block.split("```", 1)[0] for block in section.split("```ini\n")[1:]]
    assert len(blocks) == 2
    shipped = set(FILTER.read_text().splitlines()) | set(JAIL.read_text().splitlines())
    for line in "".join(blocks).splitlines():
        assert line in shipped, line
