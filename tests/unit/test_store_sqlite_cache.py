"""The SQLite store's read cache: no SQL for an entry already read, yet every change made
through any SQLiteStore on the file (another process, thread or instance) is seen by the
very next get(). Real files, real processes; SQL is counted with sqlite3's own trace hook."""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from fcplus_wsgi.stores import SQLiteStore, StoreError, open_store
from fcplus_wsgi.stores.sqlite import READ_CACHE_ENTRIES, SLOT_BYTES, SLOT_COUNT, slot_of, slots_path


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def session_key(n: int | str) -> str:
    return "s:" + hashlib.sha256(f"cache-test-{n}".encode()).hexdigest()


class SqlCounter:
    """Counts the statements this thread's connection of a store runs."""

    def __init__(self, store: SQLiteStore) -> None:
        self.statements: list[str] = []
        store._conn().set_trace_callback(self.statements.append)

    def during(self, action: Callable[[], Any]) -> tuple[Any, int]:
        before = len(self.statements)
        result = action()
        return result, len(self.statements) - before


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "cache.sqlite3")


@pytest.fixture
def opened() -> Iterator[list[SQLiteStore]]:
    stores: list[SQLiteStore] = []
    yield stores
    for store in stores:
        store.close()


def _open(stores: list[SQLiteStore], path: str, **kw: Any) -> SQLiteStore:
    store = SQLiteStore(path, **kw)
    stores.append(store)
    return store


def test_a_cached_read_runs_no_sql_and_a_write_brings_sql_back(db: str, opened: list[SQLiteStore]) -> None:
    store = _open(opened, db)
    assert store.read_cache
    sql = SqlCounter(store)
    key = session_key(1)
    store.put(key, b"v1", 60)
    assert sql.during(lambda: store.get(key)) == (b"v1", 1)
    assert sql.during(lambda: store.get(key)) == (b"v1", 0)
    store.put(key, b"v2", 60)
    assert sql.during(lambda: store.get(key)) == (b"v2", 1)
    assert sql.during(lambda: store.get(key)) == (b"v2", 0)
    # Absent keys are not cached, and large values are always read from SQLite.
    assert sql.during(lambda: store.get(session_key("absent"))) == (None, 1)
    assert sql.during(lambda: store.get(session_key("absent"))) == (None, 1)
    store.put("big", b"x" * (1 << 20), 60)
    assert sql.during(lambda: store.get("big"))[1] == 1 and sql.during(lambda: store.get("big"))[1] == 1


def test_expiry_is_enforced_on_cached_entries(db: str, opened: list[SQLiteStore]) -> None:
    clock = Clock()
    store = _open(opened, db, clock=clock)
    sql = SqlCounter(store)
    store.put("k", b"v", 10)
    assert store.get("k") == b"v"
    clock.now += 9.999
    assert sql.during(lambda: store.get("k")) == (b"v", 0)
    clock.now += 0.001
    assert store.get("k") is None


def test_the_cache_is_bounded(db: str, opened: list[SQLiteStore]) -> None:
    store = _open(opened, db)
    for i in range(READ_CACHE_ENTRIES + 50):
        store.put(f"k{i}", b"v", 60)
        assert store.get(f"k{i}") == b"v"
    assert len(store._cache) <= READ_CACHE_ENTRIES
    sql = SqlCounter(store)
    assert sql.during(lambda: store.get("k0")) == (b"v", 1)  # evicted first: oldest
    last = f"k{READ_CACHE_ENTRIES + 49}"
    assert sql.during(lambda: store.get(last)) == (b"v", 0)


def _check_reader_sees_writer(reader: SQLiteStore, write: Callable[[str, str, bytes | None], bytes | None],
                              rounds: int) -> None:
    """The reader caches an entry (proved by a read without SQL), the writer changes it, and the
    reader's next get must show the change: deleted, replaced, or taken."""
    sql = SqlCounter(reader)
    for n in range(rounds):
        key = session_key(f"{os.getpid()}-{n}-{time.monotonic_ns()}")
        reader.put(key, b"old", 600)
        assert reader.get(key) == b"old"
        assert sql.during(partial(reader.get, key)) == (b"old", 0), "not cached: the test proves nothing"
        op = ("delete", "replace", "take")[n % 3]
        taken = write(op, key, b"new-%d" % n)
        if op == "take":
            assert taken == b"old"
        expected = b"new-%d" % n if op == "replace" else None
        assert reader.get(key) == expected, f"round {n}: {op} not seen"


