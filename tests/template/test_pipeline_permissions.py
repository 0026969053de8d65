"""deploy/github-oidc-role.yaml grants what a deploy needs, derived here rather than listed.

- The execution role (CloudFormation's, `sam deploy --role-arn`): the create, read, update and
  delete handler permissions of the CloudFormation registry schemas that cfn-lint ships, for every
  resource type of template.yaml after the SAM transform (with the defaults, and with every
  optional part switched on). The registry's lists are upper bounds: a permission tied to a
  property the template never sets is left out (LEFT_OUT: its reason, and a check that the
  property is indeed never set); what the registry does not list but a service documents is added
  (ADDED: its source, and a check that the template does use the feature).
- The deploy role (the GitHub job's): the AWS calls of SAM CLI's `sam deploy` path, read from the
  installed samcli and s3transfer sources (sam_cli_calls.md, with file:line). A call that is not
  in the table, or that moved, fails a test, so the table cannot rot when SAM CLI is upgraded.
- The permissions boundary every role of the stack carries: exactly the actions those roles are
  granted at run time, on the stack's own resources.

Both roles must grant exactly the derived actions, each scoped to the stack's resources (an ARN
with the stack's name or prefix, a tag of the stack, the artifacts bucket's prefix) or, where AWS
offers no such scope, listed in NOT_STACK_SCOPED with the reason.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import boto3
import cfnlint
import pytest
import s3transfer
import samcli
import yaml

from local.cfn import TEMPLATE_PATH, load_template, resources_of_type
from local.intrinsics import Resolver
from tests.template.policies import as_list, resource_targets
from tests.template.sam import packaged, sam_transform

Template = dict[str, Any]

REPO_ROOT = TEMPLATE_PATH.parent
DEPLOY_TEMPLATE = REPO_ROOT / "deploy" / "github-oidc-role.yaml"
SAMCONFIG = REPO_ROOT / "samconfig.toml"
DEPLOY_WORKFLOW = REPO_ROOT / ".github" / "workflows" / "deploy.yml"
DEPLOY_DOC = REPO_ROOT / "docs" / "deploy.md"
SCHEMAS = Path(cfnlint.__file__).parent / "data" / "schemas"
IAM_ACTIONS = Path(cfnlint.__file__).parent / "data" / "AdditionalSpecs" / "Policies.json"
SAMCLI = Path(samcli.__file__).parent
S3TRANSFER = Path(s3transfer.__file__).parent

APP_STACK = "${AppStackName}"
BOUNDARY_IF = {
    "Fn::If": ["HasPermissionsBoundary", {"Ref": "PermissionsBoundaryArn"}, {"Ref": "AWS::NoValue"}]
}
STACK_TAG = "card-tokens:stack"
MANAGED_STACK = "aws-sam-cli-managed-default"  # samcli/lib/bootstrap/bootstrap.py
ARTIFACTS = (
    "arn:${AWS::Partition}:s3:::aws-sam-cli-managed-default-samclisourcebucket-*/${AppStackName}/*"
)

# template.yaml with every optional part on: the checkout page, the stack's own alarm topic with
# its e-mail subscription (AlarmTopicArn empty), CORS, reserved concurrency, the boundary, a
# canary, SnapStart, the custom domain with its certificate, AWS WAF Bot Control, API
# Gateway's logging role and a real processor (its secrets and their key).
# test_every_condition_is_on_in_the_full_transform keeps it complete: that includes
# LocalEndpointUrl, which no deploy sets but which only adds a variable.
EVERYTHING_ON = {
    "CheckoutPage": "enabled",
    "AlarmEmail": "card-tokens-oncall@payments.company.com",
    "CorsOrigins": "https://shop.example",
    "IssueTokenReservedConcurrency": "5",
    "ProcessPaymentReservedConcurrency": "5",
    "PermissionsBoundaryArn": (
        "arn:aws:iam::111122223333:policy/card-tokens-staging-permissions-boundary"
    ),
    "DeploymentStrategy": "Canary10Percent10Minutes",
    "SnapStart": "PublishedVersions",
    "LocalEndpointUrl": "http://127.0.0.1:3001",
    "DomainName": "api.payments.company.com",
    "CertificateArn": (
        "arn:aws:acm:us-east-1:210987654321:certificate/0a1b2c3d-1111-2222-3333-444455556666"
    ),
    "WafBotControl": "enabled",
    "ApiGatewayLogsRole": "create",
    "Processor": "forward",
    "ForwardAllowedHosts": "api.processor.payments.company.com",
}
PARAMETER_SETS = {"defaults": {}, "everything-on": EVERYTHING_ON}


# ------------------------------------------------------------------ reading templates


@cache
def _transformed(parameter_set: str) -> Template:
    """template.yaml as CloudFormation gets it: packaged by SAM CLI, then the SAM transform."""
    # What `sam deploy` writes after the upload (s3_uploader.make_url): no object version.
    s3_url = "s3://aws-sam-cli-managed-default-samclisourcebucket-1a2b3c/card-tokens-staging/"
    sam = packaged(code=s3_url + "0123456789abcdef", layer=s3_url + "fedcba9876543210")
    return sam_transform(sam, PARAMETER_SETS[parameter_set], region="us-east-1")


def transformed() -> Iterator[Template]:
    for parameter_set in PARAMETER_SETS:
        yield _transformed(parameter_set)


def resource_types() -> set[str]:
    return {r["Type"] for t in transformed() for r in t["Resources"].values()}


def resources(resource_type: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for template in transformed():
        yield from resources_of_type(template, resource_type).items()


def _values_at(value: Any, path: list[str]) -> Iterator[Any]:
    """Values at a dotted path; "[]" steps into every item of a list, "{}" into every value of a
    mapping (the paths and operations of an OpenAPI body)."""
    if not path:
        yield value
        return
    step, rest = path[0], path[1:]
    if step == "[]":
        for item in value if isinstance(value, list) else []:
            yield from _values_at(item, rest)
    elif step == "{}":
        for item in value.values() if isinstance(value, dict) else []:
            yield from _values_at(item, rest)
    elif isinstance(value, dict) and step in value:
        yield from _values_at(value[step], rest)


def set_anywhere(resource_type: str, path: str) -> list[str]:
    return [
        logical_id
        for logical_id, resource in resources(resource_type)
        if list(_values_at(resource.get("Properties", {}), path.split(".")))
    ]


@cache
def deploy_template() -> Template:
    return load_template(DEPLOY_TEMPLATE)


def statements(role_id: str, roles: Template | None = None) -> list[dict[str, Any]]:
    """The role's policy statements, in deploy/github-oidc-role.yaml or the `roles` given."""
    role = (roles or deploy_template())["Resources"][role_id]
    return [
        statement
        for policy in role["Properties"]["Policies"]
        for statement in policy["PolicyDocument"]["Statement"]
    ]


def allowed(policy_statements: list[dict[str, Any]]) -> set[str]:
    return {
        a.lower() for s in policy_statements if s["Effect"] == "Allow" for a in as_list(s["Action"])
    }


def _resource_text(resource: Any) -> str:
    if isinstance(resource, dict) and "Fn::Sub" in resource:
        return str(resource["Fn::Sub"])
    if isinstance(resource, dict) and "Fn::GetAtt" in resource:
        return "GetAtt:" + ".".join(resource["Fn::GetAtt"])
    if isinstance(resource, dict) and "Ref" in resource:
        return "Ref:" + resource["Ref"]
    return str(resource)


# ------------------------------------------------------------------ the registry's handlers

# create, update and delete are what a stack operation calls (a rollback calls them too). read:
# create and update handlers end by calling it to return the model (the KMS key's CreateHandler in
# aws-cloudformation/aws-cloudformation-resource-providers-kms ends with
# `new ReadHandler().handleRequest(...)`, and GetKeyPolicy is only in its read list). list serves
# Cloud Control's ListResources and resource import, never a stack operation.
HANDLERS = ("create", "read", "update", "delete")


def deploy_region() -> str:
    with SAMCONFIG.open("rb") as handle:
        config = tomllib.load(handle)
    (region,) = {config[env]["global"]["parameters"]["region"] for env in ("staging", "prod")}
    return str(region)


@cache
def handler_permissions(resource_type: str) -> dict[str, set[str]]:
    """Handler → permissions, from the registry schema of the deploy region."""
    providers = json.loads((SCHEMAS / "providers" / f"{deploy_region()}.json").read_text())
    schema = json.loads((SCHEMAS / "resources" / f"{providers[resource_type]}.json").read_text())
    handlers = schema.get("handlers", {})
    return {h: set(handlers.get(h, {}).get("permissions", [])) for h in HANDLERS}


@cache
def iam_actions() -> set[str]:
    """Every IAM action cfn-lint knows (lower case): the service authorization reference."""
    services = json.loads(IAM_ACTIONS.read_text())
    return {
        f"{service}:{action}".lower()
        for service, spec in services.items()
        for action in spec.get("Actions", [])
    }


