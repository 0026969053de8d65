"""docs/api.md says what openapi.yaml and the code say, table by table, so it cannot rot.

- its routes and each route's statuses are openapi.yaml's, and each status's codes are named in
  openapi.yaml's description of that response;
- its error table lists exactly the codes errors.py declares, each with its class's status and
  the `field` values the layer raises it with (read from the code's syntax tree);
- its request, response and brand tables are openapi.yaml's schemas and cards.BRANDS, with every
  bound, pattern and enum value; and the numbers in its prose are the code's constants.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from card_tokens import errors
from card_tokens.cards import BRANDS, MAX_CARDHOLDER_NAME, MAX_EXPIRY_YEARS_AHEAD, length_phrase
from card_tokens.config import MAX_TOKEN_LIFETIME_SECONDS
from card_tokens.errors import CardTokensError
from card_tokens.printable import PRINTABLE_CHARACTER
from card_tokens.processor import _DECLINES
from card_tokens.request_body import (
    MAX_AMOUNT,
    MAX_BODY_BYTES,
    MAX_JSON_DEPTH,
    MAX_REFERENCE,
    PAYMENT_REQUEST_FIELDS,
    TOKEN_REQUEST_FIELDS,
)
from card_tokens.stores import IDEMPOTENCY_WINDOW_SECONDS
from card_tokens.tokens import MAX_TOKEN_BYTES, TOKEN_TYPE
from local.cfn import load_template

REPO_ROOT = Path(__file__).resolve().parents[2]
PAGE = (REPO_ROOT / "docs" / "api.md").read_text(encoding="utf-8")
SPEC: dict[str, Any] = yaml.safe_load((REPO_ROOT / "openapi.yaml").read_text(encoding="utf-8"))
SCHEMAS = SPEC["components"]["schemas"]
CODE_SOURCES = [
    *sorted((REPO_ROOT / "layers" / "card_tokens" / "card_tokens").glob("*.py")),
    *sorted((REPO_ROOT / "functions").glob("*/app.py")),
]
UNKNOWN_FIELD = "<an unknown field's name>"
NO_FIELD = "<no field>"


# ------------------------------------------------------------------ reading the page


def section(heading: str, text: str = PAGE) -> str:
    """The text under a Markdown heading, up to the next heading of the same or a higher level."""
    level = len(heading) - len(heading.lstrip("#"))
    lines = text.splitlines()
    start = lines.index(heading)
    end, fenced = len(lines), False
    for index in range(start + 1, len(lines)):
        fenced ^= lines[index].startswith("```")
        if not fenced and re.match(rf"#{{1,{level}}} ", lines[index]):
            end = index
            break
    return "\n".join(lines[start + 1 : end])


def prose(text: str = PAGE) -> str:
    """The text with every run of whitespace as one space: rewrapping changes nothing."""
    return " ".join(text.split())


def tables(text: str) -> list[list[dict[str, str]]]:
    """Each Markdown table in the text: rows as {header: cell}."""
    found, block = [], []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            block.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif block:
            header, _, *rows = block
            found.append([dict(zip(header, row, strict=True)) for row in rows])
            block = []
    return found


def table(text: str, first_column: str) -> list[dict[str, str]]:
    """The one table in the text whose first column has this header."""
    matches = [t for t in tables(text) if t and next(iter(t[0])) == first_column]
    assert len(matches) == 1, f"expected one table starting with '{first_column}'"
    return matches[0]


def quoted(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def route_sections() -> dict[tuple[str, str], str]:
    return {
        (match[1], match[2]): section(match[0])
        for match in re.finditer(
            r"^## (GET|POST|PUT|PATCH|DELETE|OPTIONS) (\S+)$", PAGE, re.MULTILINE
        )
    }


def error_table() -> dict[str, dict[str, str]]:
    rows = table(section("## Errors"), "code")
    by_code = {quoted(row["code"])[0]: row for row in rows}
    assert len(by_code) == len(rows), "a code is listed twice"
    return by_code


# ------------------------------------------------------------------ reading the code and spec


def declared_errors() -> dict[str, int]:
    """Every error code errors.py declares, with its HTTP status."""
    classes = [
        value
        for value in vars(errors).values()
        if isinstance(value, type) and issubclass(value, CardTokensError)
    ]
    return {cls.code: cls.status for cls in classes}


class _Module(ast.NodeVisitor):
    """One module's calls, each with the innermost function it is made in, and its functions."""

    def __init__(self, path: Path) -> None:
        self.stack: list[ast.FunctionDef] = []
        self.calls: list[tuple[ast.FunctionDef | None, ast.Call]] = []
        self.visit(ast.parse(path.read_text(encoding="utf-8")))

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self.stack.append(node)
        self.generic_visit(node)
        self.stack.pop()

    def visit_Call(self, node: ast.Call) -> None:
        self.calls.append((self.stack[-1] if self.stack else None, node))
        self.generic_visit(node)

    def values(
        self, expression: ast.expr, where: ast.FunctionDef | None, depth: int = 0
    ) -> set[str]:
        """What a `field=` expression can be: a literal, or a parameter traced to its callers."""
        if isinstance(expression, ast.Constant) and isinstance(expression.value, str):
            return {expression.value}
        parameters = [argument.arg for argument in where.args.args] if where else []
        if isinstance(expression, ast.Name) and expression.id in parameters and depth < 5:
            assert where is not None
            index = parameters.index(expression.id)
            found: set[str] = set()
            for caller, call in self.calls:
                if _callee(call) != where.name:
                    continue
                keyword = next((k.value for k in call.keywords if k.arg == expression.id), None)
                argument = keyword or (call.args[index] if index < len(call.args) else None)
                found |= self.values(argument, caller, depth + 1) if argument else {NO_FIELD}
            return found
        return {UNKNOWN_FIELD}  # a name computed from the request (an unknown field's)


