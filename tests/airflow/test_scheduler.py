"""The DAG under a real scheduler on this machine: Airflow on a fresh PostgreSQL metadata
database, the CeleryExecutor with Redis as broker, and api-server, scheduler, dag-processor
and a Celery worker as subprocesses. The run is triggered through the REST API v2 with params
(authenticated as a SimpleAuthManager admin), and the published report is checked.

Everything is bounded: the start-up, the run (RUN_TIMEOUT) and the shutdown (SIGTERM to each
process group, SIGKILL after STOP_TIMEOUT, then every descendant by pid, for the task
processes put themselves in their own groups; and SIGTERM if pytest itself dies). Runs of this
module on one machine (a checkout and a CI clone, say) take turns: a file lock guards Redis DB
11, which each flushes before and after."""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import hashlib
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest
from shared import PG_ADMIN_URL, PROJECT, free_port

pytestmark = pytest.mark.airflow

DAG_ID = "what_if_scenarios"
REDIS_HOST, REDIS_PORT, REDIS_DB = "127.0.0.1", 6379, 11
ADMIN = "whatif-admin"
LOCK_TIMEOUT = 300  # another run of this module holding Redis DB 11 (about 60 s a run)
MIGRATE_TIMEOUT = 180  # airflow db migrate on PostgreSQL (about 10 s here)
START_TIMEOUT = 180  # api-server answering and the DAG parsed and serialized (about 10 s)
RUN_TIMEOUT = 420  # the triggered run, queued to success (about 35 s)
STOP_TIMEOUT = 30  # SIGTERM to SIGKILL (about 5 s)
AIRFLOW = str(Path(sys.executable).parent / "airflow")


def _pg_url(database: str, driver: str = "postgresql") -> str:
    """PG_ADMIN_URL (postgresql://postgres@127.0.0.1:5432/postgres) on another database."""
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return f"{driver}{base[base.index(':') :]}/{database}"


def _admin_sql(statement: str) -> None:
    import psycopg2

    connection = psycopg2.connect(PG_ADMIN_URL, connect_timeout=10)
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(statement)
    finally:
        connection.close()


@contextlib.contextmanager
def _redis_db_lock() -> Iterator[None]:
    """This machine's runs of this module, one at a time (the lock dies with its holder)."""
    path = Path(tempfile.gettempdir()) / f"whatif-test-scheduler-redis-{REDIS_DB}.lock"
    with path.open("a") as lock:
        deadline = time.monotonic() + LOCK_TIMEOUT
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"another run of this test held {path} for {LOCK_TIMEOUT} s"
                    ) from None
                time.sleep(1)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _term_with_parent() -> None:
    """In the child before exec: SIGTERM when pytest dies (PR_SET_PDEATHSIG), so that a
    killed test run leaves no Airflow behind."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


def _drop_abandoned_databases() -> None:
    """Databases of earlier runs that died before their teardown (pytest killed): those of
    this module that nobody is connected to (a live run's components always are)."""
    import psycopg2

    connection = psycopg2.connect(PG_ADMIN_URL, connect_timeout=10)
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE 'whatif\\_sched\\_%' "
                "AND datname NOT IN (SELECT datname FROM pg_stat_activity "
                "WHERE datname IS NOT NULL)"
            )
            for (name,) in cursor.fetchall():
                with contextlib.suppress(psycopg2.Error):  # someone connected meanwhile
                    cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
    finally:
        connection.close()


def _flush_redis() -> None:
    import redis

    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB, socket_timeout=10)
    try:
        client.flushdb()
    finally:
        client.close()


def _tail(path: Path, lines: int = 60) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError as error:
        return f"({error})"
    return "\n".join(text[-lines:])


