//! The tonic services. Each method decodes, calls the domain function, and encodes; no
//! decisions live here.

use std::net::SocketAddr;

use flowplane_proto::identity::v1::{self as identity_pb, identity_service_server as identity_srv};
use flowplane_proto::learning::v1::{
    self as learning_pb, learning_results_service_server as learning_srv,
};
use flowplane_proto::reports::v1::{self as reports_pb, report_service_server as reports_srv};
use flowplane_proto::resources::v1::{
    self as resources_pb, api_definition_service_server as api_definitions_srv,
    resource_service_server as resources_srv,
};
use flowplane_proto::state::v1::{
    self as state_pb, dataplane_service_server as dataplanes_srv, state_service_server as state_srv,
};
use flowplane_runtime::shutdown::Shutdown;
use flowplane_runtime::tls::TlsAcceptor;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::authz::Caller;
use crate::resources::kind_from_proto;
use crate::{
    Context, api_definitions, audit_log, identity, learning, membership, reports, resources,
    sessions, state, teams,
};

/// Serves every internal API on `addr` (over TLS when `tls` is given), each behind the
/// service credential and the table of which service may call which method (`service_auth`).
pub async fn serve(
    ctx: Context,
    addr: SocketAddr,
    tls: Option<TlsAcceptor>,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let router = tonic::transport::Server::builder()
        .layer(ctx.keys.layer())
        .add_service(resources_srv::ResourceServiceServer::new(ResourceApi(
            ctx.clone(),
        )))
        .add_service(identity_srv::IdentityServiceServer::new(IdentityApi(
            ctx.clone(),
        )))
        .add_service(
            // OpenAPI documents being imported can be tens of MB.
            api_definitions_srv::ApiDefinitionServiceServer::new(ApiDefinitionApi(ctx.clone()))
                .max_decoding_message_size(API_DOCUMENT_LIMIT)
                .max_encoding_message_size(API_DOCUMENT_LIMIT),
        )
        .add_service(
            // The state streams in parts of a few MB, but one resource (a route config
            // generated from a large API) can be large on its own.
            state_srv::StateServiceServer::new(StateApi(ctx.clone()))
                .max_encoding_message_size(STATE_PART_LIMIT),
        )
        .add_service(dataplanes_srv::DataplaneServiceServer::new(DataplaneApi(
            ctx.clone(),
        )))
        .add_service(learning_srv::LearningResultsServiceServer::new(
            LearningApi(ctx.clone()),
        ))
        .add_service(reports_srv::ReportServiceServer::new(ReportApi(ctx)));
    match tls {
        None => router.serve_with_shutdown(addr, shutdown.wait()).await?,
        Some(acceptor) => {
            let incoming = flowplane_runtime::tls::incoming(addr, acceptor).await?;
            router
                .serve_with_incoming_shutdown(incoming, shutdown.wait())
                .await?
        }
    }
    Ok(())
}

/// The largest state part config sends and a replica takes: a part holds a few MB of specs
/// plus at most one resource of any size.
pub const STATE_PART_LIMIT: usize = 256 * 1024 * 1024;

/// The largest request the API definition service takes (an OpenAPI document plus envelope).
pub const API_DOCUMENT_LIMIT: usize = 64 * 1024 * 1024;

pub struct ResourceApi(Context);
pub struct ApiDefinitionApi(Context);
pub struct IdentityApi(Context);
pub struct StateApi(Context);
pub struct LearningApi(Context);
pub struct ReportApi(Context);
pub struct DataplaneApi(Context);

