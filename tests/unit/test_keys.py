"""fcplus_wsgi.keys: what `fcplus-wsgi keys generate` writes, what is published, and which
private key may open which JWE.

A provider picks the client's encryption key by alg, use and kty (node oidc-provider, which
FC+'s core runs, treats a key with `alg` as usable for that alg only, and a key without `alg`
as usable for every alg of its kty). The generated RSA key therefore carries no `alg`, so a
provider choosing RSA-OAEP or RSA-OAEP-256 finds it; our side keeps the same rule when
decrypting, and keys files written before (RSA key pinned to RSA-OAEP) keep working.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from jwcrypto import jwk

from fcplus_wsgi.errors import FlowError
from fcplus_wsgi.keys import (
    EC_ENC_ALGS,
    RSA_ENC_ALGS,
    ServiceKeys,
    generate_ec_encryption_key,
    generate_ec_signing_key,
    generate_private_jwks,
    generate_rsa_encryption_key,
    keys_from_jwks,
    load_keys_file,
    public_jwks,
)
from fcplus_wsgi.providers import GENERIC
from fcplus_wsgi.tokens import decrypt

from .helpers import encrypt

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}
INNER = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"  # decrypt() returns the plaintext as is


@pytest.fixture(scope="module")
def generated() -> dict[str, Any]:
    return generate_private_jwks()


def by_role(jwks: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The three generated keys by role, found by kty/use (not by alg, which RSA lacks)."""
    keys = jwks["keys"]
    return {
        "rsa": next(k for k in keys if k["kty"] == "RSA"),
        "ec_enc": next(k for k in keys if k["kty"] == "EC" and k["use"] == "enc"),
        "ec_sig": next(k for k in keys if k["kty"] == "EC" and k["use"] == "sig"),
    }


def public_jwk(private: dict[str, Any]) -> jwk.JWK:
    return jwk.JWK(**{k: v for k, v in private.items() if k not in PRIVATE_MEMBERS})


def legacy_rsa_key(alg: str = "RSA-OAEP") -> dict[str, Any]:
    """An RSA key as the earlier `keys generate` wrote it: same members, plus a pinned alg."""
    return {**generate_rsa_encryption_key(2048), "alg": alg}


def opens(service: ServiceKeys, token: str) -> str:
    """The plaintext, through the same path a login takes (policy check, candidates, JWE)."""
    return decrypt(token.split("."), service, GENERIC.policy, "id_token")


def refusal(service: ServiceKeys, token: str) -> str:
    with pytest.raises(FlowError) as info:
        opens(service, token)
    return info.value.code


# -- generation and publication ---------------------------------------------------------------------

def test_generated_keys_kids_uses_and_algs(generated: dict[str, Any]) -> None:
    assert len(generated["keys"]) == 3
    roles = by_role(generated)
    for key in generated["keys"]:
        assert key["kid"] == jwk.JWK(**key).thumbprint()  # RFC 7638: the kid names the key material
        assert "d" in key
    assert len({k["kid"] for k in generated["keys"]}) == 3
    # RSA: usable for encryption, no alg, so a provider may choose RSA-OAEP or RSA-OAEP-256.
    assert roles["rsa"]["use"] == "enc" and "alg" not in roles["rsa"]
    assert jwk.JWK(**roles["rsa"]).get_op_key("unwrapKey").key_size == 3072
    # EC: ECDH-ES is the only EC algorithm this library decrypts, so the key says so.
    assert (roles["ec_enc"]["use"], roles["ec_enc"]["alg"], roles["ec_enc"]["crv"]) == ("enc", "ECDH-ES", "P-256")
    assert (roles["ec_sig"]["use"], roles["ec_sig"]["alg"], roles["ec_sig"]["crv"]) == ("sig", "ES256", "P-256")


def test_single_key_generators() -> None:
    assert "alg" not in generate_rsa_encryption_key(2048)
    assert generate_ec_encryption_key()["alg"] == "ECDH-ES"
    assert generate_ec_signing_key()["alg"] == "ES256"


def test_public_half_has_no_private_members(generated: dict[str, Any]) -> None:
    published = public_jwks(generated)
    service = keys_from_jwks(generated)
    assert service.public == published
    assert json.loads(service.public_json) == published
    assert [k["kid"] for k in published["keys"]] == [k["kid"] for k in generated["keys"]]
    for private, public in zip(generated["keys"], published["keys"], strict=True):
        assert not PRIVATE_MEMBERS & public.keys()
        assert not jwk.JWK(**public).has_private
        # Everything else is published as is: use, and alg exactly where the private key has one.
        assert public == {k: v for k, v in private.items() if k not in PRIVATE_MEMBERS}
    assert "alg" not in by_role(published)["rsa"]


