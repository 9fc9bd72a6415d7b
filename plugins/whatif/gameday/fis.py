"""A scenario as an AWS FIS experiment template, in the JSON that
`aws fis create-experiment-template --cli-input-json file://<scenario>.json` takes.

A template runs nothing by itself (an experiment starts only with `aws fis
start-experiment`), and this one cannot even be created as written: its role, its stop
condition's CloudWatch alarm and any SSM document ARN hold the placeholders REGION and
ACCOUNT, which the operator replaces after creating the alarm (docs/gameday.md). Targets come
from the topology's `aws_target` column (an ARN, or `tag:Key=Value` for EC2 instances); a
service without one is skipped rather than guessed. Action ids and parameters are those of
AWS's FIS actions reference; the fault sizes and the mode mapping are those of
whatif.gameday.faults, as in the other formats.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from whatif.gameday.faults import (
    CPU_LOAD_PERCENT,
    CPU_WORKERS,
    CUTOFF,
    JITTER_MS,
    LATENCY_MS,
    dns_label,
    external_host,
    fault_of,
    injection_seconds,
    join_notes,
    metadata_strings,
    mode_note,
    read_metadata,
)
from whatif.gameday.plan import METADATA_PREFIX, Experiment, Plan, Target

FORMAT = "fis"
ROLE_ARN = "arn:aws:iam::ACCOUNT:role/whatif-fis-experiment"
ALARM_ARN = "arn:aws:cloudwatch:REGION:ACCOUNT:alarm:{name}-stop"
SSM_DOCUMENT_ARN = "arn:aws:ssm:REGION::document/{}"  # AWS's pre-configured FIS documents
K8S_SERVICE_ACCOUNT = "whatif-fis"  # the aws:eks:pod actions run as it (eks-pod-actions)
DESCRIPTION_MAX = 512  # the CreateExperimentTemplate model's limits
TAG_VALUE_MAX = 256
BLAST_RADIUS = f"{METADATA_PREFIX}blast_radius"
# Resource type -> the key an action names its target by.
TARGET_KEYS = {
    "aws:ec2:instance": "Instances",
    "aws:ecs:task": "Tasks",
    "aws:eks:pod": "Pods",
    "aws:rds:cluster": "Clusters",
    "aws:rds:db": "DBInstances",
}
# Actions that act once (no duration): the platform replaces what they stopped at once.
ONE_SHOT = frozenset(
    {
        "aws:ecs:stop-task",
        "aws:eks:pod-delete",
        "aws:rds:failover-db-cluster",
        "aws:rds:reboot-db-instances",
    }
)


@dataclasses.dataclass(frozen=True)
class Resource:
    """An FIS target for one service: its resource type and the template's target entry."""

    type: str
    target: dict[str, Any]


def export(plan: Plan) -> Experiment:
    """The scenario as one experiment template, or the reason there is none (no
    `aws_target`, or a resource type or fault FIS cannot inject)."""
    fault = fault_of(plan)
    seconds, duration_note = injection_seconds(plan)
    if fault == CUTOFF:
        injected = [d for d in plan.dependents if not d.external and d.aws_target]
        host = external_host(plan.trigger)
    else:
        injected, host = [plan.trigger], None
    targets: dict[str, Any] = {}
    actions: dict[str, Any] = {}
    reasons = []
    for target in injected:
        made = _inject(target, fault, seconds, host)
        if isinstance(made, str):
            reasons.append(made)
            continue
        name, resource, action = made
        targets[name] = resource.target
        actions[f"{fault}-{name}"] = action
    if not actions:
        return Experiment(FORMAT, plan.scenario_id, skipped=_skip_reason(plan, fault, reasons))
    template = _template(plan, fault, seconds, targets, actions)
    note = join_notes(
        mode_note(plan, fault), _format_note(plan, fault, actions, reasons), duration_note
    )
    text = json.dumps(template, indent=2, ensure_ascii=False) + "\n"
    filename = f"{plan.scenario_id}.json"
    return Experiment(FORMAT, plan.scenario_id, filename=filename, text=text, note=note)


