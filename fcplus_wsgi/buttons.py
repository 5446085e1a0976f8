"""The platforms' official sign-in buttons: FranceConnect+, FranceConnect, ProConnect.

A service is admitted to production only after the platform's qualification, which checks
the button as much as the protocol: label, logo, the "Qu'est-ce que … ?" link opening in a
new window, the FranceConnect+ sentence, the "OU" separator next to a local login. These
helpers render the DSFR "Bouton FranceConnect" component (and its ProConnect variant) to
the letter, so every page of a service shows the same, qualifiable button:

- plain WSGI: `login_button(environ, ...)` returns safe HTML, `button_styles(nonce)` its CSS;
- Jinja2: `install_jinja(env)` adds the `fcplus_button` and `fcplus_button_styles` globals,
  and `fcplus_wsgi/templates/fcplus_buttons.html` (`jinja_loader()`) holds the
  `connect_button` macro they and the login page render;
- Pyramid: `fcplus_button(...)` and `fcplus_button_styles(...)` in every renderer's globals.

The logo is the platform's own drawing (static/*-logo.svg, from the DSFR, Licence Ouverte
2.0), inlined as SVG so pages under a strict CSP (img-src 'self', no data: URIs) show it.
The CSS is ours, written to the DSFR's published measures and colours, with class names of
our own so a page that also loads the DSFR does not style the button twice;
tests/test_buttons_browser.py compares both renderings in Chromium so any drift shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from .links import _settings, build_login_url

__all__ = ["PLATFORMS", "UnknownPlatformError", "button_context", "button_css", "button_html", "button_styles",
           "install_jinja", "jinja_loader", "login_button", "platform_for", "resolve_platform"]


@dataclass(frozen=True)
class ButtonSpec:
    """What the platform fixes: its brand word, the "+" mark, the logo, the help link."""

    platform: str
    brand: str
    plus: bool
    logo: str  # file name under fcplus_wsgi/static
    help_url: str
    help_fr: str
    help_en: str
    sentence_fr: str | None = None
    sentence_en: str | None = None


PLATFORMS: dict[str, ButtonSpec] = {
    "fcplus": ButtonSpec(
        "fcplus", "FranceConnect", True, "franceconnect-logo.svg",
        "https://franceconnect.gouv.fr/france-connect-plus",
        "Qu’est-ce que FranceConnect+ ?", "What is FranceConnect+?",
        # FranceConnect+'s rules ask for this sentence above the button, always.
        "FranceConnect+ est la solution proposée par l’État pour renforcer la sécurité de vos services en ligne "
        "les plus sensibles.",
        "FranceConnect+ is the solution offered by the French State to strengthen the security of your most "
        "sensitive online services."),
    "franceconnect": ButtonSpec(
        "franceconnect", "FranceConnect", False, "franceconnect-logo.svg", "https://franceconnect.gouv.fr/",
        "Qu’est-ce que FranceConnect ?", "What is FranceConnect?"),
    "proconnect": ButtonSpec(
        "proconnect", "ProConnect", False, "proconnect-logo.svg", "https://www.proconnect.gouv.fr/",
        "Qu’est-ce que ProConnect ?", "What is ProConnect?"),
}

# Other names people use for the same platforms; AgentConnect became ProConnect.
ALIASES = {"agentconnect": "proconnect", "fc+": "fcplus", "franceconnect+": "fcplus", "fc": "franceconnect"}

_TEXTS = {
    "fr": {"login": "S’identifier avec", "new_window": "nouvelle fenêtre", "or": "ou"},
    "en": {"login": "Sign in with", "new_window": "new window", "or": "or"},
}
THEMES = ("auto", "light", "dark")


class UnknownPlatformError(ValueError):
    """A button asked for a platform that has none (a typo, or a generic OIDC provider)."""


def resolve_platform(name: str) -> ButtonSpec:
    key = ALIASES.get(name.strip().lower(), name.strip().lower())
    if key not in PLATFORMS:
        raise UnknownPlatformError(
            f"no official button for platform {name!r}: use one of {', '.join(PLATFORMS)} (or agentconnect)")
    return PLATFORMS[key]


def platform_for(settings: Any) -> str:
    """The button platform of a configured provider; a generic provider has no official button,
    and the error says to pass one explicitly rather than show a platform's brand by guess."""
    platform = str(settings.preset.platform)
    if platform not in PLATFORMS:
        raise UnknownPlatformError(
            f"provider {settings.provider_name} is not FranceConnect+, FranceConnect or ProConnect, so it has no "
            "official button; pass platform= explicitly if the issuer is one of them")
    return platform


@cache
def _logo(name: str) -> Markup:
    svg = resources.files("fcplus_wsgi").joinpath("static").joinpath(name).read_text(encoding="utf-8").strip()
    # Decorative: the link's text names the platform, so screen readers skip the drawing.
    marked = svg.replace("<svg ", '<svg class="fcw-connect__logo" aria-hidden="true" focusable="false" ', 1)
    return Markup(marked)  # noqa: S704  (our packaged file, never user input)


