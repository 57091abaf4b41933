"""
What a store's consistency check reports (L{ICheckableBackend.check}).

A check compares what a store keeps about its mail (counters, indexes,
reference counts) with the mail itself, and can put right what it finds.
Each finding is one L{Problem}; a L{CheckReport} holds them all with how
much was looked at.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Problem:
    """
    One inconsistency.

    C{kind} is a short stable name for the sort of problem (C{"counters"},
    C{"uidnext"}, C{"orphaned-content"}, ...), C{description} says what
    was found (and, once repaired, what was done) in a sentence for the
    admin.  C{user} and C{mailbox} name where it is, when it belongs to
    one.  C{repaired} is true when the check put it right.
    """

    kind: str
    description: str
    user: str | None = None
    mailbox: str | None = None
    repaired: bool = False

    def where(self) -> str:
        """C{user}, C{user:mailbox}, or C{"store"} for store-wide problems."""
        if self.user is None:
            return "store"
        if self.mailbox is None:
            return self.user
        return f"{self.user}:{self.mailbox}"


@dataclass(slots=True)
class CheckReport:
    """Everything one check found, and how many users, mailboxes and messages it read."""

    problems: list[Problem] = field(default_factory=list)
    users: int = 0
    mailboxes: int = 0
    messages: int = 0

    @property
    def clean(self) -> bool:
        """True when nothing was found."""
        return not self.problems

    @property
    def unrepaired(self) -> list[Problem]:
        """The problems still there."""
        return [problem for problem in self.problems if not problem.repaired]

    def add(self, problem: Problem) -> None:
        """Record C{problem}."""
        self.problems.append(problem)

    def merge(self, other: CheckReport) -> None:
        """Add C{other}'s problems and counts to this report."""
        self.problems.extend(other.problems)
        self.users += other.users
        self.mailboxes += other.mailboxes
        self.messages += other.messages