def _callee(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Name):
        return call.func.id
    return call.func.attr if isinstance(call.func, ast.Attribute) else None


def raised_fields() -> dict[str, set[str]]:
    """The `field` values each code is raised with, in the layer and the handlers: literals,
    traced through a module's own helpers (`_required(value, "cvv")`); UNKNOWN_FIELD for a name
    read from the request; NO_FIELD for a raise without one."""
    classes = {
        name: value.code
        for name, value in vars(errors).items()
        if isinstance(value, type) and issubclass(value, CardTokensError)
    }
    found: dict[str, set[str]] = {code: set() for code in classes.values()}
    for path in CODE_SOURCES:
        module = _Module(path)
        for where, call in module.calls:
            code = classes.get(_callee(call) or "")
            if code is not None:
                field = next((k.value for k in call.keywords if k.arg == "field"), None)
                found[code] |= module.values(field, where) if field else {NO_FIELD}
    return found


def schema(ref_or_schema: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in ref_or_schema:
        return SCHEMAS[ref_or_schema["$ref"].rsplit("/", 1)[1]]
    return ref_or_schema


def response(operation: dict[str, Any], status: str) -> dict[str, Any]:
    answer = operation["responses"][status]
    if "$ref" in answer:
        return SPEC["components"]["responses"][answer["$ref"].rsplit("/", 1)[1]]
    return answer


def flattened(properties: dict[str, Any], prefix: str = "") -> dict[str, dict[str, Any]]:
    """Nested object properties as `card.brand`, array items as `keys[].kid`."""
    names: dict[str, dict[str, Any]] = {}
    for name, value in properties.items():
        names[prefix + name] = value
        if value.get("type") == "object" and "properties" in value:
            names |= flattened(value["properties"], f"{prefix}{name}.")
        if value.get("type") == "array" and "properties" in value.get("items", {}):
            names |= flattened(value["items"]["properties"], f"{prefix}{name}[].")
    return names


def type_cell(value: dict[str, Any]) -> str:
    resolved = schema(value)
    return resolved["type"] + (" or null" if value.get("nullable") else "")


# ------------------------------------------------------------------ routes and answers


def test_the_page_has_a_section_for_every_operation_and_no_other() -> None:
    in_spec = {(method.upper(), path) for path, item in SPEC["paths"].items() for method in item}
    assert set(route_sections()) == in_spec


@pytest.mark.parametrize(("method", "path"), sorted(route_sections()))
def test_each_route_lists_its_statuses_and_codes_as_openapi_does(method: str, path: str) -> None:
    operation = SPEC["paths"][path][method.lower()]
    rows = table(section("### Answers", route_sections()[(method, path)]), "status")
    assert [row["status"] for row in rows] == sorted(operation["responses"])
    documented = error_table()
    for row in rows:
        described = response(operation, row["status"])["description"]
        for code in quoted(row["code"]):
            assert code in re.findall(r"[a-z]+(?:_[a-z]+)+", described), (row, described)
            assert documented[code]["HTTP status"] == row["status"]


# ------------------------------------------------------------------ errors


def test_the_error_table_lists_every_declared_code_with_its_status() -> None:
    documented = {code: int(row["HTTP status"]) for code, row in error_table().items()}
    assert documented == declared_errors()
    assert len(documented) == 19


def test_the_error_table_names_the_fields_each_code_is_raised_with() -> None:
    raised = raised_fields()
    for code, row in error_table().items():
        cell = row["field"]
        if cell == "—":
            documented = {NO_FIELD}
        else:
            documented = set(quoted(cell))
            documented |= {UNKNOWN_FIELD} if "unknown field" in cell else set()
            documented |= {NO_FIELD} if re.search(r"\bnone\b", cell) else set()
        assert documented == (raised[code] or {NO_FIELD}), code


def test_every_retry_after_code_says_to_wait_for_it() -> None:
    for cls in (errors.ServiceUnavailable, errors.PaymentInProgress):
        assert "Retry-After" in error_table()[cls.code]["retry?"]
        assert cls.retry_after == 2
    assert "`Retry-After` (seconds; 2 today)" in prose(section("## Errors"))


# ------------------------------------------------------------------ requests


@pytest.mark.parametrize(
    ("route", "schema_name", "fields"),
    [
        ("## POST /tokens", "TokenRequest", TOKEN_REQUEST_FIELDS),
        ("## POST /payments", "PaymentRequest", PAYMENT_REQUEST_FIELDS),
    ],
)
def test_each_request_table_is_the_schema_field_by_field(
    route: str, schema_name: str, fields: tuple[str, ...]
) -> None:
    spec = SCHEMAS[schema_name]
    rows = table(section("### Request", section(route)), "field")
    # The fields, in the order the code checks them (the page says so)
    assert [quoted(row["field"])[0] for row in rows] == list(fields) == list(spec["properties"])
    for row in rows:
        name = quoted(row["field"])[0]
        value = spec["properties"][name]
        rules = row["rules"]
        assert row["type"] == type_cell(value), name
        assert row["required"] == ("yes" if name in spec["required"] else "no"), name
        printable = re.fullmatch(
            re.escape(f"^{PRINTABLE_CHARACTER}") + r"\{(\d+),(\d+)\}\$", value.get("pattern", "")
        )
        if printable:
            assert "printable text" in rules, name
            low, high = printable[1], printable[2]
            length = f"at most {high}" if low == "0" else f"{low} to {high}"
            assert f"{length} characters" in rules, name
        elif "pattern" in value:
            assert f"`{value['pattern']}`" in rules, name
        if "minimum" in value:
            assert f"from {value['minimum']} to {value['maximum']}" in rules, name
        if "minLength" in value:
            assert f"from {value['minLength']} to {value['maxLength']} characters" in rules, name
        elif "maxLength" in value:
            assert f"at most {value['maxLength']} characters" in rules, name
        if "enum" in value:
            assert set(re.findall(r"`([A-Z]{3})`", rules)) == set(value["enum"]), name


def test_the_request_limits_in_prose_are_the_codes() -> None:
    text = prose()
    assert f"at most {MAX_CARDHOLDER_NAME} characters" in text
    assert f"at most {MAX_EXPIRY_YEARS_AHEAD} years from now" in text
    assert f"from 1 to {MAX_REFERENCE} characters" in text
    assert f"from 1 to {MAX_AMOUNT}, in the currency's minor units" in text
    assert f"at most {MAX_BODY_BYTES // 1024} KiB" in text
    assert f"is over {MAX_BODY_BYTES // 1024} KiB" in text
    assert f"nesting deeper than {MAX_JSON_DEPTH} levels" in text
    token = SCHEMAS["PaymentRequest"]["properties"]["token"]
    assert token["maxLength"] == MAX_TOKEN_BYTES
    assert f"at most {MAX_TOKEN_BYTES} characters" in text
    assert f"from 1 to {MAX_TOKEN_BYTES} characters" in text


def test_the_idempotency_key_is_described_as_the_code_takes_it() -> None:
    (parameter,) = SPEC["paths"]["/payments"]["post"]["parameters"]
    assert parameter["name"] == "Idempotency-Key"
    text = prose(section("### Request", section("## POST /payments")))
    assert f"pattern `{parameter['schema']['pattern']}`" in text
    assert f"for {IDEMPOTENCY_WINDOW_SECONDS // 3600} h after the key was first used" in text


def test_the_brand_table_is_the_codes() -> None:
    def ranges(prefixes: tuple[tuple[int, int], ...]) -> str:
        return ", ".join(
            str(low) if low == high else f"{low}\u2013{high}" for low, high in prefixes
        )

    rows = table(section("## POST /tokens"), "brand")
    assert [quoted(row["brand"])[0] for row in rows] == SCHEMAS["Brand"]["enum"]
    by_name = {brand.name: brand for brand in BRANDS}
    for row in rows:
        brand = by_name[quoted(row["brand"])[0]]
        assert row["name"] == brand.display_name
        assert row["number starts with"] == ranges(brand.prefixes)
        assert row["digits"] == length_phrase(brand.lengths)
        assert row["CVV digits"] == str(brand.cvv_length)


def test_the_test_cards_are_the_sandbox_processors() -> None:
    rows = table(section("## POST /payments"), "card")
    outcomes = {row["card"].replace(" ", ""): row["result"] for row in rows}
    for pan, decline_code in _DECLINES.items():
        if decline_code is None:
            assert outcomes[pan].startswith("`502 processor_error`")
        else:
            assert outcomes[pan] == f"`declined`, `{decline_code}`"
    assert {pan for pan in outcomes if pan.isdigit()} == set(_DECLINES)


# ------------------------------------------------------------------ responses


@pytest.mark.parametrize(
    ("route", "heading", "schema_name"),
    [
        ("## POST /tokens", "### Response: 201 `IssuedToken`", "IssuedToken"),
        ("## POST /payments", "### Response: 201 `Payment`", "Payment"),
        ("## GET /.well-known/jwks.json", None, "Jwks"),
    ],
)
def test_each_response_table_is_the_schema_field_by_field(
    route: str, heading: str | None, schema_name: str
) -> None:
    text = section(route)
    rows = table(section(heading, text) if heading else text, "field")
    properties = flattened(SCHEMAS[schema_name]["properties"])
    assert [quoted(row["field"])[0] for row in rows] == list(properties)
    for row in rows:
        name = quoted(row["field"])[0]
        value = properties[name]
        assert row["type"] == type_cell(value), name
        if row["notes"].startswith("as requested"):
            assert name in SCHEMAS["PaymentRequest"]["properties"], name
            continue
        for allowed in value.get("enum", []):
            if allowed is not None:
                assert f"`{allowed}`" in row["notes"], (name, allowed)


def test_the_token_and_jwks_facts_are_the_codes_and_the_templates() -> None:
    lifetime = load_template()["Parameters"]["TokenLifetimeSeconds"]
    assert lifetime["MaxValue"] == MAX_TOKEN_LIFETIME_SECONDS
    assert f"({lifetime['Default']} s by default, at most {MAX_TOKEN_LIFETIME_SECONDS})" in prose()
    assert f"always `{TOKEN_TYPE}`" in PAGE
    payment_id = SCHEMAS["Payment"]["properties"]["payment_id"]["pattern"]
    assert f"pattern `{payment_id}`" in PAGE
    assert SPEC["paths"]["/payments/{payment_id}"]["get"]["parameters"][0]["schema"] == {
        "type": "string",
        "pattern": payment_id,
    }
    assert f"`payment_id` matches `{payment_id}`" in PAGE
    jwks_app = (REPO_ROOT / "functions" / "publish_jwks" / "app.py").read_text(encoding="utf-8")
    (max_age,) = re.findall(r"^JWKS_MAX_AGE_SECONDS = (\d+)$", jwks_app, re.MULTILINE)
    assert f"`Cache-Control: public, max-age={max_age}`" in PAGE


# ------------------------------------------------------------------ links


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation but - and _ dropped, - for spaces."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("page", ["api.md", "integrate.md"])
def test_every_link_of_the_new_pages_resolves(page: str) -> None:
    path = REPO_ROOT / "docs" / page
    for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text(encoding="utf-8")):
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        assert linked.is_file(), f"{page}: {target}"
        if anchor:
            text = linked.read_text(encoding="utf-8")
            headings = re.findall(r"^#{1,6} (.+)$", text, re.MULTILINE)
            assert anchor in {slug(h) for h in headings}, f"{page}: {target}"
