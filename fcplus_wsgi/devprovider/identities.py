"""Test identities of the development provider and the FC+ scope-to-claim mapping.

The identities are fictional but shaped exactly like FC+ pivot identities (same claim
names, same formats), so a relying party that maps them correctly here maps real FC+
users correctly too. Validation is strict on purpose: a malformed identity file would
otherwise teach a service to accept data FC+ never sends.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, fields
from typing import Any

from .errors import ConfigError
from .jsonfiles import record_from_dict, records_from_json

# FC+ scopes and the claims each one releases (reference §2.1). Every pivot claim also has
# a scope of its own name. `openid` releases only `sub`, which is always present.
PIVOT_CLAIMS: tuple[str, ...] = (
    "given_name",
    "family_name",
    "preferred_username",
    "birthdate",
    "gender",
    "birthplace",
    "birthcountry",
    "email",
)
SCOPE_CLAIMS: dict[str, tuple[str, ...]] = {
    "openid": (),
    **{claim: (claim,) for claim in PIVOT_CLAIMS},
    "profile": ("given_name", "family_name", "birthdate", "gender", "preferred_username"),
    "birth": ("birthplace", "birthcountry"),
    "identite_pivot": ("given_name", "family_name", "birthdate", "gender", "birthplace", "birthcountry"),
}
SUPPORTED_SCOPES: tuple[str, ...] = (
    "openid",
    "given_name",
    "family_name",
    "birthdate",
    "gender",
    "birthplace",
    "birthcountry",
    "email",
    "preferred_username",
    "profile",
    "birth",
    "identite_pivot",
)

FRANCE = "99100"
_UID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# INSEE COG commune code: department [0-8][0-9AB] (2A/2B = Corsica) or 9[0-8AB], then 3 digits.
_COG = re.compile(r"(?:[0-8][0-9AB]|9[0-8AB])[0-9]{3}")
_COUNTRY = re.compile(r"99[0-9]{3}")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_NAME = re.compile(r"[^\W\d_]+(?:[ '\-][^\W\d_]+)*")
_EMAIL = re.compile(r"[^@\s<>\"]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?\.[A-Za-z]{2,}")


@dataclass(frozen=True)
class Identity:
    """One test user, carrying the FC+ pivot identity the provider will release.

    `uid` is the provider-side account id (never sent: FC+ sends a pairwise `sub`).
    `preferred_username` (usage name) is optional because not every FC+ identity
    provider supplies it; when absent the claim is omitted, as FC+ does.
    `birthplace` is the INSEE commune code, or "" for people born abroad.
    """

    uid: str
    given_name: str
    family_name: str
    birthdate: str
    gender: str
    birthplace: str
    birthcountry: str
    email: str
    preferred_username: str | None = None

    def __post_init__(self) -> None:
        if self.preferred_username == "":
            object.__setattr__(self, "preferred_username", None)
        problem = _identity_problem(self)
        if problem:
            raise ConfigError(f"identity {self.uid!r}: {problem}")

    def claims(self) -> dict[str, str]:
        """Every pivot claim this identity has, by claim name (absent optional ones left out)."""
        out = {name: getattr(self, name) for name in PIVOT_CLAIMS}
        return {name: value for name, value in out.items() if value is not None}


def _record_shape_problem(record: Any) -> str | None:
    """What citizens and agents share: every field a string (or absent), a well-formed uid."""
    for f in fields(record):
        value = getattr(record, f.name)
        if value is not None and not isinstance(value, str):
            return f"{f.name} must be a string"
    if not _UID.fullmatch(record.uid):
        return "uid must be 1-64 letters, digits, '.', '_' or '-'"
    return None


def _identity_problem(ident: Identity) -> str | None:
    """Why an identity does not look like an FC+ pivot identity, or None."""
    shape = _record_shape_problem(ident)
    if shape:
        return shape
    for name in ("given_name", "family_name", "preferred_username"):
        value = getattr(ident, name)
        if value is None:
            continue
        if not 1 <= len(value) <= 256 or not _NAME.fullmatch(value):
            return f"{name} must be 1-256 letters, with single spaces, '-' or \"'\" between words"
    if not _DATE.fullmatch(ident.birthdate):
        return "birthdate must be YYYY-MM-DD"
    try:
        datetime.date.fromisoformat(ident.birthdate)
    except ValueError:
        return "birthdate is not a real date (presumed dates use YYYY-01-01 or YYYY-MM-01)"
    if ident.gender not in ("male", "female"):
        return "gender must be 'male' or 'female'"
    if not _COUNTRY.fullmatch(ident.birthcountry):
        return "birthcountry must be a 5-digit INSEE code starting with 99 (99100 = France)"
    if ident.birthcountry == FRANCE:
        if not _COG.fullmatch(ident.birthplace):
            return "birthplace must be a 5-character INSEE commune code when birthcountry is 99100"
    elif ident.birthplace != "":
        return "birthplace must be \"\" when born abroad (birthcountry other than 99100)"
    if not _EMAIL.fullmatch(ident.email):
        return "email must be an address like name@example.org"
    return None


_REQUIRED = tuple(f.name for f in fields(Identity) if f.name != "preferred_username")


def identity_from_dict(data: Any, source: str) -> Identity:
    """Build an Identity from a JSON object, naming the bad field on failure."""
    return record_from_dict(Identity, data, source, _REQUIRED)


def identities_from_json(data: Any, source: str = "identities") -> list[Identity]:
    """Parse a JSON list of identity objects (the --identities file format)."""
    return records_from_json(Identity, data, source, "identity", _REQUIRED)


BUILTIN_IDENTITIES: tuple[Identity, ...] = (
    Identity(
        uid="marie-martin",
        given_name="Marie Élise",
        family_name="MARTIN",
        preferred_username="DURAND",
        birthdate="1985-04-12",
        gender="female",
        birthplace="75056",
        birthcountry=FRANCE,
        email="marie.martin@example.org",
    ),
    Identity(
        uid="jean-dupont",
        given_name="Jean Pierre",
        family_name="DUPONT",
        birthdate="1962-01-01",  # a presumed date (unknown day and month), as FC+ sends them
        gender="male",
        birthplace="2A004",  # Ajaccio: Corsican codes are not all digits
        birthcountry=FRANCE,
        email="jean.dupont@example.org",
    ),
    Identity(
        uid="amina-benali",
        given_name="Amina",
        family_name="BEN ALI",
        birthdate="1990-09-23",
        gender="female",
        birthplace="",  # born abroad: FC+ sends an empty birthplace
        birthcountry="99350",  # Morocco
        email="amina.benali@example.com",
    ),
    Identity(
        uid="lucas-petit",
        given_name="Lucas",
        family_name="PETIT-ROUX",
        preferred_username="D'ARTOIS",
        birthdate="2001-11-30",
        gender="male",
        birthplace="69123",  # Lyon
        birthcountry=FRANCE,
        email="lucas.petit-roux@example.net",
    ),
)
"""Fictional built-in test identities (one born abroad, one with a presumed birth date)."""


# -- FranceConnect (standard platform) ---------------------------------------------------------

# FC v2 adds `given_name_array` wherever `given_name` is released (core-fcp-low scopes in
# back/libs/scopes/src/data/fcp-low/fcp-low.scopes.ts); otherwise the pivot identity is FC+'s.
FC_CLAIMS: tuple[str, ...] = (
    "given_name",
    "given_name_array",
    "family_name",
    "preferred_username",
    "birthdate",
    "gender",
    "birthplace",
    "birthcountry",
    "email",
)
FC_SCOPE_CLAIMS: dict[str, tuple[str, ...]] = {
    **SCOPE_CLAIMS,
    "given_name": ("given_name", "given_name_array"),
    "profile": ("given_name", "given_name_array", "family_name", "birthdate", "gender", "preferred_username"),
    "identite_pivot": ("given_name", "given_name_array", "family_name", "birthdate", "gender", "birthplace",
                       "birthcountry"),
}


def fc_claims(ident: Identity) -> dict[str, Any]:
    """The claims FC (not FC+) releases for a citizen: FC+'s plus the first names as a list."""
    out: dict[str, Any] = dict(ident.claims())
    out["given_name_array"] = ident.given_name.split()
    return out


