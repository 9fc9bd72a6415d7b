"""A scenario as a Chaos Toolkit experiment (JSON), valid for chaostoolkit-lib's
`ensure_experiment_is_valid` on any machine: the injection talks to the Kubernetes API with
Chaos Toolkit's own HTTP provider, so validating needs neither chaostoolkit-kubernetes
(chaosk8s, whose python provider must be importable to validate) nor kubectl (a process
provider's executable must be on PATH to validate).

The experiment, in order:
- steady state: `injector-ready` (the Kubernetes API at `${k8s_api}` answers for the injector's
  API group), for a third-party trigger `reachable-<service>` (its host answers HTTPS), then
  `steady-<service>` for each watched service with a health URL, trigger first: status 2xx
  within PROBE_TIMEOUT_S;
- method: create the fault object(s), hold `${fault_seconds}`, re-run every `steady-<service>`
  probe by reference (recorded in the journal whatever each answers: the cascade as observed
  while the fault holds), delete the fault object(s), wait `${recovery_seconds}`;
- the steady state again (has everything recovered?), then rollbacks that delete the fault
  object(s) once more (a safety net for an interrupted run; 404 when already gone).

Failure mode -> injection on the trigger's pods (namespace and labels from the topology):
  deployment, database, config, security -> Chaos Mesh PodChaos `pod-failure` for the hold
  hardware -> PodChaos `pod-kill` (the pods are rescheduled), observed after a short settle
  capacity -> StressChaos, CPU workers at full load, for the hold
  network -> NetworkChaos `delay` of the trigger's outgoing packets, for the hold
  dependency -> a NetworkPolicy denying the trigger's egress except DNS, for the hold
  data, other -> PodChaos `pod-failure`, with a note: no tool corrupts data honestly and
    `other` names no mechanism, so the outage the scenario predicts is what is rehearsed (the
    same stand-in as the Chaos Mesh, Litmus and FIS exports)
  a third-party trigger (external), any mode -> NetworkChaos `loss` 100% from each
    in-cluster dependent to the third party's host (`${host_<service>}`, to be set)
Chaos Mesh objects carry their own `duration` (`${fault_expiry}`, the hold plus a margin), so
a fault ends even if the run dies; the NetworkPolicy has none: run with
`--rollback-strategy=always`.

Safe by default: `k8s_api` is an address that cannot resolve, so an experiment run as exported
fails its steady state at `injector-ready` and injects nothing; an operator arms it with
`--var k8s_api=http://127.0.0.1:8001` (`kubectl proxy`). Nothing runs on export."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from typing import Any
from urllib.parse import quote

from whatif.gameday.faults import CPU_LOAD_PERCENT, CPU_WORKERS, JITTER_MS, LATENCY_MS
from whatif.gameday.plan import METADATA_PREFIX, PROBE_PREFIX, Experiment, Plan, Target

FORMAT = "chaostoolkit"
UNARMED_API = "http://k8s-api.unarmed.invalid"  # RFC 6761: .invalid never resolves
UNSET_HEALTH = "http://health-url-unset.invalid/"  # fallback probes fail until set
UNSET_HOST = "{service}.host-unset.invalid"  # a third party's host, to be set
GATE_PROBE = "injector-ready"  # not steady-: the journal reader's services are steady-<svc>
PROBE_TIMEOUT_S = 5
K8S_TIMEOUT_S = 30
DEFAULT_HOLD_S = 300  # a scenario without a predicted duration
MIN_HOLD_S = 60
MAX_HOLD_S = 1800  # a game day is time-boxed: hold at most 30 min (override fault_seconds)
KILL_SETTLE_S = 60  # pod-kill: observe once the pods are being rescheduled
EXPIRY_MARGIN_S = 300  # Chaos Mesh ends the fault itself this long after the planned hold
RECOVERY_S = 120
CHAOS_MESH = "/apis/chaos-mesh.org/v1alpha1"
NETWORKING = "/apis/networking.k8s.io/v1"
# The fault sizes of every format (one home: the Chaos Mesh exporter's constants).
LATENCY = f"{LATENCY_MS}ms"
JITTER = f"{JITTER_MS}ms"
CPU_LOAD = CPU_LOAD_PERCENT

# mode -> (recipe, note template or None); a third-party trigger is handled apart.
RECIPES: dict[str, tuple[str, str | None]] = {
    "deployment": ("pod-failure", None),
    "database": (
        "pod-failure",
        "{service}'s pods are made to fail, as when its database fails; a database "
        "running as another service is not touched.",
    ),
    "config": (
        "pod-failure",
        "No configuration is changed: {service} is made unavailable, as after a bad config push.",
    ),
    "security": (
        "pod-failure",
        "No attack is simulated: {service} is made unavailable, as when it is taken offline "
        "to contain an incident.",
    ),
    "data": (
        "pod-failure",
        "No data is corrupted: {service} is made unavailable, as when its data cannot be "
        "trusted and it is taken out of service.",
    ),
    "other": (
        "pod-failure",
        "The cause is unclassified: {service} is made unavailable for the predicted "
        "duration, the outage the scenario predicts.",
    ),
    "hardware": (
        "pod-kill",
        "Only {service}'s pods are killed and rescheduled, not everything on a node.",
    ),
    "capacity": ("cpu-stress", None),
    "network": ("network-delay", None),
    "dependency": (
        "egress-deny",
        "{service} is cut off from all its dependencies (DNS allowed), not from one.",
    ),
}
WHAT = {
    "pod-failure": "Chaos Mesh PodChaos pod-failure on all of {service}'s pods",
    "pod-kill": "Chaos Mesh PodChaos pod-kill of all of {service}'s pods",
    "cpu-stress": (
        f"Chaos Mesh StressChaos on all of {{service}}'s pods ({CPU_WORKERS} CPU workers at "
        f"{CPU_LOAD}%)"
    ),
    "network-delay": (
        f"Chaos Mesh NetworkChaos delay ({LATENCY}) on all of {{service}}'s outgoing packets"
    ),
    "egress-deny": "a NetworkPolicy denying all egress but DNS from {service}'s pods",
    "egress-cut": (
        "Chaos Mesh NetworkChaos loss (100%) on the traffic from {dependents} to {service}'s host"
    ),
}


@dataclasses.dataclass(frozen=True)
class _Fault:
    """One object the method creates then deletes: its API collection path (with
    configuration references), name, and body."""

    label: str  # activity name suffix
    collection: str
    name: str
    body: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class _Injection:
    """What the method does to the system: the recipe, the API group it needs (the gate
    probe), the fault objects, how long they hold, in words, and how it differs from the
    scenario (note)."""

    recipe: str
    gate_path: str  # an API group the injector needs
    faults: tuple[_Fault, ...]
    hold_s: int
    what: str
    note: str | None


def export(plan: Plan) -> Experiment:
    """The plan as a Chaos Toolkit experiment, or skipped with the reason when its failure
    mode has no honest injection."""
    reason = _skip_reason(plan)
    if reason:
        return Experiment(format=FORMAT, scenario_id=plan.scenario_id, skipped=reason)
    keys = _config_keys(plan)
    injection = _injection(plan, keys)
    watched, fallback = _watched(plan)
    notes = [injection.note] if injection.note else []
    if fallback:
        names = ", ".join(f"health_url_{keys[t.service]}" for t in watched)
        notes.append(
            "No watched service has a health_url in the topology: set "
            f"{names} (--var) before running; until then the steady state fails and nothing "
            "is injected."
        )
    experiment = {
        "version": "1.0.0",
        "title": plan.title,
        "description": _description(plan, injection, watched, fallback),
        "tags": [
            "whatif",
            f"scenario:{plan.scenario_id}",
            f"service:{plan.trigger.service}",
            f"mode:{plan.mode}",
        ],
        "configuration": _configuration(plan, keys, injection, watched, fallback),
        "steady-state-hypothesis": _hypothesis(plan, injection, watched, keys),
        "method": _method(injection, watched),
        "rollbacks": [_delete(f, f"rollback-{f.label}") for f in injection.faults],
    }
    return Experiment(
        format=FORMAT,
        scenario_id=plan.scenario_id,
        filename=_filename(plan.scenario_id),
        text=json.dumps(experiment, indent=2, ensure_ascii=False) + "\n",
        note=" ".join(notes) or None,
    )


def _skip_reason(plan: Plan) -> str | None:
    """Why no experiment: a third party nobody in the cluster calls (its outage can only be
    cut off at its callers), or a failure mode whatif does not know."""
    if plan.trigger.external:
        if not _callers(plan):
            return (
                f"{plan.trigger.service} is a third party and no in-cluster dependent is "
                "watched to cut off from it"
            )
        return None
    if plan.mode not in RECIPES:
        return f"unknown failure mode {plan.mode!r}: nothing to inject"
    return None


def _callers(plan: Plan) -> list[Target]:
    """In-cluster dependents: those whose egress can be cut."""
    return [t for t in _unique(plan.dependents, plan.trigger.service) if not t.external]


def _unique(targets: tuple[Target, ...], *exclude: str) -> list[Target]:
    seen = set(exclude)
    out = []
    for target in targets:
        if target.service not in seen:
            seen.add(target.service)
            out.append(target)
    return out


def _config_keys(plan: Plan) -> dict[str, str]:
    """Each service's suffix in configuration keys (namespace_<key>, labels_<key>,
    health_url_<key>, host_<key>): chaoslib substitutes only `${identifier}`, so names with
    `-` or `.` become `_`; a collision gets _2, _3 (in plan order: deterministic)."""
    keys: dict[str, str] = {}
    used: set[str] = set()
    for target in [plan.trigger, *plan.dependents]:
        if target.service in keys:
            continue
        base = re.sub(r"[^0-9A-Za-z_]", "_", target.service) or "service"
        key, n = base, 1
        while key in used:
            n += 1
            key = f"{base}_{n}"
        keys[target.service] = key
        used.add(key)
    return keys


def _watched(plan: Plan) -> tuple[list[Target], bool]:
    """The services probed, trigger first: those with a health_url; when none has one, the
    trigger (unless a third party) and the in-cluster dependents with placeholder URLs that
    fail until set (the honest fallback: no game day without a way to see health)."""
    everyone = _unique((plan.trigger, *plan.dependents))
    with_url = [t for t in everyone if t.health_url]
    if with_url:
        return with_url, False
    return [t for t in everyone if not t.external], True


def _hold_seconds(plan: Plan, recipe: str) -> int:
    """How long the fault holds before the services are observed: the predicted outage
    (p50), bounded to a game day's time box; a pod kill is observed after a settle."""
    if recipe == "pod-kill":
        return KILL_SETTLE_S
    if plan.duration_p50_minutes is None:
        return DEFAULT_HOLD_S
    return int(min(MAX_HOLD_S, max(MIN_HOLD_S, round(plan.duration_p50_minutes * 60))))


