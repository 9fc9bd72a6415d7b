"""What every exporter is given and gives back: a scenario as an experiment plan (what to
inject where, what to watch, what the model predicts), and the experiment it becomes (a file,
or the reason there is none). The exporters (one module per format) only turn a Plan into
text; the statistics stay in scenarios.json."""

from __future__ import annotations

import dataclasses
from typing import Any

from whatif.params import EXPORT_FORMATS

FORMATS = EXPORT_FORMATS  # one home: whatif.params (the DAG's form offers them)
# Where a service runs, for the selectors (optional topology columns, docs/gameday.md).
TARGET_COLUMNS = ("k8s_namespace", "k8s_selector", "health_url", "aws_target")
# Names every exported experiment carries, so that a journal read back names its scenario.
METADATA_PREFIX = "whatif_"
PROBE_PREFIX = "steady-"  # Chaos Toolkit probe names: steady-<service>


@dataclasses.dataclass(frozen=True)
class Target:
    """One service as the chaos tools address it. `selector` is a Kubernetes label selector
    (default app=<service>); `namespace` None means the tool's default; `health_url` an HTTP
    endpoint answering 2xx while the service is healthy; `aws_target` an FIS target (a
    resource ARN, or `tag:Key=Value`); `external` a third-party service (tier external, or a
    dependency without a row of its own) that cannot be injected, only cut off."""

    service: str
    namespace: str | None = None
    selector: tuple[tuple[str, str], ...] = ()
    health_url: str | None = None
    aws_target: str | None = None
    external: bool = False
    owner_team: str | None = None
    slo_target: float | None = None

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.selector) or {"app": self.service}


@dataclasses.dataclass(frozen=True)
class Plan:
    """One scenario as an experiment: inject `mode` into `trigger`, then watch `dependents`
    (the scenario's affected services, most likely first) for the deviation the model
    predicts. Durations in minutes; probabilities as in scenarios.json."""

    scenario_id: str  # service--mode, as in scenarios.json
    title: str
    description: str
    trigger: Target
    mode: str  # a failure mode of whatif.schemas.FAILURE_MODES
    dependents: tuple[Target, ...]
    probability: float
    risk_score: float
    duration_p50_minutes: float | None
    duration_p90_minutes: float | None
    severity: str
    run_id: str
    seed: int | None = None

    def metadata(self) -> dict[str, Any]:
        """What each experiment embeds (Chaos Toolkit `configuration`, manifest annotations,
        FIS tags), keys prefixed whatif_: the journal reader finds its scenario by them."""
        return {
            f"{METADATA_PREFIX}scenario": self.scenario_id,
            f"{METADATA_PREFIX}service": self.trigger.service,
            f"{METADATA_PREFIX}failure_mode": self.mode,
            f"{METADATA_PREFIX}team": self.trigger.owner_team or "",
            f"{METADATA_PREFIX}run_id": self.run_id,
            f"{METADATA_PREFIX}probability": round(self.probability, 6),
            f"{METADATA_PREFIX}blast_radius": [t.service for t in self.dependents],
        }


@dataclasses.dataclass(frozen=True)
class Experiment:
    """What an exporter made of a plan: `filename` and `text` (JSON or YAML), or `skipped`
    with the reason. `note` says how the experiment differs from the scenario when the mode
    cannot be injected as such (a third party's outage becomes blocked egress to it)."""

    format: str
    scenario_id: str
    filename: str | None = None
    text: str | None = None
    skipped: str | None = None
    note: str | None = None
