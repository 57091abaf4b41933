"""
Options, the configuration file, store URLs, and the service that
L{make_service} builds (listening on a fake reactor).
"""

from __future__ import annotations

import re

import pytest
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, RaisingMemoryReactor
from twisted.python import usage

from twisted_mailhub.backends.registry import UnknownStoreURL, open_backend, store_kind
from twisted_mailhub.config import (
    DEFAULT_IMAP,
    DEFAULT_STORE,
    MailhubOptions,
    MailhubSettings,
    parse_size,
)
from twisted_mailhub.interfaces import IBackend
from twisted_mailhub.policy import ServerPolicy


def parse(*args: str) -> MailhubSettings:
    options = MailhubOptions()
    options.parseOptions(list(args))
    return options.settings


@pytest.fixture
def cert_files(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text("placeholder, only its existence is checked while parsing\n")
    key.write_text("placeholder\n")
    return str(cert), str(key)


# Options


def test_defaults():
    settings = parse()
    assert settings.imap == (DEFAULT_IMAP,)
    assert settings.imaps == ()
    assert settings.store == DEFAULT_STORE == "sqlite:mailhub.sqlite"
    assert settings.users == {}
    assert settings.policy() == ServerPolicy()


def test_repeatable_options():
    settings = parse("--imap", "tcp:1143", "--imap", "tcp:2143", "--user", "a:b",
                     "--user", "c:d:e", "--store", "memory:")
    assert settings.imap == ("tcp:1143", "tcp:2143")
    assert settings.users == {"a": "b", "c": "d:e"}
    assert settings.store == "memory:"


def test_imaps_alone_replaces_the_default_listener(cert_files):
    cert, key = cert_files
    settings = parse("--imaps", "tcp:993", "--tls-cert", cert, "--tls-key", key)
    assert settings.imap == ()
    assert settings.imaps == ("tcp:993",)
    assert settings.tls_enabled


def test_policy_options():
    policy = parse("--allow-plaintext", "--max-literal", "64K").policy()
    assert policy.allow_plaintext_auth is True
    assert policy.max_literal_size == 65536


def test_connection_limit_options():
    policy = parse("--max-connections-per-ip", "20000", "--max-connections-per-user", "7").policy()
    assert policy.max_connections_per_address == 20000
    assert policy.max_connections_per_user == 7
    defaults = parse().policy()
    assert defaults.max_connections_per_address == defaults.max_connections_per_user == 50


def test_connection_limits_from_the_config_file(tmp_path):
    config = tmp_path / "mailhub.toml"
    config.write_text("max-connections-per-ip = 300\n")
    assert parse("--config", str(config)).policy().max_connections_per_address == 300


def test_timeout_and_keepalive_options():
    policy = parse("--idle-timeout", "45m", "--autologout", "1h", "--no-keepalive").policy()
    assert policy.idle_command_timeout == 45 * 60
    assert policy.idle_timeout == 3600
    assert policy.tcp_keepalive is False
    defaults = parse().policy()
    assert defaults.idle_command_timeout == defaults.idle_timeout == 30 * 60
    assert defaults.tcp_keepalive is True


def test_timeouts_in_the_config_file(tmp_path):
    config = write_config(tmp_path, 'idle-timeout = 1800\nautologout = "2h"\nkeepalive = false\n')
    policy = parse("--config", config).policy()
    assert (policy.idle_command_timeout, policy.idle_timeout) == (1800, 7200)
    assert policy.tcp_keepalive is False


def test_literal_minus_in_the_config_file(tmp_path):
    assert parse().policy().literal_minus is False
    config = write_config(tmp_path, "literal-minus = true\n")
    assert parse("--config", config).policy().literal_minus is True


def test_utf8_accept_option_and_config_file(tmp_path):
    assert parse().policy().utf8_accept is True
    assert parse("--no-utf8-accept").policy().utf8_accept is False
    config = write_config(tmp_path, "utf8-accept = false\n")
    assert parse("--config", config).policy().utf8_accept is False


def test_progress_interval_default():
    assert parse().policy().progress_interval == ServerPolicy().progress_interval == 10.0


@pytest.mark.parametrize(
    "value, seconds",
    [("3", 3.0), ("30s", 30.0), ("2m", 120.0), ("0", None), ("off", None), ("OFF", None)],
)
def test_progress_interval_option(value, seconds):
    assert parse("--progress-interval", value).policy().progress_interval == seconds


@pytest.mark.parametrize(
    "line, seconds",
    [("progress-interval = 5", 5.0), ('progress-interval = "1m"', 60.0),
     ("progress-interval = 0", None), ('progress-interval = "off"', None)],
)
def test_progress_interval_in_the_config_file(tmp_path, line, seconds):
    config = write_config(tmp_path, line + "\n")
    assert parse("--config", config).policy().progress_interval == seconds


def test_progress_interval_command_line_wins(tmp_path):
    config = write_config(tmp_path, "progress-interval = 0\n")
    policy = parse("--config", config, "--progress-interval", "4").policy()
    assert policy.progress_interval == 4.0


@pytest.mark.parametrize("value", ["-5", "soon", "1.5", "10x", ""])
def test_bad_progress_interval_option(value):
    with pytest.raises(usage.UsageError, match=f"--progress-interval: not an interval: {value!r}"):
        parse("--progress-interval", value)


@pytest.mark.parametrize(
    "line, message",
    [("progress-interval = -1", "--progress-interval: not an interval: -1"),
     ('progress-interval = "never"', "--progress-interval: not an interval: 'never'"),
     ("progress-interval = false", "'progress-interval' has the wrong type"),
     ("progress-interval = 2.5", "'progress-interval' has the wrong type")],
)
def test_bad_progress_interval_in_the_config_file(tmp_path, line, message):
    with pytest.raises(usage.UsageError, match=re.escape(message)):
        parse("--config", write_config(tmp_path, line + "\n"))


def test_urlauth_submitters_in_the_config_file(tmp_path):
    assert parse().policy().urlauth_submitters == frozenset()
    config = write_config(tmp_path, 'urlauth-submitters = ["submit", "relay"]\n')
    assert parse("--config", config).policy().urlauth_submitters == {"submit", "relay"}
    config = write_config(tmp_path, "urlauth-submitters = [1]\n")
    with pytest.raises(usage.UsageError, match="'urlauth-submitters' has the wrong type"):
        parse("--config", config)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--idle-timeout", "28m"],
         "--idle-timeout: 1680 seconds is too short; the least allowed is 29 minutes"),
        (["--autologout", "1740"], "--autologout: .*least allowed is 30 minutes"),
        (["--idle-timeout", "soon"], "--idle-timeout: not a duration"),
        (["--autologout", "0"], "--autologout: duration must be positive"),
    ],
)
def test_timeout_usage_errors(args, message):
    with pytest.raises(usage.UsageError, match=message):
        parse(*args)


