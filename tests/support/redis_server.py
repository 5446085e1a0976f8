"""Real redis-server processes for tests: one per fixture, on a free loopback port, in a
temporary directory, without persistence unless asked, killed afterwards.

Also a Sentinel (the same binary with --sentinel) watching one of them, a one-node Redis
Cluster, and a TLS server with a throw-away CA, so every URL form of the Redis store is
exercised against the real thing. Tests skip with a clear reason only when the
redis-server binary is absent (Debian package `redis-server`).
"""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.support.servers import free_port

REDIS_SERVER = shutil.which("redis-server")
SKIP_REASON = "redis-server is not installed (Debian package redis-server)"


def redis_available() -> bool:
    return REDIS_SERVER is not None


@dataclass
class TLSFiles:
    ca: Path
    cert: Path
    key: Path


def make_tls_files(folder: Path) -> TLSFiles:
    """A throw-away CA and a server certificate for 127.0.0.1 and localhost."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fcplus test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    files = TLSFiles(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()))
    return files


@dataclass
class RedisServer:
    """One redis-server process; `start` again after `kill` reuses the port and the data dir."""

    workdir: Path
    port: int
    lines: list[str]
    password: str | None = None
    tls: TLSFiles | None = None
    sentinel: bool = False
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def log(self) -> Path:
        return self.workdir / "redis.log"

    def url(self, path: str = "", scheme: str | None = None, **options: Any) -> str:
        """A session_store URL for this server, e.g. url("/2", prefix="app:")."""
        scheme = scheme or ("rediss" if self.tls else "redis")
        auth = f":{self.password}@" if self.password else ""
        query = "&".join(f"{k}={v}" for k, v in options.items())
        return f"{scheme}://{auth}127.0.0.1:{self.port}{path}" + (f"?{query}" if query else "")

    def client(self, db: int = 0) -> redis.Redis:
        """A plain redis-py client, to look at what the store wrote."""
        tls: dict[str, Any] = {"ssl": True, "ssl_ca_certs": str(self.tls.ca)} if self.tls else {}
        # No retries: the start-up probe polls by itself, and redis-py's default backoff
        # would turn each refused connection into seconds of waiting.
        return redis.Redis(host="127.0.0.1", port=self.port, db=db, password=self.password, socket_timeout=2,
                           socket_connect_timeout=2, retry=Retry(NoBackoff(), 0), **tls)

    def start(self, timeout: float = 10.0) -> None:
        assert REDIS_SERVER is not None, SKIP_REASON
        assert self.process is None or self.process.poll() is not None, "already running"
        config = self.workdir / ("sentinel.conf" if self.sentinel else "redis.conf")
        config.write_text("\n".join(self.lines) + "\n")
        args = [REDIS_SERVER, str(config)] + (["--sentinel"] if self.sentinel else [])
        self.process = subprocess.Popen(args, cwd=self.workdir, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        probe = self.client()
        try:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"redis-server exited with {self.process.returncode}: {self.tail()}")
                try:
                    if probe.ping():
                        return
                except (redis.RedisError, OSError):
                    pass
                if time.monotonic() > deadline:
                    self.kill()
                    raise RuntimeError(f"redis-server did not answer within {timeout} s: {self.tail()}")
                time.sleep(0.02)
        finally:
            probe.close()

    def kill(self) -> None:
        """SIGKILL: what a crash or an OOM kill looks like to the service."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def tail(self) -> str:
        try:
            return " | ".join(self.log.read_text(errors="replace").splitlines()[-8:])
        except OSError:
            return "(no log)"


def _base_lines(workdir: Path, port: int, persistent: bool, password: str | None,
                tls: TLSFiles | None) -> list[str]:
    lines = ["bind 127.0.0.1", "daemonize no", f"dir {workdir}", f"logfile {workdir / 'redis.log'}",
             'save ""', "databases 16"]
    if tls is not None:
        lines += ["port 0", f"tls-port {port}", f"tls-cert-file {tls.cert}", f"tls-key-file {tls.key}",
                  f"tls-ca-cert-file {tls.ca}", "tls-auth-clients no"]
    else:
        lines.append(f"port {port}")
    # appendfsync always: every acknowledged write is on disk, so a SIGKILL loses nothing.
    lines += ["appendonly yes", "appendfsync always"] if persistent else ["appendonly no"]
    if password:
        lines.append(f"requirepass {password}")
    return lines


@contextmanager
def redis_server(workdir: Path, *, persistent: bool = False, password: str | None = None,
                 extra: Sequence[str] = (), tls: bool = False, port: int | None = None) -> Iterator[RedisServer]:
    """Start a redis-server; `extra` adds config lines (e.g. 'rename-command GETDEL ""')."""
    workdir.mkdir(parents=True, exist_ok=True)
    tls_files = make_tls_files(workdir / "tls") if tls else None
    server = None
    for attempt in range(3):  # a free port can be taken between free_port() and bind
        chosen = port or free_port()
        server = RedisServer(workdir, chosen, _base_lines(workdir, chosen, persistent, password, tls_files)
                             + list(extra), password=password, tls=tls_files)
        try:
            server.start()
            break
        except RuntimeError:
            if attempt == 2 or port is not None:
                raise
    assert server is not None
    try:
        yield server
    finally:
        server.kill()


