"""Paste Deploy entry points: `use = egg:fcplus_wsgi#fcplus` in a [filter:...] section.

A configuration error must stop the server with one sentence, not a traceback buried in
a Paste stack: under pserve, gunicorn --paste or uwsgi --paste the factory runs at boot,
so a ConfigError becomes SystemExit with the sentence, which Python prints alone.
Code that builds the middleware itself (FCPlusMiddleware, make_middleware) still gets
the ConfigError to handle as it likes.
"""

from __future__ import annotations

from typing import Any

from .middleware import FCPlusMiddleware, WSGIApp
from .settings import ConfigError


def filter_app_factory(app: WSGIApp, global_conf: dict[str, Any], **local_conf: Any) -> FCPlusMiddleware:
    """paste.filter_app_factory: the local section's keys are the settings."""
    try:
        return FCPlusMiddleware(app, local_conf)
    except ConfigError as exc:
        raise SystemExit(f"fcplus-wsgi: configuration error: {exc}") from None
