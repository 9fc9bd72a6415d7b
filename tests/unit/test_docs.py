"""The README and docs/ link only to files that exist (the README links out to docs/ for the
detail, so a moved file would leave a newcomer at a dead end)."""

from __future__ import annotations

import re

from shared import PROJECT

LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_relative_links_of_the_readme_and_docs_resolve():
    pages = [PROJECT / "README.md", *sorted((PROJECT / "docs").glob("*.md"))]
    broken = [
        f"{page.relative_to(PROJECT)}: {target}"
        for page in pages
        for target in LINK.findall(page.read_text(encoding="utf-8"))
        if "://" not in target
        and not target.startswith("mailto:")
        and not (page.parent / target).exists()
    ]
    assert len(pages) > 8
    assert broken == []
