"""The tutorial this project started from, made runnable: the naive baseline of the bench.

Kept as the tutorial wrote it: RS256 with the private key read from a PEM file on every token,
the public key read from a file once at start and parsed by PyJWT on every decode, no caching,
KMS `Encrypt` of the whole card JSON on the client, `jwt.decode` plus KMS `Decrypt` on the
server. The only changes are the ones needed to run at all, each marked `# runnable:`:
- `meta_data` is base64 text (the tutorial puts raw bytes in the claims: `jwt.encode` fails);
- the KMS key, key files and region are parameters instead of placeholders;
- `datetime.now(UTC)` instead of the deprecated `datetime.utcnow()`;
- nothing is printed (the tutorial prints the decrypted card) and errors propagate, so a failed
  call cannot pass for a fast one.
It has no DynamoDB, no single use, no payment record and no processor: it is cheaper work, and
weaker. That is the point of comparing with it.
"""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

# `openssl genrsa` / ssh-keygen defaults: what a reader following the tutorial would have.
TUTORIAL_RSA_BITS = 2048


def write_key_files(directory: Path, bits: int = TUTORIAL_RSA_BITS) -> tuple[Path, Path]:
    """private.pem and public.pem, as the tutorial expects them on disk."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private = directory / "private.pem"
    public = directory / "public.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


class TutorialClient:
    """Step 2 of the tutorial: encrypt the card with KMS, put it in a JWT, sign with RS256."""

    def __init__(self, kms_key_id: str, private_key_path: Path, region: str) -> None:
        self.kms_client = boto3.client("kms", region_name=region)  # module level in the tutorial
        self.kms_key_id = kms_key_id  # runnable: a parameter, not 'your-kms-key-id'
        self.private_key_path = private_key_path

    def encrypt_credit_card_data(self, data: dict[str, Any]) -> bytes:
        response = self.kms_client.encrypt(
            KeyId=self.kms_key_id,
            Plaintext=json.dumps(data).encode("utf-8"),
        )
        return bytes(response["CiphertextBlob"])

    def create_jwt(self, credit_card_data: dict[str, Any]) -> str:
        encrypted_data = self.encrypt_credit_card_data(credit_card_data)
        payload = {
            "iss": "payment-service",
            "aud": "payment-gateway",
            "iat": int(time.time()),
            "exp": int((datetime.now(UTC) + timedelta(minutes=30)).timestamp()),  # runnable
            "meta_data": base64.b64encode(encrypted_data).decode("ascii"),  # runnable: text
        }
        with open(self.private_key_path) as file:  # read per call, as in the tutorial
            private_key = file.read()
        return jwt.encode(payload, private_key, algorithm="RS256")


class TutorialServer:
    """Step 3 of the tutorial: verify the JWT, decrypt meta_data with KMS."""

    def __init__(self, public_key_path: Path, region: str) -> None:
        self.kms_client = boto3.client("kms", region_name=region)
        with open(public_key_path) as file:  # read once, at start, as in the tutorial
            self.public_key = file.read()

    def decrypt_credit_card_data(self, encrypted_data: bytes) -> dict[str, Any]:
        response = self.kms_client.decrypt(CiphertextBlob=encrypted_data)
        decrypted_data = response["Plaintext"].decode("utf-8")
        document: dict[str, Any] = json.loads(decrypted_data)
        return document

    def process_jwt(self, jwt_token: str) -> dict[str, Any]:
        decoded_jwt = jwt.decode(
            jwt_token, self.public_key, algorithms=["RS256"], audience="payment-gateway"
        )
        encrypted_meta_data = base64.b64decode(decoded_jwt["meta_data"])  # runnable: text
        return self.decrypt_credit_card_data(encrypted_meta_data)
