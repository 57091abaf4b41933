"""
Choosing a backend from a store URL.

The URL is what ``--store`` and the ``mailhub`` command take:

  - ``memory:`` -- everything in this process's memory, gone on exit;
  - ``sqlite:PATH`` -- an SQLite database file (the embedded default);
  - an SQLAlchemy URL (``sqlite:///PATH``, ``postgresql://...``,
    ``postgresql+psycopg://...``, ``mysql+pymysql://...``) -- the SQL backend;
  - ``mbox:DIR`` -- one directory per user, one mbox file per mailbox;
  - ``maildir:DIR`` -- one Maildir++ tree per user, as Dovecot lays it out;
  - ``python:MODULE:FACTORY?key=value&...`` -- a backend of your own: the
    callable C{FACTORY} of the importable C{MODULE}, called with the query
    parameters as keyword arguments (strings), e.g.
    ``python:eml_archive:ArchiveBackend?root=/srv/archive``.

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
    Return C{"memory"}, C{"sql"}, C{"mbox"}, C{"maildir"} or C{"python"}
    for a store URL, or raise L{UnknownStoreURL} with a message listing
    the accepted forms.
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
    if scheme == "maildir":
        if not rest:
            raise UnknownStoreURL(_explain(url, "'maildir:' needs a directory, e.g. maildir:mail"))
        return "maildir"
    if scheme == "python":
        module, colon, factory = rest.partition("?")[0].partition(":")
        if not (module and colon and factory):
            raise UnknownStoreURL(_explain(
                url, "'python:' needs MODULE:FACTORY, e.g. python:mypackage.store:MyBackend"))
        return "python"
    dialect = scheme.partition("+")[0]
    if dialect in SQL_DIALECTS:
        if scheme == "sqlite" and not rest:
            raise UnknownStoreURL(_explain(url, "'sqlite:' needs a file, e.g. sqlite:mail.db"))
        return "sql"
    raise UnknownStoreURL(_explain(url, f"unknown scheme {scheme!r}"))


def _explain(url: str, why: str) -> str:
    return (
        f"Cannot open store {url!r}: {why}.  Use memory:, sqlite:PATH, mbox:DIR, maildir:DIR, "
        "python:MODULE:FACTORY, or an SQLAlchemy URL such as postgresql://user@host/db."
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
    if kind == "maildir":
        from twisted_mailhub.backends.maildir import MaildirBackend

        return MaildirBackend(url.partition(":")[2])
    if kind == "python":
        return _open_python_backend(url.partition(":")[2])
    from twisted_mailhub.backends.sql import open_backend as open_sql_backend

    return open_sql_backend(url)


def _open_python_backend(spec: str) -> IBackend:
    """C{MODULE:FACTORY?key=value&...}: import, then call with the parameters."""
    import importlib
    from urllib.parse import parse_qsl

    target, _, query = spec.partition("?")
    module_name, _, factory_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise UnknownStoreURL(f"Cannot import the backend module {module_name!r}: {e}") from e
    factory = getattr(module, factory_name, None)
    if not callable(factory):
        raise UnknownStoreURL(f"{module_name!r} has no backend factory {factory_name!r}")
    backend = factory(**dict(parse_qsl(query, keep_blank_values=True)))
    if not IBackend.providedBy(backend):
        raise UnknownStoreURL(f"{module_name}:{factory_name} did not return an IBackend")
    return backend
