//! Prefixed identifiers.
//!
//! Every id Agora hands out is `{prefix}_{ULID}`: the prefix tells a human (and a support
//! engineer reading a log) what kind of thing it names, and the ULID sorts by creation time,
//! which keeps B-tree inserts append-only and makes ids usable as pagination cursors.

use std::sync::Mutex;

/// Prefix of event ids, the `id` of every delivered body.
pub const EVENT: &str = "evt";
/// Prefix of delivery ids, which are also the Standard Webhooks `webhook-id`.
pub const DELIVERY: &str = "msg";
/// Prefix of webhook ids.
pub const WEBHOOK: &str = "wh";
/// Prefix of delivery attempt ids.
pub const ATTEMPT: &str = "att";
/// Prefix of API key ids.
pub const API_KEY: &str = "key";
/// Prefix of audit record ids.
pub const AUDIT: &str = "aud";

/// A new id with the given prefix, unique and increasing: within one process every id is
/// greater than the one made before it, even in the same millisecond, so that deliveries
/// queued one after another can be read back in that order by id (the store relies on this).
pub fn new_id(prefix: &str) -> String {
    static IDS: Mutex<ulid::Generator> = Mutex::new(ulid::Generator::new());
    let next = IDS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .generate()
        // 2^80 ids in one millisecond; a fresh id is then still unique.
        .unwrap_or_else(|_| ulid::Ulid::new());
    format!("{prefix}_{next}")
}

/// The smallest id of this prefix that can be made at or after `unix_ms`: since ids sort by
/// creation time, `id < id_floor(prefix, t)` selects the ids made before `t` through the
/// primary key, with no index on a time column.
pub fn id_floor(prefix: &str, unix_ms: i64) -> String {
    format!(
        "{prefix}_{}",
        ulid::Ulid::from_parts(unix_ms.max(0) as u64, 0)
    )
}

/// When `id` was made (unix ms), read from its ULID; `None` for a string that is not an id.
pub fn id_time(id: &str) -> Option<i64> {
    let (_, ulid) = id.split_once('_')?;
    let ms = ulid::Ulid::from_string(ulid).ok()?.timestamp_ms();
    i64::try_from(ms).ok()
}

/// Whether `id` looks like an id of this prefix, so that malformed path parameters are
/// answered with 404 before touching the database.
pub fn has_prefix(id: &str, prefix: &str) -> bool {
    id.len() > prefix.len() + 1
        && id.len() <= prefix.len() + 1 + 32
        && id.starts_with(prefix)
        && id.as_bytes()[prefix.len()] == b'_'
        && id[prefix.len() + 1..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric())
}

/// A string that is not an id of the expected kind.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0:?} is not a `{1}_…` id")]
pub struct InvalidId(pub String, pub &'static str);

/// Declares a newtype for the ids of one prefix: made only by [`new_id`] or by parsing a
/// string that [`has_prefix`], and serialized as the plain string.
macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// A new id of this kind, greater than any made before it in this process.
            pub fn generate() -> Self {
                Self(new_id($prefix))
            }

            /// The id, when `s` has this kind's prefix and the shape of an id: malformed ids
            /// (path parameters, say) are refused before they reach the database.
            pub fn parse(s: &str) -> Option<Self> {
                has_prefix(s, $prefix).then(|| Self(s.to_owned()))
            }

            /// The id as the wire and the database carry it.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidId;

            fn try_from(s: String) -> Result<Self, InvalidId> {
                if has_prefix(&s, $prefix) {
                    Ok(Self(s))
                } else {
                    Err(InvalidId(s, $prefix))
                }
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> Self {
                id.0
            }
        }
    };
}

prefixed_id!(
    /// A webhook's id, `wh_…`.
    WebhookId,
    WEBHOOK
);
prefixed_id!(
    /// A delivery's id, `msg_…`, also its Standard Webhooks `webhook-id`.
    DeliveryId,
    DELIVERY
);
prefixed_id!(
    /// An event's id, `evt_…`.
    EventId,
    EVENT
);
prefixed_id!(
    /// An API key's id, `key_…`.
    ApiKeyId,
    API_KEY
);

prefixed_id!(
    /// An audit record's id, `aud_…`.
    AuditId,
    AUDIT
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_made_one_after_another_increase_even_within_a_millisecond() {
        let ids: Vec<String> = (0..1000).map(|_| new_id(DELIVERY)).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn ids_carry_their_prefix_and_sort_by_time() {
        let a = new_id(EVENT);
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_id(EVENT);
        assert!(has_prefix(&a, EVENT));
        assert!(a < b);
        assert!(!has_prefix(&a, WEBHOOK));
        assert!(!has_prefix("evt_", EVENT));
        assert!(!has_prefix("evt_../x", EVENT));
    }

    #[test]
    fn typed_ids_parse_only_their_prefix() {
        let id = WebhookId::generate();
        assert_eq!(WebhookId::parse(id.as_str()), Some(id.clone()));
        assert_eq!(DeliveryId::parse(id.as_str()), None);
        assert_eq!(WebhookId::parse("wh_../x"), None);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{id}\""));
        assert_eq!(serde_json::from_str::<WebhookId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<ApiKeyId>(&json).is_err());
    }

    #[test]
    fn an_id_tells_when_it_was_made() {
        assert_eq!(
            id_time(&id_floor(DELIVERY, 1_700_000_000_123)),
            Some(1_700_000_000_123)
        );
        // Against the wall clock ULIDs are made from: the tests' `now_ms` follows tokio's
        // clock, which may drift from it by a millisecond.
        let wall = || chrono::Utc::now().timestamp_millis();
        let before = wall();
        let made = id_time(&new_id(DELIVERY)).expect("an id");
        assert!(made >= before && made <= wall(), "{before} {made}");
        assert_eq!(id_time("msg_not-a-ulid"), None);
        assert_eq!(id_time("no-prefix"), None);
    }

    #[test]
    fn the_floor_of_a_time_separates_earlier_ids_from_later_ones() {
        let before = new_id(ATTEMPT);
        std::thread::sleep(std::time::Duration::from_millis(2));
        let floor = id_floor(ATTEMPT, crate::time::now_ms());
        let after = new_id(ATTEMPT);
        assert!(before < floor, "{before} < {floor}");
        assert!(floor <= after, "{floor} <= {after}");
        assert!(id_floor(ATTEMPT, 0) < before);
    }
}
