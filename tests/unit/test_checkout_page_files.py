"""web/checkout: what the page serves (locally and as a Lambda) and what its script may not do."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from web.checkout.page import (
    PAGE_DIRECTORY,
    PAGE_FILES,
    PUBLISHABLE_KEY_VARIABLE,
    SECURITY_HEADERS,
    lambda_handler,
    page_response,
)

# The script's code without its whole-line comments (which may name what it never does).
SCRIPT = re.sub(
    r"^\s*//.*$", "", (PAGE_DIRECTORY / "app.js").read_text(encoding="utf-8"), flags=re.MULTILINE
)
HTML = (PAGE_DIRECTORY / "index.html").read_text(encoding="utf-8")


def rest_event(path: str) -> dict[str, object]:
    """Payload 1.0 as a REST API sends it on its execute-api URL: the stage is in context.path."""
    return {
        "resource": path,
        "path": path,
        "httpMethod": "GET",
        "requestContext": {"stage": "v1", "path": f"/v1{path}", "resourcePath": path},
    }


@pytest.mark.parametrize("path", sorted(PAGE_FILES))
def test_the_lambda_serves_each_file_as_text_with_the_security_headers(path: str) -> None:
    response = lambda_handler(rest_event(path), None)

    # Text, not base64: the REST API declares no binary media types, so it would pass a base64
    # body on undecoded.
    assert response["statusCode"] == 200
    assert response["isBase64Encoded"] is False
    file_name, content_type = PAGE_FILES[path]
    assert response["body"].encode() == (PAGE_DIRECTORY / file_name).read_bytes()
    assert response["headers"] == {"content-type": content_type, **dict(SECURITY_HEADERS)}


def test_the_lambda_and_the_local_stack_send_the_same_bytes_and_headers() -> None:
    found = page_response("/")
    assert found is not None
    status, headers, body = found

    response = lambda_handler(rest_event("/"), None)

    assert (status, dict(headers), body) == (
        response["statusCode"],
        response["headers"],
        response["body"].encode(),
    )


KEY = "pk_" + "abcdefgh234567ab" + "cdefghij"
KEY_SLOT = '<meta name="card-tokens-publishable-key" content="{}">'


@pytest.mark.parametrize(
    ("configured", "in_page"),
    [(KEY, KEY), (None, ""), ("", ""), ('pk_x"><script>', ""), (KEY.upper(), "")],
)
def test_the_page_carries_the_publishable_key_of_its_configuration_if_it_has_a_keys_form(
    monkeypatch: pytest.MonkeyPatch, configured: str | None, in_page: str
) -> None:
    if configured is None:
        monkeypatch.delenv(PUBLISHABLE_KEY_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(PUBLISHABLE_KEY_VARIABLE, configured)

    served = lambda_handler(rest_event("/"), None)["body"]
    local = page_response("/", configured)

    assert KEY_SLOT.format(in_page) in served
    assert local is not None
    assert local[2].decode() == served
    assert served.count("card-tokens-publishable-key") == 1


def test_the_script_sends_the_key_of_the_page_to_tokens_only() -> None:
    assert 'postJson("tokens", cardRequest(), merchantHeaders)' in SCRIPT
    assert SCRIPT.count("merchantHeaders") == 2  # defined once, sent once


@pytest.mark.parametrize("path", ["/page.py", "/index.html", "/../page.py", "/app.js/"])
def test_nothing_but_the_page_files_is_served(path: str) -> None:
    assert page_response(path) is None
    assert lambda_handler(rest_event(path), None)["statusCode"] == 404


def test_the_policy_allows_only_this_origin_and_no_framing() -> None:
    headers = dict(SECURITY_HEADERS)

    assert headers["content-security-policy"].startswith("default-src 'self';")
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    "pattern",
    [
        r"localStorage",
        r"sessionStorage",
        r"document\.cookie",
        r"indexedDB",
        r"console\.",
        r"history\.(push|replace)State",
        r"location\s*=",
    ],
)
def test_the_script_has_no_way_to_put_card_data_in_storage_the_url_or_the_console(
    pattern: str,
) -> None:
    assert re.search(pattern, SCRIPT) is None


class _Inputs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.inputs: dict[str, dict[str, str | None]] = {}
        self.inline: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "input" and attributes.get("id"):
            self.inputs[str(attributes["id"])] = attributes
        if "style" in attributes or any(name.startswith("on") for name in attributes):
            self.inline.append(tag)
        if tag == "script" and "src" not in attributes:
            self.inline.append("script")


def test_card_inputs_have_autocomplete_and_no_name_so_no_plain_form_post_can_carry_them() -> None:
    parsed = _Inputs()
    parsed.feed(HTML)

    expected = {
        "card-number": "cc-number",
        "exp-month": "cc-exp-month",
        "exp-year": "cc-exp-year",
        "cvv": "cc-csc",
        "cardholder-name": "cc-name",
    }
    for input_id, autocomplete in expected.items():
        assert parsed.inputs[input_id]["autocomplete"] == autocomplete
        assert "name" not in parsed.inputs[input_id]


def test_the_page_has_no_inline_script_style_or_handler_that_the_policy_would_block() -> None:
    parsed = _Inputs()
    parsed.feed(HTML)

    assert parsed.inline == []


def test_the_forms_post_and_never_submit_by_get() -> None:
    forms = re.findall(r"<form\b[^>]*>", HTML)

    assert len(forms) == 2
    assert all('method="post"' in form for form in forms)


def test_the_test_card_list_has_every_sandbox_outcome_and_only_cards_that_tokenize() -> None:
    from datetime import UTC, datetime

    from card_tokens.cards import validate_card
    from card_tokens.processor import _DECLINES

    listed = {code.replace(" ", "") for code in re.findall(r"<code>([0-9 ]{13,})</code>", HTML)}

    # Every card the sandbox processor treats apart (declines, the 0119 failure), and an Amex
    assert set(_DECLINES) | {"4242424242424242", "378282246310005"} <= listed
    for pan in listed:
        cvv = "1234" if pan.startswith(("34", "37")) else "123"
        validate_card(
            card_number=pan,
            exp_month=12,
            exp_year=2030,
            cvv=cvv,
            now=datetime(2026, 1, 1, tzinfo=UTC),
        )


def test_the_card_number_placeholder_reads_as_an_example() -> None:
    parsed = _Inputs()
    parsed.feed(HTML)

    assert str(parsed.inputs["card-number"]["placeholder"]).startswith("e.g. ")
    assert "input::placeholder" in (PAGE_DIRECTORY / "style.css").read_text(encoding="utf-8")
