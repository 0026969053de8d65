"""Creates template.yaml's tables, KMS key and secrets on moto, and the functions' environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3

from local.cfn import load_deployed_template, resources_of_type
from local.intrinsics import ACCOUNT_ID, REGION, Resolver

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_secretsmanager import SecretsManagerClient

STACK_NAME = "card-tokens-local"

TABLE = "AWS::DynamoDB::Table"
KMS_KEY = "AWS::KMS::Key"
KMS_ALIAS = "AWS::KMS::Alias"
SECRET = "AWS::SecretsManager::Secret"  # noqa: S105 - a resource type
FUNCTION = "AWS::Serverless::Function"
LAYER = "AWS::Serverless::LayerVersion"
REST_API = "AWS::Serverless::Api"


class EnvironmentConflictError(ValueError):
    """Two functions set one variable to different values; in one process only one can win."""


@dataclass(frozen=True)
class LocalStack:
    """What the local stack's resources are called, and the environment its functions see."""

    stack_name: str
    resolver: Resolver
    function_environments: dict[str, dict[str, str]]

    @property
    def environment(self) -> dict[str, str]:
        return merge_environments(self.function_environments)


def physical_name(stack_name: str, logical_id: str) -> str:
    return f"{stack_name}-{logical_id}"


def table_arn(table_name: str) -> str:
    return f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{table_name}"


def alias_arn(alias_name: str) -> str:
    return f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:{alias_name}"


