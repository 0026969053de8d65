"""card_tokens_client.signing: what is signed, in which region, and a signature AWS would accept."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import urllib.request
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.credentials import Credentials

from card_tokens_client.api import CardTokensApi
from card_tokens_client.signing import (
    LOCAL_REGION,
    SIGNED_ROUTES,
    RequestSigner,
    SigningError,
    is_loopback,
    needs_signature,
    region_from_host,
)
from local.cfn import load_template, resources_of_type
from local.http_api import Route
from local.intrinsics import REGION as local_region

DEPLOYED = "https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com"
KEY_ID = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
SESSION_TOKEN = "session-token-example"


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """Credentials from the environment only: no profile or config file of this machine."""
    for name in ("AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", SESSION_TOKEN)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def no_aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    for name in (
        "AWS_PROFILE",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


class CapturingOpener:
    """Stands in for urllib: keeps the request and answers 201 with a payment."""

    def __init__(self) -> None:
        self.requests: list[urllib.request.Request] = []

    def open(self, request: urllib.request.Request, timeout: float) -> Any:
        self.requests.append(request)
        response = io.BytesIO(json.dumps({"status": "approved"}).encode())
        response.status = 201  # type: ignore[attr-defined]
        return response


def sigv4_signature(request: urllib.request.Request, region: str, service: str) -> str:
    """The signature of `request` recomputed from scratch (AWS SigV4), as API Gateway checks it."""
    headers = {name.lower(): value for name, value in request.header_items()}
    url = urlsplit(request.full_url)
    headers["host"] = url.netloc
    authorization = headers["authorization"]
    signed_headers = authorization.split("SignedHeaders=")[1].split(",")[0]
    amz_date = headers["x-amz-date"]
    body = request.data if isinstance(request.data, bytes) else b""
    canonical_request = "\n".join(
        [
            request.get_method(),
            url.path or "/",
            url.query,
            *(f"{name}:{headers[name].strip()}" for name in signed_headers.split(";")),
            "",
            signed_headers,
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    string_to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            amz_date,
            scope,
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )
    key = f"AWS4{SECRET}".encode()
    for part in (amz_date[:8], region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


@pytest.mark.parametrize("host", ["127.0.0.1", "127.9.9.9", "::1", "localhost", "LOCALHOST"])
def test_loopback_hosts_are_recognised(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize(
    "host", ["10.0.0.1", "example.com", "a1b2.execute-api.eu-west-1.amazonaws.com"]
)
def test_other_hosts_are_not_loopback(host: str) -> None:
    assert not is_loopback(host)


def test_the_region_comes_from_an_execute_api_host() -> None:
    assert region_from_host("a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com") == "eu-west-1"
    assert region_from_host("abc.execute-api.cn-north-1.amazonaws.com.cn") == "cn-north-1"
    assert region_from_host("pay.example.com") is None


def test_on_this_machine_the_region_is_the_local_stacks() -> None:
    assert region_from_host("127.0.0.1") == LOCAL_REGION == local_region
    assert region_from_host("localhost") == LOCAL_REGION


def aws_iam_routes() -> list[Route]:
    """The Api events template.yaml puts behind AWS_IAM, read as API Gateway reads them."""
    routes = []
    functions = resources_of_type(load_template(), "AWS::Serverless::Function")
    for logical_id, function in functions.items():
        for event in function.get("Properties", {}).get("Events", {}).values():
            properties = event.get("Properties", {})
            authorizer = properties.get("Auth", {}).get("Authorizer")
            if event.get("Type") == "Api" and authorizer == "AWS_IAM":
                routes.append(
                    Route(str(properties["Method"]).upper(), properties["Path"], logical_id)
                )
    return routes


def test_the_signed_routes_are_the_templates_aws_iam_routes() -> None:
    # The client ships without the template: its rule is data, held to the template here.
    assert {(route.method, route.path) for route in aws_iam_routes()} == {
        (route.method, route.path) for route in SIGNED_ROUTES
    }


# "METHOD path" of requests after the base URL.
SIGNED = [
    "POST /payments",
    "GET /payments/pay_1",
    "GET /payments/pay_1?expand=card",
    "get /payments/x",
]
UNSIGNED = [
    "POST /tokens",
    "GET /.well-known/jwks.json",
    "DELETE /payments",  # no such route: API Gateway's own answer, nothing to sign
    "GET /payments",
    "GET /payments/",
    "GET /payments/pay_1/refunds",
    "POST /paymentsx",
]
REQUESTS = [(request, True) for request in SIGNED] + [(request, False) for request in UNSIGNED]


@pytest.mark.parametrize(("request_line", "signed"), REQUESTS)
def test_only_the_aws_iam_routes_are_signed(request_line: str, signed: bool) -> None:
    method, path = request_line.split(" ")
    assert needs_signature(method, path) is signed


@pytest.mark.parametrize(("request_line", "signed"), REQUESTS)
def test_the_client_and_the_local_gateway_match_a_request_to_the_same_route(
    request_line: str, signed: bool
) -> None:
    method, path = request_line.split(" ")
    raw_path = path.split("?")[0]
    assert (
        any(route.match(method.upper(), raw_path) is not None for route in aws_iam_routes())
        is signed
    )


def test_a_signed_payment_carries_a_sigv4_signature_that_verifies(aws_credentials: None) -> None:
    # Given a client of a deployed stack
    opener = CapturingOpener()
    api = CardTokensApi(DEPLOYED, RequestSigner(DEPLOYED), opener=opener)

    # When it pays
    api.pay("header.claims.signature", 1999, "EUR", "order-1", "key-1")

    # Then the request as sent verifies for execute-api in the URL's region, body included
    (request,) = opener.requests
    authorization = request.get_header("Authorization")
    assert authorization.startswith(f"AWS4-HMAC-SHA256 Credential={KEY_ID}/")
    assert "/eu-west-1/execute-api/aws4_request" in authorization
    assert authorization.endswith(
        "Signature=" + sigv4_signature(request, "eu-west-1", "execute-api")
    )
    assert request.get_header("X-amz-security-token") == SESSION_TOKEN
    signed_headers = authorization.split("SignedHeaders=")[1].split(",")[0].split(";")
    assert "idempotency-key" in signed_headers
    assert "content-type" in signed_headers


def test_a_signed_payment_lookup_verifies_too(aws_credentials: None) -> None:
    opener = CapturingOpener()
    api = CardTokensApi(DEPLOYED, RequestSigner(DEPLOYED), opener=opener)

    api.get_payment("pay_abc")

    (request,) = opener.requests
    assert request.get_method() == "GET"
    signature = sigv4_signature(request, "eu-west-1", "execute-api")
    assert request.get_header("Authorization").endswith("Signature=" + signature)


def test_tokens_and_jwks_are_never_signed(aws_credentials: None) -> None:
    opener = CapturingOpener()
    api = CardTokensApi(DEPLOYED, RequestSigner(DEPLOYED), opener=opener)

    api.jwks()

    assert opener.requests[0].get_header("Authorization") is None


def test_given_credentials_sign_without_the_default_chain(no_aws_credentials: None) -> None:
    # A merchant back end with credentials of its own (an assumed role), here on loopback: a
    # client given a signer signs, wherever the API is.
    opener = CapturingOpener()
    local = "http://127.0.0.1:3000"
    credentials = Credentials(KEY_ID, SECRET, SESSION_TOKEN)
    api = CardTokensApi(
        local, RequestSigner(local, "eu-west-1", credentials=credentials), opener=opener
    )

    api.pay("header.claims.signature", 1999, "EUR")

    (request,) = opener.requests
    assert request.get_header("Authorization").endswith(
        "Signature=" + sigv4_signature(request, "eu-west-1", "execute-api")
    )
    assert request.get_header("X-amz-security-token") == SESSION_TOKEN


def test_a_custom_domain_without_a_region_is_a_clear_error(aws_credentials: None) -> None:
    signer = RequestSigner("https://pay.example.com")

    with pytest.raises(SigningError, match="--region"):
        signer.region()


def test_the_region_option_wins_over_the_url(aws_credentials: None) -> None:
    assert RequestSigner(DEPLOYED, region="us-east-2").region() == "us-east-2"
    assert RequestSigner("https://pay.example.com", region="us-east-2").region() == "us-east-2"


def test_signing_without_credentials_says_how_to_provide_them(no_aws_credentials: None) -> None:
    signer = RequestSigner(DEPLOYED)

    with pytest.raises(SigningError, match="no AWS credentials") as raised:
        signer.sign("POST", DEPLOYED + "/payments", {}, b"{}")

    assert "--no-sign" in str(raised.value)


def test_an_unknown_profile_is_a_signing_error(no_aws_credentials: None) -> None:
    signer = RequestSigner(DEPLOYED, profile="no-such-profile")

    with pytest.raises(SigningError, match="no-such-profile"):
        signer.sign("POST", DEPLOYED + "/payments", {}, b"{}")
