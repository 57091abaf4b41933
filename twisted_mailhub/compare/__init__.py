"""
``mailhub compare``: the same user tasks over IMAP and over POP3, with the
bytes each protocol moved, its round trips and its wall time.

Run ``python -m twisted_mailhub.compare --imap HOST:PORT --pop3 HOST:PORT
--user NAME --password SECRET [--generate N]``.  Bytes and round trips are
counted by wrapping the clients' sockets (L{counting}); the tasks are in
L{tasks}; L{generate} fills a mailbox to compare on.
"""

from __future__ import annotations

import argparse
import ssl
import sys
from typing import Sequence, TextIO

from twisted_mailhub.compare.counting import (
    Counter,
    CountingIMAP4,
    CountingIMAP4_SSL,
    CountingPOP3,
    CountingPOP3_SSL,
)
from twisted_mailhub.compare.tasks import TASKS, Clients, Result


def _address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]") or "localhost", int(port)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="mailhub compare",
        description="Run the same mail tasks over IMAP and POP3 and compare the cost.")
    parser.add_argument("--imap", type=_address, required=True, metavar="HOST:PORT")
    parser.add_argument("--pop3", type=_address, required=True, metavar="HOST:PORT")
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--tls", action="store_true",
                        help="both addresses are implicit-TLS ports (993/995 style)")
    parser.add_argument("--cafile", help="trust this CA or self-signed certificate")
    parser.add_argument("--insecure", action="store_true",
                        help="do not verify the server certificate")
    parser.add_argument("--generate", type=int, default=0, metavar="N",
                        help="first append N generated messages (and some folders)")
    parser.add_argument("--sender", default="bob@example.com",
                        help="the sender to search for (default: %(default)s)")
    return parser.parse_args(list(argv))


def _context(args: argparse.Namespace) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=args.cafile)
    if args.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def make_clients(args: argparse.Namespace) -> Clients:
    """Connecting functions for the tasks, from the command line options."""
    context = _context(args) if args.tls else None

    def imap(counter: Counter):
        host, port = args.imap
        if context is not None:
            c = CountingIMAP4_SSL(host, port, counter, ssl_context=context, timeout=60)
        else:
            c = CountingIMAP4(host, port, counter, timeout=60)
        c.login(args.user, args.password)
        return c

    def pop3(counter: Counter):
        host, port = args.pop3
        if context is not None:
            c = CountingPOP3_SSL(host, port, counter, context=context, timeout=60)
        else:
            c = CountingPOP3(host, port, counter, timeout=60)
        c.user(args.user)
        c.pass_(args.password)
        return c

    return Clients(imap=imap, pop3=pop3, imap_uncounted=lambda: imap(Counter()),
                   sender=args.sender)


def run_tasks(clients: Clients) -> list[tuple[str, Result, Result]]:
    """Every task over both protocols: C{(task, imap_result, pop3_result)}."""
    return [(name, on_imap(clients), on_pop3(clients)) for name, on_imap, on_pop3 in TASKS]


def format_table(rows: list[tuple[str, Result, Result]]) -> str:
    """An aligned text table, one line per task and protocol."""
    header = ("task", "protocol", "sent", "received", "round trips", "time ms", "outcome")
    lines: list[tuple[str, ...]] = []
    for name, imap_result, pop3_result in rows:
        for protocol, result in (("IMAP", imap_result), ("POP3", pop3_result)):
            label = name if protocol == "IMAP" else ""
            if result.impossible:
                lines.append((label, protocol, "-", "-", "-", "-", result.impossible))
            else:
                c = result.counter
                lines.append((label, protocol, str(c.sent), str(c.received),
                              str(c.round_trips), f"{result.seconds * 1000:.1f}",
                              result.outcome))
    widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header))]
    numeric = {2, 3, 4, 5}

    def render(row: tuple[str, ...]) -> str:
        cells = [cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i])
                 for i, cell in enumerate(row)]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([render(header), rule, *map(render, lines)]) + "\n"


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the comparison; print the table to C{out} (stdout).  Returns 0 or 1."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    out = out or sys.stdout
    clients = make_clients(args)
    try:
        if args.generate:
            from twisted_mailhub.compare.generate import generate

            client = clients.imap_uncounted()
            appended = generate(client, args.generate)
            client.logout()
            out.write(f"appended {appended} generated messages\n\n")
        rows = run_tasks(clients)
    except (OSError, EOFError) as e:
        print(f"mailhub compare: connection failed: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # imaplib.IMAP4.error, poplib.error_proto
        print(f"mailhub compare: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    out.write(format_table(rows))
    return 0
