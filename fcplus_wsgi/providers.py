"""Provider presets: where a platform lives, what its answers must look like, and what it
accepts on the wire.

A preset bundles URLs with a policy and a wire profile. `issuer` in the settings replaces
only the URL, so `provider = fcplus-integration` with a loopback issuer keeps the full FC+
policy and wire rules against a local provider: that is how the demo, the tests and users'
CI stay faithful to the platform.

Discovery does not say what a platform accepts: FranceConnect's core advertises PKCE in its
discovery (node-oidc-provider's default) while its authorize route refuses `code_challenge`
(a DTO validated with forbidNonWhitelisted). So what is sent to each endpoint comes from the
wire profile, read from the platforms' public core source, never from discovery. The facts
and their sources are in docs/providers.md.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from typing import Any

# eIDAS levels in increasing strength; a returned acr must be at least the lowest requested.
EIDAS_ORDER = ("eidas1", "eidas2", "eidas3")

JWE_KEY_ALGS = ("RSA-OAEP", "RSA-OAEP-256", "ECDH-ES")
JWE_ENCS = ("A256GCM", "A128GCM", "A192GCM", "A128CBC-HS256", "A192CBC-HS384", "A256CBC-HS512")
# What a plain, strict OpenID Connect client accepts: asymmetric signatures only.
STANDARD_SIGNING_ALGS = ("RS256", "ES256", "PS256")

# Per-login hints a wire profile may accept (query parameters of the login path).
LOGIN_HINTS = ("idp_hint", "login_hint", "siret_hint")

log = logging.getLogger("fcplus_wsgi")


@dataclass(frozen=True)
class WireProfile:
    """The parameters each endpoint of a platform's core accepts, and their constraints.

    The middleware never sends a parameter outside these sets: the FranceConnect cores
    answer an unknown authorize parameter with their own error page, and the user never
    comes back to the service. `pkce = None` (generic providers only) means "when
    discovery advertises S256"; a platform profile says yes or no from its core's code.
    """

    platform: str
    authorize: frozenset[str]
    token: frozenset[str]
    revocation: frozenset[str]
    end_session: frozenset[str]
    prompt_values: tuple[str, ...]
    pkce: bool | None
    # Lengths the core checks on nonce and state (ours are 64 hex characters).
    nonce_length: tuple[int, int] = (22, 512)
    state_length: tuple[int, int] = (32, 512)
    client_auth_methods: tuple[str, ...] = ("client_secret_post",)
    # How the requested acr is sent: "acr_values" (FC, FC+) or "claims" essential values
    # (ProConnect's documented way, checked on return).
    acr_request: str = "acr_values"
    # The core checks the redirect and logout URIs' hosts for a TLD (configurable there).
    source: str = ""

    @property
    def hints(self) -> tuple[str, ...]:
        """The per-login hints this platform accepts, in a fixed order."""
        return tuple(h for h in LOGIN_HINTS if h in self.authorize)

    def check(self, endpoint: str, params: dict[str, Any]) -> None:
        """Refuse (ValueError) a request carrying a parameter the platform does not accept.

        Settings validation makes this unreachable in a well-configured service; it stays
        as the last guard, since one stray parameter strands every user at the platform.
        """
        allowed: frozenset[str] = getattr(self, endpoint)
        extra = sorted(set(params) - allowed)
        if extra:
            raise ValueError(f"{self.platform} {endpoint} does not accept {', '.join(extra)}")


_CORE_AUTHORIZE = frozenset({"response_type", "client_id", "redirect_uri", "scope", "state", "nonce"})
_TOKEN = frozenset({"grant_type", "code", "redirect_uri", "client_id", "client_secret"})
_FC_REVOCATION = frozenset({"token", "client_id", "client_secret"})
_FC_END_SESSION = frozenset({"id_token_hint", "post_logout_redirect_uri", "state", "client_id", "logout_hint",
                             "ui_locales"})

# france-connect/sources back/apps/core-fcp/src/dto/authorize-params.dto.ts (whitelist +
# forbidNonWhitelisted), back/libs/oidc-provider/src/dto/{revocation-token,logout}-params.dto.ts,
# back/instances/core-fcp-{high,low}/src/config/oidc-provider.ts (allowedPrompt, auth methods).
FC_WIRE = WireProfile(
    platform="franceconnect",
    authorize=_CORE_AUTHORIZE | {"acr_values", "claims", "prompt", "idp_hint", "ui_locales"},
    token=_TOKEN,
    revocation=_FC_REVOCATION,
    end_session=_FC_END_SESSION,
    prompt_values=("login", "consent"),
    pkce=False,
    nonce_length=(22, 512),
    source="france-connect/sources: core-fcp authorize-params.dto.ts, oidc-provider revocation-token-params.dto.ts "
           "and logout-params.dto.ts, core-fcp-low/-high config oidc-provider.ts",
)
FCPLUS_WIRE = replace(FC_WIRE, platform="fcplus")

# proconnect-gouv/federation back/apps/core-fca-low/src/dto/*.dto.ts and config/oidc-provider.ts.
PROCONNECT_WIRE = WireProfile(
    platform="proconnect",
    authorize=_CORE_AUTHORIZE | {"acr_values", "claims", "prompt", "idp_hint", "login_hint", "siret_hint",
                                 "code_challenge", "code_challenge_method"},
    token=_TOKEN | {"code_verifier"},
    revocation=_FC_REVOCATION,
    end_session=_FC_END_SESSION,
    prompt_values=("login", "consent", "none"),
    pkce=True,
    nonce_length=(1, 512),
    acr_request="claims",
    source="proconnect-gouv/federation: core-fca-low authorize-params.dto.ts, revocation-token-params.dto.ts, "
           "logout-params.dto.ts, config/oidc-provider.ts",
)

# A plain OpenID Connect provider: what the standard allows, PKCE when discovery offers it.
GENERIC_WIRE = WireProfile(
    platform="generic",
    authorize=_CORE_AUTHORIZE | {"acr_values", "claims", "prompt", "login_hint", "code_challenge",
                                 "code_challenge_method"},
    token=_TOKEN | {"code_verifier"},
    revocation=_FC_REVOCATION | {"token_type_hint"},
    end_session=frozenset({"id_token_hint", "post_logout_redirect_uri", "state", "client_id"}),
    prompt_values=("none", "login", "consent", "select_account"),
    pkce=None,
    nonce_length=(1, 512),
    state_length=(1, 512),
    client_auth_methods=("client_secret_post", "client_secret_basic"),
    source="OpenID Connect Core 1.0, RFC 7009, RFC 7636",
)


@dataclass(frozen=True)
class Policy:
    """What a provider's responses must look like to be accepted."""

    id_token_signing_algs: tuple[str, ...] = STANDARD_SIGNING_ALGS
    userinfo_signing_algs: tuple[str, ...] = STANDARD_SIGNING_ALGS
    require_encryption: bool = False
    # False where the platform never encrypts (ProConnect): a JWE from it is refused.
    encryption_possible: bool = True
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
    # FranceConnect asks relying parties to refetch its JWKS and retry once when a
    # signature does not verify (its keys rotate), not only on an unknown kid.
    refetch_jwks_on_bad_signature: bool = False
    # "pairwise" (FC, FC+: one sub per service) or "public" (ProConnect: one sub per IdP account).
    subject_type: str = "pairwise"


