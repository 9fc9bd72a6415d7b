"""The Chaos Mesh, LitmusChaos and AWS FIS exporters: for every failure mode and for a
third-party trigger, each output parses, matches what the tool accepts (the CRD subsets, the
ChaosHub faults' env, botocore's FIS model and AWS's action reference, under
tests/data/gameday/manifest_schemas, README there), names are DNS-1123, the metadata reads
back, the text is deterministic, and nothing can inject before someone arms it."""

from __future__ import annotations

import dataclasses
import json
import re
from functools import cache
from typing import Any

import jsonschema
import pytest
import yaml
from shared import PROJECT
from whatif.gameday import chaosmesh, faults, fis, litmus
from whatif.gameday.plan import Experiment, Plan, Target
from whatif.schemas import FAILURE_MODES

SCHEMAS = PROJECT / "tests" / "data" / "gameday" / "manifest_schemas"
GO_DURATION = re.compile(r"^(\d+h)?(\d+m)?(\d+s)?$")  # what time.ParseDuration takes here
ISO_DURATION = re.compile(r"^PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
EKS = "arn:aws:eks:eu-west-1:123456789012:cluster/prod"

WEB = Target("web", namespace="shop", aws_target=EKS)
API = Target("api", aws_target="arn:aws:ecs:eu-west-1:123456789012:service/prod/api")
CACHE = Target(
    "cache",
    namespace="shop",
    selector=(("app.kubernetes.io/name", "cache"), ("tier", "data")),
    aws_target="tag:Service=cache",
    owner_team="data-team",
)
DB = Target("db", aws_target="arn:aws:rds:eu-west-1:123456789012:cluster:orders")
PAYMENTS = Target("payments", external=True, health_url="https://api.payments.example/health")
SMS = Target("sms", external=True)
TRIGGERS = (WEB, API, CACHE, DB)
# What each format injects for a fault class (the mapping table of docs/gameday.md).
CHAOS_MESH = {
    "outage": ("PodChaos", "pod-failure"),
    "stress": ("StressChaos", None),
    "latency": ("NetworkChaos", "delay"),
    "unreachable": ("NetworkChaos", "partition"),
    "cutoff": ("NetworkChaos", "partition"),
}
LITMUS = {
    "outage": "pod-delete",
    "stress": "pod-cpu-hog",
    "latency": "pod-network-latency",
    "unreachable": "pod-network-partition",
    "cutoff": "pod-network-loss",
}
FIS = {  # resource type -> fault -> action id (an SSM document for EC2)
    "aws:eks:pod": {
        "outage": "aws:eks:pod-delete",
        "stress": "aws:eks:pod-cpu-stress",
        "latency": "aws:eks:pod-network-latency",
        "unreachable": "aws:eks:pod-network-packet-loss",
        "cutoff": "aws:eks:pod-network-packet-loss",
    },
    "aws:ecs:task": {
        "outage": "aws:ecs:stop-task",
        "stress": "aws:ecs:task-cpu-stress",
        "latency": "aws:ecs:task-network-latency",
        "unreachable": "aws:ecs:task-network-packet-loss",
        "cutoff": "aws:ecs:task-network-packet-loss",
    },
    "aws:ec2:instance": {
        "outage": "aws:ec2:stop-instances",
        "stress": "AWSFIS-Run-CPU-Stress",
        "latency": "AWSFIS-Run-Network-Latency",
        "unreachable": "AWSFIS-Run-Network-Packet-Loss",
        "cutoff": "AWSFIS-Run-Network-Packet-Loss-Sources",
    },
    "aws:rds:cluster": {"outage": "aws:rds:failover-db-cluster"},
}
FAULT_OF_MODE = {
    "capacity": "stress",
    "network": "latency",
    "dependency": "unreachable",
    **dict.fromkeys(("database", "deployment", "hardware"), "outage"),
    **dict.fromkeys(("config", "security", "data", "other"), "outage"),
}


def plan(
    trigger: Target,
    mode: str,
    dependents: tuple[Target, ...] = (),
    p50: float | None = 12.2716,
    scenario_id: str | None = None,
) -> Plan:
    return Plan(
        scenario_id=scenario_id or f"{trigger.service}--{mode}",
        title=f"What if {trigger.service} fails ({mode})?\nSecond line",
        description="predicted impact",
        trigger=trigger,
        mode=mode,
        dependents=dependents,
        probability=0.1234567,
        risk_score=0.4,
        duration_p50_minutes=p50,
        duration_p90_minutes=40.0,
        severity="SEV2",
        run_id="2026-11-01T00-00-00Z-abc",
    )


def others(trigger: Target) -> tuple[Target, ...]:
    return tuple(t for t in (WEB, API, CACHE) if t is not trigger)


@cache
def schema(name: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / name).read_text(encoding="utf-8"))


