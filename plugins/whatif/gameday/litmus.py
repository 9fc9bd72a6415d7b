"""A scenario as LitmusChaos ChaosEngines, stopped.

Every engine has `engineState: stop`: Litmus' chaos-operator starts an engine only when its
state is `active` (controllers/chaosengine_controller.go, initEngine and Reconcile), so
`kubectl apply` runs nothing until someone patches the state. An engine runs a ChaosExperiment
of the same namespace (installed from ChaosHub, litmuschaos/chaos-charts) under its service
account, `<experiment>-sa` by the charts' convention. The fault sizes and the mode mapping are
those of whatif.gameday.faults, so the formats rehearse the same thing.
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
    injection_seconds,
    join_notes,
    metadata_strings,
    mode_note,
    selectable,
)
from whatif.gameday.plan import Experiment, Plan, Target

FORMAT = "litmus"
API_VERSION = "litmuschaos.io/v1alpha1"
ENGINE_STATE = "stop"  # the CRD's engineState pattern: ^(active|stop)$
APP_KIND = "deployment"  # appkind and applabel go together (the operator rejects one alone)
# The runner pod is `<engine>-runner` and carries `app: <engine>`: a label value, so the
# engine name leaves room for the suffix within 63 characters.
ENGINE_NAME_MAX = 63 - len("-runner")
CHAOS_INTERVAL_S = 10  # pod-delete: delete the pods again every 10 s during the outage
# Fault class -> Litmus experiment (chaos-charts faults/kubernetes/<name>).
EXPERIMENTS: dict[str, str] = {
    "outage": "pod-delete",
    "stress": "pod-cpu-hog",
    "latency": "pod-network-latency",
    "unreachable": "pod-network-partition",
    CUTOFF: "pod-network-loss",  # tc drops only the traffic to the third party's addresses
}


def export(plan: Plan) -> Experiment:
    """The scenario as one YAML file of stopped ChaosEngines, or the reason there is none
    (a third party none of whose dependents Litmus can select)."""
    fault = fault_of(plan)
    seconds, duration_note = injection_seconds(plan)
    experiment = EXPERIMENTS[fault]
    env = _env(plan, fault, seconds)
    if fault == CUTOFF:
        engines = [
            _engine(plan, dependent, experiment, env, dependent.service)
            for dependent in selectable(plan.dependents, plan.trigger)
        ]
    else:
        engines = [_engine(plan, plan.trigger, experiment, env)]
    if not engines:
        return Experiment(
            FORMAT,
            plan.scenario_id,
            skipped=f"{plan.trigger.service} is a third party and none of its dependents "
            "runs in Kubernetes where Litmus can select it",
        )
    note = join_notes(mode_note(plan, fault), _format_note(plan, fault), duration_note)
    filename = f"{plan.scenario_id}.yaml"
    text = _header(plan, experiment, len(engines), filename) + dump_yaml(engines)
    return Experiment(FORMAT, plan.scenario_id, filename=filename, text=text, note=note)


def _env(plan: Plan, fault: str, seconds: int) -> list[dict[str, str]]:
    """The experiment's tunables (names of the chaos-charts fault's env), as strings."""
    env = {"TOTAL_CHAOS_DURATION": str(seconds)}
    if fault == "outage":
        env |= {"CHAOS_INTERVAL": str(CHAOS_INTERVAL_S), "FORCE": "false"}
    elif fault == "stress":
        env |= {"CPU_CORES": str(CPU_WORKERS), "CPU_LOAD": str(CPU_LOAD_PERCENT)}
    elif fault == "latency":
        env |= {"NETWORK_LATENCY": str(LATENCY_MS), "JITTER": str(JITTER_MS)}
    elif fault == "unreachable":
        env |= {"POLICY_TYPES": "all"}
    elif fault == CUTOFF:
        env |= {
            "NETWORK_PACKET_LOSS_PERCENTAGE": "100",
            "DESTINATION_HOSTS": external_host(plan.trigger),
        }
    if fault != "unreachable":
        env["PODS_AFFECTED_PERC"] = "100"  # every pod: the service fails, not one replica
    return [{"name": name, "value": value} for name, value in env.items()]


def _engine(
    plan: Plan, target: Target, experiment: str, env: list[dict[str, str]], *suffix: str
) -> dict[str, Any]:
    """A stopped ChaosEngine running `experiment` on the target's pods."""
    metadata: dict[str, Any] = {
        "name": dns_label("whatif", plan.scenario_id, *suffix, limit=ENGINE_NAME_MAX)
    }
    if target.namespace:
        metadata["namespace"] = target.namespace
    metadata["labels"] = dict(MANAGED_BY)
    metadata["annotations"] = metadata_strings(plan)
    appinfo: dict[str, str] = {}
    if target.namespace:
        appinfo["appns"] = target.namespace
    appinfo["applabel"] = ",".join(f"{k}={v}" for k, v in target.labels.items())
    appinfo["appkind"] = APP_KIND
    spec = {
        "engineState": ENGINE_STATE,
        "appinfo": appinfo,
        "chaosServiceAccount": f"{experiment}-sa",
        "experiments": [{"name": experiment, "spec": {"components": {"env": env}}}],
    }
    return {"apiVersion": API_VERSION, "kind": "ChaosEngine", "metadata": metadata, "spec": spec}


def _format_note(plan: Plan, fault: str) -> str | None:
    """How Litmus' version departs from the scenario, beyond the mode's stand-in."""
    if fault == "unreachable":
        return (
            f"Litmus cuts {plan.trigger.service} off from every peer (pod-network-partition), "
            "not only from its predicted dependents"
        )
    if fault == CUTOFF:
        left_out = [d.service for d in plan.dependents if d.external]
        if left_out:
            return f"third-party dependents left out: {', '.join(left_out)}"
    return None


def _header(plan: Plan, experiment: str, count: int, filename: str) -> str:
    """Comment lines saying what the file is, what it needs, and how to arm and abort it."""
    patch = 'kubectl patch -f {} --type merge -p \'{{"spec":{{"engineState":"{}"}}}}\''
    return comment_lines(
        [
            f"whatif scenario {plan.scenario_id} (run {plan.run_id or '?'}): {plan.title}",
            f"{count} ChaosEngine(s), STOPPED: applying this file runs nothing.",
            f"Needs the ChaosExperiment {experiment} and the service account {experiment}-sa "
            "in the engine's namespace (ChaosHub).",
            "Arm: " + patch.format(filename, "active"),
            "Abort: " + patch.format(filename, "stop"),
        ]
    )
