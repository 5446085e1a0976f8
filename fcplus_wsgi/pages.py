"""HTML pages the middleware itself renders: errors and notices, French first.

Jinja2 with autoescaping everywhere; provider-supplied text is capped before it gets
here and escaped on the way out. Every response carries headers that keep the page out
of caches and frames and forbid any script: these pages need none.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PackageLoader, TemplateError, select_autoescape
from webob import Response

from .errors import Category, FlowError

_TITLES = {
    Category.USER_CANCELLED: ("Connexion interrompue", "Sign-in interrupted"),
    Category.SESSION_EXPIRED: ("Connexion expirée", "Sign-in expired"),
    Category.PROVIDER_UNAVAILABLE: ("Service d'identification indisponible", "Identity service unavailable"),
    Category.MISCONFIGURED: ("Connexion impossible", "Sign-in impossible"),
    Category.SECURITY: ("Connexion refusée par sécurité", "Sign-in refused for security"),
}

SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("Cache-Control", "no-store"),
    ("Pragma", "no-cache"),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
)


def secure(response: Response, style_nonce: str | None = None, form_targets: tuple[str, ...] = ()) -> Response:
    """Add the no-store / no-frame / strict CSP headers to a response we produce.

    `form_targets` are origins a form's submission may be redirected to: browsers check
    the redirect after a form POST against form-action too (logout goes on to the provider).
    """
    for name, value in SECURITY_HEADERS:
        response.headers[name] = value
    style = f"'nonce-{style_nonce}'" if style_nonce else "'none'"
    form_action = " ".join(("'self'", *form_targets))
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; style-src {style}; img-src 'self'; frame-ancestors 'none'; "
        f"base-uri 'none'; form-action {form_action}")
    return response


def prefers_english(accept_language: str | None) -> bool:
    """French unless the browser ranks English above French."""
    if not accept_language:
        return False
    best_fr = best_en = 0.0
    for part in accept_language.split(",")[:20]:
        lang, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        code = lang.strip().lower()[:2]
        if code == "fr":
            best_fr = max(best_fr, q)
        elif code == "en":
            best_en = max(best_en, q)
    return best_en > best_fr


log = logging.getLogger("fcplus_wsgi")

TEMPLATES = ("base.html", "error.html", "notice.html", "login.html")


class PageTemplateError(ValueError):
    """An operator template that does not compile; the message names the file and line."""


class Pages:
    """Renders the pages; `template_dirs` (searched first) and `messages` ({code: {"fr", "en"}})
    are the operator's overrides of the packaged templates and catalogue texts."""

    def __init__(self, template_dirs: Sequence[str] = (),
                 messages: Mapping[str, Mapping[str, str]] | None = None) -> None:
        package = PackageLoader("fcplus_wsgi", "templates")
        self._packaged = Environment(loader=package, autoescape=select_autoescape(default=True), auto_reload=False)
        if template_dirs:
            self.env = Environment(loader=ChoiceLoader([FileSystemLoader(list(template_dirs)), package]),
                                   autoescape=select_autoescape(default=True), auto_reload=False)
            for name in TEMPLATES:  # a syntax error stops the start, not a user's error page
                try:
                    self.env.get_template(name)
                except TemplateError as exc:
                    where = f"{getattr(exc, 'filename', None) or name} line {getattr(exc, 'lineno', '?')}"
                    raise PageTemplateError(f"{where}: {exc}") from None
        else:
            self.env = self._packaged
        self.messages = messages or {}

    def render(self, template: str, **context: Any) -> tuple[str, str]:
        nonce = secrets.token_urlsafe(16)
        try:
            return self.env.get_template(template).render(csp_nonce=nonce, **context), nonce
        except Exception:
            if self.env is self._packaged:
                raise
            # An error page must not fail in turn: the packaged template always renders.
            log.exception("operator template %s failed to render; using the packaged one", template)
            return self._packaged.get_template(template).render(csp_nonce=nonce, **context), nonce

    def error(self, exc: FlowError, *, correlation_id: str, accept_language: str | None,
              retry_url: str | None, home_url: str | None = "/") -> Response:
        spec = exc.spec
        fr_title, en_title = _TITLES[spec.category]
        english = prefers_english(accept_language)
        texts = self.messages.get(spec.code, {})
        # The provider's code is an identifier; its description is in whatever language the
        # provider chose, so the page shows it once, marked as quoted, not inside the French text.
        provider_said = None
        if exc.provider_error:
            provider_said = exc.provider_error + (f" — {exc.provider_description}" if exc.provider_description else "")
        body, nonce = self.render(
            "error.html", lang="en" if english else "fr", title=en_title if english else fr_title,
            fr={"lang": "fr", "title": fr_title, "message": texts.get("fr", spec.message_fr), "retry": "Réessayer",
                "home": "Retour à l'accueil", "reference": "Référence à communiquer au support :",
                "provider_said": "Code renvoyé par le fournisseur"},
            en={"lang": "en", "title": en_title, "message": texts.get("en", spec.message_en), "retry": "Try again",
                "home": "Back to the home page", "reference": "Reference for support:",
                "provider_said": "Code returned by the provider (as sent):"},
            retry_url=retry_url if spec.retry else None, home_url=home_url,
            provider_said=provider_said, correlation_id=correlation_id, code=spec.code,
            category=spec.category.value, status=spec.status)
        response = Response(body=body.encode(), status=spec.status, content_type="text/html", charset="utf-8")
        response.headers["X-Correlation-ID"] = correlation_id
        return secure(response, nonce)

    def notice(self, *, status: int = 200, form_targets: tuple[str, ...] = (), accept_language: str | None = None,
               **texts: Any) -> Response:
        english = prefers_english(accept_language)
        body, nonce = self.render("notice.html", lang="en" if english else "fr",
                                  title=texts.get("en_title" if english else "fr_title", ""), **texts)
        response = Response(body=body.encode(), status=status, content_type="text/html", charset="utf-8")
        return secure(response, nonce, form_targets)

    def login(self, *, buttons: Sequence[Mapping[str, Mapping[str, Any]]], return_to: str,
              accept_language: str | None, status: int = 200) -> Response:
        """The sign-in page: each configured platform's button, French first unless the browser
        prefers English, the buttons' stylesheet with the nonce. Each entry of `buttons` holds
        fcplus_wsgi.buttons contexts per language ({"fr": ..., "en": ...}): the button is shown
        once, in the first language; the second says what it is in its own words."""
        from .buttons import button_css  # floor 2 reading a sibling module's static file

        english = prefers_english(accept_language)
        fr = {"lang": "fr", "title": "Connexion", "intro": "Pour accéder à ce service, identifiez-vous.",
              "cancel": "Retour à l'accueil", "above": "Utilisez le bouton ci-dessus :", "quotes": ("« ", " »")}
        en = {"lang": "en", "title": "Sign in", "intro": "To use this service, please sign in.",
              "cancel": "Back to the home page", "above": "Use the button above:", "quotes": ("“", "”")}
        body, nonce = self.render("login.html", lang="en" if english else "fr",
                                  title=en["title"] if english else fr["title"], fr=fr, en=en,
                                  first=en if english else fr, second=fr if english else en,
                                  buttons=buttons, return_to=return_to, button_css=button_css())
        response = Response(body=body.encode(), status=status, content_type="text/html", charset="utf-8")
        return secure(response, nonce)
