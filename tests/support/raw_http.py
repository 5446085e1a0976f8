"""Loopback HTTP servers that misbehave below HTTP: they drip an answer one byte at a time,
or reset a connection, which no WSGI server can be made to do.

Each connection runs a scripted `Answer`: read the request, then send bytes at a chosen pace
or reset. The server counts connections, so a test can tell a retry from a single attempt.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


def http_response(body: bytes, content_type: str = "application/json", status: str = "200 OK",
                  headers: dict[str, str] | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status}", f"Content-Type: {content_type}", f"Content-Length: {len(body)}",
             "Connection: close", *(f"{k}: {v}" for k, v in (headers or {}).items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def json_answer(doc: Any) -> bytes:
    return http_response(json.dumps(doc).encode())


@dataclass
class Answer:
    """What one connection gets: `reset`, or `data`: its first `at_once` bytes at once, the
    rest in pieces of `piece` bytes every `interval` seconds (0: all at once)."""

    data: bytes = b""
    interval: float = 0.0
    piece: int = 1
    at_once: int = 0
    reset: bool = False


@dataclass
class RawServer:
    url: str
    answers: Callable[[int], Answer]
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    # When each dripping connection was closed by the client (seconds after it connected).
    closed_after: list[float] = field(default_factory=list)


def _read_request(conn: socket.socket) -> bytes:
    conn.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            want = int(line.split(b":", 1)[1])
            while len(body) < want:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                body += chunk
    return head + b"\r\n\r\n" + body


def _serve_one(server: RawServer, conn: socket.socket, index: int) -> None:
    started = time.monotonic()
    try:
        server.requests.append(_read_request(conn))
        answer = server.answers(index)
        if answer.reset:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return
        if answer.interval <= 0:
            conn.sendall(answer.data)
            return
        conn.sendall(answer.data[:answer.at_once])
        for start in range(answer.at_once, len(answer.data), answer.piece):
            if server.stop.wait(answer.interval):
                return
            conn.sendall(answer.data[start:start + answer.piece])
    except OSError:  # the client gave up: that is what a drip test wants to see
        server.closed_after.append(time.monotonic() - started)
    finally:
        conn.close()


@contextmanager
def raw_server(answers: Callable[[int], Answer]) -> Iterator[RawServer]:
    """Serve on 127.0.0.1; `answers(n)` scripts the n-th connection (0-based)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(0.05)
    server = RawServer(url=f"http://127.0.0.1:{listener.getsockname()[1]}", answers=answers)
    lock = threading.Lock()

    def run() -> None:
        while not server.stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with lock:
                index = server.connections
                server.connections += 1
            threading.Thread(target=_serve_one, args=(server, conn, index), daemon=True).start()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stop.set()
        thread.join(timeout=5)
        listener.close()


def drip(data: bytes, interval: float = 1.0, *, head_at_once: bool = False) -> Callable[[int], Answer]:
    """Every connection gets `data` one byte per `interval` seconds (after the response head,
    sent at once, when `head_at_once`)."""
    at_once = data.index(b"\r\n\r\n") + 4 if head_at_once else 0
    return lambda index: Answer(data=data, interval=interval, at_once=at_once)
