"""Hold tests/processors/stripe_schemas.py to Stripe's published OpenAPI document.

Usage: make stripe-spec-check STRIPE_SPEC=path/to/openapi/spec3.json
(the file of github.com/stripe/openapi; python -m tests.processors.check_stripe_spec PATH).

Every field of our schemas must exist in the published one with the same type, and:
- requests: our enum values are values it allows, what it requires we always send, and our
  schema is closed (a field we send without knowing it is a finding);
- responses: our enums list every value it can send (a status we do not know would be a guess),
  we require only what it always sends, and we accept null wherever it may be null.
Then the fake's canned responses (tests/processors/stripe_fake.py) must validate against the
published schemas themselves. Exit 0 when all agree, 1 on any disagreement, 2 without a spec.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from tests.processors import stripe_schemas
from tests.processors.stripe_fake import API_KEY, LOOKUP_API_KEY, TEST_CARDS, StripeFake
from tests.processors.stripe_schemas import Schema

Role = str  # "request" or "response"
_NULL: Schema = {"type": "null"}


@dataclass(frozen=True)
class OurSchemas:
    requests: Mapping[tuple[str, str], Schema]
    headers: Mapping[str, Schema]
    responses: Mapping[tuple[str, str], Mapping[str, str]]
    definitions: Mapping[str, Schema]


OURS = OurSchemas(
    stripe_schemas.REQUESTS,
    stripe_schemas.HEADERS,
    stripe_schemas.RESPONSES,
    stripe_schemas.DEFINITIONS,
)


@dataclass
class Findings:
    fields_checked: int = 0
    problems: list[str] = field(default_factory=list)


class PublishedSpec:
    """The parts of an OpenAPI 3.0 document the check reads."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.document = document

    @property
    def version(self) -> str:
        return str(self.document["info"]["version"])

    def resolve(self, node: Schema) -> Schema:
        while "$ref" in node:
            target: Any = self.document
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            node = target
        return node

    def operation(self, method: str, path: str) -> Schema | None:
        item = self.document["paths"].get(path, {})
        found: Schema | None = item.get(method.lower())
        return found

    def request(self, method: str, path: str) -> Schema | None:
        """A POST's form schema; a GET's query parameters as one object schema."""
        operation = self.operation(method, path)
        if operation is None:
            return None
        if method == "POST":
            content = operation["requestBody"]["content"]["application/x-www-form-urlencoded"]
            return self.resolve(content["schema"])
        query = [p for p in operation.get("parameters", []) if p["in"] == "query"]
        return {
            "type": "object",
            "properties": {p["name"]: p["schema"] for p in query},
            "required": [p["name"] for p in query if p.get("required")],
        }

    def response(self, method: str, path: str, status: str) -> Schema | None:
        operation = self.operation(method, path)
        if operation is None or status not in operation["responses"]:
            return None
        schema: Schema = operation["responses"][status]["content"]["application/json"]["schema"]
        return schema


def check_schemas(document: Mapping[str, Any], ours: OurSchemas = OURS) -> Findings:
    spec = PublishedSpec(document)
    comparison = _Comparison(spec, ours.definitions)
    for (method, path), schema in ours.requests.items():
        theirs = spec.request(method, path)
        if theirs is None:
            comparison.problem(f"{method} {path}", "not an operation of the spec")
            continue
        comparison.compare(schema, theirs, f"{method} {path} request", "request")
    for (method, path), by_status in ours.responses.items():
        for status, name in by_status.items():
            where = f"{method} {path} {status}"
            theirs = spec.response(method, path, status)
            if theirs is None:
                comparison.problem(where, "no such response in the spec")
                continue
            comparison.compare({"$ref": f"#/$defs/{name}"}, theirs, where, "response")
    for method, headers in ours.headers.items():
        version = headers["properties"]["stripe-version"].get("enum")
        comparison.findings.fields_checked += 1
        if version != [spec.version]:
            comparison.problem(f"{method} Stripe-Version", f"{version} is not [{spec.version!r}]")
    return comparison.findings


