"""
LIST and LSUB matching (RFC 3501 sections 6.3.8-6.3.9, RFC 5258, RFC 3348).

Pure functions over names: which mailbox names a reference and pattern
select, and which attributes each LIST response carries.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Iterable

from twisted_mailhub.model import MailboxInfo


@lru_cache(maxsize=256)
def pattern_regex(pattern: str, delimiter: str = "/") -> re.Pattern[str]:
    """
    ``*`` matches any characters, ``%`` any but the delimiter.  A leading
    ``INBOX`` matches case-insensitively (INBOX is case-insensitive).
    """
    out = []
    head, sep, rest = pattern.partition(delimiter)
    if head.upper() == "INBOX":
        pattern = "INBOX" + sep + rest
    for ch in pattern:
        if ch == "*":
            out.append(".*")
        elif ch == "%":
            out.append("[^" + re.escape(delimiter) + "]*")
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out), re.DOTALL)


def canonical_pattern(reference: str, pattern: str, delimiter: str = "/") -> str:
    """
    Join reference and pattern (RFC 3501 6.3.8).  A pattern starting with
    the delimiter is taken as absolute; otherwise the two are concatenated.
    """
    if pattern.startswith(delimiter) or not reference:
        return pattern
    return reference + pattern


def matches(name: str, pattern: str, delimiter: str = "/") -> bool:
    if name.upper() == "INBOX":
        name = "INBOX"
    return pattern_regex(pattern, delimiter).fullmatch(name) is not None


@dataclass(slots=True)
class ListEntry:
    name: str
    attributes: list[str] = field(default_factory=list)
    # RFC 5258 CHILDINFO extended data (SUBSCRIBED) for RECURSIVEMATCH.
    childinfo: bool = False


def list_entries(
    infos: Iterable[MailboxInfo],
    patterns: Iterable[str],
    delimiter: str = "/",
    *,
    subscribed: set[str] | None = None,
    select_subscribed: bool = False,
    recursive: bool = False,
    return_subscribed: bool = False,
    select_special_use: bool = False,
    children: bool = True,
    special_use: bool = True,
) -> list[ListEntry]:
    """
    Entries for a LIST (basic or extended).  C{subscribed} is the user's
    subscription set (needed for the SUBSCRIBED options).
    """
    infos = list(infos)
    by_name = {info.name: info for info in infos}
    names = sorted(by_name)
    subscribed = subscribed or set()
    regexes = [pattern_regex(p, delimiter) for p in patterns]

    # Every name that has a mailbox below it, found once: asking each name
    # in turn against all the others made LIST quadratic in mailboxes.
    parents: set[str] = set()
    for name in names:
        head, sep, _ = name.rpartition(delimiter)
        while sep and head not in parents:
            parents.add(head)
            head, sep, _ = head.rpartition(delimiter)

    def has_children(name: str) -> bool:
        return name in parents

    def childinfo(name: str) -> bool:
        # RFC 5258 section 3.5: CHILDINFO says a descendant meets the
        # selection criteria; it is suppressed when every such descendant
        # is returned itself (they all match the patterns).
        prefix = name + delimiter
        return any(s.startswith(prefix) and not any(r.fullmatch(s) for r in regexes)
                   for s in subscribed)

    entries: list[ListEntry] = []
    if select_subscribed:
        candidates = sorted(set(subscribed) | set(names))
    else:
        candidates = names
    seen: set[str] = set()
    for name in candidates:
        if not any(r.fullmatch(name) for r in regexes):
            continue
        info = by_name.get(name)
        attrs: list[str] = []
        if select_subscribed and name not in subscribed:
            if not recursive:
                continue
            # RECURSIVEMATCH: a non-subscribed parent of a subscribed child
            # that is not returned itself.
            if not childinfo(name):
                continue
            entry = ListEntry(name, [], childinfo=True)
            _fill(entry, info, name, has_children, children, special_use, return_subscribed,
                  subscribed)
            entries.append(entry)
            seen.add(name)
            continue
        if info is None:
            attrs.append("\\NonExistent")
        entry = ListEntry(name, attrs, childinfo=select_subscribed and recursive
                          and childinfo(name))
        _fill(entry, info, name, has_children, children, special_use,
              return_subscribed or select_subscribed, subscribed)
        if select_special_use and (info is None or not info.special_use):
            continue
        entries.append(entry)
        seen.add(name)
    return entries


def _fill(entry, info, name, has_children, children, special_use, show_subscribed, subscribed):
    if info is not None and not info.selectable:
        entry.attributes.append("\\Noselect")
    if children and info is not None:
        entry.attributes.append("\\HasChildren" if has_children(name) else "\\HasNoChildren")
    if show_subscribed and name in subscribed:
        entry.attributes.append("\\Subscribed")
    if special_use and info is not None:
        entry.attributes.extend(sorted(info.special_use))


def lsub_entries(
    infos: Iterable[MailboxInfo], subscribed: set[str], pattern: str, delimiter: str = "/"
) -> list[ListEntry]:
    """
    RFC 3501 6.3.9: subscribed names matching; with ``%``, a subscribed
    inferior whose parent is not subscribed shows the parent as \\Noselect.
    """
    regex = pattern_regex(pattern, delimiter)
    selectable = {info.name for info in infos if info.selectable}
    out: dict[str, ListEntry] = {}
    for name in sorted(subscribed):
        if regex.fullmatch(name):
            attrs = [] if name in selectable else ["\\Noselect"]
            out[name] = ListEntry(name, attrs)
            continue
        levels = name.split(delimiter)
        for i in range(len(levels) - 1, 0, -1):
            parent = delimiter.join(levels[:i])
            if regex.fullmatch(parent):
                if parent not in out and parent not in subscribed:
                    out[parent] = ListEntry(parent, ["\\Noselect"])
                break
    return [out[name] for name in sorted(out)]
