"""What the wrapped application sees of a signed-in user."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

ENVIRON_KEY = "fcplus.identity"


@dataclass(frozen=True)
class Identity:
    """The verified identity of the current request.

    `sub` is the provider's subject: pairwise on FranceConnect and FC+ (stable per
    service, the key to reconcile accounts on), public on ProConnect (one per identity
    provider account: keep it with `claims["idp_id"]`, and the email and siret);
    `claims` are the verified userinfo claims and `id_token_claims` the verified
    id_token claims.
    """

    sub: str
    acr: str | None
    amr: tuple[str, ...]
    claims: Mapping[str, Any]
    id_token_claims: Mapping[str, Any]
    provider: str

    @classmethod
    def from_session(cls, record: Mapping[str, Any]) -> Identity:
        idc = record.get("idc") or {}
        amr = idc.get("amr")
        # Read-only views: one Identity serves every request of a session (see Flow's cache).
        return cls(sub=str(record["sub"]), acr=record.get("acr"),
                   amr=tuple(a for a in amr if isinstance(a, str)) if isinstance(amr, list) else (),
                   claims=MappingProxyType(dict(record.get("claims") or {})),
                   id_token_claims=MappingProxyType(dict(idc)), provider=str(record.get("prov", "")))


def mutable_copy(view: Mapping[str, Any]) -> dict[str, Any]:
    """A plain dict the application may change, from one of an Identity's read-only views.

    `MappingProxyType.copy()` copies the dict behind the view in one C call; `dict(view)`
    would go through the mapping protocol key by key, ten times slower, and this runs on
    every authenticated request."""
    if type(view) is MappingProxyType or type(view) is dict:
        copied = view.copy()
        if type(copied) is dict:
            return copied
    return dict(view)


def identity(environ: Mapping[str, Any]) -> Identity | None:
    """The signed-in user of this request, or None on an anonymous (public path) request."""
    value = environ.get(ENVIRON_KEY)
    return value if isinstance(value, Identity) else None
