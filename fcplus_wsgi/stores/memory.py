"""In-process store: for tests and single-process servers; lost on restart."""

from __future__ import annotations

import heapq
import math
import threading
import time
from collections.abc import Callable


class MemoryStore:
    """Expired entries leave through a heap ordered by expiry, so purging costs what expired,
    not a scan of every live session (a scan per thousand writes grew with the store)."""

    def __init__(self, clock: Callable[[], float] = time.time, purge_every: int = 1000) -> None:
        self._data: dict[str, tuple[bytes, float]] = {}
        self._expiries: list[tuple[float, str]] = []
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
        if math.isnan(ttl):
            raise ValueError("ttl must be a number of seconds")  # NaN would never expire, nor sort in the heap
        with self._lock:
            expires = self._clock() + ttl
            self._data[key] = (value, expires)
            heapq.heappush(self._expiries, (expires, key))
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
        now, heap, data = self._clock(), self._expiries, self._data
        while heap and heap[0][0] <= now:
            expires, key = heapq.heappop(heap)
            item = data.get(key)
            if item is not None and item[1] == expires:  # not replaced by a later put since
                del data[key]
        if len(heap) > 2 * len(data) + self._purge_every:
            # Replaced and deleted keys leave stale heap entries behind: rebuild now and then.
            self._expiries = [(exp, k) for k, (_, exp) in data.items()]
            heapq.heapify(self._expiries)

    def __len__(self) -> int:
        return len(self._data)

    def close(self) -> None:
        with self._lock:
            self._data.clear()
            self._expiries.clear()
