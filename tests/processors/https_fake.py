"""A processor's HTTPS endpoint on 127.0.0.1, behind a throwaway CA made for the test run.

The CA signs the server's certificate (127.0.0.1 and localhost) and, as a separate client CA,
the certificate a forwarding processor presents for mTLS. Each server answers with whatever its
test's `answer` function returns, records what it received, and stops when its `with` block
ends or, if a test hangs, after `lifetime` seconds on its own.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.processors.serving import serving


@dataclass(frozen=True)
class Issued:
    certificate_pem: str
    private_key_pem: str


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _issue(
    common_name: str,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    *,
    server: bool = False,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    signer_name, signer_key = (
        (issuer[0].subject, issuer[1]) if issuer else (_name(common_name), key)
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(signer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if issuer is None:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        ).add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    else:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[1].public_key()),
            critical=False,
        ).add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(signer_key, hashes.SHA256()), key


def _pem(certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Issued:
    return Issued(
        certificate.public_bytes(serialization.Encoding.PEM).decode(),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
    )


@dataclass(frozen=True)
class ThrowawayPki:
    """A server CA and its server certificate, a client CA and its client certificate."""

    server_ca: Issued
    server: Issued
    client_ca: Issued
    client: Issued

    @classmethod
    def generate(cls) -> ThrowawayPki:
        server_ca = _issue("throwaway server CA", None)
        client_ca = _issue("throwaway client CA", None)
        return cls(
            server_ca=_pem(*server_ca),
            server=_pem(*_issue("127.0.0.1", server_ca, server=True)),
            client_ca=_pem(*client_ca),
            client=_pem(*_issue("forwarding-processor", client_ca)),
        )


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    client_common_name: str | None  # the mTLS certificate's CN, when one was presented


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes = b"{}"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before the status line: a processor that answers late
    declare_length: bool = True  # False: no Content-Length, the body ends when the server closes
    # The request was read (and acted on), then the connection closes with no status line:
    # an answer lost on its way back, on a real socket.
    hang_up: bool = False
    trickle: float = 0.0  # seconds between the body's bytes: each read waits little, all of it long


Answer = Callable[[Received], Reply]


@dataclass
class FakeProcessor:
    port: int
    received: list[Received] = field(default_factory=list)
    connections: int = 0
    refused_handshakes: int = 0

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/v1/charges"


def _client_common_name(connection: Any) -> str | None:
    peer = connection.getpeercert()
    if not peer:
        return None
    for rdn in peer.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


@contextmanager
def https_processor(
    pki: ThrowawayPki,
    answer: Answer,
    *,
    require_client_certificate: bool = False,
    lifetime: float = 30.0,
) -> Iterator[FakeProcessor]:
    with tempfile.TemporaryDirectory() as directory:
        chain = Path(directory) / "server.pem"
        chain.write_text(pki.server.certificate_pem + pki.server.private_key_pem)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(chain)
    if require_client_certificate:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cadata=pki.client_ca.certificate_pem)

    fake: FakeProcessor

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            self.request.settimeout(lifetime)
            self.request = context.wrap_socket(self.request, server_side=True)
            super().setup()

        def finish(self) -> None:
            super().finish()
            self.request.close()  # the TLS socket: the server closes only the one it accepted

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            received = Received(
                self.path,
                dict(self.headers.items()),
                self.rfile.read(length),
                _client_common_name(self.connection),
            )
            fake.received.append(received)
            reply = answer(received)
            if reply.hang_up:
                self.close_connection = True
                return
            time.sleep(reply.delay)
            self.send_response(reply.status)
            headers = {"Content-Type": "application/json", **reply.headers}
            if reply.declare_length:
                headers.setdefault("Content-Length", str(len(reply.body)))
            else:
                headers["Connection"] = "close"
                self.close_connection = True
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            pieces = [bytes([byte]) for byte in reply.body] if reply.trickle else [reply.body]
            for piece in pieces:
                self.wfile.write(piece)
                self.wfile.flush()
                time.sleep(reply.trickle)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the fake's own access log would only clutter the test's captured output

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def verify_request(self, request: Any, client_address: Any) -> bool:
            fake.connections += 1
            return True

        def handle_error(self, request: Any, client_address: Any) -> None:
            fake.refused_handshakes += 1  # a client without the certificate, or one hung up

    server = Server(("127.0.0.1", 0), Handler)
    fake = FakeProcessor(port=server.server_address[1])
    with serving(server, lifetime):
        yield fake


def closed_port() -> int:
    """A port on 127.0.0.1 nobody listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
