//! Reports at `/api/v1/reports/{report}?team=…`, computed by config; the rows pass through as
//! the domain defines them.

use axum::Json;
use axum::extract::State;
use flowplane_domain::ErrorCode;
use flowplane_domain::reports::RouteFlow;
use flowplane_proto::reports::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::caller::Caller;
use crate::extract::QueryParams;
use crate::problem::{Problem, ProblemDocument};
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// The team reported on.
    pub team: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RouteFlowList {
    pub items: Vec<RouteFlow>,
}

/// Where each of the team's listeners sends traffic: one row per route, with its virtual
/// host, match, action and destination clusters (share of traffic, endpoints).
#[utoipa::path(get, path = "/api/v1/reports/route-flows", tag = "reports",
    operation_id = "getRouteFlows", params(ReportQuery),
    responses(
        (status = 200, description = "One row per route of each listener", body = RouteFlowList),
        (status = 400, description = "`team` is missing", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such team the caller can see", body = ProblemDocument, content_type = "application/problem+json")),
    security(("bearerAuth" = [])))]
pub async fn route_flows(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<ReportQuery>,
) -> Result<Json<serde_json::Value>, Problem> {
    let team = query
        .team
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Problem::field(ErrorCode::ValidationFailed, "team", "is required"))?;
    let answer = state
        .config
        .reports
        .clone()
        .route_flows(pb::RouteFlowsRequest {
            context: Some(caller.context()),
            team,
        })
        .await
        .map_err(|s| Problem::from_status(&s))?
        .into_inner();
    let items = answer
        .flows_json
        .iter()
        .map(|row| serde_json::from_str::<serde_json::Value>(row).map_err(Problem::internal))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(serde_json::json!({ "items": items })))
}
