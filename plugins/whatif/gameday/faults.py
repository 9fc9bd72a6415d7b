"""What the three manifest exporters share (chaosmesh, litmus, fis; the Chaos Toolkit exporter
takes the fault sizes): the failure mode -> fault table, the notes on approximations, the
injection duration, DNS-1123 names and the metadata as strings. docs/gameday.md has the
mapping table."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

import yaml

from whatif.gameday.plan import METADATA_PREFIX, Plan, Target

# The label of every object, for `kubectl delete -l` (Chaos Mesh and Litmus).
MANAGED_BY = {"app.kubernetes.io/managed-by": "whatif"}  # abort: kubectl delete -l ...

# Failure mode -> the fault injected on the trigger. "outage": the trigger stops serving for
# the duration; "stress": CPU saturation; "latency": slow network; "unreachable": cut off
# from its callers. A third-party trigger gets "cutoff": its dependents' egress to it blocked.
FAULTS: dict[str, str] = {
    "capacity": "stress",
    "network": "latency",
    "dependency": "unreachable",
    "database": "outage",
    "deployment": "outage",
    "hardware": "outage",
    "config": "outage",
    "security": "outage",
    "data": "outage",
    "other": "outage",
}
CUTOFF = "cutoff"
# Modes whose own cause cannot be injected: the experiment rehearses their effect.
STAND_INS: dict[str, str] = {
    "config": "a bad configuration",
    "security": "a security incident",
    "data": "data corruption",
    "other": "an unclassified failure",
}
# The fault sizes, the same in the three formats (docs/gameday.md).
LATENCY_MS = 500
JITTER_MS = 100
CPU_WORKERS = 2
CPU_LOAD_PERCENT = 100
# Injection length: the scenario's p50, within a game day's bounds.
DEFAULT_MINUTES = 10
MIN_SECONDS = 60  # FIS durations start at one minute
MAX_SECONDS = 3600
PLACEHOLDER_HOST_SUFFIX = ".replace-me.invalid"  # RFC 2606: never resolves
K8S_NAME_MAX = 63  # DNS-1123 label
# Metadata values that are not strings (plan.metadata()), JSON-encoded in annotations/tags.
JSON_KEYS = (f"{METADATA_PREFIX}probability", f"{METADATA_PREFIX}blast_radius")

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def fault_of(plan: Plan) -> str:
    """The fault class of a plan: its mode's (FAULTS), or a cutoff for a third party."""
    if plan.trigger.external:
        return CUTOFF
    return FAULTS.get(plan.mode, "outage")


def mode_note(plan: Plan, fault: str) -> str | None:
    """What the experiment rehearses instead of the scenario's own cause, when that cause
    cannot be injected; None when the fault is the scenario's failure."""
    service = plan.trigger.service
    if fault == CUTOFF:
        host = external_host(plan.trigger)
        where = (
            f"{host}, a placeholder: replace it with the host they call"
            if host.endswith(PLACEHOLDER_HOST_SUFFIX)
            else f"{host}, the host of its health_url"
        )
        return (
            f"{service} is a third party and cannot be injected: its outage is rehearsed by "
            f"blocking its dependents' egress to {where}"
        )
    if plan.mode in STAND_INS:
        return (
            f"{STAND_INS[plan.mode]} cannot be injected as such: rehearsed as {service} "
            "failing for the predicted duration"
        )
    return None


def injection_seconds(plan: Plan) -> tuple[int, str | None]:
    """How long the fault lasts: the scenario's p50 within [1 min, 1 h] (a game day is
    bounded; FIS durations start at a minute), and a note when it is not the p50."""
    p50 = plan.duration_p50_minutes
    if p50 is None or not math.isfinite(p50) or p50 <= 0:
        return DEFAULT_MINUTES * 60, f"no predicted duration: {DEFAULT_MINUTES} minutes"
    seconds = round(p50 * 60)
    if seconds < MIN_SECONDS:
        return MIN_SECONDS, f"predicted p50 of {seconds}s raised to {go_duration(MIN_SECONDS)}"
    if seconds > MAX_SECONDS:
        return MAX_SECONDS, (
            f"predicted p50 of {go_duration(seconds)} capped at {go_duration(MAX_SECONDS)}"
        )
    return seconds, None


