"""fcplus_wsgi.jose against jwcrypto, an independent implementation: every algorithm the
policies can allow opens what jwcrypto made, nothing jwcrypto refuses is accepted, and
each malformation the cryptography depends on is refused by its own check."""

from __future__ import annotations

import base64
import json
from functools import cache
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jwcrypto import jwk
from jwcrypto.common import JWException
from jwcrypto.jwe import JWE
from jwcrypto.jws import JWS

from fcplus_wsgi.jose import CEK_BYTES, KEY_ALGS, SIGNING_ALGS, JoseError, b64decode, decrypt_compact, verify_compact
from fcplus_wsgi.providers import JWE_ENCS, JWE_KEY_ALGS, STANDARD_SIGNING_ALGS
from fcplus_wsgi.tokens import _ALG_KTY

PLAINTEXT = b"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJtYXJpZSJ9.c2lnbmF0dXJl"
SECRET = b"s" * 32


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@cache
def enc_key(alg: str, crv: str = "P-256") -> jwk.JWK:
    if alg.startswith("RSA"):
        return jwk.JWK.generate(kty="RSA", size=2048, use="enc")
    return jwk.JWK.generate(kty="EC", crv=crv, use="enc")


@cache
def sig_key(alg: str) -> jwk.JWK:
    if alg.startswith("ES"):
        return jwk.JWK.generate(kty="EC", crv={"256": "P-256", "384": "P-384", "512": "P-521"}[alg[2:]])
    if alg.startswith("HS"):
        return jwk.JWK(kty="oct", k=b64(SECRET))
    return jwk.JWK.generate(kty="RSA", size=2048)


def seal(alg: str, enc: str, key: jwk.JWK, plaintext: bytes = PLAINTEXT, **extra: Any) -> str:
    token = JWE(plaintext, json.dumps({"alg": alg, "enc": enc, **extra}))
    token.add_recipient(key)
    return token.serialize(compact=True)


def jws(alg: str, payload: bytes = b'{"sub":"marie"}', key: jwk.JWK | None = None) -> str:
    token = JWS(payload)
    token.add_signature(key or sig_key(alg), alg=alg, protected=json.dumps({"alg": alg}))
    return token.serialize(compact=True)


def ours_open(token: str, key: jwk.JWK) -> bytes:
    parts = token.split(".")
    header = json.loads(b64decode(parts[0]))
    return decrypt_compact(parts, header, key.get_op_key("unwrapKey"))


def ours_verify(token: str, alg: str, key: jwk.JWK | None = None) -> bytes:
    key = key or sig_key(alg)
    material = SECRET if alg.startswith("HS") else key.get_op_key("verify")
    return verify_compact(token.split("."), alg, material)


def jwcrypto_open(token: str, key: jwk.JWK) -> bytes | None:
    parts = token.split(".")
    try:
        header = json.loads(base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)))
        obj = JWE()
        obj.allowed_algs = [header["alg"], header["enc"]]
        obj.deserialize(token, key=key)
        return bytes(obj.payload)
    except (JWException, ValueError, TypeError, KeyError):
        return None


def test_every_allowable_algorithm_has_code() -> None:
    # The policies can only allow what jose implements: a new name in providers.py without
    # code here would fail closed at run time, but should fail this test first.
    assert set(JWE_KEY_ALGS) <= set(KEY_ALGS)
    assert set(JWE_ENCS) <= set(CEK_BYTES)
    assert set(STANDARD_SIGNING_ALGS) <= set(SIGNING_ALGS)
    assert set(_ALG_KTY) == set(SIGNING_ALGS)  # what tokens.py selects keys for, jose verifies


# -- JWE: what jwcrypto seals, jose opens ------------------------------------------------------

@pytest.mark.parametrize("enc", JWE_ENCS)
@pytest.mark.parametrize("alg", ["RSA-OAEP", "RSA-OAEP-256", "ECDH-ES"])
def test_opens_what_jwcrypto_seals(alg: str, enc: str) -> None:
    key = enc_key(alg)
    assert ours_open(seal(alg, enc, key), key) == PLAINTEXT


@pytest.mark.parametrize("crv", ["P-384", "P-521"])
def test_ecdh_es_on_other_curves(crv: str) -> None:
    key = enc_key("ECDH-ES", crv)
    assert ours_open(seal("ECDH-ES", "A256GCM", key), key) == PLAINTEXT


