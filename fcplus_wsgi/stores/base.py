"""The one interface every session backend implements: opaque keys to opaque bytes.

Stores know nothing of OpenID Connect: the flow hashes keys and encrypts values before
they arrive here, so a leaked database or Redis dump holds neither usable session ids
nor readable tokens.
"""

from __future__ import annotations

from typing import Protocol


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
