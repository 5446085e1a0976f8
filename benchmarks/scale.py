"""5. Scale: the per-request cost with many stored sessions, and bytes per stored session.

For each size, a fresh store is filled with that many real sessions (the record of a real
sign-in, sealed again under fresh ids with fcplus_wsgi.sessions), in bulk: one executemany
transaction for SQLite (into the store's own table and key format), pipelines of SET PX
for Redis (under the store's key prefix). Then authenticated requests cycle over a sample
of those sessions, chosen uniformly among all of them, through the middleware; all sizes
and the bare app take turns in each repeat. Baseline: the smallest size, in the same run.

`sqlite` is the store as configured by default: the sessions of the sample are read once,
then served from its read cache (validated on every request through the shared slots file).
`sqlite-uncached` is the same files with `?read_cache=off`: a SELECT per request, which is
how SQLite itself scales; reported as context.
"""

from __future__ import annotations

import itertools
import math
import os
import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from typing import Any

from benchmarks.common import (
    CPU,
    WALL,
    added,
    inner_app,
    interleaved,
    middleware_settings,
    requester,
    sealed_entries,
    typical,
)
from fcplus_wsgi import FCPlusMiddleware

FLAT_WITHIN = 0.20
TTL = 3600
CHUNK = 10_000


def _fill(entries: Iterator[tuple[str, str, bytes]], n: int, keep: set[int],
          write: Callable[[list[tuple[str, bytes]]], None]) -> tuple[list[str], int]:
    """Write n entries in chunks; returns the session ids at the `keep` positions and the
    total sealed bytes."""
    kept: list[str] = []
    total = 0
    index = 0
    while index < n:
        chunk = []
        for sid, key, blob in itertools.islice(entries, min(CHUNK, n - index)):
            if index in keep:
                kept.append(sid)
            chunk.append((key, blob))
            total += len(blob)
            index += 1
        write(chunk)
    return kept, total


def _sqlite(ctx: Any, n: int, keep: set[int]) -> tuple[str, list[str], dict[str, float], Callable[[], None]]:
    path = ctx.workdir / f"scale-{n}.sqlite3"
    for suffix in ("", "-wal", "-shm", "-fcplus-slots"):
        if os.path.exists(str(path) + suffix):
            os.remove(str(path) + suffix)
    url = "sqlite:///" + str(path)
    from fcplus_wsgi.stores import open_store

    open_store(url).close()  # the store creates its schema
    conn = sqlite3.connect(str(path), isolation_level=None)
    expires = time.time() + TTL

    def write(chunk: list[tuple[str, bytes]]) -> None:
        conn.execute("BEGIN")
        conn.executemany("INSERT OR REPLACE INTO fcplus_entries (key, value, expires) VALUES (?, ?, ?)",
                         [(k, v, expires) for k, v in chunk])
        conn.execute("COMMIT")

    started = time.perf_counter()
    kept, sealed = _fill(sealed_entries(ctx.record, n), n, keep, write)
    elapsed = time.perf_counter() - started
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = os.path.getsize(path)
    conn.close()

    def cleanup() -> None:
        for suffix in ("", "-wal", "-shm", "-fcplus-slots"):
            if os.path.exists(str(path) + suffix):
                os.remove(str(path) + suffix)

    return url, kept, {"bytes_per_session": size / n, "sealed_bytes": sealed / n, "fill_per_s": n / elapsed}, cleanup


def _redis(ctx: Any, n: int, keep: set[int], db: int) -> tuple[str, list[str], dict[str, float], Callable[[], None]]:
    import redis

    client = redis.Redis(host="127.0.0.1", port=ctx.redis.port, db=db, socket_timeout=60)
    client.flushdb()
    prefix = ctx.redis_store.config.prefix
    before = int(client.info("memory")["used_memory"])

    def write(chunk: list[tuple[str, bytes]]) -> None:
        pipe = client.pipeline(transaction=False)
        for key, blob in chunk:
            pipe.set(prefix + key, blob, px=TTL * 1000)
        pipe.execute()

    started = time.perf_counter()
    kept, sealed = _fill(sealed_entries(ctx.record, n), n, keep, write)
    elapsed = time.perf_counter() - started
    used = int(client.info("memory")["used_memory"]) - before

    def cleanup() -> None:
        client.flushdb()
        client.close()

    return f"redis://127.0.0.1:{ctx.redis.port}/{db}", kept, {
        "bytes_per_session": used / n, "sealed_bytes": sealed / n, "fill_per_s": n / elapsed}, cleanup


