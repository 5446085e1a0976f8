"""The WSGI application: FC+'s endpoints, under the issuer's path, routed with WebOb.

Behaviour follows FC+ on the wire (see docs/development-provider.md): strict
/authorize validation that rejects any undeclared parameter, a login page instead of
a real identity provider, nested signed-then-encrypted id_token and userinfo,
single-use 30 s codes, 60 s bearer tokens, RP-initiated logout and RFC 7009
revocation. Errors that cannot be trusted to reach the right client (unknown client,
unregistered redirect_uri) are shown as a page and never redirected.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import re
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeAlias
from urllib.parse import unquote_plus, urlencode, urlsplit

from webob import Request, Response
from webob.multidict import MultiDict, NestedMultiDict, NoVars

from . import pages
from .config import ENCRYPTION_ENCS, ClientConfig, DevProviderConfig
from .identities import PIVOT_CLAIMS, SCOPE_CLAIMS, SUPPORTED_SCOPES
from .store import CodeGrant, Interaction, RedeemError, Store, new_secret
from .tokens import (
    SIGNING_ALG,
    ClientKeyCache,
    ClientKeyError,
    TokenMinter,
    at_hash,
    pairwise_sub,
)

log = logging.getLogger("fcplus_wsgi.devprovider")

IDP_ID = "dev"
ACR_LEVELS: tuple[str, ...] = ("eidas2", "eidas3")  # lowest first
AUTHORIZE_PARAMS = frozenset({
    "response_type", "client_id", "redirect_uri", "scope", "state", "nonce", "acr_values", "claims",
    "prompt", "idp_hint", "ui_locales",
})
LOGOUT_PARAMS = frozenset({"id_token_hint", "post_logout_redirect_uri", "state", "client_id", "logout_hint",
                           "ui_locales"})
MIN_STATE_NONCE = 32
MAX_PARAM = 2048
_SAFE_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,40}")
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_DUMMY_SECRET = b"\x00" * 32
_FORM = "application/x-www-form-urlencoded"

Params: TypeAlias = "MultiDict | NestedMultiDict | NoVars"  # what WebOb gives for query or form
Handler: TypeAlias = Callable[[Request], Response]


class _AuthorizeError(Exception):
    """An /authorize failure that is redirected back to the (trusted) redirect_uri."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


def _names(names: Iterable[str]) -> str:
    """Parameter names fit to echo in an ASCII error_description (anything odd becomes '?')."""
    shown = [name if _SAFE_NAME.fullmatch(name) else "?" for name in sorted(set(names))]
    return ", ".join(shown[:5]) + (", ..." if len(shown) > 5 else "")


def _single(params: Params) -> tuple[dict[str, str], list[str]]:
    """Params as a plain dict, plus the names that were repeated (duplicates are refused)."""
    seen: dict[str, str] = {}
    repeated: list[str] = []
    for name, value in params.items():
        if name in seen:
            repeated.append(name)
        seen[name] = value
    return seen, repeated


def _add_query(uri: str, params: dict[str, str | None]) -> str:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    if not query:
        return uri
    if "?" not in uri:
        return f"{uri}?{query}"
    return f"{uri}{'' if uri.endswith(('?', '&')) else '&'}{query}"


def _redirect(uri: str, params: dict[str, str | None]) -> Response:
    response = Response(status=303)
    response.location = _add_query(uri, params)
    return response


def _params(request: Request) -> Params | None:
    """Query parameters for GET, form fields for POST; None for a POST that is not a plain form."""
    if request.method == "GET":
        return request.GET
    if request.content_type != _FORM:
        return None
    return request.POST


def _json(status: int, body: dict[str, Any]) -> Response:
    return Response(json.dumps(body, ensure_ascii=False, separators=(",", ":")), status=status,
                    content_type="application/json", charset="UTF-8")


def _oauth_error(status: int, error: str, description: str) -> Response:
    return _json(status, {"error": error, "error_description": description})


def _html(page: pages.Page, status: int = 200) -> Response:
    response = Response(page.body, status=status, content_type="text/html", charset="UTF-8")
    response.headers["Content-Security-Policy"] = page.csp
    return response


def _error_page(status: int, title_fr: str, title_en: str, detail_fr: str, detail_en: str) -> Response:
    return _html(pages.error_page(title_fr, title_en, detail_fr, detail_en), status)


def _bad_request(detail_fr: str, detail_en: str) -> Response:
    return _error_page(400, "Requête invalide", "Invalid request", detail_fr, detail_en)


