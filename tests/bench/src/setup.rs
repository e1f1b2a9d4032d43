//! The tenant every benchmark works in: initialized, one organization, a token, a dataplane.

use flowplane_e2e::{Api, Stack};
use reqwest::Method;
use serde_json::{Value, json};

pub const TEAM: &str = "bench-default";

pub struct World {
    pub api: Api,
    /// The secret `api` authenticates with.
    pub token: String,
    pub dataplane_id: String,
    /// The dataplane's token for its xDS streams, from its bootstrap.
    pub dataplane_token: String,
}

impl World {
    pub async fn create(stack: &Stack) -> anyhow::Result<Self> {
        let anonymous = Api::new(&stack.api_url);
        let setup = stack.setup_token().await?;
        let init = anonymous
            .with_token(&setup)
            .expect(Method::POST, "/api/v1/bootstrap/initialize",
                Some(&json!({"email": "bench@example.com", "password": "benchmark-password", "name": "Bench"})), 201)
            .await?;
        let admin = anonymous.with_token(init["token"].as_str().unwrap_or_default());
        admin
            .expect(
                Method::POST,
                "/api/v1/admin/organizations",
                Some(&json!({"name": "bench"})),
                201,
            )
            .await?;
        let scopes: Vec<String> = [
            "clusters",
            "routes",
            "listeners",
            "dataplanes",
            "api-definitions",
            "learning-sessions",
        ]
        .iter()
        .map(|r| format!("team:{TEAM}:{r}:write"))
        .chain([format!("team:{TEAM}:reports:read")])
        .collect();
        let token = admin
            .expect(
                Method::POST,
                "/api/v1/tokens",
                Some(&json!({"name": "bench", "scopes": scopes})),
                201,
            )
            .await?;
        let token = token["token"].as_str().unwrap_or_default().to_string();
        let api = anonymous.with_token(&token);
        let dataplane = api
            .expect(
                Method::POST,
                "/api/v1/dataplanes",
                Some(&json!({"team": TEAM, "name": "edge"})),
                201,
            )
            .await?;
        let bootstrap = api
            .expect(
                Method::GET,
                &format!("/api/v1/teams/{TEAM}/dataplanes/edge/envoy-config?format=json"),
                None,
                200,
            )
            .await?;
        let dataplane_token = flowplane_xds::bootstrap::dataplane_token(&bootstrap)
            .ok_or_else(|| anyhow::anyhow!("the bootstrap carries no dataplane token"))?
            .to_string();
        Ok(Self {
            api,
            token,
            dataplane_id: dataplane["id"].as_str().unwrap_or_default().to_string(),
            dataplane_token,
        })
    }
}

pub fn cluster(name: &str, port: u16) -> Value {
    json!({"team": TEAM, "name": name, "endpoints": [{"host": "127.0.0.1", "port": port}]})
}

/// The `change`-th version of a cluster that simulated Envoys watch over CDS. The change is
/// to the cluster itself (its connect timeout): a changed endpoint would travel over EDS
/// only, which the simulated Envoys do not subscribe to. Never the default 5 s, so every
/// change differs from the cluster as first created.
pub fn changed_cluster(name: &str, change: usize) -> Value {
    let mut body = cluster(name, 1000);
    body["connectTimeoutSeconds"] = json!(10 + change % 290);
    body
}

/// `stream` as an ADS request carrying the dataplane's token, as Envoy sends it.
pub fn with_dataplane_token<T>(world: &World, stream: T) -> anyhow::Result<tonic::Request<T>> {
    let mut request = tonic::Request::new(stream);
    request.metadata_mut().insert(
        flowplane_xds::bootstrap::DATAPLANE_TOKEN_HEADER,
        world.dataplane_token.parse()?,
    );
    Ok(request)
}

/// A real Envoy started from the `edge` dataplane's bootstrap.
pub async fn start_envoy(stack: &Stack, world: &World) -> anyhow::Result<flowplane_e2e::Envoy> {
    let bootstrap = world
        .api
        .get(&format!(
            "/api/v1/teams/{TEAM}/dataplanes/edge/envoy-config"
        ))
        .await?;
    flowplane_e2e::Envoy::start(&stack.dir, &bootstrap.text, stack.envoy_admin_port).await
}
