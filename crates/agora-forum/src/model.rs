//! The forum's resources as the API answers them and as events carry them.
//!
//! One type per resource: its `Serialize` form is both the API answer and the `data` of the
//! events it fires, and its `JsonSchema` is the schema `GET /v1/event-types` publishes. Every
//! type denies unknown fields in its schema, so a field added here without a schema change
//! cannot slip past the tests that validate deliveries.
//!
//! Timestamps are RFC 3339 strings in UTC with milliseconds; ids are prefixed ULIDs.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Serialize;

/// A user as embedded in threads, posts and reactions: enough to show a byline.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema, utoipa::ToSchema)]
#[schemars(deny_unknown_fields)]
pub struct Author {
    /// `usr_…`.
    pub id: String,
    /// The unique handle.
    pub username: String,
    /// The name shown; the username unless the user chose one.
    pub display_name: String,
    /// A picture URL, when the user set one.
    pub avatar_url: Option<String>,
}

/// A group as embedded in a user.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema, utoipa::ToSchema)]
#[schemars(deny_unknown_fields)]
pub struct GroupRef {
    /// `grp_…`.
    pub id: String,
    /// The group's name.
    pub name: String,
}

/// A registered user.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema, utoipa::ToSchema)]
#[schemars(deny_unknown_fields)]
pub struct User {
    /// `usr_…`.
    pub id: String,
    /// The unique handle (3 to 32 letters, digits, `_`, `-`, `.`).
    pub username: String,
    /// Shown only to the user, moderators, admins and keys holding `users:read`; always
    /// present in events (webhook receivers are trusted integrations).
    pub email: Option<String>,
    /// The name shown.
    pub display_name: String,
    /// A picture URL.
    pub avatar_url: Option<String>,
    /// About the user.
    pub bio: Option<String>,
    /// Where the user is.
    pub location: Option<String>,
    /// The user's group (a user has at most one, as in ForumSpark).
    pub group: Option<GroupRef>,
    /// Replies posted (threads not counted).
    pub num_posts: i64,
    /// Threads started.
    pub num_threads: i64,
    /// Users following this one.
    pub num_followers: i64,
    /// Users this one follows.
    pub num_following: i64,
    /// Whether presence heartbeats are arriving.
    pub is_online: bool,
    /// The last presence heartbeat.
    pub last_seen_at: Option<String>,
    /// Registered.
    pub created_at: String,
    /// Last changed.
    pub updated_at: String,
}

/// A user group; its flags make its members moderators or admins.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema, utoipa::ToSchema)]
#[schemars(deny_unknown_fields)]
pub struct Group {
    /// `grp_…`.
    pub id: String,
    /// Unique (case-insensitive).
    pub name: String,
    /// What the group is.
    pub description: Option<String>,
    /// Members may edit, delete, pin, lock, move and flag anyone's content and resolve reports.
    pub is_moderator: bool,
    /// Members may do everything a forum admin may (not manage webhooks or API keys).
    pub is_admin: bool,
    /// Users in the group.
    pub num_members: i64,
    /// Created.
    pub created_at: String,
    /// Last changed.
    pub updated_at: String,
}

/// A category as embedded in a thread.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema, utoipa::ToSchema)]
#[schemars(deny_unknown_fields)]
pub struct CategoryRef {
    /// `cat_…`.
    pub id: String,
    /// The category's name.
    pub name: String,
    /// Its URL-safe unique name.
    pub slug: String,
}

/// A category (a forum, a space): threads live in one.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema, utoipa::ToSchema)]
#[schemars(deny_unknown_fields)]
pub struct Category {
    /// `cat_…`.
    pub id: String,
    /// The name shown.
    pub name: String,
    /// URL-safe and unique (lowercase letters, digits and `-`).
    pub slug: String,
    /// What belongs here.
    pub description: Option<String>,
    /// Sort order among categories, ascending.
    pub position: i64,
    /// Threads in it.
    pub num_threads: i64,
    /// Users who joined it.
    pub num_members: i64,
    /// Created.
    pub created_at: String,
    /// Last changed.
    pub updated_at: String,
}

/// A user's membership of a category, the data of `category.member_joined` and `_left`.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema, utoipa::ToSchema)]
#[schemars(deny_unknown_fields)]
pub struct Membership {
    /// The category.
    pub category: CategoryRef,
    /// The member.
    pub user: Author,
    /// When the user joined.
    pub joined_at: String,
}

/// A tag as embedded in a thread.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema, utoipa::ToSchema)]
#[schemars(deny_unknown_fields)]
pub struct TagRef {
    /// `tag_…`.
    pub id: String,
    /// The tag's name.
    pub name: String,
}

/// A tag threads can carry.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema, utoipa::ToSchema)]
#[schemars(deny_unknown_fields)]
pub struct Tag {
    /// `tag_…`.
    pub id: String,
    /// Unique (case-insensitive).
    pub name: String,
    /// What it marks.
    pub description: Option<String>,
    /// Created.
    pub created_at: String,
    /// Last changed.
    pub updated_at: String,
}

/// The newest reply of a thread, as embedded in it.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema, utoipa::ToSchema)]
#[schemars(deny_unknown_fields)]
pub struct LatestPost {
    /// `pst_…`.
    pub id: String,
    /// Who posted it.
    pub user: Author,
    /// When.
    pub created_at: String,
}

