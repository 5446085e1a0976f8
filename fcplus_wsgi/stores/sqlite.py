"""SQLite store: the embedded default, durable across restarts, shared by the worker
processes of one host.

WAL mode lets readers run beside a writer; a generous busy timeout plus BEGIN IMMEDIATE
for read-modify-write makes concurrent workers wait their turn instead of failing with
"database is locked". One connection per thread, because sqlite3 connections must not
cross threads. Expired rows are purged by the writers now and then, so no cron is needed.

Reads of entries this process has already read cost no SQL (see `SQLiteStore`): under a
real server, each SQLite read transaction costs tens of microseconds of CPU (WAL read locks
taken and released with fcntl, the GIL handed over around each step), which was most of
what the middleware added per request.
"""

from __future__ import annotations

import hashlib
import logging
import mmap
import os
import secrets
import sqlite3
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from .base import StoreError, fork_generation, remember, set_aside
from .deferred import DeferredDeletes

log = logging.getLogger("fcplus_wsgi.stores")

# What an operator must be told, by SQLite's primary result code. A connection that met one
# of these is never trusted again: SQLite opens a file it cannot write read-only without a
# word and keeps it so, and WAL locks and maps are per connection. RETRIED faults get one
# more attempt on a fresh connection at once, so the first request after the fault clears
# succeeds; a lock timeout does not (it would wait the whole busy timeout again).
_CAUSES = {"SQLITE_READONLY": "read-only", "SQLITE_FULL": "disk full", "SQLITE_IOERR": "I/O error",
           "SQLITE_CANTOPEN": "cannot open", "SQLITE_BUSY": "locked", "SQLITE_LOCKED": "locked",
           "SQLITE_CORRUPT": "corrupt", "SQLITE_NOTADB": "corrupt", "SQLITE_PROTOCOL": "locked"}
_RETRIED = frozenset({"read-only", "I/O error", "cannot open", "disk full"})
_MESSAGE_CAUSES = (("readonly", "read-only"), ("disk", "disk full"), ("disk i/o", "I/O error"),
                   ("unable to open", "cannot open"), ("locked", "locked"), ("busy", "locked"),
                   ("malformed", "corrupt"), ("not a database", "corrupt"))


def fault_cause(exc: BaseException) -> str:
    """A short name for what went wrong, for the log line and the error: Python 3.11+ gives
    SQLite's own result code; 3.10 only the message, which is matched instead."""
    name = str(getattr(exc, "sqlite_errorname", "") or "")
    primary = "_".join(name.split("_")[:2])  # SQLITE_IOERR_WRITE -> SQLITE_IOERR
    if primary in _CAUSES:
        return _CAUSES[primary]
    message = str(exc).lower()
    for needle, cause in _MESSAGE_CAUSES:
        if needle in message:
            return cause
    return "error"

CACHE_KIB = 16 * 1024
_T = TypeVar("_T")
_SCHEMA = "CREATE TABLE IF NOT EXISTS fcplus_entries (key TEXT PRIMARY KEY, value BLOB NOT NULL, expires REAL NOT NULL)"

SLOTS_SUFFIX = "-fcplus-slots"
SLOT_COUNT = 16384  # a power of two: the slot of a key is a mask away
SLOT_BYTES = 8
_SLOT_MASK = SLOT_COUNT - 1
READ_CACHE_ENTRIES = 4096
# Values above this are read with SQL every time: the cache is meant for sessions (about 2 KB),
# and must not hold gigabytes because a caller stored large values.
READ_CACHE_MAX_VALUE = 64 * 1024


def slot_of(key: str) -> int:
    """The invalidation slot of a key, the same in every process (Python's hash() is salted
    per process, so it cannot be used). Flow keys are "k:" + SHA-256 hex, whose last hex
    digits are already uniform; any other key goes through BLAKE2b. Only the spread depends
    on this choice: two keys sharing a slot cost each other a cache miss, never a stale read."""
    if len(key) == 66 and key[1] == ":":
        try:
            return int(key[-4:], 16) & _SLOT_MASK
        except ValueError:
            pass
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little") & _SLOT_MASK


