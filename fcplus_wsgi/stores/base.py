"""The one interface every session backend implements: opaque keys to opaque bytes.

Stores know nothing of OpenID Connect: the flow hashes keys and encrypts values before
they arrive here, so a leaked database or Redis dump holds neither usable session ids
nor readable tokens.
"""

from __future__ import annotations

from typing import Protocol, TypeVar

_K = TypeVar("_K")
_V = TypeVar("_V")


class StoreError(Exception):
    """The backend failed (locked, full, unreachable); callers answer 503, never half-write."""


class Store(Protocol):
    def get(self, key: str) -> bytes | None:
        """The live value, or None when absent or expired."""

    def put(self, key: str, value: bytes, ttl: float) -> None:
        """Store value for ttl seconds, replacing any previous value."""

    def take(self, key: str) -> bytes | None:
        """Atomically read and delete: single-use entries (pending logins) rely on it."""

    def delete(self, key: str) -> None:
        """Remove the key; absent keys are not an error."""

    def close(self) -> None:
        """Release connections."""


def remember(cache: dict[_K, _V], key: _K, value: _V, limit: int) -> None:
    """Put into a per-process cache of at most `limit` entries, dropping the oldest first
    (dicts keep insertion order). Threads share these caches without a lock: if another
    thread evicted first, start over rather than fail a request."""
    if len(cache) >= limit:
        try:
            del cache[next(iter(cache))]
        except (StopIteration, KeyError, RuntimeError):
            cache.clear()
    cache[key] = value
