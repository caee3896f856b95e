//! Application tokens: RS256 JWTs signed with a per-account key, the keys
//! that sign them, and their verification.
//!
//! The newest key of an account signs. Rotation retires it; a retired key
//! keeps verifying (and stays in `/cdn-cgi/access/certs`) for a week, so
//! tokens issued just before a rotation stay valid.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::domain::{AccountId, Timestamp};
use crate::store::keys::StoredKey;
use crate::store::{Store, StoreError, StoreResult};

/// How long a retired key keeps verifying.
pub const RETIRED_KEY_GRACE_SECONDS: i64 = 7 * 24 * 3600;

/// The claims of an application token, as Cloudflare Access issues them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppClaims {
    pub aud: Vec<String>,
    pub email: String,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub iss: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub identity_nonce: String,
    pub sub: String,
    pub country: String,
    /// The Client ID, in a token minted for a service token (then `sub` is empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common_name: Option<String>,
}

/// A public key as a JWK of `/cdn-cgi/access/certs`.
#[derive(Clone, Debug, Serialize)]
pub struct Jwk {
    pub kid: String,
    pub kty: &'static str,
    pub alg: &'static str,
    #[serde(rename = "use")]
    pub usage: &'static str,
    pub e: String,
    pub n: String,
}

/// The public half as a JWK; read from storage, so checking a token never
/// has to parse the private key.
pub fn jwk(stored: &StoredKey) -> Jwk {
    Jwk {
        kid: stored.kid.clone(),
        kty: "RSA",
        alg: "RS256",
        usage: "sig",
        e: stored.public_e.clone(),
        n: stored.public_n.clone(),
    }
}

/// The least time between two rotations asked for over the API: each one
/// costs a key generation and adds a key every validator must fetch and
/// keep for a week.
pub const MIN_SECONDS_BETWEEN_ROTATIONS: i64 = 60;

/// What a rotation asked for over the API did.
pub enum Rotation {
    Rotated(StoredKey),
    /// The last rotation is too recent; try again in this many seconds.
    TooSoon {
        retry_after_seconds: i64,
    },
}

async fn generate(account: &AccountId) -> StoreResult<StoredKey> {
    let account_id = account.to_string();
    // Key generation takes a moment of CPU; keep it off the async workers.
    tokio::task::spawn_blocking(move || super::signing_key::generate(account_id))
        .await
        .map_err(|e| StoreError::Corrupt(format!("key generation task: {e}")))?
}

/// Makes a new RSA key for the account and makes it the signing key.
pub async fn rotate(store: &Store, account: &AccountId) -> StoreResult<StoredKey> {
    let key = generate(account).await?;
    store.install_signing_key(&key).await?;
    Ok(key)
}

/// A rotation asked for over the API: refused within
/// [`MIN_SECONDS_BETWEEN_ROTATIONS`] of the previous rotation.
pub async fn rotate_on_request(store: &Store, account: &AccountId) -> StoreResult<Rotation> {
    let too_soon = |last: Timestamp| Rotation::TooSoon {
        retry_after_seconds: (last.unix_seconds() + MIN_SECONDS_BETWEEN_ROTATIONS
            - Timestamp::now().unix_seconds())
        .max(1),
    };
    let cutoff = Timestamp::now().plus_seconds(-MIN_SECONDS_BETWEEN_ROTATIONS);
    if let Some(last) = store.last_key_rotation(account).await?
        && last > cutoff
    {
        return Ok(too_soon(last));
    }
    let key = generate(account).await?;
    if store.replace_signing_key(&key, cutoff).await? {
        return Ok(Rotation::Rotated(key));
    }
    // Another rotation won the race.
    let last = store.last_key_rotation(account).await?;
    Ok(too_soon(last.unwrap_or_else(Timestamp::now)))
}

/// Rotates the keys of accounts whose key is older than their rotation
/// interval, and deletes keys retired too long ago to verify anything.
pub async fn maintain_keys(store: &Store) -> StoreResult<(usize, u64)> {
    let now = Timestamp::now();
    let due = store.accounts_due_for_rotation(now).await?;
    let mut rotated = 0;
    for account in due {
        let Some(account) = AccountId::parse(&account) else {
            tracing::warn!(%account, "signing key of a malformed account id left alone");
            continue;
        };
        rotate(store, &account).await?;
        rotated += 1;
    }
    let deleted = store
        .delete_retired_signing_keys(now.plus_seconds(-RETIRED_KEY_GRACE_SECONDS))
        .await?;
    Ok((rotated, deleted))
}

