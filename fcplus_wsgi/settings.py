"""Settings: parsed once at start-up into a frozen object, or refused with one clear sentence.

Operators write ini files; a typo must stop the service at start with the key named and
the fix said, never surface as a traceback on a user's first login. Pure logic: reading
the secret file and the environment are the only side effects, both at start-up.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import CATALOGUE
from .providers import (
    EIDAS_ORDER,
    GENERIC,
    STANDARD_SIGNING_ALGS,
    Policy,
    Preset,
    WireProfile,
    acr_claims_request,
    find_preset,
    preset_names,
)


class ConfigError(ValueError):
    """A setting that cannot work; the message names the key and the fix."""


KNOWN_KEYS = frozenset({
    "provider", "issuer", "client_id", "client_secret", "client_secret_file", "redirect_uri",
    "post_logout_redirect_uri", "scopes", "acr_values", "keys_file", "session_store", "cookie_name",
    "cookie_secure", "protected_paths", "public_paths", "login_path", "logout_path", "jwks_path",
    "session_idle_timeout", "session_max_age", "clock_skew", "http_timeout", "ca_bundle", "prompt",
    "claims", "request_amr", "token_endpoint_auth_method", "unauthenticated", "logout_landing_path",
    "pending_login_ttl", "id_token_signing_algs", "insecure_allow_hs256", "jwks_refresh_interval",
    "metrics", "metrics_path", "metrics_allow", "structlog", "log_format",
    "max_response_bytes", "step_up", "templates_dir", "messages_file", "pkce", "require_encryption",
    "login_page",
})

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class Settings:
    preset: Preset
    policy: Policy
    issuer: str
    client_id: str
    client_secret: str = field(repr=False)
    redirect_uri: str
    callback_path: str
    post_logout_redirect_uri: str | None
    logout_callback_path: str | None
    scopes: tuple[str, ...]
    acr_values: tuple[str, ...]
    keys_file: str | None
    session_store: str
    cookie_name: str
    cookie_secure: bool
    protected_paths: tuple[str, ...]
    public_paths: tuple[str, ...]
    login_path: str
    logout_path: str
    jwks_path: str
    session_idle_timeout: int
    session_max_age: int
    clock_skew: int
    http_timeout: float
    ca_bundle: str | None
    prompt: str | None
    claims: str | None
    token_endpoint_auth_method: str
    unauthenticated: str
    logout_landing_path: str
    pending_login_ttl: int
    allow_hs256: bool
    jwks_refresh_interval: float
    max_response_bytes: int
    # Observability plugins (fcplus_wsgi.observability), imported only when one is on.
    metrics: bool = False
    metrics_path: str | None = None
    metrics_allow: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    structlog: bool = False
    log_format: str = "json"
    # (path prefix, minimum eIDAS level): sessions below it go through the provider again.
    step_up: tuple[tuple[str, str], ...] = ()
    # Operator overrides of the pages: a folder of templates, and texts per catalogue code.
    templates_dir: str | None = None
    # A page at login_path with the platform's button, instead of going straight to it.
    login_page: bool = False
    messages: dict[str, dict[str, str]] = field(default_factory=dict, hash=False)
    # PKCE: True/False decided by the preset's wire profile (or the `pkce` setting); None
    # for a generic provider means "when discovery advertises S256".
    pkce: bool | None = None

    @property
    def provider_name(self) -> str:
        return self.preset.name

    @property
    def wire(self) -> WireProfile:
        """What the platform accepts on each endpoint (providers.WireProfile)."""
        return self.preset.wire

    @property
    def pending_cookie_name(self) -> str:
        return self.cookie_name + "-login"


def default_store_url() -> str:
    """A per-user state folder, so the default survives restarts without writing in cwd."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return "sqlite:///" + str(Path(base) / "fcplus_wsgi" / "sessions.sqlite3")


def _interpolate(key: str, value: str) -> str:
    def repl(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in os.environ:
            raise ConfigError(f"{key} refers to the environment variable ${{{name}}}, which is not set; "
                              f"export {name} before starting the service.")
        return os.environ[name]
    return _ENV_REF.sub(repl, value)


def _as_bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "on", "1"):
        return True
    if text in ("false", "no", "off", "0"):
        return False
    raise ConfigError(f"{key} = {value!r} is not a boolean; write true or false.")


