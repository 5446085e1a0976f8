"""`fcplus-wsgi`: keys, check, settings, presets, mock-provider, demo.

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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .keys import KeyFileError, generate_private_jwks, keys_file_warnings, load_keys_file, write_private_jwks
from .providers import ALIASES, GENERIC, PRESETS, describe_preset
from .settings import ConfigError, parse_settings


def _fail(message: str, code: int = 2) -> int:
    print(f"fcplus-wsgi: {message}", file=sys.stderr)
    return code


# -- keys -----------------------------------------------------------------------------------------------
def cmd_keys_generate(args: argparse.Namespace) -> int:
    if not args.out:
        print(json.dumps(generate_private_jwks(), indent=2))
        return 0
    try:
        write_private_jwks(args.out, generate_private_jwks())
    except FileExistsError:
        return _fail(f"{args.out} already exists; keys are never overwritten (the provider encrypts to them): "
                     "choose another name, or remove the old file once no login uses it.")
    except OSError as exc:
        return _fail(f"cannot create {args.out} ({exc.strerror}); choose a writable folder.")
    print(f"wrote {args.out} (mode 0600); publish nothing from it but `fcplus-wsgi keys public {args.out}`.",
          file=sys.stderr)
    return 0


def cmd_keys_public(args: argparse.Namespace) -> int:
    try:
        keys = load_keys_file(args.file)
    except KeyFileError as exc:
        return _fail(str(exc))
    print(json.dumps(keys.public, indent=2))
    return 0


# -- check --------------------------------------------------------------------------------------------------
FILTER_USES = ("egg:fcplus_wsgi#fcplus", "egg:fcplus-wsgi#fcplus")
PYRAMID_PREFIX = "fcplus."


class CheckedConfig:
    """The settings `check` found in an ini: a filter's keys, or an app's `fcplus.*` keys.

    `problems` are those found while reading (Pyramid-only keys the adapter refuses), so
    they join the settings problems in the one report."""

    def __init__(self, section: str, raw: dict[str, str], pyramid: bool, problems: list[str]) -> None:
        self.section, self.raw, self.pyramid, self.problems = section, raw, pyramid, problems
        self.warnings: list[str] = []


def _ini_parser(path: str) -> configparser.ConfigParser:
    """The ini as Paste reads it: %(here)s and %(__file__)s, [DEFAULT] values shared."""
    ini = Path(path)
    if not ini.is_file():
        raise ConfigError(f"{path} does not exist or is not a file.")
    parser = configparser.ConfigParser(defaults={"here": str(ini.resolve().parent), "__file__": str(ini.resolve())},
                                       interpolation=configparser.BasicInterpolation())
    try:
        parser.read(ini, encoding="utf-8")
    except configparser.Error as exc:
        raise ConfigError(f"{path} is not a valid ini file ({exc.__class__.__name__}).") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text.") from None
    return parser


def _section_items(parser: configparser.ConfigParser, path: str, section: str) -> dict[str, str]:
    """A section's keys exactly as PasteDeploy hands them to the factory (`get` lines and
    %(here)s resolved), read by PasteDeploy itself when it can load the section's `use`.

    An app whose package is not installed where `check` runs cannot be loaded by Paste; its
    keys are then read with configparser as Paste would, minus `get` lines."""
    from paste.deploy.loadwsgi import APP, FILTER, loadcontext

    kind, _, name = section.partition(":")
    if kind in ("filter", "app") and name:
        try:
            context = loadcontext(FILTER if kind == "filter" else APP, f"config:{Path(path).resolve()}", name=name)
        except Exception:  # noqa: BLE001 - an app that cannot be imported here; read the file instead
            context = None
        if context is not None:
            return {str(k): str(v) for k, v in context.local_conf.items()}
    defaults = parser.defaults()
    items: dict[str, str] = {}
    for key in parser.options(section):
        if key in defaults or key == "use" or key.startswith(("set ", "get ")):
            continue
        try:
            items[key] = parser.get(section, key)
        except configparser.Error as exc:
            message = getattr(exc, "message", str(exc)).splitlines()[0]
            raise ConfigError(f"{path} [{section}] {key}: {message}") from None
    return items


def read_check_config(path: str, section: str | None) -> CheckedConfig:
    """Find what to check: the `egg:fcplus_wsgi#fcplus` filter, else a Pyramid app section
    with `fcplus.*` settings (config.include('fcplus_wsgi.pyramid')), or the named section.

    A Pyramid app with fcplus.use_filter = true takes its settings from the filter, so the
    filter is what gets checked then."""
    parser = _ini_parser(path)

    def is_filter(name: str) -> bool:
        return parser.get(name, "use", fallback="", raw=True).replace(" ", "") in FILTER_USES

    def is_pyramid(name: str) -> bool:
        return any(key.startswith(PYRAMID_PREFIX) for key in parser.options(name))

    if section is not None:
        if section not in parser:
            raise ConfigError(f"{path} has no section [{section}]; the sections are "
                              f"{', '.join(parser.sections()) or 'none'}.")
        chosen = section
    else:
        filters = [name for name in parser.sections() if is_filter(name)]
        apps = [name for name in parser.sections() if is_pyramid(name)]
        if not filters and not apps:
            raise ConfigError(f"{path} has neither a section with `use = egg:fcplus_wsgi#fcplus` nor one with "
                              "fcplus.* settings (Pyramid); name one with --section.")
        chosen = (filters or apps)[0]
    items = _section_items(parser, path, chosen)
    if is_filter(chosen) or not is_pyramid(chosen):
        found = CheckedConfig(chosen, items, pyramid=False, problems=[])
    else:
        found = _pyramid_config(path, chosen, items, parser, is_filter)
    if not any(name.startswith("server:") for name in parser.sections()):
        # Not a problem for gunicorn --paste or uwsgi, which bring their own server.
        found.warnings.append(f"{path} has no [server:main] section, which `pserve {Path(path).name}` needs; add "
                              "one (use = egg:waitress#main, listen = 127.0.0.1:6543), unless another server "
                              "loads the ini.")
    return found


def _pyramid_config(path: str, section: str, items: dict[str, str], parser: configparser.ConfigParser,
                    is_filter: Callable[[str], bool]) -> CheckedConfig:
    """The settings config.include('fcplus_wsgi.pyramid') reads from an app section."""
    from pyramid.settings import asbool

    from .pyramid import _REFUSED_KEYS

    raw = {key[len(PYRAMID_PREFIX):]: value for key, value in items.items() if key.startswith(PYRAMID_PREFIX)}
    problems: list[str] = []
    raw.pop("principals_callback", None)  # a dotted name, resolved by Pyramid when the app loads
    use_filter = raw.pop("use_filter", "false")
    if asbool(use_filter):
        filters = [name for name in parser.sections() if is_filter(name)]
        if not filters:
            raise ConfigError(f"{path} [{section}] sets fcplus.use_filter = true but has no section with "
                              "`use = egg:fcplus_wsgi#fcplus`; add the filter to the pipeline.")
        problems += [f"fcplus.{key} is set, but fcplus.use_filter = true takes every setting from the filter; "
                     "remove it." for key in sorted(raw)]
        return CheckedConfig(filters[0], _section_items(parser, path, filters[0]), pyramid=False, problems=problems)
    for key, how in _REFUSED_KEYS.items():
        if raw.pop(key, None) is not None:
            problems.append(f"fcplus.{key} has no effect with config.include('fcplus_wsgi.pyramid'): {how}.")
    return CheckedConfig(section, raw, pyramid=True, problems=problems)


def read_filter_settings(path: str, section: str | None) -> dict[str, str]:
    """The settings `check` would check (kept for callers of the earlier name)."""
    return read_check_config(path, section).raw


def _settings_problems(raw: dict[str, Any]) -> tuple[Any, list[str]]:
    """Parse the settings, collecting every independent problem instead of the first one.

    parse_settings stops at its first ConfigError; each error names its key first, so the
    key is set aside and parsing runs again, until the settings load or an error names no
    key that can be set aside (a required key that is missing)."""
    from .settings import KNOWN_KEYS

    remaining = dict(raw)
    problems: list[str] = []
    set_aside: set[str] = set()
    for _ in range(len(KNOWN_KEYS) + 1):
        try:
            return parse_settings(remaining), problems
        except ConfigError as exc:
            message = str(exc)
            key = message.split(" ", 1)[0].strip("'\",:")
            # A consequence of a problem already reported: the key itself, or the issuer a
            # refused provider would have given.
            if key in set_aside or (key == "issuer" and "provider" in set_aside):
                return None, problems
            problems.append(message)
            if key not in remaining:
                return None, problems
            set_aside.add(key)
            remaining.pop(key)
    return None, problems


def discovery_problems(settings: Any, doc: dict[str, Any]) -> list[str]:
    """Where the provider's discovery differs from what the preset expects (pure)."""
    preset, policy = settings.preset, settings.policy
    problems: list[str] = []
    if preset.issuer and settings.issuer != preset.issuer and not _is_loopback_url(settings.issuer):
        problems.append(f"issuer {settings.issuer} is not the {preset.name} issuer ({preset.issuer}); "
                        "integration and production keys never cross, nor do Internet and RIE.")
    advertised = doc.get("id_token_signing_alg_values_supported") or []
    if not set(policy.id_token_signing_algs) & set(advertised):
        problems.append(f"the provider signs id_tokens with {', '.join(map(str, advertised)) or 'nothing advertised'}, "
                        f"none of which this configuration accepts ({', '.join(policy.id_token_signing_algs)}).")
    if policy.userinfo_format == "jwt" and doc.get("userinfo_signing_alg_values_supported") is not None:
        offered = doc.get("userinfo_signing_alg_values_supported") or []
        if not set(policy.userinfo_signing_algs) & set(offered):
            problems.append("the provider advertises no userinfo signing algorithm this preset accepts "
                            f"({', '.join(policy.userinfo_signing_algs)}).")
    if policy.require_encryption:
        for what in ("id_token", "userinfo"):
            enc_algs = doc.get(f"{what}_encryption_alg_values_supported") or []
            if not set(policy.encryption_algs) & set(enc_algs):
                problems.append(f"the provider advertises no {what} encryption algorithm this preset accepts "
                                f"({', '.join(policy.encryption_algs)}).")
    if settings.acr_values and doc.get("acr_values_supported"):
        missing = [v for v in settings.acr_values if v not in doc["acr_values_supported"]]
        if missing:
            problems.append(f"acr_values {', '.join(missing)} are not advertised by the provider.")
    methods = doc.get("token_endpoint_auth_methods_supported")
    if isinstance(methods, list) and settings.token_endpoint_auth_method not in methods:
        problems.append(f"the provider does not advertise {settings.token_endpoint_auth_method}; "
                        f"set token_endpoint_auth_method to one of {', '.join(map(str, methods))}.")
    subjects = doc.get("subject_types_supported")
    if preset is not GENERIC and isinstance(subjects, list) and policy.subject_type not in subjects:
        problems.append(f"{preset.name} expects {policy.subject_type} subjects but the provider offers "
                        f"{', '.join(map(str, subjects))}: is this the right platform?")
    if settings.pkce and "S256" not in (doc.get("code_challenge_methods_supported") or []):
        problems.append("pkce is on but the provider does not advertise S256; set pkce = false.")
    if not doc.get("userinfo_endpoint"):
        problems.append("the provider has no userinfo_endpoint: only id_token claims will be available.")
    if settings.post_logout_redirect_uri and not doc.get("end_session_endpoint"):
        problems.append("post_logout_redirect_uri is set but the provider has no end_session_endpoint.")
    return problems


