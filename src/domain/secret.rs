//! Bearer secrets: minting, shape checks and hashing.
//!
//! A secret is `cfat_` (account-owned token) or `cfut_` (user-level token,
//! which is what the admin token is) followed by 40 random base62 characters
//! and a 6-character checksum. The checksum lets the server reject a mistyped
//! or made-up secret without touching the database. Only the SHA-256 of a
//! secret is ever stored; secrets have 238 bits of entropy, so a fast hash is
//! the right tool and lookups go straight to an index on it.

use rand::Rng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const RANDOM_LEN: usize = 40;
const CHECKSUM_LEN: usize = 6;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretKind {
    AccountToken,
    UserToken,
    /// The bearer secret an identity provider presents to the SCIM service.
    Scim,
}

impl SecretKind {
    fn prefix(self) -> &'static str {
        match self {
            SecretKind::AccountToken => "cfat_",
            SecretKind::UserToken => "cfut_",
            SecretKind::Scim => "scim_",
        }
    }
}

/// A freshly minted secret. It is shown to the caller once and then dropped.
pub struct NewSecret {
    pub value: String,
    pub hash: SecretHash,
}

impl std::fmt::Debug for NewSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewSecret(<redacted>)")
    }
}

pub fn mint(kind: SecretKind) -> NewSecret {
    let mut rng = rand::rngs::OsRng;
    let body: String = (0..RANDOM_LEN)
        .map(|_| char::from(BASE62[rng.gen_range(0..BASE62.len())]))
        .collect();
    let head = format!("{}{body}", kind.prefix());
    let value = format!("{head}{}", checksum(&head));
    let hash = SecretHash::of(&value);
    NewSecret { value, hash }
}

fn checksum(head: &str) -> String {
    let digest = Sha256::digest(head.as_bytes());
    digest
        .iter()
        .take(CHECKSUM_LEN)
        .map(|b| char::from(BASE62[usize::from(*b) % BASE62.len()]))
        .collect()
}

/// What the `Authorization: Bearer` value may look like at all: a legacy
/// 40-character token or a prefixed one. Anything else is a malformed header.
pub fn has_token_shape(raw: &str) -> bool {
    let legacy = raw.len() == RANDOM_LEN
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    let prefixed = (raw.starts_with("cfat_") || raw.starts_with("cfut_"))
        && raw.len() > 5 + RANDOM_LEN
        && raw.bytes().skip(5).all(|b| b.is_ascii_alphanumeric());
    legacy || prefixed
}

/// True when the secret could have been minted here (prefix, length and checksum agree).
pub fn is_plausible(raw: &str) -> bool {
    if raw.len() != 5 + RANDOM_LEN + CHECKSUM_LEN || !has_token_shape(raw) {
        return false;
    }
    let (head, sum) = raw.split_at(5 + RANDOM_LEN);
    bool::from(checksum(head).as_bytes().ct_eq(sum.as_bytes()))
}

pub fn kind_of(raw: &str) -> Option<SecretKind> {
    if raw.starts_with("cfat_") {
        Some(SecretKind::AccountToken)
    } else if raw.starts_with("cfut_") {
        Some(SecretKind::UserToken)
    } else {
        None
    }
}

/// SHA-256 of a secret, as lowercase hex.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretHash(String);

impl SecretHash {
    pub fn of(secret: &str) -> Self {
        Self(hex::encode(Sha256::digest(secret.as_bytes())))
    }

    pub fn from_stored(hex: String) -> Self {
        Self(hex)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn matches(&self, other: &SecretHash) -> bool {
        bool::from(self.0.as_bytes().ct_eq(other.0.as_bytes()))
    }
}

impl std::fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretHash(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_secrets_are_plausible_and_distinct() {
        let a = mint(SecretKind::AccountToken);
        let b = mint(SecretKind::AccountToken);
        assert!(a.value.starts_with("cfat_"));
        assert_eq!(a.value.len(), 51);
        assert!(is_plausible(&a.value));
        assert_ne!(a.value, b.value);
        assert!(a.hash.matches(&SecretHash::of(&a.value)));
        assert!(!a.hash.matches(&b.hash));
    }

    #[test]
    fn a_changed_character_breaks_the_checksum() {
        let secret = mint(SecretKind::UserToken).value;
        let mut bytes = secret.into_bytes();
        bytes[10] = if bytes[10] == b'a' { b'b' } else { b'a' };
        let altered = String::from_utf8(bytes).unwrap_or_default();
        assert!(has_token_shape(&altered));
        assert!(!is_plausible(&altered));
    }

    #[test]
    fn shapes() {
        assert!(has_token_shape(&"a".repeat(40)));
        assert!(has_token_shape("Ab-_Ab-_Ab-_Ab-_Ab-_Ab-_Ab-_Ab-_Ab-_Ab-_"));
        assert!(!has_token_shape(&"a".repeat(37)));
        assert!(!has_token_shape("cfat_short"));
        assert!(!has_token_shape(
            "not a token at all, with spaces in it...."
        ));
    }
}
