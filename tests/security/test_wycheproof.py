"""Wycheproof known-answer vectors through the project's own key loader and signature rules.

The vectors are vendored unmodified in vectors/wycheproof/ (source, commit and licence in its
README.md). Every key goes through `verification_key_from_jwk`; a key it refuses counts as a
rejection, and for a valid vector the refusal must be a named project rule. JWS vectors go through
`verify_token`; the ECDSA P1363 and RSA PKCS#1 v1.5 vectors sign arbitrary bytes, not JWS signing
inputs, so they go through `verify_signature`, the signature check `verify_token` itself runs.
No vector may be accepted that Wycheproof calls invalid; no valid vector may fail its signature.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from card_tokens.config import TokenSettings
from card_tokens.errors import InvalidToken
from card_tokens.signing_keys import (
    RSA_KEY_BITS,
    KeyMaterialError,
    VerificationKey,
    jwk_thumbprint,
    verification_key_from_jwk,
)
from card_tokens.tokens import verify_signature, verify_token

# The security conftest's autouse output scan clears the key cache, which needs the emulated
# account: the same session stack every other security test runs on.
pytestmark = pytest.mark.usefixtures("stack")

VECTORS = Path(__file__).parent / "vectors" / "wycheproof"
JWS_FILE = "json_web_signature_test.json"
P1363_FILE = "ecdsa_secp256r1_sha256_p1363_test.json"
RSA_FILES = {bits: f"rsa_signature_{bits}_sha256_test.json" for bits in (2048, 3072, 4096)}

SETTINGS = TokenSettings(issuer="https://issuer.example", audience="payments")
NOW = 1_790_000_000
# The P-256 group order n (SEC 2 v2 §2.4.2), written out here rather than imported from the code
# under test, so a wrong constant there cannot agree with itself.
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551

# Why the key loader may refuse the key of a *valid* vector: its message -> the project rule.
# `loader_rule` also checks the rule's own condition on the key, so a message alone cannot pass.
LOADER_RULES = {
    "a verification key has no supported alg": "only ES256 and RS256 keys are loaded",
    "the key does not fit its algorithm": f"RSA keys under {RSA_KEY_BITS} bits are refused",
    "a verification key's kid is not its thumbprint": "a kid is its key's RFC 7638 thumbprint",
}
# Why `verify_token` may refuse a *valid* JWS vector: its reason -> the project rule. Never a
# signature reason (bad_signature, high_s): a valid signature must pass the signature check.
TOKEN_RULES = {
    "wrong_typ": "typ must be card+jwt (RFC 8725 §3.11); Wycheproof's JWS carry no typ",
    "forbidden_header": "only the alg, typ and kid headers are accepted",
    "unknown_kid": "the kid must name a known key (RFC 8725 §3.10)",
    "alg_mismatch": "the header's alg must be the key's own alg (RFC 8725 §3.1)",
    "missing_claim": "every claim of the card token is required",
}
# What verify_signature may answer; "high_s" also covers ES256 signatures not exactly 64 bytes.
SIGNATURE_REASONS = frozenset({"bad_signature", "high_s"})


@dataclass(frozen=True)
class Vector:
    label: str  # jws, p1363, rsa2048, ...: with the tcId, names the vector in test ids
    file: str
    tc_id: int
    result: str  # "valid", "invalid" or "acceptable" (either answer is allowed)
    comment: str
    flags: tuple[str, ...]
    jwk: Mapping[str, Any]  # the group's key, as the vector file gives it
    test: Mapping[str, Any]

    @property
    def id(self) -> str:
        slug = re.sub(r"[^A-Za-z0-9]+", "-", self.comment).strip("-")[:48]
        return "-".join(part for part in (self.label, f"tc{self.tc_id}", self.result, slug) if part)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_uint(value: int) -> str:
    """RFC 7518 §6.3.1: big-endian, no leading zero octets."""
    return b64url(value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"))


def jwk_int(jwk: Mapping[str, Any], name: str) -> int:
    value = str(jwk[name])
    return int.from_bytes(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)), "big")


def stored_form(jwk: Mapping[str, Any], alg: str) -> dict[str, Any]:
    """The JWK as the project stores a key: its public members, one alg, kid = its thumbprint."""
    public = {name: jwk[name] for name in ("kty", "crv", "x", "y", "n", "e") if name in jwk}
    return {**public, "alg": alg, "kid": jwk_thumbprint(public)}


def ecdsa_jwk(group: Mapping[str, Any]) -> dict[str, Any]:
    """From the uncompressed point's wx, wy: fixed 32-byte coordinates (RFC 7518 §6.2.1.2)."""
    key = group["publicKey"]
    assert (key["type"], key["curve"], group["sha"]) == ("EcPublicKey", "secp256r1", "SHA-256")
    x, y = (int(key[name], 16).to_bytes(32, "big") for name in ("wx", "wy"))
    assert key["uncompressed"] == (b"\x04" + x + y).hex()
    jwk = stored_form({"kty": "EC", "crv": "P-256", "x": b64url(x), "y": b64url(y)}, "ES256")
    if "publicKeyJwk" in group:  # the file's own JWK, where it has one, must be the same key
        assert {n: group["publicKeyJwk"][n] for n in ("x", "y")} == {n: jwk[n] for n in "xy"}
    return jwk