def levels_from(min_acr: str) -> tuple[str, ...]:
    """The eIDAS levels acceptable for a request whose minimum is `min_acr`."""
    return ACR_LEVELS[ACR_LEVELS.index(min_acr):]


def released_claims(scopes: Iterable[str]) -> list[str]:
    """Claim names the granted scopes release, in the canonical FC+ order."""
    wanted = {claim for scope in scopes for claim in SCOPE_CLAIMS.get(scope, ())}
    return [claim for claim in PIVOT_CLAIMS if claim in wanted]


class DevProviderApp:
    """The development provider as a WSGI callable; `config` is the validated configuration.

    `clock` (seconds since the epoch) is injectable so tests can expire codes and
    tokens without sleeping; `key_cache` lets callers share or stub client-key fetches.
    """

    def __init__(self, config: DevProviderConfig, *, clock: Callable[[], float] = time.time,
                 key_cache: ClientKeyCache | None = None) -> None:
        self.config = config
        self._clock = clock
        self._issuer_path = urlsplit(config.issuer).path.rstrip("/")
        self._store = Store(clock, config.code_ttl, config.access_token_ttl)
        self._minter = TokenMinter(config.signing_jwks(), key_cache or ClientKeyCache())
        self._routes: dict[str, tuple[frozenset[str], Handler]] = {
            "/.well-known/openid-configuration": (frozenset({"GET", "HEAD"}), self._discovery),
            "/jwks": (frozenset({"GET", "HEAD"}), self._jwks),
            "/authorize": (frozenset({"GET", "POST"}), self._authorize),
            "/token": (frozenset({"POST"}), self._token),
            "/userinfo": (frozenset({"GET", "POST"}), self._userinfo),
            "/session/end": (frozenset({"GET", "POST"}), self._end_session),
            "/token/revocation": (frozenset({"POST"}), self._revocation),
        }

    # -- public helpers -----------------------------------------------------------------

    @property
    def issuer(self) -> str:
        return self.config.issuer

    def public_jwks(self) -> dict[str, Any]:
        """The JWK Set served at {issuer}/jwks (public signing keys)."""
        return self._minter.public_jwks()

    def discovery(self) -> dict[str, Any]:
        """The discovery document served at {issuer}/.well-known/openid-configuration."""
        iss = self.config.issuer
        return {
            "issuer": iss,
            "authorization_endpoint": f"{iss}/authorize",
            "token_endpoint": f"{iss}/token",
            "userinfo_endpoint": f"{iss}/userinfo",
            "jwks_uri": f"{iss}/jwks",
            "end_session_endpoint": f"{iss}/session/end",
            "revocation_endpoint": f"{iss}/token/revocation",
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": [SIGNING_ALG],
            "id_token_encryption_alg_values_supported": ["RSA-OAEP", "ECDH-ES"],
            "id_token_encryption_enc_values_supported": list(ENCRYPTION_ENCS),
            "userinfo_signing_alg_values_supported": [SIGNING_ALG],
            "userinfo_encryption_alg_values_supported": ["RSA-OAEP", "ECDH-ES"],
            "userinfo_encryption_enc_values_supported": list(ENCRYPTION_ENCS),
            "acr_values_supported": list(ACR_LEVELS),
            "scopes_supported": list(SUPPORTED_SCOPES),
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr",
                                 "at_hash", "sid", "idp_id", *PIVOT_CLAIMS],
            "claims_parameter_supported": True,
            "request_parameter_supported": False,
            "request_uri_parameter_supported": False,
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "revocation_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        }

    # -- WSGI -----------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        try:
            response = self._dispatch(request)
        except Exception:
            # Neither the path (it may hold an interaction id) nor the query is logged; the
            # traceback names code paths only, and handlers never put tokens in exceptions.
            log.exception("development provider: unexpected error on a %s request", request.method)
            response = _oauth_error(500, "server_error", "unexpected error in the development provider")
        self._harden(response)
        result: Iterable[bytes] = response(environ, start_response)
        return result

    @staticmethod
    def _harden(response: Response) -> None:
        """Headers every answer gets: nothing cached, sniffed, framed or leaked via Referer."""
        response.headers["Cache-Control"] = "no-store"
        response.headers["Pragma"] = "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "no-referrer"
        if "Content-Security-Policy" not in response.headers:
            response.headers["Content-Security-Policy"] = (
                "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")

    def _dispatch(self, request: Request) -> Response:
        path = request.path
        prefix = self._issuer_path
        if not path.startswith(prefix + "/"):
            return self._not_found()
        route = path[len(prefix):]
        methods: frozenset[str]
        handler: Handler
        if route.startswith("/interaction/"):
            methods, handler = frozenset({"POST"}), self._interaction
        elif route in self._routes:
            methods, handler = self._routes[route]
        else:
            return self._not_found()
        if request.method not in methods:
            response = _oauth_error(405, "invalid_request", "HTTP method not allowed on this endpoint")
            response.allow = sorted(methods)
            return response
        return handler(request)

    def _not_found(self) -> Response:
        return _error_page(404, "Page introuvable", "Not found",
                           f"Le document de découverte est à {self.config.issuer}/.well-known/openid-configuration.",
                           f"The discovery document is at {self.config.issuer}/.well-known/openid-configuration.")

    # -- discovery and keys -----------------------------------------------------------------

    def _discovery(self, request: Request) -> Response:
        return _json(200, self.discovery())

    def _jwks(self, request: Request) -> Response:
        return _json(200, self.public_jwks())

    # -- authorization ------------------------------------------------------------------------

    def _authorize(self, request: Request) -> Response:
        params = _params(request)
        if params is None:
            return _bad_request(f"Le corps de la requête doit être de type {_FORM}.",
                                f"The request body must be {_FORM}.")
        client_ids = params.getall("client_id")
        if len(client_ids) != 1:
            return _bad_request("Le paramètre client_id est absent ou répété.",
                                "The client_id parameter is missing or repeated.")
        client = self.config.client(client_ids[0])
        if client is None:
            log.info("authorize: unknown client_id")
            return _bad_request("Ce service (client_id) n'est pas enregistré auprès du fournisseur.",
                                "This service (client_id) is not registered with the provider.")
        redirect_uris = params.getall("redirect_uri")
        if len(redirect_uris) != 1 or redirect_uris[0] not in client.redirect_uris:
            log.info("authorize: redirect_uri not registered for client %s", client.client_id)
            return _bad_request(
                "Le paramètre redirect_uri est absent, répété ou ne correspond exactement à aucune adresse "
                "enregistrée pour ce service.",
                "The redirect_uri parameter is missing, repeated or does not exactly match any URI "
                "registered for this service.")
        redirect_uri = redirect_uris[0]
        states = params.getall("state")
        state = states[0] if len(states) == 1 else None
        try:
            single = self._check_authorize(params)
        except _AuthorizeError as exc:
            log.info("authorize: %s for client %s", exc.error, client.client_id)
            return _redirect(redirect_uri, {"error": exc.error, "error_description": exc.description,
                                            "state": state})
        scopes = tuple(dict.fromkeys(single["scope"].split()))
        min_acr = min((v for v in single["acr_values"].split() if v in ACR_LEVELS), key=ACR_LEVELS.index)
        interaction = self._store.add_interaction(client.client_id, redirect_uri, scopes, single["state"],
                                                  single["nonce"], min_acr)
        return self._login_page(client, interaction)

    def _check_authorize(self, params: Params) -> dict[str, str]:
        """FC+ core's DTO checks (forbidNonWhitelisted), in the order FC+ applies them."""
        unknown = [name for name in params if name not in AUTHORIZE_PARAMS]
        if unknown:
            raise _AuthorizeError("invalid_request", f"Y030007 parameter not allowed: {_names(unknown)}")
        single, repeated = _single(params)
        if repeated:
            raise _AuthorizeError("invalid_request", f"Y030007 parameter repeated: {_names(repeated)}")
        if "response_type" not in single:
            raise _AuthorizeError("invalid_request", "Y030007 response_type is required")
        if single["response_type"] != "code":
            raise _AuthorizeError("unsupported_response_type", "only response_type=code is supported")
        for name in ("scope", "state", "nonce", "acr_values"):
            if not single.get(name, "").strip():
                raise _AuthorizeError("invalid_request", f"Y030007 {name} is required")
        for name in ("state", "nonce"):
            if not MIN_STATE_NONCE <= len(single[name]) <= MAX_PARAM:
                raise _AuthorizeError("invalid_request",
                                      f"Y030007 {name} must be {MIN_STATE_NONCE} to {MAX_PARAM} characters long")
        scopes = single["scope"].split()
        if "openid" not in scopes:
            raise _AuthorizeError("invalid_scope", "scope must contain openid")
        bad_scopes = [scope for scope in scopes if scope not in SUPPORTED_SCOPES]
        if bad_scopes:
            raise _AuthorizeError("invalid_scope", f"scope not supported: {_names(bad_scopes)}")
        if not any(value in ACR_LEVELS for value in single["acr_values"].split()):
            raise _AuthorizeError("invalid_request", "Y020002 acr_values not supported")
        if "claims" in single:
            try:
                claims = json.loads(single["claims"])
            except ValueError:
                claims = None
            if not isinstance(claims, dict):
                raise _AuthorizeError("invalid_request", "Y030007 claims must be a JSON object")
        prompts = single.get("prompt", "").split()
        if any(value not in ("login", "consent", "none") for value in prompts):
            raise _AuthorizeError("invalid_request", "Y030007 prompt value not supported")
        if "none" in prompts:
            raise _AuthorizeError("login_required", "the provider keeps no session: every login is interactive")
        if single.get("idp_hint", IDP_ID) != IDP_ID:
            raise _AuthorizeError("invalid_request", "Y030016 idp_hint not allowed")
        return single

    def _login_page(self, client: ClientConfig, interaction: Interaction) -> Response:
        page = pages.render(
            "authorize.html",
            form_targets=(pages.origin(interaction.redirect_uri),),
            client_id=client.client_id,
            min_acr=interaction.min_acr,
            action=f"{self._issuer_path}/interaction/{interaction.id}",
            identities=self.config.identities,
            levels=levels_from(interaction.min_acr),
            acr_labels=pages.ACR_LABELS,
            claims=released_claims(interaction.scopes),
        )
        return _html(page)

    def _interaction(self, request: Request) -> Response:
        interaction_id = request.path[len(self._issuer_path) + len("/interaction/"):]
        interaction = self._store.pop_interaction(interaction_id)
        if interaction is None:
            return _bad_request("Cette demande de connexion est inconnue, déjà utilisée ou expirée (10 minutes). "
                                "Recommencez depuis le service.",
                                "This sign-in request is unknown, already used or expired (10 minutes). "
                                "Start again from the service.")
        if request.content_type != _FORM:
            return _bad_request(f"Le formulaire doit être envoyé en {_FORM}.", f"The form must be sent as {_FORM}.")
        form, repeated = _single(request.POST)
        if repeated:
            return _bad_request("Un champ du formulaire est répété.", "A form field is repeated.")
        decision = form.get("decision")
        if decision == "refuse":
            log.info("interaction: user refused for client %s", interaction.client_id)
            return _redirect(interaction.redirect_uri, {"error": "access_denied",
                                                        "error_description": "the user refused to sign in",
                                                        "state": interaction.state})
        if decision != "accept":
            return _bad_request("Décision inconnue.", "Unknown decision.")
        identity = self.config.identity(form.get("identity", ""))
        if identity is None:
            return _bad_request("Identité de test inconnue.", "Unknown test identity.")
        acr = form.get("acr", "")
        if acr not in levels_from(interaction.min_acr):
            return _bad_request(f"Niveau eIDAS refusé : le service exige {interaction.min_acr} au minimum.",
                                f"eIDAS level refused: the service requires {interaction.min_acr} or above.")
        grant = self._store.add_code(interaction, identity.uid, acr)
        log.info("interaction: authorization code issued for client %s at %s", interaction.client_id, acr)
        return _redirect(interaction.redirect_uri, {"code": grant.code, "state": interaction.state})

    # -- client authentication ------------------------------------------------------------------

    def _form(self, request: Request) -> tuple[dict[str, str], Response | None]:
        if request.content_type != _FORM:
            return {}, _oauth_error(400, "invalid_request", f"the request body must be {_FORM}")
        form, repeated = _single(request.POST)
        if repeated:
            return {}, _oauth_error(400, "invalid_request", f"parameter repeated: {_names(repeated)}")
        return form, None

    def _client_form(self, request: Request) -> tuple[dict[str, str], ClientConfig] | Response:
        """The form of a back-channel call (token, revocation) and the client it authenticates."""
        form, error = self._form(request)
        if error is not None:
            return error
        client = self._authenticate(request, form)
        return client if isinstance(client, Response) else (form, client)

    def _authenticate(self, request: Request, form: dict[str, str]) -> ClientConfig | Response:
        """client_secret_basic or client_secret_post (exactly one), compared in constant time."""
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.strip().partition(" ")
        basic = scheme.lower() == "basic"
        client_id: str | None
        if basic:
            try:
                decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
            except ValueError:  # binascii.Error, non-ASCII input and bad UTF-8 are all ValueErrors
                decoded = ""
            raw_id, colon, raw_secret = decoded.partition(":")
            if not colon:
                return self._unauthorized("malformed HTTP Basic credentials", basic)
            # RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
            client_id, secret = unquote_plus(raw_id), unquote_plus(raw_secret)
            if "client_secret" in form:
                return _oauth_error(400, "invalid_request", "use only one client authentication method")
            if form.get("client_id", client_id) != client_id:
                return self._unauthorized("client_id differs from the authenticated client", basic)
        elif "client_secret" in form:
            client_id, secret = form.get("client_id"), form["client_secret"]
        else:
            return self._unauthorized("client authentication is required", basic)
        client = self.config.client(client_id) if client_id else None
        expected = client.client_secret.encode("utf-8") if client else _DUMMY_SECRET
        if not hmac.compare_digest(secret.encode("utf-8"), expected) or client is None:
            log.info("client authentication failed")
            return self._unauthorized("client authentication failed", basic)
        return client

    @staticmethod
    def _unauthorized(description: str, basic: bool) -> Response:
        response = _oauth_error(401, "invalid_client", description)
        if basic:
            response.headers["WWW-Authenticate"] = 'Basic realm="fcplus-devprovider"'
        return response

    # -- token ----------------------------------------------------------------------------------

    def _token(self, request: Request) -> Response:
        checked = self._client_form(request)
        if isinstance(checked, Response):
            return checked
        form, client = checked
        grant_type = form.get("grant_type")
        if not grant_type:
            return _oauth_error(400, "invalid_request", "grant_type is required")
        if grant_type != "authorization_code":
            return _oauth_error(400, "unsupported_grant_type", "only authorization_code is supported")
        code = form.get("code")
        if not code:
            return _oauth_error(400, "invalid_request", "code is required")
        if "redirect_uri" not in form:
            return _oauth_error(400, "invalid_request", "redirect_uri is required")
        try:
            grant = self._store.peek_code(code, client.client_id, form["redirect_uri"])
        except RedeemError as exc:
            log.info("token: invalid_grant for client %s (%s)", client.client_id, exc)
            return _oauth_error(400, "invalid_grant", str(exc))
        access_token = new_secret()
        try:
            key = self._minter.prepare_key(client, "id_token")
            id_token = self._minter.mint(self._id_token_claims(client, grant, access_token), client, "id_token",
                                         key)
        except ClientKeyError as exc:
            log.warning("token: cannot encrypt the id_token for client %s (%s)", client.client_id, exc)
            return _oauth_error(400, "invalid_client", str(exc))
        try:
            token = self._store.redeem_code(code, client.client_id, form["redirect_uri"], access_token)
        except RedeemError as exc:  # lost a race with a concurrent redemption
            return _oauth_error(400, "invalid_grant", str(exc))
        log.info("token: tokens issued for client %s", client.client_id)
        return _json(200, {
            "access_token": token.token,
            "token_type": "Bearer",
            "expires_in": self.config.access_token_ttl,
            "id_token": id_token,
            "scope": " ".join(grant.scopes),
        })

    def _id_token_claims(self, client: ClientConfig, grant: CodeGrant, access_token: str) -> dict[str, Any]:
        now = int(self._clock())
        return {
            "iss": self.config.issuer,
            "sub": pairwise_sub(client.client_id, grant.uid),
            "aud": client.client_id,
            "exp": now + self.config.id_token_ttl,
            "iat": now,
            "auth_time": grant.auth_time,
            "nonce": grant.nonce,
            "acr": grant.acr,
            "amr": ["pwd"],
            "at_hash": at_hash(access_token),
            "sid": grant.sid,
            "idp_id": IDP_ID,
        }

    # -- userinfo -------------------------------------------------------------------------------

    @staticmethod
    def _bearer_error(status: int, error: str | None, description: str) -> Response:
        challenge = 'Bearer realm="fcplus-devprovider"'
        body: dict[str, Any] = {"error_description": description}
        if error is not None:
            challenge += f', error="{error}", error_description="{description}"'
            body = {"error": error, **body}
        response = _json(status, body)
        response.headers["WWW-Authenticate"] = challenge
        return response

    def _userinfo(self, request: Request) -> Response:
        header = request.headers.get("Authorization")
        if header is None:
            return self._bearer_error(401, None, "an Authorization: Bearer header is required")
        scheme, _, value = header.strip().partition(" ")
        value = value.strip()
        if scheme.lower() != "bearer" or not _B64TOKEN.fullmatch(value):
            return self._bearer_error(400, "invalid_request", "malformed Authorization: Bearer header")
        token = self._store.access_token(value)
        if token is None:
            log.info("userinfo: invalid_token")
            return self._bearer_error(401, "invalid_token", "the access token is unknown, expired or revoked")
        client = self.config.client(token.client_id)
        identity = self.config.identity(token.uid)
        if client is None or identity is None:  # config objects are immutable; cannot happen
            return self._bearer_error(401, "invalid_token", "the access token is unknown, expired or revoked")
        claims: dict[str, Any] = {"sub": pairwise_sub(client.client_id, identity.uid), "iss": self.config.issuer,
                                  "aud": client.client_id}
        available = identity.claims()
        for name in released_claims(token.scopes):
            if name in available:
                claims[name] = available[name]
        try:
            key = self._minter.prepare_key(client, "userinfo")
            body = self._minter.mint(claims, client, "userinfo", key)
        except ClientKeyError as exc:
            log.warning("userinfo: cannot encrypt for client %s (%s)", client.client_id, exc)
            return _oauth_error(400, "invalid_client", str(exc))
        log.info("userinfo: served for client %s", client.client_id)
        return Response(body.encode("ascii"), status=200, content_type="application/jwt")

    def revocations(self, client_id: str) -> int:
        """How many live access tokens this client has revoked (RFC 7009), for tests and CI."""
        return self._store.revocations.get(client_id, 0)

    # -- logout and revocation --------------------------------------------------------------------

    def _end_session(self, request: Request) -> Response:
        params = _params(request)
        if params is None:
            return _bad_request(f"Le corps de la requête doit être de type {_FORM}.",
                                f"The request body must be {_FORM}.")
        unknown = [name for name in params if name not in LOGOUT_PARAMS]
        single, repeated = _single(params)
        if unknown or repeated:
            return _bad_request("Paramètre inconnu ou répété dans la demande de déconnexion.",
                                "Unknown or repeated parameter in the logout request.")
        hint = single.get("id_token_hint", "")
        if not hint:
            return _bad_request("Le paramètre id_token_hint est obligatoire.", "The id_token_hint parameter is required.")
        if hint.count(".") == 4:
            return _bad_request(
                "id_token_hint est un JWE : envoyez le JWS signé obtenu après déchiffrement de l'id_token.",
                "id_token_hint is a JWE: send the signed JWS found inside the decrypted id_token.")
        claims = self._minter.verify_own(hint)
        aud = claims.get("aud") if claims else None
        client = self.config.client(aud) if isinstance(aud, str) else None
        if claims is None or claims.get("iss") != self.config.issuer or client is None or "at_hash" not in claims:
            return _bad_request("id_token_hint n'est pas un id_token émis par ce fournisseur.",
                                "id_token_hint is not an id_token issued by this provider.")
        if single.get("client_id", client.client_id) != client.client_id:
            return _bad_request("client_id ne correspond pas à id_token_hint.",
                                "client_id does not match id_token_hint.")
        target = single.get("post_logout_redirect_uri")
        if target is None or target not in client.post_logout_redirect_uris:
            return _bad_request(
                "post_logout_redirect_uri est absent ou ne correspond exactement à aucune adresse de "
                "déconnexion enregistrée pour ce service.",
                "post_logout_redirect_uri is missing or does not exactly match any logout URI registered "
                "for this service.")
        log.info("end_session: logout for client %s", client.client_id)
        return _redirect(target, {"state": single.get("state")})

    def _revocation(self, request: Request) -> Response:
        checked = self._client_form(request)
        if isinstance(checked, Response):
            return checked
        form, client = checked
        token = form.get("token")
        if not token:
            return _oauth_error(400, "invalid_request", "token is required")
        self._store.revoke_access_token(token, client.client_id)
        log.info("revocation: request handled for client %s", client.client_id)
        return Response(b"", status=200, content_type="text/plain")


def make_app(config: DevProviderConfig, *, clock: Callable[[], float] = time.time,
             key_cache: ClientKeyCache | None = None) -> DevProviderApp:
    """Build the development provider's WSGI application for `config`."""
    if not isinstance(config, DevProviderConfig):
        raise TypeError("make_app() needs a DevProviderConfig")
    return DevProviderApp(config, clock=clock, key_cache=key_cache)

