//! Span export over OTLP (built with the `otlp` feature): the binary, pointed at a collector
//! by `OTEL_EXPORTER_OTLP_ENDPOINT`, sends it the spans of its requests and of its delivery
//! attempts, named, under the service `agora`.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{client_for, Receiver};
use crate::process::ServerProcess;

/// Whether `needle` occurs in `haystack` (the export is protobuf, whose strings are plain
/// bytes).
fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn requests_and_attempts_are_exported_as_spans_when_an_endpoint_is_set() {
    let collector = Receiver::start().await;
    let endpoint = format!("http://{}", collector.addr);
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(
        dir.path(),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    )
    .await;
    let app = client_for(server.addr);
    app.register_type("course.enrolled").await;
    let receiver = Receiver::start().await;
    app.create_webhook(json!({"url": receiver.url(), "events": ["course.*"]}))
        .await;
    app.publish("course.enrolled", json!({"n": 1})).await;
    receiver.wait_for(1, Duration::from_secs(10)).await;
    assert!(
        server.terminate().await,
        "exits cleanly, flushing its spans"
    );

    let exported: Vec<u8> = collector
        .received()
        .iter()
        .flat_map(|r| r.body.to_vec())
        .collect();
    assert!(!exported.is_empty(), "nothing was exported");
    for name in ["request", "attempt", "agora", "course.enrolled"] {
        assert!(contains(&exported, name), "no {name:?} in the export");
    }
}
