"""Sealed store entries and eIDAS level ordering."""

from __future__ import annotations

import re

import pytest

from fcplus_wsgi.providers import acr_satisfies
from fcplus_wsgi.sessions import (
    MAX_BINDINGS,
    PENDING_LOGIN,
    PENDING_LOGOUT,
    SESSION,
    binding_hash,
    binding_matches,
    binding_secrets,
    looks_like_session_id,
    looks_like_state,
    new_binding,
    new_session_id,
    new_state,
    seal,
    store_key,
    unseal,
)


@pytest.mark.parametrize(("returned", "requested", "ok"), [
    ("eidas1", ("eidas1",), True), ("eidas2", ("eidas1",), True), ("eidas3", ("eidas1",), True),
    ("eidas1", ("eidas2",), False), ("eidas2", ("eidas2",), True), ("eidas3", ("eidas2",), True),
    ("eidas1", ("eidas3",), False), ("eidas2", ("eidas3",), False), ("eidas3", ("eidas3",), True),
    ("eidas2", ("eidas3", "eidas2"), True),       # the lowest requested level counts
    (None, ("eidas2",), False), ("", ("eidas2",), False), ("EIDAS3", ("eidas2",), False),
    ("eidas4", ("eidas2",), False), ("eidas3 ", ("eidas2",), False),
    (None, (), True), ("anything", (), True),
    # Foreign values are compared by equality only.
    ("urn:loa:high", ("urn:loa:high",), True), ("urn:loa:high", ("urn:loa:low",), False),
    ("urn:loa:high", ("eidas2",), False), ("eidas3", ("urn:loa:high",), False),
    ("eidas3", ("urn:loa:high", "eidas2"), True),
])
def test_acr_satisfies(returned: str | None, requested: tuple[str, ...], ok: bool) -> None:
    assert acr_satisfies(returned, requested) is ok


RECORD = {"sub": "a" * 64, "claims": {"given_name": "Angela", "birthplace": "75107"}, "n": 3, "acr": None}


@pytest.mark.parametrize("kind", [SESSION, PENDING_LOGIN, PENDING_LOGOUT])
def test_seal_unseal_roundtrip(kind: str) -> None:
    secret = new_session_id()
    blob = seal(kind, secret, RECORD)
    assert unseal(kind, secret, blob) == RECORD
    assert b"Angela" not in blob and secret.encode() not in blob
    assert seal(kind, secret, RECORD) != blob  # fresh nonce each time


def test_wrong_secret_or_kind_gives_none() -> None:
    secret = new_session_id()
    blob = seal(SESSION, secret, RECORD)
    assert unseal(SESSION, new_session_id(), blob) is None
    assert unseal(SESSION, secret[:-1] + ("A" if secret[-1] != "A" else "B"), blob) is None
    assert unseal(PENDING_LOGIN, secret, blob) is None
    assert unseal(PENDING_LOGOUT, secret, blob) is None


