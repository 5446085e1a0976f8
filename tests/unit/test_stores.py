"""One contract for every store backend, plus what only SQLite promises: durability and sharing."""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fcplus_wsgi.stores import MemoryStore, SQLiteStore, Store, StoreError, open_store


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


Factory = Callable[[Clock], Store]


@pytest.fixture(params=["memory", "sqlite"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Factory]:
    opened: list[Store] = []

    def factory(clock: Clock) -> Store:
        store: Store = MemoryStore(clock=clock) if request.param == "memory" else \
            SQLiteStore(str(tmp_path / "store.sqlite3"), clock=clock)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


def test_get_put_take_delete(make: Factory) -> None:
    store = make(Clock())
    assert store.get("k") is None and store.take("k") is None
    store.delete("k")  # absent: not an error
    store.put("k", b"v1", 60)
    assert store.get("k") == b"v1" and store.get("k") == b"v1"  # get does not consume
    store.put("k", b"v2", 60)
    assert store.get("k") == b"v2"
    assert store.take("k") == b"v2"
    assert store.take("k") is None and store.get("k") is None
    store.put("k", b"v3", 60)
    store.delete("k")
    assert store.get("k") is None
    store.put("a", b"1", 60)
    store.put("b", b"2", 60)
    store.delete("a")
    assert (store.get("a"), store.get("b")) == (None, b"2")


def test_binary_and_large_values(make: Factory) -> None:
    store = make(Clock())
    blob = bytes(range(256)) * 256 + b"\x00"
    store.put("s:" + "f" * 64, blob, 60)
    assert store.get("s:" + "f" * 64) == blob
    assert store.take("s:" + "f" * 64) == blob


def test_ttl_expiry_with_injected_clock(make: Factory) -> None:
    clock = Clock()
    store = make(clock)
    store.put("k", b"v", 10)
    clock.now += 9.999
    assert store.get("k") == b"v"
    clock.now += 0.001  # expires exactly at put time + ttl
    assert store.get("k") is None
    assert store.take("k") is None
    store.put("t", b"v", 10)
    clock.now += 11
    assert store.take("t") is None  # an expired pending login is not usable even once
    store.put("r", b"v", 5)
    clock.now += 4
    store.put("r", b"w", 5)  # a put renews the lifetime
    clock.now += 4
    assert store.get("r") == b"w"


def test_take_is_single_use_under_contention(make: Factory) -> None:
    store = make(Clock())
    for round_ in range(5):
        key = f"p:{round_}"
        store.put(key, b"state", 60)
        barrier = threading.Barrier(8)
        got: list[bytes | None] = []
        lock = threading.Lock()

        def racer(key: str = key, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            value = store.take(key)
            with lock:
                got.append(value)

        threads = [threading.Thread(target=racer) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert got.count(b"state") == 1 and got.count(None) == 7


def test_concurrent_writers_from_threads(make: Factory) -> None:
    store = make(Clock())
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(150):
                key = f"s:{n}:{i % 20}"
                store.put(key, f"{n}-{i}".encode(), 60)
                assert store.get(key) == f"{n}-{i}".encode()
                if i % 3 == 0:
                    store.take(key)
                elif i % 3 == 1:
                    store.delete(key)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []


def test_memory_store_purges_expired_entries() -> None:
    clock = Clock()
    store = MemoryStore(clock=clock, purge_every=10)
    for i in range(9):
        store.put(f"old{i}", b"x", 1)
    clock.now += 2
    store.put("new", b"y", 60)  # tenth write purges
    assert len(store) == 1 and store.get("new") == b"y"


# -- SQLite only -----------------------------------------------------------------------------------

def test_memory_store_purge_keeps_replaced_keys_and_stays_bounded() -> None:
    """Purging walks an expiry heap: a key written again with a later expiry must survive
    its first entry's turn, and replaced or deleted keys must not pile up in the heap."""
    clock = Clock()
    store = MemoryStore(clock=clock, purge_every=10)
    store.put("kept", b"old", 5)
    store.put("kept", b"new", 500)  # replaces: its first heap entry expires at 5
    store.put("gone", b"x", 5)
    store.delete("gone")
    for index in range(6):
        store.put(f"short{index}", b"x", 5)
    clock.now += 10
    store.put("trigger", b"x", 500)  # tenth write purges
    assert len(store) == 2 and store.get("kept") == b"new"
    for index in range(5000):  # the same keys rewritten: stale heap entries are rebuilt away
        store.put(f"k{index % 50}", b"x", 500)
    assert len(store._expiries) <= 2 * len(store) + 10
    with pytest.raises(ValueError):
        store.put("nan", b"x", float("nan"))


def test_sqlite_survives_reopening(tmp_path: Path) -> None:
    path = str(tmp_path / "durable.sqlite3")
    clock = Clock()
    first = SQLiteStore(path, clock=clock)
    first.put("s:1", b"session", 100)
    first.put("p:1", b"pending", 100)
    first.put("short", b"x", 1)
    first.close()
    second = SQLiteStore(path, clock=clock)
    try:
        assert second.get("s:1") == b"session"
        assert second.take("p:1") == b"pending"
        clock.now += 2
        assert second.get("short") is None
        assert second.purge() == 1
    finally:
        second.close()
    third = SQLiteStore(path, clock=clock)
    try:
        assert third.get("p:1") is None and third.get("s:1") == b"session"
    finally:
        third.close()


def test_sqlite_two_instances_on_one_file_see_each_other(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.sqlite3")
    a, b = SQLiteStore(path), SQLiteStore(path)
    try:
        a.put("k", b"from-a", 60)
        assert b.take("k") == b"from-a"
        assert a.get("k") is None
    finally:
        a.close()
        b.close()


def test_sqlite_unusable_path_raises_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder", encoding="utf-8")
    with pytest.raises(StoreError):
        SQLiteStore(str(blocker / "sub" / "x.sqlite3"))
    garbage = tmp_path / "garbage.sqlite3"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError):
        store = SQLiteStore(str(garbage))
        store.get("k")  # pragma: no cover - only reached if opening did not fail


def test_sqlite_operations_on_a_broken_database_raise_store_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.sqlite3"
    store = SQLiteStore(str(path))
    try:
        store._conn().execute("DROP TABLE fcplus_entries")
        for call in (lambda: store.get("k"), lambda: store.put("k", b"v", 1), lambda: store.take("k"),
                     lambda: store.delete("k"), store.purge):
            with pytest.raises(StoreError):
                call()
    finally:
        store.close()


def test_open_store_by_url(tmp_path: Path) -> None:
    assert isinstance(open_store("memory://"), MemoryStore)
    store = open_store(f"sqlite:///{tmp_path}/by-url.sqlite3")
    try:
        assert isinstance(store, SQLiteStore) and store.path == f"{tmp_path}/by-url.sqlite3"
    finally:
        store.close()
    with pytest.raises(StoreError) as info:
        open_store("postgres://user:hunter2@db/x")
    assert "hunter2" not in str(info.value)


def _process_worker(path: str, worker: int, barrier: multiprocessing.synchronize.Barrier,
                    results: multiprocessing.Queue[tuple[int, list[str], int]]) -> None:
    """One of two processes hammering the same fresh SQLite file, as two WSGI workers would."""
    errors: list[str] = []
    taken = 0
    # Workers of a fresh deployment open a brand-new file at the same instant: try it often.
    for round_ in range(12):
        barrier.wait()
        try:
            SQLiteStore(f"{path}.fresh{round_}").close()
        except Exception as exc:
            errors.append(f"open round {round_}: {exc}")
    barrier.wait()
    try:
        store = SQLiteStore(path)
    except Exception as exc:
        results.put((worker, [*errors, f"open: {exc}"], 0))
        return
    try:
        for i in range(400):
            try:
                store.put(f"own:{worker}:{i}", os.urandom(200), 600)
                store.put(f"shared:{i % 50}", f"{worker}:{i}".encode(), 600)
                store.get(f"shared:{(i * 7) % 50}")
                if store.take(f"shared:{(i * 3) % 50}") is not None:
                    taken += 1
                if i % 10 == 0:
                    store.delete(f"own:{worker}:{i - 10}")
                    store.purge()
            except Exception as exc:
                errors.append(f"{i}: {exc}")
    finally:
        store.close()
    results.put((worker, errors, taken))


def test_sqlite_concurrent_writers_from_two_processes(tmp_path: Path) -> None:
    path = str(tmp_path / "multi" / "procs.sqlite3")
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    results: multiprocessing.Queue[tuple[int, list[str], int]] = ctx.Queue()
    procs = [ctx.Process(target=_process_worker, args=(path, n, barrier, results)) for n in range(2)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(10)
        assert p.exitcode == 0
    for worker, errors, _ in outcomes:
        assert errors == [], f"worker {worker}: {errors[:3]}"
    assert not any("locked" in e for _, errs, _ in outcomes for e in errs)
    store = SQLiteStore(path)
    try:
        assert store.get("own:0:399") is not None and store.get("own:1:399") is not None
    finally:
        store.close()


def _child_uses_its_own_connection(store: SQLiteStore, parent_conn_id: int, out: Any) -> None:
    try:
        store.put("child", b"written by the child", 60)
        own = store._conn()
        store.close()
        out.put((id(own) != parent_conn_id, store_value_ok(store)))
    except BaseException as exc:  # reported to the parent, which asserts
        out.put(repr(exc))


def store_value_ok(store: SQLiteStore) -> bool:
    return store.get("child") == b"written by the child"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() is POSIX")
def test_sqlite_forked_child_never_uses_the_parents_connection(tmp_path: Path) -> None:
    """gunicorn --preload builds the app (and opens the store) before forking its workers:
    SQLite forbids carrying a connection across fork(), so the child must open its own and
    leave the inherited one alone (the parent keeps using it)."""
    store = SQLiteStore(str(tmp_path / "s.db"))
    store.put("parent", b"p", 60)
    parent_conn = store._conn()
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    child = ctx.Process(target=_child_uses_its_own_connection, args=(store, id(parent_conn), out))
    child.start()
    result = out.get(timeout=20)
    child.join(20)
    assert result == (True, True), result
    # The parent's connection still works and sees the child's write.
    assert store._conn() is parent_conn
    assert store.get("child") == b"written by the child" and store.get("parent") == b"p"
    store.close()
