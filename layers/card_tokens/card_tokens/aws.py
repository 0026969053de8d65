"""AWS clients, built once per container with bounded retries and timeouts."""

from __future__ import annotations

import math
from functools import cache
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_secretsmanager import SecretsManagerClient

# Standard retry mode: throttling, 5xx and transport errors are retried with jittered
# exponential backoff (the n-th retry waits at most 2**(n-1) s). The numbers are small because
# the AWS calls of one request run one after another and must all fit in the function timeout:
# see worst_case_call_seconds() and tests/template/test_time_budget.py.
CONNECT_TIMEOUT_SECONDS = 0.5
READ_TIMEOUT_SECONDS = 1.0
TOTAL_MAX_ATTEMPTS = 2

BOTO_CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": TOTAL_MAX_ATTEMPTS},
    connect_timeout=CONNECT_TIMEOUT_SECONDS,
    read_timeout=READ_TIMEOUT_SECONDS,
    tcp_keepalive=True,
)


def worst_case_call_seconds() -> float:
    """One AWS call that times out on every attempt, with the longest backoff between them."""
    attempts = TOTAL_MAX_ATTEMPTS * (CONNECT_TIMEOUT_SECONDS + READ_TIMEOUT_SECONDS)
    backoff = sum(2.0 ** (retry - 1) for retry in range(1, TOTAL_MAX_ATTEMPTS))
    return float(attempts + backoff)


def no_deadline() -> float:
    """Time left when nothing bounds it (tests, tools): the default of every `time_left`."""
    return math.inf


def _client(service: str) -> Any:
    # AWS_ENDPOINT_URL (the local stack) is honoured by boto3 itself.
    return boto3.session.Session().client(service, config=BOTO_CONFIG)  # type: ignore[call-overload]


@cache
def kms_client() -> KMSClient:
    client: KMSClient = _client("kms")
    return client


@cache
def dynamodb_client() -> DynamoDBClient:
    client: DynamoDBClient = _client("dynamodb")
    return client


@cache
def secretsmanager_client() -> SecretsManagerClient:
    client: SecretsManagerClient = _client("secretsmanager")
    return client
