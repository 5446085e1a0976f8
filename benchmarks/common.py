"""Shared pieces: machine facts, interleaved timing, real sessions, loopback servers, Redis.

Sessions used by every benchmark come from a real sign-in against the development
provider over loopback (see `real_session_record`); filler sessions are that record
sealed again under fresh ids with fcplus_wsgi.sessions, exactly as the flow stores one.
"""

from __future__ import annotations

import gc
import itertools
import json
import os
import platform
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, cast

from fcplus_wsgi.keys import generate_private_jwks
from fcplus_wsgi.sessions import SESSION, new_session_id, seal, store_key, unseal
from fcplus_wsgi.stores import Store
from tests.support.devstack import Browser as DevBrowser
from tests.support.servers import LateApp, serve_wsgi

if TYPE_CHECKING:
    from tests.support.redis_server import RedisServer

REPO = Path(__file__).resolve().parent.parent
CLIENT_ID = "fcplus-bench"
CLIENT_SECRET = "bench-secret-" + "s" * 40
LOOPBACK = "127.0.0.1"
COOKIE = "fcplus"  # the default cookie name with cookie_secure = false
HOT_PATH = "/private/page"


# -- machine -----------------------------------------------------------------------------------------

def _tool_version(args: list[str], pattern: str) -> str | None:
    exe = shutil.which(args[0])
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, *args[1:]], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(pattern, out.stdout + out.stderr)
    return match.group(1) if match else "?"