def _inject(
    target: Target, fault: str, seconds: int, host: str | None
) -> tuple[str, Resource, dict[str, Any]] | str:
    """Target name, resource and action injecting `fault` into one service, or why not."""
    resource = resource_of(target)
    if isinstance(resource, str):
        return resource
    made = action_for(fault, resource.type, seconds, host)
    if made is None:
        return f"FIS has no action for the {fault} fault on {resource.type} ({target.service})"
    action_id, parameters = made
    name = dns_label(target.service, limit=50)
    action: dict[str, Any] = {
        "actionId": action_id,
        "description": f"{fault} on {target.service}"[:512],
        "parameters": parameters,
        "targets": {TARGET_KEYS[resource.type]: name},
    }
    return name, resource, action


def resource_of(target: Target) -> Resource | str:
    """The FIS target for a service's `aws_target`: an EC2 instance, ECS task or service,
    EKS cluster (its pods, by the service's label selector) or RDS cluster or instance ARN,
    or `tag:Key=Value` (EC2 instances so tagged); else the reason it cannot be targeted."""
    value = (target.aws_target or "").strip()
    if not value:
        return f"no aws_target for {target.service} in the topology"
    if value.startswith("tag:"):
        key, sep, tag_value = value[4:].partition("=")
        if not (sep and key.strip()):
            return f"aws_target {value!r} of {target.service}: write tag:Key=Value"
        return _resource("aws:ec2:instance", resourceTags={key.strip(): tag_value.strip()})
    parts = value.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        return f"aws_target {value!r} of {target.service} is neither an ARN nor tag:Key=Value"
    service, resource = parts[2], parts[5]
    if service == "ec2" and resource.startswith("instance/"):
        return _resource("aws:ec2:instance", resourceArns=[value])
    if service == "ecs" and resource.startswith("task/"):
        return _resource("aws:ecs:task", resourceArns=[value])
    if service == "ecs" and resource.startswith("service/") and resource.count("/") == 2:
        _, cluster, name = resource.split("/")
        return _resource("aws:ecs:task", parameters={"cluster": cluster, "service": name})
    if service == "eks" and resource.startswith("cluster/"):
        return _eks_pods(target, value)
    if service == "rds" and resource.startswith("cluster:"):
        return _resource("aws:rds:cluster", resourceArns=[value])
    if service == "rds" and resource.startswith("db:"):
        return _resource("aws:rds:db", resourceArns=[value])
    return f"aws_target {value!r} of {target.service}: no FIS resource type for it here"


def _eks_pods(target: Target, cluster_arn: str) -> Resource | str:
    """The service's pods in an EKS cluster. FIS selects aws:eks:pod targets by parameters
    only, and a parameter value cannot hold a comma: one label, `key=value`."""
    labels = target.labels
    if len(labels) != 1:
        return (
            f"{target.service}: an aws:eks:pod target takes one label and its selector has "
            f"{len(labels)}"
        )
    (key, value), *_ = labels.items()
    parameters = {
        "clusterIdentifier": cluster_arn,
        "namespace": target.namespace or "default",
        "selectorType": "labelSelector",
        "selectorValue": f"{key}={value}",
    }
    return _resource("aws:eks:pod", parameters=parameters)


def _resource(resource_type: str, **selection: Any) -> Resource:
    """A target entry selecting every matching resource (the service fails as a whole)."""
    target = {"resourceType": resource_type, **selection, "selectionMode": "ALL"}
    return Resource(resource_type, target)


