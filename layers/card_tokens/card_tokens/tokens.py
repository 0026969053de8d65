"""Card tokens as compact JWS: signing, and verification that closes what PyJWT leaves open."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt

from card_tokens import b64url
from card_tokens.config import CLOCK_LEEWAY_SECONDS, MAX_TOKEN_LIFETIME_SECONDS, TokenSettings
from card_tokens.errors import InvalidToken
from card_tokens.merchants import MERCHANT_ID
from card_tokens.signing_keys import SigningKey, VerificationKey
from card_tokens.strict_json import JsonRejected, parse_strict_json

TOKEN_TYPE = "card+jwt"  # noqa: S105 - the JWS typ header value, not a secret
MAX_TOKEN_BYTES = 8 * 1024
REQUIRED_CLAIMS = ("iss", "aud", "iat", "nbf", "exp", "jti", "meta_data")
# Private claim (RFC 7519 §4.3): the merchant whose publishable key issued the token. Absent
# while no merchant is registered (single-caller mode); when present, exactly a merchant id.
MERCHANT_CLAIM = "mid"
# Exactly the headers we issue. Everything else (crit, b64, jku, x5u, jwk, x5c, ...) is refused:
# RFC 8725 §3.1/§3.10, and no key is ever taken from the token itself.
ALLOWED_HEADERS = frozenset({"alg", "typ", "kid"})
# Three unpadded base64url segments; '=' padding, '+', '/' and whitespace are not base64url.
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", re.ASCII)
_JTI = re.compile(r"[A-Za-z0-9_-]{22,64}", re.ASCII)
_META_DATA = re.compile(r"[A-Za-z0-9_-]{40,6000}", re.ASCII)
# Time claims beyond this are nonsense (year 2100+) and would overflow datetime arithmetic.
_MAX_TIMESTAMP = 4_102_444_800
# Order n of the P-256 group (SEC 2 v2 §2.4.2). ECDSA verification (SEC 1 v2 §4.1.4) accepts
# (r, n - s) whenever it accepts (r, s), so every ES256 token would have a twin spelling. We issue
# and accept only the "low-S" one, s <= n/2 (n is odd, so exactly one of s and n - s qualifies).
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_P256_HALF_ORDER = P256_ORDER // 2


@dataclass(frozen=True, repr=False)
class TokenClaims:
    """Verified claims. `meta_data` is sealed card data: kept out of every repr."""

    jti: str
    iat: int
    nbf: int
    exp: int
    meta_data: str
    merchant_id: str | None = None

    def __repr__(self) -> str:
        return f"TokenClaims(jti=<{len(self.jti)} chars>, exp={self.exp}, mid={self.merchant_id})"


def new_jti() -> str:
    """128 random bits (RFC 7519 §4.1.7 wants collisions negligible), base64url."""
    return b64url.encode(secrets.token_bytes(16))


def sign_token(
    *,
    signing_key: SigningKey,
    settings: TokenSettings,
    jti: str,
    meta_data: str,
    now: int,
    lifetime_seconds: int,
    merchant_id: str | None = None,
) -> str:
    if not 0 < lifetime_seconds <= MAX_TOKEN_LIFETIME_SECONDS:
        raise ValueError("token lifetime out of range")
    claims = {
        "iss": settings.issuer,
        "aud": settings.audience,
        "iat": now,
        "nbf": now,
        "exp": now + lifetime_seconds,
        "jti": jti,
        "meta_data": meta_data,
    }
    if merchant_id is not None:
        claims[MERCHANT_CLAIM] = merchant_id
    token = jwt.encode(
        claims,
        signing_key.private_key,
        algorithm=signing_key.alg,
        headers={"typ": TOKEN_TYPE, "kid": signing_key.kid},
    )
    if signing_key.alg != "ES256":
        return token
    # ES256 signatures are r || s, 32 bytes each, big-endian (RFC 7518 §3.4).
    signing_input, signature_segment = token.rsplit(".", 1)
    signature = b64url.decode(signature_segment)
    s = int.from_bytes(signature[32:], "big")
    if s <= _P256_HALF_ORDER:
        return token
    low_s = signature[:32] + (P256_ORDER - s).to_bytes(32, "big")
    return f"{signing_input}.{b64url.encode(low_s)}"


def _b64url_decode_canonical(segment: str) -> bytes:
    """Strict base64url: also refuses non-zero trailing bits, so one token has one spelling."""
    try:
        return b64url.decode_canonical(segment)
    except ValueError:
        raise InvalidToken("malformed") from None


def _is_low_s_es256(signature: bytes) -> bool:
    """Exactly r || s (RFC 7518 §3.4) with s <= n/2: the one spelling `sign_token` issues."""
    return len(signature) == 64 and int.from_bytes(signature[32:], "big") <= _P256_HALF_ORDER


def verify_signature(key: VerificationKey, signing_input: bytes, signature: bytes) -> None:
    """The signature rules of `verify_token`, alone: InvalidToken("high_s" | "bad_signature").

    ES256 takes exactly r || s with s <= n/2 (see P256_ORDER); the check itself is PyJWT's
    algorithm, as `jwt.decode` runs it, for the key's own alg (never the token's).
    """
    if key.alg == "ES256" and not _is_low_s_es256(signature):
        raise InvalidToken("high_s")
    algorithm = jwt.get_algorithm_by_name(key.alg)
    if not algorithm.verify(signing_input, algorithm.prepare_key(key.public_key), signature):
        raise InvalidToken("bad_signature")


def _decode_json_segment(segment: str) -> dict[str, Any]:
    try:
        document = parse_strict_json(_b64url_decode_canonical(segment))
    except JsonRejected as rejected:
        raise InvalidToken(
            "duplicate_member" if rejected.reason == "duplicate_member" else "malformed"
        ) from None
    if not isinstance(document, dict):
        raise InvalidToken("malformed")
    return document


def _timestamp(claims: dict[str, Any], name: str) -> int:
    value = claims.get(name)
    # JSON integers only: not "1700000000", not 1.7e9, not true (RFC 7519 NumericDate, strictly).
    if type(value) is not int or not 0 <= value <= _MAX_TIMESTAMP:
        raise InvalidToken("bad_time_claim")
    return value


_PYJWT_REASONS: tuple[tuple[type[Exception], str], ...] = (
    (jwt.InvalidAudienceError, "wrong_audience"),
    (jwt.InvalidIssuerError, "wrong_issuer"),
    (jwt.InvalidSignatureError, "bad_signature"),
    (jwt.MissingRequiredClaimError, "missing_claim"),
    (jwt.InvalidAlgorithmError, "alg_not_allowed"),
)


def verify_token(
    token: object,
    *,
    find_key: Callable[[str], VerificationKey | None],
    settings: TokenSettings,
    now: int,
) -> TokenClaims:
    """Verified claims, or InvalidToken with a reason for logs. The contract: docs/design.md."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_BYTES:
        raise InvalidToken("malformed")
    if not _COMPACT_JWS.fullmatch(token):
        raise InvalidToken("malformed")
    header_segment, payload_segment, signature_segment = token.split(".")
    signature = _b64url_decode_canonical(signature_segment)
    header = _decode_json_segment(header_segment)
    if not header.keys() <= ALLOWED_HEADERS:
        raise InvalidToken("forbidden_header")
    if header.get("typ") != TOKEN_TYPE:
        raise InvalidToken("wrong_typ")
    kid = header.get("kid")
    key = find_key(kid) if isinstance(kid, str) else None
    if key is None:
        raise InvalidToken("unknown_kid")
    # The kid decides the algorithm; the header's alg must agree with it (RFC 8725 §3.1).
    if header.get("alg") != key.alg:
        raise InvalidToken("alg_mismatch")
    # The alg decides: only ES256 has the (r, n - s) twin (see P256_ORDER).
    if key.alg == "ES256" and not _is_low_s_es256(signature):
        raise InvalidToken("high_s")
    # Parsed here for duplicate members, which PyJWT's json.loads would silently accept.
    claims = _decode_json_segment(payload_segment)
    # The one signature check: PyJWT's algorithm for the kid's alg, as jwt.decode would run it,
    # and the function the Wycheproof vectors exercise (tests/security/test_wycheproof.py).
    verify_signature(key, f"{header_segment}.{payload_segment}".encode("ascii"), signature)
    try:
        jwt.decode(
            token,
            key.public_key,
            algorithms=[key.alg],
            audience=settings.audience,
            issuer=settings.issuer,
            leeway=CLOCK_LEEWAY_SECONDS,
            # The signature is verified above; the claim checks stay on explicitly (PyJWT turns
            # them off by default without a signature check). Times are checked below against
            # the injected clock, as exact JSON integers.
            options={
                "verify_signature": False,
                "verify_aud": True,
                "verify_iss": True,
                "require": list(REQUIRED_CLAIMS),
                "strict_aud": True,
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
            },
        )
    except jwt.InvalidTokenError as error:
        reason = next((r for kind, r in _PYJWT_REASONS if isinstance(error, kind)), "rejected")
        raise InvalidToken(reason) from None
    return _check_claims(claims, settings, now)


