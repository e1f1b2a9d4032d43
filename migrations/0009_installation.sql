-- Who this database is. Change events carry the installation id and the epoch, and JetStream
-- de-duplicates by `{installation}.{epoch}.{revision}`: a fresh database (or a second
-- installation on the same NATS) starts again at revision 1 without its events being dropped
-- as duplicates of another database's, and replicas drop events that are not their
-- installation's. The epoch changes when a database is found to be behind what it already
-- published (a restored backup), so the reused revisions are new messages too.
CREATE TABLE installation (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    id         uuid NOT NULL DEFAULT gen_random_uuid(),
    epoch      uuid NOT NULL DEFAULT gen_random_uuid(),
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO installation DEFAULT VALUES;
