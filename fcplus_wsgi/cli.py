"""`fcplus-wsgi`: keys, check, mock-provider, demo.

Every failure ends in one plain sentence on stderr and a non-zero exit, never a traceback:
these commands are what operators run first, before anything works.
"""

from __future__ import annotations

import argparse
import configparser
import json
import os
import secrets
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .keys import KeyFileError, generate_private_jwks, load_keys_file
from .settings import ConfigError, parse_settings


def _fail(message: str, code: int = 2) -> int:
    print(f"fcplus-wsgi: {message}", file=sys.stderr)
    return code


# -- keys -----------------------------------------------------------------------------------------------
def cmd_keys_generate(args: argparse.Namespace) -> int:
    print(json.dumps(generate_private_jwks(), indent=2))
    return 0


def cmd_keys_public(args: argparse.Namespace) -> int:
    try:
        keys = load_keys_file(args.file)
    except KeyFileError as exc:
        return _fail(str(exc))
    print(json.dumps(keys.public, indent=2))
    return 0


# -- check --------------------------------------------------------------------------------------------------
def read_filter_settings(path: str, section: str | None) -> dict[str, str]:
    """The settings of the fcplus filter section of a Paste ini (with %(here)s like Paste)."""
    ini = Path(path)
    if not ini.is_file():
        raise ConfigError(f"{path} does not exist or is not a file.")
    parser = configparser.ConfigParser(defaults={"here": str(ini.resolve().parent), "__file__": str(ini.resolve())},
                                       interpolation=configparser.BasicInterpolation())
    try:
        parser.read(ini, encoding="utf-8")
    except configparser.Error as exc:
        raise ConfigError(f"{path} is not a valid ini file ({exc.__class__.__name__}).") from None
    candidates = [section] if section else [
        name for name in parser.sections()
        if parser.get(name, "use", fallback="").replace(" ", "") in ("egg:fcplus_wsgi#fcplus", "egg:fcplus-wsgi#fcplus")
    ]
    if not candidates or candidates[0] not in parser:
        raise ConfigError(f"{path} has no section with `use = egg:fcplus_wsgi#fcplus`; name one with --section.")
    try:
        items = dict(parser.items(candidates[0]))
    except configparser.Error as exc:
        raise ConfigError(f"{path} [{candidates[0]}]: {exc.message if hasattr(exc, 'message') else exc}") from None
    for key in ("here", "__file__", "use"):
        items.pop(key, None)
    return items


def run_checks(raw: dict[str, Any]) -> list[str]:
    """Every problem found, as plain sentences; empty when the configuration can work."""
    from .client import ProviderClient
    from .errors import FlowError

    problems: list[str] = []
    try:
        settings = parse_settings(raw)
    except ConfigError as exc:
        return [str(exc)]
    keys = None
    if settings.keys_file:
        try:
            keys = load_keys_file(settings.keys_file)
        except KeyFileError as exc:
            problems.append(str(exc))
    policy = settings.policy
    if policy.require_encryption and keys is not None and not any(keys.has_encryption_key(a) for a in policy.encryption_algs):
        problems.append(f"keys_file has no encryption key for {', '.join(policy.encryption_algs)}.")
    client = ProviderClient(settings.issuer, timeout=settings.http_timeout, ca_bundle=settings.ca_bundle)
    try:
        md = client.fetch_metadata()
    except FlowError as exc:
        problems.append(f"discovery at {settings.issuer}/.well-known/openid-configuration failed: {exc.spec.hint} ({exc.detail})")
        return problems
    doc = md.raw
    advertised = doc.get("id_token_signing_alg_values_supported") or []
    if not set(policy.id_token_signing_algs) & set(advertised):
        problems.append(f"the provider signs id_tokens with {', '.join(map(str, advertised)) or 'nothing advertised'}, "
                        f"none of which this configuration accepts ({', '.join(policy.id_token_signing_algs)}).")
    if policy.require_encryption:
        enc_algs = doc.get("id_token_encryption_alg_values_supported") or []
        if not set(policy.encryption_algs) & set(enc_algs):
            problems.append("the provider advertises no id_token encryption algorithm this preset accepts.")
    if settings.acr_values and doc.get("acr_values_supported"):
        missing = [v for v in settings.acr_values if v not in doc["acr_values_supported"]]
        if missing:
            problems.append(f"acr_values {', '.join(missing)} are not advertised by the provider.")
    methods = doc.get("token_endpoint_auth_methods_supported")
    if isinstance(methods, list) and settings.token_endpoint_auth_method not in methods:
        problems.append(f"the provider does not advertise {settings.token_endpoint_auth_method}; "
                        f"set token_endpoint_auth_method to one of {', '.join(map(str, methods))}.")
    if md.userinfo_endpoint is None:
        problems.append("the provider has no userinfo_endpoint: only id_token claims will be available.")
    if settings.post_logout_redirect_uri and md.end_session_endpoint is None:
        problems.append("post_logout_redirect_uri is set but the provider has no end_session_endpoint.")
    try:
        client.keys()
    except FlowError as exc:
        problems.append(f"the provider JWKS at {md.jwks_uri} could not be loaded: {exc.spec.hint}")
    finally:
        client.close()
    return problems


def cmd_check(args: argparse.Namespace) -> int:
    try:
        raw = read_filter_settings(args.config, args.section)
    except ConfigError as exc:
        return _fail(str(exc))
    problems = run_checks(raw)
    if problems:
        for problem in problems:
            print(f"PROBLEM: {problem}")
        return 1
    print(f"OK: {args.config} loads, discovery and JWKS answer, and the provider policy matches.")
    return 0


