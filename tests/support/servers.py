"""Real loopback HTTP servers for tests: waitress in a background thread.

Tests talk to the middleware and providers over real sockets, as a browser would,
so redirects, cookies and the provider's re-entrant jwks fetch are all exercised.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from waitress.server import create_server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LateApp:
    """A WSGI app whose target is set after the server is bound.

    The provider needs the service's URL and the service needs the provider's issuer,
    so servers are started first and their apps plugged in afterwards.
    """

    def __init__(self) -> None:
        self.app: Any = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if self.app is None:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"not ready"]
        return self.app(environ, start_response)


@contextmanager
def serve_wsgi(app: Any, port: int | None = None, threads: int = 8) -> Iterator[str]:
    """Serve `app` on 127.0.0.1 in a thread; yields the base URL (no trailing slash)."""
    server = create_server(app, host="127.0.0.1", port=port or 0, threads=threads, ident="test")
    bound_port = server.socket.getsockname()[1]
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{bound_port}"
    finally:
        def stop() -> None:
            # Runs in the loop's own thread (through its trigger), so the loop finds its map
            # empty at once instead of after its 1 s poll timeout. Keep-alive connections
            # would keep it running: close them too.
            for channel in list(getattr(server, "_map", {}).values()):
                if channel is not server and channel is not server.trigger:
                    try:
                        channel.close()
                    except OSError:
                        pass
            try:
                server.close()
            except OSError:
                pass
        try:
            server.trigger.pull_trigger(stop)
        except OSError:
            # The trigger pipe is already closed (its fd was hung up under it): close from
            # here; the loop then ends at its next poll timeout.
            stop()
        thread.join(timeout=5)
        if thread.is_alive():  # the loop did not run the thunk: close from here
            stop()
            thread.join(timeout=5)
        server.task_dispatcher.shutdown(timeout=0.2)
