-- What learning sessions learned: one mergeable aggregate per endpoint (method and path
-- template). Rows go with their session.
CREATE TABLE learned_endpoints (
    session_id uuid NOT NULL REFERENCES resources (id) ON DELETE CASCADE,
    method     text NOT NULL,
    path       text NOT NULL,
    samples    bigint NOT NULL,
    aggregate  jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id, path, method)
);
