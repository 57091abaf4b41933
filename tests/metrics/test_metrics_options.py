"""
``--metrics ENDPOINT`` and the ``metrics`` key: parsed, checked, and wired
by L{make_service} into the factories, the realm and a listener.
"""

from __future__ import annotations

import pytest
from twisted.python import usage

from twisted_mailhub.backends.memory import MemoryBackend
from twisted_mailhub.config import MailhubOptions, MailhubSettings
from twisted_mailhub.metrics.server import ServerMetrics
from twisted_mailhub.metrics.timing import TimedBackend
from twisted_mailhub.observer import NULL_OBSERVER
from twisted_mailhub.service import make_service


def parse(*args: str) -> MailhubSettings:
    options = MailhubOptions()
    options.parseOptions(list(args))
    return options.settings


def test_no_metrics_by_default():
    assert parse().metrics is None


def test_option_and_configuration_key(tmp_path):
    assert parse("--metrics", "tcp:9180:interface=127.0.0.1").metrics == \
        "tcp:9180:interface=127.0.0.1"
    config = tmp_path / "mailhub.toml"
    config.write_text('metrics = "tcp:9181"\n')
    assert parse("--config", str(config)).metrics == "tcp:9181"
    # The command line wins.
    assert parse("--config", str(config), "--metrics", "tcp:9182").metrics == "tcp:9182"


def test_a_bad_endpoint_is_an_error():
    with pytest.raises(usage.UsageError, match="--metrics: invalid endpoint"):
        parse("--metrics", "nonsense:1")


def test_make_service_wires_the_metrics():
    settings = MailhubSettings(store="memory:", pop3=("tcp:0:interface=127.0.0.1",),
                               metrics="tcp:0:interface=127.0.0.1")
    service = make_service(settings, backend=MemoryBackend())
    assert isinstance(service.metrics, ServerMetrics)
    assert all(factory.observer is service.metrics for factory in service.factories)
    assert isinstance(service.portal.realm.backend, TimedBackend)
    assert len(list(service)) == 3  # IMAP, POP3 and the metrics listener
    text = service.metrics.render().decode()
    assert 'mailhub_connections_accepted_total{protocol="pop3"} 0' in text

    plain = make_service(MailhubSettings(store="memory:"), backend=MemoryBackend())
    assert not hasattr(plain, "metrics")
    assert all(factory.observer is NULL_OBSERVER for factory in plain.factories)
    assert not isinstance(plain.portal.realm.backend, TimedBackend)
