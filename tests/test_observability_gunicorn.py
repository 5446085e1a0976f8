"""Metrics under real gunicorn with 2 workers, in prometheus_client's multiprocess mode,
configured from one Paste ini (app, filter, and the [loggers]/[handlers]/[formatters] that
route the structlog JSON lines to a file).

Both workers must serve requests, each keeps its own counts in its own file, and any
worker answering /metrics reports their sum.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from fcplus_wsgi.devprovider import ClientConfig, DevProviderConfig, make_app
from fcplus_wsgi.keys import generate_private_jwks
from tests.support.devstack import CLIENT_ID, SECRET
from tests.support.servers import LateApp, free_port, serve_wsgi

pytestmark = pytest.mark.skipif(importlib.util.find_spec("gunicorn") is None,
                                reason="gunicorn is not installed (pip install -e .[test])")

LOGIN_REDIRECTS = 'fcplus_flow_steps_total{outcome="success",provider="fcplus-integration",step="login_redirect"}'

INI = """\
[app:demo]
use = egg:fcplus_wsgi#demo

[filter:fcplus]
use = egg:fcplus_wsgi#fcplus
provider = fcplus-integration
issuer = {issuer}
client_id = {client_id}
client_secret = {secret}
redirect_uri = {base}/oidc/callback
keys_file = {keys}
session_store = sqlite:///{tmp}/sessions.sqlite3
cookie_secure = false
protected_paths = /private
acr_values = eidas2
metrics = true
metrics_path = /metrics
structlog = true
log_format = json

[pipeline:main]
pipeline = fcplus demo

[loggers]
keys = root, flow

[handlers]
keys = console, flowfile

[formatters]
keys = plain, message

[logger_root]
level = WARNING
handlers = console

[logger_flow]
level = INFO
handlers = flowfile
qualname = fcplus_wsgi.flow
propagate = 0

[handler_console]
class = StreamHandler
args = (sys.stderr,)
formatter = plain

[handler_flowfile]
class = FileHandler
args = ('{tmp}/flow.log',)
formatter = message

[formatter_plain]
format = %(asctime)s %(levelname)s %(name)s %(message)s

[formatter_message]
format = %(message)s
"""

GUNICORN_CONF = "from fcplus_wsgi.observability import gunicorn_child_exit as child_exit  # noqa: F401\n"


@pytest.fixture(params=[False, True], ids=["load-in-workers", "preload"])
def gunicorn_stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """`--preload` builds the app, and opens the SQLite store, in the master before it forks
    the workers: each must then open its own SQLite connection."""
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps(generate_private_jwks()))
    prom_dir = tmp_path / "prom"
    prom_dir.mkdir()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    late = LateApp()
    with serve_wsgi(late) as provider_base:
        issuer = provider_base + "/api/v2"
        late.app = make_app(DevProviderConfig(issuer=issuer, clients=[ClientConfig(
            client_id=CLIENT_ID, client_secret=SECRET, redirect_uris=[base + "/oidc/callback"],
            jwks_uri=base + "/oidc/jwks.json")]))
        ini = tmp_path / "service.ini"
        ini.write_text(INI.format(issuer=issuer, client_id=CLIENT_ID, secret=SECRET, base=base, keys=keys, tmp=tmp_path))
        conf = tmp_path / "gunicorn.conf.py"
        conf.write_text(GUNICORN_CONF)
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(prom_dir)}
        log = (tmp_path / "gunicorn.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--paste", str(ini), "-c", str(conf), "--workers", "2",
             "--bind", f"127.0.0.1:{port}", "--graceful-timeout", "5", *(["--preload"] if request.param else [])],
            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 30
            while True:
                assert process.poll() is None, (tmp_path / "gunicorn.log").read_text()[-3000:]
                try:
                    if requests.get(base + "/metrics", timeout=2).status_code == 200:
                        break
                except requests.RequestException:
                    pass
                assert time.monotonic() < deadline, (tmp_path / "gunicorn.log").read_text()[-3000:]
                time.sleep(0.2)
            yield base, tmp_path
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
            log.close()


def per_worker(prom_dir: Path, name: str, labels: dict[str, str]) -> dict[str, float]:
    """The value each worker holds, read from its own counter file alone."""
    values = {}
    for db in sorted(prom_dir.glob("counter_*.db")):
        alone = prom_dir.parent / ("alone-" + db.stem)
        alone.mkdir(exist_ok=True)
        shutil.copy(db, alone / db.name)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(alone))
        values[db.stem.split("_", 1)[1]] = registry.get_sample_value(name, labels) or 0.0
        shutil.rmtree(alone)
    return values


def scrape(base: str, name: str, labels: dict[str, str]) -> float:
    text = requests.get(base + "/metrics", timeout=5).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0


def test_two_gunicorn_workers_add_up(gunicorn_stack: tuple[str, Path]) -> None:
    base, tmp = gunicorn_stack
    labels = {"outcome": "success", "provider": "fcplus-integration", "step": "login_redirect"}

    def start_login(_: int) -> int:
        response = requests.get(base + "/private/page", headers={"Accept": "text/html"}, allow_redirects=False,
                                timeout=10)
        return response.status_code

    sent = 0
    workers: dict[str, float] = {}
    with ThreadPoolExecutor(max_workers=8) as pool:
        while sent < 400:
            statuses = list(pool.map(start_login, range(40)))
            assert statuses == [302] * 40
            sent += 40
            workers = per_worker(tmp / "prom", "fcplus_flow_steps_total", labels)
            if len([v for v in workers.values() if v > 0]) >= 2:
                break
    assert len([v for v in workers.values() if v > 0]) == 2, f"one worker served everything: {workers}"
    assert sum(workers.values()) == sent
    # Whichever worker answers the scrape, it reports the sum of both.
    for _ in range(6):
        assert scrape(base, "fcplus_flow_steps_total", labels) == sent
    # Each worker fetched the discovery document once, and each count is kept apart.
    assert scrape(base, "fcplus_provider_request_duration_seconds_count",
                  {"provider": "fcplus-integration", "endpoint": "discovery"}) == 2
    # The shared sqlite store was not written at all: pending logins travel in the login cookie.
    assert scrape(base, "fcplus_store_operation_duration_seconds_count",
                  {"backend": "sqlite", "operation": "put"}) == 0
    # The ini's [loggers]/[handlers]/[formatters] sent the structlog JSON lines to the file.
    deadline = time.monotonic() + 5
    while True:
        lines = (tmp / "flow.log").read_text().splitlines()
        events = [json.loads(line) for line in lines]
        redirected = [e for e in events if e["event"] == "fcplus.login_redirect.redirected"]
        if len(redirected) == sent or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(redirected) == sent
    assert all(e["level"] == "info" and len(e["correlation_id"]) == 12 for e in redirected)
    assert len({e["correlation_id"] for e in redirected}) == sent
    assert not [e for e in events if e["level"] == "debug"]  # the ini's INFO level applies
