"""
``mailhub check [--repair] [USER...]``: compare a store's bookkeeping with
its mail (L{ICheckableBackend}), and with C{--repair} put it right.

Each problem is printed on one line, C{where: what}, ending with what was
done when repaired; a summary line follows.  Naming users checks only
their mailboxes; without, every user is checked and so is what belongs to
no user (the SQL store's contents nobody refers to, for instance).

Exit status: 0 when the store is clean, or every problem found was
repaired; 1 when problems remain (or the check could not run); 2 for a
usage error, or a store that cannot be checked.
"""

from __future__ import annotations

from typing import Sequence

from twisted_mailhub.admin.common import AdminError, command_parser, run, settings_of
from twisted_mailhub.config import MailhubSettings
from twisted_mailhub.consistency import CheckReport
from twisted_mailhub.interfaces import IBackend, ICheckableBackend


def main(argv: Sequence[str]) -> int:
    """C{mailhub check}: returns the exit status."""
    parser = command_parser(
        "check", "Check that a store's counters, indexes and references agree with the "
        "mail it holds; with --repair, make them agree.  Safe while the server runs.")
    parser.add_argument("users", nargs="*", metavar="USER",
                        help="check only these users' mailboxes (default: everything)")
    parser.add_argument("--repair", action="store_true",
                        help="repair what is found (a message whose content is lost is "
                        "removed; everything else is made to agree with the messages)")
    args = parser.parse_args(argv)
    settings = settings_of(parser, args)
    unsupported: list[bool] = []

    async def work(backend: IBackend, settings: MailhubSettings) -> int:
        checkable = ICheckableBackend(backend, None)
        if checkable is None:
            unsupported.append(True)
            raise AdminError(f"this store ({type(backend).__name__}) has no consistency check")
        report = await checkable.check(args.users or None, repair=args.repair)
        for line in report_lines(report):
            print(line)
        return 1 if report.unrepaired else 0

    status = run(work, settings)
    return 2 if unsupported else status


def report_lines(report: CheckReport) -> list[str]:
    """The lines C{mailhub check} prints for C{report}."""
    lines = [f"{problem.where()}: {problem.description}" for problem in report.problems]
    checked = (f"{report.users} user(s), {report.mailboxes} mailbox(es), "
               f"{report.messages} message(s) checked")
    if report.clean:
        lines.append(f"{checked}: no problem found")
    elif report.unrepaired:
        lines.append(f"{checked}: {len(report.unrepaired)} problem(s) found"
                     + ("" if len(report.unrepaired) < len(report.problems) else
                        "; run again with --repair to fix them"))
    else:
        lines.append(f"{checked}: {len(report.problems)} problem(s) found and repaired")
    return lines
