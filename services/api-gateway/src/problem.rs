//! RFC 9457 problem details: the one error type every handler returns, the single mapping from
//! [`ErrorCode`] to HTTP status, and the translation of config's gRPC refusals into problems.
//!
//! A [`Problem`] renders itself, and also rides along in the response extensions so the
//! request-id middleware can stamp `requestId` into the body and log internal causes under that
//! id. Causes of internal errors go to the log only, never to the caller.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use flowplane_domain::{ErrorCode, FieldError};
use flowplane_proto::common::v1 as pb;
use prost::Message;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub const CONTENT_TYPE: &str = "application/problem+json";

/// What went wrong: a domain code, or one of the conditions only HTTP itself has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemCode {
    Domain(ErrorCode),
    PayloadTooLarge,
    MethodNotAllowed,
    /// Too many failed logins (the gateway's own throttle).
    TooManyRequests,
}

impl ProblemCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Domain(code) => code.as_str(),
            Self::PayloadTooLarge => "payload_too_large",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::TooManyRequests => "too_many_requests",
        }
    }

    /// The one place a code becomes an HTTP status (and the fixed title RFC 9457 asks for).
    pub fn status_and_title(self) -> (StatusCode, &'static str) {
        match self {
            Self::Domain(ErrorCode::ValidationFailed) => {
                (StatusCode::BAD_REQUEST, "The request is invalid")
            }
            Self::Domain(ErrorCode::MalformedBody) => {
                (StatusCode::BAD_REQUEST, "The request body is malformed")
            }
            Self::Domain(ErrorCode::Unauthenticated) => {
                (StatusCode::UNAUTHORIZED, "Authentication required")
            }
            Self::Domain(ErrorCode::Forbidden) => (StatusCode::FORBIDDEN, "Forbidden"),
            Self::Domain(ErrorCode::NotFound) => (StatusCode::NOT_FOUND, "Not found"),
            Self::Domain(ErrorCode::AlreadyExists) => (StatusCode::CONFLICT, "Already exists"),
            Self::Domain(ErrorCode::Conflict) => (StatusCode::CONFLICT, "Conflict"),
            Self::Domain(ErrorCode::RevisionMismatch) => {
                (StatusCode::PRECONDITION_FAILED, "Revision mismatch")
            }
            Self::Domain(ErrorCode::Unavailable) => {
                (StatusCode::SERVICE_UNAVAILABLE, "Service unavailable")
            }
            Self::Domain(ErrorCode::Internal) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "Internal error")
            }
            Self::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "Payload too large"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "Method not allowed"),
            Self::TooManyRequests => (StatusCode::TOO_MANY_REQUESTS, "Too many requests"),
        }
    }

    pub fn status(self) -> StatusCode {
        self.status_and_title().0
    }
}

/// A refusal, ready to become an `application/problem+json` response.
#[derive(Debug, Clone)]
pub struct Problem {
    code: ProblemCode,
    detail: String,
    errors: Vec<FieldError>,
    /// The cause, for the log only.
    internal: Option<String>,
    /// Seconds for a `Retry-After` header (429).
    retry_after: Option<u64>,
}

const INTERNAL_DETAIL: &str = "an internal error occurred; quote the request id when reporting it";
const UNAVAILABLE_DETAIL: &str = "the configuration service is unavailable; retry shortly";

