"""local.rotation drives the four rotation steps the way Secrets Manager does, on moto."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from local import moto_fixes
from local.cfn import load_template
from local.emulator import in_process_aws
from local.rotation import (
    LOCAL_KEY_CACHE_SECONDS,
    RotationError,
    after_rotation,
    rotate,
    schedules_from_template,
)
from local.stack import parse_args


@pytest.fixture
def secrets() -> Iterator[Any]:
    patched_here = moto_fixes.apply()
    try:
        with in_process_aws("unit-tests"):
            yield boto3.client("secretsmanager", region_name="us-east-1")
    finally:
        if patched_here:  # leave it to whoever else applied it
            moto_fixes.remove()


def unique_name() -> str:
    # moto keeps state while another mock_aws (e.g. a session fixture) is active.
    return f"signing-{uuid.uuid4().hex}"


class RecordingRotation:
    """A minimal rotation function, as AWS's samples write one, that records what it saw."""

    def __init__(self, client: Any, fail_at: str | None = None) -> None:
        self.client = client
        self.fail_at = fail_at
        self.steps: list[str] = []
        self.stages_at_create: list[str] = []

    def __call__(self, event: dict[str, Any]) -> None:
        step, arn, token = event["Step"], event["SecretId"], event["ClientRequestToken"]
        self.steps.append(step)
        if step == self.fail_at:
            raise RuntimeError("step failed")
        stages = self.client.describe_secret(SecretId=arn)["VersionIdsToStages"]
        if step == "createSecret":
            self.stages_at_create = stages.get(token, [])
            self.client.put_secret_value(
                SecretId=arn,
                ClientRequestToken=token,
                SecretString='{"kid": "new"}',
                VersionStages=["AWSPENDING"],
            )
        elif step == "finishSecret":
            current = next(v for v, s in stages.items() if "AWSCURRENT" in s)
            self.client.update_secret_version_stage(
                SecretId=arn,
                VersionStage="AWSCURRENT",
                MoveToVersionId=token,
                RemoveFromVersionId=current,
            )


def test_rotation_runs_the_four_steps_in_order_and_the_new_value_becomes_current(
    secrets: Any,
) -> None:
    # Given
    arn = secrets.create_secret(Name=unique_name(), SecretString="{}")["ARN"]
    function = RecordingRotation(secrets)

    # When
    token = rotate(arn, function, rotation_days=30)

    # Then
    assert function.steps == ["createSecret", "setSecret", "testSecret", "finishSecret"]
    assert function.stages_at_create == ["AWSPENDING"]  # recorded before createSecret, as AWS does
    assert secrets.get_secret_value(SecretId=arn)["SecretString"] == '{"kid": "new"}'
    described = secrets.describe_secret(SecretId=arn)
    assert described["VersionIdsToStages"][token] == ["AWSCURRENT"]
    assert described["RotationEnabled"] is True


def test_a_second_rotation_is_not_refused_as_still_in_progress(secrets: Any) -> None:
    arn = secrets.create_secret(Name=unique_name(), SecretString="{}")["ARN"]
    rotate(arn, RecordingRotation(secrets))

    second = rotate(arn, RecordingRotation(secrets))

    assert secrets.describe_secret(SecretId=arn)["VersionIdsToStages"][second] == ["AWSCURRENT"]


def test_a_failing_step_raises_and_leaves_the_current_value(secrets: Any) -> None:
    arn = secrets.create_secret(Name=unique_name(), SecretString="{}")["ARN"]

    with pytest.raises(RotationError, match="testSecret"):
        rotate(arn, RecordingRotation(secrets, fail_at="testSecret"))

    assert secrets.get_secret_value(SecretId=arn)["SecretString"] == "{}"


def test_the_template_schedules_the_signing_key_rotation_every_30_days_by_default() -> None:
    (schedule,) = schedules_from_template(load_template())

    assert (schedule.secret, schedule.function, schedule.days) == (
        "SigningKeySecret",
        "RotateSigningKeyFunction",
        30,
    )


def test_make_rotate_says_how_long_the_running_stack_keeps_the_old_key() -> None:
    # make run starts the stack with this cache time; the message states it, not "minutes"
    assert parse_args([]).key_cache_seconds == LOCAL_KEY_CACHE_SECONDS == 5

    message = after_rotation(LOCAL_KEY_CACHE_SECONDS)

    assert "cache keys for 5 s (on AWS, 300 s)" in message
    assert "minutes" not in message
