//! Distributed tracing: with `FLOWPLANE_OTLP_ENDPOINT` pointing at an OTLP/gRPC receiver (a
//! small one here, standing in for a collector), one REST change makes one trace whose spans
//! come from the api-gateway (the HTTP request), config (the gRPC call and the outbox relay's
//! publish) and the xds-server (the replica applying and pushing the change), each joined to
//! its parent across the process boundary (gRPC metadata, the outbox row, the NATS header).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flowplane_e2e::{Dependencies, Stack, Tenant, eventually, free_port};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use reqwest::Method;

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
async fn one_rest_change_is_one_trace_across_gateway_config_and_the_replica() {
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
    let result = scenario(&stack, &receiver).await;
    if result.is_err() {
        eprintln!("{}", stack.logs());
    }
    stack.stop().await;
    server.abort();
    if let Err(e) = result {
        panic!("{e:#}");
    }
}

async fn scenario(stack: &Stack, receiver: &Receiver) -> anyhow::Result<()> {
    let tenant = Tenant::create(stack, "traced").await?;
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
    // Every span but the request's own has its parent in the same trace: nothing started a
    // trace of its own along the way.
    let ids: HashMap<&[u8], &Received> = trace.iter().map(|s| (s.id.as_slice(), s)).collect();
    for span in &trace {
        if span.name == "POST /api/v1/clusters" {
            continue;
        }
        anyhow::ensure!(
            ids.contains_key(span.parent.as_slice()),
            "{} ({}) has a parent outside the trace",
            span.name,
            span.service
        );
    }
    Ok(())
}