@dataclass(frozen=True)
class Preset:
    name: str
    issuer: str
    policy: Policy = field(default_factory=Policy)
    label: str = ""
    wire: WireProfile = GENERIC_WIRE
    # The name of the platform's documentation for operators (docs/providers.md rows).
    platform: str = "generic"


_FCPLUS_POLICY = Policy(
    id_token_signing_algs=("ES256",),
    userinfo_signing_algs=("ES256",),
    require_encryption=True,
    encryption_algs=("RSA-OAEP", "ECDH-ES", "RSA-OAEP-256"),
    encryption_encs=("A256GCM",),
    userinfo_format="jwt",
    acr_values_allowed=("eidas2", "eidas3"),
    default_acr_values=("eidas2",),
    require_acr_values=True,
    token_endpoint_auth_method="client_secret_post",
    default_scopes=("openid", "given_name", "family_name", "birthdate", "gender", "birthplace", "birthcountry"),
    refetch_jwks_on_bad_signature=True,
)

_FC_POLICY = Policy(
    id_token_signing_algs=("ES256", "RS256"),
    userinfo_signing_algs=("ES256", "RS256"),
    require_encryption=False,
    encryption_algs=("RSA-OAEP", "ECDH-ES"),
    encryption_encs=("A256GCM",),
    userinfo_format="jwt",
    acr_values_allowed=("eidas1",),
    default_acr_values=("eidas1",),
    require_acr_values=True,
    default_scopes=("openid", "given_name", "family_name", "birthdate", "gender", "birthplace", "birthcountry"),
    refetch_jwks_on_bad_signature=True,
)

# core-fca-low config supportedAcrValues; acr is asked through `claims` essential values.
# (The older documentation's self-asserted/consistency-checked URIs are gone from the core.)
PROCONNECT_ACR_VALUES = ("eidas0", "eidas0-mfa", "eidas1", "eidas1-mfa", "eidas2", "eidas3",
                         "https://proconnect.gouv.fr/assurance/certification-dirigeant")

_PROCONNECT_POLICY = Policy(
    id_token_signing_algs=("RS256", "ES256"),
    userinfo_signing_algs=("RS256", "ES256"),
    require_encryption=False,
    encryption_possible=False,
    userinfo_format="jwt",
    acr_values_allowed=PROCONNECT_ACR_VALUES,
    default_acr_values=(),
    require_acr_values=False,
    default_scopes=("openid", "given_name", "usual_name", "email", "uid", "siret", "idp_id"),
    subject_type="public",
)


def _production(policy: Policy) -> Policy:
    return replace(policy, require_https_issuer=True)


