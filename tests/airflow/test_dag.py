"""The DAG: parses cleanly and fast, is configured for unattended weekly runs, and runs end to
end with `dag.test()` in a throw-away AIRFLOW_HOME, publishing the report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from shared import PROJECT
from whatif.publish import safe_run_id

pytestmark = pytest.mark.airflow

DAGS = PROJECT / "dags"


def airflow_env(home: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        # dag.test() of Airflow 3.3.2 crashes after a successful run of a DAG with a deadline
        # (see the DAG file); the real-scheduler test (test_scheduler.py) keeps it on.
        "WHATIF_EXPECTED_RUN_MINUTES": "0",
        "PYTHONPATH": str(PROJECT / "plugins"),
        "GX_ANALYTICS_ENABLED": "False",
        **extra,
    }


def run_python(code: str, env: dict[str, str], *args: str, timeout: int = 300) -> str:
    """Run `code` in a fresh interpreter (Airflow reads its config once per process)."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory) -> Path:
    """A fresh SQLite metadata database, as `make run` sets up."""
    home = tmp_path_factory.mktemp("airflow_home")
    airflow = Path(sys.executable).parent / "airflow"
    result = subprocess.run(
        [str(airflow), "db", "migrate"],
        env=airflow_env(home),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return home


def test_dag_imports_without_errors_and_is_set_up_for_weekly_runs(tmp_path):
    out = run_python(
        """
        import json, sys, time
        from airflow.dag_processing.dagbag import DagBag
        started = time.perf_counter()
        bag = DagBag(dag_folder=sys.argv[1])
        dag = bag.dags["what_if_scenarios"]
        print(json.dumps({
            "errors": {k: str(v) for k, v in bag.import_errors.items()},
            "seconds": time.perf_counter() - started,
            "schedule": str(dag.schedule),
            "catchup": dag.catchup,
            "tags": sorted(dag.tags),
            "tasks": [t.task_id for t in dag.topological_sort()],
            "owners": sorted({t.owner for t in dag.tasks}),
            "retries": sorted({t.retries for t in dag.tasks}),
            "params": sorted(dag.params.keys()),
            "narrate": [
                (t.pool, t.max_active_tis_per_dagrun) for t in dag.tasks
                if t.task_id == "narrate_scenario"
            ],
            "on_failure": type(dag.on_failure_callback).__name__,
            "deadline": [
                [type(d.reference).__name__, d.interval.total_seconds(),
                 d.callback.kwargs["what"]] for d in dag.deadline
            ],
            "dags": sorted(bag.dags),
            "params_schema": {k: dag.params.get_param(k).schema for k in
                              ("event_start", "focus_services", "narrator", "scenarios")},
        }))
    """,
        airflow_env(tmp_path, WHATIF_EXPECTED_RUN_MINUTES="90"),
        str(DAGS),
    )
    info = json.loads(out.strip().splitlines()[-1])
    # Alerts: a failed run, and a run still going 90 minutes after it was queued.
    assert info["on_failure"] == "WebhookAlert"
    assert info["deadline"] == [
        ["DagRunQueuedAtDeadline", 5400.0, "run not finished 90 minutes after it was queued"]
    ]
    assert info["dags"] == ["what_if_event_calendar", "what_if_report_to_chat", "what_if_scenarios"]
    # The trigger form validates its params by JSON schema.
    schema = info["params_schema"]
    assert schema["event_start"]["format"] == "date" and schema["scenarios"]["maximum"] == 50
    assert schema["narrator"]["enum"] == ["template", "llm", "ollama", "openai"]
    assert schema["focus_services"]["type"] == "array"
    assert info["errors"] == {}
    assert info["schedule"] == "0 6 * * 1"
    assert info["catchup"] is False
    assert {"reliability", "what-if"} <= set(info["tags"])
    assert info["tasks"] == [
        "extract",
        "validate",
        "fit",
        "simulate",
        "plan_narration",
        "narrate_scenario",
        "assemble_narration",
        "report",
        "publish",
    ]
    # One mapped task per scenario, in the LLM pool, at most WHATIF_LLM_MAX_CONCURRENCY at once.
    assert info["narrate"] == [["whatif_llm", 4]]
    assert info["owners"] == ["sre-platform"] and info["retries"] == [2]
    assert {
        "seed",
        "scenarios",
        "horizon_days",
        "what_if",
        "event_name",
        "narrator",
        "publish_targets",
    } <= set(info["params"])


# What parsing a DAG file may import of the engine: the parameter spec the trigger form is made
# from, and what it needs (no pandas, no pydantic models, no stage).
PARSE_TIME_ENGINE = ["whatif", "whatif.environment", "whatif.errors", "whatif.params"]


@pytest.mark.parametrize("dag_file", sorted(p.name for p in DAGS.glob("*.py")))
def test_dag_files_import_only_the_parameter_spec_of_the_engine_at_parse_time(tmp_path, dag_file):
    out = run_python(
        """
        import importlib.util, json, sys
        spec = importlib.util.spec_from_file_location("dag_file", sys.argv[1])
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        print(json.dumps({
            "engine": sorted(m for m in sys.modules if m.split(".")[0] == "whatif"),
            "heavy": [m for m in ("great_expectations", "pandas", "scipy", "matplotlib")
                      if m in sys.modules],
        }))
    """,
        airflow_env(tmp_path),
        str(DAGS / dag_file),
    )
    imported = json.loads(out.strip().splitlines()[-1])
    assert imported["heavy"] == []
    assert set(imported["engine"]) <= set(PARSE_TIME_ENGINE), imported["engine"]


def test_dag_test_runs_every_stage_and_publishes_the_report(airflow_home, tmp_path):
    reports = tmp_path / "reports"
    conf = {"draws": 300, "scenarios": 5, "what_if": ["dns"], "publish_targets": [reports.as_uri()]}
    env = airflow_env(airflow_home, WHATIF_WORK_DIR=str(tmp_path / "work"))
    out = run_python(
        """
        import json, sys
        from airflow.dag_processing.dagbag import DagBag
        dag = DagBag(dag_folder=sys.argv[1]).dags["what_if_scenarios"]
        run = dag.test(run_conf=json.loads(sys.argv[2]))
        print("STATE", run.state)
    """,
        env,
        str(DAGS),
        json.dumps(conf),
        timeout=600,
    )
    assert "STATE success" in out
    latest = reports / "latest"
    for name in (
        "report.html", "report.md", "scenarios.json", "model.json", "validation.json",
        "readiness.json",  # the param exercises defaults to the sample log
    ):  # fmt: skip
        assert (latest / name).stat().st_size > 0, name
    runs = [p for p in reports.glob("*/*") if p.parent.name != "latest"]
    assert (
        len(runs) == 1
        and (runs[0] / "scenarios.json").read_bytes() == (latest / "scenarios.json").read_bytes()
    )
    doc = json.loads((latest / "scenarios.json").read_text())
    assert len(doc["scenarios"]) == 5 and doc["draws"] == 300
    # The run's identity is Airflow's run id, kept in scenarios.json: publish's run folder.
    assert doc["run"]["id"].startswith("manual__") and runs[0].parent.name == doc["run"]["date"]
    assert runs[0].name == safe_run_id(doc["run"]["id"])
    assert any(s["forced"] and s["trigger"]["service"] == "dns" for s in doc["scenarios"])
    assert all(s["title"].startswith("What if") for s in doc["scenarios"])


def test_a_user_error_fails_the_run_without_retries_and_alerts(airflow_home, tmp_path):
    """A missing file fails the run at once, and the failure is posted to the chat webhook of
    the connection whatif_alerts, naming the run, the task and the error."""
    from fakes.loopback import chat_webhook

    conf = {
        "incidents": str(tmp_path / "missing.csv"),
        "publish_targets": [(tmp_path / "reports").as_uri()],
    }
    with chat_webhook() as (url, posted):
        env = airflow_env(
            airflow_home,
            WHATIF_WORK_DIR=str(tmp_path / "work"),
            AIRFLOW_CONN_WHATIF_ALERTS=json.dumps({"conn_type": "http", "host": url}),
        )
        out = run_python(
            """
            import json, sys
            from airflow.dag_processing.dagbag import DagBag
            dag = DagBag(dag_folder=sys.argv[1]).dags["what_if_scenarios"]
            run = dag.test(run_conf=json.loads(sys.argv[2]))
            extract = run.get_task_instance("extract")
            print("STATE", run.state, extract.state, extract.try_number)
            """,
            env,
            str(DAGS),
            json.dumps(conf),
            timeout=600,
        )
    assert "STATE failed failed 1" in out
    assert not (tmp_path / "reports").exists()
    assert len(posted) == 1, out[-3000:]
    text = posted[0]["text"]
    assert text.startswith(":rotating_light: what_if_scenarios: run failed") and "manual__" in text


def _run_dag(home: Path, tmp_path: Path, conf: dict, **env: str) -> tuple[str, Path]:
    reports = tmp_path / "reports"
    conf = {"draws": 200, "scenarios": 3, "publish_targets": [reports.as_uri()], **conf}
    out = run_python(
        """
        import json, sys
        from airflow.dag_processing.dagbag import DagBag
        dag = DagBag(dag_folder=sys.argv[1]).dags["what_if_scenarios"]
        run = dag.test(run_conf=json.loads(sys.argv[2]))
        print("STATE", run.state)
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session
        with create_session() as session:
            row = session.query(XComModel).filter_by(
                dag_id=run.dag_id, run_id=run.run_id, task_id="fit"
            ).one()
            print("FIT_XCOM", json.dumps(row.value))
    """,
        airflow_env(home, WHATIF_WORK_DIR=str(tmp_path / "work"), **env),
        str(DAGS),
        json.dumps(conf),
        timeout=600,
    )
    return out, reports / "latest"


def test_dag_reads_object_storage_through_the_storage_connection(airflow_home, s3_server, tmp_path):
    connection = {
        "conn_type": "aws",
        "login": "test",
        "password": "test",
        "extra": {"endpoint_url": s3_server, "region_name": "us-east-1"},
    }
    out, latest = _run_dag(
        airflow_home,
        tmp_path,
        {
            "incidents": "s3://data/exports/incidents.csv",
            "topology": "s3://data/exports/topology.csv",
            "publish_targets": [(tmp_path / "reports").as_uri(), "s3://data/published"],
        },
        AIRFLOW_CONN_WHATIF_DATA=json.dumps(connection),
        AIRFLOW_CONN_WHATIF_REPORTS=json.dumps(connection),
        WHATIF_WORK_URL="s3://data/whatif-work",
    )
    assert "STATE success" in out
    validation = json.loads((latest / "validation.json").read_text())
    assert validation["inputs"]["incidents"]["path"] == "s3://data/exports/incidents.csv"
    assert validation["inputs"]["incidents"]["rows_read"] == 677
    # The stages exchanged their files through object storage: XCom held only the location.
    fit_xcom = json.loads(out.split("FIT_XCOM", 1)[1].strip().splitlines()[0])
    assert isinstance(fit_xcom, str) and fit_xcom.startswith("s3://data/whatif-work/manual__")
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=s3_server,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
    )
    prefix = fit_xcom.removeprefix("s3://data/")
    keys = {o["Key"] for o in client.list_objects_v2(Bucket="data", Prefix=prefix)["Contents"]}
    assert {f"{prefix}/model.json", f"{prefix}/_stage/incidents.parquet"} <= keys
    model = client.get_object(Bucket="data", Key=f"{prefix}/model.json")["Body"].read()
    assert model == (latest / "model.json").read_bytes()
    assert not (tmp_path / "work").exists()  # nothing went through the local work folder
    # Published to S3 too, through the connection whatif_reports: the same files as the
    # local target, the manifest last.
    published = {
        o["Key"] for o in client.list_objects_v2(Bucket="data", Prefix="published/")["Contents"]
    }
    local = {p.relative_to(latest).as_posix() for p in latest.rglob("*") if p.is_file()}
    assert {k.removeprefix("published/latest/") for k in published if "/latest/" in k} == local
    manifest = client.get_object(Bucket="data", Key="published/latest/manifest.json")["Body"]
    assert json.loads(manifest.read())["files"].keys() == local - {"manifest.json"}


