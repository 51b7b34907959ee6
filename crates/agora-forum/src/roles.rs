//! What a signed-in user may do. API keys carry explicit abilities; a user session derives
//! its abilities from the user's role, which comes from their group's flags.

/// A user's standing in the forum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Acts only on their own content.
    Member,
    /// May also edit, delete, pin, lock, move and flag anyone's content and handle reports.
    Moderator,
    /// May also manage categories, groups, tags and other users.
    Admin,
}

impl Role {
    /// The role given by a group's flags (no group: a member).
    pub fn from_flags(is_moderator: bool, is_admin: bool) -> Self {
        if is_admin {
            Self::Admin
        } else if is_moderator {
            Self::Moderator
        } else {
            Self::Member
        }
    }

    /// Whether a session of this role holds `ability` (the names of API key abilities).
    ///
    /// Sessions never manage webhooks, custom events or API keys: those belong to API keys.
    /// Members write threads, posts and their own profile; the per-resource ownership check
    /// (their own content only) is made by the handler.
    pub fn can(self, ability: &str) -> bool {
        let (resource, access) = ability.split_once(':').unwrap_or((ability, ""));
        match resource {
            "webhooks" | "events" | "admin" => false,
            "moderation" => self >= Self::Moderator,
            "categories" | "groups" | "tags" => access == "read" || self == Self::Admin,
            "threads" | "posts" | "users" => true,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Role;

    #[test]
    fn sessions_never_manage_webhooks() {
        for role in [Role::Member, Role::Moderator, Role::Admin] {
            assert!(!role.can("webhooks:write"));
            assert!(!role.can("admin"));
            assert!(role.can("threads:write"));
        }
        assert!(!Role::Member.can("moderation:write"));
        assert!(Role::Moderator.can("moderation:write"));
        assert!(!Role::Moderator.can("categories:write"));
        assert!(Role::Admin.can("categories:write"));
        assert!(Role::Member.can("tags:read"));
    }
}