def _apply(store: SQLiteStore, op: str, key: str, value: bytes | None) -> bytes | None:
    if op == "delete":
        store.delete(key)
    elif op == "replace":
        assert value is not None
        store.put(key, value, 600)
    elif op == "take":
        return store.take(key)
    elif op == "purge":
        return b"%d" % store.purge()
    return None


def _writer_process(path: str, conn: multiprocessing.connection.Connection, clock_ahead: float) -> None:
    store = SQLiteStore(path, clock=lambda: time.time() + clock_ahead)
    try:
        while (msg := conn.recv()) is not None:
            op, key, value = msg
            conn.send(_apply(store, op, key, value))
    finally:
        store.close()


class WriterProcess:
    """A separate OS process with its own SQLiteStore on the same file, driven in lockstep."""

    def __init__(self, path: str, clock_ahead: float = 0.0) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_writer_process, args=(path, child, clock_ahead), daemon=True)
        self.proc.start()

    def __call__(self, op: str, key: str, value: bytes | None) -> bytes | None:
        self.conn.send((op, key, value))
        if not self.conn.poll(30):
            raise TimeoutError("writer process did not answer")
        result: bytes | None = self.conn.recv()
        return result

    def stop(self) -> None:
        self.conn.send(None)
        self.proc.join(10)
        assert self.proc.exitcode == 0


def test_changes_from_another_process_are_seen_at_the_next_get(db: str, opened: list[SQLiteStore]) -> None:
    reader = _open(opened, db)
    writer = WriterProcess(db)
    try:
        _check_reader_sees_writer(reader, writer, rounds=300)
    finally:
        writer.stop()


def test_changes_from_another_instance_in_the_process_are_seen(db: str, opened: list[SQLiteStore]) -> None:
    reader, other = _open(opened, db), _open(opened, db)
    _check_reader_sees_writer(reader, lambda op, key, value: _apply(other, op, key, value), rounds=300)


def test_changes_from_another_thread_are_seen(db: str, opened: list[SQLiteStore]) -> None:
    store = _open(opened, db)
    jobs: queue.Queue[tuple[str, str, bytes | None] | None] = queue.Queue()
    done: queue.Queue[bytes | None] = queue.Queue()

    def worker() -> None:
        while (job := jobs.get()) is not None:
            done.put(_apply(store, *job))
        store.close()  # this thread's connection

    thread = threading.Thread(target=worker)
    thread.start()

    def in_thread(op: str, key: str, value: bytes | None) -> bytes | None:
        jobs.put((op, key, value))
        return done.get(timeout=30)

    try:
        _check_reader_sees_writer(store, in_thread, rounds=300)
    finally:
        jobs.put(None)
        thread.join(10)


def test_a_database_named_through_a_symlink_shares_the_slots(tmp_path: Path, opened: list[SQLiteStore]) -> None:
    real = tmp_path / "real" / "db.sqlite3"
    reader = _open(opened, str(real))
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "real")
    other = _open(opened, str(link / "db.sqlite3"))
    assert slots_path(str(link / "db.sqlite3")) == slots_path(str(real))
    _check_reader_sees_writer(reader, lambda op, key, value: _apply(other, op, key, value), rounds=30)


def test_purge_by_a_process_whose_clock_runs_ahead_is_seen(db: str, opened: list[SQLiteStore]) -> None:
    """Clocks can disagree (a system clock stepped back, injected clocks): a row another process
    purged as expired must not live on in this process's cache."""
    reader = _open(opened, db)
    sql = SqlCounter(reader)
    key = session_key("purged")
    reader.put(key, b"v", 60)
    assert reader.get(key) == b"v" and sql.during(lambda: reader.get(key)) == (b"v", 0)
    writer = WriterProcess(db, clock_ahead=120)
    try:
        assert writer("purge", "-", None) == b"1"
    finally:
        writer.stop()
    assert reader.get(key) is None


def _hammer(path: str, keys: list[str], committed: Any, stop: Any) -> None:
    store = SQLiteStore(path)
    try:
        n = 0
        while not stop.value:
            n += 1
            for i, key in enumerate(keys):
                store.put(key, b"%d" % n, 600)
                committed[i] = n  # only once put() has returned
    finally:
        store.close()


