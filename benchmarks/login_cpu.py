"""3. Login callback CPU cost, without the network, against the cost of its cryptography.

`ours` is what the flow does with the provider's answers once they have arrived:
fcplus_wsgi.tokens.open_token + validate_id_token on the id_token, open_token +
validate_userinfo on the userinfo JWT, then a new session sealed and put in the memory
store. The tokens are minted the way the development provider mints them (ES256 JWS,
then JWE with RSA-OAEP or ECDH-ES and A256GCM to the service's published key).

`floor` is the same cryptography done directly with `cryptography`, keys loaded once:
per token, the RSA-OAEP key unwrap (or ECDH-ES key agreement + Concat KDF), the
AES-256-GCM decryption and the ES256 verification. Both take turns in each repeat.
"""

from __future__ import annotations

import base64
import cProfile
import json
import pstats
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash
from jwcrypto import jwk

from benchmarks.common import CLIENT_ID, interleaved, median, spread, summarize_profile
from fcplus_wsgi.devprovider.tokens import at_hash, encrypt, pairwise_sub, sign
from fcplus_wsgi.keys import generate_ec_signing_key, keys_from_jwks
from fcplus_wsgi.providers import PRESETS
from fcplus_wsgi.sessions import SESSION, new_session_id, seal, store_key
from fcplus_wsgi.stores import MemoryStore
from fcplus_wsgi.tokens import Expected, ProviderKeys, open_token, validate_id_token, validate_userinfo

TARGET_RATIO = 1.3
ISSUER = "http://127.0.0.1:9/api/v2"
ALGS = ("RSA-OAEP", "ECDH-ES")


