"""fcplus_wsgi.tokens against real tokens: valid ones open, every attack gets its catalogue code."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import replace
from typing import Any

import pytest
from jwcrypto import jwk
from jwcrypto.jwe import JWE

from fcplus_wsgi.errors import FlowError
from fcplus_wsgi.providers import GENERIC, PRESETS, Policy
from fcplus_wsgi.tokens import (
    MAX_TOKEN_CHARS,
    Expected,
    ProviderKeys,
    UnknownSigningKey,
    at_hash,
    open_token,
    validate_id_token,
    validate_userinfo,
)

from .helpers import (
    CLIENT_ID,
    CLIENT_SECRET,
    DROP,
    ISSUER,
    NONCE,
    NOW,
    Keys,
    b64json,
    b64url,
    encrypt,
    id_claims,
    sign,
    unsigned,
)

FCPLUS: Policy = PRESETS["fcplus-integration"].policy
PLAIN: Policy = GENERIC.policy  # no encryption required, RSA-OAEP-256 and more encs allowed


def open_id(token: Any, keys: Keys, *, policy: Policy = FCPLUS, algs: tuple[str, ...] | None = None,
            client_secret: str | None = None, provider: ProviderKeys | None = None,
            prefix: str = "id_token") -> dict[str, Any]:
    claims, _ = open_token(token, service_keys=keys.service, provider=provider or keys.provider, policy=policy,
                           algs=algs if algs is not None else policy.id_token_signing_algs, prefix=prefix,
                           client_secret=client_secret)
    return claims


def code_of(fn: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(FlowError) as info:
        fn(*args, **kwargs)
    return info.value.code


def fc_token(keys: Keys, claims: dict[str, Any] | None = None, *, enc_key: jwk.JWK | None = None,
             alg: str = "RSA-OAEP", enc: str = "A256GCM") -> str:
    """What FC+ sends: ES256 JWS nested in a JWE to the service's key."""
    inner = sign(claims or id_claims(), keys.provider_ec, "ES256")
    return encrypt(inner, enc_key or (keys.rsa_enc if alg.startswith("RSA") else keys.ec_enc), alg, enc)


# -- valid tokens ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("alg", "policy"), [("RSA-OAEP", FCPLUS), ("ECDH-ES", FCPLUS), ("RSA-OAEP-256", PLAIN),
                                             ("RSA-OAEP", PLAIN), ("ECDH-ES", PLAIN)])
def test_nested_jwe_opens(keys: Keys, alg: str, policy: Policy) -> None:
    token = fc_token(keys, alg=alg)
    claims, inner = open_token(token, service_keys=keys.service, provider=keys.provider, policy=policy,
                               algs=("ES256",), prefix="id_token")
    assert claims == id_claims()
    assert inner.count(".") == 2
    validate_id_token(claims, Expected(ISSUER, CLIENT_ID, NONCE, ("eidas2",), 60, NOW))


@pytest.mark.parametrize("enc", ["A128GCM", "A128CBC-HS256", "A256CBC-HS512"])
def test_other_allowed_encs_open_under_plain_policy(keys: Keys, enc: str) -> None:
    assert open_id(fc_token(keys, enc=enc), keys, policy=PLAIN, algs=("ES256",))["sub"] == "a" * 64


def test_jwe_without_kid_tries_every_service_key(keys: Keys) -> None:
    inner = sign(id_claims(), keys.provider_ec, "ES256")
    for alg, key in (("RSA-OAEP", keys.rsa_enc), ("ECDH-ES", keys.ec_enc)):
        assert open_id(encrypt(inner, key, alg, kid=None), keys)["sub"] == "a" * 64


def test_plain_rs256_and_es256_jws_open_when_encryption_is_optional(keys: Keys) -> None:
    assert open_id(sign(id_claims(), keys.provider_rsa, "RS256"), keys, policy=PLAIN)["iss"] == ISSUER
    assert open_id(sign(id_claims(), keys.provider_ec, "ES256"), keys, policy=PLAIN)["iss"] == ISSUER


def test_userinfo_prefix_opens_the_same_way(keys: Keys) -> None:
    token = fc_token(keys, {"sub": "a" * 64, "given_name": "Angela"})
    assert open_id(token, keys, prefix="userinfo")["given_name"] == "Angela"


# -- signature algorithm attacks -------------------------------------------------------------------

def test_alg_none_is_refused_plain_and_nested(keys: Keys) -> None:
    assert code_of(open_id, unsigned(id_claims()), keys, policy=PLAIN) == "id_token_signature_alg"
    assert code_of(open_id, unsigned(id_claims()), keys, policy=PLAIN, algs=("ES256", "none")) == "id_token_signature_alg"
    for header in ({"alg": "None"}, {"alg": "NONE"}, {}, {"alg": None}, {"alg": ["ES256"]}):
        assert code_of(open_id, unsigned(id_claims(), header), keys, policy=PLAIN) == "id_token_signature_alg"
    nested = encrypt(unsigned(id_claims()), keys.rsa_enc, "RSA-OAEP")
    assert code_of(open_id, nested, keys) == "id_token_signature_alg"
    assert code_of(open_id, unsigned(id_claims()), keys, policy=PLAIN, prefix="userinfo") == "userinfo_malformed"


def _hs256(claims: dict[str, Any], secret: bytes) -> str:
    """By hand: an attacker's HMAC is not bound by jwcrypto's minimum key length."""
    signing_input = b64json({"alg": "HS256", "typ": "JWT"}) + "." + b64json(claims)
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(mac)


