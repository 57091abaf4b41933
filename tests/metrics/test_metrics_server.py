"""
L{ServerMetrics} as the protocols' observer: what each event adds, bytes of
open and closed connections, and the bound on label values.
"""

from __future__ import annotations

import re

from zope.interface.verify import verifyObject

from twisted_mailhub.metrics.server import MAX_NAMES, ServerMetrics
from twisted_mailhub.observer import NULL_OBSERVER, IServerObserver


class FakeConnection:
    def __init__(self, protocol: str) -> None:
        self.protocol_name = protocol
        self.peer_host = "192.0.2.1"
        self.bytes_received = 0
        self.bytes_sent = 0


def samples(metrics: ServerMetrics) -> dict[str, float]:
    """C{{'name{labels}': value}} of everything rendered."""
    found = {}
    for line in metrics.render().decode().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            found[key] = float(value)
    return found


def test_both_observers_provide_the_interface():
    verifyObject(IServerObserver, ServerMetrics())
    verifyObject(IServerObserver, NULL_OBSERVER)


def test_connections_and_their_bytes():
    m = ServerMetrics()
    m.expect("pop3")
    a, b = FakeConnection("imap"), FakeConnection("imap")
    m.connection_opened(a)
    m.connection_opened(b)
    a.bytes_received, a.bytes_sent = 10, 100
    b.bytes_received, b.bytes_sent = 1, 2
    s = samples(m)
    assert s['mailhub_connections_accepted_total{protocol="imap"}'] == 2
    assert s['mailhub_connections_open{protocol="imap"}'] == 2
    # Counted while still open, at each scrape.
    assert s['mailhub_received_bytes_total{protocol="imap"}'] == 11
    assert s['mailhub_sent_bytes_total{protocol="imap"}'] == 102
    # An expected protocol has its series before its first client.
    assert s['mailhub_connections_accepted_total{protocol="pop3"}'] == 0
    assert s['mailhub_connections_open{protocol="pop3"}'] == 0
    assert s['mailhub_sent_bytes_total{protocol="pop3"}'] == 0

    a.bytes_sent = 150
    m.connection_closed(a)
    m.connection_refused(b, "too-many-connections")
    m.connection_closed(b)
    s = samples(m)
    assert s['mailhub_connections_open{protocol="imap"}'] == 0
    assert s['mailhub_sent_bytes_total{protocol="imap"}'] == 152
    assert s['mailhub_received_bytes_total{protocol="imap"}'] == 11
    refused = 'mailhub_connections_refused_total{protocol="imap",reason="too-many-connections"}'
    assert s[refused] == 1


def test_logins_commands_and_store_calls():
    m = ServerMetrics()
    m.login("imap", "LOGIN", True)
    m.login("imap", "plain", False)
    m.login("imap", "PLAIN", False)
    m.command("imap", "UID FETCH", 0.003)
    m.command("imap", "UID FETCH", 0.2)
    m.store_operation("metadata", 0.001, False)
    m.store_operation("append", 0.5, True)
    s = samples(m)
    assert s['mailhub_logins_total{protocol="imap",mechanism="LOGIN",result="ok"}'] == 1
    assert s['mailhub_logins_total{protocol="imap",mechanism="PLAIN",result="failed"}'] == 2
    assert s['mailhub_command_duration_seconds_count{protocol="imap",command="UID FETCH"}'] == 2
    assert s['mailhub_command_duration_seconds_bucket{protocol="imap",command="UID FETCH",'
             'le="0.005"}'] == 1
    assert s['mailhub_command_duration_seconds_sum{protocol="imap",command="UID FETCH"}'] \
        == 0.203
    assert s['mailhub_store_operation_duration_seconds_count{operation="append"}'] == 1
    assert s['mailhub_store_operation_errors_total{operation="append"}'] == 1
    assert 'mailhub_store_operation_errors_total{operation="metadata"}' not in s


def test_names_are_bounded():
    m = ServerMetrics()
    # Names of an unexpected shape never become series of their own...
    for name in ("fetch", "X" * 40, 'A"B', "A\nB", "", "A B C"):
        m.command("imap", name, 0.001)
    m.login("pop3", "A MECH\n", False)
    # ...and well-formed ones only up to MAX_NAMES per protocol.
    for i in range(MAX_NAMES + 50):
        m.command("pop3", f"CMD{i}", 0.001)
    s = samples(m)
    imap = {k for k in s if k.startswith("mailhub_command_duration_seconds_count") and
            'protocol="imap"' in k}
    assert imap == {'mailhub_command_duration_seconds_count{protocol="imap",command="other"}'}
    assert s['mailhub_command_duration_seconds_count{protocol="imap",command="other"}'] == 6
    assert s['mailhub_logins_total{protocol="pop3",mechanism="other",result="failed"}'] == 1
    pop3 = {re.search(r'command="([^"]*)"', k).group(1) for k in s
            if k.startswith("mailhub_command_duration_seconds_count") and 'protocol="pop3"' in k}
    assert len(pop3) == MAX_NAMES + 1 and "other" in pop3
    assert s['mailhub_command_duration_seconds_count{protocol="pop3",command="other"}'] == 50


def test_process_metrics():
    s = samples(ServerMetrics())
    assert s["process_cpu_seconds_total"] > 0
    assert s["process_resident_memory_bytes"] > 1_000_000
    assert s["process_open_fds"] >= 3
    assert s["process_max_fds"] >= s["process_open_fds"]
    assert s["process_start_time_seconds"] > 1_500_000_000
