"""
Prometheus metrics of a running server, on ``--metrics ENDPOINT`` at
``/metrics``.

  - L{registry}: counters, gauges, histograms and the text exposition format;
  - L{server}: L{ServerMetrics}, the L{twisted_mailhub.observer.IServerObserver}
    that counts connections, logins, commands and bytes, and the store timings;
  - L{timing}: the proxies that time the calls sessions make to the store;
  - L{web}: the twisted.web site serving them.

L{add_metrics} wires them into a L{twisted_mailhub.service.MailhubService}.
"""

from __future__ import annotations

from typing import Any

from twisted_mailhub.metrics.registry import Registry
from twisted_mailhub.metrics.server import ServerMetrics

__all__ = ["Registry", "ServerMetrics", "add_metrics"]

#: Listener kinds whose series are made at start for the listeners configured.
_PROTOCOLS = ("imap", "imaps", "pop3", "pop3s", "lmtp")


def add_metrics(server: Any, description: str, settings: Any = None,
                reactor: Any = None) -> ServerMetrics:
    """
    Count what C{server}'s protocol factories see, time the stores its realm
    (and its LMTP delivery) opens, and serve the metrics on the endpoint C{description} (an endpoint
    string such as ``tcp:9180:interface=127.0.0.1``).  Call once the
    factories are in C{server.factories}; the metrics are also left in
    C{server.metrics}.  C{settings} names the configured listeners.
    """
    from twisted_mailhub.auth.realm import MailhubRealm
    from twisted_mailhub.metrics.timing import TimedBackend
    from twisted_mailhub.metrics.web import MetricsSite

    metrics = ServerMetrics()
    for factory in server.factories:
        if hasattr(factory, "observer"):
            factory.observer = metrics
    for protocol in _PROTOCOLS:
        if settings is not None and getattr(settings, protocol, None):
            metrics.expect(protocol)
    realm = getattr(server.portal, "realm", None)
    if isinstance(realm, MailhubRealm):
        realm.backend = TimedBackend(realm.backend, metrics.store_operation)
    for factory in server.factories:
        # LMTP delivers through a backend of its own (LocalDelivery's).
        delivery = getattr(factory, "delivery", None)
        if getattr(delivery, "backend", None) is not None:
            delivery.backend = TimedBackend(delivery.backend, metrics.store_operation)
    server.listen(description, MetricsSite(metrics.render), "Metrics", reactor)
    server.metrics = metrics
    return metrics
