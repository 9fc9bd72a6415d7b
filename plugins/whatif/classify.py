"""Failure modes and severities of incidents from their words.

A category value ("Third party", "Config change") is mapped onto the failure-mode vocabulary by
the words of its mode; a row without one is classified from its title and description, and a
row without a severity may take one from a status page's impact words in its title ("major
outage", "partial outage", "degraded performance"). The rules are data, with a reason for
each: `resources/classify/failure_modes.yaml` and `severity.yaml` (their headers say how a
rule matches). Every row records where its mode and severity come from (`SOURCES`).

Whole columns at a time: each distinct text once, one regular-expression pass per mode over
all of them (Arrow's RE2 on Arrow-backed strings), the mode chosen by precedence with numpy;
never a Python loop per row.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable

import numpy as np
import pandas as pd
import yaml

from whatif import resources
from whatif.schemas import FAILURE_MODES, SEVERITIES

# Where a row's failure mode (or severity) comes from: its own column, the classifier of its
# words, or neither (failure mode "other", severity unknown).
SOURCES: tuple[str, ...] = ("column", "text", "none")

# In text rules a word is a run of letters and digits; in category words, of letters only (as
# the keyword lists always read them: "db2" is the word "db").
_TEXT_GAP = "[^a-z0-9]"
_CATEGORY_GAP = "[^a-z]"


@dataclasses.dataclass(frozen=True)
class Rule:
    match: str  # a regular expression over lowercased text, spaces for any separators
    why: str
    label: str  # the failure mode or severity it gives


@dataclasses.dataclass(frozen=True)
class Rules:
    category_precedence: tuple[str, ...]  # failure modes, first wins
    text_precedence: tuple[str, ...]
    category_words: dict[str, tuple[str, ...]]
    text_rules: dict[str, tuple[Rule, ...]]
    severity_rules: tuple[Rule, ...]  # first match wins

    @functools.cached_property
    def category_patterns(self) -> dict[str, str]:
        return {
            mode: _category_pattern(words) for mode, words in self.category_words.items() if words
        }

    @functools.cached_property
    def text_patterns(self) -> dict[str, str]:
        return {
            mode: _text_pattern([rule.match for rule in rules])
            for mode, rules in self.text_rules.items()
            if rules
        }


@functools.cache
def rules() -> Rules:
    """The rule files of resources/classify, checked (a bad rule fails here, not mid-run)."""
    modes = yaml.safe_load(resources.read_text("classify", "failure_modes.yaml"))
    severity = yaml.safe_load(resources.read_text("classify", "severity.yaml"))
    orders = {kind: tuple(modes["precedence"][kind]) for kind in ("category", "text")}
    named = set(modes["modes"]).union(*orders.values())
    unknown = named - (set(FAILURE_MODES) - {"other"})  # "other" is what nothing matches
    if unknown:
        raise ValueError(f"failure_modes.yaml: not a failure mode with rules: {sorted(unknown)}")
    for order in orders.values():
        if set(order) != set(modes["modes"]) or len(set(order)) != len(order):
            raise ValueError("failure_modes.yaml: each precedence must name every mode once")
    text_rules = {
        mode: tuple(_rule(item, mode) for item in spec.get("text", ()))
        for mode, spec in modes["modes"].items()
    }
    severity_rules = tuple(_rule(item, item["severity"]) for item in severity["rules"])
    if {rule.label for rule in severity_rules} - set(SEVERITIES):
        raise ValueError(f"severity.yaml: a severity is not one of {SEVERITIES}")
    return Rules(
        category_precedence=orders["category"],
        text_precedence=orders["text"],
        category_words={
            mode: tuple(str(word).lower() for word in spec.get("category", ()))
            for mode, spec in modes["modes"].items()
        },
        text_rules=text_rules,
        severity_rules=severity_rules,
    )


def _rule(item: dict[str, str], label: str) -> Rule:
    match = str(item["match"])
    if match != match.lower() or re.search(r"(?<!\\)\((?!\?:)|\(\?[=!<]", match):
        raise ValueError(f"rule {match!r}: lowercase, and only (?:...) groups (RE2, no captures)")
    re.compile(match)
    return Rule(match=match, why=str(item["why"]), label=label)


def _text_pattern(matches: list[str]) -> str:
    """Whole words only, a space for any run of separators."""
    body = "|".join(f"(?:{m.replace(' ', _TEXT_GAP + '+')})" for m in matches)
    return f"(?:^|{_TEXT_GAP})(?:{body})(?:{_TEXT_GAP}|$)"


def _category_pattern(words: tuple[str, ...]) -> str:
    """A word as a whole word, a phrase ("third party", "third-party") anywhere."""
    single = [re.escape(w) for w in words if not re.search(_CATEGORY_GAP, w)]
    phrases = [
        f"{_CATEGORY_GAP}+".join(re.escape(p) for p in re.split(f"{_CATEGORY_GAP}+", w))
        for w in words
        if re.search(_CATEGORY_GAP, w)
    ]
    parts = [f"(?:^|{_CATEGORY_GAP})(?:{'|'.join(single)})(?:{_CATEGORY_GAP}|$)"] if single else []
    return "|".join(parts + phrases)


# --- whole columns ----------------------------------------------------------------------------


def _per_distinct(values: pd.Series, classify: Callable[[pd.Series], np.ndarray]) -> pd.Series:
    """`classify` applied to each distinct value once (lowercased, as Arrow strings), spread
    back over the rows."""
    codes, uniques = pd.factorize(values.fillna("").astype(str), use_na_sentinel=False)
    text = pd.Series(np.asarray(uniques, dtype=object), dtype=pd.StringDtype("pyarrow"))
    labels = classify(text.str.lower())
    return pd.Series(np.asarray(labels, dtype=object)[codes], index=values.index)


def _matches(text: pd.Series, pattern: str) -> np.ndarray:
    return text.str.contains(pattern, regex=True).to_numpy(dtype=bool, na_value=False)


def _first(text: pd.Series, patterns: list[tuple[str, str]], default: str) -> np.ndarray:
    """Per value, the label of the first (pattern, label) that matches it; else `default`."""
    if not patterns or text.empty:
        return np.full(len(text), default, dtype=object)
    conditions = [_matches(text, pattern) for pattern, _ in patterns]
    return np.select(conditions, [label for _, label in patterns], default).astype(object)


def category_modes(values: pd.Series) -> pd.Series:
    """Each category value's failure mode: itself when it is one, else the first mode of
    the precedence one of whose words it contains, else "other"."""
    spec = rules()

    def classify(text: pd.Series) -> np.ndarray:
        key = text.str.strip().str.replace(r"\s+", " ", regex=True)
        patterns = spec.category_patterns
        order = [(patterns[m], m) for m in spec.category_precedence if m in patterns]
        found = _first(key, order, "other")
        exact = key.isin(FAILURE_MODES).to_numpy(dtype=bool, na_value=False)
        return np.where(exact, key.to_numpy(dtype=object), found)

    return _per_distinct(values, classify)


def text_modes(text: pd.Series) -> pd.Series:
    """Each text's failure mode by the text rules, "" where none matches."""
    spec = rules()
    patterns = [(spec.text_patterns[m], m) for m in spec.text_precedence if m in spec.text_patterns]
    return _per_distinct(text, lambda lowered: _first(lowered, patterns, ""))


