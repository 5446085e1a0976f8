"""The one interface every session backend implements: opaque keys to opaque bytes.

Stores know nothing of OpenID Connect: the flow hashes keys and encrypts values before
they arrive here, so a leaked database or Redis dump holds neither usable session ids
nor readable tokens.
"""

from __future__ import annotations

import os
from typing import Any, Protocol, TypeVar

_K = TypeVar("_K")
_V = TypeVar("_V")

# fork() copies a process's open connections into the child, but a connection serves one
# process: SQLite forbids using it across fork(), and two processes on one Redis socket
# would read each other's replies. Stores note the generation a connection was made in and
# make a new one when it changed; the inherited one is set aside, never used nor closed
# (closing it could act on the parent's state), and kept referenced so that garbage
# collection does not close it either. A counter bumped at fork costs a request nothing,
# where comparing os.getpid() is a system call.
_fork_generation = 0
_SET_ASIDE: list[Any] = []


def _after_fork_in_child() -> None:
    global _fork_generation
    _fork_generation += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def fork_generation() -> int:
    """Which process this is, as far as connections care: it changes in a forked child."""
    return _fork_generation


def set_aside(inherited: Any) -> None:
    """Keep a connection inherited through fork() referenced, never to be used or closed."""
    _SET_ASIDE.append(inherited)


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
