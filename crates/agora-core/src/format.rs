//! What a delivery's body looks like for each webhook `format`.
//!
//! `json` sends the event envelope. `slack` and `discord` send a short message in the shape
//! their incoming webhooks accept, so a community can post to a channel without a relay.

use serde::{Deserialize, Serialize};

use crate::event::Event;

/// A webhook's body format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// The event envelope, as the contract fixes it.
    #[default]
    Json,
    /// `{"text": …}` for Slack incoming webhooks.
    Slack,
    /// `{"content": …}` for Discord webhooks.
    Discord,
}

impl Format {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Slack => "slack",
            Self::Discord => "discord",
        }
    }

    /// Parses a stored or requested name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "json" => Some(Self::Json),
            "slack" => Some(Self::Slack),
            "discord" => Some(Self::Discord),
            _ => None,
        }
    }

    /// The body to send for an event, given the envelope already serialized once.
    pub fn body(self, envelope: &str, forum: &str) -> String {
        if self == Self::Json {
            return envelope.to_owned();
        }
        let text = match serde_json::from_str::<Event>(envelope) {
            Ok(event) => summary(&event, forum),
            Err(_) => format!("[{forum}] event"),
        };
        let key = if self == Self::Slack {
            "text"
        } else {
            "content"
        };
        serde_json::json!({ key: text }).to_string()
    }
}

/// One line a person reads in a chat channel: forum, event, and the most telling field.
fn summary(event: &Event, forum: &str) -> String {
    let data = &event.data;
    let field = |k: &str| data.get(k).and_then(|v| v.as_str());
    let who = data
        .get("author")
        .and_then(|a| a.get("username"))
        .and_then(|v| v.as_str())
        .or_else(|| field("username"));
    let what = field("title")
        .or_else(|| field("name"))
        .or_else(|| field("body"))
        .map(|s| s.chars().take(200).collect::<String>());
    let mut line = format!("[{forum}] {}", event.event_type);
    if let Some(what) = what {
        line.push_str(&format!(": {what}"));
    }
    if let Some(who) = who {
        line.push_str(&format!(" (by {who})"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventType;

    #[test]
    fn chat_formats_carry_a_summary() {
        let e = Event::new(
            EventType::parse("thread.created").unwrap(),
            serde_json::json!({"title": "Hello", "author": {"username": "ann"}}),
        );
        let body = e.to_body();
        assert_eq!(Format::Json.body(&body, "f"), body);
        let slack: serde_json::Value =
            serde_json::from_str(&Format::Slack.body(&body, "Forum")).unwrap();
        assert_eq!(slack["text"], "[Forum] thread.created: Hello (by ann)");
        let discord: serde_json::Value =
            serde_json::from_str(&Format::Discord.body(&body, "Forum")).unwrap();
        assert_eq!(discord["content"], slack["text"]);
    }
}
