"""The sealed-card format, pure: a fresh data key per token, AES-256-GCM, bound context.

meta_data = base64url(version byte || 12-byte nonce || AES-GCM ciphertext and tag), with the
encryption context as AAD. The data keys come from a DataKeySource; on AWS that is KMS
(card_tokens.kms_data_keys), the only part of sealing that does I/O."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from card_tokens import b64url
from card_tokens.cards import Card
from card_tokens.errors import InvalidToken

PURPOSE = "card-token"
_FORMAT_VERSION = b"\x01"
_NONCE_BYTES = 12
DATA_KEY_BYTES = 32  # AES_256


def encryption_context(*, jti: str, audience: str) -> dict[str, str]:
    """Bound by KMS to the data key and by AES-GCM (as AAD) to the ciphertext."""
    return {"purpose": PURPOSE, "jti": jti, "aud": audience}


def _aad(context: dict[str, str]) -> bytes:
    return json.dumps(context, sort_keys=True, separators=(",", ":")).encode("utf-8")


class Redacted:
    """A repr that shows the type only: what these hold is key or card material."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(<redacted>)"


@dataclass(frozen=True, repr=False)
class DataKey(Redacted):
    plaintext: bytes
    encrypted: bytes


class DataKeySource(Protocol):
    def generate(self, context: dict[str, str]) -> DataKey: ...

    def decrypt(self, encrypted: bytes, context: dict[str, str]) -> bytes: ...


@dataclass(frozen=True, repr=False)
class SealedCard(Redacted):
    meta_data: str
    encrypted_data_key: bytes


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
    return SealedCard(meta_data=b64url.encode(blob), encrypted_data_key=data_key.encrypted)


def open_card(
    meta_data: str,
    *,
    encrypted_data_key: bytes,
    context: dict[str, str],
    data_keys: DataKeySource,
) -> Card:
    """The card sealed in meta_data; InvalidToken if anything does not match its context."""
    try:
        blob = b64url.decode(meta_data)
    except ValueError:
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
