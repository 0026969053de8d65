"""The forwarding processor's settings: two secret documents and the deployment's allow-list.

Every unusable document fails the cold start with an error that names the setting and echoes
no value; no document can widen the allow-list; the time caps fit the payment's budget.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from card_tokens.cards import Card
from card_tokens.forwarding import (
    WORST_CASE_BUDGET_SECONDS,
    Endpoint,
    ForwardingSettings,
    ForwardingSettingsInvalid,
    ResponseRules,
)
from card_tokens.forwarding_processor import ForwardingProcessor
from card_tokens.processor import ProcessorFailure

ALLOWED = "processor.example"
SECRET_HEADER = "Bearer sk_live_do_not_echo"
RULES = {"rules": [{"http_status": [200], "outcome": "approved"}]}
CHARGE = {
    "charge": {
        "url": "https://processor.example/v1/charges",
        "template": {"number": "{{card.number}}", "amount": "{{amount}}"},
        **RULES,
    },
    "headers": {"Authorization": SECRET_HEADER},
}
LOOKUP = {
    "lookup": {
        "url": "https://processor.example/v1/charges/lookup",
        "template": {"key": "{{idempotency_key}}"},
        **RULES,
    },
    "headers": {"Authorization": SECRET_HEADER},
}
# What no error may carry: the API key, the hosts a document tried, any PEM.
NEVER_ECHOED = ("sk_live", "evil", "93.184", "BEGIN", "garbage")

Edit = Callable[[dict[str, Any], dict[str, Any]], None]


def build(edit: Edit | None = None, *, allowed: str = ALLOWED) -> ForwardingProcessor:
    charge, lookup = copy.deepcopy(CHARGE), copy.deepcopy(LOOKUP)
    if edit is not None:
        edit(charge, lookup)
    return ForwardingProcessor.from_secrets(charge, lookup, allowed)


def charge_url(url: str) -> Edit:
    return lambda charge, _: charge["charge"].update(url=url)


def setting(document: str, name: str, value: Any) -> Edit:
    """Sets a member of the charge or lookup document (`name` "a.b" walks into members)."""

    def edit(charge: dict[str, Any], lookup: dict[str, Any]) -> None:
        node = charge if document == "charge" else lookup
        *path, last = name.split(".")
        for step in path:
            node = node[step]
        node[last] = value

    return edit


def drop(document: str, name: str) -> Edit:
    return lambda charge, lookup: (charge if document == "charge" else lookup).pop(name)


MALFORMED: list[tuple[str, Edit, str]] = [
    # The allow-list cannot be widened, nor stepped around, from a document.
    ("other host", charge_url("https://evil.example/v1/charges"), r"^charge\.url: .*allow-list"),
    ("userinfo", charge_url("https://processor.example@evil.example/"), r"^charge\.url: .*cred"),
    ("backslash", charge_url("https://evil.example\\@processor.example/"), r"^charge\.url: .*cred"),
    ("suffix", charge_url("https://processor.example.evil.example/"), r"^charge\.url: .*allow"),
    ("IP literal", charge_url("https://93.184.215.14/v1/charges"), r"^charge\.url: .*allow-list"),
    ("IPv6", charge_url("https://[::1]/v1/charges"), r"^charge\.url: .*allow-list"),
    ("other port", charge_url("https://processor.example:8443/"), r"^charge\.url: .*allow-list"),
    ("bad port", charge_url("https://processor.example:99999/"), r"^charge\.url: .*port"),
    ("http", charge_url("http://processor.example/v1/charges"), r"^charge\.url: must be https"),
    ("fragment", charge_url("https://processor.example/#evil"), r"^charge\.url: .*fragment"),
    ("lookup host", setting("lookup", "lookup.url", "https://evil.example/"), r"^lookup\.url: "),
    ("own allow-list", setting("charge", "allowed_hosts", "evil.example"), r"^charge document "),
    ("in the lookup", setting("lookup", "allowed_hosts", ["evil.example"]), r"^lookup document "),
    ("in an exchange", setting("charge", "charge.allowed_hosts", "evil"), r"^charge holds a"),
    # The exchanges.
    ("no charge", drop("charge", "charge"), r"^charge document needs charge"),
    ("no url", setting("charge", "charge.url", None), r"^charge needs a url and a template"),
    ("url not text", setting("charge", "charge.url", 443), r"^charge needs a url"),
    ("exchange a list", setting("charge", "charge", ["x"]), r"^charge must be a JSON object"),
    ("placeholder", setting("charge", "charge.template", {"n": "{{pan}}"}), r"^charge: request"),
    ("card in lookup", setting("lookup", "lookup.template", {"n": "{{card.number}}"}), "^lookup:"),
    ("no rules", setting("charge", "charge.rules", []), r"^charge: response rules"),
    ("odd outcome", setting("charge", "charge.rules", [{"outcome": "maybe"}]), r"^charge: resp"),
    # The channels: credentials and time caps.
    ("headers a list", setting("charge", "headers", ["x"]), r"^charge document: headers must"),
    ("CRLF in a value", setting("lookup", "headers", {"A": "x\r\nB: y"}), r"^lookup document: h"),
    ("odd header name", setting("charge", "headers", {"A B": "x"}), r"^charge document: headers"),
    ("number as value", setting("charge", "headers", {"A": 1}), r"^charge document: headers"),
    ("no key", setting("charge", "client_certificate", {"certificate_pem": "x"}), "certificate"),
    ("cert a string", setting("lookup", "client_certificate", "garbage"), r"^lookup document: c"),
    (
        "cert garbage",
        setting(
            "charge", "client_certificate", {"certificate_pem": "garbage", "private_key_pem": ""}
        ),
        r"^charge document: client_certificate is unusable",
    ),
    ("CA garbage", setting("lookup", "ca_bundle_pem", "garbage"), r"^lookup document: ca_bundle"),
    ("CA a number", setting("charge", "ca_bundle_pem", 1), r"^charge document: ca_bundle_pem"),
    ("CA empty", setting("charge", "ca_bundle_pem", " "), r"^charge document: ca_bundle_pem"),
    ("timeout text", setting("charge", "connect_timeout", "2"), r"^charge document: connect_t"),
    ("timeout true", setting("lookup", "read_timeout", True), r"^lookup document: read_timeout"),
    ("timeout zero", setting("charge", "read_timeout", 0), r"^charge document: read_timeout"),
    ("timeout inf", setting("charge", "read_timeout", float("inf")), r"^charge document: read_t"),
    ("over budget", setting("charge", "read_timeout", 13), r"^charge document: read_timeout"),
    ("sum over budget", setting("charge", "read_timeout", 8), r"exceed 12 seconds in all"),
    ("lag negative", setting("lookup", "lookup_lag_seconds", -1), r"^lookup document: lookup_lag"),
    ("lag text", setting("lookup", "lookup_lag_seconds", "60"), r"^lookup document: lookup_lag"),
    ("lag fraction", setting("lookup", "lookup_lag_seconds", 1.5), r"^lookup document: lookup_l"),
    ("lag true", setting("lookup", "lookup_lag_seconds", True), r"^lookup document: lookup_lag"),
    ("lag a year", setting("lookup", "lookup_lag_seconds", 3600 * 24 * 365), r"^lookup document"),
]


@pytest.mark.parametrize(
    ("edit", "message"), [case[1:] for case in MALFORMED], ids=[case[0] for case in MALFORMED]
)
def test_an_unusable_document_fails_the_cold_start_naming_the_setting_not_its_value(
    edit: Edit, message: str
) -> None:
    with pytest.raises(ForwardingSettingsInvalid, match=message) as raised:
        build(edit)

    assert not any(value in str(raised.value) for value in NEVER_ECHOED)


@pytest.mark.parametrize(
    ("allowed", "message"),
    [
        ("", r"^FORWARD_ALLOWED_HOSTS is empty"),
        (" , ", r"^FORWARD_ALLOWED_HOSTS is empty"),
        ("processor.example/v1", r"^FORWARD_ALLOWED_HOSTS entries are host or host:port"),
        ("user@processor.example", r"^FORWARD_ALLOWED_HOSTS entries"),
        ("processor.example:https", r"^FORWARD_ALLOWED_HOSTS entries"),
        ("evil.example", r"^charge\.url: host is not on the allow-list \(FORWARD_ALLOWED_HOSTS\)"),
    ],
)
def test_the_allow_list_is_the_deployment_s_and_is_checked_too(allowed: str, message: str) -> None:
    with pytest.raises(ForwardingSettingsInvalid, match=message):
        build(allowed=allowed)


def test_an_allow_list_entry_names_any_port_but_443_and_hosts_match_in_any_case() -> None:
    charge = {
        **CHARGE,
        "charge": {**CHARGE["charge"], "url": "https://PROCESSOR.example:8443/v1?a=1"},
    }
    allowed = "processor.example:8443, processor.example"

    settings = ForwardingSettings.from_secrets(charge, LOOKUP, allowed)

    assert settings.charge_endpoint() == Endpoint("processor.example", 8443, "/v1?a=1")


def test_the_default_time_caps_total_the_budget_one_attempt_each() -> None:
    assert build().worst_case_seconds() == 2 + 4 + 2 + 4 == WORST_CASE_BUDGET_SECONDS

    # A longer read for the charge fits when the lookup gives the time back.
    def rebalanced(charge: dict[str, Any], lookup: dict[str, Any]) -> None:
        charge.update(connect_timeout=1, read_timeout=7)
        lookup.update(connect_timeout=1, read_timeout=3)

    assert build(rebalanced).worst_case_seconds() == 12
    # The reconciler only looks up: its worst case is the lookup's.
    assert ForwardingProcessor.from_secrets(None, LOOKUP, ALLOWED).worst_case_seconds() == 6


def test_the_reconciler_s_processor_cannot_charge_and_sends_nothing() -> None:
    # processor.example is never resolved: a send would fail differently ("unreachable").
    processor = ForwardingProcessor.from_secrets(None, LOOKUP, ALLOWED)
    card = Card(pan="4242424242424242", exp_month=1, exp_year=2031, cvv="123", brand="visa")

    with pytest.raises(ProcessorFailure, match="holds no charge settings"):
        processor.charge(card=card, amount=100, currency="EUR", idempotency_key="k", payment_id="p")


@pytest.mark.parametrize(("lag", "expected"), [(None, 0), (0, 0), (90, 90)])
def test_the_lookup_lag_comes_from_the_lookup_document(lag: int | None, expected: int) -> None:
    lookup = LOOKUP if lag is None else {**LOOKUP, "lookup_lag_seconds": lag}
    assert ForwardingProcessor.from_secrets(CHARGE, lookup, ALLOWED).lookup_lag_seconds == expected


def test_no_setting_shows_its_credentials_in_a_repr() -> None:
    certificate = {"certificate_pem": "CERT-PEM", "private_key_pem": "KEY-PEM"}
    charge = {**CHARGE, "client_certificate": certificate, "ca_bundle_pem": "CA-PEM"}
    shown = repr(ForwardingSettings.from_secrets(charge, LOOKUP, ALLOWED))

    assert "ClientCertificate(...)" in shown  # the repr was really built from these settings
    assert not any(secret in shown for secret in ("sk_live", "CERT-PEM", "KEY-PEM", "CA-PEM"))


@pytest.mark.parametrize(
    ("charge", "lookup", "message"),
    [
        (["garbage"], LOOKUP, r"^charge document must be a JSON object"),
        (CHARGE, "garbage", r"^lookup document must be a JSON object"),
        (None, None, r"^lookup document must be a JSON object"),
    ],
)
def test_a_secret_that_is_not_a_json_object_is_refused(
    charge: Any, lookup: Any, message: str
) -> None:
    with pytest.raises(ForwardingSettingsInvalid, match=message) as raised:
        ForwardingProcessor.from_secrets(charge, lookup, ALLOWED)

    assert "garbage" not in str(raised.value)


DECLINING = {
    "rules": [{"http_status": [402], "outcome": "declined"}],
    "decline_code_path": "code",
    "decline_codes": {"51": "insufficient_funds", "nsf": "insufficient_funds"},
}


@pytest.mark.parametrize(
    ("processor_code", "contract_code"),
    [
        ("51", "insufficient_funds"),  # mapped by the rules
        ("nsf", "insufficient_funds"),
        ("insufficient_funds", "insufficient_funds"),  # already the contract's name
        ("card_declined", "card_declined"),
        ("do_not_honor", "card_declined"),  # any other decline
        ("4242424242424242", "card_declined"),  # an echoed card never travels on
        (None, "card_declined"),
        (51, "card_declined"),
    ],
)
def test_a_processor_s_decline_code_becomes_one_the_contract_names(
    processor_code: Any, contract_code: str
) -> None:
    rules = ResponseRules.from_settings(DECLINING)
    body = {} if processor_code is None else {"code": processor_code}
    assert rules.classify(402, body).decline_code == contract_code


@pytest.mark.parametrize(
    "decline_codes",
    [{"51": "do_not_honor"}, {"51": None}, ["51"], "51"],
    ids=["not-a-contract-code", "null", "list", "text"],
)
def test_decline_codes_must_map_onto_the_contract_s(decline_codes: Any) -> None:
    with pytest.raises(ForwardingSettingsInvalid) as raised:
        ResponseRules.from_settings(DECLINING | {"decline_codes": decline_codes})
    assert "do_not_honor" not in str(raised.value)
