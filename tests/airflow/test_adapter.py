"""The Airflow adapter (plugins/whatif_airflow) on its own, without running a DAG: connections
mapped to settings, the work location, failing fast, the trigger form's params."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from airflow.sdk import Connection
from airflow.sdk.exceptions import AirflowFailException
from whatif.errors import UserError
from whatif_airflow import connections, defaults, storage, tasks

AS_OF = datetime(2026, 11, 1, tzinfo=UTC)


def params(**overrides) -> dict:
    """The trigger form's defaults, as a run gets them, with `overrides`."""
    return {name: param.value for name, param in defaults.scenario_params().items()} | overrides


def define(monkeypatch, conn_id: str, **fields) -> None:
    """A connection defined the way a deployment may: AIRFLOW_CONN_<ID> as JSON."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))


@pytest.mark.parametrize(
    ("host", "port", "extra", "url"),
    [
        ("https://llm.example/v1/", None, {}, "https://llm.example/v1"),
        ("llm.example", 8080, {}, "http://llm.example:8080"),
        ("llm.example/v1", 8443, {"scheme": "https"}, "https://llm.example:8443/v1"),
        ("http://llm.example:11434", 9999, {}, "http://llm.example:11434"),
        ("", None, {}, None),
    ],
)
def test_a_connection_url_is_its_host_as_a_full_url(host, port, extra, url):
    connection = Connection(
        conn_id="x", conn_type="http", host=host, port=port, extra=json.dumps(extra)
    )
    assert connections.connection_url(connection) == url


def test_the_llm_connection_maps_to_llm_settings_and_a_bad_number_names_the_connection():
    connection = Connection(
        conn_id="whatif_llm",
        conn_type="http",
        host="llm.example",
        port=8080,
        password="sk-secret-key",
        extra=json.dumps({"model": "m1", "timeout": "12", "provider": "ollama"}),
    )
    assert connections.settings_of(connection, connections.LLM_FIELDS) == {
        "url": "http://llm.example:8080",
        "api_key": "sk-secret-key",
        "provider": "ollama",
        "model": "m1",
        "timeout_s": 12.0,
    }
    assert connections.settings_of(None, connections.LLM_FIELDS) == {}
    broken = Connection(conn_id="whatif_llm", conn_type="http", extra='{"timeout": "soon"}')
    with pytest.raises(UserError, match=r"whatif_llm: extra\.timeout 'soon' is not a float"):
        connections.settings_of(broken, connections.LLM_FIELDS)


def test_narration_settings_come_from_the_connection_and_the_params_override_them(monkeypatch):
    define(
        monkeypatch,
        "whatif_llm",
        conn_type="http",
        host="llm.example",
        port=11434,
        password="sk-secret-key",
        extra={"provider": "ollama", "model": "m1", "temperature": 0.5, "max_concurrency": 2},
    )
    config = tasks.narration_config(params(narrator="llm"), AS_OF)
    assert config.narrator == "ollama"
    assert (config.llm.url, config.llm.model, config.llm.api_key) == (
        "http://llm.example:11434",
        "m1",
        "sk-secret-key",
    )
    assert (config.llm.temperature, config.llm.max_concurrency) == (0.5, 2)
    assert config.llm.cache == storage.default_llm_cache()
    config = tasks.narration_config(
        params(narrator="openai", llm_url="http://other:1/v1", llm_model="m2"), AS_OF
    )
    assert (config.narrator, config.llm.url, config.llm.model) == (
        "openai",
        "http://other:1/v1",
        "m2",
    )
    # The run's own settings come from the params all the same.
    assert config.scenarios == 8 and config.as_of == AS_OF


def test_narration_without_a_connection_or_params_is_a_user_error(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_WHATIF_LLM", raising=False)
    assert tasks.narration_config(params(), AS_OF).narrator == "template"
    with pytest.raises(UserError, match="needs the connection whatif_llm"):
        tasks.narration_config(params(narrator="llm"), AS_OF)


def test_the_confluence_connection_gives_the_page_target_or_says_what_is_missing(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_WHATIF_CONFLUENCE", raising=False)
    with pytest.raises(UserError, match="connection whatif_confluence is not defined"):
        connections.confluence_target()
    define(monkeypatch, "whatif_confluence", conn_type="http", host="https://wiki.example")
    with pytest.raises(UserError, match=r"needs host .* password .* extra\.space"):
        connections.confluence_target()
    define(
        monkeypatch,
        "whatif_confluence",
        conn_type="http",
        host="https://example.atlassian.net/wiki",
        login="sre@example.com",
        password="confluence-token",
        extra={"space": "SRE", "parent_id": 42, "cloud": True},
    )
    target = connections.confluence_target()
    assert (target.url, target.space, target.parent_id, target.user, target.token) == (
        "https://example.atlassian.net/wiki",
        "SRE",
        "42",
        "sre@example.com",
        "confluence-token",
    )
    assert target.cloud is True


def test_reports_use_their_connection_only_for_remote_targets_that_have_one(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_WHATIF_REPORTS", raising=False)
    assert connections.reports_conn_id("s3://bucket/reports") is None
    define(monkeypatch, "whatif_reports", conn_type="aws")
    assert connections.reports_conn_id("s3://bucket/reports") == "whatif_reports"
    assert connections.reports_conn_id("file:///tmp/reports") is None


def test_the_work_location_is_object_storage_then_a_folder_then_airflow_home(monkeypatch, tmp_path):
    for name in ("WHATIF_WORK_URL", "WHATIF_WORK_DIR", "WHATIF_WORK_CONN_ID", "WHATIF_LLM_CACHE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "home"))
    assert storage.work_location("manual__2026-11-01") == str(
        tmp_path / "home" / "whatif-work" / "manual__2026-11-01"
    )
    monkeypatch.setenv("WHATIF_WORK_DIR", str(tmp_path / "work"))
    assert storage.in_work_storage("x") == str(tmp_path / "work" / "x")
    monkeypatch.setenv("WHATIF_WORK_URL", "s3://bucket/whatif-work/")
    assert storage.work_location("scheduled__2026-11-02T06:00:00+00:00").startswith(
        "s3://bucket/whatif-work/scheduled__2026-11-02T06"
    )
    assert storage.default_llm_cache() == "s3://bucket/whatif-work/llm-cache"
    assert storage.work_conn_id({"storage_conn_id": "whatif_data"}) == "whatif_data"
    monkeypatch.setenv("WHATIF_WORK_CONN_ID", "work_store")
    assert storage.work_conn_id({"storage_conn_id": "whatif_data"}) == "work_store"
    # The cache's older variable still works, with a warning.
    monkeypatch.setenv("WHATIF_LLM_CACHE_URL", "s3://bucket/old-cache")
    assert storage.default_llm_cache() == "s3://bucket/old-cache"


def test_user_errors_fail_without_retries_and_other_errors_are_left_to_retry():
    @tasks.fail_fast
    def bad_data() -> None:
        raise UserError("the topology names no service", file="topology.csv")

    @tasks.fail_fast
    def flaky() -> None:
        raise ConnectionError("object storage unreachable")

    with pytest.raises(AirflowFailException, match=r"topology\.csv: the topology names no service"):
        bad_data()
    with pytest.raises(ConnectionError):
        flaky()


def test_the_trigger_form_checks_the_engine_bounds_and_defaults_to_the_sample():
    from airflow.sdk.exceptions import ParamValidationError

    form = defaults.scenario_params()
    assert form["incidents"].value == str(defaults.SAMPLE / "incidents.csv")
    assert form["publish_targets"].value == [defaults.REPORTS_URL]
    bad = {"scenarios": 51, "draws": 10, "half_life_days": "soon", "source": "ftp"}
    for name, value in bad.items():
        with pytest.raises(ParamValidationError):
            form[name].resolve(value)
    assert form["scenarios"].resolve(50) == 50
    config = tasks.run_config(params(scenarios=3, what_if=["db:database"]), AS_OF)
    assert config.scenarios == 3 and config.what_if[0].failure_mode == "database"


def test_inputs_are_the_files_of_the_params():
    inputs = tasks.inputs(params(mapping="pagerduty"))
    assert inputs.incidents == str(defaults.SAMPLE / "incidents.csv")
    assert inputs.mapping == "pagerduty" and inputs.sql is None and inputs.aliases is None


def test_import_sources_come_from_their_connections_or_say_what_is_missing(monkeypatch):
    for conn_id in connections.IMPORT_CONN_IDS.values():
        monkeypatch.delenv(f"AIRFLOW_CONN_{conn_id.upper()}", raising=False)
    monkeypatch.delenv("BACKSTAGE_TOKEN", raising=False)
    with pytest.raises(UserError, match="connection whatif_backstage, which is not defined"):
        connections.import_source("backstage")
    define(monkeypatch, "whatif_backstage", conn_type="http", password="bs-secret")
    with pytest.raises(UserError, match="connection whatif_backstage, which has no host"):
        connections.import_source("backstage")
    define(
        monkeypatch,
        "whatif_backstage",
        conn_type="http",
        host="https://backstage.example",
        password="bs-secret",
    )
    source = connections.import_source("backstage")
    assert (source.kind, source.location, source.token) == (
        "backstage",
        "https://backstage.example",
        "bs-secret",
    )
    assert "bs-secret" not in repr(source)
    define(monkeypatch, "whatif_jaeger", conn_type="http", extra={"path": "/srv/deps.json"})
    assert connections.import_source("jaeger").location == "/srv/deps.json"
    # PagerDuty needs no host (its public API); the key may come from the environment.
    monkeypatch.setenv("PAGERDUTY_TOKEN", "pd-from-env")
    source = connections.import_source("pagerduty")
    assert (source.location, source.token) == (None, "pd-from-env")
    define(
        monkeypatch,
        "whatif_incidentio",
        conn_type="http",
        password="iio-secret",
        extra={"services_field": "Services"},
    )
    source = connections.import_source("incident-io")
    assert source.token == "iio-secret" and dict(source.options) == {"services_field": "Services"}


def test_files_stay_files_and_two_sources_of_incidents_are_refused(tmp_path):
    inputs = tasks.inputs(params())
    config = tasks.run_config(params(), AS_OF)
    assert tasks.import_sources(inputs, params(), tmp_path, config) is inputs
    both = params(source="sql", incident_source="pagerduty")
    with pytest.raises(UserError, match="incident_source pagerduty and source sql"):
        tasks.import_sources(inputs, both, tmp_path, config)
