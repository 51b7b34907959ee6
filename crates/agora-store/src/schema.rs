//! The database schema's versions: the migrations embedded in the binary, and which of them
//! each release shipped.
//!
//! A schema version is the number of the latest migration applied. Migrations only go
//! forward and are applied by every start (and by `agora migrate`); a database is never
//! migrated back. An upgrade test builds a database at a release's schema
//! ([`Release::last_migration`]) and starts the current server on it.

use sqlx::migrate::Migrator;

use crate::Backend;

/// A released version of Agora and the last migration it shipped for each engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Release {
    /// The release's version (`CHANGELOG.md` names it).
    pub version: &'static str,
    /// The last SQLite migration it shipped.
    pub sqlite: i64,
    /// The last PostgreSQL migration it shipped.
    pub postgres: i64,
}

impl Release {
    /// The last migration this release shipped for `backend`: its schema version there.
    pub fn last_migration(&self, backend: Backend) -> i64 {
        match backend {
            Backend::Sqlite => self.sqlite,
            Backend::Postgres => self.postgres,
        }
    }
}

/// Every release, oldest first. A release adds itself here with the numbers of its last
/// migrations, so the upgrade from it stays tested.
pub const RELEASES: &[Release] = &[Release {
    version: "0.1.0",
    sqlite: 6,
    postgres: 4,
}];

/// The migrations of `backend` embedded in this binary.
pub fn migrator(backend: Backend) -> Migrator {
    match backend {
        Backend::Sqlite => sqlx::migrate!("./migrations/sqlite"),
        Backend::Postgres => sqlx::migrate!("./migrations/postgres"),
    }
}

/// The schema version this binary brings a `backend` database to: its latest migration.
pub fn latest(backend: Backend) -> i64 {
    migrator(backend)
        .iter()
        .map(|m| m.version)
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_release_names_migrations_this_binary_still_has() {
        for release in RELEASES {
            for backend in [Backend::Sqlite, Backend::Postgres] {
                let last = release.last_migration(backend);
                assert!(
                    migrator(backend).version_exists(last),
                    "{} shipped {backend:?} migration {last}, which is missing",
                    release.version
                );
                assert!(latest(backend) >= last);
            }
        }
    }
}
