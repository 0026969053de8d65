"""template.yaml declares the resources, routes and settings the contract names."""

from __future__ import annotations

import re
from typing import Any

import pytest

from local.cfn import resources_of_type

Template = dict[str, Any]

# docs/design.md "HTTP contract": every route, and which function serves it. Nothing else.
ROUTES = {
    ("POST", "/tokens"): "IssueTokenFunction",
    # Its CORS preflight, answered by the same function for the CorsOrigins list.
    ("OPTIONS", "/tokens"): "IssueTokenFunction",
    ("POST", "/payments"): "ProcessPaymentFunction",
    ("GET", "/payments/{payment_id}"): "ProcessPaymentFunction",
    ("GET", "/.well-known/jwks.json"): "PublishJwksFunction",
    # Only with CheckoutPage=enabled: the demo page and its assets (web/checkout/).
    ("GET", "/"): "CheckoutPageFunction",
    ("GET", "/app.js"): "CheckoutPageFunction",
    ("GET", "/style.css"): "CheckoutPageFunction",
    ("GET", "/favicon.svg"): "CheckoutPageFunction",
}

COMMON_ENV = {
    "POWERTOOLS_SERVICE_NAME": "card-tokens",
    "POWERTOOLS_METRICS_NAMESPACE": "CardTokens",
    "POWERTOOLS_LOG_LEVEL": {"Ref": "LogLevel"},
    "TOKEN_ISSUER": {"Ref": "TokenIssuer"},
    "TOKEN_AUDIENCE": {"Ref": "TokenAudience"},
    # absent on AWS; `sam local invoke --parameter-overrides LocalEndpointUrl=...` declares it
    "AWS_ENDPOINT_URL": {
        "Fn::If": ["HasLocalEndpoint", {"Ref": "LocalEndpointUrl"}, {"Ref": "AWS::NoValue"}]
    },
}
# Where a payment is settled, by the API or by the reconciler's sweep: both read and write these.
PAYMENT_TABLES = {
    "TOKEN_TABLE_NAME": {"Ref": "TokenTable"},
    "PAYMENT_TABLE_NAME": {"Ref": "PaymentTable"},
    "IDEMPOTENCY_TABLE_NAME": {"Ref": "IdempotencyTable"},
    "SANDBOX_LEDGER_TABLE_NAME": {"Ref": "SandboxLedgerTable"},
}
# The registry, read by the two functions that check a merchant: the issuer (publishable key)
# and payments (the caller's principal). The reconciler acts for nobody: it has none.
MERCHANTS = {"MERCHANT_TABLE_NAME": {"Ref": "MerchantTable"}}
# The processor: parameters fixed at deploy and the secrets' ARNs (empty for the sandbox,
# which has none). The reconciler only looks charges up: the lookup credentials alone.
_EXTERNAL = "ChargesAnExternalProcessor"
PROCESSOR_LOOKUP = {
    "PAYMENT_PROCESSOR": {"Ref": "Processor"},
    "PROCESSOR_LOOKUP_SECRET_ID": {"Fn::If": [_EXTERNAL, {"Ref": "ProcessorLookupSecret"}, ""]},
    "FORWARD_ALLOWED_HOSTS": {"Ref": "ForwardAllowedHosts"},
}
PROCESSOR_CHARGE = {
    **PROCESSOR_LOOKUP,
    "PROCESSOR_SECRET_ID": {"Fn::If": [_EXTERNAL, {"Ref": "ProcessorSecret"}, ""]},
}
FUNCTION_ENV = {
    "IssueTokenFunction": {
        "CARD_KEY_ID": {"Fn::GetAtt": ["CardKey", "Arn"]},
        "TOKEN_TABLE_NAME": {"Ref": "TokenTable"},
        "SIGNING_KEY_SECRET_ID": {"Ref": "SigningKeySecret"},
        "TOKEN_LIFETIME_SECONDS": {"Ref": "TokenLifetimeSeconds"},
        "CORS_ORIGINS": {"Ref": "CorsOrigins"},
        **MERCHANTS,
    },
    "ProcessPaymentFunction": {
        **PAYMENT_TABLES,
        "CARD_KEY_ID": {"Fn::GetAtt": ["CardKey", "Arn"]},
        "VERIFICATION_KEYS_SECRET_ID": {"Ref": "VerificationKeysSecret"},
        **MERCHANTS,
        **PROCESSOR_CHARGE,
    },
    "RotateSigningKeyFunction": {
        "SIGNING_KEY_SECRET_ID": {"Ref": "SigningKeySecret"},
        "VERIFICATION_KEYS_SECRET_ID": {"Ref": "VerificationKeysSecret"},
        "SIGNING_ALGORITHM": {"Ref": "SigningAlgorithm"},
    },
    # No card key: the reconciler never sees card data.
    "ReconcilePaymentsFunction": PAYMENT_TABLES | PROCESSOR_LOOKUP,
}
CODE_URIS = {
    "IssueTokenFunction": "functions/issue_token/",
    "ProcessPaymentFunction": "functions/process_payment/",
    "RotateSigningKeyFunction": "functions/rotate_signing_key/",
    "ReconcilePaymentsFunction": "functions/reconcile_payments/",
}
# (hash key, TTL attribute or None) per table: every table of the template, nothing else.
TABLES = {
    "TokenTable": ("jti", "ttl"),
    "PaymentTable": ("payment_id", None),  # nothing expires a payment record
    "IdempotencyTable": ("id", "expiration"),
    # The sandbox processor's books: a charge stays findable, so no TTL.
    "SandboxLedgerTable": ("idempotency_key", None),
    # merchant#, key#, principal# and registry items: operator data, nothing expires.
    "MerchantTable": ("pk", None),
}
# Secondary indexes per table (none elsewhere): the token table's sparse sweep index holds a
# token only while it keeps a data key; the reconciler reads keys only and then the item.
INDEXES = {
    "TokenTable": [
        {
            "IndexName": "sweep",
            "KeySchema": [
                {"AttributeName": "sweep_shard", "KeyType": "HASH"},
                {"AttributeName": "sweep_at", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "KEYS_ONLY"},
        }
    ],
}
INDEX_ATTRIBUTES = {
    "TokenTable": [
        {"AttributeName": "sweep_shard", "AttributeType": "N"},
        {"AttributeName": "sweep_at", "AttributeType": "N"},
    ],
}


def _functions(template: Template) -> dict[str, dict[str, Any]]:
    return resources_of_type(template, "AWS::Serverless::Function")


def test_globals_pin_runtime_architecture_tracing_and_layer(template: Template) -> None:
    function_globals = template["Globals"]["Function"]

    assert function_globals["Runtime"] == "python3.13"
    assert function_globals["Architectures"] == ["arm64"]
    assert function_globals["Tracing"] == "Active"
    assert function_globals["Layers"] == [{"Ref": "CardTokensLayer"}]


@pytest.mark.parametrize("function_id", CODE_URIS)
def test_function_code_handler_and_no_per_function_runtime_override(
    template: Template, function_id: str
) -> None:
    properties = _functions(template)[function_id]["Properties"]

    assert properties["CodeUri"] == CODE_URIS[function_id]
    assert properties["Handler"] == "app.lambda_handler"
    for overridden in ("Runtime", "Architectures", "Tracing", "Layers"):
        assert overridden not in properties, f"{function_id} overrides {overridden}"


def test_layer_is_built_by_sam_for_python313_arm64(template: Template) -> None:
    layer = template["Resources"]["CardTokensLayer"]

    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert layer["Properties"]["ContentUri"] == "layers/card_tokens/"
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.13"]
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
    assert layer["Metadata"] == {"BuildMethod": "python3.13", "BuildArchitecture": "arm64"}
    # Per stack: two stacks in one account must not publish versions of one layer.
    assert layer["Properties"]["LayerName"] == {"Fn::Sub": "${AWS::StackName}-card-tokens"}


# Payments are the merchants' history; the registry binds their keys and principals (losing it
# would refuse every merchant until each is registered again, with new keys).
@pytest.mark.parametrize("table_id", ["PaymentTable", "MerchantTable"])
def test_records_worth_keeping_are_protected_from_deletion(
    template: Template, table_id: str
) -> None:
    table = template["Resources"][table_id]

    assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain"
    assert table["Properties"]["DeletionProtectionEnabled"] is True
    assert "TimeToLiveSpecification" not in table["Properties"]


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        ("", True),
        ("http://host.docker.internal:5005", True),
        ("http://127.0.0.1:4566", True),
        ("http://localhost", True),
        ("https://kms.us-east-1.amazonaws.com", False),
        ("http://attacker.example:5005", False),
        ("http://host.docker.internal.attacker.example", False),
    ],
)
def test_the_local_endpoint_accepts_nothing_but_a_local_address(
    template: Template, value: str, accepted: bool
) -> None:
    # CloudFormation matches AllowedPattern against the whole value.
    pattern = template["Parameters"]["LocalEndpointUrl"]["AllowedPattern"]
    assert (re.fullmatch(pattern, value) is not None) is accepted
    assert template["Parameters"]["LocalEndpointUrl"]["Default"] == ""