def test_public_half_drops_symmetric_keys() -> None:
    jwks = {"keys": [generate_ec_encryption_key(), {"kty": "oct", "k": "c2VjcmV0", "kid": "s"}]}
    assert [k["kty"] for k in public_jwks(jwks)["keys"]] == ["EC"]


# -- which key may open which JWE ---------------------------------------------------------------------

def test_generated_keys_serve_every_supported_alg(generated: dict[str, Any]) -> None:
    service = keys_from_jwks(generated)
    roles = by_role(generated)
    for alg in (*RSA_ENC_ALGS, *EC_ENC_ALGS):
        assert service.has_encryption_key(alg), alg
    for alg in RSA_ENC_ALGS:
        token = encrypt(INNER, public_jwk(roles["rsa"]), alg)
        assert opens(service, token) == INNER
        assert len(service.decryption_keys(roles["rsa"]["kid"], alg)) == 1
    assert opens(service, encrypt(INNER, public_jwk(roles["ec_enc"]), "ECDH-ES")) == INNER
    # Without kid every key of the right type and alg is a candidate: still only the one RSA key.
    assert len(service.decryption_keys(None, "RSA-OAEP-256")) == 1
    # The signing key never decrypts, and nothing serves an algorithm this library lacks.
    assert service.decryption_keys(roles["ec_sig"]["kid"], "ECDH-ES") == ()
    for alg in ("RSA1_5", "ECDH-ES+A256KW", "dir", None):
        assert service.decryption_keys(None, alg) == ()


@pytest.mark.parametrize(("declared", "other"), [("RSA-OAEP", "RSA-OAEP-256"), ("RSA-OAEP-256", "RSA-OAEP")])
def test_declared_alg_is_binding(declared: str, other: str) -> None:
    key = legacy_rsa_key(declared)
    service = keys_from_jwks({"keys": [key]})
    assert service.decryption_keys(key["kid"], declared) and service.decryption_keys(None, declared)
    assert service.decryption_keys(key["kid"], other) == ()
    assert service.decryption_keys(None, other) == ()
    assert not service.has_encryption_key(other)
    assert opens(service, encrypt(INNER, public_jwk(key), declared)) == INNER
    # A JWE whose alg the key was not published for is refused before any cryptography, even
    # though the RSA private key could technically unwrap it.
    for kid in (True, None):
        assert refusal(service, encrypt(INNER, public_jwk(key), other, kid=kid)) == "id_token_decryption_failed"


def test_declared_alg_of_another_type_or_unknown_never_decrypts() -> None:
    rsa_for_ec = {**generate_rsa_encryption_key(2048), "alg": "ECDH-ES"}
    ec_for_rsa = {**generate_ec_encryption_key(), "alg": "RSA-OAEP"}
    rsa_unknown = {**generate_rsa_encryption_key(2048), "alg": "RSA1_5"}
    service = keys_from_jwks({"keys": [rsa_for_ec, ec_for_rsa, rsa_unknown]})
    for alg in (*RSA_ENC_ALGS, *EC_ENC_ALGS):
        assert service.decryption_keys(None, alg) == (), alg


def test_ec_key_without_alg_serves_ecdh_es() -> None:
    key = {k: v for k, v in generate_ec_encryption_key().items() if k != "alg"}
    service = keys_from_jwks({"keys": [key]})
    assert opens(service, encrypt(INNER, public_jwk(key), "ECDH-ES")) == INNER
    assert service.decryption_keys(None, "RSA-OAEP") == ()


# -- keys files written before this format ----------------------------------------------------------

def test_old_keys_file_loads_unchanged_and_decrypts_rsa_oaep(tmp_path: Path) -> None:
    old = {"keys": [legacy_rsa_key(), generate_ec_encryption_key(), generate_ec_signing_key()]}
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(old))
    service = load_keys_file(path)
    rsa = old["keys"][0]
    # Published exactly as before: the RSA key still says RSA-OAEP, so providers keep choosing it for that.
    assert service.public == public_jwks(old)
    assert service.public["keys"][0]["alg"] == "RSA-OAEP"
    assert opens(service, encrypt(INNER, public_jwk(rsa), "RSA-OAEP")) == INNER
    assert opens(service, encrypt(INNER, public_jwk(old["keys"][1]), "ECDH-ES")) == INNER
    # It never served RSA-OAEP-256 and still does not (a provider would not pick it for that either).
    assert not service.has_encryption_key("RSA-OAEP-256")
    assert refusal(service, encrypt(INNER, public_jwk(rsa), "RSA-OAEP-256")) == "id_token_decryption_failed"


