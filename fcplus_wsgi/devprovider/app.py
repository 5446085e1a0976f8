"""The WSGI application: the platform's endpoints, under the issuer's path, routed with WebOb.

Behaviour follows the chosen platform core on the wire (see docs/development-provider.md
and profiles.py): the core's /authorize validation (FranceConnect refuses any undeclared
parameter on its own error page, ProConnect's documentation says the same), a login
page instead of a real identity provider, tokens signed (and for FC+ encrypted) as the
platform does, single-use 30 s codes, 60 s bearer tokens, PKCE where the core takes it,
ProConnect's SSO session, RP-initiated logout and RFC 7009 revocation. Errors that cannot
be trusted to reach the right client (unknown client, unregistered redirect_uri) and
requests the core's validation refuses are shown as a page and never redirected.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeAlias
from urllib.parse import unquote_plus, urlencode, urlsplit

from webob import Request, Response
from webob.multidict import MultiDict, NestedMultiDict, NoVars

from . import pages
from .config import ClientConfig, DevProviderConfig
from .identities import Agent, Identity, fc_claims
from .profiles import (
    FCPLUS,
    PROCONNECT,
    REVOCATION_PARAMS,
    discovery,
    released_claims,
    scopes_supported,
)
from .store import CodeGrant, Interaction, RedeemError, SsoSession, Store, new_secret
from .tokens import (
    ClientKeyCache,
    ClientKeyError,
    TokenMinter,
    at_hash,
    pairwise_sub,
    public_sub,
)

log = logging.getLogger("fcplus_wsgi.devprovider")

IDP_ID = "dev"  # the one identity provider behind FC and FC+ (their only allowed idp_hint)
LOGOUT_PARAMS = frozenset({"id_token_hint", "post_logout_redirect_uri", "state", "client_id", "logout_hint",
                           "ui_locales"})
MIN_STATE_NONCE = 32  # what ProConnect's documentation, and FC's for POST, ask (the cores accept less)
FC_CORE_MIN_NONCE = 22  # core-fcp AuthorizeParamsDto: @MinLength(22); FC's documentation for GET: 22
MAX_PARAM = 2048
FC_ACR_ORDER: tuple[str, ...] = ("eidas1", "eidas2", "eidas3")
NEW_SESSION_ACRS = frozenset({"eidas2", "eidas3"})  # core-fca-low acrValuesThatRequireNewSession
SSO_COOKIE = "devprovider_sso"
_SAFE_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,40}")
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_SAFE_STRING = re.compile(r"[^.*?{}()|\[\]\s\\]*")  # RevocationTokenParamsDTO SAFE_STRING_REGEX
_PC_URL = re.compile(r"https?://[^/].+")  # core-fca-low URL_REGEX
_PKCE_FORMAT = re.compile(r"[A-Za-z0-9\-._~]{43,128}")  # node-oidc-provider pkce_format
_EMAIL = re.compile(r"[^@\s<>\"]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?\.[A-Za-z]{2,}")
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


@dataclass
class _Checked:
    """A validated authorization request, ready to become an interaction or an SSO code."""

    single: dict[str, str]
    scopes: tuple[str, ...]
    min_acr: str
    acr_choices: tuple[str, ...]
    essential_acr: bool
    prompts: set[str] = field(default_factory=set)
    amr_requested: bool = True


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


def s256(verifier: str) -> str:
    """RFC 7636 S256 code challenge of a verifier."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


def _acr_claim_request(claims: Any) -> tuple[bool, list[str] | None, bool]:
    """(essential, requested values or None, amr requested) from a parsed `claims` parameter."""
    id_token = claims.get("id_token") if isinstance(claims, dict) else None
    if not isinstance(id_token, dict):
        return False, None, False
    amr_requested = "amr" in id_token
    acr = id_token.get("acr")
    if not isinstance(acr, dict):
        return False, None, amr_requested
    values: list[str] | None = None
    if isinstance(acr.get("values"), list):
        values = [v for v in acr["values"] if isinstance(v, str)]
    elif isinstance(acr.get("value"), str):
        values = [acr["value"]]
    return acr.get("essential") is True, values, amr_requested