@contextmanager
def redis_sentinel(workdir: Path, master: RedisServer, service: str = "mymaster",
                   down_after_ms: int = 5000) -> Iterator[RedisServer]:
    """A Sentinel watching `master` under `service` (quorum 1), on its own free port.
    Replicas already attached to the master are known to it from its first INFO."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    lines = ["bind 127.0.0.1", f"port {port}", "daemonize no", f"dir {workdir}",
             f"logfile {workdir / 'redis.log'}", f"sentinel monitor {service} 127.0.0.1 {master.port} 1",
             f"sentinel down-after-milliseconds {service} {down_after_ms}",
             f"sentinel failover-timeout {service} {max(1000, 4 * down_after_ms)}"]
    if master.password:
        lines.append(f"sentinel auth-pass {service} {master.password}")
    sentinel = RedisServer(workdir, port, lines, sentinel=True)
    sentinel.start()
    try:
        probe = sentinel.client()
        deadline = time.monotonic() + 10
        while not probe.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", service):
            assert time.monotonic() < deadline, "sentinel never learned its master"
            time.sleep(0.05)
        probe.close()
        yield sentinel
    finally:
        sentinel.kill()


@contextmanager
def redis_cluster_node(workdir: Path, extra: Sequence[str] = ()) -> Iterator[RedisServer]:
    """A one-node Redis Cluster owning all 16384 slots: the real cluster protocol
    (CLUSTER SLOTS, MOVED handling in the client) at the cost of one process."""
    workdir.mkdir(parents=True, exist_ok=True)
    port, bus = free_port(), free_port()
    lines = [*_base_lines(workdir, port, False, None, None), "cluster-enabled yes",
             f"cluster-config-file {workdir / 'nodes.conf'}", f"cluster-port {bus}", "cluster-node-timeout 5000",
             *extra]
    node = RedisServer(workdir, port, lines)
    node.start()
    try:
        probe = node.client()
        probe.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
        deadline = time.monotonic() + 10
        while b"cluster_state:ok" not in probe.execute_command("CLUSTER", "INFO"):
            assert time.monotonic() < deadline, "the one-node cluster never reached cluster_state:ok"
            time.sleep(0.05)
        probe.close()
        yield node
    finally:
        node.kill()


@contextmanager
def redis_cluster(workdir: Path, masters: int = 3) -> Iterator[list[RedisServer]]:
    """A Redis Cluster of `masters` masters sharing the 16384 slots, plus one replica of the
    first master, so that killing that master makes the cluster promote the replica (node
    timeout 1 s). Yields [masters..., replica]."""
    workdir.mkdir(parents=True, exist_ok=True)
    nodes: list[RedisServer] = []
    buses: list[int] = []
    try:
        for index in range(masters + 1):
            folder = workdir / f"node{index}"
            folder.mkdir(exist_ok=True)
            port, bus = free_port(), free_port()
            buses.append(bus)
            node = RedisServer(folder, port, [
                *_base_lines(folder, port, False, None, None), "cluster-enabled yes",
                f"cluster-config-file {folder / 'nodes.conf'}", f"cluster-port {bus}", "cluster-node-timeout 1000",
                "cluster-replica-validity-factor 0", "repl-diskless-sync-delay 0"])
            node.start()
            nodes.append(node)
        clients = [node.client() for node in nodes]
        for client in clients[1:]:
            client.execute_command("CLUSTER", "MEET", "127.0.0.1", nodes[0].port, buses[0])
        share = 16384 // masters
        for index, client in enumerate(clients[:masters]):
            last = 16383 if index == masters - 1 else (index + 1) * share - 1
            client.execute_command("CLUSTER", "ADDSLOTSRANGE", index * share, last)
        first_id = clients[0].execute_command("CLUSTER", "MYID")
        first_id = first_id.decode() if isinstance(first_id, bytes) else first_id
        deadline = time.monotonic() + 20
        while True:  # the replica can follow the first master once every node knows it
            try:
                clients[-1].execute_command("CLUSTER", "REPLICATE", first_id)
                break
            except redis.ResponseError:
                assert time.monotonic() < deadline, "the replica never learned of its master"
                time.sleep(0.05)
        while not (all(b"cluster_state:ok" in c.execute_command("CLUSTER", "INFO") for c in clients)
                   and clients[0].info("replication").get("connected_slaves") == 1):
            assert time.monotonic() < deadline, "the cluster never reached cluster_state:ok with its replica"
            time.sleep(0.05)
        for client in clients:
            client.close()
        yield nodes
    finally:
        for node in nodes:
            node.kill()
