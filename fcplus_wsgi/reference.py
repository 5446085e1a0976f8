"""The settings reference, made from the code that parses the settings.

A pip user has no docs/ folder, and a hand-written table drifts from the parser. So the
defaults here are not written down: each one is what `parse_settings` gives when the key
is left out, per platform family, and "required" is what it refuses without it. Only the
one-line meanings are text; a test makes sure every known key has one and no other.
`fcplus-wsgi settings` prints this, and the documentation site's settings page is its
Markdown form (a test keeps the committed page in sync).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .settings import KNOWN_KEYS, ConfigError, Settings, default_store_url, parse_settings

# (section, meaning) per key, in the order a reader meets them.
MEANINGS: dict[str, tuple[str, str]] = {
    "provider": ("Provider", "Preset: the platform's URL, policy and wire profile (`fcplus-wsgi presets`)."),
    "issuer": ("Provider", "The provider's URL; replaces only the preset's URL (e.g. the development provider)."),
    "client_id": ("Provider", "From your registration (DataPass, then the platform's keys)."),
    "client_secret": ("Provider", "From your registration; write `${ENV_VAR}` rather than the secret itself."),
    "client_secret_file": ("Provider", "A file holding the secret, instead of client_secret."),
    "redirect_uri": ("Provider", "The absolute callback URL registered at the provider; its path is the callback."),
    "post_logout_redirect_uri": ("Provider", "The absolute logout-callback URL registered at the provider."),
    "scopes": ("Provider", "Scopes asked for; must contain openid and match your DataPass habilitation."),
    "acr_values": ("Provider", "eIDAS level(s) asked for, within what the platform accepts."),
    "prompt": ("Provider", "The OIDC prompt parameter, within what the platform accepts."),
    "claims": ("Provider", "The OIDC claims parameter, as JSON."),
    "request_amr": ("Provider", "Ask for the amr claim in the id_token (a shortcut for claims)."),
    "token_endpoint_auth_method": ("Provider", "How the client authenticates at the token endpoint."),
    "pkce": ("Provider", "auto follows the platform; false turns PKCE off; true where the platform accepts it."),
    "require_encryption": ("Provider", "Demand encrypted id_token and userinfo where the platform can encrypt."),
    "keys_file": ("Provider", "Your private JWK Set (`fcplus-wsgi keys generate --out FILE`); its public half is "
                  "served at jwks_path."),
    "id_token_signing_algs": ("Provider", "Signature algorithms accepted; with a preset it may only narrow them."),
    "insecure_allow_hs256": ("Provider", "Accept HS256 signed with the client secret (weakens security)."),
    "http_timeout": ("Provider", "Seconds for each call to the provider."),
    "ca_bundle": ("Provider", "A CA bundle file for TLS to the provider (verification cannot be turned off)."),
    "max_response_bytes": ("Provider", "Cap on any provider response body, in bytes."),
    "jwks_refresh_interval": ("Provider", "Minimum seconds between two JWKS refetches caused by an unknown kid."),
    "protected_paths": ("Paths and cookies", "Path prefixes that require a signed-in user."),
    "public_paths": ("Paths and cookies", "Prefixes that never require sign-in, even under a protected prefix."),
    "step_up": ("Paths and cookies", "PATH:LEVEL entries: under PATH a session must be at least LEVEL."),
    "login_path": ("Paths and cookies", "Starts a sign-in (?return_to=/path, ?acr=eidas3)."),
    "logout_path": ("Paths and cookies", "Starts a logout (GET link or POST form)."),
    "jwks_path": ("Paths and cookies", "Your public keys, for the provider to encrypt to."),
    "logout_landing_path": ("Paths and cookies", "Where users land after logout."),
    "unauthenticated": ("Paths and cookies", "auto: browsers are redirected, scripts get 401; or redirect, or 401."),
    "cookie_secure": ("Paths and cookies", "false only for local http development; true needs an https "
                      "redirect_uri."),
    "cookie_name": ("Paths and cookies", "The session cookie (fcplus when cookie_secure is false)."),
    "login_page": ("Pages", "Show a sign-in page with the platform's button at login_path instead of "
                   "redirecting at once."),
    "templates_dir": ("Pages", "A folder of base.html / error.html / notice.html replacing the packaged pages."),
    "messages_file": ("Pages", "A JSON file overriding error messages per code and language."),
    "session_store": ("Sessions", "memory://, sqlite:///PATH or redis://HOST (Sentinel, Cluster, TLS)."),
    "session_idle_timeout": ("Sessions", "Seconds without a request before the session ends."),
    "session_max_age": ("Sessions", "Absolute session lifetime in seconds."),
    "pending_login_ttl": ("Sessions", "Seconds a started sign-in may take."),
    "clock_skew": ("Sessions", "Seconds of tolerance on exp, iat, nbf."),
    "metrics": ("Observability", "Publish Prometheus metrics."),
    "metrics_path": ("Observability", "Serve the metrics at this path (needs metrics = true)."),
    "metrics_allow": ("Observability", "Client networks allowed on metrics_path (REMOTE_ADDR only)."),
    "structlog": ("Observability", "One structlog event per step on the logger fcplus_wsgi.flow."),
    "log_format": ("Observability", "json (production) or console (development)."),
}

# The platform families whose defaults differ, each parsed from its integration preset.
FAMILIES: dict[str, dict[str, str]] = {
    "plain OIDC": {"issuer": "https://op.example"},
    "fcplus-*": {"provider": "fcplus-integration", "keys_file": "keys.json"},
    "franceconnect-*": {"provider": "franceconnect-integration"},
    "proconnect-*": {"provider": "proconnect-integration"},
}
_BASE = {"client_id": "id", "client_secret": "s" * 32, "redirect_uri": "https://service.example/oidc/callback"}

# How each key shows in Settings when it differs from `getattr(settings, key)`.
_READ: dict[str, Callable[[Settings], Any]] = {
    "provider": lambda s: None if not s.preset.issuer else s.preset.name,
    "client_secret_file": lambda s: None,
    "insecure_allow_hs256": lambda s: s.allow_hs256,
    "request_amr": lambda s: bool(s.claims and '"amr"' in s.claims),
    "messages_file": lambda s: s.messages or None,
    "id_token_signing_algs": lambda s: s.policy.id_token_signing_algs,
    "require_encryption": lambda s: s.policy.require_encryption,
    "pkce": lambda s: "auto (when discovery advertises S256)" if s.pkce is None else s.pkce,
}


def show(value: Any) -> str:
    """One value as an operator writes it in an ini file."""
    if value is None or (isinstance(value, (tuple, list, str)) and not value):
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return " ".join(show(v) for v in value)
    text = str(value)
    if text == default_store_url():  # per machine: shown as the rule, not this machine's path
        return "sqlite:///$XDG_STATE_HOME/fcplus_wsgi/sessions.sqlite3"
    return text


def default_of(key: str, family: str) -> str:
    """What `key` is when left out, for one platform family, read from parse_settings."""
    if key == "provider":  # what names the family; left out, it is plain OIDC whatever the family
        family = "plain OIDC"
    raw = {**_BASE, **FAMILIES[family]}
    without = {k: v for k, v in raw.items() if k != key}
    try:
        settings = parse_settings(without)
    except ConfigError:
        return "required"
    return show(_READ.get(key, lambda s: getattr(s, key))(settings))


def rows() -> list[tuple[str, str, str, str]]:
    """(section, key, default, meaning) for every known key; one default when every family
    agrees, else each family's."""
    out = []
    for key, (section, meaning) in MEANINGS.items():
        values = {family: default_of(key, family) for family in FAMILIES}
        if len(set(values.values())) == 1:
            default = f"`{next(iter(values.values()))}`"
        else:
            default = "; ".join(f"{family}: `{value}`" for family, value in values.items())
        out.append((section, key, default, meaning))
    return out