@pytest.mark.parametrize(
    "text, size",
    [("8192", 8192), ("512K", 512 * 1024), ("64M", 64 * 2**20), ("1GiB", 2**30), (10, 10)],
)
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "0", "-1", "12X", "M", "1.5M"])
def test_parse_size_rejects(text):
    with pytest.raises(ValueError):
        parse_size(text)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--imaps", "tcp:993"], "--tls-cert"),
        (["--user", "nopassword"], "NAME:PASSWORD"),
        (["--user", ":pw"], "NAME:PASSWORD"),
        (["--store", "ftp://example.com"], "unknown scheme"),
        (["--store", "mbox:"], "directory"),
        (["--imap", "nonsense:1143"], "--imap"),
        (["--imap", "tcp:notaport"], "--imap"),
        (["--max-literal", "lots"], "--max-literal"),
        (["--max-connections-per-ip", "many"], "--max-connections-per-ip"),
        (["--max-connections-per-user", "0"], "at least 1"),
        (["--passwd", "/nonexistent/passwd"], "no such file"),
        (["--tls-cert", "/nonexistent/cert.pem", "--tls-key", "/nonexistent/key.pem"],
         "no such file"),
    ],
)
def test_usage_errors(args, message):
    with pytest.raises(usage.UsageError, match=message):
        parse(*args)


