"""The spec check's rules, on a tiny hand-made OpenAPI document (the real one is not shipped)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tests.processors.check_stripe_spec import (
    OurSchemas,
    canned_responses,
    check_schemas,
    main,
    published_response_errors,
)
from tests.processors.stripe_schemas import Schema

PATH = "/v1/charges"


def published() -> dict[str, Any]:
    """One operation in Stripe's style: a form request, an object reply, an error default."""
    form = {
        "type": "object",
        "required": ["amount"],
        "properties": {
            "amount": {"type": "integer"},
            "capture": {"type": "boolean"},
            "kind": {"type": "string", "enum": ["card", "sepa_debit"]},
            "metadata": {
                "anyOf": [
                    {"type": "object", "additionalProperties": {"type": "string"}},
                    {"type": "string", "enum": [""]},
                ]
            },
        },
    }
    charge = {
        "type": "object",
        "required": ["id", "status"],
        "properties": {
            "id": {"type": "string"},
            "status": {"type": "string", "enum": ["failed", "succeeded"]},
            "failure": {"anyOf": [{"$ref": "#/components/schemas/failure"}], "nullable": True},
        },
    }
    return {
        "openapi": "3.0.0",
        "info": {"version": "2020-08-27"},
        "paths": {
            PATH: {
                "post": {
                    "requestBody": {
                        "content": {"application/x-www-form-urlencoded": {"schema": form}}
                    },
                    "responses": {
                        "200": _json({"$ref": "#/components/schemas/charge"}),
                        "default": _json({"$ref": "#/components/schemas/failure"}),
                    },
                }
            }
        },
        "components": {
            "schemas": {
                "charge": charge,
                "failure": {
                    "type": "object",
                    "required": ["code"],
                    "properties": {"code": {"type": "string"}},
                },
            }
        },
    }


def _json(schema: Schema) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def ours() -> OurSchemas:
    """Schemas that agree with published(): each test spoils one thing."""
    string = {"type": "string"}
    return OurSchemas(
        requests={
            ("POST", PATH): {
                "type": "object",
                "additionalProperties": False,
                "required": ["amount", "kind"],
                "properties": {
                    "amount": {"type": "integer"},
                    "kind": {"type": "string", "enum": ["card"]},
                    "metadata": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["order"],
                        "properties": {"order": string},
                    },
                },
            }
        },
        headers={"POST": {"properties": {"stripe-version": {"enum": ["2020-08-27"]}}}},
        responses={("POST", PATH): {"200": "charge", "default": "failure"}},
        definitions={
            "charge": {
                "type": "object",
                "required": ["id", "status"],
                "properties": {
                    "id": string,
                    "status": {"type": "string", "enum": ["failed", "succeeded"]},
                    "failure": {"anyOf": [{"$ref": "#/$defs/failure"}, {"type": "null"}]},
                },
            },
            "failure": {"type": "object", "required": ["code"], "properties": {"code": string}},
        },
    )


def test_schemas_that_agree_with_the_spec_pass_and_every_field_is_counted() -> None:
    findings = check_schemas(published(), ours())

    assert findings.problems == []
    # request: object, amount, kind, metadata, order; 200: charge, id, status, failure, code;
    # default: failure, code; the Stripe-Version header.
    assert findings.fields_checked == 13


def spoiled(change: str) -> OurSchemas:
    schemas = ours()
    request = copy.deepcopy(dict(schemas.requests))
    definitions = copy.deepcopy(dict(schemas.definitions))
    headers = copy.deepcopy(dict(schemas.headers))
    fields = request[("POST", PATH)]["properties"]
    charge = definitions["charge"]
    if change == "type":
        fields["amount"] = {"type": "string"}
    elif change == "request enum value":
        fields["kind"]["enum"] = ["card", "cash"]
    elif change == "unknown field":
        fields["tip"] = {"type": "integer"}
    elif change == "spec-required field not required":
        request[("POST", PATH)]["required"] = ["kind"]
    elif change == "open request":
        del request[("POST", PATH)]["additionalProperties"]
    elif change == "response enum missing a value":
        charge["properties"]["status"]["enum"] = ["succeeded"]
    elif change == "response field required that the spec may omit":
        charge["required"] = ["id", "status", "failure"]
    elif change == "null refused where the spec may send it":
        charge["properties"]["failure"] = {"$ref": "#/$defs/failure"}
    elif change == "api version":
        headers["POST"]["properties"]["stripe-version"]["enum"] = ["2023-10-16"]
    return OurSchemas(request, headers, schemas.responses, definitions)


@pytest.mark.parametrize(
    ("change", "finding"),
    [
        ("type", "amount: type string in ours, integer in the spec"),
        ("request enum value", "kind: ['cash'] not among the spec's values"),
        ("unknown field", "tip: not in the spec"),
        ("spec-required field not required", "amount: required by the spec, not always sent"),
        ("open request", "request: ours must be closed"),
        ("response enum missing a value", "status: the spec may send ['failed']"),
        ("response field required that the spec may omit", "failure: required by ours"),
        ("null refused where the spec may send it", "failure: the spec may send null"),
        ("api version", "POST Stripe-Version: ['2023-10-16'] is not ['2020-08-27']"),
    ],
)
def test_each_kind_of_disagreement_is_found_and_named(change: str, finding: str) -> None:
    problems = check_schemas(published(), spoiled(change)).problems

    assert any(finding in problem for problem in problems), problems


def test_a_canned_response_is_validated_against_the_published_schema_nullable_included() -> None:
    good = {"id": "ch_1", "status": "failed", "failure": None}
    bad = {"id": "ch_1", "status": "charged", "failure": {"code": 7}}

    assert published_response_errors(published(), [("POST", PATH, 200, good)]).problems == []
    problems = published_response_errors(published(), [("POST", PATH, 200, bad)]).problems
    assert any("status" in p for p in problems)
    assert any("failure: {'code': 7} is not valid" in p for p in problems)
    errors = published_response_errors(published(), [("POST", PATH, 402, {"code": "x"})])
    assert (errors.fields_checked, errors.problems) == (1, [])


def test_the_canned_responses_cover_every_answer_the_adapter_reads_and_keep_to_our_schemas() -> (
    None
):
    # canned_responses() refuses to return anything the fake flagged as a violation.
    answers = {(method, path, status) for method, path, status, _ in canned_responses()}

    assert answers == {
        ("POST", "/v1/payment_methods", 200),
        ("POST", "/v1/payment_methods", 403),
        ("POST", "/v1/payment_intents", 200),
        ("POST", "/v1/payment_intents", 400),
        ("POST", "/v1/payment_intents", 402),
        ("GET", "/v1/payment_intents/search", 200),
        ("GET", "/v1/payment_intents/search", 401),
    }


def test_without_a_spec_file_the_check_exits_2_saying_what_to_give(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([]) == 2
    assert main([str(tmp_path / "missing.json")]) == 2
    assert "give Stripe's openapi/spec3.json" in capsys.readouterr().err


def test_a_spec_our_schemas_disagree_with_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "spec3.json"
    spec.write_text(json.dumps(published()))

    assert main([str(spec)]) == 1
    assert "FAILED" in capsys.readouterr().out
