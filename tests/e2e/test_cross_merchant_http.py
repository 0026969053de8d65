"""Two merchants on the local stack, over HTTP: each signs its /payments with its own local
credentials (SigV4), and neither can reach the other's tokens, payments or idempotency keys.

The stack is `make run`'s (a demo merchant); the merchants here are added as a test adds them
(local.merchants), each with its publishable key, its checkout origin and its own profile. The
local stack's functions cache the registry for 0 s (--merchant-cache-seconds), so a rotated key
is refused at once; on AWS, within MERCHANT_CACHE_SECONDS (60).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
from botocore.credentials import Credentials

from card_tokens_client.api import (
    CardInput,
    CardTokensApi,
    Reply,
    get_payment_request,
    payment_request,
)
from card_tokens_client.signing import RequestSigner
from local.iam import BAD_SIGNATURE, UNKNOWN_KEY, CredentialsFile, new_local_user
from local.intrinsics import REGION
from local.merchants import LocalMerchant, add_local_merchant, registry
from local.provision import STACK_NAME
from tests.cards import VISA
from tests.e2e.stack_process import RunningLocalStack, merchant_headers


@dataclass
class MerchantBackEnd:
    """One merchant as its checkout page and its back end talk to the API."""

    stack: RunningLocalStack
    merchant: LocalMerchant

    def api(self, credentials: Credentials | None = None) -> CardTokensApi:
        """A client that signs the /payments routes with this merchant's keys (or others)."""
        user = self.merchant.user
        keys = credentials or Credentials(user.access_key_id, user.secret_access_key)
        return CardTokensApi(
            self.stack.base_url, RequestSigner(self.stack.base_url, REGION, credentials=keys)
        )

    def tokenize(self, *, key: str | None = None, origin: str | None = None) -> Reply:
        """POST /tokens from this merchant's checkout page (its key and origin, unless given)."""
        headers = merchant_headers(
            key or self.merchant.publishable_key, origin or self.merchant.origins[0]
        )
        reply = self.stack.api.request("POST", "/tokens", CardInput(**VISA).request_body(), headers)
        if reply.status == 201:
            self.stack.issued_tokens.append(reply.json()["token"])  # scanned for in the log
        return reply

    def token(self) -> str:
        reply = self.tokenize()
        assert reply.status == 201, reply.error_code
        return str(reply.json()["token"])

    def pay(self, token: str, idempotency_key: str | None = None) -> Reply:
        request = payment_request(token, 1999, "EUR", "order-cross", idempotency_key)
        return self.api().send(request)

    def get(self, payment_id: str) -> Reply:
        return self.api().send(get_payment_request(payment_id))


def new_merchant(stack: RunningLocalStack, label: str) -> MerchantBackEnd:
    name = f"{label}-{uuid.uuid4().hex[:6]}"
    merchant = add_local_merchant(
        name,
        [f"https://{name}.example"],
        stack_name=STACK_NAME,
        dynamodb_client=stack.dynamodb(),
        credentials=CredentialsFile(stack.credentials_file),
    )
    return MerchantBackEnd(stack, merchant)


@pytest.fixture(scope="module")
def shop_a(merchant_stack: RunningLocalStack) -> MerchantBackEnd:
    return new_merchant(merchant_stack, "shop-a")


@pytest.fixture(scope="module")
def shop_b(merchant_stack: RunningLocalStack) -> MerchantBackEnd:
    return new_merchant(merchant_stack, "shop-b")


def test_b_cannot_read_a_payment_of_a(shop_a: MerchantBackEnd, shop_b: MerchantBackEnd) -> None:
    # Given a payment of A
    paid = shop_a.pay(shop_a.token())
    assert paid.status == 201, paid.error_code
    payment_id = paid.json()["payment_id"]

    # When B asks for it, signed with B's credentials
    reply = shop_b.get(payment_id)

    # Then it does not exist for B, and A still reads it
    assert (reply.status, reply.error_code) == (404, "payment_not_found")
    assert shop_a.get(payment_id).status == 200


def test_b_cannot_redeem_a_token_of_a_and_a_still_can(
    shop_a: MerchantBackEnd, shop_b: MerchantBackEnd
) -> None:
    # Given a token A's checkout page issued
    token = shop_a.token()

    # When B pays with it
    reply = shop_b.pay(token)

    # Then B gets invalid_token, as for a forged token, and the token is not burnt
    assert (reply.status, reply.error_code) == (401, "invalid_token")
    paid = shop_a.pay(token)
    assert paid.status == 201, paid.error_code
    assert paid.json()["status"] == "approved"


