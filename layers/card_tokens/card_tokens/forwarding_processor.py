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
from dataclasses import dataclass
from typing import Any

import urllib3
from urllib3.exceptions import ConnectTimeoutError, HTTPError, NewConnectionError

from card_tokens.cards import Card
from card_tokens.forwarding import (
    Channel,
    Classified,
    Endpoint,
    Exchange,
    ForwardingSettings,
    ForwardingSettingsInvalid,
    charge_values,
)
from card_tokens.observability import logger
from card_tokens.processor import (
    ChargeResult,
    ProcessorFailure,
    ProcessorIdempotencyConflict,
    ProcessorOutcomeUnknown,
)
from card_tokens.strict_json import JsonRejected, parse_strict_json

_CHUNK = 8 * 1024


def tls_context(channel: Channel, name: str) -> ssl.SSLContext:
    """Verified TLS 1.2+, with the client certificate loaded when there is one. `name` is the
    document the channel came from: errors name it and the setting, never the PEM."""
    try:
        context = ssl.create_default_context(cadata=channel.ca_bundle_pem)
    except (ssl.SSLError, ValueError):
        raise ForwardingSettingsInvalid(f"{name}: ca_bundle_pem is unusable") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    certificate = channel.client_certificate
    if certificate is not None:
        # ssl loads a certificate chain only from files: a private directory (0700) holding a
        # 0600 file that lives just as long as the load.
        with tempfile.TemporaryDirectory(prefix="client-cert-") as directory:
            path = os.path.join(directory, "client.pem")
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as pem:
                pem.write(certificate.certificate_pem.strip() + "\n")
                pem.write(certificate.private_key_pem.strip() + "\n")
            try:
                context.load_cert_chain(path)
            except ssl.SSLError:
                raise ForwardingSettingsInvalid(f"{name}: client_certificate is unusable") from None
    return context


@dataclass(frozen=True)
class _Route:
    """One configured exchange with where it goes and the connection pool that reaches it."""

    exchange: Exchange
    endpoint: Endpoint
    channel: Channel
    pool: urllib3.HTTPSConnectionPool

    @classmethod
    def open(
        cls, exchange: Exchange | None, endpoint: Endpoint | None, channel: Channel, name: str
    ) -> _Route | None:
        if exchange is None or endpoint is None:
            return None
        # Creating the pool connects nowhere: the first charge or lookup does.
        pool = urllib3.HTTPSConnectionPool(
            endpoint.host,
            endpoint.port,
            ssl_context=tls_context(channel, name),
            maxsize=1,
            retries=False,
            timeout=urllib3.Timeout(
                connect=channel.connect_timeout,
                read=channel.read_timeout,
                total=channel.worst_case_seconds,  # the answer's wait gets what connecting left
            ),
        )
        return cls(exchange, endpoint, channel, pool)


class _Unsent(Exception):
    """The connection failed before any byte of the request left: nothing was charged."""


@dataclass(frozen=True)
class _Answer:
    status: int
    body: Any  # the parsed JSON, or None when the body is not JSON