# Registry permissions that are not IAM actions: a policy cannot name them (cfn-lint W3037 rejects
# them). Written out so that the day cfn-lint learns one, this test asks for a decision.
NOT_IAM_ACTIONS = {
    # AWS::WAFv2::LoggingConfiguration's handlers list it; IAM has no such action (its
    # organization reads are organizations:DescribeOrganization).
    "iam:describeorganization",
    # AWS::WAFv2::WebACL's handlers list it; no service "payments" is in the authorization
    # reference.
    "payments:getconnectedaccount",
    "lambda:associateruntimealias",
    "s3:rest.put.object",  # an S3 REST operation's name, not an action
    "s3:getobjectmetadata",  # HeadObject is s3:GetObject
}


# ------------------------------------------------------------------ left out, added

Check = Callable[[], list[str]]


def never_set(resource_type: str, *paths: str) -> Check:
    def check() -> list[str]:
        return [
            f"{resource_type} {p} is set: {set_anywhere(resource_type, p)}"
            for p in paths
            if set_anywhere(resource_type, p)
        ]

    check.__doc__ = f"{resource_type} never sets {', '.join(paths)}"
    return check


def always(resource_type: str, path: str, value: Any) -> Check:
    def check() -> list[str]:
        return [
            f"{logical_id}: {path} is not {value!r}"
            for logical_id, resource in resources(resource_type)
            if list(_values_at(resource.get("Properties", {}), path.split("."))) != [value]
        ]

    check.__doc__ = f"every {resource_type} has {path} = {value!r}"
    return check


def always_set(resource_type: str, path: str) -> Check:
    def check() -> list[str]:
        return [
            f"{logical_id}: {path} is not set"
            for logical_id, resource in resources(resource_type)
            if not list(_values_at(resource.get("Properties", {}), path.split(".")))
        ]

    check.__doc__ = f"every {resource_type} sets {path}"
    return check


def by_policy() -> list[str]:
    """Nothing to check in the template: the reason is a rule of this repository."""
    return []


@dataclass(frozen=True)
class Adjustment:
    resource_type: str
    actions: tuple[str, ...]
    reason: str
    holds: Check


def _web_acl_associations_are_rest_api_stages() -> list[str]:
    return [
        f"{logical_id}: {resource['Properties']['ResourceArn']}"
        for logical_id, resource in resources("AWS::WAFv2::WebACLAssociation")
        if not _resource_text(resource["Properties"]["ResourceArn"]).startswith(
            "arn:${AWS::Partition}:apigateway:${AWS::Region}::/restapis/"
        )
    ]


_web_acl_associations_are_rest_api_stages.__doc__ = "every web ACL association is a REST API stage"


def _the_stacks_web_acl_uses_no_rule_group_of_an_account() -> list[str]:
    web_acls = {logical_id for logical_id, _ in resources("AWS::WAFv2::WebACL")}
    return [
        f"{logical_id}: {resource['Properties']['WebACLArn']}"
        for logical_id, resource in resources("AWS::WAFv2::WebACLAssociation")
        if resource["Properties"]["WebACLArn"] not in [{"Fn::GetAtt": [w, "Arn"]} for w in web_acls]
    ] + [
        f"{logical_id} references a rule group"
        for logical_id, resource in resources("AWS::WAFv2::WebACL")
        if "RuleGroupReferenceStatement" in json.dumps(resource["Properties"])
    ]


_the_stacks_web_acl_uses_no_rule_group_of_an_account.__doc__ = (
    "every association names the stack's own web ACL, which references no rule group"
)


def _waf_logs_to_cloudwatch_logs_only() -> list[str]:
    return [
        f"{logical_id}: {destination}"
        for logical_id, resource in resources("AWS::WAFv2::LoggingConfiguration")
        for destination in resource["Properties"]["LogDestinationConfigs"]
        if not _resource_text(destination).startswith(
            "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:"
        )
    ]


_waf_logs_to_cloudwatch_logs_only.__doc__ = "AWS WAF logs to CloudWatch Logs log groups only"