def test_rotation_file_with_old_and_new_keys(generated: dict[str, Any]) -> None:
    """During a rotation the file holds the new keys and the old ones (old format here)."""
    old_rsa = legacy_rsa_key()
    new_rsa = by_role(generated)["rsa"]
    service = keys_from_jwks({"keys": [*generated["keys"], old_rsa]})
    assert opens(service, encrypt(INNER, public_jwk(old_rsa), "RSA-OAEP")) == INNER
    for alg in RSA_ENC_ALGS:
        assert opens(service, encrypt(INNER, public_jwk(new_rsa), alg)) == INNER
    assert len(service.decryption_keys(None, "RSA-OAEP")) == 2      # no kid: both tried
    assert len(service.decryption_keys(None, "RSA-OAEP-256")) == 1  # only the key without alg
    assert refusal(service, encrypt(INNER, public_jwk(old_rsa), "RSA-OAEP-256")) == "id_token_decryption_failed"


# -- the merge commands docs/deployment.md gives for a rotation ----------------------------------------

MERGE_PY = ('import json,sys; print(json.dumps({"keys": [k for f in sys.argv[1:] '
            'for k in json.load(open(f))["keys"]]}, indent=2))')
MERGE_JQ = "{keys: [.[].keys[]]}"


def _merge_inputs(tmp_path: Path, generated: dict[str, Any]) -> tuple[Path, Path, dict[str, Any]]:
    old = {"keys": [legacy_rsa_key(), generate_ec_encryption_key(), generate_ec_signing_key()]}
    new_path, old_path = tmp_path / "keys-new.json", tmp_path / "keys.json"
    new_path.write_text(json.dumps(generated))
    old_path.write_text(json.dumps(old))
    return new_path, old_path, old


def _check_merged(text: str, generated: dict[str, Any], old: dict[str, Any], tmp_path: Path) -> None:
    merged = json.loads(text)
    assert [k["kid"] for k in merged["keys"]] == [k["kid"] for k in [*generated["keys"], *old["keys"]]]
    path = tmp_path / "keys-merged.json"
    path.write_text(text)
    service = load_keys_file(path)
    assert [k["kid"] for k in service.public["keys"]][:3] == [k["kid"] for k in generated["keys"]]  # new first


def test_documented_python_merge(tmp_path: Path, generated: dict[str, Any]) -> None:
    new_path, old_path, old = _merge_inputs(tmp_path, generated)
    done = subprocess.run([sys.executable, "-c", MERGE_PY, str(new_path), str(old_path)],
                          capture_output=True, text=True, check=True, timeout=30)
    _check_merged(done.stdout, generated, old, tmp_path)
    assert MERGE_PY in (Path(__file__).resolve().parents[2] / "docs" / "deployment.md").read_text()


@pytest.mark.skipif(shutil.which("jq") is None, reason="jq is not installed")
def test_documented_jq_merge(tmp_path: Path, generated: dict[str, Any]) -> None:
    new_path, old_path, old = _merge_inputs(tmp_path, generated)
    jq = shutil.which("jq")
    assert jq is not None
    done = subprocess.run([jq, "-s", MERGE_JQ, str(new_path), str(old_path)],
                          capture_output=True, text=True, check=True, timeout=30)
    _check_merged(done.stdout, generated, old, tmp_path)
    assert f"jq -s '{MERGE_JQ}'" in (Path(__file__).resolve().parents[2] / "docs" / "deployment.md").read_text()


DROP_ALG_PY = ('import json,sys; d=json.load(open(sys.argv[1])); [k.pop("alg", None) for k in d["keys"] '
               'if k["kty"] == "RSA"]; print(json.dumps(d, indent=2))')
DROP_ALG_JQ = '(.keys[] | select(.kty == "RSA")) |= del(.alg)'


@pytest.mark.parametrize("tool", ["python", "jq"])
def test_documented_alg_removal_from_an_old_rsa_key(tmp_path: Path, tool: str) -> None:
    """Rotation step 1: the old RSA key loses its alg, keeps its kid, and still decrypts RSA-OAEP."""
    if tool == "jq" and shutil.which("jq") is None:
        pytest.skip("jq is not installed")
    old = {"keys": [legacy_rsa_key(), generate_ec_encryption_key(), generate_ec_signing_key()]}
    path = tmp_path / "keys-old.json"
    path.write_text(json.dumps(old))
    command = ([sys.executable, "-c", DROP_ALG_PY, str(path)] if tool == "python"
               else [str(shutil.which("jq")), DROP_ALG_JQ, str(path)])
    done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=30)
    edited = json.loads(done.stdout)
    assert [k["kid"] for k in edited["keys"]] == [k["kid"] for k in old["keys"]]
    assert "alg" not in edited["keys"][0] and [k.get("alg") for k in edited["keys"][1:]] == ["ECDH-ES", "ES256"]
    service = keys_from_jwks(edited)
    for alg in RSA_ENC_ALGS:
        assert opens(service, encrypt(INNER, public_jwk(old["keys"][0]), alg)) == INNER
    documented = (Path(__file__).resolve().parents[2] / "docs" / "deployment.md").read_text()
    assert (DROP_ALG_PY if tool == "python" else DROP_ALG_JQ) in documented
