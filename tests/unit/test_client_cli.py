"""The card-tokens command with a fake API: output, exit codes, prompts, and no card data echoed."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest

from card_tokens_client.api import ApiError, CardInput, Unreachable
from card_tokens_client.cli import (
    CURRENCIES,
    CURRENCY_RULE,
    EXIT_DECLINED,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    Prompter,
    format_amount,
    main,
    parse_expiry,
    time_left,
)
from tests.cards import VISA

PAN = VISA["card_number"]
CVV = "987"
ISSUED = {
    "token": "head.claims.sig",
    "token_type": "card+jwt",
    "expires_at": "2030-01-01T00:15:00Z",
    "card": {"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2030},
}
APPROVED = {
    "payment_id": "pay_1",
    "status": "approved",
    "amount": 1999,
    "currency": "EUR",
    "reference": "order-1",
    "card": {"brand": "visa", "last4": "4242"},
    "decline_code": None,
    "created_at": "2030-01-01T00:01:00Z",
}
DECLINED = {**APPROVED, "status": "declined", "decline_code": "card_declined"}


class FakeApi:
    """Records the calls; answers with `answer` or raises it."""

    answer: Any = None
    instances: ClassVar[list[FakeApi]] = []

    def __init__(self, base_url: str, signer: Any, timeout: float) -> None:
        self.base_url = base_url
        self.signer = signer
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        FakeApi.instances.append(self)

    def _answer(self, name: str, *args: Any) -> Any:
        self.calls.append((name, args))
        if isinstance(FakeApi.answer, Exception):
            raise FakeApi.answer
        return FakeApi.answer

    def tokenize(self, card: CardInput, publishable_key: str | None = None) -> Any:
        return self._answer("tokenize", card, publishable_key)

    def pay(self, *args: Any) -> Any:
        return self._answer("pay", *args)

    def get_payment(self, payment_id: str) -> Any:
        return self._answer("get_payment", payment_id)

    def jwks(self) -> Any:
        return self._answer("jwks")


class Pipe(io.StringIO):
    def isatty(self) -> bool:
        return False


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class FakePage:
    """The local stack's checkout page: answers `key`, and records which URLs were read."""

    def __init__(self, key: str | None = None) -> None:
        self.key = key
        self.read: list[str] = []

    def __call__(self, base_url: str, timeout: float) -> str | None:
        self.read.append(base_url)
        return self.key


def run(
    argv: list[str],
    answer: Any,
    stdin: str = "",
    prompter: Prompter | None = None,
    page: FakePage | None = None,
) -> tuple[int, str, str, FakeApi]:
    FakeApi.answer = answer
    FakeApi.instances = []
    out, err = io.StringIO(), io.StringIO()
    code = main(
        argv,
        stdin=Pipe(stdin),
        stdout=out,
        stderr=err,
        prompter=prompter,
        api_factory=FakeApi,
        page_key=page or FakePage(),
    )
    return (
        code,
        out.getvalue(),
        err.getvalue(),
        FakeApi.instances[-1] if FakeApi.instances else None,
    )  # type: ignore[return-value]


def card_data_in(text: str) -> list[str]:
    digits = "".join(ch for ch in text if ch.isdigit())
    found = []
    if PAN.replace(" ", "") in digits:
        found.append("PAN")
    if CVV in text:
        found.append("CVV")
    return found


@pytest.fixture(autouse=True)
def _no_environment_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CARD_TOKENS_URL", raising=False)
    monkeypatch.delenv("CARD_TOKENS_PUBLISHABLE_KEY", raising=False)


def test_tokenize_prints_brand_last4_lifetime_and_the_token_never_the_card() -> None:
    # When
    code, out, err, api = run(
        ["tokenize", "--card-number", PAN, "--exp", "12/30", "--cvv", CVV], ISSUED
    )

    # Then
    assert code == EXIT_OK
    card = api.calls[0][1][0]
    assert (card.card_number, card.exp_month, card.exp_year, card.cvv) == (PAN, 12, 2030, CVV)
    assert "Visa •••• 4242 (exp 12/2030)" in out
    assert "expires  2030-01-01T00:15:00Z" in out
    assert "head.claims.sig" in out
    assert card_data_in(out + err) == []


def test_tokenize_reads_missing_card_values_from_a_pipe_one_a_line() -> None:
    code, out, err, api = run(["tokenize", "--quiet"], ISSUED, stdin=f"{PAN}\n12/2031\n{CVV}\n")

    assert code == EXIT_OK
    assert out == "head.claims.sig\n"
    card = api.calls[0][1][0]
    assert (card.card_number, card.exp_month, card.exp_year, card.cvv) == (PAN, 12, 2031, CVV)
    assert card_data_in(out + err) == []


