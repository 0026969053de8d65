"""Resolves CloudFormation intrinsics in template.yaml against the local stack's physical ids."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

ACCOUNT_ID = "123456789012"  # moto's default account
REGION = "us-east-1"

_SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")
_NO_VALUE = object()


class UnresolvableError(ValueError):
    """The template uses an intrinsic, or refers to a resource, the local stack does not have."""


@dataclass
class Resolver:
    """Ref and GetAtt values of the local resources, plus the template's parameters and conditions.

    `refs` maps a logical id to what `Ref` returns for it (table name, secret ARN, ...);
    `attributes` maps "LogicalId.Attribute" to what `Fn::GetAtt` returns.
    """

    template: dict[str, Any]
    stack_name: str
    refs: dict[str, str] = field(default_factory=dict)
    attributes: dict[str, str] = field(default_factory=dict)

    def pseudo_parameters(self) -> dict[str, str]:
        return {
            "AWS::StackName": self.stack_name,
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackId": (
                f"arn:aws:cloudformation:{REGION}:{ACCOUNT_ID}:stack/{self.stack_name}/local"
            ),
        }

    def parameter_default(self, name: str) -> str:
        parameter = self.template.get("Parameters", {}).get(name)
        if parameter is None or "Default" not in parameter:
            raise UnresolvableError(f"parameter {name} has no Default to use locally")
        return _as_string(parameter["Default"])

    def ref(self, name: str) -> str:
        if name in self.pseudo_parameters():
            return self.pseudo_parameters()[name]
        if name in self.template.get("Parameters", {}):
            return self.parameter_default(name)
        if name in self.refs:
            return self.refs[name]
        raise UnresolvableError(f"Ref {name}: the local stack has no such resource")

    def get_att(self, logical_id: str, attribute: str) -> str:
        key = f"{logical_id}.{attribute}"
        if key not in self.attributes:
            raise UnresolvableError(f"Fn::GetAtt {key}: the local stack has no such attribute")
        return self.attributes[key]

    def resolve(self, value: Any) -> Any:
        """The value with every intrinsic replaced; AWS::NoValue drops the key or item."""
        resolved = self._resolve(value)
        return None if resolved is _NO_VALUE else resolved

    def _resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            items = [self._resolve(item) for item in value]
            return [item for item in items if item is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, argument), *_ = value.items()
            if key == "Ref":
                return _NO_VALUE if argument == "AWS::NoValue" else self.ref(argument)
            if key.startswith("Fn::") or key == "Condition":
                return self._function(key, argument)
        resolved = {key: self._resolve(item) for key, item in value.items()}
        return {key: item for key, item in resolved.items() if item is not _NO_VALUE}

    def _function(self, name: str, argument: Any) -> Any:
        if name == "Fn::GetAtt":
            logical_id, attribute = argument
            return self.get_att(logical_id, attribute)
        if name == "Fn::Sub":
            return self._sub(argument)
        if name == "Fn::Join":
            delimiter, items = argument
            return delimiter.join(_as_string(item) for item in self._resolve(items))
        if name == "Fn::Split":  # the processor secrets' names take the stack id's last part
            delimiter, text = argument
            return _as_string(self._resolve(text)).split(delimiter)
        if name == "Fn::Select":
            index, items = argument
            return self._resolve(items)[int(self._resolve(index))]
        if name == "Fn::If":
            condition, when_true, when_false = argument
            return self._resolve(when_true if self.condition(condition) else when_false)
        if name in ("Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or", "Condition"):
            return self._evaluate(name, argument)
        raise UnresolvableError(f"{name} is not supported by the local stack")

    def condition(self, name: str) -> bool:
        conditions = self.template.get("Conditions", {})
        if name not in conditions:
            raise UnresolvableError(f"condition {name} is not defined")
        return bool(self._resolve(conditions[name]))

    def _evaluate(self, name: str, argument: Any) -> bool:
        if name == "Condition":
            return self.condition(argument)
        if name == "Fn::Equals":
            left, right = (self._resolve(item) for item in argument)
            return _as_string(left) == _as_string(right)
        values = [bool(self._resolve(item)) for item in argument]
        if name == "Fn::Not":
            return not values[0]
        return all(values) if name == "Fn::And" else any(values)

    def _sub(self, argument: Any) -> str:
        if isinstance(argument, list):
            text, variables = argument[0], dict(self._resolve(argument[1]))
        else:
            text, variables = argument, {}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return _as_string(variables[name])
            if "." in name:
                logical_id, attribute = name.split(".", 1)
                return self.get_att(logical_id, attribute)
            return self.ref(name)

        return _SUB_VARIABLE.sub(replace, str(text)).replace("${!", "${")


def _as_string(value: Any) -> str:
    """How CloudFormation turns a scalar into a string (booleans lower-case)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
