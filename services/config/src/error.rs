//! The config service's one error type, and its mapping onto gRPC statuses that carry a
//! machine-readable `ErrorDetail`.

use flowplane_domain::{ErrorCode, FieldError, ValidationErrors};
use flowplane_proto::common::v1 as pb;
use prost::Message;
use tonic::{Code, Status};

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("validation failed: {0}")]
    Validation(ValidationErrors),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("the resource is at revision {current}, not {expected}")]
    RevisionMismatch { expected: i64, current: i64 },
    #[error("{message}")]
    Conflict {
        message: String,
        referrers: Vec<FieldError>,
    },
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ServiceError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Validation(_) => ErrorCode::ValidationFailed,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::AlreadyExists(_) => ErrorCode::AlreadyExists,
            Self::RevisionMismatch { .. } => ErrorCode::RevisionMismatch,
            Self::Conflict { .. } => ErrorCode::Conflict,
            Self::Unauthenticated(_) => ErrorCode::Unauthenticated,
            Self::Forbidden(_) => ErrorCode::Forbidden,
            Self::Unavailable(_) => ErrorCode::Unavailable,
            Self::Internal(_) => ErrorCode::Internal,
        }
    }

    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(ValidationErrors::single(field, message))
    }

    fn grpc_code(&self) -> Code {
        match self {
            Self::Validation(_) => Code::InvalidArgument,
            Self::NotFound(_) => Code::NotFound,
            Self::AlreadyExists(_) => Code::AlreadyExists,
            Self::RevisionMismatch { .. } => Code::FailedPrecondition,
            Self::Conflict { .. } => Code::Aborted,
            Self::Unauthenticated(_) => Code::Unauthenticated,
            Self::Forbidden(_) => Code::PermissionDenied,
            Self::Unavailable(_) => Code::Unavailable,
            Self::Internal(_) => Code::Internal,
        }
    }
}

impl From<ValidationErrors> for ServiceError {
    fn from(errors: ValidationErrors) -> Self {
        Self::Validation(errors)
    }
}

impl From<sqlx::Error> for ServiceError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                tracing::warn!(error = %e, "database unavailable");
                Self::Unavailable("the database is unavailable; retry shortly".into())
            }
            // Text with a NUL byte (22021) or a JSON `\u0000` (22P05): PostgreSQL can neither
            // store nor compare it, and no name holds one.
            sqlx::Error::Database(db)
                if matches!(db.code().as_deref(), Some("22021" | "22P05")) =>
            {
                Self::validation("", "text must not contain a NUL character")
            }
            other => Self::Internal(other.into()),
        }
    }
}

impl From<ServiceError> for Status {
    fn from(error: ServiceError) -> Self {
        let errors = match &error {
            ServiceError::Validation(v) => v.errors().to_vec(),
            ServiceError::Conflict { referrers, .. } => referrers.clone(),
            _ => Vec::new(),
        };
        let message = match &error {
            ServiceError::Internal(source) => {
                // The caller gets a generic message; the cause stays in our log.
                tracing::error!(error = ?source, "internal error");
                "internal error".to_string()
            }
            ServiceError::Validation(_) => "the request is invalid".to_string(),
            other => other.to_string(),
        };
        let detail = pb::ErrorDetail {
            code: error.code().as_str().to_string(),
            errors: errors
                .into_iter()
                .map(|e| pb::FieldError {
                    field: e.field,
                    message: e.message,
                })
                .collect(),
        };
        Status::with_details(error.grpc_code(), message, detail.encode_to_vec().into())
    }
}

/// The name of the unique constraint a database error violated, if any, so callers can turn
/// specific violations into typed errors without matching on message text.
pub fn violated_constraint(e: &sqlx::Error) -> Option<&str> {
    match e {
        sqlx::Error::Database(db) if db.code().as_deref() == Some("23505") => db.constraint(),
        _ => None,
    }
}