def test_on_a_terminal_the_card_number_and_code_are_asked_for_without_echo() -> None:
    # Given a terminal where hidden (getpass) and visible (input) prompts are recorded
    asked: list[tuple[str, str]] = []

    def hidden(label: str) -> str:
        asked.append(("hidden", label))
        return PAN if "number" in label else CVV

    def visible(label: str) -> str:
        asked.append(("visible", label))
        return "12/30"

    prompter = Prompter(Terminal(), io.StringIO(), hidden=hidden, visible=visible)

    # When
    code, out, err, _ = run(["tokenize"], ISSUED, prompter=prompter)

    # Then
    assert code == EXIT_OK
    assert asked == [
        ("hidden", "Card number: "),
        ("visible", "Expiry (MM/YY): "),
        ("hidden", "Security code: "),
    ]
    assert card_data_in(out + err) == []


def test_tokenize_with_nothing_on_stdin_is_a_usage_error() -> None:
    code, _, err, api = run(["tokenize"], ISSUED, stdin="")

    assert code == EXIT_USAGE
    assert "card number is missing" in err
    assert api.calls == []


def test_a_bad_expiry_is_a_usage_error_before_any_request() -> None:
    code, _, err, api = run(
        ["tokenize", "--card-number", PAN, "--exp", "1230", "--cvv", CVV], ISSUED
    )

    assert code == EXIT_USAGE
    assert "MM/YY" in err
    assert api.calls == []
    assert card_data_in(err) == []


def test_an_api_error_names_code_and_field_without_echoing_the_card() -> None:
    error = ApiError(
        400,
        "card_number fails the Luhn check: a digit is probably mistyped.",
        "invalid_card_number",
        "card_number",
    )

    code, out, err, _ = run(
        ["tokenize", "--card-number", PAN, "--exp", "12/30", "--cvv", CVV], error
    )

    assert code == EXIT_ERROR
    assert out == ""
    assert err == (
        "card-tokens: error: 400 invalid_card_number (card_number): card_number fails the Luhn "
        "check: a digit is probably mistyped.\n"
    )


def test_pay_approved_prints_the_payment_and_exits_0() -> None:
    code, out, _, api = run(
        ["pay", "a.b.c", "--amount", "1999", "--currency", "EUR", "--reference", "order-1"],
        APPROVED,
    )

    assert code == EXIT_OK
    name, (token, amount, currency, reference, key) = api.calls[0]
    assert (name, token, amount, currency, reference) == ("pay", "a.b.c", 1999, "EUR", "order-1")
    assert len(key) == 36  # a fresh UUID for each payment
    assert out.splitlines()[0] == "Payment pay_1: approved"
    assert "19.99 EUR" in out
    assert "Visa •••• 4242" in out


def test_pay_declined_shows_the_decline_code_and_exits_3() -> None:
    code, out, _, _ = run(["pay", "a.b.c", "--amount", "1999", "--currency", "EUR"], DECLINED)

    assert code == EXIT_DECLINED
    assert out.splitlines()[0] == "Payment pay_1: declined (card_declined)"


def test_pay_reads_the_token_from_stdin_by_default() -> None:
    code, _, _, api = run(["pay", "--amount", "5", "--currency", "EUR"], APPROVED, stdin="x.y.z\n")

    assert code == EXIT_OK
    assert api.calls[0][1][0] == "x.y.z"


@pytest.mark.parametrize(
    "failure",
    [
        Unreachable("no answer from http://127.0.0.1:3000 (timed out)", sent=True),
        ApiError(503, "The payment's outcome is not settled yet.", "payment_in_progress"),
        ApiError(500, "The request could not be processed.", "internal_error"),
        ApiError(504, "Endpoint request timed out"),  # API Gateway's own, without a code
    ],
)
def test_a_payment_whose_outcome_is_unknown_prints_the_key_to_retry_with(
    failure: Exception,
) -> None:
    code, _, err, api = run(["pay", "a.b.c", "--amount", "1999", "--currency", "EUR"], failure)

    key = api.calls[0][1][4]
    assert code == EXIT_ERROR
    assert f"--idempotency-key {key}" in err


