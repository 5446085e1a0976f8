"""Building the authorization request and judging return-to targets: pure functions.

Only parameters the platform's core accepts are sent (the preset's wire profile): the
FranceConnect cores refuse unknown ones with their own error page, whatever their
discovery advertises (PKCE included).
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Mapping
from urllib.parse import quote, unquote, urlsplit

from authlib.common.urls import add_params_to_uri

from .providers import WireProfile, acr_claims_request

MAX_RETURN_TO = 2048
# Kept as they are in a return-to target: RFC 3986 reserved and unreserved characters and '%'
# (existing escapes). Anything else is percent-encoded, since servers write the Location
# header as latin-1 and fail on other characters.
_KEEP = "/?#[]@!$&'()*+,;=:-._~%"


def new_code_verifier() -> str:
    return secrets.token_urlsafe(48)


def s256_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def authorization_params(wire: WireProfile, *, client_id: str, redirect_uri: str, scopes: tuple[str, ...],
                         state: str, nonce: str, acr_values: tuple[str, ...], prompt: str | None,
                         claims: str | None, code_challenge: str | None,
                         hints: Mapping[str, str] | None = None) -> dict[str, str]:
    """The authorization request's parameters, exactly those the platform's core accepts.

    The acr goes where the platform reads it: `acr_values` (FranceConnect, FC+) or the
    `claims` parameter's essential values (ProConnect). Anything outside the wire profile
    raises ValueError: settings validation keeps that from happening, and sending it would
    strand the user on the platform's error page.
    """
    params: dict[str, str] = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
                              "scope": " ".join(scopes), "state": state, "nonce": nonce}
    for name, value, (low, high) in (("nonce", nonce, wire.nonce_length), ("state", state, wire.state_length)):
        if not low <= len(value) <= high:
            raise ValueError(f"{name} must be {low} to {high} characters for {wire.platform}")
    if wire.acr_request == "claims":
        claims = acr_claims_request(acr_values, claims)
    elif acr_values:
        params["acr_values"] = " ".join(acr_values)
    if prompt:
        if not set(prompt.split()) <= set(wire.prompt_values):
            raise ValueError(f"prompt {prompt!r} is not accepted by {wire.platform}")
        params["prompt"] = prompt
    if claims:
        params["claims"] = claims
    if code_challenge:
        params["code_challenge"] = code_challenge
        params["code_challenge_method"] = "S256"
    for name, value in (hints or {}).items():
        params[name] = value
    wire.check("authorize", params)
    return params


def authorization_url(endpoint: str, params: Mapping[str, str]) -> str:
    """The endpoint with the parameters appended (keeping a query the endpoint already has)."""
    return str(add_params_to_uri(endpoint, list(params.items())))


# Per-login hints, checked before anything is sent: ProConnect's core validates login_hint
# as an email and siret_hint as 14 characters; a SIRET is 14 digits. idp_hint is an IdP
# identifier (ProConnect: a UUID; FranceConnect: a short name).
_EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+")
_SIRET = re.compile(r"[0-9]{14}")
_IDP_HINT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


def check_hint(name: str, value: str) -> str | None:
    """Why a hint value is refused, or None when it may be sent."""
    if name == "login_hint":
        return None if len(value) <= 254 and _EMAIL.fullmatch(value) else "login_hint must be an email address"
    if name == "siret_hint":
        return None if _SIRET.fullmatch(value) else "siret_hint must be 14 digits"
    if name == "idp_hint":
        return None if _IDP_HINT.fullmatch(value) else "idp_hint must be an identity provider identifier"
    return f"{name} is not a login hint"


def safe_return_to(value: str | None, default: str = "/") -> str | None:
    """A same-origin path to send the user back to, or None when the value is unsafe.

    Browsers read `//host`, `/\\host`, `\\\\host` and paths with tabs or newlines as other
    origins, and decode %2F/%5C in some contexts, so anything that could turn into a
    scheme, an authority or a backslash after decoding is refused.
    """
    if value is None or value == "":
        return default
    if len(value) > MAX_RETURN_TO:
        return None
    decoded = value
    for _ in range(3):  # nested encodings: %252F...
        nxt = unquote(decoded)
        if nxt == decoded:
            break
        decoded = nxt
    for candidate in (value, decoded):
        if not candidate.startswith("/") or candidate.startswith("//"):
            return None
        if "\\" in candidate or any(ord(c) < 0x20 or ord(c) == 0x7F for c in candidate):
            return None
        parts = urlsplit(candidate)
        if parts.scheme or parts.netloc:
            return None
    return quote(value, safe=_KEEP)