@cache
def validator(name: str) -> jsonschema.protocols.Validator:
    found = schema(name)
    checker = jsonschema.validators.validator_for(found)
    checker.check_schema(found)
    return checker(found)


@cache
def fis_operation() -> Any:
    import botocore.session

    return (
        botocore.session.get_session()
        .get_service_model("fis")
        .operation_model("CreateExperimentTemplate")
    )


def documents(experiment: Experiment) -> list[dict[str, Any]]:
    assert experiment.skipped is None and experiment.text and experiment.filename
    assert experiment.filename == f"{experiment.scenario_id}.yaml"
    assert not re.search(r"[&*]id\d", experiment.text)  # no YAML anchors or aliases
    docs = list(yaml.safe_load_all(experiment.text))
    assert docs and all(isinstance(d, dict) for d in docs)
    return docs


def template(experiment: Experiment) -> dict[str, Any]:
    assert experiment.skipped is None and experiment.text
    assert experiment.filename == f"{experiment.scenario_id}.json"
    return json.loads(experiment.text)


# --- the checks against each tool's published schema ----------------------------------


def check_chaos_mesh(doc: dict[str, Any]) -> None:
    """The CRD subset, then the webhook and controller rules the CRD cannot say."""
    validator("chaosmesh.schema.json").validate(doc)
    spec = doc["spec"]
    assert doc["metadata"]["annotations"][chaosmesh.PAUSE_ANNOTATION] == "true"
    assert spec.get("action") not in ("pod-kill", "container-kill")  # one-shot: ignore pause
    assert GO_DURATION.match(spec["duration"]) and spec["duration"]
    if doc["kind"] == "PodChaos":
        assert spec["action"] == "pod-failure" and spec["duration"]
    if doc["kind"] == "StressChaos":
        assert spec["stressors"]["cpu"]["workers"] > 0
    if doc["kind"] == "NetworkChaos" and spec["action"] != "partition":
        assert spec.get("direction", "to") == "to" or spec.get("target")
        assert not (spec.get("externalTargets") and spec.get("direction") in ("from", "both"))


def check_litmus(doc: dict[str, Any]) -> None:
    """The CRD subset, the ChaosHub fault's env names, the operator's appinfo rule."""
    validator("litmus.schema.json").validate(doc)
    spec = doc["spec"]
    assert spec["engineState"] == "stop"
    appinfo = spec["appinfo"]
    assert bool(appinfo.get("appkind")) == bool(appinfo.get("applabel"))
    for experiment in spec["experiments"]:
        allowed = schema("litmus_experiments.json")[experiment["name"]]
        env = {e["name"]: e["value"] for e in experiment["spec"]["components"]["env"]}
        assert set(env) <= set(allowed), set(env) - set(allowed)
        assert int(env["TOTAL_CHAOS_DURATION"]) >= 60
        assert spec["chaosServiceAccount"] == f"{experiment['name']}-sa"


