"""
The server's metrics: an L{IServerObserver} that counts connections,
logins, commands and bytes, times storage calls, and renders all of them
(with a few facts about the process) for Prometheus.

Label values come from the server, never verbatim from a client: protocol
names are the listeners' kinds, command and mechanism names what the
parsers recognised, and each is bounded again here (a name of an unexpected
shape, or one beyond L{MAX_NAMES} per protocol, is counted as C{"other"}),
so no client can make the set of series grow without bound.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from typing import Any, Iterator

from zope.interface import implementer

from twisted_mailhub.metrics.registry import LabelValues, Registry
from twisted_mailhub.observer import IServerObserver

__all__ = ["COMMAND_BUCKETS", "MAX_NAMES", "STORE_BUCKETS", "ServerMetrics"]

#: Upper bounds, in seconds, of the command latency buckets: from a cached
#: FETCH on loopback (a tenth of a millisecond) to an IDLE that lasts.
COMMAND_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                   0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: Upper bounds, in seconds, of the storage call latency buckets.
STORE_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Distinct command (and mechanism) names counted per protocol before the
#: rest go to C{"other"}.
MAX_NAMES = 64

_COMMAND_NAME = re.compile(r"^[A-Z][A-Z0-9]{0,15}(?: [A-Z][A-Z0-9]{0,15})?$")
_MECHANISM_NAME = re.compile(r"^[A-Z0-9][A-Z0-9_-]{0,19}$")


@implementer(IServerObserver)
class ServerMetrics:
    """
    The metrics of one server, in C{registry} (a new L{Registry} by default).

    Set it as the C{observer} of the protocol factories; wrap the backend the
    realm opens stores from in L{twisted_mailhub.metrics.timing.TimedBackend}
    with L{store_operation} as the callback; serve C{registry.render()} (see
    L{twisted_mailhub.metrics.web}).  L{expect} names the protocols a
    server listens for, so their series exist (at 0) from the first scrape.
    """

    def __init__(self, registry: Registry | None = None) -> None:
        r = self.registry = registry if registry is not None else Registry()
        # Open connections by protocol; the bytes of the closed ones.
        self._open: dict[str, set[Any]] = defaultdict(set)
        self._closed_received: dict[str, int] = defaultdict(int)
        self._closed_sent: dict[str, int] = defaultdict(int)
        self._names: dict[tuple[str, str], set[str]] = defaultdict(set)
        self._command_children: dict[tuple[str, str], Any] = {}
        self._store_children: dict[str, Any] = {}

        self.accepted = r.counter(
            "mailhub_connections_accepted_total",
            "Client connections accepted, by listener protocol (imaps, pop3s: implicit TLS).",
            ["protocol"])
        self.open = r.gauge(
            "mailhub_connections_open", "Client connections open now, by listener protocol.",
            ["protocol"], collect=self._open_counts)
        self.refused = r.counter(
            "mailhub_connections_refused_total",
            "Connections turned away at once, by protocol and reason.",
            ["protocol", "reason"])
        self.logins = r.counter(
            "mailhub_logins_total",
            "Login attempts decided, by protocol, mechanism (LOGIN, USER or the SASL "
            "mechanism) and result (ok or failed).",
            ["protocol", "mechanism", "result"])
        self.commands = r.histogram(
            "mailhub_command_duration_seconds",
            "Time from reading a command to having written its response, by protocol and "
            "command (unknown or malformed lines: other).",
            ["protocol", "command"], buckets=COMMAND_BUCKETS)
        self.store = r.histogram(
            "mailhub_store_operation_duration_seconds",
            "Time the mail store took for a call made by an IMAP, POP3 or LMTP session, by "
            "operation.",
            ["operation"], buckets=STORE_BUCKETS)
        self.store_errors = r.counter(
            "mailhub_store_operation_errors_total",
            "Calls to the mail store that failed (included in the duration histogram).",
            ["operation"])
        self.received = r.counter(
            "mailhub_received_bytes_total",
            "Bytes received from clients, by protocol (protocol bytes, before TLS).",
            ["protocol"], collect=lambda: self._bytes(self._closed_received,
                                                      "bytes_received"))
        self.sent = r.counter(
            "mailhub_sent_bytes_total",
            "Bytes sent to clients, by protocol (protocol bytes, before TLS).",
            ["protocol"], collect=lambda: self._bytes(self._closed_sent, "bytes_sent"))
        _add_process_metrics(r)

    def expect(self, protocol: str) -> None:
        """Make the connection and byte series of C{protocol} exist, at 0."""
        self.accepted.labels(protocol)
        self._open[protocol]
        self._closed_received[protocol]
        self._closed_sent[protocol]

    # -- IServerObserver ----------------------------------------------------------

    def connection_opened(self, connection: Any) -> None:
        protocol = connection.protocol_name
        self.accepted.labels(protocol).inc()
        self._open[protocol].add(connection)

    def connection_refused(self, connection: Any, reason: str) -> None:
        self.refused.labels(connection.protocol_name, reason).inc()

    def connection_closed(self, connection: Any) -> None:
        protocol = connection.protocol_name
        self._open[protocol].discard(connection)
        self._closed_received[protocol] += connection.bytes_received
        self._closed_sent[protocol] += connection.bytes_sent

    def login(self, protocol: str, mechanism: str, succeeded: bool) -> None:
        mechanism = self._bounded(protocol, "mechanism", mechanism.upper(), _MECHANISM_NAME)
        self.logins.labels(protocol, mechanism, "ok" if succeeded else "failed").inc()

    def command(self, protocol: str, name: str, seconds: float) -> None:
        child = self._command_children.get((protocol, name))
        if child is None:
            label = self._bounded(protocol, "command", name, _COMMAND_NAME)
            child = self.commands.labels(protocol, label)
            if label == name:
                # Only names that got a series of their own are remembered.
                self._command_children[protocol, name] = child
        child.observe(seconds)

    # -- storage ------------------------------------------------------------------

    def store_operation(self, operation: str, seconds: float, failed: bool) -> None:
        """One storage call (the callback of the timing proxies)."""
        child = self._store_children.get(operation)
        if child is None:
            child = self._store_children[operation] = self.store.labels(operation)
        child.observe(seconds)
        if failed:
            self.store_errors.labels(operation).inc()

    # -- rendering ------------------------------------------------------------------

    def render(self) -> bytes:
        """Every metric in the Prometheus text format."""
        return self.registry.render()

    def _bounded(self, protocol: str, kind: str, name: str, shape: re.Pattern[str]) -> str:
        known = self._names[protocol, kind]
        if name in known:
            return name
        if len(known) >= MAX_NAMES or not shape.match(name):
            return "other"
        known.add(name)
        return name

    def _open_counts(self) -> Iterator[tuple[LabelValues, int]]:
        for protocol, connections in self._open.items():
            yield (protocol,), len(connections)

    def _bytes(self, closed: dict[str, int], attribute: str
               ) -> Iterator[tuple[LabelValues, int]]:
        # Open connections count as they go: their running totals are added
        # to those of the closed ones at each scrape.
        for protocol in sorted(set(closed) | set(self._open)):
            live = sum(getattr(c, attribute) for c in self._open.get(protocol, ()))
            yield (protocol,), closed.get(protocol, 0) + live


def _add_process_metrics(registry: Registry) -> None:
    """The usual process_* metrics, where the system tells them (Linux: /proc)."""
    registry.counter("process_cpu_seconds_total", "User and system CPU time spent, seconds.",
                     collect=_cpu_seconds)
    registry.gauge("process_resident_memory_bytes", "Resident memory size in bytes.",
                   collect=_resident_memory)
    registry.gauge("process_open_fds", "Open file descriptors.", collect=_open_fds)
    registry.gauge("process_max_fds", "The most file descriptors the process may open.",
                   collect=_max_fds)
    registry.gauge("process_start_time_seconds",
                   "When the process started, in seconds since the Unix epoch.",
                   collect=_start_time)


def _cpu_seconds() -> Iterator[tuple[LabelValues, float]]:
    times = os.times()
    yield (), times.user + times.system


def _resident_memory() -> Iterator[tuple[LabelValues, int]]:
    try:
        with open("/proc/self/statm", "rb") as f:
            pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return
    yield (), pages * os.sysconf("SC_PAGE_SIZE")


def _open_fds() -> Iterator[tuple[LabelValues, int]]:
    try:
        yield (), len(os.listdir("/proc/self/fd"))
    except OSError:
        return


def _max_fds() -> Iterator[tuple[LabelValues, int]]:
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY:
        yield (), soft


_process_start: float | None = None


def _start_time_seconds() -> float | None:
    global _process_start
    if _process_start is None:
        try:
            with open("/proc/self/stat", "rb") as f:
                # The command name (field 2) may hold spaces: count from its end.
                fields = f.read().rpartition(b")")[2].split()
            ticks = int(fields[19])  # field 22: start time after boot, in clock ticks
            with open("/proc/stat", "rb") as f:
                boot = next(int(line.split()[1]) for line in f if line.startswith(b"btime "))
        except (OSError, ValueError, IndexError, StopIteration):
            return None
        _process_start = boot + ticks / os.sysconf("SC_CLK_TCK")
    return _process_start


def _start_time() -> Iterator[tuple[LabelValues, float]]:
    start = _start_time_seconds()
    if start is not None:
        yield (), start
