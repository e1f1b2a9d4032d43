//! Dataplanes: a named Envoy (or fleet of identical Envoys) registered to a team.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::cluster::is_valid_host;
use crate::error::{Path, ValidationErrors};
use crate::resource::Spec;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DataplaneSpec {
    /// The host name clients use to reach this dataplane's listeners (informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl Spec for DataplaneSpec {
    fn validate(&self, errors: &mut ValidationErrors) {
        if let Some(host) = &self.gateway_host
            && !is_valid_host(host)
        {
            errors.add(
                Path::root().field("gatewayHost").as_str(),
                "must be a hostname or IP address",
            );
        }
        if self.description.as_ref().is_some_and(|d| d.len() > 1024) {
            errors.add(
                Path::root().field("description").as_str(),
                "must be at most 1024 characters",
            );
        }
    }
}
