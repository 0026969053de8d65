"""deploy/github-oidc-role.yaml: the pipeline's roles trust one GitHub environment, and no more."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from local.cfn import load_template
from tests.template.policies import as_list

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY_TEMPLATE = REPO_ROOT / "deploy" / "github-oidc-role.yaml"
CFN_LINT = str(Path(sys.executable).parent / "cfn-lint")
GITHUB_OIDC = "token.actions.githubusercontent.com"
SUBJECT = "repo:${GitHubOwner}/${GitHubRepository}:environment:${GitHubEnvironment}"
# What would let a role read card data or keys, or open a back door to them.
CARD_DATA_ACTIONS = {
    "kms:Decrypt",
    "kms:Encrypt",
    "kms:GenerateDataKey",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
    "kms:CreateGrant",
    "secretsmanager:GetSecretValue",
    "secretsmanager:PutSecretValue",
    "dynamodb:GetItem",
    "dynamodb:Query",
    "dynamodb:Scan",
}


@pytest.fixture(scope="module")
def roles() -> dict[str, dict[str, Any]]:
    resources = load_template(DEPLOY_TEMPLATE)["Resources"]
    return {
        logical_id: resource
        for logical_id, resource in resources.items()
        if resource["Type"] == "AWS::IAM::Role"
    }


def statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        statement
        for policy in role["Properties"]["Policies"]
        for statement in policy["PolicyDocument"]["Statement"]
    ]


def actions(role: dict[str, Any]) -> set[str]:
    """What the role may do: the actions of its Allow statements (a Deny only narrows them)."""
    found: set[str] = set()
    for statement in statements(role):
        if statement["Effect"] == "Allow":
            found.update(as_list(statement["Action"]))
    return found


def statements_allowing(role: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [
        s for s in statements(role) if s["Effect"] == "Allow" and action in as_list(s["Action"])
    ]


def statements_denying(role: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [
        s
        for s in statements(role)
        if s["Effect"] == "Deny" and ({action, "iam:*"} & set(as_list(s["Action"])))
    ]


def test_cfn_lint_passes_on_the_deploy_template() -> None:
    result = subprocess.run(
        [CFN_LINT, "--include-checks", "I", "--", str(DEPLOY_TEMPLATE)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("role_id", ["DeployRole", "E2eRole"])
def test_github_roles_trust_only_their_environment_of_this_repository(
    roles: dict[str, dict[str, Any]], role_id: str
) -> None:
    (trust,) = roles[role_id]["Properties"]["AssumeRolePolicyDocument"]["Statement"]

    assert trust["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert trust["Condition"] == {
        "StringEquals": {
            f"{GITHUB_OIDC}:aud": "sts.amazonaws.com",
            f"{GITHUB_OIDC}:sub": {"Fn::Sub": SUBJECT},
        }
    }


def test_only_cloudformation_can_assume_the_execution_role(
    roles: dict[str, dict[str, Any]],
) -> None:
    (trust,) = roles["CloudFormationExecutionRole"]["Properties"]["AssumeRolePolicyDocument"][
        "Statement"
    ]

    assert trust["Principal"] == {"Service": "cloudformation.amazonaws.com"}


def test_the_deploy_role_can_only_run_change_sets_upload_code_and_pass_one_role(
    roles: dict[str, dict[str, Any]],
) -> None:
    deploy = roles["DeployRole"]
    allowed = actions(deploy)

    assert {action.split(":")[0] for action in allowed} == {"cloudformation", "s3", "iam"}
    assert {a for a in allowed if a.startswith("iam:")} == {"iam:PassRole"}
    (pass_role,) = statements_allowing(deploy, "iam:PassRole")
    assert pass_role["Resource"] == {"Fn::GetAtt": ["CloudFormationExecutionRole", "Arn"]}
    assert pass_role["Condition"] == {
        "StringEquals": {"iam:PassedToService": "cloudformation.amazonaws.com"}
    }


def test_change_sets_run_as_the_execution_role_and_never_import(
    roles: dict[str, dict[str, Any]],
) -> None:
    deploy = roles["DeployRole"]
    on_the_stack = [
        s
        for s in statements_allowing(deploy, "cloudformation:CreateChangeSet")
        if "transform/" not in s["Resource"]["Fn::Sub"]
    ]
    (import_deny,) = statements_denying(deploy, "cloudformation:CreateChangeSet")

    assert [s["Condition"] for s in on_the_stack] == [
        {
            "StringEquals": {
                "cloudformation:RoleArn": {"Fn::GetAtt": ["CloudFormationExecutionRole", "Arn"]}
            }
        }
    ]
    assert import_deny["Resource"] == "*"
    assert import_deny["Condition"] == {"Null": {"cloudformation:ImportResourceTypes": "false"}}


# ------------------------------------------------------------------ the permissions boundary
# Every role the execution role creates carries PermissionsBoundary, and keeps it.

BOUNDARY = {"Ref": "PermissionsBoundary"}
# Actions whose request names (CreateRole, PutRolePermissionsBoundary) or whose role carries
# (the others) a boundary: IAM's iam:PermissionsBoundary condition key applies to exactly these.
BOUNDED_ACTIONS = {
    "iam:CreateRole",
    "iam:PutRolePermissionsBoundary",
    "iam:PutRolePolicy",
    "iam:DeleteRolePolicy",
    "iam:AttachRolePolicy",
    "iam:DetachRolePolicy",
}
# What a role's policies can be widened with, boundary or not: never granted.
NEVER_GRANTED = {
    "iam:AttachRolePolicy",
    "iam:DetachRolePolicy",
    "iam:DeleteRolePermissionsBoundary",
    "iam:CreatePolicy",
    "iam:CreatePolicyVersion",
    "iam:SetDefaultPolicyVersion",
    "iam:CreateUser",
    "iam:CreateAccessKey",
}


def boundary_is_required(template: dict[str, Any]) -> list[str]:
    """Every grant of a bounded action requires exactly the stack's boundary."""
    execution = template["Resources"]["CloudFormationExecutionRole"]
    return [
        f"{action} without the boundary: {statement}"
        for action in sorted(BOUNDED_ACTIONS)
        for statement in statements_allowing(execution, action)
        if statement.get("Condition") != {"StringEquals": {"iam:PermissionsBoundary": BOUNDARY}}
        or statement["Resource"]
        != {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${AppStackName}-*"}
    ] + [
        f"{action} allowed"
        for action in sorted(NEVER_GRANTED)
        if statements_allowing(execution, action)
    ]


def boundary_cannot_be_removed(template: dict[str, Any]) -> list[str]:
    """Unconditional Deny of removing it; Deny of any other boundary; the policy untouchable."""
    execution = template["Resources"]["CloudFormationExecutionRole"]
    violations = []
    if not any(
        s["Resource"] == "*" and "Condition" not in s
        for s in statements_denying(execution, "iam:DeleteRolePermissionsBoundary")
    ):
        violations.append("DeleteRolePermissionsBoundary is not denied on every role")
    for action in ("iam:CreateRole", "iam:PutRolePermissionsBoundary"):
        if not any(
            s["Resource"] == "*"
            and s.get("Condition") == {"StringNotEquals": {"iam:PermissionsBoundary": BOUNDARY}}
            for s in statements_denying(execution, action)
        ):
            violations.append(f"{action} with another boundary is not denied")
    boundary_arn = {
        "Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:policy/"
        "${AppStackName}-permissions-boundary"
    }
    if not any(
        boundary_arn in as_list(s["Resource"]) and s["Action"] == ["iam:*"]
        for s in statements(execution)
        if s["Effect"] == "Deny"
    ):
        violations.append("the boundary policy itself is not off limits")
    return violations


BOUNDARY_CHECKS = {"required": boundary_is_required, "kept": boundary_cannot_be_removed}


@pytest.mark.parametrize("check", BOUNDARY_CHECKS)
def test_the_boundary_is_required_and_cannot_be_removed(check: str) -> None:
    assert BOUNDARY_CHECKS[check](load_template(DEPLOY_TEMPLATE)) == []


def _execution_statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    execution = template["Resources"]["CloudFormationExecutionRole"]
    return statements(execution)


def _drop_condition(action: str) -> Any:
    def mutate(template: dict[str, Any]) -> None:
        for statement in _execution_statements(template):
            if statement["Effect"] == "Allow" and action in as_list(statement["Action"]):
                statement.pop("Condition", None)

    return mutate


def _allow(action: str) -> Any:
    def mutate(template: dict[str, Any]) -> None:
        execution = template["Resources"]["CloudFormationExecutionRole"]
        execution["Properties"]["Policies"][0]["PolicyDocument"]["Statement"].append(
            {"Effect": "Allow", "Action": action, "Resource": "*"}
        )

    return mutate


def _drop_deny(action: str) -> Any:
    def mutate(template: dict[str, Any]) -> None:
        for statement in _execution_statements(template):
            if statement["Effect"] == "Deny" and action in as_list(statement["Action"]):
                statement["Effect"] = "Allow"

    return mutate


def _other_boundary(template: dict[str, Any]) -> None:
    for statement in _execution_statements(template):
        condition = statement.get("Condition", {}).get("StringEquals", {})
        if "iam:PermissionsBoundary" in condition:
            condition["iam:PermissionsBoundary"] = "arn:aws:iam::aws:policy/AdministratorAccess"


WEAKENED = [
    ("required", "CreateRole without a condition", _drop_condition("iam:CreateRole")),
    ("required", "PutRolePolicy without a condition", _drop_condition("iam:PutRolePolicy")),
    ("required", "the boundary is AdministratorAccess", _other_boundary),
    ("required", "managed policies may be attached", _allow("iam:AttachRolePolicy")),
    ("required", "the boundary may be deleted", _allow("iam:DeleteRolePermissionsBoundary")),
    (
        "kept",
        "no Deny of DeleteRolePermissionsBoundary",
        _drop_deny("iam:DeleteRolePermissionsBoundary"),
    ),
    ("kept", "no Deny of another boundary", _drop_deny("iam:PutRolePermissionsBoundary")),
    ("kept", "the boundary policy is not protected", _drop_deny("iam:*")),
]


@pytest.mark.parametrize(
    ("check", "weaken"),
    [pytest.param(check, weaken, id=f"{check}-{name}") for check, name, weaken in WEAKENED],
)
def test_the_boundary_checks_catch_a_weakened_role(check: str, weaken: Any) -> None:
    template = load_template(DEPLOY_TEMPLATE)

    weaken(template)

    assert BOUNDARY_CHECKS[check](template) != []


def test_the_boundary_is_shipped_exported_and_named_where_samconfig_expects_it() -> None:
    template = load_template(DEPLOY_TEMPLATE)
    boundary = template["Resources"]["PermissionsBoundary"]
    output = template["Outputs"]["PermissionsBoundaryArn"]

    assert boundary["Type"] == "AWS::IAM::ManagedPolicy"
    assert boundary["Properties"]["ManagedPolicyName"] == {
        "Fn::Sub": "${AppStackName}-permissions-boundary"
    }
    assert "Roles" not in boundary["Properties"]  # a ceiling, never a grant
    assert output["Value"] == BOUNDARY
    assert output["Export"] == {"Name": {"Fn::Sub": "${AppStackName}-permissions-boundary"}}


@pytest.mark.parametrize("role_id", ["DeployRole", "CloudFormationExecutionRole", "E2eRole"])
def test_no_pipeline_role_can_read_card_data_or_keys(
    roles: dict[str, dict[str, Any]], role_id: str
) -> None:
    allowed = actions(roles[role_id])

    assert not allowed & CARD_DATA_ACTIONS
    assert not any(action.endswith("*") for action in allowed)


def test_the_e2e_role_exists_for_staging_only_and_may_call_the_payment_routes(
    roles: dict[str, dict[str, Any]],
) -> None:
    e2e = roles["E2eRole"]
    (invoke,) = [s for s in statements(e2e) if s["Action"] == "execute-api:Invoke"]
    template_routes = {
        f"{event['Properties']['Method'].upper()}{event['Properties']['Path']}"
        for resource in load_template()["Resources"].values()
        if resource["Type"] == "AWS::Serverless::Function"
        for event in resource["Properties"].get("Events", {}).values()
        if event["Properties"].get("Auth", {}).get("Authorizer") == "AWS_IAM"
    }

    assert e2e["Condition"] == "CreatesE2eRole"
    assert actions(e2e) == {"cloudformation:DescribeStacks", "execute-api:Invoke"}
    granted = {arn["Fn::Sub"].split("/v1/")[1] for arn in invoke["Resource"]}
    assert granted == {route.replace("{payment_id}", "*") for route in template_routes}


def test_the_execution_role_can_roll_out_through_codedeploy_and_no_further(
    roles: dict[str, dict[str, Any]],
) -> None:
    # docs/rollout.md: versions and `live` aliases, CodeDeploy's application, deployment groups
    # and deployments, and the stack's own CodeDeployRole (no managed policy) passed to
    # CodeDeploy.
    execution = roles["CloudFormationExecutionRole"]
    allowed = actions(execution)
    stack = "${AppStackName}-*"

    assert {
        "lambda:PublishVersion",
        "lambda:CreateAlias",
        "lambda:UpdateAlias",
        "codedeploy:CreateApplication",
        "codedeploy:CreateDeploymentGroup",
        "codedeploy:CreateDeployment",
        "codedeploy:GetDeployment",
        "codedeploy:GetDeploymentConfig",
        "codedeploy:StopDeployment",
    } <= allowed
    for statement in statements(execution):
        codedeploy = [a for a in as_list(statement["Action"]) if a.startswith("codedeploy:")]
        if not codedeploy:
            continue
        resource = statement["Resource"]
        if resource == "*":
            # the one action without resource-level permissions
            assert codedeploy == ["codedeploy:StopDeployment"], statement["Sid"]
        else:
            assert stack in resource["Fn::Sub"] or resource["Fn::Sub"].endswith(
                ":deploymentconfig:CodeDeployDefault.Lambda*"
            ), statement["Sid"]
    # No managed policy at all: CodeDeployRole's grants, and those of API Gateway's logging
    # role, are written out in template.yaml
    assert statements_allowing(execution, "iam:AttachRolePolicy") == []
    passed = {
        s["Condition"]["StringEquals"]["iam:PassedToService"]: s["Resource"]
        for s in statements(execution)
        if s["Effect"] == "Allow" and s["Action"] == "iam:PassRole"
    }
    stack_roles = {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${AppStackName}-*"}
    # Each of the stack's roles to the one service that assumes it: API Gateway's logging role
    # goes to the region's API Gateway account setting (ApiGatewayLogsRole=create).
    assert passed == {
        "lambda.amazonaws.com": stack_roles,
        "scheduler.amazonaws.com": stack_roles,
        "codedeploy.amazonaws.com": stack_roles,
        "apigateway.amazonaws.com": stack_roles,
    }
