"""Servers for the benchmarks, in processes of their own so load and server do not share a GIL.

    python -m benchmarks.serve CONFIG.json      waitress on 127.0.0.1:PORT until stdin closes
    gunicorn 'benchmarks.serve:gunicorn_app()'  the same app; config path in FCPLUS_BENCH_CONFIG

CONFIG holds {"role": "app" | "provider", "port": ..., "threads": ...} plus, for the app,
"bare" (serve the inner app unwrapped), "settings" (middleware ini keys), "record" and
"session_id" (a session to seal into the store at start, so a load generator can send
its cookie), "profile" (a path: profile every request with cProfile, from a GET of
START_PATH on, and write the summed stats there at exit) and
"events" (a path: write the summed durations of the flow's steps, from START_PATH on,
there at exit), "time_calls" (a path prefix: write the thread CPU time of every WSGI
call to PREFIX.PID at exit); for the provider, "issuer",
"service_base" and "alg".
"""

from __future__ import annotations

import atexit
import cProfile
import json
import logging
import os
import pstats
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from waitress.server import create_server

from benchmarks.common import LOOPBACK, inner_app, provider_app, seed_session

CONFIG_ENV = "FCPLUS_BENCH_CONFIG"
START_PATH = "/__bench/profile-start"


class Profiled:
    """Profile each request in the thread that serves it (cProfile sees one thread only).
    The clock is perf_counter (cheap, so the profile is not all profiler): time spent
    waiting for the provider shows as socket calls, which the report sets apart."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.stats: pstats.Stats | None = None
        self.requests = 0
        self.enabled = False

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not self.enabled:
            return self.app(environ, start_response)
        profile = cProfile.Profile()
        profile.enable()
        try:
            result = self.app(environ, start_response)
            try:
                body = list(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        finally:
            profile.disable()
            with self.lock:
                self.requests += 1
                if self.stats is None:
                    self.stats = pstats.Stats(profile)
                else:
                    self.stats.add(profile)
        return body

    def dump(self, path: str) -> None:
        with self.lock:
            if self.stats is not None:
                self.stats.dump_stats(path)


class StepTimes:
    """Sums the flow's own step durations (events on the middleware's bus): token,
    id_token, userinfo, session, each provider request; wall clock, no profiler."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.steps: dict[str, list[float]] = {}

    def __call__(self, event: Any) -> None:
        if event.duration is None:
            return
        name = event.step
        if event.step == "provider_request":
            name += ":" + str(event.extra.get("endpoint", "?"))
        with self.lock:
            entry = self.steps.setdefault(name, [0, 0.0])
            entry[0] += 1
            entry[1] += event.duration

    def dump(self, path: str) -> None:
        with self.lock:
            Path(path).write_text(json.dumps(self.steps))


STEP_TIMES = StepTimes()


class CallTimes:
    """The thread CPU time of each WSGI call, as the server makes it between real requests.

    Part 1 times the same call in a loop, with every cache warm; here the code runs after
    the server's own parsing and socket work, which is what a deployment pays. The two
    clock reads cost the same for every app, so differences between apps are the apps'.
    The apps measured return lists, so the call is the whole of their work."""

    def __init__(self, app: Callable[..., Iterable[bytes]], prefix: str) -> None:
        self.app = app
        self.prefix = prefix
        self.samples: list[int] = []

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        started = time.thread_time_ns()
        try:
            return self.app(environ, start_response)
        finally:
            self.samples.append(time.thread_time_ns() - started)

    def dump(self) -> None:
        Path(f"{self.prefix}.{os.getpid()}").write_text(json.dumps(self.samples))


def timed_if_asked(app: Callable[..., Iterable[bytes]], config: dict[str, Any]) -> Callable[..., Iterable[bytes]]:
    """The app, its calls timed when the config says where to write them. Written at exit,
    which both servers reach normally: waitress's process returns from main, a gunicorn
    sync worker leaves through sys.exit on SIGTERM."""
    if not config.get("time_calls"):
        return app
    timed = CallTimes(app, config["time_calls"])
    atexit.register(timed.dump)
    return timed


def raw_read_app(spec: dict[str, Any], session_id: str) -> Callable[..., Iterable[bytes]]:
    """The bare app plus one raw read of the session entry per request (plain sqlite3 or
    redis-py, no fcplus_wsgi code): what any server-side session costs at the least."""
    from fcplus_wsgi.sessions import SESSION, store_key

    key = store_key(SESSION, session_id)
    if spec["kind"] == "sqlite":
        import sqlite3

        local = threading.local()

        def read() -> object:
            conn = getattr(local, "conn", None)
            if conn is None:
                conn = local.conn = sqlite3.connect(spec["path"], isolation_level=None, check_same_thread=False)
            return conn.execute("SELECT value FROM fcplus_entries WHERE key = ?", (key,)).fetchone()
    else:
        import redis

        client = redis.Redis(host=LOOPBACK, port=int(spec["port"]), db=int(spec.get("db", 0)))
        name = spec["prefix"] + key

        def read() -> object:
            return client.get(name)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if read() is None:
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
            return [b"session entry missing"]
        return inner_app(environ, start_response)
    return app


def build(config: dict[str, Any]) -> Any:
    if config["role"] == "provider":
        return provider_app(config["issuer"], config["service_base"], config.get("alg", "RSA-OAEP"))
    if config.get("bare"):
        return inner_app
    from fcplus_wsgi import FCPlusMiddleware

    middleware = FCPlusMiddleware(inner_app, config["settings"])
    if config.get("raw_read"):
        seed_session(middleware.store, config["record"], session_id=config["session_id"])
        middleware.store.close()
        return raw_read_app(config["raw_read"], config["session_id"])
    if config.get("events"):
        middleware.bus.subscribe(STEP_TIMES)
    if config.get("session_id"):
        seed_session(middleware.store, config["record"], session_id=config["session_id"])
    return middleware


class Control:
    """Answers START_PATH, which the parent requests once its warm-up logins are done:
    step times start from zero and profiling (if asked for) starts."""

    def __init__(self, app: Callable[..., Iterable[bytes]], profiled: Profiled | None) -> None:
        self.app = app
        self.profiled = profiled

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == START_PATH:
            with STEP_TIMES.lock:
                STEP_TIMES.steps.clear()
            if self.profiled is not None:
                self.profiled.enabled = True
            start_response("204 No Content", [])
            return []
        return self.app(environ, start_response)


def gunicorn_app() -> Any:
    """The app gunicorn serves; each worker builds (and seeds) its own, as in production."""
    config = json.loads(Path(os.environ[CONFIG_ENV]).read_text())
    return timed_if_asked(build(config), config)


def main(argv: list[str]) -> int:
    # waitress warns "Task queue depth is N" whenever a request waits for a thread, which
    # under a load generator is every other request: that is the point, not news.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    config = json.loads(Path(argv[0]).read_text())
    app = timed_if_asked(build(config), config)
    profiled = Profiled(app) if config.get("profile") else None
    server = create_server(Control(profiled or app, profiled), host=LOOPBACK, port=int(config["port"]),
                           threads=int(config.get("threads", 4)), ident="bench", connection_limit=1000)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    print("ready", flush=True)
    sys.stdin.read()  # the parent closes our stdin to stop us
    server.task_dispatcher.shutdown(cancel_pending=False)  # requests in flight finish before the trigger closes
    server.close()
    if profiled is not None:
        profiled.dump(config["profile"])
    if config.get("events"):
        STEP_TIMES.dump(config["events"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