class _Comparison:
    def __init__(self, spec: PublishedSpec, definitions: Mapping[str, Schema]) -> None:
        self.spec = spec
        self.definitions = definitions
        self.findings = Findings()

    def problem(self, where: str, what: str) -> None:
        self.findings.problems.append(f"{where}: {what}")

    def compare(
        self,
        ours: Schema,
        theirs: Schema,
        where: str,
        role: Role,
        seen: frozenset[tuple[str, str]] = frozenset(),
    ) -> None:
        pair = (ours.get("$ref", ""), theirs.get("$ref", ""))
        if pair != ("", ""):
            if pair in seen:
                return  # a cycle (payment_intent -> last_payment_error -> payment_intent)
            seen = seen | {pair}
        ours, theirs = self._ours(ours), self.spec.resolve(theirs)
        ours_nullable, ours = _without_null(ours)
        ours = self._ours(ours)
        theirs_nullable = bool(theirs.get("nullable"))
        if role == "response" and theirs_nullable and not ours_nullable:
            self.problem(where, "the spec may send null, ours refuses it")
        if ours_nullable and not theirs_nullable:
            self.problem(where, "ours accepts null, the spec never has it")
        if "anyOf" in theirs:
            self._compare_options(ours, theirs["anyOf"], where, role, seen)
            return
        self.findings.fields_checked += 1
        if ours.get("type") != theirs.get("type"):
            self.problem(
                where, f"type {ours.get('type')} in ours, {theirs.get('type')} in the spec"
            )
            return
        self._compare_enums(ours, theirs, where, role)
        if ours.get("type") == "object":
            self._compare_objects(ours, theirs, where, role, seen)
        elif ours.get("type") == "array":
            self.compare(ours.get("items", {}), theirs.get("items", {}), f"{where}[]", role, seen)

    def _ours(self, schema: Schema) -> Schema:
        while "$ref" in schema:
            schema = self.definitions[schema["$ref"].removeprefix("#/$defs/")]
        return schema

    def _compare_options(
        self,
        ours: Schema,
        options: list[Schema],
        where: str,
        role: Role,
        seen: frozenset[tuple[str, str]],
    ) -> None:
        """Ours must agree with one of the spec's alternatives: the one it disagrees with least."""
        outcomes = []
        for option in options:
            trial = _Comparison(self.spec, self.definitions)
            trial.compare(ours, option, where, role, seen)
            outcomes.append(trial.findings)
        best = min(outcomes, key=lambda findings: len(findings.problems))
        self.findings.fields_checked += best.fields_checked
        self.findings.problems += best.problems

    def _compare_enums(self, ours: Schema, theirs: Schema, where: str, role: Role) -> None:
        our_values, their_values = ours.get("enum"), theirs.get("enum")
        if their_values is None:
            if our_values is not None and role == "response":
                self.problem(where, f"ours allows only {our_values}, the spec any value")
            return
        if our_values is None:
            self.problem(where, f"the spec allows only {their_values}, ours lists no values")
            return
        if unknown := [v for v in our_values if v not in their_values]:
            self.problem(where, f"{unknown} not among the spec's values")
        if role == "response" and (unlisted := [v for v in their_values if v not in our_values]):
            self.problem(where, f"the spec may send {unlisted}, ours does not list them")

    def _compare_objects(
        self,
        ours: Schema,
        theirs: Schema,
        where: str,
        role: Role,
        seen: frozenset[tuple[str, str]],
    ) -> None:
        their_properties = theirs.get("properties", {})
        their_others = theirs.get("additionalProperties")
        for name, schema in ours.get("properties", {}).items():
            if name in their_properties:
                self.compare(schema, their_properties[name], f"{where}.{name}", role, seen)
            elif isinstance(their_others, dict):
                self.compare(schema, their_others, f"{where}.{name}", role, seen)
            else:
                self.problem(f"{where}.{name}", "not in the spec")
        our_required = set(ours.get("required", []))
        their_required = set(theirs.get("required", []))
        if role == "request":
            if ours.get("additionalProperties") is not False:
                self.problem(where, "ours must be closed (additionalProperties: false)")
            for name in sorted(their_required - our_required):
                self.problem(f"{where}.{name}", "required by the spec, not always sent by ours")
        else:
            for name in sorted(our_required - their_required):
                self.problem(f"{where}.{name}", "required by ours, the spec may leave it out")


def _without_null(schema: Schema) -> tuple[bool, Schema]:
    options = schema.get("anyOf")
    if options and _NULL in options:
        rest = [o for o in options if o != _NULL]
        return True, rest[0] if len(rest) == 1 else {"anyOf": rest}
    return False, schema


