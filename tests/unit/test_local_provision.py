"""local.provision builds the template's resources on moto and the functions' environment."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import boto3
import pytest

from local.cfn import load_template, resources_of_type
from local.emulator import in_process_aws
from local.provision import (
    EnvironmentConflictError,
    LocalStack,
    create_tables_from_template,
    discover_stack,
    merge_environments,
    provision,
    provision_stack,
)


@pytest.fixture
def aws() -> Iterator[str]:
    """A stack name of its own: moto keeps state while another mock_aws is active."""
    with in_process_aws("unit-tests"):
        yield f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def stack(aws: str) -> LocalStack:
    return provision_stack(aws)


def alias_arn(stack_name: str) -> str:
    return f"arn:aws:kms:us-east-1:123456789012:alias/{stack_name}-card"


def test_every_table_of_the_template_exists_with_its_keys_indexes_and_ttl(
    stack: LocalStack,
) -> None:
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    for logical_id, resource in resources_of_type(load_template(), "AWS::DynamoDB::Table").items():
        name = f"{stack.stack_name}-{logical_id}"
        table = dynamodb.describe_table(TableName=name)["Table"]
        properties = resource["Properties"]
        assert table["KeySchema"] == properties["KeySchema"]
        assert table["BillingModeSummary"]["BillingMode"] == properties["BillingMode"]
        indexes = {
            index["IndexName"]: (index["KeySchema"], index["Projection"])
            for index in table.get("GlobalSecondaryIndexes", [])
        }
        assert indexes == {
            index["IndexName"]: (index["KeySchema"], index["Projection"])
            for index in properties.get("GlobalSecondaryIndexes", [])
        }, logical_id
        ttl = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        if "TimeToLiveSpecification" in properties:  # the sandbox ledger's charges never expire
            assert ttl["AttributeName"] == properties["TimeToLiveSpecification"]["AttributeName"]
            assert ttl["TimeToLiveStatus"] == "ENABLED"
        else:
            assert ttl == {"TimeToLiveStatus": "DISABLED"}, logical_id


def test_the_card_key_is_usable_through_its_alias_arn_with_an_encryption_context(
    stack: LocalStack,
) -> None:
    kms = boto3.client("kms", region_name="us-east-1")
    context = {"purpose": "card-token", "jti": "j", "aud": "a"}
    alias = alias_arn(stack.stack_name)

    data_key = kms.generate_data_key(KeyId=alias, KeySpec="AES_256", EncryptionContext=context)
    opened = kms.decrypt(
        CiphertextBlob=data_key["CiphertextBlob"], KeyId=alias, EncryptionContext=context
    )

    assert opened["Plaintext"] == data_key["Plaintext"]
    key_id = kms.describe_key(KeyId=alias)["KeyMetadata"]["KeyId"]
    assert kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is True


def test_secrets_start_with_the_template_values(stack: LocalStack) -> None:
    secrets = boto3.client("secretsmanager", region_name="us-east-1")

    signing = secrets.describe_secret(SecretId=f"{stack.stack_name}-SigningKeySecret")
    verification = secrets.get_secret_value(SecretId=f"{stack.stack_name}-VerificationKeysSecret")

    # The signing-key secret starts empty (no version), under its own KMS key; the rotation
    # writes its first value.
    assert not signing.get("VersionIdsToStages")
    assert signing["KmsKeyId"] == stack.resolver.refs["SigningKeySecretKey"]
    assert verification["SecretString"] == '{"keys": []}'


def test_environment_resolves_refs_to_local_names_arns_and_parameter_defaults(
    stack: LocalStack,
) -> None:
    environment = stack.environment
    name = stack.stack_name

    assert environment["CARD_KEY_ID"] == alias_arn(name)
    assert environment["TOKEN_TABLE_NAME"] == f"{name}-TokenTable"
    assert environment["IDEMPOTENCY_TABLE_NAME"] == f"{name}-IdempotencyTable"
    assert environment["SIGNING_KEY_SECRET_ID"].startswith(
        f"arn:aws:secretsmanager:us-east-1:123456789012:secret:{name}-SigningKeySecret-"
    )
    assert environment["TOKEN_LIFETIME_SECONDS"] == "900"
    assert environment["SIGNING_ALGORITHM"] == "ES256"
    assert environment["POWERTOOLS_SERVICE_NAME"] == "card-tokens"


def test_each_function_gets_globals_plus_only_its_own_variables(stack: LocalStack) -> None:
    environments = stack.function_environments

    assert "VERIFICATION_KEYS_SECRET_ID" not in environments["IssueTokenFunction"]
    assert "SIGNING_KEY_SECRET_ID" not in environments["ProcessPaymentFunction"]
    assert "CARD_KEY_ID" not in environments["RotateSigningKeyFunction"]
    assert all(env["TOKEN_ISSUER"] for env in environments.values())


def test_provision_returns_the_union_of_the_function_environments(aws: str) -> None:
    environment = provision(aws)

    assert environment["PAYMENT_TABLE_NAME"] == f"{aws}-PaymentTable"
    assert environment["SIGNING_ALGORITHM"] == "ES256"
    assert environment["CARD_KEY_ID"] == alias_arn(aws)


def test_discovering_a_provisioned_stack_gives_the_same_environment(stack: LocalStack) -> None:
    assert discover_stack(stack.stack_name).environment == stack.environment


def test_two_functions_setting_one_variable_differently_is_an_error() -> None:
    with pytest.raises(EnvironmentConflictError, match="TABLE"):
        merge_environments({"A": {"TABLE": "one"}, "B": {"TABLE": "two"}})


def test_tables_alone_can_be_built_from_the_template(aws: str) -> None:
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")

    names = create_tables_from_template(dynamodb, aws)

    tables = resources_of_type(load_template(), "AWS::DynamoDB::Table")
    assert names == {logical_id: f"{aws}-{logical_id}" for logical_id in tables}
    assert set(names.values()) <= set(dynamodb.list_tables()["TableNames"])
