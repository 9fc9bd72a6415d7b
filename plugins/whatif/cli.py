"""The command line: `whatif run|validate|fit|simulate|narrate|publish`, calling the DAG's own
stages, and `whatif topology import|merge` / `whatif incidents import` (whatif.importers). The
engine's heavier modules are imported by the commands that need them, so that `whatif narrate`
(a few JSON files and HTTP calls) starts fast.

Exit codes: 0 success, 2 user error (one line naming file, row and column), 1 internal error.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from whatif import __version__, config, environment, params, resources, runfolder
from whatif.config import LLMSettings, RunConfig, build_event, parse_timestamp
from whatif.errors import UserError

if TYPE_CHECKING:
    from whatif import pipeline

log = logging.getLogger("whatif")


def _add_inputs(parser: argparse.ArgumentParser) -> None:
    params.add_options(parser, groups=["inputs"])


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    params.add_options(parser.add_argument_group("the failure models"), groups=["model"])


def _add_scenario_options(parser: argparse.ArgumentParser) -> None:
    params.add_options(parser, groups=["scenarios"])
    _add_narrator_options(parser)


def _add_narrator_options(parser: argparse.ArgumentParser) -> None:
    """Who writes the prose. The API key is read from WHATIF_LLM_API_KEY only (a flag would
    leave it in the shell history and the process list)."""
    group = parser.add_argument_group("narration (the API key: WHATIF_LLM_API_KEY)")
    params.add_options(group, groups=["narration"])
    group.add_argument("--no-llm-cache", action="store_true", help="neither read nor write it")


def _add_publish_options(
    parser: argparse.ArgumentParser, space: str, parent: str, short: bool
) -> None:
    """S3 endpoint and Confluence page options, shared by `run` and `publish` (`publish`
    also takes the short --space / --parent-id)."""
    parser.add_argument(
        "--endpoint-url",
        default=environment.get("AWS_ENDPOINT_URL"),
        metavar="URL",
        help="S3-compatible endpoint (MinIO, Ceph...; default $AWS_ENDPOINT_URL)",
    )
    group = parser.add_argument_group(
        "Confluence (credentials: WHATIF_CONFLUENCE_USER and WHATIF_CONFLUENCE_TOKEN)"
    )
    group.add_argument(
        "--confluence",
        metavar="URL",
        help="Confluence base URL: https://example.atlassian.net/wiki (Cloud) or "
        "https://confluence.example.com (Data Center); one page per run, updated on re-runs",
    )
    names = (space, "--space") if short else (space,)
    group.add_argument(*names, dest="confluence_space", metavar="KEY", help="space key")
    names = (parent, "--parent-id") if short else (parent,)
    group.add_argument(
        *names, dest="confluence_parent_id", metavar="ID", help="parent page id (optional)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="whatif",
        description="Ranked, quantified 'What if...?' reliability scenarios from incident "
        "history and service topology.",
    )
    parser.add_argument("--version", action="version", version=f"whatif {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="more log lines")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run", help="the whole pipeline: validate, fit, simulate, narrate, report"
    )
    _add_inputs(run)
    run.add_argument("--out", required=True, metavar="DIR", help="folder for the artifacts")
    _add_model_options(run)
    _add_scenario_options(run)
    run.add_argument(
        "--publish-to",
        action="append",
        default=[],
        metavar="URL",
        help="also publish the run there (repeatable), as `whatif publish --to`",
    )
    run.add_argument(
        "--previous",
        metavar="DIR|URL",
        help="the previous run (a run folder or a published latest/): the report opens with "
        "what changed since (default: the latest/ of the first --publish-to)",
    )
    run.add_argument(
        "--run-id",
        metavar="ID",
        help="the run's id, kept in scenarios.json: its published folder is <date>/<id>/ "
        "(default: cli__<as-of>__<digest of the inputs and settings>)",
    )
    _add_publish_options(run, "--confluence-space", "--confluence-parent-id", short=False)
    run.set_defaults(handler=cmd_run)

    check = commands.add_parser("validate", help="validate the inputs only")
    _add_inputs(check)
    check.add_argument("--out", metavar="FILE", help="write validation.json here")
    check.set_defaults(handler=cmd_validate)

    fit = commands.add_parser("fit", help="validate and fit the failure models")
    _add_inputs(fit)
    fit.add_argument("--out", required=True, metavar="FILE", help="model.json to write")
    _add_model_options(fit)
    fit.set_defaults(handler=cmd_fit)

    sim = commands.add_parser("simulate", help="scenarios from a fitted model")
    sim.add_argument("--model", required=True, metavar="FILE", help="model.json from `fit`")
    sim.add_argument("--topology", required=True, metavar="PATH", help="the topology file")
    sim.add_argument("--out", required=True, metavar="FILE", help="scenarios.json to write")
    params.add_options(sim, names=["allow_external_dependencies"])
    _add_scenario_options(sim)
    sim.set_defaults(handler=cmd_simulate)

    narr = commands.add_parser(
        "narrate",
        help="write the prose of a run's scenarios again (another narrator or model), "
        "without simulating again",
    )
    narr.add_argument("dir", metavar="DIR", help="folder written by `whatif run`")
    params.add_options(narr, names=["seed"])
    narr.add_argument(
        "--report", action="store_true", help="render report.html and report.md again too"
    )
    _add_narrator_options(narr)
    narr.set_defaults(handler=cmd_narrate)

    load = commands.add_parser(
        "load-sample", help="create the SQL tables and load incidents and a topology into them"
    )
    load.add_argument(
        "--db-url", required=True, metavar="URL", help="e.g. postgresql://user@127.0.0.1/incidents"
    )
    for name in ("incidents", "topology"):  # the project's sample, from a checkout
        sample = resources.project_sample(f"{name}.csv")
        load.add_argument(
            f"--{name}",
            default=str(sample) if sample else None,
            required=sample is None,
            metavar="PATH",
        )
    load.set_defaults(handler=cmd_load_sample)

    pub = commands.add_parser(
        "publish", help="copy a run's artifacts to object storage and/or a Confluence page"
    )
    pub.add_argument("dir", metavar="DIR", help="folder written by `whatif run`")
    pub.add_argument(
        "--to",
        action="append",
        default=[],
        metavar="URL",
        help="a local folder or any ObjectStoragePath URL (file://, s3://...; repeatable); S3 "
        "credentials from the usual AWS_* environment variables",
    )
    pub.add_argument(
        "--run-id",
        default=None,
        metavar="ID",
        help="publish under this id instead of the run's own (scenarios.json; a folder from "
        "before runs had one: an id from its content). The same run published again rewrites "
        "the same objects",
    )
    _add_publish_options(pub, "--confluence-space", "--confluence-parent-id", short=True)
    pub.set_defaults(handler=cmd_publish)

    export = commands.add_parser(
        "export",
        help="a run's scenarios as chaos experiments for a game day (Chaos Toolkit, Chaos "
        "Mesh, LitmusChaos, AWS FIS); nothing is run or injected",
    )
    export.add_argument("dir", metavar="RUN_DIR", help="folder written by `whatif run`")
    export.add_argument(
        "--format",
        dest="formats",
        action="append",
        required=True,
        choices=params.EXPORT_FORMATS,
        help="repeatable; docs/gameday.md",
    )
    export.add_argument(
        "--out", metavar="DIR", help="where to write them (default RUN_DIR/experiments)"
    )
    export.add_argument(
        "--targets",
        metavar="PATH",
        help="where each service runs (service, k8s_namespace, k8s_selector, health_url, "
        "aws_target), when the topology does not say",
    )
    export.set_defaults(handler=cmd_export)

    from whatif.importers import commands as import_commands

    import_commands.add_commands(commands)
    return parser


def inputs_from_args(args: argparse.Namespace) -> pipeline.Inputs:
    """Where the data comes from, checked for the combinations that make sense."""
    from whatif import pipeline
    from whatif.sources import redact, sqlalchemy_fetch

    sql_url = args.incidents_sql_url
    if not (args.incidents or sql_url):
        raise UserError("give --incidents PATH|URL or --incidents-sql-url URL")
    if args.incidents and sql_url:
        raise UserError("give either --incidents or --incidents-sql-url, not both")
    if not args.topology and not args.topology_from_sql:
        raise UserError("give --topology PATH|URL (or --topology-from-sql with a SQL source)")
    if args.topology_from_sql and not sql_url:
        raise UserError("--topology-from-sql needs --incidents-sql-url")
    return pipeline.Inputs(
        incidents=args.incidents,
        topology=None if args.topology_from_sql else args.topology,
        mapping=args.mapping,
        aliases=args.aliases,
        sql=sqlalchemy_fetch(sql_url) if sql_url else None,
        sql_display=redact(sql_url) if sql_url else "database",
        topology_from_sql=args.topology_from_sql,
    )


def run_config(args: argparse.Namespace) -> RunConfig:
    return config.run_config(_values(args), _as_of(args), environment.get("WHATIF_LLM_API_KEY"))


def llm_settings(args: argparse.Namespace) -> LLMSettings:
    return config.llm_settings(_values(args), environment.get("WHATIF_LLM_API_KEY"))


def _values(args: argparse.Namespace) -> dict[str, Any]:
    """The options as settings (whatif.params): the cache path expanded, or none."""
    values = vars(args).copy()
    if values.get("llm_cache"):
        values["llm_cache"] = None if args.no_llm_cache else str(Path(args.llm_cache).expanduser())
    return values


def _as_of(args: argparse.Namespace) -> datetime | None:
    text = getattr(args, "as_of", None)
    return parse_timestamp(text, "--as-of") if text else None


def _check_narrator(config: RunConfig) -> None:
    if config.narrator != "template" and not (config.llm.url and config.llm.model):
        raise UserError(
            f"--narrator {config.narrator} needs --llm-url and --llm-model "
            "(or WHATIF_LLM_URL and WHATIF_LLM_MODEL)"
        )


def cmd_run(args: argparse.Namespace) -> int:
    from whatif import pipeline

    config = run_config(args)
    _check_narrator(config)
    out = output_folder(args.out)
    confluence = confluence_target(args)  # checked before the long steps
    if args.endpoint_url:  # for s3:// inputs and the previous run too, not only publishing
        environment.set_aws_endpoint(args.endpoint_url)
    previous = args.publish_to  # the previous run is the first target's latest/
    with terminal_progress("simulating cascades") as progress:
        pipeline.run_all(
            inputs_from_args(args), out, config, progress, previous, args.run_id, args.previous
        )
    print(
        f"wrote {out / runfolder.REPORT_HTML_FILE}, report.md, scenarios.json, model.json and "
        f"validation.json to {out}"
    )
    publish_run(out, args.publish_to, confluence, args)
    return 0


def output_folder(path: str) -> Path:
    """--out as a folder that exists and takes files, made if need be; else a UserError
    before any stage runs."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--out {path}: a file, not a folder", hint="name a folder for the run")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".whatif-write-check"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise UserError(
            f"--out {path}: cannot write there ({error.strerror or error})",
            hint="name a folder you can write to",
        ) from None
    return folder


