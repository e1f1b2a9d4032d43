//! Reports at `/api/v1/reports/{report}?team=…` (route flows, usage), answered by config; the
//! rows pass through as the domain defines them.

use axum::Json;
use axum::extract::State;
use flowplane_domain::ErrorCode;
use flowplane_domain::delivery::Delivery;
use flowplane_domain::findings::Finding;
use flowplane_domain::preflight::{Preflight, PreflightRequest};
use flowplane_domain::reports::{RouteFlow, UsageRow};
use flowplane_domain::request_trace::{Trace, TraceRequest};
use flowplane_domain::topology::Topology;
use flowplane_proto::reports::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::caller::Caller;
use crate::extract::{JsonBody, QueryParams};
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

#[derive(Debug, Serialize, ToSchema)]
pub struct FindingList {
    /// Most severe first.
    pub items: Vec<Finding>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// The team reported on.
    pub team: Option<String>,
    /// Start of the window (RFC 3339); default: an hour before `until`.
    pub since: Option<String>,
    /// End of the window (RFC 3339, exclusive); default: now. At most 7 days after `since`.
    pub until: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UsageReport {
    /// The window reported on (RFC 3339).
    pub since: String,
    pub until: String,
    /// Busiest first.
    pub items: Vec<UsageRow>,
}

/// The team named in `?team=`, which every report needs.
fn required_team(team: Option<String>) -> Result<String, Problem> {
    team.filter(|t| !t.is_empty())
        .ok_or_else(|| Problem::field(ErrorCode::ValidationFailed, "team", "is required"))
}

/// A report as the domain serialized it.
fn row(json: &str) -> Result<serde_json::Value, Problem> {
    serde_json::from_str(json).map_err(Problem::internal)
}

/// Rows as the domain serialized them.
fn rows(json: &[String]) -> Result<Vec<serde_json::Value>, Problem> {
    json.iter().map(|r| row(r)).collect()
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
    let team = required_team(query.team)?;
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
    Ok(Json(
        serde_json::json!({ "items": rows(&answer.flows_json)? }),
    ))
}

/// How many requests each listener, route and cluster served in a window, by status class,
/// with the mean duration: counted from every Envoy's access log, per minute, kept 7 days.
#[utoipa::path(get, path = "/api/v1/reports/usage", tag = "reports",
    operation_id = "getUsage", params(UsageQuery),
    responses(
        (status = 200, description = "Requests per listener, route and cluster", body = UsageReport),
        (status = 400, description = "`team` is missing, or the window is not valid", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such team the caller can see", body = ProblemDocument, content_type = "application/problem+json")),
    security(("bearerAuth" = [])))]
pub async fn usage(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<UsageQuery>,
) -> Result<Json<serde_json::Value>, Problem> {
    let team = required_team(query.team)?;
    let answer = state
        .config
        .reports
        .clone()
        .usage(pb::UsageRequest {
            context: Some(caller.context()),
            team,
            since: query.since.unwrap_or_default(),
            until: query.until.unwrap_or_default(),
        })
        .await
        .map_err(|s| Problem::from_status(&s))?
        .into_inner();
    Ok(Json(serde_json::json!({
        "since": answer.since,
        "until": answer.until,
        "items": rows(&answer.rows_json)?,
    })))
}

/// Where a request would go through one dataplane's Envoys: the listener and filter chain it
/// lands on, each virtual host and route considered and why it did or did not match, the
/// filters in effect, and the clusters (weights, endpoints) it reaches, or what Envoy answers
/// when nothing matches. Worked out from the resources the dataplane's Envoys are served.
#[utoipa::path(post, path = "/api/v1/reports/trace", tag = "reports",
    operation_id = "traceRequest", params(ReportQuery), request_body = TraceRequest,
    responses(
        (status = 200, description = "The request's way through Envoy", body = Trace),
        (status = 400, description = "`team` is missing, or the request is not valid", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such team or dataplane the caller can see", body = ProblemDocument, content_type = "application/problem+json")),
    security(("bearerAuth" = [])))]
pub async fn trace(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<ReportQuery>,
    JsonBody(request): JsonBody<TraceRequest>,
) -> Result<Json<serde_json::Value>, Problem> {
    let team = required_team(query.team)?;
    let answer = state
        .config
        .reports
        .clone()
        .trace(pb::TraceRequest {
            context: Some(caller.context()),
            team,
            request_json: serde_json::to_string(&request).map_err(Problem::internal)?,
        })
        .await
        .map_err(|s| Problem::from_status(&s))?
        .into_inner();
    Ok(Json(row(&answer.trace_json)?))
}

/// What is wrong with the team's resources taken together: routes that can never match
/// (shadowed by an earlier one), clusters, route configs and secrets nothing uses, listeners
/// clashing on a port or served by no Envoy, certificates expired or expiring within 30 days.
#[utoipa::path(get, path = "/api/v1/reports/validate", tag = "reports",
    operation_id = "validateTeam", params(ReportQuery),
    responses(
        (status = 200, description = "Findings, most severe first", body = FindingList),
        (status = 400, description = "`team` is missing", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such team the caller can see", body = ProblemDocument, content_type = "application/problem+json")),
    security(("bearerAuth" = [])))]
pub async fn validate(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<ReportQuery>,
) -> Result<Json<serde_json::Value>, Problem> {
    let team = required_team(query.team)?;
    let answer = state
        .config
        .reports
        .clone()
        .findings(pb::FindingsRequest {
            context: Some(caller.context()),
            team,
        })
        .await
        .map_err(|s| Problem::from_status(&s))?
        .into_inner();
    Ok(Json(
        serde_json::json!({ "items": rows(&answer.findings_json)? }),
    ))
}

/// One change to a team's resources, tried without writing it: whether the API would take it
/// (the field errors a write would answer, or the references that hold a resource a delete
/// would remove), which of the team's resources use it, and the findings (as `validate`
/// reports them) it would add or clear. Give `resource` to try a create or replace, leave it
/// out to try a delete. Nothing is written.
#[utoipa::path(post, path = "/api/v1/reports/preflight", tag = "reports",
    operation_id = "preflightChange", params(ReportQuery), request_body = PreflightRequest,
    responses(
        (status = 200, description = "What the change would do", body = Preflight),
        (status = 400, description = "`team` is missing, or the preflight request is not valid", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such team the caller can see, or no such resource to delete", body = ProblemDocument, content_type = "application/problem+json")),
    security(("bearerAuth" = [])))]
pub async fn preflight(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<ReportQuery>,
    JsonBody(request): JsonBody<PreflightRequest>,
) -> Result<Json<serde_json::Value>, Problem> {
    let team = required_team(query.team)?;
    let answer = state
        .config
        .reports
        .clone()
        .preflight(pb::PreflightRequest {
            context: Some(caller.context()),
            team,
            request_json: serde_json::to_string(&request).map_err(Problem::internal)?,
        })
        .await
        .map_err(|s| Problem::from_status(&s))?
        .into_inner();
    Ok(Json(row(&answer.preflight_json)?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    /// The team reported on.
    pub team: Option<String>,
    /// The dataplane (name or id).
    pub dataplane: Option<String>,
}

/// Every Envoy of one dataplane connected to any xds-server replica: the replica it is
/// connected to, per type the version sent and the version acknowledged, whether a response
/// awaits its answer, and the dataplane's recent NACKs (time, node, type, resources, Envoy's
/// message). The replicas hold this as the state of their streams and are asked at once.
#[utoipa::path(get, path = "/api/v1/reports/delivery", tag = "reports",
    operation_id = "getDelivery", params(DeliveryQuery),
    responses(
        (status = 200, description = "The dataplane's Envoys and what they were delivered", body = Delivery),
        (status = 400, description = "`team` or `dataplane` is missing", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such team or dataplane the caller can see", body = ProblemDocument, content_type = "application/problem+json")),
    security(("bearerAuth" = [])))]
pub async fn delivery(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<DeliveryQuery>,
) -> Result<Json<serde_json::Value>, Problem> {
    let team = required_team(query.team)?;
    let dataplane = query
        .dataplane
        .filter(|d| !d.is_empty())
        .ok_or_else(|| Problem::field(ErrorCode::ValidationFailed, "dataplane", "is required"))?;
    let answer = state
        .config
        .reports
        .clone()
        .delivery(pb::DeliveryRequest {
            context: Some(caller.context()),
            team,
            dataplane,
        })
        .await
        .map_err(|s| Problem::from_status(&s))?
        .into_inner();
    Ok(Json(row(&answer.delivery_json)?))
}

/// The team's resources as a graph: dataplanes, listeners, route configs, clusters and
/// secrets as nodes (each with a line of detail and what every dataplane's Envoys said about
/// it: `programmed`, `rejected` with Envoy's error, `quarantined`), and their references as
/// edges (`from`, `to`, and the `field` that names the target).
#[utoipa::path(get, path = "/api/v1/reports/topology", tag = "reports",
    operation_id = "getTopology", params(ReportQuery),
    responses(
        (status = 200, description = "The team's resources and their references", body = Topology),
        (status = 400, description = "`team` is missing", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such team the caller can see", body = ProblemDocument, content_type = "application/problem+json")),
    security(("bearerAuth" = [])))]
pub async fn topology(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<ReportQuery>,
) -> Result<Json<serde_json::Value>, Problem> {
    let team = required_team(query.team)?;
    let answer = state
        .config
        .reports
        .clone()
        .topology(pb::TopologyRequest {
            context: Some(caller.context()),
            team,
        })
        .await
        .map_err(|s| Problem::from_status(&s))?
        .into_inner();
    Ok(Json(row(&answer.topology_json)?))
}