def _is_loopback_url(url: str) -> bool:
    from urllib.parse import urlsplit

    from .settings import is_loopback_host
    return is_loopback_host(urlsplit(url).hostname)


def _keys_file_problems(raw: dict[str, Any]) -> tuple[Any, list[str], list[str]]:
    """(loaded keys or None, problems, warnings) of the keys_file named in the raw settings.

    Read from the raw value so a key file is checked even when other settings fail."""
    value = raw.get("keys_file")
    if not isinstance(value, str) or not value.strip() or "${" in value:
        return None, [], []
    path = value.strip()
    try:
        keys = load_keys_file(path)
    except KeyFileError as exc:
        return None, [str(exc)], []
    return keys, [], keys_file_warnings(path)


def run_checks(raw: dict[str, Any], warnings: list[str] | None = None) -> list[str]:
    """Every problem found, as plain sentences; empty when the configuration can work.

    `warnings` collects what works but should be fixed (a key file others can read)."""
    from .client import ProviderClient
    from .errors import FlowError

    settings, problems = _settings_problems(raw)
    keys, key_problems, key_warnings = _keys_file_problems(raw)
    problems += [p for p in key_problems if p not in problems]
    if warnings is not None:
        warnings += key_warnings
    if settings is None:
        return problems
    policy = settings.policy
    if policy.require_encryption and keys is not None and not any(keys.has_encryption_key(a) for a in policy.encryption_algs):
        problems.append(f"keys_file has no encryption key for {', '.join(policy.encryption_algs)}.")
    client = ProviderClient(settings.issuer, timeout=settings.http_timeout, ca_bundle=settings.ca_bundle,
                            wire=settings.wire)
    try:
        md = client.fetch_metadata()
    except FlowError as exc:
        problems.append(f"discovery at {settings.issuer}/.well-known/openid-configuration failed: {exc.spec.hint} ({exc.detail})")
        return problems
    problems += discovery_problems(settings, md.raw)
    try:
        client.keys()
    except FlowError as exc:
        problems.append(f"the provider JWKS at {md.jwks_uri} could not be loaded: {exc.spec.hint}")
    finally:
        client.close()
    return problems


