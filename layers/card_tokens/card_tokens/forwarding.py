"""The pure half of the forwarding processor: request template, response rules, host allow-list.

The card goes into the request by walking the parsed template and replacing whole-string
placeholders, never by substituting into JSON text: a card field cannot break out of its string.
Everything here is built once from settings; nothing in it comes from a payment request.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from card_tokens.cards import Card
from card_tokens.records import DECLINE_CODES, contract_decline_code
from card_tokens.strict_json import JsonRejected, parse_strict_json


class ForwardingSettingsInvalid(ValueError):
    """The forwarding settings are unusable. The message names the setting, never a value."""


# The allow-list comes from the deployment alone (a template parameter), never from a secret
# document or a request.
ALLOW_LIST_SETTING = "FORWARD_ALLOWED_HOSTS"


# "{{name}}" gives the value's JSON type (numbers for amount and expiry); "{{name|text}}" its
# text (expiry month zero-padded), for processors that want every field as a string.
_PLACEHOLDER = re.compile(r"\{\{([a-z_.]+)(\|text)?\}\}")
CHARGE_FIELDS = frozenset(
    {
        "card.number",
        "card.exp_month",
        "card.exp_year",
        "card.cvv",
        "card.cardholder_name",
        "card.brand",
        "amount",
        "currency",
        "idempotency_key",
        "payment_id",
    }
)
# A lookup never carries the card: only the key the charge was made under.
LOOKUP_FIELDS = frozenset({"idempotency_key"})


def charge_values(
    card: Card, *, amount: int, currency: str, idempotency_key: str, payment_id: str
) -> dict[str, Any]:
    return {
        "card.number": card.pan,
        "card.exp_month": card.exp_month,
        "card.exp_year": card.exp_year,
        "card.cvv": card.cvv,
        "card.cardholder_name": card.cardholder_name,
        "card.brand": card.brand,
        "amount": amount,
        "currency": currency,
        "idempotency_key": idempotency_key,
        "payment_id": payment_id,
    }


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, int):
        return f"{value:02d}"  # exp_month 3 → "03"; amounts and years are wider anyway
    return str(value)


@dataclass(frozen=True)
class RequestTemplate:
    """A JSON document whose whole-string placeholders are filled at each charge."""

    document: Any
    fields: frozenset[str]

    @classmethod
    def parse(cls, text: str, *, fields: frozenset[str] = CHARGE_FIELDS) -> RequestTemplate:
        try:
            document = parse_strict_json(text.encode("utf-8"))
        except JsonRejected:
            raise ForwardingSettingsInvalid("request template is not JSON") from None
        template = cls(document, fields)
        template._check(document)
        return template

    def _check(self, node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if "{{" in key:
                    raise ForwardingSettingsInvalid("request template: placeholder in a key")
                self._check(value)
        elif isinstance(node, list):
            for value in node:
                self._check(value)
        elif isinstance(node, str) and "{{" in node:
            match = _PLACEHOLDER.fullmatch(node)
            # A placeholder is a whole string: "prefix {{card.number}}" would be substitution.
            if match is None or match.group(1) not in self.fields:
                raise ForwardingSettingsInvalid("request template: unknown placeholder")

    def render(self, values: Mapping[str, Any]) -> bytes:
        return json.dumps(self._fill(self.document, values), separators=(",", ":")).encode()

    def _fill(self, node: Any, values: Mapping[str, Any]) -> Any:
        if isinstance(node, dict):
            return {key: self._fill(value, values) for key, value in node.items()}
        if isinstance(node, list):
            return [self._fill(value, values) for value in node]
        if isinstance(node, str):
            match = _PLACEHOLDER.fullmatch(node)
            if match is not None:
                value = values[match.group(1)]
                return _as_text(value) if match.group(2) else value
        return node


_MISSING = object()


def field_at(document: Any, path: str) -> Any:
    """JSONPath-lite: "a.b.0.c" walks members and list indexes; _MISSING when absent."""
    node = document
    for step in path.split("."):
        if isinstance(node, dict) and step in node:
            node = node[step]
        elif isinstance(node, list) and step.isdigit() and int(step) < len(node):
            node = node[int(step)]
        else:
            return _MISSING
    return node


# "failed": the processor says nothing was charged. "conflict": the idempotency key was already
# used with other parameters (the token's charge exists; this request's never will).
Verdict = Literal["approved", "declined", "failed", "conflict"]
VERDICTS = ("approved", "declined", "failed", "conflict")


@dataclass(frozen=True)
class ResponseRule:
    """Matches when the HTTP status is one of `http_status` (any if empty) and the field at
    `path` equals `equals` (no field test if path is empty)."""

    outcome: Verdict
    path: str = ""
    equals: Any = None
    http_status: frozenset[int] = frozenset()

    def matches(self, status: int, body: Any) -> bool:
        if self.http_status and status not in self.http_status:
            return False
        return not self.path or field_at(body, self.path) == self.equals


# What a decline code and a processor reference may look like once they leave the response:
# short plain words, so an echoed card number can never travel on as one.
_SAFE_REFERENCE = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
# Twelve digits or more, even split by the separators a reference may hold: a card number.
_LONG_DIGITS = re.compile(r"[0-9](?:[_.:-]?[0-9]){11,}")


@dataclass(frozen=True)
class Classified:
    """What a response says. outcome None: no rule matched, so nobody knows."""

    outcome: Verdict | None
    decline_code: str | None = None
    reference: str | None = None
    amount: int | None = None  # read only where amount_path is set (a lookup's answer)
    currency: str | None = None


@dataclass(frozen=True)
class ResponseRules:
    """The first matching rule decides; a response no rule matches leaves the outcome unknown
    (a charge may exist), so the payment waits for a lookup instead of guessing."""

    rules: tuple[ResponseRule, ...]
    decline_code_path: str = ""
    reference_path: str = ""
    # A lookup's answer names the charge's amount and currency (the payment checks them).
    amount_path: str = ""
    currency_path: str = ""
    # The processor's decline codes that mean one of the contract's ("51" → insufficient_funds).
    decline_codes: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> ResponseRules:
        try:
            rules = tuple(
                ResponseRule(
                    outcome=rule["outcome"],
                    path=rule.get("path", ""),
                    equals=rule.get("equals"),
                    http_status=frozenset(int(s) for s in rule.get("http_status", ())),
                )
                for rule in settings["rules"]
            )
            decline_code_path = str(settings.get("decline_code_path", ""))
            reference_path = str(settings.get("reference_path", ""))
            amount_path = str(settings.get("amount_path", ""))
            currency_path = str(settings.get("currency_path", ""))
            decline_codes = dict(settings.get("decline_codes", {}))
        except (KeyError, TypeError, ValueError, AttributeError):
            raise ForwardingSettingsInvalid("response rules are malformed") from None
        if not rules or any(r.outcome not in VERDICTS for r in rules):
            raise ForwardingSettingsInvalid(
                "response rules: outcome must be approved/declined/failed/conflict"
            )
        if not all(
            isinstance(code, str) and meaning in DECLINE_CODES
            for code, meaning in decline_codes.items()
        ):
            raise ForwardingSettingsInvalid(
                "decline_codes: each must map to card_declined or insufficient_funds"
            )
        return cls(
            rules, decline_code_path, reference_path, amount_path, currency_path, decline_codes
        )

    def classify(self, status: int, body: Any) -> Classified:
        for rule in self.rules:
            if rule.matches(status, body):
                return Classified(
                    outcome=rule.outcome,
                    decline_code=self._decline_code(body) if rule.outcome == "declined" else None,
                    reference=self._reference(body),
                    amount=self._amount(body),
                    currency=self._currency(body),
                )
        return Classified(outcome=None)

    def _decline_code(self, body: Any) -> str:
        """The processor's code, through the rules' decline_codes, as the contract names it."""
        code = field_at(body, self.decline_code_path) if self.decline_code_path else None
        if isinstance(code, str):
            code = self.decline_codes.get(code, code)
        return contract_decline_code(code)

    def _amount(self, body: Any) -> int | None:
        amount = field_at(body, self.amount_path) if self.amount_path else None
        return amount if type(amount) is int and amount >= 0 else None

    def _currency(self, body: Any) -> str | None:
        currency = field_at(body, self.currency_path) if self.currency_path else None
        if isinstance(currency, str) and re.fullmatch(r"[A-Za-z]{3}", currency):
            return currency.upper()  # the contract's ISO 4217 capitals
        return None

    def _reference(self, body: Any) -> str | None:
        if not self.reference_path:
            return None
        reference = field_at(body, self.reference_path)
        if (
            isinstance(reference, str)
            and _SAFE_REFERENCE.fullmatch(reference)
            and not _LONG_DIGITS.search(reference)
        ):
            return reference
        return None


EXCHANGE_MEMBERS = frozenset(
    {
        "url",
        "template",
        "rules",
        "decline_code_path",
        "reference_path",
        "amount_path",
        "currency_path",
        "decline_codes",
    }
)


@dataclass(frozen=True)
class Exchange:
    """One request to the processor: where it goes, what it carries, how its answer reads."""

    url: str
    template: RequestTemplate
    rules: ResponseRules

    @classmethod
    def from_settings(
        cls, settings: Any, *, name: str = "charge", fields: frozenset[str] = CHARGE_FIELDS
    ) -> Exchange:
        """`name` is the setting's name, the only thing an error says about it."""
        _only_members(settings, EXCHANGE_MEMBERS, name)
        url, template = settings.get("url"), settings.get("template")
        if not isinstance(url, str) or template is None:
            raise ForwardingSettingsInvalid(f"{name} needs a url and a template")
        # The template as JSON text, or already as the document (a settings file's object).
        text = template if isinstance(template, str) else json.dumps(template)
        try:
            return cls(
                url,
                RequestTemplate.parse(text, fields=fields),
                ResponseRules.from_settings(settings),
            )
        except ForwardingSettingsInvalid as error:
            raise ForwardingSettingsInvalid(f"{name}: {error}") from None


