"""Envelope sealing of card data: a fresh KMS data key per token, AES-256-GCM, bound context."""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass
from typing import Any, Protocol

from botocore.exceptions import ClientError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from card_tokens.aws import kms_client
from card_tokens.aws_errors import error_code, unavailable_on_failure
from card_tokens.cards import Card
from card_tokens.errors import InvalidToken, ServiceUnavailable

PURPOSE = "card-token"
_FORMAT_VERSION = b"\x01"
_NONCE_BYTES = 12
_DATA_KEY_BYTES = 32  # AES_256


def encryption_context(*, jti: str, audience: str) -> dict[str, str]:
    """Bound by KMS to the data key and by AES-GCM (as AAD) to the ciphertext."""
    return {"purpose": PURPOSE, "jti": jti, "aud": audience}


def _aad(context: dict[str, str]) -> bytes:
    return json.dumps(context, sort_keys=True, separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True, repr=False)
class DataKey:
    plaintext: bytes
    encrypted: bytes

    def __repr__(self) -> str:
        return "DataKey(<redacted>)"


class DataKeySource(Protocol):
    def generate(self, context: dict[str, str]) -> DataKey: ...

    def decrypt(self, encrypted: bytes, context: dict[str, str]) -> bytes: ...


class KmsDataKeys:
    """DataKeySource on AWS KMS (GenerateDataKey / Decrypt with the encryption context)."""

    def __init__(self, key_id: str) -> None:
        self._key_id = key_id

    def generate(self, context: dict[str, str]) -> DataKey:
        with unavailable_on_failure("kms", "GenerateDataKey"):
            response = kms_client().generate_data_key(
                KeyId=self._key_id, KeySpec="AES_256", EncryptionContext=context
            )
        plaintext, encrypted = response.get("Plaintext"), response.get("CiphertextBlob")
        if not isinstance(plaintext, bytes) or len(plaintext) != _DATA_KEY_BYTES or not encrypted:
            raise ServiceUnavailable("kms")  # an answer cut short: KMS sends no checksum
        return DataKey(plaintext=plaintext, encrypted=encrypted)

    def decrypt(self, encrypted: bytes, context: dict[str, str]) -> bytes:
        with unavailable_on_failure("kms", "Decrypt"):
            try:
                response = kms_client().decrypt(
                    CiphertextBlob=encrypted, KeyId=self._key_id, EncryptionContext=context
                )
            except ClientError as error:
                # A data key that does not open under this key and context is a bad token, not
                # an outage; InvalidToken passes through unavailable_on_failure untouched.
                if error_code(error) in ("InvalidCiphertextException", "IncorrectKeyException"):
                    raise InvalidToken("data_key_mismatch") from None
                raise
        plaintext = response.get("Plaintext")
        if not isinstance(plaintext, bytes) or len(plaintext) != _DATA_KEY_BYTES:
            raise ServiceUnavailable("kms")  # an answer cut short: KMS sends no checksum
        return plaintext


@dataclass(frozen=True, repr=False)
class SealedCard:
    meta_data: str
    encrypted_data_key: bytes

    def __repr__(self) -> str:
        return "SealedCard(<redacted>)"


def _card_document(card: Card) -> bytes:
    document: dict[str, Any] = {
        "pan": card.pan,
        "exp_month": card.exp_month,
        "exp_year": card.exp_year,
        "cvv": card.cvv,
        "brand": card.brand,
        "name": card.cardholder_name,
    }
    return json.dumps(document, separators=(",", ":")).encode("utf-8")


def seal_card(card: Card, *, context: dict[str, str], data_keys: DataKeySource) -> SealedCard:
    data_key = data_keys.generate(context)
    nonce = os.urandom(_NONCE_BYTES)
    ciphertext = AESGCM(data_key.plaintext).encrypt(nonce, _card_document(card), _aad(context))
    blob = _FORMAT_VERSION + nonce + ciphertext
    meta_data = base64.urlsafe_b64encode(blob).rstrip(b"=").decode("ascii")
    return SealedCard(meta_data=meta_data, encrypted_data_key=data_key.encrypted)


def open_card(
    meta_data: str,
    *,
    encrypted_data_key: bytes,
    context: dict[str, str],
    data_keys: DataKeySource,
) -> Card:
    """The card sealed in meta_data; InvalidToken if anything does not match its context."""
    try:
        blob = base64.urlsafe_b64decode(meta_data + "=" * (-len(meta_data) % 4))
    except (binascii.Error, ValueError):
        raise InvalidToken("bad_meta_data") from None
    if len(blob) < 1 + _NONCE_BYTES + 16 or blob[:1] != _FORMAT_VERSION:
        raise InvalidToken("bad_meta_data")
    key = data_keys.decrypt(encrypted_data_key, context)
    nonce, ciphertext = blob[1 : 1 + _NONCE_BYTES], blob[1 + _NONCE_BYTES :]
    try:
        plaintext = AESGCM(key).decrypt(nonce, ciphertext, _aad(context))
    except (InvalidTag, ValueError):
        raise InvalidToken("bad_meta_data") from None
    try:
        document = json.loads(plaintext)
        return Card(
            pan=document["pan"],
            exp_month=document["exp_month"],
            exp_year=document["exp_year"],
            cvv=document["cvv"],
            brand=document["brand"],
            cardholder_name=document["name"],
        )
    except (ValueError, KeyError, TypeError):
        raise InvalidToken("bad_meta_data") from None
