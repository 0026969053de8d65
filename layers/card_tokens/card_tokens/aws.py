"""AWS clients, built once per container with bounded retries and timeouts."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any

import botocore.session
from botocore import UNSIGNED
from botocore.config import Config
from botocore.loaders import Loader, create_loader

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


def ensure_time(
    time_left: Callable[[], float], calls: int, error: Exception, *, plus_seconds: float = 0.0
) -> None:
    """Stop before steps whose worst case would outlive the function: answer, retry later.

    plus_seconds: the worst case of steps that are not AWS calls (the processor's).
    """
    if time_left() < calls * worst_case_call_seconds() + plus_seconds:
        raise error


# The services the layer calls; one client each, built on first use and kept (below).
SERVICES = ("dynamodb", "kms", "secretsmanager")


@cache
def _data_loader() -> Loader:
    """botocore's parsed service models and endpoint rules, shared by every client.

    Read-only data, with no credential or connection in it: it may go into a SnapStart
    snapshot (card_tokens.snapstart), and a client rebuilt after a restore reuses it.
    """
    return create_loader()


def _session() -> botocore.session.Session:
    session = botocore.session.Session()
    session.register_component("data_loader", _data_loader())
    return session


def _client(service: str) -> Any:
    # A fresh session per client, as boto3.session.Session().client(...) made: each client
    # resolves its own credentials. AWS_ENDPOINT_URL (the local stack) is honoured by botocore.
    return _session().create_client(service, config=BOTO_CONFIG)


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


def forget_clients() -> None:
    """Drop the cached clients, with their connection pools and credentials; the next
    kms_client() (and the others) builds a new one."""
    for client in (kms_client, dynamodb_client, secretsmanager_client):
        client.cache_clear()


def load_service_models() -> None:
    """Parse what building the clients needs into the shared loader, and keep no client.

    Each service gets a throwaway unsigned client: no credential is resolved, no request is
    sent, no connection is opened. Run before a SnapStart snapshot (card_tokens.snapstart).
    """
    session = _session()
    unsigned = BOTO_CONFIG.merge(Config(signature_version=UNSIGNED))
    for service in SERVICES:
        session.create_client(service, config=unsigned)
