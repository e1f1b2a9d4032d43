//! A small REST client: JSON in, JSON out, problem documents turned into readable errors.

use reqwest::{Method, StatusCode};
use serde_json::Value;

pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    /// Set when `token` is a login session: sent as `x-csrf-token` on state-changing calls.
    csrf: Option<String>,
}

pub struct Response {
    pub status: StatusCode,
    pub body: Value,
    pub text: String,
}

impl Client {
    pub fn new(base: &str, token: Option<String>) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_string(),
            token,
            csrf: None,
        }
    }

    /// A client authenticated by a login session.
    pub fn with_session(&self, session_token: &str, csrf_token: &str) -> Self {
        Self {
            http: self.http.clone(),
            base: self.base.clone(),
            token: Some(session_token.to_string()),
            csrf: Some(csrf_token.to_string()),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn with_token(&self, token: &str) -> Self {
        Self {
            http: self.http.clone(),
            base: self.base.clone(),
            token: Some(token.to_string()),
            csrf: None,
        }
    }

    /// Sends a request and returns whatever came back, errors included.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Response> {
        let safe = matches!(method, Method::GET | Method::HEAD);
        let mut request = self
            .http
            .request(method, format!("{}/api/v1{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(csrf) = self.csrf.as_deref().filter(|_| !safe) {
            request = request.header("x-csrf-token", csrf);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("cannot reach Flowplane at {}: {e}", self.base))?;
        let status = response.status();
        let text = response.text().await?;
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Response { status, body, text })
    }

    /// Sends a text body as it is (an OpenAPI document, JSON or YAML).
    pub async fn send_text(
        &self,
        method: Method,
        path: &str,
        body: String,
    ) -> anyhow::Result<Response> {
        let mut request = self
            .http
            .request(method, format!("{}/api/v1{path}", self.base))
            .header("content-type", "application/yaml")
            .body(body);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("cannot reach Flowplane at {}: {e}", self.base))?;
        let status = response.status();
        let text = response.text().await?;
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Response { status, body, text })
    }

    /// Sends a request and fails unless it succeeded.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let response = self.send(method, path, body).await?;
        if response.status.is_success() {
            Ok(response.body)
        } else {
            Err(problem(&response))
        }
    }
}

/// A problem+json response as one readable error.
pub fn problem(response: &Response) -> anyhow::Error {
    let body = &response.body;
    let mut message = format!(
        "{} {}",
        response.status.as_u16(),
        body["detail"]
            .as_str()
            .or(body["title"].as_str())
            .unwrap_or(&response.text)
    );
    for error in body["errors"].as_array().into_iter().flatten() {
        message.push_str(&format!(
            "\n  {}: {}",
            error["field"].as_str().unwrap_or(""),
            error["message"].as_str().unwrap_or("")
        ));
    }
    if let Some(id) = body["requestId"].as_str() {
        message.push_str(&format!("\n  (request id {id})"));
    }
    anyhow::anyhow!(message)
}
