"""Publish: dated run folders, a `latest` written last, idempotent re-runs."""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
import uuid
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from whatif import pipeline, publish, runs
from whatif.errors import UserError
from whatif.publish import MANIFEST


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


# ---------------------------------------------------------------- idempotent per run


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path) -> tuple[str, Callable[[], dict[str, bytes]]]:
    """(a fresh publish target, a function listing every object under it: relative key ->
    bytes), on the local file store or on moto's S3 server (read back with boto3, past
    fsspec's caches)."""
    if request.param == "local":
        root = tmp_path / f"reports-{uuid.uuid4().hex[:6]}"

        def local() -> dict[str, bytes]:
            files = (p for p in root.rglob("*") if p.is_file())
            return {p.relative_to(root).as_posix(): p.read_bytes() for p in files}

        return root.as_uri(), local
    import boto3

    client = boto3.client("s3", endpoint_url=request.getfixturevalue("aws_env"))
    bucket = f"reports-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)

    def s3() -> dict[str, bytes]:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="w/")
        keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
        return {
            k.removeprefix("w/"): client.get_object(Bucket=bucket, Key=k)["Body"].read()
            for k in keys
        }

    return f"s3://{bucket}/w", s3


def _scenarios(run: dict[str, str] | None, as_of: str = "2026-11-30T06:00:00+00:00") -> str:
    return json.dumps({"as_of": as_of, "scenarios": [], **({"run": run} if run else {})})


def test_publishing_a_run_folder_again_adds_no_object(store, tmp_path):
    """The run's id and date come from its scenarios.json: a second publish of the folder
    rewrites the same keys, in the same number, and latest names that run."""
    target, listing = store
    run = {"id": "scheduled__2026-11-30T06:00:00+00:00", "date": "2026-11-30"}
    source = _run_folder(tmp_path, {"report.html": "<p>1</p>", "scenarios.json": _scenarios(run)})
    (source / "plots").mkdir()
    (source / "plots" / "risk.svg").write_text("<svg/>")
    first = pipeline.run_publish(source, target)
    before = listing()
    again = pipeline.run_publish(source, target)
    after = listing()
    assert first == again and sorted(after) == sorted(before) and len(after) == len(before) == 8
    folder = "2026-11-30/scheduled__2026-11-30T06_00_00_00_00"
    assert {k for k in after if not k.startswith("latest/")} == {
        f"{folder}/{name}" for name in ("report.html", "scenarios.json", "plots/risk.svg", MANIFEST)
    }
    assert json.loads(after["latest/manifest.json"])["run_id"] == run["id"]


def test_a_scenarios_json_without_a_run_gets_a_stable_id_from_its_content(tmp_path):
    """An older run folder: its id is a digest of scenarios.json and its date the history's
    end, never the clock, so publishing it twice lands in one place."""
    source = _run_folder(tmp_path, {"report.html": "r", "scenarios.json": _scenarios(None)})
    first = runs.of_folder(source)
    assert first == runs.of_folder(source) and first.date == "2026-11-30"
    assert first.id == "content__" + _sha(_scenarios(None).encode())[:12]
    target = tmp_path / "reports"
    for _ in range(2):
        pipeline.run_publish(source, str(target))
    assert sorted(p.name for p in (target / "2026-11-30").iterdir()) == [first.id]
    (source / "scenarios.json").write_text(_scenarios(None, "2026-11-23T06:00:00+00:00"))
    other = runs.of_folder(source)
    assert other.id != first.id and other.date == "2026-11-23"
    with pytest.raises(UserError, match=r"no scenarios\.json"):
        runs.of_folder(tmp_path / "nowhere")


def _two_runs(tmp_path: Path, files: int = 8) -> dict[str, tuple[Path, dict[str, bytes]]]:
    """Two runs with the same file names but other contents, and one file each of their own
    (so that latest must also drop the other run's)."""
    made = {}
    for run in ("A", "B"):
        contents = {f"f{i:02d}.txt": f"{run}{i}".encode() * (i + 1) for i in range(files)}
        contents[f"only_{run}.txt"] = run.encode()
        source = tmp_path / f"run-{run}-{uuid.uuid4().hex[:6]}"
        for name, data in contents.items():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            (source / name).write_bytes(data)
        made[run] = (source, contents)
    return made


