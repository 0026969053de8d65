"""Deploy rehearsal: package, transform, create, update and delete the stack on moto.

What `sam deploy` and CloudFormation do, offline and in-process: SAM CLI's own packaging code
zips every CodeUri/ContentUri folder into an emulated S3 bucket, samtranslator runs the
AWS::Serverless transform with the deploy's parameter values, and moto's CloudFormation creates,
updates and deletes the stack: once with the template's defaults, once prod-like (samconfig.toml's
prod overrides with every option on). docs/deploy-rehearsal.md says what this proves and what not.

moto's CloudFormation has no model for some of the template's types (MOTO_HAS_NO_MODEL): it
reports them CREATE_COMPLETE and creates nothing. Those that an Output or another resource
refers to are created here by thin stand-ins that call the service's own API (SHIMMED); the
others stay uncreated (NOT_CREATED). moto's bugs and gaps on this template's path are patched
for the duration of the test only (see _moto_workarounds).
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
from moto.apigateway.models import Deployment, RestAPI, apigateway_backends
from moto.awslambda.models import LambdaVersion, LayerVersion, lambda_backends
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

from local.cfn import TEMPLATE_PATH, load_template
from local.intrinsics import Resolver
from tests.template.policies import referenced_ids
from tests.template.sam import sam_transform

Template = dict[str, Any]
Resources = dict[str, tuple[str, str]]  # logical id -> (type, physical id), as moto lists them

REPOSITORY = TEMPLATE_PATH.parent
SAMCONFIG = REPOSITORY / "samconfig.toml"
DEPLOY_TEMPLATE = REPOSITORY / "deploy" / "github-oidc-role.yaml"
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
        "AWS::ApiGateway::Account",
        "AWS::ApiGateway::BasePathMapping",
        "AWS::ApiGateway::DomainName",
        "AWS::ApiGateway::Stage",
        "AWS::CloudWatch::Alarm",
        "AWS::CodeDeploy::Application",
        "AWS::CodeDeploy::DeploymentGroup",
        "AWS::IAM::RolePolicy",
        "AWS::Lambda::Alias",
        "AWS::Scheduler::Schedule",
        "AWS::SecretsManager::ResourcePolicy",
        "AWS::SecretsManager::RotationSchedule",
        "AWS::SecretsManager::Secret",
        "AWS::SNS::Subscription",
        "AWS::SNS::TopicPolicy",
        "AWS::WAFv2::LoggingConfiguration",
        "AWS::WAFv2::WebACL",
        "AWS::WAFv2::WebACLAssociation",
    }
)
# Of those, the types this harness creates itself through the service's API (see _Shim), each
# because an Output or another resource refers to it. Without the secrets the functions lose
# their secret-id variables and two Outputs are missing; without the stage, ApiUrl, JwksUrl,
# CheckoutPageUrl and the dashboard keep a literal ${CardTokensApiv1Stage}; without the custom
# domain, its two Outputs; without the web ACL, WebAclArn; without the account setting, the
# access log group's tag that orders the stage after it; without the alarms the dashboard and
# the alarm topic reach nothing; without `live`, API Gateway's invoke permissions (which name
# the alias) cannot be created.
SHIMMED = frozenset(
    {
        "AWS::SecretsManager::Secret",
        "AWS::ApiGateway::Stage",
        "AWS::ApiGateway::DomainName",
        "AWS::ApiGateway::Account",
        "AWS::WAFv2::WebACL",
        "AWS::CloudWatch::Alarm",
        "AWS::Lambda::Alias",
    }
)
# Created nowhere and checked by nothing here: moto only pretends.
NOT_CREATED = MOTO_HAS_NO_MODEL - SHIMMED

# Must outlive the stack (template.yaml: the card key wraps every live token's data key,
# payments are the merchant's history, the registry binds merchants to their keys, the logs
# are the audit trail). The survivors of a delete are then exactly what the template marks
# DeletionPolicy: Retain; this is the floor.
MUST_BE_RETAINED = frozenset(
    {
        "CardKey",
        "PaymentTable",
        "MerchantTable",
        "CardTokensApiAccessLogGroup",
        "ApiWafLogGroup",
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


# Stands in for prod's on-call address, a placeholder the template refuses until it is replaced.
REHEARSAL_ONCALL = "card-tokens-oncall@rehearsal.internal"
# Conditions no deploy turns on: LocalEndpointUrl serves `sam local invoke` only (its pattern
# admits nothing but the developer's machine), so prod_like() leaves it empty like prod does.
NEVER_ON_AWS = frozenset({"HasLocalEndpoint"})


# The custom domain, and its certificate as ACM would have issued it (created first in moto's ACM
# for the prod-like run, as it must exist before the stack is deployed).
REHEARSAL_DOMAIN = "api.card-tokens.rehearsal.internal"


def prod_like(boundary_arn: str, certificate_arn: str) -> dict[str, str]:
    """samconfig.toml's prod overrides, with every option of the template turned on."""
    values = _pairs(_samconfig_prod()["parameter_overrides"])
    values |= {
        # prod's boundary is in an account to be filled in; the rehearsal's is created in moto.
        "PermissionsBoundaryArn": boundary_arn,
        # The API on its own domain (the execute-api endpoint off), AWS WAF's Bot Control rule
        # group on /tokens, and the region's API Gateway logging role set by the stack.
        "DomainName": REHEARSAL_DOMAIN,
        "CertificateArn": certificate_arn,
        "WafBotControl": "enabled",
        "ApiGatewayLogsRole": "create",
        # The stack's own alarm topic (no AlarmTopicArn), with the on-call address subscribed.
        "AlarmEmail": REHEARSAL_ONCALL,
        "CheckoutPage": "enabled",
        "CorsOrigins": "https://shop.example,https://checkout.shop.example:8443",
        "SigningAlgorithm": "RS256",
        "SnapStart": "PublishedVersions",
        # A real processor: its secrets, their key and the grants to read them.
        "Processor": "forward",
        "ForwardAllowedHosts": "api.processor.rehearsal.internal,pay.processor.example:8443",
        "DeploymentStrategy": values.get("DeploymentStrategy", "Canary10Percent10Minutes"),
        "IssueTokenReservedConcurrency": values.get("IssueTokenReservedConcurrency", "5"),
        "ProcessPaymentReservedConcurrency": values.get("ProcessPaymentReservedConcurrency", "5"),
    }
    values.pop("AlarmTopicArn", None)
    return values


