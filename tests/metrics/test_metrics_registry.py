"""
The text exposition format (Prometheus 0.0.4) byte for byte: HELP and TYPE
lines, label escaping, histogram buckets, value formatting; and the same
output read back by Prometheus's own checker when it is installed.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from twisted_mailhub.metrics.registry import (
    CONTENT_TYPE,
    Registry,
    escape_help,
    escape_label_value,
    format_value,
)


def test_counter_and_gauge_lines():
    r = Registry()
    logins = r.counter("mailhub_logins_total", "Login attempts.", ["protocol", "result"])
    logins.labels("imap", "ok").inc()
    logins.labels("imap", "ok").inc(2)
    logins.labels("imap", "failed").inc()
    r.gauge("mailhub_connections_open", "Open now.").set(7)
    assert r.render().decode() == (
        "# HELP mailhub_logins_total Login attempts.\n"
        "# TYPE mailhub_logins_total counter\n"
        'mailhub_logins_total{protocol="imap",result="failed"} 1\n'
        'mailhub_logins_total{protocol="imap",result="ok"} 3\n'
        "# HELP mailhub_connections_open Open now.\n"
        "# TYPE mailhub_connections_open gauge\n"
        "mailhub_connections_open 7\n"
    )


def test_a_metric_without_samples_still_says_what_it_is():
    r = Registry()
    r.counter("x_total", "Nothing yet.", ["a"])
    assert r.render() == b"# HELP x_total Nothing yet.\n# TYPE x_total counter\n"


def test_histogram_buckets_are_cumulative_with_inf_sum_and_count():
    r = Registry()
    h = r.histogram("d_seconds", "Durations.", ["op"], buckets=[0.1, 1, 5])
    for value in (0.05, 0.1, 0.5, 2, 7, 7):
        h.labels("get").observe(value)
    assert r.render().decode() == (
        "# HELP d_seconds Durations.\n"
        "# TYPE d_seconds histogram\n"
        # 0.1 is counted in le="0.1": buckets are "less than or equal".
        'd_seconds_bucket{op="get",le="0.1"} 2\n'
        'd_seconds_bucket{op="get",le="1"} 3\n'
        'd_seconds_bucket{op="get",le="5"} 4\n'
        'd_seconds_bucket{op="get",le="+Inf"} 6\n'
        'd_seconds_sum{op="get"} 16.65\n'
        'd_seconds_count{op="get"} 6\n'
    )


def test_label_values_and_help_are_escaped():
    r = Registry()
    c = r.counter("c_total", 'Help with a \\ backslash,\na newline and "quotes".', ["name"])
    c.labels('a "quoted"\\ name\nnext').inc()
    lines = r.render().decode().splitlines()
    assert lines[0] == '# HELP c_total Help with a \\\\ backslash,\\na newline and "quotes".'
    assert lines[2] == 'c_total{name="a \\"quoted\\"\\\\ name\\nnext"} 1'
    assert escape_label_value('\\"\n') == '\\\\\\"\\n'
    assert escape_help('\\"\n') == '\\\\"\\n'


def test_values():
    assert format_value(3) == "3"
    assert format_value(3.0) == "3"
    assert format_value(0.25) == "0.25"
    assert format_value(1e-05) == "1e-05"
    assert format_value(float("inf")) == "+Inf"
    assert format_value(float("-inf")) == "-Inf"
    assert format_value(float("nan")) == "NaN"


def test_collected_values_are_read_at_each_render():
    value = [1]
    r = Registry()
    r.gauge("g", "Computed.", ["k"], collect=lambda: [(("b",), value[0]), (("a",), 2)])
    assert b'g{k="a"} 2\ng{k="b"} 1\n' in r.render()
    value[0] = 5
    assert b'g{k="b"} 5\n' in r.render()


def test_misuse_is_refused():
    r = Registry()
    c = r.counter("c_total", "C.", ["a", "b"])
    with pytest.raises(ValueError):
        c.labels("only one")
    with pytest.raises(ValueError):
        r.counter("c_total", "Again.")
    with pytest.raises(ValueError):
        r.histogram("h", "H.", ["le"], buckets=[1])
    with pytest.raises(ValueError):
        r.histogram("h", "H.", buckets=[2, 1])


def test_content_type_names_the_format_version():
    assert CONTENT_TYPE == "text/plain; version=0.0.4; charset=utf-8"


@pytest.mark.skipif(shutil.which("promtool") is None,
                    reason="promtool (Debian package prometheus) is not installed")
def test_promtool_accepts_the_output():
    r = Registry()
    c = r.counter("mailhub_things_total", "Things, with \"quotes\" and \\.", ["kind"])
    c.labels('odd "one"\nhere\\').inc()
    r.histogram("mailhub_wait_seconds", "Waits.", ["op"], buckets=[0.5, 1]).labels(
        "x").observe(0.7)
    r.gauge("mailhub_open", "Open.").set(2)
    result = subprocess.run(["promtool", "check", "metrics"], input=r.render(),
                            capture_output=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
