//! Header additions in Envoy's form, shared by routes, virtual hosts and the header mutation
//! filter.

use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use envoy_types::pb::envoy::config::core::v3::{HeaderValue, HeaderValueOption};
use flowplane_domain::header_changes::HeaderToAdd;

/// `append_action` replaces the deprecated `append` flag (a deprecated field would make a
/// strict Envoy reject the configuration).
pub(crate) fn header_value_option(add: &HeaderToAdd) -> HeaderValueOption {
    let action = if add.append {
        HeaderAppendAction::AppendIfExistsOrAdd
    } else {
        HeaderAppendAction::OverwriteIfExistsOrAdd
    };
    HeaderValueOption {
        header: Some(HeaderValue {
            key: add.name.clone(),
            value: add.value.clone(),
            ..Default::default()
        }),
        append_action: action as i32,
        ..Default::default()
    }
}

pub(crate) fn header_value_options(adds: &[HeaderToAdd]) -> Vec<HeaderValueOption> {
    adds.iter().map(header_value_option).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_chooses_between_adding_and_overwriting() {
        let add = |append| HeaderToAdd {
            name: "x-a".into(),
            value: "1".into(),
            append,
        };
        let appended = header_value_option(&add(true));
        assert_eq!(
            appended.append_action,
            HeaderAppendAction::AppendIfExistsOrAdd as i32
        );
        let header = appended.header.unwrap_or_default();
        assert_eq!((header.key.as_str(), header.value.as_str()), ("x-a", "1"));
        assert_eq!(
            header_value_option(&add(false)).append_action,
            HeaderAppendAction::OverwriteIfExistsOrAdd as i32
        );
    }
}
