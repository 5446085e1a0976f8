"""The Redis session store against real redis-server processes.

The store contract (get/put/take/delete, lifetimes, single-use take under concurrency) is
written once against a store factory and run for every backend: memory and SQLite as the
reference, then Redis plain, over TLS, through Sentinel, as a Cluster, and without GETDEL
(the MULTI/EXEC fallback for Redis < 6.2). Then what only Redis has: key prefix and
database, TTLs in Redis itself, authentication, short timeouts, URL parsing, and the
whole middleware over loopback HTTP while Redis is killed and restarted.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fcplus_wsgi import ConfigError, FCPlusMiddleware
from fcplus_wsgi import flow as flow_module
from fcplus_wsgi.stores import MemoryStore, SQLiteStore, Store, StoreError, open_store
from fcplus_wsgi.stores.redis import RedisStore, parse_redis_url
from tests.support.redis_server import (
    SKIP_REASON,
    RedisServer,
    redis_available,
    redis_cluster,
    redis_cluster_node,
    redis_sentinel,
    redis_server,
)

needs_redis = pytest.mark.skipif(not redis_available(), reason=SKIP_REASON)


# -- real servers, started once per module and only when a test needs them -------------------

@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    if not redis_available():
        pytest.skip(SKIP_REASON)
    with redis_server(tmp_path_factory.mktemp("redis-plain")) as server:
        yield server


@pytest.fixture(scope="module")
def no_getdel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A server without GETDEL, as Redis < 6.2 is (renaming a command away removes it)."""
    if not redis_available():
        pytest.skip(SKIP_REASON)
    with redis_server(tmp_path_factory.mktemp("redis-old"), extra=['rename-command GETDEL ""']) as server:
        yield server


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    if not redis_available():
        pytest.skip(SKIP_REASON)
    with redis_server(tmp_path_factory.mktemp("redis-tls"), tls=True, password="tls-pass") as server:
        yield server


@pytest.fixture(scope="module")
def sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RedisServer, RedisServer]]:
    if not redis_available():
        pytest.skip(SKIP_REASON)
    tmp = tmp_path_factory.mktemp("redis-sentinel")
    with redis_server(tmp / "master", password="master-pass") as master, redis_sentinel(tmp / "sentinel", master) as s:
        yield master, s


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    if not redis_available():
        pytest.skip(SKIP_REASON)
    with redis_cluster_node(tmp_path_factory.mktemp("redis-cluster")) as node:
        yield node


def _prefix() -> str:
    """Each test gets its own key space on the shared module servers."""
    return f"t{uuid.uuid4().hex[:12]}:"


StoreFactory = Callable[[], Store]


