"""
Counters, gauges and histograms, and their text exposition format (the
Prometheus text format, version 0.0.4).

Metrics are updated and rendered in the reactor thread, so nothing here
takes a lock: an increment is an addition, an observation a bisection and
two additions.  A metric with label names keeps one child per tuple of
label values; callers bound the values they pass (see L{ServerMetrics}).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from typing import Callable, Iterable, Iterator, Sequence

__all__ = [
    "CONTENT_TYPE", "Counter", "Gauge", "Histogram", "Registry", "escape_help",
    "escape_label_value", "format_value",
]

#: The media type of L{Registry.render}'s output.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: Label values, per child, in the order of the metric's label names.
LabelValues = tuple[str, ...]


def escape_label_value(value: str) -> str:
    """A label value as it goes between double quotes: backslash, quote and newline escaped."""
    return value.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n")


def escape_help(text: str) -> str:
    """HELP text: backslash and newline escaped (quotes stay as they are)."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    """A sample value: whole numbers without a fraction, C{+Inf}, C{-Inf}, C{NaN}."""
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{escape_label_value(v)}"' for n, v in zip(names, values)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


class _Metric:
    """What every metric has: a name, help text, label names and children."""

    kind = ""

    def __init__(self, name: str, help: str, labelnames: Sequence[str] = ()) -> None:
        self.name = name
        self.help = help
        self.labelnames = tuple(labelnames)
        self._children: dict[LabelValues, object] = {}

    def labels(self, *values: str):
        """The child for these label values (made on first use)."""
        child = self._children.get(values)
        if child is None:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name} takes labels {self.labelnames}, not {values}")
            child = self._children[values] = self._child()
        return child

    def _child(self):
        raise NotImplementedError

    def samples(self) -> Iterator[tuple[str, str, float]]:
        """C{(name with suffix, rendered labels, value)} for every sample."""
        for values, child in sorted(self._children.items()):
            yield self.name, _labels(self.labelnames, values), child.value

    def render(self) -> Iterator[str]:
        yield f"# HELP {self.name} {escape_help(self.help)}\n"
        yield f"# TYPE {self.name} {self.kind}\n"
        for name, labels, value in self.samples():
            yield f"{name}{labels} {format_value(value)}\n"


class _Value:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value: float = 0

    def inc(self, amount: float = 1) -> None:
        self.value += amount

    def dec(self, amount: float = 1) -> None:
        self.value -= amount

    def set(self, value: float) -> None:
        self.value = value


class _Scalar(_Metric):
    """
    One number per child.  C{collect}, when given, computes the values at
    render time instead: it yields C{(label values, value)} pairs.
    """

    def __init__(self, name: str, help: str, labelnames: Sequence[str] = (), *,
                 collect: Callable[[], Iterable[tuple[LabelValues, float]]] | None = None
                 ) -> None:
        super().__init__(name, help, labelnames)
        self._collect = collect

    def _child(self) -> _Value:
        return _Value()

    def inc(self, amount: float = 1) -> None:
        """Add C{amount} to the metric without labels."""
        self.labels().inc(amount)

    def samples(self) -> Iterator[tuple[str, str, float]]:
        if self._collect is None:
            yield from super().samples()
            return
        for values, value in sorted(self._collect()):
            yield self.name, _labels(self.labelnames, values), value


class Counter(_Scalar):
    """A count that only grows; by Prometheus convention its name ends in C{_total}."""

    kind = "counter"


class Gauge(_Scalar):
    """A value that goes up and down (or is computed by C{collect} when rendered)."""

    kind = "gauge"

    def dec(self, amount: float = 1) -> None:
        """Subtract C{amount} from the metric without labels."""
        self.labels().dec(amount)

    def set(self, value: float) -> None:
        """Set the metric without labels."""
        self.labels().set(value)


class _Observations:
    __slots__ = ("counts", "sum", "_bounds")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds
        # One count per bucket, not cumulative (made so when rendered); the
        # last is the +Inf bucket's own.
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        # bisect_left: a value equal to a bound goes in that bound's bucket (le).
        self.counts[bisect_left(self._bounds, value)] += 1
        self.sum += value


class Histogram(_Metric):
    """
    Observations counted in buckets of upper bounds C{buckets} (ascending;
    the C{+Inf} bucket is added), with their sum and count.
    """

    kind = "histogram"

    def __init__(self, name: str, help: str, labelnames: Sequence[str] = (), *,
                 buckets: Sequence[float]) -> None:
        if "le" in labelnames:
            raise ValueError("'le' is the bucket label of a histogram")
        bounds = tuple(float(b) for b in buckets)
        if not bounds or list(bounds) != sorted(set(bounds)) or math.isinf(bounds[-1]):
            raise ValueError("buckets must be finite, distinct and ascending")
        super().__init__(name, help, labelnames)
        self.buckets = bounds
        self._le = [format_value(b) for b in bounds] + ["+Inf"]

    def _child(self) -> _Observations:
        return _Observations(self.buckets)

    def observe(self, value: float) -> None:
        """Observe C{value} on the metric without labels."""
        self.labels().observe(value)

    def samples(self) -> Iterator[tuple[str, str, float]]:
        for values, child in sorted(self._children.items()):
            total = 0
            for le, count in zip(self._le, child.counts):
                total += count
                yield (f"{self.name}_bucket",
                       _labels(self.labelnames, values, f'le="{le}"'), total)
            yield f"{self.name}_sum", _labels(self.labelnames, values), child.sum
            yield f"{self.name}_count", _labels(self.labelnames, values), total


class Registry:
    """The metrics of one server, rendered together in the order they were added."""

    def __init__(self) -> None:
        self._metrics: dict[str, _Metric] = {}

    def add(self, metric: _Metric) -> _Metric:
        """Add C{metric}; its name must be new to this registry."""
        if metric.name in self._metrics:
            raise ValueError(f"a metric named {metric.name} is already registered")
        self._metrics[metric.name] = metric
        return metric

    def counter(self, name: str, help: str, labelnames: Sequence[str] = (), **kw) -> Counter:
        """Add and return a L{Counter}."""
        return self.add(Counter(name, help, labelnames, **kw))

    def gauge(self, name: str, help: str, labelnames: Sequence[str] = (), **kw) -> Gauge:
        """Add and return a L{Gauge}."""
        return self.add(Gauge(name, help, labelnames, **kw))

    def histogram(self, name: str, help: str, labelnames: Sequence[str] = (), *,
                  buckets: Sequence[float]) -> Histogram:
        """Add and return a L{Histogram}."""
        return self.add(Histogram(name, help, labelnames, buckets=buckets))

    def get(self, name: str) -> _Metric:
        """The metric called C{name} (C{KeyError} if none)."""
        return self._metrics[name]

    def render(self) -> bytes:
        """Every metric in the text exposition format, UTF-8."""
        return "".join(line for metric in self._metrics.values()
                       for line in metric.render()).encode("utf-8")
