//! The built-in event types of CONTRACT.md §3.

/// A built-in event type.
#[derive(Clone, Copy, Debug)]
pub struct BuiltinEventType {
    /// `resource.action`.
    pub name: &'static str,
    /// What it means, for integrators browsing the catalog.
    pub description: &'static str,
}

const fn t(name: &'static str, description: &'static str) -> BuiltinEventType {
    BuiltinEventType { name, description }
}

/// Every built-in event type, grouped by resource.
pub const BUILTIN: &[BuiltinEventType] = &[
    t("thread.created", "A thread was started."),
    t("thread.updated", "A thread's title, body or tags changed."),
    t("thread.deleted", "A thread was deleted."),
    t(
        "thread.pinned",
        "A thread was pinned to the top of its category.",
    ),
    t("thread.unpinned", "A thread was unpinned."),
    t(
        "thread.locked",
        "A thread was locked: it accepts no new posts.",
    ),
    t("thread.unlocked", "A thread was unlocked."),
    t("thread.moved", "A thread was moved to another category."),
    t("post.created", "A reply was posted in a thread."),
    t("post.updated", "A reply was edited."),
    t("post.deleted", "A reply was deleted."),
    t("reaction.added", "Someone reacted to a post (a like)."),
    t("reaction.removed", "Someone took a reaction back."),
    t(
        "content.flagged_spam",
        "A thread or post was flagged as spam and left public lists.",
    ),
    t(
        "content.unflagged_spam",
        "A thread or post was cleared of the spam flag.",
    ),
    t(
        "report.created",
        "A thread, post or user was reported to the moderators.",
    ),
    t("report.resolved", "A moderator resolved a report."),
    t("user.registered", "A user registered."),
    t("user.updated", "A user's profile changed."),
    t("user.deleted", "A user account was deleted."),
    t(
        "user.online",
        "A user came online (first presence heartbeat).",
    ),
    t("user.offline", "A user went offline (heartbeats stopped)."),
    t("user.followed", "A user followed another user."),
    t("user.unfollowed", "A user stopped following another user."),
    t("category.created", "A category (forum, space) was created."),
    t("category.updated", "A category's settings changed."),
    t("category.deleted", "A category was deleted."),
    t("category.member_joined", "A user joined a category."),
    t("category.member_left", "A user left a category."),
    t("group.created", "A user group was created."),
    t("group.updated", "A user group changed."),
    t("group.deleted", "A user group was deleted."),
    t("tag.created", "A tag was created."),
    t("tag.updated", "A tag was renamed or changed."),
    t("tag.deleted", "A tag was deleted."),
    t(
        "webhook.test",
        "A test delivery asked for with POST /v1/webhooks/{id}/test.",
    ),
    t(
        "webhook.disabled",
        "A webhook was disabled by the system (410 Gone, or failing for days).",
    ),
];

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
pub fn read_ability(resource: &str) -> &'static str {
    match resource {
        "thread" => "threads:read",
        "post" | "reaction" => "posts:read",
        "content" | "report" => "moderation:read",
        "user" => "users:read",
        "category" => "categories:read",
        "group" => "groups:read",
        "tag" => "tags:read",
        "webhook" => "webhooks:read",
        _ => "events:read",
    }
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