def rsa_jwk(group: Mapping[str, Any]) -> dict[str, Any]:
    key = group["publicKey"]
    assert group["sha"] == "SHA-256"
    n, e = int(key["modulus"], 16), int(key["publicExponent"], 16)
    assert n.bit_length() == group["keySize"]
    jwk = stored_form({"kty": "RSA", "n": b64url_uint(n), "e": b64url_uint(e)}, "RS256")
    assert {name: group["keyJwk"][name] for name in "ne"} == {name: jwk[name] for name in "ne"}
    return jwk


def read(
    label: str, file: str, group_key: Callable[[Mapping[str, Any]], Mapping[str, Any]]
) -> list[Vector]:
    document = json.loads((VECTORS / file).read_text(encoding="utf-8"))
    vectors = [
        Vector(
            label=label,
            file=file,
            tc_id=test["tcId"],
            result=test["result"],
            comment=test["comment"],
            flags=tuple(test["flags"]),
            jwk=group_key(group),
            test=test,
        )
        for group in document["testGroups"]
        for test in group["tests"]
    ]
    # A test that reads no vectors must fail: every file holds exactly what its header says.
    assert len(vectors) == document["numberOfTests"] > 0, file
    return vectors


def jws_group_key(group: Mapping[str, Any]) -> Mapping[str, Any]:
    # HMAC groups have no public key: their symmetric JWK is what a verifier would be given.
    key: Mapping[str, Any] = group.get("public") or group["private"]
    return key


JWS = read("jws", JWS_FILE, jws_group_key)
P1363 = read("p1363", P1363_FILE, ecdsa_jwk)
RSA = {bits: read(f"rsa{bits}", file, rsa_jwk) for bits, file in RSA_FILES.items()}
RSA_ALL = [vector for vectors in RSA.values() for vector in vectors]


def params(vectors: list[Vector]) -> Any:
    return pytest.mark.parametrize("vector", vectors, ids=[vector.id for vector in vectors])


# --- outcomes --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    stage: str  # "accepted", "loader" (key refused), "token" (verify_token), "signature"
    reason: str = ""

    @property
    def accepted(self) -> bool:
        return self.stage == "accepted"

    def __str__(self) -> str:
        if self.stage == "loader":
            return f"loader: {LOADER_RULES.get(self.reason, self.reason)}"
        return f"{self.stage}: {self.reason}" if self.reason else self.stage


ACCEPTED = Outcome("accepted")


