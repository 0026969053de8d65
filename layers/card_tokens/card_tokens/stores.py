"""Token and payment records in DynamoDB: single use by conditional writes, atomic finish."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Protocol

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from card_tokens.aws import dynamodb_client
from card_tokens.aws_errors import error_code, unavailable_on_failure
from card_tokens.errors import InvalidToken, PaymentNotFound, TokenAlreadyUsed
from card_tokens.observability import logger
from card_tokens.records import PaymentRecord, TokenRecord

# Tombstones outlive the token by a day, so a replay is answered 409 for as long as it matters.
TOMBSTONE_SECONDS = 86_400
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _to_item(values: dict[str, Any]) -> dict[str, Any]:
    return {name: _serializer.serialize(value) for name, value in values.items()}


def _from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {name: _deserializer.deserialize(value) for name, value in item.items()}


class TokenAlreadyRedeemed(Exception):
    """The same request (same fingerprint) already paid with this token: answer with that."""

    def __init__(self, payment_id: str) -> None:
        super().__init__("token already redeemed by this request")
        self.payment_id = payment_id


class TokenStore(Protocol):
    def put_issued(self, record: TokenRecord) -> None: ...

    def claim(
        self, *, jti: str, claim_id: str, fingerprint: str, now: int, lease_seconds: int
    ) -> TokenRecord: ...

    def release(self, *, jti: str, claim_id: str) -> None: ...


class PaymentStore(Protocol):
    def put_pending(self, payment: PaymentRecord) -> None: ...

    def record_authorization(self, payment: PaymentRecord, *, jti: str, claim_id: str) -> None: ...

    def get(self, payment_id: str) -> PaymentRecord: ...


class DynamoDBTokenStore:
    def __init__(self, table_name: str) -> None:
        self._table = table_name

    def put_issued(self, record: TokenRecord) -> None:
        item = _to_item(
            {
                "jti": record.jti,
                "status": "issued",
                "brand": record.brand,
                "last4": record.last4,
                "expires_at": record.expires_at,
                "ttl": record.expires_at + TOMBSTONE_SECONDS,
                "encrypted_data_key": record.encrypted_data_key,
            }
        )
        with unavailable_on_failure("dynamodb", "PutItem"):
            dynamodb_client().put_item(
                TableName=self._table,
                Item=item,
                ConditionExpression="attribute_not_exists(jti)",
            )

    def claim(
        self, *, jti: str, claim_id: str, fingerprint: str, now: int, lease_seconds: int
    ) -> TokenRecord:
        """Take the token for one request before its data key is decrypted.

        A claim can be taken over when its lease ran out (the first request died) or by a retry
        of the same request (same fingerprint): the processor's idempotency key still prevents
        a second charge. The same request after the payment is a retry whose answer was lost
        (TokenAlreadyRedeemed); anything else is a second use (TokenAlreadyUsed).
        """
        with unavailable_on_failure("dynamodb", "UpdateItem"):
            try:
                response = dynamodb_client().update_item(
                    TableName=self._table,
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
                    ExpressionAttributeValues=_to_item(
                        {
                            ":claimed": "claimed",
                            ":issued": "issued",
                            ":claim_id": claim_id,
                            ":fingerprint": fingerprint,
                            ":lease_end": now + lease_seconds,
                            ":now": now,
                        }
                    ),
                    ReturnValues="ALL_NEW",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            except ClientError as error:
                if error_code(error) != "ConditionalCheckFailedException":
                    raise
                # ReturnValuesOnConditionCheckFailure puts the item beside the error code.
                stored: dict[str, Any] | None = error.response.get("Item")  # type: ignore[assignment]
                if stored is None:
                    # Signed by us but never stored (or long expired): not a usable token.
                    raise InvalidToken("unknown_jti") from None
                old = _from_item(stored)
                if (
                    old.get("status") == "used"
                    and old.get("claim_fingerprint") == fingerprint
                    and old.get("payment_id")
                ):
                    raise TokenAlreadyRedeemed(old["payment_id"]) from None
                raise TokenAlreadyUsed() from None
        values = _from_item(response["Attributes"])
        encrypted = values.get("encrypted_data_key")
        return TokenRecord(
            jti=jti,
            status="claimed",
            brand=values["brand"],
            last4=values["last4"],
            expires_at=int(values["expires_at"]),
            encrypted_data_key=bytes(encrypted) if encrypted is not None else None,
        )

    def release(self, *, jti: str, claim_id: str) -> None:
        """Give the token back after a failure before the charge, so the client can retry."""
        try:
            dynamodb_client().update_item(
                TableName=self._table,
                Key={"jti": {"S": jti}},
                UpdateExpression=(
                    "SET #status = :issued REMOVE claim_id, claim_fingerprint, claim_expires_at"
                ),
                ConditionExpression="claim_id = :claim_id AND #status = :claimed",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=_to_item(
                    {":issued": "issued", ":claimed": "claimed", ":claim_id": claim_id}
                ),
            )
        except ClientError as error:
            # The lease expires on its own; a failed release only delays a retry.
            logger.warning("token release failed", extra={"aws_error": error_code(error)})
        except Exception:  # noqa: BLE001 - best effort on a path that is already failing
            logger.warning("token release failed", extra={"aws_error": "transport"})


class DynamoDBPaymentStore:
    def __init__(self, payment_table: str, token_table: str) -> None:
        self._table = payment_table
        self._token_table = token_table

    def put_pending(self, payment: PaymentRecord) -> None:
        """The record exists before the charge: no charge without a payment record."""
        item = _to_item(asdict(payment))
        with unavailable_on_failure("dynamodb", "PutItem"):
            try:
                dynamodb_client().put_item(
                    TableName=self._table,
                    Item=item,
                    ConditionExpression="attribute_not_exists(payment_id) OR #status = :pending",
                    ExpressionAttributeNames={"#status": "status"},
                    ExpressionAttributeValues={":pending": {"S": "pending"}},
                )
            except ClientError as error:
                if error_code(error) == "ConditionalCheckFailedException":
                    raise TokenAlreadyUsed() from None
                raise

    def record_authorization(self, payment: PaymentRecord, *, jti: str, claim_id: str) -> None:
        """Payment result and token tombstone in one transaction; the data key is deleted."""
        with unavailable_on_failure("dynamodb", "TransactWriteItems"):
            try:
                dynamodb_client().transact_write_items(
                    TransactItems=[
                        {
                            "Update": {
                                "TableName": self._table,
                                "Key": {"payment_id": {"S": payment.payment_id}},
                                "UpdateExpression": "SET #status = :status, decline_code = :code",
                                "ConditionExpression": "#status = :pending",
                                "ExpressionAttributeNames": {"#status": "status"},
                                "ExpressionAttributeValues": _to_item(
                                    {
                                        ":status": payment.status,
                                        ":code": payment.decline_code,
                                        ":pending": "pending",
                                    }
                                ),
                            }
                        },
                        {
                            "Update": {
                                "TableName": self._token_table,
                                "Key": {"jti": {"S": jti}},
                                "UpdateExpression": (
                                    "SET #status = :used, payment_id = :payment_id "
                                    "REMOVE encrypted_data_key, claim_expires_at"
                                ),
                                "ConditionExpression": (
                                    "claim_id = :claim_id AND #status = :claimed"
                                ),
                                "ExpressionAttributeNames": {"#status": "status"},
                                "ExpressionAttributeValues": _to_item(
                                    {
                                        ":used": "used",
                                        ":payment_id": payment.payment_id,
                                        ":claim_id": claim_id,
                                        ":claimed": "claimed",
                                    }
                                ),
                            }
                        },
                    ]
                )
            except ClientError as error:
                if error_code(error) == "TransactionCanceledException" and any(
                    reason.get("Code") == "ConditionalCheckFailed"
                    for reason in error.response.get("CancellationReasons", [])
                ):
                    # A concurrent retry of the same request finished first.
                    raise TokenAlreadyUsed() from None
                raise

    def get(self, payment_id: str) -> PaymentRecord:
        with unavailable_on_failure("dynamodb", "GetItem"):
            response = dynamodb_client().get_item(
                TableName=self._table, Key={"payment_id": {"S": payment_id}}, ConsistentRead=True
            )
        if "Item" not in response:
            raise PaymentNotFound()
        values = _from_item(response["Item"])
        return PaymentRecord(
            payment_id=values["payment_id"],
            status=values["status"],
            amount=int(values["amount"]),
            currency=values["currency"],
            reference=values.get("reference"),
            brand=values["brand"],
            last4=values["last4"],
            decline_code=values.get("decline_code"),
            created_at=values["created_at"],
        )
