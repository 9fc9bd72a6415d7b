"""Sources: files in three formats, object storage through a real S3-protocol server (moto),
and PostgreSQL through the package's SQL (resources/sql), each giving the same result as the
sample CSV."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from shared import SAMPLE_AS_OF, SAMPLE_INCIDENTS, SAMPLE_TOPOLOGY, free_port, write
from whatif import ingest, resources, runfolder, sources
from whatif.errors import UserError


def clean_tables(run_cli, out: Path, *source_args: str) -> tuple[str, str]:
    """The validated incidents and topology that a source yields (as staged for the model)."""
    code, _, err = run_cli(
        "run", *source_args, "--out", out, "--as-of", SAMPLE_AS_OF, "--draws", "200"
    )
    assert code == 0, err
    topology = runfolder.stage_path(out, runfolder.CLEAN_TOPOLOGY_FILE)
    return clean_incidents(out), topology.read_text()


def clean_incidents(out: Path) -> pd.DataFrame:
    return pd.read_parquet(runfolder.stage_path(out, runfolder.CLEAN_INCIDENTS_FILE))


def scenarios_without_timestamp(out: Path) -> dict:
    document = json.loads((out / "scenarios.json").read_text())
    document.pop("generated_at")
    return document


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The sample run from the CSV files, the result every other source must reproduce."""
    from whatif.cli import main

    out = tmp_path_factory.mktemp("reference")
    assert (
        main(
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
                "200",
            ]
        )
        == 0
    )
    return out


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl"])
def test_parquet_and_json_lines_give_the_same_result_as_csv(suffix, reference, run_cli, tmp_path):
    frame = pd.read_csv(SAMPLE_INCIDENTS, dtype=str, keep_default_na=False)
    path = tmp_path / f"incidents{suffix}"
    if suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_json(path, orient="records", lines=True)
    incidents, _ = clean_tables(
        run_cli, tmp_path / "out", "--incidents", path, "--topology", SAMPLE_TOPOLOGY
    )
    pd.testing.assert_frame_equal(incidents, clean_incidents(reference))
    assert (
        scenarios_without_timestamp(tmp_path / "out")["scenarios"]
        == (scenarios_without_timestamp(reference)["scenarios"])
    )


def test_file_urls_work_like_paths(reference, run_cli, tmp_path):
    incidents, _ = clean_tables(
        run_cli,
        tmp_path / "out",
        "--incidents",
        SAMPLE_INCIDENTS.as_uri(),
        "--topology",
        SAMPLE_TOPOLOGY.as_uri(),
    )
    pd.testing.assert_frame_equal(incidents, clean_incidents(reference))


def test_aliases_rename_services_before_matching(run_cli, tmp_path):
    text = SAMPLE_INCIDENTS.read_text().replace(",postgres-primary,", ",pg-main,")
    incidents = write(tmp_path, "incidents.csv", text)
    aliases = write(tmp_path, "aliases.csv", "alias,service\nPG-Main,postgres-primary\n")
    args = [
        "validate",
        "--incidents",
        incidents,
        "--topology",
        SAMPLE_TOPOLOGY,
        "--as-of",
        SAMPLE_AS_OF,
        "--out",
        tmp_path / "validation.json",
    ]
    code, _, _ = run_cli(*args)
    unaliased = json.loads((tmp_path / "validation.json").read_text())["inputs"]["incidents"]
    assert code == 0 and unaliased["quarantined_by_reason"]["unknown_service"] > 0
    code, _, _ = run_cli(*args, "--aliases", aliases)
    aliased = json.loads((tmp_path / "validation.json").read_text())["inputs"]["incidents"]
    assert code == 0 and "unknown_service" not in aliased["quarantined_by_reason"]


def test_yaml_aliases(tmp_path):
    from whatif.validate import read_aliases

    path = write(tmp_path, "aliases.yaml", "pg-main: postgres-primary\n'Web FE': web-frontend\n")
    assert read_aliases(str(path)) == {"pg-main": "postgres-primary", "Web FE": "web-frontend"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-01 12:00:00 Europe/Paris", "2026-03-01T11:00:00+00:00"),
        ("2026-07-01T12:00:00 [America/New_York]", "2026-07-01T16:00:00+00:00"),
        ("2026-07-01 09:00 PDT", "2026-07-01T16:00:00+00:00"),
        ("2026-07-01 09:00 Mars/Olympus", None),
    ],
)
def test_named_time_zones(text, expected):
    parsed = ingest.parse_timestamps(pd.Series([text])).iloc[0]
    assert (None if pd.isna(parsed) else parsed.isoformat()) == expected


def test_naive_timestamps_of_a_mapping_use_its_zone():
    parsed = ingest.parse_timestamps(pd.Series(["2026-01-15 09:30:00"]), "America/Chicago")
    assert parsed.iloc[0].isoformat() == "2026-01-15T15:30:00+00:00"


