"""Signing keys generated once per test session (RSA 3072 generation is slow)."""

from __future__ import annotations

from collections.abc import Callable

from card_tokens.signing_keys import (
    SigningKey,
    VerificationKey,
    generate_signing_key,
    verification_key_from_jwk,
)

_keys: dict[tuple[str, int], SigningKey] = {}


def signing_key(alg: str = "ES256", which: int = 0) -> SigningKey:
    if (alg, which) not in _keys:
        _keys[alg, which] = generate_signing_key(alg)
    return _keys[alg, which]


def ring_of(*keys: SigningKey) -> Callable[[str], VerificationKey | None]:
    by_kid = {key.kid: verification_key_from_jwk(key.public_jwk()) for key in keys}
    return by_kid.get
