"""Adapter: the DataKeySource of card_tokens.sealing on AWS KMS."""

from __future__ import annotations

from botocore.exceptions import ClientError

from card_tokens.aws import kms_client
from card_tokens.aws_errors import error_code, unavailable_on_failure
from card_tokens.errors import InvalidToken, ServiceUnavailable
from card_tokens.sealing import DATA_KEY_BYTES, DataKey


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
        if not isinstance(plaintext, bytes) or len(plaintext) != DATA_KEY_BYTES or not encrypted:
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
        if not isinstance(plaintext, bytes) or len(plaintext) != DATA_KEY_BYTES:
            raise ServiceUnavailable("kms")  # an answer cut short: KMS sends no checksum
        return plaintext
