"""Starting and stopping the benchmark servers (benchmarks/serve.py) from the parent."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from benchmarks.common import LOOPBACK, REPO, python_env, python_exe
from benchmarks.serve import CONFIG_ENV
from tests.support.servers import free_port


@dataclass
class Running:
    base: str
    pid: int
    process: subprocess.Popen[str]


def _write(folder: Path, config: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"server-{config['port']}.json"
    path.write_text(json.dumps(config))
    return path


@contextmanager
def waitress_process(folder: Path, config: dict[str, Any], timeout: float = 60) -> Iterator[Running]:
    """`python -m benchmarks.serve` with this config; stops it (and lets it write its
    profile) by closing its stdin."""
    config = {"port": free_port(), **config}
    path = _write(folder, config)
    process = subprocess.Popen([python_exe(), "-m", "benchmarks.serve", str(path)], cwd=REPO, env=python_env(),
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"benchmark server did not start (exit {process.poll()})")
        yield Running(f"http://{LOOPBACK}:{config['port']}", process.pid, process)
    finally:
        if process.stdin is not None:
            try:
                process.stdin.close()
            except OSError:
                pass
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def gunicorn_available() -> bool:
    return shutil.which("gunicorn") is not None


def gunicorn_command(workers: int, port: int, *, threads: int | None = None) -> list[str]:
    """The gunicorn command line serving benchmarks.serve:gunicorn_app() on loopback: sync
    workers, or gthread ones when `threads` is given (the load benchmark's re-entrant JWKS fetch)."""
    exe = shutil.which("gunicorn")
    assert exe is not None
    kind = ["--worker-class", "sync"] if threads is None else ["--worker-class", "gthread", "--threads", str(threads)]
    return [exe, "--workers", str(workers), *kind, "--bind", f"{LOOPBACK}:{port}", "--log-level", "warning",
            "--graceful-timeout", "5", "benchmarks.serve:gunicorn_app()"]


def stop_gunicorn(process: subprocess.Popen[str]) -> None:
    """SIGTERM lets the workers finish what they serve; a master that hangs is killed."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def gunicorn_process(folder: Path, config: dict[str, Any], workers: int, probe_path: str,
                     cookie: str | None) -> Iterator[Running]:
    """gunicorn (sync workers) serving benchmarks.serve:gunicorn_app() on loopback."""
    config = {"port": free_port(), **config}
    path = _write(folder, config)
    env = python_env()
    env[CONFIG_ENV] = str(path)
    process = subprocess.Popen(
        gunicorn_command(workers, config["port"]), cwd=REPO, env=env,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://{LOOPBACK}:{config['port']}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                tail = (process.stderr.read() if process.stderr else "")[-500:]
                raise RuntimeError(f"gunicorn exited with {process.returncode}: {tail}")
            try:
                answers = [requests.get(base + probe_path, headers={"Cookie": f"fcplus={cookie}"} if cookie else {},
                                        timeout=5).status_code for _ in range(workers * 2)]
                if all(code == 200 for code in answers):
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("gunicorn did not answer in time")
            time.sleep(0.1)
        yield Running(base, process.pid, process)
    finally:
        stop_gunicorn(process)