def test_dag_reads_sql_through_the_database_connection(airflow_home, loaded_database, tmp_path):
    out, latest = _run_dag(
        airflow_home,
        tmp_path,
        {"source": "sql", "topology_from_sql": True},
        AIRFLOW_CONN_WHATIF_INCIDENTS_DB=loaded_database,
    )
    assert "STATE success" in out
    validation = json.loads((latest / "validation.json").read_text())
    assert validation["inputs"]["incidents"]["path"] == (
        "connection whatif_incidents_db (extract_incidents.sql)"
    )
    assert validation["inputs"]["topology"]["rows_read"] == 28


def test_dag_imports_the_catalog_and_the_incidents_through_their_connections(
    airflow_home, tmp_path
):
    from fakes.incident_servers import IIO_TOKEN, iio_incident, incident_io_server

    shop = PROJECT / "tests" / "data" / "backstage" / "shop"
    now = datetime.now(UTC)
    incidents = [
        iio_incident(n, (now - timedelta(days=3 * n)).isoformat(), services=services)
        for n, services in enumerate(
            [("orders",), ("payments", "orders"), ("catalog-db", "catalog"), ("orders-db",)] * 5,
            start=1,
        )
    ]
    with incident_io_server(incidents=incidents) as server:
        out, latest = _run_dag(
            airflow_home,
            tmp_path,
            {
                "topology_source": "backstage",
                "incident_source": "incident-io",
                "allow_external_dependencies": True,
                "export_formats": ["chaostoolkit", "chaosmesh"],
            },
            AIRFLOW_CONN_WHATIF_BACKSTAGE=json.dumps(
                {"conn_type": "http", "extra": {"path": str(shop)}}
            ),
            AIRFLOW_CONN_WHATIF_INCIDENTIO=json.dumps(
                {"conn_type": "http", "host": server.url, "password": IIO_TOKEN}
            ),
        )
    assert "STATE success" in out, out[-3000:]
    assert IIO_TOKEN not in out
    validation = json.loads((latest / "validation.json").read_text())
    assert validation["inputs"]["topology"]["path"] == f"backstage {shop}"
    assert validation["inputs"]["incidents"]["path"] == f"incident-io {server.url}"
    assert validation["inputs"]["incidents"]["rows_read"] == sum(
        len(i["custom_field_entries"][0]["values"]) for i in incidents
    )
    # Every request of the import carried the connection's key; the run read every page.
    assert all(r["headers"]["Authorization"] == f"Bearer {IIO_TOKEN}" for r in server.requests)
    # The game-day experiments are published beside the report, and linked from it.
    index = json.loads((latest / "experiments" / "index.json").read_text())
    assert index["formats"] == ["chaostoolkit", "chaosmesh"]
    for entry in index["experiments"]:
        assert entry["skipped"] or (latest / "experiments" / entry["file"]).is_file()
    assert "experiments/chaostoolkit/" in (latest / "report.html").read_text()
    imported = list((tmp_path / "work").rglob("imported_topology.csv"))
    expected = (PROJECT / "tests" / "data" / "backstage" / "shop-topology.csv").read_text()
    assert len(imported) == 1 and imported[0].read_text() == expected