def load(jwk: Mapping[str, Any]) -> VerificationKey | Outcome:
    try:
        return verification_key_from_jwk(jwk)
    except KeyMaterialError as refused:
        return Outcome("loader", str(refused))


def loader_rule(jwk: Mapping[str, Any], message: str) -> str:
    """The project rule behind a loader refusal, after checking the rule really applies."""
    assert message in LOADER_RULES, f"the key loader refused a valid vector's key: {message}"
    if message == "a verification key has no supported alg":
        assert jwk.get("alg") not in ("ES256", "RS256")
    elif message == "the key does not fit its algorithm":
        assert jwk["kty"] == "RSA"
        assert jwk_int(jwk, "n").bit_length() < RSA_KEY_BITS
    else:
        assert jwk_thumbprint(jwk) != jwk.get("kid")
    return LOADER_RULES[message]


def signature_outcome(key: VerificationKey, message: bytes, signature: bytes) -> Outcome:
    try:
        verify_signature(key, message, signature)
    except InvalidToken as refused:
        reason = refused.reason
    else:
        return ACCEPTED
    assert reason in SIGNATURE_REASONS
    return Outcome("signature", reason)


def is_high_s(signature: bytes) -> bool:
    return len(signature) == 64 and int.from_bytes(signature[32:], "big") > P256_ORDER // 2


def low_s_twin(signature: bytes) -> bytes:
    """(r, n - s): a valid ECDSA signature whenever (r, s) is one (SEC 1 v2 §4.1.4)."""
    s = int.from_bytes(signature[32:], "big")
    return signature[:32] + (P256_ORDER - s).to_bytes(32, "big")


def assert_valid_signature_passes(key: VerificationKey, message: bytes, signature: bytes) -> None:
    """A valid signature is accepted, or refused by the low-S rule alone: its twin passes."""
    outcome = signature_outcome(key, message, signature)
    if key.alg == "ES256" and is_high_s(signature):
        assert outcome == Outcome("signature", "high_s")
        assert signature_outcome(key, message, low_s_twin(signature)) == ACCEPTED
    else:
        assert outcome == ACCEPTED, f"a valid signature was refused: {outcome}"


def assert_invalid_signature_fails(key: VerificationKey, message: bytes, signature: bytes) -> None:
    """Refused; and where the refusal is high_s (high S, or not 64 bytes), PyJWT's own ES256
    check, which verify_signature then runs, refuses it too: the low-S rule hides no forgery."""
    outcome = signature_outcome(key, message, signature)
    assert not outcome.accepted, "an invalid signature was accepted"
    if outcome.reason == "high_s":
        es256 = jwt.get_algorithm_by_name("ES256")
        assert not es256.verify(message, key.public_key, signature)


def assert_answer(vector: Vector, outcome: Outcome) -> None:
    """Wycheproof's answer: invalid is rejected, valid is accepted (or refused by a named rule,
    checked by the caller); acceptable may go either way."""
    if vector.result == "invalid":
        assert not outcome.accepted, f"{vector.file} tcId {vector.tc_id} was accepted"


# --- JWS (RFC 7515 compact serialization) through verify_token -------------------------------


def jws_key_jwk(vector: Vector) -> dict[str, Any]:
    """The vector's key as the project would store it: its kid rebound to the thumbprint.

    Wycheproof's kids are names ("kid-ec-sign"); the loader binds every kid to its key's RFC 7638
    thumbprint (test_jws_keys_as_given_are_refused), so the key is stored under its thumbprint and
    `find_key` maps the vector's kid to it. Its alg, use and key_ops stay as given.
    """
    jwk = dict(vector.jwk)
    if jwk.get("kty") in ("EC", "RSA"):
        jwk["kid"] = jwk_thumbprint(jwk)
    return jwk


def jws_outcome(vector: Vector) -> Outcome:
    key = load(jws_key_jwk(vector))
    if isinstance(key, Outcome):
        return key
    named = vector.jwk.get("kid")
    try:
        verify_token(
            vector.test["jws"],
            find_key=lambda kid: key if kid == named else None,
            settings=SETTINGS,
            now=NOW,
        )
    except InvalidToken as refused:
        return Outcome("token", refused.reason)
    return ACCEPTED


