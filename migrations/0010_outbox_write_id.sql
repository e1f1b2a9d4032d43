-- Which write each outbox row is. A database restored from a backup re-uses revisions it had
-- published; its relay compares this id with the one on the event the bus already holds under
-- that revision's message id, to tell the same write published again (a crash between
-- publishing and recording it) from another write under a re-used revision (then it moves the
-- database to a new epoch).
ALTER TABLE outbox ADD COLUMN write_id uuid NOT NULL DEFAULT gen_random_uuid();
