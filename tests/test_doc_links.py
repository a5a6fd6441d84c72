"""Every link in README.md and docs/ resolves inside the repository, anchors included, and no
document sends readers to a path that does not ship with the project."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md"),
               ROOT / "tests" / "files" / "README.md"])
# [text](target) outside code; images too. Targets with a scheme are external.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")


def _prose(text: str) -> str:
    return INLINE_CODE.sub("", FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`|\*|_(?=\w)|(?<=\w)_", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    result = set()
    for line in FENCE.sub("", path.read_text()).splitlines():
        match = re.match(r"#{1,6}\s+(.*)", line)
        if not match:
            continue
        base = slug(match.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def links(path: Path) -> list[str]:
    return LINK.findall(_prose(path.read_text()))


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_resolves_inside_the_repository(doc: Path) -> None:
    broken = []
    for target in links(doc):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        resolved = (doc.parent / file_part).resolve() if file_part else doc
        if ROOT not in resolved.parents and resolved != ROOT:
            broken.append(f"{target}: outside the repository")
        elif not resolved.exists():
            broken.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target}: no heading #{anchor}")
    assert not broken, broken


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_document_names_a_path_that_does_not_ship(doc: Path) -> None:
    text = doc.read_text()
    assert not re.findall(r"(?<![\w.])/(?:work|home|root|tmp)/\S*", text)
    assert "shared/providers" not in text


def test_the_link_checker_sees_broken_links(tmp_path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# A title\n\n[ok](#a-title) [code](`x`) `[not](a link)`\n"
                    "```\n[in](a fence)\n```\n[gone](missing.md)\n")
    assert links(page) == ["#a-title", "missing.md"]
    assert anchors(page) == {"a-title"}
    assert slug("3. Double opt-in") == "3-double-opt-in"
    assert slug("Setting up the `provider` mode in eSputnik") == (
        "setting-up-the-provider-mode-in-esputnik")


def test_readme_lists_every_doc() -> None:
    listed = {target for target in links(ROOT / "README.md")}
    for doc in DOCS:
        if doc.parent == ROOT / "docs" or doc.parent == ROOT / "docs" / "providers":
            assert str(doc.relative_to(ROOT)) in listed, doc
