"""
``mailhub quota``, run as a process: it shows a user's usage and limits and
sets the limits an SQL store keeps, and a server started on that store then
refuses what goes over them.
"""

from __future__ import annotations

import imaplib
import subprocess
import sys

import pytest
from test_plugin import DEADLINE, REPO, running_twistd
from tests_messages import simple_message


def mailhub(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "twisted_mailhub.cli", *args],
        cwd=REPO, input=stdin, capture_output=True, text=True, timeout=DEADLINE,
    )


OPEN_MBOX_USER = """
import sys
from twisted.internet import defer, task
from twisted_mailhub.backends.mbox import MboxBackend

async def main(reactor):
    backend = MboxBackend(sys.argv[1])
    await backend.open_store(sys.argv[2])
    await backend.close()

task.react(lambda reactor: defer.ensureDeferred(main(reactor)))
"""


@pytest.fixture
def store(tmp_path) -> str:
    url = f"sqlite:{tmp_path / 'mail.sqlite'}"
    added = mailhub("adduser", "bob", "--password", "builder", "--store", url)
    assert added.returncode == 0, added.stderr
    return url


def test_show_and_set_limits_kept_by_the_store(tmp_path, store):
    config = tmp_path / "mailhub.toml"
    config.write_text(f'store = "{store.replace(chr(92), chr(92) * 2)}"\n'
                      'quota-storage = "1M"\n')
    shown = mailhub("quota", "bob", "--config", str(config))
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines() == [
        "storage: 0 octets of 1048576 (1M), server default",
        "messages: 0 of unlimited, server default",
    ]
    changed = mailhub("quota", "bob", "--storage", "2K", "--messages", "10",
                      "--config", str(config))
    assert changed.returncode == 0, changed.stderr
    assert changed.stdout.splitlines() == [
        "storage: 0 octets of 2048 (2K), set with 'mailhub quota'",
        "messages: 0 of 10, set with 'mailhub quota'",
    ]
    back = mailhub("quota", "bob", "--storage", "default", "--messages", "unlimited",
                   "--config", str(config))
    assert back.stdout.splitlines() == [
        "storage: 0 octets of 1048576 (1M), server default",
        "messages: 0 of unlimited, set with 'mailhub quota'",
    ]


def test_unknown_users_and_bad_values(store):
    missing = mailhub("quota", "nobody", "--store", store)
    assert missing.returncode == 1
    assert "no such user: nobody" in missing.stderr
    missing = mailhub("quota", "nobody", "--messages", "3", "--store", store)
    assert missing.returncode == 1
    bad = mailhub("quota", "bob", "--storage", "lots", "--store", store)
    assert bad.returncode == 2
    assert "--storage: not a size" in bad.stderr
    memory = mailhub("quota", "bob", "--store", "memory:")
    assert memory.returncode == 2


def test_stores_without_account_limits_take_them_from_the_configuration(tmp_path):
    config = tmp_path / "mailhub.toml"
    mail = tmp_path / "mail"
    mail.mkdir()
    # bob's mail exists once the store was opened for him.
    subprocess.run([sys.executable, "-c", OPEN_MBOX_USER, str(mail), "bob"], cwd=REPO,
                   check=True, timeout=DEADLINE)
    config.write_text(f'store = "mbox:{mail}"\nquota-messages = 100\n'
                      '[quota.users.bob]\nstorage = "5G"\n')
    shown = mailhub("quota", "bob", "--config", str(config))
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines() == [
        "storage: 0 octets of 5368709120 (5G), configuration file",
        "messages: 0 of 100, server default",
    ]
    refused = mailhub("quota", "bob", "--storage", "1G", "--config", str(config))
    assert refused.returncode == 1
    assert "[quota.users.bob]" in refused.stderr


def test_the_server_refuses_what_goes_over_the_limit_set(tmp_path, store):
    assert mailhub("quota", "bob", "--messages", "1", "--store", store).returncode == 0
    with running_twistd(tmp_path, "--imap", "tcp:0:interface=127.0.0.1",
                        "--store", store) as ports:
        with imaplib.IMAP4("127.0.0.1", ports["IMAP"], timeout=DEADLINE) as client:
            client.login("bob", "builder")
            first = client.append("INBOX", None, None, simple_message("first"))
            second = client.append("INBOX", None, None, simple_message("second"))
            quota = client.getquotaroot("INBOX")
            client.logout()
    assert first[0] == "OK"
    assert second[0] == "NO" and second[1][0].startswith(b"[OVERQUOTA] ")
    assert quota[1][1] == [b'"" (MESSAGE 1 1)']
    shown = mailhub("quota", "bob", "--store", store)
    assert shown.stdout.splitlines()[1] == "messages: 1 of 1, set with 'mailhub quota'"