def iso_seconds(text: str) -> int:
    match = ISO_DURATION.match(text)
    assert match and text != "PT", text
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def check_model_limits(value: Any, shape: Any, path: str) -> None:
    """The model's `pattern` (whole value, as AWS applies it) and `max` limits, which
    botocore's ParamValidator does not check: e.g. FIS action parameter values hold no
    whitespace (`[\\S]+`)."""
    import regex

    limit = shape.metadata.get("max")
    if shape.type_name == "string":
        pattern = shape.metadata.get("pattern")
        assert pattern is None or regex.fullmatch(pattern, value), (path, pattern, value)
        assert limit is None or len(value) <= limit, (path, limit, len(value))
    elif shape.type_name == "structure":
        for name, member in shape.members.items():
            if name in value:
                check_model_limits(value[name], member, f"{path}.{name}")
    elif shape.type_name == "list":
        assert limit is None or len(value) <= limit, (path, limit)
        for i, item in enumerate(value):
            check_model_limits(item, shape.member, f"{path}[{i}]")
    elif shape.type_name == "map":
        assert limit is None or len(value) <= limit, (path, limit)
        for key, item in value.items():
            check_model_limits(key, shape.key, f"{path} key {key}")
            check_model_limits(item, shape.value, f"{path}.{key}")


def check_fis(body: dict[str, Any]) -> None:
    """botocore's model of CreateExperimentTemplate (as the CLI sends it), then AWS's action
    reference: ids, resource types, target keys, parameter names, durations."""
    from botocore.handlers import generate_idempotent_uuid
    from botocore.validate import ParamValidator

    operation = fis_operation()
    params = json.loads(json.dumps(body))
    generate_idempotent_uuid(params, operation)  # the CLI fills clientToken the same way
    report = ParamValidator().validate(params, operation.input_shape)
    assert not report.has_errors(), report.generate_report()
    check_model_limits(params, operation.input_shape, "input")  # what botocore leaves to AWS
    facts = schema("fis_actions.json")
    low, high = (iso_seconds(d) for d in facts["durationRange"])
    for name, action in body["actions"].items():
        fact = facts["actions"][action["actionId"]]
        (key, target_name), *rest = action["targets"].items()
        assert not rest and key == fact["targetKey"], (name, key)
        target = body["targets"][target_name]
        assert target["resourceType"] == fact["resourceType"]
        given = action["parameters"]
        assert set(given) <= set(fact["parameters"]) and set(fact["required"]) <= set(given)
        for parameter in facts["durationParameters"]:
            if parameter in given:
                assert low <= iso_seconds(given[parameter]) <= high
        if action["actionId"] == "aws:ssm:send-command":
            document = given["documentArn"].rsplit("/", 1)[1]
            ssm = facts["ssmDocuments"][document]
            values = json.loads(given["documentParameters"])
            assert set(values) <= set(ssm["parameters"]) and set(ssm["required"]) <= set(values)
            assert all(isinstance(v, str) for v in values.values())
    for target in body["targets"].values():
        found = facts["targetParameters"].get(target["resourceType"])
        if "parameters" in target:
            assert found and set(target["parameters"]) <= set(found["parameters"])
            assert set(found["required"]) <= set(target["parameters"])
        assert "resourceArns" in target or "resourceTags" in target or "parameters" in target


# --- every mode, every format ---------------------------------------------------------


@pytest.mark.parametrize("mode", FAILURE_MODES)
@pytest.mark.parametrize("trigger", [WEB, CACHE], ids=lambda t: t.service)
def test_chaos_mesh_objects_match_the_crds_for_every_mode(mode, trigger):
    fault = FAULT_OF_MODE[mode]
    docs = documents(chaosmesh.export(plan(trigger, mode, others(trigger))))
    for doc in docs:
        check_chaos_mesh(doc)
    kind, action = CHAOS_MESH[fault]
    assert {d["kind"] for d in docs} == {kind}
    assert all(d["spec"].get("action") == action for d in docs)
    if fault == "unreachable":  # a partition from each dependent, the trigger on one side
        assert len(docs) == len(others(trigger))
        assert all(d["spec"]["selector"]["labelSelectors"] == trigger.labels for d in docs)
    else:
        assert len(docs) == 1
        assert docs[0]["spec"]["selector"]["labelSelectors"] == trigger.labels
        assert docs[0]["spec"]["mode"] == "all"
    if trigger.namespace:
        assert all(d["metadata"]["namespace"] == trigger.namespace for d in docs)


