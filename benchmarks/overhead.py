"""1. Per-request overhead of an authenticated request, in process.

Direct WSGI calls, no server: the bare app and the same app wrapped by FCPlusMiddleware
get the same environ (a browser's GET with a valid session cookie), taking turns in each
repeat; the figure is the median of the repeats on the CPU clock, the best repeat on the
wall clock (Redis). Baselines measured in the same run: the
bare app, and one raw read of the same session entry from the store (a dict lookup in
the memory store, a SELECT on a plain sqlite3 connection, a GET with a plain redis-py
client: one Redis round trip).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from benchmarks.common import (
    CPU,
    WALL,
    added,
    inner_app,
    interleaved,
    median,
    middleware_settings,
    requester,
    seed_session,
    spread,
    typical,
)
from fcplus_wsgi import FCPlusMiddleware
from fcplus_wsgi.sessions import SESSION, store_key

TARGETS_US = {"memory": 15.0, "sqlite": 40.0}  # redis: one round trip + 15 us
REDIS_EXTRA_US = 15.0
PLUGINS: dict[str, dict[str, str]] = {
    "off": {},
    "metrics": {"metrics": "true"},
    "structlog": {"structlog": "true"},
    "both": {"metrics": "true", "structlog": "true"},
}


def plugins_available() -> tuple[bool, str]:
    try:
        from fcplus_wsgi.settings import KNOWN_KEYS
    except ImportError:
        return False, "settings has no KNOWN_KEYS"
    if "metrics" not in KNOWN_KEYS or "structlog" not in KNOWN_KEYS:
        return False, "not available yet (no metrics/structlog settings)"
    try:
        import fcplus_wsgi.observability  # noqa: F401
    except ImportError as exc:
        return False, f"not available yet ({exc.__class__.__name__})"
    return True, ""


def _call(app: Callable[..., Any], session_id: str) -> bytes:
    return requester(app, session_id)()


def _store_urls(ctx: Any) -> dict[str, str | None]:
    urls: dict[str, str | None] = {}
    for name in ctx.stores:
        if name == "memory":
            urls[name] = "memory://"
        elif name == "sqlite":
            urls[name] = "sqlite:///" + str(ctx.workdir / "overhead.sqlite3")
        elif name == "redis":
            urls[name] = ctx.redis.url() if ctx.redis_store is not None else None
    return urls


def _raw_read(name: str, ctx: Any, middleware: FCPlusMiddleware, key: str) -> Callable[[], object]:
    if name == "memory":
        return lambda: middleware.store.get(key)
    if name == "sqlite":
        conn = sqlite3.connect(str(ctx.workdir / "overhead.sqlite3"), isolation_level=None, check_same_thread=False)
        query = "SELECT value FROM fcplus_entries WHERE key = ?"
        return lambda: conn.execute(query, (key,)).fetchone()
    client = ctx.redis.client()
    redis_key = ctx.redis_store.config.prefix + key
    return lambda: client.get(redis_key)


def _bare_round_trip(ctx: Any, key: str) -> Callable[[], object]:
    """GET sent and read on one redis-py connection, without the pool: the round trip itself."""
    pool = ctx.redis.client().connection_pool
    conn = pool.connection_class(**pool.connection_kwargs)
    redis_key = ctx.redis_store.config.prefix + key

    def get() -> object:
        conn.send_command("GET", redis_key)
        return conn.read_response()
    return get


def run(ctx: Any) -> dict[str, Any]:
    from fcplus_wsgi import flow

    available, why = plugins_available()
    plugin_sets = {k: v for k, v in PLUGINS.items() if available and k in ctx.plugins} or {"off": {}}
    result: dict[str, Any] = {"plugins_available": available, "plugins_note": why, "stores": {}}
    cache_size = int(getattr(flow, "SESSION_CACHE_SIZE", 0))
    for name, url in _store_urls(ctx).items():
        if url is None:
            result["stores"][name] = {"skipped": ctx.redis_note or "not available"}
            continue
        apps: dict[str, FCPlusMiddleware] = {}
        sessions: dict[str, str] = {}
        for plugin, extra in plugin_sets.items():
            mw = FCPlusMiddleware(inner_app, middleware_settings(store_url=url, keys_file=ctx.keys_file, **extra))
            apps[plugin] = mw
            sessions[plugin] = seed_session(mw.store, ctx.record)
            if _call(mw, sessions[plugin]) != b"ok":
                raise RuntimeError(f"{name}/{plugin}: the wrapped app did not see the signed-in user")
        bare_sid = sessions["off"]
        if _call(inner_app, bare_sid) != b"anon":
            raise RuntimeError("the bare app saw an identity")
        funcs: dict[str, Callable[[], object]] = {
            "bare": requester(inner_app, bare_sid),
            "read": _raw_read(name, ctx, apps["off"], store_key(SESSION, bare_sid)),
        }
        if name == "redis":
            funcs["round trip"] = _bare_round_trip(ctx, store_key(SESSION, bare_sid))
        for plugin, mw in apps.items():
            funcs[plugin] = requester(mw, sessions[plugin])
        uncached_n = cache_size + 1000 if cache_size and not ctx.quick else 0
        if uncached_n:
            # More distinct sessions than the per-process cache holds: every request opens
            # its session (AES-GCM + JSON) instead of reusing the opened copy.
            funcs["uncached"] = requester(apps["off"], [seed_session(apps["off"].store, ctx.record)
                                                        for _ in range(uncached_n)])
        clock = WALL if name == "redis" else CPU  # a round trip waits on redis-server: wall time
        times = interleaved(funcs, target=ctx.target, repeats=ctx.repeats, clock=clock)
        # With Redis, wall time also counts every moment another process held the core, which
        # inflates our own few microseconds on a busy machine; the part beyond the round trip
        # is therefore also measured on the CPU clock (wrapped - bare - raw GET, all CPU time).
        cpu_times = interleaved({k: funcs[k] for k in ("bare", "read", "round trip", *apps)}, target=ctx.target,
                                repeats=ctx.repeats, clock=CPU) if name == "redis" else times
        for plugin, mw in apps.items():
            if _call(mw, sessions[plugin]) != b"ok":
                raise RuntimeError(f"{name}/{plugin}: the session stopped working during the run")
        bare, read = typical(times["bare"], clock), typical(times["read"], clock)
        target = read + REDIS_EXTRA_US if name == "redis" else TARGETS_US[name]
        entry: dict[str, Any] = {"bare_us": bare, "read_us": read, "target_us": target, "variants": {},
                                 "clock": "wall" if clock is WALL else "thread CPU"}
        for plugin in apps:
            wrapped = typical(times[plugin], clock)
            cost = added(times[plugin], times["bare"], clock)
            own = median([w - b - r for w, b, r in zip(cpu_times[plugin], cpu_times["bare"], cpu_times["read"],
                                                       strict=True)])
            entry["variants"][plugin] = {
                "wrapped_us": wrapped, "added_us": cost, "own_us": own, "spread": spread(times[plugin]),
                "budget_used": cost / target, "wrapped_over_bare": wrapped / bare,
                "ok": own <= REDIS_EXTRA_US if name == "redis" else cost <= target,
            }
        if "uncached" in times:
            entry["uncached"] = {"added_us": added(times["uncached"], times["bare"], clock), "sessions": uncached_n}
        if name == "redis":
            entry["read_cpu_us"] = median(cpu_times["read"])
            # Context: the same request against the round trip alone (no pool), i.e. what the
            # middleware's own code costs once the GET is done the cheapest way redis-py allows.
            entry["round_trip_cpu_us"] = median(cpu_times["round trip"])
            entry["beyond_round_trip_us"] = median([
                w - b - r for w, b, r in zip(cpu_times["off"], cpu_times["bare"], cpu_times["round trip"], strict=True)])
        result["stores"][name] = entry
        for mw in apps.values():
            mw.store.close()
    return result


def report(result: dict[str, Any], out: Callable[[str], None]) -> None:
    out("1. Per-request overhead, authenticated GET, in process (direct WSGI calls; median of repeats, "
        "best repeat on the wall clock)")
    if not result["plugins_available"]:
        out(f"   observability plugins: {result['plugins_note']}")
    out(f"   {'store':7} {'plugins':9} {'added us':>9} {'target':>8} {'added/target':>13} "
        f"{'store read':>11} {'added-read':>11} {'wrapped/bare':>13}  verdict")
    out("   (redis: wall clock, and 'added-read' on the CPU clock: what the middleware adds beyond the raw GET)")
    for name, entry in result["stores"].items():
        if "skipped" in entry:
            out(f"   {name:7} skipped: {entry['skipped']}")
            continue
        for plugin, v in entry["variants"].items():
            out(f"   {name:7} {plugin:9} {v['added_us']:9.1f} {entry['target_us']:8.1f} {v['budget_used']:13.2f} "
                f"{entry['read_us']:11.1f} {v['own_us']:11.1f} {v['wrapped_over_bare']:13.1f}  "
                f"{'ok' if v['ok'] else 'OVER'}")
        extra = f"; every request opening its session (cache missed, {entry['uncached']['sessions']} sessions): " \
                f"{entry['uncached']['added_us']:.1f} us added" if "uncached" in entry else ""
        out(f"   {'':7} context ({entry['clock']} time): bare app {entry['bare_us']:.2f} us/request{extra}")
        if "round_trip_cpu_us" in entry:
            out(f"   {'':7} context (CPU): a GET with a plain redis-py client {entry['read_cpu_us']:.1f} us, the same GET "
                f"sent and read on one connection without the pool {entry['round_trip_cpu_us']:.1f} us; the store "
                f"reads the second way, and beyond that bare round trip the middleware adds "
                f"{entry['beyond_round_trip_us']:.1f} us")
    out("   target: memory <= 15 us, sqlite <= 40 us, redis <= one GET round trip (store read) + 15 us, "
        "i.e. added-read <= 15 us")


def summary(result: dict[str, Any]) -> list[str]:
    lines = []
    for name, entry in result["stores"].items():
        if "variants" not in entry:
            continue
        v = entry["variants"]["off"]
        worst = max(entry["variants"].values(), key=lambda x: x["added_us"])
        if name == "redis":
            lines.append(f"per-request overhead, redis: {v['own_us']:+.1f} us beyond one round trip (target <= 15; "
                         f"worst with plugins {worst['own_us']:+.1f}) -> {'ok' if v['ok'] else 'missed'}")
        else:
            lines.append(f"per-request overhead, {name}: {v['budget_used']:.2f} of the {entry['target_us']:.0f} us budget "
                         f"(worst with plugins {worst['budget_used']:.2f}) -> {'ok' if v['ok'] else 'missed'}")
    return lines
