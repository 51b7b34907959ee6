//! The deliveries this node's dispatcher holds, and the sweep that gives back the leases it
//! does not.
//!
//! A delivery leased to this node is meant to be in its dispatcher's memory from the moment
//! the lease commits until its attempt is recorded. Publishing commits and hands over in a
//! task no client can cancel, so the two cannot be split; the sweep is the safety net for
//! whatever else could (a bug, a panic between the two): every `lease / 3` it lists the
//! deliveries the store says are leased to this node, and gives back those its dispatcher did
//! not hold at two sweeps in a row with the same attempt number. Two sweeps, because a lease
//! commits a moment before its delivery is noted here (a claim returning, a hand-off).

use std::collections::HashSet;
use std::sync::Mutex;

/// The ids of the deliveries in this node's dispatcher: claimed or handed, and not yet
/// recorded.
#[derive(Default)]
pub(super) struct Held(Mutex<HashSet<String>>);

impl Held {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Notes deliveries that entered the dispatcher.
    pub(super) fn insert<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        let mut held = self.lock();
        held.extend(ids.into_iter().map(str::to_owned));
    }

    /// Forgets deliveries whose attempts were recorded.
    pub(super) fn remove<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        let mut held = self.lock();
        for id in ids {
            held.remove(id);
        }
    }

    /// Keeps, of `leases`, those not held.
    fn unheld(&self, leases: Vec<Lease>) -> HashSet<Lease> {
        let held = self.lock();
        leases
            .into_iter()
            .filter(|(id, _)| !held.contains(id))
            .collect()
    }
}

/// A delivery leased to this node, with the attempt number it is leased for.
pub type Lease = (String, u32);

/// The leases seen unheld at the last sweep.
#[derive(Default)]
pub(super) struct Sweep {
    suspects: HashSet<Lease>,
}

impl Sweep {
    /// Given the leases the store lists for this node now, answers those to give back: unheld
    /// now and at the last sweep, with the same attempt number.
    pub(super) fn stranded(&mut self, held: &Held, leases: Vec<Lease>) -> Vec<Lease> {
        let unheld = held.unheld(leases);
        let (stranded, suspects): (HashSet<Lease>, HashSet<Lease>) = unheld
            .into_iter()
            .partition(|lease| self.suspects.contains(lease));
        self.suspects = suspects;
        let mut stranded: Vec<Lease> = stranded.into_iter().collect();
        stranded.sort();
        stranded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(id: &str, attempt: u32) -> Lease {
        (id.to_owned(), attempt)
    }

    #[test]
    fn a_lease_unheld_at_two_sweeps_in_a_row_is_stranded() {
        let held = Held::default();
        let mut sweep = Sweep::default();
        assert!(sweep.stranded(&held, vec![lease("msg_a", 1)]).is_empty());
        assert_eq!(
            sweep.stranded(&held, vec![lease("msg_a", 1)]),
            vec![lease("msg_a", 1)]
        );
    }

    #[test]
    fn held_deliveries_and_new_attempts_are_not_stranded() {
        let held = Held::default();
        let mut sweep = Sweep::default();
        sweep.stranded(&held, vec![lease("msg_a", 1), lease("msg_b", 1)]);
        held.insert(["msg_a"]);
        assert!(
            sweep
                .stranded(&held, vec![lease("msg_a", 1), lease("msg_b", 2)])
                .is_empty(),
            "msg_a is held now; msg_b is leased for another attempt"
        );
        held.remove(["msg_a"]);
        assert!(sweep.stranded(&held, vec![lease("msg_a", 1)]).is_empty());
        assert_eq!(
            sweep.stranded(&held, vec![lease("msg_a", 1)]),
            vec![lease("msg_a", 1)]
        );
    }
}
