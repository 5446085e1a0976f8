"""Redis store: sessions and pending logins shared by every process and host of a service.

Entries live under a key prefix with a Redis TTL equal to their lifetime (SET ... PX), so
Redis itself forgets expired sessions and no purge job is needed. `take` is one atomic
GETDEL (Redis >= 6.2), or a MULTI/EXEC GET+DEL transaction on older servers, so a state
value can be redeemed once even when two workers race for it.

Every Redis failure becomes a StoreError: the middleware answers a 503 page on protected
paths, keeps public paths working, and recovers by itself when Redis comes back, because
connections are pooled, health-checked and reopened on demand. Timeouts are short (2 s by
default) so a dead or blackholed Redis costs a user a quick error page, not a hung worker.
The client is built lazily, so the service starts even when Redis is down.

URL syntax (see docs/session-stores.md):

    redis://[[user]:password@]host[:port][/db][?option=value&...]
    rediss://...                                  (TLS, certificate and host name verified)
    redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/service_name[/db][?...]
    redis+cluster://[[user]:password@]host[:port][,host[:port]...][?...]
    rediss+sentinel://..., rediss+cluster://...   (the same over TLS)

Options: prefix, timeout, connect_timeout, health_check_interval, max_connections,
ssl_ca_certs, ssl_certfile, ssl_keyfile, sentinel_username, sentinel_password.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote

import redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisClusterException, RedisError, ResponseError
from redis.retry import Retry

from .base import StoreError, fork_generation, set_aside
from .deferred import DeferredDeletes

SCHEMES = {
    "redis": ("standalone", False), "rediss": ("standalone", True),
    "redis+sentinel": ("sentinel", False), "rediss+sentinel": ("sentinel", True),
    "redis+cluster": ("cluster", False), "rediss+cluster": ("cluster", True),
}
DEFAULT_PREFIX = "fcplus:"
DEFAULT_TIMEOUT = 2.0
DEFAULT_HEALTH_CHECK_INTERVAL = 15
DEFAULT_MAX_CONNECTIONS = 50
_DEFAULT_PORTS = {"standalone": 6379, "sentinel": 26379, "cluster": 6379}
_OPTIONS = frozenset({"prefix", "timeout", "connect_timeout", "health_check_interval", "max_connections",
                      "ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "sentinel_username", "sentinel_password"})
_T = TypeVar("_T")


@dataclass(frozen=True)
class RedisConfig:
    """A parsed session_store Redis URL; the repr never shows the passwords."""

    kind: str  # "standalone" | "sentinel" | "cluster"
    tls: bool
    hosts: tuple[tuple[str, int], ...]
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    service_name: str | None = None
    prefix: str = DEFAULT_PREFIX
    timeout: float = DEFAULT_TIMEOUT
    connect_timeout: float = DEFAULT_TIMEOUT
    health_check_interval: int = DEFAULT_HEALTH_CHECK_INTERVAL
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    ssl_ca_certs: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    sentinel_username: str | None = None
    sentinel_password: str | None = field(default=None, repr=False)

    def describe(self) -> str:
        """Where the store points, for logs and error messages: no credentials."""
        hosts = ",".join(_join_host(h, p) for h, p in self.hosts)
        where = f"{self.kind} {'TLS ' if self.tls else ''}{hosts}"
        if self.service_name:
            where += f" service {self.service_name}"
        return f"Redis {where} db {self.db} prefix {self.prefix!r}"


def _join_host(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _split_host(item: str, default_port: int) -> tuple[str, int]:
    item = unquote(item.strip())
    if item.startswith("["):  # [ipv6]:port
        host, _, rest = item[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ("" if not rest else None)
        if port_text is None:
            raise StoreError(f"the Redis host {item!r} is not host[:port]")
    elif item.count(":") == 1:
        host, port_text = item.split(":")
    elif ":" in item:
        raise StoreError(f"the Redis host {item!r} is an IPv6 address: write it as [address]:port")
    else:
        host, port_text = item, ""
    if not host or any(c.isspace() or c in "/?#@" for c in host):
        raise StoreError(f"the Redis host {item!r} is not a valid host name or address")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise StoreError(f"the Redis port in {item!r} is not a number between 1 and 65535")
    return host, int(port_text)


def _number(name: str, text: str, low: float, high: float) -> float:
    try:
        value = float(text)
    except ValueError:
        raise StoreError(f"the Redis URL option {name}={text!r} is not a number") from None
    if not (math.isfinite(value) and low <= value <= high):
        raise StoreError(f"the Redis URL option {name}={text!r} must be between {low:g} and {high:g}")
    return value


def _whole(name: str, text: str, low: int, high: int) -> int:
    if not text.isdigit() or not low <= int(text) <= high:
        raise StoreError(f"the Redis URL option {name}={text!r} must be a whole number between {low} and {high}")
    return int(text)


def _db(text: str) -> int:
    if not text.isdigit() or int(text) > 100_000:
        raise StoreError(f"the Redis database {text!r} must be a number such as 0 or 2")
    return int(text)


def parse_redis_url(url: str) -> RedisConfig:
    """Parse and check a Redis session_store URL once, at start-up.

    Errors name the part of the URL at fault but never repeat the URL itself, which may
    hold a password.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in SCHEMES:
        raise StoreError(f"the URL scheme {scheme!r} is not one of {', '.join(s + '://' for s in SCHEMES)}")
    kind, tls = SCHEMES[scheme.lower()]
    if "#" in rest:
        raise StoreError("a Redis URL must not contain '#'; percent-encode it (%23) inside a password")
    rest, _, query = rest.partition("?")
    netloc, slash, path = rest.partition("/")
    userinfo, at, hostlist = netloc.rpartition("@")
    username = password = None
    if at:
        user_text, colon, pass_text = userinfo.partition(":")
        username = unquote(user_text) or None
        password = unquote(pass_text) if colon else None
    if not hostlist:
        raise StoreError("the Redis URL names no host")
    hosts = tuple(_split_host(item, _DEFAULT_PORTS[kind]) for item in hostlist.split(","))
    if kind == "standalone" and len(hosts) != 1:
        raise StoreError("a redis:// URL names exactly one host; use redis+sentinel:// or redis+cluster:// for several")

    segments = [unquote(s) for s in path.split("/")] if slash else []
    if segments and segments[-1] == "":
        segments.pop()
    db, service_name = 0, None
    if kind == "standalone":
        if len(segments) > 1:
            raise StoreError("the path of a redis:// URL is only the database number, as in /2")
        db = _db(segments[0]) if segments else 0
    elif kind == "sentinel":
        if not segments or not segments[0] or len(segments) > 2:
            raise StoreError("a redis+sentinel:// URL needs the master's service name as its path, "
                             "as in /mymaster or /mymaster/2")
        service_name = segments[0]
        db = _db(segments[1]) if len(segments) == 2 else 0
    else:
        if segments and segments != ["0"]:
            raise StoreError("Redis Cluster has only database 0; remove the path from the redis+cluster:// URL")

    try:
        options = parse_qs(query, keep_blank_values=True, strict_parsing=bool(query), max_num_fields=20)
    except ValueError:
        raise StoreError("the query string of the Redis URL is malformed") from None
    for name, values in options.items():
        if name not in _OPTIONS:
            raise StoreError(f"the Redis URL option {name!r} is unknown (known: {', '.join(sorted(_OPTIONS))})")
        if len(values) > 1:
            raise StoreError(f"the Redis URL option {name!r} is given more than once")
    opt = {name: values[0] for name, values in options.items()}

    prefix = opt.get("prefix", DEFAULT_PREFIX)
    if len(prefix) > 128 or not prefix.isprintable() or any(c.isspace() for c in prefix):
        raise StoreError("the Redis URL option prefix must be at most 128 printable characters without spaces")
    timeout = _number("timeout", opt["timeout"], 0.01, 60) if "timeout" in opt else DEFAULT_TIMEOUT
    connect_timeout = _number("connect_timeout", opt["connect_timeout"], 0.01, 60) if "connect_timeout" in opt \
        else timeout
    health = _whole("health_check_interval", opt["health_check_interval"], 0, 3600) \
        if "health_check_interval" in opt else DEFAULT_HEALTH_CHECK_INTERVAL
    max_connections = _whole("max_connections", opt["max_connections"], 1, 10_000) \
        if "max_connections" in opt else DEFAULT_MAX_CONNECTIONS
    files: dict[str, str | None] = {}
    for name in ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile"):
        value = opt.get(name)
        if value is not None and not tls:
            raise StoreError(f"the Redis URL option {name} needs a TLS URL (rediss://)")
        if value is not None and not Path(value).is_file():
            raise StoreError(f"the Redis URL option {name} names {value}, which is not a readable file")
        files[name] = value
    if bool(files["ssl_certfile"]) != bool(files["ssl_keyfile"]):
        raise StoreError("the Redis URL options ssl_certfile and ssl_keyfile go together (client certificate)")
    for name in ("sentinel_username", "sentinel_password"):
        if name in opt and kind != "sentinel":
            raise StoreError(f"the Redis URL option {name} only applies to redis+sentinel:// URLs")
    return RedisConfig(
        kind=kind, tls=tls, hosts=hosts, db=db, username=username, password=password, service_name=service_name,
        prefix=prefix, timeout=timeout, connect_timeout=connect_timeout, health_check_interval=health,
        max_connections=max_connections, ssl_ca_certs=files["ssl_ca_certs"], ssl_certfile=files["ssl_certfile"],
        ssl_keyfile=files["ssl_keyfile"], sentinel_username=opt.get("sentinel_username"),
        sentinel_password=opt.get("sentinel_password"))


