"""Deploy rehearsal: package, transform, create, update and delete the stack on moto.

What `sam deploy` and CloudFormation do, offline and in-process: SAM CLI's own packaging code
zips every CodeUri/ContentUri folder into an emulated S3 bucket, samtranslator runs the
AWS::Serverless transform with the deploy's parameter values, and moto's CloudFormation creates,
updates and deletes the stack: once with the template's defaults, once prod-like (samconfig.toml's
prod overrides with every option on). docs/deploy-rehearsal.md says what this proves and what not.

moto's CloudFormation has no model for some of the template's types (MOTO_HAS_NO_MODEL): it
reports them CREATE_COMPLETE and creates nothing. Three of them are created here by thin
stand-ins that call the service's own API (SHIMMED), so that what refers to them and the Outputs
resolve; the others stay uncreated (NOT_CREATED). Three moto bugs are patched for the duration of
the test only (see _moto_workarounds).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import io
import json
import os
import re
import shlex
import tomllib
import warnings
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.awslambda.models import LayerVersion
from moto.cloudformation import parsing as moto_cfn_parsing
from moto.core.base_backend import BackendDict, backend_lock
from moto.kms.models import Key
from moto.s3.models import s3_backends
from samcli.lib.package.artifact_exporter import Template as PackageableTemplate
from samcli.lib.package.code_signer import CodeSigner
from samcli.lib.package.ecr_uploader import ECRUploader
from samcli.lib.package.s3_uploader import S3Uploader
from samcli.lib.package.uploaders import Uploaders
from samcli.yamlhelper import yaml_parse
from samtranslator.translator.transform import transform

from local.cfn import TEMPLATE_PATH

pytestmark = pytest.mark.template

Template = dict[str, Any]
Resources = dict[str, tuple[str, str]]  # logical id -> (type, physical id), as moto lists them

REPOSITORY = TEMPLATE_PATH.parent
SAMCONFIG = REPOSITORY / "samconfig.toml"
REGION = "us-east-1"
# Not moto's default account: the session's emulated stack (tests/conftest.py) may be live in
# this process, and the rehearsal must neither see nor leave anything there.
ACCOUNT = "210987654321"
ARTIFACT_BUCKET = "card-tokens-rehearsal-artifacts"
ARTIFACT_PREFIX = "card-tokens-rehearsal"
CAPABILITIES = ["CAPABILITY_IAM"]  # what samconfig.toml gives every environment
ARN = rf"arn:aws:[a-z0-9-]+:{REGION}:{ACCOUNT}:\S+"

# ---------------------------------------------------------------- what moto can and cannot do

# moto 5.2.5: the template's resource types (transformed, every option on) that moto's
# CloudFormation has no model for (moto/cloudformation/parsing.py get_model_map(): the
# CloudFormationModel subclasses). For these moto logs "No Moto CloudFormation support for
# <type>", warns "Tried to parse <type> but it's not supported", creates nothing and stores
# nothing, resolves a Ref to them as None (a property using it is dropped, a ${} in a Sub stays
# as is), and still answers ListStackResources with a nameless CREATE_COMPLETE row for each.
MOTO_HAS_NO_MODEL = frozenset(
    {
        "AWS::ApiGatewayV2::Api",
        "AWS::ApiGatewayV2::Stage",
        "AWS::CloudWatch::Alarm",
        "AWS::IAM::RolePolicy",
        "AWS::Scheduler::Schedule",
        "AWS::SecretsManager::ResourcePolicy",
        "AWS::SecretsManager::RotationSchedule",
        "AWS::SecretsManager::Secret",
    }
)
# Of those, the types this harness creates itself through the service's API (see _Shim).
# Without the secrets the functions lose their secret-id variables and two Outputs are missing;
# without the API, ApiUrl and CheckoutPageUrl keep a literal ${CardTokensApi}; without the
# alarms the prod-like AlarmTopicArn reaches nothing.
SHIMMED = frozenset(
    {"AWS::SecretsManager::Secret", "AWS::ApiGatewayV2::Api", "AWS::CloudWatch::Alarm"}
)
# Created nowhere and checked by nothing here: moto only pretends.
NOT_CREATED = MOTO_HAS_NO_MODEL - SHIMMED

# Must outlive the stack (template.yaml: the card key wraps every live token's data key,
# payments are the merchant's history, the logs are the audit trail). The survivors of a
# delete are then exactly what the template marks DeletionPolicy: Retain; this is the floor.
MUST_BE_RETAINED = frozenset(
    {
        "CardKey",
        "PaymentTable",
        "CardTokensApiAccessLogGroup",
        "IssueTokenLogGroup",
        "ProcessPaymentLogGroup",
        "RotateSigningKeyLogGroup",
        "PublishJwksLogGroup",
        "ReconcilePaymentsLogGroup",
    }
)

# ---------------------------------------------------------------- parameters and conditions


def _source_template() -> Template:
    """template.yaml as SAM CLI parses it (short-form intrinsics in their long form)."""
    template: Template = yaml_parse(TEMPLATE_PATH.read_text(encoding="utf-8"))
    return template


def _samconfig_prod() -> dict[str, Any]:
    with SAMCONFIG.open("rb") as handle:
        settings: dict[str, Any] = tomllib.load(handle)["prod"]["deploy"]["parameters"]
    return settings


def _pairs(text: str) -> dict[str, str]:
    """Key="Value" pairs, shell-quoted, as SAM CLI reads parameter_overrides and tags."""
    return dict(pair.split("=", 1) for pair in shlex.split(text))


def prod_like(alarm_topic_arn: str) -> dict[str, str]:
    """samconfig.toml's prod overrides, with every option of the template turned on."""
    values = _pairs(_samconfig_prod()["parameter_overrides"])
    values |= {
        # prod's topic is in another account; the rehearsal's is a topic created in moto.
        "AlarmTopicArn": alarm_topic_arn,
        "CheckoutPage": "enabled",
        "CorsOrigins": "https://shop.example,https://checkout.shop.example:8443",
        "SigningAlgorithm": "RS256",
        "IssueTokenReservedConcurrency": values.get("IssueTokenReservedConcurrency", "5"),
        "ProcessPaymentReservedConcurrency": values.get("ProcessPaymentReservedConcurrency", "5"),
    }
    return values


