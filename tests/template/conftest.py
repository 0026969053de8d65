"""template.yaml, read once per session; each test gets its own copy to look at or mutate."""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

import pytest

from local.cfn import load_template


@cache
def _template() -> dict[str, Any]:
    return load_template()


@pytest.fixture
def template() -> dict[str, Any]:
    return copy.deepcopy(_template())
