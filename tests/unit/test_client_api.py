"""card_tokens_client.api over a fake urllib: requests as sent, and every kind of answer."""

from __future__ import annotations

import http.client
import io
import json
import urllib.error
import urllib.request
from email.message import Message
from typing import Any

import pytest

from card_tokens_client.api import (
    ApiError,
    CardInput,
    CardTokensApi,
    InvalidBaseUrl,
    Unreachable,
    checked_base_url,
)

LOCAL = "http://127.0.0.1:3000"
CARD = CardInput("4242 4242 4242 4242", 12, 2030, "123", "Ada Lovelace")


class FakeOpener:
    """Answers each request with the next (status, body), or raises the next exception."""

    def __init__(self, *answers: tuple[int, bytes] | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[urllib.request.Request] = []

    def open(self, request: urllib.request.Request, timeout: float) -> Any:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        status, body = answer
        if status >= 300:
            raise urllib.error.HTTPError(
                request.full_url, status, "error", Message(), io.BytesIO(body)
            )
        response = io.BytesIO(body)
        response.status = status  # type: ignore[attr-defined]
        return response


def api_answering(*answers: tuple[int, bytes] | Exception) -> tuple[CardTokensApi, FakeOpener]:
    opener = FakeOpener(*answers)
    return CardTokensApi(LOCAL, opener=opener), opener


def test_tokenize_posts_the_card_as_json_to_tokens() -> None:
    api, opener = api_answering((201, b'{"token": "t", "card": {"last4": "4242"}}'))

    issued = api.tokenize(CARD)

    (request,) = opener.requests
    assert request.get_method() == "POST"
    assert request.full_url == f"{LOCAL}/tokens"
    assert request.get_header("Content-type") == "application/json"
    assert json.loads(request.data) == {  # type: ignore[arg-type]
        "card_number": "4242 4242 4242 4242",
        "exp_month": 12,
        "exp_year": 2030,
        "cvv": "123",
        "cardholder_name": "Ada Lovelace",
    }
    assert issued["token"] == "t"


def test_pay_sends_the_idempotency_key_and_leaves_out_an_absent_reference() -> None:
    api, opener = api_answering((201, b'{"status": "approved"}'))

    api.pay("a.b.c", 1999, "EUR", None, "key-1")

    (request,) = opener.requests
    assert request.full_url == f"{LOCAL}/payments"
    assert request.get_header("Idempotency-key") == "key-1"
    assert json.loads(request.data) == {"token": "a.b.c", "amount": 1999, "currency": "EUR"}  # type: ignore[arg-type]


def test_a_payment_id_cannot_leave_its_path_segment() -> None:
    api, opener = api_answering((200, b"{}"))

    api.get_payment("../tokens?x=1")

    assert opener.requests[0].full_url == f"{LOCAL}/payments/..%2Ftokens%3Fx%3D1"


def test_the_service_error_shape_becomes_an_api_error_with_code_and_field() -> None:
    error = {
        "code": "invalid_cvv",
        "message": "The card security code is not valid.",
        "field": "cvv",
    }
    body = json.dumps({"error": error}).encode()
    api, _ = api_answering((400, body))

    with pytest.raises(ApiError) as raised:
        api.tokenize(CARD)

    error = raised.value
    assert (error.status, error.code, error.field) == (400, "invalid_cvv", "cvv")
    assert error.describe() == "400 invalid_cvv (cvv): The card security code is not valid."


def test_api_gateways_own_answer_keeps_its_message() -> None:
    api, _ = api_answering((403, b'{"message": "Forbidden"}'))

    with pytest.raises(ApiError) as raised:
        api.pay("a.b.c", 1, "EUR")

    assert raised.value.describe() == "403: Forbidden"


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (502, b"<html>Bad Gateway</html>", "HTTP 502"),
        (301, b"", "the server answered with a redirect: pass the final URL as --url"),
    ],
)
def test_answers_without_the_error_shape_still_say_what_happened(
    status: int, body: bytes, message: str
) -> None:
    api, _ = api_answering((status, body))

    with pytest.raises(ApiError, match=message):
        api.jwks()


def test_a_success_that_is_not_a_json_object_is_an_error() -> None:
    api, _ = api_answering((200, b"[1, 2]"))

    with pytest.raises(ApiError, match="not a JSON object"):
        api.jwks()


def test_connection_refused_on_this_machine_asks_whether_the_local_stack_is_running() -> None:
    api, _ = api_answering(urllib.error.URLError(ConnectionRefusedError(111, "refused")))

    with pytest.raises(Unreachable) as unreachable:
        api.jwks()

    assert str(unreachable.value) == (
        "could not reach http://127.0.0.1:3000: is the local stack running? (make run)"
    )
    assert unreachable.value.sent is False  # nothing got out: nothing can have been charged


def test_connection_refused_elsewhere_says_so_without_mentioning_make_run() -> None:
    opener = FakeOpener(urllib.error.URLError(ConnectionRefusedError(111, "refused")))
    api = CardTokensApi("https://pay.example.com", opener=opener)

    with pytest.raises(Unreachable) as unreachable:
        api.jwks()

    assert str(unreachable.value) == (
        "could not reach https://pay.example.com: the connection was refused"
    )
    assert unreachable.value.sent is False


def test_a_name_that_does_not_resolve_was_not_sent() -> None:
    api, _ = api_answering(urllib.error.URLError(OSError(-2, "Name or service not known")))

    with pytest.raises(Unreachable, match=r"^could not reach http://127\.0\.0\.1:3000 \(") as e:
        api.jwks()

    assert e.value.sent is False


@pytest.mark.parametrize(
    "failure",
    [TimeoutError("timed out"), http.client.RemoteDisconnected("closed without an answer")],
)
def test_no_answer_after_sending_is_unreachable_and_may_have_been_acted_on(
    failure: Exception,
) -> None:
    api, _ = api_answering(failure)

    with pytest.raises(Unreachable, match=r"^no answer from http://127\.0\.0\.1:3000") as e:
        api.jwks()

    assert e.value.sent is True


@pytest.mark.parametrize(
    "url", ["ftp://example.com", "example.com", "http://", "https://x.example/?a=1", "file:///etc"]
)
def test_only_plain_http_and_https_base_urls_are_accepted(url: str) -> None:
    with pytest.raises(InvalidBaseUrl):
        checked_base_url(url)


def test_a_base_url_keeps_its_path_without_the_trailing_slash() -> None:
    assert checked_base_url("https://pay.example.com/v1/") == "https://pay.example.com/v1"


def test_a_card_input_never_shows_its_number_or_code() -> None:
    shown = repr(CARD) + str(CARD)

    assert "4242 4242 4242 4242" not in shown
    assert "123" not in shown
    assert "4242" in shown
