"""The forwarding processor: the card, filled into a JSON template, POSTed to an allow-listed host.

One HTTPS request per charge, no retry and no redirect followed: a second send could charge
twice, and a redirect could carry the card to a host nobody allow-listed. Whatever the processor
answers stays here: logs and exceptions carry fixed words and the HTTP status, never a body,
because a processor may echo the card back.
"""

from __future__ import annotations

import os
import ssl
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import urllib3
from urllib3.exceptions import ConnectTimeoutError, HTTPError, NewConnectionError

from card_tokens.cards import Card
from card_tokens.forwarding import (
    LOOKUP_FIELDS,
    AllowList,
    Endpoint,
    Exchange,
    ForwardingSettingsInvalid,
    charge_values,
)
from card_tokens.observability import logger
from card_tokens.processor import ChargeResult, ProcessorFailure, ProcessorOutcomeUnknown
from card_tokens.strict_json import JsonRejected, parse_strict_json

MAX_RESPONSE_BYTES = 64 * 1024
# Well inside the payment function's time budget; the read timeout bounds the whole answer too.
CONNECT_TIMEOUT, READ_TIMEOUT = 3.0, 10.0
_CHUNK = 8 * 1024


@dataclass(frozen=True, repr=False)
class ClientCertificate:
    """mTLS: a PEM certificate chain and its unencrypted PEM private key."""

    certificate_pem: str
    private_key_pem: str

    def __repr__(self) -> str:
        return "ClientCertificate(...)"


@dataclass(frozen=True)
class ForwardingSettings:
    """Fixed at cold start from the deployment's settings; nothing here comes from a request."""

    allowed_hosts: AllowList
    charge: Exchange
    lookup: Exchange | None = None  # without one, find_charge can only say "unknown"
    # Static headers such as the processor's API key: sent, never logged.
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    client_certificate: ClientCertificate | None = None
    ca_bundle_pem: str | None = None  # a private CA to trust instead of the system's
    connect_timeout: float = CONNECT_TIMEOUT
    read_timeout: float = READ_TIMEOUT
    max_response_bytes: int = MAX_RESPONSE_BYTES

    @classmethod
    def from_document(
        cls,
        document: Mapping[str, Any],
        *,
        allowed_hosts: AllowList,
        headers: Mapping[str, str] | None = None,
        client_certificate: ClientCertificate | None = None,
        ca_bundle_pem: str | None = None,
    ) -> ForwardingSettings:
        """The request and response shapes as one JSON document; credentials come separately."""
        try:
            charge = document["charge"]
            lookup = document.get("lookup")
            return cls(
                allowed_hosts=allowed_hosts,
                charge=Exchange.from_settings(charge),
                lookup=Exchange.from_settings(lookup, fields=LOOKUP_FIELDS) if lookup else None,
                headers=dict(headers or {}),
                client_certificate=client_certificate,
                ca_bundle_pem=ca_bundle_pem,
                connect_timeout=float(document.get("connect_timeout", CONNECT_TIMEOUT)),
                read_timeout=float(document.get("read_timeout", READ_TIMEOUT)),
            )
        except ForwardingSettingsInvalid:
            raise
        except (KeyError, TypeError, ValueError):
            raise ForwardingSettingsInvalid("forwarding settings are malformed") from None


def tls_context(
    client_certificate: ClientCertificate | None, ca_bundle_pem: str | None
) -> ssl.SSLContext:
    """Verified TLS 1.2+, with the client certificate loaded when there is one."""
    context = (
        ssl.create_default_context(cadata=ca_bundle_pem)
        if ca_bundle_pem
        else (ssl.create_default_context())
    )
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if client_certificate is not None:
        # ssl loads a certificate chain only from files: a private directory (0700) holding a
        # 0600 file that lives just as long as the load.
        with tempfile.TemporaryDirectory(prefix="client-cert-") as directory:
            path = os.path.join(directory, "client.pem")
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as pem:
                pem.write(client_certificate.certificate_pem.strip() + "\n")
                pem.write(client_certificate.private_key_pem.strip() + "\n")
            try:
                context.load_cert_chain(path)
            except ssl.SSLError:
                raise ForwardingSettingsInvalid("client certificate or key is unusable") from None
    return context


class _Unsent(Exception):
    """The connection failed before any byte of the request left: nothing was charged."""


@dataclass(frozen=True)
class _Answer:
    status: int
    body: Any  # the parsed JSON, or None when the body is not JSON


