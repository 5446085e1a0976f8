"""SQLite store: the embedded default, durable across restarts, shared by the worker
processes of one host.

WAL mode lets readers run beside a writer; a generous busy timeout plus BEGIN IMMEDIATE
for read-modify-write makes concurrent workers wait their turn instead of failing with
"database is locked". One connection per thread, because sqlite3 connections must not
cross threads. Expired rows are purged by the writers now and then, so no cron is needed.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .base import StoreError

CACHE_KIB = 16 * 1024
_SCHEMA = "CREATE TABLE IF NOT EXISTS fcplus_entries (key TEXT PRIMARY KEY, value BLOB NOT NULL, expires REAL NOT NULL)"


class SQLiteStore:
    def __init__(self, path: str, clock: Callable[[], float] = time.time, busy_timeout: float = 10.0,
                 purge_every: int = 500) -> None:
        self.path = path
        self._clock = clock
        self._busy_timeout = busy_timeout
        self._local = threading.local()
        self._purge_every = purge_every
        self._writes = 0
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            conn = self._conn()
            conn.execute(_SCHEMA)
            conn.execute("CREATE INDEX IF NOT EXISTS fcplus_entries_expires ON fcplus_entries (expires)")
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"SQLite store {path} cannot be opened: {exc}") from None

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None,
                                   check_same_thread=False)
            self._enable_wal(conn)
            conn.execute("PRAGMA synchronous=NORMAL")
            # Session rows are ~2 KB, about one per page, and lookups are random: past the
            # default 2 MiB page cache, a thousand active sessions already meant a pread()
            # per request. The cache fills lazily, so an idle connection costs nothing.
            # (Memory-mapped reads were faster still, but turn an I/O fault into SIGBUS.)
            conn.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
            self._local.conn = conn
        return conn

    def _enable_wal(self, conn: sqlite3.Connection) -> None:
        """Switching a new file to WAL needs an exclusive lock, and SQLite answers "database is
        locked" at once instead of calling the busy handler: workers starting together on a
        fresh file would fail to boot. Retry within the busy timeout instead."""
        deadline = time.monotonic() + self._busy_timeout
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if not ("locked" in str(exc) or "busy" in str(exc)) or time.monotonic() >= deadline:
                    raise
                time.sleep(0.01)

    def get(self, key: str) -> bytes | None:
        try:
            row = self._conn().execute(
                "SELECT value FROM fcplus_entries WHERE key = ? AND expires > ?", (key, self._clock())).fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite read failed: {exc}") from None
        return None if row is None else bytes(row[0])

    def put(self, key: str, value: bytes, ttl: float) -> None:
        now = self._clock()
        try:
            conn = self._conn()
            conn.execute("INSERT OR REPLACE INTO fcplus_entries (key, value, expires) VALUES (?, ?, ?)",
                         (key, value, now + ttl))
            self._writes += 1
            if self._writes % self._purge_every == 0:
                conn.execute("DELETE FROM fcplus_entries WHERE expires <= ?", (now,))
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite write failed: {exc}") from None

    def take(self, key: str) -> bytes | None:
        try:
            row = self._conn().execute(
                "DELETE FROM fcplus_entries WHERE key = ? RETURNING value, expires", (key,)).fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite write failed: {exc}") from None
        if row is None or row[1] <= self._clock():
            return None
        return bytes(row[0])

    def delete(self, key: str) -> None:
        try:
            self._conn().execute("DELETE FROM fcplus_entries WHERE key = ?", (key,))
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite write failed: {exc}") from None

    def purge(self) -> int:
        """Remove every expired entry now; returns how many."""
        try:
            cur = self._conn().execute("DELETE FROM fcplus_entries WHERE expires <= ?", (self._clock(),))
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite write failed: {exc}") from None
        return cur.rowcount

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
