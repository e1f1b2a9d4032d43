-- The W3C trace context of the request that wrote each change (empty when spans are not
-- exported), so the relay's publish and every replica's apply join the request's trace.
ALTER TABLE outbox ADD COLUMN traceparent text NOT NULL DEFAULT '';
