"""
The figures of the benchmark, measured over loopback against any IMAP and
POP3 server (twisted_mailhub or Dovecot) holding the generated mailbox.

Every figure takes a bounded number of runs: latencies are the median of a
fixed number of single commands; bulk figures are the best of up to three
runs, stopping earlier once a run budget is spent.  Times are wall-clock on
the client, from writing the first command to reading the last tagged reply.
"""

from __future__ import annotations

import random
import statistics
import threading
import time
from dataclasses import dataclass
from typing import Callable

from benchmarks.client import IMAPClient, POP3Client
from benchmarks.messages import SEARCH_WORD, extra_mailbox_names, generate

MB = 10**6
MIB = 2**20


@dataclass(frozen=True)
class Goal:
    """A target: C{value} compared with C{op}; relative goals compare with Dovecot."""

    op: str  # ">=" or "<="
    value: float
    relative: bool = False

    def met(self, figure: float, dovecot: float | None) -> bool | None:
        if self.relative and dovecot is None:
            return None
        target = self.value * dovecot if self.relative else self.value
        return figure >= target if self.op == ">=" else figure <= target

    def __str__(self) -> str:
        if self.relative:
            return f"{self.op} {'' if self.value == 1 else f'{self.value:g}x '}Dovecot"
        return f"{self.op} {self.value:,g}"


@dataclass(frozen=True)
class Figure:
    """One row of the table."""

    name: str
    unit: str
    goal: Goal | None
    higher_is_better: bool


def _f(name, unit, goal=None):
    return Figure(name, unit, goal, unit.endswith("/s"))


FIGURES = [
    _f("FETCH 1:* (UID FLAGS)", "msg/s", Goal(">=", 500_000)),
    _f("FETCH 1:* (ENVELOPE BODYSTRUCTURE)", "msg/s", Goal(">=", 40_000)),
    _f("FETCH 1:* BODY.PEEK[HEADER]", "msg/s", Goal(">=", 55_000)),
    _f("BODY.PEEK[] of 500 random messages", "MB/s", Goal(">=", 250)),
    _f("one BODY.PEEK[] latency", "ms", Goal("<=", 1)),
    _f(f'SEARCH TEXT "{SEARCH_WORD}"', "ms", Goal("<=", 20)),
    _f(f'SEARCH BODY "{SEARCH_WORD}"', "ms", Goal("<=", 20)),
    _f("SEARCH UNSEEN", "ms", Goal("<=", 2)),
    _f("SEARCH FLAGGED", "ms", Goal("<=", 2)),
    _f("STORE +FLAGS 1:*", "ms", Goal("<=", 170)),
    _f("COPY of 100", "ms", Goal("<=", 2, True)),
    _f("MOVE of 100", "ms", Goal("<=", 2, True)),
    _f("EXPUNGE of 100", "ms", Goal("<=", 2, True)),
    _f("STATUS of 50 mailboxes", "ms", Goal("<=", 10)),
    _f('LIST "" *', "ms", Goal("<=", 2)),
    _f("APPEND, 1 connection (durable)", "msg/s", Goal(">=", 1, True)),
    _f("APPEND, 8 connections (durable)", "msg/s", Goal(">=", 1, True)),
    _f("POP3 login", "ms", Goal("<=", 20)),
    _f("POP3 RETR of all", "MB/s", Goal(">=", 80)),
    _f("SELECT latency", "ms"),
    _f("STATUS latency", "ms"),
    _f("STORE of one message", "ms"),
    _f("NOOP latency", "ms"),
    _f("memory per message (SELECT + FETCH FLAGS)", "B/msg"),
    _f("idle authenticated connections", "MiB", Goal("<=", 1024)),
]
FIGURE_NAMES = [f.name for f in FIGURES]


@dataclass
class Target:
    """
    A running server holding the generated mailbox of C{n} messages.

    C{session_pid} returns the process serving the one open IMAP
    connection; C{total_memory} the memory (PSS, bytes) of all the server's
    processes.
    """

    name: str
    host: str
    imap_port: int
    pop3_port: int
    user: str
    password: str
    session_pid: Callable[[], int]
    total_memory: Callable[[], int]

    def imap(self, login: bool = True) -> IMAPClient:
        client = IMAPClient(self.host, self.imap_port)
        if login:
            client.login(self.user, self.password)
        return client

    def pop3(self) -> POP3Client:
        return POP3Client(self.host, self.pop3_port)


def rss(pid: int) -> int:
    """Resident set size of process C{pid}, in bytes."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise LookupError(pid)


def pss(pid: int) -> int:
    """Proportional set size of C{pid} (shared pages divided among sharers), in bytes."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        return 0
    return 0


