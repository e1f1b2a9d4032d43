//! MCP prompts: guided tasks an agent can offer its user. Each one is a plan written against
//! the tools this server has, so an agent follows it with calls it can make.

use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{PromptMessage, Role};
use rmcp::{prompt, prompt_router, schemars};
use serde::Deserialize;

use crate::tools::ControlPlane;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ExposeArgs {
    /// The team, e.g. `my-org-default`.
    pub team: String,
    /// The upstream's URL, e.g. `http://10.0.0.5:8080`.
    pub upstream: String,
    /// The path prefix clients call, e.g. `/api`.
    pub path: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct TeamArgs {
    /// The team, e.g. `my-org-default`.
    pub team: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct LearnArgs {
    /// The team, e.g. `my-org-default`.
    pub team: String,
    /// The listener whose traffic to learn from.
    pub listener: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ImportArgs {
    /// The team, e.g. `my-org-default`.
    pub team: String,
    /// Where the spec comes from (a URL or a file the user has), for the agent to fetch.
    pub spec: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct FailingRouteArgs {
    /// The team, e.g. `my-org-default`.
    pub team: String,
    /// The failing request as the user describes it, e.g. `GET https://api.example.com/users/42
    /// answers 404`.
    pub request: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct RotateArgs {
    /// The team, e.g. `my-org-default`.
    pub team: String,
    /// The `tlsCertificate` secret to rotate.
    pub secret: String,
}

#[prompt_router(vis = "pub(crate)")]
impl ControlPlane {
    #[prompt(
        name = "expose-upstream",
        description = "Route a path prefix to an upstream through the team's Envoy, and check Envoy accepted it."
    )]
    async fn expose_upstream(&self, Parameters(a): Parameters<ExposeArgs>) -> Vec<PromptMessage> {
        user(format!(
            "In Flowplane team `{team}`, make requests under `{path}` reach `{upstream}` \
             through the team's Envoy.\n\
             1. `list_dataplanes` and `list_listeners` for the team: find the dataplane and any \
             HTTP listener already serving it.\n\
             2. The short way: `expose` with `{{\"name\": \"<a name>\", \"upstream\": \
             \"{upstream}\", \"path\": \"{path}\"}}` builds the cluster, route and listener. The \
             long way, for control: `create_cluster` with the upstream's host and port \
             (`useTls` for https), then a route with a `prefix` match on `{path}` to it \
             (`update_route_config` on the listener's route config, or `create_route_config` \
             and `create_listener` bound to the dataplane).\n\
             3. `get_cluster`, `get_route_config`, `get_listener` until each one's `status` \
             says `programmed` for the dataplane; if one says `rejected`, read Envoy's error, \
             fix that field, update.\n\
             4. `trace_request` with the dataplane, the listener's port and `{path}` to show \
             the user where such a request now goes.\n\
             A refused call carries the field paths that are wrong: fix those fields only.",
            team = a.team,
            path = a.path,
            upstream = a.upstream
        ))
    }

    #[prompt(
        name = "import-openapi-spec",
        description = "Turn an OpenAPI document into a gateway stack: a dry run first, then the import, then a check that Envoy serves it."
    )]
    async fn import_spec(&self, Parameters(a): Parameters<ImportArgs>) -> Vec<PromptMessage> {
        user(format!(
            "In Flowplane team `{team}`, import the OpenAPI document `{spec}`.\n\
             1. Get the document's text (JSON or YAML) from the user or `{spec}`.\n\
             2. `import_openapi` with `team` `{team}`, `dryRun` true and the document as \
             `body`: show the user the plan (clusters, routes, listener, and what changes if \
             the definition exists already) and any field errors.\n\
             3. Once the user agrees, `import_openapi` again without `dryRun`.\n\
             4. `get_api_definition` until its `status` is `programmed` on the dataplane; \
             `validate_team` for findings the import left (a shadowed route, an unused \
             cluster) and report them.",
            team = a.team,
            spec = a.spec
        ))
    }

    #[prompt(
        name = "diagnose-failing-route",
        description = "Find out why a request does not reach the upstream it should: trace it through the team's Envoy configuration, then check status and traffic."
    )]
    async fn diagnose_route(
        &self,
        Parameters(a): Parameters<FailingRouteArgs>,
    ) -> Vec<PromptMessage> {
        user(format!(
            "In Flowplane team `{team}`, this request misbehaves: {request}.\n\
             1. `list_dataplanes` and `list_listeners`: which dataplane and port take it; \
             `get_topology` shows what each listener leads to and every resource's status.\n\
             2. `trace_request` with that dataplane, port, host, path and method: it shows \
             the listener and filter chain, every virtual host and route considered with why \
             it did or did not match, the filters in effect, and the clusters and endpoints \
             reached, or what Envoy answers when nothing matches.\n\
             3. If the route is right, `get_cluster` for its cluster: endpoints, and whether \
             Envoy `rejected` it. `get_usage` shows the route's recent status classes (5xx \
             from the upstream, 4xx from a filter).\n\
             4. `validate_team` catches routes shadowed by an earlier one.\n\
             Explain the cause in terms of the resource and field, and propose the smallest \
             change; make it only once the user agrees.",
            team = a.team,
            request = a.request
        ))
    }

    #[prompt(
        name = "diagnose-rejected-config",
        description = "Find the team's resources Envoy rejected, explain why, and propose fixes."
    )]
    async fn diagnose(&self, Parameters(a): Parameters<TeamArgs>) -> Vec<PromptMessage> {
        user(format!(
            "In Flowplane team `{team}`, find what Envoy rejected.\n\
             1. `list_clusters`, `list_route_configs`, `list_listeners` and `list_secrets`; \
             each item's `status` lists every dataplane with `programmed` or `rejected` and \
             Envoy's error, and `quarantine` says when a rejected version is held back from \
             every Envoy (they keep the last version one accepted).\n\
             2. For each rejected resource, get it (`get_cluster`, `get_listener`, ...) and \
             explain Envoy's error in terms of its fields. `get_delivery` for the dataplane \
             shows which Envoys (node, replica) rejected what, when, and what each runs now.\n\
             3. Propose the smallest change and, once the user agrees, update it (pass the \
             `revision` you read as `If-Match` so a concurrent edit is not overwritten); \
             then check its status again.\n\
             Nothing is down meanwhile: Envoy keeps serving what it accepted.",
            team = a.team
        ))
    }

    #[prompt(
        name = "learn-api",
        description = "Learn an API's endpoints and schemas from a listener's live traffic, and export them as OpenAPI."
    )]
    async fn learn_api(&self, Parameters(a): Parameters<LearnArgs>) -> Vec<PromptMessage> {
        user(format!(
            "In Flowplane team `{team}`, learn the API served on listener `{listener}`.\n\
             1. `create_learning_session` with `{{\"name\": \"<a name>\", \"listener\": \
             \"{listener}\", \"pathPrefix\": \"/\"}}`.\n\
             2. `activate_learning_session`. Only one session per listener can be active; if \
             another is, say so and stop.\n\
             3. Ask the user to send representative traffic; `list_learned_endpoints` shows \
             progress, `export_learned_openapi` the OpenAPI document: summarise endpoints, \
             statuses and body schemas.\n\
             4. `stop_learning_session` when the user has what they need; offer \
             `import_openapi` (dry run first) to turn the document into an API definition. \
             Only shapes are learned, never values.",
            team = a.team,
            listener = a.listener
        ))
    }

    #[prompt(
        name = "rotate-certificate",
        description = "Replace a TLS certificate and key with a new pair without downtime, and confirm every Envoy took it."
    )]
    async fn rotate(&self, Parameters(a): Parameters<RotateArgs>) -> Vec<PromptMessage> {
        user(format!(
            "In Flowplane team `{team}`, rotate the certificate in secret `{secret}`.\n\
             1. `get_secret` `{secret}`: its `certificates` show subject, names and expiry \
             (never the key). `validate_team` lists certificates expiring soon.\n\
             2. Ask the user for the new PEM chain (leaf first) and private key. Check the \
             new leaf covers the same names.\n\
             3. `update_secret` with `{{\"type\": \"tlsCertificate\", \"certificateChain\": \
             ..., \"privateKey\": ...}}` and the revision you read as `If-Match`. Envoys get it \
             over SDS; listeners keep serving throughout.\n\
             4. `get_secret` until every dataplane's `status` is `programmed`, then show the \
             new expiry. Never repeat the private key back to the user.",
            team = a.team,
            secret = a.secret
        ))
    }

    #[prompt(
        name = "review-team-security",
        description = "Review a team's exposure: TLS, authentication filters, rate limits, secrets, tokens and recent changes."
    )]
    async fn review(&self, Parameters(a): Parameters<TeamArgs>) -> Vec<PromptMessage> {
        user(format!(
            "Review the security of Flowplane team `{team}`.\n\
             1. `list_listeners`: which listen on all addresses, which terminate TLS (and with \
             mTLS), and which HTTP filters each runs. `list_filter_types` explains each filter \
             type (JWT auth, OAuth2, external authorization, RBAC, rate limits, CORS).\n\
             2. `get_route_flows`: every route reaching an upstream; flag routes with no \
             authentication filter in effect and upstreams reached over plain HTTP.\n\
             3. `validate_team`: expired or expiring certificates, unused secrets and clusters.\n\
             4. `list_tokens`: tokens with wide scopes (`admin:all`, organization-wide \
             writes), never-expiring or unused ones. `list_audit_logs` for the team: recent \
             changes and break-glass access.\n\
             Report findings by severity with the resource and field, and what to change. \
             Change nothing without the user's go-ahead.",
            team = a.team
        ))
    }
}

fn user(text: String) -> Vec<PromptMessage> {
    vec![PromptMessage::new_text(Role::User, text)]
}
