//! Who is calling and from where: the extractors handlers take to build the `RequestContext`
//! that every call to config carries.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::Method;
use axum::http::request::Parts;
use flowplane_domain::ErrorCode;
use flowplane_proto::common::v1::{RequestContext, SignedPrincipal};

use crate::client_address::ClientAddress;
use crate::problem::Problem;
use crate::request_id::RequestId;
use crate::state::AppState;

/// The request id and peer address of any request, authenticated or not.
#[derive(Debug, Clone)]
pub struct RequestMeta {
    pub request_id: String,
    /// The client (the TCP peer, or what a trusted proxy says); empty when the router is driven
    /// without a socket (tests).
    pub client_address: String,
}

impl RequestMeta {
    fn of(parts: &Parts) -> Self {
        let request_id = parts
            .extensions
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(RequestId::generate);
        // Resolved by `client_address::middleware` (a trusted proxy's X-Forwarded-For), else
        // the TCP peer.
        let client_address = match parts.extensions.get::<ClientAddress>() {
            Some(ClientAddress(address)) => address.to_string(),
            None => parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip().to_string())
                .unwrap_or_default(),
        };
        Self {
            request_id: request_id.as_str().to_string(),
            client_address,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestMeta {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::of(parts))
    }
}

/// The raw bearer credential, for the one endpoint that takes something other than a token
/// (the setup token on initialize).
pub struct Bearer(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Bearer {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        crate::auth::bearer(&parts.headers).map(|c| Self(c.to_string()))
    }
}

/// The header a session-authenticated request must carry on every state-changing method.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// An authenticated caller. Taking this extractor is what makes a handler require a credential
/// (a bearer token or session, or the session cookie); authorization is config's decision,
/// made from the principal carried here. A session must also prove, on every state-changing
/// method, that the request was made by its own client: `x-csrf-token` must match the CSRF
/// token returned at login (403 otherwise). A cookie is sent by the browser on any site's
/// behalf, the header only by script on our own origin. Tokens need no such proof: nothing
/// attaches them to a request without the caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The principal as config signed it, which is all config acts on.
    pub signed_principal: SignedPrincipal,
    pub meta: RequestMeta,
}

impl Caller {
    pub fn context(&self) -> RequestContext {
        RequestContext {
            signed_principal: Some(self.signed_principal.clone()),
            request_id: self.meta.request_id.clone(),
            client_address: self.meta.client_address.clone(),
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let meta = RequestMeta::of(parts);
        let credential = crate::auth::credential(&parts.headers)?;
        let authenticated = state
            .auth
            .authenticate(credential, &meta.request_id, &meta.client_address)
            .await?;
        let state_changing = !matches!(
            parts.method,
            Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
        );
        if state_changing {
            let presented = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
            if !authenticated.csrf_matches(presented) {
                return Err(Problem::new(
                    ErrorCode::Forbidden,
                    "a session needs the `x-csrf-token` header from login on every state-changing request",
                ));
            }
        }
        tracing::Span::current().record("user_id", authenticated.principal.user_id.as_str());
        Ok(Self {
            signed_principal: authenticated.signed_principal,
            meta,
        })
    }
}