LEFT_OUT = [
    Adjustment(
        "AWS::ApiGateway::RestApi",
        ("s3:GetObject",),
        "An OpenAPI body read from S3 (BodyS3Location); SAM inlines the body.",
        never_set("AWS::ApiGateway::RestApi", "BodyS3Location"),
    ),
    Adjustment(
        "AWS::ApiGateway::RestApi",
        ("apigateway:UpdateRestApiPolicy",),
        "A resource policy on the REST API (Policy, or x-amazon-apigateway-policy in the body). "
        "The /payments routes are authorized by the callers' IAM policies (AWS_IAM), the others "
        "are open.",
        never_set("AWS::ApiGateway::RestApi", "Policy", "Body.x-amazon-apigateway-policy"),
    ),
    Adjustment(
        "AWS::ApiGateway::RestApi",
        ("iam:PassRole",),
        "A role API Gateway assumes to call an integration (credentials in the body: SAM writes "
        "them for an InvokeRole other than NONE). API Gateway invokes the functions through "
        "their resource policies. (iam:PassRole stays, to API Gateway's account setting, for "
        "its logging role.)",
        never_set(
            "AWS::ApiGateway::RestApi",
            "Body.paths.{}.{}.x-amazon-apigateway-integration.credentials",
        ),
    ),
    Adjustment(
        "AWS::WAFv2::WebACLAssociation",
        (
            *("amplify:AssociateWebACL", "amplify:DisassociateWebACL"),
            "amplify:GetWebACLForResource",
            *("apprunner:AssociateWebAcl", "apprunner:DescribeWebAclForService"),
            "apprunner:DisassociateWebAcl",
            *("appsync:AssociateWebACL", "appsync:DisassociateWebACL"),
            *("appsync:GetWebACLForResource", "appsync:SetWebACL"),
            "bedrock-agentcore:GatewayAssociateWebACL",
            "bedrock-agentcore:GatewayDisassociateWebACL",
            "bedrock-agentcore:GatewayGetWebACLForResource",
            *("cognito-idp:AssociateWebACL", "cognito-idp:DisassociateWebACL"),
            "cognito-idp:GetWebACLForResource",
            "ec2:AssociateVerifiedAccessInstanceWebAcl",
            "ec2:DescribeVerifiedAccessInstanceWebAclAssociations",
            "ec2:DisassociateVerifiedAccessInstanceWebAcl",
            "ec2:GetVerifiedAccessInstanceWebAcl",
            "elasticloadbalancing:CreateWebACLAssociation",
            "elasticloadbalancing:DeleteWebACLAssociation",
            "elasticloadbalancing:GetLoadBalancerWebACL",
            "elasticloadbalancing:SetWebACL",
        ),
        "A web ACL on an Amplify app, App Runner service, AppSync API, AgentCore gateway, "
        "Cognito user pool, Verified Access instance or load balancer (the handler serves every "
        "kind of ResourceArn). The one association is the REST API stage's "
        "(apigateway:SetWebACL).",
        _web_acl_associations_are_rest_api_stages,
    ),
    Adjustment(
        "AWS::WAFv2::WebACLAssociation",
        ("wafv2:GetPermissionPolicy", "wafv2:PutPermissionPolicy"),
        "The policy that shares a rule group with other accounts (its only resource type is "
        "rulegroup). The association names the stack's own web ACL, which uses AWS managed "
        "rule groups and rules of its own, no rule group of an account.",
        _the_stacks_web_acl_uses_no_rule_group_of_an_account,
    ),
    Adjustment(
        "AWS::WAFv2::LoggingConfiguration",
        (
            "firehose:ListDeliveryStreams",
            "iam:CreateServiceLinkedRole",
            "s3:GetBucketPolicy",
            "s3:PutBucketPolicy",
        ),
        "Logs delivered to a Firehose stream (through AWS WAF's service-linked role, "
        "AWSServiceRoleForWAFV2Logging) or to an S3 bucket (whose policy AWS WAF extends). The "
        "destination is a CloudWatch Logs log group, which a log resource policy opens to log "
        "delivery (logs:PutResourcePolicy, granted).",
        _waf_logs_to_cloudwatch_logs_only,
    ),
    Adjustment(
        "AWS::DynamoDB::Table",
        (
            *("dynamodb:BatchWriteItem", "dynamodb:DeleteItem", "dynamodb:GetItem"),
            *("dynamodb:PutItem", "dynamodb:Query", "dynamodb:Scan", "dynamodb:UpdateItem"),
            *("dynamodb:ImportTable", "dynamodb:DescribeImport"),
            *("s3:GetObject", "s3:ListBucket"),
            *("logs:CreateLogGroup", "logs:CreateLogStream", "logs:DescribeLogGroups"),
            *("logs:DescribeLogStreams", "logs:PutLogEvents", "logs:PutRetentionPolicy"),
        ),
        "A table imported from S3 (its items written, the import logged to CloudWatch Logs). No "
        "table is imported, and a pipeline role never reads or writes items (card data).",
        never_set("AWS::DynamoDB::Table", "ImportSourceSpecification"),
    ),
    Adjustment(
        "AWS::DynamoDB::Table",
        ("dynamodb:AssociateTableReplica", "dynamodb:CreateTableReplica"),
        "Replicas: the schema has no AWS::DynamoDB::Table property for them (they are "
        "AWS::DynamoDB::GlobalTable's), and the stack has no global table.",
        lambda: sorted(t for t in resource_types() if t == "AWS::DynamoDB::GlobalTable"),
    ),
    Adjustment(
        "AWS::DynamoDB::Table",
        (
            "dynamodb:DisableKinesisStreamingDestination",
            "dynamodb:EnableKinesisStreamingDestination",
            "dynamodb:UpdateKinesisStreamingDestination",
            "kinesis:DescribeStream",
            "kinesis:PutRecords",
        ),
        "Streaming changes to Kinesis.",
        never_set("AWS::DynamoDB::Table", "KinesisStreamSpecification"),
    ),
    Adjustment(
        "AWS::DynamoDB::Table",
        ("dynamodb:UpdateContributorInsights",),
        "Contributor Insights on a table or index. (DescribeContributorInsights, a read of the "
        "stack's own table, stays: the read handler calls it.)",
        never_set(
            "AWS::DynamoDB::Table",
            "ContributorInsightsSpecification",
            "GlobalSecondaryIndexes.[].ContributorInsightsSpecification",
        ),
    ),
    Adjustment(
        "AWS::DynamoDB::Table",
        ("dynamodb:PutResourcePolicy", "dynamodb:DeleteResourcePolicy"),
        "A table resource policy.",
        never_set("AWS::DynamoDB::Table", "ResourcePolicy"),
    ),
    Adjustment(
        "AWS::DynamoDB::Table",
        ("kms:CreateGrant", "kms:Decrypt", "kms:Encrypt", "kms:RevokeGrant"),
        "Encryption under a customer key (KMSMasterKeyId). The tables use the AWS managed key "
        "aws/dynamodb, whose own key policy lets DynamoDB use it for every principal of the "
        "account; a pipeline role holds no cryptographic KMS action.",
        never_set("AWS::DynamoDB::Table", "SSESpecification.KMSMasterKeyId"),
    ),
    Adjustment(
        "AWS::DynamoDB::Table",
        ("iam:CreateServiceLinkedRole",),
        "DynamoDB's service-linked roles serve replication, Kinesis streaming and Contributor "
        "Insights, none of which a table uses; the role creates no IAM outside the stack.",
        never_set(
            "AWS::DynamoDB::Table", "KinesisStreamSpecification", "ContributorInsightsSpecification"
        ),
    ),
    Adjustment(
        "AWS::IAM::Role",
        ("iam:AttachRolePolicy", "iam:DetachRolePolicy"),
        "Managed policies (AdministratorAccess among them): no role of the stack has one, and "
        "attaching one is the shortest way to widen a role.",
        never_set("AWS::IAM::Role", "ManagedPolicyArns"),
    ),
    Adjustment(
        "AWS::IAM::Role",
        ("iam:DeleteRolePermissionsBoundary",),
        "Removes a role's permissions boundary: denied outright. Every role carries the boundary "
        "whenever the execution role deploys (test_every_role_carries_the_boundary).",
        by_policy,
    ),
    Adjustment(
        "AWS::KMS::Key",
        ("kms:DisableKey", "kms:EnableKey"),
        "Called only when Enabled changes (the KMS provider's CreateHandler and UpdateHandler); "
        "the keys never set it and stay enabled. A disabled card key stops every payment.",
        never_set("AWS::KMS::Key", "Enabled"),
    ),
    Adjustment(
        "AWS::KMS::Key",
        ("kms:DisableKeyRotation",),
        "Called only when EnableKeyRotation turns false; every key rotates.",
        always("AWS::KMS::Key", "EnableKeyRotation", True),
    ),
    Adjustment(
        "AWS::Lambda::Function",
        (
            "ec2:DescribeSecurityGroups",
            "ec2:DescribeSubnets",
            "ec2:DescribeVpcs",
            "ec2:DescribeNetworkInterfaces",
            "elasticfilesystem:DescribeMountTargets",
            "s3files:ListMountTargets",
        ),
        "A function in a VPC, or with a file system.",
        never_set("AWS::Lambda::Function", "VpcConfig", "FileSystemConfigs"),
    ),
    Adjustment(
        "AWS::Lambda::Function",
        ("kms:CreateGrant", "kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey"),
        "Environment variables encrypted under a customer key (KmsKeyArn); without one, Lambda "
        "uses its AWS managed key. kms:CreateGrant on the card key stays out, as its key policy "
        "says. (kms:DescribeKey is granted for the tables' key.)",
        never_set("AWS::Lambda::Function", "KmsKeyArn"),
    ),
    Adjustment(
        "AWS::Lambda::Function",
        (
            "lambda:GetCodeSigningConfig",
            "lambda:PutFunctionCodeSigningConfig",
            "lambda:DeleteFunctionCodeSigningConfig",
        ),
        "Code signing. (GetFunctionCodeSigningConfig, a read of the stack's own function, stays.)",
        never_set("AWS::Lambda::Function", "CodeSigningConfigArn"),
    ),
    Adjustment(
        "AWS::Lambda::Function",
        ("lambda:PassCapacityProvider", "lambda:PutFunctionScalingConfig"),
        "Lambda Managed Instances.",
        never_set("AWS::Lambda::Function", "CapacityProviderConfig", "FunctionScalingConfig"),
    ),
    Adjustment(
        "AWS::Lambda::Function",
        ("lambda:PutFunctionRecursionConfig",),
        "Recursive loop detection changed from its default.",
        never_set("AWS::Lambda::Function", "RecursiveLoop"),
    ),
    Adjustment(
        "AWS::Lambda::Function",
        ("lambda:PutRuntimeManagementConfig",),
        "Runtime updates pinned or manual.",
        never_set("AWS::Lambda::Function", "RuntimeManagementConfig"),
    ),
    Adjustment(
        "AWS::Lambda::Version",
        ("lambda:PutProvisionedConcurrencyConfig",),
        "Provisioned concurrency on a version. (GetProvisionedConcurrencyConfig, a read, stays.)",
        never_set("AWS::Lambda::Version", "ProvisionedConcurrencyConfig"),
    ),
    Adjustment(
        "AWS::Lambda::Version",
        ("lambda:PutFunctionScalingConfig",),
        "Lambda Managed Instances, as for the function.",
        never_set("AWS::Lambda::Version", "FunctionScalingConfig"),
    ),
    Adjustment(
        "AWS::Lambda::Version",
        ("lambda:PutRuntimeManagementConfig",),
        "A version's runtime pinned (RuntimePolicy).",
        never_set("AWS::Lambda::Version", "RuntimePolicy"),
    ),
    Adjustment(
        "AWS::Lambda::Alias",
        ("lambda:PutProvisionedConcurrencyConfig", "lambda:DeleteProvisionedConcurrencyConfig"),
        "Provisioned concurrency on `live`. (GetProvisionedConcurrencyConfig, a read, stays.)",
        never_set("AWS::Lambda::Alias", "ProvisionedConcurrencyConfig"),
    ),
    Adjustment(
        "AWS::CodeDeploy::DeploymentGroup",
        ("codedeploy:GetApplicationRevision", "codedeploy:RegisterApplicationRevision"),
        "A revision deployed when the group is created or updated (Deployment: an S3 or GitHub "
        "revision, for EC2 and on-premises). SAM's groups name none; the deployments of a "
        "`live` shift are CloudFormation's, with the AppSpec inline (AWS::Lambda::Alias's "
        "update handler, which lists no revision action).",
        never_set("AWS::CodeDeploy::DeploymentGroup", "Deployment"),
    ),
    Adjustment(
        "AWS::CodeDeploy::DeploymentGroup",
        ("codedeploy:RegisterOnPremisesInstance",),
        "On-premises instances; a Lambda deployment group has none.",
        never_set(
            "AWS::CodeDeploy::DeploymentGroup", "OnPremisesInstanceTagFilters", "OnPremisesTagSet"
        ),
    ),
    Adjustment(
        "AWS::SNS::Topic",
        ("sns:PutDataProtectionPolicy",),
        "A message data protection policy. (GetDataProtectionPolicy, a read, stays.)",
        never_set("AWS::SNS::Topic", "DataProtectionPolicy"),
    ),
    Adjustment(
        "AWS::SNS::Topic",
        ("iam:GetRole", "iam:PassRole"),
        "Delivery status logging, with roles SNS writes the logs as. No role is passed to SNS. "
        "(iam:GetRole and iam:PassRole stay for other types, on the stack's roles.)",
        never_set("AWS::SNS::Topic", "DeliveryStatusLogging"),
    ),
    Adjustment(
        "AWS::SNS::Subscription",
        ("iam:GetRole", "iam:PassRole"),
        "A Firehose subscription's role (SubscriptionRoleArn); the subscription is e-mail.",
        never_set("AWS::SNS::Subscription", "SubscriptionRoleArn"),
    ),
    Adjustment(
        "AWS::SNS::Subscription",
        ("sns:SetSubscriptionAttributes",),
        "Called when a subscription's attributes change; the e-mail subscription sets none, and "
        "a new address (Endpoint, create-only) replaces the subscription.",
        never_set(
            "AWS::SNS::Subscription",
            "DeliveryPolicy",
            "FilterPolicy",
            "FilterPolicyScope",
            "RawMessageDelivery",
            "RedrivePolicy",
            "ReplayPolicy",
            "SubscriptionRoleArn",
        ),
    ),
    Adjustment(
        "AWS::Events::Rule",
        ("iam:PassRole",),
        "A role EventBridge assumes for a target, or for another bus; the rule's one target is "
        "the SNS topic, which its topic policy authorizes.",
        never_set("AWS::Events::Rule", "RoleArn", "Targets.[].RoleArn"),
    ),
    Adjustment(
        "AWS::Lambda::Function",
        ("s3:GetObjectVersion",),
        "Code pinned to an object version; SAM CLI's packaged CodeUri names none.",
        never_set("AWS::Lambda::Function", "Code.S3ObjectVersion"),
    ),
    Adjustment(
        "AWS::Lambda::LayerVersion",
        ("s3:GetObjectVersion",),
        "Content pinned to an object version; SAM CLI's packaged ContentUri names none.",
        never_set("AWS::Lambda::LayerVersion", "Content.S3ObjectVersion"),
    ),
    Adjustment(
        "AWS::Logs::LogGroup",
        ("firehose:TagDeliveryStream", "logs:CreateLogDelivery"),
        "A DELIVERY class log group, which forwards to Firehose or S3. (The API access log's "
        "delivery needs logs:CreateLogDelivery: ADDED.)",
        never_set("AWS::Logs::LogGroup", "LogGroupClass"),
    ),
    Adjustment(
        "AWS::Logs::LogGroup",
        ("logs:PutResourcePolicy", "logs:DeleteResourcePolicy"),
        "A log group resource policy. (The API access log's delivery needs "
        "logs:PutResourcePolicy: ADDED.)",
        never_set("AWS::Logs::LogGroup", "ResourcePolicyDocument"),
    ),
    Adjustment(
        "AWS::Logs::LogGroup",
        ("logs:PutIndexPolicy", "logs:DeleteIndexPolicy"),
        "Field index policies. (DescribeIndexPolicies, a read of the stack's own log groups, "
        "stays.)",
        never_set("AWS::Logs::LogGroup", "FieldIndexPolicies"),
    ),
    Adjustment(
        "AWS::Logs::LogGroup",
        ("logs:PutDataProtectionPolicy", "logs:DeleteDataProtectionPolicy"),
        "A data protection policy. (GetDataProtectionPolicy, a read, stays.)",
        never_set("AWS::Logs::LogGroup", "DataProtectionPolicy"),
    ),
    Adjustment(
        "AWS::Logs::LogGroup",
        ("logs:AssociateKmsKey", "logs:DisassociateKmsKey"),
        "Log groups encrypted under a customer key.",
        never_set("AWS::Logs::LogGroup", "KmsKeyId"),
    ),
    Adjustment(
        "AWS::Logs::LogGroup",
        ("logs:PutLogGroupDeletionProtection",),
        "Deletion protection.",
        never_set("AWS::Logs::LogGroup", "DeletionProtectionEnabled"),
    ),
    Adjustment(
        "AWS::Logs::LogGroup",
        ("logs:PutBearerTokenAuthentication",),
        "Bearer token authentication.",
        never_set("AWS::Logs::LogGroup", "BearerTokenAuthenticationEnabled"),
    ),
    Adjustment(
        "AWS::Logs::LogGroup",
        ("logs:DeleteRetentionPolicy",),
        "Called when RetentionInDays goes away; every log group keeps one.",
        always_set("AWS::Logs::LogGroup", "RetentionInDays"),
    ),
    Adjustment(
        "AWS::SecretsManager::RotationSchedule",
        ("iam:PassRole",),
        "A rotation function Secrets Manager creates (HostedRotationLambda) or an external "
        "rotation role; the rotation function is the stack's own.",
        never_set(
            "AWS::SecretsManager::RotationSchedule",
            "HostedRotationLambda",
            "ExternalSecretRotationRoleArn",
        ),
    ),
    Adjustment(
        "AWS::SecretsManager::Secret",
        ("secretsmanager:GetRandomPassword",),
        "A generated secret value.",
        never_set("AWS::SecretsManager::Secret", "GenerateSecretString"),
    ),
    Adjustment(
        "AWS::SecretsManager::Secret",
        ("secretsmanager:ReplicateSecretToRegions", "secretsmanager:RemoveRegionsFromReplication"),
        "Replicas in other regions.",
        never_set("AWS::SecretsManager::Secret", "ReplicaRegions"),
    ),
    Adjustment(
        "AWS::SecretsManager::Secret",
        ("secretsmanager:GetSecretValue",),
        "Reads a secret's value (to compare a changed SecretString). No pipeline role may read a "
        "key (tests/template/test_deploy_role.py CARD_DATA_ACTIONS); the signing key's resource "
        "policy denies it to all but the issuer and the rotation anyway.",
        by_policy,
    ),
]

