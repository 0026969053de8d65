"""Signing-key rotation: tokens survive one rotation, not three; every step is retry-safe."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import jwcrypto.jwk
import jwcrypto.jwt
import pytest
from botocore.exceptions import ClientError

from card_tokens.aws import secretsmanager_client
from card_tokens.config import RotationSettings, TokenSettings
from card_tokens.key_rotation import SigningKeyRotation
from card_tokens.key_store import KEYS
from local.provision import LocalStack
from local.rotation import rotate
from tests.flows import Invoke, body, load_event, new_token, payment_event, token_event

STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")


@pytest.fixture(autouse=True)
def no_cached_keys() -> Iterator[None]:
    """Each test starts from the secrets' current keys, and leaves none cached for the next.

    The stack is the session's: a test that caches a key and then rotates would otherwise leave
    the next test (in any module) signing with a key one rotation old, or of another algorithm.
    """
    KEYS.reset()
    yield
    KEYS.reset()


def rotation(stack: LocalStack, algorithm: str = "ES256") -> SigningKeyRotation:
    env = stack.environment
    return SigningKeyRotation(
        secretsmanager_client(),
        RotationSettings(
            token=TokenSettings(issuer=env["TOKEN_ISSUER"], audience=env["TOKEN_AUDIENCE"]),
            signing_key_secret_id=env["SIGNING_KEY_SECRET_ID"],
            verification_keys_secret_id=env["VERIFICATION_KEYS_SECRET_ID"],
            algorithm=algorithm,
        ),
    )


def start_rotation(stack: LocalStack) -> str:
    """What Secrets Manager does before the first step: stage a new version as AWSPENDING."""
    token = str(uuid.uuid4())
    client = boto3.client("secretsmanager")
    # moto stages the version, then cannot invoke the function: we run the steps ourselves.
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.rotate_secret(
            SecretId=stack.environment["SIGNING_KEY_SECRET_ID"],
            ClientRequestToken=token,
            RotationLambdaARN="arn:aws:lambda:us-east-1:123456789012:function:rotation",
        )
    return token


def finish_cleanup(stack: LocalStack, token: str) -> None:
    # moto keeps AWSPENDING on the promoted version and would refuse the next rotation.
    boto3.client("secretsmanager").update_secret_version_stage(
        SecretId=stack.environment["SIGNING_KEY_SECRET_ID"],
        VersionStage="AWSPENDING",
        RemoveFromVersionId=token,
    )


def current_kid(stack: LocalStack) -> str:
    value = boto3.client("secretsmanager").get_secret_value(
        SecretId=stack.environment["SIGNING_KEY_SECRET_ID"], VersionStage="AWSCURRENT"
    )
    kid: str = json.loads(value["SecretString"])["kid"]
    return kid


def published_kids(jwks: Invoke) -> list[str]:
    KEYS.reset()
    return [key["kid"] for key in body(jwks(load_event("jwks.json")))["keys"]]


def test_a_token_issued_before_one_rotation_still_pays(
    issue: Invoke, payments: Invoke, stack: LocalStack
) -> None:
    token = new_token(issue)
    rotate(stack.environment["SIGNING_KEY_SECRET_ID"])
    KEYS.reset()  # as if every cache had expired
    assert payments(payment_event(token))["statusCode"] == 201


def test_after_two_more_rotations_the_old_key_is_no_longer_accepted(
    issue: Invoke, payments: Invoke, stack: LocalStack
) -> None:
    KEYS.reset()
    token = new_token(issue)
    for _ in range(2):
        rotate(stack.environment["SIGNING_KEY_SECRET_ID"])
    KEYS.reset()
    response = payments(payment_event(token))
    assert response["statusCode"] == 401
    assert body(response)["error"]["code"] == "invalid_token"


def test_the_jwks_lists_current_and_previous_keys_after_a_rotation(
    jwks: Invoke, stack: LocalStack
) -> None:
    before = current_kid(stack)
    rotate(stack.environment["SIGNING_KEY_SECRET_ID"])
    after = current_kid(stack)
    assert before != after
    assert sorted(published_kids(jwks)) == sorted([before, after])


def test_every_step_can_run_twice_without_harm(
    issue: Invoke, payments: Invoke, jwks: Invoke, stack: LocalStack
) -> None:
    KEYS.reset()
    token_before = new_token(issue)
    token = start_rotation(stack)
    steps = rotation(stack)
    for step in STEPS:
        steps.run(step, stack.environment["SIGNING_KEY_SECRET_ID"], token)
        steps.run(step, stack.environment["SIGNING_KEY_SECRET_ID"], token)
    finish_cleanup(stack, token)
    KEYS.reset()
    assert len(published_kids(jwks)) == 2
    assert payments(payment_event(token_before))["statusCode"] == 201
    assert payments(payment_event(new_token(issue)))["statusCode"] == 201


@contextmanager
def failing_secrets_call(operation: str) -> Iterator[None]:
    client = secretsmanager_client()
    event = f"before-call.secrets-manager.{operation}"

    def fail(**_: Any) -> None:
        raise ClientError({"Error": {"Code": "InternalServiceError", "Message": "x"}}, operation)

    client.meta.events.register(event, fail)
    try:
        yield
    finally:
        client.meta.events.unregister(event, fail)


@pytest.mark.parametrize(
    ("failing_step", "operation"),
    [
        ("createSecret", "PutSecretValue"),
        ("setSecret", "PutSecretValue"),
        ("testSecret", "GetSecretValue"),
        ("finishSecret", "UpdateSecretVersionStage"),
    ],
)
def test_a_failed_step_leaves_the_previous_key_current_and_tokens_issuing(
    issue: Invoke, payments: Invoke, stack: LocalStack, failing_step: str, operation: str
) -> None:
    secret_id = stack.environment["SIGNING_KEY_SECRET_ID"]
    kid_before = current_kid(stack)
    token = start_rotation(stack)
    steps = rotation(stack)
    for step in STEPS:
        if step == failing_step:
            with failing_secrets_call(operation), pytest.raises(ClientError):
                steps.run(step, secret_id, token)
            break
        steps.run(step, secret_id, token)
    # The previous key is still current, and tokens still issue and pay.
    assert current_kid(stack) == kid_before
    KEYS.reset()
    assert payments(payment_event(new_token(issue)))["statusCode"] == 201
    # Secrets Manager retries the rotation with the same token: it completes.
    for step in STEPS[STEPS.index(failing_step) :]:
        steps.run(step, secret_id, token)
    finish_cleanup(stack, token)
    assert current_kid(stack) != kid_before


def test_rs256_keys_rotate_in_and_their_tokens_pay(
    issue: Invoke, payments: Invoke, stack: LocalStack
) -> None:
    secret_id = stack.environment["SIGNING_KEY_SECRET_ID"]
    token = start_rotation(stack)
    steps = rotation(stack, "RS256")
    for step in STEPS:
        steps.run(step, secret_id, token)
    finish_cleanup(stack, token)
    KEYS.reset()
    card_token = new_token(issue)
    header = json.loads(jwcrypto.common.base64url_decode(card_token.split(".")[0]))
    assert header["alg"] == "RS256"
    assert payments(payment_event(card_token))["statusCode"] == 201
    rotate(secret_id)  # back to the template's ES256 for the other tests


def test_an_independent_jose_library_verifies_tokens_from_the_jwks_alone(
    issue: Invoke, jwks: Invoke, stack: LocalStack
) -> None:
    # Given only the public JWKS document, as any relying party would fetch it
    KEYS.reset()
    document = jwks(load_event("jwks.json"))["body"]
    keyset = jwcrypto.jwk.JWKSet.from_json(document)
    token = body(issue(token_event()))["token"]
    # When jwcrypto verifies the token (it picks the key by kid)
    verified = jwcrypto.jwt.JWT(
        jwt=token,
        key=keyset,
        algs=["ES256", "RS256"],
        expected_type="JWS",
        check_claims={
            "iss": stack.environment["TOKEN_ISSUER"],
            "aud": stack.environment["TOKEN_AUDIENCE"],
            "exp": None,
        },
    )
    # Then the claims are ours, and a tampered token fails there too
    claims = json.loads(verified.claims)
    assert claims["iss"] == stack.environment["TOKEN_ISSUER"]
    header, payload, signature = token.split(".")
    # (with a key set, jwcrypto reports "no key verifies this" as JWTMissingKey)
    with pytest.raises(jwcrypto.jwt.JWTMissingKey):
        jwcrypto.jwt.JWT(jwt=f"{header}.{payload}.{signature[::-1]}", key=keyset, algs=["ES256"])
