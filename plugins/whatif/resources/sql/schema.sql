-- whatif: tables for incidents and the service topology (PostgreSQL).
-- Create them with `whatif load-sample --db-url postgresql://...`, which also loads the sample.
-- The extract queries beside this file read them; adapt those queries to your own tables.

CREATE TABLE IF NOT EXISTS whatif_services (
    service        text PRIMARY KEY,
    tier           text,
    owner_team     text,
    user_facing    boolean,
    runbook_url    text,
    oncall         text,
    slo_target     double precision CHECK (slo_target > 0 AND slo_target < 1),
    traffic_weight double precision CHECK (traffic_weight >= 0 AND traffic_weight <= 1),
    created_at     timestamptz  -- when the service went live (its exposure starts then)
);

-- One row per dependency: `service` calls `depends_on`; failure flows from depends_on to service.
CREATE TABLE IF NOT EXISTS whatif_service_dependencies (
    service    text NOT NULL REFERENCES whatif_services (service) ON DELETE CASCADE,
    depends_on text NOT NULL,
    criticality text CHECK (criticality IN ('hard', 'soft')),  -- NULL: not known
    PRIMARY KEY (service, depends_on)
);

-- One row per (incident, affected service).
CREATE TABLE IF NOT EXISTS whatif_incidents (
    incident_id     text        NOT NULL,
    service         text        NOT NULL,
    started_at      timestamptz NOT NULL,
    resolved_at     timestamptz,
    severity        text,
    category        text,
    title           text,
    description     text,
    detected_at     timestamptz,
    acknowledged_at timestamptz,
    caused_by       text,
    team            text,
    load_factor     double precision CHECK (load_factor > 0),  -- traffic relative to normal
    PRIMARY KEY (incident_id, service)
);

-- Columns added after the first release, for databases created before them.
ALTER TABLE whatif_services ADD COLUMN IF NOT EXISTS created_at timestamptz;
ALTER TABLE whatif_service_dependencies ADD COLUMN IF NOT EXISTS criticality text
    CHECK (criticality IN ('hard', 'soft'));
ALTER TABLE whatif_incidents ADD COLUMN IF NOT EXISTS load_factor double precision
    CHECK (load_factor > 0);

CREATE INDEX IF NOT EXISTS whatif_incidents_started_at ON whatif_incidents (started_at);