def output_file(path: str) -> Path:
    """--out as a file whose folder exists: a UserError before any stage runs otherwise."""
    file = Path(path)
    if file.is_dir():
        raise UserError(f"--out {path}: a folder, not a file", hint="name the file to write")
    if any(parent.is_file() for parent in file.parents):
        raise UserError(
            f"--out {path}: cannot write there (a file stands where a folder should)",
            hint="name a file in a folder you can write to",
        )
    output_folder(str(file.parent))
    return file


def confluence_target(args: argparse.Namespace) -> Any:
    """The Confluence page target of --confluence, with its credentials from the
    environment (never a flag: it would stay in the shell history); None without it."""
    if not args.confluence:
        if args.confluence_space or args.confluence_parent_id:
            raise UserError("--confluence-space / --confluence-parent-id need --confluence URL")
        return None
    if not args.confluence_space:
        raise UserError("--confluence needs the space key: --confluence-space KEY")
    token = environment.get("WHATIF_CONFLUENCE_TOKEN")
    if not token:
        raise UserError(
            "--confluence needs an API token in WHATIF_CONFLUENCE_TOKEN "
            "(and the user in WHATIF_CONFLUENCE_USER; without a user the token is sent as a "
            "Data Center personal access token)"
        )
    from whatif.confluence import ConfluenceTarget

    return ConfluenceTarget(
        url=args.confluence,
        space=args.confluence_space,
        parent_id=args.confluence_parent_id,
        user=environment.get("WHATIF_CONFLUENCE_USER"),
        token=token,
    )


