"""Adapter: the signing and verification keys from Secrets Manager, cached in one KeyStore.

The key maths is pure (card_tokens.signing_keys); this module fetches the secrets (through
Powertools' SecretsProvider, whose own cache honours SECRET_CACHE_SECONDS) and keeps what was
parsed from them. Everything it keeps lives in one object, KEYS, with one way to drop it all:
KEYS.reset() (SnapStart hooks, and tests that change the keys under a running container).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.parameters import SecretsProvider
from aws_lambda_powertools.utilities.parameters.exceptions import (
    GetParameterError,
    TransformParameterError,
)

from card_tokens.aws import secretsmanager_client
from card_tokens.errors import ServiceUnavailable
from card_tokens.observability import logger
from card_tokens.signing_keys import (
    KeyMaterialError,
    SigningKey,
    VerificationKey,
    VerificationKeyRing,
    public_jwks,
    signing_key_from_secret,
)

# Secrets are cached for this long in each container (Powertools' own setting; 300 s unless
# POWERTOOLS_PARAMETERS_MAX_AGE says otherwise, as the local stack does). Rotation keeps the
# retiring key valid far longer than this plus the maximum token lifetime.
SECRET_CACHE_SECONDS = int(os.environ.get("POWERTOOLS_PARAMETERS_MAX_AGE", "300"))
# An unknown kid may be a key published after this container cached the ring (a rotation just
# happened): look again, but at most this often, so junk kids cannot hammer Secrets Manager.
UNKNOWN_KID_REFRESH_SECONDS = 30


class KeyStore:
    """The secrets provider, the parsed signing keys, the verification key rings and the
    unknown-kid refresh times of one execution environment."""

    def __init__(self) -> None:
        self._provider: SecretsProvider | None = None
        self._signing_keys: dict[str, SigningKey] = {}
        self._rings: dict[str, tuple[dict[str, Any], VerificationKeyRing]] = {}
        self._forced_at: dict[str, float] = {}

    @property
    def is_empty(self) -> bool:
        """Nothing cached: no provider (nor its client), no key, no ring, no refresh time."""
        return not (self._provider or self._signing_keys or self._rings or self._forced_at)

    def reset(self) -> None:
        """Drop everything, the provider and the Secrets Manager client it holds included: the
        next fetch builds a new provider on the current secretsmanager_client()."""
        if self._provider is not None:
            self._provider.clear_cache()  # type: ignore[no-untyped-call]
        self._provider = None
        self._signing_keys.clear()
        self._rings.clear()
        self._forced_at.clear()

    def _secrets(self) -> SecretsProvider:
        if self._provider is None:
            # One client per service for the whole container: same retries, timeouts and hooks.
            self._provider = SecretsProvider(boto3_client=secretsmanager_client())
        return self._provider

    def fetch_secret_json(self, secret_id: str, *, force_fetch: bool = False) -> dict[str, Any]:
        """A JSON secret through Powertools' cache; an outage becomes ServiceUnavailable."""
        try:
            value = self._secrets().get(
                secret_id,
                max_age=SECRET_CACHE_SECONDS,
                transform="json",
                force_fetch=force_fetch,
                VersionStage="AWSCURRENT",
            )
        except (GetParameterError, TransformParameterError):
            # The exception text can quote the secret's value: log its type only.
            logger.warning("secret unavailable", extra={"secret_error": "fetch_or_parse_failed"})
            raise ServiceUnavailable("secretsmanager") from None
        if not isinstance(value, dict):
            raise ServiceUnavailable("secretsmanager")
        return value

    def current_signing_key(self, secret_id: str) -> SigningKey:
        """The AWSCURRENT signing key; parsed once per kid, not once per request."""
        document = self.fetch_secret_json(secret_id)
        kid = document.get("kid")
        if isinstance(kid, str) and kid in self._signing_keys:
            return self._signing_keys[kid]
        # Before the first rotation the secret holds no key: issuing is unavailable, not broken.
        key = _usable(signing_key_from_secret, document, "no usable signing key")
        self._signing_keys[key.kid] = key
        return key

    def verification_key_ring(
        self, secret_id: str, *, force_fetch: bool = False
    ) -> VerificationKeyRing:
        """The accepted public keys; rebuilt only when the secret's content changed."""
        document = self.fetch_secret_json(secret_id, force_fetch=force_fetch)
        cached = self._rings.get(secret_id)
        if cached is not None and cached[0] == document:
            return cached[1]
        ring = _usable(VerificationKeyRing.from_jwks, document, "verification keys unusable")
        self._rings[secret_id] = (document, ring)
        return ring

    def find_verification_key(self, secret_id: str, kid: str) -> VerificationKey | None:
        key = self.verification_key_ring(secret_id).get(kid)
        last = self._forced_at.get(secret_id)
        if key is None and (last is None or time.monotonic() - last > UNKNOWN_KID_REFRESH_SECONDS):
            self._forced_at[secret_id] = time.monotonic()
            key = self.verification_key_ring(secret_id, force_fetch=True).get(kid)
        return key

    def published_jwks(self, secret_id: str) -> dict[str, list[dict[str, str]]]:
        """GET /.well-known/jwks.json: the public keys a verifier must accept now."""
        return _usable(public_jwks, self.fetch_secret_json(secret_id), "verification keys unusable")


def _usable[T](parse: Callable[[dict[str, Any]], T], document: dict[str, Any], what: str) -> T:
    """What `parse` makes of a secret; a secret that holds no usable key is a 503, logged."""
    try:
        return parse(document)
    except KeyMaterialError as error:
        logger.error(what, extra={"key_error": str(error)})
        raise ServiceUnavailable("secretsmanager") from None


# The one store of the execution environment (its handlers and the SnapStart hooks share it).
KEYS = KeyStore()
