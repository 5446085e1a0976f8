"""In-process store: for tests and single-process servers; lost on restart."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class MemoryStore:
    def __init__(self, clock: Callable[[], float] = time.time, purge_every: int = 1000) -> None:
        self._data: dict[str, tuple[bytes, float]] = {}
        self._lock = threading.Lock()
        self._clock = clock
        self._writes = 0
        self._purge_every = purge_every

    def get(self, key: str) -> bytes | None:
        item = self._data.get(key)
        if item is None:
            return None
        if item[1] <= self._clock():
            with self._lock:
                self._data.pop(key, None)
            return None
        return item[0]

    def put(self, key: str, value: bytes, ttl: float) -> None:
        with self._lock:
            self._data[key] = (value, self._clock() + ttl)
            self._writes += 1
            if self._writes % self._purge_every == 0:
                self._purge_locked()

    def take(self, key: str) -> bytes | None:
        with self._lock:
            item = self._data.pop(key, None)
        if item is None or item[1] <= self._clock():
            return None
        return item[0]

    def delete(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)

    def _purge_locked(self) -> None:
        now = self._clock()
        for key in [k for k, (_, exp) in self._data.items() if exp <= now]:
            del self._data[key]

    def __len__(self) -> int:
        return len(self._data)

    def close(self) -> None:
        with self._lock:
            self._data.clear()