def test_hs256_with_client_secret_refused_unless_allowed(keys: Keys) -> None:
    token = _hs256(id_claims(), CLIENT_SECRET.encode())
    # Default policies never list HS256, whatever secret is passed.
    assert code_of(open_id, token, keys, policy=PLAIN, client_secret=CLIENT_SECRET) == "id_token_signature_alg"
    assert code_of(open_id, encrypt(token, keys.rsa_enc, "RSA-OAEP"), keys,
                   client_secret=CLIENT_SECRET) == "id_token_signature_alg"
    # Allowed in algs but no secret handed over (insecure_allow_hs256 off): refused.
    assert code_of(open_id, token, keys, policy=PLAIN, algs=("ES256", "HS256")) == "id_token_signature_alg"
    # Explicitly allowed: verifies with the client secret.
    assert open_id(token, keys, policy=PLAIN, algs=("ES256", "HS256"), client_secret=CLIENT_SECRET)["sub"]
    # ... and a token signed with another secret does not.
    other = _hs256(id_claims(), b"guessed-secret")
    assert code_of(open_id, other, keys, policy=PLAIN, algs=("ES256", "HS256"),
                   client_secret=CLIENT_SECRET) == "id_token_signature_invalid"
    # A secret shorter than HS256's 256 bits is refused by jwcrypto: fail closed, no traceback.
    short = _hs256(id_claims(), b"short")
    assert code_of(open_id, short, keys, policy=PLAIN, algs=("HS256",), client_secret="short") == \
        "id_token_signature_invalid"


@pytest.mark.parametrize("which", ["ec", "rsa"])
def test_hs256_signed_with_provider_public_key_is_refused(keys: Keys, which: str) -> None:
    """Algorithm confusion: the attacker uses the published key as an HMAC secret."""
    pub = keys.provider_ec if which == "ec" else keys.provider_rsa
    for material in (pub.export_to_pem(), pub.export_public().encode()):
        token = _hs256(id_claims(), material)
        assert code_of(open_id, token, keys, policy=PLAIN) == "id_token_signature_alg"
        assert code_of(open_id, token, keys, policy=PLAIN, algs=("ES256", "RS256", "HS256")) == "id_token_signature_alg"
        assert code_of(open_id, token, keys, policy=PLAIN, algs=("ES256", "HS256"),
                       client_secret=CLIENT_SECRET) == "id_token_signature_invalid"


def test_alg_outside_policy_is_refused(keys: Keys) -> None:
    rs = sign(id_claims(), keys.provider_rsa, "RS256")
    assert code_of(open_id, encrypt(rs, keys.rsa_enc, "RSA-OAEP"), keys) == "id_token_signature_alg"  # FC+: ES256 only
    assert code_of(open_id, rs, keys, policy=PLAIN, algs=("ES256",)) == "id_token_signature_alg"


@pytest.mark.parametrize("member", [{"jku": "https://evil.example/jwks"}, {"x5u": "https://evil.example/c"},
                                    {"crit": ["exp"], "exp": 1}, {"b64": False, "crit": ["b64"]}])
def test_jws_header_members_that_delegate_trust_are_refused(keys: Keys, member: dict[str, Any]) -> None:
    if "crit" in member:  # jwcrypto will not even produce these: made by hand, headers are checked first
        token = b64json({"alg": "ES256", "kid": "op-ec-1", **member}) + "." + b64json(id_claims()) + ".c2ln"
    else:
        token = sign(id_claims(), keys.provider_ec, "ES256", extra_header=member)
    assert code_of(open_id, token, keys, policy=PLAIN) == "id_token_signature_alg"


def test_embedded_jwk_header_is_refused(keys: Keys) -> None:
    attacker_pub = json.loads(keys.attacker_ec.export_public())
    token = sign(id_claims(), keys.attacker_ec, "ES256", extra_header={"jwk": attacker_pub})
    assert code_of(open_id, token, keys, policy=PLAIN) == "id_token_signature_alg"


# -- bad signatures and key selection --------------------------------------------------------------

def test_bad_es256_and_rs256_signatures(keys: Keys) -> None:
    # Attacker keys carry the provider's kids, so the right public key is chosen and fails.
    es = sign(id_claims(), keys.attacker_ec, "ES256")
    rs = sign(id_claims(), keys.attacker_rsa, "RS256")
    assert code_of(open_id, encrypt(es, keys.rsa_enc, "RSA-OAEP"), keys) == "id_token_signature_invalid"
    assert code_of(open_id, rs, keys, policy=PLAIN) == "id_token_signature_invalid"
    assert code_of(open_id, es, keys, policy=PLAIN, prefix="userinfo") == "userinfo_malformed"


def test_tampered_payload_fails_signature(keys: Keys) -> None:
    good = sign(id_claims(), keys.provider_ec, "ES256")
    h, _, s = good.split(".")
    forged = h + "." + b64json(id_claims(sub="someone-else")) + "." + s
    assert code_of(open_id, forged, keys, policy=PLAIN) == "id_token_signature_invalid"
    assert code_of(open_id, h + "." + good.split(".")[1] + ".", keys, policy=PLAIN) == "id_token_signature_invalid"


def test_unknown_kid_raises_unknown_signing_key(keys: Keys) -> None:
    token = sign(id_claims(), keys.provider_ec2, "ES256")  # kid op-ec-2 is not published
    with pytest.raises(UnknownSigningKey) as info:
        open_id(encrypt(token, keys.rsa_enc, "RSA-OAEP"), keys)
    assert info.value.code == "id_token_signature_key"
    assert info.value.kid == "op-ec-2"
    # After a refetch that brings the key, the same token opens.
    rotated = ProviderKeys.from_jwks({"keys": [json.loads(keys.provider_ec2.export_public())]})
    assert open_id(encrypt(token, keys.rsa_enc, "RSA-OAEP"), keys, provider=rotated)["sub"]


def test_kid_of_a_key_of_another_type_is_unknown(keys: Keys) -> None:
    token = sign(id_claims(), keys.provider_ec, "ES256", kid="op-rsa-1")
    with pytest.raises(UnknownSigningKey):
        open_id(token, keys, policy=PLAIN)


def test_non_string_kid_is_malformed(keys: Keys) -> None:
    token = sign(id_claims(), keys.provider_ec, "ES256", kid=None, extra_header={"kid": 7})
    assert code_of(open_id, token, keys, policy=PLAIN) == "id_token_malformed"