def test_ecdh_es_party_info_enters_the_key_derivation() -> None:
    key = enc_key("ECDH-ES")
    token = seal("ECDH-ES", "A256GCM", key, apu=b64(b"Alice"), apv=b64(b"Bob"))
    assert ours_open(token, key) == PLAINTEXT
    # apu/apv are in the protected header: changing them breaks the AAD and the key both.
    header = json.loads(b64decode(token.split(".")[0]))
    header["apv"] = b64(b"Eve")
    parts = token.split(".")
    with pytest.raises(JoseError):
        decrypt_compact(parts, header, key.get_op_key("unwrapKey"))


def test_wrong_key_is_refused() -> None:
    for alg in ("RSA-OAEP", "ECDH-ES"):
        other = jwk.JWK.generate(kty="RSA", size=2048) if alg.startswith("RSA") else jwk.JWK.generate(kty="EC", crv="P-256")
        with pytest.raises(JoseError):
            ours_open(seal(alg, "A256GCM", enc_key(alg)), other)


def test_key_type_must_match_the_algorithm() -> None:
    rsa_token = seal("RSA-OAEP", "A256GCM", enc_key("RSA-OAEP"))
    with pytest.raises(JoseError, match="needs an RSA key"):
        ours_open(rsa_token, enc_key("ECDH-ES"))
    ec_token = seal("ECDH-ES", "A256GCM", enc_key("ECDH-ES"))
    with pytest.raises(JoseError, match="needs an EC key"):
        ours_open(ec_token, enc_key("RSA-OAEP"))


def _with_header(token: str, **changes: Any) -> tuple[list[str], dict[str, Any]]:
    parts = token.split(".")
    header = {**json.loads(b64decode(parts[0])), **changes}
    header = {k: v for k, v in header.items() if v is not None}
    parts[0] = b64(json.dumps(header).encode())
    return parts, header


def test_epk_must_be_a_public_point_of_the_service_key_curve() -> None:
    key = enc_key("ECDH-ES")
    token = seal("ECDH-ES", "A256GCM", key)
    epk = json.loads(b64decode(token.split(".")[0]))["epk"]
    private = key.get_op_key("unwrapKey")
    off_curve = {**epk, "y": b64((int.from_bytes(b64decode(epk["y"]), "big") ^ 1).to_bytes(32, "big"))}
    other_curve = json.loads(jwk.JWK.generate(kty="EC", crv="P-384").export_public())
    short = {**epk, "x": b64(b64decode(epk["x"])[1:])}
    cases = {
        "epk is not a point": off_curve,
        "curve of the service key": other_curve,
        "public EC key": {**epk, "d": epk["x"]},
        "wrong length": short,
        "coordinates missing": {k: v for k, v in epk.items() if k != "y"},
    }
    for message, bad in cases.items():
        parts, header = _with_header(token, epk=bad)
        with pytest.raises(JoseError, match=message):
            decrypt_compact(parts, header, private)
    for bad_type in ("x", 3, None):
        parts, header = _with_header(token, epk=bad_type)
        with pytest.raises(JoseError):
            decrypt_compact(parts, header, private)


def test_ecdh_es_refuses_an_encrypted_key() -> None:
    key = enc_key("ECDH-ES")
    parts = seal("ECDH-ES", "A256GCM", key).split(".")
    parts[1] = b64(b"\0" * 40)
    header = json.loads(b64decode(parts[0]))
    with pytest.raises(JoseError, match="no encrypted key"):
        decrypt_compact(parts, header, key.get_op_key("unwrapKey"))


def test_rsa_unwrapped_key_must_have_the_size_of_enc() -> None:
    # A valid RSA-OAEP wrap of a 16-byte CEK in a token claiming A256GCM.
    key = enc_key("RSA-OAEP")
    token = seal("RSA-OAEP", "A128GCM", key)
    parts, header = _with_header(token, enc="A256GCM")
    with pytest.raises(JoseError, match="wrong length"):
        decrypt_compact(parts, header, key.get_op_key("unwrapKey"))


