//! Slack and Discord bodies of every built-in event, checked against the incoming-webhook
//! schemas the two services document (tests/fixtures, each citing its sources), and the
//! person each line names.

use agora_core::event::{Event, EventType};
use agora_core::format::Format;
use agora_forum::catalog::{DataKind, BUILTIN};
use serde_json::{json, Value};

fn validator(fixture: &str) -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(fixture).expect("fixture is JSON");
    jsonschema::validator_for(&schema).expect("fixture is a valid JSON Schema")
}

fn bodies(event: &Event, forum: &str) -> (Value, Value) {
    let envelope = event.to_body();
    let parse = |f: Format| serde_json::from_str(&f.body(&envelope, forum)).expect("JSON body");
    (parse(Format::Slack), parse(Format::Discord))
}

fn assert_valid(validator: &jsonschema::Validator, body: &Value, what: &str) {
    let errors: Vec<String> = validator
        .iter_errors(body)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(errors.is_empty(), "{what}: {body}: {errors:?}");
    // Discord's limit on all embeds' text together, which a JSON Schema cannot express.
    let embed_chars: usize = body["embeds"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|e| ["title", "description"].map(|k| e[k].as_str().unwrap_or("").chars().count()))
        .sum();
    assert!(
        embed_chars <= 6000,
        "{what}: embeds hold {embed_chars} characters"
    );
}

/// Who the line for an example of `kind` names, given the catalog's examples
/// (agora-forum/src/examples.rs: alice writes, bob follows and reacts, moderators act by id).
fn expected_byline(name: &str, kind: DataKind, data: &Value) -> Option<String> {
    let action = name.split_once('.').unwrap().1;
    let user = |v: &Value| v["user"]["username"].as_str().map(str::to_owned);
    match kind {
        DataKind::Thread | DataKind::Post
            if matches!(
                action,
                "deleted" | "pinned" | "unpinned" | "locked" | "unlocked" | "moved"
            ) =>
        {
            Some(format!("(author: {})", user(data)?))
        }
        DataKind::Thread | DataKind::Post | DataKind::Reaction | DataKind::Membership => {
            Some(format!("(by {})", user(data)?))
        }
        DataKind::SpamFlag => Some(format!("(by {})", data["moderated_by"].as_str()?)),
        DataKind::Report if action == "resolved" => {
            data["resolved_by"].as_str().map(|id| format!("(by {id})"))
        }
        DataKind::Report => Some(format!("(by {})", data["reported_by"].as_str()?)),
        // A deleted account's line names it as its subject; who deleted it is not in the data.
        DataKind::User if action == "deleted" => None,
        DataKind::User => Some(format!("(by {})", data["username"].as_str()?)),
        DataKind::Follow => Some(format!("(by {})", data["follower"]["username"].as_str()?)),
        // Administrative events carry the webhook or key, not who changed it (the audit log
        // has that).
        DataKind::Category
        | DataKind::Group
        | DataKind::Tag
        | DataKind::Operational
        | DataKind::Webhook
        | DataKind::ApiKey => None,
    }
}

#[test]
fn every_builtin_events_chat_bodies_fit_the_services_schemas_and_name_the_actor() {
    let slack = validator(include_str!("fixtures/slack-incoming-webhook.schema.json"));
    let discord = validator(include_str!("fixtures/discord-webhook.schema.json"));
    let mut named = 0;
    for t in BUILTIN {
        let data = t.data.example();
        let event = Event::new(EventType::parse(t.name).unwrap(), data.clone());
        let (s, d) = bodies(&event, "Agora Forum");
        assert_valid(&slack, &s, &format!("slack {}", t.name));
        assert_valid(&discord, &d, &format!("discord {}", t.name));
        let text = s["text"].as_str().unwrap();
        assert!(
            text.starts_with(&format!("[Agora Forum] {}", t.name)),
            "{text}"
        );
        match expected_byline(t.name, t.data, &data) {
            Some(byline) => {
                named += 1;
                assert!(
                    text.ends_with(&byline),
                    "{}: {text:?} should end {byline:?}",
                    t.name
                );
                assert!(d["content"].as_str().unwrap().ends_with(&byline));
            }
            None => assert!(
                !text.contains("(by ") && !text.contains("(author: "),
                "{text}"
            ),
        }
    }
    assert!(named >= 20, "most built-in events name someone ({named})");
}

#[test]
fn long_or_hostile_content_stays_within_the_limits_and_mentions_nobody() {
    let slack = validator(include_str!("fixtures/slack-incoming-webhook.schema.json"));
    let discord = validator(include_str!("fixtures/discord-webhook.schema.json"));
    let long = "@everyone <!channel> & ".repeat(400);
    let mut data = DataKind::Post.example();
    data["body"] = json!(long);
    data["user"]["username"] = json!("x".repeat(3000));
    let event = Event::new(EventType::parse("post.created").unwrap(), data);
    let (s, d) = bodies(&event, &"Forum ".repeat(1000));
    assert_valid(&slack, &s, "slack");
    assert_valid(&discord, &d, "discord");
    assert_eq!(d["allowed_mentions"], json!({"parse": []}));
    let text = s["text"].as_str().unwrap();
    assert!(text.contains("&lt;!channel&gt; &amp;"), "{text}");

    let custom = Event::new(EventType::parse("course.enrolled").unwrap(), json!([1, 2]));
    let (s, d) = bodies(&custom, "F");
    assert_valid(&slack, &s, "slack, custom event");
    assert_valid(&discord, &d, "discord, custom event");
}