type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl resources_srv::ResourceService for ResourceApi {
    async fn create(
        &self,
        request: Request<resources_pb::CreateResourceRequest>,
    ) -> Reply<resources_pb::Resource> {
        let r = request.into_inner();
        let caller = Caller::from_context(&self.0.keys, r.context)?;
        let kind = kind_from_proto(r.kind)?;
        Ok(Response::new(
            resources::create(&self.0, &caller, kind, &r.team, &r.body_json).await?,
        ))
    }

    async fn get(
        &self,
        request: Request<resources_pb::GetResourceRequest>,
    ) -> Reply<resources_pb::Resource> {
        let r = request.into_inner();
        let caller = Caller::from_context(&self.0.keys, r.context)?;
        let kind = kind_from_proto(r.kind)?;
        let read = if r.for_deployment {
            resources::get_for_deployment(&self.0, &caller, kind, &r.team, &r.name).await?
        } else {
            resources::get(&self.0, &caller, kind, &r.team, &r.name).await?
        };
        Ok(Response::new(read))
    }

    async fn list(
        &self,
        request: Request<resources_pb::ListResourcesRequest>,
    ) -> Reply<resources_pb::ListResourcesResponse> {
        let r = request.into_inner();
        let caller = Caller::from_context(&self.0.keys, r.context)?;
        let kind = kind_from_proto(r.kind)?;
        Ok(Response::new(
            resources::list(&self.0, &caller, kind, &r.team, r.limit, &r.cursor).await?,
        ))
    }

    async fn update(
        &self,
        request: Request<resources_pb::UpdateResourceRequest>,
    ) -> Reply<resources_pb::Resource> {
        let r = request.into_inner();
        let caller = Caller::from_context(&self.0.keys, r.context)?;
        let kind = kind_from_proto(r.kind)?;
        let updated = resources::update(
            &self.0,
            &caller,
            kind,
            &r.team,
            &r.name,
            &r.body_json,
            r.if_revision,
        )
        .await?;
        Ok(Response::new(updated))
    }

    async fn delete(
        &self,
        request: Request<resources_pb::DeleteResourceRequest>,
    ) -> Reply<resources_pb::DeleteResourceResponse> {
        let r = request.into_inner();
        let caller = Caller::from_context(&self.0.keys, r.context)?;
        let kind = kind_from_proto(r.kind)?;
        let revision =
            resources::delete(&self.0, &caller, kind, &r.team, &r.name, r.if_revision).await?;
        Ok(Response::new(resources_pb::DeleteResourceResponse {
            revision,
        }))
    }
}

#[tonic::async_trait]
impl identity_srv::IdentityService for IdentityApi {
    async fn bootstrap_status(
        &self,
        _: Request<identity_pb::BootstrapStatusRequest>,
    ) -> Reply<identity_pb::BootstrapStatusResponse> {
        let needs_initialization = identity::needs_initialization(&self.0).await?;
        Ok(Response::new(identity_pb::BootstrapStatusResponse {
            needs_initialization,
        }))
    }

    async fn initialize(
        &self,
        request: Request<identity_pb::InitializeRequest>,
    ) -> Reply<identity_pb::InitializeResponse> {
        Ok(Response::new(
            identity::initialize(&self.0, request.into_inner()).await?,
        ))
    }

    async fn authenticate(
        &self,
        request: Request<identity_pb::AuthenticateRequest>,
    ) -> Reply<identity_pb::AuthenticateResponse> {
        Ok(Response::new(
            identity::authenticate(&self.0, request.into_inner()).await?,
        ))
    }

    async fn create_organization(
        &self,
        request: Request<identity_pb::CreateOrganizationRequest>,
    ) -> Reply<identity_pb::CreateOrganizationResponse> {
        let r = request.into_inner();
        let caller = Caller::from_context(&self.0.keys, r.context)?;
        Ok(Response::new(
            identity::create_organization(&self.0, &caller, &r.name, &r.display_name).await?,
        ))
    }

    async fn list_organizations(
        &self,
        request: Request<identity_pb::ListOrganizationsRequest>,
    ) -> Reply<identity_pb::ListOrganizationsResponse> {
        let caller = Caller::from_context(&self.0.keys, request.into_inner().context)?;
        Ok(Response::new(
            identity::list_organizations(&self.0, &caller).await?,
        ))
    }

