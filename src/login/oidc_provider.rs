//! accessd as an OpenID Connect relying party: the code is exchanged at the
//! provider's token endpoint, and the ID token verified with the keys of its
//! JWKS. The provider's URLs are set by an administrator, but what answers
//! there is not trusted: every call is time- and size-bounded, redirects are
//! not followed, and nothing it returns is unwrapped.

use std::sync::OnceLock;
use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::domain::idp::OidcConfig;

/// How long one call to the provider may take, all in.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// The most of a provider's answer that is read.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;
/// Signature algorithms accepted on ID tokens: asymmetric only, so a token
/// cannot be "signed" with the client secret or not at all.
const ACCEPTED_ALGORITHMS: [Algorithm; 8] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
];

/// Why a sign-in at the provider failed; the text goes to the log only.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("the provider could not be reached: {0}")]
    Unreachable(String),
    #[error("the provider answered {0}")]
    Refused(u16),
    #[error("the provider's answer is larger than allowed")]
    TooLarge,
    #[error("the provider's answer is not understood: {0}")]
    Malformed(String),
    #[error("the ID token does not verify: {0}")]
    BadToken(String),
}

/// The HTTP client for providers, built once. TLS is rustls on aws-lc-rs
/// with the Mozilla roots.
fn client() -> Result<&'static reqwest::Client, ProviderError> {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    if let Some(client) = CLIENT.get() {
        return Ok(client);
    }
    // Already installed (by an earlier call or another part) is fine.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let built = reqwest::Client::builder()
        .timeout(CALL_TIMEOUT)
        .connect_timeout(CALL_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| ProviderError::Unreachable(e.to_string()))?;
    Ok(CLIENT.get_or_init(|| built))
}

