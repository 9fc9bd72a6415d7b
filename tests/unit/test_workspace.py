"""Workspace: a run's files in a local folder or in object storage (a real S3 server)."""

from __future__ import annotations

import boto3
import pytest
from whatif.sources import storage_path
from whatif.workspace import download, upload, workspace


def s3_keys(endpoint: str, bucket: str) -> dict[str, bytes]:
    client = boto3.client("s3", endpoint_url=endpoint)
    listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed}


def test_a_local_location_is_the_folder_itself(tmp_path):
    with workspace(str(tmp_path / "run-1")) as folder:
        (folder / "model.json").write_text("{}")
    assert (tmp_path / "run-1" / "model.json").read_text() == "{}"
    with workspace((tmp_path / "run-1").as_uri()) as folder:
        assert (folder / "model.json").read_text() == "{}"


def test_object_storage_round_trips_the_files_and_uploads_only_changes(aws_env, tmp_path):
    boto3.client("s3", endpoint_url=aws_env).create_bucket(Bucket="work")
    with workspace("s3://work/runs/run-1") as folder:
        (folder / "_stage").mkdir()
        (folder / "_stage" / "incidents.parquet").write_bytes(b"PAR1")
        (folder / "validation.json").write_text("{}")
    assert s3_keys(aws_env, "work") == {
        "runs/run-1/_stage/incidents.parquet": b"PAR1",
        "runs/run-1/validation.json": b"{}",
    }
    with workspace("s3://work/runs/run-1") as folder:  # the next task, on another worker
        assert (folder / "_stage" / "incidents.parquet").read_bytes() == b"PAR1"
        (folder / "model.json").write_text('{"schema_version": 1}')
    assert s3_keys(aws_env, "work")["runs/run-1/model.json"] == b'{"schema_version": 1}'
    remote = storage_path("s3://work/runs/run-1")
    before = download(remote, tmp_path)
    assert sorted(before) == ["_stage/incidents.parquet", "model.json", "validation.json"]
    (tmp_path / "validation.json").write_text('{"changed": true}')
    assert upload(tmp_path, remote, before) == 1  # the unchanged files are not sent again


def test_a_failed_stage_writes_nothing_back(aws_env):
    boto3.client("s3", endpoint_url=aws_env).create_bucket(Bucket="failed")
    with pytest.raises(RuntimeError), workspace("s3://failed/run") as folder:
        (folder / "model.json").write_text("half")
        raise RuntimeError("the stage failed")
    assert s3_keys(aws_env, "failed") == {}