    async fn create_token(
        &self,
        request: Request<identity_pb::CreateTokenRequest>,
    ) -> Reply<identity_pb::CreateTokenResponse> {
        let r = request.into_inner();
        let caller = Caller::from_context(&self.0.keys, r.context.clone())?;
        Ok(Response::new(
            identity::create_token(&self.0, &caller, r).await?,
        ))
    }

    async fn get_token(
        &self,
        request: Request<identity_pb::GetTokenRequest>,
    ) -> Reply<identity_pb::Token> {
        let r = request.into_inner();
        let caller = Caller::from_context(&self.0.keys, r.context)?;
        Ok(Response::new(
            identity::get_token(&self.0, &caller, &r.id).await?,
        ))
    }

    async fn list_tokens(
        &self,
        request: Request<identity_pb::ListTokensRequest>,
    ) -> Reply<identity_pb::ListTokensResponse> {
        let r = request.into_inner();
        let caller = Caller::from_context(&self.0.keys, r.context)?;
        Ok(Response::new(
            identity::list_tokens(&self.0, &caller, r.limit, r.offset).await?,
        ))
    }

    async fn revoke_token(
        &self,
        request: Request<identity_pb::RevokeTokenRequest>,
    ) -> Reply<identity_pb::Token> {
        let r = request.into_inner();
        let caller = Caller::from_context(&self.0.keys, r.context)?;
        Ok(Response::new(
            identity::revoke_token(&self.0, &caller, &r.id).await?,
        ))
    }

    async fn update_token(
        &self,
        request: Request<identity_pb::UpdateTokenRequest>,
    ) -> Reply<identity_pb::Token> {
        let r = request.into_inner();
        let caller = Caller::from_context(&self.0.keys, r.context.clone())?;
        Ok(Response::new(
            identity::update_token(&self.0, &caller, r).await?,
        ))
    }

    async fn rotate_token(
        &self,
        request: Request<identity_pb::RotateTokenRequest>,
    ) -> Reply<identity_pb::RotateTokenResponse> {
        let r = request.into_inner();
        let caller = Caller::from_context(&self.0.keys, r.context)?;
        Ok(Response::new(
            identity::rotate_token(&self.0, &caller, &r.id).await?,
        ))
    }

    async fn list_audit_logs(
        &self,
        request: Request<identity_pb::ListAuditLogsRequest>,
    ) -> Reply<identity_pb::ListAuditLogsResponse> {
        let r = request.into_inner();
        let caller = Caller::from_context(&self.0.keys, r.context.clone())?;
        Ok(Response::new(audit_log::list(&self.0, &caller, r).await?))
    }

    async fn list_teams(
        &self,
        request: Request<identity_pb::ListTeamsRequest>,
    ) -> Reply<identity_pb::ListTeamsResponse> {
        let r = request.into_inner();
        let caller = Caller::from_context(&self.0.keys, r.context)?;
        Ok(Response::new(teams::list(&self.0, &caller, &r.org).await?))
    }

    async fn create_team(
        &self,
        request: Request<identity_pb::CreateTeamRequest>,
    ) -> Reply<identity_pb::Team> {
        let r = request.into_inner();
        let caller = Caller::from_context(&self.0.keys, r.context.clone())?;
        Ok(Response::new(teams::create(&self.0, &caller, r).await?))
    }

    async fn login(
        &self,
        request: Request<identity_pb::LoginRequest>,
    ) -> Reply<identity_pb::LoginResponse> {
        Ok(Response::new(
            sessions::login(&self.0, request.into_inner()).await?,
        ))
    }

    async fn logout(
        &self,
        request: Request<identity_pb::LogoutRequest>,
    ) -> Reply<identity_pb::LogoutResponse> {
        let caller = Caller::from_context(&self.0.keys, request.into_inner().context)?;
        Ok(Response::new(sessions::logout(&self.0, &caller).await?))
    }

