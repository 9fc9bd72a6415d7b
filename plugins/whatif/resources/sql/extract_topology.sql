-- The service topology, one row per service, `depends_on` as a ';'-separated list.
-- Bind parameters :window_start and :window_end are available (unused here).
SELECT
    s.service,
    coalesce(string_agg(d.depends_on, ';' ORDER BY d.depends_on), '') AS depends_on,
    coalesce(
        string_agg(d.depends_on, ';' ORDER BY d.depends_on) FILTER (WHERE d.criticality = 'soft'),
        ''
    ) AS soft_depends_on,
    s.tier,
    s.owner_team,
    s.user_facing,
    s.runbook_url,
    s.oncall,
    s.slo_target,
    s.traffic_weight,
    s.created_at
FROM whatif_services AS s
LEFT JOIN whatif_service_dependencies AS d ON d.service = s.service
GROUP BY s.service
ORDER BY s.service
