"""
Serving the metrics over HTTP with twisted.web: C{GET /metrics} answers the
Prometheus text format; every other path is 404.

Rendering runs in the reactor thread (the metrics are only ever touched
there) and takes a few milliseconds; scrapes are not logged, so a scrape
every few seconds adds nothing to the server's log.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.web.resource import NoResource, Resource
from twisted.web.server import Request, Site

from twisted_mailhub.metrics.registry import CONTENT_TYPE

__all__ = ["MetricsResource", "MetricsSite"]


class MetricsResource(Resource):
    """The exposition: C{render} is called anew for every GET (and HEAD)."""

    isLeaf = True

    def __init__(self, render: Callable[[], bytes]) -> None:
        super().__init__()
        self._render = render

    def render_GET(self, request: Request) -> bytes:
        if any(request.postpath):
            # /metrics/anything: not a page of ours.
            return NoResource().render(request)
        body = self._render()
        request.setHeader(b"Content-Type", CONTENT_TYPE.encode("ascii"))
        request.setHeader(b"Cache-Control", b"no-store")
        return body

    render_HEAD = render_GET


class _Root(Resource):
    def __init__(self, metrics: Resource) -> None:
        super().__init__()
        self.putChild(b"metrics", metrics)

    def getChild(self, path: bytes, request: Any) -> Resource:
        return NoResource()

    def render(self, request: Any) -> bytes:
        return NoResource().render(request)


class MetricsSite(Site):
    """A L{Site} serving C{/metrics} from C{render}, without access logs."""

    noisy = False

    def __init__(self, render: Callable[[], bytes]) -> None:
        super().__init__(_Root(MetricsResource(render)))

    def log(self, request: Any) -> None:
        pass
