//! Learning sessions: while one is active, the Envoys serving its listener copy the traffic
//! under its path prefix to the learning service, which infers the API's schemas from it.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{Path, ValidationErrors};
use crate::names::check_name;
use crate::resource::Spec;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LearningSessionSpec {
    /// The team's listener whose traffic is learned from.
    pub listener: String,
    /// Only requests whose path starts with this are learned from.
    #[serde(default = "root_prefix")]
    pub path_prefix: String,
    /// `pending` when created unless given; `POST …/activate` and `…/stop` move it on.
    #[serde(default)]
    pub state: SessionState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum SessionState {
    /// Created, not capturing yet.
    #[default]
    Pending,
    /// Envoy copies matching traffic to the learning service.
    Active,
    /// Capture ended; what was learned stays readable.
    Stopped,
}

impl SessionState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Stopped => "stopped",
        }
    }
}

fn root_prefix() -> String {
    "/".into()
}

impl Spec for LearningSessionSpec {
    fn validate(&self, errors: &mut ValidationErrors) {
        check_name(&self.listener, &Path::root().field("listener"), errors);
        let prefix = Path::root().field("pathPrefix");
        if !self.path_prefix.starts_with('/') {
            errors.add(prefix.as_str(), "must start with '/'");
        } else if self.path_prefix.len() > 1024 || self.path_prefix.chars().any(char::is_control) {
            errors.add(
                prefix.as_str(),
                "must be at most 1024 characters without control characters",
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::resource::parse_spec;

    #[test]
    fn a_session_starts_pending_on_the_whole_listener() {
        let parsed = parse_spec::<LearningSessionSpec>(r#"{"name":"s","listener":"edge"}"#)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(parsed.spec.state, SessionState::Pending);
        assert_eq!(parsed.spec.path_prefix, "/");
    }

    #[test]
    fn bad_fields_are_reported_with_their_paths() {
        let errors =
            parse_spec::<LearningSessionSpec>(r#"{"listener":"Bad Name","pathPrefix":"api"}"#)
                .expect_err("invalid");
        let text = errors.to_string();
        assert!(text.contains("/listener"), "{text}");
        assert!(text.contains("/pathPrefix"), "{text}");
        let errors = parse_spec::<LearningSessionSpec>(r#"{"listener":"edge","state":"paused"}"#)
            .expect_err("invalid");
        assert!(errors.to_string().contains("/state"), "{errors}");
    }
}
