"""Reading an HTTP/1.1 request body, by Content-Length or chunked, up to a size limit.

Shared by the local servers that read bodies themselves: the API Gateway stand-in
(local.gateway) and the fault proxy (local.fault_proxy).
"""

from __future__ import annotations

from email.message import Message
from io import BufferedIOBase


class MalformedBodyError(ValueError):
    """The Content-Length or a chunk size is not a non-negative number."""


class BodyTooLargeError(Exception):
    """The body is longer than the server accepts; the unread rest must not be parsed."""


def read_body(rfile: BufferedIOBase, headers: Message, limit: int) -> bytes | None:
    """The request's body, or None when it declares none.

    Raises ConnectionError when the client closes the connection inside the body.
    """
    if "chunked" in headers.get("Transfer-Encoding", "").lower():
        return _read_chunked(rfile, limit)
    length_header = headers.get("Content-Length")
    if length_header is None:
        return None
    length = _number(length_header, 10)
    if length > limit:
        raise BodyTooLargeError
    return _read_exactly(rfile, length)


def _read_chunked(rfile: BufferedIOBase, limit: int) -> bytes:
    parts: list[bytes] = []
    total = 0
    while True:
        size = _number(rfile.readline(1024).split(b";", 1)[0].strip(), 16)
        if size == 0:
            # Trailer lines up to the blank line; nobody reads them.
            while rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                pass
            return b"".join(parts)
        total += size
        if total > limit:
            raise BodyTooLargeError
        parts.append(_read_exactly(rfile, size))
        rfile.readline(3)  # the chunk's CRLF


def _number(text: str | bytes, base: int) -> int:
    try:
        value = int(text, base)
    except ValueError:
        raise MalformedBodyError from None
    if value < 0:
        raise MalformedBodyError
    return value


def _read_exactly(rfile: BufferedIOBase, length: int) -> bytes:
    data = rfile.read(length)
    if len(data) != length:
        raise ConnectionError("the client closed the connection inside the body")
    return data