def test_cert_without_key(cert_files):
    with pytest.raises(usage.UsageError, match="together"):
        parse("--tls-cert", cert_files[0])


# Configuration file


def write_config(tmp_path, text: str) -> str:
    path = tmp_path / "mailhub.toml"
    path.write_text(text)
    return str(path)


def test_config_file_supplies_options(tmp_path, cert_files):
    cert, key = cert_files
    config = write_config(
        tmp_path,
        f"""
        imap = ["tcp:1143:interface=0.0.0.0"]
        imaps = "tcp:993"
        store = "memory:"
        user = ["alice:wonderland"]
        tls-cert = "{cert}"
        tls_key = "{key}"
        allow-plaintext = true
        max-literal = "1M"
        """,
    )
    settings = parse("--config", config)
    assert settings.imap == ("tcp:1143:interface=0.0.0.0",)
    assert settings.imaps == ("tcp:993",)
    assert settings.store == "memory:"
    assert settings.users == {"alice": "wonderland"}
    assert (settings.tls_cert, settings.tls_key) == (cert, key)
    assert settings.policy().allow_plaintext_auth is True
    assert settings.policy().max_literal_size == 2**20


def test_command_line_wins_over_config_file(tmp_path):
    config = write_config(
        tmp_path,
        'imap = ["tcp:1143", "tcp:1144"]\nstore = "memory:"\nuser = ["a:b"]\nmax-literal = 100\n',
    )
    settings = parse("--config", config, "--imap", "tcp:2143", "--store", "sqlite:x.db",
                     "--max-literal", "200")
    assert settings.imap == ("tcp:2143",)
    assert settings.store == "sqlite:x.db"
    assert settings.users == {"a": "b"}
    assert settings.max_literal == 200


@pytest.mark.parametrize(
    "text, message",
    [
        ('listen = "tcp:1143"\n', "unknown key 'listen'"),
        ("store = 5\n", "wrong type"),
        ("imap = [1143]\n", "wrong type"),
        ("max-literal = true\n", "wrong type"),
        ("store = \n", "not valid TOML"),
        ('imaps = ["tcp:993"]\n', "--tls-cert"),
    ],
)
def test_bad_config_file(tmp_path, text, message):
    with pytest.raises(usage.UsageError, match=message):
        parse("--config", write_config(tmp_path, text))


def test_missing_config_file(tmp_path):
    with pytest.raises(usage.UsageError, match="cannot read"):
        parse("--config", str(tmp_path / "absent.toml"))


# Store URLs


@pytest.mark.parametrize(
    "url, kind",
    [
        ("memory:", "memory"),
        ("sqlite:mail.db", "sql"),
        ("sqlite:///var/lib/mail.db", "sql"),
        ("postgresql://postgres@127.0.0.1:5432/postgres", "sql"),
        ("postgresql+psycopg://u:p@db/mail", "sql"),
        ("mysql+pymysql://u:p@db/mail", "sql"),
        ("mbox:/var/mail", "mbox"),
        ("maildir:/var/mail", "maildir"),
    ],
)
def test_store_kinds(url, kind):
    assert store_kind(url) == kind


@pytest.mark.parametrize(
    "url", ["", "mail.db", "ftp://host/x", "memory:x", "sqlite:", "mbox:", "maildir:"])
def test_unknown_store_urls(url):
    with pytest.raises(UnknownStoreURL, match="memory:, sqlite:PATH, mbox:DIR"):
        open_backend(url)


def test_open_memory_backend():
    from twisted_mailhub.backends.memory import MemoryBackend

    backend = open_backend("memory:")
    assert isinstance(backend, MemoryBackend)
    assert IBackend.providedBy(backend)


@pytest.mark.parametrize(
    "url",
    ["sqlite:mail.sqlite", "sqlite:///var/lib/mail.sqlite", "postgresql://u@db/mail",
     "postgresql+psycopg://u:p@db/mail", "mysql+pymysql://u:p@db/mail"],
)
def test_sql_urls_go_to_the_sql_backend(monkeypatch, url):
    # Opening a real SQL backend starts database threads; the CLI tests do
    # that against SQLite.  Here only the dispatch is checked.
    import twisted_mailhub.backends.sql as sql

    opened = []
    monkeypatch.setattr(sql, "open_backend", lambda u: opened.append(u) or "sql backend")
    assert open_backend(url) == "sql backend"
    assert opened == [url]


