"""Reading a template's references and IAM policy statements: shared by the runtime roles'
matrix (test_iam_matrix.py), the pipeline's roles and boundary (test_pipeline_permissions.py)
and the deploy rehearsal's update order (test_deploy_rehearsal.py)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any


def as_list(value: Any) -> list[Any]:
    """A policy field that may be one value or a list (Action, Resource, a principal)."""
    return value if isinstance(value, list) else [value]


_SUB_REFERENCE = re.compile(r"\$\{([A-Za-z0-9]+)(?:\.[A-Za-z0-9.]+)?\}")


def referenced_ids(value: Any) -> set[str]:
    """Logical ids an intrinsic points at (Ref, GetAtt, Sub), pseudo parameters left out."""
    if isinstance(value, list):
        return set().union(*(referenced_ids(item) for item in value))
    if not isinstance(value, dict):
        return set()
    if "Ref" in value:
        return set() if str(value["Ref"]).startswith("AWS::") else {value["Ref"]}
    if "Fn::GetAtt" in value:
        return {value["Fn::GetAtt"][0]}
    if "Fn::Sub" in value:
        sub = value["Fn::Sub"]
        text, variables = (sub[0], sub[1]) if isinstance(sub, list) else (sub, {})
        return set(_SUB_REFERENCE.findall(text)) | referenced_ids(list(variables.values()))
    return referenced_ids(list(value.values()))


# A log group CloudFormation names after the stack (no LogGroupName): "<stack>-<LogicalId>-<id>".
GENERATED_LOG_GROUP = re.compile(
    r"arn:\$\{AWS::Partition\}:logs:\$\{AWS::Region\}:\$\{AWS::AccountId\}:log-group:"
    r"\$\{AWS::StackName\}-([A-Za-z0-9]+)-\*"
)


def resource_targets(resource: Any, named: Callable[[Any], set[str]]) -> set[str]:
    """What one entry of a statement's Resource reaches: both branches of an Fn::If (the
    checkout page's grants), nothing for AWS::NoValue, the logical id a stack-named log group is
    named after; anything else as `named` reads it."""
    if isinstance(resource, dict) and "Fn::If" in resource:
        _, when_true, when_false = resource["Fn::If"]
        return resource_targets(when_true, named) | resource_targets(when_false, named)
    if resource == {"Ref": "AWS::NoValue"}:
        return set()
    sub = resource.get("Fn::Sub") if isinstance(resource, dict) else None
    generated = GENERATED_LOG_GROUP.fullmatch(sub) if isinstance(sub, str) else None
    if generated:
        return {generated[1]}
    return named(resource)
