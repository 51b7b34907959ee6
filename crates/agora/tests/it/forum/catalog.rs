//! `GET /v1/event-types`: every built-in type with a description, a schema and an example
//! that the schema accepts.

use super::support::assert_valid;
use crate::helpers::spawn_app;

const FORUM_EVENTS: &[&str] = &[
    "thread.created",
    "thread.updated",
    "thread.deleted",
    "thread.pinned",
    "thread.unpinned",
    "thread.locked",
    "thread.unlocked",
    "thread.moved",
    "post.created",
    "post.updated",
    "post.deleted",
    "reaction.added",
    "reaction.removed",
    "content.flagged_spam",
    "content.unflagged_spam",
    "report.created",
    "report.resolved",
    "user.registered",
    "user.updated",
    "user.deleted",
    "user.online",
    "user.offline",
    "user.followed",
    "user.unfollowed",
    "category.created",
    "category.updated",
    "category.deleted",
    "category.member_joined",
    "category.member_left",
    "group.created",
    "group.updated",
    "group.deleted",
    "tag.created",
    "tag.updated",
    "tag.deleted",
];

#[tokio::test]
async fn every_builtin_type_has_a_description_schema_and_valid_example() {
    let app = spawn_app().await;
    let a = app.get("/v1/event-types").await;
    assert_eq!(a.status, 200);
    let types = a.body["data"].as_array().unwrap();
    for name in FORUM_EVENTS
        .iter()
        .chain(&["webhook.test", "webhook.disabled"])
    {
        let t = types
            .iter()
            .find(|t| t["name"] == *name)
            .unwrap_or_else(|| panic!("{name} missing from the catalog"));
        assert_eq!(t["builtin"], true);
        assert!(!t["description"].as_str().unwrap().is_empty(), "{name}");
        assert!(t["schema"].is_object(), "{name} has no schema");
        assert!(t["example"].is_object(), "{name} has no example");
        assert_valid(&t["schema"], &t["example"], name);
    }
    // Schemas are strict: an unknown field or a missing one fails validation.
    let thread = types
        .iter()
        .find(|t| t["name"] == "thread.created")
        .unwrap();
    let mut extra = thread["example"].clone();
    extra["surprise"] = serde_json::json!(1);
    let v = jsonschema::validator_for(&thread["schema"]).unwrap();
    assert!(!v.is_valid(&extra));
    let mut missing = thread["example"].clone();
    missing.as_object_mut().unwrap().remove("title");
    assert!(!v.is_valid(&missing));
    // Threads embed their author and their tags.
    assert!(thread["example"]["user"]["username"].is_string());
    assert!(thread["example"]["tags"].is_array());
}