def _boundary_arn(stack_name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:policy/{stack_name}-permissions-boundary"


def _certificate_arn() -> str:
    return f"arn:aws:acm:{REGION}:{ACCOUNT}:certificate/0a1b2c3d-1111-2222-3333-444455556666"


def _request_certificate() -> str:
    """The custom domain's ACM certificate, in moto's ACM (a regional domain needs one in the
    stack's region)."""
    arn = _client("acm").request_certificate(DomainName=REHEARSAL_DOMAIN, ValidationMethod="DNS")[
        "CertificateArn"
    ]
    return str(arn)


class _InTheRehearsalAccount(Resolver):
    def pseudo_parameters(self) -> dict[str, str]:
        return super().pseudo_parameters() | {"AWS::AccountId": ACCOUNT, "AWS::Region": REGION}


def _create_boundary(stack_name: str) -> str:
    """deploy/github-oidc-role.yaml's PermissionsBoundary for this stack, created in moto's IAM
    as that template's stack creates it before the app's first deploy (docs/deploy.md)."""
    pipeline = load_template(DEPLOY_TEMPLATE)
    pipeline["Parameters"]["AppStackName"]["Default"] = stack_name
    resolver = _InTheRehearsalAccount(pipeline, "card-tokens-github-rehearsal")
    boundary = resolver.resolve(pipeline["Resources"]["PermissionsBoundary"]["Properties"])
    policy = _client("iam").create_policy(
        PolicyName=boundary["ManagedPolicyName"],
        PolicyDocument=json.dumps(boundary["PolicyDocument"]),
        Description=boundary["Description"],
    )["Policy"]
    assert policy["Arn"] == _boundary_arn(stack_name)
    return str(policy["Arn"])


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


def _create_stage(name: str, properties: dict[str, Any]) -> Created:
    # SAM's v1 stage of the REST API: the deployment it serves, its access log and throttling.
    assert set(properties) <= {
        "RestApiId",
        "DeploymentId",
        "StageName",
        "AccessLogSetting",
        "MethodSettings",
        "TracingEnabled",
    }, set(properties)
    apigateway = _client("apigateway")
    apigateway.create_stage(
        restApiId=properties["RestApiId"],
        stageName=properties["StageName"],
        deploymentId=properties["DeploymentId"],
    )
    return _update_stage(properties["StageName"], name, properties)


def _stage_patch(properties: dict[str, Any]) -> list[dict[str, str]]:
    """AccessLogSetting and MethodSettings as UpdateStage's patch operations."""
    operations = [
        {"op": "replace", "path": "/deploymentId", "value": properties["DeploymentId"]},
    ]
    if "TracingEnabled" in properties:
        operations.append(
            {
                "op": "replace",
                "path": "/tracingEnabled",
                "value": str(properties["TracingEnabled"]).lower(),
            }
        )
    access_log = properties.get("AccessLogSetting", {})
    for key, path in (("DestinationArn", "destinationArn"), ("Format", "format")):
        if key in access_log:
            operations.append(
                {"op": "replace", "path": f"/accessLogSettings/{path}", "value": access_log[key]}
            )
    for setting in properties.get("MethodSettings", []):
        prefix = f"/{setting['ResourcePath'].replace('/', '~1')}/{setting['HttpMethod']}"
        for key, path in (
            ("ThrottlingBurstLimit", "throttling/burstLimit"),
            ("ThrottlingRateLimit", "throttling/rateLimit"),
        ):
            if key in setting:
                operations.append(
                    {"op": "replace", "path": f"{prefix}/{path}", "value": str(setting[key])}
                )
    return operations


def _update_stage(stage_name: str, name: str, properties: dict[str, Any]) -> Created:
    assert stage_name == properties["StageName"], "a new StageName replaces the stage"
    _client("apigateway").update_stage(
        restApiId=properties["RestApiId"],
        stageName=stage_name,
        patchOperations=_stage_patch(properties),
    )
    # Ref: the stage's name (what ApiUrl and the alarms' Stage dimension quote)
    return stage_name, {}


def _stage_holders(stage_name: str) -> list[str]:
    """The REST APIs of the account that have a stage of that name."""
    apigateway = _client("apigateway")
    return [
        api["id"]
        for api in apigateway.get_rest_apis()["items"]
        if stage_name
        in [s["stageName"] for s in apigateway.get_stages(restApiId=api["id"])["item"]]
    ]


def _delete_stage(stage_name: str) -> None:
    # moto may delete the REST API first (CloudFormation would not): its stages went too.
    for api_id in _stage_holders(stage_name):
        _client("apigateway").delete_stage(restApiId=api_id, stageName=stage_name)


def _create_domain_name(name: str, properties: dict[str, Any]) -> Created:
    # A regional custom domain with its ACM certificate (which must exist), TLS 1.2.
    assert set(properties) == {
        "DomainName",
        "RegionalCertificateArn",
        "EndpointConfiguration",
        "SecurityPolicy",
    }, set(properties)
    certificate = _client("acm").describe_certificate(
        CertificateArn=properties["RegionalCertificateArn"]
    )["Certificate"]
    assert certificate["DomainName"] == properties["DomainName"]
    domain = _client("apigateway").create_domain_name(
        domainName=properties["DomainName"],
        regionalCertificateArn=properties["RegionalCertificateArn"],
        endpointConfiguration={"types": properties["EndpointConfiguration"]["Types"]},
        securityPolicy=properties["SecurityPolicy"],
    )
    return domain["domainName"], {
        "RegionalDomainName": domain["regionalDomainName"],
        "RegionalHostedZoneId": domain["regionalHostedZoneId"],
    }


def _update_domain_name(domain_name: str, name: str, properties: dict[str, Any]) -> Created:
    assert domain_name == properties["DomainName"], "a new DomainName replaces the domain"
    domain = _client("apigateway").get_domain_name(domainName=domain_name)
    return domain_name, {
        "RegionalDomainName": domain["regionalDomainName"],
        "RegionalHostedZoneId": domain["regionalHostedZoneId"],
    }


def _delete_domain_name(domain_name: str) -> None:
    _client("apigateway").delete_domain_name(domainName=domain_name)


# The account setting has no name of its own; CloudFormation's Ref returns an id for it.
API_GATEWAY_ACCOUNT_ID = f"apigateway-account-{REGION}"


def _set_api_gateway_account(name: str, properties: dict[str, Any]) -> Created:
    # The region's API Gateway account setting: the CloudWatch Logs role REST APIs log as.
    assert set(properties) == {"CloudWatchRoleArn"}, set(properties)
    role_name = properties["CloudWatchRoleArn"].rsplit("/", 1)[1]
    _client("iam").get_role(RoleName=role_name)  # a role that exists
    _client("apigateway").update_account(
        patchOperations=[
            {
                "op": "replace",
                "path": "/cloudwatchRoleArn",
                "value": properties["CloudWatchRoleArn"],
            }
        ]
    )
    return API_GATEWAY_ACCOUNT_ID, {"Id": API_GATEWAY_ACCOUNT_ID}


def _update_api_gateway_account(physical_id: str, name: str, properties: dict[str, Any]) -> Created:
    return _set_api_gateway_account(name, properties)


def _leave_api_gateway_account(physical_id: str) -> None:
    # CloudFormation's delete handler of AWS::ApiGateway::Account leaves the setting as it is
    # (the template retains it anyway).
    return None


def _web_acl_arguments(properties: dict[str, Any]) -> dict[str, Any]:
    def as_numbers(value: Any) -> Any:
        # moto's CloudFormation hands a Number parameter on as text; CreateWebACL wants numbers
        if isinstance(value, dict):
            return {
                k: int(v)
                if k in {"Limit", "Priority", "EvaluationWindowSec", "Size"}
                else as_numbers(v)
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [as_numbers(item) for item in value]
        return value

    passed = (
        "Name",
        "Scope",
        "DefaultAction",
        "Description",
        "Rules",
        "VisibilityConfig",
        "AssociationConfig",
        "CustomResponseBodies",
    )
    unhandled = set(properties) - set(passed)
    assert not unhandled, f"the WebACL stand-in does not handle {unhandled}"
    arguments = {k: as_numbers(properties[k]) for k in passed if k in properties}
    # moto resolves an AWS::NoValue item of a list (Bot Control's rule, when it is off) to None;
    # CloudFormation leaves it out.
    arguments["Rules"] = [rule for rule in arguments.get("Rules", []) if rule is not None]
    return arguments


def _create_web_acl(name: str, properties: dict[str, Any]) -> Created:
    # botocore checks every rule's shape (rate limits, managed rule groups, Bot Control's
    # configuration, the custom responses) against AWS WAF's API model.
    summary = _client("wafv2").create_web_acl(**_web_acl_arguments(properties))["Summary"]
    return summary["ARN"], {"Arn": summary["ARN"], "Id": summary["Id"]}


def _web_acl_key(arn: str) -> dict[str, str]:
    """Name, Scope and Id of a regional web ACL, from its ARN (.../regional/webacl/<name>/<id>)."""
    name, web_acl_id = arn.rsplit("/", 2)[-2:]
    return {"Name": name, "Scope": "REGIONAL", "Id": web_acl_id}


def _update_web_acl(arn: str, name: str, properties: dict[str, Any]) -> Created:
    wafv2 = _client("wafv2")
    key = _web_acl_key(arn)
    assert key["Name"] == properties["Name"], "a new Name replaces the web ACL"
    lock = wafv2.get_web_acl(**key)["LockToken"]
    arguments = _web_acl_arguments(properties)
    arguments.pop("Name")
    arguments.pop("Scope")
    wafv2.update_web_acl(**key, LockToken=lock, **arguments)
    return arn, {"Arn": arn, "Id": key["Id"]}


def _delete_web_acl(arn: str) -> None:
    wafv2 = _client("wafv2")
    key = _web_acl_key(arn)
    wafv2.delete_web_acl(**key, LockToken=wafv2.get_web_acl(**key)["LockToken"])


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


def _create_alias(name: str, properties: dict[str, Any]) -> Created:
    # SAM's `live` alias. CloudFormation would hand an update of it to CodeDeploy (its
    # UpdatePolicy); moto has no CodeDeploy, and the stand-in moves it at once (AllAtOnce).
    assert set(properties) == {"Name", "FunctionName", "FunctionVersion"}, set(properties)
    alias = _client("lambda").create_alias(
        FunctionName=properties["FunctionName"],
        Name=properties["Name"],
        FunctionVersion=properties["FunctionVersion"],
    )
    return alias["AliasArn"], {"AliasArn": alias["AliasArn"]}


def _update_alias(arn: str, name: str, properties: dict[str, Any]) -> Created:
    function_name, alias_name = arn.rsplit(":", 2)[-2:]
    assert (function_name, alias_name) == (properties["FunctionName"], properties["Name"])
    alias = _client("lambda").update_alias(
        FunctionName=function_name, Name=alias_name, FunctionVersion=properties["FunctionVersion"]
    )
    return alias["AliasArn"], {"AliasArn": alias["AliasArn"]}


def _delete_alias(arn: str) -> None:
    function_name, alias_name = arn.rsplit(":", 2)[-2:]
    try:
        _client("lambda").delete_alias(FunctionName=function_name, Name=alias_name)
    except ClientError as error:
        # moto may delete the function first (CloudFormation would not): its aliases went too.
        if error.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
        assert not _exists("AWS::Lambda::Function", function_name), arn


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
    "AWS::ApiGateway::Stage": _Shim(_create_stage, _update_stage, _delete_stage, frozenset()),
    "AWS::ApiGateway::DomainName": _Shim(
        _create_domain_name,
        _update_domain_name,
        _delete_domain_name,
        frozenset({"RegionalDomainName", "RegionalHostedZoneId"}),
    ),
    "AWS::ApiGateway::Account": _Shim(
        _set_api_gateway_account,
        _update_api_gateway_account,
        _leave_api_gateway_account,
        frozenset({"Id"}),
    ),
    "AWS::WAFv2::WebACL": _Shim(
        _create_web_acl, _update_web_acl, _delete_web_acl, frozenset({"Arn", "Id"})
    ),
    "AWS::CloudWatch::Alarm": _Shim(_put_alarm, _update_alarm, _delete_alarm, frozenset({"Arn"})),
    "AWS::Lambda::Alias": _Shim(
        _create_alias, _update_alias, _delete_alias, frozenset({"AliasArn"})
    ),
}
assert set(SHIMS) == SHIMMED

_moto_create_key = Key.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]


