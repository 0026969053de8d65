"""Signing keys: generation, RFC 7638 kids, public JWKs, and the keys from Secrets Manager."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.parameters import SecretsProvider
from aws_lambda_powertools.utilities.parameters.exceptions import (
    GetParameterError,
    TransformParameterError,
)
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from card_tokens.aws import secretsmanager_client
from card_tokens.errors import ServiceUnavailable
from card_tokens.observability import logger

ALGORITHMS = ("ES256", "RS256")
RSA_KEY_BITS = 3072
# Secrets are cached for this long in each container (Powertools' own setting; 300 s unless
# POWERTOOLS_PARAMETERS_MAX_AGE says otherwise, as the local stack does). Rotation keeps the
# retiring key valid far longer than this plus the maximum token lifetime.
SECRET_CACHE_SECONDS = int(os.environ.get("POWERTOOLS_PARAMETERS_MAX_AGE", "300"))
_PUBLIC_MEMBERS = {
    "EC": ("kty", "crv", "x", "y"),
    "RSA": ("kty", "n", "e"),
}

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey


class KeyMaterialError(ValueError):
    """A stored key is malformed. The message names what is wrong, never the key."""


def _b64url_uint(value: int) -> str:
    length = max(1, (value.bit_length() + 7) // 8)
    return base64.urlsafe_b64encode(value.to_bytes(length, "big")).rstrip(b"=").decode("ascii")


def _b64url_to_int(value: str) -> int:
    padded = value + "=" * (-len(value) % 4)
    return int.from_bytes(base64.urlsafe_b64decode(padded.encode("ascii")), "big")


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638: SHA-256 over the required members in lexicographic order, no whitespace."""
    members = _PUBLIC_MEMBERS.get(str(jwk.get("kty")))
    if members is None:
        raise KeyMaterialError("unsupported key type")
    canonical = json.dumps({name: jwk[name] for name in sorted(members)}, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode("utf-8")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _public_members(public_key: PublicKey) -> dict[str, str]:
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        numbers = public_key.public_numbers()
        size = 32  # P-256 coordinates are fixed-width (RFC 7518 §6.2.1.2)
        return {
            "kty": "EC",
            "crv": "P-256",
            "x": base64.urlsafe_b64encode(numbers.x.to_bytes(size, "big")).rstrip(b"=").decode(),
            "y": base64.urlsafe_b64encode(numbers.y.to_bytes(size, "big")).rstrip(b"=").decode(),
        }
    rsa_numbers = public_key.public_numbers()
    return {"kty": "RSA", "n": _b64url_uint(rsa_numbers.n), "e": _b64url_uint(rsa_numbers.e)}


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
                _b64url_to_int(jwk["x"]), _b64url_to_int(jwk["y"]), ec.SECP256R1()
            ).public_key()
        elif jwk["kty"] == "RSA":
            public_key = rsa.RSAPublicNumbers(
                _b64url_to_int(jwk["e"]), _b64url_to_int(jwk["n"])
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

    def __len__(self) -> int:
        return len(self._by_kid)

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


def published_jwks(secret_id: str) -> dict[str, list[dict[str, str]]]:
    """GET /.well-known/jwks.json: the public keys a verifier must accept now."""
    try:
        return public_jwks(fetch_secret_json(secret_id))
    except KeyMaterialError:
        logger.error("verification keys unusable", extra={"key_error": "no key list"})
        raise ServiceUnavailable("secretsmanager") from None


@cache
def _secrets() -> SecretsProvider:
    # One client per service for the whole container: same retries, timeouts and hooks.
    return SecretsProvider(boto3_client=secretsmanager_client())


def fetch_secret_json(secret_id: str, *, force_fetch: bool = False) -> dict[str, Any]:
    """A JSON secret through Powertools' cache; an outage becomes ServiceUnavailable."""
    try:
        value = _secrets().get(
            secret_id,
            max_age=SECRET_CACHE_SECONDS,
            transform="json",
            force_fetch=force_fetch,
            VersionStage="AWSCURRENT",
        )
    except (GetParameterError, TransformParameterError):
        # The exception text can quote the secret's value: log its type only.
        logger.warning("secret unavailable", extra={"secret_error": "fetch_or_parse_failed"})
        raise ServiceUnavailable("secretsmanager") from None
    if not isinstance(value, dict):
        raise ServiceUnavailable("secretsmanager")
    return value


_signing_keys: dict[str, SigningKey] = {}


def current_signing_key(secret_id: str) -> SigningKey:
    """The AWSCURRENT signing key; parsed once per kid, not once per request."""
    document = fetch_secret_json(secret_id)
    kid = document.get("kid")
    if isinstance(kid, str) and kid in _signing_keys:
        return _signing_keys[kid]
    try:
        key = signing_key_from_secret(document)
    except KeyMaterialError as error:
        # Before the first rotation the secret holds no key: issuing is unavailable, not broken.
        logger.error("no usable signing key", extra={"key_error": str(error)})
        raise ServiceUnavailable("secretsmanager") from None
    _signing_keys[key.kid] = key
    return key


_rings: dict[str, tuple[dict[str, Any], VerificationKeyRing]] = {}


def verification_key_ring(secret_id: str, *, force_fetch: bool = False) -> VerificationKeyRing:
    """The accepted public keys; rebuilt only when the secret's content changed."""
    document = fetch_secret_json(secret_id, force_fetch=force_fetch)
    cached = _rings.get(secret_id)
    if cached is not None and cached[0] == document:
        return cached[1]
    try:
        ring = VerificationKeyRing.from_jwks(document)
    except KeyMaterialError as error:
        logger.error("verification keys unusable", extra={"key_error": str(error)})
        raise ServiceUnavailable("secretsmanager") from None
    _rings[secret_id] = (document, ring)
    return ring


# An unknown kid may be a key published after this container cached the ring (a rotation just
# happened): look again, but at most this often, so junk kids cannot hammer Secrets Manager.
UNKNOWN_KID_REFRESH_SECONDS = 30
_forced_at: dict[str, float] = {}


def find_verification_key(secret_id: str, kid: str) -> VerificationKey | None:
    key = verification_key_ring(secret_id).get(kid)
    last = _forced_at.get(secret_id)
    if key is None and (last is None or time.monotonic() - last > UNKNOWN_KID_REFRESH_SECONDS):
        _forced_at[secret_id] = time.monotonic()
        key = verification_key_ring(secret_id, force_fetch=True).get(kid)
    return key


def forget_cached_keys() -> None:
    """Drop every cached key and secret, as if the cache lifetime had passed."""
    if _secrets.cache_info().currsize:  # never build a provider (and its client) just to clear it
        _secrets().clear_cache()  # type: ignore[no-untyped-call]
    _signing_keys.clear()
    _rings.clear()
    _forced_at.clear()


def forget_secrets_provider() -> None:
    """Drop the cached keys and the provider itself, with the Secrets Manager client it holds;
    the next fetch builds a new one on the current secretsmanager_client()."""
    forget_cached_keys()
    _secrets.cache_clear()
