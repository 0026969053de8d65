"""Test stand-in for `snapshot_restore_py`, the hooks module of the Lambda Python runtime.

Only for tests: the runtime provides the real module, and it is no dependency of the layer.
The two registration functions have the real module's documented signatures (usable as
decorators too); run_before_snapshot and run_after_restore play the runtime's part, in its
documented order: before-snapshot hooks in reverse order of registration, after-restore
hooks in order of registration.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Hook = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]

before_snapshot_hooks: list[Hook] = []
after_restore_hooks: list[Hook] = []


def register_before_snapshot(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    before_snapshot_hooks.append((func, args, kwargs))
    return func


def register_after_restore(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    after_restore_hooks.append((func, args, kwargs))
    return func


def run_before_snapshot() -> None:
    for func, args, kwargs in reversed(before_snapshot_hooks):
        func(*args, **kwargs)


def run_after_restore() -> None:
    for func, args, kwargs in after_restore_hooks:
        func(*args, **kwargs)


def reset() -> None:
    before_snapshot_hooks.clear()
    after_restore_hooks.clear()