def constraint_violations(template: Template, values: dict[str, str]) -> list[str]:
    """What CloudFormation would refuse in these parameter values (moto checks none of it)."""
    problems = []
    for name, value in values.items():
        spec = template["Parameters"].get(name)
        if spec is None:
            problems.append(f"{name}: not a parameter of the template")
            continue
        allowed = spec.get("AllowedValues")
        if allowed is not None and value not in [str(v) for v in allowed]:
            problems.append(f"{name}={value!r}: not one of {allowed}")
        pattern = spec.get("AllowedPattern")
        if pattern is not None and re.fullmatch(pattern, value) is None:
            problems.append(f"{name}={value!r}: does not match its AllowedPattern")
        if "MinLength" in spec and len(value) < int(spec["MinLength"]):
            problems.append(f"{name}: shorter than MinLength")
        if "MaxLength" in spec and len(value) > int(spec["MaxLength"]):
            problems.append(f"{name}: longer than MaxLength")
        if spec["Type"] == "Number":
            try:
                number = float(value)
            except ValueError:
                problems.append(f"{name}={value!r}: not a number")
                continue
            if "MinValue" in spec and number < float(spec["MinValue"]):
                problems.append(f"{name}={value}: below MinValue {spec['MinValue']}")
            if "MaxValue" in spec and number > float(spec["MaxValue"]):
                problems.append(f"{name}={value}: above MaxValue {spec['MaxValue']}")
    return problems


def _parameter(template: Template, values: dict[str, str], name: str) -> str:
    return str(values.get(name, template["Parameters"][name].get("Default", "")))


def condition_values(template: Template, values: dict[str, str]) -> dict[str, bool]:
    """The template's Conditions under these parameter values (Equals, Not, And, Or)."""
    conditions = template.get("Conditions", {})

    def operand(value: Any) -> str:
        if isinstance(value, dict) and "Ref" in value:
            return (
                REGION
                if value["Ref"] == "AWS::Region"
                else _parameter(template, values, value["Ref"])
            )
        return str(value)

    def evaluate(condition: Any) -> bool:
        ((function, arguments),) = condition.items()
        if function == "Condition":
            return evaluate(conditions[arguments])
        if function == "Fn::Equals":
            return operand(arguments[0]) == operand(arguments[1])
        if function == "Fn::Not":
            return not evaluate(arguments[0])
        if function == "Fn::And":
            return all(evaluate(argument) for argument in arguments)
        if function == "Fn::Or":
            return any(evaluate(argument) for argument in arguments)
        raise AssertionError(f"{function} in a condition: teach condition_values()")

    return {name: evaluate(condition) for name, condition in conditions.items()}


def _applies(declaration: dict[str, Any], conditions: dict[str, bool]) -> bool:
    return "Condition" not in declaration or conditions[declaration["Condition"]]


def _resolve(value: Any, template: Template, values: dict[str, str], conditions: Any) -> Any:
    """A value built from parameters and conditions only (Ref, Fn::If, AWS::NoValue)."""
    if isinstance(value, dict) and "Fn::If" in value:
        name, if_true, if_false = value["Fn::If"]
        return _resolve(if_true if conditions[name] else if_false, template, values, conditions)
    if isinstance(value, dict) and value.get("Ref") == "AWS::NoValue":
        return None
    if isinstance(value, dict) and value.get("Ref") in template["Parameters"]:
        return _parameter(template, values, value["Ref"])
    return value