# --- object storage: a real S3-protocol server ------------------------------------------


def test_s3_urls_give_the_same_result_as_the_files(aws_env, reference, run_cli, tmp_path):
    incidents, topology = clean_tables(
        run_cli,
        tmp_path / "out",
        "--incidents",
        "s3://data/exports/incidents.csv",
        "--topology",
        "s3://data/exports/topology.csv",
    )
    pd.testing.assert_frame_equal(incidents, clean_incidents(reference))
    assert topology == runfolder.stage_path(reference, runfolder.CLEAN_TOPOLOGY_FILE).read_text()


def test_missing_s3_object_is_a_one_line_error(aws_env, run_cli):
    code, _, err = run_cli(
        "validate", "--incidents", "s3://data/exports/nope.csv", "--topology", SAMPLE_TOPOLOGY
    )
    assert code == 2
    assert err.strip().splitlines()[-1] == (
        "whatif: error: s3://data/exports/nope.csv: not found in object storage "
        "(check the URL and the connection)"
    )


# --- PostgreSQL: resources/sql on a real server ----------------------------------------


def test_load_sample_fills_the_tables_once(loaded_database):
    import sqlalchemy

    engine = sqlalchemy.create_engine(loaded_database)
    with engine.connect() as connection:
        incidents = connection.exec_driver_sql("SELECT count(*) FROM whatif_incidents").scalar()
        services = connection.exec_driver_sql("SELECT count(*) FROM whatif_services").scalar()
    engine.dispose()
    assert incidents == len(SAMPLE_INCIDENTS.read_text().strip().splitlines()) - 1
    assert services == len(SAMPLE_TOPOLOGY.read_text().strip().splitlines()) - 1


def test_sql_source_equals_the_file_source_row_for_row(
    loaded_database, reference, run_cli, tmp_path
):
    incidents, topology = clean_tables(
        run_cli, tmp_path / "out", "--incidents-sql-url", loaded_database, "--topology-from-sql"
    )
    pd.testing.assert_frame_equal(incidents, clean_incidents(reference))
    assert topology == runfolder.stage_path(reference, runfolder.CLEAN_TOPOLOGY_FILE).read_text()
    assert (
        scenarios_without_timestamp(tmp_path / "out")["scenarios"]
        == (scenarios_without_timestamp(reference)["scenarios"])
    )
    assert (tmp_path / "out" / "model.json").read_bytes() == (reference / "model.json").read_bytes()


def test_sql_window_comes_from_bind_parameters(loaded_database):
    frame = sources.read_sql(
        resources.folder("sql") / "extract_incidents.sql",
        sources.sqlalchemy_fetch(loaded_database),
        {
            "window_start": pd.Timestamp("2025-01-01T00:00:00Z"),
            "window_end": pd.Timestamp("2025-02-01T00:00:00Z"),
        },
        "db",
    )
    started = pd.to_datetime(frame["started_at"], utc=True)
    assert len(frame) > 0
    assert started.min() > pd.Timestamp("2025-01-01T00:00:00Z")
    assert started.max() <= pd.Timestamp("2025-02-01T00:00:00Z")
    assert list(frame["_row"]) == list(range(1, len(frame) + 1))


def test_bad_database_url_is_one_line_without_the_password(run_cli):
    url = "postgresql://someone:s3cret@127.0.0.1:5432/does_not_exist_db"
    code, _, err = run_cli("validate", "--incidents-sql-url", url, "--topology", SAMPLE_TOPOLOGY)
    assert code == 2
    last = err.strip().splitlines()[-1]
    assert last.startswith("whatif: error: postgresql://someone:***@127.0.0.1:5432/")
    assert "s3cret" not in err and "Traceback" not in err


def test_source_flags_must_make_sense(run_cli):
    code, _, err = run_cli("validate", "--topology", SAMPLE_TOPOLOGY)
    assert code == 2 and "give --incidents PATH|URL or --incidents-sql-url URL" in err
    code, _, err = run_cli("validate", "--incidents", SAMPLE_INCIDENTS, "--topology-from-sql")
    assert code == 2 and "--topology-from-sql needs --incidents-sql-url" in err


def test_unreadable_sql_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="SQL file not found"):
        sources.read_sql(tmp_path / "missing.sql", lambda sql, params: pd.DataFrame(), {}, "db")


