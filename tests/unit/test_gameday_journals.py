"""Chaos Toolkit journals read back: which journals are used and why the others are not, the
outcome rule, the exercise rows readiness reads unchanged (and what they do to selection),
and the cascade trials for the edge model. The journals under tests/data/gameday/journals
were written by `chaos run` (chaostoolkit 1.19.0, chaostoolkit-lib 1.44.0) against a loopback
stand-in of the sample platform (their README says how); variants are derived from them."""

from __future__ import annotations

import csv
import json
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from shared import PROJECT
from whatif import readiness
from whatif.errors import UserError
from whatif.gameday import journals
from whatif.gameday.journals import JournalRecord

DATA = PROJECT / "tests" / "data" / "gameday" / "journals"
GAIA_TOPOLOGY = PROJECT / "tests" / "data" / "public" / "gaia-micross" / "topology.csv"
AS_OF = datetime(2026, 11, 30, tzinfo=UTC)
PASSED = "2026-10-14-gameday/mysql--capacity/journal.json"
CASCADE = "2026-10-14-gameday/redisservice--capacity/journal.json"
CONTAINED = "2026-10-14-gameday/logservice--capacity/journal.json"
RECOVERED = "2026-10-14-gameday/zookeeper--network/journal.json"
HYPOTHESIS_ONLY = "2026-09-16-gameday/redisservice--capacity/journal.json"
CONTINUOUS = "2026-11-04-gameday/redisservice--capacity/journal.json"
INTERRUPTED = "2026-11-04-gameday/redisservice--capacity/journal-interrupted.json"
# experiments as whatif's Chaos Toolkit exporter writes them (fault held, observed, ended)
EXPORTED_RECOVERED = "2026-11-18-gameday/redisservice--capacity/journal.json"
EXPORTED = "2026-11-25-gameday/redisservice--capacity/journal.json"


def relative(path: str) -> str:
    return Path(path).relative_to(DATA).as_posix()


def by_file(records: list[JournalRecord]) -> dict[str, JournalRecord]:
    return {relative(r.path): r for r in records}


def journal(name: str) -> dict[str, Any]:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def read_one(tmp_path: Path, document: dict[str, Any]) -> tuple[list[JournalRecord], list[dict]]:
    path = tmp_path / "journal.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return journals.read_journals(str(path))


def services() -> list[str]:
    with GAIA_TOPOLOGY.open(encoding="utf-8") as f:
        return [row["service"] for row in csv.DictReader(f)]


def test_every_json_file_under_the_folder_is_used_or_quarantined_with_its_reason():
    used, quarantined = journals.read_journals(str(DATA))
    hand_written = [PASSED, CASCADE, CONTAINED, RECOVERED, HYPOTHESIS_ONLY, CONTINUOUS]
    assert sorted(by_file(used)) == sorted([*hand_written, EXPORTED_RECOVERED, EXPORTED])
    assert {relative(q["file"]): q["reason"] for q in quarantined} == {
        "2026-09-16-gameday/mysql--capacity/journal-dry-run.json": "dry_run",
        "2026-09-16-gameday/mysql--capacity/journal.json": "steady_state_not_met_before",
        "2026-09-16-gameday/redisservice--capacity/experiment.json": "not_a_journal",
        "2026-11-04-gameday/mysql--capacity/journal.json": "injection_failed",
        "2026-11-04-gameday/redisservice--capacity/journal-aborted.json": "experiment_aborted",
        INTERRUPTED: "experiment_interrupted",
        # exported experiments are inert until armed: the injector's gate fails first
        "2026-11-18-gameday/redisservice--capacity/journal-unarmed.json": (
            "steady_state_not_met_before"
        ),
        "2026-11-25-gameday/redisservice--capacity/experiment.json": "not_a_journal",
        "other/checkout-pod-kill/journal.json": "not_from_whatif",
        "other/truncated/journal.json": "unreadable_json",
    }
    assert len(used) + len(quarantined) == len(list(DATA.rglob("*.json")))
    assert [r.day for r in used] == sorted(r.day for r in used)
    details = {relative(q["file"]): q for q in quarantined}
    failed = details["2026-11-04-gameday/mysql--capacity/journal.json"]
    assert failed["scenario"] == "mysql--capacity"
    assert "inject-capacity-mysql failed" in failed["detail"]
    assert "could not load the cluster credentials" in failed["detail"]


