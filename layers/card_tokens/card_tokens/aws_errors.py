"""Translate botocore failures into domain errors, in one place for every adapter."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import BotoCoreError, ClientError

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
