"""The SQLite store recovers from file-system faults without a restart, and says why it failed.

Real faults only: a small tmpfs filled to the last block, a bind mount of it remounted
read-only and back (a mount point cannot be remounted read-only while the store holds files
open for writing on it, so the read-only view is a second mount of the same tmpfs, which is
what a process that opens its connections during the fault sees), and a lock held by another
connection. Mounting needs root; without it these tests skip and say so.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fcplus_wsgi.stores import SQLiteStore, StoreError


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, text=True)


@dataclass
class Mounts:
    rw: Path  # the tmpfs
    view: Path  # the same tmpfs, bind-mounted: remounted read-only and back by the tests

    def read_only(self) -> None:
        _mount("-o", "remount,bind,ro", str(self.view))

    def writable(self) -> None:
        _mount("-o", "remount,bind,rw", str(self.view))


@pytest.fixture
def mounts(tmp_path: Path) -> Iterator[Mounts]:
    rw, view = tmp_path / "fs", tmp_path / "view"
    rw.mkdir()
    view.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs the suite as root)")
    try:
        _mount("-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(rw))
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        pytest.skip(f"mount -t tmpfs is not permitted here: {getattr(exc, 'stderr', exc)}")
    try:
        _mount("--bind", str(rw), str(view))
        yield Mounts(rw, view)
    finally:
        # Lazily: a store a failed test left open must not keep the mounts around.
        subprocess.run(["umount", "-l", str(view)], capture_output=True)
        subprocess.run(["umount", "-l", str(rw)], capture_output=True)


def test_connections_opened_read_only_are_replaced_once_the_file_system_is_writable(
        mounts: Mounts, caplog: pytest.LogCaptureFixture) -> None:
    """SQLite opens a file it cannot write read-only, silently, and keeps it so: a worker
    that opened its connections during the fault answered 503 until restarted."""
    SQLiteStore(str(mounts.rw / "s.db")).put("before", b"1", 600)  # keeps the WAL files on disk
    mounts.read_only()
    store = SQLiteStore(str(mounts.view / "s.db"))
    other_thread: list[BaseException | None] = []
    caplog.set_level(logging.WARNING, "fcplus_wsgi.stores")
    with pytest.raises(StoreError, match="cause=read-only"):
        store.put("during", b"2", 600)
    assert "cause=read-only" in caplog.text
    assert store.get("before") == b"1"  # reads still work during the fault

    def opened_during_the_fault() -> None:
        try:
            store.put("thread", b"3", 600)
            other_thread.append(None)
        except StoreError as exc:
            other_thread.append(exc)
    t = threading.Thread(target=opened_during_the_fault)
    t.start()
    t.join()
    assert isinstance(other_thread[0], StoreError)

    mounts.writable()
    store.put("after", b"4", 600)  # the very next write succeeds
    assert store.get("after") == b"4"
    assert store.read_cache  # the slots file, which could not be made during the fault, is back
    t = threading.Thread(target=opened_during_the_fault)
    t.start()
    t.join()
    assert other_thread[1] is None


def test_a_full_disk_is_named_and_the_next_write_after_space_returns_succeeds(
        mounts: Mounts, caplog: pytest.LogCaptureFixture) -> None:
    store = SQLiteStore(str(mounts.rw / "s.db"))
    store.put("before", b"1", 600)
    filler = mounts.rw / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass  # ENOSPC: the file system is full
    finally:
        os.close(fd)
    caplog.set_level(logging.WARNING, "fcplus_wsgi.stores")
    with pytest.raises(StoreError, match="cause=disk full"):
        store.put("big", os.urandom(256 * 1024), 600)
    assert "cause=disk full" in caplog.text
    filler.unlink()
    store.put("big", b"x" * 4096, 600)
    assert store.get("big") == b"x" * 4096 and store.get("before") == b"1"


def test_a_lock_held_past_the_busy_timeout_is_named_and_released_locks_recover(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = str(tmp_path / "s.db")
    store = SQLiteStore(path, busy_timeout=0.05)
    store.put("before", b"1", 600)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    caplog.set_level(logging.WARNING, "fcplus_wsgi.stores")
    try:
        with pytest.raises(StoreError, match="cause=locked"):
            store.put("during", b"2", 600)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert "cause=locked" in caplog.text
    store.put("after", b"3", 600)
    assert store.get("after") == b"3"


def test_a_logout_during_the_fault_deletes_the_entry_as_soon_as_the_store_answers(mounts: Mounts) -> None:
    """The take of a logout fails while the file system is read-only; the entry must not live
    on until its lifetime ends: this process never reads it back, and deletes it at its first
    store operation that gets through."""
    elsewhere = SQLiteStore(str(mounts.rw / "s.db"))  # another worker, writing through the tmpfs
    elsewhere.put("s:session", b"alive", 1800)
    mounts.read_only()
    worker = SQLiteStore(str(mounts.view / "s.db"))  # its read cache is off until the fault clears
    with pytest.raises(StoreError):
        worker.take("s:session")
    assert worker.get("s:session") is None  # gone for this process at once
    assert elsewhere.get("s:session") == b"alive"  # still stored: the file could not change
    mounts.writable()
    assert worker.get("s:other") is None  # any operation: the owed deletion runs first
    assert elsewhere.get("s:session") is None
