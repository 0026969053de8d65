"""The payment state machine's storage: token, payment and idempotency-key records in DynamoDB.

Every write here survives its own retry. botocore resends a write whose answer was lost; the
resend then meets the state its first copy wrote. So each conditional write carries the id of
the attempt that makes it, asks DynamoDB for the item when the condition fails, and recognizes
"already done by this same attempt" (or by the same request) instead of reporting a conflict.
Transactions also carry a ClientRequestToken derived from the attempt, which makes AWS itself
answer a resend within ten minutes with the first outcome.

The states are described in docs/reliability.md.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any, Protocol

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from card_tokens.aws import dynamodb_client
from card_tokens.aws_errors import error_code, read_item, unavailable_on_failure
from card_tokens.config import CLOCK_LEEWAY_SECONDS
from card_tokens.errors import InvalidToken, PaymentNotFound, ServiceUnavailable, TokenAlreadyUsed
from card_tokens.observability import logger
from card_tokens.processor import ChargeResult
from card_tokens.records import PaymentRecord, TokenRecord, iso_utc

# Tombstones outlive the token by a day, so a replay is answered 409 for as long as it matters.
TOMBSTONE_SECONDS = 86_400
# A retried request with the same Idempotency-Key gets the first answer for this long.
IDEMPOTENCY_WINDOW_SECONDS = 24 * 3600
# The reconciler's index is spread over this many partition values, to keep writes to it cool.
SWEEP_SHARDS = 4
SWEEP_INDEX = "sweep"

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()

# Shared by every write that claims a token. claim_attempts is the set of every attempt that
# held this claim: ADD makes a resend add nothing. An attempt that finds another one in it must
# ask the processor before charging (that attempt may have charged), and may not give the
# token back.
_CLAIM_UPDATE = (
    "SET #status = :claimed, claim_attempt_id = :attempt, claim_fingerprint = :fingerprint, "
    "claim_amount = :amount, claim_currency = :currency, claim_reference = :reference, "
    "claim_key_id = :key_id, claimed_at = :now, claim_lease_ends_at = :lease_end, "
    "sweep_at = :lease_end ADD claim_attempts :attempts"
)
# Free, or held by the same request (same fingerprint): a retry may always take over its own.
_CLAIMABLE = (
    "attribute_exists(jti) AND "
    "(#status = :issued OR (#status = :claimed AND claim_fingerprint = :fingerprint))"
)
# A lapsed claim of another request, taken over after the processor said it has no charge.
_LAPSED_CLAIM = "#status = :claimed AND claim_attempt_id = :lapsed_attempt"
_CLAIM_FIELDS = (
    "claim_attempt_id, claim_attempts, claim_fingerprint, claim_amount, "
    "claim_currency, claim_reference, claim_key_id, claimed_at, claim_lease_ends_at"
)
# An Idempotency-Key record that is new, expired, or this same request still in progress (its
# earlier attempt died).
_KEY_CLAIMABLE = (
    "attribute_not_exists(id) OR expiration < :now OR "
    "(fingerprint = :fingerprint AND progress = :in_progress)"
)
# A paid token keeps only its tombstone: no data key, off the reconciler's index.
_TOMBSTONE_UPDATE = (
    "SET #status = :used, payment_id = :payment_id "
    "REMOVE encrypted_data_key, sweep_shard, sweep_at, claim_lease_ends_at, claim_attempts"
)
_TOMBSTONE_CONDITION = "#status = :claimed AND claim_fingerprint = :fp"
_KEY_ANSWER_UPDATE = (
    "SET fingerprint = :fingerprint, jti = :jti, progress = :completed, "
    "answer = :answer, expiration = :expiration"
)


def _to_item(values: dict[str, Any]) -> dict[str, Any]:
    return {name: _serializer.serialize(value) for name, value in values.items()}


def _from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {name: _deserializer.deserialize(value) for name, value in item.items()}


def sweep_shard(jti: str) -> int:
    return hashlib.sha256(jti.encode("ascii")).digest()[0] % SWEEP_SHARDS


def idempotency_key_id(key: str, merchant_id: str | None) -> str:
    """The record id of an Idempotency-Key (hashed: a key is the client's text, of any shape).

    Each merchant has its own key space: one merchant's key never blocks or answers another's.
    """
    digest = hashlib.sha256(key.encode("ascii")).hexdigest()
    return f"payments#{merchant_id}#{digest}" if merchant_id else f"payments#{digest}"


def request_token(attempt_id: str, step: str) -> str:
    """A ClientRequestToken (≤ 36 characters) unique to one step of one attempt."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"card-tokens:{attempt_id}:{step}"))


@dataclass(frozen=True)
class PaymentIntent:
    """What one payment request asks for; two requests are 'the same' if the fingerprints match."""

    jti: str
    amount: int
    currency: str
    reference: str | None
    key_id: str | None = None  # the Idempotency-Key's record, if the request had a key

    @property
    def fingerprint(self) -> str:
        # Keyed on jti, never on the token string: a token has one identity whatever its spelling.
        fields = {
            "jti": self.jti,
            "amount": self.amount,
            "currency": self.currency,
            "reference": self.reference,
        }
        canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True, repr=False)
