//! Distributed tracing: with `FLOWPLANE_OTLP_ENDPOINT` pointing at an OTLP/gRPC receiver (a
//! small one here, standing in for a collector), one REST change makes one trace whose spans
//! come from the api-gateway (the HTTP request), config (the gRPC call and the outbox relay's
//! publish) and the xds-server (the replica applying and pushing the change), each joined to
//! its parent across the process boundary (gRPC metadata, the outbox row, the NATS header).
//!
//! And a request through a real Envoy whose listener traces to the same receiver: Envoy's
//! span of the request, the rate-limit and learning calls it makes, and the ratelimit and
//! learning services' spans of those calls are one trace.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flowplane_e2e::{Dependencies, Envoy, Stack, Tenant, Upstream, eventually, free_port};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use reqwest::Method;
use serde_json::json;

/// One exported span: which service sent it, its name, and where it sits in its trace.
#[derive(Debug, Clone)]
struct Received {
    service: String,
    name: String,
    trace: Vec<u8>,
    id: Vec<u8>,
    parent: Vec<u8>,
}

#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<Received>>>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for resource in request.into_inner().resource_spans {
            let service = resource
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .and_then(|a| a.value.as_ref())
                .map(|v| format!("{:?}", v.value))
                .unwrap_or_default();
            for scope in resource.scope_spans {
                for span in scope.spans {
                    spans.push(Received {
                        service: service.clone(),
                        name: span.name,
                        trace: span.trace_id,
                        id: span.span_id,
                        parent: span.parent_span_id,
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_and_a_request_are_each_one_trace_across_the_services() {
    let receiver = Receiver::default();
    let port = free_port();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(receiver.clone()))
            .serve(([127, 0, 0, 1], port).into()),
    );
    let dependencies = Dependencies {
        env: vec![
            (
                "FLOWPLANE_OTLP_ENDPOINT".into(),
                format!("http://127.0.0.1:{port}"),
            ),
            // Export every 100 ms rather than every 5 s.
            ("OTEL_BSP_SCHEDULE_DELAY".into(), "100".into()),
        ],
        ..Dependencies::default()
    };
    let stack = Stack::start_with("tracing", dependencies)
        .await
        .unwrap_or_else(|e| panic!("stack: {e:#}"));
    let result = async {
        let tenant = Tenant::create(&stack, "traced").await?;
        change(&tenant, &receiver).await?;
        request(&stack, &tenant, &receiver, port).await
    }
    .await;
    if result.is_err() {
        eprintln!("{}", stack.logs());
    }
    stack.stop().await;
    server.abort();
    if let Err(e) = result {
        panic!("{e:#}");
    }
}

/// One REST change: gateway → config → outbox → NATS → the replica.
async fn change(tenant: &Tenant, receiver: &Receiver) -> anyhow::Result<()> {
    tenant
        .api
        .expect(
            Method::POST,
            "/api/v1/clusters",
            Some(&tenant.cluster("traced-cluster", 9)),
            201,
        )
        .await?;
    let (trace, _) = eventually(
        "one trace from the REST call to the replica's apply",
        Duration::from_secs(20),
        || async {
            let spans = receiver.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let Some(request) = spans.iter().find(|s| {
                s.service.contains("flowplane-api-gateway") && s.name == "POST /api/v1/clusters"
            }) else {
                return Err(format!(
                    "no span of the request among {} spans",
                    spans.len()
                ));
            };
            let trace: Vec<&Received> = spans.iter().filter(|s| s.trace == request.trace).collect();
            let has = |service: &str, name: &str| {
                trace
                    .iter()
                    .any(|s| s.service.contains(service) && s.name.contains(name))
            };
            if has("flowplane-config", "ResourceService/")
                && has("flowplane-config", "relay.publish")
                && has("flowplane-xds-server", "xds.apply")
            {
                Ok(trace.into_iter().cloned().collect::<Vec<_>>())
            } else {
                let names: Vec<String> = trace
                    .iter()
                    .map(|s| format!("{}: {}", s.service, s.name))
                    .collect();
                Err(format!("the request's trace holds only {names:?}"))
            }
        },
    )
    .await?;
    connected(&trace)
}

/// Every span but the trace's root has its parent in the same trace: nothing started a trace
/// of its own along the way.
fn connected(trace: &[Received]) -> anyhow::Result<()> {
    let ids: HashMap<&[u8], &Received> = trace.iter().map(|s| (s.id.as_slice(), s)).collect();
    let roots: Vec<&Received> = trace
        .iter()
        .filter(|s| !ids.contains_key(s.parent.as_slice()))
        .collect();
    anyhow::ensure!(
        roots.len() == 1 && roots[0].parent.is_empty(),
        "one root span, without a parent: {roots:?}"
    );
    Ok(())
}

/// One request through Envoy, whose listener traces to the receiver (a cluster speaking gRPC)
/// and calls the ratelimit service and, with a learning session active, the learning service.
async fn request(
    stack: &Stack,
    tenant: &Tenant,
    receiver: &Receiver,
    collector: u16,
) -> anyhow::Result<()> {
    let api = &tenant.api;
    let upstream = Upstream::start("app").await?;
    let mut otlp = tenant.cluster("collector", collector);
    otlp["protocolType"] = json!("HTTP2");
    for body in [tenant.cluster("app", upstream.port), otlp] {
        api.expect(Method::POST, "/api/v1/clusters", Some(&body), 201)
            .await?;
    }
    api.expect(
        Method::POST,
        "/api/v1/route-configs",
        Some(&tenant.route_config("app-routes", "app")),
        201,
    )
    .await?;
    let (dataplane, bootstrap) = tenant.dataplane("gw").await?;
    let port = free_port();
    let mut listener = tenant.listener("edge", port, &dataplane, "app-routes");
    let manager = &mut listener["filterChains"][0]["filters"][0];
    manager["tracing"] = json!({"cluster": "collector", "serviceName": "edge-envoy"});
    manager["httpFilters"] = json!([
        {"filter": {"type": "globalRateLimit", "limits": [{"name": "per-client",
            "requestsPerUnit": 1000, "unit": "day",
            "per": [{"type": "requestHeader", "header": "x-client"}]}]}},
        {"filter": {"type": "router"}}]);
    api.expect(Method::POST, "/api/v1/listeners", Some(&listener), 201)
        .await?;
    api.expect(
        Method::POST,
        "/api/v1/learning-sessions",
        Some(&json!({"team": tenant.team, "name": "edge-api", "listener": "edge"})),
        201,
    )
    .await?;
    api.expect(
        Method::POST,
        "/api/v1/learning-sessions/edge-api/activate",
        None,
        200,
    )
    .await?;
    let envoy = Envoy::start(&stack.dir, &bootstrap.to_string(), stack.envoy_admin_port).await?;
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/orders/1");
    let result = eventually(
        "one trace from Envoy through ratelimit and learning",
        Duration::from_secs(30),
        || {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let r = http
                    .get(&url)
                    .header("x-client", "alice")
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                if r.status() != 200 {
                    return Err(format!("status {}", r.status()));
                }
                let spans = receiver.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let in_trace = |root: &Received| -> Vec<Received> {
                    spans
                        .iter()
                        .filter(|s| s.trace == root.trace)
                        .cloned()
                        .collect()
                };
                let has = |trace: &[Received], service: &str, name: &str| {
                    trace
                        .iter()
                        .any(|s| s.service.contains(service) && s.name.contains(name))
                };
                let traces: Vec<Vec<Received>> = spans
                    .iter()
                    .filter(|s| s.service.contains("edge-envoy") && s.parent.is_empty())
                    .map(in_trace)
                    .collect();
                traces
                    .iter()
                    .find(|t| {
                        has(t, "flowplane-ratelimit", "RateLimitService/ShouldRateLimit")
                            && has(t, "flowplane-ratelimit", "ratelimit.count")
                            && has(t, "flowplane-learning", "ExternalProcessor/Process")
                    })
                    .cloned()
                    .ok_or_else(|| {
                        let names: Vec<Vec<String>> = traces
                            .iter()
                            .map(|t| {
                                t.iter()
                                    .map(|s| format!("{}: {}", s.service, s.name))
                                    .collect()
                            })
                            .collect();
                        format!("Envoy's traces so far: {names:?}")
                    })
            }
        },
    )
    .await;
    let outcome = match result {
        Ok((trace, _)) => connected(&trace),
        Err(e) => Err(e.context(envoy.log_tail())),
    };
    envoy.stop().await;
    outcome
}
