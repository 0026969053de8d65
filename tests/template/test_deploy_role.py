"""deploy/github-oidc-role.yaml: the pipeline's roles trust one GitHub environment, and no more."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from local.cfn import load_template

pytestmark = pytest.mark.template

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
    found: set[str] = set()
    for statement in statements(role):
        action = statement["Action"]
        found.update([action] if isinstance(action, str) else action)
    return found


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
    (pass_role,) = [s for s in statements(deploy) if s["Action"] == "iam:PassRole"]
    assert pass_role["Resource"] == {"Fn::GetAtt": ["CloudFormationExecutionRole", "Arn"]}
    assert pass_role["Condition"] == {
        "StringEquals": {"iam:PassedToService": "cloudformation.amazonaws.com"}
    }


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
