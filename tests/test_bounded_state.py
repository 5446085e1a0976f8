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
from urllib.parse import urlsplit

from tests.support.devstack import dev_stack

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
