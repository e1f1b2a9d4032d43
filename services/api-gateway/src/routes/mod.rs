//! Every route the gateway serves, assembled into one [`RouteTable`].

pub mod api_definitions;
pub mod audit_logs;
pub mod bootstrap;
pub mod envoy_config;
pub mod filter_types;
pub mod health;
pub mod learning_sessions;
pub mod members;
pub mod organizations;
pub mod reports;
pub mod resources;
pub mod sessions;
pub mod teams;
pub mod tokens;

use utoipa_axum::routes;

use crate::openapi::{self, Document};
use crate::route_table::RouteTable;
use crate::state::AppState;

pub fn table(state: &AppState, document: Document) -> RouteTable {
    let table = RouteTable::new(openapi::base())
        .documented(routes!(bootstrap::status))
        .documented(routes!(bootstrap::initialize))
        .documented(routes!(organizations::create, organizations::list))
        .documented(routes!(tokens::create, tokens::list))
        .documented(routes!(tokens::get, tokens::update, tokens::revoke))
        .documented(routes!(tokens::rotate))
        .documented(routes!(teams::list, teams::create))
        .documented(routes!(audit_logs::list))
        .documented(routes!(envoy_config::envoy_config))
        .documented(routes!(filter_types::list))
        .documented(routes!(filter_types::get))
        .documented(routes!(sessions::login))
        .documented(routes!(sessions::logout))
        .documented(routes!(sessions::session))
        .documented(routes!(members::register))
        .documented(routes!(members::invite))
        .documented(routes!(members::list))
        .documented(routes!(members::update, members::remove));
    let table = table
        .documented(routes!(api_definitions::list, api_definitions::create))
        .documented(routes!(
            api_definitions::get,
            api_definitions::update,
            api_definitions::delete
        ))
        .documented(routes!(api_definitions::import_openapi))
        .documented(routes!(
            api_definitions::team_list,
            api_definitions::team_create
        ))
        .documented(routes!(
            api_definitions::team_get,
            api_definitions::team_update,
            api_definitions::team_delete
        ))
        .documented(routes!(api_definitions::expose))
        .documented(routes!(api_definitions::unexpose))
        .documented(routes!(api_definitions::bootstrap))
        .documented(routes!(learning_sessions::activate))
        .documented(routes!(learning_sessions::stop))
        .documented(routes!(learning_sessions::activate_canonical))
        .documented(routes!(learning_sessions::stop_canonical))
        .documented(routes!(learning_sessions::endpoints))
        .documented(routes!(learning_sessions::openapi))
        .documented(routes!(reports::route_flows))
        .documented(routes!(reports::usage))
        .documented(routes!(reports::trace))
        .documented(routes!(reports::validate))
        .documented(routes!(reports::preflight))
        .documented(routes!(reports::delivery))
        .documented(routes!(reports::topology));
    let table = resources::routes(table);
    let table = health::routes(table, state.readiness.clone());
    let table = openapi::routes(table, document);
    let table = crate::swagger::routes(table);
    crate::ui::routes(table)
}

/// proto3 strings are never absent; on the wire an empty optional value is `null`.
fn non_empty(value: String) -> Option<String> {
    (!value.is_empty()).then_some(value)
}
