"""The demo application: a page that shows the verified identity, and a public home.

It is deliberately framework-free so it shows exactly what any WSGI app receives.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Iterable
from typing import Any

from .identity import identity

_PAGE = """<!doctype html>
<html lang="fr"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>body{{font-family:Arial,sans-serif;max-width:48rem;margin:2rem auto;padding:0 1rem;line-height:1.5}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}}
a.button{{background:#000091;color:#fff;padding:.5rem 1rem;text-decoration:none}}</style></head>
<body>{body}</body></html>"""


def _rows(data: Any) -> str:
    return "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(json.dumps(v, ensure_ascii=False))}</td></tr>"
                   for k, v in sorted(dict(data).items()))


def demo_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "/")
    user = identity(environ)
    login = environ.get("fcplus_demo.login_path", "/oidc/login")
    logout = environ.get("fcplus_demo.logout_path", "/oidc/logout")
    if path == "/":
        if user:
            body = (f"<h1>Démo fcplus-wsgi</h1><p>Connecté (niveau {html.escape(str(user.acr))}). "
                    f"<a href='/private/'>Voir l'identité vérifiée</a> · <a href='{logout}'>Se déconnecter</a></p>")
        else:
            body = ("<h1>Démo fcplus-wsgi</h1><p>Page publique. / Public page.</p>"
                    f"<p><a class='button' href='{login}?return_to=/private/'>"
                    "S'identifier avec FranceConnect+ (développement)</a></p>"
                    "<p>Ou ouvrez / or open <a href='/private/'>/private/</a>, une page protégée / a protected page.</p>")
        status = "200 OK"
    elif path.startswith("/private"):
        if user is None:  # cannot happen behind the middleware; fail closed if it is missing
            body, status = "<h1>403</h1>", "403 Forbidden"
        else:
            body = (f"<h1>Identité vérifiée / Verified identity</h1>"
                    f"<p>sub : <code>{html.escape(user.sub)}</code> · acr : <code>{html.escape(str(user.acr))}</code>"
                    f" · amr : <code>{html.escape(' '.join(user.amr))}</code></p>"
                    f"<h2>userinfo</h2><table id='claims'>{_rows(user.claims)}</table>"
                    f"<h2>id_token</h2><table id='id-token-claims'>{_rows(user.id_token_claims)}</table>"
                    f"<p><a class='button' href='{logout}'>Se déconnecter / Sign out</a> · <a href='/'>Accueil</a></p>")
            status = "200 OK"
    else:
        body, status = "<h1>404</h1>", "404 Not Found"
    data = _PAGE.format(title="Démo fcplus-wsgi", body=body).encode()
    start_response(status, [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(data))),
                            ("Cache-Control", "no-store")])
    return [data]


def app_factory(global_conf: dict[str, Any], **local_conf: Any) -> Callable[..., Iterable[bytes]]:
    """paste.app_factory for `use = egg:fcplus_wsgi#demo`."""
    return demo_app
