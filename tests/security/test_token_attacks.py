"""Token attacks from RFC 8725, the OWASP JWT guidance and PyJWT's advisories: all 401."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from card_tokens.wiring import payment_processor as sandbox_processor
from local.provision import LocalStack
from tests.flows import Invoke, body, new_token, payment_event
from tests.token_shapes import MALFORMED_SERIALIZATIONS

from .attacks import b64, current_signing_key, is_high_s, parts, s_flipped, sign_raw, unb64


def assert_invalid_token(payments: Invoke, token: str) -> None:
    charges = len(sandbox_processor().ledger())
    response = payments(payment_event(token))
    assert response["statusCode"] == 401, response["body"]
    assert body(response) == {
        "error": {"code": "invalid_token", "message": "The token is not valid."}
    }
    assert len(sandbox_processor().ledger()) == charges, "a rejected token reached the processor"


Mutation = Callable[[dict[str, Any], dict[str, Any]], tuple[Any, Any]]


def resigned(stack: LocalStack, issue: Invoke, mutate: Mutation) -> str:
    """A fresh real token, its header and claims changed, then signed again with the real key."""
    header, claims = parts(new_token(issue))
    new_header, new_claims = mutate(dict(header), dict(claims))
    return sign_raw(current_signing_key(stack), new_header, new_claims)


def test_the_resigning_helper_yields_tokens_that_pay(
    stack: LocalStack, issue: Invoke, payments: Invoke
) -> None:
    # Guards every test below: each fails for its one defect, not for the forgery itself.
    token = resigned(stack, issue, lambda h, c: (h, c))
    assert payments(payment_event(token))["statusCode"] == 201


# --- RFC 8725 §2.1 / §3.1: the algorithm is the key's, never the token's -------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_alg_none_in_every_casing(issue: Invoke, payments: Invoke, alg: str) -> None:
    header, claims = parts(new_token(issue))
    unsigned = (
        f"{b64(json.dumps({**header, 'alg': alg}).encode())}.{b64(json.dumps(claims).encode())}."
    )
    assert_invalid_token(payments, unsigned)
    assert_invalid_token(payments, unsigned + "AAAA")


@pytest.mark.parametrize("secret_form", ["pem", "jwk"])
def test_hs256_signed_with_the_public_key(
    stack: LocalStack, issue: Invoke, payments: Invoke, secret_form: str
) -> None:
    key = current_signing_key(stack)
    secret = (
        key.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        if secret_form == "pem"
        else json.dumps(key.public_jwk()).encode()
    )
    header, claims = parts(new_token(issue))
    signing_input = (
        f"{b64(json.dumps({**header, 'alg': 'HS256'}).encode())}.{b64(json.dumps(claims).encode())}"
    )
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    assert_invalid_token(payments, f"{signing_input}.{b64(signature)}")


@pytest.mark.parametrize("alg", ["RS256", "ES384", "ES512", "PS256", "HS256", "EdDSA"])
def test_an_algorithm_not_bound_to_the_kid(
    stack: LocalStack, issue: Invoke, payments: Invoke, alg: str
) -> None:
    assert_invalid_token(payments, resigned(stack, issue, lambda h, c: ({**h, "alg": alg}, c)))


# --- RFC 8725 §2.9 / §3.10: never trust a key or a location named by the token -----------------


@pytest.mark.parametrize(
    "kid",
    ["../../../../etc/passwd", "' OR '1'='1", "x\u0000y", "k" * 4000, "unknown-kid", "", 42, None],
)
def test_kid_injection(stack: LocalStack, issue: Invoke, payments: Invoke, kid: object) -> None:
    assert_invalid_token(payments, resigned(stack, issue, lambda h, c: ({**h, "kid": kid}, c)))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("jku", "https://attacker.example/jwks.json"),
        ("x5u", "https://attacker.example/cert.pem"),
        ("jwk", {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}),
        ("x5c", ["MIIB"]),
        ("crit", ["exp"]),
        ("b64", False),
    ],
)
def test_headers_that_bring_keys_or_change_processing(
    stack: LocalStack, issue: Invoke, payments: Invoke, name: str, value: object
) -> None:
    assert_invalid_token(payments, resigned(stack, issue, lambda h, c: ({**h, name: value}, c)))


# --- RFC 8725 §3.11 / §2.8: explicit typing ------------------------------------------------------


@pytest.mark.parametrize("typ", [None, "JWT", "at+jwt", "card+JWT", "application/card+jwt"])
def test_wrong_or_missing_typ(
    stack: LocalStack, issue: Invoke, payments: Invoke, typ: str | None
) -> None:
    def mutate(h: dict[str, Any], c: dict[str, Any]) -> tuple[Any, Any]:
        h = {k: v for k, v in h.items() if k != "typ"}
        return ({**h, "typ": typ} if typ else h), c

    assert_invalid_token(payments, resigned(stack, issue, mutate))


# --- claims that are there but outside the contract ---------------------------------------------

ClaimChange = Callable[[dict[str, Any]], dict[str, Any]]
CLAIMS_OUTSIDE_THE_CONTRACT: dict[str, ClaimChange] = {
    # RFC 7519 §4.1.4-6: time claims, strictly
    "expired": lambda c: {**c, "exp": c["iat"] - 60, "nbf": c["iat"] - 120, "iat": c["iat"] - 120},
    "nbf-future": lambda c: {**c, "nbf": c["nbf"] + 600},
    "iat-future": lambda c: {**c, "iat": c["iat"] + 600, "nbf": c["iat"] + 600},
    "exp-string": lambda c: {**c, "exp": str(c["exp"])},
    "exp-float": lambda c: {**c, "exp": float(c["exp"])},
    "exp-bool": lambda c: {**c, "exp": True},
    "exp-1e30": lambda c: {**c, "exp": 1e30},
    "exp-huge-int": lambda c: {**c, "exp": 10**30},
    "lifetime-over-max": lambda c: {**c, "exp": c["iat"] + 3601},
    # RFC 8725 §3.8 / §3.9, PyJWT CVE-2024-53861: exact issuer and audience
    "aud-list": lambda c: {**c, "aud": [c["aud"]]},
    "aud-list-2": lambda c: {**c, "aud": [c["aud"], "other"]},
    "aud-suffix": lambda c: {**c, "aud": c["aud"] + "-staging"},
    "aud-prefix": lambda c: {**c, "aud": c["aud"][:-1]},
    "iss-prefix": lambda c: {**c, "iss": c["iss"][:-1]},
    "iss-suffix": lambda c: {**c, "iss": c["iss"] + ".attacker.example"},
    "iss-prepended": lambda c: {**c, "iss": "prefix-" + c["iss"]},
    "iss-lookalike": lambda c: {**c, "iss": c["iss"].replace("a", "\u0430", 1)},  # Cyrillic
    "iss-list": lambda c: {**c, "iss": [c["iss"]]},
}


@pytest.mark.parametrize(
    "change", CLAIMS_OUTSIDE_THE_CONTRACT.values(), ids=CLAIMS_OUTSIDE_THE_CONTRACT
)
def test_a_claim_outside_the_contract(
    stack: LocalStack, issue: Invoke, payments: Invoke, change: ClaimChange
) -> None:
    assert_invalid_token(payments, resigned(stack, issue, lambda h, c: (h, change(c))))


@pytest.mark.parametrize("claim", ["iss", "aud", "iat", "nbf", "exp", "jti", "meta_data"])
def test_each_missing_claim(stack: LocalStack, issue: Invoke, payments: Invoke, claim: str) -> None:
    assert_invalid_token(
        payments,
        resigned(stack, issue, lambda h, c: (h, {k: v for k, v in c.items() if k != claim})),
    )


# --- RFC 8725 §3.3: tampering -------------------------------------------------------------------


def test_a_tampered_payload(issue: Invoke, payments: Invoke) -> None:
    header, payload, signature = new_token(issue).split(".")
    claims = json.loads(unb64(payload))
    claims["exp"] -= 1
    assert_invalid_token(payments, f"{header}.{b64(json.dumps(claims).encode())}.{signature}")


def test_a_tampered_signature(issue: Invoke, payments: Invoke) -> None:
    header, payload, signature = new_token(issue).split(".")
    raw = bytearray(unb64(signature))
    raw[5] ^= 1
    assert_invalid_token(payments, f"{header}.{payload}.{b64(bytes(raw))}")


# --- RFC 7515 §3.1 / §7.1, RFC 8725 §2.6: one compact serialization, one spelling ---------------


@pytest.mark.parametrize("reshape", MALFORMED_SERIALIZATIONS.values(), ids=MALFORMED_SERIALIZATIONS)
def test_malformed_serializations(
    issue: Invoke, payments: Invoke, reshape: Callable[[str], str]
) -> None:
    assert_invalid_token(payments, reshape(new_token(issue)))


@pytest.mark.parametrize(
    ("header", "payload"),
    [("[]", None), ('"text"', None), (None, "[]"), (None, "1"), (None, "null")],
)
def test_a_header_or_payload_that_is_not_an_object(
    stack: LocalStack, issue: Invoke, payments: Invoke, header: str | None, payload: str | None
) -> None:
    real_header, real_claims = parts(new_token(issue))
    token = sign_raw(current_signing_key(stack), header or real_header, payload or real_claims)
    assert_invalid_token(payments, token)


def test_duplicate_claims(stack: LocalStack, issue: Invoke, payments: Invoke) -> None:
    header, claims = parts(new_token(issue))
    payload = json.dumps(claims)[:-1] + f', "aud": "someone-else", "aud": "{claims["aud"]}"}}'
    assert_invalid_token(payments, sign_raw(current_signing_key(stack), header, payload))


def test_duplicate_header_members(stack: LocalStack, issue: Invoke, payments: Invoke) -> None:
    header, claims = parts(new_token(issue))
    text = json.dumps(header)[:-1] + ', "alg": "none"}'
    assert_invalid_token(payments, sign_raw(current_signing_key(stack), text, claims))


# --- RFC 8725 §2.9: resource exhaustion ---------------------------------------------------------


def test_a_huge_token(stack: LocalStack, issue: Invoke, payments: Invoke) -> None:
    token = resigned(stack, issue, lambda h, c: (h, {**c, "pad": "A" * 7000}))
    assert_invalid_token(payments, token)


def test_deep_nesting(stack: LocalStack, issue: Invoke, payments: Invoke) -> None:
    header, claims = parts(new_token(issue))
    payload = json.dumps(claims)[:-1] + ', "x": ' + "[" * 3000 + "]" * 3000 + "}"
    assert_invalid_token(payments, sign_raw(current_signing_key(stack), header, payload))


def test_huge_integers(stack: LocalStack, issue: Invoke, payments: Invoke) -> None:
    header, claims = parts(new_token(issue))
    payload = json.dumps(claims).replace(str(claims["exp"]), "9" * 5000)
    assert_invalid_token(payments, sign_raw(current_signing_key(stack), header, payload))


# --- ECDSA malleability: (r, n - s) verifies whenever (r, s) does; only low-S is accepted -------


def test_the_high_s_twin_of_a_fresh_token_is_refused_and_does_not_burn_it(
    stack: LocalStack, issue: Invoke, payments: Invoke
) -> None:
    # Given a fresh token, and its twin with s replaced by n - s (a genuine ECDSA signature)
    token = new_token(issue)
    header, payload, signature = token.split(".")
    twin = s_flipped(unb64(signature))
    assert not is_high_s(unb64(signature))
    assert is_high_s(twin)
    public_key = current_signing_key(stack).private_key.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    public_key.verify(
        encode_dss_signature(int.from_bytes(twin[:32], "big"), int.from_bytes(twin[32:], "big")),
        f"{header}.{payload}".encode(),
        ec.ECDSA(hashes.SHA256()),
    )
    # When the twin is sent first, then it is refused, and nothing is charged
    assert_invalid_token(payments, f"{header}.{payload}.{b64(twin)}")
    # And the original still pays: the twin did not spend its jti
    assert payments(payment_event(token))["statusCode"] == 201


# --- RFC 8725 §2.7: substitution of the sealed card ---------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        "from-another-token",
        "bit-flipped",
        "truncated",
        "empty",
    ],
)
def test_meta_data_substituted_or_damaged(
    stack: LocalStack, issue: Invoke, payments: Invoke, change: str
) -> None:
    other = parts(new_token(issue))[1]["meta_data"]

    def mutate(h: dict[str, Any], c: dict[str, Any]) -> tuple[Any, Any]:
        meta = c["meta_data"]
        replaced = {
            "from-another-token": other,
            "bit-flipped": meta[:30] + ("A" if meta[30] != "A" else "B") + meta[31:],
            "truncated": meta[:-8],
            "empty": "",
        }[change]
        return h, {**c, "meta_data": replaced}

    token = resigned(stack, issue, mutate)
    assert_invalid_token(payments, token)
