//! API keys this process authenticated lately, so a request need not read its key from the
//! database (a read that costs a hop to a reader thread and a page read after every commit).
//!
//! Used on SQLite only, where this process is the database's one server and every revocation
//! goes through it: [`KeyCache::forget`] runs after the revoking commit, and a generation
//! number keeps a read that began before it from caching the key again. PostgreSQL nodes
//! read every time, since another node may revoke a key.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::keys::ApiKey;

/// How long a key is served from memory before it is read again.
const CACHED_FOR: Duration = Duration::from_secs(60);

/// The most keys kept; beyond it the cache starts again empty (keys are made by admins and
/// few; the bound holds whatever happens).
const MAX_CACHED: usize = 10_000;

/// The cache: live keys by the digest of their value.
#[derive(Clone, Default)]
pub(crate) struct KeyCache(Arc<RwLock<Entries>>);

#[derive(Default)]
struct Entries {
    by_digest: HashMap<String, (ApiKey, Instant)>,
    /// Bumped by every revocation.
    generation: u64,
}

impl KeyCache {
    /// The live key whose value has `digest`, if cached lately.
    pub(crate) fn get(&self, digest: &str) -> Option<ApiKey> {
        let entries = self.0.read().unwrap_or_else(|e| e.into_inner());
        let (key, at) = entries.by_digest.get(digest)?;
        (at.elapsed() < CACHED_FOR).then(|| key.clone())
    }

    /// The generation to pass to [`KeyCache::put`], taken before the database is read.
    pub(crate) fn generation(&self) -> u64 {
        self.0.read().unwrap_or_else(|e| e.into_inner()).generation
    }

    /// Caches `key`, read from the database after `generation` was taken, unless a key was
    /// revoked since (the read may predate that revocation).
    pub(crate) fn put(&self, digest: String, key: ApiKey, generation: u64) {
        let mut entries = self.0.write().unwrap_or_else(|e| e.into_inner());
        if entries.generation != generation {
            return;
        }
        if entries.by_digest.len() >= MAX_CACHED {
            entries.by_digest.clear();
        }
        entries.by_digest.insert(digest, (key, Instant::now()));
    }

    /// Drops the key `id` (revoked and committed), and stops reads in flight from caching it.
    pub(crate) fn forget(&self, id: &str) {
        let mut entries = self.0.write().unwrap_or_else(|e| e.into_inner());
        entries
            .by_digest
            .retain(|_, (key, _)| key.id.as_str() != id);
        entries.generation += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agora_core::ids::ApiKeyId;

    fn key(id: &str) -> ApiKey {
        ApiKey {
            id: ApiKeyId::try_from(id.to_owned()).unwrap(),
            name: "k".into(),
            abilities: agora_forum::abilities::Abilities::admin(),
            created_at: 0,
            last_used_at: None,
        }
    }

    #[test]
    fn a_revocation_drops_the_key_and_a_read_that_began_before_it_caches_nothing() {
        let cache = KeyCache::default();
        let id = agora_core::ids::new_id(agora_core::ids::API_KEY);
        cache.put("d1".into(), key(&id), cache.generation());
        assert!(cache.get("d1").is_some());

        let before = cache.generation();
        cache.forget(&id);
        assert!(cache.get("d1").is_none());
        cache.put("d1".into(), key(&id), before);
        assert!(
            cache.get("d1").is_none(),
            "a read older than the revocation"
        );
        cache.put("d1".into(), key(&id), cache.generation());
        assert!(cache.get("d1").is_some());
    }
}
