//! The connection to the config service: one lazily connected gRPC channel carrying the
//! service credential, and the typed clients on it. Lazy, so the gateway starts (and answers
//! 503 problems) before config is up.

use std::time::Duration;

use flowplane_proto::identity::v1::BootstrapStatusRequest;
use flowplane_proto::identity::v1::identity_service_client::IdentityServiceClient;
use flowplane_proto::learning::v1::learning_results_service_client::LearningResultsServiceClient;
use flowplane_proto::reports::v1::report_service_client::ReportServiceClient;
use flowplane_proto::resources::v1::api_definition_service_client::ApiDefinitionServiceClient;
use flowplane_proto::resources::v1::resource_service_client::ResourceServiceClient;
use flowplane_runtime::credential::{ClientCredential, Service, ServiceCredential};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

pub type ConfigChannel = InterceptedService<Channel, ClientCredential>;
pub type ResourceClient = ResourceServiceClient<ConfigChannel>;
pub type ApiDefinitionClient = ApiDefinitionServiceClient<ConfigChannel>;
pub type IdentityClient = IdentityServiceClient<ConfigChannel>;
pub type LearningClient = LearningResultsServiceClient<ConfigChannel>;
pub type ReportClient = ReportServiceClient<ConfigChannel>;

/// Connecting must fail fast (config down → 503 now), while a slow but alive config gets the
/// same patience a caller would give an HTTP request.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct ConfigService {
    pub resources: ResourceClient,
    pub api_definitions: ApiDefinitionClient,
    pub identity: IdentityClient,
    pub learning: LearningClient,
    pub reports: ReportClient,
}

impl ConfigService {
    pub fn connect_lazy(
        url: &str,
        ca_file: Option<&std::path::Path>,
        service_credential: &str,
    ) -> anyhow::Result<Self> {
        let credential = ServiceCredential::new(Service::ApiGateway, service_credential)?;
        let endpoint = flowplane_runtime::tls::config_endpoint(url, ca_file)?
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .tcp_nodelay(true);
        let channel = InterceptedService::new(endpoint.connect_lazy(), credential.client());
        Ok(Self {
            resources: ResourceServiceClient::new(channel.clone()),
            // OpenAPI documents being imported are far larger than tonic's 4 MiB default.
            api_definitions: ApiDefinitionServiceClient::new(channel.clone())
                .max_encoding_message_size(64 * 1024 * 1024)
                .max_decoding_message_size(64 * 1024 * 1024),
            identity: IdentityServiceClient::new(channel.clone()),
            learning: LearningResultsServiceClient::new(channel.clone()),
            reports: ReportServiceClient::new(channel),
        })
    }

    /// Whether config answers right now, with our credential accepted.
    pub async fn probe(&self) -> Result<(), tonic::Status> {
        self.identity
            .clone()
            .bootstrap_status(BootstrapStatusRequest {})
            .await
            .map(|_| ())
    }
}
