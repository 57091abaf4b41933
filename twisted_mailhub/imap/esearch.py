"""
Pieces of ESEARCH responses shared by SEARCH and SORT: the PARTIAL return
option (RFC 9394, first in RFC 5267 section 4.4) and the result sets of
ESEARCH data items.

A result list is in the searching command's requested order (RFC 5267
section 4.1): mailbox order for SEARCH, the sort order for SORT.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PartialRange:
    """
    ``PARTIAL first:last`` as the client wrote it (RFC 9394 section 4):
    both positive (counted from the first result, 1 is the first) or both
    negative (counted from the last, -1 is the last).  The order of the
    two does not matter, 500:400 is 400:500.
    """

    first: int
    last: int

    def pick(self, results: Sequence[int]) -> list[int]:
        """
        The results at the range's positions, in the order of C{results};
        positions past either end are left out (RFC 9394 section 3.1).
        """
        low, high = sorted((abs(self.first), abs(self.last)))
        if self.first > 0:
            return list(results[low - 1:high])
        count = len(results)
        if low > count:
            return []
        return list(results[max(count - high, 0):count - low + 1])

    def item(self, picked: Sequence[int], render) -> bytes:
        """
        The ``PARTIAL (range results)`` data item: the range as requested,
        the results as C{render} writes a set, or NIL when there are none.
        """
        results = render(picked) if picked else b"NIL"
        return b"PARTIAL (%d:%d %s)" % (self.first, self.last, results)


def saved_with_partial(returns: set[str], partial: PartialRange, results: Sequence[int]
                       ) -> list[int]:
    """
    What ``$`` holds after SAVE with PARTIAL (RFC 9394 section 3.2, table
    1), C{results} being the UIDs found in the requested order: with COUNT,
    all of them; otherwise those PARTIAL returns, and the MIN and MAX
    messages when those were asked for too.  Ascending, as ``$`` is a set.
    """
    if "COUNT" in returns:
        return sorted(results)
    saved = set(partial.pick(results))
    if results and "MIN" in returns:
        saved.add(results[0])
    if results and "MAX" in returns:
        saved.add(results[-1])
    return sorted(saved)