def _injection(plan: Plan, keys: dict[str, str]) -> _Injection:
    service = plan.trigger.service
    if plan.trigger.external:
        callers = _callers(plan)
        faults = tuple(
            _chaos_mesh(
                plan,
                "NetworkChaos",
                caller,
                keys[caller.service],
                {
                    "action": "loss",
                    "direction": "to",
                    "externalTargets": [f"${{host_{keys[service]}}}"],
                    "loss": {"loss": "100", "correlation": "0"},
                },
                label=f"egress-cut-{caller.service}",
                suffix=caller.service,
            )
            for caller in callers
        )
        what = WHAT["egress-cut"].format(
            service=service, dependents=_join([c.service for c in callers])
        )
        note = (
            f"{service} is a third party and cannot be failed: its dependents' traffic to it "
            f"is dropped instead; set host_{keys[service]} to the host they call."
        )
        return _Injection(
            "egress-cut", CHAOS_MESH, faults, _hold_seconds(plan, "egress-cut"), what, note
        )
    recipe, note = RECIPES[plan.mode]
    key = keys[service]
    if recipe == "egress-deny":
        fault = _network_policy(plan, key)
        gate = NETWORKING
    else:
        kind, spec = {
            "pod-failure": ("PodChaos", {"action": "pod-failure"}),
            "pod-kill": ("PodChaos", {"action": "pod-kill"}),
            "cpu-stress": (
                "StressChaos",
                {"stressors": {"cpu": {"workers": CPU_WORKERS, "load": CPU_LOAD}}},
            ),
            "network-delay": (
                "NetworkChaos",
                {
                    "action": "delay",
                    "direction": "to",
                    "delay": {"latency": LATENCY, "correlation": "0", "jitter": JITTER},
                },
            ),
        }[recipe]
        fault = _chaos_mesh(plan, kind, plan.trigger, key, spec, label=recipe)
        gate = CHAOS_MESH
    return _Injection(
        recipe,
        gate,
        (fault,),
        _hold_seconds(plan, recipe),
        WHAT[recipe].format(service=service),
        note.format(service=service) if note else None,
    )


