"""The development provider: an offline OpenID Connect provider that behaves like FC+.

It is part of the product, not a test fake: the demo, the project's tests and users'
CI run the complete FranceConnect+ flow against it (strict /authorize validation,
ES256-signed then RSA-OAEP/ECDH-ES-encrypted tokens, pairwise sub, eIDAS levels,
logout, revocation) without network access or FC+ credentials. It signs anyone in as
any test identity, so it must never face real users.
"""

from .app import DevProviderApp, make_app
from .config import ClientConfig, DevProviderConfig
from .errors import ConfigError
from .identities import BUILTIN_IDENTITIES, Identity
from .server import serve_forever

__all__ = [
    "BUILTIN_IDENTITIES",
    "ClientConfig",
    "ConfigError",
    "DevProviderApp",
    "DevProviderConfig",
    "Identity",
    "make_app",
    "serve_forever",
]
