"""Report: escaped HTML, deterministic pictures, Mermaid cascades that follow the graph."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from shared import (
    INCIDENTS_CSV,
    SAMPLE_AS_OF,
    SAMPLE_INCIDENTS,
    SAMPLE_TOPOLOGY,
    TOPOLOGY_CSV,
    write,
)
from whatif import pipeline, report
from whatif.config import ModelSettings, RunConfig, WhatIf

HOSTILE = "<script>alert(1)</script>"


def test_html_escapes_every_piece_of_data(tmp_path):
    topology = write(tmp_path, "topology.csv", TOPOLOGY_CSV.replace("data-team", HOSTILE))
    incidents = write(tmp_path, "incidents.csv", INCIDENTS_CSV)
    out = tmp_path / "out"
    pipeline.run_all(
        pipeline.Inputs(incidents=str(incidents), topology=str(topology)),
        out,
        RunConfig(draws=200, scenarios=3, history_days=3650, what_if=(WhatIf("db"),)),
    )
    html = (out / "report.html").read_text()
    assert HOSTILE not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.count("<script") == 0
    assert json.loads((out / "scenarios.json").read_text())["scenarios"]
    # The Markdown outputs too: Markdown renderers pass raw HTML through.
    pages = [out / "report.md", *(out / "checklists").iterdir(), *(out / "tabletop").iterdir()]
    assert len(pages) > 4
    for page in pages:
        assert "<script" not in page.read_text(), page
    checklist = out / "checklists" / "script_alert_1_script.md"  # the team's own file name
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in checklist.read_text()


def test_mermaid_cascade_draws_failure_flow_among_affected_services():
    scenario = {
        "trigger": {"service": "db"},
        "affected_services": ["db", "api"],
        "impact": {"affected_probability": {"db": 1.0, "api": 0.4}},
    }
    edges = [("db", "api"), ("api", "web"), ("cache", "api")]
    text = report.mermaid_cascade(scenario, edges)
    assert text.splitlines()[0] == "graph LR"
    assert 'n1["db (100%)"]' in text and 'n0["api (40%)"]' in text
    assert "n1 --> n0" in text
    assert "web" not in text and "cache" not in text


def small_run(folder: Path, **settings) -> Path:
    """The small shop run end to end into folder/out with a few draws."""
    out = folder / "out"
    pipeline.run_all(
        pipeline.Inputs(
            incidents=str(write(folder, "incidents.csv", INCIDENTS_CSV)),
            topology=str(write(folder, "topology.csv", TOPOLOGY_CSV)),
        ),
        out,
        RunConfig(draws=200, scenarios=3, history_days=3650, **settings),
    )
    return out


def test_the_model_card_shows_the_backtest_and_says_when_it_was_not_run(tmp_path):
    out = small_run(tmp_path, model=ModelSettings(backtest_folds=0))
    markdown = (out / "report.md").read_text()
    model = json.loads((out / "model.json").read_text())
    assert "## Model card" in markdown and "### Backtest" in markdown
    assert "Not run: turned off (backtest folds = 0)." in markdown
    assert "Root attribution:** 5 root failures, 2 cascades recorded by `caused_by`" in markdown

    # A model whose baseline won: the table bolds the winner and the verdict says so.
    model["backtest"] = {
        "status": "done",
        "target": "root incidents per service",
        "horizon_days": 28.0,
        "folds": 2,
        "origins": ["2026-04-01T00:00:00+00:00", "2026-04-29T00:00:00+00:00"],
        "services": 4,
        "evaluations": 8,
        "scores": {
            name: {
                "log_score": score,
                "coverage_90": 0.9,
                "predicted_total": 3.0,
                "observed_total": 3,
                "zero_probability_outcomes": 0,
            }
            for name, score in (
                ("hierarchical", -0.7),
                ("global_rate", -0.6),
                ("per_service_ml", -0.9),
            )
        },
        "winner": "global_rate",
        "comparison": {},
        "verdict": "On this history one global rate predicted better.",
    }
    (out / "model.json").write_text(json.dumps(model))
    pipeline.run_report(out)
    markdown = (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    assert "| **baseline: one global rate** | -0.6 |" in markdown
    assert "**On this history one global rate predicted better.**" in markdown
    assert 'id="model-card"' in html and "<strong>baseline: one global rate</strong>" in html


def test_the_model_card_says_plainly_whether_rates_drift_and_where_the_export_has_gaps(tmp_path):
    out = small_run(tmp_path, as_of=datetime(2026, 5, 2, tzinfo=UTC))
    model = json.loads((out / "model.json").read_text())
    # Four months of history are too short to choose a half-life: it says so.
    assert model["rates"]["half_life_days"] is None
    markdown = (out / "report.md").read_text()
    assert "every day of the window counts the same (the history is too short" in markdown
    assert f"- **Drift:** {model['rates']['drift']['statement']}" in markdown

    # A drifting fleet with a hole in its export, as model.json records it.
    model["rates"] = {
        "model": "dynamic hierarchical Gamma-Poisson",
        "half_life_days": 90.0,
        "dispersion": 4.0,
        "chosen_by": "log score",
        "reason": "rolling-origin log score of 286 service forecasts of 28 days at 22 origins",
        "evaluations": 286,
        "gaps": [
            {"start": "2023-05-17T12:00:00+00:00", "end": "2023-06-28T12:00:00+00:00", "days": 42}
        ],
        "drift": {
            "recent_days": 90.0,
            "detected": True,
            "statement": "Drift detected: the last 90 days' root-failure rate is 1.80× the "
            "730-day window's (90 % interval 1.50–2.10×); the rates follow it with a half-life "
            "of 90 days (chosen by the rolling-origin log score).",
            "ratio": 1.8,
            "ratio_p05": 1.5,
            "ratio_p95": 2.1,
            "largest_changes": [
                {
                    "service": "api",
                    "current_rate_per_day": 0.2,
                    "window_rate_per_day": 0.1,
                    "ratio": 2.0,
                }
            ],
        },
    }
    (out / "model.json").write_text(json.dumps(model))
    pipeline.run_report(out)
    for page in ((out / "report.md").read_text(), (out / "report.html").read_text()):
        assert "an incident 90 days old counts half (chosen by the rolling-origin log score" in page
        assert "varied by ±50 %" in page  # dispersion 4: one standard deviation 1/sqrt(4)
        assert "Drift detected: the last 90 days" in page and "rate is 1.80× the 730-day" in page
        assert "api 6.0 against 3.0 (×2.0)" in page
        assert "no incident at all from 2023-05-17 to 2023-06-28 (42 days)" in page


def test_the_model_card_names_a_quiet_spell_before_as_of_and_the_as_of_that_ends_it(tmp_path):
    # The small shop's newest incident is 2026-05-01: two months of silence before this as-of.
    (tmp_path / "quiet").mkdir()
    (tmp_path / "current").mkdir()
    quiet = small_run(tmp_path / "quiet", as_of=datetime(2026, 7, 1, tzinfo=UTC))
    validation = json.loads((quiet / "validation.json").read_text())
    tail = validation["inputs"]["incidents"]["quiet_tail"]
    assert tail["suggested_as_of"] == "2026-05-02" and round(tail["days"]) == 61
    markdown, html = (quiet / "report.md").read_text(), (quiet / "report.html").read_text()
    assert (
        "- **Quiet until the as-of date:** the newest incident starts 2026-05-01, 61 days before "
        "2026-07-01, and those days count as days without failures" in markdown
    )
    assert f"a silence this long has a chance of {tail['chance_at_that_rate']:.2g})" in markdown
    assert "rerun with `--as-of 2026-05-02`" in markdown
    assert "<strong>Quiet until the as-of date:</strong>" in html
    assert "<code>--as-of 2026-05-02</code>" in html
    # Ending the window at the data: nothing to say.
    current = small_run(tmp_path / "current", as_of=datetime(2026, 5, 2, tzinfo=UTC))
    assert "Quiet until" not in (current / "report.md").read_text()


CHROMIUM = next(
    (
        shutil.which(name)
        for name in ("chromium", "chromium-browser", "google-chrome")
        if shutil.which(name)
    ),
    None,
)


@pytest.fixture(scope="module")
def sample_report(tmp_path_factory) -> Path:
    from whatif.cli import main

    out = tmp_path_factory.mktemp("report")
    assert main(
        ["run", "--incidents", str(SAMPLE_INCIDENTS), "--topology", str(SAMPLE_TOPOLOGY),
         "--out", str(out), "--as-of", SAMPLE_AS_OF, "--draws", "500"]
    ) == 0  # fmt: skip
    return out / "report.html"


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium is not installed (make test installs it from Debian's packages as root)",
)
@pytest.mark.parametrize("width", [1280, 390], ids=["desktop", "phone"])
def test_the_html_report_renders_in_headless_chromium(sample_report, tmp_path, width):
    """The self-contained report, opened from disk by a real browser at desktop and phone
    widths: it paints text and the risk matrix's colours (the inline SVG), nothing blank."""
    import matplotlib.image

    png = tmp_path / f"report-{width}.png"
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--window-size={width},1600", f"--screenshot={png}", sample_report.as_uri()],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0 and png.exists(), done.stderr[-2000:]
    pixels = matplotlib.image.imread(png)[..., :3]
    assert pixels.shape[:2] == (1600, width)
    ink = (pixels.mean(axis=2) < 0.5).mean()
    assert 0.005 < ink < 0.6  # text was drawn, and the page is not one dark block
    vermillion = np.array([0xD5, 0x5E, 0x00]) / 255  # SEV1 in the risk matrix
    blue = np.array([0x00, 0x72, 0xB2]) / 255  # SEV3
    near = [(np.abs(pixels - c).max(axis=2) < 0.08).sum() for c in (vermillion, blue)]
    assert max(near) > 20, near  # the inline SVG was painted