def test_outcomes_follow_the_documented_rule():
    records = by_file(journals.read_journals(str(DATA))[0])
    seen = {
        name: (r.outcome, r.deviated, r.deviated_during, r.unobserved, r.trigger_deviated)
        for name, r in records.items()
    }
    assert seen == {
        # the steady state held and nothing deviated meanwhile
        PASSED: ("passed", (), (), (), False),
        # two of three dependents deviated: mobservice still out after the method,
        # webservice seen by the method's probe (the hypothesis stopped at mobservice)
        CASCADE: ("failed", ("mobservice",), ("webservice",), (), False),
        # only the trigger's own probe failed and its dependent was seen healthy
        CONTAINED: ("partial", ("logservice",), (), (), True),
        # a dependent deviated while injected and had recovered by the check after
        RECOVERED: ("partial", (), ("mobservice",), (), False),
        # the hypothesis stopped at the first deviation: the rest were never checked
        HYPOTHESIS_ONLY: ("failed", ("mobservice",), (), ("webservice", "redisservice"), None),
        CONTINUOUS: ("failed", ("mobservice",), (), ("webservice", "redisservice"), None),
        # the fault held: the trigger and two dependents went down, all recovered once it ended
        EXPORTED_RECOVERED: (
            "partial",
            (),
            ("redisservice", "webservice", "mobservice"),
            (),
            True,
        ),
        # the same, but webservice had not recovered (and the check stopped at it)
        EXPORTED: ("failed", ("webservice",), ("redisservice", "mobservice"), (), True),
    }
    cascade = records[CASCADE]
    assert (cascade.scenario, cascade.service, cascade.mode) == (
        "redisservice--capacity",
        "redisservice",
        "capacity",
    )
    assert cascade.watched == ("dbservice", "mobservice", "webservice", "redisservice")
    assert (cascade.day, cascade.team, cascade.status) == (
        date(2026, 10, 14),
        "platform",
        "completed",
    )
    assert cascade.run_id == "2026-10-01T06-00-00" and cascade.facilitator == "chaostoolkit"
    assert cascade.action_items == (
        "out of tolerance after the method: mobservice; "
        "deviated while injected, not checked after the method: webservice"
    )
    assert (
        records[RECOVERED].action_items
        == "deviated while injected, recovered after the method: mobservice"
    )
    assert records[HYPOTHESIS_ONLY].action_items.endswith(
        "never checked (the hypothesis stopped first): webservice, redisservice"
    )
    assert records[PASSED].action_items == "steady state held"
    assert records[EXPORTED].action_items == (
        "out of tolerance after the method: webservice; "
        "deviated while injected, not checked after the method: mobservice; "
        "deviated while injected, recovered after the method: redisservice"
    )


def test_a_single_file_is_read_and_a_missing_or_empty_location_is_a_user_error(tmp_path):
    used, quarantined = journals.read_journals(str(DATA / PASSED))
    assert [r.outcome for r in used] == ["passed"] and quarantined == []
    _, quarantined = journals.read_journals(
        str(DATA / "2026-09-16-gameday/redisservice--capacity/experiment.json")
    )
    assert [q["reason"] for q in quarantined] == ["not_a_journal"]
    with pytest.raises(UserError, match="no such file or folder"):
        journals.read_journals(str(tmp_path / "nowhere"))
    (tmp_path / "notes.md").write_text("game day notes\n")
    with pytest.raises(UserError, match="no JSON file"):
        journals.read_journals(str(tmp_path))