@pytest.mark.parametrize("mode", FAILURE_MODES)
@pytest.mark.parametrize("trigger", [WEB, CACHE], ids=lambda t: t.service)
def test_litmus_engines_match_the_crd_and_the_chaoshub_faults_for_every_mode(mode, trigger):
    docs = documents(litmus.export(plan(trigger, mode, others(trigger))))
    assert len(docs) == 1
    check_litmus(docs[0])
    spec = docs[0]["spec"]
    assert [e["name"] for e in spec["experiments"]] == [LITMUS[FAULT_OF_MODE[mode]]]
    labels = ",".join(f"{k}={v}" for k, v in trigger.labels.items())
    assert spec["appinfo"]["applabel"] == labels
    assert spec["appinfo"].get("appns") == trigger.namespace


@pytest.mark.parametrize("mode", FAILURE_MODES)
@pytest.mark.parametrize("trigger", TRIGGERS, ids=lambda t: t.service)
def test_fis_templates_match_the_api_model_and_action_reference_for_every_mode(mode, trigger):
    experiment = fis.export(plan(trigger, mode, others(trigger)))
    fault = FAULT_OF_MODE[mode]
    resource = fis.resource_of(trigger)
    assert isinstance(resource, fis.Resource)
    expected = FIS[resource.type].get(fault)
    if expected is None:  # RDS: only an outage (failover) exists
        assert (
            experiment.skipped
            and f"no action for the {fault} fault on aws:rds:cluster" in experiment.skipped
        )
        return
    body = template(experiment)
    check_fis(body)
    (action,) = body["actions"].values()
    document = action["parameters"].get("documentArn", "").rsplit("/", 1)[-1]
    assert expected in (action["actionId"], document)
    (target,) = body["targets"].values()
    assert target["selectionMode"] == "ALL"


def test_fis_targets_follow_the_aws_target_column():
    web = fis.resource_of(WEB)
    assert isinstance(web, fis.Resource) and web.target["parameters"] == {
        "clusterIdentifier": EKS,
        "namespace": "shop",
        "selectorType": "labelSelector",
        "selectorValue": "app=web",
    }
    api = fis.resource_of(API)
    assert isinstance(api, fis.Resource)
    assert api.target["parameters"] == {"cluster": "prod", "service": "api"}
    tagged = fis.resource_of(CACHE)
    assert isinstance(tagged, fis.Resource)
    assert (tagged.type, tagged.target["resourceTags"]) == (
        "aws:ec2:instance",
        {"Service": "cache"},
    )
    task = "arn:aws:ecs:eu-west-1:123456789012:task/prod/0123456789abcdef"
    ec2 = "arn:aws:ec2:eu-west-1:123456789012:instance/i-0123456789abcdef0"
    rds = "arn:aws:rds:eu-west-1:123456789012:db:orders-1"
    for arn, kind in ((task, "aws:ecs:task"), (ec2, "aws:ec2:instance"), (rds, "aws:rds:db")):
        found = fis.resource_of(Target("x", aws_target=arn))
        assert isinstance(found, fis.Resource)
        assert (found.type, found.target["resourceArns"]) == (kind, [arn])
    reboot = template(fis.export(plan(Target("x", aws_target=rds), "database")))
    check_fis(reboot)
    for bad in ("orders", "tag:nokey", "arn:aws:lambda:eu-west-1:123456789012:function:f"):
        assert isinstance(fis.resource_of(Target("x", aws_target=bad)), str)
    two_labels = dataclasses.replace(CACHE, aws_target=EKS)  # a parameter holds no comma
    assert "one label" in str(fis.resource_of(two_labels))


def test_a_service_without_aws_target_is_skipped_in_fis_with_the_reason():
    experiment = fis.export(plan(Target("orders", namespace="shop"), "deployment"))
    assert experiment.text is None and experiment.filename is None
    assert experiment.skipped == "no aws_target for orders in the topology"


# --- third parties: blocked egress from their dependents --------------------------------