def _only_members(document: Any, allowed: frozenset[str], name: str) -> None:
    """A member nobody reads is refused, not ignored: a document cannot add a setting (such as
    an allow-list of its own) that looks honoured. The error lists what is allowed, never what
    the document holds."""
    if not isinstance(document, Mapping):
        raise ForwardingSettingsInvalid(f"{name} must be a JSON object")
    if not set(document) <= allowed:
        raise ForwardingSettingsInvalid(
            f"{name} holds a member it does not know (allowed: {', '.join(sorted(allowed))})"
        )


@dataclass(frozen=True)
class Endpoint:
    """An https URL checked against the allow-list when the settings are read."""

    host: str
    port: int
    path: str  # with its query, as sent on the request line

    @classmethod
    def parse(cls, url: str, allowed_hosts: AllowList, *, name: str = "charge.url") -> Endpoint:
        """`name` is the setting the URL came from: errors name it, never the URL."""
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise ForwardingSettingsInvalid(f"{name}: must be https://host/...")
        if parts.username is not None or parts.password is not None or parts.fragment:
            raise ForwardingSettingsInvalid(f"{name}: must carry no credentials or fragment")
        try:
            port = parts.port or 443
        except ValueError:
            raise ForwardingSettingsInvalid(f"{name}: has an invalid port") from None
        host = parts.hostname.lower()
        if not allowed_hosts.allows(host, port):
            raise ForwardingSettingsInvalid(
                f"{name}: host is not on the allow-list ({ALLOW_LIST_SETTING})"
            )
        path = parts.path or "/"
        return cls(host, port, f"{path}?{parts.query}" if parts.query else path)


