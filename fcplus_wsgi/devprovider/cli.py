"""Command line for the development provider (`fcplus-wsgi mock-provider` delegates here).

Every mistake in arguments or files ends as one sentence on stderr and exit status 2:
this runs in developers' terminals and CI logs, where a traceback hides the fix.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any, NoReturn

from .config import ENCRYPTION_ALGS, PROFILE_DEFAULT, SIGNING_ALGS, ClientConfig, DevProviderConfig, clients_from_json
from .errors import ConfigError
from .identities import Agent, Identity, agents_from_json, identities_from_json
from .profiles import PROFILE_NAMES, PROFILES
from .server import exposure_warning, serve_forever

PROG = "fcplus-wsgi mock-provider"


class _UsageError(Exception):
    """A bad argument or file; the message is shown to the user as is."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(message)


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {value!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is outside 1-65535")
    return port


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Run the development provider (an offline stand-in for FranceConnect+, FranceConnect "
                    "or ProConnect). NOT FOR PRODUCTION: it signs anyone in as any test identity.",
    )
    parser.add_argument("--profile", choices=PROFILE_NAMES, default="fcplus",
                        help="platform to imitate on the wire: fcplus (default), franceconnect or proconnect")
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=_port, default=9000, help="port to listen on (default 9000)")
    parser.add_argument("--issuer", help="issuer URL (default http://HOST:PORT/api/v2)")
    parser.add_argument("--client-id", help="client_id of a client to register")
    parser.add_argument("--client-secret", help="its client_secret")
    parser.add_argument("--redirect-uri", action="append", default=[], help="its redirect_uri (repeatable)")
    parser.add_argument("--post-logout-redirect-uri", action="append", default=[],
                        help="its post_logout_redirect_uri (repeatable)")
    parser.add_argument("--jwks-uri", help="URL of its public JWKS (encryption keys)")
    parser.add_argument("--encryption-alg", choices=[*ENCRYPTION_ALGS, "none"], default=None,
                        help="JWE alg for its id_token and userinfo (default: RSA-OAEP for fcplus, "
                             "none for franceconnect and proconnect)")
    parser.add_argument("--signing-alg", choices=SIGNING_ALGS, default=None,
                        help="its id_token_signed_response_alg (default ES256; RS256 on franceconnect and proconnect)")
    parser.add_argument("--clients", metavar="FILE", help="JSON list of client objects")
    parser.add_argument("--identities", metavar="FILE", help="JSON list of identity objects")
    parser.add_argument("--signing-keys", metavar="FILE",
                        help="private JWKS of signing keys, ES256 (and RS256 outside fcplus) "
                             "(default: new keys at each start)")
    return parser


def _load_json(path: str, option: str) -> Any:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise _UsageError(f"{option} file {path} cannot be read ({exc.strerror or exc.__class__.__name__})") from None
    except UnicodeDecodeError:
        raise _UsageError(f"{option} file {path} is not UTF-8 text") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        line = getattr(exc, "lineno", None)
        where = f" (line {line})" if line else ""
        raise _UsageError(f"{option} file {path} is not valid JSON{where}") from None


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def build_config(args: argparse.Namespace) -> DevProviderConfig:
    """Turn parsed arguments into a DevProviderConfig, or raise _UsageError/ConfigError."""
    clients: list[ClientConfig] = []
    if args.clients:
        clients += clients_from_json(_load_json(args.clients, "--clients"), f"--clients file {args.clients}")
    single = [args.client_id, args.client_secret, args.redirect_uri, args.post_logout_redirect_uri, args.jwks_uri]
    if any(single):
        if not (args.client_id and args.client_secret and args.redirect_uri):
            raise _UsageError("--client-id, --client-secret and at least one --redirect-uri must be given together")
        profile = PROFILES[args.profile]
        alg: str | None
        if args.encryption_alg is None:
            alg, resolved = PROFILE_DEFAULT, profile.default_encryption_alg
        else:
            alg = resolved = None if args.encryption_alg == "none" else args.encryption_alg
        if resolved is not None and not args.jwks_uri:
            raise _UsageError(f"--jwks-uri is required because {profile.label} encrypts id_tokens and userinfo "
                              "to the service's public key (or pass --encryption-alg none)")
        clients.append(ClientConfig(
            client_id=args.client_id, client_secret=args.client_secret, redirect_uris=args.redirect_uri,
            post_logout_redirect_uris=args.post_logout_redirect_uri, jwks_uri=args.jwks_uri,
            id_token_encrypted_response_alg=alg, userinfo_encrypted_response_alg=alg,
            id_token_signed_response_alg=args.signing_alg,
        ))
    if not clients:
        raise _UsageError("register a client with --client-id, --client-secret and --redirect-uri, "
                          "or with --clients FILE")
    identities: tuple[Identity, ...] | tuple[Agent, ...] | None = None
    if args.identities:
        data, source = _load_json(args.identities, "--identities"), f"--identities file {args.identities}"
        identities = (tuple(agents_from_json(data, source)) if args.profile == "proconnect"
                      else tuple(identities_from_json(data, source)))
    signing_keys = _load_json(args.signing_keys, "--signing-keys") if args.signing_keys else None
    issuer = args.issuer or f"http://{_url_host(args.host)}:{args.port}/api/v2"
    return DevProviderConfig(issuer=issuer, clients=clients, identities=identities, signing_keys=signing_keys,
                             profile=args.profile)


def _sentence(message: str) -> str:
    text = " ".join(message.split())
    return text if text.endswith((".", "!", "?")) else text + "."


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, then serve until interrupted; 2 on bad arguments, 1 if it cannot listen."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        config = build_config(args)
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else 0
    except (_UsageError, ConfigError) as exc:
        print(f"{PROG}: {_sentence(str(exc))}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    warning = exposure_warning(args.host)
    if warning:
        print(f"{PROG}: {warning}", file=sys.stderr)
    try:
        serve_forever(config, host=args.host, port=args.port)
    except KeyboardInterrupt:
        return 0
    except OSError as exc:
        print(f"{PROG}: cannot listen on {args.host}:{args.port} ({exc.strerror or exc}).", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