def test_anchors_are_slugs_unique_in_order():
    assert report.anchors(["Pull Requests--other", "pull-requests--other", "db--database"]) == {
        "Pull Requests--other": "pull-requests-other",
        "pull-requests--other": "pull-requests-other-2",
        "db--database": "db-database",
    }


def test_anchors_never_take_a_section_of_the_report():
    assert report.anchors(["Model Card", "readiness", "readiness"]) == {
        "Model Card": "model-card-2",
        "readiness": "readiness-3",  # the last of equal ids wins: ids are unique in a run
    }


def test_every_link_to_a_scenario_uses_its_slug_and_its_id_stays_as_it_was(tmp_path):
    """A service named with a space and capitals: the table's links, the headings' anchors,
    the checklists' and the tabletop packs' links back all use the slug; scenarios.json keeps
    the id."""
    topology = TOPOLOGY_CSV.replace("api,db;cache", "api,Main DB;cache").replace(
        "\ndb,,data", "\nMain DB,,data"
    )
    out = tmp_path / "out"
    pipeline.run_all(
        pipeline.Inputs(
            incidents=str(
                write(tmp_path, "incidents.csv", INCIDENTS_CSV.replace(",db,", ",Main DB,"))
            ),
            topology=str(write(tmp_path, "topology.csv", topology)),
        ),
        out,
        RunConfig(draws=200, scenarios=3, history_days=3650, what_if=(WhatIf("Main DB"),)),
    )
    ids = [s["id"] for s in json.loads((out / "scenarios.json").read_text())["scenarios"]]
    main_db = next(i for i in ids if i.startswith("Main DB--"))
    anchor = report.slug(main_db)
    assert anchor.startswith("main-db-") and " " not in anchor
    markdown = (out / "report.md").read_text()
    assert f"](#{anchor})" in markdown and f'<a id="{anchor}"></a>' in markdown
    assert "](#Main DB" not in markdown
    html = (out / "report.html").read_text()
    assert f'href="#{anchor}"' in html and f'id="{anchor}"' in html
    pack = (out / "tabletop" / report.file_name(main_db)).read_text()
    assert f"](../report.md#{anchor})" in pack
    checklist = (out / "checklists" / "data-team.md").read_text()
    assert f"[In the report](../report.md#{anchor})" in checklist