def _retry() -> Retry:
    """One quick retry on a broken connection: after a Redis restart the pooled sockets are
    dead, and the retry opens a fresh one, so users see no error once Redis is back.
    Timeouts are not retried: they already cost a full `timeout`."""
    return Retry(ExponentialBackoff(cap=0.1, base=0.02), 1, supported_errors=(redis.ConnectionError,))


def _tls_kwargs(config: RedisConfig) -> dict[str, Any]:
    if not config.tls:
        return {}
    # Explicit, because older redis-py releases did not check the host name by default.
    return {"ssl": True, "ssl_cert_reqs": "required", "ssl_check_hostname": True,
            "ssl_ca_certs": config.ssl_ca_certs, "ssl_certfile": config.ssl_certfile,
            "ssl_keyfile": config.ssl_keyfile}


def build_client(config: RedisConfig) -> Any:
    """The redis-py client for a configuration. Standalone and Sentinel clients connect on
    first use; a cluster client discovers the cluster here, so callers build it lazily."""
    common: dict[str, Any] = {
        "username": config.username, "password": config.password,
        "socket_timeout": config.timeout, "socket_connect_timeout": config.connect_timeout,
        "socket_keepalive": True, "max_connections": config.max_connections,
        "client_name": "fcplus-wsgi", **_tls_kwargs(config),
    }
    if config.kind == "cluster":
        from redis.cluster import ClusterNode, RedisCluster
        return RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in config.hosts], retry=_retry(),
                            require_full_coverage=True, **common)
    common.update(retry=_retry(), retry_on_error=[redis.ConnectionError],
                  health_check_interval=config.health_check_interval)
    if config.kind == "standalone":
        host, port = config.hosts[0]
        return redis.Redis(host=host, port=port, db=config.db, **common)
    from redis.sentinel import Sentinel
    sentinel_kwargs: dict[str, Any] = {
        "username": config.sentinel_username, "password": config.sentinel_password,
        "socket_timeout": config.timeout, "socket_connect_timeout": config.connect_timeout,
        **_tls_kwargs(config)}
    sentinel = Sentinel(list(config.hosts), sentinel_kwargs=sentinel_kwargs, **common)
    assert config.service_name is not None
    return sentinel.master_for(config.service_name, db=config.db)