# -- presets --------------------------------------------------------------------------------------------------
def cmd_presets(args: argparse.Namespace) -> int:
    """Print every preset with all its values (the wire profile included), as text or JSON."""
    described = [describe_preset(p) for p in (*PRESETS.values(), GENERIC)]
    if args.json:
        print(json.dumps({"presets": described, "aliases": ALIASES}, indent=2))
        return 0
    for item in described:
        print(f"[{item['name']}]  {item['label']}")
        for key, value in item.items():
            if key in ("name", "label"):
                continue
            shown = " ".join(map(str, value)) if isinstance(value, list) else str(value)
            print(f"  {key} = {shown}")
        print()
    for alias, target in ALIASES.items():
        print(f"{alias}: deprecated alias of {target} (AgentConnect is now ProConnect)")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    try:
        found = read_check_config(args.config, args.section)
    except ConfigError as exc:
        return _fail(str(exc))
    import logging
    # `check` prints the key-file warnings itself; the library's log line would say it twice.
    logging.getLogger("fcplus_wsgi").addHandler(logging.NullHandler())
    logging.getLogger("fcplus_wsgi").propagate = False
    warnings: list[str] = list(found.warnings)
    problems = found.problems + run_checks(found.raw, warnings)
    if found.pyramid:  # name the keys as the operator wrote them
        problems = [_pyramid_spelling(p, found.raw) for p in problems]
    what = f"[{found.section}]" + (" (Pyramid fcplus.* settings)" if found.pyramid else "")
    for warning in warnings:
        print(f"WARNING: {warning}")
    if problems:
        for problem in problems:
            print(f"PROBLEM: {problem}")
        print(f"{len(problems)} problem(s) in {args.config} {what}.")
        return 1
    print(f"OK: {args.config} {what} loads, discovery and JWKS answer, and the provider policy matches.")
    return 0