def _as_int(key: str, value: Any, minimum: int = 0) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ConfigError(f"{key} = {value!r} is not a whole number of seconds.") from None
    if number < minimum:
        raise ConfigError(f"{key} = {number} is too small; it must be at least {minimum}.")
    return number


def _as_float(key: str, value: Any, minimum: float) -> float:
    try:
        number = float(str(value).strip())
    except ValueError:
        raise ConfigError(f"{key} = {value!r} is not a number.") from None
    if not math.isfinite(number):  # nan would disable every comparison (rate limit, timeout)
        raise ConfigError(f"{key} = {value!r} is not a finite number.")
    if number < minimum:
        raise ConfigError(f"{key} = {number} is too small; it must be at least {minimum}.")
    return number


def _as_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, (list, tuple)):
        return tuple(str(v) for v in value)
    return tuple(v for v in re.split(r"[\s,]+", str(value).strip()) if v)


def _as_path(key: str, value: Any) -> str:
    text = str(value).strip()
    if not text.startswith("/") or text.startswith("//") or any(c in text for c in "?#\\ \t"):
        raise ConfigError(f"{key} = {text!r} must be an absolute path such as /oidc/login (no host, query or spaces).")
    return text.rstrip("/") or "/"


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_url(key: str, value: str, *, require_https: bool) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{key} = {value!r} must be an absolute http(s) URL.")
    if parts.fragment:
        raise ConfigError(f"{key} = {value!r} must not have a #fragment.")
    if parts.scheme == "http":
        if require_https:
            raise ConfigError(f"{key} = {value!r} uses http with a production preset; production needs https.")
        if not is_loopback_host(parts.hostname):
            raise ConfigError(f"{key} = {value!r} uses http on a non-loopback host; use https "
                              "(plain http is only accepted on 127.0.0.1/localhost for development).")
    return value


def _parse_step_up(value: Any, policy: Policy) -> tuple[tuple[str, str], ...]:
    """`/admin:eidas3 /vault:eidas3` -> ((prefix, level), ...); levels are eIDAS levels the
    provider accepts, since the requirement must be something a new sign-in can meet."""
    allowed = policy.acr_values_allowed or EIDAS_ORDER
    rules = []
    for entry in _as_list(value):
        prefix, sep, acr = entry.rpartition(":")
        if not sep or not prefix:
            raise ConfigError(f"step_up entry {entry!r} must read PATH:LEVEL, e.g. step_up = /admin:eidas3.")
        if acr not in EIDAS_ORDER or acr not in allowed:
            raise ConfigError(f"step_up entry {entry!r} asks for {acr!r}; use one of {', '.join(allowed)}.")
        rules.append((_as_path("step_up", prefix), acr))
    return tuple(rules)


def _observability(get: Callable[..., Any], flow_paths: Mapping[str, str]) -> dict[str, Any]:
    """The observability keys; metrics are served on metrics_path only to metrics_allow."""
    metrics = _as_bool("metrics", get("metrics", False))
    metrics_path = get("metrics_path")
    if metrics_path is not None:
        metrics_path = _as_path("metrics_path", metrics_path)
        if not metrics:
            raise ConfigError("metrics_path is set but metrics is false; set metrics = true to publish the metrics.")
        if metrics_path == "/" or metrics_path in flow_paths:
            raise ConfigError(f"metrics_path = {metrics_path} is '/' or a flow path; give it a path of its own "
                              "such as /metrics.")
    allow = []
    for entry in _as_list(get("metrics_allow", "127.0.0.1/8 ::1")):
        try:
            allow.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ConfigError(f"metrics_allow entry {entry!r} is not an IP address or network "
                              "such as 127.0.0.1/8, ::1 or 10.0.0.0/24.") from None
    log_format = str(get("log_format", "json"))
    if log_format not in ("json", "console"):
        raise ConfigError(f"log_format = {log_format!r} is not supported; use json (production) or console.")
    return {"metrics": metrics, "metrics_path": metrics_path, "metrics_allow": tuple(allow),
            "structlog": _as_bool("structlog", get("structlog", False)), "log_format": log_format}


PAGE_TEMPLATES = ("base.html", "error.html", "notice.html", "login.html")
MAX_MESSAGE = 1000