def _different(template: Template, name: str, current: str) -> str:
    """Another value the parameter accepts: the update must change something."""
    spec = template["Parameters"][name]
    if "AllowedValues" in spec:
        return next(str(v) for v in spec["AllowedValues"] if str(v) != current)
    return str(max(int(spec.get("MinValue", 1)), int(current) * 2 // 3))


# ---------------------------------------------------------------- moto workarounds


def _client(service: str) -> Any:
    return boto3.client(service, region_name=REGION)


Created = tuple[str, dict[str, str]]  # physical id, Fn::GetAtt attributes


def _create_secret(name: str, properties: dict[str, Any]) -> Created:
    passed = ("Description", "KmsKeyId", "SecretString", "Tags")
    unhandled = set(properties) - {"Name", *passed}
    assert not unhandled, f"the Secret stand-in does not handle {unhandled}"
    arn = _client("secretsmanager").create_secret(
        Name=properties.get("Name", name), **{k: properties[k] for k in passed if k in properties}
    )["ARN"]
    return arn, {"Id": arn}


def _update_secret(arn: str, name: str, properties: dict[str, Any]) -> Created:
    changes = {k: properties[k] for k in ("Description", "KmsKeyId") if k in properties}
    _client("secretsmanager").update_secret(SecretId=arn, **changes)
    return arn, {"Id": arn}


def _delete_secret(arn: str) -> None:
    _client("secretsmanager").delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)


def _create_http_api(name: str, properties: dict[str, Any]) -> Created:
    # SAM writes an OpenAPI Body for an AWS::Serverless::HttpApi, which CloudFormation imports
    # (ImportApi). moto 5.2.5 serves ReimportApi but not ImportApi: create, then import.
    assert set(properties) <= {"Body", "FailOnWarnings"}, set(properties)
    title = properties["Body"]["info"]["title"]
    api_id = _client("apigatewayv2").create_api(Name=title, ProtocolType="HTTP")["ApiId"]
    return _update_http_api(api_id, name, properties)


def _update_http_api(api_id: str, name: str, properties: dict[str, Any]) -> Created:
    api = _client("apigatewayv2").reimport_api(
        ApiId=api_id,
        Body=json.dumps(properties["Body"]),
        FailOnWarnings=properties.get("FailOnWarnings", False),
    )
    return api_id, {"ApiId": api_id, "ApiEndpoint": api["ApiEndpoint"]}


def _delete_http_api(api_id: str) -> None:
    _client("apigatewayv2").delete_api(ApiId=api_id)


def _put_alarm(name: str, properties: dict[str, Any]) -> Created:
    # AWS::CloudWatch::Alarm's properties are PutMetricAlarm's parameters; botocore refuses any
    # it does not know, or of the wrong type.
    alarm_name = properties.get("AlarmName", name)
    cloudwatch = _client("cloudwatch")
    cloudwatch.put_metric_alarm(**(properties | {"AlarmName": alarm_name}))
    (alarm,) = cloudwatch.describe_alarms(AlarmNames=[alarm_name])["MetricAlarms"]
    return alarm_name, {"Arn": alarm["AlarmArn"]}


def _update_alarm(old_name: str, name: str, properties: dict[str, Any]) -> Created:
    created = _put_alarm(name, properties)
    if created[0] != old_name:
        _delete_alarm(old_name)
    return created


def _delete_alarm(alarm_name: str) -> None:
    _client("cloudwatch").delete_alarms(AlarmNames=[alarm_name])


@dataclass
class _ShimResource:
    """One created resource: the part of a CloudFormationModel moto's parsing.py uses."""

    shim: _Shim
    physical_resource_id: str
    attributes: dict[str, str]
    cf_resource_type: str = ""  # moto sets these two after creating it
    logical_resource_id: str = ""

    def get_cfn_attribute(self, attribute: str) -> str:
        if attribute not in self.attributes:
            raise AssertionError(f"the stand-in for {self.cf_resource_type} has no {attribute}")
        return self.attributes[attribute]

    def is_created(self) -> bool:
        return True

    def delete(self, account_id: str, region_name: str) -> None:
        self.shim.delete(self.physical_resource_id)


@dataclass(frozen=True)
class _Shim:
    """A stand-in for a CloudFormation model moto lacks: each step calls the service's API.

    moto's parsing.py calls these methods on what resource_class_from_type returns. A plain
    object is enough; a CloudFormationModel subclass would stay in moto's model registry for
    every later test of the session.
    """

    create: Callable[[str, dict[str, Any]], Created]
    update: Callable[[str, str, dict[str, Any]], Created]
    delete: Callable[[str], None]
    attributes: frozenset[str]

    def create_from_cloudformation_json(
        self, resource_name: str, json: dict[str, Any], account: str, region: str, **_: Any
    ) -> _ShimResource:
        assert (account, region) == (ACCOUNT, REGION)
        return _ShimResource(self, *self.create(resource_name, json["Properties"]))

    def update_from_cloudformation_json(
        self,
        original_resource: _ShimResource,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> _ShimResource:
        physical_id = original_resource.physical_resource_id
        properties = cloudformation_json["Properties"]
        return _ShimResource(self, *self.update(physical_id, new_resource_name, properties))

    def delete_from_cloudformation_json(
        self, resource_name: str, json: dict[str, Any], account: str, region: str
    ) -> None:
        self.delete(resource_name)

    def has_cfn_attr(self, attribute: str) -> bool:
        return attribute in self.attributes


SHIMS: dict[str, _Shim] = {
    "AWS::SecretsManager::Secret": _Shim(
        _create_secret, _update_secret, _delete_secret, frozenset({"Id"})
    ),
    "AWS::ApiGatewayV2::Api": _Shim(
        _create_http_api, _update_http_api, _delete_http_api, frozenset({"ApiId", "ApiEndpoint"})
    ),
    "AWS::CloudWatch::Alarm": _Shim(_put_alarm, _update_alarm, _delete_alarm, frozenset({"Arn"})),
}
assert set(SHIMS) == SHIMMED

_moto_create_key = Key.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]


def _create_key(cls: type[Key], *args: Any, **kwargs: Any) -> Key:
    key: Key = _moto_create_key(cls, *args, **kwargs)
    if not isinstance(key.policy, str):
        key.policy = json.dumps(key.policy)
    return key


def _moto_workarounds(patch: pytest.MonkeyPatch) -> None:
    """The stand-ins, and three moto 5.2.5 bugs fixed, until `patch` is undone."""
    moto_resource_class = moto_cfn_parsing.resource_class_from_type
    moto_update = moto_cfn_parsing.parse_and_update_resource

    def resource_class_from_type(resource_type: str) -> Any:
        return SHIMS.get(resource_type) or moto_resource_class(resource_type)

    def parse_and_update_resource(
        logical_id: str, resource_json: dict[str, Any], resources_map: Any, *args: Any, **kw: Any
    ) -> Any:
        condition = resource_json.get("Condition")
        if condition and not resources_map.lazy_condition_map[condition]:
            return None
        return moto_update(logical_id, resource_json, resources_map, *args, **kw)

    patch.setattr(moto_cfn_parsing, "resource_class_from_type", resource_class_from_type)
    # Bug: an update modifies every resource that Refs a changed parameter without checking its
    # Condition (creation checks it). A resource whose condition is false (the checkout page's
    # function, by default) then fails on its GetAtt of another such resource: "Template error:
    # instance of Fn::GetAtt references undefined resource CheckoutPageRole". CloudFormation
    # leaves such a resource alone.
    patch.setattr(moto_cfn_parsing, "parse_and_update_resource", parse_and_update_resource)
    # Bug: AWS::Lambda::LayerVersion has no physical_resource_id, so a Ref to it yields moto's
    # model object, not the layer version ARN. Creation ignores a function's Layers; an update
    # passes them on and fails: "'LayerVersion' object has no attribute 'replace'".
    patch.setattr(
        LayerVersion, "physical_resource_id", property(lambda self: self.arn), raising=False
    )
    # Bug: AWS::KMS::Key keeps the KeyPolicy as the template's mapping where the KMS API keeps a
    # JSON string, so DescribeKey and GetKeyPolicy on such a key fail: "the JSON object must be
    # str, bytes or bytearray, not dict".
    patch.setattr(Key, "create_from_cloudformation_json", classmethod(_create_key))


# ---------------------------------------------------------------- the emulated account


class _NoManagedPolicies:
    """The template names no managed policy, so the transform needs no IAM lookup."""

    def load(self) -> dict[str, str]:
        return {}


def _transform(template: Template, values: dict[str, str]) -> Template:
    """CloudFormation's AWS::Serverless transform, run with one deploy's parameter values."""
    output: Template = transform(copy.deepcopy(template), values, _NoManagedPolicies())
    return output


@dataclass
class Rehearsal:
    """One emulated account, the packaged template, and moto's answers to each deploy step."""

    packaged: Template
    moto_warnings: list[str] = field(default_factory=list)

    def _call(self, action: str, **arguments: Any) -> dict[str, Any]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            answer: dict[str, Any] = getattr(_client("cloudformation"), action)(**arguments)
        self.moto_warnings += [str(warning.message) for warning in caught]
        return answer

    def create(self, name: str, template: Template, values: dict[str, str], tags: Any) -> str:
        return str(
            self._call(
                "create_stack",
                StackName=name,
                TemplateBody=json.dumps(template),
                Parameters=_parameters(values),
                Capabilities=CAPABILITIES,
                Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
            )["StackId"]
        )

    def update(self, stack_id: str, template: Template, values: dict[str, str]) -> None:
        self._call(
            "update_stack",
            StackName=stack_id,
            TemplateBody=json.dumps(template),
            Parameters=_parameters(values),
            Capabilities=CAPABILITIES,
        )

    def delete(self, stack_id: str) -> None:
        self._call("delete_stack", StackName=stack_id)

    def stack(self, stack_id: str) -> dict[str, Any]:
        (stack,) = self._call("describe_stacks", StackName=stack_id)["Stacks"]
        return dict(stack)

    def resources(self, stack_id: str) -> Resources:
        """What moto created, its nameless rows for what it did not left out."""
        # moto parses the resources it has no model for again on every call (and warns again).
        rows = self._call("list_stack_resources", StackName=stack_id)["StackResourceSummaries"]
        return {
            row["LogicalResourceId"]: (row["ResourceType"], row.get("PhysicalResourceId", ""))
            for row in rows
            if row["LogicalResourceId"]
        }


def _parameters(values: dict[str, str]) -> list[dict[str, str]]:
    return [{"ParameterKey": k, "ParameterValue": v} for k, v in sorted(values.items())]


def _package() -> Template:
    """`sam package`: SAM CLI's exporter zips each code folder into the artifact bucket."""
    uploaders = Uploaders(
        S3Uploader(_client("s3"), ARTIFACT_BUCKET, ARTIFACT_PREFIX, None, False, True),
        ECRUploader(None, None, None, {}, True),  # no image functions
    )
    exporter = PackageableTemplate(
        TEMPLATE_PATH.name,
        str(REPOSITORY),
        uploaders,
        CodeSigner(None, {}),
        normalize_template=True,
        normalize_parameters=True,
        template_dict=_source_template(),
        language_extensions_enabled=False,
    )
    packaged: Template = exporter.export()
    return packaged


def _forget_account() -> None:
    """Drop all moto holds for ACCOUNT: an enclosing mock_aws would otherwise keep it."""
    with backend_lock:
        for backend in BackendDict._instances:  # type: ignore[misc]
            backend.pop(ACCOUNT, None)
    for bucket, (_, account) in list(s3_backends.bucket_accounts.items()):
        if account == ACCOUNT:
            s3_backends.bucket_accounts.pop(bucket, None)


@pytest.fixture
def rehearsal() -> Iterator[Rehearsal]:
    with pytest.MonkeyPatch.context() as patch:
        for name in [n for n in os.environ if n.startswith("AWS_")]:
            patch.delenv(name)
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "MOTO_ACCOUNT_ID": ACCOUNT,
        }.items():
            patch.setenv(name, value)
        _moto_workarounds(patch)
        with mock_aws():
            try:
                _client("s3").create_bucket(Bucket=ARTIFACT_BUCKET)
                yield Rehearsal(_package())
            finally:
                _forget_account()


