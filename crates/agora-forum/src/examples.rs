//! Example resources, the `example` payloads of `GET /v1/event-types`. They are built from the
//! same Rust types as real answers, so they cannot drift from the schema.

use std::collections::BTreeMap;

use crate::model::*;

const AT: &str = "2026-11-23T07:00:00.123Z";
const LATER: &str = "2026-11-23T07:05:12.456Z";

/// Alice, the author of every example.
pub fn author() -> Author {
    Author {
        id: "usr_01JD8X2V7K3M9Q4T6B1N5C8R0A".into(),
        username: "alice".into(),
        display_name: "Alice Martin".into(),
        avatar_url: Some("https://cdn.example.com/avatars/alice.png".into()),
    }
}

fn bob() -> Author {
    Author {
        id: "usr_01JD8X2W1P6S3V8Y0D4G7J2L5N".into(),
        username: "bob".into(),
        display_name: "bob".into(),
        avatar_url: None,
    }
}

/// A user who just registered.
pub fn user() -> User {
    let a = author();
    User {
        id: a.id,
        username: a.username,
        email: Some("alice@example.com".into()),
        display_name: a.display_name,
        avatar_url: a.avatar_url,
        bio: Some("Rustacean, gardener.".into()),
        location: Some("London".into()),
        group: Some(GroupRef {
            id: "grp_01JD8X1R4M7P0S3V6Y9B2E5H8K".into(),
            name: "Members".into(),
        }),
        num_posts: 87,
        num_threads: 12,
        num_followers: 3,
        num_following: 5,
        is_online: true,
        last_seen_at: Some(LATER.into()),
        created_at: AT.into(),
        updated_at: LATER.into(),
    }
}

/// A moderators' group.
pub fn group() -> Group {
    Group {
        id: "grp_01JD8X1R4M7P0S3V6Y9B2E5H8K".into(),
        name: "Moderators".into(),
        description: Some("Keep the peace.".into()),
        is_moderator: true,
        is_admin: false,
        num_members: 4,
        created_at: AT.into(),
        updated_at: AT.into(),
    }
}

fn category_ref() -> CategoryRef {
    CategoryRef {
        id: "cat_01JD8X0N2Q5T8W1Z4C7F0H3K6M".into(),
        name: "General".into(),
        slug: "general".into(),
    }
}

/// A category.
pub fn category() -> Category {
    let c = category_ref();
    Category {
        id: c.id,
        name: c.name,
        slug: c.slug,
        description: Some("Anything goes.".into()),
        position: 0,
        num_threads: 42,
        num_members: 130,
        created_at: AT.into(),
        updated_at: AT.into(),
    }
}

/// Alice joining General.
pub fn membership() -> Membership {
    Membership {
        category: category_ref(),
        user: author(),
        joined_at: AT.into(),
    }
}

/// A tag.
pub fn tag() -> Tag {
    Tag {
        id: "tag_01JD8X0P3R6U9X2A5D8G1J4L7N".into(),
        name: "announcement".into(),
        description: Some("Official news.".into()),
        created_at: AT.into(),
        updated_at: AT.into(),
    }
}

/// A thread with one reply.
pub fn thread() -> Thread {
    Thread {
        id: "thr_01JD8X3A5C8E1G4J7L0N3Q6S9V".into(),
        title: "How to configure the forum".into(),
        body: "Here is how to get started...".into(),
        category: category_ref(),
        user: author(),
        tags: vec![TagRef {
            id: "tag_01JD8X0P3R6U9X2A5D8G1J4L7N".into(),
            name: "announcement".into(),
        }],
        num_replies: 1,
        latest_post: Some(LatestPost {
            id: "pst_01JD8X4B6D9F2H5K8M1P4R7T0W".into(),
            user: bob(),
            created_at: LATER.into(),
        }),
        is_pinned: false,
        pinned_at: None,
        is_locked: false,
        locked_at: None,
        is_spam: false,
        last_activity_at: LATER.into(),
        edited_at: None,
        edited_by: None,
        created_at: AT.into(),
        updated_at: LATER.into(),
    }
}

/// Bob's reply.
pub fn post() -> Post {
    Post {
        id: "pst_01JD8X4B6D9F2H5K8M1P4R7T0W".into(),
        thread_id: "thr_01JD8X3A5C8E1G4J7L0N3Q6S9V".into(),
        category_id: "cat_01JD8X0N2Q5T8W1Z4C7F0H3K6M".into(),
        user: bob(),
        body: "Great post, thanks for sharing!".into(),
        reply_to_id: None,
        reactions: BTreeMap::from([("like".to_owned(), 2)]),
        is_spam: false,
        edited_at: None,
        edited_by: None,
        created_at: LATER.into(),
        updated_at: LATER.into(),
    }
}

/// Alice liking Bob's reply.
pub fn reaction() -> Reaction {
    Reaction {
        id: "rxn_01JD8X5C7E0G3J6L9N2Q5S8V1X".into(),
        post_id: "pst_01JD8X4B6D9F2H5K8M1P4R7T0W".into(),
        thread_id: "thr_01JD8X3A5C8E1G4J7L0N3Q6S9V".into(),
        kind: "like".into(),
        user: author(),
        counts: BTreeMap::from([("like".to_owned(), 2)]),
        created_at: LATER.into(),
    }
}

/// A reply flagged as spam by a moderator.
pub fn spam_flag() -> SpamFlag {
    let mut post = post();
    post.is_spam = true;
    SpamFlag {
        content_type: ContentType::Post,
        content_id: post.id.clone(),
        is_spam: true,
        thread: None,
        post: Some(post),
        moderated_by: "usr_01JD8X2V7K3M9Q4T6B1N5C8R0A".into(),
        at: LATER.into(),
    }
}

/// An open report against a reply.
pub fn report() -> Report {
    Report {
        id: "rpt_01JD8X6D8F1H4K7M0P3S6U9X2Z".into(),
        target_type: ContentType::Post,
        target_id: "pst_01JD8X4B6D9F2H5K8M1P4R7T0W".into(),
        reason: "Advertising".into(),
        status: ReportStatus::Open,
        resolution: None,
        reported_by: "usr_01JD8X2V7K3M9Q4T6B1N5C8R0A".into(),
        resolved_by: None,
        created_at: LATER.into(),
        resolved_at: None,
    }
}

/// Alice following Bob.
pub fn follow() -> Follow {
    Follow {
        follower: author(),
        followed: bob(),
        created_at: AT.into(),
    }
}
