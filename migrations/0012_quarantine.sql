-- NACK quarantine. When an Envoy rejects a resource's current version, config holds that
-- version back from every Envoy: replicas are served the last version an Envoy accepted
-- (or nothing, when none ever was) until a corrected write clears the quarantine.

-- The last version of each resource an Envoy accepted: the fallback a quarantine serves.
CREATE TABLE accepted_versions (
    resource_id uuid PRIMARY KEY REFERENCES resources (id) ON DELETE CASCADE,
    revision    bigint NOT NULL,
    spec        jsonb NOT NULL,
    accepted_at timestamptz NOT NULL DEFAULT now()
);

-- Resources whose current version is held back, and why.
CREATE TABLE quarantines (
    resource_id       uuid PRIMARY KEY REFERENCES resources (id) ON DELETE CASCADE,
    -- The resource's revision whose version was rejected.
    rejected_revision bigint NOT NULL,
    -- The change revision that put the quarantine in place.
    revision          bigint NOT NULL,
    dataplane         text NOT NULL,
    node_id           text NOT NULL,
    type_url          text NOT NULL,
    error             text NOT NULL,
    quarantined_at    timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE resource_status DROP CONSTRAINT resource_status_state_check;
ALTER TABLE resource_status ADD CONSTRAINT resource_status_state_check
    CHECK (state IN ('programmed', 'rejected', 'quarantined'));
