"""The repository explains itself: the README's layout names every top-level folder, the code
layout in docs/design.md names every module of the layer and every handler, each path either
names exists, and nothing points at a document the repository does not hold.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
LAYER = REPO_ROOT / "layers" / "card_tokens" / "card_tokens"
# A path in a layout block: a word with a slash or a file extension (`functions/`, `api.py`).
PATH_WORD = re.compile(
    r"(?<![\w./-])(\.?[\w-]+(?:/[\w.-]*)*(?:/|\.(?:py|yaml|toml|md|txt)))(?=[\s,;:)]|$)"
)
# Files that brief a team but are not shipped: a reader of the repository cannot follow them.
OUTSIDE_DOCUMENTS = re.compile(r"\b(?:DESIGN|STYLE|ORIGIN)\.md\b|\.\./shared\b")


def fenced_block(markdown: str, heading: str) -> str:
    """The first fenced code block under `heading`."""
    section = markdown.split(f"\n{heading}\n", 1)[1]
    return section.split("```", 2)[1]


def layout_paths(block: str) -> list[str]:
    return PATH_WORD.findall(block)


def tracked_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    return listed.stdout.splitlines()


def top_level_folders(files: list[str]) -> set[str]:
    return {f.split("/", 1)[0] for f in files if "/" in f} - {".ci"}


def unnamed_folders(block: str, folders: set[str]) -> set[str]:
    named = {path.split("/", 1)[0] for path in layout_paths(block)}
    return folders - named


def missing_paths(block: str, root: Path, *, base: Path | None = None) -> list[str]:
    """Paths the block names that exist nowhere: not from the root, not in a folder the block
    names (an indented file belongs to the folder above it), not in base."""
    paths = layout_paths(block)
    folders = [root, *(root / p for p in paths if p.endswith("/")), *([base] if base else [])]
    return [path for path in paths if not any((folder / path).exists() for folder in folders)]


def unnamed_modules(block: str, layer: Path) -> set[str]:
    named = set(layout_paths(block))
    return {m.name for m in layer.glob("*.py") if m.name != "__init__.py"} - named


def outside_references(files: dict[str, str]) -> list[str]:
    return [name for name, text in files.items() if OUTSIDE_DOCUMENTS.search(text)]


README_LAYOUT = fenced_block((REPO_ROOT / "README.md").read_text(encoding="utf-8"), "## Layout")
CODE_LAYOUT = fenced_block(
    (REPO_ROOT / "docs" / "design.md").read_text(encoding="utf-8"), "## Code layout"
)


def test_the_readme_layout_names_every_top_level_folder_and_nothing_that_is_gone() -> None:
    assert unnamed_folders(README_LAYOUT, top_level_folders(tracked_files())) == set()
    assert missing_paths(README_LAYOUT, REPO_ROOT) == []


def test_the_code_layout_names_every_layer_module_and_handler_and_each_exists() -> None:
    assert unnamed_modules(CODE_LAYOUT, LAYER) == set()
    handlers = {f"functions/{p.parent.name}/" for p in REPO_ROOT.glob("functions/*/app.py")}
    assert handlers - set(layout_paths(CODE_LAYOUT)) == set()
    assert missing_paths(CODE_LAYOUT, REPO_ROOT, base=LAYER) == []


def test_nothing_in_the_repository_points_at_a_document_it_does_not_hold() -> None:
    this_file = str(Path(__file__).relative_to(REPO_ROOT))
    texts = {}
    for name in tracked_files():
        path = REPO_ROOT / name
        if name == this_file or not path.is_file() or path.stat().st_size > 1_000_000:
            continue
        try:
            texts[name] = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # binary: a screenshot, a vector file in another encoding
    assert outside_references(texts) == []


def test_the_checks_catch_a_missing_folder_a_stale_path_and_an_outside_reference(
    tmp_path: Path,
) -> None:
    (tmp_path / "layer").mkdir()
    (tmp_path / "layer" / "cards.py").write_text("")
    (tmp_path / "layer" / "new_module.py").write_text("")
    block = "functions/   handlers\nlayer/  the layer\n  cards.py  validation\ngone.yaml\n"
    assert unnamed_folders(block, {"functions", "layer", "bench"}) == {"bench"}
    assert missing_paths(block, tmp_path, base=tmp_path / "layer") == ["functions/", "gone.yaml"]
    assert unnamed_modules(block, tmp_path / "layer") == {"new_module.py"}
    brief = "see " + "DESIGN" + ".md"
    assert outside_references({"a.py": brief, "b.md": "see docs/design.md"}) == ["a.py"]
