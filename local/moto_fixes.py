"""Corrections to moto where it differs from AWS in ways the service depends on."""

from __future__ import annotations

import functools
import threading
from typing import Any

from moto.dynamodb.responses import DynamoHandler
from moto.secretsmanager.models import FakeSecret, SecretsManagerBackend

_APPLIED_MARK = "_card_tokens_fixed"
# One DynamoDB call at a time across the emulator's request threads (see _fix_dynamodb).
_DYNAMODB_LOCK = threading.RLock()


def apply() -> bool:
    """Patch moto in this process; idempotent, True if this call patched it.

    Covers moto.mock_aws and a moto server running in this process.
    The DynamoDB corrections are described in _fix_dynamodb.

    moto 5.2.5: `UpdateSecretVersionStage` moves the AWSCURRENT label but leaves the secret's
    default version where it was, so `GetSecretValue` without a VersionStage (what Powertools'
    SecretsProvider sends) keeps returning the value from before the rotation. In AWS the
    default is AWSCURRENT, wherever it points.
    """
    original = SecretsManagerBackend.update_secret_version_stage
    if getattr(original, _APPLIED_MARK, False):
        return False

    @functools.wraps(original)
    def update_secret_version_stage(
        self: SecretsManagerBackend,
        secret_id: str,
        version_stage: str,
        remove_from_version_id: str,
        move_to_version_id: str,
    ) -> Any:
        result = original(
            self, secret_id, version_stage, remove_from_version_id, move_to_version_id
        )
        secret = self.secrets[secret_id]
        if version_stage == "AWSCURRENT" and move_to_version_id and isinstance(secret, FakeSecret):
            secret.set_default_version_id(move_to_version_id)
        return result

    setattr(update_secret_version_stage, _APPLIED_MARK, True)
    SecretsManagerBackend.update_secret_version_stage = update_secret_version_stage  # type: ignore[method-assign]
    _fix_dynamodb()
    return True


def _fix_dynamodb() -> None:
    """Two DynamoDB behaviours the payment path relies on, which moto 5.2.5 lacks.

    - Atomic calls. In AWS a conditional write (and a whole transaction) is atomic; moto's
      server runs each request in its own thread and checks a condition, then writes, with no
      lock between. Racing requests could then both pass one condition: an emulator race, not
      the service's. One lock around each call makes every call atomic, as in AWS.
    - GetItem's ConsumedCapacity. AWS returns it whenever ReturnConsumedCapacity asks for it,
      also when there is no item; the service uses it to tell "no item" from an answer that
      was cut short. moto never returns it.
    """
    original_call = DynamoHandler.call_action
    original_get = DynamoHandler.get_item

    @functools.wraps(original_call)
    def call_action(self: DynamoHandler) -> Any:
        with _DYNAMODB_LOCK:
            return original_call(self)

    @functools.wraps(original_get)
    def get_item(self: DynamoHandler) -> Any:
        result = original_get(self)
        answer: dict[str, Any] = result.result  # type: ignore[assignment]
        if self.body.get("ReturnConsumedCapacity") in ("TOTAL", "INDEXES"):
            answer["ConsumedCapacity"] = {
                "TableName": self.body["TableName"],
                "CapacityUnits": 1.0 if self.body.get("ConsistentRead") else 0.5,
            }
        return result

    setattr(call_action, _APPLIED_MARK, True)
    setattr(get_item, _APPLIED_MARK, True)
    DynamoHandler.call_action = call_action  # type: ignore[method-assign]
    DynamoHandler.get_item = get_item  # type: ignore[method-assign]


def remove() -> None:
    """Undo `apply` (for tests that must leave moto as they found it)."""
    current = SecretsManagerBackend.update_secret_version_stage
    if getattr(current, _APPLIED_MARK, False):
        SecretsManagerBackend.update_secret_version_stage = current.__wrapped__  # type: ignore[attr-defined, method-assign]
    for name in ("call_action", "get_item"):
        patched = getattr(DynamoHandler, name)
        if getattr(patched, _APPLIED_MARK, False):
            setattr(DynamoHandler, name, patched.__wrapped__)
