//! External processing through a real Envoy: a small gRPC processor (Envoy's ext_proc
//! protocol) tags every request before it reaches the upstream and every response before it
//! reaches the client, and answers a request itself when asked to block it. A route that
//! switches the filter off bypasses the processor, and the processor's cluster reference is
//! checked on write.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::pin::Pin;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::{HeaderValue, HeaderValueOption};
use envoy_types::pb::envoy::service::ext_proc::v3::external_processor_server::{
    ExternalProcessor, ExternalProcessorServer,
};
use envoy_types::pb::envoy::service::ext_proc::v3::processing_request::Request as Message;
use envoy_types::pb::envoy::service::ext_proc::v3::processing_response::Response as Answer;
use envoy_types::pb::envoy::service::ext_proc::v3::{
    CommonResponse, HeaderMutation, HeadersResponse, HttpHeaders, ImmediateResponse,
    ProcessingRequest, ProcessingResponse,
};
use envoy_types::pb::envoy::r#type::v3::{HttpStatus, StatusCode};
use flowplane_e2e::{Envoy, Stack, Tenant, Upstream, eventually, free_port};
use futures::{Stream, StreamExt};
use reqwest::Method;
use serde_json::{Value, json};
use tonic::{Request, Response, Status, Streaming};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_processor_sees_and_changes_traffic_through_envoy() {
    flowplane_e2e::run_scenario("ext-proc", |stack| Box::pin(scenario(stack))).await;
}

async fn scenario(stack: &Stack) -> anyhow::Result<()> {
    let tenant = Tenant::create(stack, "processing").await?;
    let api = &tenant.api;
    let (dataplane, bootstrap) = tenant.dataplane("gw").await?;
    let envoy = Envoy::start(&stack.dir, &bootstrap.to_string(), stack.envoy_admin_port).await?;
    let upstream = Upstream::start("app").await?;
    let processor_port = start_processor().await?;
    api.expect(
        Method::POST,
        "/api/v1/clusters",
        Some(&tenant.cluster("app", upstream.port)),
        201,
    )
    .await?;
    let mut processor = tenant.cluster("processor", processor_port);
    processor["protocolType"] = json!("HTTP2");
    api.expect(Method::POST, "/api/v1/clusters", Some(&processor), 201)
        .await?;
    let routes = tenant.route_config_bypassing(
        "proc-routes",
        "app",
        "/static",
        "envoy.filters.http.ext_proc",
    );
    api.expect(Method::POST, "/api/v1/route-configs", Some(&routes), 201)
        .await?;
    let port = free_port();
    let listener = |cluster: &str| {
        let mut body = tenant.listener("proc", port, &dataplane, "proc-routes");
        body["filterChains"][0]["filters"][0]["httpFilters"] = json!([
            {"filter": {"type": "extProc", "cluster": cluster, "timeoutMs": 2000}},
            {"filter": {"type": "router"}}]);
        body
    };
    let dangling = api.post("/api/v1/listeners", &listener("missing")).await?;
    anyhow::ensure!(
        dangling.status.as_u16() == 400
            && dangling.body["errors"][0]["field"]
                == "/filterChains/0/filters/0/httpFilters/0/filter/cluster",
        "a missing processor cluster: {dangling:?}"
    );
    // gRPC needs HTTP/2: a cluster speaking HTTP/1.1 is refused where it is named.
    let http1 = api.post("/api/v1/listeners", &listener("app")).await?;
    anyhow::ensure!(
        http1.status.as_u16() == 400
            && http1.body["errors"][0]["field"]
                == "/filterChains/0/filters/0/httpFilters/0/filter/cluster"
            && http1.body["errors"][0]["message"]
                .as_str()
                .is_some_and(|m| m.contains("HTTP2")),
        "an HTTP/1.1 processor cluster: {http1:?}"
    );
    api.expect(
        Method::POST,
        "/api/v1/listeners",
        Some(&listener("processor")),
        201,
    )
    .await?;

    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let (response, _) = eventually(
        "requests to pass the processor",
        Duration::from_secs(20),
        || async {
            let r = client
                .get(format!("{base}/orders"))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if r.status() != 200 {
                return Err(format!("status {}", r.status()));
            }
            let tag = flowplane_e2e::header(&r, "x-processed-response");
            let body: Value = r.json().await.map_err(|e| e.to_string())?;
            Ok((tag, body))
        },
    )
    .await?;
    let (response_tag, seen) = response;
    anyhow::ensure!(
        seen["headers"]["x-processed"] == "request /orders",
        "the upstream sees the processor's request header: {seen}"
    );
    anyhow::ensure!(
        response_tag == "yes",
        "the client sees the processor's response header"
    );
    // The processor answers a request itself: it never reaches the upstream.
    let blocked = client
        .get(format!("{base}/orders"))
        .header("x-block", "yes")
        .send()
        .await?;
    let status = blocked.status();
    let text = blocked.text().await?;
    anyhow::ensure!(
        status == 403 && text == "blocked by the processor",
        "immediate response: {status} {text}"
    );
    // A route with the filter off: no processing either way.
    let bypass = client.get(format!("{base}/static/app.js")).send().await?;
    let tag = flowplane_e2e::header(&bypass, "x-processed-response");
    let body: Value = bypass.json().await?;
    anyhow::ensure!(
        tag.is_empty() && body["headers"].get("x-processed").is_none(),
        "the disabled route was processed: {tag} {body}"
    );
    envoy.stop().await;
    Ok(())
}

