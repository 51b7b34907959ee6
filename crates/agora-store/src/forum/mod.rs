//! The forum's tables. Every function takes a connection ([`Conn`](crate::Conn)) for reads or a
//! transaction ([`Tx`](crate::Tx)) for writes, so that a handler does its change and publishes
//! its event in one [`Publication`](crate::Publication): no event for a change that rolled
//! back.
//!
//! Reads answer the resource types of [`agora_forum::model`] directly, built from one query
//! (plus one batched query for tags or reaction counts), so the API answer and the event data
//! are the same value. Counters move with `SET n = n + 1` in the writing transaction, so they
//! stay exact however many writers run at once.

pub mod categories;
pub mod follows;
pub mod groups;
pub mod posts;
pub mod presence;
pub mod reactions;
pub mod reports;
pub mod sessions;
pub mod tags;
pub mod threads;
pub mod users;

mod rows;

/// A keyset position in a list: the sort value and the id of the last item seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    /// The sort column's value (a time or a position).
    pub value: i64,
    /// The last id seen, breaking ties.
    pub id: String,
}

impl Cursor {
    /// `{value}.{id}`, opaque to clients.
    pub fn encode(&self) -> String {
        format!("{}.{}", self.value, self.id)
    }

    /// Parses [`Cursor::encode`]'s form; anything else is `None`.
    pub fn decode(s: &str) -> Option<Self> {
        let (value, id) = s.split_once('.')?;
        let ok_id = !id.is_empty()
            && id.len() <= 64
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        ok_id.then_some(())?;
        Some(Self {
            value: value.parse().ok()?,
            id: id.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Cursor;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = Cursor {
            value: -42,
            id: "thr_01JD8X3A5C8E1G4J7L0N3Q6S9V".into(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        for bad in [
            "",
            "12",
            "x.thr_1",
            "1.",
            "1.thr_1'--",
            &format!("1.{}", "a".repeat(65)),
        ] {
            assert_eq!(Cursor::decode(bad), None, "{bad:?}");
        }
    }
}
