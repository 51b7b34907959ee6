//! The built-in event types of docs/events-and-abilities.md, each with the Rust type of its `data`, from
//! which `GET /v1/event-types` derives a JSON Schema and an example payload.

use serde_json::{json, Value};

use crate::abilities::{Ability, Resource};
use crate::examples;
use crate::model;

/// Which resource an event's `data` is; one schema per kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataKind {
    /// [`model::Thread`].
    Thread,
    /// [`model::Post`].
    Post,
    /// [`model::Reaction`].
    Reaction,
    /// [`model::SpamFlag`].
    SpamFlag,
    /// [`model::Report`].
    Report,
    /// [`model::User`].
    User,
    /// [`model::Follow`].
    Follow,
    /// [`model::Category`].
    Category,
    /// [`model::Membership`].
    Membership,
    /// [`model::Group`].
    Group,
    /// [`model::Tag`].
    Tag,
    /// The operational `webhook.test` payload, a free-form object.
    Operational,
    /// A webhook as the API shows it, with every custom header value and URL query value
    /// redacted and no secret: `webhook.created`, `.updated`, `.deleted`, `.disabled`.
    Webhook,
    /// An API key's id, name and abilities, never its value: `api_key.created`, `.revoked`.
    ApiKey,
}

impl DataKind {
    /// The JSON Schema (draft 2020-12) of the `data` of events of this kind.
    pub fn schema(self) -> Value {
        let schema = match self {
            Self::Thread => schemars::schema_for!(model::Thread),
            Self::Post => schemars::schema_for!(model::Post),
            Self::Reaction => schemars::schema_for!(model::Reaction),
            Self::SpamFlag => schemars::schema_for!(model::SpamFlag),
            Self::Report => schemars::schema_for!(model::Report),
            Self::User => schemars::schema_for!(model::User),
            Self::Follow => schemars::schema_for!(model::Follow),
            Self::Category => schemars::schema_for!(model::Category),
            Self::Membership => schemars::schema_for!(model::Membership),
            Self::Group => schemars::schema_for!(model::Group),
            Self::Tag => schemars::schema_for!(model::Tag),
            Self::Operational => {
                return json!({"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object"})
            }
            Self::Webhook => return webhook_schema(),
            Self::ApiKey => return api_key_schema(),
        };
        serde_json::to_value(schema).expect("schemas serialize")
    }

    /// A realistic `data` of this kind, valid against [`DataKind::schema`].
    pub fn example(self) -> Value {
        fn v(x: impl serde::Serialize) -> Value {
            serde_json::to_value(x).expect("examples serialize")
        }
        match self {
            Self::Thread => v(examples::thread()),
            Self::Post => v(examples::post()),
            Self::Reaction => v(examples::reaction()),
            Self::SpamFlag => v(examples::spam_flag()),
            Self::Report => v(examples::report()),
            Self::User => v(examples::user()),
            Self::Follow => v(examples::follow()),
            Self::Category => v(examples::category()),
            Self::Membership => v(examples::membership()),
            Self::Group => v(examples::group()),
            Self::Tag => v(examples::tag()),
            Self::Operational => json!({"webhook_id": "wh_01JD8X3ZQ4T9M2K7C5B6N8P0RS"}),
            Self::Webhook => json!({
                "id": "wh_01JD8X3ZQ4T9M2K7C5B6N8P0RS",
                "owner_key_id": "key_01JD8X2A1B2C3D4E5F6G7H8J9K",
                "name": "Moderation queue",
                "description": "Reports go to the moderators' chat",
                "url": "https://hooks.example.com/agora?token=[redacted]",
                "events": ["report.created", "content.flagged_spam"],
                "headers": {"Authorization": "[redacted]"},
                "retry_count": 10,
                "timeout_ms": 15000,
                "status": "active",
                "disabled_reason": null,
                "filter": null,
                "format": "json",
                "created_at": "2026-11-30T09:12:44.318Z",
                "updated_at": "2026-12-01T16:03:10.027Z",
                "last_triggered_at": null,
                "last_error": null,
            }),
            Self::ApiKey => json!({
                "id": "key_01JD8X2A1B2C3D4E5F6G7H8J9K",
                "name": "CI deploy notifier",
                "abilities": ["webhooks:write", "threads:read"],
                "created_at": "2026-11-30T09:10:02.551Z",
            }),
        }
    }
}