def action_for(
    fault: str, resource_type: str, seconds: int, host: str | None = None
) -> tuple[str, dict[str, str]] | None:
    """The FIS action id and parameters for a fault on a resource type (the mapping table
    of docs/gameday.md), or None when FIS has none."""
    duration = iso_duration(seconds)
    account = {"kubernetesServiceAccount": K8S_SERVICE_ACCOUNT}
    lost = {"duration": duration, "lossPercent": "100"}
    if fault == CUTOFF:
        lost["sources"] = host or ""
    by_type: dict[str, dict[str, tuple[str, dict[str, str]]]] = {
        "aws:ecs:task": {
            "outage": ("aws:ecs:stop-task", {}),
            "stress": ("aws:ecs:task-cpu-stress", _cpu(duration)),
            "latency": ("aws:ecs:task-network-latency", _delay(duration)),
            "unreachable": ("aws:ecs:task-network-packet-loss", lost),
            CUTOFF: ("aws:ecs:task-network-packet-loss", lost),
        },
        "aws:eks:pod": {
            "outage": ("aws:eks:pod-delete", account),
            "stress": ("aws:eks:pod-cpu-stress", _cpu(duration) | account),
            "latency": ("aws:eks:pod-network-latency", _delay(duration) | account),
            "unreachable": ("aws:eks:pod-network-packet-loss", lost | account),
            CUTOFF: ("aws:eks:pod-network-packet-loss", lost | account),
        },
        "aws:rds:cluster": {"outage": ("aws:rds:failover-db-cluster", {})},
        "aws:rds:db": {"outage": ("aws:rds:reboot-db-instances", {})},
    }
    if resource_type == "aws:ec2:instance":
        return _ec2(fault, seconds, host)
    return by_type.get(resource_type, {}).get(fault)


def _cpu(duration: str) -> dict[str, str]:
    return {"duration": duration, "percent": str(CPU_LOAD_PERCENT), "workers": str(CPU_WORKERS)}


def _delay(duration: str) -> dict[str, str]:
    return {
        "duration": duration,
        "delayMilliseconds": str(LATENCY_MS),
        "jitterMilliseconds": str(JITTER_MS),
    }


def _ec2(fault: str, seconds: int, host: str | None) -> tuple[str, dict[str, str]] | None:
    """EC2 instances: stopped (and started again after the duration) for an outage, else
    one of AWS's pre-configured SSM documents run on them (the SSM agent is needed)."""
    duration = iso_duration(seconds)
    if fault == "outage":
        return "aws:ec2:stop-instances", {"startInstancesAfterDuration": duration}
    common = {"DurationSeconds": str(seconds), "InstallDependencies": "True"}
    documents = {
        "stress": (
            "AWSFIS-Run-CPU-Stress",
            {"CPU": str(CPU_WORKERS), "LoadPercent": str(CPU_LOAD_PERCENT)},
        ),
        "latency": ("AWSFIS-Run-Network-Latency", {"DelayMilliseconds": str(LATENCY_MS)}),
        "unreachable": ("AWSFIS-Run-Network-Packet-Loss", {"LossPercent": "100"}),
        CUTOFF: (
            "AWSFIS-Run-Network-Packet-Loss-Sources",
            {"LossPercent": "100", "Sources": host or "", "TrafficType": "egress"},
        ),
    }
    if fault not in documents:
        return None
    document, parameters = documents[fault]
    return "aws:ssm:send-command", {
        "documentArn": SSM_DOCUMENT_ARN.format(document),
        # a JSON object in one string; FIS parameter values hold no spaces: compact
        "documentParameters": json.dumps(parameters | common, separators=(",", ":")),
        "duration": duration,
    }


def _template(
    plan: Plan, fault: str, seconds: int, targets: dict[str, Any], actions: dict[str, Any]
) -> dict[str, Any]:
    """The CreateExperimentTemplate input, placeholders included."""
    name = dns_label("whatif", plan.scenario_id)
    return {
        "description": _description(plan, fault, seconds, actions),
        "targets": targets,
        "actions": actions,
        "stopConditions": [
            {"source": "aws:cloudwatch:alarm", "value": ALARM_ARN.format(name=name)}
        ],
        "roleArn": ROLE_ARN,
        "tags": {"Name": name, **tags_of(plan)},
        # a target that resolves to nothing fails the experiment rather than passing it
        "experimentOptions": {
            "accountTargeting": "single-account",
            "emptyTargetResolutionMode": "fail",
        },
    }