def _pyramid_spelling(problem: str, raw: dict[str, Any]) -> str:
    """A settings message names `client_id`; in a Pyramid app the operator wrote fcplus.client_id."""
    from .settings import KNOWN_KEYS

    key = problem.split(" ", 1)[0]
    if (key in KNOWN_KEYS or key in raw) and not problem.startswith("fcplus."):
        return "fcplus." + problem
    return problem


# -- settings ---------------------------------------------------------------------------------------------------
def cmd_settings(args: argparse.Namespace) -> int:
    """Print the settings reference (or the error catalogue), made from the code itself."""
    if args.errors:
        from .errors import catalogue_markdown
        print(catalogue_markdown(), end="")
        return 0
    from .reference import settings_markdown, settings_text
    print(settings_markdown() if args.markdown else settings_text(), end="")
    return 0


# -- mock provider ----------------------------------------------------------------------------------------------
def cmd_mock_provider(args: argparse.Namespace, rest: Sequence[str]) -> int:
    from .devprovider.cli import main as provider_main
    return provider_main(list(rest))


# -- demo -----------------------------------------------------------------------------------------------------
DEMO_PROFILES = ("fcplus", "franceconnect", "proconnect")


def build_demo(host: str, port: int, provider_port: int, data_dir: Path,
               profile: str = "fcplus") -> tuple[Any, Any, str]:
    """The demo pair: (wrapped demo app, development provider app, demo URL).

    The middleware runs the platform's own preset against the development provider with
    the same profile, so the demo refuses what that platform refuses."""
    from .demoapp import demo_app
    from .devprovider import ClientConfig, DevProviderConfig, make_app
    from .middleware import FCPlusMiddleware

    if profile not in DEMO_PROFILES:
        raise ConfigError(f"--profile {profile} is not known; use one of {', '.join(DEMO_PROFILES)}.")
    data_dir.mkdir(parents=True, exist_ok=True)
    keys_file = data_dir / "keys.json"
    if not keys_file.exists():
        keys_file.write_text(json.dumps(generate_private_jwks()), encoding="utf-8")
        keys_file.chmod(0o600)
    base = f"http://{host}:{port}"
    issuer = f"http://{host}:{provider_port}/api/v2"
    secret = secrets.token_urlsafe(32)
    encrypts = profile == "fcplus"
    provider = make_app(DevProviderConfig(issuer=issuer, profile=profile, clients=[ClientConfig(
        client_id="fcplus-wsgi-demo", client_secret=secret, redirect_uris=[base + "/oidc/callback"],
        post_logout_redirect_uris=[base + "/oidc/logout-callback"],
        jwks_uri=base + "/oidc/jwks.json" if encrypts else None)]))
    settings = {
        "provider": f"{profile}-integration", "issuer": issuer, "client_id": "fcplus-wsgi-demo",
        "client_secret": secret, "redirect_uri": base + "/oidc/callback",
        "post_logout_redirect_uri": base + "/oidc/logout-callback",
        "session_store": "sqlite:///" + str(data_dir / "sessions.sqlite3"), "cookie_secure": "false",
        "protected_paths": "/private",
    }
    if encrypts:
        settings["keys_file"] = str(keys_file)
    if profile != "proconnect":
        settings["request_amr"] = "true"
        settings["scopes"] = ("openid given_name family_name preferred_username birthdate gender birthplace "
                              "birthcountry email")
    # The log lines name the provider the demo really talks to (the local development
    # provider with this platform's profile), not the platform's integration service that
    # the preset is named after.
    from dataclasses import replace

    from .events import EventBus, FlowEvent, stdlib_log_subscriber

    label = f"{profile}-development-provider"
    plain = stdlib_log_subscriber()
    bus = EventBus()

    def relabelled(event: FlowEvent) -> None:
        plain(replace(event, provider=label))

    bus.subscribe(relabelled)
    wrapped = FCPlusMiddleware(demo_app, settings, bus=bus)
    return wrapped, provider, base + "/"


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the demo; a data folder it made itself (keys included) is removed when it stops,
    by Ctrl-C or SIGTERM, so no private key is left behind in the temporary directory."""
    import shutil
    import signal

    temporary = not args.data_dir
    data_dir = Path(args.data_dir) if args.data_dir else Path(tempfile.mkdtemp(prefix="fcplus-demo-"))

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        return _run_demo(args, data_dir)
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        if temporary:
            shutil.rmtree(data_dir, ignore_errors=True)


def _run_demo(args: argparse.Namespace, data_dir: Path) -> int:
    import logging

    from waitress.server import create_server

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        wrapped, provider, url = build_demo(args.host, args.port, args.provider_port, data_dir, args.profile)
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
    print(f"development provider, profile {args.profile} (NOT for production): "
          f"http://{args.host}:{args.provider_port}/api/v2")
    where = "removed when the demo stops" if not args.data_dir else "kept"
    print(f"data (keys, SQLite sessions): {data_dir} ({where})")
    print("=" * 72, flush=True)
    try:
        demo_server.run()
    finally:
        demo_server.close()
        provider_server.close()
    return 0


def _port(text: str) -> int:
    """An argparse type: a TCP port, or argparse's own one-line usage error."""
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 < number < 65536:
        raise argparse.ArgumentTypeError(f"{number} is not a port number (1-65535)")
    return number