def _factory(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    if kind == "memory":
        return MemoryStore
    if kind == "sqlite":
        return lambda: SQLiteStore(str(tmp_path / "store.sqlite3"))
    prefix = _prefix()
    if kind == "redis":
        url = request.getfixturevalue("plain").url("/1", prefix=prefix)
    elif kind == "redis-without-getdel":
        url = request.getfixturevalue("no_getdel").url(prefix=prefix)
    elif kind == "rediss":
        server = request.getfixturevalue("tls")
        url = server.url("/3", prefix=prefix, ssl_ca_certs=server.tls.ca)
    elif kind == "redis-sentinel":
        master, sentinel_server = request.getfixturevalue("sentinel")
        url = f"redis+sentinel://:{master.password}@127.0.0.1:{sentinel_server.port}/mymaster/4?prefix={prefix}"
    elif kind == "redis-cluster":
        url = f"redis+cluster://127.0.0.1:{request.getfixturevalue('cluster').port}?prefix={prefix}"
    else:
        raise AssertionError(kind)
    return lambda: open_store(url)


BACKENDS = ["memory", "sqlite", "redis", "redis-without-getdel", "rediss", "redis-sentinel", "redis-cluster"]


@pytest.fixture(params=BACKENDS)
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """A factory of stores that share one backing space, so tests can open several
    clients (threads, 'processes') on the same data."""
    factory = _factory(request.param, request, tmp_path)
    opened: list[Store] = []

    def make() -> Store:
        opened.append(factory())
        return opened[-1]

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def store(make_store: StoreFactory) -> Store:
    return make_store()


# -- the contract, for every backend ------------------------------------------------------------

def test_absent_keys(store: Store) -> None:
    assert store.get("s:absent") is None
    assert store.take("s:absent") is None
    store.delete("s:absent")  # not an error


def test_put_get_any_bytes(store: Store) -> None:
    values = {"s:binary": bytes(range(256)) * 3, "s:empty": b"", "s:large": b"\xff" * (256 * 1024),
              "p:é/ü key with spaces": b"opaque keys"}
    for key, value in values.items():
        store.put(key, value, 60)
    for key, value in values.items():
        assert store.get(key) == value
        assert store.get(key) == value  # reading does not consume


def test_put_replaces(store: Store) -> None:
    store.put("s:k", b"first", 60)
    store.put("s:k", b"second", 60)
    assert store.get("s:k") == b"second"


def test_take_is_single_use(store: Store) -> None:
    store.put("p:state", b"pending", 60)
    assert store.take("p:state") == b"pending"
    assert store.take("p:state") is None
    assert store.get("p:state") is None


def test_delete(store: Store) -> None:
    store.put("s:gone", b"x", 60)
    store.put("s:kept", b"y", 60)
    store.delete("s:gone")
    assert store.get("s:gone") is None and store.get("s:kept") == b"y"


def test_lifetimes(store: Store) -> None:
    store.put("s:short", b"short", 0.3)
    store.put("p:short", b"short", 0.3)
    store.put("s:renewed", b"old", 0.3)
    store.put("s:renewed", b"new", 60)  # a put renews the lifetime too
    store.put("s:long", b"long", 60)
    assert store.get("s:short") == b"short"
    time.sleep(0.6)
    assert store.get("s:short") is None
    assert store.take("p:short") is None
    assert store.get("s:renewed") == b"new" and store.get("s:long") == b"long"


def test_non_positive_lifetime_removes(store: Store) -> None:
    store.put("s:a", b"live", 60)
    store.put("s:a", b"dead", 0)
    store.put("s:b", b"dead", -5)
    assert store.get("s:a") is None and store.get("s:b") is None
    assert store.take("s:a") is None


def test_concurrent_take_has_one_winner(make_store: StoreFactory) -> None:
    """Two workers redeeming the same state: exactly one may get the pending login."""
    stores = [make_store() for _ in range(2)]  # two clients, as two processes would have
    rounds, workers = 15, 8
    for n in range(rounds):
        stores[0].put(f"p:race{n}", b"pending", 60)
    winners: list[list[bytes]] = [[] for _ in range(rounds)]
    barrier = threading.Barrier(workers)
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            for n in range(rounds):
                barrier.wait(timeout=10)
                value = stores[index % 2].take(f"p:race{n}")
                if value is not None:
                    winners[n].append(value)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors
    assert all(found == [b"pending"] for found in winners), winners


def test_clients_share_data(make_store: StoreFactory) -> None:
    if isinstance(make_store(), MemoryStore):
        pytest.skip("a memory store is per process by design")
    writer, reader = make_store(), make_store()
    writer.put("s:shared", b"seen by all", 60)
    assert reader.get("s:shared") == b"seen by all"
    assert reader.take("s:shared") == b"seen by all"
    assert writer.get("s:shared") is None


# -- what is particular to Redis ----------------------------------------------------------------

def _command_calls(server: RedisServer, command: str) -> int:
    stats = server.client().info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


def test_entries_are_prefixed_and_carry_their_lifetime_as_ttl(plain: RedisServer) -> None:
    store = open_store(plain.url("/2", prefix="app-one:"))
    store.put("s:abc", b"\x00sealed", 600)
    store.put("p:def", b"pending", 30)
    raw = plain.client(2)
    assert sorted(raw.keys("app-one:*")) == [b"app-one:p:def", b"app-one:s:abc"]
    assert raw.get("app-one:s:abc") == b"\x00sealed"  # stored as given: sessions.py seals before
    assert 599_000 < raw.pttl("app-one:s:abc") <= 600_000
    assert 29_000 < raw.pttl("app-one:p:def") <= 30_000
    store.close()


def test_database_and_prefix_isolate_services(plain: RedisServer) -> None:
    stores = [open_store(plain.url("/5")), open_store(plain.url("/5", prefix="b:")), open_store(plain.url("/6"))]
    assert all(isinstance(store, RedisStore) for store in stores)
    for index, store in enumerate(stores):
        store.put("s:same", str(index).encode(), 60)
    assert [store.get("s:same") for store in stores] == [b"0", b"1", b"2"]
    assert sorted(plain.client(5).keys("*")) == [b"b:s:same", b"fcplus:s:same"]  # default prefix fcplus:


def test_take_uses_getdel_and_falls_back_to_multi(plain: RedisServer, no_getdel: RedisServer) -> None:
    modern, old = open_store(plain.url(prefix=_prefix())), open_store(no_getdel.url(prefix=_prefix()))
    getdel_before, exec_before = _command_calls(plain, "getdel"), _command_calls(no_getdel, "exec")
    for store in (modern, old):
        for n in range(3):
            store.put(f"p:{n}", b"v", 60)
            assert store.take(f"p:{n}") == b"v" and store.take(f"p:{n}") is None
    assert _command_calls(plain, "getdel") - getdel_before == 6
    assert _command_calls(no_getdel, "exec") - exec_before == 6  # one failed GETDEL, then MULTI/EXEC only


@needs_redis
def test_password_is_required_and_never_shown(tmp_path: Path) -> None:
    with redis_server(tmp_path, password="s3cret-pass") as server:
        assert open_store(server.url()).get("s:x") is None
        for url in (server.url().replace("s3cret-pass", "wrong-pass"), server.url().replace(":s3cret-pass@", "")):
            with pytest.raises(StoreError) as caught:
                open_store(url).get("s:x")
            assert "AuthenticationError" in str(caught.value)
            assert "s3cret" not in str(caught.value) and "wrong-pass" not in str(caught.value)
            assert "wrong-pass" not in repr(open_store(url))


def test_tls_verifies_the_server_certificate(tls: RedisServer) -> None:
    assert tls.tls is not None
    trusting = open_store(tls.url(ssl_ca_certs=tls.tls.ca, prefix=_prefix()))
    trusting.put("s:x", b"over TLS", 60)
    assert trusting.get("s:x") == b"over TLS"
    with pytest.raises(StoreError, match="CERTIFICATE_VERIFY_FAILED"):
        open_store(tls.url()).get("s:x")  # system trust store: the test CA is unknown
    with pytest.raises(StoreError):  # TLS expected, plain TCP offered
        open_store(tls.url(scheme="redis")).get("s:x")


@needs_redis
def test_starts_while_redis_is_down_and_recovers_alone(tmp_path: Path) -> None:
    """Kill Redis: every operation fails fast with StoreError. Restart it on the same port:
    the same store object works again at once, persisted entries are back, and the entries a
    take or delete (a logout) could not remove during the outage are removed then."""
    with redis_server(tmp_path, persistent=True) as server:
        store = open_store(server.url(prefix="r:"))
        store.put("s:kept", b"survives", 600)
        store.put("s:logged-out", b"ended during the outage", 600)
        store.put("s:deleted", b"ended during the outage", 600)
        store.get("s:kept")  # a pooled connection that the restart will break
        server.kill()
        for operation in (lambda: store.get("s:kept"), lambda: store.put("s:x", b"x", 60),
                          lambda: store.take("s:logged-out"), lambda: store.delete("s:deleted")):
            started = time.monotonic()
            with pytest.raises(StoreError, match="ConnectionError"):
                operation()
            assert time.monotonic() - started < 1.0
        assert store.get("s:logged-out") is None  # never read back by the process that owes its deletion
        server.start()
        assert store.get("s:kept") == b"survives"  # first call after the restart succeeds
        assert server.client().keys("r:s:*") == [b"r:s:kept"]  # the owed deletions are done
        # A restart no request noticed leaves a dead socket in the pool: the next call
        # must not fail for it.
        server.kill()
        server.start()
        assert store.take("s:kept") == b"survives"
    cold = open_store(f"redis://127.0.0.1:{server.port}")  # nothing listens: opening still works
    with pytest.raises(StoreError):
        cold.get("s:x")
    lazy_cluster = open_store(f"redis+cluster://127.0.0.1:{server.port}")
    with pytest.raises(StoreError):
        lazy_cluster.get("s:x")


@needs_redis
def test_sentinel_failover_is_followed(tmp_path: Path) -> None:
    """Kill the master: Sentinel promotes the replica, and the same store object goes on
    with the replicated sessions, without a restart or a new URL."""
    with redis_server(tmp_path / "master", password="pw", extra=["repl-diskless-sync-delay 0"]) as master, \
            redis_server(tmp_path / "replica", password="pw",
                         extra=[f"replicaof 127.0.0.1 {master.port}", "masterauth pw"]) as replica:
        probe = master.client()
        deadline = time.monotonic() + 10
        while probe.info("replication").get("connected_slaves") != 1:
            assert time.monotonic() < deadline, "the replica never attached"
            time.sleep(0.02)
        with redis_sentinel(tmp_path / "sentinel", master, down_after_ms=300) as sentinel_server:
            store = open_store(f"redis+sentinel://:pw@127.0.0.1:{sentinel_server.port}/mymaster?timeout=0.5")
            store.put("s:before", b"replicated", 600)
            replica_view = replica.client()
            while replica_view.get("fcplus:s:before") != b"replicated":
                assert time.monotonic() < deadline, "the write never reached the replica"
                time.sleep(0.02)
            master.kill()
            deadline, value = time.monotonic() + 20, None
            while value is None:
                try:
                    value = store.get("s:before")
                except StoreError:  # until Sentinel has promoted the replica
                    assert time.monotonic() < deadline, "no failover within 20 s"
                    time.sleep(0.1)
            assert value == b"replicated"
            store.put("s:after", b"written to the new master", 600)
            assert replica.client().get("fcplus:s:after") == b"written to the new master"
            assert replica.client().info("replication")["role"] == "master"


def test_unanswering_server_times_out_quickly() -> None:
    """A Redis that accepts connections but never answers (hung, or a black hole behind
    a load balancer) must cost `timeout`, not a hung worker."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)  # the kernel completes handshakes; nothing ever replies
        port = listener.getsockname()[1]
        store = open_store(f"redis://127.0.0.1:{port}?timeout=0.3")
        started = time.monotonic()
        with pytest.raises(StoreError, match="Timeout"):
            store.get("s:x")
        assert 0.25 < time.monotonic() - started < 1.5


def test_close_releases_connections(plain: RedisServer) -> None:
    def ours() -> int:
        return sum(1 for c in plain.client().client_list() if c.get("name") == "fcplus-wsgi")

    before = ours()
    store = open_store(plain.url(prefix=_prefix()))
    store.get("s:x")
    assert ours() == before + 1
    store.close()
    deadline = time.monotonic() + 2
    while ours() != before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert ours() == before


# -- the connections kept for GET (RedisStore._ReadConnections) ---------------------------------

def _ours(server: RedisServer) -> int:
    return sum(1 for c in server.client().client_list() if c.get("name") == "fcplus-wsgi")


@needs_redis
def test_gets_from_many_threads_each_see_their_own_value(plain: RedisServer) -> None:
    """GETs go over connections kept apart from the pool, one request at a time on each:
    under contention no thread ever reads a reply meant for another, and no more than
    max_connections are opened for them."""
    before = _ours(plain)
    store = open_store(plain.url(prefix=_prefix()) + "&max_connections=4")
    for n in range(8):
        store.put(f"s:{n}", str(n).encode() * 500, 600)
    for _ in range(50):
        assert store.get("s:0") == b"0" * 500
    assert _ours(plain) == before + 2  # one kept for GET, one in the pool from the puts
    wrong: list[tuple[int, bytes | None]] = []

    def reader(n: int) -> None:
        for _ in range(300):
            value = store.get(f"s:{n}")
            if value != str(n).encode() * 500:
                wrong.append((n, value))

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == []
    assert _ours(plain) <= before + 4 + 4  # kept ones capped at max_connections, and the pool's
    store.close()


@needs_redis
def test_a_forked_child_never_reads_on_the_parents_kept_connection(plain: RedisServer) -> None:
    """gunicorn --preload forks after the master may have read sessions: the child must open
    its own connection, or parent and child would read each other's replies."""
    import os

    store = open_store(plain.url(prefix=_prefix()))
    store.put("s:parent", b"P" * 300, 600)
    store.put("s:child", b"C" * 300, 600)
    assert store.get("s:parent") == b"P" * 300  # the kept connection now exists
    pid = os.fork()
    if pid == 0:  # the child: exit code 0 only if every read was its own
        ok = all(store.get("s:child") == b"C" * 300 for _ in range(500))
        os._exit(0 if ok else 1)
    mine = all(store.get("s:parent") == b"P" * 300 for _ in range(500))
    _, status = os.waitpid(pid, 0)
    assert mine and os.waitstatus_to_exitcode(status) == 0
    store.close()


class _CuttingRedis:
    """Speaks just enough RESP: answers +OK to connection set-up, and to each GET sends the
    next scripted reply, closing the connection after it when the reply is cut short."""

    def __init__(self, replies: list[tuple[bytes, bool]]) -> None:
        self.replies = replies
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._client, args=(conn,), daemon=True).start()

    def _client(self, conn: socket.socket) -> None:
        with conn:
            buffer, null = b"", b"$-1\r\n"
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                buffer += data
                while buffer.startswith(b"*") and buffer.count(b"\r\n") >= 1 + 2 * int(buffer[1:buffer.index(b"\r")]):
                    count = int(buffer[1:buffer.index(b"\r")])
                    lines = buffer.split(b"\r\n")
                    command = lines[2].upper()
                    buffer = b"\r\n".join(lines[1 + 2 * count:])
                    if command == b"HELLO":  # RESP3 set-up: a map naming the protocol
                        conn.sendall(b"%1\r\n$5\r\nproto\r\n:" + lines[4] + b"\r\n")
                        null = b"_\r\n" if lines[4] == b"3" else null
                        continue
                    if command != b"GET":
                        conn.sendall(b"+OK\r\n")
                        continue
                    reply, cut = self.replies.pop(0) if self.replies else (null, False)
                    conn.sendall(reply)
                    if cut:
                        return

    def close(self) -> None:
        self.listener.close()