@pytest.mark.parametrize("enc", ["A256GCM", "A128CBC-HS256"])
@pytest.mark.parametrize("segment,change", [
    (2, lambda b: b[:-1]), (2, lambda b: b + b"\0"),       # IV length
    (4, lambda b: b[:-4]), (4, lambda b: b + b"\0\0\0\0"),  # tag length
    (4, lambda b: bytes([b[0] ^ 1]) + b[1:]),                # tag value
    (3, lambda b: bytes([b[0] ^ 1]) + b[1:]),                # ciphertext
])
def test_content_iv_tag_and_ciphertext_are_checked(enc: str, segment: int, change: Any) -> None:
    key = enc_key("RSA-OAEP")
    parts = seal("RSA-OAEP", enc, key).split(".")
    parts[segment] = b64(change(b64decode(parts[segment])))
    header = json.loads(b64decode(parts[0]))
    with pytest.raises(JoseError):
        decrypt_compact(parts, header, key.get_op_key("unwrapKey"))


def test_protected_header_is_authenticated() -> None:
    key = enc_key("RSA-OAEP")
    parts, header = _with_header(seal("RSA-OAEP", "A256GCM", key), kid="other")
    with pytest.raises(JoseError):
        decrypt_compact(parts, header, key.get_op_key("unwrapKey"))


@pytest.mark.parametrize("bad", ["abc=", "ab+c", "ab/c", "ab c", "a", "é"])
def test_segments_must_be_strict_base64url(bad: str) -> None:
    with pytest.raises(JoseError):
        b64decode(bad)


def test_padding_or_standard_alphabet_in_a_token_is_refused() -> None:
    key = enc_key("RSA-OAEP")
    parts = seal("RSA-OAEP", "A256GCM", key).split(".")
    header = json.loads(b64decode(parts[0]))
    for index in range(1, 5):
        padded = list(parts)
        padded[index] = padded[index] + "=" * (-len(padded[index]) % 4 or 4)
        with pytest.raises(JoseError, match="base64url"):
            decrypt_compact(padded, header, key.get_op_key("unwrapKey"))


def test_unknown_algorithms_have_no_code_path() -> None:
    key = enc_key("RSA-OAEP").get_op_key("unwrapKey")
    parts = seal("RSA-OAEP", "A256GCM", enc_key("RSA-OAEP")).split(".")
    for header in ({"alg": "RSA1_5", "enc": "A256GCM"}, {"alg": "dir", "enc": "A256GCM"},
                   {"alg": "A256KW", "enc": "A256GCM"}, {"alg": "ECDH-ES+A256KW", "enc": "A256GCM"},
                   {"alg": "RSA-OAEP", "enc": "A256CTR"}, {"alg": None, "enc": None}):
        with pytest.raises(JoseError, match="not supported"):
            decrypt_compact(parts, header, key)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(alg=st.sampled_from(["RSA-OAEP", "ECDH-ES"]), enc=st.sampled_from(["A256GCM", "A128CBC-HS256"]),
       segment=st.integers(0, 4), position=st.integers(0, 10_000), char=st.sampled_from(
           "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"))
def test_a_changed_character_never_yields_other_plaintext(alg: str, enc: str, segment: int, position: int,
                                                          char: str) -> None:
    """Never a different plaintext, and never accepted where jwcrypto refuses."""
    key = enc_key(alg)
    token = seal(alg, enc, key)
    parts = token.split(".")
    if not parts[segment]:
        return
    i = position % len(parts[segment])
    parts[segment] = parts[segment][:i] + char + parts[segment][i + 1:]
    changed = ".".join(parts)
    try:
        header = json.loads(b64decode(parts[0]))
        if not isinstance(header, dict):
            return
        opened = decrypt_compact(parts, header, key.get_op_key("unwrapKey"))
    except (JoseError, ValueError):
        return
    assert opened == PLAINTEXT
    assert jwcrypto_open(changed, key) == PLAINTEXT


# -- JWS: what jwcrypto signs, jose verifies ---------------------------------------------------

@pytest.mark.parametrize("alg", SIGNING_ALGS)
def test_verifies_what_jwcrypto_signs(alg: str) -> None:
    assert ours_verify(jws(alg), alg) == b'{"sub":"marie"}'


