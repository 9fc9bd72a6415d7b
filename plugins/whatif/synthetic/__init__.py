"""Synthetic fleets and incident histories drawn from a known truth, for the tests, the
benchmarks and the project's sample: a model can only be checked against parameters it did not
see, and a benchmark needs inputs of any size. Pure functions of a seeded numpy Generator.

- `fleets`: service graphs: layered DAGs from 120 to 5,000+ services, and their contract CSV
  form (soft edges, `created_at`);
- `histories`: incidents on a fleet from true root rates and edge probabilities, with cascades
  and `caused_by`: `known_history` (the recovery tests' fleets) and `fleet_history`
  (vectorised, for the benchmarks' hundreds of thousands of incidents);
- `sample`: the project's sample (include/data), a realistic online shop whose catalogue and
  wording are data files (resources/synthetic).
"""

from whatif.synthetic.fleets import contract_topology, layered_topology, tiered_topology
from whatif.synthetic.histories import (
    FleetHistory,
    FleetProcess,
    KnownHistory,
    fleet_history,
    known_history,
)
from whatif.synthetic.sample import SampleHistory, sample_history

__all__ = [
    "FleetHistory",
    "FleetProcess",
    "KnownHistory",
    "SampleHistory",
    "contract_topology",
    "fleet_history",
    "known_history",
    "layered_topology",
    "sample_history",
    "tiered_topology",
]
