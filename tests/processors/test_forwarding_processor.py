"""The forwarding processor against a local HTTPS processor behind a throwaway CA."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from card_tokens.cards import Card
from card_tokens.forwarding import (
    LOOKUP_FIELDS,
    ForwardingSettings,
    ForwardingSettingsInvalid,
    RequestTemplate,
)
from card_tokens.forwarding_processor import ForwardingProcessor
from card_tokens.processor import ChargeResult, ProcessorFailure, ProcessorOutcomeUnknown
from tests.flows import everything_written
from tests.processors.forward_fake import CHARGE_TEMPLATE as TEMPLATE
from tests.processors.https_fake import (
    Answer,
    FakeProcessor,
    Received,
    Reply,
    ThrowawayPki,
    closed_port,
    https_processor,
)

PAN = "4111111111111111"
CARD = Card(pan=PAN, exp_month=3, exp_year=2031, cvv="737", brand="visa", cardholder_name="Ada")
KEY = "jti-0001"
RULES = {
    "rules": [
        {"http_status": [200, 201], "path": "status", "equals": "approved", "outcome": "approved"},
        {"http_status": [200, 402], "path": "status", "equals": "declined", "outcome": "declined"},
        {"http_status": [400, 422], "outcome": "failed"},
    ],
    "decline_code_path": "error.code",
    "reference_path": "id",
}
LOOKUP = {
    "template": {"idempotency_key": "{{idempotency_key}}"},
    "rules": [
        {"path": "status", "equals": "approved", "outcome": "approved"},
        {"path": "status", "equals": "declined", "outcome": "declined"},
        {"http_status": [404], "outcome": "failed"},
    ],
    "decline_code_path": "error.code",
    "reference_path": "id",
    "amount_path": "amount",
    "currency_path": "currency",
}


@pytest.fixture(scope="module")
def pki() -> ThrowawayPki:
    return ThrowawayPki.generate()


def settings(
    fake: FakeProcessor,
    pki: ThrowawayPki,
    *,
    allowed: str | None = None,
    lookup: bool = True,
    **charge_document: Any,
) -> ForwardingSettings:
    """The two secret documents pointed at `fake`; `charge_document` members override."""
    trust = {"ca_bundle_pem": pki.server_ca.certificate_pem, "connect_timeout": 2}
    exchange = {"url": f"https://127.0.0.1:{fake.port}/v1/lookup", **LOOKUP}
    return ForwardingSettings.from_secrets(
        {
            "charge": {"url": fake.url, "template": TEMPLATE, **RULES},
            "headers": {"Authorization": "Bearer sk_test_forward"},
            **trust,
            **charge_document,
        },
        {**trust, "lookup": exchange} if lookup else trust,
        allowed or f"127.0.0.1:{fake.port}",
    )


def charge(processor: ForwardingProcessor) -> ChargeResult:
    return processor.charge(
        card=CARD, amount=1250, currency="EUR", idempotency_key=KEY, payment_id="pay_1"
    )


def json_reply(status: int, document: Any) -> Answer:
    return lambda _: Reply(status, json.dumps(document).encode())


@pytest.fixture
def approving(pki: ThrowawayPki) -> Iterator[FakeProcessor]:
    with https_processor(pki, json_reply(200, {"status": "approved", "id": "ch_1"})) as fake:
        yield fake


def test_the_card_goes_out_in_the_template_and_an_approval_comes_back(
    approving: FakeProcessor, pki: ThrowawayPki
) -> None:
    result = charge(ForwardingProcessor(settings(approving, pki)))

    assert result == ChargeResult("approved", None, "ch_1", 1250, "EUR")
    [received] = approving.received
    assert received.path == "/v1/charges"
    assert received.headers["Authorization"] == "Bearer sk_test_forward"
    assert json.loads(received.body) == {
        "card": {"number": PAN, "exp_month": "03", "exp_year": 2031, "cvc": "737"},
        "amount": 1250,
        "currency": "EUR",
        "idempotency_key": KEY,
        "metadata": {"payment_id": "pay_1"},
    }


@pytest.mark.parametrize(
    ("status", "document", "expected"),
    [
        (
            200,
            {"status": "declined", "error": {"code": "insufficient_funds"}},
            ChargeResult("declined", "insufficient_funds", f"forward_{KEY}", 1250, "EUR"),
        ),
        (
            402,
            {"status": "declined", "id": "ch_2"},
            ChargeResult("declined", "card_declined", "ch_2", 1250, "EUR"),
        ),
        (422, {"error": {"code": "invalid_card"}}, ProcessorFailure),
        (200, {"status": "pending"}, ProcessorOutcomeUnknown),
        (500, {"status": "approved"}, ProcessorOutcomeUnknown),
    ],
)
def test_the_rules_map_the_answer_to_declined_failed_or_unknown(
    pki: ThrowawayPki, status: int, document: Any, expected: Any
) -> None:
    with https_processor(pki, json_reply(status, document)) as fake:
        processor = ForwardingProcessor(settings(fake, pki))
        if isinstance(expected, ChargeResult):
            assert charge(processor) == expected
        else:
            with pytest.raises(expected):
                charge(processor)
        assert len(fake.received) == 1


def test_mtls_without_the_client_certificate_reaches_no_handler(pki: ThrowawayPki) -> None:
    answer = json_reply(200, {"status": "approved", "id": "ch_1"})
    with https_processor(pki, answer, require_client_certificate=True) as fake:
        with pytest.raises((ProcessorFailure, ProcessorOutcomeUnknown)):
            charge(ForwardingProcessor(settings(fake, pki)))

        assert fake.received == []
        assert fake.connections == 1


def test_mtls_presents_the_client_certificate(pki: ThrowawayPki) -> None:
    answer = json_reply(200, {"status": "approved", "id": "ch_1"})
    certificate = {
        "certificate_pem": pki.client.certificate_pem,
        "private_key_pem": pki.client.private_key_pem,
    }
    with https_processor(pki, answer, require_client_certificate=True) as fake:
        processor = ForwardingProcessor(settings(fake, pki, client_certificate=certificate))
        assert charge(processor).outcome == "approved"

        assert [r.client_common_name for r in fake.received] == ["forwarding-processor"]


def test_a_server_certificate_from_another_ca_is_refused(
    approving: FakeProcessor, pki: ThrowawayPki
) -> None:
    stranger = ThrowawayPki.generate()
    processor = ForwardingProcessor(
        settings(approving, pki, ca_bundle_pem=stranger.server_ca.certificate_pem)
    )
    with pytest.raises((ProcessorFailure, ProcessorOutcomeUnknown)):
        charge(processor)

    assert approving.received == []


@pytest.mark.parametrize(
    "allowed",
    ["processor.example", "localhost:{port}", "127.0.0.1:443", "127.0.0.1"],
)
def test_a_host_off_the_allow_list_is_refused_before_any_connection(
    approving: FakeProcessor, pki: ThrowawayPki, allowed: str
) -> None:
    with pytest.raises(ForwardingSettingsInvalid, match="allow-list"):
        ForwardingProcessor(settings(approving, pki, allowed=allowed.format(port=approving.port)))

    assert approving.connections == 0


def test_the_lookup_url_is_held_to_the_allow_list_too(
    approving: FakeProcessor, pki: ThrowawayPki
) -> None:
    built = settings(approving, pki)
    assert built.lookup is not None

    with pytest.raises(ForwardingSettingsInvalid, match=r"^lookup\.url: .*allow-list"):
        replace(built, lookup=replace(built.lookup, url="https://processor.example/v1/lookup"))


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_a_failure_and_is_not_followed(pki: ThrowawayPki, status: int) -> None:
    def answer(received: Received) -> Reply:
        if received.path == "/elsewhere":
            return Reply(200, b'{"status": "approved", "id": "ch_moved"}')
        return Reply(status, b"{}", headers={"Location": "/elsewhere"})

    with https_processor(pki, answer) as fake:
        with pytest.raises(ProcessorFailure, match="redirected"):
            charge(ForwardingProcessor(settings(fake, pki)))

        assert [r.path for r in fake.received] == ["/v1/charges"]


@pytest.mark.parametrize("declare_length", [True, False])
def test_an_oversized_answer_is_refused(pki: ThrowawayPki, declare_length: bool) -> None:
    padding = "x" * 5000
    body = json.dumps({"status": "approved", "id": "ch_1", "padding": padding}).encode()
    with https_processor(pki, lambda _: Reply(200, body, declare_length=declare_length)) as fake:
        processor = ForwardingProcessor(replace(settings(fake, pki), max_response_bytes=4096))
        with pytest.raises(ProcessorOutcomeUnknown, match="response_too_large"):
            charge(processor)
        # The same answer within the cap is an approval: the cap, not the body, refused it.
        roomy = ForwardingProcessor(replace(settings(fake, pki), max_response_bytes=len(body)))
        assert charge(roomy).outcome == "approved"


def test_a_slow_answer_times_out_after_the_request_went(pki: ThrowawayPki) -> None:
    late = Reply(200, b'{"status": "approved", "id": "ch_1"}', delay=1.5)
    with https_processor(pki, lambda _: late) as fake:
        processor = ForwardingProcessor(settings(fake, pki, read_timeout=0.3))
        with pytest.raises(ProcessorOutcomeUnknown):
            charge(processor)

        assert len(fake.received) == 1  # sent, so the charge may exist: in doubt, not failed


def test_a_processor_nobody_listens_on_fails_without_a_charge(pki: ThrowawayPki) -> None:
    nobody = FakeProcessor(port=closed_port())
    with pytest.raises(ProcessorFailure, match="unreachable"):
        charge(ForwardingProcessor(settings(nobody, pki)))


def echo(http_status: int, **fields: Any) -> Answer:
    """A processor that sends the whole request back, card included, in every field it can."""

    def answer(received: Received) -> Reply:
        request = json.loads(received.body)
        return Reply(http_status, json.dumps({**fields, "request": request}).encode())

    return answer


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (echo(200, status="declined", id=PAN, error={"code": PAN}), None),
        (echo(200, status="approved", id=f"ch_{PAN}"), None),
        (
            echo(
                402,
                status="declined",
                id="ch_4111-1111-1111-1111",
                error={"code": "4111_1111_1111_1111"},
            ),
            None,
        ),
        (echo(422, error={"message": f"bad card {PAN}"}), ProcessorFailure),
        (echo(503, status=PAN), ProcessorOutcomeUnknown),
    ],
)
def test_a_card_echoed_back_reaches_no_log_exception_or_result(
    pki: ThrowawayPki,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    answer: Answer,
    expected: type[Exception] | None,
) -> None:
    seen: list[str] = []
    with https_processor(pki, answer) as fake, everything_written(capsys, caplog) as outputs:
        caplog.set_level("DEBUG")  # urllib3's own connection log included
        processor = ForwardingProcessor(settings(fake, pki))
        if expected is None:
            result = charge(processor)
            seen += [repr(result), str(result.decline_code), result.processor_reference]
        else:
            with pytest.raises(expected) as raised:
                charge(processor)
            seen += [str(raised.value), repr(raised.value), repr(raised.value.__cause__)]
    written = "\n".join(outputs + seen)

    assert PAN in fake.received[0].body.decode()  # the card did go out, and came back
    assert "forwarding processor" in written  # the scan reads what the adapter wrote
    assert not re.search(r"4111.?1111.?1111.?1111", written)
    assert "737" not in written


def test_find_charge_reads_the_lookup_answer(pki: ThrowawayPki) -> None:
    found = {"status": "approved", "id": "ch_9", "amount": 1250, "currency": "EUR"}
    with https_processor(pki, json_reply(200, found)) as fake:
        assert ForwardingProcessor(settings(fake, pki)).find_charge(KEY) == ChargeResult(
            "approved", None, "ch_9", 1250, "EUR"
        )
        [received] = fake.received
    assert received.path == "/v1/lookup"
    assert json.loads(received.body) == {"idempotency_key": KEY}


@pytest.mark.parametrize(
    ("status", "document", "expected"),
    [
        (404, {"error": "no such charge"}, None),
        (200, {"status": "approved", "id": "ch_9"}, ProcessorOutcomeUnknown),  # no amount
        (500, {}, ProcessorOutcomeUnknown),
    ],
)
def test_find_charge_says_none_only_when_the_rules_say_so(
    pki: ThrowawayPki, status: int, document: Any, expected: Any
) -> None:
    with https_processor(pki, json_reply(status, document)) as fake:
        processor = ForwardingProcessor(settings(fake, pki))
        if expected is None:
            assert processor.find_charge(KEY) is None
        else:
            with pytest.raises(expected):
                processor.find_charge(KEY)


def test_find_charge_without_a_lookup_is_in_doubt(
    approving: FakeProcessor, pki: ThrowawayPki
) -> None:
    processor = ForwardingProcessor(settings(approving, pki, lookup=False))
    with pytest.raises(ProcessorOutcomeUnknown, match="no lookup"):
        processor.find_charge(KEY)
    assert approving.connections == 0


@pytest.mark.parametrize(
    "template",
    [
        '{"card": "number {{card.number}}"}',  # inside a longer string: substitution
        '{"card": "{{card.pan}}"}',  # not a field
        '{"{{card.number}}": 1}',  # in a member name
        '{"a": 1, "a": 2}',  # not one plain JSON document
        "{{card.number}}",
    ],
)
def test_a_template_is_whole_string_placeholders_in_json(template: str) -> None:
    with pytest.raises(ForwardingSettingsInvalid):
        RequestTemplate.parse(template)


def test_a_lookup_template_cannot_carry_the_card() -> None:
    with pytest.raises(ForwardingSettingsInvalid):
        RequestTemplate.parse('{"n": "{{card.number}}"}', fields=LOOKUP_FIELDS)


def test_a_card_field_cannot_break_out_of_its_string() -> None:
    template = RequestTemplate.parse('{"name": "{{card.cardholder_name}}", "amount": 1}')
    hostile = replace(CARD, cardholder_name='Ada", "amount": 999999, "x": "')

    rendered = json.loads(template.render({"card.cardholder_name": hostile.cardholder_name}))

    assert rendered == {"name": hostile.cardholder_name, "amount": 1}


def test_an_answer_trickled_in_is_cut_at_connect_plus_read_timeout(pki: ThrowawayPki) -> None:
    # Every byte comes well within the read timeout; all of them would take over 5 seconds.
    body = json.dumps({"status": "approved", "id": "ch_1", "padding": "x" * 40}).encode()
    with https_processor(pki, lambda _: Reply(200, body, trickle=0.1)) as fake:
        processor = ForwardingProcessor(settings(fake, pki, connect_timeout=0.5, read_timeout=0.5))
        started = time.monotonic()
        with pytest.raises(ProcessorOutcomeUnknown, match="answer lost"):
            charge(processor)
        elapsed = time.monotonic() - started

    assert 0.5 < elapsed < 0.5 + 0.5 + 0.4  # the deadline, not the end of the body, stopped it