def test_open_mbox_backend(tmp_path):
    from twisted_mailhub.backends.mbox import MboxBackend

    backend = open_backend(f"mbox:{tmp_path}")
    assert isinstance(backend, MboxBackend)
    assert IBackend.providedBy(backend)


def test_open_maildir_backend(tmp_path):
    from twisted_mailhub.backends.maildir import MaildirBackend

    backend = open_backend(f"maildir:{tmp_path}")
    assert isinstance(backend, MaildirBackend)
    assert IBackend.providedBy(backend)


# The service


class FakeBackend:
    """Records whether the service closed it."""

    notifier = None

    def __init__(self) -> None:
        self.closed = False

    async def open_store(self, username):
        raise AssertionError("no login happens in these tests")

    async def close(self) -> None:
        self.closed = True


def test_service_listens_on_each_endpoint_and_closes_the_store():
    from twisted_mailhub.imap.protocol import IMAPServerFactory
    from twisted_mailhub.service import MailhubService, make_service

    reactor = MemoryReactorClock()
    backend = FakeBackend()
    settings = MailhubSettings(imap=("tcp:1143:interface=127.0.0.1", "tcp:2143"),
                               store="memory:", users={"a": "b"})
    server = make_service(settings, reactor=reactor, backend=backend)
    assert isinstance(server, MailhubService)
    server.startService()
    assert [(port, interface) for port, _, _, interface in reactor.tcpServers] == [
        (1143, "127.0.0.1"),
        (2143, ""),
    ]
    assert all(isinstance(factory, IMAPServerFactory) for _, factory, _, _ in reactor.tcpServers)
    assert [label for label, _ in server.ports] == ["IMAP", "IMAP"]
    assert not backend.closed
    done = server.stopService()
    assert done.called
    assert backend.closed


def test_imaps_listener_wraps_the_imap_factory_in_tls(tmp_path):
    from twisted.protocols.tls import TLSMemoryBIOFactory

    from twisted_mailhub.auth.tls import generate_self_signed
    from twisted_mailhub.imap.protocol import IMAPServerFactory
    from twisted_mailhub.service import make_service

    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    generate_self_signed(cert, key, hostnames=("localhost",))
    reactor = MemoryReactorClock()
    settings = parse("--store", "memory:", "--user", "a:b", "--imap", "tcp:1143",
                     "--imaps", "tcp:1993", "--tls-cert", cert, "--tls-key", key)
    server = make_service(settings, reactor=reactor, backend=FakeBackend())
    server.startService()
    factories = {port: factory for port, factory, _, _ in reactor.tcpServers}
    assert isinstance(factories[1143], IMAPServerFactory)
    assert isinstance(factories[1993], TLSMemoryBIOFactory)
    assert factories[1993].wrappedFactory is factories[1143]
    server.stopService()


def test_unbindable_port_fails_start():
    from twisted.internet.error import CannotListenError

    from twisted_mailhub.service import make_service

    class RaisingReactorClock(RaisingMemoryReactor, Clock):
        def __init__(self, error: Exception) -> None:
            RaisingMemoryReactor.__init__(self, listenException=error)
            Clock.__init__(self)

    reactor = RaisingReactorClock(CannotListenError("127.0.0.1", 1143, None))
    server = make_service(MailhubSettings(store="memory:", users={"a": "b"}), reactor=reactor,
                          backend=FakeBackend())
    with pytest.raises(CannotListenError):
        server.startService()


def test_store_password_is_not_logged():
    from twisted_mailhub.service import hide_password

    assert hide_password("postgresql://mail:s3cret@db/mail") == "postgresql://mail:***@db/mail"
    assert hide_password("sqlite:mail.sqlite") == "sqlite:mail.sqlite"


