from __future__ import annotations

import base64
import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from card_tokens.config import TokenSettings
from card_tokens.errors import InvalidToken
from card_tokens.tokens import new_jti, sign_token, verify_token
from tests.token_shapes import MALFORMED_SERIALIZATIONS

from .keys import ring_of, signing_key

SETTINGS = TokenSettings(issuer="https://issuer.example", audience="payments")
NOW = 1_790_000_000
META = "A" * 64
# The P-256 group order n (SEC 2 v2 §2.4.2), written out here rather than imported from the code
# under test, so a wrong constant there cannot agree with itself.
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def issue(alg: str = "ES256", **overrides: Any) -> str:
    return sign_token(
        signing_key=signing_key(alg),
        settings=SETTINGS,
        jti=overrides.pop("jti", new_jti()),
        meta_data=META,
        now=NOW,
        lifetime_seconds=900,
    )


def verify(token: object, *keys: Any, now: int = NOW) -> Any:
    keys = keys or (signing_key("ES256"),)
    return verify_token(token, find_key=ring_of(*keys), settings=SETTINGS, now=now)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def r_and_s(signature: bytes) -> tuple[int, int]:
    """An ES256 signature is r || s, 32 bytes each, big-endian (RFC 7518 §3.4)."""
    return int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")


def s_flipped(signature: bytes) -> bytes:
    """The ECDSA twin (r, n - s): as valid as (r, s), and the other one of the pair is low-S."""
    r, s = r_and_s(signature)
    return r.to_bytes(32, "big") + (P256_ORDER - s).to_bytes(32, "big")


def forge(header: dict[str, Any], claims: dict[str, Any] | str, alg: str = "ES256") -> str:
    """A token signed by the real key, with any header and payload: only our checks stop it."""
    payload = claims if isinstance(claims, str) else json.dumps(claims)
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(payload.encode())}"
    algorithm = jwt.get_algorithm_by_name(alg)
    signature = algorithm.sign(signing_input.encode(), signing_key(alg).private_key)
    if alg == "ES256" and r_and_s(signature)[1] > P256_ORDER // 2:
        signature = s_flipped(signature)  # the verifier accepts only low-S, as sign_token issues
    return f"{signing_input}.{b64(signature)}"


def good_header(alg: str = "ES256") -> dict[str, Any]:
    return {"alg": alg, "typ": "card+jwt", "kid": signing_key(alg).kid}


def good_claims(**overrides: Any) -> dict[str, Any]:
    claims = {
        "iss": SETTINGS.issuer,
        "aud": SETTINGS.audience,
        "iat": NOW,
        "nbf": NOW,
        "exp": NOW + 900,
        "jti": new_jti(),
        "meta_data": META,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not ...}


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
def test_an_issued_token_verifies_and_carries_its_claims(alg: str) -> None:
    token = issue(alg, jti="j" * 22)
    claims = verify(token, signing_key(alg))
    assert (claims.jti, claims.exp, claims.meta_data) == ("j" * 22, NOW + 900, META)
    header = jwt.get_unverified_header(token)
    assert header == {"alg": alg, "typ": "card+jwt", "kid": signing_key(alg).kid}


def test_a_merchant_s_token_names_it_and_a_single_caller_token_names_none() -> None:
    merchant_id = "mer_" + "k" * 16
    token = sign_token(
        signing_key=signing_key("ES256"),
        settings=SETTINGS,
        jti=new_jti(),
        meta_data=META,
        now=NOW,
        lifetime_seconds=900,
        merchant_id=merchant_id,
    )
    assert json.loads(unb64(token.split(".")[1]))["mid"] == merchant_id
    assert verify(token).merchant_id == merchant_id
    assert verify(issue()).merchant_id is None
    assert "mid" not in json.loads(unb64(issue().split(".")[1]))
    assert verify(forge(good_header(), good_claims(mid=merchant_id))).merchant_id == merchant_id


def test_the_forge_helper_makes_tokens_that_verify() -> None:
    # Guards the rejection tests below: they fail for their one defect, not for the forgery.
    verify(forge(good_header(), good_claims()))


def rejected(token: object, reason: str | None = None, now: int = NOW) -> None:
    with pytest.raises(InvalidToken) as raised:
        verify(token, now=now)
    if reason:
        assert raised.value.reason == reason
    assert raised.value.status == 401


