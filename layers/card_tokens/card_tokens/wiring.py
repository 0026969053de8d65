"""The composition root: each use case built from its settings, once per execution environment.

Use cases (issuing, payments, reconciliation, key_rotation) take their ports as arguments;
this is the one module that chooses the adapters behind them (KMS, DynamoDB, Secrets Manager,
the processor named by PAYMENT_PROCESSOR). Each handler asks here for what it runs, at import,
so a missing or unknown setting fails the cold start.

What is cached here holds settings, table names, key ids, the process-wide KEYS store and the
merchant directory's cache, never a client, a key or a connection (clients are fetched per call
from card_tokens.aws): a SnapStart restore resets KEYS, the directories and the clients
(card_tokens.snapstart) and keeps the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from card_tokens.aws import secretsmanager_client
from card_tokens.config import (
    ConfigurationError,
    PaymentStoreSettings,
    issuer_settings,
    jwks_settings,
    payment_settings,
    reconciler_settings,
    rotation_settings,
)
from card_tokens.issuing import Issuer
from card_tokens.key_rotation import SigningKeyRotation
from card_tokens.key_store import KEYS
from card_tokens.kms_data_keys import KmsDataKeys
from card_tokens.merchant_directory import DynamoDBMerchantDirectory
from card_tokens.payments import Cashier
from card_tokens.processor import PaymentProcessor, SandboxProcessor
from card_tokens.reconciliation import Reconciler
from card_tokens.stores import DynamoDBPaymentStates, DynamoDBTokenStore

# The processor adapters by PAYMENT_PROCESSOR value. Another processor plugs in here: the
# Cashier and the Reconciler only know the PaymentProcessor port.
PROCESSORS: dict[str, Callable[[PaymentStoreSettings], PaymentProcessor]] = {
    "sandbox": lambda settings: SandboxProcessor(settings.sandbox_ledger_table),
}


def processor_for(settings: PaymentStoreSettings) -> PaymentProcessor:
    build = PROCESSORS.get(settings.processor)
    if build is None:
        known = ", ".join(sorted(PROCESSORS))
        raise ConfigurationError(
            f"PAYMENT_PROCESSOR must be one of {known}, got {settings.processor!r}"
        )
    return build(settings)


def _payment_states(settings: PaymentStoreSettings) -> DynamoDBPaymentStates:
    return DynamoDBPaymentStates(
        token_table=settings.token_table,
        payment_table=settings.payment_table,
        idempotency_table=settings.idempotency_table,
    )


# One directory per registry table and environment: its cached answers make a warm call free.
_DIRECTORIES: dict[str, DynamoDBMerchantDirectory] = {}


def merchant_directory(table_name: str, max_age_seconds: int) -> DynamoDBMerchantDirectory:
    if table_name not in _DIRECTORIES:
        _DIRECTORIES[table_name] = DynamoDBMerchantDirectory(
            table_name, max_age_seconds=max_age_seconds
        )
    return _DIRECTORIES[table_name]


def reset_merchant_directories() -> None:
    """Forget every cached registry answer (a SnapStart restore: card_tokens.snapstart)."""
    for directory in _DIRECTORIES.values():
        directory.reset()


@cache
def issuer() -> Issuer:
    settings = issuer_settings()
    return Issuer(
        settings=settings,
        data_keys=KmsDataKeys(settings.card_key_id),
        tokens=DynamoDBTokenStore(settings.token_table),
        signing_key=lambda: KEYS.current_signing_key(settings.signing_key_secret_id),
        merchants=merchant_directory(settings.merchant_table, settings.merchant_cache_seconds),
    )


@cache
def payment_processor() -> PaymentProcessor:
    """The processor the payment function charges (and the tests read the ledger of)."""
    return processor_for(payment_settings())


@cache
def cashier() -> Cashier:
    settings = payment_settings()
    return Cashier(
        settings=settings,
        data_keys=KmsDataKeys(settings.card_key_id),
        states=_payment_states(settings),
        processor=payment_processor(),
        find_key=lambda kid: KEYS.find_verification_key(settings.verification_keys_secret_id, kid),
        merchants=merchant_directory(settings.merchant_table, settings.merchant_cache_seconds),
    )


@cache
def reconciler() -> Reconciler:
    settings = reconciler_settings()
    return Reconciler(states=_payment_states(settings), processor=processor_for(settings))


def signing_key_rotation() -> SigningKeyRotation:
    """Built per invocation: it holds the Secrets Manager client, which a restore replaces."""
    return SigningKeyRotation(secretsmanager_client(), rotation_settings())


def published_jwks() -> dict[str, list[dict[str, str]]]:
    """GET /.well-known/jwks.json: the public members of the keys a verifier accepts now."""
    return KEYS.published_jwks(jwks_settings().verification_keys_secret_id)
