"""Merchants of the local stack: registered through the operator's registry (as `card-tokens
merchants add` does), each with a local IAM user whose keys sign its /payments requests.

`make run` registers the demo merchant; tests add more with `add_local_merchant`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from card_tokens_client.merchants import MerchantRegistry
from local.iam import CredentialsFile, LocalUser
from local.provision import physical_name

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

MERCHANT_TABLE = "MerchantTable"
DEMO_MERCHANT = "demo"
# In the repository's ignored area (.gitignore): an AWS shared credentials file, a profile per
# local merchant, for AWS_SHARED_CREDENTIALS_FILE.
CREDENTIALS_FILE = Path(__file__).resolve().parent.parent / ".local-stack" / "credentials"


def add_credentials_option(parser: argparse.ArgumentParser) -> None:
    """--credentials-file, for the commands that read or write the local merchants' keys."""
    parser.add_argument(
        "--credentials-file",
        type=Path,
        default=CREDENTIALS_FILE,
        metavar="PATH",
        help="the local merchants' AWS credentials, a profile each: written by make run, read "
        "back to verify signed /payments requests (default .local-stack/credentials)",
    )


@dataclass(frozen=True)
class LocalMerchant:
    """A registered merchant and the local user that pays for it (its profile)."""

    merchant_id: str
    name: str
    publishable_key: str
    origins: tuple[str, ...]
    user: LocalUser

    @property
    def profile(self) -> str:
        return self.user.name

    def __repr__(self) -> str:  # never the secret key
        return f"LocalMerchant({self.merchant_id!r}, {self.name!r}, profile={self.profile!r})"


def profile_name(merchant_name: str) -> str:
    """The merchant's profile in the credentials file, and its local IAM user's name."""
    return f"card-tokens-{merchant_name}"


DEMO_PROFILE = profile_name(DEMO_MERCHANT)


def registry(stack_name: str, dynamodb_client: DynamoDBClient) -> MerchantRegistry:
    return MerchantRegistry(physical_name(stack_name, MERCHANT_TABLE), dynamodb_client)


def add_local_merchant(
    name: str,
    origins: Sequence[str],
    *,
    stack_name: str,
    dynamodb_client: DynamoDBClient,
    credentials: CredentialsFile,
) -> LocalMerchant:
    """Register a merchant whose principal is its local user (profile_name(name)), created and
    written to the credentials file unless it is there."""
    user = credentials.ensure(profile_name(name))
    added = registry(stack_name, dynamodb_client).add(name, list(origins), [user.arn])
    return _local_merchant(added, user)


def find_demo_merchant(
    *, stack_name: str, dynamodb_client: DynamoDBClient, credentials: CredentialsFile
) -> LocalMerchant | None:
    """The stack's demo merchant, if it has one whose profile is in the credentials file."""
    user = credentials.user(DEMO_PROFILE)
    for found in registry(stack_name, dynamodb_client).list():
        if found["name"] == DEMO_MERCHANT and user is not None and user.arn in found["principals"]:
            return _local_merchant(found, user)
    return None


def demo_merchant(
    origins: Sequence[str],
    *,
    stack_name: str,
    dynamodb_client: DynamoDBClient,
    credentials: CredentialsFile,
) -> LocalMerchant:
    """The demo merchant: the one an endpoint reused from an earlier run holds (if its profile
    is still in the credentials file), else a new one."""
    found = find_demo_merchant(
        stack_name=stack_name, dynamodb_client=dynamodb_client, credentials=credentials
    )
    if found is not None:
        return found
    merchants = registry(stack_name, dynamodb_client)
    for stale in merchants.list():
        if stale["name"] == DEMO_MERCHANT:  # its keys are gone: start again
            merchants.remove(stale["merchant_id"])
    return add_local_merchant(
        DEMO_MERCHANT,
        origins,
        stack_name=stack_name,
        dynamodb_client=dynamodb_client,
        credentials=credentials,
    )


def _local_merchant(registered: dict[str, Any], user: LocalUser) -> LocalMerchant:
    return LocalMerchant(
        str(registered["merchant_id"]),
        str(registered["name"]),
        str(registered["publishable_key"]),
        tuple(registered["origins"]),
        user,
    )