class Claim:
    """A token held by one attempt of one intent, with what paying needs from its record."""

    attempt_id: str
    intent: PaymentIntent
    brand: str
    last4: str
    expires_at: int
    lease_ends_at: int
    encrypted_data_key: bytes | None
    payment_id: str  # drawn at issue, kept in the token record
    merchant_id: str | None
    # Taken over from another attempt of the same request, which may have reached the processor.
    inherited: bool = False

    def __repr__(self) -> str:
        return f"Claim(attempt_id={self.attempt_id!r}, inherited={self.inherited})"


class Answered(Exception):
    """The request was already answered (same key and body, or same body): here is its payment."""

    def __init__(self, payment: PaymentRecord) -> None:
        super().__init__("payment already recorded")
        self.payment = payment


class ClaimLapsed(Exception):
    """Another request holds the token and its lease ran out: its charge is in doubt."""

    def __init__(self, claim: Claim) -> None:
        super().__init__("another request's claim has lapsed")
        self.claim = claim


class IdempotencyKeyConflict(Exception):
    """The Idempotency-Key belongs to another request body."""


class TokenStore(Protocol):
    def put_issued(self, record: TokenRecord) -> None: ...


class PaymentStates(Protocol):
    def begin(self, intent: PaymentIntent, *, attempt_id: str, now: int, lease: int) -> Claim: ...

    def take_over(
        self, intent: PaymentIntent, *, attempt_id: str, lapsed: Claim, now: int, lease: int
    ) -> Claim: ...

    def release(self, intent: PaymentIntent, attempt_id: str, *, sole_attempt: bool) -> None: ...

    def finish(self, claim: Claim, result: ChargeResult, *, now: int) -> PaymentRecord: ...

    def get(self, payment_id: str) -> PaymentRecord: ...

    def claim_of(self, jti: str) -> Claim | None: ...

    def due_for_sweep(self, now: int) -> Iterator[str]: ...

    def strip_data_key(self, jti: str, *, now: int) -> bool: ...

    def strip_claimed_data_key(self, jti: str, *, now: int) -> bool: ...


