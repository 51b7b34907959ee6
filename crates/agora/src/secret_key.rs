//! The key that seals webhook secrets at rest: `AGORA_SECRET_KEY`, else
//! `{data dir}/secret.key`, generated (mode 0600) on the first start. Loaded once, at start.
//!
//! The key never goes into the database it protects, nor into a log line or an error message.
//! Losing it loses every stored webhook secret (webhooks then need `rotate-secret`); every node
//! of a PostgreSQL cluster needs the same one.

use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;

use agora_store::secretbox::SecretBox;

use crate::Config;

/// Where the generated key lives.
pub fn key_path(data_dir: &Path) -> PathBuf {
    data_dir.join("secret.key")
}

/// The secret box for this node's key, generating and saving a key when there is none.
pub fn load(config: &Config) -> anyhow::Result<SecretBox> {
    if let Some(key) = &config.secret_key {
        return SecretBox::from_hex(key.expose()).context("AGORA_SECRET_KEY is invalid");
    }
    let path = key_path(&config.data_dir);
    match read(&path) {
        Ok(Some(secret_box)) => return Ok(secret_box),
        Ok(None) => {}
        Err(e) => return Err(e),
    }
    let (secret_box, text) = SecretBox::generate();
    match create_new(&path, &text) {
        Ok(()) => {
            tracing::info!(path = %path.display(), "generated the key that seals webhook secrets");
            if config.database_url.is_some() {
                tracing::warn!(
                    "a generated secret.key is local to this node: every node sharing the \
                     database needs the same key (set AGORA_SECRET_KEY on each)"
                );
            }
            Ok(secret_box)
        }
        // Another process made it between our read and our write: use theirs.
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            read(&path)?.context("secret.key appeared empty")
        }
        Err(e) => Err(e).with_context(|| format!("cannot write {}", path.display())),
    }
}

fn read(path: &Path) -> anyhow::Result<Option<SecretBox>> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            warn_if_readable_by_others(path);
            SecretBox::from_hex(&text)
                .map(Some)
                .with_context(|| format!("{} is invalid", path.display()))
        }
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Writes a new key file only its owner can read; never replaces an existing one (that would
/// make every stored secret unreadable).
fn create_new(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    "the secret key file is readable by other users; chmod 600 it"
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}