/// An account's first key is made by one request of this process at a time:
/// a burst of first requests (its certificates are public) then costs one
/// key generation, not one per request. Other processes are kept from
/// installing a second current key by the database's unique index.
static FIRST_KEY_MAKER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The account's signing key, made on first use.
pub async fn signing_key(store: &Store, account: &AccountId) -> StoreResult<StoredKey> {
    if let Some(key) = current_key(store, account).await? {
        return Ok(key);
    }
    let _one_at_a_time = FIRST_KEY_MAKER.lock().await;
    if let Some(key) = current_key(store, account).await? {
        return Ok(key);
    }
    let key = generate(account).await?;
    if store.install_first_signing_key(&key).await? {
        return Ok(key);
    }
    // Another process made it meanwhile: use that one.
    current_key(store, account)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("account {account} lost its new signing key")))
}

async fn current_key(store: &Store, account: &AccountId) -> StoreResult<Option<StoredKey>> {
    let keys = store.signing_keys(account, Timestamp::now()).await?;
    Ok(keys.into_iter().find(|k| k.retired_at.is_none()))
}

/// The keys a validator should accept now: the signing key and recently retired ones.
pub async fn verifying_keys(store: &Store, account: &AccountId) -> StoreResult<Vec<StoredKey>> {
    let now = Timestamp::now();
    let keys = store
        .signing_keys(account, now.plus_seconds(-RETIRED_KEY_GRACE_SECONDS))
        .await?;
    if keys.is_empty() {
        return Ok(vec![signing_key(store, account).await?]);
    }
    Ok(keys)
}

pub fn mint(key: &StoredKey, claims: &AppClaims) -> StoreResult<String> {
    let encoding = EncodingKey::from_rsa_pem(key.private_pem.as_bytes())
        .map_err(|e| StoreError::Corrupt(format!("signing key: {e}")))?;
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(key.kid.clone());
    header.typ = Some("JWT".to_string());
    jsonwebtoken::encode(&header, claims, &encoding)
        .map_err(|e| StoreError::Corrupt(format!("signing: {e}")))
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("the token is malformed or not signed by a key of ours")]
    Unverifiable,
    #[error("the token is expired or not yet valid")]
    OutOfTime,
    #[error("the token is for another application")]
    WrongAudience,
}

/// The `kid` of an RS256 token: the key it claims to be signed with.
pub fn signing_kid(token: &str) -> Result<String, Rejection> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| Rejection::Unverifiable)?;
    if header.alg != Algorithm::RS256 {
        return Err(Rejection::Unverifiable);
    }
    header.kid.ok_or(Rejection::Unverifiable)
}

/// The public half of a stored key, parsed once for verifying.
pub fn decoding_key(stored: &StoredKey) -> Result<DecodingKey, Rejection> {
    DecodingKey::from_rsa_components(&stored.public_n, &stored.public_e)
        .map_err(|_| Rejection::Unverifiable)
}

/// The claims of a token signed by `key`, with every claim Access sets
/// present. What does not change with time: the caller checks time and
/// audience with [`check_current`], and the issuer against the key's account.
pub fn verify_signature(key: &DecodingKey, token: &str) -> Result<AppClaims, Rejection> {
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.set_required_spec_claims(&["exp", "iat", "nbf", "iss", "aud", "sub"]);
    jsonwebtoken::decode::<AppClaims>(token, key, &validation)
        .map(|data| data.claims)
        .map_err(|_| Rejection::Unverifiable)
}

/// Whether a token whose signature holds may be used `now`: its key has
/// not been retired past the grace period, `nbf <= now <= exp`, and it is
/// for `audience` when one is given.
pub fn check_current(
    claims: &AppClaims,
    key_retired_at: Option<Timestamp>,
    now: Timestamp,
    audience: Option<&str>,
) -> Result<(), Rejection> {
    if key_retired_at.is_some_and(|at| now >= at.plus_seconds(RETIRED_KEY_GRACE_SECONDS)) {
        return Err(Rejection::Unverifiable);
    }
    let seconds = now.unix_seconds();
    if claims.exp < seconds || claims.nbf > seconds {
        return Err(Rejection::OutOfTime);
    }
    if let Some(audience) = audience
        && !claims.aud.iter().any(|aud| aud == audience)
    {
        return Err(Rejection::WrongAudience);
    }
    Ok(())
}
