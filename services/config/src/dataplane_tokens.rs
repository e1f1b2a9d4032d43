//! The tokens Envoys present (`DataplaneTokens`): config issues them into bootstraps and
//! answers, for ratelimit and learning, whether one is a live dataplane's. Those services hold
//! no key, so owning one of them forges no dataplane's credential.

use flowplane_domain::resource::ResourceKind;
use flowplane_proto::state::v1::VerifyDataplaneRequest;
use uuid::Uuid;

use crate::Context;
use crate::error::ServiceError;

/// Whether `request.token` is the token of dataplane `request.dataplane_id` of
/// `request.team`, and that dataplane exists now.
pub async fn verify(ctx: &Context, request: &VerifyDataplaneRequest) -> Result<bool, ServiceError> {
    let Ok(id) = Uuid::parse_str(&request.dataplane_id) else {
        return Ok(false);
    };
    // The MAC first: a junk token costs no query.
    if !ctx
        .keys
        .dataplanes
        .verify(&request.team, &request.dataplane_id, &request.token)
    {
        metrics::counter!("config_dataplane_verifications_total", "valid" => "false").increment(1);
        return Ok(false);
    }
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM resources r JOIN teams t ON t.id = r.team_id \
         WHERE r.id = $1 AND r.kind = $2 AND t.name = $3)",
    )
    .bind(id)
    .bind(ResourceKind::Dataplane.collection())
    .bind(&request.team)
    .fetch_one(&ctx.pool)
    .await?;
    metrics::counter!("config_dataplane_verifications_total", "valid" => if exists { "true" } else { "false" })
        .increment(1);
    Ok(exists)
}

/// The token of dataplane `id` of `team`, for its bootstrap.
pub fn issue(ctx: &Context, team: &str, id: &str) -> String {
    ctx.keys.dataplanes.issue(team, id)
}
