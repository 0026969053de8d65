"""Child process of tests/unit/test_snapstart.py: one handler's init, as a SnapStart snapshot
would capture it, then the runtime's hooks.

Run as `python snapstart_probe.py <handler module>` with the layer, the function folders and
tests/shims (the stand-in for the runtime's snapshot_restore_py) on PYTHONPATH. Any socket
connection fails the probe: init and the hooks must not touch the network. Prints one JSON
document: the hooks the handler registered, every module-level value of the layer and the
handler (for the parent to compare two inits), and the ones that look random or time-derived.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import pkgutil
import random
import socket
import sys
import time
import uuid
from functools import _lru_cache_wrapper
from types import ModuleType
from typing import Any

# A value within a day of now is taken for a timestamp.
_NOW, _DAY = time.time(), 86_400.0
# Random bytes short enough to pass for a constant would be a weak key anyway.
_RANDOM_BYTES_MIN = 8


def _refuse(*_: object, **__: object) -> None:
    raise AssertionError("init or a SnapStart hook opened a connection")


def _describe(value: Any, depth: int = 0) -> Any:
    """A JSON rendering of data that is the same in two processes; objects by type name only
    (their addresses differ, and their data is not module-level state of ours)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, bytes | bytearray):
        return value.hex()
    if isinstance(value, uuid.UUID | dt.date | dt.datetime | time.struct_time):
        return repr(value)
    if isinstance(value, random.Random):
        return repr(value.getstate())
    if depth < 3 and isinstance(value, list | tuple):
        return [_describe(item, depth + 1) for item in value]
    if depth < 3 and isinstance(value, set | frozenset):
        return sorted(json.dumps(_describe(item, depth + 1), sort_keys=True) for item in value)
    if depth < 3 and isinstance(value, dict):
        return {repr(key): _describe(item, depth + 1) for key, item in value.items()}
    if isinstance(value, _lru_cache_wrapper):
        return f"<cached function, {value.cache_info().currsize} entries>"
    return f"<{type(value).__module__}.{type(value).__qualname__}>"


def _suspicious(value: Any, depth: int = 0) -> list[str]:
    """Values that can only come from randomness or a clock, in containers too."""
    if isinstance(value, uuid.UUID | dt.date | dt.datetime | time.struct_time):
        return [repr(value)]
    if isinstance(value, random.Random) and not isinstance(value, random.SystemRandom):
        return ["a random.Random instance (its own generator state)"]
    if isinstance(value, bytes | bytearray) and len(value) >= _RANDOM_BYTES_MIN:
        return [f"{len(value)} bytes"]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return [repr(value)] if abs(value - _NOW) < _DAY else []
    if depth < 3 and isinstance(value, list | tuple | set | frozenset):
        return [found for item in value for found in _suspicious(item, depth + 1)]
    if depth < 3 and isinstance(value, dict):
        return [found for item in value.values() for found in _suspicious(item, depth + 1)]
    return []


def _own_globals(module: ModuleType) -> dict[str, Any]:
    return {
        name: value
        for name, value in vars(module).items()
        if not name.startswith("__") and not isinstance(value, ModuleType)
    }


def main(handler: str) -> None:
    socket.socket.connect = _refuse  # type: ignore[method-assign]
    socket.create_connection = _refuse  # type: ignore[assignment]
    runtime = importlib.import_module("snapshot_restore_py")

    # Init: the handler, then every module of the layer, imported or not by this handler.
    importlib.import_module(handler)
    import card_tokens

    for info in pkgutil.walk_packages(card_tokens.__path__, "card_tokens."):
        importlib.import_module(info.name)
    modules = {
        name: module
        for name, module in sorted(sys.modules.items())
        if name == handler or name == "card_tokens" or name.startswith("card_tokens.")
    }
    report = {
        "registered": [len(runtime.before_snapshot_hooks), len(runtime.after_restore_hooks)],
        "globals": {
            name: {key: _describe(value) for key, value in _own_globals(module).items()}
            for name, module in modules.items()
        },
        "suspicious": [
            f"{name}.{key}: {found}"
            for name, module in modules.items()
            for key, value in _own_globals(module).items()
            for found in _suspicious(value)
        ],
    }
    # The snapshot, then one restored environment.
    runtime.run_before_snapshot()
    runtime.run_after_restore()
    print(json.dumps(report, sort_keys=True))


if __name__ == "__main__":
    main(sys.argv[1])
