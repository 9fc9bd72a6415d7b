"""Grounding: a narrative may name, link, count and date only what its facts give.

Names are a closed vocabulary. Whatever in a narrative is shaped like a name must be a name
of the facts: a service, team or on-call of the topology, a failure mode, a severity, or
another structured value of the prompt document (tiers, incident ids, the event's name,
the document's own keys). Shaped like a name means

- an identifier: kebab-case, snake_case, dotted or camelCase, or letters mixed with digits
  (`ledger-sync`, `billing_gateway`, `ledgerSync`, `svc2`);
- a capitalised word or run of words that does not start a sentence (`Atlas`,
  `Project Phoenix`, `Billing Gateway`), or an all-capitals word (`ATLAS`);
- the word before a noun that names a component ("the ledger service", "the Atlas cluster",
  "Billing on-call");
- a word in backticks or quotes.

A word of a name stands for it ("Redis" of redis-cache, "Payment Provider"), but an identifier
must be a whole name: `redis-sync` is an invention however real `redis` is.

What is not a fact's name passes only when it is ordinary prose: a word of ORDINARY_WORDS (a
curated list of English and reliability words that leaves out the business nouns services
and teams are named after: billing, ledger, wallet ...), a hyphenated compound of
COMMON_COMPOUNDS (every part of which is itself an ordinary word), a prefix or suffix
compound of an ordinary word ("non-critical", "zone-wide", "30-minute"), an acronym of
ACRONYMS, a capitalised phrase of PHRASES ("Incident Commander") or a token such as `SEV1`,
`p99` or `5xx`. The lists are data files of the package (resources/words/*.txt, one entry a
line), read once. Nothing else is let through, whether or not it contains a component word:
an identifier is never ordinary prose unless it is listed. Products and tools (Kubernetes,
PostgreSQL, Kafka) are names too: the system prompt forbids naming a tool that is not in the
facts, and naming one the organisation may not run is as ungrounded as inventing a service.

Past incidents' titles and the selection reason are free text (people's words, possibly
carrying injected instructions): they are data for the model, never a source of names.

URLs must be runbooks of the facts; numbers and dates must be the facts' (docs/narration.md).
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from whatif import resources
from whatif.schemas import FAILURE_MODES, SEVERITIES, Narrative

URL = re.compile(r"https?://[^\s)\]>\"'`]+")
NUMBER = re.compile(r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?![\w])")
DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
HTTP_CODE = re.compile(r"\b(?:HTTP|status)\s+([45]\d\d)\b|\b([45]\d\d)\s+(?:errors?|responses?)\b")
JARGON = re.compile(r"\b(?:SEV\d|P\d|p\d\d|[45]xx|[A-Z]+\d+)\b")
# A word: letters and digits, joined inside by - _ . and apostrophes ("api-gateway's").
TOKEN = re.compile(r"[^\W_](?:[\w.'’-]*[^\W_])?")
SEPARATOR = re.compile(r"[^\W_][-_.][^\W_]")
# Counts, percentiles, severities, status classes, units and ordinals: not names.
QUANTITY = re.compile(
    r"(?:sev-?\d|p\d{1,3}(?:\.\d+)?|[1-5]xx|\d+(?:\.\d+)?(?:x|ms|s|m|min|mins|h|hr|hrs|d|k|st|nd"
    r"|rd|th|gb|mb|tb|kb))",
    re.IGNORECASE,
)
QUOTED = re.compile(r"`([^`\n]+)`|[\"“]([^\"“”\n]+)[\"”]|(?<![^\W_])['‘]([^'‘’\n]+)['’](?![^\W_])")
OPENERS = " \t\"'“‘([*•-"  # what may stand between a sentence's end and its first word
FREE_TEXT_KEYS = frozenset({"title", "why_selected"})  # of the prompt document
NOT_IN_FACTS = "which is not a service, team, on-call or failure mode of the facts"


@functools.cache
def word_list(name: str) -> frozenset[str]:
    """A word list of the package (resources/words/<name>.txt: one entry a line, `#`
    comments), read once."""
    text = (resources.folder("words") / f"{name}.txt").read_text(encoding="utf-8")
    lines = (line.strip() for line in text.splitlines())
    return frozenset(line for line in lines if line and not line.startswith("#"))


# The curated lists (module doc), one file each; the ordinary words in five.
ORDINARY_PARTS = ("function-words", "reliability-words", "general-words", "system-words",
                  "bound-words")  # fmt: skip
ORDINARY_WORDS = frozenset().union(*(word_list(part) for part in ORDINARY_PARTS))
NUMBER_WORDS = word_list("number-words")
PREFIXES = word_list("prefixes")  # with an ordinary word: an adjective or a verb, not a name
SUFFIXES = word_list("suffixes")  # with an ordinary word or a name: an adjective
COMMON_COMPOUNDS = word_list("compounds")
ACRONYMS = word_list("acronyms")  # compared in capitals
PHRASES = word_list("phrases")  # compared in lower case
NAME_NOUNS = word_list("name-nouns")  # after which a word is used as a name
ABBREVIATIONS = word_list("abbreviations")  # whose dot ends no sentence
LABEL_FIELDS = frozenset({"title", "role"})  # title case is the custom there


# ---------------------------------------------------------------------------- vocabulary


@dataclass(frozen=True)
class Vocabulary:
    """What a narrative may name, link, count and date: taken once from the facts."""

    names: frozenset[str]  # lower case
    words: frozenset[str]  # the names and the words they are made of ("redis", "primary")
    urls: frozenset[str]
    numbers: frozenset[float]
    dates: frozenset[str]
    phrases: re.Pattern[str] | None  # names with spaces or symbols, masked before checking

    @classmethod
    def of(
        cls, document: dict[str, Any], inputs: dict[str, Any], minutes: Iterable[int] = ()
    ) -> Vocabulary:
        """From the prompt document (what the model saw), the whole topology's names in
        `inputs`, and the narrative's own inject minutes."""
        strings = list(structured_strings(document))
        names = {*inputs.get("services", []), *FAILURE_MODES, *SEVERITIES, *strings}
        names |= {*inputs.get("owners", {}).values(), *inputs.get("oncall", {}).values()}
        lowered = {str(n).strip().lower() for n in names if str(n).strip()}
        urls = {*inputs.get("runbooks", {}).values(), *(u for s in strings for u in URL.findall(s))}
        numbers, dates = _facts_numbers(document)
        return cls(
            names=frozenset(lowered),
            words=frozenset(lowered | {w for n in lowered if "://" not in n for w in _parts(n)}),
            urls=frozenset(urls),
            numbers=frozenset(numbers | {float(m) for m in minutes}),
            dates=frozenset(dates),
            phrases=_phrases(n for n in lowered if "://" not in n),
        )

    def knows(self, word: str) -> bool:
        """A name of the facts, in any case, plural or possessive ("Checkout", "payment",
        "api-gateway's")."""
        return any(form in self.names for form in _name_forms(word))

    def knows_word(self, word: str) -> bool:
        """A name of the facts or a word of one ("Redis" of redis-cache): fine as a word,
        though an identifier must be a whole name."""
        return any(form in self.words for form in _name_forms(word))


