"""A small Pyramid application signed in with FranceConnect+ through `fcplus_wsgi.pyramid`.

Everything about the sign-in lives in the ini file (`fcplus.*` keys); the application only
says who may see what: `permission="view"` for any signed-in user, `fcplus_acr="eidas3"`
for the page that needs the high eIDAS level, and an app role derived from verified claims.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from pyramid.authorization import Allow, Authenticated
from pyramid.config import Configurator
from pyramid.response import Response
from pyramid.view import view_config

from fcplus_wsgi.identity import Identity

_templates = Environment(loader=PackageLoader("fcplus_pyramid_example", "templates"),
                         autoescape=select_autoescape(default=True))


class Root:
    """Who may do what: any signed-in user may view; adults (from the verified birthdate) may vote."""

    __acl__ = ((Allow, Authenticated, "view"), (Allow, "role:adult", "vote"))

    def __init__(self, request: Any) -> None:
        self.request = request


def principals_from_claims(identity: Identity, request: Any) -> list[str]:
    """App roles from verified claims (fcplus.principals_callback in the ini)."""
    try:
        born = date.fromisoformat(str(identity.claims.get("birthdate", "")))
    except ValueError:
        return []
    today = date.today()
    age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
    return ["role:adult"] if age >= 18 else []


def render(request: Any, template: str, **context: Any) -> Response:
    body = _templates.get_template(template).render(request=request, fcplus=request.fcplus, **context)
    response = Response(body, content_type="text/html", charset="utf-8")
    response.headers["Cache-Control"] = "no-store"  # pages with personal data stay out of caches
    return response


@view_config(route_name="home")
def home(request: Any) -> Response:
    return render(request, "home.html")


@view_config(route_name="claims", permission="view")
def claims(request: Any) -> Response:
    return render(request, "claims.html", identity=request.identity)


@view_config(route_name="vault", permission="view", fcplus_acr="eidas3")
def vault(request: Any) -> Response:
    return render(request, "vault.html", identity=request.identity)


@view_config(route_name="vote", permission="vote")
def vote(request: Any) -> Response:
    return render(request, "vote.html", identity=request.identity)


def main(global_config: dict[str, Any], **settings: Any) -> Any:
    """paste.app_factory: `use = call:fcplus_pyramid_example:main`."""
    with Configurator(settings=settings, root_factory=Root) as config:
        config.include("fcplus_wsgi.pyramid")
        config.add_route("home", "/")
        config.add_route("claims", "/claims")
        config.add_route("vault", "/vault")
        config.add_route("vote", "/vote")
        config.scan(__name__)
        return config.make_wsgi_app()