def test_team_checklists_give_each_team_its_own_items_and_the_shared_roles() -> None:
    """A team's checklist holds its own on-call's items and the roles everyone shares, never
    another team's, also when one team's name starts another's or holds a space."""
    items = [
        {"role": "payments on-call", "action": "fail over the ledger"},
        {"role": "payments-eu on-call", "action": "drain eu"},
        {"role": "search team on-call", "action": "freeze the index"},
        {"role": "incident commander", "action": "open the bridge"},
    ]
    scenario = {
        "trigger": {"service": "ledger"},
        "co_trigger": None,
        "impact": {"teams_paged": ["payments-eu", "search team"]},
        "checklist": items,
    }
    owners = {"ledger": "payments", "eu": "payments-eu", "index": "search team", "x": "ops"}
    teams = report.team_checklists([scenario], owners)
    assert sorted(teams) == ["payments", "payments-eu", "search team"]
    actions = {team: [i["action"] for i in e[0]["actions"]] for team, e in teams.items()}
    assert actions == {
        "payments": ["fail over the ledger", "open the bridge"],
        "payments-eu": ["drain eu", "open the bridge"],
        "search team": ["freeze the index", "open the bridge"],
    }
    assert teams["payments"][0]["owns"] and not teams["payments-eu"][0]["owns"]