@pytest.mark.parametrize("alg", SIGNING_ALGS)
def test_a_changed_payload_or_signature_is_refused(alg: str) -> None:
    head, payload, signature = jws(alg).split(".")
    forged_payload = b64(b'{"sub":"eve"}')
    raw = b64decode(signature)
    for token in (f"{head}.{forged_payload}.{signature}", f"{head}.{payload}.{b64(bytes([raw[0] ^ 1]) + raw[1:])}",
                  f"{head}.{payload}.{b64(raw[:-1])}", f"{head}.{payload}."):
        with pytest.raises(JoseError):
            ours_verify(token, alg)


@pytest.mark.parametrize("alg", ["ES256", "RS256", "PS256"])
def test_another_key_of_the_same_type_is_refused(alg: str) -> None:
    other = jwk.JWK.generate(kty="EC", crv="P-256") if alg == "ES256" else jwk.JWK.generate(kty="RSA", size=2048)
    with pytest.raises(JoseError, match="does not verify"):
        ours_verify(jws(alg), alg, key=other)


def test_signature_key_must_match_the_algorithm() -> None:
    with pytest.raises(JoseError, match="needs a key on secp256r1"):
        ours_verify(jws("ES256"), "ES256", key=sig_key("ES384"))
    with pytest.raises(JoseError, match="needs an RSA key"):
        ours_verify(jws("RS256"), "RS256", key=sig_key("ES256"))
    with pytest.raises(JoseError, match="needs a key on"):
        ours_verify(jws("ES256"), "ES256", key=sig_key("RS256"))


def test_rs_and_ps_are_not_interchangeable() -> None:
    key = sig_key("RS256")
    with pytest.raises(JoseError):
        ours_verify(jws("PS256", key=key), "RS256", key=key)
    with pytest.raises(JoseError):
        ours_verify(jws("RS256", key=key), "PS256", key=key)


