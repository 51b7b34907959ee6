//! `agora backup FILE`: a consistent copy of a SQLite database, taken while its server runs.
//!
//! The copy is made under a temporary name beside `FILE`, synced to disk, then linked to
//! `FILE`, which must not exist: a backup never overwrites a file, and `FILE` never holds a
//! half-written copy. The copy holds no secret key: a restore needs the data directory's
//! `secret.key` (or `AGORA_SECRET_KEY`) too, kept apart from the backups.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::local::Existing;

/// What a backup made.
#[derive(Debug)]
pub struct Backup {
    /// The database copied.
    pub database: PathBuf,
    /// The copy.
    pub file: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
}

/// Copies the database `existing` into the new file `into`.
pub async fn run(existing: &Existing, into: &Path) -> anyhow::Result<Backup> {
    let database = match existing {
        Existing::Sqlite { file, .. } => file,
        Existing::Postgres(_) => anyhow::bail!(
            "the database is PostgreSQL: back it up with pg_dump (docs/operations.md, \
             \"Backups and restore\"); `agora backup` copies SQLite databases"
        ),
    };
    let into =
        std::path::absolute(into).with_context(|| format!("cannot resolve {}", into.display()))?;
    if into.exists() {
        anyhow::bail!(
            "{} already exists; a backup never overwrites a file",
            into.display()
        );
    }
    let name = into
        .file_name()
        .with_context(|| format!("{} is not a file name", into.display()))?;
    let partial = into.with_file_name(format!(
        ".{}.partial-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    remove_if_present(&partial)?;
    let copied = copy(database, &partial, &into).await;
    remove_if_present(&partial)?;
    copied?;
    let bytes = std::fs::metadata(&into)
        .with_context(|| format!("cannot read {}", into.display()))?
        .len();
    Ok(Backup {
        database: database.clone(),
        file: into,
        bytes,
    })
}

/// Copies into `partial`, syncs it, and links it to `into` (which fails if `into` appeared).
async fn copy(database: &Path, partial: &Path, into: &Path) -> anyhow::Result<()> {
    agora_store::backup::vacuum_into(database, partial)
        .await
        .with_context(|| format!("cannot back up {}", database.display()))?;
    std::fs::File::open(partial)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("cannot sync {}", partial.display()))?;
    match std::fs::hard_link(partial, into) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => anyhow::bail!(
            "{} appeared during the backup; a backup never overwrites a file",
            into.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("cannot create {}", into.display())),
    }
    if let Some(dir) = into.parent() {
        // The new directory entry is durable too.
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("cannot sync {}", dir.display()))?;
    }
    Ok(())
}

fn remove_if_present(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != ErrorKind::NotFound => {
            Err(e).with_context(|| format!("cannot remove {}", path.display()))
        }
        _ => Ok(()),
    }
}
