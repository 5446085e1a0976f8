"""What each imitated platform accepts, refuses and advertises, in one table per platform.

The three profiles share one provider; everything that differs between FranceConnect+,
FranceConnect and ProConnect on the wire lives here, next to the core source file it
was read from (docs/development-provider.md lists them), so that a difference between
a profile and its platform is a one-line fix in one place. Discovery is the document
the platform's node-oidc-provider would build from its core configuration, which
advertises more than the core accepts (PKCE and request objects on FranceConnect):
services must learn from here that discovery is not an allow-list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .identities import (
    AGENT_CLAIMS,
    AGENT_SCOPE_CLAIMS,
    FC_CLAIMS,
    FC_SCOPE_CLAIMS,
    PIVOT_CLAIMS,
    SCOPE_CLAIMS,
    SUPPORTED_SCOPES,
)

FCPLUS = "fcplus"
FRANCECONNECT = "franceconnect"
PROCONNECT = "proconnect"
PROFILE_NAMES: tuple[str, ...] = (FCPLUS, FRANCECONNECT, PROCONNECT)

# Authorize allow-lists: core-fcp AuthorizeParamsDto (shared by FC+ and FC) and
# core-fca-low AuthorizeParamsDto (ProConnect).
FC_AUTHORIZE_PARAMS = frozenset({
    "client_id", "acr_values", "claims", "response_type", "nonce", "state", "redirect_uri", "scope", "prompt",
    "idp_hint", "ui_locales",
})
PC_AUTHORIZE_PARAMS = frozenset({
    "client_id", "acr_values", "claims", "response_type", "response_mode", "nonce", "login_hint", "siret_hint",
    "state", "redirect_uri", "scope", "prompt", "idp_hint", "code_challenge", "code_challenge_method",
})
REVOCATION_PARAMS = frozenset({"token", "client_id", "client_secret"})

PC_ACR_VALUES: tuple[str, ...] = (
    "eidas0", "eidas0-mfa", "eidas1", "eidas1-mfa", "eidas2", "eidas3",
    "https://proconnect.gouv.fr/assurance/certification-dirigeant",
)


@dataclass(frozen=True)
class Profile:
    """One platform's wire behaviour; see the module docstring for where each value comes from."""

    name: str
    label: str
    authorize_params: frozenset[str]
    # Code on the platform's error page when the authorize DTO refuses the request.
    dto_error_code: str
    prompts: tuple[str, ...]
    acr_values: tuple[str, ...]  # weakest first for FC/FC+
    default_acr: str
    # Signature algs a client may register here (HS256 exists in the cores but is discouraged).
    client_signing_algs: tuple[str, ...]
    default_signing_alg: str
    # Encryption algs a client may register; () means encryption cannot be registered.
    client_encryption_algs: tuple[str, ...]
    default_encryption_alg: str | None
    subject_type: str
    pkce: bool  # whether /authorize accepts code_challenge
    sso: bool  # whether a provider session lets prompt=none and later logins skip the page
    # Whether revocation refuses fields beyond token/client_id/client_secret (forbidNonWhitelisted).
    revocation_forbids_extra: bool
    scope_claims: dict[str, tuple[str, ...]]
    claim_order: tuple[str, ...]

    @property
    def is_franceconnect_family(self) -> bool:
        return self.name in (FCPLUS, FRANCECONNECT)


PROFILES: dict[str, Profile] = {
    FCPLUS: Profile(
        name=FCPLUS, label="FranceConnect+", authorize_params=FC_AUTHORIZE_PARAMS, dto_error_code="Y030007",
        prompts=("login", "consent"), acr_values=("eidas2", "eidas3"), default_acr="eidas3",
        client_signing_algs=("ES256",), default_signing_alg="ES256",
        client_encryption_algs=("RSA-OAEP", "RSA-OAEP-256", "ECDH-ES"), default_encryption_alg="RSA-OAEP",
        subject_type="pairwise", pkce=False, sso=False, revocation_forbids_extra=True,
        scope_claims=SCOPE_CLAIMS, claim_order=PIVOT_CLAIMS,
    ),
    FRANCECONNECT: Profile(
        name=FRANCECONNECT, label="FranceConnect", authorize_params=FC_AUTHORIZE_PARAMS, dto_error_code="Y030007",
        prompts=("login", "consent"), acr_values=("eidas1",), default_acr="eidas1",
        client_signing_algs=("ES256", "RS256"), default_signing_alg="ES256",
        client_encryption_algs=("RSA-OAEP", "ECDH-ES"), default_encryption_alg=None,
        subject_type="pairwise", pkce=False, sso=False, revocation_forbids_extra=True,
        scope_claims=FC_SCOPE_CLAIMS, claim_order=FC_CLAIMS,
    ),
    PROCONNECT: Profile(
        name=PROCONNECT, label="ProConnect", authorize_params=PC_AUTHORIZE_PARAMS, dto_error_code="Y000400",
        prompts=("login", "consent", "none"), acr_values=PC_ACR_VALUES, default_acr="eidas1",
        client_signing_algs=("ES256", "RS256"), default_signing_alg="ES256",
        client_encryption_algs=(), default_encryption_alg=None,
        subject_type="public", pkce=True, sso=True, revocation_forbids_extra=False,
        scope_claims=AGENT_SCOPE_CLAIMS, claim_order=AGENT_CLAIMS,
    ),
}


def get_profile(name: str) -> Profile:
    """The profile called `name`; KeyError for an unknown one (configuration validates first)."""
    return PROFILES[name]