class ForwardingProcessor:
    """The PaymentProcessor port over a processor's own HTTPS API."""

    def __init__(self, settings: ForwardingSettings) -> None:
        # The settings checked both URLs against the allow-list when they were built: a charge
        # has no way to name another host.
        self._settings = settings
        self.lookup_lag_seconds = settings.lookup_lag_seconds
        self._charge = _Route.open(
            settings.charge, settings.charge_endpoint(), settings.charge_channel, "charge document"
        )
        self._lookup = _Route.open(
            settings.lookup, settings.lookup_endpoint(), settings.lookup_channel, "lookup document"
        )

    @classmethod
    def from_secrets(
        cls, charge: Mapping[str, Any] | None, lookup: Mapping[str, Any], allowed_hosts: str
    ) -> ForwardingProcessor:
        """Built from the charge secret (None where only lookups run: the reconciler), the
        lookup secret and the deployment's allow-list; unusable settings fail the cold start."""
        return cls(ForwardingSettings.from_secrets(charge, lookup, allowed_hosts))

    def worst_case_seconds(self) -> float:
        return self._settings.worst_case_seconds()

    def charge(
        self, *, card: Card, amount: int, currency: str, idempotency_key: str, payment_id: str
    ) -> ChargeResult:
        if self._charge is None:
            # The reconciler's adapter holds the lookup secret only: it must never charge.
            raise ProcessorFailure("forwarding processor holds no charge settings here")
        values = charge_values(
            card,
            amount=amount,
            currency=currency,
            idempotency_key=idempotency_key,
            payment_id=payment_id,
        )
        try:
            status, verdict = self._exchange(self._charge, values, "charge")
        except _Unsent:
            raise ProcessorFailure("forwarding processor unreachable") from None
        finally:
            del values
        if _redirect(status):
            raise ProcessorFailure(f"forwarding processor redirected ({status})")
        if verdict.outcome == "failed":
            raise ProcessorFailure(f"forwarding processor failed the charge ({status})")
        if verdict.outcome == "conflict":
            raise ProcessorIdempotencyConflict(f"forwarding processor: key reused ({status})")
        if verdict.outcome is None:
            raise ProcessorOutcomeUnknown(f"forwarding processor answer unmatched ({status})")
        return ChargeResult(
            outcome=verdict.outcome,
            decline_code=verdict.decline_code,
            processor_reference=verdict.reference or f"forward_{idempotency_key}",
            amount=amount,
            currency=currency,
        )

    def find_charge(self, idempotency_key: str) -> ChargeResult | None:
        if self._lookup is None:
            raise ProcessorOutcomeUnknown("forwarding processor has no lookup configured")
        try:
            status, verdict = self._exchange(
                self._lookup, {"idempotency_key": idempotency_key}, "lookup"
            )
        except _Unsent:
            raise ProcessorOutcomeUnknown("forwarding processor lookup unreachable") from None
        if _redirect(status):
            raise ProcessorOutcomeUnknown(f"forwarding processor redirected ({status})")
        if verdict.outcome == "failed":
            return None  # the processor holds no charge under this key
        if (
            verdict.outcome not in ("approved", "declined")
            or verdict.amount is None
            or verdict.currency is None
        ):
            # No rule matched, or the answer lacks what the payment checks: never guess.
            raise ProcessorOutcomeUnknown("forwarding processor lookup answer unmatched")
        return ChargeResult(
            outcome=verdict.outcome,
            decline_code=verdict.decline_code,
            processor_reference=verdict.reference or f"forward_{idempotency_key}",
            amount=verdict.amount,
            currency=verdict.currency,
        )

    def _exchange(
        self, route: _Route, values: Mapping[str, Any], operation: str
    ) -> tuple[int, Classified]:
        """The filled template sent once; the answer as the rules read it (a redirect: no
        verdict, it is never read)."""
        body = route.exchange.template.render(values)
        try:
            answer = self._post(route, body)
        finally:
            del body
        verdict = (
            Classified(outcome=None)
            if _redirect(answer.status)
            else route.exchange.rules.classify(answer.status, answer.body)
        )
        logger.info(
            "forwarding processor answered",
            extra={
                "operation": operation,
                "http_status": answer.status,
                "outcome": verdict.outcome or "unknown",
            },
        )
        return answer.status, verdict

    def _post(self, route: _Route, body: bytes) -> _Answer:
        """One POST, no retry, no redirect; the answer read within the time and size caps.

        Raises _Unsent when no byte left, ProcessorOutcomeUnknown when the request may have
        reached the processor but its answer did not come back whole.
        """
        deadline = time.monotonic() + route.channel.worst_case_seconds
        headers = {
            **route.channel.headers,
            "Content-Type": "application/json",
            "Accept": "application/json",
            "Accept-Encoding": "identity",  # a compressed answer could outgrow the cap
        }
        try:
            # The pool never retries; a redirect comes back as an answer, unfollowed.
            response = route.pool.urlopen(
                "POST", route.endpoint.path, body, headers, redirect=False, preload_content=False
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
            logger.warning("forwarding processor redirected", extra={"http_status": status})
            return _Answer(status, None)
        try:
            raw = _read_capped(
                response, self._settings.max_response_bytes, deadline, route.channel.read_timeout
            )
        except ProcessorOutcomeUnknown:
            response.close()
            raise
        response.release_conn()
        try:
            parsed = parse_strict_json(raw) if raw else None
        except JsonRejected:
            parsed = None
        return _Answer(status, parsed)


def _read_capped(response: Any, limit: int, deadline: float, read_timeout: float) -> bytes:
    declared = response.headers.get("Content-Length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise _unknown("response_too_large")
    chunks: list[bytes] = []
    size = 0
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _unknown("read_deadline")
            # read1: one socket read at most, and that read waits no longer than the deadline
            # leaves, so a processor trickling bytes cannot stretch the worst case.
            sock = getattr(response.connection, "sock", None)
            if sock is not None:
                sock.settimeout(min(remaining, read_timeout))
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