# What a service documents beyond its registry schema: nothing, since the REST API. The HTTP
# API's stage delivered its access log through CloudWatch Logs' log delivery, with rights of the
# caller that its schema did not list. A REST API stage's access log is written by API Gateway
# as the region's logging role (template.yaml ApiGatewayCloudWatchRole), and AWS WAF's log
# delivery rights are in AWS::WAFv2::LoggingConfiguration's schema.
# AWS::ApiGateway::DomainName lists no ACM action either: API Gateway reads the regional
# certificate as its service-linked role (AWSServiceRoleForAPIGateway, whose
# APIGatewayServiceRolePolicy allows acm:DescribeCertificate), which a person creates once per
# account (docs/deploy.md, "Bootstrap an account"), not the pipeline.
ADDED: list[Adjustment] = []


def _registry_permissions() -> dict[str, set[str]]:
    """Lower-case action → the resource types whose handlers list it."""
    required: dict[str, set[str]] = {}
    for resource_type in sorted(resource_types()):
        for permissions in handler_permissions(resource_type).values():
            for permission in permissions:
                required.setdefault(permission.lower(), set()).add(resource_type)
    return required


def execution_role_needs() -> dict[str, set[str]]:
    """Lower-case action → why (the resource types that need it, or the addition)."""
    needs: dict[str, set[str]] = {}
    for action, types in _registry_permissions().items():
        if action in NOT_IAM_ACTIONS:
            continue
        left_out = {e.resource_type for e in LEFT_OUT if action in map(str.lower, e.actions)}
        if types - left_out:
            needs[action] = types - left_out
    for addition in ADDED:
        for action in addition.actions:
            needs.setdefault(action.lower(), set()).add(f"{addition.resource_type} (ADDED)")
    return needs


# ------------------------------------------------------------------ the execution role


def test_every_condition_is_on_in_the_full_transform() -> None:
    template = load_template()
    for name, value in EVERYTHING_ON.items():
        template["Parameters"][name]["Default"] = value
    resolver = Resolver(template, "card-tokens-staging")

    assert {name: resolver.condition(name) for name in template["Conditions"]} == {
        name: True for name in template["Conditions"]
    }


def test_the_registry_covers_every_resource_type_of_the_transformed_template() -> None:
    types = resource_types()

    assert not {t for t in types if t.startswith("AWS::Serverless::")}
    for resource_type in types:
        handlers = handler_permissions(resource_type)
        assert handlers["create"], f"{resource_type}: no create permissions in the registry"
        assert handlers["delete"], f"{resource_type}: no delete permissions in the registry"


def test_the_permissions_that_are_not_iam_actions_are_exactly_these() -> None:
    listed = set(_registry_permissions())

    assert {p for p in listed if p not in iam_actions()} == NOT_IAM_ACTIONS


@pytest.mark.parametrize(
    "left_out",
    [pytest.param(e, id=f"{e.resource_type}:{e.actions[0]}") for e in LEFT_OUT],
)
def test_each_left_out_permission_is_one_the_registry_lists_for_an_unused_property(
    left_out: Adjustment,
) -> None:
    listed = set().union(*handler_permissions(left_out.resource_type).values())
    assert left_out.resource_type in resource_types()
    assert {a.lower() for a in left_out.actions} <= {p.lower() for p in listed}
    assert left_out.holds() == [], left_out.holds.__doc__


def test_each_added_permission_serves_a_feature_the_template_uses() -> None:
    for added in ADDED:
        assert added.holds() == [], added.resource_type
        assert {a.lower() for a in added.actions} <= iam_actions(), added.resource_type
    # Nothing is added for the REST API's access log: it is written as the logging role, and
    # what the caller needs to set it up is in the registry (the stage, the account setting).
    assert "AWS::ApiGateway::Stage" in resource_types()
    assert not {t for t in resource_types() if t.startswith("AWS::ApiGatewayV2::")}


def execution_role_mismatch(roles: Template) -> list[str]:
    needs = execution_role_needs()
    granted = allowed(statements("CloudFormationExecutionRole", roles))
    return [
        f"missing {action}, needed by {sorted(needs[action])}"
        for action in sorted(set(needs) - granted)
    ] + [f"extra {action}" for action in sorted(granted - set(needs))]


def test_the_execution_role_grants_exactly_what_the_registry_derivation_needs() -> None:
    assert execution_role_mismatch(deploy_template()) == []


