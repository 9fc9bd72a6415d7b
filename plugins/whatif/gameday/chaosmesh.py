"""A scenario as Chaos Mesh manifests (PodChaos, NetworkChaos or StressChaos), paused.

Every object carries `experiment.chaos-mesh.org/pause: "true"`: Chaos Mesh's controller keeps
a paused experiment in its Stop phase (chaos-mesh/chaos-mesh, controllers/common/desiredphase),
so `kubectl apply` injects nothing until someone removes the annotation. Pod kills are never
used: Chaos Mesh runs `pod-kill` once on creation whatever the annotation says (it is
"one-shot", api/v1alpha1/podchaos_types.go); an outage is a `pod-failure` for the predicted
duration instead. The duration counts from the object's creation, not from its unpausing.

The module also holds what the three manifest exporters share (chaosmesh, litmus, fis): the
failure mode -> fault table, the notes on approximations, the injection duration, DNS-1123
names and the metadata as strings. docs/gameday.md has the mapping table.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

import yaml

from whatif.gameday.plan import METADATA_PREFIX, Experiment, Plan, Target

FORMAT = "chaosmesh"
API_VERSION = "chaos-mesh.org/v1alpha1"
PAUSE_ANNOTATION = "experiment.chaos-mesh.org/pause"  # api/v1alpha1/common_types.go
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


def export(plan: Plan) -> Experiment:
    """The scenario as one YAML file of paused Chaos Mesh objects, or the reason there is
    none (a third party none of whose dependents Chaos Mesh can select)."""
    fault = fault_of(plan)
    seconds, duration_note = injection_seconds(plan)
    docs = _documents(plan, fault, go_duration(seconds))
    if not docs:
        return Experiment(
            FORMAT,
            plan.scenario_id,
            skipped=f"{plan.trigger.service} is a third party and none of its dependents "
            "runs in Kubernetes where Chaos Mesh can select it",
        )
    note = join_notes(mode_note(plan, fault), _format_note(plan, fault), duration_note)
    filename = f"{plan.scenario_id}.yaml"
    text = _header(plan, docs, filename) + dump_yaml(docs)
    return Experiment(FORMAT, plan.scenario_id, filename=filename, text=text, note=note)


def _documents(plan: Plan, fault: str, duration: str) -> list[dict[str, Any]]:
    """The objects: one on the trigger, or one per dependent where the fault is between the
    trigger and each dependent (a partition) or on the dependents themselves (a cutoff)."""
    trigger = plan.trigger
    dependents = selectable(plan.dependents, trigger)
    if fault == CUTOFF:  # each dependent's egress to the third party dropped
        host = external_host(trigger)
        return [
            _per_dependent(
                plan,
                dependent,
                dependent.namespace,
                {
                    "action": "partition",
                    **_pods(dependent),
                    "direction": "to",
                    "externalTargets": [host],
                    "duration": duration,
                },
            )
            for dependent in dependents
        ]
    if fault == "unreachable" and dependents:  # the trigger cut off from each dependent
        return [
            _per_dependent(
                plan,
                dependent,
                trigger.namespace,
                {
                    "action": "partition",
                    **_pods(trigger),
                    "direction": "both",
                    "target": _pods(dependent),
                    "duration": duration,
                },
            )
            for dependent in dependents
        ]
    kind, spec = _trigger_spec(fault, trigger, duration)
    return [_object(plan, kind, dns_label("whatif", plan.scenario_id), trigger.namespace, spec)]


def _per_dependent(
    plan: Plan, dependent: Target, namespace: str | None, spec: dict[str, Any]
) -> dict[str, Any]:
    """A NetworkChaos about one dependent, named after the scenario and the dependent."""
    name = dns_label("whatif", plan.scenario_id, dependent.service)
    return _object(plan, "NetworkChaos", name, namespace, spec)


def _trigger_spec(fault: str, trigger: Target, duration: str) -> tuple[str, dict[str, Any]]:
    """Kind and spec of the single object injected on the trigger's pods."""
    pods = _pods(trigger)
    if fault == "stress":
        stressors = {"cpu": {"workers": CPU_WORKERS, "load": CPU_LOAD_PERCENT}}
        return "StressChaos", {**pods, "stressors": stressors, "duration": duration}
    if fault == "latency":
        delay = {"latency": f"{LATENCY_MS}ms", "jitter": f"{JITTER_MS}ms"}
        return "NetworkChaos", {"action": "delay", **pods, "delay": delay, "duration": duration}
    if fault == "unreachable":  # no dependent to partition from: lose all its traffic
        loss = {"loss": "100"}
        return "NetworkChaos", {"action": "loss", **pods, "loss": loss, "duration": duration}
    return "PodChaos", {"action": "pod-failure", **pods, "duration": duration}


def _pods(target: Target) -> dict[str, Any]:
    """A PodSelector: every pod of the service (mode all: the scenario is the service
    failing, not one replica), in its namespace when the topology names one."""
    selector: dict[str, Any] = {}
    if target.namespace:
        selector["namespaces"] = [target.namespace]
    selector["labelSelectors"] = dict(target.labels)
    return {"mode": "all", "selector": selector}


def _object(
    plan: Plan, kind: str, name: str, namespace: str | None, spec: dict[str, Any]
) -> dict[str, Any]:
    """A paused Chaos Mesh object with the scenario's metadata as annotations."""
    metadata: dict[str, Any] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    metadata["labels"] = dict(MANAGED_BY)
    metadata["annotations"] = {PAUSE_ANNOTATION: "true", **metadata_strings(plan)}
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": metadata, "spec": spec}


def _format_note(plan: Plan, fault: str) -> str | None:
    """How Chaos Mesh's version departs from the scenario, beyond the mode's stand-in."""
    if fault == "unreachable" and not selectable(plan.dependents, plan.trigger):
        return (
            f"no dependent of {plan.trigger.service} runs in Kubernetes: all its traffic is "
            "dropped instead of a partition from its dependents"
        )
    if fault == CUTOFF:
        left_out = [d.service for d in plan.dependents if d.external]
        if left_out:
            return f"third-party dependents left out: {', '.join(left_out)}"
    return None


def _header(plan: Plan, docs: list[dict[str, Any]], filename: str) -> str:
    """Comment lines saying what the file is and how to arm and abort it."""
    seconds, _ = injection_seconds(plan)
    return comment_lines(
        [
            f"whatif scenario {plan.scenario_id} (run {plan.run_id or '?'}): {plan.title}",
            f"{len(docs)} Chaos Mesh object(s), PAUSED: applying this file injects nothing.",
            f"Arm: kubectl annotate -f {filename} {PAUSE_ANNOTATION}-",
            f"The duration ({go_duration(seconds)}) counts from creation: apply, then arm.",
            f"Abort: kubectl delete -f {filename}",
        ]
    )


# --- shared by the chaosmesh, litmus and fis exporters ---------------------------------


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