# -- ProConnect agents ---------------------------------------------------------------------------

# ProConnect scopes and their claims (federation core: back/libs/oidc-provider/src/services/
# oidc-provider-config.service.ts, `claims`); only scopes the development provider can fill.
AGENT_CLAIMS: tuple[str, ...] = (
    "given_name",
    "usual_name",
    "email",
    "uid",
    "siret",
    "siren",
    "phone_number",
    "organizational_unit",
    "belonging_population",
    "idp_id",
    "idp_acr",
    "organization_label",
)
AGENT_SCOPE_CLAIMS: dict[str, tuple[str, ...]] = {
    "openid": (),
    "given_name": ("given_name",),
    "usual_name": ("usual_name",),
    "email": ("email",),
    "uid": ("uid",),
    "siret": ("siret",),
    "siren": ("siren",),
    "phone": ("phone_number",),
    "organizational_unit": ("organizational_unit",),
    "belonging_population": ("belonging_population",),
    "idp_id": ("idp_id",),
    "idp_acr": ("idp_acr",),
    "organization_label": ("organization_label",),
}

_SIRET = re.compile(r"[0-9]{14}")
_SIREN = re.compile(r"[0-9]{9}")
_PHONE = re.compile(r"\+?[0-9 .()-]{4,32}")


@dataclass(frozen=True)
class TestIdp:
    """An identity provider behind the ProConnect profile; `idp_id` is what idp_hint names."""

    __test__ = False  # not a pytest test class, whatever its name

    idp_id: str
    name: str

    def __post_init__(self) -> None:
        if not isinstance(self.idp_id, str) or not _UID.fullmatch(self.idp_id):
            raise ConfigError(f"identity provider {self.idp_id!r}: idp_id must be 1-64 letters, digits, '.', "
                              "'_' or '-'")
        if not isinstance(self.name, str) or not 1 <= len(self.name) <= 256:
            raise ConfigError(f"identity provider {self.idp_id!r}: name must be 1-256 characters")