# ---------------------------------------------------------------- checks


def _exists(resource_type: str, physical_id: str) -> bool:
    """Does moto still hold this resource?"""
    try:
        if resource_type == "AWS::KMS::Key":
            state = _client("kms").describe_key(KeyId=physical_id)["KeyMetadata"]["KeyState"]
            return bool(state != "PendingDeletion")
        if resource_type == "AWS::DynamoDB::Table":
            return bool(_client("dynamodb").describe_table(TableName=physical_id))
        if resource_type == "AWS::Logs::LogGroup":
            groups = _client("logs").describe_log_groups(logGroupNamePrefix=physical_id)
            return physical_id in [group["logGroupName"] for group in groups["logGroups"]]
        if resource_type == "AWS::Lambda::Function":
            return bool(_client("lambda").get_function(FunctionName=physical_id))
        if resource_type == "AWS::IAM::Role":
            return bool(_client("iam").get_role(RoleName=physical_id))
        if resource_type == "AWS::SecretsManager::Secret":
            secret = _client("secretsmanager").describe_secret(SecretId=physical_id)
            return "DeletedDate" not in secret
        if resource_type == "AWS::ApiGatewayV2::Api":
            return bool(_client("apigatewayv2").get_api(ApiId=physical_id))
        if resource_type == "AWS::CloudWatch::Alarm":
            alarms = _client("cloudwatch").describe_alarms(AlarmNames=[physical_id])
            return bool(alarms["MetricAlarms"])
    except ClientError as error:
        missing = {"NotFoundException", "NoSuchEntity", "ResourceNotFoundException"}
        if error.response["Error"]["Code"] in missing:
            return False
        raise
    raise AssertionError(f"no existence check for {resource_type}")