def test_a_reply_cut_short_is_never_used_and_the_read_is_retried_once() -> None:
    cut = (b"$2000\r\n" + b"x" * 100, True)  # a bulk string announced, then the connection drops
    server = _CuttingRedis([cut, (b"$3\r\nabc\r\n", False), cut, cut])
    try:
        store = open_store(f"redis://127.0.0.1:{server.port}?timeout=1")
        assert store.get("s:x") == b"abc"  # the retry, on a fresh connection
        with pytest.raises(StoreError, match="GET failed"):
            store.get("s:x")  # cut twice: an error, not a partial value
        assert store.get("s:x") is None  # and the next read is a clean one
        store.close()
    finally:
        server.close()


# -- URL parsing: start-up errors are one sentence, and never repeat a password -----------------

@pytest.mark.parametrize(("url", "expected"), [
    ("redis://127.0.0.1", {"kind": "standalone", "tls": False, "hosts": (("127.0.0.1", 6379),), "db": 0,
                           "prefix": "fcplus:", "timeout": 2.0, "connect_timeout": 2.0}),
    ("redis://:pw@127.0.0.1:6380/2?prefix=fcplus:", {"password": "pw", "username": None, "db": 2,
                                                     "hosts": (("127.0.0.1", 6380),)}),
    ("rediss://app:p%40ss%2Fw@redis.example:6390/0?timeout=0.5&connect_timeout=1&health_check_interval=0"
     "&max_connections=7", {"tls": True, "username": "app", "password": "p@ss/w", "timeout": 0.5,
                            "connect_timeout": 1.0, "health_check_interval": 0, "max_connections": 7}),
    ("redis://[::1]:7000/3", {"hosts": (("::1", 7000),), "db": 3}),
    ("redis+sentinel://:pw@s1,s2:26380,[::1]/mymaster/2?sentinel_password=spw",
     {"kind": "sentinel", "hosts": (("s1", 26379), ("s2", 26380), ("::1", 26379)), "service_name": "mymaster",
      "db": 2, "password": "pw", "sentinel_password": "spw"}),
    ("rediss+cluster://n1:7000,n2:7001?prefix={fcplus}:", {"kind": "cluster", "tls": True, "prefix": "{fcplus}:",
                                                            "hosts": (("n1", 7000), ("n2", 7001))}),
    ("redis://h/?prefix=", {"prefix": "", "db": 0}),
])
def test_url_parsing(url: str, expected: dict[str, Any]) -> None:
    config = parse_redis_url(url)
    for name, value in expected.items():
        assert getattr(config, name) == value, name
    assert "pw" not in repr(config) and "p@ss" not in repr(config) and "pw" not in config.describe()


