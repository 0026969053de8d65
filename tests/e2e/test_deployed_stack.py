"""The e2e suite's deployed-stack path, without AWS: Outputs from a stubbed CloudFormation, and
SigV4 on exactly the IAM-authorized routes, checked by a recording server on loopback.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.stub import Stubber

from tests.e2e.stack_process import LOCAL_ONLY, DeployedStack, DeployedStackError, local_only_reason
from tests.support import REPO_ROOT

STACK = "card-tokens-staging"
API_URL = "https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com"
CREDENTIALS = Credentials(
    "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session-token"
)


def stack_description(outputs: dict[str, str], status: str = "UPDATE_COMPLETE") -> dict[str, Any]:
    return {
        "Stacks": [
            {
                "StackName": STACK,
                "StackId": f"arn:aws:cloudformation:eu-west-1:111122223333:stack/{STACK}/1",
                "CreationTime": "2026-11-28T10:00:00Z",
                "StackStatus": status,
                "Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in outputs.items()],
            }
        ]
    }


@pytest.fixture
def cloudformation() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client(
        "cloudformation",
        region_name="eu-west-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def test_the_url_and_names_come_from_the_stack_outputs(
    cloudformation: tuple[Any, Stubber],
) -> None:
    # Given a stack whose Outputs name its API and tables
    client, stubber = cloudformation
    outputs = {"ApiUrl": API_URL + "/", "PaymentTableName": "card-tokens-staging-Payment-1"}
    stubber.add_response("describe_stacks", stack_description(outputs), {"StackName": STACK})

    # When
    stack = DeployedStack.from_cloudformation(STACK, cloudformation=client, credentials=CREDENTIALS)

    # Then the base URL is ApiUrl, and the region to sign for is the API's own
    assert stack.base_url == API_URL
    assert stack.outputs["PaymentTableName"] == "card-tokens-staging-Payment-1"
    assert stack.region == "eu-west-1"


def test_a_stack_that_does_not_exist_fails_naming_it(cloudformation: tuple[Any, Stubber]) -> None:
    client, stubber = cloudformation
    stubber.add_client_error(
        "describe_stacks",
        service_error_code="ValidationError",
        service_message=f"Stack with id {STACK} does not exist",
        http_status_code=400,
    )

    with pytest.raises(DeployedStackError, match=f"AWS_SAM_STACK_NAME={STACK}.*does not exist"):
        DeployedStack.from_cloudformation(STACK, cloudformation=client, credentials=CREDENTIALS)


def test_a_stack_without_an_api_url_output_fails_naming_its_status(
    cloudformation: tuple[Any, Stubber],
) -> None:
    client, stubber = cloudformation
    stubber.add_response("describe_stacks", stack_description({}, status="CREATE_IN_PROGRESS"))

    with pytest.raises(DeployedStackError, match=r"no ApiUrl output.*CREATE_IN_PROGRESS"):
        DeployedStack.from_cloudformation(STACK, cloudformation=client, credentials=CREDENTIALS)


class Recorder(BaseHTTPRequestHandler):
    """Answers 201 {"token": …} to anything, and keeps what arrived."""

    seen: list[dict[str, Any]]

    def _record(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        self.seen.append(
            {
                "method": self.command,
                "path": self.path,
                "headers": {name.lower(): value for name, value in self.headers.items()},
                "body": body,
            }
        )
        answer = json.dumps({"token": "header.claims.signature", "payment_id": "pay_1"}).encode()
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    do_GET = do_POST = do_DELETE = _record

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []
    handler = type("BoundRecorder", (Recorder,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def signature_is_valid(request: dict[str, Any], base_url: str) -> bool:
    """Recompute SigV4 over what the server received, with the signer's own timestamp."""
    authorization = request["headers"]["authorization"]
    signed_names = authorization.split("SignedHeaders=")[1].split(",")[0].split(";")
    received = AWSRequest(
        method=request["method"],
        url=base_url + request["path"],
        data=request["body"],
        headers={name: request["headers"][name] for name in signed_names},
    )
    received.context["timestamp"] = request["headers"]["x-amz-date"]
    signer = SigV4Auth(CREDENTIALS, "execute-api", "eu-west-1")
    expected = signer.signature(
        signer.string_to_sign(received, signer.canonical_request(received)), received
    )
    return authorization.endswith(f"Signature={expected}")


def test_only_requests_to_payment_routes_carry_a_sigv4_signature(
    cloudformation: tuple[Any, Stubber], recorder: tuple[str, list[dict[str, Any]]]
) -> None:
    # Given a "deployed" stack whose ApiUrl is the recording server
    client, stubber = cloudformation
    base_url, seen = recorder
    stubber.add_response("describe_stacks", stack_description({"ApiUrl": base_url}))
    stack = DeployedStack.from_cloudformation(
        STACK, cloudformation=client, credentials=CREDENTIALS, region="eu-west-1"
    )

    # When the suite's usual calls go out
    token = stack.issue_token()
    stack.pay(token, idempotency_key="order-1234-attempt-1")
    stack.api.request("GET", "/payments/pay_1")
    stack.api.request("GET", "/.well-known/jwks.json")
    stack.api.request("DELETE", "/payments")  # no such route: API Gateway's 404, nothing to sign

    # Then the two payment routes are signed for execute-api in the API's region, validly
    by_route = {(request["method"], request["path"]): request for request in seen}
    assert list(by_route) == [
        ("POST", "/tokens"),
        ("POST", "/payments"),
        ("GET", "/payments/pay_1"),
        ("GET", "/.well-known/jwks.json"),
        ("DELETE", "/payments"),
    ]
    for route in [("POST", "/payments"), ("GET", "/payments/pay_1")]:
        headers = by_route[route]["headers"]
        assert headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
        assert "/eu-west-1/execute-api/aws4_request" in headers["authorization"]
        assert headers["x-amz-security-token"] == "session-token"
        assert signature_is_valid(by_route[route], base_url), route
    assert "idempotency-key" in by_route[("POST", "/payments")]["headers"]["authorization"]
    # and the open routes carry no credentials at all
    for route in [("POST", "/tokens"), ("GET", "/.well-known/jwks.json"), ("DELETE", "/payments")]:
        headers = by_route[route]["headers"]
        assert not {"authorization", "x-amz-date", "x-amz-security-token"} & set(headers), route


def test_a_tampered_request_fails_the_signature_check() -> None:
    # The check above can fail: a body changed after signing no longer matches.
    request = AWSRequest(
        method="POST", url="http://127.0.0.1:1/payments", data=b"{}", headers={"a": "b"}
    )
    SigV4Auth(CREDENTIALS, "execute-api", "eu-west-1").add_auth(request)
    received = {
        "method": "POST",
        "path": "/payments",
        "headers": {name.lower(): value for name, value in request.headers.items()}
        | {"host": "127.0.0.1:1"},
        "body": b'{"amount": 1}',
    }

    assert not signature_is_valid(received, "http://127.0.0.1:1")


def test_every_local_only_entry_names_an_existing_test() -> None:
    # A renamed test would silently lose its skip reason; a deployed run would then fail on it.
    for module, function in LOCAL_ONLY:
        path = REPO_ROOT / "tests" / "e2e" / module
        if not path.exists():
            continue  # a module another change has not landed yet: nothing to skip
        if function is not None:
            assert f"def {function}(" in path.read_text(encoding="utf-8"), (module, function)
    assert local_only_reason("test_concurrency.py", "anything")
    assert local_only_reason("test_local_stack_flow.py", "test_malformed_json_is_400") is None