def test_reads_racing_writes_of_another_process_are_never_stale(db: str, opened: list[SQLiteStore]) -> None:
    """Whatever the interleaving, a get() started after a put() returned shows that put or a
    later one: the slot is read before the SELECT, so a write landing between the two shows
    up as a changed slot at the next get instead of being cached as current."""
    keys = [session_key(f"race-{i}") for i in range(3)]
    reader = _open(opened, db)
    for key in keys:
        reader.put(key, b"0", 600)
    ctx = multiprocessing.get_context("spawn")
    committed = ctx.Array("q", len(keys), lock=False)
    stop = ctx.Value("b", 0, lock=False)
    proc = ctx.Process(target=_hammer, args=(db, keys, committed, stop), daemon=True)
    proc.start()
    stale: list[tuple[int, int]] = []
    hits = reads = 0
    sql = SqlCounter(reader)
    try:
        deadline = time.monotonic() + 30
        while committed[len(keys) - 1] < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            for i, key in enumerate(keys):
                floor = committed[i]
                value, statements = sql.during(partial(reader.get, key))
                reads += 1
                hits += statements == 0
                assert value is not None
                if int(value) < floor:
                    stale.append((int(value), floor))
    finally:
        stop.value = 1
        proc.join(10)
    assert proc.exitcode == 0
    assert hits > 100 and reads - hits > 100, (hits, reads)  # both paths were exercised
    assert stale == []


def test_slots_file_is_zero_filled_and_private_like_the_database(db: str, opened: list[SQLiteStore]) -> None:
    _open(opened, db)
    info = os.stat(slots_path(db))
    assert info.st_size == SLOT_COUNT * SLOT_BYTES
    assert info.st_blocks * 512 >= info.st_size, "sparse: a mapped write could fault on a full disk"
    assert info.st_mode & 0o777 == os.stat(db).st_mode & 0o666
    assert not [p for p in os.listdir(os.path.dirname(db)) if p.endswith(".tmp")]


@pytest.mark.parametrize("spoil", ["short", "directory"])
def test_unusable_slots_file_means_sql_on_every_read_and_one_warning(
        db: str, opened: list[SQLiteStore], spoil: str, caplog: pytest.LogCaptureFixture) -> None:
    SQLiteStore(db, read_cache=False).close()  # the database exists, the slots do not
    if spoil == "short":
        Path(slots_path(db)).write_bytes(b"\0" * 100)
    else:
        os.mkdir(slots_path(db))
    with caplog.at_level(logging.WARNING, logger="fcplus_wsgi.stores"):
        store = _open(opened, db)
        other = _open(opened, db)
    assert [r.levelno for r in caplog.records] == [logging.WARNING, logging.WARNING]  # one per store opened
    assert "read cache off" in caplog.records[0].getMessage()
    assert not store.read_cache and not other.read_cache
    sql = SqlCounter(store)
    key = session_key("fallback")
    store.put(key, b"v", 60)
    for _ in range(3):
        assert sql.during(lambda: store.get(key)) == (b"v", 1)
    other.delete(key)
    assert store.get(key) is None


def test_read_cache_can_be_turned_off_by_url_and_options_stay_strict(tmp_path: Path) -> None:
    on = open_store(f"sqlite:///{tmp_path}/a.sqlite3")
    explicit = open_store(f"sqlite:///{tmp_path}/a.sqlite3?read_cache=on")
    off = open_store(f"sqlite:///{tmp_path}/a.sqlite3?read_cache=off")
    try:
        assert isinstance(off, SQLiteStore) and isinstance(on, SQLiteStore) and isinstance(explicit, SQLiteStore)
        assert on.read_cache and explicit.read_cache and not off.read_cache
        assert off.path == on.path == f"{tmp_path}/a.sqlite3"
        sql = SqlCounter(off)
        off.put("k", b"v", 60)
        assert off.get("k") == b"v" and sql.during(lambda: off.get("k")) == (b"v", 1)
    finally:
        for store in (on, explicit, off):
            store.close()
    for bad in ("?read_cache=maybe", "?read_cache", "?cache=off", "?read_cache=off&x=1", "?x=1"):
        with pytest.raises(StoreError):
            open_store(f"sqlite:///{tmp_path}/b.sqlite3{bad}")


def test_slot_of_is_stable_and_spreads_any_key() -> None:
    # Fixed values: every process, every release must agree, or invalidations are missed.
    assert slot_of("s:" + "0" * 60 + "beef") == 0xBEEF & (SLOT_COUNT - 1)
    assert slot_of("p:1") == slot_of("p:1") and 0 <= slot_of("\udcff odd") < SLOT_COUNT
    assert slot_of("s:" + "z" * 64) == slot_of("s:" + "z" * 64)
    assert len({slot_of(f"key-{i}") for i in range(1000)}) > 900
