"""Every environment variable is read in one place (whatif.environment)."""

from __future__ import annotations

import ast

import pytest
from shared import PROJECT
from whatif import environment

SOURCES = [
    *sorted((PROJECT / "plugins").rglob("*.py")),
    *sorted((PROJECT / "dags").glob("*.py")),
]


def reads_of_the_environment(path) -> list[int]:
    """Lines of `path` that touch os.environ or os.getenv."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr in ("environ", "getenv")
        and isinstance(node.value, ast.Name)
        and node.value.id == "os"
    ]


def test_only_the_environment_module_reads_environment_variables():
    assert len(SOURCES) > 30
    readers = {
        str(path.relative_to(PROJECT)): lines
        for path in SOURCES
        if (lines := reads_of_the_environment(path))
    }
    assert readers.keys() == {"plugins/whatif/environment.py"}, readers


def test_an_undeclared_variable_is_a_programming_error_and_empty_means_unset(monkeypatch):
    with pytest.raises(KeyError):
        environment.get("WHATIF_NO_SUCH_THING")
    monkeypatch.setenv("WHATIF_EXPECTED_RUN_MINUTES", "")
    assert environment.get_int("WHATIF_EXPECTED_RUN_MINUTES") == 60
    monkeypatch.setenv("WHATIF_EXPECTED_RUN_MINUTES", "ninety")
    with pytest.raises(Exception, match="WHATIF_EXPECTED_RUN_MINUTES='ninety'"):
        environment.get_int("WHATIF_EXPECTED_RUN_MINUTES")


def test_the_deprecated_cache_variable_still_works_with_a_warning(monkeypatch, caplog):
    monkeypatch.delenv("WHATIF_LLM_CACHE", raising=False)
    monkeypatch.setenv("WHATIF_LLM_CACHE_URL", "s3://bucket/cache")
    assert environment.get("WHATIF_LLM_CACHE") == "s3://bucket/cache"
    assert "WHATIF_LLM_CACHE_URL is deprecated" in caplog.text


def test_the_architecture_doc_lists_every_variable():
    doc = (PROJECT / "docs" / "architecture.md").read_text(encoding="utf-8")
    missing = [name for name in environment.VARIABLES if f"`{name}`" not in doc]
    assert missing == []
