"""
IDLE push latency across processes (issue #10): how soon a message appended
through one server process is announced (C{* n EXISTS}, RFC 2177 / RFC 3501
section 7.3.1) to clients idling in the same INBOX on it and on another
process serving the same store.

    python -m benchmarks.idle_push --store postgresql://postgres@127.0.0.1/postgres \\
        --idlers 1000 --rounds 20

Two C{twistd mailhub} processes are started on one fresh store (a new
PostgreSQL database, dropped afterwards, for a C{postgresql://} URL; a new
SQLite file for C{sqlite:}), listening on ephemeral loopback ports, with the
per-address and per-user connection caps raised for the idlers.  The idlers
(half on each process) are non-blocking sockets driven by one selector in
this one thread: each does LOGIN, SELECT INBOX (EXAMINE with C{--examine})
and IDLE.  Then, for each
round, one message is appended through a separate connection, to the first
process in odd rounds and the second in even ones, and the arrival of every
idler's C{EXISTS} is recorded.  The latency is the arrival time less the
time the tagged APPEND OK arrived (which an idler of the writer's own
process may beat: negative values are real), and also less the time the
APPEND was sent.

An arrival time is the instant the selector reported the socket readable,
taken once per wakeup: it is never earlier than the true arrival, and later
by at most the time this process takes to read one batch of sockets.

Printed: one Markdown table with median, p90, p99 and maximum per process
(the writer's, the other), the median over the rounds of the first idler
told on each process (how long the change takes to reach a process, before
it is told to each of its idlers), and the number of announcements missed, which
must be 0: an idler without its C{EXISTS} 5 seconds after the APPEND OK is
an error (exit status 1, after the figures).  The servers are stopped on
exit, on error and on Ctrl-C, and also when this process is killed.
"""

from __future__ import annotations

import argparse
import ctypes
import email.utils
import errno
import math
import os
import platform
import re
import resource
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from benchmarks.run import commit, label, store_location

HOST = "127.0.0.1"
USER, PASSWORD = "bench", "bench"
ROOT = Path(__file__).resolve().parent.parent

#: Seconds after the APPEND OK within which every idler must see its EXISTS.
ANNOUNCE_DEADLINE = 5.0
#: Seconds, after the last round with a miss, for late announcements to arrive.
CATCH_UP_DEADLINE = 30.0
#: Seconds an APPEND may take to be answered.
APPEND_DEADLINE = 30.0
#: Seconds a server process may take to listen, and to stop on SIGTERM.
SERVER_DEADLINE = 60.0
#: Connections being set up at once (the rest wait their turn).
SETUP_WINDOW = 64
#: Descriptors this process needs beyond one per connection.
SPARE_DESCRIPTORS = 64

_LISTENING = re.compile(r"\bIMAP listening on ([0-9.]+):(\d+)")
_EXISTS = re.compile(rb"\* (\d+) EXISTS\Z", re.IGNORECASE)


class BenchError(Exception):
    """The benchmark could not measure what it set out to measure."""


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# -- the server processes --------------------------------------------------------------


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the benchmark's process ends (Linux)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


@dataclass
class Server:
    """One C{twistd mailhub} process and the IMAP port it listens on."""

    process: subprocess.Popen
    logfile: Path
    port: int = 0

    def output(self, tail: int = 4000) -> str:
        return self.logfile.read_text(errors="replace")[-tail:]


def _twistd_env(workdir: Path) -> dict[str, str]:
    """The environment of a server: this checkout's package and its twistd plugin importable."""
    plugins = workdir / "site" / "twisted" / "plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "plugins" / "mailhub.py", plugins / "mailhub.py")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), str(workdir / "site"), *filter(None, [env.get("PYTHONPATH")])])
    env["PYTHONUNBUFFERED"] = "1"
    return env


