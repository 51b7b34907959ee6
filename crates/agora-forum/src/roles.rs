//! What a signed-in user may do. API keys carry explicit abilities; a user session derives
//! its abilities from the user's role, which comes from their group's flags.

use crate::abilities::{Ability, Resource};

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
    pub fn can(self, ability: Ability) -> bool {
        let (Ability::Read(resource) | Ability::Write(resource)) = ability else {
            return false;
        };
        match resource {
            Resource::Webhooks | Resource::Events => false,
            Resource::Moderation => self >= Self::Moderator,
            Resource::Categories | Resource::Groups | Resource::Tags => {
                matches!(ability, Ability::Read(_)) || self == Self::Admin
            }
            Resource::Threads | Resource::Posts | Resource::Users => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Role;
    use crate::abilities::Ability;

    fn can(role: Role, name: &str) -> bool {
        role.can(Ability::parse(name).unwrap())
    }

    #[test]
    fn sessions_never_manage_webhooks() {
        for role in [Role::Member, Role::Moderator, Role::Admin] {
            assert!(!can(role, "webhooks:write"));
            assert!(!can(role, "admin"));
            assert!(can(role, "threads:write"));
        }
        assert!(!can(Role::Member, "moderation:write"));
        assert!(can(Role::Moderator, "moderation:write"));
        assert!(!can(Role::Moderator, "categories:write"));
        assert!(can(Role::Admin, "categories:write"));
        assert!(can(Role::Member, "tags:read"));
    }
}