@dataclass(frozen=True)
class AllowList:
    """Hosts ("host" for port 443, or "host:port") the card may be sent to."""

    entries: frozenset[tuple[str, int]]

    @classmethod
    def parse(cls, hosts: str | list[str]) -> AllowList:
        items = hosts.split(",") if isinstance(hosts, str) else hosts
        entries = set()
        for item in (i.strip().lower() for i in items):
            if not item:
                continue
            host, _, port = item.rpartition(":") if ":" in item else (item, "", "443")
            if not host or not port.isdigit() or "/" in host or "@" in host:
                raise ForwardingSettingsInvalid(
                    f"{ALLOW_LIST_SETTING} entries are host or host:port"
                )
            entries.add((host, int(port)))
        if not entries:
            raise ForwardingSettingsInvalid(f"{ALLOW_LIST_SETTING} is empty")
        return cls(frozenset(entries))

    def allows(self, host: str, port: int) -> bool:
        return (host.lower(), port) in self.entries


# One charge and, when its answer is lost, one lookup, each a connect and a read, no retry:
# the payment function's time budget leaves them 12 seconds in all, defaults included.
DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT = 2.0, 4.0
WORST_CASE_BUDGET_SECONDS = 12.0
# The reconciler trusts "no charge" only this long after the charge; past a day, a payment
# would stay in doubt longer than anyone waits for it.
MAX_LOOKUP_LAG_SECONDS = 24 * 3600
MAX_RESPONSE_BYTES = 64 * 1024