# Where AWS offers no scope by the stack's name or tag. Resource → (actions allowed there, why).
APIGATEWAY = "arn:${AWS::Partition}:apigateway:${AWS::Region}::"
NOT_STACK_SCOPED: dict[str, tuple[set[str], str]] = {
    "*": (
        {
            "logs:createlogdelivery",
            "logs:deletelogdelivery",
            "logs:describeloggroups",
            "logs:describeresourcepolicies",
            "logs:putresourcepolicy",
            "kms:listaliases",
            "codedeploy:stopdeployment",
        },
        "No resource-level permissions (AWS WAF's log delivery to its log group and the "
        "account's log resource policies, account-wide listings, stopping a deployment when a "
        "stack update is cancelled or rolled back during a shift).",
    ),
    "arn:${AWS::Partition}:cloudformation:${AWS::Region}:aws:transform/Serverless-2016-10-31": (
        {"cloudformation:createchangeset"},
        "The SAM transform: AWS's own, one per region.",
    ),
    "arn:${AWS::Partition}:cloudformation:${AWS::Region}:${AWS::AccountId}:stack/"
    "aws-sam-cli-managed-default/*": (
        {"cloudformation:describestacks"},
        "SAM CLI's managed artifacts stack, shared by the account's SAM deploys (resolve_s3).",
    ),
    "arn:${AWS::Partition}:kms:${AWS::Region}:${AWS::AccountId}:key/*": (
        {
            "kms:describekey",
            "kms:getkeypolicy",
            "kms:getkeyrotationstatus",
            "kms:listresourcetags",
            "kms:enablekeyrotation",
        },
        "Reads, and turning rotation on: right after CreateKey KMS may not yet authorize by the "
        "new key's tag, a key from before the tag must have its tags read to be tagged, and "
        "aws/dynamodb (the tables' AWS managed key) has an id the stack cannot know.",
    ),
    f"{APIGATEWAY}/restapis": (
        {"apigateway:get", "apigateway:post"},
        "Creating the REST API, which has no id yet.",
    ),
    f"{APIGATEWAY}/restapis/*": (
        {
            "apigateway:delete",
            "apigateway:get",
            "apigateway:patch",
            "apigateway:post",
            "apigateway:put",
        },
        "REST API ids are generated, not derived from the stack (its deployments, stage and "
        "gateway responses are under it).",
    ),
    f"{APIGATEWAY}/restapis/*/stages/*": (
        {
            "apigateway:setwebacl",
            "wafv2:associatewebacl",
            "wafv2:disassociatewebacl",
            "wafv2:getwebaclforresource",
        },
        "The stage the web ACL is associated with, under the REST API's generated id.",
    ),
    f"{APIGATEWAY}/domainnames": (
        {"apigateway:get", "apigateway:post"},
        "Creating the custom domain.",
    ),
    f"{APIGATEWAY}/domainnames/*": (
        {
            "apigateway:delete",
            "apigateway:get",
            "apigateway:patch",
            "apigateway:post",
            "apigateway:put",
        },
        "The custom domain and its base path mapping: named by the DomainName parameter, a DNS "
        "name, not by the stack.",
    ),
    f"{APIGATEWAY}/account": (
        {"apigateway:get", "apigateway:patch"},
        "The region's API Gateway account settings (its CloudWatch Logs role): one per account "
        "and region, read and set with ApiGatewayLogsRole=create.",
    ),
    f"{APIGATEWAY}/tags/*": (
        {
            "apigateway:delete",
            "apigateway:get",
            "apigateway:post",
            "apigateway:put",
            "apigateway:patch",
        },
        "Tags of the REST API, its stage and the custom domain, by their generated ids or DNS "
        "name.",
    ),
    "arn:${AWS::Partition}:wafv2:${AWS::Region}:${AWS::AccountId}:regional/managedruleset/*": (
        {"wafv2:createwebacl", "wafv2:updatewebacl"},
        "The AWS managed rule groups the web ACL uses: AWS WAF authorizes CreateWebACL and "
        "UpdateWebACL on each (managedruleset is among their resource types), under names AWS "
        "gives them.",
    ),
    "arn:${AWS::Partition}:scheduler:${AWS::Region}:${AWS::AccountId}:schedule/default/*": (
        {
            "scheduler:createschedule",
            "scheduler:deleteschedule",
            "scheduler:getschedule",
            "scheduler:updateschedule",
        },
        "CloudFormation names the schedule (OmitName) and schedules carry no tags.",
    ),
    "arn:${AWS::Partition}:codedeploy:${AWS::Region}:${AWS::AccountId}:deploymentconfig:"
    "CodeDeployDefault.Lambda*": (
        {"codedeploy:getdeploymentconfig"},
        "AWS's predefined Lambda deployment configurations, which DeploymentStrategy names.",
    ),
}


def _scoped_by_stack_tag(statement: dict[str, Any]) -> bool:
    for operator in ("StringEquals",):
        for key, value in statement.get("Condition", {}).get(operator, {}).items():
            tag_condition = key.startswith(("aws:ResourceTag/", "aws:RequestTag/"))
            if tag_condition and value == {"Ref": "AppStackName"}:
                return True
    return False


def scope_violations(roles: Template, role_id: str) -> list[str]:
    violations = []
    for statement in statements(role_id, roles):
        if statement["Effect"] != "Allow":
            continue
        actions = {a.lower() for a in as_list(statement["Action"])}
        for resource in as_list(statement["Resource"]):
            text = _resource_text(resource)
            if APP_STACK in text or text.startswith("GetAtt:") or _scoped_by_stack_tag(statement):
                continue
            allowed_here, _why = NOT_STACK_SCOPED.get(text, (set(), ""))
            if not actions <= allowed_here:
                sid = statement.get("Sid", "(no Sid)")
                violations.append(f"{sid}: {sorted(actions - allowed_here)} on {text}")
    return violations


@pytest.mark.parametrize("role_id", ["CloudFormationExecutionRole", "DeployRole"])
def test_every_grant_is_scoped_to_the_stack_or_has_no_finer_scope(role_id: str) -> None:
    assert scope_violations(deploy_template(), role_id) == []


# Names CloudFormation derives from the stack ("<stack>-<LogicalId>-<random>") when the template
# gives none; names the template gives must start with the stack's name too.
NAME_PROPERTIES = {
    "AWS::Lambda::Function": "FunctionName",
    "AWS::IAM::Role": "RoleName",
    "AWS::DynamoDB::Table": "TableName",
    "AWS::CloudWatch::Alarm": "AlarmName",
    "AWS::KMS::Alias": "AliasName",
    "AWS::WAFv2::WebACL": "Name",
}
STACK_NAMED = re.compile(r"^(alias/)?\$\{AWS::StackName\}-")
# The layer's name, and the execution role's Layer grant on it and its versions.
LAYER_NAME = "${AWS::StackName}-card-tokens"
LAYER_ARN = (
    "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:layer:"
    "${AppStackName}-card-tokens"
)
FUNCTION_LOG_GROUP = re.compile(r"^/aws/lambda/\$\{([A-Za-z0-9]+)\}$")
# AWS WAF logs only to a log group named aws-waf-logs-*: aws-waf-logs-<stack>-<stack id's first
# block>, which the execution role's LogGroups grant expects.
WAF_LOG_GROUP_NAME = {
    "Fn::Join": [
        "-",
        [
            "aws-waf-logs",
            {"Ref": "AWS::StackName"},
            {
                "Fn::Select": [
                    0,
                    {
                        "Fn::Split": [
                            "-",
                            {"Fn::Select": [2, {"Fn::Split": ["/", {"Ref": "AWS::StackId"}]}]},
                        ]
                    },
                ]
            },
        ],
    ]
}
WAF_LOG_GROUPS = (
    "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:"
    "aws-waf-logs-${AppStackName}-*"
)


def test_the_stacks_resources_carry_the_names_the_grants_expect() -> None:
    misnamed = []
    sam_resources = load_template()["Resources"]
    for resource_type, name_property in NAME_PROPERTIES.items():
        for logical_id, resource in resources(resource_type):
            name = resource["Properties"].get(name_property)
            if name is not None and not STACK_NAMED.match(_resource_text(name)):
                misnamed.append(f"{logical_id}: {name}")
    for logical_id, resource in resources("AWS::Logs::LogGroup"):
        name = resource["Properties"].get("LogGroupName")
        match = FUNCTION_LOG_GROUP.match(_resource_text(name)) if name is not None else None
        waf_logs = {
            r["Properties"]["LogDestinationConfigs"][0]["Fn::Sub"].rsplit("${", 1)[1][:-1]
            for _, r in resources("AWS::WAFv2::LoggingConfiguration")
        }
        if logical_id in waf_logs and name == WAF_LOG_GROUP_NAME:
            continue
        if name is not None and not (
            match and "FunctionName" not in sam_resources[match[1]]["Properties"]
        ):
            misnamed.append(f"{logical_id}: {name}")
    for logical_id, resource in resources("AWS::Lambda::LayerVersion"):
        if resource["Properties"]["LayerName"] != {"Fn::Sub": LAYER_NAME}:
            misnamed.append(f"{logical_id}: {resource['Properties']['LayerName']}")
    for logical_id, resource in resources("AWS::Scheduler::Schedule"):
        if {"Name", "GroupName"} & set(resource["Properties"]):
            misnamed.append(f"{logical_id}: named, or not in the default group")

    assert misnamed == []
    (layer,) = [s for s in statements("CloudFormationExecutionRole") if s.get("Sid") == "Layer"]
    (log_groups,) = [
        s for s in statements("CloudFormationExecutionRole") if s.get("Sid") == "LogGroups"
    ]
    assert WAF_LOG_GROUPS in [_resource_text(r) for r in log_groups["Resource"]]
    assert [_resource_text(r) for r in layer["Resource"]] == [LAYER_ARN, f"{LAYER_ARN}:*"]


