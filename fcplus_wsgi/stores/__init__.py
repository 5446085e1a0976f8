"""Session store backends, chosen by URL: memory://, sqlite:///PATH or redis://... (see redis.py)."""

from __future__ import annotations

import time
from collections.abc import Callable

from .base import Store, StoreError
from .memory import MemoryStore
from .sqlite import SQLiteStore

__all__ = ["MemoryStore", "SQLiteStore", "Store", "StoreError", "open_store"]


def _sqlite_read_cache(query: str) -> bool:
    """The one SQLite URL option, read strictly: anything else is refused at start-up rather
    than ignored (a path holding "?" used to name a file; now it fails loudly instead)."""
    if not query:
        return True
    name, eq, value = query.partition("=")
    if name != "read_cache" or not eq or value not in ("on", "off"):
        raise StoreError("the SQLite URL accepts one option, read_cache=on or read_cache=off "
                         "(`fcplus-wsgi settings` describes session_store)")
    return value == "on"


def open_store(url: str, clock: Callable[[], float] = time.time) -> Store:
    """Open the backend a session_store URL names.

    `clock` drives expiry in the embedded backends, so tests move time instead of sleeping;
    Redis expires entries on its own clock.
    """
    if url.startswith("memory://"):
        return MemoryStore(clock=clock)
    if url.startswith("sqlite:///"):
        # SQLAlchemy's convention: sqlite:///relative.db and sqlite:////absolute/path.db
        path, _, query = url[len("sqlite:///"):].partition("?")
        return SQLiteStore(path, clock=clock, read_cache=_sqlite_read_cache(query))
    if url.partition("://")[0].lower() in ("redis", "rediss", "redis+sentinel", "rediss+sentinel",
                                            "redis+cluster", "rediss+cluster"):
        from .redis import RedisStore  # imported on demand: other backends never load redis-py

        return RedisStore(url)
    # The scheme only: the rest of a URL may hold a password.
    raise StoreError(f"the scheme {url.partition('://')[0]!r} is not supported; "
                     "use memory://, sqlite:///PATH or redis://HOST (`fcplus-wsgi settings` describes session_store)")