@contextmanager
def twistd_server(store: str, workdir: Path, limit: int) -> Iterator[Server]:
    """
    Run C{twistd -n mailhub} on C{store} with connection caps of C{limit};
    yield it once it listens; stop it with SIGTERM (killed if it does not stop).
    """
    workdir.mkdir(parents=True)
    run = "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"
    command = [sys.executable, "-c", run, "--pidfile=", "-n", "mailhub",
               "--store", store, "--user", f"{USER}:{PASSWORD}",
               "--imap", f"tcp:0:interface={HOST}:backlog=1024",
               "--max-connections-per-ip", str(limit),
               "--max-connections-per-user", str(limit)]
    logfile = workdir / "twistd.log"
    with open(logfile, "wb") as out:
        process = subprocess.Popen(command, cwd=workdir, env=_twistd_env(workdir),
                                   stdin=subprocess.DEVNULL, stdout=out,
                                   stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
    server = Server(process, logfile)
    try:
        deadline = time.monotonic() + SERVER_DEADLINE
        while True:
            found = _LISTENING.search(logfile.read_text(errors="replace"))
            if found:
                server.port = int(found.group(2))
                break
            if process.poll() is not None:
                raise BenchError(f"the server exited with {process.returncode}:\n"
                                 + server.output())
            if time.monotonic() > deadline:
                raise BenchError(f"the server did not listen within {SERVER_DEADLINE:.0f} s:\n"
                                 + server.output())
            time.sleep(0.05)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(SERVER_DEADLINE)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def raise_fd_limit(needed: int) -> None:
    """Raise this process's descriptor limit (inherited by the servers) to its hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    if soft != resource.RLIM_INFINITY and soft < needed:
        raise BenchError(f"{needed} file descriptors are needed, the hard limit is {hard}")


# -- the clients -----------------------------------------------------------------------


@dataclass(eq=False)
class Connection:
    """
    One IMAP connection driven by L{Pump}: a line reader and a queue of
    output.  C{on_line(conn, line, now)} is called for each response line.
    """

    name: str
    server: int
    sock: socket.socket
    on_line: Callable[["Connection", bytes, float], None]
    inbuf: bytearray = field(default_factory=bytearray)
    outbuf: bytearray = field(default_factory=bytearray)
    connected: bool = False
    state: str = "greeting"
    exists: int = 0
    #: Round index -> arrival time of the EXISTS it announced.
    arrivals: dict[int, float] = field(default_factory=dict)

    def fail(self, why: str) -> None:
        raise BenchError(f"{self.name} (process {self.server + 1}): {why}")


class Pump:
    """A selector over many non-blocking IMAP connections, in one thread."""

    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self.connections: list[Connection] = []

    def open(self, name: str, server: int, port: int,
             on_line: Callable[[Connection, bytes, float], None]) -> Connection:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        code = sock.connect_ex((HOST, port))
        if code not in (0, errno.EINPROGRESS):
            sock.close()
            raise BenchError(f"{name}: connect to {HOST}:{port}: {os.strerror(code)}")
        conn = Connection(name, server, sock, on_line)
        self.selector.register(sock, selectors.EVENT_WRITE, conn)
        self.connections.append(conn)
        return conn

    def send(self, conn: Connection, data: bytes) -> None:
        """Queue C{data}; write what the socket takes now, the rest when it can."""
        conn.outbuf += data
        if conn.connected:
            self._write(conn)

    def _write(self, conn: Connection) -> None:
        if conn.outbuf:
            try:
                sent = conn.sock.send(conn.outbuf)
            except BlockingIOError:
                sent = 0
            except OSError as e:
                conn.fail(f"send: {e}")
            del conn.outbuf[:sent]
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if conn.outbuf else 0)
        if self.selector.get_key(conn.sock).events != events:
            self.selector.modify(conn.sock, events, conn)

    def _read(self, conn: Connection, now: float) -> None:
        try:
            data = conn.sock.recv(1 << 16)
        except BlockingIOError:
            return
        except OSError as e:
            conn.fail(f"recv: {e}")
        if not data:
            conn.fail(f"connection closed by the server (state {conn.state})")
        conn.inbuf += data
        start = 0
        while True:
            end = conn.inbuf.find(b"\r\n", start)
            if end < 0:
                break
            conn.on_line(conn, bytes(conn.inbuf[start:end]), now)
            start = end + 2
        del conn.inbuf[:start]

    def step(self, timeout: float) -> None:
        """Wait up to C{timeout} seconds for sockets to be ready and serve them."""
        events = self.selector.select(max(timeout, 0.0))
        now = time.perf_counter()
        for key, mask in events:
            conn: Connection = key.data
            if not conn.connected:
                code = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if code:
                    conn.fail(f"connect: {os.strerror(code)}")
                conn.connected = True
                self._write(conn)
                continue
            if mask & selectors.EVENT_READ:
                self._read(conn, now)
            if mask & selectors.EVENT_WRITE:
                self._write(conn)

    def run_until(self, done: Callable[[], bool], deadline: float, what: str) -> None:
        """Serve the sockets until C{done()}; a L{BenchError} at C{deadline} (monotonic)."""
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError(f"timed out waiting for {what}")
            self.step(min(left, 0.5))

    def close(self) -> None:
        for conn in self.connections:
            try:
                conn.sock.close()
            except OSError:
                pass
        self.selector.close()


def _status(line: bytes, tag: bytes) -> bytes | None:
    """The status of a tagged reply C{tag}, or C{None} if C{line} is not it."""
    if line.startswith(tag + b" "):
        return line[len(tag) + 1:].split(b" ", 1)[0].upper()
    return None


class Session:
    """The conversation of every connection: LOGIN, then SELECT and IDLE or APPENDs."""

    def __init__(self, pump: Pump, select: bytes = b"SELECT") -> None:
        self.pump = pump
        self.select = select
        self.idling = 0
        self.in_setup = 0
        #: The round being measured, for idlers' EXISTS (see L{on_idler_line}).
        self.round = -1
        self.expected = 0
        self.append_ok: float | None = None
        self.literal = b""
        self.waiting = 0

    def _login(self, conn: Connection, line: bytes, next_state: str) -> bool:
        """Handle the greeting and the LOGIN; true once logged in (state C{next_state})."""
        if conn.state == "greeting":
            if not line.startswith(b"* OK"):
                conn.fail(f"unexpected greeting {line!r}")
            conn.state = "login"
            self.pump.send(conn, b'l LOGIN "%s" "%s"\r\n' % (USER.encode(), PASSWORD.encode()))
        elif conn.state == "login":
            status = _status(line, b"l")
            if status is not None:
                if status != b"OK":
                    conn.fail(f"LOGIN: {line!r}")
                conn.state = next_state
                return True
        return False

    def on_idler_line(self, conn: Connection, line: bytes, now: float) -> None:
        if line.startswith(b"* BYE"):
            conn.fail(f"the server said {line!r}")
        match = _EXISTS.match(line)
        if match is not None:
            n = int(match.group(1))
            # EXISTS n tells of every message up to n: a late announcement of
            # an earlier round (n < expected) does not count for this one.
            if (conn.state == "idling" and n >= self.expected
                    and self.round not in conn.arrivals):
                conn.arrivals[self.round] = now
                self.waiting -= 1
            conn.exists = max(conn.exists, n)
            return
        if conn.state in ("greeting", "login"):
            if self._login(conn, line, "select"):
                self.pump.send(conn, b"s %s INBOX\r\n" % self.select)
        elif conn.state == "select":
            status = _status(line, b"s")
            if status is not None:
                if status != b"OK":
                    conn.fail(f"{self.select.decode()} INBOX: {line!r}")
                conn.state = "idle"
                self.pump.send(conn, b"i IDLE\r\n")
        elif conn.state == "idle":
            if line.startswith(b"+"):
                conn.state = "idling"
                self.idling += 1
                self.in_setup -= 1
            elif _status(line, b"i") is not None:
                conn.fail(f"IDLE: {line!r}")
        elif conn.state == "idling" and _status(line, b"i") is not None:
            conn.fail(f"IDLE ended: {line!r}")

    def on_writer_line(self, conn: Connection, line: bytes, now: float) -> None:
        if line.startswith(b"* BYE"):
            conn.fail(f"the server said {line!r}")
        if conn.state in ("greeting", "login"):
            self._login(conn, line, "ready")
        elif conn.state == "appending":
            if line.startswith(b"+"):
                self.pump.send(conn, self.literal + b"\r\n")
                return
            status = _status(line, b"a")
            if status is not None:
                if status != b"OK":
                    conn.fail(f"APPEND: {line!r}")
                self.append_ok = now
                conn.state = "ready"


def message(n: int) -> bytes:
    """The n-th appended message: small, with a unique Message-ID."""
    return (f"From: Writer <writer@example.org>\r\nTo: {USER}@example.org\r\n"
            f"Subject: push {n}\r\nMessage-ID: <{uuid.uuid4().hex}@example.org>\r\n"
            f"Date: {email.utils.formatdate()}\r\n\r\nMessage {n} of the IDLE push "
            f"benchmark.\r\n").encode()


# -- the measurement -------------------------------------------------------------------


@dataclass
class Results:
    """What was measured: per group, the latencies in seconds and the misses."""

    after_ok: dict[str, list[float]] = field(default_factory=lambda: {"same": [], "other": []})
    after_sent: dict[str, list[float]] = field(default_factory=lambda: {"same": [], "other": []})
    #: Per round, the latency after the APPEND OK of the first idler told.
    first: dict[str, list[float]] = field(default_factory=lambda: {"same": [], "other": []})
    expected: dict[str, int] = field(default_factory=lambda: {"same": 0, "other": 0})
    append_round_trips: list[float] = field(default_factory=list)
    #: After a miss: idlers that were still not told of every message
    #: L{CATCH_UP_DEADLINE} seconds after the last round.
    behind: int = 0

    @property
    def missed(self) -> int:
        return sum(self.expected[g] - len(self.after_ok[g]) for g in self.expected)


def measure(ports: tuple[int, int], idlers: int, rounds: int, setup_deadline: float,
            examine: bool = False) -> Results:
    """
    Set up the writers and idlers on C{ports}, then run the rounds.  With
    C{examine} the idlers open the INBOX read-only (EXAMINE), so that their
    sessions do not claim \\Recent (RFC 3501 section 6.3.2).
    """
    pump = Pump()
    session = Session(pump, b"EXAMINE" if examine else b"SELECT")
    try:
        writers = [pump.open(f"writer {i + 1}", i, ports[i], session.on_writer_line)
                   for i in (0, 1)]
        pump.run_until(lambda: all(w.state == "ready" for w in writers), setup_deadline,
                       "the writers to log in")
        opened: list[Connection] = []

        def setup_done() -> bool:
            while len(opened) < idlers and session.in_setup < SETUP_WINDOW:
                i = len(opened)
                opened.append(pump.open(f"idler {i + 1}", i % 2, ports[i % 2],
                                        session.on_idler_line))
                session.in_setup += 1
            return session.idling == idlers

        pump.run_until(setup_done, setup_deadline, f"{idlers} idlers to enter IDLE "
                       f"({session.idling} did)")
        log(f"{idlers} idlers in IDLE")
        results = Results()
        for r in range(rounds):
            writer = writers[r % 2]
            session.round, session.expected = r, r + 1
            session.append_ok = None
            session.waiting = idlers
            session.literal = message(r + 1)
            writer.state = "appending"
            sent = time.perf_counter()
            pump.send(writer, b"a APPEND INBOX {%d}\r\n" % len(session.literal))
            append_by = time.monotonic() + APPEND_DEADLINE
            pump.run_until(lambda: session.append_ok is not None, append_by,
                           f"the APPEND of round {r + 1} to be answered")
            ok = session.append_ok
            assert ok is not None
            results.append_round_trips.append(ok - sent)
            try:
                pump.run_until(lambda: session.waiting <= 0,
                               time.monotonic() + ANNOUNCE_DEADLINE - (time.perf_counter() - ok),
                               "EXISTS")
            except BenchError:
                pass  # counted below as missed
            firsts: dict[str, list[float]] = {"same": [], "other": []}
            for conn in opened:
                group = "same" if conn.server == writer.server else "other"
                results.expected[group] += 1
                at = conn.arrivals.get(r)
                if at is not None and at - ok <= ANNOUNCE_DEADLINE:
                    results.after_ok[group].append(at - ok)
                    results.after_sent[group].append(at - sent)
                    firsts[group].append(at - ok)
            for group, values in firsts.items():
                if values:
                    results.first[group].append(min(values))
        if results.missed:
            # Were the missed announcements late, or lost?
            try:
                pump.run_until(lambda: all(c.exists >= rounds for c in opened),
                               time.monotonic() + CATCH_UP_DEADLINE, "late EXISTS")
            except BenchError:
                pass
            results.behind = sum(1 for c in opened if c.exists < rounds)
        return results
    finally:
        pump.close()


# -- the report ------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    """The nearest-rank C{p}-th percentile of C{values} (not empty)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f}"