def _parts(name: str) -> list[str]:
    return re.split(r"[\s_.-]+", name)


def _phrases(names: Iterable[str]) -> re.Pattern[str] | None:
    """Names that are not single tokens ("Black Friday", "storage and virtual machines"),
    longest first."""
    spaced = sorted((n for n in names if not re.fullmatch(r"[\w.'’-]+", n)), key=len)
    if not spaced:
        return None
    return re.compile(
        "|".join(rf"(?<!\w){re.escape(n)}(?!\w)" for n in reversed(spaced)), re.IGNORECASE
    )


def structured_strings(tree: Any) -> Iterator[str]:
    """The document's keys and string values, leaving out free text (FREE_TEXT_KEYS)."""
    if isinstance(tree, dict):
        for name, value in tree.items():
            yield str(name)
            if name not in FREE_TEXT_KEYS:
                yield from structured_strings(value)
    elif isinstance(tree, list):
        for item in tree:
            yield from structured_strings(item)
    elif isinstance(tree, str):
        yield tree


def json_nodes(tree: Any) -> Iterator[Any]:
    """Every node of a JSON tree, depth first, the containers before what they hold."""
    yield tree
    children = tree.values() if isinstance(tree, dict) else tree if isinstance(tree, list) else ()
    for child in children:
        yield from json_nodes(child)


