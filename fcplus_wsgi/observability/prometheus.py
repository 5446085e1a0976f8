"""Prometheus metrics: families built from the catalogue, fed by flow events.

Each middleware gets its own CollectorRegistry unless one is passed in, so several
middlewares (or tests) in one process never collide on metric names. Under gunicorn,
prometheus_client's multiprocess mode is used when PROMETHEUS_MULTIPROC_DIR is set in
the environment before the workers start: every worker writes its values to files in
that folder and any worker answering a scrape adds them all up. In that mode the
families are shared by the whole process, because two families with one name would
overwrite each other's file entries instead of adding up.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, values
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector

from ..events import STEPS, FlowEvent
from ..stores import Store, StoreError
from .catalogue import LABELS, METRICS, METRICS_BY_NAME, SESSION_END_REASONS, MetricSpec

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
log = logging.getLogger("fcplus_wsgi.observability")
_warned = False


def multiprocess_dir() -> str | None:
    """The multiprocess folder prometheus_client writes to, or None in single-process mode.

    prometheus_client picks its value class once, when it is first imported: a folder
    named in the environment after that is ignored (with a warning), since reading files
    nobody writes would publish zeros.
    """
    folder = os.environ.get(MULTIPROC_ENV) or os.environ.get(MULTIPROC_ENV.lower()) or None
    if folder is not None and not getattr(values.ValueClass, "_multiprocess", False):
        global _warned
        if not _warned:
            _warned = True
            log.warning("%s was set after prometheus_client was imported; metrics stay per process. "
                        "Export it before the server starts.", MULTIPROC_ENV)
        return None
    return folder


def _build(spec: MetricSpec, registry: CollectorRegistry) -> Any:
    if spec.kind == "counter":
        return Counter(spec.base_name, spec.help, spec.label_names, registry=registry)
    if spec.kind == "histogram":
        return Histogram(spec.name, spec.help, spec.label_names, buckets=spec.buckets, registry=registry)
    raise ValueError(f"unknown metric kind {spec.kind!r}")


class _Families:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.by_name: dict[str, Any] = {spec.name: _build(spec, registry) for spec in METRICS}


_lock = threading.Lock()
_by_registry: weakref.WeakKeyDictionary[CollectorRegistry, _Families] = weakref.WeakKeyDictionary()
_process_families: _Families | None = None


def _families(registry: CollectorRegistry | None) -> _Families:
    global _process_families
    with _lock:
        if registry is None and multiprocess_dir():
            if _process_families is None:
                _process_families = _Families(CollectorRegistry(auto_describe=True))
            return _process_families
        if registry is None:
            return _Families(CollectorRegistry(auto_describe=True))
        families = _by_registry.get(registry)
        if families is None:
            families = _by_registry[registry] = _Families(registry)
        return families


class PrometheusMetrics:
    """The Prometheus plugin: subscribe `observe` to an EventBus, serve `exposition()`.

    `provider` is the configured preset name, used to create the usual series at zero
    so rates and alerts work from the first event. Pass `registry` to publish into a
    registry of your own (prometheus_client.REGISTRY to join your app's metrics);
    middlewares sharing a registry share the families.
    """

    def __init__(self, provider: str | None = None, *, registry: CollectorRegistry | None = None,
                 acr_values: tuple[str, ...] = ()) -> None:
        self._families = _families(registry)
        self.registry = self._families.registry
        self.multiprocess = multiprocess_dir() is not None
        f = self._families.by_name
        self._steps = f["fcplus_flow_steps_total"]
        self._errors = f["fcplus_flow_errors_total"]
        self._provider_duration = f["fcplus_provider_request_duration_seconds"]
        self._provider_errors = f["fcplus_provider_request_errors_total"]
        self._login_duration = f["fcplus_login_duration_seconds"]
        self._logins = f["fcplus_logins_total"]
        self._sessions_ended = f["fcplus_sessions_ended_total"]
        self._jwks = f["fcplus_jwks_refreshes_total"]
        self._store_duration = f["fcplus_store_operation_duration_seconds"]
        self._store_errors = f["fcplus_store_errors_total"]
        if provider is not None:
            self._initialise(LABELS["provider"].normalize(provider), acr_values)

    def _initialise(self, provider: str, acr_values: tuple[str, ...]) -> None:
        for step in STEPS:
            for outcome in ("success", "failure"):
                self._steps.labels(provider, step, outcome)
        self._login_duration.labels(provider)
        for acr in acr_values:
            self._logins.labels(provider, LABELS["acr"].normalize(acr))
        for reason in SESSION_END_REASONS:
            self._sessions_ended.labels(reason)

    # -- events ------------------------------------------------------------------------------
    def observe(self, event: FlowEvent) -> None:
        """EventBus subscriber: one event, a few label lookups and increments."""
        provider = LABELS["provider"].normalize(event.provider)
        step = event.step
        if step in STEPS:
            outcome = LABELS["outcome"].normalize(event.outcome)
            self._steps.labels(provider, step, outcome).inc()
            if outcome == "failure":
                self._errors.labels(provider, step, LABELS["category"].normalize(event.category),
                                    LABELS["error"].normalize(event.error)).inc()
        elif step == "login":
            self._logins.labels(provider, LABELS["acr"].normalize(event.acr)).inc()
            if _is_duration(event.duration):
                self._login_duration.labels(provider).observe(event.duration)
        elif step == "session_ended":
            self._sessions_ended.labels(LABELS["reason"].normalize(event.extra.get("reason"))).inc()
        elif step == "provider_request":
            endpoint = LABELS["endpoint"].normalize(event.extra.get("endpoint"))
            if _is_duration(event.duration):
                self._provider_duration.labels(provider, endpoint).observe(event.duration)
            if event.outcome != "success":
                self._provider_errors.labels(provider, endpoint, LABELS["call_error"].normalize(event.error)).inc()
            reason = event.extra.get("reason")
            if endpoint == "jwks" and reason is not None:
                self._jwks.labels(provider, LABELS["refresh_reason"].normalize(reason)).inc()
        # Any other kind (an operator's own events) is not a metric: no series grows from it.

    __call__ = observe

    # -- store ---------------------------------------------------------------------------------
    def instrument_store(self, store: Store, backend: str) -> InstrumentedStore:
        return InstrumentedStore(store, LABELS["backend"].normalize(backend), self)

    # -- exposition ------------------------------------------------------------------------------
    def collector(self) -> CollectorRegistry:
        """What a scrape reads: this registry, or every worker's files in multiprocess mode."""
        if self.multiprocess:
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
            return registry
        return self.registry

    def exposition(self, accept: str | None = None) -> tuple[bytes, str]:
        """(body, content type) for a scrape, negotiated like prometheus_client does."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.collector()), content_type

    def sample(self, name: str, labels: Mapping[str, str] | None = None) -> float | None:
        """One sample's current value (test and debugging helper, like get_sample_value)."""
        return self.collector().get_sample_value(name, dict(labels or {}))


def _is_duration(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 1e7


class InstrumentedStore:
    """A Store that times every operation and counts StoreError, then passes it on.

    The label children are resolved once here, so the per-request cost on the hot path
    (one `get`) is two clock reads and one histogram observation.
    """

    def __init__(self, inner: Store, backend: str, metrics: PrometheusMetrics) -> None:
        self.inner = inner
        self.backend = backend
        duration = metrics._store_duration
        errors = metrics._store_errors
        self._timers = {op: duration.labels(backend, op) for op in ("get", "put", "take", "delete")}
        self._errors = {op: errors.labels(backend, op) for op in ("get", "put", "take", "delete")}

    def get(self, key: str) -> bytes | None:
        started = time.perf_counter()
        try:
            return self.inner.get(key)
        except StoreError:
            self._errors["get"].inc()
            raise
        finally:
            self._timers["get"].observe(time.perf_counter() - started)

    def put(self, key: str, value: bytes, ttl: float) -> None:
        started = time.perf_counter()
        try:
            self.inner.put(key, value, ttl)
        except StoreError:
            self._errors["put"].inc()
            raise
        finally:
            self._timers["put"].observe(time.perf_counter() - started)

    def take(self, key: str) -> bytes | None:
        started = time.perf_counter()
        try:
            return self.inner.take(key)
        except StoreError:
            self._errors["take"].inc()
            raise
        finally:
            self._timers["take"].observe(time.perf_counter() - started)

    def delete(self, key: str) -> None:
        started = time.perf_counter()
        try:
            self.inner.delete(key)
        except StoreError:
            self._errors["delete"].inc()
            raise
        finally:
            self._timers["delete"].observe(time.perf_counter() - started)

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name: str) -> Any:
        # Backend extras (SQLiteStore.purge, ...) stay reachable through the wrapper.
        if name == "inner":  # not set yet (copy, pickle): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)


__all__ = ["METRICS_BY_NAME", "MULTIPROC_ENV", "InstrumentedStore", "PrometheusMetrics", "multiprocess_dir"]