def _create_key(
    cls: type[Key], name: str, cloudformation_json: dict[str, Any], *args: Any, **kwargs: Any
) -> Key:
    cloudformation_json = copy.deepcopy(cloudformation_json)
    properties = cloudformation_json["Properties"]
    # CloudFormation's Key/Value tags, in the KMS API's TagKey/TagValue that moto stores.
    properties["Tags"] = [
        {"TagKey": tag["Key"], "TagValue": tag["Value"]} for tag in properties.get("Tags", [])
    ]
    key: Key = _moto_create_key(cls, name, cloudformation_json, *args, **kwargs)
    if not isinstance(key.policy, str):
        key.policy = json.dumps(key.policy)
    return key


def _on_create(step: Callable[[Any, str, dict[str, Any]], Any]) -> Any:
    """moto's create_from_cloudformation_json hook (name, resource, account, region, by
    position), from `step(cls, name, properties)`."""

    def create(cls: Any, name: str, resource: dict[str, Any], *where: str, **_: Any) -> Any:
        assert where == (ACCOUNT, REGION)
        return step(cls, name, resource["Properties"])

    return classmethod(create)


def _on_update(step: Callable[[Any, Any, str, dict[str, Any]], Any]) -> Any:
    """moto's update_from_cloudformation_json hook (by keyword), from `step(cls, original,
    new name, properties)`."""

    def update(cls: Any, **moto: Any) -> Any:
        assert (moto["account_id"], moto["region_name"]) == (ACCOUNT, REGION)
        properties = moto["cloudformation_json"]["Properties"]
        return step(cls, moto["original_resource"], moto["new_resource_name"], properties)

    return classmethod(update)