def _dist(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def machine() -> dict[str, Any]:
    """What the figures depend on: CPU, cores, Python, library and tool versions, load."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu_model": model or platform.processor() or platform.machine(),
        "cores": os.cpu_count(), "usable_cores": usable,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(terse=True),
        "sqlite": sqlite3.sqlite_version,
        "libraries": {name: _dist(name) for name in ("fcplus_wsgi", "cryptography", "jwcrypto", "webob",
                                                     "waitress", "gunicorn", "redis", "prometheus-client",
                                                     "structlog")},
        "tools": {"redis-server": _tool_version(["redis-server", "--version"], r"v=(\S+)"),
                  "wrk": _tool_version(["wrk", "--version"], r"wrk (\S+)")},
        "load_average_start": os.getloadavg(),
    }


# -- timing ------------------------------------------------------------------------------------------

Clock = Callable[[], float]
# CPU time of this thread: what a CPU-bound figure costs, whatever else the cores run.
CPU: Clock = time.thread_time
# Wall time: for anything that waits on another process (a Redis round trip).
WALL: Clock = time.perf_counter


def calibrate(fn: Callable[[], object], target: float, clock: Clock = WALL) -> int:
    """How many calls of fn make one batch of about `target` seconds."""
    n = 1
    while True:
        start = clock()
        for _ in range(n):
            fn()
        elapsed = clock() - start
        if elapsed >= target / 4 or n >= 1 << 22:
            return max(1, round(n * target / max(elapsed, 1e-9)))
        n *= 2


def interleaved(funcs: Mapping[str, Callable[[], object]], *, target: float, repeats: int,
                clock: Clock = CPU) -> dict[str, list[float]]:
    """Microseconds per call of each function, one value per repeat, on `clock`.

    The functions take turns within each repeat, so a slowdown caused by another process
    (the machine is shared) hits a baseline and what is compared with it alike; and
    CPU-bound work is timed on the thread's CPU clock, which does not run while the
    scheduler gives the core to someone else.
    """
    counts = {name: calibrate(fn, target, clock) for name, fn in funcs.items()}
    out: dict[str, list[float]] = {name: [] for name in funcs}
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        for _ in range(repeats):
            for name, fn in funcs.items():
                n = counts[name]
                start = clock()
                for _ in range(n):
                    fn()
                out[name].append((clock() - start) / n * 1e6)
    finally:
        if was_enabled:
            gc.enable()
    return out


def typical(values: list[float], clock: Clock) -> float:
    """The figure for a series of repeats: the median on the CPU clock; on the wall clock
    the best repeat, since another process can only add time to a round trip."""
    return min(values) if clock is WALL else median(values)


def added(values: list[float], baseline: list[float], clock: Clock) -> float:
    """What `values` costs beyond `baseline`: on the CPU clock the median of the
    differences within each repeat (the turns of one repeat share the machine's state),
    on the wall clock the difference of the best repeats."""
    if clock is WALL:
        return min(values) - min(baseline)
    return median([v - b for v, b in zip(values, baseline, strict=True)])


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def spread(values: list[float]) -> float:
    """Half the interquartile range relative to the median: how much a figure wobbled."""
    if len(values) < 4:
        return (max(values) - min(values)) / 2 / median(values) if values else float("nan")
    q = statistics.quantiles(values, n=4)
    return (q[2] - q[0]) / 2 / median(values)


# -- keys, settings, sessions -----------------------------------------------------------------------

def write_keys_file(folder: Path) -> Path:
    """A private JWKS like `fcplus-wsgi keys generate` writes (RSA-3072 + P-256)."""
    path = folder / "keys.json"
    if not path.exists():
        path.write_text(json.dumps(generate_private_jwks()))
    return path


def middleware_settings(*, store_url: str, keys_file: Path, issuer: str = "http://127.0.0.1:9/api/v2",
                        base: str = "http://127.0.0.1:8000", **extra: Any) -> dict[str, Any]:
    """The ini keys of a FC+ (integration preset) service on loopback."""
    return {
        "provider": "fcplus-integration", "issuer": issuer, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
        "redirect_uri": base + "/oidc/callback", "post_logout_redirect_uri": base + "/oidc/logout-callback",
        "keys_file": str(keys_file), "session_store": store_url, "cookie_secure": "false",
        "protected_paths": "/private", "acr_values": "eidas2", **extra,
    }


def fresh_record(record: Mapping[str, Any]) -> dict[str, Any]:
    now = time.time()
    return {**record, "created": now, "seen": now}


def seed_session(store: Store, record: Mapping[str, Any], ttl: float = 3600, session_id: str | None = None) -> str:
    """Store `record` under a new session id the way the flow does; returns the cookie value."""
    sid = session_id or new_session_id()
    store.put(store_key(SESSION, sid), seal(SESSION, sid, fresh_record(record)), ttl)
    return sid


def sealed_entries(record: Mapping[str, Any], count: int) -> Iterator[tuple[str, str, bytes]]:
    """(session id, store key, sealed value) for `count` new sessions holding `record`."""
    rec = fresh_record(record)
    for _ in range(count):
        sid = new_session_id()
        yield sid, store_key(SESSION, sid), seal(SESSION, sid, rec)


def hot_environ(session_id: str | None, path: str = HOT_PATH) -> dict[str, Any]:
    """A browser's GET as a WSGI server would hand it over."""
    env: dict[str, Any] = {
        "REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": path, "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1", "wsgi.url_scheme": "http", "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_ACCEPT": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        "HTTP_ACCEPT_LANGUAGE": "fr-FR,fr;q=0.9,en;q=0.8", "HTTP_ACCEPT_ENCODING": "gzip, deflate, br",
        "HTTP_USER_AGENT": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        "HTTP_CONNECTION": "keep-alive",
    }
    if session_id is not None:
        env["HTTP_COOKIE"] = f"{COOKIE}={session_id}; _ga=GA1.1.123456789.1700000000"
    return env


def inner_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """The app behind the middleware: says whether it saw a verified identity."""
    body = b"ok" if environ.get("fcplus.identity") is not None else b"anon"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def no_start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
    return None


def requester(app: Callable[..., Any], sessions: str | list[str]) -> Callable[[], bytes]:
    """One authenticated request to `app` per call, with one session or cycling over many;
    the bare app and the wrapped one get the very same work around the call."""
    if isinstance(sessions, str):
        sid = sessions
        return lambda: b"".join(app(hot_environ(sid), no_start_response))
    cycle = itertools.cycle(sessions)
    return lambda: b"".join(app(hot_environ(next(cycle)), no_start_response))


# -- loopback servers (in this process) --------------------------------------------------------------

def provider_app(issuer: str, service_base: str, alg: str = "RSA-OAEP") -> Any:
    """The development provider with one client: the service at service_base."""
    from fcplus_wsgi.devprovider import ClientConfig, DevProviderConfig, make_app

    client = ClientConfig(client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                          redirect_uris=[service_base + "/oidc/callback"],
                          post_logout_redirect_uris=[service_base + "/oidc/logout-callback"],
                          jwks_uri=service_base + "/oidc/jwks.json",
                          id_token_encrypted_response_alg=alg, userinfo_encrypted_response_alg=alg)
    return make_app(DevProviderConfig(issuer=issuer, clients=[client]))


class Browser(DevBrowser):
    """The test suite's scripted browser (tests/support/devstack.py) on a base URL: it signs
    in through the provider's real page. A login here starts from scratch (cookies cleared,
    connections kept) and must end signed in, so a broken login cannot pass for a fast one."""

    def __init__(self, base: str) -> None:
        super().__init__(cast(Any, SimpleNamespace(base=base)))

    def login(self, path: str = HOT_PATH, acr: str = "eidas2") -> str:
        """One sign-in from scratch; returns the session cookie."""
        self.http.cookies.clear()
        try:
            landing = self.sign_in(path, acr=acr)
        except AssertionError as exc:
            raise RuntimeError(f"the sign-in failed: {str(exc)[:200]}") from None
        if landing.status_code != 200:
            raise RuntimeError(f"landing page answered {landing.status_code}")
        cookie = self.http.cookies.get(COOKIE)
        if not cookie:
            raise RuntimeError("no session cookie after the login")
        return str(cookie)


def real_session_record(keys_file: Path, alg: str = "RSA-OAEP") -> dict[str, Any]:
    """The record the flow stores after a real sign-in against the development provider."""
    from fcplus_wsgi import FCPlusMiddleware

    late_service, late_provider = LateApp(), LateApp()
    with serve_wsgi(late_service, threads=4) as base, serve_wsgi(late_provider, threads=4) as provider_base:
        issuer = provider_base + "/api/v2"
        late_provider.app = provider_app(issuer, base, alg)
        middleware = FCPlusMiddleware(inner_app, middleware_settings(
            store_url="memory://", keys_file=keys_file, issuer=issuer, base=base))
        late_service.app = middleware
        sid = Browser(base).login()
        blob = middleware.store.get(store_key(SESSION, sid))
        assert blob is not None
        record = unseal(SESSION, sid, blob)
        assert record is not None
        middleware.store.close()
        return record


# -- Redis ---------------------------------------------------------------------------------------

@contextmanager
def redis_server(folder: Path) -> Iterator[RedisServer | None]:
    """The test suite's throw-away redis-server (loopback, free port, no persistence), or
    None when the binary (Debian package redis-server) is missing."""
    from tests.support.redis_server import redis_available
    from tests.support.redis_server import redis_server as start

    if not redis_available():
        yield None
        return
    with start(folder) as server:
        yield server


def open_redis_store(handle: RedisServer | None) -> tuple[Store | None, str]:
    """The project's Redis store on this server, or None and why not."""
    if handle is None:
        return None, "redis-server not installed"
    from fcplus_wsgi.stores import StoreError, open_store

    try:
        store = open_store(handle.url())
        store.put("bench:probe", b"x", 5)
        if store.get("bench:probe") != b"x":
            return None, "the Redis store did not read back what it wrote"
        store.delete("bench:probe")
    except (StoreError, ImportError, OSError) as exc:
        return None, f"open_store('redis://...') failed: {exc.__class__.__name__}"
    return store, ""


# -- processes ---------------------------------------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu(pid: int) -> float | None:
    """User + system CPU seconds of a process (Linux /proc), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def tree_cpu(pid: int) -> float | None:
    """CPU seconds of a process and its direct children (a gunicorn master and its workers)."""
    total = process_cpu(pid)
    if total is None:
        return None
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return total


def self_cpu() -> float:
    t = os.times()
    return t.user + t.system


def python_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.pop("prometheus_multiproc_dir", None)
    return env


def python_exe() -> str:
    return sys.executable


# -- profiles ----------------------------------------------------------------------------------------

_SITE = re.compile(r"(?:site|dist)-packages/([A-Za-z0-9_]+)")
_STDLIB = re.compile(r"/lib/python3\.\d+/([A-Za-z0-9_]+)")


def profile_group(filename: str, function: str) -> str:
    """Which library a profiled function belongs to, for a 'where the time goes' table."""
    if filename == "~":  # built-in: C functions and methods, named by their type
        if "cryptography" in function or "_openssl" in function or "_rust" in function:
            return "cryptography (OpenSSL)"
        if "socket" in function or "select" in function or "poll" in function:
            return "socket I/O"
        if "sqlite3" in function:
            return "sqlite3"
        if "_json" in function or "json" in function:
            return "json"
        return "builtins"
    if "/fcplus_wsgi/" in filename:
        part = filename.split("/fcplus_wsgi/", 1)[1]
        return "fcplus_wsgi." + part.split("/", 1)[0].removesuffix(".py")
    if filename.startswith("<frozen "):
        return "stdlib " + filename[len("<frozen "):].rstrip(">").lstrip("_").split(".")[0]
    site = _SITE.search(filename)
    if site:
        return site.group(1)
    std = _STDLIB.search(filename)
    if std:
        return "stdlib " + std.group(1).removesuffix(".py")
    return "other"


def summarize_profile(stats: Any, top: int = 12, per: int = 1) -> dict[str, Any]:
    """Own time grouped by library, and the top functions, from a pstats.Stats; times are
    divided by `per` (e.g. the number of logins profiled)."""
    total = 0.0
    groups: dict[str, float] = {}
    rows = []
    for (filename, line, function), (_cc, calls, own, cumulative, _callers) in stats.stats.items():
        total += own
        group = profile_group(filename, function)
        groups[group] = groups.get(group, 0.0) + own
        where = function if filename == "~" else f"{Path(filename).name}:{line}({function})"
        rows.append((where, calls, own, cumulative))
    rows.sort(key=lambda r: r[2], reverse=True)
    return {
        "total_ms": total / per * 1000,
        "groups": sorted(([g, t / per * 1000, t / total if total else 0.0] for g, t in groups.items()),
                         key=lambda g: g[1], reverse=True),
        "top": [[w, c / per, o / per * 1000, cu / per * 1000] for w, c, o, cu in rows[:top]],
    }


def report_profile(summary: dict[str, Any], out: Callable[[str], None], indent: str = "   ",
                   groups: int = 8) -> None:
    out(f"{indent}own time by library (ms per login, share):")
    for name, ms, share in summary["groups"][:groups]:
        out(f"{indent}  {name:32} {ms:8.3f}  {share:6.1%}")
    out(f"{indent}top functions by own time (calls, own ms, cumulative ms per login):")
    for where, calls, own, cumulative in summary["top"]:
        out(f"{indent}  {where[:78]:78} {calls:7.1f} {own:8.3f} {cumulative:8.3f}")