@lru_cache(maxsize=1)
def _env() -> Environment:
    return Environment(loader=jinja_loader(), autoescape=select_autoescape(default=True), auto_reload=False)


def button_context(platform: str, href: str, *, lang: str = "fr", theme: str = "light",
                   sentence: bool | None = None, separator: bool = False) -> dict[str, Any]:
    """Everything the `connect_button` macro needs, checked; exposed for templates that call
    the macro themselves (the login page)."""
    spec = resolve_platform(platform)
    if lang not in _TEXTS:
        raise ValueError(f"button language {lang!r}: use fr or en")
    if theme not in THEMES:
        raise ValueError(f"button theme {theme!r}: use one of {', '.join(THEMES)}")
    texts = _TEXTS[lang]
    help_text = spec.help_fr if lang == "fr" else spec.help_en
    show_sentence = spec.sentence_fr is not None if sentence is None else sentence
    return {
        "platform": spec.platform, "href": href, "lang": lang, "theme": theme,
        "login": texts["login"], "brand": spec.brand, "plus": spec.plus, "logo": _logo(spec.logo),
        "label": f"{texts['login']} {spec.brand}{'+' if spec.plus else ''}",
        "help_url": spec.help_url, "help_text": help_text, "help_title": f"{help_text} - {texts['new_window']}",
        "sentence": (spec.sentence_fr if lang == "fr" else spec.sentence_en) if show_sentence else None,
        "separator": texts["or"] if separator else None,
    }


def button_html(platform: str, href: str, *, lang: str = "fr", theme: str = "light", sentence: bool | None = None,
                separator: bool = False) -> Markup:
    """The button group for `platform` linking to `href` (a login-path URL).

    `sentence` defaults to the platform's rule (always for FranceConnect+); `separator` adds
    the "OU" line to put between this button and the service's own login form; `theme`
    picks the variant that contrasts with the page: "light" (the DSFR's default) on light
    backgrounds, "dark" on dark ones, "auto" for pages that follow the browser's scheme.
    """
    context = button_context(platform, href, lang=lang, theme=theme, sentence=sentence, separator=separator)
    macro = _env().get_template("fcplus_buttons.html").module.connect_button  # type: ignore[attr-defined]
    rendered: Markup = macro(context)  # an autoescaping environment's macro returns Markup
    return rendered


def login_button(environ: Mapping[str, Any], return_to: str = "/", platform: str | None = None, *,
                 acr: str | None = None, lang: str = "fr", theme: str = "light", sentence: bool | None = None,
                 separator: bool = False) -> Markup:
    """The configured provider's button, linking to the login path with `return_to` kept.

    `platform` defaults to the configured provider's; it is a parameter because a service
    may offer several providers, each with its own button.
    """
    settings = _settings(environ)
    spec = resolve_platform(platform if platform is not None else platform_for(settings))
    # `choice` names the provider the user picked: with the login page on (setting
    # login_page), the login path then goes straight to it instead of showing the page.
    href = build_login_url(settings, return_to, acr) + "&" + urlencode({"choice": spec.platform})
    return button_html(spec.platform, href, lang=lang, theme=theme, sentence=sentence, separator=separator)


def button_css() -> str:
    """The buttons' stylesheet, for a service that serves it as a file or bundles it."""
    return resources.files("fcplus_wsgi").joinpath("static").joinpath("fcplus-buttons.css").read_text(encoding="utf-8")


def button_styles(nonce: str | None = None) -> Markup:
    """A `<style>` element with the buttons' CSS; pass the page's CSP nonce when it has one."""
    attr = Markup(' nonce="{}"').format(nonce) if nonce else ""
    css = Markup(button_css())  # noqa: S704  (our packaged stylesheet, never user input)
    return Markup("<style{}>\n{}</style>").format(attr, css)


def install_jinja(env: Environment) -> None:
    """Add `fcplus_button(environ, ...)` and `fcplus_button_styles(nonce)` to a Jinja2
    environment's globals, so an app's own templates show the same button."""
    env.globals["fcplus_button"] = login_button
    env.globals["fcplus_button_html"] = button_html
    env.globals["fcplus_button_styles"] = button_styles
    # For templates that call the macro themselves ({% from "fcplus_buttons.html" import
    # connect_button %}, with jinja_loader() in the environment's loaders).
    env.globals["fcplus_button_context"] = button_context


def jinja_loader() -> PackageLoader:
    """The loader of fcplus_wsgi's templates, for an app's ChoiceLoader, so its templates can
    import the `connect_button` macro from "fcplus_buttons.html"."""
    return PackageLoader("fcplus_wsgi", "templates")