def _publish_version(
    cls: type[LambdaVersion], resource_name: str, properties: dict[str, Any]
) -> LambdaVersion:
    published = lambda_backends[ACCOUNT][REGION].publish_version(
        properties["FunctionName"], properties.get("Description", "")
    )
    assert published is not None, properties["FunctionName"]
    version = cls({"Version": published.version})
    version.arn = published.function_arn  # type: ignore[attr-defined]
    return version


def _replace_version(
    cls: type[LambdaVersion], original: LambdaVersion, name: str, properties: dict[str, Any]
) -> LambdaVersion:
    # Every property of a version is create-only: CloudFormation publishes a new one (the old
    # one stays, SAM retains versions).
    return _publish_version(cls, name, properties)


def _put_rest_api_body(api_id: str, properties: dict[str, Any]) -> None:
    handled = {"Body", "Description", "EndpointConfiguration", "FailOnWarnings", "Parameters"}
    # SecurityPolicy (TLS_1_2 on the execute-api endpoint) is not in moto's model: unchecked
    assert set(properties) - {"SecurityPolicy"} <= handled, set(properties)
    # Without moto's FailOnWarnings check: that validates the body against the OpenAPI 3.0 JSON
    # schema, which refuses the `responses: {}` SAM writes for every operation; API Gateway's
    # importer warns about neither.
    apigateway_backends[ACCOUNT][REGION].put_rest_api(
        api_id, properties["Body"], fail_on_warnings=False, mode="overwrite"
    )


def _import_rest_api(cls: type[RestAPI], resource_name: str, properties: dict[str, Any]) -> RestAPI:
    # CloudFormation imports SAM's OpenAPI body (its info.title names the API) into a new REST
    # API; its endpoint configuration is an OpenAPI extension of the body's server.
    body = properties["Body"]
    (server,) = body["servers"]
    endpoint = server["x-amazon-apigateway-endpoint-configuration"]
    api = apigateway_backends[ACCOUNT][REGION].create_rest_api(
        name=body["info"]["title"],
        description=properties.get("Description", ""),
        endpoint_configuration={"types": properties["EndpointConfiguration"]["Types"]},
        disable_execute_api_endpoint=endpoint["disableExecuteApiEndpoint"],
    )
    _put_rest_api_body(api.id, properties)
    return api


