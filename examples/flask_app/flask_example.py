"""A Flask application behind the fcplus filter in a Paste pipeline.

Flask sees the verified identity in `request.environ` (`fcplus_wsgi.identity`); the sign-in,
the session cookie and step-up are the filter's business, configured in development.ini.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, abort, render_template, request
from markupsafe import Markup

from fcplus_wsgi import identity, login_url, logout_form

app = Flask(__name__)


def _page(page: str) -> Any:
    user = identity(request.environ)
    if page != "home" and user is None:
        abort(404)  # unreachable behind the filter; fail closed anyway
    # The filter's paths come from the environ, so the ini may move them freely.
    response = app.make_response(render_template(
        "page.html", page=page, user=user, login_url=login_url(request.environ, "/private/"),
        # logout_form escapes everything it inserts, so its HTML may be marked safe.
        logout_form=Markup(logout_form(request.environ, label="Se déconnecter / Sign out"))))  # noqa: S704
    response.headers["Cache-Control"] = "no-store"
    return response


@app.route("/")
def home() -> Any:
    return _page("home")


@app.route("/private/")
def private() -> Any:
    return _page("private")


@app.route("/vault/")
def vault() -> Any:
    return _page("vault")


def app_factory(global_conf: dict[str, Any], **local_conf: Any) -> Flask:
    """paste.app_factory: `use = call:flask_example:app_factory`."""
    return app