def test_every_role_carries_the_boundary() -> None:
    roles = [(logical_id, role) for logical_id, role in resources("AWS::IAM::Role")]

    assert roles
    assert [
        i for i, role in roles if role["Properties"].get("PermissionsBoundary") != BOUNDARY_IF
    ] == []


def test_every_kms_key_carries_the_stack_tag_the_execution_role_requires() -> None:
    keys = list(resources("AWS::KMS::Key"))

    assert keys
    for logical_id, key in keys:
        assert {"Key": STACK_TAG, "Value": {"Ref": "AWS::StackName"}} in key["Properties"].get(
            "Tags", []
        ), logical_id
    (create_key,) = [
        s
        for s in statements("CloudFormationExecutionRole")
        if "kms:CreateKey" in as_list(s["Action"])
    ]
    assert create_key["Condition"] == {
        "StringEquals": {f"aws:RequestTag/{STACK_TAG}": {"Ref": "AppStackName"}}
    }


# What changes a key or who may use it: only on keys with the stack's tag (or its aliases).
KMS_ADMINISTRATION = {
    "kms:createalias",
    "kms:createkey",
    "kms:deletealias",
    "kms:putkeypolicy",
    "kms:schedulekeydeletion",
    "kms:tagresource",
    "kms:untagresource",
    "kms:updatealias",
    "kms:updatekeydescription",
}
# What would stop payments or open the keys: never, on any key.
KMS_NEVER = {"kms:disablekey", "kms:disablekeyrotation", "kms:creategrant", "kms:retiregrant"}
STACK_ALIASES = "arn:${AWS::Partition}:kms:${AWS::Region}:${AWS::AccountId}:alias/${AppStackName}-*"


def test_kms_administration_needs_the_stack_tag() -> None:
    execution = statements("CloudFormationExecutionRole")

    assert not KMS_NEVER & allowed(execution)
    for statement in execution:
        actions = {a.lower() for a in as_list(statement["Action"])}
        if statement["Effect"] != "Allow" or not actions & KMS_ADMINISTRATION:
            continue
        on_aliases = [_resource_text(r) for r in as_list(statement["Resource"])] == [STACK_ALIASES]
        assert on_aliases or _scoped_by_stack_tag(statement), statement["Sid"]


# ------------------------------------------------------------------ the boundary


def _named_targets(resource: Any) -> set[str]:
    text = _resource_text(resource)
    if text.startswith(("GetAtt:", "Ref:")):
        return {text.split(":", 1)[1].split(".")[0]}
    return set(re.findall(r"\$\{([A-Za-z0-9]+)(?:\.[A-Za-z]+)?\}", text)) - {
        "AWS::Partition",
        "AWS::Region",
        "AWS::AccountId",
    }


VIA_SECRETS_MANAGER, CARD_DATA_KEYS = "KMS through Secrets Manager", "KMS card data keys"
# A log group without LogGroupName, named <stack>-<LogicalId>-<id> by CloudFormation (the API
# access log, which API Gateway's logging role writes), apart from the functions' /aws/lambda/.
STACK_NAMED_LOG_GROUP = "log group named after the stack"


def _kind(template: Template, target: str) -> str:
    resource = template["Resources"][target]
    if resource["Type"] == "AWS::Logs::LogGroup" and "LogGroupName" not in resource["Properties"]:
        return STACK_NAMED_LOG_GROUP
    return str(resource["Type"])


def _kms_kind(statement: dict[str, Any]) -> str:
    """How a runtime grant uses a KMS key: each way has its own boundary statement."""
    equals = statement.get("Condition", {}).get("StringEquals", {})
    if "kms:ViaService" in equals:
        return VIA_SECRETS_MANAGER
    if equals.get("kms:EncryptionContext:purpose") == "card-token":
        return CARD_DATA_KEYS
    return "AWS::KMS::Key"  # any other use: the boundary has no statement for it


def runtime_grants(template: Template) -> set[tuple[str, str, str]]:
    """(lower-case action, kind of target, target logical id) of every runtime grant: the roles'
    policies and the key policy statements that name a role of the stack."""
    roles = set(resources_of_type(template, "AWS::IAM::Role"))
    documents: list[dict[str, Any]] = []
    for role in resources_of_type(template, "AWS::IAM::Role").values():
        documents += [p["PolicyDocument"] for p in role["Properties"].get("Policies", [])]
    for policy in resources_of_type(template, "AWS::IAM::RolePolicy").values():
        documents.append(policy["Properties"]["PolicyDocument"])
    grants: set[tuple[str, str, str]] = set()
    for document in documents:
        for statement in as_list(document["Statement"]):
            for resource in as_list(statement["Resource"]):
                for target in resource_targets(resource, _named_targets) or {"*"}:
                    kind = "*" if target == "*" else _kind(template, target)
                    kind = _kms_kind(statement) if kind == "AWS::KMS::Key" else kind
                    for action in as_list(statement["Action"]):
                        grants.add((action.lower(), kind, target))
    for key_id, key in resources_of_type(template, "AWS::KMS::Key").items():
        for statement in key["Properties"]["KeyPolicy"]["Statement"]:
            if resource_targets(statement["Principal"].get("AWS", ""), _named_targets) & roles:
                for action in as_list(statement["Action"]):
                    grants.add((action.lower(), _kms_kind(statement), key_id))
    return grants


def _secrets_managers_key_grants(template: Template) -> set[tuple[str, str, str]]:
    """Reading or writing a secret encrypted under aws/secretsmanager (no KmsKeyId) has Secrets
    Manager decrypt or generate a data key under that AWS managed key, as the caller."""
    implied = {
        "secretsmanager:getsecretvalue": "kms:decrypt",
        "secretsmanager:putsecretvalue": "kms:generatedatakey",
    }
    return {
        (implied[action], VIA_SECRETS_MANAGER, f"{target} (aws/secretsmanager)")
        for action, kind, target in runtime_grants(template)
        if action in implied
        and kind == "AWS::SecretsManager::Secret"
        and "KmsKeyId" not in template["Resources"][target]["Properties"]
    }


ANY_KEY = "arn:${AWS::Partition}:kms:${AWS::Region}:${AWS::AccountId}:key/*"
# Where the boundary allows each kind of target: the Resource, and the Condition if any.
BOUNDARY_TARGETS: dict[str, tuple[str, dict[str, Any] | None]] = {
    "AWS::DynamoDB::Table": (
        "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${AppStackName}-*",
        None,
    ),
    "AWS::Logs::LogGroup": (
        "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:/aws/lambda/"
        "${AppStackName}-*",
        None,
    ),
    STACK_NAMED_LOG_GROUP: (
        "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:${AppStackName}-*",
        None,
    ),
    "AWS::Lambda::Function": (
        "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:${AppStackName}-*",
        None,
    ),
    # CodeDeploy's role reads the rollback alarms; alarms are named after the stack.
    "AWS::CloudWatch::Alarm": (
        "arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:alarm:${AppStackName}-*",
        None,
    ),
    # Not the keys' tag or alias: KMS may take minutes to authorize by a new one, and the first
    # rotation uses the signing key's key seconds after the deploy creates it.
    CARD_DATA_KEYS: (ANY_KEY, {"StringEquals": {"kms:EncryptionContext:purpose": "card-token"}}),
    VIA_SECRETS_MANAGER: (
        ANY_KEY,
        {
            "StringEquals": {
                "kms:ViaService": {"Fn::Sub": "secretsmanager.${AWS::Region}.amazonaws.com"}
            }
        },
    ),
    "AWS::SecretsManager::Secret": (
        "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:*",
        {
            "StringEquals": {
                "aws:ResourceTag/aws:cloudformation:stack-name": {"Ref": "AppStackName"}
            }
        },
    ),
    # X-Ray's trace APIs, and listing log groups, have no resource-level permissions
    "*": ("*", None),
}


def boundary_statements(roles: Template | None = None) -> list[dict[str, Any]]:
    boundary = (roles or deploy_template())["Resources"]["PermissionsBoundary"]
    return list(boundary["Properties"]["PolicyDocument"]["Statement"])


def boundary_gaps(roles: Template) -> list[str]:
    """Runtime grants (in either transform) the boundary does not allow where they are made."""
    gaps = set()
    for template in transformed():
        grants = runtime_grants(template) | _secrets_managers_key_grants(template)
        for action, kind, target in grants:
            resource, condition = BOUNDARY_TARGETS.get(kind, ("(none)", None))
            if not any(
                s["Effect"] == "Allow"
                and action in {a.lower() for a in as_list(s["Action"])}
                and _resource_text(s["Resource"]) == resource
                and s.get("Condition") == condition
                for s in boundary_statements(roles)
            ):
                gaps.add(f"{action} on {target} ({kind})")
    return sorted(gaps)


