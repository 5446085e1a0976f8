"""Hard deadlines for blocking socket I/O: when a call's deadline passes, its socket is shut down.

Socket timeouts bound each read, not a whole response: a provider that sends one byte per
second never trips them, and holds the calling thread for as long as it likes. Here one
daemon thread per process keeps every pending deadline in a heap; when one passes, it shuts
the call's socket down, which wakes the blocked read at once (end of file), and the caller
sees `Deadline.expired`. A call that ends first only marks its entry finished: starting and
finishing a deadline costs a heap push and two short lock holds, no thread switch. The thread
wakes at most every `GRANULARITY` seconds while deadlines are pending, and never when none are.
"""

from __future__ import annotations

import heapq
import itertools
import os
import socket
import threading
import time

# A deadline fires at most this late; it also caps the watchdog's wake-ups per second.
GRANULARITY = 0.05


class Deadline:
    """The end of one call; the socket it currently uses is shut down when it passes."""

    __slots__ = ("_finished", "_fired", "_sock", "_watchdog", "at")

    def __init__(self, at: float, watchdog: Watchdog) -> None:
        self.at = at
        self._watchdog = watchdog
        self._sock: socket.socket | None = None
        self._fired = False
        self._finished = False

    def remaining(self) -> float:
        return self.at - time.monotonic()

    @property
    def expired(self) -> bool:
        return self._fired or time.monotonic() >= self.at

    @property
    def fired(self) -> bool:
        """The watchdog shut the socket down: an end of file seen since then proves nothing."""
        return self._fired

    def attach(self, sock: socket.socket | None) -> None:
        """The socket the call now blocks on (a new or a pooled connection's)."""
        if sock is None:
            return
        with self._watchdog.lock:
            if self._finished:
                return
            self._sock = sock
            if self._fired:
                _shut(sock)

    def finish(self) -> None:
        """The call is over: from here on its socket, back in a pool, is never touched."""
        with self._watchdog.lock:
            self._finished = True
            self._sock = None

    def _fire(self) -> None:  # the watchdog thread, its lock held
        if self._finished:
            return
        self._fired = True
        if self._sock is not None:
            _shut(self._sock)


def _shut(sock: socket.socket) -> None:
    # socket.socket.shutdown, not SSLSocket's: the TLS layer may be in a read in another
    # thread, and the plain shutdown of the descriptor is what wakes that read.
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass  # already closed: nothing left to wake


class Watchdog:
    """The process's deadline keeper (see the module docstring)."""

    def __init__(self) -> None:
        self._setup()
        if hasattr(os, "register_at_fork"):
            # A forked worker inherits neither the thread nor a usable lock state.
            os.register_at_fork(after_in_child=self._setup)

    def _setup(self) -> None:
        self.lock = threading.Lock()
        self._wake = threading.Condition(self.lock)
        self._heap: list[tuple[float, int, Deadline]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def start(self, seconds: float) -> Deadline:
        deadline = Deadline(time.monotonic() + seconds, self)
        with self.lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="fcplus-deadlines", daemon=True)
                self._thread.start()
            heapq.heappush(self._heap, (deadline.at, next(self._seq), deadline))
            if self._heap[0][2] is deadline:
                self._wake.notify()
        return deadline

    def _run(self) -> None:
        with self.lock:
            while True:
                now = time.monotonic()
                while self._heap and self._heap[0][0] <= now:
                    heapq.heappop(self._heap)[2]._fire()
                if self._heap:
                    self._wake.wait(max(self._heap[0][0] - now, GRANULARITY))
                else:
                    self._wake.wait()


WATCHDOG = Watchdog()