@pytest.mark.parametrize("name", ["jku", "x5u", "jwk", "x5c", "crit", "b64", "cty"])
def test_headers_we_never_issue_are_refused(name: str) -> None:
    rejected(forge({**good_header(), name: "x"}, good_claims()), "forbidden_header")


@pytest.mark.parametrize("typ", [None, "JWT", "card+JWT", "application/card+jwt", ""])
def test_a_wrong_or_missing_typ_is_refused(typ: str | None) -> None:
    header = {k: v for k, v in good_header().items() if k != "typ"}
    if typ is not None:
        header["typ"] = typ
    rejected(forge(header, good_claims()), "wrong_typ")


@pytest.mark.parametrize(
    "kid", ["unknown", "../../etc/passwd", "' OR 1=1 --", "a\x00b", "k" * 5000, 7]
)
def test_unknown_kids_are_refused(kid: object) -> None:
    rejected(forge({**good_header(), "kid": kid}, good_claims()))


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "HS256", "RS256", "ES384"])
def test_an_alg_other_than_the_kids_own_is_refused(alg: str) -> None:
    rejected(forge({**good_header(), "alg": alg}, good_claims()), "alg_mismatch")


def test_hs256_signed_with_the_public_key_is_refused() -> None:
    public_pem = (
        signing_key()
        .private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    signing_input = f"{b64(json.dumps({**good_header(), 'alg': 'HS256'}).encode())}." + b64(
        json.dumps(good_claims()).encode()
    )
    import hashlib
    import hmac

    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    rejected(f"{signing_input}.{b64(signature)}", "alg_mismatch")


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        (good_claims(exp=NOW - 31), "expired"),
        (good_claims(nbf=NOW + 120, exp=NOW + 900), "not_yet_valid"),
        (good_claims(iat=NOW + 120, nbf=NOW + 120), "not_yet_valid"),
        (good_claims(exp=str(NOW + 900)), "bad_time_claim"),
        (good_claims(exp=float(NOW + 900)), "bad_time_claim"),
        (good_claims(exp=True), "bad_time_claim"),
        (good_claims(exp=10**30), "bad_time_claim"),
        (good_claims(exp=NOW + 3601), "bad_lifetime"),
        (good_claims(aud=[SETTINGS.audience]), None),
        (good_claims(aud="payments-x"), "wrong_audience"),
        (good_claims(iss=SETTINGS.issuer + "/"), "wrong_issuer"),
        (good_claims(iss="https://issuer.example.evil"), "wrong_issuer"),
        (good_claims(iss="issuer.example"), "wrong_issuer"),
        (good_claims(jti="short"), "bad_jti"),
        (good_claims(jti=...), "missing_claim"),
        (good_claims(meta_data=...), "missing_claim"),
        (good_claims(meta_data=""), "bad_meta_data"),
        (good_claims(meta_data={"a": 1}), "bad_meta_data"),
        (good_claims(mid="mer_short"), "bad_merchant"),
        (good_claims(mid="MER_" + "A" * 16), "bad_merchant"),
        (good_claims(mid=None), "bad_merchant"),
        (good_claims(mid=["mer_" + "a" * 16]), "bad_merchant"),
        (good_claims(mid=""), "bad_merchant"),
    ],
)
def test_claims_outside_the_contract_are_refused(
    claims: dict[str, Any], reason: str | None
) -> None:
    rejected(forge(good_header(), claims), reason)


def test_duplicate_claims_are_refused() -> None:
    payload = json.dumps(good_claims())[:-1] + f', "exp": {NOW + 3000}}}'
    rejected(forge(good_header(), payload), "duplicate_member")


@pytest.mark.parametrize("payload", ["[]", '"text"', "1", "null"])
def test_a_payload_that_is_not_an_object_is_refused(payload: str) -> None:
    rejected(forge(good_header(), payload), "malformed")


def test_tampering_with_any_segment_is_refused() -> None:
    token = issue()
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["meta_data"] = "B" * 64
    rejected(f"{header}.{b64(json.dumps(claims).encode())}.{signature}", "bad_signature")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    rejected(f"{header}.{payload}.{flipped}")


@pytest.mark.parametrize("shape", MALFORMED_SERIALIZATIONS.values(), ids=MALFORMED_SERIALIZATIONS)
def test_malformed_serializations_are_refused(shape: Any) -> None:
    rejected(shape(issue()), "malformed")


