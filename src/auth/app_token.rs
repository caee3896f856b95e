//! Application tokens: RS256 JWTs signed with a per-account key, the keys
//! that sign them, and their verification.
//!
//! The newest key of an account signs. Rotation retires it; a retired key
//! keeps verifying (and stays in `/cdn-cgi/access/certs`) for a week, so
//! tokens issued just before a rotation stay valid.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::{AccountId, Timestamp};
use crate::store::keys::StoredKey;
use crate::store::{Store, StoreError, StoreResult};

/// How long a retired key keeps verifying.
pub const RETIRED_KEY_GRACE_SECONDS: i64 = 7 * 24 * 3600;
const KEY_BITS: usize = 2048;

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

/// A self-signed X.509 certificate for the key, for validators that want
/// `public_cert` (PEM) rather than a JWK.
fn self_signed_certificate(private: &RsaPrivateKey) -> StoreResult<String> {
    use std::str::FromStr;
    use std::time::Duration;

    use x509_cert::builder::{Builder, CertificateBuilder, Profile};
    use x509_cert::der::EncodePem;
    use x509_cert::name::Name;
    use x509_cert::serial_number::SerialNumber;
    use x509_cert::spki::SubjectPublicKeyInfoOwned;
    use x509_cert::time::Validity;

    let failed = |what: &str, e: &dyn std::fmt::Display| {
        StoreError::Corrupt(format!("certificate {what}: {e}"))
    };
    let public_der = RsaPublicKey::from(private)
        .to_public_key_der()
        .map_err(|e| failed("key", &e))?;
    let spki = SubjectPublicKeyInfoOwned::try_from(public_der.as_bytes())
        .map_err(|e| failed("key", &e))?;
    let serial_bytes: [u8; 8] = rand::Rng::r#gen(&mut rand::rngs::OsRng);
    let serial = SerialNumber::new(&[&[0x01], &serial_bytes[..]].concat())
        .map_err(|e| failed("serial", &e))?;
    let validity = Validity::from_now(Duration::from_secs(2 * 365 * 24 * 3600))
        .map_err(|e| failed("validity", &e))?;
    let subject = Name::from_str("CN=accessd application token signing key")
        .map_err(|e| failed("name", &e))?;
    let signer = rsa::pkcs1v15::SigningKey::<Sha256>::new(private.clone());
    let builder = CertificateBuilder::new(Profile::Root, serial, validity, subject, spki, &signer)
        .map_err(|e| failed("builder", &e))?;
    let certificate = builder
        .build::<rsa::pkcs1v15::Signature>()
        .map_err(|e| failed("signature", &e))?;
    certificate
        .to_pem(LineEnding::LF)
        .map_err(|e| failed("encoding", &e))
}

/// Makes a new RSA key for the account and makes it the signing key.
pub async fn rotate(store: &Store, account: &AccountId) -> StoreResult<StoredKey> {
    let account_id = account.to_string();
    // Key generation takes a moment of CPU; keep it off the async workers.
    let key = tokio::task::spawn_blocking(move || -> StoreResult<StoredKey> {
        let private = RsaPrivateKey::new(&mut rand::rngs::OsRng, KEY_BITS)
            .map_err(|e| StoreError::Corrupt(format!("key generation: {e}")))?;
        let public = RsaPublicKey::from(&private);
        let der = public
            .to_public_key_der()
            .map_err(|e| StoreError::Corrupt(format!("key encoding: {e}")))?;
        let pem = private
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| StoreError::Corrupt(format!("key encoding: {e}")))?;
        let certificate_pem = self_signed_certificate(&private)?;
        Ok(StoredKey {
            kid: hex::encode(Sha256::digest(der.as_bytes())),
            account_id,
            private_pem: pem.to_string(),
            certificate_pem,
            public_n: URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
            public_e: URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
            created_at: Timestamp::now(),
            retired_at: None,
        })
    })
    .await
    .map_err(|e| StoreError::Corrupt(format!("key generation task: {e}")))??;
    store.install_signing_key(&key).await?;
    Ok(key)
}

/// The account's signing key, made on first use.
pub async fn signing_key(store: &Store, account: &AccountId) -> StoreResult<StoredKey> {
    let keys = store.signing_keys(account, Timestamp::now()).await?;
    match keys.into_iter().find(|k| k.retired_at.is_none()) {
        Some(key) => Ok(key),
        None => rotate(store, account).await,
    }
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

/// Checks signature (RS256 only, by one of our keys), issuer, time and,
/// when given, audience. Revocation is the caller's next check.
pub async fn verify(
    store: &Store,
    token: &str,
    issuer: &str,
    audience: Option<&str>,
) -> Result<(AppClaims, String), Rejection> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| Rejection::Unverifiable)?;
    if header.alg != Algorithm::RS256 {
        return Err(Rejection::Unverifiable);
    }
    let kid = header.kid.ok_or(Rejection::Unverifiable)?;
    let stored = store
        .find_signing_key(&kid)
        .await
        .map_err(|_| Rejection::Unverifiable)?
        .ok_or(Rejection::Unverifiable)?;
    let now = Timestamp::now();
    if stored
        .retired_at
        .is_some_and(|at| now >= at.plus_seconds(RETIRED_KEY_GRACE_SECONDS))
    {
        return Err(Rejection::Unverifiable);
    }
    let public = jwk(&stored);
    let decoding = DecodingKey::from_rsa_components(&public.n, &public.e)
        .map_err(|_| Rejection::Unverifiable)?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.leeway = 0;
    validation.validate_nbf = true;
    validation.set_issuer(&[issuer]);
    validation.set_required_spec_claims(&["exp", "iat", "nbf", "iss", "aud", "sub"]);
    match audience {
        Some(aud) => validation.set_audience(&[aud]),
        None => validation.validate_aud = false,
    }
    let data = jsonwebtoken::decode::<AppClaims>(token, &decoding, &validation).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind;
        match e.kind() {
            ErrorKind::ExpiredSignature | ErrorKind::ImmatureSignature => Rejection::OutOfTime,
            ErrorKind::InvalidAudience => Rejection::WrongAudience,
            _ => Rejection::Unverifiable,
        }
    })?;
    Ok((data.claims, stored.account_id))
}
