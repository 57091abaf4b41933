"""
The ``mailhub`` twistd plugin: discovery, ``--help``, and a real server
process that accepts logins and stops cleanly on SIGTERM.

The plugin file is copied into a temporary ``twisted/plugins`` directory put
on the path, the layout a non-editable install produces (the installed case
itself is exercised by ``.ci/run`` through the README's command).
"""

from __future__ import annotations

import imaplib
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parent.parent
PLUGIN_FILE = REPO / "plugins" / "mailhub.py"
LISTENING = re.compile(r"\b(IMAPS?|POP3S?) listening on ([0-9.]+):(\d+)")
DEADLINE = 30.0


def plugin_site(root: Path) -> Path:
    """Make C{root}/twisted/plugins/mailhub.py (no __init__.py) and return C{root}."""
    plugins = root / "twisted" / "plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    shutil.copy(PLUGIN_FILE, plugins / "mailhub.py")
    return root


def twistd_command(*args: str) -> list[str]:
    """The command running twistd with this interpreter."""
    run = "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"
    return [sys.executable, "-c", run, *args]


def subprocess_env(tmp_path: Path) -> dict[str, str]:
    """An environment where the repository's package and plugin are importable."""
    site = plugin_site(tmp_path / "site")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO), str(site), *filter(None, [env.get("PYTHONPATH")])]
    )
    env["PYTHONUNBUFFERED"] = "1"
    return env


def wait_for(condition, what: str, process: subprocess.Popen | None = None,
             log: Path | None = None):
    """Poll C{condition()} until it returns something true, within DEADLINE."""
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        result = condition()
        if result:
            return result
        if process is not None and process.poll() is not None:
            output = log.read_text(errors="replace") if log else ""
            pytest.fail(f"process exited ({process.returncode}) before {what}:\n{output}")
        time.sleep(0.05)
    output = log.read_text(errors="replace") if log else ""
    pytest.fail(f"timed out waiting for {what}:\n{output}")