def _templates_dir(value: Any) -> str | None:
    if value is None:
        return None
    path = Path(str(value))
    if not path.is_dir():
        raise ConfigError(f"templates_dir {path} is not a readable directory; point it at a folder holding "
                          f"your {', '.join(PAGE_TEMPLATES)}.")
    if not any((path / name).is_file() for name in PAGE_TEMPLATES):
        raise ConfigError(f"templates_dir {path} holds none of {', '.join(PAGE_TEMPLATES)}; "
                          "copy the packaged ones (fcplus_wsgi/templates/ in the installed package) there to start from.")
    return str(path)


def _messages(value: Any) -> dict[str, dict[str, str]]:
    """messages_file: {"access_denied": {"fr": "...", "en": "..."}}, checked against the catalogue
    so a typo in a code stops the start instead of silently showing the default text."""
    if value is None:
        return {}
    path = Path(str(value))
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"messages_file {path} cannot be read ({exc.strerror}).") from None
    except ValueError:
        raise ConfigError(f"messages_file {path} is not UTF-8 JSON; write an object such as "
                          '{"access_denied": {"fr": "...", "en": "..."}}.') from None
    if not isinstance(data, dict):
        raise ConfigError(f"messages_file {path} must hold a JSON object of error codes.")
    messages: dict[str, dict[str, str]] = {}
    for code, texts in data.items():
        if code not in CATALOGUE:
            close = difflib.get_close_matches(str(code), sorted(CATALOGUE), n=1)
            raise ConfigError(f"messages_file {path}: {code!r} is not an error code"
                              + (f"; did you mean {close[0]}?" if close else "")
                              + " (`fcplus-wsgi settings --errors` lists the codes).")
        if not isinstance(texts, dict) or not texts or not set(texts) <= {"fr", "en"}:
            raise ConfigError(f"messages_file {path}: {code} must map to an object with \"fr\" and/or \"en\" texts.")
        for lang, text in texts.items():
            if not isinstance(text, str) or not text.strip() or len(text) > MAX_MESSAGE:
                raise ConfigError(f"messages_file {path}: {code}.{lang} must be a non-empty text of at most "
                                  f"{MAX_MESSAGE} characters.")
        messages[code] = {lang: text.strip() for lang, text in texts.items()}
    return messages


# Where a message sends an operator: a command every installation has (a pip user has no docs/).
REFERENCE_HINT = "`fcplus-wsgi settings` prints every setting with its default"

# ` ; comment` or ` # comment` after a value: configparser, hence PasteDeploy, keeps it in the value.
_INLINE_COMMENT = re.compile(r"\s[;#]")


def unknown_key_message(key: str, known: Iterable[str] = KNOWN_KEYS) -> str:
    """The sentence for a key no code reads: the closest known key first, since most are typos."""
    close = difflib.get_close_matches(key.removeprefix("fcplus.").lower(), sorted(known), n=1, cutoff=0.6)
    if key.startswith("fcplus."):
        # A Pyramid-style key in a filter section: the filter reads bare names.
        hint = f"filter settings have no fcplus. prefix; write {close[0]}" if close else \
            "filter settings have no fcplus. prefix"
    else:
        hint = f"did you mean {close[0]}?" if close else "check its spelling"
    return f"{key} is not a setting: {hint} ({REFERENCE_HINT})."


def inline_comment_message(key: str) -> str:
    """Why a value holding ` ; ...` is refused rather than cut: PasteDeploy and every other
    Paste component read the whole line as the value, so cutting it here alone would make
    the same ini mean two things."""
    return (f"{key} holds an inline comment (' ;' or ' #' after the value), which ini files under PasteDeploy keep "
            "as part of the value; move the comment to a line of its own.")


