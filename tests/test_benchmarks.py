"""
Smoke test of the benchmark command: at a tiny mailbox it measures every
figure of the table, for an in-memory and an SQLite store, without Dovecot.

This checks that every figure was measured and came out as a number, not
how fast anything was.
"""

from __future__ import annotations

import os
import subprocess
import sys

from benchmarks.figures import FIGURE_NAMES
from benchmarks.run import number

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STORES = ["memory:", "sqlite:"]


def run_benchmark(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "benchmarks.run", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def table_rows(output: str) -> dict[str, list[str]]:
    """The cells of each row of the printed Markdown table, by figure name."""
    rows = {}
    for line in output.splitlines():
        if line.startswith("| ") and not line.startswith("| ---"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            rows[cells[0]] = cells
    return rows


def is_number(cell: str) -> bool:
    try:
        float(cell.replace(",", ""))
    except ValueError:
        return False
    return True


def test_every_figure_is_measured_on_each_store():
    args = ["--no-dovecot", "-n", "20", "--idle", "30"]
    for store in STORES:
        args += ["--store", store]
    result = run_benchmark(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = table_rows(result.stdout)
    header = rows.pop("figure")
    assert header[3] == "Dovecot"
    columns = {store: header.index(store.rstrip(":")) for store in STORES}
    assert sorted(rows) == sorted(FIGURE_NAMES), result.stdout
    for name, cells in rows.items():
        assert cells[3] == "-", (name, "Dovecot was not to be measured", cells)
        for store, column in columns.items():
            assert is_number(cells[column]), (name, store, cells)
    # The mailbox held what was asked: 20 messages, so FETCH 1:* counted 20
    # responses (the benchmark checks it) and the memory figure is per message.
    assert "N = 20 messages" in result.stdout


def test_bad_arguments_get_a_clear_error():
    result = run_benchmark("-n", "3", "--no-dovecot")
    assert result.returncode == 2
    assert "at least 10 messages" in result.stderr


def test_numbers_are_printed_readably():
    assert number(None) == "-"
    assert number(986_000.4) == "986,000"
    assert number(42.31) == "42.3"
    assert number(0.8) == "0.80"


def test_the_client_skips_literals_by_their_count():
    """A literal holding what looks like the tagged reply does not end the reply early."""
    import socket
    import threading

    from benchmarks.client import IMAPClient

    body = b"b2 OK not the end\r\n* 9 FETCH (FLAGS ())\r\n"
    reply = (b"* 1 FETCH (BODY[] {%d}\r\n%s)\r\n* 2 FETCH (FLAGS (\\Seen))\r\n"
             b"b2 OK FETCH done\r\n" % (len(body), body))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def serve():
        conn, _ = listener.accept()
        conn.sendall(b"* OK ready\r\n")
        conn.recv(100)  # b1 CAPABILITY
        conn.sendall(b"* CAPABILITY IMAP4rev1 LITERAL+\r\nb1 OK\r\n")
        conn.recv(100)  # b2 FETCH
        conn.sendall(reply[:30])
        conn.sendall(reply[30:])
        conn.recv(100)
        conn.close()

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        c = IMAPClient(*listener.getsockname())
        assert c.command(b"CAPABILITY", keep=True).ok
        result = c.command(b"FETCH 1:2 (BODY[] FLAGS)")
        assert (result.text, result.fetches, result.literal_bytes) == (
            b"FETCH done", 2, len(body))
        c.stream.close()
    finally:
        thread.join(10)
        listener.close()
