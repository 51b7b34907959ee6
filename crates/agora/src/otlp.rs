//! Span export over OTLP/HTTP (feature `otlp`): with `OTEL_EXPORTER_OTLP_ENDPOINT` set, every
//! request's span and every delivery attempt's span go to that collector, batched on a thread
//! of the exporter's own. Unset, or built without the feature, no layer is added and spans
//! cost what they cost without it.
//!
//! The exporter reads the standard `OTEL_*` variables itself (endpoint, headers, timeout,
//! `OTEL_BSP_SCHEDULE_DELAY`); the service is named `agora` unless `OTEL_SERVICE_NAME` says
//! otherwise.

use tracing_subscriber::Layer;

/// The target of the delivery attempt spans: at `debug`, so that they are never made unless
/// this export asks for them (the log's filter leaves them out).
pub const ATTEMPT_TARGET: &str = "agora::attempt";

#[cfg(feature = "otlp")]
static PROVIDER: std::sync::OnceLock<opentelemetry_sdk::trace::SdkTracerProvider> =
    std::sync::OnceLock::new();

/// The export layer, when `OTEL_EXPORTER_OTLP_ENDPOINT` is set and this build has the
/// feature.
pub fn layer<S>() -> Option<Box<dyn Layer<S> + Send + Sync>>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a> + Send + Sync,
{
    let endpoint = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok()?;
    if endpoint.is_empty() {
        return None;
    }
    exporting(&endpoint)
}

#[cfg(feature = "otlp")]
fn exporting<S>(endpoint: &str) -> Option<Box<dyn Layer<S> + Send + Sync>>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a> + Send + Sync,
{
    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::filter::Targets;
    let exporter = match opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
    {
        Ok(exporter) => exporter,
        Err(e) => {
            eprintln!("OTLP export to {endpoint} is off: {e}");
            return None;
        }
    };
    let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "agora".to_owned());
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(service)
                .build(),
        )
        .build();
    let tracer = provider.tracer("agora");
    let _ = PROVIDER.set(provider);
    let spans = Targets::new()
        .with_default(tracing::Level::INFO)
        .with_target(ATTEMPT_TARGET, tracing::Level::DEBUG);
    Some(
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_filter(spans)
            .boxed(),
    )
}

#[cfg(not(feature = "otlp"))]
fn exporting<S>(endpoint: &str) -> Option<Box<dyn Layer<S> + Send + Sync>>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a> + Send + Sync,
{
    eprintln!(
        "OTEL_EXPORTER_OTLP_ENDPOINT={endpoint} is ignored: this build has no `otlp` feature"
    );
    None
}

/// Sends the spans still batched and stops the exporter (at exit).
pub fn shutdown() {
    #[cfg(feature = "otlp")]
    if let Some(provider) = PROVIDER.get() {
        if let Err(e) = provider.shutdown() {
            eprintln!("OTLP export did not finish: {e}");
        }
    }
}
