"""Sealed store entries and eIDAS level ordering."""

from __future__ import annotations

import re

import pytest

from fcplus_wsgi.providers import acr_satisfies
from fcplus_wsgi.sessions import (
    PENDING_LOGIN,
    PENDING_LOGOUT,
    SESSION,
    binding_hash,
    looks_like_session_id,
    looks_like_state,
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