def test_no_kid_with_one_matching_key_verifies(keys: Keys) -> None:
    # The published set has one EC and one RSA key: without kid, ES256 picks the only EC key.
    assert open_id(sign(id_claims(), keys.provider_ec, "ES256", kid=None), keys, policy=PLAIN)["sub"]
    assert open_id(sign(id_claims(), keys.provider_rsa, "RS256", kid=None), keys, policy=PLAIN)["sub"]


def test_no_kid_with_several_matching_keys_is_refused(keys: Keys) -> None:
    both = ProviderKeys.from_jwks({"keys": [json.loads(keys.provider_ec.export_public()),
                                            json.loads(keys.provider_ec2.export_public())]})
    token = sign(id_claims(), keys.provider_ec, "ES256", kid=None)
    with pytest.raises(FlowError) as info:
        open_id(token, keys, policy=PLAIN, provider=both)
    assert info.value.code == "id_token_signature_key"
    assert not isinstance(info.value, UnknownSigningKey)  # nothing to refetch for


def test_key_choices_are_remembered_for_found_keys_only(keys: Keys) -> None:
    """Both key lookups remember their answer per (kid, alg), but only answers that found a
    key: made-up kids cannot grow them, and a remembered key is never used for another alg."""
    provider, service = replace(keys.provider), replace(keys.service)  # fresh, empty memories

    def opened(token: str, policy: Policy = PLAIN) -> dict[str, Any]:
        return open_token(token, service_keys=service, provider=provider, policy=policy, algs=("ES256", "RS256"),
                          prefix="id_token")[0]

    token = fc_token(keys)
    assert opened(token, FCPLUS) == opened(token, FCPLUS) == id_claims()
    remembered = (dict(provider._selected), dict(service._found))
    assert len(remembered[0]) == 1 and len(remembered[1]) == 1
    inner = sign(id_claims(), keys.provider_ec, "ES256")
    for n in range(50):
        with pytest.raises(UnknownSigningKey):
            opened(sign(id_claims(), keys.provider_ec, "ES256", kid=f"made-up-{n}"))
        with pytest.raises(FlowError):
            opened(encrypt(inner, keys.rsa_enc, "RSA-OAEP", kid=f"made-up-{n}"), FCPLUS)
    assert (provider._selected, service._found) == remembered
    # The ES256 key remembered under its kid is not an answer for RS256 with that kid.
    with pytest.raises(UnknownSigningKey):
        opened(sign(id_claims(), keys.provider_rsa, "RS256", kid=keys.provider_ec.get("kid")))


def test_no_kid_and_no_key_of_the_right_type(keys: Keys) -> None:
    only_rsa = ProviderKeys.from_jwks({"keys": [json.loads(keys.provider_rsa.export_public())]})
    token = sign(id_claims(), keys.provider_ec, "ES256", kid=None)
    assert code_of(open_id, token, keys, policy=PLAIN, provider=only_rsa) == "id_token_signature_key"


def test_provider_jwks_ignores_private_symmetric_and_encryption_only_keys(keys: Keys) -> None:
    enc_only = json.loads(keys.provider_ec2.export_public())
    enc_only.update(use="enc", kid="enc-key")
    parsed = ProviderKeys.from_jwks({"keys": [
        json.loads(keys.provider_ec.export_private()),           # a private key is never trusted
        {"kty": "oct", "k": b64url(b"secret"), "kid": "hmac"},   # nor a symmetric one
        {"kty": "EC", "crv": "P-256", "x": "broken"},            # nor a malformed one
        "not a key", enc_only,
    ]})
    assert parsed.kids == frozenset({"enc-key"})
    token = sign(id_claims(), keys.provider_ec2, "ES256", kid="enc-key")
    with pytest.raises(UnknownSigningKey):
        open_id(token, keys, policy=PLAIN, provider=parsed)
    bad: Any
    for bad in (None, [], {"keys": "x"}, {}):
        with pytest.raises(ValueError):
            ProviderKeys.from_jwks(bad)


# -- JWE attacks -----------------------------------------------------------------------------------

@pytest.mark.parametrize("alg", ["dir", "RSA1_5", "A128KW", "A256KW", "PBES2-HS256+A128KW", "ECDH-ES+A128KW", "none"])
def test_key_management_algs_outside_the_allow_list(keys: Keys, alg: str) -> None:
    header = {"alg": alg, "enc": "A256GCM", "kid": keys.rsa_enc["kid"]}
    token = b64json(header) + ".AAAA.AAAAAAAAAAAAAAAA.AAAA.AAAAAAAAAAAAAAAAAAAAAA"
    assert code_of(open_id, token, keys) == "id_token_encryption_alg"
    assert code_of(open_id, token, keys, policy=PLAIN) == "id_token_encryption_alg"
    assert code_of(open_id, token, keys, prefix="userinfo") == "userinfo_malformed"


def test_real_dir_rsa15_and_a128kw_tokens_are_refused(keys: Keys) -> None:
    inner = sign(id_claims(), keys.provider_ec, "ES256")
    oct_key = jwk.JWK.generate(kty="oct", size=256)
    kw_key = jwk.JWK.generate(kty="oct", size=128)
    for alg, key in (("dir", oct_key), ("RSA1_5", keys.rsa_enc), ("A128KW", kw_key)):
        token = JWE(inner.encode(), json.dumps({"alg": alg, "enc": "A256GCM"}))
        token.allowed_algs = [alg, "A256GCM"]
        token.add_recipient(key)
        assert code_of(open_id, token.serialize(compact=True), keys) == "id_token_encryption_alg"


