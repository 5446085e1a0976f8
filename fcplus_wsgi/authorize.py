"""Building the authorization request and judging return-to targets: pure functions.

Only parameters the platform documents are sent: FC+ and ProConnect reject unknown ones,
so PKCE is added only when discovery advertises S256.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from urllib.parse import quote, unquote, urlsplit

from authlib.oauth2.rfc6749.parameters import prepare_grant_uri

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


def authorization_url(endpoint: str, *, client_id: str, redirect_uri: str, scopes: tuple[str, ...],
                      state: str, nonce: str, acr_values: tuple[str, ...], prompt: str | None,
                      claims: str | None, code_challenge: str | None) -> str:
    extra: dict[str, str] = {"nonce": nonce}
    if acr_values:
        extra["acr_values"] = " ".join(acr_values)
    if prompt:
        extra["prompt"] = prompt
    if claims:
        extra["claims"] = claims
    if code_challenge:
        extra["code_challenge"] = code_challenge
        extra["code_challenge_method"] = "S256"
    return str(prepare_grant_uri(endpoint, client_id, "code", redirect_uri=redirect_uri,
                                 scope=" ".join(scopes), state=state, **extra))


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