def as_json_schema(node: Any) -> Any:
    """OpenAPI 3.0's `nullable` is not JSON Schema: make it an explicit null alternative."""
    if isinstance(node, list):
        return [as_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {k: as_json_schema(v) for k, v in node.items() if k != "nullable"}
    if node.get("nullable"):
        return {"anyOf": [converted, _NULL]}
    return converted


Sample = tuple[str, str, int, dict[str, Any]]  # method, path, status, body


def published_response_errors(document: Mapping[str, Any], samples: list[Sample]) -> Findings:
    """Each sample body validated against the published schema of its operation and status."""
    converted = as_json_schema(document)
    spec = PublishedSpec(converted)
    findings = Findings()
    for method, path, status, body in samples:
        schema = spec.response(method, path, str(status)) or spec.response(method, path, "default")
        where = f"{method} {path} {status}"
        if schema is None:
            findings.problems.append(f"{where}: no such response in the spec")
            continue
        validator = Draft202012Validator({**schema, "components": converted["components"]})
        findings.fields_checked += 1
        findings.problems += [
            f"{where} {'/'.join(map(str, e.absolute_path))}: {e.message[:200]}"
            for e in validator.iter_errors(body)
        ]
    return findings


def canned_responses() -> list[Sample]:
    """What the fake answers, in-process: every test card charged, replays, searches, refusals."""
    fake = StripeFake()
    samples: list[Sample] = []

    def send(
        method: str, path: str, params: dict[str, Any], key: str = "", api_key: str = API_KEY
    ) -> dict[str, Any]:
        headers = {
            "authorization": f"Bearer {api_key}",
            "stripe-version": stripe_schemas.STRIPE_API_VERSION,
        }
        if key:
            headers["idempotency-key"] = key
        status, body, _ = fake.handle(method, path, params, headers)
        samples.append((method, path, status, body))
        return body

    for number in ["4242424242424242", *TEST_CARDS]:
        card = {"number": number, "exp_month": "12", "exp_year": "2031", "cvc": "123"}
        method = send("POST", "/v1/payment_methods", {"type": "card", "card": card}, f"{number}-pm")
        intent = {
            "amount": "1999",
            "currency": "eur",
            "payment_method": method["id"],
            "confirm": "true",
            "metadata": {"payment_id": "pay_1", "idempotency_key": f"k{number}"},
        }
        send("POST", "/v1/payment_intents", intent, f"{number}-pi")
        send("POST", "/v1/payment_intents", intent, f"{number}-pi")  # a replay
        send("POST", "/v1/payment_intents", {**intent, "amount": "2500"}, f"{number}-pi")
        query = {"query": f"metadata['idempotency_key']:'k{number}'", "limit": "2"}
        send("GET", "/v1/payment_intents/search", query)
    send(
        "GET",
        "/v1/payment_intents/search",
        {"query": "metadata['idempotency_key']:'none'", "limit": "2"},
    )
    send("POST", "/v1/payment_methods", {"type": "card", "card": card}, "refused", LOOKUP_API_KEY)
    send("GET", "/v1/payment_intents/search", {"query": "x", "limit": "2"}, api_key="sk_test_wrong")
    if fake.violations:
        raise AssertionError(f"the fake broke our own schemas: {fake.violations}")
    return samples


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not argv[0]:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    path = Path(argv[0])
    if not path.is_file():
        print(f"error: {path} is not a file: give Stripe's openapi/spec3.json", file=sys.stderr)
        return 2
    raw = path.read_bytes()
    document = json.loads(raw)
    print(
        f"Stripe spec {path}: API version {document['info']['version']},"
        f" SHA-256 {hashlib.sha256(raw).hexdigest()}"
    )
    ours = check_schemas(document)
    canned = published_response_errors(document, canned_responses())
    print(f"our schemas: {ours.fields_checked} fields checked, {len(ours.problems)} disagree")
    print(
        f"the fake's canned responses: {canned.fields_checked} validated against the published"
        f" schemas, {len(canned.problems)} fail"
    )
    print(
        "not in the published spec, so not checked: the Idempotency-Key header"
        " (Stripe's API reference: at most 255 characters)"
    )
    for line in sorted(set(ours.problems + canned.problems)):
        print(f"  {line}")
    if ours.problems or canned.problems:
        print("FAILED: tests/processors/stripe_schemas.py or the fake disagrees with the spec")
        return 1
    print("OK: every field, type, enum value and requiredness agrees")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