def publish_run(
    source: Path, targets: list[str], confluence: Any, args: argparse.Namespace
) -> None:
    """Publish a run folder to the object-storage targets and the Confluence page, under the
    run's own id and date (scenarios.json): publishing it again rewrites the same objects."""
    from whatif import pipeline
    from whatif.publish import PublishConflict

    if args.endpoint_url:  # read by boto/s3fs for every S3 client
        environment.set_aws_endpoint(args.endpoint_url)
    for target in targets:
        try:
            where = pipeline.run_publish(source, target, run_id=args.run_id)
        except PublishConflict as error:  # not a bug: others kept publishing there
            raise UserError(str(error), hint="publish again when they have finished") from None
        print(f"published to {where['run']} and {where['latest']}")
    if confluence is not None:
        page = pipeline.run_confluence(source, confluence)
        action = "created" if page["created"] else f"updated to version {page['version']}"
        print(f"Confluence page {action}: {page['url']}")


@contextlib.contextmanager
def validated_inputs(args: argparse.Namespace) -> Iterator[tuple[Path, dict]]:
    """Extract and validate the inputs in a throw-away work folder: (folder, row counts)."""
    from whatif import pipeline

    as_of = _as_of(args) or datetime.now(UTC).replace(microsecond=0)
    with tempfile.TemporaryDirectory(prefix="whatif-") as work:
        params.check("history_days", args.history_days)
        pipeline.extract(inputs_from_args(args), Path(work), as_of, args.history_days)
        external = args.allow_external_dependencies
        yield Path(work), pipeline.run_validation(Path(work), as_of, args.history_days, external)


