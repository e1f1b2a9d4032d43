//! Identity: the first-run setup token, bootstrap of the first platform admin, organizations
//! and their default teams, personal access tokens, and turning a bearer credential into a
//! principal, one module per concept.

mod authentication;
mod bootstrap;
mod organizations;
mod tokens;

pub use authentication::authenticate;
pub(crate) use authentication::authenticated;
pub use bootstrap::{announce_setup_token, initialize, needs_initialization};
pub use organizations::{create_organization, list_organizations};
pub use tokens::{create_token, get_token, list_tokens, revoke_token, rotate_token, update_token};

use crate::error::ServiceError;

pub const SETUP_PREFIX: &str = "fp_setup_";
pub const PAT_PREFIX: &str = "fp_pat_";

pub(crate) fn is_plausible_email(email: &str) -> bool {
    match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !email.contains(char::is_whitespace)
                && email.len() <= 254
        }
        None => false,
    }
}

fn sqlx_err(e: sqlx::Error) -> ServiceError {
    e.into()
}
