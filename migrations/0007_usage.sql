-- Requests per minute, listener, route, cluster and status class, counted by the learning
-- service from Envoy's access logs. Counts from several learning replicas add up.
CREATE TABLE usage_minutes (
    team_id         uuid NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    minute          timestamptz NOT NULL,
    listener        text NOT NULL,
    route           text NOT NULL,
    cluster         text NOT NULL,
    status_class    smallint NOT NULL,
    requests        bigint NOT NULL,
    duration_ms_sum bigint NOT NULL,
    PRIMARY KEY (team_id, minute, listener, route, cluster, status_class)
);
CREATE INDEX usage_minutes_minute_idx ON usage_minutes (minute);