    async fn who_am_i(
        &self,
        request: Request<identity_pb::WhoAmIRequest>,
    ) -> Reply<identity_pb::WhoAmIResponse> {
        let caller = Caller::from_context(&self.0.keys, request.into_inner().context)?;
        Ok(Response::new(sessions::whoami(&self.0, &caller).await?))
    }

    async fn create_invitation(
        &self,
        request: Request<identity_pb::CreateInvitationRequest>,
    ) -> Reply<identity_pb::CreateInvitationResponse> {
        let r = request.into_inner();
        let caller = Caller::from_context(&self.0.keys, r.context.clone())?;
        Ok(Response::new(
            membership::create_invitation(&self.0, &caller, r).await?,
        ))
    }

    async fn register(
        &self,
        request: Request<identity_pb::RegisterRequest>,
    ) -> Reply<identity_pb::RegisterResponse> {
        Ok(Response::new(
            membership::register(&self.0, request.into_inner()).await?,
        ))
    }

    async fn list_members(
        &self,
        request: Request<identity_pb::ListMembersRequest>,
    ) -> Reply<identity_pb::ListMembersResponse> {
        let r = request.into_inner();
        let caller = Caller::from_context(&self.0.keys, r.context)?;
        Ok(Response::new(
            membership::list_members(&self.0, &caller, &r.org).await?,
        ))
    }

    async fn update_member(
        &self,
        request: Request<identity_pb::UpdateMemberRequest>,
    ) -> Reply<identity_pb::Member> {
        let r = request.into_inner();
        let caller = Caller::from_context(&self.0.keys, r.context.clone())?;
        Ok(Response::new(
            membership::update_member(&self.0, &caller, r).await?,
        ))
    }

    async fn remove_member(
        &self,
        request: Request<identity_pb::RemoveMemberRequest>,
    ) -> Reply<identity_pb::RemoveMemberResponse> {
        let r = request.into_inner();
        let caller = Caller::from_context(&self.0.keys, r.context.clone())?;
        Ok(Response::new(
            membership::remove_member(&self.0, &caller, r).await?,
        ))
    }
}

#[tonic::async_trait]
impl state_srv::StateService for StateApi {
    type StreamStateStream = ReceiverStream<Result<state_pb::State, Status>>;