def _reimport_rest_api(
    cls: type[RestAPI], original: RestAPI, name: str, properties: dict[str, Any]
) -> RestAPI:
    _put_rest_api_body(original.id, properties)
    return original


def _delete_rest_api(
    cls: type[RestAPI], resource_name: str, cloudformation_json: Any, account_id: str, region: str
) -> None:
    apigateway_backends[account_id][region].delete_rest_api(resource_name)


def _version_attribute(self: LambdaVersion, attribute: str) -> str:
    if attribute != "Version":
        raise AssertionError(f"the AWS::Lambda::Version workaround has no {attribute}")
    return str(self.version)


_SUB_NAME = re.compile(r"\$\{([A-Za-z0-9:]+)\}")


def _references(template: Any) -> list[str]:
    """What moto's get_references_from_template finds (every Ref's name), and the names a
    Fn::Sub quotes (`${LogLevel}`): CloudFormation reads a parameter there as a reference too."""
    found: list[str] = []
    if isinstance(template, dict):
        for key, value in template.items():
            if key == "Ref":
                found.append(value)
                continue
            if key == "Fn::Sub":
                text = value[0] if isinstance(value, list) else value
                found += _SUB_NAME.findall(text) if isinstance(text, str) else []
            found += _references(value)
    elif isinstance(template, list):
        for item in template:
            found += _references(item)
    return found


_moto_resource_diff = moto_cfn_parsing.ResourceMap.build_resource_diff


def _resource_diff(
    self: moto_cfn_parsing.ResourceMap, template: Template, parameters: Any = None
) -> dict[str, Any]:
    diff: dict[str, Any] = _moto_resource_diff(self, template, parameters)
    new = template["Resources"]
    replaced = {name for name in diff["Modify"] if new[name]["Type"] == "AWS::Lambda::Version"}
    diff["Modify"] += [
        name
        for name, resource in new.items()
        if name in self._resource_json_map
        and name not in diff["Modify"]
        and replaced & referenced_ids(resource.get("Properties", {}))
    ]
    diff["Modify"] = _in_dependency_order(diff["Modify"], new)
    return diff


def _in_dependency_order(names: list[str], resources: dict[str, Any]) -> list[str]:
    """`names`, each after the others of them it refers to (Ref, GetAtt, a Sub's ${}), as
    CloudFormation updates them; moto's order otherwise."""

    def refers_to(name: str) -> set[str]:
        properties = resources[name].get("Properties", {})
        return referenced_ids(properties) & set(names) - {name}

    ordered: list[str] = []
    pending = list(names)
    while pending:
        ready = [name for name in pending if refers_to(name) <= set(ordered)]
        if not ready:  # a cycle, which CloudFormation would refuse: keep moto's order
            return ordered + pending
        ordered += ready
        pending = [name for name in pending if name not in ready]
    return ordered


def _moto_workarounds(patch: pytest.MonkeyPatch) -> None:
    """The stand-ins, and moto 5.2.5's bugs on this template's path fixed, until `patch` is
    undone."""
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
    # Bug: an update modifies the resources that Ref a changed parameter, but not those that
    # quote it in a Fn::Sub: the API functions' versions (VersionDescription) would keep the
    # old configuration, where CloudFormation replaces them.
    patch.setattr(moto_cfn_parsing, "get_references_from_template", _references)
    # Gap: a resource replaced in an update (a version, every property of which is create-only)
    # gets a new physical id, but moto leaves what refers to it alone: `live` would stay on the
    # old version, the rollback alarms would watch it. CloudFormation updates them. Gap: moto
    # updates in the order of its list, not of the references: a version replaced before its
    # function's new configuration publishes nothing (moto's Lambda sees no change since the
    # last version) and keeps the old one. CloudFormation updates what a resource refers to
    # first.
    patch.setattr(moto_cfn_parsing.ResourceMap, "build_resource_diff", _resource_diff)
    # Bug: AWS::Lambda::LayerVersion has no physical_resource_id, so a Ref to it yields moto's
    # model object, not the layer version ARN. Creation ignores a function's Layers; an update
    # passes them on and fails: "'LayerVersion' object has no attribute 'replace'".
    patch.setattr(
        LayerVersion, "physical_resource_id", property(lambda self: self.arn), raising=False
    )
    # Bug: AWS::KMS::Key keeps the KeyPolicy as the template's mapping where the KMS API keeps a
    # JSON string, so DescribeKey and GetKeyPolicy on such a key fail: "the JSON object must be
    # str, bytes or bytearray, not dict". Bug: it hands CloudFormation's tags (Key, Value) to
    # the KMS tagger, which reads TagKey and TagValue: a tagged key fails with KeyError 'TagKey'.
    patch.setattr(Key, "create_from_cloudformation_json", classmethod(_create_key))
    # Bug: AWS::Lambda::Version publishes a version, but has no physical id (a Ref to it is
    # moto's model object, not the version's ARN), no Fn::GetAtt (the rollback alarms' Version
    # fails: "'LambdaVersion' object has no attribute 'get_cfn_attribute'"), ignores the
    # Description, and cannot be updated: a changed Description (a parameter that
    # VersionDescription quotes) leaves None in moto's resource map. CloudFormation replaces
    # the version, which publishes a new one.
    patch.setattr(LambdaVersion, "create_from_cloudformation_json", _on_create(_publish_version))
    patch.setattr(LambdaVersion, "update_from_cloudformation_json", _on_update(_replace_version))
    patch.setattr(
        LambdaVersion, "physical_resource_id", property(lambda self: self.arn), raising=False
    )
    patch.setattr(LambdaVersion, "get_cfn_attribute", _version_attribute, raising=False)
    # Bug: AWS::ApiGateway::RestApi reads a Name (SAM's API has none: CloudFormation names it
    # after the OpenAPI body's title) and ignores the Body, so it creates an API without a route;
    # it can be neither updated nor deleted. The patch imports the body, as CloudFormation does
    # (PutRestApi in overwrite mode), on create and update, and deletes the API.
    patch.setattr(RestAPI, "create_from_cloudformation_json", _on_create(_import_rest_api))
    patch.setattr(RestAPI, "update_from_cloudformation_json", _on_update(_reimport_rest_api))
    patch.setattr(RestAPI, "delete_from_cloudformation_json", classmethod(_delete_rest_api))
    # Bug: AWS::ApiGateway::Deployment has no physical id: a Ref to it (the stage's DeploymentId)
    # yields moto's model object, not the deployment's id.
    patch.setattr(Deployment, "physical_resource_id", property(lambda self: self.id), raising=False)
    patch.setattr(
        LambdaVersion, "has_cfn_attr", staticmethod(lambda attribute: attribute == "Version")
    )