def _chaos_mesh(
    plan: Plan,
    kind: str,
    target: Target,
    key: str,
    spec: dict[str, Any],
    label: str,
    suffix: str = "",
) -> _Fault:
    """A Chaos Mesh object on all of the target's pods, ending itself after
    `${fault_expiry}` (pod-kill is one-shot: no duration)."""
    name = _object_name(plan.scenario_id, suffix)
    body_spec = {
        "mode": "all",
        "selector": {
            "namespaces": [f"${{namespace_{key}}}"],
            "labelSelectors": _labels_value(target, key),
        },
        **spec,
    }
    if spec.get("action") != "pod-kill":
        body_spec["duration"] = "${fault_expiry}"
    body = {
        "apiVersion": "chaos-mesh.org/v1alpha1",
        "kind": kind,
        "metadata": {"name": name, "labels": _object_labels(plan)},
        "spec": body_spec,
    }
    collection = f"${{k8s_api}}{CHAOS_MESH}/namespaces/${{namespace_{key}}}/{kind.lower()}"
    return _Fault(label, collection, name, body)


def _network_policy(plan: Plan, key: str) -> _Fault:
    """Deny the trigger's egress except DNS: it cannot reach any dependency, while the
    answers to its own callers (established connections) still flow."""
    name = _object_name(plan.scenario_id, "")
    dns = [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
    body = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "labels": _object_labels(plan)},
        "spec": {
            "podSelector": {"matchLabels": _labels_value(plan.trigger, key)},
            "policyTypes": ["Egress"],
            "egress": [{"ports": dns}],
        },
    }
    collection = f"${{k8s_api}}{NETWORKING}/namespaces/${{namespace_{key}}}/networkpolicies"
    return _Fault("egress-deny", collection, name, body)


