//! What keeps password logins from being guessed or from exhausting the server: attempts are
//! limited per account and per client address (429 `rate_limited` with `Retry-After`, checked
//! before any hashing), and password hashes (argon2id, about 19 MiB each) are computed a few
//! at a time on blocking threads, so memory is bounded whatever the flood; the rest wait.

use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::error::{ApiError, ApiResult};
use crate::ratelimit::{per_minute, Buckets};

/// The settings of a [`LoginGuard`].
#[derive(Clone, Copy, Debug)]
pub struct LoginLimits {
    /// Attempts a minute for one account (also the burst); 0: unlimited.
    pub per_account_per_minute: u32,
    /// Attempts a minute from one address, an IPv6 /64 counting as one (also the burst); 0:
    /// unlimited.
    pub per_address_per_minute: u32,
    /// Password hashes computed at once.
    pub max_concurrent_hashes: usize,
}

/// Login limits and the password hashing pool, shared by every request; cheap to clone.
#[derive(Clone)]
pub struct LoginGuard {
    /// Keyed by a hash of the login as typed, lower-cased: the name never stays in memory,
    /// and a flood of distinct names costs a few bytes each until its bucket refills.
    accounts: Buckets<u64>,
    addresses: Buckets<IpAddr>,
    /// Keys the account hash per process, so colliding names cannot be chosen in advance.
    seed: std::collections::hash_map::RandomState,
    hashes: Arc<Semaphore>,
}

impl LoginGuard {
    /// A guard with these limits.
    pub fn new(limits: LoginLimits) -> Self {
        Self {
            accounts: Buckets::new(per_minute(limits.per_account_per_minute)),
            addresses: Buckets::new(per_minute(limits.per_address_per_minute)),
            seed: Default::default(),
            hashes: Arc::new(Semaphore::new(limits.max_concurrent_hashes.max(1))),
        }
    }

    /// Counts one login attempt for `login` from `peer`, or answers 429 when either has had
    /// its share. The address is checked first, so a flood from one address does not use up
    /// the accounts it names.
    pub fn admit(&self, login: &str, peer: Option<IpAddr>) -> ApiResult<()> {
        if let Some(address) = peer.map(network) {
            self.addresses
                .check(&address)
                .map_err(|seconds| ApiError::rate_limited("logins from this address", seconds))?;
        }
        let account = self.seed.hash_one(login.trim().to_lowercase());
        self.accounts
            .check(&account)
            .map_err(|seconds| ApiError::rate_limited("logins to this account", seconds))
    }

    /// Runs `work` (a password hash or verification) on a blocking thread once one of the
    /// hashing places is free.
    pub async fn hash<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> ApiResult<T> {
        // The semaphore is never closed, so a permit always comes.
        let _permit = self
            .hashes
            .acquire()
            .await
            .map_err(|_| ApiError::internal("the password hashing pool closed"))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(ApiError::internal)
    }
}

/// The network an address stands for: itself for IPv4, its /64 for IPv6 (one subscriber
/// usually holds a whole /64, so single IPv6 addresses would each get a fresh budget).
fn network(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & (u128::MAX << 64)).into()),
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(per_account: u32, per_address: u32) -> LoginGuard {
        LoginGuard::new(LoginLimits {
            per_account_per_minute: per_account,
            per_address_per_minute: per_address,
            max_concurrent_hashes: 1,
        })
    }

    #[test]
    fn an_account_is_limited_whatever_its_spelling_and_others_are_not() {
        let g = guard(3, 0);
        for login in ["alice", "Alice", " ALICE "] {
            assert!(g.admit(login, None).is_ok());
        }
        assert_eq!(g.admit("alice", None).unwrap_err().code(), "rate_limited");
        assert!(g.admit("bob", None).is_ok());
    }

    #[test]
    fn an_address_is_limited_across_accounts_and_an_ipv6_64_counts_once() {
        let g = guard(0, 2);
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        assert!(g.admit("alice", Some(a)).is_ok());
        assert!(g.admit("bob", Some(b)).is_ok());
        assert!(g.admit("carol", Some(a)).is_err());
        assert!(g
            .admit("carol", Some("2001:db8:1:3::1".parse().unwrap()))
            .is_ok());
    }

    #[tokio::test]
    async fn no_more_hashes_run_at_once_than_allowed() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let g = LoginGuard::new(LoginLimits {
            per_account_per_minute: 0,
            per_address_per_minute: 0,
            max_concurrent_hashes: 2,
        });
        let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let hashes = (0..16).map(|_| {
            let (g, running, most) = (g.clone(), running.clone(), most.clone());
            tokio::spawn(async move {
                g.hash(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(std::time::Duration::from_millis(5));
                    running.fetch_sub(1, Ordering::SeqCst);
                })
                .await
            })
        });
        for hash in hashes.collect::<Vec<_>>() {
            hash.await.unwrap().unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn networks_keep_ipv4_and_cut_ipv6_to_64_bits() {
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(network(v4), v4);
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(network(mapped), v4);
        let v6: IpAddr = "2001:db8:1:2:3:4:5:6".parse().unwrap();
        assert_eq!(network(v6), "2001:db8:1:2::".parse::<IpAddr>().unwrap());
    }
}