def scopes_supported(profile: Profile) -> list[str]:
    if profile.name == FCPLUS:
        return list(SUPPORTED_SCOPES)
    if profile.name == FRANCECONNECT:
        return list(SUPPORTED_SCOPES)
    return list(AGENT_SCOPE_CLAIMS)


def released_claims(profile: Profile, scopes: tuple[str, ...] | list[str]) -> list[str]:
    """Claim names the granted scopes release, in the platform's canonical order."""
    wanted = {claim for scope in scopes for claim in profile.scope_claims.get(scope, ())}
    return [claim for claim in profile.claim_order if claim in wanted]


def discovery(profile: Profile, issuer: str) -> dict[str, Any]:
    """The discovery document node-oidc-provider builds from the platform core's configuration.

    FC+ and FC run node-oidc-provider 9.1.2 (lib/actions/discovery.js), ProConnect 7.14.3:
    the key sets differ (9.x has no revocation_endpoint_auth_* keys and hard-codes
    request_uri_parameter_supported false; 7.x has both). The introspection endpoint
    ProConnect's core enables is left out: this provider does not serve it.
    """
    doc: dict[str, Any] = {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token",
        "userinfo_endpoint": f"{issuer}/userinfo",
        "jwks_uri": f"{issuer}/jwks",
        "end_session_endpoint": f"{issuer}/session/end",
        "revocation_endpoint": f"{issuer}/token/revocation",
        "acr_values_supported": list(profile.acr_values),
        "authorization_response_iss_parameter_supported": True,
        "claim_types_supported": ["normal"],
        "claims_parameter_supported": True,
        "code_challenge_methods_supported": ["S256"],
        "response_modes_supported": ["form_post", "fragment", "query"],
        "response_types_supported": ["code"],
        "scopes_supported": scopes_supported(profile),
        "subject_types_supported": [profile.subject_type],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
    }
    base_claims = ["sub", "acr", "sid", "auth_time", "iss"]
    if profile.name == FCPLUS:
        doc.update({
            "claims_supported": [*base_claims, "amr", *PIVOT_CLAIMS],
            "grant_types_supported": ["authorization_code"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "id_token_encryption_alg_values_supported": ["ECDH-ES", "RSA-OAEP", "RSA-OAEP-256"],
            "id_token_encryption_enc_values_supported": ["A256GCM"],
            "userinfo_signing_alg_values_supported": ["ES256"],
            "userinfo_encryption_alg_values_supported": ["ECDH-ES", "RSA-OAEP", "RSA-OAEP-256"],
            "userinfo_encryption_enc_values_supported": ["A256GCM"],
            "request_parameter_supported": True,
            "request_uri_parameter_supported": False,
            "request_object_signing_alg_values_supported": ["ES256"],
            "request_object_encryption_alg_values_supported": ["ECDH-ES", "RSA-OAEP"],
            "request_object_encryption_enc_values_supported": ["A256GCM"],
            "token_endpoint_auth_signing_alg_values_supported": ["ES256"],
            "dpop_signing_alg_values_supported": ["ES256"],
        })
    elif profile.name == FRANCECONNECT:
        # core-fcp-low enables encryption only with OidcProvider_USE_ENCRYPTION; like the
        # public platform (no encryption documented for FC services) it is off here.
        doc.update({
            "claims_supported": [*base_claims, "amr", "idp_id", *FC_CLAIMS],
            "grant_types_supported": ["authorization_code"],
            "id_token_signing_alg_values_supported": ["ES256", "RS256", "HS256"],
            "userinfo_signing_alg_values_supported": ["ES256", "RS256", "HS256"],
            "request_parameter_supported": True,
            "request_uri_parameter_supported": False,
            "request_object_signing_alg_values_supported": ["ES256", "RS256", "HS256"],
            "token_endpoint_auth_signing_alg_values_supported": ["ES256", "RS256"],
            "dpop_signing_alg_values_supported": ["ES256", "RS256"],
        })
    else:
        doc.update({
            "claims_supported": [*base_claims, "amr", *AGENT_CLAIMS],
            # issueRefreshToken is overridden in the core, so node-oidc-provider lists refresh_token.
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "id_token_signing_alg_values_supported": ["ES256", "RS256", "HS256"],
            "userinfo_signing_alg_values_supported": ["ES256", "RS256", "HS256"],
            # features.encryption is enabled in the federation core's library configuration,
            # although ProConnect documents no encryption and registers none.
            "id_token_encryption_alg_values_supported": ["ECDH-ES", "RSA-OAEP"],
            "id_token_encryption_enc_values_supported": ["A256GCM"],
            "userinfo_encryption_alg_values_supported": ["ECDH-ES", "RSA-OAEP"],
            "userinfo_encryption_enc_values_supported": ["A256GCM"],
            # node-oidc-provider 7.x defaults: requestObjects.request false, requestUri true.
            "request_parameter_supported": False,
            "request_uri_parameter_supported": True,
            "require_request_uri_registration": True,
            "request_object_signing_alg_values_supported": ["ES256", "RS256", "HS256"],
            "request_object_encryption_alg_values_supported": ["ECDH-ES", "RSA-OAEP"],
            "request_object_encryption_enc_values_supported": ["A256GCM"],
            "token_endpoint_auth_signing_alg_values_supported": ["ES256", "RS256"],
            "revocation_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
            "revocation_endpoint_auth_signing_alg_values_supported": ["ES256", "RS256"],
        })
    return doc