CHECKED_ON_DELETE = frozenset(
    {
        "AWS::KMS::Key",
        "AWS::DynamoDB::Table",
        "AWS::Logs::LogGroup",
        "AWS::Lambda::Function",
        "AWS::IAM::Role",
        *SHIMMED,
    }
)


def _of_type(
    template: Template, resource_type: str, conditions: dict[str, bool]
) -> dict[str, dict[str, Any]]:
    return {
        logical_id: resource
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == resource_type and _applies(resource, conditions)
    }


def _check_functions(
    template: Template, values: dict[str, str], conditions: dict[str, bool], resources: Resources
) -> None:
    """Each function runs the packaged code with its role, settings and every variable."""
    aws_lambda = _client("lambda")
    functions = _of_type(template, "AWS::Lambda::Function", conditions)
    assert functions
    for logical_id, resource in functions.items():
        properties = resource["Properties"]
        name = resources[logical_id][1]
        deployed = aws_lambda.get_function_configuration(FunctionName=name)

        code = properties["Code"]
        zipped = _client("s3").get_object(Bucket=code["S3Bucket"], Key=code["S3Key"])
        digest = hashlib.sha256(zipped["Body"].read()).digest()
        assert deployed["CodeSha256"] == base64.b64encode(digest).decode(), logical_id
        for setting in ("Handler", "Runtime", "Timeout", "MemorySize", "Description"):
            assert deployed.get(setting) == properties.get(setting), (logical_id, setting)
        if "Fn::GetAtt" in properties["Role"]:  # its own role, by SAM or by hand
            role = resources[properties["Role"]["Fn::GetAtt"][0]][1]
            assert deployed["Role"] == f"arn:aws:iam::{ACCOUNT}:role/{role}", logical_id

        declared = properties.get("Environment", {}).get("Variables", {})
        variables = deployed.get("Environment", {}).get("Variables", {})
        # A Ref to a resource moto did not create resolves to None and drops the variable.
        assert set(variables) == set(declared), logical_id
        for variable, value in declared.items():
            got = str(variables[variable])  # moto keeps a Number parameter as a JSON number
            resolved = _resolve(value, template, values, conditions)
            if isinstance(resolved, str):
                assert got == resolved, (logical_id, variable)
            elif "Ref" in value:
                assert got == resources[value["Ref"]][1], (logical_id, variable)
            elif value.get("Fn::GetAtt", [None, None])[1] == "Arn":
                assert re.fullmatch(ARN, got), (logical_id, variable)
                assert got.endswith(resources[value["Fn::GetAtt"][0]][1]), (logical_id, variable)
            else:
                assert got, (logical_id, variable)
                assert "None" not in got, (logical_id, variable, got)
                assert "${" not in got, (logical_id, variable, got)

        reserved = _resolve(
            properties.get("ReservedConcurrentExecutions"), template, values, conditions
        )
        concurrency = aws_lambda.get_function_concurrency(FunctionName=name)
        assert concurrency.get("ReservedConcurrentExecutions") == (
            None if reserved is None else int(reserved)
        ), logical_id