def test_a_completed_journal_whose_injection_failed_is_no_exercise(tmp_path):
    """The runner says `completed` without deviation when the injection answered an error:
    read naively, a game day where nothing was injected would count as passed."""
    document = journal(PASSED)
    document["run"][0]["output"]["status"] = 500
    _, quarantined = read_one(tmp_path, document)
    assert [(q["reason"], q["detail"]) for q in quarantined] == [
        ("injection_failed", "action inject-capacity-mysql failed: answered status 500")
    ]
    document["run"][0]["status"] = "failed"
    document["run"][0]["exception"] = ["chaoslib.exceptions.ActivityFailed: refused\n"]
    assert read_one(tmp_path, document)[1][0]["detail"].endswith("ActivityFailed: refused")
    document["run"] = []  # a method without any action injects nothing
    assert read_one(tmp_path, document)[1][0]["reason"] == "no_injection"
    document = journal(PASSED)
    document["experiment"]["dry"] = "pause"  # --dry pause skips the waits, still injects
    assert [r.outcome for r in read_one(tmp_path, document)[0]] == ["passed"]


def test_a_run_stopped_while_a_dependent_deviated_is_a_failed_exercise(tmp_path):
    """Interrupted (Ctrl-C, a safeguard) after the injection: without anything seen it is no
    exercise; with a method probe that saw a dependent down it is a failed one, and the
    rollbacks that never ran are an action item."""
    document = journal(INTERRUPTED)
    _, quarantined = read_one(tmp_path, document)
    assert quarantined[0]["reason"] == "experiment_interrupted"
    injected = document["run"][0]
    seen = {
        "activity": {"type": "probe", "name": "steady-webservice", "provider": {"type": "http"}},
        "output": {"status": 503, "headers": {}, "body": ""},
        "status": "succeeded",
        "start": injected["end"],
        "end": injected["end"],
    }
    document["run"].append(seen)
    (record,) = read_one(tmp_path, document)[0]
    assert (record.outcome, record.deviated_during) == ("failed", ("webservice",))
    assert record.action_items.endswith("rollbacks not played: check the trigger was restored")
    # a probe of the method that ran before the injection ended says nothing of it
    seen["start"] = document["start"]
    assert read_one(tmp_path, document)[1][0]["reason"] == "experiment_interrupted"


def test_a_probe_that_could_not_connect_after_the_method_is_a_deviation(tmp_path):
    """chaoslib marks the journal `failed` and deviated when a probe of the check after the
    method raised (no answer): the system failed, not the experiment."""
    document = journal(HYPOTHESIS_ONLY)
    probe = document["steady_states"]["after"]["probes"][1]
    probe.update(status="failed", output=None, exception=["ActivityFailed: refused\n"])
    document["status"] = "failed"
    (record,) = read_one(tmp_path, document)[0]
    assert (record.outcome, record.status, record.deviated) == ("failed", "failed", ("mobservice",))


def test_a_failed_trigger_with_unchecked_dependents_is_not_contained(tmp_path):
    """Partial (contained) needs every watched dependent seen healthy: when the hypothesis
    stopped at the trigger's own probe, its dependents may have deviated too."""
    document = journal(CONTAINED)
    after = document["steady_states"]["after"]
    after["probes"] = after["probes"][1:]  # the trigger's probe first, and the last one run
    (record,) = read_one(tmp_path, document)[0]
    assert (record.outcome, record.unobserved) == ("failed", ("webservice",))
    # nothing watched but the trigger: nothing was seen to hold, the trigger failed
    hypothesis = document["experiment"]["steady-state-hypothesis"]
    hypothesis["probes"] = hypothesis["probes"][1:]
    (record,) = read_one(tmp_path, document)[0]
    assert (record.outcome, record.watched) == ("failed", ("logservice",))


