"""Fixtures: tiny inputs written on the fly, a CLI runner, the S3 server and the database.
What tests import by name lives in shared.py."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from shared import (
    INCIDENTS_CSV,
    PG_ADMIN_URL,
    SAMPLE_INCIDENTS,
    SAMPLE_TOPOLOGY,
    TOPOLOGY_CSV,
    free_port,
    write,
)
from whatif.cli import main

# Tests never touch the project's own Airflow home: anything that imports Airflow here
# (publishing through ObjectStoragePath, DAG parsing) gets a throw-away one.
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="whatif-test-airflow-")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")


@pytest.fixture
def small_inputs(tmp_path: Path) -> tuple[Path, Path]:
    """(incidents, topology) for the small shop."""
    return write(tmp_path, "incidents.csv", INCIDENTS_CSV), write(
        tmp_path, "topology.csv", TOPOLOGY_CSV
    )


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Run the CLI in-process: (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        try:
            code = main([str(a) for a in args])
        except SystemExit as exit_:  # argparse errors
            code = int(exit_.code or 0)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """moto's standalone S3 server on loopback, with the sample uploaded to s3://data/."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        import boto3

        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="test",
            aws_secret_access_key="test",
            region_name="us-east-1",
        )
        for _ in range(100):
            try:
                client.create_bucket(Bucket="data")
                break
            except Exception:  # the server is still starting
                time.sleep(0.1)
        client.upload_file(str(SAMPLE_INCIDENTS), "data", "exports/incidents.csv")
        client.upload_file(str(SAMPLE_TOPOLOGY), "data", "exports/topology.csv")
        yield endpoint
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def aws_env(s3_server, monkeypatch) -> str:
    """Credentials and endpoint of the S3 server, as the environment gives them to boto."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": s3_server,
    }.items():
        monkeypatch.setenv(name, value)
    return s3_server


@pytest.fixture(scope="session")
def database() -> Iterator[str]:
    """A fresh database on the local PostgreSQL server, dropped afterwards."""
    import sqlalchemy

    name = f"whatif_test_{uuid.uuid4().hex[:8]}"
    admin = sqlalchemy.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(scope="session")
def loaded_database(database) -> str:
    from whatif.cli import main

    assert main(["load-sample", "--db-url", database]) == 0
    assert main(["load-sample", "--db-url", database]) == 0  # idempotent: replaces, no duplicates
    return database
