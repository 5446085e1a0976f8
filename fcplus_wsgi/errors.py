"""Every way a sign-in can fail, as one catalogue of typed entries.

A failure is a `FlowError` carrying a stable catalogue code. The code decides the HTTP
status, the category (what kind of trouble it is for the user), the French and English
messages, the operator hint and whether a retry link makes sense, so pages, metrics and
logs all speak of the same thing with bounded values. Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Category(str, Enum):
    USER_CANCELLED = "user_cancelled"
    SESSION_EXPIRED = "session_expired"
    PROVIDER_UNAVAILABLE = "provider_unavailable"
    MISCONFIGURED = "service_misconfigured"
    SECURITY = "security_check_failed"


@dataclass(frozen=True)
class ErrorSpec:
    code: str
    category: Category
    status: int
    message_fr: str
    message_en: str
    hint: str
    retry: bool


_C = Category
CATALOGUE: dict[str, ErrorSpec] = {}


def _add(code: str, category: Category, status: int, fr: str, en: str, hint: str, retry: bool) -> None:
    CATALOGUE[code] = ErrorSpec(code, category, status, fr, en, hint, retry)


# Shared wording, so the same situation reads the same way whatever the code.
_MISCONF_FR = "Le service n'a pas pu vous connecter à cause d'un problème de configuration de son côté. Réessayez plus tard ou utilisez un autre moyen de connexion."
_MISCONF_EN = "The service could not sign you in because of a configuration problem on its side. Try again later or use another way to sign in."
_SECURITY_FR = "La réponse reçue du fournisseur d'identité n'a pas passé les contrôles de sécurité. Par précaution, vous n'êtes pas connecté."
_SECURITY_EN = "The response from the identity provider failed the security checks. As a precaution, you are not signed in."
_UNAVAIL_FR = "Le service d'identification ne répond pas correctement pour le moment. Réessayez dans quelques minutes."
_UNAVAIL_EN = "The identity service is not answering properly at the moment. Try again in a few minutes."
_EXPIRED_FR = "Votre tentative de connexion a expiré ou a déjà été utilisée. Recommencez la connexion."
_EXPIRED_EN = "Your sign-in attempt has expired or was already used. Please sign in again."
_INTERACT_FR = "La connexion demande une action de votre part auprès du fournisseur d'identité. Recommencez la connexion."
_INTERACT_EN = "Signing in needs an action from you at the identity provider. Please sign in again."

# --- Authorization error responses (OpenID Connect Core 3.1.2.6) -------------------------------
_add("access_denied", _C.USER_CANCELLED, 403,
     "Vous avez annulé la connexion, ou le fournisseur d'identité ne l'a pas acceptée. Vous pouvez réessayer ou utiliser un autre moyen de connexion.",
     "You cancelled the sign-in, or the identity provider did not accept it. You can try again or use another way to sign in.",
     "User cancelled or was refused at the provider (FC: RNIPP rejection, blocked account, expired platform session). Nothing to fix.", True)
for _code in ("login_required", "interaction_required", "consent_required", "account_selection_required"):
    _add(_code, _C.USER_CANCELLED, 401, _INTERACT_FR, _INTERACT_EN,
         f"Provider answered {_code}: it needs user interaction (e.g. after prompt=none). Send the user through a normal login.", True)
for _code, _hint in (
    ("invalid_request", "The provider rejected the authorization request (FC+: Y030007 bad parameters, Y020002 acr_values not supported, Y030016 idp_hint). Check scopes, acr_values, redirect_uri and extra parameters."),
    ("unauthorized_client", "The client is not allowed this flow at the provider. Check the registration (client_id, environment)."),
    ("unsupported_response_type", "The provider does not accept response_type=code for this client. Check the registration."),
    ("invalid_scope", "A requested scope is not granted to this client (FC+: habilitation/DataPass). Align `scopes` with the registration."),
    ("invalid_request_uri", "The provider rejected a request_uri. This middleware does not send one: check custom parameters."),
    ("invalid_request_object", "The provider rejected a request object. This middleware does not send one: check custom parameters."),
    ("request_not_supported", "The provider does not support request objects. Remove custom request parameters."),
    ("request_uri_not_supported", "The provider does not support request_uri. Remove custom request parameters."),
    ("registration_not_supported", "The provider does not support the registration parameter. Remove custom parameters."),
):
    _add(_code, _C.MISCONFIGURED, 500, _MISCONF_FR, _MISCONF_EN, _hint, False)
_add("server_error", _C.PROVIDER_UNAVAILABLE, 502, _UNAVAIL_FR, _UNAVAIL_EN,
     "The provider reported an unexpected error. Retry; contact the provider's partner support if it persists.", True)
_add("temporarily_unavailable", _C.PROVIDER_UNAVAILABLE, 503, _UNAVAIL_FR, _UNAVAIL_EN,
     "The provider is temporarily unavailable (FC: RNIPP timeout Y010011/Y010012). Retry later.", True)
_add("unknown_authorization_error", _C.PROVIDER_UNAVAILABLE, 502, _UNAVAIL_FR, _UNAVAIL_EN,
     "The provider returned an error code outside OpenID Connect Core 3.1.2.6; see the logs for the code.", True)

# --- Token error responses (OpenID Connect Core 3.1.3.4 / RFC 6749 5.2) -----------------------
_add("token.invalid_grant", _C.SESSION_EXPIRED, 400, _EXPIRED_FR, _EXPIRED_EN,
     "The code was refused: already used (reload or back button on the callback), expired (30 s on FC+), or redirect_uri differs from the authorization request.", True)
_add("token.invalid_client", _C.MISCONFIGURED, 500, _MISCONF_FR, _MISCONF_EN,
     "Client authentication failed: check client_id, client_secret, the environment (integration vs production) and token_endpoint_auth_method (FC+ documents client_secret_post).", False)
for _code, _hint in (
    ("token.invalid_request", "The provider rejected the token request as malformed."),
    ("token.unauthorized_client", "The client may not use the authorization_code grant at the provider."),
    ("token.unsupported_grant_type", "The provider does not support the authorization_code grant for this client."),
    ("token.invalid_scope", "The provider rejected the scope during the token exchange."),
):
    _add(_code, _C.MISCONFIGURED, 500, _MISCONF_FR, _MISCONF_EN, _hint, False)
_add("token.unknown_error", _C.PROVIDER_UNAVAILABLE, 502, _UNAVAIL_FR, _UNAVAIL_EN,
     "The token endpoint returned an error code outside RFC 6749 5.2.", True)

# --- UserInfo error responses (OpenID Connect Core 5.3.3 / RFC 6750 3.1) ----------------------
_add("userinfo.invalid_token", _C.SESSION_EXPIRED, 401, _EXPIRED_FR, _EXPIRED_EN,
     "The access token was refused at userinfo (expired: 60 s on FC+, or revoked). Check the server clock and latency.", True)
_add("userinfo.invalid_request", _C.MISCONFIGURED, 500, _MISCONF_FR, _MISCONF_EN,
     "The provider rejected the userinfo request as malformed.", False)
_add("userinfo.insufficient_scope", _C.MISCONFIGURED, 500, _MISCONF_FR, _MISCONF_EN,
     "The access token lacks the scope userinfo needs; check `scopes`.", False)
_add("userinfo.unknown_error", _C.PROVIDER_UNAVAILABLE, 502, _UNAVAIL_FR, _UNAVAIL_EN,
     "The userinfo endpoint returned an error outside RFC 6750 3.1.", True)

# --- Transport failures talking to the provider -----------------------------------------------
_add("provider_timeout", _C.PROVIDER_UNAVAILABLE, 504, _UNAVAIL_FR, _UNAVAIL_EN,
     "A call to the provider timed out (see http_timeout).", True)
_add("provider_unreachable", _C.PROVIDER_UNAVAILABLE, 503, _UNAVAIL_FR, _UNAVAIL_EN,
     "The provider could not be reached (DNS, connection refused, network).", True)
_add("provider_tls_error", _C.PROVIDER_UNAVAILABLE, 502, _UNAVAIL_FR, _UNAVAIL_EN,
     "TLS verification of the provider failed; check ca_bundle and the system trust store.", True)
_add("provider_http_error", _C.PROVIDER_UNAVAILABLE, 502, _UNAVAIL_FR, _UNAVAIL_EN,
     "The provider answered with an unexpected HTTP status (5xx or other).", True)
_add("provider_bad_response", _C.PROVIDER_UNAVAILABLE, 502, _UNAVAIL_FR, _UNAVAIL_EN,
     "The provider answered with a body that is not the expected JSON or JWT.", True)
_add("provider_response_too_large", _C.PROVIDER_UNAVAILABLE, 502, _UNAVAIL_FR, _UNAVAIL_EN,
     "The provider's response exceeded the size cap.", True)
_add("revocation_refused", _C.PROVIDER_UNAVAILABLE, 502, _UNAVAIL_FR, _UNAVAIL_EN,
     "The provider refused to revoke the access token at logout (HTTP status in the log). The local session is "
     "ended anyway; check the client credentials and that nothing outside the platform's wire profile was sent.", True)
_add("discovery_issuer_mismatch", _C.MISCONFIGURED, 502, _MISCONF_FR, _MISCONF_EN,
     "The discovery document names another issuer than the configured one: check `issuer`/`provider`.", False)
_add("discovery_invalid", _C.MISCONFIGURED, 502, _MISCONF_FR, _MISCONF_EN,
     "The discovery document lacks a required endpoint, lists an http:// endpoint for an https:// issuer "
     "(or for a non-loopback host), or does not offer what the provider policy requires; "
     "`fcplus-wsgi check` names which.", False)

# --- Callback checks ------------------------------------------------------------------------------
_add("callback_malformed", _C.SECURITY, 400, _SECURITY_FR, _SECURITY_EN,
     "The callback carried no code, repeated parameters, oversized values or control characters.", True)
_add("state_missing", _C.SECURITY, 400, _SECURITY_FR, _SECURITY_EN,
     "The callback carried no state parameter.", True)
_add("state_unknown", _C.SESSION_EXPIRED, 400, _EXPIRED_FR, _EXPIRED_EN,
     "The state is unknown, expired or already used (reload/back button, or a login older than the pending-login lifetime).", True)
_add("state_browser_mismatch", _C.SECURITY, 403, _SECURITY_FR, _SECURITY_EN,
     "The state belongs to a login started in another browser (possible login CSRF), or the login cookie was lost (SameSite, http/https mismatch).", True)
_add("issuer_mismatch_callback", _C.SECURITY, 400, _SECURITY_FR, _SECURITY_EN,
     "The callback's iss parameter (RFC 9207) names another issuer, or is missing although discovery advertises authorization_response_iss_parameter_supported (possible mix-up attack).", True)

# --- Token validation ---------------------------------------------------------------------------
for _code, _hint in (
    ("id_token_missing", "The token response carried no id_token."),
    ("id_token_malformed", "The id_token is not a compact JWS/JWE."),
    ("id_token_not_encrypted", "The provider policy requires an encrypted id_token but a plain JWS arrived."),
    ("id_token_encryption_alg", "The JWE uses a key-management alg or enc outside the allow-list (e.g. dir, RSA1_5)."),
    ("id_token_decryption_failed", "No service key could decrypt the id_token (encrypted to a foreign or rotated-out key; check keys_file and the published JWKS)."),
    ("id_token_signature_alg", "The id_token signature alg is not allowed (none, HS* unless configured, or outside the provider policy)."),
    ("id_token_signature_key", "No provider key matches the id_token (unknown kid after a JWKS refresh, or several candidates and no kid)."),
    ("id_token_signature_invalid", "The id_token signature does not verify."),
    ("id_token_claims_invalid", "The id_token payload is not a JSON object or a required claim is missing or of the wrong type."),
    ("id_token_issuer", "The id_token iss differs from the provider issuer."),
    ("id_token_audience", "The id_token aud does not contain client_id, or azp is missing/wrong with several audiences."),
    ("id_token_expired", "The id_token exp is in the past beyond clock_skew (check NTP; FC+ id_tokens live 60 s)."),
    ("id_token_issued_in_future", "The id_token iat is in the future beyond clock_skew (check NTP)."),
    ("id_token_nonce", "The id_token nonce differs from the one sent (replay or mix-up)."),
    ("userinfo_malformed", "The userinfo response is not JSON/JWT as the provider policy requires, or its signature/encryption is invalid."),
    ("userinfo_not_encrypted", "The provider policy requires an encrypted, signed userinfo JWT."),
    ("userinfo_sub_mismatch", "The userinfo sub differs from the id_token sub (token substitution)."),
    ("userinfo_issuer_audience", "The userinfo JWT iss/aud do not match the provider and client."),
):
    _add(_code, _C.SECURITY, 401, _SECURITY_FR, _SECURITY_EN, _hint, True)
_add("acr_insufficient", _C.SECURITY, 403,
     "Le niveau de garantie de votre identité (eIDAS) est inférieur à celui qu'exige ce service. Reconnectez-vous avec un moyen d'identification de niveau suffisant.",
     "The assurance level (eIDAS) of your identity is lower than this service requires. Sign in again with a means of identification of a sufficient level.",
     "The id_token acr is below the requested level (or absent/unknown).", True)

# --- Local failures -------------------------------------------------------------------------------
_add("store_unavailable", _C.PROVIDER_UNAVAILABLE, 503,
     "Le service de connexion est momentanément indisponible. Réessayez dans quelques instants.",
     "The sign-in service is momentarily unavailable. Try again in a moment.",
     "The session store failed (database locked, disk full, Redis down). Public paths keep working.", True)
_add("login_parameter_invalid", _C.SECURITY, 400,
     "Le lien de connexion que vous avez suivi contient un paramètre invalide. Recommencez la connexion depuis le service.",
     "The sign-in link you followed carries an invalid parameter. Start signing in again from the service.",
     "A login path query parameter (acr, prompt, idp_hint, login_hint, siret_hint) is malformed, repeated, or not "
     "accepted by this provider; nothing was sent to the provider.", True)
_add("return_to_invalid", _C.SECURITY, 400, _SECURITY_FR, _SECURITY_EN,
     "The return-to target is not a same-origin path; it was refused (open redirect attempt).", True)
_add("internal_error", _C.MISCONFIGURED, 500, _MISCONF_FR, _MISCONF_EN,
     "An unexpected error happened in the middleware; the correlation id leads to the log entry.", True)


class FlowError(Exception):
    """A failure of one flow step, identified by a catalogue code.

    `detail` is for the operator log only (never shown to users, never containing tokens);
    `provider_error`/`provider_description` keep what the provider said, already
    length-capped, for logs and for the escaped, capped line on the page.
    """

    def __init__(self, code: str, *, detail: str = "", provider_error: str | None = None,
                 provider_description: str | None = None) -> None:
        if code not in CATALOGUE:
            raise KeyError(f"unknown error code {code!r}")
        super().__init__(code)
        self.code = code
        self.detail = detail
        self.provider_error = provider_error
        self.provider_description = cap(provider_description) if provider_description else None
        # Set by the flow once it knows which login this failure belongs to.
        self.correlation_id: str | None = None
        # Set by the flow for a refused callback: the page and level the login was for.
        self.return_to: str | None = None
        self.acr: tuple[str, ...] = ()

    @property
    def spec(self) -> ErrorSpec:
        return CATALOGUE[self.code]


MAX_DESCRIPTION = 200


def cap(text: str, limit: int = MAX_DESCRIPTION) -> str:
    """Keep a provider-supplied text printable and short before it reaches a page or a log."""
    cleaned = "".join(ch if ch.isprintable() else "?" for ch in text[: limit * 2])
    return cleaned[:limit] + ("…" if len(cleaned) > limit else "")


AUTHORIZATION_ERRORS = frozenset({
    "invalid_request", "unauthorized_client", "access_denied", "unsupported_response_type",
    "invalid_scope", "server_error", "temporarily_unavailable", "interaction_required",
    "login_required", "account_selection_required", "consent_required", "invalid_request_uri",
    "invalid_request_object", "request_not_supported", "request_uri_not_supported",
    "registration_not_supported",
})
TOKEN_ERRORS = frozenset({"invalid_request", "invalid_client", "invalid_grant", "unauthorized_client",
                          "unsupported_grant_type", "invalid_scope"})
USERINFO_ERRORS = frozenset({"invalid_request", "invalid_token", "insufficient_scope"})


def authorization_error(error: str, description: str | None) -> FlowError:
    code = error if error in AUTHORIZATION_ERRORS else "unknown_authorization_error"
    return FlowError(code, provider_error=cap(error, 64), provider_description=description)


def token_error(error: str, description: str | None) -> FlowError:
    code = f"token.{error}" if error in TOKEN_ERRORS else "token.unknown_error"
    return FlowError(code, provider_error=cap(error, 64), provider_description=description)


def userinfo_error(error: str, description: str | None) -> FlowError:
    code = f"userinfo.{error}" if error in USERINFO_ERRORS else "userinfo.unknown_error"
    return FlowError(code, provider_error=cap(error, 64), provider_description=description)


def catalogue_markdown() -> str:
    """The catalogue as the Markdown table of docs/errors.md (a test keeps them in sync)."""
    lines = ["| code | category | status | retry | message (fr) | message (en) | operator hint |",
             "|---|---|---|---|---|---|---|"]
    for spec in CATALOGUE.values():
        cells = [f"`{spec.code}`", spec.category.value, str(spec.status), "yes" if spec.retry else "no",
                 spec.message_fr, spec.message_en, spec.hint]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"