@pytest.mark.parametrize(
    "failure",
    [
        Unreachable(
            "could not reach http://127.0.0.1:3000: is the local stack running? (make run)",
            sent=False,
        ),
        ApiError(502, "The payment processor failed and nothing was charged.", "processor_error"),
        ApiError(503, "A dependency is unavailable; retry later.", "service_unavailable"),
    ],
)
def test_a_payment_that_cannot_have_been_charged_gives_no_retry_hint(failure: Exception) -> None:
    code, _, err, _ = run(["pay", "a.b.c", "--amount", "1999", "--currency", "EUR"], failure)

    assert code == EXIT_ERROR
    assert "idempotency-key" not in err
    assert err.startswith("card-tokens: error: ")


def test_connection_refused_asks_whether_the_local_stack_is_running() -> None:
    failure = Unreachable(
        "could not reach http://127.0.0.1:3000: is the local stack running? (make run)",
        sent=False,
    )

    code, _, err, _ = run(["pay", "a.b.c", "--amount", "1999", "--currency", "EUR"], failure)

    assert code == EXIT_ERROR
    assert err == (
        "card-tokens: error: could not reach http://127.0.0.1:3000: is the local stack running? "
        "(make run)\n"
    )


@pytest.mark.parametrize(("currency", "suggestion"), [("eur", " Did you mean EUR?"), ("XXX", "")])
def test_a_currency_the_api_refuses_is_refused_in_the_apis_words_before_any_request(
    currency: str, suggestion: str, capsys: pytest.CaptureFixture[str]
) -> None:
    FakeApi.instances = []
    with pytest.raises(SystemExit) as exited:
        main(["pay", "a.b.c", "--amount", "1999", "--currency", currency], api_factory=FakeApi)

    assert exited.value.code == EXIT_USAGE
    assert FakeApi.instances == []
    assert capsys.readouterr().err.splitlines()[-1] == (
        "card-tokens pay: error: argument --currency: currency must be one of AUD, CAD, CHF, "
        f"CZK, DKK, EUR, GBP, JPY, NOK, PLN, SEK, USD (ISO 4217, in capitals).{suggestion}"
    )


def test_the_cli_takes_the_currencies_the_api_takes_with_the_same_words() -> None:
    # Given the API's validation, imported from the layer
    from card_tokens.errors import UnsupportedCurrency
    from card_tokens.request_body import SUPPORTED_CURRENCIES, parse_payment_request

    # Then the CLI's list and its refusal are the API's
    assert set(CURRENCIES) == SUPPORTED_CURRENCIES
    with pytest.raises(UnsupportedCurrency) as refused:
        parse_payment_request({"token": "a.b.c", "amount": 1, "currency": "eur"})
    assert refused.value.message == CURRENCY_RULE


def test_a_refused_payment_gives_no_retry_hint() -> None:
    error = ApiError(409, "The token has already been used.", "token_already_used")

    code, _, err, _ = run(["pay", "a.b.c", "--amount", "1999", "--currency", "EUR"], error)

    assert code == EXIT_ERROR
    assert "idempotency-key" not in err


@pytest.mark.parametrize("amount", ["19.99", "-5", "ten"])
def test_an_amount_not_in_minor_units_is_refused_by_the_parser(
    amount: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["pay", "a.b.c", "--amount", amount, "--currency", "EUR"], api_factory=FakeApi)

    assert exited.value.code == EXIT_USAGE
    assert "minor units" in capsys.readouterr().err


def test_json_output_is_the_api_document_whichever_side_of_the_command_it_is_on() -> None:
    before = run(["--json", "get", "pay_1"], APPROVED)
    after = run(["get", "pay_1", "--json"], APPROVED)

    assert json.loads(before[1]) == APPROVED
    assert json.loads(after[1]) == APPROVED


def test_url_and_options_before_the_command_are_kept() -> None:
    _, _, _, api = run(["--url", "https://x.example", "--no-sign", "jwks"], {"keys": []})

    assert api.base_url == "https://x.example"
    assert api.signer is None


@pytest.mark.parametrize(
    ("url", "signed"),
    [
        ("http://127.0.0.1:3000", False),
        ("http://localhost:3000", False),
        ("https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com", True),
        ("https://pay.example.com", True),
    ],
)
def test_a_stack_on_this_machine_gets_unsigned_requests(url: str, signed: bool) -> None:
    # The local stack takes unsigned requests: no credentials are needed to try it.
    _, _, _, api = run(["--url", url, "jwks"], {"keys": []})

    assert (api.signer is not None) is signed


@pytest.mark.parametrize("where", ["before", "after"])
def test_a_profile_signs_on_this_machine_too_as_that_local_merchant(where: str) -> None:
    profile = ["--profile", "card-tokens-shop"]
    get = ["get", "pay_1"]
    argv = [*profile, *get] if where == "before" else [*get, *profile]

    _, _, _, api = run(["--url", "http://127.0.0.1:3000", *argv], APPROVED)

    assert api.signer is not None
    assert api.signer._profile == "card-tokens-shop"
    assert api.signer.region() == "us-east-1"  # the local stack's, whatever AWS_REGION says


