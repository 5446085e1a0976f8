"""6. Load: many logins at once over two server processes on one store, then authenticated load.

    python -m benchmarks --only load [--quick | --full]

For each store (SQLite on disk, then Redis): gunicorn with 2 worker processes (gthread)
serves the app wrapped by the middleware, the development provider runs in a process of its
own, and LOGINS scripted browsers (benchmarks.common.Browser, each through the provider's
real page) are released together by a barrier. Every login must end signed in: any 5xx or
other failure is counted and named. Then the sessions those logins made are used for
DURATION seconds of authenticated requests (keep-alive connections, cookies in turn), while
the resident memory of both workers is sampled every second: the report gives errors,
requests per second and the memory at the start and end of the load, so a leak shows as a
slope. Not part of the default run (it takes minutes in --full); --only load runs it.
"""

from __future__ import annotations

import http.client
import os
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from benchmarks.common import COOKIE, HOT_PATH, LOOPBACK, REPO, Browser, middleware_settings, python_env
from benchmarks.serve import CONFIG_ENV
from benchmarks.servers import Running, _write, gunicorn_available, gunicorn_command, stop_gunicorn, waitress_process
from tests.support.servers import free_port

# (logins started at once, seconds of authenticated load) per mode of `python -m benchmarks`.
SIZES = {"quick": (20, 3.0), "default": (200, 20.0), "full": (200, 60.0)}
WORKERS = 2
CLIENTS = 8  # connections of the authenticated load


@contextmanager
def gunicorn_service(folder: Path, settings: dict[str, Any], *, port: int, workers: int = WORKERS,
                     threads: int = 16) -> Iterator[Running]:
    """gunicorn with threaded workers: while a callback waits for the token endpoint, the
    provider fetches the service's JWKS from the same server (sync workers could deadlock)."""
    env = python_env()
    env[CONFIG_ENV] = str(_write(folder, {"role": "app", "port": port, "settings": settings}))
    log = (folder / f"gunicorn-{port}.log").open("w")
    process = subprocess.Popen(
        gunicorn_command(workers, port, threads=threads), cwd=REPO, env=env,
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, text=True)
    base = f"http://{LOOPBACK}:{port}"
    try:
        deadline = time.monotonic() + 60
        while len(worker_pids(process.pid)) < workers or not _answers(base):
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {process.returncode}: "
                                   f"{(folder / f'gunicorn-{port}.log').read_text()[-500:]}")
            if time.monotonic() > deadline:
                raise RuntimeError("gunicorn did not answer in time")
            time.sleep(0.1)
        yield Running(base, process.pid, process)
    finally:
        stop_gunicorn(process)
        log.close()


def _answers(base: str) -> bool:
    try:
        return requests.get(base + "/", timeout=5).status_code == 200
    except requests.RequestException:
        return False


