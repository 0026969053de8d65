"""card_tokens.snapstart: the hooks reach the runtime, drop what belongs to one execution
environment, and nothing random or time-derived is fixed at init (docs/rollout.md).

The Lambda runtime's snapshot_restore_py is stood in for by tests/shims/snapshot_restore_py.py,
which registers hooks like the real module and runs them the way the runtime does.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import secrets
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import botocore.loaders
import botocore.session
import jwt
import pytest

from card_tokens import aws, sealing, snapstart, tokens
from card_tokens.config import IssuerSettings, TokenSettings
from card_tokens.issuing import Issuer
from card_tokens.key_store import KEYS
from card_tokens.records import TokenRecord
from card_tokens.sealing import DataKey
from card_tokens.signing_keys import VerificationKeyRing
from tests.cards import VISA
from tests.support import run_captured

from .fake_merchants import InMemoryMerchants
from .keys import signing_key
from .test_sealing import CARD, FakeKms

ROOT = Path(__file__).resolve().parents[2]
SHIM = ROOT / "tests" / "shims" / "snapshot_restore_py.py"
PROBE = Path(__file__).resolve().parent / "snapstart_probe.py"
# Every function that imports the layer; each registers the hooks at import.
HANDLERS = (
    "issue_token.app",
    "process_payment.app",
    "publish_jwks.app",
    "reconcile_payments.app",
    "rotate_signing_key.app",
)
# What the handlers' settings require at import (values only need to be valid).
PROBE_ENVIRONMENT = {
    "POWERTOOLS_SERVICE_NAME": "card-tokens",
    "POWERTOOLS_METRICS_NAMESPACE": "CardTokens",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "TOKEN_ISSUER": "https://card-tokens.example",
    "TOKEN_AUDIENCE": "card-tokens-payments",
    "TOKEN_LIFETIME_SECONDS": "900",
    "CARD_KEY_ID": "alias/probe-card",
    "TOKEN_TABLE_NAME": "probe-tokens",
    "PAYMENT_TABLE_NAME": "probe-payments",
    "IDEMPOTENCY_TABLE_NAME": "probe-idempotency",
    "SANDBOX_LEDGER_TABLE_NAME": "probe-ledger",
    "MERCHANT_TABLE_NAME": "probe-merchants",
    "SIGNING_KEY_SECRET_ID": "probe-signing-key",
    "VERIFICATION_KEYS_SECRET_ID": "probe-verification-keys",
    "SIGNING_ALGORITHM": "ES256",
    "AWS_DEFAULT_REGION": "eu-west-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@pytest.fixture
def runtime(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The runtime's hooks module, importable as in Lambda, with nothing registered yet."""
    spec = importlib.util.spec_from_file_location(snapstart.RUNTIME_HOOKS_MODULE, SHIM)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setitem(sys.modules, snapstart.RUNTIME_HOOKS_MODULE, module)
    monkeypatch.setattr(snapstart, "_registered", [])
    return module


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Credentials and a region in the environment, as Lambda sets them; no cached client or
    key before or after (the next test builds its own, in its own environment)."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    _forget_everything()
    yield
    _forget_everything()


def _forget_everything() -> None:
    # Directly, not through the hooks under test: a broken hook must not leak this test's
    # clients (built for this environment) into the next test.
    aws.forget_clients()
    KEYS.reset()


@pytest.fixture
def python_random() -> Iterator[None]:
    """The tests below set the random module's state; the others get theirs back."""
    state = random.getstate()
    yield
    random.setstate(state)


def _fill_key_caches() -> Any:
    """What a container holds after serving requests: a provider with a cached secret, a
    parsed signing key, a key ring, an unknown-kid refresh time."""
    provider = KEYS._secrets()
    provider.add_to_cache(key=("probe-secret", "json"), value={"kid": "k"}, max_age=300)
    key = signing_key()
    KEYS._signing_keys[key.kid] = key
    KEYS._rings["probe-secret"] = ({"keys": []}, VerificationKeyRing([]))
    KEYS._forced_at["probe-secret"] = time.monotonic()
    assert not KEYS.is_empty
    return provider


def _clients() -> tuple[Any, Any, Any]:
    return aws.kms_client(), aws.dynamodb_client(), aws.secretsmanager_client()


# ---------------------------------------------------------------- registration


def test_without_the_lambda_runtime_nothing_is_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, snapstart.RUNTIME_HOOKS_MODULE, None)  # not importable
    monkeypatch.setattr(snapstart, "_registered", [])

    assert snapstart.register_hooks() is False