KEY = "pk_" + "a" * 24
OTHER_KEY = "pk_" + "b" * 24
LOCAL_URL = "http://127.0.0.1:3000"
AWS_URL = "https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com"


def tokenized_with(
    url: str, *options: str, page: FakePage | None = None
) -> tuple[str | None, FakePage]:
    """The publishable key `tokenize` sent, and the page it may have read."""
    page = page or FakePage(OTHER_KEY)
    argv = ["--url", url, "tokenize", "--quiet", *options]
    code, _, err, api = run(argv, ISSUED, stdin=f"{PAN}\n12/30\n{CVV}\n", page=page)
    assert code == EXIT_OK, err
    return api.calls[0][1][1], page


def test_on_this_machine_tokenize_sends_the_checkout_pages_key() -> None:
    sent, page = tokenized_with(LOCAL_URL)

    assert sent == OTHER_KEY
    assert page.read == [LOCAL_URL]


def test_a_local_stack_without_merchants_gets_no_key() -> None:
    sent, _ = tokenized_with(LOCAL_URL, page=FakePage(None))

    assert sent is None


@pytest.mark.parametrize("url", [LOCAL_URL, AWS_URL])
def test_the_given_key_wins_and_no_page_is_read(url: str) -> None:
    sent, page = tokenized_with(url, "--publishable-key", KEY)

    assert sent == KEY
    assert page.read == []


@pytest.mark.parametrize("url", [LOCAL_URL, AWS_URL])
def test_the_key_comes_from_the_environment(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARD_TOKENS_PUBLISHABLE_KEY", KEY)

    sent, page = tokenized_with(url)

    assert sent == KEY
    assert page.read == []


def test_a_deployed_stacks_page_is_never_read_for_a_key() -> None:
    sent, page = tokenized_with(AWS_URL)

    assert sent is None
    assert page.read == []


def test_the_default_url_is_the_local_stack_or_card_tokens_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, _, _, api = run(["jwks"], {"keys": []})
    assert api.base_url == "http://127.0.0.1:3000"

    monkeypatch.setenv("CARD_TOKENS_URL", "https://env.example")
    _, _, _, api = run(["jwks"], {"keys": []})
    assert api.base_url == "https://env.example"


def test_jwks_lists_each_key() -> None:
    jwks = {
        "keys": [
            {"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256", "use": "sig"},
            {"kty": "RSA", "kid": "k2", "alg": "RS256", "use": "sig"},
        ]
    }

    code, out, _, _ = run(["jwks"], jwks)

    assert code == EXIT_OK
    assert out.splitlines() == [
        "2 verification keys",
        "  k1  ES256  EC P-256  use=sig",
        "  k2  RS256  RSA  use=sig",
    ]


def test_a_bad_url_is_a_usage_error() -> None:
    FakeApi.answer = {}
    err = io.StringIO()

    code = main(["--url", "ftp://x", "jwks"], stdin=Pipe(""), stdout=io.StringIO(), stderr=err)

    assert code == EXIT_USAGE
    assert "http:// or https://" in err.getvalue()


@pytest.mark.parametrize(
    ("text", "expected"),
    [("12/30", (12, 2030)), ("01/2031", (1, 2031)), ("3-29", (3, 2029)), (" 12/30 ", (12, 2030))],
)
def test_expiry_forms(text: str, expected: tuple[int, int]) -> None:
    assert parse_expiry(text) == expected


@pytest.mark.parametrize("text", ["1230", "12/3", "ab/cd", "123/30", "12/203", ""])
def test_malformed_expiries_are_refused(text: str) -> None:
    with pytest.raises(Exception, match="MM/YY"):
        parse_expiry(text)


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [
        (1999, "EUR", "19.99 EUR"),
        (5, "USD", "0.05 USD"),
        (500, "JPY", "500 JPY"),
        (100, "GBP", "1.00 GBP"),
    ],
)
def test_amounts_are_shown_in_major_units(amount: int, currency: str, shown: str) -> None:
    assert format_amount(amount, currency) == shown


def test_time_left_counts_down_to_expired() -> None:
    now = datetime(2030, 1, 1, 0, 0, 0, tzinfo=UTC)

    assert time_left("2030-01-01T00:15:00Z", now) == "in 15m 00s"
    assert time_left("2030-01-01T00:00:00Z", now) == "expired"
    assert time_left("not a date", now) == "unknown"
