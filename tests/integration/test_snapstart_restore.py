"""The handlers across a SnapStart snapshot and restore (card_tokens.snapstart, docs/rollout.md):
each hook runs against a container that served requests, and the next requests work on new
clients and freshly read keys."""

from __future__ import annotations

from card_tokens import aws, snapstart
from card_tokens.key_store import KEYS
from tests.flows import Invoke, body, load_event, new_token, payment_event


def test_a_container_serves_the_same_flows_after_a_snapshot_and_a_restore(
    issue: Invoke, payments: Invoke, jwks: Invoke
) -> None:
    # Given a container that issued, paid and published keys: clients and keys are cached
    paid = payments(payment_event(new_token(issue)))
    assert paid["statusCode"] == 201, paid["body"]
    assert jwks(load_event("jwks.json"))["statusCode"] == 200
    clients = (aws.kms_client(), aws.dynamodb_client(), aws.secretsmanager_client())
    provider = KEYS._secrets()

    # When Lambda snapshots it, then restores an environment from the snapshot
    snapstart.before_snapshot()
    snapstart.after_restore()

    # Then nothing of the old container's is cached any more
    assert aws.kms_client.cache_info().currsize == 0
    assert KEYS.is_empty
    # and the same flows work: new clients, keys read again from Secrets Manager
    token = new_token(issue)
    paid = payments(payment_event(token))
    assert paid["statusCode"] == 201, paid["body"]
    assert body(paid)["status"] == "approved"
    assert payments(payment_event(token))["statusCode"] == 201  # the same request, replayed
    assert jwks(load_event("jwks.json"))["statusCode"] == 200
    rebuilt = (aws.kms_client(), aws.dynamodb_client(), aws.secretsmanager_client())
    assert all(new is not old for new, old in zip(rebuilt, clients, strict=True))
    assert KEYS._secrets() is not provider
    assert KEYS._secrets().client is aws.secretsmanager_client()