def test_fcplus_policy_takes_exactly_its_core_key_algs(keys: Keys) -> None:
    """FC+'s core enables ECDH-ES, RSA-OAEP and RSA-OAEP-256 for id_token and userinfo
    (core-fcp-high enabledJWA); anything else is refused before any key is tried."""
    assert set(FCPLUS.encryption_algs) == {"ECDH-ES", "RSA-OAEP", "RSA-OAEP-256"}
    for alg in ("RSA1_5", "dir", "A256KW", "ECDH-ES+A256KW"):
        header = b64json({"alg": alg, "enc": "A256GCM"})
        assert code_of(open_id, header + ".AAAA.AAAA.AAAA.AAAA", keys) == "id_token_encryption_alg"


@pytest.mark.parametrize(("policy", "enc"), [(FCPLUS, "A128GCM"), (FCPLUS, "A256CBC-HS512"), (FCPLUS, "A192GCM"),
                                             (PLAIN, "A192GCM"), (PLAIN, "A192CBC-HS384")])
def test_unexpected_enc(keys: Keys, policy: Policy, enc: str) -> None:
    assert code_of(open_id, fc_token(keys, enc=enc), keys, policy=policy) == "id_token_encryption_alg"


def test_zip_and_crit_headers_are_refused(keys: Keys) -> None:
    inner = sign(id_claims(), keys.provider_ec, "ES256")
    zipped = encrypt(inner, keys.rsa_enc, "RSA-OAEP", extra_header={"zip": "DEF"})
    assert code_of(open_id, zipped, keys) == "id_token_encryption_alg"
    crit = b64json({"alg": "RSA-OAEP", "enc": "A256GCM", "crit": ["x"], "x": 1}) + ".AAAA.AAAA.AAAA.AAAA"
    assert code_of(open_id, crit, keys) == "id_token_encryption_alg"


def test_encrypted_to_a_foreign_key(keys: Keys) -> None:
    inner = sign(id_claims(), keys.provider_ec, "ES256")
    cases = [
        encrypt(inner, keys.foreign_rsa_enc, "RSA-OAEP"),                            # foreign kid: no candidate
        encrypt(inner, keys.foreign_rsa_enc, "RSA-OAEP", kid=keys.rsa_enc["kid"]),   # claims our kid
        encrypt(inner, keys.foreign_rsa_enc, "RSA-OAEP", kid=None),                  # no kid: every key tried
        encrypt(inner, keys.foreign_ec_enc, "ECDH-ES", kid=keys.ec_enc["kid"]),
        encrypt(inner, keys.foreign_ec_enc, "ECDH-ES", kid=None),
    ]
    for token in cases:
        assert code_of(open_id, token, keys) == "id_token_decryption_failed"
    assert code_of(open_id, cases[0], keys, prefix="userinfo") == "userinfo_malformed"


def test_tampered_ciphertext_fails_decryption(keys: Keys) -> None:
    token = fc_token(keys)
    parts = token.split(".")
    ct = bytearray(base64.urlsafe_b64decode(parts[3] + "=" * (-len(parts[3]) % 4)))
    ct[0] ^= 1
    parts[3] = b64url(bytes(ct))
    assert code_of(open_id, ".".join(parts), keys) == "id_token_decryption_failed"


def test_plain_jws_where_encryption_is_required(keys: Keys) -> None:
    token = sign(id_claims(), keys.provider_ec, "ES256")
    assert code_of(open_id, token, keys) == "id_token_not_encrypted"
    assert code_of(open_id, token, keys, prefix="userinfo") == "userinfo_not_encrypted"


def test_jwe_without_configured_service_keys(keys: Keys) -> None:
    with pytest.raises(FlowError) as info:
        open_token(fc_token(keys), service_keys=None, provider=keys.provider, policy=PLAIN, algs=("ES256",),
                   prefix="id_token")
    assert info.value.code == "id_token_decryption_failed"


def test_jwe_whose_payload_is_not_a_jws(keys: Keys) -> None:
    as_json = encrypt(json.dumps(id_claims()), keys.rsa_enc, "RSA-OAEP")
    assert code_of(open_id, as_json, keys) == "id_token_malformed"
    double = encrypt(fc_token(keys), keys.rsa_enc, "RSA-OAEP")
    assert code_of(open_id, double, keys) == "id_token_malformed"
    binary = JWE(b"\xff\xfe.\x00.\x01", json.dumps({"alg": "RSA-OAEP", "enc": "A256GCM"}))
    binary.add_recipient(keys.rsa_enc)
    assert code_of(open_id, binary.serialize(compact=True), keys) == "id_token_malformed"


@pytest.mark.parametrize("token", [None, 42, b"a.b.c", "", "abc", "a.b", "a.b.c.d", "a.b.c.d.e.f", "é.b.c",
                                   "a" * (MAX_TOKEN_CHARS + 1), "!!!.e30.sig", "WzFd.e30.sig"])
def test_malformed_tokens(keys: Keys, token: Any) -> None:
    assert code_of(open_id, token, keys, policy=PLAIN) == "id_token_malformed"


def test_payload_that_is_not_a_json_object(keys: Keys) -> None:
    for raw in (b"not json", b"[1,2]", b"\xff\xfe", b'"sub"'):
        token = sign(None, keys.provider_ec, "ES256", raw_payload=raw)
        assert code_of(open_id, token, keys, policy=PLAIN) == "id_token_claims_invalid"
        assert code_of(open_id, token, keys, policy=PLAIN, prefix="userinfo") == "userinfo_malformed"


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity", "1e999", "1E400"])
def test_payload_with_non_json_numbers_is_refused(keys: Keys, constant: str) -> None:
    """RFC 8259 has no NaN/Infinity; Python's json would parse them, and 1e999 as infinity:
    `exp: NaN` or `exp: 1e999` would never expire."""
    claims = id_claims()
    raw = json.dumps(claims).replace(f'"exp": {claims["exp"]}', f'"exp": {constant}').encode()
    assert constant.encode() in raw
    token = sign(None, keys.provider_ec, "ES256", raw_payload=raw)
    assert code_of(open_id, token, keys, policy=PLAIN) == "id_token_claims_invalid"


