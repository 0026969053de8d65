"""Translate botocore failures into domain errors, in one place for every adapter.

That includes an answer cut short: `read_item` is the one GetItem every adapter uses, so an
answer without its item cannot pass for "there is no item" in one adapter and not another.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from card_tokens.aws import dynamodb_client
from card_tokens.errors import ServiceUnavailable
from card_tokens.observability import logger


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


@contextmanager
def unavailable_on_failure(dependency: str, operation: str) -> Iterator[None]:
    """Any AWS failure left after botocore's retries is a 503 for that dependency.

    Adapters catch the ClientError codes that mean something in the domain first; whatever
    reaches here (throttling, 5xx, timeouts, a disabled key, access denied) fails closed.
    """
    try:
        yield
    except ClientError as error:
        logger.warning(
            "aws call failed",
            extra={
                "dependency": dependency,
                "operation": operation,
                "aws_error": error_code(error),
            },
        )
        raise ServiceUnavailable(dependency) from error
    except BotoCoreError as error:
        logger.warning(
            "aws call failed",
            extra={
                "dependency": dependency,
                "operation": operation,
                "aws_error": type(error).__name__,
            },
        )
        raise ServiceUnavailable(dependency) from error


def read_item(table: str, key: dict[str, Any]) -> dict[str, Any] | None:
    """One item by its key, read consistently; None if there is none.

    AWS reports capacity whenever asked: without it the answer was cut short, and its missing
    Item must not pass for "no such item" (an existing payment would become a 404, a registered
    merchant's registry would read as empty).
    """
    with unavailable_on_failure("dynamodb", "GetItem"):
        response = dynamodb_client().get_item(
            TableName=table, Key=key, ConsistentRead=True, ReturnConsumedCapacity="TOTAL"
        )
    if "ConsumedCapacity" not in response:
        raise ServiceUnavailable("dynamodb")
    item: dict[str, Any] | None = response.get("Item")
    return item