@dataclass(frozen=True, repr=False)
class ClientCertificate:
    """mTLS: a PEM certificate chain and its unencrypted PEM private key."""

    certificate_pem: str
    private_key_pem: str

    def __repr__(self) -> str:
        return "ClientCertificate(...)"


@dataclass(frozen=True)
class Channel:
    """How one exchange reaches the processor: its credentials and its time caps, all from
    the same secret (the charge's or the lookup's)."""

    # Static headers such as the processor's API key: sent, never logged.
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    client_certificate: ClientCertificate | None = None
    ca_bundle_pem: str | None = field(default=None, repr=False)  # a private CA, not the system's
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    read_timeout: float = DEFAULT_READ_TIMEOUT

    @property
    def worst_case_seconds(self) -> float:
        return self.connect_timeout + self.read_timeout

    @classmethod
    def from_document(cls, document: Mapping[str, Any], name: str) -> Channel:
        return cls(
            headers=_headers(document.get("headers", {}), f"{name}: headers"),
            client_certificate=_client_certificate(
                document.get("client_certificate"), f"{name}: client_certificate"
            ),
            ca_bundle_pem=_optional_text(document.get("ca_bundle_pem"), f"{name}: ca_bundle_pem"),
            connect_timeout=_seconds(
                document.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT), f"{name}: connect_timeout"
            ),
            read_timeout=_seconds(
                document.get("read_timeout", DEFAULT_READ_TIMEOUT), f"{name}: read_timeout"
            ),
        )


_CHANNEL_MEMBERS = frozenset(
    {"headers", "client_certificate", "ca_bundle_pem", "connect_timeout", "read_timeout"}
)
CHARGE_DOCUMENT_MEMBERS = _CHANNEL_MEMBERS | {"charge"}
LOOKUP_DOCUMENT_MEMBERS = _CHANNEL_MEMBERS | {"lookup", "lookup_lag_seconds"}
# RFC 9110 token characters: a header name cannot smuggle a second header in.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e]*")


def _headers(headers: Any, name: str) -> dict[str, str]:
    if not isinstance(headers, Mapping) or not all(
        isinstance(key, str)
        and isinstance(value, str)
        and _HEADER_NAME.fullmatch(key)
        and _HEADER_VALUE.fullmatch(value)
        for key, value in headers.items()
    ):
        raise ForwardingSettingsInvalid(f"{name} must map header names to single-line text")
    return dict(headers)


def _client_certificate(document: Any, name: str) -> ClientCertificate | None:
    if document is None:
        return None
    members = frozenset({"certificate_pem", "private_key_pem"})
    _only_members(document, members, name)
    if set(document) != members or not all(isinstance(v, str) for v in document.values()):
        raise ForwardingSettingsInvalid(f"{name} needs certificate_pem and private_key_pem")
    return ClientCertificate(document["certificate_pem"], document["private_key_pem"])


