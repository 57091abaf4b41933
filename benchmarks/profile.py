"""
Where the server spends its time on one benchmark figure: the server runs as
in L{benchmarks.run}, py-spy samples it while the client repeats commands,
and the functions taking most samples are printed.

    python -m benchmarks.profile --store sqlite: -n 10000 "FETCH 1:* BODY.PEEK[HEADER]"
    python -m benchmarks.profile --store sqlite: -n 10000 --pop3-login

Needs py-spy (C{pip install py-spy}) and the right to trace the server
process.  Only samples where a thread holds the GIL are counted (time spent
running Python, not waiting for the database, the disk or the client).  Each IMAP command is sent after C{SELECT INBOX}, C{--repeat} times.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter

from benchmarks.run import PASSWORD, USER, fill, mailhub_server, store_location
from benchmarks.server import raise_fd_limit


def _frame(text: str) -> str:
    """C{func (path/to/file.py:12)} -> C{func (twisted_mailhub/x/file.py)} or C{func (file.py)}."""
    name, _, where = text.partition(" (")
    path = where.rpartition(":")[0] or where.rstrip(")")
    if "twisted_mailhub/" in path:
        path = "twisted_mailhub/" + path.rpartition("twisted_mailhub/")[2]
    else:
        path = path.rpartition("/")[2]
    return f"{name} ({path})"


def summarize(raw: str, top: int) -> str:
    """Top functions by own samples and by samples including callees, from py-spy's raw format."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_frame(f) for f in stack.split(";")]
        own[frames[-1]] += n
        for frame in set(frames):
            if "twisted_mailhub/" in frame:
                inclusive[frame] += n
    out = [f"{total} samples", "", "own time:"]
    out += [f"  {100 * n / total:5.1f}%  {name}" for name, n in own.most_common(top)]
    out += ["", "including callees (twisted_mailhub only):"]
    out += [f"  {100 * n / total:5.1f}%  {name}" for name, n in inclusive.most_common(top * 2)]
    return "\n".join(out)


def _py_spy() -> str:
    beside = os.path.join(os.path.dirname(sys.executable), "py-spy")
    found = shutil.which("py-spy") or (beside if os.path.exists(beside) else None)
    if found is None:
        raise SystemExit("py-spy is not installed: pip install py-spy")
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--store", default="sqlite:", help="store URL, as for benchmarks.run")
    parser.add_argument("-n", "--messages", type=int, default=10_000, help="INBOX size")
    parser.add_argument("--no-fill", action="store_true",
                        help="the store (a path or database URL) is already filled")
    parser.add_argument("--repeat", type=int, default=3, help="times to send each command")
    parser.add_argument("--top", type=int, default=12, help="functions to list")
    parser.add_argument("--pop3-login", action="store_true", help="profile POP3 logins")
    parser.add_argument("--pop3-retr", action="store_true", help="profile POP3 RETR of all")
    parser.add_argument("commands", nargs="*", help="IMAP commands, e.g. 'SEARCH UNSEEN'")
    args = parser.parse_args(argv)
    raise_fd_limit()
    from benchmarks.run import _target

    with store_location(args.store) as real:
        extra = []
        if args.store == "memory:":
            extra = ["--fill", str(args.messages)]
        elif not args.no_fill:
            fill(real, args.messages, 1)
        with mailhub_server(real, *extra) as (proc, info):
            target = _target(args.store, info)
            out = tempfile.NamedTemporaryFile(suffix=".txt", delete=False).name
            spy = subprocess.Popen([_py_spy(), "record", "--pid", str(info["pid"]), "--format",
                                    "raw", "--gil", "--rate", "250", "-o", out],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)  # py-spy attaches
            try:
                if args.commands:
                    client = target.imap()
                    client.command(b"SELECT INBOX")
                    for command in args.commands:
                        for _ in range(args.repeat):
                            client.command(command.encode())
                    client.close()
                for _ in range(args.repeat if args.pop3_login or args.pop3_retr else 0):
                    pop = target.pop3()
                    pop.login(USER, PASSWORD)
                    if args.pop3_retr:
                        pop.retr_all(int(pop.command(b"STAT").split()[1]))
                    pop.quit()
            finally:
                spy.send_signal(signal.SIGINT)
                spy.wait(60)
            with open(out) as f:
                print(summarize(f.read(), args.top))
            os.unlink(out)


if __name__ == "__main__":
    sys.exit(main())