# ---------------------------------------------------------------- the emulated account


def _transform(template: Template, values: dict[str, str]) -> Template:
    """CloudFormation's AWS::Serverless transform, run with one deploy's parameter values."""
    return sam_transform(template, values, region=REGION)


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

    def _deploy(
        self, action: str, template: Template, values: dict[str, str], **arguments: Any
    ) -> dict[str, Any]:
        """create_stack or update_stack of `template` with these parameter values."""
        return self._call(
            action,
            TemplateBody=json.dumps(template),
            Parameters=_parameters(values),
            Capabilities=CAPABILITIES,
            **arguments,
        )

    def create(self, name: str, template: Template, values: dict[str, str], tags: Any) -> str:
        tag_list = [{"Key": k, "Value": v} for k, v in tags.items()]
        created = self._deploy("create_stack", template, values, StackName=name, Tags=tag_list)
        return str(created["StackId"])

    def update(self, stack_id: str, template: Template, values: dict[str, str]) -> None:
        self._deploy("update_stack", template, values, StackName=stack_id)

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
        if resource_type in ("AWS::Lambda::Function", "AWS::Lambda::Version"):
            return bool(_client("lambda").get_function(FunctionName=physical_id))
        if resource_type == "AWS::Lambda::Alias":
            function_name, alias_name = physical_id.rsplit(":", 2)[-2:]
            return bool(_client("lambda").get_alias(FunctionName=function_name, Name=alias_name))
        if resource_type == "AWS::IAM::Role":
            return bool(_client("iam").get_role(RoleName=physical_id))
        if resource_type == "AWS::SecretsManager::Secret":
            secret = _client("secretsmanager").describe_secret(SecretId=physical_id)
            return "DeletedDate" not in secret
        if resource_type == "AWS::ApiGateway::RestApi":
            return bool(_client("apigateway").get_rest_api(restApiId=physical_id))
        if resource_type == "AWS::ApiGateway::Stage":
            return bool(_stage_holders(physical_id))
        if resource_type == "AWS::ApiGateway::DomainName":
            return bool(_client("apigateway").get_domain_name(domainName=physical_id))
        if resource_type == "AWS::ApiGateway::Account":
            # the account setting outlives the stack: it still names the logging role
            return "cloudwatchRoleArn" in _client("apigateway").get_account()
        if resource_type == "AWS::WAFv2::WebACL":
            return bool(_client("wafv2").get_web_acl(**_web_acl_key(physical_id)))
        if resource_type == "AWS::CloudWatch::Alarm":
            alarms = _client("cloudwatch").describe_alarms(AlarmNames=[physical_id])
            return bool(alarms["MetricAlarms"])
    except ClientError as error:
        missing = {
            "NotFoundException",
            "NoSuchEntity",
            "ResourceNotFoundException",
            "WAFNonexistentItemException",
        }
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
        "AWS::Lambda::Version",
        "AWS::IAM::Role",
        "AWS::ApiGateway::RestApi",
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

        declared = {
            variable: value
            for variable, value in properties.get("Environment", {}).get("Variables", {}).items()
            # AWS::NoValue under these parameters (AWS_ENDPOINT_URL, unless LocalEndpointUrl)
            if _resolve(value, template, values, conditions) is not None
        }
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


def _version_of(template: Template, version_id: str) -> str:
    """The function a version publishes (its logical id)."""
    function: str = template["Resources"][version_id]["Properties"]["FunctionName"]["Ref"]
    return function


def _check_versions(
    template: Template, values: dict[str, str], conditions: dict[str, bool], resources: Resources
) -> None:
    """Each version is its function's configuration as deployed, described by the values its
    VersionDescription quotes, and `live` points at it."""
    aws_lambda = _client("lambda")
    versions = _of_type(template, "AWS::Lambda::Version", conditions)
    assert versions
    for logical_id, resource in versions.items():
        function = resources[_version_of(template, logical_id)][1]
        arn = resources[logical_id][1]
        assert re.fullmatch(rf"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function}:\d+", arn)
        number = arn.rsplit(":", 1)[1]
        published = aws_lambda.get_function_configuration(FunctionName=function, Qualifier=number)
        latest = aws_lambda.get_function_configuration(FunctionName=function)
        description = _SUB_NAME.sub(
            lambda name: _parameter(template, values, name[1]),
            resource["Properties"]["Description"]["Fn::Sub"],
        )
        assert published["Description"] == description, logical_id
        assert published["Environment"] == latest["Environment"], logical_id
        alias = aws_lambda.get_alias(FunctionName=function, Name="live")
        assert alias["FunctionVersion"] == number, logical_id
    # and the rollback alarms watch the version `live` is on
    watching = {
        dimension["Value"]["Fn::GetAtt"][0]: alarm_id
        for alarm_id, alarm in _of_type(template, "AWS::CloudWatch::Alarm", conditions).items()
        for dimension in alarm["Properties"].get("Dimensions", [])
        if dimension["Name"] == "ExecutedVersion"
    }
    assert set(watching) == set(versions)
    for version_id, alarm_id in watching.items():
        (alarm,) = _client("cloudwatch").describe_alarms(AlarmNames=[resources[alarm_id][1]])[
            "MetricAlarms"
        ]
        (executed,) = [d["Value"] for d in alarm["Dimensions"] if d["Name"] == "ExecutedVersion"]
        assert executed == resources[version_id][1].rsplit(":", 1)[1], alarm_id


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


