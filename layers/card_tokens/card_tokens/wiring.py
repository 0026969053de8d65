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
    DEFAULT_PROCESSOR,
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
from card_tokens.processor_credentials import CredentialedProcessor, ProcessorSecrets
from card_tokens.reconciliation import Reconciler
from card_tokens.stores import DynamoDBPaymentStates, DynamoDBTokenStore


def _stripe(settings: PaymentStoreSettings, secrets: ProcessorSecrets) -> PaymentProcessor:
    # Imported here: the sandbox's cold start never loads the Stripe SDK.
    from card_tokens.stripe_processor import StripeProcessor

    # The payment function charges and looks up with its secret key; the reconciler only has
    # the lookup secret's (a restricted key that can read PaymentIntents).
    if secrets.charge is None:
        return StripeProcessor.from_secret(secrets.lookup, charges=False)
    return StripeProcessor.from_secret(secrets.charge)


def _forward(settings: PaymentStoreSettings, secrets: ProcessorSecrets) -> PaymentProcessor:
    from card_tokens.forwarding_processor import ForwardingProcessor

    return ForwardingProcessor.from_secrets(
        secrets.charge, secrets.lookup, settings.forward_allowed_hosts
    )


# The external processor adapters by PAYMENT_PROCESSOR value, each built from its secrets
# (card_tokens.processor_credentials). Another processor plugs in here: the Cashier and the
# Reconciler only know the PaymentProcessor port. "sandbox", the default, needs no secret.
PROCESSORS: dict[str, Callable[[PaymentStoreSettings, ProcessorSecrets], PaymentProcessor]] = {
    "stripe": _stripe,
    "forward": _forward,
}


def processor_for(
    settings: PaymentStoreSettings, *, charge_secret_id: str | None
) -> PaymentProcessor:
    """The processor PAYMENT_PROCESSOR names. Without a charge secret (the reconciler) an
    external processor can look charges up and never make one."""
    if settings.processor == DEFAULT_PROCESSOR:
        return SandboxProcessor(settings.sandbox_ledger_table)
    build = PROCESSORS.get(settings.processor)
    if build is None:
        known = ", ".join(sorted([DEFAULT_PROCESSOR, *PROCESSORS]))
        raise ConfigurationError(
            f"PAYMENT_PROCESSOR must be one of {known}, got {settings.processor!r}"
        )
    return CredentialedProcessor(
        lambda secrets: build(settings, secrets),
        charge_secret_id=charge_secret_id or None,
        lookup_secret_id=settings.processor_lookup_secret_id,
    )


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
    settings = payment_settings()
    return processor_for(settings, charge_secret_id=settings.processor_secret_id)


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
    return Reconciler(
        states=_payment_states(settings), processor=processor_for(settings, charge_secret_id=None)
    )


def signing_key_rotation() -> SigningKeyRotation:
    """Built per invocation: it holds the Secrets Manager client, which a restore replaces."""
    return SigningKeyRotation(secretsmanager_client(), rotation_settings())


def published_jwks() -> dict[str, list[dict[str, str]]]:
    """GET /.well-known/jwks.json: the public members of the keys a verifier accepts now."""
    return KEYS.published_jwks(jwks_settings().verification_keys_secret_id)
