"""The README and docs/ hold together: every relative link and anchor resolves, every page of
docs/ can be reached from the README, and every runbook an alarm names is a heading of
docs/operate.md.

Links are read as GitHub renders them: `[text](target)` and `![alt](target)` outside fenced code
blocks; a target with a scheme (https:, mailto:) is left to the reader. An anchor is GitHub's
slug of a heading of the linked page.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCS = REPO_ROOT / "docs"
PAGES = [REPO_ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)
RUNBOOK = re.compile(r'Runbook: docs/operate\.md "([^"]+)"')
RUNBOOK_ANCHOR = re.compile(r"docs/operate\.md#([a-z0-9_-]+)")


def prose(path: Path) -> str:
    """The page without its fenced code blocks (a link inside one is code, not a link)."""
    lines, fenced = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return "\n".join(lines)


def headings(path: Path) -> list[str]:
    return re.findall(r"^#{1,6} (.+?)\s*#*$", prose(path), re.MULTILINE)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation but - and _ dropped, - for spaces."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading's anchor, with GitHub's -1, -2 … for a repeated one."""
    seen: Counter[str] = Counter()
    found = set()
    for heading in headings(path):
        base = slug(heading)
        found.add(base if not seen[base] else f"{base}-{seen[base]}")
        seen[base] += 1
    return found


def relative_links(path: Path) -> list[str]:
    return [target for target in LINK.findall(prose(path)) if not SCHEME.match(target)]


def resolve(page: Path, target: str) -> tuple[Path, str]:
    file_part, _, anchor = target.partition("#")
    return ((page.parent / file_part).resolve() if file_part else page), anchor


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_every_relative_link_and_anchor_resolves(page: Path) -> None:
    broken = []
    for target in relative_links(page):
        linked, anchor = resolve(page, target)
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and (linked.suffix != ".md" or anchor not in anchors(linked)):
            broken.append(f"{target}: no such heading")
    assert not broken, broken


def test_every_page_of_docs_is_reachable_from_the_readme() -> None:
    reached, todo = set(), [REPO_ROOT / "README.md"]
    while todo:
        page = todo.pop()
        if page in reached:
            continue
        reached.add(page)
        for target in relative_links(page):
            linked, _ = resolve(page, target)
            if linked.suffix == ".md" and linked.parent == DOCS and linked.is_file():
                todo.append(linked)
    assert set(DOCS.glob("*.md")) - reached == set()


def test_every_runbook_the_template_names_is_a_heading_of_operate_md() -> None:
    template = (REPO_ROOT / "template.yaml").read_text(encoding="utf-8")
    operate = DOCS / "operate.md"
    named = RUNBOOK.findall(template)
    linked = RUNBOOK_ANCHOR.findall(template)

    assert named, "no alarm names a runbook of docs/operate.md"
    assert set(named) - set(headings(operate)) == set()
    assert set(linked) - anchors(operate) == set()
    # and no pointer to where the runbooks used to be
    assert "Runbook: README" not in template


def test_the_checks_catch_a_broken_link_and_a_missing_heading(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# A\n\n## Two words\n\n[b](b.md) [here](#two-words)\n")
    (tmp_path / "b.md").write_text("# B\n\n```\n[not a link](nowhere.md)\n```\n[a](a.md#one)\n")

    page_a, page_b = tmp_path / "a.md", tmp_path / "b.md"
    assert anchors(page_a) == {"a", "two-words"}
    assert relative_links(page_b) == ["a.md#one"]
    linked, anchor = resolve(page_b, "a.md#one")
    assert linked == page_a
    assert anchor not in anchors(linked)
    assert slug("Response: 201 `IssuedToken`") == "response-201-issuedtoken"
    assert slug("AWS WAF's log and rate limits") == "aws-wafs-log-and-rate-limits"
