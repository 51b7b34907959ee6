//! SQLite: deliveries queued already leased to this node but not yet in its dispatcher's memory
//! ("parked"), read back without writing anything.
//!
//! On one SQLite node the claim's lease `UPDATE`, its commit and its windows over the due index
//! were a large share of the single writer's statement time. So a delivery published while its
//! webhook has no room in the dispatcher is written `in_flight` with attempt 1, no lease owner
//! and no `due_at`, and a claim reads a webhook's parked deliveries back in the order they were
//! queued, through the `(webhook_id, id)` index: ids increase in the order they are made
//! ([`new_id`](agora_core::ids::new_id)), and this register keeps, per webhook with parked
//! deliveries, the id the next read starts from.
//!
//! Two rules keep a read from returning a delivery twice or missing one:
//! - while a webhook has parked deliveries, its new deliveries are parked too (never handed
//!   over), so every in-flight row after its cursor is parked;
//! - the register is read and changed only while the single write connection is held
//!   (publishes decide inside their transaction, claims hold it across their reads), so a
//!   read sees every parked row a finished publish wrote and none is being written meanwhile.
//!   A publish that rolls back leaves a cursor at an id that never existed, which reads the
//!   same.
//!
//! A webhook leaves the register when a read finds fewer rows than it asked for. A crash or a
//! shutdown gives parked deliveries back as it gives back any lease.

use std::collections::HashMap;
use std::sync::Mutex;

/// Where the next read of a webhook's parked deliveries starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Cursor {
    /// At this id (the first delivery parked since the webhook was last drained).
    From(String),
    /// After this id (the last delivery read).
    After(String),
}

/// The webhooks with parked deliveries, and where each one's next read starts.
#[derive(Default)]
pub(crate) struct Parked(Mutex<HashMap<String, Cursor>>);

impl Parked {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Cursor>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether `webhook_id` has parked deliveries (then its new ones must be parked too).
    pub(crate) fn holds(&self, webhook_id: &str) -> bool {
        self.lock().contains_key(webhook_id)
    }

    /// Notes a delivery parked for `webhook_id`; the first one since the webhook was drained
    /// is where the next read starts.
    pub(crate) fn park(&self, webhook_id: &str, id: &str) {
        self.lock()
            .entry(webhook_id.to_owned())
            .or_insert_with(|| Cursor::From(id.to_owned()));
    }

    /// The webhooks with parked deliveries, except `skip`, with their cursors.
    pub(crate) fn readable(&self, skip: &[String]) -> Vec<(String, Cursor)> {
        self.lock()
            .iter()
            .filter(|(webhook_id, _)| !skip.contains(webhook_id))
            .map(|(webhook_id, cursor)| (webhook_id.clone(), cursor.clone()))
            .collect()
    }

    /// Moves a webhook's cursor after a read: past `last`, the greatest id read, or out of the
    /// register when the read found fewer rows than it asked for.
    pub(crate) fn advance(&self, webhook_id: &str, last: Option<String>, drained: bool) {
        let mut parked = self.lock();
        if drained {
            parked.remove(webhook_id);
        } else if let Some(last) = last {
            parked.insert(webhook_id.to_owned(), Cursor::After(last));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_webhook_stays_parked_until_a_read_comes_up_short() {
        let parked = Parked::default();
        assert!(!parked.holds("wh_a"));
        parked.park("wh_a", "msg_1");
        parked.park("wh_a", "msg_2");
        assert_eq!(
            parked.readable(&[]),
            vec![("wh_a".to_owned(), Cursor::From("msg_1".to_owned()))]
        );
        parked.advance("wh_a", Some("msg_2".to_owned()), false);
        assert_eq!(
            parked.readable(&[]),
            vec![("wh_a".to_owned(), Cursor::After("msg_2".to_owned()))]
        );
        assert!(parked.readable(&["wh_a".to_owned()]).is_empty());
        parked.advance("wh_a", None, true);
        assert!(!parked.holds("wh_a"));
    }
}