def test_api_routes_are_exactly_the_designed_ones(template: Template) -> None:
    routes: dict[tuple[str, str], str] = {}
    for function_id, function in _functions(template).items():
        for event_id, event in function["Properties"].get("Events", {}).items():
            if event["Type"] != "Api":
                continue  # not a route (test_the_only_event_besides_the_routes_...)
            properties = event["Properties"]
            assert properties["RestApiId"] == {"Ref": "CardTokensApi"}, f"{function_id}.{event_id}"
            route = (properties["Method"].upper(), properties["Path"])
            assert route not in routes, f"{route} declared twice"
            routes[route] = function_id

    assert routes == ROUTES
    assert not any("{proxy+}" in path or path == "$default" for _, path in routes)
    assert not any(method in {"ANY", "*"} for method, _ in routes)


def test_the_only_event_besides_the_routes_is_the_reconcilers_schedule(template: Template) -> None:
    other_events = {
        (function_id, event_id): event
        for function_id, function in _functions(template).items()
        for event_id, event in function["Properties"].get("Events", {}).items()
        if event["Type"] != "Api"
    }

    assert other_events == {
        ("ReconcilePaymentsFunction", "Sweep"): {
            "Type": "ScheduleV2",
            "Properties": {
                "ScheduleExpression": "rate(5 minutes)",
                # CloudFormation names the schedule: SAM's fixed name would collide across stacks.
                "OmitName": True,
                # The role SAM makes for it carries the stack's permissions boundary.
                "PermissionsBoundary": {
                    "Fn::If": [
                        "HasPermissionsBoundary",
                        {"Ref": "PermissionsBoundaryArn"},
                        {"Ref": "AWS::NoValue"},
                    ]
                },
            },
        }
    }