@pytest.mark.parametrize("mode", FAILURE_MODES)
def test_a_third_party_outage_becomes_blocked_egress_in_every_format(mode):
    scenario = plan(PAYMENTS, mode, (WEB, API, SMS, CACHE))
    host = "api.payments.example"

    mesh = chaosmesh.export(scenario)
    docs = documents(mesh)
    for doc in docs:
        check_chaos_mesh(doc)
        assert doc["spec"]["action"] == "partition" and doc["spec"]["direction"] == "to"
        assert doc["spec"]["externalTargets"] == [host]
    selected = [d["spec"]["selector"]["labelSelectors"] for d in docs]
    assert selected == [WEB.labels, API.labels, CACHE.labels]  # not the third-party sms

    engines = documents(litmus.export(scenario))
    assert [e["spec"]["appinfo"]["applabel"] for e in engines] == [
        "app=web",
        "app=api",
        "app.kubernetes.io/name=cache,tier=data",
    ]
    for engine in engines:
        check_litmus(engine)
        (experiment,) = engine["spec"]["experiments"]
        env = {e["name"]: e["value"] for e in experiment["spec"]["components"]["env"]}
        assert experiment["name"] == "pod-network-loss"
        assert env["DESTINATION_HOSTS"] == host
        assert env["NETWORK_PACKET_LOSS_PERCENTAGE"] == "100"

    body = template(fis.export(scenario))
    check_fis(body)
    ids = sorted(a["actionId"] for a in body["actions"].values())
    assert ids == [
        "aws:ecs:task-network-packet-loss",
        "aws:eks:pod-network-packet-loss",
        "aws:ssm:send-command",
    ]
    for action in body["actions"].values():
        parameters = action["parameters"]
        sources = (
            parameters.get("sources") or json.loads(parameters["documentParameters"])["Sources"]
        )
        assert sources == host

    for experiment in (mesh, litmus.export(scenario), fis.export(scenario)):
        assert experiment.note and "third party" in experiment.note and host in experiment.note


def test_a_third_party_without_a_known_host_gets_a_placeholder_that_never_resolves():
    docs = documents(chaosmesh.export(plan(SMS, "other", (WEB,))))
    (host,) = docs[0]["spec"]["externalTargets"]
    assert host == "sms.replace-me.invalid"  # RFC 2606 .invalid
    assert "placeholder" in (chaosmesh.export(plan(SMS, "other", (WEB,))).note or "")


def test_a_third_party_whose_dependents_cannot_be_selected_is_skipped_with_the_reason():
    lonely = plan(PAYMENTS, "other", (SMS,))
    for exporter in (chaosmesh, litmus, fis):
        experiment = exporter.export(lonely)
        assert experiment.text is None and experiment.skipped
        assert "payments is a third party" in experiment.skipped


def test_a_dependency_without_dependents_drops_all_the_triggers_traffic():
    experiment = chaosmesh.export(plan(WEB, "dependency"))
    (doc,) = documents(experiment)
    check_chaos_mesh(doc)
    assert (doc["spec"]["action"], doc["spec"]["loss"]) == ("loss", {"loss": "100"})
    assert experiment.note and "all its traffic is dropped" in experiment.note


# --- notes, durations, names, metadata -------------------------------------------------


@pytest.mark.parametrize("mode", FAILURE_MODES)
def test_modes_that_cannot_be_injected_as_such_say_so_alike_in_every_format(mode):
    notes = [m.export(plan(WEB, mode, (API,))).note or "" for m in (chaosmesh, litmus, fis)]
    stand_in = mode in ("config", "security", "data", "other")
    for note in notes:
        assert ("cannot be injected as such" in note) == stand_in, (mode, note)


def test_the_injection_lasts_the_predicted_p50_within_game_day_bounds():
    assert faults.injection_seconds(plan(WEB, "network", p50=12.2716)) == (736, None)
    seconds, note = faults.injection_seconds(plan(WEB, "network", p50=None))
    assert seconds == 600 and note and "no predicted duration" in note
    assert faults.injection_seconds(plan(WEB, "network", p50=0.2))[0] == 60
    seconds, note = faults.injection_seconds(plan(WEB, "network", p50=600.0))
    assert seconds == 3600 and note and "capped" in note
    assert [faults.go_duration(s) for s in (45, 60, 736, 3600, 3661)] == [
        "45s",
        "1m",
        "12m16s",
        "1h",
        "1h1m1s",
    ]
    assert [fis.iso_duration(s) for s in (60, 736, 3600)] == ["PT1M", "PT12M16S", "PT1H"]
    capped = plan(WEB, "capacity", p50=600.0)
    assert documents(chaosmesh.export(capped))[0]["spec"]["duration"] == "1h"
    assert "capped" in (litmus.export(capped).note or "")


