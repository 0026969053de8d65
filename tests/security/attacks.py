"""Forging tokens with the stack's real signing key, so only the verifier's own checks stop them."""

from __future__ import annotations

import base64
import json
from typing import Any

import boto3
import jwt

from card_tokens.signing_keys import SigningKey, signing_key_from_secret
from local.provision import LocalStack

# The P-256 group order n (SEC 2 v2 §2.4.2). (r, s) and (r, n - s) are both valid ECDSA signatures.
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def s_flipped(signature: bytes) -> bytes:
    """The ECDSA twin of an ES256 signature r || s (RFC 7518 §3.4): r || n - s."""
    s = int.from_bytes(signature[32:], "big")
    return signature[:32] + (P256_ORDER - s).to_bytes(32, "big")


def is_high_s(signature: bytes) -> bool:
    return int.from_bytes(signature[32:], "big") > P256_ORDER // 2


def current_signing_key(stack: LocalStack) -> SigningKey:
    value = boto3.client("secretsmanager").get_secret_value(
        SecretId=stack.environment["SIGNING_KEY_SECRET_ID"], VersionStage="AWSCURRENT"
    )
    return signing_key_from_secret(json.loads(value["SecretString"]))


def parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header, payload, _ = token.split(".")
    return json.loads(unb64(header)), json.loads(unb64(payload))


def sign_raw(key: SigningKey, header: dict[str, Any] | str, payload: dict[str, Any] | str) -> str:
    """Sign any header/payload text with the real key (the verifier sees a valid signature)."""
    header_text = header if isinstance(header, str) else json.dumps(header)
    payload_text = payload if isinstance(payload, str) else json.dumps(payload)
    signing_input = f"{b64(header_text.encode())}.{b64(payload_text.encode())}"
    signature = jwt.get_algorithm_by_name(key.alg).sign(signing_input.encode(), key.private_key)
    if key.alg == "ES256" and is_high_s(signature):
        signature = s_flipped(signature)  # the low-S spelling, the only one the verifier accepts
    return f"{signing_input}.{b64(signature)}"
