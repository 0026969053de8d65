"""Rotates a secret the way Secrets Manager does: RotateSecret, then the function's four steps.

`python -m local.rotation` rotates the signing key of a running local stack (`make run`).
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import ClientError

from local.cfn import load_deployed_template, resources_of_type
from local.intrinsics import REGION, Resolver

STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")
# How long the local stack's functions cache keys (`make run`, --key-cache-seconds), instead of
# the 300 s of AWS (POWERTOOLS_PARAMETERS_MAX_AGE): short, so a rotation shows at once.
LOCAL_KEY_CACHE_SECONDS = 5
ROTATION_SCHEDULE = "AWS::SecretsManager::RotationSchedule"

Invoke = Callable[[dict[str, Any]], Any]


class RotationError(RuntimeError):
    """A step of the rotation function failed; the secret keeps its current version."""


@dataclass(frozen=True)
class RotationSchedule:
    """One AWS::SecretsManager::RotationSchedule: which secret, which function, how often."""

    logical_id: str
    secret: str
    function: str
    days: int | None


def schedules_from_template(template: dict[str, Any]) -> list[RotationSchedule]:
    schedules = []
    for logical_id, resource in resources_of_type(template, ROTATION_SCHEDULE).items():
        properties = resource["Properties"]
        secret = properties["SecretId"]["Ref"]
        function = properties["RotationLambdaARN"]["Fn::GetAtt"][0]
        schedules.append(
            RotationSchedule(logical_id, secret, function, _days(template, properties))
        )
    return schedules


def _days(template: dict[str, Any], properties: Mapping[str, Any]) -> int | None:
    rules = Resolver(template, "schedule").resolve(properties.get("RotationRules", {})) or {}
    if "AutomaticallyAfterDays" in rules:
        return int(rules["AutomaticallyAfterDays"])
    match = re.fullmatch(r"rate\((\d+) days?\)", str(rules.get("ScheduleExpression", "")))
    return int(match.group(1)) if match else None


def default_handler() -> Invoke:
    """rotate_signing_key.app.lambda_handler, for callers that have functions/ on sys.path."""
    module = importlib.import_module("rotate_signing_key.app")
    handler = module.lambda_handler

    def invoke(event: dict[str, Any]) -> Any:
        from local.lambda_runtime import LambdaContext

        return handler(event, LambdaContext("rotate-signing-key", 512, 30))

    return invoke


def rotate(
    secret_id: str,
    invoke: Invoke | None = None,
    *,
    rotation_lambda_arn: str | None = None,
    rotation_days: int | None = None,
) -> str:
    """Rotate one secret; returns the new version id (the ClientRequestToken).

    Secrets Manager first records the new version id with the AWSPENDING label (no value yet),
    then invokes the function once per step. moto does the recording in RotateSecret, then tries
    to invoke the function through its own Lambda service, which has no such function here and
    answers ResourceNotFoundException: so this driver invokes the steps itself, in process.
    """
    invoke = invoke or default_handler()
    secrets = boto3.client("secretsmanager", region_name=REGION)
    token = str(uuid.uuid4())
    secret_arn = secrets.describe_secret(SecretId=secret_id)["ARN"]
    request: dict[str, Any] = {
        "SecretId": secret_arn,
        "ClientRequestToken": token,
        "RotationLambdaARN": rotation_lambda_arn or _placeholder_function_arn(),
    }
    if rotation_days:
        request["RotationRules"] = {"AutomaticallyAfterDays": rotation_days}
    try:
        secrets.rotate_secret(**request)
    except ClientError as error:
        if error.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
    for step in STEPS:
        try:
            invoke({"Step": step, "SecretId": secret_arn, "ClientRequestToken": token})
        except Exception as error:
            raise RotationError(f"rotation step {step} failed: {type(error).__name__}") from error
    stages = secrets.describe_secret(SecretId=secret_arn)["VersionIdsToStages"].get(token, [])
    if "AWSCURRENT" not in stages:
        raise RotationError("finishSecret returned but the new version is not AWSCURRENT")
    if "AWSPENDING" in stages:
        # Both end states are valid in AWS; moto takes AWSPENDING on the AWSCURRENT version for
        # a rotation still in progress and would refuse the next one.
        secrets.update_secret_version_stage(
            SecretId=secret_arn, VersionStage="AWSPENDING", RemoveFromVersionId=token
        )
    return token


def _placeholder_function_arn() -> str:
    return f"arn:aws:lambda:{REGION}:123456789012:function:local-rotation"


def rotate_all(
    template: dict[str, Any],
    secret_arns: Mapping[str, str],
    functions: Mapping[str, Any],
) -> dict[str, str]:
    """Run every rotation schedule of the template once; secret logical id → new version id.

    `functions` maps a logical id to a local.lambda_runtime.LocalFunction.
    """
    versions = {}
    for schedule in schedules_from_template(template):
        function = functions[schedule.function]
        versions[schedule.secret] = rotate(
            secret_arns[schedule.secret],
            function.invoke,
            rotation_lambda_arn=function.context().invoked_function_arn,
            rotation_days=schedule.days,
        )
    return versions


def after_rotation(key_cache_seconds: int) -> str:
    """What the running stack does next, for `make rotate` to say."""
    return (
        f"The local stack's functions cache keys for {key_cache_seconds} s (on AWS, 300 s): "
        f"within {key_cache_seconds} s, new tokens are signed with the new key and the JWKS "
        "lists both keys. Tokens issued before keep paying."
    )


def main(argv: list[str] | None = None) -> int:
    from local.emulator import use_local_aws
    from local.lambda_runtime import functions_from_template, put_layers_on_path
    from local.provision import STACK_NAME, discover_stack

    parser = argparse.ArgumentParser(
        prog="python -m local.rotation",
        description="Rotate the signing key of a running local stack (make run).",
    )
    parser.add_argument("--moto-port", type=int, default=5005, help="the stack's AWS emulator")
    parser.add_argument("--moto-host", default="127.0.0.1")
    parser.add_argument("--stack-name", default=STACK_NAME)
    parser.add_argument(
        "--key-cache-seconds",
        type=int,
        default=LOCAL_KEY_CACHE_SECONDS,
        help="what the running stack was started with (make run: %(default)s)",
    )
    args = parser.parse_args(argv)

    use_local_aws(f"http://{args.moto_host}:{args.moto_port}")
    template = load_deployed_template()
    try:
        stack = discover_stack(args.stack_name, template)
    except Exception as error:  # noqa: BLE001 - any failure here means "no stack there"
        print(
            f"error: no local stack answered on {args.moto_host}:{args.moto_port} "
            f"({type(error).__name__}). Start one with `make run`.",
            file=sys.stderr,
        )
        return 2
    os.environ.update(stack.environment)
    put_layers_on_path(template)
    functions = functions_from_template(template, args.stack_name)
    versions = rotate_all(template, stack.resolver.refs, functions)
    for secret, version in versions.items():
        print(f"rotated {secret}: new AWSCURRENT version {version}")
    print(after_rotation(args.key_cache_seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
