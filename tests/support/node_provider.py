"""An independent OpenID provider for interop tests: node `oidc-provider`, configured like
one of the platforms' cores (FC+ by default).

`start_node_provider` runs tests/interop/provider.mjs on a free loopback port. Its `profile`
picks the platform: "fcplus" (ES256-signed, RSA-OAEP/A256GCM-encrypted id_token and userinfo,
acr eidas2/eidas3), "franceconnect" (ES256/RS256, signed only, eidas1) or "proconnect"
(ES256/RS256, signed only, acr via `claims`, PKCE, SSO with prompt=none); "generic" is FC+'s
crypto with oidc-provider's own leniency, for services configured without a preset. Each
platform profile enforces its core's parameter allow-lists in front of oidc-provider, so a relying party that sends what
the real platform refuses fails here too; refusals are printed as `REFUSED <endpoint> <names>`
(see `NodeProvider.refusals`). `login_through_interaction` and `logout_through_provider` play
the browser on its pages.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qs, urljoin, urlsplit

import requests

from tests.support.servers import free_port

INTEROP_DIR = Path(__file__).resolve().parent.parent / "interop"
READY_TIMEOUT = 30.0
MAX_HOPS = 20
# "generic": FC+'s crypto without any core's allow-lists, for services configured without a preset.
PROFILES = ("fcplus", "franceconnect", "proconnect", "generic")


class NodeProviderError(RuntimeError):
    """The node provider could not be installed, started or driven; the message says why."""


def node_available() -> bool:
    return shutil.which("node") is not None


@dataclass
class NodeProvider:
    """A running provider: `issuer` (no trailing slash) and its captured output, for failure messages."""

    issuer: str
    port: int
    process: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)
    profile: str = "fcplus"

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    _pump: threading.Thread | None = field(default=None, repr=False)

    def log(self) -> str:
        return "".join(self.output)

    def refusals(self) -> list[str]:
        """The `REFUSED <endpoint> <names>` lines so far: what the platform's allow-lists refused."""
        return [line.strip() for line in list(self.output) if line.startswith("REFUSED ")]

    def revocations(self, client_id: str) -> int:
        """How many access tokens of `client_id` the provider has revoked so far."""
        return sum(1 for line in list(self.output) if line.strip() == f"REVOKED AccessToken {client_id}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if self._pump is not None:
            self._pump.join(timeout=5)


def ensure_installed() -> None:
    """`npm ci --prefix tests/interop` unless node_modules already holds oidc-provider."""
    if shutil.which("node") is None:
        raise NodeProviderError("node is not installed (needed for the oidc-provider interop tests)")
    marker = INTEROP_DIR / "node_modules" / "oidc-provider" / "package.json"
    if marker.exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise NodeProviderError("npm is not installed; run `npm ci --prefix tests/interop` with a node toolchain")
    # Serialise concurrent test processes (e.g. pytest-xdist workers) on the install.
    with open(Path(tempfile.gettempdir()) / "fcplus-wsgi-interop-npm-ci.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if marker.exists():
                return
            done = subprocess.run(
                [npm, "ci", "--prefix", str(INTEROP_DIR), "--no-audit", "--no-fund"],
                capture_output=True, text=True, timeout=300, check=False,
            )
            if done.returncode != 0:
                raise NodeProviderError(
                    f"`npm ci --prefix {INTEROP_DIR}` failed ({done.returncode}):\n{done.stderr[-2000:]}"
                )
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _pump(stream: IO[str], sink: list[str], lines: queue.Queue[str]) -> None:
    for line in iter(stream.readline, ""):
        sink.append(line)
        lines.put(line)
    stream.close()


@contextlib.contextmanager
def start_node_provider(
    client_id: str,
    client_secret: str,
    redirect_uri: str,
    post_logout_redirect_uri: str,
    jwks_uri: str,
    *,
    issuer_path: str = "",
    client_metadata: Mapping[str, Any] | None = None,
    profile: str = "fcplus",
) -> Iterator[NodeProvider]:
    """Run the node provider, configured like `profile`'s core, for one registered client;
    yields it once it listens.

    `issuer_path` (e.g. "/api/v2") mounts every endpoint under that path, as the platforms do;
    `client_metadata` is merged over the client's registration (e.g. ECDH-ES encryption, or
    {"id_token_signed_response_alg": "RS256"}, which also sets the userinfo's alg).
    The provider fetches `jwks_uri` lazily, when it first encrypts a token, so that server
    only has to answer by the first token request (FC and ProConnect never fetch it).
    """
    if issuer_path and not issuer_path.startswith("/"):
        raise ValueError(f"issuer_path must start with '/': {issuer_path!r}")
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}: {profile!r}")
    ensure_installed()
    for attempt in range(3):
        try:
            provider = _spawn(
                {
                    "CLIENT_ID": client_id,
                    "CLIENT_SECRET": client_secret,
                    "REDIRECT_URI": redirect_uri,
                    "POST_LOGOUT_REDIRECT_URI": post_logout_redirect_uri,
                    "CLIENT_JWKS_URI": jwks_uri,
                    "CLIENT_METADATA": json.dumps(dict(client_metadata or {})),
                    "PROFILE": profile,
                },
                issuer_path.rstrip("/"),
            )
            break
        except _PortTaken:
            if attempt == 2:
                raise NodeProviderError("node provider: three free ports were taken before it could bind") from None
    try:
        yield provider
    finally:
        provider.stop()


class _PortTaken(Exception):
    pass


def _spawn(settings: dict[str, str], issuer_path: str) -> NodeProvider:
    """Start provider.mjs on a free port and wait for its READY line."""
    port = free_port()
    issuer = f"http://127.0.0.1:{port}{issuer_path}"
    env = {**os.environ, **settings, "PORT": str(port), "ISSUER": issuer, "NODE_ENV": "test"}
    process = subprocess.Popen(
        ["node", str(INTEROP_DIR / "provider.mjs")],
        cwd=INTEROP_DIR, env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
    )
    provider = NodeProvider(issuer=issuer, port=port, process=process, profile=settings.get("PROFILE", "fcplus"))
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None
    provider._pump = threading.Thread(
        target=_pump, args=(process.stdout, provider.output, lines), daemon=True
    )
    provider._pump.start()
    deadline = time.monotonic() + READY_TIMEOUT
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise NodeProviderError(f"node provider not READY after {READY_TIMEOUT:.0f} s:\n{provider.log()}")
            try:
                line = lines.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                if process.poll() is None:
                    continue
                provider._pump.join(timeout=2)
                if "EADDRINUSE" in provider.log():
                    raise _PortTaken() from None
                raise NodeProviderError(
                    f"node provider exited with {process.returncode} before READY:\n{provider.log()}"
                ) from None
            if line.startswith("READY "):
                return provider
    except BaseException:
        provider.stop()
        raise


# --- playing the browser -------------------------------------------------------------------


@dataclass
class _Form:
    action: str
    method: str
    form_id: str | None
    fields: dict[str, str] = field(default_factory=dict)
    buttons: list[tuple[str, str]] = field(default_factory=list)


class _FormParser(HTMLParser):
    """Collects forms, their inputs, and buttons (including `form="id"` buttons outside them)."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[_Form] = []
        self._current: _Form | None = None
        self._orphans: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._current = _Form(a.get("action", ""), a.get("method", "get").lower(), a.get("id"))
            self.forms.append(self._current)
        elif tag in ("input", "button"):
            kind = a.get("type", "submit" if tag == "button" else "text").lower()
            owner = self._current
            if a.get("form"):
                owner = next((f for f in self.forms if f.form_id == a["form"]), None)
                if owner is None:
                    if kind == "submit" and a.get("name"):
                        self._orphans.append((a["form"], a["name"], a.get("value", "")))
                    return
            if owner is None or not a.get("name"):
                return
            if kind == "submit":
                owner.buttons.append((a["name"], a.get("value", "")))
            else:
                owner.fields[a["name"]] = a.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None

    def close(self) -> None:
        super().close()
        for form_id, name, value in self._orphans:
            for form in self.forms:
                if form.form_id == form_id:
                    form.buttons.append((name, value))


def _forms(html: str) -> list[_Form]:
    parser = _FormParser()
    parser.feed(html)
    parser.close()
    return parser.forms


def _strip_query(url: str) -> tuple[str, str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc, parts.path


def _param(url: str, name: str) -> str | None:
    values = parse_qs(urlsplit(url).query).get(name)
    return values[0] if values else None


def _drive(
    session: requests.Session,
    start_url: str,
    target_param: str,
    fill: Callable[[_Form], dict[str, str] | None],
    *,
    target: str | None = None,
) -> requests.Response:
    """GET start_url, then follow redirects and submit forms until a redirect to `target`.

    `target` is learnt from the first URL in the chain carrying `target_param` (redirect_uri
    or post_logout_redirect_uri) unless given. `fill(form)` returns the fields to post for a
    provider form, or None when it cannot handle that form.
    """
    response = session.get(start_url, allow_redirects=False, timeout=10)
    url = start_url
    if target is None:
        target = _param(start_url, target_param)
    for _ in range(MAX_HOPS):
        if response.is_redirect:
            next_url = urljoin(url, response.headers["Location"])
            if target is None:
                target = _param(next_url, target_param)
            if target is not None and _strip_query(next_url) == _strip_query(target):
                return response
            url = next_url
            response = session.get(url, allow_redirects=False, timeout=10)
            continue
        if response.status_code != 200 or "html" not in response.headers.get("Content-Type", ""):
            raise NodeProviderError(
                f"unexpected {response.status_code} from {url} (waiting for a redirect to {target}):\n"
                f"{response.text[:2000]}"
            )
        for form in _forms(response.text):
            data = fill(form)
            if data is not None:
                break
        else:
            raise NodeProviderError(f"no form to submit on {url}:\n{response.text[:2000]}")
        action = urljoin(url, form.action or url)
        if form.method == "post":
            response = session.post(action, data=data, allow_redirects=False, timeout=10)
        else:
            response = session.get(action, params=data, allow_redirects=False, timeout=10)
        url = action
    raise NodeProviderError(f"more than {MAX_HOPS} hops without reaching {target}")


def login_through_interaction(
    session: requests.Session,
    authorize_url: str,
    login: str = "test-user",
    *,
    acr: str | None = None,
    deny: bool = False,
) -> requests.Response:
    """Sign in as `login` on the provider's pages and consent; returns the redirect to redirect_uri.

    `authorize_url` may be the provider's authorization URL or any URL that redirects to it
    (a service's login path). The final redirect response (Location = redirect_uri?code=...&
    state=...&iss=...) is returned unfollowed. `acr` forces the level the provider asserts
    (default: the lowest eidas level requested in acr_values, eidas3 if none); `deny` cancels
    at the login page, for an error=access_denied redirect.
    """

    def fill(form: _Form) -> dict[str, str] | None:
        if deny and form.action.endswith("/abort"):
            return {}
        if deny:
            return None
        prompt = form.fields.get("prompt")
        if prompt == "login":
            data = dict(form.fields, login=login)
            if acr is not None:
                data["acr"] = acr
            return data
        if prompt == "consent":
            return dict(form.fields)
        if "xsrf" in form.fields:
            # Signing in as another account than the provider session's: oidc-provider first
            # ends that session through an auto-submitting logout form, then resumes.
            return dict(form.fields)
        return None

    return _drive(session, authorize_url, "redirect_uri", fill)


def logout_through_provider(
    session: requests.Session,
    end_session_url: str,
    *,
    post_logout_redirect_uri: str | None = None,
) -> requests.Response:
    """Follow an end_session URL (or a service URL redirecting to it) and confirm the logout.

    oidc-provider shows a "sign out?" form when the browser still has a provider session and
    an auto-submitting form otherwise; both are submitted with logout=yes. Returns the redirect
    to post_logout_redirect_uri (with state) unfollowed.
    """

    def fill(form: _Form) -> dict[str, str] | None:
        if "xsrf" not in form.fields:
            return None
        return dict(form.fields, logout="yes")

    return _drive(session, end_session_url, "post_logout_redirect_uri", fill, target=post_logout_redirect_uri)