def test_an_unsigned_payment_is_the_demo_merchants_not_anothers(
    merchant_stack: RunningLocalStack, shop_a: MerchantBackEnd
) -> None:
    # Given A's token, and a token of the demo merchant (make run's)
    token = shop_a.token()
    demo_token = merchant_stack.issue_token()

    # When each is paid with no signature (the local-only convenience: the demo merchant's)
    replies = [merchant_stack.pay(token), merchant_stack.pay(demo_token)]

    # Then only the demo merchant's token pays
    assert [(reply.status, reply.error_code) for reply in replies] == [
        (401, "invalid_token"),
        (201, None),
    ]


def test_idempotency_keys_do_not_collide_across_merchants(
    shop_a: MerchantBackEnd, shop_b: MerchantBackEnd
) -> None:
    # Given one Idempotency-Key that A used first
    key = f"order-{uuid.uuid4()}"
    first = shop_a.pay(shop_a.token(), idempotency_key=key)
    assert first.status == 201, first.error_code

    # When B uses the same key for its own payment
    second = shop_b.pay(shop_b.token(), idempotency_key=key)

    # Then B's payment is its own, not blocked nor answered with A's
    assert second.status == 201, second.error_code
    assert second.json()["payment_id"] != first.json()["payment_id"]
    assert shop_b.get(second.json()["payment_id"]).status == 200


def test_a_rotated_publishable_key_is_refused_and_the_new_one_works(
    merchant_stack: RunningLocalStack,
) -> None:
    # Given a merchant whose key worked (and is in a function's cache), then was rotated
    shop = new_merchant(merchant_stack, "rotating")
    old_key = shop.merchant.publishable_key
    assert shop.tokenize(key=old_key).status == 201
    rotated = registry(STACK_NAME, merchant_stack.dynamodb()).rotate_key(shop.merchant.merchant_id)

    # When its page tokenizes with the old key, then with the new one
    old = shop.tokenize(key=old_key)
    new = shop.tokenize(key=rotated["publishable_key"])

    # Then the old key is unknown, the new one issues
    assert (old.status, old.error_code) == (401, "invalid_publishable_key")
    assert new.status == 201, new.error_code


def test_an_unknown_publishable_key_is_401(shop_a: MerchantBackEnd) -> None:
    reply = shop_a.tokenize(key="pk_" + "a" * 24)

    assert (reply.status, reply.error_code) == (401, "invalid_publishable_key")


def test_a_forged_origin_is_403_and_no_origin_is_a_server_side_caller(
    shop_a: MerchantBackEnd, shop_b: MerchantBackEnd
) -> None:
    # When A's key is used from a page of another origin (B's, or anyone's)
    forged = [shop_a.tokenize(origin=shop_b.merchant.origins[0]), shop_a.tokenize(origin="null")]

    # Then the issuer refuses it; A's own origin is served
    assert [(reply.status, reply.error_code) for reply in forged] == [
        (403, "origin_not_allowed"),
        (403, "origin_not_allowed"),
    ]
    assert shop_a.tokenize().status == 201


@pytest.mark.parametrize("forgery", ["B's key id, another secret", "a key id never issued"])
def test_a_bad_signature_is_api_gateways_403(
    shop_a: MerchantBackEnd, shop_b: MerchantBackEnd, forgery: str
) -> None:
    # Given A's token, and a client signing as B would with a secret it does not have
    token = shop_a.token()
    b_user = shop_b.merchant.user
    stranger = new_local_user("card-tokens-stranger")  # never registered
    keys = {
        "B's key id, another secret": Credentials(b_user.access_key_id, "not-b-secret"),
        "a key id never issued": Credentials(stranger.access_key_id, stranger.secret_access_key),
    }[forgery]

    # When it pays, and reads
    paid = shop_b.api(keys).send(payment_request(token, 1999, "EUR", None, None))

    # Then API Gateway's own 403 (its {"message"} shape) before any function, and A still pays
    expected = BAD_SIGNATURE if forgery.startswith("B's") else UNKNOWN_KEY
    assert (paid.status, paid.json()) == (403, {"message": expected})
    assert shop_a.pay(token).status == 201
