"""tokens.py opens each token with a shallow copy of one pristine jwcrypto JWE/JWS (a
measured speed-up, see docs/benchmarks.md): nothing a token leaves behind may reach the
pristine objects, or the next token, in this thread or another."""

from __future__ import annotations

import copy
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from fcplus_wsgi import tokens
from fcplus_wsgi.errors import FlowError
from fcplus_wsgi.providers import PRESETS
from fcplus_wsgi.tokens import open_token

from .helpers import Keys, encrypt, id_claims, sign

FCPLUS = PRESETS["fcplus-integration"].policy


def _state(obj: Any) -> dict[str, Any]:
    """Everything but the shared registry, deep-copied, plus what the registry holds."""
    state = {k: copy.deepcopy(v) for k, v in vars(obj).items() if k != "header_registry"}
    state["registry"] = dict(obj.header_registry._registry)
    return state


def _token(keys: Keys, sub: str, alg: str = "RSA-OAEP") -> str:
    inner = sign(id_claims(sub=sub), keys.provider_ec, "ES256")
    return encrypt(inner, keys.rsa_enc if alg == "RSA-OAEP" else keys.ec_enc, alg)


def _open(keys: Keys, token: str) -> dict[str, Any]:
    claims, _ = open_token(token, service_keys=keys.service, provider=keys.provider, policy=FCPLUS,
                           algs=("ES256",), prefix="id_token")
    return claims


def test_pristine_objects_stay_untouched_by_good_and_bad_tokens(keys: Keys) -> None:
    before = (_state(tokens._PRISTINE_JWE), _state(tokens._PRISTINE_JWS))
    assert _open(keys, _token(keys, "b" * 64))["sub"] == "b" * 64
    assert _open(keys, _token(keys, "c" * 64, "ECDH-ES"))["sub"] == "c" * 64
    foreign = encrypt(sign(id_claims(), keys.provider_ec, "ES256"), keys.foreign_rsa_enc, "RSA-OAEP",
                      kid=keys.rsa_enc.get("kid"))
    forged = encrypt(sign(id_claims(), keys.attacker_ec, "ES256"), keys.rsa_enc, "RSA-OAEP")
    for bad in (foreign, forged):
        with pytest.raises(FlowError):
            _open(keys, bad)
    assert (_state(tokens._PRISTINE_JWE), _state(tokens._PRISTINE_JWS)) == before
    assert tokens._PRISTINE_JWE.objects == {} and tokens._PRISTINE_JWE.plaintext is None
    assert tokens._PRISTINE_JWS.objects == {"payload": None} and tokens._PRISTINE_JWS.verifylog is None


def test_a_failed_token_never_yields_the_previous_tokens_claims(keys: Keys) -> None:
    good = _token(keys, "d" * 64)
    forged = encrypt(sign(id_claims(sub="e" * 64), keys.attacker_ec, "ES256"), keys.rsa_enc, "RSA-OAEP")
    for _ in range(3):
        assert _open(keys, good)["sub"] == "d" * 64
        with pytest.raises(FlowError) as info:
            _open(keys, forged)
        assert info.value.code == "id_token_signature_invalid"


def test_threads_opening_tokens_at_once_get_their_own_claims(keys: Keys) -> None:
    subs = [f"{i:064x}" for i in range(24)]
    tokens_by_sub = {sub: _token(keys, sub, "ECDH-ES" if i % 2 else "RSA-OAEP") for i, sub in enumerate(subs)}
    with ThreadPoolExecutor(max_workers=6) as pool:
        opened = list(pool.map(lambda sub: _open(keys, tokens_by_sub[sub])["sub"], subs * 3))
    assert opened == subs * 3