@pytest.mark.parametrize("payload", [
    b'{"sub":"a","given_name":"\\ud800"}',  # a lone surrogate: no UTF-8 can carry it onwards
    b'{"sub":"a","x":' + b"[" * 5000 + b"]" * 5000 + b"}",  # nesting: ValueError, not RecursionError
    b'\xef\xbb\xbf{"sub":"a"}',  # a byte order mark (RFC 8259 8.1: must not add one)
    b'{"sub":"a"} {}',
])
def test_payload_that_is_not_strict_json_is_refused(keys: Keys, payload: bytes) -> None:
    token = sign(None, keys.provider_ec, "ES256", raw_payload=payload)
    assert code_of(open_id, token, keys, policy=PLAIN) == "id_token_claims_invalid"
    assert code_of(open_id, token, keys, policy=PLAIN, prefix="userinfo") == "userinfo_malformed"


# -- id_token claims -------------------------------------------------------------------------------

def expected(**overrides: Any) -> Expected:
    base = Expected(issuer=ISSUER, client_id=CLIENT_ID, nonce=NONCE, acr_values=("eidas2",), clock_skew=60, now=NOW)
    return replace(base, **overrides)


def check(claims: dict[str, Any], exp: Expected | None = None, alg: str = "ES256") -> str | None:
    try:
        validate_id_token(claims, exp or expected(), alg)
    except FlowError as error:
        return error.code
    return None


def test_valid_claims_pass() -> None:
    assert check(id_claims()) is None


@pytest.mark.parametrize("sub", [DROP, "", None, 42, ["a"], "x" * 256])
def test_sub_missing_or_invalid(sub: Any) -> None:
    assert check(id_claims(sub=sub)) == "id_token_claims_invalid"


@pytest.mark.parametrize("iss", [DROP, "https://evil.example", ISSUER + "/", "", None, [ISSUER]])
def test_wrong_iss(iss: Any) -> None:
    assert check(id_claims(iss=iss)) == "id_token_issuer"


@pytest.mark.parametrize("claims", [
    {"aud": "someone-else"}, {"aud": DROP}, {"aud": []}, {"aud": 7}, {"aud": [CLIENT_ID, 7]},
    {"aud": [CLIENT_ID, "other"]},                                  # several audiences, no azp
    {"aud": [CLIENT_ID, "other"], "azp": "other"},                  # several audiences, foreign azp
    {"aud": CLIENT_ID, "azp": "other"},                             # azp present must be us
    {"aud": CLIENT_ID.upper()},
])
def test_wrong_aud_or_azp(claims: dict[str, Any]) -> None:
    assert check(id_claims(**claims)) == "id_token_audience"


@pytest.mark.parametrize("claims", [{"aud": [CLIENT_ID]}, {"aud": [CLIENT_ID, "other"], "azp": CLIENT_ID},
                                    {"aud": CLIENT_ID, "azp": CLIENT_ID}])
def test_accepted_aud_and_azp(claims: dict[str, Any]) -> None:
    assert check(id_claims(**claims)) is None


def test_exp_and_clock_skew() -> None:
    assert check(id_claims(exp=NOW - 61, iat=NOW - 120)) == "id_token_expired"
    assert check(id_claims(exp=NOW - 59, iat=NOW - 120)) is None  # within clock_skew
    assert check(id_claims(exp=NOW - 1, iat=NOW - 120), expected(clock_skew=0)) == "id_token_expired"
    assert check(id_claims(exp=NOW - 60, iat=NOW - 120)) is None  # exactly at the edge


def test_iat_in_the_future() -> None:
    assert check(id_claims(iat=NOW + 61, exp=NOW + 600)) == "id_token_issued_in_future"
    assert check(id_claims(iat=NOW + 59, exp=NOW + 600)) is None
    assert check(id_claims(iat=NOW + 1, exp=NOW + 600), expected(clock_skew=0)) == "id_token_issued_in_future"


def test_nbf_in_the_future() -> None:
    assert check(id_claims(nbf=NOW + 120)) == "id_token_issued_in_future"
    assert check(id_claims(nbf="soon")) == "id_token_issued_in_future"
    assert check(id_claims(nbf=NOW - 1)) is None


@pytest.mark.parametrize("claims", [{"iat": DROP}, {"exp": DROP}, {"iat": "1700000000"}, {"exp": str(NOW + 10)},
                                    {"exp": True}, {"iat": None}, {"exp": [NOW + 10]}])
def test_missing_or_non_numeric_times(claims: dict[str, Any]) -> None:
    assert check(id_claims(**claims)) == "id_token_claims_invalid"


@pytest.mark.parametrize("nonce", [DROP, "m" * 64, NONCE[:-1], NONCE + "x", "", None, 123, [NONCE]])
def test_nonce_mismatch(nonce: Any) -> None:
    assert check(id_claims(nonce=nonce)) == "id_token_nonce"


@pytest.mark.parametrize(("returned", "requested", "ok"), [
    ("eidas1", ("eidas2",), False), (DROP, ("eidas2",), False), (None, ("eidas2",), False),
    (["eidas3"], ("eidas2",), False), ("eidas2", ("eidas3",), False), ("EIDAS3", ("eidas2",), False),
    ("eidas2", ("eidas2",), True), ("eidas3", ("eidas2",), True), ("eidas3", ("eidas3",), True),
    ("eidas1", (), True), (DROP, (), True),
])
def test_acr_against_requested_level(returned: Any, requested: tuple[str, ...], ok: bool) -> None:
    assert check(id_claims(acr=returned), expected(acr_values=requested)) == (None if ok else "acr_insufficient")


def _at_hash(token: str, hash_name: str) -> str:
    digest = hashlib.new(hash_name, token.encode()).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()


