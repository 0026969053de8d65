"""The whole flow over real HTTP against `python -m local.stack`."""

from __future__ import annotations

import re
import socket
import uuid

import pytest

from tests.cards import DECLINED_VISA, VISA
from tests.e2e.stack_process import RunningLocalStack, StackUnderTest


def tampered(token: str) -> str:
    header, claims, signature = token.split(".")
    middle = len(signature) // 2
    flipped = "B" if signature[middle] == "A" else "A"
    return ".".join([header, claims, signature[:middle] + flipped + signature[middle + 1 :]])


def test_issuing_a_token_for_a_valid_card_is_201(local_stack: StackUnderTest) -> None:
    # When
    reply = local_stack.api.request("POST", "/tokens", VISA)

    # Then
    assert reply.status == 201
    document = reply.json()
    local_stack.issued_tokens.append(document["token"])
    assert document["token_type"] == "card+jwt"
    assert document["token"].count(".") == 2
    assert document["card"] == {"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2030}


def test_paying_with_a_fresh_token_is_201_approved(local_stack: StackUnderTest) -> None:
    # Given
    token = local_stack.issue_token()

    # When
    reply = local_stack.pay(token)

    # Then
    assert reply.status == 201
    payment = reply.json()
    assert payment["status"] == "approved"
    assert payment["decline_code"] is None
    assert (payment["amount"], payment["currency"], payment["reference"]) == (
        1999,
        "EUR",
        "order-1234",
    )
    assert payment["card"] == {"brand": "visa", "last4": "4242"}
    assert payment["payment_id"].startswith("pay_")


def test_token_reused_with_another_body_is_409_token_already_used(
    local_stack: StackUnderTest,
) -> None:
    # Given a token that paid once
    token = local_stack.issue_token()
    assert local_stack.pay(token, amount=1999).status == 201

    # When it pays again, for another amount
    reply = local_stack.pay(token, amount=2500)

    # Then
    assert reply.status == 409
    assert reply.error_code == "token_already_used"


def test_tampered_token_is_401_invalid_token(local_stack: StackUnderTest) -> None:
    # Given a token whose signature was changed
    token = tampered(local_stack.issue_token())

    # When
    reply = local_stack.pay(token)

    # Then
    assert reply.status == 401
    assert reply.error_code == "invalid_token"


def test_retry_with_the_same_idempotency_key_and_body_returns_the_same_payment(
    local_stack: StackUnderTest,
) -> None:
    # Given a payment made with an Idempotency-Key
    token = local_stack.issue_token()
    key = f"e2e-{uuid.uuid4()}"
    first = local_stack.pay(token, idempotency_key=key)
    assert first.status == 201

    # When the client retries the same request
    retry = local_stack.pay(token, idempotency_key=key)

    # Then it gets the first response, not a second charge
    assert retry.status == 201
    assert retry.json()["payment_id"] == first.json()["payment_id"]


def test_idempotency_key_reused_with_another_body_is_422(local_stack: StackUnderTest) -> None:
    # Given a payment made with an Idempotency-Key
    token = local_stack.issue_token()
    key = f"e2e-{uuid.uuid4()}"
    assert local_stack.pay(token, idempotency_key=key).status == 201

    # When the key comes back with another body
    reply = local_stack.pay(token, amount=2500, idempotency_key=key)

    # Then
    assert reply.status == 422
    assert reply.error_code == "idempotency_key_reused"


def test_declined_card_is_201_with_status_declined_and_card_declined(
    local_stack: StackUnderTest,
) -> None:
    # Given
    token = local_stack.issue_token(DECLINED_VISA)

    # When
    reply = local_stack.pay(token)

    # Then the request succeeded; the card did not
    assert reply.status == 201
    payment = reply.json()
    assert payment["status"] == "declined"
    assert payment["decline_code"] == "card_declined"


def test_a_payment_reads_back_as_200_with_the_same_object(local_stack: StackUnderTest) -> None:
    # Given
    created = local_stack.pay(local_stack.issue_token()).json()

    # When
    reply = local_stack.api.request("GET", f"/payments/{created['payment_id']}")

    # Then
    assert reply.status == 200
    assert reply.json() == created


def test_unknown_payment_is_404_payment_not_found(local_stack: StackUnderTest) -> None:
    reply = local_stack.api.request("GET", "/payments/pay_doesnotexist")

    assert reply.status == 404
    assert reply.error_code == "payment_not_found"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/nope"),
        ("GET", "/tokens"),  # a route, but not for this method
        ("DELETE", "/payments"),
        ("POST", "/tokens/"),
        ("GET", "/payments/"),
        # The checkout page's files are served by GET only, and nothing beside them.
        ("POST", "/"),
        ("GET", "/page.py"),
        ("GET", "/index.html"),
    ],
)
def test_unknown_route_is_api_gateways_own_404(
    local_stack: StackUnderTest, method: str, path: str
) -> None:
    reply = local_stack.api.request(method, path)

    assert reply.status == 404
    assert reply.json() == {"message": "Not Found"}