def test_the_api_has_no_definition_that_could_add_routes(template: Template) -> None:
    assert not resources_of_type(template, "AWS::Serverless::HttpApi")
    apis = resources_of_type(template, "AWS::Serverless::Api")

    assert set(apis) == {"CardTokensApi"}
    properties = apis["CardTokensApi"]["Properties"]
    assert "DefinitionBody" not in properties
    assert "DefinitionUri" not in properties
    # No API-level CORS (one fixed origin, or "*", for every route): IssueTokenFunction answers
    # CORS for POST /tokens alone, for exact origins (tests/template/test_operations.py).
    assert "Cors" not in properties


@pytest.mark.parametrize("function_id", FUNCTION_ENV)
def test_function_environment_is_the_contract(template: Template, function_id: str) -> None:
    global_env = template["Globals"]["Function"]["Environment"]["Variables"]
    own_env = _functions(template)[function_id]["Properties"]["Environment"]["Variables"]

    assert global_env | own_env == COMMON_ENV | FUNCTION_ENV[function_id]


@pytest.mark.parametrize("function_id", CODE_URIS)
def test_function_log_group_exists_with_retention(template: Template, function_id: str) -> None:
    log_groups = resources_of_type(template, "AWS::Logs::LogGroup")
    name = {"Fn::Sub": f"/aws/lambda/${{{function_id}}}"}

    matching = [g for g in log_groups.values() if g["Properties"].get("LogGroupName") == name]

    assert len(matching) == 1, f"no single log group named /aws/lambda/<{function_id}>"
    assert matching[0]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_every_log_group_expires(template: Template) -> None:
    log_groups = resources_of_type(template, "AWS::Logs::LogGroup")

    assert log_groups
    for log_group_id, log_group in log_groups.items():
        assert log_group["Properties"].get("RetentionInDays") == {"Ref": "LogRetentionDays"}, (
            log_group_id
        )


def test_card_key_rotates_and_survives_stack_deletion(template: Template) -> None:
    key = template["Resources"]["CardKey"]

    assert key["Type"] == "AWS::KMS::Key"
    assert key["DeletionPolicy"] == "Retain"
    assert key["UpdateReplacePolicy"] == "Retain"
    assert key["Properties"]["EnableKeyRotation"] is True
    assert key["Properties"]["KeySpec"] == "SYMMETRIC_DEFAULT"
    alias = template["Resources"]["CardKeyAlias"]["Properties"]
    assert alias == {
        "AliasName": {"Fn::Sub": "alias/${AWS::StackName}-card"},
        "TargetKeyId": {"Ref": "CardKey"},
    }


def test_the_tables_are_exactly_the_designed_ones(template: Template) -> None:
    assert set(resources_of_type(template, "AWS::DynamoDB::Table")) == set(TABLES)