def test_listening_addresses_are_described():
    from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress

    from twisted_mailhub.service import describe_address

    assert describe_address(IPv4Address("TCP", "127.0.0.1", 1143)) == "127.0.0.1:1143"
    assert describe_address(IPv6Address("TCP", "::1", 993)) == "[::1]:993"
    assert describe_address(UNIXAddress(b"/run/mailhub.sock")) == "/run/mailhub.sock"


# The start-up check of the store, with a real twistd


def _run_twistd_expecting_failure(tmp_path, store: str):
    import subprocess

    from test_plugin import DEADLINE, subprocess_env, twistd_command

    return subprocess.run(
        twistd_command("--pidfile=", "--logfile=twistd.log", "-n", "mailhub", "--store", store,
                       "--imap", "tcp:0:interface=127.0.0.1", "--user", "a:b"),
        cwd=tmp_path, env=subprocess_env(tmp_path), capture_output=True, text=True,
        timeout=DEADLINE,
    )


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_twistd_fails_at_start_when_the_database_is_unreachable(tmp_path):
    port = _free_port()
    result = _run_twistd_expecting_failure(
        tmp_path, f"postgresql://mailhub:secret@127.0.0.1:{port}/mailhub")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"mailhub: the mail store postgresql://mailhub:***@127.0.0.1:{port}"
                               "/mailhub is unusable: ")
    assert "secret" not in result.stderr
    assert "Connection refused" in lines[0]
    assert "is unusable" in (tmp_path / "twistd.log").read_text()


def test_twistd_fails_at_start_on_a_newer_schema(tmp_path):
    from sqlalchemy import create_engine, text

    from twisted_mailhub.backends.sql.migrate import SCHEMA_VERSION, prepare

    path = tmp_path / "mail.sqlite"
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        prepare(conn)
        conn.execute(text("UPDATE schema_version SET version = :v"), {"v": SCHEMA_VERSION + 1})
    engine.dispose()
    result = _run_twistd_expecting_failure(tmp_path, f"sqlite:{path}")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines == [f"mailhub: the mail store sqlite:{path} is unusable: The mail store has "
                     f"schema version {SCHEMA_VERSION + 1}, newer than the version "
                     f"{SCHEMA_VERSION} this twisted_mailhub understands; upgrade "
                     "twisted_mailhub (or restore a backup made before the upgrade)."]
    assert "Traceback" not in result.stdout + result.stderr


class _UnreadyBackend(FakeBackend):
    def __init__(self, ready) -> None:
        super().__init__()
        self._ready = ready

    def ready(self):
        return self._ready


def test_embedded_service_raises_when_the_store_is_known_unusable():
    from twisted.internet import defer

    from twisted_mailhub.backends.sql.migrate import SchemaTooNew
    from twisted_mailhub.service import StoreUnusable, make_service

    reactor = MemoryReactorClock()
    backend = _UnreadyBackend(defer.fail(SchemaTooNew("schema version 9 is too new")))
    server = make_service(parse("--store", "memory:", "--user", "a:b", "--imap", "tcp:1143"),
                          reactor=reactor, backend=backend)
    with pytest.raises(StoreUnusable, match="memory: is unusable: schema version 9 is too new"):
        server.startService()
    assert reactor.tcpServers == []


def test_embedded_service_listens_once_the_store_is_ready():
    from twisted.internet import defer

    from twisted_mailhub.service import StoreUnusable, make_service

    reactor = MemoryReactorClock()
    ready, failing = defer.Deferred(), defer.Deferred()
    server = make_service(parse("--store", "memory:", "--user", "a:b", "--imap", "tcp:1143"),
                          reactor=reactor, backend=_UnreadyBackend(ready))
    server.startService()
    assert reactor.tcpServers == []
    ready.callback(None)
    assert [port for port, *_ in reactor.tcpServers] == [1143]
    assert server.started.called

    other = make_service(parse("--store", "memory:", "--user", "a:b", "--imap", "tcp:1144"),
                         reactor=reactor, backend=_UnreadyBackend(failing))
    other.startService()
    failing.errback(ConnectionRefusedError("refused"))
    errors = []
    other.started.addErrback(errors.append)
    assert errors[0].check(StoreUnusable)
    assert [port for port, *_ in reactor.tcpServers] == [1143]
    server.stopService()
    other.stopService()
