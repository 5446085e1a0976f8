"""The JOSE operations a relying party performs on each login, done with `cryptography`.

Why not jwcrypto here: for each token it builds key objects, parses the same header
several times and keeps logs, about 150 µs per token beyond the cryptography itself;
with ECDH-ES that doubled a login's CPU (docs/benchmarks.md, part 3). What a relying
party needs is narrow: open a compact JWE with one of its own keys and check a compact
JWS against a provider key. This module does exactly that, for exactly the algorithms
providers.py can allow, so an algorithm outside that list has no code to reach.

Callers (tokens.py) check the headers against the policy before calling in; this
module checks what the cryptography itself depends on (segment encoding, key types
and curves, IV, tag, CEK and signature lengths) and raises JoseError for anything
else, with a message that never carries key or token material. jwcrypto remains the
key manager (loading and checking JWKs) and the development provider's minting
library, and it is the independent oracle this module is tested against
(tests/unit/test_jose.py).
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import string
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import padding as symmetric_padding
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash

# RFC 7515 2: base64url without padding; anything else ('+', '/', '=', spaces) is refused
# rather than skipped, as lenient decoders do. Byte tables: a JWE ciphertext is kilobytes.
# One translation table converts and marks in a single pass: '-' and '_' become '+' and '/',
# every byte outside the base64url alphabet becomes '*', which no base64 alphabet has.
_B64URL_ALPHABET = (string.ascii_letters + string.digits + "-_").encode("ascii")
_TO_STANDARD = bytes(b"+/"[b"-_".index(c)] if c in b"-_" else c if c in _B64URL_ALPHABET else ord("*")
                     for c in range(256))

# Content encryption (RFC 7518 5): CEK bytes for each enc.
CEK_BYTES = {"A128GCM": 16, "A192GCM": 24, "A256GCM": 32,
             "A128CBC-HS256": 32, "A192CBC-HS384": 48, "A256CBC-HS512": 64}
_CBC_HASH = {"A128CBC-HS256": hashlib.sha256, "A192CBC-HS384": hashlib.sha384, "A256CBC-HS512": hashlib.sha512}
KEY_ALGS = ("RSA-OAEP", "RSA-OAEP-256", "ECDH-ES")

_CURVE_NAMES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}
# ES* algorithms name both the hash and the curve (RFC 7518 3.4).
_ES_CURVE = {"ES256": "secp256r1", "ES384": "secp384r1", "ES512": "secp521r1"}
_ECDSA = {alg: ec.ECDSA(_HASHES[alg[2:]]()) for alg in _ES_CURVE}  # immutable: made once
_ECDH = ec.ECDH()
SIGNING_ALGS = ("ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "HS256")


class JoseError(ValueError):
    """A token that cannot be opened or verified; the message is safe to log."""


_B64URL_VALUE = {ord(c): i for i, c in enumerate(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")}
# The bits of a segment's last character that encode nothing: 4 when len % 4 == 2, 2 when 3.
_UNUSED_BITS_MASK = {2: 0b1111, 3: 0b11}


def b64decode(segment: str) -> bytes:
    """Strict base64url: no padding, no other alphabet, and canonical (the unused low bits
    of the last character are zero), so each byte string has exactly one encoding and a
    changed character can never decode to the same bytes."""
    try:
        raw = segment.encode("ascii")
    except UnicodeEncodeError:
        raise JoseError("segment is not base64url") from None
    standard = raw.translate(_TO_STANDARD)
    tail = len(raw) % 4
    if tail == 1 or b"*" in standard:
        raise JoseError("segment is not base64url")
    if tail and _B64URL_VALUE[raw[-1]] & _UNUSED_BITS_MASK[tail]:
        raise JoseError("segment is not canonical base64url")
    return binascii.a2b_base64(standard + b"=" * (-len(raw) % 4))


# -- JWE (RFC 7516, compact serialization) -----------------------------------------------------

@lru_cache(maxsize=32)  # the same few (enc, apu, apv) for every token of a provider
def _concat_kdf_info(enc: str, apu: bytes, apv: bytes) -> bytes:
    """RFC 7518 4.6.2 OtherInfo for direct key agreement: AlgorithmID is the enc value."""
    def field(data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + data
    return field(enc.encode("ascii")) + field(apu) + field(apv) + (CEK_BYTES[enc] * 8).to_bytes(4, "big")


def _agree(header: Mapping[str, Any], enc: str, key: ec.EllipticCurvePrivateKey) -> bytes:
    epk = header.get("epk")
    if not isinstance(epk, dict) or epk.get("kty") != "EC" or "d" in epk:
        raise JoseError("epk is not a public EC key")
    curve = key.curve
    crv = _CURVE_NAMES.get(curve.name)
    if crv is None or epk.get("crv") != crv:
        raise JoseError("epk is not on the curve of the service key")
    size = (curve.key_size + 7) // 8
    x, y = epk.get("x"), epk.get("y")
    if not isinstance(x, str) or not isinstance(y, str):
        raise JoseError("epk coordinates missing")
    xb, yb = b64decode(x), b64decode(y)
    if len(xb) != size or len(yb) != size:
        raise JoseError("epk coordinates have the wrong length")
    try:  # cryptography refuses points that are not on the curve (invalid-curve attacks)
        peer = ec.EllipticCurvePublicKey.from_encoded_point(curve, b"\x04" + xb + yb)
    except ValueError:
        raise JoseError("epk is not a point of the curve") from None
    apu, apv = header.get("apu"), header.get("apv")
    if not isinstance(apu, (str, type(None))) or not isinstance(apv, (str, type(None))):
        raise JoseError("apu or apv is not a string")
    info = _concat_kdf_info(enc, b64decode(apu) if apu else b"", b64decode(apv) if apv else b"")
    return ConcatKDFHash(hashes.SHA256(), CEK_BYTES[enc], info).derive(key.exchange(_ECDH, peer))


def _unwrap(header: Mapping[str, Any], alg: str, enc: str, encrypted_key: bytes, key: Any) -> bytes:
    if alg == "ECDH-ES":
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise JoseError("ECDH-ES needs an EC key")
        if encrypted_key:
            raise JoseError("direct key agreement carries no encrypted key")
        return _agree(header, enc, key)
    if alg in ("RSA-OAEP", "RSA-OAEP-256"):
        if not isinstance(key, rsa.RSAPrivateKey):
            raise JoseError(f"{alg} needs an RSA key")
        digest: hashes.HashAlgorithm = hashes.SHA1() if alg == "RSA-OAEP" else hashes.SHA256()  # noqa: S303 - RFC 7518 4.3
        try:
            cek = key.decrypt(encrypted_key, padding.OAEP(mgf=padding.MGF1(digest), algorithm=digest, label=None))
        except ValueError:
            raise JoseError("key unwrap failed") from None
        if len(cek) != CEK_BYTES[enc]:
            raise JoseError("unwrapped key has the wrong length")
        return cek
    raise JoseError("key management algorithm not supported")


def _decrypt_content(enc: str, cek: bytes, aad: bytes, iv: bytes, ciphertext: bytes, tag: bytes) -> bytes:
    if enc.endswith("GCM"):
        if len(iv) != 12 or len(tag) != 16:
            raise JoseError("GCM IV or tag has the wrong length")
        try:
            return AESGCM(cek).decrypt(iv, ciphertext + tag, aad)
        except InvalidTag:
            raise JoseError("content decryption failed") from None
    if enc in _CBC_HASH:  # RFC 7518 5.2.2.2: MAC first, in constant time, then decrypt
        half = len(cek) // 2
        if len(iv) != 16 or len(tag) != half or not ciphertext or len(ciphertext) % 16:
            raise JoseError("CBC IV, tag or ciphertext has the wrong length")
        mac = hmac.new(cek[:half], aad + iv + ciphertext + (len(aad) * 8).to_bytes(8, "big"), _CBC_HASH[enc]).digest()
        if not hmac.compare_digest(mac[:half], tag):
            raise JoseError("content decryption failed")
        decryptor = Cipher(algorithms.AES(cek[half:]), modes.CBC(iv)).decryptor()
        padded = decryptor.update(ciphertext) + decryptor.finalize()
        unpadder = symmetric_padding.PKCS7(128).unpadder()
        try:
            return unpadder.update(padded) + unpadder.finalize()
        except ValueError:
            raise JoseError("content padding is invalid") from None
    raise JoseError("content encryption not supported")


def decrypt_compact(parts: list[str], header: Mapping[str, Any], key: Any) -> bytes:
    """The plaintext of a compact JWE (five segments; `header` is parts[0] decoded with
    b64decode and parsed by the caller, who also checked it against the policy)."""
    alg, enc = header.get("alg"), header.get("enc")
    if alg not in KEY_ALGS or enc not in CEK_BYTES:
        raise JoseError("JWE alg/enc not supported")
    encrypted_key, iv, ciphertext, tag = b64decode(parts[1]), b64decode(parts[2]), b64decode(parts[3]), b64decode(parts[4])
    cek = _unwrap(header, alg, enc, encrypted_key, key)
    return _decrypt_content(enc, cek, parts[0].encode("ascii"), iv, ciphertext, tag)


# -- JWS (RFC 7515, compact serialization) -----------------------------------------------------

def verify_compact(parts: list[str], alg: str, key: Any) -> bytes:
    """The payload of a compact JWS whose signature verifies with `key` under `alg`.

    `key` is a `cryptography` public key, or the shared secret as bytes for HS256; the
    caller decoded parts[0] with b64decode to read `alg` from it."""
    signature = b64decode(parts[2])
    payload = b64decode(parts[1])
    signing_input = (parts[0] + "." + parts[1]).encode("ascii")
    try:
        if alg in _ES_CURVE:
            if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != _ES_CURVE[alg]:
                raise JoseError(f"{alg} needs a key on {_ES_CURVE[alg]}")
            size = (key.curve.key_size + 7) // 8
            if len(signature) != 2 * size:  # RFC 7518 3.4: R || S, each exactly the curve size
                raise JoseError("ECDSA signature has the wrong length")
            der = encode_dss_signature(int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big"))
            key.verify(der, signing_input, _ECDSA[alg])
        elif alg[:2] in ("RS", "PS") and alg[2:] in _HASHES:
            if not isinstance(key, rsa.RSAPublicKey):
                raise JoseError(f"{alg} needs an RSA key")
            digest = _HASHES[alg[2:]]()
            pad: padding.AsymmetricPadding = (
                padding.PKCS1v15() if alg[:2] == "RS"
                else padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size))  # RFC 7518 3.5
            key.verify(signature, signing_input, pad, digest)
        elif alg == "HS256":
            if not isinstance(key, bytes) or len(key) < 32:  # RFC 7518 3.2: at least the hash size
                raise JoseError("HS256 needs a secret of at least 256 bits")
            if not hmac.compare_digest(hmac.new(key, signing_input, hashlib.sha256).digest(), signature):
                raise InvalidSignature
        else:
            raise JoseError("signature algorithm not supported")
    except InvalidSignature:
        raise JoseError("signature does not verify") from None
    return payload