class _ReadConnections:
    """Connections kept for GET, the one command every signed-in request sends.

    Why not the client's pool for it: for each command, redis-py's pool reads the process
    id twice and probes the socket for unread bytes (four system calls in all) and records
    pool metrics. On loopback that is about 35 µs of CPU on top of a GET that costs about
    50 µs when sent and read directly (docs/benchmarks.md, part 1). Safety does not rest on
    that probe here: a connection serves one GET and its reply at a time, and redis-py
    disconnects it on any error or interruption while sending or reading, so no reply is
    ever left unread for the next request. Connections are redis-py's own, made from the
    pool's settings (TLS, password, database, timeouts, health checks, client name).
    """

    def __init__(self, pool: Any, limit: int) -> None:
        self._pool = pool
        self._idle: list[Any] = []
        self._made: list[Any] = []
        self._limit = limit
        self._lock = threading.Lock()
        self.closed = False
        self.generation = fork_generation()  # a forked child sets these aside (stores.base)

    def _take(self) -> Any:
        try:
            return self._idle.pop()  # atomic: no lock on the usual path
        except IndexError:
            pass
        with self._lock:
            if len(self._made) >= self._limit:
                return None  # as many as max_connections: the pool serves the rest
            conn = self._pool.connection_class(**self._pool.connection_kwargs)
            self._made.append(conn)
            return conn

    def get(self, name: str) -> tuple[bool, Any]:
        """(True, the value) or (False, None) when no connection is free; redis-py errors
        propagate, after one retry on a fresh connection for a connection that broke (a
        Redis restart leaves every kept socket dead), as the pool's Retry does."""
        conn = self._take()
        if conn is None:
            return False, None
        try:
            try:
                conn.send_command("GET", name)
                return True, conn.read_response()
            except redis.ConnectionError:
                conn.disconnect()
                conn.send_command("GET", name)
                return True, conn.read_response()
        except BaseException:
            conn.disconnect()  # redis-py did already, except between send and read
            raise
        finally:
            if self.closed:
                conn.disconnect()
            else:
                self._idle.append(conn)

    def close(self) -> None:
        self.closed = True
        with self._lock:
            made, self._made, self._idle = self._made, [], []
        for conn in made:
            try:
                conn.disconnect()
            except (RedisError, OSError):
                pass