PRESETS: dict[str, Preset] = {
    "fcplus-integration": Preset(
        "fcplus-integration", "https://auth.integ01.dev-franceconnect.fr/api/v2", _FCPLUS_POLICY,
        "FranceConnect+ (integration)", FCPLUS_WIRE, "fcplus"),
    "fcplus-production": Preset(
        "fcplus-production", "https://auth.franceconnect.gouv.fr/api/v2", _production(_FCPLUS_POLICY),
        "FranceConnect+", FCPLUS_WIRE, "fcplus"),
    "franceconnect-integration": Preset(
        "franceconnect-integration", "https://fcp-low.integ01.dev-franceconnect.fr/api/v2", _FC_POLICY,
        "FranceConnect (integration)", FC_WIRE, "franceconnect"),
    "franceconnect-production": Preset(
        "franceconnect-production", "https://oidc.franceconnect.gouv.fr/api/v2", _production(_FC_POLICY),
        "FranceConnect", FC_WIRE, "franceconnect"),
    "proconnect-integration": Preset(
        "proconnect-integration", "https://fca.integ01.dev-agentconnect.fr/api/v2", _PROCONNECT_POLICY,
        "ProConnect (integration)", PROCONNECT_WIRE, "proconnect"),
    "proconnect-production": Preset(
        "proconnect-production", "https://auth.agentconnect.gouv.fr/api/v2", _production(_PROCONNECT_POLICY),
        "ProConnect", PROCONNECT_WIRE, "proconnect"),
    "proconnect-rie-integration": Preset(
        "proconnect-rie-integration", "https://fca.integ02.agentconnect.rie.gouv.fr/api/v2", _PROCONNECT_POLICY,
        "ProConnect RIE (integration)", PROCONNECT_WIRE, "proconnect"),
    "proconnect-rie-production": Preset(
        "proconnect-rie-production", "https://auth.agentconnect.rie.gouv.fr/api/v2", _production(_PROCONNECT_POLICY),
        "ProConnect RIE", PROCONNECT_WIRE, "proconnect"),
}

# AgentConnect became ProConnect on the same servers: the old names keep working, with a
# deprecation warning naming the replacement.
ALIASES: dict[str, str] = {
    "agentconnect-integration": "proconnect-integration",
    "agentconnect-production": "proconnect-production",
    "agentconnect-rie-integration": "proconnect-rie-integration",
    "agentconnect-rie-production": "proconnect-rie-production",
}

GENERIC = Preset("generic", "", Policy(), "OpenID Connect", GENERIC_WIRE, "generic")


def find_preset(name: str) -> Preset | None:
    """The preset of that name; an alias resolves to its replacement, with a warning."""
    if name in PRESETS:
        return PRESETS[name]
    if name in ALIASES:
        new = ALIASES[name]
        log.warning("provider = %s is deprecated (AgentConnect is now ProConnect); write provider = %s", name, new)
        return PRESETS[new]
    return None


def preset_names() -> list[str]:
    """Every accepted provider name, presets then aliases, for error messages and the CLI."""
    return [*PRESETS, *ALIASES]


def acr_claims_request(acr_values: tuple[str, ...], claims: str | None) -> str | None:
    """The `claims` parameter asking for acr as essential values (ProConnect), merged into
    the operator's own claims request; None when there is nothing to ask."""
    request: dict[str, Any] = json.loads(claims) if claims else {}
    if acr_values:
        id_token = request.setdefault("id_token", {})
        if not isinstance(id_token, dict):
            raise ValueError("claims.id_token must be an object")
        id_token["acr"] = {"essential": True, "values": list(acr_values)}
    return json.dumps(request, separators=(",", ":")) if request else None


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


def describe_preset(preset: Preset) -> dict[str, Any]:
    """Every value of a preset as plain data, for `fcplus-wsgi presets` and the docs."""
    p, w = preset.policy, preset.wire
    return {
        "name": preset.name, "label": preset.label, "platform": preset.platform, "issuer": preset.issuer,
        "discovery": preset.issuer + "/.well-known/openid-configuration" if preset.issuer else "",
        "scopes": list(p.default_scopes), "acr_values": list(p.default_acr_values),
        "acr_values_allowed": list(p.acr_values_allowed) if p.acr_values_allowed is not None else "any",
        "acr_request": w.acr_request,
        "id_token_signing_algs": list(p.id_token_signing_algs),
        "userinfo_signing_algs": list(p.userinfo_signing_algs),
        "require_encryption": p.require_encryption, "encryption_possible": p.encryption_possible,
        "encryption_algs": list(p.encryption_algs) if p.encryption_possible else [],
        "encryption_encs": list(p.encryption_encs) if p.encryption_possible else [],
        "userinfo_format": p.userinfo_format, "subject_type": p.subject_type,
        "require_https_issuer": p.require_https_issuer,
        "refetch_jwks_on_bad_signature": p.refetch_jwks_on_bad_signature,
        "token_endpoint_auth_method": p.token_endpoint_auth_method,
        "pkce": "when discovery offers S256" if w.pkce is None else w.pkce,
        "prompt_values": list(w.prompt_values), "login_hints": list(w.hints),
        "authorize_params": sorted(w.authorize), "token_params": sorted(w.token),
        "revocation_params": sorted(w.revocation), "end_session_params": sorted(w.end_session),
        "client_auth_methods": list(w.client_auth_methods), "wire_source": w.source,
    }