def _facts_numbers(document: dict[str, Any]) -> tuple[set[float], set[str]]:
    """Every number of the facts, also as a percentage, in hours and in days; counts to ten
    ("1 in 10"); every date written in them."""
    numbers: set[float] = set(range(0, 11))
    dates: set[str] = set()
    for node in json_nodes(document):
        if isinstance(node, int | float) and not isinstance(node, bool):
            value = float(node)
            numbers.update({value, value * 100, value / 60, value / 1440})
        elif isinstance(node, str):
            dates.update(DATE.findall(node))
            for whole, decimals in NUMBER.findall(node):
                numbers.add(float(whole.replace(",", "") + decimals))
    return numbers, dates


def _name_forms(word: str) -> set[str]:
    base = _unpossessive(word.lower())
    forms = {base, base + "s", base + "es", base.replace(" ", "-"), base.replace("-", " ")}
    if base.endswith("s"):
        forms.add(base[:-1])
    if base.endswith("es"):
        forms.add(base[:-2])
    return forms


def _unpossessive(word: str) -> str:
    if word.endswith(("'s", "’s")):
        return word[:-2]
    return word[:-1] if word.endswith(("'", "’")) else word


# ---------------------------------------------------------------------------- ordinary prose


def is_ordinary(word: str) -> bool:
    """An ordinary word, in any inflection ("fails", "degraded", "retries")."""
    return any(stem in ORDINARY_WORDS for stem in _stems(_unpossessive(word.lower())))


def _stems(word: str) -> set[str]:
    stems = {word}
    for suffix, replacements in (
        ("ies", ("y",)),
        ("es", ("", "e")),
        ("s", ("",)),
        ("ed", ("", "e")),
        ("ing", ("", "e")),
        ("ly", ("",)),
        ("er", ("", "e")),
        ("ers", ("", "e")),
    ):
        if word.endswith(suffix) and len(word) > len(suffix) + 1:
            root = word[: -len(suffix)]
            stems |= {root + r for r in replacements}
            if len(root) > 2 and root[-1] == root[-2]:  # stopped, running
                stems.add(root[:-1])
    return stems


def is_acronym(word: str) -> bool:
    upper = _unpossessive(word).upper()
    return upper in ACRONYMS or (upper.endswith("S") and upper[:-1] in ACRONYMS)


def is_ordinary_compound(word: str, vocabulary: Vocabulary) -> bool:
    """A hyphenated word of prose: listed, or a prefix or suffix on an ordinary word or a
    name ("non-critical", "zone-wide", "checkout-related"), or a count of a unit
    ("30-minute")."""
    lowered = _unpossessive(word.lower())
    if lowered in COMMON_COMPOUNDS or lowered in ABBREVIATIONS:
        return True
    parts = lowered.split("-")
    if len(parts) != 2 or not all(parts):
        return False
    first, second = parts
    if first in PREFIXES:
        return plain(second, vocabulary)
    if second in SUFFIXES:
        return plain(first, vocabulary)
    is_count = first in NUMBER_WORDS or re.fullmatch(r"\d+(?:\.\d+)?", first)
    return bool(is_count) and is_ordinary(second)


def plain(word: str, vocabulary: Vocabulary) -> bool:
    """Ordinary prose, an acronym, or a word of the facts' names: fine wherever a word
    stands alone."""
    return is_ordinary(word) or is_acronym(word) or vocabulary.knows_word(word)


# ---------------------------------------------------------------------------- checking


@dataclass(frozen=True)
class Token:
    text: str
    start: int
    end: int
    sentence_start: bool
    kind: str  # number, quantity, identifier, acronym, capitalised or word (see _kind)


def _kind(text: str) -> str:
    word = _unpossessive(text)
    if word.isalpha() and word.islower():
        return "word"
    letters = [c for c in word if c.isalpha()]
    if not letters:
        return "number"
    if QUANTITY.fullmatch(word):
        return "quantity"
    capitals = sum(c.isupper() for c in letters)
    if is_acronym(word) and capitals > 1:
        return "acronym"
    if SEPARATOR.search(word) or re.search(r"[a-z][A-Z]", word) or any(c.isdigit() for c in word):
        return "identifier"
    core = word[:-1] if word.endswith("s") else word  # APIs, SLOs
    if sum(c.isalpha() for c in core) > 1 and core.isupper():
        return "acronym"
    return "capitalised" if word[0].isupper() else "word"