def jws_signed_parts(vector: Vector) -> tuple[bytes, bytes] | None:
    """(signing input, signature) of a compact JWS (RFC 7515 §5.2), None if it has no such shape."""
    token = vector.test["jws"]
    if not isinstance(token, str) or token.count(".") != 2:
        return None
    header, payload, signature = token.split(".")
    try:
        raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    except (binascii.Error, ValueError):
        return None
    return f"{header}.{payload}".encode("ascii"), raw


def jws_signature_outcome(vector: Vector) -> Outcome | None:
    """The signature check alone, for a JWS whose key loads: verify_token stops every Wycheproof
    JWS at an earlier rule (no vector carries typ card+jwt), so this is where its signature meets
    the project's rules. None when the key is refused or the JWS has no signature to check."""
    key = load(jws_key_jwk(vector))
    parts = jws_signed_parts(vector)
    if isinstance(key, Outcome) or parts is None:
        return None
    return signature_outcome(key, *parts)


@params(JWS)
def test_jws_vector(vector: Vector) -> None:
    outcome = jws_outcome(vector)
    assert_answer(vector, outcome)
    key = load(jws_key_jwk(vector))
    parts = jws_signed_parts(vector)
    if vector.result == "invalid":
        # Where the key loads, the signature check alone refuses it too: no rule is the only wall.
        if isinstance(key, VerificationKey) and parts is not None:
            assert_invalid_signature_fails(key, *parts)
        return
    if isinstance(key, Outcome):
        loader_rule(jws_key_jwk(vector), key.reason)
        return
    # Refused by verify_token only for a listed rule that is not about the signature...
    assert outcome.stage == "token", "a valid JWS vector passed every card-token rule"
    assert outcome.reason in TOKEN_RULES, f"a valid JWS vector was refused for {outcome.reason}"
    # ... while its signature passes the very check verify_token runs.
    assert parts is not None
    assert_valid_signature_passes(key, *parts)


def test_jws_keys_as_given_are_refused() -> None:
    """Why jws_key_jwk rebinds the kid: no Wycheproof JWS key loads under its own kid."""
    rules: Counter[str] = Counter()
    for jwk in {json.dumps(vector.jwk, sort_keys=True): vector.jwk for vector in JWS}.values():
        refused = load(jwk)
        assert isinstance(refused, Outcome), f"a JWS key loaded under the kid {jwk.get('kid')}"
        rules[loader_rule(jwk, refused.reason)] += 1
    assert rules[LOADER_RULES["a verification key's kid is not its thumbprint"]] > 0


# --- signed bytes: ECDSA P-256 P1363 (r || s) and RSASSA-PKCS1-v1_5, SHA-256 ------------------


def signed_bytes(vector: Vector) -> tuple[bytes, bytes]:
    return bytes.fromhex(vector.test["msg"]), bytes.fromhex(vector.test["sig"])


def signed_bytes_outcome(vector: Vector) -> Outcome:
    key = load(vector.jwk)
    if isinstance(key, Outcome):
        return key
    return signature_outcome(key, *signed_bytes(vector))


def check_signed_bytes(vector: Vector) -> None:
    assert_answer(vector, signed_bytes_outcome(vector))
    key = load(vector.jwk)
    if isinstance(key, Outcome):
        if vector.result == "valid":
            loader_rule(vector.jwk, key.reason)
    elif vector.result == "valid":
        assert_valid_signature_passes(key, *signed_bytes(vector))
    elif vector.result == "invalid":
        assert_invalid_signature_fails(key, *signed_bytes(vector))


@params(P1363)
def test_ecdsa_p1363_vector(vector: Vector) -> None:
    check_signed_bytes(vector)


