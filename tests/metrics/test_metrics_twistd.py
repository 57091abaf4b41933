"""
A real ``twistd mailhub --metrics`` process: IMAP and POP3 traffic from
imaplib, poplib and a raw socket, then ``GET /metrics`` over HTTP, whose
counts must be what that traffic implies; and Prometheus itself scraping
the endpoint, when it is installed.
"""

from __future__ import annotations

import imaplib
import json
import poplib
import re
import shutil
import socket
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from test_plugin import DEADLINE, running_twistd, wait_for

METRICS_LISTENING = re.compile(r"\bMetrics listening on ([0-9.]+):(\d+)")
LOOPBACK = "tcp:0:interface=127.0.0.1"
MESSAGE = b"From: carol@example.net\r\nSubject: counted\r\n\r\nHello.\r\n"
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$')


def metrics_port(tmp_path: Path) -> int:
    log = tmp_path / "twistd.log"
    found = wait_for(lambda: METRICS_LISTENING.search(log.read_text(errors="replace")),
                     "the metrics listener", log=log)
    return int(found.group(2))


def fetch(port: int, path: str = "/metrics"):
    return urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=DEADLINE)


def scrape(port: int) -> dict[str, float]:
    """C{{'name{labels}': value}} from the server's /metrics."""
    with fetch(port) as response:
        text = response.read().decode("utf-8")
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        samples[(match.group(1) + (match.group(2) or ""))] = float(match.group(3))
    return samples


def settled(port: int) -> dict[str, float]:
    """A scrape once the server has seen every client connection close."""
    def closed():
        s = scrape(port)
        if all(v == 0 for k, v in s.items() if k.startswith("mailhub_connections_open")):
            return s
        return None

    return wait_for(closed, "the connections to close")


def commands(samples: dict[str, float], protocol: str) -> dict[str, float]:
    """C{{command: count}} for C{protocol}."""
    found = {}
    prefix = f'mailhub_command_duration_seconds_count{{protocol="{protocol}",command="'
    for key, value in samples.items():
        if key.startswith(prefix):
            found[key[len(prefix):-2]] = value
    return found


def raw_session(port: int, lines: list[bytes]) -> tuple[int, int]:
    """Send C{lines} on one IMAP connection, read to its end: (bytes sent, bytes read)."""
    sent = b"".join(line + b"\r\n" for line in lines)
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as sock:
        received += sock.recv(65536)  # the greeting
        sock.sendall(sent)
        while chunk := sock.recv(65536):
            received += chunk
    return len(sent), len(received)


def test_metrics_count_what_the_clients_did(tmp_path):
    with running_twistd(tmp_path, "--store", "sqlite:mail.sqlite", "--user", "alice:wonderland",
                        "--imap", LOOPBACK, "--pop3", LOOPBACK, "--metrics", LOOPBACK) as ports:
        port = metrics_port(tmp_path)
        imap, pop3 = ports["IMAP"], ports["POP3"]

        with fetch(port) as response:
            assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        with pytest.raises(urllib.error.HTTPError) as missing:
            fetch(port, "/other")
        assert missing.value.code == 404
        start = scrape(port)
        # The configured listeners have their series from the start.
        for protocol in ("imap", "pop3"):
            assert start[f'mailhub_connections_accepted_total{{protocol="{protocol}"}}'] == 0
            assert start[f'mailhub_connections_open{{protocol="{protocol}"}}'] == 0

        client = imaplib.IMAP4("127.0.0.1", imap, timeout=DEADLINE)
        client.login("alice", "wonderland")
        client.select("INBOX")
        client.append("INBOX", None, None, MESSAGE)
        client.append("INBOX", None, None, MESSAGE)
        client.fetch("1:*", "(FLAGS BODY.PEEK[])")
        client.uid("SEARCH", "ALL")
        client.store("1", "+FLAGS", "\\Seen")
        client.logout()

        pop = poplib.POP3("127.0.0.1", pop3, timeout=DEADLINE)
        pop.user("alice")
        pop.pass_("wonderland")
        assert pop.stat()[0] == 2
        pop.list()
        pop.retr(1)
        pop.quit()

        # Fifteen made-up command names (twenty would end the connection),
        # then LOGOUT, on a raw connection whose bytes are known exactly.
        before = settled(port)
        junk = [b"j%d XYZZY%d" % (i, i) for i in range(15)]
        sent, received = raw_session(imap, junk + [b"z LOGOUT"])
        after = settled(port)
        key = 'mailhub_received_bytes_total{protocol="imap"}'
        assert after[key] - before[key] == sent
        key = 'mailhub_sent_bytes_total{protocol="imap"}'
        assert after[key] - before[key] == received

        # Failed logins last: the failure delay would slow the others.
        client = imaplib.IMAP4("127.0.0.1", imap, timeout=DEADLINE)
        with pytest.raises(imaplib.IMAP4.error):
            client.login("alice", "not the password")
        client.logout()
        pop = poplib.POP3("127.0.0.1", pop3, timeout=DEADLINE)
        pop.user("mallory")
        with pytest.raises(poplib.error_proto):
            pop.pass_("guess")
        pop.quit()

        s = settled(port)
        text = fetch(port).read()

    assert s['mailhub_connections_accepted_total{protocol="imap"}'] == 3
    assert s['mailhub_connections_accepted_total{protocol="pop3"}'] == 2
    assert s['mailhub_logins_total{protocol="imap",mechanism="LOGIN",result="ok"}'] == 1
    assert s['mailhub_logins_total{protocol="imap",mechanism="LOGIN",result="failed"}'] == 1
    assert s['mailhub_logins_total{protocol="pop3",mechanism="USER",result="ok"}'] == 1
    assert s['mailhub_logins_total{protocol="pop3",mechanism="USER",result="failed"}'] == 1

    imap_commands = commands(s, "imap")
    for name, count in {"LOGIN": 2, "SELECT": 1, "APPEND": 2, "FETCH": 1, "UID SEARCH": 1,
                        "STORE": 1, "LOGOUT": 3, "other": 15}.items():
        assert imap_commands.get(name) == count, (name, imap_commands)
    # However many names a client makes up, they are one series: "other".
    assert not [name for name in imap_commands if "XYZZY" in name]
    assert set(imap_commands) <= {"CAPABILITY", "LOGIN", "SELECT", "APPEND", "FETCH",
                                  "UID SEARCH", "STORE", "LOGOUT", "other"}
    pop3_commands = commands(s, "pop3")
    assert pop3_commands == {"USER": 2, "PASS": 2, "STAT": 1, "LIST": 1, "RETR": 1, "QUIT": 2}
    # A histogram's buckets add up to its count.
    assert s['mailhub_command_duration_seconds_bucket{protocol="pop3",command="RETR",'
             'le="+Inf"}'] == 1

    # The store was called for the two logins, the APPENDs and the rest.
    store = 'mailhub_store_operation_duration_seconds_count{{operation="{}"}}'
    assert s[store.format("open_store")] == 2
    assert s[store.format("append")] == 2
    assert s[store.format("get_mailbox")] >= 2
    assert s[store.format("store_flags")] >= 1
    assert s['mailhub_received_bytes_total{protocol="pop3"}'] > 0
    assert s["process_resident_memory_bytes"] > 0

    if shutil.which("promtool"):
        lint = subprocess.run(["promtool", "check", "metrics"], input=text,
                              capture_output=True, timeout=60)
        assert lint.returncode == 0, lint.stdout + lint.stderr


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.skipif(shutil.which("prometheus") is None,
                    reason="Prometheus (Debian package prometheus) is needed; CI installs it")
