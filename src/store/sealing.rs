//! Secrets at rest: signing keys and identity-provider client secrets are
//! stored encrypted with AES-256-GCM under the key-encryption key of
//! `--secret-key-file`. Each record gets a fresh random nonce, and names the
//! record it belongs to as associated data, so a sealed value copied onto
//! another row does not open.
//!
//! A sealed value is text: `sealed:v1:` and base64 of nonce ‖ ciphertext ‖ tag.

use std::sync::Arc;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::{StoreError, StoreResult};

const PREFIX: &str = "sealed:v1:";
pub const KEY_LEN: usize = 32;

/// The key-encryption key, ready to seal and open.
#[derive(Clone)]
pub struct Sealer {
    key: Arc<LessSafeKey>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(<redacted>)")
    }
}

/// Whether stored text is sealed (rather than a clear value from an older version).
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(PREFIX)
}

impl Sealer {
    pub fn new(key: &[u8; KEY_LEN]) -> StoreResult<Self> {
        let unbound = UnboundKey::new(&AES_256_GCM, key)
            .map_err(|_| StoreError::Sealing("the secret key is unusable".to_string()))?;
        Ok(Self {
            key: Arc::new(LessSafeKey::new(unbound)),
        })
    }

    /// Encrypts `plain` for the record named `record`.
    pub fn seal(&self, plain: &str, record: &str) -> StoreResult<String> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce)
            .map_err(|_| StoreError::Sealing("no randomness for a nonce".to_string()))?;
        let mut sealed = plain.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(record.as_bytes()),
                &mut sealed,
            )
            .map_err(|_| StoreError::Sealing(format!("cannot seal {record}")))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(format!("{PREFIX}{}", STANDARD.encode(out)))
    }

    /// Decrypts a value sealed for `record`; fails on a wrong key or a moved value.
    pub fn open(&self, stored: &str, record: &str) -> StoreResult<String> {
        let unreadable = || {
            StoreError::Sealing(format!(
                "{record} does not open with the configured secret key"
            ))
        };
        let encoded = stored.strip_prefix(PREFIX).ok_or_else(unreadable)?;
        let mut bytes = STANDARD.decode(encoded).map_err(|_| unreadable())?;
        if bytes.len() < NONCE_LEN {
            return Err(unreadable());
        }
        let mut sealed = bytes.split_off(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = bytes.try_into().map_err(|_| unreadable())?;
        let plain = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(record.as_bytes()),
                &mut sealed,
            )
            .map_err(|_| unreadable())?;
        String::from_utf8(plain.to_vec()).map_err(|_| unreadable())
    }
}

impl super::Store {
    /// Runs `update` (`$1` the row's key, `$2` the new value, `$3` the value
    /// read) so a row changed since it was read is left alone.
    pub(super) async fn replace_if_unchanged(
        &self,
        update: &str,
        key: &str,
        new: &str,
        read: &str,
    ) -> StoreResult<()> {
        super::with_pool!(self, |pool| {
            sqlx::query(update)
                .bind(key)
                .bind(new)
                .bind(read)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(())
    }

    /// Whether `count` (a `SELECT COUNT(*) …`) counts any row.
    pub(super) async fn any_row(&self, count: &str) -> StoreResult<bool> {
        let rows: i64 = super::with_pool!(self, |pool| {
            sqlx::query_scalar(count).fetch_one(pool).await?
        });
        Ok(rows > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer(byte: u8) -> Sealer {
        Sealer::new(&[byte; KEY_LEN]).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn opens_what_it_sealed_only_for_the_same_record_and_key() {
        let sealed = sealer(1)
            .seal("private", "signing key a")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(is_sealed(&sealed));
        assert!(!sealed.contains("private"));
        assert_eq!(
            sealer(1).open(&sealed, "signing key a").ok().as_deref(),
            Some("private")
        );
        assert!(sealer(1).open(&sealed, "signing key b").is_err());
        assert!(sealer(2).open(&sealed, "signing key a").is_err());
        assert!(sealer(1).open("sealed:v1:AAAA", "signing key a").is_err());
    }

    #[test]
    fn every_seal_uses_a_fresh_nonce() {
        let one = sealer(1)
            .seal("same", "r")
            .unwrap_or_else(|e| panic!("{e}"));
        let two = sealer(1)
            .seal("same", "r")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(one, two);
    }
}