def _check_logs_and_tables(
    template: Template, values: dict[str, str], conditions: dict[str, bool], resources: Resources
) -> None:
    """Log groups keep their logs as long as the parameter says; tables have their keys."""
    logs, dynamodb = _client("logs"), _client("dynamodb")
    for logical_id, resource in _of_type(template, "AWS::Logs::LogGroup", conditions).items():
        name = resources[logical_id][1]
        (group,) = [
            group
            for group in logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"]
            if group["logGroupName"] == name
        ]
        retention = _resolve(
            resource["Properties"].get("RetentionInDays"), template, values, conditions
        )
        assert str(group.get("retentionInDays")) == str(retention), logical_id
    for logical_id, resource in _of_type(template, "AWS::DynamoDB::Table", conditions).items():
        properties = resource["Properties"]
        table = dynamodb.describe_table(TableName=resources[logical_id][1])["Table"]
        assert table["KeySchema"] == properties["KeySchema"], logical_id
        indexes = {
            index["IndexName"]: index["KeySchema"]
            for index in table.get("GlobalSecondaryIndexes", [])
        }
        assert indexes == {
            index["IndexName"]: index["KeySchema"]
            for index in properties.get("GlobalSecondaryIndexes", [])
        }, logical_id


def _role_references(value: Any) -> set[str]:
    if isinstance(value, list):
        return set().union(*(_role_references(item) for item in value))
    if isinstance(value, dict):
        if "Fn::GetAtt" in value:
            return {value["Fn::GetAtt"][0]}
        return _role_references(list(value.values()))
    return set()