# -- mock provider ----------------------------------------------------------------------------------------------
def cmd_mock_provider(args: argparse.Namespace, rest: Sequence[str]) -> int:
    from .devprovider.cli import main as provider_main
    return provider_main(list(rest))


# -- demo -----------------------------------------------------------------------------------------------------
def build_demo(host: str, port: int, provider_port: int, data_dir: Path) -> tuple[Any, Any, str]:
    """The demo pair: (wrapped demo app, development provider app, demo URL)."""
    from .demoapp import demo_app
    from .devprovider import ClientConfig, DevProviderConfig, make_app
    from .middleware import FCPlusMiddleware

    data_dir.mkdir(parents=True, exist_ok=True)
    keys_file = data_dir / "keys.json"
    if not keys_file.exists():
        keys_file.write_text(json.dumps(generate_private_jwks()), encoding="utf-8")
        keys_file.chmod(0o600)
    base = f"http://{host}:{port}"
    issuer = f"http://{host}:{provider_port}/api/v2"
    secret = secrets.token_urlsafe(32)
    provider = make_app(DevProviderConfig(issuer=issuer, clients=[ClientConfig(
        client_id="fcplus-wsgi-demo", client_secret=secret, redirect_uris=[base + "/oidc/callback"],
        post_logout_redirect_uris=[base + "/oidc/logout-callback"], jwks_uri=base + "/oidc/jwks.json")]))
    wrapped = FCPlusMiddleware(demo_app, {
        "provider": "fcplus-integration", "issuer": issuer, "client_id": "fcplus-wsgi-demo",
        "client_secret": secret, "redirect_uri": base + "/oidc/callback",
        "post_logout_redirect_uri": base + "/oidc/logout-callback", "keys_file": str(keys_file),
        "session_store": "sqlite:///" + str(data_dir / "sessions.sqlite3"), "cookie_secure": "false",
        "protected_paths": "/private", "request_amr": "true",
        "scopes": "openid given_name family_name preferred_username birthdate gender birthplace birthcountry email",
    })
    return wrapped, provider, base + "/"


def cmd_demo(args: argparse.Namespace) -> int:
    import logging

    from waitress.server import create_server

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    data_dir = Path(args.data_dir) if args.data_dir else Path(tempfile.mkdtemp(prefix="fcplus-demo-"))
    try:
        wrapped, provider, url = build_demo(args.host, args.port, args.provider_port, data_dir)
    except (ConfigError, KeyFileError, OSError) as exc:
        return _fail(f"the demo could not start: {exc}")
    try:
        # Multi-threaded servers: while the middleware waits for the token response, the
        # provider fetches this service's jwks_uri from the same server (re-entrant call).
        provider_server = create_server(provider, host=args.host, port=args.provider_port, threads=4)
        demo_server = create_server(wrapped, host=args.host, port=args.port, threads=8)
    except OSError as exc:
        return _fail(f"cannot listen on {args.host}:{args.port}/{args.provider_port} ({exc.strerror}); "
                     "choose free ports with --port and --provider-port.")
    threading.Thread(target=provider_server.run, daemon=True).start()
    print("=" * 72)
    print(f"fcplus-wsgi demo: open {url}")
    print(f"development provider (NOT for production): http://{args.host}:{args.provider_port}/api/v2")
    print(f"data (keys, SQLite sessions): {data_dir}")
    print("=" * 72, flush=True)
    try:
        demo_server.run()
    except KeyboardInterrupt:
        pass
    finally:
        demo_server.close()
        provider_server.close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fcplus-wsgi", description="FranceConnect+ for WSGI applications.")
    sub = parser.add_subparsers(dest="command", required=True)
    keys = sub.add_parser("keys", help="generate or publish the service's keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    keys_sub.add_parser("generate", help="print a new private JWKS (RSA + EC encryption keys, EC signing key)")
    pub = keys_sub.add_parser("public", help="print the public JWKS of a private keys file")
    pub.add_argument("file")
    check = sub.add_parser("check", help="load an ini, fetch discovery and JWKS, report every problem")
    check.add_argument("config")
    check.add_argument("--section", help="ini section of the fcplus filter (found automatically by default)")
    sub.add_parser("mock-provider", help="run the development provider (see `fcplus-wsgi mock-provider --help`)",
                   add_help=False)
    demo = sub.add_parser("demo", help="run the demo app, the middleware and the development provider")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=int(os.environ.get("FCPLUS_DEMO_PORT", "8000")))
    demo.add_argument("--provider-port", type=int, default=int(os.environ.get("FCPLUS_DEMO_PROVIDER_PORT", "9000")))
    demo.add_argument("--data-dir", help="folder for keys and SQLite sessions (default: a new temporary folder)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "mock-provider":
        return cmd_mock_provider(argparse.Namespace(), argv[1:])
    args = build_parser().parse_args(argv)
    if args.command == "keys":
        return cmd_keys_generate(args) if args.keys_command == "generate" else cmd_keys_public(args)
    if args.command == "check":
        return cmd_check(args)
    if args.command == "demo":
        if args.host not in ("127.0.0.1", "localhost", "::1"):
            print("fcplus-wsgi: warning: the demo is meant for loopback only.", file=sys.stderr)
        return cmd_demo(args)
    return _fail("unknown command")


if __name__ == "__main__":
    sys.exit(main())