def test_a_journal_without_a_check_after_the_method_needs_a_deviation_to_count(tmp_path):
    document = journal(PASSED)
    document["steady_states"]["after"] = None  # --hypothesis-strategy before-method-only
    assert read_one(tmp_path, document)[1][0]["reason"] == "no_steady_state_after"


def test_a_check_after_the_method_that_stopped_at_the_injector_gate_is_no_verdict(tmp_path):
    """The exported hypothesis starts with `injector-ready` (the Kubernetes API): when it is
    the probe that failed after the method, no service was judged; what the method's probes
    saw while the fault held decides, and without a deviation there the journal is set aside."""
    document = journal(EXPORTED_RECOVERED)
    gate = document["steady_states"]["after"]["probes"][0]
    assert gate["activity"]["name"] == "injector-ready"
    gate.update(status="failed", tolerance_met=False, output=None)
    document["steady_states"]["after"] = {"steady_state_met": False, "probes": [gate]}
    document |= {"status": "failed", "deviated": True}
    (record,) = read_one(tmp_path, document)[0]
    assert (record.outcome, record.deviated_during) == (
        "failed",
        ("redisservice", "webservice", "mobservice"),
    )
    for run in document["run"]:
        if run["activity"]["type"] == "probe":
            run["output"]["status"] = 200
    (problem,) = read_one(tmp_path, document)[1]
    assert (problem["reason"], problem["detail"]) == (
        "no_steady_state_after",
        "the check after the method stopped at injector-ready; no dependent deviated",
    )


def test_a_failed_action_after_the_observation_is_an_action_item_not_a_failed_injection(
    tmp_path,
):
    """Ending the fault is an action too: if it failed, the game day still happened, and the
    facilitator must remove the fault by hand."""
    document = journal(EXPORTED)
    (end,) = [r for r in document["run"] if r["activity"]["name"] == "end-cpu-stress"]
    end["output"]["status"] = 500
    (record,) = read_one(tmp_path, document)[0]
    assert record.outcome == "failed"
    assert record.action_items.endswith("action failed after the injection: end-cpu-stress")


@pytest.mark.parametrize(
    ("start", "day"),
    [
        ("2026-10-14T23:30:00-05:00", date(2026, 10, 15)),  # the UTC date
        ("2026-10-14T23:30:00", date(2026, 10, 14)),  # naive: taken as UTC
        ("2026-10-14T09:02:51.123456+00:00", date(2026, 10, 14)),
    ],
)
def test_the_exercise_date_is_the_utc_date_of_the_start(tmp_path, start, day):
    document = journal(PASSED) | {"start": start}
    assert read_one(tmp_path, document)[0][0].day == day


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"start": None}, "no_start_time"),
        ({"start": "last tuesday"}, "no_start_time"),
        ({"status": None}, "unknown_status"),
        ({"status": "running"}, "unknown_status"),
        ({"experiment": {"title": "no whatif keys", "method": []}}, "not_from_whatif"),
    ],
)
def test_journals_that_cannot_be_placed_are_quarantined(tmp_path, change, reason):
    assert [q["reason"] for q in read_one(tmp_path, journal(PASSED) | change)[1]] == [reason]


def test_the_scenario_is_found_by_tags_when_the_configuration_lost_it(tmp_path):
    document = journal(CASCADE)
    config = document["experiment"]["configuration"]
    document["experiment"]["configuration"] = {"whatif_team": {"type": "env", "key": "TEAM"}}
    (record,) = read_one(tmp_path, document)[0]
    assert (record.scenario, record.service, record.mode, record.team) == (
        "redisservice--capacity",
        "redisservice",
        "capacity",
        "",  # resolved at run time: not in the journal
    )
    document["experiment"]["tags"] = ["whatif"]
    document["experiment"]["configuration"] = config | {"whatif_service": ""}
    record = read_one(tmp_path, document)[0][0]  # the service from the id service--mode
    assert (record.service, record.mode) == ("redisservice", "capacity")