def test_at_hash() -> None:
    access = "access-token-value"
    assert at_hash(access, "ES256") == _at_hash(access, "sha256")
    assert at_hash(access, "RS384") == _at_hash(access, "sha384")
    assert at_hash(access, "PS512") == _at_hash(access, "sha512")
    assert check(id_claims(at_hash=_at_hash(access, "sha256")), expected(access_token=access)) is None
    assert check(id_claims(at_hash=_at_hash("other", "sha256")), expected(access_token=access)) == "id_token_claims_invalid"
    assert check(id_claims(at_hash=_at_hash(access, "sha256")), expected(access_token=access), "ES384") == \
        "id_token_claims_invalid"
    assert check(id_claims(at_hash=12), expected(access_token=access)) == "id_token_claims_invalid"
    # No at_hash at all is fine for the code flow (OIDC Core 3.1.3.6: optional).
    assert check(id_claims(), expected(access_token=access)) is None


def test_userinfo_checks() -> None:
    sub = "a" * 64
    validate_userinfo({"sub": sub}, id_token_sub=sub, issuer=ISSUER, client_id=CLIENT_ID, signed=False)
    validate_userinfo({"sub": sub, "iss": ISSUER, "aud": [CLIENT_ID, "x"]}, id_token_sub=sub, issuer=ISSUER,
                      client_id=CLIENT_ID, signed=True)
    # Unsigned JSON needs no iss/aud and what it says there is not relied upon.
    validate_userinfo({"sub": sub, "iss": "whatever"}, id_token_sub=sub, issuer=ISSUER, client_id=CLIENT_ID,
                      signed=False)
    claims: dict[str, Any]
    for claims in ({"sub": "b" * 64}, {}, {"sub": None}, {"sub": sub[:-1]}, {"sub": [sub]}):
        assert code_of(validate_userinfo, claims, id_token_sub=sub, issuer=ISSUER, client_id=CLIENT_ID,
                       signed=True) == "userinfo_sub_mismatch"
    for claims in ({"sub": sub, "iss": "https://evil.example"}, {"sub": sub, "aud": "other"},
                   {"sub": sub, "aud": ["other"]}, {"sub": sub, "aud": 5}, {"sub": sub, "iss": None}):
        assert code_of(validate_userinfo, claims, id_token_sub=sub, issuer=ISSUER, client_id=CLIENT_ID,
                       signed=True) == "userinfo_issuer_audience"


def test_full_userinfo_jwt_roundtrip(keys: Keys) -> None:
    sub = "a" * 64
    body = {"sub": sub, "iss": ISSUER, "aud": CLIENT_ID, "given_name": "Angela"}
    claims = open_id(fc_token(keys, body, alg="ECDH-ES"), keys, prefix="userinfo")
    validate_userinfo(claims, id_token_sub=sub, issuer=ISSUER, client_id=CLIENT_ID, signed=True)
    swapped = open_id(fc_token(keys, {**body, "sub": "b" * 64}), keys, prefix="userinfo")
    assert code_of(validate_userinfo, swapped, id_token_sub=sub, issuer=ISSUER, client_id=CLIENT_ID,
                   signed=True) == "userinfo_sub_mismatch"


# -- guards the mutation run found untested (docs/mutation.md) ------------------------------------

def _jwks(*items: dict[str, Any]) -> ProviderKeys:
    return ProviderKeys.from_jwks({"keys": list(items)})