    async fn stream_state(
        &self,
        _: Request<state_pb::StreamStateRequest>,
    ) -> Reply<Self::StreamStateStream> {
        // Two parts in flight: the next is read from PostgreSQL while one is on the wire.
        let (tx, rx) = mpsc::channel(2);
        let ctx = self.0.clone();
        tokio::spawn(async move {
            if let Err(e) = state::stream_state(&ctx, &tx).await {
                let _ = tx.send(Err(e.into())).await;
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn get_revision(
        &self,
        _: Request<state_pb::GetRevisionRequest>,
    ) -> Reply<state_pb::GetRevisionResponse> {
        let (revision, origin) = state::get_revision(&self.0).await?;
        Ok(Response::new(state_pb::GetRevisionResponse {
            revision,
            installation_id: origin.installation,
            epoch: origin.epoch,
        }))
    }

    async fn get_secrets(
        &self,
        request: Request<state_pb::GetSecretsRequest>,
    ) -> Reply<state_pb::GetSecretsResponse> {
        let r = request.into_inner();
        let secrets = crate::secret_material::get_secrets(&self.0, &r.team, &r.names).await?;
        Ok(Response::new(state_pb::GetSecretsResponse { secrets }))
    }

    async fn report_status(
        &self,
        request: Request<state_pb::ReportStatusRequest>,
    ) -> Reply<state_pb::ReportStatusResponse> {
        crate::status::report_status(&self.0, request.into_inner()).await?;
        Ok(Response::new(state_pb::ReportStatusResponse {}))
    }

    async fn get_replica_keys(
        &self,
        _: Request<state_pb::GetReplicaKeysRequest>,
    ) -> Reply<state_pb::ReplicaKeys> {
        Ok(Response::new(state_pb::ReplicaKeys {
            dataplane_tokens: self.0.keys.dataplanes.key().to_vec(),
            change_events: self.0.keys.events.as_bytes().to_vec(),
        }))
    }
}

#[tonic::async_trait]
impl dataplanes_srv::DataplaneService for DataplaneApi {
    async fn verify(
        &self,
        request: Request<state_pb::VerifyDataplaneRequest>,
    ) -> Reply<state_pb::VerifyDataplaneResponse> {
        let valid = crate::dataplane_tokens::verify(&self.0, &request.into_inner()).await?;
        Ok(Response::new(state_pb::VerifyDataplaneResponse { valid }))
    }
}

#[tonic::async_trait]
impl learning_srv::LearningResultsService for LearningApi {
    async fn record(
        &self,
        request: Request<learning_pb::RecordRequest>,
    ) -> Reply<learning_pb::RecordResponse> {
        let recorded = learning::record(&self.0, request.into_inner()).await?;
        Ok(Response::new(learning_pb::RecordResponse { recorded }))
    }

    async fn list_learned(
        &self,
        request: Request<learning_pb::ListLearnedRequest>,
    ) -> Reply<learning_pb::ListLearnedResponse> {
        let r = request.into_inner();
        let caller = Caller::from_context(&self.0.keys, r.context)?;
        let endpoints =
            learning::list_learned(&self.0, &caller, &r.team, &r.session, r.gateway_paths).await?;
        let endpoints_json = to_json_strings(&endpoints)?;
        Ok(Response::new(learning_pb::ListLearnedResponse {
            endpoints_json,
        }))
    }
}

#[tonic::async_trait]
impl reports_srv::ReportService for ReportApi {
    async fn route_flows(
        &self,
        request: Request<reports_pb::RouteFlowsRequest>,
    ) -> Reply<reports_pb::RouteFlowsResponse> {
        let r = request.into_inner();
        let caller = Caller::from_context(&self.0.keys, r.context)?;
        let flows = reports::route_flows_of(&self.0, &caller, &r.team).await?;
        Ok(Response::new(reports_pb::RouteFlowsResponse {
            flows_json: to_json_strings(&flows)?,
        }))
    }

    async fn record_usage(
        &self,
        request: Request<reports_pb::RecordUsageRequest>,
    ) -> Reply<reports_pb::RecordUsageResponse> {
        reports::record_usage(&self.0, request.into_inner()).await?;
        Ok(Response::new(reports_pb::RecordUsageResponse {}))
    }

    async fn usage(
        &self,
        request: Request<reports_pb::UsageRequest>,
    ) -> Reply<reports_pb::UsageResponse> {
        let r = request.into_inner();
        let caller = Caller::from_context(&self.0.keys, r.context)?;
        let window = reports::Window::parse(&r.since, &r.until)?;
        let rows = reports::usage_of(&self.0, &caller, &r.team, &window).await?;
        Ok(Response::new(reports_pb::UsageResponse {
            rows_json: to_json_strings(&rows)?,
            since: window.since.to_rfc3339(),
            until: window.until.to_rfc3339(),
        }))
    }

    async fn findings(
        &self,
        request: Request<reports_pb::FindingsRequest>,
    ) -> Reply<reports_pb::FindingsResponse> {
        let r = request.into_inner();
        let caller = Caller::from_context(&self.0.keys, r.context)?;
        let findings = reports::findings_of(&self.0, &caller, &r.team).await?;
        Ok(Response::new(reports_pb::FindingsResponse {
            findings_json: to_json_strings(&findings)?,
        }))
    }

    async fn trace(
        &self,
        request: Request<reports_pb::TraceRequest>,
    ) -> Reply<reports_pb::TraceResponse> {
        let r = request.into_inner();
        let caller = Caller::from_context(&self.0.keys, r.context)?;
        let trace_request = flowplane_domain::parse_body(&r.request_json)
            .map_err(crate::error::ServiceError::from)?;
        let trace = reports::trace_of(&self.0, &caller, &r.team, &trace_request).await?;
        Ok(Response::new(reports_pb::TraceResponse {
            trace_json: to_json(&trace)?,
        }))
    }

    async fn preflight(
        &self,
        request: Request<reports_pb::PreflightRequest>,
    ) -> Reply<reports_pb::PreflightResponse> {
        let r = request.into_inner();
        let caller = Caller::from_context(&self.0.keys, r.context)?;
        let preflight_request = flowplane_domain::parse_body(&r.request_json)
            .map_err(crate::error::ServiceError::from)?;
        let preflight =
            reports::preflight_of(&self.0, &caller, &r.team, &preflight_request).await?;
        Ok(Response::new(reports_pb::PreflightResponse {
            preflight_json: to_json(&preflight)?,
        }))
    }

    async fn delivery(
        &self,
        request: Request<reports_pb::DeliveryRequest>,
    ) -> Reply<reports_pb::DeliveryResponse> {
        let r = request.into_inner();
        let caller = Caller::from_context(&self.0.keys, r.context)?;
        let delivery = reports::delivery_of(&self.0, &caller, &r.team, &r.dataplane).await?;
        Ok(Response::new(reports_pb::DeliveryResponse {
            delivery_json: to_json(&delivery)?,
        }))
    }

    async fn topology(
        &self,
        request: Request<reports_pb::TopologyRequest>,
    ) -> Reply<reports_pb::TopologyResponse> {
        let r = request.into_inner();
        let caller = Caller::from_context(&self.0.keys, r.context)?;
        let topology = reports::topology_of(&self.0, &caller, &r.team).await?;
        Ok(Response::new(reports_pb::TopologyResponse {
            topology_json: to_json(&topology)?,
        }))
    }
}

/// A domain value as the JSON string the contracts carry it in.
fn to_json<T: serde::Serialize>(value: &T) -> Result<String, Status> {
    serde_json::to_string(value).map_err(|e| Status::internal(e.to_string()))
}

/// Domain values as the JSON strings the contracts carry them in.
fn to_json_strings<T: serde::Serialize>(values: &[T]) -> Result<Vec<String>, Status> {
    values.iter().map(to_json).collect()
}

#[tonic::async_trait]
impl api_definitions_srv::ApiDefinitionService for ApiDefinitionApi {
    async fn apply(
        &self,
        request: Request<resources_pb::ApplyApiDefinitionRequest>,
    ) -> Reply<resources_pb::ApplyApiDefinitionResponse> {
        let r = request.into_inner();
        let caller = Caller::from_context(&self.0.keys, r.context.clone())?;
        Ok(Response::new(
            api_definitions::apply(&self.0, &caller, r).await?,
        ))
    }

    async fn get(
        &self,
        request: Request<resources_pb::GetApiDefinitionRequest>,
    ) -> Reply<resources_pb::ApiDefinition> {
        let r = request.into_inner();
        let caller = Caller::from_context(&self.0.keys, r.context)?;
        Ok(Response::new(
            api_definitions::get(&self.0, &caller, &r.team, &r.name).await?,
        ))
    }

    async fn list(
        &self,
        request: Request<resources_pb::ListApiDefinitionsRequest>,
    ) -> Reply<resources_pb::ListApiDefinitionsResponse> {
        let r = request.into_inner();
        let caller = Caller::from_context(&self.0.keys, r.context)?;
        Ok(Response::new(
            api_definitions::list(&self.0, &caller, &r.team, r.limit, &r.cursor).await?,
        ))
    }

    async fn delete(
        &self,
        request: Request<resources_pb::DeleteApiDefinitionRequest>,
    ) -> Reply<resources_pb::DeleteResourceResponse> {
        let r = request.into_inner();
        let caller = Caller::from_context(&self.0.keys, r.context)?;
        let revision =
            api_definitions::delete(&self.0, &caller, &r.team, &r.name, r.if_revision).await?;
        Ok(Response::new(resources_pb::DeleteResourceResponse {
            revision,
        }))
    }
}