BUILTIN_IDPS: tuple[TestIdp, ...] = (
    TestIdp("dev-etat", "Ministère fictif des Essais (agents de l'État)"),
    TestIdp("dev-territoriale", "Commune fictive de Testville (fonction publique territoriale)"),
)
"""The ProConnect profile's test identity providers."""


@dataclass(frozen=True)
class Agent:
    """One ProConnect test user: a public agent as an identity provider describes them.

    `siren` defaults to the first nine digits of `siret`, as for any French establishment.
    Optional claims left as None are omitted, as ProConnect omits what the IdP did not send.
    """

    uid: str
    given_name: str
    usual_name: str
    email: str
    siret: str
    idp_id: str
    organization_label: str | None = None
    siren: str | None = None
    organizational_unit: str | None = None
    belonging_population: str | None = None
    phone_number: str | None = None

    def __post_init__(self) -> None:
        if self.siren is None and isinstance(self.siret, str):
            object.__setattr__(self, "siren", self.siret[:9])
        problem = _agent_problem(self)
        if problem:
            raise ConfigError(f"agent {self.uid!r}: {problem}")

    def claims(self, idp_acr: str) -> dict[str, str]:
        """Every claim this agent has, by claim name; `idp_acr` is the level the IdP asserted."""
        out = {name: getattr(self, name) for name in AGENT_CLAIMS if name != "idp_acr"}
        out["idp_acr"] = idp_acr
        return {name: value for name, value in out.items() if value is not None}


def _agent_problem(agent: Agent) -> str | None:
    """Why an agent does not look like what ProConnect sends (identity-for-sp DTO), or None."""
    shape = _record_shape_problem(agent)
    if shape:
        return shape
    for name in ("given_name", "usual_name", "organization_label", "organizational_unit", "belonging_population"):
        value = getattr(agent, name)
        if value is not None and not 1 <= len(value.strip()) <= 256:
            return f"{name} must be 1-256 characters"
    if not _EMAIL.fullmatch(agent.email):
        return "email must be an address like name@example.org"
    if not _SIRET.fullmatch(agent.siret):
        return "siret must be 14 digits, without spaces"
    if agent.siren is not None and not _SIREN.fullmatch(agent.siren):
        return "siren must be 9 digits"
    if agent.phone_number is not None and not _PHONE.fullmatch(agent.phone_number):
        return "phone_number must be a phone number"
    if not _UID.fullmatch(agent.idp_id):
        return "idp_id must name an identity provider"
    return None


_AGENT_REQUIRED = ("uid", "given_name", "usual_name", "email", "siret", "idp_id")


def agents_from_json(data: Any, source: str = "identities") -> list[Agent]:
    """Parse a JSON list of agent objects (the --identities file format of the ProConnect profile)."""
    return records_from_json(Agent, data, source, "agent", _AGENT_REQUIRED)


BUILTIN_AGENTS: tuple[Agent, ...] = (
    Agent(
        uid="claire-bernard",
        given_name="Claire Anne",
        usual_name="BERNARD",
        email="claire.bernard@essais.example.gouv.fr",
        siret="13000001000012",
        idp_id="dev-etat",
        organization_label="Ministère fictif des Essais",
        organizational_unit="Direction du numérique",
        belonging_population="agent",
        phone_number="01 23 45 67 89",
    ),
    Agent(
        uid="karim-haddad",
        given_name="Karim",
        usual_name="HADDAD",
        email="karim.haddad@essais.example.gouv.fr",
        siret="13000001000020",
        idp_id="dev-etat",
        organization_label="Ministère fictif des Essais – service régional",
        belonging_population="prestataire",
    ),
    Agent(
        uid="sophie-leroy",
        given_name="Sophie",
        usual_name="LEROY",
        email="sophie.leroy@testville.example.fr",
        siret="21750001200018",
        idp_id="dev-territoriale",
        organization_label="Commune fictive de Testville",
        organizational_unit="Service état civil",
        belonging_population="agent",
    ),
)
"""Fictional built-in ProConnect agents (two IdPs, three organisations)."""
