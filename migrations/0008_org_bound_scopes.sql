-- Every scope of a token belongs to the token's organization. Before this release a token
-- could be minted (by an organization admin holding a resource-level scope) with a team scope
-- naming another organization's team, and that scope was honoured. Such tokens are revoked
-- here, each with an audit row, so their owners see why; the grants no longer honour such a
-- scope either way.
WITH violating AS (
    SELECT DISTINCT t.id, t.user_id, tm.org_id AS team_org, t.org_id
    FROM tokens t
    CROSS JOIN LATERAL unnest(t.scopes) AS s(scope)
    JOIN teams tm ON tm.name = split_part(s.scope, ':', 2)
    WHERE t.status = 'active'
      AND s.scope LIKE 'team:%'
      AND t.org_id IS DISTINCT FROM tm.org_id
),
revoked AS (
    UPDATE tokens SET status = 'revoked'
    WHERE id IN (SELECT id FROM violating)
    RETURNING id, user_id, org_id
)
INSERT INTO audit_log (action, actor_user_id, org_id, resource_kind, resource_name, after)
SELECT 'auth.token.revoked', r.user_id, r.org_id, 'tokens', r.id::text,
       jsonb_build_object('reason', 'a team scope named a team outside the token''s organization')
FROM revoked r;
