"""ES256 against RS256: what one token costs to sign and to verify, through the layer and raw."""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable
from typing import Any

from bench.measure import Summary


def _times(call: Callable[[], Any], iterations: int) -> list[float]:
    samples = []
    for _ in range(iterations):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return samples


def run(iterations: int, keygen_rounds: int) -> dict[str, Any]:
    """Needs the layer importable (bench.warm puts it on sys.path, as Lambda's /opt/python)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding

    from card_tokens.config import TokenSettings
    from card_tokens.signing_keys import RSA_KEY_BITS, VerificationKey, generate_signing_key
    from card_tokens.tokens import sign_token, verify_token

    settings = TokenSettings(issuer="https://card-tokens.example", audience="card-tokens-payments")
    # A sealed card is ~150 bytes of ciphertext: meta_data of the size real tokens carry.
    meta_data = base64.urlsafe_b64encode(os.urandom(150)).rstrip(b"=").decode()
    results: dict[str, Any] = {"rsa_bits": RSA_KEY_BITS, "algorithms": {}}
    for alg in ("ES256", "RS256"):
        key = generate_signing_key(alg)
        public = key.private_key.public_key()
        verification = VerificationKey(kid=key.kid, alg=alg, public_key=public)
        now = int(time.time())

        def sign(key: Any = key, now: int = now) -> str:
            return sign_token(
                signing_key=key,
                settings=settings,
                jti="bench-jti-0123456789abcdef",
                meta_data=meta_data,
                now=now,
                lifetime_seconds=900,
            )

        token = sign()

        def verify(
            token: str = token, verification: VerificationKey = verification, now: int = now
        ) -> Any:
            return verify_token(token, find_key=lambda _: verification, settings=settings, now=now)

        data = token.rsplit(".", 1)[0].encode()
        if alg == "ES256":
            raw_signature = key.private_key.sign(data, ec.ECDSA(hashes.SHA256()))  # type: ignore[call-arg]

            def raw_sign(key: Any = key, data: bytes = data) -> bytes:
                return bytes(key.private_key.sign(data, ec.ECDSA(hashes.SHA256())))

            def raw_verify(
                public: Any = public, signature: bytes = raw_signature, data: bytes = data
            ) -> None:
                public.verify(signature, data, ec.ECDSA(hashes.SHA256()))

        else:
            raw_signature = key.private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())  # type: ignore[call-arg]

            def raw_sign(key: Any = key, data: bytes = data) -> bytes:
                return bytes(key.private_key.sign(data, padding.PKCS1v15(), hashes.SHA256()))

            def raw_verify(
                public: Any = public, signature: bytes = raw_signature, data: bytes = data
            ) -> None:
                public.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())

        for _ in range(min(20, iterations)):  # warm the code paths
            sign()
            verify()
        results["algorithms"][alg] = {
            "token_bytes": len(token),
            "sign_token": Summary.of(_times(sign, iterations)).as_dict(),
            "verify_token": Summary.of(_times(verify, iterations)).as_dict(),
            "raw_sign": Summary.of(_times(raw_sign, iterations)).as_dict(),
            "raw_verify": Summary.of(_times(raw_verify, iterations)).as_dict(),
            "generate_key": Summary.of(
                # RSA-3072 generation takes a good fraction of a second: few rounds.
                _times(lambda alg=alg: generate_signing_key(alg), keygen_rounds)
            ).as_dict(),
        }
    return results