def _description(plan: Plan, fault: str, seconds: int, actions: dict[str, Any]) -> str:
    """What the template does and what must be replaced, within FIS's 512 characters (the
    title is shortened first)."""
    ids = ", ".join(sorted({a["actionId"] for a in actions.values()}))
    tail = (
        f" | {fault} via {ids}, {iso_duration(seconds)}. Before creating: replace REGION and "
        "ACCOUNT, create the stop-condition alarm."
    )
    head = f"whatif {plan.scenario_id}: {' '.join(plan.title.split())}"
    room = DESCRIPTION_MAX - len(tail)
    if len(head) > room:
        head = head[: room - 1] + "…"
    return (head + tail)[:DESCRIPTION_MAX]


def _format_note(plan: Plan, fault: str, actions: dict[str, Any], reasons: list[str]) -> str | None:
    """How FIS's version departs from the scenario, beyond the mode's stand-in."""
    ids = {a["actionId"] for a in actions.values()}
    notes = []
    if ids & ONE_SHOT:
        notes.append(
            f"{', '.join(sorted(ids & ONE_SHOT))} acts once and the platform replaces what it "
            f"stopped: the outage is shorter than the predicted {plan.trigger.service} outage"
        )
    if fault == "unreachable":
        notes.append(f"FIS drops all of {plan.trigger.service}'s traffic, not only its dependents'")
    if fault == CUTOFF:
        left_out = [d.service for d in plan.dependents if d.external or not d.aws_target]
        if left_out:
            notes.append(f"dependents left out (no aws_target): {', '.join(left_out)}")
        notes.extend(reasons)
    return join_notes(*notes)


def _skip_reason(plan: Plan, fault: str, reasons: list[str]) -> str:
    if fault == CUTOFF and not reasons:
        return (
            f"{plan.trigger.service} is a third party and none of its dependents has an "
            "aws_target in the topology"
        )
    return join_notes(*reasons) or "nothing FIS can inject"


def iso_duration(seconds: int) -> str:
    """Seconds as the ISO 8601 duration FIS takes: 736 -> "PT12M16S", 3600 -> "PT1H"."""
    hours, rest = divmod(int(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    text = "PT" + (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    return text + (f"{secs}S" if secs or text == "PT" else "")


def tags_of(plan: Plan) -> dict[str, str]:
    """plan.metadata() as tag values (256 characters at most): a long blast radius is split
    into whatif_blast_radius, whatif_blast_radius_2, ... each a JSON list."""
    tags = metadata_strings(plan)
    services = [t.service for t in plan.dependents]
    if len(tags[BLAST_RADIUS]) <= TAG_VALUE_MAX:
        return tags
    chunks: list[list[str]] = [[]]
    for service in services:
        if chunks[-1] and len(json.dumps([*chunks[-1], service], separators=(",", ":"))) > (
            TAG_VALUE_MAX
        ):
            chunks.append([])
        chunks[-1].append(service)
    for i, chunk in enumerate(chunks):
        key = BLAST_RADIUS if i == 0 else f"{BLAST_RADIUS}_{i + 1}"
        tags[key] = json.dumps(chunk, separators=(",", ":"))
    return tags


def read_tags(tags: Mapping[str, str]) -> dict[str, Any]:
    """The inverse of tags_of: plan.metadata() from a template's tags."""
    chunks = sorted(
        (int(key.rsplit("_", 1)[1]) if key != BLAST_RADIUS else 1, key)
        for key in tags
        if key == BLAST_RADIUS or key.startswith(BLAST_RADIUS + "_")
    )
    merged = {k: v for k, v in tags.items() if not k.startswith(BLAST_RADIUS)}
    services = [s for _, key in chunks for s in json.loads(tags[key])]
    merged[BLAST_RADIUS] = json.dumps(services)
    return read_metadata(merged)