/// The schema of a webhook as `webhook.*` events carry it (the view of
/// `agora_store::webhooks::Webhook::event_view`).
fn webhook_schema() -> Value {
    let text = json!({"type": "string"});
    let text_or_null = json!({"type": ["string", "null"]});
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Webhook",
        "type": "object",
        "required": ["id", "owner_key_id", "url", "events", "headers", "retry_count",
                     "timeout_ms", "status", "format", "created_at", "updated_at"],
        "properties": {
            "id": text,
            "owner_key_id": text_or_null,
            "name": text_or_null,
            "description": text_or_null,
            "url": text,
            "events": {"type": "array", "items": text},
            "headers": {"type": "object", "additionalProperties": {"const": "[redacted]"}},
            "retry_count": {"type": "integer"},
            "timeout_ms": {"type": "integer"},
            "status": {"enum": ["active", "inactive"]},
            "disabled_reason": text_or_null,
            "filter": {"type": ["object", "null"]},
            "format": {"enum": ["json", "slack", "discord"]},
            "created_at": text,
            "updated_at": text,
            "last_triggered_at": text_or_null,
            "last_error": text_or_null,
        },
    })
}

/// The schema of an API key as `api_key.*` events carry it.
fn api_key_schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "ApiKey",
        "type": "object",
        "required": ["id", "name", "abilities", "created_at"],
        "additionalProperties": false,
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "abilities": {"type": "array", "items": {"type": "string"}},
            "created_at": {"type": "string"},
        },
    })
}

/// A built-in event type.
#[derive(Clone, Copy, Debug)]
pub struct BuiltinEventType {
    /// `resource.action`.
    pub name: &'static str,
    /// What it means, for integrators browsing the catalog.
    pub description: &'static str,
    /// What its `data` is.
    pub data: DataKind,
}

const fn t(name: &'static str, description: &'static str, data: DataKind) -> BuiltinEventType {
    BuiltinEventType {
        name,
        description,
        data,
    }
}

/// Every built-in event type, grouped by resource.
pub const BUILTIN: &[BuiltinEventType] = &[
    t("thread.created", "A thread was started.", DataKind::Thread),
    t(
        "thread.updated",
        "A thread's title, body or tags changed.",
        DataKind::Thread,
    ),
    t("thread.deleted", "A thread was deleted.", DataKind::Thread),
    t(
        "thread.pinned",
        "A thread was pinned to the top of its category.",
        DataKind::Thread,
    ),
    t(
        "thread.unpinned",
        "A thread was unpinned.",
        DataKind::Thread,
    ),
    t(
        "thread.locked",
        "A thread was locked: it accepts no new posts.",
        DataKind::Thread,
    ),
    t(
        "thread.unlocked",
        "A thread was unlocked.",
        DataKind::Thread,
    ),
    t(
        "thread.moved",
        "A thread was moved to another category.",
        DataKind::Thread,
    ),
    t(
        "post.created",
        "A reply was posted in a thread.",
        DataKind::Post,
    ),
    t("post.updated", "A reply was edited.", DataKind::Post),
    t("post.deleted", "A reply was deleted.", DataKind::Post),
    t(
        "reaction.added",
        "Someone reacted to a post (a like).",
        DataKind::Reaction,
    ),
    t(
        "reaction.removed",
        "Someone took a reaction back.",
        DataKind::Reaction,
    ),
    t(
        "content.flagged_spam",
        "A thread or post was flagged as spam and left public lists.",
        DataKind::SpamFlag,
    ),
    t(
        "content.unflagged_spam",
        "A thread or post was cleared of the spam flag.",
        DataKind::SpamFlag,
    ),
    t(
        "report.created",
        "A thread, post or user was reported to the moderators.",
        DataKind::Report,
    ),
    t(
        "report.resolved",
        "A moderator resolved a report.",
        DataKind::Report,
    ),
    t("user.registered", "A user registered.", DataKind::User),
    t("user.updated", "A user's profile changed.", DataKind::User),
    t(
        "user.deleted",
        "A user account was deleted.",
        DataKind::User,
    ),
    t(
        "user.online",
        "A user came online (first presence heartbeat).",
        DataKind::User,
    ),
    t(
        "user.offline",
        "A user went offline (heartbeats stopped).",
        DataKind::User,
    ),
    t(
        "user.followed",
        "A user followed another user.",
        DataKind::Follow,
    ),
    t(
        "user.unfollowed",
        "A user stopped following another user.",
        DataKind::Follow,
    ),
    t(
        "category.created",
        "A category (forum, space) was created.",
        DataKind::Category,
    ),
    t(
        "category.updated",
        "A category's settings changed.",
        DataKind::Category,
    ),
    t(
        "category.deleted",
        "A category was deleted.",
        DataKind::Category,
    ),
    t(
        "category.member_joined",
        "A user joined a category.",
        DataKind::Membership,
    ),
    t(
        "category.member_left",
        "A user left a category.",
        DataKind::Membership,
    ),
    t(
        "group.created",
        "A user group was created.",
        DataKind::Group,
    ),
    t("group.updated", "A user group changed.", DataKind::Group),
    t(
        "group.deleted",
        "A user group was deleted.",
        DataKind::Group,
    ),
    t("tag.created", "A tag was created.", DataKind::Tag),
    t(
        "tag.updated",
        "A tag was renamed or changed.",
        DataKind::Tag,
    ),
    t("tag.deleted", "A tag was deleted.", DataKind::Tag),
    t(
        "webhook.test",
        "A test delivery asked for with POST /v1/webhooks/{id}/test.",
        DataKind::Operational,
    ),
    t(
        "webhook.disabled",
        "A webhook was disabled by the system (410 Gone, or failing for days).",
        DataKind::Webhook,
    ),
    t(
        "webhook.created",
        "A webhook was registered. Sent to its owner key's and admins' webhooks only.",
        DataKind::Webhook,
    ),
    t(
        "webhook.updated",
        "A webhook was changed: its settings, its status or its secret (never shown). Sent to \
         its owner key's and admins' webhooks only.",
        DataKind::Webhook,
    ),
    t(
        "webhook.deleted",
        "A webhook was deleted. Sent to its owner key's and admins' webhooks only.",
        DataKind::Webhook,
    ),
    t(
        "api_key.created",
        "An API key was created (its value is never sent). Sent to admins' webhooks only.",
        DataKind::ApiKey,
    ),
    t(
        "api_key.revoked",
        "An API key was revoked; its webhooks were disabled. Sent to admins' webhooks only.",
        DataKind::ApiKey,
    ),
];