def grounding_errors(
    narrative: Narrative, document: dict[str, Any], inputs: dict[str, Any]
) -> list[str]:
    """What the narrative states that the facts do not: names outside the facts'
    vocabulary, URLs that are not runbooks, numbers and dates that are none of the facts'
    (the injects' minutes are its own). `document` is the prompt document the model saw."""
    vocabulary = Vocabulary.of(document, inputs, (i.minute for i in narrative.injects))
    errors: set[str] = set()
    for field, text in fields(narrative):
        errors.update(text_errors(text, vocabulary, label=field in LABEL_FIELDS))
    return sorted(errors)


def fields(narrative: Narrative) -> Iterator[tuple[str, str]]:
    """Every text of a narrative, with the name of its field."""
    yield "title", narrative.title
    yield "narrative", narrative.narrative
    yield "predicted_impact", narrative.predicted_impact
    for inject in narrative.injects:
        yield "event", inject.event
        yield "observed", inject.observed
    for signal in narrative.detection_signals:
        yield "detection_signals", signal
    mitigations = narrative.mitigations
    for step in (*mitigations.immediate, *mitigations.short_term, *mitigations.long_term):
        yield "mitigations", step
    for item in narrative.checklist:
        yield "role", item.role
        yield "action", item.action
    for question in narrative.facilitator_questions:
        yield "facilitator_questions", question


def text_errors(text: str, vocabulary: Vocabulary, label: bool = False) -> list[str]:
    """The grounding errors of one text; `label`: a title or role, where title case is
    usual."""
    errors = _url_errors(text, vocabulary)
    prose = URL.sub(" ", text)
    if vocabulary.phrases is not None:
        prose = vocabulary.phrases.sub(lambda m: " " * len(m.group(0)), prose)
    tokens = _tokens(prose)
    errors += _quoted_errors(prose, vocabulary)
    errors += _identifier_errors(tokens, vocabulary)
    errors += _capital_errors(tokens, prose, vocabulary, label)
    errors += _noun_errors(tokens, prose, vocabulary)
    errors += _number_errors(prose, tokens, vocabulary)
    return sorted(set(errors))


def _tokens(text: str) -> list[Token]:
    """The words of a text, each knowing whether it starts a sentence (after . ! ? : or a
    line break, not after "e.g.")."""
    tokens: list[Token] = []
    for match in TOKEN.finditer(text):
        previous = tokens[-1] if tokens else None
        gap = text[previous.end if previous else 0 : match.start()].rstrip(OPENERS)
        start = previous is None and not gap
        if previous is not None and gap and gap[-1] in ".!?:\n":
            start = previous.text.lower() not in ABBREVIATIONS
        word = match.group(0)
        tokens.append(Token(word, match.start(), match.end(), start, _kind(word)))
    return tokens


def _url_errors(text: str, vocabulary: Vocabulary) -> list[str]:
    return [
        f"names the URL {url!r}, which is not a runbook in the facts"
        for url in URL.findall(text)
        if url.rstrip(".,;:") not in vocabulary.urls
    ]


def _name_error(name: str) -> str:
    return f"names {name!r}, {NOT_IN_FACTS}"


def _quoted_errors(text: str, vocabulary: Vocabulary) -> list[str]:
    """A word in backticks is code: a whole name of the facts or a number; a single word in
    quotes is used as a name unless it is plain prose."""
    errors = []
    for match in QUOTED.finditer(text):
        code, quoted = match.group(1), match.group(2) or match.group(3)
        content = (code or quoted or "").strip(" .,;:!?")
        if not content or vocabulary.knows(content) or re.fullmatch(r"[\d.,%]+", content):
            continue
        if code is not None or (" " not in content and not _prose_word(content, vocabulary)):
            errors.append(_name_error(content))
    return errors


def _prose_word(word: str, vocabulary: Vocabulary) -> bool:
    return (
        plain(word, vocabulary)
        or is_ordinary_compound(word, vocabulary)
        or bool(QUANTITY.fullmatch(word))
    )


