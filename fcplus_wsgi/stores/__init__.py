"""Session store backends, chosen by URL: memory:// or sqlite:///PATH."""

from __future__ import annotations

from .base import Store, StoreError
from .memory import MemoryStore
from .sqlite import SQLiteStore

__all__ = ["MemoryStore", "SQLiteStore", "Store", "StoreError", "open_store"]


def open_store(url: str) -> Store:
    """Open the backend a session_store URL names."""
    if url.startswith("memory://"):
        return MemoryStore()
    if url.startswith("sqlite:///"):
        # SQLAlchemy's convention: sqlite:///relative.db and sqlite:////absolute/path.db
        return SQLiteStore(url[len("sqlite:///"):])
    raise StoreError(f"session_store {url!r} is not supported by this version")
