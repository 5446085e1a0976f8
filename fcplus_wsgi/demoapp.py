"""The demo application: a public home with the platform's button, and a page that shows the
verified identity.

It is deliberately framework-free so it shows exactly what any WSGI app receives, and it
looks like a French public service's page (the DSFR's colours, spacing and type scale,
mobile first) without the State's brand marks, which only State services may show. Its
stylesheets are served by the demo itself, under a strict CSP, as a real service would.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Iterable
from importlib import resources
from typing import Any

from .buttons import button_css, login_button
from .identity import identity
from .links import MIDDLEWARE_KEY, logout_url

_PAGE = """<!doctype html>
<html lang="fr"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} — Démo fcplus-wsgi</title>
<link rel="stylesheet" href="/static/demo.css"><link rel="stylesheet" href="/static/fcplus-buttons.css">
</head><body>
<a class="skip" href="#contenu">Aller au contenu</a>
<header class="site"><div class="wrap"><p class="service"><a href="/">Démo fcplus-wsgi</a></p>
<p class="tagline">Service de démonstration de la connexion {platform}</p>{account}</div></header>
<p class="notice"><span class="wrap">Démonstration : les identités viennent d'un fournisseur de développement local,
aucune donnée réelle n'est utilisée.</span></p>
<main id="contenu" class="wrap">{body}</main>
<footer class="site"><div class="wrap"><p>fcplus-wsgi · {provider}</p></div></footer>
</body></html>"""

_HEADERS = [
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; "
                                "base-uri 'none'; form-action 'self'"),
]


def _rows(data: Any) -> str:
    return "".join(f"<div><dt>{html.escape(str(k))}</dt><dd>{html.escape(json.dumps(v, ensure_ascii=False))}</dd></div>"
                   for k, v in sorted(dict(data).items()))


def _static(name: str) -> bytes:
    return resources.files("fcplus_wsgi").joinpath("static").joinpath(name).read_bytes()


def _provider(environ: dict[str, Any]) -> tuple[str, str]:
    """The platform's name for the page and the provider actually talked to, for the footer."""
    middleware = environ.get(MIDDLEWARE_KEY)
    if middleware is None:
        return "OpenID Connect", "fournisseur inconnu"
    s = middleware.settings
    label = str(s.preset.label).split(" (")[0] or "OpenID Connect"
    return label, f"{s.preset.label} · {s.issuer}"


def demo_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "/")
    if path in ("/static/demo.css", "/static/fcplus-buttons.css"):
        data = button_css().encode() if path.endswith("buttons.css") else _static("demo.css")
        start_response("200 OK", [("Content-Type", "text/css; charset=utf-8"), ("Content-Length", str(len(data))),
                                  ("Cache-Control", "public, max-age=300"), ("X-Content-Type-Options", "nosniff")])
        return [data]
    user = identity(environ)
    platform, provider = _provider(environ)
    title = "Accueil"
    if path == "/":
        if user:
            body = (f"<h1>Vous êtes connecté·e</h1><p>Niveau de garantie : <strong>{html.escape(str(user.acr))}"
                    f"</strong>.</p><ul class='actions'><li><a class='btn' href='/private/'>Voir mon identité vérifiée"
                    f"</a></li><li><a class='btn secondary' href='{html.escape(logout_url(environ))}'>Se déconnecter"
                    "</a></li></ul>")
        else:
            body = ("<h1>Accédez à votre espace</h1><p class='lead'>Identifiez-vous pour consulter votre identité "
                    "vérifiée.</p>" + str(login_button(environ, "/private/")) +
                    "<p class='small'>Ou ouvrez directement <a href='/private/'>une page protégée</a> : elle vous "
                    "demandera de vous identifier. <span lang='en'>Or open a protected page: it asks you to sign "
                    "in.</span></p>")
        status = "200 OK"
    elif path.startswith("/private"):
        if user is None:  # cannot happen behind the middleware; fail closed if it is missing
            body, status = "<h1>Accès refusé</h1>", "403 Forbidden"
        else:
            title = "Mon identité"
            name = " ".join(str(user.claims.get(k, "")) for k in ("given_name", "family_name", "usual_name")).strip()
            body = (f"<h1>Bonjour {html.escape(name or user.sub)}</h1>"
                    f"<p>Identité vérifiée par {html.escape(platform)}, niveau <strong>"
                    f"{html.escape(str(user.acr))}</strong>.</p>"
                    f"<h2>Identifiant (sub)</h2><p class='code'>{html.escape(user.sub)}</p>"
                    f"<h2>Données d'identité (userinfo)</h2><dl id='claims'>{_rows(user.claims)}</dl>"
                    f"<h2>Jeton d'identité (id_token)</h2><dl id='id-token-claims'>{_rows(user.id_token_claims)}</dl>"
                    f"<ul class='actions'><li><a class='btn' id='logout' href='{html.escape(logout_url(environ))}'>"
                    "Se déconnecter</a></li><li><a class='btn secondary' href='/'>Accueil</a></li></ul>")
            status = "200 OK"
    else:
        body, status, title = "<h1>Page introuvable</h1><p><a href='/'>Accueil</a></p>", "404 Not Found", "Introuvable"
    # Signed in or not, said on every page, with the way to the profile and out (a
    # qualification item: the user sees at once that they are signed in).
    if user:
        who = " ".join(str(user.claims.get(k, "")) for k in ("given_name", "family_name", "usual_name")).strip()
        account = (f"<p class='account'>Connecté·e : <a href='/private/'>{html.escape(who or 'mon identité')}</a>"
                   f" · <a href='{html.escape(logout_url(environ))}'>Se déconnecter</a></p>")
    else:
        account = "<p class='account'>Non connecté·e</p>"
    page = _PAGE.format(title=title, body=body, platform=html.escape(platform), provider=html.escape(provider),
                        account=account)
    data = page.encode()
    start_response(status, [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(data))),
                            *_HEADERS])
    return [data]


def app_factory(global_conf: dict[str, Any], **local_conf: Any) -> Callable[..., Iterable[bytes]]:
    """paste.app_factory for `use = egg:fcplus_wsgi#demo`."""
    return demo_app