def text_severities(text: pd.Series) -> pd.Series:
    """Each text's severity by the impact-word rules, "" where none matches."""
    patterns = [(_text_pattern([rule.match]), rule.label) for rule in rules().severity_rules]
    return _per_distinct(text, lambda lowered: _first(lowered, patterns, ""))


def failure_modes(
    category: pd.Series, title: pd.Series, description: pd.Series
) -> tuple[pd.Series, pd.Series]:
    """Per row, the failure mode and its source: the category's mode where a category is
    given ("column"), else the mode of the title and description's words ("text"), else
    "other" ("none")."""
    given = (_text(category).str.strip() != "").to_numpy()
    modes = np.full(len(category), "other", dtype=object)
    source = np.full(len(category), "none", dtype=object)
    if given.any():
        modes[given] = category_modes(_text(category[given])).to_numpy()
        source[given] = "column"
    rest = ~given
    if rest.any():
        found = text_modes(_text(title[rest]) + " " + _text(description[rest])).to_numpy()
        rows = np.flatnonzero(rest)[found != ""]
        modes[rows], source[rows] = found[found != ""], "text"
    return pd.Series(modes, index=category.index), pd.Series(source, index=category.index)


def severities(
    severity: pd.Series, given: pd.Series, title: pd.Series
) -> tuple[pd.Series, pd.Series]:
    """Per row, the severity and its source: the column's (already mapped; "column" where it
    was recognised); where the column is empty (`given` False), the title's impact words
    ("text"); else None ("none"). A word given but not recognised stays None, for validation
    to warn about, and is not replaced by the title's."""
    known = severity.notna().to_numpy()
    out = np.where(known, severity.to_numpy(dtype=object), None)
    source = np.where(known, "column", "none").astype(object)
    empty = ~given.to_numpy(dtype=bool)
    if empty.any():
        found = text_severities(_text(title[empty])).to_numpy()
        rows = np.flatnonzero(empty)[found != ""]
        out[rows], source[rows] = found[found != ""], "text"
    return pd.Series(out, index=severity.index), pd.Series(source, index=severity.index)


def _text(values: pd.Series) -> pd.Series:
    """Text of a column, empty for missing values, on a fresh index (rows by position)."""
    return values.fillna("").astype(str).reset_index(drop=True)
