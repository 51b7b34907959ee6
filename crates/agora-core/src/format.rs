//! What a delivery's body looks like for each webhook `format`.
//!
//! `json` sends the event envelope. `slack` and `discord` send a short message in the shape
//! their incoming webhooks accept, so a community can post to a channel without a relay.

use serde::{Deserialize, Serialize};

use crate::event::Event;

/// A webhook's body format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
    ///
    /// Chat bodies stay within what the services document for incoming webhooks: Slack's
    /// `text` escapes `&`, `<` and `>` (so content cannot mention `<!channel>`), and Discord's
    /// `content` is at most 2,000 characters and may mention nobody (`allowed_mentions`), so a
    /// post reading `@everyone` pings no one.
    pub fn body(self, envelope: &str, forum: &str) -> String {
        let text = match self {
            Self::Json => return envelope.to_owned(),
            _ => match serde_json::from_str::<Event>(envelope) {
                Ok(event) => summary(&event, forum),
                Err(_) => format!("[{}] event", clip(forum, FORUM_CHARS)),
            },
        };
        let body = match self {
            Self::Slack => serde_json::json!({ "text": slack_escape(&text) }),
            _ => serde_json::json!({
                "content": clip(&text, DISCORD_CONTENT_CHARS),
                "allowed_mentions": { "parse": [] },
            }),
        };
        body.to_string()
    }
}

/// Discord refuses a `content` longer than this many characters.
const DISCORD_CONTENT_CHARS: usize = 2000;
/// How much of the forum's name a line shows.
const FORUM_CHARS: usize = 100;
/// How much of a title, name or body a line shows.
const WHAT_CHARS: usize = 200;

/// One line a person reads in a chat channel: forum, event, the most telling field, and who
/// did it (or, when the event does not say who acted, whose content it is).
fn summary(event: &Event, forum: &str) -> String {
    let data = &event.data;
    let field = |k: &str| data.get(k).and_then(|v| v.as_str());
    let what = field("title")
        .or_else(|| field("name"))
        .or_else(|| field("body"))
        .or_else(|| field("username"))
        .map(|s| clip(s, WHAT_CHARS));
    let mut line = format!("[{}] {}", clip(forum, FORUM_CHARS), event.event_type);
    if let Some(what) = what {
        line.push_str(&format!(": {what}"));
    }
    match byline(event) {
        Some(Byline::Actor(who)) => line.push_str(&format!(" (by {})", clip(&who, WHAT_CHARS))),
        Some(Byline::Author(who)) => {
            line.push_str(&format!(" (author: {})", clip(&who, WHAT_CHARS)))
        }
        None => {}
    }
    line
}

/// Who a chat line names.
enum Byline {
    /// Who did what the event tells: a username, or the id of a user or API key.
    Actor(String),
    /// Whose content the event is about, when the event does not carry who acted on it.
    Author(String),
}

/// Who did it, read from the fields the forum's resources carry: the resource's `user` for
/// what users do themselves (a thread, a post, a reaction, joining), `follower` for a follow,
/// the `*_by` ids for edits, moderation and reports (the username when the id is the
/// author's), the `username` of a user event. Deletions, pins, locks and moves carry no actor,
/// so those lines name the content's author as such.
fn byline(event: &Event) -> Option<Byline> {
    let data = &event.data;
    let text = |v: Option<&serde_json::Value>| v.and_then(|v| v.as_str()).map(str::to_owned);
    let username = |person: &str| text(data.get(person).and_then(|p| p.get("username")));
    let author = username("user");
    // An id that is the author's reads better as the author's username.
    let person = |id: Option<String>| {
        let author_id = data.get("user").and_then(|u| u.get("id"));
        match (id, author_id) {
            (Some(id), Some(a)) if a.as_str() == Some(id.as_str()) => author.clone(),
            (id, _) => id,
        }
    };
    let action = event
        .event_type
        .as_str()
        .split_once('.')
        .map_or("", |(_, a)| a);
    let actor = match action {
        "updated" => person(text(data.get("edited_by"))).or_else(|| author.clone()),
        "flagged_spam" | "unflagged_spam" => text(data.get("moderated_by")),
        "resolved" => text(data.get("resolved_by")),
        "followed" | "unfollowed" => username("follower"),
        "deleted" | "pinned" | "unpinned" | "locked" | "unlocked" | "moved" => {
            return author.map(Byline::Author)
        }
        _ => text(data.get("reported_by"))
            .or_else(|| author.clone())
            .or_else(|| text(data.get("username"))),
    };
    actor
        .or_else(|| text(data.get("username")))
        .map(Byline::Actor)
}

/// The first `n` characters of `s`.
fn clip(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// Slack's escaping of the three characters its message text treats as control characters.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventType;

    #[test]
    fn chat_formats_carry_a_summary() {
        let e = Event::new(
            EventType::parse("thread.created").unwrap(),
            serde_json::json!({"title": "Hello <3 & more", "user": {"id": "usr_1", "username": "ann"}}),
        );
        let body = e.to_body();
        assert_eq!(Format::Json.body(&body, "f"), body);
        let slack: serde_json::Value =
            serde_json::from_str(&Format::Slack.body(&body, "Forum")).unwrap();
        assert_eq!(
            slack["text"],
            "[Forum] thread.created: Hello &lt;3 &amp; more (by ann)"
        );
        let discord: serde_json::Value =
            serde_json::from_str(&Format::Discord.body(&body, "Forum")).unwrap();
        assert_eq!(
            discord["content"],
            "[Forum] thread.created: Hello <3 & more (by ann)"
        );
        assert_eq!(discord["allowed_mentions"]["parse"], serde_json::json!([]));
    }

    fn slack_text(event_type: &str, data: serde_json::Value) -> String {
        let e = Event::new(EventType::parse(event_type).unwrap(), data);
        let body: serde_json::Value =
            serde_json::from_str(&Format::Slack.body(&e.to_body(), "F")).unwrap();
        body["text"].as_str().unwrap().to_owned()
    }

    #[test]
    fn the_line_names_who_acted_or_else_whose_content_it_is() {
        let user = serde_json::json!({"id": "usr_1", "username": "ann"});
        let edited = |by: &str| serde_json::json!({"title": "T", "user": user, "edited_by": by});
        assert_eq!(
            slack_text("thread.updated", edited("usr_1")),
            "[F] thread.updated: T (by ann)"
        );
        assert_eq!(
            slack_text("thread.updated", edited("key_9")),
            "[F] thread.updated: T (by key_9)"
        );
        assert_eq!(
            slack_text("thread.pinned", edited("usr_1")),
            "[F] thread.pinned: T (author: ann)"
        );
        assert_eq!(
            slack_text(
                "user.followed",
                serde_json::json!({"follower": {"username": "bob"}, "followed": user})
            ),
            "[F] user.followed (by bob)"
        );
        assert_eq!(
            slack_text(
                "report.resolved",
                serde_json::json!({"reason": "spam", "reported_by": "usr_2", "resolved_by": "usr_3"})
            ),
            "[F] report.resolved (by usr_3)"
        );
    }
}