def test_dag_reads_an_incident_tool_export_through_a_mapping(airflow_home, tmp_path):
    export = PROJECT / "tests" / "data" / "exports" / "pagerduty.csv"
    out, latest = _run_dag(
        airflow_home, tmp_path, {"incidents": str(export), "mapping": "pagerduty"}
    )
    assert "STATE success" in out
    validation = json.loads((latest / "validation.json").read_text())
    assert validation["inputs"]["incidents"]["format"] == "mapping:pagerduty"
    assert validation["inputs"]["incidents"]["rows_used"] > 0


CANARY = "sk-canary-0b8f2d4e6c"


def test_each_scenario_is_narrated_by_a_mapped_task_through_the_llm_connection(
    airflow_home, tmp_path
):
    """narrator=llm: the connection whatif_llm gives the server, the model and the key (its
    password); one mapped task per scenario; the key never lands in a log, XCom, the work
    files, the cache or the reports."""
    from fakes.llm_servers import llm_server

    with llm_server() as server:
        connection = {
            "conn_type": "http",
            "host": f"{server.url}/v1",
            "password": CANARY,
            "extra": {"provider": "openai", "model": "tiny", "max_concurrency": 2},
        }
        out, latest = _run_dag(
            airflow_home,
            tmp_path,
            {"narrator": "llm", "scenarios": 4},
            AIRFLOW_CONN_WHATIF_LLM=json.dumps(connection),
        )
        headers = {r["headers"].get("Authorization") for r in server.chat_requests()}
        calls = len(server.chat_requests())
    assert "STATE success" in out
    assert headers == {f"Bearer {CANARY}"} and calls == 4
    doc = json.loads((latest / "scenarios.json").read_text())
    assert [s["narrator"] for s in doc["scenarios"]] == ["openai:tiny"] * 4
    assert doc["narration"]["calls"] == 4 and doc["narration"]["fallbacks"] == 0
    mapped = run_python(
        """
        import json
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session
        from airflow.models.dagrun import DagRun
        with create_session() as session:
            last = session.query(DagRun).order_by(DagRun.start_date.desc()).first()
            rows = session.query(TaskInstance).filter_by(
                task_id="narrate_scenario", run_id=last.run_id
            ).all()
            print("MAPPED", sorted((t.map_index, t.state, t.rendered_map_index) for t in rows))
        """,
        airflow_env(airflow_home),
    )
    assert (mapped.count("success") == 4 and "db--" in mapped) or "--" in mapped
    written = [p for folder in (airflow_home, tmp_path) for p in folder.rglob("*") if p.is_file()]
    leaked = [str(p) for p in written if CANARY.encode() in p.read_bytes()]
    assert leaked == [] and out.count(CANARY) == 0


