//! Headers added to or removed from requests and responses. Routes and virtual hosts carry
//! these lists directly; the `headerMutation` HTTP filter carries the same four as one object.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{Path, ValidationErrors};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderToAdd {
    pub name: String,
    pub value: String,
    /// Add another value when the header exists (default), or replace it when `false`.
    #[serde(default = "yes")]
    pub append: bool,
}

fn yes() -> bool {
    true
}

/// The four header lists of the `headerMutation` filter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderChanges {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub request_headers_to_add: Vec<HeaderToAdd>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub request_headers_to_remove: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub response_headers_to_add: Vec<HeaderToAdd>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub response_headers_to_remove: Vec<String>,
}

impl HeaderChanges {
    pub fn is_empty(&self) -> bool {
        self.request_headers_to_add.is_empty()
            && self.request_headers_to_remove.is_empty()
            && self.response_headers_to_add.is_empty()
            && self.response_headers_to_remove.is_empty()
    }

    pub(crate) fn validate(&self, at: &Path, errors: &mut ValidationErrors) {
        HeaderLists {
            request_headers_to_add: &self.request_headers_to_add,
            request_headers_to_remove: &self.request_headers_to_remove,
            response_headers_to_add: &self.response_headers_to_add,
            response_headers_to_remove: &self.response_headers_to_remove,
        }
        .validate(at, errors);
    }
}

/// The four lists as routes and virtual hosts carry them (as their own fields, because serde's
/// `flatten` cannot be combined with `deny_unknown_fields`).
pub(crate) struct HeaderLists<'a> {
    pub request_headers_to_add: &'a [HeaderToAdd],
    pub request_headers_to_remove: &'a [String],
    pub response_headers_to_add: &'a [HeaderToAdd],
    pub response_headers_to_remove: &'a [String],
}

impl HeaderLists<'_> {
    pub(crate) fn validate(&self, at: &Path, errors: &mut ValidationErrors) {
        check_headers_to_add(
            self.request_headers_to_add,
            &at.field("requestHeadersToAdd"),
            errors,
        );
        check_headers_to_remove(
            self.request_headers_to_remove,
            &at.field("requestHeadersToRemove"),
            errors,
        );
        check_headers_to_add(
            self.response_headers_to_add,
            &at.field("responseHeadersToAdd"),
            errors,
        );
        check_headers_to_remove(
            self.response_headers_to_remove,
            &at.field("responseHeadersToRemove"),
            errors,
        );
    }
}

pub(crate) fn check_headers_to_add(adds: &[HeaderToAdd], at: &Path, errors: &mut ValidationErrors) {
    for (i, add) in adds.iter().enumerate() {
        let item = at.index(i);
        if let Err(message) = modifiable_header_name(&add.name) {
            errors.add(item.field("name").as_str(), message);
        }
        if add.value.contains(['\r', '\n', '\0']) {
            errors.add(
                item.field("value").as_str(),
                "must not contain CR, LF or NUL",
            );
        }
    }
}

fn check_headers_to_remove(names: &[String], at: &Path, errors: &mut ValidationErrors) {
    for (i, name) in names.iter().enumerate() {
        if let Err(message) = modifiable_header_name(name) {
            errors.add(at.index(i).as_str(), message);
        }
    }
}

/// Envoy refuses to add or remove pseudo-headers (`:path`) and `host` through these lists:
/// they would change routing after the route was chosen.
pub fn modifiable_header_name(name: &str) -> Result<(), String> {
    if !is_header_name(name) {
        return Err("must be a header name (letters, digits and !#$%&'*+-.^_`|~)".into());
    }
    if name.starts_with(':') || name.eq_ignore_ascii_case("host") {
        return Err("pseudo-headers and host cannot be changed".into());
    }
    Ok(())
}

/// An RFC 9110 token, or a pseudo-header (`:` then a token).
pub fn is_header_name(name: &str) -> bool {
    let token = name.strip_prefix(':').unwrap_or(name);
    !token.is_empty()
        && token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudo_headers_host_and_bad_names_are_not_modifiable() {
        assert!(modifiable_header_name("x-request-source").is_ok());
        for bad in [":path", "host", "Host", "", "x y", "x\n"] {
            assert!(modifiable_header_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn every_list_is_checked_at_its_own_path() {
        let changes: HeaderChanges = serde_json::from_str(
            r#"{"requestHeadersToAdd":[{"name":"x-a","value":"1"},{"name":"host","value":"h"}],
                "requestHeadersToRemove":[":authority"],
                "responseHeadersToAdd":[{"name":"x-b","value":"a\nb"}],
                "responseHeadersToRemove":["ok","bad name"]}"#,
        )
        .unwrap_or_default();
        let mut errors = ValidationErrors::new();
        changes.validate(&Path::root(), &mut errors);
        let fields: Vec<&str> = errors.errors().iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "/requestHeadersToAdd/1/name",
                "/requestHeadersToRemove/0",
                "/responseHeadersToAdd/0/value",
                "/responseHeadersToRemove/1"
            ]
        );
    }
}
