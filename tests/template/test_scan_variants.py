"""`make scan` (.ci/scan_variants.py): checkov also sees the resources behind every condition.

Fast: no checkov here, only the variant writer and the suppressions' reasons.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from local.cfn import load_template
from local.intrinsics import Resolver

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / ".ci" / "scan_variants.py"
SCANNED = (REPO_ROOT / "template.yaml", REPO_ROOT / "deploy" / "github-oidc-role.yaml")


@pytest.fixture(scope="module")
def scan_variants() -> ModuleType:
    spec = importlib.util.spec_from_file_location("scan_variants", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("scan_variants", module)
    spec.loader.exec_module(module)
    return module


def test_every_scanned_template_has_its_variant(scan_variants: ModuleType) -> None:
    sources = {source.resolve() for source, _ in scan_variants.VARIANTS.values()}
    assert sources == {path.resolve() for path in SCANNED}


def test_each_variant_turns_every_condition_on(scan_variants: ModuleType, tmp_path: Path) -> None:
    written = scan_variants.write_variants(tmp_path)

    assert sorted(path.name for path in written) == sorted(scan_variants.VARIANTS)
    for path in written:
        variant = load_template(path)
        resolver = Resolver(variant, "scan")
        assert variant["Conditions"], path.name
        for name in variant["Conditions"]:
            assert resolver.condition(name), (path.name, name)
        assert scan_variants.problems(variant) == [], path.name


def test_a_variant_changes_nothing_but_parameter_defaults(
    scan_variants: ModuleType, tmp_path: Path
) -> None:
    for path in scan_variants.write_variants(tmp_path):
        source, defaults = scan_variants.VARIANTS[path.name]
        original, variant = load_template(source), load_template(path)
        for name, parameter in variant.pop("Parameters").items():
            if name in defaults:
                assert str(parameter.pop("Default")) == defaults[name], (path.name, name)
                original["Parameters"][name].pop("Default", None)
            assert parameter == original["Parameters"][name], (path.name, name)
        original.pop("Parameters")
        assert variant == original, path.name


def test_template_variant_keeps_template_line_numbers(
    scan_variants: ModuleType, tmp_path: Path
) -> None:
    """checkov's findings on the variant then point at the same lines of template.yaml."""
    (path,) = (p for p in scan_variants.write_variants(tmp_path) if p.name.startswith("template"))
    original = (REPO_ROOT / "template.yaml").read_text(encoding="utf-8").split("\n")
    changed = path.read_text(encoding="utf-8").split("\n")

    assert len(changed) == len(original)
    assert all(
        a == b or b.startswith("    Default: ") for a, b in zip(original, changed, strict=True)
    )


@pytest.mark.parametrize(
    ("parameter", "value", "problem"),
    [
        pytest.param(
            "CheckoutPage",
            "disabled",
            "condition ServesCheckoutPage is false",
            id="a-condition-left-off",
        ),
        pytest.param(
            "AlarmEmail",
            "ops@example.com",
            "AlarmEmail='ops@example.com' does not match its AllowedPattern",
            id="a-refused-value",
        ),
    ],
)
def test_one_default_changed_fails_the_scan(
    scan_variants: ModuleType, tmp_path: Path, parameter: str, value: str, problem: str
) -> None:
    source, defaults = scan_variants.VARIANTS["template-all-conditions.yaml"]
    path = tmp_path / "changed.yaml"
    path.write_text(
        scan_variants.with_defaults(
            source.read_text(encoding="utf-8"), {**defaults, parameter: value}
        ),
        encoding="utf-8",
    )

    assert scan_variants.problems(load_template(path)) == [problem]


def test_make_scan_runs_checkov_over_every_variant(scan_variants: ModuleType) -> None:
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = makefile.split("\nscan:", 1)[1].split("\n\n", 1)[0]

    assert "$(PY) .ci/scan_variants.py $(SCAN_DIR)" in recipe
    for name in scan_variants.VARIANTS:
        assert name in recipe, name
    for path in SCANNED:
        assert f"--file {path.relative_to(REPO_ROOT)}" in recipe


@pytest.mark.parametrize("path", SCANNED, ids=lambda path: path.name)
def test_every_checkov_skip_carries_its_reason(path: Path) -> None:
    template: dict[str, Any] = load_template(path)
    for resource_id, resource in template["Resources"].items():
        checkov = resource.get("Metadata", {}).get("checkov", {})
        assert set(checkov) <= {"skip"}, resource_id
        for skip in checkov.get("skip", []):
            assert re.fullmatch(r"CKV2?_AWS_\d+", skip.get("id", "")), resource_id
            assert str(skip.get("comment") or "").strip(), (resource_id, skip["id"])