def test_tampered_or_truncated_blob_gives_none() -> None:
    secret = new_state()
    blob = seal(PENDING_LOGIN, secret, RECORD)
    for index in (0, 11, 12, len(blob) // 2, len(blob) - 17, len(blob) - 1):
        tampered = bytearray(blob)
        tampered[index] ^= 0x01
        assert unseal(PENDING_LOGIN, secret, bytes(tampered)) is None, index
    for cut in (0, 1, 12, 28, len(blob) - 1):
        assert unseal(PENDING_LOGIN, secret, blob[:cut]) is None
    assert unseal(PENDING_LOGIN, secret, blob + b"\x00") is None
    assert unseal(PENDING_LOGIN, secret, b"\x00" * 64) is None


def test_non_object_records_are_not_returned() -> None:
    secret = new_session_id()
    # seal() is typed for dicts, but a list sealed by a bug must not come back as a record.
    assert unseal(SESSION, secret, seal(SESSION, secret, [1, 2])) is None  # type: ignore[arg-type]


def test_store_key_hashing() -> None:
    secret = new_session_id()
    key = store_key(SESSION, secret)
    assert re.fullmatch(r"s:[0-9a-f]{64}", key)
    assert secret not in key
    assert store_key(SESSION, secret) == key                        # deterministic
    assert store_key(PENDING_LOGIN, secret) != key                  # per kind
    assert store_key(PENDING_LOGIN, secret).startswith("p:")
    assert store_key(SESSION, new_session_id()) != key
    # The store key and the sealing key are different hashes of the secret.
    assert key.split(":")[1] not in seal(SESSION, secret, RECORD).hex()


def test_identifier_shapes() -> None:
    ids = {new_session_id() for _ in range(50)}
    states = {new_state() for _ in range(50)}
    assert len(ids) == 50 and len(states) == 50
    assert all(looks_like_session_id(i) for i in ids)
    assert all(looks_like_state(s) for s in states)
    for bad in (None, "", "a" * 42, "a" * 44, "a" * 42 + "=", "a" * 42 + "/", "é" * 43):
        assert not looks_like_session_id(bad)
    for bad in (None, "", "a" * 63, "A" * 64, "g" * 64, "a" * 65, "a" * 63 + "\n"):
        assert not looks_like_state(bad)


def test_binding_hash() -> None:
    secret = new_session_id()
    assert re.fullmatch(r"[0-9a-f]{64}", binding_hash(secret))
    assert binding_hash(secret) == binding_hash(secret)
    assert binding_hash(secret) != binding_hash(new_session_id())
    assert binding_hash(secret) != store_key(SESSION, secret).split(":")[1]


# -- known answers: the derivations are a storage format, shared by every worker and release ------

KNOWN_SECRET = "A" * 43


def test_store_key_seal_key_and_binding_are_pinned_by_known_answers() -> None:
    """A change of prefix, hash or encoding would orphan every stored session and pending login
    at the next deployment (and let one derivation collide with another): pinned here."""
    assert store_key(SESSION, KNOWN_SECRET) == "s:3ee4d30368de319d4adca1a08452506fc251888ee68a47b33ecb610d2856e8c3"
    assert binding_hash(KNOWN_SECRET) == "e9c0800892fc876a30221aea55130984a96a606014ee1c571a5c72b1a2524295"
    # AES-256-GCM under SHA-256("fcplus-seal" NUL secret), nonce first, the kind as associated data.
    blob = bytes.fromhex("000102030405060708090a0b3d5047b8105f475c7c2b4de2a5a8975b8c33b14d3f87d3fa164469f1ce88af")
    assert unseal(SESSION, KNOWN_SECRET, blob) == {"sub": "marie"}
    assert unseal(PENDING_LOGIN, KNOWN_SECRET, blob) is None
    mine = seal(SESSION, KNOWN_SECRET, {"sub": "marie"})
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    key = bytes.fromhex("5e4510494196b8f9f11a53155f0b45782d9f420122659f7354762101076070b8")
    assert AESGCM(key).decrypt(mine[:12], mine[12:], b"s") == b'{"sub":"marie"}'
    assert len(mine) == 12 + len(b'{"sub":"marie"}') + 16


def test_a_sealed_record_reads_back_what_deep_provider_claims_need() -> None:
    """Claims may be MAX_DEPTH deep (strictjson) and sit two levels down in a session record."""
    from fcplus_wsgi.strictjson import MAX_DEPTH
    deep: object = "leaf"
    for _ in range(MAX_DEPTH):
        deep = [deep]
    record = {"claims": {"x": deep}}
    secret = new_session_id()
    assert unseal(SESSION, secret, seal(SESSION, secret, record)) == record


# -- browser binding: every login gets a secret the middleware made ---------------------------------

def test_new_binding_is_fresh_and_never_the_value_the_request_brought() -> None:
    planted = new_session_id()
    fresh, cookie = new_binding(planted)
    assert fresh != planted and looks_like_session_id(fresh)
    assert cookie.split(".")[0] == fresh          # the new login's secret first
    assert binding_matches(cookie, binding_hash(fresh))
    fresh2, cookie2 = new_binding(cookie)
    assert fresh2 not in (fresh, planted)
    # Earlier logins of this browser (other tabs) can still finish.
    assert binding_matches(cookie2, binding_hash(fresh)) and binding_matches(cookie2, binding_hash(fresh2))


def test_new_binding_without_or_with_a_malformed_cookie() -> None:
    for cookie in (None, "", "junk", "a" * 42, "." * 10, "x" * 5000):
        fresh, value = new_binding(cookie)
        assert value == fresh and looks_like_session_id(fresh)


def test_binding_cookie_keeps_at_most_max_bindings() -> None:
    cookie = None
    made = []
    for _ in range(MAX_BINDINGS + 3):
        fresh, cookie = new_binding(cookie)
        made.append(fresh)
    assert cookie is not None and cookie.split(".") == made[::-1][:MAX_BINDINGS]
    assert binding_matches(cookie, binding_hash(made[-MAX_BINDINGS]))
    assert not binding_matches(cookie, binding_hash(made[-MAX_BINDINGS - 1]))  # the oldest fell off


def test_binding_matches_only_a_secret_the_cookie_holds() -> None:
    a, b = new_session_id(), new_session_id()
    bind = binding_hash(a)
    assert binding_matches(a, bind)
    assert binding_matches(f"{b}.{a}", bind)
    for cookie in (None, "", b, f"{b}.{b}", a + "x", a[:-1], f"{a}x.{b}", bind, f"{'.'.join([b] * MAX_BINDINGS)}.{a}"):
        assert not binding_matches(cookie, bind), cookie
    assert not binding_matches(a, "")
    assert binding_secrets(f"{a}.junk.{b}") == [a, b]
    assert binding_secrets("." .join([a] * (MAX_BINDINGS + 1))) == []  # longer than any cookie we write


# -- wire profiles: nothing outside the profile leaves the middleware -------------------------------

def test_a_wire_profile_refuses_any_parameter_outside_it() -> None:
    from fcplus_wsgi.providers import FC_WIRE, PROCONNECT_WIRE

    base = {"response_type": "code", "client_id": "c", "redirect_uri": "https://s.example/cb", "scope": "openid",
            "state": "s" * 64, "nonce": "n" * 64}
    FC_WIRE.check("authorize", base)
    for extra in ("code_challenge", "login_hint", "response_mode", "max_age", "x"):
        with pytest.raises(ValueError, match=extra):
            FC_WIRE.check("authorize", {**base, extra: "v"})
    PROCONNECT_WIRE.check("authorize", {**base, "code_challenge": "c" * 43, "code_challenge_method": "S256"})
    with pytest.raises(ValueError, match="token_type_hint"):
        FC_WIRE.check("revocation", {"token": "t", "client_id": "c", "client_secret": "s", "token_type_hint": "x"})