def _b64(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


def _int(data: str) -> int:
    return int.from_bytes(_b64(data), "big")


@dataclass
class Fixture:
    alg: str
    id_token: str
    userinfo: str
    access_token: str
    nonce: str
    service_keys: Any
    provider_keys: ProviderKeys
    # The same keys as `cryptography` objects, for the floor.
    rsa_key: rsa.RSAPrivateKey
    ec_key: ec.EllipticCurvePrivateKey
    verify_key: ec.EllipticCurvePublicKey


def fixture(keys_file: Path, alg: str) -> Fixture:
    private = json.loads(keys_file.read_text())
    service_keys = keys_from_jwks(private)
    signing = jwk.JWK(**generate_ec_signing_key())
    public_signing = {**json.loads(signing.export_public()), "kid": signing.get("kid"), "use": "sig", "alg": "ES256"}
    # The generated RSA key declares no alg (it serves RSA-OAEP and RSA-OAEP-256): find keys by role.
    by_alg = {("RSA-OAEP" if k["kty"] == "RSA" else k.get("alg")): k for k in private["keys"] if k.get("use") == "enc"}
    r = by_alg["RSA-OAEP"]
    rsa_key = rsa.RSAPrivateNumbers(
        _int(r["p"]), _int(r["q"]), _int(r["d"]), _int(r["dp"]), _int(r["dq"]), _int(r["qi"]),
        rsa.RSAPublicNumbers(_int(r["e"]), _int(r["n"]))).private_key()
    e = by_alg["ECDH-ES"]
    ec_key = ec.EllipticCurvePrivateNumbers(
        _int(e["d"]), ec.EllipticCurvePublicNumbers(_int(e["x"]), _int(e["y"]), ec.SECP256R1())).private_key()
    verify_key = ec.EllipticCurvePublicNumbers(_int(public_signing["x"]), _int(public_signing["y"]),
                                               ec.SECP256R1()).public_key()
    recipient = jwk.JWK(**{k: v for k, v in by_alg[alg].items() if k not in ("d", "p", "q", "dp", "dq", "qi")})
    now = int(time.time())
    access_token = base64.urlsafe_b64encode(b"a" * 32).rstrip(b"=").decode()
    nonce = "4e" * 32
    sub = pairwise_sub(CLIENT_ID, "marie-martin")
    id_claims = {"iss": ISSUER, "sub": sub, "aud": CLIENT_ID, "exp": now + 3600, "iat": now, "auth_time": now,
                 "nonce": nonce, "acr": "eidas2", "amr": ["pwd"], "at_hash": at_hash(access_token),
                 "sid": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", "idp_id": "fip1-high"}
    userinfo_claims = {"sub": sub, "iss": ISSUER, "aud": CLIENT_ID, "given_name": "Marie Élise",
                       "family_name": "MARTIN", "birthdate": "1985-04-12", "gender": "female",
                       "birthplace": "75056", "birthcountry": "99100", "email": "marie.martin@example.org"}
    return Fixture(
        alg=alg, id_token=encrypt(sign(id_claims, signing), recipient, alg, "A256GCM"),
        userinfo=encrypt(sign(userinfo_claims, signing), recipient, alg, "A256GCM"),
        access_token=access_token, nonce=nonce, service_keys=service_keys,
        provider_keys=ProviderKeys.from_jwks({"keys": [public_signing]}),
        rsa_key=rsa_key, ec_key=ec_key, verify_key=verify_key)


# -- ours -------------------------------------------------------------------------------------------

_POLICY = PRESETS["fcplus-integration"].policy


def open_id_token(fx: Fixture) -> tuple[dict[str, Any], str]:
    return open_token(fx.id_token, service_keys=fx.service_keys, provider=fx.provider_keys, policy=_POLICY,
                      algs=_POLICY.id_token_signing_algs, prefix="id_token")


def check_id_token(fx: Fixture, claims: dict[str, Any]) -> None:
    validate_id_token(claims, Expected(issuer=ISSUER, client_id=CLIENT_ID, nonce=fx.nonce, acr_values=("eidas2",),
                                       clock_skew=60, now=time.time(), access_token=fx.access_token), alg="ES256")


def open_userinfo(fx: Fixture) -> dict[str, Any]:
    claims, _ = open_token(fx.userinfo, service_keys=fx.service_keys, provider=fx.provider_keys, policy=_POLICY,
                           algs=_POLICY.userinfo_signing_algs, prefix="userinfo")
    return claims


def check_userinfo(claims: dict[str, Any], sub: str) -> None:
    validate_userinfo(claims, id_token_sub=sub, issuer=ISSUER, client_id=CLIENT_ID, signed=True)


def create_session(store: MemoryStore, id_claims: dict[str, Any], id_jws: str, userinfo: dict[str, Any],
                   access_token: str) -> str:
    """The session the flow creates (same record shape as Flow._finish_login)."""
    session_id = new_session_id()
    now = time.time()
    record = {"v": 1, "sub": id_claims["sub"], "claims": userinfo, "idc": id_claims, "idt": id_jws,
              "at": access_token, "acr": id_claims.get("acr"), "prov": "fcplus-integration", "created": now,
              "seen": now, "cid": "0123456789ab"}
    store.put(store_key(SESSION, session_id), seal(SESSION, session_id, record), 1800)
    return session_id


def ours(fx: Fixture, store: MemoryStore) -> Callable[[], dict[str, Any]]:
    def login() -> dict[str, Any]:
        id_claims, id_jws = open_id_token(fx)
        check_id_token(fx, id_claims)
        userinfo = open_userinfo(fx)
        check_userinfo(userinfo, id_claims["sub"])
        create_session(store, id_claims, id_jws, userinfo, fx.access_token)
        return userinfo
    return login


# -- floor ------------------------------------------------------------------------------------------

_OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
_ECDSA = ec.ECDSA(hashes.SHA256())


def _concat_kdf_info(enc: str) -> bytes:
    """RFC 7518 4.6.2 OtherInfo for direct ECDH-ES: AlgorithmID = enc, empty apu/apv, 256 bits."""
    return len(enc).to_bytes(4, "big") + enc.encode() + b"\0" * 8 + (256).to_bytes(4, "big")


_INFO = _concat_kdf_info("A256GCM")


def floor_token(fx: Fixture, token: str) -> bytes:
    """Decrypt and verify one nested JWT with `cryptography` only; returns the JWS payload."""
    protected, encrypted_key, iv, ciphertext, tag = token.split(".")
    if fx.alg == "RSA-OAEP":
        cek = fx.rsa_key.decrypt(_b64(encrypted_key), _OAEP)
    else:
        epk = json.loads(_b64(protected))["epk"]
        peer = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + _b64(epk["x"]) + _b64(epk["y"]))
        cek = ConcatKDFHash(hashes.SHA256(), 32, _INFO).derive(fx.ec_key.exchange(ec.ECDH(), peer))
    inner = AESGCM(cek).decrypt(_b64(iv), _b64(ciphertext) + _b64(tag), protected.encode("ascii"))
    head, payload, signature = inner.split(b".")
    raw = _b64(signature.decode("ascii"))
    fx.verify_key.verify(encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")),
                         head + b"." + payload, _ECDSA)
    return payload


def floor(fx: Fixture) -> Callable[[], bytes]:
    def login() -> bytes:
        floor_token(fx, fx.id_token)
        return floor_token(fx, fx.userinfo)
    return login


# -- run --------------------------------------------------------------------------------------------

def measure_floor(keys_file: Path, alg: str, target: float = 0.02, repeats: int = 3) -> float:
    """Microseconds of one login's cryptography (for the end-to-end benchmark's ratio)."""
    fx = fixture(keys_file, alg)
    return median(interleaved({"floor": floor(fx)}, target=target, repeats=repeats)["floor"])


def run(ctx: Any) -> dict[str, Any]:
    result: dict[str, Any] = {"algs": {}}
    for alg in ALGS:
        fx = fixture(ctx.keys_file, alg)
        store = MemoryStore()
        login, base = ours(fx, store), floor(fx)
        decoded = json.loads(_b64(base().decode("ascii")))
        if login() != decoded:
            raise RuntimeError(f"{alg}: the floor and the middleware disagree on the userinfo claims")
        id_claims, id_jws = open_id_token(fx)
        userinfo = open_userinfo(fx)
        funcs: dict[str, Callable[[], object]] = {
            "floor": base, "ours": login,
            # The stages of `ours`, for where the time goes.
            "open id_token": partial(open_id_token, fx),
            "validate id_token": partial(check_id_token, fx, id_claims),
            "open userinfo": partial(open_userinfo, fx),
            "validate userinfo": partial(check_userinfo, userinfo, id_claims["sub"]),
            "seal + store put": partial(create_session, store, id_claims, id_jws, userinfo, fx.access_token),
            "floor: one token": partial(floor_token, fx, fx.id_token),
        }
        times = interleaved(funcs, target=ctx.target, repeats=ctx.repeats)
        ratios = [o / f for o, f in zip(times["ours"], times["floor"], strict=True)]
        entry: dict[str, Any] = {
            "floor_us": median(times["floor"]), "ours_us": median(times["ours"]), "ratio": median(ratios),
            "spread": spread(ratios), "stages_us": {k: median(v) for k, v in times.items() if k not in ("floor", "ours")},
        }
        entry["ok"] = entry["ratio"] <= TARGET_RATIO
        if not entry["ok"] or ctx.profile_always:
            profile = cProfile.Profile()
            n = max(20, int(0.5e6 / entry["ours_us"])) if not ctx.quick else 5
            profile.enable()
            for _ in range(n):
                login()
            profile.disable()
            entry["profile"] = summarize_profile(pstats.Stats(profile), top=10, per=n)
        result["algs"][alg] = entry
        store.close()
    return result


def report(result: dict[str, Any], out: Callable[[str], None]) -> None:
    from benchmarks.common import report_profile

    out("3. Login callback CPU (decrypt + verify id_token and userinfo, validate, create session), no network")
    out("   baseline (floor): the same JWE decryptions and ES256 verifications done directly with `cryptography`")
    out(f"   {'JWE alg':9} {'ours/floor':>11} {'ours us':>9} {'floor us':>9}  verdict")
    for alg, e in result["algs"].items():
        out(f"   {alg:9} {e['ratio']:11.2f} {e['ours_us']:9.0f} {e['floor_us']:9.0f}  "
            f"{'ok' if e['ok'] else 'OVER'}   (spread {e['spread']:.0%})")
    for alg, e in result["algs"].items():
        stages = ", ".join(f"{k} {v:.0f}" for k, v in e["stages_us"].items())
        out(f"   {alg} stages (us): {stages}")
        if "profile" in e:
            out(f"   {alg}: where the time goes (cProfile, wall clock, profiler overhead included):")
            report_profile(e["profile"], out, indent="     ")
    out(f"   target: ours/floor <= {TARGET_RATIO}")


def summary(result: dict[str, Any]) -> list[str]:
    return [f"login callback CPU, {alg}: {e['ratio']:.2f}x its cryptography floor (target <= {TARGET_RATIO}) -> "
            f"{'ok' if e['ok'] else 'missed'}" for alg, e in result["algs"].items()]
