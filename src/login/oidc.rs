//! Sign-in at a generic OpenID Connect provider: the authorization code
//! flow with `state`, `nonce` and PKCE (S256).
//!
//! `start` keeps the sign-in server-side (the state only hashed, the PKCE
//! verifier sealed) and sends the browser to the provider; the browser also
//! gets the state in a cookie, so a callback is only accepted in the browser
//! that began the sign-in (a stranger's callback link cannot sign anyone in).
//! `callback` uses the pending sign-in up in one statement, so a replayed
//! state is refused.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Query, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::complete::{Failure, Proven, complete_proven, record_failure};
use super::oidc_provider::{EmailProblem, exchange_code, nonce_hash, verify_id_token};
use super::pages::error_page;
use super::{LoginError, allowed_providers, app_by_domain, checked_redirect, cookie, is_https};
use crate::app::AppState;
use crate::domain::AccountId;
use crate::domain::Timestamp;
use crate::domain::idp::{IdpConfig, OidcConfig};
use crate::domain::user::Email;
use crate::store::oidc_logins::PendingOidcLogin;

/// How long the browser has to come back from the provider.
const PENDING_SECONDS: i64 = 10 * 60;
const STATE_COOKIE: &str = "accessd_oidc_state";
/// The longest callback query read; a real one is far shorter.
const MAX_CALLBACK_QUERY: usize = 8 * 1024;
const DEFAULT_SCOPES: &str = "openid email profile";

