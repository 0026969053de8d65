"""local/fault_proxy.py over real sockets: boto3 -> fault proxy -> witness proxy -> moto server.

The witness is a second proxy without faults; its counters are what upstream really received.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ConnectionClosedError
from moto.core.models import botocore_stubber

from local.fault_proxy import (
    Fault,
    FaultProxy,
    ProxyStats,
    UpstreamNotAllowedError,
    operation_name,
)
from tests.support import REPO_ROOT, moto_server, run_captured

CARD_NUMBER = "4111111111111111"

Client = Any
MakeClient = Callable[..., Client]


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    with moto_server(with_fixes=False) as url:
        yield url


@pytest.fixture(scope="module")
def make_client() -> Iterator[MakeClient]:
    clients: list[Client] = []

    def make(endpoint_url: str, attempts: int = 2, read_timeout: float = 1.0, **extra: Any) -> Any:
        client = boto3.client(
            "dynamodb",
            endpoint_url=endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(
                retries={"mode": "standard", "total_max_attempts": attempts},
                connect_timeout=0.5,
                read_timeout=read_timeout,
                **extra,
            ),
        )
        # A session-wide mock_aws (tests/conftest.py) must not answer these calls in-process.
        client.meta.events.unregister("before-send", botocore_stubber)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture(scope="module")
def direct(moto_url: str, make_client: MakeClient) -> Client:
    """Straight to moto, never through a proxy."""
    return make_client(moto_url, attempts=1, read_timeout=5.0)


@pytest.fixture(scope="module")
def table(direct: Client) -> Iterator[str]:
    name = f"fault-proxy-{uuid.uuid4().hex[:12]}"
    direct.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    yield name
    direct.delete_table(TableName=name)


@pytest.fixture
def witness(moto_url: str) -> Iterator[FaultProxy]:
    with FaultProxy(moto_url) as proxy:
        yield proxy


@pytest.fixture
def proxy(witness: FaultProxy) -> Iterator[FaultProxy]:
    with FaultProxy(witness.url) as faulty:
        yield faulty


def new_key() -> dict[str, dict[str, str]]:
    return {"pk": {"S": uuid.uuid4().hex}}


def exists(direct: Client, table: str, key: dict[str, Any]) -> bool:
    return "Item" in direct.get_item(TableName=table, Key=key, ConsistentRead=True)


def conditional_put(client: Client, table: str, key: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = client.put_item(
        TableName=table,
        Item={**key, "card": {"S": CARD_NUMBER}},
        ConditionExpression="attribute_not_exists(pk)",
    )
    return result


def through_fault(
    proxy: FaultProxy, make_client: MakeClient, operation: str, fault: Fault | str, attempts: int
) -> Client:
    """A client through `proxy` whose next `operation` gets `fault`."""
    client = make_client(proxy.url, attempts=attempts)
    proxy.inject(operation, fault)
    return client


def stored_key(direct: Client, table: str) -> dict[str, dict[str, str]]:
    """The key of a new item, written straight to the table."""
    key = new_key()
    direct.put_item(TableName=table, Item={**key, "n": {"N": "1"}})
    return key


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


# -- reset_after_forward: the write commits, the answer is lost; drop: nothing reaches upstream


@pytest.mark.parametrize(
    ("fault", "attempts", "refused_with", "committed", "upstream", "events"),
    [
        pytest.param(
            "reset_after_forward",
            2,
            "ConditionalCheckFailedException",  # botocore resent the committed request
            True,
            2,
            ("reset_after_forward", "pass"),
            id="reset-after-forward-with-a-retry-fails-its-own-condition",
        ),
        pytest.param(
            Fault.RESET_AFTER_FORWARD,
            1,
            ConnectionClosedError,
            True,
            1,
            ("reset_after_forward",),
            id="reset-after-forward-without-retries-is-a-connection-error-after-the-commit",
        ),
        pytest.param(
            "drop",
            1,
            ConnectionClosedError,
            False,
            0,
            ("drop",),
            id="drop-without-retries-loses-the-request",
        ),
        pytest.param(
            "drop", 2, None, True, 1, ("drop", "pass"), id="drop-with-a-retry-succeeds-normally"
        ),
    ],
)
def test_a_conditional_put_through_a_connection_fault(
    proxy: FaultProxy,
    witness: FaultProxy,
    make_client: MakeClient,
    direct: Client,
    table: str,
    fault: Fault | str,
    attempts: int,
    refused_with: type[Exception] | str | None,
    committed: bool,
    upstream: int,
    events: tuple[str, ...],
) -> None:
    client = through_fault(proxy, make_client, "PutItem", fault, attempts)
    key = new_key()

    if refused_with is None:
        conditional_put(client, table, key)
    else:
        modeled = isinstance(refused_with, str)
        with pytest.raises(client.exceptions.from_code(refused_with) if modeled else refused_with):
            conditional_put(client, table, key)

    assert exists(direct, table, key) is committed
    assert witness.stats().count("PutItem") == upstream
    stats = proxy.stats()
    assert stats.events == tuple(("PutItem", event) for event in events)
    assert stats.forwarded == ({"PutItem": upstream} if upstream else {})


# -- truncate: half an answer ------------------------------------------------------------------


def test_truncate_without_retries_looks_like_a_success_without_the_item(
    proxy: FaultProxy, make_client: MakeClient, direct: Client, table: str
) -> None:
    """botocore raises nothing: it does not enforce Content-Length (enforce_content_length=False)
    and parses the broken JSON as {"message": ...}; the x-amz-crc32 mismatch would only cause a
    retry, and none is left."""
    key = stored_key(direct, table)
    client = through_fault(proxy, make_client, "GetItem", "truncate", attempts=1)

    result = client.get_item(TableName=table, Key=key)

    assert "Item" not in result
    assert result["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert proxy.stats().count("GetItem", "truncate") == 1


def test_truncate_with_a_retry_resends_the_committed_put(
    proxy: FaultProxy, witness: FaultProxy, make_client: MakeClient, direct: Client, table: str
) -> None:
    """DynamoDB answers carry x-amz-crc32: the checksum of the cut body fails, botocore retries."""
    client = through_fault(proxy, make_client, "PutItem", "truncate", attempts=2)
    key = new_key()

    with pytest.raises(client.exceptions.ConditionalCheckFailedException):
        client.put_item(
            TableName=table,
            Item=key,
            ConditionExpression="attribute_not_exists(pk)",
            ReturnConsumedCapacity="TOTAL",  # a body longer than "{}" to cut in half
        )

    assert exists(direct, table, key)
    assert witness.stats().count("PutItem") == 2


# -- hollow: a 200 with {} ---------------------------------------------------------------------


def test_hollow_get_item_succeeds_without_the_item(
    proxy: FaultProxy, make_client: MakeClient, direct: Client, table: str
) -> None:
    key = stored_key(direct, table)
    client = through_fault(proxy, make_client, "GetItem", "hollow", attempts=2)

    result = client.get_item(TableName=table, Key=key)

    assert "Item" not in result
    headers = result["ResponseMetadata"]["HTTPHeaders"]
    assert headers["content-type"] == "application/x-amz-json-1.0"
    assert headers["content-length"] == "2"
    assert proxy.stats().events == (("GetItem", "hollow"),), "no retry: it looked fine"
    assert "Item" in client.get_item(TableName=table, Key=key), "the next call is normal"


def test_hollow_update_item_commits_but_returns_no_attributes(
    proxy: FaultProxy, witness: FaultProxy, make_client: MakeClient, direct: Client, table: str
) -> None:
    key = new_key()
    client = through_fault(proxy, make_client, "UpdateItem", "hollow", attempts=2)

    result = client.update_item(
        TableName=table,
        Key=key,
        UpdateExpression="ADD n :one",
        ExpressionAttributeValues={":one": {"N": "1"}},
        ReturnValues="ALL_NEW",
    )

    assert "Attributes" not in result
    item = direct.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]
    assert item["n"] == {"N": "1"}
    assert witness.stats().count("UpdateItem") == 1


# -- delay: the read timeout fires, the write still commits -------------------------------------


def test_delay_beyond_the_read_timeout_applies_an_increment_twice(
    proxy: FaultProxy, witness: FaultProxy, make_client: MakeClient, direct: Client, table: str
) -> None:
    key = new_key()
    client = make_client(proxy.url, attempts=2)  # read_timeout 1.0 s
    proxy.inject("UpdateItem", "delay", delay_seconds=1.5)

    client.update_item(
        TableName=table,
        Key=key,
        UpdateExpression="ADD n :one",
        ExpressionAttributeValues={":one": {"N": "1"}},
    )

    def counter() -> str | None:
        item = direct.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")
        return None if item is None else str(item["n"]["N"])

    # The delayed first request reaches upstream after the retry may already have.
    assert wait_until(lambda: counter() == "2"), f"counter is {counter()}"
    assert witness.stats().count("UpdateItem") == 2
    assert proxy.stats().events == (("UpdateItem", "delay"), ("UpdateItem", "pass"))


# -- random policy -----------------------------------------------------------------------------


def fault_sequence(
    upstream: str, make_client: MakeClient, table: str, seed: int, with_noise: bool
) -> tuple[str, ...]:
    with FaultProxy(upstream, mode="hollow", rate=0.5, seed=seed, operations=["GetItem"]) as faulty:
        client = make_client(faulty.url, attempts=1)
        for _ in range(24):
            client.get_item(TableName=table, Key={"pk": {"S": "absent"}})
            if with_noise:
                client.describe_table(TableName=table)  # not covered by the policy
        stats = faulty.stats()
    assert stats.count("DescribeTable", "pass") == (24 if with_noise else 0)
    return tuple(fault for operation, fault in stats.events if operation == "GetItem")


def test_random_policy_is_deterministic_for_a_seed(
    moto_url: str, make_client: MakeClient, table: str
) -> None:
    first = fault_sequence(moto_url, make_client, table, seed=7, with_noise=False)
    again = fault_sequence(moto_url, make_client, table, seed=7, with_noise=True)
    other = fault_sequence(moto_url, make_client, table, seed=8, with_noise=False)

    assert len(first) == 24
    assert {"hollow", "pass"} == set(first)
    assert again == first
    assert other != first


def test_set_policy_switches_the_random_policy_while_serving(
    proxy: FaultProxy, make_client: MakeClient, table: str
) -> None:
    client = make_client(proxy.url, attempts=1)
    # Given a proxy serving in pass mode
    client.get_item(TableName=table, Key={"pk": {"S": "absent"}})
    # When its policy is switched on for GetItem only, every one of them is hollowed
    proxy.set_policy("hollow", 1.0, operations=["GetItem"], seed=3)
    client.get_item(TableName=table, Key={"pk": {"S": "absent"}})
    client.describe_table(TableName=table)
    # and when it is switched off again, requests pass; the counts were kept throughout
    proxy.set_policy("pass", 0.0)
    client.get_item(TableName=table, Key={"pk": {"S": "absent"}})
    assert proxy.stats().events == (
        ("GetItem", "pass"),
        ("GetItem", "hollow"),
        ("DescribeTable", "pass"),
        ("GetItem", "pass"),
    )
    assert (proxy.mode, proxy.rate, proxy.operations) == (Fault.PASS, 0.0, None)


def test_set_policy_with_a_seed_draws_as_a_new_proxy_would(
    moto_url: str, make_client: MakeClient, table: str
) -> None:
    expected = fault_sequence(moto_url, make_client, table, seed=7, with_noise=False)
    with FaultProxy(moto_url) as faulty:
        faulty.set_policy("hollow", 0.5, operations=["GetItem"], seed=7)
        client = make_client(faulty.url, attempts=1)
        for _ in range(24):
            client.get_item(TableName=table, Key={"pk": {"S": "absent"}})
        assert tuple(fault for _, fault in faulty.stats().events) == expected


@pytest.mark.parametrize(
    ("mode", "rate", "options"),
    [
        ("explode", 0.5, {}),
        ("drop", 1.5, {}),
        ("delay", 0.5, {"max_delay": -1.0}),
        ("drop", 0.5, {"operations": ["Put Item!"]}),
    ],
)
def test_set_policy_refuses_what_could_never_apply(
    witness: FaultProxy, mode: str, rate: float, options: dict[str, Any]
) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        witness.set_policy(mode, rate, **options)
    assert (witness.mode, witness.rate) == (Fault.PASS, 0.0)


def test_planned_faults_come_before_the_policy_and_run_out(
    proxy: FaultProxy, make_client: MakeClient, table: str
) -> None:
    client = make_client(proxy.url, attempts=1)
    proxy.inject("DynamoDB_20120810.DescribeTable", "hollow")  # a full X-Amz-Target works too
    proxy.inject("*", "hollow")
    for _ in range(3):
        client.describe_table(TableName=table)
    assert proxy.stats().events == (
        ("DescribeTable", "hollow"),
        ("DescribeTable", "hollow"),
        ("DescribeTable", "pass"),
    )
    assert proxy.stats().count(fault="hollow") == 2


# -- on the wire: RST versus FIN, keep-alive, bodies without a length -------------------------


class _RecordingUpstream(BaseHTTPRequestHandler):
    """An HTTP/1.0 upstream whose answers have no Content-Length: the body ends at close."""

    protocol_version = "HTTP/1.0"
    server: _RecordingServer

    def do_any(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length) if length else b""
        self.server.received.append((self.command, dict(self.headers.items()), body))
        self.wfile.write(
            b"HTTP/1.0 200 OK\r\nContent-Type: application/x-amz-json-1.1\r\n\r\n"
            b'{"Plaintext": "c2VjcmV0", "KeyId": "k"}'
        )

    do_GET = do_POST = do_any

    def log_message(self, format: str, *args: object) -> None:
        return


class _RecordingServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _RecordingUpstream)
        self.received: list[tuple[str, dict[str, str], bytes]] = []


@pytest.fixture
def recording_upstream() -> Iterator[_RecordingServer]:
    server = _RecordingServer()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def recording_proxy(server: _RecordingServer, *decrypt_faults: str) -> FaultProxy:
    """A proxy in front of `server`, the next KMS Decrypt requests planned to get these faults."""
    faulty = FaultProxy(f"http://127.0.0.1:{server.server_port}")
    for fault in decrypt_faults:
        faulty.inject("Decrypt", fault)
    return faulty


def raw_request(target: str, body: bytes = b"{}") -> bytes:
    return (
        f"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Amz-Target: {target}\r\n"
        f"Content-Type: application/x-amz-json-1.1\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def read_to_end(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def send_decrypt(faulty: FaultProxy, read: Callable[[socket.socket], bytes] = read_to_end) -> bytes:
    """One raw KMS Decrypt request on a new connection to `faulty`, and what comes back."""
    with socket.create_connection(("127.0.0.1", faulty.port), timeout=5) as sock:
        sock.sendall(raw_request("TrentService.Decrypt"))
        return read(sock)


@contextlib.contextmanager
def kept_connection(faulty: FaultProxy) -> Iterator[http.client.HTTPConnection]:
    """One HTTP/1.1 client connection to `faulty`, for several requests."""
    connection = http.client.HTTPConnection("127.0.0.1", faulty.port, timeout=5)
    try:
        yield connection
    finally:
        connection.close()


def test_close_delimited_answers_are_relayed_with_a_length_on_a_kept_connection(
    recording_upstream: _RecordingServer,
) -> None:
    with recording_proxy(recording_upstream) as faulty:
        with kept_connection(faulty) as connection:
            sockets = []
            for _ in range(3):
                connection.request(
                    "POST", "/", body=b"{}", headers={"X-Amz-Target": "TrentService.Decrypt"}
                )
                response = connection.getresponse()
                assert response.read() == b'{"Plaintext": "c2VjcmV0", "KeyId": "k"}'
                assert response.getheader("Content-Length") == "39"
                assert response.getheader("Connection") is None
                sockets.append(connection.sock)
        assert sockets[0] is not None
        assert sockets == [sockets[0]] * 3, "one client connection, kept alive"
        assert faulty.stats().count("Decrypt", "pass") == 3


def test_chunked_and_bodiless_requests_are_forwarded_with_a_length(
    recording_upstream: _RecordingServer,
) -> None:
    with recording_proxy(recording_upstream) as faulty, kept_connection(faulty) as connection:
        connection.request("GET", "/health")
        connection.getresponse().read()
        connection.request(
            "POST",
            "/",
            body=iter([b'{"a":', b" 1}"]),
            headers={"X-Amz-Target": "secretsmanager.GetSecretValue"},
            encode_chunked=True,
        )
        connection.getresponse().read()
    (get, get_headers, get_body), (post, post_headers, post_body) = recording_upstream.received
    assert (get, get_body) == ("GET", b"")
    assert "Content-Length" not in get_headers
    assert (post, post_body) == ("POST", b'{"a": 1}')
    assert post_headers["Content-Length"] == "8"
    assert "Transfer-Encoding" not in post_headers


def test_hollow_keeps_the_upstream_content_type(recording_upstream: _RecordingServer) -> None:
    with recording_proxy(recording_upstream, "hollow") as faulty:
        # One read: the hollow answer keeps the connection open
        answer = send_decrypt(faulty, read=lambda sock: sock.recv(65536))
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\nContent-Type: application/x-amz-json-1.1" in head
    assert b"\r\nContent-Length: 2" in head
    assert body == b"{}"
    assert len(recording_upstream.received) == 1, "forwarded before the hollow answer"


def test_reset_after_forward_is_an_rst_and_drop_a_plain_close(
    recording_upstream: _RecordingServer,
) -> None:
    with recording_proxy(recording_upstream, "reset_after_forward", "drop") as faulty:
        with pytest.raises(ConnectionResetError):
            send_decrypt(faulty)
        assert len(recording_upstream.received) == 1
        assert send_decrypt(faulty) == b""
        assert len(recording_upstream.received) == 1, "a dropped request never leaves"


def test_truncate_declares_the_whole_length_and_sends_half(
    recording_upstream: _RecordingServer,
) -> None:
    with recording_proxy(recording_upstream, "truncate") as faulty:
        head, _, body = send_decrypt(faulty).partition(b"\r\n\r\n")
    assert b"\r\nContent-Length: 39\r\n" in head + b"\r\n"
    assert body == b'{"Plaintext": "c2VjcmV0", "KeyId": "k"}'[:19]


# -- concurrency, logging, configuration -------------------------------------------------------


def test_many_concurrent_connections_all_pass(
    proxy: FaultProxy, make_client: MakeClient, direct: Client, table: str
) -> None:
    threads_count, calls = 64, 4
    key = new_key()
    direct.put_item(TableName=table, Item=key)
    client = make_client(
        proxy.url, attempts=1, read_timeout=10.0, max_pool_connections=threads_count
    )
    start = threading.Barrier(threads_count)
    found: list[bool] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            start.wait(timeout=10)
            for _ in range(calls):
                found.append("Item" in client.get_item(TableName=table, Key=key))
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert found == [True] * (threads_count * calls)
    assert proxy.stats().count("GetItem", "pass") == threads_count * calls


def test_logs_hold_operation_and_fault_names_but_no_bodies(
    proxy: FaultProxy,
    make_client: MakeClient,
    table: str,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG, logger="local.fault_proxy")
    client = make_client(proxy.url, attempts=2)
    for fault in ("reset_after_forward", "truncate", "hollow", "drop"):
        proxy.inject("PutItem", fault)
        with contextlib.suppress(client.exceptions.ConditionalCheckFailedException):
            conditional_put(client, table, new_key())

    assert "fault reset_after_forward on PutItem" in caplog.text
    captured = capfd.readouterr()
    for text in (caplog.text, captured.out, captured.err):
        assert CARD_NUMBER not in text


def test_stats_count_filters() -> None:
    stats = ProxyStats(
        counts={("PutItem", "drop"): 2, ("PutItem", "pass"): 3, ("GetItem", "drop"): 1},
        events=(),
        forwarded={},
    )
    assert stats.count() == 6
    assert stats.count("PutItem") == 5
    assert stats.count(fault="drop") == 3
    assert stats.count("GetItem", "pass") == 0


@pytest.mark.parametrize(
    ("operation", "fault", "options"),
    [
        ("PutItem", "explode", {}),
        ("Put Item!", "drop", {}),
        ("PutItem", "drop", {"times": 0}),
        ("PutItem", "drop", {"delay_seconds": 2.0}),
        ("PutItem", "delay", {"delay_seconds": -1.0}),
    ],
)
def test_inject_refuses_what_could_never_apply(
    witness: FaultProxy, operation: str, fault: str, options: dict[str, Any]
) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        witness.inject(operation, fault, **options)


@pytest.mark.parametrize(
    ("target", "operation"),
    [
        ("DynamoDB_20120810.TransactWriteItems", "TransactWriteItems"),
        ("TrentService.Decrypt", "Decrypt"),
        ("secretsmanager.GetSecretValue", "GetSecretValue"),
        (None, "unknown"),
        ("x.4111 1111 1111 1111", "unknown"),
    ],
)
def test_operation_name_from_x_amz_target(target: str | None, operation: str) -> None:
    assert operation_name(target) == operation


@pytest.mark.parametrize(
    "upstream",
    [
        "http://10.0.0.1:5005",
        "http://example.com:80",
        "https://127.0.0.1:5005",
        "http://127.0.0.1",
        "http://127.0.0.1:5005/path",
    ],
)
def test_upstream_must_be_plain_http_on_loopback(upstream: str) -> None:
    with pytest.raises(UpstreamNotAllowedError):
        FaultProxy(upstream)


def test_proxy_listens_on_loopback_only(witness: FaultProxy) -> None:
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", witness.url)
    assert witness.port > 0


# -- command line ------------------------------------------------------------------------------


def start_cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "local.fault_proxy", *args],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_cli_prints_its_url_serves_and_stops_after_its_lifetime(
    moto_url: str, make_client: MakeClient, table: str
) -> None:
    process = start_cli(
        "--upstream", moto_url, "--mode", "hollow", "--rate", "1", "--seed", "7",
        "--operations", "GetItem", "--lifetime-seconds", "3",
    )  # fmt: skip
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
        client = make_client(url, attempts=1)
        assert "Table" in client.describe_table(TableName=table)
        assert "Item" not in client.get_item(TableName=table, Key={"pk": {"S": "absent"}})
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
        out, err = process.communicate()
    assert out == ""
    assert "GetItem hollow 1" in err
    assert "DescribeTable pass 1" in err


def test_cli_stops_on_sigterm(moto_url: str) -> None:
    process = start_cli("--upstream", moto_url, "--lifetime-seconds", "60")
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith("http://127.0.0.1:")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


def test_cli_refuses_a_non_loopback_upstream() -> None:
    result = run_captured(
        [sys.executable, "-m", "local.fault_proxy", "--upstream", "http://10.1.2.3:5005"],
        timeout=30,
    )
    assert result.returncode == 2
    assert "loopback" in result.stderr
    assert result.stdout == ""
