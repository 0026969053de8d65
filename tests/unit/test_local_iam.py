"""The local gateway's AWS_IAM: SigV4 verified against the local users' credentials file, the
signer in requestContext.identity, API Gateway's 403 for a signature it would refuse."""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.credentials import Credentials

from card_tokens_client.api import USER_AGENT
from card_tokens_client.signing import SIGNED_ROUTES, RequestSigner
from local.cfn import load_deployed_template
from local.gateway import LocalRestApi
from local.http_api import Route, routes_from_template
from local.iam import (
    BAD_SIGNATURE,
    EXPIRED_SIGNATURE,
    INCOMPLETE_SIGNATURE,
    UNKNOWN_KEY,
    CredentialsFile,
    IamAuthorizer,
    LocalUser,
    SignatureRefused,
    new_local_user,
    user_arn,
    verify_signature,
)
from local.intrinsics import ACCOUNT_ID, REGION

BASE_URL = "http://127.0.0.1:3000"
ROUTES = [
    Route("POST", "/payments", "Pay", "AWS_IAM"),
    Route("GET", "/payments/{payment_id}", "Pay", "AWS_IAM"),
    Route("POST", "/tokens", "Issue"),
]
BODY = b'{"token": "t", "amount": 1999, "currency": "EUR"}'


def identity_echo(event: dict[str, Any]) -> dict[str, Any]:
    return {"statusCode": 200, "body": json.dumps(event["requestContext"]["identity"])}


@pytest.fixture
def credentials(tmp_path: Path) -> CredentialsFile:
    return CredentialsFile(tmp_path / "credentials")


@pytest.fixture
def shop(credentials: CredentialsFile) -> LocalUser:
    user = new_local_user("card-tokens-shop")
    credentials.add(user)
    credentials.add(new_local_user("card-tokens-demo"))
    return user


def gateway(credentials: CredentialsFile, default_user: str | None = None) -> LocalRestApi:
    authorize = IamAuthorizer(credentials, REGION, default_user)
    return LocalRestApi(ROUTES, {"Pay": identity_echo, "Issue": identity_echo}, authorize=authorize)


def signed_headers(
    user: LocalUser,
    method: str,
    path: str,
    body: bytes | None,
    *,
    region: str = REGION,
    secret: str | None = None,
) -> list[tuple[str, str]]:
    """The headers the shipped client sends, signed as it signs them (a profile's keys)."""
    keys = Credentials(user.access_key_id, secret or user.secret_access_key)
    signer = RequestSigner(BASE_URL, region, credentials=keys)
    headers = {"Accept": "application/json", "User-Agent": USER_AGENT, "Content-Type": "x/y"}
    signed = signer.sign(method, BASE_URL + path, headers, body)
    return [("Host", "127.0.0.1:3000"), *signed.items()]


def send(
    api: LocalRestApi, method: str, path: str, headers: list[tuple[str, str]], body: bytes | None
) -> tuple[int, dict[str, Any]]:
    response, _ = api.handle(
        method=method, target=path, headers=headers, body=body, source_ip="127.0.0.1"
    )
    return response.status, json.loads(response.body)


@pytest.mark.parametrize(
    ("method", "path", "body"), [("POST", "/payments", BODY), ("GET", "/payments/pay_1", None)]
)
def test_a_signed_request_names_its_signer_as_api_gateway_does(
    credentials: CredentialsFile, shop: LocalUser, method: str, path: str, body: bytes | None
) -> None:
    status, identity = send(
        gateway(credentials), method, path, signed_headers(shop, method, path, body), body
    )

    assert status == 200
    assert identity["userArn"] == f"arn:aws:iam::{ACCOUNT_ID}:user/card-tokens-shop"
    assert identity["accountId"] == ACCOUNT_ID
    assert identity["accessKey"] == shop.access_key_id
    assert identity["caller"] == identity["user"] == shop.user_id
    assert shop.user_id.startswith("AIDA")
    assert len(shop.user_id) == 20


def other_secret(user: LocalUser) -> list[tuple[str, str]]:
    return signed_headers(user, "POST", "/payments", BODY, secret="not-" + user.secret_access_key)


def unknown_key(user: LocalUser) -> list[tuple[str, str]]:
    stranger = new_local_user("card-tokens-stranger")  # never written to the file
    return signed_headers(stranger, "POST", "/payments", BODY)


def other_region(user: LocalUser) -> list[tuple[str, str]]:
    return signed_headers(user, "POST", "/payments", BODY, region="eu-west-1")


def not_sigv4(user: LocalUser) -> list[tuple[str, str]]:
    return [("Host", "127.0.0.1:3000"), ("Authorization", "Bearer pk_abc")]


