//! The bytes of Server-Sent Events messages, rendered once per event by the hub and shared by
//! every stream that sends it: a thousand streams of one event cost one rendering and a
//! thousand reference counts, not a thousand copies.

use axum::body::Bytes;

/// The comment a quiet stream sends now and then, so proxies and clients see it alive.
pub const KEEP_ALIVE: Bytes = Bytes::from_static(b":\n\n");

/// One event as an SSE message: `id:` its id, `event:` its type and `data:` its envelope
/// (one `data:` line per line of it, as the format requires; a JSON envelope has one).
pub fn message(id: &str, event_type: &str, data: &str) -> Bytes {
    let mut frame = String::with_capacity(id.len() + event_type.len() + data.len() + 24);
    frame.push_str("id: ");
    frame.push_str(id);
    frame.push_str("\nevent: ");
    frame.push_str(event_type);
    frame.push('\n');
    for line in data.split('\n') {
        frame.push_str("data: ");
        frame.push_str(line.strip_suffix('\r').unwrap_or(line));
        frame.push('\n');
    }
    frame.push('\n');
    Bytes::from(frame)
}

/// The last message of a stream the server closes: `event: error` with `{code, message}`.
pub fn error(code: &str, message: &str) -> Bytes {
    let data = serde_json::json!({ "code": code, "message": message }).to_string();
    Bytes::from(format!("event: error\ndata: {data}\n\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_carries_id_type_and_each_line_of_data() {
        assert_eq!(
            message("evt_1", "thread.created", "{\"a\":1}"),
            "id: evt_1\nevent: thread.created\ndata: {\"a\":1}\n\n"
        );
        assert_eq!(
            message("evt_2", "x.y", "a\r\nb"),
            "id: evt_2\nevent: x.y\ndata: a\ndata: b\n\n"
        );
    }

    #[test]
    fn an_error_is_a_json_message_of_type_error() {
        assert_eq!(
            error("too_slow", "behind"),
            "event: error\ndata: {\"code\":\"too_slow\",\"message\":\"behind\"}\n\n"
        );
    }
}
