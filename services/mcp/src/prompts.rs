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

#[prompt_router(vis = "pub(crate)")]
impl ControlPlane {
    #[prompt(
        name = "expose-upstream",
        description = "Route a path prefix to an upstream through the team's Envoy, and check Envoy accepted it."
    )]
    async fn expose_upstream(&self, Parameters(a): Parameters<ExposeArgs>) -> Vec<PromptMessage> {
        vec![PromptMessage::new_text(
            Role::User,
            format!(
                "In Flowplane team `{team}`, make requests under `{path}` reach `{upstream}` \
                 through the team's Envoy.\n\
                 1. `list_resources` for `dataplanes` and `listeners` to find the dataplane and \
                 any HTTP listener already serving it.\n\
                 2. `create_resource` a `clusters` resource whose endpoints are the upstream's \
                 host and port (`useTls` for https).\n\
                 3. Add a route with a `prefix` match on `{path}` forwarding to that cluster: \
                 `update_resource` the listener's route config, or create a `route-configs` \
                 resource and a `listeners` resource bound to the dataplane.\n\
                 4. `get_resource` each one you changed until its `status` says `programmed` for \
                 the dataplane; if it says `rejected`, read Envoy's error, fix, and update.\n\
                 A refused call carries the field paths that are wrong: fix those fields only.",
                team = a.team,
                path = a.path,
                upstream = a.upstream
            ),
        )]
    }

    #[prompt(
        name = "diagnose-rejected-config",
        description = "Find the team's resources Envoy rejected, explain why, and propose fixes."
    )]
    async fn diagnose(&self, Parameters(a): Parameters<TeamArgs>) -> Vec<PromptMessage> {
        vec![PromptMessage::new_text(
            Role::User,
            format!(
                "In Flowplane team `{team}`, find what Envoy rejected.\n\
                 1. `list_resources` for `clusters`, `route-configs`, `listeners` and `secrets`; \
                 each item's `status` lists every dataplane with `programmed` or `rejected` and \
                 Envoy's error.\n\
                 2. For each rejected resource, `get_resource` it and explain Envoy's error in \
                 terms of its fields.\n\
                 3. Propose the smallest change to each and, once the user agrees, \
                 `update_resource` it; then check its status again.\n\
                 Envoy keeps serving the last version it accepted meanwhile, so nothing is \
                 down while you work.",
                team = a.team
            ),
        )]
    }

    #[prompt(
        name = "learn-api",
        description = "Learn an API's endpoints and schemas from a listener's live traffic, and export them as OpenAPI."
    )]
    async fn learn_api(&self, Parameters(a): Parameters<LearnArgs>) -> Vec<PromptMessage> {
        vec![PromptMessage::new_text(
            Role::User,
            format!(
                "In Flowplane team `{team}`, learn the API served on listener `{listener}`.\n\
                 1. `create_resource` a `learning-sessions` resource \
                 {{\"name\": \"<a name>\", \"listener\": \"{listener}\", \"pathPrefix\": \"/\"}}.\n\
                 2. `change_learning_session` with action `activate`. Only one session per \
                 listener can be active; if another is, say so and stop.\n\
                 3. Ask the user to send representative traffic, then `get_learned_api` for the \
                 OpenAPI document: summarise the endpoints, statuses and body schemas.\n\
                 4. `change_learning_session` with action `stop` when the user has what they \
                 need. Only shapes are learned, never values.",
                team = a.team,
                listener = a.listener
            ),
        )]
    }
}
