"""One strict JSON reader for request bodies and token segments."""

from __future__ import annotations

import json
from typing import Any, NoReturn


class JsonRejected(ValueError):
    """Input that is not one plain JSON document. `reason` is a fixed word, safe to log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise JsonRejected("duplicate_member")
        result[key] = value
    return result


def _reject_constant(_: str) -> NoReturn:
    raise JsonRejected("not_json")  # NaN, Infinity and -Infinity are not JSON (RFC 8259)


def parse_strict_json(raw: bytes) -> Any:
    """UTF-8 JSON without duplicate members, NaN/Infinity, a BOM or runaway nesting."""
    try:
        return json.loads(
            raw.decode("utf-8"),
            object_pairs_hook=_reject_duplicates,
            parse_constant=_reject_constant,
        )
    except JsonRejected:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError):
        # ValueError covers JSONDecodeError (a BOM included) and integers past Python's limit.
        raise JsonRejected("malformed") from None