def test_a_journal_copied_twice_counts_once(tmp_path):
    text = (DATA / PASSED).read_text(encoding="utf-8")
    for folder in ("a", "b/backup"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "journal.json").write_text(text, encoding="utf-8")
    used, quarantined = journals.read_journals(str(tmp_path))
    assert len(used) == 1 and [q["reason"] for q in quarantined] == ["duplicate_journal"]
    assert quarantined[0]["detail"] == f"the same run as {tmp_path / 'a' / 'journal.json'}"


@pytest.mark.parametrize(
    "damage",
    [
        {"steady_states": []},
        {"steady_states": {"before": [], "after": "met", "during": {}}},
        {"run": {"inject": "done"}},
        {"run": ["inject", None]},
        {"rollbacks": ["heal"]},
        {"experiment": {"configuration": [], "tags": "whatif", "method": None}},
        {"experiment": {"configuration": {"whatif_scenario": "mysql--capacity"}, "tags": None}},
    ],
)
def test_a_hand_edited_journal_is_judged_or_quarantined_never_a_crash(tmp_path, damage):
    used, quarantined = read_one(tmp_path, journal(PASSED) | damage)
    assert len(used) + len(quarantined) == 1
    assert all(r.outcome in readiness.OUTCOMES for r in used)


def test_exercise_rows_are_read_by_readiness_unchanged(tmp_path):
    """The rows go through readiness.load_exercises like a tabletop's log; the journal
    without a team takes the trigger's owner when the topology names one."""
    records = journals.read_journals(str(DATA))[0]
    rows = journals.as_exercise_rows(records)
    assert list(rows[0]) == list(journals.EXERCISE_COLUMNS)
    assert {r["scenario"] for r in rows} >= {"redisservice:capacity", "zookeeper:network"}
    log = tmp_path / "exercises.csv"

    def load(rows: list[dict[str, str]]) -> tuple[list, list]:
        with log.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=journals.EXERCISE_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        used, _, quarantined = readiness.load_exercises(str(log), services(), AS_OF)
        return used, quarantined

    used, quarantined = load(rows)
    assert [q["reason"] for q in quarantined] == ["missing_team"]  # zookeeper: no whatif_team
    used, quarantined = load(journals.as_exercise_rows(records, {"zookeeper": "platform"}))
    assert quarantined == []
    assert [(e.day.isoformat(), e.service, e.mode, e.team, e.outcome) for e in used] == [
        ("2026-09-16", "redisservice", "capacity", "platform", "failed"),
        ("2026-10-14", "logservice", "capacity", "observability", "partial"),
        ("2026-10-14", "mysql", "capacity", "data", "passed"),
        ("2026-10-14", "redisservice", "capacity", "platform", "failed"),
        ("2026-10-14", "zookeeper", "network", "platform", "partial"),
        ("2026-11-04", "redisservice", "capacity", "platform", "failed"),
        ("2026-11-18", "redisservice", "capacity", "platform", "partial"),
        ("2026-11-25", "redisservice", "capacity", "platform", "failed"),
    ]
    assert {e.facilitator for e in used} == {"chaostoolkit"}
    # what the game day does to the selection of scenarios (readiness.FACTORS)
    today = AS_OF.date()
    assert readiness.selection_factor(used, "redisservice", "capacity", today)[0] == 1.5
    assert readiness.selection_factor(used, "mysql", "capacity", today)[0] == 0.5
    assert readiness.selection_factor(used, "logservice", "capacity", today)[0] == 1.0
    assert readiness.selection_factor(used, "mysql", "database", today)[0] == 1.2


