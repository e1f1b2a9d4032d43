//! What the protocol tests share: the dataplane tokens their streams present.

use envoy_types::pb::envoy::config::core::v3::Node;
use flowplane_runtime::credential::DataplaneTokens;
use flowplane_xds::bootstrap::node_metadata;
use flowplane_xds::bootstrap::{DATAPLANE_TOKEN_HEADER, NODE_DATAPLANE_ID_KEY, NODE_TEAM_KEY};
use flowplane_xds_server::snapshot::Store;

/// The service secret the test servers key dataplane tokens with.
const SERVICE_SECRET: &str = "test-service-secret-0123456789";

pub fn tokens() -> DataplaneTokens {
    flowplane_runtime::credential::ServiceSecret::new(SERVICE_SECRET)
        .unwrap()
        .dataplane_tokens()
}

/// The token of the dataplane `node` names (by id or name) in `store`, as its bootstrap has.
pub fn token_for(store: &Store, node: &Node) -> String {
    let field = |key: &str| node_metadata(node, key).unwrap_or_default();
    let (team, dataplane) = (field(NODE_TEAM_KEY), field(NODE_DATAPLANE_ID_KEY));
    let id = store
        .dataplane(&team, &dataplane)
        .map_or(dataplane, |d| d.id);
    tokens().issue(&team, &id)
}

/// `stream` as a request carrying `token`.
pub fn with_token<T>(stream: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(stream);
    if let Ok(value) = token.parse() {
        request.metadata_mut().insert(DATAPLANE_TOKEN_HEADER, value);
    }
    request
}
