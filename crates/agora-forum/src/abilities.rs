//! What an API key may do: its abilities, parsed once where a key is made or read, so that
//! handlers ask for an [`Ability`] rather than compare strings.
//!
//! The wire names are the contract's: `admin`, and `{resource}:read` / `{resource}:write`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What an ability is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    /// Webhooks, their deliveries and their attempts.
    Webhooks,
    /// Custom events and their types.
    Events,
    /// Threads.
    Threads,
    /// Posts and reactions.
    Posts,
    /// Users.
    Users,
    /// Categories.
    Categories,
    /// Groups.
    Groups,
    /// Tags.
    Tags,
    /// Reports and the moderation of anyone's content.
    Moderation,
}

impl Resource {
    /// Every resource, in the order the contract lists their abilities.
    pub const ALL: [Self; 9] = [
        Self::Webhooks,
        Self::Events,
        Self::Threads,
        Self::Posts,
        Self::Users,
        Self::Categories,
        Self::Groups,
        Self::Tags,
        Self::Moderation,
    ];

    /// The name before the `:` of its abilities.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Webhooks => "webhooks",
            Self::Events => "events",
            Self::Threads => "threads",
            Self::Posts => "posts",
            Self::Users => "users",
            Self::Categories => "categories",
            Self::Groups => "groups",
            Self::Tags => "tags",
            Self::Moderation => "moderation",
        }
    }
}

/// One thing a key may be allowed: serialized as its wire name (`threads:write`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Ability {
    /// Everything, including key management and every webhook.
    Admin,
    /// `{resource}:read`.
    Read(Resource),
    /// `{resource}:write`, which also holds `{resource}:read`.
    Write(Resource),
}

impl Ability {
    /// Every ability a key may hold, in the contract's order.
    pub fn all() -> impl Iterator<Item = Self> {
        std::iter::once(Self::Admin).chain(
            Resource::ALL
                .into_iter()
                .flat_map(|r| [Self::Read(r), Self::Write(r)]),
        )
    }

    /// The ability with this wire name, if there is one.
    pub fn parse(name: &str) -> Option<Self> {
        Self::all().find(|a| a.to_string() == name)
    }

    /// Whether holding `self` allows `wanted`: `admin` allows everything, `x:write` allows
    /// `x:read`.
    pub fn covers(self, wanted: Self) -> bool {
        self == wanted
            || self == Self::Admin
            || matches!((self, wanted), (Self::Write(a), Self::Read(b)) if a == b)
    }
}

impl fmt::Display for Ability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Admin => f.write_str("admin"),
            Self::Read(r) => write!(f, "{}:read", r.as_str()),
            Self::Write(r) => write!(f, "{}:write", r.as_str()),
        }
    }
}

/// Why a name is not an ability.
#[derive(Debug, PartialEq, Eq)]
pub struct UnknownAbility(pub String);

impl fmt::Display for UnknownAbility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let known: Vec<String> = Ability::all().map(String::from).collect();
        write!(
            f,
            "unknown ability `{}`; known: {}",
            self.0,
            known.join(", ")
        )
    }
}

impl std::error::Error for UnknownAbility {}

impl TryFrom<String> for Ability {
    type Error = UnknownAbility;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        Self::parse(&name).ok_or(UnknownAbility(name))
    }
}

impl From<Ability> for String {
    fn from(a: Ability) -> Self {
        a.to_string()
    }
}

/// The abilities of one key, as its creator listed them (order kept, so a key is answered as
/// it was made); never empty.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Abilities(Vec<Ability>);

impl Abilities {
    /// Parses a key's abilities, as given to `POST /v1/api-keys` and `agora keys create`.
    pub fn parse(names: &[String]) -> Result<Self, String> {
        if names.is_empty() {
            return Err("a key needs at least one ability".into());
        }
        names
            .iter()
            .map(|n| Ability::parse(n).ok_or_else(|| UnknownAbility(n.clone()).to_string()))
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// `admin` alone: the operator's first key.
    pub fn admin() -> Self {
        Self(vec![Ability::Admin])
    }

    /// Whether these abilities allow `wanted`.
    pub fn allow(&self, wanted: Ability) -> bool {
        self.0.iter().any(|held| held.covers(wanted))
    }

    /// Whether `admin` is among them.
    pub fn is_admin(&self) -> bool {
        self.0.contains(&Ability::Admin)
    }

    /// The abilities in the order given.
    pub fn as_slice(&self) -> &[Ability] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_in_the_contract_order() {
        let names: Vec<String> = Ability::all().map(String::from).collect();
        assert_eq!(names.len(), 19);
        assert_eq!(names[..3], ["admin", "webhooks:read", "webhooks:write"]);
        assert_eq!(names[18], "moderation:write");
        for n in &names {
            assert_eq!(Ability::parse(n).map(String::from).as_deref(), Some(&**n));
        }
        assert_eq!(Ability::parse("threads"), None);
    }

    #[test]
    fn write_covers_read_and_admin_covers_all() {
        let keys = Abilities::parse(&["threads:write".into()]).unwrap();
        assert!(keys.allow(Ability::Read(Resource::Threads)));
        assert!(!keys.allow(Ability::Read(Resource::Posts)));
        assert!(!keys.allow(Ability::Admin));
        assert!(Abilities::admin().allow(Ability::Write(Resource::Tags)));
        let reader = Abilities::parse(&["posts:read".into()]).unwrap();
        assert!(!reader.allow(Ability::Write(Resource::Posts)));
    }

    #[test]
    fn parsing_answers_the_contract_messages() {
        assert_eq!(
            Abilities::parse(&[]).unwrap_err(),
            "a key needs at least one ability"
        );
        let unknown = Abilities::parse(&["admin".into(), "root".into()]).unwrap_err();
        assert!(unknown.starts_with("unknown ability `root`; known: admin, webhooks:read,"));
        assert_eq!(
            serde_json::to_string(&Abilities::admin()).unwrap(),
            r#"["admin"]"#
        );
    }
}
