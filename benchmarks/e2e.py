"""4. End-to-end logins per second against the development provider, over loopback HTTP.

Three processes, as in production: the development provider (waitress), the service
(waitress serving the app wrapped by the middleware, SQLite store) and the load: scripted
browsers (benchmarks.common.Browser) that sign in through the provider's real page, each
login from scratch (cookies cleared). Where the time goes is read three ways: CPU seconds
each process spent per login (/proc), the flow's own step durations (its events, wall
clock), and a cProfile of the service's WSGI calls in a second pass, serial logins.
The baseline is the login's cryptography floor, measured in the same run (part 3): the
target (issue 15) is a service CPU per login within TARGET_RATIO times it, black box, all of
the service process's work included (its HTTP server, the five browser requests, the
provider calls, the store).
"""

from __future__ import annotations

import json
import pstats
import threading
import time
from collections.abc import Callable
from typing import Any

import requests

from benchmarks.common import (
    Browser,
    median,
    middleware_settings,
    process_cpu,
    report_profile,
    self_cpu,
    summarize_profile,
)
from benchmarks.serve import START_PATH
from benchmarks.servers import waitress_process
from tests.support.servers import free_port

TARGET_RATIO = 3.5


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))] if ordered else float("nan")


def _stack(ctx: Any, alg: str, tag: str, **app_extra: Any) -> tuple[Any, Any, str]:
    app_port, provider_port = free_port(), free_port()
    app_base, provider_base = f"http://127.0.0.1:{app_port}", f"http://127.0.0.1:{provider_port}"
    issuer = provider_base + "/api/v2"
    provider = waitress_process(ctx.workdir, {"role": "provider", "port": provider_port, "issuer": issuer,
                                              "service_base": app_base, "alg": alg, "threads": 4})
    settings = middleware_settings(store_url="sqlite:///" + str(ctx.workdir / f"e2e-{alg}-{tag}.sqlite3"),
                                   keys_file=ctx.keys_file, issuer=issuer, base=app_base)
    app = waitress_process(ctx.workdir, {"role": "app", "port": app_port, "settings": settings, "threads": 4,
                                         **app_extra})
    return provider, app, app_base


def _load(base: str, clients: int, duration: float, max_logins: int | None) -> tuple[list[float], list[str]]:
    durations: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + duration

    def client() -> None:
        browser = Browser(base)
        while time.monotonic() < deadline:
            with lock:
                if max_logins is not None and len(durations) >= max_logins:
                    return
            started = time.perf_counter()
            try:
                browser.login()
            except (RuntimeError, requests.RequestException) as exc:
                with lock:
                    errors.append(str(exc)[:200])
                return
            with lock:
                durations.append(time.perf_counter() - started)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return durations, errors


def run(ctx: Any) -> dict[str, Any]:
    from benchmarks.login_cpu import measure_floor

    result: dict[str, Any] = {"clients": ctx.e2e_clients, "duration_s": ctx.e2e_duration, "algs": {}}
    for alg in ctx.e2e_algs:
        events_path = ctx.workdir / f"e2e-{alg}-events.json"
        provider_cm, app_cm, base = _stack(ctx, alg, "load", events=str(events_path))
        with provider_cm as provider, app_cm as app:
            for _ in range(2):  # discovery, JWKS fetches, connection pools, sqlite schema
                Browser(base).login()
            requests.get(base + START_PATH, timeout=10)  # step times count from here
            before = {"service": process_cpu(app.pid), "provider": process_cpu(provider.pid), "browser": self_cpu()}
            started = time.perf_counter()
            durations, errors = _load(base, ctx.e2e_clients, ctx.e2e_duration, ctx.e2e_max_logins)
            wall = time.perf_counter() - started
            after = {"service": process_cpu(app.pid), "provider": process_cpu(provider.pid), "browser": self_cpu()}
        if errors:
            raise RuntimeError(f"{alg}: logins failed under load: {errors[0]}")
        logins = len(durations)
        cpu_ms: dict[str, float | None] = {}
        for k, start in before.items():
            end = after[k]
            cpu_ms[k] = (end - start) / logins * 1000 if start is not None and end is not None else None
        steps = json.loads(events_path.read_text()) if events_path.exists() else {}
        total_logins = steps.get("session", [0, 0.0])[0] or 1
        floor_us = ctx.results.get("login", {}).get("algs", {}).get(alg, {}).get("floor_us") \
            or measure_floor(ctx.keys_file, alg)
        entry: dict[str, Any] = {
            "logins": logins, "wall_s": wall, "logins_per_s": logins / wall,
            "login_p50_ms": _percentile(durations, 50) * 1000, "login_p90_ms": _percentile(durations, 90) * 1000,
            "cpu_ms_per_login": cpu_ms, "floor_ms": floor_us / 1000,
            "service_cpu_over_floor": (cpu_ms["service"] or 0) / (floor_us / 1000) if cpu_ms["service"] else None,
            "steps_ms": {k: v[1] / total_logins * 1000 for k, v in steps.items()},
        }
        entry["ok"] = entry["service_cpu_over_floor"] is not None and entry["service_cpu_over_floor"] <= TARGET_RATIO
        # Second pass: profile the service's WSGI calls (thread CPU time) over a fixed number of logins.
        profile_path = ctx.workdir / f"e2e-{alg}.pstats"
        provider_cm, app_cm, base = _stack(ctx, alg, "profile", profile=str(profile_path))
        with provider_cm, app_cm:
            Browser(base).login()
            requests.get(base + START_PATH, timeout=10)
            durations, errors = _load(base, 1, 600, ctx.e2e_profile_logins)
        if errors:
            raise RuntimeError(f"{alg}: logins failed while profiling: {errors[0]}")
        if profile_path.exists():
            entry["profile"] = summarize_profile(pstats.Stats(str(profile_path)), top=12, per=len(durations))
            entry["profile_logins"] = len(durations)
        entry["median_login_ms_profiled"] = median(durations) * 1000
        result["algs"][alg] = entry
    return result


