"""Signing keys, pure: generation, PEM, RFC 7638 kids, public JWKs and the verification key ring.

No I/O here: the keys are read from Secrets Manager by card_tokens.key_store."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from card_tokens import b64url

ALGORITHMS = ("ES256", "RS256")
RSA_KEY_BITS = 3072
_PUBLIC_MEMBERS = {
    "EC": ("kty", "crv", "x", "y"),
    "RSA": ("kty", "n", "e"),
}

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey


class KeyMaterialError(ValueError):
    """A stored key is malformed. The message names what is wrong, never the key."""


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638: SHA-256 over the required members in lexicographic order, no whitespace."""
    members = _PUBLIC_MEMBERS.get(str(jwk.get("kty")))
    if members is None:
        raise KeyMaterialError("unsupported key type")
    canonical = json.dumps({name: jwk[name] for name in sorted(members)}, separators=(",", ":"))
    return b64url.encode(hashlib.sha256(canonical.encode("utf-8")).digest())


def _public_members(public_key: PublicKey) -> dict[str, str]:
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        numbers = public_key.public_numbers()
        size = 32  # P-256 coordinates are fixed-width (RFC 7518 §6.2.1.2)
        return {
            "kty": "EC",
            "crv": "P-256",
            "x": b64url.encode_uint(numbers.x, size),
            "y": b64url.encode_uint(numbers.y, size),
        }
    rsa_numbers = public_key.public_numbers()
    return {
        "kty": "RSA",
        "n": b64url.encode_uint(rsa_numbers.n),
        "e": b64url.encode_uint(rsa_numbers.e),
    }


def public_jwk(public_key: PublicKey, alg: str) -> dict[str, str]:
    """The public JWK a verifier needs, with kid = its RFC 7638 thumbprint and one alg."""
    jwk = _public_members(public_key)
    return {**jwk, "kid": jwk_thumbprint(jwk), "alg": alg, "use": "sig"}


@dataclass(frozen=True, repr=False)
class SigningKey:
    """The private half; its repr shows the kid only."""

    kid: str
    alg: str
    private_key: PrivateKey

    def __repr__(self) -> str:
        return f"SigningKey(kid={self.kid!r}, alg={self.alg!r})"

    def public_jwk(self) -> dict[str, str]:
        return public_jwk(self.private_key.public_key(), self.alg)

    def to_secret_string(self) -> str:
        pem = self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return json.dumps({"kid": self.kid, "alg": self.alg, "private_key_pem": pem.decode()})


def generate_signing_key(alg: str) -> SigningKey:
    private_key: PrivateKey
    if alg == "ES256":
        private_key = ec.generate_private_key(ec.SECP256R1())
    elif alg == "RS256":
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
    else:
        raise KeyMaterialError(f"unsupported signing algorithm {alg!r}")
    jwk = public_jwk(private_key.public_key(), alg)
    return SigningKey(kid=jwk["kid"], alg=alg, private_key=private_key)


def _check_key_fits_alg(key: PublicKey, alg: str) -> None:
    if alg == "ES256" and isinstance(key, ec.EllipticCurvePublicKey):
        if isinstance(key.curve, ec.SECP256R1):
            return
    elif alg == "RS256" and isinstance(key, rsa.RSAPublicKey) and key.key_size >= RSA_KEY_BITS:
        return
    raise KeyMaterialError("the key does not fit its algorithm")


def signing_key_from_secret(document: Mapping[str, Any]) -> SigningKey:
    try:
        kid, alg, pem = document["kid"], document["alg"], document["private_key_pem"]
        private_key = serialization.load_pem_private_key(pem.encode("ascii"), password=None)
    except (KeyError, TypeError, ValueError, AttributeError):
        raise KeyMaterialError("the signing-key secret holds no usable key") from None
    if not isinstance(private_key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise KeyMaterialError("the signing key is neither EC nor RSA")
    _check_key_fits_alg(private_key.public_key(), alg)
    if public_jwk(private_key.public_key(), alg)["kid"] != kid:
        raise KeyMaterialError("the signing key's kid is not its thumbprint")
    return SigningKey(kid=kid, alg=alg, private_key=private_key)


@dataclass(frozen=True)
class VerificationKey:
    kid: str
    alg: str
    public_key: PublicKey


def verification_key_from_jwk(jwk: Mapping[str, Any]) -> VerificationKey:
    """A public key whose kid is bound to its own thumbprint and to exactly one algorithm."""
    alg = jwk.get("alg")
    if alg not in ALGORITHMS:
        raise KeyMaterialError("a verification key has no supported alg")
    try:
        public_key: PublicKey
        if jwk["kty"] == "EC" and jwk["crv"] == "P-256":
            public_key = ec.EllipticCurvePublicNumbers(
                b64url.decode_uint(jwk["x"]), b64url.decode_uint(jwk["y"]), ec.SECP256R1()
            ).public_key()
        elif jwk["kty"] == "RSA":
            public_key = rsa.RSAPublicNumbers(
                b64url.decode_uint(jwk["e"]), b64url.decode_uint(jwk["n"])
            ).public_key()
        else:
            raise KeyMaterialError("unsupported verification key type")
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        if isinstance(error, KeyMaterialError):
            raise
        raise KeyMaterialError("a verification key is malformed") from None
    _check_key_fits_alg(public_key, alg)
    if jwk_thumbprint(jwk) != jwk.get("kid"):
        raise KeyMaterialError("a verification key's kid is not its thumbprint")
    return VerificationKey(kid=jwk["kid"], alg=alg, public_key=public_key)


class VerificationKeyRing:
    """The public keys a verifier accepts now (current, pending, previous), by kid."""

    def __init__(self, keys: list[VerificationKey]) -> None:
        self._by_kid = {key.kid: key for key in keys}

    def get(self, kid: str) -> VerificationKey | None:
        return self._by_kid.get(kid)

    @classmethod
    def from_jwks(cls, document: Mapping[str, Any]) -> VerificationKeyRing:
        keys = document.get("keys")
        if not isinstance(keys, list):
            raise KeyMaterialError("the verification-keys secret has no key list")
        return cls([verification_key_from_jwk(jwk) for jwk in keys])


def public_jwks(document: Mapping[str, Any]) -> dict[str, list[dict[str, str]]]:
    """A JWKS with only public members, whatever else the stored document carries."""
    allowed = ("kty", "crv", "x", "y", "n", "e", "kid", "alg", "use")
    keys = document.get("keys")
    if not isinstance(keys, list):
        raise KeyMaterialError("the verification-keys secret has no key list")
    return {"keys": [{k: jwk[k] for k in allowed if k in jwk} for jwk in keys]}