def _optional_text(value: Any, name: str) -> str | None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ForwardingSettingsInvalid(f"{name} must be text")
    return value


def _seconds(value: Any, name: str) -> float:
    # bool is an int in Python, and true is no number of seconds.
    if type(value) not in (int, float) or not 0 < value <= WORST_CASE_BUDGET_SECONDS:
        raise ForwardingSettingsInvalid(f"{name} must be a number of seconds above 0")
    return float(value)


def _lag(value: Any, name: str) -> int:
    if type(value) is not int or not 0 <= value <= MAX_LOOKUP_LAG_SECONDS:
        raise ForwardingSettingsInvalid(
            f"{name} must be whole seconds from 0 to {MAX_LOOKUP_LAG_SECONDS}"
        )
    return value


@dataclass(frozen=True)
class ForwardingSettings:
    """Fixed at cold start; nothing here comes from a request, and every URL in it is checked
    against the allow-list, and the time caps against the budget, whenever one is built."""

    allowed_hosts: AllowList
    charge: Exchange | None  # None: this function only looks up (the reconciler)
    charge_channel: Channel = Channel()
    lookup: Exchange | None = None  # without one, find_charge can only say "unknown"
    lookup_channel: Channel = Channel()
    lookup_lag_seconds: int = 0
    max_response_bytes: int = MAX_RESPONSE_BYTES

    def __post_init__(self) -> None:
        self.charge_endpoint()
        self.lookup_endpoint()
        if self.worst_case_seconds() > WORST_CASE_BUDGET_SECONDS:
            raise ForwardingSettingsInvalid(
                "connect_timeout + read_timeout of the charge and lookup documents exceed"
                f" {WORST_CASE_BUDGET_SECONDS:g} seconds in all"
            )

    def charge_endpoint(self) -> Endpoint | None:
        if self.charge is None:
            return None
        return Endpoint.parse(self.charge.url, self.allowed_hosts, name="charge.url")

    def lookup_endpoint(self) -> Endpoint | None:
        if self.lookup is None:
            return None
        return Endpoint.parse(self.lookup.url, self.allowed_hosts, name="lookup.url")

    def worst_case_seconds(self) -> float:
        """One attempt at each configured exchange, no retry: the longest the processor can
        hold a payment (the charge, then the lookup after a lost answer)."""
        return (self.charge_channel.worst_case_seconds if self.charge else 0.0) + (
            self.lookup_channel.worst_case_seconds if self.lookup else 0.0
        )

    @classmethod
    def from_secrets(
        cls, charge: Mapping[str, Any] | None, lookup: Mapping[str, Any], allowed_hosts: str
    ) -> ForwardingSettings:
        """The two secret documents (the charge's readable by the payment function alone) and
        the allow-list from the deployment, which no document can widen."""
        hosts = AllowList.parse(allowed_hosts)
        if charge is not None:
            _only_members(charge, CHARGE_DOCUMENT_MEMBERS, "charge document")
            if "charge" not in charge:
                raise ForwardingSettingsInvalid("charge document needs charge")
        _only_members(lookup, LOOKUP_DOCUMENT_MEMBERS, "lookup document")
        lookup_exchange = lookup.get("lookup")
        return cls(
            allowed_hosts=hosts,
            charge=None if charge is None else Exchange.from_settings(charge["charge"]),
            charge_channel=(
                Channel() if charge is None else Channel.from_document(charge, "charge document")
            ),
            lookup=(
                None
                if lookup_exchange is None
                else Exchange.from_settings(lookup_exchange, name="lookup", fields=LOOKUP_FIELDS)
            ),
            lookup_channel=Channel.from_document(lookup, "lookup document"),
            lookup_lag_seconds=_lag(
                lookup.get("lookup_lag_seconds", 0), "lookup document: lookup_lag_seconds"
            ),
        )
