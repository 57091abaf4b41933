"""
Smoke test of C{python -m benchmarks.idle_push}: with 10 idlers over two
SQLite server processes and 2 rounds, every idler is told of every APPEND,
the figures are printed and the servers are gone afterwards.  An idler that
is never told is counted as missed (against a scripted server).

No timing is asserted: the figures only have to be numbers.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading

import pytest

from benchmarks import idle_push

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_benchmark(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "benchmarks.idle_push", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=60)


def table_rows(output: str) -> dict[str, list[str]]:
    rows = {}
    for line in output.splitlines():
        if line.startswith("| ") and not line.startswith("| ---"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            rows[cells[0]] = cells
    return rows


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


@pytest.mark.parametrize("opening", ["SELECT", "EXAMINE"])
def test_every_idler_of_both_processes_is_told_of_every_append(opening):
    options = ["--examine"] if opening == "EXAMINE" else []
    result = run_benchmark("--store", "sqlite:", "--idlers", "10", "--rounds", "2", *options)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    rows = table_rows(result.stdout)
    header = rows.pop("idlers on")
    assert sorted(rows) == ["other process", "writer's process"], result.stdout
    for name, cells in rows.items():
        assert len(cells) == len(header), cells
        # 5 idlers on each process, 2 APPENDs: 10 announcements each.
        assert cells[1] == "10/10", (name, cells)
        for cell in cells[2:]:
            float(cell)
    assert "missed announcements: 0" in result.stdout
    assert f"10 idlers ({opening} INBOX) over 2 processes" in result.stdout
    ports = re.search(r"servers listening on 127\.0\.0\.1:(\d+) and 127\.0\.0\.1:(\d+)",
                      result.stderr)
    assert ports, result.stderr
    assert all(refused(int(port)) for port in ports.groups()), "a server is still running"


def test_bad_arguments_get_a_clear_error():
    result = run_benchmark("--idlers", "1")
    assert result.returncode == 2
    assert "at least 2" in result.stderr
    result = run_benchmark("--store", "mbox:")
    assert result.returncode == 2
    assert "--store" in result.stderr


class ScriptedServer:
    """
    A loopback IMAP server enough for the benchmark's client: it answers
    LOGIN, SELECT, IDLE and APPEND, and tells of an APPEND at once only the
    idlers whose connection number is even; the others C{late} seconds
    later, or never when C{late} is C{None}.
    """

    def __init__(self, late: float | None) -> None:
        self.late = late
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.idlers: list[tuple[int, socket.socket]] = []
        self.lock = threading.Lock()
        self.exists = 0
        self.threads: list[threading.Thread] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        n = 0
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(n, conn), daemon=True)
            thread.start()
            n += 1

    def _serve(self, n: int, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        conn.sendall(b"* OK ready\r\n")
        try:
            for line in reader:
                tag, command = line.split(b" ", 2)[:2]
                command = command.strip().upper()
                if command == b"LOGIN":
                    conn.sendall(tag + b" OK logged in\r\n")
                elif command == b"SELECT":
                    conn.sendall(b"* %d EXISTS\r\n" % self.exists + tag + b" OK selected\r\n")
                elif command == b"IDLE":
                    conn.sendall(b"+ idling\r\n")
                    with self.lock:
                        self.idlers.append((n, conn))
                elif command == b"APPEND":
                    size = int(line.rsplit(b"{", 1)[1].split(b"}")[0])
                    conn.sendall(b"+ go\r\n")
                    reader.read(size + 2)
                    with self.lock:
                        self.exists += 1
                        for k, idler in self.idlers:
                            told = b"* %d EXISTS\r\n" % self.exists
                            if k % 2 == 0:
                                idler.sendall(told)
                            elif self.late is not None:
                                threading.Timer(self.late, idler.sendall, (told,)).start()
                    conn.sendall(tag + b" OK appended\r\n")
        except OSError:
            pass

    def close(self) -> None:
        self.listener.close()


@pytest.mark.parametrize("late, behind", [(None, 4), (0.8, 0)])
def test_an_idler_told_late_or_never_is_counted_as_missed(monkeypatch, late, behind):
    monkeypatch.setattr(idle_push, "ANNOUNCE_DEADLINE", 0.4)
    monkeypatch.setattr(idle_push, "CATCH_UP_DEADLINE", 3.0 if late else 0.5)
    server = ScriptedServer(late)
    try:
        results = idle_push.measure((server.port, server.port), idlers=8, rounds=2,
                                    setup_deadline=idle_push.time.monotonic() + 20)
    finally:
        server.close()
    # Connections 0 and 1 are the writers; idlers 1 to 8 are connections 2 to
    # 9, of which 2, 4, 6 and 8 (idlers 1, 3, 5, 7: the first process's) are told.
    assert results.expected == {"same": 8, "other": 8}
    assert len(results.after_ok["same"]) + len(results.after_ok["other"]) == 8
    assert results.missed == 8
    # Told late, they caught up after the last round; never told, they did not.
    assert results.behind == behind
    table = idle_push.table(results)
    assert "4/8" in table


@pytest.mark.parametrize("values, p, expected", [
    ([3.0, 1.0, 2.0], 50, 2.0),
    (list(range(1, 101)), 99, 99),
    (list(range(1, 101)), 90, 90),
    ([7.0], 99, 7.0),
])
def test_percentiles_are_nearest_rank(values, p, expected):
    assert idle_push.percentile(values, p) == expected