@params(RSA_ALL)
def test_rsa_pkcs1_vector(vector: Vector) -> None:
    check_signed_bytes(vector)


@params(RSA[2048])
def test_rsa_2048_vector_below_the_key_floor(vector: Vector) -> None:
    """The loader refuses every 2048-bit key, so these vectors never reach verify_signature. Were
    the floor ever lowered, the signature check must still hold: the key is built here directly."""
    numbers = rsa.RSAPublicNumbers(jwk_int(vector.jwk, "e"), jwk_int(vector.jwk, "n"))
    key = VerificationKey(kid="below-the-floor", alg="RS256", public_key=numbers.public_key())
    if vector.result == "valid":
        assert signature_outcome(key, *signed_bytes(vector)) == ACCEPTED
    elif vector.result == "invalid":
        assert_invalid_signature_fails(key, *signed_bytes(vector))


# --- totals: every file read, and how each answer came about ---------------------------------

# (vector label, Wycheproof result, outcome) -> count. An exact record, so a change in the
# vectors, the loader or the verifier shows here by name. "jws-signature" is the signature check
# alone on the JWS whose key loads (jws_signature_outcome).
NOT_ES256_OR_RS256 = "loader: only ES256 and RS256 keys are loaded"
SMALL_RSA = f"loader: RSA keys under {RSA_KEY_BITS} bits are refused"
BAD_SIGNATURE, HIGH_S = "signature: bad_signature", "signature: high_s"
# vector label -> Wycheproof result -> {outcome: count}
_TALLIES: dict[str, dict[str, dict[str, int]]] = {
    "jws": {
        "valid": {NOT_ES256_OR_RS256: 36, SMALL_RSA: 8, "token: wrong_typ": 2},
        "invalid": {
            NOT_ES256_OR_RS256: 93,
            SMALL_RSA: 225,
            "token: forbidden_header": 1,
            "token: malformed": 9,
            "token: wrong_typ": 27,
        },
    },
    "jws-signature": {
        "valid": {"accepted": 1, HIGH_S: 1},
        "invalid": {BAD_SIGNATURE: 8, HIGH_S: 24},
    },
    "p1363": {"valid": {"accepted": 103, HIGH_S: 70}, "invalid": {BAD_SIGNATURE: 23, HIGH_S: 66}},
    "rsa2048": {"valid": {SMALL_RSA: 9}, "invalid": {SMALL_RSA: 249}, "acceptable": {SMALL_RSA: 1}},
    **{
        f"rsa{bits}": {
            "valid": {"accepted": accepted},
            "invalid": {BAD_SIGNATURE: 250},
            "acceptable": {BAD_SIGNATURE: 1},
        }
        for bits, accepted in [(3072, 8), (4096, 7)]
    },
}
EXPECTED_TALLIES = {
    (label, result, outcome): count
    for label, results in _TALLIES.items()
    for result, outcomes in results.items()
    for outcome, count in outcomes.items()
}


def tallies() -> Counter[tuple[str, str, str]]:
    counts: Counter[tuple[str, str, str]] = Counter()
    for vector in JWS:
        counts["jws", vector.result, str(jws_outcome(vector))] += 1
        signature = jws_signature_outcome(vector)
        if signature is not None:
            counts["jws-signature", vector.result, str(signature)] += 1
    for vector in P1363 + RSA_ALL:
        counts[vector.label, vector.result, str(signed_bytes_outcome(vector))] += 1
    return counts


def test_every_vector_is_read_and_answered_as_recorded() -> None:
    counts = tallies()
    print("\n".join(f"{count:4} {' | '.join(key)}" for key, count in sorted(counts.items())))
    for label, vectors in [("jws", JWS), ("p1363", P1363)] + [
        (f"rsa{bits}", vectors) for bits, vectors in RSA.items()
    ]:
        assert sum(n for key, n in counts.items() if key[0] == label) == len(vectors) > 0
    assert dict(counts) == EXPECTED_TALLIES