@pytest.mark.parametrize(
    "scenario_id",
    ["web--network", "Payments_API--dependency", "x" * 200 + "--other", "ÜberSvc--data"],
)
def test_names_are_dns_1123_labels(scenario_id):
    scenario = plan(WEB, "dependency", (API, CACHE), scenario_id=scenario_id)
    for doc in documents(chaosmesh.export(scenario)):
        assert faults.is_dns_label(doc["metadata"]["name"])
    for doc in documents(litmus.export(scenario)):
        assert faults.is_dns_label(doc["metadata"]["name"], litmus.ENGINE_NAME_MAX)
    tags = template(fis.export(scenario))["tags"]
    assert DNS_LABEL.match(tags["Name"]) and len(tags["Name"]) <= 63


def test_names_that_differ_only_by_characters_k8s_refuses_stay_distinct():
    names = {
        faults.dns_label("whatif", s) for s in ("Web--network", "web--network", "web__network")
    }
    assert len(names) == 3


def test_the_metadata_reads_back_from_annotations_and_tags():
    long_radius = tuple(Target(f"service-with-a-rather-long-name-{i:02d}") for i in range(10))
    for dependents in ((API, CACHE), long_radius, ()):
        scenario = plan(CACHE, "capacity", dependents)
        expected = scenario.metadata()
        for exporter in (chaosmesh, litmus):
            for doc in documents(exporter.export(scenario)):
                assert faults.read_metadata(doc["metadata"]["annotations"]) == expected
        tags = template(fis.export(scenario))["tags"]
        assert all(len(v) <= fis.TAG_VALUE_MAX for v in tags.values())
        assert fis.read_tags(tags) == expected
    assert len(json.dumps([t.service for t in long_radius])) > fis.TAG_VALUE_MAX  # was split


def test_exports_are_deterministic_text():
    for mode in FAILURE_MODES:
        for trigger in (*TRIGGERS, PAYMENTS):
            first = plan(trigger, mode, (WEB, API, CACHE, SMS))
            again = dataclasses.replace(first, dependents=tuple(first.dependents))
            for exporter in (chaosmesh, litmus, fis):
                assert exporter.export(first) == exporter.export(again)


# --- safe by default -------------------------------------------------------------------


def test_nothing_can_inject_before_someone_arms_it():
    for mode in FAILURE_MODES:
        for trigger in (WEB, CACHE, PAYMENTS):
            scenario = plan(trigger, mode, (WEB, API, CACHE))
            mesh = chaosmesh.export(scenario)
            for doc in documents(mesh):
                assert doc["metadata"]["annotations"][chaosmesh.PAUSE_ANNOTATION] == "true"
            assert f"Arm: kubectl annotate -f {mesh.filename} {chaosmesh.PAUSE_ANNOTATION}-" in (
                mesh.text or ""
            )
            engine = litmus.export(scenario)
            assert all(d["spec"]["engineState"] == "stop" for d in documents(engine))
            assert '"engineState":"active"' in (engine.text or "")  # the arming command
    for trigger in (WEB, API, CACHE, DB):
        body = template(fis.export(plan(trigger, "database")))
        (stop,) = body["stopConditions"]
        assert stop["source"] == "aws:cloudwatch:alarm"
        assert (
            stop["value"]
            == f"arn:aws:cloudwatch:REGION:ACCOUNT:alarm:whatif-{trigger.service}--database-stop"
        )
        assert ":ACCOUNT:" in body["roleArn"]
        assert "replace REGION and ACCOUNT" in body["description"]
        for action in body["actions"].values():
            assert "REGION" in action["parameters"].get("documentArn", "REGION")


def test_a_long_title_keeps_the_fis_description_within_limits_and_its_instructions():
    wordy = dataclasses.replace(plan(API, "deployment"), title="What if " * 200)
    body = template(fis.export(wordy))
    check_fis(body)
    assert len(body["description"]) <= fis.DESCRIPTION_MAX
    assert body["description"].startswith("whatif api--deployment: What if")
    assert body["description"].endswith(
        "replace REGION and ACCOUNT, create the stop-condition alarm."
    )