def test_the_hooks_are_registered_with_the_runtime_once(runtime: ModuleType) -> None:
    assert snapstart.register_hooks() is True
    assert snapstart.register_hooks() is True  # a second handler module in the same process

    assert [hook for hook, _, _ in runtime.before_snapshot_hooks] == [snapstart.before_snapshot]
    assert [hook for hook, _, _ in runtime.after_restore_hooks] == [snapstart.after_restore]


@cache
def _probe_runs() -> dict[str, list[dict[str, Any]]]:
    """Each handler's init in two fresh processes, as two snapshots of one version would be."""
    paths = [str(SHIM.parent), str(ROOT / "layers" / "card_tokens"), str(ROOT / "functions")]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_"))},
        **PROBE_ENVIRONMENT,
        "PYTHONPATH": os.pathsep.join(paths),
        "PYTHONHASHSEED": "0",  # the same set order in both processes
    }

    def probe(handler: str) -> dict[str, Any]:
        result = run_captured([sys.executable, PROBE, handler], env=env, cwd=ROOT)
        assert result.returncode == 0, result.stderr[-3000:]
        report: dict[str, Any] = json.loads(result.stdout.splitlines()[-1])
        return report

    with ThreadPoolExecutor(max_workers=4) as pool:
        runs = list(pool.map(probe, [handler for handler in HANDLERS for _ in range(2)]))
    return {handler: runs[2 * i : 2 * i + 2] for i, handler in enumerate(HANDLERS)}


@pytest.mark.parametrize("handler", HANDLERS)
def test_each_handler_registers_the_hooks_at_import_and_init_touches_no_network(
    handler: str,
) -> None:
    # Given the handler imported in a fresh process where the runtime module exists (and any
    # connection fails the process), then its before-snapshot and after-restore hooks run
    first, _ = _probe_runs()[handler]

    # Then exactly one hook of each kind was registered, and nothing connected anywhere
    assert first["registered"] == [1, 1]


@pytest.mark.parametrize("handler", HANDLERS)
def test_nothing_random_or_time_derived_is_fixed_at_init(handler: str) -> None:
    # Given two fresh inits of the same handler, as two snapshots of a version would be made
    first, second = _probe_runs()[handler]

    # Then no module-level value of the layer or the handler looks random or like a clock
    assert first["suspicious"] == []
    # and every one of them is the same in both: none is drawn from randomness or time
    for module, values in first["globals"].items():
        assert values == second["globals"][module], module


# ---------------------------------------------------------------- what the hooks reset


@pytest.mark.usefixtures("environment")
def test_after_restore_builds_new_clients_and_reads_the_keys_again(runtime: ModuleType) -> None:
    # Given an environment that served requests: clients, a secrets provider, cached keys
    snapstart.register_hooks()
    old_clients = _clients()
    old_provider = _fill_key_caches()

    # When Lambda restores an environment from the snapshot
    runtime.run_after_restore()

    # Then the clients are new (their own connections and credentials), and so is the
    # provider, built on the new Secrets Manager client
    new_clients = _clients()
    assert all(new is not old for new, old in zip(new_clients, old_clients, strict=True))
    # and no secret or key is cached: each is fetched again, its max-age from this clock on
    assert KEYS.is_empty
    assert not old_provider.has_not_expired_in_cache(("probe-secret", "json"))
    assert KEYS._secrets() is not old_provider
    assert KEYS._secrets().client is aws.secretsmanager_client()


