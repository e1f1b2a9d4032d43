//! The one error translation reports: a field of the REST body that Envoy cannot express.

use flowplane_domain::ValidationErrors;
use flowplane_domain::error::Path;

/// `field` is a JSON pointer into the REST body (`/endpoints/0/host`), the same convention as
/// domain validation, so the config service can return it as an ordinary 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct TranslateError {
    pub field: String,
    pub message: String,
}

impl TranslateError {
    pub(crate) fn at(path: &Path, message: impl Into<String>) -> Self {
        Self {
            field: path.as_str().to_string(),
            message: message.into(),
        }
    }
}

impl From<TranslateError> for ValidationErrors {
    fn from(error: TranslateError) -> Self {
        ValidationErrors::single(error.field, error.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn becomes_a_single_validation_error_at_the_same_field() {
        let path = Path::root().field("endpoints").index(0).field("host");
        let errors: ValidationErrors = TranslateError::at(&path, "bad host").into();
        assert_eq!(errors.errors().len(), 1);
        assert_eq!(errors.errors()[0].field, "/endpoints/0/host");
        assert_eq!(errors.errors()[0].message, "bad host");
    }

    #[test]
    fn displays_field_then_message() {
        let error = TranslateError::at(&Path::root().field("port"), "out of range");
        assert_eq!(error.to_string(), "/port: out of range");
    }
}
