//! Store errors, sorted by what the caller can do about them.

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row asked for does not exist (or is not the caller's to see).
    #[error("not found")]
    NotFound,
    /// A uniqueness rule was broken (a name already taken).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database cannot be reached or written right now (down, full, locked); retrying
    /// later may succeed. The API answers 503 `storage_unavailable`.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The change would go over a limit of the settings; nothing was changed.
    #[error("{1}")]
    Limit(Limit, String),
    /// Start-up settings are wrong.
    #[error("{0}")]
    Config(String),
    /// Anything else: a bug or corrupt data.
    #[error("storage error: {0}")]
    Internal(String),
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
    /// The same error again, for answering every caller that shared a failed transaction.
    pub fn duplicate(&self) -> Self {
        match self {
            Self::NotFound => Self::NotFound,
            Self::Conflict(m) => Self::Conflict(m.clone()),
            Self::Unavailable(m) => Self::Unavailable(m.clone()),
            Self::Limit(limit, m) => Self::Limit(*limit, m.clone()),
            Self::Config(m) => Self::Config(m.clone()),
            Self::Internal(m) => Self::Internal(m.clone()),
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
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
                    Self::Unavailable(db.message().to_owned())
                } else {
                    Self::Internal(e.to_string())
                }
            }
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_) => Self::Unavailable(e.to_string()),
            _ => Self::Internal(e.to_string()),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        Self::Internal(format!("migration failed: {e}"))
    }
}

impl From<StoreError> for agora_core::dispatcher::QueueError {
    fn from(e: StoreError) -> Self {
        Self(e.to_string())
    }
}
