"""
The ``mailhub`` command, run as a process against a temporary SQLite store;
the accounts it writes are then used to log in to a real server.
"""

from __future__ import annotations

import imaplib
import stat
import subprocess
import sys

import pytest
from test_plugin import DEADLINE, REPO, imap_login, running_twistd


def mailhub(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "twisted_mailhub.cli", *args],
        cwd=REPO,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )


@pytest.fixture
def store(tmp_path) -> str:
    return f"sqlite:{tmp_path / 'accounts.sqlite'}"


def test_adduser_and_users(store):
    assert mailhub("users", "--store", store).stdout == ""
    for name in ("bob", "alice"):
        result = mailhub("adduser", name, "--password", "pw-" + name, "--store", store)
        assert result.returncode == 0, result.stderr
    listed = mailhub("users", "--store", store)
    assert listed.returncode == 0, listed.stderr
    assert sorted(listed.stdout.split()) == ["alice", "bob"]


def test_adduser_twice_fails(store):
    assert mailhub("adduser", "bob", "--password", "x", "--store", store).returncode == 0
    again = mailhub("adduser", "bob", "--password", "y", "--store", store)
    assert again.returncode == 1
    assert "already exists" in again.stderr


def test_deluser(store):
    mailhub("adduser", "bob", "--password", "x", "--store", store)
    mailhub("adduser", "carol", "--password", "x", "--store", store)
    assert mailhub("deluser", "bob", "--store", store).returncode == 0
    assert mailhub("users", "--store", store).stdout.split() == ["carol"]
    missing = mailhub("deluser", "bob", "--store", store)
    assert missing.returncode == 1
    assert "no such user" in missing.stderr


def test_passwd_of_unknown_user_fails(store):
    result = mailhub("passwd", "nobody", "--password", "x", "--store", store)
    assert result.returncode == 1
    assert "no such user" in result.stderr


def test_accounts_need_an_sql_store():
    result = mailhub("users", "--store", "memory:")
    assert result.returncode == 2
    assert "SQL store" in result.stderr


def test_unknown_scheme_is_refused(store):
    result = mailhub("adduser", "bob", "--password", "x", "--scheme", "ROT13", "--store", store)
    assert result.returncode == 1
    assert "ROT13" in result.stderr
    assert mailhub("users", "--store", store).stdout == ""


def test_empty_password_from_stdin_is_refused(store):
    result = mailhub("adduser", "bob", "--store", store, stdin="\n")
    assert result.returncode == 1
    assert "empty password" in result.stderr


def test_server_authenticates_accounts_the_command_manages(tmp_path, store):
    assert mailhub("adduser", "bob", "--store", store, stdin="first secret\n").returncode == 0
    assert mailhub("adduser", "eve", "--password", "apple", "--scheme", "SHA512-CRYPT",
                   "--store", store).returncode == 0
    listen = ("--imap", "tcp:0:interface=127.0.0.1")
    with running_twistd(tmp_path, "--store", store, *listen) as ports:
        port = ports["IMAP"]
        assert imap_login(port, "bob", "first secret") == [b"0"]
        assert imap_login(port, "eve", "apple") == [b"0"]

        result = mailhub("passwd", "bob", "--password", "second secret", "--store", store)
        assert result.returncode == 0, result.stderr
        assert imap_login(port, "bob", "second secret") == [b"0"]
        with imaplib.IMAP4("127.0.0.1", port, timeout=DEADLINE) as client:
            with pytest.raises(imaplib.IMAP4.error):
                client.login("bob", "first secret")

        assert mailhub("deluser", "eve", "--store", store).returncode == 0
        with imaplib.IMAP4("127.0.0.1", port, timeout=DEADLINE) as client:
            with pytest.raises(imaplib.IMAP4.error):
                client.login("eve", "apple")


def test_gencert(tmp_path):
    from cryptography import x509

    from twisted_mailhub.auth.tls import make_tls_options

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    result = mailhub("gencert", "--cert", str(cert), "--key", str(key),
                     "--hostname", "mail.example.org", "--hostname", "192.0.2.7")
    assert result.returncode == 0, result.stderr
    loaded = x509.load_pem_x509_certificate(cert.read_bytes())
    sans = loaded.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["mail.example.org"]
    assert [str(a) for a in sans.get_values_for_type(x509.IPAddress)] == ["192.0.2.7"]
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert make_tls_options(cert, key) is not None


def test_gencert_needs_both_files(tmp_path):
    result = mailhub("gencert", "--cert", str(tmp_path / "cert.pem"))
    assert result.returncode == 2
    assert "--key" in result.stderr