def test_the_published_report_is_an_asset_event_that_the_chat_consumer_posts(
    airflow_home, tmp_path
):
    """publish writes the folder target and the Confluence page of the connection
    whatif_confluence, then emits the Asset event (its extra: where the report went, the top
    scenarios); what_if_report_to_chat, scheduled on that Asset, posts them to the
    whatif_chat webhook. The Confluence token stays out of every file and log."""
    from fakes.confluence_server import ConfluenceServer
    from fakes.loopback import chat_webhook

    hook = chat_webhook()
    url, posted = hook.__enter__()
    wiki = ConfluenceServer().start()
    reports = tmp_path / "reports"
    env = airflow_env(
        airflow_home,
        WHATIF_WORK_DIR=str(tmp_path / "work"),
        WHATIF_REPORTS_URL=reports.as_uri(),
        AIRFLOW_CONN_WHATIF_CHAT=json.dumps({"conn_type": "http", "host": url}),
        AIRFLOW_CONN_WHATIF_CONFLUENCE=json.dumps(
            {
                "conn_type": "http",
                "host": wiki.url,
                "login": wiki.user,
                "password": wiki.token,
                "extra": {"space": "OPS"},
            }
        ),
    )
    try:
        out = run_python(
            """
            import json, sys
            from airflow.dag_processing.dagbag import DagBag
            bag = DagBag(dag_folder=sys.argv[1])
            main = bag.dags["what_if_scenarios"].test(run_conf=json.loads(sys.argv[2]))
            print("MAIN", main.state)
            from airflow.models.asset import AssetEvent
            from airflow.utils.session import create_session
            with create_session() as session:
                event = session.query(AssetEvent).order_by(AssetEvent.id.desc()).first()
                print("EXTRA", json.dumps(event.extra))
            consumer = bag.dags["what_if_report_to_chat"]
            print("ON_ASSET", repr(consumer.timetable.asset_condition))
            run = consumer.test()
            print("CONSUMER", run.state)
            """,
            env,
            str(DAGS),
            json.dumps(
                {
                    "draws": 200,
                    "scenarios": 3,
                    "publish_targets": [reports.as_uri(), "confluence"],
                }
            ),
            timeout=600,
        )
    finally:
        hook.__exit__(None, None, None)
        wiki.stop()
    assert "MAIN success" in out and "CONSUMER success" in out
    assert "what_if_report" in out.split("ON_ASSET", 1)[1].splitlines()[0]
    extra = json.loads(out.split("EXTRA ", 1)[1].splitlines()[0])
    assert extra["targets"][0]["latest"].endswith("/latest") and len(extra["top"]) == 3
    published = json.loads((reports / "latest" / "scenarios.json").read_text())["run"]
    assert extra["run_id"] == published["id"] and extra["run_id"].startswith("manual__")
    assert len(posted) == 1
    text = posted[0]["text"]
    assert f"({extra['run_id']})" in text
    assert (
        extra["top"][0]["title"] in text and f"{extra['targets'][0]['latest']}/report.html" in text
    )
    assert extra["confluence"].startswith(wiki.url) and f"Confluence: {extra['confluence']}" in text
    pages = [p for p in wiki.pages.values() if p["title"].startswith("What-if scenarios – ")]
    assert len(pages) == 1 and extra["top"][0]["title"] in pages[0]["body"]
    written = [p for folder in (airflow_home, tmp_path) for p in folder.rglob("*") if p.is_file()]
    assert not [p for p in written if wiki.token.encode() in p.read_bytes()]
    assert wiki.token not in out
    latest = reports / "latest"
    assert (latest / "manifest.json").exists()
    assert sorted(p.name for p in (latest / "tabletop").iterdir()) == sorted(
        f"{s['id']}.md" for s in extra["top"]
    )


