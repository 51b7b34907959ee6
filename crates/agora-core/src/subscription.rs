//! Which events a webhook wants.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::event::EventType;

/// One entry of a webhook's `events` list: an exact name, `resource.*`, or `*`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum EventPattern {
    /// `*`: every event, including custom and operational ones.
    All,
    /// `resource.*`: every action on one resource.
    Resource(String),
    /// One event type.
    Exact(EventType),
}

/// Why a string is not an event pattern.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0:?} is not an event name, `resource.*` or `*`")]
pub struct InvalidPattern(pub String);

impl EventPattern {
    /// Parses `*`, `resource.*` or `resource.action`.
    pub fn parse(s: &str) -> Result<Self, InvalidPattern> {
        if s == "*" {
            return Ok(Self::All);
        }
        if let Some(resource) = s.strip_suffix(".*") {
            return EventType::parse(&format!("{resource}.x"))
                .map(|_| Self::Resource(resource.to_owned()))
                .map_err(|_| InvalidPattern(s.to_owned()));
        }
        EventType::parse(s)
            .map(Self::Exact)
            .map_err(|_| InvalidPattern(s.to_owned()))
    }

    /// Whether an event of this type is wanted.
    pub fn matches(&self, event_type: &EventType) -> bool {
        match self {
            Self::All => true,
            Self::Resource(r) => event_type.resource() == r,
            Self::Exact(t) => t == event_type,
        }
    }

    /// The resource this pattern is about, or `None` for `*`.
    pub fn resource(&self) -> Option<&str> {
        match self {
            Self::All => None,
            Self::Resource(r) => Some(r),
            Self::Exact(t) => Some(t.resource()),
        }
    }
}

impl TryFrom<String> for EventPattern {
    type Error = InvalidPattern;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<EventPattern> for String {
    fn from(p: EventPattern) -> String {
        p.to_string()
    }
}

impl fmt::Display for EventPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::All => f.write_str("*"),
            Self::Resource(r) => write!(f, "{r}.*"),
            Self::Exact(t) => f.write_str(t.as_str()),
        }
    }
}

/// Whether any of a webhook's patterns matches the event type.
pub fn matches_any(patterns: &[EventPattern], event_type: &EventType) -> bool {
    patterns.iter().any(|p| p.matches(event_type))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> EventType {
        EventType::parse(s).unwrap()
    }

    #[test]
    fn exact_resource_and_all() {
        let exact = EventPattern::parse("thread.created").unwrap();
        let resource = EventPattern::parse("thread.*").unwrap();
        let all = EventPattern::parse("*").unwrap();
        assert!(exact.matches(&t("thread.created")));
        assert!(!exact.matches(&t("thread.updated")));
        assert!(resource.matches(&t("thread.updated")));
        assert!(!resource.matches(&t("threads.updated")));
        assert!(!resource.matches(&t("post.created")));
        assert!(all.matches(&t("course.enrolled")));
        for bad in ["thread.**", "*.created", "thread", "", "Thread.*", ".*"] {
            assert!(EventPattern::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(resource.to_string(), "thread.*");
    }
}