def _publish_at_once(made: dict[str, tuple[Path, dict[str, bytes]]], target: str) -> None:
    """Publish every run in its own thread (named after the run), all at once."""
    errors: list[BaseException] = []

    def one(run: str) -> None:
        source, contents = made[run]
        try:
            publish.publish(source, sorted(contents), target, date(2026, 11, 30), run)
        except BaseException as error:  # reported below, in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=one, args=(run,), name=run) for run in made]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors


def _latest_mix(objects: dict[str, bytes], made: dict[str, tuple[Path, dict[str, bytes]]]) -> str:
    """Why `latest` is not exactly the complete run its manifest names ('' when it is)."""
    latest = {k.removeprefix("latest/"): v for k, v in objects.items() if k.startswith("latest/")}
    manifest = json.loads(latest.pop(MANIFEST))
    run = manifest["run_id"]
    expected = {name: _sha(data) for name, data in made[run][1].items()}
    folder = {
        k.split("/", 2)[2]: v for k, v in objects.items() if k.startswith(f"2026-11-30/{run}/")
    }
    problems = [
        f"manifest of {run} lists other files" * (manifest["files"] != expected),
        f"run folder of {run} incomplete" * (set(folder) != {*expected, MANIFEST}),
        *(f"latest/{n} is not {run}'s" for n in latest if _sha(latest[n]) != expected.get(n)),
        *(f"latest/{n} missing" for n in expected if n not in latest),
    ]
    return "; ".join(p for p in problems if p)


def test_concurrent_publishes_leave_latest_at_one_complete_run(store, tmp_path, monkeypatch):
    """Two runs published at the same time, their writes jittered so that they interleave
    differently in every trial: afterwards latest/manifest.json names one of them, and every
    file in latest/ is that run's (its SHA-256 in the manifest), none missing, none extra."""
    target, listing = store
    real = publish._write

    def jittered(destination: Any, data: bytes) -> None:
        time.sleep(random.uniform(0, 0.003))
        real(destination, data)

    monkeypatch.setattr(publish, "_write", jittered)
    winners = []
    for trial in range(8):
        made = _two_runs(tmp_path)
        _publish_at_once(made, f"{target}/trial-{trial}")
        objects = {
            k.removeprefix(f"trial-{trial}/"): v
            for k, v in listing().items()
            if k.startswith(f"trial-{trial}/")
        }
        assert not _latest_mix(objects, made), (trial, _latest_mix(objects, made))
        assert not [k for k in objects if k.endswith(publish.PARTIAL)]
        winners.append(json.loads(objects["latest/manifest.json"])["run_id"])
    assert set(winners) <= {"A", "B"}