def parse_settings(raw: Mapping[str, Any]) -> Settings:
    """Validate raw ini values (or keyword arguments) into Settings, or raise ConfigError."""
    unknown = sorted(k for k in raw if k not in KNOWN_KEYS)
    if unknown:
        raise ConfigError(unknown_key_message(unknown[0]))
    for key in sorted(raw):
        if isinstance(raw[key], str) and _INLINE_COMMENT.search(raw[key]):
            raise ConfigError(inline_comment_message(key))

    def get(key: str, default: Any = None) -> Any:
        value = raw.get(key, default)
        if isinstance(value, str):
            value = _interpolate(key, value).strip()
            if value == "":
                return default
        return value

    provider = get("provider")
    if provider is None:
        preset = GENERIC
    else:
        found = find_preset(str(provider))
        if found is None:
            raise ConfigError(f"provider = {provider!r} is not a known preset; use one of {', '.join(preset_names())} "
                              "or leave it out and set issuer for a plain OpenID Connect provider.")
        preset = found
    policy = preset.policy
    wire = preset.wire
    policy = _encryption_override(get("require_encryption"), preset, policy)

    issuer = get("issuer", preset.issuer or None)
    if not issuer:
        raise ConfigError("issuer is missing; set provider = fcplus-integration (or another preset) or issuer = https://....")
    issuer = _check_url("issuer", str(issuer).rstrip("/"), require_https=policy.require_https_issuer)

    client_id = get("client_id")
    if not client_id:
        raise ConfigError("client_id is missing; copy it from your provider registration.")
    secret = get("client_secret")
    secret_file = get("client_secret_file")
    if secret and secret_file:
        raise ConfigError("set either client_secret or client_secret_file, not both.")
    if secret_file:
        try:
            secret = Path(secret_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"client_secret_file {secret_file} cannot be read ({exc.strerror}).") from None
        if not secret:
            raise ConfigError(f"client_secret_file {secret_file} is empty.")
    if not secret:
        raise ConfigError("client_secret is missing; set client_secret = ${ENV_VAR} or client_secret_file = /path.")

    redirect_uri = get("redirect_uri")
    if not redirect_uri:
        raise ConfigError("redirect_uri is missing; set the absolute callback URL registered at the provider, "
                          "e.g. https://service.example/oidc/callback.")
    redirect_uri = _check_url("redirect_uri", str(redirect_uri), require_https=policy.require_https_issuer)
    rparts = urlsplit(redirect_uri)
    if rparts.query:
        raise ConfigError("redirect_uri must not carry a query string.")
    callback_path = rparts.path.rstrip("/") or "/"  # the router matches paths without trailing slash

    plru = get("post_logout_redirect_uri")
    logout_cb: str | None = None
    if plru:
        plru = _check_url("post_logout_redirect_uri", str(plru), require_https=policy.require_https_issuer)
        logout_cb = urlsplit(plru).path.rstrip("/") or "/"

    cookie_secure = _as_bool("cookie_secure", get("cookie_secure", True))
    if cookie_secure and rparts.scheme != "https":
        raise ConfigError("cookie_secure is true but redirect_uri uses http: browsers would drop the cookies and loop. "
                          "Use https, or set cookie_secure = false for local development only.")
    cookie_name = str(get("cookie_name", "__Host-fcplus" if cookie_secure else "fcplus"))
    if not re.fullmatch(r"[A-Za-z0-9_\-]+", cookie_name):
        raise ConfigError(f"cookie_name = {cookie_name!r} may only hold letters, digits, '-' and '_'.")
    if cookie_name.startswith("__Host-") and not cookie_secure:
        raise ConfigError("cookie_name starts with __Host-, which browsers only accept with cookie_secure = true.")

    scopes = _as_list(get("scopes", " ".join(policy.default_scopes)))
    if "openid" not in scopes:
        raise ConfigError("scopes must contain openid.")

    acr_values = _as_list(get("acr_values", " ".join(policy.default_acr_values)))
    if policy.require_acr_values and not acr_values:
        raise ConfigError(f"acr_values is required by the {preset.name} preset; use "
                          f"{' or '.join(policy.acr_values_allowed or EIDAS_ORDER)}.")
    if policy.acr_values_allowed is not None:
        bad = [v for v in acr_values if v not in policy.acr_values_allowed]
        if bad:
            raise ConfigError(f"acr_values = {bad[0]!r} is not accepted by {preset.name}; use one of "
                              f"{', '.join(policy.acr_values_allowed)}.")

    claims = get("claims")
    if _as_bool("request_amr", get("request_amr", False)):
        if claims:
            raise ConfigError("set either claims or request_amr, not both.")
        claims = json.dumps({"id_token": {"amr": {"essential": True}}}, separators=(",", ":"))
    if claims:
        try:
            parsed = json.loads(claims)
        except ValueError:
            raise ConfigError("claims must be a JSON object such as {\"id_token\":{\"amr\":{\"essential\":true}}}.") from None
        if not isinstance(parsed, dict):
            raise ConfigError("claims must be a JSON object.")
        if "claims" not in wire.authorize:
            raise ConfigError(f"claims is not accepted by {preset.name}.")
    if wire.acr_request == "claims":
        try:
            acr_claims_request(acr_values, claims)
        except ValueError:
            raise ConfigError("claims.id_token must be a JSON object: the requested acr is added there.") from None

    prompt = get("prompt")
    if prompt is not None:
        prompt = str(prompt)
        if not prompt.split() or not set(prompt.split()) <= set(wire.prompt_values):
            raise ConfigError(f"prompt = {prompt!r} is not accepted by {preset.name}; use "
                              f"{' or '.join(wire.prompt_values)}.")
        if "none" in prompt.split() and len(prompt.split()) > 1:
            raise ConfigError(f"prompt = {prompt!r} combines none with other values, which providers reject; use none alone.")

    method = str(get("token_endpoint_auth_method", policy.token_endpoint_auth_method))
    if method not in wire.client_auth_methods:
        raise ConfigError(f"token_endpoint_auth_method = {method} is not accepted by {preset.name}; use "
                          f"{' or '.join(wire.client_auth_methods)}.")
    pkce = _pkce(get("pkce", "auto"), preset)

    unauthenticated = str(get("unauthenticated", "auto"))
    if unauthenticated not in ("auto", "redirect", "401"):
        raise ConfigError("unauthenticated must be auto, redirect or 401.")

    allow_hs256 = _as_bool("insecure_allow_hs256", get("insecure_allow_hs256", False))
    if allow_hs256 and len(str(secret).encode()) < 32:
        # RFC 7518 3.2: an HS256 key must be at least 256 bits; shorter ones verify nothing.
        raise ConfigError("insecure_allow_hs256 needs a client_secret of at least 32 bytes (RFC 7518 3.2).")
    algs = _as_list(get("id_token_signing_algs", " ".join(policy.id_token_signing_algs)))
    if not algs:
        raise ConfigError("id_token_signing_algs is empty; leave it out to keep the provider policy, or name algs such as ES256.")
    for alg in algs:
        if alg == "none" or alg.lower() == "none":
            raise ConfigError("id_token_signing_algs may never contain none.")
        if alg.startswith("HS") and not allow_hs256:
            raise ConfigError(f"id_token_signing_algs contains {alg}; symmetric signatures need insecure_allow_hs256 = true.")
        if alg not in (*STANDARD_SIGNING_ALGS, "ES384", "ES512", "RS384", "RS512", "PS384", "PS512", "HS256"):
            raise ConfigError(f"id_token_signing_algs contains unknown alg {alg!r}.")
    if set(algs) - set(policy.id_token_signing_algs) - {"HS256"} and preset is not GENERIC:
        raise ConfigError(f"id_token_signing_algs may only narrow the {preset.name} policy "
                          f"({', '.join(policy.id_token_signing_algs)}).")
    if allow_hs256 and "HS256" not in algs:
        algs = (*algs, "HS256")
    policy = Policy(**{**policy.__dict__, "id_token_signing_algs": algs,
                       "userinfo_signing_algs": tuple(a for a in policy.userinfo_signing_algs if a in algs) or algs})

    keys_file = get("keys_file")
    if policy.require_encryption and not keys_file:
        raise ConfigError(f"keys_file is required: {preset.name} encrypts tokens to the service's keys. "
                          "Create one with `fcplus-wsgi keys generate --out keys.json` (mode 0600).")

    login_path = _as_path("login_path", get("login_path", "/oidc/login"))
    logout_path = _as_path("logout_path", get("logout_path", "/oidc/logout"))
    jwks_path = _as_path("jwks_path", get("jwks_path", "/oidc/jwks.json"))
    landing = _as_path("logout_landing_path", get("logout_landing_path", "/"))
    own = {"login_path": login_path, "logout_path": logout_path, "jwks_path": jwks_path,
           "redirect_uri (callback path)": callback_path}
    if logout_cb:
        own["post_logout_redirect_uri (logout callback path)"] = logout_cb
    seen: dict[str, str] = {}
    for name, path in own.items():
        if path == "/":
            raise ConfigError(f"{name} is '/', which would hide the whole application; use a path such as /oidc/callback.")
        if path in seen:
            raise ConfigError(f"{name} and {seen[path]} are both {path}; each flow path must be distinct.")
        seen[path] = name

    protected = tuple(_as_path("protected_paths", p) for p in _as_list(get("protected_paths", "/")))
    public = tuple(_as_path("public_paths", p) for p in _as_list(get("public_paths", "")))
    if landing in (login_path, logout_path, callback_path, jwks_path) or landing == logout_cb:
        raise ConfigError("logout_landing_path must be a page of the application, not a flow path.")
    step_up = _parse_step_up(get("step_up", ""), policy)

    idle = _as_int("session_idle_timeout", get("session_idle_timeout", 1800), minimum=60)
    max_age = _as_int("session_max_age", get("session_max_age", 12 * 3600), minimum=60)
    if max_age < idle:
        raise ConfigError("session_max_age must be at least session_idle_timeout.")

    ca_bundle = get("ca_bundle")
    if ca_bundle and not Path(ca_bundle).is_file():
        raise ConfigError(f"ca_bundle {ca_bundle} is not a readable file.")

    store = str(get("session_store", default_store_url()))
    if not store.startswith(("memory://", "sqlite:///", "redis://", "rediss://", "redis+sentinel://",
                             "rediss+sentinel://", "redis+cluster://", "rediss+cluster://")):
        # Never echo the URL: a Redis URL may hold a password.
        raise ConfigError("session_store names an unknown backend; use memory://, sqlite:///PATH or redis://HOST "
                          f"({REFERENCE_HINT}).")

    observability = _observability(get, seen)
    return Settings(
        preset=preset, policy=policy, issuer=issuer, client_id=str(client_id), client_secret=str(secret),
        redirect_uri=redirect_uri, callback_path=callback_path, post_logout_redirect_uri=plru,
        logout_callback_path=logout_cb, scopes=scopes, acr_values=acr_values, keys_file=keys_file,
        session_store=store, cookie_name=cookie_name, cookie_secure=cookie_secure,
        protected_paths=protected, public_paths=public, login_path=login_path, logout_path=logout_path,
        jwks_path=jwks_path,
        session_idle_timeout=idle, session_max_age=max_age,
        clock_skew=_as_int("clock_skew", get("clock_skew", 60)),
        http_timeout=_as_float("http_timeout", get("http_timeout", 10), 0.1),
        ca_bundle=ca_bundle, prompt=prompt, claims=claims, token_endpoint_auth_method=method,
        unauthenticated=unauthenticated, logout_landing_path=landing,
        pending_login_ttl=_as_int("pending_login_ttl", get("pending_login_ttl", 600), minimum=30),
        allow_hs256=allow_hs256,
        jwks_refresh_interval=_as_float("jwks_refresh_interval", get("jwks_refresh_interval", 2), 0.0),
        max_response_bytes=_as_int("max_response_bytes", get("max_response_bytes", 1 << 20), minimum=4096),
        **observability,
        step_up=step_up,
        templates_dir=_templates_dir(get("templates_dir")),
        login_page=_as_bool("login_page", get("login_page", False)),
        messages=_messages(get("messages_file")),
        pkce=pkce,
    )


