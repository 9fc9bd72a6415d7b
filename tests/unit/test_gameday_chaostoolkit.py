"""The Chaos Toolkit exporter: every experiment validates with chaostoolkit-lib on a machine
without chaosk8s or kubectl, carries the scenario's metadata, probes steady-<service>, is
inert as exported, injects the right fault once armed, and `chaos run --dry=actions` runs
one end to end against a loopback service without injecting anything."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from chaoslib import substitute
from chaoslib.exceptions import InvalidActivity
from chaoslib.experiment import ensure_experiment_is_valid, run_experiment
from fakes.loopback import JSONHandler, LoopbackServer
from whatif.gameday import chaostoolkit as ctk
from whatif.gameday.plan import METADATA_PREFIX, PROBE_PREFIX, Plan, Target
from whatif.schemas import FAILURE_MODES

CHAOS = Path(sys.executable).parent / "chaos"
# Every failure mode is injected: data and other as the outage they predict, with a note.
INJECTED = set(FAILURE_MODES)
# mode -> (API collection, kind, Chaos Mesh action or None)
EXPECTED = {
    "deployment": ("podchaos", "PodChaos", "pod-failure"),
    "database": ("podchaos", "PodChaos", "pod-failure"),
    "config": ("podchaos", "PodChaos", "pod-failure"),
    "security": ("podchaos", "PodChaos", "pod-failure"),
    "hardware": ("podchaos", "PodChaos", "pod-kill"),
    "capacity": ("stresschaos", "StressChaos", None),
    "network": ("networkchaos", "NetworkChaos", "delay"),
    "dependency": ("networkpolicies", "NetworkPolicy", None),
}


def _target(service: str, url: str | None = None, **kw: Any) -> Target:
    return Target(service=service, health_url=url, **kw)


def _plan(
    mode: str = "deployment",
    trigger: Target | None = None,
    dependents: tuple[Target, ...] | None = None,
    p50: float | None = 12.3,
    scenario_id: str | None = None,
) -> Plan:
    trigger = trigger or _target(
        "checkout",
        "http://checkout.shop/healthz",
        namespace="shop",
        selector=(("app", "checkout"), ("tier", "web")),
        owner_team="payments",
    )
    if dependents is None:
        dependents = (
            _target("web-frontend", "http://web.shop/healthz"),
            _target("orders"),
            _target("stripe", external=True),
        )
    return Plan(
        scenario_id=scenario_id or f"{trigger.service}--{mode}",
        title=f"What if {trigger.service} fails ({mode})?",
        description=f"{trigger.service} fails and its dependents feel it.",
        trigger=trigger,
        mode=mode,
        dependents=dependents,
        probability=0.42,
        risk_score=0.125,
        duration_p50_minutes=p50,
        duration_p90_minutes=None if p50 is None else p50 * 3,
        severity="SEV2",
        run_id="run-7",
        seed=7,
    )


def _no_health(plan: Plan) -> Plan:
    strip = lambda t: Target(**{**t.__dict__, "health_url": None})  # noqa: E731
    return Plan(
        **{
            **plan.__dict__,
            "trigger": strip(plan.trigger),
            "dependents": tuple(strip(t) for t in plan.dependents),
        }
    )


def _external_plan(mode: str = "dependency", **kw: Any) -> Plan:
    callers = kw.pop(
        "dependents",
        (
            _target("checkout", "http://checkout.shop/healthz", namespace="shop"),
            _target("web-frontend"),
        ),
    )
    return _plan(mode, trigger=_target("stripe", external=True), dependents=callers, **kw)


def _doc(plan: Plan) -> dict[str, Any]:
    experiment = ctk.export(plan)
    assert experiment.skipped is None, experiment.skipped
    return json.loads(experiment.text)


@pytest.fixture
def bare_machine(monkeypatch):
    """Neither chaosk8s importable nor any executable (kubectl) on PATH: what validation
    must not need."""
    monkeypatch.setitem(sys.modules, "chaosk8s", None)  # import raises ImportError
    monkeypatch.setenv("PATH", "")


def _validate(doc: dict[str, Any]) -> None:
    ensure_experiment_is_valid(json.loads(json.dumps(doc)))


def _providers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    hypothesis = doc["steady-state-hypothesis"]["probes"]
    return [a["provider"] for a in hypothesis + doc["method"] + doc["rollbacks"] if "provider" in a]


def test_the_bare_machine_really_lacks_them(bare_machine):
    """The fixture the validity tests rely on: a python provider of chaosk8s and a process
    provider of kubectl are refused there, so passing means needing neither."""
    for provider in (
        {"type": "python", "module": "chaosk8s.pod.actions", "func": "terminate_pods"},
        {"type": "process", "path": "kubectl"},
    ):
        experiment = {
            "title": "t",
            "description": "d",
            "method": [{"type": "action", "name": "a", "provider": provider}],
        }
        with pytest.raises(InvalidActivity):
            ensure_experiment_is_valid(experiment)


@pytest.mark.parametrize("with_health", [True, False], ids=["health", "no-health"])
@pytest.mark.parametrize("mode", FAILURE_MODES)
def test_every_mode_validates_or_is_skipped_with_a_reason(bare_machine, mode, with_health):
    plan = _plan(mode) if with_health else _no_health(_plan(mode))
    experiment = ctk.export(plan)
    assert experiment.format == "chaostoolkit"
    assert experiment.scenario_id == plan.scenario_id
    assert mode in INJECTED
    assert experiment.skipped is None
    assert experiment.filename == f"{plan.scenario_id}.json"
    doc = json.loads(experiment.text)
    _validate(doc)
    assert all(p["type"] == "http" for p in _providers(doc))


@pytest.mark.parametrize("with_health", [True, False], ids=["health", "no-health"])
@pytest.mark.parametrize("mode", FAILURE_MODES)
def test_a_third_party_trigger_is_cut_off_at_its_callers(bare_machine, mode, with_health):
    plan = _external_plan(mode)
    plan = plan if with_health else _no_health(plan)
    experiment = ctk.export(plan)
    doc = json.loads(experiment.text)
    _validate(doc)
    assert "stripe is a third party" in experiment.note
    assert "host_stripe" in experiment.note
    config = doc["configuration"]
    assert config[f"{METADATA_PREFIX}recipe"] == "egress-cut"
    assert config["host_stripe"].endswith(".invalid")  # to be set by the operator
    injects = [a for a in doc["method"] if a.get("name", "").startswith("inject-")]
    assert [a["name"] for a in injects] == [
        "inject-egress-cut-checkout",
        "inject-egress-cut-web-frontend",
    ]
    for action in injects:
        body = substitute(action["provider"], config, {})["arguments"]
        assert body["kind"] == "NetworkChaos"
        assert body["spec"]["action"] == "loss"
        assert body["spec"]["externalTargets"] == [config["host_stripe"]]
        assert body["spec"]["loss"]["loss"] == "100"
    gates = [p["name"] for p in doc["steady-state-hypothesis"]["probes"]][:2]
    assert gates == [ctk.GATE_PROBE, "reachable-stripe"]


def test_a_third_party_nobody_in_the_cluster_calls_is_skipped():
    plan = _external_plan(dependents=(_target("paypal", external=True),))
    experiment = ctk.export(plan)
    assert experiment.text is None
    assert "third party" in experiment.skipped and "no in-cluster dependent" in experiment.skipped


def test_unknown_mode_is_skipped_with_its_name():
    assert "'meteor'" in ctk.export(_plan("meteor")).skipped


def test_metadata_and_targets_are_in_configuration_and_tags():
    plan = _plan("capacity")
    doc = _doc(plan)
    config = doc["configuration"]
    for key, value in plan.metadata().items():
        assert config[key] == value
    assert config["whatif_blast_radius"] == ["web-frontend", "orders", "stripe"]
    assert config["whatif_team"] == "payments"
    assert config["namespace_checkout"] == "shop"
    assert config["labels_checkout"] == {"app": "checkout", "tier": "web"}
    assert config["health_url_checkout"] == "http://checkout.shop/healthz"
    assert config["k8s_api"] == ctk.UNARMED_API
    assert doc["tags"] == [
        "whatif",
        f"scenario:{plan.scenario_id}",
        "service:checkout",
        "mode:capacity",
    ]
    assert doc["title"] == plan.title
    description = doc["description"]
    for words in (plan.title, plan.description, "probability 42%", "p50 12.3 min", "p90 36.9 min"):
        assert words in description
    assert "web-frontend, orders, stripe" in description
    assert "Not watched (no health_url): orders, stripe." in description


def test_steady_state_probes_are_named_steady_service_trigger_first():
    doc = _doc(_plan("network"))
    probes = doc["steady-state-hypothesis"]["probes"]
    assert [p["name"] for p in probes] == [
        ctk.GATE_PROBE,
        f"{PROBE_PREFIX}checkout",
        f"{PROBE_PREFIX}web-frontend",
    ]
    for probe in probes[1:]:
        assert probe["tolerance"] == {"type": "range", "range": [200, 299], "target": "status"}
        assert probe["provider"]["timeout"] == ctk.PROBE_TIMEOUT_S
    # the method observes every watched service while the fault holds
    refs = [a["ref"] for a in doc["method"] if "ref" in a]
    assert refs == ["steady-checkout", "steady-web-frontend"]


def test_without_any_health_url_the_fallback_probes_cannot_pass_until_set():
    experiment = ctk.export(_no_health(_plan("deployment")))
    doc = json.loads(experiment.text)
    probes = doc["steady-state-hypothesis"]["probes"]
    # the trigger and the in-cluster dependents; the third party has no probe to fill
    assert [p["name"] for p in probes[1:]] == [
        "steady-checkout",
        "steady-web-frontend",
        "steady-orders",
    ]
    config = doc["configuration"]
    urls = [config[f"health_url_{k}"] for k in ("checkout", "web_frontend", "orders")]
    assert all(u.startswith(ctk.UNSET_HEALTH) for u in urls)
    assert "health_url_checkout, health_url_web_frontend, health_url_orders" in experiment.note


@pytest.mark.parametrize("mode", sorted(EXPECTED))
def test_each_mode_injects_its_fault_holds_it_and_removes_it(mode):
    collection, kind, action = EXPECTED[mode]
    plan = _plan(mode)
    doc = _doc(plan)
    config = doc["configuration"]
    method = [substitute(a, config, {}) for a in doc["method"]]
    inject, *_, end = method
    assert inject["name"].startswith("inject-") and end["name"].startswith("end-")
    assert inject["provider"]["method"] == "POST"
    assert inject["provider"]["url"].endswith(f"/namespaces/shop/{collection}")
    body = inject["provider"]["arguments"]
    assert body["kind"] == kind
    name = body["metadata"]["name"]
    assert name == f"whatif-checkout--{mode}"
    assert end["provider"] == {
        **end["provider"],
        "method": "DELETE",
        "url": f"{inject['provider']['url']}/{name}",
    }
    [rollback] = [substitute(a, config, {}) for a in doc["rollbacks"]]
    assert rollback["provider"]["url"] == end["provider"]["url"]
    if kind == "NetworkPolicy":
        assert body["spec"]["podSelector"] == {"matchLabels": {"app": "checkout", "tier": "web"}}
        assert body["spec"]["policyTypes"] == ["Egress"]
        assert "fault_expiry" not in config
    else:
        assert body["spec"]["selector"] == {
            "namespaces": ["shop"],
            "labelSelectors": {"app": "checkout", "tier": "web"},
        }
        assert body["spec"]["mode"] == "all"
        assert body["spec"].get("action") == action
    hold = ctk.KILL_SETTLE_S if mode == "hardware" else round(12.3 * 60)
    assert config["fault_seconds"] == hold
    assert doc["method"][0]["pauses"] == {"after": "${fault_seconds}"}
    assert doc["method"][-1]["pauses"] == {"after": "${recovery_seconds}"}
    if "duration" in body["spec"]:  # Chaos Mesh ends the fault itself after the hold
        assert body["spec"]["duration"] == f"{hold + ctk.EXPIRY_MARGIN_S}s"
    assert (mode == "hardware") == ("duration" not in body["spec"] and kind != "NetworkPolicy")


@pytest.mark.parametrize(
    ("p50", "hold"), [(None, ctk.DEFAULT_HOLD_S), (0.2, ctk.MIN_HOLD_S), (600, ctk.MAX_HOLD_S)]
)
def test_the_hold_is_the_predicted_outage_within_a_game_days_time_box(p50, hold):
    assert _doc(_plan("capacity", p50=p50))["configuration"]["fault_seconds"] == hold


def test_nearest_honest_injections_say_how_they_differ():
    for mode in ("config", "security", "database", "hardware", "dependency"):
        assert "checkout" in ctk.export(_plan(mode)).note
    for mode in ("deployment", "capacity", "network"):
        assert ctk.export(_plan(mode)).note is None


def test_same_plan_same_bytes():
    first = ctk.export(_plan("network"))
    again = ctk.export(_plan("network"))
    assert first.text.encode() == again.text.encode()
    assert first == again
    assert first.text.endswith("}\n")
    assert list(json.loads(first.text)) == [
        "version",
        "title",
        "description",
        "tags",
        "configuration",
        "steady-state-hypothesis",
        "method",
        "rollbacks",
    ]


def test_awkward_names_still_validate_and_substitute(bare_machine):
    """Service names that are no identifiers (chaoslib substitutes ${identifier} only), two
    that would share a key, a label `type: env` (chaoslib would read the mapping as an
    environment lookup), and a long mixed-case scenario id (a Kubernetes name is a DNS
    label)."""
    trigger = _target("Pay.API", "http://pay/h", selector=(("type", "env"),))
    dependents = (_target("pay-api", "http://a/h"), _target("pay_api", "http://b/h"))
    plan = _plan("network", trigger, dependents, scenario_id="Pay.API--network" + "-x" * 40)
    doc = _doc(plan)
    _validate(doc)
    config = doc["configuration"]
    assert config["health_url_Pay_API"] == "http://pay/h"
    assert config["health_url_pay_api"] == "http://a/h"
    assert config["health_url_pay_api_2"] == "http://b/h"
    assert "labels_Pay_API" not in config
    inject = substitute(doc["method"][0], config, {})
    body = inject["provider"]["arguments"]
    assert body["spec"]["selector"]["labelSelectors"] == {"type": "env"}
    name = body["metadata"]["name"]
    assert len(name) <= 63 and name == name.lower() and name[0].isalnum()
    assert name.startswith("whatif-pay-api--network")
    label = body["metadata"]["labels"]["whatif/scenario"]
    assert len(label) <= 63 and label[-1].isalnum()


class _FakeCluster(JSONHandler):
    """The Kubernetes API (as `kubectl proxy` serves it) and the services' health endpoints,
    recording every request: (method, path, JSON body)."""

    seen: list[tuple[str, str, Any]]
    lock: threading.Lock

    def _record(self, body: Any = None) -> None:
        with self.lock:
            self.seen.append((self.command, self.path, body))

    def do_GET(self) -> None:
        self._record()
        self._send(200, {"ok": True})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self._record(body)
        self._send(201, body)

    def do_DELETE(self) -> None:
        self._record()
        gone = sum(1 for m, p, _ in self.seen if m == "DELETE" and p == self.path) > 1
        self._send(404 if gone else 200, {"kind": "Status"})


@contextmanager
def _fake_cluster() -> Iterator[tuple[str, list[tuple[str, str, Any]]]]:
    seen: list[tuple[str, str, Any]] = []
    handler = type("Cluster", (_FakeCluster,), {"seen": seen, "lock": threading.Lock()})
    server = LoopbackServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", seen
    finally:
        server.shutdown()
        server.server_close()


def _loopback_plan(url: str, mode: str = "deployment") -> Plan:
    return _plan(
        mode,
        trigger=_target("checkout", f"{url}/health/checkout", namespace="shop"),
        dependents=(_target("web", f"{url}/health/web"), _target("orders")),
    )


def test_as_exported_it_injects_nothing():
    """Unarmed (k8s_api not set: here a closed port, as exported a name that cannot
    resolve) the steady state fails at the injector gate: no action runs."""
    assert ctk.UNARMED_API.endswith(".invalid")
    with _fake_cluster() as (url, seen):
        doc = _doc(_loopback_plan(url))
        journal = run_experiment(doc, {}, ({"k8s_api": "http://127.0.0.1:9"}, {}))
    assert journal["status"] == "failed"
    assert journal["steady_states"]["before"]["steady_state_met"] is False
    assert journal["run"] == [] and journal["rollbacks"] == []
    assert seen == []


def test_armed_it_creates_the_fault_observes_and_deletes_it():
    """In process, against a fake API: what the Chaos Toolkit would send once armed."""
    with _fake_cluster() as (url, seen):
        doc = _doc(_loopback_plan(url, "capacity"))
        overrides = {"k8s_api": url, "fault_seconds": 0, "recovery_seconds": 0}
        settings = {"runtime": {"rollbacks": {"strategy": "always"}}}
        journal = run_experiment(doc, settings, (overrides, {}))
    assert journal["status"] == "completed" and journal["deviated"] is False
    changes = [(m, p, b) for m, p, b in seen if m != "GET"]
    collection = "/apis/chaos-mesh.org/v1alpha1/namespaces/shop/stresschaos"
    name = "whatif-checkout--capacity"
    assert [(m, p) for m, p, _ in changes] == [
        ("POST", collection),
        ("DELETE", f"{collection}/{name}"),  # the method ends the fault
        ("DELETE", f"{collection}/{name}"),  # the rollback, a safety net (404 by then)
    ]
    body = changes[0][2]
    assert body["metadata"]["name"] == name
    assert body["spec"] == {
        "mode": "all",
        "selector": {"namespaces": ["shop"], "labelSelectors": {"app": "checkout"}},
        "stressors": {"cpu": {"workers": ctk.CPU_WORKERS, "load": ctk.CPU_LOAD}},
        "duration": doc["configuration"]["fault_expiry"],
    }
    observed = [r for r in journal["run"] if r["activity"]["type"] == "probe"]
    assert [(r["activity"]["name"], r["output"]["status"]) for r in observed] == [
        ("steady-checkout", 200),
        ("steady-web", 200),
    ]


def test_chaos_run_dry_actions_end_to_end(tmp_path):
    """The CLI runs an exported experiment, armed at a loopback API, with actions dry: the
    steady-state probes hit the loopback services, nothing is created or deleted."""
    with _fake_cluster() as (url, seen):
        experiment = ctk.export(_loopback_plan(url))
        path = tmp_path / experiment.filename
        path.write_text(experiment.text)
        journal_path = tmp_path / "journal.json"
        done = subprocess.run(
            [
                str(CHAOS),
                "--no-version-check",
                "--no-log-file",
                "--settings",
                str(tmp_path / "settings.yaml"),
                "run",
                "--dry",
                "actions",
                "--journal-path",
                str(journal_path),
                "--var",
                f"k8s_api={url}",
                str(path),
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        requests = list(seen)
    assert done.returncode == 0, done.stderr[-2000:]
    journal = json.loads(journal_path.read_text())
    assert journal["status"] == "completed" and journal["deviated"] is False
    assert journal["experiment"]["configuration"]["whatif_scenario"] == "checkout--deployment"
    for when in ("before", "after"):
        state = journal["steady_states"][when]
        assert state["steady_state_met"] is True
        assert [p["activity"]["name"] for p in state["probes"]] == [
            ctk.GATE_PROBE,
            "steady-checkout",
            "steady-web",
        ]
    # before, while the fault would hold, after: three rounds of health checks
    paths = [p for _, p, _ in requests]
    assert paths.count("/health/checkout") == 3 and paths.count("/health/web") == 3
    assert paths.count("/apis/chaos-mesh.org/v1alpha1") == 2
    assert {m for m, _, _ in requests} == {"GET"}  # nothing created, nothing deleted
    actions = [
        r for r in journal["run"] + journal["rollbacks"] if r["activity"]["type"] == "action"
    ]
    assert [r["activity"]["name"] for r in actions] == [
        "inject-pod-failure",
        "end-pod-failure",
        "rollback-pod-failure",
    ]
    assert all(r["status"] == "succeeded" and r["output"] is None for r in actions)