@pytest.mark.parametrize(("url", "message"), [
    ("redis+proxy://h", "scheme"),
    ("redis://", "no host"),
    ("redis://h1,h2", "exactly one host"),
    ("redis://h:0", "port"),
    ("redis://h:99999", "port"),
    ("redis://h:port", "port"),
    ("redis://::1:6379", "IPv6"),
    ("redis://h/two", "database"),
    ("redis://h/1/2", "only the database"),
    ("redis://h?timeout=fast", "timeout"),
    ("redis://h?timeout=0", "timeout"),
    ("redis://h?timeout=nan", "timeout"),
    ("redis://h?max_connections=0", "max_connections"),
    ("redis://h?health_check_interval=-1", "health_check_interval"),
    ("redis://h?db=2", "unknown"),
    ("redis://h?prefix=a&prefix=b", "more than once"),
    ("redis://h?prefix=with%20space", "prefix"),
    ("redis://h?ssl_ca_certs=/etc/hosts", "TLS"),
    ("rediss://h?ssl_ca_certs=/nonexistent/ca.pem", "readable file"),
    ("rediss://h?ssl_certfile=/etc/hosts", "go together"),
    ("redis://h?sentinel_password=x", "sentinel"),
    ("redis+sentinel://h", "service name"),
    ("redis+cluster://h/2", "database 0"),
    ("redis://h#frag", "#"),
])
def test_url_errors_name_the_part_at_fault(url: str, message: str) -> None:
    secret_url = url.replace("://", "://:Sup3rSecret@", 1)
    for candidate in (url, secret_url):
        with pytest.raises(StoreError) as caught:
            open_store(candidate)
        assert message in str(caught.value)
        assert "Sup3rSecret" not in str(caught.value)


