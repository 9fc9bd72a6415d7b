"""Publish: dated run folders, a `latest` written last, idempotent re-runs."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from whatif import publish


def _run_folder(tmp_path, files: dict[str, str]):
    source = tmp_path / "run"
    source.mkdir(exist_ok=True)
    for name, text in files.items():
        (source / name).write_text(text)
    return source


def test_layout_is_date_run_id_and_latest(tmp_path):
    source = _run_folder(tmp_path, {"report.html": "<p>1</p>", "scenarios.json": "{}"})
    target = tmp_path / "reports"
    where = publish.publish(
        source,
        ["report.html", "scenarios.json"],
        target.as_uri(),
        date(2026, 11, 30),
        "manual__2026-11-30T06:00:00+00:00",
    )
    run = target / "2026-11-30" / "manual__2026-11-30T06_00_00_00_00"
    assert (run / "report.html").read_text() == "<p>1</p>"
    assert (target / "latest" / "scenarios.json").read_text() == "{}"
    assert where["run"].endswith("2026-11-30/manual__2026-11-30T06_00_00_00_00")


def test_republishing_a_run_rewrites_the_same_objects(tmp_path):
    source = _run_folder(tmp_path, {"report.html": "v1"})
    target = tmp_path / "reports"
    for text in ("v1", "v2"):
        (source / "report.html").write_text(text)
        publish.publish(source, ["report.html"], str(target), date(2026, 11, 30), "run-1")
    files = sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file())
    assert files == [
        "2026-11-30/run-1/manifest.json",
        "2026-11-30/run-1/report.html",
        "latest/manifest.json",
        "latest/report.html",
    ]
    assert (target / "latest" / "report.html").read_text() == "v2"


def test_latest_drops_files_the_new_run_does_not_have(tmp_path):
    target = tmp_path / "reports"
    source = _run_folder(tmp_path, {"report.html": "a", "quarantine.csv": "x"})
    publish.publish(
        source, ["report.html", "quarantine.csv"], str(target), date(2026, 11, 23), "run-1"
    )
    publish.publish(source, ["report.html"], str(target), date(2026, 11, 30), "run-2")
    assert not (target / "latest" / "quarantine.csv").exists()
    assert (target / "2026-11-23" / "run-1" / "quarantine.csv").exists()


def test_run_ids_become_safe_path_segments():
    assert publish.safe_run_id("scheduled__2026-11-30T06:00:00+00:00") == (
        "scheduled__2026-11-30T06_00_00_00_00"
    )
    assert publish.safe_run_id("../../etc") == "etc"


def test_publishing_to_object_storage_replaces_latest(aws_env, tmp_path):
    import boto3

    client = boto3.client("s3", endpoint_url=aws_env)
    client.create_bucket(Bucket="reports")
    source = _run_folder(tmp_path, {"report.html": "a", "quarantine.csv": "x"})
    publish.publish(
        source, ["report.html", "quarantine.csv"], "s3://reports/w", date(2026, 11, 23), "r1"
    )
    publish.publish(source, ["report.html"], "s3://reports/w", date(2026, 11, 30), "r2")
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket="reports")["Contents"])
    assert keys == [
        "w/2026-11-23/r1/manifest.json",
        "w/2026-11-23/r1/quarantine.csv",
        "w/2026-11-23/r1/report.html",
        "w/2026-11-30/r2/manifest.json",
        "w/2026-11-30/r2/report.html",
        "w/latest/manifest.json",
        "w/latest/report.html",
    ]
    manifest = client.get_object(Bucket="reports", Key="w/latest/manifest.json")["Body"].read()
    assert json.loads(manifest)["run_id"] == "r2"
    assert set(json.loads(manifest)["files"]) == {"report.html"}


def test_a_failure_while_publishing_leaves_the_previous_latest_intact(tmp_path, monkeypatch):
    target = tmp_path / "reports"
    source = _run_folder(tmp_path, {"report.html": "old", "scenarios.json": "{1}"})
    publish.publish(
        source, ["report.html", "scenarios.json"], str(target), date(2026, 11, 23), "run-1"
    )
    before = {
        p.relative_to(target / "latest"): p.read_bytes() for p in (target / "latest").rglob("*")
    }
    (source / "report.html").write_text("new")
    (source / "scenarios.json").write_text("{2}")
    writes = []
    real = publish._write

    def failing(destination, data):  # the object store fails on the run's second file
        writes.append(str(destination))
        if len(writes) == 2:
            raise OSError("connection reset by the object store")
        real(destination, data)

    monkeypatch.setattr(publish, "_write", failing)
    with pytest.raises(OSError):
        publish.publish(
            source, ["report.html", "scenarios.json"], str(target), date(2026, 11, 30), "run-2"
        )
    after = {
        p.relative_to(target / "latest"): p.read_bytes() for p in (target / "latest").rglob("*")
    }
    assert after == before and b'"run-1"' in after[Path("manifest.json")]
    monkeypatch.setattr(publish, "_write", real)  # a retry of the task then completes it
    publish.publish(
        source, ["report.html", "scenarios.json"], str(target), date(2026, 11, 30), "run-2"
    )
    assert (target / "latest" / "report.html").read_text() == "new"