def cmd_validate(args: argparse.Namespace) -> int:
    out = output_file(args.out) if args.out else None
    with validated_inputs(args) as (work, summary):
        if out:
            out.write_bytes((work / runfolder.VALIDATION_FILE).read_bytes())
    for name, counts in summary.items():
        print(
            f"{name}: {counts['rows_read']} rows read, {counts['rows_used']} used"
            f"{_rates_only(counts)}, {counts['rows_quarantined']} quarantined"
        )
    return 0


def _rates_only(counts: dict[str, Any]) -> str:
    """' (N for rates only: n open, m end not recorded)' when some used rows have no end."""
    if not counts.get("rows_rates_only"):
        return ""
    durations = counts["durations"]
    return (
        f" ({counts['rows_rates_only']} for rates only: {durations['open']} open, "
        f"{durations['not_recorded']} end not recorded)"
    )


def cmd_fit(args: argparse.Namespace) -> int:
    from whatif import pipeline

    out = output_file(args.out)
    with validated_inputs(args) as (work, _):
        model = run_config(args).model
        out.write_bytes(pipeline.fit(work, model).read_bytes())
    print(f"wrote {args.out}")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from whatif import pipeline

    config = run_config(args)
    _check_narrator(config)
    out = output_file(args.out)
    model_doc = pipeline.load_model(Path(args.model))
    as_of = datetime.fromisoformat(model_doc.window.end)
    topology = pipeline.load_topology_only(args.topology, args.allow_external_dependencies)
    document = pipeline.simulate_document(model_doc, topology, config, as_of, args.model)
    pipeline.report.write_json(out, document.model_dump())
    print(f"wrote {args.out} ({len(document.scenarios)} scenarios)")
    return 0


