"""
Server settings: the command-line options of ``twistd mailhub`` and the TOML
configuration file that can hold the same keys.

L{MailhubOptions} parses the command line (and the file named by
``--config``) into a L{MailhubSettings}, the plain value that
L{twisted_mailhub.service.make_service} turns into running services.
Embedders may build a L{MailhubSettings} directly.

Precedence, lowest first: built-in defaults, the configuration file, the
command line.  A repeatable option given on the command line replaces the
file's list for that key instead of adding to it.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field, replace
from typing import Any

from twisted.python import usage

from twisted_mailhub.backends.registry import UnknownStoreURL, store_kind
from twisted_mailhub.policy import ServerPolicy
from twisted_mailhub.quota.limits import (
    QuotaLimits,
    QuotaSettings,
    parse_message_limit,
    parse_quota_table,
    parse_storage_limit,
)

DEFAULT_IMAP = "tcp:1143:interface=127.0.0.1"
DEFAULT_STORE = "sqlite:mailhub.sqlite"

#: The listener keys: each takes a list of endpoint strings.
LISTENER_KEYS = ("imap", "imaps", "pop3", "pop3s", "lmtp")

#: Every key a configuration file may hold, with the Python type it must have.
#: Listener keys and ``user`` also accept a single string.
CONFIG_KEYS: dict[str, type | tuple[type, ...]] = {
    "imap": list,
    "imaps": list,
    "pop3": list,
    "pop3s": list,
    "pop3-retr-seen": bool,
    "lmtp": list,
    "lmtp-detail-separator": str,
    "store": str,
    "user": list,
    "passwd": str,
    "tls-cert": str,
    "tls-key": str,
    "allow-plaintext": bool,
    "max-literal": (int, str),
    "idle-timeout": (int, str),
    "autologout": (int, str),
    "keepalive": bool,
    "unauthenticate": bool,
    "literal-minus": bool,
    "utf8-accept": bool,
    "urlauth-submitters": list,
    "metrics": str,
    "max-connections-per-ip": int,
    "max-connections-per-user": int,
    "message-limit": int,
    "progress-interval": (int, str),
    "quota-storage": (int, str),
    "quota-messages": (int, str),
    # [quota.users.NAME] tables: per-user limits (twisted_mailhub.quota.limits).
    "quota": dict,
}

#: The least values RFC 2177 (IDLE) and RFC 9051 section 5.4 (autologout
#: once logged in) allow, in seconds.
MIN_IDLE_TIMEOUT = 29 * 60
MIN_AUTOLOGOUT = 30 * 60

_SIZE = re.compile(r"^\s*(\d+)\s*([kmg]i?b?|b)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30}


def parse_size(text: str | int) -> int:
    """
    Parse a byte count such as C{"8192"}, C{"64M"} or C{"1GiB"} (units are
    powers of 1024).  Raises C{ValueError} for anything else.
    """
    if isinstance(text, int) and not isinstance(text, bool):
        size = text
    else:
        match = _SIZE.match(str(text))
        if match is None:
            raise ValueError(f"not a size: {text!r} (use e.g. 65536, 512K or 64M)")
        unit = (match.group(2) or "").lower()[:1]
        size = int(match.group(1)) * _SIZE_UNITS[unit]
    if size <= 0:
        raise ValueError(f"size must be positive, not {text!r}")
    return size


_DURATION = re.compile(r"^\s*(\d+)\s*([smh]?)\s*$", re.IGNORECASE)
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600}


def parse_duration(text: str | int) -> int:
    """
    Parse a number of seconds such as C{"1800"}, C{"30m"} or C{"1h"}.
    Raises C{ValueError} for anything else.
    """
    if isinstance(text, int) and not isinstance(text, bool):
        seconds = text
    else:
        match = _DURATION.match(str(text))
        if match is None:
            raise ValueError(f"not a duration: {text!r} (use seconds, or e.g. 30m or 1h)")
        seconds = int(match.group(1)) * _DURATION_UNITS[match.group(2).lower()]
    if seconds <= 0:
        raise ValueError(f"duration must be positive, not {text!r}")
    return seconds


def parse_progress_interval(text: str | int) -> int:
    """
    Parse the seconds between INPROGRESS reports: a duration as
    L{parse_duration} reads it, or C{0} or C{"off"} for no reports (returned
    as 0).  Raises C{ValueError} for anything else.
    """
    if text == 0 and not isinstance(text, bool):
        return 0
    if isinstance(text, str) and text.strip().lower() in ("0", "off"):
        return 0
    try:
        return parse_duration(text)
    except ValueError:
        raise ValueError(
            f"not an interval: {text!r} (use seconds, or e.g. 30s or 1m, or 0 or off "
            "for no reports)") from None


def parse_user(text: str) -> tuple[str, str]:
    """Split C{"NAME:PASSWORD"}; raises C{ValueError} without a name."""
    name, sep, password = text.partition(":")
    if not sep or not name or not password:
        raise ValueError(f"expected NAME:PASSWORD, got {text!r}")
    return name, password


def _detail_separator(text: str) -> str:
    """The --lmtp-detail-separator characters, checked: no address syntax, no space."""
    if len(text) > 8 or any(c in '@"<>\\' or c.isspace() or not c.isprintable()
                            for c in text):
        raise usage.UsageError(
            f"--lmtp-detail-separator: {text!r} is not a few punctuation characters like '+'")
    return text


@dataclass(frozen=True)
class MailhubSettings:
    """
    Everything L{twisted_mailhub.service.make_service} needs to run a server.

    Listener lists hold endpoint strings (``tcp:1143:interface=127.0.0.1``);
    ``imaps`` endpoints are plain stream endpoints that get TLS wrapped
    around them.  ``users`` maps trial user names to passwords kept only in
    memory.  ``tls_cert``/``tls_key`` name PEM files; when set, plain IMAP
    listeners offer STARTTLS.
    """

    imap: tuple[str, ...] = (DEFAULT_IMAP,)
    imaps: tuple[str, ...] = ()
    pop3: tuple[str, ...] = ()
    pop3s: tuple[str, ...] = ()
    pop3_retr_seen: bool = False
    lmtp: tuple[str, ...] = ()
    lmtp_detail_separator: str = "+"
    store: str = DEFAULT_STORE
    users: dict[str, str] = field(default_factory=dict)
    passwd: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    allow_plaintext: bool = False
    max_literal: int | None = None
    idle_timeout: int | None = None
    autologout: int | None = None
    keepalive: bool = True
    #: Offer IMAP UNAUTHENTICATE (RFC 8437).
    unauthenticate: bool = True
    #: Offer LITERAL- instead of LITERAL+ (RFC 7888 section 5).
    literal_minus: bool = False
    #: Offer UTF8=ACCEPT (RFC 6855), refusing 8-bit headers from other clients.
    utf8_accept: bool = True
    #: The users that are submission servers for URLAUTH "submit+" URLs.
    urlauth_submitters: tuple[str, ...] = ()
    #: Endpoint string of the Prometheus metrics listener, or None for none.
    metrics: str | None = None
    max_connections_per_ip: int | None = None
    max_connections_per_user: int | None = None
    #: RFC 9738 MESSAGELIMIT, or None for no limit.
    message_limit: int | None = None
    #: Seconds between RFC 9585 INPROGRESS reports, 0 for none, or None
    #: for the policy's default.
    progress_interval: int | None = None
    quota: QuotaSettings = field(default_factory=QuotaSettings)

    @property
    def tls_enabled(self) -> bool:
        """True when a certificate and key are configured."""
        return bool(self.tls_cert and self.tls_key)

    def policy(self, base: ServerPolicy = ServerPolicy()) -> ServerPolicy:
        """The L{ServerPolicy} these settings select, starting from C{base}."""
        changes: dict[str, Any] = {}
        if self.allow_plaintext:
            changes["allow_plaintext_auth"] = True
        if self.max_literal is not None:
            changes["max_literal_size"] = self.max_literal
        if self.idle_timeout is not None:
            changes["idle_command_timeout"] = float(self.idle_timeout)
        if self.autologout is not None:
            changes["idle_timeout"] = float(self.autologout)
        if not self.keepalive:
            changes["tcp_keepalive"] = False
        if not self.unauthenticate:
            changes["unauthenticate"] = False
        if self.literal_minus:
            changes["literal_minus"] = True
        if not self.utf8_accept:
            changes["utf8_accept"] = False
        if self.urlauth_submitters:
            changes["urlauth_submitters"] = frozenset(self.urlauth_submitters)
        if self.max_connections_per_ip is not None:
            changes["max_connections_per_address"] = self.max_connections_per_ip
        if self.max_connections_per_user is not None:
            changes["max_connections_per_user"] = self.max_connections_per_user
        if self.message_limit is not None:
            changes["message_limit"] = self.message_limit
        if self.progress_interval is not None:
            changes["progress_interval"] = (float(self.progress_interval)
                                            if self.progress_interval else None)
        return replace(base, **changes) if changes else base


def load_config_file(path: str) -> dict[str, Any]:
    """
    Read a TOML configuration file and return its keys, checked against
    L{CONFIG_KEYS} (single strings for list keys become one-item lists).

    Raises L{usage.UsageError} naming the file for unreadable or invalid
    content, unknown keys, or values of the wrong type.
    """
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise usage.UsageError(f"cannot read configuration file {path!r}: {e.strerror}")
    except tomllib.TOMLDecodeError as e:
        raise usage.UsageError(f"configuration file {path!r} is not valid TOML: {e}")
    result: dict[str, Any] = {}
    for key, value in data.items():
        expected = CONFIG_KEYS.get(key.replace("_", "-"))
        if expected is None:
            known = ", ".join(sorted(CONFIG_KEYS))
            raise usage.UsageError(
                f"configuration file {path!r}: unknown key {key!r} (known keys: {known})"
            )
        key = key.replace("_", "-")
        if expected is list and isinstance(value, str):
            value = [value]
        # bool is a subclass of int: never accept it where a number is meant.
        wrong = not isinstance(value, expected) or (
            isinstance(value, bool) and expected is not bool
        )
        if expected is list and not wrong:
            wrong = not all(isinstance(item, str) for item in value)
        if wrong:
            raise usage.UsageError(
                f"configuration file {path!r}: {key!r} has the wrong type "
                f"({type(value).__name__})"
            )
        result[key] = value
    return result


class MailhubOptions(usage.Options):
    """
    Options of ``twistd mailhub`` (and of L{twisted_mailhub.service.make_service}).

    After parsing, C{self.settings} is the resulting L{MailhubSettings}.
    """

    synopsis = "[options]"
    longdesc = (
        "Run an IMAP4 server, and optionally POP3 over the same store.  Endpoints use Twisted's endpoint syntax, e.g. "
        "tcp:993 or tcp:1143:interface=0.0.0.0.  When neither --imap nor --imaps "
        f"is given, the server listens on {DEFAULT_IMAP}.  With --tls-cert and "
        "--tls-key, plain --imap listeners offer STARTTLS.  With no --store, mail "
        f"is kept in {DEFAULT_STORE.partition(':')[2]} in the current directory."
    )

    optFlags = [
        [
            "pop3-retr-seen",
            None,
            "Mark messages \\Seen when a POP3 client retrieves them (RETR).",
        ],
        [
            "allow-plaintext",
            None,
            "Accept passwords over unencrypted connections from any address "
            "(by default only loopback connections may log in without TLS).",
        ],
        [
            "no-keepalive",
            None,
            "Do not set TCP keepalive (SO_KEEPALIVE) on client connections; by default "
            "it is set, so that connections of vanished clients are eventually closed.",
        ],
        [
            "no-unauthenticate",
            None,
            "Do not offer IMAP UNAUTHENTICATE (RFC 8437), by which a client logged in "
            "may log in again as another user on the same connection.",
        ],
        [
            "no-utf8-accept",
            None,
            "Do not offer IMAP UTF8=ACCEPT (RFC 6855), and take messages whose headers "
            "hold 8-bit octets from every client, as many old messages do; with it, "
            "clients that did not enable it may not APPEND such messages (section 4).",
        ],
    ]
    optParameters = [
        [
            "store",
            None,
            None,
            f"Mail store URL: memory:, sqlite:PATH, mbox:DIR, maildir:DIR or an SQLAlchemy URL "
            f"(postgresql://..., mysql+pymysql://...).  [default: {DEFAULT_STORE}]",
        ],
        [
            "passwd",
            None,
            None,
            "A password file of NAME:HASH lines to authenticate users from.",
        ],
        [
            "lmtp-detail-separator",
            None,
            None,
            "Characters that split a recipient user+folder: mail to alice+lists goes to "
            "alice's folder 'lists' when it exists (else her INBOX); '' turns it off.  "
            "[default: +]",
        ],
        ["tls-cert", None, None, "PEM certificate (chain) for IMAPS and STARTTLS."],
        ["tls-key", None, None, "PEM private key matching --tls-cert."],
        [
            "max-literal",
            None,
            None,
            "Largest literal (e.g. an APPENDed message) a logged-in client may "
            f"send, in bytes or with a K/M/G suffix.  [default: "
            f"{ServerPolicy().max_literal_size // 2**20}M]",
        ],
        [
            "idle-timeout",
            None,
            None,
            "Log out an IMAP client that stays in IDLE this long without a word, in "
            "seconds or with an m/h suffix; at least 29m (RFC 2177).  [default: 30m]",
        ],
        [
            "autologout",
            None,
            None,
            "Log out a logged-in client silent this long outside IDLE, in seconds or "
            "with an m/h suffix; at least 30m (RFC 9051 section 5.4).  [default: 30m]",
        ],
        [
            "max-connections-per-ip",
            None,
            None,
            "Connections one client address may hold at once on each listener.  "
            f"[default: {ServerPolicy().max_connections_per_address}]",
        ],
        [
            "max-connections-per-user",
            None,
            None,
            "Logged-in IMAP connections one user may hold at once on each listener.  "
            f"[default: {ServerPolicy().max_connections_per_user}]",
        ],
        [
            "message-limit",
            None,
            None,
            "The most messages one IMAP SEARCH, FETCH, STORE, COPY, MOVE, APPEND or "
            "UID EXPUNGE may process, advertised as MESSAGELIMIT (RFC 9738, which says "
            "at least 1000).  [default: no limit]",
        ],
        [
            "progress-interval",
            None,
            None,
            "Seconds between the '* OK [INPROGRESS ...]' reports (RFC 9585) of an IMAP "
            "FETCH, STORE, SEARCH, COPY, MOVE, SORT or THREAD still running, the first "
            "one after that long too; in seconds or with an m/h suffix, 0 or 'off' for none.  "
            f"[default: {ServerPolicy().progress_interval:g}]",
        ],
        [
            "quota-storage",
            None,
            None,
            "Default quota: the total size of a user's messages, in bytes or with a "
            "K/M/G/T suffix, or 'unlimited'.  [default: unlimited]",
        ],
        [
            "quota-messages",
            None,
            None,
            "Default quota: the number of messages a user may keep, or 'unlimited'.  "
            "[default: unlimited]",
        ],
        [
            "metrics",
            None,
            None,
            "Serve Prometheus metrics at /metrics on this endpoint, e.g. "
            "tcp:9180:interface=127.0.0.1.  [default: none]",
        ],
        [
            "config",
            "c",
            None,
            "A TOML file holding any of these options as keys (imap = [...], "
            'store = "...", tls-cert = "...", ...); the command line wins.',
        ],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["imap"] = []
        self["imaps"] = []
        self["pop3"] = []
        self["pop3s"] = []
        self["lmtp"] = []
        self["user"] = []
        self.settings = MailhubSettings()

    def opt_imap(self, endpoint: str) -> None:
        """Listen for plain IMAP (and STARTTLS) on this endpoint; repeatable."""
        self["imap"].append(endpoint)

    def opt_imaps(self, endpoint: str) -> None:
        """Listen for IMAP over implicit TLS on this endpoint (e.g. tcp:993); repeatable."""
        self["imaps"].append(endpoint)

    def opt_pop3(self, endpoint: str) -> None:
        """Listen for POP3 (and STLS) on this endpoint, serving the same store; repeatable."""
        self["pop3"].append(endpoint)

    def opt_pop3s(self, endpoint: str) -> None:
        """Listen for POP3 over implicit TLS on this endpoint (e.g. tcp:995); repeatable."""
        self["pop3s"].append(endpoint)

    def opt_lmtp(self, endpoint: str) -> None:
        """Accept mail from an MTA over LMTP (RFC 2033) on this endpoint, e.g.
        unix:/run/mailhub/lmtp or tcp:24:interface=127.0.0.1; repeatable."""
        self["lmtp"].append(endpoint)

    def opt_user(self, spec: str) -> None:
        """Add a trial user NAME:PASSWORD, kept in memory only; repeatable."""
        try:
            parse_user(spec)
        except ValueError as e:
            raise usage.UsageError(f"--user: {e}")
        self["user"].append(spec)

    def postOptions(self) -> None:
        """Merge the configuration file, apply defaults and validate."""
        merged: dict[str, Any] = {}
        if self["config"]:
            merged.update(load_config_file(self["config"]))
        for key in ("store", "passwd", "tls-cert", "tls-key", "max-literal", "idle-timeout",
                    "autologout", "max-connections-per-ip", "max-connections-per-user",
                    "message-limit", "progress-interval",
                    "quota-storage", "quota-messages"):
            if self[key] is not None:
                merged[key] = self[key]
        for key in (*LISTENER_KEYS, "user"):
            if self[key]:
                merged[key] = list(self[key])
        if self["allow-plaintext"]:
            merged["allow-plaintext"] = True
        if self["pop3-retr-seen"]:
            merged["pop3-retr-seen"] = True
        if self["no-keepalive"]:
            merged["keepalive"] = False
        if self["no-unauthenticate"]:
            merged["unauthenticate"] = False
        if self["no-utf8-accept"]:
            merged["utf8-accept"] = False
        if self["metrics"] is not None:
            merged["metrics"] = self["metrics"]
        if self["lmtp-detail-separator"] is not None:
            merged["lmtp-detail-separator"] = self["lmtp-detail-separator"]
        self.settings = settings_from_mapping(merged)


def settings_from_mapping(values: dict[str, Any]) -> MailhubSettings:
    """
    Build and validate L{MailhubSettings} from option-style keys (those of
    L{CONFIG_KEYS}); missing keys take their defaults.  Raises
    L{usage.UsageError} describing the first problem found.
    """
    imap = list(values.get("imap", []))
    imaps = list(values.get("imaps", []))
    pop3 = list(values.get("pop3", []))
    pop3s = list(values.get("pop3s", []))
    # LMTP brings mail in: with it alone, IMAP still listens on its default.
    lmtp = list(values.get("lmtp", []))
    if not imap and not imaps and not pop3 and not pop3s:
        imap = [DEFAULT_IMAP]
    store = values.get("store", DEFAULT_STORE)
    try:
        store_kind(store)
    except UnknownStoreURL as e:
        raise usage.UsageError(f"--store: {e}")

    users: dict[str, str] = {}
    for spec in values.get("user", []):
        try:
            name, password = parse_user(spec)
        except ValueError as e:
            raise usage.UsageError(f"--user: {e}")
        users[name] = password

    cert, key = values.get("tls-cert"), values.get("tls-key")
    if bool(cert) != bool(key):
        raise usage.UsageError("--tls-cert and --tls-key must be given together")
    for option, endpoints in (("--imaps", imaps), ("--pop3s", pop3s)):
        if endpoints and not cert:
            raise usage.UsageError(f"{option} needs a certificate: give --tls-cert and --tls-key")
    files = (("--tls-cert", cert), ("--tls-key", key), ("--passwd", values.get("passwd")))
    for option, path in files:
        if path and not os.path.isfile(path):
            raise usage.UsageError(f"{option}: no such file: {path!r}")

    max_literal = values.get("max-literal")
    if max_literal is not None:
        try:
            max_literal = parse_size(max_literal)
        except ValueError as e:
            raise usage.UsageError(f"--max-literal: {e}")

    timeouts: dict[str, int | None] = {}
    for name, least in (("idle-timeout", MIN_IDLE_TIMEOUT), ("autologout", MIN_AUTOLOGOUT)):
        value = values.get(name)
        if value is not None:
            try:
                value = parse_duration(value)
            except ValueError as e:
                raise usage.UsageError(f"--{name}: {e}")
            if value < least:
                raise usage.UsageError(
                    f"--{name}: {value} seconds is too short; the least allowed is "
                    f"{least // 60} minutes")
        timeouts[name] = value

    limits: dict[str, int | None] = {}
    for name in ("max-connections-per-ip", "max-connections-per-user", "message-limit"):
        value = values.get(name)
        if value is not None:
            try:
                value = int(value)
            except (TypeError, ValueError):
                raise usage.UsageError(f"--{name}: not a whole number: {value!r}")
            if value < 1:
                raise usage.UsageError(f"--{name}: must be at least 1, not {value}")
        limits[name] = value

    progress_interval = values.get("progress-interval")
    if progress_interval is not None:
        try:
            progress_interval = parse_progress_interval(progress_interval)
        except ValueError as e:
            raise usage.UsageError(f"--progress-interval: {e}")

    for option, endpoints in (("--imap", imap), ("--imaps", imaps), ("--pop3", pop3),
                              ("--pop3s", pop3s), ("--lmtp", lmtp)):
        for description in endpoints:
            _check_endpoint(option, description)

    quota = _quota_settings(values)

    return MailhubSettings(
        imap=tuple(imap),
        imaps=tuple(imaps),
        pop3=tuple(pop3),
        pop3s=tuple(pop3s),
        pop3_retr_seen=bool(values.get("pop3-retr-seen", False)),
        lmtp=tuple(lmtp),
        lmtp_detail_separator=_detail_separator(values.get("lmtp-detail-separator", "+")),
        store=store,
        users=users,
        passwd=values.get("passwd"),
        tls_cert=cert,
        tls_key=key,
        allow_plaintext=bool(values.get("allow-plaintext", False)),
        max_literal=max_literal,
        idle_timeout=timeouts["idle-timeout"],
        autologout=timeouts["autologout"],
        keepalive=bool(values.get("keepalive", True)),
        unauthenticate=bool(values.get("unauthenticate", True)),
        literal_minus=bool(values.get("literal-minus", False)),
        utf8_accept=bool(values.get("utf8-accept", True)),
        urlauth_submitters=_user_names("urlauth-submitters", values.get("urlauth-submitters", [])),
        metrics=_metrics_endpoint(values.get("metrics")),
        max_connections_per_ip=limits["max-connections-per-ip"],
        max_connections_per_user=limits["max-connections-per-user"],
        message_limit=limits["message-limit"],
        progress_interval=progress_interval,
        quota=quota,
    )


def _user_names(key: str, names: list) -> tuple[str, ...]:
    """A list of user names from the configuration file."""
    if not all(isinstance(name, str) and name for name in names):
        raise usage.UsageError(f"{key}: expected a list of user names")
    return tuple(names)


def _quota_settings(values: dict[str, Any]) -> QuotaSettings:
    """The default quota and the configuration file's per-user limits."""
    default: dict[str, int | None] = {}
    for name, parse in (("storage", parse_storage_limit), ("messages", parse_message_limit)):
        try:
            default[name] = parse(values.get(f"quota-{name}"))
        except ValueError as e:
            raise usage.UsageError(f"--quota-{name}: {e}")
    try:
        users = parse_quota_table(values.get("quota", {}))
    except ValueError as e:
        raise usage.UsageError(f"configuration file: {e}")
    return QuotaSettings(QuotaLimits(**default), users)


def settings_for_command(config: str | None = None, store: str | None = None
                         ) -> MailhubSettings:
    """
    The settings a ``mailhub`` subcommand works on: the TOML file C{config}
    (the server's own configuration file) if given, with C{store} replacing
    its ``store`` key.  Raises L{usage.UsageError} as L{settings_from_mapping}.
    """
    values: dict[str, Any] = load_config_file(config) if config else {}
    if store is not None:
        values["store"] = store
    return settings_from_mapping(values)


def _check_endpoint(option: str, description: str) -> None:
    """Reject endpoint strings Twisted cannot parse, before any reactor runs."""
    from twisted.internet.endpoints import serverFromString

    try:
        # Parsing only: the endpoint is discarded, so no reactor is needed.
        serverFromString(None, description)
    except Exception as e:
        raise usage.UsageError(f"{option}: invalid endpoint {description!r}: {e}")


def _metrics_endpoint(description: str | None) -> str | None:
    """The ``--metrics`` endpoint, checked; None (no metrics) when not given."""
    if not description:
        return None
    _check_endpoint("--metrics", description)
    return description