impl Problem {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            code: ProblemCode::Domain(code),
            detail: detail.into(),
            errors: Vec::new(),
            internal: None,
            retry_after: None,
        }
    }

    /// One problem with one field of the request.
    pub fn field(code: ErrorCode, field: impl Into<String>, message: impl Into<String>) -> Self {
        let field = field.into();
        let message = message.into();
        let detail = if field.is_empty() {
            message.clone()
        } else {
            format!("{field}: {message}")
        };
        Self::new(code, detail).with_errors(vec![FieldError { field, message }])
    }

    pub fn with_errors(mut self, errors: Vec<FieldError>) -> Self {
        self.errors = errors;
        self
    }

    pub fn unauthenticated(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthenticated, detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, detail)
    }

    /// A failure the caller cannot fix: a generic message out, the cause into the log.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        let mut problem = Self::new(ErrorCode::Internal, INTERNAL_DETAIL);
        problem.internal = Some(cause.to_string());
        problem
    }

    pub fn unavailable(cause: impl std::fmt::Display) -> Self {
        let mut problem = Self::new(ErrorCode::Unavailable, UNAVAILABLE_DETAIL);
        problem.internal = Some(cause.to_string());
        problem
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self {
            code: ProblemCode::PayloadTooLarge,
            detail: format!("the request body exceeds {limit} bytes"),
            errors: Vec::new(),
            internal: None,
            retry_after: None,
        }
    }

    pub fn method_not_allowed() -> Self {
        Self {
            code: ProblemCode::MethodNotAllowed,
            detail: "this resource does not support the request method".into(),
            errors: Vec::new(),
            internal: None,
            retry_after: None,
        }
    }

    /// Too many attempts: retry after `seconds` (sent as `Retry-After`).
    pub fn too_many_requests(detail: impl Into<String>, seconds: u64) -> Self {
        Self {
            code: ProblemCode::TooManyRequests,
            detail: detail.into(),
            errors: Vec::new(),
            internal: None,
            retry_after: Some(seconds.max(1)),
        }
    }

    /// Turns config's refusal into a problem. config attaches an `ErrorDetail` to every status
    /// it returns; without one (the transport failed, or something in between answered) the
    /// gRPC code decides.
    pub fn from_status(status: &tonic::Status) -> Self {
        let detail = (!status.details().is_empty())
            .then(|| pb::ErrorDetail::decode(status.details()).ok())
            .flatten();
        let code = detail.as_ref().and_then(|d| ErrorCode::parse(&d.code));
        let errors: Vec<FieldError> = detail
            .map(|d| {
                d.errors
                    .into_iter()
                    .map(|e| FieldError {
                        field: e.field,
                        message: e.message,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let cause = || format!("config answered {:?}: {}", status.code(), status.message());
        let code = match code {
            Some(code) => code,
            // Every user-facing refusal from config carries a detail; a bare
            // `Unauthenticated` is config refusing *our* service credential, which the caller
            // can do nothing about.
            None if status.code() == tonic::Code::Unauthenticated => {
                return Self::internal(format!(
                    "config refused the gateway's service credential (check FLOWPLANE_SERVICE_CREDENTIAL): {}",
                    status.message()
                ));
            }
            // Likewise a bare `PermissionDenied`: a method config does not allow the gateway.
            None if status.code() == tonic::Code::PermissionDenied => {
                return Self::internal(format!(
                    "config refused the gateway this method: {}",
                    status.message()
                ));
            }
            None => code_for_grpc(status.code()),
        };
        match code {
            ErrorCode::Internal => Self::internal(cause()),
            ErrorCode::Unavailable if errors.is_empty() && status.details().is_empty() => {
                Self::unavailable(cause())
            }
            _ => {
                let message = status.message();
                let detail = if message.is_empty() {
                    code.as_str().replace('_', " ")
                } else {
                    message.to_string()
                };
                Self::new(code, detail).with_errors(errors)
            }
        }
    }

    #[cfg(test)]
    pub fn code(&self) -> ProblemCode {
        self.code
    }

    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    pub fn detail(&self) -> &str {
        &self.detail
    }

    #[cfg(test)]
    pub fn errors(&self) -> &[FieldError] {
        &self.errors
    }

    #[cfg(test)]
    pub fn internal_cause(&self) -> Option<&str> {
        self.internal.as_deref()
    }

    /// The body the caller sees.
    pub fn document(&self, request_id: Option<&str>) -> ProblemDocument {
        let (status, title) = self.code.status_and_title();
        ProblemDocument {
            problem_type: format!("urn:flowplane:problem:{}", self.code.as_str()),
            title: title.to_string(),
            status: status.as_u16(),
            detail: self.detail.clone(),
            code: self.code.as_str().to_string(),
            request_id: request_id.map(str::to_string),
            errors: self
                .errors
                .iter()
                .map(|e| FieldErrorDocument {
                    field: e.field.clone(),
                    message: e.message.clone(),
                })
                .collect(),
        }
    }

    /// Renders the response, with `requestId` when it is known.
    pub fn render(&self, request_id: Option<&str>) -> Response {
        let body = serde_json::to_vec(&self.document(request_id)).unwrap_or_default();
        let mut response = (self.status(), body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        if self.status() == StatusCode::UNAUTHORIZED {
            // RFC 6750: tell the client which scheme to use.
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"flowplane\""),
            );
        }
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response.extensions_mut().insert(self.clone());
        response
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        self.render(None)
    }
}

/// The gRPC code's meaning when config sent no `ErrorDetail`.
fn code_for_grpc(code: tonic::Code) -> ErrorCode {
    use tonic::Code;
    match code {
        Code::InvalidArgument | Code::OutOfRange => ErrorCode::ValidationFailed,
        Code::NotFound => ErrorCode::NotFound,
        Code::AlreadyExists => ErrorCode::AlreadyExists,
        // config's convention: a failed `if_revision` precondition.
        Code::FailedPrecondition => ErrorCode::RevisionMismatch,
        Code::Aborted => ErrorCode::Conflict,
        Code::PermissionDenied => ErrorCode::Forbidden,
        Code::Unauthenticated => ErrorCode::Unauthenticated,
        Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted | Code::Cancelled => {
            ErrorCode::Unavailable
        }
        Code::Ok | Code::Unknown | Code::Internal | Code::Unimplemented | Code::DataLoss => {
            ErrorCode::Internal
        }
    }
}

/// Makes every error response a problem document carrying the request id: problems raised by
/// handlers get their `requestId` stamped in, and bare errors produced by the framework
/// (405 from method routing, 413 from the body limit) are converted. Internal causes are logged
/// here, under the request id.
pub fn finalize(response: Response, request_id: &str) -> Response {
    let problem = match response.extensions().get::<Problem>() {
        Some(problem) => problem.clone(),
        None => {
            let status = response.status();
            let is_problem = response
                .headers()
                .get(header::CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes().starts_with(CONTENT_TYPE.as_bytes()));
            let plain = response.extensions().get::<PlainStatus>().is_some();
            if !(status.is_client_error() || status.is_server_error()) || is_problem || plain {
                return response;
            }
            match bare_status_problem(status) {
                Some(problem) => problem,
                None => return response,
            }
        }
    };
    log(&problem, request_id);
    let (mut parts, _) = response.into_parts();
    let rendered = problem.render(Some(request_id));
    let (rendered_parts, body) = rendered.into_parts();
    parts.status = rendered_parts.status;
    parts.headers.remove(header::CONTENT_LENGTH);
    for (name, value) in &rendered_parts.headers {
        parts.headers.insert(name.clone(), value.clone());
    }
    parts.extensions.insert(problem);
    Response::from_parts(parts, body)
}

/// Marks a response whose status is its whole message (the plain-text operational endpoints:
/// a 503 from `/readyz` is an answer, not a failure), so [`finalize`] leaves it alone.
#[derive(Debug, Clone, Copy)]
pub struct PlainStatus;

fn bare_status_problem(status: StatusCode) -> Option<Problem> {
    Some(match status {
        StatusCode::BAD_REQUEST => {
            Problem::new(ErrorCode::MalformedBody, "the request is malformed")
        }
        StatusCode::UNAUTHORIZED => Problem::unauthenticated("authentication required"),
        StatusCode::NOT_FOUND => Problem::not_found("no such resource"),
        StatusCode::METHOD_NOT_ALLOWED => Problem::method_not_allowed(),
        StatusCode::PAYLOAD_TOO_LARGE => Problem::payload_too_large(crate::BODY_LIMIT_BYTES),
        StatusCode::SERVICE_UNAVAILABLE => Problem::unavailable("a layer answered 503"),
        s if s.is_server_error() => Problem::internal(format!("a layer answered {s}")),
        _ => return None,
    })
}

fn log(problem: &Problem, request_id: &str) {
    let code = problem.code.as_str();
    let cause = problem.internal.as_deref().unwrap_or("");
    if problem.status() == StatusCode::SERVICE_UNAVAILABLE {
        tracing::warn!(
            request_id,
            code,
            cause,
            "request failed: a dependency is unavailable"
        );
    } else if problem.status().is_server_error() {
        tracing::error!(request_id, code, cause, "request failed");
    } else {
        tracing::debug!(request_id, code, detail = %problem.detail, "request refused");
    }
}

/// RFC 9457 problem details, plus Flowplane's stable `code` and the `requestId`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Problem)]
pub struct ProblemDocument {
    /// A URI identifying the problem type: `urn:flowplane:problem:<code>`.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// A short summary, fixed per problem type.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong in this occurrence.
    pub detail: String,
    /// Stable machine code: `validation_failed`, `malformed_body`, `unauthenticated`,
    /// `forbidden`, `not_found`, `already_exists`, `conflict`, `revision_mismatch`,
    /// `payload_too_large`, `method_not_allowed`, `unavailable` or `internal`.
    pub code: String,
    /// The request id (also in the `x-request-id` header); quote it when reporting a problem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// For validation problems: each offending field, by JSON-pointer-like path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldErrorDocument>,
}

/// One problem with one field; `field` is a JSON pointer into the request body (empty: the body
/// as a whole).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = FieldError)]
pub struct FieldErrorDocument {
    pub field: String,
    pub message: String,
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    const ALL: [ErrorCode; 10] = [
        ErrorCode::ValidationFailed,
        ErrorCode::MalformedBody,
        ErrorCode::NotFound,
        ErrorCode::AlreadyExists,
        ErrorCode::RevisionMismatch,
        ErrorCode::Conflict,
        ErrorCode::Unauthenticated,
        ErrorCode::Forbidden,
        ErrorCode::Unavailable,
        ErrorCode::Internal,
    ];

    fn expected_status(code: ErrorCode) -> u16 {
        match code {
            ErrorCode::ValidationFailed | ErrorCode::MalformedBody => 400,
            ErrorCode::Unauthenticated => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::AlreadyExists | ErrorCode::Conflict => 409,
            ErrorCode::RevisionMismatch => 412,
            ErrorCode::Unavailable => 503,
            ErrorCode::Internal => 500,
        }
    }

    async fn body_json(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap_or_default();
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null)
    }

    fn status_with(
        code: tonic::Code,
        message: &str,
        detail: Option<pb::ErrorDetail>,
    ) -> tonic::Status {
        match detail {
            Some(d) => tonic::Status::with_details(code, message, d.encode_to_vec().into()),
            None => tonic::Status::new(code, message),
        }
    }

    #[tokio::test]
    async fn every_error_code_renders_its_status_as_problem_json() {
        for code in ALL {
            let response = Problem::new(code, "something").render(Some("req-1"));
            assert_eq!(
                response.status().as_u16(),
                expected_status(code),
                "{code:?}"
            );
            assert_eq!(
                response
                    .headers()
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok()),
                Some(CONTENT_TYPE)
            );
            let body = body_json(response).await;
            assert_eq!(body["status"], expected_status(code));
            assert_eq!(body["code"], code.as_str());
            assert_eq!(
                body["type"],
                format!("urn:flowplane:problem:{}", code.as_str())
            );
            assert_eq!(body["requestId"], "req-1");
            assert!(body["title"].as_str().is_some_and(|t| !t.is_empty()));
            assert!(
                body.get("errors").is_none(),
                "no errors member unless there are some"
            );
        }
    }

    #[test]
    fn every_code_sent_by_config_maps_to_the_same_status() {
        for code in ALL {
            let detail = pb::ErrorDetail {
                code: code.as_str().into(),
                errors: vec![],
            };
            // The gRPC code is deliberately unrelated: the detail's code wins.
            let problem =
                Problem::from_status(&status_with(tonic::Code::Unknown, "msg", Some(detail)));
            assert_eq!(problem.code(), ProblemCode::Domain(code));
            assert_eq!(problem.status().as_u16(), expected_status(code));
        }
    }

    #[test]
    fn field_errors_from_config_are_kept() {
        let detail = pb::ErrorDetail {
            code: "validation_failed".into(),
            errors: vec![pb::FieldError {
                field: "/endpoints/0/port".into(),
                message: "must be between 1 and 65535".into(),
            }],
        };
        let problem = Problem::from_status(&status_with(
            tonic::Code::InvalidArgument,
            "the request is invalid",
            Some(detail),
        ));
        let doc = problem.document(Some("r"));
        assert_eq!(doc.status, 400);
        assert_eq!(doc.detail, "the request is invalid");
        assert_eq!(
            doc.errors,
            vec![FieldErrorDocument {
                field: "/endpoints/0/port".into(),
                message: "must be between 1 and 65535".into()
            }]
        );
    }

    #[test]
    fn without_details_the_grpc_code_decides() {
        let cases = [
            (tonic::Code::InvalidArgument, 400),
            (tonic::Code::NotFound, 404),
            (tonic::Code::AlreadyExists, 409),
            (tonic::Code::FailedPrecondition, 412),
            (tonic::Code::Aborted, 409),
            (tonic::Code::Unavailable, 503),
            (tonic::Code::DeadlineExceeded, 503),
            (tonic::Code::Internal, 500),
            (tonic::Code::Unimplemented, 500),
            // A bare Unauthenticated or PermissionDenied is config refusing our service
            // credential or a method, not the caller.
            (tonic::Code::Unauthenticated, 500),
            (tonic::Code::PermissionDenied, 500),
        ];
        for (code, status) in cases {
            let problem = Problem::from_status(&status_with(code, "m", None));
            assert_eq!(problem.status().as_u16(), status, "{code:?}");
        }
    }

    #[test]
    fn internal_causes_never_reach_the_caller() {
        let secret = "password authentication failed for user postgres";
        let problem = Problem::from_status(&status_with(tonic::Code::Internal, secret, None));
        let doc = serde_json::to_string(&problem.document(Some("r"))).unwrap_or_default();
        assert!(!doc.contains("postgres"), "{doc}");
        assert!(
            problem
                .internal_cause()
                .is_some_and(|c| c.contains("postgres"))
        );

        let transport = Problem::from_status(&status_with(
            tonic::Code::Unavailable,
            "tcp connect error: Connection refused",
            None,
        ));
        assert_eq!(transport.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(!transport.detail().contains("tcp"));
    }

    #[test]
    fn unknown_codes_from_config_fall_back_to_the_grpc_code() {
        let detail = pb::ErrorDetail {
            code: "some_future_code".into(),
            errors: vec![],
        };
        let problem =
            Problem::from_status(&status_with(tonic::Code::NotFound, "gone", Some(detail)));
        assert_eq!(problem.status(), StatusCode::NOT_FOUND);
        assert_eq!(problem.detail(), "gone");
    }

    #[tokio::test]
    async fn finalize_stamps_the_request_id_and_converts_bare_errors() {
        let response = finalize(Problem::not_found("nope").into_response(), "abc");
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(body_json(response).await["requestId"], "abc");

        let bare = (StatusCode::METHOD_NOT_ALLOWED, [(header::ALLOW, "GET")]).into_response();
        let response = finalize(bare, "def");
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(
            response
                .headers()
                .get(header::ALLOW)
                .and_then(|v| v.to_str().ok()),
            Some("GET")
        );
        let body = body_json(response).await;
        assert_eq!(body["code"], "method_not_allowed");
        assert_eq!(body["requestId"], "def");

        let too_large = finalize(
            (StatusCode::PAYLOAD_TOO_LARGE, "length limit exceeded").into_response(),
            "g",
        );
        assert_eq!(body_json(too_large).await["code"], "payload_too_large");

        let ok = finalize((StatusCode::OK, "fine").into_response(), "h");
        assert_eq!(ok.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn unauthenticated_problems_name_the_bearer_scheme() {
        let response = Problem::unauthenticated("no").into_response();
        assert!(response.headers().get(header::WWW_AUTHENTICATE).is_some());
    }
}
