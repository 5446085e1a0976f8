"""Serving the development provider with waitress, behind an unmissable banner.

The banner exists because this provider signs anyone in as anyone: it must never be
mistaken for a real identity provider, in a terminal or in CI logs.
"""

from __future__ import annotations

import ipaddress
import sys
from typing import TextIO

import waitress

from .app import make_app
from .config import DevProviderConfig

BANNER_EN = "DEVELOPMENT PROVIDER - NOT FOR PRODUCTION"
BANNER_FR = "FOURNISSEUR D'IDENTITE DE DEVELOPPEMENT - NE PAS UTILISER EN PRODUCTION"
MIN_THREADS = 4  # the token endpoint fetches the client's JWKS, possibly from the same test process


def is_loopback(host: str) -> bool:
    """Whether `host` only accepts connections from this machine."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def exposure_warning(host: str) -> str | None:
    """A loud warning when the provider would listen beyond loopback, else None."""
    if is_loopback(host):
        return None
    return (f"WARNING / ATTENTION: listening on {host}, reachable from other machines: anyone who can reach it "
            "can sign in as any test identity / toute personne qui y accede peut se connecter avec "
            "n'importe quelle identite de test.")


def banner(config: DevProviderConfig, host: str, port: int) -> str:
    """The start-up banner: what this is, where it listens, what is registered (no secrets)."""
    line = "!" * 76
    lines = [
        line,
        f"!!  {BANNER_FR}",
        f"!!  {BANNER_EN}",
        line,
        f"    listening on / ecoute sur : {host}:{port}",
        f"    platform    : {config.platform.label} (profile {config.profile})",
        f"    issuer      : {config.issuer}",
        f"    discovery   : {config.issuer}/.well-known/openid-configuration",
        f"    clients     : {', '.join(client.client_id for client in config.clients)}",
        f"    identities  : {', '.join(ident.uid for ident in config.identities or ())}",
    ]
    warning = exposure_warning(host)
    if warning:
        lines += [line, f"!!  {warning}"]
    lines.append(line)
    return "\n".join(lines)


def serve_forever(config: DevProviderConfig, host: str = "127.0.0.1", port: int = 9000, *,
                  threads: int = MIN_THREADS, out: TextIO | None = None) -> None:
    """Serve `config` with waitress until interrupted (Ctrl-C), after printing the banner.

    The socket is bound before the banner is printed, so a busy port fails with an
    OSError and no misleading banner; waitress returns on KeyboardInterrupt.
    """
    app = make_app(config)
    server = waitress.create_server(app, host=host, port=port, threads=max(MIN_THREADS, threads),
                                    ident="fcplus-devprovider")
    try:
        print(banner(config, host, port), file=out or sys.stdout, flush=True)
        server.run()
    finally:
        server.close()