def _one(resources: Resources, resource_type: str) -> str | None:
    """The physical id of the stack's one resource of that type, if it has one."""
    found = [physical_id for kind, physical_id in resources.values() if kind == resource_type]
    assert len(found) <= 1, (resource_type, found)
    return found[0] if found else None


def _check_outputs(
    template: Template, conditions: dict[str, bool], stack: dict[str, Any], resources: Resources
) -> None:
    """Every Output the conditions allow is there, and names something the stack created: the
    API's URLs its custom domain, or else the execute-api endpoint of its stage."""
    expected = {
        key for key, output in template.get("Outputs", {}).items() if _applies(output, conditions)
    }
    outputs = {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}
    assert set(outputs) == expected
    physical_ids = {physical_id for _, physical_id in resources.values() if physical_id}
    api_id, stage = (
        _one(resources, "AWS::ApiGateway::RestApi"),
        _one(resources, "AWS::ApiGateway::Stage"),
    )
    domain = _one(resources, "AWS::ApiGateway::DomainName")
    assert api_id
    assert stage
    apigateway = _client("apigateway")
    # With DomainName the API answers there only, at its root; else at execute-api, under v1.
    base = (
        f"https://{domain}"
        if domain
        else (f"https://{api_id}.execute-api.{REGION}.amazonaws.com/{stage}")
    )
    assert outputs["ApiUrl"] == base
    assert outputs["JwksUrl"] == f"{base}/.well-known/jwks.json"
    assert outputs.get("CheckoutPageUrl", f"{base}/") == f"{base}/"
    assert outputs["ApiId"] == api_id
    assert apigateway.get_rest_api(restApiId=api_id)["disableExecuteApiEndpoint"] is bool(domain)
    if domain:
        # where the domain's DNS record must point: the regional domain API Gateway gave it
        record = apigateway.get_domain_name(domainName=domain)
        assert outputs["ApiRegionalDomainName"] == record["regionalDomainName"]
        assert outputs["ApiRegionalHostedZoneId"] == record["regionalHostedZoneId"]
    api_outputs = {"ApiUrl", "JwksUrl", "CheckoutPageUrl", "ApiRegionalDomainName"}
    for key, value in outputs.items():
        assert value, key
        assert "${" not in value, (key, value)  # moto leaves the Sub of a missing resource as is
        assert "None" not in value, (key, value)
        if key in api_outputs | {"ApiRegionalHostedZoneId"}:
            continue  # checked above
        if key.endswith("Arn"):
            assert re.fullmatch(ARN, value), (key, value)
            assert value in physical_ids or value.rsplit("/", 1)[-1] in physical_ids, key
        elif key.endswith("Url"):
            # the stack's dashboard in the console
            url = re.fullmatch(
                rf"https://{REGION}\.console\.aws\.amazon\.com/cloudwatch/home\?region={REGION}"
                r"#dashboards/dashboard/(\S+)",
                value,
            )
            assert url, (key, value)
            assert url[1] in physical_ids, key
        else:
            assert value in physical_ids, (key, value)


def _check_api(
    template: Template, values: dict[str, str], conditions: dict[str, bool], resources: Resources
) -> None:
    """The REST API has the body's routes (the checkout page's only with the page), its stage
    serves the stack's deployment with the access log and throttling the template gives it, the
    web ACL has the template's rules (Bot Control only when it is on), and the region's API
    Gateway account setting names the stack's logging role when the stack sets it."""
    apigateway = _client("apigateway")
    api_id = _one(resources, "AWS::ApiGateway::RestApi")
    stage_name = _one(resources, "AWS::ApiGateway::Stage")
    assert api_id
    assert stage_name
    (stage_id,) = _of_type(template, "AWS::ApiGateway::Stage", conditions)
    stage_json = template["Resources"][stage_id]["Properties"]

    routes = set()
    for path, operations in template["Resources"]["CardTokensApi"]["Properties"]["Body"][
        "paths"
    ].items():
        for method, operation in (_resolve(operations, template, values, conditions) or {}).items():
            if _resolve(operation, template, values, conditions) is not None:
                routes.add((method.upper(), path))
    imported = {
        (method, resource["path"])
        for resource in apigateway.get_resources(restApiId=api_id)["items"]
        for method in resource.get("resourceMethods", {})
    }
    assert imported == routes
    assert (("GET", "/") in routes) is conditions["ServesCheckoutPage"]

    stage = apigateway.get_stage(restApiId=api_id, stageName=stage_name)
    assert stage["deploymentId"] == resources[stage_json["DeploymentId"]["Ref"]][1]
    access_log = stage["accessLogSettings"]
    log_group = resources[stage_json["AccessLogSetting"]["DestinationArn"]["Fn::GetAtt"][0]][1]
    assert access_log["destinationArn"] == f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{log_group}"
    assert access_log["format"] == stage_json["AccessLogSetting"]["Format"]
    (throttling,) = stage["methodSettings"].values()
    assert throttling["throttlingBurstLimit"] == int(
        _parameter(template, values, "ApiThrottlingBurstLimit")
    )
    assert throttling["throttlingRateLimit"] == float(
        _parameter(template, values, "ApiThrottlingRateLimit")
    )

    web_acl = _one(resources, "AWS::WAFv2::WebACL")
    assert web_acl
    rules = [
        rule["Name"]
        for rule in _client("wafv2").get_web_acl(**_web_acl_key(web_acl))["WebACL"]["Rules"]
    ]
    declared = [
        resolved["Name"]
        for rule in template["Resources"]["ApiWebAcl"]["Properties"]["Rules"]
        if (resolved := _resolve(rule, template, values, conditions)) is not None
    ]
    assert rules == declared
    assert ("AWS-AWSManagedRulesBotControlRuleSet" in rules) is conditions["UsesBotControl"]

    if conditions["SetsApiGatewayLogsRole"]:
        role = resources["ApiGatewayCloudWatchRole"][1]
        assert apigateway.get_account()["cloudwatchRoleArn"] == (
            f"arn:aws:iam::{ACCOUNT}:role/{role}"
        )


