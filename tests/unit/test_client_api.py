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
    ApiRequest,
    CardTokensApi,
    InvalidBaseUrl,
    Reply,
    Unreachable,
    checked_base_url,
    payment_request,
    tokenize_request,
)
from tests.cards import VISA, VISA_INPUT

LOCAL = "http://127.0.0.1:3000"
CARD = VISA_INPUT


class FakeOpener:
    """Answers each request with the next (status, body), or raises the next exception."""

    def __init__(self, *answers: tuple[int, bytes] | Exception, headers: Message | None = None):
        self.headers = headers or Message()
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
                request.full_url, status, "error", self.headers, io.BytesIO(body)
            )
        response = io.BytesIO(body)
        response.status = status  # type: ignore[attr-defined]
        response.headers = self.headers  # type: ignore[attr-defined]
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
    assert json.loads(request.data) == VISA  # type: ignore[arg-type]
    assert issued["token"] == "t"
    assert request.get_header("Authorization") is None  # a single-caller stack takes no key


def test_tokenize_sends_the_publishable_key_as_a_bearer_token() -> None:
    api, opener = api_answering((201, b'{"token": "t"}'))

    api.tokenize(CARD, "pk_" + "a" * 24)

    (request,) = opener.requests
    assert request.get_header("Authorization") == "Bearer pk_" + "a" * 24
    assert request.get_header("Content-type") == "application/json"


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


# ---------------------------------------------------------------- raw replies: send(ApiRequest)


def test_send_answers_an_error_status_as_a_reply_with_its_code_and_headers() -> None:
    headers = Message()
    headers["Retry-After"] = "1"
    body = b'{"error": {"code": "payment_in_progress", "message": "Retry later."}}'
    opener = FakeOpener((503, body), headers=headers)
    api = CardTokensApi(LOCAL, opener=opener)

    reply = api.send(payment_request("a.b.c", 1999, "EUR", "order-1", "key-1"))

    assert (reply.status, reply.error_code) == (503, "payment_in_progress")
    assert reply.headers["retry-after"] == "1"
    assert reply.json()["error"]["message"] == "Retry later."
    (request,) = opener.requests
    assert request.get_header("Idempotency-key") == "key-1"


@pytest.mark.parametrize(
    ("reply", "code"),
    [
        (Reply(201, {}, b'{"status": "approved"}'), None),
        (Reply(403, {}, b'{"message": "Forbidden"}'), None),  # API Gateway's own shape
        (Reply(502, {}, b"<html>Bad Gateway</html>"), None),
        (
            Reply(409, {}, b'{"error": {"code": "token_already_used", "message": "m"}}'),
            "token_already_used",
        ),
    ],
)
def test_a_reply_names_the_service_error_code_only(reply: Reply, code: str | None) -> None:
    assert reply.error_code == code


def test_request_takes_a_body_as_it_is_with_the_headers_chosen() -> None:
    api, opener = api_answering((400, b'{"error": {"code": "invalid_request", "message": "m"}}'))

    reply = api.request("POST", "/tokens", b'{"card_number": ', {"Content-Type": "text/json"})

    assert reply.error_code == "invalid_request"
    (request,) = opener.requests
    assert request.data == b'{"card_number": '
    assert request.get_header("Content-type") == "text/json"


def test_request_encodes_a_document_as_json_unless_told_another_content_type() -> None:
    api, opener = api_answering((201, b"{}"), (201, b"{}"))

    api.request("POST", "/tokens", {"a": 1})
    api.request("POST", "/tokens", {"a": 1}, {"content-type": "text/plain"})

    default, chosen = opener.requests
    assert (default.data, default.get_header("Content-type")) == (b'{"a": 1}', "application/json")
    assert chosen.get_header("Content-type") == "text/plain"


def test_a_request_never_shows_its_card_nor_a_reply_its_token() -> None:
    request = repr(tokenize_request(CARD))
    reply = repr(Reply(201, {}, b'{"token": "head.claims.signature"}'))

    assert request.startswith("ApiRequest(POST /tokens, ")
    assert "4242" not in request
    assert "123" not in request
    assert reply == "Reply(201, 34 bytes)"


def test_send_without_an_answer_is_unreachable() -> None:
    api, _ = api_answering(TimeoutError("timed out"))

    with pytest.raises(Unreachable):
        api.send(ApiRequest("GET", "/.well-known/jwks.json"))
