"""
Quota limits: what a user may hold, and how the settings spell it.

Two resources are limited (RFC 9208 section 5): C{storage}, the sum of the
sizes of the user's messages in octets, and C{messages}, their number.  A
limit of C{None} means no limit; 0 means nothing may be added.

A user's limits are the server's default (``--quota-storage``,
``--quota-messages``), replaced resource by resource by what the
configuration file says for that user (``[quota.users.NAME]``), replaced in
turn by what the store keeps for the user (the SQL store's users table,
managed with ``mailhub quota``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

#: The resources limited, by their name in settings and stores.
RESOURCES = ("storage", "messages")

#: Words that mean "no limit" where a limit is expected.
UNLIMITED_WORDS = frozenset({"unlimited", "none"})

#: STORAGE is counted in units of this many octets (RFC 9208 section 5.1).
STORAGE_UNIT = 1024

_SIZE = re.compile(r"^\s*(\d+)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}

#: Limits and usages are 63-bit numbers on the wire (RFC 9208 section 3.1.2).
MAX_LIMIT = 2**63 - 1


@dataclass(frozen=True, slots=True)
class QuotaLimits:
    """
    The limits of one user: C{storage} in octets (a multiple of
    L{STORAGE_UNIT}) and C{messages}, each C{None} when not limited.
    """

    storage: int | None = None
    messages: int | None = None

    @property
    def unlimited(self) -> bool:
        """True when neither resource is limited."""
        return self.storage is None and self.messages is None

    def replaced(self, overrides: Mapping[str, int | None]) -> "QuotaLimits":
        """These limits with the resources named in C{overrides} replaced."""
        values = {name: getattr(self, name) for name in RESOURCES}
        values.update((name, overrides[name]) for name in RESOURCES if name in overrides)
        return QuotaLimits(**values)


@dataclass(frozen=True)
class QuotaSettings:
    """
    The quota part of the server's settings: the C{default} limits of every
    user and the per-user C{users} overrides of the configuration file
    (user name -> {resource: limit or None}).
    """

    default: QuotaLimits = QuotaLimits()
    users: Mapping[str, Mapping[str, int | None]] = field(default_factory=dict)

    @property
    def configured(self) -> bool:
        """True when the settings limit anyone."""
        return not self.default.unlimited or any(
            value is not None for overrides in self.users.values() for value in overrides.values())

    def limits_for(self, username: str,
                   kept: Mapping[str, int | None] | None = None) -> QuotaLimits:
        """
        The limits of C{username}: the default, replaced by the
        configuration file's overrides, then by C{kept} (the store's own).
        """
        limits = self.default.replaced(self.users.get(username, {}))
        return limits.replaced(kept) if kept else limits


def parse_storage_limit(value: str | int | None) -> int | None:
    """
    A storage limit: octets, or with a K/M/G/T suffix (powers of 1024), or
    C{"unlimited"} for none.  Rounded down to whole units of 1024 octets
    (RFC 9208 section 4.1.3 lets a server round), so that the STORAGE limit
    reported is the one enforced.  Raises C{ValueError}.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"not a size: {value!r}")
    if isinstance(value, int):
        octets = value
    else:
        if value.strip().lower() in UNLIMITED_WORDS:
            return None
        match = _SIZE.match(value)
        if match is None:
            raise ValueError(f"not a size: {value!r} (use e.g. 500M, 2G or unlimited)")
        octets = int(match.group(1)) * _SIZE_UNITS[(match.group(2) or "").lower()[:1]]
    if octets < 0:
        raise ValueError(f"a size cannot be negative: {value!r}")
    if octets > MAX_LIMIT:
        raise ValueError(f"size too large: {value!r}")
    return octets - octets % STORAGE_UNIT


def parse_message_limit(value: str | int | None) -> int | None:
    """A message count, or C{"unlimited"} for none.  Raises C{ValueError}."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"not a number of messages: {value!r}")
    if isinstance(value, str):
        if value.strip().lower() in UNLIMITED_WORDS:
            return None
        if not value.strip().isdigit():
            raise ValueError(f"not a number of messages: {value!r} (use e.g. 100000 or unlimited)")
        value = int(value)
    if value < 0 or value > MAX_LIMIT:
        raise ValueError(f"not a number of messages: {value!r}")
    return value


PARSERS = {"storage": parse_storage_limit, "messages": parse_message_limit}


def parse_user_overrides(table: Any) -> dict[str, dict[str, int | None]]:
    """
    The ``users`` table of a configuration file's ``[quota]`` section:
    C{{name: {"storage": "2G", "messages": 1000}}} into limits.  Raises
    C{ValueError} naming what is wrong.
    """
    if not isinstance(table, dict):
        raise ValueError("quota.users must be a table of users")
    result: dict[str, dict[str, int | None]] = {}
    for name, entry in table.items():
        if not isinstance(entry, dict):
            raise ValueError(f"quota.users.{name} must be a table (storage = ..., messages = ...)")
        limits: dict[str, int | None] = {}
        for key, value in entry.items():
            parse = PARSERS.get(key)
            if parse is None:
                raise ValueError(
                    f"quota.users.{name}: unknown key {key!r} (known keys: messages, storage)")
            try:
                limits[key] = parse(value)
            except ValueError as e:
                raise ValueError(f"quota.users.{name}.{key}: {e}") from None
        result[name] = limits
    return result


def parse_quota_table(table: Any) -> dict[str, dict[str, int | None]]:
    """
    The ``[quota]`` table of a configuration file, which holds only
    ``users``; returns the per-user overrides.  Raises C{ValueError}.
    """
    if not isinstance(table, dict):
        raise ValueError("quota must be a table")
    unknown = sorted(set(table) - {"users"})
    if unknown:
        raise ValueError(
            f"quota: unknown key {unknown[0]!r} (the default limits are the top-level keys "
            "quota-storage and quota-messages; per-user limits go in [quota.users.NAME])")
    return parse_user_overrides(table.get("users", {}))


def storage_units(octets: int) -> int:
    """Octets as STORAGE units of 1024, rounded up (a usage never looks smaller)."""
    return -(-octets // STORAGE_UNIT)


def describe(limits: QuotaLimits) -> str:
    """C{"storage 2G, messages 1000"}: limits for people."""
    parts = []
    for name in RESOURCES:
        value = getattr(limits, name)
        if value is None:
            text = "unlimited"
        elif name == "storage":
            text = format_octets(value)
        else:
            text = str(value)
        parts.append(f"{name} {text}")
    return ", ".join(parts)


def format_octets(octets: int) -> str:
    """The shortest exact spelling of C{octets}: C{"2G"}, C{"1536K"}, C{"100"}."""
    for suffix, unit in (("T", 2**40), ("G", 2**30), ("M", 2**20), ("K", 2**10)):
        if octets and octets % unit == 0:
            return f"{octets // unit}{suffix}"
    return str(octets)