@dataclass
class Stack:
    """The running Airflow: where it lives and how to talk to it."""

    home: Path
    env: dict[str, str]
    url: str
    reports: Path
    default_reports: Path
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    token: str = ""

    @property
    def logs(self) -> Path:
        return self.home / "process-logs"

    def api(self, method: str, path: str, **kwargs):
        import requests

        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return requests.request(method, f"{self.url}{path}", headers=headers, timeout=30, **kwargs)

    def start(self, name: str, *args: str) -> None:
        log = (self.logs / f"{name}.log").open("ab")
        try:
            self.processes[name] = subprocess.Popen(
                [AIRFLOW, *args],
                env=self.env,
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group (and session)
                preexec_fn=_term_with_parent if sys.platform == "linux" else None,
            )
        finally:
            log.close()

    def check_alive(self) -> None:
        dead = {n: p.returncode for n, p in self.processes.items() if p.poll() is not None}
        if dead:
            raise AssertionError(f"Airflow processes exited early: {dead}\n{self.tails()}")

    def tails(self, lines: int = 60) -> str:
        return "\n".join(
            f"----- {log.name} (last {lines} lines) -----\n{_tail(log, lines)}"
            for log in sorted(self.logs.glob("*.log"))
        )

    def task_logs(self, run_id: str, task_ids: set[str], lines: int = 40) -> str:
        """The tail of the newest attempt of each of `task_ids` in this run (local files:
        every component runs on this machine and writes under AIRFLOW_HOME/logs)."""
        root = self.home / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}"
        parts = []
        for task_id in sorted(task_ids):
            for log in sorted((root / f"task_id={task_id}").rglob("attempt=*.log"))[-3:]:
                parts.append(f"----- {log.relative_to(root)} -----\n{_tail(log, lines)}")
        return "\n".join(parts) or f"(no task logs under {root})"

    def stop(self) -> None:
        """SIGTERM to every process group, SIGKILL to what is left after STOP_TIMEOUT, then
        the descendants that left the groups (Airflow's task processes call setpgid)."""
        import psutil

        family: dict[int, psutil.Process] = {}
        for process in self.processes.values():
            with contextlib.suppress(psutil.NoSuchProcess):
                parent = psutil.Process(process.pid)
                family[parent.pid] = parent
                family.update({c.pid: c for c in parent.children(recursive=True)})
        for process in self.processes.values():
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for process in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
        for process in self.processes.values():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)  # the group, even if its leader is gone
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
        for member in family.values():  # only what this fixture started, by pid
            with contextlib.suppress(psutil.NoSuchProcess):
                if member.is_running() and member.status() != psutil.STATUS_ZOMBIE:
                    member.kill()
        psutil.wait_procs(list(family.values()), timeout=10)


def _airflow_env(home: Path, database: str, port: int, reports: Path) -> dict[str, str]:
    from cryptography.fernet import Fernet

    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_")},
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "PYTHONPATH": str(PROJECT / "plugins"),
        "GX_ANALYTICS_ENABLED": "False",
        # PostgreSQL metadata database; CeleryExecutor, Redis broker, results in PostgreSQL.
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": _pg_url(database, "postgresql+psycopg2"),
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CELERY__BROKER_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}",
        "AIRFLOW__CELERY__RESULT_BACKEND": _pg_url(database, "db+postgresql"),
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
        # Workers run tasks through the api-server's Execution API, with tokens the scheduler
        # signs: one secret for every component.
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}/",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
        "AIRFLOW__API__SECRET_KEY": secrets.token_hex(32),
        "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
        # SimpleAuthManager with one admin whose password this fixture writes beforehand.
        "AIRFLOW__CORE__AUTH_MANAGER": (
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        # The test unpauses what_if_scenarios itself. Its weekly schedule stays off: with
        # catchup=False, unpausing would at once queue a run of the latest interval with the
        # default params (10,000 draws, 6 backtest folds) ahead of the triggered one.
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        # Fast loops; one parsing process and one sync process on two cores.
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10",
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_STORAGE_PATH": str(home / "bundles"),
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
        "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "1",
        "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
        "AIRFLOW__CELERY__SYNC_PARALLELISM": "1",
        # The worker's log server on a free port (8793 may be taken by another Airflow).
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        # The DAG's own files: work folders and the default publish target in tmp.
        "WHATIF_WORK_DIR": str(home / "work"),
        "WHATIF_REPORTS_URL": reports.as_uri(),
    }


