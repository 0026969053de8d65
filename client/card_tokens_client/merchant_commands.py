"""`card-tokens merchants add|list|rotate-key|remove`: the operator's side of the registry.

Runs with the operator's AWS credentials (the default chain, or --profile) against the registry
table, named with --table or found in a stack's `MerchantTableName` output with --stack.
--endpoint-url (or AWS_ENDPOINT_URL) points it at the local stack. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO, cast

from botocore.exceptions import BotoCoreError, ClientError
from botocore.session import Session

from card_tokens_client.merchants import MerchantRegistry, RegistryError

__all__ = ["AwsClients", "RegistryUnavailable", "add_merchant_commands", "run_merchant_command"]

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_dynamodb import DynamoDBClient

TABLE_OUTPUT = "MerchantTableName"  # template.yaml's output


class RegistryUnavailable(Exception):
    """No table to work on, or AWS refused: the message says which (exit 1)."""


class AwsClients:
    """The operator's AWS clients, from --profile/--region/--endpoint-url or the defaults."""

    def __init__(self, profile: str | None, region: str | None, endpoint_url: str | None):
        self._session = Session(profile=profile)
        self._region = region
        self._endpoint_url = endpoint_url  # None: botocore reads AWS_ENDPOINT_URL itself

    def dynamodb(self) -> DynamoDBClient:
        client = self._session.create_client(
            "dynamodb", region_name=self._region, endpoint_url=self._endpoint_url
        )
        return cast("DynamoDBClient", client)

    def cloudformation(self) -> CloudFormationClient:
        client = self._session.create_client(
            "cloudformation", region_name=self._region, endpoint_url=self._endpoint_url
        )
        return cast("CloudFormationClient", client)


ClientsFactory = Callable[[str | None, str | None, str | None], AwsClients]


def table_of_stack(cloudformation: CloudFormationClient, stack: str) -> str:
    stacks = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    outputs = {o["OutputKey"]: o.get("OutputValue", "") for o in stacks[0].get("Outputs", [])}
    table = outputs.get(TABLE_OUTPUT)
    if not table:
        raise RegistryUnavailable(
            f"stack {stack} has no {TABLE_OUTPUT} output: deploy a version with merchants"
        )
    return table


def registry_for(args: argparse.Namespace, clients_factory: ClientsFactory) -> MerchantRegistry:
    clients = clients_factory(args.profile, args.region, args.endpoint_url)
    table = args.table or table_of_stack(clients.cloudformation(), args.stack)
    return MerchantRegistry(table, clients.dynamodb())


# ---------------------------------------------------------------------------- commands


def cmd_add(registry: MerchantRegistry, args: argparse.Namespace) -> Any:
    return registry.add(args.name, args.origin, args.principal)


def cmd_list(registry: MerchantRegistry, args: argparse.Namespace) -> Any:
    return registry.list()


def cmd_rotate_key(registry: MerchantRegistry, args: argparse.Namespace) -> Any:
    return registry.rotate_key(args.merchant_id)


def cmd_remove(registry: MerchantRegistry, args: argparse.Namespace) -> Any:
    registry.remove(args.merchant_id)
    return {"merchant_id": args.merchant_id, "removed": True}


MerchantCommand = Callable[[MerchantRegistry, argparse.Namespace], Any]


def _registry_options() -> argparse.ArgumentParser:
    where = argparse.ArgumentParser(add_help=False)
    table = where.add_mutually_exclusive_group(required=True)
    table.add_argument("--table", help="the registry table")
    table.add_argument(
        "--stack", help=f"a deployed stack: the registry is its {TABLE_OUTPUT} output"
    )
    # SUPPRESS: the same options before the command (card-tokens --region …) are kept.
    where.add_argument(
        "--region", default=argparse.SUPPRESS, help="AWS region (default: your AWS config)"
    )
    where.add_argument(
        "--profile", default=argparse.SUPPRESS, help="AWS profile of the operator's credentials"
    )
    where.add_argument(
        "--endpoint-url",
        help="another AWS endpoint, e.g. the local stack's (default $AWS_ENDPOINT_URL)",
    )
    return where


def add_merchant_commands(commands: Any) -> argparse.ArgumentParser:
    """The `merchants` command and its four actions, on the CLI's subparsers."""
    where = _registry_options()
    merchants: argparse.ArgumentParser = commands.add_parser(
        "merchants",
        help="register merchants: publishable keys, checkout origins, paying principals",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    actions = merchants.add_subparsers(dest="merchant_command", required=True, metavar="ACTION")

    def action(name: str, run: MerchantCommand, help: str) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = actions.add_parser(
            name, parents=[where], help=help, description=help
        )
        sub.set_defaults(merchant_run=run)
        return sub

    add = action(
        "add",
        cmd_add,
        "register a merchant; prints it with its new publishable key and merchant id",
    )
    add.add_argument("--name", required=True, help="1 to 64 printable characters")
    add.add_argument(
        "--origin",
        action="append",
        default=[],
        metavar="URL",
        help="a checkout page's origin, https://host[:port] (repeatable; none: server-side "
        "tokenization only)",
    )
    add.add_argument(
        "--principal",
        action="append",
        default=[],
        required=True,
        metavar="ARN",
        help="an IAM role (arn:aws:iam::<account>:role/<Name>, no path) or user ARN that pays "
        "for it (repeatable)",
    )
    action("list", cmd_list, "list every merchant")
    rotate = action(
        "rotate-key",
        cmd_rotate_key,
        "give a merchant a new publishable key; the old one stops working within 60 s",
    )
    rotate.add_argument("merchant_id", help="mer_…")
    remove = action(
        "remove",
        cmd_remove,
        "remove a merchant, its key and its principals (its payments stay)",
    )
    remove.add_argument("merchant_id", help="mer_…")
    return merchants


def run_merchant_command(
    args: argparse.Namespace, out: TextIO, clients_factory: ClientsFactory = AwsClients
) -> None:
    """Raises RegistryError (a refused change), RegistryUnavailable (AWS, or no table)."""
    try:
        registry = registry_for(args, clients_factory)
        result = args.merchant_run(registry, args)
    except RegistryError:
        raise
    except ClientError as error:
        details = error.response.get("Error", {})
        raise RegistryUnavailable(
            f"AWS refused {error.operation_name}: {details.get('Code')}: {details.get('Message')}"
        ) from None
    except BotoCoreError as error:
        raise RegistryUnavailable(str(error)) from None
    out.write(json.dumps(result, indent=2) + "\n")
