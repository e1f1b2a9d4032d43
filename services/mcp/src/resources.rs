//! MCP resources: every team resource the agent's token can read, addressed as
//! `flowplane://teams/{team}/{kind}/{name}` and read through the REST API (so the token's
//! scopes decide, and another team's resource is not found).

use rmcp::ErrorData;
use rmcp::model::ResourceTemplate;

const SCHEME: &str = "flowplane://teams/";

/// The one template: a resource by team, kind and name.
pub fn templates() -> Vec<ResourceTemplate> {
    vec![
        ResourceTemplate::new(
            format!("{SCHEME}{{team}}/{{kind}}/{{name}}"),
            "team-resource",
        )
        .with_title("A team's resource")
        .with_description(format!(
            "One resource of a team as JSON, with its revision and each dataplane's Envoy \
                 status. kind is one of {}.",
            crate::tools::KINDS.join(", ")
        )),
    ]
}

/// The REST path a resource URI names; anything else is an invalid-params error.
pub fn rest_path(uri: &str) -> Result<String, ErrorData> {
    let invalid = || {
        ErrorData::invalid_params(
            format!("{uri:?} is not a flowplane://teams/{{team}}/{{kind}}/{{name}} URI"),
            None,
        )
    };
    let rest = uri.strip_prefix(SCHEME).ok_or_else(invalid)?;
    let [team, kind, name] = rest.split('/').collect::<Vec<_>>()[..] else {
        return Err(invalid());
    };
    crate::tools::item(team, kind, name)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn uris_map_to_team_paths_and_nothing_else() {
        assert_eq!(
            rest_path("flowplane://teams/acme-default/clusters/web").unwrap(),
            "/api/v1/teams/acme-default/clusters/web"
        );
        assert!(rest_path("flowplane://teams/acme-default/users/web").is_err());
        assert!(rest_path("flowplane://teams/acme-default/clusters/../tokens").is_err());
        assert!(rest_path("flowplane://teams/acme-default/clusters").is_err());
        assert!(rest_path("https://example.com/api/v1/tokens").is_err());
    }
}
