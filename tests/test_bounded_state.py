"""No sequence of anonymous requests grows the server's state.

The bound: a request without a session writes nothing to the store (its pending login is
sealed into the login cookie it gets back); a completed sign-in writes two entries, its
session and the record that its state is used. So after 10,000 cookie-less GETs of a
protected path and one real sign-in, the store holds exactly those two entries. Real HTTP
on loopback, the development provider, a SQLite store on disk.
"""

from __future__ import annotations

import http.client
import sqlite3
import threading
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from tests.support.devstack import dev_stack
from tests.support.evil_provider import evil_stack, json_response

FLOOD = 10_000
THREADS = 4


def stored_kinds(db: Path) -> Counter[str]:
    with sqlite3.connect(db) as conn:
        return Counter(key.split(":", 1)[0] for (key,) in conn.execute("SELECT key FROM fcplus_entries"))


def test_a_flood_of_anonymous_gets_leaves_nothing_in_the_store_and_a_login_during_it_completes(tmp_path: Path) -> None:
    db = tmp_path / "sessions.sqlite3"
    with dev_stack(tmp_path, settings={"session_store": f"sqlite:///{db}"}) as stack:
        host = urlsplit(stack.base)
        started, signed_in = threading.Event(), threading.Event()
        failures: list[str] = []
        cookie_sizes: list[int] = []

        def flood(count: int) -> None:
            """`count` GETs, then more until the sign-in is done, so the two overlap."""
            conn = http.client.HTTPConnection(host.hostname, host.port, timeout=30)
            try:
                n = 0
                while n < count or not signed_in.is_set():
                    n += 1
                    conn.request("GET", f"/private/page?n={n}", headers={"Accept": "text/html"})
                    answer = conn.getresponse()
                    answer.read()
                    cookie = answer.getheader("Set-Cookie") or ""
                    if answer.status != 302 or not cookie.startswith("fcplus-login="):
                        failures.append(f"{answer.status} {cookie[:40]}")
                    cookie_sizes.append(len(cookie))
                    if n == 200:
                        started.set()
            finally:
                conn.close()

        threads = [threading.Thread(target=flood, args=(FLOOD // THREADS,)) for _ in range(THREADS)]
        for t in threads:
            t.start()
        assert started.wait(60)
        try:
            page = stack.browser().sign_in("/private/during-the-flood")
        finally:
            signed_in.set()
        for t in threads:
            t.join()
        assert page.status_code == 200 and page.json()["path"] == "/private/during-the-flood"
        assert failures == [] and len(cookie_sizes) >= FLOOD
        assert max(cookie_sizes) < 4096
        assert stored_kinds(db) == Counter({"s": 1, "u": 1})


def test_two_callbacks_of_one_state_at_once_reach_the_token_endpoint_once(tmp_path: Path) -> None:
    """The pending login is in the cookie, which both requests carry: the process refuses a
    state that is being redeemed, so the second never spends the code at the provider."""
    with evil_stack(tmp_path) as stack:
        provider = stack.provider
        first_at_token, second_done = threading.Event(), threading.Event()
        calls: list[int] = []

        def token(request: Any, grant: Any) -> Any:
            calls.append(1)
            if len(calls) == 1:
                first_at_token.set()
                second_done.wait(30)  # hold the first callback until the second has its answer
            return json_response(provider.token_body(grant))
        provider.token_handler = token
        browser = stack.browser()
        callback = browser.authorize(browser.start())
        cookies = {c.name: str(c.value) for c in browser.http.cookies}
        answers: list[int] = []
        first = threading.Thread(target=lambda: answers.append(
            requests.get(callback, cookies=cookies, allow_redirects=False, timeout=30).status_code))
        first.start()
        assert first_at_token.wait(30)
        second = requests.get(callback, cookies=cookies, allow_redirects=False, timeout=30)
        second_done.set()
        first.join()
        assert (answers, second.status_code, stack.recorder.errors()[-1:], len(calls)) == \
            ([303], 400, ["state_unknown"], 1)