def test_bad_store_url_stops_the_middleware_with_a_config_error(tmp_path: Path) -> None:
    base = {"issuer": "https://idp.example", "client_id": "x", "client_secret": "y" * 32,
            "redirect_uri": "https://app.example/oidc/callback"}
    with pytest.raises(ConfigError, match=r"^session_store: the Redis database 'two'") as caught:
        FCPlusMiddleware(lambda e, s: [], {**base, "session_store": "redis://:Sup3rSecret@h/two"})
    assert "Sup3rSecret" not in str(caught.value)
    with pytest.raises(ConfigError, match="unknown backend") as caught:
        FCPlusMiddleware(lambda e, s: [], {**base, "session_store": "mysql://:Sup3rSecret@h/db"})
    assert "Sup3rSecret" not in str(caught.value)


# -- the real middleware while Redis dies and comes back ----------------------------------------

@needs_redis
def test_middleware_survives_redis_restart(tmp_path: Path) -> None:
    from tests.support.devstack import dev_stack

    with redis_server(tmp_path / "redis", persistent=True) as server, \
            dev_stack(tmp_path, settings={"session_store": server.url("/0", prefix="e2e:")}) as stack:
        browser = stack.browser()
        page = browser.sign_in("/private/page")
        assert page.status_code == 200
        sub = page.json()["sub"]
        assert sub

        raw = server.client()
        assert sorted(key[:6] for key in raw.keys("e2e:*")) == [b"e2e:s:", b"e2e:u:"]  # session, used state
        keys = raw.keys("e2e:s:*")
        assert len(keys) == 1 and len(keys[0]) == len("e2e:s:") + 64
        cookie = browser.http.cookies.get("fcplus")
        assert cookie and cookie.encode() not in keys[0]  # addressed by a hash, not by the cookie
        sealed = raw.get(keys[0])
        assert sealed and sub.encode() not in sealed and b"access" not in sealed  # AES-GCM, not JSON
        # The Redis TTL is the lifetime the flow gives the entry: the idle timeout (plus the
        # flow's grace period for telling late users why their session ended, if any).
        lifetime = stack.middleware.settings.session_idle_timeout + getattr(flow_module, "EXPIRY_GRACE", 0)
        assert (lifetime - 10) * 1000 < raw.pttl(keys[0]) <= lifetime * 1000
        raw.close()

        server.kill()
        started = time.monotonic()
        down = browser.get("/private/page")
        assert time.monotonic() - started < 2.0
        assert down.status_code == 503
        assert down.headers["Content-Type"].startswith("text/html")
        assert "momentanément indisponible" in down.text and "Traceback" not in down.text
        assert down.headers.get("X-Correlation-ID")
        public = browser.get("/")
        assert public.status_code == 200 and public.json()["path"] == "/"  # public paths keep working
        stranger = stack.browser().get("/private/page")  # starting a login needs no store
        assert stranger.status_code == 302 and stranger.headers["Location"].startswith(stack.issuer)
        leaving = stack.browser()
        leaving.http.cookies.set("fcplus", cookie, domain="127.0.0.1", path="/")
        out = leaving.http.post(stack.base + "/oidc/logout", allow_redirects=False, timeout=10)
        assert out.status_code == 503 and "momentanément indisponible" in out.text
        assert "fcplus" not in leaving.http.cookies  # the cookie goes even though the entry cannot

        server.start()  # same port, same append-only file: the store is back...
        again = browser.get("/private/page")  # ...but the logout made during the outage holds
        assert again.status_code == 302 and again.headers["Location"].startswith(stack.issuer)
        assert server.client().keys("e2e:s:*") == []
        assert stack.browser().sign_in("/private/other").status_code == 200  # new logins work again


