-- The forum: users and their sessions, groups, categories, tags, threads, posts, reactions,
-- follows, reports. Times are unix milliseconds; flags are 0/1 integers. Kept in step with
-- ../sqlite/0002_forum.sql.

CREATE TABLE forum_groups (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    name_key TEXT NOT NULL UNIQUE,
    description TEXT,
    is_moderator BIGINT NOT NULL DEFAULT 0,
    is_admin BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- username_key and email_key are the lowercase forms that uniqueness is checked on.
-- A deleted user keeps its row (its content still names it) but can no longer log in.
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    username_key TEXT NOT NULL UNIQUE,
    email TEXT NOT NULL,
    email_key TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    display_name TEXT NOT NULL,
    avatar_url TEXT,
    bio TEXT,
    location TEXT,
    group_id TEXT,
    num_posts BIGINT NOT NULL DEFAULT 0,
    num_threads BIGINT NOT NULL DEFAULT 0,
    num_followers BIGINT NOT NULL DEFAULT 0,
    num_following BIGINT NOT NULL DEFAULT 0,
    online BIGINT NOT NULL DEFAULT 0,
    last_seen_at BIGINT,
    deleted_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX users_online ON users (online, last_seen_at);
CREATE INDEX users_group ON users (group_id);

CREATE TABLE user_sessions (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX user_sessions_user ON user_sessions (user_id);

CREATE TABLE follows (
    follower_id TEXT NOT NULL,
    followed_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (follower_id, followed_id)
);
CREATE INDEX follows_followed ON follows (followed_id);

CREATE TABLE categories (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    slug TEXT NOT NULL UNIQUE,
    description TEXT,
    position BIGINT NOT NULL DEFAULT 0,
    num_threads BIGINT NOT NULL DEFAULT 0,
    num_members BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE category_members (
    category_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (category_id, user_id)
);

CREATE TABLE tags (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    name_key TEXT NOT NULL UNIQUE,
    description TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- latest_post_id only ever moves forward (ULIDs sort by time), so concurrent replies
-- committing out of order still leave the newest one.
CREATE TABLE threads (
    id TEXT PRIMARY KEY,
    category_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    num_replies BIGINT NOT NULL DEFAULT 0,
    latest_post_id TEXT,
    last_activity_at BIGINT NOT NULL,
    pinned_at BIGINT,
    locked_at BIGINT,
    spam_at BIGINT,
    edited_at BIGINT,
    edited_by TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX threads_activity ON threads (last_activity_at, id);
CREATE INDEX threads_category ON threads (category_id, last_activity_at);
CREATE INDEX threads_user ON threads (user_id, last_activity_at);

CREATE TABLE thread_tags (
    thread_id TEXT NOT NULL,
    tag_id TEXT NOT NULL,
    PRIMARY KEY (thread_id, tag_id)
);
CREATE INDEX thread_tags_tag ON thread_tags (tag_id);

CREATE TABLE posts (
    id TEXT PRIMARY KEY,
    thread_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    reply_to_id TEXT,
    body TEXT NOT NULL,
    spam_at BIGINT,
    edited_at BIGINT,
    edited_by TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX posts_thread ON posts (thread_id, id);
CREATE INDEX posts_user ON posts (user_id);

CREATE TABLE reactions (
    id TEXT PRIMARY KEY,
    post_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (post_id, user_id, kind)
);

-- target_type: thread | post | user. status: open | resolved.
CREATE TABLE reports (
    id TEXT PRIMARY KEY,
    target_type TEXT NOT NULL,
    target_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    status TEXT NOT NULL,
    resolution TEXT,
    reported_by TEXT NOT NULL,
    resolved_by TEXT,
    created_at BIGINT NOT NULL,
    resolved_at BIGINT
);
CREATE INDEX reports_status ON reports (status, id);
