"""
Sets of message numbers (UIDs or sequence numbers) as ranges.

A L{SequenceSet} holds ranges as they were written, ``*`` (the largest number
in use) included, in the text form of IMAP's ``sequence-set`` (RFC 3501
section 9, RFC 9051 section 9).  It is resolved against a mailbox only when
it is used, because the largest number changes.  Stores receive these inside
search criteria (L{twisted_mailhub.criteria}), so they live outside the
protocol packages.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Iterable, Sequence

STAR = 0  # stands for "*" in a range end; real numbers are >= 1


@dataclass(frozen=True, slots=True)
class SequenceSet:
    """
    Ranges as written: each is C{(low, high)} where either end may be
    L{STAR}; C{(5, 5)} is a single number.  C{saved} marks the ``$`` of
    RFC 5182 (the last SEARCH result), in which case C{ranges} is empty.
    """

    ranges: tuple[tuple[int, int], ...]
    saved: bool = False

    @classmethod
    def parse(cls, text: str) -> "SequenceSet":
        """Parse ``1,3:5,7:*``; raise C{ValueError} saying what is wrong."""
        if text == "$":
            return cls((), saved=True)
        if not text:
            raise ValueError("empty sequence set")
        ranges = []
        for item in text.split(","):
            if ":" in item:
                low, _, high = item.partition(":")
                ranges.append((_number(low), _number(high)))
            else:
                n = _number(item)
                ranges.append((n, n))
        return cls(tuple(ranges))

    @classmethod
    def from_numbers(cls, numbers: Iterable[int]) -> "SequenceSet":
        """The compact set of C{numbers} (any order, duplicates allowed)."""
        return cls(tuple(compress(sorted(set(numbers)))))

    def bounds(self, largest: int) -> list[tuple[int, int]]:
        """The ranges with ``*`` replaced by C{largest}, each low <= high."""
        out = []
        for low, high in self.ranges:
            low = largest if low == STAR else low
            high = largest if high == STAR else high
            if low > high:
                low, high = high, low
            out.append((low, high))
        return out

    def resolve(self, count: int) -> list[int]:
        """
        Message sequence numbers this set names in a mailbox of C{count}
        messages, ascending and unique.  Raises C{ValueError} if a number is
        out of range (RFC 9051 section 6.4.5: the command is then BAD), or if
        the mailbox is empty.
        """
        result: set[int] = set()
        for low, high in self.bounds(count):
            if low < 1 or high > count:
                raise ValueError("invalid message sequence number")
            result.update(range(low, high + 1))
        return sorted(result)

    def resolve_uids(self, uids: Sequence[int]) -> list[int]:
        """
        The existing UIDs among C{uids} (ascending) that this set names.
        ``*`` is the largest UID in use; a range such as ``559:*`` always
        includes it even when 559 is larger (RFC 3501 section 6.4.8).
        Non-existent UIDs are ignored.
        """
        if not uids:
            return []
        largest = uids[-1]
        picked: set[int] = set()
        for low, high in self.bounds(largest):
            start = bisect.bisect_left(uids, low)
            stop = bisect.bisect_right(uids, high)
            picked.update(uids[start:stop])
        return sorted(picked)

    def contains(self, number: int, largest: int) -> bool:
        """Whether C{number} is named, with ``*`` standing for C{largest}."""
        return any(low <= number <= high for low, high in self.bounds(largest))

    def __str__(self) -> str:
        if self.saved:
            return "$"
        return ",".join(_format(low, high) for low, high in self.ranges)


def compress(numbers: Sequence[int]) -> list[tuple[int, int]]:
    """Ascending unique C{numbers} as the fewest C{(low, high)} ranges."""
    ranges: list[tuple[int, int]] = []
    for n in numbers:
        if ranges and ranges[-1][1] == n - 1:
            ranges[-1] = (ranges[-1][0], n)
        else:
            ranges.append((n, n))
    return ranges


def format_numbers(numbers: Iterable[int]) -> str:
    """``1:3,7`` for C{[1, 2, 3, 7]} (as used by COPYUID and ESEARCH)."""
    return str(SequenceSet.from_numbers(numbers))


def _number(text: str) -> int:
    if text == "*":
        return STAR
    if not text.isdigit() or text.startswith("0") or not text.isascii():
        raise ValueError(f"invalid number in sequence set: {text!r}")
    n = int(text)
    if n > 0xFFFFFFFF:
        raise ValueError(f"number too large in sequence set: {text}")
    return n


def _format(low: int, high: int) -> str:
    a = "*" if low == STAR else str(low)
    if low == high:
        return a
    return a + ":" + ("*" if high == STAR else str(high))
