"""The floor: each route's AWS calls and crypto primitives made directly, with no framework.

Event in, response out, like a handler, but with nothing between the body and the calls: no
Powertools (resolver, logger, metrics, tracer, parameters), no PyJWT, no TypeSerializer, no
validation beyond what the calls need. What a route cannot do without is here, and nothing
else, so handler / floor is the price of the framework and of the checks. A payment makes the
same requests as the layer's (card_tokens.payments and card_tokens.stores), the sandbox
processor's ledger PutItem included, with the same expressions: the bench records both sides'
requests and tests/integration/test_bench_smoke.py compares them.

Imports are only what the floor's work needs (boto3, botocore, cryptography, the standard
library): the cold-start bench imports this module in a fresh process as the floor's cold start.
It never imports card_tokens or aws_lambda_powertools, so the expressions below are copies.

The floor acts for one merchant, given as `merchant_id` (None: single-caller mode), and writes
what the layer writes for it (the token's `mid` claim, the merchant_id of the token and payment
records, the merchant's Idempotency-Key space). It makes no registry read: a warm handler makes
none either (its answers are cached for MERCHANT_CACHE_SECONDS).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

# The layer's client settings (card_tokens.aws.BOTO_CONFIG), copied rather than imported so
# the floor's cold start loads nothing of the layer; tests/integration/test_bench_smoke.py
# checks the copy against the original.
CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": 2},
    connect_timeout=0.5,
    read_timeout=1.0,
    tcp_keepalive=True,
)
_JSON_HEADERS = {"Content-Type": "application/json", "Cache-Control": "no-store"}
# card_tokens.stores: IDEMPOTENCY_WINDOW_SECONDS, TOMBSTONE_SECONDS, SWEEP_SHARDS;
# card_tokens.config.CLOCK_LEEWAY_SECONDS; card_tokens.payments.CLAIM_LEASE_SECONDS.
_IDEMPOTENCY_SECONDS = 24 * 3600
_TOMBSTONE_SECONDS = 86_400
_SWEEP_SHARDS = 4
_CLOCK_LEEWAY_SECONDS = 30
_CLAIM_LEASE_SECONDS = 60
# card_tokens.tokens.P256_ORDER: ES256 signatures are issued and accepted with s <= n/2 only.
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_P256_HALF_ORDER = P256_ORDER // 2

# The payment's expressions, copied from card_tokens.stores (each is its constant of the same
# name with a leading underscore). tests/integration/test_bench_smoke.py checks every copy
# against its original, and every request of a payment against the handler's own requests in
# the same bench run.
CLAIM_UPDATE = (
    "SET #status = :claimed, claim_attempt_id = :attempt, claim_fingerprint = :fingerprint, "
    "claim_amount = :amount, claim_currency = :currency, claim_reference = :reference, "
    "claim_key_id = :key_id, claimed_at = :now, claim_lease_ends_at = :lease_end, "
    "sweep_at = :lease_end ADD claim_attempts :attempts"
)
CLAIMABLE = (
    "attribute_exists(jti) AND "
    "(#status = :issued OR (#status = :claimed AND claim_fingerprint = :fingerprint))"
)
KEY_CLAIMABLE = (
    "attribute_not_exists(id) OR expiration < :now OR "
    "(fingerprint = :fingerprint AND progress = :in_progress)"
)
TOMBSTONE_UPDATE = (
    "SET #status = :used, payment_id = :payment_id "
    "REMOVE encrypted_data_key, sweep_shard, sweep_at, claim_lease_ends_at, claim_attempts"
)
TOMBSTONE_CONDITION = "#status = :claimed AND claim_fingerprint = :fp"
KEY_ANSWER_UPDATE = (
    "SET fingerprint = :fingerprint, jti = :jti, progress = :completed, "
    "answer = :answer, expiration = :expiration"
)
LEDGER_NEW = "attribute_not_exists(idempotency_key)"  # card_tokens.processor.SandboxProcessor


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _context(jti: str, audience: str) -> dict[str, str]:
    return {"purpose": "card-token", "jti": jti, "aud": audience}


def _aad(context: dict[str, str]) -> bytes:
    return json.dumps(context, sort_keys=True, separators=(",", ":")).encode()


def _response(status: int, document: dict[str, Any]) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": _JSON_HEADERS,
        "body": json.dumps(document, separators=(",", ":")),
    }


def _new_payment_id() -> str:
    """As card_tokens.records.new_payment_id: drawn at issue, stored with the token."""
    return "pay_" + base64.b32encode(secrets.token_bytes(15)).decode("ascii").lower()


def _iso(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


class Clients:
    """One client per service, built on first use (as the layer's are)."""

    def __init__(self) -> None:
        self._clients: dict[str, Any] = {}

    def get(self, service: str) -> Any:
        client = self._clients.get(service)
        if client is None:
            client = boto3.session.Session().client(service, config=CONFIG)  # type: ignore[call-overload]
            self._clients[service] = client
        return client


def _merchant(merchant_id: str | None) -> dict[str, str]:
    """The merchant_id attribute of a record, absent in single-caller mode (as the layer's)."""
    return {"merchant_id": merchant_id} if merchant_id else {}


class _FloorRoute:
    """What each side of the floor holds: the functions' environment, its clients, and the
    merchant it acts for (None: single-caller mode)."""

    def __init__(
        self,
        environment: dict[str, str],
        clients: Clients | None = None,
        *,
        merchant_id: str | None = None,
    ) -> None:
        self.env = environment
        self.clients = clients or Clients()
        self.merchant_id = merchant_id


class FloorIssuer(_FloorRoute):
    """POST /tokens: GenerateDataKey, AES-GCM, PutItem, one JWS signature."""

    _key: tuple[str, str, Any] | None = None  # the warm cache: (kid, alg, private key)

    def signing_key(self) -> tuple[str, str, Any]:
        if self._key is None:
            secret = self.clients.get("secretsmanager").get_secret_value(
                SecretId=self.env["SIGNING_KEY_SECRET_ID"], VersionStage="AWSCURRENT"
            )
            document = json.loads(secret["SecretString"])
            private = serialization.load_pem_private_key(
                document["private_key_pem"].encode(), password=None
            )
            self._key = (document["kid"], document["alg"], private)
        return self._key

    def __call__(self, event: dict[str, Any]) -> dict[str, Any]:
        card = json.loads(event["body"])
        kid, alg, private = self.signing_key()
        pan = card["card_number"].replace(" ", "").replace("-", "")
        now = int(time.time())
        exp = now + int(self.env["TOKEN_LIFETIME_SECONDS"])
        jti = _b64(secrets.token_bytes(16))
        context = _context(jti, self.env["TOKEN_AUDIENCE"])
        data_key = self.clients.get("kms").generate_data_key(
            KeyId=self.env["CARD_KEY_ID"], KeySpec="AES_256", EncryptionContext=context
        )
        plaintext = json.dumps(
            {
                "pan": pan,
                "exp_month": card["exp_month"],
                "exp_year": card["exp_year"],
                "cvv": card["cvv"],
                "brand": "visa",
                "name": card.get("cardholder_name"),
            },
            separators=(",", ":"),
        ).encode()
        nonce = os.urandom(12)
        sealed = AESGCM(data_key["Plaintext"]).encrypt(nonce, plaintext, _aad(context))
        self.clients.get("dynamodb").put_item(
            TableName=self.env["TOKEN_TABLE_NAME"],
            Item={
                "jti": {"S": jti},
                "status": {"S": "issued"},
                "brand": {"S": "visa"},
                "last4": {"S": pan[-4:]},
                "expires_at": {"N": str(exp)},
                "ttl": {"N": str(exp + _TOMBSTONE_SECONDS)},
                "payment_id": {"S": _new_payment_id()},
                **{name: {"S": value} for name, value in _merchant(self.merchant_id).items()},
                "encrypted_data_key": {"B": data_key["CiphertextBlob"]},
                "sweep_shard": {"N": str(hashlib.sha256(jti.encode()).digest()[0] % _SWEEP_SHARDS)},
                "sweep_at": {"N": str(exp + _CLOCK_LEEWAY_SECONDS)},
            },
            ConditionExpression="attribute_not_exists(jti)",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
        claims = {
            "iss": self.env["TOKEN_ISSUER"],
            "aud": self.env["TOKEN_AUDIENCE"],
            "iat": now,
            "nbf": now,
            "exp": exp,
            "jti": jti,
            "meta_data": _b64(b"\x01" + nonce + sealed),
            **({"mid": self.merchant_id} if self.merchant_id else {}),  # tokens.MERCHANT_CLAIM
        }
        header = {"alg": alg, "kid": kid, "typ": "card+jwt"}
        signing_input = (
            _b64(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + _b64(json.dumps(claims, separators=(",", ":")).encode())
        )
        token = signing_input + "." + _b64(_sign(private, alg, signing_input.encode()))
        return _response(
            201,
            {
                "token": token,
                "token_type": "card+jwt",
                "expires_at": _iso(exp),
                "card": {
                    "brand": "visa",
                    "last4": pan[-4:],
                    "exp_month": card["exp_month"],
                    "exp_year": card["exp_year"],
                },
            },
        )


def _sign(private: Any, alg: str, data: bytes) -> bytes:
    if alg == "ES256":
        r, s = decode_dss_signature(private.sign(data, ec.ECDSA(hashes.SHA256())))
        s = min(s, P256_ORDER - s)  # the low-S spelling, the only one the layer accepts
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return bytes(private.sign(data, padding.PKCS1v15(), hashes.SHA256()))


def _verify(public: Any, alg: str, signature: bytes, data: bytes) -> None:
    if alg == "ES256":
        der = encode_dss_signature(
            int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        )
        public.verify(der, data, ec.ECDSA(hashes.SHA256()))
    else:
        public.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())


def _public_key(jwk: dict[str, str]) -> Any:
    def number(name: str) -> int:
        return int.from_bytes(_unb64(jwk[name]), "big")

    if jwk["kty"] == "EC":
        return ec.EllipticCurvePublicNumbers(number("x"), number("y"), ec.SECP256R1()).public_key()
    return rsa.RSAPublicNumbers(number("e"), number("n")).public_key()


@dataclass(frozen=True)
class _Intent:
    """One payment request, checked: the token's claims and what the requests are keyed on."""

    claims: dict[str, Any]
    jti: str
    amount: int
    currency: str
    reference: str | None
    fingerprint: str
    key_id: str | None
    attempt_id: str
    now: int


@dataclass(frozen=True)
class _Answer:
    """The payment stored with an Idempotency-Key, answered again without a charge."""

    document: dict[str, Any]


class FloorCashier(_FloorRoute):
    """POST /payments and GET /payments/{id}: the layer's DynamoDB and KMS calls, in order.

    Only the path the bench takes (a fresh token paid once, or a replay with the same
    Idempotency-Key and body); the rarer branches of the state machine (lapsed claims,
    inherited claims, releases) are not on a warm payment's path and are left out.
    """

    _keys: dict[str, tuple[str, Any]] | None = None  # the warm cache: kid → (alg, key)

    def public_keys(self) -> dict[str, tuple[str, Any]]:
        if self._keys is None:
            secret = self.clients.get("secretsmanager").get_secret_value(
                SecretId=self.env["VERIFICATION_KEYS_SECRET_ID"], VersionStage="AWSCURRENT"
            )
            jwks = json.loads(secret["SecretString"])["keys"]
            self._keys = {jwk["kid"]: (jwk["alg"], _public_key(jwk)) for jwk in jwks}
        return self._keys

    def verify(self, token: str, now: int) -> dict[str, Any]:
        header_segment, payload_segment, signature_segment = token.split(".")
        header = json.loads(_unb64(header_segment))
        alg, public = self.public_keys()[header["kid"]]
        signature = _unb64(signature_segment)
        if alg == "ES256" and int.from_bytes(signature[32:], "big") > _P256_HALF_ORDER:
            raise ValueError("the floor got a high-S signature")  # as the layer: `high_s`
        _verify(public, alg, signature, f"{header_segment}.{payload_segment}".encode())
        claims: dict[str, Any] = json.loads(_unb64(payload_segment))
        if claims["exp"] <= now or claims["aud"] != self.env["TOKEN_AUDIENCE"]:
            raise ValueError("the floor got a token it cannot accept")
        if claims.get("mid") != self.merchant_id:  # another merchant's token (no registry read)
            raise ValueError("the floor got another merchant's token")
        return claims

    def pay(self, event: dict[str, Any]) -> dict[str, Any]:
        """Without Idempotency-Key: UpdateItem (claim), Decrypt, the processor's PutItem,
        TransactWriteItems (payment + tombstone). With one: TransactWriteItems (key + claim),
        GetItem (the claim: a transaction returns no item), Decrypt, the processor's PutItem,
        TransactWriteItems (payment + tombstone + the key's answer). A replay of the same key
        and body: the first TransactWriteItems fails its condition and returns the answer.
        """
        intent = self._intent(event)
        claimed = self._claim(intent)
        if isinstance(claimed, _Answer):
            return _response(201, claimed.document)
        card = self._card(intent, claimed)
        payment_id = claimed["payment_id"]["S"]
        self._charge(intent, card, payment_id)
        del card
        payment = {
            "payment_id": payment_id,
            "status": "approved",
            "amount": intent.amount,
            "currency": intent.currency,
            "reference": intent.reference,
            "brand": claimed["brand"]["S"],
            "last4": claimed["last4"]["S"],
            "decline_code": None,
            "created_at": _iso(intent.now),
            "merchant_id": self.merchant_id,
        }
        self._finish(intent, payment)
        return _response(201, _response_document(payment))

    def _intent(self, event: dict[str, Any]) -> _Intent:
        request = json.loads(event["body"])
        # Payload 1.0 keeps the client's casing of header names.
        idempotency_key = next(
            (v for k, v in (event.get("headers") or {}).items() if k.lower() == "idempotency-key"),
            None,
        )
        now = int(time.time())
        claims = self.verify(request["token"], now)
        jti, amount, currency = claims["jti"], request["amount"], request["currency"]
        reference = request.get("reference")
        fingerprint = hashlib.sha256(
            json.dumps(
                {"jti": jti, "amount": amount, "currency": currency, "reference": reference},
                sort_keys=True,
                separators=(",", ":"),
            ).encode()
        ).hexdigest()
        key_id = None
        if idempotency_key is not None:
            # As card_tokens.stores.idempotency_key_id: each merchant has its own key space.
            digest = hashlib.sha256(idempotency_key.encode("ascii")).hexdigest()
            merchant = self.merchant_id
            key_id = f"payments#{merchant}#{digest}" if merchant else f"payments#{digest}"
        return _Intent(
            claims, jti, amount, currency, reference, fingerprint, key_id, uuid.uuid4().hex, now
        )

    def _claim(self, intent: _Intent) -> dict[str, Any] | _Answer:
        """The claimed token record, or the answer stored with the Idempotency-Key."""
        dynamodb = self.clients.get("dynamodb")
        claim = self._token_update(
            intent.jti,
            update=CLAIM_UPDATE,
            condition=CLAIMABLE,
            values={
                ":claimed": "claimed",
                ":issued": "issued",
                ":attempt": intent.attempt_id,
                ":attempts": {"SS": [intent.attempt_id]},
                ":fingerprint": intent.fingerprint,
                ":amount": intent.amount,
                ":currency": intent.currency,
                ":reference": intent.reference,
                ":key_id": intent.key_id,
                ":now": intent.now,
                ":lease_end": intent.now + _CLAIM_LEASE_SECONDS,
            },
        )
        if intent.key_id is None:
            token: dict[str, Any] = dynamodb.update_item(**claim, ReturnValues="ALL_NEW")[
                "Attributes"
            ]
            return token
        try:
            dynamodb.transact_write_items(
                TransactItems=[{"Put": self._key_in_progress(intent)}, {"Update": claim}],
                ClientRequestToken=_request_token(intent.attempt_id, "claim"),
            )
        except ClientError as error:
            return _Answer(_stored_answer(error, intent.fingerprint))
        token = dynamodb.get_item(
            TableName=self.env["TOKEN_TABLE_NAME"],
            Key={"jti": {"S": intent.jti}},
            ConsistentRead=True,
            ReturnConsumedCapacity="TOTAL",
        )["Item"]
        if token["claim_attempt_id"]["S"] != intent.attempt_id:
            raise RuntimeError("the floor's claim was taken over")
        return token

    def _key_in_progress(self, intent: _Intent) -> dict[str, Any]:
        return {
            "TableName": self.env["IDEMPOTENCY_TABLE_NAME"],
            "Item": _item(
                {
                    "id": intent.key_id,
                    "fingerprint": intent.fingerprint,
                    "jti": intent.jti,
                    "attempt_id": intent.attempt_id,
                    "progress": "in_progress",
                    "expiration": intent.now + _IDEMPOTENCY_SECONDS,
                }
            ),
            "ConditionExpression": KEY_CLAIMABLE,
            "ExpressionAttributeValues": _item(
                {
                    ":now": intent.now,
                    ":fingerprint": intent.fingerprint,
                    ":in_progress": "in_progress",
                }
            ),
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }

    def _token_update(
        self, jti: str, *, update: str, condition: str, values: dict[str, Any]
    ) -> dict[str, Any]:
        """A conditional update of the token record (its claim, its tombstone)."""
        return {
            "TableName": self.env["TOKEN_TABLE_NAME"],
            "Key": {"jti": {"S": jti}},
            "UpdateExpression": update,
            "ConditionExpression": condition,
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": _item(values),
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }

    def _card(self, intent: _Intent, token: dict[str, Any]) -> dict[str, Any]:
        """The sealed card: KMS Decrypt of the token's data key, then AES-GCM."""
        context = _context(intent.jti, self.env["TOKEN_AUDIENCE"])
        data_key = self.clients.get("kms").decrypt(
            CiphertextBlob=token["encrypted_data_key"]["B"],
            KeyId=self.env["CARD_KEY_ID"],
            EncryptionContext=context,
        )["Plaintext"]
        blob = _unb64(intent.claims["meta_data"])
        card: dict[str, Any] = json.loads(
            AESGCM(data_key).decrypt(blob[1:13], blob[13:], _aad(context))
        )
        return card

    def _charge(self, intent: _Intent, card: dict[str, Any], payment_id: str) -> None:
        """The sandbox's charge: one conditional PutItem on its ledger, keyed on the jti (the
        bench's card is one the sandbox approves)."""
        self.clients.get("dynamodb").put_item(
            TableName=self.env["SANDBOX_LEDGER_TABLE_NAME"],
            Item=_item(
                {
                    "idempotency_key": intent.jti,
                    "payment_id": payment_id,
                    "brand": card["brand"],
                    "last4": card["pan"][-4:],
                    "outcome": "approved",
                    "processor_reference": f"sandbox_{intent.jti}",
                    "amount": intent.amount,
                    "currency": intent.currency,
                }
            ),
            ConditionExpression=LEDGER_NEW,
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )

    def _finish(self, intent: _Intent, payment: dict[str, Any]) -> None:
        """One transaction: the payment record, the token's tombstone, the key's answer."""
        items: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": self.env["PAYMENT_TABLE_NAME"],
                    "Item": _item(
                        {**payment, "jti": intent.jti, "fingerprint": intent.fingerprint}
                    ),
                    "ConditionExpression": "attribute_not_exists(payment_id)",
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            },
            {
                "Update": self._token_update(
                    intent.jti,
                    update=TOMBSTONE_UPDATE,
                    condition=TOMBSTONE_CONDITION,
                    values={
                        ":used": "used",
                        ":payment_id": payment["payment_id"],
                        ":claimed": "claimed",
                        ":fp": intent.fingerprint,
                    },
                )
            },
        ]
        if intent.key_id is not None:
            items.append({"Update": self._key_answer(intent, payment)})
        self.clients.get("dynamodb").transact_write_items(
            TransactItems=items, ClientRequestToken=_request_token(intent.attempt_id, "finish")
        )

    def _key_answer(self, intent: _Intent, payment: dict[str, Any]) -> dict[str, Any]:
        answer = json.dumps(payment, separators=(",", ":"), sort_keys=True)
        return {
            "TableName": self.env["IDEMPOTENCY_TABLE_NAME"],
            "Key": {"id": {"S": str(intent.key_id)}},
            "UpdateExpression": KEY_ANSWER_UPDATE,
            "ExpressionAttributeValues": _item(
                {
                    ":fingerprint": intent.fingerprint,
                    ":jti": intent.jti,
                    ":completed": "completed",
                    ":answer": answer,
                    ":expiration": intent.now + _IDEMPOTENCY_SECONDS,
                }
            ),
        }

    def get(self, event: dict[str, Any]) -> dict[str, Any]:
        payment_id = event["pathParameters"]["payment_id"]
        item = self.clients.get("dynamodb").get_item(
            TableName=self.env["PAYMENT_TABLE_NAME"],
            Key={"payment_id": {"S": payment_id}},
            ConsistentRead=True,
            ReturnConsumedCapacity="TOTAL",
        )["Item"]
        payment = {name: _value(value) for name, value in item.items()}
        if payment.get("merchant_id") != self.merchant_id:
            raise ValueError("the floor got another merchant's payment")
        payment["amount"] = int(payment["amount"])
        return _response(200, _response_document(payment))


