-- Flowplane's state. Only the config service connects to this database.

-- The global change sequence. One row, bumped inside every resource-changing transaction:
-- the row lock serializes writers, so revisions are gap-free and commit in order, and a
-- rolled-back transaction gives its number back. Consumers detect a missed event as a gap.
CREATE TABLE revision_counter (
    id    boolean PRIMARY KEY DEFAULT true CHECK (id),
    value bigint  NOT NULL
);
INSERT INTO revision_counter (id, value) VALUES (true, 0);

CREATE TABLE organizations (
    id           uuid PRIMARY KEY,
    name         text NOT NULL,
    display_name text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT organizations_name_key UNIQUE (name)
);

-- Team names are global because scopes name teams without their organization.
CREATE TABLE teams (
    id           uuid PRIMARY KEY,
    org_id       uuid NOT NULL REFERENCES organizations (id),
    name         text NOT NULL,
    display_name text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT teams_name_key UNIQUE (name)
);

CREATE TABLE users (
    id                uuid PRIMARY KEY,
    email             text NOT NULL,
    name              text NOT NULL,
    password_hash     text NOT NULL,
    is_platform_admin boolean NOT NULL DEFAULT false,
    org_id            uuid REFERENCES organizations (id),
    created_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_email_key UNIQUE (email)
);

-- Personal access tokens. Only an Argon2id hash of the secret is kept.
CREATE TABLE tokens (
    id           uuid PRIMARY KEY,
    user_id      uuid NOT NULL REFERENCES users (id),
    org_id       uuid REFERENCES organizations (id),
    name         text NOT NULL,
    description  text NOT NULL DEFAULT '',
    scopes       text[] NOT NULL,
    secret_hash  text NOT NULL,
    status       text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked', 'expired')),
    expires_at   timestamptz,
    last_used_at timestamptz,
    created_by   uuid REFERENCES users (id),
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tokens_user_idx ON tokens (user_id);

-- The first-run setup token (hash only); used_at is set when initialization succeeds.
CREATE TABLE setup_token (
    id          boolean PRIMARY KEY DEFAULT true CHECK (id),
    secret_hash text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    used_at     timestamptz
);

-- Every team-owned resource. The spec is the domain model's canonical JSON.
CREATE TABLE resources (
    id         uuid PRIMARY KEY,
    kind       text NOT NULL,
    team_id    uuid NOT NULL REFERENCES teams (id),
    name       text NOT NULL,
    spec       jsonb NOT NULL,
    revision   bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT resources_team_kind_name_key UNIQUE (team_id, kind, name)
);
CREATE INDEX resources_kind_idx ON resources (kind, team_id, name);

CREATE TABLE audit_log (
    id             bigserial PRIMARY KEY,
    occurred_at    timestamptz NOT NULL DEFAULT now(),
    action         text NOT NULL,
    actor_user_id  uuid,
    actor_token_id uuid,
    org_id         uuid,
    team           text,
    resource_kind  text,
    resource_name  text,
    revision       bigint,
    before         jsonb,
    after          jsonb,
    request_id     text,
    client_address text
);
CREATE INDEX audit_log_team_idx ON audit_log (team, occurred_at);

-- Change events waiting to be published, keyed by revision. Written in the same transaction
-- as the change, so an event exists if and only if the change committed.
CREATE TABLE outbox (
    revision     bigint PRIMARY KEY,
    payload      bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX outbox_unpublished_idx ON outbox (revision) WHERE published_at IS NULL;

-- What each dataplane's Envoy last said about each resource (ACK = programmed, NACK = rejected).
CREATE TABLE resource_status (
    team_id    uuid NOT NULL REFERENCES teams (id),
    kind       text NOT NULL,
    name       text NOT NULL,
    dataplane  text NOT NULL,
    state      text NOT NULL CHECK (state IN ('programmed', 'rejected')),
    version    text NOT NULL,
    error      text NOT NULL DEFAULT '',
    node_id    text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (team_id, kind, name, dataplane)
);