def settings_markdown() -> str:
    """The reference as Markdown tables, one per section (the docs site's settings page)."""
    lines: list[str] = []
    section = None
    for sec, key, default, meaning in rows():
        if sec != section:
            section = sec
            lines += ["", f"## {sec}", "", "| key | default | meaning |", "|---|---|---|"]
        cells = (f"`{key}`", default, meaning)
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines).lstrip("\n") + "\n\n" + presets_markdown()


def presets_markdown() -> str:
    """Each preset's values, from the same data `fcplus-wsgi presets --json` prints."""
    from .providers import GENERIC, PRESETS, describe_preset

    columns = ("issuer", "scopes", "acr_values", "acr_values_allowed", "id_token_signing_algs", "require_encryption",
               "encryption_algs", "subject_type", "pkce", "token_endpoint_auth_method")
    lines = ["## Presets", "",
             "What each `provider` value sets (`fcplus-wsgi presets` prints these and the wire profile).", "",
             "| preset | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for preset in (*PRESETS.values(), GENERIC):
        data = describe_preset(preset)
        cells = [f"`{data['name']}`"] + [f"`{show(data[c])}`" if show(data[c]) != "none" else "none" for c in columns]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def settings_text() -> str:
    """The reference for a terminal: key = default, then the meaning."""
    lines: list[str] = []
    section = None
    for sec, key, default, meaning in rows():
        if sec != section:
            section = sec
            lines += ["", f"[{sec}]"]
        lines += [f"{key} = {default.replace('`', '')}", f"    {meaning.replace('`', '')}"]
    return "\n".join(lines).lstrip("\n") + "\n"


def missing_meanings() -> tuple[list[str], list[str]]:
    """(known keys without a meaning here, meanings of keys the parser does not know)."""
    return sorted(KNOWN_KEYS - set(MEANINGS)), sorted(set(MEANINGS) - KNOWN_KEYS)
