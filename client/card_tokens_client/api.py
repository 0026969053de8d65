"""The card-tokens HTTP API over the standard library: a method per route, errors as exceptions."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

from card_tokens_client.signing import is_loopback, needs_signature

DEFAULT_URL = "http://127.0.0.1:3000"
USER_AGENT = "card-tokens-cli/0.1"


class Signer(Protocol):
    def sign(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None
    ) -> dict[str, str]: ...


class Opener(Protocol):
    """What urllib's OpenerDirector does here; tests pass a fake."""

    def open(self, request: urllib.request.Request, timeout: float) -> Any: ...


class ApiError(Exception):
    """The API (or API Gateway in front of it) answered with an error status."""

    def __init__(
        self, status: int, message: str, code: str | None = None, field: str | None = None
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.field = field

    def describe(self) -> str:
        code = f" {self.code}" if self.code else ""
        field = f" ({self.field})" if self.field else ""
        return f"{self.status}{code}{field}: {self.message}"


class Unreachable(Exception):
    """No HTTP answer at all: refused, timed out, DNS, TLS.

    `sent` says whether the server may have acted on the request. False: it never left this
    machine whole (no connection, a name or TLS failure, or the connection broke while sending),
    so nothing can have been charged. True: it was sent and no answer came (a timeout, a
    connection closed before the answer), so a payment may have been made.
    """

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


class InvalidBaseUrl(ValueError):
    pass


def checked_base_url(url: str) -> str:
    """`url` without a trailing slash, once it is an http(s) URL with a host and nothing else."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidBaseUrl(f"--url must be an http:// or https:// URL with a host, not {url!r}")
    if parts.query or parts.fragment:
        raise InvalidBaseUrl("--url takes no query string or fragment")
    return url.rstrip("/")


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A redirect would resend a signed request (or a card) to wherever it points: refuse it.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@dataclass(frozen=True)
class CardInput:
    card_number: str
    exp_month: int
    exp_year: int
    cvv: str
    cardholder_name: str | None = None

    def request_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "card_number": self.card_number,
            "exp_month": self.exp_month,
            "exp_year": self.exp_year,
            "cvv": self.cvv,
        }
        if self.cardholder_name:
            body["cardholder_name"] = self.cardholder_name
        return body

    def __repr__(self) -> str:  # never the PAN or the CVV, even in a traceback
        return f"CardInput(last4={self.card_number[-4:]!r}, exp={self.exp_month}/{self.exp_year})"


JSON: Mapping[str, str] = MappingProxyType({"Content-Type": "application/json"})


@dataclass(frozen=True)
class ApiRequest:
    """One request to the API, before the client adds its own headers (and a signature)."""

    method: str
    path: str
    body: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:  # the body may hold a card: never show it
        return f"ApiRequest({self.method} {self.path}, {len(self.body or b'')} bytes)"


def _encoded(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document).encode()


@dataclass(frozen=True)
class Reply:
    """Any HTTP answer as it came: what `CardTokensApi.send` returns, error statuses included."""

    status: int
    headers: Mapping[str, str]  # names in lower case
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:  # the body may hold a token: never show it
        return f"Reply({self.status}, {len(self.body)} bytes)"

    @property
    def error_code(self) -> str | None:
        """The service's `error.code`, or None for a success or an answer without one."""
        return _api_error(self.status, self.body).code if self.status >= 300 else None


def tokenize_request(card: CardInput, publishable_key: str | None = None) -> ApiRequest:
    """POST /tokens as a merchant's page sends it: with its publishable key once the stack has
    merchants (Stripe's `Authorization: Bearer pk_...`); without, for a single-caller stack."""
    headers = {**JSON, "Authorization": f"Bearer {publishable_key}"} if publishable_key else JSON
    return ApiRequest("POST", "/tokens", _encoded(card.request_body()), headers)


def payment_request(
    token: str,
    amount: int,
    currency: str,
    reference: str | None = None,
    idempotency_key: str | None = None,
) -> ApiRequest:
    body: dict[str, Any] = {"token": token, "amount": amount, "currency": currency}
    if reference is not None:
        body["reference"] = reference
    headers = {**JSON, "Idempotency-Key": idempotency_key} if idempotency_key else JSON
    return ApiRequest("POST", "/payments", _encoded(body), headers)


def get_payment_request(payment_id: str) -> ApiRequest:
    return ApiRequest("GET", "/payments/" + quote(payment_id, safe=""))


JWKS_REQUEST = ApiRequest("GET", "/.well-known/jwks.json")


class CardTokensApi:
    """A method per route, answering the JSON document or raising ApiError; `send` for any reply.

    With a signer, the routes behind AWS_IAM (signing.SIGNED_ROUTES) are SigV4-signed.
    """

    def __init__(
        self,
        base_url: str,
        signer: Signer | None = None,
        timeout: float = 30.0,
        opener: Opener | None = None,
    ) -> None:
        self.base_url = checked_base_url(base_url)
        self.signer = signer
        self.timeout = timeout
        self._opener: Opener | urllib.request.OpenerDirector = (
            opener or urllib.request.build_opener(_NoRedirects)
        )

    def tokenize(self, card: CardInput, publishable_key: str | None = None) -> dict[str, Any]:
        return self._call(tokenize_request(card, publishable_key))

    def pay(
        self,
        token: str,
        amount: int,
        currency: str,
        reference: str | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        return self._call(payment_request(token, amount, currency, reference, idempotency_key))

    def get_payment(self, payment_id: str) -> dict[str, Any]:
        return self._call(get_payment_request(payment_id))

    def jwks(self) -> dict[str, Any]:
        return self._call(JWKS_REQUEST)

    def request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """Any request, answered whatever the status: a JSON document body is encoded (with
        Content-Type application/json unless `headers` has one); bytes go as they are."""
        send = dict(headers or {})
        if isinstance(body, Mapping):
            body = _encoded(body)
            if not any(name.lower() == "content-type" for name in send):
                send.update(JSON)
        return self.send(ApiRequest(method, path, body, send))

    def send(self, request: ApiRequest) -> Reply:
        """The answer whatever its status; Unreachable only when there is none."""
        url = self.base_url + request.path
        send = {"Accept": "application/json", "User-Agent": USER_AGENT, **request.headers}
        if self.signer is not None and needs_signature(request.method, request.path):
            send = self.signer.sign(request.method, url, send, request.body)
        outgoing = urllib.request.Request(  # noqa: S310 - http(s) only: checked_base_url
            url, data=request.body, headers=send, method=request.method
        )
        try:
            with self._opener.open(outgoing, timeout=self.timeout) as response:
                return Reply(response.status, _headers(response), response.read())
        except urllib.error.HTTPError as error:
            return Reply(error.code, _headers(error), error.read())
        except urllib.error.URLError as error:
            # urllib raises URLError while connecting or sending: the request did not get out.
            raise Unreachable(_not_sent(self.base_url, error.reason), sent=False) from None
        except (http.client.HTTPException, OSError) as error:
            # Raised while waiting for the answer: the request was sent, and may have been acted on.
            raise Unreachable(f"no answer from {self.base_url} ({error})", sent=True) from None

    def _call(self, request: ApiRequest) -> dict[str, Any]:
        reply = self.send(request)
        if reply.status >= 300:
            raise _api_error(reply.status, reply.body)
        return _json_object(reply.body, reply.status)


def _headers(response: Any) -> dict[str, str]:
    headers = getattr(response, "headers", None) or {}
    return {name.lower(): value for name, value in headers.items()}


def _not_sent(base_url: str, reason: object) -> str:
    if isinstance(reason, ConnectionRefusedError):
        if is_loopback(urlsplit(base_url).hostname or ""):
            return f"could not reach {base_url}: is the local stack running? (make run)"
        return f"could not reach {base_url}: the connection was refused"
    return f"could not reach {base_url} ({reason})"


def _json_object(raw: bytes, status: int) -> dict[str, Any]:
    try:
        document = json.loads(raw)
    except ValueError:
        raise ApiError(status, "the answer is not JSON") from None
    if not isinstance(document, dict):
        raise ApiError(status, "the answer is not a JSON object")
    return document


def _api_error(status: int, raw: bytes) -> ApiError:
    """The service's `{"error": {...}}` shape, or API Gateway's own `{"message": ...}`."""
    if 300 <= status < 400:
        return ApiError(status, "the server answered with a redirect: pass the final URL as --url")
    try:
        document = json.loads(raw)
    except ValueError:
        document = None
    if isinstance(document, dict):
        error = document.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            code = error.get("code")
            field = error.get("field")
            return ApiError(
                status,
                error["message"],
                code if isinstance(code, str) else None,
                field if isinstance(field, str) else None,
            )
        if isinstance(document.get("message"), str):
            return ApiError(status, document["message"])
    return ApiError(status, f"HTTP {status}")