/// 32 random bytes, base64url: a state, a nonce or a PKCE verifier (43 characters).
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::Rng::fill(&mut rand::thread_rng(), &mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn is_token(value: &str) -> bool {
    value.len() == 43
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The PKCE S256 challenge of `verifier` (RFC 7636 §4.2).
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn state_hash(state: &str) -> String {
    hex::encode(Sha256::digest(format!("oidc-state:{state}").as_bytes()))
}

/// The redirect URI registered at the provider: on the team domain of the
/// account, as Cloudflare's `https://<team>/cdn-cgi/access/callback`.
async fn callback_url(state: &AppState, account: &AccountId) -> Result<String, LoginError> {
    let team = super::global::team(state, account).await?;
    Ok(format!("{}/cdn-cgi/access/callback", team.url(state)))
}

fn state_cookie(state: &AppState, value: &str, max_age: i64) -> String {
    let secure = if is_https(state) { "; Secure" } else { "" };
    // Lax, not Strict: the callback is a navigation from the provider's site.
    format!(
        "{STATE_COOKIE}={value}; Path=/cdn-cgi/access/callback; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"
    )
}

/// The provider's authorization URL for this sign-in.
fn authorization_url(
    config: &OidcConfig,
    redirect_uri: &str,
    state: &str,
    nonce: &str,
    verifier: &str,
) -> String {
    let scopes = if config.scopes.is_empty() {
        DEFAULT_SCOPES.to_string()
    } else if config.scopes.iter().any(|s| s == "openid") {
        config.scopes.join(" ")
    } else {
        format!("openid {}", config.scopes.join(" "))
    };
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", &config.client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", &scopes)
        .append_pair("state", state)
        .append_pair("nonce", nonce)
        .append_pair("code_challenge", &pkce_challenge(verifier))
        .append_pair("code_challenge_method", "S256")
        .finish();
    let joiner = if config.auth_url.contains('?') {
        '&'
    } else {
        '?'
    };
    format!("{}{joiner}{query}", config.auth_url)
}

#[derive(Deserialize)]
pub struct StartQuery {
    idp: String,
    app: String,
    redirect_url: Option<String>,
}

fn refused(status: StatusCode, title: &str, message: &str) -> LoginError {
    LoginError::from(error_page(status, title, message))
}

/// `GET /cdn-cgi/access/oidc/start?idp=…&app=…&redirect_url=…`
pub async fn start(
    State(state): State<AppState>,
    Query(query): Query<StartQuery>,
) -> Result<Response, LoginError> {
    let app = app_by_domain(&state, &query.app).await?;
    let redirect = checked_redirect(&state, &app, query.redirect_url.as_deref())?;
    let idp = allowed_providers(&state, &app)
        .await?
        .into_iter()
        .find(|idp| idp.id.as_str() == query.idp);
    let Some((idp_id, IdpConfig::Oidc(config))) = idp.map(|idp| (idp.id, idp.config)) else {
        return Err(refused(
            StatusCode::NOT_FOUND,
            "Unknown identity provider",
            "This application does not offer that identity provider.",
        ));
    };
    let (state_token, nonce, verifier) = (random_token(), random_token(), random_token());
    let now = Timestamp::now();
    state.store.purge_oidc_logins(now).await?;
    state
        .store
        .create_oidc_login(&PendingOidcLogin {
            state_hash: state_hash(&state_token),
            account_id: app.account_id.clone(),
            app_id: app.id.clone(),
            idp_id: idp_id.to_string(),
            nonce_hash: nonce_hash(&nonce),
            pkce_verifier: verifier.clone(),
            redirect_url: redirect,
            created_at: now,
            expires_at: now.plus_seconds(PENDING_SECONDS),
        })
        .await?;
    let target = authorization_url(
        &config,
        &callback_url(&state, &app.account_id).await?,
        &state_token,
        &nonce,
        &verifier,
    );
    Ok((
        StatusCode::FOUND,
        [
            (header::LOCATION, target),
            (
                header::SET_COOKIE,
                state_cookie(&state, &state_token, PENDING_SECONDS),
            ),
        ],
    )
        .into_response())
}

/// The callback's parameters, read by hand so that any malformed query is
/// answered with a page, not a bare rejection.
struct CallbackParams {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

fn callback_params(raw: Option<&str>) -> Result<CallbackParams, LoginError> {
    let bad = || {
        refused(
            StatusCode::BAD_REQUEST,
            "Invalid sign-in response",
            "The identity provider's answer is not understood. Open the application again to sign in.",
        )
    };
    let raw = raw.unwrap_or_default();
    if raw.len() > MAX_CALLBACK_QUERY {
        return Err(bad());
    }
    let mut params = CallbackParams {
        code: None,
        state: None,
        error: None,
    };
    for (key, value) in form_urlencoded::parse(raw.as_bytes()) {
        let slot = match key.as_ref() {
            "code" => &mut params.code,
            "state" => &mut params.state,
            "error" => &mut params.error,
            _ => continue,
        };
        if slot.is_some() {
            return Err(bad());
        }
        *slot = Some(value.into_owned());
    }
    if params.state.as_deref().is_none_or(|s| !is_token(s)) {
        return Err(bad());
    }
    if params.error.is_none() && params.code.as_deref().is_none_or(str::is_empty) {
        return Err(bad());
    }
    Ok(params)
}

fn state_refused() -> LoginError {
    refused(
        StatusCode::BAD_REQUEST,
        "Sign-in expired",
        "This sign-in attempt is no longer valid. Open the application again to sign in.",
    )
}

/// `GET /cdn-cgi/access/callback?code=…&state=…`: the provider's answer.
pub async fn callback(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, LoginError> {
    let params = callback_params(raw.as_deref())?;
    let given_state = params.state.unwrap_or_default();
    let browser_state = cookie(&headers, STATE_COOKIE).unwrap_or_default();
    if !bool::from(browser_state.as_bytes().ct_eq(given_state.as_bytes())) {
        tracing::info!(
            reason = "oidc_state_invalid",
            "callback from another browser refused"
        );
        return Err(state_refused());
    }
    let now = Timestamp::now();
    let Some(pending) = state
        .store
        .take_oidc_login(&state_hash(&given_state), now)
        .await?
    else {
        tracing::info!(
            reason = "oidc_state_invalid",
            "unknown, used or expired state"
        );
        return Err(state_refused());
    };
    let app = state
        .store
        .find_app(&pending.account_id, &pending.app_id)
        .await?
        .ok_or_else(state_refused)?;
    let idp = allowed_providers(&state, &app)
        .await?
        .into_iter()
        .find(|idp| idp.id.as_str() == pending.idp_id);
    let Some(IdpConfig::Oidc(config)) = idp.map(|idp| idp.config) else {
        return Err(state_refused());
    };
    let provider_failed = || {
        refused(
            StatusCode::BAD_GATEWAY,
            "Sign-in failed",
            "The identity provider did not complete the sign-in. Open the application again to retry.",
        )
    };
    if params.error.is_some() {
        tracing::info!(reason = "oidc_error", "the provider returned an error");
        return Err(provider_failed());
    }
    let code = params.code.unwrap_or_default();
    let verified = match exchange_code(
        &config,
        &code,
        &callback_url(&state, &pending.account_id).await?,
        &pending.pkce_verifier,
    )
    .await
    {
        Ok(id_token) => verify_id_token(&config, &id_token, &pending.nonce_hash).await,
        Err(err) => Err(err),
    };
    let claims = verified.map_err(|err| {
        tracing::warn!(reason = "oidc_error", %err, idp = %pending.idp_id, "OpenID sign-in failed");
        provider_failed()
    })?;
    let ip = super::client_address(&state, peer.ip(), &headers);
    let email = match claims.email(&config) {
        Ok(raw) => Email::parse(raw.trim()).map_err(|_| provider_failed())?,
        Err(EmailProblem::Unverified(raw)) => {
            if let Ok(email) = Email::parse(raw.trim()) {
                let failure = Failure {
                    app: &app,
                    email: email.as_str(),
                    reason: "oidc_email_unverified",
                    ip,
                };
                record_failure(&state, failure, false).await?;
            }
            return Err(refused(
                StatusCode::FORBIDDEN,
                "E-mail not verified",
                "The identity provider has not verified your e-mail address.",
            ));
        }
        Err(EmailProblem::Missing) => {
            tracing::info!(reason = "oidc_error", "the ID token carries no e-mail");
            return Err(provider_failed());
        }
    };
    let proven = Proven {
        email: email.as_str(),
        idp_id: &pending.idp_id,
        idp_kind: "oidc",
        redirect_url: &pending.redirect_url,
    };
    let country = super::client_country(&state, &headers);
    let mut response = complete_proven(&state, &app, &proven, ip, country).await?;
    if let Ok(value) = HeaderValue::from_str(&state_cookie(&state, "", 0)) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_challenge_matches_rfc_7636_example() {
        // RFC 7636 appendix B.
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn tokens_are_fresh_and_well_formed() {
        let (a, b) = (random_token(), random_token());
        assert!(is_token(&a) && is_token(&b));
        assert_ne!(a, b);
    }

    #[test]
    fn callback_params_refuse_garbage() {
        let state = random_token();
        assert!(callback_params(Some(&format!("code=abc&state={state}"))).is_ok());
        assert!(callback_params(Some(&format!("error=access_denied&state={state}"))).is_ok());
        for bad in [
            String::new(),
            "code=abc".to_string(),
            format!("state={state}"),
            "code=abc&state=short".to_string(),
            format!("code=a&code=b&state={state}"),
            format!(
                "code=abc&state={state}&x={}",
                "y".repeat(MAX_CALLBACK_QUERY)
            ),
        ] {
            assert!(callback_params(Some(&bad)).is_err(), "{bad:.60}");
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn query_piece() -> impl Strategy<Value = String> {
            prop::collection::vec(
                prop_oneof![
                    Just("code".to_string()),
                    Just("state".to_string()),
                    Just("error".to_string()),
                    Just("=".to_string()),
                    Just("&".to_string()),
                    Just("%".to_string()),
                    Just("%FF".to_string()),
                    any::<char>().prop_map(String::from),
                ],
                0..40,
            )
            .prop_map(|parts| parts.concat())
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            /// Any query is parsed or refused, never a panic; what is
            /// accepted always has a well-formed state.
            #[test]
            fn any_query_is_parsed_or_refused(query in query_piece()) {
                if let Ok(params) = callback_params(Some(&query)) {
                    prop_assert!(params.state.as_deref().is_some_and(is_token));
                }
            }

            /// A well-formed callback is accepted whatever the code's bytes.
            #[test]
            fn well_formed_callbacks_are_accepted(code in prop::collection::vec(any::<u8>(), 1..200)) {
                let query = form_urlencoded::Serializer::new(String::new())
                    .append_pair("code", &String::from_utf8_lossy(&code))
                    .append_pair("state", &random_token())
                    .finish();
                prop_assert!(callback_params(Some(&query)).is_ok());
            }
        }
    }
}