def _check_key_policies(
    template: Template, conditions: dict[str, bool], resources: Resources
) -> None:
    """The key policies name the account and exactly the roles the stack created for them."""
    kms = _client("kms")
    for logical_id, resource in _of_type(template, "AWS::KMS::Key", conditions).items():
        policy = json.loads(
            kms.get_key_policy(KeyId=resources[logical_id][1], PolicyName="default")["Policy"]
        )
        principals: set[str] = set()
        for statement in policy["Statement"]:
            named = statement["Principal"].get("AWS", [])
            principals |= set(named if isinstance(named, list) else [named])
        # Every GetAtt in a key policy names a role's Arn (template.yaml's, so far).
        roles = _role_references(resource["Properties"]["KeyPolicy"])
        assert principals == {f"arn:aws:iam::{ACCOUNT}:root"} | {
            f"arn:aws:iam::{ACCOUNT}:role/{resources[role][1]}" for role in roles
        }, logical_id


def _check_outputs(
    template: Template, conditions: dict[str, bool], stack: dict[str, Any], resources: Resources
) -> None:
    """Every Output the conditions allow is there, and names something the stack created."""
    expected = {
        key for key, output in template.get("Outputs", {}).items() if _applies(output, conditions)
    }
    outputs = {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}
    assert set(outputs) == expected
    physical_ids = {physical_id for _, physical_id in resources.values() if physical_id}
    for key, value in outputs.items():
        assert value, key
        assert "${" not in value, (key, value)  # moto leaves the Sub of a missing resource as is
        assert "None" not in value, (key, value)
        if key.endswith("Arn"):
            assert re.fullmatch(ARN, value), (key, value)
            assert value in physical_ids or value.rsplit("/", 1)[-1] in physical_ids, key
        elif key.endswith("Url"):
            url = re.fullmatch(rf"https://(\w+)\.execute-api\.{REGION}\.amazonaws\.com/?", value)
            assert url, (key, value)
            assert url[1] in physical_ids, key
        else:
            assert value in physical_ids, (key, value)


def _check_alarms(
    template: Template, values: dict[str, str], conditions: dict[str, bool], resources: Resources
) -> int:
    """Each alarm exists and notifies the topics the template gives it. Returns how many."""
    alarms = _of_type(template, "AWS::CloudWatch::Alarm", conditions)
    cloudwatch, sns = _client("cloudwatch"), _client("sns")
    for logical_id, resource in alarms.items():
        (alarm,) = cloudwatch.describe_alarms(AlarmNames=[resources[logical_id][1]])["MetricAlarms"]
        for actions in ("AlarmActions", "OKActions"):
            declared = resource["Properties"].get(actions, [])
            expected = [_resolve(action, template, values, conditions) for action in declared]
            assert alarm.get(actions, []) == expected, (logical_id, actions)
            for topic in expected:
                sns.get_topic_attributes(TopicArn=topic)  # a topic that exists
    return len(alarms)


# ---------------------------------------------------------------- tests