def _port_from_env(name: str, fallback: int) -> tuple[Callable[[str], int], str]:
    """(type, default) for a port whose default comes from the environment: argparse runs a
    string default through the type, so a bad variable is a usage error, not a traceback."""
    return _port, os.environ.get(name) or str(fallback)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fcplus-wsgi", description="FranceConnect+ for WSGI applications.")
    sub = parser.add_subparsers(dest="command", required=True)
    keys = sub.add_parser("keys", help="generate or publish the service's keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    gen = keys_sub.add_parser("generate", help="print a new private JWKS (RSA + EC encryption keys, EC signing key)")
    gen.add_argument("--out", metavar="FILE",
                     help="write it to FILE, created with mode 0600 (never overwritten), instead of stdout")
    pub = keys_sub.add_parser("public", help="print the public JWKS of a private keys file")
    pub.add_argument("file")
    check = sub.add_parser("check", help="load an ini, fetch discovery and JWKS, report every problem",
                           description="Check a Paste ini: the egg:fcplus_wsgi#fcplus filter, or a Pyramid app's "
                                       "fcplus.* settings. Every problem is reported in one run; exit 1 if any.")
    check.add_argument("config")
    check.add_argument("--section", help="ini section to check, e.g. filter:fcplus or app:main "
                                         "(default: the fcplus filter, else the app with fcplus.* settings)")
    settings = sub.add_parser("settings", help="print every setting with its default and meaning")
    settings.add_argument("--markdown", action="store_true", help="print Markdown tables")
    settings.add_argument("--errors", action="store_true", help="print the error catalogue (codes for messages_file)")
    presets = sub.add_parser("presets", help="print every provider preset with its values and wire profile")
    presets.add_argument("--json", action="store_true", help="print JSON instead of text")
    sub.add_parser("mock-provider", help="run the development provider (see `fcplus-wsgi mock-provider --help`)",
                   add_help=False)
    demo = sub.add_parser(
        "demo", help="run the demo app, the middleware and the development provider",
        description="Run a demo application wrapped in the middleware, and the development provider, on loopback; "
                    "then open the printed URL. Keys and SQLite sessions go to a temporary folder unless --data-dir "
                    "is given. Not for production.",
        epilog="environment: FCPLUS_DEMO_PORT and FCPLUS_DEMO_PROVIDER_PORT set the default ports (8000, 9000).")
    demo.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; loopback only)")
    demo.add_argument("--port", type=_port_from_env("FCPLUS_DEMO_PORT", 8000)[0],
                      default=_port_from_env("FCPLUS_DEMO_PORT", 8000)[1],
                      help="port of the demo application (default $FCPLUS_DEMO_PORT or 8000)")
    demo.add_argument("--provider-port", type=_port_from_env("FCPLUS_DEMO_PROVIDER_PORT", 9000)[0],
                      default=_port_from_env("FCPLUS_DEMO_PROVIDER_PORT", 9000)[1],
                      help="port of the development provider (default $FCPLUS_DEMO_PROVIDER_PORT or 9000)")
    demo.add_argument("--data-dir", help="folder for keys and SQLite sessions (default: a new temporary folder)")
    demo.add_argument("--profile", choices=DEMO_PROFILES, default="fcplus",
                      help="the platform imitated end to end: its preset in the middleware, its profile in the "
                           "development provider (default fcplus)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        # `fcplus-wsgi presets | head`: the reader left; say nothing more (Python's own advice:
        # point stdout at devnull so the interpreter's final flush does not raise again).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


def _main(argv: Sequence[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "mock-provider":
        return cmd_mock_provider(argparse.Namespace(), argv[1:])
    args = build_parser().parse_args(argv)
    if args.command == "keys":
        return cmd_keys_generate(args) if args.keys_command == "generate" else cmd_keys_public(args)
    if args.command == "check":
        return cmd_check(args)
    if args.command == "presets":
        return cmd_presets(args)
    if args.command == "settings":
        return cmd_settings(args)
    if args.command == "demo":
        if args.host not in ("127.0.0.1", "localhost", "::1"):
            print("fcplus-wsgi: warning: the demo is meant for loopback only.", file=sys.stderr)
        return cmd_demo(args)
    return _fail("unknown command")


if __name__ == "__main__":
    sys.exit(main())