def slots_path(db_path: str) -> str:
    """Next to the database file as SQLite resolves it (it follows symbolic links for its own
    -wal and -shm files): two processes naming one database through different links must
    share one invalidation table, or each would miss the other's writes."""
    return os.path.realpath(db_path) + SLOTS_SUFFIX


def _create_slots(path: str, db_stat: os.stat_result) -> None:
    """Publish a complete, zero-filled table under its final name in one step (hard link of a
    finished temporary file), so no process ever maps a short file: writing through a mapping
    past the end of a file is SIGBUS, and writing zeros (not truncate) means the blocks exist,
    so a full disk cannot fault a mapped write either. Permissions and owner follow the
    database, as SQLite does for -wal and -shm: whoever can write the database must be able to
    invalidate the others' caches."""
    tmp = f"{path}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        remaining = memoryview(bytes(SLOT_COUNT * SLOT_BYTES))
        while remaining:
            remaining = remaining[os.write(fd, remaining):]
        os.fsync(fd)  # after a crash, a short file would disable the cache until removed
        if os.geteuid() == 0:
            os.fchown(fd, db_stat.st_uid, db_stat.st_gid)
        os.fchmod(fd, stat.S_IMODE(db_stat.st_mode) & 0o666)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process published it first: use theirs
    finally:
        os.close(fd)
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass


