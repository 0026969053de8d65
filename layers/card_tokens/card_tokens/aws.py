"""AWS clients, built once per container with bounded retries and timeouts."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_secretsmanager import SecretsManagerClient

# Standard retry mode (exponential backoff with jitter, retries throttling and 5xx). Three
# attempts with 1 s connect / 2 s read keep one call under ~10 s in the worst case; the function
# timeout is sized from this.
BOTO_CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": 3},
    connect_timeout=1,
    read_timeout=2,
    tcp_keepalive=True,
)


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