@pytest.mark.usefixtures("environment")
def test_before_snapshot_leaves_no_client_credential_or_key_but_the_parsed_models(
    runtime: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    resolved: list[str] = []
    read_from_disk: list[str] = []
    get_credentials = botocore.session.Session.get_credentials
    load_file = botocore.loaders.JSONFileLoader.load_file

    def counting_get_credentials(self: botocore.session.Session) -> Any:
        resolved.append("credentials")
        return get_credentials(self)

    def counting_load_file(self: Any, file_path: str) -> Any:
        read_from_disk.append(file_path)
        return load_file(self, file_path)

    monkeypatch.setattr(botocore.session.Session, "get_credentials", counting_get_credentials)
    monkeypatch.setattr(botocore.loaders.JSONFileLoader, "load_file", counting_load_file)
    snapstart.register_hooks()
    _clients()
    _fill_key_caches()
    aws._data_loader.cache_clear()  # no model parsed yet, as at init (which builds no client)
    resolved.clear()

    # When Lambda takes the snapshot
    runtime.run_before_snapshot()

    # Then it holds no client (no connection, no credential) and no key or secret
    for client in (aws.kms_client, aws.dynamodb_client, aws.secretsmanager_client):
        assert client.cache_info().currsize == 0, client
    assert KEYS.is_empty
    # and preparing it resolved no credential
    assert resolved == []

    # When an environment is restored from it and serves its first request
    runtime.run_after_restore()
    read_from_disk.clear()
    _clients()

    # Then its clients resolved their own credentials, and parsed no model again
    assert resolved == ["credentials"] * 3
    assert read_from_disk == []


@pytest.mark.usefixtures("python_random")
def test_environments_restored_from_one_snapshot_draw_different_random_sequences(
    runtime: ModuleType,
) -> None:
    # Given the random module's state as one snapshot holds it (botocore's retry jitter)
    snapstart.register_hooks()
    random.seed(1234)
    snapshot = random.getstate()

    def first_draw(restore_hooks: bool) -> float:
        random.setstate(snapshot)  # one more environment restored from the snapshot
        if restore_hooks:
            runtime.run_after_restore()
        return random.random()  # noqa: S311 - the generator a snapshot would share

    # Without the hook, every restored environment would draw the same sequence
    assert first_draw(restore_hooks=False) == first_draw(restore_hooks=False)
    # With it, each draws its own
    assert first_draw(restore_hooks=True) != first_draw(restore_hooks=True)


# ---------------------------------------------------------------- per-request randomness


@pytest.fixture
def os_draws(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every draw from the operating system's generator (os.urandom, secrets), by size."""
    draws: list[str] = []
    urandom, token_bytes = os.urandom, secrets.token_bytes

    def counting_urandom(size: int) -> bytes:
        draws.append(f"os.urandom({size})")
        return urandom(size)

    def counting_token_bytes(size: int | None = None) -> bytes:
        draws.append(f"secrets.token_bytes({size})")
        return token_bytes(size)

    monkeypatch.setattr(os, "urandom", counting_urandom)
    monkeypatch.setattr(secrets, "token_bytes", counting_token_bytes)
    return draws


@pytest.mark.usefixtures("python_random")
def test_a_jti_is_drawn_from_secrets_on_every_call(os_draws: list[str]) -> None:
    jtis = []
    for _ in range(2):
        random.seed(0)  # the same Python-level random state, as in two restored copies
        jtis.append(tokens.new_jti())

    assert jtis[0] != jtis[1]
    assert os_draws == ["secrets.token_bytes(16)"] * 2


class _OneDataKey:
    """A DataKeySource that always hands out the same key, and draws nothing itself."""

    def generate(self, context: dict[str, str]) -> DataKey:
        return DataKey(plaintext=b"k" * 32, encrypted=b"wrapped")

    def decrypt(self, encrypted: bytes, context: dict[str, str]) -> bytes:
        return b"k" * 32


@pytest.mark.usefixtures("python_random")
def test_a_nonce_is_drawn_from_the_os_on_every_seal(os_draws: list[str]) -> None:
    context = sealing.encryption_context(jti="jti-one-aaaaaaaaaaaaaaa", audience="payments")
    sealed = []
    for _ in range(2):
        random.seed(0)
        sealed.append(sealing.seal_card(CARD, context=context, data_keys=_OneDataKey()))

    # Same card, same key, same context, same Python random state: only the nonce differs
    assert sealed[0].meta_data != sealed[1].meta_data
    assert os_draws == ["os.urandom(12)"] * 2


class _Tokens:
    def __init__(self) -> None:
        self.records: list[TokenRecord] = []

    def put_issued(self, record: TokenRecord) -> None:
        self.records.append(record)


@pytest.mark.usefixtures("python_random")
def test_every_issue_draws_its_own_jti_and_data_key() -> None:
    data_keys = FakeKms()
    store = _Tokens()
    generated: list[dict[str, str]] = []
    generate = data_keys.generate

    def counting_generate(context: dict[str, str]) -> Any:
        generated.append(context)
        return generate(context)

    data_keys.generate = counting_generate  # type: ignore[method-assign]
    issuer = Issuer(
        settings=IssuerSettings(
            token=TokenSettings(issuer="https://card-tokens.example", audience="payments"),
            card_key_id="alias/card",
            token_table="tokens",
            signing_key_secret_id="signing-key",
            token_lifetime_seconds=900,
            merchant_table="merchants",
        ),
        data_keys=data_keys,
        tokens=store,
        signing_key=signing_key,
        merchants=InMemoryMerchants(),
        clock=lambda: 1_800_000_000,
    )
    card = VISA

    issued = []
    for _ in range(2):
        random.seed(0)
        issued.append(issuer.issue(dict(card)))

    claims = [jwt.decode(i["token"], options={"verify_signature": False}) for i in issued]
    assert claims[0]["jti"] != claims[1]["jti"]
    assert [context["jti"] for context in generated] == [c["jti"] for c in claims]
    assert store.records[0].encrypted_data_key != store.records[1].encrypted_data_key
