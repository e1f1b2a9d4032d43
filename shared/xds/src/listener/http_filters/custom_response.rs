//! Custom responses through Envoy's generic matcher: one matcher per rule on the upstream's
//! status (codes or class), each answering with a local response policy. The same message is
//! the per-route override.

use envoy_types::pb::envoy::config::core::v3::DataSource;
use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
use envoy_types::pb::envoy::extensions::filters::http::custom_response::v3::CustomResponse;
use envoy_types::pb::envoy::extensions::http::custom_response::local_response_policy::v3::LocalResponsePolicy;
use envoy_types::pb::envoy::r#type::matcher::v3::{
    HttpResponseStatusCodeClassMatchInput, HttpResponseStatusCodeMatchInput,
};
use envoy_types::pb::google::protobuf::Any;
use envoy_types::pb::xds::core::v3::TypedExtensionConfig;
use envoy_types::pb::xds::r#type::matcher::v3::matcher::matcher_list::predicate::single_predicate::Matcher as ValueMatcher;
use envoy_types::pb::xds::r#type::matcher::v3::matcher::matcher_list::predicate::{
    MatchType, PredicateList, SinglePredicate,
};
use envoy_types::pb::xds::r#type::matcher::v3::matcher::matcher_list::{FieldMatcher, Predicate};
use envoy_types::pb::xds::r#type::matcher::v3::matcher::on_match::OnMatch as OnMatchKind;
use envoy_types::pb::xds::r#type::matcher::v3::matcher::{MatcherList, MatcherType, OnMatch};
use envoy_types::pb::xds::r#type::matcher::v3::string_matcher::MatchPattern;
use envoy_types::pb::xds::r#type::matcher::v3::{Matcher, StringMatcher};
use flowplane_domain::error::Path;
use flowplane_domain::filters::custom_response::{CustomResponseFilter, CustomResponseRule};

use super::HttpFilterConfig;
use crate::TranslateError;
use crate::envoy_core::{any, u32_value};
use crate::headers::header_value_options;

impl HttpFilterConfig for CustomResponseFilter {
    const NAME: &'static str = "envoy.filters.http.custom_response";

    fn typed_config(&self, _path: &Path) -> Result<Any, TranslateError> {
        Ok(any(&config(self)))
    }
}

pub(crate) fn config(filter: &CustomResponseFilter) -> CustomResponse {
    CustomResponse {
        custom_response_matcher: Some(Matcher {
            matcher_type: Some(MatcherType::MatcherList(MatcherList {
                matchers: filter.rules.iter().map(field_matcher).collect(),
            })),
            on_no_match: None,
        }),
    }
}

fn field_matcher(rule: &CustomResponseRule) -> FieldMatcher {
    let mut predicates: Vec<Predicate> = rule
        .status_codes
        .iter()
        .map(|code| {
            status_predicate(
                extension("status-code", &HttpResponseStatusCodeMatchInput {}),
                code.to_string(),
            )
        })
        .collect();
    if let Some(class) = rule.status_class {
        predicates.push(status_predicate(
            extension("status-class", &HttpResponseStatusCodeClassMatchInput {}),
            class.as_str().to_string(),
        ));
    }
    let predicate = if predicates.len() == 1 {
        predicates.remove(0)
    } else {
        Predicate {
            match_type: Some(MatchType::OrMatcher(PredicateList {
                predicate: predicates,
            })),
        }
    };
    let policy = LocalResponsePolicy {
        body: Some(DataSource {
            specifier: Some(Specifier::InlineString(rule.body.clone())),
            ..Default::default()
        }),
        status_code: rule.status.map(|s| u32_value(u32::from(s))),
        response_headers_to_add: header_value_options(&rule.response_headers_to_add),
        ..Default::default()
    };
    FieldMatcher {
        predicate: Some(predicate),
        on_match: Some(OnMatch {
            keep_matching: false,
            on_match: Some(OnMatchKind::Action(extension("local-response", &policy))),
        }),
    }
}

fn status_predicate(input: TypedExtensionConfig, value: String) -> Predicate {
    Predicate {
        match_type: Some(MatchType::SinglePredicate(SinglePredicate {
            input: Some(input),
            matcher: Some(ValueMatcher::ValueMatch(StringMatcher {
                match_pattern: Some(MatchPattern::Exact(value)),
                ignore_case: false,
            })),
        })),
    }
}

/// The generic matcher takes xDS's own `TypedExtensionConfig`, not Envoy's.
fn extension<M: prost::Message + prost::Name>(name: &str, message: &M) -> TypedExtensionConfig {
    TypedExtensionConfig {
        name: name.to_string(),
        typed_config: Some(any(message)),
    }
}
