//! Header mutation: adds and removes request and response headers for every request the
//! listener serves (routes and virtual hosts have their own lists for narrower changes).

use envoy_types::pb::envoy::config::common::mutation_rules::v3::HeaderMutation as Mutation;
use envoy_types::pb::envoy::config::common::mutation_rules::v3::header_mutation::Action;
use envoy_types::pb::envoy::extensions::filters::http::header_mutation::v3::{
    HeaderMutation, Mutations,
};
use envoy_types::pb::google::protobuf::Any;
use flowplane_domain::error::Path;
use flowplane_domain::header_changes::{HeaderChanges, HeaderToAdd};

use super::HttpFilterConfig;
use crate::TranslateError;
use crate::envoy_core::any;
use crate::headers::header_value_option;

impl HttpFilterConfig for HeaderChanges {
    const NAME: &'static str = "envoy.filters.http.header_mutation";

    fn typed_config(&self, _path: &Path) -> Result<Any, TranslateError> {
        Ok(any(&HeaderMutation {
            mutations: Some(all_mutations(self)),
            ..Default::default()
        }))
    }
}

/// Shared by the filter config and its per-route override (`HeaderMutationPerRoute`).
pub(crate) fn all_mutations(changes: &HeaderChanges) -> Mutations {
    Mutations {
        request_mutations: mutations(
            &changes.request_headers_to_add,
            &changes.request_headers_to_remove,
        ),
        response_mutations: mutations(
            &changes.response_headers_to_add,
            &changes.response_headers_to_remove,
        ),
        ..Default::default()
    }
}

/// Removals first, so that a header both removed and added ends up with only the new value.
fn mutations(adds: &[HeaderToAdd], removes: &[String]) -> Vec<Mutation> {
    let removed = removes.iter().map(|name| Action::Remove(name.clone()));
    let added = adds.iter().map(|a| Action::Append(header_value_option(a)));
    removed
        .chain(added)
        .map(|action| Mutation {
            action: Some(action),
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn removals_come_before_additions() {
        let changes: HeaderChanges = serde_json::from_str(
            r#"{"requestHeadersToAdd":[{"name":"x-a","value":"1"}],"requestHeadersToRemove":["x-a"],
                "responseHeadersToRemove":["server"]}"#,
        )
        .unwrap();
        let m = all_mutations(&changes);
        assert!(matches!(
            &m.request_mutations[0].action,
            Some(Action::Remove(name)) if name == "x-a"
        ));
        assert!(matches!(
            &m.request_mutations[1].action,
            Some(Action::Append(_))
        ));
        assert_eq!(m.response_mutations.len(), 1);
    }
}