@contextmanager
def running_twistd(tmp_path: Path, *mailhub_args: str) -> Iterator[dict[str, int]]:
    """
    Run C{twistd -n mailhub ARGS} in C{tmp_path}; yield C{{label: port}} of
    its listeners once all are listening; stop it with SIGTERM and check it
    shuts down cleanly.
    """
    log = tmp_path / "twistd.log"
    expected = sum(1 for a in mailhub_args
                   if a in ("--imap", "--imaps", "--pop3", "--pop3s")) or 1
    with open(log, "wb") as out:
        process = subprocess.Popen(
            twistd_command("--pidfile=", "-n", "mailhub", *mailhub_args),
            cwd=tmp_path,
            env=subprocess_env(tmp_path),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:

        def listening() -> dict[str, int] | None:
            found = LISTENING.findall(log.read_text(errors="replace"))
            if len(found) < expected:
                return None
            return {label: int(port) for label, _, port in found}

        yield wait_for(listening, "the server to listen", process, log)
    except BaseException:
        process.kill()
        process.wait()
        raise
    process.send_signal(signal.SIGTERM)
    try:
        status = process.wait(timeout=DEADLINE)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail("twistd did not stop on SIGTERM:\n" + log.read_text(errors="replace"))
    output = log.read_text(errors="replace")
    # twistd re-raises the signal after a clean shutdown, so it may report it.
    assert status in (0, -signal.SIGTERM), output
    assert "Server Shut Down." in output, output
    assert "Traceback" not in output, output


def stop_cleanly(process: subprocess.Popen, output: Path) -> None:
    """SIGTERM C{process}; check it exits with status 0 and logged no traceback."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        status = process.wait(timeout=DEADLINE)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    text = output.read_text(errors="replace")
    assert status == 0, text
    assert "Traceback" not in text, text


def imap_login(port: int, user: str, password: str) -> list[bytes]:
    """Log in over plain IMAP on 127.0.0.1; return the INBOX SELECT response."""
    with imaplib.IMAP4("127.0.0.1", port, timeout=DEADLINE) as client:
        typ, _ = client.login(user, password)
        assert typ == "OK"
        typ, data = client.select("INBOX")
        assert typ == "OK"
        client.logout()
        return data


def test_plugin_is_found_by_twisted(tmp_path, monkeypatch):
    import twisted.plugins
    from twisted.application.service import IServiceMaker
    from twisted.plugin import getPlugins

    from twisted_mailhub.config import MailhubOptions

    site = plugin_site(tmp_path)
    monkeypatch.setattr(
        twisted.plugins, "__path__", [*twisted.plugins.__path__, str(site / "twisted" / "plugins")]
    )
    makers = {maker.tapname: maker for maker in getPlugins(IServiceMaker, twisted.plugins)}
    assert "mailhub" in makers
    assert makers["mailhub"].options is MailhubOptions


def test_help_documents_every_option(tmp_path):
    result = subprocess.run(
        twistd_command("mailhub", "--help"),
        cwd=tmp_path,
        env=subprocess_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    assert result.returncode == 0, result.stderr
    for option in ("--imap=", "--imaps=", "--store=", "--user=", "--passwd=", "--tls-cert=",
                   "--tls-key=", "--allow-plaintext", "--max-literal=", "--config=",
                   "--pop3=", "--pop3s=", "--pop3-retr-seen"):
        assert option in result.stdout


def test_twistd_lists_mailhub(tmp_path):
    result = subprocess.run(
        twistd_command("--help"),
        cwd=tmp_path,
        env=subprocess_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    assert re.search(r"^\s+mailhub\s", result.stdout, re.MULTILINE), result.stdout


def test_usage_error_exits_nonzero(tmp_path):
    result = subprocess.run(
        twistd_command("--pidfile=", "-n", "mailhub", "--store", "memory:", "--imaps", "tcp:0"),
        cwd=tmp_path,
        env=subprocess_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    assert result.returncode != 0
    assert "--tls-cert" in result.stdout + result.stderr


def test_server_accepts_login_and_stops_on_sigterm(tmp_path):
    with running_twistd(
        tmp_path, "--store", "memory:", "--imap", "tcp:0:interface=127.0.0.1", "--user", "a:b"
    ) as ports:
        data = imap_login(ports["IMAP"], "a", "b")
        assert data == [b"0"]
        with imaplib.IMAP4("127.0.0.1", ports["IMAP"], timeout=DEADLINE) as client:
            with pytest.raises(imaplib.IMAP4.error):
                client.login("a", "wrong")
    log = (tmp_path / "twistd.log").read_text()
    assert "Trial users (kept in memory): a" in log
    assert not (tmp_path / "mailhub.sqlite").exists()


def test_tls_listeners(tmp_path):
    from twisted_mailhub.auth.tls import generate_self_signed

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    generate_self_signed(str(cert), str(key), hostnames=("localhost",))
    with running_twistd(
        tmp_path, "--store", "memory:", "--user", "a:b",
        "--imap", "tcp:0:interface=127.0.0.1", "--imaps", "tcp:0:interface=127.0.0.1",
        "--tls-cert", str(cert), "--tls-key", str(key),
    ) as ports:
        context = ssl.create_default_context(cafile=str(cert))
        context.check_hostname = False
        with imaplib.IMAP4_SSL("127.0.0.1", ports["IMAPS"], ssl_context=context,
                               timeout=DEADLINE) as client:
            assert client.login("a", "b")[0] == "OK"
            client.logout()
        with imaplib.IMAP4("127.0.0.1", ports["IMAP"], timeout=DEADLINE) as client:
            assert "STARTTLS" in client.capabilities
            client.starttls(ssl_context=context)
            assert client.login("a", "b")[0] == "OK"
            client.logout()


def test_pop3_alongside_imap_on_one_store(tmp_path):
    import poplib

    with running_twistd(
        tmp_path, "--store", "sqlite:" + str(tmp_path / "mail.sqlite"), "--user", "a:b",
        "--imap", "tcp:0:interface=127.0.0.1", "--pop3", "tcp:0:interface=127.0.0.1",
    ) as ports:
        message = b"From: x@example.org\r\nSubject: both ways\r\n\r\nhello\r\n"
        with imaplib.IMAP4("127.0.0.1", ports["IMAP"], timeout=DEADLINE) as client:
            client.login("a", "b")
            assert client.append("INBOX", None, None, message)[0] == "OK"
            client.logout()
        pop = poplib.POP3("127.0.0.1", ports["POP3"], timeout=DEADLINE)
        pop.user("a")
        pop.pass_("b")
        assert pop.stat()[0] == 1
        _, lines, _ = pop.retr(1)
        assert b"\r\n".join(lines) + b"\r\n" == message
        pop.dele(1)
        pop.quit()
        with imaplib.IMAP4("127.0.0.1", ports["IMAP"], timeout=DEADLINE) as client:
            client.login("a", "b")
            assert client.select("INBOX")[1] == [b"0"]
            client.logout()
