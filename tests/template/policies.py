"""Reading IAM policy statements in a template: shared by the runtime roles' matrix
(test_iam_matrix.py) and the pipeline's roles and boundary (test_pipeline_permissions.py)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any


def as_list(value: Any) -> list[Any]:
    """A policy field that may be one value or a list (Action, Resource, a principal)."""
    return value if isinstance(value, list) else [value]


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