def _labels_value(target: Target, key: str) -> Any:
    """`${labels_<key>}` (a mapping in the configuration, overridable with --var-file), or
    the labels themselves when the mapping would read as a chaoslib dynamic value (a label
    `type` of `env` or `probe`)."""
    if _labels_configurable(target):
        return f"${{labels_{key}}}"
    return target.labels


def _labels_configurable(target: Target) -> bool:
    return target.labels.get("type") not in ("env", "probe")


def _object_labels(plan: Plan) -> dict[str, str]:
    return {
        "app.kubernetes.io/managed-by": "whatif",
        "whatif/scenario": _label_value(plan.scenario_id),
    }


def _object_name(scenario_id: str, suffix: str) -> str:
    """A Kubernetes object name (DNS label: lowercase, digits, '-', at most 63) that names
    the scenario; fixed, so the method and the rollbacks delete what the method created."""
    raw = f"whatif-{scenario_id}" + (f"-{suffix}" if suffix else "")
    name = re.sub(r"[^a-z0-9-]+", "-", raw.lower()).strip("-")
    if len(name) > 63 or name != raw:
        digest = hashlib.sha256(raw.encode()).hexdigest()[:8]
        name = f"{name[:54].rstrip('-')}-{digest}"
    return name


def _label_value(text: str) -> str:
    value = re.sub(r"[^A-Za-z0-9._-]+", "-", text)[:63].strip("-._")
    return value or "scenario"


def _configuration(
    plan: Plan,
    keys: dict[str, str],
    injection: _Injection,
    watched: list[Target],
    fallback: bool,
) -> dict[str, Any]:
    """The whatif_* metadata (how a journal names its scenario), then what an operator
    overrides with --var / --var-file: the API, the timings, and where each service runs."""
    config: dict[str, Any] = dict(plan.metadata())
    config[f"{METADATA_PREFIX}recipe"] = injection.recipe
    config["k8s_api"] = UNARMED_API
    config["fault_seconds"] = injection.hold_s
    if injection.gate_path == CHAOS_MESH and injection.recipe != "pod-kill":
        config["fault_expiry"] = f"{injection.hold_s + EXPIRY_MARGIN_S}s"
    config["recovery_seconds"] = RECOVERY_S
    injected = [plan.trigger] if not plan.trigger.external else _callers(plan)
    for target in injected:
        key = keys[target.service]
        config[f"namespace_{key}"] = target.namespace or "default"
        if _labels_configurable(target):
            config[f"labels_{key}"] = target.labels
    if plan.trigger.external:
        host = re.sub(r"[^a-z0-9-]+", "-", plan.trigger.service.lower()).strip("-")
        config[f"host_{keys[plan.trigger.service]}"] = UNSET_HOST.format(service=host or "x")
    for target in watched:
        url = UNSET_HEALTH + quote(target.service) if fallback else target.health_url
        config[f"health_url_{keys[target.service]}"] = url
    return config


def _hypothesis(
    plan: Plan, injection: _Injection, watched: list[Target], keys: dict[str, str]
) -> dict[str, Any]:
    gate = {
        "type": "probe",
        "name": GATE_PROBE,
        "tolerance": 200,
        "provider": {
            "type": "http",
            "url": f"${{k8s_api}}{injection.gate_path}",
            "timeout": PROBE_TIMEOUT_S,
        },
    }
    gates = [gate]
    if plan.trigger.external:
        gates.append(_host_probe(plan.trigger, keys[plan.trigger.service]))
    services = _join([t.service for t in watched])
    return {
        "title": f"The injector is armed and {services} answer their health checks",
        "probes": [*gates, *(_health_probe(t, keys[t.service]) for t in watched)],
    }