def _identifier_errors(tokens: list[Token], vocabulary: Vocabulary) -> list[str]:
    """Identifiers and all-capitals words: names unless the facts' or listed prose."""
    errors = []
    for token in tokens:
        if token.kind not in ("identifier", "acronym") or vocabulary.knows(token.text):
            continue
        if token.kind == "identifier" and is_ordinary_compound(token.text, vocabulary):
            continue
        if token.kind == "acronym" and plain(token.text, vocabulary):
            continue
        errors.append(_name_error(_unpossessive(token.text)))
    return errors


def _capital_errors(
    tokens: list[Token], text: str, vocabulary: Vocabulary, label: bool
) -> list[str]:
    """Capitalised words used as names: runs of them ("Project Phoenix") and single ones
    ("Atlas") that do not start a sentence."""
    errors = []
    for run in _capital_runs(tokens, text):
        if run[0].sentence_start and (is_ordinary(run[0].text) or len(run) == 1):
            run = run[1:]  # an ordinary word starting a sentence: capitalised for that
        if not run:
            continue
        words = [t.text for t in run]
        if len(run) == 1:
            allowed = plain(words[0], vocabulary)
        else:
            allowed = _allowed_run(words, vocabulary, label)
        if not allowed:
            errors.append(_name_error(" ".join(_unpossessive(w) for w in words)))
    return errors


def _capital_runs(tokens: list[Token], text: str) -> list[list[Token]]:
    runs: list[list[Token]] = []
    for token in tokens:
        if token.kind != "capitalised":
            continue
        previous = runs[-1][-1] if runs else None
        if previous is not None and text[previous.end : token.start] == " ":
            runs[-1].append(token)
        else:
            runs.append([token])
    return runs


def _allowed_run(words: list[str], vocabulary: Vocabulary, label: bool) -> bool:
    phrase = " ".join(_unpossessive(w) for w in words)
    if vocabulary.knows(phrase) or phrase.lower() in PHRASES:
        return True
    if all(vocabulary.knows_word(w) for w in words):
        return True
    return label and all(plain(w, vocabulary) for w in words)


def _noun_errors(tokens: list[Token], text: str, vocabulary: Vocabulary) -> list[str]:
    """The word before a component noun, unless judged above: "the ledger service"."""
    errors = []
    for before, noun in itertools.pairwise(tokens):
        if not _is_name_noun(noun.text) or text[before.end : noun.start].strip():
            continue
        if before.kind not in ("word", "capitalised") or (
            before.kind == "capitalised" and not before.sentence_start
        ):
            continue
        if not plain(before.text, vocabulary):
            errors.append(f"names {before.text + ' ' + noun.text!r}, {NOT_IN_FACTS}")
    return errors


def _is_name_noun(word: str) -> bool:
    lowered = _unpossessive(word.lower())
    return lowered in NAME_NOUNS or (lowered.endswith("s") and lowered[:-1] in NAME_NOUNS)


def _number_errors(text: str, tokens: list[Token], vocabulary: Vocabulary) -> list[str]:
    errors = [
        f"states the date {day}, which is not in the facts"
        for day in DATE.findall(text)
        if day not in vocabulary.dates
    ]
    for pattern in (DATE, HTTP_CODE, JARGON):
        text = pattern.sub(lambda m: " " * len(m.group(0)), text)
    for token in tokens:  # names and identifiers hold no numbers of the facts ("svc-00012")
        if token.kind not in ("number", "quantity") and not token.text[0].isdigit():
            text = text[: token.start] + " " * (token.end - token.start) + text[token.end :]
    for whole, decimals in NUMBER.findall(text):
        value = float(whole.replace(",", "") + decimals)
        if not _matches(value, len(decimals) - 1 if decimals else 0, vocabulary.numbers):
            errors.append(
                f"states the number {whole}{decimals}, which is none of the facts' numbers"
            )
    return errors


def _matches(value: float, decimals: int, allowed: Iterable[float]) -> bool:
    """The stated value is an allowed one rounded to the decimals stated, or to one or two
    significant figures ("about 40 minutes" for 38.2)."""
    for candidate in allowed:
        if abs(round(candidate, decimals) - value) < 1e-9:
            return True
        if candidate and any(
            abs(float(f"{candidate:.{digits}g}") - value) < 1e-9 for digits in (1, 2)
        ):
            return True
    return False
