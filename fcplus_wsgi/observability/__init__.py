"""Observability plugins: Prometheus metrics and structlog events, fed by the flow's EventBus.

Only this package imports prometheus_client and structlog, and the middleware imports it
only when the ini asks for `metrics = true` or `structlog = true`: with both off, neither
library is even loaded. An operator adds a subscriber of their own with
`middleware.bus.subscribe(fn)`; see docs/observability.md.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from webob import Response

from ..events import EventBus
from ..stores import Store
from .catalogue import LABELS, METRICS, METRICS_BY_NAME, MetricSpec, event_name
from .logs import LOG_FORMATS, structlog_subscriber
from .prometheus import MULTIPROC_ENV, InstrumentedStore, PrometheusMetrics, multiprocess_dir

if TYPE_CHECKING:  # settings is a sibling floor: typed against, never imported at run time
    from ..settings import Settings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def store_backend(store: Store) -> str:
    """The backend label of a store, from its class (wrapped or injected stores included)."""
    name = type(store).__name__.lower()
    for backend in ("memory", "sqlite", "redis"):
        if backend in name:
            return backend
    return "other"


def client_allowed(remote_addr: object, networks: Iterable[Network]) -> bool:
    """True when REMOTE_ADDR falls in one of the networks. Only the socket peer counts:
    X-Forwarded-For is the client's to write, so it never opens the metrics."""
    if not isinstance(remote_addr, str) or not remote_addr:
        return False
    try:
        address = ipaddress.ip_address(remote_addr.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address.version == net.version and address in net for net in networks)


class Observability:
    """What the middleware plugs in from its settings: subscribers, store timing, /metrics."""

    def __init__(self, settings: Settings, bus: EventBus, *, registry: Any = None) -> None:
        self.metrics: PrometheusMetrics | None = None
        if settings.metrics:
            acr_values = (*settings.acr_values, *(settings.policy.acr_values_allowed or ()))
            self.metrics = PrometheusMetrics(settings.provider_name, registry=registry,
                                             acr_values=tuple(dict.fromkeys(acr_values)))
            bus.subscribe(self.metrics.observe)
        if settings.structlog:
            bus.subscribe(structlog_subscriber(settings.log_format))
        self.allow: tuple[Network, ...] = tuple(settings.metrics_allow)

    def wrap_store(self, store: Store) -> Store:
        if self.metrics is None or isinstance(store, InstrumentedStore):
            return store
        return self.metrics.instrument_store(store, store_backend(store))

    def metrics_endpoint(self, environ: dict[str, Any]) -> Response:
        """The scrape answer on metrics_path: 404 to anyone outside metrics_allow."""
        if self.metrics is None or not client_allowed(environ.get("REMOTE_ADDR"), self.allow):
            return Response(status=404, body=b"Not Found\n", content_type="text/plain", charset=None)
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            return Response(status=405, body=b"", headerlist=[("Allow", "GET, HEAD")])
        body, content_type = self.metrics.exposition(environ.get("HTTP_ACCEPT"))
        return Response(body=body, headerlist=[("Content-Type", content_type), ("Cache-Control", "no-store"),
                                               ("X-Content-Type-Options", "nosniff")])


def serve_metrics(port: int, source: Any = None, addr: str = "127.0.0.1") -> tuple[Any, threading.Thread]:
    """A standalone exporter on addr:port, in a daemon thread; returns (server, thread).

    `source` is a PrometheusMetrics or a middleware built with `metrics = true`. Without
    it, in multiprocess mode, it serves the sum of every worker's files (for instance from
    gunicorn's `when_ready` hook in the master process).
    """
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    metrics = getattr(getattr(source, "observability", None), "metrics", source)
    if isinstance(metrics, PrometheusMetrics):
        registry = metrics.collector()
    elif source is None and multiprocess_dir():
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    else:
        raise ValueError("serve_metrics needs a PrometheusMetrics, a middleware with metrics = true, "
                         f"or {MULTIPROC_ENV} set for multiprocess mode")
    server, thread = start_http_server(port, addr=addr, registry=registry)
    return server, thread


def gunicorn_child_exit(server: Any, worker: Any) -> None:
    """gunicorn `child_exit` hook: tell prometheus_client a worker is gone (its counters
    stay counted; live gauges, which fcplus_wsgi does not use, would be dropped)."""
    from prometheus_client import multiprocess

    if multiprocess_dir():
        multiprocess.mark_process_dead(worker.pid)


__all__ = [
    "LABELS", "LOG_FORMATS", "METRICS", "METRICS_BY_NAME", "MULTIPROC_ENV", "InstrumentedStore", "MetricSpec",
    "Observability", "PrometheusMetrics", "client_allowed", "event_name", "gunicorn_child_exit", "serve_metrics",
    "store_backend", "structlog_subscriber",
]