def go_duration(seconds: int) -> str:
    """Seconds as a Go duration (Chaos Mesh parses `duration` with time.ParseDuration):
    736 -> "12m16s", 3600 -> "1h"."""
    hours, rest = divmod(int(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else ""]
    parts.append(f"{secs}s" if secs or not (hours or minutes) else "")
    return "".join(parts)


def dns_label(*parts: str, limit: int = K8S_NAME_MAX) -> str:
    """A DNS-1123 label (lowercase alphanumerics and '-', at most `limit` characters) from
    the parts; a hash of the original text is appended when characters had to be changed
    or cut, so that two scenarios never share a name."""
    raw = "-".join(parts)
    slug = re.sub(r"[^a-z0-9-]+", "-", raw.lower()).strip("-") or "x"
    if slug == raw and len(slug) <= limit:
        return slug
    digest = hashlib.sha256(raw.encode("utf-8")).hexdigest()[:8]
    return f"{slug[: limit - len(digest) - 1].rstrip('-')}-{digest}"


def is_dns_label(name: str, limit: int = K8S_NAME_MAX) -> bool:
    """Whether `name` is a DNS-1123 label of at most `limit` characters."""
    return len(name) <= limit and bool(_DNS_LABEL.match(name))


def metadata_strings(plan: Plan) -> dict[str, str]:
    """plan.metadata() with string values (annotations and tags hold strings): the lists
    and numbers JSON-encoded, compactly (an FIS tag value holds 256 characters)."""
    return {
        key: value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        for key, value in plan.metadata().items()
    }


def read_metadata(strings: Mapping[str, str]) -> dict[str, Any]:
    """The inverse of metadata_strings: the whatif_ keys of a manifest's annotations (or
    an FIS template's tags) as plan.metadata() gave them."""
    return {
        key: json.loads(value) if key in JSON_KEYS else value
        for key, value in strings.items()
        if key.startswith(METADATA_PREFIX)
    }


def selectable(dependents: Iterable[Target], trigger: Target) -> list[Target]:
    """The dependents a Kubernetes tool can select: not third parties, and not the
    trigger's own pods."""
    own = (trigger.namespace, trigger.labels)
    return [d for d in dependents if not d.external and (d.namespace, d.labels) != own]


def external_host(target: Target) -> str:
    """The host a third party is reached at (its health URL's), or a placeholder that never
    resolves when the topology gives none: the operator replaces it (docs/gameday.md)."""
    host = urlsplit(target.health_url).hostname if target.health_url else None
    return host or dns_label(target.service) + PLACEHOLDER_HOST_SUFFIX


def join_notes(*notes: str | None) -> str | None:
    """The notes that apply, as one sentence list; None when there is none."""
    kept = [n for n in notes if n]
    return "; ".join(kept) if kept else None


def comment_lines(lines: Iterable[str]) -> str:
    """YAML comment lines (one line each: a title's newlines would end the comment)."""
    return "".join("# " + " ".join(line.split()) + "\n" for line in lines)


class _PlainDumper(yaml.SafeDumper):
    """A safe dumper that never writes anchors and aliases (&id001 / *id001), which some
    tools and reviewers stumble on, when two places share one object."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump_yaml(docs: list[dict[str, Any]]) -> str:
    """The documents as YAML in a stable order (keys as built, never sorted; no line
    wrapping; no aliases), each opened by `---`."""
    return yaml.dump_all(
        docs,
        Dumper=_PlainDumper,
        sort_keys=False,
        explicit_start=True,
        allow_unicode=True,
        width=4096,
    )