def _check_claims(claims: dict[str, Any], settings: TokenSettings, now: int) -> TokenClaims:
    """What PyJWT does not check: exact types, exact iss/aud, lifetime, jti and meta_data shape."""
    if any(name not in claims for name in REQUIRED_CLAIMS):
        raise InvalidToken("missing_claim")
    iat, nbf, exp = (_timestamp(claims, name) for name in ("iat", "nbf", "exp"))
    if type(claims["iss"]) is not str or claims["iss"] != settings.issuer:
        raise InvalidToken("wrong_issuer")
    if type(claims["aud"]) is not str or claims["aud"] != settings.audience:
        raise InvalidToken("wrong_audience")
    if exp <= now - CLOCK_LEEWAY_SECONDS:
        raise InvalidToken("expired")
    if nbf > now + CLOCK_LEEWAY_SECONDS or iat > now + CLOCK_LEEWAY_SECONDS:
        raise InvalidToken("not_yet_valid")
    if not iat <= nbf < exp or exp - iat > MAX_TOKEN_LIFETIME_SECONDS:
        raise InvalidToken("bad_lifetime")
    jti, meta_data = claims["jti"], claims["meta_data"]
    if type(jti) is not str or not _JTI.fullmatch(jti):
        raise InvalidToken("bad_jti")
    if type(meta_data) is not str or not _META_DATA.fullmatch(meta_data):
        raise InvalidToken("bad_meta_data")
    merchant_id = claims.get(MERCHANT_CLAIM)
    if MERCHANT_CLAIM in claims and (
        type(merchant_id) is not str or not MERCHANT_ID.fullmatch(merchant_id)
    ):
        raise InvalidToken("bad_merchant")
    return TokenClaims(
        jti=jti, iat=iat, nbf=nbf, exp=exp, meta_data=meta_data, merchant_id=merchant_id
    )