def _interleave_worst_case(made: dict, target: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """B writes latest/f00 first, then A overwrites it; A writes its manifest, then B: without
    settling, latest/manifest.json would name B while latest/f00 is A's."""
    b_wrote_f00, a_wrote_manifest = threading.Event(), threading.Event()
    real = publish._write

    def ordered(destination: Any, data: bytes) -> None:
        name, run = str(destination), threading.current_thread().name
        if run == "A" and name.endswith("latest/f00.txt"):
            assert b_wrote_f00.wait(30)
        if run == "B" and name.endswith(f"latest/{MANIFEST}"):
            assert a_wrote_manifest.wait(30)
        real(destination, data)
        if run == "B" and name.endswith("latest/f00.txt"):
            b_wrote_f00.set()
        if run == "A" and name.endswith(f"latest/{MANIFEST}"):
            a_wrote_manifest.set()

    monkeypatch.setattr(publish, "_write", ordered)
    _publish_at_once(made, target)
    monkeypatch.setattr(publish, "_write", real)


def test_the_worst_interleaving_is_settled_and_would_mix_latest_otherwise(
    store, tmp_path, monkeypatch
):
    target, listing = store
    made = _two_runs(tmp_path)
    _interleave_worst_case(made, f"{target}/settled", monkeypatch)
    objects = {k.removeprefix("settled/"): v for k, v in listing().items() if "settled/" in k}
    assert json.loads(objects["latest/manifest.json"])["run_id"] == "B"
    assert not _latest_mix(objects, made)

    monkeypatch.setattr(publish, "_settle", lambda root, latest: 1)  # the naive protocol
    _interleave_worst_case(made, f"{target}/naive", monkeypatch)
    objects = {k.removeprefix("naive/"): v for k, v in listing().items() if "naive/" in k}
    assert "latest/f00.txt is not B's" in _latest_mix(objects, made)


def test_a_latest_that_keeps_changing_gives_up_after_a_bounded_wait(tmp_path, monkeypatch):
    """Publishes that never finish (here: every pass finds something to change) make this
    one fail after SETTLE_PASSES, for a retry, rather than wait forever."""
    source = _run_folder(tmp_path, {"report.html": "r"})
    monkeypatch.setattr(publish, "SETTLE_PASSES", 3)
    monkeypatch.setattr(publish, "_align", lambda root, latest, manifest: True)
    with pytest.raises(publish.PublishConflict, match="kept changing"):
        publish.publish(source, ["report.html"], str(tmp_path / "r"), date(2026, 11, 30), "r1")
    assert (tmp_path / "r" / "2026-11-30" / "r1" / MANIFEST).exists()  # the run folder is whole


def test_publishing_to_an_unreachable_endpoint_is_the_users_to_fix(aws_env, tmp_path, monkeypatch):
    import s3fs
    from shared import free_port
    from whatif.errors import UserError

    (tmp_path / "report.md").write_text("# report\n")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # nobody there
    s3fs.S3FileSystem.clear_instance_cache()  # a client for the new endpoint, as a new run
    try:
        with pytest.raises(UserError, match=r"s3://data/reports: cannot reach the object-stor"):
            publish.publish(tmp_path, ["report.md"], "s3://data/reports", date(2026, 11, 1), "r")
    finally:
        s3fs.S3FileSystem.clear_instance_cache()


def _publishable(tmp_path: Path) -> Path:
    run = {"id": "r1", "date": "2026-11-30"}
    return _run_folder(tmp_path, {"report.md": "# report\n", "scenarios.json": _scenarios(run)})


def test_publishing_without_credentials_is_one_line(aws_env, run_cli, tmp_path, monkeypatch):
    import s3fs

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    s3fs.S3FileSystem.clear_instance_cache()
    try:
        code, out, err = run_cli("publish", _publishable(tmp_path), "--to", "s3://data/reports")
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
    assert (code, out) == (2, "")
    assert err.strip() == (
        "whatif: error: s3://data/reports: no credentials for object storage (set "
        "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE))"
    )


def test_publishing_where_the_credentials_may_not_write_is_one_line(aws_env, run_cli, tmp_path):
    import s3fs
    from fakes.loopback import s3_refusing

    with s3_refusing("AccessDenied") as endpoint:
        s3fs.S3FileSystem.clear_instance_cache()
        try:
            code, _, err = run_cli(
                "publish", _publishable(tmp_path), "--to", "s3://data/reports",
                "--endpoint-url", endpoint,
            )  # fmt: skip
        finally:
            s3fs.S3FileSystem.clear_instance_cache()
    assert code == 2 and err.strip() == (
        "whatif: error: s3://data/reports: access denied (check AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), and that they may write there: the user's "
        "permissions, the bucket's policy)"
    )


def test_publishing_to_a_local_folder_that_cannot_be_made_is_one_line(run_cli, tmp_path):
    a_file = tmp_path / "taken"
    a_file.write_text("x")
    code, _, err = run_cli("publish", _publishable(tmp_path), "--to", a_file / "reports")
    assert code == 2 and err.strip() == (
        f"whatif: error: {a_file / 'reports'}: cannot write there (Not a directory) (name a "
        "folder you can write to)"
    )
