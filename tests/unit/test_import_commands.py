"""`whatif topology import`, `whatif incidents import`: the importers as a user runs them,
against the loopback APIs; what they write is what `whatif validate` and `whatif fit` read."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from fakes.backstage_server import backstage_server, load_entities
from fakes.incident_servers import (
    IIO_TOKEN,
    PD_TOKEN,
    iio_incident,
    incident_io_server,
    pagerduty_server,
    pd_incident,
)
from shared import PROJECT
from whatif import report
from whatif.schemas import ModelDoc

BACKSTAGE = PROJECT / "tests" / "data" / "backstage"
JAEGER = PROJECT / "tests" / "data" / "traces" / "jaeger_dependencies.json"


def test_backstage_files_and_api_write_the_same_topology(run_cli, tmp_path, monkeypatch):
    from_files = tmp_path / "files.csv"
    code, out, err = run_cli(
        "topology", "import", "backstage", BACKSTAGE / "shop", "--out", from_files
    )
    assert code == 0, err
    expected = (BACKSTAGE / "shop-topology.csv").read_text()
    rows = [line.split(",") for line in expected.splitlines()[1:]]
    deps = sum(len([d for d in (r[1] + ";" + r[2]).split(";") if d]) for r in rows)
    soft = sum(len([d for d in r[2].split(";") if d]) for r in rows)
    assert out.strip() == (
        f"wrote {from_files}: {len(rows)} services, {deps} dependencies ({soft} soft) from "
        "backstage"
    )
    assert from_files.read_text() == expected
    with backstage_server(load_entities(BACKSTAGE / "shop"), max_limit=4) as server:
        monkeypatch.setenv("BACKSTAGE_TOKEN", server.token)
        from_api = tmp_path / "api.csv"
        code, _, err = run_cli("topology", "import", "backstage", server.url, "--out", from_api)
    assert code == 0, err
    assert from_api.read_bytes() == from_files.read_bytes()
    assert all(
        r["headers"].get("Authorization") == f"Bearer {server.token}" for r in server.requests
    )


def test_a_refused_token_is_one_line_and_the_old_topology_stays(run_cli, tmp_path, monkeypatch):
    out = tmp_path / "topology.csv"
    out.write_text("service,depends_on\nlast-week,\n")
    with backstage_server(load_entities(BACKSTAGE / "shop")) as server:
        monkeypatch.setenv("BACKSTAGE_TOKEN", "not-the-token")
        code, stdout, err = run_cli("topology", "import", "backstage", server.url, "--out", out)
    assert code == 2 and stdout == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "HTTP 401" in lines[0] and "$BACKSTAGE_TOKEN" in lines[0]
    assert "not-the-token" not in err
    assert out.read_text() == "service,depends_on\nlast-week,\n"


def test_a_page_that_keeps_failing_writes_nothing(run_cli, tmp_path, monkeypatch):
    out = tmp_path / "topology.csv"
    with backstage_server(load_entities(BACKSTAGE / "shop"), max_limit=4) as server:
        monkeypatch.setenv("BACKSTAGE_TOKEN", server.token)
        server.truncate(page=2, times=99)
        code, _, err = run_cli("topology", "import", "backstage", server.url, "--out", out)
    assert code == 2
    assert "not complete JSON" in err and len(err.strip().splitlines()) == 1
    assert not out.exists() and not list(tmp_path.glob(".topology.csv.*"))


def test_jaeger_topology_gives_each_traced_edge_its_coverage_in_the_model(run_cli, tmp_path):
    topology = tmp_path / "traces.csv"
    code, out, err = run_cli("topology", "import", "jaeger", JAEGER, "--out", topology)
    assert code == 0, err
    assert "with trace counts from jaeger" in out
    incidents = tmp_path / "incidents.csv"
    incidents.write_text(_history(["redis", "mysql", "driver", "customer", "route", "frontend"]))
    model_path = tmp_path / "model.json"
    code, _, err = run_cli(
        "fit",
        "--incidents",
        incidents,
        "--topology",
        topology,
        "--out",
        model_path,
        "--as-of",
        "2026-11-01",
    )
    assert code == 0, err
    model = json.loads(model_path.read_text())
    edges = {(e["service"], e["depends_on"]): e for e in model["edges"]}
    links = json.loads(JAEGER.read_text())["data"]
    assert len(edges) == len({(link["parent"], link["child"]) for link in links})
    for link in links:
        observed = edges[link["parent"], link["child"]]["observed"]
        assert observed["calls"] == link["callCount"] and observed["errors"] is None
    # frontend is an entry point (no caller traced): its busiest dependency counts as every
    # request; route gets 1000 of them, customer and driver 100.
    assert edges["frontend", "route"]["observed"]["coverage"] == 1.0
    assert edges["frontend", "customer"]["observed"]["coverage"] == 0.1
    prior = model["priors"]["propagation_unknown"]
    assert prior["traced_edges"] == len(edges) and prior["trace_exponent"] == 1.0
    means = {k: e["propagation_probability"]["mean"] for k, e in edges.items()}
    assert means["frontend", "route"] > means["frontend", "customer"]
    # The report's model card says what the traces did.
    card = report.model_card(ModelDoc.model_validate(model))
    assert card["propagation_priors"][0]["source"] == (
        f"default; {len(edges)} edges seen in traces: means scaled by call coverage"
    )


def test_incident_io_import_writes_incidents_that_validate(run_cli, tmp_path, monkeypatch):
    day = datetime(2026, 10, 1, tzinfo=UTC)
    incidents = [
        iio_incident(n, (day + timedelta(days=n)).isoformat(), services=("orders", "payments"))
        for n in range(1, 4)
    ]
    out = tmp_path / "incidents.csv"
    with incident_io_server(incidents=incidents) as server:
        monkeypatch.setenv("INCIDENT_IO_API_KEY", IIO_TOKEN)
        code, stdout, err = run_cli(
            "incidents",
            "import",
            "incident-io",
            "--since",
            "2026-10-01",
            "--until",
            "2026-11-01",
            "--url",
            server.url,
            "--out",
            out,
        )
    assert code == 0, err
    assert stdout.strip() == (
        f"wrote {out}: 3 incidents (6 rows) created 2026-10-01 to 2026-11-01 from incident-io"
    )
    code, _, err = run_cli(
        "validate",
        "--incidents",
        out,
        "--topology",
        BACKSTAGE / "shop-topology.csv",
        "--allow-external-dependencies",
        "--as-of",
        "2026-11-01",
    )
    assert code == 0, err


def test_pagerduty_incidents_are_named_by_the_catalog_service_id(run_cli, tmp_path, monkeypatch):
    incidents = [
        pd_incident(7, "2026-10-02T10:00:00Z", service_id="PPAY004", service="Payments (prod)"),
        pd_incident(8, "2026-10-03T10:00:00Z", service_id="PNEW999", service="New thing"),
    ]
    out = tmp_path / "incidents.csv"
    with pagerduty_server(incidents=incidents) as server:
        monkeypatch.setenv("PAGERDUTY_TOKEN", PD_TOKEN)
        monkeypatch.setenv("SSL_CERT_FILE", str(server.ca_file))
        code, _, err = run_cli(
            "incidents",
            "import",
            "pagerduty",
            "--since",
            "2026-10-01",
            "--until",
            "2026-11-01",
            "--url",
            server.url,
            "--topology",
            BACKSTAGE / "shop-topology.csv",
            "--out",
            out,
        )
    assert code == 0, err
    rows = out.read_text().splitlines()
    assert rows[1].startswith("7,payments,2026-10-02T10:00:00Z")
    assert rows[2].startswith("8,New thing,")  # no such id in the catalog: PagerDuty's name
    assert PD_TOKEN not in err


@pytest.mark.parametrize(
    ("kind", "variable"), [("pagerduty", "PAGERDUTY_TOKEN"), ("incident-io", "INCIDENT_IO_API_KEY")]
)
def test_an_incident_import_without_a_key_says_which_variable(run_cli, tmp_path, kind, variable):
    code, _, err = run_cli(
        "incidents", "import", kind, "--since", "2026-01-01", "--out", tmp_path / "i.csv"
    )
    assert code == 2
    assert err.strip() == f"whatif: error: {kind} needs an API key: set {variable}"


def _history(services: list[str]) -> str:
    """A weekly incident of each service, a day apart: no cascades, so every edge's prior
    is what the model says about it."""
    lines = ["incident_id,service,started_at,resolved_at"]
    start = datetime(2025, 11, 1, tzinfo=UTC)
    for week in range(50):
        for k, service in enumerate(services):
            at = start + timedelta(days=7 * week + k, hours=3)
            end = at + timedelta(hours=1)
            lines.append(f"R{week}-{k},{service},{at:%Y-%m-%dT%H:%M:%SZ},{end:%Y-%m-%dT%H:%M:%SZ}")
    return "\n".join(lines) + "\n"
