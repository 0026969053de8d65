"""The floor: each route's AWS calls and crypto primitives made directly, with no framework.

Event in, response out, like a handler, but with nothing between the body and the calls: no
Powertools (resolver, logger, metrics, tracer, idempotency, parameters), no PyJWT, no
TypeSerializer, no validation beyond what the calls need. What a route cannot do without is
here, and nothing else, so handler / floor is the price of the framework and of the checks.

Imports are only what the floor's work needs (boto3, botocore, cryptography, the standard
library): the cold-start bench imports this module in a fresh process as the floor's cold start.
It never imports card_tokens or aws_lambda_powertools.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import time
import uuid
from typing import Any

import boto3
from botocore.config import Config
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
_IDEMPOTENCY_SECONDS = 24 * 3600


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


def _payment_id(jti: str) -> str:
    digest = hashlib.sha256(b"payment:" + jti.encode("ascii")).digest()[:15]
    return "pay_" + base64.b32encode(digest).decode("ascii").lower()


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


class FloorIssuer:
    """POST /tokens: GenerateDataKey, AES-GCM, PutItem, one JWS signature."""

    def __init__(self, environment: dict[str, str], clients: Clients | None = None) -> None:
        self.env = environment
        self.clients = clients or Clients()
        self._key: tuple[str, str, Any] | None = None  # the warm cache: (kid, alg, private key)

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
                "ttl": {"N": str(exp + 86_400)},
                "encrypted_data_key": {"B": data_key["CiphertextBlob"]},
            },
            ConditionExpression="attribute_not_exists(jti)",
        )
        claims = {
            "iss": self.env["TOKEN_ISSUER"],
            "aud": self.env["TOKEN_AUDIENCE"],
            "iat": now,
            "nbf": now,
            "exp": exp,
            "jti": jti,
            "meta_data": _b64(b"\x01" + nonce + sealed),
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


class FloorCashier:
    """POST /payments and GET /payments/{id}: the layer's DynamoDB and KMS calls, in order."""

    def __init__(self, environment: dict[str, str], clients: Clients | None = None) -> None:
        self.env = environment
        self.clients = clients or Clients()
        self._keys: dict[str, tuple[str, Any]] | None = None  # the warm cache: kid → (alg, key)

    def public_keys(self) -> dict[str, tuple[str, Any]]:
        if self._keys is None:
            secret = self.clients.get("secretsmanager").get_secret_value(
                SecretId=self.env["VERIFICATION_KEYS_SECRET_ID"], VersionStage="AWSCURRENT"
            )
            jwks = json.loads(secret["SecretString"])["keys"]
            self._keys = {jwk["kid"]: (jwk["alg"], _public_key(jwk)) for jwk in jwks}
        return self._keys

    def pay(self, event: dict[str, Any]) -> dict[str, Any]:
        request = json.loads(event["body"])
        idempotency_key = event.get("headers", {}).get("idempotency-key")
        header_segment, payload_segment, signature_segment = request["token"].split(".")
        header = json.loads(_unb64(header_segment))
        alg, public = self.public_keys()[header["kid"]]
        _verify(
            public,
            alg,
            _unb64(signature_segment),
            f"{header_segment}.{payload_segment}".encode(),
        )
        claims = json.loads(_unb64(payload_segment))
        now = int(time.time())
        if claims["exp"] <= now or claims["aud"] != self.env["TOKEN_AUDIENCE"]:
            raise ValueError("the floor got a token it cannot accept")
        dynamodb = self.clients.get("dynamodb")
        jti = claims["jti"]
        idempotency_id = None
        if idempotency_key is not None:
            idempotency_id = f"{self.env['AWS_LAMBDA_FUNCTION_NAME']}#{idempotency_key}"
            dynamodb.put_item(
                TableName=self.env["IDEMPOTENCY_TABLE_NAME"],
                Item={
                    "id": {"S": idempotency_id},
                    "expiration": {"N": str(now + _IDEMPOTENCY_SECONDS)},
                    "status": {"S": "INPROGRESS"},
                    "in_progress_expiration": {"N": str((now + 10) * 1000)},
                    "validation": {"S": hashlib.sha256(event["body"].encode()).hexdigest()},
                },
                ConditionExpression="attribute_not_exists(#id) OR #expiry < :now",
                ExpressionAttributeNames={"#id": "id", "#expiry": "expiration"},
                ExpressionAttributeValues={":now": {"N": str(now)}},
            )
        fingerprint = hashlib.sha256(
            json.dumps(
                {
                    "amount": request["amount"],
                    "currency": request["currency"],
                    "reference": request.get("reference"),
                },
                sort_keys=True,
                separators=(",", ":"),
            ).encode()
        ).hexdigest()
        claim_id = uuid.uuid4().hex
        record = dynamodb.update_item(
            TableName=self.env["TOKEN_TABLE_NAME"],
            Key={"jti": {"S": jti}},
            UpdateExpression=(
                "SET #status = :claimed, claim_id = :claim_id, "
                "claim_fingerprint = :fingerprint, claim_expires_at = :lease_end"
            ),
            ConditionExpression=(
                "attribute_exists(jti) AND (#status = :issued OR (#status = :claimed AND "
                "(claim_expires_at < :now OR claim_fingerprint = :fingerprint)))"
            ),
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":claimed": {"S": "claimed"},
                ":issued": {"S": "issued"},
                ":claim_id": {"S": claim_id},
                ":fingerprint": {"S": fingerprint},
                ":lease_end": {"N": str(now + 30)},
                ":now": {"N": str(now)},
            },
            ReturnValues="ALL_NEW",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )["Attributes"]
        payment_id = _payment_id(jti)
        payment = {
            "payment_id": payment_id,
            "status": "pending",
            "amount": request["amount"],
            "currency": request["currency"],
            "reference": request.get("reference"),
            "brand": record["brand"]["S"],
            "last4": record["last4"]["S"],
            "decline_code": None,
            "created_at": _iso(now),
        }
        dynamodb.put_item(
            TableName=self.env["PAYMENT_TABLE_NAME"],
            Item=_item(payment),
            ConditionExpression="attribute_not_exists(payment_id) OR #status = :pending",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={":pending": {"S": "pending"}},
        )
        context = _context(jti, self.env["TOKEN_AUDIENCE"])
        data_key = self.clients.get("kms").decrypt(
            CiphertextBlob=record["encrypted_data_key"]["B"],
            KeyId=self.env["CARD_KEY_ID"],
            EncryptionContext=context,
        )["Plaintext"]
        blob = _unb64(claims["meta_data"])
        card = json.loads(AESGCM(data_key).decrypt(blob[1:13], blob[13:], _aad(context)))
        del card  # the sandbox processor approves; charging it is not AWS work
        payment["status"] = "approved"
        dynamodb.transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": self.env["PAYMENT_TABLE_NAME"],
                        "Key": {"payment_id": {"S": payment_id}},
                        "UpdateExpression": "SET #status = :status, decline_code = :code",
                        "ConditionExpression": "#status = :pending",
                        "ExpressionAttributeNames": {"#status": "status"},
                        "ExpressionAttributeValues": {
                            ":status": {"S": "approved"},
                            ":code": {"NULL": True},
                            ":pending": {"S": "pending"},
                        },
                    }
                },
                {
                    "Update": {
                        "TableName": self.env["TOKEN_TABLE_NAME"],
                        "Key": {"jti": {"S": jti}},
                        "UpdateExpression": (
                            "SET #status = :used, payment_id = :payment_id "
                            "REMOVE encrypted_data_key, claim_expires_at"
                        ),
                        "ConditionExpression": "claim_id = :claim_id AND #status = :claimed",
                        "ExpressionAttributeNames": {"#status": "status"},
                        "ExpressionAttributeValues": {
                            ":used": {"S": "used"},
                            ":payment_id": {"S": payment_id},
                            ":claim_id": {"S": claim_id},
                            ":claimed": {"S": "claimed"},
                        },
                    }
                },
            ]
        )
        body = _response_document(payment)
        if idempotency_id is not None:
            dynamodb.update_item(
                TableName=self.env["IDEMPOTENCY_TABLE_NAME"],
                Key={"id": {"S": idempotency_id}},
                UpdateExpression="SET #data = :data, #expiry = :expiry, #status = :status",
                ExpressionAttributeNames={
                    "#data": "data",
                    "#expiry": "expiration",
                    "#status": "status",
                },
                ExpressionAttributeValues={
                    ":data": {"S": json.dumps(body, separators=(",", ":"))},
                    ":expiry": {"N": str(now + _IDEMPOTENCY_SECONDS)},
                    ":status": {"S": "COMPLETED"},
                },
            )
        return _response(201, body)

    def get(self, event: dict[str, Any]) -> dict[str, Any]:
        payment_id = event["pathParameters"]["payment_id"]
        item = self.clients.get("dynamodb").get_item(
            TableName=self.env["PAYMENT_TABLE_NAME"],
            Key={"payment_id": {"S": payment_id}},
            ConsistentRead=True,
        )["Item"]
        payment = {name: _value(value) for name, value in item.items()}
        payment["amount"] = int(payment["amount"])
        return _response(200, _response_document(payment))


def _item(values: dict[str, Any]) -> dict[str, Any]:
    item: dict[str, Any] = {}
    for name, value in values.items():
        if value is None:
            item[name] = {"NULL": True}
        elif isinstance(value, int):
            item[name] = {"N": str(value)}
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
