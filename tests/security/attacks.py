"""Forging tokens with the stack's real signing key, so only the verifier's own checks stop them."""

from __future__ import annotations

import base64
import json
from typing import Any

import boto3
import jwt

from card_tokens.signing_keys import SigningKey, signing_key_from_secret
from local.provision import LocalStack


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


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
    return f"{signing_input}.{b64(signature)}"
