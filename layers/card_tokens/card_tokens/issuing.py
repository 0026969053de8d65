"""Issuing: validate the card, seal it under a fresh data key, store the key, sign the token."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from card_tokens.cards import validate_card
from card_tokens.config import IssuerSettings
from card_tokens.errors import InvalidPublishableKey, OriginNotAllowed
from card_tokens.merchants import Merchant, MerchantDirectory
from card_tokens.observability import count, logger
from card_tokens.records import TokenRecord, epoch_seconds, iso_utc, new_payment_id
from card_tokens.request_body import TOKEN_REQUEST_FIELDS, TokenCaller, reject_unknown_fields
from card_tokens.sealing import DataKeySource, encryption_context, seal_card
from card_tokens.signing_keys import SigningKey
from card_tokens.stores import TokenStore
from card_tokens.tokens import TOKEN_TYPE, new_jti, sign_token

# The AWS calls one issue makes, one after another, in the worst case (cold caches):
#   the merchant registry's GetItem of the key and of its merchant, Secrets Manager
#   GetSecretValue, KMS GenerateDataKey, DynamoDB PutItem
AWS_CALLS_TO_ISSUE = 5
# No key, no Origin: a server-side caller of a deployment with no merchant registered.
SERVER_SIDE = TokenCaller(publishable_key=None, origin=None)


@dataclass(frozen=True)
class Issuer:
    """POST /tokens: validate the card, seal it, store the data key, sign the token."""

    settings: IssuerSettings
    data_keys: DataKeySource
    tokens: TokenStore
    signing_key: Callable[[], SigningKey]
    merchants: MerchantDirectory
    clock: Callable[[], int] = epoch_seconds

    def issue(self, document: dict[str, Any], caller: TokenCaller = SERVER_SIDE) -> dict[str, Any]:
        merchant = self._merchant(caller)
        reject_unknown_fields(document, TOKEN_REQUEST_FIELDS)
        now = self.clock()
        card = validate_card(
            card_number=document.get("card_number"),
            exp_month=document.get("exp_month"),
            exp_year=document.get("exp_year"),
            cvv=document.get("cvv"),
            cardholder_name=document.get("cardholder_name"),
            now=datetime.fromtimestamp(now, UTC),
        )
        signing_key = self.signing_key()  # first: no key means 503 before any KMS work
        jti = new_jti()
        expires_at = now + self.settings.token_lifetime_seconds
        context = encryption_context(jti=jti, audience=self.settings.token.audience)
        sealed = seal_card(card, context=context, data_keys=self.data_keys)
        self.tokens.put_issued(
            TokenRecord(
                jti=jti,
                status="issued",
                brand=card.brand,
                last4=card.last4,
                expires_at=expires_at,
                payment_id=new_payment_id(),
                merchant_id=merchant.merchant_id if merchant else None,
                encrypted_data_key=sealed.encrypted_data_key,
            )
        )
        token = sign_token(
            signing_key=signing_key,
            settings=self.settings.token,
            jti=jti,
            meta_data=sealed.meta_data,
            now=now,
            lifetime_seconds=self.settings.token_lifetime_seconds,
            merchant_id=merchant.merchant_id if merchant else None,
        )
        count("TokensIssued")
        logger.info("token issued", extra={"brand": card.brand, "kid": signing_key.kid})
        return {
            "token": token,
            "token_type": TOKEN_TYPE,
            "expires_at": iso_utc(expires_at),
            "card": {
                "brand": card.brand,
                "last4": card.last4,
                "exp_month": card.exp_month,
                "exp_year": card.exp_year,
            },
        }

    def _merchant(self, caller: TokenCaller) -> Merchant | None:
        """The merchant whose key the caller presents; None only in single-caller mode."""
        if caller.publishable_key is None:
            if self.merchants.is_empty():
                return None  # single-caller mode: tokens as before merchants existed
            raise InvalidPublishableKey()
        merchant = self.merchants.by_publishable_key(caller.publishable_key)
        if merchant is None:
            raise InvalidPublishableKey()
        if not merchant.allows_origin(caller.origin):
            raise OriginNotAllowed()
        return merchant