def _request_token(attempt_id: str, step: str) -> str:
    """A transaction's ClientRequestToken, as the layer derives it from the attempt."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"card-tokens:{attempt_id}:{step}"))


def _stored_answer(error: ClientError, fingerprint: str) -> dict[str, Any]:
    """The payment stored with the Idempotency-Key, from the claim's failed condition."""
    reasons: list[dict[str, Any]] = error.response.get("CancellationReasons") or []  # type: ignore[assignment]
    if not reasons or reasons[0].get("Code") != "ConditionalCheckFailed":
        raise error
    stored = {name: _value(value) for name, value in reasons[0]["Item"].items()}
    if stored["fingerprint"] != fingerprint or stored["progress"] != "completed":
        raise error  # another body, or still in progress: not on the bench's path
    answer: dict[str, Any] = json.loads(stored["answer"])
    return _response_document(answer)


def _item(values: dict[str, Any]) -> dict[str, Any]:
    item: dict[str, Any] = {}
    for name, value in values.items():
        if value is None:
            item[name] = {"NULL": True}
        elif isinstance(value, int):
            item[name] = {"N": str(value)}
        elif isinstance(value, dict):
            item[name] = value  # already typed, e.g. {"SS": [...]}
        else:
            item[name] = {"S": value}
    return item


def _value(attribute: dict[str, Any]) -> Any:
    (kind, value), *_ = attribute.items()
    return None if kind == "NULL" else value


def _response_document(payment: dict[str, Any]) -> dict[str, Any]:
    return {
        "payment_id": payment["payment_id"],
        "status": payment["status"],
        "amount": payment["amount"],
        "currency": payment["currency"],
        "reference": payment.get("reference"),
        "card": {"brand": payment["brand"], "last4": payment["last4"]},
        "decline_code": payment.get("decline_code"),
        "created_at": payment["created_at"],
    }
