"""One parameter spec (whatif.params) makes the CLI's options, the DAG's params and the
engine's defaults and bounds: they cannot drift apart."""

from __future__ import annotations

import argparse
import dataclasses

import pytest
from whatif import params
from whatif.cli import build_parser
from whatif.config import LLMSettings, ModelSettings, RunConfig, run_config
from whatif.errors import UserError

# The engine's setting behind each spec entry that has a field of its own.
ENGINE_FIELDS = {
    "seed": (RunConfig, "seed"),
    "scenarios": (RunConfig, "scenarios"),
    "horizon_days": (RunConfig, "horizon_days"),
    "draws": (RunConfig, "draws"),
    "cascade_draws": (RunConfig, "cascade_draws"),
    "history_days": (RunConfig, "history_days"),
    "narrator": (RunConfig, "narrator"),
    "allow_external_dependencies": (RunConfig, "allow_external_dependencies"),
    "cascade_window_minutes": (ModelSettings, "cascade_window_minutes"),
    "half_life_days": (ModelSettings, "half_life_days"),
    "backtest_horizon_days": (ModelSettings, "backtest_horizon_days"),
    "backtest_folds": (ModelSettings, "backtest_folds"),
    "llm_timeout": (LLMSettings, "timeout_s"),
    "llm_temperature": (LLMSettings, "temperature"),
    "llm_max_concurrency": (LLMSettings, "max_concurrency"),
    "llm_retries": (LLMSettings, "retries"),
}


def run_options(monkeypatch, *args: str) -> argparse.Namespace:
    for setting in params.SETTINGS_LIST:  # the defaults, not this machine's environment
        if setting.env:
            monkeypatch.delenv(setting.env, raising=False)
    return build_parser().parse_args(["run", "--out", "x", *args])


@pytest.mark.parametrize("name", sorted(ENGINE_FIELDS))
def test_the_engine_defaults_are_the_spec_defaults(name):
    cls, field = ENGINE_FIELDS[name]
    default = {f.name: f.default for f in dataclasses.fields(cls)}[field]
    assert default == params.default(name)


def test_the_cli_and_the_dag_offer_every_shared_setting_with_the_same_default(monkeypatch):
    options = vars(run_options(monkeypatch))
    form = params.dag_params()
    for setting in params.SETTINGS_LIST:
        if params.CLI in setting.surfaces:
            assert setting.name in options, setting.name
        if params.DAG in setting.surfaces:
            assert setting.name in form, setting.name
        if setting.surfaces == params.BOTH and setting.default is not None:
            assert options[setting.name] == form[setting.name]["default"] == setting.default


def test_the_dag_form_carries_the_bounds_of_the_spec():
    form = params.dag_params()
    assert (form["scenarios"]["minimum"], form["scenarios"]["maximum"]) == (1, 50)
    assert form["horizon_days"]["exclusiveMinimum"] == 0
    assert form["event_start"]["type"] == ["null", "string"]
    assert form["narrator"]["enum"] == ["template", "llm", "ollama", "openai"]
    assert "llm_timeout" not in form and "source" in form


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--scenarios", "51", "--scenarios 51: must be 1 to 50"),
        ("--scenarios", "0", "--scenarios 0: must be 1 to 50"),
        ("--horizon-days", "0", "--horizon-days 0.0: must be positive and at most 366"),
        ("--draws", "99", "--draws 99: must be 100 to 1,000,000"),
        (
            "--cascade-window-minutes",
            "-1",
            "--cascade-window-minutes -1.0: must be 0 (off) or more",
        ),
        ("--backtest-folds", "53", "--backtest-folds 53: must be 0 to 52"),
        ("--llm-max-concurrency", "65", "--llm-max-concurrency 65: must be 1 to 64"),
        ("--llm-temperature", "3", "--llm-temperature 3.0: must be 0 to 2"),
        ("--history-days", "10", "--history-days 10: must be at least 30"),
    ],
)
def test_a_value_out_of_bounds_is_one_line_naming_the_option(monkeypatch, flag, value, message):
    with pytest.raises(UserError) as error:
        run_config(vars(run_options(monkeypatch, flag, value)), None)
    assert str(error.value) == message


def test_the_environment_gives_the_cli_defaults(monkeypatch):
    options = run_options(monkeypatch)
    assert options.llm_max_concurrency == 4 and options.narrator == "template"
    monkeypatch.setenv("WHATIF_LLM_MAX_CONCURRENCY", "7")
    monkeypatch.setenv("WHATIF_LLM_PROVIDER", "ollama")
    options = build_parser().parse_args(["run", "--out", "x"])
    assert options.llm_max_concurrency == 7 and options.narrator == "ollama"


def test_cli_options_and_dag_params_make_the_same_run_config(monkeypatch):
    cli = run_options(
        monkeypatch, "--scenarios", "3", "--what-if", "db", "--focus-service", "web",
        "--half-life-days", "off", "--event-name", "Launch", "--event-start", "2026-12-01",
        "--event-end", "2026-12-02",
    )  # fmt: skip
    dag = {name: spec["default"] for name, spec in params.dag_params().items()} | {
        "scenarios": 3,
        "what_if": ["db"],
        "focus_services": ["web"],
        "half_life_days": "off",
        "event_name": "Launch",
        "event_start": "2026-12-01",
        "event_end": "2026-12-02",
    }
    from_cli = run_config(vars(cli), None)
    from_dag = run_config(dag, None)
    assert dataclasses.replace(from_cli, llm=from_dag.llm) == from_dag