def cmd_narrate(args: argparse.Namespace) -> int:
    """Narrate a run's scenarios again; the run's own settings (horizon, event, draws) come
    from its scenarios.json, the narrator's from the flags."""
    import json

    from whatif import narrate

    folder = Path(args.dir)
    if not runfolder.stage_path(folder, runfolder.FACTS_FILE).exists():
        raise UserError(
            "no scenario facts here",
            file=str(folder),
            hint="narrate a folder written by `whatif run` (it keeps them in _stage/)",
        )
    previous = json.loads((folder / runfolder.SCENARIOS_FILE).read_text(encoding="utf-8"))
    event = previous.get("event")
    config = RunConfig(
        seed=args.seed,
        scenarios=max(1, len(previous["scenarios"])),
        horizon_days=previous["horizon_days"] if not event else params.default("horizon_days"),
        draws=previous["draws"],
        event=build_event(event["name"], event["start"], event["end"], event["traffic_multiplier"])
        if event
        else None,
        focus_services=tuple(previous.get("focus_services") or ()),
        narrator=args.narrator,
        llm=llm_settings(args),
    )
    _check_narrator(config)
    written = narrate.narrate_all(folder, config)
    summary = json.loads(written.read_text(encoding="utf-8"))["narration"]
    print(
        f"wrote {written}: {summary['scenarios']} scenarios, {summary['llm_scenarios']} by "
        f"{summary['narrator']}, {summary['fallbacks']} fell back to the template; "
        f"{summary['calls']} calls, {summary['cached']} answers from the cache"
    )
    if args.report:
        from whatif import pipeline

        pipeline.run_report(folder)
        print(f"wrote {folder / runfolder.REPORT_HTML_FILE} and report.md")
    return 0


def cmd_load_sample(args: argparse.Namespace) -> int:
    from whatif.sample_db import load_sample
    from whatif.sources import redact

    schema = resources.folder("sql") / "schema.sql"
    counts = load_sample(args.db_url, args.incidents, args.topology, schema)
    print(
        f"loaded {counts['incidents']} incident rows, {counts['services']} services and "
        f"{counts['dependencies']} dependencies into {redact(args.db_url)}"
    )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from whatif.gameday import export

    run_dir = Path(args.dir)
    out = output_folder(args.out) if args.out else None
    index = export.export_run(run_dir, args.formats, out, args.targets)
    written = [e for e in index["experiments"] if e["file"]]
    skipped = len(index["experiments"]) - len(written)
    where = out or run_dir / runfolder.EXPERIMENTS_FOLDER
    print(
        f"wrote {len(written)} experiments ({', '.join(index['formats'])}) to {where}"
        + (f"; {skipped} skipped, reasons in {runfolder.EXPERIMENTS_INDEX_FILE}" if skipped else "")
    )
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    source = Path(args.dir)
    if not (source / runfolder.SCENARIOS_FILE).exists():
        raise UserError(
            "no scenarios.json here",
            file=str(source),
            hint="publish a folder written by `whatif run`",
        )
    confluence = confluence_target(args)
    if not args.to and confluence is None:
        raise UserError("say where to publish: --to URL and/or --confluence URL --space KEY")
    publish_run(source, args.to, confluence, args)
    return 0


@contextlib.contextmanager
def terminal_progress(label: str) -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar on a terminal, drawn only while the step runs; nothing otherwise (each
    stage still logs one line)."""
    if not sys.stderr.isatty():
        yield None
        return
    from tqdm import tqdm

    bars: list[tqdm] = []

    def update(done: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(desc=label, total=total, unit="service", file=sys.stderr, leave=False))
        bars[0].n = done
        bars[0].refresh()
        if done >= total:
            bars.pop().close()

    try:
        yield update
    finally:
        for bar in bars:
            bar.close()


def configure_logging(verbose: bool) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):  # left by an earlier caller on a stream now closed
        stream = getattr(handler, "stream", None)
        if stream is not None and getattr(stream, "closed", False):
            root.removeHandler(handler)
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        if verbose
        else "whatif: %(message)s",
        stream=sys.stderr,
    )
    # Libraries that log routine details at INFO (Airflow's settings, AWS credential lookups).
    noisy_libraries = (
        "great_expectations",
        "matplotlib",
        "urllib3",
        "fsspec",
        "airflow",
        "botocore",
        "aiobotocore",
        "s3fs",
    )
    for noisy in noisy_libraries:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except UserError as error:
        print(f"whatif: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("whatif: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # an internal error: say so in one line, trace on request
        if args.debug:
            raise
        print(
            f"whatif: internal error: {type(error).__name__}: {error} (this is a bug; "
            "rerun with --debug for the traceback and report it)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
