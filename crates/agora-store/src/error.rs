//! Store errors, sorted by what the caller can do about them, each keeping its cause.

use std::error::Error;
use std::sync::Arc;

/// The cause of a store error, kept whole for the log (`source()`), and shared so that one
/// failed transaction can answer every caller that joined it.
pub type Cause = Arc<dyn Error + Send + Sync>;

/// Why a store operation failed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    /// The row asked for does not exist (or is not the caller's to see).
    #[error("not found")]
    NotFound,
    /// A uniqueness rule was broken (a name already taken).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database cannot be reached or written right now (down, full, locked); retrying
    /// later may succeed. The API answers 503 `storage_unavailable`.
    #[error("storage unavailable: {reason}")]
    Unavailable {
        /// What could not be done.
        reason: String,
        /// Why, when another error said so.
        #[source]
        cause: Option<Cause>,
    },
    /// The request's idempotency key was recorded by another request (the first with that key,
    /// committed or still running); nothing was changed.
    #[error("the idempotency key was recorded by another request")]
    IdempotencyKeyTaken,
    /// The change would go over a limit of the settings; nothing was changed.
    #[error("{1}")]
    Limit(Limit, String),
    /// Start-up settings are wrong.
    #[error("{reason}")]
    Config {
        /// What is wrong.
        reason: String,
        /// Why, when another error said so.
        #[source]
        cause: Option<Cause>,
    },
    /// Anything else: a bug or corrupt data.
    #[error("storage error: {reason}")]
    Internal {
        /// What could not be done.
        reason: String,
        /// Why, when another error said so.
        #[source]
        cause: Option<Cause>,
    },
}

/// Which limit a refused change would have gone over, so the API can name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// The webhooks one API key may own.
    WebhooksPerKey,
    /// The deliveries one request may create.
    DeliveriesPerRequest,
}

impl StoreError {
    /// Storage that cannot be used right now, for `reason`.
    pub fn unavailable(reason: impl Into<String>) -> Self {
        Self::Unavailable {
            reason: reason.into(),
            cause: None,
        }
    }

    /// Wrong settings, for `reason`.
    pub fn config(reason: impl Into<String>) -> Self {
        Self::Config {
            reason: reason.into(),
            cause: None,
        }
    }

    /// A bug or corrupt data, for `reason`.
    pub fn internal(reason: impl Into<String>) -> Self {
        Self::Internal {
            reason: reason.into(),
            cause: None,
        }
    }

    /// The same error, caused by `cause` (kept as its `source()`).
    pub fn because(self, cause: impl Error + Send + Sync + 'static) -> Self {
        let cause: Option<Cause> = Some(Arc::new(cause));
        match self {
            Self::Unavailable { reason, .. } => Self::Unavailable { reason, cause },
            Self::Config { reason, .. } => Self::Config { reason, cause },
            Self::Internal { reason, .. } => Self::Internal { reason, cause },
            other => other,
        }
    }
}

/// Every database call that fails is counted here, as it becomes a store error: the
/// `agora_storage_errors_total` series ([`crate::metrics`]).
impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        let error = Self::from_database(e);
        match &error {
            Self::Unavailable { .. } => crate::metrics::storage_error(true),
            Self::Internal { .. } => crate::metrics::storage_error(false),
            _ => {}
        }
        error
    }
}

impl StoreError {
    /// Sorts a database error by what the caller can do about it.
    fn from_database(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::RowNotFound => Self::NotFound,
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                Self::Conflict(db.message().to_owned())
            }
            sqlx::Error::Database(db) => {
                let code = db.code().unwrap_or_default();
                // SQLite: BUSY 5, LOCKED 6, NOMEM 7, READONLY 8, IOERR 10, FULL 13, CANTOPEN 14.
                // PostgreSQL: class 08 connection, 53 insufficient resources, 57 operator intervention.
                let transient = matches!(code.as_ref(), "5" | "6" | "7" | "8" | "10" | "13" | "14")
                    || code.starts_with("08")
                    || code.starts_with("53")
                    || code.starts_with("57")
                    || (code.len() > 2
                        && code
                            .parse::<u32>()
                            .is_ok_and(|c| matches!(c & 0xff, 5 | 6 | 10 | 13 | 14)));
                if transient {
                    Self::unavailable(db.message().to_owned()).because(e)
                } else {
                    Self::internal("the database refused a statement").because(e)
                }
            }
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_) => {
                Self::unavailable("the database cannot be reached").because(e)
            }
            _ => Self::internal("a database call failed").because(e),
        }
    }
}

/// A stored id of the wrong kind: corrupt data.
impl From<agora_core::ids::InvalidId> for StoreError {
    fn from(e: agora_core::ids::InvalidId) -> Self {
        Self::internal("corrupt id").because(e)
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        Self::internal("migration failed").because(e)
    }
}

impl From<StoreError> for agora_core::dispatcher::QueueError {
    fn from(e: StoreError) -> Self {
        Self(Box::new(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_error_is_kept_as_the_source() {
        let e = StoreError::from(sqlx::Error::PoolTimedOut);
        assert!(matches!(e, StoreError::Unavailable { .. }));
        let source = e.source().expect("the sqlx error is kept");
        assert_eq!(source.to_string(), sqlx::Error::PoolTimedOut.to_string());
        let shared = e.clone();
        assert!(shared.source().is_some(), "clones keep it too");
    }
}