def function_arn(function_name: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{function_name}"


def provision(stack_name: str = STACK_NAME) -> dict[str, str]:
    """Create every resource the functions use; return the union of their environments."""
    return provision_stack(stack_name).environment


def provision_stack(
    stack_name: str = STACK_NAME, template: dict[str, Any] | None = None
) -> LocalStack:
    """Create the resources on whatever endpoint boto3 is configured for (moto)."""
    resolver = _resolver(stack_name, template)
    _create_keys(boto3.client("kms", region_name=REGION), resolver)
    _create_secrets(boto3.client("secretsmanager", region_name=REGION), resolver)
    _create_tables(boto3.client("dynamodb", region_name=REGION), resolver)
    return LocalStack(stack_name, resolver, function_environments(resolver))


def _resolver(stack_name: str, template: dict[str, Any] | None) -> Resolver:
    """The template's names in this stack, code resources (functions, layers) included."""
    resolver = Resolver(template if template is not None else load_deployed_template(), stack_name)
    _add_code_resources(resolver)
    return resolver


def discover_stack(
    stack_name: str = STACK_NAME, template: dict[str, Any] | None = None
) -> LocalStack:
    """The same view of a stack that `provision_stack` created earlier, e.g. in a running server."""
    resolver = _resolver(stack_name, template)
    template = resolver.template
    secrets = boto3.client("secretsmanager", region_name=REGION)
    for logical_id in resources_of_type(template, SECRET):
        arn = secrets.describe_secret(SecretId=physical_name(stack_name, logical_id))["ARN"]
        resolver.refs[logical_id] = arn
    kms = boto3.client("kms", region_name=REGION)
    aliases = {alias["AliasName"]: alias for alias in kms.list_aliases()["Aliases"]}
    for logical_id, resource in resources_of_type(template, KMS_ALIAS).items():
        name = resolver.resolve(resource["Properties"]["AliasName"])
        target = resource["Properties"]["TargetKeyId"]
        if name not in aliases:
            raise LookupError(f"{name} does not exist: is the local stack running?")
        resolver.refs[logical_id] = name
        _record_key(resolver, _ref_target(target), aliases[name]["TargetKeyId"], name)
    for logical_id in resources_of_type(template, TABLE):
        _record_table(resolver, logical_id)
    return LocalStack(stack_name, resolver, function_environments(resolver))


def create_tables_from_template(
    dynamodb_client: DynamoDBClient,
    stack_name: str = STACK_NAME,
    template: dict[str, Any] | None = None,
) -> dict[str, str]:
    """Create every AWS::DynamoDB::Table of the template; logical id → physical table name."""
    template = template if template is not None else load_deployed_template()
    resolver = Resolver(template, stack_name)
    _create_tables(dynamodb_client, resolver)
    return {
        logical_id: resolver.refs[logical_id] for logical_id in resources_of_type(template, TABLE)
    }


def function_environments(resolver: Resolver) -> dict[str, dict[str, str]]:
    """Each function's Environment.Variables (Globals first), intrinsics resolved."""
    template = resolver.template
    global_variables = (
        template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    )
    environments: dict[str, dict[str, str]] = {}
    for logical_id, resource in resources_of_type(template, FUNCTION).items():
        own = resource.get("Properties", {}).get("Environment", {}).get("Variables", {})
        variables = resolver.resolve({**global_variables, **own}) or {}
        # An empty value (AWS_ENDPOINT_URL in the template) means "unset": it must not override
        # the emulator endpoint this process already points boto3 at.
        environments[logical_id] = {
            name: _env_value(value) for name, value in variables.items() if value != ""
        }
    return environments


def merge_environments(environments: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """One environment for one process that hosts every function; conflicts are errors."""
    merged: dict[str, str] = {}
    owner: dict[str, str] = {}
    for function, variables in environments.items():
        for name, value in variables.items():
            if name in merged and merged[name] != value:
                raise EnvironmentConflictError(
                    f"{owner[name]} and {function} set {name} to different values; "
                    "the local stack runs every function in one process and needs one value"
                )
            merged[name] = value
            owner.setdefault(name, function)
    return merged


def _env_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        raise ValueError(f"an environment variable resolved to a {type(value).__name__}")
    return str(value)


def _ref_target(value: Any) -> str:
    if isinstance(value, dict) and "Ref" in value:
        return str(value["Ref"])
    raise ValueError(f"expected a Ref to a resource, got {value!r}")


def _add_code_resources(resolver: Resolver) -> None:
    """Names and ARNs of things the local stack does not create but the template refers to."""
    template = resolver.template
    for logical_id in resources_of_type(template, FUNCTION):
        name = physical_name(resolver.stack_name, logical_id)
        resolver.refs[logical_id] = name
        resolver.attributes[f"{logical_id}.Arn"] = function_arn(name)
    for logical_id in resources_of_type(template, LAYER):
        name = physical_name(resolver.stack_name, logical_id)
        resolver.refs[logical_id] = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:layer:{name}:1"
    for logical_id in resources_of_type(template, REST_API):
        resolver.refs[logical_id] = "localapi00"


def _record_key(resolver: Resolver, key_logical_id: str, key_id: str, alias_name: str) -> None:
    resolver.refs[key_logical_id] = key_id
    # The alias ARN is stable across restarts (the key id is not), and KMS accepts it as KeyId,
    # so the environment and events/env.json can name the key before it exists.
    resolver.attributes[f"{key_logical_id}.Arn"] = alias_arn(alias_name)
    resolver.attributes[f"{key_logical_id}.KeyId"] = key_id


def _create_keys(kms: KMSClient, resolver: Resolver) -> None:
    template = resolver.template
    for logical_id, resource in resources_of_type(template, KMS_KEY).items():
        properties = resource.get("Properties", {})
        # The key policy names IAM roles the local stack does not have, and moto does not
        # enforce key policies, so it is not sent; tests/template checks it instead.
        metadata = kms.create_key(
            Description=str(resolver.resolve(properties.get("Description", logical_id))),
            KeyUsage=resolver.resolve(properties.get("KeyUsage", "ENCRYPT_DECRYPT")),
            KeySpec=resolver.resolve(properties.get("KeySpec", "SYMMETRIC_DEFAULT")),
        )["KeyMetadata"]
        if resolver.resolve(properties.get("EnableKeyRotation", False)) in (True, "true"):
            kms.enable_key_rotation(KeyId=metadata["KeyId"])
        resolver.refs[logical_id] = metadata["KeyId"]
        resolver.attributes[f"{logical_id}.Arn"] = metadata["Arn"]
        resolver.attributes[f"{logical_id}.KeyId"] = metadata["KeyId"]
    for logical_id, resource in resources_of_type(template, KMS_ALIAS).items():
        properties = resource["Properties"]
        name = str(resolver.resolve(properties["AliasName"]))
        key_logical_id = _ref_target(properties["TargetKeyId"])
        key_id = resolver.refs[key_logical_id]
        kms.create_alias(AliasName=name, TargetKeyId=key_id)
        resolver.refs[logical_id] = name
        _record_key(resolver, key_logical_id, key_id, name)


def _create_secrets(secrets: SecretsManagerClient, resolver: Resolver) -> None:
    for logical_id, resource in resources_of_type(resolver.template, SECRET).items():
        properties = resolver.resolve(resource.get("Properties", {})) or {}
        if "GenerateSecretString" in properties:
            raise NotImplementedError(
                f"{logical_id}: the local stack needs an explicit SecretString or none "
                "(GenerateSecretString is not supported)"
            )
        # No SecretString: an empty secret, as CloudFormation creates it (the rotation fills it).
        request: dict[str, Any] = {"Name": physical_name(resolver.stack_name, logical_id)}
        for name in ("Description", "KmsKeyId", "SecretString"):
            if name in properties:
                request[name] = properties[name]
        resolver.refs[logical_id] = secrets.create_secret(**request)["ARN"]


def _record_table(resolver: Resolver, logical_id: str) -> str:
    name = physical_name(resolver.stack_name, logical_id)
    resolver.refs[logical_id] = name
    resolver.attributes[f"{logical_id}.Arn"] = table_arn(name)
    return name


def _create_tables(dynamodb: DynamoDBClient, resolver: Resolver) -> None:
    for logical_id, resource in resources_of_type(resolver.template, TABLE).items():
        properties = resolver.resolve(resource.get("Properties", {})) or {}
        name = _record_table(resolver, logical_id)
        dynamodb.create_table(**_create_table_request(name, properties))
        ttl = properties.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled") in (True, "true"):
            dynamodb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
            )
        recovery = properties.get("PointInTimeRecoverySpecification", {})
        if recovery.get("PointInTimeRecoveryEnabled") in (True, "true"):
            dynamodb.update_continuous_backups(
                TableName=name,
                PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
            )


def _create_table_request(name: str, properties: Mapping[str, Any]) -> dict[str, Any]:
    """CloudFormation's table properties in the shape of the CreateTable API."""
    request: dict[str, Any] = {
        "TableName": name,
        "KeySchema": properties["KeySchema"],
        "AttributeDefinitions": properties["AttributeDefinitions"],
        "BillingMode": properties.get("BillingMode", "PROVISIONED"),
    }
    for same_shape in (
        "ProvisionedThroughput",
        "GlobalSecondaryIndexes",
        "LocalSecondaryIndexes",
    ):
        if same_shape in properties:
            request[same_shape] = properties[same_shape]
    if "StreamSpecification" in properties:
        request["StreamSpecification"] = {
            "StreamEnabled": True,
            "StreamViewType": properties["StreamSpecification"]["StreamViewType"],
        }
    sse = properties.get("SSESpecification")
    if sse:
        request["SSESpecification"] = {
            "Enabled": sse.get("SSEEnabled") in (True, "true"),
            **{key: sse[key] for key in ("SSEType", "KMSMasterKeyId") if key in sse},
        }
    return request


def named_resolver(
    stack_name: str = STACK_NAME, template: dict[str, Any] | None = None
) -> Resolver:
    """Intrinsics resolved to names known before the stack exists (for events/env.json).

    A secret's ARN ends in a random suffix, so a secret is named by its name, which every
    Secrets Manager call accepts as SecretId; the key by its alias ARN.
    """
    template = template if template is not None else load_deployed_template()
    resolver = Resolver(template, stack_name)
    _add_code_resources(resolver)
    for logical_id in resources_of_type(template, SECRET):
        resolver.refs[logical_id] = physical_name(stack_name, logical_id)
    for logical_id in resources_of_type(template, TABLE):
        _record_table(resolver, logical_id)
    for logical_id, resource in resources_of_type(template, KMS_ALIAS).items():
        name = str(resolver.resolve(resource["Properties"]["AliasName"]))
        resolver.refs[logical_id] = name
        _record_key(resolver, _ref_target(resource["Properties"]["TargetKeyId"]), name, name)
    return resolver