def test_cascade_evidence_is_one_trial_per_watched_dependent_that_was_observed():
    records = by_file(journals.read_journals(str(DATA))[0])
    evidence = {name: journals.cascade_evidence([r]) for name, r in records.items()}
    exported = [
        ("redisservice", "webservice", True),
        ("redisservice", "dbservice", False),
        ("redisservice", "logservice", False),
        ("redisservice", "mobservice", True),
    ]
    assert evidence == {
        PASSED: [("mysql", "dbservice", False)],
        CASCADE: [
            ("redisservice", "dbservice", False),
            ("redisservice", "mobservice", True),
            ("redisservice", "webservice", True),
        ],
        CONTAINED: [("logservice", "webservice", False)],
        RECOVERED: [("zookeeper", "mobservice", True), ("zookeeper", "redisservice", False)],
        # webservice was never checked: no trial rather than a miss
        HYPOTHESIS_ONLY: [
            ("redisservice", "dbservice", False),
            ("redisservice", "mobservice", True),
        ],
        CONTINUOUS: [("redisservice", "dbservice", False), ("redisservice", "mobservice", True)],
        EXPORTED_RECOVERED: exported,
        EXPORTED: exported,
    }
    # only where the trigger itself was seen deviating (the injection was not absorbed)
    assert journals.cascade_evidence(records.values(), require_trigger_deviated=True) == [
        ("logservice", "webservice", False),
        *exported,
        *exported,
    ]
    # every trial of the sample's journals is an edge of its topology (dependency, dependent)
    with GAIA_TOPOLOGY.open(encoding="utf-8") as f:
        edges = {(d, row["service"]) for row in csv.DictReader(f)
                 for d in row["depends_on"].split(";") if d}  # fmt: skip
    assert {(u, v) for trials in evidence.values() for u, v, _ in trials} <= edges


@pytest.fixture
def loopback() -> Iterator[int]:
    """A loopback stand-in of the Kubernetes API and of the services' health checks: GET
    /health/<service> answers 503 while the service is broken, any other GET 200 (the
    injector's gate); POST (the fault) breaks mobservice and webservice; DELETE (the fault's
    end) heals mobservice only."""
    broken: set[str] = set()

    class Handler(BaseHTTPRequestHandler):
        def answer(self, code: int) -> None:
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:
            service = self.path.rsplit("/", 1)[-1] if self.path.startswith("/health/") else ""
            self.answer(503 if service in broken else 200)

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            broken.update({"mobservice", "webservice"})
            self.answer(201)

        def do_DELETE(self) -> None:
            broken.discard("mobservice")
            self.answer(200)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_a_journal_chaoslib_writes_now_is_read_as_the_fixtures_are(tmp_path, loopback):
    """The installed chaostoolkit-lib runs an exported experiment (the one kept beside the
    2026-11-25 journal), armed as an operator would with --var, against the loopback
    stand-in: the journal it writes reads back as documented."""
    pytest.importorskip("chaoslib")
    from chaoslib.experiment import ensure_experiment_is_valid, run_experiment

    experiment = json.loads((DATA / EXPORTED).with_name("experiment.json").read_text())
    config = experiment["configuration"]
    config |= {"k8s_api": f"http://127.0.0.1:{loopback}", "fault_seconds": 0}
    config |= {"recovery_seconds": 0, "fault_expiry": "60s"}
    for key in [k for k in config if k.startswith("health_url_")]:
        config[key] = f"http://127.0.0.1:{loopback}/health/{key.removeprefix('health_url_')}"
    ensure_experiment_is_valid(experiment)
    written = run_experiment(experiment, settings={})  # what chaos run calls
    (record,) = read_one(tmp_path, json.loads(json.dumps(written, default=str)))[0]
    assert record.watched == ("redisservice", "webservice", "dbservice", "logservice", "mobservice")
    assert (record.outcome, record.deviated, record.deviated_during, record.unobserved) == (
        "failed",
        ("webservice",),
        ("mobservice",),
        (),
    )
    assert journals.cascade_evidence([record]) == [
        ("redisservice", "webservice", True),
        ("redisservice", "dbservice", False),
        ("redisservice", "logservice", False),
        ("redisservice", "mobservice", True),
    ]
    assert record.day == datetime.fromisoformat(written["start"]).astimezone(UTC).date()