/// The built-in type of this name.
pub fn builtin(name: &str) -> Option<&'static BuiltinEventType> {
    BUILTIN.iter().find(|t| t.name == name)
}

/// A new event of the built-in type `name` whose `data` is `resource` as the API answers it.
///
/// Panics on a name that is not built in: callers pass literals, and a unit test checks them.
pub fn event(name: &'static str, resource: &impl serde::Serialize) -> agora_core::event::Event {
    assert!(is_builtin(name), "`{name}` is not a built-in event type");
    agora_core::event::Event::new(
        agora_core::event::EventType::parse(name).expect("built-in names are valid"),
        serde_json::to_value(resource).expect("forum resources serialize"),
    )
}

/// Whether `name` is a built-in event type.
pub fn is_builtin(name: &str) -> bool {
    BUILTIN.iter().any(|t| t.name == name)
}

/// Whether `resource` is the resource of built-in event types (custom types may not use it).
pub fn is_builtin_resource(resource: &str) -> bool {
    BUILTIN
        .iter()
        .any(|t| t.name.split_once('.').is_some_and(|(r, _)| r == resource))
}

/// The ability that lets a key read events of a resource, which a key must hold to subscribe
/// a webhook to them (ForumSpark's rule). Custom resources need `events:read`.
pub fn read_ability(resource: &str) -> Ability {
    Ability::Read(match resource {
        "thread" => Resource::Threads,
        "post" | "reaction" => Resource::Posts,
        "content" | "report" => Resource::Moderation,
        "user" => Resource::Users,
        "category" => Resource::Categories,
        "group" => Resource::Groups,
        "tag" => Resource::Tags,
        "webhook" => Resource::Webhooks,
        "api_key" => return Ability::Admin,
        _ => Resource::Events,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_name_is_a_valid_event_type() {
        for t in BUILTIN {
            assert!(
                agora_core::event::EventType::parse(t.name).is_ok(),
                "{}",
                t.name
            );
        }
        assert!(is_builtin("thread.moved"));
        assert!(is_builtin_resource("reaction"));
        assert!(!is_builtin_resource("course"));
    }
}
