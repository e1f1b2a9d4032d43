//! A dataplane's Envoy bootstrap: what `envoy -c envoy.yaml` needs to connect to the xds-server
//! scoped to its team and dataplane, with the dataplane's token for its xDS streams. The
//! dataplane is read through config first, for deployment: the bootstrap carries the
//! dataplane's token, so it takes write access to dataplanes (a reader gets 403).

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use flowplane_domain::ErrorCode;
use flowplane_xds::bootstrap::{BootstrapParams, bootstrap};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::caller::Caller;
use crate::extract::{PathParams, QueryParams};
use crate::problem::Problem;
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EnvoyConfigQuery {
    /// `yaml` (default) or `json`.
    #[param(value_type = Option<String>, pattern = "^(yaml|json)$")]
    pub format: Option<String>,
}

/// The Envoy bootstrap for one dataplane.
#[utoipa::path(
    get,
    path = "/api/v1/teams/{team}/dataplanes/{name}/envoy-config",
    tag = "dataplanes",
    operation_id = "getDataplaneEnvoyConfig",
    params(
        ("team" = String, Path, description = "The owning team."),
        ("name" = String, Path, description = "The dataplane's name."),
        EnvoyConfigQuery,
    ),
    responses((
        status = 200,
        description = "A complete Envoy bootstrap: node scoped to the team and dataplane, ADS to the xds-server, admin on loopback",
        content((serde_json::Value = "application/yaml"), (serde_json::Value = "application/json"))
    )),
    security(("bearerAuth" = []))
)]
pub async fn envoy_config(
    State(state): State<AppState>,
    caller: Caller,
    PathParams((team, name)): PathParams<(String, String)>,
    QueryParams(query): QueryParams<EnvoyConfigQuery>,
) -> Result<Response, Problem> {
    let dataplane =
        super::resources::fetch_dataplane_to_deploy(&state, &caller, team, name).await?;
    render(&state, &dataplane, query.format.as_deref())
}

/// The bootstrap of `dataplane` (already read through config) as YAML or JSON.
pub(crate) fn render(
    state: &AppState,
    dataplane: &flowplane_proto::resources::v1::Resource,
    format: Option<&str>,
) -> Result<Response, Problem> {
    let format = Format::parse(format)?;
    if dataplane.deployment_token.is_empty() {
        return Err(Problem::internal(
            "config read the dataplane for deployment without its token",
        ));
    }
    let config = bootstrap(&BootstrapParams {
        team: &dataplane.team,
        dataplane_name: &dataplane.name,
        dataplane_id: &dataplane.id,
        dataplane_token: &dataplane.deployment_token,
        xds_host: &state.envoy.xds_host,
        xds_port: state.envoy.xds_port,
        xds_ca: state.envoy.xds_ca.as_deref(),
        ratelimit_host: &state.envoy.ratelimit_host,
        ratelimit_port: state.envoy.ratelimit_port,
        learning_host: &state.envoy.learning_host,
        learning_port: state.envoy.learning_port,
        ratelimit_ca: state.envoy.ratelimit_ca.as_deref(),
        learning_ca: state.envoy.learning_ca.as_deref(),
        admin_port: state.envoy.admin_port,
    });
    let (content_type, body) = match format {
        Format::Yaml => (
            "application/yaml",
            serde_yaml_ng::to_string(&config).map_err(Problem::internal)?,
        ),
        Format::Json => (
            "application/json",
            serde_json::to_string_pretty(&config).map_err(Problem::internal)?,
        ),
    };
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Yaml,
    Json,
}

impl Format {
    fn parse(raw: Option<&str>) -> Result<Self, Problem> {
        match raw.unwrap_or("yaml") {
            "yaml" => Ok(Self::Yaml),
            "json" => Ok(Self::Json),
            _ => Err(Problem::field(
                ErrorCode::ValidationFailed,
                "format",
                "must be `yaml` or `json`",
            )),
        }
    }
}
