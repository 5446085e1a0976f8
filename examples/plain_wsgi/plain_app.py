"""A bare WSGI application behind the fcplus filter in a Paste pipeline.

It never handles the sign-in: the filter does, and hands over the verified identity in
the environ (`fcplus_wsgi.identity(environ)`, also REMOTE_USER). Paths the filter does
not protect reach the app anonymously.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable
from typing import Any

from fcplus_wsgi import identity, login_url, logout_form

PAGE = """<!doctype html><html lang="fr"><head><meta charset="utf-8"><title>{title}</title></head>
<body><nav><a href="/">Accueil</a> · <a href="/private/">Mon identité</a> · <a href="/vault/">Coffre-fort (eidas3)</a></nav>
{body}</body></html>"""


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    user = identity(environ)
    path = environ.get("PATH_INFO", "/")
    # The filter's paths come from the environ, so the ini may move them freely.
    sign_out = logout_form(environ, label="Se déconnecter / Sign out")
    if path == "/":
        body = ("<h1>Exemple WSGI</h1>" + (
            f"<p id='greeting'>Connecté (niveau {html.escape(str(user.acr))}).</p>{sign_out}"
            if user else
            f"<p>Page publique. <a id='login' href='{html.escape(login_url(environ, '/private/'))}'>"
            "S'identifier avec FranceConnect+</a></p>"))
        status = "200 OK"
    elif user is not None and path.startswith(("/private", "/vault")):
        rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
                       for k, v in sorted(user.claims.items()))
        title = "Coffre-fort" if path.startswith("/vault") else "Identité vérifiée"
        body = (f"<h1 id='title'>{title}</h1><p>acr : <code id='acr'>{html.escape(str(user.acr))}</code></p>"
                f"<table id='claims'>{rows}</table>{sign_out}")
        status = "200 OK"
    else:  # unreachable for protected paths behind the filter; fail closed anyway
        body, status = "<h1>Introuvable / Not found</h1>", "404 Not Found"
    data = PAGE.format(title="Exemple WSGI + FranceConnect+", body=body).encode()
    start_response(status, [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(data))),
                            ("Cache-Control", "no-store")])
    return [data]


def app_factory(global_conf: dict[str, Any], **local_conf: Any) -> Callable[..., Iterable[bytes]]:
    """paste.app_factory: `use = call:plain_app:app_factory`."""
    return app