def dated(minutes: int) -> Any:
    def headers(user: LocalUser) -> list[tuple[str, str]]:
        when = (datetime.now(UTC) + timedelta(minutes=minutes)).strftime("%Y%m%dT%H%M%SZ")
        signed = signed_headers(user, "POST", "/payments", BODY)
        return [(n, when if n == "X-Amz-Date" else v) for n, v in signed]

    return headers


@pytest.mark.parametrize(
    ("forge", "message"),
    [
        (other_secret, BAD_SIGNATURE),
        (unknown_key, UNKNOWN_KEY),
        (other_region, BAD_SIGNATURE),
        (not_sigv4, INCOMPLETE_SIGNATURE),
        (dated(-6), EXPIRED_SIGNATURE),
        (dated(6), EXPIRED_SIGNATURE),
    ],
)
def test_a_signature_api_gateway_would_refuse_is_403_and_reaches_no_function(
    credentials: CredentialsFile, shop: LocalUser, forge: Any, message: str
) -> None:
    status, body = send(
        gateway(credentials, "card-tokens-demo"), "POST", "/payments", forge(shop), BODY
    )

    assert (status, body) == (403, {"message": message})
    assert shop.secret_access_key not in message


def test_a_body_changed_after_signing_is_refused(
    credentials: CredentialsFile, shop: LocalUser
) -> None:
    headers = signed_headers(shop, "POST", "/payments", BODY)

    status, body = send(
        gateway(credentials), "POST", "/payments", headers, BODY.replace(b"1999", b"9999")
    )

    assert (status, body) == (403, {"message": BAD_SIGNATURE})


@pytest.mark.parametrize(("minutes", "accepted"), [(-4, True), (4, True), (-6, False), (6, False)])
def test_the_gateways_clock_may_differ_from_the_signers_by_five_minutes(
    shop: LocalUser, minutes: int, accepted: bool
) -> None:
    headers = signed_headers(shop, "POST", "/payments", BODY)
    verify = functools.partial(
        verify_signature,
        method="POST",
        target="/payments",
        headers=headers,
        body=BODY,
        users={shop.access_key_id: shop},
        region=REGION,
        now=datetime.now(UTC) + timedelta(minutes=minutes),
    )

    if accepted:
        assert verify().user_arn == shop.arn
    else:
        with pytest.raises(SignatureRefused, match="Signature expired"):
            verify()


def test_an_unsigned_request_is_the_default_users_and_carries_no_access_key(
    credentials: CredentialsFile, shop: LocalUser
) -> None:
    status, identity = send(gateway(credentials, "card-tokens-demo"), "POST", "/payments", [], BODY)

    assert status == 200
    assert identity["userArn"] == user_arn("card-tokens-demo")
    assert identity["accessKey"] is None


def test_without_a_default_user_an_unsigned_request_is_anonymous(
    credentials: CredentialsFile, shop: LocalUser
) -> None:
    status, identity = send(gateway(credentials), "POST", "/payments", [], BODY)

    assert status == 200
    assert identity["userArn"] is None
    assert identity["caller"] is None


def test_open_routes_check_no_signature(credentials: CredentialsFile, shop: LocalUser) -> None:
    status, identity = send(gateway(credentials), "POST", "/tokens", not_sigv4(shop), BODY)

    assert status == 200
    assert identity["userArn"] is None


def test_a_user_added_to_the_file_signs_at_once_and_a_replaced_key_stops(
    credentials: CredentialsFile, shop: LocalUser
) -> None:
    api = gateway(credentials)
    old = signed_headers(shop, "POST", "/payments", BODY)
    credentials.add(new_local_user(shop.name))  # the same profile, new keys

    status, _ = send(api, "POST", "/payments", old, BODY)

    assert status == 403
    renewed = credentials.user(shop.name)
    assert renewed is not None
    assert (
        send(api, "POST", "/payments", signed_headers(renewed, "POST", "/payments", BODY), BODY)[0]
        == 200
    )


def test_the_credentials_file_is_a_profile_per_user_botocore_reads(
    credentials: CredentialsFile, shop: LocalUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.session import Session

    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials.path))
    loaded = Session(profile=shop.name).get_credentials()

    assert loaded is not None
    assert (loaded.access_key, loaded.secret_key) == (shop.access_key_id, shop.secret_access_key)
    assert shop.secret_access_key not in repr(shop)


def test_the_iam_routes_are_the_ones_the_client_signs() -> None:
    routes = routes_from_template(load_deployed_template())

    iam = {(route.method, route.path) for route in routes if route.authorizer == "AWS_IAM"}

    assert iam == {(route.method, route.path) for route in SIGNED_ROUTES}


def test_a_user_name_iam_would_refuse_is_refused() -> None:
    with pytest.raises(ValueError, match="not an IAM user name"):
        new_local_user("a shop")