def _pkce(value: Any, preset: Preset) -> bool | None:
    """`pkce = auto` follows the preset's wire profile; true or false override it, except
    that PKCE is never sent to a core whose authorize route refuses code_challenge."""
    text = str(value).strip().lower()
    if text == "auto":
        return preset.wire.pkce
    on = _as_bool("pkce", text)
    if on and "code_challenge" not in preset.wire.authorize:
        raise ConfigError(f"pkce = true cannot work with {preset.name}: its core refuses code_challenge on the "
                          "authorization request (every login would end on the platform's error page); "
                          "remove pkce or set pkce = auto.")
    return on


def _encryption_override(value: Any, preset: Preset, policy: Policy) -> Policy:
    """`require_encryption` may ask for encrypted tokens where the platform can encrypt
    (FranceConnect, when registered so); it may not drop FC+'s mandatory encryption, nor
    ask ProConnect, whose core never encrypts, for it."""
    if value is None:
        return policy
    wanted = _as_bool("require_encryption", value)
    if wanted and not policy.encryption_possible:
        raise ConfigError(f"require_encryption = true contradicts {preset.name}: its core never encrypts tokens; "
                          "remove require_encryption.")
    if not wanted and preset.policy.require_encryption:
        raise ConfigError(f"require_encryption = false contradicts {preset.name}, which always encrypts the id_token "
                          "and userinfo; remove require_encryption.")
    return Policy(**{**policy.__dict__, "require_encryption": wanted})