@needs_redis
def test_cluster_failover_of_a_master_is_followed_without_a_restart(tmp_path: Path) -> None:
    """Three masters and a replica of the first; the first master is killed, the cluster
    promotes its replica, and the same store object serves the replicated entries and takes
    writes again, every slot included, with no restart and the same URL."""
    with redis_cluster(tmp_path / "cluster") as nodes:
        first, replica = nodes[0], nodes[-1]
        store = open_store(f"redis+cluster://127.0.0.1:{first.port},127.0.0.1:{nodes[1].port}?timeout=0.5")
        keys = [f"s:{n}" for n in range(60)]  # spread over the three masters' slots
        for key in keys:
            store.put(key, key.encode(), 600)
        assert first.client().execute_command("WAIT", 1, 5000) == 1  # replicated before the crash
        first.kill()
        deadline = time.monotonic() + 30
        while replica.client().info("replication")["role"] != "master" or \
                b"cluster_state:ok" not in replica.client().execute_command("CLUSTER", "INFO"):
            assert time.monotonic() < deadline, "the cluster never promoted the replica"
            time.sleep(0.1)
        # The fault has cleared: the very next operations succeed.
        assert [store.get(key) for key in keys] == [key.encode() for key in keys]
        for key in keys:
            store.put(key, b"after", 600)
        assert {store.take(key) for key in keys} == {b"after"}
