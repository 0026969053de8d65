"""SnapStart runtime hooks: what must not go into a snapshot, and what every execution
environment restored from it must make for itself (docs/rollout.md).

With SnapStart on (template parameter SnapStart=PublishedVersions), Lambda runs a version's
init once, snapshots its memory, and resumes every new execution environment of that version
from the same snapshot. Whatever init left in memory is then shared, byte for byte, by all of
them, for as long as the version lives. What the layer keeps between invocations, and what
happens to it:

- AWS clients (card_tokens.aws, built on first use and cached): their connection pools and
  resolved credentials belong to one environment. Dropped before the snapshot and after every
  restore; the next call builds new ones. botocore's parsed service models are read-only and
  kept: loaded before the snapshot, so a restored environment builds its clients quickly.
- Secrets and keys (card_tokens.key_store.KEYS): the Powertools SecretsProvider (which holds
  its own Secrets Manager client) and its cached secret values with their max-age, the parsed
  signing keys, the verification key rings, and the unknown-kid refresh times (time.monotonic,
  meaningless in another environment). KEYS.reset() drops them on both sides: no private key
  is ever written into a snapshot, and each restored environment fetches the keys and anchors
  their cache lifetime on its own clock.
- The merchant registry's cache (card_tokens.merchant_directory, built by card_tokens.wiring):
  answers stamped with time.monotonic, meaningless in another environment. reset() drops them,
  so each restored environment reads the registry afresh and ages its answers on its own clock.
- Python's `random`: the layer draws nothing from it, but botocore's retry jitter does, and
  copies of one snapshot would otherwise share one generator state and retry in lockstep.
  Re-seeded from os.urandom after every restore.

Nothing else needs a reset: the settings come from the version's environment, the use cases
the composition root caches (card_tokens.wiring) hold names, ARNs, KEYS and the merchant
directories only (they fetch the current client on every call), and every jti, payment id,
nonce, data key and attempt id is drawn per request from `secrets`, os.urandom or KMS, never at
init (tests/unit/test_snapstart.py checks
both).

Each handler module calls register_hooks() at import. The hooks come from snapshot_restore_py,
which the Lambda Python runtime provides: it is not a dependency of the layer, and where it is
absent (tests, the local stack) nothing is registered and nothing else changes.
"""

from __future__ import annotations

import importlib
import random

from card_tokens import aws, wiring
from card_tokens.key_store import KEYS

RUNTIME_HOOKS_MODULE = "snapshot_restore_py"
_registered: list[str] = []  # the runtime module the hooks went to: register once per process


def forget_environment_state() -> None:
    """Drop what belongs to one execution environment: AWS clients, secrets, keys, the
    merchant directory's answers."""
    KEYS.reset()
    wiring.reset_merchant_directories()
    aws.forget_clients()


def before_snapshot() -> None:
    """Leave no client, credential, connection or key in the snapshot; parse the models."""
    forget_environment_state()
    aws.load_service_models()


def after_restore() -> None:
    """This environment's own clients, keys and random sequence, not the snapshot's."""
    forget_environment_state()
    random.seed()  # from os.urandom


def register_hooks() -> bool:
    """Register before_snapshot and after_restore with the Lambda runtime, once.

    False where the runtime's snapshot_restore_py is absent: not in Lambda, no snapshot.
    """
    if _registered:
        return True
    try:
        runtime = importlib.import_module(RUNTIME_HOOKS_MODULE)
    except ModuleNotFoundError:
        return False
    runtime.register_before_snapshot(before_snapshot)
    runtime.register_after_restore(after_restore)
    _registered.append(RUNTIME_HOOKS_MODULE)
    return True