def table(results: Results) -> str:
    head = ["idlers on", "announced", "first told (ms)", "after OK median (ms)", "p90", "p99",
            "max",
            "after sent median (ms)", "p90", "p99", "max"]
    rows = [head, ["---"] * len(head)]
    for group, title in (("same", "writer's process"), ("other", "other process")):
        row = [title, f"{len(results.after_ok[group])}/{results.expected[group]}",
               ms(percentile(results.first[group], 50)) if results.first[group] else "-"]
        for values in (results.after_ok[group], results.after_sent[group]):
            if values:
                row += [ms(percentile(values, 50)), ms(percentile(values, 90)),
                        ms(percentile(values, 99)), ms(max(values))]
            else:
                row += ["-"] * 4
        rows.append(row)
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().split("\n\n")[0])
    parser.add_argument("--store", default="sqlite:",
                        help="'sqlite:' (a fresh file) or a postgresql:// URL of a server on "
                        "which a fresh database is created and dropped  [default: sqlite:]")
    parser.add_argument("--idlers", type=int, default=1000,
                        help="idling connections, half on each process  [default: 1000]")
    parser.add_argument("--examine", action="store_true",
                        help="idle in the INBOX opened with EXAMINE (read-only) instead of SELECT")
    parser.add_argument("--rounds", type=int, default=20,
                        help="messages appended, alternately through each process  "
                        "[default: 20]")
    parser.add_argument("--setup-timeout", type=float, default=300.0,
                        help="seconds allowed to start the servers and the idlers  "
                        "[default: 300]")
    args = parser.parse_args(argv)
    if args.store != "sqlite:" and not args.store.startswith("postgresql"):
        parser.error("--store: 'sqlite:' or a postgresql:// URL")
    if args.idlers < 2:
        parser.error("--idlers: at least 2 (one on each process)")
    if args.rounds < 1:
        parser.error("--rounds: at least 1")
    # SIGTERM unwinds like Ctrl-C, through the code stopping the servers.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return run(args)
    except BenchError as e:
        log(f"error: {e}")
        return 1
    except KeyboardInterrupt:
        log("interrupted")
        return 130


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def run(args) -> int:
    raise_fd_limit(args.idlers + SPARE_DESCRIPTORS)
    limit = args.idlers + 16
    setup_deadline = time.monotonic() + args.setup_timeout
    with ExitStack() as stack:
        store = stack.enter_context(store_location(args.store))
        workdir = Path(tempfile.mkdtemp(prefix="mailhub-idle-push-"))
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        first = stack.enter_context(twistd_server(store, workdir / "process1", limit))
        # The first login creates the INBOX; the second process starts after it
        # so that the two do not race to create the schema or the INBOX.
        _login_once(first.port)
        second = stack.enter_context(twistd_server(store, workdir / "process2", limit))
        log(f"servers listening on {HOST}:{first.port} and {HOST}:{second.port}")
        started = time.perf_counter()
        results = measure((first.port, second.port), args.idlers, args.rounds, setup_deadline,
                          args.examine)
        for server in (first, second):
            if server.process.poll() is not None:
                raise BenchError(f"a server exited during the run:\n{server.output()}")
            if "Traceback" in server.output(tail=1 << 30):
                log(f"warning: the server on port {server.port} logged an error:\n"
                    + server.output())
        elapsed = time.perf_counter() - started
        own = resource.getrusage(resource.RUSAGE_SELF)
        log(f"this process used {own.ru_utime + own.ru_stime:.1f} s of CPU in {elapsed:.1f} s")
    print(f"twisted_mailhub {commit()}, Python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs ({cpu_model()}), load average {os.getloadavg()[1]:.1f}")
    print(f"\nIDLE push on {label(args.store)}: {args.idlers} idlers "
          f"({'EXAMINE' if args.examine else 'SELECT'} INBOX) over 2 processes, "
          f"{args.rounds} APPENDs alternately through each, measured in {elapsed:.0f} s; "
          f"APPEND round trip median {ms(percentile(results.append_round_trips, 50))} ms\n")
    print(table(results))
    print(f"\nmissed announcements: {results.missed}", flush=True)
    if results.missed:
        log(f"error: {results.missed} announcements did not arrive within "
            f"{ANNOUNCE_DEADLINE:.0f} s of the APPEND OK; {results.behind} idlers were still "
            f"not told of every message {CATCH_UP_DEADLINE:.0f} s after the last round")
        return 1
    return 0


def _login_once(port: int) -> None:
    """Log in and out over a blocking connection (creates the user's INBOX)."""
    import imaplib

    with imaplib.IMAP4(HOST, port, timeout=SERVER_DEADLINE) as client:
        client.login(USER, PASSWORD)
        client.select("INBOX")


if __name__ == "__main__":
    sys.exit(main())