def test_a_signature_segment_with_non_canonical_trailing_bits_is_refused() -> None:
    token = issue()
    header, payload, signature = token.split(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    # ES256 signatures are 64 bytes: 86 chars, the last one carrying 2 unused bits.
    last = alphabet.index(signature[-1])
    twin = alphabet[last ^ 1]
    rejected(f"{header}.{payload}.{signature[:-1]}{twin}", "malformed")


@pytest.mark.parametrize("token", [None, 42, b"a.b.c", ["a.b.c"]])
def test_a_token_that_is_not_a_string_is_refused(token: object) -> None:
    rejected(token, "malformed")


def test_a_token_signed_by_another_key_claiming_a_known_kid_is_refused() -> None:
    other = signing_key("ES256", which=1)
    assert other.kid != signing_key().kid
    header = {"typ": "card+jwt", "kid": signing_key().kid}
    forged = jwt.encode(good_claims(), other.private_key, algorithm="ES256", headers=header)
    signing_input, signature = forged.rsplit(".", 1)
    if r_and_s(unb64(signature))[1] > P256_ORDER // 2:  # reach the signature check itself
        forged = f"{signing_input}.{b64(s_flipped(unb64(signature)))}"
    rejected(forged, "bad_signature")


def test_sign_token_refuses_a_lifetime_over_the_maximum() -> None:
    with pytest.raises(ValueError, match="lifetime"):
        sign_token(
            signing_key=signing_key(),
            settings=SETTINGS,
            jti=new_jti(),
            meta_data=META,
            now=NOW,
            lifetime_seconds=3601,
        )


def test_jtis_carry_at_least_128_random_bits() -> None:
    jtis = {new_jti() for _ in range(1000)}
    assert len(jtis) == 1000
    assert all(len(base64.urlsafe_b64decode(j + "==")) == 16 for j in jtis)


# --- ECDSA malleability: (r, n - s) verifies whenever (r, s) does; we issue and accept only low-S


def test_es256_signatures_are_always_low_s() -> None:
    # ECDSA's nonce makes s random: without normalization about half would be high.
    for _ in range(200):
        signature = unb64(issue().split(".")[2])
        assert len(signature) == 64
        assert r_and_s(signature)[1] <= P256_ORDER // 2


def test_the_high_s_twin_of_a_token_is_refused() -> None:
    token = issue()
    header, payload, signature = token.split(".")
    twin = s_flipped(unb64(signature))
    # The twin is a genuine ECDSA signature: only the low-S rule can refuse it.
    public_key = signing_key().private_key.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    public_key.verify(
        encode_dss_signature(*r_and_s(twin)),
        f"{header}.{payload}".encode(),
        ec.ECDSA(hashes.SHA256()),
    )
    rejected(f"{header}.{payload}.{b64(twin)}", "high_s")
    verify(token)


# Last case: r || 0x00 || s, the same low s zero-padded to 33 bytes; only the length stops it.
@pytest.mark.parametrize(
    "reshape",
    [lambda sig: sig[:63], lambda sig: sig + b"\x00", lambda sig: sig[:32] + b"\x00" + sig[32:]],
    ids=["63-bytes", "65-bytes-trailing-zero", "65-bytes-s-zero-padded"],
)
def test_an_es256_signature_that_is_not_64_bytes_is_refused(reshape: Any) -> None:
    header, payload, signature = issue().split(".")
    rejected(f"{header}.{payload}.{b64(reshape(unb64(signature)))}", "high_s")


def test_rs256_tokens_are_untouched() -> None:
    # RSASSA-PKCS1-v1_5 is deterministic: sign_token must return exactly what PyJWT signs.
    key, jti = signing_key("RS256"), new_jti()
    token = sign_token(
        signing_key=key, settings=SETTINGS, jti=jti, meta_data=META, now=NOW, lifetime_seconds=900
    )
    header = {"typ": "card+jwt", "kid": key.kid}
    expected = jwt.encode(good_claims(jti=jti), key.private_key, algorithm="RS256", headers=header)
    assert token == expected
    assert len(unb64(token.split(".")[2])) == 384  # RSA-3072: no 64-byte r || s rule applies
    verify(token, key)
