"""
The rules every L{IRestorableMailbox} applies, in one place: which UID an
append request gets, and when a mailbox may take another UIDVALIDITY.
"""

from __future__ import annotations

from twisted_mailhub.errors import IdentityConflict

#: UIDs and UIDVALIDITY values are non-zero 32-bit numbers (RFC 3501 section 2.3.1.1).
MAX_UID = 2**32 - 1


def next_uid(uidnext: int, wanted: int | None) -> int:
    """
    The UID a request asking for C{wanted} (C{None}: any) gets when the
    mailbox's UIDNEXT is C{uidnext}; the caller's UIDNEXT becomes that
    plus one.  Raises L{IdentityConflict} for a UID already passed.
    """
    if wanted is None:
        return uidnext
    if not uidnext <= wanted <= MAX_UID:
        raise IdentityConflict(
            f"UID {wanted} cannot be given: UIDNEXT is {uidnext}, and UIDs only ascend"
        )
    return wanted


def fresh_uidvalidity(last: int, now: float) -> int:
    """
    A UIDVALIDITY after C{last}, the last one handed out: the clock C{now}
    in seconds, or one more than C{last} if that is not less; 1 again after
    the largest.
    """
    value = max(last + 1, int(now))
    return 1 if value > MAX_UID else value


def check_identity(uidvalidity: int, uidnext: int) -> None:
    """Raise C{ValueError} unless both values are valid 32-bit IMAP numbers."""
    if not 1 <= uidvalidity <= MAX_UID:
        raise ValueError(f"UIDVALIDITY out of range: {uidvalidity}")
    if not 1 <= uidnext <= MAX_UID:
        raise ValueError(f"UIDNEXT out of range: {uidnext}")


def refuse_new_uidvalidity(name: str, current: int, wanted: int) -> IdentityConflict:
    """The error for a mailbox that has held messages and so keeps its UIDVALIDITY."""
    return IdentityConflict(
        f"Mailbox {name} has held messages under UIDVALIDITY {current}; "
        f"it cannot take UIDVALIDITY {wanted}"
    )