class RedisStore:
    """The Store interface over Redis; see the module docstring for the guarantees."""

    def __init__(self, url: str | RedisConfig, *, client_factory: Callable[[RedisConfig], Any] = build_client) -> None:
        self.config = url if isinstance(url, RedisConfig) else parse_redis_url(url)
        self._factory = client_factory
        self._client: Any = None
        self._lock = threading.Lock()
        self._getdel = True  # cleared once the server says it lacks GETDEL (Redis < 6.2)
        self._reads: _ReadConnections | None = None
        self._plain: bool | None = None  # None: not known yet; False: cluster, Sentinel or injected client
        self._owed = DeferredDeletes()  # deletions refused during an outage, done once Redis answers

    def __repr__(self) -> str:
        return f"<RedisStore {self.config.describe()}>"

    def _name(self, key: str) -> str:
        return self.config.prefix + key

    def _conn(self) -> Any:
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._factory(self.config)
                client = self._client
        return client

    def _run(self, op: str, action: Callable[[Any], _T]) -> _T:
        try:
            return action(self._conn())
        except (RedisError, RedisClusterException, OSError) as exc:
            raise self._error(op, exc) from None

    def _error(self, op: str, exc: BaseException) -> StoreError:
        text = " ".join(str(exc).split())[:200]
        return StoreError(f"{self.config.describe()}: {op} failed ({exc.__class__.__name__}: {text})")

    def _readers(self) -> _ReadConnections | None:
        """The kept read connections of this process, made on first use (and after a fork)."""
        client = self._conn()
        with self._lock:
            if self._reads is not None and self._reads.generation != fork_generation():
                set_aside(self._reads)
                self._reads = None
            if self._reads is None and self._plain is not False:
                pool = getattr(client, "connection_pool", None)
                self._plain = type(client) is redis.Redis and type(pool) is redis.ConnectionPool
                if self._plain:
                    self._reads = _ReadConnections(pool, self.config.max_connections)
            return self._reads

    @staticmethod
    def _bytes(value: Any) -> bytes | None:
        if value is None or isinstance(value, bytes):
            return value
        raise StoreError(f"Redis returned a {type(value).__name__} where bytes were expected")

    def get(self, key: str) -> bytes | None:
        if self._owed:
            self._owed.flush(self._delete_now)
            if key in self._owed:
                return None
        name = self.config.prefix + key
        reads = self._reads
        if (reads is None or reads.generation != fork_generation()) and self._plain is not False:
            try:
                reads = self._readers()  # builds the client: a cluster client connects here
            except (RedisError, RedisClusterException, OSError) as exc:
                raise self._error("GET", exc) from None
        if reads is not None:
            try:
                served, value = reads.get(name)
            except (RedisError, OSError) as exc:
                raise self._error("GET", exc) from None
            if served:
                return self._bytes(value)
        return self._bytes(self._run("GET", lambda c: c.get(name)))

    def put(self, key: str, value: bytes, ttl: float) -> None:
        if not math.isfinite(ttl):
            raise ValueError("ttl must be a finite number of seconds")
        if self._owed:
            self._owed.flush(self._delete_now)
        name = self._name(key)
        milliseconds = math.ceil(ttl * 1000)
        if milliseconds <= 0:  # already expired: Redis refuses PX 0, and the old value must go
            self._run("DEL", lambda c: c.delete(name))
            return
        self._run("SET", lambda c: c.set(name, value, px=milliseconds))
        if self._owed:
            self._owed.forget(key)

    def take(self, key: str) -> bytes | None:
        if self._owed:
            self._owed.flush(self._delete_now)
        try:
            return self._take(key)
        except StoreError:
            self._owed.add(key)  # a logout during the outage: the entry goes as soon as Redis answers
            raise

    def _take(self, key: str) -> bytes | None:
        name = self._name(key)
        if self._getdel:
            try:
                return self._bytes(self._run("GETDEL", lambda c: _getdel(c, name)))
            except _NoGetdel:
                self._getdel = False
        return self._bytes(self._run("MULTI GET DEL", lambda c: _get_then_delete(c, name)))

    def delete(self, key: str) -> None:
        if self._owed:
            self._owed.flush(self._delete_now)
        try:
            self._delete_now(key)
        except StoreError:
            self._owed.add(key)
            raise

    def _delete_now(self, key: str) -> None:
        self._run("DEL", lambda c: c.delete(self._name(key)))

    def ping(self) -> None:
        """Raise StoreError unless Redis answers; for readiness checks and `fcplus-wsgi check`."""
        self._run("PING", lambda c: c.ping())

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
            reads, self._reads, self._plain = self._reads, None, None
        if reads is not None:
            reads.close()
        if client is not None:
            try:
                client.close()
            except (RedisError, RedisClusterException, OSError):
                pass  # closing a broken connection has nothing left to release


class _NoGetdel(Exception):
    """The server does not know GETDEL (Redis < 6.2, or the command was renamed away)."""


def _getdel(client: Any, name: str) -> Any:
    try:
        return client.getdel(name)
    except ResponseError as exc:
        if "unknown command" in str(exc).lower():
            raise _NoGetdel from None
        raise


def _get_then_delete(client: Any, name: str) -> Any:
    """GET and DEL in one MULTI/EXEC transaction: no other client runs between them."""
    pipe = client.pipeline(transaction=True)
    try:
        pipe.get(name)
        pipe.delete(name)
        value, _deleted = pipe.execute()
    finally:
        pipe.reset()
    return value