def _clock(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median_ms(fn: Callable[[], object], runs: int) -> float:
    """Median wall time of C{runs} calls, in milliseconds."""
    return statistics.median(_clock(fn) for _ in range(runs)) * 1000


def best(fn: Callable[[], object], runs: int = 3, budget: float = 4.0) -> float:
    """Shortest of up to C{runs} calls, stopping once C{budget} seconds are spent."""
    times: list[float] = []
    while len(times) < runs and sum(times) < budget:
        times.append(_clock(fn))
    return min(times)


class Measurer:
    """Measures every figure of L{FIGURES} against one L{Target} of C{n} messages."""

    def __init__(self, target: Target, n: int, seed: int = 1, idle: int = 10_000,
                 log: Callable[[str], None] = lambda text: None) -> None:
        self.target = target
        self.n = n
        self.seed = seed
        self.idle = idle
        self.log = log
        self.results: dict[str, float] = {}
        self.rng = random.Random(seed)

    def _set(self, name: str, value: float) -> None:
        assert name in FIGURE_NAMES, name
        self.results[name] = value
        self.log(f"{self.target.name} N={self.n}: {name} = {value:,.2f}")

    def run(self, idle: bool = True) -> dict[str, float]:
        """
        Measure every figure, in an order that leaves the mailbox as each
        figure expects; the idle connections last, unless C{idle} is false
        (then call L{idle_connections} on a fresh server process, whose free
        heap is not already large from the bulk figures).
        """
        client = self.target.imap()
        try:
            self.fetches(client)
            self.searches(client)
            self.latencies(client)
            self.writes(client)
        finally:
            client.close()
        self.appends()
        self.pop3()
        if idle:
            self.idle_connections()
        return self.results

    # -- reading -------------------------------------------------------------------

    def fetches(self, c: IMAPClient) -> None:
        n = self.n
        pid = self.target.session_pid()
        before = rss(pid)
        c.command(b"SELECT INBOX")
        reply = c.command(b"FETCH 1:* (UID FLAGS)")
        if reply.fetches != n:
            raise AssertionError(f"FETCH 1:* answered {reply.fetches} of {n} messages")
        self._set("memory per message (SELECT + FETCH FLAGS)", (rss(pid) - before) / n)
        for name, items in (("FETCH 1:* (UID FLAGS)", b"(UID FLAGS)"),
                            ("FETCH 1:* (ENVELOPE BODYSTRUCTURE)", b"(ENVELOPE BODYSTRUCTURE)"),
                            ("FETCH 1:* BODY.PEEK[HEADER]", b"BODY.PEEK[HEADER]")):
            self._set(name, n / best(lambda: c.command(b"FETCH 1:* " + items)))
        picks = [self.rng.randint(1, n) for _ in range(500)]
        commands = [b"FETCH %d BODY.PEEK[]" % i for i in picks]
        octets = []

        def bodies():
            replies = c.pipeline(commands)
            octets.append(sum(r.literal_bytes for r in replies))

        elapsed = best(bodies)
        self._set("BODY.PEEK[] of 500 random messages", octets[0] / elapsed / MB)
        singles = iter([self.rng.randint(1, n) for _ in range(31)])
        self._set("one BODY.PEEK[] latency", median_ms(
            lambda: c.command(b"FETCH %d BODY.PEEK[]" % next(singles)), 31))

    def searches(self, c: IMAPClient) -> None:
        word = SEARCH_WORD.encode()
        for key in (b"TEXT", b"BODY"):
            self._set(f'SEARCH {key.decode()} "{SEARCH_WORD}"',
                      best(lambda: c.command(b"SEARCH %s %s" % (key, word)), 3, 3.0) * 1000)
        self._set("SEARCH UNSEEN", median_ms(lambda: c.command(b"SEARCH UNSEEN"), 9))
        self._set("SEARCH FLAGGED", median_ms(lambda: c.command(b"SEARCH FLAGGED"), 9))

    def latencies(self, c: IMAPClient) -> None:
        middle = b"%d" % (self.n // 2 + 1)
        self._set("NOOP latency", median_ms(lambda: c.command(b"NOOP"), 21))
        self._set("SELECT latency", median_ms(lambda: c.command(b"SELECT INBOX"), 7))
        self._set("STATUS latency", median_ms(
            lambda: c.command(b"STATUS INBOX (MESSAGES UNSEEN UIDNEXT)"), 9))
        modes = iter([b"+", b"-"] * 5)
        self._set("STORE of one message", median_ms(
            lambda: c.command(b"STORE %s %sFLAGS (\\Draft)" % (middle, next(modes))), 9))
        c.command(b"STORE " + middle + b" -FLAGS.SILENT (\\Draft)")
        status = [b"STATUS %s (MESSAGES UNSEEN UIDNEXT)" % name.encode()
                  for name in extra_mailbox_names()]
        self._set("STATUS of 50 mailboxes", best(lambda: c.pipeline(status)) * 1000)
        self._set('LIST "" *', median_ms(lambda: c.command(b'LIST "" *'), 9))

    # -- writing -------------------------------------------------------------------

    def writes(self, c: IMAPClient) -> None:
        def store_all():
            elapsed = _clock(lambda: c.command(b"STORE 1:* +FLAGS (\\Draft)"))
            c.command(b"STORE 1:* -FLAGS.SILENT (\\Draft)")
            return elapsed

        times = [store_all()]
        while len(times) < 3 and sum(times) < 4.0:
            times.append(store_all())
        self._set("STORE +FLAGS 1:*", min(times) * 1000)
        # Three runs each (the best is kept), on the first k messages: COPY
        # into three mailboxes, MOVE then EXPUNGE each time the k messages
        # that are now first.
        k = min(100, self.n // 10)
        folders = [name.encode() for name in extra_mailbox_names()]
        self._set("COPY of 100", 1000 * min(
            _clock(lambda: c.command(b"COPY 1:%d %s" % (k, folders[run]))) for run in range(3)))
        self._set("MOVE of 100", 1000 * min(
            _clock(lambda: c.command(b"MOVE 1:%d %s" % (k, folders[3 + run])))
            for run in range(3)))

        def expunge() -> float:
            c.command(b"STORE 1:%d +FLAGS.SILENT (\\Deleted)" % k)
            return _clock(lambda: c.command(b"EXPUNGE"))

        self._set("EXPUNGE of 100", 1000 * min(expunge() for _ in range(3)))

    def appends(self, count: int = 100, budget: float = 5.0) -> None:
        """
        APPEND C{count} generated messages on one connection, then twice as
        many over eight connections at once, one APPEND at a time on each;
        each stops early once C{budget} seconds have passed.  Connections
        are logged in and messages generated before the clock starts.
        """
        first = self.n + 10_000
        errors: list[Exception] = []

        def append_many(client: IMAPClient, messages: list, done: list[int],
                        go: threading.Barrier, deadline: list[float]) -> None:
            go.wait()
            try:
                for m in messages:
                    client.append("INBOX", m.content, " ".join(sorted(m.flags)))
                    done.append(1)
                    if time.perf_counter() > deadline[0]:
                        break
            except Exception as e:
                errors.append(e)

        for name, connections in (("APPEND, 1 connection (durable)", 1),
                                  ("APPEND, 8 connections (durable)", 8)):
            per = count if connections == 1 else 2 * count // connections
            base = first + connections * 100_000
            batches = [[generate(base + k * 1000 + j, self.seed, self.target.user)
                        for j in range(per)] for k in range(connections)]
            clients = [self.target.imap() for _ in range(connections)]
            done: list[int] = []
            go = threading.Barrier(connections + 1)
            deadline = [0.0]
            threads = [threading.Thread(target=append_many, args=(c, b, done, go, deadline))
                       for c, b in zip(clients, batches)]
            for t in threads:
                t.start()
            start = time.perf_counter()
            deadline[0] = start + budget
            go.wait()
            for t in threads:
                t.join()
            if errors:
                raise errors[0]
            self._set(name, len(done) / (time.perf_counter() - start))
            for c in clients:
                c.close()

    # -- POP3 ----------------------------------------------------------------------

    def pop3(self) -> None:
        t = self.target

        def login():
            client = t.pop3()
            client.login(t.user, t.password)
            return client

        times = []
        for _ in range(5):
            start = time.perf_counter()
            client = login()
            times.append(time.perf_counter() - start)
            client.quit()
        self._set("POP3 login", statistics.median(times) * 1000)
        client = login()
        try:
            count = int(client.command(b"STAT").split()[1])
            count = min(count, 10_000)
            octets = []
            elapsed = _clock(lambda: octets.append(client.retr_all(count)))
            assert octets
        finally:
            client.quit()
        self._set("POP3 RETR of all", octets[0] / elapsed / MB)

    # -- connections ---------------------------------------------------------------

    def idle_connections(self, batch: int = 200) -> None:
        """Open and log in C{self.idle} connections; the server's memory growth, MiB."""
        if self.idle <= 0:
            return
        t = self.target
        before = t.total_memory()
        clients: list[IMAPClient] = []
        login = b'a LOGIN "%s" "%s"\r\n' % (t.user.encode(), t.password.encode())
        try:
            while len(clients) < self.idle:
                group = [IMAPClient(t.host, t.imap_port)
                         for _ in range(min(batch, self.idle - len(clients)))]
                clients += group
                for c in group:
                    c.stream.sock.sendall(login)
                for c in group:
                    reply = c.read_reply(b"a")
                    if not reply.ok:
                        raise AssertionError(f"idle login {len(clients)}: {reply.text!r}")
            after = t.total_memory()
        finally:
            for c in clients:
                c.stream.close()
        self._set("idle authenticated connections", (after - before) / MIB)
