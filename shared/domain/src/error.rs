//! The closed set of error codes every boundary maps from, and validation errors with paths.

use serde::Serialize;

/// Stable machine codes. api-gateway maps each to an HTTP status in one `match`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    ValidationFailed,
    MalformedBody,
    NotFound,
    AlreadyExists,
    RevisionMismatch,
    Conflict,
    Unauthenticated,
    Forbidden,
    Unavailable,
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ValidationFailed => "validation_failed",
            Self::MalformedBody => "malformed_body",
            Self::NotFound => "not_found",
            Self::AlreadyExists => "already_exists",
            Self::RevisionMismatch => "revision_mismatch",
            Self::Conflict => "conflict",
            Self::Unauthenticated => "unauthenticated",
            Self::Forbidden => "forbidden",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
        }
    }

    pub fn parse(code: &str) -> Option<Self> {
        [
            Self::ValidationFailed,
            Self::MalformedBody,
            Self::NotFound,
            Self::AlreadyExists,
            Self::RevisionMismatch,
            Self::Conflict,
            Self::Unauthenticated,
            Self::Forbidden,
            Self::Unavailable,
            Self::Internal,
        ]
        .into_iter()
        .find(|c| c.as_str() == code)
    }
}

/// One problem with one field. `field` is a JSON pointer into the request body
/// (`/virtualHosts/0/routes/1/action/cluster`); empty means the body as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// Every problem found in one body: validation collects them all rather than stopping at the
/// first, so a caller can fix a request in one round trip.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidationErrors {
    errors: Vec<FieldError>,
}

impl ValidationErrors {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn single(field: impl Into<String>, message: impl Into<String>) -> Self {
        let mut errors = Self::new();
        errors.add(field, message);
        errors
    }

    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    pub fn errors(&self) -> &[FieldError] {
        &self.errors
    }

    pub fn into_errors(self) -> Vec<FieldError> {
        self.errors
    }

    /// `Ok(())` when nothing was recorded.
    pub fn into_result(self) -> Result<(), Self> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(self)
        }
    }
}

impl std::fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect();
        f.write_str(&parts.join("; "))
    }
}

impl std::error::Error for ValidationErrors {}

/// Builds JSON-pointer paths while walking a body.
#[derive(Debug, Clone, Default)]
pub struct Path(String);

impl Path {
    pub fn root() -> Self {
        Self(String::new())
    }

    pub fn field(&self, name: &str) -> Self {
        Self(format!("{}/{}", self.0, name))
    }

    pub fn index(&self, i: usize) -> Self {
        Self(format!("{}/{}", self.0, i))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Path {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