def test_object_storage_credentials_and_endpoints_are_the_users_to_fix(
    s3_server, run_cli, monkeypatch
):
    """exit 2 with what to check, never "internal error": no credentials, an endpoint that
    refuses connections (moto's S3 server, then a closed port)."""
    fresh_s3_clients()
    without_credentials(monkeypatch)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    code, _, err = read_from_s3(run_cli, "s3://data/exports/incidents.csv")
    assert code == 2, err
    assert err.strip() == (
        "whatif: error: s3://data/exports/incidents.csv: no credentials for object storage "
        "(set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE))"
    )
    fresh_s3_clients()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    closed = f"http://127.0.0.1:{free_port()}"  # nobody there
    monkeypatch.setenv("AWS_ENDPOINT_URL", closed)
    code, _, err = read_from_s3(run_cli, "s3://data/exports/incidents.csv")
    assert code == 2 and err.strip() == (
        f"whatif: error: s3://data/exports/incidents.csv: cannot reach the object-storage "
        f"endpoint {closed} (check AWS_ENDPOINT_URL or --endpoint-url, and that the server "
        "is up)"
    )
    fresh_s3_clients()


def test_a_missing_bucket_is_named_as_such(aws_env, run_cli):
    fresh_s3_clients()
    code, _, err = read_from_s3(run_cli, "s3://no-such-bucket/incidents.csv")
    assert code == 2 and err.strip() == (
        "whatif: error: s3://no-such-bucket/incidents.csv: no such bucket (check the bucket "
        "name in the URL)"
    )


def test_a_bucket_that_refuses_the_credentials_is_the_users_to_fix(aws_env, run_cli, monkeypatch):
    from fakes.loopback import s3_refusing

    with s3_refusing("AccessDenied") as endpoint:
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        fresh_s3_clients()
        code, _, err = read_from_s3(run_cli, "s3://data/exports/incidents.csv")
    fresh_s3_clients()
    assert code == 2 and err.strip() == (
        "whatif: error: s3://data/exports/incidents.csv: access denied (check AWS_ACCESS_KEY_ID "
        "and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), and that they may read it: the user's "
        "permissions, the bucket's policy)"
    )


def test_the_servers_reason_wins_over_the_permission_error_s3fs_makes_of_it():
    from botocore.exceptions import ClientError

    refused = ClientError({"Error": {"Code": "InvalidAccessKeyId", "Message": "no"}}, "GetObject")
    try:
        raise PermissionError("no") from refused
    except PermissionError as error:
        mapped = sources.storage_error(error, "s3://b/k", None)
    assert str(mapped) == (
        "s3://b/k: the object-storage credentials are not valid (check AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE))"
    )


def test_the_dags_storage_errors_name_its_connection():
    from botocore.exceptions import EndpointConnectionError, NoCredentialsError

    no_credentials = sources.storage_error(NoCredentialsError(), "s3://b/k", "whatif_data")
    assert str(no_credentials) == (
        "s3://b/k: no credentials for object storage (give the Airflow connection whatif_data "
        "an access key id (login) and secret (password), or the workers' AWS_* variables)"
    )
    try:  # as s3fs raises it: the botocore error is the cause of another
        raise OSError("connection failed") from EndpointConnectionError(
            endpoint_url="http://minio:9000/b/k"
        )
    except OSError as error:
        unreachable = sources.storage_error(error, "s3://b/k", "whatif_data")
    assert str(unreachable) == (
        "s3://b/k: cannot reach the object-storage endpoint http://minio:9000 (check the "
        "endpoint_url of the Airflow connection whatif_data and that the server is up)"
    )
    assert sources.storage_error(ValueError("a bug"), "s3://b/k", None) is None


def without_credentials(monkeypatch) -> None:
    """No AWS credentials anywhere boto looks (variables, files, instance metadata)."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def read_from_s3(run_cli, url: str) -> tuple[int, str, str]:
    return run_cli("validate", "--incidents", url, "--topology", str(SAMPLE_TOPOLOGY))


def fresh_s3_clients() -> None:
    """s3fs keeps one client per set of arguments in a process: after the environment's
    credentials or endpoint change, the next read must make a new one, as a new run would."""
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()


def test_csv_cells_stay_as_written_in_every_column(tmp_path) -> None:
    """Columns pandas would read as numbers or booleans (read again as text, the fast path
    reads only text columns as text) keep the file's text: leading zeros, trailing zeros,
    exponents, spaces inside, words that look like booleans; an empty cell stays empty."""
    path = tmp_path / "incidents.csv"
    path.write_text("a,b,c,d,e\n007,1.50,x,True,1e3\n,2,y,False,\n3, 4e2 ,z,,NaN\n")
    frame = sources.read_table(str(path))
    assert frame.drop(columns="_row").to_dict("records") == [
        {"a": "007", "b": "1.50", "c": "x", "d": "True", "e": "1e3"},
        {"a": "", "b": "2", "c": "y", "d": "False", "e": ""},
        {"a": "3", "b": "4e2 ", "c": "z", "d": "", "e": "NaN"},
    ]