def worker_pids(master: int) -> list[int]:
    """The children of gunicorn's master (Linux /proc)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == master:
                pids.append(int(entry))
    return sorted(pids)


def rss_mib(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def concurrent_logins(base: str, count: int) -> tuple[list[str], list[str], float]:
    """`count` sign-ins released at the same instant; (session cookies, failures, wall s)."""
    barrier = threading.Barrier(count + 1)
    cookies: list[str] = []
    failures: list[str] = []
    lock = threading.Lock()

    def one() -> None:
        browser = Browser(base)
        # As browsers do (RFC 9112, 9.3.1): a GET sent on a kept-alive connection that the
        # server closed while the user was at the provider is sent again on a new one. A
        # callback the server did process is not saved by this: its state is then spent.
        adapter = HTTPAdapter(max_retries=Retry(total=1, connect=1, read=1, status=0, other=0,
                                                allowed_methods=frozenset({"GET"}), raise_on_status=False))
        browser.http.mount("http://", adapter)
        barrier.wait()
        try:
            cookie = browser.login()
        except (RuntimeError, requests.RequestException) as exc:
            request = getattr(exc, "request", None)
            where = f"{request.method} {urlsplit(request.url).path}: " if request is not None else ""
            with lock:
                failures.append(where + str(exc)[:200])
            return
        with lock:
            cookies.append(cookie)

    threads = [threading.Thread(target=one) for _ in range(count)]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    return cookies, failures, time.perf_counter() - started


def authenticated_load(base: str, cookies: list[str], *, duration: float | None = None,
                       requests_per_client: int | None = None, clients: int = CLIENTS,
                       sample: Callable[[], None] | None = None) -> tuple[Counter[int], int, float]:
    """GETs of a protected path with the sessions in turn, for `duration` seconds or
    `requests_per_client` each; (statuses, answers that were not the app's signed-in page,
    wall s). `sample` runs about once a second meanwhile."""
    parts = urlsplit(base)
    statuses: Counter[int] = Counter()
    wrong = 0
    lock = threading.Lock()
    stop = threading.Event()
    deadline = time.monotonic() + duration if duration is not None else None

    def client(index: int) -> None:
        nonlocal wrong
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        mine: Counter[int] = Counter()
        bad = n = 0
        try:
            while not stop.is_set():
                if requests_per_client is not None and n >= requests_per_client:
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    break
                cookie = cookies[(index + n * clients) % len(cookies)]
                n += 1
                try:
                    conn.request("GET", HOT_PATH, headers={"Cookie": f"{COOKIE}={cookie}", "Accept": "text/html"})
                    answer = conn.getresponse()
                    body = answer.read()
                except (OSError, http.client.HTTPException):
                    mine[0] += 1
                    conn.close()
                    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
                    continue
                mine[answer.status] += 1
                bad += body != b"ok"
        finally:
            conn.close()
            with lock:
                statuses.update(mine)
                wrong += bad

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        if sample is not None:
            sample()
        for t in threads:
            t.join(timeout=1.0 / len(threads))
    stop.set()
    return statuses, wrong, time.perf_counter() - started


def run_store(workdir: Path, keys_file: Path, store_url: str, logins: int, *, duration: float | None = None,
              requests_per_client: int | None = None) -> dict[str, Any]:
    """One store's run: the concurrent logins, then the authenticated load with memory samples."""
    app_port, provider_port = free_port(), free_port()
    app_base, provider_base = f"http://{LOOPBACK}:{app_port}", f"http://{LOOPBACK}:{provider_port}"
    issuer = provider_base + "/api/v2"
    settings = middleware_settings(store_url=store_url, keys_file=keys_file, issuer=issuer, base=app_base)
    provider_cm = waitress_process(workdir, {"role": "provider", "port": provider_port, "issuer": issuer,
                                             "service_base": app_base, "threads": 32})
    with provider_cm, gunicorn_service(workdir, settings, port=app_port) as service:
        Browser(app_base).login()  # discovery, JWKS, schema: not part of the figures
        cookies, failures, login_wall = concurrent_logins(app_base, logins)
        workers = worker_pids(service.pid)
        samples: list[tuple[float, list[float | None]]] = []
        began = time.monotonic()

        def sample() -> None:
            samples.append((time.monotonic() - began, [rss_mib(pid) for pid in workers]))
        sample()
        statuses, wrong, load_wall = authenticated_load(
            app_base, cookies or ["none"], duration=duration, requests_per_client=requests_per_client,
            sample=sample)
        sample()
    total = sum(statuses.values())
    first = [v for v in samples[0][1] if v is not None]
    last = [v for v in samples[-1][1] if v is not None]
    return {
        "logins": logins, "signed_in": len(cookies), "login_failures": failures[:5], "login_failed": len(failures),
        "login_wall_s": login_wall, "requests": total, "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "errors": total - statuses.get(200, 0) + wrong, "load_wall_s": load_wall,
        "requests_per_s": total / load_wall if load_wall else float("nan"),
        "rss_start_mib": sum(first), "rss_end_mib": sum(last),
        "rss_max_mib": max(sum(v for v in s if v is not None) for _, s in samples),
        "rss_samples": [(round(t, 1), [round(v, 1) if v is not None else None for v in s]) for t, s in samples],
        "workers": len(workers),
    }


def run(ctx: Any) -> dict[str, Any]:
    from benchmarks.common import redis_server

    logins, duration = SIZES.get(ctx.mode, SIZES["default"])
    result: dict[str, Any] = {"logins": logins, "duration_s": duration, "workers": WORKERS, "stores": {}}
    if not gunicorn_available():
        result["skipped"] = "gunicorn is not installed"
        return result
    result["stores"]["sqlite"] = run_store(ctx.workdir, ctx.keys_file, "sqlite:///" + str(ctx.workdir / "load.sqlite3"),
                                           logins, duration=duration)
    with redis_server(ctx.workdir / "load-redis") as handle:
        if handle is None:
            result["redis_skipped"] = "redis-server is not installed"
        else:
            result["stores"]["redis"] = run_store(ctx.workdir, ctx.keys_file, handle.url(), logins, duration=duration)
    return result


def report(result: dict[str, Any], out: Callable[[str], None]) -> None:
    out(f"6. Load: {result['logins']} logins started at once over {result['workers']} gunicorn worker processes on "
        f"one store, then {result['duration_s']:.0f} s of authenticated requests ({CLIENTS} keep-alive connections)")
    if "skipped" in result:
        out(f"   skipped: {result['skipped']}")
        return
    out(f"   {'store':7} {'signed in':>10} {'failed':>7} {'wall s':>7}   {'requests':>9} {'req/s':>7} {'errors':>7}"
        f"   RSS of the workers, MiB: start -> end (max)")
    for store, e in result["stores"].items():
        out(f"   {store:7} {e['signed_in']:>5}/{e['logins']:<4} {e['login_failed']:>7} {e['login_wall_s']:7.1f}   "
            f"{e['requests']:>9} {e['requests_per_s']:7.0f} {e['errors']:>7}   "
            f"{e['rss_start_mib']:.1f} -> {e['rss_end_mib']:.1f} ({e['rss_max_mib']:.1f})")
        for failure in e["login_failures"]:
            out(f"      login failure: {failure}")
    if "redis_skipped" in result:
        out(f"   redis: {result['redis_skipped']}")


def summary(result: dict[str, Any]) -> list[str]:
    return [f"load, {store}: {e['signed_in']}/{e['logins']} concurrent logins signed in, {e['errors']} errors in "
            f"{e['requests']} authenticated requests, worker RSS {e['rss_start_mib']:.1f} -> {e['rss_end_mib']:.1f} MiB"
            for store, e in result.get("stores", {}).items()]
