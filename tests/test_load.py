"""A small version of `python -m benchmarks --only load` (docs/benchmarks.md, part 6): 40
sign-ins released at once over 2 gunicorn worker processes sharing one store, through the
development provider's real page, all end signed in with no 5xx, and the sessions they made
then serve authenticated requests without an error. Checks outcomes only, never speed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.load import gunicorn_available, run_store
from fcplus_wsgi.keys import generate_private_jwks
from tests.support.redis_server import SKIP_REASON, redis_available, redis_server

LOGINS = 40


@pytest.fixture(params=["sqlite", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'load.sqlite3'}"
        return
    if not redis_available():
        pytest.skip(SKIP_REASON)
    with redis_server(tmp_path / "redis") as server:
        yield server.url()


@pytest.mark.skipif(not gunicorn_available(), reason="gunicorn is not installed (pip install .[test])")
def test_concurrent_logins_over_two_processes_then_authenticated_requests(tmp_path: Path, store_url: str) -> None:
    keys_file = tmp_path / "keys.json"
    keys_file.write_text(json.dumps(generate_private_jwks()))
    keys_file.chmod(0o600)
    result = run_store(tmp_path, keys_file, store_url, LOGINS, requests_per_client=25)
    assert result["workers"] == 2
    assert (result["signed_in"], result["login_failures"]) == (LOGINS, [])
    assert result["statuses"] == {"200": 8 * 25} and result["errors"] == 0
