//! The key-encryption key that seals secrets at rest (see
//! [`crate::store::sealing`]). It lives in its own owner-only file, by
//! default next to the SQLite database, so a copy of the database alone
//! does not reveal signing keys or client secrets. It is made on first
//! start, and never again for a database that already holds sealed secrets.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use sqlx::sqlite::SqliteConnectOptions;

use crate::BoxError;
use crate::private_files;
use crate::store::Store;
use crate::store::sealing::{KEY_LEN, Sealer};

/// The key file of a PostgreSQL database when none is configured.
pub const DEFAULT_FILE_NAME: &str = "accessd-secret.key";

/// `PATH.key` for `sqlite://PATH`; `accessd-secret.key` in the working
/// directory otherwise.
pub fn default_path(database_url: &str) -> PathBuf {
    use std::str::FromStr;
    let sqlite_file = database_url
        .starts_with("sqlite:")
        .then(|| SqliteConnectOptions::from_str(database_url).ok())
        .flatten()
        .map(|options| options.get_filename().to_path_buf())
        .filter(|file| !file.as_os_str().is_empty() && file.as_os_str() != ":memory:");
    match sqlite_file {
        Some(file) => {
            let mut name = file.into_os_string();
            name.push(".key");
            PathBuf::from(name)
        }
        None => PathBuf::from(DEFAULT_FILE_NAME),
    }
}

/// Loads the key at `path` (making it when absent and nothing is sealed
/// yet), seals secrets an older version left in clear, and checks that the
/// key opens every sealed one.
pub async fn unlock(store: Store, path: &Path) -> Result<Store, BoxError> {
    let sealer = match std::fs::read_to_string(path) {
        Ok(text) => {
            private_files::restrict_to_owner(path)?;
            parse(&text).map_err(|why| format!("secret key file {}: {why}", path.display()))?
        }
        Err(err) if err.kind() == ErrorKind::NotFound => {
            if store.has_sealed_signing_keys().await? || store.has_sealed_idp_secrets().await? {
                return Err(format!(
                    "the secret key file {} is missing, but the database holds secrets sealed \
                     with one; restore it from the backup taken with the database, or point \
                     --secret-key-file at it",
                    path.display()
                )
                .into());
            }
            create(path)?
        }
        Err(err) => return Err(format!("secret key file {}: {err}", path.display()).into()),
    };
    let store = store.with_sealer(sealer);
    let wrong_key = |err: crate::store::StoreError| -> BoxError {
        format!(
            "the secret key in {} does not belong to this database ({err}); \
             use the key file backed up with it",
            path.display()
        )
        .into()
    };
    let keys = store.seal_signing_keys_at_rest().await.map_err(wrong_key)?;
    let secrets = store.seal_idp_secrets_at_rest().await.map_err(wrong_key)?;
    if keys + secrets > 0 {
        tracing::info!(
            keys,
            secrets,
            "sealed secrets stored in clear by an older version"
        );
    }
    Ok(store)
}

fn parse(text: &str) -> Result<Sealer, String> {
    let bytes = hex::decode(text.trim()).map_err(|_| "not hexadecimal".to_string())?;
    let key: [u8; KEY_LEN] = bytes
        .try_into()
        .map_err(|_| format!("must hold {KEY_LEN} bytes as {} hex digits", KEY_LEN * 2))?;
    Sealer::new(&key).map_err(|e| e.to_string())
}

fn create(path: &Path) -> Result<Sealer, BoxError> {
    let mut key = [0u8; KEY_LEN];
    aws_lc_rs::rand::fill(&mut key).map_err(|_| "no randomness for a secret key")?;
    if let Some(dir) = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty() && !d.exists())
    {
        private_files::create_dir_owner_only(dir)?;
    }
    let created =
        private_files::publish_new_owner_only(path, format!("{}\n", hex::encode(key)).as_bytes())
            .map_err(|e| format!("cannot create the secret key file {}: {e}", path.display()))?;
    if !created {
        // Another process starting on the same database made it first.
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("secret key file {}: {e}", path.display()))?;
        return Ok(
            parse(&text).map_err(|why| format!("secret key file {}: {why}", path.display()))?
        );
    }
    tracing::warn!(path = %path.display(), "created a new secret key; back it up with the database");
    Ok(Sealer::new(&key)?)
}