def boundary_excess(roles: Template) -> list[str]:
    """Anything the boundary allows beyond the runtime actions, or in a form that widens it."""
    runtime = {a for t in transformed() for a, _, _ in runtime_grants(t)}
    boundary = boundary_statements(roles)
    forbidden_services = {"iam", "sts", "organizations"}
    return (
        [f"beyond the runtime: {a}" for a in sorted(allowed(boundary) - runtime)]
        + [f"missing: {a}" for a in sorted(runtime - allowed(boundary))]
        + [f"forbidden: {a}" for a in allowed(boundary) if a.split(":")[0] in forbidden_services]
        + [f"wildcard: {a}" for a in allowed(boundary) if "*" in a]
        + [str(s) for s in boundary if s["Effect"] != "Allow" or "NotAction" in s]
        + [str(s) for s in boundary if "NotResource" in s]
    )


def test_the_boundary_allows_every_runtime_grant_where_it_is_made() -> None:
    assert boundary_gaps(deploy_template()) == []


def test_the_boundary_allows_exactly_the_runtime_actions_and_nothing_like_iam() -> None:
    assert boundary_excess(deploy_template()) == []


def test_the_runtime_uses_kms_only_in_the_two_ways_the_boundary_allows() -> None:
    for template in transformed():
        kinds = {kind for _, kind, target in runtime_grants(template) if "KMS" in kind}
        assert kinds == {CARD_DATA_KEYS, VIA_SECRETS_MANAGER}


# ------------------------------------------------------------------ the deploy role: SAM CLI


@dataclass(frozen=True)
class Call:
    """One AWS call in SAM CLI's (or s3transfer's) source, and what it needs on our path."""

    where: str  # short file name (SOURCES) and line
    call: str  # the client method, or "get_waiter:<name>" / "get_paginator:<name>"
    actions: str  # the IAM actions it needs on the pipeline's path, space separated; "" off it
    why: str


# The files read, under site-packages.
SOURCES = {
    "deployer.py": "samcli/lib/deploy/deployer.py",
    "s3_uploader.py": "samcli/lib/package/s3_uploader.py",
    "managed_stack.py": "samcli/lib/utils/managed_cloudformation_stack.py",
    "bootstrap.py": "samcli/lib/bootstrap/bootstrap.py",
    "web_function.py": "samcli/lib/package/web_function_code_access.py",
    "code_signer.py": "samcli/lib/package/code_signer.py",
    "ecr_uploader.py": "samcli/lib/package/ecr_uploader.py",
    "upload.py": "s3transfer/upload.py",
    "tasks.py": "s3transfer/tasks.py",
}
CFN = "cloudformation:"
# Every AWS call of those files, what it needs on the pipeline's path and why: a Markdown table
# to read and review, this file's data.
CALLS_TABLE = Path(__file__).with_name("sam_cli_calls.md")


def read_calls(table: Path) -> list[Call]:
    """The rows of the table's `| where | call | IAM actions | why |` tables, headers left out."""
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in table.read_text(encoding="utf-8").splitlines()
        if line.startswith("| ")
    ]
    return [Call(*row) for row in rows if row[0] != "where"]


SAM_CLI_CALLS = read_calls(CALLS_TABLE)
_CALL = re.compile(
    r"\b(?:self\._client|self\.s3|s3_client|cloudformation_client|sts_client|"
    r"self\.signer_client|self\.ecr_client|kms_client|client)\.(\w+)\s*[(,]"
)
_WAITER = re.compile(r"\.(get_waiter|get_paginator)\(\s*\"(\w+)\"")


def _source(relative: str) -> Path:
    root = SAMCLI if relative.startswith("samcli/") else S3TRANSFER
    return root / relative.split("/", 1)[1]


def calls_in_source() -> set[tuple[str, str]]:
    """(file:line, call) of every AWS client call in the files read."""
    found = set()
    for name, relative in SOURCES.items():
        for number, line in enumerate(_source(relative).read_text().splitlines(), 1):
            if line.strip().startswith("#"):
                continue
            for match in _CALL.finditer(line):
                if match[1] not in {"get_waiter", "get_paginator"}:
                    found.add((f"{name}:{number}", match[1]))
            for match in _WAITER.finditer(line):
                found.add((f"{name}:{number}", f"{match[1]}:{match[2]}"))
    return found


def test_the_table_lists_every_aws_call_of_the_installed_sam_cli_where_it_is() -> None:
    listed = {(c.where, c.call) for c in SAM_CLI_CALLS}
    found = calls_in_source()

    # A new call must be classified, a moved one read again: the message shows where it went.
    assert (sorted(found - listed), sorted(listed - found)) == ([], [])


def test_the_sam_cli_read_is_the_pinned_one() -> None:
    pins = (REPO_ROOT / "requirements-dev.txt").read_text().splitlines()

    assert f"aws-sam-cli=={samcli.__version__}" in pins


def test_the_files_read_are_the_deploy_path() -> None:
    command = (SAMCLI / "commands" / "deploy" / "command.py").read_text()
    context = (SAMCLI / "commands" / "deploy" / "deploy_context.py").read_text()
    uploader = (SAMCLI / "lib" / "package" / "s3_uploader.py").read_text()

    for step in ("s3_bucket = manage_stack(", "package_context.run()", "deploy_context.run()"):
        assert step in command
    for use in ("S3Uploader(", "Deployer(", "def deploy(", "create_and_wait_for_changeset("):
        assert use in context
    assert "self.transfer_manager.upload(" in uploader
    # Uploads are SSE-S3: neither role needs a KMS grant for the artifacts.
    assert '{"ServerSideEncryption": "AES256"}' in uploader


def _api_operation(call: str) -> str:
    client = boto3.session.Session(region_name="us-east-1").client(
        "cloudformation", aws_access_key_id="unused", aws_secret_access_key="unused"
    )
    kind, _, name = call.partition(":")
    if kind == "get_waiter":
        return str(client.get_waiter(name).config.operation)
    return str(client.meta.method_to_api_mapping[name if kind == "get_paginator" else call])


def test_each_cloudformation_call_needs_the_action_of_its_api_operation() -> None:
    for call in SAM_CLI_CALLS:
        if call.actions.startswith(CFN):
            assert call.actions.split()[0] == f"{CFN}{_api_operation(call.call)}", call


def deploy_path_actions() -> set[str]:
    return {a.lower() for c in SAM_CLI_CALLS for a in c.actions.split()}


def deploy_role_mismatch(roles: Template) -> list[str]:
    granted = allowed(statements("DeployRole", roles))
    needed = deploy_path_actions()
    return [f"missing {a}" for a in sorted(needed - granted)] + [
        f"extra {a}" for a in sorted(granted - needed)
    ]


def test_the_deploy_role_grants_exactly_the_actions_of_sam_clis_deploy_path() -> None:
    assert deploy_role_mismatch(deploy_template()) == []


def _deploy_config(environment: str) -> dict[str, Any]:
    with SAMCONFIG.open("rb") as handle:
        return dict(tomllib.load(handle)[environment]["deploy"]["parameters"])


def _deploy_commands() -> list[str]:
    workflow = yaml.safe_load(DEPLOY_WORKFLOW.read_text())
    return [
        step["run"]
        for job in workflow["jobs"].values()
        for step in job.get("steps", [])
        if "sam " in step.get("run", "")
    ]


def test_the_pipeline_takes_only_the_deploy_path_the_table_follows() -> None:
    commands = _deploy_commands()

    assert commands
    for command in commands:
        words = shlex.split(command)
        assert words[:2] == [".venv/bin/sam", "deploy"], command
        assert "--role-arn" in words, command
        for option in ("--on-failure", "--s3-bucket", "--signing-profiles", "--image-repository"):
            assert option not in words, command
    for environment in ("staging", "prod"):
        config = _deploy_config(environment)
        assert config["resolve_s3"] is True
        assert {"on_failure", "signing_profiles", "s3_bucket", "image_repositories"}.isdisjoint(
            config
        )
    template = load_template()
    assert "AWS::Serverless::WebFunction" not in {r["Type"] for r in template["Resources"].values()}
    assert not [
        f
        for f, r in resources_of_type(template, "AWS::Serverless::Function").items()
        if r["Properties"].get("PackageType") == "Image"
    ]


def test_artifacts_go_under_the_stacks_own_prefix() -> None:
    # The deploy role uploads, and the execution role reads, under <AppStackName>/ only.
    with SAMCONFIG.open("rb") as handle:
        config = tomllib.load(handle)
    for environment in ("staging", "prod"):
        stack_name = config[environment]["global"]["parameters"]["stack_name"]
        assert _deploy_config(environment)["s3_prefix"] == stack_name
    for role_id in ("DeployRole", "CloudFormationExecutionRole"):
        s3 = [
            s for s in statements(role_id) if any(a.startswith("s3:") for a in as_list(s["Action"]))
        ]
        assert [_resource_text(s["Resource"]) for s in s3] == [ARTIFACTS], role_id


