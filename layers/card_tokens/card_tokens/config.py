"""Typed settings, read from the environment once per container."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache

# RFC 8725 §3.10: keep tokens short-lived; the template refuses a longer lifetime too.
MAX_TOKEN_LIFETIME_SECONDS = 3600
CLOCK_LEEWAY_SECONDS = 30
DEFAULT_PROCESSOR = "sandbox"
# The staleness bound of a function's cached registry answers (docs/api.md, Merchants).
MERCHANT_CACHE_SECONDS = 60
MAX_MERCHANT_CACHE_SECONDS = 300


class ConfigurationError(RuntimeError):
    """A missing or malformed environment variable: fails the cold start, loudly."""


def _required(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise ConfigurationError(f"environment variable {name} is required but not set")
    return value


def _int(name: str, low: int, high: int) -> int:
    raw = _required(name)
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigurationError(f"{name} must be between {low} and {high}, got {value}")
    return value


@dataclass(frozen=True)
class TokenSettings:
    issuer: str
    audience: str


@dataclass(frozen=True)
class SealingSettings:
    """What issuing and paying must agree on: the token's issuer and audience, the card key."""

    token: TokenSettings
    card_key_id: str


@dataclass(frozen=True)
class IssuerSettings(SealingSettings):
    token_table: str
    signing_key_secret_id: str
    token_lifetime_seconds: int
    merchant_table: str  # the merchant registry (card_tokens.merchant_directory)
    # Browser origins whose POST /tokens may be read cross-origin (card_tokens.cors).
    cors_origins: frozenset[str] = frozenset()
    merchant_cache_seconds: int = MERCHANT_CACHE_SECONDS


@dataclass(frozen=True)
class PaymentStoreSettings:
    """What the cashier and the reconciler share: the payment tables and the processor."""

    token_table: str
    payment_table: str
    idempotency_table: str
    # PAYMENT_PROCESSOR names the processor adapter (card_tokens.wiring.PROCESSORS).
    processor: str
    sandbox_ledger_table: str
    # What find_charge needs (an external processor only; both functions read it).
    processor_lookup_secret_id: str
    # FORWARD_ALLOWED_HOSTS: the only hosts the forwarding processor may send a card to. A
    # template parameter, fixed at deploy: never from a request, never from a secret.
    forward_allowed_hosts: str


@dataclass(frozen=True)
class PaymentSettings(PaymentStoreSettings, SealingSettings):
    verification_keys_secret_id: str
    merchant_table: str
    merchant_cache_seconds: int = MERCHANT_CACHE_SECONDS
    # What charging needs (an external processor only): the payment function alone reads it.
    processor_secret_id: str = ""


@dataclass(frozen=True)
class ReconcilerSettings(PaymentStoreSettings):
    """The sweep needs nothing beyond the shared tables and processor."""


@dataclass(frozen=True)
class JwksSettings:
    verification_keys_secret_id: str


@dataclass(frozen=True)
class RotationSettings:
    token: TokenSettings
    signing_key_secret_id: str
    verification_keys_secret_id: str
    algorithm: str


def _token_settings() -> TokenSettings:
    return TokenSettings(issuer=_required("TOKEN_ISSUER"), audience=_required("TOKEN_AUDIENCE"))


def _sealing_settings() -> SealingSettings:
    return SealingSettings(token=_token_settings(), card_key_id=_required("CARD_KEY_ID"))


@cache
def issuer_settings() -> IssuerSettings:
    return IssuerSettings(
        **vars(_sealing_settings()),
        token_table=_required("TOKEN_TABLE_NAME"),
        signing_key_secret_id=_required("SIGNING_KEY_SECRET_ID"),
        token_lifetime_seconds=_int("TOKEN_LIFETIME_SECONDS", 60, MAX_TOKEN_LIFETIME_SECONDS),
        merchant_table=_required("MERCHANT_TABLE_NAME"),
        cors_origins=_cors_origins(),
        merchant_cache_seconds=_merchant_cache_seconds(),
    )


def _merchant_cache_seconds() -> int:
    """MERCHANT_CACHE_SECONDS: optional, how stale a cached registry answer may be (the bound
    after which a rotated key or a removed merchant is refused everywhere). The local stack sets
    0 so that `card-tokens merchants` changes apply at once."""
    if not os.environ.get("MERCHANT_CACHE_SECONDS", "").strip():
        return MERCHANT_CACHE_SECONDS
    return _int("MERCHANT_CACHE_SECONDS", 0, MAX_MERCHANT_CACHE_SECONDS)


def _cors_origins() -> frozenset[str]:
    """CORS_ORIGINS: optional, empty means no CORS at all (template parameter CorsOrigins)."""
    from card_tokens.cors import InvalidOrigins, parse_origins

    try:
        return parse_origins(os.environ.get("CORS_ORIGINS", ""))
    except InvalidOrigins as error:
        raise ConfigurationError(str(error)) from None


def _processor() -> str:
    return os.environ.get("PAYMENT_PROCESSOR", "").strip() or DEFAULT_PROCESSOR


def _processor_secret(name: str) -> str:
    """The sandbox has no credentials; every other processor needs its secret's id."""
    return "" if _processor() == DEFAULT_PROCESSOR else _required(name)


def _payment_store_settings() -> PaymentStoreSettings:
    return PaymentStoreSettings(
        token_table=_required("TOKEN_TABLE_NAME"),
        payment_table=_required("PAYMENT_TABLE_NAME"),
        idempotency_table=_required("IDEMPOTENCY_TABLE_NAME"),
        processor=_processor(),
        sandbox_ledger_table=_required("SANDBOX_LEDGER_TABLE_NAME"),
        processor_lookup_secret_id=_processor_secret("PROCESSOR_LOOKUP_SECRET_ID"),
        forward_allowed_hosts=os.environ.get("FORWARD_ALLOWED_HOSTS", "").strip(),
    )


@cache
def payment_settings() -> PaymentSettings:
    return PaymentSettings(
        **vars(_sealing_settings()),
        **vars(_payment_store_settings()),
        verification_keys_secret_id=_required("VERIFICATION_KEYS_SECRET_ID"),
        merchant_table=_required("MERCHANT_TABLE_NAME"),
        merchant_cache_seconds=_merchant_cache_seconds(),
        processor_secret_id=_processor_secret("PROCESSOR_SECRET_ID"),
    )


@cache
def reconciler_settings() -> ReconcilerSettings:
    return ReconcilerSettings(**vars(_payment_store_settings()))


@cache
def jwks_settings() -> JwksSettings:
    return JwksSettings(verification_keys_secret_id=_required("VERIFICATION_KEYS_SECRET_ID"))


@cache
def rotation_settings() -> RotationSettings:
    algorithm = _required("SIGNING_ALGORITHM")
    if algorithm not in ("ES256", "RS256"):
        raise ConfigurationError(f"SIGNING_ALGORITHM must be ES256 or RS256, got {algorithm!r}")
    return RotationSettings(
        token=_token_settings(),
        signing_key_secret_id=_required("SIGNING_KEY_SECRET_ID"),
        verification_keys_secret_id=_required("VERIFICATION_KEYS_SECRET_ID"),
        algorithm=algorithm,
    )