def _map_slots(db_path: str) -> memoryview:
    """The shared invalidation table as 64-bit words. Aligned 8-byte loads and stores through
    a memoryview cast to "Q" are single machine instructions, so no reader sees half a value."""
    path = slots_path(db_path)
    flags = os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        _create_slots(path, os.stat(os.path.realpath(db_path)))
        fd = os.open(path, flags)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size != SLOT_COUNT * SLOT_BYTES:
            raise OSError(f"{path} is not a {SLOT_COUNT * SLOT_BYTES}-byte regular file")
        mapping = mmap.mmap(fd, SLOT_COUNT * SLOT_BYTES, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    finally:
        os.close(fd)  # our own file: the mapping keeps what it needs (never do this to SQLite's files)
    return memoryview(mapping).cast("Q")


class SQLiteStore:
    """SQLite-backed store with a per-process read cache validated across processes.

    A get() of an entry this process has read before costs no SQL: each key has a slot in a
    small memory-mapped file next to the database (`<db>-fcplus-slots`), shared by every
    SQLiteStore on that file, and every write through a SQLiteStore (put, take, delete,
    purge) stores a fresh random value in the slot after its SQL commit. get() reads the slot
    first and trusts its cached copy only when the slot still holds the value it read before
    the SELECT that filled the cache, and the entry has not expired by this store's clock.
    So a logout, a replacement or a take in any process or thread is seen by the very next
    get() everywhere, exactly as with a SELECT per read.

    What the slots cannot see: writes that bypass SQLiteStore (an sqlite3 shell deleting rows
    while the service runs, an older release without slots during a rolling upgrade). Such a
    change reaches a process only when the entry is written again through a store or leaves
    its cache (4096 entries, oldest first). End sessions through the application, restart all
    workers together when upgrading, or pass read_cache=False (`?read_cache=off` in the URL).

    If the slots file cannot be created or mapped (read-only folder, file system without
    shared mappings), the store logs one warning and reads SQLite on every get(), as before.
    """

    def __init__(self, path: str, clock: Callable[[], float] = time.time, busy_timeout: float = 10.0,
                 purge_every: int = 500, read_cache: bool = True) -> None:
        self.path = path
        self._clock = clock
        self._busy_timeout = busy_timeout
        self._local = threading.local()
        self._purge_every = purge_every
        self._writes = 0
        # key -> (slot value read before the SELECT, expires, value); shared by the threads
        # of the process. Single dict operations are atomic under the GIL, and entries are
        # immutable tuples looked up by their own key, so threads never see another's value.
        self._cache: dict[str, tuple[int, float, bytes]] = {}
        self._slots: memoryview | None = None
        self._want_cache = read_cache and path not in ("", ":memory:")
        # Bumped at every fault: each thread's connection notes the epoch it was opened in,
        # and one opened before the last fault is replaced at its next use.
        self._epoch = 0
        self._owed = DeferredDeletes()
        self._settle_after = 0.0
        # The slots table could not be mapped at start-up or a fault happened since: try again
        # before the next operation, since while this process writes without the table the
        # other processes' caches do not see its writes.
        self._remap_due = False
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            conn = self._conn()
            conn.execute(_SCHEMA)
            conn.execute("CREATE INDEX IF NOT EXISTS fcplus_entries_expires ON fcplus_entries (expires)")
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"SQLite store {path} cannot be opened: {exc}") from None
        if self._want_cache:
            self._map_slots(warn=True)

    def _map_slots(self, warn: bool) -> None:
        try:
            self._slots = _map_slots(self.path)
        except (OSError, ValueError, OverflowError, AttributeError) as exc:  # AttributeError: no mmap/O_NOFOLLOW here
            self._remap_due = True
            if warn:
                log.warning("SQLite store %s: read cache off, every read goes to SQLite (%s: %s)",
                            self.path, exc.__class__.__name__, exc)

    @property
    def read_cache(self) -> bool:
        return self._slots is not None

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and self._local.generation != fork_generation():
            # A worker forked from a process that had opened this store (gunicorn --preload,
            # or the store built before the fork) inherits the connection with the thread.
            set_aside(conn)
            conn = None
        elif conn is not None and self._local.epoch != self._epoch:
            self._local.conn = None
            _close_quietly(conn)
            conn = None
        if conn is None:
            epoch = self._epoch
            conn = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None,
                                   check_same_thread=False)
            try:
                self._enable_wal(conn)
                conn.execute("PRAGMA synchronous=NORMAL")
                # Session rows are ~2 KB, about one per page, and lookups are random: past the
                # default 2 MiB page cache, a thousand active sessions already meant a pread()
                # per request. The cache fills lazily, so an idle connection costs nothing.
                # (Memory-mapped reads were faster still, but turn an I/O fault into SIGBUS.)
                conn.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
            except sqlite3.Error:
                _close_quietly(conn)
                raise
            self._local.conn = conn
            self._local.generation = fork_generation()
            self._local.epoch = epoch
        return conn

    def _fault(self, op: str, exc: sqlite3.Error) -> str:
        """Drop every connection of this store (each thread reopens at its next use) and say
        why in the log; the cache of an entry written during the fault is already dropped
        by _changed. Returns the cause."""
        cause = fault_cause(exc)
        self._epoch += 1
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.generation == fork_generation():
            self._local.conn = None
            _close_quietly(conn)
        self._remap_due = self._want_cache and self._slots is None
        log.warning("SQLite store %s: %s failed, cause=%s (%s); connections reopened at next use",
                    self.path, op, cause, exc)
        return cause

    def _attempt(self, op: str, action: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run one statement; after a fault that a fresh connection may not have, once more on
        one. Failures become a StoreError naming the cause."""
        if self._remap_due:
            self._remap_due = False
            self._map_slots(warn=False)
        try:
            return action(self._conn())
        except sqlite3.Error as exc:
            cause = self._fault(op, exc)
            if cause not in _RETRIED:
                raise StoreError(f"SQLite {op} failed, cause={cause}: {exc}") from None
        try:
            return action(self._conn())
        except sqlite3.Error as exc:
            cause = self._fault(op, exc)
            raise StoreError(f"SQLite {op} failed, cause={cause}: {exc}") from None

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

    def _changed(self, key: str) -> None:
        """Called once a write's statement has finished (committed, or failed): a spurious
        change only costs a cache miss, a missing one would serve a stale value, so failures
        count as changes too. Never cache the value just written: another process may commit
        between our commit and this store to the slot, and only a slot value read before a
        SELECT proves what that SELECT saw."""
        slots = self._slots
        if slots is not None:
            slots[slot_of(key)] = int.from_bytes(os.urandom(SLOT_BYTES), "little")
            self._cache.pop(key, None)

    def get(self, key: str) -> bytes | None:
        if self._owed:
            self._settle()
            if key in self._owed:
                return None
        slots = self._slots
        seen = 0
        if slots is not None:
            seen = slots[slot_of(key)]  # before the SELECT: a write racing it shows at the next get
            hit = self._cache.get(key)
            if hit is not None and hit[0] == seen and hit[1] > self._clock():
                return hit[2]
        now = self._clock()
        row = self._attempt("read", lambda conn: conn.execute(
            "SELECT value, expires FROM fcplus_entries WHERE key = ? AND expires > ?", (key, now)).fetchone())
        if row is None:
            # Absent keys are not cached: they are mostly unknown or expired cookies, which
            # must not be able to push live sessions out of a bounded cache.
            if slots is not None:
                self._cache.pop(key, None)
            return None
        value = bytes(row[0])
        if slots is not None and len(value) <= READ_CACHE_MAX_VALUE:
            remember(self._cache, key, (seen, float(row[1]), value), READ_CACHE_ENTRIES)
        return value

    def put(self, key: str, value: bytes, ttl: float) -> None:
        if self._owed:
            self._settle()
        now = self._clock()

        def write(conn: sqlite3.Connection) -> None:
            try:
                conn.execute("INSERT OR REPLACE INTO fcplus_entries (key, value, expires) VALUES (?, ?, ?)",
                             (key, value, now + ttl))
            finally:
                self._changed(key)
        self._attempt("write", write)
        if self._owed:
            self._owed.forget(key)
        self._writes += 1
        if self._writes % self._purge_every == 0:
            try:
                self._attempt("purge", lambda conn: self._purge(conn, now))
            except StoreError:
                pass  # the entry is written; the purge runs again at a later write

    def take(self, key: str) -> bytes | None:
        if self._owed:
            self._settle()
        try:
            # fetchall(): the statement, hence its autocommit transaction, ends only once the
            # cursor is exhausted; the slot must change after the commit, not before. A failed
            # statement rolled back, so the retry cannot hand out an entry twice.
            rows = self._attempt("take", lambda conn: conn.execute(
                "DELETE FROM fcplus_entries WHERE key = ? RETURNING value, expires", (key,)).fetchall())
        except StoreError:
            self._owed.add(key)  # a logout during the outage: the entry goes as soon as the store answers
            raise
        finally:
            self._changed(key)
        if not rows or rows[0][1] <= self._clock():
            return None
        return bytes(rows[0][0])

    def delete(self, key: str) -> None:
        if self._owed:
            self._settle()
        try:
            self._delete_now(key)
        except StoreError:
            self._owed.add(key)
            raise

    def _settle(self) -> None:
        """Make the deletions owed since a fault. While the database stays locked, try at most
        once a second: each attempt waits the whole busy timeout, and reads, which WAL lets
        through a writer's lock, must not wait with it."""
        if time.monotonic() < self._settle_after:
            return
        try:
            self._owed.flush(self._delete_now, strict=True)
        except StoreError as exc:
            if "cause=locked" in str(exc):
                self._settle_after = time.monotonic() + 1.0

    def _delete_now(self, key: str) -> None:
        try:
            self._attempt("delete", lambda conn: conn.execute("DELETE FROM fcplus_entries WHERE key = ?", (key,)))
        finally:
            self._changed(key)

    def _purge(self, conn: sqlite3.Connection, now: float) -> int:
        """Purged keys change their slots too: expiry is checked against each process's own
        clock, and clocks can disagree (a step back of the system clock, injected clocks), so
        a row gone from the file must not live on in a cache that still deems it fresh."""
        keys = conn.execute("DELETE FROM fcplus_entries WHERE expires <= ? RETURNING key", (now,)).fetchall()
        for (key,) in keys:
            self._changed(key)
        return len(keys)

    def purge(self) -> int:
        """Remove every expired entry now; returns how many."""
        now = self._clock()
        return self._attempt("purge", lambda conn: self._purge(conn, now))

    def close(self) -> None:
        """Closes this thread's connection. The slots stay mapped for the store's lifetime:
        a later write from any thread must still invalidate the other processes' caches."""
        self._cache.clear()
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            if self._local.generation == fork_generation():
                conn.close()
            else:  # inherited across fork(): the parent's, not ours to close
                set_aside(conn)
            self._local.conn = None


def _close_quietly(conn: sqlite3.Connection) -> None:
    try:
        conn.close()
    except sqlite3.Error:
        pass
