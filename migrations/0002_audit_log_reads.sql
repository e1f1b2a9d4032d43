-- Reading the audit trail: newest first by id, and a caller's own authentication events.
CREATE INDEX audit_log_actor_idx ON audit_log (actor_user_id, id);
CREATE INDEX audit_log_action_idx ON audit_log (action, id);
