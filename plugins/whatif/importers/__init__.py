"""Topology and incidents read from where they live (issue 19): a Backstage software catalog,
Jaeger's dependencies, the service-graph metrics of Grafana Tempo / the OpenTelemetry
collector in Prometheus, PagerDuty and incident.io. Each importer writes the same CSV contract
as a hand-written file (docs/data-contract.md), so every later stage is unchanged;
docs/sources.md gives each source's exact mapping."""