@pytest.mark.parametrize("table_id", TABLES)
def test_table_has_key_ttl_pitr_and_encryption(template: Template, table_id: str) -> None:
    hash_key, ttl_attribute = TABLES[table_id]
    properties = template["Resources"][table_id]["Properties"]

    assert properties["KeySchema"] == [{"AttributeName": hash_key, "KeyType": "HASH"}]
    assert properties["AttributeDefinitions"] == [
        {"AttributeName": hash_key, "AttributeType": "S"},
        *INDEX_ATTRIBUTES.get(table_id, []),
    ]
    assert properties.get("GlobalSecondaryIndexes") == INDEXES.get(table_id)
    assert "LocalSecondaryIndexes" not in properties
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    if ttl_attribute is None:
        assert "TimeToLiveSpecification" not in properties
    else:
        assert properties["TimeToLiveSpecification"] == {
            "AttributeName": ttl_attribute,
            "Enabled": True,
        }
    assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert properties["SSESpecification"] == {"SSEEnabled": True}


def test_the_sweep_index_is_the_one_the_reconciler_queries_and_may_query(
    template: Template,
) -> None:
    from card_tokens.stores import SWEEP_INDEX

    statements = template["Resources"]["ReconcilePaymentsRole"]["Properties"]["Policies"][0][
        "PolicyDocument"
    ]["Statement"]
    query = [s["Resource"] for s in statements if s["Action"] == "dynamodb:Query"]

    assert [index["IndexName"] for index in INDEXES["TokenTable"]] == [SWEEP_INDEX]
    assert query == [{"Fn::Sub": f"${{TokenTable.Arn}}/index/{SWEEP_INDEX}"}]


def test_secrets_start_empty_and_signing_key_rotates_at_deploy(template: Template) -> None:
    resources = template["Resources"]

    # Created empty, under its own key: the deployer never writes (or overwrites) key material.
    signing = resources["SigningKeySecret"]["Properties"]
    assert "SecretString" not in signing
    assert "GenerateSecretString" not in signing
    assert signing["KmsKeyId"] == {"Ref": "SigningKeySecretKey"}
    assert resources["VerificationKeysSecret"]["Properties"]["SecretString"] == '{"keys": []}'
    schedule = resources["SigningKeyRotationSchedule"]["Properties"]
    assert schedule == {
        "SecretId": {"Ref": "SigningKeySecret"},
        "RotationLambdaARN": {"Fn::GetAtt": ["RotateSigningKeyFunction", "Arn"]},
        "RotateImmediatelyOnUpdate": True,
        "RotationRules": {
            "ScheduleExpression": {"Fn::Sub": "rate(${SigningKeyRotationDays} days)"}
        },
    }


def test_only_secrets_manager_may_invoke_the_rotation_function(template: Template) -> None:
    permissions = resources_of_type(template, "AWS::Lambda::Permission")

    assert permissions == {
        "RotateSigningKeyInvokePermission": {
            "Type": "AWS::Lambda::Permission",
            "Properties": {
                "FunctionName": {"Fn::GetAtt": ["RotateSigningKeyFunction", "Arn"]},
                "Action": "lambda:InvokeFunction",
                "Principal": "secretsmanager.amazonaws.com",
                "SourceAccount": {"Ref": "AWS::AccountId"},
                "SourceArn": {"Ref": "SigningKeySecret"},
            },
        }
    }


def test_parameters_have_the_contract_defaults(template: Template) -> None:
    parameters = template["Parameters"]

    assert parameters["TokenIssuer"]["Default"] == "https://card-tokens.example"
    assert parameters["TokenAudience"]["Default"] == "card-tokens-payments"
    lifetime = parameters["TokenLifetimeSeconds"]
    assert (lifetime["Default"], lifetime["MinValue"], lifetime["MaxValue"]) == (900, 60, 3600)
    assert parameters["LogLevel"]["AllowedValues"] == ["DEBUG", "INFO", "WARNING", "ERROR"]
    assert parameters["LogLevel"]["Default"] == "INFO"
    assert parameters["SigningAlgorithm"]["AllowedValues"] == ["ES256", "RS256"]
    assert parameters["SigningAlgorithm"]["Default"] == "ES256"
    assert parameters["SigningKeyRotationDays"]["Default"] == 30
    assert parameters["LogRetentionDays"]["Default"] == 90
    assert 90 in parameters["LogRetentionDays"]["AllowedValues"]


def test_outputs_name_what_deployers_and_e2e_tests_need(template: Template) -> None:
    assert set(template["Outputs"]) == {
        "ApiUrl",
        "ApiId",
        "JwksUrl",
        "CardKeyArn",
        "TokenTableName",
        "PaymentTableName",
        "IdempotencyTableName",
        "SandboxLedgerTableName",
        "MerchantTableName",
        "SigningKeySecretArn",
        "VerificationKeysSecretArn",
        # Processor=stripe or forward: where the operator puts the credentials
        "ProcessorSecretArn",
        "ProcessorLookupSecretArn",
        "CheckoutPageUrl",
        "DashboardUrl",
        "AlarmNotificationTopicArn",
        "ApiRegionalDomainName",
        "ApiRegionalHostedZoneId",
        "WebAclArn",
        "WafLogGroupName",
    }
