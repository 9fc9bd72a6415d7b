"""The CLI end to end: artifacts and their contracts, determinism, exit codes and messages."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from shared import (
    NOTEBOOK_INCIDENTS,
    NOTEBOOK_TOPOLOGY,
    PROJECT,
    SAMPLE_AS_OF,
    SAMPLE_INCIDENTS,
    SAMPLE_TOPOLOGY,
    write,
)
from whatif.schemas import ModelDoc, ScenariosDoc

ARTIFACTS = ("report.md", "report.html", "scenarios.json", "model.json", "validation.json")


def sample_run(run_cli, out: Path, *extra: str) -> tuple[int, str, str]:
    return run_cli(
        "run",
        "--incidents",
        SAMPLE_INCIDENTS,
        "--topology",
        SAMPLE_TOPOLOGY,
        "--out",
        out,
        "--as-of",
        SAMPLE_AS_OF,
        "--draws",
        "500",
        *extra,
    )


@pytest.fixture(scope="module")
def sample_out(tmp_path_factory) -> Path:
    """One full run on the sample data, shared by the checks below."""
    from whatif.cli import main

    out = tmp_path_factory.mktemp("run")
    code = main(
        [
            "run",
            "--incidents",
            str(SAMPLE_INCIDENTS),
            "--topology",
            str(SAMPLE_TOPOLOGY),
            "--out",
            str(out),
            "--as-of",
            SAMPLE_AS_OF,
            "--draws",
            "500",
            "--what-if",
            "payment-provider:dependency",
        ]
    )
    assert code == 0
    return out


def test_run_writes_every_artifact(sample_out):
    for name in ARTIFACTS:
        assert (sample_out / name).stat().st_size > 0, name


def test_scenarios_json_meets_the_contract(sample_out):
    raw = json.loads((sample_out / "scenarios.json").read_text())
    doc = ScenariosDoc.model_validate(raw)
    assert raw["schema_version"] == 2 and raw["seed"] == 42 and raw["horizon_days"] == 7
    assert doc.narration.narrator == "template" and doc.narration.scenarios == 8
    topology = SAMPLE_TOPOLOGY.read_text().splitlines()
    services = {line.split(",")[0] for line in topology[1:]}
    assert doc.inputs["services"] == len(services)
    assert len(doc.scenarios) == 8
    for scenario in doc.scenarios:
        assert scenario.title.startswith("What if")
        assert 0 < scenario.probability < 1
        assert set(scenario.affected_services) <= services
        assert set(scenario.user_facing_affected) <= set(scenario.affected_services)
        assert scenario.trigger.service in scenario.affected_services
        assert scenario.expected_duration_minutes.p90 >= scenario.expected_duration_minutes.p50
        assert scenario.risk_score == pytest.approx(
            scenario.probability * scenario.impact.impact_score, rel=1e-4
        )
    forced = [s for s in doc.scenarios if s.forced]
    assert [s.id for s in forced] == ["payment-provider--dependency"]


def test_model_json_meets_the_contract(sample_out):
    doc = ModelDoc.model_validate_json((sample_out / "model.json").read_text())
    assert doc.window.days == pytest.approx(730)
    for service in doc.services:
        rate = service.root_rate_per_day
        assert 0 < rate.p05 <= rate.mean <= rate.p95
        assert service.root_incidents <= service.incidents
    assert any(e.evidence.hits > 0 for e in doc.edges)
    for edge in doc.edges:
        assert edge.evidence.hits <= edge.evidence.exposures


def test_validation_json_accounts_for_every_row(sample_out):
    doc = json.loads((sample_out / "validation.json").read_text())
    incidents = doc["inputs"]["incidents"]
    rows = len(SAMPLE_INCIDENTS.read_text().strip().splitlines()) - 1
    assert incidents["rows_read"] == rows
    assert incidents["rows_used"] + incidents["rows_quarantined"] == rows
    assert sum(incidents["quarantined_by_reason"].values()) == incidents["rows_quarantined"]


def test_reports_show_the_scenarios_and_lead_with_the_risk_matrix(sample_out):
    html = (sample_out / "report.html").read_text()
    markdown = (sample_out / "report.md").read_text()
    scenarios = json.loads((sample_out / "scenarios.json").read_text())["scenarios"]
    assert html.index("<svg") < html.index(scenarios[0]["title"].replace("'", "&#39;"))
    for scenario in scenarios:
        assert scenario["title"] in markdown
    assert "```mermaid" in markdown


def test_same_seed_gives_byte_identical_scenarios_apart_from_generated_at(run_cli, tmp_path):
    def scenarios(out: Path, seed: str) -> dict:
        code, _, err = sample_run(run_cli, out, "--seed", seed)
        assert code == 0, err
        document = json.loads((out / "scenarios.json").read_text())
        document.pop("generated_at")
        return document

    first, again, other = (
        scenarios(tmp_path / "a", "7"),
        scenarios(tmp_path / "b", "7"),
        scenarios(tmp_path / "c", "8"),
    )
    assert json.dumps(first, sort_keys=True) == json.dumps(again, sort_keys=True)
    assert first != other
    assert (tmp_path / "a" / "model.json").read_bytes() == (
        tmp_path / "b" / "model.json"
    ).read_bytes()


def test_event_window_sets_the_horizon(run_cli, tmp_path):
    code, _, err = sample_run(
        run_cli,
        tmp_path,
        "--event-name",
        "Black Friday",
        "--event-start",
        "2026-11-27",
        "--event-end",
        "2026-11-30",
        "--traffic-multiplier",
        "3",
    )
    assert code == 0, err
    doc = json.loads((tmp_path / "scenarios.json").read_text())
    assert doc["horizon_days"] == 4
    assert doc["event"] == {
        "name": "Black Friday",
        "start": "2026-11-27",
        "end": "2026-11-30",
        "traffic_multiplier": 3.0,
    }
    assert "Black Friday" in (tmp_path / "report.md").read_text()


def test_notebook_format_runs_and_warns_once_about_the_cycle(run_cli, tmp_path, caplog):
    code, _, err = run_cli(
        "run",
        "--incidents",
        NOTEBOOK_INCIDENTS,
        "--topology",
        NOTEBOOK_TOPOLOGY,
        "--out",
        tmp_path,
        "--as-of",
        "2026-01-01",
        "--draws",
        "200",
        "--scenarios",
        "4",
    )
    assert code == 0, err
    logged = [r.getMessage() for r in caplog.records]
    assert sum("dependency cycle inventory <-> orders" in m for m in logged) == 1
    assert sum("'dependencies' is read as" in m for m in logged) == 1
    assert not any("_stage" in m for m in logged)  # messages name the user's file
    doc = json.loads((tmp_path / "scenarios.json").read_text())
    assert len(doc["scenarios"]) == 4


def test_stages_chain_through_their_own_commands(run_cli, tmp_path):
    common = [
        "--incidents",
        SAMPLE_INCIDENTS,
        "--topology",
        SAMPLE_TOPOLOGY,
        "--as-of",
        SAMPLE_AS_OF,
    ]
    code, out, _ = run_cli("validate", *common, "--out", tmp_path / "validation.json")
    assert code == 0 and "incidents:" in out
    assert json.loads((tmp_path / "validation.json").read_text())["schema_version"] == 1
    code, _, err = run_cli("fit", *common, "--out", tmp_path / "model.json")
    assert code == 0, err
    code, _, err = run_cli(
        "simulate",
        "--model",
        tmp_path / "model.json",
        "--topology",
        SAMPLE_TOPOLOGY,
        "--out",
        tmp_path / "scenarios.json",
        "--draws",
        "300",
        "--scenarios",
        "3",
    )
    assert code == 0, err
    doc = ScenariosDoc.model_validate_json((tmp_path / "scenarios.json").read_text())
    assert len(doc.scenarios) == 3 and doc.as_of.startswith("2026-11-01")


def test_fit_takes_the_model_settings_and_rejects_bad_ones(run_cli, tmp_path):
    common = ["--incidents", SAMPLE_INCIDENTS, "--topology", SAMPLE_TOPOLOGY, "--as-of"]
    code, _, err = run_cli(
        "fit",
        *common,
        SAMPLE_AS_OF,
        "--out",
        tmp_path / "model.json",
        "--cascade-window-minutes",
        "0",
        "--half-life-days",
        "180",
        "--backtest-folds",
        "3",
    )
    assert code == 0, err
    doc = ModelDoc.model_validate_json((tmp_path / "model.json").read_text())
    assert doc.settings == {
        "cascade_window_minutes": 0.0,
        "half_life_days": 180.0,
        "backtest_horizon_days": 28.0,
        "backtest_folds": 3,
    }
    assert doc.attribution.inferred == 0 and doc.attribution.inference.startswith("off")
    assert doc.backtest.folds == 3
    code, _, err = run_cli("fit", *common, SAMPLE_AS_OF, "--out", "x", "--half-life-days", "-1")
    assert code == 2
    assert err.strip() == (
        "whatif: error: --half-life-days -1: must be positive (use auto, off or a number of days)"
    )
    code, _, err = run_cli("fit", *common, SAMPLE_AS_OF, "--out", "x", "--half-life-days", "soon")
    assert code == 2 and "--half-life-days soon: not a number" in err


def test_missing_file_is_one_line_and_exit_2(run_cli, tmp_path):
    code, _, err = run_cli(
        "run",
        "--incidents",
        tmp_path / "nope.csv",
        "--topology",
        SAMPLE_TOPOLOGY,
        "--out",
        tmp_path / "out",
    )
    assert code == 2
    assert (
        err.strip().splitlines()[-1]
        == f"whatif: error: {tmp_path / 'nope.csv'}: file not found (check the path)"
    )
    assert "Traceback" not in err


def test_hard_validation_failure_names_file_row_and_column(run_cli, tmp_path):
    topology = write(tmp_path, "topology.csv", SAMPLE_TOPOLOGY.read_text() + "dns,,edge,edge\n")
    code, _, err = run_cli("validate", "--incidents", SAMPLE_INCIDENTS, "--topology", topology)
    assert code == 2
    rows = len(SAMPLE_TOPOLOGY.read_text().strip().splitlines()) + 1
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"whatif: error: {topology}, row ")
    assert last == (
        f"whatif: error: {topology}, row {rows}, column service: each service may have one "
        f"row only: 'dns' (rows 2, {rows}) (fix the file and run again; 1 more problem in this "
        "file)"  # its soft_depends_on names 'edge', no service either
    )


def test_bad_arguments_exit_2(run_cli, tmp_path):
    code, _, err = run_cli(
        "run",
        "--incidents",
        SAMPLE_INCIDENTS,
        "--topology",
        SAMPLE_TOPOLOGY,
        "--out",
        tmp_path,
        "--what-if",
        "dns:meteor",
    )
    assert code == 2 and "unknown failure mode 'meteor'" in err
    code, _, err = run_cli(
        "run",
        "--incidents",
        SAMPLE_INCIDENTS,
        "--topology",
        SAMPLE_TOPOLOGY,
        "--out",
        tmp_path,
        "--event-name",
        "Launch",
    )
    assert code == 2 and "--event-start, --event-end" in err
    code, _, _ = run_cli("run", "--incidents", SAMPLE_INCIDENTS)
    assert code == 2


def test_internal_error_is_exit_1_without_traceback(run_cli, tmp_path, monkeypatch):
    from whatif import pipeline

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(pipeline, "run_all", broken)
    code, _, err = sample_run(run_cli, tmp_path)
    assert code == 1
    assert "internal error: RuntimeError: boom" in err and "Traceback" not in err


def test_python_m_whatif_and_the_console_script(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(PROJECT / "plugins")}
    result = subprocess.run(
        [sys.executable, "-m", "whatif", "--version"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0 and result.stdout.startswith("whatif ")
    script = Path(sys.executable).parent / "whatif"
    if script.exists():  # installed by `make` (pip install -e .)
        result = subprocess.run(
            [
                str(script),
                "validate",
                "--incidents",
                str(tmp_path / "x.csv"),
                "--topology",
                str(SAMPLE_TOPOLOGY),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 2 and "file not found" in result.stderr


def test_engine_imports_without_airflow():
    code = "import sys, whatif, whatif.cli, whatif.pipeline; assert 'airflow' not in sys.modules"
    env = {**os.environ, "PYTHONPATH": str(PROJECT / "plugins")}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_a_handler_left_on_a_closed_stream_does_not_break_logging(run_cli, tmp_path):
    """Importing Airflow (for object storage) configures logging on the stderr of that moment;
    a later run in the same process must not log into that stream once it is closed."""
    import io
    import logging

    closed = io.StringIO()
    stale = logging.StreamHandler(closed)
    logging.getLogger().addHandler(stale)
    closed.close()
    try:
        code, _, err = run_cli(  # the notebook topology logs warnings (its cycle)
            "validate",
            "--incidents",
            NOTEBOOK_INCIDENTS,
            "--topology",
            NOTEBOOK_TOPOLOGY,
            "--as-of",
            "2026-01-01",
        )
    finally:
        logging.getLogger().removeHandler(stale)
    assert code == 0
    assert "Logging error" not in err and "Traceback" not in err


CANARY = "sk-canary-5d1e0c7b9a"


def test_an_llm_narrates_through_the_cli_and_the_api_key_never_leaks(tmp_path):
    """Configured by the environment alone (WHATIF_LLM_*), an LLM writes every scenario; the
    key reaches the server and nothing else: not the artifacts, the cache, or the logs."""
    from fakes.llm_servers import llm_server

    out, cache = tmp_path / "out", tmp_path / "cache"
    env = {
        **os.environ,
        "PYTHONPATH": str(PROJECT / "plugins"),
        "WHATIF_LLM_PROVIDER": "ollama",
        "WHATIF_LLM_MODEL": "tiny",
        "WHATIF_LLM_API_KEY": CANARY,
        "WHATIF_LLM_CACHE": str(cache),
    }
    with llm_server() as server:
        env["WHATIF_LLM_URL"] = server.url
        first = subprocess.run(
            [sys.executable, "-m", "whatif", "-v", "run", "--incidents", str(SAMPLE_INCIDENTS),
             "--topology", str(SAMPLE_TOPOLOGY), "--out", str(out), "--as-of", SAMPLE_AS_OF,
             "--draws", "500"],
            env=env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert first.returncode == 0, first.stderr[-2000:]
        run = json.loads((out / "scenarios.json").read_text())["run"]
        calls = len(server.chat_requests())
        again = subprocess.run(
            [sys.executable, "-m", "whatif", "-v", "narrate", str(out), "--report"],
            env=env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert again.returncode == 0, again.stderr[-2000:]
        assert len(server.chat_requests()) == calls == 8  # the re-run made no call
        headers = {r["headers"].get("Authorization") for r in server.chat_requests()}
    assert headers == {f"Bearer {CANARY}"}
    doc = ScenariosDoc.model_validate_json((out / "scenarios.json").read_text())
    assert doc.narration.narrator == "ollama:tiny" and doc.narration.llm_scenarios == 8
    assert doc.narration.cached == 8 and doc.narration.calls == 0
    assert "0 calls, 8 answers from the cache" in again.stdout
    assert all(s.narrator == "ollama:tiny" for s in doc.scenarios)
    assert doc.run is not None and doc.run.model_dump() == run  # narrated again: the same run
    assert "8 of 8 scenarios written by ollama:tiny" in (out / "report.md").read_text()
    logs = first.stdout + first.stderr + again.stdout + again.stderr
    assert "narrate" in logs and CANARY not in logs
    written = [p for p in (*out.rglob("*"), *cache.rglob("*")) if p.is_file()]
    assert len(written) > 20
    assert not [p for p in written if CANARY.encode() in p.read_bytes()]


def test_narrate_needs_a_run_folder_and_an_llm_needs_its_url(run_cli, tmp_path, sample_out):
    code, _, err = run_cli("narrate", tmp_path)
    assert code == 2 and "no scenario facts here" in err and "whatif run" in err
    code, _, err = run_cli("narrate", sample_out, "--narrator", "openai", "--llm-url", "")
    assert code == 2 and "needs --llm-url and --llm-model" in err


def test_publish_to_confluence_creates_the_page_then_updates_it(run_cli, sample_out, monkeypatch):
    from fakes.confluence_server import confluence_server

    with confluence_server() as server:
        monkeypatch.setenv("WHATIF_CONFLUENCE_USER", server.user)
        monkeypatch.setenv("WHATIF_CONFLUENCE_TOKEN", server.token)
        parent = server.spaces["OPS"]["homepage_id"]
        args = ["publish", sample_out, "--confluence", server.url, "--space", "OPS"]
        code, out, err = run_cli(*args, "--parent-id", parent)
        assert code == 0, err
        assert "Confluence page created" in out
        code, again, err = run_cli(*args, "--parent-id", parent)
        assert code == 0 and "updated to version 2" in again, err
        doc = json.loads((sample_out / "scenarios.json").read_text())
        title = f"What-if scenarios – {doc['as_of'][:10]}"
        assert [p["version"] for p in server.pages_titled(title)] == [2]
        page = server.page(title)
        assert page["parent_id"] == parent and doc["scenarios"][0]["title"] in page["body"]
        plots = sorted(p.name for p in (sample_out / "plots").glob("*.svg"))
        assert sorted(server.attachments_of(page["id"])) == plots
    assert server.token not in out + again + err
    monkeypatch.setenv("WHATIF_CONFLUENCE_TOKEN", "")
    code, _, err = run_cli(*args)
    assert code == 2 and "WHATIF_CONFLUENCE_TOKEN" in err


def _s3_env(monkeypatch: pytest.MonkeyPatch, s3_server: str) -> Any:
    """The usual AWS_* credentials (the endpoint comes from --endpoint-url, which sets
    AWS_ENDPOINT_URL: monkeypatch restores it after the test); a boto3 client."""
    import boto3

    for name, value in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    return boto3.client("s3", endpoint_url=s3_server)


def test_run_and_publish_send_the_report_to_s3_given_its_endpoint(
    run_cli, sample_out, s3_server, monkeypatch, tmp_path
):
    """--endpoint-url (MinIO and the like) with the usual AWS_* credentials."""
    client = _s3_env(monkeypatch, s3_server)
    client.create_bucket(Bucket="reports-cli")
    code, out, err = run_cli(
        "publish", sample_out, "--to", "s3://reports-cli/whatif", "--to", tmp_path / "local",
        "--endpoint-url", s3_server, "--run-id", "weekly-1",
    )  # fmt: skip
    assert code == 0, err
    keys = {o["Key"] for o in client.list_objects_v2(Bucket="reports-cli")["Contents"]}
    assert "whatif/latest/report.html" in keys and "whatif/latest/manifest.json" in keys
    assert any(k.endswith("/weekly-1/scenarios.json") for k in keys)
    assert any(k.startswith("whatif/latest/tabletop/") for k in keys)
    assert (tmp_path / "local" / "latest" / "report.html").exists()
    assert out.count("published to") == 2
    code, _, err = run_cli("publish", sample_out)
    assert code == 2 and "--to URL and/or --confluence" in err


def _objects(client: Any, bucket: str, prefix: str = "") -> dict[str, bytes]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
    return {k: client.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys}


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_publishing_a_run_twice_rewrites_the_same_objects(
    run_cli, sample_out, s3_server, monkeypatch
):
    """The run's id is made by `whatif run` (cli__<as-of>__<digest of inputs and settings>)
    and kept in scenarios.json; `whatif publish` reads it, so a second publish of the folder
    adds no object and no second run."""
    client = _s3_env(monkeypatch, s3_server)
    client.create_bucket(Bucket="twice")
    run = json.loads((sample_out / "scenarios.json").read_text())["run"]
    assert re.fullmatch(r"cli__2026-11-01T000000Z__[0-9a-f]{8}", run["id"])
    assert run["date"] == "2026-11-01"
    args = ("publish", sample_out, "--to", "s3://twice/w", "--endpoint-url", s3_server)
    listings = []
    for _ in range(2):
        code, out, err = run_cli(*args)
        assert code == 0 and f"/2026-11-01/{run['id']}" in out, err
        listings.append(_objects(client, "twice"))
    assert sorted(listings[0]) == sorted(listings[1]) and len(listings[0]) == len(listings[1])
    assert {k.split("/")[1] for k in listings[1]} == {"2026-11-01", "latest"}
    assert {k.split("/")[2] for k in listings[1] if "/latest/" not in k} == {run["id"]}


def test_run_publish_to_then_publish_writes_no_new_run_folder(
    run_cli, s3_server, monkeypatch, tmp_path
):
    """`whatif run --run-id ID --publish-to X`, then `whatif publish` of its folder to X: the
    same keys (S3 and a local folder), one run folder <as-of date>/ID."""
    client = _s3_env(monkeypatch, s3_server)
    client.create_bucket(Bucket="run-then-publish")
    local = tmp_path / "local"
    targets = ("s3://run-then-publish/w", local)
    where = [arg for target in targets for arg in ("--publish-to", target)]
    code, _, err = sample_run(
        run_cli, tmp_path / "out", "--run-id", "weekly 7", *where, "--endpoint-url", s3_server
    )
    assert code == 0, err
    assert json.loads((tmp_path / "out" / "scenarios.json").read_text())["run"] == {
        "id": "weekly 7",
        "date": "2026-11-01",
    }
    first = _objects(client, "run-then-publish"), _files(local)
    where = [arg for target in targets for arg in ("--to", target)]
    code, _, err = run_cli("publish", tmp_path / "out", *where, "--endpoint-url", s3_server)
    assert code == 0, err
    again = _objects(client, "run-then-publish"), _files(local)
    assert [sorted(listing) for listing in again] == [sorted(listing) for listing in first]
    assert {k.split("/", 3)[2] for k in again[0] if not k.startswith("w/latest/")} == {"weekly_7"}
    assert sorted(p.name for p in local.iterdir()) == ["2026-11-01", "latest"]
    assert again[0]["w/latest/scenarios.json"] == again[1]["latest/scenarios.json"]


def test_two_runs_published_at_once_by_two_processes_leave_latest_at_one_run(
    sample_out, s3_server, monkeypatch, tmp_path
):
    """Two `whatif publish` processes of two different runs to the same S3 prefix and local
    folder at the same time (twice; test_publish.py makes more trials with threads):
    latest/manifest.json names one of the runs, and every file in latest/ is that run's
    (SHA-256 as in the manifest), none missing or extra."""
    import shutil

    from whatif import pipeline

    client = _s3_env(monkeypatch, s3_server)
    client.create_bucket(Bucket="at-once")
    runs = {}
    for name in ("first", "second"):
        folder = shutil.copytree(sample_out, tmp_path / name)
        document = json.loads((folder / "scenarios.json").read_text())
        document["run"]["id"] = f"{name}-run"
        (folder / "scenarios.json").write_text(json.dumps(document))
        with (folder / "report.html").open("a") as report:
            report.write(f"<!-- {name} -->")
        runs[f"{name}-run"] = folder
    env = {**os.environ, "PYTHONPATH": str(PROJECT / "plugins"), "AWS_ENDPOINT_URL": s3_server}
    for trial in range(2):
        local = tmp_path / f"local-{trial}"
        command = ["publish", "--to", f"s3://at-once/trial-{trial}", "--to", str(local)]
        processes = [
            subprocess.Popen(
                [sys.executable, "-m", "whatif", *command, str(folder)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for folder in runs.values()
        ]
        for process in processes:
            _, err = process.communicate(timeout=300)
            assert process.returncode == 0, err[-2000:]
        s3_latest = _objects(client, "at-once", f"trial-{trial}/latest/")
        for latest in (
            {k.split("/latest/", 1)[1]: v for k, v in s3_latest.items()},
            _files(local / "latest"),
        ):
            manifest = json.loads(latest.pop("manifest.json"))
            folder = runs[manifest["run_id"]]
            digests = {name: hashlib.sha256(data).hexdigest() for name, data in latest.items()}
            assert digests == manifest["files"]
            assert set(latest) == set(pipeline.artifacts(folder))
            assert all((folder / name).read_bytes() == data for name, data in latest.items())


def test_a_misspelt_service_stops_the_run_before_the_fit(run_cli, small_inputs, tmp_path):
    incidents, topology = small_inputs
    out = tmp_path / "out"
    for flag, value in (("--what-if", "dbb:database"), ("--focus-service", "wbe")):
        code, _, err = run_cli(
            "run", "--incidents", incidents, "--topology", topology, "--out", out,
            "--as-of", "2026-06-01", flag, value,
        )  # fmt: skip
        assert code == 2
        assert f"{flag} '{value.split(':')[0]}': no such service (did you mean" in err
        assert (out / "validation.json").exists()  # validated, then stopped
        assert not (out / "model.json").exists()  # before the fit
        assert not (out / "_stage" / "timings" / "fit.json").exists()


def test_an_unusable_out_path_is_one_line_before_any_stage(run_cli, small_inputs, tmp_path):
    incidents, topology = small_inputs
    a_file = tmp_path / "taken.txt"
    a_file.write_text("x")
    inputs = ("--incidents", incidents, "--topology", topology, "--as-of", "2026-06-01")
    code, _, err = run_cli("run", *inputs, "--out", a_file)
    assert code == 2 and f"--out {a_file}: a file, not a folder (name a folder" in err
    code, _, err = run_cli("run", *inputs, "--out", a_file / "under")
    assert code == 2 and f"--out {a_file / 'under'}: cannot write there" in err
    code, _, err = run_cli("fit", *inputs, "--out", a_file / "model.json")
    assert code == 2 and "cannot write there" in err
    code, _, err = run_cli("validate", *inputs, "--out", tmp_path)
    assert code == 2 and f"--out {tmp_path}: a folder, not a file" in err
    assert len(err.strip().splitlines()) == 1


def test_a_run_stopped_by_its_inputs_still_writes_validation_and_quarantine(
    run_cli, small_inputs, tmp_path
):
    incidents, topology = small_inputs
    out = tmp_path / "out"
    code, _, err = run_cli(
        "run", "--incidents", incidents, "--topology", topology, "--out", out,
        "--as-of", "2030-06-01",
    )  # fmt: skip
    assert code == 2 and "no usable incident rows" in err
    stopped = json.loads((out / "validation.json").read_text())
    assert stopped["status"] == "stopped" and "no usable incident rows" in stopped["error"]
    assert stopped["inputs"]["incidents"]["rows_quarantined"] == 7
    quarantined = (out / "quarantine.csv").read_text().splitlines()
    assert len(quarantined) == 1 + 7 and all("outside_window" in row for row in quarantined[1:])


def test_a_broken_exercise_log_stops_the_run_before_the_fit(run_cli, small_inputs, tmp_path):
    incidents, topology = small_inputs
    log = write(tmp_path, "exercises.csv", "date,team\n2026-05-01,web-team\n")
    out = tmp_path / "out"
    code, _, err = run_cli(
        "run", "--incidents", incidents, "--topology", topology, "--out", out,
        "--as-of", "2026-06-01", "--exercises", log,
    )  # fmt: skip
    assert code == 2 and "exercises.csv" in err
    assert (out / "validation.json").exists() and not (out / "model.json").exists()


def test_a_run_stopped_by_its_topology_writes_every_problem_and_the_rows_at_fault(
    run_cli, small_inputs, tmp_path
):
    incidents, topology = small_inputs
    topology.write_text(
        topology.read_text().replace("web,api,", "web,api;serach,").replace("\ncache,", "\nCache,")
        + "cache,,data,data-team,false,,,,\n"
    )
    out = tmp_path / "out"
    out.mkdir()
    (out / "quarantine.csv").write_text("an earlier run's\n")
    code, stdout, err = run_cli(
        "run", "--incidents", incidents, "--topology", topology, "--out", out,
        "--as-of", "2026-06-01",
    )  # fmt: skip
    assert (code, stdout) == (2, "")
    assert err.strip() == (
        f"whatif: error: {topology}, row 2, column depends_on: depends_on names 'serach', which "
        "is no service of the topology (fix the name, or give an external service a row of its "
        "own or run with --allow-external-dependencies; 1 more problem in this file)"
    )
    stopped = json.loads((out / "validation.json").read_text())
    assert stopped["status"] == "stopped" and stopped["error"] == err.strip()[15:]
    assert len(stopped["problems"]) == 2 and "differ only in case" in stopped["problems"][1]
    assert stopped["inputs"]["topology"]["quarantined_by_reason"] == {
        "case_variant": 2,
        "unknown_dependency": 1,
    }
    rows = (out / "quarantine.csv").read_text().splitlines()
    assert rows[0].startswith("file,reason,row,service,depends_on")
    assert [row.split(",")[1:3] for row in rows[1:]] == [
        ["unknown_dependency", "2"], ["case_variant", "5"], ["case_variant", "6"],
    ]  # fmt: skip


def test_external_dependencies_are_an_opt_in_of_every_command(
    run_cli, small_inputs, tmp_path, caplog
):
    incidents, topology = small_inputs
    topology.write_text(topology.read_text().replace("web,api,", "web,api;stripe,"))
    inputs = ("--incidents", incidents, "--topology", topology, "--as-of", "2026-06-01")
    code, _, err = run_cli("validate", *inputs)
    assert code == 2 and err.strip().endswith(
        "depends_on names 'stripe', which is no service of the topology (fix the name, or give "
        "an external service a row of its own or run with --allow-external-dependencies)"
    )
    code, _, err = run_cli("validate", *inputs, "--allow-external-dependencies")
    assert code == 0, err
    external = "taken as external leaf services (--allow-external-dependencies): 'stripe'"
    assert caplog.text.count(external) == 1
    model = tmp_path / "model.json"
    assert run_cli("fit", *inputs, "--allow-external-dependencies", "--out", model)[0] == 0
    assert "stripe" in {s.service for s in ModelDoc.model_validate_json(model.read_text()).services}
    simulate = ("simulate", "--model", model, "--topology", topology, "--draws", "200")
    code, _, err = run_cli(*simulate, "--out", tmp_path / "s.json")
    assert code == 2 and "'stripe', which is no service of the topology" in err
    code, _, err = run_cli(*simulate, "--out", tmp_path / "s.json", "--allow-external-dependencies")
    assert code == 0, err


def test_an_out_folder_without_write_permission_is_one_line(run_cli, small_inputs, tmp_path):
    incidents, topology = small_inputs
    if os.geteuid() == 0:  # root writes anywhere a mode allows nothing: take what it may not
        locked = Path("/sys/whatif-out")
    else:
        (tmp_path / "locked").mkdir(mode=0o500)
        locked = tmp_path / "locked" / "out"
    code, _, err = run_cli(
        "run", "--incidents", incidents, "--topology", topology, "--out", locked,
    )  # fmt: skip
    assert code == 2
    assert re.fullmatch(
        rf"whatif: error: --out {locked}: cannot write there \((Permission denied|Operation not "
        r"permitted)\) \(name a folder you can write to\)",
        err.strip(),
    )


def test_the_endpoint_flag_serves_the_inputs_too(aws_env, run_cli, tmp_path, monkeypatch):
    import s3fs
    from fakes.loopback import s3_refusing

    monkeypatch.delenv("AWS_ENDPOINT_URL")  # only the flag says where
    with s3_refusing("AccessDenied") as endpoint:
        s3fs.S3FileSystem.clear_instance_cache()
        try:
            code, _, err = run_cli(
                "run", "--incidents", "s3://data/incidents.csv", "--topology", SAMPLE_TOPOLOGY,
                "--out", tmp_path / "out", "--endpoint-url", endpoint,
            )  # fmt: skip
        finally:
            s3fs.S3FileSystem.clear_instance_cache()
    assert code == 2
    assert err.strip().startswith("whatif: error: s3://data/incidents.csv: access denied (check")
