"""The engine as a self-contained package: installed with `pip install .` (not editable), it
renders a report from any folder, its templates, SQL, mappings and word lists read as package
data (whatif.resources), not from the project's tree."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from shared import INCIDENTS_CSV, PROJECT, TOPOLOGY_CSV, write


def test_an_installed_package_renders_a_report_from_any_folder(tmp_path):
    # Built from a copy, so that the build leaves nothing in the project's tree.
    source = tmp_path / "source"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    shutil.copytree(PROJECT / "plugins", source / "plugins", ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(PROJECT / name, source / name)
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(source)],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    package = target / "whatif"
    shipped = {p.relative_to(package).as_posix() for p in package.rglob("*") if p.is_file()}
    assert not (target / "whatif_airflow").exists()  # the Airflow glue is the deployment's
    for resource in (
        "resources/templates/report.html.j2",
        "resources/sql/extract_incidents.sql",
        "resources/mappings/pagerduty.yaml",
        "resources/words/function-words.txt",
        "narrate/grounding.py",
    ):
        assert resource in shipped

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    write(elsewhere, "incidents.csv", INCIDENTS_CSV)
    write(elsewhere, "topology.csv", TOPOLOGY_CSV)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("WHATIF_") and key != "PYTHONPATH"
    } | {"PYTHONPATH": str(target)}
    where = subprocess.run(
        [sys.executable, "-c", "import whatif; print(whatif.__file__)"],
        cwd=elsewhere, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert where.stdout.strip().startswith(str(target))
    run = subprocess.run(
        [sys.executable, "-m", "whatif", "run", "--incidents", "incidents.csv",
         "--topology", "topology.csv", "--mapping", "", "--out", "out",
         "--as-of", "2026-06-01", "--draws", "200", "--cascade-draws", "100",
         "--backtest-folds", "0", "--scenarios", "2"],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    html = (elsewhere / "out" / "report.html").read_text(encoding="utf-8")
    assert "<html" in html and "risk" in html.lower()
    assert (elsewhere / "out" / "report.md").stat().st_size > 500
