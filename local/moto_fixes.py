"""Corrections to moto where it differs from AWS in ways the service depends on."""

from __future__ import annotations

import functools
from typing import Any

from moto.secretsmanager.models import FakeSecret, SecretsManagerBackend

_APPLIED_MARK = "_card_tokens_fixed"


def apply() -> bool:
    """Patch moto in this process; idempotent, True if this call patched it.

    Covers moto.mock_aws and a moto server running in this process.

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
    return True


def remove() -> None:
    """Undo `apply` (for tests that must leave moto as they found it)."""
    current = SecretsManagerBackend.update_secret_version_stage
    if getattr(current, _APPLIED_MARK, False):
        SecretsManagerBackend.update_secret_version_stage = current.__wrapped__  # type: ignore[attr-defined, method-assign]