/// A processor that tags requests and responses and blocks requests carrying `x-block: yes`.
struct Processor;

type Answers = Pin<Box<dyn Stream<Item = Result<ProcessingResponse, Status>> + Send>>;

#[tonic::async_trait]
impl ExternalProcessor for Processor {
    type ProcessStream = Answers;

    async fn process(
        &self,
        request: Request<Streaming<ProcessingRequest>>,
    ) -> Result<Response<Answers>, Status> {
        let answers = request.into_inner().map(|message| {
            message.map(|m| ProcessingResponse {
                response: m.request.and_then(answer),
                ..Default::default()
            })
        });
        Ok(Response::new(Box::pin(answers)))
    }
}

fn answer(message: Message) -> Option<Answer> {
    match message {
        Message::RequestHeaders(headers) => {
            if value_of(&headers, "x-block").as_deref() == Some("yes") {
                return Some(Answer::ImmediateResponse(ImmediateResponse {
                    status: Some(HttpStatus {
                        code: StatusCode::Forbidden as i32,
                    }),
                    body: b"blocked by the processor".to_vec(),
                    ..Default::default()
                }));
            }
            let path = value_of(&headers, ":path").unwrap_or_default();
            Some(Answer::RequestHeaders(set_header(
                "x-processed",
                &format!("request {path}"),
            )))
        }
        Message::ResponseHeaders(_) => Some(Answer::ResponseHeaders(set_header(
            "x-processed-response",
            "yes",
        ))),
        _ => None,
    }
}

fn value_of(headers: &HttpHeaders, name: &str) -> Option<String> {
    headers
        .headers
        .as_ref()?
        .headers
        .iter()
        .find(|h| h.key == name)
        .map(|h| String::from_utf8_lossy(&h.raw_value).into_owned())
}

fn set_header(name: &str, value: &str) -> HeadersResponse {
    HeadersResponse {
        response: Some(CommonResponse {
            header_mutation: Some(HeaderMutation {
                set_headers: vec![HeaderValueOption {
                    header: Some(HeaderValue {
                        key: name.to_string(),
                        raw_value: value.as_bytes().to_vec(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

async fn start_processor() -> anyhow::Result<u16> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(ExternalProcessorServer::new(Processor))
            .serve_with_incoming(tokio_stream_of(listener)),
    );
    Ok(port)
}

fn tokio_stream_of(
    listener: tokio::net::TcpListener,
) -> impl Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(stream, _)| stream);
        Some((accepted, listener))
    })
}