def _host_probe(target: Target, key: str) -> dict[str, Any]:
    """A third party's host must answer HTTPS (any status) before it is cut off: the
    placeholder host cannot resolve, so an experiment whose host was not set stops here
    rather than creating a fault that drops nothing and reading as a pass."""
    return {
        "type": "probe",
        "name": f"reachable-{target.service}",
        "tolerance": {"type": "range", "range": [100, 599], "target": "status"},
        "provider": {
            "type": "http",
            "url": f"https://${{host_{key}}}/",
            "method": "GET",
            "timeout": PROBE_TIMEOUT_S,
        },
    }


def _health_probe(target: Target, key: str) -> dict[str, Any]:
    return {
        "type": "probe",
        "name": f"{PROBE_PREFIX}{target.service}",
        "tolerance": {"type": "range", "range": [200, 299], "target": "status"},
        "provider": {
            "type": "http",
            "url": f"${{health_url_{key}}}",
            "method": "GET",
            "timeout": PROBE_TIMEOUT_S,
        },
    }


def _method(injection: _Injection, watched: list[Target]) -> list[dict[str, Any]]:
    """Inject, hold, observe every watched service (by reference: the hypothesis stops at
    its first failing probe, the method records them all), end the fault, let it recover."""
    creates = [_create(f) for f in injection.faults]
    creates[-1]["pauses"] = {"after": "${fault_seconds}"}
    observe = [{"ref": f"{PROBE_PREFIX}{t.service}"} for t in watched]
    ends = [_delete(f, f"end-{f.label}") for f in injection.faults]
    ends[-1]["pauses"] = {"after": "${recovery_seconds}"}
    return [*creates, *observe, *ends]


def _create(fault: _Fault) -> dict[str, Any]:
    return {
        "type": "action",
        "name": f"inject-{fault.label}",
        "provider": {
            "type": "http",
            "url": fault.collection,
            "method": "POST",
            "headers": {"Content-Type": "application/json"},
            "arguments": fault.body,
            "timeout": K8S_TIMEOUT_S,
        },
    }


def _delete(fault: _Fault, name: str) -> dict[str, Any]:
    return {
        "type": "action",
        "name": name,
        "provider": {
            "type": "http",
            "url": f"{fault.collection}/{fault.name}",
            "method": "DELETE",
            "timeout": K8S_TIMEOUT_S,
        },
    }


def _description(plan: Plan, injection: _Injection, watched: list[Target], fallback: bool) -> str:
    """The scenario and whatif's prediction in words, what is injected, and how to arm."""
    parts = [plan.title]
    if plan.description and plan.description != plan.title:
        parts.append(plan.description)
    radius = _join([t.service for t in plan.dependents]) or "none predicted"
    parts.append(
        f"whatif's prediction (run {plan.run_id or 'unknown'}): probability "
        f"{_percent(plan.probability)}, severity {plan.severity}, risk score "
        f"{plan.risk_score:g}; blast radius (most likely first): {radius}; outage p50 "
        f"{_minutes(plan.duration_p50_minutes)}, p90 {_minutes(plan.duration_p90_minutes)}."
    )
    parts.append(
        f"Injection: {injection.what}, held {injection.hold_s} s (fault_seconds), then "
        "every watched service is observed, the fault removed and recovery checked."
    )
    unwatched = [
        t.service
        for t in _unique((plan.trigger, *plan.dependents))
        if t not in watched and not fallback
    ]
    if unwatched:
        parts.append(f"Not watched (no health_url): {_join(unwatched)}.")
    requires = (
        "Chaos Mesh" if injection.gate_path == CHAOS_MESH else "a CNI enforcing NetworkPolicy"
    )
    parts.append(
        "Inert as exported: k8s_api cannot resolve, so the steady state fails before any "
        f"injection. To arm: kubectl proxy, then chaos run --var k8s_api=http://127.0.0.1:8001 "
        f"--rollback-strategy=always; needs {requires}."
    )
    return " ".join(parts)


def _percent(p: float) -> str:
    return f"{round(p * 100, 1):g}%"


def _minutes(m: float | None) -> str:
    return "unknown" if m is None else f"{round(m, 1):g} min"


def _join(names: list[str]) -> str:
    return ", ".join(names)


def _filename(scenario_id: str) -> str:
    return re.sub(r"[/\\]", "_", scenario_id) + ".json"