class DynamoDBTokenStore:
    def __init__(self, table_name: str) -> None:
        self._table = table_name

    def put_issued(self, record: TokenRecord) -> None:
        if record.encrypted_data_key is None:
            raise ValueError("an issued token has a data key")
        item = _to_item(
            {
                "jti": record.jti,
                "status": "issued",
                "brand": record.brand,
                "last4": record.last4,
                "expires_at": record.expires_at,
                "ttl": record.expires_at + TOMBSTONE_SECONDS,
                "payment_id": record.payment_id,
                **({"merchant_id": record.merchant_id} if record.merchant_id else {}),
                "encrypted_data_key": record.encrypted_data_key,
                "sweep_shard": sweep_shard(record.jti),
                "sweep_at": record.expires_at + CLOCK_LEEWAY_SECONDS,
            }
        )
        with unavailable_on_failure("dynamodb", "PutItem"):
            try:
                dynamodb_client().put_item(
                    TableName=self._table,
                    Item=item,
                    ConditionExpression="attribute_not_exists(jti)",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            except ClientError as error:
                if error_code(error) != "ConditionalCheckFailedException":
                    raise
                # The data key is fresh and random: finding it stored means our own first copy
                # committed and botocore resent it after its answer was lost.
                stored = _failed_item(error)
                if stored is None or stored.get("encrypted_data_key") != item["encrypted_data_key"]:
                    raise ServiceUnavailable("dynamodb") from None


def _failed_item(error: ClientError) -> dict[str, Any] | None:
    """The item ReturnValuesOnConditionCheckFailure put beside a ConditionalCheckFailed."""
    item: dict[str, Any] | None = error.response.get("Item")  # type: ignore[assignment]
    return item


def _cancellation_items(error: ClientError) -> list[tuple[str, dict[str, Any] | None]]:
    """(code, item) per transaction item, or ServiceUnavailable if not a condition failure."""
    if error_code(error) != "TransactionCanceledException":
        raise error
    reasons = error.response.get("CancellationReasons") or []
    codes = [reason.get("Code", "None") for reason in reasons]
    if "ConditionalCheckFailed" not in codes:
        raise error  # a conflict with a concurrent transaction, throttling, ...: retryable
    return [(str(reason.get("Code", "None")), reason.get("Item")) for reason in reasons]  # type: ignore[misc]


class DynamoDBPaymentStates:
    """PaymentStates on three DynamoDB tables: tokens, payments and idempotency keys."""

    def __init__(self, *, token_table: str, payment_table: str, idempotency_table: str) -> None:
        self._tokens = token_table
        self._payments = payment_table
        self._keys = idempotency_table

    # ------------------------------------------------------------------ claiming

    def begin(self, intent: PaymentIntent, *, attempt_id: str, now: int, lease: int) -> Claim:
        """Claim the token for this attempt, with the key's record when there is a key.

        Raises Answered (replay), IdempotencyKeyConflict, ClaimLapsed, TokenAlreadyUsed or
        InvalidToken (a jti that was never stored).
        """
        return self._claim(intent, attempt_id, now, lease, condition=_CLAIMABLE, lapsed=None)

    def take_over(
        self, intent: PaymentIntent, *, attempt_id: str, lapsed: Claim, now: int, lease: int
    ) -> Claim:
        """Claim a token whose lapsed claim the processor has no charge for."""
        return self._claim(intent, attempt_id, now, lease, condition=_LAPSED_CLAIM, lapsed=lapsed)

    def _claim(
        self,
        intent: PaymentIntent,
        attempt_id: str,
        now: int,
        lease: int,
        *,
        condition: str,
        lapsed: Claim | None,
    ) -> Claim:
        values: dict[str, Any] = {
            ":claimed": "claimed",
            ":issued": "issued",
            ":attempt": attempt_id,
            ":attempts": {attempt_id},
            ":fingerprint": intent.fingerprint,
            ":amount": intent.amount,
            ":currency": intent.currency,
            ":reference": intent.reference,
            ":key_id": intent.key_id,
            ":now": now,
            ":lease_end": now + lease,
        }
        if lapsed is not None:
            values[":lapsed_attempt"] = lapsed.attempt_id
        update: dict[str, Any] = {
            "TableName": self._tokens,
            "Key": {"jti": {"S": intent.jti}},
            "UpdateExpression": _CLAIM_UPDATE,
            "ConditionExpression": condition,
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": _to_item(_used_values(values, condition, _CLAIM_UPDATE)),
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        try:
            return self._write_claim(intent, attempt_id, update, now)
        except ServiceUnavailable:
            # The write may have committed with its answer lost: give back what this attempt
            # may hold, so a failure before the charge leaves nothing a client can see.
            self.release(intent, attempt_id, sole_attempt=True)
            raise

    def _write_claim(
        self, intent: PaymentIntent, attempt_id: str, update: dict[str, Any], now: int
    ) -> Claim:
        if intent.key_id is None:
            with unavailable_on_failure("dynamodb", "UpdateItem"):
                try:
                    response = dynamodb_client().update_item(**update, ReturnValues="ALL_NEW")
                except ClientError as error:
                    if error_code(error) != "ConditionalCheckFailedException":
                        raise
                    self._refused(intent, _failed_item(error), now)
            return self._claim_from(response.get("Attributes"), attempt_id, intent)
        claim_items: list[Any] = [
            {"Put": self._key_in_progress(intent, attempt_id, now)},
            {"Update": update},
        ]
        with unavailable_on_failure("dynamodb", "TransactWriteItems"):
            try:
                dynamodb_client().transact_write_items(
                    TransactItems=claim_items,
                    ClientRequestToken=request_token(attempt_id, "claim"),
                )
            except ClientError as error:
                (key_code, key_item), (claim_code, token_item) = _cancellation_items(error)
                if key_code == "ConditionalCheckFailed":
                    self._key_refused(intent, key_item)
                if claim_code == "ConditionalCheckFailed":
                    self._refused(intent, token_item, now)
                raise
        # A transaction returns no item: read what the claim holds (data key, card, holders).
        item = read_item(self._tokens, {"jti": {"S": intent.jti}})
        return self._claim_from(item, attempt_id, intent)

    def _key_in_progress(self, intent: PaymentIntent, attempt_id: str, now: int) -> dict[str, Any]:
        return {
            "TableName": self._keys,
            "Item": _to_item(
                {
                    "id": intent.key_id,
                    "fingerprint": intent.fingerprint,
                    "jti": intent.jti,
                    "attempt_id": attempt_id,
                    "progress": "in_progress",
                    "expiration": now + IDEMPOTENCY_WINDOW_SECONDS,
                }
            ),
            "ConditionExpression": _KEY_CLAIMABLE,
            "ExpressionAttributeValues": _to_item(
                {":now": now, ":fingerprint": intent.fingerprint, ":in_progress": "in_progress"}
            ),
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }

    def _key_refused(self, intent: PaymentIntent, item: dict[str, Any] | None) -> None:
        if item is None:
            raise ServiceUnavailable("dynamodb")  # the answer was cut short: say nothing
        stored = _from_item(item)
        if stored.get("fingerprint") != intent.fingerprint:
            raise IdempotencyKeyConflict()
        answer = stored.get("answer")
        if stored.get("progress") != "completed" or not isinstance(answer, str):
            raise ServiceUnavailable("dynamodb")
        raise Answered(PaymentRecord.from_json(answer))

    def _refused(self, intent: PaymentIntent, item: dict[str, Any] | None, now: int) -> None:
        """Why the token could not be claimed, from the item as the failed condition saw it."""
        if item is None:
            # Signed by us but never stored (or long expired): not a usable token.
            raise InvalidToken("unknown_jti")
        stored = _from_item(item)
        status = stored.get("status")
        if status == "used":
            if stored.get("claim_fingerprint") == intent.fingerprint:
                # The same request again (its answer was lost): the same payment, no charge.
                payment = self.get(str(stored["payment_id"]))
                if intent.key_id is not None:
                    self._remember_answer(intent, payment, now)
                raise Answered(payment)
            raise TokenAlreadyUsed()
        if status == "claimed":
            if int(stored.get("claim_lease_ends_at", 0)) < now:
                raise ClaimLapsed(_claim_of(stored, inherited=False))
            raise TokenAlreadyUsed()  # another request holds it now
        if status == "expired":
            raise InvalidToken("expired")
        raise ServiceUnavailable("dynamodb")  # an answer we cannot read: nothing is decided

    def _claim_from(
        self, item: dict[str, Any] | None, attempt_id: str, intent: PaymentIntent
    ) -> Claim:
        if item is None:
            raise ServiceUnavailable("dynamodb")  # a success without the item: cut short
        stored = _from_item(item)
        if stored.get("status") != "claimed" or (
            stored.get("claim_fingerprint") != intent.fingerprint
        ):
            raise ServiceUnavailable("dynamodb")  # changed under us: a retry starts afresh
        others = set(stored.get("claim_attempts", ())) - {attempt_id}
        claim = _claim_of(stored, inherited=bool(others))
        if stored.get("claim_attempt_id") != attempt_id:
            # Another attempt of the same request took over between our write and this read.
            # Both may go on: they charge under one idempotency key with the same parameters,
            # and whichever records first wins. This one asks the processor first.
            return replace(claim, attempt_id=attempt_id, inherited=True)
        return claim

    def claim_of(self, jti: str) -> Claim | None:
        """The claim on a token now (consistent read), or None if nobody holds it."""
        item = read_item(self._tokens, {"jti": {"S": jti}})
        if item is None:
            return None
        stored = _from_item(item)
        return _claim_of(stored, inherited=False) if stored.get("status") == "claimed" else None

    def release(self, intent: PaymentIntent, attempt_id: str, *, sole_attempt: bool) -> None:
        """Give the token back: this attempt failed, and nothing was charged under it.

        With sole_attempt, only if no other attempt ever held the claim (one might have
        charged). Best effort: if it fails, the claim lapses and a retry or the reconciler
        settles it.
        """
        condition = "#status = :claimed AND claim_attempt_id = :attempt"
        if sole_attempt:
            condition += " AND size(claim_attempts) = :one"
        update: dict[str, Any] = {
            "TableName": self._tokens,
            "Key": {"jti": {"S": intent.jti}},
            "UpdateExpression": (
                f"SET #status = :issued, sweep_at = expires_at + :leeway REMOVE {_CLAIM_FIELDS}"
            ),
            "ConditionExpression": condition,
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": _to_item(
                _used_values(
                    {
                        ":issued": "issued",
                        ":claimed": "claimed",
                        ":attempt": attempt_id,
                        ":leeway": CLOCK_LEEWAY_SECONDS,
                        ":one": 1,
                    },
                    condition,
                    "SET #status = :issued, sweep_at = expires_at + :leeway",
                )
            ),
        }
        try:
            if intent.key_id is None:
                dynamodb_client().update_item(**update)
                return
            key_delete = {
                "TableName": self._keys,
                "Key": {"id": {"S": intent.key_id}},
                "ConditionExpression": "attribute_not_exists(id) OR "
                "(attempt_id = :attempt AND progress = :in_progress)",
                "ExpressionAttributeValues": _to_item(
                    {":attempt": attempt_id, ":in_progress": "in_progress"}
                ),
            }
            items: list[Any] = [{"Update": update}, {"Delete": key_delete}]
            dynamodb_client().transact_write_items(
                TransactItems=items,
                ClientRequestToken=request_token(attempt_id, "release"),
            )
        except ClientError as error:
            # Includes our own resend finding the token released already: nothing to do.
            logger.warning("token release failed", extra={"aws_error": error_code(error)})
        except Exception:  # noqa: BLE001 - best effort on a path that is already failing
            logger.warning("token release failed", extra={"aws_error": "transport"})

    # ------------------------------------------------------------------ finishing

    def finish(self, claim: Claim, result: ChargeResult, *, now: int) -> PaymentRecord:
        """Record the charge: payment record, token tombstone (data key gone), the key's answer.

        One transaction, conditioned on the claim's fingerprint rather than on the attempt: any
        attempt of the same request charged the same (one idempotency key, one charge), so
        whichever finishes first records it and the others read it back.
        """
        intent = claim.intent
        payment = PaymentRecord(
            payment_id=claim.payment_id,
            status="approved" if result.outcome == "approved" else "declined",
            amount=result.amount,
            currency=result.currency,
            reference=intent.reference,
            brand=claim.brand,
            last4=claim.last4,
            decline_code=None if result.outcome == "approved" else result.decline_code,
            created_at=iso_utc(now),
            merchant_id=claim.merchant_id,
        )
        if (result.amount, result.currency) != (intent.amount, intent.currency):
            # The processor's record is the truth about money; this should never happen.
            logger.error("charge differs from its claim", extra={"payment_id": payment.payment_id})
        items: list[Any] = [
            {
                "Put": {
                    "TableName": self._payments,
                    "Item": _to_item(
                        {
                            **payment.to_item(),
                            "jti": intent.jti,
                            "fingerprint": intent.fingerprint,
                        }
                    ),
                    "ConditionExpression": "attribute_not_exists(payment_id)",
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            },
            {
                "Update": {
                    "TableName": self._tokens,
                    "Key": {"jti": {"S": intent.jti}},
                    "UpdateExpression": _TOMBSTONE_UPDATE,
                    "ConditionExpression": _TOMBSTONE_CONDITION,
                    "ExpressionAttributeNames": {"#status": "status"},
                    "ExpressionAttributeValues": _to_item(
                        {
                            ":used": "used",
                            ":payment_id": payment.payment_id,
                            ":claimed": "claimed",
                            ":fp": intent.fingerprint,
                        }
                    ),
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            },
        ]
        if intent.key_id is not None:
            items.append({"Update": self._key_answer(intent, payment, now)})
        with unavailable_on_failure("dynamodb", "FinishPayment"):
            try:
                dynamodb_client().transact_write_items(
                    TransactItems=items,
                    ClientRequestToken=request_token(claim.attempt_id, "finish"),
                )
            except ClientError as error:
                reasons = _cancellation_items(error)
                (payment_code, payment_item), (claim_code, _) = reasons[0], reasons[1]
                if payment_code == "ConditionalCheckFailed" and payment_item is not None:
                    stored = _from_item(payment_item)
                    if stored.get("fingerprint") == intent.fingerprint:
                        # Our own resend, or another attempt of this request, recorded it.
                        return PaymentRecord.from_item(stored)
                    raise TokenAlreadyUsed() from None
                if claim_code == "ConditionalCheckFailed":
                    # Charged, but the token is no longer ours: only a lapsed lease can do this.
                    logger.error(
                        "claim lost after charge", extra={"payment_id": payment.payment_id}
                    )
                raise
        return payment

    def _key_answer(
        self, intent: PaymentIntent, payment: PaymentRecord, now: int
    ) -> dict[str, Any]:
        # No condition: a key record that expired meanwhile is written anew, never a blocker.
        return {
            "TableName": self._keys,
            "Key": {"id": {"S": str(intent.key_id)}},
            "UpdateExpression": _KEY_ANSWER_UPDATE,
            "ExpressionAttributeValues": _to_item(
                {
                    ":fingerprint": intent.fingerprint,
                    ":jti": intent.jti,
                    ":completed": "completed",
                    ":answer": payment.to_json(),
                    ":expiration": now + IDEMPOTENCY_WINDOW_SECONDS,
                }
            ),
        }

    def _remember_answer(self, intent: PaymentIntent, payment: PaymentRecord, now: int) -> None:
        """A key first seen after its payment was recorded (by a retry without it): store it."""
        try:
            dynamodb_client().update_item(
                **self._key_answer(intent, payment, now),
                ConditionExpression="attribute_not_exists(id) OR fingerprint = :fingerprint",
            )
        except ClientError as error:
            logger.warning("idempotency answer not stored", extra={"aws_error": error_code(error)})

    # ------------------------------------------------------------------ reading and sweeping

    def get(self, payment_id: str) -> PaymentRecord:
        item = read_item(self._payments, {"payment_id": {"S": payment_id}})
        if item is None:
            raise PaymentNotFound()
        return PaymentRecord.from_item(_from_item(item))

    def due_for_sweep(self, now: int) -> Iterator[str]:
        """The jti of every token whose claim lapsed or whose lifetime ended, by the index."""
        paginator = dynamodb_client().get_paginator("query")
        for shard in range(SWEEP_SHARDS):
            pages = paginator.paginate(
                TableName=self._tokens,
                IndexName=SWEEP_INDEX,
                KeyConditionExpression="sweep_shard = :shard AND sweep_at < :now",
                ExpressionAttributeValues=_to_item({":shard": shard, ":now": now}),
            )
            for page in pages:
                for item in page.get("Items", []):
                    yield str(item["jti"]["S"])

    def strip_data_key(self, jti: str, *, now: int) -> bool:
        """A token past its lifetime, never paid: its data key (and so its CVV) goes now."""
        try:
            dynamodb_client().update_item(
                TableName=self._tokens,
                Key={"jti": {"S": jti}},
                UpdateExpression=(
                    "SET #status = :expired REMOVE encrypted_data_key, sweep_shard, sweep_at"
                ),
                ConditionExpression="#status = :issued AND expires_at < :cutoff",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=_to_item(
                    {
                        ":expired": "expired",
                        ":issued": "issued",
                        ":cutoff": now - CLOCK_LEEWAY_SECONDS,
                    }
                ),
            )
        except ClientError as error:
            if error_code(error) != "ConditionalCheckFailedException":
                raise ServiceUnavailable("dynamodb") from error
            return False  # claimed, paid or not yet expired: nothing to strip
        return True

    def strip_claimed_data_key(self, jti: str, *, now: int) -> bool:
        """An expired token whose lapsed claim stays in doubt (its processor's lookup cannot be
        trusted yet): the data key goes now, the claim stays, so a charge found later is still
        recorded and no CVV outlives its token by more than a sweep."""
        try:
            dynamodb_client().update_item(
                TableName=self._tokens,
                Key={"jti": {"S": jti}},
                UpdateExpression="REMOVE encrypted_data_key",
                ConditionExpression=(
                    "#status = :claimed AND claim_lease_ends_at < :now AND expires_at < :cutoff"
                ),
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=_to_item(
                    {":claimed": "claimed", ":now": now, ":cutoff": now - CLOCK_LEEWAY_SECONDS}
                ),
            )
        except ClientError as error:
            if error_code(error) != "ConditionalCheckFailedException":
                raise ServiceUnavailable("dynamodb") from error
            return False  # paid, released, still leased or not yet expired
        return True


def _claim_of(stored: dict[str, Any], *, inherited: bool) -> Claim:
    key = stored.get("encrypted_data_key")
    try:
        return Claim(
            attempt_id=str(stored["claim_attempt_id"]),
            intent=PaymentIntent(
                jti=str(stored["jti"]),
                amount=int(stored["claim_amount"]),
                currency=str(stored["claim_currency"]),
                reference=stored.get("claim_reference"),
                key_id=stored.get("claim_key_id"),
            ),
            brand=str(stored["brand"]),
            last4=str(stored["last4"]),
            expires_at=int(stored["expires_at"]),
            lease_ends_at=int(stored["claim_lease_ends_at"]),
            encrypted_data_key=bytes(key) if key is not None else None,
            payment_id=str(stored["payment_id"]),
            merchant_id=stored.get("merchant_id"),
            inherited=inherited,
        )
    except KeyError:
        raise ServiceUnavailable("dynamodb") from None  # an item cut short: nothing is decided


def _require(response: dict[str, Any] | Any, field: str) -> None:
    if field not in response:
        raise ServiceUnavailable("dynamodb")


def _used_values(values: dict[str, Any], *expressions: str) -> dict[str, Any]:
    """Only the placeholders the expressions use (DynamoDB refuses unused ones)."""
    text = " ".join(expressions)
    return {name: value for name, value in values.items() if name in text}
