"""Deletions the store refused, kept to be done as soon as it answers again.

Why: a logout while the store is down used to leave the server-side session alive until its
lifetime ended, though the user had been told they were signed out. The process that took
the logout keeps the entry's key and deletes it before its next store operation that gets
through (any user's request), and meanwhile never reads that key back. Bounded: at most
LIMIT keys per store and process (an anonymous flood of made-up cookies at the logout path
during an outage cannot grow it further); beyond, the oldest is dropped and that is logged.
Lost on restart: an entry whose deletion was still owed then lives until its lifetime ends.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from .base import StoreError

log = logging.getLogger("fcplus_wsgi.stores")

LIMIT = 4096


class DeferredDeletes:
    def __init__(self, limit: int = LIMIT) -> None:
        self._keys: dict[str, None] = {}
        self._limit = limit
        self._lock = threading.Lock()
        self._flushing = False

    def __bool__(self) -> bool:
        return bool(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: str) -> bool:
        return key in self._keys

    def add(self, key: str) -> None:
        with self._lock:
            self._keys.pop(key, None)
            if len(self._keys) >= self._limit:
                del self._keys[next(iter(self._keys))]
                log.warning("session store: more than %d deletions owed while it fails; the oldest is "
                            "dropped and its entry lives until its lifetime ends", self._limit)
            self._keys[key] = None

    def forget(self, key: str) -> None:
        """A later write of the key replaces what was to be deleted."""
        with self._lock:
            self._keys.pop(key, None)

    def flush(self, delete: Callable[[str], None], strict: bool = False) -> None:
        """Delete the owed keys, oldest first; stop at the first failure (the store is still
        down, the caller's own operation will say so), quietly unless `strict`. One thread
        flushes at a time."""
        with self._lock:
            if self._flushing:
                return
            self._flushing = True
        try:
            for key in list(self._keys):
                try:
                    delete(key)
                except StoreError:
                    if strict:
                        raise
                    return
                with self._lock:
                    self._keys.pop(key, None)
            if not self._keys:
                log.info("session store: every deletion owed since the outage is done")
        finally:
            with self._lock:
                self._flushing = False