def _check_roles(template: Template, values: dict[str, str], resources: Resources) -> None:
    """Every role the stack created, SAM's included, carries PermissionsBoundaryArn (an existing
    policy), or no boundary when it is empty."""
    iam = _client("iam")
    boundary = _parameter(template, values, "PermissionsBoundaryArn")
    roles = [physical_id for kind, physical_id in resources.values() if kind == "AWS::IAM::Role"]
    assert roles
    for role_name in roles:
        role = iam.get_role(RoleName=role_name)["Role"]
        carried = role.get("PermissionsBoundary", {}).get("PermissionsBoundaryArn", "")
        assert carried == boundary, role_name
    if boundary:
        iam.get_policy(PolicyArn=boundary)


def _physical_id(value: Any, resources: Resources) -> Any:
    """A Ref to a resource of the stack (the stack's own alarm topic) as what it created."""
    if isinstance(value, dict) and set(value) == {"Ref"} and value["Ref"] in resources:
        return resources[value["Ref"]][1]
    return value


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
            expected = [
                _physical_id(_resolve(action, template, values, conditions), resources)
                for action in declared
            ]
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
    transformed = _transform(
        source, prod_like(_boundary_arn("card-tokens-rehearsal"), _certificate_arn())
    )
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
    # every option on (the stack's alarm topic with an e-mail subscription, the permissions
    # boundary the pipeline's stack creates, the checkout page, CORS, concurrency, RS256, a
    # canary, SnapStart)
    source = _source_template()
    stack_name = f"card-tokens-rehearsal-{environment}"
    if environment == "defaults":
        values: dict[str, str] = {}
        tags: dict[str, str] = {}
    else:
        values = prod_like(_create_boundary(stack_name), _request_certificate())
        tags = _pairs(_samconfig_prod()["tags"])
    assert constraint_violations(source, values) == []
    conditions = condition_values(source, values)
    if environment == "prod-like":
        off = {name for name, holds in conditions.items() if not holds}
        assert off == NEVER_ON_AWS, f"turn {off - NEVER_ON_AWS} on in prod_like()"

    # When the transformed template creates the stack
    template = _transform(rehearsal.packaged, values)
    stack_id = rehearsal.create(stack_name, template, values, tags)

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
    _check_versions(template, values, conditions, resources)
    _check_logs_and_tables(template, values, conditions, resources)
    _check_key_policies(template, conditions, resources)
    # the API has its routes, its stage, its web ACL and its logging role
    _check_api(template, values, conditions, resources)
    # every role carries the boundary when there is one, and every alarm notifies the topic
    _check_roles(template, values, resources)
    assert _check_alarms(template, values, conditions, resources) > 0

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

    # Then the update is complete, and replaced the versions whose description quotes a changed
    # parameter (CloudFormation publishes each anew, with the new configuration) and nothing else
    stack = rehearsal.stack(stack_id)
    assert stack["StackStatus"] == "UPDATE_COMPLETE"
    parameters = {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}
    assert {name: parameters[name] for name in updated} == updated
    changed = {name for name in updated if updated[name] != values.get(name)}
    republished = {
        logical_id
        for logical_id, resource in _of_type(template, "AWS::Lambda::Version", conditions).items()
        if changed & set(_references(resource["Properties"]["Description"]))
    }
    after = rehearsal.resources(stack_id)
    assert set(after) == set(resources)
    assert {logical_id for logical_id in after if after[logical_id] != resources[logical_id]} == (
        republished
    )
    assert republished == set(_of_type(template, "AWS::Lambda::Version", conditions))
    resources = after
    _check_functions(template, updated, conditions, resources)
    _check_versions(template, updated, conditions, resources)
    issuer = _client("lambda").get_function_configuration(
        FunctionName=resources["IssueTokenFunction"][1]
    )["Environment"]["Variables"]
    assert str(issuer["TOKEN_LIFETIME_SECONDS"]) == updated["TokenLifetimeSeconds"]
    assert issuer["POWERTOOLS_LOG_LEVEL"] == updated["LogLevel"]
    _check_outputs(template, conditions, stack, resources)
    _check_api(template, updated, conditions, resources)

    # When the stack is deleted
    rehearsal.delete(stack_id)

    # Then it is gone but for what the template retains, which is still there. SAM retains
    # versions, for the next update to roll back to; deleting their function deletes them.
    assert rehearsal.stack(stack_id)["StackStatus"] == "DELETE_COMPLETE"
    retained = {
        logical_id
        for logical_id in declared
        if template["Resources"][logical_id].get("DeletionPolicy") == "Retain"
        and (
            declared[logical_id] != "AWS::Lambda::Version"
            or template["Resources"][_version_of(template, logical_id)].get("DeletionPolicy")
            == "Retain"
        )
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