def test_malformed_json_is_400(local_stack: StackUnderTest) -> None:
    reply = local_stack.api.request(
        "POST", "/tokens", b'{"card_number": ', {"Content-Type": "application/json"}
    )

    assert reply.status == 400
    assert reply.error_code == "invalid_request"


def test_wrong_content_type_is_415(local_stack: StackUnderTest) -> None:
    reply = local_stack.api.request(
        "POST", "/tokens", b"card_number=4242424242424242", {"Content-Type": "text/plain"}
    )

    assert reply.status == 415
    assert reply.error_code == "unsupported_media_type"


def test_body_over_16_kib_is_413_payload_too_large(local_stack: StackUnderTest) -> None:
    body = b'{"card_number": "' + b"4" * (16 * 1024) + b'"}'

    reply = local_stack.api.request("POST", "/tokens", body, {"Content-Type": "application/json"})

    assert reply.status == 413
    assert reply.error_code == "payload_too_large"


def test_body_over_10_mib_is_refused_by_the_gateway_without_reading_it(
    local_stack: RunningLocalStack,
) -> None:
    # Given a request that announces more than API Gateway's 10 MiB
    request = (
        "POST /tokens HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {10 * 1024 * 1024 + 1}\r\n\r\n"
    ).encode()

    # When
    with socket.create_connection(("127.0.0.1", local_stack.port), timeout=10) as connection:
        connection.sendall(request)
        status_line = connection.makefile("rb").readline()

    # Then the gateway answers before the body arrives
    assert status_line.startswith(b"HTTP/1.1 413")


def test_jwks_is_200_with_public_keys_and_cache_control(local_stack: RunningLocalStack) -> None:
    reply = local_stack.api.request("GET", "/.well-known/jwks.json")

    assert reply.status == 200
    assert re.search(r"max-age=\d+", reply.headers["cache-control"])
    keys = reply.json()["keys"]
    assert keys
    assert all(key["use"] == "sig" and "d" not in key for key in keys)


def test_each_request_is_logged_as_one_line_with_method_path_status_and_time(
    local_stack: RunningLocalStack,
) -> None:
    # Given
    # (letters only: the access log masks long runs of digits, which could be a card number)
    path = "/payments/pay_" + uuid.uuid4().hex.translate(str.maketrans("0123456789", "ghijklmnop"))

    # When
    local_stack.api.request("GET", path, headers={"Authorization": "Bearer e2e-secret-header"})

    # Then (the line is written just after the response, so allow it a moment): 403, as API
    # Gateway answers an AWS_IAM route whose Authorization is not a SigV4 signature
    lines = local_stack.wait_for_log_lines(f"GET {path} ")
    assert len(lines) == 1
    assert re.fullmatch(rf"GET {path} 403 \d+\.\dms \S+", lines[0])
    assert "e2e-secret-header" not in local_stack.log()
