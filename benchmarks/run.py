"""
The benchmark of issue #8: every figure, for each store and mailbox size,
beside Dovecot's for the same messages when Dovecot is installed.

    python -m benchmarks.run --store sqlite: --store postgresql://postgres@127.0.0.1/postgres \\
        --store mbox: -n 1000 -n 10000

For each store and N: the mailbox is filled with N generated messages
(L{benchmarks.messages}) and 50 small extra mailboxes through the store API,
then the server runs as a separate process (L{benchmarks.server}) and every
figure of L{benchmarks.figures} is measured over loopback IMAP and POP3 by
the pipelining client of L{benchmarks.client}.  Dovecot, when C{dovecot} is
on the PATH and C{--no-dovecot} is not given, is started by the benchmark
with a configuration of its own in a temporary directory
(L{benchmarks.dovecot}) and measured the same way.  The result is printed as
one Markdown table per N.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from typing import Iterator

from benchmarks import dovecot
from benchmarks.figures import FIGURES, MB, Measurer, Target, pss
from benchmarks.messages import generate
from benchmarks.server import PASSWORD, USER, raise_fd_limit

HOST = "127.0.0.1"
START_TIMEOUT = 600.0


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@contextmanager
def store_location(url: str) -> Iterator[str]:
    """
    The store URL to use for one run: C{sqlite:} and C{mbox:} alone become a
    fresh store in a temporary directory, a C{postgresql://} URL names a server
    on which a fresh database is created (and dropped afterwards).
    """
    workdir = tempfile.mkdtemp(prefix="mailhub-bench-")
    dropper = None
    try:
        if url in ("sqlite:", "mbox:"):
            real = url + os.path.join(workdir, "store")
            if url == "mbox:":
                os.makedirs(real[5:])
        elif url.startswith("postgres"):
            real, dropper = fresh_database(url)
        else:
            real = url
        yield real
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if dropper is not None:
            dropper()


def fresh_database(url: str):
    """A new empty database on the server of C{url}, and a function dropping it."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin_url = make_url(url).set(drivername="postgresql+psycopg")
    name = "mailhub_bench_" + uuid.uuid4().hex[:12]

    def run(sql: str) -> None:
        engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(text(sql))
        finally:
            engine.dispose()

    run(f'CREATE DATABASE "{name}"')
    return (admin_url.set(database=name).render_as_string(hide_password=False),
            lambda: run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _server_command(url: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "benchmarks.server", "--store", url, *extra]


def _env() -> dict[str, str]:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    return env


def fill(url: str, n: int, seed: int) -> float:
    """Fill a persistent store in a process of its own; messages per second."""
    out = subprocess.run(_server_command(url, "--fill", str(n), "--seed", str(seed),
                                         "--fill-only"),
                         env=_env(), capture_output=True, text=True, timeout=24 * 3600)
    if out.returncode != 0:
        raise RuntimeError(f"filling {url} failed:\n{out.stderr}")
    return n / json.loads(out.stdout.strip().splitlines()[-1])["seconds"]


@contextmanager
def mailhub_server(url: str, *extra: str) -> Iterator[tuple[subprocess.Popen, dict]]:
    """Run L{benchmarks.server}; yield the process and its C{{imap, pop3, pid}} line."""
    proc = subprocess.Popen(_server_command(url, *extra), env=_env(), stdout=subprocess.PIPE,
                            text=True)
    try:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the server for {url} exited with {proc.wait()}")
        yield proc, json.loads(line)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def measure_mailhub(url: str, n: int, args) -> tuple[dict[str, float], float | None]:
    """Every figure for the store C{url} at N; also the fill rate (msg/s)."""
    with store_location(url) as real:
        rate = None
        extra = ["--seed", str(args.seed)]
        if url != "memory:":
            log(f"{url} N={n}: filling")
            rate = fill(real, n, args.seed)
        else:
            extra += ["--fill", str(n)]
        with mailhub_server(real, *extra) as (proc, info):
            measurer = Measurer(_target(url, info), n, args.seed, args.idle, log)
            measurer.run(idle=False)
        # The idle connections are measured on a fresh server process: the
        # one above has a heap already grown by the bulk figures, into which
        # new connections would fit without growing the process.
        if args.idle > 0:
            with mailhub_server(real, "--seed", str(args.seed)) as (proc, info):
                measurer.target = _target(url, info)
                measurer.idle_connections()
    return measurer.results, rate


def _target(url: str, info: dict) -> Target:
    pid = info["pid"]
    return Target(url, HOST, info["imap"], info["pop3"], USER, PASSWORD,
                  session_pid=lambda: pid, total_memory=lambda: pss(pid))


def measure_dovecot(n: int, args) -> dict[str, float] | None:
    """Dovecot's figures at N, or C{None} (and the reason on stderr) if it could not run."""
    try:
        with dovecot.running(n, args.seed, USER, PASSWORD, log, args.idle) as target:
            return Measurer(target, n, args.seed, args.idle, log).run()
    except Exception as e:
        log(f"Dovecot N={n}: not measured: {e}")
        return None


# -- the table -----------------------------------------------------------------------


def number(value: float | None) -> str:
    """A figure for people: thousands separated, as many decimals as it deserves."""
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def relative(figure, value: float, theirs: float | None) -> str:
    """How many times Dovecot's speed: above 1 is faster than Dovecot."""
    if theirs is None or not value or not theirs:
        return "-"
    ratio = value / theirs if figure.higher_is_better else theirs / value
    return f"{ratio:.2f}x"


def label(url: str) -> str:
    """A store URL's column title: its scheme (no path, user or password)."""
    return url.partition(":")[0].partition("+")[0] or url


def table(n: int, stores: list[str], results: dict, theirs: dict[str, float] | None) -> str:
    """The Markdown table of one N: a row per figure, columns per store."""
    head = ["figure", "unit", "goal", "Dovecot"]
    for store in stores:
        head += [label(store), "vs Dovecot", "met"]
    rows = [head, ["---"] * len(head)]
    for figure in FIGURES:
        dove = theirs.get(figure.name) if theirs else None
        row = [figure.name, figure.unit, str(figure.goal) if figure.goal else "-", number(dove)]
        for store in stores:
            value = results[store].get(figure.name)
            met = figure.goal.met(value, dove) if figure.goal and value is not None else None
            row += [number(value), relative(figure, value, dove),
                    "-" if met is None else ("yes" if met else "no")]
        rows.append(row)
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def commit() -> str:
    """The checkout's commit, marked when the server's code has uncommitted changes."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", root, *args], capture_output=True, text=True,
                              timeout=30).stdout.strip()

    try:
        head = git("rev-parse", "--short", "HEAD") or "?"
        dirty = git("status", "--porcelain", "--", "twisted_mailhub", "plugins")
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return head + (" with uncommitted changes" if dirty else "")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--store", action="append", default=[],
                        help="store URL (repeatable).  'sqlite:' and 'mbox:' alone make a fresh "
                        "store in a temporary directory; a postgresql:// URL names a server on "
                        "which a fresh database is created and dropped per run  "
                        "[default: sqlite:]")
    parser.add_argument("-n", "--messages", type=int, action="append", default=[],
                        help="INBOX size (repeatable)  [default: 1000]")
    parser.add_argument("--idle", type=int, default=10_000,
                        help="idle authenticated connections to open (0: do not measure)  "
                        "[default: 10000]")
    parser.add_argument("--seed", type=int, default=1, help="message generator seed")
    parser.add_argument("--no-dovecot", action="store_true",
                        help="do not measure Dovecot even when it is installed")
    args = parser.parse_args(argv)
    stores = args.store or ["sqlite:"]
    sizes = args.messages or [1000]
    for n in sizes:
        if n < 10:
            parser.error("-n: at least 10 messages")
    raise_fd_limit()
    version = None if args.no_dovecot else dovecot.version()
    print(f"twisted_mailhub {commit()}, Python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs, Dovecot {version or 'not measured'}, "
          f"{args.idle} idle connections, load average {os.getloadavg()[1]:.1f}", flush=True)
    for n in sizes:
        size = sum(len(generate(i, args.seed).content) for i in range(n))
        results: dict[str, dict[str, float]] = {}
        notes = []
        for store in stores:
            started = time.perf_counter()
            results[store], rate = measure_mailhub(store, n, args)
            notes.append(f"{label(store)} fill {number(rate)} msg/s, measured in "
                         f"{time.perf_counter() - started:.0f} s")
        theirs = None
        if version:
            started = time.perf_counter()
            theirs = measure_dovecot(n, args)
            if theirs is None:
                notes.append("Dovecot failed, see stderr")
            else:
                notes.append(f"Dovecot measured in {time.perf_counter() - started:.0f} s")
        notes.append(f"load average {os.getloadavg()[1]:.1f}")
        print(f"\nN = {n:,} messages, {size / MB:,.0f} MB ({'; '.join(notes)})\n")
        print(table(n, stores, results, theirs), flush=True)


if __name__ == "__main__":
    main()
