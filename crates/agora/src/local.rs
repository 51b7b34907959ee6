//! The database of a local command (`agora migrate`, `agora keys create`, `agora backup`):
//! one that exists, never a new one.
//!
//! Only `agora serve` creates a database. A local command run from another directory, or with
//! a mistyped `--data-dir`, would otherwise make a new, empty database there and report
//! success (a key the running server does not know, a backup of nothing); it fails instead,
//! naming the directory it looked in as an absolute path.

use std::path::{Path, PathBuf};

use anyhow::Context;

/// Where a server keeps its database, as the local commands that only read it or change it
/// are told (the same flags and variables as `agora serve`).
#[derive(Clone, Debug, clap::Args)]
pub struct Location {
    /// Directory of the SQLite database and the generated key files.
    #[arg(long, env = "AGORA_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// `postgres://…` when the server runs on PostgreSQL; SQLite in the data directory when
    /// unset.
    #[arg(long, env = "AGORA_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
}

/// An existing database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Existing {
    /// The SQLite file of a data directory.
    Sqlite {
        /// The data directory, absolute.
        data_dir: PathBuf,
        /// Its database file.
        file: PathBuf,
    },
    /// A PostgreSQL database (whose existence its server checks when connecting).
    Postgres(String),
}

impl Existing {
    /// The database of `data_dir` or `database_url`, or an error naming where it was looked
    /// for when there is none.
    pub fn find(data_dir: &Path, database_url: Option<&str>) -> anyhow::Result<Self> {
        if let Some(url) = database_url {
            return Ok(Self::Postgres(url.to_owned()));
        }
        let data_dir = std::path::absolute(data_dir)
            .with_context(|| format!("cannot resolve the data directory {}", data_dir.display()))?;
        let file = agora_store::Store::sqlite_file(&data_dir);
        if !file.is_file() {
            anyhow::bail!(
                "no Agora database in the data directory {} ({} does not exist); give the \
                 server's data directory with --data-dir or AGORA_DATA_DIR (only `agora serve` \
                 creates a database)",
                data_dir.display(),
                file.display()
            );
        }
        Ok(Self::Sqlite { data_dir, file })
    }

    /// The URL to open it with; opening it never creates a SQLite file.
    pub fn url(&self) -> String {
        match self {
            Self::Sqlite { data_dir, .. } => agora_store::Store::existing_sqlite_url(data_dir),
            Self::Postgres(url) => url.clone(),
        }
    }
}

impl Location {
    /// The database this location names, which must exist.
    pub fn existing(&self) -> anyhow::Result<Existing> {
        Existing::find(&self.data_dir, self.database_url.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_database_is_named_by_its_absolute_directory_and_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let relative = Path::new("no-such-dir");
        let err = Existing::find(&dir.path().join(relative), None)
            .expect_err("found a database that does not exist")
            .to_string();
        assert!(
            err.contains(&dir.path().join(relative).display().to_string()),
            "{err}"
        );
        assert!(!dir.path().join(relative).exists());

        let err = Existing::find(relative, None).unwrap_err().to_string();
        let absolute = std::env::current_dir().unwrap().join(relative);
        assert!(err.contains(&absolute.display().to_string()), "{err}");
    }

    #[test]
    fn postgres_is_taken_as_given() {
        let url = "postgres://db.example/agora";
        assert_eq!(
            Existing::find(Path::new("unused"), Some(url)).unwrap(),
            Existing::Postgres(url.to_owned())
        );
    }
}