/// A thread (a topic, a feed post): a title, an opening body, and replies.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema, utoipa::ToSchema)]
#[schemars(deny_unknown_fields)]
pub struct Thread {
    /// `thr_…`.
    pub id: String,
    /// 1 to 200 characters.
    pub title: String,
    /// The opening text.
    pub body: String,
    /// Where it lives.
    pub category: CategoryRef,
    /// Who started it.
    pub user: Author,
    /// Its tags, by name.
    pub tags: Vec<TagRef>,
    /// Replies in it.
    pub num_replies: i64,
    /// The newest reply, if any.
    pub latest_post: Option<LatestPost>,
    /// Pinned to the top of its category.
    pub is_pinned: bool,
    /// When it was pinned.
    pub pinned_at: Option<String>,
    /// Locked: it refuses new posts.
    pub is_locked: bool,
    /// When it was locked.
    pub locked_at: Option<String>,
    /// Flagged as spam: left out of public lists.
    pub is_spam: bool,
    /// The newest reply's time, or creation; lists sort by it.
    pub last_activity_at: String,
    /// When its title, body or tags were last edited.
    pub edited_at: Option<String>,
    /// Who edited it last: a user id, or an API key id.
    pub edited_by: Option<String>,
    /// Created.
    pub created_at: String,
    /// Last changed.
    pub updated_at: String,
}

/// A reply in a thread.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema, utoipa::ToSchema)]
#[schemars(deny_unknown_fields)]
pub struct Post {
    /// `pst_…`.
    pub id: String,
    /// The thread it replies in.
    pub thread_id: String,
    /// The thread's category (for routing and display).
    pub category_id: String,
    /// Who posted it.
    pub user: Author,
    /// The text.
    pub body: String,
    /// The post this one answers, when it answers one.
    pub reply_to_id: Option<String>,
    /// Reaction counts by kind (`{"like": 3}`).
    pub reactions: BTreeMap<String, i64>,
    /// Flagged as spam: left out of public lists.
    pub is_spam: bool,
    /// When it was last edited.
    pub edited_at: Option<String>,
    /// Who edited it last: a user id, or an API key id.
    pub edited_by: Option<String>,
    /// Created.
    pub created_at: String,
    /// Last changed.
    pub updated_at: String,
}

/// One user's reaction of one kind to one post.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema, utoipa::ToSchema)]
#[schemars(deny_unknown_fields)]
pub struct Reaction {
    /// `rxn_…`.
    pub id: String,
    /// The post reacted to.
    pub post_id: String,
    /// That post's thread.
    pub thread_id: String,
    /// `like` unless another kind was given.
    pub kind: String,
    /// Who reacted.
    pub user: Author,
    /// The post's reaction counts by kind after this change.
    pub counts: BTreeMap<String, i64>,
    /// When the reaction was added.
    pub created_at: String,
}

/// What a moderation action or report is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ContentType {
    /// A thread.
    Thread,
    /// A reply.
    Post,
    /// A user (reports only).
    User,
}

impl ContentType {
    /// The lowercase name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Thread => "thread",
            Self::Post => "post",
            Self::User => "user",
        }
    }

    /// Parses the stored or requested name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "thread" => Some(Self::Thread),
            "post" => Some(Self::Post),
            "user" => Some(Self::User),
            _ => None,
        }
    }
}

/// A spam flag set or cleared: the data of `content.flagged_spam` and `_unflagged_spam`.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema, utoipa::ToSchema)]
#[schemars(deny_unknown_fields)]
pub struct SpamFlag {
    /// `thread` or `post`.
    pub content_type: ContentType,
    /// The thread or post id.
    pub content_id: String,
    /// Whether it is now flagged.
    pub is_spam: bool,
    /// The thread, when a thread was flagged.
    pub thread: Option<Thread>,
    /// The post, when a post was flagged.
    pub post: Option<Post>,
    /// Who flagged or cleared it: a user id, or an API key id.
    pub moderated_by: String,
    /// When.
    pub at: String,
}

/// A report's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReportStatus {
    /// Waiting for a moderator.
    Open,
    /// A moderator resolved it.
    Resolved,
}

/// A report against a thread, post or user.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema, utoipa::ToSchema)]
#[schemars(deny_unknown_fields)]
pub struct Report {
    /// `rpt_…`.
    pub id: String,
    /// What is reported.
    pub target_type: ContentType,
    /// Its id.
    pub target_id: String,
    /// Why, in the reporter's words.
    pub reason: String,
    /// `open` or `resolved`.
    pub status: ReportStatus,
    /// What the moderator decided.
    pub resolution: Option<String>,
    /// Who reported: a user id, or an API key id.
    pub reported_by: String,
    /// Who resolved it: a user id, or an API key id.
    pub resolved_by: Option<String>,
    /// Reported.
    pub created_at: String,
    /// Resolved.
    pub resolved_at: Option<String>,
}

/// One user following another: the data of `user.followed` and `user.unfollowed`.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema, utoipa::ToSchema)]
#[schemars(deny_unknown_fields)]
pub struct Follow {
    /// Who follows.
    pub follower: Author,
    /// Who is followed.
    pub followed: Author,
    /// Since when.
    pub created_at: String,
}
