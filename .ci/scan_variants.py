"""Writes template.yaml and deploy/github-oidc-role.yaml with every condition on, for `make scan`.

checkov skips a resource whose Condition is false with the parameters' defaults, so the optional
parts of the stack (the checkout page, a custom domain, Bot Control, the e-mail subscription, ...)
were never scanned. This copies each template with only the Default lines of some Parameters
changed (template.yaml's line for line, so checkov's line numbers stay its own; a parameter
without a Default gets one under its Type), and checks that every condition in Conditions is then
true and that each default is a value the parameter accepts.

    python .ci/scan_variants.py OUTPUT_DIR   # prints the path of each variant written

Runs with .venv's Python (PyYAML, local.cfn, local.intrinsics).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from local.cfn import TEMPLATE_PATH, load_template  # noqa: E402
from local.intrinsics import Resolver  # noqa: E402

# Values that turn every condition on; none of them is ever deployed. AlarmTopicArn stays empty:
# the stack's own topic (CreatesAlarmTopic) is the only way SubscribesAlarmEmail is true, and no
# condition is true only with a given topic.
ALL_CONDITIONS_ON: dict[str, str] = {
    "LocalEndpointUrl": "http://127.0.0.1:5005",
    "AlarmTopicArn": "",
    "AlarmEmail": "oncall@cardtokens.scan",
    "PermissionsBoundaryArn": "arn:aws:iam::210987654321:policy/card-tokens-boundary",
    "IssueTokenReservedConcurrency": "20",
    "ProcessPaymentReservedConcurrency": "20",
    "CheckoutPage": "enabled",
    "DomainName": "api.cardtokens.scan",
    "CertificateArn": (
        "arn:aws:acm:us-east-1:210987654321:certificate/0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d"
    ),
    "ApiGatewayLogsRole": "create",
    "WafBotControl": "enabled",
    "Processor": "forward",
    "ForwardAllowedHosts": "api.processor.cardtokens.scan",
    # Not behind a condition, but optional settings all the same.
    "CorsOrigins": "https://shop.cardtokens.scan",
    "DeploymentStrategy": "Canary10Percent5Minutes",
    "SnapStart": "PublishedVersions",
}

# deploy/github-oidc-role.yaml: the provider is created, and the e2e role exists for staging only.
DEPLOY_ROLE_ALL_CONDITIONS_ON: dict[str, str] = {
    "CreateOidcProvider": "true",
    "GitHubEnvironment": "staging",
}

DEPLOY_ROLE_PATH = REPO_ROOT / "deploy" / "github-oidc-role.yaml"

# Output file name → (source template, the parameter defaults that turn its conditions on).
VARIANTS: dict[str, tuple[Path, dict[str, str]]] = {
    "template-all-conditions.yaml": (TEMPLATE_PATH, ALL_CONDITIONS_ON),
    "github-oidc-role-all-conditions.yaml": (DEPLOY_ROLE_PATH, DEPLOY_ROLE_ALL_CONDITIONS_ON),
}

_PARAMETER = re.compile(r"^  ([A-Za-z0-9]+):\s*$")
_DEFAULT = re.compile(r"^    Default:.*$")
_TYPE = re.compile(r"^    Type:.*$")
_SECTION = re.compile(r"^[A-Za-z]")


def with_defaults(text: str, defaults: dict[str, str]) -> str:
    """template.yaml's text with the Default line of each named parameter replaced."""
    lines = text.split("\n")
    in_parameters, current = False, None
    replaced: set[str] = set()
    type_line: dict[str, int] = {}
    for index, line in enumerate(lines):
        if _SECTION.match(line):
            in_parameters, current = line.rstrip() == "Parameters:", None
            continue
        if not in_parameters:
            continue
        if match := _PARAMETER.match(line):
            current = match.group(1)
        elif current in defaults and _DEFAULT.match(line):
            lines[index] = f"    Default: {_quoted(defaults[current])}"
            replaced.add(current)
        elif current in defaults and _TYPE.match(line):
            type_line[current] = index
    missing = sorted(set(defaults) - replaced - set(type_line))
    if missing:
        raise ValueError(f"no parameter {', '.join(missing)} with a one-line Type or Default")
    # From the bottom up, so that the line numbers still to use stay right.
    for name, index in sorted(type_line.items(), key=lambda item: -item[1]):
        if name not in replaced:
            lines.insert(index + 1, f"    Default: {_quoted(defaults[name])}")
    return "\n".join(lines)


def _quoted(value: str) -> str:
    if value.isdigit():
        return value
    return '""' if value == "" else '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def problems(template: dict[str, Any]) -> list[str]:
    """Why a variant is not what `make scan` needs: a condition off, or a value refused."""
    found = []
    resolver = Resolver(template, "scan")
    for name in template.get("Conditions", {}):
        if not resolver.condition(name):
            found.append(f"condition {name} is false")
    for name, parameter in template.get("Parameters", {}).items():
        if "Default" not in parameter:
            continue  # given at deploy time; no condition here depends on it
        value = str(parameter["Default"])
        if "AllowedValues" in parameter and value not in map(str, parameter["AllowedValues"]):
            found.append(f"{name}={value!r} is not one of its AllowedValues")
        pattern = parameter.get("AllowedPattern")
        if pattern and not re.fullmatch(pattern, value):
            found.append(f"{name}={value!r} does not match its AllowedPattern")
        if parameter.get("Type") == "Number":
            number = float(value)
            if number < float(parameter.get("MinValue", number)):
                found.append(f"{name}={value} is below its MinValue")
            if number > float(parameter.get("MaxValue", number)):
                found.append(f"{name}={value} is above its MaxValue")
        if len(value) > int(parameter.get("MaxLength", len(value))):
            found.append(f"{name}={value!r} is longer than its MaxLength")
    return found


def write_variants(output_dir: Path) -> list[Path]:
    """Each variant under output_dir; ValueError if one is not every condition on."""
    output_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for file_name, (source, defaults) in VARIANTS.items():
        path = output_dir / file_name
        path.write_text(with_defaults(source.read_text(encoding="utf-8"), defaults), "utf-8")
        if found := problems(load_template(path)):
            raise ValueError(f"{path}: " + "; ".join(found))
        written.append(path)
    return written


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        paths = write_variants(Path(argv[0]))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