def test_moto_has_no_model_for_exactly_these_types_of_the_template(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given every type the template declares, transformed with every option on
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    source = _source_template()
    for resource in source["Resources"].values():
        for location in ("CodeUri", "ContentUri"):
            if location in resource.get("Properties", {}):
                resource["Properties"][location] = "s3://artifacts/code.zip"
    transformed = _transform(source, prod_like(f"arn:aws:sns:{REGION}:{ACCOUNT}:alarms"))
    types = {resource["Type"] for resource in transformed["Resources"].values()}

    # When moto's CloudFormation looks for a model of each
    modelled = set(moto_cfn_parsing.get_model_map())

    # Then it lacks exactly the known ones. A moto upgrade, or a type new to template.yaml,
    # that changes this must update MOTO_HAS_NO_MODEL (and SHIMMED, docs/deploy-rehearsal.md).
    assert types - modelled == MOTO_HAS_NO_MODEL
    assert not SHIMMED & modelled, "moto models it now: drop the stand-in"
    assert not any(t.startswith("Custom::") for t in types), "moto runs custom resources in Docker"


def test_packaging_uploads_every_code_folder(rehearsal: Rehearsal) -> None:
    # Given template.yaml and what `sam package` made of it
    source = _source_template()["Resources"]
    code_folders = {
        logical_id: resource["Properties"].get("CodeUri") or resource["Properties"]["ContentUri"]
        for logical_id, resource in source.items()
        if {"CodeUri", "ContentUri"} & set(resource.get("Properties", {}))
    }
    assert code_folders
    s3 = _client("s3")

    for logical_id, folder in code_folders.items():
        properties = rehearsal.packaged["Resources"][logical_id]["Properties"]
        location = properties.get("CodeUri") or properties["ContentUri"]
        # Then each code location is a zip in the artifact bucket...
        key = re.fullmatch(rf"s3://{ARTIFACT_BUCKET}/({ARTIFACT_PREFIX}/[0-9a-f]{{32}})", location)
        assert key, (logical_id, location)
        body = s3.get_object(Bucket=ARTIFACT_BUCKET, Key=key[1])["Body"].read()
        names = set(zipfile.ZipFile(io.BytesIO(body)).namelist())
        # ...holding the folder's files, the handler's module among them
        root = REPOSITORY / folder
        files = {
            str(path.relative_to(root))
            for path in root.rglob("*")
            if path.is_file() and "__pycache__" not in path.parts
        }
        assert files <= names, logical_id
        if "Handler" in properties:
            assert f"{properties['Handler'].rsplit('.', 1)[0]}.py" in names, logical_id


@pytest.mark.parametrize("environment", ["defaults", "prod-like"])
def test_the_stack_is_created_updated_and_deleted(rehearsal: Rehearsal, environment: str) -> None:
    # Given parameter values CloudFormation accepts: the template's defaults, or prod's with
    # every option on (an SNS topic for the alarms, the checkout page, CORS, concurrency, RS256)
    source = _source_template()
    if environment == "defaults":
        values: dict[str, str] = {}
        tags: dict[str, str] = {}
    else:
        topic = _client("sns").create_topic(Name="card-tokens-rehearsal-alarms")["TopicArn"]
        values = prod_like(topic)
        tags = _pairs(_samconfig_prod()["tags"])
    assert constraint_violations(source, values) == []
    conditions = condition_values(source, values)
    if environment == "prod-like":
        off = {name for name, holds in conditions.items() if not holds}
        assert off == set(), f"turn {off} on in prod_like()"

    # When the transformed template creates the stack
    template = _transform(rehearsal.packaged, values)
    stack_id = rehearsal.create(f"card-tokens-rehearsal-{environment}", template, values, tags)

    # Then the stack is complete with every resource whose type moto (or a stand-in) creates
    assert rehearsal.stack(stack_id)["StackStatus"] == "CREATE_COMPLETE"
    declared = {
        logical_id: resource["Type"]
        for logical_id, resource in template["Resources"].items()
        if _applies(resource, conditions)
    }
    resources = rehearsal.resources(stack_id)
    assert {logical_id: kind for logical_id, (kind, _) in resources.items()} == {
        logical_id: kind for logical_id, kind in declared.items() if kind not in NOT_CREATED
    }
    # and moto said it skipped exactly the types it only pretends to create
    skipped = {re.search(r"parse (\S+) but", w) for w in rehearsal.moto_warnings}
    assert {match[1] for match in skipped if match} == NOT_CREATED & set(declared.values())
    # every Output resolves to something the stack holds
    _check_outputs(template, conditions, rehearsal.stack(stack_id), resources)
    # the functions run the packaged code with every variable the template gives them
    _check_functions(template, values, conditions, resources)
    _check_logs_and_tables(template, values, conditions, resources)
    _check_key_policies(template, conditions, resources)
    alarms = _check_alarms(template, values, conditions, resources)
    if environment == "prod-like":
        assert alarms > 0, "the alarm topic reaches no alarm"

    # When an update changes the log level and the token lifetime
    updated = values | {
        "LogLevel": _different(source, "LogLevel", _parameter(source, values, "LogLevel")),
        "TokenLifetimeSeconds": _different(
            source, "TokenLifetimeSeconds", _parameter(source, values, "TokenLifetimeSeconds")
        ),
    }
    assert constraint_violations(source, updated) == []
    template = _transform(rehearsal.packaged, updated)
    rehearsal.update(stack_id, template, updated)

    # Then the update is complete, replaced nothing, and the functions have the new values
    stack = rehearsal.stack(stack_id)
    assert stack["StackStatus"] == "UPDATE_COMPLETE"
    parameters = {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}
    assert {name: parameters[name] for name in updated} == updated
    assert rehearsal.resources(stack_id) == resources
    _check_functions(template, updated, conditions, resources)
    issuer = _client("lambda").get_function_configuration(
        FunctionName=resources["IssueTokenFunction"][1]
    )["Environment"]["Variables"]
    assert str(issuer["TOKEN_LIFETIME_SECONDS"]) == updated["TokenLifetimeSeconds"]
    assert issuer["POWERTOOLS_LOG_LEVEL"] == updated["LogLevel"]
    _check_outputs(template, conditions, stack, resources)

    # When the stack is deleted
    rehearsal.delete(stack_id)

    # Then it is gone but for what the template retains, which is still there
    assert rehearsal.stack(stack_id)["StackStatus"] == "DELETE_COMPLETE"
    retained = {
        logical_id
        for logical_id in declared
        if template["Resources"][logical_id].get("DeletionPolicy") == "Retain"
    }
    assert retained >= MUST_BE_RETAINED
    assert retained <= set(resources), "moto does not create these: their retention is unchecked"
    unchecked = {
        logical_id for logical_id in retained if resources[logical_id][0] not in CHECKED_ON_DELETE
    }
    assert unchecked == set(), "teach _exists() their types"
    survivors = {
        logical_id
        for logical_id, (kind, physical_id) in resources.items()
        if kind in CHECKED_ON_DELETE and _exists(kind, physical_id)
    }
    assert survivors == retained
