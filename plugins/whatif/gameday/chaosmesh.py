"""A scenario as Chaos Mesh manifests (PodChaos, NetworkChaos or StressChaos), paused.

Every object carries `experiment.chaos-mesh.org/pause: "true"`: Chaos Mesh's controller keeps
a paused experiment in its Stop phase (chaos-mesh/chaos-mesh, controllers/common/desiredphase),
so `kubectl apply` injects nothing until someone removes the annotation. Pod kills are never
used: Chaos Mesh runs `pod-kill` once on creation whatever the annotation says (it is
"one-shot", api/v1alpha1/podchaos_types.go); an outage is a `pod-failure` for the predicted
duration instead. The duration counts from the object's creation, not from its unpausing.

What the three manifest exporters share is in whatif.gameday.faults; docs/gameday.md has the
mapping table.
"""

from __future__ import annotations

from typing import Any

from whatif.gameday.faults import (
    CPU_LOAD_PERCENT,
    CPU_WORKERS,
    CUTOFF,
    JITTER_MS,
    LATENCY_MS,
    MANAGED_BY,
    comment_lines,
    dns_label,
    dump_yaml,
    external_host,
    fault_of,
    go_duration,
    injection_seconds,
    join_notes,
    metadata_strings,
    mode_note,
    selectable,
)
from whatif.gameday.plan import Experiment, Plan, Target

FORMAT = "chaosmesh"
API_VERSION = "chaos-mesh.org/v1alpha1"
PAUSE_ANNOTATION = "experiment.chaos-mesh.org/pause"  # api/v1alpha1/common_types.go


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
