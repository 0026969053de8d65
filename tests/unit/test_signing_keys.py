from __future__ import annotations

import json

import pytest

from card_tokens.signing_keys import (
    KeyMaterialError,
    VerificationKeyRing,
    jwk_thumbprint,
    public_jwks,
    signing_key_from_secret,
    verification_key_from_jwk,
)

from .keys import signing_key

# RFC 7638 §3.1: the example RSA key and its thumbprint.
RFC7638_JWK = {
    "kty": "RSA",
    "n": (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_B"
        "JECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FD"
        "W2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vM"
        "QFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    ),
    "e": "AQAB",
    "alg": "RS256",
    "kid": "2011-04-29",
}


def test_thumbprint_matches_the_rfc_7638_example() -> None:
    assert jwk_thumbprint(RFC7638_JWK) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
def test_a_generated_key_has_its_thumbprint_as_kid_and_one_alg(alg: str) -> None:
    key = signing_key(alg)
    jwk = key.public_jwk()
    assert jwk["kid"] == key.kid == jwk_thumbprint(jwk)
    assert (jwk["alg"], jwk["use"]) == (alg, "sig")
    assert not {"d", "p", "q", "dp", "dq", "qi"} & jwk.keys()
    assert verification_key_from_jwk(jwk).alg == alg


def test_rs256_keys_are_3072_bits() -> None:
    assert signing_key("RS256").private_key.key_size == 3072


def test_the_secret_string_round_trips_and_its_repr_hides_the_key() -> None:
    key = signing_key()
    restored = signing_key_from_secret(json.loads(key.to_secret_string()))
    assert restored.kid == key.kid
    assert "PRIVATE" not in repr(key)


def test_a_secret_whose_kid_is_not_its_thumbprint_is_refused() -> None:
    document = json.loads(signing_key().to_secret_string())
    document["kid"] = signing_key("ES256", which=1).kid
    with pytest.raises(KeyMaterialError):
        signing_key_from_secret(document)


@pytest.mark.parametrize(
    "change",
    [
        {"kid": "chosen-by-attacker"},
        {"alg": "RS256"},
        {"alg": "HS256"},
        {"alg": None},
        {"crv": "P-384"},
    ],
)
def test_a_jwk_whose_kid_alg_or_curve_does_not_fit_its_key_is_refused(
    change: dict[str, object],
) -> None:
    jwk = {**signing_key().public_jwk(), **change}
    with pytest.raises(KeyMaterialError):
        verification_key_from_jwk(jwk)


def test_public_jwks_drops_private_members() -> None:
    leaked = {**signing_key().public_jwk(), "d": "secret"}
    assert "d" not in public_jwks({"keys": [leaked]})["keys"][0]


def test_the_key_ring_finds_keys_by_kid_only() -> None:
    ring = VerificationKeyRing.from_jwks(
        {"keys": [signing_key().public_jwk(), signing_key("RS256").public_jwk()]}
    )
    assert ring.get(signing_key().kid) is not None
    assert ring.get(signing_key("RS256").kid) is not None
    assert ring.get("unknown") is None