def _pub(key: jwk.JWK, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(key.export_public())
    data.update(changes)
    return {k: v for k, v in data.items() if v is not DROP}


def test_a_provider_key_for_encryption_never_verifies_a_signature(keys: Keys) -> None:
    token = sign(id_claims(), keys.provider_ec, "ES256", kid=None)
    assert open_id(token, keys, policy=PLAIN, provider=_jwks(_pub(keys.provider_ec, use="sig")))["sub"]
    assert open_id(token, keys, policy=PLAIN, provider=_jwks(_pub(keys.provider_ec, use=DROP)))["sub"]
    assert code_of(open_id, token, keys, policy=PLAIN,
                   provider=_jwks(_pub(keys.provider_ec, use="enc"))) == "id_token_signature_key"
    named = sign(id_claims(), keys.provider_ec, "ES256")
    with pytest.raises(UnknownSigningKey):
        open_id(named, keys, policy=PLAIN, provider=_jwks(_pub(keys.provider_ec, use="enc")))


def test_a_provider_key_pinned_to_an_alg_verifies_only_that_alg(keys: Keys) -> None:
    rsa = keys.provider_rsa
    for alg in ("RS384", "PS256"):
        token = sign(id_claims(), rsa, alg)
        algs = ("RS256", "RS384", "PS256")
        with pytest.raises(UnknownSigningKey):  # the JWKS pins op-rsa-1 to RS256
            open_id(token, keys, policy=PLAIN, algs=algs, provider=_jwks(_pub(rsa, alg="RS256")))
        assert open_id(token, keys, policy=PLAIN, algs=algs, provider=_jwks(_pub(rsa, alg=alg)))["sub"]
        assert open_id(token, keys, policy=PLAIN, algs=algs, provider=_jwks(_pub(rsa, alg=DROP)))["sub"]


def test_an_es_alg_uses_only_a_key_on_its_curve(keys: Keys) -> None:
    p384 = signing_key_on("P-384", "op-ec-1")
    token = sign(id_claims(), p384, "ES384")
    published = _pub(p384)
    assert open_id(token, keys, policy=PLAIN, algs=("ES384",), provider=_jwks(published))["sub"]
    # ES256 naming the same kid: the P-384 key is not a candidate (nor is the P-256 one for ES384).
    es256 = sign(id_claims(), keys.provider_ec, "ES256")
    with pytest.raises(UnknownSigningKey):
        open_id(es256, keys, policy=PLAIN, provider=_jwks(published))
    with pytest.raises(UnknownSigningKey):
        open_id(token, keys, policy=PLAIN, algs=("ES384",), provider=_jwks(_pub(keys.provider_ec)))
    kidless = sign(id_claims(), keys.provider_ec, "ES256", kid=None)
    assert code_of(open_id, kidless, keys, policy=PLAIN, provider=_jwks(_pub(p384, kid=DROP))) == \
        "id_token_signature_key"


def signing_key_on(crv: str, kid: str) -> jwk.JWK:
    key = jwk.JWK.generate(kty="EC", crv=crv)
    data = json.loads(key.export_private())
    data.update(kid=kid, use="sig")
    return jwk.JWK(**data)


@pytest.mark.parametrize("alg", ["ES384", "ES512", "RS384", "RS512", "PS256", "PS384", "PS512"])
def test_every_standard_alg_verifies_and_a_forgery_fails(keys: Keys, alg: str) -> None:
    key = signing_key_on({"384": "P-384", "512": "P-521"}[alg[2:]], "op-x") if alg.startswith("ES") else keys.provider_rsa
    provider = _jwks(_pub(key, alg=DROP))  # the fixture's RSA key is pinned to RS256
    token = sign(id_claims(), key, alg)
    assert open_id(token, keys, policy=PLAIN, algs=(alg,), provider=provider)["sub"] == "a" * 64
    h, _p, s = token.split(".")
    forged = h + "." + b64json(id_claims(sub="b" * 64)) + "." + s
    assert code_of(open_id, forged, keys, policy=PLAIN, algs=(alg,), provider=provider) == "id_token_signature_invalid"
    # Its at_hash is the hash its alg names (OIDC Core 3.1.3.6).
    assert at_hash("tok", alg) == _at_hash("tok", "sha" + alg[2:])


@pytest.mark.parametrize("b64", [False, True, "false", 0])
def test_any_b64_header_member_is_refused_even_without_crit(keys: Keys, b64: Any) -> None:
    """RFC 7797 makes b64 meaningful only when listed in crit (refused); alone, it is refused too."""
    # By hand: jwcrypto will not make a b64 header without crit. Headers are checked first.
    token = b64json({"alg": "ES256", "kid": "op-ec-1", "b64": b64}) + "." + b64json(id_claims()) + ".c2ln"
    assert code_of(open_id, token, keys, policy=PLAIN) == "id_token_signature_alg"


def test_the_64_kib_token_cap_applies_to_well_formed_tokens(keys: Keys) -> None:
    from fcplus_wsgi.tokens import compact_parts
    head = b64json({"alg": "ES256"})
    filler = "A" * (MAX_TOKEN_CHARS - len(head) - 2 - 4)
    at_cap = f"{head}.{filler}.AAAA"
    assert len(at_cap) == MAX_TOKEN_CHARS and len(compact_parts(at_cap, "id_token")) == 3
    over = f"{head}.{filler}A.AAAA"
    with pytest.raises(FlowError) as info:
        compact_parts(over, "id_token")
    assert info.value.code == "id_token_malformed" and info.value.detail == "not a compact serialization"
    # Through open_token too, for a JWE-sized one (five segments).
    tail = ".AA.AA.AAAA"
    five = head + "." + "A" * (MAX_TOKEN_CHARS - len(head) - 1 - len(tail) + 1) + tail
    assert len(five) == MAX_TOKEN_CHARS + 1
    assert code_of(open_id, five, keys) == "id_token_malformed"


@pytest.mark.parametrize("depth", [33, 300, 1010])
def test_deeply_nested_headers_and_payloads_are_refused_not_a_crash(keys: Keys, depth: int) -> None:
    """orjson reads 1,024 levels but writes 254, and a second parser hits RecursionError:
    nothing deeper than strictjson.MAX_DEPTH gets past the token checks."""
    # JSON text by hand: Python's json cannot even write 1,010 levels.
    nested = "[" * (depth - 1) + "1" + "]" * (depth - 1)
    deep_header = b64url(('{"alg":"ES256","kid":"op-ec-1","x":' + nested + "}").encode())
    assert code_of(open_id, deep_header + "." + b64json(id_claims()) + ".AAAA", keys, policy=PLAIN) == \
        "id_token_malformed"
    payload = json.dumps(id_claims())[:-1] + ', "deep": ' + nested + "}"
    deep_claims = sign(None, keys.provider_ec, "ES256", raw_payload=payload.encode())
    assert code_of(open_id, deep_claims, keys, policy=PLAIN) == "id_token_claims_invalid"
    inner = sign(None, keys.provider_ec, "ES256", raw_payload=payload.encode())
    assert code_of(open_id, encrypt(inner, keys.rsa_enc, "RSA-OAEP"), keys, prefix="userinfo") == "userinfo_malformed"
    jwe_header = b64url(('{"alg":"RSA-OAEP","enc":"A256GCM","x":' + nested + "}").encode())
    assert code_of(open_id, jwe_header + ".AA.AAAAAAAAAAAAAAAA.AA.AAAAAAAAAAAAAAAAAAAAAA", keys) == "id_token_malformed"


def test_claims_nested_up_to_the_limit_are_accepted(keys: Keys) -> None:
    nested: Any = 1
    for _ in range(31):  # the claims object itself is the 32nd level
        nested = [nested]
    assert open_id(sign(id_claims(deep=nested), keys.provider_ec, "ES256"), keys, policy=PLAIN)["deep"] == nested


@pytest.mark.parametrize("sub", ["é" * 10, "a\nb", "a b", "a\x7f", "\x00", "a\tb"])
def test_sub_must_be_printable_ascii(sub: str) -> None:
    assert check(id_claims(sub=sub)) == "id_token_claims_invalid"


def test_sub_of_255_printable_ascii_characters_is_accepted() -> None:
    assert check(id_claims(sub="~" * 255)) is None and check(id_claims(sub="!")) is None


def test_at_hash_is_never_skipped() -> None:
    access = "access-token-value"
    right = _at_hash(access, "sha256")
    for alg in ("none", "", "EdDSA", "HS512", "ES256K"):  # an alg with no hash rule: refused, not skipped
        assert check(id_claims(at_hash=right), expected(access_token=access), alg) == "id_token_claims_invalid"
    assert check(id_claims(at_hash=right), expected(access_token="accès")) == "id_token_claims_invalid"
    assert check(id_claims(at_hash=right[:-1]), expected(access_token=access)) == "id_token_claims_invalid"
    assert check(id_claims(at_hash=right + "A"), expected(access_token=access)) == "id_token_claims_invalid"
    assert check(id_claims(at_hash=right), expected(access_token=access), "HS256") is None
    assert check(id_claims(at_hash="é"), expected(access_token=access)) == "id_token_claims_invalid"


@pytest.mark.parametrize("claims", [
    {}, {"iss": ISSUER}, {"aud": CLIENT_ID}, {"iss": ISSUER, "aud": None}, {"iss": None, "aud": CLIENT_ID},
    {"iss": ISSUER, "aud": []}, {"iss": ISSUER, "aud": {"x": CLIENT_ID}}, {"iss": [ISSUER], "aud": CLIENT_ID},
])
def test_signed_userinfo_must_carry_iss_and_aud(claims: dict[str, Any]) -> None:
    """OpenID Connect Core 5.3.2: a signed userinfo MUST contain iss and aud."""
    sub = "a" * 64
    assert code_of(validate_userinfo, {"sub": sub, **claims}, id_token_sub=sub, issuer=ISSUER, client_id=CLIENT_ID,
                   signed=True) == "userinfo_issuer_audience"
    validate_userinfo({"sub": sub, **claims}, id_token_sub=sub, issuer=ISSUER, client_id=CLIENT_ID, signed=False)


def test_signed_userinfo_with_iss_and_aud_string_or_list() -> None:
    sub = "a" * 64
    for aud in (CLIENT_ID, [CLIENT_ID], ["other", CLIENT_ID]):
        validate_userinfo({"sub": sub, "iss": ISSUER, "aud": aud}, id_token_sub=sub, issuer=ISSUER,
                          client_id=CLIENT_ID, signed=True)


def test_iat_and_nbf_exactly_at_the_clock_skew_edge_are_accepted() -> None:
    """The edges are inclusive, like exp's: a token minted exactly clock_skew ahead passes."""
    assert check(id_claims(iat=NOW + 60, exp=NOW + 600)) is None
    assert check(id_claims(nbf=NOW + 60)) is None
    assert check(id_claims(iat=NOW + 60.5, exp=NOW + 600)) == "id_token_issued_in_future"
    assert check(id_claims(nbf=NOW + 60.5)) == "id_token_issued_in_future"


def test_a_non_string_kid_is_malformed_with_the_code_of_the_token_it_is_in(keys: Keys) -> None:
    token = sign(id_claims(), keys.provider_ec, "ES256", kid=None, extra_header={"kid": ["op-ec-1"]})
    assert code_of(open_id, token, keys, policy=PLAIN) == "id_token_malformed"
    assert code_of(open_id, token, keys, policy=PLAIN, prefix="userinfo") == "userinfo_malformed"


def test_jwe_without_kid_tries_each_service_key_of_its_alg_in_turn(keys: Keys) -> None:
    """Key rotation: two RSA keys published, the provider encrypts to either without a kid."""
    from fcplus_wsgi.keys import generate_private_jwks, keys_from_jwks, public_jwks

    other = generate_private_jwks()
    both = {"keys": keys.service_private_jwks["keys"] + [
        {**k, "kid": "rotated-" + str(k.get("kid"))} for k in other["keys"]]}
    service = keys_from_jwks(both)
    inner = sign(id_claims(), keys.provider_ec, "ES256")
    for pub in public_jwks(both)["keys"]:
        if pub["kty"] == "RSA" and pub.get("use") == "enc":
            token = encrypt(inner, jwk.JWK(**pub), "RSA-OAEP", kid=None)
            claims, _ = open_token(token, service_keys=service, provider=keys.provider, policy=FCPLUS,
                                   algs=FCPLUS.id_token_signing_algs, prefix="id_token")
            assert claims["sub"] == "a" * 64


def test_userinfo_refusals_carry_the_userinfo_code(keys: Keys) -> None:
    """Every refusal of a userinfo token is a userinfo_* catalogue code (its page and metric
    label), not the id_token one nor an unknown code."""
    proconnect = PRESETS["proconnect-integration"].policy
    jwe = fc_token(keys, {"sub": "a" * 64})
    assert code_of(open_id, jwe, keys, policy=proconnect, algs=("ES256",), prefix="userinfo") == "userinfo_malformed"
    assert code_of(open_token, jwe, service_keys=None, provider=keys.provider, policy=FCPLUS, algs=("ES256",),
                   prefix="userinfo") == "userinfo_malformed"
    assert code_of(open_token, jwe, service_keys=None, provider=keys.provider, policy=FCPLUS, algs=("ES256",),
                   prefix="id_token") == "id_token_decryption_failed"
    both = ProviderKeys.from_jwks({"keys": [json.loads(keys.provider_ec.export_public()),
                                            json.loads(keys.provider_ec2.export_public())]})
    kidless = sign({"sub": "a" * 64}, keys.provider_ec, "ES256", kid=None)
    assert code_of(open_id, kidless, keys, policy=PLAIN, provider=both, prefix="userinfo") == "userinfo_malformed"


@pytest.mark.parametrize("kid", [5, ["k"], {"k": 1}, True])
def test_a_jwe_kid_that_is_not_a_string_is_malformed(keys: Keys, kid: Any) -> None:
    inner = sign(id_claims(), keys.provider_ec, "ES256")
    token = encrypt(inner, keys.rsa_enc, "RSA-OAEP", kid=None, extra_header={"kid": kid})
    assert code_of(open_id, token, keys) == "id_token_malformed"
    assert code_of(open_id, token, keys, prefix="userinfo") == "userinfo_malformed"