def test_the_event_calendar_triggers_one_pre_event_run_per_event(airflow_home, tmp_path):
    """An event due today gets one run of what_if_scenarios with its params; the next day's
    check finds it and skips; an event not yet due gets nothing."""
    today = datetime.now(UTC).date()
    start = today + timedelta(days=5)
    calendar = tmp_path / "events.yaml"
    calendar.write_text(
        "events:\n"
        f"  - {{name: Game Day, start: {start}, end: {start}, traffic_multiplier: 2.5,"
        " focus_services: [checkout], lead_days: 7}\n"
        f"  - {{name: Far Away, start: {today.replace(year=today.year + 1)},"
        f" end: {today.replace(year=today.year + 1)}, lead_days: 3}}\n"
    )
    out = run_python(
        """
        import json, sys
        from airflow.dag_processing.dagbag import DagBag
        bag = DagBag(dag_folder=sys.argv[1])
        calendar = bag.dags["what_if_event_calendar"]
        for _ in range(2):
            run = calendar.test()
            trigger = [t for t in run.get_task_instances() if t.task_id == "trigger_pre_event_run"]
            print("CALENDAR", run.state, sorted(str(t.state) for t in trigger))
        from airflow.models.dagrun import DagRun
        from airflow.utils.session import create_session
        with create_session() as session:
            runs = session.query(DagRun).filter(DagRun.dag_id == "what_if_scenarios",
                                                DagRun.run_id.like("event__%")).all()
            print("TRIGGERED", json.dumps([[r.run_id, r.conf] for r in runs]))
        """,
        airflow_env(airflow_home, WHATIF_EVENTS_FILE=str(calendar)),
        str(DAGS),
    )
    states = [line.split(" ", 2)[1:] for line in out.splitlines() if line.startswith("CALENDAR ")]
    assert states == [["success", "['success']"], ["success", "['skipped']"]]
    triggered = json.loads(out.split("TRIGGERED ", 1)[1].splitlines()[0])
    assert triggered == [
        [
            f"event__game-day__{start}",
            {
                "event_name": "Game Day",
                "event_start": str(start),
                "event_end": str(start),
                "traffic_multiplier": 2.5,
                "focus_services": ["checkout"],
                "what_if": [],
            },
        ]
    ]
