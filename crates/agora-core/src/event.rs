//! Events: the names of what happens, and the envelope every receiver gets.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::EventId;

/// A validated event type name, `resource.action` (`thread.created`, `course.enrolled`).
///
/// Parsed once at the edge so that every later stage can trust it: lowercase ASCII letters,
/// digits and `_`, exactly one dot, at most 64 characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EventType(String);

/// Why a string is not an event type name.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("event type must look like `resource.action` (lowercase letters, digits and `_`, at most 64 characters), got {0:?}")]
pub struct InvalidEventType(pub String);

impl EventType {
    /// Parses a name of the form `resource.action`.
    pub fn parse(name: &str) -> Result<Self, InvalidEventType> {
        let valid_part = |p: &str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        };
        match name.split_once('.') {
            Some((resource, action))
                if name.len() <= 64 && valid_part(resource) && valid_part(action) =>
            {
                Ok(Self(name.to_owned()))
            }
            _ => Err(InvalidEventType(name.to_owned())),
        }
    }

    /// The resource part, before the dot (`thread` in `thread.created`).
    pub fn resource(&self) -> &str {
        self.0.split_once('.').map_or(&self.0, |(r, _)| r)
    }

    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EventType {
    type Error = InvalidEventType;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<EventType> for String {
    fn from(t: EventType) -> String {
        t.0
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One event as delivered: `{"id","type","timestamp","data"}`, field order as in the contract.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Event {
    /// `evt_…`, the same for every webhook the event fans out to.
    pub id: EventId,
    /// The event type name.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// When it happened, RFC 3339 UTC with milliseconds.
    pub timestamp: String,
    /// The resource exactly as the API returns it.
    pub data: serde_json::Value,
}

impl Event {
    /// A new event that happened now, with a fresh id.
    pub fn new(event_type: EventType, data: serde_json::Value) -> Self {
        Self::at(event_type, data, crate::time::now_ms())
    }

    /// A new event with a fresh id that happened at `at_ms` (unix milliseconds).
    pub fn at(event_type: EventType, data: serde_json::Value, at_ms: i64) -> Self {
        Self {
            id: EventId::generate(),
            event_type,
            timestamp: crate::time::to_rfc3339(at_ms),
            data,
        }
    }

    /// The body as sent: serialized once when the event is recorded, never per attempt.
    pub fn to_body(&self) -> String {
        serde_json::to_string(self).expect("an event always serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_resource_action_names() {
        assert_eq!(
            EventType::parse("thread.created").unwrap().resource(),
            "thread"
        );
        assert!(EventType::parse("course.enrolled_2").is_ok());
        for bad in [
            "thread",
            "Thread.created",
            "thread.",
            ".x",
            "a.b.c",
            "a b.c",
            "",
            "a.*",
        ] {
            assert!(EventType::parse(bad).is_err(), "{bad} should be refused");
        }
        assert!(EventType::parse(&format!("a.{}", "b".repeat(63))).is_err());
    }

    #[test]
    fn body_has_the_contract_field_order() {
        let e = Event::at(
            EventType::parse("thread.created").unwrap(),
            serde_json::json!({"x": 1}),
            0,
        );
        let body = e.to_body();
        assert!(body.starts_with(&format!(
            "{{\"id\":\"{}\",\"type\":\"thread.created\",\"timestamp\":\"1970-01-01T00:00:00.000Z\",\"data\":{{\"x\":1}}}}",
            e.id
        )));
    }
}
