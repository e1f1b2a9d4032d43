//! The first minutes of every scenario: initialize Flowplane, create an organization (which
//! brings its `<org>-default` team) and a token scoped to that team, then register a dataplane
//! and fetch its Envoy bootstrap.

use reqwest::Method;
use serde_json::{Value, json};

use crate::{Api, Stack};

pub struct Tenant {
    /// Authenticated with the bootstrap (`admin:all`) token.
    pub admin: Api,
    /// Authenticated with a token holding `team:<team>:<resource>:write` for the usual resources
    /// (clusters, routes, listeners, dataplanes, secrets, learning sessions).
    pub api: Api,
    pub team: String,
}

impl Tenant {
    /// Initializes a fresh stack and creates organization `org`.
    pub async fn create(stack: &Stack, org: &str) -> anyhow::Result<Self> {
        let anonymous = Api::new(&stack.api_url);
        let setup = stack.setup_token().await?;
        let init = anonymous
            .with_token(&setup)
            .expect(
                Method::POST,
                "/api/v1/bootstrap/initialize",
                Some(&json!({"email": format!("admin@{org}.example"),
                    "password": "correct-horse-battery", "name": "Admin"})),
                201,
            )
            .await?;
        let admin = anonymous.with_token(init["token"].as_str().unwrap_or_default());
        Self::in_new_organization(admin, org).await
    }

    /// Another tenant of the same Flowplane: organization `org`, created by this tenant's
    /// administrator.
    pub async fn another(&self, org: &str) -> anyhow::Result<Self> {
        Self::in_new_organization(self.admin.clone(), org).await
    }

    async fn in_new_organization(admin: Api, org: &str) -> anyhow::Result<Self> {
        admin
            .expect(
                Method::POST,
                "/api/v1/admin/organizations",
                Some(&json!({"name": org})),
                201,
            )
            .await?;
        let team = format!("{org}-default");
        let scopes: Vec<String> = [
            "clusters",
            "routes",
            "listeners",
            "dataplanes",
            "secrets",
            "learning-sessions",
        ]
        .iter()
        .map(|r| format!("team:{team}:{r}:write"))
        .collect();
        let token = admin
            .expect(
                Method::POST,
                "/api/v1/tokens",
                Some(&json!({"name": format!("{org}-e2e"), "scopes": scopes})),
                201,
            )
            .await?;
        let api = admin.with_token(token["token"].as_str().unwrap_or_default());
        Ok(Self { admin, api, team })
    }

    /// Registers dataplane `name`; returns its id and its Envoy bootstrap (JSON).
    pub async fn dataplane(&self, name: &str) -> anyhow::Result<(String, Value)> {
        let dataplane = self
            .api
            .expect(
                Method::POST,
                "/api/v1/dataplanes",
                Some(&json!({"team": self.team, "name": name})),
                201,
            )
            .await?;
        let bootstrap = self
            .api
            .get(&format!(
                "/api/v1/teams/{}/dataplanes/{name}/envoy-config?format=json",
                self.team
            ))
            .await?;
        anyhow::ensure!(bootstrap.status.is_success(), "envoy-config: {bootstrap:?}");
        let id = dataplane["id"].as_str().unwrap_or_default().to_string();
        Ok((id, bootstrap.body))
    }

    /// Everything on a new listener of `dataplane` goes to the local `upstream_port`: cluster
    /// `name`, route config `<name>-routes` and listener `<name>-listener` on a free port,
    /// which it returns.
    pub async fn route_all(
        &self,
        name: &str,
        upstream_port: u16,
        dataplane: &str,
    ) -> anyhow::Result<u16> {
        let routes = format!("{name}-routes");
        let port = crate::free_port();
        for (path, body) in [
            ("/api/v1/clusters", self.cluster(name, upstream_port)),
            ("/api/v1/route-configs", self.route_config(&routes, name)),
            (
                "/api/v1/listeners",
                self.listener(&format!("{name}-listener"), port, dataplane, &routes),
            ),
        ] {
            self.api
                .expect(Method::POST, path, Some(&body), 201)
                .await?;
        }
        Ok(port)
    }

    /// A cluster with one local endpoint.
    pub fn cluster(&self, name: &str, port: u16) -> Value {
        json!({"team": self.team, "name": name, "connectTimeoutSeconds": 2,
            "endpoints": [{"host": "127.0.0.1", "port": port}]})
    }

    /// A route config sending every path to `cluster`.
    pub fn route_config(&self, name: &str, cluster: &str) -> Value {
        json!({"team": self.team, "name": name,
            "virtualHosts": [{"name": "all", "domains": ["*"],
                "routes": [{"match": {"path": {"type": "prefix", "value": "/"}},
                    "action": {"type": "forward", "cluster": cluster}}]}]})
    }

    /// A route config sending every path to `cluster`, where paths under `prefix` skip the
    /// HTTP filter named `filter` (a `disabled` override).
    pub fn route_config_bypassing(
        &self,
        name: &str,
        cluster: &str,
        prefix: &str,
        filter: &str,
    ) -> Value {
        json!({"team": self.team, "name": name,
            "virtualHosts": [{"name": "all", "domains": ["*"], "routes": [
                {"match": {"path": {"type": "prefix", "value": prefix}},
                 "action": {"type": "forward", "cluster": cluster},
                 "filterOverrides": {filter: {"disabled": true}}},
                {"match": {"path": {"type": "prefix", "value": "/"}},
                 "action": {"type": "forward", "cluster": cluster}}]}]})
    }

    /// An HTTP listener on loopback `port` of `dataplane_id` serving `route_config`.
    pub fn listener(&self, name: &str, port: u16, dataplane_id: &str, route_config: &str) -> Value {
        json!({"team": self.team, "name": name, "address": "127.0.0.1", "port": port,
            "dataplaneId": dataplane_id, "protocol": "HTTP",
            "filterChains": [{"name": "default", "filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "type": "httpConnectionManager", "routeConfigName": route_config,
                "httpFilters": [{"filter": {"type": "router"}}]}]}]})
    }
}
