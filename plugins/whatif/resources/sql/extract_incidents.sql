-- Incidents of the history window: the `history_days` ending at the run's data interval end.
-- Bind parameters (never string formatting): :window_start, :window_end (timestamptz).
-- Column names must be those of the data contract (docs/data-contract.md); alias yours.
SELECT
    incident_id,
    service,
    started_at,
    resolved_at,
    severity,
    category,
    title,
    description,
    detected_at,
    acknowledged_at,
    caused_by,
    team,
    load_factor
FROM whatif_incidents
WHERE started_at > :window_start
  AND started_at <= :window_end
ORDER BY started_at, incident_id, service
