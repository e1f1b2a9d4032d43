-- Sessions, invitations and organization membership.

-- A user's place in an organization: its role and the scopes it was granted. A user belongs to
-- at most one organization, because a principal's resource-level scopes reach the teams of one
-- organization (Grants::org_id).
CREATE TABLE memberships (
    org_id     uuid NOT NULL REFERENCES organizations (id),
    user_id    uuid NOT NULL REFERENCES users (id),
    role       text NOT NULL CHECK (role IN ('admin', 'member')),
    teams      text[] NOT NULL DEFAULT '{}',
    scopes     text[] NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, user_id),
    CONSTRAINT memberships_user_key UNIQUE (user_id)
);

-- Login sessions. The secret and the CSRF token are 256-bit random values, stored only as
-- SHA-256 digests (hex): a slow hash would buy nothing against guessing and would cost every
-- request that misses the gateway's cache.
CREATE TABLE sessions (
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id),
    secret_hash text NOT NULL,
    csrf_hash   text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz
);
CREATE INDEX sessions_user_idx ON sessions (user_id) WHERE revoked_at IS NULL;

-- Single-use, expiring invitations into an organization. Only the SHA-256 digest of the invite
-- secret is kept; accepted_at is set, once, by registration.
CREATE TABLE invitations (
    id          uuid PRIMARY KEY,
    org_id      uuid NOT NULL REFERENCES organizations (id),
    email       text NOT NULL,
    role        text NOT NULL CHECK (role IN ('admin', 'member')),
    teams       text[] NOT NULL DEFAULT '{}',
    scopes      text[] NOT NULL DEFAULT '{}',
    secret_hash text NOT NULL,
    invited_by  uuid REFERENCES users (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    accepted_at timestamptz,
    accepted_by uuid REFERENCES users (id)
);
CREATE INDEX invitations_org_idx ON invitations (org_id);