def report(result: dict[str, Any], out: Callable[[str], None]) -> None:
    out(f"4. End-to-end logins against the development provider over loopback HTTP ({result['clients']} scripted "
        f"browsers, {result['duration_s']:.0f} s; provider, service and browsers in 3 processes)")
    out(f"   {'JWE alg':9} {'logins/s':>9} {'p50 ms':>7} {'p90 ms':>7}   CPU ms per login: {'service':>8} "
        f"{'provider':>9} {'browsers':>9}   service CPU / crypto floor")
    for alg, e in result["algs"].items():
        c = e["cpu_ms_per_login"]

        def fmt(v: float | None) -> str:
            return f"{v:.2f}" if v is not None else "n/a"
        ratio = f"{e['service_cpu_over_floor']:.2f}" if e["service_cpu_over_floor"] else "n/a"
        out(f"   {alg:9} {e['logins_per_s']:9.1f} {e['login_p50_ms']:7.1f} {e['login_p90_ms']:7.1f}   "
            f"{'':17} {fmt(c['service']):>8} {fmt(c['provider']):>9} {fmt(c['browser']):>9}   "
            f"{ratio} (floor {e['floor_ms']:.2f} ms) {'ok' if e.get('ok') else 'OVER'}")
    out(f"   target: service CPU per login <= {TARGET_RATIO}x the login's cryptography floor")
    for alg, e in result["algs"].items():
        steps = e["steps_ms"]
        names = ["callback", "token", "provider_request:token", "id_token", "userinfo", "provider_request:userinfo",
                 "session", "login_redirect"]
        shown = ", ".join(f"{n} {steps[n]:.2f}" for n in names if n in steps)
        out(f"   {alg}: flow steps, wall ms per login (from the flow's events): {shown}")
        if "profile" in e:
            waits = sum(ms for name, ms, _ in e["profile"]["groups"] if name == "socket I/O")
            out(f"   {alg}: the service's request threads under cProfile ({e['profile_logins']} serial logins, wall "
                f"clock, profiler overhead included): {e['profile']['total_ms']:.2f} ms per login, of which "
                f"{waits:.2f} ms in socket calls (mostly waiting for the provider's answers)")
            report_profile(e["profile"], out, indent="     ")


def summary(result: dict[str, Any]) -> list[str]:
    return [f"end-to-end, {alg}: {e['logins_per_s']:.1f} logins/s with {result['clients']} browsers; service CPU "
            f"{e['cpu_ms_per_login']['service'] or float('nan'):.2f} ms per login = "
            f"{e['service_cpu_over_floor'] or float('nan'):.1f}x the login's cryptography (target <= {TARGET_RATIO}) -> "
            f"{'ok' if e.get('ok') else 'missed'}" for alg, e in result["algs"].items()]
