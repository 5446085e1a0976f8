"""Provider presets: where a provider lives and what it must be held to.

A preset bundles URLs with a policy. `issuer` in the settings replaces only the URL, so
`provider = fcplus-integration` with a loopback issuer keeps the full FC+ policy against
a local provider: that is how the demo, the tests and users' CI stay faithful to FC+.
Facts come from the platforms' documentation (see docs/providers.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

# eIDAS levels in increasing strength; a returned acr must be at least the lowest requested.
EIDAS_ORDER = ("eidas1", "eidas2", "eidas3")

JWE_KEY_ALGS = ("RSA-OAEP", "RSA-OAEP-256", "ECDH-ES")
JWE_ENCS = ("A256GCM", "A128GCM", "A192GCM", "A128CBC-HS256", "A192CBC-HS384", "A256CBC-HS512")
# What a plain, strict OpenID Connect client accepts: asymmetric signatures only.
STANDARD_SIGNING_ALGS = ("RS256", "ES256", "PS256")


@dataclass(frozen=True)
class Policy:
    """What a provider's responses must look like to be accepted."""

    id_token_signing_algs: tuple[str, ...] = STANDARD_SIGNING_ALGS
    userinfo_signing_algs: tuple[str, ...] = STANDARD_SIGNING_ALGS
    require_encryption: bool = False
    encryption_algs: tuple[str, ...] = JWE_KEY_ALGS
    encryption_encs: tuple[str, ...] = ("A256GCM", "A128GCM", "A128CBC-HS256", "A256CBC-HS512")
    # "jwt" demands application/jwt; "any" also accepts plain JSON.
    userinfo_format: str = "any"
    acr_values_allowed: tuple[str, ...] | None = None
    default_acr_values: tuple[str, ...] = ()
    require_acr_values: bool = False
    require_https_issuer: bool = False
    token_endpoint_auth_method: str = "client_secret_post"
    default_scopes: tuple[str, ...] = ("openid",)
    # Authorization parameters the platform accepts beyond the core ones; anything else
    # (including PKCE, unless discovery advertises it) is never sent.
    optional_params: tuple[str, ...] = ("prompt", "claims", "login_hint", "ui_locales", "max_age")


@dataclass(frozen=True)
class Preset:
    name: str
    issuer: str
    policy: Policy = field(default_factory=Policy)
    label: str = ""


_FCPLUS_POLICY = Policy(
    id_token_signing_algs=("ES256",),
    userinfo_signing_algs=("ES256",),
    require_encryption=True,
    encryption_algs=("RSA-OAEP", "ECDH-ES"),
    encryption_encs=("A256GCM",),
    userinfo_format="jwt",
    acr_values_allowed=("eidas2", "eidas3"),
    default_acr_values=("eidas2",),
    require_acr_values=True,
    token_endpoint_auth_method="client_secret_post",
    default_scopes=("openid", "given_name", "family_name", "birthdate", "gender", "birthplace", "birthcountry"),
    optional_params=("prompt", "claims"),
)

PRESETS: dict[str, Preset] = {
    "fcplus-integration": Preset(
        "fcplus-integration", "https://auth.integ01.dev-franceconnect.fr/api/v2", _FCPLUS_POLICY,
        "FranceConnect+ (integration)"),
    "fcplus-production": Preset(
        "fcplus-production", "https://auth.franceconnect.gouv.fr/api/v2",
        Policy(**{**_FCPLUS_POLICY.__dict__, "require_https_issuer": True}),
        "FranceConnect+"),
}

GENERIC = Preset("generic", "", Policy(), "OpenID Connect")


def acr_satisfies(returned: str | None, requested: tuple[str, ...]) -> bool:
    """True when the returned acr meets the lowest requested level.

    eIDAS values are ordered (eidas3 satisfies a request for eidas2); any other value must
    be one of those requested, since nothing says how foreign values compare.
    """
    if not requested:
        return True
    if not returned:
        return False
    eidas_requested = [EIDAS_ORDER.index(v) for v in requested if v in EIDAS_ORDER]
    if returned in EIDAS_ORDER and eidas_requested:
        return EIDAS_ORDER.index(returned) >= min(eidas_requested)
    return returned in requested