def test_prometheus_scrapes_the_endpoint(tmp_path):
    with running_twistd(tmp_path, "--store", "memory:", "--user", "alice:wonderland",
                        "--imap", LOOPBACK, "--metrics", LOOPBACK) as ports:
        port = metrics_port(tmp_path)
        client = imaplib.IMAP4("127.0.0.1", ports["IMAP"], timeout=DEADLINE)
        client.login("alice", "wonderland")
        client.logout()

        # The scrape configuration docs/operating.md gives, at a test's pace.
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n"
            "scrape_configs:\n"
            "  - job_name: mailhub\n"
            f"    static_configs:\n      - targets: ['127.0.0.1:{port}']\n")
        web = free_port()
        log = tmp_path / "prometheus.log"
        with open(log, "wb") as out:
            prometheus = subprocess.Popen(
                ["prometheus", f"--config.file={config}",
                 f"--storage.tsdb.path={tmp_path / 'data'}",
                 f"--web.listen-address=127.0.0.1:{web}"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        try:
            def query(expression: str):
                url = (f"http://127.0.0.1:{web}/api/v1/query?"
                       + urllib.parse.urlencode({"query": expression}))
                try:
                    with urllib.request.urlopen(url, timeout=10) as response:
                        return json.load(response)["data"]["result"]
                except (OSError, ValueError):
                    return None

            found = wait_for(
                lambda: query('mailhub_logins_total{mechanism="LOGIN",result="ok"}'),
                "Prometheus to scrape the server", prometheus, log)
            assert found[0]["metric"]["protocol"] == "imap"
            assert found[0]["value"][1] == "1"
            up = query('up{job="mailhub"}')
            assert up and up[0]["value"][1] == "1"
            count = query('mailhub_command_duration_seconds_count{command="LOGIN"}')
            assert count and count[0]["value"][1] == "1"
        finally:
            prometheus.terminate()
            try:
                prometheus.wait(timeout=DEADLINE)
            except subprocess.TimeoutExpired:
                prometheus.kill()
                prometheus.wait()


LMTP_LISTENING = re.compile(r"\bLMTP listening on ([0-9.]+):(\d+)")


def test_lmtp_deliveries_are_counted(tmp_path):
    import smtplib

    with running_twistd(tmp_path, "--store", "sqlite:mail.sqlite", "--user", "alice:wonderland",
                        "--lmtp", LOOPBACK, "--metrics", LOOPBACK):
        port = metrics_port(tmp_path)
        log = tmp_path / "twistd.log"
        lmtp = int(wait_for(lambda: LMTP_LISTENING.search(log.read_text(errors="replace")),
                            "the LMTP listener", log=log).group(2))
        start = scrape(port)
        assert start['mailhub_connections_accepted_total{protocol="lmtp"}'] == 0

        client = smtplib.LMTP("127.0.0.1", lmtp, timeout=DEADLINE)
        refused = client.sendmail("carol@example.net", ["alice@localhost", "nobody@localhost"],
                                  MESSAGE)
        client.quit()
        assert list(refused) == ["nobody@localhost"]
        s = settled(port)

    assert s['mailhub_connections_accepted_total{protocol="lmtp"}'] == 1
    # The commands that wait on the store: one RCPT per recipient, one DATA.
    assert commands(s, "lmtp") == {"RCPT": 2, "DATA": 1}
    assert s['mailhub_received_bytes_total{protocol="lmtp"}'] > len(MESSAGE)
    assert s['mailhub_sent_bytes_total{protocol="lmtp"}'] > 0
    # The delivery's own calls to the store are timed too.
    assert s['mailhub_store_operation_duration_seconds_count{operation="append"}'] == 1
