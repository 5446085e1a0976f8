"""The development provider: an offline OpenID Connect provider that behaves like FC+, FC or ProConnect.

It is part of the product, not a test fake: the demo, the project's tests and users'
CI run the complete flow of FranceConnect+ (profile "fcplus", the default), FranceConnect
("franceconnect") or ProConnect ("proconnect") against it, with each platform core's
request validation and refusals, signatures, encryption, subjects, acr values, logout,
revocation and (ProConnect) SSO, without network access or credentials. It signs anyone
in as any test identity, so it must never face real users.
"""

from .app import DevProviderApp, make_app
from .config import ClientConfig, DevProviderConfig
from .errors import ConfigError
from .identities import BUILTIN_AGENTS, BUILTIN_IDENTITIES, BUILTIN_IDPS, Agent, Identity, TestIdp
from .profiles import PROFILE_NAMES
from .server import serve_forever

__all__ = [
    "BUILTIN_AGENTS",
    "BUILTIN_IDENTITIES",
    "BUILTIN_IDPS",
    "PROFILE_NAMES",
    "Agent",
    "ClientConfig",
    "ConfigError",
    "DevProviderApp",
    "DevProviderConfig",
    "Identity",
    "TestIdp",
    "make_app",
    "serve_forever",
]
