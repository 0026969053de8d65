"""tests/conftest.py marks each test with its folder's suite: `pytest -m unit` selects by path."""

from __future__ import annotations

import pytest


def test_a_test_carries_the_marker_of_its_folder_and_no_other(
    request: pytest.FixtureRequest,
) -> None:
    markers = {marker.name for marker in request.node.iter_markers()}

    assert "unit" in markers
    assert not markers & {"integration", "security", "template", "e2e", "processors"}