/// The body of a successful answer, at most [`MAX_ANSWER_BYTES`].
async fn bounded_body(mut response: reqwest::Response) -> Result<Vec<u8>, ProviderError> {
    let status = response.status();
    if !status.is_success() {
        return Err(ProviderError::Refused(status.as_u16()));
    }
    if response
        .content_length()
        .is_some_and(|len| len > MAX_ANSWER_BYTES as u64)
    {
        return Err(ProviderError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| ProviderError::Unreachable(e.to_string()))?
    {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(ProviderError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[derive(Deserialize)]
struct TokenAnswer {
    id_token: String,
}

/// Trades the authorization code for the provider's ID token
/// (`client_secret_post`, with the PKCE verifier).
pub async fn exchange_code(
    config: &OidcConfig,
    code: &str,
    redirect_uri: &str,
    pkce_verifier: &str,
) -> Result<String, ProviderError> {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("client_id", config.client_id.as_str()),
        ("client_secret", config.client_secret.as_str()),
        ("code_verifier", pkce_verifier),
    ];
    let response = client()?
        .post(&config.token_url)
        .header(reqwest::header::ACCEPT, "application/json")
        .form(&form)
        .send()
        .await
        .map_err(|e| ProviderError::Unreachable(e.without_url().to_string()))?;
    let body = bounded_body(response).await?;
    let answer: TokenAnswer =
        serde_json::from_slice(&body).map_err(|e| ProviderError::Malformed(e.to_string()))?;
    Ok(answer.id_token)
}

/// The claims of a verified ID token that sign-in uses.
#[derive(Debug)]
pub struct VerifiedClaims {
    pub claims: serde_json::Map<String, serde_json::Value>,
}

impl VerifiedClaims {
    /// The e-mail the provider vouches for: from `email_claim_name` (else
    /// `email`). With the standard `email` claim the provider must also say
    /// `email_verified: true`; a custom claim is one the administrator chose
    /// because the provider controls it (such as a UPN), so it is taken as is.
    pub fn email(&self, config: &OidcConfig) -> Result<String, EmailProblem> {
        let name = config
            .email_claim_name
            .as_deref()
            .filter(|n| !n.is_empty())
            .unwrap_or("email");
        let email = self
            .claims
            .get(name)
            .and_then(|v| v.as_str())
            .ok_or(EmailProblem::Missing)?;
        if name == "email"
            && self.claims.get("email_verified") != Some(&serde_json::Value::Bool(true))
        {
            return Err(EmailProblem::Unverified(email.to_string()));
        }
        Ok(email.to_string())
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum EmailProblem {
    Missing,
    Unverified(String),
}

/// The hash kept of a nonce; the ID token's nonce must hash to it.
pub fn nonce_hash(nonce: &str) -> String {
    hex::encode(Sha256::digest(format!("oidc-nonce:{nonce}").as_bytes()))
}

/// Verifies `id_token` with the provider's published keys: signature, `aud`
/// = client id, `exp`, and the nonce of this sign-in.
pub async fn verify_id_token(
    config: &OidcConfig,
    id_token: &str,
    expected_nonce_hash: &str,
) -> Result<VerifiedClaims, ProviderError> {
    let header = decode_header(id_token).map_err(|e| ProviderError::BadToken(e.to_string()))?;
    if !ACCEPTED_ALGORITHMS.contains(&header.alg) {
        return Err(ProviderError::BadToken(format!(
            "algorithm {:?} is not accepted",
            header.alg
        )));
    }
    let response = client()?
        .get(&config.certs_url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| ProviderError::Unreachable(e.without_url().to_string()))?;
    let body = bounded_body(response).await?;
    let keys: JwkSet =
        serde_json::from_slice(&body).map_err(|e| ProviderError::Malformed(e.to_string()))?;
    let jwk = match header.kid.as_deref() {
        Some(kid) => keys.find(kid),
        None if keys.keys.len() == 1 => keys.keys.first(),
        None => None,
    }
    .ok_or_else(|| ProviderError::BadToken("no published key matches the token".to_string()))?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| ProviderError::BadToken(e.to_string()))?;
    let mut validation = Validation::new(header.alg);
    validation.set_audience(&[config.client_id.as_str()]);
    validation.set_required_spec_claims(&["exp", "aud"]);
    let data = decode::<serde_json::Map<String, serde_json::Value>>(id_token, &key, &validation)
        .map_err(|e| ProviderError::BadToken(e.to_string()))?;
    let nonce = data
        .claims
        .get("nonce")
        .and_then(|v| v.as_str())
        .ok_or_else(|| ProviderError::BadToken("no nonce".to_string()))?;
    if !bool::from(
        nonce_hash(nonce)
            .as_bytes()
            .ct_eq(expected_nonce_hash.as_bytes()),
    ) {
        return Err(ProviderError::BadToken(
            "the nonce is not this sign-in's".to_string(),
        ));
    }
    Ok(VerifiedClaims {
        claims: data.claims,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(value: serde_json::Value) -> VerifiedClaims {
        VerifiedClaims {
            claims: value.as_object().cloned().unwrap_or_default(),
        }
    }

    #[test]
    fn the_standard_email_counts_only_when_verified() {
        let config = OidcConfig::default();
        let verified = claims(json!({"email": "a@example.com", "email_verified": true}));
        assert_eq!(verified.email(&config), Ok("a@example.com".to_string()));
        for unverified in [
            json!({"email": "a@example.com", "email_verified": false}),
            json!({"email": "a@example.com", "email_verified": "true"}),
            json!({"email": "a@example.com"}),
        ] {
            assert_eq!(
                claims(unverified).email(&config),
                Err(EmailProblem::Unverified("a@example.com".to_string()))
            );
        }
        assert_eq!(
            claims(json!({"email": 7, "email_verified": true})).email(&config),
            Err(EmailProblem::Missing)
        );
        assert_eq!(claims(json!({})).email(&config), Err(EmailProblem::Missing));
    }

    #[test]
    fn a_configured_claim_is_taken_as_the_email() {
        let config = OidcConfig {
            email_claim_name: Some("upn".to_string()),
            ..OidcConfig::default()
        };
        let upn = claims(json!({"upn": "b@example.com", "email": "other@example.com"}));
        assert_eq!(upn.email(&config), Ok("b@example.com".to_string()));
        assert_eq!(
            claims(json!({"email": "b@example.com"})).email(&config),
            Err(EmailProblem::Missing)
        );
    }

    #[test]
    fn nonce_hashes_differ_per_nonce() {
        assert_ne!(nonce_hash("a"), nonce_hash("b"));
        assert_eq!(nonce_hash("a"), nonce_hash("a"));
    }
}
