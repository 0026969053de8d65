"""Secrets Manager rotation of the signing key, in the four steps, each idempotent per token."""

from __future__ import annotations

import json
import time
import uuid
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from card_tokens.aws_errors import error_code
from card_tokens.config import RotationSettings
from card_tokens.observability import logger
from card_tokens.signing_keys import (
    KeyMaterialError,
    SigningKey,
    VerificationKeyRing,
    generate_signing_key,
    signing_key_from_secret,
)
from card_tokens.tokens import new_jti, sign_token, verify_token

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

_PROBE_META_DATA = "probe-" + "A" * 40  # shaped like sealed data, holds nothing


class RotationError(RuntimeError):
    """A rotation step cannot go on; Secrets Manager retries and AWSCURRENT stays as it was."""


class SigningKeyRotation:
    def __init__(self, client: SecretsManagerClient, settings: RotationSettings) -> None:
        self._sm = client
        self._settings = settings

    def run(self, step: str, secret_id: str, token: str) -> None:
        steps = {
            "createSecret": self._create_secret,
            "setSecret": self._set_secret,
            "testSecret": self._test_secret,
            "finishSecret": self._finish_secret,
        }
        if step not in steps:
            raise RotationError(f"unknown rotation step {step!r}")
        described = self._sm.describe_secret(SecretId=secret_id)
        if self._settings.signing_key_secret_id not in (described["ARN"], described["Name"]):
            raise RotationError("this function rotates the signing-key secret only")
        stages = described.get("VersionIdsToStages", {})
        # Done and cleaned up. A version that is both current and pending is not done: the
        # first value of an empty secret becomes AWSCURRENT as it is put, before its public key
        # is published, and every step is safe to redo.
        if "AWSCURRENT" in stages.get(token, []) and "AWSPENDING" not in stages[token]:
            logger.info("rotation step already complete", extra={"step": step})
            return
        if step != "createSecret" and "AWSPENDING" not in stages.get(token, []):
            raise RotationError("the version is not pending for rotation")
        logger.info("rotation step", extra={"step": step})
        steps[step](secret_id, token)

    def _pending_key(self, secret_id: str, token: str) -> SigningKey:
        value = self._sm.get_secret_value(
            SecretId=secret_id, VersionId=token, VersionStage="AWSPENDING"
        )
        return signing_key_from_secret(json.loads(value["SecretString"]))

    def _key_at_stage(self, secret_id: str, stage: str) -> SigningKey | None:
        try:
            value = self._sm.get_secret_value(SecretId=secret_id, VersionStage=stage)
            return signing_key_from_secret(json.loads(value["SecretString"]))
        except ClientError as error:
            if error_code(error) == "ResourceNotFoundException":
                return None
            raise
        except (KeyMaterialError, ValueError):
            return None  # the placeholder before the first rotation

    def _create_secret(self, secret_id: str, token: str) -> None:
        try:
            self._pending_key(secret_id, token)
            return  # created by an earlier attempt with this token
        except ClientError as error:
            if error_code(error) != "ResourceNotFoundException":
                raise
        key = generate_signing_key(self._settings.algorithm)
        self._sm.put_secret_value(
            SecretId=secret_id,
            ClientRequestToken=token,
            SecretString=key.to_secret_string(),
            VersionStages=["AWSPENDING"],
        )
        logger.info("pending signing key created", extra={"kid": key.kid, "alg": key.alg})

    def _set_secret(self, secret_id: str, token: str) -> None:
        pending = self._pending_key(secret_id, token)
        keep = [pending, *self._live_keys(secret_id)]
        self._publish(keep, request_token=str(uuid.uuid5(uuid.UUID(token), "setSecret")))

    def _test_secret(self, secret_id: str, token: str) -> None:
        pending = self._pending_key(secret_id, token)
        published = self._sm.get_secret_value(SecretId=self._settings.verification_keys_secret_id)
        ring = VerificationKeyRing.from_jwks(json.loads(published["SecretString"]))
        probe = sign_token(
            signing_key=pending,
            settings=self._settings.token,
            jti=new_jti(),
            meta_data=_PROBE_META_DATA,
            now=int(time.time()),
            lifetime_seconds=60,
        )
        try:
            verify_token(
                probe, find_key=ring.get, settings=self._settings.token, now=int(time.time())
            )
        except Exception as error:
            raise RotationError("the pending key's probe token does not verify") from error

    def _finish_secret(self, secret_id: str, token: str) -> None:
        stages = self._sm.describe_secret(SecretId=secret_id)["VersionIdsToStages"]
        current = next((v for v, s in stages.items() if "AWSCURRENT" in s), None)
        if current != token:
            move: dict[str, Any] = {"MoveToVersionId": token}
            if current is not None:
                move["RemoveFromVersionId"] = current
            self._sm.update_secret_version_stage(
                SecretId=secret_id, VersionStage="AWSCURRENT", **move
            )
        # Now current = the new key, previous = the retired one; anything older is dropped.
        self._publish(
            self._live_keys(secret_id),
            request_token=str(uuid.uuid5(uuid.UUID(token), "finishSecret")),
        )
        logger.info("signing key rotated")

    def _live_keys(self, secret_id: str) -> list[SigningKey]:
        keys = [self._key_at_stage(secret_id, stage) for stage in ("AWSCURRENT", "AWSPREVIOUS")]
        return [key for key in keys if key is not None]

    def _publish(self, keys: list[SigningKey], *, request_token: str) -> None:
        unique = {key.kid: key.public_jwk() for key in keys}
        document = json.dumps({"keys": list(unique.values())}, sort_keys=True)
        try:
            self._sm.put_secret_value(
                SecretId=self._settings.verification_keys_secret_id,
                ClientRequestToken=request_token,
                SecretString=document,
            )
        except ClientError as error:
            # Same token, same content: an earlier attempt of this step already published it.
            if error_code(error) != "ResourceExistsException":
                raise
