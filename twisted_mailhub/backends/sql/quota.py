"""
What the SQL store keeps for quotas: each account's own limits (two columns
of C{users}, L{QUOTA_COLUMNS}) and the totals of a tree, summed from the
counters of its C{mailboxes} rows in one query.

Limits are C{{resource: limit}} with resources C{"storage"} (octets) and
C{"messages"}; C{None} means no limit.  In the table NULL means the account
follows the server's default and L{NO_LIMIT} that it has no limit.
"""

from __future__ import annotations

from typing import Iterable, Mapping

from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection

from twisted_mailhub.backends.sql.schema import NO_LIMIT, QUOTA_COLUMNS, mailboxes, users


class UnknownQuotaResource(ValueError):
    """A limit was given for a resource the store does not keep."""


def limits_txn(conn: Connection, username: str) -> dict[str, int | None]:
    """The limits of their own C{username} has; C{{}} for an unknown user."""
    row = conn.execute(
        select(*(users.c[column] for column in QUOTA_COLUMNS.values()))
        .where(users.c.username == username)
    ).first()
    if row is None:
        return {}
    limits: dict[str, int | None] = {}
    for resource, column in QUOTA_COLUMNS.items():
        value = row._mapping[column]
        if value is not None:
            limits[resource] = None if value == NO_LIMIT else int(value)
    return limits


def set_limits_txn(conn: Connection, username: str, limits: Mapping[str, int | None],
                   reset: Iterable[str]) -> bool:
    """
    Give C{username} the C{limits} and make the resources in C{reset}
    follow the default again.  Returns False when there is no such user.
    """
    values: dict[str, int | None] = {}
    for resource in reset:
        values[_column(resource)] = None
    for resource, limit in limits.items():
        if limit is not None and limit < 0:
            raise ValueError(f"a {resource} limit cannot be negative: {limit}")
        values[_column(resource)] = NO_LIMIT if limit is None else limit
    query = update(users).where(users.c.username == username)
    if values:
        return conn.execute(query.values(**values)).rowcount > 0
    return conn.execute(select(users.c.id).where(users.c.username == username)).first() is not None


def usage_txn(conn: Connection, user_id: int) -> tuple[int, int]:
    """C{(messages, octets)} of every mailbox of the user, from their counters."""
    row = conn.execute(
        select(func.coalesce(func.sum(mailboxes.c.message_count), 0),
               func.coalesce(func.sum(mailboxes.c.total_size), 0))
        .where(mailboxes.c.user_id == user_id)
    ).one()
    return int(row[0]), int(row[1])


def _column(resource: str) -> str:
    try:
        return QUOTA_COLUMNS[resource]
    except KeyError:
        known = ", ".join(sorted(QUOTA_COLUMNS))
        raise UnknownQuotaResource(f"unknown quota resource {resource!r} (known: {known})")
