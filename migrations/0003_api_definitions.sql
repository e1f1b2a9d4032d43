-- The Platform API: API definitions, and which native resources each one generated.

CREATE TABLE api_definitions (
    id         uuid PRIMARY KEY,
    team_id    uuid NOT NULL REFERENCES teams (id),
    name       text NOT NULL,
    -- The host name clients use. Unique across Flowplane: one domain, one owner. NULL is the
    -- catch-all host ('*'), which is unique per team listener and checked by config.
    domain     text,
    spec       jsonb NOT NULL,
    revision   bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT api_definitions_team_name_key UNIQUE (team_id, name),
    CONSTRAINT api_definitions_domain_key UNIQUE (domain)
);

-- Set on resources an API definition generated: the definition's name, or
-- 'api-definitions' for the team's shared gateway listener and its route config (which every
-- shared definition of the team contributes to). Such resources change only through their
-- definitions; direct updates and deletes are refused.
ALTER TABLE resources ADD COLUMN managed_by text;