def test_ecdsa_signature_in_der_form_is_refused() -> None:
    """RFC 7518 3.4 wants R || S; a DER signature (what some libraries emit) is not accepted."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    head = b64(b'{"alg":"ES256"}')
    payload = b64(b'{"sub":"marie"}')
    der = sig_key("ES256").get_op_key("sign").sign(f"{head}.{payload}".encode(), ec.ECDSA(hashes.SHA256()))
    with pytest.raises(JoseError, match="wrong length"):
        ours_verify(f"{head}.{payload}.{b64(der)}", "ES256")


def test_hs256_needs_a_secret_of_256_bits() -> None:
    head = b64(b'{"alg":"HS256"}')
    payload = b64(b'{"sub":"marie"}')
    import hashlib
    import hmac

    short = b"short"
    token = f"{head}.{payload}.{b64(hmac.new(short, f'{head}.{payload}'.encode(), hashlib.sha256).digest())}"
    with pytest.raises(JoseError, match="256 bits"):
        verify_compact(token.split("."), "HS256", short)
    with pytest.raises(JoseError, match="does not verify"):
        verify_compact(jws("HS256").split("."), "HS256", b"t" * 32)


def test_unknown_signature_algorithms_have_no_code_path() -> None:
    token = jws("ES256").split(".")
    for alg in ("none", "ES256K", "EdDSA", "HS512", "RS1", ""):
        with pytest.raises(JoseError, match=r"not supported|needs"):
            verify_compact(token, alg, sig_key("ES256").get_op_key("verify"))


def _gcm_token(key: jwk.JWK, iv: bytes, move_to_ciphertext: int = 0) -> list[str]:
    """A token jwcrypto would not make: valid cryptography, non-standard IV or tag split."""
    import os

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    cek = os.urandom(32)
    sha1 = hashes.SHA1()  # RSA-OAEP as RFC 7518 4.3 defines it
    wrapped = key.get_op_key("wrapKey").encrypt(cek, padding.OAEP(mgf=padding.MGF1(sha1), algorithm=sha1, label=None))
    head = b64(json.dumps({"alg": "RSA-OAEP", "enc": "A256GCM"}).encode())
    sealed = AESGCM(cek).encrypt(iv, PLAINTEXT, head.encode())
    cut = len(sealed) - 16 + move_to_ciphertext
    return [head, b64(wrapped), b64(iv), b64(sealed[:cut]), b64(sealed[cut:])]


def test_gcm_iv_must_be_96_bits_and_tag_128_bits() -> None:
    """AES-GCM itself would accept both: other IV sizes are valid GCM, and a tag shortened
    by moving bytes into the ciphertext gives the same bytes to decrypt."""
    key = enc_key("RSA-OAEP")
    private = key.get_op_key("unwrapKey")
    header = {"alg": "RSA-OAEP", "enc": "A256GCM"}
    assert decrypt_compact(_gcm_token(key, b"\1" * 12), header, private) == PLAINTEXT
    with pytest.raises(JoseError, match="IV or tag"):
        decrypt_compact(_gcm_token(key, b"\1" * 16), header, private)
    with pytest.raises(JoseError, match="IV or tag"):
        decrypt_compact(_gcm_token(key, b"\1" * 12, move_to_ciphertext=4), header, private)


@settings(max_examples=150, deadline=None)
@given(alg=st.sampled_from(["ES256", "RS256", "PS256", "HS256"]), segment=st.integers(0, 2),
       position=st.integers(0, 10_000),
       char=st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"))
def test_a_changed_character_never_verifies_other_content(alg: str, segment: int, position: int, char: str) -> None:
    token = jws(alg)
    parts = token.split(".")
    i = position % len(parts[segment])
    parts[segment] = parts[segment][:i] + char + parts[segment][i + 1:]
    try:
        payload = ours_verify(".".join(parts), alg)
    except JoseError:
        return
    # Only a change in the unused low bits of a segment's last character can still verify.
    assert payload == b'{"sub":"marie"}'
    assert b64decode(parts[0]) == b64decode(token.split(".")[0])


@pytest.mark.parametrize("alg,size", [("ES256", 32), ("ES384", 48), ("ES512", 66)])
def test_ecdsa_zero_or_out_of_range_signatures_are_refused(alg: str, size: int) -> None:
    """r = s = 0 ("psychic signatures") and r, s at or above the group order never verify."""
    head, payload, _ = jws(alg).split(".")
    for raw in (b"\0" * (2 * size), b"\xff" * (2 * size), b"\0" * size + b"\1" + b"\0" * (size - 1)):
        with pytest.raises(JoseError, match="does not verify"):
            ours_verify(f"{head}.{payload}.{b64(raw)}", alg)


@pytest.mark.parametrize(("segment", "decoded"), [("AA", b"\x00"), ("AAA", b"\x00\x00"), ("_w", b"\xff"),
                                                  ("__8", b"\xff\xff"), ("", b"")])
def test_canonical_base64url_decodes(segment: str, decoded: bytes) -> None:
    assert b64decode(segment) == decoded


@pytest.mark.parametrize("segment", ["AB", "AP", "_x", "AAB", "AAD", "__9", "A", "AA==", "A+", "A/"])
def test_non_canonical_or_foreign_base64_is_refused(segment: str) -> None:
    """Non-zero unused bits make two encodings of one byte string: a changed character
    must never decode to the same bytes (it made the tamper property test flaky)."""
    with pytest.raises(JoseError):
        b64decode(segment)


# -- guards the mutation run found untested (docs/mutation.md) ------------------------------------

@pytest.mark.parametrize("length", [0, 1, 128, 255, 257, 512])
def test_an_rsa_encrypted_key_of_any_wrong_length_is_a_jose_error(length: int) -> None:
    """cryptography answers a ciphertext of the wrong size with ValueError: it must come out
    as JoseError (the token's refusal), never as an unexpected exception."""
    key = enc_key("RSA-OAEP")
    parts = seal("RSA-OAEP", "A256GCM", key).split(".")
    parts[1] = b64(b"\x01" * length)
    header = json.loads(b64decode(parts[0]))
    with pytest.raises(JoseError, match="key unwrap failed"):
        decrypt_compact(parts, header, key.get_op_key("unwrapKey"))


@pytest.mark.parametrize("member", ["apu", "apv"])
@pytest.mark.parametrize("value", [0, False, [], {}, 5, ["QQ"], {"a": "QQ"}, True])
def test_ecdh_es_party_info_must_be_a_string(member: str, value: Any) -> None:
    """Falsy non-strings would otherwise read as "absent" and open the token."""
    key = enc_key("ECDH-ES")
    token = seal("ECDH-ES", "A256GCM", key)
    parts, header = _with_header(token, **{member: value})
    with pytest.raises(JoseError, match="not a string"):
        decrypt_compact(parts, header, key.get_op_key("unwrapKey"))


def test_ecdh_es_party_info_must_be_base64url() -> None:
    key = enc_key("ECDH-ES")
    parts, header = _with_header(seal("ECDH-ES", "A256GCM", key), apu="A+B=")
    with pytest.raises(JoseError, match="base64url"):
        decrypt_compact(parts, header, key.get_op_key("unwrapKey"))


def _cbc_token(key: jwk.JWK, plaintext_blocks: bytes, iv_bytes: int = 16) -> tuple[list[str], dict[str, Any]]:
    """A128CBC-HS256 with a correct MAC over raw blocks, so the padding check is reached."""
    import hashlib
    import hmac
    import os

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    cek, iv = os.urandom(32), os.urandom(iv_bytes)
    sha1 = hashes.SHA1()
    wrapped = key.get_op_key("wrapKey").encrypt(cek, padding.OAEP(mgf=padding.MGF1(sha1), algorithm=sha1, label=None))
    header = {"alg": "RSA-OAEP", "enc": "A128CBC-HS256"}
    head = b64(json.dumps(header).encode())
    encryptor = Cipher(algorithms.AES(cek[16:]), modes.CBC(iv[:16].ljust(16, b"\0"))).encryptor()
    ciphertext = encryptor.update(plaintext_blocks) + encryptor.finalize()
    aad = head.encode()
    tag = hmac.new(cek[:16], aad + iv + ciphertext + (len(aad) * 8).to_bytes(8, "big"), hashlib.sha256).digest()[:16]
    return [head, b64(wrapped), b64(iv), b64(ciphertext), b64(tag)], header


def test_cbc_padding_is_checked_after_the_mac() -> None:
    key = enc_key("RSA-OAEP")
    private = key.get_op_key("unwrapKey")
    good, header = _cbc_token(key, PLAINTEXT[:32] + bytes([16]) * 16)
    assert decrypt_compact(good, header, private) == PLAINTEXT[:32]
    for last in (b"\x00" * 16, b"A" * 15 + b"\x11", b"A" * 14 + b"\x01\x02"):
        parts, header = _cbc_token(key, PLAINTEXT[:16] + last)
        with pytest.raises(JoseError, match="padding"):
            decrypt_compact(parts, header, private)
    empty, header = _cbc_token(key, b"")
    with pytest.raises(JoseError, match="wrong length"):
        decrypt_compact(empty, header, private)


@pytest.mark.parametrize("length", [0, 1, 255, 257, 512])
@pytest.mark.parametrize("alg", ["RS256", "PS256", "RS512", "PS512"])
def test_an_rsa_signature_of_any_length_fails_as_a_jose_error(alg: str, length: int) -> None:
    token = jws(alg).split(".")
    token[2] = b64(b"\x01" * length)
    with pytest.raises(JoseError):
        ours_verify(".".join(token), alg)


@pytest.mark.parametrize("alg", ["ES256", "ES384", "ES512"])
@pytest.mark.parametrize("delta", [-1, 1])
def test_an_ecdsa_signature_one_byte_off_is_refused(alg: str, delta: int) -> None:
    token = jws(alg).split(".")
    raw = b64decode(token[2])
    token[2] = b64(raw[:delta] if delta < 0 else raw + b"\0")
    with pytest.raises(JoseError, match="wrong length"):
        ours_verify(".".join(token), alg)


@pytest.mark.parametrize("iv_bytes", [12, 15, 17, 32])
def test_a_cbc_iv_of_another_length_is_refused_even_under_a_valid_mac(iv_bytes: int) -> None:
    """The provider knows the CEK it wrapped, so it can MAC any IV: the length check must stand
    on its own (cryptography would raise its own ValueError for the IV)."""
    key = enc_key("RSA-OAEP")
    parts, header = _cbc_token(key, PLAINTEXT[:16] + bytes([16]) * 16, iv_bytes)
    with pytest.raises(JoseError, match="wrong length"):
        decrypt_compact(parts, header, key.get_op_key("unwrapKey"))