def _run(env: dict[str, str], *args: str, timeout: int) -> None:
    result = subprocess.run(
        [AIRFLOW, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    output = result.stdout[-3000:] + result.stderr[-3000:]
    assert result.returncode == 0, f"airflow {' '.join(args)}:\n{output}"


def _wait_until_ready(stack: Stack) -> None:
    """The api-server answers, the admin gets a token, the DAG is parsed and serialized."""
    import requests

    deadline = time.monotonic() + START_TIMEOUT
    password = json.loads((stack.home / "passwords.json").read_text())[ADMIN]
    while True:
        stack.check_alive()
        if time.monotonic() > deadline:
            raise AssertionError(f"the api-server did not answer in time\n{stack.tails()}")
        try:
            answer = requests.post(
                f"{stack.url}/auth/token",
                json={"username": ADMIN, "password": password},
                timeout=10,
            )
            if answer.status_code == 201:
                stack.token = answer.json()["access_token"]
                break
        except requests.RequestException:
            pass
        time.sleep(1)
    while True:
        stack.check_alive()
        answer = stack.api("GET", f"/api/v2/dags/{DAG_ID}")
        if answer.status_code == 200:
            details = stack.api("GET", f"/api/v2/dags/{DAG_ID}/details")
            if details.status_code == 200:
                return
        if time.monotonic() > deadline:
            errors = stack.api("GET", "/api/v2/importErrors").text
            raise AssertionError(
                f"{DAG_ID} was not parsed in time ({answer.status_code}); import errors: "
                f"{errors}\n{stack.tails()}"
            )
        time.sleep(2)


@pytest.fixture(scope="module")
def airflow_stack(request, tmp_path_factory) -> Iterator[Stack]:
    """api-server, scheduler, dag-processor and a Celery worker on a fresh PostgreSQL
    database and Redis DB 11; all stopped, and the database dropped, at the end."""
    home = tmp_path_factory.mktemp("sched_airflow_home")
    port = free_port()
    database = f"whatif_sched_{uuid.uuid4().hex[:10]}"
    stack = Stack(
        home=home,
        env=_airflow_env(home, database, port, home / "default-reports"),
        url=f"http://127.0.0.1:{port}",
        reports=home / "reports",
        default_reports=home / "default-reports",
    )
    stack.logs.mkdir()
    # A known admin: SimpleAuthManager keeps the passwords it finds in this file.
    (home / "passwords.json").write_text(json.dumps({ADMIN: secrets.token_urlsafe(16)}))
    failed_before = request.session.testsfailed
    with _redis_db_lock():
        _drop_abandoned_databases()
        _admin_sql(f'CREATE DATABASE "{database}"')
        try:
            _flush_redis()
            _run(stack.env, "db", "migrate", timeout=MIGRATE_TIMEOUT)
            _run(
                stack.env,
                "pools",
                "set",
                "whatif_llm",
                "4",
                "LLM calls of the what-if narration",
                timeout=120,
            )
            stack.start("api-server", "api-server", "--host", "127.0.0.1", "--port", str(port))
            stack.start("scheduler", "scheduler", "--skip-serve-logs")
            stack.start("dag-processor", "dag-processor")
            stack.start(
                "celery-worker",
                "celery",
                "worker",
                "--concurrency",
                "2",
                "--celery-hostname",
                f"whatif-{uuid.uuid4().hex[:8]}@%h",
                "--without-gossip",
                "--without-mingle",
            )
            _wait_until_ready(stack)
            yield stack
        finally:
            stack.stop()
            if request.session.testsfailed > failed_before:
                # Shown whatever the capture mode: the components' own logs.
                sys.__stderr__.write(f"\nAirflow process logs ({home}):\n{stack.tails(80)}\n")
            try:
                _flush_redis()
            finally:
                _admin_sql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def _task_instances(stack: Stack, run_id: str) -> list[dict]:
    answer = stack.api(
        "GET",
        f"/api/v2/dags/{DAG_ID}/dagRuns/{urllib.parse.quote(run_id, safe='')}/taskInstances",
        params={"limit": 100},
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["task_instances"]


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _states(instances: list[dict]) -> str:
    return "\n".join(
        f"  {t['task_id']}[{t['map_index']}] {t['state']} try {t['try_number']}"
        for t in sorted(instances, key=lambda t: (t["task_id"], t["map_index"]))
    )


# The fixture's own bounds (lock, migrate, start, run, stop) fire first, with the logs.
@pytest.mark.timeout(LOCK_TIMEOUT + MIGRATE_TIMEOUT + START_TIMEOUT + RUN_TIMEOUT + 120)
def test_a_run_triggered_through_the_rest_api_succeeds_under_the_celery_executor(
    airflow_stack: Stack,
):
    stack = airflow_stack
    answer = stack.api("PATCH", f"/api/v2/dags/{DAG_ID}", json={"is_paused": False})
    assert answer.status_code == 200 and answer.json()["is_paused"] is False, answer.text
    conf = {
        "draws": 300,
        "cascade_draws": 200,
        "scenarios": 3,
        "backtest_folds": 0,
        "publish_targets": [stack.reports.as_uri()],
        "event_name": "Load test",
        "event_start": "2026-12-01",
        "event_end": "2026-12-03",
        "traffic_multiplier": 2,
        "what_if": ["dns"],
    }
    # A param outside its schema is refused at the door, and no run is created.
    bad = stack.api(
        "POST",
        f"/api/v2/dags/{DAG_ID}/dagRuns",
        json={"logical_date": None, "conf": {**conf, "scenarios": 0}},
    )
    assert bad.status_code == 400, (bad.status_code, bad.text)
    # logical_date is required in the body but may be null for a manual run (Airflow 3).
    answer = stack.api(
        "POST", f"/api/v2/dags/{DAG_ID}/dagRuns", json={"logical_date": None, "conf": conf}
    )
    assert answer.status_code == 200, answer.text
    run = answer.json()
    run_id = run["dag_run_id"]
    assert run["logical_date"] is None and run["conf"] == conf
    quoted = urllib.parse.quote(run_id, safe="")

    started = time.monotonic()
    state = run["state"]
    while state not in ("success", "failed"):
        stack.check_alive()
        instances = _task_instances(stack, run_id)
        # A task that fails here is retried after minutes (retry_delay): report it at once.
        broken = {t["task_id"] for t in instances if t["state"] in ("failed", "up_for_retry")}
        if broken:
            pytest.fail(
                f"run {run_id}: task(s) {sorted(broken)} failed\n{_states(instances)}\n"
                f"{stack.task_logs(run_id, broken)}"
            )
        if time.monotonic() - started > RUN_TIMEOUT:
            pytest.fail(
                f"run {run_id} still {state} after {RUN_TIMEOUT} s\n{_states(instances)}\n"
                f"{stack.tails()}"
            )
        time.sleep(3)
        answer = stack.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{quoted}")
        assert answer.status_code == 200, answer.text
        state = answer.json()["state"]
    elapsed = time.monotonic() - started
    instances = _task_instances(stack, run_id)
    if state != "success":
        broken = {t["task_id"] for t in instances if t["state"] != "success"}
        pytest.fail(
            f"run {run_id} ended {state}\n{_states(instances)}\n{stack.task_logs(run_id, broken)}"
        )
    print(f"run {run_id}: success in {elapsed:.1f} s")

    # Every task ran once on the Celery worker; the mapped narration once per scenario.
    assert {t["state"] for t in instances} == {"success"}, _states(instances)
    assert {t["try_number"] for t in instances} == {1}, _states(instances)
    assert {t["executor"] for t in instances} <= {None, "CeleryExecutor"}, _states(instances)
    narrate = [t for t in instances if t["task_id"] == "narrate_scenario"]
    assert sorted(t["map_index"] for t in narrate) == [0, 1, 2], _states(instances)
    mapped = stack.api(
        "GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{quoted}/taskInstances/narrate_scenario/listMapped"
    )
    assert mapped.status_code == 200, mapped.text
    mapped_tis = mapped.json()["task_instances"]
    assert len(mapped_tis) == 3 and {t["state"] for t in mapped_tis} == {"success"}
    assert {t["pool"] for t in mapped_tis} == {"whatif_llm"}

    # The published report: the run folder and latest, the manifest last.
    latest = stack.reports / "latest"
    for name in ("report.html", "report.md", "scenarios.json", "model.json", "manifest.json"):
        assert (latest / name).stat().st_size > 0, name
    manifest = json.loads((latest / "manifest.json").read_text())
    assert manifest["run_id"] == run_id
    assert "scenarios.json" in manifest["files"] and "report.html" in manifest["files"]
    runs = [p for p in stack.reports.glob("*/*") if p.parent.name != "latest"]
    assert len(runs) == 1
    assert (runs[0] / "scenarios.json").read_bytes() == (latest / "scenarios.json").read_bytes()
    doc = json.loads((latest / "scenarios.json").read_text())
    assert len(doc["scenarios"]) == 3 and doc["draws"] == 300
    assert doc["event"]["name"] == "Load test"
    assert (doc["event"]["start"], doc["event"]["end"]) == ("2026-12-01", "2026-12-03")
    assert doc["event"]["traffic_multiplier"] == 2
    assert any(s["forced"] and s["trigger"]["service"] == "dns" for s in doc["scenarios"])
    assert "Load test" in (latest / "report.html").read_text()
    # No logical date, no data interval: the history window ends at the run's run_after.
    assert _instant(doc["as_of"]) == _instant(run["run_after"])
    # Each mapped task is labelled with its scenario (map_index_template) in the UI/API.
    assert sorted(t["rendered_map_index"] for t in mapped_tis) == sorted(
        s["id"] for s in doc["scenarios"]
    )
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((latest / name).read_bytes()).hexdigest() == digest, name
    # publish updated the Asset: one event from this run, its extra saying where it went.
    events = stack.api(
        "GET",
        "/api/v2/assets/events",
        params={"source_dag_id": DAG_ID, "source_run_id": run_id},
    )
    assert events.status_code == 200, events.text
    [event] = events.json()["asset_events"]
    assert event["name"] == "what_if_report" and event["source_task_id"] == "publish"
    assert event["extra"]["targets"][0]["latest"] == latest.as_uri()
    assert [t["id"] for t in event["extra"]["top"]] == [s["id"] for s in doc["scenarios"]]
    # The refused trigger created no run, and the weekly schedule none either.
    runs_listed = stack.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns")
    assert runs_listed.status_code == 200, runs_listed.text
    assert [r["dag_run_id"] for r in runs_listed.json()["dag_runs"]] == [run_id]
    # Nothing went to the DAG's default target; the run's work folder is in tmp.
    assert not stack.default_reports.exists()
    assert (stack.home / "work").is_dir()
