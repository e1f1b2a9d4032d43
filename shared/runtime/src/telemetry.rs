//! Tracing setup: human-readable logs by default, JSON with `FLOWPLANE_LOG_FORMAT=json`,
//! levels from `FLOWPLANE_LOG` (or `RUST_LOG`); and, when `FLOWPLANE_OTLP_ENDPOINT` (or the
//! standard `OTEL_EXPORTER_OTLP_ENDPOINT`) is set, spans exported over OTLP/gRPC.
//!
//! One trace follows a change across services: W3C `traceparent` travels in gRPC metadata
//! ([`inject`], [`extract`]), the outbox row and NATS headers ([`current_traceparent`],
//! [`set_parent`]). With no endpoint set, nothing is exported and `traceparent` stays empty.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::OnceLock;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// The W3C trace-context header, in gRPC metadata, NATS headers and the outbox.
pub const TRACEPARENT: &str = "traceparent";

static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Installs the global subscriber. Safe to call more than once (later calls are no-ops), so
/// `flowplane up` can start every service in one process. Call it inside the Tokio runtime:
/// the OTLP exporter's channel lives there.
pub fn init(service: &str) {
    let filter = crate::env::optional("FLOWPLANE_LOG")
        .or_else(|| crate::env::optional("RUST_LOG"))
        .unwrap_or_else(|| "info,sqlx=warn,h2=warn,tower=warn,hyper=warn,async_nats=warn".into());
    // Colours only on a terminal: a log file or collector gets plain `key=value` text that
    // `grep setup_token=` and log pipelines can read.
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stdout().is_terminal())
        .with_target(false);
    let logs: Box<dyn Layer<Registry> + Send + Sync> =
        if crate::env::string("FLOWPLANE_LOG_FORMAT", "text") == "json" {
            fmt.json().with_filter(EnvFilter::new(filter)).boxed()
        } else {
            fmt.with_filter(EnvFilter::new(filter)).boxed()
        };
    let endpoint = crate::env::optional("FLOWPLANE_OTLP_ENDPOINT")
        .or_else(|| crate::env::optional("OTEL_EXPORTER_OTLP_ENDPOINT"));
    let (spans, exporter_error) = match endpoint.as_deref().map(|e| exporter(service, e)) {
        Some(Ok(provider)) => {
            let tracer = provider.tracer("flowplane");
            let _ = PROVIDER.set(provider);
            // Spans of Flowplane's own code and the request spans, not every dependency's.
            let layer = tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(EnvFilter::new(
                    "info,h2=off,hyper=off,tower=off,sqlx=off,async_nats=off",
                ))
                .boxed();
            (Some(layer), None)
        }
        Some(Err(e)) => (None, Some(e)),
        None => (None, None),
    };
    let installed = tracing_subscriber::registry()
        .with(logs)
        .with(spans)
        .try_init()
        .is_ok();
    if installed {
        match (&endpoint, exporter_error) {
            (_, Some(e)) => tracing::warn!(error = %e, "spans are not exported"),
            (Some(endpoint), None) => {
                tracing::info!(service, endpoint = %endpoint, "exporting spans over OTLP")
            }
            (None, None) => tracing::debug!(service, "tracing initialized"),
        }
    }
}

fn exporter(service: &str, endpoint: &str) -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()?;
    let name = crate::env::string("OTEL_SERVICE_NAME", &format!("flowplane-{service}"));
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(name)
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// Exports the spans still buffered (at the end of `main`).
pub fn shutdown() {
    if let Some(provider) = PROVIDER.get() {
        let _ = provider.shutdown();
    }
}

/// The `traceparent` of the current span, empty when spans are not exported.
pub fn current_traceparent() -> String {
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&tracing::Span::current().context(), &mut carrier);
    carrier.remove(TRACEPARENT).unwrap_or_default()
}

/// Makes `span` part of the trace `traceparent` names; an empty or malformed one leaves it
/// where it is.
pub fn set_parent(span: &tracing::Span, traceparent: &str) {
    if traceparent.is_empty() {
        return;
    }
    let carrier = HashMap::from([(TRACEPARENT.to_string(), traceparent.to_string())]);
    let _ = span.set_parent(TraceContextPropagator::new().extract(&carrier));
}

/// Puts the current span's `traceparent` into outgoing gRPC metadata.
pub fn inject(metadata: &mut tonic::metadata::MetadataMap) {
    let traceparent = current_traceparent();
    if !traceparent.is_empty()
        && let Ok(value) = traceparent.parse()
    {
        metadata.insert(TRACEPARENT, value);
    }
}

/// The span of one incoming gRPC call, continuing the caller's trace when its metadata carries
/// a `traceparent` (another service's, or Envoy's when the listener traces). Servers take it
/// as `Server::builder().trace_fn(telemetry::grpc_span)`; `caller` is recorded by those that
/// know who calls.
pub fn grpc_span<B>(request: &tonic::codegen::http::Request<B>) -> tracing::Span {
    let span = tracing::info_span!(
        "grpc",
        otel.name = %request.uri().path().trim_start_matches('/'),
        otel.kind = "server",
        caller = tracing::field::Empty,
    );
    set_parent(&span, &extract(request.headers()));
    span
}

/// The `traceparent` of incoming gRPC (or HTTP) headers, empty when absent.
pub fn extract(headers: &tonic::codegen::http::HeaderMap) -> String {
    headers
        .get(TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn without_an_exporter_no_trace_context_is_sent() {
        let mut metadata = tonic::metadata::MetadataMap::new();
        inject(&mut metadata);
        assert!(metadata.get(TRACEPARENT).is_none());
        assert_eq!(current_traceparent(), "");
    }
}
