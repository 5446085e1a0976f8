"""Paste Deploy entry points: `use = egg:fcplus_wsgi#fcplus` in a [filter:...] section.

A configuration error must stop the server with one sentence, not a traceback buried in
a Paste stack: ConfigError messages say which key is wrong and how to fix it.
"""

from __future__ import annotations

from typing import Any

from .middleware import FCPlusMiddleware, WSGIApp


def filter_app_factory(app: WSGIApp, global_conf: dict[str, Any], **local_conf: Any) -> FCPlusMiddleware:
    """paste.filter_app_factory: the local section's keys are the settings."""
    return FCPlusMiddleware(app, local_conf)