class ForwardingProcessor:
    """The PaymentProcessor port over a processor's own HTTPS API."""

    def __init__(self, settings: ForwardingSettings) -> None:
        # Both URLs are checked against the allow-list here, once: a charge has no way to
        # name another host.
        self._charge = Endpoint.parse(settings.charge.url, settings.allowed_hosts)
        self._lookup = (
            Endpoint.parse(settings.lookup.url, settings.allowed_hosts) if settings.lookup else None
        )
        self._settings = settings
        self._context = tls_context(settings.client_certificate, settings.ca_bundle_pem)
        self._pools: dict[tuple[str, int], urllib3.HTTPSConnectionPool] = {}

    def charge(
        self, *, card: Card, amount: int, currency: str, idempotency_key: str, payment_id: str
    ) -> ChargeResult:
        settings = self._settings
        body = settings.charge.template.render(
            charge_values(
                card,
                amount=amount,
                currency=currency,
                idempotency_key=idempotency_key,
                payment_id=payment_id,
            )
        )
        try:
            answer = self._post(self._charge, body)
        except _Unsent:
            raise ProcessorFailure("forwarding processor unreachable") from None
        finally:
            del body
        if _redirect(answer.status):
            raise ProcessorFailure(f"forwarding processor redirected ({answer.status})")
        verdict = settings.charge.rules.classify(answer.status, answer.body)
        logger.info(
            "forwarding processor answered",
            extra={"http_status": answer.status, "outcome": verdict.outcome or "unknown"},
        )
        if verdict.outcome == "failed":
            raise ProcessorFailure(f"forwarding processor failed the charge ({answer.status})")
        if verdict.outcome is None:
            raise ProcessorOutcomeUnknown(
                f"forwarding processor answer unmatched ({answer.status})"
            )
        return ChargeResult(
            outcome=verdict.outcome,
            decline_code=verdict.decline_code,
            processor_reference=verdict.reference or f"forward_{idempotency_key}",
            amount=amount,
            currency=currency,
        )

    def find_charge(self, idempotency_key: str) -> ChargeResult | None:
        lookup = self._settings.lookup
        if self._lookup is None or lookup is None:
            raise ProcessorOutcomeUnknown("forwarding processor has no lookup configured")
        body = lookup.template.render({"idempotency_key": idempotency_key})
        try:
            answer = self._post(self._lookup, body)
        except _Unsent:
            raise ProcessorOutcomeUnknown("forwarding processor lookup unreachable") from None
        if _redirect(answer.status):
            raise ProcessorOutcomeUnknown(f"forwarding processor redirected ({answer.status})")
        verdict = lookup.rules.classify(answer.status, answer.body)
        logger.info(
            "forwarding processor lookup answered",
            extra={"http_status": answer.status, "outcome": verdict.outcome or "unknown"},
        )
        if verdict.outcome == "failed":
            return None  # the processor holds no charge under this key
        if verdict.outcome is None or verdict.amount is None or verdict.currency is None:
            # No rule matched, or the answer lacks what the payment checks: never guess.
            raise ProcessorOutcomeUnknown("forwarding processor lookup answer unmatched")
        return ChargeResult(
            outcome=verdict.outcome,
            decline_code=verdict.decline_code,
            processor_reference=verdict.reference or f"forward_{idempotency_key}",
            amount=verdict.amount,
            currency=verdict.currency,
        )

    def _pool(self, endpoint: Endpoint) -> urllib3.HTTPSConnectionPool:
        key = (endpoint.host, endpoint.port)
        if key not in self._pools:
            self._pools[key] = urllib3.HTTPSConnectionPool(
                endpoint.host,
                endpoint.port,
                ssl_context=self._context,
                maxsize=1,
                retries=False,
                timeout=urllib3.Timeout(
                    connect=self._settings.connect_timeout, read=self._settings.read_timeout
                ),
            )
        return self._pools[key]

    def _post(self, endpoint: Endpoint, body: bytes) -> _Answer:
        """One POST, no retry, no redirect; the answer read within the time and size caps.

        Raises _Unsent when no byte left, ProcessorOutcomeUnknown when the request may have
        reached the processor but its answer did not come back whole.
        """
        settings = self._settings
        deadline = time.monotonic() + settings.connect_timeout + settings.read_timeout
        headers = {
            **settings.headers,
            "Content-Type": "application/json",
            "Accept": "application/json",
            "Accept-Encoding": "identity",  # a compressed answer could outgrow the cap
        }
        try:
            # The pool never retries; a redirect comes back as an answer, unfollowed.
            response = self._pool(endpoint).urlopen(
                "POST", endpoint.path, body, headers, redirect=False, preload_content=False
            )
        except (NewConnectionError, ConnectTimeoutError):
            # Raised by connect(): DNS, refused, or no TCP handshake in time.
            logger.warning("forwarding processor unreachable")
            raise _Unsent() from None
        except HTTPError as error:
            # TLS refusals (a client certificate the server rejects shows only after the
            # request went), read timeouts, cut connections: the request may have arrived.
            raise _unknown(type(error).__name__) from None
        status = response.status
        if _redirect(status):
            # Never followed, nor read: the card goes nowhere but the allow-listed URL.
            response.close()
            logger.warning(
                "forwarding processor redirected", extra={"http_status": response.status}
            )
            return _Answer(status, None)
        try:
            raw = _read_capped(response, settings.max_response_bytes, deadline)
        except ProcessorOutcomeUnknown:
            response.close()
            raise
        response.release_conn()
        try:
            parsed = parse_strict_json(raw) if raw else None
        except JsonRejected:
            parsed = None
        return _Answer(response.status, parsed)


def _read_capped(response: Any, limit: int, deadline: float) -> bytes:
    declared = response.headers.get("Content-Length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise _unknown("response_too_large")
    chunks: list[bytes] = []
    size = 0
    try:
        while True:
            if time.monotonic() > deadline:
                raise _unknown("read_deadline")
            # read1: one socket read at most, so the deadline is checked between reads.
            chunk = response.read1(_CHUNK, decode_content=False)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > limit:
                raise _unknown("response_too_large")
            chunks.append(chunk)
    except (HTTPError, OSError) as error:  # a cut or stalled connection mid-answer
        raise _unknown(type(error).__name__) from None


def _unknown(reason: str) -> ProcessorOutcomeUnknown:
    logger.warning("forwarding processor answer lost", extra={"reason": reason})
    return ProcessorOutcomeUnknown(f"forwarding processor answer lost: {reason}")


def _redirect(status: int) -> bool:
    return 300 <= status < 400