class DevProviderApp:
    """The development provider as a WSGI callable; `config` is the validated configuration.

    `clock` (seconds since the epoch) is injectable so tests can expire codes and
    tokens without sleeping; `key_cache` lets callers share or stub client-key fetches.
    """

    def __init__(self, config: DevProviderConfig, *, clock: Callable[[], float] = time.time,
                 key_cache: ClientKeyCache | None = None) -> None:
        self.config = config
        self.profile = config.platform
        self._clock = clock
        self._issuer_path = urlsplit(config.issuer).path.rstrip("/")
        self._secure_cookie = config.issuer.startswith("https://")
        self._store = Store(clock, config.code_ttl, config.access_token_ttl)
        self._minter = TokenMinter(config.signing_jwks(), key_cache or ClientKeyCache())
        self._routes: dict[str, tuple[frozenset[str], Handler]] = {
            "/.well-known/openid-configuration": (frozenset({"GET", "HEAD"}), self._discovery),
            "/jwks": (frozenset({"GET", "HEAD"}), self._jwks),
            "/authorize": (frozenset({"GET", "POST"}), self._authorize),
            "/token": (frozenset({"POST"}), self._token),
            # The cores route only these methods (FC: userinfo GET; ProConnect: GET and POST;
            # end_session GET on both): anything else never reaches node-oidc-provider.
            "/userinfo": (frozenset({"GET"}) if self.profile.is_franceconnect_family else frozenset({"GET", "POST"}),
                          self._userinfo),
            "/session/end": (frozenset({"GET"}), self._end_session),
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
        return discovery(self.profile, self.config.issuer)

    def revocations(self, client_id: str) -> int:
        """How many live access tokens this client has revoked (RFC 7009), for tests and CI."""
        return self._store.revocations.get(client_id, 0)

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

    def _refused_page(self, reason: str) -> Response:
        """The platform's own error page for a request its authorize validation refuses (no callback)."""
        code = self.profile.dto_error_code
        log.info("authorize: refused by the %s request validation (%s)", self.profile.label, code)
        return _bad_request(
            f"{code} – {self.profile.label} refuse cette demande d'autorisation : {reason}. "
            "Le service n'est pas rappelé.",
            f"{code} – {self.profile.label} refuses this authorization request: {reason}. "
            "The service gets no callback.")

    def _authorize(self, request: Request) -> Response:
        params = _params(request)
        if params is None:
            return _bad_request(f"Le corps de la requête doit être de type {_FORM}.",
                                f"The request body must be {_FORM}.")
        problem = (self._fc_params_problem(params, request.method == "POST") if self.profile.is_franceconnect_family
                   else self._pc_params_problem(params))
        if problem is not None:
            return self._refused_page(problem)
        client_ids = params.getall("client_id")
        client = self.config.client(client_ids[0]) if len(client_ids) == 1 else None
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
        single, _ = _single(params)
        state = single.get("state")
        mode = single.get("response_mode", "query")
        if mode not in ("query", "fragment", "form_post"):
            mode = "query"
        try:
            checked = (self._check_fc(single) if self.profile.is_franceconnect_family
                       else self._check_pc(single))
        except _AuthorizeError as exc:
            log.info("authorize: %s for client %s", exc.error, client.client_id)
            return self._deliver(redirect_uri, mode, {"error": exc.error, "error_description": exc.description,
                                                      "state": state})
        interaction = self._store.add_interaction(
            client.client_id, redirect_uri, checked.scopes, single["state"], single.get("nonce"), checked.min_acr,
            acr_choices=checked.acr_choices, code_challenge=single.get("code_challenge"), response_mode=mode,
            idp_hint=single.get("idp_hint"), login_hint=single.get("login_hint"),
            siret_hint=single.get("siret_hint"), amr_requested=checked.amr_requested)
        if self.profile.sso:
            return self._pc_continue(request, client, interaction, checked)
        return self._login_page(client, interaction)

    def _deliver(self, redirect_uri: str, mode: str, params: dict[str, str | None]) -> Response:
        """Send an authorization response the way the request's response_mode asks (iss per RFC 9207)."""
        params = {**params, "iss": self.config.issuer}
        if mode == "fragment":
            response = Response(status=303)
            response.location = f"{redirect_uri}#{urlencode({k: v for k, v in params.items() if v is not None})}"
            return response
        if mode == "form_post":
            page = pages.render("form_post.html", form_targets=(pages.origin(redirect_uri),), script=True,
                                action=redirect_uri,
                                fields=[(k, v) for k, v in params.items() if v is not None])
            return _html(page)
        return _redirect(redirect_uri, params)

    # The cores' request validation: a failure there is the platform's error page.

    def _common_params_problem(self, params: Params) -> tuple[dict[str, str], str | None]:
        unknown = [name for name in params if name not in self.profile.authorize_params]
        if unknown:
            return {}, f"parameter not allowed: {_names(unknown)}"
        single, repeated = _single(params)
        if repeated:
            return {}, f"parameter repeated: {_names(repeated)}"
        for name in ("client_id", "response_type", "state", "scope", "redirect_uri"):
            if not single.get(name, ""):
                return {}, f"{name} is required"
        if any(len(value) > MAX_PARAM for value in single.values()):
            return {}, f"a parameter is longer than {MAX_PARAM} characters"
        return single, None

    def _fc_params_problem(self, params: Params, post: bool) -> str | None:
        """core-fcp AuthorizeParamsDto, validated with forbidNonWhitelisted before anything else.

        Stricter than the core where FranceConnect's documentation asks more: state and nonce
        of at least 22 characters on GET and 32 in a POST body (the core checks nonce >= 22 only).
        """
        single, problem = self._common_params_problem(params)
        if problem is not None:
            return problem
        if not single.get("acr_values", "").strip():
            return "acr_values is required"
        if len(single.get("nonce", "")) < FC_CORE_MIN_NONCE:
            return f"nonce must be at least {FC_CORE_MIN_NONCE} characters long"
        if any(value not in self.profile.prompts for value in single.get("prompt", "").split()):
            return f"prompt accepts only {', '.join(self.profile.prompts)}"
        minimum = MIN_STATE_NONCE if post else FC_CORE_MIN_NONCE
        for name in ("state", "nonce"):
            if len(single[name]) < minimum:
                return f"{name} must be at least {minimum} characters long (FranceConnect documentation)"
        return None

    def _pc_params_problem(self, params: Params) -> str | None:
        """core-fca-low AuthorizeParamsDto; unknown parameters refused as ProConnect's documentation says."""
        single, problem = self._common_params_problem(params)
        if problem is not None:
            return problem
        if not _PC_URL.fullmatch(single["redirect_uri"]):
            return "redirect_uri must be an http(s) URL"
        nonce = single.get("nonce")
        if nonce is not None and not (nonce.isascii() and 1 <= len(nonce) <= 512):
            return "nonce must be 1 to 512 ASCII characters"
        if "login_hint" in single and not _EMAIL.fullmatch(single["login_hint"]):
            return "login_hint must be an email address"
        if "siret_hint" in single and len(single["siret_hint"]) != 14:
            return "siret_hint must be 14 characters long"
        # Stricter than the core, as ProConnect's documentation asks: nonce required, both >= 32.
        if nonce is None:
            return "nonce is required (ProConnect documentation)"
        for name in ("state", "nonce"):
            if len(single[name]) < MIN_STATE_NONCE:
                return f"{name} must be at least {MIN_STATE_NONCE} characters long (ProConnect documentation)"
        return None

    # node-oidc-provider's checks once the client is known: these errors go back to the service.

    def _check_scopes(self, single: dict[str, str]) -> tuple[str, ...]:
        if single["response_type"] != "code":
            raise _AuthorizeError("unsupported_response_type", "unsupported response_type requested")
        scopes = single["scope"].split()
        if "openid" not in scopes:
            raise _AuthorizeError("invalid_scope", "scope must contain openid")
        supported = scopes_supported(self.profile)
        bad_scopes = [scope for scope in scopes if scope not in supported]
        if bad_scopes:
            raise _AuthorizeError("invalid_scope", f"requested scope is not allowed: {_names(bad_scopes)}")
        return tuple(dict.fromkeys(scopes))

    @staticmethod
    def _parse_claims(single: dict[str, str]) -> Any:
        if "claims" not in single:
            return None
        try:
            claims = json.loads(single["claims"])
        except ValueError:
            claims = None
        if not isinstance(claims, dict):
            raise _AuthorizeError("invalid_request", "could not parse the claims parameter JSON")
        return claims

    def _check_fc(self, single: dict[str, str]) -> _Checked:
        scopes = self._check_scopes(single)
        levels = self.profile.acr_values
        requested = [v for v in single["acr_values"].split() if v in levels]
        if not requested:
            raise _AuthorizeError("invalid_request", "Y020002 acr_values not supported")
        claims = self._parse_claims(single)
        _, _, amr_requested = _acr_claim_request(claims)
        if single.get("idp_hint", IDP_ID) != IDP_ID:
            # OidcProviderIdpHintException (Y030032): a redirect, with a non-standard error code.
            raise _AuthorizeError("invalid_idp_hint", "An idp_hint was provided but is not allowed")
        min_acr = min(requested, key=FC_ACR_ORDER.index)
        choices = levels[levels.index(min_acr):]
        return _Checked(single, scopes, min_acr, choices, essential_acr=True,
                        amr_requested=amr_requested or self.profile.name == FCPLUS)

    def _check_pc(self, single: dict[str, str]) -> _Checked:
        scopes = self._check_scopes(single)
        if single.get("response_mode", "query") not in ("query", "fragment", "form_post"):
            raise _AuthorizeError("invalid_request", "unsupported response_mode requested")
        prompts = set(single.get("prompt", "").split())
        if any(value not in self.profile.prompts for value in prompts):
            raise _AuthorizeError("invalid_request", "unsupported prompt value requested")
        if "none" in prompts and len(prompts) > 1:
            raise _AuthorizeError("invalid_request", "prompt none must only be used alone")
        challenge, method = single.get("code_challenge"), single.get("code_challenge_method")
        if challenge is not None and method is None:
            raise _AuthorizeError("invalid_request", "plain code_challenge_method fallback disabled, "
                                                     "code_challenge_method must be provided")
        if method is not None:
            if method != "S256":
                raise _AuthorizeError("invalid_request", "not supported value of code_challenge_method")
            if challenge is None:
                raise _AuthorizeError("invalid_request", "code_challenge must be provided with code_challenge_method")
        if challenge is not None and not _PKCE_FORMAT.fullmatch(challenge):
            raise _AuthorizeError("invalid_request", "code_challenge must be a string with a minimum length of 43 "
                                                     "characters and a maximum of 128 unreserved characters")
        claims = self._parse_claims(single)
        essential, values, amr_requested = _acr_claim_request(claims)
        supported = self.profile.acr_values
        if values is None and "acr_values" in single:
            values, essential = single["acr_values"].split(), False
        choices: tuple[str, ...] = supported
        if values is not None:
            filtered = tuple(v for v in supported if v in values)
            if filtered:
                choices = filtered
            elif essential:
                raise _AuthorizeError("invalid_request", "none of the requested essential acr values is supported")
        default = self.profile.default_acr if self.profile.default_acr in choices else choices[0]
        ordered = (default, *(acr for acr in choices if acr != default))
        return _Checked(single, scopes, default, ordered, essential_acr=essential and values is not None,
                        prompts=prompts, amr_requested=amr_requested)

    # -- ProConnect: identity provider hint, SSO session, prompt=none ----------------------------

    def _sso_session(self, request: Request) -> SsoSession | None:
        session_id = request.cookies.get(SSO_COOKIE)
        return self._store.session(session_id) if session_id else None

    def _pc_continue(self, request: Request, client: ClientConfig, interaction: Interaction,
                     checked: _Checked) -> Response:
        """What ProConnect's interaction controller does before showing its page."""
        mode = interaction.response_mode
        hint = interaction.idp_hint
        if hint is not None and hint not in {idp.idp_id for idp in self.config.idps}:
            self._store.pop_interaction(interaction.id)
            log.info("authorize: unknown idp_hint for client %s", client.client_id)
            return self._deliver(interaction.redirect_uri, mode, {
                "error": "idp_hint_not_found", "error_description": "provided idp_hint could not be found",
                "state": interaction.state})
        session = self._sso_session(request)
        agent = self.config.identity(session.uid) if session else None
        reusable = (
            session is not None and isinstance(agent, Agent) and "login" not in checked.prompts
            and (hint is None or agent.idp_id == hint)
            and (interaction.login_hint is None or agent.email == interaction.login_hint)
            and (not checked.essential_acr
                 or (session.acr in checked.acr_choices and session.acr not in NEW_SESSION_ACRS))
        )
        if reusable and session is not None and agent is not None:
            self._store.pop_interaction(interaction.id)
            grant = self._store.add_code(interaction, agent.uid, session.acr, session)
            log.info("authorize: SSO session reused for client %s", client.client_id)
            return self._deliver(interaction.redirect_uri, mode, {"code": grant.code, "state": interaction.state})
        if "none" in checked.prompts:
            self._store.pop_interaction(interaction.id)
            log.info("authorize: login_required (prompt=none) for client %s", client.client_id)
            return self._deliver(interaction.redirect_uri, mode, {
                "error": "login_required", "error_description": "End-User authentication is required",
                "state": interaction.state})
        response = self._login_page(client, interaction)
        if session is not None:
            self._store.drop_session(session.id)
            self._clear_sso_cookie(response)
        return response

    def _set_sso_cookie(self, response: Response, session: SsoSession) -> None:
        response.set_cookie(SSO_COOKIE, session.id, max_age=int(session.expires_at - self._clock()),
                            path=self._issuer_path + "/", secure=self._secure_cookie, httponly=True, samesite="lax")

    def _clear_sso_cookie(self, response: Response) -> None:
        response.delete_cookie(SSO_COOKIE, path=self._issuer_path + "/")

    # -- the login page ------------------------------------------------------------------------

    def _login_page(self, client: ClientConfig, interaction: Interaction) -> Response:
        common: dict[str, Any] = {
            "form_targets": (pages.origin(interaction.redirect_uri),),
            "client_id": client.client_id,
            "action": f"{self._issuer_path}/interaction/{interaction.id}",
            "levels": interaction.acr_choices,
            "acr_label": pages.acr_label,
            "claims": released_claims(self.profile, interaction.scopes),
            "platform": self.profile.label,
        }
        if self.profile.name == PROCONNECT:
            agents = self._agents_for(interaction)
            chosen = next((a for a in agents if a.email == interaction.login_hint), None)
            chosen = chosen or next((a for a in agents if a.siret == interaction.siret_hint), None)
            page = pages.render("proconnect.html", agents=agents, chosen=(chosen or agents[0]).uid,
                                login_hint=interaction.login_hint or "", siret_hint=interaction.siret_hint or "",
                                idps={idp.idp_id: idp.name for idp in self.config.idps}, **common)
        else:
            page = pages.render("authorize.html", min_acr=interaction.min_acr, identities=self.config.identities,
                                **common)
        return _html(page)

    def _agents_for(self, interaction: Interaction) -> list[Agent]:
        agents = [a for a in self.config.identities or () if isinstance(a, Agent)]
        if interaction.idp_hint is not None:
            agents = [a for a in agents if a.idp_id == interaction.idp_hint]
        return agents

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
        mode = interaction.response_mode
        if decision == "refuse":
            log.info("interaction: user refused for client %s", interaction.client_id)
            return self._deliver(interaction.redirect_uri, mode, {
                "error": "access_denied", "error_description": "the user refused to sign in",
                "state": interaction.state})
        if decision != "accept":
            return _bad_request("Décision inconnue.", "Unknown decision.")
        identity = self.config.identity(form.get("identity", ""))
        if identity is None or (self.profile.name == PROCONNECT
                                and identity not in self._agents_for(interaction)):
            return _bad_request("Identité de test inconnue.", "Unknown test identity.")
        acr = form.get("acr", "")
        if acr not in interaction.acr_choices:
            return _bad_request(f"Niveau refusé : le service exige {interaction.min_acr} au minimum ou l'un de "
                                f"{', '.join(interaction.acr_choices)}.",
                                f"Level refused: the service requires {interaction.min_acr} or above, or one of "
                                f"{', '.join(interaction.acr_choices)}.")
        session = None
        if self.profile.sso:
            session = self._store.add_session(identity.uid, acr, new_secret())
        grant = self._store.add_code(interaction, identity.uid, acr, session)
        log.info("interaction: authorization code issued for client %s at %s", interaction.client_id, acr)
        response = self._deliver(interaction.redirect_uri, mode, {"code": grant.code, "state": interaction.state})
        if session is not None:
            self._set_sso_cookie(response, session)
        return response

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
        """client_secret_post only, compared in constant time: the cores do not enable client_secret_basic."""
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() == "basic":
            if "client_secret" in form:
                return _oauth_error(400, "invalid_request",
                                    "client authentication must only be provided using one mechanism")
            try:
                decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
            except ValueError:  # binascii.Error, non-ASCII input and bad UTF-8 are all ValueErrors
                decoded = ""
            basic_id = unquote_plus(decoded.partition(":")[0])
            if not self.config.client(basic_id):
                return self._unauthorized("client authentication failed", basic=True)
            log.info("client authentication refused: client_secret_basic is not enabled")
            return self._unauthorized("the provided authentication mechanism (client_secret_basic) does not match "
                                      "the registered client authentication method (client_secret_post)", basic=True)
        if "client_secret" not in form:
            return self._unauthorized("client authentication is required (client_secret_post)", basic=False)
        client_id, secret = form.get("client_id"), form["client_secret"]
        client = self.config.client(client_id) if client_id else None
        expected = client.client_secret.encode("utf-8") if client else _DUMMY_SECRET
        if not hmac.compare_digest(secret.encode("utf-8"), expected) or client is None:
            log.info("client authentication failed")
            return self._unauthorized("client authentication failed", basic=False)
        return client

    @staticmethod
    def _unauthorized(description: str, basic: bool) -> Response:
        response = _oauth_error(401, "invalid_client", description)
        if basic:
            response.headers["WWW-Authenticate"] = 'Basic realm="fcplus-devprovider"'
        return response

    # -- token ----------------------------------------------------------------------------------

    @staticmethod
    def _pkce_ok(grant: CodeGrant, verifier: str | None) -> bool:
        """node-oidc-provider's check: a verifier iff a challenge was sent, and S256(verifier) matches."""
        if verifier is None and grant.code_challenge is None:
            return True
        if verifier is None or grant.code_challenge is None or not _PKCE_FORMAT.fullmatch(verifier):
            return False
        return hmac.compare_digest(s256(verifier), grant.code_challenge)

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
        if not self._pkce_ok(grant, form.get("code_verifier")):
            log.info("token: PKCE verification failed for client %s", client.client_id)
            return _oauth_error(400, "invalid_grant", "PKCE verification failed")
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

    def _sub(self, client: ClientConfig, uid: str) -> str:
        """Pairwise per client on FC/FC+, public (one per agent) on ProConnect."""
        if self.profile.subject_type == "public":
            agent = self.config.identity(uid)
            return public_sub(agent.idp_id if isinstance(agent, Agent) else IDP_ID, uid)
        return pairwise_sub(client.client_id, uid)

    def _id_token_claims(self, client: ClientConfig, grant: CodeGrant, access_token: str) -> dict[str, Any]:
        now = int(self._clock())
        claims: dict[str, Any] = {
            "iss": self.config.issuer,
            "sub": self._sub(client, grant.uid),
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
        if self.profile.name == PROCONNECT:
            del claims["idp_id"]
        if not grant.amr_requested:
            del claims["amr"]
        if grant.nonce is None:
            del claims["nonce"]
        return claims

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

    def _user_claims(self, user: Identity | Agent, acr: str) -> dict[str, Any]:
        if isinstance(user, Agent):
            return dict(user.claims(acr))
        if self.profile.name == FCPLUS:
            return dict(user.claims())
        return fc_claims(user)

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
        claims: dict[str, Any] = {"sub": self._sub(client, identity.uid), "iss": self.config.issuer,
                                  "aud": client.client_id}
        available = self._user_claims(identity, token.acr)
        for name in released_claims(self.profile, token.scopes):
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

    # -- logout and revocation --------------------------------------------------------------------

    def _end_session(self, request: Request) -> Response:
        params = _params(request)
        if params is None:
            return _bad_request(f"Le corps de la requête doit être de type {_FORM}.",
                                f"The request body must be {_FORM}.")
        unknown = [name for name in params if name not in LOGOUT_PARAMS]
        single, repeated = _single(params)
        if unknown or repeated:
            return _bad_request("Y000400 – Paramètre inconnu ou répété dans la demande de déconnexion.",
                                "Y000400 – Unknown or repeated parameter in the logout request.")
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
        response = _redirect(target, {"state": single.get("state")})
        if self.profile.sso:
            session_id = request.cookies.get(SSO_COOKIE)
            if session_id:
                self._store.drop_session(session_id)
                self._clear_sso_cookie(response)
        return response

    def _revocation_problem(self, request: Request) -> str | None:
        """RevocationTokenParamsDTO through the core's ValidationPipe (a failure is a 400 page, Y000400)."""
        if request.content_type != _FORM:
            return f"the request body must be {_FORM}"
        form, repeated = _single(request.POST)
        if repeated:
            return f"parameter repeated: {_names(repeated)}"
        extra = [name for name in form if name not in REVOCATION_PARAMS]
        if extra and self.profile.revocation_forbids_extra:
            return f"parameter not allowed: {_names(extra)}"
        token, secret = form.get("token", ""), form.get("client_secret", "")
        if len(token) < 43 or not _SAFE_STRING.fullmatch(token):
            return "token must be at least 43 characters, without spaces or . * ? { } ( ) | [ ] \\"
        if "client_id" not in form:
            return "client_id is required"
        if len(secret) < 32 or not secret.isascii():
            return "client_secret must be at least 32 ASCII characters"
        return None

    def _revocation(self, request: Request) -> Response:
        problem = self._revocation_problem(request)
        if problem is not None:
            log.info("revocation: refused by the %s request validation", self.profile.label)
            return _bad_request(f"Y000400 – Requête de révocation refusée : {problem}.",
                                f"Y000400 – Revocation request refused: {problem}.")
        checked = self._client_form(request)
        if isinstance(checked, Response):
            return checked
        form, client = checked
        if not self._store.revoke_access_token(form["token"], client.client_id):
            # node-oidc-provider's revocation action refuses another client's token.
            log.info("revocation: client %s presented another client's token", client.client_id)
            return _oauth_error(400, "invalid_request", "this token does not belong to you")
        log.info("revocation: request handled for client %s", client.client_id)
        return Response(b"", status=200, content_type="text/plain")


def make_app(config: DevProviderConfig, *, clock: Callable[[], float] = time.time,
             key_cache: ClientKeyCache | None = None) -> DevProviderApp:
    """Build the development provider's WSGI application for `config`."""
    if not isinstance(config, DevProviderConfig):
        raise TypeError("make_app() needs a DevProviderConfig")
    return DevProviderApp(config, clock=clock, key_cache=key_cache)