def test_the_deploy_role_may_only_read_the_managed_bucket_stack_not_create_it() -> None:
    on_managed_stack = [
        s
        for s in statements("DeployRole")
        if s["Effect"] == "Allow" and f"stack/{MANAGED_STACK}/" in _resource_text(s["Resource"])
    ]

    assert [as_list(s["Action"]) for s in on_managed_stack] == [["cloudformation:DescribeStacks"]]


# ------------------------------------------------------------------ bootstrap (docs/deploy.md)


class _AnonymousConfig:
    installation_id = None


@cache
def managed_bucket_template() -> Template:
    """SAM CLI's own template for aws-sam-cli-managed-default, transformed."""
    from samcli.lib.bootstrap import bootstrap

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(bootstrap, "GlobalConfig", _AnonymousConfig)  # reads no ~/.aws-sam
        template = json.loads(bootstrap._get_stack_template())
    return sam_transform(template, region="us-east-1")


def bootstrap_permissions() -> set[str]:
    types = {r["Type"] for r in managed_bucket_template()["Resources"].values()}
    return {p.lower() for t in types for h in ("create", "read") for p in handler_permissions(t)[h]}


def test_creating_the_managed_bucket_takes_rights_no_pipeline_role_has() -> None:
    # SAM CLI creates that stack with the caller's own credentials (no RoleARN), so whoever runs
    # the first resolve_s3 needs the bucket handlers' permissions: a person, once (docs/deploy.md).
    needed = bootstrap_permissions()
    types = {r["Type"] for r in managed_bucket_template()["Resources"].values()}

    assert types == {"AWS::S3::Bucket", "AWS::S3::BucketPolicy"}
    assert {"s3:createbucket", "s3:putbucketpolicy"} <= needed
    for role_id in ("DeployRole", "CloudFormationExecutionRole"):
        bucket_rights = {a for a in needed & allowed(statements(role_id)) if a.startswith("s3")}
        assert bucket_rights == set(), role_id


def test_the_bootstrap_is_documented_with_sam_clis_own_stack_and_template() -> None:
    from samcli.lib.bootstrap import bootstrap

    doc = DEPLOY_DOC.read_text()
    section = doc.split("## Bootstrap an account", 1)[1].split("\n## ", 1)[0]

    assert bootstrap.SAM_CLI_STACK_NAME == MANAGED_STACK
    assert MANAGED_STACK in section
    assert "from samcli.lib.bootstrap.bootstrap import manage_stack" in section
    for needed in ("deploy/github-oidc-role.yaml", "CAPABILITY_NAMED_IAM", "s3:CreateBucket"):
        assert needed in section
    # The custom domain's certificate is read by API Gateway's service-linked role, which the
    # execution role may not create (no IAM outside the stack): a person creates it once.
    assert "aws iam create-service-linked-role --aws-service-name ops.apigateway.amazonaws.com" in (
        section
    )
    assert not {
        a for a in allowed(statements("CloudFormationExecutionRole")) if "servicelinkedrole" in a
    }
    # And where several stacks share a region, the one logging role is set by hand.
    assert "ApiGatewayLogsRole=existing" in section


def test_staging_and_prod_name_the_boundary_the_deploy_template_creates() -> None:
    with SAMCONFIG.open("rb") as handle:
        config = tomllib.load(handle)
    for environment in ("staging", "prod"):
        stack_name = config[environment]["global"]["parameters"]["stack_name"]
        pairs = dict(
            p.split("=", 1) for p in shlex.split(_deploy_config(environment)["parameter_overrides"])
        )
        assert re.fullmatch(
            rf"arn:aws:iam::[0-9]{{12}}:policy/{stack_name}-permissions-boundary",
            pairs["PermissionsBoundaryArn"],
        ), environment
    assert "PermissionsBoundaryArn" not in _deploy_config("default")["parameter_overrides"]


# ------------------------------------------------------------------ the checks can fail
# Each check above, run on deploy/github-oidc-role.yaml with one grant more or less, must object.

ROLE_CHECKS: dict[str, Callable[[Template], list[str]]] = {
    "execution": execution_role_mismatch,
    "deploy": deploy_role_mismatch,
    "execution-scope": lambda roles: scope_violations(roles, "CloudFormationExecutionRole"),
    "deploy-scope": lambda roles: scope_violations(roles, "DeployRole"),
    "boundary-gaps": boundary_gaps,
    "boundary-excess": boundary_excess,
}


def _policy(roles: Template, resource_id: str) -> list[dict[str, Any]]:
    properties = roles["Resources"][resource_id]["Properties"]
    document = properties.get("PolicyDocument") or properties["Policies"][0]["PolicyDocument"]
    statements_: list[dict[str, Any]] = document["Statement"]  # the list itself, to edit
    return statements_


def _without(resource_id: str, action: str) -> Callable[[Template], None]:
    def mutate(roles: Template) -> None:
        for statement in _policy(roles, resource_id):
            actions = as_list(statement["Action"])
            if action in actions:
                statement["Action"] = [a for a in actions if a != action]

    return mutate


def _with(resource_id: str, statement: dict[str, Any]) -> Callable[[Template], None]:
    def mutate(roles: Template) -> None:
        _policy(roles, resource_id).append(statement)

    return mutate


def _sub(text: str) -> dict[str, str]:
    return {"Fn::Sub": text}


ANY_FUNCTION = "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:*"
WEAKENED: list[tuple[str, str, Callable[[Template], None]]] = [
    (
        "deploy",
        "GetTemplateSummary gone",
        _without("DeployRole", "cloudformation:GetTemplateSummary"),
    ),
    (
        "deploy",
        "GetTemplate back",
        _with(
            "DeployRole",
            {"Effect": "Allow", "Action": "cloudformation:GetTemplate", "Resource": "*"},
        ),
    ),
    (
        "execution",
        "no PutResourcePolicy for the secrets",
        _without("CloudFormationExecutionRole", "secretsmanager:PutResourcePolicy"),
    ),
    (
        "execution",
        "DisableKeyRotation back",
        _with(
            "CloudFormationExecutionRole",
            {"Effect": "Allow", "Action": "kms:DisableKeyRotation", "Resource": "*"},
        ),
    ),
    (
        "execution-scope",
        "functions of any stack",
        _with(
            "CloudFormationExecutionRole",
            {"Effect": "Allow", "Action": "lambda:GetFunction", "Resource": _sub(ANY_FUNCTION)},
        ),
    ),
    (
        "execution-scope",
        "any key, no tag",
        _with(
            "CloudFormationExecutionRole",
            {
                "Effect": "Allow",
                "Action": "kms:PutKeyPolicy",
                "Resource": _sub(
                    "arn:${AWS::Partition}:kms:${AWS::Region}:${AWS::AccountId}:key/*"
                ),
            },
        ),
    ),
    (
        "deploy-scope",
        "the whole artifacts bucket",
        _with(
            "DeployRole",
            {
                "Effect": "Allow",
                "Action": "s3:PutObject",
                "Resource": _sub("arn:${AWS::Partition}:s3:::aws-sam-cli-managed-default-*/*"),
            },
        ),
    ),
    (
        "execution-scope",
        "deleting web ACLs through the managed rule sets' grant",
        _with(
            "CloudFormationExecutionRole",
            {
                "Effect": "Allow",
                "Action": "wafv2:DeleteWebACL",
                "Resource": _sub(
                    "arn:${AWS::Partition}:wafv2:${AWS::Region}:${AWS::AccountId}:regional/"
                    "managedruleset/*"
                ),
            },
        ),
    ),
    (
        "execution",
        "managed policies may be attached again",
        _with(
            "CloudFormationExecutionRole",
            {
                "Effect": "Allow",
                "Action": "iam:AttachRolePolicy",
                "Resource": _sub(
                    "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${AppStackName}-*"
                ),
            },
        ),
    ),
    ("boundary-gaps", "no tables", _without("PermissionsBoundary", "dynamodb:PutItem")),
    (
        "boundary-gaps",
        "API Gateway cannot write the access log",
        _without("PermissionsBoundary", "logs:DescribeLogStreams"),
    ),
    (
        "boundary-excess",
        "PassRole in the boundary",
        _with(
            "PermissionsBoundary", {"Effect": "Allow", "Action": "iam:PassRole", "Resource": "*"}
        ),
    ),
    (
        "boundary-excess",
        "NotAction in the boundary",
        _with(
            "PermissionsBoundary",
            {"Effect": "Allow", "NotAction": "iam:*", "Resource": "*", "Action": []},
        ),
    ),
]


@pytest.mark.parametrize(
    ("check", "weaken"),
    [pytest.param(check, weaken, id=f"{check}-{name}") for check, name, weaken in WEAKENED],
)
def test_each_check_objects_to_a_role_with_a_grant_more_or_less(
    check: str, weaken: Callable[[Template], None]
) -> None:
    roles = copy.deepcopy(deploy_template())

    weaken(roles)

    assert ROLE_CHECKS[check](roles) != []


def test_every_role_check_has_a_counterexample() -> None:
    assert {check for check, _, _ in WEAKENED} == set(ROLE_CHECKS)
