"""
Choosing a backend from a store URL.

The URL is what ``--store`` and the ``mailhub`` command take:

  - ``memory:`` -- everything in this process's memory, gone on exit;
  - ``sqlite:PATH`` -- an SQLite database file (the embedded default);
  - an SQLAlchemy URL (``sqlite:///PATH``, ``postgresql://...``,
    ``postgresql+psycopg://...``, ``mysql+pymysql://...``) -- the SQL backend;
  - ``mbox:DIR`` -- one directory per user, one mbox file per mailbox.

Backend modules are imported only when their scheme is asked for, so a
missing database driver only matters to those who use that database.
"""

from __future__ import annotations

from twisted_mailhub.interfaces import IBackend

#: SQLAlchemy dialect names (the part before any ``+driver``) accepted.
SQL_DIALECTS = frozenset({"sqlite", "postgresql", "postgres", "mysql", "mariadb"})


class UnknownStoreURL(ValueError):
    """The store URL names no backend this installation knows."""


def store_kind(url: str) -> str:
    """
    Return C{"memory"}, C{"sql"} or C{"mbox"} for a store URL, or raise
    L{UnknownStoreURL} with a message listing the accepted forms.
    """
    scheme, sep, rest = url.partition(":")
    scheme = scheme.strip().lower()
    if not sep:
        raise UnknownStoreURL(_explain(url, "it has no scheme"))
    if scheme == "memory":
        if rest:
            raise UnknownStoreURL(_explain(url, "'memory:' takes nothing after the colon"))
        return "memory"
    if scheme == "mbox":
        if not rest:
            raise UnknownStoreURL(_explain(url, "'mbox:' needs a directory, e.g. mbox:mail"))
        return "mbox"
    dialect = scheme.partition("+")[0]
    if dialect in SQL_DIALECTS:
        if scheme == "sqlite" and not rest:
            raise UnknownStoreURL(_explain(url, "'sqlite:' needs a file, e.g. sqlite:mail.db"))
        return "sql"
    raise UnknownStoreURL(_explain(url, f"unknown scheme {scheme!r}"))


def _explain(url: str, why: str) -> str:
    return (
        f"Cannot open store {url!r}: {why}.  Use memory:, sqlite:PATH, mbox:DIR, "
        "or an SQLAlchemy URL such as postgresql://user@host/db."
    )


def open_backend(url: str) -> IBackend:
    """
    Open the backend named by C{url} (see the module docstring).

    Raises L{UnknownStoreURL} for a URL that names no backend.  Errors of
    the backend itself (an unreachable database, an unwritable directory)
    propagate unchanged.
    """
    kind = store_kind(url)
    if kind == "memory":
        from twisted_mailhub.backends.memory import MemoryBackend

        return MemoryBackend()
    if kind == "mbox":
        from twisted_mailhub.backends.mbox import MboxBackend

        return MboxBackend(url.partition(":")[2])
    from twisted_mailhub.backends.sql import open_backend as open_sql_backend

    return open_sql_backend(url)