def run(ctx: Any) -> dict[str, Any]:
    """Every size is filled first, then the sizes take turns in each timed repeat, so the
    comparison between sizes does not depend on when each was measured. The SQLite files are
    filled once and served twice: by the default store and with `?read_cache=off`."""
    rng = random.Random(7)
    result: dict[str, Any] = {"sizes": list(ctx.sizes), "sample": ctx.scale_sample, "stores": {}}
    for name in ctx.scale_stores:
        if name == "redis" and ctx.redis_store is None:
            result["stores"][name] = {"skipped": ctx.redis_note or "not available"}
            continue
        variants = {name: ""} if name == "redis" else {"sqlite": "", "sqlite-uncached": "?read_cache=off"}
        cleanups: list[Callable[[], None]] = []
        apps: list[FCPlusMiddleware] = []
        facts: dict[str, dict[str, float]] = {}
        funcs: dict[str, Callable[[], object]] = {}
        try:
            for index, n in enumerate(ctx.sizes):
                keep = set(rng.sample(range(n), min(n, ctx.scale_sample)))
                if name == "sqlite":
                    url, sample, facts[str(n)], cleanup = _sqlite(ctx, n, keep)
                else:
                    url, sample, facts[str(n)], cleanup = _redis(ctx, n, keep, db=index + 1)
                cleanups.append(cleanup)
                rng.shuffle(sample)
                if not funcs:
                    funcs["bare"] = requester(inner_app, sample)
                for variant, query in variants.items():
                    mw = FCPlusMiddleware(inner_app, middleware_settings(store_url=url + query, keys_file=ctx.keys_file))
                    apps.append(mw)
                    for sid in sample[:3]:
                        if requester(mw, sid)() != b"ok":
                            raise RuntimeError(f"{variant} with {n} sessions: a stored session did not sign the request in")
                    funcs[f"{variant} {n}"] = requester(mw, sample)
            clock = WALL if name == "redis" else CPU
            times = interleaved(funcs, target=ctx.target, repeats=ctx.repeats, clock=clock)
        finally:
            for mw in apps:
                mw.store.close()
            for cleanup in cleanups:
                cleanup()
        for variant in variants:
            rows: dict[str, Any] = {}
            for n in ctx.sizes:
                own = times[f"{variant} {n}"]
                rows[str(n)] = {"added_us": added(own, times["bare"], clock), "wrapped_us": typical(own, clock),
                                **facts[str(n)]}
            base = rows[str(ctx.sizes[0])]["added_us"]
            for row in rows.values():
                row["ratio"] = row["added_us"] / base
            costs = [row["added_us"] for row in rows.values()]
            worst = max(costs) / min(costs)
            result["stores"][variant] = {"rows": rows, "worst_ratio": worst, "ok": worst <= 1 + FLAT_WITHIN,
                                         "clock": "wall" if name == "redis" else "thread CPU"}
    return result


def report(result: dict[str, Any], out: Callable[[str], None]) -> None:
    out(f"5. Scale: authenticated request cost with N stored sessions (requests cycle over {result['sample']} "
        "sessions drawn among the N); baseline: the smallest N")
    out(f"   {'store':7} {'N':>9} {'cost/smallest':>14} {'added us':>9} {'bytes/session':>14} "
        f"{'stored/sealed':>14} {'bulk fill/s':>12}")
    for name, entry in result["stores"].items():
        if "skipped" in entry:
            out(f"   {name:7} skipped: {entry['skipped']}")
            continue
        for n, row in entry["rows"].items():
            exp = f"10^{round(math.log10(int(n)))}" if int(n) == 10 ** round(math.log10(int(n))) else n
            out(f"   {name:7} {exp:>9} {row['ratio']:14.2f} {row['added_us']:9.1f} {row['bytes_per_session']:14.0f} "
                f"{row['bytes_per_session'] / row['sealed_bytes']:14.2f} {row['fill_per_s']:12.0f}")
        out(f"   {name:7} highest/lowest cost {entry['worst_ratio']:.3f}: {'ok' if entry['ok'] else 'NOT FLAT'}")
    out(f"   target: flat within {FLAT_WITHIN:.0%}; 'stored/sealed' = bytes the store uses per session / sealed "
        "record bytes")


def summary(result: dict[str, Any]) -> list[str]:
    lines = []
    for name, entry in result["stores"].items():
        if "rows" in entry:
            sizes = list(entry["rows"])
            last = entry["rows"][sizes[-1]]
            if name == "sqlite-uncached":
                lines.append(f"scale, sqlite without its read cache (context): highest/lowest "
                             f"{entry['worst_ratio']:.3f}")
                continue
            lines.append(f"scale, {name}: highest/lowest per-request cost over {sizes[0]}..{sizes[-1]} sessions "
                         f"{entry['worst_ratio']:.3f} (target <= {1 + FLAT_WITHIN:.2f}) -> "
                         f"{'ok' if entry['ok'] else 'missed'}; {last['bytes_per_session']:.0f} bytes per session")
    return lines
